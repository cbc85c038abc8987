"""Canonical memory forms for the kernels, and the way back.

Channel variants run on a C-contiguous array that is either NCHW-like
(N, C, S) or NHWC-like (N, S, C), S the product of spatial dims.  Which
form is used is decided by _core.channel_layout (the one layout rule, also
used by the fast lane): an input already in one of the two forms is used
as it is (no copy); the result gets the same memory layout as the form
used.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from . import _core
from ._checks import normalize_axis, plain
from ._typing import Array


class ChannelForm:
    """x seen as (n, c, s) in NCHW or NHWC memory order.

    The kernel form is x.transpose(order): order lists x's axes as
    (batch, channel, *spatial) for NCHW or (batch, *spatial, channel) for
    NHWC.  xk is its flat plain copy (a view when x already is plain).
    """

    __slots__ = ("xk", "n", "c", "s", "nhwc", "order", "shape")
    xk: Array
    n: int
    c: int
    s: int
    nhwc: bool
    order: tuple[int, ...]
    shape: tuple[int, ...]

    def __init__(self, x: Array, axis: object, comp: np.dtype[Any], prefer_nhwc: bool = False,
                 batch_axis_ok: bool = True) -> None:
        nd = x.ndim
        if nd < 2:
            raise ValueError(f"x: expected at least 2 dims (N, C, ...), got shape {x.shape}")
        ax = normalize_axis(axis, nd)
        if ax == 0 and not batch_axis_ok:
            raise ValueError("axis: the channel axis cannot be axis 0, the batch axis")
        b = 1 if ax == 0 else 0
        spatial = tuple(a for a in range(nd) if a != b and a != ax)
        self.n, self.c = x.shape[b], x.shape[ax]
        self.s = math.prod(x.shape[a] for a in spatial)
        self.nhwc = bool(_core.channel_layout(x, b, ax, prefer_nhwc) & _core.LAYOUT_NHWC)
        self.order = (b,) + spatial + (ax,) if self.nhwc else (b, ax) + spatial
        src = x.transpose(self.order)
        self.shape = src.shape
        self.xk = plain(src, comp).reshape(-1)

    def put(self, a: Array, comp: np.dtype[Any]) -> Array:
        """Another array of x's shape (a backward's grad_out) in x's kernel
        form, flat and plain: a view when its memory already is (the form
        is x's, never a choice of its own)."""
        return plain(a.transpose(self.order), comp).reshape(-1)

    def to_x_axes(self, yk: Array) -> Array:
        """Kernel-form array -> x's logical axes (a view)."""
        back = [0] * len(self.order)
        for i, a in enumerate(self.order):
            back[a] = i
        return yk.reshape(self.shape).transpose(back)

    def out_view(self, out: Array) -> Array:
        """out in kernel-form order (a view)."""
        return out.transpose(self.order)


def target(out: Optional[Array], xk: Array, kernel_view: Callable[[Array], Array],
           comp: np.dtype[Any], *also_read: Array) -> tuple[Array, bool]:
    """Flat array the kernel writes: out itself when the rule allows it
    (_core.writes_directly) for xk and every other array the kernel reads
    alongside it (a backward's grad_out), else a new one."""
    codes = comp.kind in "iu" and comp.itemsize == 1  # int8/uint8 codes of a quantized result
    if out is not None:
        o = kernel_view(out)
        t = comp.num if codes else -1
        if all(_core.writes_directly(o, a, t) for a in (xk,) + also_read):
            return o.reshape(-1), True
    return (np.empty(xk.size, comp) if codes else _core.empty(xk.size, comp)), False


def finish(yk: Array, direct: bool, to_x_axes: Callable[[Array], Array], out: Optional[Array],
           res: np.dtype[Any]) -> Array:
    """Return the result in x's axes and dtype, copying into out if needed."""
    if direct and out is not None:  # the kernel wrote into out
        return out
    y = to_x_axes(yk)
    if out is not None:
        np.copyto(out, y, casting="unsafe")
        return out
    return y.astype(res, copy=False)
