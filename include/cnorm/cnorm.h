/* cnorm: batch, layer, instance, group and RMS normalization on the CPU.
 *
 * Plain C99 API for embedding: raw pointers, explicit sizes, no Python.
 * Every function returns CNORM_OK (0) or a negative cnorm_status and never
 * aborts.  Tensors are dense and C-contiguous in the layout named by the
 * call: NCHW means (n, c, spatial), NHWC means (n, spatial, c), where
 * "spatial" is the product of all spatial dims (1 for (N, C) input).
 *
 * Storage types: _f32 (float), _f64 (double), _f16 (IEEE half) and _bf16
 * (bfloat16), the last two as uint16_t bit patterns, computed in float with
 * float weight/bias.  Statistics are single-pass Welford per SIMD lane with
 * Chan merges of fixed-size chunks, merged in double: results do not depend
 * on the thread count.  Statistics outputs (mean, var, rstd) are double.
 *
 * Any output pointer may equal the matching input pointer (in place).
 * Optional pointers (weight, bias, statistics outputs) may be NULL.
 */
#ifndef CNORM_CNORM_H
#define CNORM_CNORM_H

#include <stddef.h>
#include <stdint.h>

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
    CNORM_ERR_LAYOUT = -7,    /* layout is neither CNORM_NCHW nor CNORM_NHWC */
    CNORM_ERR_ARG = -8        /* another argument out of range (an unknown activation) */
} cnorm_status;

typedef enum { CNORM_NCHW = 0, CNORM_NHWC = 1 } cnorm_layout;

/* Activation fused into the apply step (saves a pass over memory):
 * relu max(y, 0); silu y * sigmoid(y); gelu 0.5 y (1 + erf(y / sqrt 2)). */
typedef enum {
    CNORM_ACT_NONE = 0,
    CNORM_ACT_RELU = 1,
    CNORM_ACT_SILU = 2,
    CNORM_ACT_GELU = 3
} cnorm_activation;

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

/* Threads used by large calls: at most OpenMP's limit (OMP_NUM_THREADS,
 * omp_set_num_threads, threadpoolctl; the core count by default), which
 * cnorm never changes.  n > 0 lowers it for cnorm; 0 restores the default.
 * In a child made by fork() every call runs on the calling thread and
 * cnorm_get_num_threads() is 1: OpenMP's thread pool does not survive
 * fork, and a parallel region there would wait forever. */
int cnorm_set_num_threads(int n);
int cnorm_get_num_threads(void);
int cnorm_has_openmp(void);

const char *cnorm_status_string(int status);

/* "none", "relu", "silu", "gelu" for the cnorm_activation codes 0..3, NULL
 * for any other code: bindings build their name tables from it. */
const char *cnorm_activation_name(int act);

/* Compiler that built the library, e.g. "gcc 12.2.0". */
const char *cnorm_compiler(void);

/* ---- layer norm: `rows` rows of `cols`, stats per row ------------------
 * y = act((x - mean) * (weight * rstd) + bias), weight/bias of length cols.
 * mean_out/rstd_out have length rows. */
int cnorm_layer_norm_f32(const float *x, float *y, size_t rows, size_t cols, const float *weight,
                          const float *bias, double eps, double *mean_out, double *rstd_out,
                          cnorm_activation act);
int cnorm_layer_norm_f64(const double *x, double *y, size_t rows, size_t cols, const double *weight,
                          const double *bias, double eps, double *mean_out, double *rstd_out,
                          cnorm_activation act);
int cnorm_layer_norm_f16(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, const float *weight,
                          const float *bias, double eps, double *mean_out, double *rstd_out,
                          cnorm_activation act);
int cnorm_layer_norm_bf16(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, const float *weight,
                          const float *bias, double eps, double *mean_out, double *rstd_out,
                          cnorm_activation act);

/* ---- RMS norm: y = x * (weight * rstd), rstd = 1/sqrt(mean(x^2) + eps) ---
 * weight of length cols; rstd_out of length rows. */
int cnorm_rms_norm_f32(const float *x, float *y, size_t rows, size_t cols, const float *weight,
                        double eps, double *rstd_out);
int cnorm_rms_norm_f64(const double *x, double *y, size_t rows, size_t cols, const double *weight,
                        double eps, double *rstd_out);
int cnorm_rms_norm_f16(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, const float *weight,
                        double eps, double *rstd_out);
int cnorm_rms_norm_bf16(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, const float *weight,
                        double eps, double *rstd_out);

/* ---- residual add + layer / RMS norm (inference fusions) ----------------
 * sum_out = x + residual (+ skip_bias), each add in the storage's compute
 * precision (float for the half types, rounded once to storage), then y =
 * layer_norm(sum_out) / rms_norm(sum_out) exactly as cnorm_layer_norm_* /
 * cnorm_rms_norm_* compute it on the stored sum (bitwise the same y and
 * statistics).  residual has residual_rows rows of cols (residual_rows
 * divides rows; row r of x adds row r % residual_rows: a residual that
 * broadcasts over the leading dims); skip_bias (length cols) may be NULL.
 * sum_out is required; it may be x, and y may be x or sum_out; either may
 * be residual only when residual_rows == rows.  One pass over memory: each
 * row's sum is normalized while it is in cache. */
int cnorm_add_layer_norm_f32(const float *x, const float *residual, size_t residual_rows,
                              const float *skip_bias, float *sum_out, float *y, size_t rows, size_t cols,
                              const float *weight, const float *bias, double eps, double *mean_out,
                              double *rstd_out, cnorm_activation act);
int cnorm_add_layer_norm_f64(const double *x, const double *residual, size_t residual_rows,
                              const double *skip_bias, double *sum_out, double *y, size_t rows, size_t cols,
                              const double *weight, const double *bias, double eps, double *mean_out,
                              double *rstd_out, cnorm_activation act);
int cnorm_add_layer_norm_f16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                              const float *skip_bias, uint16_t *sum_out, uint16_t *y, size_t rows, size_t cols,
                              const float *weight, const float *bias, double eps, double *mean_out,
                              double *rstd_out, cnorm_activation act);
int cnorm_add_layer_norm_bf16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                              const float *skip_bias, uint16_t *sum_out, uint16_t *y, size_t rows, size_t cols,
                              const float *weight, const float *bias, double eps, double *mean_out,
                              double *rstd_out, cnorm_activation act);
int cnorm_add_rms_norm_f32(const float *x, const float *residual, size_t residual_rows,
                            const float *skip_bias, float *sum_out, float *y, size_t rows, size_t cols,
                            const float *weight, double eps, double *rstd_out);
int cnorm_add_rms_norm_f64(const double *x, const double *residual, size_t residual_rows,
                            const double *skip_bias, double *sum_out, double *y, size_t rows, size_t cols,
                            const double *weight, double eps, double *rstd_out);
int cnorm_add_rms_norm_f16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                            const float *skip_bias, uint16_t *sum_out, uint16_t *y, size_t rows, size_t cols,
                            const float *weight, double eps, double *rstd_out);
int cnorm_add_rms_norm_bf16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                            const float *skip_bias, uint16_t *sum_out, uint16_t *y, size_t rows, size_t cols,
                            const float *weight, double eps, double *rstd_out);

/* ---- group norm: stats per (sample, group of c/groups channels) ----------
 * y = act((x - mean) * (weight * rstd) + bias), weight/bias per channel
 * (length c).  mean_out/var_out have length n*groups (biased variance).
 * Instance norm is groups == c. */
int cnorm_group_norm_f32(const float *x, float *y, size_t n, size_t c, size_t spatial,
                          size_t groups, cnorm_layout layout, const float *weight, const float *bias,
                          double eps, double *mean_out, double *var_out, cnorm_activation act);
int cnorm_group_norm_f64(const double *x, double *y, size_t n, size_t c, size_t spatial,
                          size_t groups, cnorm_layout layout, const double *weight, const double *bias,
                          double eps, double *mean_out, double *var_out, cnorm_activation act);
int cnorm_group_norm_f16(const uint16_t *x, uint16_t *y, size_t n, size_t c, size_t spatial,
                          size_t groups, cnorm_layout layout, const float *weight, const float *bias,
                          double eps, double *mean_out, double *var_out, cnorm_activation act);
int cnorm_group_norm_bf16(const uint16_t *x, uint16_t *y, size_t n, size_t c, size_t spatial,
                          size_t groups, cnorm_layout layout, const float *weight, const float *bias,
                          double eps, double *mean_out, double *var_out, cnorm_activation act);

/* ---- batch norm: stats per channel over (n, spatial) ----------------------
 * With mean_in and var_in (length c) both non-NULL they are used (inference;
 * as in torch, a channel whose var_in + eps < 0 gives NaN outputs);
 * otherwise batch statistics are computed and stored in mean_out/var_out
 * (biased variance) when those are non-NULL. */
int cnorm_batch_norm_f32(const float *x, float *y, size_t n, size_t c, size_t spatial,
                          cnorm_layout layout, const float *weight, const float *bias, double eps,
                          const double *mean_in, const double *var_in, double *mean_out,
                          double *var_out, cnorm_activation act);
int cnorm_batch_norm_f64(const double *x, double *y, size_t n, size_t c, size_t spatial,
                          cnorm_layout layout, const double *weight, const double *bias, double eps,
                          const double *mean_in, const double *var_in, double *mean_out,
                          double *var_out, cnorm_activation act);
int cnorm_batch_norm_f16(const uint16_t *x, uint16_t *y, size_t n, size_t c, size_t spatial,
                          cnorm_layout layout, const float *weight, const float *bias, double eps,
                          const double *mean_in, const double *var_in, double *mean_out,
                          double *var_out, cnorm_activation act);
int cnorm_batch_norm_bf16(const uint16_t *x, uint16_t *y, size_t n, size_t c, size_t spatial,
                          cnorm_layout layout, const float *weight, const float *bias, double eps,
                          const double *mean_in, const double *var_in, double *mean_out,
                          double *var_out, cnorm_activation act);

/* ---- moments: x viewed as (outer, len, inner), reduce the middle axis ----
 * mean/var have outer*inner entries; var = M2 / (len - ddof) (IEEE inf/NaN
 * when len <= ddof). */
int cnorm_moments_f32(const float *x, size_t outer, size_t len, size_t inner, double ddof,
                       double *mean, double *var);
int cnorm_moments_f64(const double *x, size_t outer, size_t len, size_t inner, double ddof,
                       double *mean, double *var);
int cnorm_moments_f16(const uint16_t *x, size_t outer, size_t len, size_t inner, double ddof,
                       double *mean, double *var);
int cnorm_moments_bf16(const uint16_t *x, size_t outer, size_t len, size_t inner, double ddof,
                       double *mean, double *var);

/* ---- moments over split axes: x viewed as (lead, keep, len, inner) ------
 * For each of the keep*inner kept positions, the statistics over the lead
 * and len axes: per-channel moments of NCHW over (0, 2, 3) are
 * (lead, keep, len, inner) = (n, c, h*w, 1).  mean/var have keep*inner
 * entries; var = M2 / (lead*len - ddof) as in cnorm_moments_*.  With
 * lead == 1 this is cnorm_moments_* with outer = keep. */
int cnorm_moments_split_f32(const float *x, size_t lead, size_t keep, size_t len, size_t inner,
                             double ddof, double *mean, double *var);
int cnorm_moments_split_f64(const double *x, size_t lead, size_t keep, size_t len, size_t inner,
                             double ddof, double *mean, double *var);
int cnorm_moments_split_f16(const uint16_t *x, size_t lead, size_t keep, size_t len, size_t inner,
                             double ddof, double *mean, double *var);
int cnorm_moments_split_bf16(const uint16_t *x, size_t lead, size_t keep, size_t len, size_t inner,
                              double ddof, double *mean, double *var);

/* The same statistics as partials to merge further (chunks of a larger
 * array): every kept position has count lead*len, its mean, and m2, the sum
 * of squared deviations from that mean.  Two partials (na, ma, m2a) and
 * (nb, mb, m2b) merge as n = na + nb, d = mb - ma, mean = ma + d*nb/n,
 * m2 = m2a + m2b + d*d*na*nb/n (Chan et al.). */
int cnorm_moments_partial_f32(const float *x, size_t lead, size_t keep, size_t len, size_t inner,
                               double *mean, double *m2);
int cnorm_moments_partial_f64(const double *x, size_t lead, size_t keep, size_t len, size_t inner,
                               double *mean, double *m2);
int cnorm_moments_partial_f16(const uint16_t *x, size_t lead, size_t keep, size_t len, size_t inner,
                               double *mean, double *m2);
int cnorm_moments_partial_bf16(const uint16_t *x, size_t lead, size_t keep, size_t len, size_t inner,
                                double *mean, double *m2);

/* ---- backward passes ------------------------------------------------------
 * The gradients of the forward functions above: dx (dL/dx), dweight and
 * dbias from dy (dL/dy, x's shape and layout) and x.  Every output is
 * optional (NULL skips its work); dx may equal dy or x (in place).
 * dweight/dbias are overwritten (not accumulated) and are computed with
 * weight NULL too (as weight 1).
 *
 * mean/rstd are the forward's statistics (rstd = 1/sqrt(var + eps)), as
 * the forward returned them, possibly rounded to float (a training loop
 * keeps them in float32): both NULL recomputes them from x with eps; one
 * of them NULL is CNORM_ERR_NULL.  A given mean is taken to be the mean
 * of x up to rounding: the backward also reduces sum(x - mean) and
 * corrects for it, so a mean rounded to float (off by up to half an ulp
 * of a large offset) costs no accuracy.
 *
 * With act, the gradient goes through the activation: its input
 * z = (x - mean) * rstd * weight + bias is rebuilt from x, the statistics,
 * weight and bias (so keep all four, or the stats recomputable from x).
 * Results, dweight and dbias included, do not depend on the thread count.
 *
 * Layer norm: rows of cols, mean/rstd of length rows, weight/bias/dweight/
 * dbias of length cols. */
int cnorm_layer_norm_backward_f32(const float *dy, const float *x, float *dx, size_t rows, size_t cols,
                                   const double *mean, const double *rstd, const float *weight,
                                   const float *bias, double eps, cnorm_activation act, float *dweight,
                                   float *dbias);
int cnorm_layer_norm_backward_f64(const double *dy, const double *x, double *dx, size_t rows, size_t cols,
                                   const double *mean, const double *rstd, const double *weight,
                                   const double *bias, double eps, cnorm_activation act, double *dweight,
                                   double *dbias);
int cnorm_layer_norm_backward_f16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t rows, size_t cols,
                                   const double *mean, const double *rstd, const float *weight,
                                   const float *bias, double eps, cnorm_activation act, float *dweight,
                                   float *dbias);
int cnorm_layer_norm_backward_bf16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t rows, size_t cols,
                                   const double *mean, const double *rstd, const float *weight,
                                   const float *bias, double eps, cnorm_activation act, float *dweight,
                                   float *dbias);

/* RMS norm: rstd of length rows (NULL: recomputed). */
int cnorm_rms_norm_backward_f32(const float *dy, const float *x, float *dx, size_t rows, size_t cols,
                                 const double *rstd, const float *weight, double eps, float *dweight);
int cnorm_rms_norm_backward_f64(const double *dy, const double *x, double *dx, size_t rows, size_t cols,
                                 const double *rstd, const double *weight, double eps, double *dweight);
int cnorm_rms_norm_backward_f16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t rows, size_t cols,
                                 const double *rstd, const float *weight, double eps, float *dweight);
int cnorm_rms_norm_backward_bf16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t rows, size_t cols,
                                 const double *rstd, const float *weight, double eps, float *dweight);

/* Group norm (instance norm: groups == c): mean/rstd of length n*groups,
 * weight/bias/dweight/dbias of length c. */
int cnorm_group_norm_backward_f32(const float *dy, const float *x, float *dx, size_t n, size_t c,
                                   size_t spatial, size_t groups, cnorm_layout layout,
                                   const double *mean, const double *rstd, const float *weight,
                                   const float *bias, double eps, cnorm_activation act, float *dweight,
                                   float *dbias);
int cnorm_group_norm_backward_f64(const double *dy, const double *x, double *dx, size_t n, size_t c,
                                   size_t spatial, size_t groups, cnorm_layout layout,
                                   const double *mean, const double *rstd, const double *weight,
                                   const double *bias, double eps, cnorm_activation act, double *dweight,
                                   double *dbias);
int cnorm_group_norm_backward_f16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t n, size_t c,
                                   size_t spatial, size_t groups, cnorm_layout layout,
                                   const double *mean, const double *rstd, const float *weight,
                                   const float *bias, double eps, cnorm_activation act, float *dweight,
                                   float *dbias);
int cnorm_group_norm_backward_bf16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t n, size_t c,
                                   size_t spatial, size_t groups, cnorm_layout layout,
                                   const double *mean, const double *rstd, const float *weight,
                                   const float *bias, double eps, cnorm_activation act, float *dweight,
                                   float *dbias);

/* Batch norm: mean/rstd of length c.  training != 0 differentiates through
 * the batch statistics; training == 0 treats mean/rstd as constants (eval
 * mode with the running statistics: dx = dy * weight * rstd). */
int cnorm_batch_norm_backward_f32(const float *dy, const float *x, float *dx, size_t n, size_t c,
                                   size_t spatial, cnorm_layout layout, const double *mean,
                                   const double *rstd, const float *weight, const float *bias, double eps,
                                   int training, cnorm_activation act, float *dweight, float *dbias);
int cnorm_batch_norm_backward_f64(const double *dy, const double *x, double *dx, size_t n, size_t c,
                                   size_t spatial, cnorm_layout layout, const double *mean,
                                   const double *rstd, const double *weight, const double *bias, double eps,
                                   int training, cnorm_activation act, double *dweight, double *dbias);
int cnorm_batch_norm_backward_f16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t n, size_t c,
                                   size_t spatial, cnorm_layout layout, const double *mean,
                                   const double *rstd, const float *weight, const float *bias, double eps,
                                   int training, cnorm_activation act, float *dweight, float *dbias);
int cnorm_batch_norm_backward_bf16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t n, size_t c,
                                   size_t spatial, cnorm_layout layout, const double *mean,
                                   const double *rstd, const float *weight, const float *bias, double eps,
                                   int training, cnorm_activation act, float *dweight, float *dbias);

/* ---- Conv-BN folding ------------------------------------------------------
 * A convolution with weight (c_out, per_out) and bias (c_out, or NULL for
 * none) followed by inference batch norm equals one convolution with
 *   w' = w * s,  b' = (b - mean) * s + beta,  s = gamma / sqrt(var + eps)
 * per output channel (gamma NULL: 1, beta NULL: 0).  w_out/b_out may be the
 * inputs. */
int cnorm_fold_batch_norm_f32(const float *conv_weight, const float *conv_bias, size_t c_out,
                              size_t per_out, const float *running_mean,
                              const float *running_var, const float *gamma, const float *beta,
                              double eps, float *weight_out, float *bias_out);
int cnorm_fold_batch_norm_f64(const double *conv_weight, const double *conv_bias, size_t c_out,
                              size_t per_out, const double *running_mean,
                              const double *running_var, const double *gamma,
                              const double *beta, double eps, double *weight_out,
                              double *bias_out);

#ifdef __cplusplus
}
#endif
#endif
