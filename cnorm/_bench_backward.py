"""Training benchmark: forward + backward of each norm, cnorm against
torch.autograd and the memory roofline, shared by benchmarks/backward.py
and the pytest-benchmark suite (benchmarks/test_bench_backward.py).

A case times one training step of the norm: the forward with its saved
statistics, then the backward (grad_x, grad_weight, grad_bias), float32.
"bwd" implementations time the backward alone.  The roofline is a plain
``y = a*x + b`` over the bytes of the step: the forward reads x and writes
y, the backward reads x and dy and writes dx (5 arrays; 3 for "bwd").
"""
import math
from dataclasses import dataclass

import numpy as np

import cnorm

EPS = 1e-5


@dataclass(frozen=True)
class Case:
    name: str
    op: str  # layer | rms | batch | group | instance
    shape: tuple  # (rows, cols) or logical (N, C, H, W)
    layout: str = "nchw"  # nhwc: stored (N, H, W, C), axis=-1
    groups: int = 0

    @property
    def id(self):
        return "-".join(self.name.replace("(", "").replace(")", "").replace(",", "x").split())

    @property
    def size(self):
        return math.prod(self.shape)


CASES = [
    Case("LN (128,768)", "layer", (128, 768)),
    Case("LN (1576,768)", "layer", (1576, 768)),
    Case("LN (8192,1024)", "layer", (8192, 1024)),
    Case("LN (2048,4096)", "layer", (2048, 4096)),
    Case("RMS (2048,4096)", "rms", (2048, 4096)),
    Case("BN NCHW (32,64,56,56)", "batch", (32, 64, 56, 56)),
    Case("BN NHWC (32,64,56,56)", "batch", (32, 64, 56, 56), "nhwc"),
    Case("GN32 NCHW (8,256,32,32)", "group", (8, 256, 32, 32), groups=32),
    Case("GN32 NHWC (8,256,32,32)", "group", (8, 256, 32, 32), "nhwc", groups=32),
    Case("IN NCHW (16,64,64,64)", "instance", (16, 64, 64, 64)),
    Case("IN NHWC (16,64,64,64)", "instance", (16, 64, 64, 64), "nhwc"),
]


def make_inputs(case, seed=0):
    """x and dy (float32, logical shape, in the case's memory layout) and
    the parameters."""
    rng = np.random.default_rng(seed)

    def arr():
        if case.layout == "nhwc":
            a = rng.standard_normal((case.shape[0],) + case.shape[2:] + (case.shape[1],), dtype=np.float32)
            return np.moveaxis(a, -1, 1)  # logical NCHW, channels-last memory
        return rng.standard_normal(case.shape, dtype=np.float32)

    c = case.shape[-1] if case.op in ("layer", "rms") else case.shape[1]
    return {"x": arr(), "dy": arr(), "w": rng.uniform(0.5, 1.5, c).astype(np.float32),
            "b": rng.standard_normal(c, dtype=np.float32)}


def _cnorm_pair(case, d):
    """(forward returning what backward needs, backward of it)."""
    x, dy, w, b = d["x"], d["dy"], d["w"], d["b"]
    k = x.shape[-1]
    if case.op == "layer":
        return (lambda: cnorm.layer_norm(x, k, w, b, EPS, return_stats=True)[1:],
                lambda s: cnorm.layer_norm_backward(dy, x, k, s[0], s[1], w, eps=EPS))
    if case.op == "rms":
        return (lambda: cnorm.rms_norm(x, k, w, EPS, return_stats=True)[1:],
                lambda s: cnorm.rms_norm_backward(dy, x, k, s[0], w, eps=EPS))
    if case.op == "batch":
        return (lambda: cnorm.batch_norm(x, None, None, w, b, True, 0.1, EPS, return_stats=True)[1:],
                lambda s: cnorm.batch_norm_backward(dy, x, s[0], s[1], w, True, eps=EPS))
    if case.op == "group":
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
        "layer": lambda: F.layer_norm(x, (k,), w, b, EPS),
        "rms": lambda: F.rms_norm(x, (k,), w, EPS),
        "batch": lambda: F.batch_norm(x, None, None, w, b, True, 0.1, EPS),
        "group": lambda: F.group_norm(x, case.groups, w, b, EPS),
        "instance": lambda: F.instance_norm(x, weight=w, bias=b, eps=EPS),
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


def _roofline(arrays):
    def make(case, d):
        from cnorm import _core

        x = np.ones(arrays * case.size // 2, np.float32)
        y = np.empty_like(x)
        return lambda: _core.roofline(x, y, 1.5, 0.5)

    return make


IMPLS = {"cnorm": impl_cnorm, "torch": impl_torch, "roofline": _roofline(5),
         "cnorm_bwd": impl_cnorm_bwd, "torch_bwd": impl_torch_bwd, "roofline_bwd": _roofline(3)}
