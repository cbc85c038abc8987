"""`python -m cnorm`: print the configuration and a short self-benchmark
(cnorm vs NumPy, plus PyTorch and ONNX Runtime when installed).

`python -m cnorm bench [--cases ...] [--threads N] [--json PATH] [--plot PATH]`
runs the benchmark cases (the ones benchmarks/test_bench.py runs) with
progress, and can save the results as JSON and draw them as a PNG."""
import argparse
import json
import platform
import sys
import time

import cnorm
from cnorm import _bench

PEERS = ("torch", "onnxruntime")


def print_header(impls):
    print(f"\n{'case':<30}" + "".join(f"{name:>22}" for name in impls) + f"{'best peer/cnorm':>17}")
    print(f"{'':<30}" + "".join(f"{'us   GB/s':>22}" for _ in impls), flush=True)


def print_row(i, n, case, rows):
    """A table row per case, as soon as it is measured."""
    line = f"{case.name:<30}"
    for r in rows:
        t = r["median_s"]
        line += f"{'-':>22}" if t is None else f"{t * 1e6:>14.1f}{r['gbps']:>8.1f}"
    times = {r["impl"]: r["median_s"] for r in rows}
    peers = [times[p] for p in PEERS if times.get(p)]
    ratio = f"{min(peers) / times['cnorm']:.2f}x" if peers and times.get("cnorm") else "-"
    print(line + f"{ratio:>17}" + (f"   [{i}/{n}]" if n > 1 else ""), flush=True)


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m cnorm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="threads (default: OpenMP's)")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per timing (default 0.2)")
    parser.add_argument("--no-bench", action="store_true", help="only print the configuration")
    sub = parser.add_subparsers(dest="command")
    bench = sub.add_parser("bench", help="run the benchmark cases")
    bench.add_argument("--cases", default="all",
                       help="comma-separated case ids, names or substrings (default all): "
                            + ", ".join(c.id for c in _bench.CASES))
    bench.add_argument("--impls", default=",".join(_bench.IMPLS),
                       help="comma-separated implementations (default all): " + ", ".join(_bench.IMPLS))
    bench.add_argument("--threads", type=int, default=0, dest="bench_threads",
                       help="threads for cnorm and the peers (default: OpenMP's)")
    bench.add_argument("--budget", type=float, default=0.3, dest="bench_budget",
                       help="seconds per timing (default 0.3)")
    bench.add_argument("--json", metavar="PATH", help="write the results as JSON")
    bench.add_argument("--plot", metavar="PATH", help="draw GB/s per case and implementation (PNG; needs matplotlib)")
    return parser, parser.parse_args(argv)


def run_bench(parser, args):
    try:
        cases = _bench.find_cases(args.cases)
    except ValueError as e:
        parser.error(f"--{e}")
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    unknown = [i for i in impls if i not in _bench.IMPLS]
    if unknown:
        parser.error(f"--impls: unknown {unknown}; choose from {list(_bench.IMPLS)}")
    if args.plot:  # fail before the long run, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'cnorm[plot]'")
    if args.bench_threads:
        _bench.set_threads(args.bench_threads)
    threads = cnorm.get_num_threads()
    print(f"cnorm {cnorm.__version__} benchmark: {len(cases)} cases x {len(impls)} implementations, "
          f"float32, {threads} threads, ISA {cnorm.get_isa()}, median time per call", flush=True)
    print_header(impls)
    start = time.perf_counter()
    results = _bench.run_suite(cases, impls, args.bench_budget, progress=print_row)
    print(f"\n{time.perf_counter() - start:.0f} s", flush=True)
    meta = {"version": cnorm.__version__, "isa": cnorm.get_isa(), "threads": threads,
            "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"), "dtype": "float32"}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        _bench.plot(results, args.plot, title=f"cnorm {meta['version']}, {threads} threads, "
                                              f"{meta['isa']}, {meta['date']}")
        print(f"wrote {args.plot}")
    return 0


def main(argv=None):
    parser, args = parse(argv)
    if args.command == "bench":
        return run_bench(parser, args)
    if args.threads:
        _bench.set_threads(args.threads)
    cnorm.show_config()
    if args.no_bench:
        return 0
    impls = ["cnorm", "torch", "onnxruntime", "numpy", "roofline"]
    print(f"\nself-benchmark: float32, {cnorm.get_num_threads()} threads, median time per call; "
          "GB/s counts one read of x and one write of y")
    print_header(impls)
    _bench.run_suite([_bench.CASES_BY_NAME[n] for n in _bench.QUICK], impls, args.budget,
                     progress=lambda i, n, case, rows: print_row(i, 1, case, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
