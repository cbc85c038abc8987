"""Pathological values: data near the float32 maximum (float lanes would
overflow), all-denormal rows, constant rows, one element per group, and
eps = 0 on a constant row (defined: the group normalizes to 0, y = bias)."""
import numpy as np
import pytest

import cnorm
import reference as ref
from conftest import assert_close

OPS = {
    "layer": (lambda m, x, **k: m.layer_norm(x, x.shape[-1], **k)),
    "batch_nchw": (lambda m, x, **k: m.batch_norm(x.reshape(4, 8, -1), training=True, **k)),
    "batch_nhwc": (lambda m, x, **k: m.batch_norm(x.reshape(4, -1, 8), training=True, axis=-1, **k)),
    "instance": (lambda m, x, **k: m.instance_norm(x.reshape(4, 8, -1), **k)),
    "group_nchw": (lambda m, x, **k: m.group_norm(x.reshape(4, 8, -1), 2, **k)),
    "group_nhwc": (lambda m, x, **k: m.group_norm(x.reshape(4, -1, 8), 2, axis=-1, **k)),
    "rms": (lambda m, x, **k: m.rms_norm(x, x.shape[-1], **k)),
}


def values(rng, kind, shape):
    if kind == "near_max":  # spread and offset both ~1e38: every difference overflows float
        return rng.uniform(-3.4e38, 3.4e38, shape).astype(np.float32)
    if kind == "near_max_positive":
        return rng.uniform(3.0e38, 3.4e38, shape).astype(np.float32)
    if kind == "denormal":
        return (rng.uniform(-1, 1, shape) * 1e-39).astype(np.float32)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["near_max", "near_max_positive", "denormal"])
@pytest.mark.parametrize("op", OPS)
def test_extreme_magnitudes(isa, rng, op, kind):
    x = values(rng, kind, (4, 8 * 96))
    eps = 0.0 if kind == "denormal" else 1e-5  # denormal spread only shows with eps = 0
    kwargs = {"eps": eps}
    got = OPS[op](cnorm, x, **kwargs)
    want = OPS[op](ref, x.astype(np.float64), **kwargs)
    assert np.isfinite(got).all()
    assert_close(got, want, np.float32)


@pytest.mark.parametrize("eps", [1e-5, 0.0])
@pytest.mark.parametrize("op", [o for o in OPS if o != "rms"])
def test_constant_groups_give_exactly_bias(isa, op, eps):
    x = np.full((4, 8 * 33), 123.25, np.float32)
    assert (OPS[op](cnorm, x, eps=eps) == 0).all()
    assert (OPS[op](cnorm, x, eps=eps, activation="relu") == 0).all()


@pytest.mark.parametrize("eps", [1e-5, 0.0])
def test_zero_rows_rms_norm(isa, eps):
    assert (cnorm.rms_norm(np.zeros((3, 40), np.float32), 40, eps=eps) == 0).all()


def test_constant_group_with_affine_and_eps_zero(isa):
    x = np.full((2, 4, 5), -7.0)
    w, b = np.arange(1.0, 5.0), np.arange(10.0, 14.0)
    y = cnorm.group_norm(x, 2, w, b, eps=0.0)
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(1, 4, 1), y.shape))
    _, mean, rstd = cnorm.layer_norm(x, 5, eps=0.0, return_stats=True)
    assert (mean == -7).all() and np.isinf(rstd).all()  # the statistics stay honest


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_one_element_per_group(isa, dtype):
    x = np.arange(12, dtype=dtype).reshape(3, 4, 1) - 5
    b = np.linspace(-1, 1, 4)
    assert (cnorm.layer_norm(x, 1) == 0).all()
    np.testing.assert_array_equal(cnorm.group_norm(x, 4, None, b, eps=0.0),
                                  np.broadcast_to(b.reshape(1, 4, 1), x.shape).astype(dtype))
    mean, var = cnorm.moments(x, axis=2)
    np.testing.assert_array_equal(mean, x[..., 0])
    np.testing.assert_array_equal(var, 0)


def test_moments_near_float_max(isa, rng):
    x = values(rng, "near_max", (8, 1000))
    # the variance (~1e76) is beyond float32: NumPy's cast to the result
    # dtype warns, as np.var on the same data does
    with pytest.warns(RuntimeWarning, match="overflow"):
        mean, var = cnorm.moments(x, axis=1)
    want_mean, want_var = ref.moments(x, axis=1)
    assert np.isfinite(mean).all()
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e33)
    assert np.isinf(var).all()   # inf is the right float32 answer
    mean64, var64 = cnorm.moments(x.astype(np.float64), axis=1)
    np.testing.assert_allclose(var64, want_var, rtol=1e-10)


# Eval batch norm with running statistics near the float maximum: x - mean
# overflows float (the SIMD apply) but not double (the scalar one, torch's
# folded form); such channels take the double apply on every ISA.
EVAL_LAYOUTS = {
    "nc": lambda x: x,                                                       # (N, C)
    "ncl": lambda x: np.ascontiguousarray(np.repeat(x[:, :, None], 3000, axis=2)),  # long rows: general path
    "nhwc": lambda x: np.ascontiguousarray(np.repeat(x[:, None, :], 3000, axis=1)),  # channels last
}


@pytest.mark.parametrize("layout", EVAL_LAYOUTS)
def test_eval_batch_norm_near_float_max_agrees_across_isas(isa, layout):
    x = EVAL_LAYOUTS[layout](np.array([[3e38, 1.0], [-3e38, 2.0]], np.float32))
    rm, rv = np.array([-3e38, 1.5], np.float32), np.array([3e38, 0.25], np.float32)
    axis = -1 if layout == "nhwc" else 1
    got = cnorm.batch_norm(x, rm, rv, axis=axis)
    want = ref.batch_norm(x.astype(np.float64), rm, rv, axis=axis)
    assert np.isfinite(got).all(), "x - running_mean overflowed float"
    assert_close(got, want, np.float32)  # [3.46e19, 0] in channel 0


# A negative running variance is not clamped (finite garbage): as torch and
# fold_batch_norm, var + eps < 0 gives NaN in that channel, and only there.
@pytest.mark.parametrize("n", [2, 64])  # the fast lane and the general path
def test_negative_running_var_gives_nan_as_torch(isa, rng, n):
    c = 4
    x = rng.standard_normal((n, c, 50)).astype(np.float32)
    rm = np.zeros(c, np.float32)
    rv = np.array([-1.0, 0.0, -1e-6, 1.0], np.float32)  # var + eps: < 0, eps, > 0, 1 + eps
    for y in (cnorm.batch_norm(x, rm, rv), cnorm.instance_norm(x, rm, rv, use_input_stats=False),
              cnorm.batch_norm(np.ascontiguousarray(x.transpose(0, 2, 1)), rm, rv, axis=-1).transpose(0, 2, 1)):
        assert np.isnan(y[:, 0]).all()
        assert np.isfinite(y[:, 1:]).all()
        with np.errstate(invalid="ignore"):
            want = ref.batch_norm(x.astype(np.float64), rm, rv)
        assert_close(y[:, 1:], want[:, 1:], np.float32)
    _, b = cnorm.fold_batch_norm(np.ones((c, 3)), None, rm, rv, None, None)
    assert np.isnan(b[0]) and np.isfinite(b[1:]).all()  # the fold agrees
    torch = pytest.importorskip("torch")
    t = torch.nn.functional.batch_norm(torch.from_numpy(x), torch.from_numpy(rm), torch.from_numpy(rv))
    np.testing.assert_array_equal(np.isnan(t.numpy()), np.isnan(cnorm.batch_norm(x, rm, rv)))


# moments of groups with infinities: the Welford update meets inf - inf,
# NumPy's sum does not; means and variances as np.mean/np.var.
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("axis", [1, 0, (0, 2)])  # rows, columns, split axes
def test_moments_of_infinite_groups_as_numpy(isa, dtype, axis):
    rows = np.array([[np.inf] * 6, [np.inf, 1, 2, 3, 4, 5], [np.inf, -np.inf, 0, 0, 0, 0], [np.nan, 1, 2, 3, 4, 5],
                     [-np.inf] * 6, [1, 2, 3, 4, 5, 6]])
    x = np.repeat(rows[:, :, None], 700, axis=2).astype(dtype)  # (6, 6, 700)
    if axis == 0:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))  # the groups down columns
    mean, var = cnorm.moments(x, axis=axis)
    with np.errstate(invalid="ignore"):
        want_mean, want_var = np.mean(x, axis=axis, dtype=np.float64), np.var(x, axis=axis, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(mean), np.isnan(want_mean))
    np.testing.assert_array_equal(np.isinf(mean), np.isinf(want_mean))
    np.testing.assert_array_equal(np.sign(mean[np.isinf(mean)]), np.sign(want_mean[np.isinf(want_mean)]))
    np.testing.assert_array_equal(np.isnan(var), np.isnan(want_var))


# float16 data with running statistics beyond float's range (a float64
# running mean of 1e39): the float apply would see mean = inf; such channels
# are applied in double on every ISA, as for float32 near FLT_MAX.
@pytest.mark.parametrize("axis", [1, -1])
def test_eval_batch_norm_half_with_running_stats_beyond_float(isa, axis):
    x = np.linspace(-4, 4, 2 * 2 * 4096).astype(np.float16).reshape(2, 2, 4096)
    if axis == -1:
        x = np.ascontiguousarray(x.transpose(0, 2, 1))
    rm, rv = np.array([1e39, 0.5]), np.array([1e78, 2.0])
    got = cnorm.batch_norm(x, rm, rv, axis=axis)
    want = ref.batch_norm(x.astype(np.float64), rm, rv, axis=axis)
    assert np.isfinite(got).all()
    assert_close(got, want, np.float16)


def test_running_var_plus_eps_zero_as_torch(isa):
    # var + eps == 0: rstd = inf, as torch (x == mean: NaN; else +-inf), not the bias
    x = np.array([[1.0, 2.0], [3.0, 2.0]], np.float32)
    rm, rv = np.array([1.0, 2.0], np.float32), np.zeros(2, np.float32)
    y = cnorm.batch_norm(x, rm, rv, eps=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = ref.batch_norm(x.astype(np.float64), rm, rv, eps=0.0)
    np.testing.assert_array_equal(y, want.astype(np.float32))
