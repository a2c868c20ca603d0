/* lead.c - who leads a distributed job and how it ends (see dist_job.h):
 * trainer 0 leads (progress, periodic checkpoints, metrics, the final model),
 * and when the servers report it lost the lowest trainer left takes its
 * place; a stop on request ends the job with a checkpoint; a halt (a lost
 * trainer in BSP, a server gone) leaves a checkpoint of the last step every
 * server completed; the end of the job gathers the model and writes the
 * run's outputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nn/optim.h"
#include "common/util/fsutil.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "trainer/dist_job.h"
#include "trainer/progress.h"
#include "trainer/report.h"

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

/* Trainer 0, asked to stop (a signal here, or a flag from a server) at
 * the start of `step`: every server refuses pulls from this step on, writes
 * its shard once the step before is complete, and the job ends with that
 * checkpoint. Returns 0, or -1 with err. */
int dist_stop_job(dist_t *j, long step, train_result_t *res, err_t *err)
{
    if (client_stop_at(j->ps, step, err) != 0 || dist_checkpoint_job(j, step, 0, err) != 0)
        return -1;
    train_logf(&j->own, 0, "rank %d trainer %d: stopped at step %ld on request: checkpoint "
               "written to %s/checkpoints/step-%09ld; continue with --resume %s", j->d->rank,
               j->d->trainer, step, j->own.out_dir, step, j->own.out_dir);
    res->stopped = 1;
    res->steps = step;
    return dist_goodbye(j, res, err);
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
    res->steps = j->ep.step;
    if (client_halt(j->ps) == CLIENT_STOPPING) {
        res->stopped = 1;
        dist_goodbye(j, res, &e);
        return 0;
    }
    res->stopped = 2;
    if (!lead) { /* trainer 0 writes the checkpoint; this one leaves quietly */
        dist_goodbye(j, res, &e);
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
        if (dist_checkpoint_job(j, k, 0, &e) != 0)
            snprintf(done, sizeof done, "the checkpoint failed: %s", e.msg);
        else
            snprintf(done, sizeof done, "checkpoint of step %ld written to %s/checkpoints; "
                     "continue with --resume %s", k, out, out);
    }
    dist_goodbye(j, res, &e);
    return err_set(err, "the job stops: %.200s; %.280s", why, done);
}

/* This trainer leads from now on (trainer 0 was lost): its log is switched
 * on and `what` it does in trainer 0's place is said. Returns 0, or -1 with
 * err (the run folder cannot be made). */
int dist_take_lead(dist_t *j, const char *what, err_t *err)
{
    j->ep.lead = 1;
    j->own.log = j->given->log;
    train_logf(&j->own, 0, "rank %d trainer %d: trainer 0 (rank %d) was lost: this trainer %s",
               j->d->rank, j->d->trainer, j->d->n_servers, what);
    return fs_mkdirs(j->own.out_dir, err);
}

/* The leader's end of the job: the final checkpoint (every server writes
 * its shard), the whole model and optimizer state gathered, the servers'
 * STATS, and the run's outputs (summary.json, model.ckpt, the exports).
 * Returns 0, or -1 with err. */
static int finish_job(dist_t *j, train_result_t *res, err_t *err)
{
    const job_config_t *cfg = j->ep.cfg;
    if (dist_checkpoint_job(j, j->ep.step, 0, err) != 0 ||
        (j->data.ctr && train_link_tables(j->own.out_dir, j->ep.step, j->d->n_servers, err) != 0))
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
    if (client_checkpoint_gather(j->ps, j->ep.params, state, slots, &version, err) != 0 ||
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
    train_summary_init(&s, cfg, &j->own, res, j->ep.samples, "distributed");
    s.dist = 1;
    s.threads = team_size(j->ep.team);
    s.whole_layers = team_n_whole(j->ep.team);
    s.server_threads = j->d->server_threads;
    s.io_threads = j->d->io_threads;
    s.n_servers = j->d->n_servers;
    s.n_trainers = j->d->n_trainers;
    s.consistency = config_consistency_name(cfg->cluster.consistency);
    /* the pushes ran inside backward, a click log's rows were fetched in the step */
    s.trainer0_compute_s = j->ep.compute_s - j->push_s - j->rows_fetch_s;
    s.trainer0_pull_wait_s = j->pull_s;
    s.trainer0_push_s = j->push_s;
    s.trainer0_rows_fetch_s = j->rows_fetch_s;
    s.trainer0_bytes_sent = sent;
    s.trainer0_bytes_received = recvd;
    s.servers_busy_s = ss.busy_s;
    s.servers_updates = (double)ss.updates;
    s.servers_pushes = (double)ss.pushes;
    s.servers_pulls = (double)ss.pulls;
    s.servers_rows = (double)ss.rows;
    s.servers_rows_bytes = (double)ss.rows_bytes;
    s.servers_rows_bytes_max = (double)ss.rows_bytes_max;
    uint64_t created[CFG_MAX_FIELDS];
    if (j->data.ctr) { /* the tables on the servers, counted at the last checkpoint */
        char dir[4300], root[4200];
        snprintf(root, sizeof root, "%s/checkpoints", j->own.out_dir);
        s.n_tables = cfg->model.sparse.fields;
        if (ckptdir_step_dir(dir, sizeof dir, root, j->ep.step, err) != 0 ||
            train_tables_created(dir, j->d->n_servers, s.n_tables, created, err) != 0)
            goto out;
        s.table_rows_created = created;
        s.rows_held = ss.rows;
        s.rows_bytes = ss.rows_bytes;
        s.bad_lines = ctr_feed_bad_lines(j->ep.feed);
    }
    checkpoint_t ck;
    uint8_t order[TRAIN_ORDER_LEN];
    train_checkpoint_init(&ck, cfg, &j->own, j->ep.m, &j->data, j->ep.step, version,
                          (int)(j->ep.step / j->ep.per_epoch), j->ep.params, state, slots, order);
    rc = train_write_outputs(&j->own, &s, j->d->ckpt_path, &ck, res, err);
out:
    free(state);
    return rc;
}

/* The end of the job after the last epoch: the leader (trainer 0, or the
 * trainer left in its place) writes it, and every trainer says goodbye.
 * Returns 0, or -1 with err. */
int dist_end_job(dist_t *j, train_result_t *res, err_t *err)
{
    train_result_fill(res, j->ep.rows, j->ep.epochs_done, j->ep.step, j->n_params,
                      progress_now() - j->ep.t0, j->ep.train_s, j->ep.samples);
    res->own_samples = j->ep.own_samples;
    int leads = j->ep.lead; /* this trainer leads the end of the job */
    if (!j->ep.lead && wait_for_lead(j, &leads, err) != 0)
        return -1;
    if (leads && !j->ep.lead &&
        (dist_take_lead(j, "writes the job's checkpoint, model and metrics in its place", err) != 0 ||
         report_write_metrics(j->own.out_dir, j->ep.rows, j->ep.epochs_done, err) != 0))
        return -1;
    res->led = leads;
    if (leads && finish_job(j, res, err) != 0)
        return -1;
    if (j->given->final_params)
        memcpy(j->given->final_params, j->ep.params, j->n_params * sizeof *j->ep.params);
    return dist_goodbye(j, res, err);
}

/* A request failed in the loop: when the job halts, trainer 0 writes the
 * halt's checkpoint (if it is the trainer lost, the lowest one left does).
 * Returns halt_job's status, or -1 (err as it is) when the job does not
 * halt. */
int dist_on_halt(dist_t *j, train_result_t *res, err_t *err)
{
    if (!client_halt(j->ps))
        return -1;
    int leads = j->ep.lead;
    client_stats_t ss;
    err_t e;
    if (!j->ep.lead && client_halt(j->ps) == CLIENT_LOST && client_stats(j->ps, &ss, &e) == 0 &&
        ss.lead_lost_on > 0 && !ss.lead_done && ss.next_lead == j->d->trainer) {
        leads = 1;
        j->own.log = j->given->log;
        train_logf(&j->own, 0, "rank %d trainer %d: trainer 0 (rank %d) was lost: this trainer "
                   "writes the job's checkpoint in its place", j->d->rank, j->d->trainer,
                   j->d->n_servers);
    }
    return halt_job(j, leads, res, err);
}

