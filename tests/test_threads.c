/* test_threads.c - suite "threads": a trainer's team of threads
 * (common/nn/team.h) and the pool under it.
 *
 *  - team_train_step with N = 1..4 workers equals model_train_step of the
 *    whole batch within float rounding, also when the batch is not a
 *    multiple of N and when it is smaller than N (workers with nothing to
 *    do), with dropout (masks follow each sample's place in the global
 *    batch) and for a layer run over the whole batch on OpenBLAS's threads;
 *  - the same N gives the same bits on every run;
 *  - with a gradient hook, every layer's range is handed over once, in
 *    backward order, already summed over the workers;
 *  - evaluation and prediction with N workers equal one;
 *  - whole jobs: train.threads = 1, 2, 3 on a batch of 35 (not a multiple
 *    of 2 or 3) give the same loss within 1e-5 relative after 20 steps, and
 *    two runs with 3 threads the same parameters bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config/config.h"
#include "common/nn/model.h"
#include "common/nn/team.h"
#include "common/util/fsutil.h"
#include "common/util/pool.h"
#include "gradcheck.h"
#include "tests.h"
#include "trainer/train.h"

/* conv + pool (fused) + dropout + dense: every kind of work a team splits. */
static const char *SMALL =
    "model = { input = [1, 10, 10];\n"
    "  layers = ( { type = \"conv2d\"; filters = 4; kernel = 3; activation = \"relu\"; },\n"
    "             { type = \"maxpool2d\"; pool = 2; }, { type = \"flatten\"; },\n"
    "             { type = \"dropout\"; rate = 0.25; },\n"
    "             { type = \"dense\"; units = 5; activation = \"softmax\"; } ); };\n"
    "train = { seed = 3; };\n";

/* A dense layer of 1,048,576 weights: at batch >= 64 a team runs it over the
 * whole batch with OpenBLAS's threads (team_whole_batch). */
static const char *WIDE =
    "model = { input = [1, 32, 32];\n"
    "  layers = ( { type = \"flatten\"; },\n"
    "             { type = \"dense\"; units = 1024; activation = \"relu\"; },\n"
    "             { type = \"dense\"; units = 6; activation = \"softmax\"; } ); };\n"
    "train = { seed = 5; };\n";

static model_t *build(const char *text, int B)
{
    job_config_t *cfg = calloc(1, sizeof *cfg);
    err_t err = {{0}};
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    if (config_load_text(cfg, "threads_test", text, NULL, 0, 0, &err) != 0)
        fprintf(stderr, "\n    config: %s\n", err.msg);
    model_t *m = cfg->model.n_layers ? model_new(cfg, B, &err) : NULL;
    if (!m)
        fprintf(stderr, "\n    model: %s\n", err.msg);
    free(cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    return m;
}

/* max |a - b| / max(max |b|, 1e-30) over n values. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

/* Inputs, labels and parameters for B samples of m. */
typedef struct {
    float *x, *params, *ref, *got;
    int32_t *y;
    size_t n;
} data_t;

static data_t make_data(const model_t *m, int B, unsigned seed)
{
    data_t d;
    d.n = model_n_params(m);
    const size_t nx = (size_t)B * model_input_size(m);
    d.x = malloc(nx * sizeof *d.x);
    d.y = malloc((size_t)B * sizeof *d.y);
    d.params = malloc(d.n * sizeof *d.params);
    d.ref = calloc(d.n, sizeof *d.ref);
    d.got = calloc(d.n, sizeof *d.got);
    CU_ASSERT_FATAL(d.x && d.y && d.params && d.ref && d.got);
    fill_uniform(d.x, nx, seed, -1, 1);
    fill_uniform(d.params, d.n, seed + 1, -0.3f, 0.3f);
    for (int i = 0; i < B; i++)
        d.y[i] = (int32_t)((i * 7 + (int)seed) % model_output_size(m));
    return d;
}

static void free_data(data_t *d)
{
    free(d->x);
    free(d->y);
    free(d->params);
    free(d->ref);
    free(d->got);
}

/* team_train_step with n workers against model_train_step of the whole
 * batch (same run: step 4, slice starting at global sample 9). */
static void check_team(const char *text, int B, int n, int expect_whole)
{
    model_t *m = build(text, B);
    data_t d = make_data(m, B, 17 + (unsigned)n);
    const model_run_t run = {.training = 1, .step = 4, .first = 9};
    int ok_ref = 0, ok = 0;
    double want = model_train_step(m, &run, d.params, d.ref, d.x, d.y, B, 1.0f / B, &ok_ref);
    err_t err;
    team_t *t = team_new(m, n, B, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(team_n_whole(t) > 0, expect_whole);
    for (size_t i = 0; i < d.n; i++)
        d.got[i] = 1e6f; /* overwritten, not added to */
    double got = team_train_step(t, &run, d.params, d.got, d.x, d.y, B, 1.0f / B, &ok);
    double rel = rel_diff(d.got, d.ref, d.n);
    if (!(rel < 1e-5) || fabs(got - want) > 1e-5 * fabs(want))
        fprintf(stderr, "\n    %d workers, batch %d: gradient rel diff %.3g, loss %.9g vs %.9g\n",
                n, B, rel, got, want);
    CU_ASSERT(rel < 1e-5);
    CU_ASSERT(fabs(got - want) <= 1e-5 * fabs(want));
    CU_ASSERT_EQUAL(ok, ok_ref);
    /* the same workers again: the same bits */
    float *again = malloc(d.n * sizeof *again);
    CU_ASSERT_FATAL(again != NULL);
    double got2 = team_train_step(t, &run, d.params, again, d.x, d.y, B, 1.0f / B, NULL);
    CU_ASSERT(got2 == got && memcmp(again, d.got, d.n * sizeof *again) == 0);
    free(again);
    team_destroy(&t);
    free_data(&d);
    model_destroy(&m);
}

/* DLRM's shape: a bottom MLP over the first 5 inputs while 3 vectors of 2
 * ride along, the dot interaction, a softmax top. */
static const char *BRANCH =
    "model = { input = [11];\n"
    "  layers = ( { type = \"dense\"; units = 4; inputs = 5; activation = \"relu\"; },\n"
    "             { type = \"dense\"; units = 2; inputs = 4; activation = \"tanh\"; },\n"
    "             { type = \"interaction\"; vectors = 4; },\n"
    "             { type = \"dense\"; units = 3; activation = \"softmax\"; } ); };\n"
    "train = { seed = 7; };\n";

/* BRANCH with the 3 vectors read where the model takes them in: the first
 * layer leaves them, the interaction reads them from the model's input. */
static const char *SKIP =
    "model = { input = [11];\n"
    "  layers = ( { type = \"dense\"; units = 4; inputs = 5; pass_rest = false;\n"
    "               activation = \"relu\"; },\n"
    "             { type = \"dense\"; units = 2; activation = \"tanh\"; },\n"
    "             { type = \"interaction\"; vectors = 4; from_input = 6; },\n"
    "             { type = \"dense\"; units = 3; activation = \"softmax\"; } ); };\n"
    "train = { seed = 7; };\n";

typedef struct {
    team_t *t;
    data_t *d;
    float *g;
    int B;
} dx_ctx_t;

/* The step's objective, scale * sum of the losses. */
static double dx_obj(void *p)
{
    dx_ctx_t *c = p;
    const model_run_t run = {.training = 1};
    team_set_input_grad(c->t, NULL);
    double l = team_train_step(c->t, &run, c->d->params, c->g, c->d->x, c->d->y, c->B,
                               1.0f / c->B, NULL);
    return l / c->B;
}

/* team_set_input_grad: the input's gradient of a step (what embedding rows
 * outside the model get) of the model of text with 1 worker against finite
 * differences, and with 2 and 3 workers against 1, on a batch that does not
 * divide evenly. The gradients and dx of each are left in out (n = 1..3). */
static void check_team_dx(const char *text, float *out_g[3], float *out_dx[3])
{
    const int B = 7;
    model_t *m = build(text, B);
    data_t d = make_data(m, B, 23);
    const size_t nx = (size_t)B * model_input_size(m);
    err_t err;
    for (int n = 1; n <= 3; n++) {
        team_t *t = team_new(m, n, B, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        float *dx = out_dx[n - 1] = malloc(nx * sizeof(float));
        out_g[n - 1] = malloc(d.n * sizeof(float));
        CU_ASSERT_FATAL(dx != NULL && out_g[n - 1] != NULL);
        for (size_t i = 0; i < nx; i++)
            dx[i] = 1e6f; /* overwritten */
        team_set_input_grad(t, dx);
        const model_run_t run = {.training = 1};
        team_train_step(t, &run, d.params, d.got, d.x, d.y, B, 1.0f / B, NULL);
        memcpy(out_g[n - 1], d.got, d.n * sizeof(float));
        if (n == 1) {
            dx_ctx_t c = {t, &d, d.ref, B};
            CU_ASSERT_EQUAL(gradcheck("team dx", dx_obj, &c, d.x, dx, nx, nx, 1e-3, 2e-3, 1e-2),
                            0);
        } else {
            CU_ASSERT(rel_diff(dx, out_dx[0], nx) < 1e-5);
        }
        team_destroy(&t);
    }
    free_data(&d);
    model_destroy(&m);
}

/* check_team_dx for the branch that carries the vectors along and for the
 * one that reads them from the model's input: the same model, so the same
 * gradients and input gradients with every number of workers. */
static void test_team_dx(void)
{
    const size_t nx = 7 * 11, np = 4 * 5 + 4 + 2 * 4 + 2 + 3 * 8 + 3;
    float *g[2][3], *dx[2][3];
    check_team_dx(BRANCH, g[0], dx[0]);
    check_team_dx(SKIP, g[1], dx[1]);
    for (int n = 0; n < 3; n++) {
        CU_ASSERT(rel_diff(dx[1][n], dx[0][n], nx) < 1e-6);
        CU_ASSERT(rel_diff(g[1][n], g[0][n], np) < 1e-6);
        for (int k = 0; k < 2; k++) {
            free(g[k][n]);
            free(dx[k][n]);
        }
    }
}

static void test_team_small(void)
{
    for (int n = 1; n <= 4; n++) {
        check_team(SMALL, 13, n, 0); /* 13 samples: slices of 4 and 3 */
        check_team(SMALL, 3, n, 0);  /* fewer samples than workers */
        check_team(SKIP, 5, n, 0);   /* a layer reading the model's input */
    }
}

static void test_team_whole(void)
{
    check_team(WIDE, 70, 2, 1);
    check_team(WIDE, 70, 3, 1);
    check_team(WIDE, 20, 2, 0); /* a small batch: split among the workers */
}

/* The hook: each range once, in backward order, with its final sum. */
typedef struct {
    size_t b[8], e[8];
    int n;
    const float *grads, *ref;
    int summed; /* every range was already final when handed over */
} hook_log_t;

static void on_range(void *ctx, size_t b, size_t e)
{
    hook_log_t *h = ctx;
    if (h->n < 8) {
        h->b[h->n] = b;
        h->e[h->n] = e;
    }
    h->n++;
    if (rel_diff(h->grads + b, h->ref + b, e - b) > 1e-5)
        h->summed = 0;
}

static void test_team_hook(void)
{
    const int B = 11;
    model_t *m = build(SMALL, B);
    data_t d = make_data(m, B, 5);
    const model_run_t run = {.training = 1, .step = 2, .first = 0};
    model_train_step(m, &run, d.params, d.ref, d.x, d.y, B, 1.0f / B, NULL);
    err_t err;
    for (int n = 1; n <= 3; n++) {
        team_t *t = team_new(m, n, B, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        hook_log_t h = {.grads = d.got, .ref = d.ref, .summed = 1};
        team_set_grad_hook(t, on_range, &h);
        team_train_step(t, &run, d.params, d.got, d.x, d.y, B, 1.0f / B, NULL);
        /* dense (its weight and bias), then the convolution: two ranges */
        CU_ASSERT_EQUAL(h.n, 2);
        CU_ASSERT(h.summed);
        CU_ASSERT(h.n == 2 && h.e[0] == d.n && h.b[1] == 0 && h.e[1] == h.b[0]);
        /* an empty batch still hands over every range, with zeros */
        h = (hook_log_t){.grads = d.got, .ref = d.got, .summed = 1};
        team_train_step(t, &run, d.params, d.got, d.x, d.y, 0, 1.0f, NULL);
        CU_ASSERT_EQUAL(h.n, 2);
        float maxabs = 0;
        for (size_t i = 0; i < d.n; i++)
            maxabs = fmaxf(maxabs, fabsf(d.got[i]));
        CU_ASSERT_EQUAL(maxabs, 0.0f);
        team_destroy(&t);
    }
    free_data(&d);
    model_destroy(&m);
}

/* Evaluation and prediction with n workers equal one. */
static void test_team_eval(void)
{
    const int B = 29;
    model_t *m = build(SMALL, B);
    data_t d = make_data(m, B, 9);
    int right1 = 0, right3 = 0;
    double l1 = model_eval_batch(m, d.params, d.x, d.y, B, &right1);
    const size_t np = (size_t)B * model_output_size(m);
    float *p1 = malloc(np * sizeof *p1);
    CU_ASSERT_FATAL(p1 != NULL);
    memcpy(p1, model_predict(m, d.params, d.x, B), np * sizeof *p1);
    err_t err;
    team_t *t = team_new(m, 3, B, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    double l3 = team_eval_batch(t, d.params, d.x, d.y, B, &right3);
    CU_ASSERT(fabs(l3 - l1) <= 1e-6 * fabs(l1));
    CU_ASSERT_EQUAL(right3, right1);
    CU_ASSERT(rel_diff(team_predict(t, d.params, d.x, B), p1, np) < 1e-6);
    team_destroy(&t);
    free(p1);
    free_data(&d);
    model_destroy(&m);
}

/* team_for covers [0, n) once, in disjoint slices. */
static void mark(void *ctx, size_t b, size_t e)
{
    unsigned char *seen = ctx;
    for (size_t i = b; i < e; i++)
        seen[i]++;
}

/* The update of test_team_step: SGD over [b, e) from the gradient, which it
 * clears (as single-process training's), counting the keys it saw. */
typedef struct {
    float *params, *grads;
    float lr;
    size_t keys;
} sgd_ctx_t;

static void sgd_range(void *ctx, size_t b, size_t e)
{
    sgd_ctx_t *c = ctx;
    for (size_t k = b; k < e; k++) {
        c->params[k] -= c->lr * c->grads[k];
        c->grads[k] = 0.0f;
    }
    c->keys += e - b;
}

/* team_set_step: with one worker the dense layer's SGD step happens in its
 * backward (its keys never reach the update, its gradient stays zero) and
 * the conv layer's through the update; the parameters are the SGD step of
 * the gradient to float rounding. With two workers the step is not fused
 * and every key goes through the update. */
static void test_team_step(void)
{
    const int B = 13;
    const float lr = 0.05f;
    model_t *m = build(SMALL, B);
    data_t d = make_data(m, B, 41);
    const param_table_t *tab = model_params(m);
    size_t dense_keys = 0;
    for (int k = 0; k < tab->n; k++)
        dense_keys += strncmp(tab->t[k].name, "dense", 5) == 0 ? tab->t[k].size : 0;
    CU_ASSERT(dense_keys > 0 && dense_keys < d.n);
    const model_run_t run = {.training = 1, .step = 2};
    model_train_step(m, &run, d.params, d.ref, d.x, d.y, B, 1.0f / B, NULL);
    float *want = malloc(d.n * sizeof *want), *p = malloc(d.n * sizeof *p);
    CU_ASSERT_FATAL(want && p);
    for (size_t k = 0; k < d.n; k++)
        want[k] = d.params[k] - lr * d.ref[k];
    for (int n = 1; n <= 2; n++) {
        err_t err;
        team_t *t = team_new(m, n, B, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        memcpy(p, d.params, d.n * sizeof *p);
        memset(d.got, 0, d.n * sizeof *d.got);
        sgd_ctx_t c = {p, d.got, lr, 0};
        team_set_update(t, sgd_range, &c);
        team_set_step(t, p, lr);
        team_train_step(t, &run, p, d.got, d.x, d.y, B, 1.0f / B, NULL);
        CU_ASSERT_EQUAL(c.keys, n == 1 ? d.n - dense_keys : d.n);
        CU_ASSERT(rel_diff(p, want, d.n) < 1e-6);
        size_t nonzero = 0;
        for (size_t k = 0; k < d.n; k++)
            nonzero += d.got[k] != 0.0f;
        CU_ASSERT_EQUAL(nonzero, 0);
        team_destroy(&t);
    }
    free(want);
    free(p);
    free_data(&d);
    model_destroy(&m);
}

static void test_team_for(void)
{
    model_t *m = build(SMALL, 4);
    err_t err;
    team_t *t = team_new(m, 3, 4, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    unsigned char seen[1001] = {0};
    team_for(t, 1001, mark, seen);
    int once = 1;
    for (int i = 0; i < 1001; i++)
        once &= seen[i] == 1;
    CU_ASSERT(once);
    team_destroy(&t);
    model_destroy(&m);
}

/* The pool: every worker runs each job once; barriers hold them together. */
typedef struct {
    pool_t *p;
    int counts[4];
    int phase[4];
    int order_ok;
} pool_ctx_t;

static void pool_job(void *ctx, int w)
{
    pool_ctx_t *c = ctx;
    c->counts[w]++;
    for (int k = 0; k < 50; k++) {
        c->phase[w] = k;
        pool_barrier(c->p);
        for (int u = 0; u < pool_size(c->p); u++) /* nobody is a phase ahead or behind */
            if (c->phase[u] != k)
                c->order_ok = 0;
        pool_barrier(c->p);
    }
}

static void test_pool(void)
{
    err_t err;
    pool_ctx_t c = {.order_ok = 1};
    c.p = pool_new(4, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.p);
    for (int r = 0; r < 20; r++)
        pool_run(c.p, pool_job, &c);
    for (int w = 0; w < 4; w++)
        CU_ASSERT_EQUAL(c.counts[w], 20);
    CU_ASSERT(c.order_ok);
    pool_destroy(&c.p);
    CU_ASSERT_PTR_NULL(c.p);
    CU_ASSERT_PTR_NULL(pool_new(0, &err));
}

/* ---- whole jobs ----------------------------------------------------- */

static const char *JOB =
    "name = \"t_threads\";\n"
    "data = { limit = 2000; validation = 200; test_limit = 300; };\n"
    "model = { input = [1, 28, 28];\n"
    "  layers = ( { type = \"conv2d\"; filters = 6; kernel = 3; activation = \"relu\"; },\n"
    "             { type = \"maxpool2d\"; pool = 2; }, { type = \"flatten\"; },\n"
    "             { type = \"dropout\"; rate = 0.2; },\n"
    "             { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n"
    "optimizer = { name = \"adam\"; };\n"
    "train = { epochs = 1; batch = 35; seed = 8; max_steps = 20; };\n";

/* Trains JOB with train.threads = n into TMP/out; returns the test loss and
 * the parameters in params (malloc'd, *np of them). */
static double run_job(int n, const char *out, float **params, size_t *np)
{
    char path[600], set[64], dir[700];
    snprintf(path, sizeof path, "%s/threads_job.cfg", tests_tmp_dir());
    snprintf(dir, sizeof dir, "%s/%s", tests_tmp_dir(), out);
    snprintf(set, sizeof set, "train.threads=%d", n);
    err_t err;
    CU_ASSERT_FATAL(fs_write_atomic(path, JOB, strlen(JOB), &err) == 0);
    job_config_t *cfg = calloc(1, sizeof *cfg);
    const char *sets[1] = {set};
    CU_ASSERT_FATAL(cfg && config_load(cfg, path, sets, 1, 1, &err) == 0);
    char *text = config_text(path, sets, 1, &err);
    *params = calloc(200000, sizeof **params);
    train_opts_t o = {.out_dir = dir, .final_params = *params, .config_text = text, .no_plot = 1};
    train_result_t res;
    int rc = train_local(cfg, &o, &res, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT_EQUAL(res.steps, 20);
    *np = res.params;
    free(text);
    free(cfg);
    return res.test_loss;
}

static void test_jobs(void)
{
    float *p1, *p2, *p3, *p3b;
    size_t n1, n2, n3, n3b;
    double l1 = run_job(1, "th1", &p1, &n1), l2 = run_job(2, "th2", &p2, &n2),
           l3 = run_job(3, "th3", &p3, &n3), l3b = run_job(3, "th3b", &p3b, &n3b);
    CU_ASSERT_FATAL(n1 == n2 && n1 == n3 && n1 == n3b && n1 > 0);
    if (!(fabs(l2 - l1) <= 1e-5 * l1 && fabs(l3 - l1) <= 1e-5 * l1))
        fprintf(stderr, "\n    test loss after 20 steps: 1 thread %.9g, 2: %.9g, 3: %.9g\n", l1,
                l2, l3);
    CU_ASSERT(fabs(l2 - l1) <= 1e-5 * l1);
    CU_ASSERT(fabs(l3 - l1) <= 1e-5 * l1);
    CU_ASSERT(rel_diff(p2, p1, n1) < 1e-4);
    CU_ASSERT(rel_diff(p3, p1, n1) < 1e-4);
    /* the same threads twice: the same bits */
    CU_ASSERT(l3b == l3 && memcmp(p3, p3b, n3 * sizeof *p3) == 0);
    free(p1);
    free(p2);
    free(p3);
    free(p3b);
}

int test_threads_register(void)
{
    CU_pSuite s = CU_add_suite("threads", NULL, NULL);
    if (!s || !CU_add_test(s, "pool", test_pool) || !CU_add_test(s, "team_small", test_team_small) ||
        !CU_add_test(s, "team_whole", test_team_whole) ||
        !CU_add_test(s, "team_dx", test_team_dx) ||
        !CU_add_test(s, "team_hook", test_team_hook) ||
        !CU_add_test(s, "team_step", test_team_step) ||
        !CU_add_test(s, "team_eval", test_team_eval) || !CU_add_test(s, "team_for", test_team_for) ||
        !CU_add_test(s, "jobs", test_jobs))
        return -1;
    return 0;
}
