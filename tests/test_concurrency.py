"""Many Python threads calling cnorm at once (the kernels release the GIL),
while other threads keep changing the thread count and the ISA.

Every result must match the float64 reference; with the thread count and
ISA held fixed, results computed concurrently must equal the serial ones
bit for bit.
"""
import concurrent.futures as cf
import random
import threading
import time

import numpy as np
import pytest

import cnorm
import reference as ref
from conftest import assert_close

WORKERS = 8
BIG = 1 << 16      # above the kernels' parallel threshold (2**15 elements)


pytestmark = pytest.mark.usefixtures("restore_config")


def _tasks(seed):
    """(name, dtype, call, reference call) for every function, with several
    shapes, dtypes and memory layouts.  Each call builds its own running
    stats, so concurrent calls share only read-only inputs."""
    rng = np.random.default_rng(seed)
    tasks = []

    def add(name, dt, fn, rfn):
        tasks.append((f"{name}[{np.dtype(dt).name}]", dt, fn, rfn))

    def per_case(dt, shape):  # a scope per case: the lambdas bind its values
        wdt = np.float32 if dt == np.float16 else dt
        x = (rng.standard_normal(shape) * 2 + 0.5).astype(dt)
        c = shape[1]
        xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))          # channels-last
        xs = x[:, :, ::2, ::-1]                                       # strided, reversed
        w = (rng.random(c) + 0.5).astype(wdt)
        b = rng.standard_normal(c).astype(wdt)
        rm = (rng.standard_normal(c) * 0.1).astype(wdt)
        rv = (rng.random(c) + 0.5).astype(wdt)
        last = shape[-1]
        wl = (rng.random(last) + 0.5).astype(wdt)
        bl = rng.standard_normal(last).astype(wdt)

        add("bn_eval", dt, lambda x=x, rm=rm, rv=rv, w=w, b=b: cnorm.batch_norm(x, rm, rv, w, b),
            lambda x=x, rm=rm, rv=rv, w=w, b=b: ref.batch_norm(x, rm, rv, w, b))
        add("bn_eval_nhwc_relu", dt,
            lambda x=xl, rm=rm, rv=rv: cnorm.batch_norm(x, rm, rv, axis=-1, activation="relu"),
            lambda x=xl, rm=rm, rv=rv: ref.batch_norm(x, rm, rv, axis=-1, activation="relu"))

        def bn_train(x=x, rm=rm, rv=rv, w=w, lib=cnorm):
            m, v = rm.copy(), rv.copy()
            y = lib.batch_norm(x, m, v, w, None, True, 0.3)
            return y, m, v

        add("bn_train", dt, bn_train, lambda f=bn_train: f(lib=ref))
        add("bn_batch_strided", dt, lambda x=xs: cnorm.batch_norm(x, training=True, activation="silu"),
            lambda x=xs: ref.batch_norm(x, training=True, activation="silu"))

        def in_run(x=x, rm=rm, rv=rv, b=b, lib=cnorm):
            m, v = rm.copy(), rv.copy()
            return lib.instance_norm(x, m, v, None, b), m, v

        add("in_running", dt, in_run, lambda f=in_run: f(lib=ref))
        add("in_nhwc", dt, lambda x=xl, w=w: cnorm.instance_norm(x, None, None, w, axis=-1),
            lambda x=xl, w=w: ref.instance_norm(x, None, None, w, axis=-1))
        add("gn", dt, lambda x=x, w=w, b=b: cnorm.group_norm(x, 4, w, b, activation="gelu"),
            lambda x=x, w=w, b=b: ref.group_norm(x, 4, w, b, activation="gelu"))
        add("gn_nhwc", dt, lambda x=xl: cnorm.group_norm(x, 2, axis=3),
            lambda x=xl: ref.group_norm(x, 2, axis=3))
        add("gn_strided", dt, lambda x=xs: cnorm.group_norm(x, c), lambda x=xs: ref.group_norm(x, c))
        add("ln", dt, lambda x=x, w=wl, b=bl: cnorm.layer_norm(x, last, w, b),
            lambda x=x, w=wl, b=bl: ref.layer_norm(x, last, w, b))
        add("ln_stats_2d", dt, lambda x=x: cnorm.layer_norm(x, shape[-2:], return_stats=True),
            lambda x=x: ref.layer_norm(x, shape[-2:], return_stats=True))
        add("ln_strided_silu", dt, lambda x=xs: cnorm.layer_norm(x, x.shape[-1], activation="silu"),
            lambda x=xs: ref.layer_norm(x, x.shape[-1], activation="silu"))

        def ln_out(x=x, wl=wl):
            out = np.empty_like(x)
            y = cnorm.layer_norm(x, last, wl, out=out)
            assert y is out
            return y

        add("ln_out", dt, ln_out, lambda x=x, wl=wl: ref.layer_norm(x, last, wl))

        def ln_inplace(x=x):
            y = x.copy()
            cnorm.layer_norm(y, last, eps=1e-3, out=y)
            return y

        add("ln_inplace", dt, ln_inplace, lambda x=x: ref.layer_norm(x, last, eps=1e-3))
        add("rms", dt, lambda x=x, w=wl: cnorm.rms_norm(x, last, w, 1e-6),
            lambda x=x, w=wl: ref.rms_norm(x, last, w, 1e-6))
        add("rms_T", dt, lambda x=x: cnorm.rms_norm(x.T, (shape[1], shape[0]), eps=1e-6),
            lambda x=x: ref.rms_norm(x.T, (shape[1], shape[0]), eps=1e-6))
        add("moments_all", dt, lambda x=x: cnorm.moments(x), lambda x=x: ref.moments(x))
        add("moments_c", dt, lambda x=x: cnorm.moments(x, axis=(0, 2, 3), ddof=1),
            lambda x=x: ref.moments(x, axis=(0, 2, 3), ddof=1))
        add("moments_col", dt, lambda x=xl: cnorm.moments(x.reshape(-1, c), axis=0),
            lambda x=xl: ref.moments(x.reshape(-1, c), axis=0))
        add("moments_mixed", dt, lambda x=x: cnorm.moments(x, axis=(1, 3), keepdims=True),
            lambda x=x: ref.moments(x, axis=(1, 3), keepdims=True))


    for dt in (np.float32, np.float64, np.float16):
        for shape in ((3, 8, 9, 7), (8, 16, 32, 17)):     # small; above the parallel threshold
            per_case(dt, shape)

    cw = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    p = [rng.random(16).astype(np.float32) + 0.5 for _ in range(5)]
    add("fold", np.float32, lambda: cnorm.fold_batch_norm(cw, p[0], p[1], p[2], p[3], p[4]),
        lambda: ref.fold_batch_norm(cw, p[0], p[1], p[2], p[3], p[4]))
    return tasks


def _check(name, dt, got, want):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want), name
    for g, w in zip(got, want):
        # running stats are kept in the weight dtype (float32 for float16 input)
        try:
            assert_close(g, w, dt)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None


def _bits(result):
    result = result if isinstance(result, tuple) else (result,)
    return tuple((np.asarray(a).dtype.str, np.asarray(a).shape, np.asarray(a).tobytes()) for a in result)


TASKS = _tasks(7)
EXPECTED = None


def _expected():
    global EXPECTED
    if EXPECTED is None:
        EXPECTED = [rfn() for _, _, _, rfn in TASKS]
    return EXPECTED


def _chaos(stop, seed, isas):
    r = random.Random(seed)
    changes = 0
    while not stop.is_set():
        if r.random() < 0.5:
            cnorm.set_num_threads(r.choice((1, 2, 0)))
        else:
            cnorm.set_isa(r.choice(isas))
        changes += 1
        time.sleep(r.random() * 1e-3)
    return changes


def test_concurrent_calls_match_reference_while_config_changes():
    expected = _expected()
    isas = cnorm.available_isas()
    stop = threading.Event()
    order = list(range(len(TASKS))) * 10
    random.Random(1).shuffle(order)

    def work(i):
        name, dt, fn, _ = TASKS[i]
        got = fn()
        _check(name, dt, got, expected[i])
        return name

    with cf.ThreadPoolExecutor(2) as chaos_pool:
        chaos = [chaos_pool.submit(_chaos, stop, s, isas) for s in range(2)]
        try:
            with cf.ThreadPoolExecutor(WORKERS) as pool:
                done = list(pool.map(work, order))   # re-raises the first failure
        finally:
            stop.set()
        changes = sum(f.result() for f in chaos)
    assert len(done) == len(order)
    assert changes > 10, "the configuration threads hardly ran"


def test_concurrent_config_setters_alone():
    """set_num_threads/set_isa/get_* from many threads at once: never an
    error, and the final state is a valid one."""
    isas = cnorm.available_isas()

    def hammer(seed):
        r = random.Random(seed)
        for _ in range(2000):
            cnorm.set_num_threads(r.choice((0, 1, 2, 3)))
            cnorm.set_isa(r.choice(isas))
            assert cnorm.get_isa() in isas
            assert cnorm.get_num_threads() >= 1
        return True

    with cf.ThreadPoolExecutor(WORKERS) as pool:
        assert all(pool.map(hammer, range(WORKERS)))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa_name", ["best", "scalar"])
def test_concurrent_equals_serial_bitwise(threads, isa_name):
    isa_name = cnorm.available_isas()[-1] if isa_name == "best" else isa_name
    cnorm.set_isa(isa_name)
    cnorm.set_num_threads(threads)
    serial = [_bits(fn()) for _, _, fn, _ in TASKS]
    order = list(range(len(TASKS))) * 4
    random.Random(threads).shuffle(order)

    def work(i):
        return i, _bits(TASKS[i][2]())

    with cf.ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(work, order))
    assert cnorm.get_isa() == isa_name
    mismatched = sorted({TASKS[i][0] for i, bits in results if bits != serial[i]})
    assert not mismatched, f"concurrent results differ bitwise from serial ones ({isa_name}, {threads} threads): {mismatched}"


def test_large_results_from_many_threads_do_not_alias():
    """Large results come from the shared output-buffer cache; concurrent
    calls must each get their own buffer (a shared one would mix results)."""
    rng = np.random.default_rng(5)
    xs = [(rng.standard_normal((4, 1 << 16)) + k).astype(np.float32) for k in range(WORKERS)]   # 1 MiB each
    want = [ref.layer_norm(x, x.shape[-1]) for x in xs]

    def work(k):
        ys = []
        for _ in range(30):
            ys.append(cnorm.layer_norm(xs[k], xs[k].shape[-1]))
            if len(ys) > 2:
                ys.pop(0)          # free a large result back into the cache
            for y in ys:
                assert_close(y, want[k], np.float32)
        return k

    cnorm.release_memory()
    with cf.ThreadPoolExecutor(WORKERS) as pool:
        assert sorted(pool.map(work, range(WORKERS))) == list(range(WORKERS))
    cnorm.release_memory()
