# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin binding of the C engine, and the rules that decide what reaches it.

One front door (README, "How the engine works"): every rule about what may be handed
to C is decided here, once, and both ways into a kernel go through it.

Rules (each a small cdef/cpdef function below, used by every caller):

* ``storage``: the kernel storage types are native float32, float64,
  float16 and ml_dtypes' bfloat16; weights/bias are of x's type for
  float32/float64 and float32 for the half types (``weight_typenum``).
* ``passes_as_is(a, typenum, n)``: an argument can be handed to C as it is
  when it is an ndarray of exactly that type in native byte order,
  aligned, C-contiguous, with n elements.  Anything else (big-endian,
  strided, misaligned, a list, another dtype) is converted first.
* ``writes_directly(out, xk)``: the kernel may write straight into ``out``
  when it passes as is for xk's type and size, is writable, and either is
  exactly xk (in place: the kernels read an element before writing it) or
  does not overlap it.  Otherwise the kernel writes a temporary that is
  copied into ``out`` (NumPy's casting and byte swapping), so a big-endian
  or strided ``out`` still receives the right values.
* ``unaliased(p, y)``: an input the kernel reads while it writes ``y``
  (weight, bias, running stats) is copied first when it overlaps ``y``.
* ``channel_layout``: the NCHW/NHWC form of a channel variant (it changes
  the output bits, so it is decided only here).
* ``check_eps``, ``check_momentum``, ``check_ddof``, ``activation_code``,
  ``default_eps``: argument checks with the error messages; the activation
  and ISA names come from the C library (cnorm_activation_name,
  cnorm_isa_name).  ``warn_dof``: moments' NumPy warning for ddof >= N.
* ``rstd_of``: return_stats' rstd from a variance, with the C engine's own
  cnorm_rstd / cnorm_given_rstd.

Each public op has one Cython function that calls its C kernel
(``_layer_norm``, ``_rms_norm``, ``_group_norm``, ``_batch_norm``,
``_moments``, ``_fold_batch_norm`` and the backward's
``_layer_norm_backward``, ``_rms_norm_backward``, ``_group_norm_backward``,
``_batch_norm_backward``; exported as ``layer_norm`` etc. for the general
path).  They re-check that their arguments pass as is (O(1), so
that a mistake can never reach C as bad memory) but convert nothing.  Two
callers use them:

* the fast lane (``*_fast``): the public function's arguments as given;
  when every one is already plain (passes as is, exact Python float
  scalars and ints that fit a C long long: ``_plain_int``) it calls the
  kernel function at once, otherwise it returns None;
* the general path (cnorm/_norms.py, cnorm/_moments.py): validates with the
  messages of cnorm/_checks.py and of the rules here, converts every
  argument to plain form (contiguous native compute dtype, the canonical
  layout, converted params, a temporary target) and calls the same
  kernel function.

So there is one implementation and a shortcut into it.
"""

cimport numpy as cnp
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.float cimport FLT_MAX
from libc.math cimport fabs, isfinite
from libc.stdint cimport uint16_t
from cpython.pycapsule cimport PyCapsule_New
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc

from cnorm._cnorm cimport *

cnp.import_array()

import numbers
import warnings

import numpy as np


# ---- extension-only C (cnorm/_ext: not part of libcnorm) -------------------

cdef extern from "roofline.h" nogil:
    void cnorm_roofline_f32(const float *x, float *y, size_t n, float a, float b)

cdef extern from "outbuf.h":
    ctypedef struct PyDataMem_Handler:
        pass
    PyDataMem_Handler cnorm_outbuf_handler
    size_t CNORM_OUTBUF_MIN
    void cnorm_outbuf_release() nogil
    size_t cnorm_outbuf_held() nogil
    void cnorm_outbuf_set_limit(size_t limit) nogil
    size_t cnorm_outbuf_limit() nogil
    size_t CNORM_OUTBUF_DEFAULT_LIMIT

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)
    enum: NPY_USERDEF

cdef object _outbuf_capsule = PyCapsule_New(<void *>&cnorm_outbuf_handler, "mem_handler", NULL)


# ---- names from the C library ----------------------------------------------

cdef tuple _c_names(const char *(*name_of)(int) noexcept nogil, bytes stop):
    names = []
    cdef const char *s
    cdef int i = 0
    while True:
        s = name_of(i)
        if s == NULL or (stop is not None and <bytes>s == stop):
            break
        names.append(s.decode())
        i += 1
    return tuple(names)


cdef const char *_isa_name(int i) noexcept nogil:
    return cnorm_isa_name(<cnorm_isa>i)


cdef const char *_act_name(int i) noexcept nogil:
    return cnorm_activation_name(i)


#: ISA names indexed by cnorm_isa ("unknown" ends the list).
ISA_NAMES = _c_names(_isa_name, b"unknown")
#: Activation names indexed by cnorm_activation ("none" is code 0).
ACTIVATION_NAMES = _c_names(_act_name, None)
# the activation argument: None or the name of a code > 0
cdef dict _ACT_CODES = {name: i for i, name in enumerate(ACTIVATION_NAMES) if i > 0}
_ACT_CODES[None] = 0
cdef list _act_reprs = [repr(n) for n in ACTIVATION_NAMES[1:]]
cdef str _ACT_EXPECTED = "None, " + ", ".join(_act_reprs[:len(_act_reprs) - 1]) + " or " + _act_reprs[len(_act_reprs) - 1]


# ---- rules ------------------------------------------------------------------

cdef int _bf16_num = -1   # ml_dtypes' bfloat16 type number once seen

# bfloat16 without ml_dtypes.  NumPy has no bfloat16 and torch users need not
# have ml_dtypes, so cnorm.torch hands a bfloat16 tensor over as its bits: a
# uint16 view whose dtype carries this metadata.  storage() takes it for a
# bfloat16 storage type (the kernels read the same bits: every kernel call
# sends a 2-byte type other than float16 to the bfloat16 kernel), so it goes
# through every rule here and in cnorm/_checks.py as ml_dtypes' type does.
# Private: only cnorm.torch makes such views.  NumPy compares dtypes without
# their metadata, so storage() reads the metadata itself and a plain uint16
# array stays an integer input.
BF16_BITS = np.dtype(np.uint16, metadata={"cnorm": "bfloat16"})


cpdef bint is_bf16_bits(object dtype):
    """Whether `dtype` is BF16_BITS (cnorm.torch's bfloat16 bits)."""
    cdef cnp.dtype d = <cnp.dtype?>dtype
    if d.type_num != cnp.NPY_UINT16 or not cnp.PyDataType_ISNOTSWAPPED(d):
        return False
    md = (<object>d).metadata
    return md is not None and md.get("cnorm") == "bfloat16"


cpdef int storage(object dtype):
    """The type number of `dtype` if it is a kernel storage type (native
    float32, float64, float16, bfloat16 -- ml_dtypes' or BF16_BITS), else -1."""
    cdef cnp.dtype d = <cnp.dtype?>dtype
    cdef int t = d.type_num
    global _bf16_num
    if not cnp.PyDataType_ISNOTSWAPPED(d):
        return -1
    if t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64 or t == cnp.NPY_FLOAT16 or (t == _bf16_num and t >= 0):
        return t
    if t == cnp.NPY_UINT16:
        return t if is_bf16_bits(d) else -1
    if _bf16_num < 0 and t >= NPY_USERDEF and d.kind == b"V" and d.name == "bfloat16":
        _bf16_num = t
        return t
    return -1


cpdef int weight_typenum(int typenum):
    """Type of weight/bias for kernels of storage `typenum`."""
    return typenum if typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64 else cnp.NPY_FLOAT32


cpdef object weight_dtype(object dtype):
    """The dtype of weight/bias for kernels of storage dtype `dtype` (the
    general path's form of weight_typenum)."""
    return cnp.PyArray_DescrFromType(weight_typenum(storage(dtype)))


cpdef bint passes_as_is(object a, int typenum, Py_ssize_t n=-1):
    """True if `a` can be handed to C as it is: an ndarray of exactly
    `typenum` in native byte order, aligned and C-contiguous, with n
    elements (n < 0: any)."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_ISALIGNED(arr) and cnp.PyArray_IS_C_CONTIGUOUS(arr)
            and (n < 0 or cnp.PyArray_SIZE(arr) == n))


cdef inline bint _plain_vec(object p, int typenum, cnp.npy_intp n):
    """None, or a 1-D array of length n that passes as is."""
    return p is None or (passes_as_is(p, typenum, n) and cnp.PyArray_NDIM(<cnp.ndarray>p) == 1)


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether two C-contiguous arrays share any byte."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    return pa < pb + cnp.PyArray_NBYTES(b) and pb < pa + cnp.PyArray_NBYTES(a)


cpdef bint writes_directly(object out, cnp.ndarray xk, int typenum=-1):
    """True if the kernel reading `xk` may write straight into `out` (a view
    with xk's logical order): out passes as is for its type (`typenum`;
    -1: xk's) and xk's size, is writable, and is exactly xk (in place, same
    type only) or does not overlap it."""
    cdef int xt = cnp.PyArray_TYPE(xk)
    if typenum < 0:
        typenum = xt
    if not passes_as_is(out, typenum, cnp.PyArray_SIZE(xk)):
        return False
    cdef cnp.ndarray o = <cnp.ndarray>out
    if not cnp.PyArray_ISWRITEABLE(o):
        return False
    return (typenum == xt and cnp.PyArray_DATA(o) == cnp.PyArray_DATA(xk)) or not _overlap(o, xk)


cpdef object unaliased(object p, cnp.ndarray y):
    """`p` (a plain input the kernel reads while writing y, or None), copied
    when it shares memory with y, as NumPy ufuncs do with overlap."""
    if p is None or not _overlap(<cnp.ndarray>p, y):
        return p
    return cnp.PyArray_NewCopy(<cnp.ndarray>p, cnp.NPY_CORDER)


cdef bint _contiguous_as(cnp.ndarray x, int *order, int nd):
    """x.transpose(order).flags.c_contiguous without making the view (the
    same test as NumPy's: size-1 dims are ignored, size 0 is contiguous)."""
    cdef cnp.npy_intp sd = cnp.PyArray_ITEMSIZE(x), dim
    cdef bint ok = True
    cdef int i
    for i in range(nd - 1, -1, -1):
        dim = cnp.PyArray_DIM(x, order[i])
        if dim == 0:
            return True
        if dim != 1:
            if cnp.PyArray_STRIDE(x, order[i]) != sd:
                ok = False
            sd *= dim
    return ok


# channel_layout results: the form, and whether x is already in it
LAYOUT_NCHW, LAYOUT_NHWC, LAYOUT_COPY = 0, 1, 2


cpdef int channel_layout(cnp.ndarray x, int b, int ax, bint prefer_nhwc) except -1:
    """The kernel form of a channel variant with batch axis b and channel
    axis ax: LAYOUT_NHWC bit for the channels-last form (b, *spatial, ax)
    (else (b, ax, *spatial)), plus LAYOUT_COPY when x must be copied into
    it.  x's own memory order wins; prefer_nhwc (batch norm) takes the
    column kernel when there are no spatial elements; a copy keeps what
    the caller declared with the axis."""
    cdef int nd = cnp.PyArray_NDIM(x)
    cdef int first[64]
    cdef int last[64]
    cdef int i, k = 0
    cdef cnp.npy_intp s = 1
    if nd > 64:
        raise ValueError(f"x: at most 64 dims, got {nd}")
    first[0] = b
    first[1] = ax
    last[0] = b
    for i in range(nd):
        if i != b and i != ax:
            first[2 + k] = i
            last[1 + k] = i
            k += 1
            s *= cnp.PyArray_DIM(x, i)
    last[nd - 1] = ax
    cdef bint nchw_ok = _contiguous_as(x, first, nd)
    if nchw_ok and not (prefer_nhwc and s == 1):
        return LAYOUT_NCHW
    if _contiguous_as(x, last, nd):
        return LAYOUT_NHWC
    if nchw_ok:
        return LAYOUT_NCHW
    return LAYOUT_COPY | (LAYOUT_NHWC if ax == nd - 1 else LAYOUT_NCHW)


cpdef double check_eps(object eps, str name="eps") except? -1.0:
    """eps as a float: a finite real >= 0, else TypeError/ValueError."""
    cdef double e
    if type(eps) is float:
        e = PyFloat_AS_DOUBLE(eps)
    elif isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{name}: expected a finite float >= 0, got {type(eps).__name__} {eps!r}")
    else:
        e = float(eps)
    if not (isfinite(e) and e >= 0.0):
        raise ValueError(f"{name}: expected a finite float >= 0, got {e!r}")
    return e


cpdef double check_momentum(object momentum) except? -1.0:
    """momentum as a float in [0, 1], else TypeError/ValueError."""
    cdef double m
    if type(momentum) is float:
        m = PyFloat_AS_DOUBLE(momentum)
    elif isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
        raise TypeError(f"momentum: expected a float in [0, 1], got {type(momentum).__name__} {momentum!r}")
    else:
        m = float(momentum)
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum: expected a float in [0, 1], got {momentum!r}")
    return m


cpdef double check_ddof(object ddof) except? -1.0:
    """moments' ddof as a float: a finite real number, else TypeError
    (not a number) or ValueError (inf, NaN, an int beyond a double)."""
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Real):
        raise TypeError(f"ddof: expected a finite real number, got {type(ddof).__name__} {ddof!r}")
    try:
        d = float(ddof)
    except OverflowError:
        d = float("inf")
    if not isfinite(d):
        raise ValueError(f"ddof: expected a finite real number, got {ddof!r}")
    return d


cpdef int warn_dof(double count, double ddof) except -1:
    """NumPy's RuntimeWarning when ddof >= count (the values reduced per
    result): the variance divides by max(count - ddof, 0), so it is inf,
    or NaN where every value equals the mean, as np.var gives."""
    if ddof >= count:
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
    return 0


cpdef int activation_code(object activation) except -1:
    """The cnorm_activation code of None or an activation name."""
    if activation is None:
        return 0
    try:
        return _ACT_CODES[activation]
    except (KeyError, TypeError):
        raise ValueError(f"activation: expected {_ACT_EXPECTED}, got {activation!r}") from None


cdef dict _DEFAULT_EPS = {}


cpdef double default_eps(object dtype) except? -1.0:
    """rms_norm's eps=None: the machine epsilon of the result dtype, as
    PyTorch (bfloat16, ml_dtypes' or BF16_BITS: 8 significand bits, so
    2**-7, ml_dtypes.finfo's and torch.finfo's value)."""
    try:
        return _DEFAULT_EPS[dtype]
    except KeyError:
        pass
    if storage(dtype) >= 0 and (<cnp.dtype?>dtype).kind != b"f":
        e = 2.0 ** -7
    else:
        e = float(np.finfo(dtype).eps)
    _DEFAULT_EPS[dtype] = e
    return e


cdef extern from "welford.h" nogil:
    double cnorm_rstd(double var, double eps)
    double cnorm_given_rstd(double var, double eps)


cpdef cnp.ndarray rstd_of(object var, double eps, bint given=False):
    """return_stats' rstd of float64 variances (any shape), elementwise
    with the C engine's own functions: cnorm_rstd (a batch variance,
    clamped at 0, as the kernels apply it) or, given=True,
    cnorm_given_rstd (running variances: not clamped, as torch).  Both
    lanes call this, so their statistics agree bit for bit."""
    cdef cnp.ndarray v
    if passes_as_is(var, cnp.NPY_FLOAT32):
        v = _cast(<cnp.ndarray>var, cnp.NPY_FLOAT64)
    else:
        v = cnp.PyArray_FROMANY(var, cnp.NPY_FLOAT64, 0, 0, cnp.NPY_ARRAY_IN_ARRAY)
    cdef cnp.ndarray r = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(v), cnp.PyArray_DIMS(v), cnp.NPY_FLOAT64, 0)
    cdef const double *vp = <const double *>cnp.PyArray_DATA(v)
    cdef double *rp = <double *>cnp.PyArray_DATA(r)
    cdef cnp.npy_intp i, n = cnp.PyArray_SIZE(v)
    with nogil:
        if given:
            for i in range(n):
                rp[i] = cnorm_given_rstd(vp[i], eps)
        else:
            for i in range(n):
                rp[i] = cnorm_rstd(vp[i], eps)
    return r


cdef inline bint _updatable(object v, cnp.npy_intp c):
    """A running statistic of c values that update_running (and so the fast
    lane) updates where it is: a writable float32/float64 vector."""
    return _plain_stats(v, c) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>v)


cpdef update_running(object running, double momentum, object new, double scale=1.0):
    """PyTorch's update of a running statistic, in place: running =
    (1 - momentum) * running + momentum * (new * scale), in double, rounded
    once to running's dtype (running: a writable floating ndarray; new:
    float64 values of running's size; scale: count / (count - 1) turns a
    batch variance into the unbiased one).  Both lanes and cnorm.dask call
    this, so their running statistics agree bit for bit."""
    cdef cnp.ndarray nw = cnp.PyArray_FROMANY(new, cnp.NPY_FLOAT64, 0, 0, cnp.NPY_ARRAY_IN_ARRAY)
    cdef cnp.npy_intp i, n = cnp.PyArray_SIZE(nw)
    if cnp.PyArray_SIZE(<cnp.ndarray>running) != n:
        raise ValueError(f"update_running: {n} new values for {cnp.PyArray_SIZE(<cnp.ndarray>running)}")
    # float32/float64 updated where they are; any other dtype or layout
    # through a float64 copy, assigned back (cast once)
    cdef bint direct = _updatable(running, n)
    cdef cnp.ndarray r = <cnp.ndarray>running if direct else cnp.PyArray_FROMANY(
        running, cnp.NPY_FLOAT64, 0, 0, cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ENSURECOPY)
    cdef bint f32 = cnp.PyArray_TYPE(r) == cnp.NPY_FLOAT32
    cdef const double *np_ = <const double *>cnp.PyArray_DATA(nw)
    cdef float *r32 = <float *>cnp.PyArray_DATA(r)
    cdef double *r64 = <double *>cnp.PyArray_DATA(r)
    cdef double keep = 1.0 - momentum
    with nogil:
        if f32:
            for i in range(n):
                r32[i] = <float>(keep * <double>r32[i] + momentum * (np_[i] * scale))
        else:
            for i in range(n):
                r64[i] = keep * r64[i] + momentum * (np_[i] * scale)
    if not direct:
        running[...] = r.reshape(running.shape)


# ---- output arrays ------------------------------------------------------------

cdef cnp.ndarray _empty(int nd, cnp.npy_intp *dims, int typenum):
    """An uninitialized C-contiguous array; large ones come from the
    output-buffer cache (outbuf.h) so that they are not page-faulted in
    afresh."""
    cdef cnp.ndarray y
    cdef int itemsize = 4 if typenum == cnp.NPY_FLOAT32 else 8 if typenum == cnp.NPY_FLOAT64 else 2
    cdef size_t nbytes = <size_t>cnp.PyArray_MultiplyList(dims, nd) * itemsize
    if nbytes < CNORM_OUTBUF_MIN:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    old = PyDataMem_SetHandler(_outbuf_capsule)
    try:
        y = cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    finally:
        PyDataMem_SetHandler(old)
    return y


cdef cnp.ndarray _cast(cnp.ndarray v, int t):
    """A new array of v's values in type t (as v.astype(t)).  Between
    plain float32 and float64 it is a C loop: the same conversion NumPy's
    cast makes (exact widening, round-to-nearest narrowing), without the
    casting machinery's overhead, most of a tiny call's time.  A finite
    double beyond float's range takes NumPy's cast: in C its narrowing is
    undefined, and NumPy gives inf with its overflow RuntimeWarning."""
    cdef int vt = cnp.PyArray_TYPE(v)
    if not ((vt == cnp.NPY_FLOAT32 or vt == cnp.NPY_FLOAT64) and (t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64)
            and passes_as_is(v, vt, -1)):
        return cnp.PyArray_Cast(v, t)
    cdef cnp.npy_intp i, n = cnp.PyArray_SIZE(v)
    cdef const float *fs = <const float *>cnp.PyArray_DATA(v)
    cdef const double *ds = <const double *>cnp.PyArray_DATA(v)
    if vt == cnp.NPY_FLOAT64 and t == cnp.NPY_FLOAT32:
        for i in range(n):
            if isfinite(ds[i]) and fabs(ds[i]) > FLT_MAX:
                return cnp.PyArray_Cast(v, t)
    cdef cnp.ndarray r = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(v), cnp.PyArray_DIMS(v), t, 0)
    cdef float *fd = <float *>cnp.PyArray_DATA(r)
    cdef double *dd = <double *>cnp.PyArray_DATA(r)
    with nogil:
        if vt == cnp.NPY_FLOAT32 and t == cnp.NPY_FLOAT64:
            for i in range(n):
                dd[i] = fs[i]
        elif vt == cnp.NPY_FLOAT64 and t == cnp.NPY_FLOAT32:
            for i in range(n):
                fd[i] = <float>ds[i]
        elif vt == cnp.NPY_FLOAT32:
            for i in range(n):
                fd[i] = fs[i]
        else:
            for i in range(n):
                dd[i] = ds[i]
    return r


def empty(Py_ssize_t n, dtype):
    """Flat uninitialized array of n elements of a kernel storage dtype (or
    float64 for statistics); large ones come from the output-buffer cache."""
    cdef cnp.npy_intp dim = n
    cdef int t = storage(np.dtype(dtype))
    if t < 0:
        raise TypeError(f"empty: {dtype} is not a kernel storage dtype")
    return _empty(1, &dim, t)


def release_memory():
    """Free the cached output buffers; returns the bytes released."""
    cdef size_t held = cnorm_outbuf_held()
    cnorm_outbuf_release()
    return held


#: The output-buffer cache's bound when neither CNORM_OUTPUT_CACHE nor
#: set_output_cache() sets one (bytes).
OUTPUT_CACHE_DEFAULT = CNORM_OUTBUF_DEFAULT_LIMIT


def set_output_cache(size_t max_bytes):
    """Bound the bytes the output-buffer cache holds (0: cache nothing);
    a bound below what is held frees the cache."""
    cnorm_outbuf_set_limit(max_bytes)


def get_output_cache():
    """The output-buffer cache's bound in bytes."""
    return cnorm_outbuf_limit()


def output_cache_held():
    """Bytes the output-buffer cache holds now."""
    return cnorm_outbuf_held()


# ---- the kernel functions: one per op, plain arguments only -----------------

cdef int _check(int status) except -1:
    if status == 0:
        return 0
    msg = cnorm_status_string(status).decode()
    if status == CNORM_ERR_ALLOC:
        raise MemoryError(msg)
    raise ValueError(msg)


cdef int _need(object a, int typenum, size_t n, bint optional, bint write, str what,
               str name) except -1:
    """Last line of defence: the callers make arguments plain, but the
    kernels trust pointers and sizes, so a mistake must raise here."""
    if a is None and optional:
        return 0
    if not passes_as_is(a, typenum, <Py_ssize_t>n) or (write and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)):
        raise ValueError(f"{what}: {name} is not a plain {'writable ' if write else ''}array of "
                         f"type {typenum} with {n} elements")
    return 0


cdef inline void *_ptr(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef int _xy(cnp.ndarray x, cnp.ndarray y, size_t total, str what) except -1:
    """x's storage type (checked), with y of the same type and size."""
    cdef int t = storage(x.descr)
    if t < 0:
        raise TypeError(f"{what}: x has no kernel storage type ({x.dtype})")
    _need(x, t, total, False, False, what, "x")
    _need(y, t, total, False, True, what, "y")
    return t


cdef bint _quant(object quant, cnorm_quant *qp, cnp.ndarray x, cnp.ndarray y, size_t total, str what) except -1:
    """int8/uint8 output: `quant` is (scale, zero_point, unsigned) checked by
    cnorm/_checks.py (check_quantize), or None; y then holds the codes."""
    if quant is None:
        return False
    scale, zero_point, unsigned = quant
    qp.scale = scale
    qp.zero_point = zero_point
    qp.type = CNORM_UINT8 if unsigned else CNORM_INT8
    _need(y, cnp.NPY_UINT8 if unsigned else cnp.NPY_INT8, total, False, True, what, "y")
    return True


cdef int _xyq(cnp.ndarray x, cnp.ndarray y, size_t total, str what, object quant, cnorm_quant *qp,
              bint *q) except -1:
    """_xy, or with `quant` x's storage type and y the int8/uint8 codes."""
    q[0] = _quant(quant, qp, x, y, total, what)
    if not q[0]:
        return _xy(x, y, total, what)
    cdef int t = storage(x.descr)
    if t < 0:
        raise TypeError(f"{what}: x has no kernel storage type ({x.dtype})")
    _need(x, t, total, False, False, what, "x")
    return t


cdef int _layer_norm(cnp.ndarray x, cnp.ndarray y, size_t rows, size_t cols, object w, object b,
                     double eps, object mean, object rstd, int act, object quant=None) except -1:
    cdef cnorm_quant qp
    cdef bint q
    cdef int t = _xyq(x, y, rows * cols, "layer_norm", quant, &qp, &q)
    cdef int wt = weight_typenum(t)
    _need(w, wt, cols, True, False, "layer_norm", "weight")
    _need(b, wt, cols, True, False, "layer_norm", "bias")
    _need(mean, cnp.NPY_FLOAT64, rows, True, True, "layer_norm", "mean")
    _need(rstd, cnp.NPY_FLOAT64, rows, True, True, "layer_norm", "rstd")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *wp = _ptr(w)
    cdef void *bp = _ptr(b)
    cdef double *mp = <double *>_ptr(mean)
    cdef double *rp = <double *>_ptr(rstd)
    cdef cnorm_activation a = <cnorm_activation>act
    cdef int st
    with nogil:
        if q:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_layer_norm_q8_f32(<float *>xp, yp, rows, cols, <float *>wp, <float *>bp, eps, mp, rp, a, &qp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_layer_norm_q8_f64(<double *>xp, yp, rows, cols, <double *>wp, <double *>bp, eps, mp, rp,
                                             a, &qp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_layer_norm_q8_f16(<uint16_t *>xp, yp, rows, cols, <float *>wp, <float *>bp, eps, mp, rp,
                                             a, &qp)
            else:
                st = cnorm_layer_norm_q8_bf16(<uint16_t *>xp, yp, rows, cols, <float *>wp, <float *>bp, eps, mp, rp,
                                              a, &qp)
        elif t == cnp.NPY_FLOAT32:
            st = cnorm_layer_norm_f32(<float *>xp, <float *>yp, rows, cols, <float *>wp, <float *>bp,
                                      eps, mp, rp, a)
        elif t == cnp.NPY_FLOAT64:
            st = cnorm_layer_norm_f64(<double *>xp, <double *>yp, rows, cols, <double *>wp,
                                      <double *>bp, eps, mp, rp, a)
        elif t == cnp.NPY_FLOAT16:
            st = cnorm_layer_norm_f16(<uint16_t *>xp, <uint16_t *>yp, rows, cols, <float *>wp,
                                      <float *>bp, eps, mp, rp, a)
        else:
            st = cnorm_layer_norm_bf16(<uint16_t *>xp, <uint16_t *>yp, rows, cols, <float *>wp,
                                       <float *>bp, eps, mp, rp, a)
    return _check(st)


cdef int _rms_norm(cnp.ndarray x, cnp.ndarray y, size_t rows, size_t cols, object w, double eps,
                   object rstd, object quant=None) except -1:
    cdef cnorm_quant qp
    cdef bint q
    cdef int t = _xyq(x, y, rows * cols, "rms_norm", quant, &qp, &q)
    _need(w, weight_typenum(t), cols, True, False, "rms_norm", "weight")
    _need(rstd, cnp.NPY_FLOAT64, rows, True, True, "rms_norm", "rstd")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *wp = _ptr(w)
    cdef double *rp = <double *>_ptr(rstd)
    cdef int st
    with nogil:
        if q:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_rms_norm_q8_f32(<float *>xp, yp, rows, cols, <float *>wp, eps, rp, &qp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_rms_norm_q8_f64(<double *>xp, yp, rows, cols, <double *>wp, eps, rp, &qp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_rms_norm_q8_f16(<uint16_t *>xp, yp, rows, cols, <float *>wp, eps, rp, &qp)
            else:
                st = cnorm_rms_norm_q8_bf16(<uint16_t *>xp, yp, rows, cols, <float *>wp, eps, rp, &qp)
        elif t == cnp.NPY_FLOAT32:
            st = cnorm_rms_norm_f32(<float *>xp, <float *>yp, rows, cols, <float *>wp, eps, rp)
        elif t == cnp.NPY_FLOAT64:
            st = cnorm_rms_norm_f64(<double *>xp, <double *>yp, rows, cols, <double *>wp, eps, rp)
        elif t == cnp.NPY_FLOAT16:
            st = cnorm_rms_norm_f16(<uint16_t *>xp, <uint16_t *>yp, rows, cols, <float *>wp, eps, rp)
        else:
            st = cnorm_rms_norm_bf16(<uint16_t *>xp, <uint16_t *>yp, rows, cols, <float *>wp, eps, rp)
    return _check(st)


cdef int _add_norm(cnp.ndarray x, cnp.ndarray r, size_t r_rows, object skip, cnp.ndarray s, cnp.ndarray y,
                   size_t rows, size_t cols, object w, object b, double eps, object mean, object rstd, int act,
                   bint rms, object quant=None) except -1:
    """add_layer_norm (rms False) or add_rms_norm: s = x + r (+ skip), y = norm(s)."""
    what = "add_rms_norm" if rms else "add_layer_norm"
    cdef cnorm_quant qp
    cdef bint q
    cdef int t = _xyq(x, y, rows * cols, what, quant, &qp, &q)
    cdef int wt = weight_typenum(t)
    _need(r, t, r_rows * cols, False, False, what, "residual")
    _need(s, t, rows * cols, False, True, what, "sum_out")
    _need(skip, wt, cols, True, False, what, "skip_bias")
    _need(w, wt, cols, True, False, what, "weight")
    _need(b, wt, cols, True, False, what, "bias")
    _need(mean, cnp.NPY_FLOAT64, rows, True, True, what, "mean")
    _need(rstd, cnp.NPY_FLOAT64, rows, True, True, what, "rstd")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *rp = cnp.PyArray_DATA(r)
    cdef void *sp = cnp.PyArray_DATA(s)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *kp = _ptr(skip)
    cdef void *wp = _ptr(w)
    cdef void *bp = _ptr(b)
    cdef double *mp = <double *>_ptr(mean)
    cdef double *dp = <double *>_ptr(rstd)
    cdef cnorm_activation a = <cnorm_activation>act
    cdef int st
    with nogil:
        if q and rms:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_add_rms_norm_q8_f32(<float *>xp, <float *>rp, r_rows, <float *>kp, <float *>sp, yp, rows,
                                               cols, <float *>wp, eps, dp, &qp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_add_rms_norm_q8_f64(<double *>xp, <double *>rp, r_rows, <double *>kp, <double *>sp, yp,
                                               rows, cols, <double *>wp, eps, dp, &qp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_add_rms_norm_q8_f16(<uint16_t *>xp, <uint16_t *>rp, r_rows, <float *>kp, <uint16_t *>sp,
                                               yp, rows, cols, <float *>wp, eps, dp, &qp)
            else:
                st = cnorm_add_rms_norm_q8_bf16(<uint16_t *>xp, <uint16_t *>rp, r_rows, <float *>kp, <uint16_t *>sp,
                                                yp, rows, cols, <float *>wp, eps, dp, &qp)
        elif q:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_add_layer_norm_q8_f32(<float *>xp, <float *>rp, r_rows, <float *>kp, <float *>sp, yp,
                                                 rows, cols, <float *>wp, <float *>bp, eps, mp, dp, a, &qp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_add_layer_norm_q8_f64(<double *>xp, <double *>rp, r_rows, <double *>kp, <double *>sp, yp,
                                                 rows, cols, <double *>wp, <double *>bp, eps, mp, dp, a, &qp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_add_layer_norm_q8_f16(<uint16_t *>xp, <uint16_t *>rp, r_rows, <float *>kp,
                                                 <uint16_t *>sp, yp, rows, cols, <float *>wp, <float *>bp, eps, mp,
                                                 dp, a, &qp)
            else:
                st = cnorm_add_layer_norm_q8_bf16(<uint16_t *>xp, <uint16_t *>rp, r_rows, <float *>kp,
                                                  <uint16_t *>sp, yp, rows, cols, <float *>wp, <float *>bp, eps, mp,
                                                  dp, a, &qp)
        elif rms:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_add_rms_norm_f32(<float *>xp, <float *>rp, r_rows, <float *>kp, <float *>sp,
                                            <float *>yp, rows, cols, <float *>wp, eps, dp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_add_rms_norm_f64(<double *>xp, <double *>rp, r_rows, <double *>kp, <double *>sp,
                                            <double *>yp, rows, cols, <double *>wp, eps, dp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_add_rms_norm_f16(<uint16_t *>xp, <uint16_t *>rp, r_rows, <float *>kp,
                                            <uint16_t *>sp, <uint16_t *>yp, rows, cols, <float *>wp, eps, dp)
            else:
                st = cnorm_add_rms_norm_bf16(<uint16_t *>xp, <uint16_t *>rp, r_rows, <float *>kp,
                                             <uint16_t *>sp, <uint16_t *>yp, rows, cols, <float *>wp, eps, dp)
        elif t == cnp.NPY_FLOAT32:
            st = cnorm_add_layer_norm_f32(<float *>xp, <float *>rp, r_rows, <float *>kp, <float *>sp,
                                          <float *>yp, rows, cols, <float *>wp, <float *>bp, eps, mp, dp, a)
        elif t == cnp.NPY_FLOAT64:
            st = cnorm_add_layer_norm_f64(<double *>xp, <double *>rp, r_rows, <double *>kp, <double *>sp,
                                          <double *>yp, rows, cols, <double *>wp, <double *>bp, eps, mp, dp, a)
        elif t == cnp.NPY_FLOAT16:
            st = cnorm_add_layer_norm_f16(<uint16_t *>xp, <uint16_t *>rp, r_rows, <float *>kp, <uint16_t *>sp,
                                          <uint16_t *>yp, rows, cols, <float *>wp, <float *>bp, eps, mp, dp, a)
        else:
            st = cnorm_add_layer_norm_bf16(<uint16_t *>xp, <uint16_t *>rp, r_rows, <float *>kp, <uint16_t *>sp,
                                           <uint16_t *>yp, rows, cols, <float *>wp, <float *>bp, eps, mp, dp, a)
    return _check(st)


cdef int _group_norm(cnp.ndarray x, cnp.ndarray y, size_t n, size_t c, size_t s, size_t groups,
                     bint nhwc, object w, object b, double eps, object mean, object var,
                     int act, object quant=None) except -1:
    cdef cnorm_quant qp
    cdef bint q
    cdef int t = _xyq(x, y, n * c * s, "group_norm", quant, &qp, &q)
    cdef int wt = weight_typenum(t)
    if groups == 0:
        raise ValueError("group_norm: groups must be >= 1")
    _need(w, wt, c, True, False, "group_norm", "weight")
    _need(b, wt, c, True, False, "group_norm", "bias")
    _need(mean, cnp.NPY_FLOAT64, n * groups, True, True, "group_norm", "mean")
    _need(var, cnp.NPY_FLOAT64, n * groups, True, True, "group_norm", "var")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *wp = _ptr(w)
    cdef void *bp = _ptr(b)
    cdef double *mp = <double *>_ptr(mean)
    cdef double *vp = <double *>_ptr(var)
    cdef cnorm_layout lay = CNORM_NHWC if nhwc else CNORM_NCHW
    cdef cnorm_activation a = <cnorm_activation>act
    cdef int st
    with nogil:
        if q:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_group_norm_q8_f32(<float *>xp, yp, n, c, s, groups, lay, <float *>wp, <float *>bp, eps,
                                             mp, vp, a, &qp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_group_norm_q8_f64(<double *>xp, yp, n, c, s, groups, lay, <double *>wp, <double *>bp,
                                             eps, mp, vp, a, &qp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_group_norm_q8_f16(<uint16_t *>xp, yp, n, c, s, groups, lay, <float *>wp, <float *>bp,
                                             eps, mp, vp, a, &qp)
            else:
                st = cnorm_group_norm_q8_bf16(<uint16_t *>xp, yp, n, c, s, groups, lay, <float *>wp, <float *>bp,
                                              eps, mp, vp, a, &qp)
        elif t == cnp.NPY_FLOAT32:
            st = cnorm_group_norm_f32(<float *>xp, <float *>yp, n, c, s, groups, lay, <float *>wp,
                                      <float *>bp, eps, mp, vp, a)
        elif t == cnp.NPY_FLOAT64:
            st = cnorm_group_norm_f64(<double *>xp, <double *>yp, n, c, s, groups, lay, <double *>wp,
                                      <double *>bp, eps, mp, vp, a)
        elif t == cnp.NPY_FLOAT16:
            st = cnorm_group_norm_f16(<uint16_t *>xp, <uint16_t *>yp, n, c, s, groups, lay,
                                      <float *>wp, <float *>bp, eps, mp, vp, a)
        else:
            st = cnorm_group_norm_bf16(<uint16_t *>xp, <uint16_t *>yp, n, c, s, groups, lay,
                                       <float *>wp, <float *>bp, eps, mp, vp, a)
    return _check(st)


cdef object _stats_in(object v, size_t c, str name):
    """Running statistics the kernel reads: plain float64, or plain float32
    widened to float64 (exact)."""
    if v is not None and passes_as_is(v, cnp.NPY_FLOAT32, <Py_ssize_t>c):
        return _cast(<cnp.ndarray>v, cnp.NPY_FLOAT64)
    _need(v, cnp.NPY_FLOAT64, c, True, False, "batch_norm", name)
    return v


cdef inline bint _plain_stats(object v, cnp.npy_intp c):
    """A running statistic that _batch_norm takes as it is (float64 or float32)."""
    return v is not None and (_plain_vec(v, cnp.NPY_FLOAT64, c) or _plain_vec(v, cnp.NPY_FLOAT32, c))


cdef int _batch_norm(cnp.ndarray x, cnp.ndarray y, size_t n, size_t c, size_t s, bint nhwc,
                     object w, object b, double eps, object mean_in, object var_in,
                     object mean_out, object var_out, int act, object quant=None) except -1:
    cdef cnorm_quant qp
    cdef bint q
    cdef int t = _xyq(x, y, n * c * s, "batch_norm", quant, &qp, &q)
    cdef int wt = weight_typenum(t)
    _need(w, wt, c, True, False, "batch_norm", "weight")
    _need(b, wt, c, True, False, "batch_norm", "bias")
    # statistics in: float64, or float32 widened here (exactly, so the
    # bits do not depend on which of the two the caller had)
    mean_in, var_in = _stats_in(mean_in, c, "mean_in"), _stats_in(var_in, c, "var_in")
    _need(mean_out, cnp.NPY_FLOAT64, c, True, True, "batch_norm", "mean_out")
    _need(var_out, cnp.NPY_FLOAT64, c, True, True, "batch_norm", "var_out")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *wp = _ptr(w)
    cdef void *bp = _ptr(b)
    cdef double *mi = <double *>_ptr(mean_in)
    cdef double *vi = <double *>_ptr(var_in)
    cdef double *mo = <double *>_ptr(mean_out)
    cdef double *vo = <double *>_ptr(var_out)
    cdef cnorm_layout lay = CNORM_NHWC if nhwc else CNORM_NCHW
    cdef cnorm_activation a = <cnorm_activation>act
    cdef int st
    with nogil:
        if q:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_batch_norm_q8_f32(<float *>xp, yp, n, c, s, lay, <float *>wp, <float *>bp, eps, mi, vi,
                                             mo, vo, a, &qp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_batch_norm_q8_f64(<double *>xp, yp, n, c, s, lay, <double *>wp, <double *>bp, eps, mi,
                                             vi, mo, vo, a, &qp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_batch_norm_q8_f16(<uint16_t *>xp, yp, n, c, s, lay, <float *>wp, <float *>bp, eps, mi,
                                             vi, mo, vo, a, &qp)
            else:
                st = cnorm_batch_norm_q8_bf16(<uint16_t *>xp, yp, n, c, s, lay, <float *>wp, <float *>bp, eps, mi,
                                              vi, mo, vo, a, &qp)
        elif t == cnp.NPY_FLOAT32:
            st = cnorm_batch_norm_f32(<float *>xp, <float *>yp, n, c, s, lay, <float *>wp, <float *>bp,
                                      eps, mi, vi, mo, vo, a)
        elif t == cnp.NPY_FLOAT64:
            st = cnorm_batch_norm_f64(<double *>xp, <double *>yp, n, c, s, lay, <double *>wp,
                                      <double *>bp, eps, mi, vi, mo, vo, a)
        elif t == cnp.NPY_FLOAT16:
            st = cnorm_batch_norm_f16(<uint16_t *>xp, <uint16_t *>yp, n, c, s, lay, <float *>wp,
                                      <float *>bp, eps, mi, vi, mo, vo, a)
        else:
            st = cnorm_batch_norm_bf16(<uint16_t *>xp, <uint16_t *>yp, n, c, s, lay, <float *>wp,
                                       <float *>bp, eps, mi, vi, mo, vo, a)
    return _check(st)


cdef int _moments(cnp.ndarray x, size_t lead, size_t keep, size_t length, size_t inner, double ddof,
                  cnp.ndarray mean, cnp.ndarray var, bint partial=False) except -1:
    """x as (lead, keep, length, inner), reduced over lead and length:
    cnorm_moments_* (keep, length, inner) when lead == 1, else the split
    kernel cnorm_moments_split_*.  partial: the unfinished statistics of
    cnorm_moments_partial_* instead (var receives M2, ddof is unused), for
    Chan merges across chunks (cnorm.dask)."""
    cdef int t = storage(x.descr)
    if t < 0:
        raise TypeError(f"moments: x has no kernel storage type ({x.dtype})")
    _need(x, t, lead * keep * length * inner, False, False, "moments", "x")
    _need(mean, cnp.NPY_FLOAT64, keep * inner, False, True, "moments", "mean")
    _need(var, cnp.NPY_FLOAT64, keep * inner, False, True, "moments", "var")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef double *mp = <double *>cnp.PyArray_DATA(mean)
    cdef double *vp = <double *>cnp.PyArray_DATA(var)
    cdef int st
    with nogil:
        if partial:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_moments_partial_f32(<float *>xp, lead, keep, length, inner, mp, vp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_moments_partial_f64(<double *>xp, lead, keep, length, inner, mp, vp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_moments_partial_f16(<uint16_t *>xp, lead, keep, length, inner, mp, vp)
            else:
                st = cnorm_moments_partial_bf16(<uint16_t *>xp, lead, keep, length, inner, mp, vp)
        elif lead == 1:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_moments_f32(<float *>xp, keep, length, inner, ddof, mp, vp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_moments_f64(<double *>xp, keep, length, inner, ddof, mp, vp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_moments_f16(<uint16_t *>xp, keep, length, inner, ddof, mp, vp)
            else:
                st = cnorm_moments_bf16(<uint16_t *>xp, keep, length, inner, ddof, mp, vp)
        elif t == cnp.NPY_FLOAT32:
            st = cnorm_moments_split_f32(<float *>xp, lead, keep, length, inner, ddof, mp, vp)
        elif t == cnp.NPY_FLOAT64:
            st = cnorm_moments_split_f64(<double *>xp, lead, keep, length, inner, ddof, mp, vp)
        elif t == cnp.NPY_FLOAT16:
            st = cnorm_moments_split_f16(<uint16_t *>xp, lead, keep, length, inner, ddof, mp, vp)
        else:
            st = cnorm_moments_split_bf16(<uint16_t *>xp, lead, keep, length, inner, ddof, mp, vp)
    return _check(st)


cdef inline object _as_f64(object a):
    """A plain float32/float64 argument of fold_batch_norm in float64 (exact)."""
    if a is None or cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT64:
        return a
    return _cast(<cnp.ndarray>a, cnp.NPY_FLOAT64)


cdef tuple _fold_batch_norm(cnp.ndarray w, object b, size_t c_out, size_t per_out, object mean,
                            object var, object gamma, object beta, double eps):
    """Conv-BN folding, always in float64 (float32 arguments are widened
    here, exactly); returns float64 (weight of w's shape, bias)."""
    cdef int t = cnp.PyArray_TYPE(w)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"fold_batch_norm: conv_weight has dtype {w.dtype}, not float32/float64")
    _need(w, t, c_out * per_out, False, False, "fold_batch_norm", "conv_weight")
    _need(b, t, c_out, True, False, "fold_batch_norm", "conv_bias")
    _need(mean, t, c_out, False, False, "fold_batch_norm", "running_mean")
    _need(var, t, c_out, False, False, "fold_batch_norm", "running_var")
    _need(gamma, t, c_out, True, False, "fold_batch_norm", "weight")
    _need(beta, t, c_out, True, False, "fold_batch_norm", "bias")
    cdef cnp.npy_intp nb = c_out
    # the weight result has w's shape (flat or conv_weight's own)
    cdef cnp.ndarray w_out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(w), cnp.PyArray_DIMS(w), cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray b_out = cnp.PyArray_EMPTY(1, &nb, cnp.NPY_FLOAT64, 0)
    if c_out == 0:
        return w_out, b_out
    w, b, mean, var, gamma, beta = _as_f64(w), _as_f64(b), _as_f64(mean), _as_f64(var), _as_f64(gamma), _as_f64(beta)
    _check(cnorm_fold_batch_norm_f64(<double *>cnp.PyArray_DATA(w) if per_out else NULL,
                                     <double *>_ptr(b), c_out, per_out,
                                     <double *>_ptr(mean), <double *>_ptr(var),
                                     <double *>_ptr(gamma), <double *>_ptr(beta), eps,
                                     <double *>cnp.PyArray_DATA(w_out) if per_out else NULL,
                                     <double *>cnp.PyArray_DATA(b_out)))
    return w_out, b_out


# ---- backward passes (cnorm/_backward.py calls these with plain arguments) ---

cdef int _bwd_xy(cnp.ndarray dy, cnp.ndarray x, object dx, size_t total, str what) except -1:
    """x's storage type (checked), with dy (and dx unless None) of the same
    type and size."""
    cdef int t = storage(x.descr)
    if t < 0:
        raise TypeError(f"{what}: x has no kernel storage type ({x.dtype})")
    _need(x, t, total, False, False, what, "x")
    _need(dy, t, total, False, False, what, "dy")
    _need(dx, t, total, True, True, what, "dx")
    return t


cdef enum:
    _SAVED_STACK = 32   # saved statistics up to this size are widened on the C stack


cdef struct _Saved:
    # a saved statistic as the kernel reads it: float64 data (NULL: not
    # given), v's own or float32 widened into stack or heap (freed by
    # _saved_release)
    double *p
    double *heap
    double stack[_SAVED_STACK]


cdef int _saved_widen(_Saved *sv, object v, size_t n) except -1:
    cdef const float *src
    cdef size_t i
    if v is None:
        sv.p = NULL
    elif cnp.PyArray_TYPE(<cnp.ndarray>v) == cnp.NPY_FLOAT64:
        sv.p = <double *>cnp.PyArray_DATA(<cnp.ndarray>v)
    else:
        sv.p = sv.stack
        if n > _SAVED_STACK:
            sv.heap = <double *>PyMem_RawMalloc(n * sizeof(double))
            if sv.heap == NULL:
                raise MemoryError()
            sv.p = sv.heap
        src = <const float *>cnp.PyArray_DATA(<cnp.ndarray>v)
        for i in range(n):
            sv.p[i] = src[i]
    return 0


cdef inline void _saved_release(_Saved *sv) noexcept:
    PyMem_RawFree(sv.heap)
    sv.heap = NULL


cdef int _bwd_stats(object mean, object rstd, size_t n, str what, _Saved *ms, _Saved *rs) except -1:
    """The saved statistics (None, float64, or float32: widened here,
    exactly, without a NumPy array: the fast lane passes them as given)
    into ms/rs; the caller releases them (also when this raises)."""
    for v, name in ((mean, "mean"), (rstd, "rstd")):
        if not (v is None or passes_as_is(v, cnp.NPY_FLOAT32, <Py_ssize_t>n)):
            _need(v, cnp.NPY_FLOAT64, n, True, False, what, name)
    _saved_widen(ms, mean, n)
    _saved_widen(rs, rstd, n)
    return 0


cdef int _bwd_params(int wt, size_t n, object w, object b, object dw, object db, str what) except -1:
    _need(w, wt, n, True, False, what, "weight")
    _need(b, wt, n, True, False, what, "bias")
    _need(dw, wt, n, True, True, what, "dweight")
    _need(db, wt, n, True, True, what, "dbias")
    return 0


cdef int _layer_norm_backward(cnp.ndarray dy, cnp.ndarray x, object dx, size_t rows, size_t cols, object mean,
                              object rstd, object w, object b, double eps, int act, object dw,
                              object db) except -1:
    cdef int t = _bwd_xy(dy, x, dx, rows * cols, "layer_norm_backward")
    cdef _Saved ms, rs
    ms.heap = rs.heap = NULL
    _bwd_params(weight_typenum(t), cols, w, b, dw, db, "layer_norm_backward")
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *dxp = _ptr(dx)
    cdef double *mp
    cdef double *rp
    cdef void *wp = _ptr(w)
    cdef void *bp = _ptr(b)
    cdef void *dwp = _ptr(dw)
    cdef void *dbp = _ptr(db)
    cdef cnorm_activation a = <cnorm_activation>act
    cdef int st
    try:  # the saved statistics' widened copies are freed whatever happens
        _bwd_stats(mean, rstd, rows, "layer_norm_backward", &ms, &rs)
        mp, rp = ms.p, rs.p
        with nogil:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_layer_norm_backward_f32(<float *>dyp, <float *>xp, <float *>dxp, rows, cols, mp, rp,
                                                   <float *>wp, <float *>bp, eps, a, <float *>dwp, <float *>dbp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_layer_norm_backward_f64(<double *>dyp, <double *>xp, <double *>dxp, rows, cols, mp, rp,
                                                   <double *>wp, <double *>bp, eps, a, <double *>dwp, <double *>dbp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_layer_norm_backward_f16(<uint16_t *>dyp, <uint16_t *>xp, <uint16_t *>dxp, rows, cols, mp,
                                                   rp, <float *>wp, <float *>bp, eps, a, <float *>dwp, <float *>dbp)
            else:
                st = cnorm_layer_norm_backward_bf16(<uint16_t *>dyp, <uint16_t *>xp, <uint16_t *>dxp, rows, cols, mp,
                                                    rp, <float *>wp, <float *>bp, eps, a, <float *>dwp, <float *>dbp)
    finally:
        _saved_release(&ms)
        _saved_release(&rs)
    return _check(st)


cdef int _rms_norm_backward(cnp.ndarray dy, cnp.ndarray x, object dx, size_t rows, size_t cols, object rstd,
                            object w, double eps, object dw) except -1:
    cdef int t = _bwd_xy(dy, x, dx, rows * cols, "rms_norm_backward")
    cdef _Saved ms, rs
    ms.heap = rs.heap = NULL
    _bwd_params(weight_typenum(t), cols, w, None, dw, None, "rms_norm_backward")
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *dxp = _ptr(dx)
    cdef double *rp
    cdef void *wp = _ptr(w)
    cdef void *dwp = _ptr(dw)
    cdef int st
    try:  # the saved statistics' widened copies are freed whatever happens
        _bwd_stats(None, rstd, rows, "rms_norm_backward", &ms, &rs)
        rp = rs.p
        with nogil:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_rms_norm_backward_f32(<float *>dyp, <float *>xp, <float *>dxp, rows, cols, rp, <float *>wp,
                                                 eps, <float *>dwp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_rms_norm_backward_f64(<double *>dyp, <double *>xp, <double *>dxp, rows, cols, rp,
                                                 <double *>wp, eps, <double *>dwp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_rms_norm_backward_f16(<uint16_t *>dyp, <uint16_t *>xp, <uint16_t *>dxp, rows, cols, rp,
                                                 <float *>wp, eps, <float *>dwp)
            else:
                st = cnorm_rms_norm_backward_bf16(<uint16_t *>dyp, <uint16_t *>xp, <uint16_t *>dxp, rows, cols, rp,
                                                  <float *>wp, eps, <float *>dwp)
    finally:
        _saved_release(&ms)
        _saved_release(&rs)
    return _check(st)


cdef int _group_norm_backward(cnp.ndarray dy, cnp.ndarray x, object dx, size_t n, size_t c, size_t s,
                              size_t groups, bint nhwc, object mean, object rstd, object w, object b,
                              double eps, int act, object dw, object db) except -1:
    cdef int t = _bwd_xy(dy, x, dx, n * c * s, "group_norm_backward")
    if groups == 0:
        raise ValueError("group_norm_backward: groups must be >= 1")
    cdef _Saved ms, rs
    ms.heap = rs.heap = NULL
    _bwd_params(weight_typenum(t), c, w, b, dw, db, "group_norm_backward")
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *dxp = _ptr(dx)
    cdef double *mp
    cdef double *rp
    cdef void *wp = _ptr(w)
    cdef void *bp = _ptr(b)
    cdef void *dwp = _ptr(dw)
    cdef void *dbp = _ptr(db)
    cdef cnorm_layout lay = CNORM_NHWC if nhwc else CNORM_NCHW
    cdef cnorm_activation a = <cnorm_activation>act
    cdef int st
    try:  # the saved statistics' widened copies are freed whatever happens
        _bwd_stats(mean, rstd, n * groups, "group_norm_backward", &ms, &rs)
        mp, rp = ms.p, rs.p
        with nogil:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_group_norm_backward_f32(<float *>dyp, <float *>xp, <float *>dxp, n, c, s, groups, lay, mp,
                                                   rp, <float *>wp, <float *>bp, eps, a, <float *>dwp, <float *>dbp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_group_norm_backward_f64(<double *>dyp, <double *>xp, <double *>dxp, n, c, s, groups, lay,
                                                   mp, rp, <double *>wp, <double *>bp, eps, a, <double *>dwp,
                                                   <double *>dbp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_group_norm_backward_f16(<uint16_t *>dyp, <uint16_t *>xp, <uint16_t *>dxp, n, c, s, groups,
                                                   lay, mp, rp, <float *>wp, <float *>bp, eps, a, <float *>dwp,
                                                   <float *>dbp)
            else:
                st = cnorm_group_norm_backward_bf16(<uint16_t *>dyp, <uint16_t *>xp, <uint16_t *>dxp, n, c, s, groups,
                                                    lay, mp, rp, <float *>wp, <float *>bp, eps, a, <float *>dwp,
                                                    <float *>dbp)
    finally:
        _saved_release(&ms)
        _saved_release(&rs)
    return _check(st)


cdef int _batch_norm_backward(cnp.ndarray dy, cnp.ndarray x, object dx, size_t n, size_t c, size_t s, bint nhwc,
                              object mean, object rstd, object w, object b, double eps, bint training, int act,
                              object dw, object db) except -1:
    cdef int t = _bwd_xy(dy, x, dx, n * c * s, "batch_norm_backward")
    cdef _Saved ms, rs
    ms.heap = rs.heap = NULL
    _bwd_params(weight_typenum(t), c, w, b, dw, db, "batch_norm_backward")
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *dxp = _ptr(dx)
    cdef double *mp
    cdef double *rp
    cdef void *wp = _ptr(w)
    cdef void *bp = _ptr(b)
    cdef void *dwp = _ptr(dw)
    cdef void *dbp = _ptr(db)
    cdef cnorm_layout lay = CNORM_NHWC if nhwc else CNORM_NCHW
    cdef cnorm_activation a = <cnorm_activation>act
    cdef int tr = training
    cdef int st
    try:  # the saved statistics' widened copies are freed whatever happens
        _bwd_stats(mean, rstd, c, "batch_norm_backward", &ms, &rs)
        mp, rp = ms.p, rs.p
        with nogil:
            if t == cnp.NPY_FLOAT32:
                st = cnorm_batch_norm_backward_f32(<float *>dyp, <float *>xp, <float *>dxp, n, c, s, lay, mp, rp,
                                                   <float *>wp, <float *>bp, eps, tr, a, <float *>dwp, <float *>dbp)
            elif t == cnp.NPY_FLOAT64:
                st = cnorm_batch_norm_backward_f64(<double *>dyp, <double *>xp, <double *>dxp, n, c, s, lay, mp, rp,
                                                   <double *>wp, <double *>bp, eps, tr, a, <double *>dwp,
                                                   <double *>dbp)
            elif t == cnp.NPY_FLOAT16:
                st = cnorm_batch_norm_backward_f16(<uint16_t *>dyp, <uint16_t *>xp, <uint16_t *>dxp, n, c, s, lay,
                                                   mp, rp, <float *>wp, <float *>bp, eps, tr, a, <float *>dwp,
                                                   <float *>dbp)
            else:
                st = cnorm_batch_norm_backward_bf16(<uint16_t *>dyp, <uint16_t *>xp, <uint16_t *>dxp, n, c, s, lay,
                                                    mp, rp, <float *>wp, <float *>bp, eps, tr, a, <float *>dwp,
                                                    <float *>dbp)
    finally:
        _saved_release(&ms)
        _saved_release(&rs)
    return _check(st)


# the general path's entry points: the same functions, callable from Python

# (quant: None, or (scale, zero_point, unsigned) for int8/uint8 codes in y)

def layer_norm(cnp.ndarray x, cnp.ndarray y, size_t rows, size_t cols, w, b, double eps,
               mean=None, rstd=None, int act=0, quant=None):
    _layer_norm(x, y, rows, cols, w, b, eps, mean, rstd, act, quant)


def rms_norm(cnp.ndarray x, cnp.ndarray y, size_t rows, size_t cols, w, double eps, rstd=None, quant=None):
    _rms_norm(x, y, rows, cols, w, eps, rstd, quant)


def add_norm(cnp.ndarray x, cnp.ndarray r, size_t r_rows, skip, cnp.ndarray s, cnp.ndarray y, size_t rows,
             size_t cols, w, b, double eps, mean=None, rstd=None, int act=0, bint rms=False, quant=None):
    _add_norm(x, r, r_rows, skip, s, y, rows, cols, w, b, eps, mean, rstd, act, rms, quant)


def group_norm(cnp.ndarray x, cnp.ndarray y, size_t n, size_t c, size_t s, size_t groups, bint nhwc,
               w, b, double eps, mean=None, var=None, int act=0, quant=None):
    _group_norm(x, y, n, c, s, groups, nhwc, w, b, eps, mean, var, act, quant)


def batch_norm(cnp.ndarray x, cnp.ndarray y, size_t n, size_t c, size_t s, bint nhwc, w, b,
               double eps, mean_in=None, var_in=None, mean_out=None, var_out=None, int act=0, quant=None):
    _batch_norm(x, y, n, c, s, nhwc, w, b, eps, mean_in, var_in, mean_out, var_out, act, quant)


def moments(cnp.ndarray x, size_t lead, size_t keep, size_t length, size_t inner, double ddof,
            cnp.ndarray mean, cnp.ndarray var, bint partial=False):
    _moments(x, lead, keep, length, inner, ddof, mean, var, partial)


def fold_batch_norm(cnp.ndarray w, b, size_t c_out, size_t per_out, mean, var, gamma, beta,
                    double eps):
    return _fold_batch_norm(w, b, c_out, per_out, mean, var, gamma, beta, eps)


def layer_norm_backward(cnp.ndarray dy, cnp.ndarray x, dx, size_t rows, size_t cols, mean, rstd, w, b,
                        double eps, int act, dw, db):
    _layer_norm_backward(dy, x, dx, rows, cols, mean, rstd, w, b, eps, act, dw, db)


def rms_norm_backward(cnp.ndarray dy, cnp.ndarray x, dx, size_t rows, size_t cols, rstd, w, double eps, dw):
    _rms_norm_backward(dy, x, dx, rows, cols, rstd, w, eps, dw)


def group_norm_backward(cnp.ndarray dy, cnp.ndarray x, dx, size_t n, size_t c, size_t s, size_t groups,
                        bint nhwc, mean, rstd, w, b, double eps, int act, dw, db):
    _group_norm_backward(dy, x, dx, n, c, s, groups, nhwc, mean, rstd, w, b, eps, act, dw, db)


def batch_norm_backward(cnp.ndarray dy, cnp.ndarray x, dx, size_t n, size_t c, size_t s, bint nhwc, mean, rstd,
                        w, b, double eps, bint training, int act, dw, db):
    _batch_norm_backward(dy, x, dx, n, c, s, nhwc, mean, rstd, w, b, eps, training, act, dw, db)


def roofline(const float[::1] x, float[::1] y, float a, float b):
    """Benchmark helper: y = a*x + b, the memory roofline of a norm."""
    if x.shape[0] != y.shape[0]:
        raise ValueError("roofline: x and y differ in size")
    with nogil:
        cnorm_roofline_f32(&x[0], &y[0], <size_t>x.shape[0], a, b)


# ---- the fast lane: plain arguments straight to the kernel function ---------
#
# Each returns None as soon as an argument is not plain (then the general
# path runs, validates, raises or converts).  Checks that raise (eps,
# momentum, activation) are the rule functions above, so messages agree.

cdef inline int _aligned_x(object x):
    """x's storage type if x is an aligned ndarray of one (any strides),
    else -1."""
    if type(x) is not cnp.ndarray:
        return -1
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int t = storage(a.descr)
    return t if t >= 0 and cnp.PyArray_ISALIGNED(a) else -1


cdef inline int _plain_x(object x):
    """x's storage type if x passes as is (any shape), else -1."""
    cdef int t = _aligned_x(x)
    return t if t >= 0 and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x) else -1


cdef inline bint _plain_int(object v, long long *value) except -1:
    """Whether v is an exact Python int that fits a C long long (then
    stored in value).  Larger ints are not plain: the general path rejects
    them with the message that names the argument, so both paths agree
    (converting them here would raise a bare OverflowError)."""
    cdef int overflow = 0
    if type(v) is not int:
        return False
    value[0] = PyLong_AsLongLongAndOverflow(v, &overflow)
    return overflow == 0


cdef object _target(object out, cnp.ndarray x, int t):
    """The array the kernel writes: a new one like x, or out when it has
    x's shape and may be written directly; None otherwise."""
    cdef int nd = cnp.PyArray_NDIM(x)
    if out is None:
        return _empty(nd, cnp.PyArray_DIMS(x), t)
    if type(out) is not cnp.ndarray or cnp.PyArray_NDIM(<cnp.ndarray>out) != nd:
        return None
    for i in range(nd):
        if cnp.PyArray_DIM(<cnp.ndarray>out, i) != cnp.PyArray_DIM(x, i):
            return None
    return out if writes_directly(out, x) else None


cdef inline object _result_stats(cnp.ndarray v, int t):
    """float64 statistics in the result type t (as .astype(res))."""
    return v if t == cnp.NPY_FLOAT64 else _cast(v, t)


cdef cnp.ndarray _row_stats(cnp.ndarray x):
    """An uninitialized float64 array of the row variants' statistics
    shape, x.shape[:-1] + (1,) (the general path's stats_shape)."""
    cdef int nd = cnp.PyArray_NDIM(x)
    cdef cnp.npy_intp sdims[64]
    cdef int i
    for i in range(nd - 1):
        sdims[i] = cnp.PyArray_DIM(x, i)
    sdims[nd - 1] = 1
    return cnp.PyArray_EMPTY(nd, sdims, cnp.NPY_FLOAT64, 0)


def layer_norm_fast(object x, object normalized_shape, object weight, object bias, object eps,
                    object out, object activation, object return_stats):
    """layer_norm over the last dim (an int normalized_shape, a float eps)."""
    cdef int t = _plain_x(x)
    cdef long long ns = 0
    if t < 0 or not _plain_int(normalized_shape, &ns) or type(eps) is not float:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(a)
    if nd == 0:
        return None
    cdef cnp.npy_intp k = cnp.PyArray_DIM(a, nd - 1)
    cdef int wt = weight_typenum(t)
    if k <= 0 or ns != k or not (_plain_vec(weight, wt, k) and _plain_vec(bias, wt, k)):
        return None
    cdef double e = check_eps(eps)
    cdef int act = activation_code(activation)
    y = _target(out, a, t)
    if y is None:
        return None
    weight, bias = unaliased(weight, y), unaliased(bias, y)
    cdef size_t rows = <size_t>(cnp.PyArray_SIZE(a) // k)
    cdef object mean = None, rstd = None
    if return_stats:
        mean, rstd = _row_stats(a), _row_stats(a)
    if rows:
        _layer_norm(a, y, rows, <size_t>k, weight, bias, e, mean, rstd, act)
    if not return_stats:
        return y
    # saved statistics: float32 for float32/half input, float64 for float64
    # (DESIGN.md 3.1; the general path's stats_dtype is this same rule)
    return y, _result_stats(mean, wt), _result_stats(rstd, wt)


def rms_norm_fast(object x, object normalized_shape, object weight, object eps, object out,
                  object return_stats):
    """rms_norm over the last dim (an int normalized_shape, a float or None eps)."""
    cdef int t = _plain_x(x)
    cdef long long ns = 0
    if t < 0 or not _plain_int(normalized_shape, &ns) or (eps is not None and type(eps) is not float):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(a)
    if nd == 0:
        return None
    cdef cnp.npy_intp k = cnp.PyArray_DIM(a, nd - 1)
    if k <= 0 or ns != k or not _plain_vec(weight, weight_typenum(t), k):
        return None
    cdef double e = default_eps(a.descr) if eps is None else check_eps(eps)
    y = _target(out, a, t)
    if y is None:
        return None
    weight = unaliased(weight, y)
    cdef size_t rows = <size_t>(cnp.PyArray_SIZE(a) // k)
    cdef object rstd = _row_stats(a) if return_stats else None
    if rows:
        _rms_norm(a, y, rows, <size_t>k, weight, e, rstd)
    if not return_stats:
        return y
    return y, _result_stats(rstd, weight_typenum(t))


def add_norm_fast(object x, object residual, object normalized_shape, object weight, object bias, object eps,
                  object skip_bias, object out, object sum_out, object activation, bint rms):
    """add_layer_norm (rms False) / add_rms_norm over the last dim, residual
    of x's shape and type; anything else (broadcast residuals, conversions,
    every error) is the general path's (cnorm/_fused.py)."""
    cdef int t = _plain_x(x)
    cdef long long ns = 0
    if t < 0 or _plain_x(residual) != t or not _plain_int(normalized_shape, &ns):
        return None
    if not ((rms and eps is None) or type(eps) is float):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef cnp.ndarray r = <cnp.ndarray>residual
    cdef int nd = cnp.PyArray_NDIM(a)
    if nd == 0 or cnp.PyArray_NDIM(r) != nd:
        return None
    for i in range(nd):
        if cnp.PyArray_DIM(r, i) != cnp.PyArray_DIM(a, i):
            return None
    cdef cnp.npy_intp k = cnp.PyArray_DIM(a, nd - 1)
    cdef int wt = weight_typenum(t)
    if k <= 0 or ns != k or not (_plain_vec(weight, wt, k) and _plain_vec(bias, wt, k) and _plain_vec(skip_bias, wt, k)):
        return None
    cdef int act = activation_code(activation)
    cdef double e = default_eps(a.descr) if eps is None else check_eps(eps)
    if out is not None and sum_out is not None and type(out) is cnp.ndarray and type(sum_out) is cnp.ndarray \
            and _overlap(<cnp.ndarray>out, <cnp.ndarray>sum_out):
        return None
    sm = _target(sum_out, a, t)
    y = _target(out, a, t)
    if sm is None or y is None or not (writes_directly(sm, r) and writes_directly(y, r)):
        return None
    weight, bias, skip_bias = unaliased(unaliased(weight, y), sm), unaliased(unaliased(bias, y), sm), \
        unaliased(unaliased(skip_bias, y), sm)
    cdef size_t rows = <size_t>(cnp.PyArray_SIZE(a) // k)
    if rows:
        _add_norm(a, r, rows, skip_bias, sm, y, rows, <size_t>k, weight, bias, e, None, None, act, rms)
    return y, sm


# Channel ops for channel_norm_fast and channel_backward_fast
cdef enum:
    _BN_EVAL = 0    # batch norm with running stats (inference); backward: training=False
    _BN_BATCH = 1   # batch norm with batch statistics, nothing to update; backward: training=True
    _GN = 2         # group norm
    _IN = 3         # instance norm with input statistics, nothing to update

CHANNEL_BN_EVAL, CHANNEL_BN_BATCH, CHANNEL_GN, CHANNEL_IN = _BN_EVAL, _BN_BATCH, _GN, _IN


cdef struct _ChannelForm:
    # x as (n, c, s) in the kernel form channel_layout chose; b, ax: its
    # batch and channel axes
    cnp.npy_intp n, c, s
    bint nhwc
    int b, ax


cdef bint _channel_form(int op, cnp.ndarray a, object axis, _ChannelForm *f) except -1:
    """Whether an aligned x's memory already is the kernel form of channel
    op `op` (axis an int in range, not the batch axis for group/instance
    norm, no layout copy, not empty); then its (n, c, s) and layout in f."""
    cdef long long ax = 0
    cdef int nd = cnp.PyArray_NDIM(a)
    if not _plain_int(axis, &ax) or nd < 2 or cnp.PyArray_SIZE(a) == 0:
        return False
    if ax < -nd or ax >= nd:
        return False
    if ax < 0:
        ax += nd
    if ax == 0 and op >= _GN:
        return False
    cdef int bx = 1 if ax == 0 else 0
    cdef int layout = channel_layout(a, bx, ax, op < _GN)
    if layout & LAYOUT_COPY:
        return False
    f.c = cnp.PyArray_DIM(a, ax)
    f.n = cnp.PyArray_DIM(a, bx)
    f.s = cnp.PyArray_SIZE(a) // (f.n * f.c)
    f.nhwc = layout == LAYOUT_NHWC
    f.b, f.ax = bx, ax
    return True


cdef tuple _form_order(cnp.ndarray a, _ChannelForm *f):
    """x's axes in the order of its kernel form (ChannelForm.order):
    (b, ax, *spatial), or (b, *spatial, ax) for NHWC."""
    cdef int nd = cnp.PyArray_NDIM(a), i
    spatial = [i for i in range(nd) if i != f.b and i != f.ax]
    return tuple([f.b] + spatial + [f.ax] if f.nhwc else [f.b, f.ax] + spatial)


cdef tuple _inverse(tuple order):
    cdef list back = [0] * len(order)
    cdef int i
    for i in range(len(order)):
        back[<int>order[i]] = i
    return tuple(back)


cdef object _form_view(object v, int nd, tuple order):
    """v (grad_out or out) as a view in the kernel form's axis order, or
    None when it is not an ndarray of nd dims (the general path decides)."""
    if type(v) is not cnp.ndarray or cnp.PyArray_NDIM(<cnp.ndarray>v) != nd:
        return None
    return (<cnp.ndarray>v).transpose(order)


cdef tuple _form_views(cnp.ndarray a, _ChannelForm *f, object dy, object out):
    """For an x whose memory is its kernel form with x's axes in another
    order (a channels_last tensor seen as NCHW): x, dy (grad_out, or None)
    and out as views in the kernel form's order, and the order back to
    x's.  The kernel runs on those views; its result's view back keeps x's
    memory order."""
    order = _form_order(a, f)
    cdef int nd = cnp.PyArray_NDIM(a)
    return a.transpose(order), _form_view(dy, nd, order), _form_view(out, nd, order), _inverse(order)


cdef cnp.ndarray _stats_array(cnp.npy_intp n, cnp.npy_intp m):
    """An uninitialized float64 statistics array: (m,) when n < 0, else (n, m)."""
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = n, m
    if n < 0:
        return cnp.PyArray_EMPTY(1, &dims[1], cnp.NPY_FLOAT64, 0)
    return cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT64, 0)


def channel_norm_fast(int op, object x, object axis, object groups, object weight, object bias,
                      object running_mean, object running_var, object eps, object momentum,
                      object out, object activation, object return_stats=False):
    """batch/instance/group norm on an x whose memory already is a kernel
    form (the layout rule says no copy), int axis/groups, float
    eps/momentum."""
    cdef int t = _aligned_x(x)
    if t < 0 or type(eps) is not float or type(momentum) is not float:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef _ChannelForm f
    if not _channel_form(op, a, axis, &f):
        return None
    cdef object back = None, given = out
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        a, _, out, back = _form_views(a, &f, None, out)
        if given is not None and out is None:
            return None
    cdef cnp.npy_intp n = f.n, c = f.c, s = f.s
    cdef int wt = weight_typenum(t)
    if not (_plain_vec(weight, wt, c) and _plain_vec(bias, wt, c)):
        return None
    cdef long long g = c
    if op == _BN_EVAL:
        if not (_plain_stats(running_mean, c) and _plain_stats(running_var, c)):
            return None
    elif op == _BN_BATCH:
        if n * s < 2 or (running_mean is None) != (running_var is None):
            return None
        # running stats updated in place: float32/float64 arrays the kernel's
        # statistics can be written into as they are
        if running_mean is not None and not (_updatable(running_mean, c) and _updatable(running_var, c)):
            return None
    elif op == _IN:
        if s < 2:
            return None
    else:
        if not _plain_int(groups, &g) or g < 1 or c % g:
            return None
    cdef double e = check_eps(eps)
    check_momentum(momentum)
    cdef int act = activation_code(activation)
    y = _target(out, a, t)
    if y is None:
        return None
    weight, bias = unaliased(weight, y), unaliased(bias, y)
    cdef object mean = None, var = None, used = None
    if op >= _GN:
        if return_stats:
            mean, var = _stats_array(n, g), _stats_array(n, g)
        _group_norm(a, y, n, c, s, g, f.nhwc, weight, bias, e, mean, var, act)
    else:
        if op == _BN_BATCH and (return_stats or running_mean is not None):
            mean, var = _stats_array(-1, c), _stats_array(-1, c)
        elif return_stats:
            # the statistics used: the running ones, read before the kernel
            # writes y (which they may share memory with)
            # (a new array: a cast of float32 or float64 to wt is exact or
            # rounds once, as the general path's widening then .astype)
            used = (_cast(<cnp.ndarray>running_mean, wt),
                    _result_stats(rstd_of(running_var, e, True), wt))
        if op == _BN_BATCH:
            _batch_norm(a, y, n, c, s, f.nhwc, weight, bias, e, None, None, mean, var, act)
            if running_mean is not None:
                update_running(running_mean, momentum, mean)
                update_running(running_var, momentum, var, <double>(n * s) / <double>(n * s - 1))
        else:
            _batch_norm(a, y, n, c, s, f.nhwc, weight, bias, e, unaliased(running_mean, y),
                        unaliased(running_var, y), mean, var, act)
    if back is not None:
        y = (<cnp.ndarray>y).transpose(back) if given is None else given
    if not return_stats:
        return y
    if used is not None:
        return (y,) + used
    return y, _result_stats(mean, wt), _result_stats(rstd_of(var, e), wt)


# ---- the backward's fast lane ---------------------------------------------------
#
# The common call of a *_backward function: grad_out and x plain, of one
# storage type and shape (so grad_out is in x's kernel form), saved
# statistics None or plain float32/float64 of exactly the return_stats
# shape (the kernel function widens float32 itself), plain weight/bias, needs a tuple of bools, eps a float, out None
# or an array the kernel may write directly (for x and for grad_out).
# Returns the gradients (x, weight, bias) as a `grads` (cnorm.Grads, a
# tuple subclass), or None.

cdef inline bint _plain_dy(object dy, cnp.ndarray x, int t):
    """grad_out passes as is, of x's storage type and shape."""
    if _plain_x(dy) != t:
        return False
    cdef cnp.ndarray d = <cnp.ndarray>dy
    return cnp.PyArray_NDIM(d) == cnp.PyArray_NDIM(x) and cnp.PyArray_CompareLists(
        cnp.PyArray_DIMS(d), cnp.PyArray_DIMS(x), cnp.PyArray_NDIM(x))


cdef inline bint _plain_needs(object needs, Py_ssize_t k, bint *need):
    """needs as a tuple of k Python bools (into need[0..2]; need[2] False
    when k == 2)."""
    if type(needs) is not tuple or len(<tuple>needs) != k:
        return False
    cdef Py_ssize_t i
    need[2] = False
    for i in range(k):
        v = (<tuple>needs)[i]
        if type(v) is not bool:
            return False
        need[i] = v is True
    return True


cdef bint _plain_stat(object v, int nd, cnp.npy_intp *dims):
    """A saved statistic that passes as is (float32 or float64) with
    exactly the shape dims[:nd]."""
    if type(v) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>v
    cdef int t = cnp.PyArray_TYPE(a)
    return ((t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64) and passes_as_is(a, t, -1)
            and cnp.PyArray_NDIM(a) == nd and cnp.PyArray_CompareLists(cnp.PyArray_DIMS(a), dims, nd))


cdef inline bint _plain_saved(object mean, object rstd, int nd, cnp.npy_intp *dims):
    """Both None (recomputed), or both plain statistics of that shape."""
    if mean is None and rstd is None:
        return True
    return _plain_stat(mean, nd, dims) and _plain_stat(rstd, nd, dims)


cdef object _grad_x(object out, bint need_x, cnp.ndarray x, cnp.ndarray dy, int t, bint *plain):
    """The array grad_x is written to (None if not asked for); plain[0]
    False when the general path must decide (out it cannot write directly,
    out without grad_x)."""
    plain[0] = True
    if not need_x:
        plain[0] = out is None
        return None
    dx = _target(out, x, t)
    if dx is None or not (out is None or writes_directly(out, dy)):
        plain[0] = False
        return None
    return dx


cdef inline object _grad_param(bint need, cnp.npy_intp n, int wt):
    """A parameter gradient's array (zeros, as the general path's), or None."""
    return cnp.PyArray_ZEROS(1, &n, wt, 0) if need else None


def layer_norm_backward_fast(type grads, object grad_out, object x, object normalized_shape, object mean, object rstd,
                             object weight, object bias, object eps, object activation, object needs,
                             object out):
    """layer_norm_backward over the last dim (an int normalized_shape)."""
    cdef int t = _plain_x(x)
    cdef long long ns = 0
    cdef bint need[3]
    cdef bint ok
    if t < 0 or type(eps) is not float or not _plain_int(normalized_shape, &ns) or not _plain_needs(needs, 3, need):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(a)
    if nd == 0 or cnp.PyArray_SIZE(a) == 0 or not _plain_dy(grad_out, a, t):
        return None
    cdef cnp.ndarray dy = <cnp.ndarray>grad_out
    cdef cnp.npy_intp k = cnp.PyArray_DIM(a, nd - 1)
    cdef int wt = weight_typenum(t)
    if ns != k or not (_plain_vec(weight, wt, k) and _plain_vec(bias, wt, k)):
        return None
    cdef cnp.npy_intp sdims[64]
    cdef int i
    for i in range(nd - 1):
        sdims[i] = cnp.PyArray_DIM(a, i)
    sdims[nd - 1] = 1
    if not _plain_saved(mean, rstd, nd, sdims):
        return None
    cdef double e = check_eps(eps)
    cdef int act = activation_code(activation)
    dx = _grad_x(out, need[0], a, dy, t, &ok)
    if not ok:
        return None
    dw, db = _grad_param(need[1] and weight is not None, k, wt), _grad_param(need[2], k, wt)
    if dx is not None or dw is not None or db is not None:
        if dx is not None:  # inputs the kernel reads while writing dx
            weight, bias = unaliased(weight, dx), unaliased(bias, dx)
            mean, rstd = unaliased(mean, dx), unaliased(rstd, dx)
        _layer_norm_backward(dy, a, dx, <size_t>(cnp.PyArray_SIZE(a) // k), <size_t>k, mean, rstd, weight, bias,
                             e, act, dw, db)
    return tuple.__new__(grads, (dx, dw, db))


def rms_norm_backward_fast(type grads, object grad_out, object x, object normalized_shape, object rstd, object weight,
                           object eps, object needs, object out):
    """rms_norm_backward over the last dim (an int normalized_shape, a float or None eps)."""
    cdef int t = _plain_x(x)
    cdef long long ns = 0
    cdef bint need[3]
    cdef bint ok
    if (t < 0 or (eps is not None and type(eps) is not float) or not _plain_int(normalized_shape, &ns)
            or not _plain_needs(needs, 2, need)):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(a)
    if nd == 0 or cnp.PyArray_SIZE(a) == 0 or not _plain_dy(grad_out, a, t):
        return None
    cdef cnp.ndarray dy = <cnp.ndarray>grad_out
    cdef cnp.npy_intp k = cnp.PyArray_DIM(a, nd - 1)
    cdef int wt = weight_typenum(t)
    if ns != k or not _plain_vec(weight, wt, k):
        return None
    cdef cnp.npy_intp sdims[64]
    cdef int i
    for i in range(nd - 1):
        sdims[i] = cnp.PyArray_DIM(a, i)
    sdims[nd - 1] = 1
    if rstd is not None and not _plain_stat(rstd, nd, sdims):
        return None
    cdef double e = default_eps(a.descr) if eps is None else check_eps(eps)
    dx = _grad_x(out, need[0], a, dy, t, &ok)
    if not ok:
        return None
    dw = _grad_param(need[1] and weight is not None, k, wt)
    if dx is not None or dw is not None:
        if dx is not None:
            weight, rstd = unaliased(weight, dx), unaliased(rstd, dx)
        _rms_norm_backward(dy, a, dx, <size_t>(cnp.PyArray_SIZE(a) // k), <size_t>k, rstd, weight, e, dw)
    return tuple.__new__(grads, (dx, dw, None))


def channel_backward_fast(type grads, int op, object grad_out, object x, object axis, object groups, object mean,
                          object rstd, object weight, object bias, object eps, object activation,
                          object needs, object out):
    """group/instance/batch norm backward (op: CHANNEL_GN, CHANNEL_IN,
    CHANNEL_BN_BATCH for training=True, CHANNEL_BN_EVAL for False) on an x
    whose memory already is a kernel form, int axis/groups."""
    cdef int t = _aligned_x(x)
    cdef bint need[3]
    cdef bint ok
    if t < 0 or type(eps) is not float or not _plain_needs(needs, 3, need):
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef _ChannelForm f
    if not _channel_form(op, a, axis, &f):
        return None
    cdef object back = None, given = out
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        a, grad_out, out, back = _form_views(a, &f, grad_out, out)
        if given is not None and out is None:
            return None
    if not _plain_dy(grad_out, a, t):
        return None
    cdef cnp.ndarray dy = <cnp.ndarray>grad_out
    cdef cnp.npy_intp n = f.n, c = f.c, s = f.s
    cdef int wt = weight_typenum(t)
    if not (_plain_vec(weight, wt, c) and _plain_vec(bias, wt, c)):
        return None
    cdef long long g = c
    cdef cnp.npy_intp sdims[2]
    sdims[0], sdims[1] = n, c
    if op == _GN:
        if not _plain_int(groups, &g) or g < 1 or c % g:
            return None
        sdims[1] = g
    elif op == _IN:
        if s < 2:
            return None
    elif op == _BN_BATCH:
        if n * s < 2:
            return None
    elif mean is None:  # _BN_EVAL: the statistics are required
        return None
    if op >= _GN:
        if not _plain_saved(mean, rstd, 2, sdims):
            return None
    elif not _plain_saved(mean, rstd, 1, &sdims[1]):
        return None
    cdef double e = check_eps(eps)
    cdef int act = activation_code(activation)
    dx = _grad_x(out, need[0], a, dy, t, &ok)
    if not ok:
        return None
    dw, db = _grad_param(need[1] and weight is not None, c, wt), _grad_param(need[2], c, wt)
    if dx is not None or dw is not None or db is not None:
        if dx is not None:  # inputs the kernel reads while writing dx
            weight, bias = unaliased(weight, dx), unaliased(bias, dx)
            mean, rstd = unaliased(mean, dx), unaliased(rstd, dx)
        if op >= _GN:
            _group_norm_backward(dy, a, dx, n, c, s, g, f.nhwc, mean, rstd, weight, bias, e, act, dw, db)
        else:
            _batch_norm_backward(dy, a, dx, n, c, s, f.nhwc, mean, rstd, weight, bias, e, op == _BN_BATCH, act,
                                 dw, db)
    if back is not None and dx is not None:
        dx = (<cnp.ndarray>dx).transpose(back) if given is None else given
    return tuple.__new__(grads, (dx, dw, db))


def moments_fast(object x, object axis, object ddof, object keepdims):
    """moments over all axes (axis None) or one int axis, int/float ddof."""
    cdef int t = _plain_x(x)
    cdef long long ax = 0, ddof_int = 0
    cdef double dd
    if t < 0 or type(keepdims) is not bool:
        return None
    if type(ddof) is float:
        dd = PyFloat_AS_DOUBLE(ddof)
        if not isfinite(dd):
            return None
    elif _plain_int(ddof, &ddof_int):
        dd = <double>ddof_int
    else:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(a)
    cdef bint kd = keepdims
    cdef cnp.npy_intp dims[64]
    cdef int i, j = 0, odims
    cdef size_t keep = 1, length = 1, inner = 1
    if axis is None:
        length = cnp.PyArray_SIZE(a)
        for i in range(nd):
            dims[i] = 1
        odims = nd if kd else 0
    elif _plain_int(axis, &ax):
        if ax < -nd or ax >= nd:
            return None
        if ax < 0:
            ax += nd
        for i in range(nd):
            if i < ax:
                keep *= cnp.PyArray_DIM(a, i)
            elif i > ax:
                inner *= cnp.PyArray_DIM(a, i)
            if i != ax:
                dims[j] = cnp.PyArray_DIM(a, i)
                j += 1
            elif kd:
                dims[j] = 1
                j += 1
        length = cnp.PyArray_DIM(a, ax)
        odims = j
    else:
        return None
    if length == 0 or keep * inner == 0:
        return None
    warn_dof(<double>length, dd)
    cdef cnp.ndarray mean = cnp.PyArray_EMPTY(odims, dims, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray var = cnp.PyArray_EMPTY(odims, dims, cnp.NPY_FLOAT64, 0)
    _moments(a, 1, keep, length, inner, dd, mean, var)
    if odims == 0:  # scalars, as NumPy's reductions over every axis
        return _result_stats(mean, t)[()], _result_stats(var, t)[()]
    return _result_stats(mean, t), _result_stats(var, t)


def fold_batch_norm_fast(object conv_weight, object conv_bias, object running_mean,
                         object running_var, object weight, object bias, object eps):
    """fold_batch_norm with every array of conv_weight's dtype (float32 or
    float64), 1-D of length C_out, and a float eps."""
    if type(conv_weight) is not cnp.ndarray or type(eps) is not float:
        return None
    cdef cnp.ndarray cw = <cnp.ndarray>conv_weight
    cdef int t = cnp.PyArray_TYPE(cw)
    if ((t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or cnp.PyArray_NDIM(cw) < 1
            or not passes_as_is(cw, t, -1)):
        return None
    cdef cnp.npy_intp c = cnp.PyArray_DIM(cw, 0)
    if c == 0 or running_mean is None or running_var is None or not (
            _plain_vec(conv_bias, t, c) and _plain_vec(running_mean, t, c) and _plain_vec(running_var, t, c)
            and _plain_vec(weight, t, c) and _plain_vec(bias, t, c)):
        return None
    cdef double e = check_eps(eps)
    w_out, b_out = _fold_batch_norm(cw, conv_bias, c, cnp.PyArray_SIZE(cw) // c, running_mean,
                                    running_var, weight, bias, e)
    return _result_stats(w_out, t), _result_stats(b_out, t)


# ---- configuration -------------------------------------------------------

def isa_available(int isa):
    return bool(cnorm_isa_available(<cnorm_isa>isa))

def get_isa():
    return <int>cnorm_get_isa()

def set_isa(int isa):
    _check(cnorm_set_isa(<cnorm_isa>isa))

def get_num_threads():
    return cnorm_get_num_threads()

def set_num_threads(int n):
    _check(cnorm_set_num_threads(n))

def has_openmp():
    return bool(cnorm_has_openmp())

def compiler():
    return cnorm_compiler().decode()
