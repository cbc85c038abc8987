/* Shared helpers for the C tests: a seeded RNG, the four storage types
 * behind one interface, naive float64 references of every variant, checks
 * with tolerances relative to the storage precision, and a loop over every
 * ISA path this build and CPU have.
 *
 * Only the public header is used: the tests see the library as an embedding
 * program does.  The float16/bfloat16 codecs here are written independently
 * of the library's.  Each test is one program; it prints every failing
 * check with its case (ISA, dtype, shape, index, input, expected, got) and
 * exits non-zero if any failed.
 */
#ifndef CNORM_TEST_CHECK_H
#define CNORM_TEST_CHECK_H

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnorm/cnorm.h"

/* ---- bookkeeping ---------------------------------------------------------- */

static long check_count = 0, check_failed = 0;
static double check_worst[4]; /* per dtype: largest error / tolerance the array checks saw */
static char check_ctx[512] = "";
#define CHECK_MAX_PRINTED 40 /* failures printed in full; the rest are counted */

/* Describe the current case; printed with every failure. */
static inline void set_ctx(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(check_ctx, sizeof check_ctx, fmt, ap);
    va_end(ap);
}

static inline void check_fail_at(const char *file, int line, const char *fmt, ...) {
    ++check_failed;
    if (check_failed > CHECK_MAX_PRINTED) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d [isa=%s %s] ", file, line, cnorm_isa_name(cnorm_get_isa()), check_ctx);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* CHECK(cond, "format", ...): count, and report with the case if false. */
#define CHECK(cond, ...)                                                 \
    do {                                                                 \
        ++check_count;                                                   \
        if (!(cond)) check_fail_at(__FILE__, __LINE__, __VA_ARGS__);     \
    } while (0)

#define CHECK_STATUS(call, want)                                                          \
    do {                                                                                  \
        const int got_st_ = (call);                                                       \
        CHECK(got_st_ == (want), "%s returned %d (%s), expected %d (%s)", #call, got_st_, \
              cnorm_status_string(got_st_), (int)(want), cnorm_status_string(want));      \
    } while (0)

/* Summary line; the exit status of main. */
static inline int check_report(const char *name) {
    if (check_failed > CHECK_MAX_PRINTED)
        fprintf(stderr, "... %ld more failures not shown\n", check_failed - CHECK_MAX_PRINTED);
    printf("%s: %ld checks, %ld failed; worst error/tolerance f32 %.2g f64 %.2g f16 %.2g bf16 %.2g\n"
           "  (build: %s, OpenMP %d, threads %d, best ISA %s)\n",
           name, check_count, check_failed, check_worst[0], check_worst[1], check_worst[2], check_worst[3],
           cnorm_compiler(), cnorm_has_openmp(), cnorm_get_num_threads(), cnorm_isa_name(cnorm_best_isa()));
    return check_failed ? 1 : 0;
}

/* ---- every ISA path ------------------------------------------------------- */

/* Next available ISA after `prev` (-1 to start), made active; -1 when done,
 * with the best one restored.  Use through FOR_EACH_ISA. */
static inline int isa_next(int prev) {
    for (int isa = prev + 1; isa <= (int)CNORM_ISA_NEON; ++isa) {
        if (!cnorm_isa_available((cnorm_isa)isa)) continue;
        const int st = cnorm_set_isa((cnorm_isa)isa);
        if (st != CNORM_OK || cnorm_get_isa() != (cnorm_isa)isa) {
            check_fail_at(__FILE__, __LINE__, "cnorm_set_isa(%s) returned %d, active %s",
                          cnorm_isa_name((cnorm_isa)isa), st, cnorm_isa_name(cnorm_get_isa()));
            continue;
        }
        return isa;
    }
    cnorm_set_isa(cnorm_best_isa());
    return -1;
}

#define FOR_EACH_ISA(isa) for (int isa = isa_next(-1); isa >= 0; isa = isa_next(isa))

/* ---- random numbers (splitmix64: same stream on every platform) ------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static inline void rng_seed(uint64_t seed) { rng_state = seed * 0x9e3779b97f4a7c15ull + 1u; }

static inline uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static inline double rng_uniform(double lo, double hi) {
    return lo + (hi - lo) * ((double)(rng_u64() >> 11) * (1.0 / 9007199254740992.0));
}

static inline double rng_normal(void) {
    const double u = rng_uniform(0x1p-53, 1.0), v = rng_uniform(0.0, 1.0);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ---- storage types ---------------------------------------------------------- */

typedef enum { DT_F32, DT_F64, DT_F16, DT_BF16 } dtype;
#define DT_COUNT 4

static inline const char *dt_name(dtype dt) {
    static const char *const names[] = {"f32", "f64", "f16", "bf16"};
    return names[dt];
}

static inline size_t dt_size(dtype dt) {
    return dt == DT_F64 ? sizeof(double) : dt == DT_F32 ? sizeof(float) : sizeof(uint16_t);
}

/* IEEE binary16: exact decode; encode rounds to nearest even. */
static inline double f16_decode(uint16_t h) {
    const int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0x1f) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp((double)m, -24);
    else v = ldexp((double)(m + 1024), e - 25);
    return sign ? -v : v;
}

static inline uint16_t f16_encode(double v) {
    if (isnan(v)) return 0x7e00;
    const uint16_t sign = signbit(v) ? 0x8000 : 0;
    const double a = fabs(v);
    if (a >= 65520.0) return sign | 0x7c00;
    if (a < 0x1p-14) return (uint16_t)(sign | (uint16_t)nearbyint(a * 0x1p24)); /* subnormal (or 0x400) */
    int e;
    frexp(a, &e); /* a = f 2^e, f in [0.5, 1) */
    int E = e - 1;
    double m = nearbyint(ldexp(a, 10 - E));
    if (m >= 2048.0) m = 1024.0, ++E;
    if (E > 15) return sign | 0x7c00;
    return (uint16_t)(sign | ((E + 15) << 10) | ((unsigned)m - 1024u));
}

static inline double bf16_decode(uint16_t h) {
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t bf16_encode(double v) {
    const float f = (float)v;
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if (isnan(f)) return 0x7fc0;
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

/* A tensor of one storage type; values go in and out as double. */
typedef struct {
    dtype dt;
    size_t n;
    void *p;
} buf_t;

static inline buf_t buf_new(dtype dt, size_t n) {
    buf_t b = {dt, n, calloc(n ? n : 1, dt_size(dt))};
    if (!b.p) {
        fprintf(stderr, "out of memory (%zu x %s)\n", n, dt_name(dt));
        exit(2);
    }
    return b;
}

static inline void buf_free(buf_t *b) {
    free(b->p);
    b->p = NULL;
}

static inline double buf_get(const buf_t *b, size_t i) {
    switch (b->dt) {
    case DT_F32: return ((const float *)b->p)[i];
    case DT_F64: return ((const double *)b->p)[i];
    case DT_F16: return f16_decode(((const uint16_t *)b->p)[i]);
    default: return bf16_decode(((const uint16_t *)b->p)[i]);
    }
}

/* Store v rounded to the storage type; returns the value actually stored. */
static inline double buf_set(buf_t *b, size_t i, double v) {
    switch (b->dt) {
    case DT_F32: ((float *)b->p)[i] = (float)v; break;
    case DT_F64: ((double *)b->p)[i] = v; break;
    case DT_F16: ((uint16_t *)b->p)[i] = f16_encode(v); break;
    default: ((uint16_t *)b->p)[i] = bf16_encode(v); break;
    }
    return buf_get(b, i);
}

/* All values as double (malloc'd). */
static inline double *buf_values(const buf_t *b) {
    double *v = (double *)malloc((b->n ? b->n : 1) * sizeof *v);
    if (!v) exit(2);
    for (size_t i = 0; i < b->n; ++i) v[i] = buf_get(b, i);
    return v;
}

/* x = offset + spread * N(0, 1), rounded to the storage type (read the
 * stored values back with buf_values for the reference). */
static inline buf_t buf_random(dtype dt, size_t n, double offset, double spread) {
    buf_t b = buf_new(dt, n);
    for (size_t i = 0; i < n; ++i) buf_set(&b, i, offset + spread * rng_normal());
    return b;
}

static inline int buf_equal(const buf_t *a, const buf_t *b) {
    return a->dt == b->dt && a->n == b->n && memcmp(a->p, b->p, a->n * dt_size(a->dt)) == 0;
}

/* Per-channel weights/bias: float for f32/f16/bf16 calls, double for f64.
 * The values are float-representable, so both views are the same numbers. */
typedef struct {
    size_t n;
    double *d;
    float *f;
} param_t;

static inline param_t param_new(size_t n, double lo, double hi) {
    param_t p = {n, (double *)malloc((n ? n : 1) * sizeof(double)), (float *)malloc((n ? n : 1) * sizeof(float))};
    if (!p.d || !p.f) exit(2);
    for (size_t i = 0; i < n; ++i) {
        p.f[i] = (float)rng_uniform(lo, hi);
        p.d[i] = p.f[i];
    }
    return p;
}

static inline void param_free(param_t *p) {
    free(p->d);
    free(p->f);
}

/* The pointer to hand to the dt variant (NULL for no parameter). */
static inline const void *param_ptr(const param_t *p, dtype dt) {
    return p ? (dt == DT_F64 ? (const void *)p->d : (const void *)p->f) : NULL;
}

/* ---- the library through one interface per variant --------------------------- */

static inline int run_layer_norm(dtype dt, const void *x, void *y, size_t rows, size_t cols, const param_t *w,
                                 const param_t *b, double eps, double *mean, double *rstd, cnorm_activation act) {
    const void *pw = param_ptr(w, dt), *pb = param_ptr(b, dt);
    switch (dt) {
    case DT_F32: return cnorm_layer_norm_f32((const float *)x, (float *)y, rows, cols, (const float *)pw, (const float *)pb, eps, mean, rstd, act);
    case DT_F64: return cnorm_layer_norm_f64((const double *)x, (double *)y, rows, cols, (const double *)pw, (const double *)pb, eps, mean, rstd, act);
    case DT_F16: return cnorm_layer_norm_f16((const uint16_t *)x, (uint16_t *)y, rows, cols, (const float *)pw, (const float *)pb, eps, mean, rstd, act);
    default: return cnorm_layer_norm_bf16((const uint16_t *)x, (uint16_t *)y, rows, cols, (const float *)pw, (const float *)pb, eps, mean, rstd, act);
    }
}

static inline int run_rms_norm(dtype dt, const void *x, void *y, size_t rows, size_t cols, const param_t *w,
                               double eps, double *rstd) {
    const void *pw = param_ptr(w, dt);
    switch (dt) {
    case DT_F32: return cnorm_rms_norm_f32((const float *)x, (float *)y, rows, cols, (const float *)pw, eps, rstd);
    case DT_F64: return cnorm_rms_norm_f64((const double *)x, (double *)y, rows, cols, (const double *)pw, eps, rstd);
    case DT_F16: return cnorm_rms_norm_f16((const uint16_t *)x, (uint16_t *)y, rows, cols, (const float *)pw, eps, rstd);
    default: return cnorm_rms_norm_bf16((const uint16_t *)x, (uint16_t *)y, rows, cols, (const float *)pw, eps, rstd);
    }
}

static inline int run_group_norm(dtype dt, const void *x, void *y, size_t n, size_t c, size_t spatial,
                                 size_t groups, cnorm_layout layout, const param_t *w, const param_t *b,
                                 double eps, double *mean, double *var, cnorm_activation act) {
    const void *pw = param_ptr(w, dt), *pb = param_ptr(b, dt);
    switch (dt) {
    case DT_F32: return cnorm_group_norm_f32((const float *)x, (float *)y, n, c, spatial, groups, layout, (const float *)pw, (const float *)pb, eps, mean, var, act);
    case DT_F64: return cnorm_group_norm_f64((const double *)x, (double *)y, n, c, spatial, groups, layout, (const double *)pw, (const double *)pb, eps, mean, var, act);
    case DT_F16: return cnorm_group_norm_f16((const uint16_t *)x, (uint16_t *)y, n, c, spatial, groups, layout, (const float *)pw, (const float *)pb, eps, mean, var, act);
    default: return cnorm_group_norm_bf16((const uint16_t *)x, (uint16_t *)y, n, c, spatial, groups, layout, (const float *)pw, (const float *)pb, eps, mean, var, act);
    }
}

static inline int run_batch_norm(dtype dt, const void *x, void *y, size_t n, size_t c, size_t spatial,
                                 cnorm_layout layout, const param_t *w, const param_t *b, double eps,
                                 const double *mean_in, const double *var_in, double *mean_out,
                                 double *var_out, cnorm_activation act) {
    const void *pw = param_ptr(w, dt), *pb = param_ptr(b, dt);
    switch (dt) {
    case DT_F32: return cnorm_batch_norm_f32((const float *)x, (float *)y, n, c, spatial, layout, (const float *)pw, (const float *)pb, eps, mean_in, var_in, mean_out, var_out, act);
    case DT_F64: return cnorm_batch_norm_f64((const double *)x, (double *)y, n, c, spatial, layout, (const double *)pw, (const double *)pb, eps, mean_in, var_in, mean_out, var_out, act);
    case DT_F16: return cnorm_batch_norm_f16((const uint16_t *)x, (uint16_t *)y, n, c, spatial, layout, (const float *)pw, (const float *)pb, eps, mean_in, var_in, mean_out, var_out, act);
    default: return cnorm_batch_norm_bf16((const uint16_t *)x, (uint16_t *)y, n, c, spatial, layout, (const float *)pw, (const float *)pb, eps, mean_in, var_in, mean_out, var_out, act);
    }
}

/* The backward passes: dw/db (may be NULL) are float for the float/half
 * variants, double for f64 (buffers of weight_dtype(dt)). */
static inline dtype weight_dtype(dtype dt) { return dt == DT_F64 ? DT_F64 : DT_F32; }

static inline int run_layer_norm_backward(dtype dt, const void *dy, const void *x, void *dx, size_t rows, size_t cols,
                                          const double *mean, const double *rstd, const param_t *w, const param_t *b,
                                          double eps, cnorm_activation act, void *dw, void *db) {
    const void *pw = param_ptr(w, dt), *pb = param_ptr(b, dt);
    switch (dt) {
    case DT_F32: return cnorm_layer_norm_backward_f32((const float *)dy, (const float *)x, (float *)dx, rows, cols, mean, rstd, (const float *)pw, (const float *)pb, eps, act, (float *)dw, (float *)db);
    case DT_F64: return cnorm_layer_norm_backward_f64((const double *)dy, (const double *)x, (double *)dx, rows, cols, mean, rstd, (const double *)pw, (const double *)pb, eps, act, (double *)dw, (double *)db);
    case DT_F16: return cnorm_layer_norm_backward_f16((const uint16_t *)dy, (const uint16_t *)x, (uint16_t *)dx, rows, cols, mean, rstd, (const float *)pw, (const float *)pb, eps, act, (float *)dw, (float *)db);
    default: return cnorm_layer_norm_backward_bf16((const uint16_t *)dy, (const uint16_t *)x, (uint16_t *)dx, rows, cols, mean, rstd, (const float *)pw, (const float *)pb, eps, act, (float *)dw, (float *)db);
    }
}

static inline int run_rms_norm_backward(dtype dt, const void *dy, const void *x, void *dx, size_t rows, size_t cols,
                                        const double *rstd, const param_t *w, double eps, void *dw) {
    const void *pw = param_ptr(w, dt);
    switch (dt) {
    case DT_F32: return cnorm_rms_norm_backward_f32((const float *)dy, (const float *)x, (float *)dx, rows, cols, rstd, (const float *)pw, eps, (float *)dw);
    case DT_F64: return cnorm_rms_norm_backward_f64((const double *)dy, (const double *)x, (double *)dx, rows, cols, rstd, (const double *)pw, eps, (double *)dw);
    case DT_F16: return cnorm_rms_norm_backward_f16((const uint16_t *)dy, (const uint16_t *)x, (uint16_t *)dx, rows, cols, rstd, (const float *)pw, eps, (float *)dw);
    default: return cnorm_rms_norm_backward_bf16((const uint16_t *)dy, (const uint16_t *)x, (uint16_t *)dx, rows, cols, rstd, (const float *)pw, eps, (float *)dw);
    }
}

static inline int run_group_norm_backward(dtype dt, const void *dy, const void *x, void *dx, size_t n, size_t c,
                                          size_t spatial, size_t groups, cnorm_layout layout, const double *mean,
                                          const double *rstd, const param_t *w, const param_t *b, double eps,
                                          cnorm_activation act, void *dw, void *db) {
    const void *pw = param_ptr(w, dt), *pb = param_ptr(b, dt);
    switch (dt) {
    case DT_F32: return cnorm_group_norm_backward_f32((const float *)dy, (const float *)x, (float *)dx, n, c, spatial, groups, layout, mean, rstd, (const float *)pw, (const float *)pb, eps, act, (float *)dw, (float *)db);
    case DT_F64: return cnorm_group_norm_backward_f64((const double *)dy, (const double *)x, (double *)dx, n, c, spatial, groups, layout, mean, rstd, (const double *)pw, (const double *)pb, eps, act, (double *)dw, (double *)db);
    case DT_F16: return cnorm_group_norm_backward_f16((const uint16_t *)dy, (const uint16_t *)x, (uint16_t *)dx, n, c, spatial, groups, layout, mean, rstd, (const float *)pw, (const float *)pb, eps, act, (float *)dw, (float *)db);
    default: return cnorm_group_norm_backward_bf16((const uint16_t *)dy, (const uint16_t *)x, (uint16_t *)dx, n, c, spatial, groups, layout, mean, rstd, (const float *)pw, (const float *)pb, eps, act, (float *)dw, (float *)db);
    }
}

static inline int run_batch_norm_backward(dtype dt, const void *dy, const void *x, void *dx, size_t n, size_t c,
                                          size_t spatial, cnorm_layout layout, const double *mean, const double *rstd,
                                          const param_t *w, const param_t *b, double eps, int training,
                                          cnorm_activation act, void *dw, void *db) {
    const void *pw = param_ptr(w, dt), *pb = param_ptr(b, dt);
    switch (dt) {
    case DT_F32: return cnorm_batch_norm_backward_f32((const float *)dy, (const float *)x, (float *)dx, n, c, spatial, layout, mean, rstd, (const float *)pw, (const float *)pb, eps, training, act, (float *)dw, (float *)db);
    case DT_F64: return cnorm_batch_norm_backward_f64((const double *)dy, (const double *)x, (double *)dx, n, c, spatial, layout, mean, rstd, (const double *)pw, (const double *)pb, eps, training, act, (double *)dw, (double *)db);
    case DT_F16: return cnorm_batch_norm_backward_f16((const uint16_t *)dy, (const uint16_t *)x, (uint16_t *)dx, n, c, spatial, layout, mean, rstd, (const float *)pw, (const float *)pb, eps, training, act, (float *)dw, (float *)db);
    default: return cnorm_batch_norm_backward_bf16((const uint16_t *)dy, (const uint16_t *)x, (uint16_t *)dx, n, c, spatial, layout, mean, rstd, (const float *)pw, (const float *)pb, eps, training, act, (float *)dw, (float *)db);
    }
}

static inline int run_moments(dtype dt, const void *x, size_t outer, size_t len, size_t inner, double ddof,
                              double *mean, double *var) {
    switch (dt) {
    case DT_F32: return cnorm_moments_f32((const float *)x, outer, len, inner, ddof, mean, var);
    case DT_F64: return cnorm_moments_f64((const double *)x, outer, len, inner, ddof, mean, var);
    case DT_F16: return cnorm_moments_f16((const uint16_t *)x, outer, len, inner, ddof, mean, var);
    default: return cnorm_moments_bf16((const uint16_t *)x, outer, len, inner, ddof, mean, var);
    }
}

static inline int run_moments_split(dtype dt, const void *x, size_t lead, size_t keep, size_t len, size_t inner,
                                    double ddof, double *mean, double *var) {
    switch (dt) {
    case DT_F32: return cnorm_moments_split_f32((const float *)x, lead, keep, len, inner, ddof, mean, var);
    case DT_F64: return cnorm_moments_split_f64((const double *)x, lead, keep, len, inner, ddof, mean, var);
    case DT_F16: return cnorm_moments_split_f16((const uint16_t *)x, lead, keep, len, inner, ddof, mean, var);
    default: return cnorm_moments_split_bf16((const uint16_t *)x, lead, keep, len, inner, ddof, mean, var);
    }
}

static inline int run_moments_partial(dtype dt, const void *x, size_t lead, size_t keep, size_t len, size_t inner,
                                      double *mean, double *m2) {
    switch (dt) {
    case DT_F32: return cnorm_moments_partial_f32((const float *)x, lead, keep, len, inner, mean, m2);
    case DT_F64: return cnorm_moments_partial_f64((const double *)x, lead, keep, len, inner, mean, m2);
    case DT_F16: return cnorm_moments_partial_f16((const uint16_t *)x, lead, keep, len, inner, mean, m2);
    default: return cnorm_moments_partial_bf16((const uint16_t *)x, lead, keep, len, inner, mean, m2);
    }
}

/* ---- float64 references (naive two-pass) --------------------------------------- */

static const cnorm_activation ALL_ACTS[] = {CNORM_ACT_NONE, CNORM_ACT_RELU, CNORM_ACT_SILU, CNORM_ACT_GELU};
#define ACT_COUNT 4

static inline const char *act_name(cnorm_activation act) {
    static const char *const names[] = {"none", "relu", "silu", "gelu"};
    return (unsigned)act < 4 ? names[act] : "bad";
}

static inline double ref_act(double v, cnorm_activation act) {
    switch (act) {
    case CNORM_ACT_RELU: return v > 0.0 ? v : 0.0;
    case CNORM_ACT_SILU: return v / (1.0 + exp(-v));
    case CNORM_ACT_GELU: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    default: return v;
    }
}

/* Accumulates mean and biased variance in double, accurately on offset
 * data: sums of x - shift (shift = the first value), then the corrected
 * two-pass formula.  Feed the values twice: pass 0 for the mean, pass 1
 * for the squared deviations. */
typedef struct {
    double shift, s, ss, corr, mean;
    size_t n;
    int started;
} ref_acc_t;

static inline void acc_add(ref_acc_t *a, int pass, double v) {
    if (pass == 0) {
        if (!a->started) a->shift = v, a->started = 1;
        a->s += v - a->shift;
        ++a->n;
    } else {
        const double d = v - a->mean;
        a->ss += d * d;
        a->corr += d;
    }
}

static inline void acc_mid(ref_acc_t *a) { a->mean = a->shift + a->s / (double)a->n; }

static inline double acc_var(const ref_acc_t *a) {
    return (a->ss - a->corr * a->corr / (double)a->n) / (double)a->n;
}

/* mean (corrected) and biased variance of x[off + k*stride], k < count */
static inline void ref_stats(const double *x, size_t off, size_t count, size_t stride, double *mean, double *var) {
    ref_acc_t a;
    memset(&a, 0, sizeof a);
    for (int pass = 0; pass < 2; ++pass) {
        for (size_t k = 0; k < count; ++k) acc_add(&a, pass, x[off + k * stride]);
        if (pass == 0) acc_mid(&a);
    }
    *mean = a.mean + a.corr / (double)count;
    *var = acc_var(&a);
}

static inline void ref_layer_norm(const double *x, double *y, size_t rows, size_t cols, const param_t *w,
                                  const param_t *b, double eps, double *mean, double *rstd, cnorm_activation act) {
    for (size_t r = 0; r < rows; ++r) {
        double m, v;
        ref_stats(x, r * cols, cols, 1, &m, &v);
        const double rs = 1.0 / sqrt(v + eps);
        for (size_t j = 0; j < cols; ++j)
            y[r * cols + j] = ref_act((x[r * cols + j] - m) * rs * (w ? w->d[j] : 1.0) + (b ? b->d[j] : 0.0), act);
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
    }
}

static inline void ref_rms_norm(const double *x, double *y, size_t rows, size_t cols, const param_t *w, double eps,
                                double *rstd) {
    for (size_t r = 0; r < rows; ++r) {
        double ms = 0.0;
        for (size_t j = 0; j < cols; ++j) ms += x[r * cols + j] * x[r * cols + j];
        const double rs = 1.0 / sqrt(ms / (double)cols + eps);
        for (size_t j = 0; j < cols; ++j) y[r * cols + j] = x[r * cols + j] * rs * (w ? w->d[j] : 1.0);
        if (rstd) rstd[r] = rs;
    }
}

/* Flat index of (sample i, channel ch, spatial position s). */
static inline size_t idx(cnorm_layout layout, size_t c, size_t spatial, size_t i, size_t ch, size_t s) {
    return layout == CNORM_NCHW ? (i * c + ch) * spatial + s : (i * spatial + s) * c + ch;
}

static inline void ref_group_norm(const double *x, double *y, size_t n, size_t c, size_t spatial, size_t groups,
                                  cnorm_layout layout, const param_t *w, const param_t *b, double eps,
                                  double *mean, double *var, cnorm_activation act) {
    const size_t cpg = c / groups;
    for (size_t i = 0; i < n; ++i)
        for (size_t g = 0; g < groups; ++g) {
            ref_acc_t a;
            memset(&a, 0, sizeof a);
            for (int pass = 0; pass < 2; ++pass) {
                for (size_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
                    for (size_t p = 0; p < spatial; ++p) acc_add(&a, pass, x[idx(layout, c, spatial, i, ch, p)]);
                if (pass == 0) acc_mid(&a);
            }
            const double m = a.mean + a.corr / (double)a.n;
            const double v = acc_var(&a), rs = 1.0 / sqrt(v + eps);
            for (size_t ch = g * cpg; ch < (g + 1) * cpg; ++ch)
                for (size_t p = 0; p < spatial; ++p) {
                    const size_t k = idx(layout, c, spatial, i, ch, p);
                    y[k] = ref_act((x[k] - m) * rs * (w ? w->d[ch] : 1.0) + (b ? b->d[ch] : 0.0), act);
                }
            if (mean) mean[i * groups + g] = m;
            if (var) var[i * groups + g] = v;
        }
}

/* mean_in/var_in given: inference; else batch statistics (biased). */
static inline void ref_batch_norm(const double *x, double *y, size_t n, size_t c, size_t spatial,
                                  cnorm_layout layout, const param_t *w, const param_t *b, double eps,
                                  const double *mean_in, const double *var_in, double *mean_out,
                                  double *var_out, cnorm_activation act) {
    for (size_t ch = 0; ch < c; ++ch) {
        double m, v;
        if (mean_in && var_in) {
            m = mean_in[ch];
            v = var_in[ch];
        } else {
            ref_acc_t a;
            memset(&a, 0, sizeof a);
            for (int pass = 0; pass < 2; ++pass) {
                for (size_t i = 0; i < n; ++i)
                    for (size_t p = 0; p < spatial; ++p) acc_add(&a, pass, x[idx(layout, c, spatial, i, ch, p)]);
                if (pass == 0) acc_mid(&a);
            }
            m = a.mean + a.corr / (double)a.n;
            v = acc_var(&a);
            if (mean_out) mean_out[ch] = m;
            if (var_out) var_out[ch] = v;
        }
        const double rs = 1.0 / sqrt(v + eps);
        for (size_t i = 0; i < n; ++i)
            for (size_t p = 0; p < spatial; ++p) {
                const size_t k = idx(layout, c, spatial, i, ch, p);
                y[k] = ref_act((x[k] - m) * rs * (w ? w->d[ch] : 1.0) + (b ? b->d[ch] : 0.0), act);
            }
    }
}

static inline void ref_moments(const double *x, size_t outer, size_t len, size_t inner, double ddof, double *mean,
                               double *var) {
    for (size_t o = 0; o < outer; ++o)
        for (size_t j = 0; j < inner; ++j) {
            double m, v;
            ref_stats(x, o * len * inner + j, len, inner, &m, &v);
            mean[o * inner + j] = m;
            var[o * inner + j] = v * (double)len / ((double)len - ddof);
        }
}

/* ---- tolerances and array checks ------------------------------------------------- */

/* Unit in the last place of dt at |v| (the subnormal spacing below). */
static inline double ulp_of(dtype dt, double v) {
    static const int mant[] = {23, 52, 10, 7}, emin[] = {-126, -1022, -14, -126};
    int e;
    v = fabs(v);
    if (v == 0.0 || !isfinite(v)) return ldexp(1.0, emin[dt] - mant[dt]);
    frexp(v, &e);
    --e;
    if (e < emin[dt]) e = emin[dt];
    return ldexp(1.0, e - mant[dt]);
}

/* Allowed |got - want| for an output of storage dt.  `scale` is the size of
 * the terms it was computed from (1 for normalized data with O(1) weights):
 * float64 1e-12, float32 2e-6 (17 ulp) relative to that; half types 2 ulp
 * of the value plus the float32 compute error.  The summary line prints the
 * worst error/tolerance seen: about 0.02 (float64), 0.2 (float32) and 0.25
 * (half: a correctly rounded result is within 0.5 ulp) for this library. */
static inline double tol_for(dtype dt, double want, double scale) {
    switch (dt) {
    case DT_F64: return 1e-12 * (fabs(want) + scale);
    case DT_F32: return 2e-6 * (fabs(want) + scale);
    default: return 2.0 * ulp_of(dt, want) + 2e-6 * scale;
    }
}

static inline int same_special(double got, double want) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    return 0;
}

/* got[i] vs want[i] (i < n) within tol_for(dt, want[i], scale); `input`
 * (may be NULL) is printed with a failure.  Reports at most 5 elements per
 * call; returns the number that failed. */
static inline long check_close_at(const char *file, int line, const char *what, const double *got,
                                  const double *want, const double *input, size_t n, dtype dt, double scale) {
    long bad = 0;
    for (size_t i = 0; i < n; ++i) {
        const double tol = tol_for(dt, want[i], scale), err = fabs(got[i] - want[i]);
        if (err <= tol) {
            if (err > check_worst[dt] * tol) check_worst[dt] = err / tol;
            continue;
        }
        if (same_special(got[i], want[i])) continue;
        if (++bad <= 5) {
            char in[64] = "";
            if (input) snprintf(in, sizeof in, " input %.9g,", input[i]);
            check_fail_at(file, line, "%s[%zu]:%s expected %.9g, got %.9g (error %.3g > tol %.3g)", what, i, in,
                          want[i], got[i], err, tol);
            --check_failed; /* counted once below */
        }
    }
    ++check_count;
    if (bad) {
        ++check_failed;
        if (bad > 5 && check_failed <= CHECK_MAX_PRINTED)
            fprintf(stderr, "     %s: %ld of %zu elements out of tolerance\n", what, bad, n);
    }
    return bad;
}

#define check_close(...) check_close_at(__FILE__, __LINE__, __VA_ARGS__)

/* The output buffer against a reference. */
#define check_buf(...) check_buf_at(__FILE__, __LINE__, __VA_ARGS__)
static inline long check_buf_at(const char *file, int line, const char *what, const buf_t *y, const double *want,
                                const double *input, double scale) {
    double *got = buf_values(y);
    const long bad = check_close_at(file, line, what, got, want, input, y->n, y->dt, scale);
    free(got);
    return bad;
}

/* Statistics (double outputs) computed from dt data: float-lane Welford for
 * the float types, double for f64.  scale: the data's spread/offset size. */
static inline double stat_rtol(dtype dt) { return dt == DT_F64 ? 1e-12 : 2e-6; }

#define check_stats(...) check_stats_at(__FILE__, __LINE__, __VA_ARGS__)
static inline long check_stats_at(const char *file, int line, const char *what, const double *got,
                                  const double *want, size_t n, dtype dt, double scale) {
    long bad = 0;
    const double rt = stat_rtol(dt);
    for (size_t i = 0; i < n; ++i) {
        const double tol = rt * (fabs(want[i]) + scale), err = fabs(got[i] - want[i]);
        if (err <= tol) {
            if (err > check_worst[dt] * tol) check_worst[dt] = err / tol;
            continue;
        }
        if (same_special(got[i], want[i])) continue;
        if (++bad <= 5) {
            check_fail_at(file, line, "%s[%zu]: expected %.17g, got %.17g (error %.3g > tol %.3g)", what, i, want[i],
                          got[i], err, tol);
            --check_failed;
        }
    }
    ++check_count;
    if (bad) ++check_failed;
    return bad;
}

static inline double max_abs(const double *v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; ++i)
        if (fabs(v[i]) > m) m = fabs(v[i]);
    return m;
}

static inline double *dalloc(size_t n) {
    double *p = (double *)calloc(n ? n : 1, sizeof(double));
    if (!p) exit(2);
    return p;
}

#endif
