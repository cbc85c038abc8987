/* Internal: the per-ISA leaf kernels and their dispatch table.
 *
 * Leaves work on one contiguous row or one (rows x cols) tile and never
 * open parallel regions; the drivers in engine.c cut the work into
 * fixed-size pieces, run them on threads and merge in a fixed order.
 */
#ifndef CNORM_KERNELS_H
#define CNORM_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "welford.h"

/* Rows at most this many elements long are reduced by one leaf call; longer
 * rows are cut into blocks of this size (a power of two, so every ISA's
 * chunk divides it) and the blocks merged pairwise. */
#define CNORM_ROW_BLOCK ((size_t)1 << 16)

/* Outputs at least this large are written with non-temporal stores: they
 * cannot stay in the caches (32 MiB L3 here) and skipping the
 * read-for-ownership saves a third of the memory traffic. */
#define CNORM_STREAM_BYTES ((size_t)16 << 20)

/* Column Welford runs over at most this many rows before a Chan merge. */
#define CNORM_COL_CHUNK 64

/* The widest vector of any ISA, in elements (AVX-512 floats). */
#define CNORM_VEC_MAX 16
/* Room for apply_cols' parameters (four arrays of cols + a vector): made
 * once per call on the heap, so that leaves keep small frames. */
#define CNORM_COL_PARAMS_DOUBLES(cols) (4 * ((cols) + CNORM_VEC_MAX))
/* and for the backward's column leaves: eight arrays */
#define CNORM_BWD_COL_PARAMS_DOUBLES(cols) (8 * ((cols) + CNORM_VEC_MAX))

/* int8/uint8 output (DESIGN.md 3.2): q = clamp(round_half_even(y * inv +
 * zp)) to [lo, hi], in float for the float-compute types (f32 and the half
 * types, as their apply) and in double for f64.  y * (1/scale) is y / scale
 * within a rounding, so results differ from torch.quantize_per_tensor's only
 * next to a .5 tie.  NaN gives lo (as the clamp's comparisons fail). */
typedef struct {
    double inv, zp, lo, hi;
    float inv_f, zp_f, lo_f, hi_f;
    int is_unsigned;
} cnorm_quant_t;

static inline uint8_t cnorm_quant_code(double v, const cnorm_quant_t *Q) {
    v = v > Q->lo ? v : Q->lo;
    v = v < Q->hi ? v : Q->hi;
    return (uint8_t)(int)v; /* an int8 code as its two's complement byte */
}

/* one value computed in double / in float (fused multiply-add, as the
 * vector leaves, so that a row's tail rounds as its body) */
static inline uint8_t cnorm_quant_d(double y, const cnorm_quant_t *Q) {
    return cnorm_quant_code(nearbyint(y * Q->inv + Q->zp), Q);
}
static inline uint8_t cnorm_quant_f(float y, const cnorm_quant_t *Q) {
    return cnorm_quant_code((double)nearbyintf(fmaf(y, Q->inv_f, Q->zp_f)), Q);
}

/* Leaves for storage type T with weights of type W (float for the half
 * types).  act is a cnorm_activation applied after the affine step;
 * stream != 0 asks for non-temporal stores (a hint). */
#define CNORM_DECLARE_LEAVES(T, W, sfx)                                                    \
    /* (count, mean, M2) of x[0:n], n <= CNORM_ROW_BLOCK */                               \
    cnorm_moments_t (*row_stats_##sfx)(const T *x, size_t n);                               \
    /* sum of x[i]^2 over x[0:n], n <= CNORM_ROW_BLOCK (RMS norm) */                       \
    double (*row_sumsq_##sfx)(const T *x, size_t n);                                        \
    /* s[i] = x[i] + r[i] (+ skip[i] unless NULL) in W's precision (float for the */      \
    /* half types), each add rounded, stored as T; s may be x or r */                      \
    void (*add_row_##sfx)(const T *x, const T *r, const W *skip, T *s, size_t n);           \
    /* per-column mean/M2 of a (rows <= CNORM_COL_CHUNK, cols) tile, row stride ld */       \
    void (*col_stats_##sfx)(const T *x, size_t ld, size_t rows, size_t cols, double *mean, \
                            double *m2);                                                    \
    /* y[i] = act((x[i] - mean) * (w ? w[i] * scale : scale) + (b ? b[i] : shift)): */     \
    /* per-row parameters (w = b = NULL) or per-element ones (layer/RMS norm) */            \
    void (*apply_row_##sfx)(const T *x, T *y, size_t n, double mean, double scale,         \
                            double shift, const W *w, const W *b, int stream, int act);     \
    /* the parameters of apply_cols for cols columns, in the leaf's layout, into a */      \
    /* buffer of CNORM_COL_PARAMS_DOUBLES(cols) doubles */                                  \
    void (*apply_cols_params_##sfx)(size_t cols, const double *mean, const double *scale,   \
                                    const double *shift, void *params);                     \
    /* y[r, j] = act((x[r, j] - mean[j]) * scale[j] + shift[j]), row stride ld */           \
    void (*apply_cols_##sfx)(const T *x, T *y, size_t ld, size_t rows, size_t cols,         \
                             const void *params, int stream, int act);                      \
    /* rows [r0, r1) of len from x, y, row r with column r % c of apply_cols_params' */    \
    /* params (batch norm's NCHW apply: a channel per row) */                               \
    void (*apply_chan_rows_##sfx)(const T *x, T *y, size_t len, size_t c, size_t r0,       \
                                  size_t r1, const void *params, int stream, int act);      \
    /* apply_row / apply_cols with int8/uint8 codes out (Q): no streaming */                \
    void (*apply_row_q_##sfx)(const T *x, uint8_t *q, size_t n, double mean, double scale,  \
                              double shift, const W *w, const W *b, int act,                \
                              const cnorm_quant_t *Q);                                      \
    void (*apply_cols_q_##sfx)(const T *x, uint8_t *q, size_t ld, size_t rows, size_t cols, \
                               const void *params, int act, const cnorm_quant_t *Q);        \
    /* backward (engine_backward.inc): with xh = (x - mean) * rstd, */                     \
    /* z = xh * (w ? w[i] : ws) + (b ? b[i] : bs) and g = dy * act'(z), */                  \
    /* d = w ? g * w[i] : g: out[0..2] += sum(xh), sum(d), sum(d * xh) */                   \
    void (*bwd_row_sums_##sfx)(const T *dy, const T *x, size_t n, double mean, double rstd, \
                               const W *w, const W *b, double ws, double bs, int act,       \
                               double *out);                                                \
    /* dx[i] = g * (w ? w[i] * p : p) + xh * q + o (dx NULL: not stored; */                 \
    /* stream: non-temporal stores, a hint); gw[i] += g * (xh - m1) and */                  \
    /* gb[i] += g where those are not NULL */                                               \
    void (*bwd_row_dx_##sfx)(const T *dy, const T *x, T *dx, size_t n, double mean,         \
                             double rstd, const W *w, const W *b, double ws, double bs,     \
                             int act, const double *pqo, double m1, W *gw, W *gb,           \
                             int stream);                                                   \
    /* the parameters of bwd_col_sums/bwd_cols_dx for cols columns (p, q, o */             \
    /* NULL: zero), into CNORM_BWD_COL_PARAMS_DOUBLES(cols) doubles */                      \
    void (*bwd_cols_params_##sfx)(size_t cols, const double *mean, const double *rstd,      \
                                  const double *w, const double *b, const double *p,        \
                                  const double *q, const double *o, void *params);          \
    /* per column j of a (rows, cols) matrix (row stride ld): s0[j] += sum(xh), */          \
    /* sg[j] += sum(g), sgx[j] += sum(g * xh) with column j's parameters */                 \
    void (*bwd_col_sums_##sfx)(const T *dy, const T *x, size_t ld, size_t rows, size_t cols, \
                               const void *params, int act, double *s0, double *sg,         \
                               double *sgx);                                                \
    /* dx[r, j] = g * p[j] + xh * q[j] + o[j] (stream: as apply_cols) */                   \
    void (*bwd_cols_dx_##sfx)(const T *dy, const T *x, T *dx, size_t ld, size_t rows,       \
                              size_t cols, const void *params, int stream, int act);

typedef struct {
    const char *name;
    CNORM_DECLARE_LEAVES(float, float, f32)
    CNORM_DECLARE_LEAVES(double, double, f64)
    CNORM_DECLARE_LEAVES(uint16_t, float, f16)
    CNORM_DECLARE_LEAVES(uint16_t, float, bf16)
} cnorm_kernels_t;

extern const cnorm_kernels_t cnorm_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const cnorm_kernels_t cnorm_kernels_avx2;
extern const cnorm_kernels_t cnorm_kernels_avx512;
#endif
#if defined(__aarch64__)
extern const cnorm_kernels_t cnorm_kernels_neon;
#endif

/* Process-wide settings (ISA, thread count) are ints that any thread may
 * read or write while others run: relaxed atomics make that well-defined,
 * and a call that races with a setter uses either value, both valid. */
#if defined(__GNUC__) || defined(__clang__)
#define CNORM_LOAD(v) __atomic_load_n(&(v), __ATOMIC_RELAXED)
#define CNORM_STORE(v, x) __atomic_store_n(&(v), (x), __ATOMIC_RELAXED)
#else
#define CNORM_LOAD(v) (v)
#define CNORM_STORE(v, x) ((v) = (x))
#endif

/* Forced inlining, for templates whose constant arguments (the activation,
 * NULL parameters) must fold away in each caller. */
#if defined(__GNUC__) || defined(__clang__)
#define CNORM_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define CNORM_ALWAYS_INLINE static inline
#endif

/* Full unrolling of a short loop over an array of vector accumulators:
 * left rolled (gcc 12 keeps nested reduction loops so), the array lives in
 * memory and every add goes through the stack. */
#if defined(__GNUC__) || defined(__clang__)
#define CNORM_UNROLL _Pragma("GCC unroll 16")
#else
#define CNORM_UNROLL
#endif

/* Cache-line alignment for scratch the leaves store vectors into: a
 * column tile that starts mid-line makes every other vector store split a
 * line (the column cascade measured 12% slower so). */
#if defined(__GNUC__) || defined(__clang__)
#define CNORM_ALIGN_LINE __attribute__((aligned(64)))
#else
#define CNORM_ALIGN_LINE
#endif

/* The active table (dispatch.c). */
const cnorm_kernels_t *cnorm_active_kernels(void);

/* Threads a call over `work` elements should use (1 below the threshold). */
int cnorm_threads_for(size_t work);

#endif
