/* Small stacks: every entry point, on every ISA path, called from a
 * pthread with a 32 KiB stack (embedded users run such threads), gives the
 * status and the bits of the same call on the main thread.  A frame that
 * outgrows the stack hits the guard page and the test dies with SIGSEGV.
 * Shapes reach every driver: long rows (row blocks), column blocks over
 * many chunks, flat and tiled channels-last applies, NHWC group norm; the
 * backward passes with their statistics given and recomputed. */
#define _POSIX_C_SOURCE 200809L /* pthread_attr_setstacksize, sysconf under -std=c99 */
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#include "check.h"

/* The 32 KiB bound is for optimized builds (the native and aarch64 runs).
 * Unoptimized ones (CI's sanitizer build is -O0) keep every temporary in
 * its own slot, with ASan's redzones around each: they get 256 KiB. */
#ifdef __OPTIMIZE__
#define STACK_BYTES ((size_t)32 << 10)
#else
#define STACK_BYTES ((size_t)256 << 10)
#endif

typedef enum {
    K_LAYER, K_RMS, K_GROUP, K_BATCH, K_BATCH_EVAL, K_MOMENTS, K_SPLIT, K_PARTIAL, K_FOLD,
    K_LAYER_BWD, K_RMS_BWD, K_GROUP_BWD, K_BATCH_BWD, K_BATCH_EVAL_BWD
} kind_t;

typedef struct {
    const char *name;
    kind_t kind;
    size_t a, b, c, d; /* sizes, as the kind reads them */
    cnorm_layout layout;
    int given; /* backward: mean/rstd given (else NULL: recomputed) */
} shape_t;

static const shape_t SHAPES[] = {
    {"layer_norm (64, 768)", K_LAYER, 64, 768, 0, 0, CNORM_NCHW, 0},
    {"layer_norm (1, 70000): row blocks", K_LAYER, 1, 70000, 0, 0, CNORM_NCHW, 0},
    {"rms_norm (8, 4096)", K_RMS, 8, 4096, 0, 0, CNORM_NCHW, 0},
    {"rms_norm (1, 70000)", K_RMS, 1, 70000, 0, 0, CNORM_NCHW, 0},
    {"group_norm NCHW (2, 8, 1024) / 4", K_GROUP, 2, 8, 1024, 4, CNORM_NCHW, 0},
    {"group_norm NHWC (2, 64, 512) / 8: flat apply", K_GROUP, 2, 64, 512, 8, CNORM_NHWC, 0},
    {"group_norm NHWC (2, 640, 40) / 32: tiled apply", K_GROUP, 2, 640, 40, 32, CNORM_NHWC, 0},
    {"batch_norm NCHW (4, 8, 256)", K_BATCH, 4, 8, 256, 0, CNORM_NCHW, 0},
    {"batch_norm NHWC (4, 512, 64): column blocks", K_BATCH, 4, 512, 64, 0, CNORM_NHWC, 0},
    {"batch_norm NHWC (1, 3, 70000): deep column cascade", K_BATCH, 1, 3, 70000, 0, CNORM_NHWC, 0},
    {"batch_norm eval NHWC (4, 1000, 16)", K_BATCH_EVAL, 4, 1000, 16, 0, CNORM_NHWC, 0},
    {"batch_norm eval NCHW (4, 16, 100)", K_BATCH_EVAL, 4, 16, 100, 0, CNORM_NCHW, 0},
    {"moments (1, 1000, 512): axis 0 of (1000, 512)", K_MOMENTS, 1, 1000, 512, 0, CNORM_NCHW, 0},
    {"moments (16, 3000, 1)", K_MOMENTS, 16, 3000, 1, 0, CNORM_NCHW, 0},
    {"moments_split (4, 8, 4, 256)", K_SPLIT, 4, 8, 4, 256, CNORM_NCHW, 0},
    {"moments_partial (3, 5, 7, 600)", K_PARTIAL, 3, 5, 7, 600, CNORM_NCHW, 0},
    {"fold_batch_norm (64, 27)", K_FOLD, 64, 27, 0, 0, CNORM_NCHW, 0},
    /* backward: the row, group and batch drivers with the statistics given
     * and recomputed (the forward's cascades inside), long rows in blocks */
    {"layer_norm_backward (300, 64)", K_LAYER_BWD, 300, 64, 0, 0, CNORM_NCHW, 1},
    {"layer_norm_backward (1, 70000): row blocks", K_LAYER_BWD, 1, 70000, 0, 0, CNORM_NCHW, 0},
    {"rms_norm_backward (8, 1024)", K_RMS_BWD, 8, 1024, 0, 0, CNORM_NCHW, 1},
    {"rms_norm_backward (4, 2048)", K_RMS_BWD, 4, 2048, 0, 0, CNORM_NCHW, 0},
    {"group_norm_backward NCHW (2, 8, 1024) / 4", K_GROUP_BWD, 2, 8, 1024, 4, CNORM_NCHW, 1},
    {"group_norm_backward NHWC (2, 64, 128) / 8", K_GROUP_BWD, 2, 64, 128, 8, CNORM_NHWC, 0},
    {"group_norm_backward NHWC (2, 640, 8) / 32", K_GROUP_BWD, 2, 640, 8, 32, CNORM_NHWC, 1},
    {"instance_norm_backward NCHW (2, 16, 300)", K_GROUP_BWD, 2, 16, 300, 16, CNORM_NCHW, 0},
    {"batch_norm_backward NCHW (4, 8, 256)", K_BATCH_BWD, 4, 8, 256, 0, CNORM_NCHW, 1},
    {"batch_norm_backward NHWC (4, 256, 64): row blocks", K_BATCH_BWD, 4, 256, 64, 0, CNORM_NHWC, 0},
    {"batch_norm_backward NHWC (1, 3, 70000): deep column cascade", K_BATCH_BWD, 1, 3, 70000, 0, CNORM_NHWC, 0},
    {"batch_norm_backward eval NHWC (4, 300, 16)", K_BATCH_EVAL_BWD, 4, 300, 16, 0, CNORM_NHWC, 1},
    {"batch_norm_backward eval NCHW (4, 16, 100)", K_BATCH_EVAL_BWD, 4, 16, 100, 0, CNORM_NCHW, 0},
};
#define NSHAPES (sizeof SHAPES / sizeof SHAPES[0])

/* One call: its inputs, and the outputs a run writes. */
typedef struct {
    const shape_t *s;
    dtype dt;
    buf_t x, y, dy; /* y: the output (dx for the backward kinds) */
    buf_t dw, db;    /* backward: dweight, dbias */
    param_t w, b;
    double *st1, *st2; /* mean/var/rstd outputs (or the fold's weight, bias) */
    size_t nst;
    int status;
} call_t;

static size_t elements(const shape_t *s) {
    switch (s->kind) {
    case K_LAYER: case K_RMS: case K_FOLD: case K_LAYER_BWD: case K_RMS_BWD: return s->a * s->b;
    case K_SPLIT: case K_PARTIAL: return s->a * s->b * s->c * s->d;
    default: return s->a * s->b * s->c;
    }
}

static size_t stats_len(const shape_t *s) {
    switch (s->kind) {
    case K_LAYER: case K_RMS: case K_LAYER_BWD: case K_RMS_BWD: return s->a;
    case K_GROUP: case K_GROUP_BWD: return s->a * s->d;
    case K_BATCH: case K_BATCH_EVAL: case K_BATCH_BWD: case K_BATCH_EVAL_BWD: return s->b;
    case K_MOMENTS: return s->a * s->c;
    case K_SPLIT: case K_PARTIAL: return s->b * s->d;
    default: return s->a * s->b; /* fold: the folded weight */
    }
}

static size_t channels(const shape_t *s) {
    switch (s->kind) {
    case K_LAYER: case K_RMS: return s->b;
    case K_FOLD: return s->a;
    default: return s->b;
    }
}

static void *run_call(void *p) {
    call_t *c = (call_t *)p;
    const shape_t *s = c->s;
    const cnorm_activation act = CNORM_ACT_SILU;
    const double *mean = s->given ? c->st1 : NULL, *rstd = s->given ? c->st2 : NULL;
    switch (s->kind) {
    case K_LAYER: c->status = run_layer_norm(c->dt, c->x.p, c->y.p, s->a, s->b, &c->w, &c->b, 1e-5, c->st1, c->st2, act); break;
    case K_RMS: c->status = run_rms_norm(c->dt, c->x.p, c->y.p, s->a, s->b, &c->w, 1e-6, c->st1); break;
    case K_GROUP:
        c->status = run_group_norm(c->dt, c->x.p, c->y.p, s->a, s->b, s->c, s->d, s->layout, &c->w, &c->b, 1e-5, c->st1,
                                   c->st2, act);
        break;
    case K_BATCH:
        c->status = run_batch_norm(c->dt, c->x.p, c->y.p, s->a, s->b, s->c, s->layout, &c->w, &c->b, 1e-5, NULL, NULL,
                                   c->st1, c->st2, act);
        break;
    case K_BATCH_EVAL: {
        /* running statistics: mean = bias's values, var = weight's (positive) */
        c->status = run_batch_norm(c->dt, c->x.p, c->y.p, s->a, s->b, s->c, s->layout, &c->w, &c->b, 1e-5, c->b.d,
                                   c->w.d, NULL, NULL, act);
        break;
    }
    case K_MOMENTS: c->status = run_moments(c->dt, c->x.p, s->a, s->b, s->c, 1.0, c->st1, c->st2); break;
    case K_SPLIT: c->status = run_moments_split(c->dt, c->x.p, s->a, s->b, s->c, s->d, 0.0, c->st1, c->st2); break;
    case K_PARTIAL: c->status = run_moments_partial(c->dt, c->x.p, s->a, s->b, s->c, s->d, c->st1, c->st2); break;
    case K_FOLD:
        if (c->dt == DT_F64)
            c->status = cnorm_fold_batch_norm_f64((const double *)c->x.p, c->b.d, s->a, s->b, c->w.d, c->b.d, c->w.d,
                                                  c->b.d, 1e-5, (double *)c->y.p, c->st1);
        else
            c->status = cnorm_fold_batch_norm_f32((const float *)c->x.p, c->b.f, s->a, s->b, c->w.f, c->b.f, c->w.f,
                                                  c->b.f, 1e-5, (float *)c->y.p, (float *)c->st1);
        break;
    /* backward: dx into y; the statistics (st1 mean, st2 rstd) are inputs */
    case K_LAYER_BWD:
        c->status = run_layer_norm_backward(c->dt, c->dy.p, c->x.p, c->y.p, s->a, s->b, mean, rstd, &c->w, &c->b,
                                            1e-5, act, c->dw.p, c->db.p);
        break;
    case K_RMS_BWD:
        c->status = run_rms_norm_backward(c->dt, c->dy.p, c->x.p, c->y.p, s->a, s->b, rstd, &c->w, 1e-6, c->dw.p);
        break;
    case K_GROUP_BWD:
        c->status = run_group_norm_backward(c->dt, c->dy.p, c->x.p, c->y.p, s->a, s->b, s->c, s->d, s->layout, mean,
                                            rstd, &c->w, &c->b, 1e-5, act, c->dw.p, c->db.p);
        break;
    case K_BATCH_BWD:
    case K_BATCH_EVAL_BWD:
        c->status = run_batch_norm_backward(c->dt, c->dy.p, c->x.p, c->y.p, s->a, s->b, s->c, s->layout, mean, rstd,
                                            &c->w, &c->b, 1e-5, s->kind == K_BATCH_BWD, act, c->dw.p, c->db.p);
        break;
    }
    return NULL;
}

static int backward(const shape_t *s) { return s->kind >= K_LAYER_BWD; }

/* A call with random inputs, or with those of `like` (not NULL). */
static call_t call_new(const shape_t *s, dtype dt, const call_t *like) {
    call_t c;
    memset(&c, 0, sizeof c);
    c.s = s, c.dt = dt;
    const size_t n = elements(s), nc = channels(s), dn = backward(s) ? n : 0;
    c.x = like ? buf_new(dt, n) : buf_random(dt, n, 3.0, 2.0);
    c.y = buf_new(dt, n);
    c.dy = like ? buf_new(dt, dn) : buf_random(dt, dn, 0.0, 1.0);
    c.dw = buf_new(weight_dtype(dt), nc);
    c.db = buf_new(weight_dtype(dt), nc);
    c.w = param_new(nc, 0.5, 1.5); /* positive: also valid running variances */
    c.b = param_new(nc, -0.5, 0.5);
    if (like) {
        memcpy(c.x.p, like->x.p, n * dt_size(dt));
        memcpy(c.dy.p, like->dy.p, dn * dt_size(dt));
        memcpy(c.w.d, like->w.d, nc * sizeof(double)), memcpy(c.w.f, like->w.f, nc * sizeof(float));
        memcpy(c.b.d, like->b.d, nc * sizeof(double)), memcpy(c.b.f, like->b.f, nc * sizeof(float));
    }
    c.nst = stats_len(s);
    c.st1 = (double *)calloc(c.nst, sizeof(double));
    c.st2 = (double *)calloc(c.nst, sizeof(double));
    if (!c.st1 || !c.st2) exit(2);
    /* given statistics: x's mean and rstd (3, 1/2; the data is 3 + 2 N(0, 1)) */
    if (s->given)
        for (size_t i = 0; i < c.nst; ++i) c.st1[i] = 3.0, c.st2[i] = 0.5;
    return c;
}

static void call_free(call_t *c) {
    buf_free(&c->x), buf_free(&c->y), buf_free(&c->dy), buf_free(&c->dw), buf_free(&c->db);
    param_free(&c->w), param_free(&c->b);
    free(c->st1), free(c->st2);
}

/* run_call(c) on a thread whose stack is `bytes`; 0 if it ran. */
static int run_on_small_stack(call_t *c, size_t bytes) {
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0) return -1;
    int rc = pthread_attr_setstacksize(&attr, bytes);
    if (rc == 0) rc = pthread_create(&t, &attr, run_call, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) return rc;
    return pthread_join(t, NULL);
}

int main(void) {
    /* 32 KiB, or the platform's minimum where that is larger (glibc on
     * aarch64: 128 KiB, for 64 KiB pages) */
    size_t bytes = STACK_BYTES;
    const long min = sysconf(_SC_THREAD_STACK_MIN);
    if (min > 0 && (size_t)min > bytes) bytes = (size_t)min;
    printf("test_stack: threads with a %zu KiB stack\n", bytes >> 10);
    rng_seed(5);
    /* two threads: serial calls run wholly on the small stack, parallel ones
     * run their share of the work (the same frames) there */
    const int threads[] = {2};
    FOR_EACH_ISA(isa) {
        for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ++ti) {
            cnorm_set_num_threads(threads[ti]);
            for (size_t k = 0; k < NSHAPES; ++k) {
                const shape_t *s = &SHAPES[k];
                for (int d = 0; d < DT_COUNT; ++d) {
                    const dtype dt = (dtype)d;
                    if (s->kind == K_FOLD && dt != DT_F32 && dt != DT_F64) continue;
                    set_ctx("%s, %s, isa %s, %d threads", s->name, dt_name(dt), cnorm_isa_name((cnorm_isa)isa),
                            threads[ti]);
                    call_t ref = call_new(s, dt, NULL), small = call_new(s, dt, &ref);
                    run_call(&ref);
                    CHECK_STATUS(ref.status, CNORM_OK);
                    CHECK(run_on_small_stack(&small, bytes) == 0, "could not run a %zu-byte-stack thread", bytes);
                    CHECK(small.status == ref.status, "status %d on the small stack, %d on the main thread",
                          small.status, ref.status);
                    CHECK(buf_equal(&small.y, &ref.y), "output differs from the main thread's");
                    CHECK(buf_equal(&small.dw, &ref.dw) && buf_equal(&small.db, &ref.db),
                          "dweight/dbias differ from the main thread's");
                    CHECK(memcmp(small.st1, ref.st1, ref.nst * sizeof(double)) == 0 &&
                              memcmp(small.st2, ref.st2, ref.nst * sizeof(double)) == 0,
                          "statistics differ from the main thread's");
                    call_free(&ref), call_free(&small);
                }
            }
        }
    }
    return check_report("test_stack");
}
