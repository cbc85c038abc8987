/* Internal: AVX-512 (F + DQ) vector shim for leaves_simd.inc.
 * Include only from a file compiled for that target (see leaves_avx512.c). */
#ifndef CNORM_SIMD_AVX512_H
#define CNORM_SIMD_AVX512_H
#include <immintrin.h>
#include <stdint.h>

#define CN_VD 8  /* doubles per vd */
#define CN_VF 16 /* floats per vf */
/* float accumulator vectors per Welford step: enough to hide the
 * sub -> FMA latency chain, few enough to stay in registers */
#define CN_ACCF 4

typedef __m512d vd;
typedef __m512 vf;

static inline vd vd_set1(double a) { return _mm512_set1_pd(a); }
static inline vd vd_add(vd a, vd b) { return _mm512_add_pd(a, b); }
static inline vd vd_sub(vd a, vd b) { return _mm512_sub_pd(a, b); }
static inline vd vd_mul(vd a, vd b) { return _mm512_mul_pd(a, b); }
static inline vd vd_fmadd(vd a, vd b, vd c) { return _mm512_fmadd_pd(a, b, c); }
static inline vd vd_load_f64(const double *p) { return _mm512_loadu_pd(p); }
static inline vd vd_load_f32(const float *p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
static inline void vd_store_f64(double *p, vd a) { _mm512_storeu_pd(p, a); }

static inline vf vf_set1(float a) { return _mm512_set1_ps(a); }
static inline vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void vf_store(float *p, vf a) { _mm512_storeu_ps(p, a); }

/* non-temporal stores (p aligned to CN_ALIGN) */
#define CN_ALIGN 64
static inline void vf_stream(float *p, vf a) { _mm512_stream_ps(p, a); }
static inline void vd_stream(double *p, vd a) { _mm512_stream_pd(p, a); }

/* the low / high half of a float vector, widened to double */
static inline vd vf_lo_vd(vf a) { return _mm512_cvtps_pd(_mm512_castps512_ps256(a)); }
static inline vd vf_hi_vd(vf a) { return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))); }

static inline vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vf_abs(vf a) { return _mm512_abs_ps(a); }
/* max with NaN as the second operand returns it: relu keeps NaN */
static inline vf vf_relu(vf a) { return _mm512_max_ps(_mm512_setzero_ps(), a); }
static inline vf vf_round(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* 2^n for integral n in [-126, 127] */
static inline vf vf_pow2i(vf n) { return _mm512_scalef_ps(_mm512_set1_ps(1.0f), n); }
/* v < 0 ? a : b */
static inline vf vf_select_neg(vf v, vf a, vf b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), b, a);
}

/* float16 (F16C in AVX-512F) and bfloat16 (bit shifts, round to nearest even) */
static inline vf vf_load_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
static inline void vf_store_f16(uint16_t *p, vf a) {
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline vf vf_load_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
static inline void vf_store_bf16(uint16_t *p, vf a) {
    const __m512i x = _mm512_castps_si512(a), hi = _mm512_srli_epi32(x, 16);
    const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), hi, _mm512_set1_epi32(0x40));
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(r));
}

/* int8/uint8 codes (the leaves' quantized store): clamp to [lo, hi] with
 * NaN giving lo (VMAXPS returns its second operand when one is NaN), then
 * CN_VF bytes of the integral values in range */
static inline vf vf_clamp(vf v, vf lo, vf hi) { return _mm512_min_ps(_mm512_max_ps(v, lo), hi); }
static inline void vf_store_i8(uint8_t *p, vf v) { _mm_storeu_si128((__m128i *)p, _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v))); }
static inline void vf_store_u8(uint8_t *p, vf v) { _mm_storeu_si128((__m128i *)p, _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(v))); }

#endif
