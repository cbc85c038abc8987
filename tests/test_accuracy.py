"""Accuracy on ill-conditioned data (README, Guarantees: accuracy).

Offset data are rows of N(offset, 1).  Errors are measured against the
float64 two-pass reference (tests/reference.py) computed from the very same
inputs, so the rounding of the inputs themselves is not counted.
"""
import functools

import numpy as np
import pytest

import cnorm
import reference as ref

SEED = 20240611
CHANNEL_SHAPE = (8, 64, 32, 32)
GROUPS = 8


def _offset_data(shape, offset, dtype, seed=SEED):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + offset).astype(dtype)


@functools.lru_cache(maxsize=4)      # tests of one op/offset run together
def _cached_data(shape, offset, dtype_name):
    x = _offset_data(shape, offset, np.dtype(dtype_name))
    x.flags.writeable = False
    return x


# ------------------------------------------------------------ the ops, three ways
#
# Each op is (cnorm call, reference call, torch.nn.functional call, shape).
# cnorm/reference calls take (x, axis); torch always gets the NCHW tensor.

OPS = {
    "layer_norm": (
        lambda x, axis: cnorm.layer_norm(x, x.shape[-1]),
        lambda x, axis: ref.layer_norm(x, x.shape[-1]),
        lambda F, t: F.layer_norm(t, t.shape[-1:]),
        (64, 4096),
    ),
    "layer_norm_1x768": (
        lambda x, axis: cnorm.layer_norm(x, 768),
        lambda x, axis: ref.layer_norm(x, 768),
        lambda F, t: F.layer_norm(t, (768,)),
        (1, 768),
    ),
    "batch_norm": (
        lambda x, axis: cnorm.batch_norm(x, training=True, axis=axis),
        lambda x, axis: ref.batch_norm(x, training=True, axis=axis),
        lambda F, t: F.batch_norm(t, None, None, training=True),
        CHANNEL_SHAPE,
    ),
    "instance_norm": (
        lambda x, axis: cnorm.instance_norm(x, axis=axis),
        lambda x, axis: ref.instance_norm(x, axis=axis),
        lambda F, t: F.instance_norm(t),
        CHANNEL_SHAPE,
    ),
    "group_norm": (
        lambda x, axis: cnorm.group_norm(x, GROUPS, axis=axis),
        lambda x, axis: ref.group_norm(x, GROUPS, axis=axis),
        lambda F, t: F.group_norm(t, GROUPS),
        CHANNEL_SHAPE,
    ),
}
CHANNEL_OPS = {"batch_norm", "instance_norm", "group_norm"}

# cnorm layouts for the channel ops: contiguous NCHW (axis=1), contiguous
# NHWC (axis=-1), and an NCHW view of NHWC memory (axis=1).
LAYOUTS = ["nchw", "nhwc", "nchw_view_of_nhwc"]


def _cases():
    for name in OPS:
        for layout in (LAYOUTS if name in CHANNEL_OPS else ["rows"]):
            yield pytest.param(name, layout, id=f"{name}-{layout}")


op_layouts = pytest.mark.parametrize("name, layout", list(_cases()))


def _cnorm_error(name, layout, offset, dtype):
    """max |cnorm - reference| for op `name` on offset data in `layout`."""
    call, _, _, shape = OPS[name]
    x = _cached_data(shape, offset, np.dtype(dtype).name)
    expected = _reference(name, offset, np.dtype(dtype).name)
    if layout == "nhwc":
        y = np.moveaxis(call(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1), -1, 1)
    elif layout == "nchw_view_of_nhwc":
        y = call(np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1), 1)
    else:
        y = call(x, 1)
    assert y.dtype == dtype and y.shape == x.shape
    return float(np.max(np.abs(y.astype(np.float64) - expected)))


@functools.lru_cache(maxsize=4)
def _reference(name, offset, dtype_name):
    _, ref_call, _, shape = OPS[name]
    return ref_call(_cached_data(shape, offset, dtype_name), 1)


# ------------------------------------------------------------ float32, offset 1e4

@op_layouts
def test_float32_offset_1e4_error_bound(name, layout):
    err = _cnorm_error(name, layout, 1e4, np.float32)
    assert err < 1.2e-4, f"{name}/{layout}: max error {err:.3g}"


@pytest.mark.parametrize("name", list(OPS))
def test_float32_offset_1e4_ten_times_better_than_torch(name):
    torch = pytest.importorskip("torch")
    _, _, torch_call, shape = OPS[name]
    x = _cached_data(shape, 1e4, "float32")
    expected = _reference(name, 1e4, "float32")
    torch_err = float(np.max(np.abs(torch_call(torch.nn.functional, torch.from_numpy(x.copy())).numpy() - expected)))
    err = _cnorm_error(name, "nchw" if name in CHANNEL_OPS else "rows", 1e4, np.float32)
    assert err <= torch_err / 10, f"{name}: cnorm {err:.3g} vs torch {torch_err:.3g}"


# ------------------------------------------------------------ float64

@op_layouts
def test_float64_offset_1e4_near_machine_precision(name, layout):
    err = _cnorm_error(name, layout, 1e4, np.float64)
    assert err <= 1e-11, f"{name}/{layout}: max error {err:.3g}"


# ------------------------------------------------------------ float32, offset 1e6
#
# At 1e6 a float32 input is only known to ulp(1e6) = 0.0625 (std 1), but the
# reference sees the same float32 inputs, so that does not count.  What a
# float32 pipeline may lose is the rounding of the mean to float32: up to
# ulp(offset)/2 in x - mean, i.e. up to 0.03 in the output.  The 1e4
# contract above (1.2e-4 ~= ulp(1e4)/8) asks for a quarter of that; the same
# ulp-relative bound, ulp(offset)/8, is what we require at every offset.
# A sum/sum-of-squares pipeline fails it by orders of magnitude (its
# variance error is ~ offset**2 * 2**-24 = 6e4 here).

@op_layouts
@pytest.mark.parametrize("offset", [1e5, 1e6])
def test_float32_large_offset(name, layout, offset):
    bound = float(np.spacing(np.float32(offset))) / 8
    err = _cnorm_error(name, layout, offset, np.float32)
    assert err < bound, f"{name}/{layout} offset {offset:g}: max error {err:.3g} >= {bound:.3g}"


# ------------------------------------------------------------ moments

@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)])
def test_moments_offset_1e8(axis):
    x = _offset_data((256, 512), 1e8, np.float64)
    exp_mean, exp_var = ref.moments(x, axis=axis)
    naive_var = np.mean(x * x, axis=axis) - np.mean(x, axis=axis) ** 2
    # the data are hard: the textbook one-pass formula is useless on them
    assert np.max(np.abs(naive_var - exp_var) / exp_var) > 0.1
    mean, var = cnorm.moments(x, axis=axis)
    assert mean.shape == exp_mean.shape and var.shape == exp_var.shape
    np.testing.assert_allclose(mean, exp_mean, rtol=1e-14, atol=0)
    np.testing.assert_allclose(var, exp_var, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_moments_float_offset_variance(dtype):
    """float32 moments too: var of N(1e4, 1) rows to 1e-4 relative."""
    x = _offset_data((64, 4096), 1e4, dtype)
    _, exp_var = ref.moments(x, axis=1)
    _, var = cnorm.moments(x, axis=1)
    assert var.dtype == dtype
    np.testing.assert_allclose(var, exp_var, rtol=1e-4 if dtype == np.float32 else 1e-12)


# ------------------------------------------------------------ constant groups

CONSTANTS = [0.0, 1.0, -3.7, 1e4, 1e8 + 0.5, -1e30]
CONSTANT_OPS = {
    "layer_norm": lambda x, axis: cnorm.layer_norm(x, x.shape[-2:]),
    "batch_norm": lambda x, axis: cnorm.batch_norm(x, training=True, axis=axis),
    "instance_norm": lambda x, axis: cnorm.instance_norm(x, axis=axis),
    "group_norm": lambda x, axis: cnorm.group_norm(x, 4, axis=axis),
}


@pytest.mark.parametrize("name, layout", [("layer_norm", "nchw")] + [
    (name, layout) for name in list(CONSTANT_OPS)[1:] for layout in ("nchw", "nhwc")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_constant_groups_give_exact_zero(name, layout, dtype):
    """Every group constant (a different constant per pair of channels, so
    per group of group_norm(4) too) -> exactly 0 output, at a shape long
    enough to exercise SIMD lanes and chunk merges."""
    channel = np.repeat(np.array(CONSTANTS[::2] + CONSTANTS[-1:], dtype=dtype), 2)   # 8 channels
    x = np.broadcast_to(channel[:, None, None], (3, 8, 40, 41))
    if layout == "nhwc":
        y = CONSTANT_OPS[name](np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1)
    else:
        y = CONSTANT_OPS[name](np.ascontiguousarray(x), 1)
    assert y.dtype == dtype
    assert np.all(y == 0), f"nonzero outputs: {np.unique(y[y != 0])[:5]}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("value", CONSTANTS)
def test_constant_rows_layer_norm(value, dtype):
    """Constant rows at several lengths (SIMD tails, one chunk, many)."""
    for cols in (1, 7, 768, 4099):
        x = np.full((3, cols), value, dtype=dtype)
        y = cnorm.layer_norm(x, cols)
        assert np.all(y == 0), (cols, np.unique(y))
