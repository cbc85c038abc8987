/* The public header alone, compiled as strict ISO C99 with every warning an
 * error (see CMakeLists.txt): no extensions, no C11, no internal headers. */
#include <cnorm/cnorm.h>
#include <cnorm/cnorm.h> /* include guard */

#include <stdio.h>

int main(void) {
    float x[4] = {1.0f, 2.0f, 3.0f, 4.0f}, y[4];
    cnorm_activation act = CNORM_ACT_NONE;
    cnorm_layout layout = CNORM_NHWC;
    int st = cnorm_layer_norm_f32(x, y, 1, 4, NULL, NULL, 1e-5, NULL, NULL, act);
    (void)layout;
    printf("C99 header: %s, isa %s\n", cnorm_status_string(st), cnorm_isa_name(cnorm_get_isa()));
    return st == CNORM_OK ? 0 : 1;
}
