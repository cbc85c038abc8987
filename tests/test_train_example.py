"""examples/train_numpy.py: a small CNN and a transformer block trained in
NumPy + cnorm (every normalization's forward and backward in cnorm), and the
same in torch from the same weights on the same batches.  A short run: the
losses fall and agree with torch's; without torch, the cnorm side still
trains and the comparison is reported as skipped."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join("examples", "train_numpy.py")
ARGS = ["--steps", "120", "--threads", "1"]
# one thread each for cnorm, torch and OpenBLAS: small calls, and a shared machine
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")
# what `import torch` does when torch is not installed
WITHOUT_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
                 "runpy.run_path(sys.argv[0], run_name='__main__')")


def run(*command):
    proc = subprocess.run([sys.executable, *command, *ARGS], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def curves(stdout, columns):
    """{model: rows of the loss table (step, loss[, torch loss, rel. diff])}."""
    tables = {}
    for block in stdout.split("\n\n"):
        name = block.strip().split(":")[0]
        rows = re.findall(r"^\s+(\d+)" + r"\s+(\S+)" * (columns - 1) + r"$", block, re.MULTILINE)
        if rows:
            tables[name] = [tuple(float(v) for v in row) for row in rows]
    return tables


def check_fell(tables):
    assert set(tables) == {"CNN", "transformer block"}, tables
    for rows in tables.values():
        assert [r[0] for r in rows] == [0, 20, 40, 60, 80, 100, 119]
        assert rows[-1][1] < 0.6 * rows[0][1], rows


def test_training_example_agrees_with_torch():
    pytest.importorskip("torch")
    out = run(SCRIPT)
    tables = curves(out, 4)
    check_fell(tables)
    for rows in tables.values():
        for step, loss, torch_loss, rel in rows:
            assert abs(loss - torch_loss) <= 1e-3 * torch_loss + 1e-4 and rel <= 1e-3, (step, out)
    diffs = [float(v) for v in re.findall(r"largest per-step relative loss difference (\S+)", out)]
    assert len(diffs) == 2 and max(diffs) <= 1e-3, out
    assert len(re.findall(r"wall time cnorm \S+ s, torch \S+ s", out)) == 2, out
    assert re.search(r"^OK: cnorm and torch losses agree within 0.001 \(relative\) at every step", out,
                     re.MULTILINE), out


def test_training_example_without_torch():
    # the cnorm side imports no torch: with `import torch` failing it trains, and exits 0
    out = run("-c", WITHOUT_TORCH, SCRIPT)
    assert "the comparison with torch is skipped" in out, out
    check_fell(curves(out, 2))
    assert re.search(r"^OK: the losses fell \(.*\); the comparison with torch was skipped$", out, re.MULTILINE), out
