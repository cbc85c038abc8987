"""cnorm.torch against torch: the functions (outputs, gradients, running
stats) over op x dtype x memory format x shape x train/eval, the modules in
every torch mode, state_dicts across patched and unpatched models, and
patch/unpatch/patch_report.  Skipped without torch.

Tolerances (README, "Using cnorm from PyTorch"): the largest difference
from torch divided by the largest magnitude of torch's result, per tensor.
"""
import copy

import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("cnorm.torch")

nn, F = torch.nn, torch.nn.functional

TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}
DTYPES = list(TOL)
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def _data(shape, dtype, seed, fmt=torch.contiguous_format, scale=2.0, offset=0.5):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * scale + offset).to(dtype)
    return x.contiguous(memory_format=fmt) if x.dim() == 4 else x


def assert_near(got, want, dtype, what):
    assert got.dtype == want.dtype and got.shape == want.shape, what
    scale = want.double().abs().max().clamp_min(1e-30)
    err = ((got.double() - want.double()).abs().max() / scale).item()
    assert err <= TOL[dtype], f"{what}: relative difference {err:.2e} > {TOL[dtype]:.0e}"


# ---- the functions: (name, call(f, x, params, running), x shape, param shape) -------------

def _fn_cases():
    ln = lambda f, x, p, r: f.layer_norm(x, p[0].shape, *p)  # noqa: E731
    return {
        "layer_norm": (ln, [(3, 6, 5, 4), (7, 9)], lambda s: s[-1:], 2, False),
        "layer_norm_2d": (ln, [(3, 6, 5, 4)], lambda s: s[-2:], 2, False),
        "rms_norm": (lambda f, x, p, r: f.rms_norm(x, p[0].shape, p[0]), [(3, 6, 5, 4), (7, 9)],
                     lambda s: s[-1:], 1, False),
        "group_norm": (lambda f, x, p, r: f.group_norm(x, 3, *p), [(3, 6, 5, 4), (4, 6, 7)], lambda s: s[1:2], 2,
                       False),
        "instance_norm": (lambda f, x, p, r: f.instance_norm(x, *r, *p, True), [(3, 6, 5, 4), (4, 6, 7)],
                          lambda s: s[1:2], 2, True),
        "instance_norm_eval": (lambda f, x, p, r: f.instance_norm(x, *r, *p, False), [(3, 6, 5, 4)],
                               lambda s: s[1:2], 2, True),
        "batch_norm": (lambda f, x, p, r: f.batch_norm(x, *r, *p, True, 0.2), [(3, 6, 5, 4), (8, 6), (4, 6, 7)],
                       lambda s: s[1:2], 2, True),
        "batch_norm_no_running": (lambda f, x, p, r: f.batch_norm(x, None, None, *p, True), [(3, 6, 5, 4)],
                                  lambda s: s[1:2], 2, False),
        "batch_norm_eval": (lambda f, x, p, r: f.batch_norm(x, *r, *p, False), [(3, 6, 5, 4), (8, 6)],
                            lambda s: s[1:2], 2, True),
    }


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("name", list(_fn_cases()))
def test_functions_match_torch(name, dtype, fmt, cnorm_calls):
    call, shapes, pshape, nparams, running = _fn_cases()[name]
    for i, shape in enumerate(shapes):
        x = _data(shape, dtype, i, FORMATS[fmt]).requires_grad_()
        params = [_data(pshape(shape), dtype, 10 + k + i).requires_grad_() for k in range(nparams)]
        c = shape[1]
        rs = [_data((c,), dtype, 20 + i), _data((c,), dtype, 21 + i).abs() + 0.5] if running else [None, None]
        rs_torch = [r.clone() if r is not None else None for r in rs]
        del cnorm_calls[:]
        y = call(ct, x, params, rs)
        assert cnorm_calls, "cnorm did not run"
        want = call(F, x, params, rs_torch)
        assert_near(y, want, dtype, f"y {shape}")
        if x.dim() == 4:  # the result keeps x's memory format
            assert y.is_contiguous(memory_format=FORMATS[fmt])
        for r, rt in zip(rs, rs_torch):
            if r is not None:
                assert_near(r, rt, dtype, "running stat")
        dy = _data(shape, dtype, 30 + i)
        got = torch.autograd.grad(y, [x] + params, dy)
        ref = torch.autograd.grad(want, [x] + params, dy)
        for k, (g, gr) in enumerate(zip(got, ref)):
            assert_near(g, gr, dtype, f"grad {k} {shape}")
        assert any(n.endswith("_backward") for n in cnorm_calls)


def test_mixed_dtypes_half_input_float32_params(cnorm_calls):
    """torch's mixed mode: half input, float32 weight/bias/running stats."""
    for dtype in (torch.float16, torch.bfloat16):
        x = _data((3, 6, 5, 4), dtype, 0).requires_grad_()
        w, b = _data((6,), torch.float32, 1).requires_grad_(), _data((6,), torch.float32, 2).requires_grad_()
        rm, rv = torch.zeros(6), torch.ones(6)
        rm2, rv2 = rm.clone(), rv.clone()
        y = ct.batch_norm(x, rm, rv, w, b, True)
        want = F.batch_norm(x, rm2, rv2, w, b, True)
        assert_near(y, want, dtype, "y")
        assert_near(rm, rm2, torch.float32, "running_mean")
        for g, gr in zip(torch.autograd.grad(y, (x, w, b), torch.ones_like(y) * 0.5 + x.detach()),
                         torch.autograd.grad(want, (x, w, b), torch.ones_like(y) * 0.5 + x.detach())):
            assert_near(g, gr, dtype, "grad")
    assert "batch_norm" in cnorm_calls


# ---- modules, in every torch mode ----------------------------------------------------------

MODULES = [
    (lambda: nn.BatchNorm1d(6), (8, 6)),
    (lambda: nn.BatchNorm1d(6, momentum=None), (4, 6, 5)),
    (lambda: nn.BatchNorm2d(6), (3, 6, 5, 4)),
    (lambda: nn.BatchNorm2d(6, momentum=None, affine=False), (3, 6, 5, 4)),
    (lambda: nn.BatchNorm2d(6, track_running_stats=False), (3, 6, 5, 4)),
    (lambda: nn.BatchNorm3d(6), (2, 6, 3, 4, 2)),
    (lambda: nn.InstanceNorm1d(6), (3, 6, 7)),
    (lambda: nn.InstanceNorm2d(6, affine=True, track_running_stats=True), (3, 6, 5, 4)),
    (lambda: nn.InstanceNorm2d(6, track_running_stats=True, momentum=None), (3, 6, 5, 4)),
    (lambda: nn.InstanceNorm3d(6, affine=True), (2, 6, 3, 4, 2)),
    (lambda: nn.LayerNorm((5, 4)), (3, 6, 5, 4)),
    (lambda: nn.LayerNorm(4, elementwise_affine=False), (3, 6, 5, 4)),
    (lambda: nn.LayerNorm(9, bias=False), (7, 9)),
    (lambda: nn.GroupNorm(3, 6), (3, 6, 5, 4)),
    (lambda: nn.GroupNorm(2, 6, affine=False), (4, 6, 7)),
    (lambda: nn.RMSNorm(4), (3, 6, 5, 4)),
    (lambda: nn.RMSNorm((5, 4), eps=1e-3), (3, 6, 5, 4)),
    (lambda: nn.RMSNorm(9, elementwise_affine=False), (7, 9)),
]


def _randomized(make):
    torch.manual_seed(0)
    m = make()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return m


@pytest.mark.parametrize("make,shape", MODULES, ids=[f"{m()!r}" for m, _ in MODULES])
def test_modules_match_torch(make, shape, cnorm_calls):
    """Three training steps (forward, backward, running stats and
    num_batches_tracked), then eval; the patched copy against torch's."""
    stock = _randomized(make)
    patched = ct.patch(stock)
    assert type(patched) in ct._modules.UNSWAPS and type(stock) in ct._modules.SWAPS
    fmt = torch.channels_last if len(shape) == 4 else torch.contiguous_format
    for step in range(3):
        xs = [_data(shape, torch.float32, step, fmt).requires_grad_() for _ in range(2)]
        dy = _data(shape, torch.float32, 10 + step)
        ys = [m(x) for m, x in zip((patched, stock), xs)]
        assert_near(ys[0], ys[1], torch.float32, f"train y step {step}")
        for y in ys:
            y.backward(dy)
        assert_near(xs[0].grad, xs[1].grad, torch.float32, f"grad x step {step}")
    for (name, p), q in zip(patched.named_parameters(), stock.parameters()):
        assert_near(p.grad, q.grad, torch.float32, name)
    for (name, b), c in zip(patched.named_buffers(), stock.buffers()):
        assert_near(b, c, torch.float32, name) if b.is_floating_point() else torch.equal(b, c)
    for m in (patched, stock):
        m.eval()
    x = _data(shape, torch.float32, 7, fmt)
    assert_near(patched(x), stock(x), torch.float32, "eval y")
    assert cnorm_calls


# ---- state_dicts, patch, unpatch, patch_report --------------------------------------------


class _MyBN(nn.BatchNorm2d):
    pass


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 1)
        self.bn = nn.BatchNorm2d(6)
        self.inner = nn.Sequential(nn.ReLU(), nn.ModuleDict({"gn": nn.GroupNorm(3, 6)}))
        self.norms = nn.ModuleList([nn.InstanceNorm2d(6, affine=True), nn.LayerNorm(4), nn.RMSNorm(4)])
        self.mine = _MyBN(6)
        self.sync = nn.SyncBatchNorm(6)
        self.lrn = nn.LocalResponseNorm(2)

    def forward(self, x):
        h = self.inner[1]["gn"](self.inner[0](self.bn(self.conv(x))))
        for m in self.norms:
            h = m(h)
        return self.lrn(self.mine(h))


SWAPPED = {"bn", "inner.1.gn", "norms.0", "norms.1", "norms.2"}
LEFT = {"mine": "a subclass of torch.nn.modules.batchnorm.BatchNorm2d", "sync": "SyncBatchNorm",
        "lrn": "no such kernel"}


def _trained(model, steps=2):
    """A few training steps, so that running stats and num_batches_tracked are not initial."""
    for step in range(steps):
        model(_data((2, 3, 5, 4), torch.float32, step)).sum().backward()
    return model


def test_patch_nested_and_report():
    model = _Block()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    patched = ct.patch(model)
    assert patched is not model
    assert not any(type(m) in ct._modules.UNSWAPS for m in model.modules())  # the original is untouched
    modules = dict(patched.named_modules())
    for name in SWAPPED:
        assert ct._modules.UNSWAPS.get(type(modules[name])) is type(model.get_submodule(name))
    report = {e.name: e for e in ct.patch_report(patched)}
    assert {n for n, e in report.items() if e.status == "cnorm"} == SWAPPED
    for name, why in LEFT.items():
        assert report[name].status == "left" and why in report[name].reason, report[name]
    assert {e.name for e in ct.patch_report(model) if e.status == "patchable"} == SWAPPED
    assert list(patched.state_dict()) == list(before)
    for k, v in patched.state_dict().items():
        assert torch.equal(v, before[k]), k
    back = ct.unpatch(patched)
    assert all(type(m) not in ct._modules.UNSWAPS for m in back.modules())
    assert {e.name for e in ct.patch_report(back) if e.status == "patchable"} == SWAPPED
    assert all(type(m) in ct._modules.UNSWAPS for n, m in patched.named_modules() if n in SWAPPED)


def test_patch_inplace_keeps_objects_and_hooks():
    model = _Block()
    params = list(model.parameters())
    seen = []
    model.bn.register_forward_hook(lambda m, i, o: seen.append(type(m)))
    assert ct.patch(model, inplace=True) is model
    assert list(model.parameters()) == params and all(a is b for a, b in zip(model.parameters(), params))
    model(_data((2, 3, 5, 4), torch.float32, 0))
    assert seen == [ct.BatchNorm2d]
    assert ct.unpatch(model, inplace=True) is model and type(model.bn) is nn.BatchNorm2d
    ln = nn.LayerNorm(4)
    assert type(ct.patch(ln)) is ct.LayerNorm and type(ln) is nn.LayerNorm  # the model itself a norm module


def test_lazy_module_left_until_initialized():
    lazy = nn.LazyBatchNorm2d()
    (entry,) = ct.patch_report(lazy)
    assert entry.status == "left" and "lazy" in entry.reason
    # inplace: torch cannot deep-copy uninitialized parameters
    assert type(ct.patch(lazy, inplace=True)) is nn.LazyBatchNorm2d
    lazy(_data((2, 6, 3, 3), torch.float32, 0))  # becomes a BatchNorm2d
    assert type(ct.patch(lazy)) is ct.BatchNorm2d


def test_state_dicts_load_both_ways():
    stock = _trained(_Block())
    patched = _trained(ct.patch(_Block()), steps=3)
    fresh_patched, fresh_stock = ct.patch(_Block()), _Block()
    fresh_patched.load_state_dict(stock.state_dict())  # torch -> cnorm
    fresh_stock.load_state_dict(patched.state_dict())  # cnorm -> torch
    for a, b in ((fresh_patched, stock), (fresh_stock, patched)):
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert int(fresh_stock.state_dict()["bn.num_batches_tracked"]) == 3
    x = _data((2, 3, 5, 4), torch.float32, 9)
    for m in (fresh_patched, stock):
        m.eval()
    assert_near(fresh_patched(x), stock(x), torch.float32, "eval after loading")


def test_constructed_modules_are_torchs():
    """cnorm.torch's classes construct as torch's: same parameters,
    buffers and state_dict keys."""
    for cls in ct._modules.UNSWAPS:
        args = (4,) if not issubclass(cls, nn.GroupNorm) else (2, 4)
        a, b = cls(*args), ct._modules.UNSWAPS[cls](*args)
        assert list(a.state_dict()) == list(b.state_dict()) and repr(a) == repr(b)
        assert isinstance(a, ct._modules.UNSWAPS[cls])
    model = copy.deepcopy(ct.patch(_Block()))  # deep copies and pickles keep the classes
    assert type(model.bn) is ct.BatchNorm2d
