/* Special values: a NaN or infinity in one normalization group makes only
 * that group's outputs non-finite; the other groups keep their reference
 * values.  A constant group has variance 0: its output is exactly the bias
 * (x - mean == 0), for small and huge constants. */
#include "check.h"

enum { LAYER, GROUP_NCHW, GROUP_NHWC, BATCH_NCHW, BATCH_NHWC, NVARIANTS };
static const char *const NAMES[] = {"layer_norm", "group_norm NCHW", "group_norm NHWC", "batch_norm NCHW",
                                    "batch_norm NHWC"};

/* Shape: n=3 samples, c=8 channels (4 groups), spatial=37.  Layer norm
 * sees it as 24 rows of 37. */
#define N 3
#define C 8
#define G 4
#define S 37
#define TOTAL (N * C * S)

/* The group (as an integer id) element k belongs to, per variant. */
static int group_of(int variant, size_t k) {
    const cnorm_layout layout = (variant == GROUP_NHWC || variant == BATCH_NHWC) ? CNORM_NHWC : CNORM_NCHW;
    size_t i, ch;
    if (layout == CNORM_NCHW) i = k / (C * S), ch = (k / S) % C;
    else i = k / (S * C), ch = k % C;
    switch (variant) {
    case LAYER: return (int)(k / S);
    case GROUP_NCHW:
    case GROUP_NHWC: return (int)(i * G + ch / (C / G));
    default: return (int)ch;
    }
}

static int run_variant(int variant, dtype dt, const void *x, void *y, const param_t *w, const param_t *b) {
    switch (variant) {
    case LAYER: return run_layer_norm(dt, x, y, N * C, S, w, b, 1e-5, NULL, NULL, CNORM_ACT_NONE);
    case GROUP_NCHW: return run_group_norm(dt, x, y, N, C, S, G, CNORM_NCHW, w, b, 1e-5, NULL, NULL, CNORM_ACT_NONE);
    case GROUP_NHWC: return run_group_norm(dt, x, y, N, C, S, G, CNORM_NHWC, w, b, 1e-5, NULL, NULL, CNORM_ACT_NONE);
    case BATCH_NCHW:
        return run_batch_norm(dt, x, y, N, C, S, CNORM_NCHW, w, b, 1e-5, NULL, NULL, NULL, NULL, CNORM_ACT_NONE);
    default: return run_batch_norm(dt, x, y, N, C, S, CNORM_NHWC, w, b, 1e-5, NULL, NULL, NULL, NULL, CNORM_ACT_NONE);
    }
}

static void ref_variant(int variant, const double *x, double *y, const param_t *w, const param_t *b) {
    switch (variant) {
    case LAYER: ref_layer_norm(x, y, N * C, S, w, b, 1e-5, NULL, NULL, CNORM_ACT_NONE); break;
    case GROUP_NCHW: ref_group_norm(x, y, N, C, S, G, CNORM_NCHW, w, b, 1e-5, NULL, NULL, CNORM_ACT_NONE); break;
    case GROUP_NHWC: ref_group_norm(x, y, N, C, S, G, CNORM_NHWC, w, b, 1e-5, NULL, NULL, CNORM_ACT_NONE); break;
    case BATCH_NCHW:
        ref_batch_norm(x, y, N, C, S, CNORM_NCHW, w, b, 1e-5, NULL, NULL, NULL, NULL, CNORM_ACT_NONE);
        break;
    default: ref_batch_norm(x, y, N, C, S, CNORM_NHWC, w, b, 1e-5, NULL, NULL, NULL, NULL, CNORM_ACT_NONE); break;
    }
}

static void poison_case(dtype dt, int variant, double bad, size_t where) {
    set_ctx("%s %s: %g at %zu", NAMES[variant], dt_name(dt), bad, where);
    const int layer = variant == LAYER;
    param_t w = param_new(layer ? S : C, 0.5, 1.5), b = param_new(layer ? S : C, -0.5, 0.5);
    buf_t x = buf_random(dt, TOTAL, 1.0, 2.0), y = buf_new(dt, TOTAL);
    buf_set(&x, where, bad);
    double *xv = buf_values(&x), *want = dalloc(TOTAL);
    ref_variant(variant, xv, want, &w, &b);
    CHECK_STATUS(run_variant(variant, dt, x.p, y.p, &w, &b), CNORM_OK);
    const int poisoned = group_of(variant, where);
    long wrong = 0;
    for (size_t k = 0; k < TOTAL; ++k) {
        const double got = buf_get(&y, k);
        if (group_of(variant, k) == poisoned) {
            if (isfinite(got) && ++wrong <= 3)
                CHECK(0, "y[%zu] = %g is finite, but its group holds %g", k, got, bad);
        } else if (!(fabs(got - want[k]) <= tol_for(dt, want[k], 1.0)) && ++wrong <= 3) {
            CHECK(0, "y[%zu] = %.9g, expected %.9g (another group holds %g)", k, got, want[k], bad);
        }
    }
    CHECK(wrong == 0, "%ld elements wrong", wrong);
    buf_free(&x);
    buf_free(&y);
    param_free(&w);
    param_free(&b);
    free(xv), free(want);
}

static void constant_case(dtype dt, int variant, double value) {
    set_ctx("%s %s: constant groups of %g", NAMES[variant], dt_name(dt), value);
    const int layer = variant == LAYER;
    param_t w = param_new(layer ? S : C, 0.5, 1.5), b = param_new(layer ? S : C, -0.5, 0.5);
    buf_t x = buf_new(dt, TOTAL), y = buf_new(dt, TOTAL);
    for (size_t k = 0; k < TOTAL; ++k) buf_set(&x, k, value);
    CHECK_STATUS(run_variant(variant, dt, x.p, y.p, &w, &b), CNORM_OK);
    long wrong = 0;
    for (size_t k = 0; k < TOTAL; ++k) {
        size_t ch;
        if (layer) ch = k % S;
        else if (variant == GROUP_NHWC || variant == BATCH_NHWC) ch = k % C;
        else ch = (k / S) % C;
        const double got = buf_get(&y, k), want = b.d[ch];
        if (!(fabs(got - want) <= 2 * ulp_of(dt, want)) && ++wrong <= 3)
            CHECK(0, "y[%zu] = %.9g, expected the bias %.9g", k, got, want);
    }
    CHECK(wrong == 0, "%ld elements differ from the bias", wrong);
    buf_free(&x);
    buf_free(&y);
    param_free(&w);
    param_free(&b);
}

int main(void) {
    rng_seed(11);
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (int v = 0; v < NVARIANTS; ++v) {
                const dtype dt = (dtype)d;
                poison_case(dt, v, NAN, 0);
                poison_case(dt, v, NAN, TOTAL / 2 + 5);
                poison_case(dt, v, INFINITY, TOTAL - 1);
                poison_case(dt, v, -INFINITY, 100);
                static const double consts[] = {0.0, 1.0, -3.7, 1000.0};
                for (size_t k = 0; k < sizeof consts / sizeof *consts; ++k) constant_case(dt, v, consts[k]);
                if (dt != DT_F16) constant_case(dt, v, -1e30);
                if (dt == DT_F64) constant_case(dt, v, 1e8 + 0.5);
                if (dt == DT_F32) constant_case(dt, v, 16777216.0);
            }
    }
    return check_report("test_special_values");
}
