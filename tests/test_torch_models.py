"""cnorm.torch end to end on the architectures of examples/torch_models.py
(ResNet-18 with BatchNorm, the Johnson et al. style net with InstanceNorm,
a GroupNorm + SiLU UNet stage, a LayerNorm ViT, an RMSNorm LLaMA), tiny
sizes: eval and one training step, contiguous and channels_last, stock torch
against ``cnorm.torch.patch(model)`` with the same weights and inputs.

Outputs, every gradient (the input's included), the BatchNorm running
statistics and the weights after one SGD step agree within the tolerances
of examples/torch_e2e.py (``TOL``: relative 2-norm differences; the script
also accepts 10x torch's own difference when its weights move by one ulp,
for ResNet-18's ill-conditioned gradients at full size, but these tiny
models agree within ``TOL`` itself, 10-100x inside it).  Timing is
examples/torch_e2e.py's business, never asserted here.
"""
import importlib.util
import os

import pytest

torch = pytest.importorskip("torch")
import cnorm  # noqa: E402
import cnorm.torch  # noqa: E402  (must import when torch is there: no skip)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


E = load("torch_e2e")  # puts examples/ on sys.path, so torch_models imports too
NORMS = (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.RMSNorm)
CASES = [(name, mode, layout) for name, (_, _, conv) in E.SIZES["quick"].items() for mode in ("eval", "train")
         for layout in (("contiguous", "channels_last") if conv else ("contiguous",))]


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    cnorm.set_num_threads(2)
    yield
    torch.set_num_threads(before)
    cnorm.set_num_threads(0)


def case(name, layout):
    kwargs, shape, _ = E.SIZES["quick"][name]
    stock = E.build(name, kwargs, layout)
    return stock, E.make_input(name, kwargs, shape, layout)


def norm_modules(model):
    return [n for n, m in model.named_modules() if isinstance(m, NORMS)]


@pytest.mark.parametrize("name", list(E.SIZES["quick"]))
def test_patch_swaps_every_norm(name):
    stock, _ = case(name, "contiguous")
    names = norm_modules(stock)
    assert names, "the model has no norm layer"
    patched = cnorm.torch.patch(stock)
    assert patched is not stock
    swapped = {n for n, m in patched.named_modules() if type(m).__module__.startswith("cnorm.torch")}
    assert swapped == set(names)
    # the stock model is untouched (inplace=False), and the weights are the same
    assert not any(type(m).__module__.startswith("cnorm.torch") for m in stock.modules())
    assert stock.state_dict().keys() == patched.state_dict().keys()
    for k, v in stock.state_dict().items():
        assert torch.equal(v, patched.state_dict()[k]), k


@pytest.mark.parametrize("name,mode,layout", CASES)
def test_patched_model_agrees(name, mode, layout):
    stock, x = case(name, layout)
    patched = cnorm.torch.patch(stock)
    diffs = E.agreement(name, stock, patched, x, mode)
    assert set(diffs) == ({"out"} if mode == "eval" else {"out", "grad", "stats"} if name == "resnet18"
                          else {"out", "grad"})
    for k, (got, ulp) in diffs.items():
        assert got <= E.TOL[k], (k, got, ulp)
    if mode == "train":
        # one full step (forward, loss, backward, SGD) on each: the same weights and buffers after it
        a, b = E.Runner(name, stock, x, mode), E.Runner(name, patched, x, mode)
        a.run(), b.run()
        assert stock.state_dict().keys() == patched.state_dict().keys()
        floats = lambda m: {k: v for k, v in m.state_dict().items() if v.is_floating_point()}  # noqa: E731
        assert E.rel_all(floats(patched), floats(stock)) <= E.TOL["grad"]


def test_agreement_detects_a_changed_norm():
    """The comparison is not vacuous: a patched model whose norm weights
    moved by 1% (relative) fails it, in eval and in training."""
    stock, x = case("vit", "contiguous")
    patched = cnorm.torch.patch(stock)
    with torch.no_grad():
        for m in patched.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.mul_(1 + 1e-2)
    assert E.agreement("vit", stock, patched, x, "eval")["out"][0] > E.TOL["out"]
    train = E.agreement("vit", stock, patched, x, "train")
    assert train["out"][0] > E.TOL["out"] and train["grad"][0] > E.TOL["grad"]


def test_e2e_script_quick():
    """examples/torch_e2e.py --quick runs end to end (one model, no profile:
    the timing itself is never asserted)."""
    assert E.main(["--quick", "--models", "unet_block", "--reps", "1", "--no-profile"]) == 0
