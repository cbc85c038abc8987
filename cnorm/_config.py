"""Runtime configuration: ISA selection, threads, the output-buffer cache, build facts."""
from __future__ import annotations

import os
import platform
import re
import sys
import warnings
from typing import Any, SupportsIndex

from . import _core
from ._checks import check_int
from ._version import __version__

INT_MAX = 2**31 - 1  # cnorm_set_num_threads takes a C int

# indexed by cnorm_isa, as the C library names them (cnorm_isa_name)
ISAS = _core.ISA_NAMES

__all__ = ["get_isa", "set_isa", "available_isas", "get_num_threads", "set_num_threads", "show_config",
           "release_memory", "get_output_cache", "set_output_cache"]


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
    _core.set_num_threads(check_int(n, "n", 0, INT_MAX))


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
    results (at most 4 buffers, 1 GiB in all by default), so that a
    repeated large call does not page-fault its output in afresh every
    time.  So after ``del`` of large results, the process's RSS stays up
    by what the cache holds, until this call.  Bound or turn off the cache
    with :func:`set_output_cache` or the environment variable
    ``CNORM_OUTPUT_CACHE`` (README, "Memory").

    Returns
    -------
    int
        The bytes freed.
    """
    return _core.release_memory()


def get_output_cache() -> int:
    """The bound, in bytes, of what the output-buffer cache holds (0: off).

    Returns
    -------
    int
    """
    return _core.get_output_cache()


def set_output_cache(max_bytes: int) -> None:
    """Bound the memory the output-buffer cache holds for reuse.

    Freed results of 1 MiB or more are kept (at most 4 buffers) while what
    is held stays within `max_bytes`; a larger result is freed at once.
    The initial bound is ``CNORM_OUTPUT_CACHE`` from the environment at
    import (bytes, or with a K/M/G suffix, e.g. ``512M``; 0 turns the
    cache off), else 1 GiB.

    Parameters
    ----------
    max_bytes : int >= 0
        0 turns the cache off.  A bound below what is held now frees the
        cache (as :func:`release_memory`).
    """
    _core.set_output_cache(check_int(max_bytes, "max_bytes", 0, sys.maxsize))


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _parse_bytes(text: str) -> int:
    """'268435456', '256M', '256MiB', '1g' -> bytes (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:([kmgt])(?:i?b)?|b)?\s*", text, re.IGNORECASE)
    if m is None:
        raise ValueError(text)
    return int(m.group(1)) * _UNITS[(m.group(2) or "").lower()]


def _output_cache_from_env() -> None:
    """CNORM_OUTPUT_CACHE, read once at import.  A value that is not a size
    warns and leaves the default (an environment variable should not make
    ``import cnorm`` fail)."""
    text = os.environ.get("CNORM_OUTPUT_CACHE")
    if text is None or not text.strip():
        return
    try:
        _core.set_output_cache(min(_parse_bytes(text), sys.maxsize))
    except ValueError:
        warnings.warn(f"CNORM_OUTPUT_CACHE: expected a size in bytes such as 0, 268435456 or 256M, got "
                      f"{text!r}; using the default {_core.OUTPUT_CACHE_DEFAULT >> 20} MiB",
                      RuntimeWarning, stacklevel=2)


_output_cache_from_env()
