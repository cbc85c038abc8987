"""Tensors as the NumPy arrays that share their memory, for cnorm's NumPy
front door (cnorm.layer_norm etc.), which decides every rule.

A CPU tensor's ``.numpy()`` is a view with the tensor's strides, so a
contiguous or channels_last tensor reaches the kernels without a copy and
an ``out=`` view of ``torch.empty_like(x)`` receives the result in x's
memory format.  bfloat16 has no NumPy dtype (ml_dtypes has one, but torch
users need not have it), so its bits go as a uint16 view with cnorm's
private BF16_BITS dtype, which cnorm._core takes for bfloat16.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from .. import _core
from .._checks import stats_dtype

Array = np.ndarray[Any, Any]

#: the dtypes the ops compute (with their NumPy storage dtype)
_NUMPY: dict[torch.dtype, np.dtype[Any]] = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.float16: np.dtype(np.float16),
    torch.bfloat16: _core.BF16_BITS,
}
_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}

SUPPORTED_DTYPES = frozenset(_NUMPY)
HALF_DTYPES = frozenset((torch.float16, torch.bfloat16))


def array(t: torch.Tensor) -> Array:
    """The array sharing t's memory (t: a CPU strided tensor of a supported
    dtype; detached, since the ops run below autograd)."""
    if t.requires_grad:
        t = t.detach()
    a: Array = (t.view(torch.uint16).numpy().view(_core.BF16_BITS) if t.dtype == torch.bfloat16 else t.numpy())
    return a


def array_or_none(t: Optional[torch.Tensor]) -> Optional[Array]:
    return None if t is None else array(t)


def tensor(a: Array) -> torch.Tensor:
    """A float32/float64 array cnorm returned (statistics, parameter
    gradients) as a tensor sharing its memory."""
    return torch.from_numpy(np.ascontiguousarray(a))


def stats_dtype_of(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the statistics cnorm returns for input `dtype`
    (cnorm's own rule, _checks.stats_dtype), for the fake kernels."""
    return _TORCH[stats_dtype(_NUMPY[dtype])]


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """Running statistics are updated in a float64/float32 copy (cnorm
    updates floating ndarrays in place; a bfloat16 one has no NumPy dtype
    that could hold the update), rounded back once to their own dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32
