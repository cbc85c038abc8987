#!/usr/bin/env python3
"""Compare two bitwise_record.py recordings (old vs new).

    python bitwise_compare.py old.pkl new.pkl [--examples N] [--all-unmatched]

Prints the calls and keys of each run, how many keys (input digest,
function, ISA) match, how many matched calls have bitwise-identical outputs
(result arrays, arrays modified in place, or the same exception type), and
for the differing ones a table grouped by (function, output dtype, ISA):
count, worst max-abs difference, worst difference in ulps of the output
dtype (|new - old| / spacing(old) in that dtype; NaN vs number counts as
inf), and example arguments.  Exit status 0 whatever the result; 2 on a
usage error.
"""
import argparse
import collections
import pickle
import sys

import numpy as np

try:  # bfloat16 arrays in the pickles need ml_dtypes to unpickle
    import ml_dtypes  # noqa: F401
except ImportError:
    ml_dtypes = None


def load(path):
    with open(path, "rb") as f:
        data = pickle.load(f)
    if not isinstance(data, dict) or "records" not in data:
        raise ValueError(f"{path}: not a bitwise_record.py recording")
    return data


def _finfo(dt):
    try:
        return np.finfo(dt)
    except (TypeError, ValueError):
        if ml_dtypes is not None:
            try:
                return ml_dtypes.finfo(dt)
            except (TypeError, ValueError):
                return None
        return None


def ulp_of(old, dt):
    """spacing(|old|) in dtype dt, as float64."""
    a = np.abs(old.astype(np.float64))
    if dt in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)):
        with np.errstate(all="ignore"):
            return np.abs(np.spacing(np.abs(old).astype(dt))).astype(np.float64)
    fi = _finfo(dt)
    if fi is None:
        return np.ones_like(a)
    with np.errstate(all="ignore"):
        e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
        e = np.maximum(np.where(a > 0, e, fi.minexp), fi.minexp)
        return np.exp2(e - fi.nmant)


def diff_stats(old, new):
    """(max abs diff, max ulps, n elements differing) of two arrays; None if not comparable."""
    if old.shape != new.shape:
        return None
    dt = old.dtype
    if dt.kind in "biu":
        d = np.abs(old.astype(np.float64) - new.astype(np.float64))
        return float(d.max(initial=0)), float(d.max(initial=0)), int((d != 0).sum())
    if new.dtype != dt:
        try:
            new = new.astype(dt)
        except (TypeError, ValueError):
            return None
    o, n = old.astype(np.float64), new.astype(np.float64)
    same = (o == n) | (np.isnan(o) & np.isnan(n))
    # -0.0 vs 0.0 compare equal as values but differ in bits
    same &= (np.signbit(o) == np.signbit(n)) | np.isnan(o)
    if same.all():
        return 0.0, 0.0, 0
    with np.errstate(all="ignore"):
        d = np.abs(o - n)
        d = np.where(np.isnan(o) != np.isnan(n), np.inf, d)
        d = np.where(same, 0.0, d)
        d = np.where(~same & (d == 0), 0.0, d)   # signed zeros: 0 abs, 0 ulps, still counted
        ulps = d / ulp_of(old, dt)
        ulps = np.where(np.isinf(d), np.inf, ulps)
    return float(np.nanmax(d)), float(np.nanmax(ulps)), int((~same).sum())


def out_dtype(rec):
    meta = rec.get("meta") or {}
    for path in sorted(meta):
        if path.startswith("result"):
            return meta[path]["dtype"]
    for path in sorted(meta):
        return meta[path]["dtype"]
    return "-"


def example(rec):
    args = rec.get("args") or {}
    s = ", ".join(f"{k}={v}" for k, v in args.items())
    return s if len(s) <= 160 else s[:157] + "..."


def fmt(v):
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    if v == float("inf"):
        return "inf"
    return f"{v:.3g}"


def compare(old, new, examples=2, all_unmatched=False):
    ro, rn = old["records"], new["records"]
    so, sn = old.get("stats", {}), new.get("stats", {})
    print(f"old: {so.get('calls', '?')} recorded calls, {len(ro)} distinct keys "
          f"({so.get('skipped_tracing', 0)} calls under tracemalloc not recorded)  [{old.get('cnorm_file', '?')}]")
    print(f"new: {sn.get('calls', '?')} recorded calls, {len(rn)} distinct keys "
          f"({sn.get('skipped_tracing', 0)} calls under tracemalloc not recorded)  [{new.get('cnorm_file', '?')}]")
    matched = [k for k in ro if k in rn]
    print(f"matched keys: {len(matched)} ({100 * len(matched) / max(len(ro), 1):.2f}% of old, "
          f"{100 * len(matched) / max(len(rn), 1):.2f}% of new)")

    racy = [k for k in matched if ro[k].get("racy") or rn[k].get("racy")]
    racy_set = set(racy)
    if racy:
        racy_same = sum(1 for k in racy if ro[k]["exc"] == rn[k]["exc"] and
                        (ro[k]["exc"] or ro[k]["outs"] == rn[k]["outs"]))
        print(f"racy (a concurrent call or an ISA/thread change while it ran; excluded below): "
              f"{len(racy)} matched keys, {racy_same} of them identical")
        matched = [k for k in matched if k not in racy_set]
    threads_diff = sum(1 for k in matched if ro[k].get("threads") != rn[k].get("threads"))
    if threads_diff:
        print(f"note: {threads_diff} matched calls ran with different thread counts")
    identical = 0
    both_raised = 0
    exc_diff = []
    struct_diff = []
    value_diff = []   # (key, rec_old, rec_new, differing paths)
    for k in matched:
        a, b = ro[k], rn[k]
        if a["exc"] or b["exc"]:
            if a["exc"] == b["exc"]:
                identical += 1
                both_raised += 1
            else:
                exc_diff.append((k, a, b))
            continue
        if set(a["outs"]) != set(b["outs"]):
            struct_diff.append((k, a, b))
            continue
        paths = [p for p in a["outs"] if a["outs"][p] != b["outs"][p]]
        if paths:
            value_diff.append((k, a, b, paths))
        else:
            identical += 1
    print(f"bitwise identical: {identical} of {len(matched)} matched "
          f"({100 * identical / max(len(matched), 1):.2f}%; {both_raised} of them raise the same exception type)")
    print(f"differing: {len(value_diff)} in values, {len(exc_diff)} in exception/raising, "
          f"{len(struct_diff)} in output structure")

    # ---- per-function key summary
    byfn = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
    for k in ro:
        byfn[k[1]][0] += 1
    for k in rn:
        byfn[k[1]][1] += 1
    for k in matched:
        byfn[k[1]][2] += 1
    for k, *_ in value_diff:
        byfn[k[1]][3] += 1
    for k, *_ in exc_diff + struct_diff:
        byfn[k[1]][4] += 1
    print("\n| function | old keys | new keys | matched | differ (values) | differ (exc/structure) |")
    print("|---|---:|---:|---:|---:|---:|")
    for fn in sorted(byfn):
        c = byfn[fn]
        print(f"| {fn} | {c[0]} | {c[1]} | {c[2]} | {c[3]} | {c[4]} |")

    # ---- value differences grouped by (function, dtype, isa)
    if value_diff:
        groups = collections.OrderedDict()
        for k, a, b, paths in sorted(value_diff, key=lambda t: t[1].get("order", 0)):
            g = groups.setdefault((a["fname"], out_dtype(a), a["isa"]),
                                  {"n": 0, "abs": None, "ulp": None, "sulp": None, "elems": 0, "notkept": 0,
                                   "layout": 0, "paths": collections.Counter(), "ex": []})
            g["n"] += 1
            for p in paths:
                g["paths"][p.split("[")[0] if p.startswith("result") else p] += 1
                ma, mb = a["meta"].get(p, {}), b["meta"].get(p, {})
                if ma.get("strides") != mb.get("strides") or ma.get("shape") != mb.get("shape") \
                        or ma.get("dtype") != mb.get("dtype"):
                    g["layout"] += 1
                xa, xb = a["arrays"].get(p), b["arrays"].get(p)
                if xa is None or xb is None:
                    g["notkept"] += 1
                    continue
                st = diff_stats(xa, xb)
                if st is None:
                    g["layout"] += 1
                    continue
                mabs, mulp, nel = st
                # the same difference in ulps of the largest |old| value (near-zero
                # outputs make plain ulps huge)
                with np.errstate(all="ignore"):
                    fin = np.abs(xa.astype(np.float64))
                    fin = fin[np.isfinite(fin)]
                    scale = float(ulp_of(np.array([fin.max(initial=0)], xa.dtype), xa.dtype)[0]) \
                        if xa.dtype.kind == "f" or xa.dtype.name == "bfloat16" else 1.0
                sulp = mabs / scale if scale else float("inf")
                g["sulp"] = sulp if g["sulp"] is None else max(g["sulp"], sulp)
                g["abs"] = mabs if g["abs"] is None else max(g["abs"], mabs)
                g["ulp"] = mulp if g["ulp"] is None else max(g["ulp"], mulp)
                g["elems"] += nel
            if len(g["ex"]) < examples:
                g["ex"].append(f"{example(a)} [{a.get('test')}]")
        print("\nvalue differences by (function, dtype, ISA):\n")
        print("| function | dtype | ISA | calls | worst max-abs | worst ulps | worst ulps at max abs(old) | "
              "elems differing | not kept | shape/dtype/strides differ | outputs | examples |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for (fn, dt, isa), g in groups.items():
            outs = ", ".join(f"{p}:{n}" for p, n in g["paths"].most_common(4))
            ex = "<br>".join(g["ex"])
            print(f"| {fn} | {dt} | {isa} | {g['n']} | {fmt(g['abs'])} | {fmt(g['ulp'])} | {fmt(g['sulp'])} | "
                  f"{g['elems']} | "
                  f"{g['notkept']} | {g['layout']} | {outs} | {ex} |")

    if exc_diff or struct_diff:
        print("\nraising/structure differences (first 20):\n")
        print("| function | ISA | old | new | args | test |")
        print("|---|---|---|---|---|---|")
        for k, a, b in (exc_diff + struct_diff)[:20]:
            da = a["exc"] or "ok:" + ",".join(sorted(a.get("outs", {})))
            db = b["exc"] or "ok:" + ",".join(sorted(b.get("outs", {})))
            print(f"| {a['fname']} | {a['isa']} | {da} | {db} | {example(a)} | {a.get('test')} |")

    # ---- unmatched keys: which tests produce them
    only_old = [ro[k] for k in ro if k not in rn]
    only_new = [rn[k] for k in rn if k not in ro]
    if only_old or only_new:
        print(f"\nunmatched: {len(only_old)} keys only in old, {len(only_new)} only in new; by test "
              f"(top {'all' if all_unmatched else 15}):\n")
        c_old = collections.Counter(r.get("test") for r in only_old)
        c_new = collections.Counter(r.get("test") for r in only_new)
        tests = sorted(set(c_old) | set(c_new), key=lambda t: -(c_old[t] + c_new[t]))
        print("| test | only old | only new |")
        print("|---|---:|---:|")
        for t in tests if all_unmatched else tests[:15]:
            print(f"| {t} | {c_old[t]} | {c_new[t]} |")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--examples", type=int, default=2, help="example calls per group (default 2)")
    ap.add_argument("--all-unmatched", action="store_true", help="list every test with unmatched keys")
    args = ap.parse_args(argv)
    try:
        old, new = load(args.old), load(args.new)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as e:
        print(f"bitwise_compare: {e}", file=sys.stderr)
        return 2
    compare(old, new, args.examples, args.all_unmatched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
