"""The training-step cases of cnorm/_bench.py (ops "step_*"): the forward
with its saved statistics, then the backward (grad_x, grad_weight,
grad_bias), float32; cnorm against torch.autograd.  benchmarks/backward.py
also times the backward alone ("*_bwd") against its own roofline: a
``y = a*x + b`` over the backward's traffic, read x and dy and write dx
(1.5 copy-equivalents; batch norm reads them twice: 2.5).
"""
import math

import numpy as np

import cnorm

EPS = 1e-5


def make_inputs(case, seed=0):
    """x and dy (float32, logical shape, in the case's memory layout) and
    the parameters."""
    rng = np.random.default_rng(seed)

    def arr():
        if case.layout == "nhwc":
            a = rng.standard_normal((case.shape[0],) + case.shape[2:] + (case.shape[1],), dtype=np.float32)
            return np.moveaxis(a, -1, 1)  # logical NCHW, channels-last memory
        return rng.standard_normal(case.shape, dtype=np.float32)

    c = case.shape[-1] if case.op in ("step_layer", "step_rms") else case.shape[1]
    return {"x": arr(), "dy": arr(), "w": rng.uniform(0.5, 1.5, c).astype(np.float32),
            "b": rng.standard_normal(c, dtype=np.float32)}


def _cnorm_pair(case, d):
    """(forward returning what backward needs, backward of it)."""
    x, dy, w, b = d["x"], d["dy"], d["w"], d["b"]
    k = x.shape[-1]
    if case.op == "step_layer":
        return (lambda: cnorm.layer_norm(x, k, w, b, EPS, return_stats=True)[1:],
                lambda s: cnorm.layer_norm_backward(dy, x, k, s[0], s[1], w, eps=EPS))
    if case.op == "step_rms":
        return (lambda: cnorm.rms_norm(x, k, w, EPS, return_stats=True)[1:],
                lambda s: cnorm.rms_norm_backward(dy, x, k, s[0], w, eps=EPS))
    if case.op == "step_batch":
        return (lambda: cnorm.batch_norm(x, None, None, w, b, True, 0.1, EPS, return_stats=True)[1:],
                lambda s: cnorm.batch_norm_backward(dy, x, s[0], s[1], w, True, eps=EPS))
    if case.op == "step_group":
        return (lambda: cnorm.group_norm(x, case.groups, w, b, EPS, return_stats=True)[1:],
                lambda s: cnorm.group_norm_backward(dy, x, case.groups, s[0], s[1], w, eps=EPS))
    return (lambda: cnorm.instance_norm(x, None, None, w, b, eps=EPS, return_stats=True)[1:],
            lambda s: cnorm.instance_norm_backward(dy, x, s[0], s[1], w, eps=EPS))


def impl_cnorm(case, d):
    fwd, bwd = _cnorm_pair(case, d)
    return lambda: bwd(fwd())


def impl_cnorm_bwd(case, d):
    fwd, bwd = _cnorm_pair(case, d)
    saved = fwd()
    return lambda: bwd(saved)


def _torch_graph(case, d):
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(d["x"]).requires_grad_()  # channels_last memory for nhwc
    dy = torch.from_numpy(np.ascontiguousarray(d["dy"]) if case.layout == "nchw" else d["dy"])
    w = torch.from_numpy(d["w"]).requires_grad_()
    b = torch.from_numpy(d["b"]).requires_grad_()
    k = x.shape[-1]
    ops = {
        "step_layer": lambda: F.layer_norm(x, (k,), w, b, EPS),
        "step_rms": lambda: F.rms_norm(x, (k,), w, EPS),
        "step_batch": lambda: F.batch_norm(x, None, None, w, b, True, 0.1, EPS),
        "step_group": lambda: F.group_norm(x, case.groups, w, b, EPS),
        "step_instance": lambda: F.instance_norm(x, weight=w, bias=b, eps=EPS),
    }
    return ops[case.op], dy, (x, w, b)


def impl_torch(case, d):
    try:
        import torch
    except ImportError:
        return None
    fwd, dy, leaves = _torch_graph(case, d)

    def step():
        for t in leaves:
            t.grad = None
        torch.autograd.backward(fwd(), dy)

    return step


def impl_torch_bwd(case, d):
    try:
        import torch
    except ImportError:
        return None
    fwd, dy, leaves = _torch_graph(case, d)
    y = fwd()

    def step():
        for t in leaves:
            t.grad = None
        torch.autograd.backward(y, dy, retain_graph=True)

    return step


def impl_roofline_bwd(case, d):
    from cnorm import _core

    copies = 2.5 if case.op == "step_batch" else 1.5
    x = np.ones(int(copies * math.prod(case.shape)), np.float32)
    y = np.empty_like(x)
    return lambda: _core.roofline(x, y, 1.5, 0.5)


# the backward alone (benchmarks/backward.py); the whole step is _bench's cnorm, torch, roofline
BWD_IMPLS = {"cnorm_bwd": impl_cnorm_bwd, "torch_bwd": impl_torch_bwd, "roofline_bwd": impl_roofline_bwd}
