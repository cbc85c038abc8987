/* Threads: results are bitwise identical for any thread count (fixed
 * chunking, fixed merge order), on inputs large enough to run in parallel
 * (>= 2^15 elements): many rows, one long row, NCHW/NHWC batch and group
 * norm with many and with few samples, moments. */
#include "check.h"

enum { LAYER, LAYER_LONG, RMS, BATCH_NCHW, BATCH_NHWC, GROUP_NCHW, GROUP_NHWC, GROUP_NHWC_ONE, MOMENTS_ROWS,
       MOMENTS_COLS, NCASES };
static const char *const NAMES[] = {"layer (256, 1024)",    "layer (1, 300000)",   "rms (256, 1024)",
                                    "batch NCHW",           "batch NHWC",          "group NCHW",
                                    "group NHWC (8 samples)", "group NHWC (1 sample)", "moments rows",
                                    "moments columns"};

/* One call; the output and the statistics into out (total + extra). */
static void run(int which, dtype dt, const buf_t *x, buf_t *y, double *st) {
    int s = -100;
    switch (which) {
    case LAYER: s = run_layer_norm(dt, x->p, y->p, 256, 1024, NULL, NULL, 1e-5, st, st + 256, CNORM_ACT_GELU); break;
    case LAYER_LONG: s = run_layer_norm(dt, x->p, y->p, 1, 300000, NULL, NULL, 1e-5, st, st + 1, CNORM_ACT_NONE); break;
    case RMS: s = run_rms_norm(dt, x->p, y->p, 256, 1024, NULL, 1e-5, st); break;
    case BATCH_NCHW:
        s = run_batch_norm(dt, x->p, y->p, 16, 32, 512, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL, st, st + 32,
                           CNORM_ACT_RELU);
        break;
    case BATCH_NHWC:
        s = run_batch_norm(dt, x->p, y->p, 16, 32, 512, CNORM_NHWC, NULL, NULL, 1e-5, NULL, NULL, st, st + 32,
                           CNORM_ACT_NONE);
        break;
    case GROUP_NCHW:
        s = run_group_norm(dt, x->p, y->p, 8, 64, 512, 8, CNORM_NCHW, NULL, NULL, 1e-5, st, st + 64,
                           CNORM_ACT_SILU);
        break;
    case GROUP_NHWC:
        s = run_group_norm(dt, x->p, y->p, 8, 64, 512, 8, CNORM_NHWC, NULL, NULL, 1e-5, st, st + 64,
                           CNORM_ACT_NONE);
        break;
    case GROUP_NHWC_ONE:
        s = run_group_norm(dt, x->p, y->p, 1, 64, 4096, 64, CNORM_NHWC, NULL, NULL, 1e-5, st, st + 64,
                           CNORM_ACT_NONE);
        break;
    case MOMENTS_ROWS: s = run_moments(dt, x->p, 64, 4096, 1, 0.0, st, st + 64); break;
    default: s = run_moments(dt, x->p, 1, 4096, 64, 1.0, st, st + 64); break;
    }
    CHECK(s == CNORM_OK, "%s returned %d", NAMES[which], s);
}

int main(void) {
    const int def = cnorm_get_num_threads();
    printf("OpenMP %d, default threads %d\n", cnorm_has_openmp(), def);
    const size_t total = 300000; /* the largest case */
    const int counts[] = {1, 2, 3, 7};
    rng_seed(8);
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d) {
            buf_t x = buf_random((dtype)d, total, 1.0, 1.0);
            for (int c = 0; c < NCASES; ++c) {
                set_ctx("%s %s", NAMES[c], dt_name((dtype)d));
                buf_t y0 = buf_new((dtype)d, total), y1 = buf_new((dtype)d, total);
                double st0[1024], st1[1024];
                memset(st0, 0, sizeof st0);
                CHECK_STATUS(cnorm_set_num_threads(1), CNORM_OK);
                run(c, (dtype)d, &x, &y0, st0);
                for (size_t k = 0; k < sizeof counts / sizeof *counts; ++k) {
                    CHECK_STATUS(cnorm_set_num_threads(counts[k]), CNORM_OK);
                    memset(st1, 0, sizeof st1);
                    run(c, (dtype)d, &x, &y1, st1);
                    CHECK(buf_equal(&y0, &y1), "output differs between 1 and %d threads", counts[k]);
                    CHECK(memcmp(st0, st1, sizeof st0) == 0, "statistics differ between 1 and %d threads", counts[k]);
                }
                buf_free(&y0);
                buf_free(&y1);
            }
            buf_free(&x);
        }
    }
    CHECK_STATUS(cnorm_set_num_threads(0), CNORM_OK);
    return check_report("test_threads");
}
