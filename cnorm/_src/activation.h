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

/* The backward of the activation at its input z: g * act'(z) for the
 * gradient g of its output.  relu passes g where z > 0 and 0 elsewhere
 * (NaN z included), as torch's threshold_backward; silu'(z) =
 * s (1 + z (1 - s)) with s = sigmoid(z); gelu'(z) = Phi(z) + z phi(z). */
static inline double cnorm_act_backward_d(double z, double g, int act) {
    switch (act) {
    case CNORM_ACT_RELU: return z > 0.0 ? g : 0.0;
    case CNORM_ACT_SILU: {
        const double s = 1.0 / (1.0 + exp(-z));
        return g * (s * (1.0 + z * (1.0 - s)));
    }
    case CNORM_ACT_GELU:
        return g * (0.5 * (1.0 + erf(z * 0.70710678118654752)) + z * exp(-0.5 * z * z) * 0.39894228040143268);
    default: return g;
    }
}

static inline float cnorm_act_backward_f(float z, float g, int act) {
    switch (act) {
    case CNORM_ACT_RELU: return z > 0.0f ? g : 0.0f;
    case CNORM_ACT_SILU: {
        const float s = 1.0f / (1.0f + expf(-z));
        return g * (s * (1.0f + z * (1.0f - s)));
    }
    case CNORM_ACT_GELU: return g * (0.5f * (1.0f + erff(z * 0.70710678f)) + z * expf(-0.5f * z * z) * 0.39894228f);
    default: return g;
    }
}

#endif
