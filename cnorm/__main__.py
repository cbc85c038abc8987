"""`python -m cnorm`: print the configuration and a short self-benchmark
(cnorm vs NumPy, plus PyTorch and ONNX Runtime when installed).

`python -m cnorm bench [--cases ...] [--threads N] [--json PATH] [--plot PATH]`
runs the benchmark cases (the ones benchmarks/test_bench.py runs) with
progress, and can save the results as JSON (benchmarks/table.py reads it)
and draw them as a PNG.  --threads and --budget work before or after
`bench`."""
import argparse
import json
import math
import platform
import sys
import time

import cnorm
from cnorm import _bench

# the self-benchmark's implementations, and the default seconds per timing
QUICK_IMPLS = ["cnorm", "torch", "onnxruntime", "numpy", "roofline"]
BUDGET = {None: 0.2, "bench": 0.3}
WIDTH = 100  # no output line is wider (tests/test_cli.py checks)
GBPS = "GB/s counts a read of x and a write of y per call (add x+r: 2 of them; fwd+bwd: 2.5, 4 for BN)"


def thread_count(text):
    n = int(text)  # not an int: argparse says "invalid thread_count value"
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0 (0: OpenMP's default), got {n}")
    return n


def seconds(text):
    t = float(text)
    if not (math.isfinite(t) and t > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text}")
    return t


def add_run_options(parser, default):
    """--threads and --budget, defined once for the top level and for
    `bench`.  The subcommand's copies default to SUPPRESS so that, when not
    given after `bench`, they leave the value given before it in place
    (argparse would otherwise overwrite it with the subcommand's default)."""
    parser.add_argument("--threads", type=thread_count, default=default,
                        help="threads for cnorm and the peers (default: OpenMP's)")
    parser.add_argument("--budget", type=seconds, default=default,
                        help=f"seconds per timing (default {BUDGET[None]}; {BUDGET['bench']} for bench)")


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m cnorm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cnorm {cnorm.__version__}")
    add_run_options(parser, None)
    parser.add_argument("--no-bench", action="store_true", help="only print the configuration")
    sub = parser.add_subparsers(dest="command")
    bench = sub.add_parser("bench", help="run the benchmark cases")
    bench.add_argument("--cases", default="all",
                       help="comma-separated case ids, names or substrings (default all): "
                            + ", ".join(c.id for c in _bench.CASES))
    bench.add_argument("--impls", default=",".join(_bench.IMPLS),
                       help="comma-separated implementations (default all): " + ", ".join(_bench.IMPLS))
    add_run_options(bench, argparse.SUPPRESS)
    bench.add_argument("--json", metavar="PATH", help="write the results as JSON (benchmarks/table.py reads it)")
    bench.add_argument("--plot", metavar="PATH", help="draw GB/s per case and implementation (PNG; needs matplotlib)")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = BUDGET[args.command]
    return parser, args


# ---- the table: a heading line per case, then a line per implementation -------

COLUMNS = f"{'':<16}{'median us':>11}{'min us':>11}{'IQR':>7}{'GB/s':>8}{'time/cnorm':>12}"
LEGEND = (f"IQR: interquartile range, % of the median. noisy: IQR > {_bench.NOISY_IQR:.0%} of the median\n"
          f"or median > {_bench.NOISY_MEDIAN_OVER_MIN}x the minimum (a busy host: rerun, or raise --budget).")


def format_case(i, n, case, rows):
    """The lines of one measured case; `[i/n]` on its heading when n > 1."""
    lines = [case.name + (f"  [{i}/{n}]" if n > 1 else "")]
    cnorm_median = next((r["median_s"] for r in rows if r["impl"] == "cnorm"), None)
    for r in rows:
        line = f"  {r['impl']:<14}"
        if r["status"] != "ok":
            lines.append(line + f"{r['status']:>11}")
            continue
        median = r["median_s"]
        ratio = f"{median / cnorm_median:.2f}" if cnorm_median and r["impl"] != "cnorm" else ""
        line += (f"{median * 1e6:>11.1f}{r['min_s'] * 1e6:>11.1f}{(r['q3_s'] - r['q1_s']) / median:>7.0%}"
                 f"{r['gbps']:>8.1f}{ratio:>12}" + ("  noisy" if r["noisy"] else ""))
        lines.append(line.rstrip())
    return lines


def run_table(cases, impls, budget, counts):
    """Measure, print each case as it is measured (with `[i/n]` if
    `counts`), then the legend; returns the results."""
    print(COLUMNS, flush=True)
    results = _bench.run_suite(cases, impls, budget,
                               progress=lambda i, n, case, rows: print(
                                   "\n".join(format_case(i, n if counts else 1, case, rows)), flush=True))
    print(LEGEND)
    return results


# ---- commands ------------------------------------------------------------------

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
            parser.error(_bench.PLOT_HINT)
    threads = cnorm.get_num_threads()
    print(f"cnorm {cnorm.__version__} benchmark: {len(cases)} cases x {len(impls)} implementations,\n"
          f"float32, {threads} thread{'s' * (threads != 1)}, ISA {cnorm.get_isa()};\n{GBPS}\n",
          flush=True)
    start = time.perf_counter()
    results = run_table(cases, impls, args.budget, counts=True)
    print(f"\n{time.perf_counter() - start:.0f} s", flush=True)
    meta = {"version": cnorm.__version__, "isa": cnorm.get_isa(), "threads": threads,
            "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"), "dtype": "float32",
            "budget_s": args.budget}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        _bench.plot(results, args.plot, title=f"cnorm {meta['version']}, {threads} threads, "
                                              f"{meta['isa']}, {meta['date']}")
        print(f"wrote {args.plot}")
    return 0


def apply_threads(parser, n):
    try:
        _bench.set_threads(n)
    except (ValueError, OverflowError) as e:  # beyond what cnorm's int arguments take
        parser.error(f"argument --threads: {e}")


def main(argv=None):
    parser, args = parse(argv)
    if args.threads is not None:
        apply_threads(parser, args.threads)
    if args.command == "bench":
        return run_bench(parser, args)
    cnorm.show_config()
    if args.no_bench:
        return 0
    threads = cnorm.get_num_threads()
    print(f"\nself-benchmark: float32, {threads} thread{'s' * (threads != 1)};\n{GBPS}\n")
    run_table([_bench.CASES_BY_NAME[c] for c in _bench.QUICK], QUICK_IMPLS, args.budget, counts=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
