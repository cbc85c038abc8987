"""Runtime configuration: ISA selection, threads, build facts."""
from __future__ import annotations

import platform
from typing import Any, SupportsIndex

from . import _core
from ._checks import check_int
from ._version import __version__

# indexed by cnorm_isa, as the C library names them (cnorm_isa_name)
ISAS = _core.ISA_NAMES

__all__ = ["get_isa", "set_isa", "available_isas", "get_num_threads", "set_num_threads", "show_config",
           "release_memory"]


def available_isas() -> list[str]:
    """ISA paths compiled into this build and supported by this CPU.

    Returns
    -------
    list of str
        A subset of ``["scalar", "avx2", "avx512", "neon"]``.
    """
    return [name for i, name in enumerate(ISAS) if _core.isa_available(i)]


def get_isa() -> str:
    """The kernel path in use.

    Returns
    -------
    str
        "scalar", "avx2", "avx512" or "neon".
    """
    return ISAS[_core.get_isa()]


def set_isa(name: str) -> None:
    """Force a kernel path (for testing and comparisons).

    The environment variable CNORM_ISA sets the initial choice.

    Parameters
    ----------
    name : {"scalar", "avx2", "avx512", "neon"}

    Raises
    ------
    ValueError
        `name` is unknown, not compiled in, or not supported by this CPU.
    """
    if name not in ISAS:
        raise ValueError(f"name: expected one of {ISAS}, got {name!r}")
    if name not in available_isas():
        raise ValueError(f"name: ISA {name!r} is not available here (available: {available_isas()})")
    _core.set_isa(ISAS.index(name))


def get_num_threads() -> int:
    """Threads a large call will use.

    1 in a child process made by fork(): OpenMP's thread pool does not
    survive fork, so cnorm runs every call there on the calling thread.

    Returns
    -------
    int
    """
    return _core.get_num_threads()


def set_num_threads(n: SupportsIndex) -> None:
    """Set the threads large calls use, for every Python thread.

    The count is capped by OpenMP's limit (OMP_NUM_THREADS, threadpoolctl;
    the number of cores by default), which cnorm leaves untouched for other
    OpenMP users.

    Parameters
    ----------
    n : int >= 0
        0 restores the default.
    """
    _core.set_num_threads(check_int(n, "n", 0))


def config() -> dict[str, Any]:
    """The facts show_config() prints, as a dict."""
    return {
        "version": __version__,
        "isa": get_isa(),
        "isas_available": available_isas(),
        "openmp": _core.has_openmp(),
        "threads": get_num_threads(),
        "compiler": _core.compiler(),
        "machine": platform.machine(),
    }


def show_config() -> None:
    """Print the version, the ISA in use, the ISAs available, OpenMP, the
    thread count and the compiler (the same facts as :func:`config`)."""
    for key, value in config().items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:>15}: {value}")


def release_memory() -> int:
    """Free the output buffers cnorm keeps for reuse.

    Results of 1 MiB or more are allocated from a small cache of freed
    results (at most 4 buffers, 1 GiB in all), so that a repeated large call
    does not page-fault its output in afresh every time.

    Returns
    -------
    int
        The bytes freed.
    """
    return _core.release_memory()
