"""threadpoolctl sees cnorm's OpenMP runtime and can limit it.

cnorm never changes OpenMP's thread limit (the nthreads ICV) itself; it reads
it on every call, so ``threadpoolctl.threadpool_limits(n, user_api="openmp")``
caps cnorm like any other OpenMP user.  The runtime cnorm uses is identified
by address, not by name: the library that defines the ``omp_get_max_threads``
that cnorm/_core*.so resolves (dlsym on the extension's handle, then dladdr)
must be one of threadpoolctl's "openmp" entries.  In a wheel repaired by
auditwheel that is cnorm_cpu.libs/libgomp-<hash>.so.1; in a local build, the
compiler's libgomp.

Skipped when threadpoolctl is missing or cnorm was built without OpenMP.
"""
import ctypes
import os
import sys

import numpy as np
import pytest

import cnorm
import reference as ref
from cnorm import _core
from conftest import assert_close

threadpoolctl = pytest.importorskip("threadpoolctl")

pytestmark = pytest.mark.skipif(not _core.has_openmp(), reason="cnorm was built without OpenMP")

# big enough for a parallel region (calls under 32 Ki elements stay on the
# calling thread), with rows far from zero so that a wrong result shows
SHAPE = (64, 8192)


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def _dladdr():
    """The C library's dladdr, or None (Windows, or not found)."""
    if sys.platform == "win32":
        return None
    for name in (None, "libdl.so.2"):  # glibc < 2.34 keeps dladdr in libdl
        try:
            fn = ctypes.CDLL(name).dladdr
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        fn.restype = ctypes.c_int
        return fn
    return None


def cnorm_openmp_library():
    """Real path of the shared library that provides cnorm._core's OpenMP
    runtime, or None if it cannot be told (no dladdr, or OpenMP linked
    into the extension itself)."""
    dladdr = _dladdr()
    if dladdr is None:
        return None
    core = ctypes.CDLL(_core.__file__)  # already loaded: the same handle
    try:
        # dlsym on the extension's handle searches it and then its
        # dependencies, as the dynamic linker bound its calls
        fn = core.omp_get_max_threads
    except AttributeError:
        return None
    info = _DlInfo()
    if not dladdr(ctypes.cast(fn, ctypes.c_void_p), ctypes.byref(info)) or not info.dli_fname:
        return None
    path = os.path.realpath(os.fsdecode(info.dli_fname))
    if path == os.path.realpath(_core.__file__):
        return None
    return path


def openmp_entries():
    return [m for m in threadpoolctl.threadpool_info() if m["internal_api"] == "openmp"]


def cnorm_entry():
    """threadpoolctl's entry for cnorm's OpenMP runtime.

    By file when it can be told; otherwise (no dladdr) the one "openmp"
    entry, or failing that the one whose thread count is cnorm's."""
    entries = openmp_entries()
    assert entries, "threadpoolctl lists no OpenMP runtime although cnorm was built with OpenMP"
    path = cnorm_openmp_library()
    if path is not None:
        found = [m for m in entries if os.path.realpath(m["filepath"]) == path]
        assert found, f"cnorm's OpenMP runtime {path} is not among threadpoolctl's: {entries}"
        return found[0]
    if len(entries) == 1:
        return entries[0]
    found = [m for m in entries if m["num_threads"] == cnorm.get_num_threads()]
    assert found, f"no OpenMP runtime with cnorm's {cnorm.get_num_threads()} threads: {entries}"
    return found[0]


@pytest.fixture
def x(rng):
    return rng.standard_normal(SHAPE).astype(np.float32) + 100


def test_threadpool_info_lists_cnorm_openmp(threads):
    cnorm.set_num_threads(0)
    entry = cnorm_entry()
    assert entry["user_api"] == "openmp"
    assert entry["prefix"] in ("libgomp", "libomp", "libiomp", "vcomp")
    # with no explicit setting cnorm follows the runtime's limit
    assert entry["num_threads"] == cnorm.get_num_threads()


def test_the_runtime_is_the_one_the_extension_links():
    path = cnorm_openmp_library()
    if path is None:
        pytest.skip("cannot tell which library provides cnorm's OpenMP (no dladdr)")
    assert os.path.isfile(path)
    assert any(key in os.path.basename(path) for key in ("gomp", "omp")), path


def test_threadpool_limits_caps_cnorm(threads, x):
    cnorm.set_num_threads(0)
    before = cnorm.get_num_threads()
    want = cnorm.layer_norm(x, SHAPE[-1])
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert cnorm.get_num_threads() == 1
        assert cnorm_entry()["num_threads"] == 1
        got = cnorm.layer_norm(x, SHAPE[-1])
        bn = cnorm.batch_norm(x.reshape(8, 8, 64, 128), training=True)
    assert cnorm.get_num_threads() == before
    assert cnorm_entry()["num_threads"] == before
    # same chunking for any thread count: bitwise identical, and correct
    np.testing.assert_array_equal(got, want)
    assert_close(got, ref.layer_norm(x, SHAPE[-1]), np.float32)
    assert_close(bn, ref.batch_norm(x.reshape(8, 8, 64, 128), training=True), np.float32)


def test_threadpool_limits_caps_an_explicit_setting(threads, x):
    cnorm.set_num_threads(0)
    limit = cnorm.get_num_threads()
    cnorm.set_num_threads(64)  # more than the runtime allows: capped by it
    assert cnorm.get_num_threads() == limit
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert cnorm.get_num_threads() == 1
        assert_close(cnorm.layer_norm(x, SHAPE[-1]), ref.layer_norm(x, SHAPE[-1]), np.float32)
    assert cnorm.get_num_threads() == limit


def test_limiting_only_cnorms_runtime(threads, x):
    """A controller narrowed to cnorm's library by file path is enough."""
    path = cnorm_openmp_library()
    if path is None:
        pytest.skip("cannot tell which library provides cnorm's OpenMP (no dladdr)")
    cnorm.set_num_threads(0)
    before = cnorm.get_num_threads()
    controller = threadpoolctl.ThreadpoolController().select(filepath=cnorm_entry()["filepath"])
    assert len(controller.lib_controllers) == 1
    with controller.limit(limits=1):
        assert cnorm.get_num_threads() == 1
        assert_close(cnorm.layer_norm(x, SHAPE[-1]), ref.layer_norm(x, SHAPE[-1]), np.float32)
    assert cnorm.get_num_threads() == before
