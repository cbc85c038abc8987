"""The output-buffer cache (cnorm/_ext/outbuf.h; README, "Memory").

Freed results of 1 MiB or more are kept for reuse.  The cache can be
turned off (CNORM_OUTPUT_CACHE=0 at import, or set_output_cache(0)) and
bounded (bytes).  The memory tests measure the resident set size from
/proc/self/statm in a fresh interpreter each (a subprocess started in a
temporary directory), so nothing else the test run allocated or cached
gets in the way.  Results are 40 MiB: above glibc's largest mmap
threshold (32 MiB), so free() gives them back to the kernel at once and
RSS shows exactly what the cache keeps.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnorm
from cnorm import _core

MIB = 1 << 20
SLACK = 8 * MIB  # interpreter noise between two RSS readings

PRELUDE = """
import gc, json, os
import numpy as np
import cnorm

PAGE, MIB = os.sysconf("SC_PAGE_SIZE"), 1 << 20

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

def result(mib):  # a fresh layer_norm result of `mib` MiB (float32)
    x = np.ones((mib, 1 << 18), np.float32)
    return cnorm.layer_norm(x, x.shape[-1])

gc.collect()
report = {}
"""


def run(body, env_value=None, tmp_path=None):
    """Run PRELUDE + body in a new interpreter; returns its `report` dict."""
    env = {k: v for k, v in os.environ.items() if k != "CNORM_OUTPUT_CACHE"}
    if env_value is not None:
        env["CNORM_OUTPUT_CACHE"] = env_value
    env.setdefault("OMP_NUM_THREADS", "1")
    code = PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(report))\n"
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


FOUR_RESULTS = """
base = rss()
ys = [result(40) for _ in range(4)]
report["grown"] = rss() - base
del ys
gc.collect()
report["after_del"] = rss() - base
report["released"] = cnorm.release_memory()
"""


def test_cache_off_from_environment_returns_memory_after_del(tmp_path):
    """CNORM_OUTPUT_CACHE=0: RSS is back after `del` of four 40 MiB results
    (the issue's measurement: it stayed up until release_memory())."""
    r, _ = run(FOUR_RESULTS + 'report["bound"] = cnorm.get_output_cache()\n', "0", tmp_path)
    assert r["grown"] >= 4 * 40 * MIB - SLACK  # the results were resident
    assert r["after_del"] < SLACK, f"RSS still up by {r['after_del'] / MIB:.0f} MiB after del"
    assert r["released"] == 0 and r["bound"] == 0


def test_set_output_cache_zero_frees_and_stops_caching(tmp_path):
    r, _ = run(FOUR_RESULTS.replace('report["released"] = cnorm.release_memory()', """
cnorm.set_output_cache(0)          # frees what the default cache holds
report["after_off"] = rss() - base
ys = [result(40) for _ in range(4)]
del ys
gc.collect()
report["after_second_del"] = rss() - base
report["released"] = cnorm.release_memory()
"""), None, tmp_path)
    assert r["after_del"] >= 4 * 40 * MIB - SLACK  # the default bound (1 GiB) keeps all four
    assert r["after_off"] < SLACK and r["after_second_del"] < SLACK
    assert r["released"] == 0


BOUNDED = """
if "bound" in os.environ.get("HOW", ""):
    cnorm.set_output_cache(100 * MIB)
report["bound"] = cnorm.get_output_cache()
base = rss()
held, grown = [], []
# results kept alive together and freed together, of growing sizes, then
# one by one: whatever is freed, the cache keeps at most the bound
for sizes in ([40, 44, 48], [36, 52, 40, 41], [90], [120], [33] * 4):
    ys = [result(m) for m in sizes]
    del ys
    gc.collect()
    held.append(cnorm._core.output_cache_held())
    grown.append(rss() - base)
report["held"], report["grown"] = held, grown
report["released"] = cnorm.release_memory()
report["after_release"] = rss() - base
"""


@pytest.mark.parametrize("how", ["environment", "set_output_cache"])
def test_cache_never_holds_more_than_the_bound(how, tmp_path):
    """A 100 MiB bound (CNORM_OUTPUT_CACHE=100M, or set_output_cache): held
    bytes and the RSS left after each `del` stay within it."""
    body = BOUNDED.replace('os.environ.get("HOW", "")', repr("bound" if how == "set_output_cache" else ""))
    r, _ = run(body, "100M" if how == "environment" else None, tmp_path)
    assert r["bound"] == 100 * MIB
    assert max(r["held"]) <= 100 * MIB, r["held"]
    assert max(r["grown"]) <= 100 * MIB + SLACK, [g / MIB for g in r["grown"]]
    assert max(r["held"]) >= 80 * MIB  # the cache still works: two 40+ MiB results were kept
    assert r["after_release"] < SLACK


@pytest.mark.parametrize("text,bound", [("536870912", 512 * MIB), ("512M", 512 * MIB), ("512MiB", 512 * MIB),
                                        ("2g", 2 << 30), ("64k", 64 << 10), (" 0 ", 0)])
def test_environment_sizes(text, bound, tmp_path):
    r, _ = run('report["bound"] = cnorm.get_output_cache()', text, tmp_path)
    assert r["bound"] == bound


def test_environment_bad_value_warns_and_keeps_default(tmp_path):
    r, err = run('report["bound"] = cnorm.get_output_cache()', "lots", tmp_path)
    assert r["bound"] == _core.OUTPUT_CACHE_DEFAULT == 1 << 30
    assert "RuntimeWarning" in err and "CNORM_OUTPUT_CACHE" in err and "'lots'" in err


@pytest.fixture
def bound():
    """Restore the cache's bound after a test changes it."""
    before = cnorm.get_output_cache()
    yield
    cnorm.set_output_cache(before)


def test_default_bound_and_api(bound):
    assert "set_output_cache" in cnorm.__all__ and "get_output_cache" in cnorm.__all__
    cnorm.set_output_cache(3 * MIB)
    assert cnorm.get_output_cache() == 3 * MIB
    x = np.ones((2, 1 << 18), np.float32)  # 2 MiB results
    cnorm.release_memory()
    ys = [cnorm.layer_norm(x, x.shape[-1]) for _ in range(3)]
    del ys
    assert cnorm._core.output_cache_held() == 2 * MIB  # one fits under 3 MiB
    cnorm.set_output_cache(1 * MIB)  # below what is held: freed
    assert cnorm._core.output_cache_held() == 0
    y = cnorm.layer_norm(x, x.shape[-1])
    del y
    assert cnorm.release_memory() == 0  # a 2 MiB result is above the bound


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (2**70, ValueError), (1.5, TypeError), ("1G", TypeError),
                                     (True, TypeError)])
def test_set_output_cache_bad_argument(bad, exc, bound):
    with pytest.raises(exc, match=r"\bmax_bytes\b"):
        cnorm.set_output_cache(bad)
