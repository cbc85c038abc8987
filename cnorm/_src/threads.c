/* Thread count policy.  Without OpenMP everything runs on the caller. */
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
    int icv = omp_get_max_threads();
    int req = CNORM_LOAD(requested_threads);
    return (req > 0 && req < icv) ? req : icv;
#else
    return 1;
#endif
}

int cnorm_threads_for(size_t work) {
#ifdef _OPENMP
    if (work < CNORM_PARALLEL_THRESHOLD || omp_in_parallel()) return 1;
    return cnorm_get_num_threads();
#else
    (void)work;
    return 1;
#endif
}
