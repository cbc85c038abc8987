/* Internal: (count, mean, M2) partials and Chan's merge.
 *
 * Every statistic in cnorm is built from these triples.  Sum/sum-of-squares
 * is never used: on data with |mean| >> std it cancels catastrophically.
 */
#ifndef CNORM_WELFORD_H
#define CNORM_WELFORD_H

#include <math.h>
#include <stddef.h>

typedef struct {
    double n;    /* element count, as double: merges divide by it */
    double mean;
    double m2;   /* sum of squared deviations from mean */
} cnorm_moments_t;

/* Chan et al.: combine two partials.  Exact in exact arithmetic, and the
 * rounding error grows with the merge-tree depth, not with the count. */
static inline cnorm_moments_t cnorm_chan_merge(cnorm_moments_t a, cnorm_moments_t b) {
    cnorm_moments_t r;
    double n = a.n + b.n;
    if (b.n == 0.0) return a;
    if (a.n == 0.0) return b;
    double delta = b.mean - a.mean;
    double fb = b.n / n;
    r.n = n;
    r.mean = a.mean + delta * fb;
    r.m2 = a.m2 + b.m2 + delta * delta * a.n * fb;
    return r;
}

/* Pairwise (cascaded) merging of a stream of equal-size chunk partials:
 * a binary counter whose level k holds the merge of 2^k chunks.  The merge
 * tree depends only on the number of chunks, never on threads. */
#define CNORM_CASCADE_LEVELS 64

typedef struct {
    cnorm_moments_t level[CNORM_CASCADE_LEVELS];
    unsigned long long pushed; /* number of chunks pushed; bit k set <=> level k full */
} cnorm_cascade_t;

static inline void cnorm_cascade_init(cnorm_cascade_t *c) { c->pushed = 0; }

static inline void cnorm_cascade_push(cnorm_cascade_t *c, cnorm_moments_t p) {
    int k = 0;
    unsigned long long bits = c->pushed;
    while (bits & 1ull) {           /* level k is full: merge and carry upwards */
        p = cnorm_chan_merge(c->level[k], p);
        bits >>= 1;
        ++k;
    }
    c->level[k] = p;
    c->pushed += 1;
}

/* Collapse the remaining levels, smallest (latest) first. */
static inline cnorm_moments_t cnorm_cascade_result(const cnorm_cascade_t *c) {
    cnorm_moments_t r = {0.0, 0.0, 0.0};
    int have = 0;
    for (int k = 0; k < CNORM_CASCADE_LEVELS; ++k) {
        if (!((c->pushed >> k) & 1ull)) continue;
        r = have ? cnorm_chan_merge(c->level[k], r) : c->level[k];
        have = 1;
    }
    return r;
}

/* Variance clamped at 0 (rounding can make M2 slightly negative after
 * merges); NaN is kept so that a bad group stays visibly bad. */
static inline double cnorm_rstd(double var, double eps) {
    if (var < 0.0) var = 0.0;
    return 1.0 / sqrt(var + eps);
}

/* The factor the apply step uses: rstd, except that a group without spread
 * and eps = 0 (rstd = inf) normalizes to exactly 0 (y = bias): every x there
 * equals the mean, and 0 * inf would be NaN. */
static inline double cnorm_apply_rstd(double rstd) { return isinf(rstd) ? 0.0 : rstd; }

#endif
