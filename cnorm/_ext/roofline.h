/* Benchmark helper of the Python extension, not part of libcnorm: y = a*x + b
 * over n floats on cnorm's thread count.  Its time is the memory roofline a
 * normalization (read x once, write y once) is measured against. */
#ifndef CNORM_EXT_ROOFLINE_H
#define CNORM_EXT_ROOFLINE_H
#include <stddef.h>

void cnorm_roofline_f32(const float *x, float *y, size_t n, float a, float b);

#endif
