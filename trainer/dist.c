/* dist.c - the trainer rank of a distributed job (see dist.h): the training
 * loop, with the parameter servers behind ps/client.h. */
#include "trainer/dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/net/wire.h"
#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "common/util/fsutil.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "ps/client.h"
#include "trainer/evaluate.h"
#include "trainer/jobdata.h"
#include "trainer/progress.h"
#include "trainer/report.h"

/* A trainer's job: what the loop and the end of the job share. */
typedef struct {
    const job_config_t *cfg;
    const dist_opts_t *d;
    train_opts_t own;            /* the options as this trainer uses them: it logs only
                                  * when it leads (trainer 0, or the one in its place) */
    const train_opts_t *given;   /* the caller's */
    job_data_t data;
    model_t *m;
    client_t *ps;
    float *params, *grads;       /* n_params each */
    size_t n_params;
    float *xb;                   /* a batch of inputs */
    int32_t *yb;                 /* its labels */
    uint32_t *perm;              /* the epoch's data order */
    epoch_row_t *rows;           /* one per epoch */
    int epochs_done;
    int lead;                    /* this trainer leads the job (see client_take_lead) */
    int pull_elem;               /* WIRE_F32, or WIRE_F16 / WIRE_BF16 (cluster.pull_compression) */
    long per_epoch, total, step0, step, samples;
    double t0, train_s, last_ckpt_s;
    int failed;                  /* a push failed (perr says why) */
    err_t perr;
    double push_s, pull_s, compute_s;
} dist_t;

/* How run_epochs (or an epoch) ended. */
typedef enum {
    EPOCHS_DONE,     /* every step ran */
    EPOCHS_STOPPED,  /* trainer 0 stopped the job on request (stop_job's status in *rc) */
    EPOCHS_HALT,     /* a request failed: the job may halt (client_halt says) */
    EPOCHS_FAILED,   /* an error (err) */
} epochs_end_t;

/* The model's hook: pushes the gradient of [b, e) to its servers as soon
 * as backward has produced it. */
static void push_range(void *ctx, size_t b, size_t e)
{
    dist_t *j = ctx;
    if (j->failed)
        return;
    double t0 = progress_now();
    if (client_push_range(j->ps, j->grads, b, e, &j->perr) != 0)
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
    int rc = client_pull_wait(j->ps, j->params, err);
    j->pull_s += progress_now() - t0;
    return rc;
}

/* Says goodbye to every server and waits for the end of the job. Raises
 * res->lost_trainers to what the servers report. Returns 0, or -1 with err. */
static int goodbye(dist_t *j, train_result_t *res, err_t *err)
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
static int checkpoint_job(dist_t *j, long step, err_t *err)
{
    if (client_checkpoint_write(j->ps, step, err) != 0)
        return err_prefix(err, "checkpoint of step %ld", step);
    char root[4200];
    snprintf(root, sizeof root, "%s/checkpoints", j->own.out_dir);
    uint8_t order[TRAIN_ORDER_LEN];
    train_order_record(order, j->cfg, j->data.train->n, step);
    const norm_stats_t *nm = &j->data.norm;
    int kind = nm->kind != NORM_NONE && nm->mean ? (int)nm->kind : 0;
    return ckptdir_commit(root, step, (int)(step / j->per_epoch), j->d->n_servers, order,
                          sizeof order, kind, nm->dim, nm->mean, nm->inv_std,
                          j->cfg->checkpoint.keep, err);
}

/* A trainer other than 0 that has finished its steps: trainer 0 leads the
 * end of the job (final checkpoint, model files, metrics, summary), so this
 * one waits, polling STATS with heartbeats, until trainer 0 has said goodbye
 * to a server (it has written all that) or every server gave it up for lost.
 * In the second case the lowest trainer left leads in its place: *take is
 * set to 1 on that trainer. Returns 0, or -1 with err. */
static int wait_for_lead(dist_t *j, int *take, err_t *err)
{
    *take = 0;
    for (;;) {
        client_stats_t ss;
        if (client_heartbeat(j->ps, err) != 0 || client_stats(j->ps, &ss, err) != 0)
            return -1;
        if (ss.lead_done)
            return 0;
        if (ss.lead_lost_on == j->d->n_servers) {
            *take = ss.next_lead == j->d->trainer;
            return 0;
        }
        usleep(100 * 1000);
    }
}

/* Evaluates this trainer's share of ds with the parameters just pulled and
 * sums over trainers. Returns 0, or -1 with err. */
static int eval_shared(dist_t *j, const dataset_t *ds, double *loss, double *acc, err_t *err)
{
    if (!ds || ds->n == 0) {
        *loss = *acc = NAN;
        return 0;
    }
    const dist_opts_t *d = j->d;
    size_t lo, hi;
    data_batch_slice(ds->n, ds->n, 0, d->trainer, d->n_trainers, &lo, &hi);
    double v[3] = {0, 0, 1}; /* loss sum, right, trainers that took part */
    long right = 0;
    evaluate_range(j->m, j->params, ds, lo, hi, &v[0], &right);
    v[1] = (double)right;
    if (client_reduce(j->ps, v, 3, err) != 0)
        return -1;
    if (v[2] < d->n_trainers) {
        /* a trainer was lost (ASP / SSP go on without it): its share went
         * unevaluated, so each trainer evaluates the whole set (any of them
         * may have to report: trainer 0 may be the one lost) */
        v[0] = 0;
        right = 0;
        evaluate_range(j->m, j->params, ds, 0, ds->n, &v[0], &right);
        v[1] = (double)right;
    }
    *loss = v[0] / (double)ds->n;
    *acc = v[1] / (double)ds->n;
    return 0;
}

/* Trainer 0, asked to stop (a signal here, or a flag from a server) at
 * the start of `step`: every server refuses pulls from this step on, writes
 * its shard once the step before is complete, and the job ends with that
 * checkpoint. Returns 0, or -1 with err. */
static int stop_job(dist_t *j, long step, train_result_t *res, err_t *err)
{
    if (client_stop_at(j->ps, step, err) != 0 || checkpoint_job(j, step, err) != 0)
        return -1;
    train_logf(&j->own, 0, "rank %d trainer %d: stopped at step %ld on request: checkpoint "
               "written to %s/checkpoints/step-%09ld; continue with --resume %s", j->d->rank,
               j->d->trainer, step, j->own.out_dir, step, j->own.out_dir);
    res->stopped = 1;
    res->steps = step;
    return goodbye(j, res, err);
}

/* The job halts (a server refused a request with ERROR stopping or lost):
 * the leading trainer (lead: trainer 0, or the lowest one left when trainer
 * 0 is the one lost) writes a checkpoint of the last step every server
 * completed, when they all agree on it, and every trainer says goodbye.
 * Returns 0 (stopped on request; or a trainer that does not lead,
 * res->stopped = 2), or -1 with err saying what happened and where the
 * checkpoint is. */
static int halt_job(dist_t *j, int lead, train_result_t *res, err_t *err)
{
    err_t e;
    char why[ERR_LEN];
    const char *out = j->own.out_dir;
    snprintf(why, sizeof why, "%s", client_halt_msg(j->ps));
    res->steps = j->step;
    if (client_halt(j->ps) == CLIENT_STOPPING) {
        res->stopped = 1;
        goodbye(j, res, &e);
        return 0;
    }
    res->stopped = 2;
    if (!lead) { /* trainer 0 writes the checkpoint; this one leaves quietly */
        goodbye(j, res, &e);
        snprintf(err->msg, sizeof err->msg, "the job halts: %.400s", why);
        return 0;
    }
    /* the step the servers stand at: complete on every one of them */
    client_stats_t ss;
    char done[ERR_LEN + 200];
    if (client_stats(j->ps, &ss, &e) != 0) {
        snprintf(done, sizeof done, "no checkpoint (%s)", e.msg);
    } else if (ss.version_min != ss.version_max || ss.partial) {
        snprintf(done, sizeof done, "the servers stand between steps %lld and %lld%s, so no "
                 "consistent checkpoint could be written; continue from the last periodic one "
                 "with --resume %s", (long long)ss.version_min,
                 (long long)(ss.version_max + ss.partial),
                 ss.partial ? " (part of a step applied)" : "", out);
    } else {
        long k = (long)ss.version_min;
        if (checkpoint_job(j, k, &e) != 0)
            snprintf(done, sizeof done, "the checkpoint failed: %s", e.msg);
        else
            snprintf(done, sizeof done, "checkpoint of step %ld written to %s/checkpoints; "
                     "continue with --resume %s", k, out, out);
    }
    goodbye(j, res, &e);
    return err_set(err, "the job stops: %.200s; %.280s", why, done);
}

/* This trainer leads from now on (trainer 0 was lost): its log is switched
 * on and `what` it does in trainer 0's place is said. Returns 0, or -1 with
 * err (the run folder cannot be made). */
static int take_lead(dist_t *j, const char *what, err_t *err)
{
    j->lead = 1;
    j->own.log = j->given->log;
    train_logf(&j->own, 0, "rank %d trainer %d: trainer 0 (rank %d) was lost: this trainer %s",
               j->d->rank, j->d->trainer, j->d->n_servers, what);
    return fs_mkdirs(j->own.out_dir, err);
}

/* The end of an epoch: the model after its last update, in full precision
 * (the reduction is a barrier, after which every trainer's pushes of the
 * epoch are in: ASP's trainer that finished early would otherwise evaluate,
 * and report, a model without the others' last pushes), evaluated, its row
 * in metrics.csv. Returns EPOCHS_DONE (the epoch is done), EPOCHS_HALT or
 * EPOCHS_FAILED (err). */
static epochs_end_t end_epoch(dist_t *j, int epoch, double *sums, long ep_global, double ep_train_s,
                     double ep_t0, err_t *err)
{
    if (client_reduce(j->ps, sums, 3, err) != 0 || pull_params(j, j->step, WIRE_F32, err) != 0)
        return EPOCHS_HALT;
    epoch_row_t *r = &j->rows[j->epochs_done];
    r->epoch = epoch + 1;
    r->step = j->step;
    r->train_loss = sums[0] / sums[2];
    r->train_acc = sums[1] / sums[2];
    r->samples_per_s = ep_global / (ep_train_s > 0 ? ep_train_s : 1e-9);
    if (eval_shared(j, j->data.val, &r->val_loss, &r->val_acc, err) != 0 ||
        eval_shared(j, j->data.test, &r->test_loss, &r->test_acc, err) != 0)
        return EPOCHS_HALT;
    r->wall_s = progress_now() - j->t0;
    j->epochs_done++;
    if (!j->lead)
        return EPOCHS_DONE;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "rank %d trainer %d: ", j->d->rank, j->d->trainer);
    train_log_epoch(&j->own, prefix, r, j->cfg->train.epochs, j->data.val != NULL,
                    progress_now() - ep_t0);
    if (report_write_metrics(j->own.out_dir, j->rows, j->epochs_done, err) != 0)
        return EPOCHS_FAILED;
    return EPOCHS_DONE;
}

/* The training loop: every step pulls the parameters of the step, computes
 * the gradient of this trainer's slice of the global batch and pushes it
 * layer by layer (push_range). Returns how it ended; *rc is stop_job's
 * status after EPOCHS_STOPPED. */
static epochs_end_t run_epochs(dist_t *j, train_result_t *res, int *rc, err_t *err)
{
    const job_config_t *cfg = j->cfg;
    const dist_opts_t *d = j->d;
    const size_t n_train = j->data.train->n;
    const int batch = cfg->train.batch;
    int asked_stop = 0;
    long step = j->step0;
    for (int epoch = (int)(step / j->per_epoch); epoch < cfg->train.epochs && step < j->total;
         epoch++) {
        data_permutation(j->perm, n_train, cfg->train.seed, (uint64_t)epoch);
        double ep_t0 = progress_now(), ep_train_s = 0;
        double sums[3] = {0, 0, 0}; /* loss, right, seen (this trainer) */
        long ep_global = 0;
        for (long b = step % j->per_epoch; b < j->per_epoch && step < j->total; b++) {
            double s0 = progress_now();
            j->step = step;
            client_set_step(j->ps, step);
            if (j->lead && !client_pull_in_flight(j->ps) &&
                (train_stop_signal || client_stop_requested(j->ps))) {
                res->led = 1;
                *rc = stop_job(j, step, res, err);
                return EPOCHS_STOPPED;
            }
            if (!j->lead && train_stop_signal && !asked_stop) {
                /* pass the request on: the servers flag it to trainer 0 */
                asked_stop = 1;
                if (client_ask_stop(j->ps, err) != 0)
                    return EPOCHS_HALT;
            }
            if (pull_params(j, step, j->pull_elem, err) != 0)
                return EPOCHS_HALT;
            if (!j->lead && client_take_lead(j->ps)) { /* trainer 0 is gone: this one leads */
                char what[128];
                snprintf(what, sizeof what, "leads the job from step %ld (progress, checkpoints, "
                         "metrics, the model)", step);
                if (take_lead(j, what, err) != 0)
                    return EPOCHS_FAILED;
            }
            /* the servers are at this step (in BSP exactly: trainer 0 has not pushed it) */
            if (j->lead && step > j->step0 && train_checkpoint_due(cfg, step, &j->last_ckpt_s)) {
                if (checkpoint_job(j, step, err) != 0)
                    return EPOCHS_FAILED;
                train_logf(&j->own, 0, "rank %d trainer %d: checkpoint of step %ld written",
                           d->rank, d->trainer, step);
            }
            /* The pull for the next step goes out after this step's pushes.
             * (Sending it now, so that each layer's piece could travel
             * during backward, was measured slower on 2 cores: the transfer
             * competes with compute for the same CPUs.) A trainer that is
             * ahead still gets each piece as soon as it is final. */
            size_t glo, ghi, lo, hi;
            data_batch_slice(n_train, (size_t)batch, (size_t)b, 0, 1, &glo, &ghi);
            data_batch_slice(n_train, (size_t)batch, (size_t)b, d->trainer, d->n_trainers, &lo,
                             &hi);
            const int gB = (int)(ghi - glo), B = (int)(hi - lo);
            memset(j->grads, 0, j->n_params * sizeof *j->grads);
            double c0 = progress_now(), push0 = j->push_s;
            if (B > 0) {
                data_gather(j->data.train, j->perm, lo, hi, j->xb, j->yb);
                int ok = 0;
                /* 1/(global batch): the trainers' pushes add up to the batch mean */
                const model_run_t run = {.training = 1, .step = step, .first = (long)(lo - glo)};
                sums[0] += model_train_step(j->m, &run, j->params, j->grads, j->xb, j->yb, B,
                                            1.0f / (float)gB, &ok);
                sums[1] += ok;
                sums[2] += B;
            } else {
                model_emit_grad_ranges(j->m); /* an empty slice still owes its (zero) push */
            }
            if (j->failed) {
                *err = j->perr;
                return EPOCHS_FAILED;
            }
            j->compute_s += (progress_now() - c0) - (j->push_s - push0);
            step++;
            ep_global += gB;
            ep_train_s += progress_now() - s0;
            if (j->lead && (step % cfg->train.log_every == 0 || b + 1 == j->per_epoch ||
                            step == j->total)) {
                double sps = ep_global / (ep_train_s > 0 ? ep_train_s : 1e-9);
                double eta = (double)(j->total - step) * (j->train_s + ep_train_s) /
                             (double)(step - j->step0);
                char line[256];
                progress_format(line, sizeof line, epoch + 1, cfg->train.epochs, b + 1,
                                j->per_epoch, sums[2] > 0 ? sums[0] / sums[2] : 0,
                                sums[2] > 0 ? sums[1] / sums[2] : 0, sps, eta);
                train_logf(&j->own, 1, "rank %d trainer %d: %s", d->rank, d->trainer, line);
            }
        }
        j->train_s += ep_train_s;
        j->samples += ep_global;
        j->step = step;
        epochs_end_t end = end_epoch(j, epoch, sums, ep_global, ep_train_s, ep_t0, err);
        if (end != EPOCHS_DONE)
            return end;
    }
    j->step = step;
    return EPOCHS_DONE;
}

/* The leader's end of the job: the final checkpoint (every server writes
 * its shard), the whole model and optimizer state gathered, the servers'
 * STATS, and the run's outputs (summary.json, model.ckpt, the exports).
 * Returns 0, or -1 with err. */
static int finish_job(dist_t *j, train_result_t *res, err_t *err)
{
    const job_config_t *cfg = j->cfg;
    if (checkpoint_job(j, j->step, err) != 0)
        return -1;
    optim_params_t op;
    optim_params_from_config(&op, cfg);
    const int slots = optim_slots(&op);
    float *state = calloc(slots ? (size_t)slots * j->n_params : 1, sizeof *state);
    if (!state)
        return err_set(err, "out of memory");
    long version = 0;
    client_stats_t ss;
    int rc = -1;
    if (client_checkpoint_gather(j->ps, j->params, state, slots, &version, err) != 0 ||
        client_stats(j->ps, &ss, err) != 0)
        goto out;
    res->lost_trainers = ss.lost;
    res->first_lost = ss.lost ? ss.first_lost : -1;
    if (ss.lost)
        train_logf(&j->own, 0, "rank %d trainer %d: the job lost %d trainer(s), the first trainer "
                   "%d (rank %d), and finished with the survivors", j->d->rank, j->d->trainer,
                   ss.lost, ss.first_lost, j->d->n_servers + ss.first_lost);
    uint64_t sent, recvd;
    client_bytes(j->ps, &sent, &recvd);
    run_summary_t s;
    train_summary_init(&s, cfg, &j->own, res, j->samples, "distributed");
    s.dist = 1;
    s.n_servers = j->d->n_servers;
    s.n_trainers = j->d->n_trainers;
    s.consistency = config_consistency_name(cfg->cluster.consistency);
    s.trainer0_compute_s = j->compute_s;
    s.trainer0_pull_wait_s = j->pull_s;
    s.trainer0_push_s = j->push_s;
    s.trainer0_bytes_sent = sent;
    s.trainer0_bytes_received = recvd;
    s.servers_busy_s = ss.busy_s;
    s.servers_updates = (double)ss.updates;
    s.servers_pushes = (double)ss.pushes;
    s.servers_pulls = (double)ss.pulls;
    checkpoint_t ck;
    uint8_t order[TRAIN_ORDER_LEN];
    train_checkpoint_init(&ck, cfg, &j->own, j->m, &j->data, j->step, version,
                          (int)(j->step / j->per_epoch), j->params, state, slots, order);
    rc = train_write_outputs(&j->own, &s, j->d->ckpt_path, &ck, res, err);
out:
    free(state);
    return rc;
}

/* The end of the job after the last epoch: the leader (trainer 0, or the
 * trainer left in its place) writes it, and every trainer says goodbye.
 * Returns 0, or -1 with err. */
static int end_job(dist_t *j, train_result_t *res, err_t *err)
{
    train_result_fill(res, j->rows, j->epochs_done, j->step, j->n_params,
                      progress_now() - j->t0, j->train_s, j->samples);
    int leads = j->lead; /* this trainer leads the end of the job */
    if (!j->lead && wait_for_lead(j, &leads, err) != 0)
        return -1;
    if (leads && !j->lead &&
        (take_lead(j, "writes the job's checkpoint, model and metrics in its place", err) != 0 ||
         report_write_metrics(j->own.out_dir, j->rows, j->epochs_done, err) != 0))
        return -1;
    res->led = leads;
    if (leads && finish_job(j, res, err) != 0)
        return -1;
    if (j->given->final_params)
        memcpy(j->given->final_params, j->params, j->n_params * sizeof *j->params);
    return goodbye(j, res, err);
}

/* A request failed in the loop: when the job halts, trainer 0 writes the
 * halt's checkpoint (if it is the trainer lost, the lowest one left does).
 * Returns halt_job's status, or -1 (err as it is) when the job does not
 * halt. */
static int on_halt(dist_t *j, train_result_t *res, err_t *err)
{
    if (!client_halt(j->ps))
        return -1;
    int leads = j->lead;
    client_stats_t ss;
    err_t e;
    if (!j->lead && client_halt(j->ps) == CLIENT_LOST && client_stats(j->ps, &ss, &e) == 0 &&
        ss.lead_lost_on > 0 && !ss.lead_done && ss.next_lead == j->d->trainer) {
        leads = 1;
        j->own.log = j->given->log;
        train_logf(&j->own, 0, "rank %d trainer %d: trainer 0 (rank %d) was lost: this trainer "
                   "writes the job's checkpoint in its place", j->d->rank, j->d->trainer,
                   j->d->n_servers);
    }
    return halt_job(j, leads, res, err);
}

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
 * step; logs the job's first line. Returns 0, or -1 with err. */
static int setup(dist_t *j, err_t *err)
{
    const job_config_t *cfg = j->cfg;
    if (j->lead && fs_mkdirs(j->own.out_dir, err) != 0)
        return -1;
    if (train_prepare(cfg, &j->m, &j->data, err) != 0)
        return -1;
    j->n_params = model_n_params(j->m);
    if (!(j->ps = connect_servers(cfg, j->d, j->n_params, err)))
        return -1;
    const size_t n_train = j->data.train->n, dim = j->data.train->dim;
    const compression_t pc = cfg->cluster.pull_compression;
    j->pull_elem = pc == COMP_FP16 ? WIRE_F16 : pc == COMP_BF16 ? WIRE_BF16 : WIRE_F32;
    j->params = calloc(j->n_params, sizeof *j->params);
    j->grads = calloc(j->n_params, sizeof *j->grads);
    j->xb = calloc((size_t)cfg->train.batch * dim, sizeof *j->xb);
    j->yb = calloc((size_t)cfg->train.batch, sizeof *j->yb);
    j->perm = malloc(n_train * sizeof *j->perm);
    j->rows = calloc((size_t)cfg->train.epochs, sizeof *j->rows);
    if (!j->params || !j->grads || !j->xb || !j->yb || !j->perm || !j->rows)
        return err_set(err, "out of memory");
    model_set_grad_hook(j->m, push_range, j);
    j->total = train_total_steps(cfg, n_train, &j->per_epoch);
    if (j->own.resume) { /* the servers load the parameters; trainers take the step */
        optim_params_t op;
        optim_params_from_config(&op, cfg);
        j->step0 = train_resume_check(j->own.resume, j->own.resume_path, cfg, j->m, n_train,
                                      optim_slots(&op), j->total, err);
        if (j->step0 < 0)
            return -1;
    }
    j->step = j->step0;
    if (j->lead)
        train_logf(&j->own, 0,
                   "rank %d trainer 0: %s, %zu parameters on %d server(s), %d trainer(s), %s, "
                   "%zu training samples, global batch %d, %ld steps",
                   j->d->rank, cfg->name, j->n_params, j->d->n_servers, j->d->n_trainers,
                   config_consistency_name(cfg->cluster.consistency), n_train, cfg->train.batch,
                   j->total);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "rank %d trainer %d: ", j->d->rank, j->d->trainer);
    /* every trainer keeps the rows (they are the same); only trainer 0 logs */
    j->epochs_done = train_resume_begin(&j->own, prefix, j->step0, j->per_epoch, j->rows,
                                        cfg->train.epochs);
    return 0;
}

int train_dist(const job_config_t *cfg, const dist_opts_t *d, const train_opts_t *opts,
               train_result_t *res, err_t *err)
{
    dist_t j;
    memset(&j, 0, sizeof j);
    memset(res, 0, sizeof *res);
    j.cfg = cfg;
    j.d = d;
    j.given = opts;
    j.own = *opts;
    j.lead = d->trainer == 0;
    if (!j.lead)
        j.own.log = NULL;
    int rc = -1;
    if (setup(&j, err) == 0) {
        j.t0 = progress_now();
        j.last_ckpt_s = j.t0;
        switch (run_epochs(&j, res, &rc, err)) {
        case EPOCHS_DONE:
            rc = end_job(&j, res, err);
            break;
        case EPOCHS_STOPPED:
            break;
        case EPOCHS_HALT:
            rc = on_halt(&j, res, err);
            break;
        case EPOCHS_FAILED:
            rc = -1;
            break;
        }
    }
    if (rc != 0 && j.ps && !client_halt(j.ps))
        client_fail(j.ps); /* tell the servers to stop the job rather than wait for a timeout */
    client_destroy(&j.ps);
    free(j.params);
    free(j.grads);
    free(j.xb);
    free(j.yb);
    free(j.perm);
    free(j.rows);
    model_destroy(&j.m);
    job_data_free(&j.data);
    return rc;
}
