/* Internal: AVX-512 (F + DQ) vector shim for leaves_simd.inc.
 * Include only from a file compiled for that target (see leaves_avx512.c). */
#ifndef CNORM_SIMD_AVX512_H
#define CNORM_SIMD_AVX512_H
#include <immintrin.h>

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

#endif
