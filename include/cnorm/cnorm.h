/* cnorm: batch, layer, instance, group and RMS normalization on the CPU.
 *
 * Plain C99 API for embedding: raw pointers, explicit sizes, no Python.
 * Every function returns CNORM_OK (0) or a negative cnorm_status and never
 * aborts.  Tensors are dense and C-contiguous in the layout named by the
 * call: NCHW means (n, c, spatial), NHWC means (n, spatial, c), where
 * "spatial" is the product of all spatial dims (1 for (N, C) input).
 *
 * Statistics are accumulated in double for every storage type (Welford per
 * SIMD lane, Chan merges of fixed-size chunks), so results do not depend on
 * the thread count.  Statistics outputs (mean, var, rstd) are always double.
 *
 * Any output pointer may equal the matching input pointer (in place).
 */
#ifndef CNORM_CNORM_H
#define CNORM_CNORM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CNORM_OK = 0,
    CNORM_ERR_NULL = -1,      /* a required pointer is NULL */
    CNORM_ERR_SIZE = -2,      /* a zero-size group, or sizes whose product overflows */
    CNORM_ERR_GROUPS = -3,    /* groups is 0 or does not divide channels */
    CNORM_ERR_EPS = -4,       /* eps is negative or not finite */
    CNORM_ERR_ALLOC = -5,     /* scratch memory could not be allocated */
    CNORM_ERR_ISA = -6,       /* ISA unknown, not compiled in, or not supported by this CPU */
    CNORM_ERR_LAYOUT = -7     /* layout is neither CNORM_NCHW nor CNORM_NHWC */
} cnorm_status;

typedef enum { CNORM_NCHW = 0, CNORM_NHWC = 1 } cnorm_layout;

typedef enum {
    CNORM_ISA_SCALAR = 0,
    CNORM_ISA_AVX2 = 1,
    CNORM_ISA_AVX512 = 2,
    CNORM_ISA_NEON = 3
} cnorm_isa;

/* ---- runtime configuration ------------------------------------------- */

/* Best ISA this CPU and build support; the active one; force one. */
cnorm_isa cnorm_best_isa(void);
cnorm_isa cnorm_get_isa(void);
int cnorm_set_isa(cnorm_isa isa);
int cnorm_isa_available(cnorm_isa isa);
const char *cnorm_isa_name(cnorm_isa isa);

/* Threads used by large calls.  0 restores the default, which follows
 * OpenMP (OMP_NUM_THREADS, omp_set_num_threads, threadpoolctl). */
int cnorm_set_num_threads(int n);
int cnorm_get_num_threads(void);
int cnorm_has_openmp(void);

const char *cnorm_status_string(int status);

/* Compiler that built the library, e.g. "gcc 12.2.0". */
const char *cnorm_compiler(void);

/* ---- layer norm: `rows` rows of `cols`, stats per row ------------------
 * y = (x - mean) * (weight * rstd) + bias, weight/bias of length cols or
 * NULL.  mean_out/rstd_out (length rows) may be NULL. */
int cnorm_layer_norm_f32(const float *x, float *y, size_t rows, size_t cols,
                         const float *weight, const float *bias, double eps,
                         double *mean_out, double *rstd_out);
int cnorm_layer_norm_f64(const double *x, double *y, size_t rows, size_t cols,
                         const double *weight, const double *bias, double eps,
                         double *mean_out, double *rstd_out);

/* ---- RMS norm: y = x * (weight * rstd), rstd = 1/sqrt(mean(x^2) + eps) --- */
int cnorm_rms_norm_f32(const float *x, float *y, size_t rows, size_t cols,
                       const float *weight, double eps, double *rstd_out);
int cnorm_rms_norm_f64(const double *x, double *y, size_t rows, size_t cols,
                       const double *weight, double eps, double *rstd_out);

/* ---- group norm: stats per (sample, group of c/groups channels) ----------
 * weight/bias per channel (length c) or NULL.  mean_out/var_out (length
 * n*groups, biased variance) may be NULL.  Instance norm is groups == c. */
int cnorm_group_norm_f32(const float *x, float *y, size_t n, size_t c, size_t spatial,
                         size_t groups, cnorm_layout layout, const float *weight,
                         const float *bias, double eps, double *mean_out, double *var_out);
int cnorm_group_norm_f64(const double *x, double *y, size_t n, size_t c, size_t spatial,
                         size_t groups, cnorm_layout layout, const double *weight,
                         const double *bias, double eps, double *mean_out, double *var_out);

/* ---- batch norm: stats per channel over (n, spatial) ----------------------
 * With mean_in and var_in (length c) both non-NULL they are used (inference);
 * otherwise batch statistics are computed and, if mean_out/var_out are
 * non-NULL, stored there (biased variance). */
int cnorm_batch_norm_f32(const float *x, float *y, size_t n, size_t c, size_t spatial,
                         cnorm_layout layout, const float *weight, const float *bias,
                         double eps, const double *mean_in, const double *var_in,
                         double *mean_out, double *var_out);
int cnorm_batch_norm_f64(const double *x, double *y, size_t n, size_t c, size_t spatial,
                         cnorm_layout layout, const double *weight, const double *bias,
                         double eps, const double *mean_in, const double *var_in,
                         double *mean_out, double *var_out);

/* ---- moments: x viewed as (outer, len, inner), reduce the middle axis ----
 * mean/var have outer*inner entries; var = M2 / (len - ddof) (IEEE inf/NaN
 * when len <= ddof). */
int cnorm_moments_f32(const float *x, size_t outer, size_t len, size_t inner,
                      double ddof, double *mean, double *var);
int cnorm_moments_f64(const double *x, size_t outer, size_t len, size_t inner,
                      double ddof, double *mean, double *var);

#ifdef __cplusplus
}
#endif
#endif
