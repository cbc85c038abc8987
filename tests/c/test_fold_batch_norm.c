/* Conv-BN folding: the folded weights/bias against the formula, the
 * optional pointers (no conv bias, no gamma/beta), in place, and the
 * defining property: conv' (x) == batch_norm_eval(conv(x)). */
#include "check.h"

/* y[o] = sum_k w[o, k] x[k] + b[o]: a convolution at one output position. */
static void matvec(const double *w, const double *b, const double *x, size_t c_out, size_t per_out, double *y) {
    for (size_t o = 0; o < c_out; ++o) {
        double s = b ? b[o] : 0.0;
        for (size_t k = 0; k < per_out; ++k) s += w[o * per_out + k] * x[k];
        y[o] = s;
    }
}

static void fold_case(size_t c_out, size_t per_out, int conv_bias, int gamma_beta, int inplace) {
    const double eps = 1e-3;
    set_ctx("fold c_out=%zu per_out=%zu conv_bias=%d gamma_beta=%d%s", c_out, per_out, conv_bias, gamma_beta,
            inplace ? " in-place" : "");
    param_t w = param_new(c_out * per_out, -1.0, 1.0), cb = param_new(c_out, -0.5, 0.5);
    param_t rm = param_new(c_out, -1.0, 1.0), rv = param_new(c_out, 0.1, 3.0);
    param_t g = param_new(c_out, 0.5, 2.0), be = param_new(c_out, -1.0, 1.0);
    double *ww = dalloc(c_out * per_out), *wb = dalloc(c_out);
    for (size_t o = 0; o < c_out; ++o) {
        const double s = (gamma_beta ? g.d[o] : 1.0) / sqrt(rv.d[o] + eps);
        for (size_t k = 0; k < per_out; ++k) ww[o * per_out + k] = w.d[o * per_out + k] * s;
        wb[o] = ((conv_bias ? cb.d[o] : 0.0) - rm.d[o]) * s + (gamma_beta ? be.d[o] : 0.0);
    }

    /* float64 */
    {
        double *wo = inplace ? w.d : dalloc(c_out * per_out), *bo = inplace && conv_bias ? cb.d : dalloc(c_out);
        double *keep_w = dalloc(c_out * per_out), *keep_b = dalloc(c_out);
        memcpy(keep_w, w.d, c_out * per_out * sizeof(double));
        memcpy(keep_b, cb.d, c_out * sizeof(double));
        CHECK_STATUS(cnorm_fold_batch_norm_f64(w.d, conv_bias ? cb.d : NULL, c_out, per_out, rm.d, rv.d,
                                               gamma_beta ? g.d : NULL, gamma_beta ? be.d : NULL, eps, wo, bo),
                     CNORM_OK);
        check_close("f64 weight", wo, ww, NULL, c_out * per_out, DT_F64, 0.0);
        check_close("f64 bias", bo, wb, NULL, c_out, DT_F64, 1.0);
        /* the property, at one output position */
        double *x = dalloc(per_out), *conv = dalloc(c_out), *folded = dalloc(c_out), *bn = dalloc(c_out);
        for (size_t k = 0; k < per_out; ++k) x[k] = rng_normal();
        matvec(keep_w, conv_bias ? keep_b : NULL, x, c_out, per_out, conv);
        CHECK_STATUS(cnorm_batch_norm_f64(conv, bn, 1, c_out, 1, CNORM_NCHW, gamma_beta ? g.d : NULL,
                                          gamma_beta ? be.d : NULL, eps, rm.d, rv.d, NULL, NULL, CNORM_ACT_NONE),
                     CNORM_OK);
        matvec(wo, bo, x, c_out, per_out, folded);
        check_close("conv'(x) vs bn(conv(x))", folded, bn, NULL, c_out, DT_F64, 1.0 + max_abs(bn, c_out));
        if (inplace) { /* restore for the float32 round */
            memcpy(w.d, keep_w, c_out * per_out * sizeof(double));
            memcpy(cb.d, keep_b, c_out * sizeof(double));
        } else {
            free(wo);
        }
        if (!(inplace && conv_bias)) free(bo);
        free(keep_w), free(keep_b), free(x), free(conv), free(folded), free(bn);
    }
    /* float32 */
    {
        float *wo = inplace ? w.f : (float *)calloc(c_out * per_out + 1, sizeof(float));
        float *bo = inplace && conv_bias ? cb.f : (float *)calloc(c_out + 1, sizeof(float));
        if (!wo || !bo) exit(2);
        CHECK_STATUS(cnorm_fold_batch_norm_f32(w.f, conv_bias ? cb.f : NULL, c_out, per_out, rm.f, rv.f,
                                               gamma_beta ? g.f : NULL, gamma_beta ? be.f : NULL, eps, wo, bo),
                     CNORM_OK);
        double *gw = dalloc(c_out * per_out), *gb = dalloc(c_out);
        for (size_t i = 0; i < c_out * per_out; ++i) gw[i] = wo[i];
        for (size_t i = 0; i < c_out; ++i) gb[i] = bo[i];
        check_close("f32 weight", gw, ww, NULL, c_out * per_out, DT_F32, 0.0);
        check_close("f32 bias", gb, wb, NULL, c_out, DT_F32, 1.0);
        if (!inplace) free(wo);
        if (!(inplace && conv_bias)) free(bo);
        free(gw), free(gb);
    }
    param_free(&w), param_free(&cb), param_free(&rm), param_free(&rv), param_free(&g), param_free(&be);
    free(ww), free(wb);
}

int main(void) {
    rng_seed(7);
    static const size_t shapes[][2] = {{1, 1}, {3, 9}, {16, 27}, {64, 576}, {5, 0}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; ++k)
        for (int cb = 0; cb < 2; ++cb)
            for (int gb = 0; gb < 2; ++gb)
                for (int ip = 0; ip < 2; ++ip) fold_case(shapes[k][0], shapes[k][1], cb, gb, ip);

    /* c_out == 0: nothing to do, nothing touched */
    set_ctx("fold c_out=0");
    CHECK_STATUS(cnorm_fold_batch_norm_f32(NULL, NULL, 0, 9, NULL, NULL, NULL, NULL, 1e-5, NULL, NULL), CNORM_OK);
    CHECK_STATUS(cnorm_fold_batch_norm_f64(NULL, NULL, 0, 9, NULL, NULL, NULL, NULL, 1e-5, NULL, NULL), CNORM_OK);
    return check_report("test_fold_batch_norm");
}
