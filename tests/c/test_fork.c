/* Fork safety: after a parallel call in the parent, a forked child's calls
 * finish (on one thread, cnorm_get_num_threads() == 1) with the parent's
 * results, and the parent keeps its threads.  A child that hangs in
 * OpenMP's pool is killed after a timeout and fails the test. */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid, kill, nanosleep under -std=c99 */
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define ROWS 512
#define COLS 4096 /* 2 Mi elements: parallel in the parent */

static int child_run(const float *x, const float *want, float *y) {
    if (cnorm_layer_norm_f32(x, y, ROWS, COLS, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE) != CNORM_OK) return 3;
    if (memcmp(y, want, sizeof(float) * ROWS * COLS) != 0) return 4;
    return cnorm_get_num_threads() == 1 ? 0 : 2;
}

int main(void) {
    set_ctx("fork");
    const size_t n = (size_t)ROWS * COLS;
    float *x = (float *)malloc(n * sizeof *x), *y = (float *)malloc(n * sizeof *y), *z = (float *)malloc(n * sizeof *z);
    CHECK(x && y && z, "out of memory");
    rng_seed(11);
    for (size_t i = 0; i < n; ++i) x[i] = (float)rng_normal();
    const int parent_threads = cnorm_get_num_threads();
    CHECK_STATUS(cnorm_layer_norm_f32(x, y, ROWS, COLS, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE), CNORM_OK);
    const pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) _exit(child_run(x, y, z));
    int status = 0, done = 0;
    for (int waited = 0; waited < 600 && !done; ++waited) { /* 60 s */
        done = waitpid(pid, &status, WNOHANG) == pid;
        if (!done) {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CHECK(done, "the forked child hung in its first cnorm call");
    CHECK(!done || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
          "child failed: exit %d (2: threads != 1, 3: error status, 4: result differs)",
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CHECK(cnorm_get_num_threads() == parent_threads, "the parent lost its threads: %d, was %d",
          cnorm_get_num_threads(), parent_threads);
    CHECK_STATUS(cnorm_layer_norm_f32(x, z, ROWS, COLS, NULL, NULL, 1e-5, NULL, NULL, CNORM_ACT_NONE), CNORM_OK);
    CHECK(memcmp(y, z, n * sizeof *y) == 0, "the parent's second call differs");
    free(x), free(y), free(z);
    return check_report("test_fork");
}
