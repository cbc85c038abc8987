"""Packaging: the distribution name, installed metadata, typing files, the
stub, the sdist, and importing from a source tree.

Fast and offline.  The sdist check builds one with ``python -m build --sdist
--no-isolation`` (a couple of seconds, no compiler) and is skipped unless
``build`` is installed and the tests run from a source checkout; it is
marked ``slow`` (deselect with ``-m "not slow"``).
"""
import ast
import glob
import importlib.metadata as md
import importlib.machinery
import inspect
import os
import re
import shutil
import subprocess
import sys
import tarfile
import types

import pytest

import cnorm
from cnorm import _bench, _core
from cnorm._version import DISTRIBUTION
from conftest import run_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.dirname(os.path.abspath(cnorm.__file__))
STUB = os.path.join(PKG, "_core.pyi")

PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
URLS = ["Homepage", "Documentation", "Source", "Issues"]


def _normalized(name):
    """A distribution name as PEP 503 compares them (cnorm_CPU == cnorm-cpu)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _file_name(name):
    """The name as sdist and wheel file names spell it (PEP 625, PEP 427)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _installed_dist():
    """The installed (pip: .dist-info) distribution of cnorm, or None.

    md.metadata(DISTRIBUTION) would take the first one on sys.path, which from
    a source checkout is the .egg-info that setup.py leaves there."""
    for dist in md.distributions(name=DISTRIBUTION):
        if any(f.parts[0].endswith(".dist-info") for f in dist.files or []):
            return dist
    return None


@pytest.fixture(scope="module")
def dist():
    found = _installed_dist()
    if found is None:
        pytest.skip("cnorm is not installed (imported from a source tree)")
    return found


@pytest.fixture(scope="module")
def meta(dist):
    return dist.metadata


# ---- the distribution name ---------------------------------------------------
# "cnorm" on PyPI is an unrelated project: pyproject's name, every install
# hint and the wheel/sdist file names must all be DISTRIBUTION.

def test_pyproject_name_is_the_distribution_name():
    if not _source_checkout():
        pytest.skip("not a source checkout")
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        assert tomllib.load(f)["project"]["name"] == DISTRIBUTION
    assert _normalized(DISTRIBUTION) != "cnorm"


def _install_hints(text):
    """The package arguments of every `pip install` in `text` that name a
    cnorm distribution from an index (not a path, a file or another package),
    as (name, whole command)."""
    hints = []
    for command in re.findall(r"pip install([^`\n#)]*)", text):
        command = re.split(r"&&|\|\||;|\|", command)[0]  # the shell's next command is not an argument
        for arg in command.split():
            arg = arg.strip("'\"")
            if arg.startswith(("-", ".", "/")) or "/" in arg or arg.endswith((".whl", ".tar.gz")):
                continue
            name = re.match(r"[A-Za-z0-9_.-]*", arg).group()
            if name.lower().startswith("cnorm"):
                hints.append((name, command))
    return hints


def test_install_hints_name_the_distribution():
    """README and code: `pip install "<name>[plot]"` and the like, and the
    file names of wheels and sdists."""
    if not _source_checkout():
        pytest.skip("not a source checkout")
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    code = ""
    for path in sorted(glob.glob(os.path.join(PKG, "*.py"))):
        with open(path) as f:
            code += f.read()
    readme_hints = _install_hints(readme)
    assert readme_hints, "the README names no distribution in a pip install"
    for name, command in readme_hints + _install_hints(code) + _install_hints(_bench.PLOT_HINT):
        assert _normalized(name) == _normalized(DISTRIBUTION), f"pip install{command}"
    assert f"pip install '{DISTRIBUTION}[plot]'" in _bench.PLOT_HINT
    files = re.findall(r"\b(cnorm[\w.-]*?)-(?:\*|<v>)", readme)  # cnorm_cpu-*.whl, dist/cnorm_cpu-<v>.tar.gz
    assert files, "the README names no wheel or sdist file"
    assert set(files) == {_file_name(DISTRIBUTION)}


def test_installed_under_the_distribution_name():
    """importlib.metadata finds the package under DISTRIBUTION, and the
    import name cnorm maps to it."""
    packages_distributions = getattr(md, "packages_distributions", None)  # Python >= 3.10
    if packages_distributions is None:
        pytest.skip("importlib.metadata.packages_distributions needs Python >= 3.10")
    owners = packages_distributions().get("cnorm", [])
    if not owners:
        pytest.skip("cnorm is not installed (imported from a source tree)")
    assert _normalized(DISTRIBUTION) in {_normalized(o) for o in owners}, owners
    assert md.distribution(DISTRIBUTION).version == cnorm.__version__


# ---- metadata ----------------------------------------------------------------

def test_version_matches(meta):
    assert meta["Version"] == cnorm.__version__


def test_license(dist, meta):
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in [os.path.basename(f) for f in meta.get_all("License-File") or []]
    licenses = [f for f in dist.files or [] if f.name == "LICENSE"]
    assert licenses, "the LICENSE file is not installed with the distribution"
    assert "MIT License" in licenses[0].read_text()


def test_classifiers(meta):
    classifiers = meta.get_all("Classifier") or []
    for want in ["Operating System :: POSIX :: Linux", "Programming Language :: C",
                 "Programming Language :: Cython", "Programming Language :: Python :: 3",
                 "Topic :: Scientific/Engineering", "Typing :: Typed"]:
        assert want in classifiers
    for prefix in ["Development Status :: ", "Intended Audience :: "]:
        assert any(c.startswith(prefix) for c in classifiers), prefix
    for version in PYTHONS:
        assert f"Programming Language :: Python :: {version}" in classifiers
    # a license classifier next to License-Expression is an error (PEP 639)
    assert not any(c.startswith("License ::") for c in classifiers)


def test_python_requires_and_keywords(meta):
    assert meta["Requires-Python"] == ">=3.9"
    assert "normalization" in meta["Keywords"].split(",")


def test_project_urls(meta):
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert sorted(urls) == sorted(URLS)
    assert all(u.startswith("https://") for u in urls.values())


def test_extras(meta):
    extras = meta.get_all("Provides-Extra") or []
    assert {"test", "bench", "plot"} <= set(extras)
    requires = meta.get_all("Requires-Dist") or []
    assert any(r.startswith("numpy") and "extra" not in r for r in requires)
    assert any(r.startswith("matplotlib") and 'extra == "plot"' in r for r in requires)
    assert any(r.startswith("threadpoolctl") and 'extra == "test"' in r for r in requires)


# ---- typing files --------------------------------------------------------------

def test_typing_files_next_to_the_module():
    assert os.path.isfile(os.path.join(PKG, "py.typed"))
    assert os.path.isfile(STUB)
    assert os.path.dirname(os.path.abspath(_core.__file__)) == PKG


def test_installed_files(dist):
    """From a wheel (not an editable install): the typing files are recorded
    and no C source, header or Cython file is installed."""
    files = [f.as_posix() for f in dist.files or []]
    if "cnorm/__init__.py" not in files:
        pytest.skip("editable install: the package is the source tree")
    if os.path.realpath(dist.locate_file("cnorm/__init__.py")) != os.path.realpath(cnorm.__file__):
        pytest.skip("the cnorm imported is not the installed one")
    assert "cnorm/py.typed" in files and "cnorm/_core.pyi" in files
    assert any(f.startswith("cnorm/_core.") and f.endswith((".so", ".pyd")) for f in files)
    shipped = [f for f in files if f.endswith((".c", ".h", ".inc", ".pyx", ".pxd"))]
    assert not shipped, shipped


def _stub_names():
    """(functions, other names) defined at the top level of _core.pyi."""
    with open(STUB) as f:
        tree = ast.parse(f.read(), STUB)
    functions, names = {}, set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return functions, names


def _runtime_public():
    """(callables, constants) that cnorm._core defines, public names only."""
    callables, constants = set(), set()
    for name in dir(_core):
        obj = getattr(_core, name)
        if name.startswith("_") or isinstance(obj, types.ModuleType):
            continue
        if callable(obj):
            if getattr(obj, "__module__", None) == _core.__name__:
                callables.add(name)
        else:
            constants.add(name)
    return callables, constants


def test_stub_lists_every_public_name():
    functions, names = _stub_names()
    callables, constants = _runtime_public()
    assert callables, "no public functions found in cnorm._core"
    assert sorted(callables - set(functions)) == [], "functions missing from _core.pyi"
    public_stub = {n for n in functions if not n.startswith("_")}
    assert sorted(public_stub - callables) == [], "_core.pyi has functions cnorm._core lacks"
    assert sorted(constants - names) == [], "constants missing from _core.pyi"


def test_stub_signatures_match():
    """Parameter names, order and which ones have defaults, as Cython reports
    them (binding=True, the Cython 3 default)."""
    functions, _ = _stub_names()
    for name, node in sorted(functions.items()):
        if name.startswith("_"):
            continue
        try:
            sig = inspect.signature(getattr(_core, name))
        except (TypeError, ValueError):
            continue
        args = node.args
        stub = [(a.arg, i >= len(args.args) - len(args.defaults)) for i, a in enumerate(args.args)]
        runtime = [(p.name, p.default is not p.empty) for p in sig.parameters.values()]
        assert stub == runtime, name


# ---- sdist ---------------------------------------------------------------------

def _source_checkout():
    return all(os.path.isfile(os.path.join(ROOT, f)) for f in ("pyproject.toml", "setup.py", "MANIFEST.in"))


def _needed_sources():
    """Every file the extension build compiles or includes, plus the project
    files, relative to the source root (globbed, so new sources count too)."""
    patterns = ["include/cnorm/*.h", "cnorm/_src/*.c", "cnorm/_src/*.h", "cnorm/_src/*.inc",
                "cnorm/_src/simd/*.h", "cnorm/_ext/*.c", "cnorm/_ext/*.h", "cnorm/*.pxd",
                "cnorm/_core.pyx", "cnorm/_core.pyi", "cnorm/py.typed",
                "cnorm/*.py", "cnorm/torch/*.py", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE",
                "tests/conftest.py", "tests/reference.py", "tests/test_*.py", "benchmarks/*.py",
                "CMakeLists.txt"]
    found = set()
    for pattern in patterns:
        found.update(os.path.relpath(p, ROOT).replace(os.sep, "/")
                     for p in glob.glob(os.path.join(ROOT, pattern)))
    return found


@pytest.mark.slow
def test_sdist_contains_the_sources(tmp_path):
    # pypa's build itself: with an editable install the checkout is on
    # sys.path, and its build/ directory (setuptools' objects) imports as
    # an empty namespace package named build
    pytest.importorskip("build.__main__")
    for module in ("setuptools", "Cython", "numpy"):  # --no-isolation: setup.py imports them
        pytest.importorskip(module)
    if not _source_checkout():
        pytest.skip("not a source checkout")
    out = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                          "--outdir", str(tmp_path), ROOT],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (sdist,) = glob.glob(str(tmp_path / f"{_file_name(DISTRIBUTION)}-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    top = f"{_file_name(DISTRIBUTION)}-{cnorm.__version__}/"
    assert all(m == top.rstrip("/") or m.startswith(top) for m in members)
    names = {m[len(top):] for m in members if m.startswith(top)}
    needed = _needed_sources()
    assert {"cnorm/_src/engine.c", "cnorm/_src/welford.h", "cnorm/_ext/outbuf.h", "include/cnorm/cnorm.h"} <= needed
    assert sorted(needed - names) == [], "missing from the sdist (MANIFEST.in)"
    assert "PKG-INFO" in names
    # no build products: _core.c is regenerated from _core.pyx at build time
    built = [n for n in names if n.endswith((".so", ".o", ".pyc", ".pyd")) or n == "cnorm/_core.c"]
    assert not built, built


# ---- subprocesses and source trees ----------------------------------------------

def test_subprocesses_import_the_cnorm_under_test(tmp_path):
    """conftest.run_python starts outside the checkout, so after a plain
    `pip install .` a test's subprocess imports the installed cnorm, not the
    unbuilt source tree (three tests failed that way)."""
    out = run_python("import cnorm; print(cnorm.__file__)", tmp_path)
    assert out.returncode == 0, out.stderr
    assert os.path.realpath(out.stdout.strip()) == os.path.realpath(cnorm.__file__)


# The copy gets another name: an editable install's finder (on sys.meta_path,
# ahead of the cwd) would serve `import cnorm` from the real tree.  The
# package imports itself relatively, so the name does not change what runs.
UNBUILT = "cnorm_unbuilt"


def _source_tree(tmp_path):
    """A copy of the package's Python files, without the compiled extension:
    a fresh clone before it is built."""
    src = tmp_path / "src"
    shutil.copytree(PKG, src / UNBUILT, ignore=lambda d, names: [
        n for n in names if not n.endswith((".py", ".pyi", ".typed"))])
    return src


def _import_from(src):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return run_python(f"import {UNBUILT}", src, env)  # `-c`: the cwd, src, is first on sys.path


def test_import_from_an_unbuilt_source_tree_says_so(tmp_path):
    src = _source_tree(tmp_path)
    assert not glob.glob(str(src / UNBUILT / "_core.*.so"))
    out = _import_from(src)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: "), out.stderr
    assert "source tree" in last and "pip install -e ." in last, last
    assert "circular import" not in out.stderr


def test_import_error_of_a_built_extension_is_kept(tmp_path):
    """A compiled _core that does not load (here: not a shared object) keeps
    its own error, which names the real cause."""
    src = _source_tree(tmp_path)
    (src / UNBUILT / ("_core" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b"not an ELF file")
    out = _import_from(src)
    assert out.returncode != 0
    assert "source tree" not in out.stderr, out.stderr
    assert "_core" in out.stderr.strip().splitlines()[-1], out.stderr
