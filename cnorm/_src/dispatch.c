/* Runtime ISA selection: the best table this build and CPU support is
 * picked on first use (CNORM_ISA in the environment overrides it) and can be
 * forced with cnorm_set_isa() so tests can walk every path. */
#include <stdlib.h>
#include <string.h>

#include "cnorm/cnorm.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

/* XCR0: which register states the OS saves on a context switch. */
static unsigned long long read_xcr0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

/* 0: none, 1: AVX2+FMA+F16C, 2: AVX-512 F/DQ (and those), from CPUID and XCR0. */
static int probe_x86_level(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(osxsave && avx && fma && f16c)) return 0;
    const unsigned long long xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return 0; /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!((b >> 5) & 1)) return 0; /* AVX2 */
    const int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1); /* F, DQ */
    return (avx512 && (xcr0 & 0xe6) == 0xe6) ? 2 : 1;      /* + opmask, ZMM state */
}

/* CPUID traps to the hypervisor in a VM: probe once.  A racing first call
 * stores the same value twice, which is harmless. */
static int x86_level(void) {
    static int level = -1;
    int l = CNORM_LOAD(level);
    if (l < 0) {
        l = probe_x86_level();
        CNORM_STORE(level, l);
    }
    return l;
}
#endif

static const cnorm_kernels_t *table_for(cnorm_isa isa) {
    switch (isa) {
    case CNORM_ISA_SCALAR: return &cnorm_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
    case CNORM_ISA_AVX2: return x86_level() >= 1 ? &cnorm_kernels_avx2 : NULL;
    case CNORM_ISA_AVX512: return x86_level() >= 2 ? &cnorm_kernels_avx512 : NULL;
#endif
#if defined(__aarch64__)
    case CNORM_ISA_NEON: return &cnorm_kernels_neon;
#endif
    default: return NULL;
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

/* -1: not chosen yet.  A concurrent cnorm_set_isa() makes a running call
 * use either table, both correct. */
static int active_isa = -1;

static cnorm_isa initial_isa(void) {
    const char *env = getenv("CNORM_ISA");
    if (env && *env)
        for (int isa = 0; isa <= CNORM_ISA_NEON; ++isa)
            if (strcmp(env, isa_names[isa]) == 0 && cnorm_isa_available((cnorm_isa)isa))
                return (cnorm_isa)isa;
    return cnorm_best_isa();
}

cnorm_isa cnorm_get_isa(void) {
    int isa = CNORM_LOAD(active_isa);
    if (isa < 0) {
        isa = (int)initial_isa();
        CNORM_STORE(active_isa, isa);
    }
    return (cnorm_isa)isa;
}

int cnorm_set_isa(cnorm_isa isa) {
    if (!cnorm_isa_available(isa)) return CNORM_ERR_ISA;
    CNORM_STORE(active_isa, (int)isa);
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
    case CNORM_ERR_ARG: return "an argument is out of range";
    default: return "unknown status";
    }
}

static const char *const activation_names[] = {"none", "relu", "silu", "gelu"};

const char *cnorm_activation_name(int act) {
    return (unsigned)act < sizeof activation_names / sizeof *activation_names ? activation_names[act] : NULL;
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
