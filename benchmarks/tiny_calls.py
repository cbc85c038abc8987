"""Per-call overhead: every public function on a tiny (4, 8) float32 input
(instance norm: (4, 2, 4)), the backward functions and return_stats included.

The yardstick is ``np.mean(x, 0)`` on the same input; the target is at
most 0.4x its time for every cnorm function.  Not a test (timings are
noisy): run it by hand, e.g. against two installs::

    python benchmarks/tiny_calls.py            # this checkout
    /path/to/old/venv/bin/python benchmarks/tiny_calls.py

Functions or keywords an older cnorm lacks are skipped.  Each figure is
the minimum over --repeat timeit runs of --number calls each, per call,
in microseconds (the minimum is the least disturbed by other load).
"""
import argparse
import inspect
import os
import sys
import timeit

import numpy as np

if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/ itself: never shadow the installed cnorm

import cnorm  # noqa: E402


def cases():
    """(name, zero-argument callable) for every public function, or None
    when this cnorm lacks it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    c, k = x.shape[1], x.shape[-1]
    w, b = np.ones(c, np.float32), np.zeros(c, np.float32)
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
    rm64, rv64 = rm.astype(np.float64), rv.astype(np.float64)
    wk, bk = np.ones(k, np.float32), np.zeros(k, np.float32)
    out = np.empty_like(x)
    conv_w = rng.standard_normal((8, 4)).astype(np.float32)
    fw = np.ones(8, np.float32)

    def has(fn, kw=None):
        f = getattr(cnorm, fn, None)
        return f is not None and (kw is None or kw in inspect.signature(f).parameters)

    yield "np.mean(x, 0)", lambda: np.mean(x, 0)
    yield "batch_norm eval (f32 stats)", has("batch_norm") and (lambda: cnorm.batch_norm(x, rm, rv, w, b))
    yield "batch_norm eval (f64 stats)", has("batch_norm") and (lambda: cnorm.batch_norm(x, rm64, rv64, w, b))
    yield "batch_norm training", has("batch_norm") and (lambda: cnorm.batch_norm(x, None, None, w, b, True))
    yield "batch_norm relu", has("batch_norm", "activation") and (
        lambda: cnorm.batch_norm(x, rm64, rv64, w, b, activation="relu"))
    yield "instance_norm (4, 2, 4)", has("instance_norm") and (
        lambda x3=x.reshape(4, 2, 4): cnorm.instance_norm(x3))
    yield "group_norm", has("group_norm") and (lambda: cnorm.group_norm(x, 2, w, b))
    yield "layer_norm", has("layer_norm") and (lambda: cnorm.layer_norm(x, k, wk, bk))
    yield "layer_norm out=", has("layer_norm") and (lambda: cnorm.layer_norm(x, k, wk, bk, out=out))
    yield "layer_norm relu", has("layer_norm", "activation") and (
        lambda: cnorm.layer_norm(x, k, wk, bk, activation="relu"))
    yield "layer_norm return_stats", has("layer_norm", "return_stats") and (
        lambda: cnorm.layer_norm(x, k, wk, bk, return_stats=True))
    yield "rms_norm", has("rms_norm") and (lambda: cnorm.rms_norm(x, k, wk))
    yield "rms_norm return_stats", has("rms_norm", "return_stats") and (
        lambda: cnorm.rms_norm(x, k, wk, return_stats=True))
    x3 = x.reshape(4, 2, 4)
    yield "group_norm return_stats", has("group_norm", "return_stats") and (
        lambda: cnorm.group_norm(x, 2, w, b, return_stats=True))
    yield "instance_norm return_stats", has("instance_norm", "return_stats") and (
        lambda: cnorm.instance_norm(x3, return_stats=True))
    yield "batch_norm training stats", has("batch_norm", "return_stats") and (
        lambda: cnorm.batch_norm(x, None, None, w, b, True, return_stats=True))
    yield "batch_norm eval stats", has("batch_norm", "return_stats") and (
        lambda: cnorm.batch_norm(x, rm, rv, w, b, return_stats=True))
    # the backward functions, with the statistics return_stats gave
    bwd = has("layer_norm_backward")
    dy, dy3 = np.ones_like(x), np.ones_like(x3)
    if bwd:
        _, lm, lr = cnorm.layer_norm(x, k, wk, return_stats=True)
        _, rr = cnorm.rms_norm(x, k, wk, return_stats=True)
        _, gm, gr = cnorm.group_norm(x, 2, w, return_stats=True)
        _, im, ir = cnorm.instance_norm(x3, return_stats=True)
        _, bm, br = cnorm.batch_norm(x, None, None, w, None, True, return_stats=True)
    yield "layer_norm_backward", bwd and (lambda: cnorm.layer_norm_backward(dy, x, k, lm, lr, wk))
    yield "layer_norm_backward no stats", bwd and (lambda: cnorm.layer_norm_backward(dy, x, k, None, None, wk))
    yield "layer_norm_backward out=", bwd and (lambda: cnorm.layer_norm_backward(dy, x, k, lm, lr, wk, out=out))
    yield "rms_norm_backward", bwd and (lambda: cnorm.rms_norm_backward(dy, x, k, rr, wk))
    yield "group_norm_backward", bwd and (lambda: cnorm.group_norm_backward(dy, x, 2, gm, gr, w))
    yield "instance_norm_backward", bwd and (lambda: cnorm.instance_norm_backward(dy3, x3, im, ir))
    yield "batch_norm_backward", bwd and (lambda: cnorm.batch_norm_backward(dy, x, bm, br, w))
    yield "batch_norm_backward eval", bwd and (lambda: cnorm.batch_norm_backward(dy, x, bm, br, w, False))
    yield "moments(x, 0)", has("moments") and (lambda: cnorm.moments(x, 0))
    yield "moments(x)", has("moments") and (lambda: cnorm.moments(x))
    yield "fold_batch_norm", has("fold_batch_norm") and (
        lambda: cnorm.fold_batch_norm(conv_w, fw, fw, fw, fw, fw))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--number", type=int, default=2000, help="calls per timing run")
    p.add_argument("--repeat", type=int, default=25, help="timing runs (the best is kept)")
    args = p.parse_args(argv)
    rows = []
    for name, fn in cases():
        if not fn:
            rows.append((name, None))
            continue
        fn()  # warm up (and fail loudly, outside the timing)
        t = min(timeit.repeat(fn, number=args.number, repeat=args.repeat)) / args.number
        rows.append((name, t * 1e6))
    base = rows[0][1]
    print(f"cnorm {cnorm.__version__} from {os.path.dirname(cnorm.__file__)}, numpy {np.__version__}, "
          f"isa {cnorm.get_isa()}; (4, 8) float32, best of {args.repeat} x {args.number} calls")
    print(f"{'call':<30} {'us':>7} {'/ np.mean':>10}")
    for name, us in rows:
        if us is None:
            print(f"{name:<30} {'-':>7} {'(missing)':>10}")
        else:
            print(f"{name:<30} {us:7.2f} {us / base:10.2f}")
    worst = max((us / base, name) for name, us in rows[1:] if us is not None)
    print(f"worst ratio: {worst[0]:.2f} ({worst[1]}); target <= 0.40")


if __name__ == "__main__":
    main()
