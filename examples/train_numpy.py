"""Training in NumPy + cnorm only, checked step by step against PyTorch.

Two small models, each trained with SGD (momentum 0.9) on synthetic data:

- a CNN classifying 12x12 images into 4 stripe patterns (horizontal,
  vertical, diagonal, checkerboard; random phase, frequency, contrast,
  brightness offset and noise):

      Conv3x3(1, 8) -> BatchNorm2d(8) -> ReLU               cnorm.nn module
      -> Conv3x3(8, 16) -> group_norm(4 groups) + SiLU      functional, fused activation
      -> global average pool -> Linear(16, 32) -> LayerNorm(32) -> ReLU   cnorm.nn module
      -> Linear(32, 4) -> softmax cross-entropy

- a pre-norm transformer block on sequences of 16 tokens of width 32, every
  token predicting the sequence's majority token (4 classes; a token alone
  cannot know it, attention has to look at the others):

      x + SelfAttention(LayerNorm(x))        2 heads, softmax attention
      -> x + MLP(LayerNorm(x))               Linear(32, 64) -> GELU (tanh form) -> Linear(64, 32)
      -> LayerNorm -> Linear(32, 4) per token -> softmax cross-entropy

The convolutions (im2col), linear layers, attention, activations, loss and
SGD are plain NumPy with their backward written out; every normalization
runs in cnorm, forward and backward:

- the cnorm.nn modules keep what their backward needs (their input and, in
  training mode, the saved statistics); ``module.backward(grad_out)``
  returns the input gradient and adds into ``module.grad``, which the
  optimizer reads and ``module.zero_grad()`` clears;
- the functional layer keeps x, the saved mean/rstd (float32, from
  ``return_stats=True``), weight and bias itself: with a fused activation the
  backward rebuilds the pre-activation value from them.

Then the same models are trained in PyTorch (``torch.nn.functional`` and
autograd, ``torch.optim.SGD``) from the same initial weights on the same
batches, float32 on both sides.  The script prints both loss curves every 20
steps, the largest per-step relative loss difference, the held-out accuracy
(evaluation mode: BatchNorm uses its running statistics) and both wall
times, and ends with an ``OK`` line when, for both models, the losses agree
at every step within ``RTOL`` and the loss fell (mean of the last 10 steps
below half that of the first 10); else it exits with status 1.  torch is
imported only for the comparison: without it, the cnorm side trains and the
comparison is reported as skipped (exit status 0 if the losses fell).

    python examples/train_numpy.py [--steps 300] [--batch 32] [--seed 0] [--threads 0]

As examples/transformer_block.py, it sets ``OMP_WAIT_POLICY=PASSIVE`` unless
set: cnorm's OpenMP threads and NumPy's OpenBLAS threads, alternating call
after call, otherwise spin against each other for the cores.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before cnorm (or torch) loads the OpenMP runtime

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

try:
    import cnorm
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import cnorm
import cnorm.nn

CLASSES = 4
SIZE = 12                                   # CNN: images SIZE x SIZE
TOKENS, WIDTH, HEADS, HIDDEN = 16, 32, 2, 64  # transformer block
LR = {"cnn": 0.01, "transformer": 0.1}      # SGD learning rates (see RTOL)
MOMENTUM = 0.9
EPS = 1e-5
# The two sides compute the same float32 arithmetic in different orders
# (cnorm's blocked reductions vs torch's, im2col vs torch's convolution,
# OpenBLAS vs torch's GEMM), so each step differs by float32 rounding:
# about 1e-7 relative at step 0.  Training feeds each step's rounding into
# the next weights, so the difference can grow with the steps, and how fast
# depends on the dynamics, not on cnorm: torch against itself with the
# initial weights moved by one ulp shows the same growth.  The CNN with
# lr 0.05 (or with the images' brightness offset of std 3 of the first
# version of this example) is chaotic: that one-ulp perturbation reaches
# 1e-1 within 100 steps.  With lr 0.01 (momentum 0.9) it stays below 2e-5
# over 300 steps (seeds 0, 1, 2), and the transformer block at lr 0.1 below
# 1e-6.  RTOL = 1e-3 leaves a margin of 50x over that while staying far
# below what a wrong gradient gives (a gradient off by 1% in one layer moves
# the loss by more than 1e-2 within a few dozen steps).
RTOL = 1e-3


# ---------------------------------------------------------------- data

def make_images(n, rng):
    """n images (n, 1, SIZE, SIZE) float32 and their labels (n,)."""
    labels = rng.integers(0, CLASSES, n)
    i, j = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    freq = rng.uniform(0.6, 1.2, (n, 1, 1))
    waves = [np.sin(freq * i + phase), np.sin(freq * j + phase), np.sin(freq * (i + j) / 1.4 + phase),
             np.sin(freq * i + phase) * np.sin(freq * j + phase) * 2]
    images = np.choose(labels[:, None, None], waves)
    contrast = rng.uniform(0.5, 2.0, (n, 1, 1))
    offset = rng.normal(0, 1, (n, 1, 1))  # a per-image brightness: the norms take it out
    images = images * contrast + offset + rng.normal(0, 1, images.shape)
    return images[:, None].astype(np.float32), labels


def make_sequences(n, rng, embed):
    """n sequences (n, TOKENS, WIDTH) float32 and per-token labels (n, TOKENS):
    random tokens, 40% of them replaced by the sequence's label (so it is
    the majority token); each token is its fixed embedding plus a position
    embedding (data, not trained)."""
    labels = rng.integers(0, CLASSES, n)
    tokens = np.where(rng.random((n, TOKENS)) < 0.4, labels[:, None], rng.integers(0, CLASSES, (n, TOKENS)))
    x = embed["token"][tokens] + embed["position"]
    return x.astype(np.float32), np.repeat(labels[:, None], TOKENS, 1)


# ---------------------------------------------------------------- initial weights (shared by both sides)

def init_cnn(rng):
    def he(*shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32)
    ones, zeros = (lambda c: np.ones(c, np.float32)), (lambda c: np.zeros(c, np.float32))
    return {
        "conv1.w": he(8, 1, 3, 3, fan_in=9), "conv1.b": zeros(8), "bn.weight": ones(8), "bn.bias": zeros(8),
        "conv2.w": he(16, 8, 3, 3, fan_in=72), "conv2.b": zeros(16), "gn.weight": ones(16), "gn.bias": zeros(16),
        "fc1.w": he(16, 32, fan_in=16), "fc1.b": zeros(32), "ln.weight": ones(32), "ln.bias": zeros(32),
        "fc2.w": he(32, CLASSES, fan_in=32), "fc2.b": zeros(CLASSES),
    }


def init_transformer(rng):
    def normal(*shape, fan_in):
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
    ones, zeros = (lambda c: np.ones(c, np.float32)), (lambda c: np.zeros(c, np.float32))
    return {
        "ln1.weight": ones(WIDTH), "ln1.bias": zeros(WIDTH),
        "qkv.w": normal(WIDTH, 3 * WIDTH, fan_in=WIDTH), "qkv.b": zeros(3 * WIDTH),
        "proj.w": normal(WIDTH, WIDTH, fan_in=WIDTH), "proj.b": zeros(WIDTH),
        "ln2.weight": ones(WIDTH), "ln2.bias": zeros(WIDTH),
        "mlp1.w": normal(WIDTH, HIDDEN, fan_in=WIDTH), "mlp1.b": zeros(HIDDEN),
        "mlp2.w": normal(HIDDEN, WIDTH, fan_in=HIDDEN), "mlp2.b": zeros(WIDTH),
        "lnf.weight": ones(WIDTH), "lnf.bias": zeros(WIDTH),
        "head.w": normal(WIDTH, CLASSES, fan_in=WIDTH), "head.b": zeros(CLASSES),
    }


# ---------------------------------------------------------------- NumPy + cnorm layers

class Layer:
    """forward(x) keeps what backward(dy) needs; params() lists (array,
    gradient) pairs, the gradients accumulated by backward."""

    def params(self):
        return []

    def zero_grad(self):
        for _, g in self.params():
            g[...] = 0

    def train(self, mode):
        pass


class Affine(Layer):
    """A layer with weight w and bias b (copies of the initial values)."""

    def __init__(self, w, b):
        self.w, self.b = w.copy(), b.copy()
        self.gw, self.gb = np.zeros_like(self.w), np.zeros_like(self.b)

    def params(self):
        return [(self.w, self.gw), (self.b, self.gb)]


class Conv3x3(Affine):
    """3x3 convolution, stride 1, zero padding 1 (NCHW); w (C_out, C_in, 3, 3)."""

    def forward(self, x):
        n, c, h, w = self.shape = x.shape
        windows = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
        self.cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9)  # im2col: (N*H*W, C*9)
        y = self.cols @ self.w.reshape(len(self.w), -1).T + self.b
        return np.ascontiguousarray(y.reshape(n, h, w, -1).transpose(0, 3, 1, 2))

    def backward(self, dy):
        n, c, h, w = self.shape
        dy2 = dy.transpose(0, 2, 3, 1).reshape(n * h * w, -1)
        self.gw += (dy2.T @ self.cols).reshape(self.w.shape)
        self.gb += dy2.sum(0)
        dcols = (dy2 @ self.w.reshape(len(self.w), -1)).reshape(n, h, w, c, 3, 3)
        dxp = np.zeros((n, c, h + 2, w + 2), np.float32)
        for i in range(3):  # col2im: each window offset adds its slice back
            for j in range(3):
                dxp[:, :, i:i + h, j:j + w] += dcols[..., i, j].transpose(0, 3, 1, 2)
        return dxp[:, :, 1:-1, 1:-1]


class Linear(Affine):
    """x @ w + b over the last axis; w (in, out)."""

    def forward(self, x):
        self.x = x
        return x @ self.w + self.b

    def backward(self, dy):
        x2, dy2 = self.x.reshape(-1, self.w.shape[0]), dy.reshape(-1, self.w.shape[1])
        self.gw += x2.T @ dy2
        self.gb += dy2.sum(0)
        return dy @ self.w.T


class ReLU(Layer):
    def forward(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, np.float32(0))

    def backward(self, dy):
        return np.where(self.positive, dy, np.float32(0))


class GELU(Layer):
    """The tanh form 0.5 u (1 + tanh(c (u + 0.044715 u^3))), c = sqrt(2/pi),
    as torch's ``gelu(approximate="tanh")`` (NumPy has no erf; cnorm's
    exact GELU is fused into a norm's apply, and none precedes this one)."""

    C = np.float32(np.sqrt(2 / np.pi))
    A = np.float32(0.044715)

    def forward(self, u):
        self.u = u
        self.t = np.tanh(self.C * (u + self.A * u ** 3))
        return np.float32(0.5) * u * (1 + self.t)

    def backward(self, dy):
        u, t = self.u, self.t
        dz = self.C * (1 + 3 * self.A * u * u)
        return dy * (np.float32(0.5) * (1 + t) + np.float32(0.5) * u * (1 - t * t) * dz)


class GlobalAvgPool(Layer):
    def forward(self, x):
        self.shape = x.shape
        return x.mean((2, 3))

    def backward(self, dy):
        n, c, h, w = self.shape
        return np.broadcast_to(dy[:, :, None, None] / np.float32(h * w), self.shape)


class Norm(Layer):
    """A cnorm.nn module as a layer: it keeps its own saved state, and its
    gradients are module.grad."""

    def __init__(self, module, init, prefix):
        self.module = module
        for key in module.grad:  # the parameters: the module's state-dict keys
            getattr(module, key)[...] = init[f"{prefix}.{key}"]

    def forward(self, x):
        return self.module(x)

    def backward(self, dy):
        return self.module.backward(dy)

    def params(self):
        return [(getattr(self.module, key), grad) for key, grad in self.module.grad.items()]

    def zero_grad(self):
        self.module.zero_grad()

    def train(self, mode):
        self.module.train(mode)


class GroupNormSiLU(Affine):
    """The functional API with a fused activation: the layer keeps x, the
    saved statistics, weight and bias (the backward rebuilds the
    pre-activation value from them)."""

    def __init__(self, groups, w, b):
        super().__init__(w, b)
        self.groups = groups

    def forward(self, x):
        y, self.mean, self.rstd = cnorm.group_norm(x, self.groups, self.w, self.b, EPS, activation="silu",
                                                   return_stats=True)
        self.x = x
        return y

    def backward(self, dy):
        g = cnorm.group_norm_backward(dy, self.x, self.groups, self.mean, self.rstd, self.w, bias=self.b,
                                      eps=EPS, activation="silu")
        self.gw += g.weight
        self.gb += g.bias
        return g.x


class SelfAttention(Layer):
    """Multi-head softmax self-attention on (B, T, D): one Linear to q, k, v,
    softmax(q k^T / sqrt(d)) v per head, one Linear back to D."""

    def __init__(self, qkv, proj, heads):
        self.qkv, self.proj, self.heads = qkv, proj, heads

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv.forward(x).reshape(b, t, 3, self.heads, d // self.heads).transpose(2, 0, 3, 1, 4)
        self.q, self.k, self.v = qkv                         # (B, H, T, d/H) each
        self.scale = np.float32(1 / np.sqrt(d // self.heads))
        s = self.q @ self.k.transpose(0, 1, 3, 2) * self.scale
        p = np.exp(s - s.max(-1, keepdims=True))
        self.p = p / p.sum(-1, keepdims=True)                # (B, H, T, T)
        o = (self.p @ self.v).transpose(0, 2, 1, 3).reshape(b, t, d)
        return self.proj.forward(o)

    def backward(self, dy):
        b, t, d = dy.shape
        do = self.proj.backward(dy).reshape(b, t, self.heads, d // self.heads).transpose(0, 2, 1, 3)
        dv = self.p.transpose(0, 1, 3, 2) @ do
        dp = do @ self.v.transpose(0, 1, 3, 2)
        ds = self.p * (dp - (dp * self.p).sum(-1, keepdims=True)) * self.scale  # softmax's Jacobian
        dq, dk = ds @ self.k, ds.transpose(0, 1, 3, 2) @ self.q
        dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(b, t, 3 * d)
        return self.qkv.backward(dqkv)

    def params(self):
        return self.qkv.params() + self.proj.params()


class Sequential(Layer):
    def __init__(self, *layers):
        self.layers = layers

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def params(self):
        return [p for layer in self.layers for p in layer.params()]

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def train(self, mode):
        for layer in self.layers:
            layer.train(mode)


class Residual(Sequential):
    """x + layers(x)."""

    def forward(self, x):
        return x + super().forward(x)

    def backward(self, dy):
        return dy + super().backward(dy)


def cnn_numpy(init):
    return Sequential(
        Conv3x3(init["conv1.w"], init["conv1.b"]), Norm(cnorm.nn.BatchNorm2d(8, EPS), init, "bn"), ReLU(),
        Conv3x3(init["conv2.w"], init["conv2.b"]), GroupNormSiLU(4, init["gn.weight"], init["gn.bias"]),
        GlobalAvgPool(), Linear(init["fc1.w"], init["fc1.b"]), Norm(cnorm.nn.LayerNorm(32, EPS), init, "ln"),
        ReLU(), Linear(init["fc2.w"], init["fc2.b"]),
    )


def transformer_numpy(init):
    def linear(name):
        return Linear(init[f"{name}.w"], init[f"{name}.b"])

    def layer_norm(name):
        return Norm(cnorm.nn.LayerNorm(WIDTH, EPS), init, name)
    return Sequential(
        Residual(layer_norm("ln1"), SelfAttention(linear("qkv"), linear("proj"), HEADS)),
        Residual(layer_norm("ln2"), linear("mlp1"), GELU(), linear("mlp2")),
        layer_norm("lnf"), linear("head"),
    )


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy over all rows of logits (..., CLASSES) and
    its gradient with respect to the logits."""
    z = logits.reshape(-1, CLASSES)
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    rows, labels = np.arange(len(z)), labels.reshape(-1)
    loss = -logp[rows, labels].mean()
    grad = np.exp(logp)
    grad[rows, labels] -= 1
    return float(loss), (grad / np.float32(len(z))).reshape(logits.shape)


def train_numpy(model, x, y, batches, lr):
    """SGD with momentum as torch.optim.SGD: v = MOMENTUM v + g, p -= lr v.
    Returns the losses per step and the wall time."""
    params = model.params()
    velocity = [np.zeros_like(p) for p, _ in params]
    losses = []
    start = time.perf_counter()
    model.train(True)
    for idx in batches:
        model.zero_grad()
        loss, dlogits = cross_entropy(model.forward(x[idx]), y[idx])
        model.backward(dlogits)
        for (p, g), v in zip(params, velocity):
            v *= MOMENTUM
            v += g
            p -= np.float32(lr) * v
        losses.append(loss)
    elapsed = time.perf_counter() - start
    return np.array(losses), elapsed


def accuracy_numpy(model, x, y):
    model.train(False)  # BatchNorm: the running statistics
    return float((model.forward(x).argmax(-1) == y).mean())


# ---------------------------------------------------------------- the same in torch (comparison only)

def torch_side(threads):
    """The torch versions of both models and their training loop, or None
    when torch is not installed.  Imported here only: the cnorm side above
    never needs torch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    if threads:
        torch.set_num_threads(threads)

    def cnn(p, buffers, x, training):
        h = F.conv2d(x, p["conv1.w"], p["conv1.b"], padding=1)
        h = F.relu(F.batch_norm(h, buffers["bn.running_mean"], buffers["bn.running_var"], p["bn.weight"],
                                p["bn.bias"], training, 0.1, EPS))
        h = F.conv2d(h, p["conv2.w"], p["conv2.b"], padding=1)
        h = F.silu(F.group_norm(h, 4, p["gn.weight"], p["gn.bias"], EPS))
        h = h.mean((2, 3)) @ p["fc1.w"] + p["fc1.b"]
        h = F.relu(F.layer_norm(h, (32,), p["ln.weight"], p["ln.bias"], EPS))
        return h @ p["fc2.w"] + p["fc2.b"]

    def transformer(p, buffers, x, training):
        b, t, d = x.shape

        def ln(name, h):
            return F.layer_norm(h, (d,), p[f"{name}.weight"], p[f"{name}.bias"], EPS)
        qkv = (ln("ln1", x) @ p["qkv.w"] + p["qkv.b"]).reshape(b, t, 3, HEADS, d // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv
        att = torch.softmax(q @ k.transpose(-1, -2) * (1 / np.sqrt(d // HEADS)), -1)
        o = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + o @ p["proj.w"] + p["proj.b"]
        m = F.gelu(ln("ln2", x) @ p["mlp1.w"] + p["mlp1.b"], approximate="tanh")
        x = x + m @ p["mlp2.w"] + p["mlp2.b"]
        return ln("lnf", x) @ p["head.w"] + p["head.b"]

    def train(name, init, x, y, batches, lr, x_test, y_test):
        fn = {"cnn": cnn, "transformer": transformer}[name]
        p = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
        buffers = {"bn.running_mean": torch.zeros(8), "bn.running_var": torch.ones(8)}
        opt = torch.optim.SGD(list(p.values()), lr=lr, momentum=MOMENTUM)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        losses = []
        start = time.perf_counter()
        for idx in batches:
            idx = torch.from_numpy(idx)
            opt.zero_grad()
            logits = fn(p, buffers, xt[idx], True)
            loss = F.cross_entropy(logits.reshape(-1, CLASSES), yt[idx].reshape(-1))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        elapsed = time.perf_counter() - start
        with torch.no_grad():
            logits = fn(p, buffers, torch.from_numpy(x_test), False)  # eval: the running statistics
            accuracy = float((logits.argmax(-1).numpy() == y_test).mean())
        return np.array(losses), elapsed, accuracy

    return train


# ---------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32, help="images, or sequences, per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="cnorm's and torch's threads (0: their default)")
    args = parser.parse_args(argv)
    cnorm.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    embed = {"token": rng.standard_normal((CLASSES, WIDTH)), "position": 0.5 * rng.standard_normal((TOKENS, WIDTH))}
    tasks = {
        "cnn": (init_cnn(rng), make_images(1024, rng), make_images(256, rng), cnn_numpy,
                f"CNN: {args.steps} steps of {args.batch} images 1x{SIZE}x{SIZE}, 4 classes"),
        "transformer": (init_transformer(rng), make_sequences(1024, rng, embed), make_sequences(256, rng, embed),
                        transformer_numpy,
                        f"transformer block: {args.steps} steps of {args.batch} sequences {TOKENS}x{WIDTH}, "
                        f"{HEADS} heads, per-token 4 classes"),
    }
    torch_train = torch_side(args.threads)
    if torch_train is None:
        print("torch is not installed: training the cnorm side only, the comparison with torch is skipped")

    ok, summary = True, []
    for name, (init, (x, y), (x_test, y_test), build, title) in tasks.items():
        batches = rng.integers(0, len(x), (args.steps, args.batch))  # the same batches for both sides
        lr = LR[name]
        print(f"\n{title}; SGD lr {lr}, momentum {MOMENTUM}")
        model = build(init)
        losses, elapsed = train_numpy(model, x, y, batches, lr)
        accuracy = accuracy_numpy(model, x_test, y_test)
        if torch_train is not None:
            t_losses, t_elapsed, t_accuracy = torch_train(name, init, x, y, batches, lr, x_test, y_test)
            rel = np.abs(losses - t_losses) / np.abs(t_losses)
        print("  step   cnorm    torch    rel. diff" if torch_train else "  step   cnorm")
        for step in sorted(set(range(0, args.steps, 20)) | {args.steps - 1}):
            line = f"  {step:4d}  {losses[step]:.4f}"
            if torch_train is not None:
                line += f"  {t_losses[step]:.4f}  {rel[step]:.1e}"
            print(line)
        first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
        fell = last < 0.5 * first
        ok &= fell
        print(f"  loss (mean of the first/last 10 steps) {first:.4f} -> {last:.4f}; held-out accuracy {accuracy:.3f}"
              + ("" if fell else "  FAILED: not below half"))
        if torch_train is None:
            print(f"  wall time cnorm {elapsed:.2f} s")
            summary.append(f"{name} {first:.2f} -> {last:.2f}")
            continue
        worst = int(np.argmax(rel))
        agree = rel[worst] <= RTOL
        ok &= agree
        print(f"  torch: loss {np.mean(t_losses[:10]):.4f} -> {np.mean(t_losses[-10:]):.4f}; "
              f"held-out accuracy {t_accuracy:.3f}")
        print(f"  largest per-step relative loss difference {rel[worst]:.1e} (step {worst}; step 0: {rel[0]:.1e})"
              + ("" if agree else f"  FAILED: above {RTOL:g}"))
        print(f"  wall time cnorm {elapsed:.2f} s, torch {t_elapsed:.2f} s")
        summary.append(f"{name} {first:.2f} -> {last:.2f}, max rel. diff {rel[worst]:.1e}")

    print()
    if not ok:
        print("FAILED (see above)")
        return 1
    if torch_train is None:
        print(f"OK: the losses fell ({'; '.join(summary)}); the comparison with torch was skipped")
    else:
        print(f"OK: cnorm and torch losses agree within {RTOL:g} (relative) at every step, "
              f"and fell ({'; '.join(summary)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
