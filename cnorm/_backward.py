"""The backward passes (DESIGN.md 3.1): gradients of the forward functions.

Each takes grad_out (dL/dy, x's shape) and x, and the forward's arguments;
every input rule of the forward applies through the same rule functions
(cnorm/_checks.py, cnorm/_layout.py, cnorm/_core.pyx): dtypes, strides,
channels-last views without copies (grad_out is put in x's kernel form, it
has no layout choice of its own), ``out=`` for grad_x, errors that name the
argument.  The saved statistics are those ``return_stats=True`` gives (or
None: recomputed from x with eps); given as float32 they are widened to
float64 for the kernel, exactly.

Results: ``Grads(x, weight, bias)``.  grad_x has x's result dtype;
grad_weight and grad_bias the weight dtype (float32 for float32/half input,
float64 for float64) and the weight's shape.  A gradient not asked for
(``needs``) is None, and so is grad_weight when weight is None; grad_bias is
computed when asked for even without a bias (it is the sum of
dL/d(pre-activation) over the group axes).
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike

from . import _core
from ._checks import (
    F64,
    activation_code,
    as_input,
    check_eps,
    check_int,
    check_needs,
    check_out,
    default_eps,
    param,
    plain,
    weight_dtype,
)
from ._layout import ChannelForm, finish, target
from ._norms import _check_group_size, _rows_setup, stats_shape
from ._typing import Activation, Array, Needs, Needs2, ShapeLike

__all__ = [
    "Grads",
    "layer_norm_backward",
    "rms_norm_backward",
    "group_norm_backward",
    "instance_norm_backward",
    "batch_norm_backward",
]

_NEEDS3 = ("grad_x", "grad_weight", "grad_bias")
_NEEDS2 = ("grad_x", "grad_weight")


class Grads(NamedTuple):
    """The gradients of a backward function (None where not computed).

    Attributes
    ----------
    x : ndarray or None
        dL/dx: x's shape, result dtype and (channels-last input) layout.
    weight : ndarray or None
        dL/dweight, of the weight's shape; None when weight is None or
        ``needs[1]`` is false.
    bias : ndarray or None
        dL/dbias; None when ``needs[2]`` is false (rms_norm: always).
    """

    x: Optional[Array]
    weight: Optional[Array]
    bias: Optional[Array]


def _grad_out(grad_out: ArrayLike, x: Array) -> Array:
    """grad_out as an array of x's shape (any real dtype: converted to x's
    kernel dtype with x)."""
    dy, _, _ = as_input(grad_out, "grad_out")
    if dy.shape != x.shape:
        raise ValueError(f"grad_out: expected x's shape {x.shape}, got {dy.shape}")
    return dy


def _stat(value: ArrayLike, name: str, shape: tuple[int, ...]) -> Array:
    a = param(value, name, shape, F64)
    assert a is not None
    return a


def _saved(mean: Optional[ArrayLike], rstd: Optional[ArrayLike],
           shape: tuple[int, ...]) -> tuple[Optional[Array], Optional[Array]]:
    """The saved statistics as flat float64 arrays: both of exactly the
    shape return_stats gives, or both None (recomputed from x)."""
    if (mean is None) != (rstd is None):
        missing, given = ("rstd", "mean") if rstd is None else ("mean", "rstd")
        raise ValueError(f"{missing}: expected an array of shape {shape} alongside {given} "
                         "(or neither: both recomputed from x), got None")
    if mean is None or rstd is None:
        return None, None
    return _stat(mean, "mean", shape), _stat(rstd, "rstd", shape)


# the kernel call: (dx, mean, rstd, weight, bias, dweight, dbias) -> None
_Kernel = Callable[[Optional[Array], Optional[Array], Optional[Array], Optional[Array], Optional[Array],
                    Optional[Array], Optional[Array]], None]


def _backward(x: Array, res: np.dtype[Any], need: tuple[bool, ...], out: Optional[Array], xk: Array, dyk: Array,
              kernel_view: Callable[[Array], Array], to_x_axes: Callable[[Array], Array],
              w: Optional[Array], b: Optional[Array], mean: Optional[Array], rstd: Optional[Array],
              wshape: tuple[int, ...], kernel: _Kernel) -> Grads:
    """Common tail: choose where grad_x is written (the forward's out= rule,
    for x and grad_out), allocate the parameter gradients, run the kernel
    (unless x is empty or nothing is asked for), map grad_x back."""
    if out is not None:
        if not need[0]:
            raise ValueError("out: given, but needs[0] (grad_x) is False")
        check_out(out, x.shape, res)
    dxk, direct = target(out, xk, kernel_view, xk.dtype, dyk) if need[0] else (None, False)
    wdt, size = weight_dtype(xk.dtype), math.prod(wshape)
    # zeros: an empty x (no kernel call) has zero parameter gradients
    dw = np.zeros(size, wdt) if need[1] and w is not None else None
    db = np.zeros(size, wdt) if need[2] else None
    if xk.size and (dxk is not None or dw is not None or db is not None):
        if dxk is not None:  # inputs the kernel reads while writing dx (out= overlapping them)
            w, b, mean, rstd = (_core.unaliased(p, dxk) for p in (w, b, mean, rstd))
        kernel(dxk, mean, rstd, w, b, dw, db)
    gx = None if dxk is None else finish(dxk, direct, to_x_axes, out, res)
    return Grads(gx, None if dw is None else dw.reshape(wshape), None if db is None else db.reshape(wshape))


def _channel_setup(grad_out: ArrayLike, x: ArrayLike, axis: object, prefer_nhwc: bool, batch_axis_ok: bool,
                   weight: Optional[ArrayLike], bias: Optional[ArrayLike], eps: object, activation: object,
                   needs: object) -> tuple[Array, np.dtype[Any], ChannelForm, Array, Optional[Array], Optional[Array],
                                           float, int, tuple[bool, ...]]:
    """The checks and conversions every channel variant shares, in the
    forward's order (x, eps, activation, layout, weight, bias)."""
    xa, res, comp = as_input(x)
    dy = _grad_out(grad_out, xa)
    need = check_needs(needs, _NEEDS3)
    e = check_eps(eps)
    act = activation_code(activation)
    form = ChannelForm(xa, axis, comp, prefer_nhwc=prefer_nhwc, batch_axis_ok=batch_axis_ok)
    w = param(weight, "weight", (form.c,), weight_dtype(comp))
    b = param(bias, "bias", (form.c,), weight_dtype(comp))
    return xa, res, form, form.put(dy, comp), w, b, e, act, need


def layer_norm_backward(
    grad_out: ArrayLike, x: ArrayLike, normalized_shape: ShapeLike, mean: Optional[ArrayLike] = None,
    rstd: Optional[ArrayLike] = None, weight: Optional[ArrayLike] = None, *, bias: Optional[ArrayLike] = None,
    eps: float = 1e-5, activation: Activation = None, needs: Needs = (True, True, True),
    out: Optional[Array] = None,
) -> Grads:
    """Gradients of :func:`layer_norm`.

    Parameters
    ----------
    grad_out : array_like
        dL/dy, of x's shape.
    x : array_like
        The forward's input.
    normalized_shape : int or tuple of int
    mean, rstd : array_like of shape ``x.shape[:-k] + (1,) * k``, optional
        The forward's ``return_stats=True`` statistics; both None:
        recomputed from x with `eps`.
    weight : array_like of shape normalized_shape, optional
    bias : array_like of shape normalized_shape, optional
        Needed only with `activation`, to rebuild the pre-activation value.
    eps : float >= 0
    activation : {None, "relu", "silu", "gelu"}
        The forward's fused activation: the gradient goes through it.
    needs : tuple of 3 bool
        Which of (grad_x, grad_weight, grad_bias) to compute.
    out : ndarray, optional
        Where grad_x is written (x's shape and result dtype; may be
        grad_out or x, in place).

    Returns
    -------
    Grads
        ``(x, weight, bias)`` gradients; None where not computed.

    Examples
    --------
    >>> y, mean, rstd = cnorm.layer_norm(h, 768, w, b, return_stats=True)
    >>> g = cnorm.layer_norm_backward(dy, h, 768, mean, rstd, w)
    >>> g.x.shape == h.shape, g.weight.shape, g.bias.shape
    (True, (768,), (768,))
    """
    fast = _core.layer_norm_backward_fast(Grads, grad_out, x, normalized_shape, mean, rstd, weight, bias, eps,
                                       activation, needs, out)
    if fast is not None:  # every argument was plain: the kernel ran
        return fast
    xa, res, comp = as_input(x)
    dy = _grad_out(grad_out, xa)
    need = check_needs(needs, _NEEDS3)
    ns, rows, cols = _rows_setup(xa, normalized_shape, res, None)
    e = check_eps(eps)
    act = activation_code(activation)
    w = param(weight, "weight", ns, weight_dtype(comp))
    b = param(bias, "bias", ns, weight_dtype(comp))
    m, r = _saved(mean, rstd, stats_shape(xa.shape, ns))
    xk, dyk = plain(xa, comp).reshape(-1), plain(dy, comp).reshape(-1)

    def kernel(dx: Optional[Array], mk: Optional[Array], rk: Optional[Array], wk: Optional[Array],
               bk: Optional[Array], dw: Optional[Array], db: Optional[Array]) -> None:
        _core.layer_norm_backward(dyk, xk, dx, rows, cols, mk, rk, wk, bk, e, act, dw, db)

    return _backward(xa, res, need, out, xk, dyk, lambda o: o, lambda a: a.reshape(xa.shape), w, b, m, r, ns,
                     kernel)


def rms_norm_backward(
    grad_out: ArrayLike, x: ArrayLike, normalized_shape: ShapeLike, rstd: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, *, eps: Optional[float] = None, needs: Needs2 = (True, True),
    out: Optional[Array] = None,
) -> Grads:
    """Gradients of :func:`rms_norm`.

    Parameters
    ----------
    grad_out : array_like
        dL/dy, of x's shape.
    x : array_like
    normalized_shape : int or tuple of int
    rstd : array_like of shape ``x.shape[:-k] + (1,) * k``, optional
        The forward's ``return_stats=True`` statistic (None: recomputed).
    weight : array_like of shape normalized_shape, optional
    eps : float >= 0 or None
        None means ``np.finfo(dtype).eps`` of the result dtype, as the
        forward.
    needs : tuple of 2 bool
        Which of (grad_x, grad_weight) to compute.
    out : ndarray, optional
        Where grad_x is written.

    Returns
    -------
    Grads
        ``(x, weight, None)``: RMS norm has no bias.
    """
    fast = _core.rms_norm_backward_fast(Grads, grad_out, x, normalized_shape, rstd, weight, eps, needs, out)
    if fast is not None:
        return fast
    xa, res, comp = as_input(x)
    dy = _grad_out(grad_out, xa)
    need = check_needs(needs, _NEEDS2) + (False,)
    ns, rows, cols = _rows_setup(xa, normalized_shape, res, None)
    e = default_eps(res) if eps is None else check_eps(eps)
    w = param(weight, "weight", ns, weight_dtype(comp))
    r = None if rstd is None else _stat(rstd, "rstd", stats_shape(xa.shape, ns))
    xk, dyk = plain(xa, comp).reshape(-1), plain(dy, comp).reshape(-1)

    def kernel(dx: Optional[Array], mk: Optional[Array], rk: Optional[Array], wk: Optional[Array],
               bk: Optional[Array], dw: Optional[Array], db: Optional[Array]) -> None:
        _core.rms_norm_backward(dyk, xk, dx, rows, cols, rk, wk, e, dw)

    return _backward(xa, res, need, out, xk, dyk, lambda o: o, lambda a: a.reshape(xa.shape), w, None, None, r,
                     ns, kernel)


def _group_backward(grad_out: ArrayLike, x: ArrayLike, groups: Optional[SupportsIndex],
                    mean: Optional[ArrayLike], rstd: Optional[ArrayLike], weight: Optional[ArrayLike],
                    bias: Optional[ArrayLike], eps: object, axis: object, activation: object, needs: object,
                    out: Optional[Array]) -> Grads:
    """group_norm_backward, and instance_norm_backward (groups None: one
    group per channel, the forward's checks of instance norm)."""
    xa, res, form, dyk, w, b, e, act, need = _channel_setup(grad_out, x, axis, False, False, weight, bias, eps,
                                                            activation, needs)
    n, c, s = form.n, form.c, form.s
    if groups is None:
        g = c
        _check_group_size(s, n * c, "spatial extent")
        if s == 1 and n * c > 0:
            raise ValueError(f"x: expected more than 1 spatial element when using input stats, got shape {xa.shape}")
        if mean is not None and np.shape(mean) == (c,):
            raise ValueError(f"mean: expected shape {(n, c)}, got {(c,)}: the (C,) statistics of "
                             "instance_norm(use_input_stats=False) are constants, for "
                             "batch_norm_backward(..., training=False)")
        stat_shape = (n, c)
    else:
        g = check_int(groups, "num_groups", 1)
        if c % g:
            raise ValueError(f"num_groups: expected a divisor of the number of channels {c}, got {g}")
        _check_group_size((c // g) * s, n * g, "group")
        stat_shape = (n, g)
    m, r = _saved(mean, rstd, stat_shape)

    def kernel(dx: Optional[Array], mk: Optional[Array], rk: Optional[Array], wk: Optional[Array],
               bk: Optional[Array], dw: Optional[Array], db: Optional[Array]) -> None:
        _core.group_norm_backward(dyk, form.xk, dx, n, c, s, g, form.nhwc, mk, rk, wk, bk, e, act, dw, db)

    return _backward(xa, res, need, out, form.xk, dyk, form.out_view, form.to_x_axes, w, b, m, r, (c,), kernel)


def group_norm_backward(
    grad_out: ArrayLike, x: ArrayLike, num_groups: SupportsIndex, mean: Optional[ArrayLike] = None,
    rstd: Optional[ArrayLike] = None, weight: Optional[ArrayLike] = None, *, bias: Optional[ArrayLike] = None,
    eps: float = 1e-5, axis: SupportsIndex = 1, activation: Activation = None,
    needs: Needs = (True, True, True), out: Optional[Array] = None,
) -> Grads:
    """Gradients of :func:`group_norm`.

    Parameters
    ----------
    grad_out : array_like
        dL/dy, of x's shape.
    x : array_like
        (N, C, ...) with the channel axis at `axis`.
    num_groups : int
    mean, rstd : array_like of shape (N, num_groups), optional
        The forward's ``return_stats=True`` statistics (None: recomputed).
    weight, bias : array_like of shape (C,), optional
        bias is needed only with `activation`.
    eps : float >= 0
    axis : int
        The channel axis (not 0).
    activation : {None, "relu", "silu", "gelu"}
    needs : tuple of 3 bool
        Which of (grad_x, grad_weight, grad_bias) to compute.
    out : ndarray, optional
        Where grad_x is written.

    Returns
    -------
    Grads
        grad_x in x's shape, dtype and memory layout; grad_weight and
        grad_bias of shape (C,).
    """
    fast = _core.channel_backward_fast(Grads, _core.CHANNEL_GN, grad_out, x, axis, num_groups, mean, rstd, weight,
                                    bias, eps, activation, needs, out)
    if fast is not None:  # every argument was plain: the kernel ran
        return fast
    return _group_backward(grad_out, x, num_groups, mean, rstd, weight, bias, eps, axis, activation, needs, out)


def instance_norm_backward(
    grad_out: ArrayLike, x: ArrayLike, mean: Optional[ArrayLike] = None, rstd: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, *, bias: Optional[ArrayLike] = None, eps: float = 1e-5,
    axis: SupportsIndex = 1, activation: Activation = None, needs: Needs = (True, True, True),
    out: Optional[Array] = None,
) -> Grads:
    """Gradients of :func:`instance_norm` with input statistics.

    With ``use_input_stats=False`` the forward used the running statistics,
    constants: its gradient is
    ``batch_norm_backward(grad_out, x, mean, rstd, weight, training=False)``
    with the (C,) statistics that forward's ``return_stats=True`` gives.

    Parameters
    ----------
    grad_out : array_like
        dL/dy, of x's shape.
    x : array_like
        (N, C, ...) with the channel axis at `axis`.
    mean, rstd : array_like of shape (N, C), optional
        The forward's ``return_stats=True`` statistics (None: recomputed).
    weight, bias : array_like of shape (C,), optional
    eps : float >= 0
    axis : int
        The channel axis (not 0).
    activation : {None, "relu", "silu", "gelu"}
    needs : tuple of 3 bool
    out : ndarray, optional

    Returns
    -------
    Grads
    """
    fast = _core.channel_backward_fast(Grads, _core.CHANNEL_IN, grad_out, x, axis, None, mean, rstd, weight, bias,
                                    eps, activation, needs, out)
    if fast is not None:
        return fast
    return _group_backward(grad_out, x, None, mean, rstd, weight, bias, eps, axis, activation, needs, out)


def batch_norm_backward(
    grad_out: ArrayLike, x: ArrayLike, mean: Optional[ArrayLike] = None, rstd: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, training: bool = True, *, bias: Optional[ArrayLike] = None,
    eps: float = 1e-5, axis: SupportsIndex = 1, activation: Activation = None,
    needs: Needs = (True, True, True), out: Optional[Array] = None,
) -> Grads:
    """Gradients of :func:`batch_norm`.

    Parameters
    ----------
    grad_out : array_like
        dL/dy, of x's shape.
    x : array_like
        (N, C, ...) with the channel axis at `axis`.
    mean, rstd : array_like of shape (C,), optional
        The statistics the forward used (its ``return_stats=True``).  With
        ``training=True`` they may be None (recomputed from x);
        ``training=False`` needs them.
    weight, bias : array_like of shape (C,), optional
        bias is needed only with `activation`.
    training : bool
        True differentiates through the batch statistics; False treats
        mean and rstd as constants (eval mode: ``dx = dy * weight * rstd``).
    eps : float >= 0
    axis : int
        The channel axis.
    activation : {None, "relu", "silu", "gelu"}
    needs : tuple of 3 bool
    out : ndarray, optional

    Returns
    -------
    Grads
        grad_x in x's shape, dtype and memory layout; grad_weight and
        grad_bias of shape (C,).
    """
    if training is True or training is False:  # the fast lane takes a Python bool only
        op = _core.CHANNEL_BN_BATCH if training else _core.CHANNEL_BN_EVAL
        fast = _core.channel_backward_fast(Grads, op, grad_out, x, axis, None, mean, rstd, weight, bias, eps,
                                        activation, needs, out)
        if fast is not None:
            return fast
    xa, res, form, dyk, w, b, e, act, need = _channel_setup(grad_out, x, axis, True, True, weight, bias, eps,
                                                            activation, needs)
    n, c, s = form.n, form.c, form.s
    train = bool(training)
    m, r = _saved(mean, rstd, (c,))
    if not train and m is None:
        raise ValueError(f"mean: expected the statistics the forward used, of shape {(c,)}, when "
                         "training=False (they are constants there), got None")
    if train and n * s == 1:
        raise ValueError(f"x: expected more than 1 value per channel when training, got shape {xa.shape}")

    def kernel(dx: Optional[Array], mk: Optional[Array], rk: Optional[Array], wk: Optional[Array],
               bk: Optional[Array], dw: Optional[Array], db: Optional[Array]) -> None:
        _core.batch_norm_backward(dyk, form.xk, dx, n, c, s, form.nhwc, mk, rk, wk, bk, e, train, act, dw, db)

    return _backward(xa, res, need, out, form.xk, dyk, form.out_view, form.to_x_axes, w, b, m, r, (c,), kernel)
