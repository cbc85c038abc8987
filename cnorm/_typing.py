"""Type aliases of the public API's annotations, defined once.

They are evaluated at import (and by ``typing.get_type_hints``), so they are
spelled with ``typing.Union``/``Optional``: Python 3.9 has no ``X | Y``.
"""
from typing import Any, Literal, Optional, Sequence, SupportsIndex, TypeVar, Union

import numpy as np
from numpy.typing import NDArray

__all__ = ["Activation", "Array", "AxisLike", "FloatT", "ShapeLike"]

#: A floating scalar type. The functions return x's floating dtype, so an
#: NDArray[FloatT] argument gives an NDArray[FloatT] result; other input
#: (lists, integer arrays -> float64, ml_dtypes' bfloat16) gives NDArray[Any].
FloatT = TypeVar("FloatT", bound=np.floating[Any])

#: Any array (the dtype not known statically).
Array = NDArray[Any]

#: ``activation=``: the names of the C library's activations (code > 0;
#: tests/test_typing.py checks them against cnorm._core.ACTIVATION_NAMES).
Activation = Optional[Literal["relu", "silu", "gelu"]]

#: ``normalized_shape``: an int or a sequence of ints (NumPy's integers too).
ShapeLike = Union[SupportsIndex, Sequence[SupportsIndex]]

#: moments' ``axis``: None (every axis), an int or a sequence of ints.
AxisLike = Optional[ShapeLike]
