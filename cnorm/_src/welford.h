/* Internal: the statistics engine.  The Welford step, the Chan merge and the
 * pairwise cascade are each defined once here; everything cnorm reduces is
 * built from them.
 *
 * A partial is a (count, mean, M2) triple, M2 the sum of squared deviations
 * from the mean.  Sum/sum-of-squares is never used: on data with
 * |mean| >> std it cancels catastrophically.
 *
 * The step and the merge are written once against four arithmetic operations
 * (ADD, SUB, MUL, FMADD) and instantiated per arithmetic type: double here,
 * the float and double vectors of each ISA in leaves_simd.h.  What they merge
 * is then a double triple (cnorm_moments_t), a vector of lanes (vpart_t,
 * leaves_simd.h) or an array of columns (cnorm_merge_cols); the cascade is
 * instantiated for each of those with the item's merge and copy.
 *
 * How a new per-group reduction plugs in: give it a partial type and a merge
 * (for sums, an add), instantiate CNORM_DEFINE_CASCADE for it, and cut each
 * group into the same fixed pieces the statistics use (CNORM_ROW_BLOCK blocks
 * of a row, CNORM_COL_CHUNK-row chunks of a column block), pushing the
 * pieces' partials in order; partials that are all in memory at once (one
 * per row block, sample or chunk of rows, written by whichever thread ran
 * the piece) are summed with cnorm_sum_pairwise, the same tree (moments:
 * cnorm_merge_pairwise).  The merge
 * tree then depends only on the shape, so the result is bitwise identical
 * for any thread count, and its rounding error grows with log2 of the
 * number of pieces.  The backward pass (engine_backward.inc) is built so:
 * per-group sums of xh, d and d * xh, per-channel sums for dweight/dbias.
 */
#ifndef CNORM_WELFORD_H
#define CNORM_WELFORD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the step and the merge, generic over the arithmetic ------------------- */

/* Welford's step: fold v into a lane's (mean, m2); inv = 1 / (the lane's count
 * after this step).  The update multiplies the deviations from the old and
 * the new mean, so M2 never goes negative and constant data give exactly 0;
 * inv is one table load (all lanes of a step share the count), not a divide. */
#define CNORM_DEFINE_WELFORD_STEP(name, V, SUB, FMADD)          \
    static inline void name(V v, V inv, V *mean, V *m2) {       \
        const V d_ = SUB(v, *mean);                             \
        *mean = FMADD(d_, inv, *mean);                          \
        *m2 = FMADD(d_, SUB(v, *mean), *m2);                    \
    }

/* Chan et al.'s merge of partial b into partial a, given the weights of
 * cnorm_chan_weights(na, nb): exact in exact arithmetic, and its rounding
 * error grows with the depth of the merge tree, not with the count.  The
 * result goes to (*mean, *m2), which may be either input's storage. */
#define CNORM_DEFINE_CHAN_MERGE(name, V, ADD, SUB, MUL, FMADD, SET1)                          \
    static inline void name(V mean_a, V m2_a, V mean_b, V m2_b, double fb, double w, V *mean, \
                            V *m2) {                                                          \
        const V d_ = SUB(mean_b, mean_a);                                                     \
        const V s_ = ADD(m2_a, m2_b);                                                         \
        *mean = FMADD(d_, SET1(fb), mean_a);                                                  \
        *m2 = FMADD(MUL(d_, d_), SET1(w), s_);                                                \
    }

/* The merge's weights: n = na + nb, fb = nb / n and w = na * nb / n, as
 * na * fb.  Equal counts give fb = 1/2 and w = na/2 exactly. */
typedef struct {
    double n, fb, w;
} cnorm_chan_weights_t;

static inline cnorm_chan_weights_t cnorm_chan_weights(double na, double nb) {
    cnorm_chan_weights_t c;
    c.n = na + nb;
    c.fb = nb / c.n;
    c.w = na * c.fb;
    return c;
}

/* cnorm_chan_weights(n, n), exactly (n / 2n is 1/2), without its divide:
 * the pairwise lane reductions run one per row and their divides chain. */
static inline cnorm_chan_weights_t cnorm_chan_weights_equal(double n) {
    cnorm_chan_weights_t c;
    c.n = n + n;
    c.fb = 0.5;
    c.w = n * 0.5;
    return c;
}

/* double arithmetic for the generic pieces (FMADD contracts where the
 * compiler and target allow, as a written-out a * b + c would) */
static inline double cnorm_add_d(double a, double b) { return a + b; }
static inline double cnorm_sub_d(double a, double b) { return a - b; }
static inline double cnorm_mul_d(double a, double b) { return a * b; }
static inline double cnorm_fmadd_d(double a, double b, double c) { return a * b + c; }
static inline double cnorm_set1_d(double a) { return a; }

CNORM_DEFINE_WELFORD_STEP(cnorm_welford_d, double, cnorm_sub_d, cnorm_fmadd_d)          /* cnorm_welford_d */
CNORM_DEFINE_CHAN_MERGE(cnorm_chan_d, double, cnorm_add_d, cnorm_sub_d, cnorm_mul_d,
                        cnorm_fmadd_d, cnorm_set1_d)                                   /* cnorm_chan_d */

/* ---- the pairwise cascade, generic over what is merged ---------------------- */

/* A binary counter over a stream of partials: level k holds the merge of 2^k
 * consecutive partials, and pushing the p-th partial merges it with the
 * levels named by the trailing one bits of p.  The merge tree depends only
 * on the number of partials, never on threads, and merging pairwise keeps
 * the rounding error growth logarithmic in that number.
 *
 * Defines name##_t (LEVELS levels of item_t), name##_init, name##_push (the
 * item is consumed) and name##_result (collapses the levels, latest and
 * smallest first, into *out; returns 0 if nothing was pushed).
 * MERGE(dst, a, b, ctx) stores merge(a, b) in dst, which may be b;
 * COPY(dst, src, ctx) copies; ctx is passed through (e.g. a column count). */
#define CNORM_DEFINE_CASCADE(name, item_t, LEVELS, MERGE, COPY)                      \
    typedef struct {                                                                 \
        item_t level[LEVELS];                                                        \
        uint64_t pushed; /* bit k set <=> level k is full */                         \
    } name##_t;                                                                      \
    static inline void name##_init(name##_t *c) { c->pushed = 0; }                   \
    static inline void name##_push(name##_t *c, item_t *cur, const void *ctx) {      \
        int k = 0;                                                                   \
        for (uint64_t bits = c->pushed; bits & 1u; bits >>= 1, ++k) /* carry */      \
            MERGE(cur, &c->level[k], cur, ctx);                                      \
        COPY(&c->level[k], cur, ctx);                                                \
        c->pushed += 1;                                                              \
    }                                                                                \
    static inline int name##_result(const name##_t *c, item_t *out, const void *ctx) { \
        int have = 0;                                                                \
        for (int k = 0; k < (LEVELS); ++k) {                                         \
            if (!((c->pushed >> k) & 1u)) continue;                                  \
            if (have)                                                                \
                MERGE(out, &c->level[k], out, ctx);                                  \
            else                                                                     \
                COPY(out, &c->level[k], ctx);                                        \
            have = 1;                                                                \
        }                                                                            \
        return have;                                                                 \
    }

/* ---- double triples ----------------------------------------------------------- */

typedef struct {
    double n; /* element count, as double: merges divide by it */
    double mean;
    double m2; /* sum of squared deviations from mean */
} cnorm_moments_t;

/* merge(a, b); an empty partial is the identity */
static inline cnorm_moments_t cnorm_moments_merge(cnorm_moments_t a, cnorm_moments_t b) {
    if (b.n == 0.0) return a;
    if (a.n == 0.0) return b;
    const cnorm_chan_weights_t c = cnorm_chan_weights(a.n, b.n);
    cnorm_moments_t r;
    r.n = c.n;
    cnorm_chan_d(a.mean, a.m2, b.mean, b.m2, c.fb, c.w, &r.mean, &r.m2);
    return r;
}

static inline void cnorm_moments_merge_to(cnorm_moments_t *dst, const cnorm_moments_t *a,
                                          const cnorm_moments_t *b, const void *ctx) {
    (void)ctx;
    *dst = cnorm_moments_merge(*a, *b);
}

static inline void cnorm_moments_copy(cnorm_moments_t *dst, const cnorm_moments_t *src, const void *ctx) {
    (void)ctx;
    *dst = *src;
}

/* Triples pushed one by one: 64 levels hold 2^64 partials. */
CNORM_DEFINE_CASCADE(cnorm_cascade, cnorm_moments_t, 64, cnorm_moments_merge_to, cnorm_moments_copy)
/* cnorm_cascade_t, cnorm_cascade_init, cnorm_cascade_push, cnorm_cascade_result */

/* The merge of every triple pushed (an empty triple if none). */
static inline cnorm_moments_t cnorm_cascade_total(const cnorm_cascade_t *c) {
    cnorm_moments_t r = {0.0, 0.0, 0.0};
    cnorm_cascade_result(c, &r, NULL);
    return r;
}

/* ---- arrays of columns -------------------------------------------------------- */

/* Column-wise merge of (na, ma, m2a) and (nb, mb, m2b) into (out_m, out_m2),
 * which may be either input. */
static inline void cnorm_merge_cols(double na, const double *ma, const double *m2a, double nb,
                                    const double *mb, const double *m2b, size_t cols, double *out_m,
                                    double *out_m2) {
    const cnorm_chan_weights_t c = cnorm_chan_weights(na, nb);
    for (size_t j = 0; j < cols; ++j) cnorm_chan_d(ma[j], m2a[j], mb[j], m2b[j], c.fb, c.w, &out_m[j], &out_m2[j]);
}

/* `count` partial arrays of `len` columns held at once (piece k: means at
 * mean + k * stride, M2s at m2 + k * stride, of min(piece, total - k * piece)
 * values each) merged into piece 0 in the cascade's tree, with its merge and
 * weights: bitwise what pushing the pieces column by column gives, but the
 * weights' divide runs once per merge, not once per column, and the columns
 * vectorize. */
static inline void cnorm_merge_pairwise(double *mean, double *m2, size_t count, size_t stride, size_t len,
                                        double piece, double total) {
    for (size_t w = 1; w < count; w *= 2)
        for (size_t k = 0; k + w < count; k += 2 * w) {
            const double span = (double)w * piece, na = span, rest = total - (double)(k + w) * piece;
            const double nb = rest < span ? rest : span;
            double *ma = mean + k * stride, *m2a = m2 + k * stride;
            cnorm_merge_cols(na, ma, m2a, nb, mean + (k + w) * stride, m2 + (k + w) * stride, len, ma, m2a);
        }
}

/* ---- sums of arrays held at once ---------------------------------------------- */

/* The backward pass's per-group sums (welford.h's header comment): `count`
 * partial arrays of `len` doubles, array k at a + k * stride, summed
 * pairwise (the cascade's tree, for partials that are all in memory) into
 * array 0.  The tree depends only on count, so the result is the same for
 * any thread count, and its rounding error grows with log2(count). */
static inline void cnorm_sum_pairwise(double *a, size_t count, size_t stride, size_t len) {
    for (size_t w = 1; w < count; w *= 2)
        for (size_t k = 0; k + w < count; k += 2 * w) {
            double *dst = a + k * stride;
            const double *src = a + (k + w) * stride;
            for (size_t j = 0; j < len; ++j) dst[j] += src[j];
        }
}

/* ---- from M2 to the factor the apply step uses -------------------------------- */

/* Variance clamped at 0 (rounding can make M2 slightly negative after
 * merges); NaN is kept so that a bad group stays visibly bad. */
static inline double cnorm_rstd(double var, double eps) {
    if (var < 0.0) var = 0.0;
    return 1.0 / sqrt(var + eps);
}

/* rstd of a given (running) variance, as torch and fold_batch_norm compute
 * it and apply it (not through cnorm_apply_rstd: nothing says x equals the
 * mean): no clamp, so var + eps < 0 gives NaN, never finite garbage, and
 * var + eps == 0 gives inf. */
static inline double cnorm_given_rstd(double var, double eps) { return 1.0 / sqrt(var + eps); }

/* The factor the apply step uses: rstd, except that a group without spread
 * and eps = 0 (rstd = inf) normalizes to exactly 0 (y = bias): every x there
 * equals the mean, and 0 * inf would be NaN. */
static inline double cnorm_apply_rstd(double rstd) { return isinf(rstd) ? 0.0 : rstd; }

#endif
