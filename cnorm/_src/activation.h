/* Internal: scalar activations for the fused apply step (tails and the
 * portable path).  NaN stays NaN in all of them. */
#ifndef CNORM_ACTIVATION_H
#define CNORM_ACTIVATION_H

#include <math.h>

#include "cnorm/cnorm.h"

static inline double cnorm_act_d(double v, int act) {
    switch (act) {
    case CNORM_ACT_RELU: return v < 0.0 ? 0.0 : v;
    case CNORM_ACT_SILU: return v / (1.0 + exp(-v));
    case CNORM_ACT_GELU: return 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
    default: return v;
    }
}

static inline float cnorm_act_f(float v, int act) {
    switch (act) {
    case CNORM_ACT_RELU: return v < 0.0f ? 0.0f : v;
    case CNORM_ACT_SILU: return v / (1.0f + expf(-v));
    case CNORM_ACT_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678f));
    default: return v;
    }
}

#endif
