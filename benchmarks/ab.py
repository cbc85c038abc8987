#!/usr/bin/env python3
"""A/B speed comparison of two cnorm installs on the README benchmark cases.

    python benchmarks/ab.py --a old-venv/bin/python --b new-venv/bin/python \
        [--runs 5] [--cases all] [--threads 2] [--budget 0.3] [--out-dir DIR]

Runs ``python -m cnorm bench --impls cnorm,cnorm_out[,roofline] --json ...``
in alternating, order-balanced processes (A B B A A B B A ...), --runs per
side, each process timing every chosen case; then takes per-case medians
over the runs of each side and prints a markdown table (A = old, B = new):
case, old/new cnorm us, new/old, old/new cnorm_out us, new/old, the
roofline ratio as a control for the machine's state, and the spread of each
side's runs ((max - min) / median).  A case whose new/old exceeds
1 + --threshold (default 3%) on either impl is marked.  Each process's JSON
and a summary (ab.json) are written to --out-dir.

The processes run from --out-dir (not from a source tree, so each
interpreter imports its own installed cnorm), under ``nice -n --nice``.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


def probe(python, cwd):
    code = ("import json, cnorm, cnorm._bench as b; print(json.dumps({'file': cnorm.__file__, "
            "'version': cnorm.__version__, 'isa': cnorm.get_isa(), 'threads': cnorm.get_num_threads(), "
            "'cases': [c.name for c in b.CASES]}))")
    out = subprocess.run([python, "-c", code], cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"ab.py: {python} cannot import cnorm:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def schedule(runs):
    """A B B A A B B A ...: `runs` processes per side, each side first equally often."""
    order = []
    while len(order) < 2 * runs:
        order += ["A", "B", "B", "A"]
    order = order[:2 * runs]
    if order.count("A") != runs:  # odd runs: the last pair is "A B"
        order[-2:] = ["A", "B"]
    return order


def run_one(python, args, json_path, cwd, log):
    cmd = []
    if args.nice and shutil.which("nice"):
        cmd += ["nice", "-n", str(args.nice)]
    cmd += [python, "-m", "cnorm", "bench", "--cases", args.cases, "--impls", args.impls_all,
            "--budget", str(args.budget), "--json", json_path]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(f"ab.py: {' '.join(cmd)} failed ({proc.returncode}); see {log}")
    with open(json_path) as f:
        return json.load(f), time.time() - t0


def busy_cpus(seconds=0.5):
    """CPUs busy (user+nice+system) over a short window, from /proc/stat; None if unknown."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:3]) + sum(v[5:8]), sum(v)   # busy (user nice system irq softirq steal), total
    try:
        b0, t0 = snap()
        time.sleep(seconds)
        b1, t1 = snap()
        return (b1 - b0) / (t1 - t0) * (os.cpu_count() or 1) if t1 > t0 else None
    except (OSError, ValueError):
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return None
    m = statistics.median(xs)
    return (max(xs) - min(xs)) / m if m else None


def table(summary, impls, threshold, with_roof):
    cases = summary["cases"]
    t = summary["times"]   # side -> impl -> case -> [seconds per run]
    head = ["case"]
    for impl in impls:
        head += [f"old {impl} us", f"new {impl} us", "new/old"]
    if with_roof:
        head += ["roofline new/old"]
    head += ["spread old/new (" + ", ".join(impls) + ")", ""]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|"]
    flagged = []
    ratios = {impl: [] for impl in impls}
    for case in cases:
        row = [case]
        slow = False
        sp = []
        for impl in impls:
            a, b = med(t["A"][impl][case]), med(t["B"][impl][case])
            r = b / a if a and b else None
            if r is not None:
                ratios[impl].append(r)
            mark = ""
            if r is not None and r > 1 + threshold:
                slow = True
                mark = " **"
            row += ["-" if a is None else f"{a * 1e6:.1f}", "-" if b is None else f"{b * 1e6:.1f}",
                    "-" if r is None else f"{r:.3f}{mark}"]
            sa, sb = spread(t["A"][impl][case]), spread(t["B"][impl][case])
            sp.append(f"{'-' if sa is None else f'{100 * sa:.0f}%'}/{'-' if sb is None else f'{100 * sb:.0f}%'}")
        if with_roof:
            a, b = med(t["A"]["roofline"][case]), med(t["B"]["roofline"][case])
            row.append(f"{b / a:.3f}" if a and b else "-")
        row.append(" ".join(sp))
        row.append(f"SLOWER > {100 * threshold:.0f}%" if slow else "")
        if slow:
            flagged.append(case)
        lines.append("| " + " | ".join(row) + " |")
    foot = []
    for impl in impls:
        rs = ratios[impl]
        if rs:
            gm = 1.0
            for r in rs:
                gm *= r
            gm **= 1 / len(rs)
            foot.append(f"{impl}: geometric mean new/old {gm:.3f}, range {min(rs):.3f} .. {max(rs):.3f}")
    return "\n".join(lines), foot, flagged


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", "--old", dest="a", required=True, help="python of the old install (A)")
    ap.add_argument("--b", "--new", dest="b", required=True, help="python of the new install (B)")
    ap.add_argument("--runs", type=int, default=5, help="processes per side (default 5)")
    ap.add_argument("--cases", default="all", help="cases: comma-separated ids/names/substrings (default all)")
    ap.add_argument("--threads", type=int, default=2, help="threads (default 2; 0: OpenMP's default)")
    ap.add_argument("--budget", type=float, default=0.3, help="seconds per timing (default 0.3)")
    ap.add_argument("--impls", default="cnorm,cnorm_out", help="impls to compare (default cnorm,cnorm_out)")
    ap.add_argument("--no-roofline", action="store_true", help="don't time the roofline control")
    ap.add_argument("--threshold", type=float, default=0.03, help="mark new/old above 1+this (default 0.03)")
    ap.add_argument("--nice", type=int, default=5, help="nice level of the runs (default 5; 0: none)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="before each run wait up to SECONDS for the machine to be quiet "
                         "(< --quiet-cpus busy); default 0: don't wait")
    ap.add_argument("--quiet-cpus", type=float, default=0.3, help="busy CPUs counted as quiet (default 0.3)")
    ap.add_argument("--out-dir", default=None, help="where to write the raw JSON (default ./ab-<time>)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    with_roof = not args.no_roofline and "roofline" not in impls
    args.impls_all = ",".join(impls + (["roofline"] if with_roof else []))
    out_dir = os.path.abspath(args.out_dir or "ab-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)

    pa, pb = probe(args.a, out_dir), probe(args.b, out_dir)
    print(f"A (old): {args.a}: cnorm {pa['version']} from {pa['file']}, ISA {pa['isa']}")
    print(f"B (new): {args.b}: cnorm {pb['version']} from {pb['file']}, ISA {pb['isa']}")
    if pa["isa"] != pb["isa"]:
        print(f"WARNING: default ISAs differ ({pa['isa']} vs {pb['isa']})")
    order = schedule(args.runs)
    print(f"order: {' '.join(order)}; cases {args.cases}; impls {args.impls_all}; threads {args.threads}; "
          f"budget {args.budget} s; out {out_dir}", flush=True)

    runs = []
    t_start = time.time()
    for i, side in enumerate(order):
        py = args.a if side == "A" else args.b
        path = os.path.join(out_dir, f"run{i:02d}-{side}.json")
        busy = busy_cpus()
        waited = 0.0
        while args.wait_quiet and busy is not None and busy >= args.quiet_cpus and waited < args.wait_quiet:
            time.sleep(2.0)
            waited += 2.5
            busy = busy_cpus()
        data, secs = run_one(py, args, path, out_dir, path[:-5] + ".log")
        runs.append({"index": i, "side": side, "python": py, "json": path, "seconds": secs, "busy_before": busy,
                     "meta": data.get("meta"), "results": data["results"]})
        cn = {r["case"]: r["median_s"] for r in data["results"] if r["impl"] == impls[0]}
        print(f"  run {i + 1}/{len(order)} {side}: {secs:.0f} s, "
              f"{'?' if busy is None else f'{busy:.1f}'} of {os.cpu_count()} CPUs busy before it "
              f"(threads {data.get('meta', {}).get('threads')}, {impls[0]} total "
              f"{sum(v for v in cn.values() if v) * 1e3:.2f} ms)", flush=True)
    total = time.time() - t_start

    cases = list(dict.fromkeys(r["case"] for run in runs for r in run["results"]))
    all_impls = impls + (["roofline"] if with_roof else [])
    times = {s: {im: {c: [] for c in cases} for im in all_impls} for s in ("A", "B")}
    for run in runs:
        for r in run["results"]:
            if r["impl"] in times[run["side"]]:
                times[run["side"]][r["impl"]][r["case"]].append(r["median_s"])
    summary = {"a": args.a, "b": args.b, "probe_a": pa, "probe_b": pb, "order": order,
               "args": {k: v for k, v in vars(args).items()}, "cases": cases, "times": times,
               "seconds": total, "runs": [{k: v for k, v in r.items() if k != "results"} for r in runs]}
    tab, foot, flagged = table(summary, impls, args.threshold, with_roof)
    summary["flagged"] = flagged
    summary["table"] = tab
    with open(os.path.join(out_dir, "ab.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\nmedians of {args.runs} runs per side, {args.threads} threads; "
          f"'**': new/old > {1 + args.threshold:.2f}; spread = (max - min) / median of a side's runs\n")
    print(tab)
    print()
    for line in foot:
        print(line)
    print(f"{len(flagged)} case(s) slower than {100 * args.threshold:.0f}%: {', '.join(flagged) or '-'}")
    busy = [r["busy_before"] for r in runs if r["busy_before"] is not None]
    if busy and max(busy) > 0.5:
        print(f"WARNING: other processes kept up to {max(busy):.1f} of {os.cpu_count()} CPUs busy between runs: "
              "with --threads > 1 OpenMP regions then wait for descheduled threads (timings of ~10 ms are "
              "scheduler slices, not cnorm); measure on a quiet machine or compare --threads 1")
    print(f"total {total:.0f} s; raw JSON in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
