"""Benchmark cases and implementations, shared by `python -m cnorm` and the
pytest-benchmark suite in benchmarks/.

An implementation factory takes (case, inputs) and returns a zero-argument
callable that runs one call, or None when that library is missing or has no
such operator (REQUIRES and not_installed() tell the two apart).  Peers
allocate their outputs; "cnorm_out" and "roofline" write into
preallocated arrays.

The fused residual-add cases ("add_layer", "add_rms") compute
s = x + r and y = norm(s) and return both, everywhere: cnorm's
add_layer_norm/add_rms_norm, torch's `x + r` then the norm, and ONNX
Runtime's SkipLayerNormalization/SkipSimplifiedLayerNormalization with
their sum output requested, so every implementation writes the same bytes.
"""
import importlib.util
import math
import statistics
import time
from dataclasses import dataclass

import numpy as np

import cnorm
from ._version import DISTRIBUTION

EPS = 1e-5
PLOT_HINT = f"--plot needs matplotlib: pip install matplotlib (or pip install '{DISTRIBUTION}[plot]')"


@dataclass(frozen=True)
class Case:
    name: str
    # layer | rms | add_layer | add_rms (ROW_OPS) | batch_eval | batch_train |
    # instance | group; a training step (forward + backward,
    # cnorm/_bench_backward.py): step_layer | step_rms | step_batch |
    # step_group | step_instance
    op: str
    shape: tuple  # logical (N, C, H, W), or (rows, cols) for the row ops
    layout: str = "nchw"  # nchw | nhwc (array stored (N, H, W, C), axis=-1)
    groups: int = 0

    @property
    def id(self):
        """The name as a pytest id: "LN-128x768", "BN-train-NHWC-32x64x56x56"."""
        words = self.name.replace("(", "").replace(")", "").replace("+", "").replace(",", "x").split()
        return "-".join(words)

    @property
    def step(self):
        """Whether the case is a training step (forward + backward)."""
        return self.op.startswith("step_")

    @property
    def copies(self):
        """Copy-equivalents of the memory traffic (a copy reads x once and
        writes y once, float32): 1 for a forward; 2 for a fused residual add,
        which reads x and r and writes s and y.  A training step adds its
        backward's, which reads x and dy and writes dx: 1.5 more for rows and
        groups fused per row or sample; batch norm reads x twice in each
        direction, 1.5 forward + 2.5 backward."""
        if self.op in ADD_OPS:
            return 2.0
        if not self.step:
            return 1.0
        return 4.0 if self.op == "step_batch" else 2.5

    @property
    def nbytes(self):
        """Bytes the case must move at least: `copies` reads and writes of
        x's size (for an add form: x and r in, s and y out)."""
        return int(2 * 4 * math.prod(self.shape) * self.copies)


# The row ops (statistics per row of a (rows, cols) array) and the label that
# starts their case names; benchmarks/rows.py builds its grid from these.
ROW_OPS = {"layer": "LN", "rms": "RMS", "add_layer": "add LN", "add_rms": "add RMS"}
ADD_OPS = ("add_layer", "add_rms")


def row_case(op, rows, cols):
    """The Case of a row op on a (rows, cols) float32 array: "add LN (128,768)"."""
    return Case(f"{ROW_OPS[op]} ({rows},{cols})", op, (rows, cols))


CASES = [
    Case("LN (1,768)", "layer", (1, 768)),
    Case("LN (128,768)", "layer", (128, 768)),
    Case("LN (2048,4096)", "layer", (2048, 4096)),
    Case("LN (16384,4096)", "layer", (16384, 4096)),
    # RMS norm rows (weight only), and the fused residual add of the
    # transformer block: decode (one token) and prefill sizes
    row_case("rms", 1, 4096),
    row_case("rms", 2048, 4096),
    row_case("add_layer", 128, 768),
    row_case("add_layer", 2048, 4096),
    row_case("add_rms", 1, 4096),
    row_case("add_rms", 2048, 4096),
    Case("BN eval NCHW (1,64,112,112)", "batch_eval", (1, 64, 112, 112)),
    Case("BN eval NHWC (1,64,112,112)", "batch_eval", (1, 64, 112, 112), "nhwc"),
    Case("BN train NCHW (32,64,56,56)", "batch_train", (32, 64, 56, 56)),
    Case("BN train NHWC (32,64,56,56)", "batch_train", (32, 64, 56, 56), "nhwc"),
    Case("BN train NCHW (64,128,56,56)", "batch_train", (64, 128, 56, 56)),
    Case("IN NCHW (1,64,128,128)", "instance", (1, 64, 128, 128)),
    Case("IN NHWC (1,64,128,128)", "instance", (1, 64, 128, 128), "nhwc"),
    Case("IN NCHW (16,64,256,256)", "instance", (16, 64, 256, 256)),
    Case("GN32 (8,256,32,32)", "group", (8, 256, 32, 32), groups=32),
    # training steps: the forward with its saved statistics, then grad_x, grad_weight, grad_bias
    Case("LN fwd+bwd (128,768)", "step_layer", (128, 768)),
    Case("LN fwd+bwd (2048,4096)", "step_layer", (2048, 4096)),
    Case("RMS fwd+bwd (2048,4096)", "step_rms", (2048, 4096)),
    Case("BN fwd+bwd NCHW (32,64,56,56)", "step_batch", (32, 64, 56, 56)),
    Case("BN fwd+bwd NHWC (32,64,56,56)", "step_batch", (32, 64, 56, 56), "nhwc"),
    Case("GN32 fwd+bwd (8,256,32,32)", "step_group", (8, 256, 32, 32), groups=32),
    Case("IN fwd+bwd NCHW (8,64,128,128)", "step_instance", (8, 64, 128, 128)),
]
CASES_BY_NAME = {c.name: c for c in CASES}
QUICK = ["LN (1,768)", "LN (128,768)", "LN (2048,4096)", "RMS (1,4096)", "add RMS (2048,4096)",
         "BN train NCHW (32,64,56,56)", "BN train NHWC (32,64,56,56)", "IN NCHW (1,64,128,128)",
         "GN32 (8,256,32,32)", "LN fwd+bwd (2048,4096)", "BN fwd+bwd NCHW (32,64,56,56)"]


def make_inputs(case, seed=0):
    """x (float32, in the case's memory layout), per-channel or per-feature
    weight/bias, running stats, and for an add form the residual r (x's
    shape); a training step's inputs (with dy) come from
    cnorm/_bench_backward.py."""
    if case.step:
        from . import _bench_backward

        return _bench_backward.make_inputs(case, seed)
    rng = np.random.default_rng(seed)
    shape = case.shape
    if case.layout == "nhwc":
        shape = (shape[0],) + shape[2:] + (shape[1],)
    x = rng.standard_normal(shape, dtype=np.float32)
    c = case.shape[-1] if case.op in ROW_OPS else case.shape[1]
    d = {
        "x": x,
        "axis": -1 if case.layout == "nhwc" else 1,
        "w": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "b": rng.standard_normal(c, dtype=np.float32),
        "rm": rng.standard_normal(c).astype(np.float32),
        "rv": rng.uniform(0.5, 1.5, c).astype(np.float32),
    }
    if case.op in ADD_OPS:
        d["r"] = rng.standard_normal(shape, dtype=np.float32)
    return d


def _cnorm(case, d, out=None, sum_out=None):
    x, w, b, ax = d["x"], d["w"], d["b"], d["axis"]
    k = x.shape[-1]
    if case.op == "layer":
        return lambda: cnorm.layer_norm(x, k, w, b, EPS, out=out)
    if case.op == "rms":
        return lambda: cnorm.rms_norm(x, k, w, EPS, out=out)
    if case.op == "add_layer":
        return lambda: cnorm.add_layer_norm(x, d["r"], k, w, b, EPS, out=out, sum_out=sum_out)
    if case.op == "add_rms":
        return lambda: cnorm.add_rms_norm(x, d["r"], k, w, EPS, out=out, sum_out=sum_out)
    if case.op == "batch_eval":
        return lambda: cnorm.batch_norm(x, d["rm"], d["rv"], w, b, False, 0.1, EPS, axis=ax, out=out)
    if case.op == "batch_train":
        rm, rv = d["rm"].copy(), d["rv"].copy()
        return lambda: cnorm.batch_norm(x, rm, rv, w, b, True, 0.1, EPS, axis=ax, out=out)
    if case.op == "instance":
        return lambda: cnorm.instance_norm(x, None, None, w, b, eps=EPS, axis=ax, out=out)
    return lambda: cnorm.group_norm(x, case.groups, w, b, EPS, axis=ax, out=out)


def impl_cnorm(case, d):
    if case.step:
        from . import _bench_backward

        return _bench_backward.impl_cnorm(case, d)
    return _cnorm(case, d)


def impl_cnorm_out(case, d):
    if case.step:  # the training steps allocate their results, as torch.autograd does
        return None
    sum_out = np.empty_like(d["x"]) if case.op in ADD_OPS else None
    return _cnorm(case, d, out=np.empty_like(d["x"]), sum_out=sum_out)


def impl_roofline(case, d):
    """y = a*x + b over `case.copies` copies of x's size."""
    from cnorm import _core

    x = np.ones(int(case.copies * math.prod(case.shape)), np.float32)
    y = np.empty_like(x)
    return lambda: _core.roofline(x, y, 1.5, 0.5)


def impl_numpy(case, d):
    if case.step:  # NumPy has no autograd
        return None
    x, w, b = d["x"], d["w"], d["b"]
    nhwc = case.layout == "nhwc"
    cshape = (1, 1, 1, -1) if nhwc else (1, -1, 1, 1)

    def norm(v, axes, shape):
        m = v.mean(axis=axes, keepdims=True)
        s = v.var(axis=axes, keepdims=True)
        return (v - m) / np.sqrt(s + EPS) * w.reshape(shape) + b.reshape(shape)

    def rms(v):
        return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + EPS) * w

    def add(fn):
        def call():
            s = x + d["r"]
            return fn(s), s
        return call

    if case.op == "layer":
        return lambda: norm(x, -1, (-1,))
    if case.op == "rms":
        return lambda: rms(x)
    if case.op == "add_layer":
        return add(lambda s: norm(s, -1, (-1,)))
    if case.op == "add_rms":
        return add(rms)
    if case.op == "batch_eval":
        rm, rv = d["rm"].reshape(cshape), d["rv"].reshape(cshape)
        return lambda: (x - rm) / np.sqrt(rv + EPS) * w.reshape(cshape) + b.reshape(cshape)
    if case.op == "batch_train":
        return lambda: norm(x, (0, 1, 2) if nhwc else (0, 2, 3), cshape)
    if case.op == "instance":
        return lambda: norm(x, (1, 2) if nhwc else (2, 3), cshape)
    n, c = case.shape[:2]
    g = case.groups

    def group():
        m = x.reshape(n, g, -1)
        y = (m - m.mean(-1, keepdims=True)) / np.sqrt(m.var(-1, keepdims=True) + EPS)
        return y.reshape(x.shape) * w.reshape(cshape) + b.reshape(cshape)

    return group


def impl_torch(case, d):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    if case.step:
        from . import _bench_backward

        return _bench_backward.impl_torch(case, d)
    t = torch.from_numpy(d["x"])
    if case.layout == "nhwc":
        t = t.permute(0, 3, 1, 2)  # logical NCHW in channels_last memory
    w, b = torch.from_numpy(d["w"]), torch.from_numpy(d["b"])
    rm, rv = torch.from_numpy(d["rm"].copy()), torch.from_numpy(d["rv"].copy())
    nograd = torch.inference_mode()

    def wrap(fn):
        def call():
            with nograd:
                return fn()
        return call

    k = (t.shape[-1],)
    if case.op == "layer":
        return wrap(lambda: F.layer_norm(t, k, w, b, EPS))
    if case.op == "rms":
        return wrap(lambda: F.rms_norm(t, k, w, EPS))
    if case.op in ADD_OPS:  # torch has no fused form: the add, then the norm of the sum
        r = torch.from_numpy(d["r"])
        norm = ((lambda s: F.layer_norm(s, k, w, b, EPS)) if case.op == "add_layer"
                else (lambda s: F.rms_norm(s, k, w, EPS)))

        def add_norm():
            s = t + r
            return norm(s), s
        return wrap(add_norm)
    if case.op == "batch_eval":
        return wrap(lambda: F.batch_norm(t, rm, rv, w, b, False, 0.1, EPS))
    if case.op == "batch_train":
        return wrap(lambda: F.batch_norm(t, rm, rv, w, b, True, 0.1, EPS))
    if case.op == "instance":
        return wrap(lambda: F.instance_norm(t, weight=w, bias=b, eps=EPS))
    return wrap(lambda: F.group_norm(t, case.groups, w, b, EPS))


# Each ONNX operator of a case and the opset that has it: LayerNormalization
# since 17, RMSNormalization since 23; the Skip* ops are ONNX Runtime's
# contrib operators (domain com.microsoft, version 1).
ORT_OPSET = 21
ORT_RMS_OPSET = 23
ORT_SKIP_OPS = {"add_layer": "SkipLayerNormalization", "add_rms": "SkipSimplifiedLayerNormalization"}


def _ort_model(case, d):
    """The one-node ONNX model of a case, and the names of its inputs."""
    from onnx import TensorProto, helper, numpy_helper

    x = d["x"]
    inits = [numpy_helper.from_array(d["w"], "w"), numpy_helper.from_array(d["b"], "b")]
    inputs, outputs, opset = ["X"], ["Y"], ORT_OPSET
    if case.op == "layer":
        node = helper.make_node("LayerNormalization", ["X", "w", "b"], ["Y"], axis=-1, epsilon=EPS)
    elif case.op == "rms":
        opset = ORT_RMS_OPSET
        node = helper.make_node("RMSNormalization", ["X", "w"], ["Y"], axis=-1, epsilon=EPS)
    elif case.op in ADD_OPS:
        # inputs (input, skip, gamma[, beta]); output 3 is input_skip_bias_sum,
        # requested so that ORT stores the sum as cnorm does (outputs 1 and 2,
        # mean and inv_std_var, are left out: "")
        inputs = ["X", "R"]
        params = ["w", "b"] if case.op == "add_layer" else ["w"]
        outputs = ["Y", "S"]
        node = helper.make_node(ORT_SKIP_OPS[case.op], inputs + params, ["Y", "", "", "S"],
                                domain="com.microsoft", epsilon=EPS)
    elif case.op == "batch_eval":
        inits += [numpy_helper.from_array(d["rm"], "rm"), numpy_helper.from_array(d["rv"], "rv")]
        node = helper.make_node("BatchNormalization", ["X", "w", "b", "rm", "rv"], ["Y"], epsilon=EPS)
    elif case.op == "instance":
        node = helper.make_node("InstanceNormalization", ["X", "w", "b"], ["Y"], epsilon=EPS)
    else:
        node = helper.make_node("GroupNormalization", ["X", "w", "b"], ["Y"], epsilon=EPS,
                                       num_groups=case.groups)
    used = set(node.input)
    inits = [t for t in inits if t.name in used]  # RMS and SkipSimplified take no beta
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(x.shape)) for n in inputs + outputs]
    graph = helper.make_graph([node], "norm", info[:len(inputs)], info[len(inputs):], inits)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
    # ir_version 8 is read by every ONNX Runtime from 1.10 on (ORT does not
    # hold an opset-23 model to the IR version the ONNX checker would want)
    return helper.make_model(graph, opset_imports=opsets, ir_version=8), inputs


def impl_onnxruntime(case, d):
    # ORT's normalization operators are NCHW-only and inference-only.
    if case.layout == "nhwc" or case.op == "batch_train" or case.step:
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cnorm.get_num_threads()
    opts.inter_op_num_threads = 1
    model, inputs = _ort_model(case, d)
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception:  # operator or opset not supported by this ORT build
        return None
    feed = dict(zip(inputs, (d["x"], d.get("r"))))
    return lambda: sess.run(None, feed)


IMPLS = {
    "cnorm": impl_cnorm,
    "cnorm_out": impl_cnorm_out,
    "torch": impl_torch,
    "onnxruntime": impl_onnxruntime,
    "numpy": impl_numpy,
    "roofline": impl_roofline,
}
# the optional modules an implementation imports (the others need only NumPy)
REQUIRES = {"torch": ("torch",), "onnxruntime": ("onnxruntime", "onnx")}


def not_installed(impl):
    """The modules `impl` needs that are not installed (found without
    importing them), so a missing peer reads "not installed" and a peer that
    lacks the operator "n/a"."""
    return [m for m in REQUIRES.get(impl, ()) if importlib.util.find_spec(m) is None]


def set_threads(n):
    """Use n threads in cnorm and in the peers that take a thread count
    (0: cnorm's default; the peers are left as they are)."""
    cnorm.set_num_threads(n)
    if n <= 0:
        return
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def find_cases(spec):
    """Cases named by a comma-separated spec of ids ("LN-128x768"), names
    or substrings of them ("LN", "NHWC"); None or "all" gives every case."""
    if not spec or spec == "all":
        return list(CASES)
    chosen = []
    for word in (w.strip() for w in spec.split(",") if w.strip()):
        hits = [c for c in CASES if word in (c.id, c.name)] or \
               [c for c in CASES if word.lower() in c.id.lower() or word.lower() in c.name.lower()]
        if not hits:
            raise ValueError(f"cases: no benchmark case matches {word!r}; ids: {', '.join(c.id for c in CASES)}")
        chosen += [c for c in hits if c not in chosen]
    return chosen


def run_suite(cases, impls, budget=0.25, progress=None):
    """Time every implementation on every case.

    Returns a list of dicts, one per (case, impl): case, id, impl, status
    ("ok", "not installed", or "n/a": no such operator), the Timing fields
    in seconds (min_s, q1_s, median_s, q3_s), runs, noisy, and gbps (from the
    median); the numbers are None unless status is "ok".  This is the
    schema `python -m cnorm bench --json` writes and benchmarks/table.py
    reads.  ``progress(i, n, case, rows)`` is called after each case with
    that case's rows.
    """
    results = []
    for i, case in enumerate(cases):
        data = make_inputs(case)
        rows = []
        for impl in impls:
            row = {"case": case.name, "id": case.id, "impl": impl, "status": "not installed"}
            row.update(dict.fromkeys(("min_s", "q1_s", "median_s", "q3_s", "runs", "noisy", "gbps")))
            fn = None if not_installed(impl) else IMPLS[impl](case, data)
            if fn is not None:
                t = time_call(fn, budget)
                row.update(status="ok", min_s=t.min, q1_s=t.q1, median_s=t.median, q3_s=t.q3,
                           runs=t.runs, noisy=t.noisy, gbps=case.nbytes / t.median / 1e9)
            elif not not_installed(impl):
                row["status"] = "n/a"
            rows.append(row)
        del data
        results += rows
        if progress:
            progress(i + 1, len(cases), case, rows)
    return results


def plot(results, path, title=""):
    """Bar chart of GB/s per case and implementation, the roofline drawn as
    a line over each case; written to `path` (PNG).  Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(PLOT_HINT) from None
    cases = list(dict.fromkeys(r["case"] for r in results))
    impls = [i for i in dict.fromkeys(r["impl"] for r in results) if i != "roofline"]
    gbps = {(r["case"], r["impl"]): r["gbps"] for r in results}
    width = 0.8 / max(len(impls), 1)
    fig, ax = plt.subplots(figsize=(max(9, 1.0 * len(cases) + 3), 5))
    for k, impl in enumerate(impls):
        xs = [i + (k - (len(impls) - 1) / 2) * width for i in range(len(cases))]
        ax.bar(xs, [gbps.get((c, impl)) or 0 for c in cases], width, label=impl)
    roof = [gbps.get((c, "roofline")) for c in cases]
    if any(roof):
        for i, r in enumerate(roof):
            if r:
                ax.hlines(r, i - 0.45, i + 0.45, colors="black", linewidth=2,
                          label="roofline (y = a*x + b)" if i == 0 else None)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("GB/s (copy-equivalents of x moved)")
    ax.set_title(title or "cnorm benchmark")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# A timing is flagged noisy when its interquartile range exceeds this share of
# the median, or its median this multiple of its minimum.  The second catches
# a host so busy that most calls wait for a core (one run on a shared machine
# gave a 4788 us median for a 13 us case), which a tight IQR alone hides.
NOISY_IQR = 0.25
NOISY_MEDIAN_OVER_MIN = 1.5


@dataclass(frozen=True)
class Timing:
    """Seconds per call over `runs` calls: minimum, quartiles, median."""
    min: float
    q1: float
    median: float
    q3: float
    runs: int

    @property
    def iqr(self):
        return self.q3 - self.q1

    @property
    def noisy(self):
        return self.iqr > NOISY_IQR * self.median or self.median > NOISY_MEDIAN_OVER_MIN * self.min


def time_call(fn, budget=0.25, min_runs=5, max_runs=2000):
    """Timing of fn() over about `budget` seconds (at least `min_runs`
    calls), after one warm-up call."""
    fn()
    times = []
    end = time.perf_counter() + budget
    while len(times) < min_runs or (time.perf_counter() < end and len(times) < max_runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return Timing(min(times), q1, median, q3, len(times))
