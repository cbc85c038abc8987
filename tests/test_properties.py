"""Property-based tests (hypothesis) for every cnorm function.

A drawn ``Case`` is one call: the op, an input array (random shape with
size-1 dims, random channel axis, and a random memory view: strided and
reversed slices, transposes, zero-stride broadcasts), and its arguments.
It runs the same way against cnorm and against tests/reference.py.
"""
import contextlib
import math
from typing import Callable, NamedTuple

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import cnorm
import reference as ref

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - depends on the environment
    ml_dtypes = None

SETTINGS = settings(max_examples=40, deadline=None)

CHANNEL_OPS = ("batch_norm", "instance_norm", "group_norm")
ROW_OPS = ("layer_norm", "rms_norm")
OPS = CHANNEL_OPS + ROW_OPS
FLOATS = (np.float32, np.float64)
PARALLEL_SIZE = 2**15
STEPS = (1, 1, 2, 3, -1, -2)      # slicing steps of drawn views (1 twice: more likely)


# ------------------------------------------------------------------ inputs

def _finfo(dtype):
    dtype = np.dtype(dtype)
    return ml_dtypes.finfo(dtype) if dtype.kind == "V" else np.finfo(dtype)


def _compute_eps(dtype):
    """Unit roundoff of the dtype cnorm computes in for `dtype`."""
    return np.finfo(np.float64 if np.dtype(dtype) == np.float64 else np.float32).eps


@st.composite
def view_layouts(draw, nd, broadcast=True, steps=STEPS):
    """(steps per axis, memory axis order, broadcast axes) of a view."""
    step = tuple(draw(st.lists(st.sampled_from(steps), min_size=nd, max_size=nd)))
    perm = tuple(draw(st.permutations(range(nd))))
    bcast = draw(st.sets(st.integers(0, nd - 1), max_size=nd - 1)) if broadcast else set()
    return step, perm, frozenset(bcast)


def make_view(rng, shape, layout, dtype, loc=0.0, scale=1.0):
    """Random array of logical shape `shape` seen through `layout`."""
    nd = len(shape)
    step, perm, bcast = layout or ((1,) * nd, tuple(range(nd)), frozenset())
    base = [1 if i in bcast else n for i, n in enumerate(shape)]
    memory = (rng.standard_normal([base[p] * abs(step[p]) for p in perm]) * scale + loc).astype(dtype)
    view = memory.transpose(np.argsort(perm))[tuple(slice(None, None, s) for s in step)]
    return np.broadcast_to(view, shape) if bcast else view


class Case(NamedTuple):
    name: str
    x: np.ndarray
    args: tuple            # positional arguments after x
    kwargs: dict           # keywords shared by cnorm and the reference
    groups_of: Callable    # array in x's axes -> (groups, elements) float64
    input_stats: bool      # statistics from x (else from running stats)

    @property
    def eps(self):
        eps = self.kwargs["eps"]
        return float(_finfo(self.x.dtype).eps) if eps is None else eps

    def run(self, module, x=None, **extra):
        """(result, running stats after the call) for cnorm or reference."""
        args = [a.copy() if isinstance(a, np.ndarray) else a for a in self.args]
        kwargs = dict(self.kwargs, **extra)
        if module is ref and kwargs.get("eps", 0) is None:
            kwargs["eps"] = self.eps                 # the reference defaults to float64's
        y = getattr(module, self.name)(self.x if x is None else x, *args, **kwargs)
        running = args[:2] if self.name in ("batch_norm", "instance_norm") and args[0] is not None else []
        return y, running

    def tolerance(self, expected):
        """Absolute error a correct float kernel may make on this case:
        roundoff times the conditioning (|x| over the std it is divided
        by), times the output and affine magnitudes, with the sqrt(m)
        growth of a sum of m roundoffs (m elements per group; the
        reference's own float64 sums also err that much)."""
        x = self.x.astype(np.float64)
        groups = self.groups_of(x)
        if self.name == "rms_norm":
            var, shift = (groups ** 2).mean(axis=1), 0.0
        elif self.input_stats:
            var, shift = groups.var(axis=1), 0.0
        else:
            var, shift = self.args[1].astype(np.float64), np.abs(self.args[0].astype(np.float64)).max()
        cond = (np.abs(x).max() + shift) / np.sqrt(var.min() + self.eps)
        w, b = self.affine
        wmax = 1.0 if w is None else max(1.0, np.abs(w.astype(np.float64)).max())
        bmax = 1.0 if b is None else max(1.0, np.abs(b.astype(np.float64)).max())
        ymax = np.abs(expected).max() if expected.size else 0.0
        growth = 4 + math.sqrt(groups.shape[1])
        return growth * _compute_eps(self.x.dtype) * (cond * (1 + ymax) * wmax + bmax)

    @property
    def affine(self):
        if self.name in ROW_OPS:
            return self.args[1], (self.args[2] if self.name == "layer_norm" else None)
        i = 1 if self.name == "group_norm" else 2
        return self.args[i], self.args[i + 1]


@st.composite
def cases(draw, ops=OPS, dtypes=FLOATS, views=True, broadcast=True, steps=STEPS,
          affine=True, input_stats=False, min_size=1, eps=(1e-5, 1e-3, 0.25), stats_dtype=None):
    """A Case.  ``input_stats=True`` forces statistics computed from x
    (batch norm training, instance norm use_input_stats).  Running stats
    have x's dtype unless ``stats_dtype`` is given."""
    name = draw(st.sampled_from(ops))
    dtype = draw(st.sampled_from(dtypes))
    nd = draw(st.integers(1 if name in ROW_OPS else 2, 4))
    shape = list(draw(hnp.array_shapes(min_dims=nd, max_dims=nd, min_side=1, max_side=6)))
    if math.prod(shape) < min_size:
        shape[draw(st.integers(0, nd - 1))] *= -(-min_size // math.prod(shape))
    shape = tuple(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layout = draw(view_layouts(nd, broadcast, steps)) if views else None
    x = make_view(rng, shape, layout, dtype, loc=draw(st.sampled_from([0.0, 3.0])))

    def maybe(shape_, loc):
        if not (affine and draw(st.booleans())):
            return None
        return rng.normal(loc, 0.5, shape_).astype(dtype)

    def running(c):
        sd = stats_dtype or dtype
        return rng.normal(0.0, 1.0, c).astype(sd), rng.uniform(0.25, 2.0, c).astype(sd)

    kwargs = {"eps": draw(st.sampled_from(eps + ((None,) if name == "rms_norm" else ())))}
    stats_from_x = True
    if name in CHANNEL_OPS:
        axis = draw(st.sampled_from([a for a in range(-nd, nd) if name == "batch_norm" or a % nd]))
        ax, n = axis % nd, shape[0]
        c = shape[ax]
        kwargs["axis"] = axis
        w, b = maybe((c,), 1.0), maybe((c,), 0.0)
        if name == "group_norm":
            g = draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]))
            args = (g, w, b)
            groups_of = lambda a: np.moveaxis(a, ax, 1).reshape(n * g, -1)   # noqa: E731
        else:
            per_group = math.prod(shape) // c // (1 if name == "batch_norm" else n)
            modes = ("input", "input+update") + (() if input_stats else ("running",))
            mode = draw(st.sampled_from(modes))
            if per_group == 1:        # one value per group: only running stats work
                assume(not input_stats)
                mode = "running"
            stats_from_x = mode != "running"
            rm, rv = (None, None) if mode == "input" else running(c)
            args = (rm, rv, w, b, stats_from_x, draw(st.sampled_from([0.1, 0.37, 0.9, 1.0])))
            if name == "batch_norm":
                groups_of = lambda a: np.moveaxis(a, ax, 0).reshape(c, -1)   # noqa: E731
            else:
                groups_of = lambda a: np.moveaxis(a, ax, 1).reshape(n * c, -1)   # noqa: E731
    else:
        k = draw(st.integers(1, nd))
        ns = shape[nd - k:]
        normalized = ns[0] if k == 1 and draw(st.booleans()) else ns
        w = maybe(ns, 1.0)
        args = (normalized, w, maybe(ns, 0.0)) if name == "layer_norm" else (normalized, w)
        groups_of = lambda a: a.reshape(-1, math.prod(ns))   # noqa: E731
    return Case(name, x, args, kwargs, groups_of, stats_from_x)


def assert_matches_reference(case, y, expected, running=(), expected_running=()):
    tol = case.tolerance(expected)
    assert y.shape == case.x.shape and y.dtype == case.x.dtype
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=0, atol=tol)
    for got, exp in zip(running, expected_running):
        np.testing.assert_allclose(got.astype(np.float64), exp, rtol=1e-5, atol=tol)


@contextlib.contextmanager
def num_threads(n):
    old = cnorm.get_num_threads()
    cnorm.set_num_threads(n)
    try:
        yield
    finally:
        cnorm.set_num_threads(old)


# ------------------------------------------------------------------ (a) reference

@SETTINGS
@given(case=cases())
def test_matches_reference(case):
    y, running = case.run(cnorm)
    expected, expected_running = case.run(ref)
    assert_matches_reference(case, y, expected, running, expected_running)


# ------------------------------------------------------------------ (b) standardization

@SETTINGS
@given(case=cases(affine=False, input_stats=True))
def test_output_is_standardized(case):
    """Per group: mean 0 and variance var/(var + eps) (-> 1 when var >> eps);
    for RMS norm, mean square ms/(ms + eps)."""
    y = case.run(cnorm)[0]
    groups_in = case.groups_of(case.x.astype(np.float64))
    groups_out = case.groups_of(y.astype(np.float64))
    tol = case.tolerance(y.astype(np.float64))
    if case.name == "rms_norm":
        ms = (groups_in ** 2).mean(axis=1)
        np.testing.assert_allclose((groups_out ** 2).mean(axis=1), ms / (ms + case.eps), rtol=0, atol=4 * tol)
        return
    var = groups_in.var(axis=1)
    np.testing.assert_allclose(groups_out.mean(axis=1), 0.0, rtol=0, atol=tol)
    ymax = np.abs(groups_out).max()
    np.testing.assert_allclose(groups_out.var(axis=1), var / (var + case.eps), rtol=0, atol=4 * tol * (1 + ymax))
    big = var > 100 * case.eps
    np.testing.assert_allclose(groups_out.var(axis=1)[big], 1.0, rtol=0.02)


# ------------------------------------------------------------------ (c) shift / scale

@SETTINGS
@given(case=cases(ops=("batch_norm", "instance_norm", "group_norm", "layer_norm"), input_stats=True,
                  eps=(0.0, 1e-5, 0.25)),
       shift=st.floats(-50.0, 50.0))
def test_invariant_to_shift(case, shift):
    if case.eps == 0:
        assume(case.groups_of(case.x.astype(np.float64)).var(axis=1).min() > 1e-2)
    y = case.run(cnorm)[0]
    shifted = case._replace(x=(case.x + case.x.dtype.type(shift)).astype(case.x.dtype))
    y_shifted = shifted.run(cnorm)[0]
    tol = max(case.tolerance(y.astype(np.float64)), shifted.tolerance(y_shifted.astype(np.float64)))
    np.testing.assert_allclose(y_shifted, y, rtol=0, atol=tol)


@SETTINGS
@given(case=cases(input_stats=True, eps=(0.0, 1e-5, 0.25)), scale=st.floats(1e-2, 1e2))
def test_equivariant_to_scale(case, scale):
    """norm(a*x, eps=a**2 * eps) == norm(x, eps) for a > 0 (exactly, in
    exact arithmetic; also with eps=0 when no group is constant)."""
    if case.eps == 0:
        stat = (lambda g: (g ** 2).mean(axis=1)) if case.name == "rms_norm" else (lambda g: g.var(axis=1))
        assume(stat(case.groups_of(case.x.astype(np.float64))).min() > 1e-2)
    y = case.run(cnorm)[0]
    scaled = case._replace(x=(case.x * case.x.dtype.type(scale)).astype(case.x.dtype),
                           kwargs=dict(case.kwargs, eps=case.eps * scale**2))
    y_scaled = scaled.run(cnorm)[0]
    tol = max(case.tolerance(y.astype(np.float64)), scaled.tolerance(y_scaled.astype(np.float64)))
    np.testing.assert_allclose(y_scaled, y, rtol=0, atol=tol)


# ------------------------------------------------------------------ (d) moments

@st.composite
def moments_inputs(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32, np.bool_]))
    nd = draw(st.integers(1, 4))
    shape = draw(hnp.array_shapes(min_dims=nd, max_dims=nd, min_side=1, max_side=7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = make_view(rng, shape, draw(view_layouts(nd)), dtype, loc=draw(st.sampled_from([0.0, 5.0])),
                  scale=1.0 if dtype != np.int32 else 10.0)
    axis = draw(st.one_of(st.none(), st.integers(-nd, nd - 1), hnp.valid_tuple_axes(nd)))
    return x, axis


@SETTINGS
@given(data=moments_inputs(), ddof=st.sampled_from([0, 1]), keepdims=st.booleans())
def test_moments_match_numpy(data, ddof, keepdims):
    x, axis = data
    length = x.size // max(np.mean(x, axis=axis, keepdims=True).size, 1)
    assume(length > ddof)
    mean, var = cnorm.moments(x, axis, ddof=ddof, keepdims=keepdims)
    exp_mean = np.mean(x, axis=axis, keepdims=keepdims)
    exp_var = np.var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    for got, exp in ((mean, exp_mean), (var, exp_var)):
        assert np.shape(got) == np.shape(exp)
        assert np.result_type(got) == np.result_type(exp)
    u = np.finfo(np.result_type(exp_mean)).eps
    xmax = float(np.abs(x.astype(np.float64)).max())
    np.testing.assert_allclose(mean, exp_mean, rtol=0, atol=16 * u * max(xmax, 1))
    np.testing.assert_allclose(var, exp_var, rtol=0, atol=64 * u * max(xmax, 1) ** 2)


# ------------------------------------------------------------------ (e) threads

@SETTINGS
@given(case=cases(min_size=PARALLEL_SIZE + 1, steps=(1, -1, 2)))
def test_results_independent_of_thread_count(case):
    results = []
    for n in (1, 2, 3):
        with num_threads(n):
            results.append(case.run(cnorm))
    (y1, r1), *others = results
    for y, r in others:
        assert np.array_equal(y, y1, equal_nan=True)
        for a, b in zip(r, r1):
            assert np.array_equal(a, b)


@SETTINGS
@given(data=moments_inputs(), ddof=st.sampled_from([0, 1]), factor=st.integers(1, 3))
def test_moments_independent_of_thread_count(data, ddof, factor):
    x, axis = data
    x = np.tile(x, (-(-PARALLEL_SIZE // x.size) * factor,) + (1,) * (x.ndim - 1))
    assume(x.size // max(np.mean(x, axis=axis, keepdims=True).size, 1) > ddof)
    results = []
    for n in (1, 2, 3):
        with num_threads(n):
            results.append(cnorm.moments(x, axis, ddof=ddof))
    for mean, var in results[1:]:
        assert np.array_equal(mean, results[0][0]) and np.array_equal(var, results[0][1])


# ------------------------------------------------------------------ (f) out=

@SETTINGS
@given(case=cases(broadcast=False))
def test_out_in_place(case):
    expected, expected_running = case.run(cnorm)
    x = case.x                     # a writable view (no broadcasting)
    got, running = case.run(cnorm, x=x, out=x)
    assert got is x
    np.testing.assert_array_equal(got, expected)
    for a, b in zip(running, expected_running):
        np.testing.assert_array_equal(a, b)


@SETTINGS
@given(case=cases(views=False), data=st.data())
def test_out_partially_overlapping_x(case, data):
    """x and out are two windows of one buffer, shifted by k elements (in
    either direction), out possibly in the transposed memory order."""
    shape, size = case.x.shape, case.x.size
    assume(size > 1)
    k = data.draw(st.integers(1, size - 1), label="k")
    buf = np.random.default_rng(k).standard_normal(size + k).astype(case.x.dtype)
    x_first = data.draw(st.booleans(), label="x_first")
    x_start, out_start = (0, k) if x_first else (k, 0)
    x = buf[x_start:x_start + size].reshape(shape)
    out = buf[out_start:out_start + size]
    out = out.reshape(shape[::-1]).T if data.draw(st.booleans(), label="out_transposed") else out.reshape(shape)
    x_before = x.copy()
    expected = case.run(cnorm, x=x_before)[0]
    got = case.run(cnorm, x=x, out=out)[0]
    assert got is out
    np.testing.assert_array_equal(out, expected)
    # the reference agrees too (so "expected" is not itself garbage)
    exp_ref = case.run(ref, x=x_before)[0]
    assert_matches_reference(case._replace(x=x_before), out, exp_ref)


# ------------------------------------------------------------------ (g) float16 / bfloat16

def _ulp(v, dtype):
    fi = _finfo(dtype)
    e = np.floor(np.log2(np.maximum(np.abs(v), float(fi.smallest_normal))))
    return np.exp2(e - fi.nmant)


LOW_DTYPES = [
    pytest.param("float16", id="float16"),
    pytest.param("bfloat16", id="bfloat16",
                 marks=pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes not installed")),
]


def _low_dtype(name):
    return np.dtype(np.float16) if name == "float16" else np.dtype(ml_dtypes.bfloat16)


@pytest.mark.parametrize("dtype_name", LOW_DTYPES)
@SETTINGS
@given(data=st.data())
def test_low_precision_dtypes(dtype_name, data):
    """float16 / bfloat16 in -> same dtype out, within 2 ulp of the output
    format of the float64 reference (plus float32 compute roundoff).
    Running stats are float32, as in mixed-precision PyTorch models."""
    dtype = _low_dtype(dtype_name)
    case = data.draw(cases(dtypes=(dtype,), stats_dtype=np.float32), label="case")
    y, running = case.run(cnorm)
    expected, expected_running = case.run(ref)
    assert y.dtype == dtype and y.shape == case.x.shape
    err = np.abs(y.astype(np.float64) - expected)
    bound = 2 * _ulp(expected, dtype) + case.tolerance(expected)
    bad = ~(err <= bound)
    assert not bad.any(), (f"{bad.sum()} outputs off: got {y.astype(np.float64)[bad][:4]}, "
                           f"expected {expected[bad][:4]}")
    for a, b in zip(running, expected_running):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=case.tolerance(expected))


@pytest.mark.parametrize("name", ["batch_norm", "instance_norm"])
@pytest.mark.parametrize("dtype_name", LOW_DTYPES)
def test_low_precision_running_stats_updated_in_place(dtype_name, name):
    """Running stats may have the low-precision dtype too: they are updated
    in place like float32/float64 ones (rounded to their dtype)."""
    dtype = _low_dtype(dtype_name)
    rng = np.random.default_rng(7)
    x = rng.normal(1.0, 2.0, (4, 3, 5)).astype(dtype)
    stats = {m: (np.zeros(3, dtype), np.ones(3, dtype)) for m in ("cnorm", "ref")}
    y = getattr(cnorm, name)(x, *stats["cnorm"], None, None, True, 0.5)
    expected = getattr(ref, name)(x, *stats["ref"], None, None, True, 0.5)
    assert y.dtype == dtype
    assert np.all(np.abs(y.astype(np.float64) - expected) <= 2 * _ulp(expected, dtype) + 1e-5)
    for got, exp in zip(stats["cnorm"], stats["ref"]):
        assert got.dtype == dtype
        np.testing.assert_allclose(got.astype(np.float64), exp.astype(np.float64), rtol=2 * float(_finfo(dtype).eps))
