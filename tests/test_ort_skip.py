"""cnorm.add_layer_norm / add_rms_norm against ONNX Runtime's fused
residual-add norms, SkipLayerNormalization and
SkipSimplifiedLayerNormalization (domain com.microsoft, CPU provider),
float32, x of shape (B, S, K).

What both accept, and so what is compared: a skip (residual) of x's shape,
(1, S, K) or (S, K) (ORT rejects (K,) and (B, 1, K): "last two dimensions
of skip needs to be same as input"; cnorm broadcasts any of them); gamma
always (ORT requires it; cnorm's weight may be None); beta or not (layer
norm only); skip_bias or not (ORT's `bias` input: index 4 of
SkipLayerNormalization, after beta, and index 3 of
SkipSimplifiedLayerNormalization, which has no beta).  ORT's sum output is
its output 3, input_skip_bias_sum; y and the sum are both compared.

Where ORT's semantics differ from cnorm's (its CPU kernel,
onnxruntime/contrib_ops/cpu/skip_layer_norm.cc):
- The sum: ORT rounds x + skip to float32, then adds bias and rounds again,
  (x + r) + b, the order cnorm's DESIGN.md 3.2 writes.
- y from the stored sum: for float32 ORT normalizes the float32 sum it
  stores, as cnorm does, so y differs only through the statistics and the
  apply.  (For float16 ORT keeps the sum in float and normalizes that, not
  the rounded half sum it stores; cnorm normalizes the stored sum in every
  dtype, so its y is bitwise layer_norm(s).)
- The statistics: ORT accumulates sum(s) and sum(s * s) in float32 and takes
  the variance as E[s^2] - E[s]^2 (not clamped at 0).  That cancels when
  |mean| >> std: on data offset by 1000, ORT's y is off by ~1e-3 while
  cnorm's (Welford) stays at float32 rounding.  So the data here have mean
  ~0, where both are accurate and the comparison tests cnorm, not ORT's
  cancellation.
- The apply: ORT computes (s - mean) / std * gamma + beta, cnorm
  (s - mean) * (gamma * rstd) + beta: a few ulps apart.
- epsilon: ORT's default for both Skip ops is 1e-12; cnorm's is 1e-5 for
  add_layer_norm (as torch's LayerNorm) and finfo(float32).eps ~1.19e-7 for
  add_rms_norm (as torch's RMSNorm).  The tests pass eps to both; one
  test checks that each side's default is as stated.
- RMS: ORT's SkipSimplified uses eps inside the root, s / sqrt(mean(s^2) +
  eps) * gamma, as cnorm's rms_norm does (and torch's F.rms_norm).
- activation: ORT's Skip ops have none (cnorm's add_layer_norm does).

Tolerances.  The sum without skip_bias is one float32 rounding of x + r on
both sides: bitwise equal.  With skip_bias both round twice in the same
order, so it is bitwise too.  y: ORT's float32 running sums over K values
carry a relative error of up to ~sqrt(K) * 2^-24 in practice (ORT against
a float64 reference: 5e-6 absolute at K=4096, 1.7e-6 at K=768), and the two
applies differ by a few ulps of |y|; so |y - y_ort| <= 1e-5 * (1 + |y|),
about 4x the largest difference seen here (2.6e-6 * (1 + |y|), K=4096).  The data come at two scales: std ~1,
and std ~3e-3, where the variance (~2e-5) is about eps, so that the place
and value of eps change y by percent, far beyond the tolerance.
"""
import functools

import numpy as np
import pytest

import cnorm

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402  (after the importorskip)

B, S = 2, 5
EPS = 1e-5
Y_RTOL = Y_ATOL = 1e-5
ORT_DEFAULT_EPS = 1e-12
OPS = {"layer": "SkipLayerNormalization", "rms": "SkipSimplifiedLayerNormalization"}


@functools.lru_cache(maxsize=None)
def session(op, beta, bias, eps):
    """An ORT session of one Skip* node with dynamic shapes; every input is
    fed (gamma, beta, bias too).  eps None: the node has no epsilon
    attribute (ORT's default)."""
    names = ["input", "skip", "gamma"]
    if op == "layer":
        names += ["beta" if beta else "", "bias" if bias else ""]
    else:
        names += ["bias" if bias else ""]
    while names[-1] == "":
        names.pop()
    attrs = {} if eps is None else {"epsilon": eps}
    node = helper.make_node(OPS[op], names, ["y", "", "", "sum"], domain="com.microsoft", **attrs)
    value = functools.partial(helper.make_tensor_value_info, elem_type=TensorProto.FLOAT, shape=None)
    graph = helper.make_graph([node], "skip_norm", [value(n) for n in names if n], [value("y"), value("sum")])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17),
                                                                  helper.make_opsetid("com.microsoft", 1)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def data(k, skip, scale, seed):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((B, S, k))).astype(np.float32)
    r = (scale * rng.standard_normal({"full": (B, S, k), "1sk": (1, S, k), "sk": (S, k)}[skip])).astype(np.float32)
    return {"input": x, "skip": r, "gamma": rng.uniform(0.5, 1.5, k).astype(np.float32),
            "beta": rng.standard_normal(k).astype(np.float32),
            "bias": (scale * rng.standard_normal(k)).astype(np.float32)}


def both(op, d, beta, bias, eps, ort_eps="same"):
    """(cnorm's y, s), (ORT's y, sum) on the same data."""
    x, r, k = d["input"], d["skip"], d["input"].shape[-1]
    skip_bias = d["bias"] if bias else None
    if op == "layer":
        got = cnorm.add_layer_norm(x, r, k, d["gamma"], d["beta"] if beta else None, eps, skip_bias=skip_bias)
    else:
        got = cnorm.add_rms_norm(x, r, k, d["gamma"], eps, skip_bias=skip_bias)
    sess = session(op, beta, bias, eps if ort_eps == "same" else ort_eps)
    feed = {i.name: d[i.name] for i in sess.get_inputs()}
    return got, sess.run(None, feed)


def check(got, ref, x, r):
    (y, s), (y_ort, s_ort) = got, ref
    assert y.dtype == s.dtype == np.float32 and y.shape == s.shape == x.shape
    np.testing.assert_array_equal(s, s_ort)
    np.testing.assert_allclose(y, y_ort, rtol=Y_RTOL, atol=Y_ATOL)


CASES = [(op, beta) for op in OPS for beta in ((True, False) if op == "layer" else (False,))]


@pytest.mark.parametrize("scale", [1.0, 3e-3], ids=["std1", "std3e-3"])
@pytest.mark.parametrize("bias", [False, True], ids=["", "skip_bias"])
@pytest.mark.parametrize("skip", ["full", "1sk", "sk"])
@pytest.mark.parametrize("k", [768, 1001, 4096])
@pytest.mark.parametrize("op, beta", CASES, ids=["LN-beta", "LN", "RMS"])
def test_matches_ort(op, beta, k, skip, bias, scale):
    d = data(k, skip, scale, seed=k)
    check(*both(op, d, beta, bias, EPS), d["input"], d["skip"])


@pytest.mark.parametrize("op", list(OPS))
def test_default_eps_differs(op):
    """ORT's Skip ops default to eps=1e-12 (their schema): a node without the
    attribute matches cnorm given eps=1e-12, and not cnorm's own default
    (on data whose variance, ~2e-5, makes eps visible)."""
    d = data(1001, "full", 3e-3, seed=1)
    check(*both(op, d, False, False, ORT_DEFAULT_EPS, ort_eps=None), d["input"], d["skip"])
    x, r, w = d["input"], d["skip"], d["gamma"]
    y = cnorm.add_layer_norm(x, r, 1001, w)[0] if op == "layer" else cnorm.add_rms_norm(x, r, 1001, w)[0]
    y_ort = session(op, False, False, None).run(None, {"input": x, "skip": r, "gamma": w})[0]
    assert not np.allclose(y, y_ort, rtol=Y_RTOL, atol=Y_ATOL)
