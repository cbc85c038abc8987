/* Accuracy on offset data (README, Guarantees: accuracy): rows of N(offset, 1).
 * The reference sees the very same stored inputs, so only what the
 * pipeline loses counts.  float32 at |mean|/std = 1e4: max error below
 * ulp(1e4)/8 = 1.2e-4 (a sum/sum-of-squares pipeline is off by ~1);
 * float64 at 1e4: 1e-11; moments of float64 N(1e8, 1): var to 1e-6. */
#include "check.h"

static double max_err(const buf_t *y, const double *want) {
    double e = 0.0;
    for (size_t i = 0; i < y->n; ++i) {
        const double d = fabs(buf_get(y, i) - want[i]);
        if (!(d <= e)) e = d; /* NaN wins */
    }
    return e;
}

static void norms(dtype dt, double offset, double bound) {
    const size_t rows = 16, cols = 4096, n = rows * cols;
    buf_t x = buf_random(dt, n, offset, 1.0), y = buf_new(dt, n);
    double *xv = buf_values(&x), *want = dalloc(n), err;

    set_ctx("layer_norm %s offset %g", dt_name(dt), offset);
    ref_layer_norm(xv, want, rows, cols, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE);
    CHECK_STATUS(run_layer_norm(dt, x.p, y.p, rows, cols, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE), CNORM_OK);
    err = max_err(&y, want);
    CHECK(err <= bound, "max error %.3g > %.3g", err, bound);

    /* (2, 8, 4096) as NCHW and (2, 4096, 8) as NHWC */
    for (int l = 0; l < 2; ++l) {
        const cnorm_layout layout = l ? CNORM_NHWC : CNORM_NCHW;
        const size_t c = 8, spatial = 4096, nn = 2;
        set_ctx("batch_norm %s %s offset %g", l ? "NHWC" : "NCHW", dt_name(dt), offset);
        ref_batch_norm(xv, want, nn, c, spatial, layout, NULL, NULL, 1e-5, NULL, NULL, NULL, NULL, CNORM_ACT_NONE);
        CHECK_STATUS(run_batch_norm(dt, x.p, y.p, nn, c, spatial, layout, NULL, NULL, 1e-5, NULL, NULL, NULL, NULL,
                                    CNORM_ACT_NONE),
                     CNORM_OK);
        err = max_err(&y, want);
        CHECK(err <= bound, "max error %.3g > %.3g", err, bound);

        set_ctx("group_norm(4) %s %s offset %g", l ? "NHWC" : "NCHW", dt_name(dt), offset);
        ref_group_norm(xv, want, nn, c, spatial, 4, layout, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE);
        CHECK_STATUS(run_group_norm(dt, x.p, y.p, nn, c, spatial, 4, layout, NULL, NULL, 1e-5, NULL, NULL,
                                    CNORM_ACT_NONE),
                     CNORM_OK);
        err = max_err(&y, want);
        CHECK(err <= bound, "max error %.3g > %.3g", err, bound);
    }
    buf_free(&x);
    buf_free(&y);
    free(xv), free(want);
}

static void moments_offset(void) {
    const size_t rows = 64, cols = 2048, n = rows * cols;
    double mean[64], var[64], wm[64], wv[64];
    set_ctx("moments f64 N(1e8, 1) rows");
    buf_t x = buf_random(DT_F64, n, 1e8, 1.0);
    double *xv = buf_values(&x);
    ref_moments(xv, rows, cols, 1, 0.0, wm, wv);
    CHECK_STATUS(run_moments(DT_F64, x.p, rows, cols, 1, 0.0, mean, var), CNORM_OK);
    for (size_t i = 0; i < rows; ++i) {
        CHECK(fabs(mean[i] - wm[i]) <= 1e-14 * fabs(wm[i]), "mean[%zu] %.17g vs %.17g", i, mean[i], wm[i]);
        CHECK(fabs(var[i] - wv[i]) <= 1e-6 * wv[i], "var[%zu] %.17g vs %.17g", i, var[i], wv[i]);
    }
    buf_free(&x);
    free(xv);

    /* float32 N(1e4, 1): var to 1e-4 relative, along rows and down columns */
    buf_t xf = buf_random(DT_F32, n, 1e4, 1.0);
    xv = buf_values(&xf);
    for (int cols_axis = 0; cols_axis < 2; ++cols_axis) {
        const size_t outer = cols_axis ? 1 : rows, len = cols, inner = cols_axis ? rows : 1;
        set_ctx("moments f32 N(1e4, 1) (%zu, %zu, %zu)", outer, len, inner);
        ref_moments(xv, outer, len, inner, 0.0, wm, wv);
        CHECK_STATUS(run_moments(DT_F32, xf.p, outer, len, inner, 0.0, mean, var), CNORM_OK);
        for (size_t i = 0; i < rows; ++i) {
            CHECK(fabs(mean[i] - wm[i]) <= 1e-6 * fabs(wm[i]), "mean[%zu] %.17g vs %.17g", i, mean[i], wm[i]);
            CHECK(fabs(var[i] - wv[i]) <= 1e-4 * wv[i], "var[%zu] %.17g vs %.17g", i, var[i], wv[i]);
        }
    }
    buf_free(&xf);
    free(xv);
}

int main(void) {
    rng_seed(10);
    FOR_EACH_ISA(isa) {
        norms(DT_F32, 1e4, ldexp(1.0, -13)); /* ulp(1e4) / 8 for float32 */
        norms(DT_F64, 1e4, 1e-11);
        moments_offset();
    }
    return check_report("test_accuracy");
}
