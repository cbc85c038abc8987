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


# ---- the backward functions and return_stats: fast lane = general path ---------
#
# Each call is made twice: as given (plain arguments: the fast lane takes it)
# and with one argument spelled so that the fast lane declines (axis or
# normalized_shape as a NumPy int / tuple, which the general path accepts).
# The results must be the same bits, the errors the same type and message,
# and the first spelling must not have reached the general path at all.

_GENERAL = ("layer_norm", "rms_norm", "group_norm", "batch_norm", "layer_norm_backward", "rms_norm_backward",
            "group_norm_backward", "batch_norm_backward")


@pytest.fixture
def general_calls(monkeypatch):
    """A list that records every call of a _core kernel function the general
    path uses (the fast lanes call the kernels inside Cython)."""
    calls = []
    for name in _GENERAL:
        real = getattr(cnorm._core, name)

        def spy(*args, _real=real, _name=name):
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(cnorm._core, name, spy)
    return calls


def _dtypes():
    yield np.float32
    yield np.float64
    yield np.float16
    try:
        import ml_dtypes
    except ImportError:
        return
    yield ml_dtypes.bfloat16


def _assert_same_result(a, b):
    if isinstance(a, tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b):
            assert (u is None) == (v is None)
            if u is not None:
                assert same_bits(u, v)
    else:
        assert same_bits(a, b)


def _both_lanes(call, general_calls, fast=True):
    """call(spell) with spell False (as given) and True (declined by the fast
    lane); the same result or the same error.  fast: the first call must not
    reach the general path."""
    results = []
    for spell in (False, True):
        del general_calls[:]
        try:
            results.append(("ok", call(spell)))
        except (TypeError, ValueError) as err:
            results.append(("err", type(err), str(err)))
        nothing_to_do = results[-1][0] == "err" or (  # needs all False
            isinstance(results[-1][1], tuple) and all(g is None for g in results[-1][1]))
        if spell:
            assert general_calls or nothing_to_do, "the general spelling took the fast lane"
        elif fast:
            assert not general_calls, f"the fast lane declined: {general_calls}"
    (ka, *a), (kb, *b) = results
    assert ka == kb, (results[0], results[1])
    if ka == "err":
        assert a == b
    else:
        _assert_same_result(a[0], b[0])
    return results[0]


def _row_case(op, shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    wdt = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    k = shape[-1]
    w, b = (rng.random(k) + 0.5).astype(wdt), rng.standard_normal(k).astype(wdt)
    return x, dy, w, b


def _ns(k, spell):
    return (k,) if spell else k


# (40, 3): more saved statistics than the kernel function widens on the C stack
@pytest.mark.parametrize("shape", [(1, 8), (4, 8), (3, 5, 7), (2, 1, 6, 1), (40, 3)])
@pytest.mark.parametrize("dtype", list(_dtypes()), ids=lambda d: np.dtype(d).name)
def test_row_backward_fast_lane_equals_general_path(shape, dtype, general_calls):
    k = shape[-1]
    for _ in every_isa():
        x, dy, w, b = _row_case("ln", shape, dtype)
        _, m, r = cnorm.layer_norm(x, k, w, b, return_stats=True)
        _, rr = cnorm.rms_norm(x, k, w, return_stats=True)
        for stats in ("saved", "none", "other dtype"):
            mm, rs, rrs = (m, r, rr) if stats == "saved" else (None, None, None) if stats == "none" else (
                m.astype(np.float64) if m.dtype == np.float32 else m.astype(np.float32),
                r.astype(np.float64), rr.astype(np.float64))
            for act in (None, "relu", "silu", "gelu"):
                for needs in ((True, True, True), (True, False, False), (False, True, True), (False, False, False)):
                    for out in (None, "new", "dy", "x"):
                        if out is not None and not needs[0]:
                            continue

                        def ln(spell, act=act, needs=needs, out=out):
                            xx, dd = x.copy(), dy.copy()
                            o = {None: None, "new": np.empty_like(x), "dy": dd, "x": xx}[out]
                            return cnorm.layer_norm_backward(dd, xx, _ns(k, spell), mm, rs, w, bias=b,
                                                             activation=act, needs=needs, out=o)

                        _both_lanes(ln, general_calls)
                for needs in ((True, True), (True, False), (False, True)):
                    for eps in (None, 1e-3):
                        def rms(spell, needs=needs, eps=eps):
                            return cnorm.rms_norm_backward(dy, x, _ns(k, spell), rrs, w, eps=eps, needs=needs)

                        _both_lanes(rms, general_calls)


def _channel_case(shape, axis, dtype, seed=0, memory="C"):
    """x, dy, weight, bias; memory "channels_last": x and dy are views whose
    memory has the channel axis last (a channels_last tensor's .numpy()),
    "channels_first": views whose memory has it second (NCHW memory seen as
    NHWC with axis=-1)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    if memory == "channels_last":
        x, dy = (np.moveaxis(np.ascontiguousarray(np.moveaxis(a, axis, -1)), -1, axis) for a in (x, dy))
    elif memory == "channels_first":
        x, dy = (np.moveaxis(np.ascontiguousarray(np.moveaxis(a, axis, 1)), 1, axis) for a in (x, dy))
    wdt = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    c = shape[axis]
    w, b = (rng.random(c) + 0.5).astype(wdt), rng.standard_normal(c).astype(wdt)
    return x, dy, w, b


def _axis(axis, spell):
    return np.int64(axis) if spell else axis


def _channel_ops(x, w, b, axis):
    """(name, forward(spell, **kw) with return_stats, backward(spell, mean, rstd, **kw))."""
    ax = lambda s: _axis(axis, s)  # noqa: E731
    yield ("group_norm",
           lambda s, **kw: cnorm.group_norm(x, 2, w, b, axis=ax(s), return_stats=True, **kw),
           lambda s, dy, xx, m, r, **kw: cnorm.group_norm_backward(dy, xx, 2, m, r, w, bias=b, axis=ax(s), **kw))
    yield ("instance_norm",
           lambda s, **kw: cnorm.instance_norm(x, weight=w, bias=b, axis=ax(s), return_stats=True, **kw),
           lambda s, dy, xx, m, r, **kw: cnorm.instance_norm_backward(dy, xx, m, r, w, bias=b, axis=ax(s), **kw))
    yield ("batch_norm train",
           lambda s, **kw: cnorm.batch_norm(x, None, None, w, b, True, axis=ax(s), return_stats=True, **kw),
           lambda s, dy, xx, m, r, **kw: cnorm.batch_norm_backward(dy, xx, m, r, w, True, bias=b, axis=ax(s), **kw))
    c = x.shape[axis]
    rm, rv = np.linspace(-1, 1, c), np.linspace(0.5, 2, c)
    for rdt in (np.float32, np.float64):
        yield (f"batch_norm eval {np.dtype(rdt).name}",
               lambda s, rdt=rdt, **kw: cnorm.batch_norm(x, rm.astype(rdt), rv.astype(rdt), w, b, axis=ax(s),
                                                         return_stats=True, **kw),
               lambda s, dy, xx, m, r, **kw: cnorm.batch_norm_backward(dy, xx, m, r, w, False, bias=b, axis=ax(s),
                                                                       **kw))


# (shape, channel axis, memory): NCHW, channels-last (axis -1), 3-D, 2-D (batch norm's column kernel),
# more instance statistics (72) than the kernel function widens on the C stack, and (N, C, ...) views of
# channels-last memory (a channels_last tensor's .numpy(), 3-D and 5-D too) and the reverse
CHANNEL_SHAPES = [((2, 4, 3, 3), 1, "C"), ((2, 3, 3, 4), -1, "C"), ((3, 4, 5), 1, "C"), ((1, 6, 2), 1, "C"),
                  ((2, 5, 4), -1, "C"), ((12, 6, 2), 1, "C"), ((5, 4), 1, "C"), ((2, 4, 3, 3), 1, "channels_last"),
                  ((3, 4, 5), 1, "channels_last"), ((2, 4, 2, 3, 3), 1, "channels_last"),
                  ((2, 3, 3, 4), -1, "channels_first")]


@pytest.mark.parametrize("shape, axis, memory", CHANNEL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", list(_dtypes()), ids=lambda d: np.dtype(d).name)
def test_channel_backward_and_return_stats_fast_lane_equals_general_path(shape, axis, memory, dtype,
                                                                         general_calls):
    for _ in every_isa():
        x, dy, w, b = _channel_case(shape, axis, dtype, memory=memory)
        for name, forward, backward in _channel_ops(x, w, b, axis):
            for act in (None, "relu", "gelu"):
                res = _both_lanes(lambda s: forward(s, activation=act), general_calls)
                if res[0] == "err":  # instance norm without spatial values: the same error on both
                    assert name == "instance_norm" and len(shape) == 2
                    continue
                y, m, r = res[1]
                assert y.strides == x.strides  # x's memory layout kept
                assert m.dtype == r.dtype == (np.float64 if np.dtype(dtype) == np.float64 else np.float32)
                stats = [(m, r), (m.astype(np.float64), r.astype(np.float64))]
                if not name.startswith("batch_norm eval"):
                    stats.append((None, None))
                for mm, rs in stats:
                    for needs in ((True, True, True), (True, False, True), (False, True, False)):
                        for out in (None, "new", "dy", "x"):
                            if out is not None and not needs[0]:
                                continue

                            def bwd(spell, mm=mm, rs=rs, needs=needs, out=out):
                                xx, dd = x.copy(order="K"), dy.copy(order="K")
                                o = {None: None, "new": np.empty_like(x), "dy": dd, "x": xx}[out]
                                return backward(spell, dd, xx, mm, rs, activation=act, needs=needs, out=o)

                            _both_lanes(bwd, general_calls)


@pytest.mark.parametrize("shape, axis, memory", CHANNEL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=lambda d: np.dtype(d).name)
def test_batch_norm_running_update_fast_lane_equals_general_path(shape, axis, memory, dtype, general_calls):
    """Training with running stats: the fast lane updates float32/float64
    ones itself (others go to the general path), with the general path's
    bits for y, the statistics and the updated running stats."""
    x, _, w, b = _channel_case(shape, axis, dtype, memory=memory)
    c = shape[axis]
    for _ in every_isa():
        for rdt, fast in ((np.float32, True), (np.float64, True), (np.float16, False), ("strided", False)):
            for momentum in (0.1, 0.0, 1.0):
                for return_stats in (True, False):
                    def call(spell, rdt=rdt, momentum=momentum, return_stats=return_stats):
                        rm, rv = np.linspace(-1, 1, c), np.linspace(0.5, 2, c)
                        if rdt == "strided":
                            rm, rv = np.repeat(rm, 2)[::2], np.repeat(rv, 2)[::2]
                        else:
                            rm, rv = rm.astype(rdt), rv.astype(rdt)
                        r = cnorm.batch_norm(x, rm, rv, w, b, True, momentum, axis=_axis(axis, spell),
                                             return_stats=return_stats)
                        return (r if return_stats else (r,)) + (rm, rv)

                    _both_lanes(call, general_calls, fast=fast)


def test_return_stats_rows_fast_lane_equals_general_path(general_calls):
    for dtype in _dtypes():
        for shape in ((1, 8), (3, 5, 7), (2, 1, 6, 1)):
            x, _, w, b = _row_case("rms", shape, dtype)
            k = shape[-1]
            for _ in every_isa():
                for eps in (None, 1e-3):
                    _both_lanes(lambda s: cnorm.rms_norm(x, _ns(k, s), w, eps, return_stats=True), general_calls)
                _both_lanes(lambda s: cnorm.layer_norm(x, _ns(k, s), w, b, return_stats=True), general_calls)


def _read_only(a):
    a = np.zeros_like(a)
    a.flags.writeable = False
    return a


def _bad_calls():
    """(name, call(spell)) that raise: the fast lane either raises the same
    error with the same message (bad eps, activation) or leaves them to the
    general path."""
    x, dy, w, b = _channel_case((2, 4, 3, 3), 1, np.float32)
    _, m, r = cnorm.group_norm(x, 2, return_stats=True)
    _, bm, br = cnorm.batch_norm(x, None, None, training=True, return_stats=True)
    xr, dyr, wr, _ = _row_case("ln", (3, 8), np.float32)
    _, lm, lr = cnorm.layer_norm(xr, 8, return_stats=True)
    ax = _axis
    gn = lambda s, **kw: cnorm.group_norm_backward(dy, x, kw.pop("g", 2), kw.pop("m", m), kw.pop("r", r), w,  # noqa
                                                   axis=ax(1, s), **kw)
    bn = lambda s, **kw: cnorm.batch_norm_backward(kw.pop("dy", dy), kw.pop("x", x), kw.pop("m", bm),  # noqa: E731
                                                   kw.pop("r", br), w, kw.pop("training", True), axis=ax(1, s), **kw)
    ln = lambda s, **kw: cnorm.layer_norm_backward(dyr, xr, _ns(8, s), kw.pop("m", lm), kw.pop("r", lr), wr,  # noqa
                                                   **kw)
    for name, call in (("gn", gn), ("bn", bn), ("ln", ln)):
        yield f"{name} eps -1", lambda s, c=call: c(s, eps=-1.0)
        yield f"{name} eps nan", lambda s, c=call: c(s, eps=float("nan"))
        yield f"{name} eps bool", lambda s, c=call: c(s, eps=True)
        yield f"{name} activation", lambda s, c=call: c(s, activation="tanh")
        yield f"{name} activation and eps", lambda s, c=call: c(s, activation="tanh", eps=-1.0)
        yield f"{name} needs length", lambda s, c=call: c(s, needs=(True, True))
        yield f"{name} needs type", lambda s, c=call: c(s, needs=(1, True, True))
        yield f"{name} needs list", lambda s, c=call: c(s, needs=[True, True])
        yield f"{name} mean without rstd", lambda s, c=call: c(s, r=None)
        yield f"{name} mean shape", lambda s, c=call: c(s, m=np.zeros(3, np.float32))
        yield f"{name} mean dtype", lambda s, c=call: c(s, m=np.zeros(3, np.complex64))
        yield f"{name} out without grad_x", lambda s, c=call: c(s, needs=(False, True, True), out=np.empty(1))
        yield f"{name} out dtype", lambda s, c=call: c(s, out=np.empty(x.shape if c is not ln else xr.shape))
        yield f"{name} out shape", lambda s, c=call: c(s, out=np.empty(5, np.float32))
        yield f"{name} out read-only", lambda s, c=call: c(s, out=_read_only(x if c is not ln else xr))
    yield "gn groups", lambda s: gn(s, g=3)
    yield "bn grad_out shape", lambda s: bn(s, dy=dy[:1])
    yield "bn grad_out dtype", lambda s: bn(s, dy=dy.astype(np.complex64))
    yield "bn eval without stats", lambda s: bn(s, m=None, r=None, training=False)
    yield "bn one value per channel", lambda s: bn(s, x=x[:1, :, :1, :1], dy=dy[:1, :, :1, :1], m=None, r=None)
    yield "in one spatial value", lambda s: cnorm.instance_norm_backward(dy[:, :, :1, :1], x[:, :, :1, :1],
                                                                        axis=ax(1, s))
    yield "in batch stats", lambda s: cnorm.instance_norm_backward(dy, x, bm, br, axis=ax(1, s))
    yield "rms needs", lambda s: cnorm.rms_norm_backward(dyr, xr, _ns(8, s), needs=(True, True, True))
    yield "rms eps", lambda s: cnorm.rms_norm_backward(dyr, xr, _ns(8, s), eps=-1.0)
    yield "rms return_stats eps", lambda s: cnorm.rms_norm(xr, _ns(8, s), eps=-1.0, return_stats=True)
    yield "gn return_stats eps", lambda s: cnorm.group_norm(x, 2, axis=ax(1, s), eps=-1.0, return_stats=True)
    yield "bn return_stats activation", lambda s: cnorm.batch_norm(x, None, None, None, None, True, axis=ax(1, s),
                                                                   activation="tanh", return_stats=True)


BAD_CALLS = list(_bad_calls())


@pytest.mark.parametrize("name, call", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_backward_errors_are_the_same_on_both_lanes(name, call, general_calls):
    kind = _both_lanes(call, general_calls, fast=False)
    assert kind[0] == "err", f"{name} did not raise"


@pytest.mark.parametrize("dtype", ["f4", "f8"])
@pytest.mark.parametrize("op", ["batch_norm", "instance_norm"])
def test_return_stats_running_stats_aliasing_out(op, dtype):
    """return_stats with running statistics gives the ones the kernel used,
    also when they share memory with out (the kernel overwrites them)."""
    x, w, b, rm, rv = data(dtype)
    c = x.shape[1]
    for lane in EPS:
        eps = EPS[lane]
        for _ in every_isa():
            if op == "batch_norm":
                call = lambda m, v, **kw: cnorm.batch_norm(x, m, v, w, b, False, 0.1, eps,  # noqa: E731
                                                           return_stats=True, **kw)
            else:
                call = lambda m, v, **kw: cnorm.instance_norm(x, m, v, w, b, False, 0.1, eps,  # noqa: E731
                                                              return_stats=True, **kw)
            want = call(rm, rv)
            out = np.zeros_like(x)
            alias_m, alias_v = out.reshape(-1)[:c], out.reshape(-1)[c:2 * c]
            alias_m[...], alias_v[...] = rm, rv
            got = call(alias_m, alias_v, out=out)
            assert got[0] is out
            for g, wnt in zip(got, want):
                assert_same(g, wnt)
