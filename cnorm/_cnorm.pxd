# cnorm/_cnorm.pxd: include/cnorm/cnorm.h declared once for Cython.
#
# The one Cython declaration of the public C API (as scikit-learn's
# _openmp_helpers.pxd does for OpenMP): cnorm/_core.pyx cimports it and
# nothing else re-declares a cnorm_* function.  Keep it in step with
# cnorm.h; the argument names follow the header.  Half storage (_f16,
# _bf16) is uint16_t bit patterns.

from libc.stdint cimport int32_t, uint16_t

cdef extern from "cnorm/cnorm.h" nogil:
    ctypedef enum cnorm_status:
        CNORM_OK
        CNORM_ERR_NULL
        CNORM_ERR_SIZE
        CNORM_ERR_GROUPS
        CNORM_ERR_EPS
        CNORM_ERR_ALLOC
        CNORM_ERR_ISA
        CNORM_ERR_LAYOUT
        CNORM_ERR_ARG

    ctypedef enum cnorm_layout:
        CNORM_NCHW
        CNORM_NHWC

    ctypedef enum cnorm_activation:
        CNORM_ACT_NONE
        CNORM_ACT_RELU
        CNORM_ACT_SILU
        CNORM_ACT_GELU

    ctypedef enum cnorm_qtype:
        CNORM_INT8
        CNORM_UINT8

    ctypedef struct cnorm_quant:
        double scale
        int32_t zero_point
        cnorm_qtype type

    ctypedef enum cnorm_isa:
        CNORM_ISA_SCALAR
        CNORM_ISA_AVX2
        CNORM_ISA_AVX512
        CNORM_ISA_NEON

    # ---- runtime configuration
    cnorm_isa cnorm_best_isa()
    cnorm_isa cnorm_get_isa()
    int cnorm_set_isa(cnorm_isa isa)
    int cnorm_isa_available(cnorm_isa isa)
    const char *cnorm_isa_name(cnorm_isa isa)
    int cnorm_set_num_threads(int n)
    int cnorm_get_num_threads()
    int cnorm_has_openmp()
    const char *cnorm_status_string(int status)
    const char *cnorm_activation_name(int act)
    const char *cnorm_compiler()

    # ---- layer norm
    int cnorm_layer_norm_f32(const float *x, float *y, size_t rows, size_t cols, const float *weight,
                             const float *bias, double eps, double *mean_out, double *rstd_out,
                             cnorm_activation act)
    int cnorm_layer_norm_f64(const double *x, double *y, size_t rows, size_t cols, const double *weight,
                             const double *bias, double eps, double *mean_out, double *rstd_out,
                             cnorm_activation act)
    int cnorm_layer_norm_f16(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, const float *weight,
                             const float *bias, double eps, double *mean_out, double *rstd_out,
                             cnorm_activation act)
    int cnorm_layer_norm_bf16(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, const float *weight,
                              const float *bias, double eps, double *mean_out, double *rstd_out,
                              cnorm_activation act)

    # ---- RMS norm
    int cnorm_rms_norm_f32(const float *x, float *y, size_t rows, size_t cols, const float *weight,
                           double eps, double *rstd_out)
    int cnorm_rms_norm_f64(const double *x, double *y, size_t rows, size_t cols, const double *weight,
                           double eps, double *rstd_out)
    int cnorm_rms_norm_f16(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, const float *weight,
                           double eps, double *rstd_out)
    int cnorm_rms_norm_bf16(const uint16_t *x, uint16_t *y, size_t rows, size_t cols, const float *weight,
                            double eps, double *rstd_out)

    # ---- residual add + layer / RMS norm
    int cnorm_add_layer_norm_f32(const float *x, const float *residual, size_t residual_rows,
                                 const float *skip_bias, float *sum_out, float *y, size_t rows, size_t cols,
                                 const float *weight, const float *bias, double eps, double *mean_out,
                                 double *rstd_out, cnorm_activation act)
    int cnorm_add_layer_norm_f64(const double *x, const double *residual, size_t residual_rows,
                                 const double *skip_bias, double *sum_out, double *y, size_t rows, size_t cols,
                                 const double *weight, const double *bias, double eps, double *mean_out,
                                 double *rstd_out, cnorm_activation act)
    int cnorm_add_layer_norm_f16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                                 const float *skip_bias, uint16_t *sum_out, uint16_t *y, size_t rows, size_t cols,
                                 const float *weight, const float *bias, double eps, double *mean_out,
                                 double *rstd_out, cnorm_activation act)
    int cnorm_add_layer_norm_bf16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                                 const float *skip_bias, uint16_t *sum_out, uint16_t *y, size_t rows, size_t cols,
                                 const float *weight, const float *bias, double eps, double *mean_out,
                                 double *rstd_out, cnorm_activation act)
    int cnorm_add_rms_norm_f32(const float *x, const float *residual, size_t residual_rows,
                               const float *skip_bias, float *sum_out, float *y, size_t rows, size_t cols,
                               const float *weight, double eps, double *rstd_out)
    int cnorm_add_rms_norm_f64(const double *x, const double *residual, size_t residual_rows,
                               const double *skip_bias, double *sum_out, double *y, size_t rows, size_t cols,
                               const double *weight, double eps, double *rstd_out)
    int cnorm_add_rms_norm_f16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                               const float *skip_bias, uint16_t *sum_out, uint16_t *y, size_t rows, size_t cols,
                               const float *weight, double eps, double *rstd_out)
    int cnorm_add_rms_norm_bf16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                               const float *skip_bias, uint16_t *sum_out, uint16_t *y, size_t rows, size_t cols,
                               const float *weight, double eps, double *rstd_out)

    # ---- int8/uint8 codes out (the _q8 entry points)
    int cnorm_layer_norm_q8_f32(const float *x, void *q, size_t rows, size_t cols, const float *weight,
                                const float *bias, double eps, double *mean_out, double *rstd_out,
                                cnorm_activation act, const cnorm_quant *quant)
    int cnorm_layer_norm_q8_f64(const double *x, void *q, size_t rows, size_t cols, const double *weight,
                                const double *bias, double eps, double *mean_out, double *rstd_out,
                                cnorm_activation act, const cnorm_quant *quant)
    int cnorm_layer_norm_q8_f16(const uint16_t *x, void *q, size_t rows, size_t cols, const float *weight,
                                const float *bias, double eps, double *mean_out, double *rstd_out,
                                cnorm_activation act, const cnorm_quant *quant)
    int cnorm_layer_norm_q8_bf16(const uint16_t *x, void *q, size_t rows, size_t cols, const float *weight,
                                const float *bias, double eps, double *mean_out, double *rstd_out,
                                cnorm_activation act, const cnorm_quant *quant)
    int cnorm_rms_norm_q8_f32(const float *x, void *q, size_t rows, size_t cols, const float *weight,
                              double eps, double *rstd_out, const cnorm_quant *quant)
    int cnorm_rms_norm_q8_f64(const double *x, void *q, size_t rows, size_t cols, const double *weight,
                              double eps, double *rstd_out, const cnorm_quant *quant)
    int cnorm_rms_norm_q8_f16(const uint16_t *x, void *q, size_t rows, size_t cols, const float *weight,
                              double eps, double *rstd_out, const cnorm_quant *quant)
    int cnorm_rms_norm_q8_bf16(const uint16_t *x, void *q, size_t rows, size_t cols, const float *weight,
                              double eps, double *rstd_out, const cnorm_quant *quant)
    int cnorm_add_layer_norm_q8_f32(const float *x, const float *residual, size_t residual_rows,
                                    const float *skip_bias, float *sum_out, void *q, size_t rows, size_t cols,
                                    const float *weight, const float *bias, double eps, double *mean_out,
                                    double *rstd_out, cnorm_activation act, const cnorm_quant *quant)
    int cnorm_add_layer_norm_q8_f64(const double *x, const double *residual, size_t residual_rows,
                                    const double *skip_bias, double *sum_out, void *q, size_t rows, size_t cols,
                                    const double *weight, const double *bias, double eps, double *mean_out,
                                    double *rstd_out, cnorm_activation act, const cnorm_quant *quant)
    int cnorm_add_layer_norm_q8_f16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                                    const float *skip_bias, uint16_t *sum_out, void *q, size_t rows, size_t cols,
                                    const float *weight, const float *bias, double eps, double *mean_out,
                                    double *rstd_out, cnorm_activation act, const cnorm_quant *quant)
    int cnorm_add_layer_norm_q8_bf16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                                    const float *skip_bias, uint16_t *sum_out, void *q, size_t rows, size_t cols,
                                    const float *weight, const float *bias, double eps, double *mean_out,
                                    double *rstd_out, cnorm_activation act, const cnorm_quant *quant)
    int cnorm_add_rms_norm_q8_f32(const float *x, const float *residual, size_t residual_rows,
                                  const float *skip_bias, float *sum_out, void *q, size_t rows, size_t cols,
                                  const float *weight, double eps, double *rstd_out, const cnorm_quant *quant)
    int cnorm_add_rms_norm_q8_f64(const double *x, const double *residual, size_t residual_rows,
                                  const double *skip_bias, double *sum_out, void *q, size_t rows, size_t cols,
                                  const double *weight, double eps, double *rstd_out, const cnorm_quant *quant)
    int cnorm_add_rms_norm_q8_f16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                                  const float *skip_bias, uint16_t *sum_out, void *q, size_t rows, size_t cols,
                                  const float *weight, double eps, double *rstd_out, const cnorm_quant *quant)
    int cnorm_add_rms_norm_q8_bf16(const uint16_t *x, const uint16_t *residual, size_t residual_rows,
                                  const float *skip_bias, uint16_t *sum_out, void *q, size_t rows, size_t cols,
                                  const float *weight, double eps, double *rstd_out, const cnorm_quant *quant)
    int cnorm_group_norm_q8_f32(const float *x, void *q, size_t n, size_t c, size_t spatial, size_t groups,
                                cnorm_layout layout, const float *weight, const float *bias, double eps,
                                double *mean_out, double *var_out, cnorm_activation act,
                                const cnorm_quant *quant)
    int cnorm_group_norm_q8_f64(const double *x, void *q, size_t n, size_t c, size_t spatial, size_t groups,
                                cnorm_layout layout, const double *weight, const double *bias, double eps,
                                double *mean_out, double *var_out, cnorm_activation act,
                                const cnorm_quant *quant)
    int cnorm_group_norm_q8_f16(const uint16_t *x, void *q, size_t n, size_t c, size_t spatial, size_t groups,
                                cnorm_layout layout, const float *weight, const float *bias, double eps,
                                double *mean_out, double *var_out, cnorm_activation act,
                                const cnorm_quant *quant)
    int cnorm_group_norm_q8_bf16(const uint16_t *x, void *q, size_t n, size_t c, size_t spatial, size_t groups,
                                cnorm_layout layout, const float *weight, const float *bias, double eps,
                                double *mean_out, double *var_out, cnorm_activation act,
                                const cnorm_quant *quant)
    int cnorm_batch_norm_q8_f32(const float *x, void *q, size_t n, size_t c, size_t spatial,
                                cnorm_layout layout, const float *weight, const float *bias, double eps,
                                const double *mean_in, const double *var_in, double *mean_out,
                                double *var_out, cnorm_activation act, const cnorm_quant *quant)
    int cnorm_batch_norm_q8_f64(const double *x, void *q, size_t n, size_t c, size_t spatial,
                                cnorm_layout layout, const double *weight, const double *bias, double eps,
                                const double *mean_in, const double *var_in, double *mean_out,
                                double *var_out, cnorm_activation act, const cnorm_quant *quant)
    int cnorm_batch_norm_q8_f16(const uint16_t *x, void *q, size_t n, size_t c, size_t spatial,
                                cnorm_layout layout, const float *weight, const float *bias, double eps,
                                const double *mean_in, const double *var_in, double *mean_out,
                                double *var_out, cnorm_activation act, const cnorm_quant *quant)
    int cnorm_batch_norm_q8_bf16(const uint16_t *x, void *q, size_t n, size_t c, size_t spatial,
                                cnorm_layout layout, const float *weight, const float *bias, double eps,
                                const double *mean_in, const double *var_in, double *mean_out,
                                double *var_out, cnorm_activation act, const cnorm_quant *quant)

    # ---- group norm (instance norm is groups == c)
    int cnorm_group_norm_f32(const float *x, float *y, size_t n, size_t c, size_t spatial,
                             size_t groups, cnorm_layout layout, const float *weight, const float *bias,
                             double eps, double *mean_out, double *var_out, cnorm_activation act)
    int cnorm_group_norm_f64(const double *x, double *y, size_t n, size_t c, size_t spatial,
                             size_t groups, cnorm_layout layout, const double *weight, const double *bias,
                             double eps, double *mean_out, double *var_out, cnorm_activation act)
    int cnorm_group_norm_f16(const uint16_t *x, uint16_t *y, size_t n, size_t c, size_t spatial,
                             size_t groups, cnorm_layout layout, const float *weight, const float *bias,
                             double eps, double *mean_out, double *var_out, cnorm_activation act)
    int cnorm_group_norm_bf16(const uint16_t *x, uint16_t *y, size_t n, size_t c, size_t spatial,
                              size_t groups, cnorm_layout layout, const float *weight, const float *bias,
                              double eps, double *mean_out, double *var_out, cnorm_activation act)

    # ---- batch norm
    int cnorm_batch_norm_f32(const float *x, float *y, size_t n, size_t c, size_t spatial,
                             cnorm_layout layout, const float *weight, const float *bias, double eps,
                             const double *mean_in, const double *var_in, double *mean_out,
                             double *var_out, cnorm_activation act)
    int cnorm_batch_norm_f64(const double *x, double *y, size_t n, size_t c, size_t spatial,
                             cnorm_layout layout, const double *weight, const double *bias, double eps,
                             const double *mean_in, const double *var_in, double *mean_out,
                             double *var_out, cnorm_activation act)
    int cnorm_batch_norm_f16(const uint16_t *x, uint16_t *y, size_t n, size_t c, size_t spatial,
                             cnorm_layout layout, const float *weight, const float *bias, double eps,
                             const double *mean_in, const double *var_in, double *mean_out,
                             double *var_out, cnorm_activation act)
    int cnorm_batch_norm_bf16(const uint16_t *x, uint16_t *y, size_t n, size_t c, size_t spatial,
                              cnorm_layout layout, const float *weight, const float *bias, double eps,
                              const double *mean_in, const double *var_in, double *mean_out,
                              double *var_out, cnorm_activation act)

    # ---- moments: (outer, len, inner), reduce the middle axis
    int cnorm_moments_f32(const float *x, size_t outer, size_t len, size_t inner, double ddof,
                          double *mean, double *var)
    int cnorm_moments_f64(const double *x, size_t outer, size_t len, size_t inner, double ddof,
                          double *mean, double *var)
    int cnorm_moments_f16(const uint16_t *x, size_t outer, size_t len, size_t inner, double ddof,
                          double *mean, double *var)
    int cnorm_moments_bf16(const uint16_t *x, size_t outer, size_t len, size_t inner, double ddof,
                           double *mean, double *var)

    # ---- moments over split axes: (lead, keep, len, inner), reduce lead and len
    int cnorm_moments_split_f32(const float *x, size_t lead, size_t keep, size_t len, size_t inner,
                                double ddof, double *mean, double *var)
    int cnorm_moments_split_f64(const double *x, size_t lead, size_t keep, size_t len, size_t inner,
                                double ddof, double *mean, double *var)
    int cnorm_moments_split_f16(const uint16_t *x, size_t lead, size_t keep, size_t len, size_t inner,
                                double ddof, double *mean, double *var)
    int cnorm_moments_split_bf16(const uint16_t *x, size_t lead, size_t keep, size_t len, size_t inner,
                                 double ddof, double *mean, double *var)

    # ---- the same as (count = lead*len, mean, M2) partials
    int cnorm_moments_partial_f32(const float *x, size_t lead, size_t keep, size_t len, size_t inner,
                                  double *mean, double *m2)
    int cnorm_moments_partial_f64(const double *x, size_t lead, size_t keep, size_t len, size_t inner,
                                  double *mean, double *m2)
    int cnorm_moments_partial_f16(const uint16_t *x, size_t lead, size_t keep, size_t len, size_t inner,
                                  double *mean, double *m2)
    int cnorm_moments_partial_bf16(const uint16_t *x, size_t lead, size_t keep, size_t len, size_t inner,
                                   double *mean, double *m2)

    # ---- backward passes (the gradients of the forwards above)
    int cnorm_layer_norm_backward_f32(const float *dy, const float *x, float *dx, size_t rows,
                                      size_t cols, const double *mean, const double *rstd,
                                      const float *weight, const float *bias, double eps,
                                      cnorm_activation act, float *dweight, float *dbias)
    int cnorm_layer_norm_backward_f64(const double *dy, const double *x, double *dx, size_t rows,
                                      size_t cols, const double *mean, const double *rstd,
                                      const double *weight, const double *bias, double eps,
                                      cnorm_activation act, double *dweight, double *dbias)
    int cnorm_layer_norm_backward_f16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t rows,
                                      size_t cols, const double *mean, const double *rstd,
                                      const float *weight, const float *bias, double eps,
                                      cnorm_activation act, float *dweight, float *dbias)
    int cnorm_layer_norm_backward_bf16(const uint16_t *dy, const uint16_t *x, uint16_t *dx,
                                       size_t rows, size_t cols, const double *mean,
                                       const double *rstd, const float *weight, const float *bias,
                                       double eps, cnorm_activation act, float *dweight, float *dbias)
    int cnorm_rms_norm_backward_f32(const float *dy, const float *x, float *dx, size_t rows,
                                    size_t cols, const double *rstd, const float *weight, double eps,
                                    float *dweight)
    int cnorm_rms_norm_backward_f64(const double *dy, const double *x, double *dx, size_t rows,
                                    size_t cols, const double *rstd, const double *weight, double eps,
                                    double *dweight)
    int cnorm_rms_norm_backward_f16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t rows,
                                    size_t cols, const double *rstd, const float *weight, double eps,
                                    float *dweight)
    int cnorm_rms_norm_backward_bf16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t rows,
                                     size_t cols, const double *rstd, const float *weight, double eps,
                                     float *dweight)
    int cnorm_group_norm_backward_f32(const float *dy, const float *x, float *dx, size_t n, size_t c,
                                      size_t spatial, size_t groups, cnorm_layout layout,
                                      const double *mean, const double *rstd, const float *weight,
                                      const float *bias, double eps, cnorm_activation act,
                                      float *dweight, float *dbias)
    int cnorm_group_norm_backward_f64(const double *dy, const double *x, double *dx, size_t n,
                                      size_t c, size_t spatial, size_t groups, cnorm_layout layout,
                                      const double *mean, const double *rstd, const double *weight,
                                      const double *bias, double eps, cnorm_activation act,
                                      double *dweight, double *dbias)
    int cnorm_group_norm_backward_f16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t n,
                                      size_t c, size_t spatial, size_t groups, cnorm_layout layout,
                                      const double *mean, const double *rstd, const float *weight,
                                      const float *bias, double eps, cnorm_activation act,
                                      float *dweight, float *dbias)
    int cnorm_group_norm_backward_bf16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t n,
                                       size_t c, size_t spatial, size_t groups, cnorm_layout layout,
                                       const double *mean, const double *rstd, const float *weight,
                                       const float *bias, double eps, cnorm_activation act,
                                       float *dweight, float *dbias)
    int cnorm_batch_norm_backward_f32(const float *dy, const float *x, float *dx, size_t n, size_t c,
                                      size_t spatial, cnorm_layout layout, const double *mean,
                                      const double *rstd, const float *weight, const float *bias,
                                      double eps, int training, cnorm_activation act, float *dweight,
                                      float *dbias)
    int cnorm_batch_norm_backward_f64(const double *dy, const double *x, double *dx, size_t n,
                                      size_t c, size_t spatial, cnorm_layout layout,
                                      const double *mean, const double *rstd, const double *weight,
                                      const double *bias, double eps, int training,
                                      cnorm_activation act, double *dweight, double *dbias)
    int cnorm_batch_norm_backward_f16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t n,
                                      size_t c, size_t spatial, cnorm_layout layout,
                                      const double *mean, const double *rstd, const float *weight,
                                      const float *bias, double eps, int training,
                                      cnorm_activation act, float *dweight, float *dbias)
    int cnorm_batch_norm_backward_bf16(const uint16_t *dy, const uint16_t *x, uint16_t *dx, size_t n,
                                       size_t c, size_t spatial, cnorm_layout layout,
                                       const double *mean, const double *rstd, const float *weight,
                                       const float *bias, double eps, int training,
                                       cnorm_activation act, float *dweight, float *dbias)

    # ---- Conv-BN folding
    int cnorm_fold_batch_norm_f32(const float *conv_weight, const float *conv_bias, size_t c_out,
                                  size_t per_out, const float *running_mean,
                                  const float *running_var, const float *gamma, const float *beta,
                                  double eps, float *weight_out, float *bias_out)
    int cnorm_fold_batch_norm_f64(const double *conv_weight, const double *conv_bias, size_t c_out,
                                  size_t per_out, const double *running_mean,
                                  const double *running_var, const double *gamma,
                                  const double *beta, double eps, double *weight_out,
                                  double *bias_out)
