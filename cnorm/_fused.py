"""The inference fusions of DESIGN.md 3.2: residual add + layer/RMS norm.

``s = x + residual (+ skip_bias)`` is stored (each add in the kernel's
compute precision: float32 for float32 and the half types, rounded once to
the storage type; float64 for float64), then normalized from that stored
``s`` by the same kernel as :func:`cnorm.layer_norm`, so ``y`` is bitwise
``layer_norm(s, ...)``.  One pass over memory: each row's sum is written and
normalized while it is in cache.

Decisions: ``residual`` (and ``skip_bias``) of another real dtype are
converted to x's kernel dtype, as weight and bias are; ``residual`` has
x's shape or a trailing part of it (leading size-1 dims allowed), which
broadcasts over x's leading dims (ONNX Runtime's skip); ``out`` and
``sum_out`` are two results and must not share memory.
"""
from __future__ import annotations

import math
from typing import Optional, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _core
from ._checks import (
    activation_code,
    array,
    as_input,
    check_eps,
    check_out,
    check_quantize,
    default_eps,
    is_bfloat16,
    param,
    plain,
    weight_dtype,
)
from ._layout import finish, target
from ._norms import _rows_setup, _unaliased
from ._typing import Activation, Array, ShapeLike

__all__ = ["add_layer_norm", "add_rms_norm"]


def _residual_rows(r: Array, x_shape: tuple[int, ...], ns: tuple[int, ...]) -> int:
    """Rows of a residual of x's shape, or of a trailing part of it that
    broadcasts over x's leading dims (leading size-1 dims dropped)."""
    t = tuple(r.shape)
    while len(t) > len(ns) and t[0] == 1:
        t = t[1:]
    if len(t) < len(ns) or len(t) > len(x_shape) or tuple(x_shape[len(x_shape) - len(t):]) != t:
        raise ValueError(f"residual: expected x's shape {x_shape} or a trailing part of it ending in "
                         f"normalized_shape {ns} (broadcast over the leading dims), got {r.shape}")
    return math.prod(t[: len(t) - len(ns)])


def _add_norm(x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike],
              bias: Optional[ArrayLike], eps: Optional[float], skip_bias: Optional[ArrayLike],
              out: Optional[Array], sum_out: Optional[Array], activation: Activation,
              rms: bool, quantize: object, out_dtype: object) -> tuple[Array, Array]:
    if quantize is None and out_dtype is None:  # the common call, checked in Cython
        fast = _core.add_norm_fast(x, residual, normalized_shape, weight, bias, eps, skip_bias, out, sum_out,
                                   activation, rms)
        if fast is not None:
            return fast
    x, res, comp = as_input(x)
    quant, codes = check_quantize(quantize, out_dtype)
    r = residual if type(residual) is np.ndarray else array(residual, "residual")
    if r.dtype.kind not in "fbiu" and not is_bfloat16(r.dtype):
        raise TypeError(f"residual: expected a real floating array, got dtype {r.dtype}")
    ns, rows, cols = _rows_setup(x, normalized_shape, res if codes is None else codes, out)
    r_rows = _residual_rows(r, x.shape, ns)
    if sum_out is not None:
        check_out(sum_out, x.shape, res, "sum_out")
        if out is not None and np.shares_memory(out, sum_out):
            raise ValueError("sum_out: must not share memory with out (the sum and y are two results)")
    if rms:
        eps = default_eps(res) if eps is None else check_eps(eps)
    else:
        eps = check_eps(eps)
    act = activation_code(activation)
    wdt = weight_dtype(comp)
    w = param(weight, "weight", ns, wdt)
    b = param(bias, "bias", ns, wdt)
    skip = param(skip_bias, "skip_bias", ns, wdt)
    xk = plain(x, comp).reshape(-1)
    rk: Array = plain(r, comp).reshape(-1)
    # the outputs may be x, or residual when it has x's shape (read and
    # written element by element); anything else they overlap is copied
    full = (rk,) if rk.size == xk.size else ()
    sk, s_direct = target(sum_out, xk, lambda o: o, comp, *full)
    yk, y_direct = target(out, xk, lambda o: o, comp if codes is None else codes, *full)
    if xk.size:
        if not full:
            # a broadcast residual is read by every row: never written while read
            rk = cast(Array, _core.unaliased(cast(Array, _core.unaliased(rk, sk)), yk))
        w, b, skip = _unaliased(sk, *_unaliased(yk, w, b, skip))
        _core.add_norm(xk, rk, r_rows, skip, sk, yk, rows, cols, w, b, eps, None, None, act, rms, quant)
    y = finish(yk, y_direct, lambda a: a.reshape(x.shape), out, res if codes is None else codes)
    s = finish(sk, s_direct, lambda a: a.reshape(x.shape), sum_out, res)
    return y, s


def add_layer_norm(
    x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, skip_bias: Optional[ArrayLike] = None,
    out: Optional[Array] = None, sum_out: Optional[Array] = None, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> tuple[Array, Array]:
    """Residual add fused with layer normalization (ONNX Runtime's
    SkipLayerNormalization, IPEX's add_layer_norm).

    Parameters
    ----------
    x : array_like
    residual : array_like
        x's shape, or a trailing part of it that broadcasts over x's
        leading dims.
    normalized_shape : int or tuple of int
    weight, bias, skip_bias : array_like of shape normalized_shape, optional
    eps : float >= 0
    out, sum_out : ndarray, optional
        Where y and s go (x's shape and result dtype).  ``sum_out=residual``
        updates the residual in place; either may be x.
    activation : {None, "relu", "silu", "gelu"}
    quantize, out_dtype : (scale, zero_point) and numpy.int8 or numpy.uint8, optional
        y as int8/uint8 codes, as :func:`layer_norm` (s stays x's dtype).

    Returns
    -------
    y : ndarray
        ``layer_norm(s, normalized_shape, weight, bias, eps)``, bitwise.
    s : ndarray
        ``x + residual (+ skip_bias)`` in x's dtype.

    Examples
    --------
    >>> y, h = cnorm.add_layer_norm(attn_out, h, 768, gamma, beta)
    """
    return _add_norm(x, residual, normalized_shape, weight, bias, eps, skip_bias, out, sum_out, activation, False,
                     quantize, out_dtype)


def add_rms_norm(
    x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    eps: Optional[float] = None, *, skip_bias: Optional[ArrayLike] = None, out: Optional[Array] = None,
    sum_out: Optional[Array] = None, quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> tuple[Array, Array]:
    """Residual add fused with RMS normalization (vLLM's fused_add_rms_norm
    with ``sum_out=residual``, ONNX Runtime's SkipSimplifiedLayerNormalization).

    Returns ``(y, s)``: ``s = x + residual (+ skip_bias)`` and
    ``y = rms_norm(s, normalized_shape, weight, eps)``, bitwise.  Arguments
    as :func:`add_layer_norm`; ``eps=None`` is the result dtype's machine
    epsilon, as :func:`rms_norm`.

    Examples
    --------
    >>> y, _ = cnorm.add_rms_norm(mlp_out, h, 4096, g, sum_out=h)   # h += mlp_out, y = rms_norm(h)
    """
    return _add_norm(x, residual, normalized_shape, weight, None, eps, skip_bias, out, sum_out, None, True,
                     quantize, out_dtype)
