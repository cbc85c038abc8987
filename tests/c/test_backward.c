/* Backward passes: every cnorm_*_backward_* entry point (layer, RMS, group
 * with instance norm as groups == c, batch norm in training and eval mode)
 * for every storage type, both layouts and every ISA path, against a
 * float64 reference written here from the textbook formulas (x_hat from a
 * two-pass float64 mean/var of the stored x), which is itself checked
 * against central finite differences of check.h's float64 forwards.
 *
 * Per shape: with and without weight/bias; relu/silu/gelu through the
 * pre-activation z = x_hat*w + b; mean/rstd given (the forward's, rounded
 * to float as a training loop keeps them) and NULL (recomputed); each of
 * dx, dweight, dbias NULL on its own leaving the other outputs' bits
 * unchanged; in place (dx == dy, dx == x).  Shapes: odd sizes, size-1
 * spatial, rows longer than 65536 values, many small groups.  Then offset
 * data (mean 1e4, std 1), bitwise identity across 1, 2 and 3 threads on
 * shapes of more than 2^17 elements, and the error codes in the documented
 * order (engine.h: layout, activation, groups, eps, sizes, empty batch,
 * zero-size group, pointers); an empty batch zeroes dweight/dbias (sums
 * over nothing), and batch norm's is empty only with statistics given. */
#include "check.h"

typedef enum { OP_LAYER, OP_RMS, OP_GROUP, OP_BATCH } op_t;

/* One problem.  Layer/RMS: n rows of c values.  Group/batch: (n, c, s) in
 * `layout`, `groups` groups (group norm); `training` (batch norm). */
typedef struct {
    op_t op;
    size_t n, c, s, groups;
    cnorm_layout layout;
    int training;
} prob_t;

static size_t p_total(const prob_t *p) { return p->op <= OP_RMS ? p->n * p->c : p->n * p->c * p->s; }

/* length of mean/rstd */
static size_t p_nstats(const prob_t *p) {
    switch (p->op) {
    case OP_LAYER: case OP_RMS: return p->n;
    case OP_GROUP: return p->n * p->groups;
    default: return p->c;
    }
}

static const char *layout_name(cnorm_layout l) { return l == CNORM_NCHW ? "NCHW" : "NHWC"; }

static const char *p_desc(const prob_t *p) {
    static char s[160];
    switch (p->op) {
    case OP_LAYER: snprintf(s, sizeof s, "layer_norm_backward (%zu, %zu)", p->n, p->c); break;
    case OP_RMS: snprintf(s, sizeof s, "rms_norm_backward (%zu, %zu)", p->n, p->c); break;
    case OP_GROUP:
        snprintf(s, sizeof s, "group_norm_backward %s (%zu, %zu, %zu) groups=%zu%s", layout_name(p->layout), p->n,
                 p->c, p->s, p->groups, p->groups == p->c ? " (instance)" : "");
        break;
    default:
        snprintf(s, sizeof s, "batch_norm_backward %s %s (%zu, %zu, %zu)", p->training ? "train" : "eval",
                 layout_name(p->layout), p->n, p->c, p->s);
    }
    return s;
}

/* For every element k: its statistics group and its channel (the index
 * into weight/bias/dweight/dbias). */
static void p_map(const prob_t *p, size_t *gid, size_t *chn) {
    if (p->op <= OP_RMS) {
        for (size_t r = 0; r < p->n; ++r)
            for (size_t j = 0; j < p->c; ++j) gid[r * p->c + j] = r, chn[r * p->c + j] = j;
        return;
    }
    const size_t cpg = p->op == OP_GROUP ? p->c / p->groups : 1;
    for (size_t i = 0; i < p->n; ++i)
        for (size_t ch = 0; ch < p->c; ++ch)
            for (size_t q = 0; q < p->s; ++q) {
                const size_t k = idx(p->layout, p->c, p->s, i, ch, q);
                gid[k] = p->op == OP_GROUP ? i * p->groups + ch / cpg : ch;
                chn[k] = ch;
            }
}

/* ---- the library through one interface ------------------------------------ */

static int run_bwd(dtype dt, const prob_t *p, const void *dy, const void *x, void *dx, const double *mean,
                   const double *rstd, const param_t *w, const param_t *b, double eps, cnorm_activation act,
                   void *dw, void *db) {
    switch (p->op) {
    case OP_LAYER: return run_layer_norm_backward(dt, dy, x, dx, p->n, p->c, mean, rstd, w, b, eps, act, dw, db);
    case OP_RMS: return run_rms_norm_backward(dt, dy, x, dx, p->n, p->c, rstd, w, eps, dw);
    case OP_GROUP:
        return run_group_norm_backward(dt, dy, x, dx, p->n, p->c, p->s, p->groups, p->layout, mean, rstd, w, b, eps,
                                       act, dw, db);
    default:
        return run_batch_norm_backward(dt, dy, x, dx, p->n, p->c, p->s, p->layout, mean, rstd, w, b, eps,
                                       p->training, act, dw, db);
    }
}

/* The statistics a training loop saves: the library's forward, mean and
 * rstd = 1/sqrt(var + eps), rounded to float for the float/half types. */
static int forward_stats(dtype dt, const prob_t *p, const buf_t *x, double eps, double *mean, double *rstd) {
    buf_t y = buf_new(dt, x->n);
    const size_t ns = p_nstats(p);
    int st;
    switch (p->op) {
    case OP_LAYER: st = run_layer_norm(dt, x->p, y.p, p->n, p->c, NULL, NULL, eps, mean, rstd, CNORM_ACT_NONE); break;
    case OP_RMS: st = run_rms_norm(dt, x->p, y.p, p->n, p->c, NULL, eps, rstd); break;
    case OP_GROUP:
        st = run_group_norm(dt, x->p, y.p, p->n, p->c, p->s, p->groups, p->layout, NULL, NULL, eps, mean, rstd,
                            CNORM_ACT_NONE);
        for (size_t i = 0; i < ns; ++i) rstd[i] = 1.0 / sqrt(rstd[i] + eps);
        break;
    default:
        st = run_batch_norm(dt, x->p, y.p, p->n, p->c, p->s, p->layout, NULL, NULL, eps, NULL, NULL, mean, rstd,
                            CNORM_ACT_NONE);
        for (size_t i = 0; i < ns; ++i) rstd[i] = 1.0 / sqrt(rstd[i] + eps);
    }
    if (dt != DT_F64)
        for (size_t i = 0; i < ns; ++i) {
            if (p->op != OP_RMS) mean[i] = (float)mean[i];
            rstd[i] = (float)rstd[i];
        }
    buf_free(&y);
    return st;
}

/* ---- the float64 reference ---------------------------------------------------- */

/* d act(z) / dz */
static double act_grad(double z, cnorm_activation act) {
    switch (act) {
    case CNORM_ACT_RELU: return z > 0.0 ? 1.0 : 0.0;
    case CNORM_ACT_SILU: {
        const double sg = 1.0 / (1.0 + exp(-z));
        return sg * (1.0 + z * (1.0 - sg));
    }
    case CNORM_ACT_GELU: /* Phi(z) + z phi(z) */
        return 0.5 * (1.0 + erf(z / sqrt(2.0))) + z * exp(-0.5 * z * z) * 0.39894228040143267794;
    default: return 1.0;
    }
}

/* Two-pass float64 statistics of every group (RMS: mean 0, rstd from the
 * mean square). */
static void ref_stats_groups(const prob_t *p, const double *xv, const size_t *gid, double eps, double *mean,
                             double *rstd) {
    const size_t N = p_total(p), G = p_nstats(p);
    double *cnt = dalloc(G), *s1 = dalloc(G), *s2 = dalloc(G);
    for (size_t k = 0; k < N; ++k) {
        cnt[gid[k]] += 1.0;
        s1[gid[k]] += p->op == OP_RMS ? xv[k] * xv[k] : xv[k];
    }
    if (p->op == OP_RMS) {
        for (size_t g = 0; g < G; ++g) mean[g] = 0.0, rstd[g] = 1.0 / sqrt(s1[g] / cnt[g] + eps);
    } else {
        for (size_t g = 0; g < G; ++g) mean[g] = s1[g] / cnt[g], s1[g] = 0.0;
        for (size_t k = 0; k < N; ++k) {
            const double d = xv[k] - mean[gid[k]];
            s1[gid[k]] += d;
            s2[gid[k]] += d * d;
        }
        for (size_t g = 0; g < G; ++g) {
            const double var = (s2[g] - s1[g] * s1[g] / cnt[g]) / cnt[g];
            mean[g] += s1[g] / cnt[g];
            rstd[g] = 1.0 / sqrt(var + eps);
        }
    }
    free(cnt), free(s1), free(s2);
}

/* Gradients, and for each the sum of the sizes of the terms it is made of
 * (its tolerance scale: a float pipeline is off by a few ulp of that).
 * The size of g = dy act'(z) counts act' at a z that is itself off by an
 * ulp: for silu/gelu |dy| (|act'(z)| + 1 + |z|), since act' has zeros
 * (silu' at z = -1.28) where a relative bound would be none; the size
 * of x_hat counts the rounding of x - mean, (|x_hat| + |mean| rstd). */
typedef struct {
    double *dx, *dw, *db, *sdx, *sdw, *sdb;
} grads_t;

static grads_t grads_new(size_t N, size_t C) {
    grads_t r = {dalloc(N), dalloc(C), dalloc(C), dalloc(N), dalloc(C), dalloc(C)};
    return r;
}

static void grads_free(grads_t *r) { free(r->dx), free(r->dw), free(r->db), free(r->sdx), free(r->sdw), free(r->sdb); }

static double pw_of(const param_t *w, size_t ch) { return w ? w->d[ch] : 1.0; }
static double pb_of(const param_t *b, size_t ch) { return b ? b->d[ch] : 0.0; }

static double ref_z(const prob_t *p, double x, double mean, double rstd, const param_t *w, const param_t *b,
                    size_t ch) {
    const double xh = p->op == OP_RMS ? x * rstd : (x - mean) * rstd;
    return xh * pw_of(w, ch) + pb_of(b, ch);
}

/* With x_hat = (x - mean) rstd (RMS: x rstd), z = x_hat w + b, y = act(z),
 * g = dy act'(z) and gh = g w (dL/dx_hat):
 *   dbias = sum g, dweight = sum g x_hat over each channel's elements;
 *   dx = rstd (gh - mean(gh) - x_hat mean(gh x_hat))   (layer, group, batch train)
 *   dx = rstd (gh - x_hat mean(gh x_hat))              (RMS)
 *   dx = rstd gh                                       (batch eval: constant stats)
 * with the means over each statistics group. */
static void ref_backward(const prob_t *p, const double *xv, const double *dyv, const size_t *gid, const size_t *chn,
                         const double *mean, const double *rstd, const param_t *w, const param_t *b,
                         cnorm_activation act, grads_t *r) {
    const size_t N = p_total(p), G = p_nstats(p), C = p->c;
    double *gh = dalloc(N), *sh = dalloc(N), *xh = dalloc(N), *sx = dalloc(N); /* sh, sx: sizes of gh, xh */
    double *cnt = dalloc(G), *a = dalloc(G), *aa = dalloc(G), *cc = dalloc(G), *ca = dalloc(G);
    memset(r->dw, 0, C * sizeof(double)), memset(r->db, 0, C * sizeof(double));
    memset(r->sdw, 0, C * sizeof(double)), memset(r->sdb, 0, C * sizeof(double));
    for (size_t k = 0; k < N; ++k) {
        const size_t g = gid[k], ch = chn[k];
        xh[k] = p->op == OP_RMS ? xv[k] * rstd[g] : (xv[k] - mean[g]) * rstd[g];
        const double z = xh[k] * pw_of(w, ch) + pb_of(b, ch), gz = dyv[k] * act_grad(z, act);
        const int smooth = act == CNORM_ACT_SILU || act == CNORM_ACT_GELU;
        const double sz = fabs(gz) + (smooth ? fabs(dyv[k]) * (1.0 + fabs(z)) : 0.0), shk = sz * fabs(pw_of(w, ch));
        sx[k] = fabs(xh[k]) + (p->op == OP_RMS ? 0.0 : fabs(mean[g]) * rstd[g]);
        r->db[ch] += gz, r->sdb[ch] += sz;
        r->dw[ch] += gz * xh[k], r->sdw[ch] += sz * sx[k];
        gh[k] = gz * pw_of(w, ch), sh[k] = shk;
        cnt[g] += 1.0;
        a[g] += gh[k], aa[g] += shk;
        cc[g] += gh[k] * xh[k], ca[g] += shk * sx[k];
    }
    for (size_t g = 0; g < G; ++g) a[g] /= cnt[g], aa[g] /= cnt[g], cc[g] /= cnt[g], ca[g] /= cnt[g];
    for (size_t k = 0; k < N; ++k) {
        const size_t g = gid[k];
        if (p->op == OP_BATCH && !p->training) {
            r->dx[k] = rstd[g] * gh[k];
            r->sdx[k] = rstd[g] * sh[k];
        } else if (p->op == OP_RMS) {
            r->dx[k] = rstd[g] * (gh[k] - xh[k] * cc[g]);
            r->sdx[k] = rstd[g] * (sh[k] + sx[k] * (fabs(cc[g]) + ca[g]));
        } else {
            r->dx[k] = rstd[g] * (gh[k] - a[g] - xh[k] * cc[g]);
            r->sdx[k] = rstd[g] * (sh[k] + fabs(a[g]) + aa[g] + sx[k] * (fabs(cc[g]) + ca[g]));
        }
    }
    free(gh), free(sh), free(xh), free(sx), free(cnt), free(a), free(aa), free(cc), free(ca);
}

/* got[i] vs want[i] within tol_for(got's dtype, want[i], scale[i]); the
 * worst error/tolerance goes to the summary slot of the storage type. */
#define check_grad(...) check_grad_at(__FILE__, __LINE__, __VA_ARGS__)
static long check_grad_at(const char *file, int line, const char *what, const buf_t *got, const double *want,
                          const double *scale, const double *input, dtype slot) {
    long bad = 0;
    for (size_t i = 0; i < got->n; ++i) {
        const double v = buf_get(got, i), tol = tol_for(got->dt, want[i], scale[i]), err = fabs(v - want[i]);
        if (err <= tol) {
            if (err > check_worst[slot] * tol) check_worst[slot] = err / tol;
            continue;
        }
        if (++bad <= 5) {
            char in[64] = "";
            if (input) snprintf(in, sizeof in, " x %.9g,", input[i]);
            check_fail_at(file, line, "%s[%zu]:%s expected %.9g, got %.9g (error %.3g > tol %.3g, scale %.3g)", what,
                          i, in, want[i], v, err, tol, scale[i]);
            --check_failed; /* counted once below */
        }
    }
    ++check_count;
    if (bad) {
        ++check_failed;
        if (bad > 5 && check_failed <= CHECK_MAX_PRINTED)
            fprintf(stderr, "     %s: %ld of %zu elements out of tolerance\n", what, bad, got->n);
    }
    return bad;
}

/* offset + spread * (an approximately normal value: the sum of three
 * uniforms, mean 0, std 1, within +-3): cheaper than buf_random's
 * Box-Muller under an emulator, where libm calls dominate */
static buf_t buf_fill(dtype dt, size_t n, double offset, double spread) {
    buf_t b = buf_new(dt, n);
    for (size_t i = 0; i < n; ++i) {
        const double u = (double)(rng_u64() >> 11) + (double)(rng_u64() >> 11) + (double)(rng_u64() >> 11);
        buf_set(&b, i, offset + spread * (u * (2.0 / 9007199254740992.0) - 3.0));
    }
    return b;
}

static buf_t buf_copy(const buf_t *b) {
    buf_t c = buf_new(b->dt, b->n);
    memcpy(c.p, b->p, b->n * dt_size(b->dt));
    return c;
}

/* ---- the reference against finite differences ---------------------------------
 * L = sum(dy * forward(x, w, b)) with check.h's float64 forwards; its
 * central differences in every x, w and b against ref_backward. */

static void ref_forward(const prob_t *p, const double *xv, double *y, const param_t *w, const param_t *b,
                        double eps, const double *mean, const double *rstd, cnorm_activation act) {
    switch (p->op) {
    case OP_LAYER: ref_layer_norm(xv, y, p->n, p->c, w, b, eps, NULL, NULL, act); break;
    case OP_RMS: ref_rms_norm(xv, y, p->n, p->c, w, eps, NULL); break;
    case OP_GROUP: ref_group_norm(xv, y, p->n, p->c, p->s, p->groups, p->layout, w, b, eps, NULL, NULL, act); break;
    default:
        if (p->training) {
            ref_batch_norm(xv, y, p->n, p->c, p->s, p->layout, w, b, eps, NULL, NULL, NULL, NULL, act);
        } else { /* constant statistics: var = 1/rstd^2 - eps */
            double *var = dalloc(p->c);
            for (size_t i = 0; i < p->c; ++i) var[i] = 1.0 / (rstd[i] * rstd[i]) - eps;
            ref_batch_norm(xv, y, p->n, p->c, p->s, p->layout, w, b, eps, mean, var, NULL, NULL, act);
            free(var);
        }
    }
}

static double fd_loss(const prob_t *p, const double *xv, const double *dyv, const param_t *w, const param_t *b,
                      double eps, const double *mean, const double *rstd, cnorm_activation act, double *ybuf) {
    ref_forward(p, xv, ybuf, w, b, eps, mean, rstd, act);
    double l = 0.0;
    for (size_t k = 0; k < p_total(p); ++k) l += dyv[k] * ybuf[k];
    return l;
}

/* d loss / d v[i] by central differences, v perturbed in place */
#define FD(v, i, expr)                                         \
    do {                                                       \
        const double v0_ = (v)[i], h_ = 1e-6 * (1.0 + fabs(v0_)); \
        (v)[i] = v0_ + h_;                                     \
        const double lp_ = (expr);                             \
        (v)[i] = v0_ - h_;                                     \
        const double lm_ = (expr);                             \
        (v)[i] = v0_;                                          \
        fd_ = (lp_ - lm_) / (2.0 * h_);                        \
    } while (0)

static void fd_self_check(void) {
    static const prob_t P[] = {
        {OP_LAYER, 3, 5, 1, 1, CNORM_NCHW, 1},    {OP_RMS, 3, 6, 1, 1, CNORM_NCHW, 1},
        {OP_GROUP, 2, 6, 3, 3, CNORM_NCHW, 1},    {OP_GROUP, 2, 4, 3, 2, CNORM_NHWC, 1},
        {OP_GROUP, 2, 3, 4, 3, CNORM_NHWC, 1},    {OP_BATCH, 3, 4, 2, 1, CNORM_NCHW, 1},
        {OP_BATCH, 2, 3, 3, 1, CNORM_NHWC, 1},    {OP_BATCH, 2, 3, 3, 1, CNORM_NHWC, 0},
    };
    const double eps = 1e-3; /* large enough to matter */
    for (size_t k = 0; k < sizeof P / sizeof *P; ++k)
        for (int a = 0; a < ACT_COUNT; ++a) {
            const prob_t *p = &P[k];
            const cnorm_activation act = p->op == OP_RMS ? CNORM_ACT_NONE : ALL_ACTS[a];
            if (p->op == OP_RMS && a) continue;
            set_ctx("reference vs finite differences: %s act=%s", p_desc(p), act_name(act));
            const size_t N = p_total(p), G = p_nstats(p), C = p->c;
            double *xv = dalloc(N), *dyv = dalloc(N), *y = dalloc(N), *mean = dalloc(G), *rstd = dalloc(G);
            size_t *gid = (size_t *)malloc(N * sizeof(size_t)), *chn = (size_t *)malloc(N * sizeof(size_t));
            if (!gid || !chn) exit(2);
            for (size_t i = 0; i < N; ++i) xv[i] = 0.5 + 2.0 * rng_normal(), dyv[i] = rng_normal();
            param_t w = param_new(C, -1.5, 1.5), b = param_new(C, -0.5, 0.5);
            p_map(p, gid, chn);
            ref_stats_groups(p, xv, gid, eps, mean, rstd);
            if (p->op == OP_BATCH && !p->training)
                for (size_t i = 0; i < G; ++i) mean[i] += 0.3, rstd[i] *= 1.5;
            grads_t r = grads_new(N, C);
            ref_backward(p, xv, dyv, gid, chn, mean, rstd, &w, &b, act, &r);
            double fd_;
            for (size_t i = 0; i < N; ++i) {
                FD(xv, i, fd_loss(p, xv, dyv, &w, &b, eps, mean, rstd, act, y));
                CHECK(fabs(fd_ - r.dx[i]) <= 1e-6 * (1.0 + r.sdx[i]), "dx[%zu]: finite difference %.12g, formula %.12g",
                      i, fd_, r.dx[i]);
            }
            for (size_t i = 0; i < C; ++i) {
                FD(w.d, i, fd_loss(p, xv, dyv, &w, &b, eps, mean, rstd, act, y));
                CHECK(fabs(fd_ - r.dw[i]) <= 1e-6 * (1.0 + r.sdw[i]), "dweight[%zu]: finite difference %.12g, formula %.12g",
                      i, fd_, r.dw[i]);
                if (p->op == OP_RMS) continue;
                FD(b.d, i, fd_loss(p, xv, dyv, &w, &b, eps, mean, rstd, act, y));
                CHECK(fabs(fd_ - r.db[i]) <= 1e-6 * (1.0 + r.sdb[i]), "dbias[%zu]: finite difference %.12g, formula %.12g",
                      i, fd_, r.db[i]);
            }
            grads_free(&r);
            param_free(&w), param_free(&b);
            free(xv), free(dyv), free(y), free(mean), free(rstd), free(gid), free(chn);
        }
}

/* ---- one case ----------------------------------------------------------------- */

enum { PLAIN, WEIGHT_ONLY, BIAS_ONLY, AFFINE };
static const char *const PARAM_NAMES[] = {"plain", "weight", "bias", "weight+bias"};
enum { ST_NULL, ST_GIVEN };
enum { X_NULL_OUTPUTS = 1, X_IN_PLACE = 2 }; /* extra variants of a case */

/* A case: its inputs, the statistics handed in, and the reference. */
typedef struct {
    dtype dt;
    prob_t p;
    const char *ctx;
    cnorm_activation act;
    int extras;
    const buf_t *x, *dy;
    const double *xv, *mean, *rstd;
    const param_t *w, *b;
    const grads_t *ref;
} case_t;

/* The library on the active ISA against the reference: the full call,
 * then (extras) each output NULL on its own and the in-place forms. */
static void library_checks(const case_t *c) {
    const dtype dt = c->dt, wdt = weight_dtype(dt);
    const prob_t *p = &c->p;
    const size_t N = p_total(p), C = p->c;
    const int has_bias = p->op != OP_RMS;
    const grads_t *r = c->ref;
    set_ctx("%s", c->ctx);
    buf_t dx = buf_new(dt, N), dw = buf_new(wdt, C), db = buf_new(wdt, C);
    CHECK_STATUS(run_bwd(dt, p, c->dy->p, c->x->p, dx.p, c->mean, c->rstd, c->w, c->b, 1e-5, c->act, dw.p,
                         has_bias ? db.p : NULL),
                 CNORM_OK);
    check_grad("dx", &dx, r->dx, r->sdx, c->xv, dt);
    check_grad("dweight", &dw, r->dw, r->sdw, NULL, dt);
    if (has_bias) check_grad("dbias", &db, r->db, r->sdb, NULL, dt);

    if (c->extras & X_NULL_OUTPUTS) {
        /* each output NULL on its own: the others' bits do not change */
        static const char *const OUT[] = {"dx", "dweight", "dbias"};
        for (int skip = 0; skip < (has_bias ? 3 : 2); ++skip) {
            buf_t dx2 = buf_new(dt, N), dw2 = buf_new(wdt, C), db2 = buf_new(wdt, C);
            CHECK_STATUS(run_bwd(dt, p, c->dy->p, c->x->p, skip == 0 ? NULL : dx2.p, c->mean, c->rstd, c->w, c->b,
                                 1e-5, c->act, skip == 1 ? NULL : dw2.p, skip == 2 || !has_bias ? NULL : db2.p),
                         CNORM_OK);
            if (skip != 0) CHECK(buf_equal(&dx, &dx2), "dx differs when %s is NULL", OUT[skip]);
            if (skip != 1) CHECK(buf_equal(&dw, &dw2), "dweight differs when %s is NULL", OUT[skip]);
            if (skip != 2 && has_bias) CHECK(buf_equal(&db, &db2), "dbias differs when %s is NULL", OUT[skip]);
            buf_free(&dx2), buf_free(&dw2), buf_free(&db2);
        }
        /* nothing asked for */
        CHECK_STATUS(run_bwd(dt, p, c->dy->p, c->x->p, NULL, c->mean, c->rstd, c->w, c->b, 1e-5, c->act, NULL, NULL),
                     CNORM_OK);
    }
    if (c->extras & X_IN_PLACE) {
        /* dx == dy, then dx == x */
        for (int onto_x = 0; onto_x < 2; ++onto_x) {
            set_ctx("%s, in place dx == %s", c->ctx, onto_x ? "x" : "dy");
            buf_t io = buf_copy(onto_x ? c->x : c->dy), dw2 = buf_new(wdt, C), db2 = buf_new(wdt, C);
            const void *dyp = onto_x ? c->dy->p : io.p, *xp = onto_x ? io.p : c->x->p;
            CHECK_STATUS(run_bwd(dt, p, dyp, xp, io.p, c->mean, c->rstd, c->w, c->b, 1e-5, c->act, dw2.p,
                                 has_bias ? db2.p : NULL),
                         CNORM_OK);
            check_grad("dx", &io, r->dx, r->sdx, c->xv, dt);
            check_grad("dweight", &dw2, r->dw, r->sdw, NULL, dt);
            if (has_bias) check_grad("dbias", &db2, r->db, r->sdb, NULL, dt);
            buf_free(&io), buf_free(&dw2), buf_free(&db2);
        }
    }
    buf_free(&dx), buf_free(&dw), buf_free(&db);
}

static void run_case(dtype dt, prob_t p, int params, cnorm_activation act, int stats, int extras) {
    const double eps = 1e-5;
    const size_t N = p_total(&p), G = p_nstats(&p), C = p.c;
    const int has_bias = p.op != OP_RMS;
    char ctx[256];
    snprintf(ctx, sizeof ctx, "%s %s %s act=%s stats=%s", p_desc(&p), dt_name(dt), PARAM_NAMES[params],
             act_name(act), stats == ST_GIVEN ? "given" : "NULL");
    set_ctx("%s", ctx);
    buf_t x = buf_fill(dt, N, -1.5, 3.0), dy = buf_fill(dt, N, 0.0, 1.0);
    double *xv = buf_values(&x), *dyv = buf_values(&dy);
    size_t *gid = (size_t *)malloc(N * sizeof(size_t)), *chn = (size_t *)malloc(N * sizeof(size_t));
    if (!gid || !chn) exit(2);
    p_map(&p, gid, chn);
    param_t w = param_new(C, -1.5, 1.5), b = param_new(C, -0.5, 0.5);
    const param_t *pw = (params == WEIGHT_ONLY || params == AFFINE) ? &w : NULL;
    const param_t *pb = (params == BIAS_ONLY || params == AFFINE) && has_bias ? &b : NULL;

    /* the statistics the reference differentiates with; those handed in */
    double *rmean = dalloc(G), *rrstd = dalloc(G), *gmean = dalloc(G), *grstd = dalloc(G);
    ref_stats_groups(&p, xv, gid, eps, rmean, rrstd);
    const int eval = p.op == OP_BATCH && !p.training;
    if (eval && stats == ST_GIVEN) { /* running statistics: constants, not x's */
        for (size_t i = 0; i < G; ++i) {
            gmean[i] = (float)(rmean[i] + rng_uniform(-0.5, 0.5));
            grstd[i] = (float)(rrstd[i] * rng_uniform(0.5, 2.0));
        }
        memcpy(rmean, gmean, G * sizeof(double)), memcpy(rrstd, grstd, G * sizeof(double));
    } else if (stats == ST_GIVEN) {
        CHECK_STATUS(forward_stats(dt, &p, &x, eps, gmean, grstd), CNORM_OK);
    }
    const double *mp = stats == ST_GIVEN && p.op != OP_RMS ? gmean : NULL, *rp = stats == ST_GIVEN ? grstd : NULL;

    /* relu'(z) is a step: where the float pipeline's z may have the other
     * sign than the reference's, dy = 0 makes the gradient independent of it */
    if (act == CNORM_ACT_RELU)
        for (size_t k = 0; k < N; ++k)
            if (fabs(ref_z(&p, xv[k], rmean[gid[k]], rrstd[gid[k]], pw, pb, chn[k])) < 1e-4) dyv[k] = buf_set(&dy, k, 0.0);

    grads_t r = grads_new(N, C);
    ref_backward(&p, xv, dyv, gid, chn, rmean, rrstd, pw, pb, act, &r);

    /* the same inputs and reference on every ISA path */
    const case_t cs = {dt, p, ctx, act, extras, &x, &dy, xv, mp, rp, pw, pb, &r};
    FOR_EACH_ISA(isa) library_checks(&cs);
    grads_free(&r);
    buf_free(&x), buf_free(&dy);
    param_free(&w), param_free(&b);
    free(xv), free(dyv), free(gid), free(chn), free(rmean), free(rrstd), free(gmean), free(grstd);
}

/* ---- the shapes ------------------------------------------------------------------ */

#define ROWS(r, c) {OP_LAYER, r, c, 1, 1, CNORM_NCHW, 1}
static const prob_t ROW_SHAPES[] = {
    ROWS(1, 1), ROWS(3, 2), ROWS(4, 3), ROWS(5, 17), ROWS(3, 33), ROWS(7, 100), ROWS(2, 257), ROWS(3, 1000),
    ROWS(1, 4099), ROWS(1, 70001), /* a row longer than 65536 values */
};
/* (n, c, s, groups); the layout is set per run */
#define CHAN(op, n, c, s, g) {op, n, c, s, g, CNORM_NCHW, 1}
static const prob_t GROUP_SHAPES[] = {
    CHAN(OP_GROUP, 1, 1, 1, 1),    CHAN(OP_GROUP, 2, 4, 3, 2),   CHAN(OP_GROUP, 2, 6, 5, 3),
    CHAN(OP_GROUP, 3, 8, 7, 1),    CHAN(OP_GROUP, 2, 12, 1, 3),  /* size-1 spatial */
    CHAN(OP_GROUP, 2, 16, 9, 4),   CHAN(OP_GROUP, 1, 32, 64, 8), CHAN(OP_GROUP, 3, 7, 11, 7), /* instance, odd */
    CHAN(OP_GROUP, 2, 64, 5, 64),  /* instance */
    CHAN(OP_GROUP, 2, 520, 3, 260), /* many small groups */
    CHAN(OP_GROUP, 1, 2, 35000, 1), /* a group of 70000 values */
};
static const prob_t BATCH_SHAPES[] = {
    CHAN(OP_BATCH, 1, 1, 1, 1),   CHAN(OP_BATCH, 2, 3, 1, 1),  /* size-1 spatial */
    CHAN(OP_BATCH, 3, 5, 7, 1),   CHAN(OP_BATCH, 4, 16, 9, 1), CHAN(OP_BATCH, 2, 33, 17, 1),
    CHAN(OP_BATCH, 8, 64, 3, 1),  CHAN(OP_BATCH, 2, 300, 5, 1), CHAN(OP_BATCH, 2, 2, 6000, 1), /* long channels */
};
#define COUNT(a) (sizeof a / sizeof *a)

/* The variants of one shape: large shapes (the emulator's time) get two,
 * without activations (every activation runs on shapes up to 4099). */
static void shape_cases(dtype dt, prob_t p) {
    const int big = p_total(&p) > 20000;
    const int rms = p.op == OP_RMS;
    run_case(dt, p, AFFINE, CNORM_ACT_NONE, ST_GIVEN, X_NULL_OUTPUTS | X_IN_PLACE);
    run_case(dt, p, PLAIN, CNORM_ACT_NONE, ST_NULL, big ? 0 : X_NULL_OUTPUTS);
    if (big) return;
    run_case(dt, p, WEIGHT_ONLY, CNORM_ACT_NONE, ST_GIVEN, 0);
    if (rms) {
        run_case(dt, p, WEIGHT_ONLY, CNORM_ACT_NONE, ST_NULL, X_IN_PLACE);
        return;
    }
    for (int a = 1; a < ACT_COUNT; ++a) {
        run_case(dt, p, AFFINE, ALL_ACTS[a], a & 1 ? ST_GIVEN : ST_NULL, a == 2 ? X_NULL_OUTPUTS | X_IN_PLACE : 0);
        run_case(dt, p, a == 3 ? BIAS_ONLY : PLAIN, ALL_ACTS[a], a & 1 ? ST_NULL : ST_GIVEN, 0);
    }
}

static void all_shapes(dtype dt) {
    for (size_t k = 0; k < COUNT(ROW_SHAPES); ++k) {
        prob_t p = ROW_SHAPES[k];
        shape_cases(dt, p);
        p.op = OP_RMS;
        shape_cases(dt, p);
    }
    for (int l = 0; l < 2; ++l) {
        const cnorm_layout layout = l ? CNORM_NHWC : CNORM_NCHW;
        for (size_t k = 0; k < COUNT(GROUP_SHAPES); ++k) {
            prob_t p = GROUP_SHAPES[k];
            p.layout = layout;
            shape_cases(dt, p);
        }
        for (size_t k = 0; k < COUNT(BATCH_SHAPES); ++k)
            for (int tr = 1; tr >= 0; --tr) {
                prob_t p = BATCH_SHAPES[k];
                p.layout = layout, p.training = tr;
                shape_cases(dt, p);
            }
    }
}

/* ---- offset data --------------------------------------------------------------------
 * x = 1e4 + N(0, 1): |mean|/std = 1e4.  The float32 dx error against the
 * float64 reference (which sees the same stored x), relative to max |dx|,
 * with the statistics recomputed, given as the exact ones rounded to float
 * (off by up to half an ulp of 1e4 = 4.9e-4: the backward must correct for
 * it) and given as the forward's rounded to float.  Bound: 1e-6 (float32),
 * 1e-12 (float64), for dweight/dbias relative to the sum of |terms|.
 * Measured (gcc 12, scalar/AVX2 and NEON under qemu): at most 1.1e-7 (dx)
 * and 4.2e-8 (dbias) for float32, 1.1e-13 for float64.  PyTorch's
 * a*dy + b*x + c form loses ~|mean|/std * 2^-24 = 6e-4 here. */
static void offset_case(dtype dt, prob_t p, double bound) {
    const double eps = 1e-5;
    const size_t N = p_total(&p), G = p_nstats(&p), C = p.c;
    buf_t x = buf_fill(dt, N, 1e4, 1.0), dy = buf_fill(dt, N, 0.0, 1.0);
    double *xv = buf_values(&x), *dyv = buf_values(&dy);
    size_t *gid = (size_t *)malloc(N * sizeof(size_t)), *chn = (size_t *)malloc(N * sizeof(size_t));
    if (!gid || !chn) exit(2);
    p_map(&p, gid, chn);
    param_t w = param_new(C, 0.5, 1.5), b = param_new(C, -0.5, 0.5);
    double *rmean = dalloc(G), *rrstd = dalloc(G), *gmean = dalloc(G), *grstd = dalloc(G);
    ref_stats_groups(&p, xv, gid, eps, rmean, rrstd);
    grads_t r = grads_new(N, C);
    ref_backward(&p, xv, dyv, gid, chn, rmean, rrstd, &w, &b, CNORM_ACT_NONE, &r);
    const double scale = max_abs(r.dx, N);
    buf_t dx = buf_new(dt, N), dw = buf_new(weight_dtype(dt), C), db = buf_new(weight_dtype(dt), C);
    static const char *const MODES[] = {"recomputed", "exact rounded to float", "the forward's rounded to float"};
    FOR_EACH_ISA(isa)
    for (int mode = 0; mode < 3; ++mode) {
        if (mode == 1)
            for (size_t i = 0; i < G; ++i)
                gmean[i] = dt == DT_F64 ? rmean[i] : (float)rmean[i], grstd[i] = dt == DT_F64 ? rrstd[i] : (float)rrstd[i];
        if (mode == 2) CHECK_STATUS(forward_stats(dt, &p, &x, eps, gmean, grstd), CNORM_OK);
        set_ctx("offset 1e4 %s %s, stats %s", p_desc(&p), dt_name(dt), MODES[mode]);
        CHECK_STATUS(run_bwd(dt, &p, dy.p, x.p, dx.p, mode ? gmean : NULL, mode ? grstd : NULL, &w, &b, eps,
                             CNORM_ACT_NONE, dw.p, db.p),
                     CNORM_OK);
        double err = 0.0, ew = 0.0, eb = 0.0;
        for (size_t k = 0; k < N; ++k) {
            const double e = fabs(buf_get(&dx, k) - r.dx[k]);
            if (!(e <= err)) err = e;
        }
        for (size_t i = 0; i < C; ++i) {
            const double e1 = fabs(buf_get(&dw, i) - r.dw[i]) / (r.sdw[i] + 1e-300);
            const double e2 = fabs(buf_get(&db, i) - r.db[i]) / (r.sdb[i] + 1e-300);
            if (!(e1 <= ew)) ew = e1;
            if (!(e2 <= eb)) eb = e2;
        }
        printf("  offset 1e4 %-6s %-48s %s stats %-31s dx error/max|dx| %.2e; dweight, dbias error/sum|terms| "
               "%.1e, %.1e\n",
               cnorm_isa_name((cnorm_isa)isa), p_desc(&p), dt_name(dt), MODES[mode], err / scale, ew, eb);
        CHECK(err <= bound * scale, "dx max error %.3g = %.3g of max |dx| %.3g > %.3g", err, err / scale, scale, bound);
        CHECK(ew <= bound && eb <= bound, "dweight/dbias error %.3g, %.3g of the sum of |terms| > %.3g", ew, eb, bound);
    }
    buf_free(&dx), buf_free(&dw), buf_free(&db);
    grads_free(&r);
    buf_free(&x), buf_free(&dy);
    param_free(&w), param_free(&b);
    free(xv), free(dyv), free(gid), free(chn), free(rmean), free(rrstd), free(gmean), free(grstd);
}

static void offset_data(dtype dt, double bound) {
    const prob_t layer = ROWS(16, 4096);
    offset_case(dt, layer, bound);
    for (int l = 0; l < 2; ++l) {
        prob_t g = CHAN(OP_GROUP, 2, 8, 4096, 4), bn = CHAN(OP_BATCH, 2, 8, 4096, 1);
        g.layout = bn.layout = l ? CNORM_NHWC : CNORM_NCHW;
        offset_case(dt, g, bound);
        offset_case(dt, bn, bound);
    }
}

/* ---- thread counts ------------------------------------------------------------------
 * More than 2^17 elements, so the calls go parallel: dx, dweight and dbias
 * have the same bits for 1, 2 and 3 threads (ctest sets OMP_NUM_THREADS=3
 * so that 3 is not capped to the core count).  One case per parallel
 * driver (a single row or NHWC sample is one piece of work: serial).  The
 * drivers cut the work by shape alone, the ISA only changes the leaves:
 * every storage type on the best ISA, float32 on the others. */
typedef struct {
    prob_t p;
    int params, stats;
    cnorm_activation act;
} big_t;

static const big_t BIG[] = {
    {ROWS(96, 1400), AFFINE, ST_GIVEN, CNORM_ACT_GELU},
    {{OP_RMS, 96, 1400, 1, 1, CNORM_NCHW, 1}, WEIGHT_ONLY, ST_NULL, CNORM_ACT_NONE},
    {{OP_GROUP, 4, 32, 1050, 8, CNORM_NCHW, 1}, AFFINE, ST_GIVEN, CNORM_ACT_SILU},
    {{OP_GROUP, 4, 32, 1050, 32, CNORM_NHWC, 1}, AFFINE, ST_NULL, CNORM_ACT_RELU}, /* instance */
    {{OP_BATCH, 8, 16, 1050, 1, CNORM_NCHW, 1}, AFFINE, ST_GIVEN, CNORM_ACT_RELU},
    {{OP_BATCH, 8, 16, 1050, 1, CNORM_NHWC, 1}, AFFINE, ST_NULL, CNORM_ACT_NONE},
    {{OP_BATCH, 8, 16, 1050, 1, CNORM_NHWC, 0}, AFFINE, ST_GIVEN, CNORM_ACT_SILU},
};

static void thread_counts(dtype dt) {
    const double eps = 1e-5;
    const int counts[] = {1, 2, 3};
    const size_t most = 134400; /* the largest total and channel count in BIG */
    buf_t x = buf_fill(dt, most, 1.0, 2.0), dy = buf_fill(dt, most, 0.0, 1.0); /* shared: a prefix per case */
    param_t w = param_new(most, -1.5, 1.5), b = param_new(most, -0.5, 0.5);
    for (size_t k = 0; k < COUNT(BIG); ++k) {
        const big_t *c = &BIG[k];
        const prob_t *p = &c->p;
        const size_t N = p_total(p), G = p_nstats(p), C = p->c;
        const int has_bias = p->op != OP_RMS;
        set_ctx("threads: %s %s %s act=%s stats=%s", p_desc(p), dt_name(dt), PARAM_NAMES[c->params],
                act_name(c->act), c->stats == ST_GIVEN ? "given" : "NULL");
        const buf_t xs = {dt, N, x.p};
        const param_t *pw = c->params == WEIGHT_ONLY || c->params == AFFINE ? &w : NULL;
        const param_t *pb = c->params == AFFINE && has_bias ? &b : NULL;
        double *mean = dalloc(G), *rstd = dalloc(G);
        if (c->stats == ST_GIVEN) CHECK_STATUS(forward_stats(dt, p, &xs, eps, mean, rstd), CNORM_OK);
        const double *mp = c->stats == ST_GIVEN && has_bias ? mean : NULL, *rp = c->stats == ST_GIVEN ? rstd : NULL;
        buf_t dx[3], dw[3], db[3];
        for (int t = 0; t < 3; ++t)
            dx[t] = buf_new(dt, N), dw[t] = buf_new(weight_dtype(dt), C), db[t] = buf_new(weight_dtype(dt), C);
        FOR_EACH_ISA(isa) {
            if (isa != (int)cnorm_best_isa() && dt != DT_F32) continue;
            for (int t = 0; t < 3; ++t) {
                CHECK_STATUS(cnorm_set_num_threads(counts[t]), CNORM_OK);
                CHECK_STATUS(run_bwd(dt, p, dy.p, x.p, dx[t].p, mp, rp, pw, pb, eps, c->act, dw[t].p,
                                     has_bias ? db[t].p : NULL),
                             CNORM_OK);
                if (t == 0) continue;
                CHECK(buf_equal(&dx[0], &dx[t]), "dx differs between 1 and %d threads", counts[t]);
                CHECK(buf_equal(&dw[0], &dw[t]), "dweight differs between 1 and %d threads", counts[t]);
                CHECK(buf_equal(&db[0], &db[t]), "dbias differs between 1 and %d threads", counts[t]);
            }
        }
        for (int t = 0; t < 3; ++t) buf_free(&dx[t]), buf_free(&dw[t]), buf_free(&db[t]);
        free(mean), free(rstd);
    }
    buf_free(&x), buf_free(&dy);
    param_free(&w), param_free(&b);
    CHECK_STATUS(cnorm_set_num_threads(0), CNORM_OK);
}

/* ---- error codes ----------------------------------------------------------------------
 * Every bad call returns its code without touching dx, dweight or dbias
 * (the buffers are 64 elements while the sizes may claim petabytes). */
#define SMALL 64
#define SENTINEL 0.25

static buf_t e_x, e_dy, e_dx, e_dw, e_db, e_dx0, e_dw0; /* ...0: sentinel-filled copies */
static param_t e_w, e_b;
static double e_mean[SMALL], e_rstd[SMALL];

static void e_reset(void) {
    memcpy(e_dx.p, e_dx0.p, SMALL * dt_size(e_dx.dt));
    memcpy(e_dw.p, e_dw0.p, SMALL * dt_size(e_dw.dt)), memcpy(e_db.p, e_dw0.p, SMALL * dt_size(e_dw.dt));
}

static int e_untouched(void) { return buf_equal(&e_dx, &e_dx0) && buf_equal(&e_dw, &e_dw0) && buf_equal(&e_db, &e_dw0); }

/* After an empty batch: dx untouched, dweight (and dbias) the sums over
 * no values, 0, for the c channels; the rest untouched. */
static void check_empty(size_t c, int has_bias) {
    CHECK(buf_equal(&e_dx, &e_dx0), "an empty batch wrote dx");
    for (size_t i = 0; i < SMALL; ++i) {
        const double want = i < c ? 0.0 : SENTINEL, want_b = has_bias ? want : SENTINEL;
        CHECK(buf_get(&e_dw, i) == want && buf_get(&e_db, i) == want_b,
              "empty batch: dweight[%zu] %g, dbias[%zu] %g, expected %g, %g", i, buf_get(&e_dw, i), i,
              buf_get(&e_db, i), want, want_b);
    }
}

/* a call with the shared small buffers; `null` blanks some pointers */
enum { N_DY = 1, N_X = 2, N_MEAN = 4, N_RSTD = 8 };
static int e_call(dtype dt, op_t op, size_t n, size_t c, size_t s, size_t groups, cnorm_layout layout, int training,
                  double eps, cnorm_activation act, int null) {
    const prob_t p = {op, n, c, s, groups, layout, training};
    return run_bwd(dt, &p, null & N_DY ? NULL : e_dy.p, null & N_X ? NULL : e_x.p, e_dx.p,
                   null & N_MEAN ? NULL : e_mean, null & N_RSTD ? NULL : e_rstd, &e_w, &e_b, eps, act, e_dw.p,
                   e_db.p);
}

#define EXPECT(call, want)                                                                          \
    do {                                                                                            \
        e_reset();                                                                                  \
        CHECK_STATUS(call, want);                                                                   \
        if ((want) != CNORM_OK) CHECK(e_untouched(), "%s wrote an output on error", #call);         \
    } while (0)

static const size_t HUGE_N = SIZE_MAX / 2; /* times 4 overflows */
static const cnorm_activation BAD_ACTS[] = {(cnorm_activation)4, (cnorm_activation)-1, (cnorm_activation)1000};
static const double BAD_EPS[] = {-1e-5, -1e300, NAN, -NAN, INFINITY, -INFINITY};
#define NONE CNORM_ACT_NONE
#define BAD_ACT BAD_ACTS[0]
#define BAD_LAYOUT ((cnorm_layout)7)

static void errors(dtype dt) {
    const cnorm_layout L = CNORM_NCHW, H = CNORM_NHWC;
    const double e = 1e-5;
    /* layer and RMS: rows (n) of cols (c) */
    for (int o = 0; o < 2; ++o) {
        const op_t op = o ? OP_RMS : OP_LAYER;
        set_ctx("errors %s %s", o ? "rms_norm_backward" : "layer_norm_backward", dt_name(dt));
        if (op == OP_LAYER)
            for (size_t k = 0; k < COUNT(BAD_ACTS); ++k) EXPECT(e_call(dt, op, 2, 4, 1, 1, L, 1, e, BAD_ACTS[k], 0), CNORM_ERR_ARG);
        for (size_t k = 0; k < COUNT(BAD_EPS); ++k) EXPECT(e_call(dt, op, 2, 4, 1, 1, L, 1, BAD_EPS[k], NONE, 0), CNORM_ERR_EPS);
        EXPECT(e_call(dt, op, HUGE_N, 4, 1, 1, L, 1, e, NONE, 0), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, op, 4, HUGE_N, 1, 1, L, 1, e, NONE, 0), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, op, SIZE_MAX, SIZE_MAX, 1, 1, L, 1, e, NONE, 0), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, op, 0, 4, 1, 1, L, 1, e, NONE, 0), CNORM_OK); /* empty batch */
        check_empty(4, op == OP_LAYER);
        EXPECT(e_call(dt, op, 3, 0, 1, 1, L, 1, e, NONE, 0), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, op, 2, 4, 1, 1, L, 1, e, NONE, N_DY), CNORM_ERR_NULL);
        EXPECT(e_call(dt, op, 2, 4, 1, 1, L, 1, e, NONE, N_X), CNORM_ERR_NULL);
        if (op == OP_LAYER) {
            EXPECT(e_call(dt, op, 2, 4, 1, 1, L, 1, e, NONE, N_MEAN), CNORM_ERR_NULL);
            EXPECT(e_call(dt, op, 2, 4, 1, 1, L, 1, e, NONE, N_RSTD), CNORM_ERR_NULL);
        }
        EXPECT(e_call(dt, op, 2, 4, 1, 1, L, 1, e, NONE, N_MEAN | N_RSTD), CNORM_OK); /* recomputed */
        EXPECT(e_call(dt, op, 2, 4, 1, 1, L, 1, 0.0, NONE, 0), CNORM_OK);          /* eps == 0 is allowed */
        /* the order: activation, eps, sizes, empty batch, zero-size row, pointers */
        if (op == OP_LAYER) EXPECT(e_call(dt, op, HUGE_N, 4, 1, 1, L, 1, -1.0, BAD_ACT, N_DY | N_X), CNORM_ERR_ARG);
        EXPECT(e_call(dt, op, HUGE_N, 4, 1, 1, L, 1, -1.0, NONE, N_DY | N_X), CNORM_ERR_EPS);
        EXPECT(e_call(dt, op, HUGE_N, 4, 1, 1, L, 1, e, NONE, N_DY | N_X | N_MEAN), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, op, 0, 4, 1, 1, L, 1, e, NONE, N_DY | N_X | N_MEAN), CNORM_OK);
        EXPECT(e_call(dt, op, 2, 0, 1, 1, L, 1, e, NONE, N_DY | N_X | N_MEAN), CNORM_ERR_SIZE);
    }

    /* group norm: (n, c, s) = (2, 4, 3) with 2 groups */
    set_ctx("errors group_norm_backward %s", dt_name(dt));
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 2, (cnorm_layout)2, 1, e, NONE, 0), CNORM_ERR_LAYOUT);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 2, (cnorm_layout)-1, 1, e, NONE, 0), CNORM_ERR_LAYOUT);
    for (size_t k = 0; k < COUNT(BAD_ACTS); ++k) EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 2, H, 1, e, BAD_ACTS[k], 0), CNORM_ERR_ARG);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 0, L, 1, e, NONE, 0), CNORM_ERR_GROUPS);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 3, L, 1, e, NONE, 0), CNORM_ERR_GROUPS);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 8, H, 1, e, NONE, 0), CNORM_ERR_GROUPS);
    for (size_t k = 0; k < COUNT(BAD_EPS); ++k) EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 2, L, 1, BAD_EPS[k], NONE, 0), CNORM_ERR_EPS);
    EXPECT(e_call(dt, OP_GROUP, HUGE_N, 4, 3, 2, L, 1, e, NONE, 0), CNORM_ERR_SIZE);
    EXPECT(e_call(dt, OP_GROUP, 2, HUGE_N, 4, 1, L, 1, e, NONE, 0), CNORM_ERR_SIZE);
    EXPECT(e_call(dt, OP_GROUP, 4, 2, HUGE_N, 1, H, 1, e, NONE, 0), CNORM_ERR_SIZE);
    EXPECT(e_call(dt, OP_GROUP, 0, 4, 3, 2, L, 1, e, NONE, 0), CNORM_OK);
    check_empty(4, 1);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 0, 2, L, 1, e, NONE, 0), CNORM_ERR_SIZE);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 2, L, 1, e, NONE, N_DY), CNORM_ERR_NULL);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 2, H, 1, e, NONE, N_X), CNORM_ERR_NULL);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 2, L, 1, e, NONE, N_MEAN), CNORM_ERR_NULL);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 2, H, 1, e, NONE, N_RSTD), CNORM_ERR_NULL);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 3, 2, H, 1, e, NONE, N_MEAN | N_RSTD), CNORM_OK);
    /* the order: layout, activation, groups, eps, sizes, empty, zero-size, pointers */
    EXPECT(e_call(dt, OP_GROUP, HUGE_N, 4, 3, 3, BAD_LAYOUT, 1, -1.0, BAD_ACT, N_DY | N_X | N_MEAN), CNORM_ERR_LAYOUT);
    EXPECT(e_call(dt, OP_GROUP, HUGE_N, 4, 3, 3, L, 1, -1.0, BAD_ACT, N_DY | N_X | N_MEAN), CNORM_ERR_ARG);
    EXPECT(e_call(dt, OP_GROUP, HUGE_N, 4, 3, 3, H, 1, -1.0, NONE, N_DY | N_X | N_MEAN), CNORM_ERR_GROUPS);
    EXPECT(e_call(dt, OP_GROUP, HUGE_N, 4, 3, 2, L, 1, -1.0, NONE, N_DY | N_X | N_MEAN), CNORM_ERR_EPS);
    EXPECT(e_call(dt, OP_GROUP, HUGE_N, 4, 3, 2, H, 1, e, NONE, N_DY | N_X | N_MEAN), CNORM_ERR_SIZE);
    EXPECT(e_call(dt, OP_GROUP, 0, 4, 3, 2, L, 1, e, NONE, N_DY | N_X | N_MEAN), CNORM_OK);
    EXPECT(e_call(dt, OP_GROUP, 2, 4, 0, 2, L, 1, e, NONE, N_DY | N_X | N_MEAN), CNORM_ERR_SIZE);

    /* batch norm: (2, 4, 3), training and eval */
    for (int tr = 1; tr >= 0; --tr) {
        set_ctx("errors batch_norm_backward %s %s", tr ? "train" : "eval", dt_name(dt));
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 3, 1, BAD_LAYOUT, tr, e, NONE, 0), CNORM_ERR_LAYOUT);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 3, 1, (cnorm_layout)-3, tr, e, NONE, 0), CNORM_ERR_LAYOUT);
        for (size_t k = 0; k < COUNT(BAD_ACTS); ++k)
            EXPECT(e_call(dt, OP_BATCH, 2, 4, 3, 1, H, tr, e, BAD_ACTS[k], 0), CNORM_ERR_ARG);
        for (size_t k = 0; k < COUNT(BAD_EPS); ++k)
            EXPECT(e_call(dt, OP_BATCH, 2, 4, 3, 1, L, tr, BAD_EPS[k], NONE, 0), CNORM_ERR_EPS);
        EXPECT(e_call(dt, OP_BATCH, HUGE_N, 4, 1, 1, L, tr, e, NONE, 0), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, HUGE_N, 1, H, tr, e, NONE, 0), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, OP_BATCH, 1, HUGE_N, 4, 1, L, tr, e, NONE, 0), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 3, 1, L, tr, e, NONE, N_DY), CNORM_ERR_NULL);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 3, 1, H, tr, e, NONE, N_X), CNORM_ERR_NULL);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 3, 1, L, tr, e, NONE, N_MEAN), CNORM_ERR_NULL);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 3, 1, H, tr, e, NONE, N_RSTD), CNORM_ERR_NULL);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 3, 1, H, tr, e, NONE, N_MEAN | N_RSTD), CNORM_OK);
        EXPECT(e_call(dt, OP_BATCH, HUGE_N, 4, 3, 1, BAD_LAYOUT, tr, -1.0, BAD_ACT, N_DY | N_X | N_MEAN), CNORM_ERR_LAYOUT);
        EXPECT(e_call(dt, OP_BATCH, HUGE_N, 4, 3, 1, L, tr, -1.0, BAD_ACT, N_DY | N_X | N_MEAN), CNORM_ERR_ARG);
        EXPECT(e_call(dt, OP_BATCH, HUGE_N, 4, 3, 1, H, tr, -1.0, NONE, N_DY | N_X | N_MEAN), CNORM_ERR_EPS);
        EXPECT(e_call(dt, OP_BATCH, HUGE_N, 4, 3, 1, L, tr, e, NONE, N_DY | N_X | N_MEAN), CNORM_ERR_SIZE);
    }
    /* as in the forward: statistics to recompute need a value per channel;
     * given ones do not (training or eval), and the batch is empty */
    for (int tr = 1; tr >= 0; --tr) {
        set_ctx("errors batch_norm_backward %s, no values per channel, %s", tr ? "train" : "eval", dt_name(dt));
        EXPECT(e_call(dt, OP_BATCH, 0, 4, 3, 1, L, tr, e, NONE, N_MEAN | N_RSTD), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 0, 1, H, tr, e, NONE, N_MEAN | N_RSTD), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 0, 1, H, tr, e, NONE, N_DY | N_X | N_MEAN | N_RSTD), CNORM_ERR_SIZE);
        EXPECT(e_call(dt, OP_BATCH, 0, 4, 3, 1, L, tr, e, NONE, 0), CNORM_OK);
        check_empty(4, 1);
        EXPECT(e_call(dt, OP_BATCH, 2, 4, 0, 1, H, tr, e, NONE, N_DY | N_X), CNORM_OK);
        check_empty(4, 1);
    }
}

static void error_codes(dtype dt) {
    e_x = buf_fill(dt, SMALL, 0.0, 1.0), e_dy = buf_fill(dt, SMALL, 0.0, 1.0), e_dx = buf_new(dt, SMALL);
    e_dw = buf_new(weight_dtype(dt), SMALL), e_db = buf_new(weight_dtype(dt), SMALL);
    e_dx0 = buf_new(dt, SMALL), e_dw0 = buf_new(weight_dtype(dt), SMALL);
    for (size_t i = 0; i < SMALL; ++i) buf_set(&e_dx0, i, SENTINEL), buf_set(&e_dw0, i, SENTINEL);
    e_w = param_new(SMALL, 0.5, 1.5), e_b = param_new(SMALL, -0.5, 0.5);
    for (size_t i = 0; i < SMALL; ++i) e_mean[i] = 0.0, e_rstd[i] = 1.0;
    FOR_EACH_ISA(isa) errors(dt);
    buf_free(&e_x), buf_free(&e_dy), buf_free(&e_dx), buf_free(&e_dw), buf_free(&e_db);
    buf_free(&e_dx0), buf_free(&e_dw0);
    param_free(&e_w), param_free(&e_b);
}

/* Each case makes its inputs and reference once, then runs on every ISA
 * path (the reference is most of the time under an emulator). */
int main(void) {
    rng_seed(11);
    fd_self_check();
    for (int d = 0; d < DT_COUNT; ++d) {
        all_shapes((dtype)d);
        thread_counts((dtype)d);
        error_codes((dtype)d);
    }
    offset_data(DT_F32, 1e-6);
    offset_data(DT_F64, 1e-12);
    return check_report("test_backward");
}
