"""The backward passes on outputs large enough for non-temporal stores
(dx of 16 MiB or more, as the forward's output): the same values as a
float64 reference, and bits that do not depend on where dx lies (an `out`
one element off a line boundary takes another aligning head)."""
import numpy as np
import pytest

import cnorm

pytestmark = pytest.mark.usefixtures("restore_config")


def _misaligned_like(a):
    """An array of a's shape and dtype one element off a's alignment."""
    buf = np.empty(a.size + 16, a.dtype)
    start = (-buf.ctypes.data // a.itemsize) % 16 + 1  # 64-byte aligned, then one element on
    return buf[start:start + a.size].reshape(a.shape)


def _ln_reference(dy, x, w):
    x, dy, w = (a.astype(np.float64) for a in (x, dy, w))
    mean = x.mean(-1, keepdims=True)
    xhat = (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5)
    d = dy * w
    return (d - d.mean(-1, keepdims=True) - xhat * (d * xhat).mean(-1, keepdims=True)) / np.sqrt(
        ((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_backward_streaming_dx(isa, rng, dtype):
    rows, cols = (1100, 4097) if dtype == np.float32 else (520, 4097)  # dx >= 16 MiB, odd rows
    x = (rng.standard_normal((rows, cols)) + 3).astype(dtype)
    dy = rng.standard_normal((rows, cols)).astype(dtype)
    w = rng.uniform(0.5, 1.5, cols).astype(dtype)
    y, mean, rstd = cnorm.layer_norm(x, cols, w, return_stats=True)
    g = cnorm.layer_norm_backward(dy, x, cols, mean, rstd, w)
    want = _ln_reference(dy, x, w)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.max(np.abs(g.x - want)) <= tol * np.max(np.abs(want))
    out = _misaligned_like(g.x)
    g2 = cnorm.layer_norm_backward(dy, x, cols, mean, rstd, w, out=out)
    assert g2.x is out
    assert np.array_equal(out, g.x)
    assert np.array_equal(g2.weight, g.weight) and np.array_equal(g2.bias, g.bias)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_channel_backward_streaming_dx(isa, rng, layout):
    shape = (16, 64, 64, 65)  # 4.26 M float32 values
    x = (rng.standard_normal(shape) * 2 + 5).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    if layout == "nhwc":  # channels-last memory, logical NCHW
        x, dy = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) for a in (x, dy))
    w = rng.uniform(0.5, 1.5, 64).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    for op in ("batch", "group", "instance"):
        if op == "batch":
            _, m, r = cnorm.batch_norm(x, None, None, w, b, True, return_stats=True)
            call = lambda **kw: cnorm.batch_norm_backward(dy, x, m, r, w, bias=b, activation="silu", **kw)
            axes = (0, 2, 3)
            xs = x.astype(np.float64)
        else:
            groups = 8 if op == "group" else 64
            _, m, r = cnorm.group_norm(x, groups, w, b, return_stats=True)
            call = lambda **kw: cnorm.group_norm_backward(dy, x, groups, m, r, w, bias=b, activation="silu", **kw)
            xs = x.astype(np.float64).reshape(16, groups, -1)
            axes = (2,)
        mean = xs.mean(axes, keepdims=True)
        rs = 1 / np.sqrt(((xs - mean) ** 2).mean(axes, keepdims=True) + 1e-5)
        xhat = ((xs - mean) * rs).reshape(shape)
        z = xhat * w.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)
        s = 1 / (1 + np.exp(-z))
        d = (dy * s * (1 + z * (1 - s)) * w.reshape(1, -1, 1, 1)).reshape(xs.shape)
        xh = xhat.reshape(xs.shape)
        want = (rs * (d - d.mean(axes, keepdims=True) - xh * (d * xh).mean(axes, keepdims=True))).reshape(shape)
        g = call()
        assert np.max(np.abs(g.x - want)) <= 1e-5 * np.max(np.abs(want)), op
        out = _misaligned_like(g.x) if layout == "nchw" else \
            _misaligned_like(np.ascontiguousarray(g.x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
        g2 = call(out=out)
        assert np.array_equal(g2.x, g.x), op
