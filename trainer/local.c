/* local.c - single-process training (train_local, see train.h): the epoch
 * driver (epoch.h) with a backend that keeps the whole parameter buffer and
 * the optimizer state in this process and applies the optimizer itself, the
 * same code a parameter server runs on its shard. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "common/nn/params.h"
#include "common/nn/rows.h"
#include "common/util/fsutil.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "export/tables.h"
#include "trainer/epoch.h"
#include "trainer/progress.h"
#include "trainer/train.h"

/* The local backend's state. */
typedef struct {
    optim_params_t op;
    int slots;                 /* optimizer state floats per parameter */
    float *state;              /* slots * n_params, slot-major */
    rows_t *rows;              /* click logs: the fields' embedding tables; else NULL */
    train_result_t *res;
} local_t;

/* A checkpoint of single-process training after `step` steps: the whole
 * model as RUN_DIR/checkpoints/step-N/model.ckpt, then its manifest.
 * Returns 0, or -1 with err. */
static int local_checkpoint(epoch_t *e, long step, int periodic, err_t *err)
{
    const local_t *l = e->ctx;
    const job_config_t *cfg = e->cfg;
    char root[4200], dir[4300], path[4400];
    snprintf(root, sizeof root, "%s/checkpoints", e->opts->out_dir);
    if (ckptdir_step_dir(dir, sizeof dir, root, step, err) != 0 ||
        ckptdir_part_path(path, sizeof path, root, step, 0, 0, err) != 0 ||
        fs_mkdirs(dir, err) != 0)
        return -1;
    checkpoint_t ck;
    uint8_t order[TRAIN_ORDER_LEN];
    const int epoch = (int)(step / e->per_epoch);
    train_checkpoint_init(&ck, cfg, e->opts, e->m, e->data, step, step, epoch, e->params,
                          l->state, l->slots, order);
    if (checkpoint_write(path, &ck, err) != 0)
        return -1;
    const int delta = l->rows && train_chain_next(&e->chain, cfg, step, periodic);
    if (l->rows && (ckptdir_tables_path(path, sizeof path, dir, 0, 0, delta, err) != 0 ||
                    (delta ? rows_save_delta(l->rows, path, err)
                           : rows_save(l->rows, path, err)) != 0 || /* the tables, next to it */
                    train_tables_counts_write(l->rows, path, err) != 0))
        return -1;
    return train_commit_checkpoint(cfg, e->opts->out_dir, e->data, step, e->per_epoch, 0,
                                   l->rows ? &e->chain : NULL, err);
}

/* The epoch driver's periodic checkpoint. */
static int local_checkpoint_periodic(epoch_t *e, long step, err_t *err)
{
    return local_checkpoint(e, step, 1, err);
}

/* The step's SGD fused into backward where it can be (team_set_step), at
 * this step's rate. A signal asked to stop: a checkpoint of this step, and
 * the job ends. */
static epoch_end_t local_begin_step(epoch_t *e, long step, err_t *err)
{
    local_t *l = e->ctx;
    if (l->op.kind->plain_step)
        team_set_step(e->team, e->params, (float)optim_lr(&l->op, step, e->total));
    if (!train_stop_signal)
        return EPOCH_GO;
    if (local_checkpoint(e, step, 0, err) != 0)
        return EPOCH_FAILED;
    train_logf(e->opts, 0, "stopped by a signal at step %ld: checkpoint written to "
               "%s/checkpoints/step-%09ld; continue with --resume %s", step, e->opts->out_dir,
               step, e->opts->out_dir);
    l->res->stopped = 1;
    l->res->steps = step;
    return EPOCH_STOPPED;
}

/* The optimizer over keys [b, end) at this step's rate. */
static void update_keys(void *ctx, size_t b, size_t end)
{
    epoch_t *e = ctx;
    const local_t *l = e->ctx;
    const size_t n = model_n_params(e->m);
    /* the state's slots lie n apart; the slice [b, end) of each */
    optim_update_slice(&l->op, e->params + b, e->grads + b, l->state + b, n, end - b,
                       e->step + 1, optim_lr(&l->op, e->step, e->total));
}

/* The update of a team of one (team_set_update): update_keys on a layer's
 * keys as soon as backward has their gradient, while it is in cache, which
 * it then clears for the next step. The update is elementwise, so a
 * layer's keys get what the whole buffer would get after the step. */
static void update_layer(void *ctx, size_t b, size_t end)
{
    epoch_t *e = ctx;
    update_keys(ctx, b, end);
    memset(e->grads + b, 0, (end - b) * sizeof *e->grads);
}

/* The step's update: done in backward by a team of one (update_layer);
 * with several threads, once the gradient is summed, each thread over its
 * own keys. Per layer, the threads would meet after every layer: measured
 * on the LSTM at 2 threads (2026-12-07, 3 alternating rounds), 0.7% slower
 * in each round. */
static epoch_end_t local_end_step(epoch_t *e, long step, err_t *err)
{
    (void)step, (void)err;
    if (team_size(e->team) > 1)
        team_for(e->team, model_n_params(e->m), update_keys, e);
    return EPOCH_GO;
}

/* One process: its sums are the job's and its parameters are the model. */
static epoch_end_t local_end_epoch(epoch_t *e, long step, double sums[3], err_t *err)
{
    (void)e, (void)step, (void)sums, (void)err;
    return EPOCH_GO;
}

/* The whole set here; a binary model's AUC from all its scores. */
static epoch_end_t local_evaluate(epoch_t *e, const dataset_t *ds, double *loss, double *acc,
                                  double *auc, err_t *err)
{
    *auc = NAN;
    if (!ds || ds->n == 0) {
        *loss = *acc = NAN;
        return EPOCH_GO;
    }
    double sum = 0;
    long right = 0;
    if (e->auc)
        auc_clear(e->auc);
    if (epoch_evaluate(e, ds, 0, ds->n, &sum, &right, e->auc, err) != 0)
        return EPOCH_FAILED;
    *loss = sum / (double)ds->n;
    *acc = (double)right / (double)ds->n;
    if (e->auc)
        *auc = auc_value(e->auc);
    return EPOCH_GO;
}

/* ---- embedding tables in this process (click logs, model.sparse) -------- */

/* The rows of one field's table: pulled (made at first touch) in
 * training; in evaluation a row not held reads as its initial value and is
 * not made. Returns 0, or -1 with err. */
static int fetch_table(const local_t *l, uint32_t field, size_t dim, const uint64_t *ids,
                       size_t n, float *out, int training, err_t *err)
{
    if (training)
        return rows_pull(l->rows, field, ids, n, out, err);
    for (size_t i = 0; i < n; i++)
        if (rows_peek(l->rows, field, ids[i], out + i * dim, NULL) != 1 &&
            rows_initial(l->rows, field, ids[i], out + i * dim, err) != 0)
            return -1;
    return 0;
}

/* A batch's rows of every field's table, from the store here. */
static int local_fetch_rows(void *ctx, int n_fields, const uint64_t *const *ids, const size_t *n,
                            float *const *out, int training, err_t *err)
{
    epoch_t *e = ctx;
    const local_t *l = e->ctx;
    const size_t dim = (size_t)e->cfg->model.sparse.dim;
    for (int k = 0; k < n_fields; k++)
        if (fetch_table(l, (uint32_t)k, dim, ids[k], n[k], out[k], training, err) != 0)
            return -1;
    return 0;
}

/* The step's row gradients, applied at once by the table's row optimizer
 * at the step's learning rate. */
static int local_push_rows(void *ctx, int field, const uint64_t *ids, size_t n,
                           const float *grads, err_t *err)
{
    epoch_t *e = ctx;
    const local_t *l = e->ctx;
    return rows_push(l->rows, (uint32_t)field, ids, n, grads, e->step + 1,
                     optim_lr(&l->op, e->step, e->total), err);
}

/* The test set streamed: loss, accuracy and AUC. */
static epoch_end_t local_evaluate_feed(epoch_t *e, double *loss, double *acc, double *auc,
                                       err_t *err)
{
    return epoch_evaluate_feed(e, local_fetch_rows, loss, acc, auc, err) == 0 ? EPOCH_GO
                                                                              : EPOCH_FAILED;
}

static const epoch_backend_t LOCAL = {
    .fetch_rows = local_fetch_rows,
    .push_rows = local_push_rows,
    .evaluate_feed = local_evaluate_feed,
    .begin_step = local_begin_step,
    .end_step = local_end_step,
    .checkpoint = local_checkpoint_periodic,
    .end_epoch = local_end_epoch,
    .evaluate = local_evaluate,
};

/* ckptdir_tables_load's loader: every row of the file at path into the
 * store ctx. */
static int load_all_rows(void *ctx, const char *path, err_t *err)
{
    return rows_load(ctx, path, NULL, NULL, err);
}

/* The parameters and optimizer state to start from: the checkpoint's
 * (opts->resume, after checking it fits the job; e->step0 and e->step are
 * set; a sparse model's tables too) or the initial ones. After
 * epoch_setup. Returns 0, or -1 with err. */
static int local_start(epoch_t *e, local_t *l, err_t *err)
{
    const train_opts_t *opts = e->opts;
    const size_t n = model_n_params(e->m);
    if (!opts->resume) {
        optim_state_init(&l->op, l->state, n);
        return params_init_slice(model_params(e->m), e->cfg->train.seed, 0, n, e->params, err);
    }
    e->step = e->step0 = train_resume_check(opts->resume, opts->resume_path, e->cfg, e->m,
                                            job_data_n_train(e->data), l->slots, e->total, err);
    if (e->step0 < 0 ||
        (e->data->ctr && train_resume_parts(opts->resume, opts->resume_path, e->data->ctr_parts,
                                            e->per_epoch, err) != 0))
        return -1;
    memcpy(e->params, opts->resume->params, n * sizeof *e->params);
    if (l->slots)
        memcpy(l->state, opts->resume->opt_state, (size_t)l->slots * n * sizeof *l->state);
    return l->rows ? ckptdir_tables_load(opts->resume_path, load_all_rows, l->rows, err) : 0;
}

/* The end of a finished run: the last checkpoint, then summary.json, the
 * whole model (model.ckpt) and its exports. Returns 0, or -1 with err. */
static int local_finish(epoch_t *e, local_t *l, train_result_t *res, err_t *err)
{
    const train_opts_t *opts = e->opts;
    train_result_fill(res, e->rows, e->epochs_done, e->step, model_n_params(e->m),
                      progress_now() - e->t0, e->train_s, e->samples);
    res->own_samples = e->samples;
    run_summary_t s;
    train_summary_init(&s, e->cfg, opts, res, e->samples, "local");
    s.threads = team_size(e->team);
    s.whole_layers = team_n_whole(e->team);
    uint64_t created[CFG_MAX_FIELDS];
    if (l->rows) { /* the tables' rows */
        s.n_tables = e->cfg->model.sparse.fields;
        for (int f = 0; f < s.n_tables; f++) {
            rows_stats_t st = {0};
            rows_stats(l->rows, (uint32_t)f, &st);
            created[f] = st.created;
        }
        s.table_rows_created = created;
        s.rows_held = rows_count(l->rows);
        s.rows_bytes = rows_bytes(l->rows);
        s.bad_lines = ctr_feed_bad_lines(e->feed);
    }
    if (local_checkpoint(e, e->step, 0, err) != 0 ||
        (l->rows && train_link_tables(opts->out_dir, e->step, 0, err) != 0))
        return -1;
    /* the whole model, as a distributed job's servers would assemble it */
    char ckpath[4096];
    snprintf(ckpath, sizeof ckpath, "%s/model.ckpt", opts->out_dir);
    checkpoint_t ck;
    uint8_t order[TRAIN_ORDER_LEN];
    train_checkpoint_init(&ck, e->cfg, opts, e->m, e->data, e->step, e->step,
                          (int)(e->step / e->per_epoch), e->params, l->state, l->slots, order);
    if (train_write_outputs(opts, &s, ckpath, &ck, res, err) != 0)
        return -1;
    if (opts->final_params)
        memcpy(opts->final_params, e->params, model_n_params(e->m) * sizeof *e->params);
    return 0;
}

int train_local(const job_config_t *cfg, const train_opts_t *opts, train_result_t *res,
                err_t *err)
{
    int rc = -1;
    job_data_t data;
    local_t l = {.res = res};
    epoch_t e = {.cfg = cfg, .opts = opts, .data = &data, .trainer = 0, .n_trainers = 1,
                 .lead = 1, .be = &LOCAL, .ctx = &l};
    memset(res, 0, sizeof *res);
    if (fs_mkdirs(opts->out_dir, err) != 0 || train_prepare(cfg, &e.m, &data, err) != 0)
        return -1;
    data.ctr_parts = data.ctr ? (cfg->data.parts > 1 ? cfg->data.parts : 1) : 0;
    const size_t n = model_n_params(e.m);
    optim_params_from_config(&l.op, cfg);
    l.slots = optim_slots(&l.op);
    e.params = malloc(n * sizeof *e.params);
    e.grads = calloc(n, sizeof *e.grads);
    l.state = calloc(l.slots ? (size_t)l.slots * n : 1, sizeof *l.state);
    if (!e.params || !e.grads || !l.state) {
        err_set(err, "out of memory for %zu parameters", n);
        goto out;
    }
    if (data.ctr && !(l.rows = tables_store_new(cfg, 0, err)))
        goto out;
    if (epoch_setup(&e, err) != 0)
        goto out;
    if (team_size(e.team) == 1)
        team_set_update(e.team, update_layer, &e); /* e.grads is zero (calloc) */
    if (data.ctr)
        data.ctr_lines = ctr_feed_lines(e.feed); /* counted by the feed, with its parts */
    if (local_start(&e, &l, err) != 0)
        goto out;
    if (data.ctr)
        train_logf(opts, 0,
                   "pstrain local: %s, %zu dense parameters and %d embedding tables of dim %d, "
                   "%llu training lines (%s), batch %d, %ld steps, %d thread(s)", cfg->name, n,
                   cfg->model.sparse.fields, cfg->model.sparse.dim,
                   (unsigned long long)data.ctr_lines, cfg->data.train, cfg->train.batch, e.total,
                   team_size(e.team));
    else
        train_logf(opts, 0,
                   "pstrain local: %s, %zu parameters, %zu training / %zu validation / %zu test "
                   "samples, batch %d, %ld steps, %d thread(s)", cfg->name, n, data.train->n,
                   data.val ? data.val->n : 0, data.test->n, cfg->train.batch, e.total,
                   team_size(e.team));
    switch (epoch_run(&e, err)) {
    case EPOCH_GO:
        rc = local_finish(&e, &l, res, err);
        break;
    case EPOCH_STOPPED:
        rc = 0;
        break;
    default:
        break;
    }
out:
    free(e.params);
    free(e.grads);
    free(l.state);
    rows_destroy(&l.rows);
    epoch_free(&e);
    model_destroy(&e.m);
    job_data_free(&data);
    return rc;
}
