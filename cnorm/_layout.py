"""Canonical memory forms for the kernels, and the way back.

Channel variants run on a C-contiguous array that is either NCHW-like
(N, C, S) or NHWC-like (N, S, C), S the product of spatial dims.  An input
already in one of the two forms is used as it is (no copy); the result gets
the same memory layout as the form used.
"""
import math

import numpy as np

from ._checks import normalize_axis, writes_directly


class ChannelForm:
    """x seen as (n, c, s) in NCHW or NHWC memory order.

    xk is the flat kernel input; shape is the logical kernel-form shape
    ((N, C, *sp) or (N, *sp, C)) used to map results back to x's axes.
    """

    __slots__ = ("xk", "n", "c", "s", "nhwc", "axis", "shape")

    def __init__(self, x, axis, comp, prefer_nhwc=False, batch_axis_ok=True):
        nd = x.ndim
        if nd < 2:
            raise ValueError(f"x: expected at least 2 dims (N, C, ...), got shape {x.shape}")
        ax = normalize_axis(axis, nd)
        if ax == 0 and not batch_axis_ok:
            raise ValueError("axis: the channel axis cannot be axis 0, the batch axis")
        first = np.moveaxis(x, ax, 1)        # logical (N, C, *spatial)
        last = np.moveaxis(first, 1, -1)     # logical (N, *spatial, C)
        self.n, self.c = first.shape[0], first.shape[1]
        self.s = math.prod(first.shape[2:])
        if first.flags.c_contiguous and not (prefer_nhwc and self.s == 1):
            nhwc = False
        elif last.flags.c_contiguous:
            nhwc = True
        elif first.flags.c_contiguous:
            nhwc = False
        else:  # must copy: keep what the caller declared via the axis
            nhwc = ax == nd - 1
        src = last if nhwc else first
        self.nhwc = nhwc
        self.axis = ax
        self.shape = src.shape
        self.xk = np.ascontiguousarray(src, dtype=comp).reshape(-1)

    def to_x_axes(self, yk):
        """Kernel-form array -> x's logical axes (a view)."""
        y = yk.reshape(self.shape)
        if self.nhwc:
            y = np.moveaxis(y, -1, 1)
        return np.moveaxis(y, 1, self.axis)

    def out_view(self, out):
        """out in kernel-form order (a view)."""
        o = np.moveaxis(out, self.axis, 1)
        return np.moveaxis(o, 1, -1) if self.nhwc else o


def target(out, xk, kernel_view, comp):
    """Flat array the kernel writes: out itself when possible, else new."""
    if out is not None and out.dtype == comp:
        o = kernel_view(out)
        if writes_directly(o, xk):
            return o.reshape(-1), True
    return np.empty(xk.size, comp), False


def finish(yk, direct, to_x_axes, out, res):
    """Return the result in x's axes and dtype, copying into out if needed."""
    if direct:
        return out
    y = to_x_axes(yk)
    if out is not None:
        np.copyto(out, y, casting="unsafe")
        return out
    return y.astype(res, copy=False)
