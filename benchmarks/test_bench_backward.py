"""pytest-benchmark: a training step (forward + backward) of each norm,
cnorm against torch.autograd and the roofline, grouped by case (see
cnorm/_bench_backward.py).

    pytest benchmarks/test_bench_backward.py --benchmark-enable --benchmark-only --benchmark-group-by=group

Without --benchmark-enable each case runs once, as a smoke test.
"""
import functools

import pytest

from cnorm import _bench_backward as B


@functools.lru_cache(maxsize=1)
def inputs(case):
    return B.make_inputs(case)


@pytest.mark.parametrize("impl", list(B.IMPLS))
@pytest.mark.parametrize("case", B.CASES, ids=lambda c: c.id)
def test_training_step(benchmark, case, impl):
    fn = B.IMPLS[impl](case, inputs(case))
    if fn is None:
        pytest.skip(f"{impl}: torch is not installed")
    benchmark.group = f"train {case.name}"
    benchmark(fn)
