/* Internal: AVX2 + FMA + F16C vector shim for leaves_simd.inc.
 * Include only from a file compiled for that target (see leaves_avx2.c). */
#ifndef CNORM_SIMD_AVX2_H
#define CNORM_SIMD_AVX2_H
#include <immintrin.h>
#include <stdint.h>

#define CN_VD 4
#define CN_VF 8
/* float accumulator vectors per Welford step: enough to hide the
 * sub -> FMA latency chain, few enough to stay in registers */
#define CN_ACCF 2
/* float vectors per row Welford step: four chains of three registers */
#define CN_ROWF 4

typedef __m256d vd;
typedef __m256 vf;

static inline vd vd_set1(double a) { return _mm256_set1_pd(a); }
static inline vd vd_add(vd a, vd b) { return _mm256_add_pd(a, b); }
static inline vd vd_sub(vd a, vd b) { return _mm256_sub_pd(a, b); }
static inline vd vd_mul(vd a, vd b) { return _mm256_mul_pd(a, b); }
static inline vd vd_fmadd(vd a, vd b, vd c) { return _mm256_fmadd_pd(a, b, c); }
static inline vd vd_load_f64(const double *p) { return _mm256_loadu_pd(p); }
static inline vd vd_load_f32(const float *p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
static inline void vd_store_f64(double *p, vd a) { _mm256_storeu_pd(p, a); }

static inline vf vf_set1(float a) { return _mm256_set1_ps(a); }
static inline vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vf_fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_store(float *p, vf a) { _mm256_storeu_ps(p, a); }

/* non-temporal stores (p aligned to CN_ALIGN) */
#define CN_ALIGN 32
static inline void vf_stream(float *p, vf a) { _mm256_stream_ps(p, a); }
static inline void vd_stream(double *p, vd a) { _mm256_stream_pd(p, a); }

/* the low / high half of a float vector, widened to double */
static inline vd vf_lo_vd(vf a) { return _mm256_cvtps_pd(_mm256_castps256_ps128(a)); }
static inline vd vf_hi_vd(vf a) { return _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)); }

static inline vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vf_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
/* max with NaN as the second operand returns it: relu keeps NaN */
static inline vf vf_relu(vf a) { return _mm256_max_ps(_mm256_setzero_ps(), a); }
static inline vf vf_round(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* 2^n for integral n in [-126, 127], built in the exponent field */
static inline vf vf_pow2i(vf n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
/* v < 0 ? a : b */
static inline vf vf_select_neg(vf v, vf a, vf b) {
    return _mm256_blendv_ps(b, a, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
}

/* float16 (F16C) and bfloat16 (bit shifts, round to nearest even) */
static inline vf vf_load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline void vf_store_f16(uint16_t *p, vf a) {
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
static inline vf vf_load_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
static inline void vf_store_bf16(uint16_t *p, vf a) {
    const __m256i x = _mm256_castps_si256(a), hi = _mm256_srli_epi32(x, 16);
    const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i nan = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    r = _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)));
    /* 32 -> 16 bits: pack works per 128-bit lane, the permute restores order */
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xd8);
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(packed));
}

/* int8/uint8 codes (the leaves' quantized store): clamp to [lo, hi] with
 * NaN giving lo (MAXPS returns its second operand when one is NaN), then
 * CN_VF bytes of the integral values in range */
static inline vf vf_clamp(vf v, vf lo, vf hi) { return _mm256_min_ps(_mm256_max_ps(v, lo), hi); }
static inline __m128i vf_to_i16(vf v) {
    const __m256i i = _mm256_cvtps_epi32(v);
    return _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
}
static inline void vf_store_i8(uint8_t *p, vf v) { _mm_storel_epi64((__m128i *)p, _mm_packs_epi16(vf_to_i16(v), vf_to_i16(v))); }
static inline void vf_store_u8(uint8_t *p, vf v) { _mm_storel_epi64((__m128i *)p, _mm_packus_epi16(vf_to_i16(v), vf_to_i16(v))); }

#endif
