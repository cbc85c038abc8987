"""cnorm.torch's residual add + norm: torch.ops.cnorm.add_layer_norm /
add_rms_norm and the cnorm.torch functions over them, against torch's
composite ``s = x + r (+ skip_bias)`` then F.layer_norm / F.rms_norm:
outputs and gradients (input, residual broadcast or not, skip_bias,
weight, bias, and a gradient arriving on s), gradcheck and gradgradcheck
in float64, opcheck, torch.compile (fullgraph) and torch.export, and the
fallbacks.  Skipped without torch.

Tolerances are test_torch_modules.py's (README, "Using cnorm from
PyTorch"): the largest difference from torch divided by the largest
magnitude of torch's result, per tensor."""
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("cnorm.torch")
from torch.library import opcheck  # noqa: E402

nn, F = torch.nn, torch.nn.functional
ops = torch.ops.cnorm

TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}
DTYPES = list(TOL)
_ID = lambda v: str(v).replace("torch.", "")  # noqa: E731


def _data(shape, dtype, seed, rg=False, scale=2.0, offset=0.5):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * scale + offset).to(dtype)
    return x.requires_grad_(rg)


def assert_near(got, want, dtype, what):
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    scale = want.double().abs().max().clamp_min(1e-30)
    err = ((got.double() - want.double()).abs().max() / scale).item()
    assert err <= TOL[dtype], f"{what}: relative difference {err:.2e} > {TOL[dtype]:.0e}"


def _torch_add(rms, x, r, ns, w, b, eps, skip):
    """torch's composite: what cnorm.torch's functions stand for."""
    s = x + r if skip is None else x + r + skip
    return (F.rms_norm(s, ns, w, eps) if rms else F.layer_norm(s, ns, w, b, 1e-5 if eps is None else eps)), s


def _cnorm_add(rms, x, r, ns, w, b, eps, skip):
    if rms:
        return ct.add_rms_norm(x, r, ns, w, eps, skip_bias=skip)
    return ct.add_layer_norm(x, r, ns, w, b, 1e-5 if eps is None else eps, skip_bias=skip)


# (x shape, residual shape, normalized_shape, skip_bias, weight, bias): full
# and broadcast residuals (a leading size-1 dim too), 1 and 2 normalized dims
CASES = {
    "full": ((3, 5, 16), (3, 5, 16), [16], True, True, True),
    "broadcast": ((3, 5, 16), (5, 16), [16], True, True, False),
    "broadcast_leading_one": ((2, 3, 4, 8), (1, 4, 8), [8], False, True, True),
    "one_row_residual": ((6, 12), (12,), [12], True, False, False),
    "two_dims": ((3, 4, 5), (4, 5), [4, 5], True, True, True),
    "plain": ((4, 7), (4, 7), [7], False, False, False),
}


def _case(name, dtype, rg=True, pdtype=None):
    xs, rs, ns, has_skip, has_w, has_b = CASES[name]
    pdtype = pdtype or dtype
    x, r = _data(xs, dtype, 0, rg), _data(rs, dtype, 1, rg)
    skip = _data(ns, dtype, 2, rg, 0.5, 0.0) if has_skip else None
    w = _data(ns, pdtype, 3, rg, 0.5, 1.0) if has_w else None
    b = _data(ns, pdtype, 4, rg, 0.5, 0.0) if has_b else None
    return x, r, ns, w, b, skip


@pytest.mark.parametrize("rms", [False, True], ids=["add_layer_norm", "add_rms_norm"])
@pytest.mark.parametrize("dtype", DTYPES, ids=_ID)
@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_composite(name, dtype, rms, cnorm_calls):
    """y and s as torch's (s exactly for float32/float64: each add rounds
    once in the storage type, as torch's), and every gradient, with a
    gradient on s as well as on y (s is the next block's residual)."""
    x, r, ns, w, b, skip = _case(name, dtype)
    b = None if rms else b
    leaves = [t for t in (x, r, w, b, skip) if t is not None]
    y, s = _cnorm_add(rms, x, r, ns, w, b, None, skip)
    assert cnorm_calls == ["add_rms_norm" if rms else "add_layer_norm"], cnorm_calls
    want_y, want_s = _torch_add(rms, x, r, ns, w, b, None, skip)
    assert_near(y, want_y, dtype, "y")
    if dtype in (torch.float32, torch.float64):
        assert torch.equal(s, want_s)
    else:
        assert_near(s, want_s, dtype, "s")
    dy, ds = _data(y.shape, dtype, 7), _data(s.shape, dtype, 8)
    got = torch.autograd.grad((y, s), leaves, (dy, ds))
    assert cnorm_calls[-1] == ("rms_norm_backward" if rms else "layer_norm_backward"), cnorm_calls
    ref = torch.autograd.grad((want_y, want_s), leaves, (dy, ds))
    for k, (g, gr) in enumerate(zip(got, ref)):
        assert_near(g, gr, dtype, f"grad {k}")
    # no gradient on s (it is unused): only y's
    y, s = _cnorm_add(rms, x, r, ns, w, b, None, skip)
    want_y, _ = _torch_add(rms, x, r, ns, w, b, None, skip)
    for k, (g, gr) in enumerate(zip(torch.autograd.grad(y, leaves, dy), torch.autograd.grad(want_y, leaves, dy))):
        assert_near(g, gr, dtype, f"grad {k} (y only)")


@pytest.mark.parametrize("rms", [False, True], ids=["add_layer_norm", "add_rms_norm"])
def test_y_is_the_norm_of_s_and_paths_agree(rms):
    """y is bitwise cnorm.torch's norm of s (cnorm.add_layer_norm's
    promise); the eager shortcut without gradients, the op and the
    autograd path give the same bits; only some inputs needing a gradient
    gives only those."""
    x, r, ns, w, b, skip = _case("broadcast", torch.float32, rg=False)
    y, s = _cnorm_add(rms, x, r, ns, w, b, 1e-3, skip)
    norm = ct.rms_norm(s, ns, w, 1e-3) if rms else ct.layer_norm(s, ns, w, b, 1e-3)
    assert torch.equal(y, norm)
    op = ops.add_rms_norm(x, r, ns, w, 1e-3, skip_bias=skip) if rms else ops.add_layer_norm(x, r, ns, w, b, 1e-3,
                                                                                           skip_bias=skip)
    r.requires_grad_()
    y2, s2 = _cnorm_add(rms, x, r, ns, w, b, 1e-3, skip)
    assert all(torch.equal(a, c) and torch.equal(a, d) for a, c, d in zip((y, s), op, (y2, s2)))
    (gr,) = torch.autograd.grad(y2.sum(), r)
    assert gr.shape == r.shape


def test_mixed_mode_half_input_float32_params(cnorm_calls):
    """torch's mixed mode: half x, residual and skip_bias, float32 weight/bias."""
    for dtype in (torch.float16, torch.bfloat16):
        x, r, ns, w, b, skip = _case("broadcast", dtype, pdtype=torch.float32)
        b = _data(ns, torch.float32, 4, True)
        y, s = ct.add_layer_norm(x, r, ns, w, b, skip_bias=skip)
        want_y, want_s = _torch_add(False, x, r, ns, w, b, None, skip)
        assert_near(y, want_y, dtype, "y")
        for k, (g, gr) in enumerate(zip(torch.autograd.grad((y, s), (x, r, w, b, skip), (y.detach(), s.detach())),
                                         torch.autograd.grad((want_y, want_s), (x, r, w, b, skip),
                                                             (y.detach(), s.detach())))):
            assert_near(g, gr, dtype, f"grad {k}")
    assert "add_layer_norm" in cnorm_calls


@pytest.mark.parametrize("rms", [False, True], ids=["add_layer_norm", "add_rms_norm"])
def test_gradcheck_float64(rms, cnorm_calls):
    x, r, ns, w, b, skip = _case("broadcast_leading_one", torch.float64)
    skip = _data(ns, torch.float64, 2, True)
    b = _data(ns, torch.float64, 4, True)

    def f(x, r, w, b, skip):
        return _cnorm_add(rms, x, r, ns, w, None if rms else b, None, skip)

    args = (x, r, w, b, skip)
    assert torch.autograd.gradcheck(f, args, fast_mode=True)
    assert "rms_norm_backward" in cnorm_calls if rms else "layer_norm_backward" in cnorm_calls
    # create_graph=True: torch's backward of the norm at the saved s, so a second derivative exists
    assert torch.autograd.gradgradcheck(f, args, fast_mode=True)


# ---- opcheck ----------------------------------------------------------------------


def _op_cases():
    """(op, args, kwargs): both public ops over every dtype, broadcast and
    full residuals, with and without skip_bias, requires_grad both ways;
    the private ops once each (and the norm backward ops without saved
    statistics, as the add ops call them)."""
    out = []
    for i, dtype in enumerate(DTYPES):
        rg = i % 2 == 0
        name = ("broadcast", "full", "broadcast_leading_one", "two_dims")[i]
        x, r, ns, w, b, skip = _case(name, dtype, rg)
        out.append((ops.add_layer_norm.default, (x, r, ns, w, b, 1e-5), {"skip_bias": skip}))
        out.append((ops.add_rms_norm.default, (x, r, ns, w, None), {} if i % 2 else {"skip_bias": skip}))
    x, r, ns, w, b, skip = _case("broadcast", torch.float32, True)
    out.append((ops._add_layer_norm.default, (x, r, ns, w, b, 1e-5, skip), {}))
    out.append((ops._add_rms_norm.default, (x, r, ns, None, 1e-6, None), {}))
    x, dy = _data((4, 16), torch.float32, 0), _data((4, 16), torch.float32, 1)
    w = _data((16,), torch.float32, 3)
    out.append((ops._layer_norm_backward.default, (dy, x, [16], None, None, w, None, [True, True, True], 1e-3), {}))
    out.append((ops._rms_norm_backward.default, (dy, x, [16], None, w, [True, False], 1e-6), {}))
    return out


def test_opcheck():
    for op, args, kwargs in _op_cases():
        opcheck(op, args, kwargs)


# ---- torch.compile and torch.export -------------------------------------------------


class _Block(nn.Module):
    """Two pre-norm sublayers over a residual stream h: add_layer_norm with
    skip_bias, then add_rms_norm, the stream s of one the residual of the next."""

    def __init__(self, d=8):
        super().__init__()
        self.attn, self.mlp = nn.Linear(d, d), nn.Linear(d, d)
        g = torch.Generator().manual_seed(3)
        self.w, self.b = nn.Parameter(torch.randn(d, generator=g)), nn.Parameter(torch.randn(d, generator=g))
        self.skip, self.g = nn.Parameter(torch.randn(d, generator=g)), nn.Parameter(torch.randn(d, generator=g))

    def forward(self, x, h):
        y, h = ct.add_layer_norm(self.attn(x), h, [x.shape[-1]], self.w, self.b, skip_bias=self.skip)
        z, h = ct.add_rms_norm(self.mlp(y), h, [x.shape[-1]], self.g)
        return z, h


def _block():
    torch.manual_seed(0)
    return _Block()


def _names(graphs):
    return {str(n.target) for g in graphs for n in g.graph.nodes if n.op == "call_function"}


def test_compile_fullgraph_aot():
    """One graph, no breaks, cnorm's add ops in the forward graph and the
    norm backward ops in the backward graph; outputs and grads as eager
    (the residual broadcasts, so its gradient is a reduction in the graph)."""
    from torch._dynamo.testing import AotEagerAndRecordGraphs
    from torch._dynamo.utils import counters

    x = _data((2, 3, 8), torch.float32, 5)
    h0 = _data((3, 8), torch.float32, 6)
    results = []
    backend = AotEagerAndRecordGraphs()
    torch._dynamo.reset()
    counters.clear()
    for compiled in (False, True):
        model, h = _block(), h0.clone().requires_grad_()
        run = torch.compile(model, fullgraph=True, backend=backend) if compiled else model
        z, s = run(x, h)
        (z.square().sum() + (s * s.detach()).sum()).backward()
        results.append([z.detach(), s.detach(), h.grad] + [p.grad for p in model.parameters()])
    assert not counters["graph_break"]
    assert counters["stats"]["unique_graphs"] == 1
    for k, (a, c) in enumerate(zip(*results)):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5, msg=f"result {k}")
    fw, bw = _names(backend.fw_graphs), _names(backend.bw_graphs)
    assert {"cnorm._add_layer_norm.default", "cnorm._add_rms_norm.default"} <= fw, fw
    assert {"cnorm._layer_norm_backward.default", "cnorm._rms_norm_backward.default"} <= bw, bw
    assert not any(n.startswith("aten") and "norm" in n for n in fw | bw), fw | bw


def test_export_keeps_the_ops():
    x, h = _data((2, 3, 8), torch.float32, 5), _data((3, 8), torch.float32, 6)
    model = _block()
    exported = torch.export.export(model, (x, h))
    assert {"cnorm.add_layer_norm.default", "cnorm.add_rms_norm.default"} <= _names([exported.graph_module])
    for a, c in zip(exported.module()(x, h), model(x, h)):
        torch.testing.assert_close(a, c)


# ---- fallbacks: what the ops do not take is torch's composite -------------------------


def _outcome(f):
    try:
        return f()
    except Exception as e:  # noqa: BLE001 (the error is the outcome compared)
        return e


x4, r4 = _data((2, 3, 4), torch.float32, 0), _data((2, 3, 4), torch.float32, 1)
FALLBACKS = {
    "meta device": (False, (x4.to("meta"), r4.to("meta"), [4]), {}),
    "integer input": (True, (torch.arange(24.).reshape(2, 12).long(), torch.ones(2, 12).long(), [12]), {}),
    "float32 residual, float16 x": (False, (x4.half(), r4, [4]), {}),
    "float64 skip_bias, float32 x": (True, (x4, r4, [4]), {"skip_bias": torch.ones(4, dtype=torch.float64)}),
    "bfloat16 weight, float16 x": (False, (x4.half(), r4.half(), [4], torch.ones(4, dtype=torch.bfloat16)), {}),
    "residual over a middle dim": (False, (x4, r4[:, :1], [4]), {}),
    "residual with more dims": (True, (x4, r4[None], [4]), {}),
    "residual broadcast in the row": (False, (x4, r4[..., :1], [4]), {}),
    "skip_bias broadcast": (False, (x4, r4, [4]), {"skip_bias": torch.ones(1)}),
    "residual shape torch rejects": (True, (x4, r4[:, :2], [4]), {}),
    "bad weight shape": (False, (x4, r4, [4], torch.ones(3)), {}),
    "normalized_shape not trailing": (True, (x4, r4, [3]), {}),
    "negative eps": (False, (x4, r4, [4], None, None, -1e-3), {}),
    "empty": (True, (x4[:0], r4[:0], [4]), {}),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_fallback_gives_torchs_outcome(case, cnorm_calls):
    rms, args, kwargs = FALLBACKS[case]
    got = _outcome(lambda: (ct.add_rms_norm if rms else ct.add_layer_norm)(*args, **kwargs))
    ref = _outcome(lambda: (_torch_add_f(rms))(*args, **kwargs))
    if isinstance(ref, Exception):
        assert type(got) is type(ref) and str(got) == str(ref), (got, ref)
    else:
        assert not isinstance(got, Exception), got
        for a, c in zip(got, ref):
            assert a.dtype == c.dtype and a.shape == c.shape and a.device == c.device
            if a.device.type != "meta":
                torch.testing.assert_close(a, c, equal_nan=True)
    assert not cnorm_calls


def _torch_add_f(rms):
    def f(x, r, ns, *rest, skip_bias=None):
        s = x + r if skip_bias is None else x + r + skip_bias
        return (F.rms_norm if rms else F.layer_norm)(s, ns, *rest), s
    return f


def test_forward_mode_ad_falls_back(cnorm_calls):
    import torch.autograd.forward_ad as fwAD

    x, r = _data((3, 8), torch.float64, 0), _data((3, 8), torch.float64, 1)
    with fwAD.dual_level():
        y, s = ct.add_layer_norm(fwAD.make_dual(x, torch.ones_like(x)), r, [8])
        jvp = fwAD.unpack_dual(y).tangent
    assert jvp is not None and not cnorm_calls
