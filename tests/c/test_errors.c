/* Error codes: NULL pointers, zero and overflowing sizes, bad group counts,
 * negative/NaN/infinite eps, bad layouts, out-of-range activations.  Every
 * bad call must return its code without touching memory (the buffers here
 * are tiny while the sizes claim petabytes) and without crashing; the
 * output must be left as it was.  Empty batches are no-ops. */
#include <stdint.h>

#include "check.h"

#define SMALL 64
#define SENTINEL 0.25

static buf_t x, y;
static param_t w, b;
static double stats_a[SMALL], stats_b[SMALL];

static void reset_y(void) {
    for (size_t i = 0; i < y.n; ++i) buf_set(&y, i, SENTINEL);
}

static int y_untouched(void) {
    for (size_t i = 0; i < y.n; ++i)
        if (buf_get(&y, i) != SENTINEL) return 0;
    return 1;
}

#define EXPECT(call, want)                                                                 \
    do {                                                                                   \
        reset_y();                                                                         \
        CHECK_STATUS(call, want);                                                          \
        if ((want) != CNORM_OK) CHECK(y_untouched(), "%s wrote its output on error", #call); \
    } while (0)

static const size_t HUGE_ROWS = SIZE_MAX / 2; /* times 4 columns overflows */
static const cnorm_activation BAD_ACTS[] = {(cnorm_activation)4, (cnorm_activation)-1, (cnorm_activation)1000};
static const double BAD_EPS[] = {-1e-5, -1e300, NAN, -NAN, INFINITY, -INFINITY};

static void layer_and_rms(dtype dt) {
    set_ctx("layer/rms %s", dt_name(dt));
    const double e = 1e-5;
    EXPECT(run_layer_norm(dt, NULL, y.p, 2, 4, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_NULL);
    EXPECT(run_layer_norm(dt, x.p, NULL, 2, 4, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_NULL);
    EXPECT(run_layer_norm(dt, x.p, y.p, HUGE_ROWS, 4, &w, &b, e, stats_a, stats_b, CNORM_ACT_NONE), CNORM_ERR_SIZE);
    EXPECT(run_layer_norm(dt, x.p, y.p, 4, HUGE_ROWS, &w, &b, e, stats_a, stats_b, CNORM_ACT_NONE), CNORM_ERR_SIZE);
    EXPECT(run_layer_norm(dt, x.p, y.p, SIZE_MAX, 1, &w, &b, e, stats_a, stats_b, CNORM_ACT_NONE), CNORM_ERR_SIZE);
    EXPECT(run_layer_norm(dt, x.p, y.p, SIZE_MAX, SIZE_MAX, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_SIZE);
    EXPECT(run_layer_norm(dt, x.p, y.p, 3, 0, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_SIZE);
    for (size_t k = 0; k < sizeof BAD_EPS / sizeof *BAD_EPS; ++k)
        EXPECT(run_layer_norm(dt, x.p, y.p, 2, 4, &w, &b, BAD_EPS[k], NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_EPS);
    for (size_t k = 0; k < sizeof BAD_ACTS / sizeof *BAD_ACTS; ++k)
        EXPECT(run_layer_norm(dt, x.p, y.p, 2, 4, &w, &b, e, NULL, NULL, BAD_ACTS[k]), CNORM_ERR_ARG);
    /* empty batch: nothing to do */
    EXPECT(run_layer_norm(dt, x.p, y.p, 0, 4, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_OK);
    CHECK(y_untouched(), "rows == 0 wrote the output");
    /* eps == 0 is allowed */
    EXPECT(run_layer_norm(dt, x.p, y.p, 2, 4, NULL, NULL, 0.0, NULL, NULL, CNORM_ACT_NONE), CNORM_OK);

    EXPECT(run_rms_norm(dt, NULL, y.p, 2, 4, &w, e, NULL), CNORM_ERR_NULL);
    EXPECT(run_rms_norm(dt, x.p, NULL, 2, 4, &w, e, NULL), CNORM_ERR_NULL);
    EXPECT(run_rms_norm(dt, x.p, y.p, HUGE_ROWS, 4, &w, e, stats_a), CNORM_ERR_SIZE);
    EXPECT(run_rms_norm(dt, x.p, y.p, SIZE_MAX, 3, &w, e, stats_a), CNORM_ERR_SIZE);
    EXPECT(run_rms_norm(dt, x.p, y.p, 3, 0, &w, e, NULL), CNORM_ERR_SIZE);
    for (size_t k = 0; k < sizeof BAD_EPS / sizeof *BAD_EPS; ++k)
        EXPECT(run_rms_norm(dt, x.p, y.p, 2, 4, &w, BAD_EPS[k], NULL), CNORM_ERR_EPS);
    EXPECT(run_rms_norm(dt, x.p, y.p, 0, 4, &w, e, NULL), CNORM_OK);
}

static void group(dtype dt) {
    set_ctx("group %s", dt_name(dt));
    const double e = 1e-5;
    const cnorm_layout L = CNORM_NCHW;
    EXPECT(run_group_norm(dt, NULL, y.p, 2, 4, 3, 2, L, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_NULL);
    EXPECT(run_group_norm(dt, x.p, NULL, 2, 4, 3, 2, CNORM_NHWC, &w, &b, e, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_NULL);
    EXPECT(run_group_norm(dt, x.p, y.p, HUGE_ROWS, 4, 3, 2, L, &w, &b, e, stats_a, stats_b, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_group_norm(dt, x.p, y.p, 2, HUGE_ROWS, 4, 1, L, &w, &b, e, stats_a, stats_b, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_group_norm(dt, x.p, y.p, 4, 2, HUGE_ROWS, 1, CNORM_NHWC, &w, &b, e, stats_a, stats_b, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_group_norm(dt, x.p, y.p, 2, 4, 0, 2, L, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_SIZE);
    EXPECT(run_group_norm(dt, x.p, y.p, 2, 4, 3, 0, L, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_GROUPS);
    EXPECT(run_group_norm(dt, x.p, y.p, 2, 4, 3, 3, L, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_GROUPS);
    EXPECT(run_group_norm(dt, x.p, y.p, 2, 4, 3, 8, CNORM_NHWC, &w, &b, e, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_GROUPS);
    EXPECT(run_group_norm(dt, x.p, y.p, 2, 4, 3, 2, (cnorm_layout)2, &w, &b, e, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_LAYOUT);
    EXPECT(run_group_norm(dt, x.p, y.p, 2, 4, 3, 2, (cnorm_layout)-1, &w, &b, e, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_LAYOUT);
    for (size_t k = 0; k < sizeof BAD_EPS / sizeof *BAD_EPS; ++k)
        EXPECT(run_group_norm(dt, x.p, y.p, 2, 4, 3, 2, L, &w, &b, BAD_EPS[k], NULL, NULL, CNORM_ACT_NONE),
               CNORM_ERR_EPS);
    for (size_t k = 0; k < sizeof BAD_ACTS / sizeof *BAD_ACTS; ++k)
        EXPECT(run_group_norm(dt, x.p, y.p, 2, 4, 3, 2, CNORM_NHWC, &w, &b, e, NULL, NULL, BAD_ACTS[k]),
               CNORM_ERR_ARG);
    EXPECT(run_group_norm(dt, x.p, y.p, 0, 4, 3, 2, L, &w, &b, e, NULL, NULL, CNORM_ACT_NONE), CNORM_OK);
    CHECK(y_untouched(), "n == 0 wrote the output");
}

static void batch(dtype dt) {
    set_ctx("batch %s", dt_name(dt));
    const double e = 1e-5;
    const cnorm_layout L = CNORM_NCHW;
    double rm[4] = {0, 0, 0, 0}, rv[4] = {1, 1, 1, 1};
    EXPECT(run_batch_norm(dt, NULL, y.p, 2, 4, 3, L, &w, &b, e, NULL, NULL, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_NULL);
    EXPECT(run_batch_norm(dt, NULL, y.p, 2, 4, 3, L, &w, &b, e, rm, rv, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_NULL);
    EXPECT(run_batch_norm(dt, x.p, NULL, 2, 4, 3, CNORM_NHWC, &w, &b, e, NULL, NULL, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_NULL);
    EXPECT(run_batch_norm(dt, x.p, y.p, HUGE_ROWS, 4, 1, L, &w, &b, e, NULL, NULL, stats_a, stats_b, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_batch_norm(dt, x.p, y.p, 2, 4, HUGE_ROWS, CNORM_NHWC, &w, &b, e, rm, rv, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_batch_norm(dt, x.p, y.p, 1, HUGE_ROWS, 4, L, &w, &b, e, NULL, NULL, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    /* training needs at least one value per channel */
    EXPECT(run_batch_norm(dt, x.p, y.p, 0, 4, 3, L, &w, &b, e, NULL, NULL, stats_a, stats_b, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_batch_norm(dt, x.p, y.p, 2, 4, 0, CNORM_NHWC, &w, &b, e, NULL, NULL, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    /* ... inference does not */
    EXPECT(run_batch_norm(dt, x.p, y.p, 0, 4, 3, L, &w, &b, e, rm, rv, NULL, NULL, CNORM_ACT_NONE), CNORM_OK);
    CHECK(y_untouched(), "n == 0 wrote the output");
    EXPECT(run_batch_norm(dt, x.p, y.p, 2, 4, 3, (cnorm_layout)7, &w, &b, e, NULL, NULL, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_LAYOUT);
    EXPECT(run_batch_norm(dt, x.p, y.p, 2, 4, 3, (cnorm_layout)-3, &w, &b, e, rm, rv, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_LAYOUT);
    for (size_t k = 0; k < sizeof BAD_EPS / sizeof *BAD_EPS; ++k) {
        EXPECT(run_batch_norm(dt, x.p, y.p, 2, 4, 3, L, &w, &b, BAD_EPS[k], NULL, NULL, NULL, NULL, CNORM_ACT_NONE),
               CNORM_ERR_EPS);
        EXPECT(run_batch_norm(dt, x.p, y.p, 2, 4, 3, L, &w, &b, BAD_EPS[k], rm, rv, NULL, NULL, CNORM_ACT_NONE),
               CNORM_ERR_EPS);
    }
    for (size_t k = 0; k < sizeof BAD_ACTS / sizeof *BAD_ACTS; ++k)
        EXPECT(run_batch_norm(dt, x.p, y.p, 2, 4, 3, CNORM_NHWC, &w, &b, e, rm, rv, NULL, NULL, BAD_ACTS[k]),
               CNORM_ERR_ARG);
}

static void moments(dtype dt) {
    set_ctx("moments %s", dt_name(dt));
    reset_y();
    CHECK_STATUS(run_moments(dt, NULL, 2, 4, 3, 0.0, stats_a, stats_b), CNORM_ERR_NULL);
    CHECK_STATUS(run_moments(dt, x.p, 2, 4, 3, 0.0, NULL, stats_b), CNORM_ERR_NULL);
    CHECK_STATUS(run_moments(dt, x.p, 2, 4, 3, 0.0, stats_a, NULL), CNORM_ERR_NULL);
    CHECK_STATUS(run_moments(dt, x.p, 2, 0, 3, 0.0, stats_a, stats_b), CNORM_ERR_SIZE);
    CHECK_STATUS(run_moments(dt, x.p, HUGE_ROWS, 4, 1, 0.0, stats_a, stats_b), CNORM_ERR_SIZE);
    CHECK_STATUS(run_moments(dt, x.p, 1, HUGE_ROWS, 4, 0.0, stats_a, stats_b), CNORM_ERR_SIZE);
    CHECK_STATUS(run_moments(dt, x.p, 4, 1, HUGE_ROWS, 0.0, stats_a, stats_b), CNORM_ERR_SIZE);
    CHECK_STATUS(run_moments(dt, x.p, 0, 4, 3, 0.0, stats_a, stats_b), CNORM_OK);
    CHECK_STATUS(run_moments(dt, x.p, 2, 4, 0, 0.0, stats_a, stats_b), CNORM_OK);
}

static void fold(void) {
    set_ctx("fold");
    float fw[SMALL], fb[SMALL], fo[SMALL], fob[SMALL];
    double dw[SMALL], db[SMALL], dout[SMALL], dob[SMALL];
    for (int i = 0; i < SMALL; ++i) fw[i] = fb[i] = 1.0f, dw[i] = db[i] = 1.0;
    CHECK_STATUS(cnorm_fold_batch_norm_f32(fw, fb, 4, 3, NULL, fb, fb, fb, 1e-5, fo, fob), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_fold_batch_norm_f32(fw, fb, 4, 3, fb, NULL, fb, fb, 1e-5, fo, fob), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_fold_batch_norm_f32(NULL, fb, 4, 3, fb, fb, fb, fb, 1e-5, fo, fob), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_fold_batch_norm_f32(fw, fb, 4, 3, fb, fb, fb, fb, 1e-5, NULL, fob), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_fold_batch_norm_f32(fw, fb, 4, 3, fb, fb, fb, fb, 1e-5, fo, NULL), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_fold_batch_norm_f32(fw, fb, HUGE_ROWS, 4, fb, fb, fb, fb, 1e-5, fo, fob), CNORM_ERR_SIZE);
    CHECK_STATUS(cnorm_fold_batch_norm_f32(fw, fb, 4, 3, fb, fb, fb, fb, -1.0, fo, fob), CNORM_ERR_EPS);
    CHECK_STATUS(cnorm_fold_batch_norm_f32(fw, fb, 4, 3, fb, fb, fb, fb, NAN, fo, fob), CNORM_ERR_EPS);
    CHECK_STATUS(cnorm_fold_batch_norm_f64(dw, db, 4, 3, NULL, db, db, db, 1e-5, dout, dob), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_fold_batch_norm_f64(dw, db, 4, 3, db, db, db, db, 1e-5, NULL, dob), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_fold_batch_norm_f64(dw, db, 4, 3, db, db, db, db, 1e-5, dout, NULL), CNORM_ERR_NULL);
    CHECK_STATUS(cnorm_fold_batch_norm_f64(dw, db, 4, HUGE_ROWS, db, db, db, db, 1e-5, dout, dob), CNORM_ERR_SIZE);
    CHECK_STATUS(cnorm_fold_batch_norm_f64(dw, db, 4, 3, db, db, db, db, INFINITY, dout, dob), CNORM_ERR_EPS);
    /* all optional pointers NULL is fine */
    CHECK_STATUS(cnorm_fold_batch_norm_f64(dw, NULL, 4, 3, db, db, NULL, NULL, 1e-5, dout, dob), CNORM_OK);
}

static void runtime(void) {
    set_ctx("runtime");
    const cnorm_isa before = cnorm_get_isa();
    CHECK_STATUS(cnorm_set_isa((cnorm_isa)4), CNORM_ERR_ISA);
    CHECK_STATUS(cnorm_set_isa((cnorm_isa)-1), CNORM_ERR_ISA);
    CHECK_STATUS(cnorm_set_isa((cnorm_isa)1000), CNORM_ERR_ISA);
    for (int isa = 0; isa <= (int)CNORM_ISA_NEON; ++isa)
        if (!cnorm_isa_available((cnorm_isa)isa)) CHECK_STATUS(cnorm_set_isa((cnorm_isa)isa), CNORM_ERR_ISA);
    CHECK(cnorm_get_isa() == before, "a failed cnorm_set_isa changed the ISA");
    CHECK(cnorm_isa_available((cnorm_isa)-1) == 0 && cnorm_isa_available((cnorm_isa)4) == 0, "bogus ISA available");
    CHECK(strcmp(cnorm_isa_name((cnorm_isa)4), "unknown") == 0, "isa_name(4) = %s", cnorm_isa_name((cnorm_isa)4));
    CHECK(strcmp(cnorm_isa_name((cnorm_isa)-1), "unknown") == 0, "isa_name(-1)");
    CHECK_STATUS(cnorm_set_num_threads(-1), CNORM_ERR_ARG);
    CHECK_STATUS(cnorm_set_num_threads(-1000), CNORM_ERR_ARG);
    CHECK(cnorm_get_num_threads() >= 1, "get_num_threads() = %d", cnorm_get_num_threads());
    for (int st = 1; st >= -9; --st) {
        const char *s = cnorm_status_string(st);
        CHECK(s && *s, "status_string(%d) empty", st);
    }
    CHECK(strcmp(cnorm_status_string(CNORM_OK), "ok") == 0, "status_string(0)");
    CHECK(strcmp(cnorm_status_string(12345), "unknown status") == 0, "status_string(12345)");
}

/* Sizes whose products pass the size check but whose scratch does not fit
 * a size_t: every scratch allocation is overflow-checked, so these give
 * CNORM_ERR_SIZE without touching memory (the buffers are 64 elements).
 * Scratch that fits a size_t but not in memory gives CNORM_ERR_ALLOC. */
static void scratch_sizes(dtype dt) {
    set_ctx("scratch sizes %s", dt_name(dt));
    const size_t part16 = SIZE_MAX / 16 + 1; /* x (mean, M2) of 16 bytes per partial: wraps */
    const size_t part24 = SIZE_MAX / 24 + 1; /* fits at 16 bytes; wrapped at 24 (issue 10) */
    const size_t chan40 = SIZE_MAX / 40 + 1; /* x 5 doubles of per-channel scratch: wraps */
    /* batch norm, NCHW training: a partial per (sample, channel) */
    EXPECT(run_batch_norm(dt, x.p, y.p, part16, 1, 1, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL, NULL, NULL,
                          CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    reset_y();
    const int st = run_batch_norm(dt, x.p, y.p, part24, 1, 1, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL, NULL, NULL,
                                  CNORM_ACT_NONE);
    CHECK((st == CNORM_ERR_SIZE || st == CNORM_ERR_ALLOC) && y_untouched(),
          "batch norm with n = SIZE_MAX/24 + 1: status %d", st);
    /* batch norm, per-channel parameters (training and inference, both layouts) */
    EXPECT(run_batch_norm(dt, x.p, y.p, 1, chan40, 1, CNORM_NCHW, NULL, NULL, 1e-5, NULL, NULL, NULL, NULL,
                          CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_batch_norm(dt, x.p, y.p, 1, chan40, 1, CNORM_NHWC, NULL, NULL, 1e-5, stats_a, stats_b, NULL, NULL,
                          CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    /* group norm, NHWC: per-channel statistics of a sample */
    EXPECT(run_group_norm(dt, x.p, y.p, 1, chan40, 1, 1, CNORM_NHWC, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    /* split moments: a partial per (lead, kept) position */
    EXPECT(run_moments_split(dt, x.p, part16, 1, 1, 1, 0.0, stats_a, stats_b), CNORM_ERR_SIZE);
    EXPECT(run_moments_partial(dt, x.p, 2, part16 / 2 + 1, 1, 1, stats_a, stats_b), CNORM_ERR_SIZE);
}

/* One check order for every driver (engine.h: layout, activation, groups,
 * eps, sizes, then empty/zero-size, then pointers): a call with several
 * errors at once gets the same code from every variant. */
static void order(dtype dt) {
    set_ctx("argument order %s", dt_name(dt));
    const cnorm_activation bad_act = BAD_ACTS[0];
    const cnorm_layout bad_layout = (cnorm_layout)7;
    const double bad_eps = -1.0;
    /* bad activation, eps and sizes, NULL pointers: the activation */
    EXPECT(run_layer_norm(dt, NULL, NULL, HUGE_ROWS, 4, &w, &b, bad_eps, NULL, NULL, bad_act), CNORM_ERR_ARG);
    EXPECT(run_group_norm(dt, NULL, NULL, HUGE_ROWS, 4, 3, 2, CNORM_NCHW, &w, &b, bad_eps, NULL, NULL, bad_act),
           CNORM_ERR_ARG);
    EXPECT(run_batch_norm(dt, NULL, NULL, HUGE_ROWS, 4, 3, CNORM_NHWC, &w, &b, bad_eps, NULL, NULL, NULL, NULL, bad_act),
           CNORM_ERR_ARG);
    /* and a bad layout first of all */
    EXPECT(run_group_norm(dt, NULL, NULL, HUGE_ROWS, 4, 3, 0, bad_layout, &w, &b, bad_eps, NULL, NULL, bad_act),
           CNORM_ERR_LAYOUT);
    EXPECT(run_batch_norm(dt, NULL, NULL, HUGE_ROWS, 4, 3, bad_layout, &w, &b, bad_eps, NULL, NULL, NULL, NULL, bad_act),
           CNORM_ERR_LAYOUT);
    /* bad groups, eps and sizes: the groups */
    EXPECT(run_group_norm(dt, NULL, NULL, HUGE_ROWS, 4, 3, 3, CNORM_NCHW, &w, &b, bad_eps, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_GROUPS);
    /* bad eps and sizes: eps */
    EXPECT(run_layer_norm(dt, NULL, NULL, HUGE_ROWS, 4, &w, &b, bad_eps, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_EPS);
    EXPECT(run_rms_norm(dt, NULL, NULL, HUGE_ROWS, 4, &w, bad_eps, NULL), CNORM_ERR_EPS);
    EXPECT(run_group_norm(dt, NULL, NULL, HUGE_ROWS, 4, 3, 2, CNORM_NHWC, &w, &b, bad_eps, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_EPS);
    EXPECT(run_batch_norm(dt, NULL, NULL, HUGE_ROWS, 4, 3, CNORM_NCHW, &w, &b, bad_eps, NULL, NULL, NULL, NULL,
                          CNORM_ACT_NONE),
           CNORM_ERR_EPS);
    /* overflowing sizes and NULL pointers: the sizes */
    EXPECT(run_layer_norm(dt, NULL, NULL, HUGE_ROWS, 4, &w, &b, 1e-5, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_SIZE);
    EXPECT(run_rms_norm(dt, NULL, NULL, HUGE_ROWS, 4, &w, 1e-5, NULL), CNORM_ERR_SIZE);
    EXPECT(run_group_norm(dt, NULL, NULL, HUGE_ROWS, 4, 3, 2, CNORM_NCHW, &w, &b, 1e-5, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_batch_norm(dt, NULL, NULL, HUGE_ROWS, 4, 3, CNORM_NHWC, &w, &b, 1e-5, NULL, NULL, NULL, NULL,
                          CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_moments(dt, NULL, HUGE_ROWS, 4, 3, 0.0, NULL, NULL), CNORM_ERR_SIZE);
    EXPECT(run_moments_split(dt, NULL, HUGE_ROWS, 4, 3, 1, 0.0, NULL, NULL), CNORM_ERR_SIZE);
    EXPECT(run_moments_partial(dt, NULL, 2, HUGE_ROWS, 4, 1, NULL, NULL), CNORM_ERR_SIZE);
    /* a zero-size group and NULL pointers: the size */
    EXPECT(run_layer_norm(dt, NULL, NULL, 2, 0, &w, &b, 1e-5, NULL, NULL, CNORM_ACT_NONE), CNORM_ERR_SIZE);
    EXPECT(run_group_norm(dt, NULL, NULL, 2, 4, 0, 2, CNORM_NCHW, &w, &b, 1e-5, NULL, NULL, CNORM_ACT_NONE),
           CNORM_ERR_SIZE);
    EXPECT(run_moments_split(dt, NULL, 0, 4, 3, 1, 0.0, NULL, NULL), CNORM_ERR_SIZE);
    /* only NULL pointers */
    EXPECT(run_moments_split(dt, NULL, 2, 4, 3, 1, 0.0, stats_a, stats_b), CNORM_ERR_NULL);
    EXPECT(run_moments_partial(dt, x.p, 2, 4, 3, 1, stats_a, NULL), CNORM_ERR_NULL);
    /* nothing kept: a no-op */
    EXPECT(run_moments_split(dt, NULL, 2, 0, 3, 1, 0.0, NULL, NULL), CNORM_OK);
}

int main(void) {
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d) {
            x = buf_random((dtype)d, SMALL, 0.0, 1.0);
            y = buf_new((dtype)d, SMALL);
            w = param_new(SMALL, 0.5, 1.5);
            b = param_new(SMALL, -0.5, 0.5);
            layer_and_rms((dtype)d);
            group((dtype)d);
            batch((dtype)d);
            moments((dtype)d);
            order((dtype)d);
            scratch_sizes((dtype)d);
            buf_free(&x);
            buf_free(&y);
            param_free(&w);
            param_free(&b);
        }
    }
    fold();
    runtime();
    return check_report("test_errors");
}
