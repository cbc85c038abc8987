/* AVX2 + FMA + F16C leaf kernels.  Compiled into every x86-64 build through a
 * target pragma; dispatch.c uses them only when CPUID and XCR0 allow. */
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#include "simd/avx2.h"
#define CN_ISA avx2
#include "leaves_simd.h"

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
#else
typedef int cnorm_no_avx2_here; /* ISO C: a translation unit needs a declaration */
#endif
