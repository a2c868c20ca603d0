/* epoch.c - the epoch driver shared by single-process and distributed
 * training (see epoch.h). */
#include "trainer/epoch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util/cpus.h"
#include "trainer/evaluate.h"
#include "trainer/progress.h"

/* A click-log job's feed and input gradient (the backend must hold
 * tables), and the job's steps from its parts. One process reads
 * data.parts parts (at least 1) in step; a trainer of T reads part t of T
 * (data.parts is 0 or T). Returns 0, or -1 with err. */
static int feed_setup(epoch_t *e, size_t dim, err_t *err)
{
    const job_config_t *cfg = e->cfg;
    const int T = e->n_trainers, P = cfg->data.parts;
    if (!e->be->fetch_rows || !e->be->push_rows || !e->be->evaluate_feed)
        return err_set(err, "%s: this backend holds no embedding tables (model.sparse)",
                       cfg->source);
    if (T > 1 && P != 0 && P != T)
        return err_set(err, "%s: data.parts = %d: a job of %d trainers reads the data in %d "
                       "parts, one each (0: as many as trainers)", cfg->source, P, T, T);
    if (!(e->dx = malloc((size_t)cfg->train.batch * dim * sizeof *e->dx)))
        return err_set(err, "out of memory for the input gradient of a batch");
    e->feed = T > 1 ? ctr_feed_new(cfg, (int)dim, e->trainer, 1, T, err)
                    : ctr_feed_new(cfg, (int)dim, 0, P > 1 ? P : 1, P > 1 ? P : 1, err);
    if (!e->feed)
        return -1;
    e->per_epoch = ctr_feed_per_epoch(e->feed);
    e->total = train_steps_capped(cfg, e->per_epoch);
    team_set_input_grad(e->team, e->dx);
    return 0;
}

int epoch_setup(epoch_t *e, err_t *err)
{
    const job_config_t *cfg = e->cfg;
    const int ctr = e->data->ctr;
    const size_t n_train = ctr ? (size_t)e->data->ctr_lines : e->data->train->n;
    const size_t dim = (size_t)model_input_size(e->m);
    e->total = train_total_steps(cfg, n_train, &e->per_epoch); /* click logs: feed_setup's */
    e->xb = calloc((size_t)cfg->train.batch * dim, sizeof *e->xb);
    e->yb = calloc((size_t)cfg->train.batch, sizeof *e->yb);
    e->perm = ctr ? NULL : malloc(n_train * sizeof *e->perm);
    e->rows = calloc((size_t)cfg->train.epochs, sizeof *e->rows);
    if (!e->xb || !e->yb || (!ctr && !e->perm) || !e->rows)
        return err_set(err, "out of memory for the batches of %zu training samples", n_train);
    const int threads = cfg->train.threads != CFG_AUTO ? cfg->train.threads : cpus_available();
    if (!(e->team = team_new(e->m, threads, model_max_batch(e->m), err)))
        return -1;
    if (model_loss(e->m)->single_output && !(e->auc = auc_new(err)))
        return -1;
    if (ctr && feed_setup(e, dim, err) != 0)
        return -1;
    e->step = e->step0;
    return 0;
}

int epoch_evaluate(epoch_t *e, const dataset_t *ds, size_t begin, size_t end, double *loss_sum,
                   long *right, auc_t *auc, err_t *err)
{
    return evaluate_range(e->team, model_max_batch(e->m), e->params, ds, begin, end, loss_sum,
                          right, auc, err);
}

int epoch_evaluate_feed(epoch_t *e, ctr_fetch_fn fetch, double *loss, double *acc, double *auc,
                        err_t *err)
{
    double sum = 0;
    long right = 0;
    size_t n = 0;
    if (e->auc)
        auc_clear(e->auc);
    if (ctr_feed_evaluate(e->feed, e->team, e->params, fetch, e, &sum, &right, &n, e->auc,
                          err) != 0)
        return -1;
    *loss = n ? sum / (double)n : NAN;
    *acc = n ? (double)right / (double)n : NAN;
    *auc = e->auc && n ? auc_value(e->auc) : NAN;
    return 0;
}

void epoch_free(epoch_t *e)
{
    ctr_feed_destroy(&e->feed);
    free(e->dx);
    e->dx = NULL;
    team_destroy(&e->team);
    auc_destroy(&e->auc);
    free(e->xb);
    free(e->yb);
    free(e->perm);
    free(e->rows);
    e->xb = NULL;
    e->yb = NULL;
    e->perm = NULL;
    e->rows = NULL;
}

/* The forward and backward pass of global batch b at e->step: this
 * trainer's slice of it, cut again among the team's threads, scaled by
 * 1/(global batch) so that the trainers' gradients add up to the batch
 * mean, into e->grads; sums += loss, right, samples. A trainer whose slice
 * is empty still owes its (zero) gradient in the same pieces as the others
 * (the team's hook sees every range). Returns the global batch's size. */
/* A click-log job's step: this trainer's share of the feed's next global
 * batch (its rows fetched from the backend), forward and backward over it
 * scaled by 1/(global batch), and its rows' gradients to the backend. A
 * trainer whose part has ended still takes the step with no samples (its
 * zero gradient is owed). Returns the global batch's size, 0 at the end of
 * the epoch, -1 with err. */
static int compute_feed(epoch_t *e, double sums[3], err_t *err)
{
    double c0 = progress_now();
    ctr_step_t st;
    int B = ctr_feed_train(e->feed, e->xb, e->yb, e->be->fetch_rows, e, &st, err);
    if (B < 0 || st.global == 0)
        return B < 0 ? -1 : 0;
    int ok = 0;
    const model_run_t run = {.training = 1, .step = e->step, .first = st.first};
    sums[0] += team_train_step(e->team, &run, e->params, e->grads, e->xb, e->yb, B,
                               1.0f / (float)st.global, &ok);
    sums[1] += ok;
    sums[2] += B;
    if (ctr_feed_push(e->feed, e->dx, e->be->push_rows, e, err) != 0)
        return -1;
    e->compute_s += progress_now() - c0;
    return st.global;
}

static int compute(epoch_t *e, long b, double sums[3])
{
    const size_t n = e->data->train->n, batch = (size_t)e->cfg->train.batch;
    size_t glo, ghi, lo, hi;
    data_batch_slice(n, batch, (size_t)b, 0, 1, &glo, &ghi);
    data_batch_slice(n, batch, (size_t)b, e->trainer, e->n_trainers, &lo, &hi);
    const int gB = (int)(ghi - glo), B = (int)(hi - lo);
    double c0 = progress_now();
    if (B > 0)
        data_gather(e->data->train, e->perm, lo, hi, e->xb, e->yb);
    int ok = 0;
    const model_run_t run = {.training = 1, .step = e->step, .first = (long)(lo - glo)};
    sums[0] += team_train_step(e->team, &run, e->params, e->grads, e->xb, e->yb, B,
                               1.0f / (float)gB, &ok);
    sums[1] += ok;
    sums[2] += B;
    e->compute_s += progress_now() - c0;
    return gB;
}

/* The leader's progress line after batch b of epoch `epoch`. */
static void progress(const epoch_t *e, int epoch, long b, const double sums[3], long ep_global,
                     double ep_train_s)
{
    const long step = e->step;
    if (!e->lead || !(step % e->cfg->train.log_every == 0 || b + 1 == e->per_epoch ||
                      step == e->total))
        return;
    double sps = ep_global / (ep_train_s > 0 ? ep_train_s : 1e-9);
    double eta = (double)(e->total - step) * (e->train_s + ep_train_s) / (double)(step - e->step0);
    char line[256];
    progress_format(line, sizeof line, epoch + 1, e->cfg->train.epochs, b + 1, e->per_epoch,
                    sums[2] > 0 ? sums[0] / sums[2] : 0, sums[2] > 0 ? sums[1] / sums[2] : 0,
                    sps, team_size(e->team), eta);
    train_logf(e->opts, 1, "%s%s", e->prefix, line);
}

/* One step: the backend's start (the parameters), a periodic checkpoint
 * when one is due (not counted as training time), the gradient, the
 * backend's end (the update). *ep_global and *ep_train_s grow by the global
 * batch and the step's time; *ended is set when a click-log epoch ran out of
 * samples before its counted steps (no step was taken). Returns EPOCH_GO or
 * how the job ended. */
static epoch_end_t step_once(epoch_t *e, long b, double sums[3], long *ep_global,
                             double *ep_train_s, int *ended, err_t *err)
{
    double s0 = progress_now();
    epoch_end_t r = e->be->begin_step(e, e->step, err);
    if (r != EPOCH_GO)
        return r;
    if (e->lead && e->step > e->step0 &&
        train_checkpoint_due(e->cfg, e->step, &e->last_ckpt_s)) {
        double c0 = progress_now();
        if (e->be->checkpoint(e, e->step, err) != 0)
            return EPOCH_FAILED;
        train_logf(e->opts, 0, "%scheckpoint of step %ld written", e->prefix, e->step);
        s0 += progress_now() - c0;
    }
    int gB = e->feed ? compute_feed(e, sums, err) : compute(e, b, sums);
    if (gB < 0)
        return EPOCH_FAILED;
    if (gB == 0) { /* the click logs ended before the lines counted (bad lines skipped) */
        *ep_train_s += progress_now() - s0;
        *ended = 1;
        return EPOCH_GO;
    }
    if ((r = e->be->end_step(e, e->step, err)) != EPOCH_GO)
        return r;
    e->step++;
    *ep_global += gB;
    *ep_train_s += progress_now() - s0;
    return EPOCH_GO;
}

/* The end of epoch `epoch`: the job's sums and the model to evaluate from
 * the backend, the evaluation, the epoch's row (logged and written to
 * metrics.csv by the leader). Returns EPOCH_GO or how the job ended. */
static epoch_end_t end_epoch(epoch_t *e, int epoch, double sums[3], long ep_global,
                             double ep_train_s, double ep_t0, err_t *err)
{
    e->train_s += ep_train_s;
    e->samples += ep_global;
    e->own_samples += (long)sums[2];
    epoch_end_t r = e->be->end_epoch(e, e->step, sums, err);
    if (r != EPOCH_GO)
        return r;
    epoch_row_t *row = &e->rows[e->epochs_done];
    row->epoch = epoch + 1;
    row->step = e->step;
    row->train_loss = sums[0] / sums[2];
    row->train_acc = sums[1] / sums[2];
    row->samples_per_s = ep_global / (ep_train_s > 0 ? ep_train_s : 1e-9);
    if (e->feed) { /* click logs: no validation split; the test set streamed */
        row->val_loss = row->val_acc = row->val_auc = NAN;
        if ((r = e->be->evaluate_feed(e, &row->test_loss, &row->test_acc, &row->test_auc, err)) !=
            EPOCH_GO)
            return r;
    } else if ((r = e->be->evaluate(e, e->data->val, &row->val_loss, &row->val_acc, &row->val_auc,
                                    err)) != EPOCH_GO ||
               (r = e->be->evaluate(e, e->data->test, &row->test_loss, &row->test_acc,
                                    &row->test_auc, err)) != EPOCH_GO)
        return r;
    /* a binary model's log loss is its loss (the mean binary cross-entropy of
     * the logits, exact where the probability rounds to 0 or 1) */
    row->binary = e->auc != NULL;
    row->val_logloss = row->binary ? row->val_loss : NAN;
    row->test_logloss = row->binary ? row->test_loss : NAN;
    if (!row->binary)
        row->val_auc = row->test_auc = NAN;
    row->wall_s = progress_now() - e->t0;
    e->epochs_done++;
    if (!e->lead)
        return EPOCH_GO;
    train_log_epoch(e->opts, e->prefix, row, e->cfg->train.epochs, e->data->val != NULL,
                    progress_now() - ep_t0);
    return report_write_metrics(e->opts->out_dir, e->rows, e->epochs_done, err) == 0
               ? EPOCH_GO
               : EPOCH_FAILED;
}

epoch_end_t epoch_run(epoch_t *e, err_t *err)
{
    const job_config_t *cfg = e->cfg;
    /* every trainer keeps the rows (they are the same); only the leader logs */
    e->epochs_done = train_resume_begin(e->opts, e->prefix, e->step0, e->per_epoch, e->rows,
                                        cfg->train.epochs);
    e->t0 = progress_now();
    e->last_ckpt_s = e->t0;
    long b0 = e->step % e->per_epoch; /* a resumed job's first epoch starts inside */
    for (int epoch = (int)(e->step / e->per_epoch); epoch < cfg->train.epochs && e->step < e->total;
         epoch++, b0 = 0) {
        if (!e->feed)
            data_permutation(e->perm, e->data->train->n, cfg->train.seed, (uint64_t)epoch);
        else if (ctr_feed_rewind(e->feed, epoch, err) != 0 || ctr_feed_skip(e->feed, b0, err) != 0)
            return EPOCH_FAILED;
        double ep_t0 = progress_now(), ep_train_s = 0;
        double sums[3] = {0, 0, 0}; /* loss, right, samples (this trainer) */
        long ep_global = 0;
        for (long b = b0; b < e->per_epoch && e->step < e->total; b++) {
            int ended = 0;
            epoch_end_t r = step_once(e, b, sums, &ep_global, &ep_train_s, &ended, err);
            if (r != EPOCH_GO)
                return r;
            if (ended)
                break;
            progress(e, epoch, b, sums, ep_global, ep_train_s);
        }
        epoch_end_t r = end_epoch(e, epoch, sums, ep_global, ep_train_s, ep_t0, err);
        if (r != EPOCH_GO)
            return r;
    }
    return EPOCH_GO;
}
