/* Internal: the SIMD leaf kernels, written once against a vector shim
 * (include/cnorm/simd_*.h) and instantiated for float and double.
 *
 * A file per ISA sets the target, includes its shim, defines CN_ISA and
 * includes this header, which defines cnorm_kernels_<CN_ISA>.
 */
#include <stdint.h>

#include "cnorm/kernels.h"
#include "cnorm/recip_table.h"

/* A Welford step reads CN_STEP values into CN_LV double lanes-vectors
 * (CN_ACCF float vectors for float data); a chunk is CN_STEPS steps. */
#define CN_LV (2 * CN_ACCF)
#define CN_STEP (CN_LV * CN_VD)
#define CN_STEPS 16
/* Cascade depth for one leaf call: n <= CNORM_ROW_BLOCK gives far fewer
 * than 2^24 chunks. */
#define CN_LEVELS 24
/* Rows shorter than this never stream: the fence would cost more. */
#define CN_STREAM_MIN 1024
/* Columns whose apply parameters are converted at once. */
#define CN_COL_TILE 256

typedef struct {
    vd mean[CN_LV], m2[CN_LV];
} lanes_t;

/* dst = Chan merge of a (count na per lane) and b (nb per lane); dst may
 * be b.  All lanes share the counts, so the weights are broadcasts. */
static inline void lanes_merge(lanes_t *dst, const lanes_t *a, double na, const lanes_t *b,
                               double nb) {
    const double n = na + nb;
    const vd fb = vd_set1(nb / n), w = vd_set1(na * (nb / n));
    for (int k = 0; k < CN_LV; ++k) {
        const vd d = vd_sub(b->mean[k], a->mean[k]);
        const vd m2 = vd_add(a->m2[k], b->m2[k]);
        dst->mean[k] = vd_fmadd(d, fb, a->mean[k]);
        dst->m2[k] = vd_fmadd(vd_mul(d, d), w, m2);
    }
}

/* Collapse all lanes (count n each) into one triple, pairwise: first the
 * accumulator vectors, then the lanes of the last one.  Equal counts make
 * Chan's weights constants (1/2 and n/2): no division. */
static inline cnorm_moments_t lanes_reduce(const lanes_t *l, double n) {
    vd mean[CN_LV], m2[CN_LV];
    for (int k = 0; k < CN_LV; ++k) mean[k] = l->mean[k], m2[k] = l->m2[k];
    const vd half = vd_set1(0.5);
    for (int w = 1; w < CN_LV; w *= 2, n *= 2.0) {
        const vd nh = vd_set1(0.5 * n);
        for (int k = 0; k + w < CN_LV; k += 2 * w) {
            const vd d = vd_sub(mean[k + w], mean[k]);
            mean[k] = vd_fmadd(d, half, mean[k]);
            m2[k] = vd_fmadd(vd_mul(d, d), nh, vd_add(m2[k], m2[k + w]));
        }
    }
    double mu[CN_VD], s[CN_VD];
    vd_store_f64(mu, mean[0]);
    vd_store_f64(s, m2[0]);
    for (int w = 1; w < CN_VD; w *= 2, n *= 2.0)
        for (int i = 0; i + w < CN_VD; i += 2 * w) {
            const double d = mu[i + w] - mu[i];
            mu[i] += 0.5 * d;
            s[i] += s[i + w] + d * d * (0.5 * n);
        }
    cnorm_moments_t r = {n, mu[0], s[0]};
    return r;
}

#define CN_CAT3_(a, b, c) a##_##b##_##c
#define CN_CAT3(a, b, c) CN_CAT3_(a, b, c)
#define CN_FN(name) CN_CAT3(name, SFX, CN_ISA)

#define T float
#define SFX f32
#define CN_F32 1
#define vt vf
#define CN_VT CN_VF
#define vt_set1(a) vf_set1((float)(a))
#define vt_load vf_load
#define vt_store vf_store
#define vt_stream vf_stream
#define vt_sub vf_sub
#define vt_mul vf_mul
#define vt_fmadd vf_fmadd
#define vd_load_t vd_load_f32
#include "leaves_simd.inc"
#undef T
#undef SFX
#undef vt
#undef CN_VT
#undef vt_set1
#undef vt_load
#undef vt_store
#undef vt_stream
#undef vt_sub
#undef vt_mul
#undef vt_fmadd
#undef vd_load_t

#undef CN_F32
#define T double
#define SFX f64
#define CN_F32 0
#define vt vd
#define CN_VT CN_VD
#define vt_set1 vd_set1
#define vt_load vd_load_f64
#define vt_store vd_store_f64
#define vt_stream vd_stream
#define vt_sub vd_sub
#define vt_mul vd_mul
#define vt_fmadd vd_fmadd
#define vd_load_t vd_load_f64
#include "leaves_simd.inc"

#define CN_CAT2_(a, b) a##_##b
#define CN_CAT2(a, b) CN_CAT2_(a, b)
#define CN_LEAVES(sfx)                                                                        \
    .row_stats_##sfx = CN_CAT3(row_stats, sfx, CN_ISA),                                       \
    .col_stats_##sfx = CN_CAT3(col_stats, sfx, CN_ISA),                                       \
    .apply_row_##sfx = CN_CAT3(apply_row, sfx, CN_ISA),                                       \
    .apply_row_affine_##sfx = CN_CAT3(apply_row_affine, sfx, CN_ISA),                         \
    .apply_cols_##sfx = CN_CAT3(apply_cols, sfx, CN_ISA)

#define CN_STR_(a) #a
#define CN_STR(a) CN_STR_(a)

const cnorm_kernels_t CN_CAT2(cnorm_kernels, CN_ISA) = {
    .name = CN_STR(CN_ISA),
    CN_LEAVES(f32),
    CN_LEAVES(f64),
};
