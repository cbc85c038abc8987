"""add_layer_norm / add_rms_norm (DESIGN.md 3.2) on every ISA path: the
stored sum, y bitwise equal to the plain norm of that sum, y against the
float64 reference, broadcast residuals, in-place forms, and bad input."""
import numpy as np
import pytest

import cnorm
import reference as ref
from conftest import assert_close

try:
    import ml_dtypes
    BF16 = [ml_dtypes.bfloat16]
except ImportError:  # bfloat16 needs ml_dtypes; the C tests cover it regardless
    BF16 = []
DTYPES = [np.float32, np.float64, np.float16] + BF16
# (x shape, residual shape, normalized_shape): full, broadcast over the batch,
# over everything but the row, a leading size-1 dim, two normalized dims,
# and a row longer than the kernels' block (CNORM_ROW_BLOCK)
CASES = [((3, 5, 768), (3, 5, 768), 768), ((4, 7, 33), (7, 33), 33), ((6, 1001), (1001,), 1001),
         ((2, 3, 16), (1, 3, 16), 16), ((2, 4, 6, 5), (4, 6, 5), (6, 5)), ((2, 70001), (2, 70001), 70001)]


def compute_sum(x, r, skip, dtype):
    """The sum as cnorm defines it: each add in float32 (float64 for
    float64), rounded once to x's dtype."""
    c = np.float64 if dtype == np.float64 else np.float32
    s = x.astype(c) + r.astype(c)
    if skip is not None:
        s = s + skip.astype(c)
    return s.astype(dtype)


def inputs(rng, xs, rs, ns, dtype, skip):
    x = (rng.standard_normal(xs) * 2 + 3).astype(dtype)
    r = (rng.standard_normal(rs) - 1).astype(dtype)
    k = ns if isinstance(ns, tuple) else (ns,)
    w, b = rng.uniform(0.5, 1.5, k).astype(np.float32), rng.standard_normal(k).astype(np.float32)
    sb = rng.standard_normal(k).astype(np.float32) if skip else None
    return x, r, w, b, sb


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])) + "+" + "x".join(map(str, c[1])))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_add_layer_norm(isa, rng, dtype, case, skip):
    xs, rs, ns = case
    x, r, w, b, sb = inputs(rng, xs, rs, ns, dtype, skip)
    y, s = cnorm.add_layer_norm(x, r, ns, w, b, 1e-5, skip_bias=sb, activation="gelu")
    assert y.dtype == s.dtype == x.dtype and y.shape == s.shape == x.shape
    np.testing.assert_array_equal(s, compute_sum(x, r, sb, dtype))
    # y is the plain layer norm of the stored sum, bit for bit
    np.testing.assert_array_equal(y, cnorm.layer_norm(s, ns, w, b, 1e-5, activation="gelu"))
    want, want_s = ref.add_layer_norm(x, r, ns, w, b, 1e-5, skip_bias=sb, activation="gelu")
    assert_close(s, want_s, dtype)
    assert_close(y, ref.layer_norm(s, ns, w, b, 1e-5, activation="gelu"), dtype)


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])) + "+" + "x".join(map(str, c[1])))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_add_rms_norm(isa, rng, dtype, case, skip):
    xs, rs, ns = case
    x, r, w, _, sb = inputs(rng, xs, rs, ns, dtype, skip)
    y, s = cnorm.add_rms_norm(x, r, ns, w, skip_bias=sb)
    np.testing.assert_array_equal(s, compute_sum(x, r, sb, dtype))
    np.testing.assert_array_equal(y, cnorm.rms_norm(s, ns, w))  # eps=None: x's machine epsilon in both
    want, want_s = ref.add_rms_norm(x, r, ns, w, skip_bias=sb)
    assert_close(s, want_s, dtype)
    assert_close(y, ref.rms_norm(s, ns, w, ref._default_eps(x)), dtype)


@pytest.mark.parametrize("op", ["layer", "rms"])
def test_in_place_forms(rng, op):
    """sum_out=residual (vLLM's fused_add_rms_norm) and out=x write the
    results where asked; a broadcast residual is read before it is
    overwritten by nothing."""
    fn = cnorm.add_layer_norm if op == "layer" else cnorm.add_rms_norm
    x = rng.standard_normal((8, 64), dtype=np.float32)
    r = rng.standard_normal((8, 64), dtype=np.float32)
    want_y, want_s = fn(x, r, 64)
    res = r.copy()
    y, s = fn(x, res, 64, sum_out=res)
    assert s is res
    np.testing.assert_array_equal(res, want_s)
    np.testing.assert_array_equal(y, want_y)
    xx, res = x.copy(), r.copy()
    y, s = fn(xx, res, 64, out=xx, sum_out=res)
    assert y is xx and s is res
    np.testing.assert_array_equal(xx, want_y)
    np.testing.assert_array_equal(res, want_s)
    xx = x.copy()
    y, s = fn(xx, r, 64, sum_out=xx)  # the sum replaces x
    assert s is xx
    np.testing.assert_array_equal(xx, want_s)
    np.testing.assert_array_equal(y, want_y)
    res = r.copy()
    y, s = fn(x, res, 64, out=res)  # y replaces the (full-shape) residual
    assert y is res
    np.testing.assert_array_equal(res, want_y)
    np.testing.assert_array_equal(s, want_s)


@pytest.mark.parametrize("op", ["layer", "rms"])
def test_overlap_and_strided_outputs(rng, op):
    """Outputs that overlap the inputs partially, strided and non-native
    ones, and inputs with any strides give the same answer."""
    fn = cnorm.add_layer_norm if op == "layer" else cnorm.add_rms_norm
    buf = rng.standard_normal((9, 32), dtype=np.float32)
    x, r = buf[:8].copy(), buf[1:].copy()
    want_y, want_s = fn(x, r, 32)
    b2 = buf.copy()
    y, s = fn(b2[:8], b2[1:], 32, out=b2[1:], sum_out=None)  # y over the residual shifted by one row
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(s, want_s)
    b2 = buf.copy()
    y, s = fn(b2[:8], b2[1:], 32, sum_out=b2[:8][::-1][::-1])
    np.testing.assert_array_equal(s, want_s)
    np.testing.assert_array_equal(y, want_y)
    for kw in ({"sum_out": "x"}, {"out": "x"}):  # the sum (or y) over x, whose row i+1 is residual row i
        b2 = buf.copy()
        want = fn(buf[1:].copy(), buf[:8].copy(), 32)
        target = b2[1:]
        y, s = fn(b2[1:], b2[:8], 32, **{k: target for k in kw})
        np.testing.assert_array_equal(y, want[0])
        np.testing.assert_array_equal(s, want[1])
    b2 = buf.copy()
    y, s = fn(b2[:8], b2[1], 32, out=b2[:8])  # in place over x, whose row 1 is the broadcast residual
    np.testing.assert_array_equal(s, fn(buf[:8], buf[1].copy(), 32)[1])
    np.testing.assert_array_equal(y, fn(buf[:8], buf[1].copy(), 32)[0])
    out = np.empty((8, 64), np.float32)[:, ::2]
    so = np.empty((8, 32), ">f4")
    y, s = fn(x[:, ::-1][:, ::-1], np.asfortranarray(r), 32, out=out, sum_out=so)
    assert y is out and s is so
    np.testing.assert_array_equal(out, want_y)
    np.testing.assert_array_equal(so, want_s)


def test_deterministic_across_threads(rng, threads):
    x = rng.standard_normal((64, 4096), dtype=np.float32)
    r = rng.standard_normal((64, 4096), dtype=np.float32)
    got = []
    for n in (1, 2):
        cnorm.set_num_threads(n)
        got.append(cnorm.add_layer_norm(x, r, 4096) + cnorm.add_rms_norm(x, r, 4096))
    for a, b in zip(*got):
        np.testing.assert_array_equal(a, b)


def test_dtypes_and_empty(rng):
    x = rng.standard_normal((3, 8), dtype=np.float32)
    y, s = cnorm.add_layer_norm(x, np.ones((3, 8), np.float64), 8)  # another residual dtype: converted
    assert y.dtype == s.dtype == np.float32
    np.testing.assert_array_equal(s, x + np.float32(1))
    yi, si = cnorm.add_rms_norm(np.arange(16).reshape(2, 8), np.ones(8, np.int64), 8)
    assert yi.dtype == si.dtype == np.float64  # integers compute in float64, as np.mean
    np.testing.assert_array_equal(si, np.arange(16).reshape(2, 8) + 1.0)
    y, s = cnorm.add_layer_norm(np.empty((0, 8), np.float32), np.empty((8,), np.float32), 8)
    assert y.shape == s.shape == (0, 8)


@pytest.mark.parametrize("call, err, match", [
    (lambda x: cnorm.add_layer_norm(x, x[:, :4], 8), ValueError, "residual: expected x's shape"),
    (lambda x: cnorm.add_layer_norm(x, x[:2], 8), ValueError, "residual: expected"),
    (lambda x: cnorm.add_rms_norm(x, np.ones((2, 3, 8)), 8), ValueError, "residual: expected"),
    (lambda x: cnorm.add_layer_norm(x, x.astype(complex), 8), TypeError, "residual: expected a real"),
    (lambda x: cnorm.add_layer_norm(x, x, 8, skip_bias=np.ones(7)), ValueError, "skip_bias: expected shape"),
    (lambda x: cnorm.add_layer_norm(x, x, 8, sum_out=np.empty((3, 8))), TypeError, "sum_out: expected dtype"),
    (lambda x: cnorm.add_rms_norm(x, x, 8, sum_out=np.empty((3, 7), np.float32)), ValueError, "sum_out: expected shape"),
    (lambda x: cnorm.add_rms_norm(x, x, 8, sum_out=[0] * 24), TypeError, "sum_out: expected a numpy.ndarray"),
    (lambda x: cnorm.add_layer_norm(x, x, 8, out=x, sum_out=x), ValueError, "sum_out: must not share memory"),
    (lambda x: cnorm.add_layer_norm(x, x, 8, eps=-1.0), ValueError, "eps"),
    (lambda x: cnorm.add_rms_norm(x, x, 7), ValueError, "normalized_shape"),
    (lambda x: cnorm.add_layer_norm(x, x, 8, activation="tanh"), ValueError, "activation"),
    (lambda x: cnorm.add_layer_norm(x, x, 8, np.ones(3)), ValueError, "weight: expected shape"),
])
def test_errors(call, err, match):
    x = np.ones((3, 8), np.float32)
    ro = np.ones((3, 8), np.float32)
    ro.flags.writeable = False
    with pytest.raises(err, match=match):
        call(x)
    with pytest.raises(ValueError, match="sum_out: array is read-only"):
        cnorm.add_rms_norm(x, ro, 8, sum_out=ro)
