/* bench_calib.c - the measured parts of pstrain's performance model
 * (bench/calibrate.py runs it; bench/scale_model.py reads what it finds).
 * Each mode prints one JSON object on stdout:
 *
 *   bench_calib compute CONFIG THREADS BATCH STEPS [key=value ...]
 *       forward + backward of BATCH random samples through CONFIG's model on
 *       THREADS worker threads (common/nn/team.h, as a trainer runs its
 *       slice of a step): the median step time; the median of each step's
 *       time less the time its threads waited for a CPU (the kernel's
 *       schedstat run delay), but not below its CPU time over its threads
 *       (nor above the step's time):
 *       what the step takes on cores of its own, which other jobs on a
 *       shared machine do not change when every step is interrupted (steps
 *       longer than a time slice); the 10th percentile of the step times:
 *       the same for steps shorter than a time slice, most of which other
 *       jobs on the machine do not interrupt at all; and,
 *       for every parameter range the gradient hook hands out (the ranges a
 *       trainer pushes during backward, trainer/dist.c), the median time
 *       after the step's start at which it was ready.
 *   bench_calib server OPTIM N_PARAMS TRAINERS STEPS AUTH ELEM
 *       one real server (ps/server.h, BSP, OPTIM) over TCP loopback and
 *       TRAINERS clients (ps/client.h) in this process, each pushing its
 *       gradient and pulling the parameters every step, as trainers do:
 *       wall time, the server's busy time (STATS), the CPU time of the
 *       server's thread (what its work takes whatever else runs on the
 *       machine) and the CPU time of the whole process per step. AUTH none|curve, ELEM f32|f16 (pushes and
 *       pulls).
 *   bench_calib codec N ROUNDS
 *       fp16 encode and decode (common/net/compress.h), seconds per float.
 *   bench_calib latency ROUNDS
 *       round trips of a 1-key push + pull through a server over TCP
 *       loopback: the software's per-message latency (median; and the
 *       10th percentile, the round trips no other job on the machine held
 *       up).
 */
#include <cblas.h>
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/config/config.h"
#include "common/net/compress.h"
#include "common/net/transport.h"
#include "common/net/wire.h"
#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "common/nn/params.h"
#include "common/nn/team.h"
#include "common/util/rng.h"
#include "ps/client.h"
#include "ps/server.h"
#include "bench/bench_ps.h"

#define MAX_RANGES 256
#define MAX_STEPS 4096

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Seconds on clock c (a thread's CPU clock). */
static double clock_s(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU seconds of this process (all threads, user + system). */
static double cpu_now(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec * 1e-6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec * 1e-6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The q-quantile (0..1) of v's n values (sorts v), the nearest rank's. */
static double quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    int k = (int)(q * (n - 1) + 0.5);
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static void die(const char *what, const err_t *err)
{
    fprintf(stderr, "bench_calib: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

/* ---- compute ---------------------------------------------------------- */

/* Seconds the threads of this process have waited on a run queue for a CPU
 * (the second field of /proc/self/task/TID/schedstat), summed over them; 0
 * where the kernel does not keep it. */
static double run_delay_s(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long run, wait;
        if (f && fscanf(f, "%llu %llu", &run, &wait) == 2)
            sum += (double)wait * 1e-9;
        if (f)
            fclose(f);
    }
    closedir(d);
    return sum;
}

typedef struct {
    double t0;
    int n;                       /* ranges seen this step */
    size_t b[MAX_RANGES], e[MAX_RANGES];
    double *at;                  /* [MAX_RANGES][steps]: ready time after t0 */
    int step, steps;
} hook_t;

static void on_grad(void *ctx, size_t b, size_t e)
{
    hook_t *h = ctx;
    if (h->n >= MAX_RANGES)
        return;
    h->b[h->n] = b;
    h->e[h->n] = e;
    h->at[(size_t)h->n * (size_t)h->steps + (size_t)h->step] = now() - h->t0;
    h->n++;
}

static int mode_compute(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: bench_calib compute CONFIG THREADS BATCH STEPS [key=value ...]\n");
        return 2;
    }
    const char *path = argv[2];
    int threads = atoi(argv[3]), B = atoi(argv[4]), steps = atoi(argv[5]);
    if (threads < 1 || B < 1 || steps < 2 || steps > MAX_STEPS) {
        fprintf(stderr, "bench_calib: bad THREADS, BATCH or STEPS\n");
        return 2;
    }
    static job_config_t cfg;
    err_t err;
    openblas_set_num_threads(1); /* as trainer/train.c: the team's threads call OpenBLAS */
    if (config_load(&cfg, path, (const char *const *)argv + 6, argc - 6, 0, &err) != 0)
        die("config", &err);
    model_t *m = model_new(&cfg, B, &err);
    if (!m)
        die("model", &err);
    team_t *t = team_new(m, threads, B, &err);
    if (!t)
        die("team", &err);
    const size_t n = model_n_params(m), in = (size_t)model_input_size(m);
    int classes = model_n_classes(m);
    if (classes < 2)
        classes = 2;
    float *params = malloc(n * sizeof *params), *grads = malloc(n * sizeof *grads);
    float *x = malloc((size_t)B * in * sizeof *x), *dx = malloc((size_t)B * in * sizeof *dx);
    int32_t *y = malloc((size_t)B * sizeof *y);
    hook_t h = {.steps = steps};
    h.at = calloc((size_t)MAX_RANGES * (size_t)steps, sizeof *h.at);
    double *step_s = malloc((size_t)steps * sizeof *step_s);
    double *own_s = malloc((size_t)steps * sizeof *own_s); /* less the waits for a CPU */
    double *wait_s = malloc((size_t)steps * sizeof *wait_s), *cpu_s = malloc((size_t)steps * sizeof *cpu_s);
    if (!params || !grads || !x || !dx || !y || !h.at || !step_s || !own_s || !wait_s || !cpu_s)
        die("out of memory", NULL);
    if (params_init_slice(model_params(m), cfg.train.seed, 0, n, params, &err) != 0)
        die("init", &err);
    for (size_t i = 0; i < (size_t)B * in; i++)
        x[i] = (float)rng_uniform(1, 2, i);
    for (int i = 0; i < B; i++)
        y[i] = i % classes;
    if (cfg.model.sparse.fields > 0) /* the rows' gradients come from the input's */
        team_set_input_grad(t, dx);
    team_set_grad_hook(t, on_grad, &h);
    int ranges = -1;
    for (int s = -2; s < steps; s++) { /* two warm-up steps */
        h.step = s < 0 ? 0 : s;
        h.n = 0;
        const model_run_t run = {.training = 1, .step = s + 2, .first = 0};
        const double wait0 = run_delay_s(), cpu0 = cpu_now();
        h.t0 = now();
        team_train_step(t, &run, params, grads, x, y, B, 1.0f / (float)B, NULL);
        double dt = now() - h.t0;
        if (s < 0)
            continue;
        step_s[s] = dt;
        /* the threads wait for each other, so a wait for a CPU of any of them
         * can hold up the step: all are taken off, but the step is never
         * shorter than its CPU time spread over its threads (which counts
         * their spinning at the team's meetings too: never more than dt) */
        const double cpu = cpu_s[s] = (cpu_now() - cpu0) / team_size(t);
        wait_s[s] = run_delay_s() - wait0;
        own_s[s] = dt - wait_s[s];
        if (own_s[s] < cpu)
            own_s[s] = cpu < dt ? cpu : dt;
        if (ranges < 0)
            ranges = h.n;
        else if (ranges != h.n)
            die("the gradient ranges changed between steps", NULL);
    }
    printf("{\"config\": \"%s\", \"params\": %zu, \"input\": %zu, \"threads\": %d, "
           "\"batch\": %d, \"steps\": %d, \"step_s\": %.9g, \"step_own_cpus_s\": %.9g, "
           "\"cpu_wait_s\": %.9g, \"cpu_per_thread_s\": %.9g, \"step_p10_s\": %.9g, "
           "\"ranges\": [",
           path, n, in, team_size(t), B, steps, median(step_s, steps), median(own_s, steps),
           median(wait_s, steps), median(cpu_s, steps), quantile(step_s, steps, 0.1));
    for (int k = 0; k < ranges; k++)
        printf("%s[%zu, %zu, %.9g]", k ? ", " : "", h.b[k], h.e[k],
               median(h.at + (size_t)k * (size_t)steps, steps));
    printf("]}\n");
    team_destroy(&t);
    model_destroy(&m);
    free(params);
    free(grads);
    free(x);
    free(dx);
    free(y);
    free(h.at);
    free(step_s);
    free(own_s);
    free(wait_s);
    free(cpu_s);
    return 0;
}

/* ---- server ----------------------------------------------------------- */

#define MAX_CLIENTS 8

typedef struct {
    bench_ps_t p;
    pthread_t th;
    client_t *c[MAX_CLIENTS];
    int T;
    param_table_t tab;
    transport_auth_t auth;
} rig_t;

/* A server of n keys with optimizer optim and T clients over TCP loopback. */
static void rig_up(rig_t *g, const char *optim, size_t n, int T, int curve, int elem)
{
    err_t err;
    memset(g, 0, sizeof *g);
    g->T = T;
    int shape[1] = {(int)n};
    if (!params_add(&g->tab, "v", 1, shape, INIT_ZEROS, &err))
        die("params", &err);
    server_opts_t so = {.n_servers = 1, .n_trainers = T, .consistency = CONS_BSP,
                        .total_steps = 1 << 30, .table = &g->tab, .threads = 1,
                        .optim = {.kind = optim_find(optim), .lr = 1e-6, .beta1 = 0.9,
                                  .beta2 = 0.999, .eps = 1e-7}};
    if (!so.optim.kind)
        die("no such optimizer", NULL);
    if (curve && transport_auth_generate(&g->auth, &err) != 0)
        die("keys", &err);
    char ep[256];
    const char *eps[1] = {ep};
    g->p.who = "bench_calib";
    g->p.s = server_new(&so, &err);
    if (!g->p.s)
        die("server", &err);
    g->p.t = transport_listen_auth("127.0.0.1", &g->auth, ep, sizeof ep, &err);
    if (!g->p.t)
        die("listen", &err);
    for (int i = 0; i < T; i++) {
        client_opts_t co = {.sender = i, .n_servers = 1, .endpoints = eps, .auth = &g->auth,
                            .timeout_ms = 60000, .n_params = n, .push_elem = elem};
        if (!(g->c[i] = client_new(&co, &err)))
            die("client", &err);
    }
    pthread_create(&g->th, NULL, bench_ps_run, &g->p);
}

/* A client's goodbye waits for every trainer's: one thread each. */
static void *goodbye(void *arg)
{
    err_t err;
    int lost;
    if (client_goodbye(arg, &lost, &err) != 0)
        fprintf(stderr, "bench_calib: goodbye: %s\n", err.msg);
    return NULL;
}

static void rig_down(rig_t *g)
{
    pthread_t th[MAX_CLIENTS];
    for (int i = 0; i < g->T; i++)
        pthread_create(&th[i], NULL, goodbye, g->c[i]);
    for (int i = 0; i < g->T; i++)
        pthread_join(th[i], NULL);
    pthread_join(g->th, NULL);
    for (int i = 0; i < g->T; i++)
        client_destroy(&g->c[i]);
    transport_destroy(&g->p.t);
    server_destroy(&g->p.s);
}

/* One BSP step of every client: each pushes all n keys, then each pulls. */
static void rig_step(rig_t *g, const float *grads, float *params, size_t n, long step, int elem)
{
    err_t err;
    for (int i = 0; i < g->T; i++) {
        client_set_step(g->c[i], step);
        if (client_push_range(g->c[i], grads, 0, n, &err) != 0)
            die("push", &err);
    }
    for (int i = 0; i < g->T; i++)
        if (client_pull(g->c[i], step + 1, elem, params, &err) != 0)
            die("pull", &err);
}

static int mode_server(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: bench_calib server OPTIM N_PARAMS TRAINERS STEPS none|curve "
                        "f32|f16\n");
        return 2;
    }
    const char *optim = argv[2];
    size_t n = strtoull(argv[3], NULL, 10);
    int T = atoi(argv[4]), steps = atoi(argv[5]);
    int curve = strcmp(argv[6], "curve") == 0;
    int elem = strcmp(argv[7], "f16") == 0 ? WIRE_F16 : WIRE_F32;
    if (n < 1 || n > (1u << 30) || T < 1 || T > MAX_CLIENTS || steps < 2 || steps > MAX_STEPS) {
        fprintf(stderr, "bench_calib: bad N_PARAMS, TRAINERS or STEPS\n");
        return 2;
    }
    err_t err;
    if (transport_set_io_threads(1, &err) != 0)
        die("io threads", &err);
    float *grads = malloc(n * sizeof *grads), *params = malloc(n * sizeof *params);
    double *wall = malloc((size_t)steps * sizeof *wall);
    if (!grads || !params || !wall)
        die("out of memory", NULL);
    for (size_t i = 0; i < n; i++)
        grads[i] = (float)rng_uniform(3, 4, i) - 0.5f;
    memset(params, 0, n * sizeof *params);
    rig_t g;
    rig_up(&g, optim, n, T, curve, elem);
    long step = 0;
    for (int k = 0; k < 2; k++, step++) /* warm-up */
        rig_step(&g, grads, params, n, step, elem);
    client_stats_t s0, s1;
    if (client_stats(g.c[0], &s0, &err) != 0)
        die("stats", &err);
    clockid_t srv_clock;
    if (pthread_getcpuclockid(g.th, &srv_clock) != 0)
        die("the server thread's CPU clock", NULL);
    double c0 = cpu_now(), t0 = now(), srv0 = clock_s(srv_clock);
    for (int k = 0; k < steps; k++, step++) {
        double w0 = now();
        rig_step(&g, grads, params, n, step, elem);
        wall[k] = now() - w0;
    }
    double cpu = cpu_now() - c0, total = now() - t0, srv_cpu = clock_s(srv_clock) - srv0;
    if (client_stats(g.c[0], &s1, &err) != 0)
        die("stats", &err);
    uint64_t sent = 0, recv = 0;
    for (int i = 0; i < T; i++) {
        uint64_t a, b;
        client_bytes(g.c[i], &a, &b);
        sent += a;
        recv += b;
    }
    rig_down(&g);
    printf("{\"optim\": \"%s\", \"params\": %zu, \"trainers\": %d, \"steps\": %d, "
           "\"auth\": \"%s\", \"elem\": \"%s\", \"wall_step_s\": %.9g, \"mean_step_s\": %.9g, "
           "\"server_busy_step_s\": %.9g, \"server_cpu_step_s\": %.9g, \"cpu_step_s\": %.9g, "
           "\"bytes_sent_step\": %.1f, \"bytes_received_step\": %.1f}\n",
           optim, n, T, steps, curve ? "curve" : "none", elem == WIRE_F16 ? "f16" : "f32",
           median(wall, steps), total / steps, (s1.busy_s - s0.busy_s) / steps, srv_cpu / steps,
           cpu / steps,
           (double)sent / (step), (double)recv / (step));
    free(grads);
    free(params);
    free(wall);
    return 0;
}

/* ---- codec ------------------------------------------------------------ */

static int mode_codec(int argc, char **argv)
{
    size_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1u << 22;
    int rounds = argc > 3 ? atoi(argv[3]) : 9;
    if (n < 1024 || rounds < 1 || rounds > 64) {
        fprintf(stderr, "usage: bench_calib codec [N >= 1024 [ROUNDS 1..64]]\n");
        return 2;
    }
    float *f = malloc(n * sizeof *f), *g = malloc(n * sizeof *g);
    uint16_t *h = malloc(n * sizeof *h);
    if (!f || !g || !h)
        die("out of memory", NULL);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)rng_uniform(5, 6, i) - 0.5f;
    double enc[64], dec[64];
    for (int k = -1; k < rounds; k++) {
        double t0 = now();
        compress_encode16(h, f, n, 0);
        double t1 = now();
        compress_decode16(g, (const uint8_t *)h, n, 0);
        double t2 = now();
        if (k >= 0) {
            enc[k] = (t1 - t0) / (double)n;
            dec[k] = (t2 - t1) / (double)n;
        }
    }
    printf("{\"floats\": %zu, \"rounds\": %d, \"fp16_encode_s_per_float\": %.6g, "
           "\"fp16_decode_s_per_float\": %.6g, \"check\": %g}\n",
           n, rounds, median(enc, rounds), median(dec, rounds), (double)g[n / 2]);
    free(f);
    free(g);
    free(h);
    return 0;
}

/* ---- latency ---------------------------------------------------------- */

static int mode_latency(int argc, char **argv)
{
    int rounds = argc > 2 ? atoi(argv[2]) : 2000;
    if (rounds < 10 || rounds > 100000) {
        fprintf(stderr, "usage: bench_calib latency [ROUNDS 10..100000]\n");
        return 2;
    }
    err_t err;
    if (transport_set_io_threads(1, &err) != 0)
        die("io threads", &err);
    double *rt = malloc((size_t)rounds * sizeof *rt);
    if (!rt)
        die("out of memory", NULL);
    float grad = 0, param = 0;
    rig_t g;
    rig_up(&g, "sgd", 1, 1, 0, WIRE_F32);
    long step = 0;
    for (int k = -100; k < rounds; k++, step++) {
        double t0 = now();
        rig_step(&g, &grad, &param, 1, step, WIRE_F32);
        if (k >= 0)
            rt[k] = now() - t0;
    }
    rig_down(&g);
    printf("{\"rounds\": %d, \"push_pull_round_trip_s\": %.9g, \"round_trip_p10_s\": %.9g}\n",
           rounds, median(rt, rounds), quantile(rt, rounds, 0.1));
    free(rt);
    return 0;
}

int main(int argc, char **argv)
{
    /* as pstrain's main does: large buffers stay with malloc for reuse */
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    const char *m = argc > 1 ? argv[1] : "";
    if (strcmp(m, "compute") == 0)
        return mode_compute(argc, argv);
    if (strcmp(m, "server") == 0)
        return mode_server(argc, argv);
    if (strcmp(m, "codec") == 0)
        return mode_codec(argc, argv);
    if (strcmp(m, "latency") == 0)
        return mode_latency(argc, argv);
    fprintf(stderr, "usage: bench_calib compute|server|codec|latency ...\n");
    return 2;
}
