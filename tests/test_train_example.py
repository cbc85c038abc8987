"""examples/train_numpy.py (a small CNN trained in NumPy + cnorm: every
normalization's forward and backward in cnorm) runs a short training and
its loss goes down."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_training_example_lowers_the_loss():
    # one thread each for cnorm and OpenBLAS: small calls, and a shared machine
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, os.path.join("examples", "train_numpy.py"), "--steps", "100", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    losses = [float(v) for v in re.findall(r"^step\s+\d+\s+loss (\S+)$", proc.stdout, re.MULTILINE)]
    assert len(losses) == 6, proc.stdout  # steps 0, 20, ..., 80 and the last one
    assert all(l > 0 for l in losses) and losses[-1] < 0.6 * losses[0], proc.stdout
    accuracy = float(re.search(r"^held-out accuracy (\S+)", proc.stdout, re.MULTILINE).group(1))
    assert accuracy > 0.5, proc.stdout  # 4 classes: chance is 0.25
    assert re.search(r"^OK: the loss fell from \S+ .* to \S+ \(last 10\)$", proc.stdout, re.MULTILINE), proc.stdout
