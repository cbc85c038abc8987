/* Thread count policy.  Without OpenMP everything runs on the caller. */
#define _POSIX_C_SOURCE 200809L /* pthread_atfork under -std=c99 */
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
    return cnorm_get_num_threads();
#else
    (void)work;
    return 1;
#endif
}
