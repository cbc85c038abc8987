/* Thread count policy.  Without OpenMP everything runs on the caller. */
#define _POSIX_C_SOURCE 200809L /* pthread_atfork under -std=c99 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "cnorm/cnorm.h"
#include "kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many elements a call stays on the calling thread: waking the
 * OpenMP team costs more than the work saves. */
#ifndef CNORM_PARALLEL_THRESHOLD
#define CNORM_PARALLEL_THRESHOLD ((size_t)1 << 15)
#endif

/* 0: follow OpenMP's nthreads ICV, which OMP_NUM_THREADS and threadpoolctl
 * set.  An explicit count is process-wide (all Python threads see it) and
 * capped by the ICV, so that threadpool_limits() keeps working.  The ICV
 * itself is never changed: it belongs to every OpenMP user in the process. */
static int requested_threads = 0;

/* Fork safety.  libgomp's thread pool does not survive fork(): a child's
 * first parallel region waits forever for workers that exist only in the
 * parent (after any parallel region there, cnorm's or another OpenMP
 * user's such as torch).  So a child handler, registered when the library
 * loads, marks the process; from then on cnorm never opens a parallel
 * region in it and reports one thread.  NumPy-style fork-then-compute
 * (multiprocessing's default on Linux) keeps working, single-threaded. */
static int forked_child = 0;

#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
#include <pthread.h>

static void cnorm_atfork_child(void) { CNORM_STORE(forked_child, 1); }

__attribute__((constructor)) static void cnorm_register_atfork(void) {
    pthread_atfork(NULL, NULL, cnorm_atfork_child);
}

/* Thread creation.  libgomp ends the process (exit status 1, "libgomp:
 * Thread creation failed") when it cannot start a team's threads, e.g. in an
 * address space limited by `ulimit -v`.  So before a thread first asks for a
 * team of nt threads, cnorm starts nt - 1 threads itself, with libgomp's
 * stack size, and joins them; a team that could not start runs on fewer
 * threads (the same results) instead.  Per calling thread, as libgomp keeps
 * a pool per calling thread; a size that failed is not tried again by that
 * thread.  Best effort: memory taken between the probe and libgomp's start
 * can still fail it. */
static __thread int team_started = 1; /* the largest team known to start */
static __thread int team_failed = 0;  /* the smallest team that did not (0: none) */

/* OMP_STACKSIZE (else GOMP_STACKSIZE) as libgomp reads it: a positive
 * number, optionally a B/K/M/G suffix (default K), surrounding blanks;
 * anything else leaves libgomp's default stack (0 here). */
static size_t omp_stacksize_bytes(void) {
    const char *s = getenv("OMP_STACKSIZE");
    if (!s) s = getenv("GOMP_STACKSIZE");
    if (!s) return 0;
    while (*s == ' ' || *s == '\t') ++s;
    if (*s < '0' || *s > '9') return 0;
    errno = 0;
    char *end;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || v == 0) return 0;
    while (*end == ' ' || *end == '\t') ++end;
    unsigned long long unit = 1024;
    switch (*end) {
    case 'b': case 'B': unit = 1, ++end; break;
    case 'k': case 'K': unit = 1024, ++end; break;
    case 'm': case 'M': unit = 1024ull << 10, ++end; break;
    case 'g': case 'G': unit = 1024ull << 20, ++end; break;
    default: break;
    }
    while (*end == ' ' || *end == '\t') ++end;
    if (*end != '\0' || v > (unsigned long long)SIZE_MAX / unit) return 0;
    return (size_t)(v * unit);
}

static void *probe_thread(void *arg) { return arg; }

/* nt - 1 threads started and joined: how large a team could start. */
static int probe_team(int nt) {
    pthread_t *tid = (pthread_t *)calloc((size_t)(nt - 1), sizeof *tid);
    if (!tid) return 1;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        free(tid);
        return 1;
    }
    const size_t stack = omp_stacksize_bytes();
    if (stack) pthread_attr_setstacksize(&attr, stack);
    int started = 0;
    while (started < nt - 1 && pthread_create(&tid[started], &attr, probe_thread, NULL) == 0) ++started;
    for (int i = 0; i < started; ++i) pthread_join(tid[i], NULL);
    pthread_attr_destroy(&attr);
    free(tid);
    return started + 1;
}

static int team_size(int nt) {
    if (nt > team_started && (team_failed == 0 || nt < team_failed)) {
        const int got = probe_team(nt);
        if (got < nt) team_failed = nt;
        if (got > team_started) team_started = got;
    }
    return nt < team_started ? nt : team_started;
}
#else
static int team_size(int nt) { return nt; }
#endif

int cnorm_has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int cnorm_set_num_threads(int n) {
    if (n < 0) return CNORM_ERR_ARG;
    CNORM_STORE(requested_threads, n);
    return CNORM_OK;
}

int cnorm_get_num_threads(void) {
#ifdef _OPENMP
    if (CNORM_LOAD(forked_child)) return 1;
    int icv = omp_get_max_threads();
    int req = CNORM_LOAD(requested_threads);
    return (req > 0 && req < icv) ? req : icv;
#else
    return 1;
#endif
}

int cnorm_threads_for(size_t work) {
#ifdef _OPENMP
    if (work < CNORM_PARALLEL_THRESHOLD || CNORM_LOAD(forked_child) || omp_in_parallel()) return 1;
    return team_size(cnorm_get_num_threads());
#else
    (void)work;
    return 1;
#endif
}
