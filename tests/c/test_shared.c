/* The shared library (the other tests link the static one): every public
 * entry point resolves, and a call works through it. */
#include "check.h"

int main(void) {
    set_ctx("shared library");
    float x[6] = {1, 2, 3, 4, 5, 6}, y[6];
    double mean[2], rstd[2];
    CHECK_STATUS(cnorm_layer_norm_f32(x, y, 2, 3, NULL, NULL, 0.0, mean, rstd, CNORM_ACT_RELU), CNORM_OK);
    CHECK(mean[0] == 2.0 && mean[1] == 5.0, "means %g %g", mean[0], mean[1]);
    CHECK(y[0] == 0.0f && fabs(y[2] - sqrt(1.5)) < 1e-6, "y = %g %g %g", y[0], y[1], y[2]);
    /* take the address of every public function: all must be exported */
    void (*fns[])(void) = {
#define F(name) (void (*)(void))name
        F(cnorm_best_isa), F(cnorm_get_isa), F(cnorm_set_isa), F(cnorm_isa_available), F(cnorm_isa_name),
        F(cnorm_set_num_threads), F(cnorm_get_num_threads), F(cnorm_has_openmp), F(cnorm_status_string),
        F(cnorm_compiler), F(cnorm_layer_norm_f32), F(cnorm_layer_norm_f64), F(cnorm_layer_norm_f16),
        F(cnorm_layer_norm_bf16), F(cnorm_rms_norm_f32), F(cnorm_rms_norm_f64), F(cnorm_rms_norm_f16),
        F(cnorm_rms_norm_bf16), F(cnorm_group_norm_f32), F(cnorm_group_norm_f64), F(cnorm_group_norm_f16),
        F(cnorm_group_norm_bf16), F(cnorm_batch_norm_f32), F(cnorm_batch_norm_f64), F(cnorm_batch_norm_f16),
        F(cnorm_batch_norm_bf16), F(cnorm_moments_f32), F(cnorm_moments_f64), F(cnorm_moments_f16),
        F(cnorm_moments_bf16), F(cnorm_fold_batch_norm_f32), F(cnorm_fold_batch_norm_f64),
#undef F
    };
    for (size_t i = 0; i < sizeof fns / sizeof *fns; ++i) CHECK(fns[i] != NULL, "entry point %zu is NULL", i);
    return check_report("test_shared");
}
