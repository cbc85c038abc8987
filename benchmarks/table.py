"""Render benchmark JSON files as the README's Markdown table.

    pytest benchmarks --benchmark-enable --benchmark-only --benchmark-json=bench.json
    python -m cnorm bench --json bench.json          # or this: the same cases
    python benchmarks/table.py bench.json [more.json ...]

It reads both formats: pytest-benchmark's JSON and the JSON of
`python -m cnorm bench --json` (its schema: cnorm/_bench.py, run_suite), in
any mix.  With several files (repeated runs) each cell is the median of the
runs' medians, which damps the noise of a shared machine.
Medians in microseconds; "peer/cnorm" is the faster of torch and
onnxruntime divided by cnorm (higher is better); "out/roof" is cnorm with
out= over the roofline (1.0 is the memory limit).
"""
import json
import statistics
import sys

IMPLS = ["cnorm", "cnorm_out", "torch", "onnxruntime", "numpy", "roofline"]


def read(data):
    """(medians, info) of one loaded file: medians a list of (case, impl,
    median in us) for what was measured, info a line naming the date and
    the machine."""
    if "benchmarks" in data:  # pytest-benchmark
        medians = [(b["group"], b["params"]["impl"], b["stats"]["median"] * 1e6) for b in data["benchmarks"]]
        info = data.get("machine_info", {})
        return medians, (f"{data.get('datetime', '')[:10]}, {info.get('cpu', {}).get('brand_raw', '')}, "
                         f"python {info.get('python_version', '')}")
    if "results" in data:  # python -m cnorm bench --json; a row not measured has median_s None
        medians = [(r["case"], r["impl"], r["median_s"] * 1e6) for r in data["results"]
                   if r.get("median_s") is not None]
        meta = data.get("meta", {})
        return medians, (f"{meta.get('date', '')}, {meta.get('machine', '')}, cnorm {meta.get('version', '')}, "
                         f"{meta.get('threads', '?')} threads, ISA {meta.get('isa', '?')}")
    raise ValueError("neither pytest-benchmark JSON (a 'benchmarks' list) nor "
                     "`python -m cnorm bench --json` output (a 'results' list)")


def render(loaded):
    """The Markdown table (a list of lines) of a list of loaded files."""
    runs, info = {}, ""
    for data in loaded:
        medians, info = read(data)
        for case, impl, us in medians:
            runs.setdefault(case, {}).setdefault(impl, []).append(us)
    med = {case: {impl: statistics.median(v) for impl, v in row.items()} for case, row in runs.items()}
    lines = ["| case | " + " | ".join(IMPLS) + " | peer/cnorm | out/roof |", "|---" * (len(IMPLS) + 3) + "|"]
    for case, row in med.items():
        cells = [f"{row[i]:.1f}" if i in row else "-" for i in IMPLS]
        peers = [row[i] for i in ("torch", "onnxruntime") if i in row]
        ratio = f"{min(peers) / row['cnorm']:.2f}" if peers and "cnorm" in row else "-"
        roof = f"{row['cnorm_out'] / row['roofline']:.2f}" if "cnorm_out" in row and "roofline" in row else "-"
        lines.append(f"| {case} | " + " | ".join(cells) + f" | {ratio} | {roof} |")
    lines += ["", f"{info}, {len(loaded)} run(s)"]
    return lines


def main(paths):
    loaded = []
    for path in paths:
        with open(path) as f:
            loaded.append(json.load(f))
    print("\n".join(render(loaded)))


if __name__ == "__main__":
    main(sys.argv[1:])
