/* Instance norm = group norm with groups == c: statistics per (sample,
 * channel) over the spatial positions, NCHW and NHWC, every storage type,
 * ISA and activation.  Includes a plane longer than one leaf block. */
#include "check.h"

static const size_t SHAPES[][3] = {{1, 1, 1},  {2, 3, 5},   {2, 8, 16}, {3, 17, 31},
                                   {1, 64, 100}, {2, 300, 7}, {4, 16, 256}, {1, 3, 70000}};

static void run_case(dtype dt, const size_t *s, cnorm_layout layout, int affine, cnorm_activation act) {
    const size_t n = s[0], c = s[1], spatial = s[2], total = n * c * spatial;
    set_ctx("instance_norm %s %s n=%zu c=%zu spatial=%zu affine=%d act=%s", dt_name(dt),
            layout == CNORM_NCHW ? "NCHW" : "NHWC", n, c, spatial, affine, act_name(act));
    buf_t x = buf_random(dt, total, 10.0, 0.5);
    buf_t y = buf_new(dt, total);
    double *xv = buf_values(&x), *want = dalloc(total);
    double *mean = dalloc(n * c), *var = dalloc(n * c), *wmean = dalloc(n * c), *wvar = dalloc(n * c);
    param_t w = param_new(c, -2.0, 2.0), b = param_new(c, -1.0, 1.0);
    ref_group_norm(xv, want, n, c, spatial, c, layout, affine ? &w : NULL, affine ? &b : NULL, 1e-5, wmean, wvar, act);
    CHECK_STATUS(run_group_norm(dt, x.p, y.p, n, c, spatial, c, layout, affine ? &w : NULL, affine ? &b : NULL, 1e-5,
                                mean, var, act),
                 CNORM_OK);
    check_buf("y", &y, want, xv, 1.0);
    check_stats("mean", mean, wmean, n * c, dt, 0.5);
    check_stats("var", var, wvar, n * c, dt, 0.0);
    buf_free(&x);
    buf_free(&y);
    param_free(&w);
    param_free(&b);
    free(xv), free(want), free(mean), free(var), free(wmean), free(wvar);
}

int main(void) {
    rng_seed(4);
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (int l = 0; l < 2; ++l)
                for (size_t k = 0; k < sizeof SHAPES / sizeof *SHAPES; ++k) {
                    const cnorm_layout layout = l ? CNORM_NHWC : CNORM_NCHW;
                    run_case((dtype)d, SHAPES[k], layout, 0, CNORM_ACT_NONE);
                    for (int a = 0; a < ACT_COUNT; ++a) run_case((dtype)d, SHAPES[k], layout, 1, ALL_ACTS[a]);
                }
    }
    return check_report("test_instance_norm");
}
