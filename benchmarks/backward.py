"""Training step (forward + backward) of each norm: cnorm against
torch.autograd and the memory roofline, measured side by side in one run.

    python benchmarks/backward.py [--threads N] [--cases LN,BN] [--budget S] [--repeat R]

Prints median microseconds of the whole step (forward with saved
statistics, then grad_x, grad_weight, grad_bias: the "fwd+bwd" cases of
cnorm/_bench.py) and of the backward alone, for cnorm, torch and the
roofline (``y = a*x + b`` over the bytes moved: Case.copies for the step;
1.5 copy-equivalents for the backward, 2.5 for batch norm's).  With
--repeat R every number is the median of R rounds, the implementations
alternating within each round (the machine is shared and noisy).
"""
import argparse
import statistics

from cnorm import _bench, _bench_backward as B

STEPS = [c for c in _bench.CASES if c.step]
IMPLS = {"cnorm": _bench.impl_cnorm, "torch": _bench.impl_torch, "roofline": _bench.impl_roofline, **B.BWD_IMPLS}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=0, help="threads for cnorm and torch (0: default)")
    p.add_argument("--cases", default="", help="comma-separated substrings of case names")
    p.add_argument("--budget", type=float, default=0.3, help="seconds per timing")
    p.add_argument("--repeat", type=int, default=3, help="rounds (medians of their medians)")
    a = p.parse_args()
    _bench.set_threads(a.threads)
    words = [w.strip().lower() for w in a.cases.split(",") if w.strip()]
    cases = [c for c in STEPS if not words or any(w in c.name.lower() for w in words)]
    print(f"{'case':<32}{'cnorm':>9}{'torch':>9}{'roof':>9}{'vs torch':>9}{'/roof':>7}"
          f"{'| bwd':>9}{'torch':>9}{'roof':>9}{'vs torch':>9}{'/roof':>7}   (us, median)")
    for case in cases:
        data = _bench.make_inputs(case)
        fns = {k: f(case, data) for k, f in IMPLS.items()}
        t = {k: [] for k in fns if fns[k] is not None}
        for _ in range(a.repeat):
            for k in t:
                t[k].append(_bench.time_call(fns[k], a.budget).median * 1e6)
        m = {k: statistics.median(v) for k, v in t.items()}
        nan = float("nan")
        row = f"{case.name:<32}"
        for sfx in ("", "_bwd"):
            c, tt, r = m["cnorm" + sfx], m.get("torch" + sfx, nan), m["roofline" + sfx]
            row += f"{c:>9.0f}{tt:>9.0f}{r:>9.0f}{tt / c:>8.1f}x{c / r:>7.2f}"
            if not sfx:
                row += " |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
