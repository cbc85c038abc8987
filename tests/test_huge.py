"""Inputs of more than 2**31 elements: no 32-bit index arithmetic anywhere.

The inputs repeat a pattern of 7 float16-exact values (7 is coprime to
2**31, so an index wrapped at 2**31, 2**32 or truncated to int would read
or write the wrong pattern position), which gives exact statistics
analytically and an exact expected value at every position.

Needs ~9 GiB of memory and tens of seconds: marked slow, skipped with less
than 14 GiB available or when CNORM_SKIP_HUGE is set.
"""
import math
import os
from fractions import Fraction

import numpy as np
import pytest

import cnorm

GIB = 1 << 30
PATTERN = np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 4.5])   # exact in float16
P = len(PATTERN)
EPS = 1e-5


def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(os.environ.get("CNORM_SKIP_HUGE")), reason="CNORM_SKIP_HUGE is set"),
    pytest.mark.skipif(_mem_available() < 14 * GIB, reason="needs ~14 GiB of available memory"),
]


def _pattern_array(n, dtype=np.float16):
    """x[i] = PATTERN[i % 7], built without a temporary of n elements."""
    x = np.empty(n, dtype)
    full = n // P * P
    x[:full].reshape(-1, P)[...] = PATTERN.astype(dtype)
    x[full:] = PATTERN[: n - full].astype(dtype)
    return x


def _exact_stats(n, ddof=0):
    """Exact mean and variance of the pattern array of n elements."""
    counts = [n // P + (1 if k < n % P else 0) for k in range(P)]
    vals = [Fraction(float(v)) for v in PATTERN]
    mean = sum(c * v for c, v in zip(counts, vals)) / n
    var = sum(c * (v - mean) ** 2 for c, v in zip(counts, vals)) / (n - ddof)
    return float(mean), float(var)


def _positions(n):
    """Start, middle, end, around 2**31 and 2**32 (when inside), and a
    sparse sample of the whole range."""
    idx = [np.arange(0, 64), np.arange(n // 2 - 32, n // 2 + 32), np.arange(n - 64, n),
           np.arange(0, n, 999_983)]
    for edge in (2**31, 2**32):
        if edge < n:
            idx.append(np.arange(max(edge - 64, 0), min(edge + 64, n)))
    return np.unique(np.concatenate(idx))


@pytest.fixture(scope="module")
def row():
    n = 2**31 + 17
    x = _pattern_array(n)
    yield x
    del x


def test_layer_norm_single_row_over_2_31_elements(row):
    n = row.size
    mean, var = _exact_stats(n)
    y, m, rstd = cnorm.layer_norm(row, n, return_stats=True)
    assert y.shape == (n,) and y.dtype == np.float16
    np.testing.assert_allclose(float(m[0]), mean, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(float(rstd[0]), 1 / math.sqrt(var + EPS), rtol=2e-3)
    pos = _positions(n)
    want = (PATTERN[pos % P] - mean) / math.sqrt(var + EPS)
    np.testing.assert_allclose(y[pos].astype(np.float64), want, rtol=8e-3, atol=8e-3)
    del y
    cnorm.release_memory()


def test_rms_norm_single_row_over_2_31_elements_into_out(row):
    n = row.size
    out = np.full(n, np.nan, np.float16)     # unwritten positions stay NaN
    ms = float(sum((Fraction(float(v)) ** 2) * (n // P + (k < n % P)) for k, v in enumerate(PATTERN)) / n)
    y = cnorm.rms_norm(row, (n,), eps=EPS, out=out)
    assert y is out
    pos = _positions(n)
    want = PATTERN[pos % P] / math.sqrt(ms + EPS)
    np.testing.assert_allclose(y[pos].astype(np.float64), want, rtol=8e-3, atol=8e-3)
    # and nothing was left unwritten at the far end
    assert not np.isnan(y[-(1 << 20):]).any()
    del y, out


def test_moments_1d_over_2_31_elements(row):
    x = row[: 2**31 + 3]            # a view: no copy
    n = x.size
    mean, var = _exact_stats(n)
    m, v = cnorm.moments(x, axis=0)
    np.testing.assert_allclose(float(m), mean, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(float(v), var, rtol=2e-3)
    m1, v1 = cnorm.moments(x, ddof=1)
    np.testing.assert_allclose(float(v1), _exact_stats(n, ddof=1)[1], rtol=2e-3)
    np.testing.assert_allclose(float(m1), mean, rtol=2e-3, atol=2e-3)


def test_moments_column_layout_over_2_31_elements(row):
    """(2**29 + 1, 4) reduced over axis 0: the kernel's outer x length x
    inner offsets pass 2**31 while each count stays below it."""
    length, inner = 2**29 + 1, 4
    x = row[: length * inner].reshape(length, inner)
    m, v = cnorm.moments(x, axis=0)
    # column j holds PATTERN[(4 l + j) % 7]: as l runs, 4 l + j covers every
    # residue mod 7, so each column is itself a pattern sequence (permuted)
    for j in range(inner):
        col_vals = PATTERN[(4 * np.arange(P) + j) % P]
        counts = [length // P + (1 if l < length % P else 0) for l in range(P)]
        mean = sum(Fraction(c) * Fraction(float(val)) for c, val in zip(counts, col_vals)) / length
        var = sum(c * (Fraction(float(val)) - mean) ** 2 for c, val in zip(counts, col_vals)) / length
        np.testing.assert_allclose(float(m[j]), float(mean), rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(float(v[j]), float(var), rtol=2e-3)


def test_batch_norm_column_over_2_31_elements(row):
    """Batch norm with batch statistics over (N, C) = (2**30 + 8, 2), the
    column kernel: per-channel counts past 2**30, offsets past 2**31."""
    n, c = 2**30 + 8, 2
    x = row[: n * c].reshape(n, c)
    y = cnorm.batch_norm(x, None, None, training=True)
    for j in range(c):
        col_vals = PATTERN[(2 * np.arange(P) + j) % P]
        counts = [n // P + (1 if l < n % P else 0) for l in range(P)]
        mean = sum(Fraction(k) * Fraction(float(val)) for k, val in zip(counts, col_vals)) / n
        var = sum(k * (Fraction(float(val)) - mean) ** 2 for k, val in zip(counts, col_vals)) / n
        pos = _positions(n)
        want = (PATTERN[(2 * pos + j) % P] - float(mean)) / math.sqrt(float(var) + EPS)
        np.testing.assert_allclose(y[pos, j].astype(np.float64), want, rtol=8e-3, atol=8e-3)
    del y
