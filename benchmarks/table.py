"""Render pytest-benchmark JSON files as the README's Markdown table.

    pytest benchmarks --benchmark-enable --benchmark-only --benchmark-json=bench.json
    python benchmarks/table.py bench.json [more.json ...]

With several files (repeated runs) each cell is the median of the runs'
medians, which damps the noise of a shared machine.
Medians in microseconds; "peer/cnorm" is the faster of torch and
onnxruntime divided by cnorm (higher is better); "out/roof" is cnorm with
out= over the roofline (1.0 is the memory limit).
"""
import json
import statistics
import sys

IMPLS = ["cnorm", "cnorm_out", "torch", "onnxruntime", "numpy", "roofline"]


def main(paths):
    runs = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for b in data["benchmarks"]:
            runs.setdefault(b["group"], {}).setdefault(b["params"]["impl"], []).append(b["stats"]["median"] * 1e6)
    med = {case: {impl: statistics.median(v) for impl, v in row.items()} for case, row in runs.items()}
    print("| case | " + " | ".join(IMPLS) + " | peer/cnorm | out/roof |")
    print("|---" * (len(IMPLS) + 3) + "|")
    for case, row in med.items():
        cells = [f"{row[i]:.1f}" if i in row else "-" for i in IMPLS]
        peers = [row[i] for i in ("torch", "onnxruntime") if i in row]
        ratio = f"{min(peers) / row['cnorm']:.2f}" if peers and "cnorm" in row else "-"
        roof = f"{row['cnorm_out'] / row['roofline']:.2f}" if "cnorm_out" in row and "roofline" in row else "-"
        print(f"| {case} | " + " | ".join(cells) + f" | {ratio} | {roof} |")
    info = data.get("machine_info", {})
    print(f"\n{data.get('datetime', '')[:10]}, {info.get('cpu', {}).get('brand_raw', '')}, "
          f"python {info.get('python_version', '')}, {len(paths)} run(s)")


if __name__ == "__main__":
    main(sys.argv[1:])
