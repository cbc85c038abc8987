"""The normalization functions.  Positional arguments follow
torch.nn.functional; NumPy-style keywords come after `*`."""
from __future__ import annotations

import math
from typing import Any, Callable, Literal, Optional, SupportsIndex, Union, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _core
from ._checks import (
    F64,
    activation_code,
    as_input,
    check_eps,
    check_int,
    check_momentum,
    check_out,
    check_quantize,
    default_eps,
    is_floating,
    normalized_shape_tuple,
    param,
    plain,
    stats_dtype,
    weight_dtype,
)
from ._layout import ChannelForm, finish, target
from ._typing import F32, F64 as F64Array, Activation, Array, FloatT, ShapeLike, Single32T

__all__ = ["batch_norm", "instance_norm", "group_norm", "layer_norm", "rms_norm", "fold_batch_norm"]

# Typing: each function has an overload for x an NDArray of a floating type,
# whose result has that type (the result dtype is x's), and one for any
# other array_like (NDArray[Any]: integers give float64, bfloat16 stays).
# return_stats=True returns a tuple whose statistics are float64 for float64
# input and float32 for float32/float16 (stats_dtype); a bool only known at
# run time gives either.  The float32/float16 overload precedes the float64
# one: mypy infers an argument such as x.astype(np.float32) in the context of
# the first overload that could take it.  It reports the two as overlapping
# (a class could derive from both float32 and float64): the ignore.


def _running_stats(running_mean: Optional[ArrayLike], running_var: Optional[ArrayLike], c: int,
                   update: bool) -> tuple[Optional[Array], Optional[Array]]:
    """Running stats as float64 arrays for the kernel.  When they will be
    updated in place they must be writable floating ndarrays."""
    if (running_mean is None) != (running_var is None):
        missing = "running_var" if running_var is None else "running_mean"
        raise ValueError(f"{missing}: expected an array of shape {(c,)} alongside the other running stat, got None")
    if running_mean is None:
        return None, None
    if update:
        for name, a in (("running_mean", running_mean), ("running_var", running_var)):
            if not isinstance(a, np.ndarray) or not is_floating(a.dtype):
                raise TypeError(f"{name}: expected a floating numpy.ndarray to update in place, got {type(a).__name__}")
            if not a.flags.writeable:
                raise ValueError(f"{name}: array is read-only and cannot be updated")
    return param(running_mean, "running_mean", (c,), F64), param(running_var, "running_var", (c,), F64)


def _update_running(running: Optional[ArrayLike], momentum: float, new: Array, scale: float = 1.0) -> None:
    """PyTorch's update: (1 - momentum) * old + momentum * (new * scale), in
    place (_core.update_running, as the fast lane)."""
    assert isinstance(running, np.ndarray)  # checked by _running_stats(update=True)
    _core.update_running(running, momentum, new, scale)


def batch_rstd(var: Array, eps: float) -> Array:
    """rstd of a variance the kernel computed, as the C engine applies it
    (cnorm_rstd in cnorm/_src/welford.h, called by _core.rstd_of, as the
    fast lane does): clamped at 0, then 1/sqrt(var + eps) in double
    (eps = 0 on a constant group: inf)."""
    return _core.rstd_of(var, eps)


def running_rstd(var: Array, eps: float) -> Array:
    """rstd of given running variances (cnorm_given_rstd): not clamped, so
    var + eps < 0 gives NaN and var + eps == 0 inf, as the forward does."""
    return _core.rstd_of(var, eps, True)


def _stats(comp: np.dtype[Any], shape: tuple[int, ...], mean: Array, rstd: Array) -> tuple[Array, Array]:
    """return_stats' (mean, rstd): float64 kernel statistics reshaped and
    in the statistics dtype (stats_dtype: float32 for float32/half)."""
    dt = stats_dtype(comp)
    return mean.reshape(shape).astype(dt, copy=False), rstd.reshape(shape).astype(dt, copy=False)


def _check_group_size(size: int, groups: int, what: str) -> None:
    if size == 0 and groups > 0:
        raise ValueError(f"x: cannot normalize over a size-0 {what}")


def _unaliased(yk: Array, *inputs: Optional[Array]) -> list[Optional[Array]]:
    """The inputs a kernel reads while writing yk, each copied if it shares
    memory with yk (_core.unaliased, the fast lane's rule too)."""
    return [_core.unaliased(p, yk) for p in inputs]


def _channel_call(x: Array, res: np.dtype[Any], form: ChannelForm, out: Optional[Array],
                  run: Callable[[Array], None], codes: Optional[np.dtype[Any]] = None) -> Array:
    """Common tail of the channel variants: choose where the kernel writes
    (int8/uint8 `codes` when quantized, then also the result dtype), run it
    (unless the result is empty), map the result back."""
    if codes is not None:
        res = codes
    if out is not None:
        check_out(out, x.shape, res)
    yk, direct = target(out, form.xk, form.out_view, form.xk.dtype if codes is None else codes)
    if form.xk.size:
        run(yk)
    return finish(yk, direct, form.to_x_axes, out, res)


@overload
def batch_norm(
    x: NDArray[FloatT], running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, training: bool = False,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[False] = False, activation: Activation = None,
) -> NDArray[FloatT]: ...
@overload  # float32/float16 before float64 (mypy infers x.astype(...) in its context)
def batch_norm(  # type: ignore[overload-overlap]
    x: NDArray[Single32T], running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, training: bool = False,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
) -> tuple[NDArray[Single32T], F32, F32]: ...
@overload
def batch_norm(
    x: NDArray[np.float64], running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, training: bool = False,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
) -> tuple[NDArray[np.float64], F64Array, F64Array]: ...
@overload
def batch_norm(
    x: ArrayLike, running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, training: bool = False,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[False] = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Array: ...
@overload
def batch_norm(
    x: ArrayLike, running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, training: bool = False,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> tuple[Array, Array, Array]: ...
@overload
def batch_norm(
    x: ArrayLike, running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, training: bool = False,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: bool = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array, Array]]: ...
def batch_norm(
    x: ArrayLike, running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, training: bool = False,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: bool = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array, Array]]:
    """Batch normalization: statistics per channel over every other axis.

    Parameters
    ----------
    x : array_like
        Input, at least 2-D: (N, C, ...) with the channel axis at `axis`.
        float32/float64 run natively, float16/bfloat16 in their own
        storage, integers and bools as float64.
    running_mean, running_var : ndarray of shape (C,), optional
        Running statistics.  Used when ``training=False`` (then both are
        required); updated in place when ``training=True``, as PyTorch does:
        ``(1 - momentum) * old + momentum * new`` with the unbiased batch
        variance.
    weight, bias : array_like of shape (C,), optional
        Affine parameters (gamma, beta).
    training : bool
        Use batch statistics (and update the running ones).
    momentum : float in [0, 1]
        Running-statistics update factor.
    eps : float >= 0
        Added to the variance.
    axis : int
        The channel axis: 1 for NCHW/NCL, -1 for channels-last.
    out : ndarray, optional
        Result array of x's shape and result dtype (may be x).
    return_stats : bool
        Also return the statistics used, for :func:`batch_norm_backward`:
        the batch mean and rstd in training (or without running stats),
        the running mean and ``1/sqrt(running_var + eps)`` otherwise.
    activation : {None, "relu", "silu", "gelu"}
        Applied in the same pass as the normalization.

    quantize : (scale, zero_point), optional
        Return int8/uint8 codes ``clip(round_half_even(y / scale +
        zero_point))`` of the result instead of y, fused into the apply
        (README, "int8 output"); bad values raise ValueError.
    out_dtype : numpy.int8 (the default) or numpy.uint8
        The codes' dtype, with quantize.

    Returns
    -------
    y : ndarray
        ``act((x - mean) / sqrt(var + eps) * weight + bias)``, x's shape,
        x's floating dtype and (for channels-last input) memory layout.
    mean, rstd : ndarray of shape (C,)
        Only with ``return_stats=True``: float32 for float32/half input,
        float64 for float64 (NaN for an empty batch in training).

    Raises
    ------
    ValueError
        Wrong shapes, missing running stats in eval mode, one value per
        channel in training, eps or momentum out of range, a bad axis or
        activation.
    TypeError
        Complex or object input, a bad `out` dtype.

    Examples
    --------
    >>> x = np.random.randn(8, 3, 4, 4).astype(np.float32)
    >>> rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    >>> y = cnorm.batch_norm(x, rm, rv, training=True)   # updates rm, rv
    >>> y = cnorm.batch_norm(x, rm, rv, activation="relu")  # inference
    """
    # the common calls, checked in Cython: inference, or batch stats (running stats
    # updated when they are float32/float64 arrays the kernel can take as they are)
    if quantize is None and out_dtype is None:
        y = _core.channel_norm_fast(_core.CHANNEL_BN_BATCH if training else _core.CHANNEL_BN_EVAL, x, axis,
                                    None, weight, bias, running_mean, running_var, eps, momentum, out,
                                    activation, return_stats)
        if y is not None:
            return y
    x, res, comp = as_input(x)
    quant, codes = check_quantize(quantize, out_dtype)
    eps = check_eps(eps)
    momentum = check_momentum(momentum)
    act = activation_code(activation)
    training = bool(training)
    form = ChannelForm(x, axis, comp, prefer_nhwc=True)
    c, count = form.c, form.n * form.s
    w = param(weight, "weight", (c,), weight_dtype(comp))
    b = param(bias, "bias", (c,), weight_dtype(comp))
    rm, rv = _running_stats(running_mean, running_var, c, update=training)
    if not training and rm is None:
        raise ValueError(f"running_mean: expected arrays of shape {(c,)} when training=False, got None "
                         "(pass training=True to use batch statistics)")
    if training and count == 1:
        raise ValueError(f"x: expected more than 1 value per channel when training, got shape {x.shape}")
    batch_mean = batch_var = None
    if training and (form.xk.size or return_stats):
        # an empty batch has no statistics: NaN, as np.mean of nothing
        batch_mean, batch_var = np.full(c, np.nan), np.full(c, np.nan)

    used = None
    if return_stats and not training:
        assert rm is not None and rv is not None  # required when not training
        # the running statistics used, taken before the kernel writes y (they may share its memory)
        used = _stats(comp, (c,), rm.copy(), running_rstd(rv, eps))

    def run(yk: Array) -> None:
        wk, bk, mk, vk = _unaliased(yk, w, b, None if training else rm, None if training else rv)
        _core.batch_norm(form.xk, yk, form.n, c, form.s, form.nhwc, wk, bk, eps, mk, vk,
                         batch_mean, batch_var, act, quant)

    y = _channel_call(x, res, form, out, run, codes)
    if training and rm is not None and batch_mean is not None and batch_var is not None and form.xk.size:
        _update_running(running_mean, momentum, batch_mean)
        _update_running(running_var, momentum, batch_var, count / (count - 1))
    if not return_stats:
        return y
    if used is not None:
        return (y,) + used
    assert batch_mean is not None and batch_var is not None  # allocated for return_stats
    return (y,) + _stats(comp, (c,), batch_mean, batch_rstd(batch_var, eps))


@overload
def instance_norm(
    x: NDArray[FloatT], running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, use_input_stats: bool = True,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[False] = False, activation: Activation = None,
) -> NDArray[FloatT]: ...
@overload  # float32/float16 before float64 (mypy infers x.astype(...) in its context)
def instance_norm(  # type: ignore[overload-overlap]
    x: NDArray[Single32T], running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, use_input_stats: bool = True,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
) -> tuple[NDArray[Single32T], F32, F32]: ...
@overload
def instance_norm(
    x: NDArray[np.float64], running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, use_input_stats: bool = True,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
) -> tuple[NDArray[np.float64], F64Array, F64Array]: ...
@overload
def instance_norm(
    x: ArrayLike, running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, use_input_stats: bool = True,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[False] = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Array: ...
@overload
def instance_norm(
    x: ArrayLike, running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, use_input_stats: bool = True,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> tuple[Array, Array, Array]: ...
@overload
def instance_norm(
    x: ArrayLike, running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, use_input_stats: bool = True,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: bool = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array, Array]]: ...
def instance_norm(
    x: ArrayLike, running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
    weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, use_input_stats: bool = True,
    momentum: float = 0.1, eps: float = 1e-5, *, axis: SupportsIndex = 1, out: Optional[Array] = None,
    return_stats: bool = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array, Array]]:
    """Instance normalization: statistics per (sample, channel) over the
    spatial axes.

    Parameters
    ----------
    x : array_like
        Input, at least 2-D: (N, C, ...) with the channel axis at `axis`.
        float32/float64 run natively, float16/bfloat16 in their own
        storage, integers and bools as float64. Axis 0 is the batch axis.
    running_mean, running_var : ndarray of shape (C,), optional
        With ``use_input_stats=True`` they are updated in place as PyTorch
        does (averaged over the batch); with ``use_input_stats=False``
        they are used instead of the input statistics.
    weight, bias : array_like of shape (C,), optional
    use_input_stats : bool
    momentum : float in [0, 1]
    eps : float >= 0
    axis : int
        The channel axis (not 0).
    out : ndarray, optional
    return_stats : bool
        Also return the statistics used (float32 for float32/half input,
        float64 for float64): with input statistics the per-instance mean
        and rstd of shape (N, C), for :func:`instance_norm_backward`; with
        ``use_input_stats=False`` the running mean and
        ``1/sqrt(running_var + eps)`` of shape (C,), constants for
        ``batch_norm_backward(..., training=False)``.
    activation : {None, "relu", "silu", "gelu"}

    quantize : (scale, zero_point), optional
        Return int8/uint8 codes ``clip(round_half_even(y / scale +
        zero_point))`` of the result instead of y, fused into the apply
        (README, "int8 output"); bad values raise ValueError.
    out_dtype : numpy.int8 (the default) or numpy.uint8
        The codes' dtype, with quantize.

    Returns
    -------
    y : ndarray
        The normalized array, x's shape, dtype and memory layout.
    mean, rstd : ndarray
        Only with ``return_stats=True``.

    Raises
    ------
    ValueError
        As :func:`batch_norm`; also a single spatial value with input
        statistics.

    Examples
    --------
    >>> y = cnorm.instance_norm(np.random.randn(2, 3, 8, 8), activation="silu")
    """
    if use_input_stats and running_mean is None and running_var is None and quantize is None and out_dtype is None:
        # checked in Cython
        y = _core.channel_norm_fast(_core.CHANNEL_IN, x, axis, None, weight, bias, None, None, eps,
                                    momentum, out, activation, return_stats)
        if y is not None:
            return y
    x, res, comp = as_input(x)
    quant, codes = check_quantize(quantize, out_dtype)
    eps = check_eps(eps)
    momentum = check_momentum(momentum)
    act = activation_code(activation)
    use_input_stats = bool(use_input_stats)
    form = ChannelForm(x, axis, comp, batch_axis_ok=False)
    n, c, s = form.n, form.c, form.s
    w = param(weight, "weight", (c,), weight_dtype(comp))
    b = param(bias, "bias", (c,), weight_dtype(comp))
    rm, rv = _running_stats(running_mean, running_var, c, update=use_input_stats)
    if not use_input_stats:
        if rm is None:
            raise ValueError(f"running_mean: expected arrays of shape {(c,)} when use_input_stats=False, got None")

        assert rv is not None  # given with rm (_running_stats)
        # the running statistics used, taken before the kernel writes y (they may share its memory)
        used = _stats(comp, (c,), rm.copy(), running_rstd(rv, eps)) if return_stats else None

        def run_with_running(yk: Array) -> None:
            wk, bk, mk, vk = _unaliased(yk, w, b, rm, rv)
            _core.batch_norm(form.xk, yk, n, c, s, form.nhwc, wk, bk, eps, mk, vk, None, None, act, quant)

        y = _channel_call(x, res, form, out, run_with_running, codes)
        return y if used is None else (y,) + used
    _check_group_size(s, n * c, "spatial extent")
    if s == 1 and n * c > 0:
        raise ValueError(f"x: expected more than 1 spatial element when using input stats, got shape {x.shape}")
    mean = var = None
    if (rm is not None and form.xk.size) or return_stats:
        mean, var = np.empty(n * c, F64), np.empty(n * c, F64)

    def run(yk: Array) -> None:
        wk, bk = _unaliased(yk, w, b)
        _core.group_norm(form.xk, yk, n, c, s, c, form.nhwc, wk, bk, eps, mean, var, act, quant)

    y = _channel_call(x, res, form, out, run, codes)
    if rm is not None and mean is not None and var is not None and form.xk.size:
        _update_running(running_mean, momentum, mean.reshape(n, c).mean(axis=0))
        _update_running(running_var, momentum, var.reshape(n, c).mean(axis=0), s / (s - 1))
    if not return_stats:
        return y
    assert mean is not None and var is not None  # allocated for return_stats
    return (y,) + _stats(comp, (n, c), mean, batch_rstd(var, eps))


@overload
def group_norm(
    x: NDArray[FloatT], num_groups: SupportsIndex, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, axis: SupportsIndex = 1,
    out: Optional[Array] = None,
    return_stats: Literal[False] = False, activation: Activation = None,
) -> NDArray[FloatT]: ...
@overload  # float32/float16 before float64 (mypy infers x.astype(...) in its context)
def group_norm(  # type: ignore[overload-overlap]
    x: NDArray[Single32T], num_groups: SupportsIndex, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, axis: SupportsIndex = 1,
    out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
) -> tuple[NDArray[Single32T], F32, F32]: ...
@overload
def group_norm(
    x: NDArray[np.float64], num_groups: SupportsIndex, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, axis: SupportsIndex = 1,
    out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
) -> tuple[NDArray[np.float64], F64Array, F64Array]: ...
@overload
def group_norm(
    x: ArrayLike, num_groups: SupportsIndex, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, axis: SupportsIndex = 1,
    out: Optional[Array] = None,
    return_stats: Literal[False] = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Array: ...
@overload
def group_norm(
    x: ArrayLike, num_groups: SupportsIndex, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, axis: SupportsIndex = 1,
    out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> tuple[Array, Array, Array]: ...
@overload
def group_norm(
    x: ArrayLike, num_groups: SupportsIndex, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, axis: SupportsIndex = 1,
    out: Optional[Array] = None,
    return_stats: bool = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array, Array]]: ...
def group_norm(
    x: ArrayLike, num_groups: SupportsIndex, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, axis: SupportsIndex = 1,
    out: Optional[Array] = None,
    return_stats: bool = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array, Array]]:
    """Group normalization: statistics per (sample, group of C/num_groups
    consecutive channels); weight and bias are per channel.

    Parameters
    ----------
    x : array_like
        Input, at least 2-D: (N, C, ...) with the channel axis at `axis`.
        float32/float64 run natively, float16/bfloat16 in their own
        storage, integers and bools as float64. Axis 0 is the batch axis.
    num_groups : int
        Must divide the number of channels.
    weight, bias : array_like of shape (C,), optional
    eps : float >= 0
    axis : int
        The channel axis (not 0).
    out : ndarray, optional
    return_stats : bool
        Also return the per-(sample, group) mean and rstd of shape (N, G),
        for :func:`group_norm_backward` (float32 for float32/half input,
        float64 for float64).
    activation : {None, "relu", "silu", "gelu"}

    quantize : (scale, zero_point), optional
        Return int8/uint8 codes ``clip(round_half_even(y / scale +
        zero_point))`` of the result instead of y, fused into the apply
        (README, "int8 output"); bad values raise ValueError.
    out_dtype : numpy.int8 (the default) or numpy.uint8
        The codes' dtype, with quantize.

    Returns
    -------
    y : ndarray
        The normalized array, x's shape, dtype and memory layout.
    mean, rstd : ndarray of shape (N, G)
        Only with ``return_stats=True``.

    Raises
    ------
    ValueError
        num_groups not dividing C, wrong parameter shapes, a bad eps, axis or
        activation, a size-0 group.

    Examples
    --------
    >>> y = cnorm.group_norm(np.random.randn(2, 32, 8, 8), 8, activation="silu")
    """
    if quantize is None and out_dtype is None:  # the common call, checked in Cython
        y = _core.channel_norm_fast(_core.CHANNEL_GN, x, axis, num_groups, weight, bias, None, None, eps, 0.0,
                                    out, activation, return_stats)
        if y is not None:
            return y
    x, res, comp = as_input(x)
    quant, codes = check_quantize(quantize, out_dtype)
    eps = check_eps(eps)
    act = activation_code(activation)
    form = ChannelForm(x, axis, comp, batch_axis_ok=False)
    n, c, s = form.n, form.c, form.s
    g = check_int(num_groups, "num_groups", 1)
    if c % g:
        raise ValueError(f"num_groups: expected a divisor of the number of channels {c}, got {g}")
    w = param(weight, "weight", (c,), weight_dtype(comp))
    b = param(bias, "bias", (c,), weight_dtype(comp))
    _check_group_size((c // g) * s, n * g, "group")
    mean = var = None
    if return_stats:
        mean, var = np.empty(n * g, F64), np.empty(n * g, F64)

    def run(yk: Array) -> None:
        wk, bk = _unaliased(yk, w, b)
        _core.group_norm(form.xk, yk, n, c, s, g, form.nhwc, wk, bk, eps, mean, var, act, quant)

    y = _channel_call(x, res, form, out, run, codes)
    if mean is None or var is None:
        return y
    return (y,) + _stats(comp, (n, g), mean, batch_rstd(var, eps))


def _rows_setup(x: Array, normalized_shape: ShapeLike, res: np.dtype[Any],
                out: Optional[Array]) -> tuple[tuple[int, ...], int, int]:
    ns = normalized_shape_tuple(normalized_shape, x.shape)
    rows = math.prod(x.shape[: x.ndim - len(ns)])
    cols = math.prod(ns)
    _check_group_size(cols, rows, "normalized_shape")
    if out is not None:
        check_out(out, x.shape, res)
    return ns, rows, cols


def stats_shape(x_shape: tuple[int, ...], ns: tuple[int, ...]) -> tuple[int, ...]:
    """The saved statistics' shape of layer/RMS norm: x.shape[:-k] + (1,)*k."""
    return x_shape[: len(x_shape) - len(ns)] + (1,) * len(ns)


def _row_target(x: Array, comp: np.dtype[Any], out: Optional[Array],
                codes: Optional[np.dtype[Any]] = None) -> tuple[Array, Array, bool]:
    """x flat for the kernel, and where it writes (int8/uint8 `codes`, quantized)."""
    xk = plain(x, comp).reshape(-1)
    yk, direct = target(out, xk, lambda o: o, comp if codes is None else codes)
    return xk, yk, direct


@overload
def layer_norm(
    x: NDArray[FloatT], normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, out: Optional[Array] = None,
    return_stats: Literal[False] = False, activation: Activation = None,
) -> NDArray[FloatT]: ...
@overload  # float32/float16 before float64 (mypy infers x.astype(...) in its context)
def layer_norm(  # type: ignore[overload-overlap]
    x: NDArray[Single32T], normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
) -> tuple[NDArray[Single32T], F32, F32]: ...
@overload
def layer_norm(
    x: NDArray[np.float64], normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
) -> tuple[NDArray[np.float64], F64Array, F64Array]: ...
@overload
def layer_norm(
    x: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, out: Optional[Array] = None,
    return_stats: Literal[False] = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Array: ...
@overload
def layer_norm(
    x: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, out: Optional[Array] = None,
    return_stats: Literal[True], activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> tuple[Array, Array, Array]: ...
@overload
def layer_norm(
    x: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, out: Optional[Array] = None,
    return_stats: bool = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array, Array]]: ...
def layer_norm(
    x: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, out: Optional[Array] = None,
    return_stats: bool = False, activation: Activation = None,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array, Array]]:
    """Layer normalization over the trailing dims named by `normalized_shape`.

    Parameters
    ----------
    x : array_like
        Input whose trailing dims equal `normalized_shape`.
    normalized_shape : int or tuple of int
    weight, bias : array_like of shape normalized_shape, optional
    eps : float >= 0
    out : ndarray, optional
        Result array of x's shape and dtype (may be x).
    return_stats : bool
        Also return mean and rstd, shaped ``x.shape[:-k] + (1,) * k`` (as
        ONNX LayerNormalization), for :func:`layer_norm_backward`: float32
        for float32/half input, float64 for float64.
    activation : {None, "relu", "silu", "gelu"}

    quantize : (scale, zero_point), optional
        Return int8/uint8 codes ``clip(round_half_even(y / scale +
        zero_point))`` of the result instead of y, fused into the apply
        (README, "int8 output"); bad values raise ValueError.
    out_dtype : numpy.int8 (the default) or numpy.uint8
        The codes' dtype, with quantize.

    Returns
    -------
    y : ndarray
    mean, rstd : ndarray
        Only with ``return_stats=True``.

    Raises
    ------
    ValueError
        normalized_shape not matching x, wrong parameter shapes, bad eps or
        activation, a size-0 normalized shape.

    Examples
    --------
    >>> h = np.random.randn(4, 16, 768).astype(np.float32)
    >>> y = cnorm.layer_norm(h, 768)
    >>> y, mean, rstd = cnorm.layer_norm(h, 768, return_stats=True)
    """
    if quantize is None and out_dtype is None:
        y = _core.layer_norm_fast(x, normalized_shape, weight, bias, eps, out, activation, return_stats)
        if y is not None:  # every argument was plain: the kernel ran
            return y
    x, res, comp = as_input(x)
    quant, codes = check_quantize(quantize, out_dtype)
    if codes is not None:
        res = codes
    ns, rows, cols = _rows_setup(x, normalized_shape, res, out)
    eps = check_eps(eps)
    act = activation_code(activation)
    w = param(weight, "weight", ns, weight_dtype(comp))
    b = param(bias, "bias", ns, weight_dtype(comp))
    xk, yk, direct = _row_target(x, comp, out, codes)
    mean = rstd = None
    if return_stats:
        mean, rstd = np.empty(rows, F64), np.empty(rows, F64)
    if xk.size:
        w, b = _unaliased(yk, w, b)
        _core.layer_norm(xk, yk, rows, cols, w, b, eps, mean, rstd, act, quant)
    y = finish(yk, direct, lambda a: a.reshape(x.shape), out, res)
    if not return_stats:
        return y
    assert mean is not None and rstd is not None  # allocated above for return_stats
    return (y,) + _stats(comp, stats_shape(x.shape, ns), mean, rstd)


@overload
def rms_norm(
    x: NDArray[FloatT], normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    eps: Optional[float] = None, *, out: Optional[Array] = None,
    return_stats: Literal[False] = False,
) -> NDArray[FloatT]: ...
@overload  # float32/float16 before float64 (mypy infers x.astype(...) in its context)
def rms_norm(  # type: ignore[overload-overlap]
    x: NDArray[Single32T], normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    eps: Optional[float] = None, *, out: Optional[Array] = None,
    return_stats: Literal[True],
) -> tuple[NDArray[Single32T], F32]: ...
@overload
def rms_norm(
    x: NDArray[np.float64], normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    eps: Optional[float] = None, *, out: Optional[Array] = None,
    return_stats: Literal[True],
) -> tuple[NDArray[np.float64], F64Array]: ...
@overload
def rms_norm(
    x: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    eps: Optional[float] = None, *, out: Optional[Array] = None,
    return_stats: Literal[False] = False,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Array: ...
@overload
def rms_norm(
    x: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    eps: Optional[float] = None, *, out: Optional[Array] = None,
    return_stats: Literal[True],
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> tuple[Array, Array]: ...
@overload
def rms_norm(
    x: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    eps: Optional[float] = None, *, out: Optional[Array] = None,
    return_stats: bool = False,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array]]: ...
def rms_norm(
    x: ArrayLike, normalized_shape: ShapeLike, weight: Optional[ArrayLike] = None,
    eps: Optional[float] = None, *, out: Optional[Array] = None,
    return_stats: bool = False,
    quantize: Optional[tuple[float, int]] = None, out_dtype: Optional[DTypeLike] = None,
) -> Union[Array, tuple[Array, Array]]:
    """RMS normalization: ``x * weight / sqrt(mean(x**2) + eps)`` over the
    trailing dims named by `normalized_shape`.

    Parameters
    ----------
    x : array_like
    normalized_shape : int or tuple of int
    weight : array_like of shape normalized_shape, optional
    eps : float >= 0 or None
        None means ``np.finfo(dtype).eps`` of the result dtype, as PyTorch.
    out : ndarray, optional
    return_stats : bool
        Also return rstd ``1/sqrt(mean(x**2) + eps)``, shaped
        ``x.shape[:-k] + (1,) * k``, for :func:`rms_norm_backward`
        (float32 for float32/half input, float64 for float64).

    quantize : (scale, zero_point), optional
        Return int8/uint8 codes ``clip(round_half_even(y / scale +
        zero_point))`` of the result instead of y, fused into the apply
        (README, "int8 output"); bad values raise ValueError.
    out_dtype : numpy.int8 (the default) or numpy.uint8
        The codes' dtype, with quantize.

    Returns
    -------
    y : ndarray
    rstd : ndarray
        Only with ``return_stats=True``.

    Examples
    --------
    >>> y = cnorm.rms_norm(np.random.randn(4, 768).astype(np.float32), 768)
    """
    if quantize is None and out_dtype is None:
        y = _core.rms_norm_fast(x, normalized_shape, weight, eps, out, return_stats)
        if y is not None:  # every argument was plain: the kernel ran
            return y
    x, res, comp = as_input(x)
    quant, codes = check_quantize(quantize, out_dtype)
    eps = default_eps(res) if eps is None else check_eps(eps)  # x's result dtype, also when quantized
    if codes is not None:
        res = codes
    ns, rows, cols = _rows_setup(x, normalized_shape, res, out)
    w = param(weight, "weight", ns, weight_dtype(comp))
    xk, yk, direct = _row_target(x, comp, out, codes)
    rstd = np.empty(rows, F64) if return_stats else None
    if xk.size:
        (w,) = _unaliased(yk, w)
        _core.rms_norm(xk, yk, rows, cols, w, eps, rstd, quant)
    y = finish(yk, direct, lambda a: a.reshape(x.shape), out, res)
    if rstd is None:
        return y
    return y, rstd.reshape(stats_shape(x.shape, ns)).astype(stats_dtype(comp), copy=False)


@overload
def fold_batch_norm(
    conv_weight: NDArray[FloatT], conv_bias: Optional[ArrayLike], running_mean: ArrayLike, running_var: ArrayLike,
    weight: Optional[ArrayLike], bias: Optional[ArrayLike], eps: float = 1e-5,
) -> tuple[NDArray[FloatT], NDArray[FloatT]]: ...
@overload
def fold_batch_norm(
    conv_weight: ArrayLike, conv_bias: Optional[ArrayLike], running_mean: ArrayLike, running_var: ArrayLike,
    weight: Optional[ArrayLike], bias: Optional[ArrayLike], eps: float = 1e-5,
) -> tuple[Array, Array]: ...
def fold_batch_norm(
    conv_weight: ArrayLike, conv_bias: Optional[ArrayLike], running_mean: ArrayLike, running_var: ArrayLike,
    weight: Optional[ArrayLike], bias: Optional[ArrayLike], eps: float = 1e-5,
) -> tuple[Array, Array]:
    """Fold an inference batch norm into the convolution before it.

    The result is one convolution equal to conv followed by batch norm:
    ``w' = w * s`` and ``b' = (b - mean) * s + beta`` with
    ``s = gamma / sqrt(var + eps)`` per output channel.

    Parameters
    ----------
    conv_weight : array_like of shape (C_out, ...)
    conv_bias : array_like of shape (C_out,) or None
    running_mean, running_var : array_like of shape (C_out,)
    weight, bias : array_like of shape (C_out,) or None
        The batch norm's gamma and beta (None: 1 and 0).
    eps : float >= 0

    Returns
    -------
    weight, bias : ndarray
        Of conv_weight's shape and floating dtype, and (C_out,).

    Examples
    --------
    >>> w, b = cnorm.fold_batch_norm(conv_w, None, bn_mean, bn_var, bn_gamma, bn_beta)
    """
    r = _core.fold_batch_norm_fast(conv_weight, conv_bias, running_mean, running_var, weight, bias, eps)
    if r is not None:  # every argument was plain: the kernel ran
        return r
    cw, res, _ = as_input(conv_weight, "conv_weight")
    if cw.ndim < 1:
        raise ValueError(f"conv_weight: expected at least 1 dim (C_out, ...), got shape {cw.shape}")
    eps = check_eps(eps)
    c_out = cw.shape[0]
    per_out = cw.size // c_out if c_out else 0
    shape = (c_out,)
    cb = param(conv_bias, "conv_bias", shape, F64)
    rm = param(running_mean, "running_mean", shape, F64)
    rv = param(running_var, "running_var", shape, F64)
    if rm is None or rv is None:
        raise ValueError(f"running_mean: expected arrays of shape {shape} for running_mean and running_var, got None")
    g = param(weight, "weight", shape, F64)
    be = param(bias, "bias", shape, F64)
    w_out, b_out = _core.fold_batch_norm(plain(cw, F64).reshape(-1), cb, c_out, per_out, rm, rv, g, be, eps)
    return w_out.reshape(cw.shape).astype(res), b_out.astype(res)
