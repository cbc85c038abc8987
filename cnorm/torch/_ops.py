"""The custom operators, namespace ``cnorm``.

Public ops, with torch.nn.functional's arguments and result::

    torch.ops.cnorm.layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5)
    torch.ops.cnorm.rms_norm(input, normalized_shape, weight=None, eps=None)
    torch.ops.cnorm.group_norm(input, num_groups, weight=None, bias=None, eps=1e-5)
    torch.ops.cnorm.instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                                  use_input_stats=True, momentum=0.1, eps=1e-5)
    torch.ops.cnorm.batch_norm(input, running_mean, running_var, weight=None, bias=None,
                               training=False, momentum=0.1, eps=1e-5)
    torch.ops.cnorm.add_layer_norm(input, residual, normalized_shape, weight=None, bias=None, eps=1e-5,
                                   *, skip_bias=None) -> (y, s)
    torch.ops.cnorm.add_rms_norm(input, residual, normalized_shape, weight=None, eps=None,
                                 *, skip_bias=None) -> (y, s)

The add ops (DESIGN.md 3.2, cnorm.add_layer_norm): ``s = input + residual
(+ skip_bias)`` and ``y`` = the norm of s.  They are functional: the
NumPy form's ``sum_out=residual`` (vLLM's in-place fused_add_rms_norm) is
not an op; s is a new tensor.

batch_norm and instance_norm update the running statistics in place, as
torch does; their schemas declare it (``Tensor(a!)? running_mean``).

Why two layers: torch.library.register_autograd only takes functional
ops, and an op that updates running stats is not one.  So each public op is
CompositeImplicitAutograd over a private functional op ``cnorm::_<name>``
that returns the result, the statistics the backward needs (cnorm's
``return_stats=True``) and, for batch/instance norm, the updated running
statistics, which the public op copies into the given ones.  The private
forward's autograd calls a private backward op ``cnorm::_<name>_backward``
(cnorm's ``*_backward`` functions); the add ops' private forwards return
(y, s) and no statistics (cnorm.add_layer_norm has no return_stats), and
their autograd calls the norm's backward op on s with none, which the
kernel then recomputes row by row.  Every private op has a fake kernel, so
torch.compile and torch.export trace forward and backward into the graph;
the public ops decompose into them when traced.

Each op calls cnorm's NumPy front door on arrays that share the tensors'
memory (_bridge), so there is no second implementation of any rule here:
dtypes, layouts, statistics, running-stat updates are cnorm's.  Inputs are
expected valid (CPU, float32/float64/float16/bfloat16, matching shapes):
cnorm.torch's functions check that and give anything else to torch.

Eager calls do not go through the dispatcher (cnorm.torch._functional._run):
``DIRECT`` (no gradient: the NumPy functions, no statistics kept) and
``EAGER`` (the private ops' autograd formulas as plain autograd.Functions)
give the ops' results bitwise (tests/test_torch_ops.py).

Double backward (``create_graph=True``): cnorm's backward kernels have no
derivative of their own, so with grad mode on the backward is torch's own,
recomputed through torch.nn.functional at the saved inputs and recorded as
a graph that can be differentiated again.
"""
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor
from torch.autograd.graph import increment_version

from .. import _backward, _fused, _norms
from ._bridge import HALF_DTYPES, array, array_or_none, stats_dtype_of, tensor, work_dtype

F = torch.nn.functional


#: the private forward ops' Python functions, by op name ("_layer_norm"...)
KERNELS: dict[str, Callable[..., Any]] = {}


#: the private ops, and their (setup_context, backward) pairs (_autograd)
_OPS: dict[str, Any] = {}
_AUTOGRAD: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {}


def _custom_op(name: str) -> Callable[[Callable[..., Any]], Any]:
    """A functional CPU custom op (a decorator; typed here because mypy
    does not analyze torch).  Keeps the function in KERNELS."""
    def register(fn: Callable[..., Any]) -> Any:
        short = name.split("::")[1]
        KERNELS[short] = fn
        _OPS[short] = torch.library.custom_op(name, mutates_args=(), device_types="cpu")(fn)
        return _OPS[short]
    return register


def _autograd(name: str, grad: Callable[..., Any], setup: Callable[..., Any]) -> None:
    """register_autograd on private op `name`; the pair is kept for the
    eager autograd.Functions too (EAGER), so both run the same formulas."""
    _OPS[name].register_autograd(grad, setup_context=setup)
    _AUTOGRAD[name] = (setup, grad)


def _ns(normalized_shape: Sequence[int]) -> Any:
    """normalized_shape for cnorm: one dim as an int, which takes cnorm's
    fast lane (a tuple takes the general path: ~35 us more a call)."""
    return normalized_shape[0] if len(normalized_shape) == 1 else tuple(normalized_shape)


def _mask3(mask: Sequence[bool]) -> tuple[bool, bool, bool]:
    return mask[0], mask[1], mask[2]


# ---- shared pieces -------------------------------------------------------------


def _stats_like(x: Tensor, shape: Sequence[int], k: int) -> list[Tensor]:
    """k statistics tensors of `shape`, in cnorm's statistics dtype for x."""
    return [x.new_empty(tuple(shape), dtype=stats_dtype_of(x.dtype)) for _ in range(k)]


def _none() -> Tensor:
    """The placeholder for an output an op does not produce (a custom op
    cannot return None): empty."""
    return torch.empty(0)


def _grads_like(x: Tensor, params: Sequence[Optional[Tensor]], need: Sequence[bool]) -> list[Tensor]:
    """The backward ops' outputs: grad_x like x, parameter gradients in
    cnorm's statistics dtype (float32 for half input), placeholders for
    what is not asked for."""
    out = [torch.empty_like(x) if need[0] else _none()]
    for p, n in zip(params, need[1:]):
        out.append(x.new_empty(p.shape, dtype=stats_dtype_of(x.dtype)) if n and p is not None else _none())
    return out


def _grad_out_arg(need: Sequence[bool], gx: Tensor) -> Any:
    return array(gx) if need[0] else None


def _grad_results(gx: Tensor, g: _backward.Grads, params: Sequence[Optional[Tensor]],
                  need: Sequence[bool]) -> tuple[Tensor, ...]:
    """cnorm's Grads as the backward op's outputs (grad_x was written into gx)."""
    out = [gx]
    for p, n, a in zip(params, need[1:], (g.weight, g.bias)):
        out.append(tensor(a) if n and p is not None and a is not None else _none())
    return tuple(out)


def _running_work(rm: Optional[Tensor], rv: Optional[Tensor], update: bool) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """The running statistics cnorm reads (and updates in place when
    `update`): copies in a dtype NumPy can update (_bridge.work_dtype)."""
    if not update or rm is None or rv is None:
        return rm, rv
    return rm.to(work_dtype(rm.dtype), copy=True), rv.to(work_dtype(rv.dtype), copy=True)


def _running_results(rm: Optional[Tensor], rv: Optional[Tensor], work: tuple[Optional[Tensor], Optional[Tensor]],
                     update: bool) -> tuple[Tensor, Tensor]:
    if not update or rm is None or rv is None or work[0] is None or work[1] is None:
        return _none(), _none()
    return work[0].to(rm.dtype), work[1].to(rv.dtype)


def _running_like(rm: Optional[Tensor], rv: Optional[Tensor], update: bool) -> tuple[Tensor, Tensor]:
    if not update or rm is None or rv is None:
        return _none(), _none()
    return torch.empty_like(rm), torch.empty_like(rv)


def _backward_op(ctx: Any, name: str) -> Callable[..., Any]:
    """The private backward op `name`: its Python function when the
    forward ran as an eager autograd.Function (EAGER: no dispatcher), else
    the op, which torch.compile and torch.export trace into the graph."""
    return KERNELS[name] if getattr(ctx, "eager", False) else getattr(torch.ops.cnorm, name)


def _needs(ctx: Any, *indices: int) -> list[bool]:
    return [bool(ctx.needs_input_grad[i]) for i in indices]


def _param_grad(g: Tensor, p: Optional[Tensor], need: bool) -> Optional[Tensor]:
    """A parameter gradient in the parameter's dtype (cnorm's is float32
    for half input), or None."""
    return g.to(p.dtype) if need and p is not None else None


def _torch_grads(forward: Callable[[], Tensor], grad_y: Tensor, inputs: Sequence[Optional[Tensor]],
                 need: Sequence[bool]) -> list[Optional[Tensor]]:
    """Double backward: the gradients of torch's own forward (a closure over
    the saved inputs) as a graph, so that they can be differentiated again."""
    wrt = [t for t, n in zip(inputs, need) if n and t is not None]
    with torch.enable_grad():
        got = iter(torch.autograd.grad(forward(), wrt, grad_y, create_graph=True, allow_unused=True))
    return [next(got) if n and t is not None else None for t, n in zip(inputs, need)]


def _channel_apply(x: Tensor, mean: Tensor, rstd: Tensor, weight: Optional[Tensor],
                   bias: Optional[Tensor]) -> Tensor:
    """y from given per-channel statistics (constants: batch norm in eval,
    instance norm with running stats), in torch ops: the double backward's
    forward."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    y = (x - mean.view(shape)) * rstd.view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y.to(x.dtype)


# ---- layer_norm ----------------------------------------------------------------


@_custom_op("cnorm::_layer_norm")
def _layer_norm(input: Tensor, normalized_shape: list[int], weight: Optional[Tensor], bias: Optional[Tensor],
                eps: float) -> tuple[Tensor, Tensor, Tensor]:
    y = torch.empty_like(input)
    _, mean, rstd = _norms.layer_norm(array(input), _ns(normalized_shape), array_or_none(weight),
                                      array_or_none(bias), eps, out=array(y), return_stats=True)
    return y, tensor(mean), tensor(rstd)


def _layer_norm_fake(input: Tensor, normalized_shape: list[int], weight: Optional[Tensor], bias: Optional[Tensor],
                     eps: float) -> tuple[Tensor, ...]:
    k = len(normalized_shape)
    return (torch.empty_like(input), *_stats_like(input, tuple(input.shape[: input.dim() - k]) + (1,) * k, 2))


_layer_norm.register_fake(_layer_norm_fake)


@_custom_op("cnorm::_layer_norm_backward")
def _layer_norm_backward(grad_out: Tensor, input: Tensor, normalized_shape: list[int], mean: Optional[Tensor],
                         rstd: Optional[Tensor], weight: Optional[Tensor], bias: Optional[Tensor],
                         output_mask: list[bool], eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """mean and rstd None: recomputed from input with eps, row by row inside
    the backward kernel (the add ops save no statistics)."""
    gx = torch.empty_like(input) if output_mask[0] else _none()
    g = _backward.layer_norm_backward(array(grad_out), array(input), _ns(normalized_shape), array_or_none(mean),
                                      array_or_none(rstd), array_or_none(weight), eps=eps,
                                      needs=_mask3(output_mask), out=_grad_out_arg(output_mask, gx))
    return _grad_results(gx, g, (weight, bias), output_mask)


def _layer_norm_backward_fake(grad_out: Tensor, input: Tensor, normalized_shape: list[int], mean: Optional[Tensor],
                              rstd: Optional[Tensor], weight: Optional[Tensor], bias: Optional[Tensor],
                              output_mask: list[bool], eps: float = 1e-5) -> tuple[Tensor, ...]:
    return tuple(_grads_like(input, (weight, bias), output_mask))


_layer_norm_backward.register_fake(_layer_norm_backward_fake)


def _layer_norm_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    input, normalized_shape, weight, bias, eps = inputs
    ctx.save_for_backward(input, weight, bias, output[1], output[2])
    ctx.normalized_shape, ctx.eps = normalized_shape, eps
    ctx.mark_non_differentiable(output[1], output[2])


def _layer_norm_grad(ctx: Any, grad_y: Tensor, *_: Any) -> tuple[Optional[Tensor], ...]:
    input, weight, bias, mean, rstd = ctx.saved_tensors
    need = _needs(ctx, 0, 2, 3)
    if torch.is_grad_enabled():  # create_graph=True
        gx, gw, gb = _torch_grads(lambda: F.layer_norm(input, ctx.normalized_shape, weight, bias, ctx.eps),
                                  grad_y, (input, weight, bias), need)
        return gx, None, gw, gb, None
    gx, gw, gb = _backward_op(ctx, "_layer_norm_backward")(grad_y, input, ctx.normalized_shape, mean, rstd,
                                                      weight, bias, need)
    return (gx if need[0] else None, None, _param_grad(gw, weight, need[1]), _param_grad(gb, bias, need[2]), None)


_autograd("_layer_norm", _layer_norm_grad, _layer_norm_setup)


# ---- rms_norm ------------------------------------------------------------------


@_custom_op("cnorm::_rms_norm")
def _rms_norm(input: Tensor, normalized_shape: list[int], weight: Optional[Tensor],
              eps: Optional[float]) -> tuple[Tensor, Tensor]:
    y = torch.empty_like(input)
    _, rstd = _norms.rms_norm(array(input), _ns(normalized_shape), array_or_none(weight), eps,
                              out=array(y), return_stats=True)
    return y, tensor(rstd)


def _rms_norm_fake(input: Tensor, normalized_shape: list[int], weight: Optional[Tensor],
                   eps: Optional[float]) -> tuple[Tensor, ...]:
    k = len(normalized_shape)
    return (torch.empty_like(input), *_stats_like(input, tuple(input.shape[: input.dim() - k]) + (1,) * k, 1))


_rms_norm.register_fake(_rms_norm_fake)


@_custom_op("cnorm::_rms_norm_backward")
def _rms_norm_backward(grad_out: Tensor, input: Tensor, normalized_shape: list[int], rstd: Optional[Tensor],
                       weight: Optional[Tensor], output_mask: list[bool],
                       eps: Optional[float] = None) -> tuple[Tensor, Tensor]:
    """rstd None: recomputed from input with eps (None: cnorm's default) in
    the backward kernel."""
    gx = torch.empty_like(input) if output_mask[0] else _none()
    g = _backward.rms_norm_backward(array(grad_out), array(input), _ns(normalized_shape), array_or_none(rstd),
                                    array_or_none(weight), eps=eps, needs=(output_mask[0], output_mask[1]),
                                    out=_grad_out_arg(output_mask, gx))
    return _grad_results(gx, g, (weight,), output_mask)


def _rms_norm_backward_fake(grad_out: Tensor, input: Tensor, normalized_shape: list[int], rstd: Optional[Tensor],
                            weight: Optional[Tensor], output_mask: list[bool],
                            eps: Optional[float] = None) -> tuple[Tensor, ...]:
    return tuple(_grads_like(input, (weight,), output_mask))


_rms_norm_backward.register_fake(_rms_norm_backward_fake)


def _rms_norm_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    input, normalized_shape, weight, eps = inputs
    ctx.save_for_backward(input, weight, output[1])
    ctx.normalized_shape, ctx.eps = normalized_shape, eps
    ctx.mark_non_differentiable(output[1])


def _rms_norm_grad(ctx: Any, grad_y: Tensor, *_: Any) -> tuple[Optional[Tensor], ...]:
    input, weight, rstd = ctx.saved_tensors
    need = _needs(ctx, 0, 2)
    if torch.is_grad_enabled():  # create_graph=True
        gx, gw = _torch_grads(lambda: F.rms_norm(input, ctx.normalized_shape, weight, ctx.eps),
                              grad_y, (input, weight), need)
        return gx, None, gw, None
    gx, gw = _backward_op(ctx, "_rms_norm_backward")(grad_y, input, ctx.normalized_shape, rstd, weight, need)
    return gx if need[0] else None, None, _param_grad(gw, weight, need[1]), None


_autograd("_rms_norm", _rms_norm_grad, _rms_norm_setup)


# ---- add_layer_norm and add_rms_norm: residual add + norm (DESIGN.md 3.2) ---------
#
# (y, s): s = input + residual (+ skip_bias), y = layer_norm(s) or rms_norm(s),
# both from cnorm's one pass (cnorm.add_layer_norm: y is bitwise
# cnorm.layer_norm(s)).  The NumPy functions return no statistics, so the
# backward gives the norm's backward op s with none: the kernel recomputes
# each row's statistics as it reads the row.  ds = (dL/dy through the norm)
# + dL/ds (s is an output too: the next block's residual) goes to input,
# to residual (summed over the leading dims it broadcasts over) and to
# skip_bias (summed over every leading dim).


@_custom_op("cnorm::_add_layer_norm")
def _add_layer_norm(input: Tensor, residual: Tensor, normalized_shape: list[int], weight: Optional[Tensor],
                    bias: Optional[Tensor], eps: float, skip_bias: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    y, s = torch.empty_like(input), torch.empty_like(input)
    _fused.add_layer_norm(array(input), array(residual), _ns(normalized_shape), array_or_none(weight),
                          array_or_none(bias), eps, skip_bias=array_or_none(skip_bias), out=array(y),
                          sum_out=array(s))
    return y, s


@_custom_op("cnorm::_add_rms_norm")
def _add_rms_norm(input: Tensor, residual: Tensor, normalized_shape: list[int], weight: Optional[Tensor],
                  eps: Optional[float], skip_bias: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    y, s = torch.empty_like(input), torch.empty_like(input)
    _fused.add_rms_norm(array(input), array(residual), _ns(normalized_shape), array_or_none(weight), eps,
                        skip_bias=array_or_none(skip_bias), out=array(y), sum_out=array(s))
    return y, s


def _add_fake(input: Tensor, *_: Any) -> tuple[Tensor, Tensor]:
    return torch.empty_like(input), torch.empty_like(input)


_add_layer_norm.register_fake(_add_fake)
_add_rms_norm.register_fake(_add_fake)


def _add_setup(ctx: Any, residual: Tensor, skip_bias: Optional[Tensor], normalized_shape: list[int],
               eps: Optional[float], s: Tensor, *params: Optional[Tensor]) -> None:
    ctx.save_for_backward(s, *params)
    ctx.normalized_shape, ctx.eps = normalized_shape, eps
    ctx.residual_shape, ctx.residual_dtype = residual.shape, residual.dtype
    ctx.skip_shape, ctx.skip_dtype = (None, None) if skip_bias is None else (skip_bias.shape, skip_bias.dtype)


def _alias(p: Optional[Tensor]) -> Optional[Tensor]:
    """A parameter for the double backward's torch graph, as a view: s is
    this op's output, so the gradient to the parameter itself would also
    reach it back through the op's own node (s's grad_fn), which autograd
    would then run again; the view's gradient is only the norm's."""
    return None if p is None else p.view_as(p)


def _add_grads(ctx: Any, ds: Optional[Tensor], grad_s: Optional[Tensor],
               need: Sequence[bool]) -> tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """dL/d(input, residual, skip_bias) from dL/ds through the norm (ds,
    None when not computed) and the gradient that came to s itself."""
    if ds is None:
        return None, None, None
    if grad_s is not None:
        ds = ds + grad_s
    gr = ds.sum_to_size(ctx.residual_shape).to(ctx.residual_dtype) if need[1] else None
    gk = ds.sum_to_size(ctx.skip_shape).to(ctx.skip_dtype) if need[2] and ctx.skip_shape is not None else None
    return (ds if need[0] else None), gr, gk


def _add_layer_norm_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    _, residual, normalized_shape, weight, bias, eps, skip_bias = inputs
    _add_setup(ctx, residual, skip_bias, normalized_shape, eps, output[1], weight, bias)


def _add_layer_norm_grad(ctx: Any, grad_y: Tensor, grad_s: Optional[Tensor]) -> tuple[Optional[Tensor], ...]:
    s, weight, bias = ctx.saved_tensors
    need_x, need_r, need_w, need_b, need_k = _needs(ctx, 0, 1, 3, 4, 6)
    need = [need_x or need_r or need_k, need_w, need_b]
    if torch.is_grad_enabled():  # create_graph=True: torch's backward of the norm, at the saved s
        w, b = _alias(weight), _alias(bias)
        ds, gw, gb = _torch_grads(lambda: F.layer_norm(s, ctx.normalized_shape, w, b, ctx.eps), grad_y, (s, w, b),
                                  need)
    else:
        ds, gw, gb = _backward_op(ctx, "_layer_norm_backward")(grad_y, s, ctx.normalized_shape, None, None, weight, bias,
                                                          need, ctx.eps)
        ds, gw, gb = ds if need[0] else None, _param_grad(gw, weight, need_w), _param_grad(gb, bias, need_b)
    gx, gr, gk = _add_grads(ctx, ds, grad_s, (need_x, need_r, need_k))
    return gx, gr, None, gw, gb, None, gk


_autograd("_add_layer_norm", _add_layer_norm_grad, _add_layer_norm_setup)


def _add_rms_norm_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    _, residual, normalized_shape, weight, eps, skip_bias = inputs
    _add_setup(ctx, residual, skip_bias, normalized_shape, eps, output[1], weight)


def _add_rms_norm_grad(ctx: Any, grad_y: Tensor, grad_s: Optional[Tensor]) -> tuple[Optional[Tensor], ...]:
    s, weight = ctx.saved_tensors
    need_x, need_r, need_w, need_k = _needs(ctx, 0, 1, 3, 5)
    need = [need_x or need_r or need_k, need_w]
    if torch.is_grad_enabled():  # create_graph=True
        w = _alias(weight)
        ds, gw = _torch_grads(lambda: F.rms_norm(s, ctx.normalized_shape, w, ctx.eps), grad_y, (s, w), need)
    else:
        ds, gw = _backward_op(ctx, "_rms_norm_backward")(grad_y, s, ctx.normalized_shape, None, weight, need, ctx.eps)
        ds, gw = ds if need[0] else None, _param_grad(gw, weight, need_w)
    gx, gr, gk = _add_grads(ctx, ds, grad_s, (need_x, need_r, need_k))
    return gx, gr, None, gw, None, gk


_autograd("_add_rms_norm", _add_rms_norm_grad, _add_rms_norm_setup)


# ---- group_norm ----------------------------------------------------------------


@_custom_op("cnorm::_group_norm")
def _group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor], bias: Optional[Tensor],
                eps: float) -> tuple[Tensor, Tensor, Tensor]:
    y = torch.empty_like(input)
    _, mean, rstd = _norms.group_norm(array(input), num_groups, array_or_none(weight), array_or_none(bias), eps,
                                      out=array(y), return_stats=True)
    return y, tensor(mean), tensor(rstd)


def _group_norm_fake(input: Tensor, num_groups: int, weight: Optional[Tensor], bias: Optional[Tensor],
                     eps: float) -> tuple[Tensor, ...]:
    return (torch.empty_like(input), *_stats_like(input, (input.shape[0], num_groups), 2))


_group_norm.register_fake(_group_norm_fake)


@_custom_op("cnorm::_group_norm_backward")
def _group_norm_backward(grad_out: Tensor, input: Tensor, num_groups: int, mean: Tensor, rstd: Tensor,
                         weight: Optional[Tensor], bias: Optional[Tensor],
                         output_mask: list[bool]) -> tuple[Tensor, Tensor, Tensor]:
    gx = torch.empty_like(input) if output_mask[0] else _none()
    g = _backward.group_norm_backward(array(grad_out), array(input), num_groups, array(mean), array(rstd),
                                      array_or_none(weight), needs=_mask3(output_mask),
                                      out=_grad_out_arg(output_mask, gx))
    return _grad_results(gx, g, (weight, bias), output_mask)


def _group_norm_backward_fake(grad_out: Tensor, input: Tensor, num_groups: int, mean: Tensor, rstd: Tensor, weight: Optional[Tensor],
                              bias: Optional[Tensor], output_mask: list[bool]) -> tuple[Tensor, ...]:
    return tuple(_grads_like(input, (weight, bias), output_mask))


_group_norm_backward.register_fake(_group_norm_backward_fake)


def _group_norm_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    input, num_groups, weight, bias, eps = inputs
    ctx.save_for_backward(input, weight, bias, output[1], output[2])
    ctx.num_groups, ctx.eps = num_groups, eps
    ctx.mark_non_differentiable(output[1], output[2])


def _group_norm_grad(ctx: Any, grad_y: Tensor, *_: Any) -> tuple[Optional[Tensor], ...]:
    input, weight, bias, mean, rstd = ctx.saved_tensors
    need = _needs(ctx, 0, 2, 3)
    if torch.is_grad_enabled():  # create_graph=True
        gx, gw, gb = _torch_grads(lambda: F.group_norm(input, ctx.num_groups, weight, bias, ctx.eps),
                                  grad_y, (input, weight, bias), need)
        return gx, None, gw, gb, None
    gx, gw, gb = _backward_op(ctx, "_group_norm_backward")(grad_y, input, ctx.num_groups, mean, rstd, weight, bias, need)
    return (gx if need[0] else None, None, _param_grad(gw, weight, need[1]), _param_grad(gb, bias, need[2]), None)


_autograd("_group_norm", _group_norm_grad, _group_norm_setup)


# ---- batch_norm and instance_norm: per-channel statistics, running stats -------


@_custom_op("cnorm::_batch_norm")
def _batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
                weight: Optional[Tensor], bias: Optional[Tensor], training: bool, momentum: float,
                eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(y, mean, rstd, running_mean', running_var'): the statistics used
    (cnorm's return_stats) and, when training with running stats, their
    updated values (else placeholders)."""
    update = training and running_mean is not None
    work = _running_work(running_mean, running_var, update)
    y = torch.empty_like(input)
    _, mean, rstd = _norms.batch_norm(array(input), array_or_none(work[0]), array_or_none(work[1]),
                                      array_or_none(weight), array_or_none(bias), training, momentum, eps,
                                      out=array(y), return_stats=True)
    return (y, tensor(mean), tensor(rstd), *_running_results(running_mean, running_var, work, update))


def _batch_norm_fake(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor], weight: Optional[Tensor],
                     bias: Optional[Tensor], training: bool, momentum: float, eps: float) -> tuple[Tensor, ...]:
    return (torch.empty_like(input), *_stats_like(input, (input.shape[1],), 2),
            *_running_like(running_mean, running_var, training and running_mean is not None))


_batch_norm.register_fake(_batch_norm_fake)


@_custom_op("cnorm::_batch_norm_backward")
def _batch_norm_backward(grad_out: Tensor, input: Tensor, mean: Tensor, rstd: Tensor, weight: Optional[Tensor],
                         bias: Optional[Tensor], training: bool,
                         output_mask: list[bool]) -> tuple[Tensor, Tensor, Tensor]:
    """training: the statistics were the batch's (differentiated through);
    else constants (eval mode, instance norm with running stats)."""
    gx = torch.empty_like(input) if output_mask[0] else _none()
    g = _backward.batch_norm_backward(array(grad_out), array(input), array(mean), array(rstd),
                                      array_or_none(weight), training, needs=_mask3(output_mask),
                                      out=_grad_out_arg(output_mask, gx))
    return _grad_results(gx, g, (weight, bias), output_mask)


def _batch_norm_backward_fake(grad_out: Tensor, input: Tensor, mean: Tensor, rstd: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                              training: bool, output_mask: list[bool]) -> tuple[Tensor, ...]:
    return tuple(_grads_like(input, (weight, bias), output_mask))


_batch_norm_backward.register_fake(_batch_norm_backward_fake)


def _channel_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    """Shared by batch and instance norm: (input, running_mean, running_var,
    weight, bias, training/use_input_stats, momentum, eps)."""
    input, running_mean, _, weight, bias, batch_stats, _, eps = inputs
    ctx.save_for_backward(input, weight, bias, output[1], output[2])
    ctx.batch_stats = batch_stats or running_mean is None  # statistics from the input, else constants
    ctx.eps = eps
    ctx.mark_non_differentiable(*output[1:])


def _batch_norm_grad(ctx: Any, grad_y: Tensor, *_: Any) -> tuple[Optional[Tensor], ...]:
    input, weight, bias, mean, rstd = ctx.saved_tensors
    need = _needs(ctx, 0, 3, 4)
    if torch.is_grad_enabled():  # create_graph=True
        def forward() -> Tensor:
            if ctx.batch_stats:
                return F.batch_norm(input, None, None, weight, bias, True, 0.0, ctx.eps)
            return _channel_apply(input, mean, rstd, weight, bias)
        gx, gw, gb = _torch_grads(forward, grad_y, (input, weight, bias), need)
    else:
        gx, gw, gb = _backward_op(ctx, "_batch_norm_backward")(grad_y, input, mean, rstd, weight, bias,
                                                          ctx.batch_stats, need)
        gx, gw, gb = gx if need[0] else None, _param_grad(gw, weight, need[1]), _param_grad(gb, bias, need[2])
    return gx, None, None, gw, gb, None, None, None


_autograd("_batch_norm", _batch_norm_grad, _channel_setup)


@_custom_op("cnorm::_instance_norm")
def _instance_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
                   weight: Optional[Tensor], bias: Optional[Tensor], use_input_stats: bool, momentum: float,
                   eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(y, mean, rstd, running_mean', running_var'): statistics (N, C) from
    the input, or the running ones (C,) used; updated running stats when
    given with use_input_stats (else placeholders)."""
    update = use_input_stats and running_mean is not None
    work = _running_work(running_mean, running_var, update)
    y = torch.empty_like(input)
    _, mean, rstd = _norms.instance_norm(array(input), array_or_none(work[0]), array_or_none(work[1]),
                                         array_or_none(weight), array_or_none(bias), use_input_stats, momentum,
                                         eps, out=array(y), return_stats=True)
    return (y, tensor(mean), tensor(rstd), *_running_results(running_mean, running_var, work, update))


def _instance_norm_fake(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor], weight: Optional[Tensor],
                        bias: Optional[Tensor], use_input_stats: bool, momentum: float, eps: float) -> tuple[Tensor, ...]:
    shape = tuple(input.shape[:2]) if use_input_stats or running_mean is None else (input.shape[1],)
    return (torch.empty_like(input), *_stats_like(input, shape, 2),
            *_running_like(running_mean, running_var, use_input_stats and running_mean is not None))


_instance_norm.register_fake(_instance_norm_fake)


@_custom_op("cnorm::_instance_norm_backward")
def _instance_norm_backward(grad_out: Tensor, input: Tensor, mean: Tensor, rstd: Tensor, weight: Optional[Tensor],
                            bias: Optional[Tensor], output_mask: list[bool]) -> tuple[Tensor, Tensor, Tensor]:
    """Through the input statistics ((N, C) mean and rstd); instance norm
    with running stats is batch norm's eval backward (_batch_norm_backward)."""
    gx = torch.empty_like(input) if output_mask[0] else _none()
    g = _backward.instance_norm_backward(array(grad_out), array(input), array(mean), array(rstd),
                                         array_or_none(weight), needs=_mask3(output_mask),
                                         out=_grad_out_arg(output_mask, gx))
    return _grad_results(gx, g, (weight, bias), output_mask)


def _instance_norm_backward_fake(grad_out: Tensor, input: Tensor, mean: Tensor, rstd: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                                 output_mask: list[bool]) -> tuple[Tensor, ...]:
    return tuple(_grads_like(input, (weight, bias), output_mask))


_instance_norm_backward.register_fake(_instance_norm_backward_fake)


def _instance_norm_grad(ctx: Any, grad_y: Tensor, *_: Any) -> tuple[Optional[Tensor], ...]:
    input, weight, bias, mean, rstd = ctx.saved_tensors
    need = _needs(ctx, 0, 3, 4)
    if torch.is_grad_enabled():  # create_graph=True
        def forward() -> Tensor:
            if ctx.batch_stats:
                return F.instance_norm(input, None, None, weight, bias, True, 0.0, ctx.eps)
            return _channel_apply(input, mean, rstd, weight, bias)
        gx, gw, gb = _torch_grads(forward, grad_y, (input, weight, bias), need)
    else:
        if ctx.batch_stats:
            gx, gw, gb = _backward_op(ctx, "_instance_norm_backward")(grad_y, input, mean, rstd, weight, bias, need)
        else:
            gx, gw, gb = _backward_op(ctx, "_batch_norm_backward")(grad_y, input, mean, rstd, weight, bias, False, need)
        gx, gw, gb = gx if need[0] else None, _param_grad(gw, weight, need[1]), _param_grad(gb, bias, need[2])
    return gx, None, None, gw, gb, None, None, None


_autograd("_instance_norm", _instance_norm_grad, _channel_setup)


# ---- the public ops: torch.nn.functional's signatures, CompositeImplicitAutograd -------

_SCHEMAS = {
    "layer_norm": "(Tensor input, SymInt[] normalized_shape, Tensor? weight=None, Tensor? bias=None, "
                  "float eps=1e-05) -> Tensor",
    "rms_norm": "(Tensor input, SymInt[] normalized_shape, Tensor? weight=None, float? eps=None) -> Tensor",
    "group_norm": "(Tensor input, int num_groups, Tensor? weight=None, Tensor? bias=None, "
                  "float eps=1e-05) -> Tensor",
    "instance_norm": "(Tensor input, Tensor(a!)? running_mean=None, Tensor(b!)? running_var=None, "
                     "Tensor? weight=None, Tensor? bias=None, bool use_input_stats=True, float momentum=0.1, "
                     "float eps=1e-05) -> Tensor",
    "batch_norm": "(Tensor input, Tensor(a!)? running_mean, Tensor(b!)? running_var, Tensor? weight=None, "
                  "Tensor? bias=None, bool training=False, float momentum=0.1, float eps=1e-05) -> Tensor",
    "add_layer_norm": "(Tensor input, Tensor residual, SymInt[] normalized_shape, Tensor? weight=None, "
                      "Tensor? bias=None, float eps=1e-05, *, Tensor? skip_bias=None) -> (Tensor, Tensor)",
    "add_rms_norm": "(Tensor input, Tensor residual, SymInt[] normalized_shape, Tensor? weight=None, "
                    "float? eps=None, *, Tensor? skip_bias=None) -> (Tensor, Tensor)",
}


def _copy_running(rm: Optional[Tensor], rv: Optional[Tensor], new: Sequence[Tensor], update: bool) -> None:
    """The in-place update the public op's schema declares."""
    if update and rm is not None and rv is not None:
        with torch.no_grad():
            rm.copy_(new[0])
            rv.copy_(new[1])


def _rms_eps(input: Tensor, eps: Optional[float]) -> float:
    """rms_norm's eps=None as torch's: the machine epsilon of the type it
    computes in, float32 for half input (torch 2.13's rms_norm:
    opmath_type's epsilon; its docs say finfo(x.dtype), as
    cnorm.rms_norm's eps=None does, which for float16 is 8192x larger)."""
    if eps is None:
        return float(torch.finfo(torch.float32 if input.dtype in HALF_DTYPES else input.dtype).eps)
    return eps


def _bodies(forward: Callable[[str], Callable[..., Any]]) -> dict[str, Callable[..., Tensor]]:
    """The public ops' bodies, over the private forward ops that
    `forward(name)` gives (the ops, or their Python functions)."""
    ln, rms, gn, inorm, bn, aln, arms = (forward(n) for n in ("_layer_norm", "_rms_norm", "_group_norm",
                                                               "_instance_norm", "_batch_norm", "_add_layer_norm",
                                                               "_add_rms_norm"))

    def layer_norm(input: Tensor, normalized_shape: list[int], weight: Optional[Tensor] = None,
                   bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
        return ln(input, normalized_shape, weight, bias, eps)[0]

    def rms_norm(input: Tensor, normalized_shape: list[int], weight: Optional[Tensor] = None,
                 eps: Optional[float] = None) -> Tensor:
        return rms(input, normalized_shape, weight, _rms_eps(input, eps))[0]

    def group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
                   eps: float = 1e-5) -> Tensor:
        return gn(input, num_groups, weight, bias, eps)[0]

    def instance_norm(input: Tensor, running_mean: Optional[Tensor] = None, running_var: Optional[Tensor] = None,
                      weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, use_input_stats: bool = True,
                      momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
        r = inorm(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)
        _copy_running(running_mean, running_var, r[3:], use_input_stats)
        return r[0]

    def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
                   weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
                   momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
        r = bn(input, running_mean, running_var, weight, bias, training, momentum, eps)
        _copy_running(running_mean, running_var, r[3:], training)
        return r[0]

    def add_layer_norm(input: Tensor, residual: Tensor, normalized_shape: list[int], weight: Optional[Tensor] = None,
                       bias: Optional[Tensor] = None, eps: float = 1e-5, *,
                       skip_bias: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        y, s = aln(input, residual, normalized_shape, weight, bias, eps, skip_bias)
        return y, s

    def add_rms_norm(input: Tensor, residual: Tensor, normalized_shape: list[int], weight: Optional[Tensor] = None,
                     eps: Optional[float] = None, *, skip_bias: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        y, s = arms(input, residual, normalized_shape, weight, _rms_eps(input, eps), skip_bias)
        return y, s

    return {"layer_norm": layer_norm, "rms_norm": rms_norm, "group_norm": group_norm,
            "instance_norm": instance_norm, "batch_norm": batch_norm, "add_layer_norm": add_layer_norm,
            "add_rms_norm": add_rms_norm}


#: the public ops' CompositeImplicitAutograd kernels, by name
BODIES = _bodies(lambda name: getattr(torch.ops.cnorm, name))


# ---- no gradient, eager: straight to the NumPy functions -------------------------
#
# cnorm.torch's functions call these in eager mode when nothing needs a
# gradient and nothing watches the dispatcher (_functional._run): no
# dispatcher, no autograd, and no statistics for a backward (return_stats
# costs 10-25 us a call on ResNet-18's batch norms).  Float32/float64
# running statistics are updated in place by cnorm itself, as the public
# op's schema says; others (bfloat16, float16) take the private op's path
# (a float32 copy, rounded back once).


def _direct_layer_norm(input: Tensor, normalized_shape: list[int], weight: Optional[Tensor] = None,
                       bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    y = torch.empty_like(input)
    _norms.layer_norm(array(input), _ns(normalized_shape), array_or_none(weight), array_or_none(bias), eps,
                      out=array(y))
    return y


def _direct_rms_norm(input: Tensor, normalized_shape: list[int], weight: Optional[Tensor] = None,
                     eps: Optional[float] = None) -> Tensor:
    y = torch.empty_like(input)
    _norms.rms_norm(array(input), _ns(normalized_shape), array_or_none(weight), _rms_eps(input, eps), out=array(y))
    return y


def _direct_group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None,
                       bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    y = torch.empty_like(input)
    _norms.group_norm(array(input), num_groups, array_or_none(weight), array_or_none(bias), eps, out=array(y))
    return y


_IN_PLACE_STATS = (torch.float32, torch.float64)


def _updated(running_mean: Optional[Tensor], running_var: Optional[Tensor], update: bool) -> None:
    """Running stats that cnorm updated through NumPy get the version bump
    that torch's instance_norm gives them (its running-stat update is an
    in-place torch op), so that autograd detects a saved one that changed
    as it does with torch ("modified by an inplace operation")."""
    if update and running_mean is not None and running_var is not None:
        increment_version(running_mean)
        increment_version(running_var)


def _direct_instance_norm(input: Tensor, running_mean: Optional[Tensor] = None,
                          running_var: Optional[Tensor] = None, weight: Optional[Tensor] = None,
                          bias: Optional[Tensor] = None, use_input_stats: bool = True, momentum: float = 0.1,
                          eps: float = 1e-5) -> Tensor:
    if use_input_stats and running_mean is not None and running_mean.dtype not in _IN_PLACE_STATS:
        return _KERNEL_BODIES["instance_norm"](input, running_mean, running_var, weight, bias, use_input_stats,
                                               momentum, eps)
    y = torch.empty_like(input)
    _norms.instance_norm(array(input), array_or_none(running_mean), array_or_none(running_var),
                         array_or_none(weight), array_or_none(bias), use_input_stats, momentum, eps, out=array(y))
    _updated(running_mean, running_var, use_input_stats)
    return y


def _direct_batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
                       weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
                       momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    if training and running_mean is not None and running_mean.dtype not in _IN_PLACE_STATS:
        return _KERNEL_BODIES["batch_norm"](input, running_mean, running_var, weight, bias, training, momentum, eps)
    y = torch.empty_like(input)
    _norms.batch_norm(array(input), array_or_none(running_mean), array_or_none(running_var), array_or_none(weight),
                      array_or_none(bias), training, momentum, eps, out=array(y))
    # no _updated(): torch's native batch_norm writes its running stats
    # without a version bump, and a graph that saved them must not start
    # to raise where torch's does not
    return y


#: the public ops' bodies over the private ops' Python functions (no
#: dispatcher, no autograd), for the running statistics the above leave to them
_KERNEL_BODIES = _bodies(KERNELS.__getitem__)


# ---- gradients, eager: the private ops' autograd as plain autograd.Functions -------
#
# The same forward functions, setup_context and backward formulas that the
# private ops register (_autograd), as one torch.autograd.Function
# each, whose backward calls the backward ops' Python functions
# (_backward_op): a training call skips the dispatcher, the custom-op
# autograd wrapper and its argument handling, about 0.5 ms of a forward +
# backward.  cnorm.torch's functions use them in eager mode when a gradient
# is needed and nothing watches the dispatcher (_functional._run).


def _eager_function(name: str) -> Callable[..., Any]:
    kernel, (setup, grad) = KERNELS[name], _AUTOGRAD[name]

    # forward(ctx, ...), not a separate setup_context, with which apply()
    # binds the arguments to forward's signature (inspect: ~35 us a call);
    # the bodies pass every argument, so `args` is the op's whole input.
    def forward(ctx: Any, *args: Any) -> Any:
        output = kernel(*args)
        setup(ctx, args, output)
        ctx.eager = True
        return output

    fn = type(name.lstrip("_") + "_eager", (torch.autograd.Function,), {
        "forward": staticmethod(forward), "backward": staticmethod(grad)})
    return fn.apply  # type: ignore[no-any-return, attr-defined]


#: the public ops' bodies for eager calls that need a gradient
EAGER = _bodies(_eager_function)
#: the no-gradient eager path, by public op name
DIRECT: dict[str, Callable[..., Any]] = {
    **_KERNEL_BODIES, "layer_norm": _direct_layer_norm, "rms_norm": _direct_rms_norm,
    "group_norm": _direct_group_norm, "instance_norm": _direct_instance_norm, "batch_norm": _direct_batch_norm}

_LIB = torch.library.Library("cnorm", "FRAGMENT")  # kept alive: the registrations live as long as it
for _name, _fn in BODIES.items():
    _LIB.define(_name + _SCHEMAS[_name], tags=(torch.Tag.pt2_compliant_tag,))
    _LIB.impl(_name, _fn, "CompositeImplicitAutograd")

#: the public ops' names (torch.ops.cnorm.<name>) and the private ones they use
PUBLIC_OPS = tuple(BODIES)
PRIVATE_OPS = tuple(KERNELS)
