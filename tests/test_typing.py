"""Typing (README, "Packaging: sdist, wheels, typing"): the public API is
annotated, and a user's type checker sees it.

- `mypy --strict tests/typecheck/usage.py`, run outside the checkout: the
  installed cnorm (an editable install too) is visible to mypy, with the
  types the example asserts;
- `mypy` in the checkout ([tool.mypy] in pyproject.toml: strict): the
  package's own code agrees with its annotations;
- stubtest: the annotations and cnorm/_core.pyi agree with the running code;
- the usage example runs, so the types it asserts are the values' types.

The mypy tests skip when mypy is not installed (.ci/run installs it).
"""
import ast
import glob
import os
import runpy
import subprocess
import sys
import typing

import pytest

import cnorm
import cnorm.nn
from cnorm import _core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USAGE = os.path.join(ROOT, "tests", "typecheck", "usage.py")
PYPROJECT = os.path.join(ROOT, "pyproject.toml")
STUBTEST_ALLOWLIST = os.path.join(ROOT, "tests", "typecheck", "stubtest-allowlist.txt")
PKG = os.path.dirname(os.path.abspath(cnorm.__file__))


@pytest.fixture(scope="module")
def mypy():
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")


@pytest.fixture
def cache_dir(request, tmp_path):
    """A mypy cache per test, kept in pytest's cache between runs when it has one."""
    cache = getattr(request.config, "cache", None)
    return str(cache.mkdir(f"mypy-{request.node.name}") if cache is not None else tmp_path / "mypy-cache")


def _run(args, cwd):
    """`python *args` in `cwd`, with neither MYPYPATH nor PYTHONPATH: only
    what is installed is found."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def outside(tmp_path):
    """A directory outside the checkout, from which Python imports the
    installed cnorm (else the test skips: nothing installed to look at),
    with an empty mypy config (no user or parent-directory settings)."""
    if _run(["-c", "import cnorm"], tmp_path).returncode != 0:
        pytest.skip("cnorm is not installed: nothing for a user's type checker to find")
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    return tmp_path


def test_usage_example_passes_mypy_strict_where_users_run_it(mypy, outside, cache_dir):
    r = _run(["-m", "mypy", "--strict", "--cache-dir", cache_dir, USAGE], outside)
    hint = ""
    if 'module named "cnorm"' in r.stdout:
        hint = ("\nmypy cannot see the installed cnorm: an editable install made with setuptools' import "
                "hook? package-dir in pyproject.toml gives a plain .pth path; reinstall with pip install -e .")
    assert r.returncode == 0, r.stdout + r.stderr + hint


def test_package_passes_mypy_strict(mypy, cache_dir):
    if not os.path.isfile(os.path.join(ROOT, "cnorm", "__init__.py")):
        pytest.skip("not a source checkout")
    r = _run(["-m", "mypy", "--cache-dir", cache_dir], ROOT)  # files and strict = true: [tool.mypy]
    assert r.returncode == 0, r.stdout + r.stderr


def test_stubtest(mypy, outside):
    args = ["-m", "mypy.stubtest", "cnorm", "--mypy-config-file", PYPROJECT]
    if sys.version_info < (3, 11):  # typing's names are not classes there (see the file)
        args += ["--allowlist", STUBTEST_ALLOWLIST]
    r = _run(args, outside)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.usefixtures("restore_config")
def test_usage_example_runs():
    if sys.version_info < (3, 11):
        pytest.importorskip("typing_extensions")  # assert_type before Python 3.11
    runpy.run_path(USAGE, run_name="usage")


def test_activation_names_are_the_c_librarys():
    from cnorm._typing import Activation

    (names, _none) = typing.get_args(Activation)
    assert typing.get_args(names) == _core.ACTIVATION_NAMES[1:]


def _public_callables():
    for name in cnorm.__all__:
        obj = getattr(cnorm, name)
        if callable(obj):
            yield f"cnorm.{name}", obj
    for name in cnorm.nn.__all__:
        obj = getattr(cnorm.nn, name)
        yield f"cnorm.nn.{name}", obj
        for attr, member in vars(obj).items() if isinstance(obj, type) else ():
            if callable(member) and (not attr.startswith("_") or attr in ("__init__", "__call__")):
                yield f"cnorm.nn.{name}.{attr}", member


def test_every_public_callable_is_annotated():
    missing = []
    for name, obj in _public_callables():
        hints = typing.get_type_hints(obj)  # evaluates them: every name resolves at run time
        if "return" not in hints and not isinstance(obj, type):
            missing.append(name)
    assert missing == []


def test_annotations_are_python_39_syntax():
    """mypy >= 2 cannot check for Python 3.9 (--python-version 3.10 at the
    least), so this does: no ``X | Y`` in annotations, which typing's
    get_type_hints evaluates, nor in _typing's aliases, evaluated at import."""
    found = []
    for path in sorted(glob.glob(os.path.join(PKG, "*.py"))):
        tree = ast.parse(open(path).read(), path)
        exprs = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                args += [a for a in (node.args.vararg, node.args.kwarg) if a]
                exprs += [a.annotation for a in args if a.annotation] + ([node.returns] if node.returns else [])
            elif isinstance(node, ast.AnnAssign):
                exprs.append(node.annotation)
            elif isinstance(node, ast.Assign) and os.path.basename(path) == "_typing.py":
                exprs.append(node.value)
        for e in exprs:
            if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(e)):
                found.append(f"{os.path.basename(path)}:{e.lineno}")
    assert found == [], "use typing.Union/Optional"
