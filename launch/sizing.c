/* sizing.c - is a job network-bound? The transfer time of a step through
 * the busiest host link against a lower bound of its compute (see sizing.h). */
#include "launch/sizing.h"

#include <cblas.h>
#include <stdlib.h>
#include <time.h>

#include "common/nn/model.h"
#include "common/nn/params.h"
#include "common/nn/team.h"

/* One Ethernet frame of a 1500-byte MTU carries 1448 bytes of TCP payload
 * (timestamps on) in 1538 bytes of wire time (headers, FCS, preamble, gap). */
#define FRAME_OVERHEAD (1538.0 / 1448.0)

int sizing_eval(const sizing_job_t *j, sizing_t *out)
{
    out->net_s = out->compute_s = out->bytes = 0;
    out->busiest = 0;
    if (j->servers < 1 || j->trainers < 1 || j->n_hosts < 1 || j->link_gbps <= 0 ||
        j->core_gflops <= 0)
        return 0;
    /* per host: bytes out and in during the push phase and the pull phase */
    double *b = calloc((size_t)j->n_hosts * 4, sizeof *b);
    if (!b)
        return 0;
    const int S = j->servers, T = j->trainers;
    const double push = j->push_bytes * (double)j->params / S,
                 pull = j->pull_bytes * (double)j->params / S;
    for (int t = 0; t < T; t++) {
        int ht = j->host[S + t];
        for (int s = 0; s < S; s++) {
            int hs = j->host[s];
            if (ht == hs)
                continue;
            b[4 * ht + 0] += push; /* push out of the trainer's host */
            b[4 * hs + 1] += push; /* ... into the server's */
            b[4 * hs + 2] += pull; /* pull out of the server's host */
            b[4 * ht + 3] += pull; /* ... into the trainer's */
        }
    }
    const double link = j->link_gbps * 1e9 / 8 / FRAME_OVERHEAD;
    double push_max = 0, pull_max = 0;
    for (int h = 0; h < j->n_hosts; h++) {
        double p = b[4 * h] > b[4 * h + 1] ? b[4 * h] : b[4 * h + 1];
        double q = b[4 * h + 2] > b[4 * h + 3] ? b[4 * h + 2] : b[4 * h + 3];
        if (p > push_max)
            push_max = p;
        if (q > pull_max)
            pull_max = q;
        if ((p > q ? p : q) > out->bytes) {
            out->bytes = p > q ? p : q;
            out->busiest = h;
        }
    }
    free(b);
    out->net_s = j->bsp ? (push_max + pull_max) / link
                        : (push_max > pull_max ? push_max : pull_max) / link;
    const double per_trainer = (double)j->batch / T;
    const int th = j->threads > 0 ? j->threads : 1;
    out->compute_s = j->compute_s > 0
                         ? j->compute_s
                         : 6.0 * (double)j->params * per_trainer / (th * j->core_gflops * 1e9);
    return out->net_s > out->compute_s;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double sizing_measure(const job_config_t *cfg, int batch, int threads)
{
    err_t err;
    double dt = -1;
    if (batch < 1)
        batch = 1;
    openblas_set_num_threads(1); /* as training sets it: the team's threads call OpenBLAS */
    model_t *m = model_new(cfg, batch, &err);
    team_t *t = m ? team_new(m, threads > 0 ? threads : 1, batch, &err) : NULL;
    const size_t n = m ? model_n_params(m) : 0, in = m ? (size_t)model_input_size(m) : 0;
    float *p = t ? calloc(n, sizeof *p) : NULL, *g = p ? malloc(n * sizeof *g) : NULL;
    float *x = g ? calloc((size_t)batch * in, sizeof *x) : NULL;
    int32_t *y = x ? calloc((size_t)batch, sizeof *y) : NULL;
    if (y && params_init_slice(model_params(m), cfg->train.seed, 0, n, p, &err) == 0) {
        for (int k = 0; k < 2; k++) { /* the first pays for first touches */
            const model_run_t run = {.training = 1, .step = k, .first = 0};
            double t0 = now_s();
            team_train_step(t, &run, p, g, x, y, batch, 1.0f / (float)batch, NULL);
            dt = now_s() - t0;
        }
    }
    free(y);
    free(x);
    free(g);
    free(p);
    team_destroy(&t);
    model_destroy(&m);
    return dt;
}
