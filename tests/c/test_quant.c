/* int8/uint8 output (the _q8 entry points): every op, storage type and
 * ISA.  The codes must be torch.quantize_per_tensor's of the float result,
 * clamp(round_half_even(y / scale + zero_point)), except next to a .5 tie
 * (the codes come from the unrounded y, computed as y * (1 / scale)); NaN
 * gives the minimum; bad parameters give CNORM_ERR_ARG. */
#include "check.h"

/* fn##_<dt> with void pointers: C converts them to each variant's types */
#define BY_DT(dt, fn, ...)                                                                                \
    ((dt) == DT_F32 ? fn##_f32(__VA_ARGS__)                                                               \
                    : (dt) == DT_F64 ? fn##_f64(__VA_ARGS__) : (dt) == DT_F16 ? fn##_f16(__VA_ARGS__) : fn##_bf16(__VA_ARGS__))

enum { OP_LAYER, OP_RMS, OP_ADD_LAYER, OP_ADD_RMS, OP_GROUP_NCHW, OP_GROUP_NHWC, OP_BATCH_NCHW, OP_BATCH_NHWC, OP_COUNT };
static const char *OP_NAMES[] = {"layer", "rms", "add_layer", "add_rms", "group_nchw", "group_nhwc", "batch_nchw",
                                 "batch_nhwc"};

/* y (storage type) when q is NULL, else the codes into q. (n, c, s): rows =
 * n, cols = c * s for the row ops. */
static int run_op(int op, dtype dt, const buf_t *x, const buf_t *r, void *s, void *y, void *q, size_t n, size_t c,
                  size_t sp, const param_t *w, const param_t *b, const cnorm_quant *quant) {
    const void *pw = param_ptr(w, dt), *pb = param_ptr(b, dt);
    const size_t cols = c * sp;
    double rm[64], rv[64]; /* running statistics for the eval case (c <= 64) */
    for (size_t k = 0; k < 64; ++k) rm[k] = 0.25 * (double)(k % 7) - 0.75, rv[k] = 0.5 + 0.125 * (double)(k % 5);
    switch (op) {
    case OP_LAYER:
        return q ? BY_DT(dt, cnorm_layer_norm_q8, x->p, q, n, cols, pw, pb, 1e-5, NULL, NULL, CNORM_ACT_GELU, quant)
                 : BY_DT(dt, cnorm_layer_norm, x->p, y, n, cols, pw, pb, 1e-5, NULL, NULL, CNORM_ACT_GELU);
    case OP_RMS:
        return q ? BY_DT(dt, cnorm_rms_norm_q8, x->p, q, n, cols, pw, 1e-6, NULL, quant)
                 : BY_DT(dt, cnorm_rms_norm, x->p, y, n, cols, pw, 1e-6, NULL);
    case OP_ADD_LAYER:
        return q ? BY_DT(dt, cnorm_add_layer_norm_q8, x->p, r->p, 1, NULL, s, q, n, cols, pw, pb, 1e-5, NULL, NULL,
                         CNORM_ACT_NONE, quant)
                 : BY_DT(dt, cnorm_add_layer_norm, x->p, r->p, 1, NULL, s, y, n, cols, pw, pb, 1e-5, NULL, NULL,
                         CNORM_ACT_NONE);
    case OP_ADD_RMS:
        return q ? BY_DT(dt, cnorm_add_rms_norm_q8, x->p, r->p, 1, pb, s, q, n, cols, pw, 1e-6, NULL, quant)
                 : BY_DT(dt, cnorm_add_rms_norm, x->p, r->p, 1, pb, s, y, n, cols, pw, 1e-6, NULL);
    case OP_GROUP_NCHW:
    case OP_GROUP_NHWC: {
        const cnorm_layout l = op == OP_GROUP_NCHW ? CNORM_NCHW : CNORM_NHWC;
        return q ? BY_DT(dt, cnorm_group_norm_q8, x->p, q, n, c, sp, 1, l, pw, pb, 1e-5, NULL, NULL, CNORM_ACT_SILU,
                         quant)
                 : BY_DT(dt, cnorm_group_norm, x->p, y, n, c, sp, 1, l, pw, pb, 1e-5, NULL, NULL, CNORM_ACT_SILU);
    }
    default: {
        const cnorm_layout l = op == OP_BATCH_NCHW ? CNORM_NCHW : CNORM_NHWC;
        const double *mi = op == OP_BATCH_NHWC ? rm : NULL, *vi = op == OP_BATCH_NHWC ? rv : NULL; /* eval / train */
        return q ? BY_DT(dt, cnorm_batch_norm_q8, x->p, q, n, c, sp, l, pw, pb, 1e-5, mi, vi, NULL, NULL,
                         CNORM_ACT_RELU, quant)
                 : BY_DT(dt, cnorm_batch_norm, x->p, y, n, c, sp, l, pw, pb, 1e-5, mi, vi, NULL, NULL, CNORM_ACT_RELU);
    }
    }
}

static void run_case(int op, dtype dt, size_t n, size_t c, size_t sp, cnorm_qtype type, int nan) {
    const size_t total = n * c * sp;
    const cnorm_quant quant = {type == CNORM_INT8 ? 0.02 : 0.015, type == CNORM_INT8 ? 3 : 128, type};
    set_ctx("%s_q8 %s n=%zu c=%zu s=%zu %s%s", OP_NAMES[op], dt_name(dt), n, c, sp,
            type == CNORM_INT8 ? "int8" : "uint8", nan ? " with NaN" : "");
    buf_t x = buf_random(dt, total, 1.0, 2.0), r = buf_random(dt, total, -0.5, 1.0);
    if (nan) buf_set(&x, total / 2, NAN);
    const size_t np = op <= OP_ADD_RMS ? c * sp : c;
    param_t w = param_new(np, 0.5, 1.5), b = param_new(np, -1.0, 1.0);
    buf_t y = buf_new(dt, total), s = buf_new(dt, total);
    uint8_t *q = (uint8_t *)calloc(total ? total : 1, 1);
    if (!q) exit(2);
    CHECK_STATUS(run_op(op, dt, &x, &r, s.p, y.p, NULL, n, c, sp, &w, &b, &quant), CNORM_OK);
    CHECK_STATUS(run_op(op, dt, &x, &r, s.p, NULL, q, n, c, sp, &w, &b, &quant), CNORM_OK);
    const double lo = type == CNORM_INT8 ? -128 : 0, hi = type == CNORM_INT8 ? 127 : 255;
    long near_tie = 0;
    for (size_t i = 0; i < total; ++i) {
        const double yv = buf_get(&y, i), v = yv / quant.scale + quant.zero_point;
        const double want = isnan(v) ? lo : fmin(fmax(nearbyint(v), lo), hi);
        const double got = type == CNORM_INT8 ? (double)(int8_t)q[i] : (double)q[i];
        if (got == want) continue;
        /* the float y is rounded to storage; the codes were made from it unrounded */
        const double tol = (tol_for(dt, yv, 1.0) + 4e-7 * fabs(yv)) / quant.scale + 4e-7 * fabs(v);
        const int tie = fabs(v - floor(v) - 0.5) <= tol && fabs(got - want) == 1.0;
        near_tie += tie;
        CHECK(tie, "i=%zu y=%.9g y/scale+zp=%.9g: code %g, want %g", i, yv, v, got, want);
    }
    /* float32/float64 y is rounded far below a code step, so few codes may
     * differ; a half y is rounded by up to half a code here (all codes near
     * ties may), so only the per-code rule above holds for them */
    CHECK(dt == DT_F16 || dt == DT_BF16 || near_tie <= 1 + (long)(total / 100), "%ld codes differ next to ties (of %zu)",
          near_tie, total);
    buf_free(&x), buf_free(&r), buf_free(&y), buf_free(&s);
    param_free(&w), param_free(&b);
    free(q);
}

static void errors(void) {
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t q[8];
    set_ctx("q8 error codes");
    const cnorm_quant bad[] = {{0.0, 0, CNORM_INT8},   {-1.0, 0, CNORM_INT8},   {INFINITY, 0, CNORM_INT8},
                               {NAN, 0, CNORM_UINT8},  {1.0, 128, CNORM_INT8},  {1.0, -129, CNORM_INT8},
                               {1.0, -1, CNORM_UINT8}, {1.0, 256, CNORM_UINT8}, {1.0, 0, (cnorm_qtype)2}};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; ++k) {
        CHECK_STATUS(cnorm_layer_norm_q8_f32(x, q, 2, 4, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE, &bad[k]),
                     CNORM_ERR_ARG);
        CHECK_STATUS(cnorm_batch_norm_q8_f64(NULL, q, 0, 0, 1, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL, NULL, NULL,
                                             CNORM_ACT_NONE, &bad[k]),
                     CNORM_ERR_ARG);
    }
    const cnorm_quant ok = {1e-300, 0, CNORM_UINT8}, edge = {1.0, -128, CNORM_INT8};
    CHECK_STATUS(cnorm_rms_norm_q8_f32(x, q, 2, 4, NULL, 1e-5, NULL, NULL), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_rms_norm_q8_f32(x, NULL, 2, 4, NULL, 1e-5, NULL, &ok), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_group_norm_q8_f32(x, q, 1, 2, 4, 3, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE,
                                         &ok),
                 CNORM_ERR_GROUPS);
    CHECK_STATUS(cnorm_rms_norm_q8_f32(x, q, 2, 4, NULL, 1e-5, NULL, &edge), CNORM_OK);
    /* a scale whose inverse overflows: y = 0 still gives the zero point */
    float z[4] = {0, 0, 0, 0};
    CHECK_STATUS(cnorm_rms_norm_q8_f32(z, q, 1, 4, NULL, 1e-5, NULL, &ok), CNORM_OK);
    CHECK(q[0] == 0 && q[3] == 0, "tiny scale: y = 0 gave %d", q[0]);
    const cnorm_quant zp = {1e-300, 7, CNORM_UINT8};
    CHECK_STATUS(cnorm_rms_norm_q8_f32(z, q, 1, 4, NULL, 1e-5, NULL, &zp), CNORM_OK);
    CHECK(q[0] == 7 && q[3] == 7, "tiny scale: y = 0 gave %d, want the zero point 7", q[0]);
}

int main(void) {
    rng_seed(11);
    errors();
    static const size_t SHAPES[][3] = {{3, 1, 7}, {4, 3, 33}, {2, 16, 40}, {5, 24, 1}, {2, 2, 1500}};
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (int op = 0; op < OP_COUNT; ++op)
                for (size_t k = 0; k < sizeof SHAPES / sizeof *SHAPES; ++k) {
                    if (op >= OP_GROUP_NCHW && op <= OP_GROUP_NHWC && SHAPES[k][2] == 1) continue; /* one value */
                    /* int8 and uint8 on alternate shapes (both types over the set) */
                    run_case(op, (dtype)d, SHAPES[k][0], SHAPES[k][1], SHAPES[k][2], k % 2 ? CNORM_UINT8 : CNORM_INT8,
                             k == 2);
                }
    }
    return check_report("test_quant");
}
