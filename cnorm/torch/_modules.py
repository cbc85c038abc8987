"""Modules: subclasses of torch's normalization modules that run through
cnorm.torch's functions.

Each adds no state: same constructor, parameters, buffers, state_dict keys,
train/eval, momentum=None, track_running_stats=False, affine=False.  Only
the call into torch.nn.functional is replaced (the forward, or for instance
norm the ``_apply_instance_norm`` hook torch's forward calls), so patch()
can turn a torch module into one by changing its ``__class__``.
"""
from __future__ import annotations

from typing import Callable, Optional

from torch import Tensor, nn

from . import _functional as _f

__all__ = [
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "LayerNorm", "GroupNorm", "RMSNorm",
]


class _BatchNorm:
    """The forward of torch.nn.modules.batchnorm._BatchNorm (torch 2.13),
    calling cnorm.torch.batch_norm: momentum=None is the cumulative average
    over num_batches_tracked; batch statistics in training or without
    running stats; running stats updated only when tracked and training."""

    momentum: Optional[float]
    training: bool
    track_running_stats: bool
    num_batches_tracked: Optional[Tensor]
    running_mean: Optional[Tensor]
    running_var: Optional[Tensor]
    weight: Optional[Tensor]
    bias: Optional[Tensor]
    eps: float
    _check_input_dim: Callable[[Tensor], None]  # torch's (an annotation only: no attribute here)

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        tracked = not self.training or self.track_running_stats
        return _f.batch_norm(input, self.running_mean if tracked else None, self.running_var if tracked else None,
                             self.weight, self.bias, bn_training, factor, self.eps)


class BatchNorm1d(_BatchNorm, nn.BatchNorm1d):  # type: ignore[misc]
    """torch.nn.BatchNorm1d through cnorm.torch.batch_norm."""


class BatchNorm2d(_BatchNorm, nn.BatchNorm2d):  # type: ignore[misc]
    """torch.nn.BatchNorm2d through cnorm.torch.batch_norm."""


class BatchNorm3d(_BatchNorm, nn.BatchNorm3d):  # type: ignore[misc]
    """torch.nn.BatchNorm3d through cnorm.torch.batch_norm."""


class _InstanceNorm:
    """torch's _InstanceNorm.forward (its checks and warnings) calls this
    hook; it is torch's, with cnorm.torch.instance_norm."""

    running_mean: Optional[Tensor]
    running_var: Optional[Tensor]
    weight: Optional[Tensor]
    bias: Optional[Tensor]
    training: bool
    track_running_stats: bool
    momentum: Optional[float]
    eps: float

    def _apply_instance_norm(self, input: Tensor) -> Tensor:
        return _f.instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                                self.training or not self.track_running_stats,
                                self.momentum if self.momentum is not None else 0.0, self.eps)


class InstanceNorm1d(_InstanceNorm, nn.InstanceNorm1d):  # type: ignore[misc]
    """torch.nn.InstanceNorm1d through cnorm.torch.instance_norm."""


class InstanceNorm2d(_InstanceNorm, nn.InstanceNorm2d):  # type: ignore[misc]
    """torch.nn.InstanceNorm2d through cnorm.torch.instance_norm."""


class InstanceNorm3d(_InstanceNorm, nn.InstanceNorm3d):  # type: ignore[misc]
    """torch.nn.InstanceNorm3d through cnorm.torch.instance_norm."""


class LayerNorm(nn.LayerNorm):  # type: ignore[misc]
    """torch.nn.LayerNorm through cnorm.torch.layer_norm."""

    def forward(self, input: Tensor) -> Tensor:
        return _f.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)


class GroupNorm(nn.GroupNorm):  # type: ignore[misc]
    """torch.nn.GroupNorm through cnorm.torch.group_norm."""

    def forward(self, input: Tensor) -> Tensor:
        return _f.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)


class RMSNorm(nn.RMSNorm):  # type: ignore[misc]
    """torch.nn.RMSNorm through cnorm.torch.rms_norm."""

    def forward(self, x: Tensor) -> Tensor:
        return _f.rms_norm(x, self.normalized_shape, self.weight, self.eps)


#: torch's class -> cnorm.torch's subclass (exact types: patch() swaps only these)
SWAPS: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm1d: BatchNorm1d,
    nn.BatchNorm2d: BatchNorm2d,
    nn.BatchNorm3d: BatchNorm3d,
    nn.InstanceNorm1d: InstanceNorm1d,
    nn.InstanceNorm2d: InstanceNorm2d,
    nn.InstanceNorm3d: InstanceNorm3d,
    nn.LayerNorm: LayerNorm,
    nn.GroupNorm: GroupNorm,
    nn.RMSNorm: RMSNorm,
}
UNSWAPS: dict[type[nn.Module], type[nn.Module]] = {v: k for k, v in SWAPS.items()}
