"""cnorm.dask.moments against dask.array's own mean + var (computed
together, one graph), on the same in-memory chunks.

    python benchmarks/dask_moments.py [--gib 2] [--runs 5] [--chunks 64 128 256]

An (N, 3, 256, 256) float32 array of offset data (mean 1e4, std 1), in
chunks of whole images of about 64, 128 and 256 MiB; per-channel over
(0, 2, 3) and over all axes; the threads scheduler (a NumPy array in this
process) and dask.distributed (a LocalCluster of single-threaded worker
processes on loopback, the array persisted in the workers' memory).  Each
case is the median of --runs, cnorm and dask alternating (order flipped
every round).  Accuracy: the relative error of the variance against a
float64 reference.  Prints a markdown table.
"""
import argparse
import statistics
import time
import warnings

import numpy as np

import dask
import dask.array as da
import distributed

import cnorm
import cnorm.dask

IMAGE = (3, 256, 256)


def _fill(block, block_info=None):
    """Offset data, a generator per chunk (the same values in every run)."""
    (lo, _), *_ = block_info[None]["array-location"]
    rng = np.random.default_rng(lo)
    out = rng.standard_normal(block.shape, dtype=np.float32)
    out += np.float32(1e4)
    return out


def make(n, chunk):
    template = da.empty((n,) + IMAGE, dtype=np.float32, chunks=(chunk,) + IMAGE)
    return template.map_blocks(_fill, dtype=np.float32)


def median_pair(f_cnorm, f_dask, runs):
    tc, td = [], []
    for r in range(runs):
        order = [(f_cnorm, tc), (f_dask, td)]
        for f, ts in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
    return statistics.median(tc), statistics.median(td)


def reference(x, axis):
    x64 = x.astype(np.float64)
    m = x64.mean(axis, keepdims=True)
    return ((x64 - m) ** 2).mean(axis)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gib", type=float, default=2.0, help="array size in GiB (default 2)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--chunks", type=int, nargs="+", default=[64, 128, 256], help="chunk sizes in MiB")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--schedulers", nargs="+", default=["threads", "distributed"])
    args = p.parse_args(argv)
    per_image = np.prod(IMAGE) * 4
    print(f"cnorm {cnorm.__version__} ({cnorm.get_isa()}), dask {dask.__version__}, "
          f"{args.gib:g} GiB float32 of (N, 3, 256, 256), offset data (mean 1e4, std 1), "
          f"median of {args.runs}, {args.workers} workers")
    print()
    print("| scheduler | chunk | axis | cnorm s | dask s | speedup | cnorm GB/s | var rel. err cnorm | dask |")
    print("|---|---|---|---|---|---|---|---|---|")
    client = None
    for sched in args.schedulers:
        if sched == "distributed":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                                   host="127.0.0.1", dashboard_address=None)
            client = distributed.Client(cluster)
            client.run(cnorm.set_num_threads, 1)  # the workers are the parallelism
        for mib in args.chunks:
            chunk = max(1, int(mib * 2**20 // per_image))
            n = max(chunk, int(args.gib * 2**30 // per_image) // chunk * chunk)
            if sched == "threads":
                x = da.from_array(make(n, chunk).compute(scheduler="threads"), chunks=(chunk,) + IMAGE)
                compute = lambda *g: dask.compute(*g, scheduler="threads", num_workers=args.workers)  # noqa: E731
            else:
                x = client.persist(make(n, chunk))
                distributed.wait(x)
                compute = lambda *g: client.compute(list(g), sync=True)  # noqa: E731
            for axis in ((0, 2, 3), None):
                ours = cnorm.dask.moments(x, axis)
                theirs = (x.mean(axis), x.var(axis))
                tc, td = median_pair(lambda: compute(*ours), lambda: compute(*theirs), args.runs)
                ref = compute(reference(x, axis))[0]
                v = compute(*ours)[1]
                dv = compute(*theirs)[1]
                err = np.max(np.abs(v - ref) / ref)
                derr = np.max(np.abs(dv - ref) / ref)
                name = "(0, 2, 3)" if axis else "all"
                print(f"| {sched} | {chunk * per_image / 2**20:.0f} MiB x {n // chunk} | {name} | {tc:.3f} | "
                      f"{td:.3f} | {td / tc:.1f}x | {x.nbytes / tc / 1e9:.1f} | {err:.1e} | {derr:.1e} |",
                      flush=True)
            del x
        if client is not None:
            client.close()
            cluster.close()
            client = None


if __name__ == "__main__":
    main()
