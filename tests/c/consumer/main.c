/* Uses the installed header and library; exits 0 if a layer norm works. */
#include <math.h>
#include <stdio.h>

#include <cnorm/cnorm.h>

int main(void) {
    const float x[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    float y[4];
    const int st = cnorm_layer_norm_f32(x, y, 1, 4, NULL, NULL, 0.0, NULL, NULL, CNORM_ACT_NONE);
    const int ok = st == CNORM_OK && fabsf(y[0] + 1.3416408f) < 1e-5f && fabsf(y[3] - 1.3416408f) < 1e-5f;
    printf("consumer: %s, isa %s, openmp %d, y[0] = %g: %s\n", cnorm_status_string(st),
           cnorm_isa_name(cnorm_get_isa()), cnorm_has_openmp(), y[0], ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
