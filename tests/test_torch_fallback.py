"""cnorm.torch's fallbacks to torch.nn.functional (what the ops do not take
gives torch's own result or error, and cnorm does not run), and the NumPy
API on tensors (requires grad, bfloat16, other devices).  Skipped without
torch."""
import sys

import numpy as np
import pytest

import cnorm

torch = pytest.importorskip("torch")
ct = pytest.importorskip("cnorm.torch")
from conftest import run_python  # noqa: E402

F = torch.nn.functional


def _x(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) + 0.5).to(dtype)


def _outcome(f):
    try:
        return f()
    except Exception as e:  # noqa: BLE001 (the error is the outcome compared)
        return e


def assert_same_outcome(got, want):
    if isinstance(want, Exception):
        assert type(got) is type(want) and str(got) == str(want), (got, want)
    else:
        assert not isinstance(got, Exception), got
        assert got.dtype == want.dtype and got.shape == want.shape and got.device == want.device
        if got.device.type != "meta":
            torch.testing.assert_close(got, want, equal_nan=True)


x4, w6 = _x(2, 6, 3, 4), _x(6, seed=1)
FALLBACKS = {
    # device and dtypes
    "meta device": ("layer_norm", (x4.to("meta"), (4,)), {}),
    "meta batch norm": ("batch_norm", (x4.to("meta"), None, None, None, None, True), {}),
    "integer input": ("layer_norm", (torch.arange(24).reshape(2, 12), (12,)), {}),
    "complex input": ("group_norm", (torch.ones(2, 6, 3, dtype=torch.complex64), 3), {}),
    "float64 weight, float32 x": ("layer_norm", (x4, (4,), _x(4, dtype=torch.float64)), {}),
    "float16 weight, bfloat16 x": ("group_norm", (x4.bfloat16(), 2, w6.half()), {}),
    # shapes torch rejects
    "bad weight shape": ("layer_norm", (x4, (4,), _x(5)), {}),
    "normalized_shape not trailing": ("rms_norm", (x4, (3,)), {}),
    "groups do not divide C": ("group_norm", (x4, 4), {}),
    "bad running stat shape": ("batch_norm", (x4, torch.zeros(5), torch.ones(5)), {}),
    "one value per channel": ("batch_norm", (_x(1, 6), None, None, None, None, True), {}),
    "instance norm of one value": ("instance_norm", (_x(2, 6, 1),), {}),
    "eval without running stats": ("batch_norm", (x4, None, None), {}),
    # values cnorm rejects and torch takes
    "negative eps": ("layer_norm", (x4, (4,), None, None, -1e-3), {}),
    "momentum > 1": ("batch_norm", (x4, torch.zeros(6), torch.ones(6), None, None, True, 1.5), {}),
    "empty batch": ("group_norm", (_x(0, 6, 3), 3), {}),
    "empty group": ("layer_norm", (_x(3, 0), (0,)), {}),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_fallback_gives_torchs_outcome(case, cnorm_calls):
    name, args, kwargs = FALLBACKS[case]

    def run(module):
        fresh = [a.clone() if isinstance(a, torch.Tensor) and a.device.type == "cpu" else a for a in args]
        return _outcome(lambda: getattr(module, name)(*fresh, **kwargs))

    assert_same_outcome(run(ct), run(F))
    assert not cnorm_calls


def test_forward_mode_ad_and_vmap_fall_back(cnorm_calls):
    import torch.autograd.forward_ad as fwAD

    x, t = _x(3, 6, 4), _x(3, 6, 4, seed=2)
    with fwAD.dual_level():
        got = fwAD.unpack_dual(ct.layer_norm(fwAD.make_dual(x, t), (4,))).tangent
        want = fwAD.unpack_dual(F.layer_norm(fwAD.make_dual(x, t), (4,))).tangent
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.func.vmap(lambda a: ct.group_norm(a, 3))(x.unsqueeze(1).expand(3, 2, 6, 4)),
                               torch.func.vmap(lambda a: F.group_norm(a, 3))(x.unsqueeze(1).expand(3, 2, 6, 4)))
    assert not cnorm_calls
    ct.layer_norm(x, (4,))  # and outside them, cnorm runs
    assert cnorm_calls == ["layer_norm"]


def test_autocast_and_torch_function_subclasses_fall_back(cnorm_calls):
    x = _x(3, 6, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_same_outcome(ct.layer_norm(x, (4,)), F.layer_norm(x, (4,)))

    class Logged(torch.Tensor):
        seen = []

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            cls.seen.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    y = ct.rms_norm(x.as_subclass(Logged), (4,))
    assert F.rms_norm in Logged.seen and type(y) is Logged
    assert not cnorm_calls


def test_modules_fall_back_on_meta():
    model = ct.patch(torch.nn.Sequential(torch.nn.BatchNorm2d(6), torch.nn.GroupNorm(3, 6))).to("meta")
    y = model(torch.empty(2, 6, 3, 4, device="meta"))
    assert y.device.type == "meta" and y.shape == (2, 6, 3, 4)


# ---- the NumPy API on tensors -----------------------------------------------------


def test_numpy_api_takes_tensors_that_require_grad():
    x = _x(3, 6, 4).requires_grad_()
    w = torch.nn.Parameter(_x(6, seed=1))
    want = cnorm.group_norm(x.detach().numpy(), 3, w.detach().numpy())
    got = cnorm.group_norm(x, 3, w)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, want)
    gx = cnorm.group_norm_backward(torch.ones(3, 6, 4, requires_grad=True), x, 3, weight=w).x
    np.testing.assert_array_equal(gx, cnorm.group_norm_backward(np.ones((3, 6, 4), np.float32),
                                                                 x.detach().numpy(), 3, weight=w.detach().numpy()).x)


def test_numpy_api_bfloat16_tensors():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = _x(3, 8, dtype=torch.bfloat16)
    y = cnorm.layer_norm(x, 8)
    assert y.dtype == ml_dtypes.bfloat16
    bits = x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(y.view(np.uint16), cnorm.layer_norm(bits, 8).view(np.uint16))


def test_numpy_api_errors_point_to_cnorm_torch(monkeypatch):
    with pytest.raises(TypeError, match=r"x: a torch tensor on device meta .*cnorm\.torch"):
        cnorm.layer_norm(torch.empty(3, 4, device="meta"), 4)
    with pytest.raises(TypeError, match=r"weight: a torch tensor on device meta"):
        cnorm.layer_norm(np.ones((3, 4)), 4, torch.empty(4, device="meta"))
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # as if not installed
    with pytest.raises(TypeError, match=r"x: a bfloat16 tensor needs ml_dtypes .*cnorm\.torch"):
        cnorm.layer_norm(_x(3, 4, dtype=torch.bfloat16), 4)


def test_bfloat16_without_ml_dtypes(tmp_path):
    """cnorm.torch's bfloat16 needs no ml_dtypes (its bits go as cnorm's
    private BF16_BITS dtype): forward, backward, running stats and
    rms_norm's default eps, in an interpreter where ml_dtypes cannot load."""
    code = """
import sys
sys.modules["ml_dtypes"] = None  # import ml_dtypes raises ImportError
import torch, cnorm.torch as ct
F = torch.nn.functional
g = torch.Generator().manual_seed(0)
x = (torch.randn(3, 6, 5, 4, generator=g) + 0.5).bfloat16().contiguous(memory_format=torch.channels_last)
w, b = torch.randn(6, generator=g).bfloat16(), torch.randn(6, generator=g).bfloat16()
rm, rv = torch.zeros(6, dtype=torch.bfloat16), torch.ones(6, dtype=torch.bfloat16)
rm2, rv2 = rm.clone(), rv.clone()
for got, want in [(ct.batch_norm(x, rm, rv, w, b, True), F.batch_norm(x, rm2, rv2, w, b, True)), (rm, rm2), (rv, rv2),
                  (ct.rms_norm(x, (4,)), F.rms_norm(x, (4,))), (ct.group_norm(x, 3, w, b), F.group_norm(x, 3, w, b))]:
    assert got.dtype == torch.bfloat16
    assert ((got.float() - want.float()).abs().max() / want.float().abs().max()).item() < 0.05
xr, r = x.float().requires_grad_(), torch.randn(3, 6, 5, 4, generator=g)
(gx,) = torch.autograd.grad((ct.layer_norm(xr.bfloat16(), (4,), w[:4]).float() * r).sum(), xr)
(gx2,) = torch.autograd.grad((F.layer_norm(xr.bfloat16(), (4,), w[:4]).float() * r).sum(), xr)
assert ((gx - gx2).abs().max() / gx2.abs().max()).item() < 0.05  # test_torch_modules' bfloat16 tolerance
assert sys.modules["ml_dtypes"] is None
print("ok")
"""
    out = run_python(code, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
