/* Batch norm, NCHW and NHWC, every storage type, ISA and activation:
 * training (batch statistics, mean/var outputs) and eval (running
 * statistics in), in place, and the "only one running statistic given"
 * rule (batch statistics then, as documented). */
#include "check.h"

static const size_t SHAPES[][3] = {{1, 1, 1},  {2, 1, 1},   {4, 3, 1},     {2, 3, 5},    {3, 8, 17},
                                   {2, 16, 64}, {5, 33, 7}, {1, 300, 40}, {1, 7, 33000}, {8, 64, 128}};

static const char *lname(cnorm_layout l) { return l == CNORM_NCHW ? "NCHW" : "NHWC"; }

static void train_case(dtype dt, const size_t *s, cnorm_layout layout, int affine, cnorm_activation act, int inplace) {
    const size_t n = s[0], c = s[1], spatial = s[2], total = n * c * spatial;
    set_ctx("batch_norm train %s %s n=%zu c=%zu spatial=%zu affine=%d act=%s%s", dt_name(dt), lname(layout), n, c,
            spatial, affine, act_name(act), inplace ? " in-place" : "");
    buf_t x = buf_random(dt, total, 2.0, 1.5);
    double *xv = buf_values(&x), *want = dalloc(total);
    double *mean = dalloc(c), *var = dalloc(c), *wmean = dalloc(c), *wvar = dalloc(c);
    param_t w = param_new(c, 0.5, 1.5), b = param_new(c, -0.5, 0.5);
    const param_t *pw = affine ? &w : NULL, *pb = affine ? &b : NULL;
    ref_batch_norm(xv, want, n, c, spatial, layout, pw, pb, 1e-5, NULL, NULL, wmean, wvar, act);
    buf_t y = inplace ? x : buf_new(dt, total);
    CHECK_STATUS(run_batch_norm(dt, x.p, y.p, n, c, spatial, layout, pw, pb, 1e-5, NULL, NULL, mean, var, act),
                 CNORM_OK);
    check_buf("y", &y, want, xv, 1.0);
    check_stats("mean", mean, wmean, c, dt, 1.5);
    check_stats("var", var, wvar, c, dt, 0.0);
    if (!inplace) {
        /* mean_in without var_in is not inference: batch statistics again */
        buf_t y2 = buf_new(dt, total);
        double *bogus = dalloc(c);
        for (size_t ch = 0; ch < c; ++ch) bogus[ch] = 100.0;
        CHECK_STATUS(run_batch_norm(dt, x.p, y2.p, n, c, spatial, layout, pw, pb, 1e-5, bogus, NULL, NULL, NULL, act),
                     CNORM_OK);
        CHECK(buf_equal(&y, &y2), "mean_in alone changed the result (expected batch statistics)");
        CHECK_STATUS(run_batch_norm(dt, x.p, y2.p, n, c, spatial, layout, pw, pb, 1e-5, NULL, bogus, NULL, NULL, act),
                     CNORM_OK);
        CHECK(buf_equal(&y, &y2), "var_in alone changed the result (expected batch statistics)");
        free(bogus);
        buf_free(&y2);
        buf_free(&y);
    }
    buf_free(&x);
    param_free(&w);
    param_free(&b);
    free(xv), free(want), free(mean), free(var), free(wmean), free(wvar);
}

static void eval_case(dtype dt, const size_t *s, cnorm_layout layout, int affine, cnorm_activation act, int inplace) {
    const size_t n = s[0], c = s[1], spatial = s[2], total = n * c * spatial;
    set_ctx("batch_norm eval %s %s n=%zu c=%zu spatial=%zu affine=%d act=%s%s", dt_name(dt), lname(layout), n, c,
            spatial, affine, act_name(act), inplace ? " in-place" : "");
    buf_t x = buf_random(dt, total, 0.5, 2.0);
    double *xv = buf_values(&x), *want = dalloc(total);
    double *rmean = dalloc(c), *rvar = dalloc(c), *mean_out = dalloc(c), *var_out = dalloc(c);
    for (size_t ch = 0; ch < c; ++ch) {
        rmean[ch] = rng_uniform(-1.0, 1.5);
        rvar[ch] = rng_uniform(0.2, 4.0);
        mean_out[ch] = var_out[ch] = -7.0;
    }
    param_t w = param_new(c, 0.5, 1.5), b = param_new(c, -0.5, 0.5);
    const param_t *pw = affine ? &w : NULL, *pb = affine ? &b : NULL;
    ref_batch_norm(xv, want, n, c, spatial, layout, pw, pb, 1e-3, rmean, rvar, NULL, NULL, act);
    buf_t y = inplace ? x : buf_new(dt, total);
    CHECK_STATUS(run_batch_norm(dt, x.p, y.p, n, c, spatial, layout, pw, pb, 1e-3, rmean, rvar, mean_out, var_out, act),
                 CNORM_OK);
    check_buf("y", &y, want, xv, 2.0);
    int untouched = 1;
    for (size_t ch = 0; ch < c; ++ch) untouched &= mean_out[ch] == -7.0 && var_out[ch] == -7.0;
    CHECK(untouched, "mean_out/var_out written in eval mode");
    if (!inplace) buf_free(&y);
    buf_free(&x);
    param_free(&w);
    param_free(&b);
    free(xv), free(want), free(rmean), free(rvar), free(mean_out), free(var_out);
}

int main(void) {
    rng_seed(5);
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (int l = 0; l < 2; ++l)
                for (size_t k = 0; k < sizeof SHAPES / sizeof *SHAPES; ++k) {
                    const size_t *s = SHAPES[k];
                    const int big = s[0] * s[1] * s[2] > 10000;
                    const cnorm_layout layout = l ? CNORM_NHWC : CNORM_NCHW;
                    train_case((dtype)d, s, layout, 1, CNORM_ACT_NONE, 0);
                    train_case((dtype)d, s, layout, 0, CNORM_ACT_NONE, 1);
                    if (big) { /* (multi-block columns, threads) the kernels above, once more in eval */
                        eval_case((dtype)d, s, layout, 1, CNORM_ACT_RELU, 0);
                        continue;
                    }
                    eval_case((dtype)d, s, layout, 1, CNORM_ACT_NONE, 0);
                    eval_case((dtype)d, s, layout, 0, CNORM_ACT_NONE, 1);
                    for (int a = 1; a < ACT_COUNT; ++a) {
                        train_case((dtype)d, s, layout, 1, ALL_ACTS[a], 0);
                        eval_case((dtype)d, s, layout, 1, ALL_ACTS[a], 0);
                    }
                }
    }
    return check_report("test_batch_norm");
}
