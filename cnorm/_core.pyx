# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin binding of the C engine: memoryviews in, pointers to C, GIL released.

Arguments are validated and laid out by the Python layer (cnorm/_norms.py);
here arrays are flat, C-contiguous, of the kernel's storage type, and
non-empty.  Optional arrays may be None.
"""

cimport numpy as cnp
from cpython.float cimport PyFloat_AS_DOUBLE
from libc.math cimport isfinite

cnp.import_array()

import numpy as np

cdef object _F32 = np.dtype(np.float32)

ctypedef fused real:
    float
    double

cdef extern from "cnorm/cnorm.h" nogil:
    ctypedef enum cnorm_layout:
        CNORM_NCHW
        CNORM_NHWC
    ctypedef enum cnorm_activation:
        pass
    int CNORM_ERR_ALLOC
    int cnorm_layer_norm_f32(const float *x, float *y, size_t rows, size_t cols, const float *w,
                              const float *b, double eps, double *mean_out, double *rstd_out,
                              cnorm_activation act)
    int cnorm_rms_norm_f32(const float *x, float *y, size_t rows, size_t cols, const float *w,
                            double eps, double *rstd_out)
    int cnorm_group_norm_f32(const float *x, float *y, size_t n, size_t c, size_t s, size_t groups,
                              cnorm_layout layout, const float *w, const float *b, double eps,
                              double *mean_out, double *var_out, cnorm_activation act)
    int cnorm_batch_norm_f32(const float *x, float *y, size_t n, size_t c, size_t s,
                              cnorm_layout layout, const float *w, const float *b, double eps,
                              const double *mean_in, const double *var_in, double *mean_out,
                              double *var_out, cnorm_activation act)
    int cnorm_moments_f32(const float *x, size_t outer, size_t length, size_t inner,
                           double ddof, double *mean, double *var)
    int cnorm_layer_norm_f64(const double *x, double *y, size_t rows, size_t cols, const double *w,
                              const double *b, double eps, double *mean_out, double *rstd_out,
                              cnorm_activation act)
    int cnorm_rms_norm_f64(const double *x, double *y, size_t rows, size_t cols, const double *w,
                            double eps, double *rstd_out)
    int cnorm_group_norm_f64(const double *x, double *y, size_t n, size_t c, size_t s, size_t groups,
                              cnorm_layout layout, const double *w, const double *b, double eps,
                              double *mean_out, double *var_out, cnorm_activation act)
    int cnorm_batch_norm_f64(const double *x, double *y, size_t n, size_t c, size_t s,
                              cnorm_layout layout, const double *w, const double *b, double eps,
                              const double *mean_in, const double *var_in, double *mean_out,
                              double *var_out, cnorm_activation act)
    int cnorm_moments_f64(const double *x, size_t outer, size_t length, size_t inner,
                           double ddof, double *mean, double *var)
    int cnorm_layer_norm_f16(const unsigned short *x, unsigned short *y, size_t rows, size_t cols, const float *w,
                              const float *b, double eps, double *mean_out, double *rstd_out,
                              cnorm_activation act)
    int cnorm_rms_norm_f16(const unsigned short *x, unsigned short *y, size_t rows, size_t cols, const float *w,
                            double eps, double *rstd_out)
    int cnorm_group_norm_f16(const unsigned short *x, unsigned short *y, size_t n, size_t c, size_t s, size_t groups,
                              cnorm_layout layout, const float *w, const float *b, double eps,
                              double *mean_out, double *var_out, cnorm_activation act)
    int cnorm_batch_norm_f16(const unsigned short *x, unsigned short *y, size_t n, size_t c, size_t s,
                              cnorm_layout layout, const float *w, const float *b, double eps,
                              const double *mean_in, const double *var_in, double *mean_out,
                              double *var_out, cnorm_activation act)
    int cnorm_moments_f16(const unsigned short *x, size_t outer, size_t length, size_t inner,
                           double ddof, double *mean, double *var)
    int cnorm_layer_norm_bf16(const unsigned short *x, unsigned short *y, size_t rows, size_t cols, const float *w,
                              const float *b, double eps, double *mean_out, double *rstd_out,
                              cnorm_activation act)
    int cnorm_rms_norm_bf16(const unsigned short *x, unsigned short *y, size_t rows, size_t cols, const float *w,
                            double eps, double *rstd_out)
    int cnorm_group_norm_bf16(const unsigned short *x, unsigned short *y, size_t n, size_t c, size_t s, size_t groups,
                              cnorm_layout layout, const float *w, const float *b, double eps,
                              double *mean_out, double *var_out, cnorm_activation act)
    int cnorm_batch_norm_bf16(const unsigned short *x, unsigned short *y, size_t n, size_t c, size_t s,
                              cnorm_layout layout, const float *w, const float *b, double eps,
                              const double *mean_in, const double *var_in, double *mean_out,
                              double *var_out, cnorm_activation act)
    int cnorm_moments_bf16(const unsigned short *x, size_t outer, size_t length, size_t inner,
                           double ddof, double *mean, double *var)
    int cnorm_fold_batch_norm_f64(const double *conv_weight, const double *conv_bias, size_t c_out,
                                  size_t per_out, const double *running_mean,
                                  const double *running_var, const double *gamma,
                                  const double *beta, double eps, double *weight_out,
                                  double *bias_out)
    const char *cnorm_status_string(int status)
    int cnorm_get_isa()
    int cnorm_set_isa(int isa)
    int cnorm_isa_available(int isa)
    const char *cnorm_isa_name(int isa)
    int cnorm_set_num_threads(int n)
    int cnorm_get_num_threads()
    int cnorm_has_openmp()
    const char *cnorm_compiler()

cdef extern from "roofline.h" nogil:
    void cnorm_roofline_f32(const float *x, float *y, size_t n, float a, float b)


cdef extern from "outbuf.h":
    ctypedef struct PyDataMem_Handler:
        pass
    PyDataMem_Handler cnorm_outbuf_handler
    size_t CNORM_OUTBUF_MIN
    void cnorm_outbuf_release() nogil
    size_t cnorm_outbuf_held() nogil

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)

from cpython.pycapsule cimport PyCapsule_New

cdef object _outbuf_capsule = PyCapsule_New(<void *>&cnorm_outbuf_handler, "mem_handler", NULL)


cdef cnp.ndarray _empty(int nd, cnp.npy_intp *dims, int typenum):
    """An uninitialized output array; large ones come from the output-buffer
    cache (_outbuf.h) so that they are not page-faulted in afresh."""
    cdef cnp.ndarray y
    cdef size_t nbytes = <size_t>cnp.PyArray_MultiplyList(dims, nd) * (4 if typenum == cnp.NPY_FLOAT32 else 8)
    if nbytes < CNORM_OUTBUF_MIN or (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64):
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    old = PyDataMem_SetHandler(_outbuf_capsule)
    try:
        y = cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    finally:
        PyDataMem_SetHandler(old)
    return y


def empty(Py_ssize_t n, dtype):
    """Flat uninitialized output array of n elements of dtype; large ones
    come from the output-buffer cache."""
    dtype = np.dtype(dtype)
    if <size_t>(n * dtype.itemsize) < CNORM_OUTBUF_MIN:
        return np.empty(n, dtype)
    old = PyDataMem_SetHandler(_outbuf_capsule)
    try:
        return np.empty(n, dtype)
    finally:
        PyDataMem_SetHandler(old)


def release_memory():
    """Free the cached output buffers; returns the bytes released."""
    cdef size_t held = cnorm_outbuf_held()
    cnorm_outbuf_release()
    return held


cdef int _check(int status) except -1:
    if status == 0:
        return 0
    msg = cnorm_status_string(status).decode()
    if status == CNORM_ERR_ALLOC:
        raise MemoryError(msg)
    raise ValueError(msg)


cdef int _sizes(Py_ssize_t nx, Py_ssize_t ny, size_t total, Py_ssize_t nparam, size_t nexpect,
                 const char *what) except -1:
    """Last line of defence: the Python layer validates, but the kernels
    trust these sizes, so a mismatch must never reach C."""
    if <size_t>nx != total or <size_t>ny != total or (nparam >= 0 and <size_t>nparam != nexpect):
        raise ValueError(f"{what.decode()}: array sizes do not match the given dimensions")
    return 0


cdef inline Py_ssize_t _len(const real[::1] v):
    return v.shape[0] if v is not None else -1


cdef inline bint _stat_ok(const double[::1] v, size_t n):
    return v is None or <size_t>v.shape[0] == n


cdef inline const real *_cptr(const real[::1] v) noexcept nogil:
    return &v[0] if v is not None else NULL


cdef inline double *_dptr(double[::1] v) noexcept nogil:
    return &v[0] if v is not None else NULL


# Each op has a wrapper for float/double storage (fused `real`, weights of
# the same type) and one for half storage (uint16 bit patterns, float
# weights; bf16 selects bfloat16 over IEEE float16).  act is a
# cnorm_activation.

def layer_norm(const real[::1] x, real[::1] y, size_t rows, size_t cols,
               const real[::1] w, const real[::1] b, double eps,
               double[::1] mean=None, double[::1] rstd=None, int act=0):
    cdef int st
    _sizes(x.shape[0], y.shape[0], rows * cols, _len(w), cols, b"layer_norm")
    _sizes(x.shape[0], y.shape[0], rows * cols, _len(b), cols, b"layer_norm")
    if not (_stat_ok(mean, rows) and _stat_ok(rstd, rows)):
        raise ValueError("layer_norm: stats arrays must have one entry per row")
    with nogil:
        if real is float:
            st = cnorm_layer_norm_f32(&x[0], &y[0], rows, cols, _cptr(w), _cptr(b), eps,
                                      _dptr(mean), _dptr(rstd), <cnorm_activation>act)
        else:
            st = cnorm_layer_norm_f64(&x[0], &y[0], rows, cols, _cptr(w), _cptr(b), eps,
                                      _dptr(mean), _dptr(rstd), <cnorm_activation>act)
    _check(st)


def layer_norm_half(const unsigned short[::1] x, unsigned short[::1] y, size_t rows, size_t cols,
                    const float[::1] w, const float[::1] b, double eps,
                    double[::1] mean=None, double[::1] rstd=None, int act=0, bint bf16=False):
    cdef int st
    _sizes(x.shape[0], y.shape[0], rows * cols, _len(w), cols, b"layer_norm")
    _sizes(x.shape[0], y.shape[0], rows * cols, _len(b), cols, b"layer_norm")
    if not (_stat_ok(mean, rows) and _stat_ok(rstd, rows)):
        raise ValueError("layer_norm: stats arrays must have one entry per row")
    with nogil:
        if bf16:
            st = cnorm_layer_norm_bf16(&x[0], &y[0], rows, cols, _cptr(w), _cptr(b), eps,
                                       _dptr(mean), _dptr(rstd), <cnorm_activation>act)
        else:
            st = cnorm_layer_norm_f16(&x[0], &y[0], rows, cols, _cptr(w), _cptr(b), eps,
                                      _dptr(mean), _dptr(rstd), <cnorm_activation>act)
    _check(st)


def rms_norm(const real[::1] x, real[::1] y, size_t rows, size_t cols,
             const real[::1] w, double eps):
    cdef int st
    _sizes(x.shape[0], y.shape[0], rows * cols, _len(w), cols, b"rms_norm")
    with nogil:
        if real is float:
            st = cnorm_rms_norm_f32(&x[0], &y[0], rows, cols, _cptr(w), eps, NULL)
        else:
            st = cnorm_rms_norm_f64(&x[0], &y[0], rows, cols, _cptr(w), eps, NULL)
    _check(st)


def rms_norm_half(const unsigned short[::1] x, unsigned short[::1] y, size_t rows, size_t cols,
                  const float[::1] w, double eps, bint bf16=False):
    cdef int st
    _sizes(x.shape[0], y.shape[0], rows * cols, _len(w), cols, b"rms_norm")
    with nogil:
        if bf16:
            st = cnorm_rms_norm_bf16(&x[0], &y[0], rows, cols, _cptr(w), eps, NULL)
        else:
            st = cnorm_rms_norm_f16(&x[0], &y[0], rows, cols, _cptr(w), eps, NULL)
    _check(st)


cdef int _group_checks(Py_ssize_t nx, Py_ssize_t ny, size_t n, size_t c, size_t s, size_t groups,
                       Py_ssize_t nw, Py_ssize_t nb, const double[::1] mean,
                       const double[::1] var) except -1:
    _sizes(nx, ny, n * c * s, nw, c, b"group_norm")
    _sizes(nx, ny, n * c * s, nb, c, b"group_norm")
    if groups == 0 or not (_stat_ok(mean, n * groups) and _stat_ok(var, n * groups)):
        raise ValueError("group_norm: stats arrays must have one entry per (sample, group)")
    return 0


def group_norm(const real[::1] x, real[::1] y, size_t n, size_t c, size_t s, size_t groups,
               bint nhwc, const real[::1] w, const real[::1] b, double eps,
               double[::1] mean=None, double[::1] var=None, int act=0):
    cdef int st
    cdef cnorm_layout layout = CNORM_NHWC if nhwc else CNORM_NCHW
    _group_checks(x.shape[0], y.shape[0], n, c, s, groups, _len(w), _len(b), mean, var)
    with nogil:
        if real is float:
            st = cnorm_group_norm_f32(&x[0], &y[0], n, c, s, groups, layout, _cptr(w), _cptr(b),
                                      eps, _dptr(mean), _dptr(var), <cnorm_activation>act)
        else:
            st = cnorm_group_norm_f64(&x[0], &y[0], n, c, s, groups, layout, _cptr(w), _cptr(b),
                                      eps, _dptr(mean), _dptr(var), <cnorm_activation>act)
    _check(st)


def group_norm_half(const unsigned short[::1] x, unsigned short[::1] y, size_t n, size_t c,
                    size_t s, size_t groups, bint nhwc, const float[::1] w, const float[::1] b,
                    double eps, double[::1] mean=None, double[::1] var=None, int act=0,
                    bint bf16=False):
    cdef int st
    cdef cnorm_layout layout = CNORM_NHWC if nhwc else CNORM_NCHW
    _group_checks(x.shape[0], y.shape[0], n, c, s, groups, _len(w), _len(b), mean, var)
    with nogil:
        if bf16:
            st = cnorm_group_norm_bf16(&x[0], &y[0], n, c, s, groups, layout, _cptr(w), _cptr(b),
                                       eps, _dptr(mean), _dptr(var), <cnorm_activation>act)
        else:
            st = cnorm_group_norm_f16(&x[0], &y[0], n, c, s, groups, layout, _cptr(w), _cptr(b),
                                      eps, _dptr(mean), _dptr(var), <cnorm_activation>act)
    _check(st)


cdef int _batch_checks(Py_ssize_t nx, Py_ssize_t ny, size_t n, size_t c, size_t s, Py_ssize_t nw,
                       Py_ssize_t nb, const double[::1] mean_in, const double[::1] var_in,
                       const double[::1] mean_out, const double[::1] var_out) except -1:
    _sizes(nx, ny, n * c * s, nw, c, b"batch_norm")
    _sizes(nx, ny, n * c * s, nb, c, b"batch_norm")
    if not (_stat_ok(mean_in, c) and _stat_ok(var_in, c) and _stat_ok(mean_out, c) and _stat_ok(var_out, c)):
        raise ValueError("batch_norm: stats arrays must have one entry per channel")
    return 0


def batch_norm(const real[::1] x, real[::1] y, size_t n, size_t c, size_t s, bint nhwc,
               const real[::1] w, const real[::1] b, double eps,
               const double[::1] mean_in=None, const double[::1] var_in=None,
               double[::1] mean_out=None, double[::1] var_out=None, int act=0):
    cdef int st
    cdef cnorm_layout layout = CNORM_NHWC if nhwc else CNORM_NCHW
    _batch_checks(x.shape[0], y.shape[0], n, c, s, _len(w), _len(b), mean_in, var_in, mean_out, var_out)
    cdef const double *mi = &mean_in[0] if mean_in is not None else NULL
    cdef const double *vi = &var_in[0] if var_in is not None else NULL
    with nogil:
        if real is float:
            st = cnorm_batch_norm_f32(&x[0], &y[0], n, c, s, layout, _cptr(w), _cptr(b), eps,
                                      mi, vi, _dptr(mean_out), _dptr(var_out), <cnorm_activation>act)
        else:
            st = cnorm_batch_norm_f64(&x[0], &y[0], n, c, s, layout, _cptr(w), _cptr(b), eps,
                                      mi, vi, _dptr(mean_out), _dptr(var_out), <cnorm_activation>act)
    _check(st)


def batch_norm_half(const unsigned short[::1] x, unsigned short[::1] y, size_t n, size_t c,
                    size_t s, bint nhwc, const float[::1] w, const float[::1] b, double eps,
                    const double[::1] mean_in=None, const double[::1] var_in=None,
                    double[::1] mean_out=None, double[::1] var_out=None, int act=0,
                    bint bf16=False):
    cdef int st
    cdef cnorm_layout layout = CNORM_NHWC if nhwc else CNORM_NCHW
    _batch_checks(x.shape[0], y.shape[0], n, c, s, _len(w), _len(b), mean_in, var_in, mean_out, var_out)
    cdef const double *mi = &mean_in[0] if mean_in is not None else NULL
    cdef const double *vi = &var_in[0] if var_in is not None else NULL
    with nogil:
        if bf16:
            st = cnorm_batch_norm_bf16(&x[0], &y[0], n, c, s, layout, _cptr(w), _cptr(b), eps,
                                       mi, vi, _dptr(mean_out), _dptr(var_out), <cnorm_activation>act)
        else:
            st = cnorm_batch_norm_f16(&x[0], &y[0], n, c, s, layout, _cptr(w), _cptr(b), eps,
                                      mi, vi, _dptr(mean_out), _dptr(var_out), <cnorm_activation>act)
    _check(st)


def moments(const real[::1] x, size_t outer, size_t length, size_t inner, double ddof,
            double[::1] mean, double[::1] var):
    cdef int st
    _sizes(x.shape[0], x.shape[0], outer * length * inner, -1, 0, b"moments")
    if <size_t>mean.shape[0] != outer * inner or <size_t>var.shape[0] != outer * inner:
        raise ValueError("moments: mean and var must have outer * inner entries")
    with nogil:
        if real is float:
            st = cnorm_moments_f32(&x[0], outer, length, inner, ddof, &mean[0], &var[0])
        else:
            st = cnorm_moments_f64(&x[0], outer, length, inner, ddof, &mean[0], &var[0])
    _check(st)


def moments_half(const unsigned short[::1] x, size_t outer, size_t length, size_t inner,
                 double ddof, double[::1] mean, double[::1] var, bint bf16=False):
    cdef int st
    _sizes(x.shape[0], x.shape[0], outer * length * inner, -1, 0, b"moments")
    if <size_t>mean.shape[0] != outer * inner or <size_t>var.shape[0] != outer * inner:
        raise ValueError("moments: mean and var must have outer * inner entries")
    with nogil:
        if bf16:
            st = cnorm_moments_bf16(&x[0], outer, length, inner, ddof, &mean[0], &var[0])
        else:
            st = cnorm_moments_f16(&x[0], outer, length, inner, ddof, &mean[0], &var[0])
    _check(st)


def fold_batch_norm(const double[::1] w, const double[::1] b, size_t c_out, size_t per_out,
                    const double[::1] mean, const double[::1] var, const double[::1] gamma,
                    const double[::1] beta, double eps, double[::1] w_out, double[::1] b_out):
    """Conv-BN folding in float64 (the Python layer casts back)."""
    if (<size_t>w.shape[0] != c_out * per_out or <size_t>w_out.shape[0] != c_out * per_out
            or not (_stat_ok(b, c_out) and _stat_ok(gamma, c_out) and _stat_ok(beta, c_out))
            or <size_t>mean.shape[0] != c_out or <size_t>var.shape[0] != c_out
            or <size_t>b_out.shape[0] != c_out):
        raise ValueError("fold_batch_norm: array sizes do not match the given dimensions")
    _check(cnorm_fold_batch_norm_f64(&w[0] if per_out else NULL, &b[0] if b is not None else NULL,
                                     c_out, per_out, &mean[0], &var[0],
                                     &gamma[0] if gamma is not None else NULL,
                                     &beta[0] if beta is not None else NULL, eps,
                                     &w_out[0] if per_out else NULL, &b_out[0]))


def roofline(const float[::1] x, float[::1] y, float a, float b):
    """Benchmark helper: y = a*x + b, the memory roofline of a norm."""
    _sizes(x.shape[0], y.shape[0], <size_t>x.shape[0], -1, 0, b"roofline")
    with nogil:
        cnorm_roofline_f32(&x[0], &y[0], <size_t>x.shape[0], a, b)


# ---- fast path ------------------------------------------------------------

cdef inline bint _plain_param(object p, int typenum, cnp.npy_intp k):
    """None, or a 1-D C-contiguous ndarray of `typenum` and length k."""
    if p is None:
        return True
    if type(p) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>p
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == 1
            and cnp.PyArray_DIM(a, 0) == k and cnp.PyArray_IS_C_CONTIGUOUS(a))


cdef inline void *_data_or_null(object p):
    return NULL if p is None else cnp.PyArray_DATA(<cnp.ndarray>p)


cdef inline bint _plain_out(object out, cnp.ndarray x):
    """None, or a writable C-contiguous ndarray like x that is x itself or
    does not overlap it."""
    if out is None:
        return True
    if type(out) is not cnp.ndarray:
        return False
    cdef cnp.ndarray o = <cnp.ndarray>out
    cdef int nd = cnp.PyArray_NDIM(x)
    if (cnp.PyArray_TYPE(o) != cnp.PyArray_TYPE(x) or cnp.PyArray_NDIM(o) != nd
            or not cnp.PyArray_IS_C_CONTIGUOUS(o) or not cnp.PyArray_ISWRITEABLE(o)):
        return False
    for i in range(nd):
        if cnp.PyArray_DIM(o, i) != cnp.PyArray_DIM(x, i):
            return False
    cdef char *a = <char *>cnp.PyArray_DATA(x)
    cdef char *b = <char *>cnp.PyArray_DATA(o)
    cdef cnp.npy_intp n = cnp.PyArray_NBYTES(x)
    return a == b or a + n <= b or b + n <= a


def layer_norm_fast(object x, object normalized_shape, object weight, object bias, object eps,
                    object out):
    """layer_norm for the common small call, with no Python-level checks:
    a C-contiguous float32/float64 ndarray normalized over its last dim, a
    plain int normalized_shape, matching 1-D weight/bias, a float eps, and
    no out or a plain one.  Returns None whenever anything differs; the
    caller then takes the general path, which validates and raises."""
    if type(x) is not cnp.ndarray or type(normalized_shape) is not int or type(eps) is not float:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int typenum = cnp.PyArray_TYPE(a)
    cdef int nd = cnp.PyArray_NDIM(a)
    if (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64) or nd == 0 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        return None
    cdef cnp.npy_intp k = cnp.PyArray_DIM(a, nd - 1)
    cdef double e = PyFloat_AS_DOUBLE(eps)
    if (k <= 0 or <cnp.npy_intp>normalized_shape != k or not (isfinite(e) and e >= 0.0)
            or not _plain_param(weight, typenum, k) or not _plain_param(bias, typenum, k)
            or not _plain_out(out, a)):
        return None
    cdef size_t cols = <size_t>k
    cdef size_t rows = <size_t>(cnp.PyArray_SIZE(a) // k)
    cdef cnp.ndarray y = _empty(nd, cnp.PyArray_DIMS(a), typenum) if out is None else <cnp.ndarray>out
    cdef void *xp = cnp.PyArray_DATA(a)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *wp = _data_or_null(weight)
    cdef void *bp = _data_or_null(bias)
    cdef int st
    if rows == 0:
        return y
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            st = cnorm_layer_norm_f32(<float *>xp, <float *>yp, rows, cols, <float *>wp, <float *>bp, e, NULL, NULL, <cnorm_activation>0)
        else:
            st = cnorm_layer_norm_f64(<double *>xp, <double *>yp, rows, cols, <double *>wp, <double *>bp, e, NULL, NULL, <cnorm_activation>0)
    _check(st)
    return y


cdef inline int _act_code(object activation):
    """cnorm_activation for a plain activation argument, -1 otherwise."""
    if activation is None:
        return 0
    if activation == "relu":
        return 1
    if activation == "silu":
        return 2
    if activation == "gelu":
        return 3
    return -1


cdef inline bint _plain_eps(object eps, double *e):
    if type(eps) is not float:
        return False
    e[0] = PyFloat_AS_DOUBLE(eps)
    return isfinite(e[0]) and e[0] >= 0.0


cdef inline object _plain_stats(object v, cnp.npy_intp c):
    """A 1-D float array of length c as a contiguous float64 array, or None."""
    if type(v) is not cnp.ndarray:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>v
    cdef int t = cnp.PyArray_TYPE(a)
    if cnp.PyArray_NDIM(a) != 1 or cnp.PyArray_DIM(a, 0) != c or (
            t != cnp.NPY_FLOAT64 and t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT16):
        return None
    if t == cnp.NPY_FLOAT64 and cnp.PyArray_IS_C_CONTIGUOUS(a):
        return a
    return np.ascontiguousarray(a, dtype=np.float64)


# Channel ops for channel_norm_fast
cdef enum:
    _BN_EVAL = 0    # batch norm with running stats (inference)
    _BN_BATCH = 1   # batch norm with batch statistics, nothing to update
    _GN = 2         # group norm
    _IN = 3         # instance norm with input statistics, nothing to update

CHANNEL_BN_EVAL, CHANNEL_BN_BATCH, CHANNEL_GN, CHANNEL_IN = _BN_EVAL, _BN_BATCH, _GN, _IN


def channel_norm_fast(int op, object x, object axis, object groups, object weight, object bias,
                      object running_mean, object running_var, object eps, object momentum,
                      object out, object activation):
    """batch/instance/group norm for the common call, checked here with the
    NumPy C API: a C-contiguous float32/float64 array with the channel axis
    1 (NCHW) or last (NHWC), plain int axis/groups and float eps/momentum,
    1-D weight/bias of the same dtype, running stats of a float dtype, no
    out or a plain one.  Returns None whenever anything differs or is
    invalid; the caller then takes the general path, which raises."""
    if type(x) is not cnp.ndarray or type(axis) is not int or type(momentum) is not float:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int typenum = cnp.PyArray_TYPE(a)
    cdef int nd = cnp.PyArray_NDIM(a)
    cdef double e, mom = PyFloat_AS_DOUBLE(momentum)
    cdef int act = _act_code(activation)
    if ((typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64) or nd < 2
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_SIZE(a) == 0
            or not _plain_eps(eps, &e) or not (0.0 <= mom <= 1.0) or act < 0):
        return None
    cdef long ax = <long>axis
    if ax < 0:
        ax += nd
    if ax != 1 and ax != nd - 1:
        return None
    cdef cnp.npy_intp c = cnp.PyArray_DIM(a, ax)
    cdef cnp.npy_intp n = cnp.PyArray_DIM(a, 0)
    cdef cnp.npy_intp s = cnp.PyArray_SIZE(a) // (n * c)
    # the layout ChannelForm picks for a C-contiguous x (results must not
    # depend on the path): NCHW when that view is contiguous, except batch
    # norm without spatial dims, which takes the column kernel
    cdef bint nchw_view = ax == 1 or c == 1 or s == 1
    cdef bint nhwc = not nchw_view or (op < _GN and s == 1)
    if not (_plain_param(weight, typenum, c) and _plain_param(bias, typenum, c) and _plain_out(out, a)):
        return None
    cdef object rm = None, rv = None
    cdef long g = 0
    if op == _BN_EVAL:
        rm = _plain_stats(running_mean, c)
        rv = _plain_stats(running_var, c)
        if rm is None or rv is None:
            return None
    elif op == _BN_BATCH:
        if n * s < 2:
            return None
    elif op == _IN:
        if s < 2:
            return None
        g = <long>c
    else:
        if type(groups) is not int:
            return None
        g = <long>groups
        if g < 1 or c % g:
            return None
    cdef cnp.ndarray y = _empty(nd, cnp.PyArray_DIMS(a), typenum) if out is None else <cnp.ndarray>out
    cdef void *xp = cnp.PyArray_DATA(a)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *wp = _data_or_null(weight)
    cdef void *bp = _data_or_null(bias)
    cdef double *mp = <double *>cnp.PyArray_DATA(<cnp.ndarray>rm) if rm is not None else NULL
    cdef double *vp = <double *>cnp.PyArray_DATA(<cnp.ndarray>rv) if rv is not None else NULL
    cdef cnorm_layout layout = CNORM_NHWC if nhwc else CNORM_NCHW
    cdef int st
    with nogil:
        if op >= _GN:
            if typenum == cnp.NPY_FLOAT32:
                st = cnorm_group_norm_f32(<float *>xp, <float *>yp, n, c, s, g, layout, <float *>wp,
                                          <float *>bp, e, NULL, NULL, <cnorm_activation>act)
            else:
                st = cnorm_group_norm_f64(<double *>xp, <double *>yp, n, c, s, g, layout, <double *>wp,
                                          <double *>bp, e, NULL, NULL, <cnorm_activation>act)
        elif typenum == cnp.NPY_FLOAT32:
            st = cnorm_batch_norm_f32(<float *>xp, <float *>yp, n, c, s, layout, <float *>wp, <float *>bp,
                                      e, mp, vp, NULL, NULL, <cnorm_activation>act)
        else:
            st = cnorm_batch_norm_f64(<double *>xp, <double *>yp, n, c, s, layout, <double *>wp,
                                      <double *>bp, e, mp, vp, NULL, NULL, <cnorm_activation>act)
    _check(st)
    return y


# ---- configuration -------------------------------------------------------

def isa_name(int isa):
    return cnorm_isa_name(isa).decode()

def isa_available(int isa):
    return bool(cnorm_isa_available(isa))

def get_isa():
    return cnorm_get_isa()

def set_isa(int isa):
    _check(cnorm_set_isa(isa))

def get_num_threads():
    return cnorm_get_num_threads()

def set_num_threads(int n):
    _check(cnorm_set_num_threads(n))

def has_openmp():
    return bool(cnorm_has_openmp())

def compiler():
    return cnorm_compiler().decode()
