"""moments(): a single-pass Welford replacement for (np.mean, np.var)."""
from __future__ import annotations

import math
import numbers
from typing import Any, Literal, NamedTuple, Sequence, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._checks import F64, as_input, normalize_axis, plain
from ._typing import Array, AxisLike, FloatT

__all__ = ["moments"]  # and, for cnorm.dask: Partial, partial_moments, merge, merge_all


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:  # Any: checked here
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return (normalize_axis(axis, ndim),)
    try:
        axes = tuple(normalize_axis(a, ndim) for a in axis)
    except TypeError:
        raise TypeError(f"axis: expected None, an int or a tuple of ints, got {axis!r}") from None
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis: repeated axis in {axis!r}")
    return axes


# Scalars for axis=None, arrays for keepdims=True; otherwise it depends on
# x.ndim, and the result is Any, as np.mean(x, axis) and np.var have it.
@overload
def moments(
    x: NDArray[FloatT], axis: None = None, *, ddof: float = 0, keepdims: Literal[False] = False,
) -> tuple[FloatT, FloatT]: ...
@overload
def moments(
    x: NDArray[FloatT], axis: AxisLike = None, *, ddof: float = 0, keepdims: Literal[True],
) -> tuple[NDArray[FloatT], NDArray[FloatT]]: ...
@overload
def moments(
    x: ArrayLike, axis: AxisLike = None, *, ddof: float = 0, keepdims: Literal[True],
) -> tuple[Array, Array]: ...
@overload
def moments(
    x: ArrayLike, axis: AxisLike = None, *, ddof: float = 0, keepdims: bool = False,
) -> tuple[Any, Any]: ...
def moments(
    x: ArrayLike, axis: AxisLike = None, *, ddof: float = 0, keepdims: bool = False,
) -> tuple[Any, Any]:
    """Mean and variance of `x` over `axis` in one pass (Welford + Chan).

    A single-pass, numerically stable replacement for ``(np.mean(x, axis),
    np.var(x, axis, ddof=ddof))``.

    Parameters
    ----------
    x : array_like
        Real floating, integer or bool input.
    axis : None, int or tuple of int
        Axes to reduce (None: all), as NumPy.
    ddof : int or float
        The variance divides by ``N - ddof``.  When N <= ddof it is inf
        (NaN for a constant slice) and a RuntimeWarning "Degrees of
        freedom <= 0 for slice" is issued, as np.var does.
    keepdims : bool

    Returns
    -------
    mean, var : ndarray or scalar
        x's floating dtype (float64 for integer and bool input).

    Raises
    ------
    ValueError
        A bad or repeated axis, reducing over size-0 axes, or a ddof that
        is not finite.
    TypeError
        Non-real input or ddof.

    Examples
    --------
    >>> mean, var = cnorm.moments(np.arange(10.0))
    >>> print(mean, var)
    4.5 8.25
    """
    r = _core.moments_fast(x, axis, ddof, keepdims)
    if r is not None:  # every argument was plain: the kernel ran
        return r
    x, res, comp = as_input(x)
    ddof = _core.check_ddof(ddof)
    nd = x.ndim
    red = _axes(axis, nd)
    keep = tuple(a for a in range(nd) if a not in red)
    length = math.prod(x.shape[a] for a in red)
    out_size = math.prod(x.shape[a] for a in keep)
    if length == 0 and out_size > 0:
        raise ValueError(f"x: cannot compute moments over size-0 axes {red} of shape {x.shape}")
    _core.warn_dof(length, ddof)

    mean, var, kept_in_work = _reduce(x, red, comp, ddof, out_size, partial=False)
    return _finish(x, red, keep, kept_in_work, mean, var, res, keepdims)


def _reduce(x: Array, red: tuple[int, ...], comp: np.dtype[Any], ddof: float, out_size: int,
            partial: bool) -> tuple[Array, Array, list[int]]:
    """The kernel's float64 (mean, var) over the axes `red` (M2 instead of
    var when `partial`), flat in the kept axes' working order, and that order."""
    nd = x.ndim
    keep = tuple(a for a in range(nd) if a not in red)
    length = math.prod(x.shape[a] for a in red)
    # Work on a C-contiguous array in which the reduced axes are one run,
    # (keep, length, inner), or a leading run and one more run,
    # (lead, keep, length, inner) as per-channel statistics of NCHW over
    # (0, 2, 3): x itself, x.T, or (other axes) a transposed copy.
    perm = tuple(range(nd))
    if not x.flags.c_contiguous and x.T.flags.c_contiguous:
        perm = perm[::-1]
    pos = sorted(perm.index(a) for a in red)
    runs = _runs(pos)
    if len(runs) > 2 or (len(runs) == 2 and runs[0][0] != 0):
        perm, pos = keep + red, list(range(len(keep), nd))
        runs = _runs(pos)
    work = plain(np.transpose(x, perm), comp)
    # (lead, keep, length, inner): dims [0, a) [a, lo) [lo, hi) [hi, nd)
    if len(runs) == 2:
        a, (lo, hi) = runs[0][1], runs[1]
    else:
        a, (lo, hi) = 0, runs[0] if runs else (nd, nd)
    lead, mid = math.prod(work.shape[:a]), math.prod(work.shape[a:lo])
    inner = math.prod(work.shape[hi:])

    mean = np.empty(out_size, F64)
    var = np.empty(out_size, F64)
    if out_size:
        _core.moments(work.reshape(-1), lead, mid, length // lead, inner, ddof, mean, var, partial)
    return mean, var, [a for a in perm if a not in red]


# ---- partial moments: (count, mean, M2), merged with Chan's formula ----------
# The pieces of statistics over chunks (cnorm.dask, dataset_statistics): each
# chunk's partial comes from the C kernel, and partials merge exactly as the
# kernel's own chunks do.  One definition of the Python-side merge, here.

class Partial(NamedTuple):
    """Statistics of a piece: count (float64, a scalar or one per element:
    exact up to 2**53 values), mean and m2 (the sum of squared deviations
    from mean)."""
    count: Any
    mean: Array
    m2: Array


def partial_moments(x: ArrayLike, axis: AxisLike = None) -> Partial:
    """(count, mean, M2) of `x` over `axis`, float64 of the keepdims shape.
    Size-0 reduced axes give the merge's identity (count 0, mean 0, M2 0)."""
    x, _, comp = as_input(x)
    red = _axes(axis, x.ndim)
    kd = tuple(1 if a in red else x.shape[a] for a in range(x.ndim))
    count = float(math.prod(x.shape[a] for a in red))
    if count == 0:
        return Partial(0.0, np.zeros(kd, F64), np.zeros(kd, F64))
    mean, m2, kept_in_work = _reduce(x, red, comp, 0.0, math.prod(kd), partial=True)
    order = np.argsort(kept_in_work)
    shape = tuple(x.shape[a] for a in kept_in_work)
    return Partial(count, mean.reshape(shape).transpose(order).reshape(kd),
                   m2.reshape(shape).transpose(order).reshape(kd))


def merge(a: Partial, b: Partial) -> Partial:
    """Chan et al.'s pairwise merge, elementwise; a piece of count 0 is the
    identity (exactly: its mean does not enter)."""
    n = a.count + b.count
    d = b.mean - a.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(n > 0, b.count / n, 0.0)
    mean = np.where(b.count == 0, a.mean, np.where(a.count == 0, b.mean, a.mean + d * f))
    m2 = np.where(b.count == 0, a.m2, np.where(a.count == 0, b.m2, a.m2 + b.m2 + d * d * (a.count * f)))
    return Partial(n, mean, m2)


def merge_all(parts: Sequence[Partial]) -> Partial:
    """Merge in a fixed pairwise order (halves, recursively): error growth
    O(log k) like the kernel's cascade, and bits fixed by the order of `parts`."""
    if not parts:
        raise ValueError("merge_all: no partials")
    if len(parts) == 1:
        return parts[0]
    h = len(parts) // 2
    return merge(merge_all(parts[:h]), merge_all(parts[h:]))


def _runs(pos: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted positions as runs of consecutive ones, [(start, stop), ...]."""
    runs: list[tuple[int, int]] = []
    for p in pos:
        if runs and runs[-1][1] == p:
            runs[-1] = (runs[-1][0], p + 1)
        else:
            runs.append((p, p + 1))
    return runs


def _finish(x: Array, red: tuple[int, ...], keep: tuple[int, ...], kept_in_work: list[int], mean: Array,
            var: Array, res: np.dtype[Any], keepdims: bool) -> tuple[Any, Any]:
    """float64 results in the kept axes' working order -> x's axis order,
    result dtype, keepdims."""
    out_shape = tuple(x.shape[a] for a in kept_in_work)
    order = np.argsort(kept_in_work)
    mean = mean.reshape(out_shape).transpose(order).astype(res)
    var = var.reshape(out_shape).transpose(order).astype(res)
    if keepdims:
        kd = tuple(1 if a in red else x.shape[a] for a in range(x.ndim))
        mean, var = mean.reshape(kd), var.reshape(kd)
    elif not keep:
        mean, var = mean[()], var[()]
    return mean, var
