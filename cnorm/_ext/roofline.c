#include "roofline.h"

#include <stddef.h>

#include "cnorm/cnorm.h"

/* Same threshold as the kernels (threads.c): small copies stay serial. */
#define ROOFLINE_BLOCK ((size_t)1 << 14)
#define ROOFLINE_PARALLEL_MIN ((size_t)1 << 15)

void cnorm_roofline_f32(const float *x, float *y, size_t n, float a, float b) {
    const ptrdiff_t nblocks = (ptrdiff_t)((n + ROOFLINE_BLOCK - 1) / ROOFLINE_BLOCK);
    const int nt = n < ROOFLINE_PARALLEL_MIN ? 1 : cnorm_get_num_threads();
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (ptrdiff_t k = 0; k < nblocks; ++k) {
        const size_t lo = (size_t)k * ROOFLINE_BLOCK, hi = lo + ROOFLINE_BLOCK < n ? lo + ROOFLINE_BLOCK : n;
        for (size_t i = lo; i < hi; ++i) y[i] = a * x[i] + b;
    }
}
