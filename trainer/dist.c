/* dist.c - the trainer rank of a distributed job (see dist.h): the epoch
 * driver's backend whose parameters come from the servers (ps/client.h) and
 * whose gradients go to them layer by layer; lead.c has who leads the job
 * and how it ends. */
#include "trainer/dist.h"
#include "trainer/dist_job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/net/wire.h"
#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "common/util/fsutil.h"
#include "ps/client.h"
#include "trainer/epoch.h"
#include "trainer/jobdata.h"
#include "trainer/progress.h"

/* The model's hook: pushes the gradient of [b, e) to its servers as soon
 * as backward has produced it. */
static void push_range(void *ctx, size_t b, size_t e)
{
    dist_t *j = ctx;
    if (j->failed)
        return;
    double t0 = progress_now();
    if (client_push_range(j->ps, j->ep.grads, b, e, &j->perr) != 0)
        j->failed = 1;
    j->push_s += progress_now() - t0;
}

/* The parameters of step `clock` as elem, asking for them unless a
 * request is out. Returns 0, or -1 with err. */
static int pull_params(dist_t *j, long clock, int elem, err_t *err)
{
    if (!client_pull_in_flight(j->ps) && client_pull_send(j->ps, clock, elem, err) != 0)
        return -1;
    double t0 = progress_now();
    int rc = client_pull_wait(j->ps, j->ep.params, err);
    j->pull_s += progress_now() - t0;
    return rc;
}

/* Says goodbye to every server and waits for the end of the job. Raises
 * res->lost_trainers to what the servers report. Returns 0, or -1 with err. */
int dist_goodbye(dist_t *j, train_result_t *res, err_t *err)
{
    int lost = 0;
    int rc = client_goodbye(j->ps, &lost, err);
    if (lost > res->lost_trainers)
        res->lost_trainers = lost;
    return rc;
}

/* The leader: a checkpoint of the job after `step` steps: every server
 * writes its shard, then this trainer the manifest with the data order and
 * normalisation (ckptdir.h), last. Returns 0, or -1 with err. */
int dist_checkpoint_job(dist_t *j, long step, int periodic, err_t *err)
{
    const int tables = j->data.ctr, delta = tables && train_chain_next(&j->ep.chain, j->ep.cfg,
                                                                        step, periodic);
    if (client_checkpoint_write(j->ps, step, delta, err) != 0)
        return err_prefix(err, "checkpoint of step %ld", step);
    return train_commit_checkpoint(j->ep.cfg, j->own.out_dir, &j->data, step, j->ep.per_epoch,
                                   j->d->n_servers,
                                   tables ? &j->ep.chain : NULL, err);
}

/* A binary model's evaluation in a distributed job: every trainer runs the
 * WHOLE set, so that each has every score and the same exact AUC (and loss
 * and accuracy, summed in the order one process sums them) without moving
 * scores between trainers: the channel the evaluation's sums travel on
 * (client_reduce, a BARRIER at server 0) adds up at most CLIENT_REDUCE_MAX
 * values, and the AUC cannot be added up from per-trainer figures. The
 * price is the evaluation's compute on every trainer instead of a share.
 * Returns 0, or -1 with err. */
static int eval_whole(dist_t *j, const dataset_t *ds, double *loss, double *acc, double *auc,
                      err_t *err)
{
    double sum = 0;
    long right = 0;
    auc_clear(j->ep.auc);
    if (epoch_evaluate(&j->ep, ds, 0, ds->n, &sum, &right, j->ep.auc, err) != 0)
        return -1;
    *loss = sum / (double)ds->n;
    *acc = (double)right / (double)ds->n;
    *auc = auc_value(j->ep.auc);
    return 0;
}

/* Evaluates this trainer's share of ds with the parameters just pulled and
 * sums over trainers (a binary model: eval_whole). Returns 0, or -1 with err. */
static int eval_shared(dist_t *j, const dataset_t *ds, double *loss, double *acc, double *auc,
                       err_t *err)
{
    *auc = NAN;
    if (!ds || ds->n == 0) {
        *loss = *acc = NAN;
        return 0;
    }
    if (j->ep.auc)
        return eval_whole(j, ds, loss, acc, auc, err);
    const dist_opts_t *d = j->d;
    size_t lo, hi;
    data_batch_slice(ds->n, ds->n, 0, d->trainer, d->n_trainers, &lo, &hi);
    double v[3] = {0, 0, 1}; /* loss sum, right, trainers that took part */
    long right = 0;
    if (epoch_evaluate(&j->ep, ds, lo, hi, &v[0], &right, NULL, err) != 0)
        return -1;
    v[1] = (double)right;
    if (client_reduce(j->ps, v, 3, err) != 0)
        return -1;
    if (v[2] < d->n_trainers) {
        /* a trainer was lost (ASP / SSP go on without it): its share went
         * unevaluated, so each trainer evaluates the whole set (any of them
         * may have to report: trainer 0 may be the one lost) */
        v[0] = 0;
        right = 0;
        if (epoch_evaluate(&j->ep, ds, 0, ds->n, &v[0], &right, NULL, err) != 0)
            return -1;
        v[1] = (double)right;
    }
    *loss = v[0] / (double)ds->n;
    *acc = v[1] / (double)ds->n;
    return 0;
}

/* ---- the epoch driver's backend (epoch.h) -------------------------------- */

/* Before a step: trainer 0 stops the job here when asked (a signal, or a
 * server's flag); another trainer passes a signal on to the servers; then
 * the step's parameters are pulled, and a trainer told that trainer 0 is
 * lost leads from here on. */
static epoch_end_t dist_begin_step(epoch_t *e, long step, err_t *err)
{
    dist_t *j = e->ctx;
    client_set_step(j->ps, step);
    if (e->lead && !client_pull_in_flight(j->ps) &&
        (train_stop_signal || client_stop_requested(j->ps))) {
        j->res->led = 1;
        j->stop_rc = dist_stop_job(j, step, j->res, err);
        return EPOCH_STOPPED;
    }
    if (!e->lead && train_stop_signal && !j->asked_stop) {
        /* pass the request on: the servers flag it to trainer 0 */
        j->asked_stop = 1;
        if (client_ask_stop(j->ps, err) != 0)
            return EPOCH_HALT;
    }
    if (pull_params(j, step, j->pull_elem, err) != 0)
        return EPOCH_HALT;
    if (!e->lead && client_take_lead(j->ps)) { /* trainer 0 is gone: this one leads */
        char what[128];
        snprintf(what, sizeof what, "leads the job from step %ld (progress, checkpoints, "
                 "metrics, the model)", step);
        if (dist_take_lead(j, what, err) != 0)
            return EPOCH_FAILED;
    }
    /* The pull for the next step goes out after this step's pushes.
     * (Sending it now, so that each layer's piece could travel during
     * backward, was measured slower on 2 cores: the transfer competes with
     * compute for the same CPUs.) A trainer that is ahead still gets each
     * piece as soon as it is final. */
    return EPOCH_GO;
}

/* The gradient went to the servers layer by layer (push_range); a sparse
 * model's rows went after it (dist_push_rows), and their step ends here. */
static epoch_end_t dist_end_step(epoch_t *e, long step, err_t *err)
{
    dist_t *j = e->ctx;
    (void)step;
    if (j->failed) {
        *err = j->perr;
        return EPOCH_FAILED;
    }
    if (e->feed && client_push_rows_end(j->ps, err) != 0)
        return EPOCH_HALT;
    return EPOCH_GO;
}

/* A periodic checkpoint: the servers are at this step (in BSP exactly:
 * this trainer has not pushed it yet). */
static int dist_checkpoint(epoch_t *e, long step, err_t *err)
{
    return dist_checkpoint_job(e->ctx, step, 1, err);
}

/* The end of an epoch: the sums over trainers, then the model after the
 * epoch's last update in full precision (the reduction is a barrier, after
 * which every trainer's pushes of the epoch are in: ASP's trainer that
 * finished early would otherwise evaluate, and report, a model without the
 * others' last pushes). */
static epoch_end_t dist_end_epoch(epoch_t *e, long step, double sums[3], err_t *err)
{
    dist_t *j = e->ctx;
    if (client_reduce(j->ps, sums, 3, err) != 0 || pull_params(j, step, WIRE_F32, err) != 0)
        return EPOCH_HALT;
    return EPOCH_GO;
}

static epoch_end_t dist_evaluate(epoch_t *e, const dataset_t *ds, double *loss, double *acc,
                                 double *auc, err_t *err)
{
    return eval_shared(e->ctx, ds, loss, acc, auc, err) == 0 ? EPOCH_GO : EPOCH_HALT;
}

/* ---- embedding tables on the servers (click logs, model.sparse) -------- */

/* A batch's rows of every field's table from the servers that own them,
 * in one round trip, as they are after the previous step (a BSP server
 * answers once it is applied): made at first touch in training; read-only
 * (PEEK_ROWS) in evaluation. */
static int dist_fetch_rows(void *ctx, int n_fields, const uint64_t *const *ids, const size_t *n,
                           float *const *out, int training, err_t *err)
{
    epoch_t *e = ctx;
    dist_t *j = e->ctx;
    client_rows_t t[CFG_MAX_FIELDS];
    for (int k = 0; k < n_fields; k++)
        t[k] = (client_rows_t){(uint32_t)k, (size_t)e->cfg->model.sparse.dim, ids[k], n[k],
                               out[k]};
    double t0 = progress_now();
    int rc = client_pull_tables(j->ps, t, n_fields, e->step, !training, err);
    const double dt = progress_now() - t0;
    j->pull_s += dt;
    if (training) /* the feed fetched them inside the step's compute */
        j->rows_fetch_s += dt;
    return rc;
}

/* The step's row gradients to the servers (applied there: BSP once every
 * trainer has ended the step, in trainer order). */
static int dist_push_rows(void *ctx, int field, const uint64_t *ids, size_t n,
                          const float *grads, err_t *err)
{
    epoch_t *e = ctx;
    dist_t *j = e->ctx;
    double t0 = progress_now();
    int rc = client_push_rows(j->ps, (uint32_t)field, (size_t)e->cfg->model.sparse.dim, ids, n,
                              grads, err);
    j->push_s += progress_now() - t0;
    return rc;
}

/* The whole test set on every trainer (exact AUC, as eval_whole), streamed
 * with the model after the epoch (end_epoch pulled it). */
static epoch_end_t dist_evaluate_feed(epoch_t *e, double *loss, double *acc, double *auc,
                                      err_t *err)
{
    if (epoch_evaluate_feed(e, dist_fetch_rows, loss, acc, auc, err) == 0)
        return EPOCH_GO;
    return client_halt(((dist_t *)e->ctx)->ps) ? EPOCH_HALT : EPOCH_FAILED;
}

static const epoch_backend_t DIST = {
    .fetch_rows = dist_fetch_rows,
    .push_rows = dist_push_rows,
    .evaluate_feed = dist_evaluate_feed,
    .begin_step = dist_begin_step,
    .end_step = dist_end_step,
    .checkpoint = dist_checkpoint,
    .end_epoch = dist_end_epoch,
    .evaluate = dist_evaluate,
};

/* Builds the client of d's servers for cfg's job over n_params keys.
 * Returns it, or NULL with err. */
static client_t *connect_servers(const job_config_t *cfg, const dist_opts_t *d, size_t n_params,
                                 err_t *err)
{
    const compression_t comp = cfg->cluster.compression;
    client_opts_t co = {
        .sender = d->trainer, .n_servers = d->n_servers, .endpoints = d->endpoints,
        .hosts = d->hosts, .ranks = d->server_ranks, .auth = d->auth,
        .timeout_ms = cfg->cluster.timeout_ms, .n_params = n_params,
        .push_elem = comp == COMP_FP16 ? WIRE_F16 : comp == COMP_BF16 ? WIRE_BF16
                     : comp == COMP_TOPK ? WIRE_TOPK : WIRE_F32,
        .topk_ratio = cfg->cluster.topk_ratio,
    };
    return client_new(&co, err);
}

/* Prepares j: the model and data, the client, the buffers, the resumed
 * step, the epoch driver; logs the job's first line. Returns 0, or -1 with
 * err. */
static int setup(dist_t *j, err_t *err)
{
    epoch_t *e = &j->ep;
    const job_config_t *cfg = e->cfg;
    if (e->lead && fs_mkdirs(j->own.out_dir, err) != 0)
        return -1;
    if (train_prepare(cfg, &e->m, &j->data, err) != 0)
        return -1;
    j->n_params = model_n_params(e->m);
    j->data.ctr_parts = j->data.ctr ? j->d->n_trainers : 0; /* one part per trainer */
    if (!(j->ps = connect_servers(cfg, j->d, j->n_params, err)))
        return -1;
    const compression_t pc = cfg->cluster.pull_compression;
    j->pull_elem = pc == COMP_FP16 ? WIRE_F16 : pc == COMP_BF16 ? WIRE_BF16 : WIRE_F32;
    e->params = calloc(j->n_params, sizeof *e->params);
    e->grads = calloc(j->n_params, sizeof *e->grads);
    if (!e->params || !e->grads)
        return err_set(err, "out of memory for %zu parameters", j->n_params);
    if (epoch_setup(e, err) != 0)
        return -1;
    if (j->data.ctr)
        j->data.ctr_lines = ctr_feed_lines(e->feed); /* counted by the feed, with all parts */
    const size_t n_train = job_data_n_train(&j->data);
    if (j->own.resume) { /* the servers load the parameters; trainers take the step */
        optim_params_t op;
        optim_params_from_config(&op, cfg);
        e->step = e->step0 = train_resume_check(j->own.resume, j->own.resume_path, cfg, e->m,
                                                n_train, optim_slots(&op), e->total, err);
        if (e->step0 < 0 ||
            (j->data.ctr && train_resume_parts(j->own.resume, j->own.resume_path,
                                               j->data.ctr_parts, e->per_epoch, err) != 0))
            return -1;
    }
    team_set_grad_hook(e->team, push_range, j);
    if (e->lead)
        train_logf(&j->own, 0,
                   "rank %d trainer 0: %s, %zu parameters on %d server(s) (%d optimizer "
                   "thread(s) each), %d trainer(s) (%d thread(s) each), %s, %zu training "
                   "samples, global batch %d, %ld steps", j->d->rank, cfg->name, j->n_params,
                   j->d->n_servers, j->d->server_threads > 0 ? j->d->server_threads : 1,
                   j->d->n_trainers, team_size(e->team),
                   config_consistency_name(cfg->cluster.consistency), n_train, cfg->train.batch,
                   e->total);
    return 0;
}

int train_dist(const job_config_t *cfg, const dist_opts_t *d, const train_opts_t *opts,
               train_result_t *res, err_t *err)
{
    dist_t j;
    memset(&j, 0, sizeof j);
    memset(res, 0, sizeof *res);
    j.d = d;
    j.given = opts;
    j.own = *opts;
    j.res = res;
    j.ep = (epoch_t){.cfg = cfg, .opts = &j.own, .data = &j.data, .trainer = d->trainer,
                     .n_trainers = d->n_trainers, .lead = d->trainer == 0, .be = &DIST,
                     .ctx = &j};
    snprintf(j.ep.prefix, sizeof j.ep.prefix, "rank %d trainer %d: ", d->rank, d->trainer);
    if (!j.ep.lead)
        j.own.log = NULL;
    int rc = -1;
    if (setup(&j, err) == 0) {
        switch (epoch_run(&j.ep, err)) {
        case EPOCH_GO:
            rc = dist_end_job(&j, res, err);
            break;
        case EPOCH_STOPPED:
            rc = j.stop_rc;
            break;
        case EPOCH_HALT:
            rc = dist_on_halt(&j, res, err);
            break;
        case EPOCH_FAILED:
            rc = -1;
            break;
        }
    }
    if (rc != 0 && j.ps && !client_halt(j.ps))
        client_fail(j.ps); /* tell the servers to stop the job rather than wait for a timeout */
    client_destroy(&j.ps);
    free(j.ep.params);
    free(j.ep.grads);
    epoch_free(&j.ep);
    model_destroy(&j.ep.m);
    job_data_free(&j.data);
    return rc;
}
