/* Internal helpers shared by the drivers (engine.c, engine.inc). */
#ifndef CNORM_ENGINE_H
#define CNORM_ENGINE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "cnorm/cnorm.h"
#include "kernels.h"

/* a*b into *r unless it exceeds PTRDIFF_MAX (element offsets must fit a
 * signed 64-bit index on every platform). */
static inline int cnorm_mul_ok(size_t a, size_t b, size_t *r) {
    if (a != 0 && b > (size_t)PTRDIFF_MAX / a) return 0;
    *r = a * b;
    return 1;
}

static inline int cnorm_eps_ok(double eps) { return eps >= 0.0 && isfinite(eps); }

static inline int cnorm_act_ok(cnorm_activation act) {
    return act == CNORM_ACT_NONE || act == CNORM_ACT_RELU || act == CNORM_ACT_SILU || act == CNORM_ACT_GELU;
}

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

/* for (ptrdiff_t VAR = 0; VAR < N; ++VAR) BODY, on NT threads, each of
 * which fences its stores when done.  With one thread no parallel region
 * is opened at all: even an inactive one would keep the regions nested in
 * BODY (long rows split over threads) serial; the driver fences then. */
#define CNORM_PARALLEL_FOR(NT, VAR, N, ...)                                        \
    do {                                                                           \
        const int cnorm_nt_ = (NT);                                                \
        const ptrdiff_t cnorm_n_ = (ptrdiff_t)(N);                                 \
        if (cnorm_nt_ > 1) {                                                       \
            _Pragma("omp parallel num_threads(cnorm_nt_)") {                       \
                _Pragma("omp for schedule(static) nowait")                         \
                for (ptrdiff_t VAR = 0; VAR < cnorm_n_; ++VAR) __VA_ARGS__         \
                cnorm_store_fence();                                               \
            }                                                                      \
        } else {                                                                   \
            for (ptrdiff_t VAR = 0; VAR < cnorm_n_; ++VAR) __VA_ARGS__             \
        }                                                                          \
    } while (0)

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
    return float_range && (spread > 1e37 || fabs(scale) > 1e37) ? &cnorm_kernels_scalar : K;
}

/* Columns handled per column-kernel pass: accumulators stay in L1. */
#define CNORM_COL_TILE 256
/* Chunks per column block: blocks are the unit of parallel work. */
#define CNORM_COL_BLOCK_LEVELS 10

/* out = Chan merge of (na, ma, m2a) and (nb, mb, m2b), column-wise. */
static inline void cnorm_merge_cols(double na, const double *ma, const double *m2a, double nb,
                                    const double *mb, const double *m2b, size_t cols,
                                    double *out_m, double *out_m2) {
    const double n = na + nb, fb = nb / n, w = na * fb;
    for (size_t j = 0; j < cols; ++j) {
        const double d = mb[j] - ma[j];
        out_m[j] = ma[j] + d * fb;
        out_m2[j] = m2a[j] + m2b[j] + d * d * w;
    }
}

#endif
