/* Group norm, NCHW and NHWC: every storage type, ISA and activation, with
 * and without weight/bias, mean/var outputs, in place.  Shapes reach the
 * column tiles (c > 256), the one-sample-per-thread NHWC path and the
 * few-samples path that parallelizes inside a sample. */
#include "check.h"

typedef struct {
    size_t n, c, spatial, groups;
} shape_t;

static const shape_t SHAPES[] = {
    {1, 1, 1, 1},   {2, 4, 3, 2},   {2, 6, 5, 3},     {3, 8, 7, 1},      {2, 16, 9, 4},    {1, 32, 64, 8},
    {4, 12, 100, 3}, {2, 64, 33, 16}, {1, 300, 20, 10}, {2, 520, 3, 260}, {8, 32, 1024, 8}, {1, 64, 2048, 4},
};

static void run_case(dtype dt, shape_t s, cnorm_layout layout, int affine, cnorm_activation act, int inplace) {
    const size_t total = s.n * s.c * s.spatial, ng = s.n * s.groups;
    set_ctx("group_norm %s %s n=%zu c=%zu spatial=%zu groups=%zu affine=%d act=%s%s", dt_name(dt),
            layout == CNORM_NCHW ? "NCHW" : "NHWC", s.n, s.c, s.spatial, s.groups, affine, act_name(act),
            inplace ? " in-place" : "");
    buf_t x = buf_random(dt, total, -1.5, 3.0);
    double *xv = buf_values(&x), *want = dalloc(total);
    double *mean = dalloc(ng), *var = dalloc(ng), *wmean = dalloc(ng), *wvar = dalloc(ng);
    param_t w = param_new(s.c, 0.5, 1.5), b = param_new(s.c, -0.5, 0.5);
    const param_t *pw = affine ? &w : NULL, *pb = affine ? &b : NULL;
    ref_group_norm(xv, want, s.n, s.c, s.spatial, s.groups, layout, pw, pb, 1e-5, wmean, wvar, act);
    buf_t y = inplace ? x : buf_new(dt, total);
    CHECK_STATUS(run_group_norm(dt, x.p, y.p, s.n, s.c, s.spatial, s.groups, layout, pw, pb, 1e-5, mean, var, act),
                 CNORM_OK);
    check_buf("y", &y, want, xv, 1.0);
    check_stats("mean", mean, wmean, ng, dt, 3.0);
    check_stats("var", var, wvar, ng, dt, 0.0);
    if (!inplace) buf_free(&y);
    buf_free(&x);
    param_free(&w);
    param_free(&b);
    free(xv), free(want), free(mean), free(var), free(wmean), free(wvar);
}

int main(void) {
    rng_seed(3);
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (int l = 0; l < 2; ++l)
                for (size_t k = 0; k < sizeof SHAPES / sizeof *SHAPES; ++k) {
                    const shape_t s = SHAPES[k];
                    const int big = s.n * s.c * s.spatial > 10000;
                    const cnorm_layout layout = l ? CNORM_NHWC : CNORM_NCHW;
                    run_case((dtype)d, s, layout, 0, CNORM_ACT_NONE, 0);
                    run_case((dtype)d, s, layout, 1, CNORM_ACT_NONE, 1);
                    for (int a = 1; a < ACT_COUNT; ++a)
                        if (!big || ALL_ACTS[a] == CNORM_ACT_SILU) run_case((dtype)d, s, layout, 1, ALL_ACTS[a], 0);
                }
    }
    return check_report("test_group_norm");
}
