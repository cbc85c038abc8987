"""Type stubs for the compiled module cnorm._core (cnorm/_core.pyx).

The binding is internal: the public API is in cnorm/__init__.py.  _core
holds the rules that decide what may be handed to C (passes_as_is,
writes_directly, unaliased, channel_layout, the scalar checks), one kernel
function per op (``layer_norm`` ... ``fold_batch_norm``: plain arrays only,
i.e. C-contiguous, aligned, native byte order, of the kernel's storage
type: float32/float64, or float16/bfloat16 with float32 weights;
statistics float64), and the fast lane (``*_fast``: the public
function's arguments, the result or None when the general path must run).
``act`` is a cnorm_activation code (index into ACTIVATION_NAMES).
"""
from typing import Any, Optional, TypeVar, Union

import numpy as np
from numpy.typing import DTypeLike, NDArray

_Arr = NDArray[Any]
_F64 = NDArray[np.float64]
_Grads = TypeVar("_Grads", bound=tuple[Any, ...])

__test__: dict[str, str]  # Cython's doctest table

#: names from the C library (cnorm_isa_name, cnorm_activation_name), by code
ISA_NAMES: tuple[str, ...]
ACTIVATION_NAMES: tuple[str, ...]

# channel_layout results (flags)
LAYOUT_NCHW: int
LAYOUT_NHWC: int
LAYOUT_COPY: int

# channel_norm_fast / channel_backward_fast operations
CHANNEL_BN_EVAL: int  # batch norm with running statistics (inference); backward: training=False
CHANNEL_BN_BATCH: int  # batch norm with batch statistics, nothing to update; backward: training=True
CHANNEL_GN: int  # group norm
CHANNEL_IN: int  # instance norm with input statistics

# ---- rules -------------------------------------------------------------------

#: cnorm.torch's bfloat16 bits: a uint16 dtype with metadata that storage()
#: takes for bfloat16 (no ml_dtypes needed)
BF16_BITS: np.dtype[np.uint16]

def is_bf16_bits(dtype: np.dtype[Any]) -> bool:
    """Whether dtype is BF16_BITS."""

def storage(dtype: np.dtype[Any]) -> int:
    """Type number of a kernel storage dtype, else -1."""

def weight_typenum(typenum: int) -> int:
    """Type number of weight/bias for kernels of storage `typenum`."""

def weight_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype of weight/bias for kernels of storage dtype `dtype`."""

def passes_as_is(a: object, typenum: int, n: int = -1) -> bool:
    """ndarray of exactly `typenum`, native byte order, aligned, C-contiguous, n elements."""

def writes_directly(out: object, xk: _Arr, typenum: int = -1) -> bool:
    """The kernel reading xk may write straight into out."""

def unaliased(p: Optional[_Arr], y: _Arr) -> Optional[_Arr]:
    """p, copied when it shares memory with y."""

def channel_layout(x: _Arr, b: int, ax: int, prefer_nhwc: bool) -> int:
    """LAYOUT_NCHW or LAYOUT_NHWC, plus LAYOUT_COPY when x must be copied."""

def check_eps(eps: object, name: str = "eps") -> float: ...
def check_momentum(momentum: object) -> float: ...
def activation_code(activation: object) -> int: ...
def check_ddof(ddof: object) -> float:
    """moments' ddof: a finite real number."""
def warn_dof(count: float, ddof: float) -> int:
    """NumPy's RuntimeWarning when ddof >= count."""
def rstd_of(var: object, eps: float, given: bool = False) -> _F64:
    """1/sqrt(var + eps) with the C engine's cnorm_rstd (clamped at 0) or,
    given=True, cnorm_given_rstd (not clamped): return_stats' rstd."""
def update_running(running: object, momentum: float, new: object, scale: float = 1.0) -> None:
    """PyTorch's running-statistic update in place, in double."""
def default_eps(dtype: DTypeLike) -> float:
    """rms_norm's eps=None: the result dtype's machine epsilon."""

# ---- output buffers ----------------------------------------------------------

def empty(n: int, dtype: DTypeLike) -> _Arr:
    """Flat uninitialized array of n elements; large ones from the buffer cache."""

def release_memory() -> int:
    """Free the cached output buffers; returns the bytes released."""

OUTPUT_CACHE_DEFAULT: int  # the cache's bound in bytes unless set

def set_output_cache(max_bytes: int) -> None:
    """Bound the bytes the cache holds (0: off); a lower bound frees the cache."""

def get_output_cache() -> int:
    """The cache's bound in bytes."""

def output_cache_held() -> int:
    """Bytes the cache holds now."""

# ---- kernels: plain arrays, y (and the statistics) receive the result ---------

def layer_norm(
    x: _Arr,
    y: _Arr,
    rows: int,
    cols: int,
    w: Optional[_Arr],
    b: Optional[_Arr],
    eps: float,
    mean: Optional[_F64] = None,
    rstd: Optional[_F64] = None,
    act: int = 0,
    quant: Optional[tuple[float, int, bool]] = None,
) -> None: ...
def rms_norm(
    x: _Arr,
    y: _Arr,
    rows: int,
    cols: int,
    w: Optional[_Arr],
    eps: float,
    rstd: Optional[_F64] = None,
    quant: Optional[tuple[float, int, bool]] = None,
) -> None: ...
def add_norm(
    x: _Arr,
    r: _Arr,
    r_rows: int,
    skip: Optional[_Arr],
    s: _Arr,
    y: _Arr,
    rows: int,
    cols: int,
    w: Optional[_Arr],
    b: Optional[_Arr],
    eps: float,
    mean: Optional[_F64] = None,
    rstd: Optional[_F64] = None,
    act: int = 0,
    rms: bool = False,
    quant: Optional[tuple[float, int, bool]] = None,
) -> None: ...
def group_norm(
    x: _Arr,
    y: _Arr,
    n: int,
    c: int,
    s: int,
    groups: int,
    nhwc: bool,
    w: Optional[_Arr],
    b: Optional[_Arr],
    eps: float,
    mean: Optional[_F64] = None,
    var: Optional[_F64] = None,
    act: int = 0,
    quant: Optional[tuple[float, int, bool]] = None,
) -> None: ...
def batch_norm(
    x: _Arr,
    y: _Arr,
    n: int,
    c: int,
    s: int,
    nhwc: bool,
    w: Optional[_Arr],
    b: Optional[_Arr],
    eps: float,
    mean_in: Optional[_F64] = None,
    var_in: Optional[_F64] = None,
    mean_out: Optional[_F64] = None,
    var_out: Optional[_F64] = None,
    act: int = 0,
    quant: Optional[tuple[float, int, bool]] = None,
) -> None: ...
def moments(
    x: _Arr,
    lead: int,
    keep: int,
    length: int,
    inner: int,
    ddof: float,
    mean: _F64,
    var: _F64,
    partial: bool = False,
) -> None:
    """x as (lead, keep, length, inner), reduced over lead and length
    (partial: var receives M2, for Chan merges)."""

def fold_batch_norm(
    w: _Arr,
    b: Optional[_Arr],
    c_out: int,
    per_out: int,
    mean: _Arr,
    var: _Arr,
    gamma: Optional[_Arr],
    beta: Optional[_Arr],
    eps: float,
) -> tuple[_F64, _F64]:
    """Conv-BN folding in float64 (float32 arrays widened); float64 results."""

# backward kernels (issue 11): dy and x in the forward's kernel form, of one
# storage type; dx, dw, db None (skipped) or written (dx may be dy or x);
# mean/rstd both None (recomputed) or float64; w/b/dw/db of the weight type
def layer_norm_backward(
    dy: _Arr,
    x: _Arr,
    dx: Optional[_Arr],
    rows: int,
    cols: int,
    mean: Optional[_F64],
    rstd: Optional[_F64],
    w: Optional[_Arr],
    b: Optional[_Arr],
    eps: float,
    act: int,
    dw: Optional[_Arr],
    db: Optional[_Arr],
) -> None: ...
def rms_norm_backward(
    dy: _Arr,
    x: _Arr,
    dx: Optional[_Arr],
    rows: int,
    cols: int,
    rstd: Optional[_F64],
    w: Optional[_Arr],
    eps: float,
    dw: Optional[_Arr],
) -> None: ...
def group_norm_backward(
    dy: _Arr,
    x: _Arr,
    dx: Optional[_Arr],
    n: int,
    c: int,
    s: int,
    groups: int,
    nhwc: bool,
    mean: Optional[_F64],
    rstd: Optional[_F64],
    w: Optional[_Arr],
    b: Optional[_Arr],
    eps: float,
    act: int,
    dw: Optional[_Arr],
    db: Optional[_Arr],
) -> None:
    """Also instance norm: groups == c."""
def batch_norm_backward(
    dy: _Arr,
    x: _Arr,
    dx: Optional[_Arr],
    n: int,
    c: int,
    s: int,
    nhwc: bool,
    mean: Optional[_F64],
    rstd: Optional[_F64],
    w: Optional[_Arr],
    b: Optional[_Arr],
    eps: float,
    training: bool,
    act: int,
    dw: Optional[_Arr],
    db: Optional[_Arr],
) -> None:
    """training False: mean/rstd are constants (eval mode)."""

def roofline(x: NDArray[np.float32], y: NDArray[np.float32], a: float, b: float) -> None:
    """Benchmark helper: y = a*x + b, the memory roofline of a norm."""

# ---- fast lane: the result, or None when the general path must run -----------

def layer_norm_fast(
    x: object,
    normalized_shape: object,
    weight: object,
    bias: object,
    eps: object,
    out: object,
    activation: object,
    return_stats: object,
) -> Union[None, _Arr, tuple[_Arr, _Arr, _Arr]]: ...
def add_norm_fast(
    x: object,
    residual: object,
    normalized_shape: object,
    weight: object,
    bias: object,
    eps: object,
    skip_bias: object,
    out: object,
    sum_out: object,
    activation: object,
    rms: bool,
) -> Optional[tuple[_Arr, _Arr]]:
    """add_layer_norm / add_rms_norm of plain arguments, else None."""
def rms_norm_fast(
    x: object,
    normalized_shape: object,
    weight: object,
    eps: object,
    out: object,
    return_stats: object,
) -> Union[None, _Arr, tuple[_Arr, _Arr]]: ...
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
    return_stats: object = False,
) -> Union[None, _Arr, tuple[_Arr, _Arr, _Arr]]: ...
def moments_fast(
    x: object,
    axis: object,
    ddof: object,
    keepdims: object,
) -> Optional[tuple[Any, Any]]: ...
def fold_batch_norm_fast(
    conv_weight: object,
    conv_bias: object,
    running_mean: object,
    running_var: object,
    weight: object,
    bias: object,
    eps: object,
) -> Optional[tuple[_Arr, _Arr]]: ...

# the backward's fast lane: the gradients as a `grads` (cnorm.Grads), or None
def layer_norm_backward_fast(
    grads: type[_Grads],
    grad_out: object,
    x: object,
    normalized_shape: object,
    mean: object,
    rstd: object,
    weight: object,
    bias: object,
    eps: object,
    activation: object,
    needs: object,
    out: object,
) -> Optional[_Grads]: ...
def rms_norm_backward_fast(
    grads: type[_Grads],
    grad_out: object,
    x: object,
    normalized_shape: object,
    rstd: object,
    weight: object,
    eps: object,
    needs: object,
    out: object,
) -> Optional[_Grads]: ...
def channel_backward_fast(
    grads: type[_Grads],
    op: int,
    grad_out: object,
    x: object,
    axis: object,
    groups: object,
    mean: object,
    rstd: object,
    weight: object,
    bias: object,
    eps: object,
    activation: object,
    needs: object,
    out: object,
) -> Optional[_Grads]:
    """op: CHANNEL_GN, CHANNEL_IN, CHANNEL_BN_BATCH (training=True) or
    CHANNEL_BN_EVAL (training=False)."""

# ---- configuration -----------------------------------------------------------

def isa_available(isa: int) -> bool: ...
def get_isa() -> int: ...
def set_isa(isa: int) -> None: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def has_openmp() -> bool: ...
def compiler() -> str: ...
