/* The public C API: one driver per variant, per storage type. */
#include <stdlib.h>

#include "engine.h"

/* CN_FLOAT_RANGE: the storage spans float's exponent range, so the float
 * apply can overflow near its ends (see cnorm_apply_table). */
#define T float
#define W float
#define SFX f32
#define CN_FLOAT_RANGE 1
#include "engine.inc"
#undef T
#undef W
#undef SFX
#undef CN_FLOAT_RANGE

#define T double
#define W double
#define SFX f64
#define CN_FLOAT_RANGE 0
#include "engine.inc"
#undef T
#undef W
#undef SFX
#undef CN_FLOAT_RANGE

/* Half storage: float weights, float compute, double statistics. */
#define T uint16_t
#define W float
#define SFX f16
#define CN_FLOAT_RANGE 0
#include "engine.inc"
#undef SFX
#undef CN_FLOAT_RANGE

#define SFX bf16
#define CN_FLOAT_RANGE 1
#include "engine.inc"
#undef T
#undef W
#undef SFX
#undef CN_FLOAT_RANGE

/* Conv-BN folding: s = gamma / sqrt(var + eps) per output channel. */
#define CNORM_FOLD(T)                                                                           \
    do {                                                                                        \
        size_t total;                                                                           \
        if (!cnorm_mul_ok(c_out, per_out, &total)) return CNORM_ERR_SIZE;                        \
        if (!cnorm_eps_ok(eps)) return CNORM_ERR_EPS;                                           \
        if (c_out == 0) return CNORM_OK;                                                        \
        if (!running_mean || !running_var || !bias_out || (per_out && (!conv_weight || !weight_out))) \
            return CNORM_ERR_NULL;                                                              \
        for (size_t o = 0; o < c_out; ++o) {                                                    \
            const double s = (gamma ? (double)gamma[o] : 1.0) / sqrt((double)running_var[o] + eps); \
            const double b = conv_bias ? (double)conv_bias[o] : 0.0;                            \
            for (size_t k = 0; k < per_out; ++k)                                                \
                weight_out[o * per_out + k] = (T)((double)conv_weight[o * per_out + k] * s);    \
            bias_out[o] = (T)((b - (double)running_mean[o]) * s + (beta ? (double)beta[o] : 0.0)); \
        }                                                                                       \
        return CNORM_OK;                                                                        \
    } while (0)

int cnorm_fold_batch_norm_f32(const float *conv_weight, const float *conv_bias, size_t c_out,
                              size_t per_out, const float *running_mean,
                              const float *running_var, const float *gamma, const float *beta,
                              double eps, float *weight_out, float *bias_out) {
    CNORM_FOLD(float);
}

int cnorm_fold_batch_norm_f64(const double *conv_weight, const double *conv_bias, size_t c_out,
                              size_t per_out, const double *running_mean,
                              const double *running_var, const double *gamma,
                              const double *beta, double eps, double *weight_out,
                              double *bias_out) {
    CNORM_FOLD(double);
}
