"""Typed use of the public API: `mypy --strict` must pass on this file, and it
runs (tests/test_typing.py does both).

Each ``assert_type`` states the type a user's checker sees; the run then
checks that the value has that type (dtype), so the annotations stay true.
A ``# type: ignore[...]`` marks a call that must be a type error: under
--strict (warn_unused_ignores) an ignore that is not needed is an error.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional, Union

import numpy as np
from numpy.typing import NDArray

import cnorm
import cnorm.nn

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # typing_extensions comes with mypy
    from typing_extensions import assert_type

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


def same(a: Any, dtype: type[np.generic]) -> None:
    """The value's type is what the annotation says: an array of `dtype`,
    or a scalar of that type."""
    if isinstance(a, np.ndarray):
        assert a.dtype == dtype, (a.dtype, dtype)
    else:
        assert type(a) is dtype, (type(a), dtype)


rng = np.random.default_rng(0)
h = rng.standard_normal((4, 16, 768), dtype=np.float32)
x = rng.standard_normal((8, 3, 5, 5))  # float64
w3 = np.ones(3, np.float32)

# ---- layer_norm: the result follows x's dtype; return_stats=True gives a tuple
y = cnorm.layer_norm(h, 768)
assert_type(y, F32)
same(y, np.float32)
y, mean, rstd = cnorm.layer_norm(h, 768, np.ones(768, np.float32), None, 1e-5, return_stats=True)
assert_type(mean, F32)
assert_type(rstd, F32)
same(rstd, np.float32)
h16 = h.astype(np.float16)
y16, mean16, rstd16 = cnorm.layer_norm(h16, (16, 768), return_stats=True)
assert_type(y16, NDArray[np.float16])
assert_type(mean16, F32)  # saved statistics: float32 for half input
same(mean16, np.float32)
same(rstd16, np.float32)
y64, mean64, rstd64 = cnorm.layer_norm(x, 5, return_stats=True)
assert_type(mean64, F64)
same(mean64, np.float64)
flag: bool = bool(len(sys.argv) > 99)  # only known at run time
either = cnorm.layer_norm(h, 768, return_stats=flag)
assert_type(either, Union[NDArray[Any], tuple[NDArray[Any], NDArray[Any], NDArray[Any]]])
assert_type(cnorm.layer_norm([[1.0, 2.0, 3.0]], 3), NDArray[Any])  # array_like: dtype unknown
assert_type(cnorm.layer_norm(h, 768, out=np.empty_like(h), activation="gelu"), F32)

# ---- the channel variants
assert_type(cnorm.batch_norm(x, training=True), F64)
rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
yb = cnorm.batch_norm(x.astype(np.float32), rm, rv, w3, None, True, 0.1, 1e-5, axis=1, activation="relu")
assert_type(yb, F32)
same(yb, np.float32)
assert_type(cnorm.instance_norm(x, use_input_stats=True, activation="silu"), F64)
assert_type(cnorm.group_norm(x, 3, axis=1), F64)
assert_type(cnorm.group_norm(x.astype(np.int64), 1), NDArray[Any])  # integers: float64 at run time
same(cnorm.group_norm(x.astype(np.int64), 1), np.float64)
yr = cnorm.rms_norm(h, 768, eps=None)
assert_type(yr, F32)
same(yr, np.float32)

# ---- return_stats on every forward, and the backward passes
yr16, rstd_r = cnorm.rms_norm(h16, 768, return_stats=True)
assert_type(rstd_r, F32)
same(rstd_r, np.float32)
yb2, mean_b, rstd_b = cnorm.batch_norm(x, training=True, return_stats=True)
assert_type(mean_b, F64)
same(rstd_b, np.float64)
yg, mean_g, rstd_g = cnorm.group_norm(x.astype(np.float32), 3, return_stats=True)
assert_type(rstd_g, F32)
same(mean_g, np.float32)
yi, mean_i, rstd_i = cnorm.instance_norm(x, return_stats=True)
assert_type(mean_i, F64)
g = cnorm.layer_norm_backward(np.ones_like(h), h, 768, mean, rstd, np.ones(768, np.float32))
assert_type(g, cnorm.Grads)
assert_type(g.x, Optional[NDArray[Any]])
assert g.x is not None and g.weight is not None and g.bias is not None
same(g.x, np.float32)
same(g.weight, np.float32)
gx, gw, gb = cnorm.batch_norm_backward(np.ones_like(x), x, mean_b, rstd_b, w3, needs=(True, True, False))
assert gb is None
gr = cnorm.rms_norm_backward(np.ones_like(h16), h16, 768, rstd_r, needs=(True, False))
assert gr.weight is None and gr.bias is None and gr.x is not None
same(gr.x, np.float16)
cnorm.group_norm_backward(np.ones_like(yg), yg, 3, mean_g, rstd_g, activation="silu", out=np.empty_like(yg))
cnorm.instance_norm_backward(np.ones_like(x), x, mean_i, rstd_i, axis=1)

# ---- moments: scalars over every axis, arrays with keepdims, else Any (as np.mean)
m, v = cnorm.moments(h)
assert_type(m, np.float32)
same(m, np.float32)
same(v, np.float32)
mk, vk = cnorm.moments(x, (0, 2, 3), ddof=1, keepdims=True)
assert_type(mk, F64)
same(vk, np.float64)
ma, va = cnorm.moments(x, axis=0)
assert_type(ma, Any)

# ---- fold_batch_norm
fw, fb = cnorm.fold_batch_norm(np.ones((3, 2, 1, 1), np.float32), None, rm, rv, w3, None)
assert_type(fw, F32)
assert_type(fb, F32)
same(fb, np.float32)

# ---- configuration
assert_type(cnorm.available_isas(), list[str])
assert_type(cnorm.get_isa(), str)
cnorm.set_isa(cnorm.get_isa())
assert_type(cnorm.get_num_threads(), int)
cnorm.set_num_threads(0)
assert_type(cnorm.release_memory(), int)
assert_type(cnorm.__version__, str)

# ---- cnorm.nn: modules keep the dtype, train()/eval() return the module itself
bn = cnorm.nn.BatchNorm2d(3)
assert_type(bn.train(), cnorm.nn.BatchNorm2d)
assert_type(bn(x.astype(np.float32)), F32)
assert_type(bn.running_mean, Optional[F32])
assert_type(bn.num_batches_tracked, Optional[NDArray[np.int64]])
state = bn.state_dict()
assert_type(state, dict[str, NDArray[Any]])
keys = bn.eval().load_state_dict(state, strict=False)
assert_type(keys, cnorm.nn.IncompatibleKeys)
assert_type(keys.missing_keys, list[str])
ln = cnorm.nn.LayerNorm(768, eps=1e-6)
assert_type(ln(h), F32)
assert_type(ln.backward(np.ones_like(h)), NDArray[Any])
assert_type(ln.grad, dict[str, NDArray[Any]])
ln.zero_grad()
assert_type(ln.forward(h, out=None), NDArray[Any])
assert_type(cnorm.nn.RMSNorm((16, 768))(h16), NDArray[np.float16])
assert_type(cnorm.nn.GroupNorm(3, 3)(x), F64)
assert_type(cnorm.nn.InstanceNorm1d(3, affine=True)(rng.standard_normal((8, 3, 5))), F64)


def convert(torch_module: Any) -> cnorm.nn.Module:
    """from_torch returns a cnorm.nn.Module (torch has no types here)."""
    return cnorm.nn.from_torch(torch_module)


# ---- what the types reject, as the run does (each ignore must be needed, see the docstring)
rejected: list[tuple[Callable[[], object], type[Exception]]] = [
    (lambda: cnorm.layer_norm(h, 768, activation="tanh"), ValueError),  # type: ignore[call-overload]
    (lambda: cnorm.group_norm(x, 1.5), TypeError),  # type: ignore[call-overload]
    (lambda: cnorm.set_num_threads(2.0), TypeError),  # type: ignore[arg-type]
    (lambda: cnorm.layer_norm_backward(h, h, 768, needs=(True, True)), ValueError),  # type: ignore[arg-type]
]
for call, error in rejected:
    try:
        call()
    except error:
        continue
    raise AssertionError(f"expected {error.__name__}")
