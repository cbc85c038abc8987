#include "roofline.h"

#include <stddef.h>

#include "cnorm/cnorm.h"

/* Same threshold as the kernels (threads.c): small copies stay serial and
 * never enter an OpenMP region (even an inactive one costs a call). */
#define ROOFLINE_BLOCK ((size_t)1 << 14)
#define ROOFLINE_PARALLEL_MIN ((size_t)1 << 15)

static void roofline_blocks(const float *x, float *y, size_t n, float a, float b, ptrdiff_t k) {
    const size_t lo = (size_t)k * ROOFLINE_BLOCK, hi = lo + ROOFLINE_BLOCK < n ? lo + ROOFLINE_BLOCK : n;
    for (size_t i = lo; i < hi; ++i) y[i] = a * x[i] + b;
}

void cnorm_roofline_f32(const float *x, float *y, size_t n, float a, float b) {
    const ptrdiff_t nblocks = (ptrdiff_t)((n + ROOFLINE_BLOCK - 1) / ROOFLINE_BLOCK);
    const int nt = n < ROOFLINE_PARALLEL_MIN ? 1 : cnorm_get_num_threads();
    if (nt > 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (ptrdiff_t k = 0; k < nblocks; ++k) roofline_blocks(x, y, n, a, b, k);
    } else {
        for (ptrdiff_t k = 0; k < nblocks; ++k) roofline_blocks(x, y, n, a, b, k);
    }
}
