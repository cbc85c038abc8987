"""Type stubs for the compiled module cnorm._core (cnorm/_core.pyx).

The binding is internal: the public API is in cnorm/__init__.py.  Arrays
are flat (1-D), C-contiguous and of the kernel's storage type; the Python
layer (cnorm/_norms.py, cnorm/_kernels.py) lays them out and validates
them.  Functions over ``_Real`` take float32 or float64 storage (a Cython
fused type: all arrays of one call share it); the ``*_half`` variants take
float16/bfloat16 data as uint16 bit patterns (``bf16`` picks bfloat16) with
float32 weights.  Statistics are always float64.  ``act`` is a
cnorm_activation code: 0 none, 1 relu, 2 silu, 3 gelu.
"""
from typing import Any, Optional, TypeVar, Union

import numpy as np
from numpy.typing import DTypeLike, NDArray

_Real = TypeVar("_Real", np.float32, np.float64)
_Half = NDArray[np.uint16]
_F32 = NDArray[np.float32]
_F64 = NDArray[np.float64]

__test__: dict[str, str]  # Cython's doctest table

# channel_norm_fast operations
CHANNEL_BN_EVAL: int  # batch norm with running statistics (inference)
CHANNEL_BN_BATCH: int  # batch norm with batch statistics, nothing to update
CHANNEL_GN: int  # group norm
CHANNEL_IN: int  # instance norm with input statistics

# ---- output buffers ----------------------------------------------------------

def empty(n: int, dtype: DTypeLike) -> NDArray[Any]:
    """Flat uninitialized array of n elements; large ones from the buffer cache."""

def release_memory() -> int:
    """Free the cached output buffers; returns the bytes released."""

# ---- kernels: y receives the result, None is returned --------------------------

def layer_norm(
    x: NDArray[_Real],
    y: NDArray[_Real],
    rows: int,
    cols: int,
    w: Optional[NDArray[_Real]],
    b: Optional[NDArray[_Real]],
    eps: float,
    mean: Optional[_F64] = None,
    rstd: Optional[_F64] = None,
    act: int = 0,
) -> None: ...
def layer_norm_half(
    x: _Half,
    y: _Half,
    rows: int,
    cols: int,
    w: Optional[_F32],
    b: Optional[_F32],
    eps: float,
    mean: Optional[_F64] = None,
    rstd: Optional[_F64] = None,
    act: int = 0,
    bf16: bool = False,
) -> None: ...
def rms_norm(
    x: NDArray[_Real],
    y: NDArray[_Real],
    rows: int,
    cols: int,
    w: Optional[NDArray[_Real]],
    eps: float,
) -> None: ...
def rms_norm_half(
    x: _Half,
    y: _Half,
    rows: int,
    cols: int,
    w: Optional[_F32],
    eps: float,
    bf16: bool = False,
) -> None: ...
def group_norm(
    x: NDArray[_Real],
    y: NDArray[_Real],
    n: int,
    c: int,
    s: int,
    groups: int,
    nhwc: bool,
    w: Optional[NDArray[_Real]],
    b: Optional[NDArray[_Real]],
    eps: float,
    mean: Optional[_F64] = None,
    var: Optional[_F64] = None,
    act: int = 0,
) -> None: ...
def group_norm_half(
    x: _Half,
    y: _Half,
    n: int,
    c: int,
    s: int,
    groups: int,
    nhwc: bool,
    w: Optional[_F32],
    b: Optional[_F32],
    eps: float,
    mean: Optional[_F64] = None,
    var: Optional[_F64] = None,
    act: int = 0,
    bf16: bool = False,
) -> None: ...
def batch_norm(
    x: NDArray[_Real],
    y: NDArray[_Real],
    n: int,
    c: int,
    s: int,
    nhwc: bool,
    w: Optional[NDArray[_Real]],
    b: Optional[NDArray[_Real]],
    eps: float,
    mean_in: Optional[_F64] = None,
    var_in: Optional[_F64] = None,
    mean_out: Optional[_F64] = None,
    var_out: Optional[_F64] = None,
    act: int = 0,
) -> None: ...
def batch_norm_half(
    x: _Half,
    y: _Half,
    n: int,
    c: int,
    s: int,
    nhwc: bool,
    w: Optional[_F32],
    b: Optional[_F32],
    eps: float,
    mean_in: Optional[_F64] = None,
    var_in: Optional[_F64] = None,
    mean_out: Optional[_F64] = None,
    var_out: Optional[_F64] = None,
    act: int = 0,
    bf16: bool = False,
) -> None: ...
def moments(
    x: NDArray[_Real],
    outer: int,
    length: int,
    inner: int,
    ddof: float,
    mean: _F64,
    var: _F64,
) -> None: ...
def moments_half(
    x: _Half,
    outer: int,
    length: int,
    inner: int,
    ddof: float,
    mean: _F64,
    var: _F64,
    bf16: bool = False,
) -> None: ...
def fold_batch_norm(
    w: _F64,
    b: Optional[_F64],
    c_out: int,
    per_out: int,
    mean: _F64,
    var: _F64,
    gamma: Optional[_F64],
    beta: Optional[_F64],
    eps: float,
    w_out: _F64,
    b_out: _F64,
) -> None:
    """Conv-BN folding in float64 (the Python layer casts back)."""

def roofline(x: _F32, y: _F32, a: float, b: float) -> None:
    """Benchmark helper: y = a*x + b, the memory roofline of a norm."""

# ---- fast paths: the result, or None when the general path must run -----------

def layer_norm_fast(
    x: object,
    normalized_shape: object,
    weight: object,
    bias: object,
    eps: object,
    out: object,
) -> Optional[NDArray[Union[np.float32, np.float64]]]: ...
def channel_norm_fast(
    op: int,
    x: object,
    axis: object,
    groups: object,
    weight: object,
    bias: object,
    running_mean: object,
    running_var: object,
    eps: object,
    momentum: object,
    out: object,
    activation: object,
) -> Optional[NDArray[Union[np.float32, np.float64]]]: ...

# ---- configuration -----------------------------------------------------------

def isa_name(isa: int) -> str: ...
def isa_available(isa: int) -> bool: ...
def get_isa() -> int: ...
def set_isa(isa: int) -> None: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def has_openmp() -> bool: ...
def compiler() -> str: ...
