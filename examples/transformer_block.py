"""A PyTorch model run in NumPy, with every normalization done by cnorm.

Two small networks are built in PyTorch (random init, fixed seed, eval mode):

- a Conv-BN-ReLU stem on 8 images 3x64x64:
  Conv2d(3, 32, 3, stride 2) -> BatchNorm2d -> ReLU
  -> Conv2d(32, 64, 3, stride 2) -> GroupNorm(8, 64) -> SiLU;
- a pre-norm transformer block on 8 sequences of 128 tokens of width 256:
  x + MultiheadAttention(LayerNorm(x)), then x + MLP(LayerNorm(x)) with GELU.

The normalization layers are converted with ``cnorm.nn.from_torch``; the
rest (convolutions through ``sliding_window_view`` + ``tensordot``,
attention, MLP) is plain NumPy.  The batch norm runs three ways: the
converted module followed by ReLU, ``cnorm.batch_norm(..., activation="relu")``
(fused), and folded into the convolution with ``cnorm.fold_batch_norm``.

Prints the largest absolute difference to PyTorch for each part and the
median wall time of both implementations, and exits with status 1 if a
difference exceeds the float32 tolerance.

    python examples/transformer_block.py [--reps 5]

OpenMP threads (cnorm's and torch's) wait for work by spinning, and so do
NumPy's OpenBLAS threads: when the two alternate call after call, as here,
they take the cores from each other (on 2 cores, an OpenBLAS matmul followed
by a cnorm call of 256 Ki elements took 8 ms instead of 0.6 ms).  The
example therefore sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is already set
(``OMP_WAIT_POLICY=ACTIVE python examples/transformer_block.py`` shows the
difference).
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch or cnorm loads the OpenMP runtime

import numpy as np
import torch
from torch import nn

try:
    import cnorm
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import cnorm
import cnorm.nn

SEED = 0
BATCH, TOKENS, WIDTH, HEADS = 8, 128, 256, 8
IMAGES = (8, 3, 64, 64)
# a difference is a failure above RTOL times the largest magnitude of torch's result (at least 1)
RTOL = 1e-4


# ---------------------------------------------------------------- PyTorch

class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, width=WIDTH, heads=HEADS, hidden=4 * WIDTH):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        parts = {}
        h = parts["block ln1"] = self.ln1(x)
        x = parts["block attention + residual"] = x + self.attn(h, h, h, need_weights=False)[0]
        h = parts["block ln2"] = self.ln2(x)
        parts["block output"] = x + self.fc2(self.act(self.fc1(h)))
        return parts


class Stem(nn.Module):
    """Conv-BN-ReLU, then Conv-GN-SiLU."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.gn = nn.GroupNorm(8, 64)

    def forward(self, x):
        parts = {}
        y = parts["stem conv-bn-relu"] = torch.relu(self.bn(self.conv1(x)))
        parts["stem conv-gn-silu"] = nn.functional.silu(self.gn(self.conv2(y)))
        return parts


def build_models():
    """The two models in eval mode, with non-trivial norm parameters and
    batch-norm running stats from a few training-mode batches."""
    torch.manual_seed(SEED)
    stem, block = Stem(), Block()
    with torch.no_grad():
        for norm in (stem.bn, stem.gn, block.ln1, block.ln2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
        stem.train()
        for _ in range(3):
            stem(torch.randn(*IMAGES) * 2 + 0.5)
    return stem.eval(), block.eval()


def torch_forward(stem, block, images, tokens):
    with torch.inference_mode():
        return {**stem(images), **block(tokens)}


# ---------------------------------------------------------------- NumPy + cnorm

def as_numpy(t):
    return None if t is None else t.detach().cpu().numpy().copy()


def conv2d(x, weight, bias, stride, padding):
    """Convolution (N, C, H, W) -> (N, C_out, H', W'), computed in NHWC memory:
    the result is an NCHW view of a channels-last array (cnorm reads it
    without a copy)."""
    k = weight.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3]))  # (N, H', W', C_out)
    if bias is not None:
        y += bias
    return y.transpose(0, 3, 1, 2)


def erf(x):
    """Abramowitz-Stegun 7.1.26 (absolute error below 1.5e-7)."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def gelu(x):
    return 0.5 * x * (1.0 + erf(x * np.float32(0.7071067811865476)))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class NumpyStem:
    """The stem with NumPy convolutions and cnorm normalizations."""

    def __init__(self, stem):
        self.w1 = as_numpy(stem.conv1.weight)
        self.w2, self.b2 = as_numpy(stem.conv2.weight), as_numpy(stem.conv2.bias)
        self.bn = cnorm.nn.from_torch(stem.bn)
        self.gn = cnorm.nn.from_torch(stem.gn)
        bn = self.bn
        self.w1_folded, self.b1_folded = cnorm.fold_batch_norm(self.w1, None, bn.running_mean, bn.running_var,
                                                               bn.weight, bn.bias, bn.eps)

    def forward(self, x, bn="fused"):
        """``bn``: "module" (cnorm.nn.BatchNorm2d, then ReLU), "fused"
        (cnorm.batch_norm with activation="relu") or "folded" (into conv1)."""
        bn_mod = self.bn
        if bn == "folded":
            y = np.maximum(conv2d(x, self.w1_folded, self.b1_folded, 2, 1), 0)
        else:
            y = conv2d(x, self.w1, None, 2, 1)
            if bn == "module":
                y = np.maximum(bn_mod(y, out=y), 0)
            else:
                y = cnorm.batch_norm(y, bn_mod.running_mean, bn_mod.running_var, bn_mod.weight, bn_mod.bias,
                                     False, 0.0, bn_mod.eps, out=y, activation="relu")
        gn = self.gn
        z = conv2d(y, self.w2, self.b2, 2, 1)
        z = cnorm.group_norm(z, gn.num_groups, gn.weight, gn.bias, gn.eps, out=z, activation="silu")
        return {"stem conv-bn-relu": y, "stem conv-gn-silu": z}


class NumpyBlock:
    """The transformer block with NumPy matmuls and cnorm layer norms."""

    def __init__(self, block):
        self.ln1, self.ln2 = cnorm.nn.from_torch(block.ln1), cnorm.nn.from_torch(block.ln2)
        attn = block.attn
        self.heads = attn.num_heads
        self.w_qkv, self.b_qkv = as_numpy(attn.in_proj_weight).T.copy(), as_numpy(attn.in_proj_bias)
        self.w_o, self.b_o = as_numpy(attn.out_proj.weight).T.copy(), as_numpy(attn.out_proj.bias)
        self.w1, self.b1 = as_numpy(block.fc1.weight).T.copy(), as_numpy(block.fc1.bias)
        self.w2, self.b2 = as_numpy(block.fc2.weight).T.copy(), as_numpy(block.fc2.bias)

    def attention(self, h):
        n, t, d = h.shape
        dh = d // self.heads
        qkv = (h @ self.w_qkv + self.b_qkv).reshape(n, t, 3, self.heads, dh).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (N, heads, T, dh)
        scores = (q * np.float32(1.0 / np.sqrt(dh))) @ k.transpose(0, 1, 3, 2)
        a = softmax(scores) @ v
        return a.transpose(0, 2, 1, 3).reshape(n, t, d) @ self.w_o + self.b_o

    def forward(self, x):
        parts = {}
        h = parts["block ln1"] = self.ln1(x)
        x = parts["block attention + residual"] = x + self.attention(h)
        h = parts["block ln2"] = self.ln2(x)
        parts["block output"] = x + gelu(h @ self.w1 + self.b1) @ self.w2 + self.b2
        return parts


def numpy_forward(stem, block, images, tokens, bn="fused"):
    return {**stem.forward(images, bn), **block.forward(tokens)}


# ---------------------------------------------------------------- driver

def median_ms(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions (median reported)")
    args = parser.parse_args(argv)

    stem_t, block_t = build_models()
    rng = np.random.default_rng(SEED)
    images = rng.standard_normal(IMAGES, dtype=np.float32)
    tokens = rng.standard_normal((BATCH, TOKENS, WIDTH), dtype=np.float32)
    images_t, tokens_t = torch.from_numpy(images), torch.from_numpy(tokens)

    stem_np, block_np = NumpyStem(stem_t), NumpyBlock(block_t)
    print(f"cnorm {cnorm.__version__} (isa {cnorm.get_isa()}, {cnorm.get_num_threads()} threads), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print(f"stem: {IMAGES[0]} images {IMAGES[1]}x{IMAGES[2]}x{IMAGES[3]}; block: {BATCH} x {TOKENS} tokens "
          f"of width {WIDTH}, {HEADS} heads")
    print("converted:", stem_np.bn, stem_np.gn, block_np.ln1, sep="\n  ")

    want = {k: v.numpy() for k, v in torch_forward(stem_t, block_t, images_t, tokens_t).items()}
    rows = []

    def compare(got, suffix=""):
        for name, value in got.items():
            diff = float(np.max(np.abs(value.astype(np.float64) - want[name])))
            tol = RTOL * max(1.0, float(np.max(np.abs(want[name]))))
            rows.append((name + suffix, diff, tol))

    compare(numpy_forward(stem_np, block_np, images, tokens))  # batch norm with the fused ReLU
    compare(stem_np.forward(images, "module"), " [BN module]")
    compare(stem_np.forward(images, "folded"), " [BN folded]")

    print(f"\n{'part':<40} {'max |numpy - torch|':>20} {'tolerance':>10}")
    for label, diff, tol in rows:
        print(f"{label:<40} {diff:>20.3e} {tol:>10.1e}{'' if diff <= tol else '  FAIL'}")

    t_torch = median_ms(lambda: torch_forward(stem_t, block_t, images_t, tokens_t), args.reps)
    t_numpy = median_ms(lambda: numpy_forward(stem_np, block_np, images, tokens), args.reps)
    with torch.inference_mode():
        t_stem_torch = median_ms(lambda: stem_t(images_t), args.reps)
    t_stem_numpy = median_ms(lambda: stem_np.forward(images), args.reps)
    print(f"\nmedian wall time of {args.reps} runs (ms)   {'torch':>10} {'numpy+cnorm':>12}")
    print(f"{'stem':<37} {t_stem_torch:>10.2f} {t_stem_numpy:>12.2f}")
    print(f"{'stem + block':<37} {t_torch:>10.2f} {t_numpy:>12.2f}")

    failed = [label for label, diff, tol in rows if not diff <= tol]
    if failed:
        print(f"\nFAIL: difference above tolerance in {', '.join(failed)}")
        return 1
    print("\nOK: every part within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
