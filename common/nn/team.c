/* team.c - N threads running one model over one batch (see team.h). */
#include "common/nn/team.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/nn/model_int.h"
#include "common/util/pool.h"

/* The GEMM threading rule, measured on this project's machine (README,
 * "Threads"): splitting a batch among workers costs each layer's gradient a
 * sum over the workers' buffers, which is memory-bound and grows with the
 * layer's weights, while a pass over the whole batch shared by output
 * columns (or OpenBLAS's own threads, for kinds that cannot split) needs
 * none and gains once the GEMM is large. A layer runs over the whole batch
 * when it has at least WHOLE_MIN_WEIGHTS parameters and the batch at least
 * WHOLE_MIN_BATCH samples. */
#define WHOLE_MIN_WEIGHTS (1L << 20)
#define WHOLE_MIN_BATCH 64
/* Work over fewer keys than this per worker (a sum of gradients, an
 * optimizer's update) is not split: the cache lines it would send between
 * the cores cost more than the time it saves (measured on the CNN's 54,410
 * keys: Adam's update took 20 us a step on one thread, 25-35 us on two). */
#define SPLIT_MIN_KEYS (1L << 16)
/* A pass over the whole batch is cut into this many parts per worker, and
 * each worker takes the next part not yet taken, so that a worker that
 * starts late (its core lent to a parameter server on the same node, or
 * another job) leaves its part to one that is free. The parts' bounds
 * depend only on the number of workers, so a result still depends only on
 * N. More parts would balance finer, but every part packs the whole shared
 * operand (the batch's input, or its gradient) again: measured on the
 * bench MLP, 2 workers on 2 cores, 40 steps (2026-12-07, 16:40, alternating
 * runs), 1 part per worker against 4: medians of 770 and 740 samples/s (1
 * ahead in 5 of 6 rounds; 2 parts: 760 in 4 rounds), a worker's time in
 * the split GEMMs 12.3 s against 13.1 s (medians of 3); 1 server + 1
 * trainer on the same cores: 600 and 608 (3 rounds, within the noise). Earlier that day 4 parts had measured
 * 439 against 430-433 beside a CPU hog, and 531 against 505 with the
 * server (noisy: 438-591), which the second measurement did not repeat. */
#define SPLIT_PARTS_PER_WORKER 1

typedef enum { JOB_TRAIN, JOB_EVAL, JOB_PREDICT, JOB_FOR } job_t;

struct team_t {
    const model_t *m;
    pool_t *pool;
    int n, cap;
    size_t n_params;
    model_ws_t *big;                     /* the batch's activations; scratch for whole ops */
    model_ws_t **part;                   /* n views into big's rows */
    float **g;                           /* n gradient buffers; g[0] is the caller's in a step */
    unsigned char whole[CFG_MAX_LAYERS]; /* op i runs over the whole batch */
    int n_whole;
    size_t sum_b[CFG_MAX_LAYERS], sum_e[CFG_MAX_LAYERS]; /* key ranges the workers sum */
    int n_sums;
    size_t sum_len;                      /* their total length */
    int split_sum;                       /* the workers share the sum (else worker 0 alone) */
    atomic_int next_part[LAYER_SPLIT_STAGES]; /* a split pass: the next part to take, per stage */
    model_grad_hook_fn hook;
    void *hook_ctx;
    team_range_fn update;                /* team_set_update: the optimizer, layer by layer */
    void *update_ctx;
    float *step_params;                  /* team_set_step: fused SGD steps, or NULL */
    float step_lr;
    float *dx;                           /* the input's gradient [B][input_size], or NULL */
    /* the job under way */
    job_t job;
    const model_run_t *run;
    const float *params, *x;
    const int32_t *y;
    int B;
    float scale;
    int *lo, *hi;                        /* n: each worker's rows */
    double *loss;                        /* n */
    int *correct;                        /* n */
    team_range_fn fn;
    void *fn_ctx;
    size_t fn_n;
};

int team_whole_batch(const model_t *m, int layer, int B)
{
    const layer_t *L = model_layer(m, layer);
    long weights = 0;
    for (int k = 0; k < LAYER_MAX_PARAMS; k++)
        if (L->param[k] >= 0)
            weights += (long)model_params(m)->t[L->param[k]].size;
    return B >= WHOLE_MIN_BATCH && weights >= WHOLE_MIN_WEIGHTS;
}

/* Decides which ops run over the whole batch and which key ranges the
 * workers must sum (those of the other ops with parameters). */
static void team_plan(team_t *t)
{
    const model_t *m = t->m;
    for (int i = 0; i < m->n_ops; i++) {
        size_t b, e;
        if (!model_op_params(m, i, &b, &e))
            continue;
        t->whole[i] = t->n > 1 && team_whole_batch(m, m->ops[i].layer, t->cap);
        t->n_whole += t->whole[i];
        if (t->whole[i])
            continue;
        t->sum_b[t->n_sums] = b;
        t->sum_e[t->n_sums++] = e;
        t->sum_len += e - b;
    }
    t->split_sum = t->sum_len / (size_t)t->n >= SPLIT_MIN_KEYS;
}

team_t *team_new(const model_t *m, int n_threads, int max_batch, err_t *err)
{
    team_t *t = calloc(1, sizeof *t);
    if (!t) {
        err_set(err, "team: out of memory");
        return NULL;
    }
    t->m = m;
    t->n = n_threads < 1 ? 1 : n_threads;
    t->cap = max_batch;
    t->n_params = model_n_params(m);
    team_plan(t);
    const int rows = (max_batch + t->n - 1) / t->n;
    t->part = calloc((size_t)t->n, sizeof *t->part);
    t->g = calloc((size_t)t->n, sizeof *t->g);
    t->lo = calloc((size_t)t->n, sizeof *t->lo);
    t->hi = calloc((size_t)t->n, sizeof *t->hi);
    t->loss = calloc((size_t)t->n, sizeof *t->loss);
    t->correct = calloc((size_t)t->n, sizeof *t->correct);
    if (!t->part || !t->g || !t->lo || !t->hi || !t->loss || !t->correct)
        goto oom;
    if (!(t->big = model_ws_new(m, max_batch, err)) || !(t->pool = pool_new(t->n, err)))
        goto fail;
    for (int w = 0; w < t->n; w++) {
        if (!(t->part[w] = model_ws_new_view(m, rows, err)))
            goto fail;
        /* worker 0 sums into the caller's buffer; the others keep their own
         * (zero between steps: summing clears them) */
        if (w > 0 && !(t->g[w] = calloc(t->n_params ? t->n_params : 1, sizeof(float))))
            goto oom;
    }
    return t;
oom:
    err_set(err, "team: out of memory for %d workers over %zu parameters", t->n, t->n_params);
fail:
    team_destroy(&t);
    return NULL;
}

void team_destroy(team_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    team_t *t = *self_p;
    pool_destroy(&t->pool);
    for (int w = 0; t->part && w < t->n; w++)
        model_ws_destroy(&t->part[w]);
    for (int w = 1; t->g && w < t->n; w++)
        free(t->g[w]);
    model_ws_destroy(&t->big);
    free(t->part);
    free(t->g);
    free(t->lo);
    free(t->hi);
    free(t->loss);
    free(t->correct);
    free(t);
    *self_p = NULL;
}

int team_size(const team_t *t)
{
    return t->n;
}

int team_n_whole(const team_t *t)
{
    return t->n_whole;
}

void team_set_grad_hook(team_t *t, model_grad_hook_fn fn, void *ctx)
{
    t->hook = fn;
    t->hook_ctx = ctx;
}

void team_set_update(team_t *t, team_range_fn fn, void *ctx)
{
    t->update = fn;
    t->update_ctx = ctx;
}

void team_set_step(team_t *t, float *params, float lr)
{
    t->step_params = params;
    t->step_lr = lr;
}

/* 1 when op i's step is fused into its backward (team_set_step): one
 * worker (several would each hold a part of the gradient) and a kind that
 * can. */
static int fused(const team_t *t, int i)
{
    return t->step_params && t->n == 1 && model_op_fusable(t->m, i);
}

/* 1 when the workers meet after each layer with parameters (a hook or an
 * update wants its range as soon as it is final); else they sum once. */
static int per_layer(const team_t *t)
{
    return t->hook || t->update;
}

void team_set_input_grad(team_t *t, float *dx)
{
    t->dx = dx;
}

/* Where op i's backward writes its input's gradient in workspace v, whose
 * first sample is sample lo of the batch: the op below's dout, the team's
 * dx for op 0 when it asks for one, or NULL when nothing below needs it. */
static float *din_of(const team_t *t, const model_ws_t *v, int i, int lo)
{
    if (i > t->m->first_trainable || (t->dx && i > 0))
        return v->dout[i - 1];
    return t->dx && i == 0 ? t->dx + (size_t)lo * t->m->input_size : NULL;
}

/* [*b, *e): worker w's share of n items cut into t->n parts; all of them
 * on worker 0 when there are too few to split (SPLIT_MIN_KEYS a worker). */
static void share(const team_t *t, int w, size_t n, size_t *b, size_t *e)
{
    const size_t parts = n / (size_t)t->n >= SPLIT_MIN_KEYS ? (size_t)t->n : 1;
    if ((size_t)w >= parts) {
        *b = *e = n;
        return;
    }
    pool_share(n, w, (int)parts, b, e);
}

/* Sums the workers' gradients of keys [b, e) into g[0] in worker order and
 * clears the others for the next step. */
static void sum_keys(team_t *t, size_t b, size_t e)
{
    float *g0 = t->g[0];
    for (int u = 1; u < t->n; u++) {
        float *gu = t->g[u];
#pragma omp simd
        for (size_t k = b; k < e; k++) {
            g0[k] += gu[k];
            gu[k] = 0.0f;
        }
    }
}

/* Worker w's share of the keys all workers sum (t->sum_*), or of the range
 * [b, e) when one is given (b < e). */
static void sum_share(team_t *t, int w, size_t b, size_t e)
{
    if (b < e) {
        size_t sb, se;
        share(t, w, e - b, &sb, &se);
        sum_keys(t, b + sb, b + se);
        return;
    }
    size_t from, to, at = 0;
    share(t, w, t->sum_len, &from, &to);
    for (int r = 0; r < t->n_sums && at < to; r++) {
        const size_t len = t->sum_e[r] - t->sum_b[r];
        const size_t lo = from > at ? from - at : 0, hi = to - at < len ? to - at : len;
        if (lo < hi)
            sum_keys(t, t->sum_b[r] + lo, t->sum_b[r] + hi);
        at += len;
    }
}

/* The calling worker's parts of stage `stage` of split op i: the next
 * part not yet taken, until none is left. */
static void split_parts(team_t *t, int i, int backward, int stage)
{
    model_ws_t *b = t->big;
    const model_t *m = t->m;
    const float *in = i ? b->out[i - 1] : t->x;
    float *dnext = i == m->n_ops - 1 ? b->dlogits : b->dout[i];
    float *din = din_of(t, b, i, 0);
    const int n_parts = SPLIT_PARTS_PER_WORKER * t->n;
    for (int p; (p = atomic_fetch_add(&t->next_part[stage], 1)) < n_parts;)
        model_op_split(b, i, t->run, t->params, t->g[0], in, t->B, dnext, din, backward, p,
                       n_parts, stage);
}

/* Op i over the whole batch: split among the workers when its kind can
 * split a pass (each single-threaded OpenBLAS on its share), else on worker
 * 0 with OpenBLAS's threads while the others wait; forward, or backward
 * (grads: g[0]). */
static void whole_op(team_t *t, int w, int i, int backward)
{
    const model_t *m = t->m;
    if (model_op_can_split(m, i)) {
        if (w == 0) /* every worker is past the last split pass's parts */
            for (int s = 0; s < LAYER_SPLIT_STAGES; s++)
                atomic_store(&t->next_part[s], 0);
        pool_barrier(t->pool);
        split_parts(t, i, backward, 0);
        pool_barrier(t->pool);
        if (backward) {
            split_parts(t, i, backward, 1);
            pool_barrier(t->pool);
        }
        return;
    }
    pool_barrier(t->pool);
    if (w == 0) {
        model_ws_t *b = t->big;
        const model_t *m = t->m;
        const float *in = i ? b->out[i - 1] : t->x;
        openblas_set_num_threads(t->n);
        if (!backward) {
            model_op_forward(b, i, t->run, t->params, in, t->B);
        } else {
            float *dnext = i == m->n_ops - 1 ? b->dlogits : b->dout[i];
            float *din = din_of(t, b, i, 0);
            model_op_backward(b, i, t->run, t->params, t->g[0], in, t->B, dnext, din);
        }
        openblas_set_num_threads(1);
    }
    pool_barrier_sleep(t->pool); /* the others leave their cores to OpenBLAS's threads */
}

/* Forward over worker w's rows (run: its slice's context). Returns the
 * raw output of its rows. */
static const float *forward(team_t *t, int w, const model_run_t *run)
{
    const model_t *m = t->m;
    model_ws_t *v = t->part[w];
    const int lo = t->lo[w], B = t->hi[w] - lo;
    for (int i = 0; i < m->n_ops; i++) {
        if (t->whole[i])
            whole_op(t, w, i, 0);
        else if (B > 0)
            model_op_forward(v, i, run, t->params, i ? v->out[i - 1] : t->x + (size_t)lo *
                             m->input_size, B);
    }
    return v->out[m->n_ops - 1];
}

/* Once op i's gradient is complete on every worker: its range summed and
 * updated (each worker its share of the keys, so that the update reads what
 * the sum just wrote), and worker 0 hands it to the hook while the others go
 * on. The update needs no meeting after it: no later pass of the step reads
 * this layer's parameters. */
static void layer_done(team_t *t, int w, int i)
{
    size_t b, e;
    if (!model_op_params(t->m, i, &b, &e))
        return;
    pool_barrier(t->pool);
    if (!t->whole[i])
        sum_share(t, w, b, e);
    if (t->update && !fused(t, i)) {
        size_t sb, se;
        share(t, w, e - b, &sb, &se);
        if (sb < se)
            t->update(t->update_ctx, b + sb, b + se);
    }
    if (!t->hook)
        return;
    pool_barrier(t->pool);
    if (w == 0)
        t->hook(t->hook_ctx, b, e);
}

/* Backward over worker w's rows, from its rows of the loss's gradient. */
static void backward(team_t *t, int w, const model_run_t *run)
{
    const model_t *m = t->m;
    model_ws_t *v = t->part[w];
    const int lo = t->lo[w], B = t->hi[w] - lo;
    float *dnext = v->dlogits;
    for (int i = m->n_ops - 1; i >= 0; i--) {
        float *din = din_of(t, v, i, lo);
        const float *in = i ? v->out[i - 1] : t->x + (size_t)lo * m->input_size;
        if (t->whole[i])
            whole_op(t, w, i, 1);
        else if (B > 0 && fused(t, i))
            model_op_backward_step(v, i, run, t->step_params, t->step_lr, in, B, dnext, din);
        else if (B > 0)
            model_op_backward(v, i, run, t->params, t->g[w], in, B, dnext, din);
        if (per_layer(t))
            layer_done(t, w, i);
        if (!din)
            break; /* nothing below this op has parameters */
        dnext = din;
    }
}

/* Worker w's part of a training step. */
static void train_part(team_t *t, int w)
{
    model_ws_t *v = t->part[w];
    const int lo = t->lo[w], B = t->hi[w] - lo;
    model_ws_view_at(v, t->big, lo);
    v->x0 = t->x + (size_t)lo * t->m->input_size;
    v->dx0 = t->dx ? t->dx + (size_t)lo * t->m->input_size : NULL;
    model_run_t run = *t->run;
    run.first += lo;
    size_t zb, ze; /* g[0] is the caller's: cleared here, each worker a share, */
    share(t, w, t->n_params, &zb, &ze); /* unless the update left it clear */
    if (!t->update)
        memset(t->g[0] + zb, 0, (ze - zb) * sizeof(float));
    const float *out = forward(t, w, &run);
    t->loss[w] = 0;
    t->correct[w] = 0;
    if (B > 0)
        t->loss[w] = model_ws_loss(v, out, t->y + lo, B, t->scale, v->dlogits, &t->correct[w]);
    /* g[0] cleared by all before anyone adds to it (only worker 0 adds to
     * it, so when it cleared all of g[0] itself there is nothing to wait for) */
    if (t->n_params / (size_t)t->n >= SPLIT_MIN_KEYS || t->n_whole) /* the same on every worker */
        pool_barrier(t->pool);
    backward(t, w, &run);
    if (!per_layer(t) && t->split_sum) {
        pool_barrier(t->pool);
        sum_share(t, w, 0, 0);
    }
}

/* Worker w's part of an evaluation or a prediction. */
static void eval_part(team_t *t, int w)
{
    model_ws_t *v = t->part[w];
    const int lo = t->lo[w], B = t->hi[w] - lo;
    model_ws_view_at(v, t->big, lo);
    v->x0 = t->x + (size_t)lo * t->m->input_size;
    v->dx0 = NULL;
    const float *out = forward(t, w, NULL);
    t->loss[w] = 0;
    t->correct[w] = 0;
    if (B <= 0)
        return;
    if (t->job == JOB_EVAL) {
        t->loss[w] = model_ws_loss(v, out, t->y + lo, B, 1.0f, NULL, &t->correct[w]);
    } else if (t->m->out_act) {
        const int C = t->m->n_out;
        t->m->out_act->forward(v->probs, out, (size_t)B * C, C);
    }
}

static void work(void *ctx, int w)
{
    team_t *t = ctx;
    switch (t->job) {
    case JOB_TRAIN:
        train_part(t, w);
        break;
    case JOB_EVAL:
    case JOB_PREDICT:
        eval_part(t, w);
        break;
    case JOB_FOR: {
        size_t b, e;
        share(t, w, t->fn_n, &b, &e);
        if (b < e)
            t->fn(t->fn_ctx, b, e);
        break;
    }
    }
}

/* Cuts B samples into the workers' slices and runs job. */
static void run_job(team_t *t, job_t job, int B)
{
    const int base = B / t->n, rem = B % t->n;
    for (int w = 0; w < t->n; w++) {
        t->lo[w] = w * base + (w < rem ? w : rem);
        t->hi[w] = t->lo[w] + base + (w < rem);
    }
    t->job = job;
    t->B = B;
    t->big->x0 = t->x; /* the whole batch's, for ops over it */
    t->big->dx0 = job == JOB_TRAIN ? t->dx : NULL;
    pool_run(t->pool, work, t);
}

/* The job's loss (summed in worker order) and samples right. */
static double totals(const team_t *t, int *correct)
{
    double loss = 0;
    int right = 0;
    for (int w = 0; w < t->n; w++) {
        loss += t->loss[w];
        right += t->correct[w];
    }
    if (correct)
        *correct += right;
    return loss;
}

double team_train_step(team_t *t, const model_run_t *run, const float *params, float *grads,
                       const float *x, const int32_t *y, int B, float scale, int *correct)
{
    t->run = run;
    t->params = params;
    t->x = x;
    t->y = y;
    t->scale = scale;
    t->g[0] = grads;
    run_job(t, JOB_TRAIN, B);
    if (!per_layer(t) && t->n > 1 && !t->split_sum)
        sum_share(t, 0, 0, 0); /* too few keys to split: worker 0 alone, once all are done */
    t->g[0] = NULL;
    return totals(t, correct);
}

double team_eval_batch(team_t *t, const float *params, const float *x, const int32_t *y, int B,
                       int *correct)
{
    t->run = NULL;
    t->params = params;
    t->x = x;
    t->y = y;
    run_job(t, JOB_EVAL, B);
    return totals(t, correct);
}

const float *team_eval_probs(const team_t *t)
{
    return t->m->out_act ? t->big->probs : NULL;
}

const float *team_predict(team_t *t, const float *params, const float *x, int B)
{
    t->run = NULL;
    t->params = params;
    t->x = x;
    t->y = NULL;
    run_job(t, JOB_PREDICT, B);
    return t->m->out_act ? t->big->probs : t->big->out[t->m->n_ops - 1];
}

void team_for(team_t *t, size_t n, team_range_fn fn, void *ctx)
{
    if (n / (size_t)t->n < SPLIT_MIN_KEYS) { /* not worth waking the others */
        if (n > 0)
            fn(ctx, 0, n);
        return;
    }
    t->fn = fn;
    t->fn_ctx = ctx;
    t->fn_n = n;
    t->job = JOB_FOR;
    pool_run(t->pool, work, t);
}
