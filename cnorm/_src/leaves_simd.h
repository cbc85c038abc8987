/* Internal: the SIMD leaf kernels, written once against a vector shim
 * (simd/<isa>.h) and instantiated for every storage type.
 *
 * A file per ISA sets the target, includes its shim, defines CN_ISA and
 * includes this header, which defines cnorm_kernels_<CN_ISA>.
 */
#include <stdint.h>

#include "activation.h"
#include "half.h"
#include "kernels.h"
#include "recip_table.h"

/* A Welford step of a row reads CN_STEP values into CN_LV double lane
 * vectors (CN_ROWF float vectors for float data): independent chains, as
 * many as the registers hold, since a row in cache is bound by the latency
 * of the step's sub -> FMA -> sub -> FMA chain; a chunk is CN_STEPS steps.
 * Column tiles are CN_COLV vectors wide. */
#ifndef CN_ROWF
#define CN_ROWF CN_ACCF
#endif
#define CN_LV (2 * CN_ROWF)
#define CN_COLV (2 * CN_ACCF)
#define CN_STEP (CN_LV * CN_VD)
#define CN_STEPS 16
/* Cascade depth of one leaf call: n <= CNORM_ROW_BLOCK, so at most
 * CN_CHUNKS chunks, whose binary counter reaches level log2(CN_CHUNKS). */
#define CN_CHUNKS (CNORM_ROW_BLOCK / (CN_STEP * CN_STEPS))
#define CN_LEVELS (CN_CHUNKS <= 64 ? 7 : CN_CHUNKS <= 128 ? 8 : 9)
typedef char cn_levels_fit[CN_CHUNKS <= 256 && (CNORM_ROW_BLOCK % (CN_STEP * CN_STEPS)) == 0 ? 1 : -1];
/* Rows of CN_STEP up to this many values take short_row_stats' two passes
 * (in-process A/B, AVX2, rows of 49-255 floats: 1.2-1.8x; shorter rows and
 * rows of 400-1500 were as fast or faster with the chunks). */
#define CN_SHORT_ROW (8 * CN_STEP)
/* Rows shorter than this never stream (the aligning head and tail are
 * scalar).  Streamed once the output passes CNORM_STREAM_BYTES: in-process
 * A/B on a Zen 5 (AVX-512), LN/RMS of 8192 rows of 512-1001 floats and
 * 16384 of 256, and the LN backward, 1 and 2 threads, 1.04-1.8x against a bound of 1024 (set on
 * a Zen 4, where rows this short were faster without). */
#define CN_STREAM_MIN 256
/* Rows up to this many columns are applied as one flat stream. */
#define CN_FLAT_COLS 512

/* The engine's step and merge (welford.h) on this ISA's vectors. */
CNORM_DEFINE_WELFORD_STEP(welford_vf, vf, vf_sub, vf_fmadd)                     /* welford_vf */
CNORM_DEFINE_WELFORD_STEP(welford_vd, vd, vd_sub, vd_fmadd)                     /* welford_vd */
CNORM_DEFINE_CHAN_MERGE(chan_vd, vd, vd_add, vd_sub, vd_mul, vd_fmadd, vd_set1) /* chan_vd */

/* CN_LV double vectors of lanes, each lane a partial of n values (all lanes
 * of a chunk share the count): what one chunk leaves, in registers. */
typedef struct {
    vd mean[CN_LV], m2[CN_LV];
    double n;
} lanes_t;

/* One vector of lane partials (CN_VD lanes of n values each): a chunk's
 * lanes merged pairwise, as the cascade keeps them.  Merging a chunk's
 * lanes before it is pushed (not after the cascade) keeps each level one
 * vector pair: the whole cascade takes 1.4 KiB at most (AVX-512). */
typedef struct {
    vd mean, m2;
    double n;
} vpart_t;

static inline void vpart_merge(vpart_t *dst, const vpart_t *a, const vpart_t *b, const void *ctx) {
    (void)ctx;
    const cnorm_chan_weights_t c = cnorm_chan_weights(a->n, b->n);
    chan_vd(a->mean, a->m2, b->mean, b->m2, c.fb, c.w, &dst->mean, &dst->m2);
    dst->n = c.n;
}

static inline void vpart_copy(vpart_t *dst, const vpart_t *src, const void *ctx) {
    (void)ctx;
    dst->mean = src->mean, dst->m2 = src->m2, dst->n = src->n;
}

/* The chunks of one row leaf call. */
CNORM_DEFINE_CASCADE(vpart_cascade, vpart_t, CN_LEVELS, vpart_merge, vpart_copy)
/* vpart_cascade_t, vpart_cascade_init, vpart_cascade_push, vpart_cascade_result */

/* Merge `count` (a power of 2) lane vectors of n values each pairwise into
 * mean[0]/m2[0]; returns the per-lane count after. */
static inline double vd_merge_pairwise(vd *mean, vd *m2, int count, double n) {
    CNORM_UNROLL
    for (int w = 1; w < count; w *= 2) {
        const cnorm_chan_weights_t c = cnorm_chan_weights_equal(n);
        CNORM_UNROLL
        for (int k = 0; k + w < count; k += 2 * w) chan_vd(mean[k], m2[k], mean[k + w], m2[k + w], c.fb, c.w, &mean[k], &m2[k]);
        n = c.n;
    }
    return n;
}

/* The lanes of one vector (n values each) as one triple, pairwise. */
static inline cnorm_moments_t vd_reduce(vd mean, vd m2, double n) {
    double mu[CN_VD], s[CN_VD];
    vd_store_f64(mu, mean);
    vd_store_f64(s, m2);
    CNORM_UNROLL
    for (int w = 1; w < CN_VD; w *= 2) {
        const cnorm_chan_weights_t c = cnorm_chan_weights_equal(n);
        CNORM_UNROLL
        for (int i = 0; i + w < CN_VD; i += 2 * w) cnorm_chan_d(mu[i], s[i], mu[i + w], s[i + w], c.fb, c.w, &mu[i], &s[i]);
        n = c.n;
    }
    cnorm_moments_t r = {n, mu[0], s[0]};
    return r;
}

/* A chunk's lanes merged pairwise into one vector of partials. */
static inline vpart_t lanes_merge_all(lanes_t *l) {
    vpart_t p;
    p.n = vd_merge_pairwise(l->mean, l->m2, CN_LV, l->n);
    p.mean = l->mean[0], p.m2 = l->m2[0];
    return p;
}

/* ---- activations on float vectors (double uses the scalar ones) ---------- */

/* exp(x) in float: x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts for an
 * exact reduction), a degree-6 polynomial for e^r (Cephes' expf), times 2^n. */
static inline vf vf_exp(vf x) {
    x = vf_min(vf_max(x, vf_set1(-87.3f)), vf_set1(88.3f));
    const vf n = vf_round(vf_mul(x, vf_set1(1.44269504f)));
    vf r = vf_fmadd(n, vf_set1(-0.693359375f), x);
    r = vf_fmadd(n, vf_set1(2.12194440e-4f), r);
    vf p = vf_set1(1.9875691500e-4f);
    p = vf_fmadd(p, r, vf_set1(1.3981999507e-3f));
    p = vf_fmadd(p, r, vf_set1(8.3334519073e-3f));
    p = vf_fmadd(p, r, vf_set1(4.1665795894e-2f));
    p = vf_fmadd(p, r, vf_set1(1.6666665459e-1f));
    p = vf_fmadd(p, r, vf_set1(5.0000001201e-1f));
    p = vf_fmadd(vf_mul(p, r), r, vf_add(r, vf_set1(1.0f)));
    return vf_mul(p, vf_pow2i(n));
}

static inline vf vf_silu(vf v) { return vf_div(v, vf_add(vf_set1(1.0f), vf_exp(vf_sub(vf_set1(0.0f), v)))); }

/* gelu(v) = v/2 (1 + erf(z)), z = v/sqrt2.  erfc(|z|) = q from Abramowitz &
 * Stegun 7.1.26 (|error| < 1.5e-7); 1 + erf(z) is q for z < 0 and 2 - q
 * otherwise, so the negative side never cancels. */
static inline vf vf_one_plus_erf(vf v) {
    const vf z = vf_mul(v, vf_set1(0.70710678f)), a = vf_abs(z);
    const vf t = vf_div(vf_set1(1.0f), vf_fmadd(a, vf_set1(0.3275911f), vf_set1(1.0f)));
    vf p = vf_set1(1.061405429f);
    p = vf_fmadd(p, t, vf_set1(-1.453152027f));
    p = vf_fmadd(p, t, vf_set1(1.421413741f));
    p = vf_fmadd(p, t, vf_set1(-0.284496736f));
    p = vf_fmadd(p, t, vf_set1(0.254829592f));
    const vf q = vf_mul(vf_mul(p, t), vf_exp(vf_sub(vf_set1(0.0f), vf_mul(a, a))));
    return vf_select_neg(z, q, vf_sub(vf_set1(2.0f), q));
}

static inline vf vf_gelu(vf v) { return vf_mul(vf_mul(vf_set1(0.5f), v), vf_one_plus_erf(v)); }

CNORM_ALWAYS_INLINE vf vf_act(vf v, int act) {
    switch (act) {
    case CNORM_ACT_RELU: return vf_relu(v);
    case CNORM_ACT_SILU: return vf_silu(v);
    case CNORM_ACT_GELU: return vf_gelu(v);
    default: return v;
    }
}

/* g * act'(z) (cnorm_act_backward_f's rules: relu passes g where z > 0) */
CNORM_ALWAYS_INLINE vf vf_act_backward(vf z, vf g, int act) {
    const vf one = vf_set1(1.0f);
    switch (act) {
    case CNORM_ACT_RELU: return vf_select_neg(vf_sub(vf_set1(0.0f), z), g, vf_set1(0.0f));
    case CNORM_ACT_SILU: {
        const vf s = vf_div(one, vf_add(one, vf_exp(vf_sub(vf_set1(0.0f), z))));
        return vf_mul(g, vf_mul(s, vf_fmadd(z, vf_sub(one, s), one)));
    }
    case CNORM_ACT_GELU: {
        const vf phi = vf_mul(vf_exp(vf_mul(vf_mul(z, z), vf_set1(-0.5f))), vf_set1(0.39894228f));
        return vf_mul(g, vf_fmadd(z, phi, vf_mul(vf_set1(0.5f), vf_one_plus_erf(z))));
    }
    default: return g;
    }
}

CNORM_ALWAYS_INLINE vd vd_act_backward(vd z, vd g, int act) {
    double tz[CN_VD], tg[CN_VD];
    if (act == CNORM_ACT_NONE) return g;
    vd_store_f64(tz, z);
    vd_store_f64(tg, g);
    for (int i = 0; i < CN_VD; ++i) tg[i] = cnorm_act_backward_d(tz[i], tg[i], act);
    return vd_load_f64(tg);
}

CNORM_ALWAYS_INLINE vd vd_act(vd v, int act) {
    double t[CN_VD];
    if (act == CNORM_ACT_NONE) return v;
    vd_store_f64(t, v);
    for (int i = 0; i < CN_VD; ++i) t[i] = cnorm_act_d(t[i], act);
    return vd_load_f64(t);
}

#define CN_CAT3_(a, b, c) a##_##b##_##c
#define CN_CAT3(a, b, c) CN_CAT3_(a, b, c)
#define CN_FN(name) CN_CAT3(name, SFX, CN_ISA)

/* An instantiation defines: T (storage), W (weights), CT and vc (compute
 * scalar and vector), CN_VC (its width), vc_* ops (vc_loadp loads a vector
 * of parameters of type CT), LDC/STC/STREAMC (load, store, non-temporal
 * store of T through vc), TOC/FROMC (scalar conversions), CN_CAN_STREAM,
 * CN_F32 (float lanes for statistics), and CN_V_ACT/CN_S_ACT (the vector
 * and scalar activation). */
#define CN_F32 1
#define CT float
#define vc vf
#define CN_VC CN_VF
#define W float
#define vc_set1(a) vf_set1((float)(a))
#define vc_sub vf_sub
#define vc_mul vf_mul
#define vc_fmadd vf_fmadd
#define vc_loadp vf_load
#define CN_V_ACT(v, act) vf_act(v, act)
#define CN_S_ACT(e, act) cnorm_act_f(e, act)
#define vc_add vf_add
#define vc_storep vf_store
#define CN_V_ACT_BWD(z, g, act) vf_act_backward(z, g, act)
#define CN_S_ACT_BWD(z, g, act) cnorm_act_backward_f(z, g, act)

#define T float
#define SFX f32
#define LDC vf_load
#define STC vf_store
#define STREAMC vf_stream
#define TOC(v) (v)
#define FROMC(c) (c)
#define CN_CAN_STREAM 1
#include "leaves_simd.inc" /* row_stats_f32_<isa>, col_stats_f32_<isa>, apply_row_f32_<isa>, apply_cols_f32_<isa>, apply_cols_params_f32_<isa> */
#include "leaves_backward_simd.inc" /* bwd_row_sums, bwd_row_dx, bwd_cols_params, bwd_col_sums, bwd_cols_dx of this type */
#undef T
#undef SFX
#undef LDC
#undef STC
#undef STREAMC
#undef TOC
#undef FROMC
#undef CN_CAN_STREAM

#define T uint16_t
#define SFX f16
#define LDC vf_load_f16
#define STC vf_store_f16
#define STREAMC vf_store_f16
#define TOC(v) cnorm_f16_to_f32(v)
#define FROMC(c) cnorm_f32_to_f16(c)
#define CN_CAN_STREAM 0
#include "leaves_simd.inc" /* row_stats_f16_<isa>, col_stats_f16_<isa>, apply_row_f16_<isa>, apply_cols_f16_<isa>,
                             apply_cols_params_f16_<isa> */
#include "leaves_backward_simd.inc" /* bwd_row_sums, bwd_row_dx, bwd_cols_params, bwd_col_sums, bwd_cols_dx of this type */
#undef SFX
#undef LDC
#undef STC
#undef STREAMC
#undef TOC
#undef FROMC

#define SFX bf16
#define LDC vf_load_bf16
#define STC vf_store_bf16
#define STREAMC vf_store_bf16
#define TOC(v) cnorm_bf16_to_f32(v)
#define FROMC(c) cnorm_f32_to_bf16(c)
#include "leaves_simd.inc" /* row_stats_bf16_<isa>, col_stats_bf16_<isa>, apply_row_bf16_<isa>, apply_cols_bf16_<isa>,
                             apply_cols_params_bf16_<isa> */
#include "leaves_backward_simd.inc" /* bwd_row_sums, bwd_row_dx, bwd_cols_params, bwd_col_sums, bwd_cols_dx of this type */
#undef T
#undef SFX
#undef LDC
#undef STC
#undef STREAMC
#undef TOC
#undef FROMC
#undef CN_CAN_STREAM

#undef CN_F32
#undef CT
#undef vc
#undef CN_VC
#undef W
#undef vc_set1
#undef vc_sub
#undef vc_mul
#undef vc_fmadd
#undef vc_loadp
#undef CN_V_ACT
#undef CN_S_ACT
#undef vc_add
#undef vc_storep
#undef CN_V_ACT_BWD
#undef CN_S_ACT_BWD

#define CN_F32 0
#define CT double
#define vc vd
#define CN_VC CN_VD
#define W double
#define vc_set1(a) vd_set1((double)(a))
#define vc_sub vd_sub
#define vc_mul vd_mul
#define vc_fmadd vd_fmadd
#define vc_loadp vd_load_f64
#define CN_V_ACT(v, act) vd_act(v, act)
#define CN_S_ACT(e, act) cnorm_act_d(e, act)
#define vc_add vd_add
#define vc_storep vd_store_f64
#define CN_V_ACT_BWD(z, g, act) vd_act_backward(z, g, act)
#define CN_S_ACT_BWD(z, g, act) cnorm_act_backward_d(z, g, act)
#define T double
#define SFX f64
#define LDC vd_load_f64
#define STC vd_store_f64
#define STREAMC vd_stream
#define TOC(v) (v)
#define FROMC(c) (c)
#define CN_CAN_STREAM 1
#include "leaves_simd.inc" /* row_stats_f64_<isa>, col_stats_f64_<isa>, apply_row_f64_<isa>, apply_cols_f64_<isa>,
                             apply_cols_params_f64_<isa> */
#include "leaves_backward_simd.inc" /* bwd_row_sums, bwd_row_dx, bwd_cols_params, bwd_col_sums, bwd_cols_dx of this type */

#define CN_CAT2_(a, b) a##_##b
#define CN_CAT2(a, b) CN_CAT2_(a, b)
#define CN_LEAVES(sfx)                                                                        \
    .row_stats_##sfx = CN_CAT3(row_stats, sfx, CN_ISA),                                       \
    .add_row_##sfx = CN_CAT3(add_row, sfx, CN_ISA),                                           \
    .row_sumsq_##sfx = CN_CAT3(row_sumsq, sfx, CN_ISA),                                       \
    .col_stats_##sfx = CN_CAT3(col_stats, sfx, CN_ISA),                                       \
    .apply_row_##sfx = CN_CAT3(apply_row, sfx, CN_ISA),                                       \
    .apply_cols_##sfx = CN_CAT3(apply_cols, sfx, CN_ISA),                                   \
    .apply_chan_rows_##sfx = CN_CAT3(apply_chan_rows, sfx, CN_ISA),                         \
    .apply_cols_params_##sfx = CN_CAT3(apply_cols_params, sfx, CN_ISA),                       \
    .apply_row_q_##sfx = CN_CAT3(apply_row_q, sfx, CN_ISA),                                   \
    .apply_cols_q_##sfx = CN_CAT3(apply_cols_q, sfx, CN_ISA),                                 \
    .bwd_row_sums_##sfx = CN_CAT3(bwd_row_sums, sfx, CN_ISA),                                 \
    .bwd_row_dx_##sfx = CN_CAT3(bwd_row_dx, sfx, CN_ISA),                                     \
    .bwd_cols_params_##sfx = CN_CAT3(bwd_cols_params, sfx, CN_ISA),                           \
    .bwd_col_sums_##sfx = CN_CAT3(bwd_col_sums, sfx, CN_ISA),                                 \
    .bwd_cols_dx_##sfx = CN_CAT3(bwd_cols_dx, sfx, CN_ISA)

#define CN_STR_(a) #a
#define CN_STR(a) CN_STR_(a)

/* cnorm_kernels_avx2, cnorm_kernels_avx512, cnorm_kernels_neon */
const cnorm_kernels_t CN_CAT2(cnorm_kernels, CN_ISA) = {
    .name = CN_STR(CN_ISA),
    CN_LEAVES(f32),
    CN_LEAVES(f64),
    CN_LEAVES(f16),
    CN_LEAVES(bf16),
};
