"""Fork safety (README, Guarantees): after a parallel call in the parent,
cnorm's or torch's, a forked child's cnorm calls finish (single-threaded,
get_num_threads() == 1) with the parent's results.  libgomp's thread pool
does not survive fork, and without cnorm's fork handler the child's first
parallel region waits forever; every wait here has a timeout, so that a
regression fails instead of hanging the suite."""
import concurrent.futures
import hashlib
import multiprocessing
import os
import time

import numpy as np
import pytest

import cnorm

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

TIMEOUT = 60  # seconds; a healthy child takes well under one
SHAPE = (2048, 4096)  # 8 Mi elements: parallel whenever there are threads


def _x():
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


def _digest(y):
    return hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest()


def _job(_):
    """What each child runs: a large call, its digest and the thread count."""
    return _digest(cnorm.layer_norm(_x(), SHAPE[1])), cnorm.get_num_threads()


@pytest.fixture
def parallel_parent():
    """The parent has run a parallel cnorm call (OpenMP's pool exists)."""
    with_threads = cnorm.get_num_threads()
    want = _digest(cnorm.layer_norm(_x(), SHAPE[1]))
    yield want
    assert cnorm.get_num_threads() == with_threads, "the parent lost its threads"


def _fork_and_wait(child, timeout=TIMEOUT):
    """Run child() in a forked process; its return value is the exit code.
    Returns the exit code, or None if it had to be killed after timeout."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            code = child()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def test_os_fork_after_parallel_call(parallel_parent):
    def child():
        digest, threads = _job(0)
        return 0 if digest == parallel_parent and threads == 1 else 3

    code = _fork_and_wait(child)
    assert code is not None, "the forked child hung in its first cnorm call"
    assert code == 0, "the child's result or thread count was wrong"


def test_fork_pool(parallel_parent):
    with multiprocessing.get_context("fork").Pool(2) as pool:  # __exit__ terminates
        try:
            results = pool.map_async(_job, range(4)).get(timeout=TIMEOUT)
        except multiprocessing.TimeoutError:
            pytest.fail("the fork Pool's workers hung in their first cnorm call")
    assert results == [(parallel_parent, 1)] * 4


def test_fork_process_pool_executor(parallel_parent):
    ex = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    try:
        futures = [ex.submit(_job, i) for i in range(4)]
        results = [f.result(timeout=TIMEOUT) for f in futures]
    except concurrent.futures.TimeoutError:
        for p in list(getattr(ex, "_processes", {}).values()):  # hung workers: kill them
            p.kill()
        pytest.fail("the fork ProcessPoolExecutor's workers hung in their first cnorm call")
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
    assert results == [(parallel_parent, 1)] * 4


def test_fork_after_torch_openmp():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    t = torch.randn(4096, 4096)
    assert float((t * 2.0).sum()) == pytest.approx(float(t.sum()) * 2.0, rel=1e-3)  # torch's OpenMP ran
    want = _digest(cnorm.layer_norm(_x(), SHAPE[1]))

    def child():
        digest, threads = _job(0)
        return 0 if digest == want and threads == 1 else 3

    code = _fork_and_wait(child)
    assert code is not None, "after torch's OpenMP, the forked child hung in its first cnorm call"
    assert code == 0
