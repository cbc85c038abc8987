"""Calls into the compiled kernels for a compute dtype.

float32 and float64 arrays go to the kernels as they are; float16 and
bfloat16 ones go as their uint16 bit patterns to the half-storage kernels,
with float32 weights.
"""
import numpy as np

from . import _core
from ._checks import F32, F64, is_bfloat16

ACTIVATIONS = {None: 0, "relu": 1, "silu": 2, "gelu": 3}


def activation_code(activation):
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation: expected None, 'relu', 'silu' or 'gelu', got {activation!r}"
        ) from None


def weight_dtype(comp):
    """dtype of weight/bias for kernels of compute dtype comp."""
    return comp if comp == F32 or comp == F64 else F32


def run(op, comp, x, y, *args, **kwargs):
    """_core.<op>(x, y, *args) for float/double, else its half variant."""
    if comp == F32 or comp == F64:
        return getattr(_core, op)(x, y, *args, **kwargs)
    return getattr(_core, op + "_half")(x.view(np.uint16), y.view(np.uint16), *args,
                                        bf16=is_bfloat16(comp), **kwargs)


def moments(comp, x, *args):
    if comp == F32 or comp == F64:
        return _core.moments(x, *args)
    return _core.moments_half(x.view(np.uint16), *args, bf16=is_bfloat16(comp))
