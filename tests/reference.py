"""Slow, obviously-correct float64 reference for every cnorm function.

Mirrors the public API one to one (same positional arguments and keywords),
computes in float64 with a two-pass mean/variance, and returns float64
arrays.  Running stats passed in are updated in place like cnorm does.
Argument validation is not mirrored: tests/test_errors.py covers it.

The backward functions (`*_backward`) do not write down a gradient formula:
they differentiate the forward functions above by the complex step,
dL/dp = Im(L(p + i*h)) / h with L = sum(grad_out * y), which has no
cancellation (no difference of two values) and a truncation error of order
h**2, so with h = 1e-20 it is exact to float64 rounding.  The forwards are
written with complex-analytic operations only (no abs, no max), so they
take complex input as they are.  Perturbing one element per group at a time
(the groups being independent) costs one forward per element of the largest
group: use small shapes.  The activations are not analytic (relu) or use
math.erf: their elementwise derivative is applied analytically to grad_out.
"""
import collections
import math

import numpy as np

Grads = collections.namedtuple("Grads", "x weight bias")


def _f64(a):
    """float64 (complex128 for complex input: the backward's complex step)."""
    if a is None:
        return None
    a = np.asarray(a)
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64, copy=False)


def _default_eps(x):
    """rms_norm's eps=None: the input's own machine epsilon, as PyTorch
    (ml_dtypes' finfo for bfloat16; float64's for integers)."""
    dt = np.asarray(x).dtype
    if dt.kind == "f":
        return float(np.finfo(dt).eps)
    if dt.name == "bfloat16":
        import ml_dtypes
        return float(ml_dtypes.finfo(dt).eps)
    return float(np.finfo(np.float64).eps)


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


def _channel_stats(mean, var, eps, shape):
    """(mean, rstd) as returned by return_stats=True: float64 of `shape`."""
    return mean.reshape(shape), (1.0 / np.sqrt(var + eps)).reshape(shape)


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5, *, axis=1, activation=None,
               return_stats=False):
    x = _f64(x)
    ax = axis % x.ndim
    shape = _channel_shape(x.ndim, ax)
    axes = tuple(a for a in range(x.ndim) if a != ax)
    if training or running_mean is None:
        mean, var = _stats(x, axes)
        count = x.size // x.shape[ax]
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean.reshape(-1)
            running_var[...] = (1 - momentum) * running_var + momentum * var.reshape(-1) * count / (count - 1)
    else:
        mean = _f64(running_mean).reshape(shape)
        var = _f64(running_var).reshape(shape)
    y = (x - mean) / np.sqrt(var + eps)
    y = _activate(_affine(y, weight, bias, shape), activation)
    return (y,) + _channel_stats(mean, var, eps, (-1,)) if return_stats else y


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5, *, axis=1, activation=None,
                  return_stats=False):
    x = _f64(x)
    ax = axis % x.ndim
    shape = _channel_shape(x.ndim, ax)
    n, c = x.shape[0], x.shape[ax]
    if not use_input_stats:
        y = batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps, axis=ax,
                       activation=activation)
        stats = _channel_stats(np.broadcast_to(_f64(running_mean), (n, c)),
                               np.broadcast_to(_f64(running_var), (n, c)), eps, (n, c))
        return (y,) + stats if return_stats else y
    axes = tuple(a for a in range(1, x.ndim) if a != ax)
    mean, var = _stats(x, axes)
    if running_mean is not None:
        s = np.prod([x.shape[a] for a in axes])
        m = np.moveaxis(mean, ax, 1).reshape(n, -1).mean(axis=0)
        v = np.moveaxis(var, ax, 1).reshape(n, -1).mean(axis=0) * s / (s - 1)
        running_mean[...] = (1 - momentum) * running_mean + momentum * m
        running_var[...] = (1 - momentum) * running_var + momentum * v
    y = (x - mean) / np.sqrt(var + eps)
    y = _activate(_affine(y, weight, bias, shape), activation)
    if not return_stats:
        return y
    return (y,) + _channel_stats(np.moveaxis(mean, ax, 1), np.moveaxis(var, ax, 1), eps, (n, c))


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, *, axis=1, activation=None,
               return_stats=False):
    x = _f64(x)
    ax = axis % x.ndim
    xc = np.moveaxis(x, ax, 1)
    n, c = xc.shape[:2]
    g = xc.reshape(n, num_groups, -1)
    mean, var = _stats(g, (2,))
    y = ((g - mean) / np.sqrt(var + eps)).reshape(xc.shape)
    y = _affine(y, weight, bias, _channel_shape(xc.ndim, 1))
    y = _activate(np.moveaxis(y, 1, ax), activation)
    return (y,) + _channel_stats(mean, var, eps, (n, num_groups)) if return_stats else y


def _trailing_axes(x, normalized_shape):
    k = 1 if np.ndim(normalized_shape) == 0 else len(normalized_shape)
    return tuple(range(x.ndim - k, x.ndim))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, return_stats=False,
               activation=None):
    x = _f64(x)
    mean, var = _stats(x, _trailing_axes(x, normalized_shape))
    rstd = 1.0 / np.sqrt(var + eps)
    y = (x - mean) * rstd
    if weight is not None:
        y = y * _f64(weight)
    if bias is not None:
        y = y + _f64(bias)
    y = _activate(y, activation)
    return (y, mean, rstd) if return_stats else y


def rms_norm(x, normalized_shape, weight=None, eps=None, *, return_stats=False):
    if eps is None:
        eps = _default_eps(x)
    x = _f64(x)
    rstd = 1.0 / np.sqrt((x * x).mean(axis=_trailing_axes(x, normalized_shape), keepdims=True) + eps)
    y = x * rstd
    if weight is not None:
        y = y * _f64(weight)
    return (y, rstd) if return_stats else y


def add_layer_norm(x, residual, normalized_shape, weight=None, bias=None, eps=1e-5, *, skip_bias=None,
                   activation=None):
    """(y, s) with s = x + residual (+ skip_bias) in float64 and y its layer norm."""
    s = _f64(x) + _f64(residual) + (0.0 if skip_bias is None else _f64(skip_bias))
    return layer_norm(s, normalized_shape, weight, bias, eps, activation=activation), s


def add_rms_norm(x, residual, normalized_shape, weight=None, eps=None, *, skip_bias=None):
    """(y, s) with s = x + residual (+ skip_bias) in float64 and y its RMS norm."""
    eps = _default_eps(x) if eps is None else eps
    s = _f64(x) + _f64(residual) + (0.0 if skip_bias is None else _f64(skip_bias))
    return rms_norm(s, normalized_shape, weight, eps), s


# ------------------------------------------------------------------ backward
_H = 1e-20  # complex step: the error is O(h**2) relative, far below float64 rounding


def _activation_grad(z, activation):
    """d activation(z) / dz, elementwise (relu'(0) = 0, as torch)."""
    if activation is None:
        return np.ones_like(z)
    if activation == "relu":
        return (z > 0).astype(np.float64)
    if activation == "silu":
        s = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid(z), without overflow
        return s * (1.0 + z * (1.0 - s))
    if activation == "gelu":
        return 0.5 * (1.0 + _erf(z / math.sqrt(2.0))) + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    raise ValueError(activation)


def _ranks(labels):
    """Each element's position inside its group (labels: group ids)."""
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    rank = np.empty(flat.size, dtype=np.intp)
    rank[order] = np.arange(flat.size) - np.searchsorted(ordered, ordered, side="left")
    return rank


def _backward(pre, grad_out, x, weight, bias, labels, to_param, needs, activation, out):
    """The (x, weight, bias) gradients of L = sum(grad_out * act(pre(x, weight, bias))).

    pre is a forward without its activation, labels (x's shape) the group
    of every element: an output depends only on the inputs of its group, so
    one complex step per group at a time gives each group's own derivative.
    to_param sums an x-shaped array into the parameters' shape."""
    need_x, need_w, need_b = tuple(needs) + (False,) * (3 - len(needs))
    x = np.asarray(x, dtype=np.float64)
    w, b = _f64(weight), _f64(bias)
    g = np.asarray(grad_out, dtype=np.float64) * _activation_grad(pre(x, w, b), activation)
    gx = gw = gb = None
    if need_x:
        flat = labels.ravel()
        rank = _ranks(labels)
        gx = np.empty(x.size)
        for j in range(rank.max() + 1 if x.size else 0):
            sel = np.flatnonzero(rank == j)
            xc = x.astype(np.complex128).ravel()
            xc[sel] += 1j * _H
            per_group = np.bincount(flat, weights=(g * pre(xc.reshape(x.shape), w, b).imag).ravel())
            gx[sel] = per_group[flat[sel]] / _H
        gx = gx.reshape(x.shape)
        if out is not None:
            out[...] = gx
            gx = out
    # each output depends on one weight and one bias element: perturb all at once
    if need_w and w is not None:
        gw = to_param(g * pre(x, w + 1j * _H, b).imag) / _H
    if need_b:
        b0 = np.zeros(to_param(x).shape) if b is None else b
        gb = to_param(g * pre(x, w, b0 + 1j * _H).imag) / _H
    return Grads(gx, gw, gb)


def _row_labels(x, normalized_shape):
    lead = x.shape[:x.ndim - len(_trailing_axes(x, normalized_shape))]
    rows = np.arange(int(np.prod(lead))).reshape(lead + (1,) * (x.ndim - len(lead)))
    return np.broadcast_to(rows, x.shape), lambda a: a.reshape((-1,) + x.shape[len(lead):]).sum(axis=0)


def _channel_labels(x, axis, groups, per_sample):
    """Group ids of every element: (sample, group) or channel (per_sample=False)."""
    ax = axis % x.ndim
    n, c = x.shape[0], x.shape[ax]
    ids = np.arange(c) // (c // groups) + (np.arange(n)[:, None] * groups if per_sample else 0)
    ids = np.broadcast_to(ids, (n, c)).reshape((n, c) + (1,) * (x.ndim - 2))
    spatial = tuple(size for i, size in enumerate(x.shape) if i not in (0, ax))
    labels = np.moveaxis(np.broadcast_to(ids, (n, c) + spatial), 1, ax)
    return labels, lambda a: np.moveaxis(a, ax, 0).reshape(c, -1).sum(axis=1)


def layer_norm_backward(grad_out, x, normalized_shape, mean=None, rstd=None, weight=None, *,
                        bias=None, eps=1e-5, activation=None, needs=(True, True, True), out=None):
    labels, to_param = _row_labels(np.asarray(x), normalized_shape)
    return _backward(lambda x, w, b: layer_norm(x, normalized_shape, w, b, eps),
                     grad_out, x, weight, bias, labels, to_param, needs, activation, out)


def rms_norm_backward(grad_out, x, normalized_shape, rstd=None, weight=None, *,
                      eps=None, needs=(True, True), out=None):
    eps = _default_eps(x) if eps is None else eps
    labels, to_param = _row_labels(np.asarray(x), normalized_shape)
    return _backward(lambda x, w, b: rms_norm(x, normalized_shape, w, eps),
                     grad_out, x, weight, None, labels, to_param, tuple(needs)[:2], None, out)


def group_norm_backward(grad_out, x, num_groups, mean=None, rstd=None, weight=None, *,
                        bias=None, eps=1e-5, axis=1, activation=None, needs=(True, True, True),
                        out=None):
    labels, to_param = _channel_labels(np.asarray(x), axis, num_groups, True)
    return _backward(lambda x, w, b: group_norm(x, num_groups, w, b, eps, axis=axis),
                     grad_out, x, weight, bias, labels, to_param, needs, activation, out)


def instance_norm_backward(grad_out, x, mean=None, rstd=None, weight=None, *,
                           bias=None, eps=1e-5, axis=1, activation=None, needs=(True, True, True),
                           out=None):
    x_ = np.asarray(x)
    labels, to_param = _channel_labels(x_, axis, x_.shape[axis], True)
    return _backward(lambda x, w, b: instance_norm(x, None, None, w, b, True, 0.1, eps, axis=axis),
                     grad_out, x, weight, bias, labels, to_param, needs, activation, out)


def batch_norm_backward(grad_out, x, mean=None, rstd=None, weight=None, training=True, *,
                        bias=None, eps=1e-5, axis=1, activation=None, needs=(True, True, True),
                        out=None):
    x_ = np.asarray(x)
    if training:  # through the batch statistics: the groups are the channels
        labels, to_param = _channel_labels(x_, axis, x_.shape[axis], False)
        return _backward(lambda x, w, b: batch_norm(x, None, None, w, b, True, 0.1, eps, axis=axis),
                         grad_out, x, weight, bias, labels, to_param, needs, activation, out)
    # eval: mean/rstd are the constants the forward used (the running
    # statistics, which x cannot give back): every element its own group
    if mean is None or rstd is None:
        raise ValueError("mean, rstd: needed when training=False")
    var = 1.0 / np.asarray(rstd, dtype=np.float64) ** 2 - eps  # the forward adds eps back
    mean = np.asarray(mean, dtype=np.float64)
    _, to_param = _channel_labels(x_, axis, x_.shape[axis], False)
    labels = np.arange(x_.size).reshape(x_.shape)
    return _backward(lambda x, w, b: batch_norm(x, mean, var, w, b, False, 0.1, eps, axis=axis),
                     grad_out, x, weight, bias, labels, to_param, needs, activation, out)


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
