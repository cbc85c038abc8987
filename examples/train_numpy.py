"""Training a small CNN in NumPy + cnorm only: forward and backward passes.

The model classifies synthetic 12x12 images into 4 patterns (horizontal,
vertical, diagonal stripes, checkerboard; random phase, contrast, offset and
noise):

    Conv3x3(1, 8) -> BatchNorm2d(8) -> ReLU              cnorm.nn module
    -> Conv3x3(8, 16) -> group_norm(4 groups) + SiLU     functional, fused activation
    -> global average pool -> Linear(16, 32) -> LayerNorm(32) -> ReLU   cnorm.nn module
    -> Linear(32, 4) -> softmax cross-entropy

The convolutions and linear layers are plain NumPy (forward and backward
written out); every normalization runs in cnorm, forward and backward:

- the modules keep what their backward needs (their input and, in training
  mode, the saved statistics); ``module.backward(grad_out)`` returns the
  input gradient and adds into ``module.grad``, read by the optimizer and
  cleared by ``module.zero_grad()``;
- the functional layer keeps x, the saved mean/rstd (float32, from
  ``return_stats=True``), weight and bias itself: with a fused activation the
  backward rebuilds the pre-activation value from them.

Minibatch SGD with Adam's step sizes, written out.  Prints the training loss every 20 steps, the
held-out accuracy (evaluation mode: BatchNorm uses its running statistics)
and the wall time, and ends with an ``OK`` line when the mean loss of the last
10 steps is below half that of the first 10 (exit status 1 otherwise).

    python examples/train_numpy.py [--steps 200] [--batch 32] [--lr 0.01] [--seed 0] [--threads 0]

As examples/transformer_block.py, it sets ``OMP_WAIT_POLICY=PASSIVE`` unless
set: cnorm's OpenMP threads and NumPy's OpenBLAS threads, alternating call
after call, otherwise spin against each other for the cores.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before cnorm loads the OpenMP runtime

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

try:
    import cnorm
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import cnorm
import cnorm.nn

SIZE, CLASSES = 12, 4
BETA1, BETA2 = 0.9, 0.999  # Adam


# ---------------------------------------------------------------- data

def make_data(n, rng):
    """n images (n, 1, SIZE, SIZE) float32 and their labels."""
    labels = rng.integers(0, CLASSES, n)
    i, j = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    freq = rng.uniform(0.6, 1.2, (n, 1, 1))
    waves = [np.sin(freq * i + phase), np.sin(freq * j + phase), np.sin(freq * (i + j) / 1.4 + phase),
             np.sin(freq * i + phase) * np.sin(freq * j + phase) * 2]
    images = np.choose(labels[:, None, None], waves)
    contrast = rng.uniform(0.5, 2.0, (n, 1, 1))
    offset = rng.normal(0, 3, (n, 1, 1))  # a per-image brightness: the norms take it out
    images = images * contrast + offset + rng.normal(0, 0.5, images.shape)
    return images[:, None].astype(np.float32), labels


# ---------------------------------------------------------------- layers

class Conv3x3:
    """3x3 convolution, stride 1, zero padding 1 (NCHW)."""

    def __init__(self, c_in, c_out, rng):
        self.w = (rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2 / (9 * c_in))).astype(np.float32)
        self.b = np.zeros(c_out, np.float32)
        self.gw, self.gb = np.zeros_like(self.w), np.zeros_like(self.b)

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

    def params(self):
        return [(self.w, self.gw), (self.b, self.gb)]

    def zero_grad(self):
        self.gw[...] = 0
        self.gb[...] = 0


class Linear:
    def __init__(self, n_in, n_out, rng):
        self.w = (rng.standard_normal((n_in, n_out)) * np.sqrt(2 / n_in)).astype(np.float32)
        self.b = np.zeros(n_out, np.float32)
        self.gw, self.gb = np.zeros_like(self.w), np.zeros_like(self.b)

    def forward(self, x):
        self.x = x
        return x @ self.w + self.b

    def backward(self, dy):
        self.gw += self.x.T @ dy
        self.gb += dy.sum(0)
        return dy @ self.w.T

    params, zero_grad = Conv3x3.params, Conv3x3.zero_grad


class ReLU:
    def forward(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, 0).astype(np.float32)

    def backward(self, dy):
        return np.where(self.positive, dy, 0).astype(np.float32)

    def params(self):
        return []

    def zero_grad(self):
        pass


class GlobalAvgPool:
    def forward(self, x):
        self.shape = x.shape
        return x.mean((2, 3))

    def backward(self, dy):
        n, c, h, w = self.shape
        return np.broadcast_to(dy[:, :, None, None] / (h * w), self.shape).astype(np.float32)

    def params(self):
        return []

    def zero_grad(self):
        pass


class Norm:
    """A cnorm.nn module as a layer: it keeps its own saved state, and its
    gradients are module.grad."""

    def __init__(self, module):
        self.module = module

    def forward(self, x):
        return self.module(x)

    def backward(self, dy):
        return self.module.backward(dy)

    def params(self):
        return [(getattr(self.module, key), grad) for key, grad in self.module.grad.items()]

    def zero_grad(self):
        self.module.zero_grad()


class GroupNormSiLU:
    """The functional API with a fused activation: the layer keeps x, the
    saved statistics, weight and bias (the pre-activation value is rebuilt
    from them in the backward)."""

    def __init__(self, groups, channels):
        self.groups = groups
        self.w, self.b = np.ones(channels, np.float32), np.zeros(channels, np.float32)
        self.gw, self.gb = np.zeros_like(self.w), np.zeros_like(self.b)

    def forward(self, x):
        y, self.mean, self.rstd = cnorm.group_norm(x, self.groups, self.w, self.b, activation="silu",
                                                   return_stats=True)
        self.x = x
        return y

    def backward(self, dy):
        g = cnorm.group_norm_backward(dy, self.x, self.groups, self.mean, self.rstd, self.w, bias=self.b,
                                      activation="silu")
        self.gw += g.weight
        self.gb += g.bias
        return g.x

    params, zero_grad = Conv3x3.params, Conv3x3.zero_grad


class Model:
    def __init__(self, rng):
        self.bn = cnorm.nn.BatchNorm2d(8)
        self.layers = [
            Conv3x3(1, 8, rng), Norm(self.bn), ReLU(),
            Conv3x3(8, 16, rng), GroupNormSiLU(4, 16),
            GlobalAvgPool(), Linear(16, 32, rng), Norm(cnorm.nn.LayerNorm(32)), ReLU(),
            Linear(32, CLASSES, rng),
        ]

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)

    def params(self):
        return [p for layer in self.layers for p in layer.params()]

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def train(self, mode=True):
        for layer in self.layers:
            if isinstance(layer, Norm):
                layer.module.train(mode)


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    n = len(labels)
    loss = -np.log(p[np.arange(n), labels] + 1e-12).mean()
    p[np.arange(n), labels] -= 1
    return float(loss), (p / n).astype(np.float32)


# ---------------------------------------------------------------- training

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="cnorm's threads (0: the OpenMP default)")
    args = parser.parse_args(argv)
    cnorm.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_data(1024, rng)
    x_test, y_test = make_data(256, rng)
    model = Model(rng)
    # Adam: first and second moment of each parameter's gradient
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p, _ in model.params()]

    losses = []
    start = time.perf_counter()
    for step in range(args.steps):
        idx = rng.integers(0, len(x_train), args.batch)
        model.train()
        model.zero_grad()
        loss, dlogits = cross_entropy(model.forward(x_train[idx]), y_train[idx])
        model.backward(dlogits)
        for (p, g), (m, v) in zip(model.params(), moments):
            m += (1 - BETA1) * (g - m)
            v += (1 - BETA2) * (g * g - v)
            m_hat, v_hat = m / (1 - BETA1 ** (step + 1)), v / (1 - BETA2 ** (step + 1))
            p -= args.lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        losses.append(loss)
        if step % 20 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss:.4f}")
    elapsed = time.perf_counter() - start

    model.train(False)  # BatchNorm: the running statistics
    accuracy = float((model.forward(x_test).argmax(1) == y_test).mean())
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    print(f"held-out accuracy {accuracy:.3f}  ({args.steps} steps of {args.batch} in {elapsed:.2f} s, "
          f"running_var of BatchNorm2d {model.bn.running_var.min():.3g}..{model.bn.running_var.max():.3g})")
    if last < 0.5 * first:
        print(f"OK: the loss fell from {first:.4f} (mean of the first 10 steps) to {last:.4f} (last 10)")
        return 0
    print(f"FAILED: the loss went from {first:.4f} to {last:.4f}, not below half")
    return 1


if __name__ == "__main__":
    sys.exit(main())
