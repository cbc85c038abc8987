/* Layer norm: every storage type, ISA and activation, with and without
 * weight/bias, statistics outputs and in place, on shapes that hit the SIMD
 * tails, the threaded rows and rows longer than one leaf block. */
#include "check.h"

typedef struct {
    size_t rows, cols;
} shape_t;

static const shape_t SHAPES[] = {{1, 1},  {3, 2},  {4, 3},   {2, 8},    {5, 17},  {3, 33},
                                 {2, 64}, {7, 100}, {2, 257}, {3, 1000}, {1, 4099}, {64, 1024},
                                 {2, 70001}};

enum { PLAIN, WEIGHT_ONLY, AFFINE };

static void run_case(dtype dt, shape_t s, int params, cnorm_activation act, int inplace) {
    const size_t n = s.rows * s.cols;
    set_ctx("layer_norm %s rows=%zu cols=%zu params=%d act=%s%s", dt_name(dt), s.rows, s.cols, params,
            act_name(act), inplace ? " in-place" : "");
    buf_t x = buf_random(dt, n, 3.0, 2.0);
    double *xv = buf_values(&x), *want = dalloc(n);
    param_t w = param_new(s.cols, 0.5, 1.5), b = param_new(s.cols, -0.5, 0.5);
    const param_t *pw = params != PLAIN ? &w : NULL, *pb = params == AFFINE ? &b : NULL;
    double *mean = dalloc(s.rows), *rstd = dalloc(s.rows), *wmean = dalloc(s.rows), *wrstd = dalloc(s.rows);

    ref_layer_norm(xv, want, s.rows, s.cols, pw, pb, 1e-5, wmean, wrstd, act);
    buf_t y = inplace ? x : buf_new(dt, n);
    CHECK_STATUS(run_layer_norm(dt, x.p, y.p, s.rows, s.cols, pw, pb, 1e-5, mean, rstd, act), CNORM_OK);
    check_buf("y", &y, want, xv, 1.0);
    check_stats("mean", mean, wmean, s.rows, dt, 2.0);
    check_stats("rstd", rstd, wrstd, s.rows, dt, 0.0);

    if (!inplace) {
        /* the statistics outputs are optional */
        buf_t y2 = buf_new(dt, n);
        CHECK_STATUS(run_layer_norm(dt, x.p, y2.p, s.rows, s.cols, pw, pb, 1e-5, NULL, NULL, act), CNORM_OK);
        CHECK(buf_equal(&y, &y2), "result changed without the statistics outputs");
        buf_free(&y2);
        buf_free(&y);
    }
    buf_free(&x);
    param_free(&w);
    param_free(&b);
    free(xv), free(want), free(mean), free(rstd), free(wmean), free(wrstd);
}

int main(void) {
    rng_seed(1);
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (size_t k = 0; k < sizeof SHAPES / sizeof *SHAPES; ++k) {
                const shape_t s = SHAPES[k];
                const int big = s.rows * s.cols > 10000;
                run_case((dtype)d, s, PLAIN, CNORM_ACT_NONE, 0);
                run_case((dtype)d, s, AFFINE, CNORM_ACT_NONE, 1);
                if (!big) run_case((dtype)d, s, WEIGHT_ONLY, CNORM_ACT_NONE, 0);
                for (int a = 1; a < ACT_COUNT; ++a)
                    if (!big || ALL_ACTS[a] == CNORM_ACT_GELU) run_case((dtype)d, s, AFFINE, ALL_ACTS[a], 0);
            }
    }
    return check_report("test_layer_norm");
}
