/* Benchmark helper, not part of the C API: y = a*x + b over n floats, with
 * the same OpenMP threads as the kernels.  Its time is the memory roofline
 * a normalization (read x once, write y once) is measured against. */
#ifndef CNORM_ROOFLINE_H
#define CNORM_ROOFLINE_H
#include <stddef.h>

void cnorm_roofline_f32(const float *x, float *y, size_t n, float a, float b);

#endif
