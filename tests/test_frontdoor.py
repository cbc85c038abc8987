"""One front door: the fast lane and the general path decide alike.

* Non-native byte order (``>f4``, ``>f8``) in x, weight, bias, out and the
  running stats gives the native twin's bits, on the fast lane's spelling
  and on the general path's; big-endian running stats are updated right.
* Inputs the kernel reads while it writes (weight, bias, running stats)
  that alias ``out``, and ``out=x`` on strided or transposed views, give
  what the same call on copies gives, as NumPy ufuncs do with overlap.
* An ``out`` the kernel cannot write directly (non-native, strided,
  misaligned) still receives the values.
* The fast lane and the general path give the same bits for every public
  function (rms_norm, moments, activations, return_stats, fold included).

Every check runs on every ISA path of this machine.
"""
import numpy as np
import pytest

import cnorm

pytestmark = pytest.mark.usefixtures("restore_config")


def every_isa():
    for isa in cnorm.available_isas():
        cnorm.set_isa(isa)
        yield isa


def _bytes(a):
    """a's values in its native dtype, as raw bytes (NaN payloads and -0.0 count)."""
    a = np.asarray(a)
    return np.ascontiguousarray(a.astype(a.dtype.newbyteorder("="))).reshape(-1).view(np.uint8)


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(_bytes(a), _bytes(b))


def assert_same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    g = got.astype(want.dtype)
    assert np.array_equal(_bytes(g), _bytes(want)), (
        f"max diff {np.nanmax(np.abs(g.astype(np.float64) - want.astype(np.float64)))}")


def data(dtype, shape=(4, 6, 3, 2), seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    w = (rng.random(c) + 0.5).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    rm = rng.standard_normal(c).astype(dtype)
    rv = (rng.random(c) + 0.5).astype(dtype)
    return x, w, b, rm, rv


# ops on (x, w, b, rm, rv, eps, **kw): channel weights of x.shape[1], layer
# weights of x.shape[-1]
CHANNEL_OPS = {
    "bn_eval": lambda x, w, b, rm, rv, eps, **kw: cnorm.batch_norm(x, rm, rv, w, b, False, 0.1, eps, **kw),
    "bn_eval_relu": lambda x, w, b, rm, rv, eps, **kw: cnorm.batch_norm(x, rm, rv, w, b, False, 0.1, eps,
                                                                        activation="relu", **kw),
    "bn_batch": lambda x, w, b, rm, rv, eps, **kw: cnorm.batch_norm(x, None, None, w, b, True, 0.1, eps, **kw),
    "in": lambda x, w, b, rm, rv, eps, **kw: cnorm.instance_norm(x, None, None, w, b, True, 0.1, eps, **kw),
    "in_running": lambda x, w, b, rm, rv, eps, **kw: cnorm.instance_norm(x, rm, rv, w, b, False, 0.1, eps, **kw),
    "gn": lambda x, w, b, rm, rv, eps, **kw: cnorm.group_norm(x, 3, w, b, eps, activation="silu", **kw),
}
ROW_OPS = {
    "ln": lambda x, w, b, eps, **kw: cnorm.layer_norm(x, x.shape[-1], w, b, eps, **kw),
    "ln_gelu": lambda x, w, b, eps, **kw: cnorm.layer_norm(x, x.shape[-1], w, b, eps, activation="gelu", **kw),
    "rms": lambda x, w, b, eps, **kw: cnorm.rms_norm(x, x.shape[-1], w, eps, **kw),
}
# eps spelled so that the fast lane takes the call, and so that it cannot
EPS = {"fast": 1e-5, "general": np.float64(1e-5)}


# ---- byte order --------------------------------------------------------------

@pytest.mark.parametrize("lane", EPS)
@pytest.mark.parametrize("dtype", ["f4", "f8"])
@pytest.mark.parametrize("op", CHANNEL_OPS)
def test_channel_ops_non_native_byte_order(op, dtype, lane):
    fn, eps = CHANNEL_OPS[op], EPS[lane]
    x, w, b, rm, rv = data(dtype)
    swap = np.dtype(dtype).newbyteorder(">" if np.little_endian else "<")
    for _ in every_isa():
        want = fn(x, w, b, rm, rv, eps)
        assert want.dtype == np.dtype(dtype)
        for which in range(5):  # x, weight, bias, running mean, running var swapped
            args = [x, w, b, rm, rv]
            args[which] = args[which].astype(swap)
            got = fn(*args, eps)
            assert got.dtype == np.dtype(dtype), which  # the native dtype, as NumPy's ufuncs
            assert_same(got, want)
        out = np.zeros(x.shape, swap)
        assert fn(x, w, b, rm, rv, eps, out=out) is out
        assert_same(out, want)


@pytest.mark.parametrize("lane", EPS)
@pytest.mark.parametrize("dtype", ["f4", "f8"])
@pytest.mark.parametrize("op", ROW_OPS)
def test_row_ops_non_native_byte_order(op, dtype, lane):
    fn, eps = ROW_OPS[op], EPS[lane]
    x, _, _, _, _ = data(dtype, (5, 2, 8))
    rng = np.random.default_rng(1)
    w, b = (rng.random(8) + 0.5).astype(dtype), rng.standard_normal(8).astype(dtype)
    swap = np.dtype(dtype).newbyteorder(">" if np.little_endian else "<")
    for _ in every_isa():
        want = fn(x, w, b, eps)
        for which in range(3):
            args = [x, w, b]
            args[which] = args[which].astype(swap)
            got = fn(*args, eps)
            assert got.dtype == np.dtype(dtype)
            assert_same(got, want)
        out = np.zeros(x.shape, swap)
        assert fn(x, w, b, eps, out=out) is out
        assert_same(out, want)


@pytest.mark.parametrize("dtype", ["f4", "f8"])
def test_layer_norm_stats_and_moments_non_native(dtype):
    x, _, _, _, _ = data(dtype, (5, 8))
    xs = x.astype(x.dtype.newbyteorder(">" if np.little_endian else "<"))
    for _ in every_isa():
        for got, want in zip(cnorm.layer_norm(xs, 8, return_stats=True, activation="relu"),
                             cnorm.layer_norm(x, 8, return_stats=True, activation="relu")):
            assert got.dtype == np.dtype(dtype)
            assert_same(got, want)
        for axis in (None, 0, 1, (0, 1)):
            for got, want in zip(cnorm.moments(xs, axis), cnorm.moments(x, axis)):
                assert_same(got, want)
        ws, want = cnorm.fold_batch_norm(xs, None, xs[:, 0], np.abs(xs[:, 1]), None, None), \
            cnorm.fold_batch_norm(x, None, x[:, 0], np.abs(x[:, 1]), None, None)
        for got, w in zip(ws, want):
            assert_same(got, w)


@pytest.mark.parametrize("dtype", ["f4", "f8"])
@pytest.mark.parametrize("op", ["bn", "in"])
def test_big_endian_running_stats_updated_in_place(op, dtype):
    x, w, b, rm, rv = data(dtype)
    big = np.dtype(dtype).newbyteorder(">")
    for _ in every_isa():
        rm1, rv1 = rm.copy(), rv.copy()
        rm2, rv2 = rm.astype(big), rv.astype(big)
        if op == "bn":
            y1 = cnorm.batch_norm(x, rm1, rv1, w, b, True, 0.25)
            y2 = cnorm.batch_norm(x, rm2, rv2, w, b, True, 0.25)
        else:
            y1 = cnorm.instance_norm(x, rm1, rv1, w, b, True, 0.25)
            y2 = cnorm.instance_norm(x, rm2, rv2, w, b, True, 0.25)
        assert_same(y2, y1)
        assert rm2.dtype == big and rv2.dtype == big
        assert_same(rm2, rm1)
        assert_same(rv2, rv1)
        assert not np.array_equal(rm1, rm)


# ---- out that cannot be written directly ---------------------------------------

def _misaligned(shape, dtype):
    dtype = np.dtype(dtype)
    buf = np.zeros(int(np.prod(shape)) * dtype.itemsize + 1, np.uint8)
    a = buf[1:].view(dtype).reshape(shape)
    assert not a.flags.aligned
    return a


def _op_call(op, lane):
    """(x, call) for an op of CHANNEL_OPS/ROW_OPS on a (4, 6, 3, 6) float32
    input, with weights (6 channels = the last axis's 6 values) and the
    lane's eps; call(a, **kw) runs it on a."""
    x, w, b, rm, rv = data("f4", (4, 6, 3, 6))
    eps = EPS[lane]
    if op in ROW_OPS:
        return x, lambda a, **kw: ROW_OPS[op](a, w, b, eps, **kw)
    return x, lambda a, **kw: CHANNEL_OPS[op](a, w, b, rm, rv, eps, **kw)


@pytest.mark.parametrize("lane", EPS)
@pytest.mark.parametrize("op", list(CHANNEL_OPS) + list(ROW_OPS))
def test_out_strided_or_misaligned_receives_values(op, lane):
    x, call = _op_call(op, lane)
    for _ in every_isa():
        want = call(x)
        outs = [np.zeros(x.shape + (2,), np.float32)[..., 0], _misaligned(x.shape, np.float32)]
        for out in outs:
            assert call(x, out=out) is out
            assert_same(out, want)
        xm = _misaligned(x.shape, np.float32)
        xm[...] = x
        assert_same(call(xm), want)


MATRIX_OPS = [op for op in list(CHANNEL_OPS) + list(ROW_OPS) if op != "in"]  # "in" needs spatial dims


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("lane", EPS)
@pytest.mark.parametrize("op", MATRIX_OPS)
def test_out_matrix_subclass(op, lane):
    """np.matrix (an ndarray subclass) as out: accepted when its shape and
    dtype are the result's, filled through a temporary and returned as it
    is (README, Rules and decisions); another shape is out's ValueError."""
    x, w, b, rm, rv = data("f4", (5, 6))
    eps = EPS[lane]
    if op in ROW_OPS:
        call = lambda a, **kw: ROW_OPS[op](a, w, b, eps, **kw)  # noqa: E731
    else:
        call = lambda a, **kw: CHANNEL_OPS[op](a, w, b, rm, rv, eps, **kw)  # noqa: E731
    want = call(x)
    for out in (np.asmatrix(np.zeros((5, 6), np.float32)), np.asmatrix(np.zeros((6, 5), np.float32)).T):
        assert call(x, out=out) is out and type(out) is np.matrix
        assert_same(np.asarray(out), want)
    xm = np.asmatrix(x.copy())
    assert call(xm, out=xm) is xm
    assert_same(np.asarray(xm), want)
    with pytest.raises(ValueError, match=r"\bout\b"):
        call(x, out=np.asmatrix(np.zeros((1, 30), np.float32)))


# ---- aliasing -------------------------------------------------------------------

@pytest.mark.parametrize("lane", EPS)
@pytest.mark.parametrize("dtype", ["f4", "f8"])
@pytest.mark.parametrize("op", CHANNEL_OPS)
@pytest.mark.parametrize("which", ["weight", "bias", "running_mean", "running_var"])
def test_channel_input_aliasing_out(which, op, dtype, lane):
    """weight (or bias, running stats) = the start of out: the kernel must
    read the values the argument had when the call was made."""
    fn, eps = CHANNEL_OPS[op], EPS[lane]
    x, w, b, rm, rv = data(dtype)
    c = x.shape[1]
    for _ in every_isa():
        args = dict(w=w, b=b, rm=rm, rv=rv)
        key = {"weight": "w", "bias": "b", "running_mean": "rm", "running_var": "rv"}[which]
        want = fn(x, eps=eps, **args)
        for view in (lambda o: o.reshape(-1)[:c], lambda o: o[0, :, 0, 0], lambda o: o.reshape(-1)[-c:]):
            out = np.zeros_like(x)
            alias = view(out)
            alias[...] = args[key]
            assert np.may_share_memory(alias, out)
            got = fn(x, eps=eps, out=out, **dict(args, **{key: alias}))
            assert got is out
            assert_same(out, want)


@pytest.mark.parametrize("lane", EPS)
@pytest.mark.parametrize("op", CHANNEL_OPS)
def test_channel_in_place_with_params_inside_x(op, lane):
    """out=x while weight and bias are views of x: they keep their values."""
    fn, eps = CHANNEL_OPS[op], EPS[lane]
    x, _, _, rm, rv = data("f8")
    c = x.shape[1]
    for _ in every_isa():
        xi = x.copy()
        wi, bi = xi.reshape(-1)[:c], xi.reshape(-1)[c:2 * c]
        wi[...] = np.abs(wi) + 0.5
        want = fn(xi.copy(), wi.copy(), bi.copy(), rm, rv, eps)
        got = fn(xi, wi, bi, rm, rv, eps, out=xi)
        assert got is xi
        assert_same(xi, want)


@pytest.mark.parametrize("lane", EPS)
@pytest.mark.parametrize("op", ROW_OPS)
@pytest.mark.parametrize("which", ["weight", "bias"])
def test_row_input_aliasing_out(which, op, lane):
    fn, eps = ROW_OPS[op], EPS[lane]
    x, _, _, _, _ = data("f4", (6, 8))
    rng = np.random.default_rng(2)
    w, b = (rng.random(8) + 0.5).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    for _ in every_isa():
        want = fn(x, w, b, eps)
        for view in (lambda o: o[0], lambda o: o.reshape(-1)[:8], lambda o: o[-1], lambda o: o.reshape(-1)[3:11]):
            out = np.zeros_like(x)
            alias = view(out)
            alias[...] = w if which == "weight" else b
            args = (x, alias, b) if which == "weight" else (x, w, alias)
            assert fn(*args, eps, out=out) is out
            assert_same(out, want)
        # in place, with the weight a row of x itself
        xi = x.copy()
        want = fn(x, x[2].copy(), b, eps)
        assert fn(xi, xi[2], b, eps, out=xi) is xi
        assert_same(xi, want)


def _views(x):
    """Views of a fresh copy of x's values with x's logical shape:
    transposed (F order), channels-last, strided, negative strides."""
    yield np.asfortranarray(x)
    nhwc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    yield np.moveaxis(nhwc, -1, 1)
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    big[..., ::2] = x
    yield big[..., ::2]
    yield x[::-1].copy()[::-1]
    yield np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 0, 1)), 0, 1)


@pytest.mark.parametrize("lane", EPS)
@pytest.mark.parametrize("op", list(CHANNEL_OPS) + list(ROW_OPS))
def test_in_place_on_views(op, lane):
    """out=x where x is a transposed, channels-last, strided or reversed view."""
    x, call = _op_call(op, lane)
    for _ in every_isa():
        for v, same in zip(_views(x), _views(x)):  # same memory layout, separate memory
            assert np.array_equal(v, x) and not np.may_share_memory(v, same)
            want = call(same)  # the layout decides the kernel form (and the bits)
            assert call(v, out=v) is v
            assert_same(v, want)


def test_partial_overlap_of_x_and_out():
    x, w, b, rm, rv = data("f8", (3, 6, 4, 5))
    for _ in every_isa():
        buf = np.zeros((2 * x.size,))
        a = buf[: x.size].reshape(x.shape)
        a[...] = x
        out = buf[7: 7 + x.size].reshape(x.shape)
        want = cnorm.group_norm(x, 2, w, b)
        cnorm.group_norm(a, 2, w, b, out=out)
        assert_same(out, want)


# ---- the fast lane and the general path agree --------------------------------

def _pairs():
    """(name, fast call, the same call spelled so that the fast lane declines)."""
    f64 = np.float64
    yield "rms_norm", lambda x: cnorm.rms_norm(x, x.shape[-1]), lambda x: cnorm.rms_norm(x, (x.shape[-1],))
    yield "rms_norm eps", lambda x: cnorm.rms_norm(x, x.shape[-1], None, 1e-3), \
        lambda x: cnorm.rms_norm(x, x.shape[-1], None, f64(1e-3))
    for act in ("relu", "silu", "gelu"):
        yield f"layer_norm {act}", lambda x, a=act: cnorm.layer_norm(x, x.shape[-1], activation=a), \
            lambda x, a=act: cnorm.layer_norm(x, x.shape[-1], eps=f64(1e-5), activation=a)
        yield f"group_norm {act}", lambda x, a=act: cnorm.group_norm(x, 1, activation=a), \
            lambda x, a=act: cnorm.group_norm(x, 1, eps=f64(1e-5), activation=a)
    yield "layer_norm return_stats", lambda x: cnorm.layer_norm(x, x.shape[-1], return_stats=True), \
        lambda x: cnorm.layer_norm(x, x.shape[-1], eps=f64(1e-5), return_stats=True)
    for axis in (None, 0, 1, -1):
        for kd in (False, True):
            yield f"moments {axis} {kd}", lambda x, a=axis, k=kd: cnorm.moments(x, a, keepdims=k), \
                lambda x, a=axis, k=kd: cnorm.moments(x, a, ddof=np.int64(0), keepdims=k)
    yield "moments ddof", lambda x: cnorm.moments(x, 0, ddof=1), lambda x: cnorm.moments(x, (0,), ddof=1.0)

    def col(x, j):  # a contiguous (C_out,) vector from x's values
        return np.ascontiguousarray(x.reshape(len(x), -1)[:, j])

    yield "fold_batch_norm", lambda x: cnorm.fold_batch_norm(x, col(x, 0), col(x, -1), np.abs(col(x, 0)) + 1,
                                                             col(x, -1), col(x, 0)), \
        lambda x: cnorm.fold_batch_norm(x, col(x, 0), col(x, -1), np.abs(col(x, 0)) + 1, col(x, -1), col(x, 0),
                                        f64(1e-5))


PAIRS = list(_pairs())


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning")  # moments ddof=1 on shape (1, 3)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("shape", [(4, 8), (3, 5, 7), (2, 1, 6, 1), (1, 3)])
@pytest.mark.parametrize("name, fast, general", PAIRS, ids=[p[0] for p in PAIRS])
def test_fast_lane_equals_general_path(name, fast, general, shape, dtype):
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    for _ in every_isa():
        a, b = fast(x), general(x)
        if isinstance(a, tuple):
            assert len(a) == len(b)
            for u, v in zip(a, b):
                assert same_bits(u, v), name
        else:
            assert same_bits(a, b), name


def test_names_come_from_the_c_library():
    assert cnorm._core.ISA_NAMES[:4] == ("scalar", "avx2", "avx512", "neon")
    assert cnorm._core.ACTIVATION_NAMES == ("none", "relu", "silu", "gelu")
    with pytest.raises(ValueError, match="activation: expected None, 'relu', 'silu' or 'gelu'"):
        cnorm.layer_norm(np.ones((2, 4)), 4, activation="tanh")
    with pytest.raises(ValueError, match="activation"):
        cnorm.layer_norm(np.ones((2, 4)), 4, activation=["relu"])
