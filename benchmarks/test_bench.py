"""pytest-benchmark comparisons: case x implementation, grouped by case.

    pytest benchmarks --benchmark-enable --benchmark-only --benchmark-group-by=group

Implementations that are not installed (or have no such operator) skip.
"roofline" is a plain OpenMP `y = a*x + b` over the same bytes: the memory
limit the case is measured against.  Without --benchmark-enable (the
default in pyproject.toml) each case runs once, as a smoke test.
"""
import functools

import pytest

import cnorm
from cnorm import _bench


@pytest.fixture(scope="session", autouse=True)
def same_threads_everywhere():
    _bench.set_threads(cnorm.get_num_threads())


@functools.lru_cache(maxsize=1)
def inputs(case):
    return _bench.make_inputs(case)


@pytest.mark.parametrize("impl", list(_bench.IMPLS))
@pytest.mark.parametrize("case", _bench.CASES, ids=lambda c: c.id)
def test_norm(benchmark, case, impl):
    fn = _bench.IMPLS[impl](case, inputs(case))
    if fn is None:
        missing = _bench.not_installed(impl)
        pytest.skip(f"{impl}: not installed ({', '.join(missing)})" if missing
                    else f"{impl} has no {case.op} ({case.layout})")
    benchmark.group = case.name
    benchmark.extra_info["bytes"] = case.nbytes
    benchmark(fn)
