/* Internal helpers shared by the drivers (engine_*.inc). */
#ifndef CNORM_ENGINE_H
#define CNORM_ENGINE_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cnorm/cnorm.h"
#include "kernels.h"

/* ---- argument checks ----------------------------------------------------------
 * Every driver checks in this order, so the same bad call gets the same code
 * from every variant: the enums (layout, then activation), the group count,
 * eps, the size products; then an empty batch is a no-op, a zero-size group
 * is CNORM_ERR_SIZE, and only then are the pointers tested. */

/* a*b into *r unless it exceeds PTRDIFF_MAX (element offsets must fit a
 * signed 64-bit index on every platform). */
static inline int cnorm_mul_ok(size_t a, size_t b, size_t *r) {
    if (a != 0 && b > (size_t)PTRDIFF_MAX / a) return 0;
    *r = a * b;
    return 1;
}

static inline int cnorm_layout_ok(cnorm_layout layout) { return layout == CNORM_NCHW || layout == CNORM_NHWC; }

static inline int cnorm_eps_ok(double eps) { return eps >= 0.0 && isfinite(eps); }

static inline int cnorm_act_ok(cnorm_activation act) {
    return act == CNORM_ACT_NONE || act == CNORM_ACT_RELU || act == CNORM_ACT_SILU || act == CNORM_ACT_GELU;
}

/* The leaves' form of int8/uint8 output parameters: CNORM_ERR_NULL without
 * them, CNORM_ERR_ARG unless scale is finite and > 0, zero_point in the
 * type's range and the type known.  1/scale is capped at the largest
 * finite value of each compute type, so that y = 0 still gives zero_point
 * for a scale so small that its inverse overflows. */
static inline int cnorm_quant_make(const cnorm_quant *p, cnorm_quant_t *Q) {
    if (!p) return CNORM_ERR_NULL;
    if (p->type != CNORM_INT8 && p->type != CNORM_UINT8) return CNORM_ERR_ARG;
    const double lo = p->type == CNORM_INT8 ? -128.0 : 0.0, hi = p->type == CNORM_INT8 ? 127.0 : 255.0;
    if (!(p->scale > 0.0 && isfinite(p->scale)) || p->zero_point < lo || p->zero_point > hi) return CNORM_ERR_ARG;
    const double inv = 1.0 / p->scale;
    Q->inv = isfinite(inv) ? inv : DBL_MAX;
    Q->zp = (double)p->zero_point, Q->lo = lo, Q->hi = hi;
    Q->inv_f = (float)(Q->inv < FLT_MAX ? Q->inv : FLT_MAX);
    Q->zp_f = (float)Q->zp, Q->lo_f = (float)lo, Q->hi_f = (float)hi;
    Q->is_unsigned = p->type == CNORM_UINT8;
    return CNORM_OK;
}

/* Scratch of n * m elements of `size` bytes: CNORM_ERR_SIZE when that
 * does not fit a size_t, CNORM_ERR_ALLOC when malloc fails. */
static inline int cnorm_alloc(size_t n, size_t m, size_t size, void **p) {
    *p = NULL;
    if (m != 0 && n > SIZE_MAX / m) return CNORM_ERR_SIZE;
    if (size != 0 && n * m > SIZE_MAX / size) return CNORM_ERR_SIZE;
    const size_t bytes = n * m * size;
    *p = malloc(bytes != 0 ? bytes : 1);
    return *p ? CNORM_OK : CNORM_ERR_ALLOC;
}

/* A block of `bytes` on a cache-line boundary (types declared
 * CNORM_ALIGN_LINE need it: malloc promises 16 bytes); free(*raw) frees it. */
static inline int cnorm_alloc_line(size_t bytes, void **raw, void **aligned) {
    *aligned = NULL;
    if (bytes > SIZE_MAX - 64) return CNORM_ERR_SIZE;
    const int st = cnorm_alloc(1, 1, bytes + 64, raw);
    if (st == CNORM_OK) *aligned = (void *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
    return st;
}

/* k arrays of c doubles, then a leaf's apply_cols parameters for c columns
 * (CNORM_COL_PARAMS_DOUBLES(c) doubles at buf + k * c). */
static inline int cnorm_alloc_channels(size_t c, size_t k, double **buf) {
    *buf = NULL;
    if (c > (SIZE_MAX / sizeof(double) - 4 * CNORM_VEC_MAX) / (k + 4)) return CNORM_ERR_SIZE;
    return cnorm_alloc(1, k * c + CNORM_COL_PARAMS_DOUBLES(c), sizeof(double), (void **)buf);
}

/* k arrays of c doubles, then the backward column leaves' parameters for c
 * columns (CNORM_BWD_COL_PARAMS_DOUBLES(c) doubles at buf + k * c). */
static inline int cnorm_alloc_bwd_channels(size_t c, size_t k, double **buf) {
    *buf = NULL;
    if (c > (SIZE_MAX / sizeof(double) - 8 * CNORM_VEC_MAX) / (k + 8)) return CNORM_ERR_SIZE;
    return cnorm_alloc(1, k * c + CNORM_BWD_COL_PARAMS_DOUBLES(c), sizeof(double), (void **)buf);
}

/* ---- memory hints --------------------------------------------------------------- */

/* Orders the apply leaves' non-temporal stores before anything that
 * follows: once per thread at the end of its work, never per row (a fence
 * waits for the write-combining buffers to drain). */
#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
static inline void cnorm_store_fence(void) { _mm_sfence(); }
#else
static inline void cnorm_store_fence(void) {}
#endif

/* A read hint for the line holding p, into L2 (p must point into an array). */
#if defined(__GNUC__) || defined(__clang__)
#define CNORM_PREFETCH(p) __builtin_prefetch((p), 0, 2)
#else
#define CNORM_PREFETCH(p) ((void)(p))
#endif

/* ---- threads ------------------------------------------------------------------ */

/* body(ctx, lo, hi) for the iterations [lo, hi) of one thread. */
typedef void (*cnorm_range_fn)(void *ctx, size_t lo, size_t hi);

/* Iterations [0, n) on nt threads, each a contiguous share as OpenMP's
 * schedule(static) gives it (the first n % nt threads one more); each
 * thread fences its streaming stores when done.  With one thread no
 * parallel region is opened at all: even an inactive one would keep the
 * regions nested in body (long rows split over threads) serial, so the
 * caller fences then. */
static inline void cnorm_parallel_for(int nt, size_t n, cnorm_range_fn body, void *ctx) {
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            const size_t t = (size_t)omp_get_thread_num(), k = (size_t)omp_get_num_threads();
            const size_t q = n / k, r = n % k, lo = t * q + (t < r ? t : r), hi = lo + q + (t < r);
            if (lo < hi) body(ctx, lo, hi);
            cnorm_store_fence();
        }
        return;
    }
#else
    (void)nt;
#endif
    body(ctx, 0, n);
}

/* ---- numerics of the float paths ------------------------------------------------ */

/* Whether float-lane statistics need a second opinion from the scalar
 * (double) leaves: not finite (float lanes overflow near the float maximum;
 * inf/NaN in x stay inf/NaN either way), or a variance so small that the
 * squared deviations were float denormals (exact zero, a constant group,
 * is exact). */
static inline int cnorm_recheck(double mean, double m2, double n) {
    return !(isfinite(mean) && isfinite(m2)) || (m2 > 0.0 && m2 < 1e-30 * n);
}

/* The leaves to apply a group whose deviations |x - mean| are at most
 * `spread` (sqrt(M2) bounds them) with this scale.  The SIMD leaves compute
 * in float: near the float maximum x - mean can overflow, and with denormal
 * data and eps = 0 the scale can, so such groups take the scalar leaves,
 * which compute in double. */
static inline const cnorm_kernels_t *cnorm_apply_table(const cnorm_kernels_t *K, int float_range,
                                                       double spread, double scale) {
    /* inf spread: running statistics of unbounded mean (cnorm_running_spread),
     * for the types of narrower range too, whose float apply sees mean and
     * scale converted to float */
    return (float_range && (spread > 1e37 || fabs(scale) > 1e37)) || isinf(spread) || fabs(scale) > FLT_MAX
               ? &cnorm_kernels_scalar
               : K;
}

/* The `spread` to pass cnorm_apply_table for a group applied with running
 * (given) statistics, which bound nothing: while |mean| < 2^102 (a quarter
 * of an ulp of FLT_MAX, so also its float rounding), x - mean rounds to at
 * most FLT_MAX for every float x; beyond it only double cannot overflow. */
static inline double cnorm_running_spread(double mean) { return fabs(mean) < 0x1p102 ? 0.0 : INFINITY; }

/* ---- the backward pass's dx -------------------------------------------------------
 * For a group of n values with xh = (x - mean) * rstd and d = dL/dxh
 * (= g * weight), dx = rstd * (d - mean(d) - xhat * mean(d * xhat)), xhat
 * the centred xh.  It is written in xh, which stays O(1) whatever the
 * offset of x: torch's form a * d + b * x + c multiplies x itself, and b * x
 * and c cancel when |mean| >> std.  A given mean that was rounded (to float)
 * shifts xh by m1 = mean(xh), which is 0 for the exact mean, so xhat = xh - m1;
 * from s0 = sum(xh), s1 = sum(d), s2 = sum(d * xh) (RMS norm: nothing is
 * centred, m1 = mean(d) = 0):
 *   dx = d * p + xh * q + o,  p = rstd, q = -rstd * A, o = rstd * (m1 * A - B),
 *   B = s1 / n, A = mean(d * xhat) = s2 / n - m1 * B. */
typedef struct {
    double pqo[3]; /* p, q, o */
    double m1;
} cnorm_bwd_coef_t;

static inline cnorm_bwd_coef_t cnorm_bwd_coef(double s0, double s1, double s2, double n, double rstd, int centred) {
    cnorm_bwd_coef_t c;
    c.m1 = centred ? s0 / n : 0.0;
    const double B = centred ? s1 / n : 0.0, A = s2 / n - c.m1 * B;
    c.pqo[0] = rstd;
    c.pqo[1] = -rstd * A;
    c.pqo[2] = rstd * (c.m1 * A - B);
    return c;
}

/* The kinds of fused row job (engine_rows.inc). */
enum { CN_ROWS_LAYER, CN_ROWS_RMS, CN_ROWS_GROUP };

/* ---- the column reduction's shape ------------------------------------------------ */

/* Columns one column-statistics pass carries (its cascade stays in L1). */
#define CNORM_STATS_COL_TILE 256
/* Chunks of CNORM_COL_CHUNK rows per column block: blocks are the unit of
 * parallel work, and a block's cascade has CNORM_COL_BLOCK_LEVELS + 1 levels. */
#define CNORM_COL_BLOCK_LEVELS 10

/* The partial of a column block: CNORM_STATS_COL_TILE columns of n rows. */
typedef struct {
    double mean[CNORM_STATS_COL_TILE], m2[CNORM_STATS_COL_TILE];
    double n;
} CNORM_ALIGN_LINE cnorm_col_tile_t;

/* dst = merge(a, b) over the first *(const size_t *)ctx columns; dst may be b. */
static inline void cnorm_col_tile_merge(cnorm_col_tile_t *dst, const cnorm_col_tile_t *a, const cnorm_col_tile_t *b,
                                        const void *ctx) {
    const size_t cols = *(const size_t *)ctx;
    cnorm_merge_cols(a->n, a->mean, a->m2, b->n, b->mean, b->m2, cols, dst->mean, dst->m2);
    dst->n = a->n + b->n;
}

static inline void cnorm_col_tile_copy(cnorm_col_tile_t *dst, const cnorm_col_tile_t *src, const void *ctx) {
    const size_t cols = *(const size_t *)ctx;
    for (size_t j = 0; j < cols; ++j) dst->mean[j] = src->mean[j], dst->m2[j] = src->m2[j];
    dst->n = src->n;
}

CNORM_DEFINE_CASCADE(cnorm_col_cascade, cnorm_col_tile_t, CNORM_COL_BLOCK_LEVELS + 1, cnorm_col_tile_merge,
                     cnorm_col_tile_copy)
/* cnorm_col_cascade_t, cnorm_col_cascade_init, cnorm_col_cascade_push, cnorm_col_cascade_result */

/* What a column block works in (about 50 KiB): on the heap, one per thread
 * and call, so that no frame holds it (callers may run on small stacks). */
typedef struct {
    cnorm_col_cascade_t cas;
    cnorm_col_tile_t cur;
} cnorm_col_scratch_t;

#endif
