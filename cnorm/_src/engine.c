/* The public C API: the drivers of engine_rows.inc and engine_cols.inc and
 * the entry points of engine_api.inc, instantiated once per storage type.
 *
 * CN_FLOAT_RANGE: the storage spans float's exponent range, so the float
 * apply can overflow near its ends (see cnorm_apply_table).
 * CN_TO_D(v): a stored value as double (the few places the engine itself
 * reads x; the leaves do the rest). */
#include <stdlib.h>

#include "engine.h"
#include "half.h"

#define CN_CAT_(a, b) a##_##b
#define CN_CAT(a, b) CN_CAT_(a, b)
#define CN_FN(name) CN_CAT(name, SFX)
#define LEAF(name) (K->CN_CAT(name, SFX))

#define T float
#define W float
#define SFX f32
#define CN_FLOAT_RANGE 1
#define CN_TO_D(v) ((double)(v))
#include "engine_rows.inc"
#include "engine_cols.inc"
#include "engine_api.inc" /* cnorm_layer_norm_f32, cnorm_add_layer_norm_f32, cnorm_add_rms_norm_f32,
                             cnorm_rms_norm_f32, cnorm_group_norm_f32, cnorm_batch_norm_f32,
                             cnorm_moments_f32, cnorm_moments_split_f32, cnorm_moments_partial_f32 */
#include "engine_backward.inc" /* cnorm_layer_norm_backward_f32, cnorm_rms_norm_backward_f32,
                                 cnorm_group_norm_backward_f32, cnorm_batch_norm_backward_f32 */
#include "fold.inc"       /* cnorm_fold_batch_norm_f32 */
#undef T
#undef W
#undef SFX
#undef CN_FLOAT_RANGE

#define T double
#define W double
#define SFX f64
#define CN_FLOAT_RANGE 0
#include "engine_rows.inc"
#include "engine_cols.inc"
#include "engine_api.inc" /* cnorm_layer_norm_f64, cnorm_add_layer_norm_f64, cnorm_add_rms_norm_f64,
                             cnorm_rms_norm_f64, cnorm_group_norm_f64, cnorm_batch_norm_f64,
                             cnorm_moments_f64, cnorm_moments_split_f64, cnorm_moments_partial_f64 */
#include "engine_backward.inc" /* cnorm_layer_norm_backward_f64, cnorm_rms_norm_backward_f64,
                                 cnorm_group_norm_backward_f64, cnorm_batch_norm_backward_f64 */
#include "fold.inc"       /* cnorm_fold_batch_norm_f64 */
#undef T
#undef W
#undef SFX
#undef CN_FLOAT_RANGE

/* Half storage: float weights, float compute, double statistics. */
#define T uint16_t
#define W float
#define SFX f16
#define CN_FLOAT_RANGE 0
#undef CN_TO_D
#define CN_TO_D(v) ((double)cnorm_f16_to_f32(v))
#include "engine_rows.inc"
#include "engine_cols.inc"
#include "engine_api.inc" /* cnorm_layer_norm_f16, cnorm_add_layer_norm_f16, cnorm_add_rms_norm_f16,
                             cnorm_rms_norm_f16, cnorm_group_norm_f16, cnorm_batch_norm_f16,
                             cnorm_moments_f16, cnorm_moments_split_f16, cnorm_moments_partial_f16 */
#include "engine_backward.inc" /* cnorm_layer_norm_backward_f16, cnorm_rms_norm_backward_f16,
                                 cnorm_group_norm_backward_f16, cnorm_batch_norm_backward_f16 */
#undef SFX
#undef CN_FLOAT_RANGE

#define SFX bf16
#define CN_FLOAT_RANGE 1
#undef CN_TO_D
#define CN_TO_D(v) ((double)cnorm_bf16_to_f32(v))
#include "engine_rows.inc"
#include "engine_cols.inc"
#include "engine_api.inc" /* cnorm_layer_norm_bf16, cnorm_add_layer_norm_bf16, cnorm_add_rms_norm_bf16,
                             cnorm_rms_norm_bf16, cnorm_group_norm_bf16, cnorm_batch_norm_bf16,
                             cnorm_moments_bf16, cnorm_moments_split_bf16, cnorm_moments_partial_bf16 */
#include "engine_backward.inc" /* cnorm_layer_norm_backward_bf16, cnorm_rms_norm_backward_bf16,
                                 cnorm_group_norm_backward_bf16, cnorm_batch_norm_backward_bf16 */
#undef T
#undef W
#undef SFX
#undef CN_FLOAT_RANGE
#undef CN_TO_D
