"""cnorm inside PyTorch: custom operators, autograd, modules, patch().

    import cnorm.torch
    model = cnorm.torch.patch(model)     # every supported norm module runs through cnorm

- ``torch.ops.cnorm.layer_norm``, ``rms_norm``, ``group_norm``,
  ``instance_norm``, ``batch_norm``: custom operators with
  torch.nn.functional's arguments and results, autograd through cnorm's
  backward kernels, fake kernels for torch.compile/torch.export (_ops);
  ``add_layer_norm``, ``add_rms_norm``: residual add + norm, ``(y, s)``.
- ``cnorm.torch.layer_norm(...)`` etc.: torch.nn.functional's signatures;
  what the ops do not take falls back to torch.nn.functional (_functional).
- ``cnorm.torch.BatchNorm2d`` etc.: subclasses of torch's modules (_modules).
- ``patch(model)``, ``unpatch(model)``, ``patch_report(model)`` (_patch).

torch stays optional for cnorm: only this package imports it.  See the
README, "Using cnorm from PyTorch".
"""
try:
    import torch as _torch  # noqa: F401
except ImportError:  # say what is missing instead of a bare "No module named 'torch'" (chained to it)
    raise ImportError("cnorm.torch needs PyTorch; its CPU build is enough (pip install torch --index-url "
                      "https://download.pytorch.org/whl/cpu: a plain `pip install torch` also pulls the CUDA "
                      "libraries); the rest of cnorm does not need it")

from ._functional import add_layer_norm, add_rms_norm, batch_norm, group_norm, instance_norm, layer_norm, rms_norm
from ._modules import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    RMSNorm,
)
from ._patch import PatchEntry, patch, patch_report, unpatch

__all__ = [
    "layer_norm",
    "rms_norm",
    "group_norm",
    "instance_norm",
    "batch_norm",
    "add_layer_norm",
    "add_rms_norm",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "GroupNorm",
    "RMSNorm",
    "patch",
    "unpatch",
    "patch_report",
    "PatchEntry",
]
