#include "roofline.h"

#include "engine.h"

void cnorm_roofline_f32(const float *x, float *y, size_t n, float a, float b) {
    const size_t block = (size_t)1 << 14;
    const size_t nblocks = (n + block - 1) / block;
    const int nt = cnorm_threads_for(n);
    CNORM_PARALLEL_FOR(nt, k, nblocks, {
        const size_t lo = (size_t)k * block, hi = lo + block < n ? lo + block : n;
        for (size_t i = lo; i < hi; ++i) y[i] = a * x[i] + b;
    });
}
