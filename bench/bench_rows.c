/* bench_rows.c - the row store (common/nn/rows.h) under a sparse training
 * step: pull + push of 4,096 unique ids (Zipf-ish over the table, as click
 * logs' categorical features are) of dim 16 in a store of 2.4M rows, for
 * each row optimizer, against copying the same bytes: a contiguous memcpy
 * and a gather + scatter by id from a flat 2.4M x 16 array. Reports rows/s
 * (rows pulled plus rows pushed per second of this process's CPU time, so
 * that other jobs on the machine do not stretch it; ids/s is half of it,
 * each id being pulled and pushed once a step), the median of 5 rounds, and the
 * store's bytes per row against the project's memory goal
 * (1.5 x rows x (dim + state) x 4 bytes + 256 MiB a server).
 * Usage: bench_rows [ROWS [ROUNDS]] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/nn/rows.h"
#include "common/util/rng.h"

#define DIM 16
#define BATCH 4096
#define N_BATCHES 64      /* distinct batches, cycled */
#define STEPS 200         /* pull + push steps per round */
#define ROUNDS_DEFAULT 5
#define ROWS_DEFAULT 2400000ull
#define ZIPF_MULT 2654435761ull /* spreads the hot ranks over the id space */
#define GOAL_CONST (256.0 * 1024 * 1024)

/* Seconds on clock c. */
static double clock_s(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* The CPU time of this (single-threaded) process: what the timed loops
 * take on a core of their own, which other jobs on a shared machine do not
 * stretch as they stretch the clock (they take turns on the CPUs). */
static double cpu_now(void)
{
    return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* N_BATCHES batches of BATCH unique ids in [0, rows): rank r drawn as
 * rows^u - 1 for u uniform (density ~ 1 / rank, Zipf with s = 1), then
 * spread by a multiplication (a bijection when gcd(ZIPF_MULT, rows) = 1). */
static uint64_t *make_batches(uint64_t rows)
{
    uint64_t *ids = malloc(sizeof *ids * N_BATCHES * BATCH);
    char *seen = calloc(rows, 1);
    if (!ids || !seen) {
        free(ids);
        free(seen);
        return NULL;
    }
    uint64_t c = 0;
    for (int b = 0; b < N_BATCHES; b++) {
        uint64_t *out = ids + (size_t)b * BATCH;
        size_t n = 0;
        while (n < BATCH) {
            double u = rng_uniform(7, 0x42454e43ull, c++);
            uint64_t rank = (uint64_t)pow((double)rows, u) - 1;
            uint64_t id = (rank % rows) * ZIPF_MULT % rows;
            if (!seen[id]) {
                seen[id] = 1;
                out[n++] = id;
            }
        }
        for (size_t i = 0; i < n; i++)
            seen[out[i]] = 0;
    }
    free(seen);
    return ids;
}

/* One optimizer: fills a store with all rows, then times STEPS pull + push
 * steps per round. Returns the median rows/s (rows pulled + pushed). */
static double bench_optimizer(const char *name, uint64_t rows, int rounds, const uint64_t *ids,
                              float *vals, const float *grads)
{
    optim_params_t op = {.kind = optim_find(name), .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999,
                         .eps = 1e-8, .initial_accumulator = 0.0};
    rows_table_t t = {.id = 0, .dim = DIM, .rows = rows};
    rows_opts_t o = {.seed = 1, .optim = &op};
    err_t err = {{0}};
    rows_t *s = rows_new(&t, 1, &o, &err);
    uint64_t *all = malloc(sizeof *all * BATCH);
    if (!s || !all) {
        fprintf(stderr, "bench_rows: %s\n", s ? "out of memory" : err.msg);
        exit(1);
    }
    double t0 = now();
    for (uint64_t b = 0; b < rows; b += BATCH) {
        size_t n = rows - b < BATCH ? (size_t)(rows - b) : BATCH;
        for (size_t i = 0; i < n; i++)
            all[i] = b + i;
        if (rows_pull(s, 0, all, n, vals, &err) != 0) {
            fprintf(stderr, "bench_rows: %s\n", err.msg);
            exit(1);
        }
    }
    double fill = now() - t0;
    double rate[16];
    long step = 0;
    for (int r = 0; r < rounds; r++) {
        t0 = cpu_now();
        for (int k = 0; k < STEPS; k++, step++) {
            const uint64_t *b = ids + (size_t)(step % N_BATCHES) * BATCH;
            if (rows_pull(s, 0, b, BATCH, vals, &err) != 0 ||
                rows_push(s, 0, b, BATCH, grads, step + 1, 0.01, &err) != 0) {
                fprintf(stderr, "bench_rows: %s\n", err.msg);
                exit(1);
            }
        }
        rate[r] = 2.0 * STEPS * BATCH / (cpu_now() - t0);
    }
    qsort(rate, (size_t)rounds, sizeof *rate, cmp);
    size_t state = rows_state_len(s, 0);
    double per_row = (double)rows_bytes(s) / (double)rows_count(s);
    double goal = 1.5 * (double)(DIM + state) * 4 + GOAL_CONST / (double)rows;
    printf("%-16s %12.0f %10.0f %9zu %10.1f %9.1f %12.1f %7.1fs\n", name, rate[rounds / 2],
           rate[rounds / 2] / 2, state, per_row, (double)(DIM + state) * 4, goal, fill);
    rows_destroy(&s);
    free(all);
    return rate[rounds / 2];
}

/* The reference: the same bytes copied, contiguous (memcpy) and by id
 * (gather on pull, scatter on push) in a flat rows x DIM array. */
static void bench_copy(uint64_t rows, int rounds, const uint64_t *ids, float *vals,
                       const float *grads)
{
    float *flat = calloc(rows * DIM, sizeof *flat), *src = malloc(sizeof *src * BATCH * DIM);
    if (!flat || !src) {
        fprintf(stderr, "bench_rows: out of memory\n");
        exit(1);
    }
    const size_t bytes = (size_t)BATCH * DIM * sizeof(float);
    memset(src, 1, bytes);
    double rate_m[16], rate_g[16];
    long step = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = cpu_now();
        for (int k = 0; k < STEPS; k++) {
            memcpy(vals, src, bytes);
            memcpy(src, grads, bytes);
            __asm__ volatile("" ::: "memory"); /* keep the copies */
        }
        rate_m[r] = 2.0 * STEPS * BATCH / (cpu_now() - t0);
        t0 = cpu_now();
        for (int k = 0; k < STEPS; k++, step++) {
            const uint64_t *b = ids + (size_t)(step % N_BATCHES) * BATCH;
            for (size_t i = 0; i < BATCH; i++)
                memcpy(vals + i * DIM, flat + b[i] * DIM, DIM * sizeof *flat);
            for (size_t i = 0; i < BATCH; i++)
                memcpy(flat + b[i] * DIM, grads + i * DIM, DIM * sizeof *flat);
            __asm__ volatile("" ::: "memory");
        }
        rate_g[r] = 2.0 * STEPS * BATCH / (cpu_now() - t0);
    }
    qsort(rate_m, (size_t)rounds, sizeof *rate_m, cmp);
    qsort(rate_g, (size_t)rounds, sizeof *rate_g, cmp);
    printf("%-16s %12.0f %10.0f\n", "memcpy", rate_m[rounds / 2], rate_m[rounds / 2] / 2);
    printf("%-16s %12.0f %10.0f\n", "gather+scatter", rate_g[rounds / 2], rate_g[rounds / 2] / 2);
    free(flat);
    free(src);
}

int main(int argc, char **argv)
{
    uint64_t rows = argc > 1 ? strtoull(argv[1], NULL, 10) : ROWS_DEFAULT;
    int rounds = argc > 2 ? atoi(argv[2]) : ROUNDS_DEFAULT;
    if (rows < BATCH * 4 || rounds < 1 || rounds > 16) {
        fprintf(stderr, "usage: bench_rows [ROWS >= %d [ROUNDS 1..16]]\n", BATCH * 4);
        return 2;
    }
    uint64_t *ids = make_batches(rows);
    float *vals = malloc(sizeof *vals * BATCH * DIM), *grads = malloc(sizeof *grads * BATCH * DIM);
    if (!ids || !vals || !grads) {
        fprintf(stderr, "bench_rows: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)BATCH * DIM; i++)
        grads[i] = 0.001f * (float)((int)(i % 23) - 11);
    printf("bench_rows: %llu rows of dim %d, pull + push of %d unique Zipf-ish ids, %d steps "
           "a round, median of %d rounds\n", (unsigned long long)rows, DIM, BATCH, STEPS, rounds);
    printf("%-16s %12s %10s %9s %10s %9s %12s %8s\n", "", "rows/s", "ids/s", "state/row",
           "bytes/row", "data/row", "goal/row", "fill");
    const char *names[] = {"sgd", "adagrad", "rowwise_adagrad", "adam"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        bench_optimizer(names[i], rows, rounds, ids, vals, grads);
    bench_copy(rows, rounds, ids, vals, grads);
    free(ids);
    free(vals);
    free(grads);
    return 0;
}
