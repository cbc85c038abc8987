"""Invariants not covered by tests/test_properties.py (which already checks
the reference, standardization, shift and scale invariance, and thread-count
independence for float32/float64):

* SIMD ISAs agree with the scalar path within tolerance;
* repeated calls (with the output-buffer cache churned in between) are
  bitwise identical;
* the Cython fast path and the general Python path give bitwise identical
  results (the same call spelled with np.float64 eps / tuple shapes / an
  np.int64 axis takes the general path);
* float16 results are bitwise independent of the thread count, and its
  shift invariance holds when eps is negligible.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import cnorm
from test_properties import PARALLEL_SIZE, cases, num_threads

SETTINGS = settings(max_examples=30, deadline=None)
SIMD = [i for i in cnorm.available_isas() if i != "scalar"]


pytestmark = pytest.mark.usefixtures("restore_config")


def _assert_within(got, want, tol):
    """|got - want| <= tol elementwise (tol may be an array); NaNs must match."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    err = np.where(np.isnan(want), 0.0, np.abs(got - want))
    bad = ~(err <= tol)
    assert not bad.any(), (f"{bad.sum()} of {bad.size} off: got {got[bad][:4]}, want {want[bad][:4]}, "
                           f"tol {np.broadcast_to(tol, bad.shape)[bad][:4]}")


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.skipif(not SIMD, reason="no SIMD ISA available")
@SETTINGS
@given(data=st.data(), big=st.booleans())
def test_simd_agrees_with_scalar(data, big):
    case = data.draw(cases(dtypes=(np.float32, np.float64, np.float16), stats_dtype=np.float32,
                           min_size=PARALLEL_SIZE + 1 if big else 1), label="case")
    isa = data.draw(st.sampled_from(SIMD), label="isa")
    cnorm.set_isa("scalar")
    y0, r0 = case.run(cnorm)
    cnorm.set_isa(isa)
    y1, r1 = case.run(cnorm)
    expected = y0.astype(np.float64)
    tol = case.tolerance(expected)
    if case.x.dtype == np.float16:   # each side may round to a neighbouring float16
        tol = tol + 2 * np.spacing(np.abs(expected).astype(np.float16)).astype(np.float64)
    _assert_within(y1, expected, tol)
    for a, b in zip(r1, r0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(case=cases(dtypes=(np.float32, np.float64, np.float16), min_size=1 << 12,
                  stats_dtype=np.float32))
def test_repeated_calls_bitwise_identical(case):
    first = case.run(cnorm)
    churn = np.ones((2, 1 << 18), np.float32)    # 2 MiB results cycle through the buffer cache
    for _ in range(2):
        for _ in range(3):
            cnorm.layer_norm(churn, churn.shape[-1])
        again = case.run(cnorm)
        assert _same_bits(again[0], first[0])
        for a, b in zip(again[1], first[1]):
            assert _same_bits(a, b)


def _channel_inputs(draw, dtype):
    n = draw(st.integers(1, 4))
    c = draw(st.sampled_from([1, 2, 3, 4, 6, 8]))
    spatial = tuple(draw(st.lists(st.integers(1, 9), min_size=0, max_size=2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    big = draw(st.booleans())
    if big:
        n *= 256
    x = (rng.standard_normal((n, c) + spatial) * 2 + 1).astype(dtype)
    if draw(st.booleans()) and x.ndim > 2:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        axis = -1
    else:
        axis = 1
    w = (rng.random(c) + 0.5).astype(dtype) if draw(st.booleans()) else None
    b = rng.standard_normal(c).astype(dtype) if draw(st.booleans()) else None
    rm, rv = rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)
    return x, axis, c, w, b, rm, rv


@SETTINGS
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]),
       op=st.sampled_from(["bn_eval", "bn_batch", "in", "gn", "ln", "ln_act"]),
       act=st.sampled_from([None, "relu", "silu", "gelu"]))
def test_fast_path_equals_general_path(data, dtype, op, act):
    """Same numbers, spelled so that the Cython fast path declines the call
    (np.float64 eps, np.int64 axis, tuple normalized_shape): same bits."""
    x, axis, c, w, b, rm, rv = _channel_inputs(data.draw, dtype)
    eps = data.draw(st.sampled_from([1e-5, 1e-3, 0.5]))
    slow_eps, slow_axis = np.float64(eps), np.int64(axis)
    assert type(slow_eps) is not float
    if op == "bn_eval":
        fast = cnorm.batch_norm(x, rm, rv, w, b, False, 0.1, eps, axis=axis, activation=act)
        slow = cnorm.batch_norm(x, rm, rv, w, b, False, 0.1, slow_eps, axis=slow_axis, activation=act)
    elif op == "bn_batch":
        assume(x.size // c > 1)
        fast = cnorm.batch_norm(x, None, None, w, b, True, 0.1, eps, axis=axis, activation=act)
        slow = cnorm.batch_norm(x, None, None, w, b, True, 0.1, slow_eps, axis=slow_axis, activation=act)
    elif op == "in":
        assume(x.size // (c * x.shape[0]) > 1)
        fast = cnorm.instance_norm(x, None, None, w, b, True, 0.1, eps, axis=axis, activation=act)
        slow = cnorm.instance_norm(x, None, None, w, b, True, 0.1, slow_eps, axis=slow_axis, activation=act)
    elif op == "gn":
        g = data.draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]))
        fast = cnorm.group_norm(x, g, w, b, eps, axis=axis, activation=act)
        slow = cnorm.group_norm(x, np.int64(g), w, b, slow_eps, axis=slow_axis, activation=act)
    else:
        k = x.shape[-1]
        rng = np.random.default_rng(0)
        wl = (rng.random(k) + 0.5).astype(dtype)
        bl = rng.standard_normal(k).astype(dtype)
        fast = cnorm.layer_norm(x, k, wl, bl, eps)
        if op == "ln":
            slow = cnorm.layer_norm(x, (k,), wl, bl, slow_eps)
        else:   # return_stats forces the general path; its y must equal the fast one
            slow = cnorm.layer_norm(x, k, wl, bl, eps, return_stats=True)[0]
    assert _same_bits(fast, slow), f"max diff {np.abs(fast.astype(np.float64) - slow).max()}"


@SETTINGS
@given(case=cases(dtypes=(np.float16,), min_size=PARALLEL_SIZE + 1, steps=(1, -1, 2),
                  stats_dtype=np.float32))
def test_float16_independent_of_thread_count(case):
    results = []
    for n in (1, 2):
        with num_threads(n):
            results.append(case.run(cnorm))
    (y1, r1), (y2, r2) = results
    assert _same_bits(y1, y2)
    for a, b in zip(r1, r2):
        assert _same_bits(a, b)


@SETTINGS
@given(case=cases(ops=("batch_norm", "instance_norm", "group_norm", "layer_norm"), dtypes=(np.float16,),
                  input_stats=True, eps=(1e-7,), stats_dtype=np.float32),
       shift=st.sampled_from([-8.0, -1.0, 0.5, 2.0, 16.0]))
def test_float16_invariant_to_exact_shift(case, shift):
    """Inputs on a 1/64 grid below 32 in magnitude, shifted by small powers
    of two, stay exact in float16: the output may move by float16 rounding
    (and the float32 compute roundoff) only."""
    x = np.round(case.x.astype(np.float64) * 64) / 64
    case = case._replace(x=x.astype(np.float16))
    xs = x + shift
    assert np.array_equal(xs.astype(np.float16).astype(np.float64), xs)
    y = case.run(cnorm)[0].astype(np.float64)
    ys = case.run(cnorm, x=xs.astype(np.float16))[0].astype(np.float64)
    tol = case.tolerance(y) + 2 * np.spacing(np.abs(y).astype(np.float16)).astype(np.float64)
    _assert_within(ys, y, tol)
