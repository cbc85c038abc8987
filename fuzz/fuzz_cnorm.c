/* libFuzzer target over the public C API of cnorm.
 *
 * The input's first bytes choose the call: variant (layer / rms / group /
 * instance / batch train / batch eval / moments / fold, or the backward of
 * one of the first six: fuzz_backward.inc), storage type, layout,
 * shape (small, with 0, 1 and odd sizes, or overflowing sizes), group count
 * (valid or not), eps (valid, 0, tiny, huge, negative, NaN, inf), activation
 * (also invalid enum values), which optional pointers are NULL, in-place or
 * not, the ISA (cnorm_set_isa over 0..3) and the thread count.  The rest of the
 * input gives the values: either raw bytes reinterpreted (NaN, inf,
 * denormals, huge values) or one byte per value mapped to k/16 (exactly
 * representable in every storage type: "well-conditioned").
 *
 * Checks (a failed check calls __builtin_trap, which libFuzzer reports):
 *   - no crash / out-of-bounds / UB (ASan + UBSan; buffers are allocated at
 *     their exact size);
 *   - the status is one the arguments allow (e.g. a bad group count gives
 *     CNORM_ERR_GROUPS, a negative eps CNORM_ERR_EPS; where several
 *     arguments are bad, any of their codes), and an error leaves every
 *     output buffer untouched;
 *   - well-conditioned inputs (finite k/16 values, 1e-6 <= eps <= 1): every
 *     output and statistic matches a naive double-precision reference within
 *     a tolerance derived from the storage and compute precision.
 *
 * Set CNORM_FUZZ_VERBOSE=1 to print the decoded call and the first mismatch.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnorm/cnorm.h"

/* ---- input reader ------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, i;
} reader_t;

static uint8_t rd_u8(reader_t *r) { return r->i < r->n ? r->p[r->i++] : 0; }

static uint64_t rd_u64(reader_t *r) {
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v |= (uint64_t)rd_u8(r) << (8 * k);
    return v;
}

static int verbose = -1;
#define LOG(...)                                     \
    do {                                             \
        if (verbose) fprintf(stderr, __VA_ARGS__);   \
    } while (0)

#define FAIL(...)                                    \
    do {                                             \
        fprintf(stderr, "fuzz_cnorm: ");             \
        fprintf(stderr, __VA_ARGS__);                \
        fputc('\n', stderr);                         \
        __builtin_trap();                            \
    } while (0)

/* ---- storage types ------------------------------------------------------ */

enum { DT_F32, DT_F64, DT_F16, DT_BF16 };
static const char *const DT_NAME[] = {"f32", "f64", "f16", "bf16"};
static const size_t DT_SIZE[] = {4, 8, 2, 2};

static double f16_decode(uint16_t h) {
    const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0) v = ldexp((double)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp((double)(m | 0x400), e - 25);
    return s ? -v : v;
}

/* exact for the k/16 values the well-conditioned mode uses (normal or 0) */
static uint16_t f16_encode_exact(double v) {
    if (v == 0.0) return 0;
    uint16_t s = v < 0 ? 0x8000 : 0;
    int e;
    double f = frexp(fabs(v), &e); /* v = f * 2^e, f in [0.5, 1) */
    const int m = (int)ldexp(f, 11); /* 11 significant bits */
    return (uint16_t)(s | ((e - 1 + 15) << 10) | (m & 0x3ff));
}

static double bf16_decode(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t bf16_encode_exact(double v) {
    const float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

static double get(int dt, const void *p, size_t i) {
    switch (dt) {
    case DT_F32: return ((const float *)p)[i];
    case DT_F64: return ((const double *)p)[i];
    case DT_F16: return f16_decode(((const uint16_t *)p)[i]);
    default: return bf16_decode(((const uint16_t *)p)[i]);
    }
}

static void set_exact(int dt, void *p, size_t i, double v) {
    switch (dt) {
    case DT_F32: ((float *)p)[i] = (float)v; break;
    case DT_F64: ((double *)p)[i] = v; break;
    case DT_F16: ((uint16_t *)p)[i] = f16_encode_exact(v); break;
    default: ((uint16_t *)p)[i] = bf16_encode_exact(v); break;
    }
}

/* an exact-size buffer (ASan sees any overrun); malloc(0) may be NULL */
static void *xalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) abort();
    return p;
}

/* fill `count` elements of `elem` bytes: raw input bytes, or k/16 values */
static void fill(reader_t *r, int well, int dt, void *p, size_t count) {
    if (well) {
        for (size_t i = 0; i < count; ++i) set_exact(dt, p, i, ((int)rd_u8(r) - 128) / 16.0);
    } else {
        uint8_t *b = (uint8_t *)p;
        for (size_t i = 0; i < count * DT_SIZE[dt]; ++i) b[i] = rd_u8(r);
    }
}

/* ---- tolerance ------------------------------------------------------------ */

typedef struct {
    double store; /* relative rounding of the output storage */
    double comp;  /* unit roundoff of the compute type */
} prec_t;

static prec_t prec_of(int dt) {
    prec_t p;
    switch (dt) {
    case DT_F64: p.store = 0x1p-53; p.comp = 0x1p-53; break;
    case DT_F32: p.store = 0x1p-24; p.comp = 0x1p-24; break;
    case DT_F16: p.store = 0x1p-11; p.comp = 0x1p-24; break;
    default: p.store = 0x1p-8; p.comp = 0x1p-24; break;
    }
    return p;
}
#define K_TOL 256.0 /* generous multiple of the unit roundoff */

static double act_ref(int act, double v) {
    switch (act) {
    case CNORM_ACT_RELU: return v > 0 ? v : 0;
    case CNORM_ACT_SILU: return v / (1.0 + exp(-v));
    case CNORM_ACT_GELU: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    default: return v;
    }
}

/* compare one output element; `scale` bounds the magnitude of the terms
 * whose rounding reaches it (before the activation) */
static void check_val(const char *what, size_t i, double got, double ref, double scale, prec_t pr) {
    const double tol = 2.0 * pr.store * fabs(ref) + pr.store * 0x1p-14 + K_TOL * pr.comp * (1.0 + scale);
    if (!(fabs(got - ref) <= tol))
        FAIL("%s[%zu]: expected %.17g, got %.17g (tol %.3g)", what, i, ref, got, tol);
}

/* ---- the fuzz entry --------------------------------------------------------- */

enum { V_LAYER, V_RMS, V_GROUP, V_INSTANCE, V_BATCH_TRAIN, V_BATCH_EVAL, V_MOMENTS, V_FOLD, V_COUNT };
static const char *const V_NAME[] = {"layer", "rms", "group", "instance", "batch_train", "batch_eval", "moments", "fold"};

static double pick_eps(uint8_t sel, int *valid) {
    double e;
    switch (sel % 12) {
    case 0: e = 1e-5; break;
    case 1: e = 1e-6; break;
    case 2: e = 1e-3; break;
    case 3: e = 0.1; break;
    case 4: e = 1.0; break;
    case 5: e = 0.0; break;
    case 6: e = 1e-300; break;
    case 7: e = 1e300; break;
    case 8: e = -1e-5; break;
    case 9: e = NAN; break;
    case 10: e = (sel & 0x80) ? INFINITY : -INFINITY; break;
    default: e = -0.0; break; /* -0.0 >= 0: valid */
    }
    *valid = e >= 0.0 && isfinite(e);
    return e;
}

static size_t pick_groups(uint8_t gsel, int variant, size_t c) {
    if (variant == V_INSTANCE) return c;
    switch (gsel % 6) {
    case 0: return 1;
    case 1: return c;                          /* instance; 0 when c == 0 */
    case 2: return 0;                          /* invalid */
    case 3: return (size_t)(gsel >> 3) % 9;    /* may or may not divide */
    case 4: return c + 1 + (gsel >> 4);        /* > c: invalid */
    default: return (size_t)1 << 63;
    }
}

/* the set of statuses a call may return */
typedef struct {
    int codes[8];
    int n;
} allowed_t;
static void allow(allowed_t *a, int code) { a->codes[a->n++] = code; }
static int allowed(const allowed_t *a, int rc) {
    for (int k = 0; k < a->n; ++k)
        if (a->codes[k] == rc) return 1;
    return 0;
}

typedef struct {
    void *p;
    size_t bytes;
    void *copy;
} snap_t;
static void snap(snap_t *s, void *p, size_t bytes) {
    s->p = p;
    s->bytes = p ? bytes : 0;
    s->copy = xalloc(s->bytes);
    if (p) memcpy(s->copy, p, bytes);
}
static int snap_same(const snap_t *s) { return !s->p || memcmp(s->p, s->copy, s->bytes) == 0; }

#include "fuzz_backward.inc"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (verbose < 0) {
        const char *v = getenv("CNORM_FUZZ_VERBOSE");
        verbose = v && *v && *v != '0';
    }
    reader_t r = {data, size, 0};
    const uint8_t b0 = rd_u8(&r), b1 = rd_u8(&r), b2 = rd_u8(&r), b3 = rd_u8(&r), b4 = rd_u8(&r);
    const int variant = b0 % V_COUNT;
    int dt = (b0 >> 4) & 3;
    const int well = (b0 >> 6) & 1;
    const int huge = (b0 >> 7) & 1 && (b1 & 7) == 0; /* 1/16 of those: overflowing sizes */
    const cnorm_layout layout = (b1 & 0x30) == 0x30 ? (cnorm_layout)((b1 & 8) ? 2 : -1)
                                                    : (cnorm_layout)((b1 >> 4) & 1);
    const int layout_ok = layout == CNORM_NCHW || layout == CNORM_NHWC;
    int act_i = b2 & 3;
    if ((b2 & 0x1c) == 0x1c) act_i = (b2 & 0x20) ? 4 : ((b2 & 0x40) ? -1 : 1000);
    const cnorm_activation act = (cnorm_activation)act_i;
    const int act_ok = act_i >= 0 && act_i <= 3;
    const int null_w = (b2 >> 7) & 1, null_b = (b3 >> 0) & 1, null_s1 = (b3 >> 1) & 1, null_s2 = (b3 >> 2) & 1;
    const int null_x = ((b3 >> 3) & 7) == 7, null_y = ((b3 >> 3) & 7) == 6;
    const int inplace = (b3 >> 6) & 1;
    const int isa_req = (b3 >> 7) | ((b1 & 1) << 1); /* 0..3 */
    const int nthreads = (b1 >> 1) & 3;              /* 0 = default */
    const int bwd = (b4 >> 3) & 1 && variant <= V_BATCH_EVAL; /* the backward of that variant */
    int eps_valid;
    const double eps = pick_eps(rd_u8(&r), &eps_valid);

    /* ISA: cnorm_set_isa must agree with cnorm_isa_available */
    const int isa_rc = cnorm_set_isa((cnorm_isa)isa_req);
    if ((isa_rc == CNORM_OK) != (cnorm_isa_available((cnorm_isa)isa_req) != 0))
        FAIL("cnorm_set_isa(%d) = %d but isa_available = %d", isa_req, isa_rc,
             cnorm_isa_available((cnorm_isa)isa_req));
    if (isa_rc != CNORM_OK && isa_rc != CNORM_ERR_ISA) FAIL("cnorm_set_isa(%d) = %d", isa_req, isa_rc);
    if (isa_rc == CNORM_OK && cnorm_get_isa() != (cnorm_isa)isa_req) FAIL("cnorm_set_isa did not take");
    if (cnorm_set_num_threads(nthreads) != CNORM_OK) FAIL("cnorm_set_num_threads(%d) failed", nthreads);

    /* shapes */
    size_t d0 = rd_u8(&r) % 5, d1 = rd_u8(&r) % 18, d2 = rd_u8(&r) % 34;
    const uint8_t gsel = rd_u8(&r);
    if (variant == V_LAYER || variant == V_RMS) d1 = (d1 * 8 + (d2 & 7)) % 140; /* cols to 139: SIMD tails */
    if (huge) d0 = d1 = d2 = ((size_t)1 << 62) + (b2 & 3);
    /* another 1/16: sizes whose products fit but whose scratch does not fit a
     * size_t (a partial per (sample, channel), 5 doubles per channel); only
     * calls that allocate that scratch before they read x qualify */
    const int chan_huge = (b2 >> 2) & 1;
    const int scratch = !bwd && !huge && (b0 >> 7) & 1 && (b1 & 7) == 1 &&
                        ((variant == V_BATCH_TRAIN && (layout != CNORM_NHWC || chan_huge)) ||
                         (variant == V_BATCH_EVAL && chan_huge) ||
                         ((variant == V_GROUP || variant == V_INSTANCE) && layout != CNORM_NCHW && chan_huge));
    if (scratch) {
        d0 = d1 = d2 = 1;
        if (chan_huge)
            d1 = SIZE_MAX / 40 + 1 + (b2 & 3);
        else
            d0 = SIZE_MAX / 16 + 1 + (b2 & 3);
    }
    const size_t groups = pick_groups(gsel, variant, d1);
    const int groups_ok = groups != 0 && d1 % groups == 0;
    const double ddof = (rd_u8(&r) % 4) == 3 ? -1.5 : (double)(r.i % 3);
    if (bwd) {
        const call_t call = {variant, dt, well, huge, layout, act, null_w, null_b, null_s1, null_s2, null_x, null_y,
                             inplace, eps, eps_valid, b0, b1, b2, b4, gsel, d0, d1, d2};
        fuzz_backward(&call, &r);
        return 0;
    }

    if (variant == V_FOLD && (dt == DT_F16 || dt == DT_BF16)) dt -= 2;
    const prec_t pr = prec_of(dt);
    const size_t es = DT_SIZE[dt];
    const size_t ws = dt == DT_F64 ? 8 : 4; /* weight/bias element size */
    const int wdt = dt == DT_F64 ? DT_F64 : DT_F32;
    const int check_values = well && eps_valid && eps >= 1e-6 && eps <= 1.0 && act_ok && layout_ok && !huge && !scratch;

    LOG("variant=%s dt=%s well=%d huge=%d scratch=%d d=(%zu,%zu,%zu) groups=%zu layout=%d act=%d eps=%g nulls w%d b%d s%d%d x%d y%d "
        "inplace=%d isa=%d(rc %d) threads=%d ddof=%g\n",
        V_NAME[variant], DT_NAME[dt], well, huge, scratch, d0, d1, d2, groups, (int)layout, act_i, eps, null_w, null_b, null_s1,
        null_s2, null_x, null_y, inplace, isa_req, isa_rc, nthreads, ddof);

    /* element counts (small unless huge; then buffers are tiny and any
     * access would be caught by ASan) */
    size_t nx, nw, ns1, ns2;
    switch (variant) {
    case V_LAYER: case V_RMS: nx = d0 * d1; nw = d1; ns1 = ns2 = d0; break;
    case V_GROUP: case V_INSTANCE: nx = d0 * d1 * d2; nw = d1; ns1 = ns2 = d0 * (groups_ok ? groups : 0); break;
    case V_BATCH_TRAIN: case V_BATCH_EVAL: nx = d0 * d1 * d2; nw = d1; ns1 = ns2 = d1; break;
    case V_MOMENTS: nx = d0 * d1 * d2; nw = 0; ns1 = ns2 = d0 * d2; break;
    default: nx = d0 * d1; nw = d0; ns1 = ns2 = d0; break; /* fold: c_out = d0, per_out = d1 */
    }
    if (huge || scratch) nx = nw = ns1 = ns2 = 4;

    void *x = xalloc(nx * es);
    fill(&r, well, dt, x, nx);
    void *y = inplace ? x : xalloc(nx * es);
    if (!inplace) memset(y, 0xA5, nx * es);
    void *w = null_w ? NULL : xalloc(nw * ws);
    void *bb = null_b ? NULL : xalloc(nw * ws);
    if (w) fill(&r, well, wdt, w, nw);
    if (bb) fill(&r, well, wdt, bb, nw);
    double *s1 = null_s1 ? NULL : (double *)xalloc(ns1 * 8);
    double *s2 = null_s2 ? NULL : (double *)xalloc(ns2 * 8);
    if (s1) memset(s1, 0x5A, ns1 * 8);
    if (s2) memset(s2, 0x5A, ns2 * 8);
    /* inference statistics (batch eval) and fold's running stats */
    double *mean_in = NULL, *var_in = NULL;
    void *rmean = NULL, *rvar = NULL, *cbias = NULL;
    if (variant == V_BATCH_EVAL) {
        mean_in = (double *)xalloc(nw * 8);
        var_in = (double *)xalloc(nw * 8);
        fill(&r, well, DT_F64, mean_in, nw);
        fill(&r, well, DT_F64, var_in, nw);
        if (well)
            for (size_t i = 0; i < nw; ++i) var_in[i] = fabs(var_in[i]);
    }
    if (variant == V_FOLD) {
        rmean = xalloc(nw * es);
        rvar = xalloc(nw * es);
        cbias = (b4 & 1) ? NULL : xalloc(nw * es);
        fill(&r, well, dt, rmean, nw);
        fill(&r, well, dt, rvar, nw);
        if (cbias) fill(&r, well, dt, cbias, nw);
        if (well)
            for (size_t i = 0; i < nw; ++i) set_exact(dt, rvar, i, fabs(get(dt, rvar, i)));
    }
    void *xin = null_x ? NULL : x, *yout = null_y ? NULL : y;

    /* snapshot inputs (for the reference) and outputs (must not change on error) */
    void *x0 = xalloc(nx * es);
    memcpy(x0, x, nx * es);
    snap_t sy, ss1, ss2, sbo;
    snap(&sy, yout, nx * es);
    snap(&ss1, s1, ns1 * 8);
    snap(&ss2, s2, ns2 * 8);
    void *bias_out = NULL;
    if (variant == V_FOLD) {
        bias_out = (b4 & 6) == 6 ? NULL : xalloc(nw * es); /* NULL: ERR_NULL when c_out > 0 */
        if (bias_out) memset(bias_out, 0x33, nw * es);
    }
    snap(&sbo, bias_out, nw * es);

    /* ---- the call, and the statuses its arguments allow ---- */
    allowed_t A = {{0}, 0};
    int rc = 0;
    const int size_ovf = huge; /* every product of two dims overflows PTRDIFF_MAX */
    switch (variant) {
    case V_LAYER:
    case V_RMS: {
        const size_t rows = d0, cols = d1;
        if (variant == V_LAYER && !act_ok) allow(&A, CNORM_ERR_ARG);
        if (!eps_valid) allow(&A, CNORM_ERR_EPS);
        if (size_ovf) allow(&A, CNORM_ERR_SIZE);
        if (!A.n && rows != 0) {
            if (cols == 0) allow(&A, CNORM_ERR_SIZE);
            else if (!xin || !yout) allow(&A, CNORM_ERR_NULL);
        }
        if (!A.n) allow(&A, CNORM_OK);
        if (variant == V_LAYER) {
            switch (dt) {
            case DT_F32: rc = cnorm_layer_norm_f32(xin, yout, rows, cols, w, bb, eps, s1, s2, act); break;
            case DT_F64: rc = cnorm_layer_norm_f64(xin, yout, rows, cols, w, bb, eps, s1, s2, act); break;
            case DT_F16: rc = cnorm_layer_norm_f16(xin, yout, rows, cols, w, bb, eps, s1, s2, act); break;
            default: rc = cnorm_layer_norm_bf16(xin, yout, rows, cols, w, bb, eps, s1, s2, act); break;
            }
        } else {
            switch (dt) {
            case DT_F32: rc = cnorm_rms_norm_f32(xin, yout, rows, cols, w, eps, s2); break;
            case DT_F64: rc = cnorm_rms_norm_f64(xin, yout, rows, cols, w, eps, s2); break;
            case DT_F16: rc = cnorm_rms_norm_f16(xin, yout, rows, cols, w, eps, s2); break;
            default: rc = cnorm_rms_norm_bf16(xin, yout, rows, cols, w, eps, s2); break;
            }
        }
        break;
    }
    case V_GROUP:
    case V_INSTANCE: {
        const size_t n = d0, c = d1, sp = d2;
        if (size_ovf) allow(&A, CNORM_ERR_SIZE);
        if (!layout_ok) allow(&A, CNORM_ERR_LAYOUT);
        if (!groups_ok) allow(&A, CNORM_ERR_GROUPS);
        if (!act_ok) allow(&A, CNORM_ERR_ARG);
        if (!eps_valid) allow(&A, CNORM_ERR_EPS);
        if (!A.n && n != 0) {
            if (c * sp == 0) allow(&A, CNORM_ERR_SIZE);
            else if (!xin || !yout) allow(&A, CNORM_ERR_NULL);
        }
        if (!A.n) allow(&A, scratch ? CNORM_ERR_SIZE : CNORM_OK);
        switch (dt) {
        case DT_F32: rc = cnorm_group_norm_f32(xin, yout, n, c, sp, groups, layout, w, bb, eps, s1, s2, act); break;
        case DT_F64: rc = cnorm_group_norm_f64(xin, yout, n, c, sp, groups, layout, w, bb, eps, s1, s2, act); break;
        case DT_F16: rc = cnorm_group_norm_f16(xin, yout, n, c, sp, groups, layout, w, bb, eps, s1, s2, act); break;
        default: rc = cnorm_group_norm_bf16(xin, yout, n, c, sp, groups, layout, w, bb, eps, s1, s2, act); break;
        }
        break;
    }
    case V_BATCH_TRAIN:
    case V_BATCH_EVAL: {
        const size_t n = d0, c = d1, sp = d2;
        const int have_stats = mean_in && var_in;
        if (size_ovf) allow(&A, CNORM_ERR_SIZE);
        if (!layout_ok) allow(&A, CNORM_ERR_LAYOUT);
        if (!act_ok) allow(&A, CNORM_ERR_ARG);
        if (!eps_valid) allow(&A, CNORM_ERR_EPS);
        if (!A.n && !(c == 0 || (n * sp == 0 && have_stats))) {
            if (n * sp == 0) allow(&A, CNORM_ERR_SIZE); /* training needs a value per channel */
            else if (!xin || !yout) allow(&A, CNORM_ERR_NULL);
        }
        if (!A.n) allow(&A, scratch ? CNORM_ERR_SIZE : CNORM_OK);
        switch (dt) {
        case DT_F32:
            rc = cnorm_batch_norm_f32(xin, yout, n, c, sp, layout, w, bb, eps, mean_in, var_in, s1, s2, act);
            break;
        case DT_F64:
            rc = cnorm_batch_norm_f64(xin, yout, n, c, sp, layout, w, bb, eps, mean_in, var_in, s1, s2, act);
            break;
        case DT_F16:
            rc = cnorm_batch_norm_f16(xin, yout, n, c, sp, layout, w, bb, eps, mean_in, var_in, s1, s2, act);
            break;
        default:
            rc = cnorm_batch_norm_bf16(xin, yout, n, c, sp, layout, w, bb, eps, mean_in, var_in, s1, s2, act);
            break;
        }
        break;
    }
    case V_MOMENTS: {
        const size_t outer = d0, len = d1, inner = d2;
        if (size_ovf) allow(&A, CNORM_ERR_SIZE);
        if (!A.n && outer != 0 && inner != 0) {
            if (len == 0) allow(&A, CNORM_ERR_SIZE);
            else if (!xin || !s1 || !s2) allow(&A, CNORM_ERR_NULL);
        }
        if (!A.n) allow(&A, CNORM_OK);
        switch (dt) {
        case DT_F32: rc = cnorm_moments_f32(xin, outer, len, inner, ddof, s1, s2); break;
        case DT_F64: rc = cnorm_moments_f64(xin, outer, len, inner, ddof, s1, s2); break;
        case DT_F16: rc = cnorm_moments_f16(xin, outer, len, inner, ddof, s1, s2); break;
        default: rc = cnorm_moments_bf16(xin, outer, len, inner, ddof, s1, s2); break;
        }
        break;
    }
    default: { /* fold: conv weight x (c_out, per_out) -> y; gamma w, beta bb */
        const size_t c_out = d0, per_out = d1;
        if (size_ovf) allow(&A, CNORM_ERR_SIZE);
        if (!eps_valid) allow(&A, CNORM_ERR_EPS);
        if (!A.n && c_out != 0 && (!bias_out || (per_out && (!xin || !yout)))) allow(&A, CNORM_ERR_NULL);
        if (!A.n) allow(&A, CNORM_OK);
        if (dt == DT_F32)
            rc = cnorm_fold_batch_norm_f32(xin, cbias, c_out, per_out, rmean, rvar, w, bb, eps, yout, bias_out);
        else
            rc = cnorm_fold_batch_norm_f64(xin, cbias, c_out, per_out, rmean, rvar, w, bb, eps, yout, bias_out);
        break;
    }
    }

    if (!allowed(&A, rc)) {
        char buf[64] = "";
        for (int k = 0; k < A.n; ++k) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " %d", A.codes[k]);
        FAIL("%s %s: status %d (%s), allowed:%s", V_NAME[variant], DT_NAME[dt], rc, cnorm_status_string(rc), buf);
    }
    if (rc != CNORM_OK && !(snap_same(&sy) && snap_same(&ss1) && snap_same(&ss2) && snap_same(&sbo)))
        FAIL("%s %s: status %d but an output was written", V_NAME[variant], DT_NAME[dt], rc);

    /* ---- reference check on well-conditioned inputs ---- */
    if (rc == CNORM_OK && check_values && xin && yout) {
        const double *wd = NULL, *bd = NULL;
        double *wv = NULL, *bv = NULL;
        if (nw) {
            wv = (double *)xalloc(nw * 8);
            bv = (double *)xalloc(nw * 8);
            for (size_t i = 0; i < nw; ++i) {
                wv[i] = w ? get(wdt, w, i) : 1.0;
                bv[i] = bb ? get(wdt, bb, i) : 0.0;
            }
            wd = wv;
            bd = bv;
        }
        if (variant == V_LAYER || variant == V_RMS) {
            const size_t rows = d0, cols = d1;
            for (size_t rr = 0; rr < rows; ++rr) {
                double sum = 0, sq = 0, amax = 0;
                for (size_t k = 0; k < cols; ++k) {
                    const double v = get(dt, x0, rr * cols + k);
                    sum += v;
                    amax = fmax(amax, fabs(v));
                }
                const double mean = variant == V_LAYER ? sum / cols : 0.0;
                for (size_t k = 0; k < cols; ++k) {
                    const double d = get(dt, x0, rr * cols + k) - mean;
                    sq += d * d;
                }
                const double var = sq / cols, rstd = 1.0 / sqrt(var + eps);
                double ex2 = 0;
                for (size_t k = 0; k < cols; ++k) {
                    const double v = get(dt, x0, rr * cols + k);
                    ex2 += v * v;
                }
                ex2 /= cols;
                const double cond = 1.0 + ex2 / (var + eps); /* roundoff in var, relative to var + eps */
                if (variant == V_LAYER && s1) check_val("mean_out", rr, s1[rr], mean, amax, pr);
                if (s2) check_val("rstd_out", rr, s2[rr] / rstd, 1.0, cond, pr);
                for (size_t k = 0; k < cols; ++k) {
                    const double xv = get(dt, x0, rr * cols + k);
                    const double wk = wd[k], bk = variant == V_LAYER ? bd[k] : 0.0;
                    const double pre = (xv - mean) * rstd * wk + bk;
                    const double ref = variant == V_LAYER ? act_ref(act, pre) : pre;
                    const double scale = (fabs(xv) + fabs(mean)) * rstd * fabs(wk) * cond + fabs(bk) + fabs(pre);
                    check_val(variant == V_LAYER ? "layer y" : "rms y", rr * cols + k, get(dt, y, rr * cols + k), ref,
                              scale, pr);
                }
            }
        } else if (variant == V_GROUP || variant == V_INSTANCE || variant == V_BATCH_TRAIN ||
                   variant == V_BATCH_EVAL) {
            const size_t n = d0, c = d1, sp = d2;
            const int batch = variant == V_BATCH_TRAIN || variant == V_BATCH_EVAL;
            const size_t G = batch ? c : groups, cpg = batch ? 1 : c / groups;
            const size_t nsets = batch ? c : n * G;
#define IDX(ni, ci, si) (layout == CNORM_NCHW ? ((ni) * c + (ci)) * sp + (si) : ((ni) * sp + (si)) * c + (ci))
            for (size_t set = 0; set < nsets && c && sp && n; ++set) {
                /* members: batch -> channel `set` over (n, sp); group -> sample set/G, channels of group set%G */
                const size_t n_lo = batch ? 0 : set / G, n_hi = batch ? n : set / G + 1;
                const size_t c_lo = batch ? set : (set % G) * cpg, c_hi = c_lo + cpg;
                double sum = 0, cnt = 0, sq = 0, amax = 0, ex2 = 0;
                for (size_t ni = n_lo; ni < n_hi; ++ni)
                    for (size_t ci = c_lo; ci < c_hi; ++ci)
                        for (size_t si = 0; si < sp; ++si) {
                            const double v = get(dt, x0, IDX(ni, ci, si));
                            sum += v, cnt += 1, amax = fmax(amax, fabs(v)), ex2 += v * v;
                        }
                double mean = sum / cnt;
                for (size_t ni = n_lo; ni < n_hi; ++ni)
                    for (size_t ci = c_lo; ci < c_hi; ++ci)
                        for (size_t si = 0; si < sp; ++si) {
                            const double d = get(dt, x0, IDX(ni, ci, si)) - mean;
                            sq += d * d;
                        }
                double var = sq / cnt;
                ex2 /= cnt;
                if (variant != V_BATCH_EVAL) {
                    if (s1) check_val("mean_out", set, s1[set], mean, amax, pr);
                    if (s2) check_val("var_out", set, s2[set], var, ex2, pr);
                } else {
                    mean = mean_in[set];
                    var = var_in[set];
                    ex2 = 0;
                }
                const double rstd = 1.0 / sqrt(var + eps), cond = 1.0 + ex2 / (var + eps);
                for (size_t ni = n_lo; ni < n_hi; ++ni)
                    for (size_t ci = c_lo; ci < c_hi; ++ci)
                        for (size_t si = 0; si < sp; ++si) {
                            const size_t i = IDX(ni, ci, si);
                            const double xv = get(dt, x0, i);
                            const double pre = (xv - mean) * rstd * wd[ci] + bd[ci];
                            const double scale =
                                (fabs(xv) + fabs(mean)) * rstd * fabs(wd[ci]) * cond + fabs(bd[ci]) + fabs(pre);
                            check_val(V_NAME[variant], i, get(dt, y, i), act_ref(act, pre), scale, pr);
                        }
            }
#undef IDX
        }
        free(wv);
        free(bv);
    }
    if (rc == CNORM_OK && well && !huge && variant == V_MOMENTS && xin && s1 && s2) {
        const size_t outer = d0, len = d1, inner = d2;
        for (size_t o = 0; o < outer; ++o)
            for (size_t in = 0; in < inner; ++in) {
                double sum = 0, sq = 0, amax = 0, ex2 = 0;
                for (size_t l = 0; l < len; ++l) {
                    const double v = get(dt, x0, (o * len + l) * inner + in);
                    sum += v, amax = fmax(amax, fabs(v)), ex2 += v * v;
                }
                const double mean = sum / len;
                for (size_t l = 0; l < len; ++l) {
                    const double d = get(dt, x0, (o * len + l) * inner + in) - mean;
                    sq += d * d;
                }
                check_val("moments mean", o * inner + in, s1[o * inner + in], mean, amax, pr);
                if ((double)len - ddof > 0.0)
                    check_val("moments var", o * inner + in, s2[o * inner + in], sq / ((double)len - ddof),
                              ex2 * len / ((double)len - ddof), pr);
            }
    }
    if (rc == CNORM_OK && well && eps_valid && eps >= 1e-6 && !huge && variant == V_FOLD && xin && yout && bias_out) {
        const size_t c_out = d0, per_out = d1;
        for (size_t o = 0; o < c_out; ++o) {
            const double g = w ? get(wdt, w, o) : 1.0, be = bb ? get(wdt, bb, o) : 0.0;
            const double s = g / sqrt(get(dt, rvar, o) + eps);
            const double cb = cbias ? get(dt, cbias, o) : 0.0;
            for (size_t k = 0; k < per_out; ++k) {
                const double ref = get(dt, x0, o * per_out + k) * s;
                check_val("fold w", o * per_out + k, get(dt, y, o * per_out + k), ref, fabs(ref), pr);
            }
            const double refb = (cb - get(dt, rmean, o)) * s + be;
            check_val("fold b", o, get(dt, bias_out, o), refb,
                      (fabs(cb) + fabs(get(dt, rmean, o))) * fabs(s) + fabs(be), pr);
        }
    }

    if (!inplace) free(y);
    free(x);
    free(x0);
    free(w);
    free(bb);
    free(s1);
    free(s2);
    free(mean_in);
    free(var_in);
    free(rmean);
    free(rvar);
    free(cbias);
    free(bias_out);
    free(sy.copy);
    free(ss1.copy);
    free(ss2.copy);
    free(sbo.copy);
    return 0;
}
