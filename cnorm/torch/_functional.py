"""cnorm.torch.layer_norm etc.: torch.nn.functional's signatures and results.

Validate or fall back: a call runs cnorm's op only when every argument is
one the op takes (``_route``); anything else -- a non-CPU device, another
dtype or dtype mix, a shape torch would reject, eps < 0, an empty tensor,
forward-mode AD, functorch transforms, autocast, tensor subclasses with
``__torch_function__`` -- is torch.nn.functional's own call, so the result
or the error is torch's.  Nothing here raises.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from . import _ops
from ._bridge import HALF_DTYPES, SUPPORTED_DTYPES

F = torch.nn.functional
_STRIDED = torch.strided
_forward_ad: Any = torch.autograd.forward_ad

__all__ = ["layer_norm", "rms_norm", "group_norm", "instance_norm", "batch_norm", "add_layer_norm", "add_rms_norm"]


# How a call runs (_route): torch's own function, or one of cnorm's paths.
_TORCH, _COMPILED, _WATCHED, _EAGER, _DIRECT = range(5)


def _route(x: object, *params: object) -> int:
    """Which path a call with input x and tensor arguments params (weight,
    bias, running stats, residual: each a tensor or None) takes.

    _TORCH unless x and params are what the ops take: CPU strided tensors,
    x float32, float64, float16 or bfloat16 and not empty, each parameter
    of x's dtype (or float32 for half x, torch's mixed mode), no CPU
    autocast.  Then, while compiling or exporting, _COMPILED: the public op
    torch.ops.cnorm.<name> as one node.  In eager mode _TORCH again for
    forward-mode AD, a functorch transform (vmap, jacfwd, grad) or a tensor
    subclass with __torch_function__ (torch's function would call it): the
    ops have no rules for them.  (Not asked while compiling, where the
    tensors are the tracer's own -- non-strict export's FakeTensors have
    __torch_function__ -- and dynamo has dealt with the transforms.)
    _WATCHED when something watches the dispatcher (a TorchDispatchMode,
    the JIT tracer): the op's body over the private ops.  Otherwise the
    same computation without the dispatcher: _EAGER (the private ops'
    autograd as plain autograd.Functions) when a gradient is needed,
    _DIRECT (the NumPy functions) when not.

    Every check is made once, in one function: right after a convolution
    a call's Python runs with cold caches, where each distinct torch call
    costs 5-20 us (examples/torch_e2e.py --breakdown)."""
    # (is_cpu, not device.type: device.type costs 0.9 us a tensor)
    if not isinstance(x, Tensor) or not x.is_cpu or x.layout != _STRIDED or x.is_nested or x.numel() == 0:
        return _TORCH
    dtype = x.dtype
    if dtype not in SUPPORTED_DTYPES:
        return _TORCH
    grad = x.requires_grad
    tensors = [x]
    for p in params:
        if p is None:
            continue
        if not isinstance(p, Tensor) or not p.is_cpu or p.layout != _STRIDED:
            return _TORCH
        if p.dtype != dtype and not (p.dtype == torch.float32 and dtype in HALF_DTYPES):
            return _TORCH
        grad = grad or p.requires_grad
        tensors.append(p)
    # (_is_any_autocast_enabled first: one flag read, where the per-device
    # query parses its argument)
    if torch._C._is_any_autocast_enabled() and torch.is_autocast_enabled("cpu"):
        return _TORCH
    if torch.compiler.is_compiling():
        return _COMPILED
    if (_forward_ad._current_level >= 0 or torch._C._functorch.peek_interpreter_stack() is not None
            or torch.overrides.has_torch_function(tensors)):
        return _TORCH
    if torch._C._len_torch_dispatch_stack() > 0 or torch._C._is_tracing():
        return _WATCHED
    return _EAGER if grad and torch.is_grad_enabled() else _DIRECT


def _run(route: int, name: str, *args: Any, **kwargs: Any) -> Any:
    """Op `name` on the path _route chose (not _TORCH)."""
    if route == _DIRECT:
        return _ops.DIRECT[name](*args, **kwargs)
    if route == _EAGER:
        return _ops.EAGER[name](*args, **kwargs)
    if route == _COMPILED:
        return getattr(torch.ops.cnorm, name)(*args, **kwargs)
    return _ops.BODIES[name](*args, **kwargs)


def _eps_ok(eps: object) -> bool:
    """cnorm's eps rule (a finite float >= 0); torch takes any float."""
    return isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps >= 0


def _momentum_ok(momentum: object) -> bool:
    return isinstance(momentum, (int, float)) and not isinstance(momentum, bool) and 0.0 <= momentum <= 1.0


def _shape(normalized_shape: object) -> Optional[list[int]]:
    """normalized_shape as torch takes it (an int or a sequence of ints)."""
    if isinstance(normalized_shape, bool):
        return None
    if isinstance(normalized_shape, int):
        return [normalized_shape]
    if isinstance(normalized_shape, (list, tuple, torch.Size)) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in normalized_shape
    ):
        return list(normalized_shape)
    return None


def _has_shape(p: Optional[Tensor], shape: Sequence[int]) -> bool:
    return p is None or p.shape == tuple(shape)  # (torch.Size is a tuple)


def _channels(x: Tensor, *params: Optional[Tensor]) -> bool:
    """x is (N, C, ...) and every per-channel tensor has shape (C,)."""
    if x.dim() < 2:
        return False
    c = (x.shape[1],)
    for p in params:  # (a loop, not all() of a generator: this runs on every call)
        if p is not None and p.shape != c:
            return False
    return True


def _no_grad(*ts: Optional[Tensor]) -> bool:
    """Running stats that are updated in place must not require grad."""
    return all(t is None or not t.requires_grad for t in ts)


def layer_norm(input: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.layer_norm through torch.ops.cnorm.layer_norm."""
    ns = _shape(normalized_shape)
    if (ns is not None and (route := _route(input, weight, bias)) and _eps_ok(eps) and 0 < len(ns) <= input.dim()
            and tuple(input.shape[input.dim() - len(ns):]) == tuple(ns)
            and _has_shape(weight, ns) and _has_shape(bias, ns)):
        return _run(route, "layer_norm", input, ns, weight, bias, float(eps))
    return F.layer_norm(input, normalized_shape, weight, bias, eps)


def rms_norm(input: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None,
             eps: Optional[float] = None) -> Tensor:
    """torch.nn.functional.rms_norm through torch.ops.cnorm.rms_norm."""
    ns = _shape(normalized_shape)
    if (ns is not None and (route := _route(input, weight)) and (eps is None or _eps_ok(eps))
            and 0 < len(ns) <= input.dim()
            and tuple(input.shape[input.dim() - len(ns):]) == tuple(ns) and _has_shape(weight, ns)):
        return _run(route, "rms_norm", input, ns, weight, None if eps is None else float(eps))
    return F.rms_norm(input, normalized_shape, weight, eps)


def group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.group_norm through torch.ops.cnorm.group_norm."""
    if (isinstance(num_groups, int) and not isinstance(num_groups, bool) and (route := _route(input, weight, bias))
            and _eps_ok(eps) and _channels(input, weight, bias) and num_groups > 0
            and input.shape[1] % num_groups == 0):
        return _run(route, "group_norm", input, num_groups, weight, bias, float(eps))
    return F.group_norm(input, num_groups, weight, bias, eps)


def instance_norm(input: Tensor, running_mean: Optional[Tensor] = None, running_var: Optional[Tensor] = None,
                  weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.instance_norm through torch.ops.cnorm.instance_norm."""
    if ((route := _route(input, running_mean, running_var, weight, bias)) and _eps_ok(eps) and _momentum_ok(momentum)
            and isinstance(use_input_stats, bool) and input.dim() >= 3
            and _channels(input, running_mean, running_var, weight, bias)
            and (running_mean is None) == (running_var is None) and _no_grad(running_mean, running_var)
            and (use_input_stats or running_mean is not None)
            and (not use_input_stats or math.prod(input.shape[2:]) > 1)):
        return _run(route, "instance_norm", input, running_mean, running_var, weight, bias, use_input_stats,
                    float(momentum), float(eps))
    return F.instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)


def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
               weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.batch_norm through torch.ops.cnorm.batch_norm."""
    if ((route := _route(input, running_mean, running_var, weight, bias)) and _eps_ok(eps) and _momentum_ok(momentum)
            and isinstance(training, bool) and _channels(input, running_mean, running_var, weight, bias)
            and (running_mean is None) == (running_var is None) and _no_grad(running_mean, running_var)
            and (training or running_mean is not None)
            and (not training or input.numel() // input.shape[1] > 1)):
        return _run(route, "batch_norm", input, running_mean, running_var, weight, bias, training,
                    float(momentum), float(eps))
    return F.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def _add_accepts(input: object, residual: object, skip_bias: object, ns: Optional[list[int]]) -> bool:
    """The add ops' own rules, on top of the norm's: residual and skip_bias
    of input's exact dtype (torch would promote the sum to another one),
    residual of input's shape or a trailing part of it, which broadcasts
    over input's leading dims (leading size-1 dims allowed, no more dims
    than input: torch's sum would have more), skip_bias of shape
    normalized_shape."""
    if ns is None or not isinstance(input, Tensor) or not isinstance(residual, Tensor):
        return False
    if skip_bias is not None and (not isinstance(skip_bias, Tensor) or tuple(skip_bias.shape) != tuple(ns)):
        return False
    for t in (residual, skip_bias):
        if t is not None and (t.dtype != input.dtype or t.is_nested):
            return False
    t = tuple(residual.shape)
    if len(t) > input.dim():
        return False
    while len(t) > len(ns) and t[0] == 1:
        t = t[1:]
    return len(t) >= len(ns) and tuple(input.shape[input.dim() - len(t):]) == t


def add_layer_norm(input: Tensor, residual: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None,
                   bias: Optional[Tensor] = None, eps: float = 1e-5, *,
                   skip_bias: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``(y, s)``: ``s = input + residual (+ skip_bias)``,
    ``y = layer_norm(s, normalized_shape, weight, bias, eps)``, through
    torch.ops.cnorm.add_layer_norm (one pass: cnorm.add_layer_norm);
    otherwise torch's ``s`` and F.layer_norm(s, ...)."""
    ns = _shape(normalized_shape)
    if (_add_accepts(input, residual, skip_bias, ns) and ns is not None
            and (route := _route(input, weight, bias, residual, skip_bias)) and _eps_ok(eps)
            and 0 < len(ns) <= input.dim() and tuple(input.shape[input.dim() - len(ns):]) == tuple(ns)
            and _has_shape(weight, ns) and _has_shape(bias, ns)):
        y, s = _run(route, "add_layer_norm", input, residual, ns, weight, bias, float(eps), skip_bias=skip_bias)
        return y, s
    s = input + residual if skip_bias is None else input + residual + skip_bias
    return F.layer_norm(s, normalized_shape, weight, bias, eps), s


def add_rms_norm(input: Tensor, residual: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None,
                 eps: Optional[float] = None, *, skip_bias: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``(y, s)``: ``s = input + residual (+ skip_bias)``,
    ``y = rms_norm(s, normalized_shape, weight, eps)``, through
    torch.ops.cnorm.add_rms_norm; otherwise torch's ``s`` and
    F.rms_norm(s, ...)."""
    ns = _shape(normalized_shape)
    if (_add_accepts(input, residual, skip_bias, ns) and ns is not None
            and (route := _route(input, weight, residual, skip_bias)) and (eps is None or _eps_ok(eps))
            and 0 < len(ns) <= input.dim() and tuple(input.shape[input.dim() - len(ns):]) == tuple(ns)
            and _has_shape(weight, ns)):
        y, s = _run(route, "add_rms_norm", input, residual, ns, weight, None if eps is None else float(eps),
                    skip_bias=skip_bias)
        return y, s
    s = input + residual if skip_bias is None else input + residual + skip_bias
    return F.rms_norm(s, normalized_shape, weight, eps), s
