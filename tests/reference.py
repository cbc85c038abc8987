"""Slow, obviously-correct float64 reference for every cnorm function.

Mirrors the public API one to one (same positional arguments and keywords),
computes in float64 with a two-pass mean/variance, and returns float64
arrays.  Running stats passed in are updated in place like cnorm does.
Argument validation is not mirrored: tests/test_errors.py covers it.
"""
import math

import numpy as np


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def _stats(x, axes):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return mean, var


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _activate(y, activation):
    if activation is None:
        return y
    if activation == "relu":
        return np.maximum(y, 0.0)
    if activation == "silu":
        with np.errstate(over="ignore"):  # exp(-y) = inf for y << 0: silu -> -0
            return y / (1.0 + np.exp(-y))
    if activation == "gelu":
        return 0.5 * y * (1.0 + _erf(y / math.sqrt(2.0)))
    raise ValueError(activation)


def _channel_shape(ndim, axis):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return shape


def _affine(y, weight, bias, shape):
    if weight is not None:
        y = y * _f64(weight).reshape(shape)
    if bias is not None:
        y = y + _f64(bias).reshape(shape)
    return y


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5, *, axis=1, activation=None):
    x = _f64(x)
    ax = axis % x.ndim
    shape = _channel_shape(x.ndim, ax)
    axes = tuple(a for a in range(x.ndim) if a != ax)
    if training:
        mean, var = _stats(x, axes)
        count = x.size // x.shape[ax]
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean.reshape(-1)
            running_var[...] = (1 - momentum) * running_var + momentum * var.reshape(-1) * count / (count - 1)
    else:
        mean = _f64(running_mean).reshape(shape)
        var = _f64(running_var).reshape(shape)
    y = (x - mean) / np.sqrt(var + eps)
    return _activate(_affine(y, weight, bias, shape), activation)


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5, *, axis=1, activation=None):
    x = _f64(x)
    ax = axis % x.ndim
    shape = _channel_shape(x.ndim, ax)
    if not use_input_stats:
        return batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps, axis=ax,
                          activation=activation)
    axes = tuple(a for a in range(1, x.ndim) if a != ax)
    mean, var = _stats(x, axes)
    if running_mean is not None:
        s = np.prod([x.shape[a] for a in axes])
        m = np.moveaxis(mean, ax, 1).reshape(x.shape[0], -1).mean(axis=0)
        v = np.moveaxis(var, ax, 1).reshape(x.shape[0], -1).mean(axis=0) * s / (s - 1)
        running_mean[...] = (1 - momentum) * running_mean + momentum * m
        running_var[...] = (1 - momentum) * running_var + momentum * v
    y = (x - mean) / np.sqrt(var + eps)
    return _activate(_affine(y, weight, bias, shape), activation)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, axis=1, activation=None):
    x = _f64(x)
    ax = axis % x.ndim
    xc = np.moveaxis(x, ax, 1)
    n, c = xc.shape[:2]
    g = xc.reshape(n, num_groups, -1)
    mean, var = _stats(g, (2,))
    y = ((g - mean) / np.sqrt(var + eps)).reshape(xc.shape)
    y = _affine(y, weight, bias, _channel_shape(xc.ndim, 1))
    return _activate(np.moveaxis(y, 1, ax), activation)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, return_stats=False,
               activation=None):
    x = _f64(x)
    k = 1 if np.ndim(normalized_shape) == 0 else len(normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    mean, var = _stats(x, axes)
    rstd = 1.0 / np.sqrt(var + eps)
    y = (x - mean) * rstd
    if weight is not None:
        y = y * _f64(weight)
    if bias is not None:
        y = y + _f64(bias)
    y = _activate(y, activation)
    return (y, mean, rstd) if return_stats else y


def rms_norm(x, normalized_shape, weight=None, eps=None):
    x_in, x = x, _f64(x)
    k = 1 if np.ndim(normalized_shape) == 0 else len(normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    if eps is None:  # the input's own eps, as PyTorch (float64 for integers)
        dt = np.asarray(x_in).dtype
        eps = float(np.finfo(dt if dt.kind == "f" else np.float64).eps)
    y = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    return y if weight is None else y * _f64(weight)


def moments(x, axis=None, *, ddof=0, keepdims=False):
    x = _f64(x)
    mean = x.mean(axis=axis, keepdims=True)
    n = x.size // max(mean.size, 1) if x.size else 0
    var = ((x - mean) ** 2).sum(axis=axis, keepdims=True) / (n - ddof)
    if not keepdims:
        mean = np.squeeze(mean, axis=axis) if axis is not None else mean.reshape(())
        var = np.squeeze(var, axis=axis) if axis is not None else var.reshape(())
    return mean, var


def fold_batch_norm(conv_weight, conv_bias, running_mean, running_var, weight, bias, eps=1e-5):
    w = _f64(conv_weight)
    c_out = w.shape[0]
    s = (np.ones(c_out) if weight is None else _f64(weight)) / np.sqrt(_f64(running_var) + eps)
    b = np.zeros(c_out) if conv_bias is None else _f64(conv_bias)
    beta = np.zeros(c_out) if bias is None else _f64(bias)
    return w * s.reshape((-1,) + (1,) * (w.ndim - 1)), (b - _f64(running_mean)) * s + beta
