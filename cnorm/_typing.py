"""Type aliases of the public API's annotations, defined once.

They are evaluated at import (and by ``typing.get_type_hints``), so they are
spelled with ``typing.Union``/``Optional``: Python 3.9 has no ``X | Y``.
"""
from typing import Any, Literal, Optional, Sequence, SupportsIndex, TypeVar, Union

import numpy as np
from numpy.typing import NDArray

__all__ = ["Activation", "Array", "AxisLike", "F32", "F64", "FloatT", "Needs", "Needs2", "ShapeLike", "Single32T"]

#: A floating scalar type. The functions return x's floating dtype, so an
#: NDArray[FloatT] argument gives an NDArray[FloatT] result; other input
#: (lists, integer arrays -> float64, ml_dtypes' bfloat16) gives NDArray[Any].
FloatT = TypeVar("FloatT", bound=np.floating[Any])

#: Any array (the dtype not known statically).
Array = NDArray[Any]

#: The inputs whose saved statistics (``return_stats=True``) are float32:
#: float32 and float16 (DESIGN.md 3.1); float64 input gives float64 ones.
Single32T = TypeVar("Single32T", np.float32, np.float16)
F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

#: A backward's ``needs=``: which of (grad_x, grad_weight, grad_bias) to
#: compute; rms_norm's has two, (grad_x, grad_weight).
Needs = tuple[bool, bool, bool]
Needs2 = tuple[bool, bool]

#: ``activation=``: the names of the C library's activations (code > 0;
#: tests/test_typing.py checks them against cnorm._core.ACTIVATION_NAMES).
Activation = Optional[Literal["relu", "silu", "gelu"]]

#: ``normalized_shape``: an int or a sequence of ints (NumPy's integers too).
ShapeLike = Union[SupportsIndex, Sequence[SupportsIndex]]

#: moments' ``axis``: None (every axis), an int or a sequence of ints.
AxisLike = Optional[ShapeLike]
