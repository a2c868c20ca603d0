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
 * With -t N (N > 1) it also measures what N cores can give the same
 * products, the ceiling of a trainer's N threads against its 1:
 *  - corun: N threads each run the whole batch's products at once, single-
 *    threaded, reading the same inputs and weights and writing outputs and
 *    gradients of their own: N times the work, so that each core runs the
 *    1-thread shapes while the other cores load the memory and the shared
 *    cache as a trainer's threads do. Its aggregate samples/s over the
 *    1-thread floor is the most N threads could gain on the GEMMs however
 *    the work is split and with no synchronisation.
 *  - OpenBLAS's own N threads on the same products, one after another.
 *  - the config's optimizer's update of all the model's parameters, at 1
 *    thread and split over N (elementwise and memory-bound: it gains less).
 *
 * Usage: bench_gemm [-t N] CONFIG ROUNDS STEPS [key=value ...] (the
 * config's batch; key=value as pstrain's --set)
 * Prints one JSON line: batch, flops_per_sample, gemm_us_per_sample (the
 * fastest round), floor_samples_per_s, gflops, peak_gflops; with -t N also
 * threads, corun_samples_per_s, openblas_threads_samples_per_s,
 * update_ms_1, update_ms_n (fastest rounds). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config/config.h"
#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "common/nn/params.h"
#include "common/util/pool.h"

#define PEAK_N 2048       /* the large product's side */
#define PEAK_REPS 3
#define INIT_SCALE 1e-3f
#define MAX_THREADS 64
#define UPDATE_STEP 10     /* the optimizer's step count t (bias corrections) */

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

/* The fastest of `rounds` rounds of `steps` steps, seconds a step. */
static double time_steps(gemm_layer_t *l, int L, int B, int rounds, int steps)
{
    double best = 1e30;
    step(l, L, B); /* warm-up */
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (int s = 0; s < steps; s++)
            step(l, L, B);
        const double dt = (now() - t0) / steps;
        if (dt < best)
            best = dt;
    }
    return best;
}

/* ---- the ceiling of N threads (-t N) ------------------------------------ */

/* The products run by every worker at once. */
typedef struct {
    gemm_layer_t *l[MAX_THREADS]; /* worker w's layers: l[0]'s inputs and weights */
    int L, B, steps;
} corun_t;

/* The optimizer's update of n parameters shared among `workers`. */
typedef struct {
    const optim_params_t *op;
    float *param, *grad, *state;
    size_t n;
    int workers;
} update_t;

/* Worker w's copy of the products, `steps` times. */
static void corun_work(void *ctx, int w)
{
    corun_t *c = ctx;
    for (int s = 0; s < c->steps; s++)
        step(c->l[w], c->L, c->B);
}

/* Worker w's share of the update of all c->n parameters (c->workers
 * shares). */
static void update_work(void *ctx, int w)
{
    update_t *c = ctx;
    size_t b, e;
    pool_share(c->n, w, c->workers, &b, &e);
    optim_update_slice(c->op, c->param + b, c->grad + b, c->state + b, c->n, e - b, UPDATE_STEP,
                       c->op->lr);
}

/* The fastest of `rounds` updates of n parameters by op on the first
 * `workers` workers of pool (1: the caller alone), milliseconds. */
static double update_ms(pool_t *pool, int workers, const optim_params_t *op, size_t n, int rounds)
{
    update_t c = {.op = op, .n = n, .workers = workers};
    c.param = filled(n);
    c.grad = filled(n);
    c.state = calloc(n * (size_t)optim_slots(op), sizeof *c.state);
    if (!c.state)
        die("out of memory", NULL);
    optim_state_init(op, c.state, n);
    double best = 1e30;
    for (int r = 0; r <= rounds; r++) { /* round 0: warm-up (first touch of the pages) */
        double t0 = now();
        if (workers == 1)
            update_work(&c, 0);
        else
            pool_run(pool, update_work, &c);
        const double dt = now() - t0;
        if (r > 0 && dt < best)
            best = dt;
    }
    free(c.param);
    free(c.grad);
    free(c.state);
    return best * 1e3;
}

/* Layers for another worker: l's inputs and weights, outputs and gradients
 * of its own. */
static gemm_layer_t *layers_sharing(const gemm_layer_t *l, int L, int B)
{
    gemm_layer_t *c = malloc((size_t)L * sizeof *c);
    if (!c)
        die("out of memory", NULL);
    for (int i = 0; i < L; i++) {
        c[i] = l[i];
        c[i].y = filled((size_t)B * (size_t)l[i].out);
        c[i].g = filled((size_t)l[i].in * (size_t)l[i].out);
        c[i].dx = filled((size_t)B * (size_t)l[i].in);
    }
    return c;
}

/* Frees what each layer of l[0, L) writes (outputs, gradients); its
 * inputs and weights may be another's (layers_sharing). */
static void layers_free_outputs(gemm_layer_t *l, int L)
{
    for (int i = 0; i < L; i++) {
        free(l[i].y);
        free(l[i].g);
        free(l[i].dx);
    }
}

/* N workers each running the products at once: the aggregate samples/s of
 * the fastest round. */
static double corun_samples_per_s(pool_t *pool, gemm_layer_t *l, int L, int B, int rounds,
                                  int steps)
{
    const int n = pool_size(pool);
    corun_t c = {.L = L, .B = B, .steps = 1};
    c.l[0] = l;
    for (int w = 1; w < n; w++)
        c.l[w] = layers_sharing(l, L, B);
    pool_run(pool, corun_work, &c); /* warm-up */
    c.steps = steps;
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        pool_run(pool, corun_work, &c);
        const double dt = now() - t0;
        if (dt < best)
            best = dt;
    }
    for (int w = 1; w < n; w++) {
        layers_free_outputs(c.l[w], L);
        free(c.l[w]);
    }
    return (double)n * B * steps / best;
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

/* With n > 1: the ceiling's fields (corun, OpenBLAS's threads, the update
 * at 1 and n threads) after the line's others, printed by the caller. */
static void print_ceiling(const job_config_t *cfg, const model_t *m, gemm_layer_t *l, int L,
                          int n, int rounds, int steps)
{
    err_t err;
    pool_t *pool = pool_new(n, &err);
    if (!pool)
        die("threads", &err);
    const int B = cfg->train.batch;
    const double corun = corun_samples_per_s(pool, l, L, B, rounds, steps);
    openblas_set_num_threads(n);
    const double blas = B / time_steps(l, L, B, rounds, steps);
    openblas_set_num_threads(1);
    optim_params_t op;
    optim_params_from_config(&op, cfg);
    const size_t np = model_n_params(m);
    const double u1 = update_ms(pool, 1, &op, np, rounds), un = update_ms(pool, n, &op, np, rounds);
    printf(", \"threads\": %d, \"corun_samples_per_s\": %.0f, "
           "\"openblas_threads_samples_per_s\": %.0f, \"optimizer\": \"%s\", \"params\": %zu, "
           "\"update_ms_1\": %.2f, \"update_ms_n\": %.2f", n, corun, blas, op.kind->name, np,
           u1, un);
    pool_destroy(&pool);
}

int main(int argc, char **argv)
{
    int n = 1;
    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        n = atoi(argv[2]);
        argc -= 2;
        argv += 2;
    }
    if (argc < 4 || n < 1 || n > MAX_THREADS) {
        fprintf(stderr, "usage: bench_gemm [-t N (1..%d)] CONFIG ROUNDS STEPS [key=value ...]\n",
                MAX_THREADS);
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
    const double best = time_steps(l, L, B, rounds, steps) / B; /* a sample */
    printf("{\"config\": \"%s\", \"batch\": %d, \"dense_layers\": %d, \"flops_per_sample\": %.0f, "
           "\"gemm_us_per_sample\": %.3f, \"floor_samples_per_s\": %.0f, \"gflops\": %.1f, "
           "\"peak_gflops\": %.1f",
           argv[1], B, L, flops, best * 1e6, 1.0 / best, flops / best / 1e9, peak_gflops(rounds));
    if (n > 1)
        print_ceiling(&cfg, m, l, L, n, rounds, steps);
    printf("}\n");
    layers_free_outputs(l, L);
    for (int i = 0; i < L; i++) {
        free(l[i].x);
        free(l[i].w);
    }
    model_destroy(&m);
    return 0;
}
