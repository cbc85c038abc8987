"""int8/uint8 output (``quantize=(scale, zero_point)``, DESIGN.md 3.2) for
the seven ops that take it, on every ISA path: the codes are those of the
float result, ``clip(round_half_even(y / scale + zero_point))``, except
next to a .5 tie (the codes come from the unrounded y, as y * (1/scale));
the same as torch.quantize_per_tensor; bad parameters raise ValueError."""
import warnings

import numpy as np
import pytest

import cnorm

try:
    import ml_dtypes
    BF16 = [ml_dtypes.bfloat16]
except ImportError:
    BF16 = []
DTYPES = [np.float32, np.float64, np.float16] + BF16
QUANTS = [(np.int8, 0.03, -5), (np.uint8, 0.02, 128)]


def codes_of(y, scale, zp, dt):
    """The reference codes of a float result, and how far each value is
    from a .5 tie relative to the rounding of y (ties within it may round
    either way)."""
    y = np.asarray(y, dtype=np.float64)
    v = y / scale + zp
    info = np.iinfo(dt)
    want = np.where(np.isnan(v), info.min, np.clip(np.rint(np.nan_to_num(v)), info.min, info.max))
    return want, v


def assert_codes(q, y, scale, zp, dt, ydtype):
    assert q.dtype == dt and q.shape == y.shape
    want, v = codes_of(y, scale, zp, dt)
    eps = float(np.finfo(np.float32).eps) if np.dtype(ydtype).itemsize >= 4 else \
        (2.0 ** -10 if ydtype == np.float16 else 2.0 ** -7)
    tol = (np.abs(np.asarray(y, np.float64)) * 2 * eps + 1e-30) / scale + 4e-7 * np.abs(v)
    bad = q.astype(np.int64) != want
    near_tie = np.abs(v - np.floor(v) - 0.5) <= tol
    assert not np.any(bad & ~(near_tie & (np.abs(q.astype(np.int64) - want) == 1))), \
        f"{np.count_nonzero(bad & ~near_tie)} codes differ away from ties"
    if np.dtype(ydtype).itemsize >= 4:
        assert np.count_nonzero(bad) <= 1 + q.size // 100


def channel_input(rng, dtype, layout):
    x = (rng.standard_normal((3, 8, 5, 6)) * 2 + 1).astype(dtype)
    if layout == "nhwc":
        return np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1
    if layout == "channels_last_view":
        return np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1), 1
    return x, 1


def op_calls(rng, dtype, layout):
    """(name, call(**kw)) for the seven ops; call() is the float result."""
    x, ax = channel_input(rng, dtype, layout)
    c = 8
    w, b = rng.uniform(0.5, 1.5, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    h = (rng.standard_normal((4, 7, 96)) * 3 - 2).astype(dtype)
    r = rng.standard_normal((7, 96)).astype(dtype)
    g, be = rng.uniform(0.5, 1.5, 96).astype(np.float32), rng.standard_normal(96).astype(np.float32)
    return [
        ("batch_norm train", lambda **k: cnorm.batch_norm(x, None, None, w, b, True, axis=ax, activation="relu", **k)),
        ("batch_norm eval", lambda **k: cnorm.batch_norm(x, rm, rv, w, b, axis=ax, **k)),
        ("instance_norm", lambda **k: cnorm.instance_norm(x, weight=w, bias=b, axis=ax, activation="silu", **k)),
        ("instance_norm running", lambda **k: cnorm.instance_norm(x, rm, rv, w, b, False, axis=ax, **k)),
        ("group_norm", lambda **k: cnorm.group_norm(x, 4, w, b, axis=ax, **k)),
        ("layer_norm", lambda **k: cnorm.layer_norm(h, 96, g, be, activation="gelu", **k)),
        ("rms_norm", lambda **k: cnorm.rms_norm(h, 96, g, **k)),
        ("add_layer_norm", lambda **k: cnorm.add_layer_norm(h, r, 96, g, be, **k)[0]),
        ("add_rms_norm", lambda **k: cnorm.add_rms_norm(h, r, 96, g, skip_bias=be, **k)[0]),
    ]


@pytest.mark.parametrize("layout", ["nchw", "nhwc", "channels_last_view"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_codes(isa, rng, dtype, layout):
    for name, call in op_calls(rng, dtype, layout):
        y = call()
        for qdt, scale, zp in QUANTS:
            q = call(quantize=(scale, zp), out_dtype=qdt)
            try:
                assert_codes(q, y, scale, zp, qdt, dtype)
            except AssertionError as e:
                raise AssertionError(f"{name} {np.dtype(qdt).name}: {e}") from None
            if name.startswith(("batch", "instance", "group")) and layout != "nchw":
                # the memory layout of the float result is kept
                assert q.strides == tuple(s // y.itemsize for s in y.strides)


def test_same_as_torch(rng):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((64, 512)) * 2).astype(np.float32)
    y = cnorm.layer_norm(x, 512)
    for qdt, tq in ((np.int8, torch.qint8), (np.uint8, torch.quint8)):
        for scale, zp in ((0.05, 0), (0.013, 7 if qdt == np.int8 else 200), (1.0, 1)):
            q = cnorm.layer_norm(x, 512, quantize=(scale, zp), out_dtype=qdt)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch 2.13 deprecates its quantized tensors
                want = torch.quantize_per_tensor(torch.from_numpy(y), scale, zp, tq).int_repr().numpy()
            assert_codes(want, y, scale, zp, qdt, np.float32)  # torch obeys the same rule
            assert_codes(q, y, scale, zp, qdt, np.float32)
            assert np.count_nonzero(q != want) <= 2


def test_saturation_nan_and_ties():
    x = np.array([[-1e6, -3.0, 0.0, 3.0, 1e6, np.nan, 1.0, -1.0]], np.float32)
    # group_norm over one group is layer norm here; use batch_norm eval for an exact affine
    y = cnorm.batch_norm(x.T, np.zeros(1), np.ones(1), eps=0.0, training=False)
    q = cnorm.batch_norm(x.T, np.zeros(1), np.ones(1), eps=0.0, quantize=(0.5, 0))
    assert q.ravel().tolist() == [-128, -6, 0, 6, 127, -128, 2, -2]
    qu = cnorm.batch_norm(x.T, np.zeros(1), np.ones(1), eps=0.0, quantize=(0.5, 3), out_dtype=np.uint8)
    assert qu.ravel().tolist() == [0, 0, 3, 9, 255, 0, 5, 1]
    # exact ties round half to even, after adding the zero point (as torch)
    t = np.array([[0.5], [1.5], [2.5], [-0.5], [-1.5]], np.float32)
    qt = cnorm.batch_norm(t, np.zeros(1), np.ones(1), eps=0.0, quantize=(1.0, 1))
    assert qt.ravel().tolist() == [2, 2, 4, 0, 0]
    assert np.isnan(y[5, 0])


def test_out_and_stats(rng):
    x = rng.standard_normal((16, 64), dtype=np.float32)
    out = np.empty((16, 64), np.uint8)
    q = cnorm.layer_norm(x, 64, quantize=(0.1, 100), out_dtype=np.uint8, out=out)
    assert q is out
    q2, mean, rstd = cnorm.layer_norm(x, 64, quantize=(0.1, 100), out_dtype=np.uint8, return_stats=True)
    np.testing.assert_array_equal(q2, out)
    _, m, r = cnorm.layer_norm(x, 64, return_stats=True)
    np.testing.assert_array_equal(mean, m)
    np.testing.assert_array_equal(rstd, r)
    strided = np.empty((16, 128), np.uint8)[:, ::2]
    assert cnorm.layer_norm(x, 64, quantize=(0.1, 100), out_dtype=np.uint8, out=strided) is strided
    np.testing.assert_array_equal(strided, out)
    with pytest.raises(TypeError, match="out: expected dtype int8"):
        cnorm.rms_norm(x, 64, quantize=(0.1, 0), out=np.empty((16, 64), np.float32))
    xb = rng.standard_normal((2, 3, 4, 4), dtype=np.float32)
    with pytest.raises(TypeError, match="out: expected dtype uint8"):
        cnorm.group_norm(xb, 3, quantize=(0.1, 0), out_dtype=np.uint8, out=np.empty(xb.shape, np.int8))


@pytest.mark.parametrize("kw, match", [
    ({"quantize": (0.0, 0)}, "scale must be a finite number > 0"),
    ({"quantize": (-1.0, 0)}, "scale must be"),
    ({"quantize": (float("inf"), 0)}, "scale must be"),
    ({"quantize": (float("nan"), 0)}, "scale must be"),
    ({"quantize": ("0.1", 0)}, "scale must be"),
    ({"quantize": (0.1, 128)}, r"zero_point must be an int in \[-128, 127\]"),
    ({"quantize": (0.1, -1), "out_dtype": np.uint8}, r"zero_point must be an int in \[0, 255\]"),
    ({"quantize": (0.1, 1.5)}, "zero_point must be an int"),
    ({"quantize": 0.1}, "quantize: expected a .scale, zero_point. pair"),
    ({"quantize": (0.1, 0), "out_dtype": np.int16}, "out_dtype: expected numpy.int8 or numpy.uint8"),
    ({"quantize": (0.1, 0), "out_dtype": "bogus"}, "out_dtype: expected"),
    ({"out_dtype": np.int8}, "out_dtype: only with quantize"),
])
def test_bad_parameters(kw, match):
    x = np.ones((2, 4, 3), np.float32)
    for call in (lambda: cnorm.layer_norm(x, 3, **kw), lambda: cnorm.rms_norm(x, 3, **kw),
                 lambda: cnorm.batch_norm(x, training=True, **kw), lambda: cnorm.instance_norm(x, **kw),
                 lambda: cnorm.group_norm(x, 2, **kw), lambda: cnorm.add_layer_norm(x, x, 3, **kw),
                 lambda: cnorm.add_rms_norm(x, x, 3, **kw)):
        with pytest.raises(ValueError, match=match):
            call()
