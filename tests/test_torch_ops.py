"""cnorm.torch's custom operators: torch.library.opcheck, gradcheck (and
gradgradcheck: the double backward goes through torch) in float64,
torch.compile (fullgraph, no graph breaks, the ops in the forward and
backward graphs) and torch.export.  Skipped without torch.

opcheck is slow (~0.5 s a call), so the cases cover each op once per dtype,
each memory format and requires_grad both ways across them, rather than
the full product."""
import os

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("cnorm.torch")
from torch.library import opcheck  # noqa: E402

nn, F = torch.nn, torch.nn.functional
ops = torch.ops.cnorm

# (dtype, memory format, requires_grad): every dtype, both formats, both requires_grad
SETTINGS = [
    (torch.float32, torch.contiguous_format, True),
    (torch.float64, torch.channels_last, False),
    (torch.float16, torch.channels_last, True),
    (torch.bfloat16, torch.contiguous_format, True),
]


def _x(shape, dtype, fmt=torch.contiguous_format, rg=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 2 + 0.5).to(dtype)
    return x.to(memory_format=fmt).requires_grad_(rg)


def _p(c, dtype, rg, seed):
    return _x((c,) if isinstance(c, int) else c, dtype, rg=rg, seed=seed)


def _public_cases(dtype, fmt, rg):
    """(op, args) for every public op, on a (2, 4, 3, 5) x."""
    x = _x((2, 4, 3, 5), dtype, fmt, rg)
    w, b = _p(4, dtype, rg, 1), _p(4, dtype, rg, 2)
    wl, bl = _p((3, 5), dtype, rg, 3), _p((3, 5), dtype, rg, 4)
    rm, rv = torch.zeros(4, dtype=dtype), torch.ones(4, dtype=dtype)
    return [
        (ops.layer_norm.default, (x, [3, 5], wl, bl, 1e-5)),
        (ops.rms_norm.default, (x, [5], wl[0], None)),
        (ops.group_norm.default, (x, 2, w, b, 1e-5)),
        (ops.instance_norm.default, (x, rm.clone(), rv.clone(), w, b, True, 0.1, 1e-5)),
        (ops.instance_norm.default, (x, rm + 0.5, rv * 2, w, None, False, 0.1, 1e-5)),
        (ops.batch_norm.default, (x, rm.clone(), rv.clone(), w, b, True, 0.1, 1e-5)),
        (ops.batch_norm.default, (x, rm + 0.5, rv * 2, None, b, False, 0.1, 1e-5)),
    ]


@pytest.mark.parametrize("dtype,fmt,rg", SETTINGS, ids=lambda v: str(v).replace("torch.", ""))
def test_opcheck_public(dtype, fmt, rg):
    for op, args in _public_cases(dtype, fmt, rg):
        opcheck(op, args)


def _backward_cases():
    """The private backward ops, directly (a grad_out of another layout
    than x's included); masks with gradients left out."""
    x = _x((2, 4, 3, 5), torch.float32, torch.channels_last)
    dy = _x((2, 4, 3, 5), torch.float32, seed=9)
    w, b = _p(4, torch.float32, False, 1), _p(4, torch.float32, False, 2)
    wl = _p(5, torch.float32, False, 3)
    _, m, r = ops._layer_norm(x, [5], wl, None, 1e-5)
    _, rr = ops._rms_norm(x, [5], wl, None)
    _, gm, gr = ops._group_norm(x, 2, w, b, 1e-5)
    _, im, ir, _, _ = ops._instance_norm(x, None, None, w, b, True, 0.1, 1e-5)
    _, bm, br, _, _ = ops._batch_norm(x, None, None, w, b, True, 0.1, 1e-5)
    return [
        (ops._layer_norm_backward.default, (dy, x, [5], m, r, wl, None, [True, True, False])),
        (ops._rms_norm_backward.default, (dy, x, [5], rr, wl, [False, True])),
        (ops._group_norm_backward.default, (dy, x, 2, gm, gr, w, b, [True, False, True])),
        (ops._instance_norm_backward.default, (dy, x, im, ir, None, b, [True, False, True])),
        (ops._batch_norm_backward.default, (dy, x, bm, br, w, b, True, [True, True, True])),
        (ops._batch_norm_backward.default, (dy, x, bm, br, w, None, False, [True, True, False])),
    ]


def test_opcheck_private():
    for op, args in _backward_cases():
        opcheck(op, args)
    x = _x((3, 4, 6), torch.float32, rg=True)
    w = _p(4, torch.float32, True, 1)
    opcheck(ops._layer_norm.default, (x, [6], None, None, 1e-5))
    opcheck(ops._rms_norm.default, (x, [4, 6], None, 1e-6))
    opcheck(ops._group_norm.default, (x, 2, w, None, 1e-5))
    opcheck(ops._instance_norm.default, (x, torch.zeros(4), torch.ones(4), w, None, True, 0.3, 1e-3))
    opcheck(ops._batch_norm.default, (x, torch.zeros(4), torch.ones(4), None, w, True, 0.3, 1e-3))


# ---- gradients in float64 ----------------------------------------------------------


def _grad_fns():
    """(name, f(x, w, b), x shape): every op and mode of the wrappers."""
    rm, rv = torch.rand(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64) + 0.5
    return [
        ("layer_norm", lambda x, w, b: ct.layer_norm(x, [4, 5], w, b), (3, 4, 5), (4, 5)),
        ("rms_norm", lambda x, w, b: ct.rms_norm(x, [5], w[0]), (3, 4, 5), (4, 5)),
        ("group_norm", lambda x, w, b: ct.group_norm(x, 2, w, b), (2, 4, 3, 2), 4),
        ("instance_norm", lambda x, w, b: ct.instance_norm(x, None, None, w, b), (2, 4, 3, 2), 4),
        ("instance_norm_running", lambda x, w, b: ct.instance_norm(x, rm, rv, w, b, False), (2, 4, 3, 2), 4),
        ("batch_norm_train", lambda x, w, b: ct.batch_norm(x, None, None, w, b, True), (3, 4, 3, 2), 4),
        ("batch_norm_eval", lambda x, w, b: ct.batch_norm(x, rm, rv, w, b, False), (3, 4, 3, 2), 4),
    ]


@pytest.mark.parametrize("name,f,shape,pshape", _grad_fns(), ids=[c[0] for c in _grad_fns()])
def test_gradcheck_float64(name, f, shape, pshape, cnorm_calls):
    x = _x(shape, torch.float64, rg=True)
    w, b = _p(pshape, torch.float64, True, 1), _p(pshape, torch.float64, True, 2)
    assert torch.autograd.gradcheck(f, (x, w, b), fast_mode=True)
    assert any(c.endswith("_backward") for c in cnorm_calls), "the backward did not run through cnorm"
    # create_graph=True: torch's own backward, so a second derivative exists
    assert torch.autograd.gradgradcheck(f, (x, w, b), fast_mode=True)


def test_double_backward_is_torchs():
    x = _x((2, 4, 3, 2), torch.float64, rg=True)
    w = _p(4, torch.float64, True, 1)
    y = ct.group_norm(x, 2, w)
    (gx,) = torch.autograd.grad((y * y.detach()).sum(), x, create_graph=True)
    x2 = x.detach().requires_grad_()
    y2 = F.group_norm(x2, 2, w)
    (gx2,) = torch.autograd.grad((y2 * y2.detach()).sum(), x2, create_graph=True)
    torch.testing.assert_close(gx, gx2)
    assert gx.grad_fn is not None
    torch.testing.assert_close(torch.autograd.grad(gx.sum(), x)[0], torch.autograd.grad(gx2.sum(), x2)[0])


# ---- torch.compile and torch.export ------------------------------------------------


class _Net(nn.Module):
    """conv-BN-ReLU, GN + SiLU, LN, RMSNorm, instance norm (last: before
    an LN over the width its bias would have no gradient)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.gn = nn.GroupNorm(4, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.ln = nn.LayerNorm(6)
        self.rms = nn.RMSNorm(6)

    def forward(self, x):
        h = F.silu(self.gn(torch.relu(self.bn(self.conv(x)))))
        return self.inorm(self.rms(self.ln(h)))


def _net():
    torch.manual_seed(0)
    net = _Net()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return net


def _step(model, x, r):
    y = model(x)
    (y * r).sum().backward()
    return y.detach()


def _compare_models(a, b, tol):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, **tol, msg=name)
    for (name, s), t in zip(a.named_buffers(), b.buffers()):
        torch.testing.assert_close(s, t, **tol, msg=name)


def _names(graphs):
    return {str(n.target) for g in graphs for n in g.graph.nodes if n.op == "call_function"}


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "channels_last"])
def test_compile_fullgraph_aot(fmt):
    """The fake kernels and the autograd formulas trace: one graph, no
    breaks, cnorm's forward ops in the forward graph and its backward ops
    in the backward graph; outputs, grads and running stats as eager."""
    from torch._dynamo.testing import AotEagerAndRecordGraphs
    from torch._dynamo.utils import counters

    x = _x((2, 3, 6, 6), torch.float32, fmt, seed=5)
    r = _x((2, 8, 6, 6), torch.float32, seed=6)
    eager, stock = ct.patch(_net()), _net()
    compiled_model = ct.patch(_net())
    torch._dynamo.reset()
    counters.clear()
    backend = AotEagerAndRecordGraphs()
    compiled = torch.compile(compiled_model, fullgraph=True, backend=backend)
    for _ in range(2):  # the second call reuses the graph (running stats changed)
        y = _step(compiled, x, r)
        ye, ys = _step(eager, x, r), _step(stock, x, r)
    assert not counters["graph_break"]
    assert counters["stats"]["unique_graphs"] == 1
    torch.testing.assert_close(y, ye, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, ys, rtol=1e-4, atol=1e-4)
    _compare_models(compiled_model, eager, dict(rtol=1e-4, atol=1e-4))
    _compare_models(compiled_model, stock, dict(rtol=1e-3, atol=1e-3))
    fw, bw = _names(backend.fw_graphs), _names(backend.bw_graphs)
    assert {"cnorm._batch_norm.default", "cnorm._group_norm.default", "cnorm._instance_norm.default",
            "cnorm._layer_norm.default", "cnorm._rms_norm.default"} <= fw, fw
    assert {"cnorm._batch_norm_backward.default", "cnorm._group_norm_backward.default",
            "cnorm._instance_norm_backward.default", "cnorm._layer_norm_backward.default",
            "cnorm._rms_norm_backward.default"} <= bw, bw
    assert not any(n.startswith("aten.native_batch_norm") or "layer_norm" in n and n.startswith("aten")
                   for n in fw | bw)


@pytest.mark.skipif(not os.environ.get("CNORM_TEST_INDUCTOR"), reason="set CNORM_TEST_INDUCTOR=1: inductor "
                    "compiles C++ (36 s with a cold cache on 2 cores; CI covers the graphs with aot_eager)")
def test_compile_inductor_train_step():
    """The default backend: one training step as eager (outputs, grads,
    running stats)."""
    x = _x((2, 3, 6, 6), torch.float32, seed=5)
    r = _x((2, 8, 6, 6), torch.float32, seed=6)
    compiled_model, eager = ct.patch(_net()), ct.patch(_net())
    torch._dynamo.reset()
    y = _step(torch.compile(compiled_model, fullgraph=True), x, r)
    torch.testing.assert_close(y, _step(eager, x, r), rtol=1e-5, atol=1e-5)
    _compare_models(compiled_model, eager, dict(rtol=1e-4, atol=1e-4))


def test_export_keeps_the_ops():
    x = _x((2, 3, 6, 6), torch.float32, seed=5)
    model = ct.patch(_net()).eval()
    exported = torch.export.export(model, (x,))
    names = _names([exported.graph_module])
    assert {"cnorm.batch_norm.default", "cnorm.group_norm.default", "cnorm.instance_norm.default",
            "cnorm.layer_norm.default", "cnorm.rms_norm.default"} <= names, names
    torch.testing.assert_close(exported.module()(x), model(x))


def test_jit_trace_records_the_ops():
    """torch.jit.trace sees the ops (the JIT tracer watches the dispatcher,
    so the calls take the ops' bodies, not the NumPy shortcut, which it
    would record as constants): the trace holds them (the private ops the
    public ones decompose into) and runs another input as eager torch does."""
    x, x2 = _x((2, 3, 6, 6), torch.float32, seed=5), _x((2, 3, 6, 6), torch.float32, seed=7)
    model, stock = ct.patch(_net()).eval(), _net().eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, (x,), check_trace=False)
    kinds = {n.kind() for n in traced.inlined_graph.nodes()}
    assert {"cnorm::_batch_norm", "cnorm::_group_norm", "cnorm::_instance_norm", "cnorm::_layer_norm",
            "cnorm::_rms_norm"} <= kinds, kinds
    with torch.no_grad():
        torch.testing.assert_close(traced(x2), stock(x2), rtol=1e-4, atol=1e-4)


def _shortcut_cases(dtype, stats_dtype):
    """(name, args(running stats), running stats) for the public norm ops
    without gradients: running stats of stats_dtype, updated in training."""
    x = _x((3, 4, 5, 2), dtype, torch.channels_last)
    w, b = _p(4, dtype, False, 1), _p(4, dtype, False, 2)
    rn = _x((3, 4, 5, 10), dtype, seed=3)
    wl, wr = _p((5, 10), dtype, False, 4), _p(10, dtype, False, 5)

    def run():
        return [torch.zeros(4, dtype=stats_dtype), torch.ones(4, dtype=stats_dtype) * 2]

    def none():
        return []

    return [
        ("batch_norm", lambda r: (x, *r, w, b, True, 0.3), run),
        ("batch_norm", lambda r: (x, *r, w, b, False, 0.3), run),
        ("instance_norm", lambda r: (x, *r, w, b, True, 0.3), run),
        ("instance_norm", lambda r: (x, *r, None, None, False), run),
        ("instance_norm", lambda r: (x, None, None, None, None, True, 0.3), none),
        ("group_norm", lambda r: (x, 2, w, b), none),
        ("layer_norm", lambda r: (rn, [5, 10], wl), none),
        ("rms_norm", lambda r: (rn, [10], wr), none),
        ("rms_norm", lambda r: (rn, [10], None, 1e-3), none),
    ]


@pytest.mark.parametrize("dtype,stats_dtype", [(torch.float32, torch.float32), (torch.float64, torch.float64),
                                               (torch.bfloat16, torch.float32), (torch.bfloat16, torch.bfloat16),
                                               (torch.float16, torch.float16)])
def test_eager_shortcut_same_as_the_op(dtype, stats_dtype):
    """Without gradients, eager calls skip the dispatcher (_functional._run:
    _ops.DIRECT, which lets cnorm update float32/float64 running stats in
    place) and give the op's results bitwise, running stats included; a
    TorchDispatchMode still sees the op."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Seen(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    for name, args, run in _shortcut_cases(dtype, stats_dtype):
        state, copies = run(), [run(), run()]
        y = getattr(ct, name)(*args(copies[0]))
        with Seen() as seen:
            y2 = getattr(ct, name)(*args(copies[1]))
        assert f"cnorm._{name}.default" in seen.ops, (name, seen.ops)
        y3 = getattr(ops, name)(*args(state))
        assert torch.equal(y, y2) and torch.equal(y, y3), name
        assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(copies[0], copies[1], state)), name
        assert all(a.dtype == stats_dtype for a in copies[0]), name
        if state and args(state)[5]:  # training / use_input_stats: the stats moved
            assert not torch.equal(state[0], run()[0]), name


def _grad_cases():
    """(name, args(x, w, b), x's shape, weight shape) for the ops' autograd."""
    return [
        ("batch_norm", lambda x, w, b: (x, torch.zeros(4), torch.ones(4), w, b, True, 0.3), (3, 4, 5, 2), (4,)),
        ("instance_norm", lambda x, w, b: (x, None, None, w, b), (3, 4, 5, 2), (4,)),
        ("group_norm", lambda x, w, b: (x, 2, w, b), (3, 4, 5, 2), (4,)),
        ("layer_norm", lambda x, w, b: (x, [10], w, b), (3, 4, 10), (10,)),
        ("rms_norm", lambda x, w, b: (x, [10], w), (3, 4, 10), (10,)),
        ("add_layer_norm", lambda x, w, b: (x, x * 0.5, [10], w, b), (3, 4, 10), (10,)),
        ("add_rms_norm", lambda x, w, b: (x, x * 0.5, [10], w), (3, 4, 10), (10,)),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_eager_autograd_same_as_the_op(dtype):
    """With gradients, eager calls run the private ops' autograd as plain
    autograd.Functions (_ops.EAGER): outputs and gradients bitwise those of
    the op through the dispatcher (the custom op's autograd)."""
    for name, args, shape, pshape in _grad_cases():
        got = []
        for fn in (getattr(ct, name), getattr(ops, name)):
            x = _x(shape, dtype, torch.channels_last if len(shape) == 4 else torch.contiguous_format, seed=7)
            x.requires_grad_(True)
            w, b = _p(pshape, dtype, True, 8), _p(pshape, dtype, True, 9)
            out = fn(*args(x, w, b))
            outs = out if isinstance(out, tuple) else (out,)
            sum((o.float() * torch.linspace(-1, 2, o.numel()).view(o.shape)).sum() for o in outs).backward()
            got.append([*outs, x.grad, w.grad] + ([b.grad] if b.grad is not None else []))
        assert len(got[0]) == len(got[1]), name
        for a, c in zip(*got):
            assert torch.equal(a, c), name


@pytest.mark.parametrize("name", ["batch_norm", "instance_norm"])
def test_running_stats_version_as_torch(name):
    """A running stat updated without gradients (cnorm writes it through
    NumPy) gets the version bump torch's function gives it: instance_norm's
    update is an in-place torch op (a graph that saved the stat refuses to
    backward), torch's native batch_norm writes without one."""
    x = _x((3, 4, 5, 2), torch.float32)
    moved = []
    for fn in (getattr(F, name), getattr(ct, name)):
        rm, rv = torch.zeros(4), torch.ones(4)
        p = torch.ones(4, requires_grad=True)
        loss = (rm * p).sum() + (rv * p).sum()  # saves rm and rv
        v = rm._version, rv._version
        with torch.no_grad():
            fn(x, rm, rv, None, None, True, 0.3)
        assert not torch.equal(rm, torch.zeros(4))
        moved.append((rm._version > v[0], rv._version > v[1]))
        if moved[-1][0]:
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                loss.backward()
        else:
            loss.backward()
    assert moved[0] == moved[1] == ((name == "instance_norm"),) * 2
