"""Bad-input rules of the Python API (README, Rules and decisions).

Every error is a ValueError or TypeError whose message names the offending
argument; size-0 batches are not errors; a failing call never leaves a
running stat half updated.
"""
import re

import numpy as np
import pytest

import cnorm

C = 4
SHAPE = (2, C, 3, 5)  # (N, C, H, W)
NS = (3, 5)  # layer_norm / rms_norm normalized_shape: trailing dims of SHAPE
NAN, INF = float("nan"), float("inf")

NORMS = ["batch_norm", "instance_norm", "group_norm", "layer_norm", "rms_norm"]
CHANNEL = ["batch_norm", "instance_norm", "group_norm"]
STATS = ["batch_norm", "instance_norm"]  # the functions with running stats
ROWS = ["layer_norm", "rms_norm"]

PARAM_SHAPE = {fn: ((C,) if fn in CHANNEL else NS) for fn in NORMS}
PARAM_ARGS = {
    "batch_norm": ("weight", "bias", "running_mean", "running_var"),
    "instance_norm": ("weight", "bias", "running_mean", "running_var"),
    "group_norm": ("weight", "bias"),
    "layer_norm": ("weight", "bias"),
    "rms_norm": ("weight",),
}
BAD_PARAM_SHAPES = {(C,): [(C + 1,), (1, C)], NS: [(15,), (5, 3)]}


def make_x(shape=SHAPE, dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def readonly(a):
    a.flags.writeable = False
    return a


def running_stats():
    return {"running_mean": np.full(C, 0.5), "running_var": np.full(C, 2.0)}


def call(fn, x=None, **kw):
    """cnorm.<fn>(x, ...) with valid defaults for the arguments not in kw
    (batch_norm defaults to training=True so it needs no running stats)."""
    x = make_x() if x is None else x
    f = getattr(cnorm, fn)
    if fn == "batch_norm":
        kw.setdefault("training", True)
    if fn == "group_norm":
        return f(x, kw.pop("num_groups", 2), **kw)
    if fn in ROWS:
        return f(x, kw.pop("normalized_shape", NS), **kw)
    return f(x, **kw)


def names(arg):
    """Pattern for a message that names `arg` as a whole word."""
    return rf"\b{re.escape(arg)}\b"


def ids(values):
    return [repr(v) for v in values]


# --- weight / bias / running-stat shapes ----------------------------------

SHAPE_CASES = [
    (fn, arg, bad)
    for fn, args in PARAM_ARGS.items()
    for arg in args
    for bad in BAD_PARAM_SHAPES[PARAM_SHAPE[fn]]
]


@pytest.mark.parametrize("fn,arg,bad", SHAPE_CASES, ids=[f"{f}-{a}-{b}" for f, a, b in SHAPE_CASES])
def test_param_shape_mismatch(fn, arg, bad):
    kw = running_stats() if arg.startswith("running") else {}
    kw[arg] = np.ones(bad)
    with pytest.raises(ValueError, match=names(arg)) as info:
        call(fn, **kw)
    msg = str(info.value)
    assert str(PARAM_SHAPE[fn]) in msg and str(bad) in msg, msg


# --- running stats: required, updatable, never half updated ---------------

EVAL_MODE = {"batch_norm": {"training": False}, "instance_norm": {"use_input_stats": False}}


@pytest.mark.parametrize("fn", STATS)
@pytest.mark.parametrize("given", [(), ("running_mean",), ("running_var",)], ids=["none", "mean-only", "var-only"])
def test_eval_mode_needs_both_running_stats(fn, given):
    kw = {k: v for k, v in running_stats().items() if k in given}
    if not given:
        pattern = r"\brunning_(mean|var)\b"
    else:
        pattern = names("running_var" if "running_mean" in given else "running_mean")
    with pytest.raises(ValueError, match=pattern):
        call(fn, **kw, **EVAL_MODE[fn])


@pytest.mark.parametrize("fn", STATS)
@pytest.mark.parametrize("stat", ["running_mean", "running_var"])
@pytest.mark.parametrize("kind,exc", [("list", TypeError), ("readonly", ValueError)])
def test_running_stats_updated_in_place_must_be_writable_arrays(fn, stat, kind, exc):
    kw = running_stats()
    kw[stat] = kw[stat].tolist() if kind == "list" else readonly(kw[stat])
    with pytest.raises(exc, match=names(stat)):
        call(fn, **kw)


FAILURES = {
    "weight-shape": lambda: {"weight": np.ones(C + 1)},
    "bias-shape": lambda: {"bias": np.ones(C + 1)},
    "out-shape": lambda: {"out": np.empty(SHAPE[:-1], np.float32)},
    "out-dtype": lambda: {"out": np.empty(SHAPE, np.float64)},
    "running_var-readonly": lambda: {"running_var": readonly(np.ones(C))},
    "running_var-list": lambda: {"running_var": [1.0] * C},
}


@pytest.mark.parametrize("fn", STATS)
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_failed_call_leaves_running_stats_unchanged(fn, failure):
    stats = running_stats()
    before = {k: v.copy() for k, v in stats.items()}
    with pytest.raises((ValueError, TypeError)):
        call(fn, **{**stats, **failure()})
    for k, v in stats.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


@pytest.mark.parametrize(
    "fn,shape", [("batch_norm", (1, C)), ("batch_norm", (1, C, 1, 1)), ("instance_norm", (2, C, 1)),
                 ("instance_norm", (1, C, 1, 1))])
def test_one_value_per_channel_when_training(fn, shape):
    with pytest.raises(ValueError, match=names("x")):
        call(fn, make_x(shape))


# --- scalar arguments ------------------------------------------------------


@pytest.mark.parametrize("fn", NORMS)
@pytest.mark.parametrize("eps", [-1e-5, -INF, NAN, INF], ids=ids([-1e-5, -INF, NAN, INF]))
def test_eps_out_of_range(fn, eps):
    with pytest.raises(ValueError, match=names("eps")):
        call(fn, eps=eps)


EPS_TYPE_CASES = [(fn, "1e-5") for fn in NORMS] + [(fn, None) for fn in NORMS if fn != "rms_norm"]


@pytest.mark.parametrize("fn,eps", EPS_TYPE_CASES)
def test_eps_wrong_type(fn, eps):
    with pytest.raises(TypeError, match=names("eps")):
        call(fn, eps=eps)


@pytest.mark.parametrize("fn", STATS)
@pytest.mark.parametrize("momentum", [-0.1, 1.5, NAN], ids=ids([-0.1, 1.5, NAN]))
def test_momentum_out_of_range(fn, momentum):
    with pytest.raises(ValueError, match=names("momentum")):
        call(fn, momentum=momentum, **running_stats())


@pytest.mark.parametrize(
    "num_groups,exc", [(3, ValueError), (0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError)])
def test_group_norm_num_groups(num_groups, exc):
    with pytest.raises(exc, match=names("num_groups")):
        cnorm.group_norm(make_x(), num_groups)


@pytest.mark.parametrize("func,arg", [(cnorm.set_isa, "bogus"), (cnorm.set_num_threads, -1)])
def test_config_setters(func, arg):
    with pytest.raises(ValueError, match=re.escape(repr(arg))):
        func(arg)


# --- dtypes ----------------------------------------------------------------

BAD_X = {
    "complex": lambda: make_x().astype(np.complex64),
    "object": lambda: make_x().astype(object),
    "string": lambda: make_x().astype(str),
}


@pytest.mark.parametrize("fn", NORMS + ["moments"])
@pytest.mark.parametrize("make_bad", BAD_X.values(), ids=BAD_X.keys())
def test_bad_input_dtype(fn, make_bad):
    with pytest.raises(TypeError, match=names("x")):
        call(fn, make_bad())


@pytest.mark.parametrize("fn", NORMS)
def test_complex_weight(fn):
    with pytest.raises(TypeError, match=names("weight")):
        call(fn, weight=np.ones(PARAM_SHAPE[fn], np.complex64))


# --- out= ------------------------------------------------------------------

BAD_OUT = {
    "shape": (ValueError, lambda: np.empty((2, C, 3, 6), np.float32)),
    "dtype": (TypeError, lambda: np.empty(SHAPE, np.float64)),
    "readonly": (ValueError, lambda: readonly(np.empty(SHAPE, np.float32))),
    "list": (TypeError, lambda: make_x().tolist()),
}


@pytest.mark.parametrize("fn", NORMS)
@pytest.mark.parametrize("exc,make_out", BAD_OUT.values(), ids=BAD_OUT.keys())
def test_bad_out(fn, exc, make_out):
    with pytest.raises(exc, match=names("out")):
        call(fn, out=make_out())


# --- axes and shapes ---------------------------------------------------------


@pytest.mark.parametrize("fn", CHANNEL + ["moments"])
@pytest.mark.parametrize("axis,exc", [(4, ValueError), (-5, ValueError), (1.0, TypeError), ("1", TypeError)])
def test_bad_axis(fn, axis, exc):
    with pytest.raises(exc, match=names("axis")):
        call(fn, axis=axis)


@pytest.mark.parametrize("fn", ["instance_norm", "group_norm"])
@pytest.mark.parametrize("axis", [0, -4])
def test_channel_axis_cannot_be_batch_axis(fn, axis):
    with pytest.raises(ValueError, match=names("axis")):
        call(fn, axis=axis)


@pytest.mark.parametrize("axis", [(1, 1), (1, -3), (0, 2, 0)])
def test_moments_repeated_axis(axis):
    with pytest.raises(ValueError, match=names("axis")):
        cnorm.moments(make_x(), axis=axis)


@pytest.mark.parametrize("fn", CHANNEL)
@pytest.mark.parametrize("shape", [(C,), ()])
def test_channel_functions_need_2d_input(fn, shape):
    with pytest.raises(ValueError, match=names("x")):
        call(fn, make_x(shape))


@pytest.mark.parametrize("fn", ROWS)
@pytest.mark.parametrize("ns", [(C, 3), 3, 15, (1,) + SHAPE], ids=ids([(C, 3), 3, 15, (1,) + SHAPE]))
def test_normalized_shape_not_trailing_dims(fn, ns):
    with pytest.raises(ValueError, match=names("normalized_shape")):
        call(fn, normalized_shape=ns)


# --- size-0 arrays -----------------------------------------------------------

ZERO_GROUP = [
    ("layer_norm", (3, 0), {"normalized_shape": 0}),
    ("rms_norm", (3, 0), {"normalized_shape": 0}),
    ("group_norm", (2, 4, 0), {}),
    ("instance_norm", (2, 3, 0), {}),
    ("moments", (3, 0), {"axis": 1}),
]


@pytest.mark.parametrize("fn,shape,kw", ZERO_GROUP, ids=[f"{f}-{s}" for f, s, _ in ZERO_GROUP])
def test_size0_group_raises(fn, shape, kw):
    with pytest.raises(ValueError, match=names("x")):
        call(fn, np.zeros(shape), **kw)


EMPTY_BATCH = [
    ("layer_norm", (0, 8), {"normalized_shape": 8}),
    ("rms_norm", (0, 8), {"normalized_shape": 8}),
    ("batch_norm", (0, C, 5), {}),
    ("batch_norm", (0, C, 5), {"training": False, **running_stats()}),
    ("group_norm", (0, C, 5), {}),
    ("instance_norm", (0, C, 5), {}),
]


@pytest.mark.parametrize("fn,shape,kw", EMPTY_BATCH, ids=["-".join([f, *k]) for f, _, k in EMPTY_BATCH])
def test_size0_batch_gives_empty_result(fn, shape, kw):
    y = call(fn, np.zeros(shape, np.float32), **kw)
    assert isinstance(y, np.ndarray) and y.shape == shape and y.dtype == np.float32


# --- allocation failure --------------------------------------------------------

HUGE = (2**20, 2**20, 2**20)  # 2**60 float32 elements: 4 EiB once contiguous


@pytest.mark.parametrize("fn", NORMS + ["moments"])
def test_too_large_to_allocate(fn):
    x = np.broadcast_to(np.float32(1), HUGE)
    kw = {"normalized_shape": 2**20} if fn in ROWS else {}
    with pytest.raises((MemoryError, ValueError)):
        call(fn, x, **kw)


# --- ints beyond C's range: one ValueError on every path --------------------------

BIG_INTS = [2**70, -2**70, 2**63, -2**63 - 1]
INT_ARGS = [("layer_norm", "normalized_shape"), ("rms_norm", "normalized_shape"), ("batch_norm", "axis"),
            ("instance_norm", "axis"), ("group_norm", "axis"), ("group_norm", "num_groups"),
            ("moments", "axis")]
# the same call spelled for the fast lane (plain float32 array, float eps, int
# ddof) and two ways that take the general path (an np.float64 eps or np.int64
# ddof; a nested list for x)
SPELLINGS = {
    "fast": lambda fn: (make_x(), {} if fn == "moments" else {"eps": 1e-5}),
    "general": lambda fn: (make_x(), {"ddof": np.int64(0)} if fn == "moments" else {"eps": np.float64(1e-5)}),
    "list": lambda fn: (make_x().tolist(), {}),
}


@pytest.mark.parametrize("big", BIG_INTS, ids=["2**70", "-2**70", "2**63", "-2**63-1"])
@pytest.mark.parametrize("fn,arg", INT_ARGS, ids=[f"{f}-{a}" for f, a in INT_ARGS])
def test_huge_int_arguments(fn, arg, big):
    """A Python int too large for C is a ValueError naming the argument, with
    the same message whichever path the call takes (not OverflowError)."""
    messages = set()
    for spelling in SPELLINGS.values():
        x, kw = spelling(fn)
        with pytest.raises(ValueError, match=names(arg)) as err:
            call(fn, x, **{arg: big}, **kw)
        messages.add(str(err.value))
    assert len(messages) == 1, messages


@pytest.mark.parametrize("n", [2**70, 2**31, -2**70])
def test_set_num_threads_huge(n, threads):
    with pytest.raises(ValueError, match=names("n")):
        cnorm.set_num_threads(n)


@pytest.mark.parametrize("ddof", [2**1100, -2**1100, INF, NAN], ids=["2**1100", "-2**1100", "inf", "nan"])
def test_moments_ddof_not_finite(ddof):
    """ddof beyond a double (or inf/NaN) is a ValueError naming ddof on both paths."""
    for x in (make_x(), make_x().tolist()):
        with pytest.raises(ValueError, match=names("ddof")):
            cnorm.moments(x, ddof=ddof)
