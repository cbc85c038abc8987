"""Threads, ISA selection, configuration and concurrent calls."""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import cnorm
import reference as ref
from conftest import assert_close, run_python


def test_set_and_get_num_threads(threads):
    cnorm.set_num_threads(1)
    assert cnorm.get_num_threads() == 1
    cnorm.set_num_threads(0)
    assert cnorm.get_num_threads() >= 1


def test_threadpoolctl_limits_cnorm(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert cnorm.get_num_threads() == 1


@pytest.mark.parametrize("n", ["1", "2"])
def test_omp_num_threads_is_honoured(n, tmp_path):
    out = run_python("import cnorm; print(cnorm.get_num_threads())", tmp_path, dict(os.environ, OMP_NUM_THREADS=n))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == n


def test_cnorm_isa_environment_variable(tmp_path):
    out = run_python("import cnorm; print(cnorm.get_isa())", tmp_path, dict(os.environ, CNORM_ISA="scalar"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "scalar"


def test_isa_selection_round_trips(isa):
    assert cnorm.get_isa() == isa
    assert isa in cnorm.available_isas()


def test_show_config(capsys):
    cnorm.show_config()
    text = capsys.readouterr().out
    for key in ("version", "isa", "isas_available", "openmp", "threads", "compiler"):
        assert key in text
    assert cnorm.get_isa() in text


LARGE = [  # big enough to open a parallel region and to split into blocks
    lambda x: cnorm.layer_norm(x.reshape(64, -1), 8192),
    lambda x: cnorm.batch_norm(x, training=True),
    lambda x: cnorm.batch_norm(x, training=True, axis=-1),
    lambda x: cnorm.instance_norm(x),
    lambda x: cnorm.group_norm(x, 4, axis=-1),
    lambda x: cnorm.moments(x, axis=(0, 1, 2))[1],
    lambda x: cnorm.layer_norm(x.reshape(1, -1), x.size),
]


@pytest.mark.parametrize("fn", LARGE)
def test_bitwise_identical_for_any_thread_count(isa, threads, rng, fn):
    x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32) + 3
    cnorm.set_num_threads(1)
    one = fn(x)
    cnorm.set_num_threads(2)
    two = fn(x)
    np.testing.assert_array_equal(one, two)


def test_concurrent_python_threads(rng):
    """Many Python threads call at once (the GIL is released in the kernel)."""
    xs = [rng.standard_normal((16, 32, 24, 24)).astype(np.float32) * (i + 1) for i in range(8)]
    want = [ref.group_norm(x, 8) for x in xs]

    def work(i):
        return [cnorm.group_norm(xs[i], 8) for _ in range(5)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for got, w in zip(results, want):
        for g in got:
            assert_close(g, w, np.float32)


SIMD_ISAS = [i for i in cnorm.available_isas() if i != "scalar"]


@pytest.mark.skipif(not SIMD_ISAS, reason="no SIMD path on this machine")
@pytest.mark.parametrize("simd", SIMD_ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", LARGE + [
    lambda x: cnorm.layer_norm(x[:, :3, :5, :7], 7, np.arange(7.0), np.ones(7)),  # odd sizes: scalar tails
    lambda x: cnorm.group_norm(x[:3, :, :3, :5], 16, np.arange(64.0), np.ones(64), axis=1),
    lambda x: cnorm.batch_norm(np.ascontiguousarray(x[:, :37, :3, :3].transpose(0, 2, 3, 1)), training=True, axis=-1),
    lambda x: cnorm.rms_norm(x, (32, 32)),
])
def test_simd_path_matches_scalar_path(rng, simd, dtype, fn):
    """Each SIMD path against the scalar path on the same input."""
    x = (rng.standard_normal((8, 64, 32, 32)) * 2 + 100).astype(dtype)
    before = cnorm.get_isa()
    try:
        cnorm.set_isa("scalar")
        want = fn(x)
        cnorm.set_isa(simd)
        got = fn(x)
    finally:
        cnorm.set_isa(before)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_output_buffers_are_reused_and_released():
    x = np.ones((512, 1024), np.float32)  # 2 MiB results: cached sizes
    cnorm.release_memory()
    y = cnorm.layer_norm(x, 1024)
    address = y.__array_interface__["data"][0]
    del y
    y2 = cnorm.layer_norm(x, 1024)
    assert y2.__array_interface__["data"][0] == address
    del y2
    assert cnorm.release_memory() >= x.nbytes
    assert cnorm.release_memory() == 0


FAST_CALLS = [
    lambda x, eps, ax: cnorm.batch_norm(x, np.zeros(x.shape[ax]), np.ones(x.shape[ax]), eps=eps, axis=ax),
    lambda x, eps, ax: cnorm.batch_norm(x, training=True, eps=eps, axis=ax, activation="relu"),
    lambda x, eps, ax: cnorm.instance_norm(x, eps=eps, axis=ax),
    lambda x, eps, ax: cnorm.group_norm(x, 1, eps=eps, axis=ax, activation="silu"),
    lambda x, eps, ax: cnorm.layer_norm(x, x.shape[-1], eps=eps),
    lambda x, eps, ax: cnorm.layer_norm(x, x.shape[-1], eps=eps, activation="gelu"),
    lambda x, eps, ax: cnorm.layer_norm(x, x.shape[-1], eps=eps, return_stats=True)[2],
    lambda x, eps, ax: cnorm.rms_norm(x, x.shape[-1], eps=eps),
    lambda x, eps, ax: cnorm.batch_norm(x, np.zeros(x.shape[ax]), np.ones(x.shape[ax]), eps=eps, axis=ax,
                                        activation="silu"),
]


@pytest.mark.parametrize("shape", [(3, 5, 7, 2), (2, 1, 6, 1), (4, 6), (2, 3, 1, 1), (5, 1)])
@pytest.mark.parametrize("axis", [1, -1])
@pytest.mark.parametrize("call", FAST_CALLS)
def test_fast_path_equals_general_path(rng, shape, axis, call):
    """The Cython fast paths pick the same kernels as the general path: a
    numpy-scalar eps (not a float) forces the general one."""
    x = rng.standard_normal(shape).astype(np.float32)
    if call is FAST_CALLS[2] and np.prod(shape) // (shape[0] * shape[axis]) < 2:
        for eps in (1e-5, np.float64(1e-5)):  # instance norm needs 2 spatial values
            with pytest.raises(ValueError, match="spatial"):
                call(x, eps, axis)
        return
    np.testing.assert_array_equal(call(x, 1e-5, axis), call(x, np.float64(1e-5), axis))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc/self/statm")
@pytest.mark.parametrize("threads", [1, 2])
def test_no_exit_when_threads_cannot_start(threads, tmp_path):
    """With the address space nearly exhausted (ulimit -v) libgomp cannot
    create a thread and ends the process (status 1); cnorm starts a team's
    threads itself first and runs on the calling thread instead (README,
    Guarantees), with the same result."""
    code = f"""
import resource, numpy as np, cnorm
x = np.random.default_rng(0).standard_normal((2048, 4096)).astype(np.float32)
cnorm.set_num_threads(1)
y, want = np.empty_like(x), cnorm.layer_norm(x, 4096)  # no OpenMP team yet
cnorm.set_num_threads({threads})
vm = int(open('/proc/self/statm').read().split()[0]) * 4096
resource.setrlimit(resource.RLIMIT_AS, (vm + (4 << 20), resource.RLIM_INFINITY))  # no room for a thread's stack
cnorm.layer_norm(x, 4096, out=y)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print('same' if np.array_equal(y, want) else 'differs')
"""
    out = run_python(code, tmp_path, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-500:]}"
    assert out.stdout.strip() == "same"
