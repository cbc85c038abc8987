/* Scalar (portable C) leaf kernels: the reference path every SIMD path is
 * tested against, and the fallback on CPUs without a SIMD path. */
#include "activation.h"
#include "half.h"
#include "kernels.h"
#include "recip_table.h"

/* Eight independent Welford lanes hide the add latency and let the compiler
 * use whatever vector width the baseline target has. */
#define SCALAR_LANES 8
#define SCALAR_STEPS 32
#define SCALAR_CHUNK (SCALAR_LANES * SCALAR_STEPS)

#define T float
#define W float
#define SFX f32
#define TO_D(v) ((double)(v))
#define FROM_D(d) ((float)(d))
#include "leaves_scalar.inc" /* row_stats_f32, col_stats_f32, apply_row_f32, apply_cols_f32, apply_cols_params_f32 */
#include "leaves_backward_scalar.inc" /* bwd_row_sums, bwd_row_dx, bwd_cols_params, bwd_col_sums, bwd_cols_dx of this type */
#undef T
#undef W
#undef SFX
#undef TO_D
#undef FROM_D

#define T double
#define W double
#define SFX f64
#define TO_D(v) (v)
#define FROM_D(d) (d)
#include "leaves_scalar.inc" /* row_stats_f64, col_stats_f64, apply_row_f64, apply_cols_f64, apply_cols_params_f64 */
#include "leaves_backward_scalar.inc" /* bwd_row_sums, bwd_row_dx, bwd_cols_params, bwd_col_sums, bwd_cols_dx of this type */
#undef T
#undef W
#undef SFX
#undef TO_D
#undef FROM_D

#define T uint16_t
#define W float
#define SFX f16
#define TO_D(v) ((double)cnorm_f16_to_f32(v))
#define FROM_D(d) cnorm_f32_to_f16((float)(d))
#include "leaves_scalar.inc" /* row_stats_f16, col_stats_f16, apply_row_f16, apply_cols_f16, apply_cols_params_f16 */
#include "leaves_backward_scalar.inc" /* bwd_row_sums, bwd_row_dx, bwd_cols_params, bwd_col_sums, bwd_cols_dx of this type */
#undef SFX
#undef TO_D
#undef FROM_D

#define SFX bf16
#define TO_D(v) ((double)cnorm_bf16_to_f32(v))
#define FROM_D(d) cnorm_f32_to_bf16((float)(d))
#include "leaves_scalar.inc" /* row_stats_bf16, col_stats_bf16, apply_row_bf16, apply_cols_bf16, apply_cols_params_bf16 */
#include "leaves_backward_scalar.inc" /* bwd_row_sums, bwd_row_dx, bwd_cols_params, bwd_col_sums, bwd_cols_dx of this type */
#undef T
#undef W
#undef SFX
#undef TO_D
#undef FROM_D

#define CNORM_LEAVES(sfx)                                                                \
    .row_stats_##sfx = row_stats_##sfx, .row_sumsq_##sfx = row_sumsq_##sfx, .add_row_##sfx = add_row_##sfx, .col_stats_##sfx = col_stats_##sfx, \
    .apply_row_##sfx = apply_row_##sfx, .apply_cols_##sfx = apply_cols_##sfx, \
    .apply_chan_rows_##sfx = apply_chan_rows_##sfx,                                                   \
    .apply_cols_params_##sfx = apply_cols_params_##sfx, .apply_row_q_##sfx = apply_row_q_##sfx,       \
    .apply_cols_q_##sfx = apply_cols_q_##sfx, .bwd_row_sums_##sfx = bwd_row_sums_##sfx,      \
    .bwd_row_dx_##sfx = bwd_row_dx_##sfx, .bwd_cols_params_##sfx = bwd_cols_params_##sfx, \
    .bwd_col_sums_##sfx = bwd_col_sums_##sfx, .bwd_cols_dx_##sfx = bwd_cols_dx_##sfx

/* cnorm_kernels_scalar */
const cnorm_kernels_t cnorm_kernels_scalar = {
    .name = "scalar",
    CNORM_LEAVES(f32),
    CNORM_LEAVES(f64),
    CNORM_LEAVES(f16),
    CNORM_LEAVES(bf16),
};
