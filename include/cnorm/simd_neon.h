/* Internal: AArch64 NEON vector shim for leaves_simd.inc (baseline there). */
#ifndef CNORM_SIMD_NEON_H
#define CNORM_SIMD_NEON_H
#include <arm_neon.h>

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

#endif
