"""Per-channel statistics of an on-disk image stack with cnorm.dask on a
dask.distributed LocalCluster, against dask's own mean/var.

The stack is a float32 .npy file of shape (N, 3, 256, 256), written here in
slabs (never held in memory): offset data, channel means 1e4, 2e4 and 5e3
with standard deviations 1, 2 and 0.5 (mean/std = 1e4, where
sum-of-squares formulas lose every digit).  Workers read their own chunks
from the memory-mapped file, so nothing is shipped through the scheduler.

    python examples/dataset_stats.py                 # 256 images (192 MiB), a quick run
    python examples/dataset_stats.py --full          # 38150 images: 30 GB, more than RAM holds comfortably
    python examples/dataset_stats.py --n 4096 --dir /scratch --keep

Prints the time and the relative error (against a float64 two-pass
reference over the same file) of cnorm.dask.dataset_statistics and of
dask.array's mean and var computed together, then OK when cnorm's errors
are at most dask's and below 1e-6.
"""
import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np

try:
    import dask
    import dask.array as da
    import distributed
except ImportError:
    sys.exit('this example needs dask: pip install "cnorm-cpu[dask]"')

import cnorm
import cnorm.dask

SHAPE = (3, 256, 256)
MEANS = np.array([1e4, 2e4, 5e3])
STDS = np.array([1.0, 2.0, 0.5])
FULL = 38150  # 38150 * 3 * 256 * 256 * 4 bytes = 30.0 GB


def write_stack(path, n, slab=64):
    """An (n, 3, 256, 256) float32 .npy, written slab by slab."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n,) + SHAPE)
    for i in range(0, n, slab):
        rng = np.random.default_rng(i)
        k = min(slab, n - i)
        block = rng.standard_normal((k,) + SHAPE, dtype=np.float32)
        block *= STDS.astype(np.float32)[:, None, None]
        block += MEANS.astype(np.float32)[:, None, None]
        out[i:i + k] = block
    out.flush()
    del out


def _load(path, block_info=None):
    """One chunk, read by the worker from the memory-mapped file."""
    (lo, hi), *_ = block_info[None]["array-location"]
    return np.array(np.load(path, mmap_mode="r")[lo:hi])


def stack(path, chunk):
    n = np.load(path, mmap_mode="r").shape[0]
    chunks = ((chunk,) * (n // chunk) + ((n % chunk,) if n % chunk else ()),) + tuple((s,) for s in SHAPE)
    return da.map_blocks(_load, path, chunks=chunks, dtype=np.float32, meta=np.empty((0,) * 4, np.float32))


def timed(f):
    t = time.perf_counter()
    r = f()
    return r, time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256, help="images in the stack (default 256)")
    p.add_argument("--full", action="store_true", help=f"{FULL} images (30 GB)")
    p.add_argument("--chunk", type=int, default=85, help="images per chunk (default 85: 64 MiB)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--dir", default=None, help="where to write the stack (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the file (and reuse it when it exists)")
    args = p.parse_args(argv)
    n = FULL if args.full else args.n

    tmp = None if args.dir else tempfile.TemporaryDirectory()
    directory = args.dir or tmp.name
    path = os.path.join(directory, f"stack_{n}.npy")
    try:
        if not (args.keep and os.path.exists(path)):
            _, t = timed(lambda: write_stack(path, n))
            print(f"wrote {path}: {n} x {SHAPE} float32, {os.path.getsize(path) / 1e9:.2f} GB in {t:.1f} s")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the cluster's port and dashboard notices
            cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address=None)
        with cluster, distributed.Client(cluster) as client:
            # one cnorm thread per single-threaded worker: the workers are the parallelism
            client.run(cnorm.set_num_threads, 1)
            x = stack(path, min(args.chunk, n))
            print(f"{args.workers} worker processes, chunks of {x.chunksize[0]} images "
                  f"({x.chunksize[0] * np.prod(SHAPE) * 4 / 2**20:.0f} MiB), {x.numblocks[0]} chunks")

            # float64 two-pass reference over the same file
            x64 = x.astype(np.float64)
            ref_mean = x64.mean((0, 2, 3)).compute()
            ref_var = ((x64 - ref_mean[:, None, None]) ** 2).mean((0, 2, 3)).compute()

            (mean, var, count), t_cnorm = timed(lambda: cnorm.dask.dataset_statistics(x))
            (dmean, dvar), t_dask = timed(lambda: dask.compute(x.mean((0, 2, 3)), x.var((0, 2, 3))))
    finally:
        if tmp is not None:
            tmp.cleanup()

    def rel(a, r):
        return np.max(np.abs(np.asarray(a, np.float64) - r) / np.abs(r))

    errs = {"cnorm": (rel(mean, ref_mean), rel(var, ref_var)), "dask": (rel(dmean, ref_mean), rel(dvar, ref_var))}
    gb = n * np.prod(SHAPE) * 4 / 1e9
    print(f"{'':24s}{'time':>9s}{'GB/s':>8s}{'mean rel. err':>15s}{'var rel. err':>14s}")
    for name, t in (("cnorm.dask", t_cnorm), ("dask mean+var (float32)", t_dask)):
        e = errs[name.split(".")[0].split()[0]]
        print(f"{name:24s}{t:8.2f}s{gb / t:8.2f}{e[0]:15.1e}{e[1]:14.1e}")
    print(f"count {count}; mean {np.array2string(mean, precision=4)}; var {np.array2string(var, precision=4)}")
    print(f"torch BatchNorm's running_var (unbiased): var * {count} / {count - 1}")
    ok = errs["cnorm"][1] <= max(errs["dask"][1], 1e-7) and errs["cnorm"][1] < 1e-6 and errs["cnorm"][0] < 1e-6
    print("OK: cnorm's errors are at most dask's and below 1e-6" if ok else "FAIL: cnorm's error is too large")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
