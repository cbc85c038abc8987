"""cnorm: batch, layer, instance, group and RMS normalization on the CPU.

SIMD- and OpenMP-vectorized C kernels with single-pass Welford statistics
behind a NumPy API whose positional arguments follow torch.nn.functional.
"""
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
