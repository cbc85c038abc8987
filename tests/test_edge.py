"""Edge-inference features: native float16/bfloat16 storage (at most 2 ulp
of the output format from the float64 reference), fused activations
(against the unfused reference) and Conv-BN folding."""
import numpy as np
import pytest

import cnorm
import reference as ref
from conftest import assert_close

try:
    import ml_dtypes

    HALVES = [np.float16, ml_dtypes.bfloat16]
except ImportError:  # bfloat16 is optional
    HALVES = [np.float16]


def ulp(values, dtype):
    """Spacing of the output format at each reference value."""
    v = np.abs(np.asarray(values, np.float64))
    if np.dtype(dtype) == np.float16:
        return np.spacing(v.astype(np.float16)).astype(np.float64)
    # bfloat16: 8 significant bits, smallest normal 2**-126
    exponent = np.floor(np.log2(np.maximum(v, 2.0 ** -126)))
    return 2.0 ** (exponent - 7)


def assert_within_ulps(got, want, dtype, ulps=2):
    err = np.abs(np.asarray(got, np.float64) - want)
    bound = ulps * ulp(want, dtype)
    assert (err <= bound).all(), f"max error {np.max(err / bound) * ulps:.2f} ulp"


HALF_OPS = {
    "layer": (lambda m, x, w, b: m.layer_norm(x, 448, w, b), (448,)),
    "rms": (lambda m, x, w, b: m.rms_norm(x, 448, w, eps=1e-6), (448,)),
    "batch_train": (lambda m, x, w, b: m.batch_norm(x.reshape(8, 16, -1), None, None, w, b, True), (16,)),
    "batch_nhwc": (lambda m, x, w, b: m.batch_norm(x.reshape(8, -1, 16), None, None, w, b, True, axis=-1), (16,)),
    "instance": (lambda m, x, w, b: m.instance_norm(x.reshape(8, 16, -1), weight=w, bias=b), (16,)),
    "group": (lambda m, x, w, b: m.group_norm(x.reshape(8, 16, -1), 4, w, b), (16,)),
    "group_nhwc": (lambda m, x, w, b: m.group_norm(x.reshape(8, -1, 16), 4, w, b, axis=-1), (16,)),
}


@pytest.mark.parametrize("op", HALF_OPS)
@pytest.mark.parametrize("dtype", HALVES, ids=lambda d: np.dtype(d).name)
def test_half_storage_within_two_ulp(isa, rng, dtype, op):
    fn, pshape = HALF_OPS[op]
    x = (rng.standard_normal((8, 4 * 64 + 3 * 64)) * 3 + 5).astype(dtype)  # 448 per row: tails too
    w = rng.uniform(0.5, 2, pshape).astype(np.float32)
    b = rng.standard_normal(pshape).astype(np.float32)
    y = fn(cnorm, x, w, b)
    assert y.dtype == np.dtype(dtype)
    want = fn(ref, x.astype(np.float64), w, b)
    assert_within_ulps(y, want, dtype)


@pytest.mark.parametrize("dtype", HALVES, ids=lambda d: np.dtype(d).name)
def test_half_moments_and_specials(isa, dtype):
    x = np.array([[1, 2, 3, 4, 5, 6, 7, 8, 9], [np.inf, 1, 1, 1, 1, 1, 1, 1, 1]], dtype)
    mean, var = cnorm.moments(x, axis=1)
    assert mean.dtype == np.dtype(dtype)
    assert float(mean[0]) == 5.0 and float(var[0]) == pytest.approx(60 / 9, rel=1e-2)
    y = cnorm.layer_norm(x, 9)
    assert np.isfinite(y[0].astype(np.float32)).all() and np.isnan(y[1].astype(np.float32)).all()


ACTS = ["relu", "silu", "gelu"]
ACT_OPS = {
    "batch_eval": lambda m, x, act: m.batch_norm(x, np.linspace(-1, 1, 8), np.linspace(0.5, 2, 8),
                                                 np.linspace(0.5, 1.5, 8), np.linspace(-1, 1, 8),
                                                 activation=act),
    "batch_train_nhwc": lambda m, x, act: m.batch_norm(np.ascontiguousarray(np.moveaxis(x, 1, -1)), training=True,
                                                       axis=-1, activation=act),
    "instance": lambda m, x, act: m.instance_norm(x, activation=act),
    "group": lambda m, x, act: m.group_norm(x, 4, np.linspace(0.5, 2, 8), np.linspace(-2, 2, 8), activation=act),
    "layer": lambda m, x, act: m.layer_norm(x, (9, 11), activation=act),
}


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("op", ACT_OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_activation_matches_unfused_reference(isa, rng, dtype, op, act):
    x = (rng.standard_normal((5, 8, 9, 11)) * 2 + 1).astype(dtype)
    got = ACT_OPS[op](cnorm, x, act)
    want = ACT_OPS[op](ref, x, act)
    np.testing.assert_allclose(got, want, rtol=2e-6 if dtype == np.float32 else 1e-12,
                               atol=2e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("act", ACTS)
def test_fused_activation_half(isa, rng, act):
    x = (rng.standard_normal((4, 8, 33)) * 2).astype(np.float16)
    got = cnorm.group_norm(x, 2, activation=act)
    want = ref.group_norm(x.astype(np.float64), 2, activation=act)
    assert_within_ulps(got, want, np.float16)


def test_activation_keeps_nan_and_handles_extremes(isa):
    x = np.zeros((1, 2, 64), np.float32)
    x[0, 0, :] = np.linspace(-1e4, 1e4, 64)  # normalized values reach +-1.7
    x[0, 1, 3] = np.nan
    for act in ACTS:
        y = cnorm.instance_norm(x, activation=act)
        assert np.isfinite(y[0, 0]).all()
        assert np.isnan(y[0, 1]).all()
    big = np.array([[-200.0, -90.0, 0.0, 90.0, 200.0] * 4], np.float32)
    for act in ACTS:
        y = cnorm.batch_norm(big.T.reshape(20, 1), np.zeros(1), np.ones(1), np.full(1, 80.0),
                             np.zeros(1), eps=0.0, activation=act)
        want = ref.batch_norm(big.T.reshape(20, 1), np.zeros(1), np.ones(1), np.full(1, 80.0),
                              np.zeros(1), eps=0.0, activation=act)
        assert_close(y, want, np.float32)


def test_bad_activation():
    with pytest.raises(ValueError, match="activation"):
        cnorm.group_norm(np.ones((2, 4, 3)), 2, activation="tanh")


@pytest.mark.parametrize("conv_bias", [False, True])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fold_batch_norm(rng, dtype, conv_bias, affine):
    c_out, c_in, k = 6, 3, 3
    w = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype) if conv_bias else None
    mean, var = rng.standard_normal(c_out), rng.uniform(0.5, 2, c_out)
    gamma = rng.uniform(0.5, 2, c_out) if affine else None
    beta = rng.standard_normal(c_out) if affine else None
    fw, fb = cnorm.fold_batch_norm(w, b, mean, var, gamma, beta, eps=1e-3)
    assert fw.dtype == fb.dtype == np.dtype(dtype) and fw.shape == w.shape and fb.shape == (c_out,)
    # the folded conv equals conv then batch norm on any input patches
    patches = rng.standard_normal((c_in * k * k, 50))
    conv = w.reshape(c_out, -1).astype(np.float64) @ patches + (0 if b is None else b[:, None])
    want = ref.batch_norm(conv.T, mean, var, gamma, beta, eps=1e-3)
    got = fw.reshape(c_out, -1).astype(np.float64) @ patches + fb[:, None]
    np.testing.assert_allclose(got.T, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
    rw, rb = ref.fold_batch_norm(w, b, mean, var, gamma, beta, eps=1e-3)
    assert_close(fw, rw, dtype)
    assert_close(fb, rb, dtype)


def test_fold_batch_norm_errors():
    w = np.ones((4, 2))
    with pytest.raises(ValueError, match="running_var"):
        cnorm.fold_batch_norm(w, None, np.zeros(4), np.ones(3), None, None)
    with pytest.raises(ValueError, match="eps"):
        cnorm.fold_batch_norm(w, None, np.zeros(4), np.ones(4), None, None, eps=-1.0)
    with pytest.raises(ValueError, match="conv_bias"):
        cnorm.fold_batch_norm(w, np.ones(5), np.zeros(4), np.ones(4), None, None)
