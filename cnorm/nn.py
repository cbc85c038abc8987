"""torch.nn-style normalization modules on NumPy arrays.

The classes mirror the constructor arguments, attribute names, state-dict
keys, ``repr`` and forward semantics of their ``torch.nn`` namesakes, and
run the cnorm kernels (through the functional API) instead of PyTorch::

    import cnorm.nn as nn

    bn = nn.BatchNorm2d(64)                 # training mode, as torch
    y = bn(x)                               # batch stats; running stats updated
    y = bn.eval()(x)                        # running stats
    bn.load_state_dict(torch_bn.state_dict())
    bn = nn.from_torch(torch_bn)            # the same, plus the config and mode

Parameters and buffers are float32 NumPy arrays stored as attributes under
torch's names (``weight``, ``bias``, ``running_mean``, ``running_var``) or
``None`` when the configuration has none; ``num_batches_tracked`` is a 0-d
int64 array.  PyTorch is never imported (:func:`from_torch` takes it from
``sys.modules``: a torch module exists only once torch is imported).

Errors of :meth:`Module.load_state_dict`: missing or unexpected keys (with
``strict=True``) raise ``KeyError``; a value of the wrong shape raises
``ValueError`` naming the key and the expected and given shapes, and so
does a ``num_batches_tracked`` that is not a whole number in [0, 2**63); a
value that is not a real number array raises ``TypeError``.  Nothing is
changed when an error is raised.  Constructor sizes (``num_features``,
``normalized_shape``, ``num_groups``, ``num_channels``) must be ints
(``TypeError``) in range (``ValueError`` naming the argument).

Training (README, "Training: backward passes"): a forward keeps what the
backward needs -- the input x (a reference, not a copy: do not modify x in
place before :meth:`Module.backward`; with ``out=x`` the module keeps a copy
first) and, in training mode, the statistics the forward used (in
evaluation mode they are recomputed from x, or are the running statistics,
constants, for BatchNorm/InstanceNorm tracking them).
``module.backward(grad_out)`` returns dL/dx and adds dL/dweight, dL/dbias
into ``module.grad`` (a dict with the module's parameter keys, float32
arrays of the parameters' shapes), cleared by ``module.zero_grad()``.  Each
forward serves one backward, as torch's autograd graph (without
``retain_graph``): backward releases what the forward kept.
"""
from __future__ import annotations

import collections.abc
import numbers
import sys
import warnings
from typing import Any, Mapping, NamedTuple, Optional, TypeVar, Union, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._backward import (
    Grads,
    batch_norm_backward,
    group_norm_backward,
    instance_norm_backward,
    layer_norm_backward,
    rms_norm_backward,
)
from ._checks import check_int
from ._fused import add_layer_norm, add_rms_norm
from ._norms import batch_norm, group_norm, instance_norm, layer_norm, rms_norm, running_rstd
from ._typing import Array, FloatT, ShapeLike

__all__ = [
    "Module",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "GroupNorm",
    "RMSNorm",
    "IncompatibleKeys",
    "from_torch",
]


class IncompatibleKeys(NamedTuple):
    """Keys reported by a non-strict :meth:`Module.load_state_dict`.

    Attributes
    ----------
    missing_keys : list of str
        Keys the module has that the state dict lacks (left unchanged).
    unexpected_keys : list of str
        Keys of the state dict the module does not have (ignored).
    """

    missing_keys: list[str]
    unexpected_keys: list[str]


def _to_numpy(value: Any) -> Array:
    """A state-dict value as a NumPy array: torch tensors (any device, with
    or without grad, bfloat16 included) or anything ``np.asarray`` takes."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor, without importing torch
        t = value.detach().cpu()
        array: Array
        try:
            array = t.numpy()
        except TypeError:  # bfloat16 and other dtypes NumPy lacks
            array = t.float().numpy()
        return array
    return np.asarray(value)


# the largest array dimension NumPy allows: sizes beyond it are a ValueError
# naming the argument (not NumPy's "Maximum allowed dimension exceeded")
_MAX_DIM = sys.maxsize


def _size(value: object, name: str, minimum: int = 0) -> int:
    """A constructor's size argument (num_features, num_groups, ...) as an int."""
    return check_int(value, name, minimum, _MAX_DIM)


def _normalized_shape(normalized_shape: Any) -> tuple[int, ...]:
    """``normalized_shape`` as a tuple of ints, as torch's LayerNorm/RMSNorm."""
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        return (_size(normalized_shape, "normalized_shape"),)
    if isinstance(normalized_shape, str) or not isinstance(normalized_shape, collections.abc.Iterable):
        raise TypeError(f"normalized_shape: expected an int or a tuple of ints, got {normalized_shape!r}")
    return tuple(_size(d, "normalized_shape") for d in normalized_shape)


def _batch_count(value: Array) -> None:
    """A loaded ``num_batches_tracked``: a whole number that fits int64 and
    is >= 0 (casting NaN or 1e30 would give INT64_MIN, silently)."""
    v = value.item()
    whole = float(v).is_integer() if value.dtype.kind == "f" else True
    if not (whole and 0 <= v < 2**63):
        raise ValueError(f"num_batches_tracked: expected a whole number in [0, 2**63), got {v!r}")


_ModuleT = TypeVar("_ModuleT", bound="Module")


class _Saved(NamedTuple):
    """What a forward keeps for the backward: its input (as given, before
    an unbatched input gets its batch axis), the statistics it used (None:
    recomputed from x, or the running statistics), and whether they are
    the batch's (BatchNorm: training=True in the backward)."""

    x: Array
    mean: Optional[Array]
    rstd: Optional[Array]
    batch_stats: bool = True


def _kept(x: Array, out: Optional[Array]) -> Array:
    """x as the backward will need it: itself, or a copy when the forward
    writes over it (out sharing its memory)."""
    return x.copy() if out is not None and np.may_share_memory(x, out) else x


class Module:
    """Base class of the cnorm modules: mode, state dict and ``repr``.

    Subclasses set their parameters and buffers with :meth:`_register` and
    implement :meth:`forward` and :meth:`extra_repr`.

    Attributes
    ----------
    training : bool
        ``True`` (the default, as in torch) for training mode.
    """

    def __init__(self) -> None:
        self.training = True
        self._state_names: list[str] = []
        #: dL/dparameter accumulated by backward, by state-dict key
        self.grad: dict[str, Array] = {}
        self._saved: Optional[_Saved] = None

    def _register(self, name: str, value: Optional[Array], parameter: bool = False) -> None:
        """Set attribute `name` (an array, or None when the configuration
        has no such entry) and record it as a state-dict entry; a
        parameter also gets its zero gradient in ``grad``."""
        setattr(self, name, value)
        self._state_names.append(name)
        if parameter and value is not None:
            self.grad[name] = np.zeros_like(value)

    def backward(self, grad_out: ArrayLike) -> Array:
        """Back-propagate through the last forward.

        Parameters
        ----------
        grad_out : array_like
            dL/dy, of the forward's input shape.

        Returns
        -------
        numpy.ndarray
            dL/dx, of the forward input's shape and result dtype.  dL/dweight
            and dL/dbias are added into :attr:`grad`.

        Raises
        ------
        RuntimeError
            When no forward preceded it (or its backward already ran).
        ValueError
            When grad_out's shape is not the input's.
        """
        saved = self._saved
        if saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward to go back through: call the "
                               "module on an input first (each forward serves one backward)")
        dy = np.asarray(grad_out)
        if dy.shape != saved.x.shape:
            raise ValueError(f"grad_out: expected the forward input's shape {saved.x.shape}, got {dy.shape}")
        grads = self._backward(saved, dy)
        self._saved = None  # as torch frees the graph: one backward per forward
        for key, g in (("weight", grads.weight), ("bias", grads.bias)):
            if g is not None:
                self.grad[key] += g
        assert grads.x is not None  # always asked for
        return grads.x

    def _backward(self, saved: _Saved, grad_out: Array) -> Grads:
        """The functional backward of this module's forward; see the subclass."""
        raise NotImplementedError

    def _needs(self) -> tuple[bool, bool, bool]:
        """(grad_x, grad_weight, grad_bias): the gradients of what the module has."""
        return True, getattr(self, "weight", None) is not None, getattr(self, "bias", None) is not None

    def zero_grad(self) -> None:
        """Set every gradient in :attr:`grad` to zero (in place)."""
        for g in self.grad.values():
            g[...] = 0

    def forward(self, x: ArrayLike, out: Optional[Array] = None) -> Array:
        """Normalize `x`; see the subclass."""
        raise NotImplementedError

    # the result has x's floating dtype (as the functions in cnorm)
    @overload
    def __call__(self, x: NDArray[FloatT], out: Optional[Array] = None) -> NDArray[FloatT]: ...
    @overload
    def __call__(self, x: ArrayLike, out: Optional[Array] = None) -> Array: ...
    def __call__(self, x: ArrayLike, out: Optional[Array] = None) -> Array:
        """Run :meth:`forward`: ``module(x)`` or ``module(x, out=y)``."""
        return self.forward(x, out=out)

    def train(self: _ModuleT, mode: bool = True) -> _ModuleT:
        """Set training mode (``mode=True``) or evaluation mode.

        Parameters
        ----------
        mode : bool, optional
            Training mode when true.

        Returns
        -------
        Module
            ``self``.
        """
        self.training = bool(mode)
        return self

    def eval(self: _ModuleT) -> _ModuleT:
        """Set evaluation mode; the same as ``self.train(False)``.

        Returns
        -------
        Module
            ``self``.
        """
        return self.train(False)

    def state_dict(self) -> dict[str, Array]:
        """The parameters and buffers, under torch's key names.

        Returns
        -------
        dict of str to numpy.ndarray
            Copies (unlike torch, whose tensors share the module's storage)
            of the entries this configuration has, in torch's order:
            ``weight``, ``bias``, ``running_mean``, ``running_var``,
            ``num_batches_tracked`` (a 0-d int64 array).
        """
        return {k: getattr(self, k).copy() for k in self._keys()}

    def _keys(self) -> list[str]:
        """The state-dict keys of this configuration, in order."""
        return [k for k in self._state_names if getattr(self, k) is not None]

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy parameters and buffers from `state_dict` into this module.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            Values may be NumPy arrays, torch tensors (any device; detached
            and converted) or anything ``np.asarray`` takes.  They are cast
            to the module's dtypes (float32; int64 for
            ``num_batches_tracked``) and copied into the existing arrays.
        strict : bool, optional
            When true, the keys must be exactly those of :meth:`state_dict`.
            As torch does for a state dict without version metadata, a
            missing ``num_batches_tracked`` is not an error (the count is
            left unchanged).

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, both empty when strict.

        Raises
        ------
        KeyError
            With ``strict=True``, when keys are missing or unexpected.
        ValueError
            When a value's shape differs from the module's, or
            ``num_batches_tracked`` is not a whole number in [0, 2**63)
            (NaN, inf, 1e30, -1, 2.5), naming the key.
        TypeError
            When `state_dict` is not a mapping or a value is not a real
            (floating, integer or bool) array.
        """
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
        own = self._keys()
        missing = [k for k in own if k not in state_dict and k != "num_batches_tracked"]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, unexpected keys {unexpected} "
                f"(expected exactly {own})"
            )
        staged: list[tuple[Array, Array]] = []
        for key in own:
            if key not in state_dict:
                continue
            target = getattr(self, key)
            value = _to_numpy(state_dict[key])
            if value.dtype.kind not in "fiub":
                raise TypeError(f"{key}: expected a real number array, got dtype {value.dtype}")
            if value.shape != target.shape:
                raise ValueError(f"{key}: expected shape {target.shape}, got {value.shape}")
            if key == "num_batches_tracked":
                _batch_count(value)
            staged.append((target, value))
        for target, value in staged:  # every value is checked before any is copied
            np.copyto(target, value, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    def extra_repr(self) -> str:
        """The text inside the parentheses of ``repr(module)``."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _affine(module: Module, shape: tuple[int, ...], affine: bool, bias: bool) -> None:
    """Register ``weight`` (ones) and ``bias`` (zeros) of `shape`, as torch
    initializes them, or None for those the configuration lacks."""
    module._register("weight", np.ones(shape, np.float32) if affine else None, parameter=True)
    module._register("bias", np.zeros(shape, np.float32) if affine and bias else None, parameter=True)


def _reset_affine(module: Union[_NormBase, _ShapeNorm, GroupNorm]) -> None:
    """Set ``weight`` to 1 and ``bias`` to 0 (those the module has)."""
    if module.weight is not None:
        module.weight[...] = 1
    if module.bias is not None:
        module.bias[...] = 0


class _NormBase(Module):
    """Shared part of the batch and instance norms (torch's ``_NormBase``):
    per-channel affine parameters and the optional running statistics."""

    _input_dims: tuple[int, ...] = ()  # the accepted input dimensionalities, set by each subclass
    # set by _register (None when the configuration has none)
    weight: Optional[NDArray[np.float32]]
    bias: Optional[NDArray[np.float32]]
    running_mean: Optional[NDArray[np.float32]]
    running_var: Optional[NDArray[np.float32]]
    num_batches_tracked: Optional[NDArray[np.int64]]

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features = _size(num_features, "num_features")
        self.eps = eps
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        _affine(self, (self.num_features,), self.affine, bias)
        tracked = self.track_running_stats
        self._register("running_mean", np.zeros(self.num_features, np.float32) if tracked else None)
        self._register("running_var", np.ones(self.num_features, np.float32) if tracked else None)
        self._register("num_batches_tracked", np.zeros((), np.int64) if tracked else None)

    def reset_running_stats(self) -> None:
        """Set ``running_mean`` to 0, ``running_var`` to 1 and
        ``num_batches_tracked`` to 0 (when tracked)."""
        for buffer, value in ((self.running_mean, 0), (self.running_var, 1), (self.num_batches_tracked, 0)):
            if buffer is not None:  # all three exist exactly when track_running_stats
                buffer[...] = value

    def reset_parameters(self) -> None:
        """Reset the running stats, ``weight`` to 1 and ``bias`` to 0."""
        self.reset_running_stats()
        _reset_affine(self)

    def _check_input_dim(self, x: Array) -> None:
        if x.ndim not in self._input_dims:
            expected = " or ".join(f"{d}D" for d in self._input_dims)
            raise ValueError(f"{type(self).__name__}: expected {expected} input, "
                             f"got {x.ndim}D input of shape {x.shape}")

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )

    @classmethod
    def _torch_kwargs(cls, m: Any) -> dict[str, Any]:
        return dict(num_features=m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                    track_running_stats=m.track_running_stats, bias=m.bias is not None or not m.affine)


class _BatchNorm(_NormBase):
    """Batch normalization (see :class:`BatchNorm1d`)."""

    def forward(self, x: ArrayLike, out: Optional[Array] = None) -> Array:
        """Normalize `x` (N, C, ...) per channel.

        In training mode (or when running stats are not tracked) the batch
        statistics are used; in training mode with tracking, the running
        stats are updated in place and ``num_batches_tracked`` is
        incremented.  In evaluation mode with tracking, the running stats
        are used.

        Parameters
        ----------
        x : array_like
            The input; its dimensionality is checked as torch does.
        out : numpy.ndarray, optional
            Where to write the result (x's shape and dtype); may be `x`.

        Returns
        -------
        numpy.ndarray
            The normalized array (`out` when given).
        """
        self._saved = None  # a forward that raises leaves nothing to go back through
        x = np.asarray(x)
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        # the batch counter (it exists when track_running_stats), when this call counts
        counter = self.num_batches_tracked if self.training else None
        if counter is not None:
            # torch: a cumulative moving average when momentum is None
            factor = 1.0 / float(counter + 1) if self.momentum is None else self.momentum
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        pass_running = not self.training or self.track_running_stats
        kept = _kept(x, out)
        args = (x, self.running_mean if pass_running else None, self.running_var if pass_running else None,
                self.weight, self.bias, use_batch_stats, factor, self.eps)
        y: Array
        if self.training:  # keep the batch statistics for backward
            y, mean, rstd = batch_norm(*args, out=out, return_stats=True)
            self._saved = _Saved(kept, mean, rstd)
        else:
            y = batch_norm(*args, out=out)
            self._saved = _Saved(kept, None, None, use_batch_stats)
        if counter is not None:  # after the call, so that a rejected input does not count
            counter[...] += 1
        return y

    def _backward(self, saved: _Saved, grad_out: Array) -> Grads:
        mean, rstd = saved.mean, saved.rstd
        if not saved.batch_stats:  # evaluation with the running statistics: constants
            assert self.running_mean is not None and self.running_var is not None
            mean, rstd = self.running_mean, running_rstd(self.running_var.astype(np.float64), self.eps)
        return batch_norm_backward(grad_out, saved.x, mean, rstd, self.weight, saved.batch_stats,
                                   eps=self.eps, needs=self._needs())


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L) input, as ``torch.nn.BatchNorm1d``.

    Parameters
    ----------
    num_features : int
        The number of channels C.
    eps : float, optional
        Added to the variance for numerical stability.
    momentum : float or None, optional
        Weight of the new batch statistic in the running-stat update
        ``(1 - momentum) * running + momentum * batch``.  ``None`` gives a
        cumulative moving average: the factor is
        ``1 / num_batches_tracked``.
    affine : bool, optional
        Whether the module has ``weight`` (ones) and ``bias`` (zeros).
    track_running_stats : bool, optional
        Whether the module keeps ``running_mean``, ``running_var`` and
        ``num_batches_tracked``.  Without them the batch statistics are
        used in evaluation mode too.
    bias : bool, optional (keyword only)
        With ``affine=False`` ignored; else whether there is a ``bias``
        (torch >= 2.6).

    Examples
    --------
    >>> import numpy as np, cnorm.nn
    >>> bn = cnorm.nn.BatchNorm1d(3)
    >>> y = bn(np.arange(12, dtype=np.float32).reshape(4, 3))
    >>> int(bn.num_batches_tracked)
    1
    """

    _input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W) input, as ``torch.nn.BatchNorm2d``.

    Parameters are those of :class:`BatchNorm1d`.
    """

    _input_dims = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalization over (N, C, D, H, W) input, as ``torch.nn.BatchNorm3d``.

    Parameters are those of :class:`BatchNorm1d`.
    """

    _input_dims = (5,)


class _InstanceNorm(_NormBase):
    """Instance normalization (see :class:`InstanceNorm1d`)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = False,
                 track_running_stats: bool = False, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias=bias)

    def forward(self, x: ArrayLike, out: Optional[Array] = None) -> Array:
        """Normalize `x` per (sample, channel) over the spatial axes.

        Input statistics are used in training mode or when running stats
        are not tracked; training with tracking also updates the running
        stats in place (torch does not count ``num_batches_tracked`` here,
        and momentum ``None`` leaves the running stats unchanged).  In
        evaluation mode with tracking, the running stats are used.

        Parameters
        ----------
        x : array_like
            Batched (N, C, ...) or unbatched (C, ...) input.
        out : numpy.ndarray, optional
            Where to write the result (x's shape and dtype); may be `x`.

        Returns
        -------
        numpy.ndarray
            The normalized array (`out` when given).
        """
        self._saved = None  # a forward that raises leaves nothing to go back through
        x = np.asarray(x)
        self._check_input_dim(x)
        unbatched = x.ndim == self._input_dims[0]
        feature_dim = 0 if unbatched else 1
        if x.shape[feature_dim] != self.num_features:
            message = (f"{type(self).__name__}: expected input's size at dim={feature_dim} to match "
                       f"num_features ({self.num_features}), got {x.shape[feature_dim]}")
            if self.affine:
                raise ValueError(message)
            warnings.warn(message + " (num_features is unused as affine=False)", stacklevel=2)
        xb = x[None] if unbatched else x
        ob = out[None] if unbatched and isinstance(out, np.ndarray) else out
        input_stats = self.training or not self.track_running_stats
        kept = _kept(x, out)
        args = (xb, self.running_mean, self.running_var, self.weight, self.bias, input_stats,
                0.0 if self.momentum is None else self.momentum, self.eps)
        y: Array
        if self.training:  # keep the per-instance statistics for backward
            y, mean, rstd = instance_norm(*args, out=ob, return_stats=True)
            self._saved = _Saved(kept, mean, rstd)
        else:
            y = instance_norm(*args, out=ob)
            self._saved = _Saved(kept, None, None, input_stats)
        if out is not None:
            return out
        return y[0] if unbatched else y

    def _backward(self, saved: _Saved, grad_out: Array) -> Grads:
        unbatched = saved.x.ndim == self._input_dims[0]
        x, dy = (saved.x[None], grad_out[None]) if unbatched else (saved.x, grad_out)
        if saved.batch_stats:
            g = instance_norm_backward(dy, x, saved.mean, saved.rstd, self.weight, bias=self.bias, eps=self.eps,
                                       needs=self._needs())
        else:  # evaluation with the running statistics: constants, as batch norm's
            assert self.running_mean is not None and self.running_var is not None
            g = batch_norm_backward(dy, x, self.running_mean,
                                    running_rstd(self.running_var.astype(np.float64), self.eps), self.weight,
                                    False, eps=self.eps, needs=self._needs())
        assert g.x is not None
        return g._replace(x=g.x[0]) if unbatched else g


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization over (N, C, L) or unbatched (C, L) input, as
    ``torch.nn.InstanceNorm1d``.

    Parameters
    ----------
    num_features : int
        The number of channels C.
    eps : float, optional
        Added to the variance for numerical stability.
    momentum : float or None, optional
        Weight of the new statistic (the batch mean of the per-sample
        statistics) in the running-stat update; ``None`` means 0.0 here,
        as in torch.
    affine : bool, optional
        Whether the module has ``weight`` (ones) and ``bias`` (zeros);
        off by default.
    track_running_stats : bool, optional
        Whether to keep running stats (used in evaluation mode); off by
        default.
    bias : bool, optional (keyword only)
        With ``affine=True``, whether there is a ``bias``.
    """

    _input_dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization over (N, C, H, W) or unbatched (C, H, W) input,
    as ``torch.nn.InstanceNorm2d``.

    Parameters are those of :class:`InstanceNorm1d`.
    """

    _input_dims = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization over (N, C, D, H, W) or unbatched (C, D, H, W)
    input, as ``torch.nn.InstanceNorm3d``.

    Parameters are those of :class:`InstanceNorm1d`.
    """

    _input_dims = (4, 5)


class _ShapeNorm(Module):
    """Shared part of LayerNorm and RMSNorm: parameters over the trailing
    ``normalized_shape`` dims."""

    # set by _register (None when the configuration has none)
    weight: Optional[NDArray[np.float32]]
    bias: Optional[NDArray[np.float32]]

    def __init__(self, normalized_shape: ShapeLike, eps: Optional[float], elementwise_affine: bool,
                 bias: bool) -> None:
        super().__init__()
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = eps
        self.elementwise_affine = bool(elementwise_affine)
        _affine(self, self.normalized_shape, self.elementwise_affine, bias)

    def reset_parameters(self) -> None:
        """Set ``weight`` to 1 and ``bias`` to 0."""
        _reset_affine(self)


class LayerNorm(_ShapeNorm):
    """Layer normalization over the trailing dims, as ``torch.nn.LayerNorm``.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing dims normalized over.
    eps : float, optional
        Added to the variance for numerical stability.
    elementwise_affine : bool, optional
        Whether the module has ``weight`` (ones) of shape
        `normalized_shape`.
    bias : bool, optional
        With `elementwise_affine`, whether it also has ``bias`` (zeros).

    Examples
    --------
    >>> import numpy as np, cnorm.nn
    >>> ln = cnorm.nn.LayerNorm(4)
    >>> ln(np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)).round(3)
    array([[-1.342, -0.447,  0.447,  1.342]], dtype=float32)
    """

    eps: float

    def __init__(self, normalized_shape: ShapeLike, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True) -> None:
        super().__init__(normalized_shape, eps, elementwise_affine, bias)

    def forward(self, x: ArrayLike, out: Optional[Array] = None) -> Array:
        """Normalize `x` over its trailing ``normalized_shape`` dims.

        Parameters
        ----------
        x : array_like
            Input whose trailing dims equal ``normalized_shape``.
        out : numpy.ndarray, optional
            Where to write the result (x's shape and dtype); may be `x`.

        Returns
        -------
        numpy.ndarray
            The normalized array (`out` when given).
        """
        self._saved = None  # a forward that raises leaves nothing to go back through
        x = np.asarray(x)
        kept = _kept(x, out)
        y: Array
        if self.training:
            y, mean, rstd = layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps, out=out,
                                       return_stats=True)
            self._saved = _Saved(kept, mean, rstd)
        else:
            y = layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps, out=out)
            self._saved = _Saved(kept, None, None)
        return y

    def forward_add(self, x: ArrayLike, residual: ArrayLike, *, skip_bias: Optional[ArrayLike] = None,
                    out: Optional[Array] = None, sum_out: Optional[Array] = None) -> tuple[Array, Array]:
        """The residual add fused with this norm: :func:`cnorm.add_layer_norm`
        with the module's parameters (a transformer block's ``ln(x + h)``).

        Inference only, in either mode: nothing is kept for :meth:`backward`,
        which raises after it (the add forms have no backward).

        Parameters
        ----------
        x, residual : array_like
            Summed as ``s = x + residual (+ skip_bias)``; `residual` has x's
            shape or broadcasts over its leading dims.
        skip_bias : array_like, optional
            Of shape ``normalized_shape``.
        out, sum_out : numpy.ndarray, optional
            Where to write y and s; ``sum_out=residual`` updates the
            residual in place.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            y, bitwise this module's forward of s, and s.
        """
        self._saved = None
        return add_layer_norm(x, residual, self.normalized_shape, self.weight, self.bias, self.eps,
                              skip_bias=skip_bias, out=out, sum_out=sum_out)

    def _backward(self, saved: _Saved, grad_out: Array) -> Grads:
        return layer_norm_backward(grad_out, saved.x, self.normalized_shape, saved.mean, saved.rstd, self.weight,
                                   bias=self.bias, eps=self.eps, needs=self._needs())

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")

    @classmethod
    def _torch_kwargs(cls, m: Any) -> dict[str, Any]:
        return dict(normalized_shape=m.normalized_shape, eps=m.eps, elementwise_affine=m.elementwise_affine,
                    bias=m.bias is not None or not m.elementwise_affine)


class RMSNorm(_ShapeNorm):
    """RMS normalization over the trailing dims, as ``torch.nn.RMSNorm``.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing dims normalized over.
    eps : float or None, optional
        Added to the mean square; ``None`` means the machine epsilon of
        the input's dtype, as torch.
    elementwise_affine : bool, optional
        Whether the module has ``weight`` (ones) of shape
        `normalized_shape`.
    """

    def __init__(self, normalized_shape: ShapeLike, eps: Optional[float] = None,
                 elementwise_affine: bool = True) -> None:
        super().__init__(normalized_shape, eps, elementwise_affine, bias=False)

    def forward(self, x: ArrayLike, out: Optional[Array] = None) -> Array:
        """Divide `x` by its root mean square over the trailing dims, then
        scale by ``weight``.

        Parameters
        ----------
        x : array_like
            Input whose trailing dims equal ``normalized_shape``.
        out : numpy.ndarray, optional
            Where to write the result (x's shape and dtype); may be `x`.

        Returns
        -------
        numpy.ndarray
            The normalized array (`out` when given).
        """
        self._saved = None  # a forward that raises leaves nothing to go back through
        x = np.asarray(x)
        kept = _kept(x, out)
        y: Array
        if self.training:
            y, rstd = rms_norm(x, self.normalized_shape, self.weight, self.eps, out=out, return_stats=True)
            self._saved = _Saved(kept, None, rstd)
        else:
            y = rms_norm(x, self.normalized_shape, self.weight, self.eps, out=out)
            self._saved = _Saved(kept, None, None)
        return y

    def forward_add(self, x: ArrayLike, residual: ArrayLike, *, skip_bias: Optional[ArrayLike] = None,
                    out: Optional[Array] = None, sum_out: Optional[Array] = None) -> tuple[Array, Array]:
        """The residual add fused with this norm: :func:`cnorm.add_rms_norm`
        with the module's parameters (vLLM's fused_add_rms_norm with
        ``sum_out=residual``).  As :meth:`LayerNorm.forward_add`: inference
        only, nothing is kept for :meth:`backward`.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            y, bitwise this module's forward of s, and s.
        """
        self._saved = None
        return add_rms_norm(x, residual, self.normalized_shape, self.weight, self.eps, skip_bias=skip_bias, out=out,
                            sum_out=sum_out)

    def _backward(self, saved: _Saved, grad_out: Array) -> Grads:
        return rms_norm_backward(grad_out, saved.x, self.normalized_shape, saved.rstd, self.weight, eps=self.eps,
                                 needs=self._needs()[:2])

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"

    @classmethod
    def _torch_kwargs(cls, m: Any) -> dict[str, Any]:
        return dict(normalized_shape=m.normalized_shape, eps=m.eps, elementwise_affine=m.elementwise_affine)


class GroupNorm(Module):
    """Group normalization over (N, C, ...) input, as ``torch.nn.GroupNorm``.

    Parameters
    ----------
    num_groups : int
        The number of groups of consecutive channels; must divide
        `num_channels`.
    num_channels : int
        The number of channels C.
    eps : float, optional
        Added to the variance for numerical stability.
    affine : bool, optional
        Whether the module has per-channel ``weight`` (ones) and ``bias``
        (zeros).
    bias : bool, optional (keyword only)
        With ``affine=True``, whether there is a ``bias``.

    Raises
    ------
    ValueError
        When `num_groups` does not divide `num_channels`, or a size is out
        of range (``num_groups < 1``, a negative or huge int).
    TypeError
        When a size is not an int.
    """

    # set by _register (None when the configuration has none)
    weight: Optional[NDArray[np.float32]]
    bias: Optional[NDArray[np.float32]]

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, *,
                 bias: bool = True) -> None:
        super().__init__()
        self.num_groups = _size(num_groups, "num_groups", 1)
        self.num_channels = _size(num_channels, "num_channels")
        if self.num_channels % self.num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.eps = eps
        self.affine = bool(affine)
        _affine(self, (self.num_channels,), self.affine, bias)

    def reset_parameters(self) -> None:
        """Set ``weight`` to 1 and ``bias`` to 0."""
        _reset_affine(self)

    def forward(self, x: ArrayLike, out: Optional[Array] = None) -> Array:
        """Normalize `x` (N, C, ...) per (sample, group).

        Parameters
        ----------
        x : array_like
            The input, channels on axis 1.
        out : numpy.ndarray, optional
            Where to write the result (x's shape and dtype); may be `x`.

        Returns
        -------
        numpy.ndarray
            The normalized array (`out` when given).
        """
        self._saved = None  # a forward that raises leaves nothing to go back through
        x = np.asarray(x)
        kept = _kept(x, out)
        y: Array
        if self.training:
            y, mean, rstd = group_norm(x, self.num_groups, self.weight, self.bias, self.eps, out=out,
                                       return_stats=True)
            self._saved = _Saved(kept, mean, rstd)
        else:
            y = group_norm(x, self.num_groups, self.weight, self.bias, self.eps, out=out)
            self._saved = _Saved(kept, None, None)
        return y

    def _backward(self, saved: _Saved, grad_out: Array) -> Grads:
        return group_norm_backward(grad_out, saved.x, self.num_groups, saved.mean, saved.rstd, self.weight,
                                   bias=self.bias, eps=self.eps, needs=self._needs())

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")

    @classmethod
    def _torch_kwargs(cls, m: Any) -> dict[str, Any]:
        return dict(num_groups=m.num_groups, num_channels=m.num_channels, eps=m.eps, affine=m.affine,
                    bias=m.bias is not None or not m.affine)


_SUPPORTED: tuple[type[Union[_BatchNorm, _InstanceNorm, LayerNorm, GroupNorm, RMSNorm]], ...] = (
    BatchNorm1d, BatchNorm2d, BatchNorm3d, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
    LayerNorm, GroupNorm, RMSNorm)


def from_torch(module: Any) -> Module:
    """Convert a ``torch.nn`` normalization module to its cnorm equivalent.

    The configuration, parameters, running stats, ``num_batches_tracked``
    and training flag are copied (as float32; the torch module is left
    untouched and shares no memory with the result).

    Parameters
    ----------
    module : torch.nn.Module
        A ``BatchNorm1d/2d/3d``, ``InstanceNorm1d/2d/3d``, ``LayerNorm``,
        ``GroupNorm`` or ``RMSNorm`` (or an initialized lazy variant or
        other subclass of one: only the parameters and configuration are
        taken, an overridden ``forward`` is not).

    Returns
    -------
    Module
        The cnorm module of the same class name.

    Raises
    ------
    TypeError
        When `module` is not one of the supported torch modules.
    ValueError
        When `module` is a lazy module whose parameters are not yet
        initialized.

    Examples
    --------
    >>> import torch, cnorm.nn
    >>> cnorm.nn.from_torch(torch.nn.GroupNorm(2, 4))
    GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)
    """
    # not imported: a torch module exists only once torch is, and importing it here
    # would make type checkers analyze all of torch for every user of cnorm.nn
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(module, torch.nn.modules.lazy.LazyModuleMixin) and any(
        type(module).__name__ == "Lazy" + c.__name__ for c in _SUPPORTED
    ):  # a lazy module becomes its plain class once initialized
        raise ValueError(f"module: {type(module).__name__} has uninitialized (lazy) parameters; "
                         "run a forward pass first")
    classes = {} if torch is None else {getattr(torch.nn, c.__name__, None): c for c in _SUPPORTED}
    cls = next((classes[t] for t in type(module).__mro__ if t in classes), None)
    if cls is None:
        names = ", ".join(c.__name__ for c in _SUPPORTED)
        raise TypeError(f"module: expected a torch.nn module of type {names}, got {type(module).__module__}."
                        f"{type(module).__qualname__}")
    result = cls(**cls._torch_kwargs(module))
    result.load_state_dict(module.state_dict())
    return result.train(module.training)
