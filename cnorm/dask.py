"""cnorm on dask arrays (DESIGN.md 3.4): exact moments over chunks, batch
norm statistics over a whole array or a stream of batches, and the norms
applied block by block.

How it maps onto dask: ``moments`` is a ``dask.array.reduction`` whose
chunk step is cnorm's C kernel (count, mean, M2 per output element, one pass
at memory speed) and whose combine and aggregate steps are Chan merges in a
fixed order (the blocks of a group in index order, merged pairwise).  dask's
tree is fixed by the chunking and ``split_every``; every step is a pure
function of its inputs, so the bits do not depend on the scheduler or the
number of workers.  The norms run cnorm's NumPy functions per block, with
the statistics either inside a block (layer/RMS/instance/group norm: the
normalized axes must lie in one chunk, else they are rechunked with a
warning) or computed first over the whole array (batch norm in training).

Argument rules are cnorm's own: each function first calls the NumPy
function on an empty array with the same dims but a zero batch (the
"probe"), which checks shapes, dtypes, eps, momentum and groups exactly as
in memory and gives the result's dtype.

dask is optional: only this module imports it (``pip install
"cnorm-cpu[dask]"``).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from ._version import DISTRIBUTION

try:
    import dask.array as da
    from dask.array.core import PerformanceWarning
except ImportError:  # tests/test_optional_deps.py; the original error stays chained as the context
    raise ImportError(f'cnorm.dask needs dask: pip install "{DISTRIBUTION}[dask]"')

from . import _core
from ._checks import F64, input_dtypes, normalize_axis, normalized_shape_tuple
from ._moments import Partial, _axes, merge, merge_all, partial_moments
from ._norms import _update_running, batch_norm as _np_batch_norm
from ._norms import group_norm as _np_group_norm, instance_norm as _np_instance_norm
from ._norms import layer_norm as _np_layer_norm, rms_norm as _np_rms_norm

__all__ = ["moments", "batch_norm", "layer_norm", "rms_norm", "instance_norm", "group_norm",
           "dataset_statistics"]

# The intermediate of the reduction: a partial per output element.
_PARTIAL = np.dtype([("count", F64), ("mean", F64), ("m2", F64)])


# ---------------------------------------------------------------- moments

def _as_dask(a: Any) -> da.Array:
    return a if isinstance(a, da.Array) else da.asarray(a)


def _pack(p: Partial) -> np.ndarray:
    out = np.empty(p.mean.shape, _PARTIAL)
    out["count"], out["mean"], out["m2"] = p.count, p.mean, p.m2
    return out


def _chunk(x: np.ndarray, axis: tuple[int, ...], keepdims: bool, **_: Any) -> np.ndarray:
    """dask's chunk step: cnorm's kernel on one block (keepdims shape)."""
    return _pack(partial_moments(x, axis))


def _combine(x: np.ndarray, axis: tuple[int, ...], keepdims: bool, **_: Any) -> np.ndarray:
    """dask's combine/aggregate step: the partials of a group of blocks,
    concatenated along the reduced axes in block order, merged pairwise in
    that (C) order."""
    red = sorted(axis)
    flat = np.moveaxis(x, red, list(range(len(red))))
    flat = flat.reshape((math.prod(flat.shape[:len(red)]),) + flat.shape[len(red):])
    parts = [Partial(p["count"], p["mean"], p["m2"]) for p in flat]
    out = np.expand_dims(_pack(merge_all(parts)), red)
    return out if keepdims else out.squeeze(tuple(red))


def _partials(a: da.Array, red: tuple[int, ...], split_every: Any = None) -> da.Array:
    """The reduction to one partial per kept element (keepdims shape)."""
    if any(math.isnan(s) for s in a.shape):
        raise ValueError(f"a: chunk sizes must be known (got shape {a.shape}); call a.compute_chunk_sizes() first")
    return da.reduction(a, _chunk, _combine, axis=red, keepdims=True, dtype=_PARTIAL,
                        split_every=split_every, concatenate=True,
                        meta=np.empty((0,) * a.ndim, _PARTIAL))


def _variance(p: np.ndarray, ddof: float, res: np.dtype[Any]) -> np.ndarray:
    # IEEE inf/NaN where count <= ddof, as cnorm.moments (which warns at the call)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (p["m2"] / (p["count"] - ddof)).astype(res)


def moments(a: Any, axis: Any = None, *, ddof: float = 0, keepdims: bool = False,
            split_every: Any = None) -> tuple[da.Array, da.Array]:
    """Lazy mean and variance of the dask array `a` over `axis`.

    ``cnorm.moments`` over chunks: per-chunk (count, mean, M2) from cnorm's C
    kernel, Chan merges in a fixed tree order (``split_every`` as in
    ``dask.array.reduction``).  Same axis, ddof, keepdims and dtype rules as
    ``cnorm.moments``; for a given chunking and ``split_every`` the bits do
    not depend on the scheduler or the number of workers.  Compute both
    together (``dask.compute(mean, var)``) to read the data once.
    """
    a = _as_dask(a)
    res, _ = input_dtypes(a.dtype, "a")
    ddof = _core.check_ddof(ddof)
    red = _axes(axis, a.ndim)
    length = math.prod(a.shape[i] for i in red)
    if length == 0 and math.prod(a.shape[i] for i in range(a.ndim) if i not in red) > 0:
        raise ValueError(f"a: cannot compute moments over size-0 axes {red} of shape {a.shape}")
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(f"keepdims: expected a bool, got {type(keepdims).__name__} {keepdims!r}")
    _core.warn_dof(length, ddof)
    p = _partials(a, red, split_every)
    mean = p["mean"].astype(res)
    var = p.map_blocks(_variance, ddof, res, dtype=res, meta=np.empty((0,) * a.ndim, res))
    if not keepdims:
        mean, var = mean.squeeze(red), var.squeeze(red)
    return mean, var


# ---------------------------------------------------------------- norms per block

def _probe(a: da.Array, keep: Sequence[int] = ()) -> np.ndarray:
    """An empty NumPy array with a's dtype and dims, size 0 along the first
    axis not in `keep` (an axis the statistics or parameters do not depend
    on), to run cnorm's own argument checks on."""
    shape = list(a.shape)
    free = [i for i in range(a.ndim) if i not in keep]
    if free:
        shape[free[0]] = 0
    return np.empty(shape, a.dtype)


def _checked(fn: Callable[..., np.ndarray], *args: Any, **kwargs: Any) -> np.ndarray:
    """Run a NumPy function on the probe; its errors name the input `x`,
    which is `a` here."""
    try:
        return fn(*args, **kwargs)
    except (TypeError, ValueError) as e:
        msg = str(e)
        if not msg.startswith("x:"):
            raise
        raise type(e)("a:" + msg[2:]) from None


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError


def _single_chunks(a: da.Array, axes: Sequence[int], what: str) -> da.Array:
    """`a` with each of `axes` in one chunk; rechunking (with a warning
    that names its cost) when they are not."""
    split = [i for i in axes if len(a.chunks[i]) > 1]
    if not split:
        return a
    b = a.rechunk({i: -1 for i in split})
    block = max(math.prod(max(c) for c in b.chunks), 0) * a.dtype.itemsize
    warnings.warn(
        f"cnorm.dask.{what}: the normalized axes {tuple(split)} of a (chunks "
        f"{tuple(len(a.chunks[i]) for i in split)}) span several chunks; rechunking them into one chunk "
        f"each moves all {_size(a.nbytes)} of a between workers and makes blocks of up to "
        f"{_size(block)}. Rechunk a once beforehand (a.rechunk({{{', '.join(f'{i}: -1' for i in split)}}})) "
        "to avoid it.", PerformanceWarning, stacklevel=3)
    return b


def _channel_slice(block_info: Any, ax: int, *params: Optional[np.ndarray]) -> list[Optional[np.ndarray]]:
    """Per-channel parameters sliced to this block's channels."""
    lo, hi = block_info[None]["array-location"][ax]
    return [None if p is None else p[lo:hi] for p in params]


def _meta(y: np.ndarray) -> np.ndarray:
    return np.empty((0,) * y.ndim, y.dtype)


def _flat(p: Optional[ArrayLike], dtype: Any = None) -> Optional[np.ndarray]:
    """A (checked) per-channel parameter as a flat array for the blocks."""
    return None if p is None else np.asarray(p, dtype).reshape(-1)


def layer_norm(a: Any, normalized_shape: Any, weight: Optional[ArrayLike] = None,
               bias: Optional[ArrayLike] = None, eps: float = 1e-5) -> da.Array:
    """``cnorm.layer_norm`` per block (lazy).  The normalized (trailing)
    axes must lie in one chunk: otherwise they are rechunked, with a
    PerformanceWarning naming the cost."""
    a = _as_dask(a)
    ns = normalized_shape_tuple(normalized_shape, a.shape)
    k = len(ns)
    trailing = list(range(a.ndim - k, a.ndim))
    meta = _meta(_checked(_np_layer_norm, _probe(a, trailing), ns, weight, bias, eps))
    a = _single_chunks(a, trailing, "layer_norm")
    return a.map_blocks(_np_layer_norm, ns, weight, bias, eps, dtype=meta.dtype, meta=meta)


def rms_norm(a: Any, normalized_shape: Any, weight: Optional[ArrayLike] = None,
             eps: Optional[float] = None) -> da.Array:
    """``cnorm.rms_norm`` per block (lazy); trailing axes as layer_norm."""
    a = _as_dask(a)
    ns = normalized_shape_tuple(normalized_shape, a.shape)
    trailing = list(range(a.ndim - len(ns), a.ndim))
    meta = _meta(_checked(_np_rms_norm, _probe(a, trailing), ns, weight, eps))
    a = _single_chunks(a, trailing, "rms_norm")
    return a.map_blocks(_np_rms_norm, ns, weight, eps, dtype=meta.dtype, meta=meta)


def _instance_block(x: np.ndarray, weight: Optional[np.ndarray], bias: Optional[np.ndarray], eps: float,
                    ax: int, block_info: Any = None) -> np.ndarray:
    w, b = _channel_slice(block_info, ax, weight, bias)
    y: np.ndarray = _np_instance_norm(x, None, None, w, b, True, 0.1, eps, axis=ax)
    return y


def instance_norm(a: Any, weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None,
                  eps: float = 1e-5, *, axis: int = 1) -> da.Array:
    """``cnorm.instance_norm`` (input statistics) per block (lazy).  The
    spatial axes must lie in one chunk (else rechunked, with a warning);
    the batch and channel axes may be chunked."""
    a = _as_dask(a)
    ax = normalize_axis(axis, a.ndim)
    meta = _meta(_checked(_np_instance_norm, _probe(a, [ax]), None, None, weight, bias, True, 0.1, eps, axis=ax))
    a = _single_chunks(a, [i for i in range(1, a.ndim) if i != ax], "instance_norm")
    return a.map_blocks(_instance_block, _flat(weight), _flat(bias), eps, ax, dtype=meta.dtype, meta=meta)


def _group_block(x: np.ndarray, group_size: int, weight: Optional[np.ndarray], bias: Optional[np.ndarray],
                 eps: float, ax: int, block_info: Any = None) -> np.ndarray:
    w, b = _channel_slice(block_info, ax, weight, bias)
    y: np.ndarray = _np_group_norm(x, x.shape[ax] // group_size, w, b, eps, axis=ax)
    return y


def group_norm(a: Any, num_groups: int, weight: Optional[ArrayLike] = None,
               bias: Optional[ArrayLike] = None, eps: float = 1e-5, *, axis: int = 1) -> da.Array:
    """``cnorm.group_norm`` per block (lazy).  The spatial axes must lie in
    one chunk and the channel chunks must hold whole groups (else
    rechunked, with a warning); the batch axis may be chunked."""
    a = _as_dask(a)
    ax = normalize_axis(axis, a.ndim)
    meta = _meta(_checked(_np_group_norm, _probe(a, [ax]), num_groups, weight, bias, eps, axis=ax))
    group_size = a.shape[ax] // int(num_groups)  # num_groups divides C: checked by the probe
    a = _single_chunks(a, [i for i in range(1, a.ndim) if i != ax], "group_norm")
    if any(c % group_size for c in a.chunks[ax]):
        a = _single_chunks(a, [ax], "group_norm (channel chunks that split a group)")
    return a.map_blocks(_group_block, group_size, _flat(weight), _flat(bias), eps, ax,
                        dtype=meta.dtype, meta=meta)


def _batch_block(x: np.ndarray, mean: np.ndarray, var: np.ndarray, weight: Optional[np.ndarray],
                 bias: Optional[np.ndarray], eps: float, ax: int, block_info: Any = None) -> np.ndarray:
    m, v, w, b = _channel_slice(block_info, ax, mean, var, weight, bias)
    y: np.ndarray = _np_batch_norm(x, m, v, w, b, False, 0.1, eps, axis=ax)
    return y


def batch_norm(a: Any, running_mean: Optional[ArrayLike] = None, running_var: Optional[ArrayLike] = None,
               weight: Optional[ArrayLike] = None, bias: Optional[ArrayLike] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5, *, axis: int = 1) -> da.Array:
    """``cnorm.batch_norm`` over a dask array.

    Training (or no running stats): the batch statistics over every axis
    but `axis` are computed now, in one reduction over the whole array
    (as ``moments``), and the running stats (NumPy arrays) are updated in
    place as torch does; the result applies them per block (lazy).  Eval:
    the running stats are applied per block (lazy).
    """
    a = _as_dask(a)
    ax = normalize_axis(axis, a.ndim)
    training = bool(training)
    # cnorm's rules (shapes, eps, momentum, writable running stats, eval
    # without them), on a zero batch: updates nothing.
    meta = _meta(_checked(_np_batch_norm, _probe(a, [ax]), running_mean, running_var, weight, bias, training,
                                momentum, eps, axis=ax))
    if training or running_mean is None:
        red = tuple(i for i in range(a.ndim) if i != ax)
        count = math.prod(a.shape[i] for i in red)
        if training and count == 1:
            raise ValueError(f"a: expected more than 1 value per channel when training, got shape {a.shape}")
        p = _partials(a, red).compute().reshape(-1)
        with np.errstate(divide="ignore", invalid="ignore"):  # an empty batch: NaN, as in memory
            mean, var = p["mean"], p["m2"] / p["count"]
        if training and running_mean is not None and count:
            _update_running(running_mean, momentum, mean)
            _update_running(running_var, momentum, p["m2"] / (p["count"] - 1))
    else:
        mean, var = _flat(running_mean, F64), _flat(running_var, F64)
    return a.map_blocks(_batch_block, mean, var, _flat(weight), _flat(bias), eps, ax,
                        dtype=meta.dtype, meta=meta)


# ---------------------------------------------------------------- dataset statistics

def dataset_statistics(batches: Union[da.Array, Iterable[ArrayLike]], axis: int = 1
                       ) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact population statistics along every axis but `axis`: (mean,
    var, count), mean and var float64 of shape (C,), var biased (M2/count).

    `batches` is a dask array (one reduction, as ``moments``), or any
    iterable of arrays (NumPy, or anything ``np.asarray`` takes) of the same
    number of channels, streamed: each batch's partial is computed when the
    batch arrives and merged into at most log2(#batches) partials kept, in
    a fixed pairwise order (a binary counter), so no two batches are held
    at once.

    torch's BatchNorm keeps the unbiased variance: ``var * count / (count -
    1)`` (README, "Beyond one machine").
    """
    if isinstance(batches, da.Array):
        ax = normalize_axis(axis, batches.ndim)
        red = tuple(i for i in range(batches.ndim) if i != ax)
        input_dtypes(batches.dtype, "batches")
        p = _partials(batches, red).compute().reshape(-1)
        return _final(Partial(float(p["count"][0]) if p.size else 0.0, p["mean"], p["m2"]))
    if isinstance(batches, np.ndarray):
        raise TypeError("batches: expected a dask array or an iterable of arrays (batches), got one "
                        "numpy.ndarray: pass [array], or use cnorm.moments")
    stack: list[tuple[int, Partial]] = []
    c: Optional[int] = None
    it = iter(batches)
    i = 0
    while True:
        # a manual loop, so that no name holds batch i while batch i+1 is made
        try:
            batch = next(it)
        except StopIteration:
            break
        p = _batch_partial(batch, axis, i, c)
        del batch
        c = p.mean.size
        level = 0
        while stack and stack[-1][0] == level:
            p = merge(stack.pop()[1], p)
            level += 1
        stack.append((level, p))
        i += 1
    if not stack:
        raise ValueError("batches: expected at least one batch, got none")
    total = stack[-1][1]
    for _, p in reversed(stack[:-1]):
        total = merge(p, total)
    return _final(total)


def _batch_partial(batch: ArrayLike, axis: int, i: int, c: Optional[int]) -> Partial:
    """Batch i's partial over every axis but `axis`, flat (C,)."""
    x = np.asarray(batch)
    if x.ndim == 0:
        raise ValueError(f"batches[{i}]: expected an array with a channel axis, got a scalar")
    ax = normalize_axis(axis, x.ndim)
    if c is not None and x.shape[ax] != c:
        raise ValueError(f"batches[{i}]: expected {c} channels along axis {axis}, got shape {x.shape}")
    try:
        p = partial_moments(x, tuple(j for j in range(x.ndim) if j != ax))
    except TypeError as e:
        raise TypeError(f"batches[{i}]: {e}") from None
    return Partial(p.count, p.mean.reshape(-1), p.m2.reshape(-1))


def _final(p: Partial) -> tuple[np.ndarray, np.ndarray, int]:
    if p.count == 0:
        raise ValueError("batches: no values to compute statistics over (every batch is empty)")
    return p.mean.astype(F64), (p.m2 / p.count).astype(F64), int(p.count)
