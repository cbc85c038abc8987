/* The add norms: sum_out = x + residual (+ skip_bias) in the compute
 * precision, and y (and the statistics) bitwise those of cnorm_layer_norm_* /
 * cnorm_rms_norm_* on that stored sum; every storage type and ISA, full and
 * broadcast residuals, in place; and the error codes. */
#include "check.h"

static const size_t SHAPES[][2] = {{1, 1}, {3, 7}, {4, 16}, {6, 33}, {2, 768}, {4, 1001}, {1, 4099}, {1, 65601}};

static int run_add(dtype dt, int rms, const void *x, const void *r, size_t r_rows, const param_t *skip, void *s,
                   void *y, size_t rows, size_t cols, const param_t *w, const param_t *b, double eps, double *mean,
                   double *rstd, cnorm_activation act) {
    const void *pk = param_ptr(skip, dt), *pw = param_ptr(w, dt), *pb = param_ptr(b, dt);
    if (rms) switch (dt) {
        case DT_F32: return cnorm_add_rms_norm_f32((const float *)x, (const float *)r, r_rows, (const float *)pk, (float *)s, (float *)y, rows, cols, (const float *)pw, eps, rstd);
        case DT_F64: return cnorm_add_rms_norm_f64((const double *)x, (const double *)r, r_rows, (const double *)pk, (double *)s, (double *)y, rows, cols, (const double *)pw, eps, rstd);
        case DT_F16: return cnorm_add_rms_norm_f16((const uint16_t *)x, (const uint16_t *)r, r_rows, (const float *)pk, (uint16_t *)s, (uint16_t *)y, rows, cols, (const float *)pw, eps, rstd);
        default: return cnorm_add_rms_norm_bf16((const uint16_t *)x, (const uint16_t *)r, r_rows, (const float *)pk, (uint16_t *)s, (uint16_t *)y, rows, cols, (const float *)pw, eps, rstd);
        }
    switch (dt) {
    case DT_F32: return cnorm_add_layer_norm_f32((const float *)x, (const float *)r, r_rows, (const float *)pk, (float *)s, (float *)y, rows, cols, (const float *)pw, (const float *)pb, eps, mean, rstd, act);
    case DT_F64: return cnorm_add_layer_norm_f64((const double *)x, (const double *)r, r_rows, (const double *)pk, (double *)s, (double *)y, rows, cols, (const double *)pw, (const double *)pb, eps, mean, rstd, act);
    case DT_F16: return cnorm_add_layer_norm_f16((const uint16_t *)x, (const uint16_t *)r, r_rows, (const float *)pk, (uint16_t *)s, (uint16_t *)y, rows, cols, (const float *)pw, (const float *)pb, eps, mean, rstd, act);
    default: return cnorm_add_layer_norm_bf16((const uint16_t *)x, (const uint16_t *)r, r_rows, (const float *)pk, (uint16_t *)s, (uint16_t *)y, rows, cols, (const float *)pw, (const float *)pb, eps, mean, rstd, act);
    }
}

/* The sum as the library defines it: each add in float (double for f64),
 * then rounded to the storage type. */
static double ref_sum(dtype dt, double x, double r, const param_t *skip, size_t j) {
    if (dt == DT_F64) return skip ? (x + r) + skip->d[j] : x + r;
    float v = (float)x + (float)r;
    if (skip) v += skip->f[j];
    return v;
}

static void run_case(dtype dt, int rms, size_t rows, size_t cols, int broadcast, int with_skip, int inplace) {
    const size_t n = rows * cols, r_rows = broadcast ? 1 : rows;
    set_ctx("add_%s_norm %s rows=%zu cols=%zu broadcast=%d skip=%d%s", rms ? "rms" : "layer", dt_name(dt), rows,
            cols, broadcast, with_skip, inplace ? " in-place" : "");
    buf_t x = buf_random(dt, n, 3.0, 1.0), r = buf_random(dt, r_rows * cols, -2.0, 0.5);
    param_t w = param_new(cols, 0.5, 1.5), b = param_new(cols, -1.0, 1.0), k = param_new(cols, -0.5, 0.5);
    const param_t *skip = with_skip ? &k : NULL;
    buf_t want_s = buf_new(dt, n);
    for (size_t i = 0; i < n; ++i)
        buf_set(&want_s, i, ref_sum(dt, buf_get(&x, i), buf_get(&r, (i / cols % r_rows) * cols + i % cols), skip, i % cols));
    /* the plain norm of the stored sum: what y must be, bit for bit */
    buf_t want_y = buf_new(dt, n);
    double *wm = dalloc(rows), *wr = dalloc(rows), *mean = dalloc(rows), *rstd = dalloc(rows);
    if (rms)
        CHECK_STATUS(run_rms_norm(dt, want_s.p, want_y.p, rows, cols, &w, 1e-6, wr), CNORM_OK);
    else
        CHECK_STATUS(run_layer_norm(dt, want_s.p, want_y.p, rows, cols, &w, &b, 1e-5, wm, wr, CNORM_ACT_SILU),
                     CNORM_OK);
    buf_t s = inplace && !broadcast ? r : buf_new(dt, n), y = inplace ? x : buf_new(dt, n);
    CHECK_STATUS(run_add(dt, rms, x.p, r.p, r_rows, skip, s.p, y.p, rows, cols, &w, &b, rms ? 1e-6 : 1e-5, mean,
                         rstd, CNORM_ACT_SILU),
                 CNORM_OK);
    CHECK(buf_equal(&s, &want_s), "sum differs from x + residual (+ skip_bias)");
    CHECK(buf_equal(&y, &want_y), "y differs from the norm of the stored sum");
    CHECK(memcmp(rstd, wr, rows * sizeof *rstd) == 0, "rstd differs from the norm of the stored sum");
    CHECK(rms || memcmp(mean, wm, rows * sizeof *mean) == 0, "mean differs from the norm of the stored sum");
    if (s.p != r.p) buf_free(&s);
    if (y.p != x.p) buf_free(&y);
    buf_free(&x), buf_free(&r), buf_free(&want_s), buf_free(&want_y);
    param_free(&w), param_free(&b), param_free(&k);
    free(wm), free(wr), free(mean), free(rstd);
}

static void errors(void) {
    float x[12] = {0}, r[12] = {0}, s[12], y[12];
    set_ctx("add norm error codes");
    CHECK_STATUS(cnorm_add_layer_norm_f32(x, r, 4, NULL, s, y, 3, 4, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE),
                 CNORM_ERR_SIZE); /* 4 residual rows for 3 rows */
    CHECK_STATUS(cnorm_add_rms_norm_f32(x, r, 2, NULL, s, y, 3, 4, NULL, 1e-5, NULL), CNORM_ERR_SIZE);
    CHECK_STATUS(cnorm_add_rms_norm_f32(x, r, 0, NULL, s, y, 3, 4, NULL, 1e-5, NULL), CNORM_ERR_SIZE);
    CHECK_STATUS(cnorm_add_layer_norm_f32(x, r, 3, NULL, NULL, y, 3, 4, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE),
                 CNORM_ERR_NULL); /* sum_out is required */
    CHECK_STATUS(cnorm_add_rms_norm_f32(x, NULL, 3, NULL, s, y, 3, 4, NULL, 1e-5, NULL), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_add_layer_norm_f32(x, r, 3, NULL, s, y, 3, 4, NULL, NULL, -1.0, NULL, NULL, CNORM_ACT_NONE),
                 CNORM_ERR_EPS);
    CHECK_STATUS(cnorm_add_layer_norm_f32(x, r, 3, NULL, s, y, 3, 4, NULL, NULL, 1e-5, NULL, NULL, (cnorm_activation)9),
                 CNORM_ERR_ARG);
    CHECK_STATUS(cnorm_add_rms_norm_f32(x, r, 3, NULL, s, y, 3, 0, NULL, 1e-5, NULL), CNORM_ERR_SIZE);
    CHECK_STATUS(cnorm_add_rms_norm_f32(NULL, NULL, 0, NULL, NULL, NULL, 0, 4, NULL, 1e-5, NULL), CNORM_OK);
    CHECK_STATUS(cnorm_add_layer_norm_f64(NULL, NULL, 1, NULL, NULL, NULL, (size_t)1 << 40, (size_t)1 << 40, NULL,
                                          NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE),
                 CNORM_ERR_SIZE);
}

int main(void) {
    rng_seed(7);
    errors();
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (size_t c = 0; c < sizeof SHAPES / sizeof *SHAPES; ++c)
                for (int rms = 0; rms < 2; ++rms) { /* each shape: full and broadcast, skip and not, in place and not */
                    run_case((dtype)d, rms, SHAPES[c][0], SHAPES[c][1], 0, (int)(c % 2), (int)(c % 2));
                    run_case((dtype)d, rms, SHAPES[c][0], SHAPES[c][1], 1, (int)(1 - c % 2), (int)(c % 2));
                }
    }
    return check_report("test_add_norm");
}
