"""Backward passes (DESIGN.md 3.1): cnorm's *_backward against the float64
complex-step reference (tests/reference.py), torch.autograd and finite
differences, over op x dtype x layout x shape x affine x activation x needs,
on every ISA path; return_stats=True on every forward; offset data; thread
count; strides, out= and in place; bad input.

Tolerances.  An error is max|got - want| over a gradient divided by the
gradient's scale max|want| (a directional check: |v.got - v.want| over
sum|v * got|).  The reference sees the very same (rounded) inputs, so what
is left is cnorm's arithmetic and the rounding of its results:
- float64: 1e-12 (about 4500 eps: sums of a few thousand terms);
- float32: 1e-5 (84 eps);
- float16 / bfloat16 grad_x: 4 * 2**-11 / 4 * 2**-8 (twice the dtype's eps:
  the result rounded to half precision is off by up to half an ulp of
  max|want|, the rest is float arithmetic); their grad_weight / grad_bias
  are float32: 1e-5;
- float64 finite differences (central, step 1e-6): 1e-7 (step**2 truncation
  plus eps/step rounding);
- offset data (mean 1e4, std 1), float32: cnorm's grad_x error at most 0.1x
  torch's float32 error on the same input (both against the reference);
- thread count, needs subsets, in place and out=: bitwise identical.
"""
import dataclasses
import functools
import re
import tracemalloc
import zlib

import numpy as np
import pytest

import cnorm
import reference as ref

try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # bfloat16 is optional
    BF16 = None

EPS = 1e-5
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)] + ([BF16] if BF16 else [])
TOL = {"float64": 1e-12, "float32": 1e-5, "float16": 4 * 2.0**-11, "bfloat16": 4 * 2.0**-8}
ACTIVATIONS = [None, "relu", "silu", "gelu"]
ROW_OPS = ["layer_norm", "rms_norm"]
CHANNEL_OPS = ["group_norm", "instance_norm", "batch_norm", "batch_norm_eval"]
OPS = ROW_OPS + CHANNEL_OPS
ROW_LAYOUTS = ["rows", "strided", "negative"]
CHANNEL_LAYOUTS = ["nchw", "nhwc", "channels_last_view"]
# (shape, normalized_shape): odd sizes, size-1 dims, two normalized dims, many small rows
ROW_SHAPES = [((5, 7), 7), ((3, 1, 9), 9), ((4, 3, 5), (3, 5)), ((96, 3), 3)]
# (logical (N, C, *spatial), num_groups): odd, a size-1 dim, 1-D spatial, many small groups
CHANNEL_SHAPES = [((2, 6, 5, 7), 3), ((3, 4, 1, 5), 2), ((3, 8, 9), 4), ((2, 64, 2, 3), 32)]


def dtype_id(dt):
    return np.dtype(dt).name


def weight_dtype(dtype):
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def n_grads(op):
    return 2 if op == "rms_norm" else 3


# ------------------------------------------------------------ one case: data, forward, backward

@dataclasses.dataclass(frozen=True)
class Case:
    op: str
    shape: tuple  # logical: (rows..., normalized...) or (N, C, *spatial)
    arg: object  # normalized_shape (rows) or num_groups (group_norm)
    dtype: str
    layout: str
    affine: bool = True
    activation: str = None
    offset: float = 0.5
    scale: float = 3.0

    @property
    def axis(self):
        return -1 if self.layout == "nhwc" else 1

    @property
    def param_shape(self):
        if self.op in ROW_OPS:
            return (self.arg,) if isinstance(self.arg, int) else tuple(self.arg)
        return (self.shape[1],)


def _store(a, dtype):
    return np.asarray(a, dtype=np.float64).astype(dtype)


def _laid_out(values, layout):
    """values (logical shape, float) in `layout`: (array, axis)."""
    if layout == "nhwc":
        return np.ascontiguousarray(np.moveaxis(values, 1, -1))
    if layout == "channels_last_view":
        return np.moveaxis(np.ascontiguousarray(np.moveaxis(values, 1, -1)), -1, 1)
    if layout == "strided":
        big = np.empty(values.shape[:-1] + (2 * values.shape[-1],), values.dtype)
        big[..., ::2] = values
        return big[..., ::2]
    if layout == "negative":
        return np.ascontiguousarray(values[::-1, ..., ::-1])[::-1, ..., ::-1]
    return np.ascontiguousarray(values)


def storage_dtype(name):
    return BF16 if name == "bfloat16" else np.dtype(name)


def running_stats(case):
    """batch_norm_eval's running (mean, var): a function of C alone."""
    rng = np.random.default_rng(case.shape[1])
    wdt = weight_dtype(storage_dtype(case.dtype))
    return rng.standard_normal(case.shape[1]).astype(wdt) * 0.5, rng.uniform(0.5, 2.0, case.shape[1]).astype(wdt)


@functools.lru_cache(maxsize=None)
def data(case):
    """(x, grad_out, weight, bias, running stats) of `case`: deterministic,
    read-only (x and grad_out in the case's layout)."""
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    dt = storage_dtype(case.dtype)
    x = _laid_out(_store(rng.standard_normal(case.shape) * case.scale + case.offset, dt), case.layout)
    g = _laid_out(_store(rng.standard_normal(case.shape), dt), case.layout)
    w = b = None
    if case.affine:
        w = rng.uniform(0.5, 2.0, case.param_shape).astype(weight_dtype(dt))
        if case.op != "rms_norm":
            b = rng.standard_normal(case.param_shape).astype(weight_dtype(dt))
    for a in (x, g):
        a.flags.writeable = False
    return x, g, w, b, running_stats(case)


def forward(mod, case, x, w, b, return_stats=True):
    """mod.<op>(...): (y, *stats) with return_stats."""
    op, axis, act, kw = case.op, case.axis, case.activation, {"return_stats": return_stats}
    if op == "layer_norm":
        return mod.layer_norm(x, case.arg, w, b, EPS, activation=act, **kw)
    if op == "rms_norm":
        return mod.rms_norm(x, case.arg, w, None, **kw)
    if op == "group_norm":
        return mod.group_norm(x, case.arg, w, b, EPS, axis=axis, activation=act, **kw)
    if op == "instance_norm":
        return mod.instance_norm(x, None, None, w, b, True, 0.1, EPS, axis=axis, activation=act, **kw)
    rm, rv = (None, None) if op == "batch_norm" else running_stats(case)
    return mod.batch_norm(x, rm, rv, w, b, op == "batch_norm", 0.1, EPS, axis=axis, activation=act, **kw)


def backward(mod, case, g, x, stats, w, b, **kw):
    """mod.<op>_backward(...); stats = the forward's (mean, rstd) / (rstd,)."""
    op, axis, act = case.op, case.axis, case.activation
    if op == "layer_norm":
        return mod.layer_norm_backward(g, x, case.arg, *stats, w, bias=b, eps=EPS, activation=act, **kw)
    if op == "rms_norm":
        return mod.rms_norm_backward(g, x, case.arg, *stats, w, **kw)
    if op == "group_norm":
        return mod.group_norm_backward(g, x, case.arg, *stats, w, bias=b, eps=EPS, axis=axis,
                                       activation=act, **kw)
    if op == "instance_norm":
        return mod.instance_norm_backward(g, x, *stats, w, bias=b, eps=EPS, axis=axis, activation=act, **kw)
    return mod.batch_norm_backward(g, x, *stats, w, op == "batch_norm", bias=b, eps=EPS, axis=axis,
                                   activation=act, **kw)


def cnorm_grads(case, **kw):
    x, g, w, b, _ = data(case)
    stats = forward(cnorm, case, x, w, b)[1:]
    return backward(cnorm, case, g, x, stats, w, b, **kw)


@functools.lru_cache(maxsize=None)
def reference_grads(case):
    x, g, w, b, _ = data(case)
    stats = forward(ref, case, x, w, b)[1:]
    return backward(ref, case, g, x, stats, w, b)


def rel_error(got, want):
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want))) / (scale or 1.0) if want.size else 0.0


def check_close(got, want, dtype, what):
    err, tol = rel_error(got, want), TOL[np.dtype(dtype).name]
    assert err <= tol, f"{what}: max|got - want| / max|want| = {err:.3g} > {tol:.3g}"


def check_grads(case, got, want, needs=(True, True, True)):
    x, _, w, _, _ = data(case)
    assert isinstance(got, cnorm.Grads) and got._fields == ("x", "weight", "bias")
    if needs[0]:
        assert got.x.shape == x.shape and got.x.dtype == x.dtype
        if case.layout == "channels_last_view":  # the result keeps x's memory layout
            assert np.moveaxis(got.x, 1, -1).flags.c_contiguous
        check_close(got.x, want.x, x.dtype, "grad_x")
    else:
        assert got.x is None
    wdt = weight_dtype(x.dtype)
    for i, name in ((1, "weight"), (2, "bias")):
        g_got, g_want = got[i], want[i]
        if i >= n_grads(case.op) or not needs[i] or (i == 1 and w is None):
            assert g_got is None, f"grad_{name} should be None"
            continue
        assert g_got.shape == case.param_shape and g_got.dtype == wdt, (name, g_got.shape, g_got.dtype)
        check_close(g_got, g_want, wdt, f"grad_{name}")


def channel_cases(ops, layouts, dtypes, shapes, **kw):
    return [Case(op, shape, groups if op == "group_norm" else None, dtype_id(dt), layout, **kw)
            for op in ops for shape, groups in shapes for layout in layouts for dt in dtypes]


def row_cases(ops, layouts, dtypes, shapes, **kw):
    return [Case(op, shape, ns, dtype_id(dt), layout, **kw)
            for op in ops for shape, ns in shapes for layout in layouts for dt in dtypes]


def case_id(case):
    parts = [case.op, "x".join(map(str, case.shape)), case.layout, case.dtype]
    if not case.affine:
        parts.append("plain")
    if case.activation:
        parts.append(case.activation)
    return "-".join(parts)


def cases_param(cases):
    return pytest.mark.parametrize("case", cases, ids=[case_id(c) for c in cases])


# ------------------------------------------------------------ the reference itself

def _torch():
    return pytest.importorskip("torch")


def torch_grads(case, dtype="float64", x=None, g=None):
    """torch.autograd's (grad_x, grad_weight, grad_bias) for `case` (NCHW
    logical order for channel ops; channels_last memory for NHWC layouts)."""
    torch = _torch()
    F = torch.nn.functional
    x0, g0, w0, b0, running = data(case)
    x0 = x0 if x is None else x
    g0 = g0 if g is None else g
    tdt = getattr(torch, dtype)
    nhwc = case.layout == "nhwc"
    if nhwc:  # back to the logical NCHW order, channels_last in memory
        x0, g0 = np.moveaxis(x0, -1, 1), np.moveaxis(g0, -1, 1)
    # torch 2.13's instance_norm backward is wrong for a channels_last input
    # with N == 1 (grad_x off by O(1)): give it NCHW memory, the math is the same
    cl = nhwc and x0.ndim == 4 and case.op != "instance_norm"
    fmt = torch.channels_last if cl else torch.contiguous_format

    def leaf(a):
        if a is None:
            return None
        return torch.tensor(np.asarray(a, dtype=np.float64), dtype=tdt).contiguous(memory_format=fmt) \
            .requires_grad_() if a.ndim == 4 else torch.tensor(np.asarray(a, dtype=np.float64),
                                                              dtype=tdt).requires_grad_()

    X, W, B = leaf(x0), leaf(w0), leaf(b0)
    G = torch.tensor(np.asarray(g0, dtype=np.float64), dtype=tdt).contiguous(
        memory_format=fmt if g0.ndim == 4 else torch.contiguous_format)
    op = case.op
    if op == "layer_norm":
        y = F.layer_norm(X, case.param_shape, W, B, EPS)
    elif op == "rms_norm":
        y = F.rms_norm(X, case.param_shape, W, ref._default_eps(x0))
    elif op == "group_norm":
        y = F.group_norm(X, case.arg, W, B, EPS)
    elif op == "instance_norm":
        y = F.instance_norm(X, weight=W, bias=B, eps=EPS)
    else:
        rm, rv = (torch.tensor(np.asarray(r, dtype=np.float64), dtype=tdt) for r in running)
        y = F.batch_norm(X, rm, rv, W, B, op == "batch_norm", 0.1, EPS)
    act = {None: lambda t: t, "relu": F.relu, "silu": F.silu, "gelu": F.gelu}[case.activation]
    act(y).backward(G)
    out = [None if t is None else t.grad.to(torch.float64).numpy() for t in (X, W, B)]
    if nhwc:
        out[0] = np.moveaxis(out[0], 1, -1)
    return out


REF_CASES = (row_cases(["layer_norm"], ["rows"], [np.float64], ROW_SHAPES[:3])
             + [Case("layer_norm", (4, 6), 6, "float64", "rows", activation=a) for a in ACTIVATIONS[1:]]
             + row_cases(["rms_norm"], ["rows"], [np.float64], ROW_SHAPES[:3])
             + channel_cases(CHANNEL_OPS, ["nchw", "nhwc"], [np.float64], CHANNEL_SHAPES[:3])
             + [Case(op, (2, 6, 3, 4), 3 if op == "group_norm" else None, "float64", "nchw", affine=aff,
                     activation=a) for op in CHANNEL_OPS for a in ACTIVATIONS[1:] for aff in (False, True)])


@cases_param(REF_CASES)
def test_reference_matches_torch_autograd_float64(case):
    """The complex-step reference against torch.autograd, both in float64."""
    want = torch_grads(case)
    got = reference_grads(case)
    for i, name in enumerate(("grad_x", "grad_weight", "grad_bias")[:n_grads(case.op)]):
        if want[i] is None:
            assert got[i] is None or case.affine is False
            continue
        check_close(got[i], want[i], np.float64, name)


def test_reference_needs_and_none_weight():
    case = Case("layer_norm", (3, 5), 5, "float64", "rows")
    x, g, w, b, _ = data(case)
    full = ref.layer_norm_backward(g, x, 5, weight=w, bias=b)
    part = ref.layer_norm_backward(g, x, 5, weight=w, bias=b, needs=(False, True, False))
    assert part.x is None and part.bias is None and np.array_equal(part.weight, full.weight)
    noaff = ref.layer_norm_backward(g, x, 5)
    assert noaff.weight is None and np.allclose(noaff.bias, np.asarray(g, np.float64).sum(0))
    assert ref.rms_norm_backward(g, x, 5, weight=w).bias is None


# ------------------------------------------------------------ cnorm against the reference

MAIN_CASES = (row_cases(ROW_OPS, ROW_LAYOUTS, DTYPES, ROW_SHAPES)
              + channel_cases(CHANNEL_OPS, CHANNEL_LAYOUTS, DTYPES, CHANNEL_SHAPES))


@cases_param(MAIN_CASES)
def test_backward_matches_reference(isa, case):
    check_grads(case, cnorm_grads(case), reference_grads(case))


ACT_CASES = ([Case("layer_norm", (6, 10), 10, dtype_id(dt), "rows", affine=aff, activation=a)
              for dt in (np.float32, np.float64) for aff in (False, True) for a in ACTIVATIONS]
             + [Case("rms_norm", (6, 10), 10, dtype_id(dt), "rows", affine=aff)
                for dt in (np.float32, np.float64) for aff in (False, True)]
             + [Case(op, (2, 6, 3, 5), 3 if op == "group_norm" else None, dtype_id(dt), layout, affine=aff,
                     activation=a)
                for op in CHANNEL_OPS for dt in (np.float32, np.float64) for layout in ("nchw", "nhwc")
                for aff in (False, True) for a in ACTIVATIONS])


@cases_param(ACT_CASES)
def test_backward_affine_and_activation(isa, case):
    check_grads(case, cnorm_grads(case), reference_grads(case))


@pytest.mark.parametrize("dtype", [np.float16] + ([BF16] if BF16 else []), ids=dtype_id)
@pytest.mark.parametrize("activation", ["silu", "gelu"])
@pytest.mark.parametrize("op", ["layer_norm", "group_norm", "batch_norm"])
def test_backward_half_with_activation(isa, op, activation, dtype):
    shape, arg = ((6, 10), 10) if op == "layer_norm" else ((2, 6, 3, 5), 3 if op == "group_norm" else None)
    case = Case(op, shape, arg, dtype_id(dtype), "rows" if op == "layer_norm" else "nhwc", activation=activation)
    check_grads(case, cnorm_grads(case), reference_grads(case))


def _needs_params():
    out = []
    for op in OPS:
        k = n_grads(op)
        for bits in range(1 << k):
            out.append(pytest.param(op, tuple(bool(bits >> i & 1) for i in range(k)),
                                    id=f"{op}-{''.join('xwb'[i] if bits >> i & 1 else '_' for i in range(k))}"))
    return out


def _small_case(op, dtype="float32", layout=None, **kw):
    if op in ROW_OPS:
        return Case(op, (6, 10), 10, dtype, layout or "rows", **kw)
    return Case(op, (2, 6, 3, 5), 3 if op == "group_norm" else None, dtype, layout or "nchw", **kw)


@pytest.mark.parametrize("op,needs", _needs_params())
def test_needs_skips_exactly_what_is_not_asked(isa, op, needs):
    """Gradients not asked for are None; the others are bitwise those of
    the full call."""
    case = _small_case(op, activation=None if op == "rms_norm" else "silu")
    full = cnorm_grads(case)
    part = cnorm_grads(case, needs=needs)
    for i in range(3):
        if i < len(needs) and needs[i]:
            assert part[i].tobytes() == full[i].tobytes(), f"gradient {i} differs with needs={needs}"
        else:
            assert part[i] is None


@pytest.mark.parametrize("op", OPS)
def test_no_weight_gives_no_grad_weight_but_grad_bias(isa, op):
    case = _small_case(op, affine=False)
    got = cnorm_grads(case)
    assert got.weight is None
    if op == "rms_norm":
        assert got.bias is None
    else:
        axes = tuple(range(got.x.ndim - 1)) if op in ROW_OPS else (0, 2, 3)
        np.testing.assert_allclose(got.bias, np.asarray(data(case)[1], np.float64).sum(axis=axes), rtol=1e-5)
    check_grads(case, got, reference_grads(case))


@pytest.mark.parametrize("op", [op for op in OPS if op != "batch_norm_eval"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=dtype_id)
def test_recomputed_statistics(isa, op, dtype):
    """mean/rstd None: recomputed from x."""
    case = _small_case(op, dtype_id(dtype), activation=None if op == "rms_norm" else "gelu")
    x, g, w, b, _ = data(case)
    got = backward(cnorm, case, g, x, (None,) if op == "rms_norm" else (None, None), w, b)
    check_grads(case, got, reference_grads(case))


def test_eval_batch_norm_needs_the_statistics():
    """training=False: mean/rstd are the running statistics the forward used,
    which x cannot give back, so None is an error naming mean (DESIGN.md's
    "recomputed from x" applies where the statistics are x's own)."""
    case = _small_case("batch_norm_eval")
    x, g, w, b, _ = data(case)
    with pytest.raises(ValueError, match=r"(?<!\w)mean(?!\w)"):
        backward(cnorm, case, g, x, (None, None), w, b)


# ------------------------------------------------------------ return_stats on every forward

STATS_CASES = (row_cases(ROW_OPS, ["rows"], DTYPES, ROW_SHAPES[1:3])
               + channel_cases(CHANNEL_OPS, ["nchw", "nhwc"], DTYPES, CHANNEL_SHAPES[:1]))


@cases_param(STATS_CASES)
def test_return_stats(isa, case):
    x, _, w, b, _ = data(case)
    got = forward(cnorm, case, x, w, b)
    want = forward(ref, case, x, w, b)
    assert len(got) == len(want) == (2 if case.op == "rms_norm" else 3)
    n = x.shape[0]
    c = x.shape[case.axis]
    if case.op in ROW_OPS:
        k = len(case.param_shape)
        shape = x.shape[:x.ndim - k] + (1,) * k
    else:
        shape = {"group_norm": (n, case.arg), "instance_norm": (n, c)}.get(case.op, (c,))
    wdt = weight_dtype(x.dtype)
    check_close(got[0], want[0], x.dtype, "y")
    assert got[0].tobytes() == forward(cnorm, case, x, w, b, return_stats=False).tobytes()
    for s_got, s_want, name in zip(got[1:], want[1:], ("mean", "rstd") if len(got) == 3 else ("rstd",)):
        assert s_got.shape == shape and s_got.dtype == wdt, (name, s_got.shape, s_got.dtype)
        np.testing.assert_allclose(s_got, np.reshape(s_want, shape), rtol=1e-12 if wdt == np.float64 else 1e-6,
                                   atol=1e-12 if wdt == np.float64 else 1e-6, err_msg=name)


# ------------------------------------------------------------ float64 finite differences

FD_CASES = ([Case("layer_norm", (3, 4), 4, "float64", "rows", activation=a) for a in (None, "silu", "gelu")]
            + [Case("rms_norm", (3, 4), 4, "float64", "rows")]
            + [Case(op, (2, 4, 3), 2 if op == "group_norm" else None, "float64", layout, activation=a)
               for op in CHANNEL_OPS for layout in ("nchw", "nhwc") for a in (None, "gelu")])


@cases_param(FD_CASES)
def test_float64_finite_differences(isa, case):
    """Every element of every gradient against central differences of
    cnorm's own forward (independent of the reference)."""
    x, g, w, b, _ = data(case)
    stats = forward(cnorm, case, x, w, b)[1:]
    got = backward(cnorm, case, g, x, stats, w, b)
    step = 1e-6
    g64 = np.asarray(g, np.float64)

    def loss(xx, ww, bb):
        return float(np.sum(g64 * forward(cnorm, case, xx, ww, bb)[0]))

    for i, (arr, name) in enumerate(((x, "grad_x"), (w, "grad_weight"), (b, "grad_bias"))[:n_grads(case.op)]):
        fd = np.empty(arr.shape)
        for j in np.ndindex(arr.shape):
            plus, minus = ([None if a is None else np.array(a) for a in (x, w, b)] for _ in range(2))
            plus[i][j] += step
            minus[i][j] -= step
            fd[j] = (loss(*plus) - loss(*minus)) / (2 * step)
        err = rel_error(got[i], fd)
        assert err <= 1e-7, f"{name}: max|backward - finite difference| / max|fd| = {err:.3g}"


# ------------------------------------------------------------ groups longer than one block (64 Ki values)

LONG_CASES = [Case("layer_norm", (2, 70001), 70001, "float32", "rows", activation="silu"),
              Case("rms_norm", (2, 70001), 70001, "float32", "rows"),
              Case("group_norm", (2, 8, 96, 97), 4, "float32", "nchw", activation="gelu"),
              Case("group_norm", (2, 8, 96, 97), 4, "float32", "nhwc", activation="relu"),
              Case("instance_norm", (1, 3, 263, 263), None, "float32", "nchw", activation="silu"),
              Case("instance_norm", (1, 3, 263, 263), None, "float32", "nhwc"),
              Case("batch_norm", (4, 8, 72, 72), None, "float32", "nchw", activation="relu"),
              Case("batch_norm", (4, 8, 72, 72), None, "float32", "nhwc", activation="silu"),
              Case("batch_norm_eval", (4, 8, 72, 72), None, "float32", "nhwc", activation="gelu")]


def _as(case, dtype):
    return dataclasses.replace(case, dtype=dtype)


def _directional_reference(case, v, which):
    """v . dL/d(which) by one complex step of the reference forward
    (the activation's derivative applied to grad_out analytically)."""
    x, g, w, b, _ = data(case)
    x, w, b = (np.asarray(a, np.float64) if a is not None else None for a in (x, w, b))
    plain = dataclasses.replace(case, activation=None)
    z = forward(ref, plain, x, w, b)[0]
    g_eff = np.asarray(g, np.float64) * ref._activation_grad(z, case.activation)
    args = [x, w, b]
    args[which] = args[which] + 1e-20j * v
    return float(np.sum(g_eff * forward(ref, plain, *args)[0].imag)) / 1e-20


@cases_param([_as(c, dt) for c in LONG_CASES for dt in ("float32", "float64")])
def test_long_groups_directional(isa, case):
    x, _, w, b, _ = data(case)
    got = cnorm_grads(case)
    rng = np.random.default_rng(7)
    for i, arr in enumerate((x, w, b)[:n_grads(case.op)]):
        v = rng.standard_normal(arr.shape)
        want = _directional_reference(case, v, i)
        dot = np.asarray(got[i], np.float64) * v
        err = abs(float(dot.sum()) - want) / float(np.abs(dot).sum())
        assert err <= TOL[case.dtype], f"gradient {i}: |v.got - v.want| / sum|v*got| = {err:.3g}"


@cases_param([_as(c, "float64") for c in LONG_CASES])
def test_long_groups_match_torch_float64(isa, case):
    want = torch_grads(case)
    got = cnorm_grads(case)
    for i, name in enumerate(("grad_x", "grad_weight", "grad_bias")[:n_grads(case.op)]):
        check_close(got[i], want[i], np.float64, name)


# ------------------------------------------------------------ offset data: 10x better than torch

OFFSET_CASES = [Case("layer_norm", (32, 512), 512, "float32", "rows", offset=1e4, scale=1.0),
                Case("group_norm", (4, 32, 8, 8), 8, "float32", "nchw", offset=1e4, scale=1.0),
                Case("group_norm", (4, 32, 8, 8), 8, "float32", "nhwc", offset=1e4, scale=1.0),
                Case("instance_norm", (2, 8, 16, 16), None, "float32", "nchw", offset=1e4, scale=1.0),
                Case("batch_norm", (8, 16, 8, 8), None, "float32", "nchw", offset=1e4, scale=1.0),
                Case("batch_norm", (8, 16, 8, 8), None, "float32", "nhwc", offset=1e4, scale=1.0)]


@cases_param(OFFSET_CASES)
def test_offset_float32_ten_times_better_than_torch(isa, case):
    """mean/std = 1e4, float32, with the float32 statistics the forward
    saved: cnorm's grad_x error <= 0.1x torch's (torch's CPU float32
    backward), both against the float64 reference of the same input."""
    want = reference_grads(case).x
    got = cnorm_grads(case).x
    torch_x = torch_grads(case, "float32")[0]
    err, torch_err = rel_error(got, want), rel_error(torch_x, want)
    assert err <= 0.1 * torch_err, (f"{case_id(case)}: grad_x error (max|err| / max|grad|) cnorm {err:.3g}, "
                                    f"torch {torch_err:.3g}")
    assert err <= 1e-5, f"{case_id(case)}: grad_x error cnorm {err:.3g}, torch {torch_err:.3g}"


# ------------------------------------------------------------ thread count

THREAD_CASES = LONG_CASES + [_as(LONG_CASES[2], "float16"), _as(LONG_CASES[7], "float64")] \
    + ([_as(LONG_CASES[0], "bfloat16")] if BF16 else [])


@cases_param(THREAD_CASES)
def test_bitwise_identical_for_any_thread_count(isa, threads, case):
    x, _, w, b, _ = data(case)
    assert x.size > 2**17
    results = []
    for n in (1, 2):
        cnorm.set_num_threads(n)
        results.append(cnorm_grads(case))
    for i, name in enumerate(("grad_x", "grad_weight", "grad_bias")[:n_grads(case.op)]):
        assert results[0][i].tobytes() == results[1][i].tobytes(), f"{name} differs between 1 and 2 threads"


# ------------------------------------------------------------ out=, in place, strides, channels-last views

@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("target", ["new", "grad_out", "x", "strided"])
def test_out_and_in_place(isa, op, target):
    case = _small_case(op, activation=None if op == "rms_norm" else "silu")
    x, g, w, b, _ = data(case)
    stats = forward(cnorm, case, x, w, b)[1:]
    want = backward(cnorm, case, g, x, stats, w, b)
    x, g = x.copy(), g.copy()
    out = {"new": np.empty_like(x), "grad_out": g, "x": x,
           "strided": np.empty(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)[..., ::2]}[target]
    got = backward(cnorm, case, g, x, stats, w, b, out=out)
    assert got.x is out
    for i in range(n_grads(op)):  # tobytes: the values in C order, whatever the strides
        assert got[i].tobytes() == want[i].tobytes(), f"gradient {i} differs with out={target}"


def _restrided(a, how):
    if how == "negative":
        return np.ascontiguousarray(a[::-1, ..., ::-1])[::-1, ..., ::-1]
    if how == "non_contiguous":
        big = np.zeros(a.shape[:-1] + (3 * a.shape[-1],), a.dtype)
        big[..., ::3] = a
        return big[..., ::3]
    if how == "transposed":  # F order
        return np.asfortranarray(a)
    return np.ascontiguousarray(a)


@pytest.mark.parametrize("how", ["negative", "non_contiguous", "transposed"])
@pytest.mark.parametrize("which", ["grad_out", "x", "both"])
@pytest.mark.parametrize("op", OPS)
def test_any_strides(isa, op, which, how):
    case = _small_case(op, activation=None if op == "rms_norm" else "gelu")
    x, g, w, b, _ = data(case)
    stats = forward(cnorm, case, x, w, b)[1:]
    xs = _restrided(x, how) if which in ("x", "both") else x
    gs = _restrided(g, how) if which in ("grad_out", "both") else g
    got = backward(cnorm, case, gs, xs, stats, w, b)
    check_grads(case, got, reference_grads(case))


@pytest.mark.parametrize("op", OPS)
def test_zero_stride_grad_out(isa, op):
    """grad_out broadcast (the gradient of a sum: all ones) is accepted."""
    case = _small_case(op, dtype="float64")
    x, _, w, b, _ = data(case)
    stats = forward(cnorm, case, x, w, b)[1:]
    ones = np.broadcast_to(np.ones((), x.dtype), x.shape)
    assert ones.strides == (0,) * x.ndim
    got = backward(cnorm, case, ones, x, stats, w, b)
    want = backward(ref, case, np.ones(x.shape), x, stats, w, b)
    for i in range(n_grads(op)):
        np.testing.assert_allclose(got[i], want[i], rtol=1e-12, atol=1e-12 * max(1.0, np.abs(want[i]).max()))


@pytest.mark.parametrize("op", CHANNEL_OPS)
def test_channels_last_view_is_not_copied(isa, op):
    """(N, C, H, W) views of NHWC memory with axis=1: grad_out and x go to
    the kernel as they are (no copy on the Python heap), and grad_x keeps
    the channels-last layout."""
    case = Case(op, (2, 32, 16, 32), 4 if op == "group_norm" else None, "float32", "channels_last_view",
                activation="relu")
    x, g, w, b, _ = data(case)
    stats = forward(cnorm, case, x, w, b)[1:]
    out = np.moveaxis(np.empty(np.moveaxis(x, 1, -1).shape, x.dtype), -1, 1)
    backward(cnorm, case, g, x, stats, w, b, out=out)  # warm up (caches, lazy imports)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        got = backward(cnorm, case, g, x, stats, w, b, out=out)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert got.x is out
    nbytes = x.nbytes
    assert peak < nbytes // 4, f"{peak} bytes allocated on the Python heap for an input of {nbytes}"
    plain = backward(cnorm, case, g, x, stats, w, b)
    assert np.moveaxis(plain.x, 1, -1).flags.c_contiguous
    nchw = backward(cnorm, case, np.ascontiguousarray(g), np.ascontiguousarray(x), stats, w, b)
    for i in range(3):
        check_close(plain[i], nchw[i], np.float32, f"gradient {i} against NCHW copies")


# ------------------------------------------------------------ bad input

def _valid(op):
    """(function name, positional args, keyword args) of a valid call."""
    case = _small_case(op, activation=None if op == "rms_norm" else "relu")
    x, g, w, b, _ = data(case)
    stats = forward(cnorm, case, x, w, b)[1:]
    fn = "batch_norm_backward" if op.startswith("batch_norm") else op + "_backward"
    kw = {} if op == "rms_norm" else {"bias": b, "activation": "relu"}
    lead = (case.arg,) if op in ("layer_norm", "rms_norm", "group_norm") else ()
    tail = (op == "batch_norm",) if op.startswith("batch_norm") else ()
    return fn, dict(grad_out=g, x=x, lead=lead, stats=stats, weight=w, tail=tail), kw


def _call(fn, a, kw):
    args = (a["grad_out"], a["x"]) + a["lead"] + tuple(a["stats"]) + (a["weight"],) + a["tail"]
    return getattr(cnorm, fn)(*args, **kw)


def _bad_inputs(op):
    """(argument named in the message, change to a valid call)."""
    rms = op == "rms_norm"
    channel = op in CHANNEL_OPS
    k = n_grads(op)

    def a(**changes):
        return lambda args, kw: args.update(changes)

    def k_(**changes):
        return lambda args, kw: kw.update(changes)

    def stats(fn):
        return lambda args, kw: args.update(stats=fn(args["stats"]))

    def shrink(s):
        return np.ascontiguousarray(np.asarray(s).reshape(-1)[:-1])

    cases = [
        ("grad_out", lambda args, kw: args.update(grad_out=args["grad_out"][..., :-1])),
        ("grad_out", lambda args, kw: args.update(grad_out=args["grad_out"][None])),
        ("grad_out", lambda args, kw: args.update(grad_out=args["grad_out"].astype(np.complex64))),
        ("x", lambda args, kw: args.update(x=args["x"].astype(np.complex64))),
        ("x", lambda args, kw: args.update(x=args["x"].astype(object))),
        ("weight", lambda args, kw: args.update(weight=np.ones(args["weight"].size + 1, np.float32))),
        ("rstd", stats(lambda s: s[:-1] + (shrink(s[-1]),))),
        ("rstd", stats(lambda s: s[:-1] + (s[-1].reshape(-1)[:1].reshape(()) * np.ones(()),))),
        ("needs", k_(needs=(True,) * (k - 1))),
        ("needs", k_(needs=(True,) * (k + 1))),
        ("needs", k_(needs=("yes",) + (True,) * (k - 1))),
        ("needs", k_(needs=(None,) + (True,) * (k - 1))),
        ("needs", k_(needs=(1,) + (True,) * (k - 1))),
        ("needs", k_(needs=True)),
        ("eps", k_(eps=-1.0)),
        ("eps", k_(eps=float("nan"))),
        ("eps", k_(eps=float("inf"))),
        ("eps", k_(eps="small")),
        ("out", k_(out=np.empty((2, 3), np.float32))),
        ("out", k_(out=np.empty(_small_shape(op), np.float64))),
        ("out", k_(out=_readonly(np.empty(_small_shape(op), np.float32)))),
    ]
    if not rms:
        cases += [
            ("mean", stats(lambda s: (shrink(s[0]), s[1]))),
            ("mean|rstd", stats(lambda s: (None, s[1]))),
            ("mean|rstd", stats(lambda s: (s[0], None))),
            ("activation", k_(activation="tanh")),
            ("activation", k_(activation=3)),
            ("bias", k_(bias=np.ones(7, np.float32))),
        ]
    if channel:
        cases += [("axis", k_(axis=4)), ("axis", k_(axis=1.5))]
    if op == "group_norm":
        cases += [("num_groups", a(lead=(4,))), ("num_groups", a(lead=(0,)))]
    if op in ROW_OPS:
        cases += [("normalized_shape", a(lead=(11,))), ("normalized_shape", a(lead=((3, 10),)))]
    return cases


def _small_shape(op):
    return _small_case(op).shape


def _readonly(a):
    a.flags.writeable = False
    return a


def _bad_params():
    return [pytest.param(op, name, change, id=f"{op}-{name}-{i}")
            for op in OPS for i, (name, change) in enumerate(_bad_inputs(op))]


@pytest.mark.parametrize("op,name,change", _bad_params())
def test_bad_input_raises_naming_the_argument(op, name, change):
    fn, args, kw = _valid(op)
    _call(fn, dict(args), dict(kw))  # the valid call works
    args, kw = dict(args), dict(kw)
    change(args, kw)
    with pytest.raises((ValueError, TypeError)) as info:
        _call(fn, args, kw)
    assert re.search(rf"(?<!\w)({name})(?!\w)", str(info.value)), \
        f"{type(info.value).__name__} does not name {name!r}: {info.value}"


# ------------------------------------------------------------ section 3 rules: empty batches, NaN groups

@pytest.mark.parametrize("op", OPS)
def test_size_0_batch(op):
    """A size-0 batch dim gives an empty grad_x and zero parameter gradients."""
    case = _small_case(op)
    x, g, w, b, _ = data(case)
    x0, g0 = x[:0], g[:0]
    stats = (None,) if op == "rms_norm" else (None, None)
    if op == "batch_norm_eval":
        stats = forward(cnorm, case, x, w, b)[1:]
    got = backward(cnorm, case, g0, x0, stats, w, b)
    assert got.x.shape == x0.shape and got.x.dtype == x.dtype
    for i in range(1, n_grads(op)):
        assert got[i].shape == case.param_shape and not np.any(got[i])


@pytest.mark.parametrize("op", OPS)
def test_nan_stays_in_its_group(isa, op):
    """NaN in one group of x: grad_x of every other group is as without it
    (batch norm's groups are the channels, the others' a sample's)."""
    case = _small_case(op, dtype="float64")
    x, g, w, b, _ = data(case)
    stats = forward(cnorm, case, x, w, b)[1:]
    clean = backward(cnorm, case, g, x, stats, w, b)
    bad = x.copy()
    bad[(1,) + (0,) * (x.ndim - 1)] = np.nan  # sample 1, channel 0
    nan_stats = forward(cnorm, case, bad, w, b)[1:]
    got = backward(cnorm, case, g, bad, nan_stats, w, b)
    # batch norm: channels 1.. of every sample; the others: sample 0 (row 0 of layer/RMS norm)
    others = (slice(None), slice(1, None)) if op.startswith("batch_norm") else (0,)
    check_close(got.x[others], clean.x[others], np.float64, "grad_x outside the NaN's group")
    if op == "batch_norm_eval":  # elementwise: only the NaN's own element
        assert np.isnan(got.x).sum() == 1
