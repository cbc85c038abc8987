/* Fused activations on their own: batch norm in eval mode with mean 0,
 * var 1, eps 0 and no weight/bias is the identity, so y = act(x) exactly
 * for a dense sweep of x over [-20, 20] (the polynomial ranges, the tails,
 * exact zeros).  Both apply kernels: per row (NCHW) and per column (NHWC).
 * Then NaN must stay NaN through every activation. */
#include "check.h"

#define SWEEP 4001 /* x = -20 .. 20 step 0.01, plus a few specials */

static void sweep_case(dtype dt, cnorm_layout layout, cnorm_activation act, size_t c) {
    const size_t n = (SWEEP + c - 1) / c, total = n * c;
    set_ctx("activation sweep %s %s act=%s c=%zu", dt_name(dt), layout == CNORM_NCHW ? "NCHW" : "NHWC",
            act_name(act), c);
    buf_t x = buf_new(dt, total), y = buf_new(dt, total);
    for (size_t i = 0; i < total; ++i) buf_set(&x, i, -20.0 + 0.01 * (double)(i % SWEEP));
    buf_set(&x, 0, 0.0);
    buf_set(&x, total - 1, -0.0);
    if (total > 4) buf_set(&x, 1, 1e-30), buf_set(&x, 2, -1e-30), buf_set(&x, 3, 88.0);
    double *xv = buf_values(&x), *want = dalloc(total), *mean = dalloc(c), *var = dalloc(c);
    for (size_t ch = 0; ch < c; ++ch) mean[ch] = 0.0, var[ch] = 1.0;
    for (size_t i = 0; i < total; ++i) want[i] = ref_act(xv[i], act);
    /* as (n, c, 1): NCHW rows of 1 per (sample, channel); NHWC columns */
    CHECK_STATUS(run_batch_norm(dt, x.p, y.p, n, c, 1, layout, NULL, NULL, 0.0, mean, var, NULL, NULL, act), CNORM_OK);
    check_buf("act(x)", &y, want, xv, 1.0);
    /* and as long rows (n, 1, c) through the row kernel */
    if (layout == CNORM_NCHW) {
        CHECK_STATUS(run_batch_norm(dt, x.p, y.p, n, 1, c, layout, NULL, NULL, 0.0, mean, var, NULL, NULL, act),
                     CNORM_OK);
        check_buf("act(x) rows", &y, want, xv, 1.0);
    }
    buf_free(&x);
    buf_free(&y);
    free(xv), free(want), free(mean), free(var);
}

/* A NaN in the input stays NaN after the activation; its neighbours are fine. */
static void nan_case(dtype dt, cnorm_activation act) {
    const size_t n = 67;
    set_ctx("activation NaN %s act=%s", dt_name(dt), act_name(act));
    buf_t x = buf_new(dt, n), y = buf_new(dt, n);
    double mean = 0.0, var = 1.0;
    for (size_t i = 0; i < n; ++i) buf_set(&x, i, (double)i * 0.1 - 3.0);
    buf_set(&x, 5, NAN);
    buf_set(&x, 40, NAN);
    CHECK_STATUS(run_batch_norm(dt, x.p, y.p, 1, 1, n, CNORM_NCHW, NULL, NULL, 0.0, &mean, &var, NULL, NULL, act),
                 CNORM_OK);
    for (size_t i = 0; i < n; ++i) {
        const double got = buf_get(&y, i);
        if (i == 5 || i == 40)
            CHECK(isnan(got), "y[%zu] = %g, expected NaN", i, got);
        else
            CHECK(isfinite(got), "y[%zu] = %g, expected finite (input %g)", i, got, buf_get(&x, i));
    }
    buf_free(&x);
    buf_free(&y);
}

int main(void) {
    static const size_t widths[] = {1, 3, 16, 37, 4001};
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (int a = 0; a < ACT_COUNT; ++a) {
                for (size_t k = 0; k < sizeof widths / sizeof *widths; ++k) {
                    sweep_case((dtype)d, CNORM_NCHW, ALL_ACTS[a], widths[k]);
                    sweep_case((dtype)d, CNORM_NHWC, ALL_ACTS[a], widths[k]);
                }
                nan_case((dtype)d, ALL_ACTS[a]);
            }
    }
    return check_report("test_activations");
}
