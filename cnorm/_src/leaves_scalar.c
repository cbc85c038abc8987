/* Scalar (portable C) leaf kernels: the reference path every SIMD path is
 * tested against, and the fallback on CPUs without a SIMD path. */
#include "cnorm/kernels.h"
#include "cnorm/recip_table.h"

/* Eight independent Welford lanes hide the add latency and let the compiler
 * use whatever vector width the baseline target has. */
#define SCALAR_LANES 8
#define SCALAR_STEPS 32
#define SCALAR_CHUNK (SCALAR_LANES * SCALAR_STEPS)

#define T float
#define SFX f32
#include "leaves_scalar.inc"
#undef T
#undef SFX

#define T double
#define SFX f64
#include "leaves_scalar.inc"
#undef T
#undef SFX

#define CNORM_LEAVES(sfx)                                                                \
    .row_stats_##sfx = row_stats_##sfx, .col_stats_##sfx = col_stats_##sfx,              \
    .apply_row_##sfx = apply_row_##sfx, .apply_row_affine_##sfx = apply_row_affine_##sfx, \
    .apply_cols_##sfx = apply_cols_##sfx

const cnorm_kernels_t cnorm_kernels_scalar = {
    .name = "scalar",
    CNORM_LEAVES(f32),
    CNORM_LEAVES(f64),
};
