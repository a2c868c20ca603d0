/* train.c - single-process training (see train.h). */
#include "trainer/train.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/evaluate.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "export/onnx.h"
#include "export/safetensors.h"
#include "export/trained.h"
#include "common/util/fsutil.h"
#include "common/util/le.h"
#include "trainer/jobdata.h"
#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "common/nn/params.h"
#include "trainer/progress.h"
#include "trainer/report.h"
#include "common/util/version.h"

volatile sig_atomic_t train_stop_signal;

static void on_stop_signal(int sig)
{
    train_stop_signal = 1;
    signal(sig, SIG_DFL); /* a second one ends the process */
}

void train_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void train_logf(const train_opts_t *o, int transient, const char *fmt, ...)
{
    if (!o->log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log(o->log_ctx, transient, line);
}

static void eval_set(model_t *m, const float *params, const dataset_t *ds, double *loss,
                     double *acc)
{
    if (!ds || ds->n == 0) {
        *loss = NAN;
        *acc = NAN;
        return;
    }
    double sum = 0;
    long right = 0;
    evaluate_range(m, params, ds, 0, ds->n, &sum, &right);
    *loss = sum / (double)ds->n;
    *acc = (double)right / (double)ds->n;
}

long train_total_steps(const job_config_t *cfg, size_t n_train, long *per_epoch)
{
    long pe = (long)data_batches_per_epoch(n_train, (size_t)cfg->train.batch, 0);
    long total = pe * cfg->train.epochs;
    if (cfg->train.max_steps > 0 && cfg->train.max_steps < total)
        total = cfg->train.max_steps;
    if (per_epoch)
        *per_epoch = pe;
    return total;
}

int train_prepare(const job_config_t *cfg, model_t **m, job_data_t *data, err_t *err)
{
    openblas_set_num_threads(cfg->train.threads);
    memset(data, 0, sizeof *data);
    int max_batch = cfg->train.batch > cfg->train.eval_batch ? cfg->train.batch
                                                             : cfg->train.eval_batch;
    *m = model_new(cfg, max_batch, err);
    if (!*m)
        return -1;
    if (job_data_load(data, cfg, model_input_size(*m), model_output_size(*m), err) != 0) {
        model_destroy(m);
        return -1;
    }
    return 0;
}

void train_summary_init(run_summary_t *s, const job_config_t *cfg, const train_opts_t *opts,
                        const train_result_t *res, long samples, const char *mode)
{
    *s = (run_summary_t){
        .name = cfg->name, .config_path = cfg->source, .config_text = opts->config_text,
        .epochs = res->epochs, .steps = res->steps, .params = res->params,
        .test_accuracy = res->test_acc, .test_loss = res->test_loss,
        .val_accuracy = res->val_acc, .val_loss = res->val_loss,
        .train_loss = res->train_loss, .train_accuracy = res->train_acc,
        .wall_s = res->wall_s, .train_s = res->train_s, .samples_per_s = res->samples_per_s,
        .samples = samples, .threads = cfg->train.threads, .batch = cfg->train.batch,
        .mode = mode,
    };
}

void train_order_record(uint8_t *order, const job_config_t *cfg, size_t n_train, long step)
{
    uint8_t *p = order;
    le_write32(&p, 1);
    le_write64(&p, cfg->train.seed);
    le_write64(&p, n_train);
    le_write32(&p, (uint32_t)cfg->train.batch);
    le_write64(&p, (uint64_t)step);
}

int train_checkpoint_due(const job_config_t *cfg, long step, double *last_s)
{
    double now = progress_now();
    int due = (cfg->checkpoint.every_steps > 0 && step % cfg->checkpoint.every_steps == 0) ||
              (cfg->checkpoint.every_seconds > 0 && now - *last_s >= cfg->checkpoint.every_seconds);
    if (due)
        *last_s = now;
    return due;
}

void train_checkpoint_init(checkpoint_t *ck, const job_config_t *cfg, const train_opts_t *opts,
                           const model_t *m, const job_data_t *data, long step, long clock,
                           int epochs, float *params, float *state, int n_slots, uint8_t *order)
{
    train_order_record(order, cfg, data ? data->train->n : 0, step);
    *ck = (checkpoint_t){
        .step = (uint64_t)step, .clock = (uint64_t)clock, .seed = cfg->train.seed,
        .epoch = (uint32_t)epochs, .opt_kind = cfg->optimizer.kind->id, .n_slots = n_slots,
        /* written, never freed through ck: the borrowed buffers stay the caller's */
        .config_text = (char *)(opts->config_text ? opts->config_text : ""),
        .table = *model_params(m), .params = params, .opt_state = n_slots ? state : NULL,
        .data_order = order, .data_order_len = TRAIN_ORDER_LEN,
    };
    if (data && data->norm.kind != NORM_NONE && data->norm.mean) {
        ck->norm_kind = data->norm.kind;
        ck->norm_dim = data->norm.dim;
        ck->norm_mean = data->norm.mean;
        ck->norm_inv_std = data->norm.inv_std;
    }
}

long train_resume_check(const checkpoint_t *ck, const char *path, const job_config_t *cfg,
                        const model_t *m, size_t n_train, int n_slots, long total, err_t *err)
{
    if (checkpoint_match(ck, model_params(m), path, err) != 0)
        return -1;
    if (ck->opt_kind != cfg->optimizer.kind->id || ck->n_slots != n_slots)
        return err_set(err, "%s: trained with optimizer %s (%d state floats per parameter), "
                       "this job uses %s (%d)", path, optim_id_name(ck->opt_kind),
                       ck->n_slots, cfg->optimizer.kind->name, n_slots);
    if (ck->data_order_len != TRAIN_ORDER_LEN || le_load32(ck->data_order) != 1)
        return err_set(err, "%s: section DATAORDER: no data-order record of this pstrain "
                       "(%zu bytes)", path, ck->data_order_len);
    const uint8_t *o = ck->data_order;
    uint64_t seed = le_load64(o + 4), n = le_load64(o + 12), batch = le_load32(o + 20),
             step = le_load64(o + 24);
    if (seed != cfg->train.seed || n != n_train || batch != (uint64_t)cfg->train.batch)
        return err_set(err, "%s: trained with seed %llu, batch %llu on %llu samples; this job "
                       "has seed %llu, batch %d on %zu samples (the data order would differ)",
                       path, (unsigned long long)seed, (unsigned long long)batch,
                       (unsigned long long)n, (unsigned long long)cfg->train.seed,
                       cfg->train.batch, n_train);
    if (step != ck->step)
        return err_set(err, "%s: section DATAORDER says step %llu, META step %llu", path,
                       (unsigned long long)step, (unsigned long long)ck->step);
    if ((long long)step >= total)
        return err_set(err, "%s: already %llu steps done, the job has %ld (raise train.epochs "
                       "or train.max_steps to train on)", path, (unsigned long long)step, total);
    return (long)step;
}

int train_write_outputs(const train_opts_t *opts, const run_summary_t *s, const char *ckpt_path,
                        const checkpoint_t *ck, train_result_t *res, err_t *err)
{
    if (report_write_summary(opts->out_dir, s, err) != 0)
        return -1;
    if (ckpt_path && ck) {
        if (!ck->config_text || !ck->config_text[0])
            return err_set(err, "%s: no config text to keep in the checkpoint (train_opts_t "
                           "config_text): it could not be exported or resumed", ckpt_path);
        if (checkpoint_write(ckpt_path, ck, err) != 0)
            return -1;
        /* the export stage: read the checkpoint back (which checks it) and
         * write the model for serving systems next to it */
        trained_t *t = trained_open(ckpt_path, 1, err);
        if (!t)
            return -1;
        char path[4200];
        snprintf(path, sizeof path, "%s/model.onnx", opts->out_dir);
        int rc = onnx_export(t, path, PSTRAIN_VERSION, err);
        snprintf(path, sizeof path, "%s/model.safetensors", opts->out_dir);
        if (rc == 0)
            rc = safetensors_export(t, path, err);
        trained_destroy(&t);
        if (rc != 0)
            return err_prefix(err, "export stage (the checkpoint %s is complete)", ckpt_path);
    }
    if (!opts->no_plot) {
        err_t perr;
        if (report_plot(opts->out_dir, &perr) != 0)
            snprintf(res->plot_error, sizeof res->plot_error, "%s", perr.msg);
    }
    return 0;
}

void train_result_fill(train_result_t *res, const epoch_row_t *rows, int n, long steps,
                       size_t params, double wall_s, double train_s, long samples)
{
    const epoch_row_t *last = &rows[n - 1];
    res->epochs = n;
    res->steps = steps;
    res->params = params;
    res->train_loss = last->train_loss;
    res->train_acc = last->train_acc;
    res->val_loss = last->val_loss;
    res->val_acc = last->val_acc;
    res->test_loss = last->test_loss;
    res->test_acc = last->test_acc;
    res->wall_s = wall_s;
    res->train_s = train_s;
    res->samples_per_s = samples / (train_s > 0 ? train_s : 1e-9);
}

int train_resume_begin(const train_opts_t *opts, const char *prefix, long step0, long per_epoch,
                       epoch_row_t *rows, int max_rows)
{
    if (!opts->resume)
        return 0;
    train_logf(opts, 0, "%sresuming from %s at step %ld (epoch %ld, batch %ld)", prefix,
               opts->resume_path, step0, step0 / per_epoch + 1, step0 % per_epoch + 1);
    /* the epochs before, from the run this one continues */
    return report_read_metrics(opts->resume_dir ? opts->resume_dir : opts->out_dir, rows,
                               max_rows, (int)(step0 / per_epoch));
}

void train_log_epoch(const train_opts_t *o, const char *prefix, const epoch_row_t *r, int epochs,
                     int has_val, double seconds)
{
    char val[64] = "";
    if (has_val)
        snprintf(val, sizeof val, " | val loss %.4f acc %.2f%%", r->val_loss, 100 * r->val_acc);
    train_logf(o, 0,
               "%sepoch %d/%d done: train loss %.4f acc %.2f%%%s | test loss %.4f acc %.2f%% | "
               "%.0f samples/s, %.1f s",
               prefix, r->epoch, epochs, r->train_loss, 100 * r->train_acc, val, r->test_loss,
               100 * r->test_acc, r->samples_per_s, seconds);
}

/* A checkpoint of single-process training after `step` steps: the whole
 * model as RUN_DIR/checkpoints/step-N/model.ckpt, then its manifest. */
static int local_checkpoint(const job_config_t *cfg, const train_opts_t *opts, const model_t *m,
                            const job_data_t *data, long step, long per_epoch, float *params,
                            float *state, int slots, err_t *err)
{
    char root[4200], dir[4300], path[4400];
    snprintf(root, sizeof root, "%s/checkpoints", opts->out_dir);
    if (ckptdir_step_dir(dir, sizeof dir, root, step, err) != 0 ||
        ckptdir_part_path(path, sizeof path, root, step, 0, 0, err) != 0 ||
        fs_mkdirs(dir, err) != 0)
        return -1;
    checkpoint_t ck;
    uint8_t order[TRAIN_ORDER_LEN];
    train_checkpoint_init(&ck, cfg, opts, m, data, step, step, (int)(step / per_epoch), params,
                          state, slots, order);
    if (checkpoint_write(path, &ck, err) != 0)
        return -1;
    return ckptdir_commit(root, step, (int)(step / per_epoch), 0, order, sizeof order,
                          ck.norm_kind, ck.norm_dim, ck.norm_mean, ck.norm_inv_std,
                          cfg->checkpoint.keep, err);
}

int train_local(const job_config_t *cfg, const train_opts_t *opts, train_result_t *res,
                err_t *err)
{
    int rc = -1;
    job_data_t data;
    memset(&data, 0, sizeof data);
    memset(res, 0, sizeof *res);
    model_t *m = NULL;
    float *params = NULL, *grads = NULL, *state = NULL, *xb = NULL;
    int32_t *yb = NULL;
    uint32_t *perm = NULL;
    epoch_row_t *rows = NULL;

    if (fs_mkdirs(opts->out_dir, err) != 0)
        return -1;
    if (train_prepare(cfg, &m, &data, err) != 0)
        goto out;

    const size_t n_params = model_n_params(m);
    optim_params_t op;
    optim_params_from_config(&op, cfg);
    const int slots = optim_slots(&op);
    const size_t n_train = data.train->n, dim = data.train->dim;
    const int batch = cfg->train.batch;
    params = malloc(n_params * sizeof *params);
    grads = calloc(n_params, sizeof *grads);
    state = calloc(slots ? (size_t)slots * n_params : 1, sizeof *state);
    xb = calloc((size_t)batch * dim, sizeof *xb);
    yb = calloc((size_t)batch, sizeof *yb);
    perm = malloc(n_train * sizeof *perm);
    rows = calloc((size_t)cfg->train.epochs, sizeof *rows);
    if (!params || !grads || !state || !xb || !yb || !perm || !rows) {
        err_set(err, "out of memory for %zu parameters", n_params);
        goto out;
    }
    long per_epoch;
    const long total = train_total_steps(cfg, n_train, &per_epoch);
    long step0 = 0;
    if (opts->resume) {
        step0 = train_resume_check(opts->resume, opts->resume_path, cfg, m, n_train, slots, total,
                                   err);
        if (step0 < 0)
            goto out;
        memcpy(params, opts->resume->params, n_params * sizeof *params);
        if (slots)
            memcpy(state, opts->resume->opt_state, (size_t)slots * n_params * sizeof *state);
    } else {
        if (params_init_slice(model_params(m), cfg->train.seed, 0, n_params, params, err) != 0)
            goto out;
        optim_state_init(&op, state, n_params);
    }
    train_logf(opts, 0,
          "pstrain local: %s, %zu parameters, %zu training / %zu validation / %zu test samples, "
          "batch %d, %ld steps",
          cfg->name, n_params, n_train, data.val ? data.val->n : 0, data.test->n, batch, total);
    int epochs_done = train_resume_begin(opts, "", step0, per_epoch, rows, cfg->train.epochs);

    const double t0 = progress_now();
    double train_s = 0, last_ckpt_s = t0;
    long step = step0, samples = 0;
    for (int epoch = (int)(step0 / per_epoch); epoch < cfg->train.epochs && step < total;
         epoch++) {
        data_permutation(perm, n_train, cfg->train.seed, (uint64_t)epoch);
        double loss_sum = 0, ep_t0 = progress_now(), ep_train_s = 0;
        long right = 0, seen = 0;
        long b;
        for (b = step % per_epoch; b < per_epoch && step < total; b++) {
            if (train_stop_signal) {
                if (local_checkpoint(cfg, opts, m, &data, step, per_epoch, params, state, slots,
                                     err) != 0)
                    goto out;
                train_logf(opts, 0, "stopped by a signal at step %ld: checkpoint written to "
                           "%s/checkpoints/step-%09ld; continue with --resume %s", step,
                           opts->out_dir, step, opts->out_dir);
                res->stopped = 1;
                res->steps = step;
                rc = 0;
                goto out;
            }
            if (step > step0 && train_checkpoint_due(cfg, step, &last_ckpt_s)) {
                if (local_checkpoint(cfg, opts, m, &data, step, per_epoch, params, state, slots,
                                     err) != 0)
                    goto out;
                train_logf(opts, 0, "checkpoint of step %ld written", step);
            }
            double s0 = progress_now();
            size_t lo, hi;
            data_batch_slice(n_train, (size_t)batch, (size_t)b, 0, 1, &lo, &hi);
            int B = (int)(hi - lo);
            data_gather(data.train, perm, lo, hi, xb, yb);
            memset(grads, 0, n_params * sizeof *grads);
            int ok = 0;
            const model_run_t run = {.training = 1, .step = step, .first = 0};
            loss_sum += model_train_step(m, &run, params, grads, xb, yb, B, 1.0f / (float)B, &ok);
            optim_update(&op, params, grads, state, n_params, step + 1,
                         optim_lr(&op, step, total));
            right += ok;
            seen += B;
            step++;
            double dt = progress_now() - s0;
            ep_train_s += dt;
            if (step % cfg->train.log_every == 0 || b + 1 == per_epoch || step == total) {
                double sps = seen / (ep_train_s > 0 ? ep_train_s : 1e-9);
                double eta = (double)(total - step) * (train_s + ep_train_s) / (double)(step - step0);
                char line[256];
                progress_format(line, sizeof line, epoch + 1, cfg->train.epochs, b + 1, per_epoch,
                                loss_sum / seen, (double)right / seen, sps, eta);
                train_logf(opts, 1, "%s", line);
            }
        }
        train_s += ep_train_s;
        samples += seen;
        epoch_row_t *r = &rows[epochs_done];
        r->epoch = epoch + 1;
        r->step = step;
        r->train_loss = loss_sum / (double)seen;
        r->train_acc = (double)right / (double)seen;
        r->samples_per_s = seen / (ep_train_s > 0 ? ep_train_s : 1e-9);
        eval_set(m, params, data.val, &r->val_loss, &r->val_acc);
        eval_set(m, params, data.test, &r->test_loss, &r->test_acc);
        r->wall_s = progress_now() - t0;
        epochs_done++;
        train_log_epoch(opts, "", r, cfg->train.epochs, data.val != NULL, progress_now() - ep_t0);
        if (report_write_metrics(opts->out_dir, rows, epochs_done, err) != 0)
            goto out;
    }

    train_result_fill(res, rows, epochs_done, step, n_params, progress_now() - t0, train_s,
                      samples);

    if (local_checkpoint(cfg, opts, m, &data, step, per_epoch, params, state, slots, err) != 0)
        goto out;
    run_summary_t s;
    train_summary_init(&s, cfg, opts, res, samples, "local");
    /* the whole model, as a distributed job's servers would assemble it */
    char ckpath[4096];
    snprintf(ckpath, sizeof ckpath, "%s/model.ckpt", opts->out_dir);
    checkpoint_t ck;
    uint8_t order[TRAIN_ORDER_LEN];
    train_checkpoint_init(&ck, cfg, opts, m, &data, step, step, (int)(step / per_epoch), params,
                          state, slots, order);
    if (train_write_outputs(opts, &s, ckpath, &ck, res, err) != 0)
        goto out;
    if (opts->final_params)
        memcpy(opts->final_params, params, n_params * sizeof *params);
    rc = 0;
out:
    free(params);
    free(grads);
    free(state);
    free(xb);
    free(yb);
    free(perm);
    free(rows);
    model_destroy(&m);
    job_data_free(&data);
    return rc;
}
