"""cnorm: batch, layer, instance, group and RMS normalization on the CPU.

SIMD- and OpenMP-vectorized C kernels with single-pass Welford statistics
behind a NumPy API whose positional arguments follow torch.nn.functional.
"""
try:
    from . import _core
except ImportError:  # NumPy's way: say what happened instead of "circular import"
    import importlib.machinery as _machinery
    import os as _os

    _here = _os.path.dirname(_os.path.abspath(__file__))
    if any(_os.path.exists(_os.path.join(_here, "_core" + _suffix))
           for _suffix in _machinery.EXTENSION_SUFFIXES):
        raise  # built, but it does not load (a missing libgomp, a NumPy mismatch): the real cause
    raise ImportError(
        f"cnorm's compiled extension (cnorm._core) is missing from {_here}: you are probably importing "
        "cnorm from its source tree, which has not been built. Install it with `pip install -e .` "
        "(or build it in place: `python setup.py build_ext --inplace`), or run Python from another "
        "directory to use an installed cnorm."
    ) from None  # the original error only guesses "circular import"
from ._config import (
    available_isas,
    get_isa,
    get_num_threads,
    get_output_cache,
    release_memory,
    set_isa,
    set_num_threads,
    set_output_cache,
    show_config,
)
from ._backward import (
    Grads,
    batch_norm_backward,
    group_norm_backward,
    instance_norm_backward,
    layer_norm_backward,
    rms_norm_backward,
)
from ._fused import add_layer_norm, add_rms_norm
from ._moments import moments
from ._norms import batch_norm, fold_batch_norm, group_norm, instance_norm, layer_norm, rms_norm
from ._version import __version__
from . import nn

__all__ = [
    "batch_norm",
    "layer_norm",
    "instance_norm",
    "group_norm",
    "rms_norm",
    "add_layer_norm",
    "add_rms_norm",
    "Grads",
    "batch_norm_backward",
    "layer_norm_backward",
    "instance_norm_backward",
    "group_norm_backward",
    "rms_norm_backward",
    "moments",
    "fold_batch_norm",
    "get_num_threads",
    "set_num_threads",
    "get_isa",
    "set_isa",
    "available_isas",
    "show_config",
    "release_memory",
    "get_output_cache",
    "set_output_cache",
    "__version__",
]
