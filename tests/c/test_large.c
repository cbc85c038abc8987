/* Outputs of 16 MiB and more take the non-temporal store path (x86):
 * check it for float32 and float64, with the output aligned and misaligned
 * by one element (the scalar head before the aligned stores), out of place
 * and in place, through the row, affine-row and column apply kernels (wide
 * rows in column tiles, narrow rows as one flat stream, in panels of whole
 * periods that streaming caps: the 24-channel case), and with the
 * fused rows (layer and group norm) prefetching the next row. */
#include "check.h"

enum { LAYER, BATCH_NCHW, BATCH_NHWC, GROUP_NHWC, BATCH_NHWC_NARROW, GROUP_NCHW, BATCH_NHWC_24, NVARIANTS };
static const char *const NAMES[] = {"layer_norm", "batch_norm NCHW", "batch_norm NHWC", "group_norm NHWC",
                                    "batch_norm NHWC (61 channels)", "group_norm NCHW",
                                    "batch_norm NHWC (24 channels)"};

static void run_case(dtype dt, int variant, size_t misalign, int inplace) {
    /* 16.8 MB of output either way */
    const size_t total = dt == DT_F64 ? ((size_t)2 << 20) + 4099 : ((size_t)4 << 20) + 4099;
    /* 24 channels: a period of 192 bytes, whose streaming panels are capped */
    const size_t cols = variant == BATCH_NHWC_NARROW ? 61 : variant == BATCH_NHWC_24 ? 24 : 4099, rows = total / cols / 4 * 4, n = rows * cols;
    set_ctx("%s %s n=%zu misalign=%zu%s", NAMES[variant], dt_name(dt), n, misalign, inplace ? " in-place" : "");
    buf_t xs = buf_random(dt, n + misalign, -4.0, 3.0);
    buf_t x = {dt, n, (char *)xs.p + misalign * dt_size(dt)};
    double *xv = buf_values(&x), *want = dalloc(n);
    buf_t ys = buf_new(dt, n + 1);
    buf_t y = inplace ? x : (buf_t){dt, n, (char *)ys.p + misalign * dt_size(dt)};
    param_t w = param_new(cols, 0.5, 1.5), b = param_new(cols, -1.0, 1.0);
    int st = -100;
    switch (variant) {
    case LAYER:
        ref_layer_norm(xv, want, rows, cols, &w, &b, 1e-5, NULL, NULL, CNORM_ACT_NONE);
        st = run_layer_norm(dt, x.p, y.p, rows, cols, &w, &b, 1e-5, NULL, NULL, CNORM_ACT_NONE);
        break;
    case BATCH_NCHW: /* one sample, `rows` channels of 4099 positions */
        ref_batch_norm(xv, want, 1, rows, cols, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL, NULL, NULL, CNORM_ACT_RELU);
        st = run_batch_norm(dt, x.p, y.p, 1, rows, cols, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL, NULL, NULL,
                            CNORM_ACT_RELU);
        break;
    case BATCH_NHWC: /* rows positions of `cols` channels */
    case BATCH_NHWC_NARROW:
    case BATCH_NHWC_24:
        ref_batch_norm(xv, want, 1, cols, rows, CNORM_NHWC, &w, &b, 1e-5, NULL, NULL, NULL, NULL, CNORM_ACT_NONE);
        st = run_batch_norm(dt, x.p, y.p, 1, cols, rows, CNORM_NHWC, &w, &b, 1e-5, NULL, NULL, NULL, NULL,
                            CNORM_ACT_NONE);
        break;
    case GROUP_NCHW: /* one sample, `rows` channels of 4099 positions, 4 channels per group */
        ref_group_norm(xv, want, 1, rows, cols, rows / 4, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_SILU);
        st = run_group_norm(dt, x.p, y.p, 1, rows, cols, rows / 4, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL,
                            CNORM_ACT_SILU);
        break;
    default: /* one sample, 4099 channels in 4099 groups (instance norm) */
        ref_group_norm(xv, want, 1, cols, rows, cols, CNORM_NHWC, &w, &b, 1e-5, NULL, NULL, CNORM_ACT_NONE);
        st = run_group_norm(dt, x.p, y.p, 1, cols, rows, cols, CNORM_NHWC, &w, &b, 1e-5, NULL, NULL, CNORM_ACT_NONE);
        break;
    }
    CHECK(st == CNORM_OK, "returned %d (%s)", st, cnorm_status_string(st));
    check_buf("y", &y, want, xv, 1.0);
    buf_free(&xs);
    buf_free(&ys);
    param_free(&w);
    param_free(&b);
    free(xv), free(want);
}

int main(void) {
    rng_seed(9);
    FOR_EACH_ISA(isa) {
        if (isa == CNORM_ISA_SCALAR) continue; /* the scalar leaves ignore the streaming hint */
        /* NEON's "non-temporal" stores are plain vst1q (the same template
         * code as x86's around them): its misaligned cases, f32 and f64,
         * cover the head and the vector body there, and keep this test's
         * time under qemu down (it was the longest of the aarch64 run). */
        const int all = isa != CNORM_ISA_NEON;
        for (int v = 0; v < NVARIANTS; ++v) {
            if (all) run_case(DT_F32, v, 0, 0);
            run_case(DT_F32, v, 1, v == LAYER);
            run_case(DT_F64, v, 1, 0);
        }
        if (all) run_case(DT_F64, LAYER, 0, 1);
    }
    return check_report("test_large");
}
