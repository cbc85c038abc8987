"""`python -m cnorm`: print the configuration and a short self-benchmark
(cnorm vs NumPy, plus PyTorch and ONNX Runtime when installed)."""
import argparse
import sys

import cnorm
from cnorm import _bench


def self_benchmark(case_names, impls, budget):
    cnorm_name = impls[0]
    print(f"\n{'case':<30}" + "".join(f"{name:>22}" for name in impls) + f"{'best peer/cnorm':>17}")
    print(f"{'':<30}" + "".join(f"{'us   GB/s':>22}" for _ in impls))
    for name in case_names:
        case = _bench.CASES_BY_NAME[name]
        data = _bench.make_inputs(case)
        times = {}
        for impl in impls:
            fn = _bench.IMPLS[impl](case, data)
            times[impl] = _bench.time_call(fn, budget) if fn else None
        row = f"{name:<30}"
        for impl in impls:
            t = times[impl]
            row += f"{'-':>22}" if t is None else f"{t * 1e6:>14.1f}{case.nbytes / t / 1e9:>8.1f}"
        peers = [t for k, t in times.items() if k in ("torch", "onnxruntime") and t]
        ratio = f"{min(peers) / times[cnorm_name]:.2f}x" if peers else "-"
        print(row + f"{ratio:>17}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnorm", description=__doc__)
    parser.add_argument("--threads", type=int, default=0, help="threads (default: OpenMP's)")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per timing (default 0.2)")
    parser.add_argument("--no-bench", action="store_true", help="only print the configuration")
    args = parser.parse_args(argv)
    if args.threads:
        _bench.set_threads(args.threads)
    cnorm.show_config()
    if args.no_bench:
        return 0
    impls = [i for i in ("cnorm", "torch", "onnxruntime", "numpy", "roofline")]
    print(f"\nself-benchmark: float32, {cnorm.get_num_threads()} threads, median time per call; "
          "GB/s counts one read of x and one write of y")
    self_benchmark(_bench.QUICK, impls, args.budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
