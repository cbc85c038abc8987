/* Runtime configuration and ISA selection.
 *
 *   test_isa               consistency of best/get/set/available/name
 *   test_isa EXPECTED      ... and the ISA chosen at start-up is EXPECTED
 *                          (ctest: "neon" on aarch64 builds, and the
 *                          CNORM_ISA environment override elsewhere)
 *
 * The start-up choice is read before anything else calls cnorm_set_isa. */
#include "check.h"

static int isa_by_name(const char *name) {
    for (int isa = 0; isa <= (int)CNORM_ISA_NEON; ++isa)
        if (strcmp(cnorm_isa_name((cnorm_isa)isa), name) == 0) return isa;
    return -1;
}

int main(int argc, char **argv) {
    const cnorm_isa initial = cnorm_get_isa(), best = cnorm_best_isa();
    printf("initial ISA %s, best %s, available:", cnorm_isa_name(initial), cnorm_isa_name(best));
    for (int isa = 0; isa <= (int)CNORM_ISA_NEON; ++isa)
        if (cnorm_isa_available((cnorm_isa)isa)) printf(" %s", cnorm_isa_name((cnorm_isa)isa));
    printf("\n");

    set_ctx("start-up");
    if (argc > 1) {
        const int want = isa_by_name(argv[1]);
        CHECK(want >= 0, "unknown ISA name '%s' on the command line", argv[1]);
        CHECK((int)initial == want, "ISA chosen at start-up is %s, expected %s", cnorm_isa_name(initial), argv[1]);
    } else {
        const char *env = getenv("CNORM_ISA");
        if (!env || !*env) CHECK(initial == best, "start-up ISA %s is not the best, %s", cnorm_isa_name(initial),
                                 cnorm_isa_name(best));
    }

    set_ctx("consistency");
    CHECK(cnorm_isa_available(CNORM_ISA_SCALAR), "the scalar path must always be available");
    CHECK(cnorm_isa_available(best), "best ISA %s not available", cnorm_isa_name(best));
    for (int isa = (int)best + 1; isa <= (int)CNORM_ISA_NEON; ++isa)
        CHECK(!cnorm_isa_available((cnorm_isa)isa), "%s available but best is %s", cnorm_isa_name((cnorm_isa)isa),
              cnorm_isa_name(best));
    static const char *const names[] = {"scalar", "avx2", "avx512", "neon"};
    for (int isa = 0; isa <= (int)CNORM_ISA_NEON; ++isa)
        CHECK(strcmp(cnorm_isa_name((cnorm_isa)isa), names[isa]) == 0, "isa_name(%d) = %s", isa,
              cnorm_isa_name((cnorm_isa)isa));
#if defined(__aarch64__)
    CHECK(cnorm_isa_available(CNORM_ISA_NEON), "aarch64 build without the NEON path");
    CHECK(!cnorm_isa_available(CNORM_ISA_AVX2) && !cnorm_isa_available(CNORM_ISA_AVX512), "x86 path on aarch64");
#elif defined(__x86_64__) || defined(_M_X64)
    CHECK(!cnorm_isa_available(CNORM_ISA_NEON), "NEON path on x86");
#if defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CHECK(cnorm_isa_available(CNORM_ISA_AVX2), "CPU has AVX2+FMA but the AVX2 path is not available");
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        CHECK(cnorm_isa_available(CNORM_ISA_AVX512), "CPU has AVX-512 F/DQ but the AVX-512 path is not available");
#endif
#endif
    /* set and get round-trip on every available path */
    FOR_EACH_ISA(isa) {
        set_ctx("set_isa");
        CHECK(cnorm_get_isa() == (cnorm_isa)isa, "get_isa after set_isa(%d)", isa);
        float x[5] = {1, 2, 3, 4, 5}, y[5];
        CHECK_STATUS(cnorm_layer_norm_f32(x, y, 1, 5, NULL, NULL, 0.0, NULL, NULL, CNORM_ACT_NONE), CNORM_OK);
        CHECK(fabs(y[2]) < 1e-6 && fabs(y[4] - sqrt(2.0)) < 1e-5, "layer_norm([1..5]) = [%g %g %g %g %g]", y[0], y[1],
              y[2], y[3], y[4]);
    }
    CHECK(cnorm_get_isa() == best, "FOR_EACH_ISA did not restore the best ISA");

    set_ctx("threads");
    const int def = cnorm_get_num_threads();
    CHECK(def >= 1, "default threads %d", def);
    CHECK_STATUS(cnorm_set_num_threads(1), CNORM_OK);
    CHECK(cnorm_get_num_threads() == 1, "threads after set(1): %d", cnorm_get_num_threads());
    CHECK_STATUS(cnorm_set_num_threads(0), CNORM_OK);
    if (!cnorm_has_openmp()) CHECK(cnorm_get_num_threads() == 1, "no OpenMP but %d threads", cnorm_get_num_threads());
    CHECK(cnorm_compiler() && *cnorm_compiler(), "cnorm_compiler() empty");
    return check_report("test_isa");
}
