"""cnorm.nn modules: torch.nn behaviour on NumPy arrays.

The first half needs only NumPy (state dicts, errors, modes, out=, the
running-stat rules against a NumPy reference).  The second half compares
with torch.nn and is skipped, test by test, when torch is missing.
"""
import re
import warnings
import zlib

import numpy as np
import pytest

import cnorm
import cnorm.nn as cnn

TOL = dict(rtol=1e-4, atol=2e-5)


def _data(shape, *key, loc=0.5, scale=2.0):
    rng = np.random.default_rng(zlib.crc32(repr((shape,) + key).encode()))
    return rng.normal(loc, scale, shape).astype(np.float32)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


# Each case: (class name, constructor kwargs, batched input shape).  The
# same kwargs build the torch module.
CASES = [
    ("BatchNorm1d", dict(num_features=6), (8, 6)),
    ("BatchNorm1d", dict(num_features=6, momentum=None), (8, 6, 5)),
    ("BatchNorm1d", dict(num_features=6, affine=False, track_running_stats=False), (8, 6, 5)),
    ("BatchNorm2d", dict(num_features=6), (4, 6, 5, 3)),
    ("BatchNorm2d", dict(num_features=6, momentum=None, affine=False), (4, 6, 5, 3)),
    ("BatchNorm2d", dict(num_features=6, track_running_stats=False), (4, 6, 5, 3)),
    ("BatchNorm2d", dict(num_features=6, momentum=0.3, bias=False), (4, 6, 5, 3)),
    ("BatchNorm3d", dict(num_features=6, eps=1e-3), (2, 6, 3, 4, 5)),
    ("BatchNorm3d", dict(num_features=6, momentum=None, track_running_stats=False), (2, 6, 3, 4, 5)),
    ("InstanceNorm1d", dict(num_features=6), (3, 6, 10)),
    ("InstanceNorm1d", dict(num_features=6, affine=True, track_running_stats=True), (3, 6, 10)),
    ("InstanceNorm2d", dict(num_features=6, affine=True), (3, 6, 5, 4)),
    ("InstanceNorm2d", dict(num_features=6, track_running_stats=True, momentum=0.25), (3, 6, 5, 4)),
    ("InstanceNorm2d", dict(num_features=6, track_running_stats=True, momentum=None), (3, 6, 5, 4)),
    ("InstanceNorm3d", dict(num_features=6, affine=True, track_running_stats=True, bias=False), (2, 6, 3, 4, 2)),
    ("LayerNorm", dict(normalized_shape=16), (4, 5, 16)),
    ("LayerNorm", dict(normalized_shape=(5, 16), eps=1e-6), (4, 5, 16)),
    ("LayerNorm", dict(normalized_shape=16, elementwise_affine=False), (4, 5, 16)),
    ("LayerNorm", dict(normalized_shape=16, bias=False), (4, 5, 16)),
    ("GroupNorm", dict(num_groups=3, num_channels=6), (4, 6, 5, 3)),
    ("GroupNorm", dict(num_groups=2, num_channels=6, affine=False), (4, 6, 7)),
    ("GroupNorm", dict(num_groups=6, num_channels=6, bias=False), (4, 6, 5, 3)),
    ("RMSNorm", dict(normalized_shape=16), (4, 5, 16)),
    ("RMSNorm", dict(normalized_shape=(5, 16), eps=1e-6), (4, 5, 16)),
    ("RMSNorm", dict(normalized_shape=16, elementwise_affine=False), (4, 5, 16)),
]
IDS = [f"{name}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for name, kw, _ in CASES]

ALL_KEYS = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def _expected_keys(name, kw):
    """torch's state_dict keys for the configuration, written out by hand."""
    if name in ("LayerNorm", "RMSNorm"):
        affine, bias = kw.get("elementwise_affine", True), kw.get("bias", name == "LayerNorm")
        tracked = False
    else:
        affine = kw.get("affine", not name.startswith("Instance"))
        bias = kw.get("bias", True)
        tracked = kw.get("track_running_stats", name.startswith("Batch"))
    keys = ["weight"] * affine + ["bias"] * (affine and bias)
    return keys + ALL_KEYS[2:] * tracked


def _randomize(module, *key):
    """Random parameters and running stats (num_batches_tracked = 3)."""
    state = module.state_dict()
    for i, (k, v) in enumerate(state.items()):
        if k == "num_batches_tracked":
            state[k] = np.array(3)
        elif k == "running_var":
            state[k] = np.abs(_data(v.shape, key, i)) + 0.5
        else:
            state[k] = _data(v.shape, key, i, loc=1.0 if k == "weight" else 0.0, scale=0.5)
    module.load_state_dict(state)
    return state


def _assert_state_equal(got, want):
    """`got` (a cnorm state dict) equals `want` (torch's or cnorm's)."""
    assert list(got) == list(want)
    for k, v in want.items():
        v = v.detach().numpy() if hasattr(v, "detach") else v
        if k == "num_batches_tracked":
            assert got[k].dtype == np.int64 and got[k].shape == ()
            assert int(got[k]) == int(v), k
        else:
            assert got[k].dtype == np.float32
            np.testing.assert_allclose(got[k], v, err_msg=k, **TOL)


# ---------------------------------------------------------------- without torch

@pytest.mark.parametrize("name, kw, shape", CASES, ids=IDS)
def test_defaults_and_state_dict_keys(name, kw, shape):
    m = getattr(cnn, name)(**kw)
    assert m.training is True
    sd = m.state_dict()
    assert list(sd) == _expected_keys(name, kw)
    for k, v in sd.items():
        assert isinstance(v, np.ndarray)
        want = {"weight": 1, "bias": 0, "running_mean": 0, "running_var": 1, "num_batches_tracked": 0}[k]
        assert np.all(v == want), k
        assert v.dtype == (np.int64 if k == "num_batches_tracked" else np.float32)
        assert v is not getattr(m, k)  # copies
    for k in ALL_KEYS:
        if k not in sd and hasattr(m, k):
            assert getattr(m, k) is None


@pytest.mark.parametrize("name, kw, shape", CASES, ids=IDS)
def test_load_state_dict_numpy_roundtrip(name, kw, shape):
    m = getattr(cnn, name)(**kw)
    state = _randomize(m, name, "roundtrip")
    _assert_state_equal(m.state_dict(), state)
    other = getattr(cnn, name)(**kw)
    result = other.load_state_dict({k: v.astype(np.float64) for k, v in m.state_dict().items()})
    assert result == cnn.IncompatibleKeys([], [])
    _assert_state_equal(other.state_dict(), state)
    x = _data(shape, name, "x")
    np.testing.assert_array_equal(m.eval()(x), other.eval()(x))


@pytest.mark.parametrize("name, kw, shape", CASES, ids=IDS)
def test_strict_errors(name, kw, shape):
    m = getattr(cnn, name)(**kw)
    good = m.state_dict()
    before = {k: v.copy() for k, v in good.items()}
    if good:
        first = next(iter(good))
        missing = {k: v for k, v in good.items() if k != first}
        with pytest.raises(KeyError, match=f"missing keys \\['{first}'\\]"):
            m.load_state_dict(missing)
        assert m.load_state_dict(missing, strict=False) == cnn.IncompatibleKeys([first], [])
        wrong = dict(good, **{first: np.zeros(good[first].shape + (2,), np.float32)})
        message = f"{first}: expected shape {good[first].shape}, got {wrong[first].shape}"
        with pytest.raises(ValueError, match=re.escape(message)):
            m.load_state_dict(wrong)
    with pytest.raises(KeyError, match="unexpected keys \\['extra'\\]"):
        m.load_state_dict(dict(good, extra=np.zeros(3)))
    assert m.load_state_dict(dict(good, extra=np.zeros(3)), strict=False) == cnn.IncompatibleKeys([], ["extra"])
    _assert_state_equal(m.state_dict(), before)  # nothing changed by the failures


def test_load_state_dict_is_atomic_and_checks_types():
    m = cnn.BatchNorm1d(3)
    state = m.state_dict()
    bad = dict(state, weight=np.full(3, 7.0), running_var=np.ones(4))
    with pytest.raises(ValueError, match=r"running_var: expected shape \(3,\), got \(4,\)"):
        m.load_state_dict(bad)
    assert np.all(m.weight == 1)  # the good entry before the bad one was not copied
    with pytest.raises(TypeError, match="weight"):
        m.load_state_dict(dict(state, weight=np.array(["a", "b", "c"])))
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([("weight", np.ones(3))])


def test_missing_num_batches_tracked_is_tolerated():
    """As torch with a state dict that has no version metadata."""
    m = cnn.BatchNorm1d(3)
    m.num_batches_tracked[...] = 5
    sd = m.state_dict()
    del sd["num_batches_tracked"]
    assert m.load_state_dict(sd) == cnn.IncompatibleKeys([], [])
    assert int(m.num_batches_tracked) == 5


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30, -1.0, 2.5, -3, np.uint64(2**63)],
                         ids=["nan", "inf", "1e30", "-1.0", "2.5", "-3", "2**63"])
def test_num_batches_tracked_must_be_a_count(bad):
    """Casting NaN or 1e30 to int64 gives INT64_MIN: rejected, naming the key,
    and nothing is loaded."""
    m = cnn.BatchNorm1d(3)
    m.num_batches_tracked[...] = 5
    sd = dict(m.state_dict(), weight=np.full(3, 7.0), num_batches_tracked=np.array(bad))
    with pytest.raises(ValueError, match=r"\bnum_batches_tracked\b"):
        m.load_state_dict(sd)
    assert int(m.num_batches_tracked) == 5 and np.all(m.weight == 1)


@pytest.mark.parametrize("good", [np.array(7.0), np.array(7, np.int32), np.array(7, np.uint64), np.array(7.0, np.float16)])
def test_num_batches_tracked_whole_numbers_load(good):
    m = cnn.BatchNorm1d(3)
    m.load_state_dict(dict(m.state_dict(), num_batches_tracked=good))
    assert m.num_batches_tracked.dtype == np.int64 and int(m.num_batches_tracked) == 7


BIG = [2**70, -2**70, 2**63]
SIZE_ARGS = [
    ("num_features", lambda v: cnn.BatchNorm2d(v)),
    ("num_features", lambda v: cnn.InstanceNorm1d(v, affine=True)),
    ("normalized_shape", lambda v: cnn.LayerNorm(v)),
    ("normalized_shape", lambda v: cnn.LayerNorm((4, v))),
    ("normalized_shape", lambda v: cnn.RMSNorm(v)),
    ("num_groups", lambda v: cnn.GroupNorm(v, 4)),
    ("num_channels", lambda v: cnn.GroupNorm(1, v)),
]


@pytest.mark.parametrize("big", BIG, ids=["2**70", "-2**70", "2**63"])
@pytest.mark.parametrize("arg,make", SIZE_ARGS, ids=[f"{a}-{i}" for i, (a, _) in enumerate(SIZE_ARGS)])
def test_constructor_sizes_out_of_range(arg, make, big):
    """A ValueError naming the argument, not NumPy's "Maximum allowed
    dimension exceeded" or "negative dimensions are not allowed"."""
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        make(big)
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        make(-1)
    with pytest.raises(TypeError, match=rf"\b{arg}\b"):
        make(2.5)


def test_group_norm_zero_groups():
    with pytest.raises(ValueError, match="num_groups"):
        cnn.GroupNorm(0, 4)


def test_load_keeps_array_identity():
    m = cnn.LayerNorm(4)
    w = m.weight
    m.load_state_dict({"weight": np.arange(4), "bias": np.ones(4)})
    assert m.weight is w and w.dtype == np.float32
    np.testing.assert_array_equal(w, np.arange(4))


@pytest.mark.parametrize("name, kw, shape", CASES[::3], ids=IDS[::3])
def test_train_eval_switching(name, kw, shape):
    m = getattr(cnn, name)(**kw)
    assert m.eval() is m and m.training is False
    assert m.train() is m and m.training is True
    assert m.train(False) is m and m.training is False
    assert m.train(True) is m and m.training is True


@pytest.mark.parametrize("name, kw, shape", CASES, ids=IDS)
@pytest.mark.parametrize("inplace", [False, True])
def test_out(name, kw, shape, inplace):
    m = getattr(cnn, name)(**kw)
    _randomize(m, name, "out")
    m.eval()
    x = _data(shape, name, "out")
    want = m(x.copy())
    state = m.state_dict()
    out = x if inplace else np.empty_like(x)
    got = m(x, out=out)
    assert got is out
    np.testing.assert_array_equal(out, want)
    _assert_state_equal(m.state_dict(), state)


@pytest.mark.parametrize("cls, shapes", [
    (cnn.BatchNorm1d, [(4, 3, 2, 2), (3,)]),
    (cnn.BatchNorm2d, [(4, 3, 5), (4, 3, 5, 5, 5)]),
    (cnn.BatchNorm3d, [(4, 3, 5, 5)]),
    (cnn.InstanceNorm1d, [(3,), (2, 3, 4, 5)]),
    (cnn.InstanceNorm2d, [(3, 4), (2, 3, 4, 5, 6)]),
    (cnn.InstanceNorm3d, [(3, 4, 5)]),
])
def test_input_dim_errors(cls, shapes):
    m = cls(3)
    for shape in shapes:
        with pytest.raises(ValueError, match=f"{cls.__name__}: expected .*D input, got {len(shape)}D"):
            m(np.zeros(shape, np.float32))
    if m.track_running_stats:
        assert int(m.num_batches_tracked) == 0


def test_batch_norm_momentum_none_is_cumulative_average():
    m = cnn.BatchNorm2d(4, momentum=None)
    xs = [_data((5, 4, 3, 2), "cma", i, loc=i, scale=1 + i) for i in range(4)]
    for i, x in enumerate(xs):
        m(x)
        assert int(m.num_batches_tracked) == i + 1
    means = [x.mean(axis=(0, 2, 3), dtype=np.float64) for x in xs]
    variances = [x.var(axis=(0, 2, 3), ddof=1, dtype=np.float64) for x in xs]
    np.testing.assert_allclose(m.running_mean, np.mean(means, axis=0), **TOL)
    np.testing.assert_allclose(m.running_var, np.mean(variances, axis=0), **TOL)


def test_batch_norm_momentum_float_updates():
    m = cnn.BatchNorm1d(4, momentum=0.3)
    rm, rv = np.zeros(4), np.ones(4)
    for i in range(3):
        x = _data((6, 4), "ema", i)
        y = m(x)
        rm = 0.7 * rm + 0.3 * x.mean(0, dtype=np.float64)
        rv = 0.7 * rv + 0.3 * x.var(0, ddof=1, dtype=np.float64)
        np.testing.assert_allclose(y, cnorm.batch_norm(x, training=True), **TOL)
    np.testing.assert_allclose(m.running_mean, rm, **TOL)
    np.testing.assert_allclose(m.running_var, rv, **TOL)
    assert int(m.num_batches_tracked) == 3
    x = _data((6, 4), "ema", "eval")
    np.testing.assert_allclose(m.eval()(x), (x - rm) / np.sqrt(rv + 1e-5), **TOL)
    assert int(m.num_batches_tracked) == 3


def test_batch_norm_untracked_uses_batch_stats_in_eval():
    m = cnn.BatchNorm2d(3, track_running_stats=False).eval()
    x = _data((4, 3, 2, 2), "untracked")
    np.testing.assert_allclose(m(x), cnorm.batch_norm(x, training=True), **TOL)
    assert m.running_mean is None and m.num_batches_tracked is None


def test_rejected_input_is_not_counted():
    m = cnn.BatchNorm1d(3)
    with pytest.raises(ValueError):
        m(np.zeros((4, 5), np.float32))  # 5 channels, 3 features
    assert int(m.num_batches_tracked) == 0


@pytest.mark.parametrize("cls, shape", [(cnn.InstanceNorm1d, (3, 7)), (cnn.InstanceNorm2d, (3, 4, 5)),
                                        (cnn.InstanceNorm3d, (3, 2, 3, 4))])
@pytest.mark.parametrize("tracked", [False, True])
def test_instance_norm_unbatched_equals_batch_of_one(cls, shape, tracked):
    a, b = cls(3, affine=True, track_running_stats=tracked), cls(3, affine=True, track_running_stats=tracked)
    _randomize(a, "unbatched")
    b.load_state_dict(a.state_dict())
    x = _data(shape, "unbatched")
    for mode in (True, False):
        a.train(mode), b.train(mode)
        y = a(x)
        assert y.shape == x.shape
        np.testing.assert_array_equal(y, b(x[None])[0])
        out = np.empty_like(x)
        assert a(x, out=out) is out
        b(x[None])  # keeps b's running stats in step with a's
        np.testing.assert_array_equal(out, y)  # input stats in training; unchanged running stats in eval
        _assert_state_equal(a.state_dict(), b.state_dict())


def test_instance_norm_num_features_mismatch():
    x = _data((2, 4, 5), "mismatch")
    with pytest.raises(ValueError, match="num_features"):
        cnn.InstanceNorm1d(3, affine=True)(x)
    with pytest.warns(UserWarning, match="num_features"):
        y = cnn.InstanceNorm1d(3)(x)
    np.testing.assert_allclose(y, cnorm.instance_norm(x), **TOL)


def test_group_norm_divisibility():
    with pytest.raises(ValueError, match="divisible"):
        cnn.GroupNorm(4, 6)


@pytest.mark.parametrize("module, text", [
    (cnn.BatchNorm2d(4), "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"),
    (cnn.BatchNorm1d(4, momentum=None, affine=False, track_running_stats=False),
     "BatchNorm1d(4, eps=1e-05, momentum=None, affine=False, bias=False, track_running_stats=False)"),
    (cnn.InstanceNorm3d(3), "InstanceNorm3d(3, eps=1e-05, momentum=0.1, affine=False, bias=False, "
                            "track_running_stats=False)"),
    (cnn.LayerNorm((2, 8), bias=False), "LayerNorm((2, 8), eps=1e-05, elementwise_affine=True, bias=False)"),
    (cnn.GroupNorm(2, 4), "GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)"),
    (cnn.RMSNorm(8), "RMSNorm((8,), eps=None, elementwise_affine=True)"),
])
def test_repr(module, text):
    assert repr(module) == text


def test_reset():
    m = cnn.BatchNorm1d(3)
    _randomize(m, "reset")
    m.reset_parameters()
    _assert_state_equal(m.state_dict(), cnn.BatchNorm1d(3).state_dict())
    g = cnn.GroupNorm(1, 3)
    _randomize(g, "reset")
    g.reset_parameters()
    _assert_state_equal(g.state_dict(), cnn.GroupNorm(1, 3).state_dict())


def test_from_torch_rejects_other_objects():
    with pytest.raises(TypeError, match="expected a torch.nn module"):
        cnn.from_torch(cnn.LayerNorm(3))


# ---------------------------------------------------------------- against torch

def _torch_module(torch, name, kw):
    tm = getattr(torch.nn, name)(**kw)
    with torch.no_grad():
        for i, (k, v) in enumerate(tm.state_dict().items()):
            if k == "num_batches_tracked":
                v.fill_(3)
            elif k == "running_var":
                v.copy_(torch.from_numpy(np.abs(_data(tuple(v.shape), name, k, i)) + 0.5))
            else:
                v.copy_(torch.from_numpy(_data(tuple(v.shape), name, k, i, loc=1.0 if k == "weight" else 0.0,
                                               scale=0.5)))
    return tm


def _run_torch(torch, tm, x):
    with torch.no_grad():
        return tm(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name, kw, shape", CASES, ids=IDS)
@pytest.mark.parametrize("how", ["from_torch", "load_tensors", "load_numpy"])
def test_matches_torch(torch, name, kw, shape, how):
    """Outputs and state after train steps, eval, and train again."""
    tm = _torch_module(torch, name, kw)
    if how == "from_torch":
        m = cnn.from_torch(tm)
    else:
        m = getattr(cnn, name)(**kw)
        sd = tm.state_dict()
        m.load_state_dict(sd if how == "load_tensors" else {k: v.numpy() for k, v in sd.items()})
    assert repr(m) == repr(tm)
    _assert_state_equal(m.state_dict(), tm.state_dict())
    for step, mode in enumerate([True, True, True, False, False, True]):
        m.train(mode), tm.train(mode)
        x = _data(shape, name, "step", step, loc=step - 2.0, scale=1.0 + step)
        np.testing.assert_allclose(m(x), _run_torch(torch, tm, x), err_msg=f"step {step}", **TOL)
        _assert_state_equal(m.state_dict(), tm.state_dict())


@pytest.mark.parametrize("name, kw, shape", [c for c in CASES if c[0].startswith("Instance")],
                         ids=[i for i in IDS if i.startswith("Instance")])
def test_instance_norm_unbatched_matches_torch(torch, name, kw, shape):
    tm = _torch_module(torch, name, kw)
    m = cnn.from_torch(tm)
    for step, mode in enumerate([True, True, False]):
        m.train(mode), tm.train(mode)
        x = _data(shape[1:], name, "unbatched", step, loc=step)
        y = m(x)
        assert y.shape == x.shape
        np.testing.assert_allclose(y, _run_torch(torch, tm, x), **TOL)
        _assert_state_equal(m.state_dict(), tm.state_dict())


@pytest.mark.parametrize("mode", [True, False])
def test_from_torch_copies_training_flag_and_shares_nothing(torch, mode):
    tm = torch.nn.BatchNorm2d(3).train(mode)
    m = cnn.from_torch(tm)
    assert m.training is mode
    m.running_mean[...] = 5
    m.weight[...] = 5
    assert float(tm.running_mean.sum()) == 0 and float(tm.weight.detach().sum()) == 3


def test_from_torch_other_dtypes(torch):
    tm = torch.nn.LayerNorm(4).double()
    with torch.no_grad():
        tm.weight.copy_(torch.arange(4.0))
    m = cnn.from_torch(tm)
    assert m.weight.dtype == np.float32
    np.testing.assert_array_equal(m.weight, np.arange(4))
    m.load_state_dict({k: v.to(torch.bfloat16) for k, v in tm.state_dict().items()})
    np.testing.assert_array_equal(m.weight, np.arange(4))


def test_from_torch_errors(torch):
    with pytest.raises(TypeError, match="torch.nn.modules.linear.Linear"):
        cnn.from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError):
        cnn.from_torch(torch.nn.SyncBatchNorm(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lazy modules warn that they are experimental
        lazy = torch.nn.LazyBatchNorm2d()
    with pytest.raises(ValueError, match="uninitialized"):
        cnn.from_torch(lazy)
    lazy(torch.zeros(2, 3, 2, 2))
    assert isinstance(cnn.from_torch(lazy), cnn.BatchNorm2d)


def test_load_state_dict_from_torch_wrong_shape(torch):
    m = cnn.GroupNorm(2, 4)
    with pytest.raises(ValueError, match=r"weight: expected shape \(4,\), got \(6,\)"):
        m.load_state_dict(torch.nn.GroupNorm(2, 6).state_dict())
    with pytest.raises(KeyError, match="unexpected keys"):
        cnn.BatchNorm1d(4, track_running_stats=False).load_state_dict(torch.nn.BatchNorm1d(4).state_dict())


@pytest.mark.parametrize("cls, kw, fused", [
    (cnn.LayerNorm, {}, cnorm.add_layer_norm),
    (cnn.LayerNorm, {"bias": False}, cnorm.add_layer_norm),
    (cnn.LayerNorm, {"elementwise_affine": False}, cnorm.add_layer_norm),
    (cnn.RMSNorm, {}, cnorm.add_rms_norm),
    (cnn.RMSNorm, {"elementwise_affine": False}, cnorm.add_rms_norm),
], ids=["ln", "ln-nobias", "ln-noaffine", "rms", "rms-noaffine"])
@pytest.mark.parametrize("training", [False, True])
def test_forward_add(cls, kw, fused, training):
    """forward_add is the functional add norm with the module's parameters,
    y is bitwise the module's forward of the stored sum, sum_out=residual
    updates it in place, and nothing is kept for a backward."""
    rng = np.random.default_rng(5)
    m = cls(24, **kw)
    m.training = training
    for name in ("weight", "bias"):
        p = getattr(m, name, None)
        if p is not None:
            p[...] = rng.standard_normal(p.shape)
    x = rng.standard_normal((3, 4, 24)).astype(np.float32)
    res = rng.standard_normal((4, 24)).astype(np.float32)  # broadcast over the leading dim
    skip = rng.standard_normal(24).astype(np.float32)
    m(x)  # a forward whose saved state forward_add must drop
    y, s = m.forward_add(x, res, skip_bias=skip)
    args = (m.weight, m.bias, m.eps) if cls is cnn.LayerNorm else (m.weight, m.eps)
    want_y, want_s = fused(x, res, m.normalized_shape, *args, skip_bias=skip)
    assert np.array_equal(y, want_y) and np.array_equal(s, want_s)
    m.eval()
    assert np.array_equal(y, m(s))
    m.training = training
    r = np.broadcast_to(res, x.shape).copy()
    y2, s2 = m.forward_add(x, r, skip_bias=skip, sum_out=r)
    assert s2 is r and np.array_equal(r, want_s) and np.array_equal(y2, want_y)
    m(x)
    m.forward_add(x, res)
    with pytest.raises(RuntimeError, match="no forward to go back through"):
        m.backward(np.ones_like(x))
