/* cnorm_set_num_threads(n) caps cnorm at min(n, OpenMP's limit) and 0
 * restores the default: after an explicit count, 0 must give back the thread
 * count the process started with (OMP_NUM_THREADS or the core count). */
#include "check.h"

int main(void) {
    const int def = cnorm_get_num_threads();
    printf("OpenMP %d, default threads %d\n", cnorm_has_openmp(), def);
    static const int counts[] = {1, 2, 5};
    for (size_t k = 0; k < sizeof counts / sizeof *counts; ++k) {
        set_ctx("set_num_threads(%d) then set_num_threads(0)", counts[k]);
        CHECK_STATUS(cnorm_set_num_threads(counts[k]), CNORM_OK);
        const int want = counts[k] < def ? counts[k] : def;
        if (cnorm_has_openmp())
            CHECK(cnorm_get_num_threads() == want, "get_num_threads() = %d after set_num_threads(%d), expected %d",
                  cnorm_get_num_threads(), counts[k], want);
        CHECK_STATUS(cnorm_set_num_threads(0), CNORM_OK);
        CHECK(cnorm_get_num_threads() == def, "get_num_threads() = %d, expected the default %d",
              cnorm_get_num_threads(), def);
    }
    return check_report("test_threads_default");
}
