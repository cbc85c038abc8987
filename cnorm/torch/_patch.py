"""patch(model): torch's normalization modules -> cnorm.torch's subclasses.

A module is swapped by changing its ``__class__`` to the subclass
(_modules.SWAPS), which adds no state: parameters, buffers, hooks and the
state_dict stay the same objects and keys, and unpatch() changes it back.
Only modules of exactly a supported torch class are swapped.  A subclass
(SyncBatchNorm, a lazy module not yet initialized, a user's own subclass)
may have a forward of its own, so it is left, and patch_report() says so.
patch_report() reads the model as it is (it keeps no record), so it
answers before and after patch().
"""
from __future__ import annotations

import copy
from typing import NamedTuple, TypeVar

from torch import nn

from ._modules import SWAPS, UNSWAPS

M = TypeVar("M", bound=nn.Module)

# every torch normalization layer, to report what is left (torch's private
# base classes: their subclasses are the norm layers)
_NORM_BASES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.LocalResponseNorm,
    nn.CrossMapLRN2d,
)


class PatchEntry(NamedTuple):
    """One normalization module of a model, in patch_report()."""

    name: str  #: its qualified name in the model ("" for the model itself)
    type: str  #: its class, "module.qualname"
    status: str  #: "cnorm" (runs through cnorm.torch), "patchable" (patch() swaps it) or "left"
    reason: str  #: why it is left ("" otherwise)


def patch(model: M, *, inplace: bool = False) -> M:
    """Swap every supported torch normalization module of `model` (nested
    ones and `model` itself included) for its cnorm.torch subclass.

    With ``inplace=False`` a deep copy is patched and returned, and `model`
    is untouched.  Returns the patched model.  See patch_report() for what
    was swapped and what was left."""
    if not inplace:
        model = copy.deepcopy(model)
    for m in model.modules():
        swap = SWAPS.get(type(m))
        if swap is not None:
            m.__class__ = swap
    return model


def unpatch(model: M, *, inplace: bool = False) -> M:
    """Reverse patch(): every cnorm.torch module of `model` back to its
    torch class (a deep copy unless ``inplace=True``)."""
    if not inplace:
        model = copy.deepcopy(model)
    for m in model.modules():
        back = UNSWAPS.get(type(m))
        if back is not None:
            m.__class__ = back
    return model


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _why_left(m: nn.Module) -> str:
    cls = type(m)
    if isinstance(m, nn.modules.lazy.LazyModuleMixin):
        return "a lazy module not yet initialized: patch it after its first forward"
    if isinstance(m, nn.SyncBatchNorm):
        return "SyncBatchNorm: its statistics are reduced across processes (torch.distributed)"
    if isinstance(m, (nn.LocalResponseNorm, nn.CrossMapLRN2d)):
        return f"{cls.__name__}: cnorm has no such kernel"
    base = next((t for t in cls.__mro__[1:] if t in SWAPS), None)
    if base is not None:
        return f"a subclass of {_name(base)}: its own forward may differ from torch's"
    return f"{cls.__name__}: not one of the classes patch() swaps"


def patch_report(model: nn.Module) -> list[PatchEntry]:
    """Every normalization module of `model`, in model.named_modules()
    order, with what patch() did or would do to it and why."""
    entries = []
    for name, m in model.named_modules():
        cls = type(m)
        if cls in UNSWAPS:
            entries.append(PatchEntry(name, _name(cls), "cnorm", ""))
        elif cls in SWAPS:
            entries.append(PatchEntry(name, _name(cls), "patchable", ""))
        elif isinstance(m, _NORM_BASES):
            entries.append(PatchEntry(name, _name(cls), "left", _why_left(m)))
    return entries
