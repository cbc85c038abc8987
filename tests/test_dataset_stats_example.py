"""examples/dataset_stats.py, small: an on-disk image stack's per-channel
statistics with cnorm.dask on a 2-process LocalCluster, against dask's
mean/var and a float64 reference (the example prints OK when cnorm's
errors are at most dask's and below 1e-6)."""
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("dask.array")
pytest.importorskip("distributed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dataset_stats_example(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join("examples", "dataset_stats.py"), "--n", "48", "--chunk", "10",
                           "--dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: cnorm's errors are at most dask's" in proc.stdout, proc.stdout
    assert re.search(r"count 3145728;", proc.stdout), proc.stdout  # 48 * 256 * 256 per channel
    assert "5 chunks" in proc.stdout
