"""The normalization functions.  Positional arguments follow
torch.nn.functional; NumPy-style keywords come after `*`."""
import math

import numpy as np

from . import _core, _kernels
from ._checks import (
    F64,
    as_input,
    check_eps,
    check_int,
    check_momentum,
    check_out,
    is_floating,
    normalized_shape_tuple,
    param,
)
from ._kernels import activation_code, weight_dtype
from ._layout import ChannelForm, finish, target

__all__ = ["batch_norm", "instance_norm", "group_norm", "layer_norm", "rms_norm", "fold_batch_norm"]


def _running_stats(running_mean, running_var, c, update):
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


def _update_running(running, momentum, new):
    """PyTorch's update: (1 - momentum) * old + momentum * new, in place."""
    running[...] = (1.0 - momentum) * running.astype(F64) + momentum * new


def _check_group_size(size, groups, what):
    if size == 0 and groups > 0:
        raise ValueError(f"x: cannot normalize over a size-0 {what}")


def _channel_call(x, res, form, out, run):
    """Common tail of the channel variants: choose where the kernel writes,
    run it (unless the result is empty), map the result back."""
    if out is not None:
        check_out(out, x.shape, res)
    yk, direct = target(out, form.xk, form.out_view, form.xk.dtype)
    if form.xk.size:
        run(yk)
    return finish(yk, direct, form.to_x_axes, out, res)


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5, *, axis=1, out=None, activation=None):
    """Batch normalization: statistics per channel over every other axis.

    ``training=True`` uses batch statistics and, when running stats are
    given, updates them in place as PyTorch does (the new variance
    unbiased).  ``training=False`` uses the running stats, which are then
    required.  ``axis`` is the channel axis (1 for NCHW, -1 for NHWC).
    ``activation`` ("relu", "silu", "gelu") is fused into the apply step.
    """
    # the common calls, checked in Cython: inference, or batch stats without running stats
    if not training or (running_mean is None and running_var is None):
        y = _core.channel_norm_fast(_core.CHANNEL_BN_BATCH if training else _core.CHANNEL_BN_EVAL, x, axis,
                                    None, weight, bias, running_mean, running_var, eps, momentum, out,
                                    activation)
        if y is not None:
            return y
    x, res, comp = as_input(x)
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
    if training and form.xk.size:
        batch_mean, batch_var = np.empty(c, F64), np.empty(c, F64)

    def run(yk):
        _kernels.run("batch_norm", comp, form.xk, yk, form.n, c, form.s, form.nhwc, w, b, eps,
                     None if training else rm, None if training else rv, batch_mean, batch_var, act)

    y = _channel_call(x, res, form, out, run)
    if training and rm is not None and batch_mean is not None:
        _update_running(running_mean, momentum, batch_mean)
        _update_running(running_var, momentum, batch_var * (count / (count - 1)))
    return y


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5, *, axis=1, out=None,
                  activation=None):
    """Instance normalization: statistics per (sample, channel) over the
    spatial axes.  With running stats and ``use_input_stats=True`` they are
    updated as PyTorch does; ``use_input_stats=False`` uses them instead.
    ``activation`` ("relu", "silu", "gelu") is fused into the apply step."""
    if use_input_stats and running_mean is None and running_var is None:  # checked in Cython
        y = _core.channel_norm_fast(_core.CHANNEL_IN, x, axis, None, weight, bias, None, None, eps,
                                    momentum, out, activation)
        if y is not None:
            return y
    x, res, comp = as_input(x)
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

        def run(yk):
            _kernels.run("batch_norm", comp, form.xk, yk, n, c, s, form.nhwc, w, b, eps, rm, rv, None, None, act)

        return _channel_call(x, res, form, out, run)
    _check_group_size(s, n * c, "spatial extent")
    if s == 1 and n * c > 0:
        raise ValueError(f"x: expected more than 1 spatial element when using input stats, got shape {x.shape}")
    mean = var = None
    if rm is not None and form.xk.size:
        mean, var = np.empty(n * c, F64), np.empty(n * c, F64)

    def run(yk):
        _kernels.run("group_norm", comp, form.xk, yk, n, c, s, c, form.nhwc, w, b, eps, mean, var, act)

    y = _channel_call(x, res, form, out, run)
    if mean is not None:
        _update_running(running_mean, momentum, mean.reshape(n, c).mean(axis=0))
        _update_running(running_var, momentum, var.reshape(n, c).mean(axis=0) * (s / (s - 1)))
    return y


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, axis=1, out=None,
               activation=None):
    """Group normalization: statistics per (sample, group of consecutive
    channels); weight and bias are per channel.  ``activation`` ("relu",
    "silu", "gelu") is fused into the apply step."""
    y = _core.channel_norm_fast(_core.CHANNEL_GN, x, axis, num_groups, weight, bias, None, None, eps, 0.0,
                                out, activation)  # the common call, checked in Cython
    if y is not None:
        return y
    x, res, comp = as_input(x)
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

    def run(yk):
        _kernels.run("group_norm", comp, form.xk, yk, n, c, s, g, form.nhwc, w, b, eps, None, None, act)

    return _channel_call(x, res, form, out, run)


def _rows_setup(x, normalized_shape, res, out):
    ns = normalized_shape_tuple(normalized_shape, x.shape)
    rows = math.prod(x.shape[: x.ndim - len(ns)])
    cols = math.prod(ns)
    _check_group_size(cols, rows, "normalized_shape")
    if out is not None:
        check_out(out, x.shape, res)
    return ns, rows, cols


def _row_target(x, comp, out):
    xk = np.ascontiguousarray(x, dtype=comp).reshape(-1)
    yk, direct = target(out, xk, lambda o: o, comp)
    return xk, yk, direct


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, out=None,
               return_stats=False, activation=None):
    """Layer normalization over the trailing dims named by
    ``normalized_shape``; weight and bias have that shape.

    ``return_stats=True`` returns ``(y, mean, rstd)`` with mean and rstd
    shaped ``x.shape[:-k] + (1,) * k`` (as ONNX LayerNormalization).
    ``activation`` ("relu", "silu", "gelu") is fused into the apply step.
    """
    if not return_stats and activation is None:  # the common small call, checked in Cython
        y = _core.layer_norm_fast(x, normalized_shape, weight, bias, eps, out)
        if y is not None:
            return y
    x, res, comp = as_input(x)
    ns, rows, cols = _rows_setup(x, normalized_shape, res, out)
    eps = check_eps(eps)
    act = activation_code(activation)
    w = param(weight, "weight", ns, weight_dtype(comp))
    b = param(bias, "bias", ns, weight_dtype(comp))
    xk, yk, direct = _row_target(x, comp, out)
    mean = rstd = None
    if return_stats:
        mean, rstd = np.empty(rows, F64), np.empty(rows, F64)
    if xk.size:
        _kernels.run("layer_norm", comp, xk, yk, rows, cols, w, b, eps, mean, rstd, act)
    y = finish(yk, direct, lambda a: a.reshape(x.shape), out, res)
    if not return_stats:
        return y
    stat_shape = x.shape[: x.ndim - len(ns)] + (1,) * len(ns)
    return y, mean.reshape(stat_shape).astype(res), rstd.reshape(stat_shape).astype(res)


def rms_norm(x, normalized_shape, weight=None, eps=None, *, out=None):
    """RMS normalization: ``x * weight / sqrt(mean(x**2) + eps)`` over the
    trailing dims; ``eps=None`` means ``np.finfo(dtype).eps`` (as PyTorch)."""
    x, res, comp = as_input(x)
    ns, rows, cols = _rows_setup(x, normalized_shape, res, out)
    eps = float(_finfo_eps(res)) if eps is None else check_eps(eps)
    w = param(weight, "weight", ns, weight_dtype(comp))
    xk, yk, direct = _row_target(x, comp, out)
    if xk.size:
        _kernels.run("rms_norm", comp, xk, yk, rows, cols, w, eps)
    return finish(yk, direct, lambda a: a.reshape(x.shape), out, res)


def _finfo_eps(dt):
    try:
        return np.finfo(dt).eps
    except ValueError:  # bfloat16: ml_dtypes has its own finfo
        import ml_dtypes

        return ml_dtypes.finfo(dt).eps


def fold_batch_norm(conv_weight, conv_bias, running_mean, running_var, weight, bias, eps=1e-5):
    """Fold an inference batch norm into the convolution before it.

    ``conv_weight`` has the output channels first (any shape ``(C_out,
    ...)``); ``conv_bias`` (C_out,) may be None.  Returns ``(weight,
    bias)`` of a convolution equal to conv followed by batch norm:
    ``w * s`` and ``(b - mean) * s + beta`` with ``s = gamma / sqrt(var +
    eps)``.  weight/bias (gamma/beta) may be None.  Results have
    conv_weight's floating dtype.
    """
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
    w_out, b_out = np.empty(cw.size, F64), np.empty(c_out, F64)
    if c_out:
        _core.fold_batch_norm(np.ascontiguousarray(cw, dtype=F64).reshape(-1), cb, c_out, per_out,
                              rm, rv, g, be, eps, w_out, b_out)
    return w_out.reshape(cw.shape).astype(res), b_out.astype(res)
