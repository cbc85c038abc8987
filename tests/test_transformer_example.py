"""examples/transformer_block.py (a torch model run in NumPy + cnorm) runs,
prints a difference for every part, and stays within its tolerance.

Skipped when torch is missing.
"""
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = [
    "stem conv-bn-relu",
    "stem conv-gn-silu",
    "block ln1",
    "block attention + residual",
    "block ln2",
    "block output",
    "stem conv-bn-relu [BN module]",
    "stem conv-bn-relu [BN folded]",
]


def test_transformer_example_runs():
    proc = subprocess.run(
        [sys.executable, os.path.join("examples", "transformer_block.py"), "--reps", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for part in PARTS:
        m = re.search(rf"^{re.escape(part)}\s+(\S+)\s+(\S+)$", proc.stdout, re.MULTILINE)
        assert m, f"no line for {part!r} in:\n{proc.stdout}"
        diff, tol = float(m.group(1)), float(m.group(2))
        assert 0 <= diff <= tol
    assert re.search(r"^stem \+ block\s+\d+\.\d+\s+\d+\.\d+$", proc.stdout, re.MULTILINE), proc.stdout
    assert "OK: every part within tolerance" in proc.stdout
