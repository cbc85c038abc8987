/* AArch64 NEON leaf kernels: NEON is baseline there, no target pragma. */
#if defined(__aarch64__)
#include "simd/neon.h"
#define CN_ISA neon
#include "leaves_simd.h"
#else
typedef int cnorm_no_neon_here; /* ISO C: a translation unit needs a declaration */
#endif
