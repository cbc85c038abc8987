/* Moments: x viewed as (outer, len, inner), mean and var over the middle
 * axis, ddof 0 and 1, every storage type and ISA; the contiguous (inner ==
 * 1) and strided-column paths; IEEE inf/NaN when len <= ddof.  Split axes:
 * x viewed as (lead, keep, len, inner) reduced over lead and len, as
 * variances and as (count, mean, M2) partials. */
#include "check.h"

static const size_t SHAPES[][3] = {{1, 1, 1},  {1, 5, 1},  {3, 17, 1},  {2, 100, 1},  {1, 1000, 1},    {1, 70001, 1},
                                   {2, 3, 5},  {3, 40, 7}, {1, 33, 300}, {2, 2000, 20}, {1, 5000, 64}, {4, 64, 33}};

static void run_case(dtype dt, const size_t *s, double ddof, double offset) {
    const size_t outer = s[0], len = s[1], inner = s[2], total = outer * len * inner, m = outer * inner;
    set_ctx("moments %s outer=%zu len=%zu inner=%zu ddof=%g offset=%g", dt_name(dt), outer, len, inner, ddof, offset);
    buf_t x = buf_random(dt, total, offset, 1.0);
    double *xv = buf_values(&x), *mean = dalloc(m), *var = dalloc(m), *wmean = dalloc(m), *wvar = dalloc(m);
    ref_moments(xv, outer, len, inner, ddof, wmean, wvar);
    CHECK_STATUS(run_moments(dt, x.p, outer, len, inner, ddof, mean, var), CNORM_OK);
    check_stats("mean", mean, wmean, m, dt, 1.0);
    if (len > ddof) {
        check_stats("var", var, wvar, m, dt, 0.0);
    } else {
        int special = 1;
        for (size_t i = 0; i < m; ++i) special &= isnan(var[i]) || isinf(var[i]);
        CHECK(special, "len <= ddof: var %g, expected inf or NaN", var[0]);
    }
    buf_free(&x);
    free(xv), free(mean), free(var), free(wmean), free(wvar);
}

static const size_t SPLIT_SHAPES[][4] = {{2, 3, 5, 1}, {4, 2, 300, 1}, {3, 5, 7, 4}, {1, 3, 9, 2},
                                         {5, 1, 1, 3}, {17, 2, 64, 1}, {2, 2, 100, 33}};

static void run_split(dtype dt, const size_t *s, double ddof, double offset) {
    const size_t lead = s[0], keep = s[1], len = s[2], inner = s[3], m = keep * inner, count = lead * len;
    set_ctx("moments_split %s lead=%zu keep=%zu len=%zu inner=%zu ddof=%g", dt_name(dt), lead, keep, len, inner, ddof);
    buf_t x = buf_random(dt, lead * m * len, offset, 1.0);
    double *xv = buf_values(&x), *mean = dalloc(m), *var = dalloc(m), *pm2 = dalloc(m), *pmean = dalloc(m);
    double *wmean = dalloc(m), *wvar = dalloc(m), *gather = dalloc(count), *wm2 = dalloc(m);
    for (size_t k = 0; k < keep; ++k)
        for (size_t i = 0; i < inner; ++i) {
            for (size_t l = 0; l < lead; ++l)
                for (size_t j = 0; j < len; ++j) gather[l * len + j] = xv[((l * keep + k) * len + j) * inner + i];
            double mu, v;
            ref_stats(gather, 0, count, 1, &mu, &v);
            wmean[k * inner + i] = mu;
            wvar[k * inner + i] = v * (double)count / ((double)count - ddof);
            wm2[k * inner + i] = v * (double)count;
        }
    CHECK_STATUS(run_moments_split(dt, x.p, lead, keep, len, inner, ddof, mean, var), CNORM_OK);
    check_stats("mean", mean, wmean, m, dt, 1.0);
    check_stats("var", var, wvar, m, dt, 0.0);
    CHECK_STATUS(run_moments_partial(dt, x.p, lead, keep, len, inner, pmean, pm2), CNORM_OK);
    check_stats("partial mean", pmean, wmean, m, dt, 1.0);
    check_stats("partial m2", pm2, wm2, m, dt, 0.0);
    buf_free(&x);
    free(xv), free(mean), free(var), free(pm2), free(pmean), free(wmean), free(wvar), free(gather), free(wm2);
}

int main(void) {
    rng_seed(6);
    FOR_EACH_ISA(isa) {
        for (int d = 0; d < DT_COUNT; ++d)
            for (size_t k = 0; k < sizeof SHAPES / sizeof *SHAPES; ++k) {
                run_case((dtype)d, SHAPES[k], 0.0, -2.0);
                run_case((dtype)d, SHAPES[k], 1.0, 5.0);
            }
        for (int d = 0; d < DT_COUNT; ++d)
            for (size_t k = 0; k < sizeof SPLIT_SHAPES / sizeof *SPLIT_SHAPES; ++k) {
                run_split((dtype)d, SPLIT_SHAPES[k], 0.0, 3.0);
                run_split((dtype)d, SPLIT_SHAPES[k], 1.0, -1.0);
            }
        /* len <= ddof: var = M2 / 0 */
        static const size_t one[3] = {2, 1, 1}, two[3] = {1, 2, 3};
        for (int d = 0; d < DT_COUNT; ++d) {
            run_case((dtype)d, one, 1.0, 0.0);
            run_case((dtype)d, two, 3.0, 0.0);
        }
    }
    return check_report("test_moments");
}
