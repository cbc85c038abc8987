/* pipeline: a small edge-inference normalization pipeline on the cnorm C API.
 *
 *   pipeline [--eps EPS] N C H W input.f32 params.f32 output.f32
 *
 * Reads a (N, C, H, W) float32 tensor and runs, in place:
 *   1. batch norm in eval mode (running statistics) with a fused ReLU,
 *   2. instance norm (group norm with groups == C) with a per-channel affine,
 *   3. layer norm over the last dim W with weight/bias of length W,
 * all with the same eps (default 1e-5, as PyTorch; cnorm itself rejects a
 * negative or non-finite one), then writes the (N, C, H, W) float32
 * result.  In
 * Python the same computation is
 *   cnorm.layer_norm(cnorm.instance_norm(cnorm.batch_norm(x, rm, rv, g, b,
 *       activation="relu"), weight=ig, bias=ib), W, lw, lb)
 *
 * File formats: raw float32 in the machine's byte order (little-endian on
 * x86-64 and AArch64 Linux), C order, no header -- what numpy's
 * `a.astype(np.float32).tofile(path)` writes.  input.f32 holds N*C*H*W
 * values.  params.f32 holds 6*C + 2*W values, in this order:
 *   bn_running_mean[C]  bn_running_var[C]  bn_weight[C]  bn_bias[C]
 *   in_weight[C]        in_bias[C]         ln_weight[W]  ln_bias[W]
 *
 * Exit status: 0 on success, 1 on a file or cnorm error, 2 on bad usage;
 * every failure prints one line naming its cause on stderr.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cnorm/cnorm.h>

static const char *prog = "pipeline";

static void usage(void) {
    fprintf(stderr,
            "usage: %s [--eps EPS] N C H W input.f32 params.f32 output.f32\n"
            "  EPS         added to the variances (default 1e-5)\n"
            "  input.f32   N*C*H*W raw float32 values, NCHW order\n"
            "  params.f32  6*C + 2*W raw float32 values: bn_running_mean[C] bn_running_var[C]\n"
            "              bn_weight[C] bn_bias[C] in_weight[C] in_bias[C] ln_weight[W] ln_bias[W]\n"
            "  output.f32  written: N*C*H*W raw float32 values\n",
            prog);
}

/* A positive decimal size; 0 on anything else. */
static size_t parse_size(const char *s, const char *what) {
    char *end = NULL;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *s == '+' || *end != '\0' || errno == ERANGE || v == 0 || v > SIZE_MAX) {
        fprintf(stderr, "%s: %s must be a positive integer, got '%s'\n", prog, what, s);
        return 0;
    }
    return (size_t)v;
}

/* a * b, or 0 (with a message) if it overflows a float buffer's size. */
static size_t mul_size(size_t a, size_t b) {
    if (b != 0 && a > (SIZE_MAX / sizeof(float)) / b) {
        fprintf(stderr, "%s: the shape is too large\n", prog);
        return 0;
    }
    return a * b;
}

/* Read exactly `count` floats from `path`; nonzero on error (reported). */
static int read_floats(const char *path, float *dst, size_t count) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open '%s': %s\n", prog, path, strerror(errno));
        return 1;
    }
    const size_t got = fread(dst, sizeof(float), count, f);
    int status = 0;
    if (got != count) {
        if (ferror(f))
            fprintf(stderr, "%s: error reading '%s': %s\n", prog, path, strerror(errno));
        else
            fprintf(stderr, "%s: '%s' is too short: expected %zu float32 values (%zu bytes), it has %zu\n", prog, path,
                    count, count * sizeof(float), got);
        status = 1;
    } else if (fgetc(f) != EOF) {
        fprintf(stderr, "%s: '%s' is too long: expected exactly %zu float32 values (%zu bytes)\n", prog, path, count,
                count * sizeof(float));
        status = 1;
    }
    fclose(f);
    return status;
}

static int write_floats(const char *path, const float *src, size_t count) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "%s: cannot create '%s': %s\n", prog, path, strerror(errno));
        return 1;
    }
    const int bad = fwrite(src, sizeof(float), count, f) != count;
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "%s: error writing '%s': %s\n", prog, path, strerror(errno));
        remove(path);
        return 1;
    }
    return 0;
}

static int check(int status, const char *what) {
    if (status != CNORM_OK) fprintf(stderr, "%s: %s failed: %s (%d)\n", prog, what, cnorm_status_string(status), status);
    return status != CNORM_OK;
}

int main(int argc, char **argv) {
    if (argc > 0 && argv[0] && *argv[0]) prog = argv[0];
    double eps = 1e-5;
    if (argc > 2 && strcmp(argv[1], "--eps") == 0) {
        char *end = NULL;
        eps = strtod(argv[2], &end);
        if (*argv[2] == '\0' || *end != '\0') {
            fprintf(stderr, "%s: --eps needs a number, got '%s'\n", prog, argv[2]);
            return 2;
        }
        argc -= 2, argv += 2; /* the value itself is checked by cnorm */
    }
    if (argc != 8) {
        usage();
        return 2;
    }
    const size_t n = parse_size(argv[1], "N"), c = parse_size(argv[2], "C"), h = parse_size(argv[3], "H"),
                 w = parse_size(argv[4], "W");
    if (!n || !c || !h || !w) return 2;
    const size_t hw = mul_size(h, w), nc = mul_size(n, c);
    const size_t total = hw && nc ? mul_size(nc, hw) : 0;
    if (!total) return 2;
    /* c, w <= total, so 6c + 2w <= 8 total cannot overflow once total is below this */
    if (total > (SIZE_MAX / sizeof(double)) / 8) {
        fprintf(stderr, "%s: the shape is too large\n", prog);
        return 2;
    }
    const size_t nparams = 6 * c + 2 * w;

    float *x = (float *)malloc(total * sizeof(float));
    float *params = (float *)malloc(nparams * sizeof(float));
    double *running = (double *)malloc(2 * c * sizeof(double));
    int failed = 1;
    if (!x || !params || !running) {
        fprintf(stderr, "%s: out of memory for %zu values\n", prog, total);
        goto done;
    }
    if (read_floats(argv[5], x, total) || read_floats(argv[6], params, nparams)) goto done;

    /* the parameter file, in its documented order */
    const float *bn_mean = params, *bn_var = params + c, *bn_weight = params + 2 * c, *bn_bias = params + 3 * c;
    const float *in_weight = params + 4 * c, *in_bias = params + 5 * c;
    const float *ln_weight = params + 6 * c, *ln_bias = params + 6 * c + w;
    /* running statistics are double in the C API */
    double *mean_d = running, *var_d = running + c;
    for (size_t i = 0; i < c; ++i) {
        mean_d[i] = bn_mean[i];
        var_d[i] = bn_var[i];
        if (!(bn_var[i] >= 0.0f)) {
            fprintf(stderr, "%s: bn_running_var[%zu] = %g is negative or NaN\n", prog, i, (double)bn_var[i]);
            goto done;
        }
    }

    /* 1. batch norm, eval mode, fused ReLU; 2. instance norm; 3. layer norm over W.  All in place. */
    if (check(cnorm_batch_norm_f32(x, x, n, c, hw, CNORM_NCHW, bn_weight, bn_bias, eps, mean_d, var_d, NULL, NULL,
                                   CNORM_ACT_RELU),
              "batch norm") ||
        check(cnorm_group_norm_f32(x, x, n, c, hw, c, CNORM_NCHW, in_weight, in_bias, eps, NULL, NULL, CNORM_ACT_NONE),
              "instance norm") ||
        check(cnorm_layer_norm_f32(x, x, nc * h, w, ln_weight, ln_bias, eps, NULL, NULL, CNORM_ACT_NONE),
              "layer norm"))
        goto done;

    failed = write_floats(argv[7], x, total);
done:
    free(x);
    free(params);
    free(running);
    return failed;
}
