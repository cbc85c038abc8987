/* Internal: AArch64 NEON vector shim for leaves_simd.inc (baseline there). */
#ifndef CNORM_SIMD_NEON_H
#define CNORM_SIMD_NEON_H
#include <arm_neon.h>
#include <stdint.h>

#define CN_VD 2
#define CN_VF 4
/* float accumulator vectors per Welford step: enough to hide the
 * sub -> FMA latency chain, few enough to stay in registers */
#define CN_ACCF 4

typedef float64x2_t vd;
typedef float32x4_t vf;

static inline vd vd_set1(double a) { return vdupq_n_f64(a); }
static inline vd vd_add(vd a, vd b) { return vaddq_f64(a, b); }
static inline vd vd_sub(vd a, vd b) { return vsubq_f64(a, b); }
static inline vd vd_mul(vd a, vd b) { return vmulq_f64(a, b); }
static inline vd vd_fmadd(vd a, vd b, vd c) { return vfmaq_f64(c, a, b); }
static inline vd vd_load_f64(const double *p) { return vld1q_f64(p); }
static inline vd vd_load_f32(const float *p) { return vcvt_f64_f32(vld1_f32(p)); }
static inline void vd_store_f64(double *p, vd a) { vst1q_f64(p, a); }

static inline vf vf_set1(float a) { return vdupq_n_f32(a); }
static inline vf vf_sub(vf a, vf b) { return vsubq_f32(a, b); }
static inline vf vf_mul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
static inline vf vf_load(const float *p) { return vld1q_f32(p); }
static inline void vf_store(float *p, vf a) { vst1q_f32(p, a); }

/* no non-temporal store on NEON: plain stores */
#define CN_ALIGN 16
static inline void vf_stream(float *p, vf a) { vst1q_f32(p, a); }
static inline void vd_stream(double *p, vd a) { vst1q_f64(p, a); }

/* the low / high half of a float vector, widened to double */
static inline vd vf_lo_vd(vf a) { return vcvt_f64_f32(vget_low_f32(a)); }
static inline vd vf_hi_vd(vf a) { return vcvt_high_f64_f32(a); }

static inline vf vf_add(vf a, vf b) { return vaddq_f32(a, b); }
static inline vf vf_div(vf a, vf b) { return vdivq_f32(a, b); }
static inline vf vf_min(vf a, vf b) { return vminq_f32(a, b); }
static inline vf vf_max(vf a, vf b) { return vmaxq_f32(a, b); }
static inline vf vf_abs(vf a) { return vabsq_f32(a); }
static inline vf vf_relu(vf a) { return vmaxq_f32(vdupq_n_f32(0.0f), a); } /* NaN propagates */
static inline vf vf_round(vf a) { return vrndnq_f32(a); }
/* 2^n for integral n in [-126, 127], built in the exponent field */
static inline vf vf_pow2i(vf n) {
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23));
}
/* v < 0 ? a : b */
static inline vf vf_select_neg(vf v, vf a, vf b) { return vbslq_f32(vcltq_f32(v, vdupq_n_f32(0.0f)), a, b); }

/* float16 (NEON conversions) and bfloat16 (bit shifts, round to nearest even) */
static inline vf vf_load_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline void vf_store_f16(uint16_t *p, vf a) { vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(a))); }
static inline vf vf_load_bf16(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
static inline void vf_store_bf16(uint16_t *p, vf a) {
    const uint32x4_t x = vreinterpretq_u32_f32(a), hi = vshrq_n_u32(x, 16);
    const uint32x4_t lsb = vandq_u32(hi, vdupq_n_u32(1));
    uint32x4_t r = vshrq_n_u32(vaddq_u32(vaddq_u32(x, vdupq_n_u32(0x7fff)), lsb), 16);
    r = vbslq_u32(vceqq_f32(a, a), r, vorrq_u32(hi, vdupq_n_u32(0x40)));
    vst1_u16(p, vmovn_u32(r));
}

/* int8/uint8 codes (the leaves' quantized store): clamp to [lo, hi] with
 * NaN giving lo (the comparisons fail; FMAX would propagate it), then
 * CN_VF bytes of the integral values in range */
static inline vf vf_clamp(vf v, vf lo, vf hi) {
    v = vbslq_f32(vcgtq_f32(v, lo), v, lo);
    return vbslq_f32(vcltq_f32(v, hi), v, hi);
}
static inline void vf_store_u8x4(uint8_t *p, uint8x8_t b) { /* p need not be aligned */
    uint8_t t[8];
    vst1_u8(t, b);
    for (int k = 0; k < 4; ++k) p[k] = t[k];
}
static inline void vf_store_i8(uint8_t *p, vf v) {
    const int16x4_t h = vqmovn_s32(vcvtnq_s32_f32(v));
    vf_store_u8x4(p, vreinterpret_u8_s8(vqmovn_s16(vcombine_s16(h, h))));
}
static inline void vf_store_u8(uint8_t *p, vf v) {
    const int16x4_t h = vqmovn_s32(vcvtnq_s32_f32(v));
    vf_store_u8x4(p, vqmovun_s16(vcombine_s16(h, h)));
}

#endif
