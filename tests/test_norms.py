"""Every normalization against the float64 reference, over op x dtype x
layout x shape x affine x training, on every ISA path."""
import warnings

import numpy as np
import pytest

import cnorm
import reference as ref
from conftest import assert_close

DTYPES = [np.float32, np.float64, np.float16, np.int32]
CHANNEL_SHAPES = [(2, 3, 5, 7), (3, 4, 1, 6), (1, 8, 33), (4, 6, 2, 3, 5), (2, 64, 9, 9)]
LAYOUTS = ["nchw", "nhwc", "channels_last_view", "strided", "negative_stride"]


def make(rng, shape, dtype, scale=3.0, offset=0.5):
    x = rng.standard_normal(shape) * scale + offset
    if np.dtype(dtype).kind in "iu":
        x = np.round(x * 10)
    return x.astype(dtype)


def laid_out(rng, shape, dtype, layout):
    """A logical (N, C, *spatial) array in the given memory layout, with the
    channel axis to pass: (array, axis)."""
    if layout == "nhwc":  # channels-last array, axis=-1
        x = make(rng, (shape[0],) + shape[2:] + (shape[1],), dtype)
        return x, -1
    if layout == "channels_last_view":  # (N, C, H, W) view of NHWC memory
        x = make(rng, (shape[0],) + shape[2:] + (shape[1],), dtype)
        return np.moveaxis(x, -1, 1), 1
    if layout == "strided":
        big = make(rng, shape[:-1] + (2 * shape[-1],), dtype)
        return big[..., ::2], 1
    if layout == "negative_stride":
        return make(rng, shape, dtype)[::-1, :, ..., ::-1], 1
    return make(rng, shape, dtype), 1


def params(rng, c, affine):
    if not affine:
        return None, None
    return rng.uniform(0.5, 2.0, c), rng.standard_normal(c)


def result_dtype(dtype):
    return np.float64 if np.dtype(dtype).kind in "iu" else dtype


def check_layout_kept(x, y, layout):
    if layout == "channels_last_view":
        assert np.moveaxis(y, 1, -1).flags.c_contiguous


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", CHANNEL_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_train(isa, rng, dtype, shape, layout, affine):
    x, axis = laid_out(rng, shape, dtype, layout)
    c = x.shape[axis]
    w, b = params(rng, c, affine)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    rm_ref, rv_ref = rm.copy(), rv.copy()
    y = cnorm.batch_norm(x, rm, rv, w, b, True, 0.3, 1e-5, axis=axis)
    want = ref.batch_norm(x, rm_ref, rv_ref, w, b, True, 0.3, 1e-5, axis=axis)
    assert y.dtype == result_dtype(dtype) and y.shape == x.shape
    assert_close(y, want, y.dtype)
    np.testing.assert_allclose(rm, rm_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rv, rv_ref, rtol=1e-6, atol=1e-6)
    check_layout_kept(x, y, layout)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_eval(isa, rng, dtype, layout, affine):
    x, axis = laid_out(rng, (3, 5, 4, 6), dtype, layout)
    c = x.shape[axis]
    w, b = params(rng, c, affine)
    rm, rv = rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
    y = cnorm.batch_norm(x, rm, rv, w, b, eps=1e-3, axis=axis)
    assert_close(y, ref.batch_norm(x, rm, rv, w, b, eps=1e-3, axis=axis), y.dtype)
    check_layout_kept(x, y, layout)


def test_batch_norm_2d_and_no_running_stats(isa, rng):
    x = make(rng, (17, 5), np.float32)
    y = cnorm.batch_norm(x, training=True)
    assert_close(y, ref.batch_norm(x, training=True), np.float32)


@pytest.mark.parametrize("running", [False, True])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", CHANNEL_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_instance_norm(isa, rng, dtype, shape, layout, affine, running):
    x, axis = laid_out(rng, shape, dtype, layout)
    c = x.shape[axis]
    w, b = params(rng, c, affine)
    rm = rv = rm_ref = rv_ref = None
    if running:
        rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)
        rm_ref, rv_ref = rm.copy(), rv.copy()
    y = cnorm.instance_norm(x, rm, rv, w, b, momentum=0.2, axis=axis)
    assert_close(y, ref.instance_norm(x, rm_ref, rv_ref, w, b, momentum=0.2, axis=axis), dtype)
    if running:
        np.testing.assert_allclose(rm, rm_ref, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(rv, rv_ref, rtol=1e-6, atol=1e-6)
    check_layout_kept(x, y, layout)


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_instance_norm_running_stats_eval(isa, rng, layout):
    x, axis = laid_out(rng, (2, 3, 4, 5), np.float32, layout)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    y = cnorm.instance_norm(x, rm, rv, use_input_stats=False, axis=axis)
    assert_close(y, ref.instance_norm(x, rm, rv, use_input_stats=False, axis=axis), np.float32)


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm(isa, rng, dtype, layout, affine, groups):
    x, axis = laid_out(rng, (3, 8, 5, 3), dtype, layout)
    w, b = params(rng, 8, affine)
    y = cnorm.group_norm(x, groups, w, b, 1e-4, axis=axis)
    assert y.dtype == result_dtype(dtype)
    assert_close(y, ref.group_norm(x, groups, w, b, 1e-4, axis=axis), y.dtype)
    check_layout_kept(x, y, layout)


def test_group_norm_large_nhwc(isa, rng):
    """Enough rows to split the column statistics into parallel blocks."""
    x = make(rng, (2, 40, 41, 64), np.float32)
    y = cnorm.group_norm(x, 8, axis=-1)
    assert_close(y, ref.group_norm(x, 8, axis=-1), np.float32)


ROW_CASES = [((5, 7), 7), ((1, 768), 768), ((3, 4, 6), (4, 6)), ((2, 1, 1), 1), ((4, 70000), 70000), ((9,), 9)]


def row_input(rng, shape, dtype, layout):
    if layout == "strided":
        return make(rng, shape[:-1] + (2 * shape[-1],), dtype)[..., 1::2]
    if layout == "negative_stride":
        return make(rng, shape, dtype)[..., ::-1]
    return make(rng, shape, dtype)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "negative_stride"])
@pytest.mark.parametrize("case", ROW_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(isa, rng, dtype, case, layout, affine):
    shape, ns = case
    x = row_input(rng, shape, dtype, layout)
    wshape = (ns,) if np.ndim(ns) == 0 else ns
    w = rng.uniform(0.5, 2, wshape) if affine else None
    b = rng.standard_normal(wshape) if affine else None
    y = cnorm.layer_norm(x, ns, w, b)
    assert y.dtype == result_dtype(dtype) and y.shape == x.shape
    assert_close(y, ref.layer_norm(x, ns, w, b), y.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_return_stats(isa, rng, dtype):
    x = make(rng, (2, 3, 4, 5), dtype)
    y, mean, rstd = cnorm.layer_norm(x, (4, 5), eps=1e-3, return_stats=True)
    ry, rmean, rrstd = ref.layer_norm(x, (4, 5), eps=1e-3, return_stats=True)
    assert mean.shape == rstd.shape == (2, 3, 1, 1) and mean.dtype == rstd.dtype == dtype
    assert_close(y, ry, dtype)
    assert_close(mean, rmean, dtype)
    assert_close(rstd, rrstd, dtype)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("case", ROW_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm(isa, rng, dtype, case, affine):
    shape, ns = case
    x = make(rng, shape, dtype)
    wshape = (ns,) if np.ndim(ns) == 0 else ns
    w = rng.uniform(0.5, 2, wshape) if affine else None
    y = cnorm.rms_norm(x, ns, w)
    assert_close(y, ref.rms_norm(x, ns, w), y.dtype)


MOMENT_CASES = [((6, 7), None), ((6, 7), 0), ((6, 7), 1), ((3, 4, 5), (0, 2)), ((3, 4, 5), (1, 2)),
                ((3, 4, 5), (-1,)), ((2, 3, 4, 5), (1, 2)), ((50000,), 0), ((), None),
                # reduced axes around kept ones with rows >= 256: per-row stats, merged
                ((3, 4, 300), (0, 2)), ((2, 3, 5, 60), (0, 2, 3)), ((2, 3, 4, 257), (0, 1, 3)),
                ((300, 4, 3), (0, 2)), ((5, 2, 3, 256), (0, 3))]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy on ddof >= n
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("case", MOMENT_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_moments(isa, rng, dtype, case, ddof, keepdims, order):
    shape, axis = case
    x = np.asarray(make(rng, shape, dtype), order=order)
    mean, var = cnorm.moments(x, axis, ddof=ddof, keepdims=keepdims)
    want_mean, want_var = np.mean(x, axis, keepdims=keepdims), np.var(x.astype(np.float64), axis, ddof=ddof, keepdims=keepdims)
    assert np.shape(mean) == np.shape(want_mean) and mean.dtype == want_mean.dtype
    rmean, rvar = ref.moments(x, axis, ddof=ddof, keepdims=keepdims)
    assert_close(mean, rmean, mean.dtype)
    assert_close(var, rvar, mean.dtype)
    assert_close(var, want_var, mean.dtype)


# (shape, axis, ddof) with ddof >= the values reduced per result
DOF_CASES = [((5,), None, 5), ((5,), 0, 7), ((5,), None, 5.5), ((3, 4), 1, 4), ((3, 4), 0, 3),
             ((3, 4), -1, 4.0), ((2, 3, 4), (0, 2), 8), ((3, 4), None, 12)]


@pytest.mark.parametrize("spelling", ["fast", "general"])
@pytest.mark.parametrize("case", DOF_CASES, ids=[repr(c) for c in DOF_CASES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_moments_ddof_at_least_n(rng, dtype, case, spelling):
    """As np.var: one RuntimeWarning "Degrees of freedom <= 0 for slice"
    (pointing at the caller), var inf, NaN where the slice is constant."""
    shape, axis, ddof = case
    x = make(rng, shape, dtype)
    red = range(len(shape)) if axis is None else np.atleast_1d(axis) % len(shape)
    x[tuple(slice(None) if a in red else 0 for a in range(len(shape)))] = 2  # one constant slice: NaN
    # a plain array with a Python ddof takes the fast lane; np.float64 ddof and a tuple axis the general path
    args = (x, axis) if spelling == "fast" else (x, axis if axis is None else tuple(np.atleast_1d(axis)))
    dd = ddof if spelling == "fast" else np.float64(ddof)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_mean, want_var = np.mean(x, axis), np.var(x, axis, ddof=ddof)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mean, var = cnorm.moments(*args, ddof=dd)
    assert [str(w.message) for w in caught] == ["Degrees of freedom <= 0 for slice"]
    assert caught[0].category is RuntimeWarning and caught[0].filename == __file__
    assert var.dtype == want_var.dtype and np.shape(var) == np.shape(want_var)
    np.testing.assert_array_equal(var, want_var)  # inf and NaN in the same places
    assert_close(mean, want_mean, mean.dtype)


@pytest.mark.parametrize("spelling", ["fast", "general"])
def test_moments_ddof_below_n_does_not_warn(rng, spelling):
    x = make(rng, (3, 5), np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, var = cnorm.moments(x, 1 if spelling == "fast" else (1,), ddof=4.5)
    np.testing.assert_allclose(var, np.var(x, 1, ddof=4.5), rtol=1e-12)


@pytest.mark.parametrize("op", ["batch", "instance", "group", "layer"])
def test_out_in_place_and_given(isa, rng, op):
    def call(x, out):
        if op == "batch":
            return cnorm.batch_norm(x, training=True, out=out)
        if op == "instance":
            return cnorm.instance_norm(x, out=out)
        if op == "group":
            return cnorm.group_norm(x, 2, out=out)
        return cnorm.layer_norm(x, (6, 7), out=out)

    x0 = make(rng, (3, 4, 6, 7), np.float32)
    x = x0.copy()
    want = call(x0, None)
    out = np.empty_like(x)
    assert call(x, out) is out
    np.testing.assert_array_equal(out, want)
    assert call(x, x) is x
    np.testing.assert_array_equal(x, want)
    # out with a different layout than the kernel writes
    fout = np.empty(x.shape, np.float32, order="F")
    np.testing.assert_array_equal(call(x0, fout), want)


def test_out_partial_overlap(isa, rng):
    buf = make(rng, (10, 8), np.float64)
    x, out = buf[:-2], buf[2:]
    want = ref.layer_norm(x.copy(), 8)
    cnorm.layer_norm(x, 8, out=out)
    assert_close(out, want, np.float64)


def test_out_float16(isa, rng):
    x = make(rng, (4, 16), np.float16)
    out = np.empty_like(x)
    assert cnorm.layer_norm(x, 16, out=out) is out
    assert_close(out, ref.layer_norm(x, 16), np.float16)


@pytest.mark.parametrize("op", ["batch", "instance", "group", "layer", "rms"])
def test_nan_confined_to_its_group(isa, rng, op):
    x = make(rng, (4, 4, 8), np.float32)
    x[1, 2, 3] = np.nan
    x[2, 1, 0] = np.inf
    if op == "batch":
        y = cnorm.batch_norm(x, training=True)
        bad = np.zeros(x.shape, bool)
        bad[:, 1:3] = True
    elif op == "instance":
        y = cnorm.instance_norm(x)
        bad = np.zeros(x.shape, bool)
        bad[1, 2] = bad[2, 1] = True
    elif op == "group":
        y = cnorm.group_norm(x, 2)
        bad = np.zeros(x.shape, bool)
        bad[1, 2:] = bad[2, :2] = True
    else:
        y = cnorm.layer_norm(x, 8) if op == "layer" else cnorm.rms_norm(x, 8)
        bad = np.zeros(x.shape, bool)
        bad[1, 2] = bad[2, 1] = True
    assert np.isfinite(y[~bad]).all()
    assert not np.isfinite(y[bad]).all(axis=-1).any()


def test_list_input_and_bool(isa):
    y = cnorm.layer_norm([[1, 2, 3], [4, 4, 4]], 3)
    assert y.dtype == np.float64
    assert_close(y, ref.layer_norm(np.array([[1, 2, 3], [4, 4, 4]]), 3), np.float64)
    yb = cnorm.layer_norm(np.array([[True, False, True, False]]), 4)
    assert_close(yb, ref.layer_norm(np.array([[1.0, 0, 1, 0]]), 4), np.float64)


def test_zero_stride_input(isa, rng):
    row = make(rng, (32,), np.float32)
    x = np.broadcast_to(row, (5, 32))
    assert_close(cnorm.layer_norm(x, 32), ref.layer_norm(x, 32), np.float32)
    xb = np.broadcast_to(make(rng, (1, 4, 1, 6), np.float32), (3, 4, 5, 6))
    assert_close(cnorm.batch_norm(xb, training=True), ref.batch_norm(xb, training=True), np.float32)


def test_mixed_param_dtypes(isa, rng):
    x = make(rng, (4, 3, 5), np.float32)
    w, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3).astype(np.float16)
    y = cnorm.batch_norm(x, None, None, w, b, training=True)
    assert y.dtype == np.float32
    assert_close(y, ref.batch_norm(x, None, None, w, b, training=True), np.float32)


NHWC_WIDTHS = [1, 3, 7, 8, 15, 16, 17, 33, 64, 96, 100, 511, 512, 513, 600]


@pytest.mark.parametrize("act", [None, "relu", "silu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("c", NHWC_WIDTHS)
def test_channels_last_apply_widths(isa, rng, dtype, c, act):
    """The channels-last apply walks narrow rows (<= 512 channels) as one
    flat stream whose parameters repeat every lcm(c, vector) elements
    (panels of whole periods in register tiles, then a remainder), wider
    ones in column tiles; widths around the vector lengths (8 and 16
    floats, 4 and 8 doubles), periods longer than a panel (511) and the 512
    switch, into an out= misaligned by one element."""
    x = make(rng, (3, 5, 7, c), dtype)
    w, b = params(rng, c, True)
    wdt = np.float32 if dtype == np.float16 else dtype
    w, b = w.astype(wdt), b.astype(wdt)
    buf = np.empty(x.size + 1, dtype)
    out = buf[1:].reshape(x.shape)
    y = cnorm.batch_norm(x, None, None, w, b, training=True, axis=-1, out=out, activation=act)
    assert y is out
    assert_close(y, ref.batch_norm(x, None, None, w, b, training=True, axis=-1, activation=act), dtype)
    g = next(k for k in (4, 3, 1) if c % k == 0)
    y = cnorm.group_norm(x, g, w, b, axis=-1, activation=act)
    assert_close(y, ref.group_norm(x, g, w, b, axis=-1, activation=act), dtype)


@pytest.mark.parametrize("layout", ["nchw", "nhwc", "channels_last_view"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_passes_beyond_l2(isa, rng, threads, dtype, layout):
    """Training batch norm and group norm over more than L2 (3.6-7.2 MB;
    rows of 300 and 30000 values): against the reference, and bitwise equal
    for 1 and 2 threads.  The prefetching apply (>= 16 MiB inputs) is
    checked by tests/c/test_large.c."""
    x, axis = laid_out(rng, (6, 5, 300, 100), dtype, layout)
    w, b = params(rng, 5, True)
    results = []
    for nt in (1, 2):
        cnorm.set_num_threads(nt)
        y = cnorm.batch_norm(x, None, None, w, b, training=True, axis=axis, activation="relu")
        g = cnorm.group_norm(x, 5, w, b, axis=axis)
        results.append((y, g))
    assert_close(results[0][0], ref.batch_norm(x, None, None, w, b, training=True, axis=axis, activation="relu"),
                 dtype)
    assert_close(results[0][1], ref.group_norm(x, 5, w, b, axis=axis), dtype)
    for a, b2 in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b2)
