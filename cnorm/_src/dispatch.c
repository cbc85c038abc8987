/* Runtime ISA selection: the best table this build and CPU support is
 * picked on first use (CNORM_ISA in the environment overrides it) and can be
 * forced with cnorm_set_isa() so tests can walk every path. */
#include <stdlib.h>
#include <string.h>

#include "cnorm/cnorm.h"
#include "cnorm/kernels.h"

static const cnorm_kernels_t *table_for(cnorm_isa isa) {
    switch (isa) {
    case CNORM_ISA_SCALAR: return &cnorm_kernels_scalar;
    default: return NULL; /* SIMD tables arrive with their kernels */
    }
}

static const char *const isa_names[] = {"scalar", "avx2", "avx512", "neon"};

const char *cnorm_isa_name(cnorm_isa isa) {
    return ((unsigned)isa < sizeof isa_names / sizeof *isa_names) ? isa_names[isa] : "unknown";
}

int cnorm_isa_available(cnorm_isa isa) { return table_for(isa) != NULL; }

cnorm_isa cnorm_best_isa(void) {
    for (int isa = CNORM_ISA_NEON; isa > CNORM_ISA_SCALAR; --isa)
        if (cnorm_isa_available((cnorm_isa)isa)) return (cnorm_isa)isa;
    return CNORM_ISA_SCALAR;
}

/* -1: not chosen yet.  Reads and writes are of one int, so a concurrent
 * cnorm_set_isa() makes a running call use either table, both correct. */
static volatile int active_isa = -1;

static cnorm_isa initial_isa(void) {
    const char *env = getenv("CNORM_ISA");
    if (env && *env)
        for (int isa = 0; isa <= CNORM_ISA_NEON; ++isa)
            if (strcmp(env, isa_names[isa]) == 0 && cnorm_isa_available((cnorm_isa)isa))
                return (cnorm_isa)isa;
    return cnorm_best_isa();
}

cnorm_isa cnorm_get_isa(void) {
    int isa = active_isa;
    if (isa < 0) {
        isa = (int)initial_isa();
        active_isa = isa;
    }
    return (cnorm_isa)isa;
}

int cnorm_set_isa(cnorm_isa isa) {
    if (!cnorm_isa_available(isa)) return CNORM_ERR_ISA;
    active_isa = (int)isa;
    return CNORM_OK;
}

const cnorm_kernels_t *cnorm_active_kernels(void) { return table_for(cnorm_get_isa()); }

const char *cnorm_status_string(int status) {
    switch (status) {
    case CNORM_OK: return "ok";
    case CNORM_ERR_NULL: return "a required pointer is NULL";
    case CNORM_ERR_SIZE: return "a size is zero or the sizes overflow";
    case CNORM_ERR_GROUPS: return "groups must be positive and divide channels";
    case CNORM_ERR_EPS: return "eps must be finite and >= 0";
    case CNORM_ERR_ALLOC: return "out of memory";
    case CNORM_ERR_ISA: return "ISA not available in this build or on this CPU";
    case CNORM_ERR_LAYOUT: return "layout must be CNORM_NCHW or CNORM_NHWC";
    default: return "unknown status";
    }
}

const char *cnorm_compiler(void) {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
    return "msvc";
#else
    return "unknown";
#endif
}
