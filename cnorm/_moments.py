"""moments(): a single-pass Welford replacement for (np.mean, np.var)."""
import math
import numbers

import numpy as np

from . import _kernels
from ._checks import F64, as_input, normalize_axis

__all__ = ["moments"]


def _axes(axis, ndim):
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


def moments(x, axis=None, *, ddof=0, keepdims=False):
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
        The variance divides by ``N - ddof`` (inf/NaN when N <= ddof).
    keepdims : bool

    Returns
    -------
    mean, var : ndarray or scalar
        x's floating dtype (float64 for integer and bool input).

    Raises
    ------
    ValueError
        A bad or repeated axis, or reducing over size-0 axes.

    Examples
    --------
    >>> mean, var = cnorm.moments(np.arange(10.0))
    >>> print(mean, var)
    4.5 8.25
    """
    x, res, comp = as_input(x)
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Real) or not math.isfinite(ddof):
        raise TypeError(f"ddof: expected a finite number, got {ddof!r}")
    nd = x.ndim
    red = _axes(axis, nd)
    keep = tuple(a for a in range(nd) if a not in red)
    length = math.prod(x.shape[a] for a in red)
    out_size = math.prod(x.shape[a] for a in keep)
    if length == 0 and out_size > 0:
        raise ValueError(f"x: cannot compute moments over size-0 axes {red} of shape {x.shape}")

    # Work on a C-contiguous array whose reduced axes are one consecutive
    # run: (outer, length, inner).  x itself, x.T, or a transposed copy.
    perm = tuple(range(nd))
    if not x.flags.c_contiguous and x.T.flags.c_contiguous:
        perm = perm[::-1]
    pos = sorted(perm.index(a) for a in red)
    if pos and pos[-1] - pos[0] + 1 != len(pos):
        split = _split_run(x, perm, pos, comp, float(ddof), out_size)
        if split is not None:
            return _finish(x, red, keep, [a for a in perm if a not in red], *split, res, keepdims)
        perm, pos = keep + red, list(range(len(keep), nd))
    work = np.ascontiguousarray(np.transpose(x, perm), dtype=comp)
    lo, hi = (pos[0], pos[-1] + 1) if pos else (nd, nd)
    outer = math.prod(work.shape[:lo])
    inner = math.prod(work.shape[hi:])

    mean = np.empty(out_size, F64)
    var = np.empty(out_size, F64)
    if out_size:
        _kernels.moments(comp, work.reshape(-1), outer, length, inner, float(ddof), mean, var)

    return _finish(x, red, keep, [a for a in perm if a not in red], mean, var, res, keepdims)


def _finish(x, red, keep, kept_in_work, mean, var, res, keepdims):
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


# Rows shorter than this go through the transposed copy instead: per-row
# calls would cost more than the copy.
_SPLIT_MIN_ROW = 256


def _split_run(x, perm, pos, comp, ddof, out_size):
    """Moments over a leading and a trailing run of axes around kept ones,
    (A, K, B) -> K, as per-channel statistics of NCHW over (0, 2, 3):
    Welford rows of B in place (no transposed copy), then the A rows of
    each k merged in float64.  None when the axes or layout do not fit."""
    nd = len(perm)
    nlead = next((i for i, p in enumerate(pos) if p != i), len(pos))
    trail = pos[nlead:]
    if nlead == 0 or trail != list(range(nd - len(trail), nd)):
        return None
    work = np.transpose(x, perm)
    if not work.flags.c_contiguous or work.dtype != comp or out_size == 0:
        return None
    a = math.prod(work.shape[:nlead])
    b = math.prod(work.shape[nd - len(trail):])
    if b < _SPLIT_MIN_ROW:
        return None
    rows_mean = np.empty(a * out_size, F64)
    rows_var = np.empty(a * out_size, F64)
    _kernels.moments(comp, work.reshape(-1), a * out_size, b, 1, 0.0, rows_mean, rows_var)
    rows_mean = rows_mean.reshape(a, out_size)
    # Chan's merge of `a` equal-count (b) partials, all at once:
    # M2 = sum of the rows' M2 + b * sum of squared deviations of their means
    mean = rows_mean.mean(axis=0)
    m2 = (rows_var.reshape(a, out_size) * b).sum(axis=0) + b * ((rows_mean - mean) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):  # N <= ddof: inf/NaN, as NumPy
        var = m2 / max(a * b - ddof, 0.0)
    return mean, var
