"""The C example pipeline (examples/pipeline.c) against the Python API.

The example is built with CMake into a temporary directory (or taken from
CNORM_EXAMPLE_BIN), fed random float32 files, and its output compared with

    cnorm.layer_norm(cnorm.instance_norm(cnorm.batch_norm(
        x, rm, rv, g, b, activation="relu"), weight=ig, bias=ib), W, lw, lb)

Skipped when cmake or a C compiler is missing.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cnorm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _c_compiler():
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc.split()[0])
    return next((p for p in map(shutil.which, ("cc", "gcc", "clang")) if p), None)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Path of the built example program."""
    given = os.environ.get("CNORM_EXAMPLE_BIN")
    if given:
        if not os.access(given, os.X_OK):
            pytest.fail(f"CNORM_EXAMPLE_BIN={given!r} is not an executable")
        return given
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not found")
    if _c_compiler() is None:
        pytest.skip("no C compiler found")
    build = tmp_path_factory.mktemp("example-build")
    # -O1 (a Debug build type: CMake adds no -O3): the build is this test's
    # cost (40 s at -O3 on 2 cores), and the values are compared with a tolerance
    configure = [cmake, "-S", ROOT, "-B", str(build), "-DCNORM_BUILD_TESTS=OFF", "-DCNORM_BUILD_EXAMPLES=ON",
                 "-DCMAKE_BUILD_TYPE=Debug", "-DCMAKE_C_FLAGS=-O1"]
    jobs = str(max(1, min(os.cpu_count() or 1, 8)))
    for cmd in (configure, [cmake, "--build", str(build), "--target", "pipeline", "-j", jobs]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    exe = build / "examples" / ("pipeline.exe" if sys.platform == "win32" else "pipeline")
    assert exe.exists(), f"{exe} was not built"
    return str(exe)


def _write_case(tmp_path, shape, seed, eps=1e-5):
    n, c, h, w = shape
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    rm = rng.standard_normal(c).astype(np.float32)
    rv = rng.uniform(0.2, 3.0, c).astype(np.float32)
    g = rng.uniform(0.5, 1.5, c).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, c).astype(np.float32)
    ig = rng.uniform(0.5, 1.5, c).astype(np.float32)
    ib = rng.uniform(-0.5, 0.5, c).astype(np.float32)
    lw = rng.uniform(0.5, 1.5, w).astype(np.float32)
    lb = rng.uniform(-0.5, 0.5, w).astype(np.float32)
    # the documented order: BN mean, var, weight, bias; IN weight, bias; LN weight, bias
    params = np.concatenate([rm, rv, g, b, ig, ib, lw, lb])
    paths = {k: str(tmp_path / f"{k}.f32") for k in ("input", "params", "output")}
    x.tofile(paths["input"])
    params.tofile(paths["params"])
    expected = cnorm.layer_norm(
        cnorm.instance_norm(cnorm.batch_norm(x, rm, rv, g, b, eps=eps, activation="relu"), weight=ig, bias=ib,
                            eps=eps), w, lw, lb, eps=eps)
    return paths, expected


def _run(pipeline, shape, paths, options=()):
    args = [pipeline, *options, *map(str, shape), paths["input"], paths["params"], paths["output"]]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 16, 8, 33), (4, 8, 16, 16), (1, 1, 1, 7)])
def test_pipeline_matches_python(pipeline, tmp_path, shape):
    paths, expected = _write_case(tmp_path, shape, seed=sum(shape))
    proc = _run(pipeline, shape, paths)
    assert proc.returncode == 0, proc.stderr
    got = np.fromfile(paths["output"], dtype=np.float32)
    assert got.size == expected.size
    np.testing.assert_allclose(got.reshape(shape), expected, rtol=1e-5, atol=2e-5)


def test_pipeline_eps_option(pipeline, tmp_path):
    shape = (2, 4, 3, 6)
    paths, expected = _write_case(tmp_path, shape, seed=5, eps=1e-3)
    proc = _run(pipeline, shape, paths, ["--eps", "1e-3"])
    assert proc.returncode == 0, proc.stderr
    got = np.fromfile(paths["output"], dtype=np.float32).reshape(shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("what", ["input", "params"])
@pytest.mark.parametrize("change", ["short", "long", "missing"])
def test_pipeline_rejects_bad_files(pipeline, tmp_path, what, change):
    shape = (2, 3, 4, 5)
    paths, _ = _write_case(tmp_path, shape, seed=1)
    data = np.fromfile(paths[what], dtype=np.float32)
    if change == "missing":
        os.remove(paths[what])
    else:
        (data[:-1] if change == "short" else np.append(data, np.float32(1))).tofile(paths[what])
    proc = _run(pipeline, shape, paths)
    assert proc.returncode != 0
    assert os.path.basename(paths[what]) in proc.stderr
    assert not os.path.exists(paths["output"])


@pytest.mark.parametrize("shape", [("2", "3", "4"), ("2", "0", "4", "5"), ("2", "x", "4", "5"),
                                   ("-1", "3", "4", "5"), ("99999999999", "99999999999", "99999999999", "5")])
def test_pipeline_rejects_bad_shapes(pipeline, tmp_path, shape):
    paths, _ = _write_case(tmp_path, (2, 3, 4, 5), seed=2)
    proc = _run(pipeline, shape, paths)
    assert proc.returncode == 2
    assert proc.stderr.strip()
    assert not os.path.exists(paths["output"])


@pytest.mark.parametrize("eps", ["-1", "nan", "inf"])
def test_pipeline_reports_cnorm_errors(pipeline, tmp_path, eps):
    """cnorm's error code (CNORM_ERR_EPS) becomes a message and exit status 1."""
    shape = (1, 2, 3, 4)
    paths, _ = _write_case(tmp_path, shape, seed=4)
    proc = _run(pipeline, shape, paths, ["--eps", eps])
    assert proc.returncode == 1
    assert "batch norm failed" in proc.stderr and "eps" in proc.stderr
    assert not os.path.exists(paths["output"])


def test_pipeline_rejects_negative_running_var(pipeline, tmp_path):
    """A negative running variance never reaches the kernel: a clear message."""
    shape = (1, 2, 3, 4)
    paths, _ = _write_case(tmp_path, shape, seed=3)
    params = np.fromfile(paths["params"], dtype=np.float32)
    params[2] = -1.0  # bn_running_var[0]
    params.tofile(paths["params"])
    proc = _run(pipeline, shape, paths)
    assert proc.returncode == 1
    assert "bn_running_var[0]" in proc.stderr
