"""Cross-checks against torch.nn.functional (skipped when torch is missing).

Every channel variant runs in three memory layouts:

- ``nchw``: a C-contiguous (N, C, ...) array, axis=1;
- ``nhwc``: a C-contiguous (N, ..., C) array, axis=-1, compared with torch
  on the permuted (N, C, ...) tensor;
- ``channels_last``: torch's channels-last tensor turned into NumPy with
  ``.numpy()``, i.e. an (N, C, ...) array with NHWC memory, axis=1; the
  result must keep that memory layout.
"""
import zlib

import numpy as np
import pytest

import cnorm

torch = pytest.importorskip("torch")
F = torch.nn.functional

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}
LAYOUTS = ["nchw", "nhwc", "channels_last"]
SHAPES = [(2, 6, 5, 7), (3, 6, 11)]


# ---------------------------------------------------------------- helpers

def _rng(*key):
    """A generator seeded from `key` (stable across runs and processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _data(shape, dtype, *key):
    return (_rng(shape, dtype, *key).normal(0.5, 2.0, shape)).astype(dtype)


def _affine(c, dtype, affine, *key):
    if not affine:
        return None, None
    rng = _rng(c, dtype, "affine", *key)
    return rng.normal(1.0, 0.5, c).astype(dtype), rng.normal(0.0, 1.0, c).astype(dtype)


def _running(c, dtype, *key):
    rng = _rng(c, dtype, "running", *key)
    return rng.normal(0.0, 1.0, c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)


def _t(a):
    return None if a is None else torch.from_numpy(np.array(a))


def _memory_order(a):
    """Axes from the largest stride to the smallest."""
    return tuple(np.argsort([-s for s in a.strides], kind="stable"))


def _as_layout(x, layout):
    """(array for cnorm, channel axis, torch input tensor in (N, C, ...) order)."""
    if layout == "nchw":
        return x, 1, torch.from_numpy(x)
    if layout == "nhwc":
        xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        return xl, -1, torch.from_numpy(xl).movedim(-1, 1)
    t = torch.from_numpy(x)
    if t.ndim == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    else:
        t = t.movedim(1, -1).contiguous().movedim(-1, 1)
    xl = t.numpy()
    assert not xl.flags.c_contiguous and np.moveaxis(xl, 1, -1).flags.c_contiguous
    return xl, 1, t


def _check_channel(y, xl, axis, expected_t, dtype):
    """y (cnorm, in xl's axes) vs torch's (N, C, ...) result."""
    assert y.dtype == dtype and y.shape == xl.shape
    assert _memory_order(y) == _memory_order(xl), (y.strides, xl.strides)
    np.testing.assert_allclose(np.moveaxis(y, axis, 1), expected_t.numpy(), **TOL[dtype])


def _check_running(got, expected_t, dtype):
    for g, e in zip(got, expected_t):
        np.testing.assert_allclose(g, e.numpy(), **TOL[dtype])


channel_cases = pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
common = [
    pytest.mark.parametrize("layout", LAYOUTS),
    pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"]),
    pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name),
]


def with_common(f):
    for mark in common:
        f = mark(f)
    return f


# ---------------------------------------------------------------- batch norm

@with_common
@channel_cases
@pytest.mark.parametrize("momentum", [0.1, 0.7])
def test_batch_norm_train_updates_running_stats(shape, dtype, affine, layout, momentum):
    x = _data(shape, dtype, "bn")
    c = shape[1]
    w, b = _affine(c, dtype, affine, "bn")
    rm, rv = _running(c, dtype, "bn")
    trm, trv = _t(rm), _t(rv)
    xl, axis, xt = _as_layout(x, layout)
    y = cnorm.batch_norm(xl, rm, rv, w, b, True, momentum, 1e-5, axis=axis)
    yt = F.batch_norm(xt, trm, trv, _t(w), _t(b), True, momentum, 1e-5)
    _check_channel(y, xl, axis, yt, dtype)
    _check_running((rm, rv), (trm, trv), dtype)


@with_common
@channel_cases
def test_batch_norm_train_without_running_stats(shape, dtype, affine, layout):
    x = _data(shape, dtype, "bn-nostats")
    w, b = _affine(shape[1], dtype, affine, "bn-nostats")
    xl, axis, xt = _as_layout(x, layout)
    y = cnorm.batch_norm(xl, None, None, w, b, training=True, eps=1e-3, axis=axis)
    _check_channel(y, xl, axis, F.batch_norm(xt, None, None, _t(w), _t(b), True, eps=1e-3), dtype)


@with_common
@channel_cases
def test_batch_norm_eval(shape, dtype, affine, layout):
    x = _data(shape, dtype, "bn-eval")
    c = shape[1]
    w, b = _affine(c, dtype, affine, "bn-eval")
    rm, rv = _running(c, dtype, "bn-eval")
    before = rm.copy(), rv.copy()
    xl, axis, xt = _as_layout(x, layout)
    y = cnorm.batch_norm(xl, rm, rv, w, b, False, 0.1, 1e-5, axis=axis)
    _check_channel(y, xl, axis, F.batch_norm(xt, _t(rm), _t(rv), _t(w), _t(b), False, 0.1, 1e-5), dtype)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])


# ---------------------------------------------------------------- instance norm

@with_common
@channel_cases
@pytest.mark.parametrize("running", [False, True], ids=["no_running", "running"])
def test_instance_norm_input_stats(shape, dtype, affine, layout, running):
    x = _data(shape, dtype, "in")
    c = shape[1]
    w, b = _affine(c, dtype, affine, "in")
    rm, rv = _running(c, dtype, "in") if running else (None, None)
    trm, trv = _t(rm), _t(rv)
    xl, axis, xt = _as_layout(x, layout)
    y = cnorm.instance_norm(xl, rm, rv, w, b, True, 0.2, 1e-5, axis=axis)
    yt = F.instance_norm(xt, trm, trv, _t(w), _t(b), True, 0.2, 1e-5)
    _check_channel(y, xl, axis, yt, dtype)
    if running:
        _check_running((rm, rv), (trm, trv), dtype)


@with_common
@channel_cases
def test_instance_norm_running_stats(shape, dtype, affine, layout):
    x = _data(shape, dtype, "in-eval")
    c = shape[1]
    w, b = _affine(c, dtype, affine, "in-eval")
    rm, rv = _running(c, dtype, "in-eval")
    xl, axis, xt = _as_layout(x, layout)
    y = cnorm.instance_norm(xl, rm, rv, w, b, use_input_stats=False, eps=1e-5, axis=axis)
    yt = F.instance_norm(xt, _t(rm), _t(rv), _t(w), _t(b), use_input_stats=False, eps=1e-5)
    _check_channel(y, xl, axis, yt, dtype)


# ---------------------------------------------------------------- group norm

@with_common
@channel_cases
@pytest.mark.parametrize("groups", [1, 3, 6])
def test_group_norm(shape, dtype, affine, layout, groups):
    x = _data(shape, dtype, "gn")
    w, b = _affine(shape[1], dtype, affine, "gn")
    xl, axis, xt = _as_layout(x, layout)
    y = cnorm.group_norm(xl, groups, w, b, 1e-5, axis=axis)
    _check_channel(y, xl, axis, F.group_norm(xt, groups, _t(w), _t(b), 1e-5), dtype)


# ---------------------------------------------------------------- layer / RMS norm

ROW_CASES = pytest.mark.parametrize("shape, normalized_shape", [
    ((4, 10), 10),
    ((4, 10), (10,)),
    ((3, 5, 8), (5, 8)),
    ((2, 3, 4, 16), (16,)),
    ((1, 768), (768,)),
])
row_common = [
    pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"]),
    pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name),
    ROW_CASES,
]


def with_row_common(f):
    for mark in row_common:
        f = mark(f)
    return f


def _row_params(normalized_shape, dtype, affine, key):
    ns = (normalized_shape,) if np.ndim(normalized_shape) == 0 else tuple(normalized_shape)
    if not affine:
        return ns, None, None
    rng = _rng(ns, dtype, key)
    return ns, rng.normal(1.0, 0.5, ns).astype(dtype), rng.normal(0.0, 1.0, ns).astype(dtype)


@with_row_common
def test_layer_norm(shape, normalized_shape, dtype, affine):
    x = _data(shape, dtype, "ln")
    ns, w, b = _row_params(normalized_shape, dtype, affine, "ln")
    y = cnorm.layer_norm(x, normalized_shape, w, b, 1e-5)
    yt = F.layer_norm(torch.from_numpy(x), list(ns), _t(w), _t(b), 1e-5)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, yt.numpy(), **TOL[dtype])


@with_row_common
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rms_norm(shape, normalized_shape, dtype, affine, eps):
    x = _data(shape, dtype, "rms")
    ns, w, _ = _row_params(normalized_shape, dtype, affine, "rms")
    y = cnorm.rms_norm(x, normalized_shape, w) if eps is None else cnorm.rms_norm(x, normalized_shape, w, eps)
    yt = F.rms_norm(torch.from_numpy(x), list(ns), _t(w), eps)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, yt.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_rms_norm_default_eps_is_dtype_eps(dtype):
    """eps=None must mean finfo(dtype).eps, as in torch: visible on rows
    whose mean square is comparable to eps."""
    scale = np.sqrt(np.finfo(dtype).eps)
    x = (_data((4, 32), dtype, "rms-eps") * scale).astype(dtype)
    yt = F.rms_norm(torch.from_numpy(x), [32])
    np.testing.assert_allclose(cnorm.rms_norm(x, 32), yt.numpy(), **TOL[dtype])
    assert not np.allclose(cnorm.rms_norm(x, 32, eps=0.0), yt.numpy(), **TOL[dtype])
