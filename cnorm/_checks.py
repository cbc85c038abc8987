"""Argument checks and dtype rules of the general path.

Every error names the argument and shows what was expected and what was
given (README.md, "Rules and decisions").  The rules that decide what may
be handed to C as it is (passes_as_is, writes_directly, unaliased, the
layout choice) and the scalar checks the fast lane shares (check_eps,
check_momentum, activation_code) live in cnorm/_core.pyx, once; they are
re-exported here for the Python modules.

Byte order: a non-native array (``x.astype(">f8")``) is computed as its
native twin and the result has the native dtype, as NumPy's ufuncs do.
``out`` may have either byte order of the result dtype; an ``out`` the
kernel cannot write directly (non-native, strided, misaligned, overlapping
x) receives the values through a temporary.
"""
from __future__ import annotations

import math
import numbers
import sys
from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

# re-exported for the Python modules ("x as x": an explicit re-export for mypy)
from ._core import activation_code as activation_code, check_eps as check_eps  # noqa: F401
from ._core import check_momentum as check_momentum, default_eps as default_eps  # noqa: F401
from ._core import is_bf16_bits, storage, weight_dtype as weight_dtype  # noqa: F401
from ._typing import Array

F64 = np.dtype(np.float64)


def is_bfloat16(dt: np.dtype[Any]) -> bool:
    return dt.kind == "V" and dt.name == "bfloat16"


def is_floating(dt: np.dtype[Any]) -> bool:
    """float16/32/64 (and longdouble) or ml_dtypes' bfloat16."""
    return dt.kind == "f" or is_bfloat16(dt)


def input_dtypes(dt: np.dtype[Any], name: str = "x") -> tuple[np.dtype[Any], np.dtype[Any]]:
    """(result dtype, kernel dtype) for an input of dtype `dt`.

    float32/float64 run natively; float16 and bfloat16 are read and written
    as such by the kernels (float32 arithmetic inside); integers and bools
    become float64 (as np.mean does); longdouble runs in float64.  A
    non-native byte order is the native dtype (the kernels see native data).
    """
    if dt.kind == "f" and not dt.isnative:
        dt = dt.newbyteorder("=")
    if storage(dt) >= 0:  # the kernels' own storage types (_core's rule)
        return dt, dt
    if dt.kind == "f":
        return dt, F64
    if dt.kind in "biu":
        return F64, F64
    raise TypeError(f"{name}: expected a real floating, integer or bool array, got dtype {dt}")


def stats_dtype(comp: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype of the statistics ``return_stats=True`` gives for kernel
    dtype `comp` (DESIGN.md 3.1): float32 for float32 and the half types,
    float64 for float64 (and so for integer input) -- the weight dtype's
    rule, so that a training loop keeps them as it keeps the weights."""
    return weight_dtype(comp)


def check_needs(needs: object, names: Sequence[str]) -> tuple[bool, ...]:
    """A backward's ``needs=``: a tuple of one bool per gradient in
    `names` (a list is accepted too; NumPy's bool as well)."""
    expected = f"a tuple of {len(names)} bools ({', '.join(names)})"
    if not isinstance(needs, (tuple, list)):
        raise TypeError(f"needs: expected {expected}, got {type(needs).__name__} {needs!r}")
    if len(needs) != len(names):
        raise ValueError(f"needs: expected {expected}, got {len(needs)} values {tuple(needs)!r}")
    if not all(isinstance(v, (bool, np.bool_)) for v in needs):
        raise TypeError(f"needs: expected {expected}, got {tuple(needs)!r}")
    return tuple(bool(v) for v in needs)


def array(x: object, name: str) -> Array:
    """An input as an ndarray: np.asarray, except that a torch.Tensor is
    read through the array that shares its memory (detached: the NumPy API
    has no autograd; np.asarray refuses a tensor that requires grad, and
    any bfloat16 tensor).  torch is not imported here: a tensor exists only
    once its user has imported torch, so sys.modules tells."""
    torch: Any = sys.modules.get("torch")
    if torch is None or not isinstance(x, torch.Tensor):
        return np.asarray(x)
    if x.device.type != "cpu":
        raise TypeError(f"{name}: a torch tensor on device {x.device} cannot be read as a NumPy array; "
                        "cnorm.torch's functions and modules take it (they fall back to torch off the CPU)")
    t = x.detach().resolve_conj().resolve_neg()
    if t.dtype != torch.bfloat16:
        return np.asarray(t.numpy())
    try:
        import ml_dtypes
    except ImportError:
        raise TypeError(f"{name}: a bfloat16 tensor needs ml_dtypes (pip install ml_dtypes) for a NumPy "
                        "bfloat16 result; cnorm.torch's functions and modules take it as it is and return "
                        "tensors") from None
    return np.asarray(t.view(torch.uint16).numpy().view(ml_dtypes.bfloat16))


def as_input(x: ArrayLike, name: str = "x") -> tuple[Array, np.dtype[Any], np.dtype[Any]]:
    a = x if type(x) is np.ndarray else array(x, name)
    res, comp = input_dtypes(a.dtype, name)
    return a, res, comp


def check_int(value: object, name: str, minimum: int, maximum: Optional[int] = None) -> int:
    """`value` as an int in [minimum, maximum] (maximum: the C type the
    value becomes, so a huge Python int is a ValueError, not OverflowError)."""
    expected = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name}: expected {expected}, got {value}")
    return value


def param(value: Optional[ArrayLike], name: str, shape: tuple[int, ...], dtype: DTypeLike) -> Optional[Array]:
    """A weight/bias/running-stat argument as a flat contiguous array of
    `dtype`, or None.  Its shape must be exactly `shape`."""
    if value is None:
        return None
    a = value if type(value) is np.ndarray else array(value, name)
    if a.dtype.kind not in "fbiu" and not is_bfloat16(a.dtype):
        raise TypeError(f"{name}: expected a real floating array, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    return plain(a, dtype).reshape(-1)


def plain(a: ArrayLike, dtype: DTypeLike) -> Array:
    """`a` as an array that passes to C as it is: C-contiguous, aligned,
    of the native `dtype` (a view when it already is).  BF16_BITS
    (cnorm.torch's bfloat16 bits, see cnorm/_core.pyx) widens exactly to
    float32 first: NumPy would convert its bits as integers."""
    a = np.asarray(a)
    dt = np.dtype(dtype)
    if is_bf16_bits(a.dtype) != is_bf16_bits(dt):  # NumPy sees two uint16 dtypes: equal
        if not is_bf16_bits(a.dtype):
            raise TypeError(f"cannot convert {a.dtype} to bfloat16 bits (cnorm.torch passes x's dtype)")
        a = (a.astype(np.uint32) << 16).view(np.float32)
    a = np.ascontiguousarray(a, dtype=dt)
    return a if a.flags.aligned else a.copy()


def normalize_axis(axis: object, ndim: int, name: str = "axis") -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(axis).__name__} {axis!r}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: {axis} is out of bounds for an array of dimension {ndim}")
    return axis % ndim


def normalized_shape_tuple(normalized_shape: Any, x_shape: Sequence[int]) -> tuple[int, ...]:
    """Validate layer/RMS norm's normalized_shape against x's trailing dims.
    (Any: whatever the caller passed is checked here.)"""
    ns: Optional[tuple[Any, ...]]
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        ns = (int(normalized_shape),)
    else:
        try:
            ns = tuple(normalized_shape)
        except TypeError:
            ns = None
        if isinstance(normalized_shape, str) or ns is None or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in ns
        ):
            raise TypeError(f"normalized_shape: expected an int or a tuple of ints, got {normalized_shape!r}")
        ns = tuple(int(d) for d in ns)
    k = len(ns)
    if k == 0 or k > len(x_shape) or tuple(x_shape[len(x_shape) - k:]) != ns:
        raise ValueError(
            f"normalized_shape: expected the trailing dims of x (shape {tuple(x_shape)}), got {ns}"
        )
    return ns


QUANT_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8))


def check_quantize(quantize: object, out_dtype: object) -> tuple[Optional[tuple[float, int, bool]],
                                                                  Optional[np.dtype[Any]]]:
    """int8/uint8 output (DESIGN.md 3.2): ``quantize=(scale, zero_point)``
    with ``out_dtype`` int8 (the default) or uint8, as the kernels take it
    ((scale, zero_point, unsigned)) and the result dtype; (None, None)
    without quantize.  Every bad value is a ValueError, as DESIGN.md says."""
    if quantize is None:
        if out_dtype is not None:
            raise ValueError(f"out_dtype: only with quantize=(scale, zero_point), got out_dtype={out_dtype!r}")
        return None, None
    try:
        dt = np.dtype(np.int8 if out_dtype is None else out_dtype)  # type: ignore[call-overload]
    except TypeError:
        dt = None
    if dt not in QUANT_DTYPES:
        raise ValueError(f"out_dtype: expected numpy.int8 or numpy.uint8, got {out_dtype!r}")
    assert dt is not None
    if not isinstance(quantize, (tuple, list)) or len(quantize) != 2:
        raise ValueError(f"quantize: expected a (scale, zero_point) pair, got {quantize!r}")
    scale, zero_point = quantize
    real = not isinstance(scale, (bool, np.bool_)) and isinstance(scale, numbers.Real)
    if not real or not (math.isfinite(float(scale)) and float(scale) > 0):
        raise ValueError(f"quantize: scale must be a finite number > 0, got {scale!r}")
    info = np.iinfo(dt)
    integral = not isinstance(zero_point, (bool, np.bool_)) and isinstance(zero_point, numbers.Integral)
    if not integral or not info.min <= int(zero_point) <= info.max:
        raise ValueError(f"quantize: zero_point must be an int in [{info.min}, {info.max}] for {dt}, "
                         f"got {zero_point!r}")
    return (float(scale), int(zero_point), dt == np.uint8), dt


def check_out(out: object, shape: Sequence[int], dtype: np.dtype[Any], name: str = "out") -> None:
    """`out` must be a writable ndarray of the result's shape and dtype (in
    either byte order)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype and not (out.dtype.kind == "f" and out.dtype.newbyteorder("=") == dtype):
        raise TypeError(f"{name}: expected dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{name}: array is read-only")
