/* bench_gemm.c - the GEMM floor of a model: its dense layers' matrix
 * products alone, as pstrain calls them (common/nn/dense.c: forward
 * Y = X W^T, backward dW += dY^T X and dX = dY W, row-major, OpenBLAS), at
 * the config's batch on one thread, timed with nothing else around them.
 * PyTorch's nn.Linear makes the same three calls through the same OpenBLAS,
 * so no trainer of the model on this core can run faster than this floor
 * unless its GEMMs do: the floor over a reference's samples/s is the most
 * any implementation can beat that reference by. Beside it, the rate of one
 * large sgemm (2048^3) on the same thread: OpenBLAS's peak on this core,
 * which says how near the model's small products already come to it.
 *
 * The first dense layer's dX is left out (a model's input needs no
 * gradient unless embeddings ride along with it, and then pstrain computes
 * it too): leaving it out can only lower the floor.
 *
 * Usage: bench_gemm CONFIG ROUNDS STEPS [key=value ...] (the config's
 * batch; key=value as pstrain's --set)
 * Prints one JSON line: batch, flops_per_sample, gemm_us_per_sample (the
 * fastest round), floor_samples_per_s, gflops, peak_gflops. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config/config.h"
#include "common/nn/model.h"
#include "common/nn/params.h"

#define PEAK_N 2048       /* the large product's side */
#define PEAK_REPS 3
#define INIT_SCALE 1e-3f

typedef struct {
    int in, out;          /* weight [out][in] */
    float *x, *w, *y, *g, *dx;
} gemm_layer_t;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, const err_t *err)
{
    fprintf(stderr, "bench_gemm: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

static float *filled(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p)
        die("out of memory", NULL);
    for (size_t i = 0; i < n; i++)
        p[i] = INIT_SCALE * (float)(i % 13);
    return p;
}

/* The fully connected layers of model m with buffers for batch B; returns
 * how many, at most max. They are found by their weight, as the layer table
 * (common/nn/registry.c) is the only place that may name a kind: a 2-D
 * "*.weight" [out][in] with Glorot's initialisation (an embedding table's is
 * uniform by rows, an LSTM's matrices are named w_ih and w_hh). */
static int matrix_layers(const model_t *m, int B, gemm_layer_t *l, int max)
{
    const param_table_t *t = model_params(m);
    int n = 0;
    for (int i = 0; i < t->n && n < max; i++) {
        const param_spec_t *s = &t->t[i];
        const char *dot = strrchr(s->name, '.');
        if (s->ndim != 2 || s->init != INIT_GLOROT_UNIFORM || !dot || strcmp(dot, ".weight") != 0)
            continue;
        gemm_layer_t *d = &l[n++];
        d->out = s->shape[0];
        d->in = s->shape[1];
        d->x = filled((size_t)B * (size_t)d->in);
        d->dx = filled((size_t)B * (size_t)d->in);
        d->w = filled((size_t)d->in * (size_t)d->out);
        d->g = filled((size_t)d->in * (size_t)d->out);
        d->y = filled((size_t)B * (size_t)d->out);
    }
    return n;
}

/* One training step's products over layers l[0, L) at batch B. */
static void step(gemm_layer_t *l, int L, int B)
{
    for (int i = 0; i < L; i++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, l[i].out, l[i].in, 1.0f, l[i].x,
                    l[i].in, l[i].w, l[i].in, 0.0f, l[i].y, l[i].out);
    for (int i = L - 1; i >= 0; i--) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l[i].out, l[i].in, B, 1.0f, l[i].y,
                    l[i].out, l[i].x, l[i].in, 1.0f, l[i].g, l[i].in);
        if (i > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, l[i].in, l[i].out, 1.0f,
                        l[i].y, l[i].out, l[i].w, l[i].in, 0.0f, l[i].dx, l[i].in);
    }
}

/* OpenBLAS's rate on one large square product, GFLOP/s (best of rounds). */
static double peak_gflops(int rounds)
{
    const size_t n = PEAK_N;
    float *a = filled(n * n), *b = filled(n * n), *c = filled(n * n);
    double best = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (int k = 0; k < PEAK_REPS; k++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, PEAK_N, PEAK_N, PEAK_N, 1.0f, a,
                        PEAK_N, b, PEAK_N, 0.0f, c, PEAK_N);
        double g = PEAK_REPS * 2.0 * (double)(n * n * n) / (now() - t0) / 1e9;
        if (g > best)
            best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_gemm CONFIG ROUNDS STEPS [key=value ...]\n");
        return 2;
    }
    const int rounds = atoi(argv[2]), steps = atoi(argv[3]);
    if (rounds < 1 || steps < 1)
        die("ROUNDS and STEPS must be positive", NULL);
    static job_config_t cfg;
    err_t err;
    openblas_set_num_threads(1);
    if (config_load(&cfg, argv[1], (const char *const *)argv + 4, argc - 4, 0, &err) != 0)
        die("config", &err);
    const int B = cfg.train.batch;
    model_t *m = model_new(&cfg, B, &err);
    if (!m)
        die("model", &err);
    gemm_layer_t l[PARAMS_MAX];
    const int L = matrix_layers(m, B, l, PARAMS_MAX);
    if (L == 0)
        die("the model has no fully connected layers", NULL);
    double flops = 0; /* per sample */
    for (int i = 0; i < L; i++)
        flops += 2.0 * l[i].in * l[i].out * (i > 0 ? 3 : 2);
    double best = 1e30;
    step(l, L, B); /* warm-up */
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (int s = 0; s < steps; s++)
            step(l, L, B);
        double per_sample = (now() - t0) / steps / B;
        if (per_sample < best)
            best = per_sample;
    }
    printf("{\"config\": \"%s\", \"batch\": %d, \"dense_layers\": %d, \"flops_per_sample\": %.0f, "
           "\"gemm_us_per_sample\": %.3f, \"floor_samples_per_s\": %.0f, \"gflops\": %.1f, "
           "\"peak_gflops\": %.1f}\n",
           argv[1], B, L, flops, best * 1e6, 1.0 / best, flops / best / 1e9, peak_gflops(rounds));
    for (int i = 0; i < L; i++) {
        free(l[i].x);
        free(l[i].dx);
        free(l[i].w);
        free(l[i].g);
        free(l[i].y);
    }
    model_destroy(&m);
    return 0;
}
