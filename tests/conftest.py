import subprocess
import sys

import numpy as np
import pytest

import cnorm


@pytest.fixture(params=cnorm.available_isas())
def isa(request):
    """Run a test once per ISA path available on this machine."""
    before = cnorm.get_isa()
    cnorm.set_isa(request.param)
    yield request.param
    cnorm.set_isa(before)


@pytest.fixture
def threads():
    """Restore the thread setting after a test changes it."""
    yield
    cnorm.set_num_threads(0)


@pytest.fixture
def restore_config():
    """Restore the ISA and thread settings after a test (a module uses it
    for every test with pytestmark = pytest.mark.usefixtures(...))."""
    isa, threads = cnorm.get_isa(), cnorm.get_num_threads()
    yield
    cnorm.set_isa(isa)
    cnorm.set_num_threads(0)
    assert cnorm.get_num_threads() == threads


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def tolerance(dtype):
    """(rtol, atol) for a result of `dtype` against the float64 reference."""
    dtype = np.dtype(dtype)
    if dtype == np.float64 or dtype.kind in "biu":
        return 1e-12, 1e-12
    if dtype == np.float32:
        return 1e-5, 2e-5
    return 8e-3, 8e-3  # float16 / bfloat16 storage


def assert_close(got, want, dtype):
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=rtol, atol=atol)


def run_python(code, cwd, env=None):
    """`python -c code` in a fresh interpreter started in `cwd` (give the
    test's tmp_path), so that it imports the cnorm under test.  From the
    checkout root, `-c` would put the source tree first on sys.path: after a
    plain `pip install .` that tree has no compiled extension."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def cnorm_calls(monkeypatch):
    """The names of cnorm's NumPy front-door functions (forward and
    backward) called during a test, in order: cnorm.torch's tests check
    with it that an op ran through cnorm, or that a call fell back to torch."""
    from cnorm import _backward, _fused, _norms

    calls = []
    for module in (_norms, _backward, _fused):
        for name in ("layer_norm", "rms_norm", "group_norm", "instance_norm", "batch_norm", "add_layer_norm",
                     "add_rms_norm"):
            for fn in (name, name + "_backward"):
                real = getattr(module, fn, None)
                if real is None:
                    continue

                def counted(*args, _real=real, _name=fn, **kwargs):
                    calls.append(_name)
                    return _real(*args, **kwargs)

                monkeypatch.setattr(module, fn, counted)
    return calls
