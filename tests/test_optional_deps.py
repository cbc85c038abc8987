"""The optional peers stay optional: `import cnorm` imports none of them,
and cnorm.dask without dask says which extra to install."""
import subprocess
import sys


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_cnorm_imports_no_optional_peer():
    proc = _run("import sys, cnorm, cnorm.nn; "
                "print(sorted(m for m in ('torch', 'dask', 'distributed', 'onnxruntime', 'matplotlib') "
                "if m in sys.modules))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_cnorm_dask_without_dask_names_the_extra():
    proc = _run("import sys; sys.modules['dask'] = None; sys.modules['dask.array'] = None\n"
                "try:\n    import cnorm.dask\nexcept ImportError as e:\n    print(e)\n")
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "cnorm-cpu[dask]"' in proc.stdout, proc.stdout


def test_cnorm_torch_without_torch_points_to_the_cpu_build():
    proc = _run("import sys; sys.modules['torch'] = None\n"
                "try:\n    import cnorm.torch\nexcept ImportError as e:\n    print(e)\n")
    assert proc.returncode == 0, proc.stderr
    assert "cnorm.torch needs PyTorch" in proc.stdout and "whl/cpu" in proc.stdout, proc.stdout
