"""The Python side of the backward passes (DESIGN.md 3.1; README "Training:
backward passes"): return_stats on every forward, the argument rules of the
*_backward functions, out=, layouts and dtypes, and cnorm.nn's
backward/grad/zero_grad against the functional backward.

The numerics of the kernels are tests/test_backward.py's; the few value
checks here (a float64 directional derivative per op, layout and dtype
invariance) only make sure the arguments reach the kernels as meant.
"""
import pathlib
import re
import zlib

import numpy as np
import pytest

import cnorm
import cnorm.nn as cnn
from cnorm import _core

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _x(shape, dtype=np.float64, key=0):
    return (_rng(shape, key).standard_normal(shape) * 2 + 0.5).astype(dtype)


def _channels_last(x):
    """An (N, C, ...) view of channels-last memory."""
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)
    back = np.argsort(perm)
    return np.ascontiguousarray(x.transpose(perm)).transpose(back)


# ---- return_stats ---------------------------------------------------------------

def _forwards(x):
    """(name, y/stats tuple, expected stats shape) of every forward on (N, C, H, W) x."""
    n, c, h, w = x.shape
    rm, rv = np.linspace(-1, 1, c), np.linspace(0.5, 2, c)
    yield "layer_norm", cnorm.layer_norm(x, (h, w), return_stats=True), (n, c, 1, 1)
    yield "layer_norm last", cnorm.layer_norm(x, w, return_stats=True), (n, c, h, 1)
    yield "rms_norm", cnorm.rms_norm(x, (h, w), return_stats=True), (n, c, 1, 1)
    yield "group_norm", cnorm.group_norm(x, 2, return_stats=True), (n, 2)
    yield "instance_norm", cnorm.instance_norm(x, return_stats=True), (n, c)
    yield "instance_norm running", cnorm.instance_norm(x, rm.copy(), rv.copy(), return_stats=True), (n, c)
    yield "instance_norm use running", cnorm.instance_norm(x, rm, rv, use_input_stats=False,
                                                           return_stats=True), (c,)
    yield "batch_norm train", cnorm.batch_norm(x, training=True, return_stats=True), (c,)
    yield "batch_norm train running", cnorm.batch_norm(x, rm.copy(), rv.copy(), training=True,
                                                       return_stats=True), (c,)
    yield "batch_norm eval", cnorm.batch_norm(x, rm, rv, return_stats=True), (c,)


STAT_DTYPES = [(np.float32, F32), (np.float16, F32), (np.float64, F64), (np.int32, F64)]


@pytest.mark.parametrize("dtype, stats", STAT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_return_stats_shapes_and_dtypes(dtype, stats):
    x = _x((3, 4, 5, 6), np.float64) * (1 if np.dtype(dtype).kind == "f" else 10)
    x = x.astype(dtype)
    for name, got, shape in _forwards(x):
        y, *st = got
        assert len(st) == (1 if name == "rms_norm" else 2), name
        assert y.shape == x.shape and y.dtype == (x.dtype if x.dtype.kind == "f" else F64), name
        for s in st:
            assert s.shape == shape and s.dtype == stats, (name, s.shape, s.dtype)


def test_return_stats_bfloat16():
    ml = pytest.importorskip("ml_dtypes")
    x = _x((2, 4, 3, 5)).astype(ml.bfloat16)
    for name, (y, *st), shape in _forwards(x):
        assert y.dtype == x.dtype, name
        assert all(s.dtype == F32 and s.shape == shape for s in st), name


def test_layer_norm_half_stats_are_float32_on_the_fast_lane_too():
    # a plain float16 row and an int normalized_shape take the fast lane
    x = _x((4, 8), np.float16)
    for y, mean, rstd in (cnorm.layer_norm(x, 8, return_stats=True),
                          cnorm.layer_norm(x, (8,), eps=np.float64(1e-5), return_stats=True)):
        assert mean.dtype == rstd.dtype == F32 and mean.shape == (4, 1)
        np.testing.assert_allclose(mean[:, 0], x.astype(np.float64).mean(1), rtol=1e-6, atol=1e-6)


def test_return_stats_values():
    x, eps = _x((3, 4, 5, 6)), 1e-3
    xs = x.reshape(3, 4, -1)
    _, m, r = cnorm.group_norm(x, 2, eps=eps, return_stats=True)
    g = x.reshape(3, 2, -1)
    np.testing.assert_allclose(m, g.mean(-1), rtol=1e-12)
    np.testing.assert_allclose(r, 1 / np.sqrt(g.var(-1) + eps), rtol=1e-12)
    _, m, r = cnorm.instance_norm(x, eps=eps, return_stats=True)
    np.testing.assert_allclose(r, 1 / np.sqrt(xs.var(-1) + eps), rtol=1e-12)
    _, m, r = cnorm.batch_norm(x, training=True, eps=eps, return_stats=True)
    np.testing.assert_allclose(m, x.mean((0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(r, 1 / np.sqrt(x.var((0, 2, 3)) + eps), rtol=1e-12)
    _, r = cnorm.rms_norm(x, 6, eps=eps, return_stats=True)
    np.testing.assert_allclose(r[..., 0], 1 / np.sqrt((x * x).mean(-1) + eps), rtol=1e-12)


def test_return_stats_running_are_the_statistics_used():
    x, eps = _x((3, 4, 5)), 1e-3
    rm, rv = np.array([0.5, -1, 2, 0]), np.array([1.0, 0.25, 4, -eps])  # var + eps == 0: inf, unclamped
    for y, m, r in (cnorm.batch_norm(x, rm, rv, eps=eps, return_stats=True),
                    cnorm.instance_norm(x, rm, rv, use_input_stats=False, eps=eps, return_stats=True)):
        assert m is not rm and not np.shares_memory(m, rm)  # a copy: later updates do not change it
        np.testing.assert_array_equal(m, rm)
        with np.errstate(divide="ignore"):
            np.testing.assert_array_equal(r, 1 / np.sqrt(rv + eps))
        assert np.isinf(r[3])
    # training with running stats: the batch statistics, and the update still happens
    rm2, rv2 = rm.copy(), np.ones(4)
    _, m, r = cnorm.batch_norm(x, rm2, rv2, training=True, return_stats=True)
    np.testing.assert_allclose(m, x.mean((0, 2)), rtol=1e-12)
    np.testing.assert_allclose(rm2, 0.9 * rm + 0.1 * x.mean((0, 2)), rtol=1e-12)


def test_return_stats_batch_norm_constant_channel_is_clamped():
    # a batch variance is clamped at 0 (cnorm_rstd): eps=0 on a constant channel is inf, never NaN
    x = np.ones((4, 2, 3))
    _, m, r = cnorm.batch_norm(x, training=True, eps=0.0, return_stats=True)
    assert np.all(np.isinf(r)) and np.all(m == 1)


def test_return_stats_empty_batch():
    x = np.zeros((0, 3, 4), np.float32)
    y, m, r = cnorm.group_norm(x, 3, return_stats=True)
    assert y.shape == x.shape and m.shape == r.shape == (0, 3)
    y, m, r = cnorm.batch_norm(x, training=True, return_stats=True)
    assert m.shape == (3,) and np.all(np.isnan(m)) and m.dtype == F32


def test_return_stats_keeps_y_bits():
    x = _x((4, 6, 5, 3), np.float32)
    w = np.linspace(0.5, 1.5, 6, dtype=np.float32)
    for plain, stats in (
        (cnorm.group_norm(x, 3, w, activation="silu"), cnorm.group_norm(x, 3, w, activation="silu", return_stats=True)),
        (cnorm.instance_norm(x, weight=w), cnorm.instance_norm(x, weight=w, return_stats=True)),
        (cnorm.batch_norm(x, training=True), cnorm.batch_norm(x, training=True, return_stats=True)),
        (cnorm.rms_norm(x, 3), cnorm.rms_norm(x, 3, return_stats=True)),
    ):
        np.testing.assert_array_equal(plain, stats[0])


# ---- the backward functions: one call per op ------------------------------------

def _call(op, dy, x, stats=None, **kw):
    """op's backward on (N, C, ...) x with the stats its forward returned."""
    w = kw.pop("weight", None)
    last = np.shape(x)[-1]
    if op == "layer":
        m, r = stats if stats else (None, None)
        return cnorm.layer_norm_backward(dy, x, last, m, r, w, **kw)
    if op == "rms":
        r = stats[0] if stats else None
        return cnorm.rms_norm_backward(dy, x, last, r, w, **kw)
    if op == "group":
        m, r = stats if stats else (None, None)
        return cnorm.group_norm_backward(dy, x, 2, m, r, w, **kw)
    if op == "instance":
        m, r = stats if stats else (None, None)
        return cnorm.instance_norm_backward(dy, x, m, r, w, **kw)
    m, r = stats if stats else (None, None)
    return cnorm.batch_norm_backward(dy, x, m, r, w, kw.pop("training", True), **kw)


def _forward(op, x, **kw):
    w = kw.pop("weight", None)
    if op == "layer":
        return cnorm.layer_norm(x, x.shape[-1], w, return_stats=True, **kw)
    if op == "rms":
        return cnorm.rms_norm(x, x.shape[-1], w, return_stats=True, **kw)
    if op == "group":
        return cnorm.group_norm(x, 2, w, return_stats=True, **kw)
    if op == "instance":
        return cnorm.instance_norm(x, weight=w, return_stats=True, **kw)
    return cnorm.batch_norm(x, None, None, w, training=True, return_stats=True, **kw)


OPS = ["layer", "rms", "group", "instance", "batch"]
WEIGHT_AXIS = {"layer": -1, "rms": -1}  # weight over the last axis; else over the channels (axis 1)


def _weight(op, x, dtype=np.float64):
    n = x.shape[WEIGHT_AXIS.get(op, 1)]
    return np.linspace(0.5, 1.5, n).astype(dtype)


def test_grads_is_a_named_tuple():
    assert cnorm.Grads._fields == ("x", "weight", "bias")
    assert "Grads" in cnorm.__all__ and all(f"{op}_norm_backward" in cnorm.__all__ for op in OPS)
    g = cnorm.Grads(None, None, None)
    assert isinstance(g, tuple) and g.x is None


@pytest.mark.parametrize("op", OPS)
def test_directional_derivative_float64(op):
    """<grad_x, v> + <grad_w, u> + <grad_b, t> equals the central difference
    of L = sum(dy * y): the arguments reach the kernel as meant."""
    x = _x((3, 4, 5, 6))
    dy = _x(x.shape, key=1)
    w, b = _weight(op, x), _weight(op, x)[::-1] - 1
    act = None if op == "rms" else "silu"
    kw = {} if op == "rms" else dict(bias=b, activation=act)
    fwd = {"layer": lambda x, w, b: cnorm.layer_norm(x, 6, w, b, activation=act),
           "rms": lambda x, w, b: cnorm.rms_norm(x, 6, w, eps=1e-5),
           "group": lambda x, w, b: cnorm.group_norm(x, 2, w, b, activation=act),
           "instance": lambda x, w, b: cnorm.instance_norm(x, weight=w, bias=b, activation=act),
           "batch": lambda x, w, b: cnorm.batch_norm(x, None, None, w, b, True, activation=act)}[op]
    if op == "rms":
        kw["eps"] = 1e-5
    g = _call(op, dy, x, None, weight=w, **kw)
    v, u, t = _x(x.shape, key=2), _x(w.shape, key=3), _x(w.shape, key=4)
    h = 1e-5
    loss = lambda s: float(np.sum(dy * fwd(x + s * v, w + s * u, b + s * t)))  # noqa: E731
    fd = (loss(h) - loss(-h)) / (2 * h)
    got = np.sum(g.x * v) + np.sum(g.weight * u) + (0.0 if g.bias is None else np.sum(g.bias * t))
    assert got == pytest.approx(fd, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("op", OPS)
def test_saved_stats_equal_recomputed(op):
    x, dy = _x((3, 4, 5, 6)), _x((3, 4, 5, 6), key=1)
    _, *stats = _forward(op, x)
    a, b = _call(op, dy, x, stats), _call(op, dy, x, None)
    np.testing.assert_allclose(a.x, b.x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op", ["group", "instance", "batch"])
def test_channels_last_view_gives_the_same_gradient_in_its_layout(op):
    x, dy = _x((3, 4, 5, 6)), _x((3, 4, 5, 6), key=1)
    w = _weight(op, x)
    want = _call(op, dy, x, weight=w)
    xl, dyl = _channels_last(x), _channels_last(dy)
    for d in (dyl, dy):  # grad_out in x's layout, and in another one (converted)
        got = _call(op, d, xl, weight=w)
        np.testing.assert_allclose(got.x, want.x, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.weight, want.weight, rtol=1e-12, atol=1e-12)
        assert got.x.strides == xl.strides  # the result keeps x's memory layout


@pytest.mark.parametrize("op", OPS)
def test_strided_and_listlike_inputs(op):
    big, dbig = _x((3, 4, 10, 12)), _x((3, 4, 10, 12), key=1)
    x, dy = big[:, :, ::2, ::-2], dbig[:, :, ::2, ::-2]
    want = _call(op, np.ascontiguousarray(dy), np.ascontiguousarray(x))
    got = _call(op, dy, x)
    np.testing.assert_allclose(got.x, want.x, rtol=1e-12, atol=1e-12)
    got = _call(op, dy.tolist(), x.tolist())
    np.testing.assert_allclose(got.x, want.x, rtol=1e-12, atol=1e-12)


def _spy(monkeypatch, name):
    """Record the arguments of a _core backward kernel function."""
    calls = []
    real = getattr(_core, name)

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(_core, name, spy)
    return calls


@pytest.mark.parametrize("op, kernel", [("group", "group_norm_backward"), ("instance", "group_norm_backward"),
                                        ("batch", "batch_norm_backward")])
def test_channels_last_reaches_the_kernel_without_copies(monkeypatch, op, kernel):
    x, dy = _channels_last(_x((3, 4, 5, 6), np.float32)), _channels_last(_x((3, 4, 5, 6), np.float32, key=1))
    out = _channels_last(np.empty(x.shape, np.float32))
    fast = _call(op, dy, x, out=out).x.copy()  # the fast lane (in Cython) writes out too
    calls = _spy(monkeypatch, kernel)
    g = _call(op, dy, x, out=out, axis=np.int64(1))  # a NumPy int axis: the general path
    (args,) = calls
    dyk, xk, dxk = args[:3]
    assert np.shares_memory(xk, x) and np.shares_memory(dyk, dy) and np.shares_memory(dxk, out)
    assert args[7 if kernel == "group_norm_backward" else 6] is True  # nhwc
    assert g.x is out
    np.testing.assert_array_equal(fast, out)
    assert _call(op, dy, x, out=out).x is out


def test_float32_saved_stats_reach_the_kernel_as_float64(monkeypatch):
    x, dy = _x((4, 8), np.float32), _x((4, 8), np.float32, key=1)
    _, m, r = cnorm.layer_norm(x, 8, return_stats=True)
    assert m.dtype == F32
    calls = _spy(monkeypatch, "layer_norm_backward")
    cnorm.layer_norm_backward(dy, x, (8,), m, r)  # a tuple: the general path (the fast lane widens in Cython)
    mk, rk = calls[0][5:7]
    assert mk.dtype == rk.dtype == F64 and mk.shape == (4,)
    np.testing.assert_array_equal(mk, m[:, 0])


@pytest.mark.parametrize("op", OPS)
def test_needs_and_none_rules(op):
    x, dy = _x((3, 4, 5, 6)), _x((3, 4, 5, 6), key=1)
    w = _weight(op, x)
    full = _call(op, dy, x, weight=w)
    assert isinstance(full, cnorm.Grads)
    assert full.x.shape == x.shape and full.weight.shape == w.shape
    if op == "rms":
        assert full.bias is None
        assert _call(op, dy, x, weight=w, needs=(False, True)).x is None
        assert _call(op, dy, x, weight=w, needs=(True, False)).weight is None
        assert _call(op, dy, x, needs=(True, True)).weight is None  # no weight: no grad_weight
        return
    assert full.bias.shape == w.shape
    # grad_bias does not need the bias (without an activation): computed when asked for
    with_bias = _call(op, dy, x, weight=w, bias=np.linspace(-1, 1, w.size))
    np.testing.assert_array_equal(with_bias.bias, full.bias)
    now = _call(op, dy, x)
    assert now.weight is None and now.bias is not None
    for needs in [(True, False, False), (False, True, False), (False, False, True), (False, False, False)]:
        g = _call(op, dy, x, weight=w, needs=needs)
        for want, got, ref in zip(needs, g, full):
            if want:  # the same sums in the same order, whatever else is asked for
                np.testing.assert_array_equal(got, ref)
            else:
                assert got is None
    assert _call(op, dy, x, weight=w, needs=[np.True_, False, True]).weight is None  # a list, NumPy bools


@pytest.mark.parametrize("dtype, grad_w", [(np.float32, F32), (np.float16, F32), (np.float64, F64),
                                          (np.int64, F64), (np.dtype(">f8"), F64)],
                         ids=["f32", "f16", "f64", "i64", "f64be"])
@pytest.mark.parametrize("op", OPS)
def test_gradient_dtypes(op, dtype, grad_w):
    x = (_x((3, 4, 5, 6)) * 4).astype(dtype)
    dy = _x(x.shape, key=1).astype(dtype)
    g = _call(op, dy, x, weight=_weight(op, x, np.float32))
    dt = np.dtype(dtype)
    assert g.x.dtype == (dt.newbyteorder("=") if dt.kind == "f" else F64)
    assert g.weight.dtype == grad_w and (g.bias is None or g.bias.dtype == grad_w)


def test_gradient_dtypes_bfloat16():
    ml = pytest.importorskip("ml_dtypes")
    x = _x((3, 4, 5, 6)).astype(ml.bfloat16)
    for op in OPS:
        g = _call(op, x, x, weight=_weight(op, x))
        assert g.x.dtype == x.dtype and g.weight.dtype == F32, op


@pytest.mark.parametrize("op", OPS)
def test_integer_input_equals_float64(op):
    xi = (_x((3, 4, 5, 6)) * 10).astype(np.int64)
    dy = _x(xi.shape, key=1)
    np.testing.assert_array_equal(_call(op, dy, xi).x, _call(op, dy, xi.astype(np.float64)).x)


def test_grad_out_of_another_dtype_is_converted():
    x = _x((4, 8), np.float32)
    dy = _x((4, 8), key=1)
    a = cnorm.layer_norm_backward(dy, x, 8).x
    b = cnorm.layer_norm_backward(dy.astype(np.float32), x, 8).x
    assert a.dtype == F32
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("op", OPS)
def test_empty_batch(op):
    x = np.zeros((0, 4, 5, 6), np.float32)
    g = _call(op, x, x, weight=_weight(op, x))
    assert g.x.shape == x.shape
    assert np.all(g.weight == 0) and g.weight.dtype == F32


# ---- out= -------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
def test_out_rules(op):
    x, dy = _x((3, 4, 5, 6), np.float32), _x((3, 4, 5, 6), np.float32, key=1)
    want = _call(op, dy, x).x
    out = np.empty_like(x)
    assert _call(op, dy, x, out=out).x is out
    np.testing.assert_array_equal(out, want)
    for inplace in ("grad_out", "x"):  # in place: out=grad_out, out=x
        d, xx = dy.copy(), x.copy()
        o = d if inplace == "grad_out" else xx
        assert _call(op, d, xx, out=o).x is o
        np.testing.assert_array_equal(o, want)
    # an out the kernel cannot write directly: strided, big-endian, overlapping grad_out partly
    buf = np.empty((3, 4, 5, 12), np.float32)
    strided = buf[..., ::2]
    _call(op, dy, x, out=strided)
    np.testing.assert_array_equal(strided, want)
    big = np.empty(x.shape, ">f4")
    _call(op, dy, x, out=big)
    np.testing.assert_array_equal(big, want)
    flat = np.zeros(x.size + 7, np.float32)
    d = flat[7:].reshape(x.shape)
    d[...] = dy
    o = flat[: x.size].reshape(x.shape)
    _call(op, d, x, out=o)
    np.testing.assert_array_equal(o, want)


@pytest.mark.parametrize("op", OPS)
def test_out_errors(op):
    x, dy = _x((3, 4, 5, 6), np.float32), _x((3, 4, 5, 6), np.float32, key=1)
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 4, 5, 6\)"):
        _call(op, dy, x, out=np.empty((3, 4, 5, 5), np.float32))
    with pytest.raises(TypeError, match="out: expected dtype float32"):
        _call(op, dy, x, out=np.empty(x.shape))
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out: array is read-only"):
        _call(op, dy, x, out=ro)
    with pytest.raises(TypeError, match="out: expected a numpy.ndarray"):
        _call(op, dy, x, out=[0.0])
    needs = (False, True) if op == "rms" else (False, True, True)
    with pytest.raises(ValueError, match=r"out: given, but needs\[0\]"):
        _call(op, dy, x, out=np.empty_like(x), needs=needs)


# ---- argument errors name the argument ------------------------------------------------

def _stat_shapes(op, x):
    n, c = x.shape[:2]
    return {"layer": x.shape[:-1] + (1,), "rms": x.shape[:-1] + (1,), "group": (n, 2), "instance": (n, c),
            "batch": (c,)}[op]


@pytest.mark.parametrize("op", OPS)
def test_argument_errors(op):
    x, dy = _x((3, 4, 5, 6)), _x((3, 4, 5, 6), key=1)
    shape = _stat_shapes(op, x)
    ok = np.ones(shape)
    with pytest.raises(ValueError, match=r"grad_out: expected x's shape \(3, 4, 5, 6\), got \(3, 4, 5, 5\)"):
        _call(op, dy[..., :5], x)
    with pytest.raises(TypeError, match="grad_out: expected a real"):
        _call(op, dy.astype(complex), x)
    with pytest.raises(TypeError, match="x: expected a real"):
        _call(op, dy, x.astype(object))
    # a stat of the wrong shape: exactly return_stats' shape is accepted (not a squeezed or flat one)
    for bad in (ok.reshape(-1)[:-1], ok.reshape(-1) if len(shape) > 1 else ok[None], np.ones(shape + (1,))):
        stats = (bad,) if op == "rms" else (bad, ok)
        with pytest.raises(ValueError, match=rf"{'rstd' if op == 'rms' else 'mean'}: expected shape "
                                             rf"{re.escape(str(shape))}"):
            _call(op, dy, x, stats)
        if op != "rms":
            with pytest.raises(ValueError, match=rf"rstd: expected shape {re.escape(str(shape))}"):
                _call(op, dy, x, (ok, bad))
    with pytest.raises(TypeError, match="mean|rstd"):
        _call(op, dy, x, (ok.astype(complex),) if op == "rms" else (ok.astype(complex), ok))
    if op != "rms":  # only one of mean/rstd
        with pytest.raises(ValueError, match="rstd: expected an array of shape .* alongside mean"):
            _call(op, dy, x, (ok, None))
        with pytest.raises(ValueError, match="mean: expected an array of shape .* alongside rstd"):
            _call(op, dy, x, (None, ok))
    k = 2 if op == "rms" else 3
    for bad_needs, error in (((True,) * (k + 1), ValueError), ((True,) * (k - 1), ValueError),
                             (True, TypeError), ((1,) * k, TypeError), ("ab" if k == 2 else "abc", TypeError),
                             (None, TypeError)):
        with pytest.raises(error, match=rf"needs: expected a tuple of {k} bools"):
            _call(op, dy, x, needs=bad_needs)
    for bad_eps, error in ((-1.0, ValueError), (float("nan"), ValueError), ("1e-5", TypeError)):
        with pytest.raises(error, match="eps: expected a finite float >= 0"):
            _call(op, dy, x, eps=bad_eps)
    with pytest.raises(ValueError, match=r"weight: expected shape"):
        _call(op, dy, x, weight=np.ones(7))
    if op == "rms":
        return
    with pytest.raises(ValueError, match=r"bias: expected shape"):
        _call(op, dy, x, bias=np.ones(7))
    with pytest.raises(ValueError, match="activation: expected None, 'relu', 'silu' or 'gelu'"):
        _call(op, dy, x, activation="tanh")


def test_argument_errors_of_the_channel_variants():
    x, dy = _x((3, 4, 5)), _x((3, 4, 5), key=1)
    with pytest.raises(ValueError, match="num_groups: expected a divisor of the number of channels 4, got 3"):
        cnorm.group_norm_backward(dy, x, 3)
    with pytest.raises(TypeError, match="num_groups: expected an int"):
        cnorm.group_norm_backward(dy, x, 2.0)
    with pytest.raises(ValueError, match="num_groups: expected an int >= 1"):
        cnorm.group_norm_backward(dy, x, 0)
    for f in (lambda **k: cnorm.group_norm_backward(dy, x, 2, **k), lambda **k: cnorm.instance_norm_backward(dy, x, **k),
              lambda **k: cnorm.batch_norm_backward(dy, x, **k)):
        with pytest.raises(ValueError, match="axis: 3 is out of bounds"):
            f(axis=3)
        with pytest.raises(TypeError, match="axis: expected an int"):
            f(axis=1.0)
    with pytest.raises(ValueError, match="axis: the channel axis cannot be axis 0"):
        cnorm.group_norm_backward(dy, x, 2, axis=0)
    with pytest.raises(ValueError, match="x: expected at least 2 dims"):
        cnorm.batch_norm_backward(dy[0, 0], x[0, 0])
    with pytest.raises(ValueError, match="normalized_shape: expected the trailing dims of x"):
        cnorm.layer_norm_backward(dy, x, 4)
    with pytest.raises(ValueError, match="x: cannot normalize over a size-0 normalized_shape"):
        cnorm.layer_norm_backward(np.zeros((2, 0)), np.zeros((2, 0)), 0)
    # instance norm's (C,) statistics of use_input_stats=False are batch_norm_backward's
    _, m, r = cnorm.instance_norm(x, np.zeros(4), np.ones(4), use_input_stats=False, return_stats=True)
    with pytest.raises(ValueError, match=r"mean: expected shape \(3, 4\), got \(4,\).*batch_norm_backward"):
        cnorm.instance_norm_backward(dy, x, m, r)
    g = cnorm.batch_norm_backward(dy, x, m, r, training=False)
    np.testing.assert_allclose(g.x, dy * r[None, :, None], rtol=1e-12)
    with pytest.raises(ValueError, match="x: expected more than 1 spatial element"):
        cnorm.instance_norm_backward(dy[..., :1], x[..., :1])
    with pytest.raises(ValueError, match="x: expected more than 1 value per channel when training"):
        cnorm.batch_norm_backward(dy[:1, :, :1], x[:1, :, :1])
    with pytest.raises(ValueError, match=r"mean: expected the statistics the forward used.*training=False"):
        cnorm.batch_norm_backward(dy, x, training=False)


def test_batch_norm_eval_backward_treats_the_stats_as_constants():
    x, dy = _x((3, 4, 5)), _x((3, 4, 5), key=1)
    rm, rv, w = np.linspace(-1, 1, 4), np.linspace(0.5, 2, 4), np.linspace(0.5, 1.5, 4)
    _, m, r = cnorm.batch_norm(x, rm, rv, w, return_stats=True)
    g = cnorm.batch_norm_backward(dy, x, m, r, w, training=False)
    np.testing.assert_allclose(g.x, dy * (w * r)[None, :, None], rtol=1e-12)
    np.testing.assert_allclose(g.bias, dy.sum((0, 2)), rtol=1e-12)
    np.testing.assert_allclose(g.weight, (dy * (x - m[:, None]) * r[:, None]).sum((0, 2)), rtol=1e-10)


def test_rms_norm_backward_default_eps_is_the_forwards():
    x, dy = _x((4, 8), np.float32), _x((4, 8), np.float32, key=1)
    _, r = cnorm.rms_norm(x, 8, return_stats=True)
    a = cnorm.rms_norm_backward(dy, x, 8).x
    b = cnorm.rms_norm_backward(dy, x, 8, eps=float(np.finfo(np.float32).eps)).x
    np.testing.assert_array_equal(a, b)


# ---- cnorm.nn ---------------------------------------------------------------------------

NN_CASES = [
    ("BatchNorm1d", dict(num_features=4), (8, 4)),
    ("BatchNorm2d", dict(num_features=4), (3, 4, 5, 2)),
    ("BatchNorm2d", dict(num_features=4, affine=False, track_running_stats=False), (3, 4, 5, 2)),
    ("BatchNorm3d", dict(num_features=4, bias=False), (2, 4, 3, 2, 2)),
    ("InstanceNorm1d", dict(num_features=4), (3, 4, 6)),
    ("InstanceNorm1d", dict(num_features=4, affine=True), (4, 6)),  # unbatched
    ("InstanceNorm2d", dict(num_features=4, affine=True, track_running_stats=True), (3, 4, 5, 2)),
    ("LayerNorm", dict(normalized_shape=6), (3, 5, 6)),
    ("LayerNorm", dict(normalized_shape=(5, 6), bias=False), (3, 5, 6)),
    ("GroupNorm", dict(num_groups=2, num_channels=4), (3, 4, 5)),
    ("RMSNorm", dict(normalized_shape=6), (3, 5, 6)),
    ("RMSNorm", dict(normalized_shape=6, elementwise_affine=False), (3, 5, 6)),
]
NN_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}-{len(s)}d" for name, kw, s in NN_CASES]


def _module(name, kw):
    m = getattr(cnn, name)(**kw)
    for key in ("weight", "bias"):  # parameters other than ones and zeros
        p = getattr(m, key)
        if p is not None:
            p[...] = np.linspace(0.5, 1.5, p.size).reshape(p.shape)
    return m


def _functional(m, x, dy, training):
    """The functional backward of module m's forward on x."""
    w, b, eps = m.weight, getattr(m, "bias", None), m.eps
    name = type(m).__name__
    needs = (True, w is not None, b is not None)
    if name.startswith("BatchNorm"):
        if training or m.running_mean is None:
            _, mean, rstd = cnorm.batch_norm(x, None, None, w, b, True, eps=eps, return_stats=True)
            return cnorm.batch_norm_backward(dy, x, mean, rstd, w, True, eps=eps, needs=needs)
        with np.errstate(divide="ignore"):
            rstd = 1 / np.sqrt(m.running_var.astype(np.float64) + eps)
        return cnorm.batch_norm_backward(dy, x, m.running_mean, rstd, w, False, eps=eps, needs=needs)
    if name.startswith("InstanceNorm"):
        unbatched = x.ndim == m._input_dims[0]
        xb, db = (x[None], dy[None]) if unbatched else (x, dy)
        if training or m.running_mean is None:
            g = cnorm.instance_norm_backward(db, xb, None, None, w, bias=b, eps=eps, needs=needs)
        else:
            rstd = 1 / np.sqrt(m.running_var.astype(np.float64) + eps)
            g = cnorm.batch_norm_backward(db, xb, m.running_mean, rstd, w, False, eps=eps, needs=needs)
        return g._replace(x=g.x[0]) if unbatched else g
    if name == "LayerNorm":
        return cnorm.layer_norm_backward(dy, x, m.normalized_shape, None, None, w, bias=b, eps=eps, needs=needs)
    if name == "RMSNorm":
        return cnorm.rms_norm_backward(dy, x, m.normalized_shape, None, w, eps=eps, needs=needs[:2])
    return cnorm.group_norm_backward(dy, x, m.num_groups, None, None, w, bias=b, eps=eps, needs=needs)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name, kw, shape", NN_CASES, ids=NN_IDS)
def test_module_backward_equals_the_functional_backward(name, kw, shape, training):
    m = _module(name, kw).train(training)
    x, dy = _x(shape, np.float32), _x(shape, np.float32, key=1)
    if not training and getattr(m, "running_mean", None) is not None:
        m.running_mean[...] = np.linspace(-0.5, 0.5, m.running_mean.size)
        m.running_var[...] = np.linspace(0.5, 2, m.running_var.size)
    keys = [k for k in ("weight", "bias") if getattr(m, k, None) is not None]
    assert sorted(m.grad) == sorted(keys) and set(keys) <= set(m.state_dict())
    assert all(np.all(g == 0) and g.shape == getattr(m, k).shape for k, g in m.grad.items())
    want = _functional(m, x, dy, training)
    m(x)
    gx = m.backward(dy)
    np.testing.assert_allclose(gx, want.x, rtol=2e-5, atol=2e-5)
    assert gx.shape == x.shape and gx.dtype == x.dtype
    for key, g in (("weight", want.weight), ("bias", want.bias)):
        if key in m.grad:
            np.testing.assert_allclose(m.grad[key], g, rtol=2e-5, atol=2e-5)
    # a second forward/backward adds into grad; zero_grad clears it in place
    m(x)
    m.backward(dy)
    for key, g in (("weight", want.weight), ("bias", want.bias)):
        if key in m.grad:
            np.testing.assert_allclose(m.grad[key], 2 * g, rtol=2e-5, atol=2e-5)
    held = dict(m.grad)
    m.zero_grad()
    assert all(m.grad[k] is held[k] and np.all(m.grad[k] == 0) for k in held)


def test_module_backward_without_forward_raises():
    ln = cnn.LayerNorm(6)
    with pytest.raises(RuntimeError, match=r"LayerNorm.backward: no forward.*call the module on an input first"):
        ln.backward(np.ones((2, 6)))
    ln(np.ones((2, 6)) + np.arange(6))
    ln.backward(np.ones((2, 6)))
    with pytest.raises(RuntimeError, match="each forward serves one backward"):
        ln.backward(np.ones((2, 6)))


def test_module_forward_that_raises_leaves_nothing_to_go_back_through():
    bn = cnn.BatchNorm2d(4)
    bn(_x((3, 4, 5, 2)))
    with pytest.raises(ValueError):
        bn(_x((3, 4, 5)))  # 3-D input to a BatchNorm2d
    with pytest.raises(RuntimeError, match="no forward"):
        bn.backward(np.ones((3, 4, 5, 2)))


def test_module_backward_grad_out_shape():
    inn = cnn.InstanceNorm1d(4, affine=True)
    inn(_x((4, 6)))  # unbatched
    with pytest.raises(ValueError, match=r"grad_out: expected the forward input's shape \(4, 6\), got \(1, 4, 6\)"):
        inn.backward(np.ones((1, 4, 6)))


def test_module_forward_in_place_keeps_a_copy_of_x():
    x = _x((3, 5, 6), np.float32)
    dy = _x(x.shape, np.float32, key=1)
    ref = cnn.LayerNorm(6)
    ref(x)
    want = ref.backward(dy)
    ln = cnn.LayerNorm(6)
    xx = x.copy()
    ln(xx, out=xx)  # overwrites its input: the module must have kept x
    np.testing.assert_array_equal(ln.backward(dy), want)


def test_module_eval_batch_norm_uses_the_running_stats_as_constants():
    bn = cnn.BatchNorm1d(3).eval()
    bn.running_mean[...] = [0.5, -1, 2]
    bn.running_var[...] = [1, 4, 0.25]
    bn.weight[...] = [1, 2, 3]
    x, dy = _x((5, 3), np.float32), _x((5, 3), np.float32, key=1)
    bn(x)
    gx = bn.backward(dy)
    np.testing.assert_allclose(gx, dy * bn.weight / np.sqrt(bn.running_var + bn.eps), rtol=1e-6)
    np.testing.assert_allclose(bn.grad["bias"], dy.sum(0), rtol=1e-5)


def test_module_train_step_lowers_the_loss():
    """One SGD step with module.backward/module.grad lowers a quadratic loss."""
    ln = cnn.LayerNorm(8)
    x = _x((16, 8), np.float32)
    target = _x((16, 8), np.float32, key=1)

    def loss():
        return float(np.mean((ln.eval()(x) - target) ** 2))

    before = loss()
    ln.train()
    y = ln(x)
    ln.backward(2 * (y - target) / y.size)
    for key, g in ln.grad.items():
        getattr(ln, key)[...] -= 0.5 * g
    assert loss() < before


def test_readme_training_example_runs():
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = text[text.index("## Training: backward passes"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md (training example)", "exec"), {})
