/* RMS norm: y = x * weight / sqrt(mean(x^2) + eps), every storage type and
 * ISA, with and without weight, rstd output, in place. */
#include "check.h"

static const size_t SHAPES[][2] = {{1, 1},  {3, 2},   {4, 3},   {2, 8},    {5, 17},   {3, 33},    {2, 64},
                                   {7, 100}, {2, 257}, {3, 1000}, {1, 4099}, {64, 1024}, {2, 70001}};

static void run_case(dtype dt, size_t rows, size_t cols, int weighted, double eps, int inplace) {
    const size_t n = rows * cols;
    set_ctx("rms_norm %s rows=%zu cols=%zu weight=%d eps=%g%s", dt_name(dt), rows, cols, weighted, eps,
            inplace ? " in-place" : "");
    buf_t x = buf_random(dt, n, 0.5, 2.0);
    double *xv = buf_values(&x), *want = dalloc(n), *rstd = dalloc(rows), *wrstd = dalloc(rows);
    param_t w = param_new(cols, -1.5, 1.5);
    ref_rms_norm(xv, want, rows, cols, weighted ? &w : NULL, eps, wrstd);
    buf_t y = inplace ? x : buf_new(dt, n);
    CHECK_STATUS(run_rms_norm(dt, x.p, y.p, rows, cols, weighted ? &w : NULL, eps, rstd), CNORM_OK);
    check_buf("y", &y, want, xv, 1.0);
    check_stats("rstd", rstd, wrstd, rows, dt, 0.0);
    if (!inplace) {
        buf_t y2 = buf_new(dt, n);
        CHECK_STATUS(run_rms_norm(dt, x.p, y2.p, rows, cols, weighted ? &w : NULL, eps, NULL), CNORM_OK);
        CHECK(buf_equal(&y, &y2), "result changed without rstd_out");
        buf_free(&y2);
        buf_free(&y);
    }
    buf_free(&x);
    param_free(&w);
    free(xv), free(want), free(rstd), free(wrstd);
}

int main(void) {
    rng_seed(2);
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (size_t k = 0; k < sizeof SHAPES / sizeof *SHAPES; ++k) {
                run_case((dtype)d, SHAPES[k][0], SHAPES[k][1], 1, 1e-6, 0);
                run_case((dtype)d, SHAPES[k][0], SHAPES[k][1], 0, 0.0, 0);
                run_case((dtype)d, SHAPES[k][0], SHAPES[k][1], 1, 1e-5, 1);
            }
    }
    return check_report("test_rms_norm");
}
