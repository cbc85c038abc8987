"""Repeated calls must not leak: Python-level allocations (tracemalloc),
process memory (RSS), and references held by the Cython layer.

Every public function is called many times, on its fast path and its
general path, with out= and in place, and on its error paths (bad shapes,
bad eps, bad out=, an invalid activation), since a leak on a raise is the
classic refcount bug of hand-written extension code.
"""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import cnorm
import cnorm.nn as cnn

PAGE = os.sysconf("SC_PAGE_SIZE")
KIB, MIB = 1 << 10, 1 << 20


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _settle():
    gc.collect()
    cnorm.release_memory()


# --------------------------------------------------------------- the calls

def _small_calls():
    """(name, callable) pairs covering every public function and its error
    paths on small arrays; each callable is self-contained and repeatable."""
    rng = np.random.default_rng(0)
    calls = []

    def ok(name, fn):
        calls.append((name, fn))

    def err(name, exc, fn):
        def call():
            try:
                fn()
            except exc:
                return
            raise AssertionError(f"{name}: expected {exc.__name__}")
        calls.append(("err:" + name, call))

    def per_dtype(dt):  # a scope per dtype: the lambdas bind this dtype's arrays
        x4 = rng.standard_normal((4, 6, 5, 3)).astype(dt)
        x4nhwc = np.ascontiguousarray(x4.transpose(0, 2, 3, 1))
        x2 = rng.standard_normal((7, 33)).astype(dt)
        wdt = np.float32 if dt == np.float16 else dt
        w6, b6 = rng.standard_normal(6).astype(wdt), rng.standard_normal(6).astype(wdt)
        w33, b33 = rng.standard_normal(33).astype(wdt), rng.standard_normal(33).astype(wdt)
        rm, rv = np.zeros(6, wdt), np.ones(6, wdt)
        out4, out2 = np.empty_like(x4), np.empty_like(x2)
        tag = np.dtype(dt).name
        y4c = x4.copy()
        y2c = x2.copy()

        ok(f"bn_eval_{tag}", lambda x=x4, rm=rm, rv=rv, w=w6, b=b6: cnorm.batch_norm(x, rm, rv, w, b))
        ok(f"bn_eval_relu_{tag}",
           lambda x=x4, rm=rm, rv=rv, w=w6, b=b6: cnorm.batch_norm(x, rm, rv, w, b, activation="relu"))
        ok(f"bn_train_{tag}", lambda x=x4, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, training=True))
        ok(f"bn_batch_{tag}", lambda x=x4: cnorm.batch_norm(x, training=True, activation="gelu"))
        ok(f"bn_nhwc_{tag}", lambda x=x4nhwc, w=w6: cnorm.batch_norm(x, None, None, w, training=True, axis=-1))
        ok(f"bn_out_{tag}", lambda x=x4, rm=rm, rv=rv, o=out4: cnorm.batch_norm(x, rm, rv, out=o))
        ok(f"bn_inplace_{tag}",
           lambda y=y4c, rm=rm, rv=rv: cnorm.batch_norm(y, rm, np.abs(rv) + 1, eps=1.0, out=y))
        ok(f"in_{tag}", lambda x=x4, w=w6, b=b6: cnorm.instance_norm(x, None, None, w, b, activation="silu"))
        ok(f"in_running_{tag}", lambda x=x4, rm=rm, rv=rv: cnorm.instance_norm(x, rm, rv))
        ok(f"in_eval_{tag}",
           lambda x=x4, rm=rm, rv=rv: cnorm.instance_norm(x, rm, rv, use_input_stats=False))
        ok(f"gn_{tag}", lambda x=x4, w=w6, b=b6: cnorm.group_norm(x, 3, w, b))
        ok(f"gn_nhwc_{tag}", lambda x=x4nhwc: cnorm.group_norm(x, 2, axis=-1, activation="relu"))
        ok(f"gn_out_{tag}", lambda x=x4, o=out4: cnorm.group_norm(x, 6, out=o))
        ok(f"ln_{tag}", lambda x=x2, w=w33, b=b33: cnorm.layer_norm(x, 33, w, b))
        ok(f"ln_stats_{tag}", lambda x=x2: cnorm.layer_norm(x, (33,), return_stats=True, activation="silu"))
        ok(f"ln_out_{tag}", lambda x=x2, o=out2: cnorm.layer_norm(x, 33, out=o))
        ok(f"ln_inplace_{tag}", lambda y=y2c: cnorm.layer_norm(y, 33, eps=1.0, out=y))
        ok(f"ln_strided_{tag}", lambda x=x4: cnorm.layer_norm(x[:, ::2], (5, 3)))
        ok(f"rms_{tag}", lambda x=x2, w=w33: cnorm.rms_norm(x, 33, w))
        ok(f"rms_out_{tag}", lambda x=x2, o=out2: cnorm.rms_norm(x, 33, eps=1e-6, out=o))
        ok(f"moments_{tag}", lambda x=x4: cnorm.moments(x))
        ok(f"moments_axes_{tag}", lambda x=x4: cnorm.moments(x, axis=(0, 2), ddof=1, keepdims=True))
        ok(f"moments_T_{tag}", lambda x=x4: cnorm.moments(x.T, axis=-1))

        # error paths, on both the Cython fast path's inputs and the general path's
        err(f"bn_bad_eps_{tag}", ValueError, lambda x=x4, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, eps=-1.0))
        err(f"bn_nan_eps_{tag}", ValueError, lambda x=x4: cnorm.batch_norm(x, training=True, eps=float("nan")))
        err(f"bn_bad_w_{tag}", ValueError, lambda x=x4, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, np.ones(5, wdt)))
        err(f"bn_no_stats_{tag}", ValueError, lambda x=x4: cnorm.batch_norm(x))
        err(f"bn_bad_act_{tag}", ValueError,
            lambda x=x4, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, activation="tanh"))
        err(f"bn_bad_out_shape_{tag}", ValueError,
            lambda x=x4, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, out=np.empty((4, 6, 5), dt)))
        err(f"bn_bad_out_dtype_{tag}", TypeError,
            lambda x=x4, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, out=np.empty(x.shape, np.int32)))
        err(f"bn_bad_out_type_{tag}", TypeError,
            lambda x=x4, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, out=[0.0]))
        err(f"bn_bad_momentum_{tag}", ValueError,
            lambda x=x4, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, training=True, momentum=2.0))
        err(f"in_bad_axis_{tag}", ValueError, lambda x=x4: cnorm.instance_norm(x, axis=7))
        err(f"gn_bad_groups_{tag}", ValueError, lambda x=x4: cnorm.group_norm(x, 4))
        err(f"gn_bad_eps_type_{tag}", TypeError, lambda x=x4: cnorm.group_norm(x, 3, eps="1e-5"))
        err(f"gn_bad_act_{tag}", ValueError, lambda x=x4: cnorm.group_norm(x, 3, activation="swish"))
        err(f"ln_bad_shape_{tag}", ValueError, lambda x=x2: cnorm.layer_norm(x, 32))
        err(f"ln_bad_w_{tag}", ValueError, lambda x=x2: cnorm.layer_norm(x, 33, np.ones(32, wdt)))
        err(f"ln_bad_eps_{tag}", ValueError, lambda x=x2: cnorm.layer_norm(x, 33, eps=-0.5))
        err(f"ln_bad_act_{tag}", ValueError, lambda x=x2: cnorm.layer_norm(x, 33, activation="tanh"))
        err(f"ln_readonly_out_{tag}", ValueError,
            lambda x=x2: cnorm.layer_norm(x, 33, out=np.broadcast_to(np.empty(33, dt), x.shape)))
        err(f"ln_bad_out_{tag}", ValueError, lambda x=x2: cnorm.layer_norm(x, 33, out=np.empty((7, 34), dt)))
        err(f"rms_bad_shape_{tag}", ValueError, lambda x=x2: cnorm.rms_norm(x, (7, 32)))
        err(f"rms_bad_eps_{tag}", ValueError, lambda x=x2: cnorm.rms_norm(x, 33, eps=float("inf")))
        err(f"moments_bad_axis_{tag}", ValueError, lambda x=x4: cnorm.moments(x, axis=(0, 0)))
        err(f"moments_bad_ddof_{tag}", TypeError, lambda x=x4: cnorm.moments(x, ddof="1"))

    for dt in (np.float32, np.float64, np.float16):
        per_dtype(dt)

    err("complex_input", TypeError, lambda: cnorm.layer_norm(np.ones((2, 3), np.complex64), 3))
    err("object_input", TypeError, lambda: cnorm.moments(np.array([object()] * 3)))
    ok("int_input", lambda: cnorm.layer_norm(np.arange(12).reshape(3, 4), 4))
    ok("list_input", lambda: cnorm.group_norm([[1.0, 2.0], [3.0, 5.0]], 1))

    cw = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    ok("fold", lambda: cnorm.fold_batch_norm(cw, np.ones(6), np.zeros(6), np.ones(6), np.ones(6), None))
    err("fold_bad", ValueError, lambda: cnorm.fold_batch_norm(cw, None, np.zeros(5), np.ones(6), None, None))
    err("fold_bad_eps", ValueError, lambda: cnorm.fold_batch_norm(cw, None, np.zeros(6), np.ones(6), None, None,
                                                                  eps=-1.0))

    isas = cnorm.available_isas()
    ok("config", lambda: (cnorm.get_num_threads(), cnorm.set_num_threads(cnorm.get_num_threads()),
                          cnorm.set_isa(cnorm.get_isa()), cnorm.available_isas()))
    err("bad_isa", ValueError, lambda: cnorm.set_isa("sse9"))
    err("bad_threads", ValueError, lambda: cnorm.set_num_threads(-1))
    err("bad_threads_type", TypeError, lambda: cnorm.set_num_threads("2"))
    assert isas

    # torch-style modules
    bn, ln = cnn.BatchNorm2d(6), cnn.LayerNorm(33)
    gn, rmsn, inn = cnn.GroupNorm(3, 6), cnn.RMSNorm(33), cnn.InstanceNorm2d(6, affine=True,
                                                                            track_running_stats=True)
    x4 = rng.standard_normal((4, 6, 5, 3)).astype(np.float32)
    x2 = rng.standard_normal((7, 33)).astype(np.float32)
    ok("nn_bn", lambda: bn(x4))
    ok("nn_ln", lambda: ln(x2))
    ok("nn_gn", lambda: gn(x4))
    ok("nn_rms", lambda: rmsn(x2))
    ok("nn_in", lambda: inn(x4))
    err("nn_ln_bad", ValueError, lambda: ln(x4))
    return calls


SMALL_CALLS = _small_calls()


pytestmark = pytest.mark.usefixtures("restore_config")


def test_every_call_is_exercised():
    names = {name for name, _ in SMALL_CALLS}
    for fn in ("bn", "in", "gn", "ln", "rms", "moments", "fold", "nn_"):
        assert any(n.startswith(fn) for n in names)
    assert sum(n.startswith("err:") for n in names) >= 40


# ------------------------------------------------------------ tracemalloc

def _traced_growth(calls, reps, warmup):
    for _ in range(warmup):
        for _, fn in calls:
            fn()
    gc.collect()
    tracemalloc.start()
    try:
        # a few passes under tracing first: tracemalloc's own tables and
        # lazily built caches (exception objects, dtype lookups) settle
        for _ in range(5):
            for _, fn in calls:
                fn()
        gc.collect()
        before = tracemalloc.take_snapshot()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(reps):
            for _, fn in calls:
                fn()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return grown, after.compare_to(before, "lineno")[:5]


@pytest.mark.parametrize("kind", ["ok", "err"])
def test_tracemalloc_no_growth(kind):
    calls = [(n, f) for n, f in SMALL_CALLS if n.startswith("err:") == (kind == "err")]
    grown, top = _traced_growth(calls, reps=40, warmup=3)
    # ~25 * len(calls) (several thousand) calls; a leak of one small object
    # per call would be > 64 KiB
    assert 40 * len(calls) >= 2000
    assert grown < 64 * KIB, f"{grown} bytes grew over {40 * len(calls)} calls; top: {top}"


def _keeps_growing(fn):
    """Whether repeated calls of `fn` leak.  Screen: 200 calls after 10
    warm-up calls must grow traced memory by < 2 KiB (~10 bytes/call).
    A call over that is confirmed over 2000 more calls, because the
    interpreter's own caches (type/attribute caches, free lists, dict
    resizes) add a few KiB now and then, sub-linearly (seen: +0..12 KiB per
    2000 calls of an error path, ~100 pymalloc blocks per 100k calls).
    A leak is linear: any leaked Python object is >= 1 block and >= 16
    bytes per call, i.e. >= 2000 blocks or >= 32 KiB over 2000 calls."""
    def growth(reps):
        gc.collect()
        base, blocks = tracemalloc.get_traced_memory()[0], sys.getallocatedblocks()
        for _ in range(reps):
            fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - base, sys.getallocatedblocks() - blocks

    for _ in range(10):
        fn()
    first, _ = growth(200)
    if first < 2 * KIB:
        return None
    nbytes, nblocks = growth(2000)
    if nbytes >= 32 * KIB or nblocks >= 1000:
        return (first, nbytes, nblocks)
    return None


def test_tracemalloc_each_call_individually():
    """A leak of a few bytes per call in one function would hide in the sum
    above; screen and confirm each call alone (see _keeps_growing)."""
    bad = []
    # the objects alive before the test (torch's, when an earlier test
    # imported it) move to the permanent generation: the hundreds of
    # gc.collect() calls below then scan only what the calls make
    gc.collect()
    gc.freeze()
    tracemalloc.start()
    try:
        for name, fn in SMALL_CALLS:
            found = _keeps_growing(fn)
            if found:
                bad.append((name, *found))
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    assert not bad, ("calls whose memory kept growing (name, +bytes/200 calls, +bytes/2000 calls, "
                     f"+blocks/2000 calls): {bad}")


@pytest.mark.parametrize("size", [0, 16, 4096])
def test_leak_detector_can_fail(size):
    """_keeps_growing must flag a real leak, however small the object:
    one kept str of `size` chars (or one empty tuple-sized object) per call."""
    kept = []

    def leaky():
        try:
            cnorm.layer_norm(np.ones((2, 3), np.float32), 4)
        except ValueError as e:
            kept.append(str(e)[:size] + "!" if size else object())

    tracemalloc.start()
    try:
        assert _keeps_growing(leaky)
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------- RSS

def _large_calls():
    rng = np.random.default_rng(1)
    calls = []
    for dt, shape in ((np.float32, (8, 64, 32, 32)), (np.float64, (4, 32, 32, 32)), (np.float16, (4, 64, 64, 32))):
        x = rng.standard_normal(shape).astype(dt)   # 2-4 MiB each (1-8 MiB range)
        c = shape[1]
        wdt = np.float32 if dt == np.float16 else dt
        rm, rv = np.zeros(c, wdt), np.ones(c, wdt)
        out = np.empty_like(x)
        xn = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        calls += [
            lambda x=x, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv),
            lambda x=x, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, training=True, activation="silu"),
            lambda x=xn: cnorm.batch_norm(x, None, None, training=True, axis=-1),
            lambda x=x: cnorm.instance_norm(x),
            lambda x=x: cnorm.group_norm(x, 8, activation="gelu"),
            lambda x=x, o=out: cnorm.group_norm(x, 4, out=o),
            lambda x=x: cnorm.layer_norm(x, x.shape[-1]),
            lambda x=x: cnorm.layer_norm(x, x.shape[-2:], return_stats=True),
            lambda x=x: cnorm.layer_norm(x[:, ::2], x.shape[-1]),      # strided: copies
            lambda x=x, o=out: cnorm.layer_norm(x, x.shape[-1], out=o),
            lambda x=x: cnorm.rms_norm(x, x.shape[-1]),
            lambda x=x: cnorm.moments(x, axis=(0, 2, 3)),
            lambda x=x: cnorm.moments(x.transpose(1, 0, 2, 3), axis=(0, 2)),   # transposed copy
            lambda x=x: cnorm.rms_norm(x.astype(np.float64), x.shape[-1]),
        ]
        big_out = out

        def failing(x=x, o=big_out):
            for bad in (lambda: cnorm.layer_norm(x, x.shape[-1] + 1),
                        lambda: cnorm.group_norm(x, 7),
                        lambda: cnorm.layer_norm(x[:, ::2], x.shape[-1], out=o),   # out shape mismatch
                        lambda: cnorm.batch_norm(x, None, None, training=True, activation="tanh"),
                        lambda: cnorm.instance_norm(x, eps=-1.0)):
                try:
                    bad()
                except (ValueError, TypeError):
                    pass
                else:
                    raise AssertionError("expected an error")
        calls.append(failing)
    return calls


def test_rss_bounded_on_large_arrays():
    calls = _large_calls()
    for _ in range(3):
        for fn in calls:
            fn()
    _settle()
    base = _rss()
    processed = 0
    reps = 10
    for _ in range(reps):
        for fn in calls:
            r = fn()
            for a in (r if isinstance(r, tuple) else (r,)):
                processed += a.nbytes if isinstance(a, np.ndarray) else 0
            del r
    _settle()
    grown = _rss() - base
    assert processed > 256 * MIB
    assert grown < 16 * MIB, f"RSS grew by {grown / MIB:.1f} MiB over {processed / MIB:.0f} MiB of results"


def test_release_memory_frees_cache():
    x = np.ones((4, 1 << 18), np.float32)   # 4 MiB result: cached
    cnorm.release_memory()
    for _ in range(6):
        y = cnorm.layer_norm(x, x.shape[-1])
        del y
    held = cnorm.release_memory()
    assert 0 < held <= 4 * (x.nbytes + (1 << 20))
    assert cnorm.release_memory() == 0


def test_outbuf_cache_is_bounded():
    """Results kept alive and freed together: at most 4 buffers stay cached."""
    cnorm.release_memory()
    xs = [np.ones((2, (1 << 18) + 1024 * i), np.float32) for i in range(10)]
    ys = [cnorm.layer_norm(x, x.shape[-1]) for x in xs]
    del ys
    held = cnorm.release_memory()
    assert held <= 4 * max(x.nbytes for x in xs) + 4 * 64


# -------------------------------------------------------------- refcounts

def _refcount_cases():
    rng = np.random.default_rng(2)
    cases = []
    for dt in (np.float32, np.float64, np.float16):
        wdt = np.float32 if dt == np.float16 else dt
        a = dict(
            x=rng.standard_normal((4, 6, 5, 3)).astype(dt),
            x2=rng.standard_normal((7, 33)).astype(dt),
            w=np.ones(6, wdt), b=np.zeros(6, wdt), rm=np.zeros(6, wdt), rv=np.ones(6, wdt),
            w33=np.ones(33, wdt), b33=np.zeros(33, wdt),
            rm16=np.zeros(6, np.float16), rv16=np.ones(6, np.float16),   # converted in Cython
            out=np.empty((4, 6, 5, 3), dt), out2=np.empty((7, 33), dt),
            badout=np.empty((4, 6, 5), dt), eps=float(np.float64(1e-3)), mom=float(np.float64(0.25)),
            act="relu", badact="tanh", ns=(33,), cw=rng.standard_normal((6, 3, 2)).astype(dt),
        )
        a["xin"] = a["x"].copy()
        a["x2in"] = a["x2"].copy()
        cases.append((np.dtype(dt).name, a))
    return cases


def _refcount_calls(a):
    c = cnorm
    good = [
        lambda: c.batch_norm(a["x"], a["rm"], a["rv"], a["w"], a["b"], False, a["mom"], a["eps"],
                             activation=a["act"]),
        lambda: c.batch_norm(a["x"], a["rm16"], a["rv16"], a["w"], a["b"], eps=a["eps"]),
        lambda: c.batch_norm(a["x"], a["rm"], a["rv"], a["w"], a["b"], True, a["mom"], a["eps"]),
        lambda: c.batch_norm(a["x"], None, None, a["w"], a["b"], True, a["mom"], a["eps"], out=a["out"]),
        lambda: c.batch_norm(a["xin"], a["rm"], a["rv"], a["w"], a["b"], eps=a["eps"], out=a["xin"]),
        lambda: c.instance_norm(a["x"], a["rm"], a["rv"], a["w"], a["b"], True, a["mom"], a["eps"]),
        lambda: c.instance_norm(a["x"], None, None, a["w"], a["b"], eps=a["eps"], out=a["out"],
                                activation=a["act"]),
        lambda: c.group_norm(a["x"], 3, a["w"], a["b"], a["eps"], out=a["out"]),
        lambda: c.group_norm(a["xin"], 2, a["w"], a["b"], a["eps"], out=a["xin"]),
        lambda: c.layer_norm(a["x2"], 33, a["w33"], a["b33"], a["eps"]),
        lambda: c.layer_norm(a["x2"], a["ns"], a["w33"], a["b33"], a["eps"], out=a["out2"]),
        lambda: c.layer_norm(a["x2in"], 33, a["w33"], a["b33"], a["eps"], out=a["x2in"]),
        lambda: c.layer_norm(a["x2"], 33, a["w33"], a["b33"], a["eps"], return_stats=True,
                             activation=a["act"]),
        lambda: c.rms_norm(a["x2"], a["ns"], a["w33"], a["eps"], out=a["out2"]),
        lambda: c.moments(a["x"], axis=(0, 2)),
        lambda: c.fold_batch_norm(a["cw"], a["b"], a["rm"], a["rv"], a["w"], a["b"], a["eps"]),
    ]
    bad = [
        lambda: c.batch_norm(a["x"], a["rm"], a["rv"], a["w"], a["b"], eps=a["eps"], out=a["badout"]),
        lambda: c.batch_norm(a["x"], a["rm"], a["rv"], a["w33"], a["b"], eps=a["eps"]),
        lambda: c.batch_norm(a["x"], a["rm"], a["rv"], a["w"], a["b"], eps=a["eps"], activation=a["badact"]),
        lambda: c.batch_norm(a["x"], a["rm"], a["rv"], a["w"], a["b"], eps=-a["eps"], out=a["out"]),
        lambda: c.batch_norm(a["x"], a["rm"], a["rv"], a["w"], a["b"], True, 2.0, a["eps"], out=a["out"]),
        lambda: c.instance_norm(a["x"], a["rm"], None, a["w"], a["b"], eps=a["eps"], out=a["out"]),
        lambda: c.group_norm(a["x"], 4, a["w"], a["b"], a["eps"], out=a["out"]),
        lambda: c.group_norm(a["x"], 3, a["w"], a["b"], a["eps"], out=a["badout"], activation=a["act"]),
        lambda: c.layer_norm(a["x2"], 32, a["w33"], a["b33"], a["eps"], out=a["out2"]),
        lambda: c.layer_norm(a["x2"], 33, a["w33"], a["b33"], a["eps"], out=a["badout"]),
        lambda: c.layer_norm(a["x2"], 33, a["w33"], a["b33"], a["eps"], activation=a["badact"]),
        lambda: c.rms_norm(a["x2"], a["ns"], a["w"], a["eps"], out=a["out2"]),
        lambda: c.moments(a["x"], axis=(0, 0)),
        lambda: c.fold_batch_norm(a["cw"], a["b"], a["rm"], a["w33"], a["w"], a["b"], a["eps"]),
    ]
    return good, bad


@pytest.mark.parametrize("dtname,args", _refcount_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_refcounts_unchanged(dtname, args):
    good, bad = _refcount_calls(args)
    for fn in good:
        fn()
    for fn in bad:
        with pytest.raises((ValueError, TypeError)):
            fn()
    gc.collect()
    before = {k: sys.getrefcount(v) for k, v in args.items()}
    for _ in range(150):
        for fn in good:
            r = fn()
            del r
        for fn in bad:
            try:
                fn()
            except (ValueError, TypeError):
                pass
    gc.collect()
    after = {k: sys.getrefcount(v) for k, v in args.items()}
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"refcounts changed (before, after): {changed}"


def test_results_are_not_kept_alive():
    """A returned array has exactly the references its caller holds, and
    out= returns out itself without an extra reference."""
    x = np.random.default_rng(3).standard_normal((4, 6, 5, 3)).astype(np.float32)
    rm, rv = np.zeros(6, np.float32), np.ones(6, np.float32)
    out = np.empty_like(x)
    fresh = [
        lambda: cnorm.batch_norm(x, rm, rv),                      # Cython fast path
        lambda: cnorm.batch_norm(x.astype(np.float16), rm, rv),   # general path
        lambda: cnorm.group_norm(x, 3),
        lambda: cnorm.instance_norm(x),
        lambda: cnorm.layer_norm(x, 3),
        lambda: cnorm.layer_norm(x, (5, 3), activation="gelu"),
        lambda: cnorm.rms_norm(x, 3),
    ]
    for fn in fresh:
        y = fn()
        # counted outside `assert`: pytest's rewriting keeps temporaries
        rc = sys.getrefcount(y)           # y and getrefcount's argument
        assert rc == 2
        if y.base is not None:            # a reshaped view: its base is ours alone too
            rc = sys.getrefcount(y.base)  # y's base slot and the argument
            assert rc == 2
    base = sys.getrefcount(out)
    for _ in range(200):
        y = cnorm.group_norm(x, 3, out=out)
        assert y is out
        y = cnorm.layer_norm(x, 3, out=out)
        assert y is out
        y = cnorm.batch_norm(x, rm, rv, out=out)
        assert y is out
        del y
    assert sys.getrefcount(out) == base


def test_no_ndarray_objects_accumulate():
    """Count ndarrays gc can see (the containers holding them) before and after."""
    def count():
        gc.collect()
        # type(), not isinstance(): isinstance reads __class__, which lazy
        # modules (torch.distributed) answer with a deprecation warning
        return sum(1 for o in gc.get_objects() if issubclass(type(o), np.ndarray))

    calls = [f for _, f in SMALL_CALLS]
    for fn in calls:
        fn()
    before = count()
    for _ in range(10):
        for fn in calls:
            fn()
    assert count() - before <= 2
