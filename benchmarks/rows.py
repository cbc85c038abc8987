#!/usr/bin/env python3
"""Row-speed table: layer and RMS norm and their fused residual-add forms over
the transformer range, cnorm against torch, ONNX Runtime and the roofline.

    python benchmarks/rows.py                       # the whole grid, 5 runs
    python benchmarks/rows.py --ops LN,add-RMS --rows 1,2048 --cols 4096 \\
        --threads 2 --runs 5 --json rows.json

Cases: each op (--ops: LN, RMS, add-LN, add-RMS) on float32 arrays of
--rows x --cols (default: rows of 768, 1001, 1024, 4096 and 8192 values,
1 to 8192 of them), at each thread count of --threads (default 1,2).
Implementations (--impls), as cnorm/_bench.py defines them: cnorm with
out= (and sum_out= for the add forms), torch (x + r, then F.layer_norm /
F.rms_norm), ONNX Runtime (LayerNormalization, RMSNormalization from opset
23 where this build has it, SkipLayerNormalization /
SkipSimplifiedLayerNormalization with their sum output), and the roofline:
`y = a*x + b` over the same bytes (one read and one write of x's size for
LN/RMS, two of each for the add forms: x and r in, s and y out).

Timing: --runs processes, one after another, each a fresh interpreter that
times every case at every thread count; within a case the implementations
run one after another (each over --budget seconds, the median of its calls,
_bench.time_call), in the order cnorm, torch, ORT, roofline in the first
process and the reverse in the next, alternating, so that a drift of the
machine's state within a case favours neither side.  A cell is the median
over the processes of those medians (use --runs 5 or more for the table).

The table: median microseconds (the fastest of cnorm, torch and ORT in
bold), "best peer/cnorm" (the faster of torch and ORT over cnorm; higher is
better), "cnorm/roofline" (1.00 is the memory limit), and "targets": "ok",
or the targets of issue 13 that the case misses:
- "slower than torch" / "slower than ORT": cnorm must never be slower;
- "< 1.5x peers": cnorm must be at least 1.5x faster than the faster peer,
  unless it is within 1.15x of the roofline;
- "> 1.3x roofline" for a case in cache, "> 1.15x roofline" above L2.
A case is in cache when the bytes it moves fit in the L2 of the threads it
runs on (threads x --l2-kib; default: this CPU's L2 per core from sysfs,
else 2 MiB, the issue's CPU).  --json writes every cell, the per-process
medians and the misses.
"""
import argparse
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import cnorm
from cnorm import _bench

COLS = [768, 1001, 1024, 4096, 8192]
ROWS = [1, 8, 32, 128, 333, 512, 1576, 2048, 8192]
THREADS = [1, 2]
RUNS = 5
BUDGET = 0.1
# the table's columns, in the forward timing order; the labels as printed
IMPLS = ["cnorm_out", "torch", "onnxruntime", "roofline"]
LABELS = {"cnorm_out": "cnorm", "torch": "torch", "onnxruntime": "ORT", "roofline": "roofline"}
PEERS = ("torch", "onnxruntime")

# issue 13's targets
PEER_SPEEDUP = 1.5     # cnorm at least this much faster than the faster peer...
NEAR_ROOFLINE = 1.15   # ...unless within this factor of the roofline
ROOF_IN_CACHE = 1.3    # cnorm/roofline at most this in cache
ROOF_ABOVE_L2 = 1.15   # and this above L2
L2_FALLBACK = 2 << 20  # bytes per core: the CPU


def _key(text):
    return text.strip().lower().replace(" ", "-").replace("_", "-")


# "LN", "add-RMS", "add LN", "add_rms", "layer", ... -> the op
OP_NAMES = {**{_key(label): op for op, label in _bench.ROW_OPS.items()}, **{_key(op): op for op in _bench.ROW_OPS}}


def _items(text, option):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{option}: expected a comma-separated list, got {text!r}")
    return list(dict.fromkeys(items))


def parse_ints(text, option, low=1):
    """The comma-separated integers of `option`'s value, each >= low."""
    values = []
    for item in _items(text, option):
        try:
            values.append(int(item))
        except ValueError:
            raise ValueError(f"{option}: expected comma-separated integers, got {item!r}") from None
    small = [v for v in values if v < low]
    if small:
        raise ValueError(f"{option}: expected integers >= {low}, got {small}")
    return list(dict.fromkeys(values))


def parse_int(text, option, low=1):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise ValueError(f"{option}: expected an integer >= {low}, got {text!r}")
    return value


def parse_ops(text):
    unknown = [t for t in _items(text, "--ops") if _key(t) not in OP_NAMES]
    if unknown:
        names = ", ".join(label.replace(" ", "-") for label in _bench.ROW_OPS.values())
        raise ValueError(f"--ops: unknown {unknown}; choose from {names}")
    return list(dict.fromkeys(OP_NAMES[_key(t)] for t in _items(text, "--ops")))


def parse_impls(text):
    impls = _items(text, "--impls")
    unknown = [i for i in impls if i not in IMPLS]
    if unknown:
        raise ValueError(f"--impls: unknown {unknown}; choose from {', '.join(IMPLS)}")
    return [i for i in IMPLS if i in impls]  # the table's order


def parse_budget(text):
    try:
        t = float(text)
    except ValueError:
        t = math.nan
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"--budget: expected a finite number of seconds > 0, got {text!r}")
    return t


def l2_per_core():
    """(bytes, source) of cpu0's L2 from sysfs, else the issue's 2 MiB."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for index in sorted(os.listdir(base)):
            def read(name):
                with open(os.path.join(base, index, name)) as f:
                    return f.read().strip()
            if read("level") == "2" and read("type") in ("Unified", "Data"):
                size = read("size")  # "512K", "2048K", "2M"
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1], 1)
                return int(size.rstrip("KM")) * scale, "sysfs"
    except (OSError, ValueError):
        pass
    return L2_FALLBACK, "default (issue 13's CPU)"


def parser():
    p = argparse.ArgumentParser(prog="python benchmarks/rows.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", default=",".join(label.replace(" ", "-") for label in _bench.ROW_OPS.values()),
                   help="comma-separated ops (default all): LN, RMS, add-LN, add-RMS")
    p.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated row counts")
    p.add_argument("--cols", default=",".join(map(str, COLS)), help="comma-separated row lengths")
    p.add_argument("--threads", default=",".join(map(str, THREADS)), help="comma-separated thread counts")
    p.add_argument("--runs", default=str(RUNS), help=f"processes, alternating the order (default {RUNS})")
    p.add_argument("--budget", default=str(BUDGET), help=f"seconds per timing (default {BUDGET})")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated implementations (default all)")
    p.add_argument("--l2-kib", default=None, help="L2 per core in KiB (default: sysfs, else 2048)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    # a worker process: measure in this order, write the records to PATH
    p.add_argument("--worker-reverse", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    return p


def selection(args):
    """The validated options; ValueError names the option at fault."""
    if args.l2_kib is None:
        l2, l2_source = l2_per_core()
    else:
        l2, l2_source = parse_int(args.l2_kib, "--l2-kib") << 10, "--l2-kib"
    return argparse.Namespace(
        ops=parse_ops(args.ops), rows=parse_ints(args.rows, "--rows"), cols=parse_ints(args.cols, "--cols"),
        threads=parse_ints(args.threads, "--threads"), runs=parse_int(args.runs, "--runs"),
        budget=parse_budget(args.budget),
        impls=parse_impls(args.impls), l2=l2, l2_source=l2_source)


def cases(sel):
    return [_bench.row_case(op, r, c) for op in sel.ops for c in sel.cols for r in sel.rows]


def measure(sel, reverse=False):
    """One process's records: run_suite's rows (status, median_s, ...) of
    every case at every thread count, with "threads" added; the
    implementations of each case in the table's order, or reversed."""
    order = sel.impls[::-1] if reverse else sel.impls
    records = []
    for n in sel.threads:
        # before run_suite builds the implementations (ORT takes cnorm's count
        # then); torch's count only if torch runs (setting it imports torch)
        if "torch" in sel.impls:
            _bench.set_threads(n)
        else:
            cnorm.set_num_threads(n)
        for row in _bench.run_suite(cases(sel), order, sel.budget):
            records.append(dict(row, threads=n))
    return records


def worker_argv(sel):
    """The options that make a worker measure `sel`."""
    labels = [_bench.ROW_OPS[op].replace(" ", "-") for op in sel.ops]
    return ["--ops", ",".join(labels), "--rows", ",".join(map(str, sel.rows)),
            "--cols", ",".join(map(str, sel.cols)), "--threads", ",".join(map(str, sel.threads)),
            "--budget", repr(sel.budget), "--impls", ",".join(sel.impls), "--l2-kib", str(sel.l2 >> 10)]


def run_processes(sel, log=None):
    """Each process's records, from sel.runs fresh interpreters, the order
    reversed in every other one."""
    log = log or sys.stderr
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(sel.runs):
            out = os.path.join(tmp, f"run{k}.json")
            cmd = [sys.executable, os.path.abspath(__file__)] + worker_argv(sel) + ["--worker-out", out]
            if k % 2:
                cmd.append("--worker-reverse")
            t0 = time.perf_counter()
            if subprocess.run(cmd).returncode:
                sys.exit(f"rows.py: run {k + 1} failed (its error is above)")
            with open(out) as f:
                runs.append(json.load(f))
            print(f"run {k + 1}/{sel.runs} ({'reversed' if k % 2 else 'forward'} order): "
                  f"{time.perf_counter() - t0:.0f} s", file=log, flush=True)
    return runs


def misses(us, in_cache):
    """The targets a case misses, given its median us per implementation
    (None: not measured)."""
    c, roof = us.get("cnorm_out"), us.get("roofline")
    if c is None:
        return ["cnorm not measured"]
    out = [f"slower than {LABELS[p]}" for p in PEERS if us.get(p) is not None and c > us[p]]
    over_roof = c / roof if roof else None
    peers = [us[p] for p in PEERS if us.get(p) is not None]
    if peers and min(peers) / c < PEER_SPEEDUP and not (over_roof is not None and over_roof <= NEAR_ROOFLINE):
        out.append(f"< {PEER_SPEEDUP}x peers")
    limit = ROOF_IN_CACHE if in_cache else ROOF_ABOVE_L2
    if over_roof is not None and over_roof > limit:
        out.append(f"> {limit}x roofline")
    return out


def combine(runs, sel):
    """One entry per (case, threads): the medians over the runs, the ratios,
    whether it is in cache and the targets it misses."""
    runs_us, status = {}, {}
    for records in runs:
        for r in records:
            key = (r["case"], r["threads"], r["impl"])
            status[key] = r["status"]
            if r["median_s"] is not None:
                runs_us.setdefault(key, []).append(r["median_s"] * 1e6)
    entries = []
    for case in cases(sel):
        for n in sel.threads:
            keys = {i: (case.name, n, i) for i in sel.impls}
            us = {i: statistics.median(runs_us[k]) if k in runs_us else None for i, k in keys.items()}
            in_cache = case.nbytes <= n * sel.l2
            peers = [us[p] for p in PEERS if us.get(p) is not None]
            c, roof = us.get("cnorm_out"), us.get("roofline")
            entries.append({
                "case": case.name, "op": case.op, "rows": case.shape[0], "cols": case.shape[1], "threads": n,
                "bytes": case.nbytes, "in_cache": in_cache, "us": us,
                "best_peer_over_cnorm": min(peers) / c if peers and c else None,
                "cnorm_over_roofline": c / roof if c and roof else None,
                "misses": misses(us, in_cache),
                "status": {i: status.get(k, "-") for i, k in keys.items()},
                "runs_us": {i: runs_us.get(k, []) for i, k in keys.items()}})
    return entries


def _us(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def render(entries, sel):
    """The Markdown table (a list of lines) and its summary."""
    head = ["case", "threads"] + [LABELS[i] for i in sel.impls] + ["best peer/cnorm", "cnorm/roofline", "targets"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for e in entries:
        timed = {i: v for i, v in e["us"].items() if v is not None and i != "roofline"}
        fastest = min(timed, key=timed.get) if len(timed) > 1 else None
        cells = []
        for i in sel.impls:
            v = e["us"][i]
            cell = _us(v) if v is not None else e["status"].get(i, "-")
            cells.append(f"**{cell}**" if i == fastest else cell)
        ratios = [f"{e[k]:.2f}" if e[k] is not None else "-" for k in ("best_peer_over_cnorm", "cnorm_over_roofline")]
        lines.append(f"| {e['case']} | {e['threads']} | " + " | ".join(cells + ratios) + " | "
                     + ("; ".join(e["misses"]) or "ok") + " |")
    met = sum(not e["misses"] for e in entries)
    lines += ["", f"{met} of {len(entries)} cases meet every target.  Median us over {sel.runs} process(es) "
                  f"of {sel.budget} s timings each; in cache: bytes moved <= threads x L2 "
                  f"({sel.l2 >> 10} KiB per core, {sel.l2_source})."]
    return lines


def meta(sel, argv):
    info = {"command": " ".join(["python", "benchmarks/rows.py"] + list(argv)), "date": time.strftime("%Y-%m-%d"),
            "cnorm": cnorm.__version__, "isa": cnorm.get_isa(), "machine": platform.machine(),
            "processor": platform.processor(), "runs": sel.runs, "budget_s": sel.budget,
            "l2_bytes_per_core": sel.l2, "l2_source": sel.l2_source, "dtype": "float32"}
    for name in ("torch", "onnxruntime"):  # the installed versions, without importing them
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    return info


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args = p.parse_args(argv)
    try:
        sel = selection(args)
    except ValueError as e:
        p.error(str(e))
    if args.worker_out:
        with open(args.worker_out, "w") as f:
            json.dump(measure(sel, reverse=args.worker_reverse), f)
        return 0
    entries = combine(run_processes(sel), sel)
    print("\n".join(render(entries, sel)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta(sel, argv), "cases": entries}, f, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
