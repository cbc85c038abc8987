"""Five reference architectures in plain torch.nn, with random weights.

Nothing can be downloaded here, and the torchvision wheel that matches
torch 2.13 (0.28.0) is a CUDA build whose C++ ops do not load with the CPU
torch, so the architectures are written out (from the papers and the public
layouts named in each docstring; no code is copied).  They exist to run
cnorm.torch end to end (examples/torch_e2e.py, tests/test_torch_models.py):
every normalization is a stock ``torch.nn`` module, so
``cnorm.torch.patch(model)`` has something to swap in each of them.

=================  ==============================  ===========================
model              normalization                   follows
=================  ==============================  ===========================
``resnet18``       BatchNorm2d (20 modules)        He et al. 2016; torchvision
``style_net``      InstanceNorm2d(affine=True)     Johnson et al. 2016; PyTorch
                                                   examples' fast_neural_style
``unet_block``     GroupNorm(32) + SiLU            Stable Diffusion's ResnetBlock
``vit``            LayerNorm, pre-norm             Dosovitskiy et al. 2021; timm
``llama``          RMSNorm, pre-norm               Touvron et al. 2023 (LLaMA)
=================  ==============================  ===========================

Each builder takes the sizes as keywords (so tests build tiny versions) and
``MODELS[name](**kwargs)`` builds one.  Attention is
``F.scaled_dot_product_attention`` on a fused qkv projection (timm's
layout), not ``nn.TransformerEncoderLayer``: the latter's eval fast path
(``torch._transformer_encoder_layer_fwd``) reads the LayerNorm weights and
never calls the module, which would make a patched model's norms a silent
no-op in eval.
"""
import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------------------
# ResNet-18: He, Zhang, Ren, Sun, "Deep Residual Learning for Image
# Recognition", CVPR 2016, in torchvision's layout: conv1 7x7/2 -> BN -> ReLU
# -> maxpool 3x3/2 -> 4 stages of 2 BasicBlocks (64, 128, 256, 512 channels;
# stages 2-4 start with stride 2 and a 1x1-conv + BN projection shortcut)
# -> global average pool -> fc.  Convolutions have no bias (BN follows).

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, num_classes=1000, width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], width
        for i, cout in enumerate(width * m for m in (1, 2, 4, 8)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------------------
# Style transfer "transformer net": Johnson, Alahi, Fei-Fei, "Perceptual
# Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016, with
# instance norm in place of batch norm (Ulyanov et al. 2016), in the layout of
# the PyTorch examples' fast_neural_style: reflection-padded convolutions
# 9x9 (3->32), 3x3/2 (->64), 3x3/2 (->128), each followed by
# InstanceNorm2d(affine=True) + ReLU; 5 residual blocks (conv-IN-ReLU-conv-IN
# + x); 2 upsampling layers (nearest x2, then conv 3x3, IN, ReLU: 128->64->32);
# a final 9x9 conv to 3 channels with no norm.

class ConvLayer(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, upsample=None):
        layers = [nn.Upsample(scale_factor=upsample, mode="nearest")] if upsample else []
        layers += [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride)]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x):
        return x + self.in2(self.conv2(self.relu(self.in1(self.conv1(x)))))


class StyleNet(nn.Module):
    def __init__(self, width=32, blocks=5):
        super().__init__()
        w = width
        def down(cin, cout, k, s): return [ConvLayer(cin, cout, k, s), nn.InstanceNorm2d(cout, affine=True), nn.ReLU()]
        def up(cin, cout): return [ConvLayer(cin, cout, 3, upsample=2), nn.InstanceNorm2d(cout, affine=True), nn.ReLU()]
        self.body = nn.Sequential(
            *down(3, w, 9, 1), *down(w, 2 * w, 3, 2), *down(2 * w, 4 * w, 3, 2),
            *[ResidualBlock(4 * w) for _ in range(blocks)],
            *up(4 * w, 2 * w), *up(2 * w, w),
            ConvLayer(w, 3, 9, 1),
        )

    def forward(self, x):
        return self.body(x)


# ---------------------------------------------------------------------------
# UNet stage with GroupNorm + SiLU: the ResnetBlock of the latent-diffusion /
# Stable Diffusion UNet (Rombach et al., CVPR 2022; after Ho et al. 2020):
# GN(32) -> SiLU -> conv3x3 -> GN(32) -> SiLU -> (dropout, omitted) -> conv3x3,
# plus the input (through a 1x1 conv when the width changes); the stage is two
# such blocks and a stride-2 3x3 conv downsample, as one down stage of the
# UNet (the timestep embedding is left out: it only adds a per-channel bias).

class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups=32):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin, eps=1e-6), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout, eps=1e-6), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNetStage(nn.Module):
    def __init__(self, cin=256, cout=256, groups=32, blocks=2, downsample=True):
        super().__init__()
        self.blocks = nn.Sequential(*[ResnetBlock(cin if i == 0 else cout, cout, groups) for i in range(blocks)])
        self.down = nn.Conv2d(cout, cout, 3, 2, 1) if downsample else nn.Identity()

    def forward(self, x):
        return self.down(self.blocks(x))


# ---------------------------------------------------------------------------
# Transformer encoders.  ViT: Dosovitskiy et al., "An Image is Worth 16x16
# Words", ICLR 2021, in timm's VisionTransformer layout: a 16x16/16 conv patch
# embedding, a class token and learned position embeddings, then pre-norm
# blocks x + Attn(LN(x)), x + MLP(LN(x)) with a fused qkv projection and a
# GELU MLP of 4x width, a final LN and a linear head on the class token.
# 224x224 images give 197 tokens; ViT-B is width 768, 12 heads, 12 blocks.

class Attention(nn.Module):
    def __init__(self, dim, heads, bias=True, causal=False):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class ViTBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, image=224, patch=16, dim=768, depth=12, heads=12, num_classes=1000):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


# LLaMA: Touvron et al., "LLaMA: Open and Efficient Foundation Language
# Models", 2023: a decoder of pre-norm blocks with RMSNorm (Zhang & Sennrich
# 2019; eps 1e-6), causal attention with no biases and a SwiGLU MLP
# (Shazeer 2020; w2(silu(w1 x) * w3 x), hidden 8/3 of the width), a final
# RMSNorm and an untied output projection.  Rotary position embeddings are
# left out: they touch q and k only and have nothing to do with the norms.

class LlamaBlock(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.attention_norm, self.attention = nn.RMSNorm(dim, eps=1e-6), Attention(dim, heads, False, True)
        self.ffn_norm = nn.RMSNorm(dim, eps=1e-6)
        self.w1, self.w3 = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        x = x + self.attention(self.attention_norm(x))
        h = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Llama(nn.Module):
    def __init__(self, vocab=32000, dim=768, depth=12, heads=12, hidden=None):
        super().__init__()
        hidden = hidden or 256 * ((8 * dim // 3 + 255) // 256)
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.Sequential(*[LlamaBlock(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.RMSNorm(dim, eps=1e-6)
        self.output = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens):
        return self.output(self.norm(self.layers(self.tok_embeddings(tokens))))


def randomize_norms(model, seed=0):
    """Give every normalization layer trained-looking state, in place:
    affine weights in [0.5, 1.5), biases and running means ~ N(0, 0.1^2),
    running variances in [0.5, 2).  A freshly built model has weight 1,
    bias 0, running mean 0 and variance 1, which makes an eval BatchNorm a
    scaling by 1/sqrt(1 + eps): any implementation then gives the same bits,
    and a comparison of two would test nothing."""
    g = torch.Generator().manual_seed(seed)
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, norms):
                continue
            for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                if not t.is_floating_point():
                    continue
                if name == "weight" or name == "running_var":
                    lo, width = (0.5, 1.0) if name == "weight" else (0.5, 1.5)
                    t.copy_(lo + width * torch.rand(t.shape, generator=g))
                else:
                    t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return model


MODELS = {
    "resnet18": ResNet18,
    "style_net": StyleNet,
    "unet_block": UNetStage,
    "vit": ViT,
    "llama": Llama,
}
