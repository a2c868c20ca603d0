/* train.c - what single-process and distributed training share (see
 * train.h): options and results, the stop signal, the data-order record,
 * checkpoints of the whole model and their manifests, resume checks, and
 * the outputs of a finished run. */
#include "trainer/train.h"

#include <cblas.h>
#include <cjson/cJSON.h>
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

long train_steps_capped(const job_config_t *cfg, long per_epoch)
{
    long total = per_epoch * cfg->train.epochs;
    return cfg->train.max_steps > 0 && cfg->train.max_steps < total ? cfg->train.max_steps
                                                                     : total;
}

long train_total_steps(const job_config_t *cfg, size_t n_train, long *per_epoch)
{
    long pe = (long)data_batches_per_epoch(n_train, (size_t)cfg->train.batch, 0);
    if (per_epoch)
        *per_epoch = pe;
    return train_steps_capped(cfg, pe);
}

int train_prepare(const job_config_t *cfg, model_t **m, job_data_t *data, err_t *err)
{
    openblas_set_num_threads(1); /* the team's threads call OpenBLAS (team.h) */
    memset(data, 0, sizeof *data);
    int max_batch = cfg->train.batch > cfg->train.eval_batch ? cfg->train.batch
                                                             : cfg->train.eval_batch;
    *m = model_new(cfg, max_batch, err);
    if (!*m)
        return -1;
    if (job_data_load(data, cfg, model_input_size(*m), model_n_classes(*m), err) != 0) {
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
        .binary = res->binary, .test_auc = res->test_auc, .test_logloss = res->test_logloss,
        .val_auc = res->val_auc, .val_logloss = res->val_logloss,
        .wall_s = res->wall_s, .train_s = res->train_s, .samples_per_s = res->samples_per_s,
        .samples = samples, .threads = cfg->train.threads, .batch = cfg->train.batch,
        .mode = mode,
    };
}

void train_order_record(uint8_t *order, const job_config_t *cfg, size_t n_train, long step,
                        int parts)
{
    uint8_t *p = order;
    le_write32(&p, 2);
    le_write64(&p, cfg->train.seed);
    le_write64(&p, n_train);
    le_write32(&p, (uint32_t)cfg->train.batch);
    le_write64(&p, (uint64_t)step);
    le_write32(&p, (uint32_t)parts);
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
    train_order_record(order, cfg, data ? job_data_n_train(data) : 0, step,
                       data ? data->ctr_parts : 0);
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

int train_chain_next(train_chain_t *c, const job_config_t *cfg, long step, int periodic)
{
    if (periodic && c->len > 0 && c->len < cfg->checkpoint.full_every && c->len < CKPT_CHAIN_MAX) {
        c->steps[c->len++] = step;
        return 1;
    }
    c->steps[0] = step;
    c->len = 1;
    return 0;
}

int train_commit_checkpoint(const job_config_t *cfg, const char *out_dir, const job_data_t *data,
                            long step, long per_epoch, int n_shards, const train_chain_t *chain,
                            err_t *err)
{
    char root[4200];
    snprintf(root, sizeof root, "%s/checkpoints", out_dir);
    uint8_t order[TRAIN_ORDER_LEN];
    train_order_record(order, cfg, job_data_n_train(data), step, data->ctr_parts);
    const norm_stats_t *nm = &data->norm;
    int kind = nm->kind != NORM_NONE && nm->mean ? (int)nm->kind : 0;
    const ckpt_tables_t t = {chain ? chain->steps : NULL, chain ? chain->len : 0};
    return ckptdir_commit(root, step, (int)(step / per_epoch), n_shards, chain ? &t : NULL, order,
                          sizeof order,
                          kind, nm->dim, nm->mean, nm->inv_std, cfg->checkpoint.keep, err);
}

int train_link_tables(const char *out_dir, long step, int n_parts, err_t *err)
{
    char root[4200], dir[4300], src[4400], dst[4400];
    snprintf(root, sizeof root, "%s/checkpoints", out_dir);
    if (ckptdir_step_dir(dir, sizeof dir, root, step, err) != 0)
        return -1;
    for (int i = 0; i < (n_parts ? n_parts : 1); i++)
        if (ckptdir_tables_path(src, sizeof src, dir, i, n_parts, 0, err) != 0 ||
            ckptdir_tables_path(dst, sizeof dst, out_dir, i, n_parts, 0, err) != 0 ||
            fs_link_atomic(src, dst, err) != 0)
            return -1;
    return 0;
}

/* "PATH.json" for the tables file path into buf. Returns 0, or -1 with err. */
static int counts_path(char *buf, size_t len, const char *path, err_t *err)
{
    int w = snprintf(buf, len, "%s.json", path);
    return w < 0 || (size_t)w >= len ? err_set(err, "%s: path too long", path) : 0;
}

int train_tables_counts_write(const rows_t *rows, const char *path, err_t *err)
{
    char where[4400];
    if (counts_path(where, sizeof where, path, err) != 0)
        return -1;
    cJSON *o = cJSON_CreateObject(), *a = o ? cJSON_AddArrayToObject(o, "tables") : NULL;
    for (int i = 0; a && i < rows_n_tables(rows); i++) {
        rows_stats_t st = {0};
        const uint32_t id = rows_table_id(rows, i);
        rows_stats(rows, id, &st);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddItemToArray(a, t);
        cJSON_AddNumberToObject(t, "id", id);
        cJSON_AddNumberToObject(t, "rows", (double)st.rows);
        cJSON_AddNumberToObject(t, "created", (double)st.created);
        cJSON_AddNumberToObject(t, "evicted", (double)st.evicted);
        cJSON_AddNumberToObject(t, "dropped", (double)st.dropped);
    }
    char *text = a ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return err_set(err, "%s: out of memory", where);
    int rc = fs_write_atomic(where, text, strlen(text), err);
    free(text);
    return rc;
}

int train_tables_created(const char *dir, int n_parts, int n_tables, uint64_t *created,
                         err_t *err)
{
    memset(created, 0, (size_t)n_tables * sizeof *created);
    for (int i = 0; i < (n_parts ? n_parts : 1); i++) {
        char path[4400], where[4500];
        if (ckptdir_tables_path(path, sizeof path, dir, i, n_parts, 0, err) != 0 ||
            counts_path(where, sizeof where, path, err) != 0)
            return -1;
        char *text = fs_read_all(where, NULL, err);
        cJSON *o = text ? cJSON_Parse(text) : NULL;
        free(text);
        const cJSON *t, *a = cJSON_GetObjectItemCaseSensitive(o, "tables");
        int rc = cJSON_IsArray(a) ? 0 : err_set(err, "%s: no \"tables\" array", where);
        cJSON_ArrayForEach(t, a) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id"),
                        *c = cJSON_GetObjectItemCaseSensitive(t, "created");
            if (!cJSON_IsNumber(id) || !cJSON_IsNumber(c) || id->valuedouble < 0 ||
                id->valuedouble >= n_tables) {
                rc = err_set(err, "%s: a table without a known id and its count", where);
                break;
            }
            created[(int)id->valuedouble] += (uint64_t)c->valuedouble;
        }
        cJSON_Delete(o);
        if (rc != 0)
            return -1;
    }
    return 0;
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
    const uint32_t version = ck->data_order_len >= 4 ? le_load32(ck->data_order) : 0;
    if (!(version == 1 && ck->data_order_len == TRAIN_ORDER_LEN_V1) &&
        !(version == 2 && ck->data_order_len == TRAIN_ORDER_LEN))
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

int train_resume_parts(const checkpoint_t *ck, const char *path, int parts, long per_epoch,
                       err_t *err)
{
    if (ck->data_order_len != TRAIN_ORDER_LEN)
        return 0; /* a version 1 record: the parts are not known */
    const uint32_t had = le_load32(ck->data_order + 32);
    if (had == 0 || had == (uint32_t)parts || ck->step % (uint64_t)per_epoch == 0)
        return 0;
    return err_set(err, "%s: step %llu lies inside an epoch of a job that read the click log in "
                   "%u parts (one per trainer), and this one reads it in %d: the rest of the "
                   "epoch would skip some samples and repeat others. Resume it with %u "
                   "trainers (or --local with data.parts = %u), or from a checkpoint at the end "
                   "of an epoch", path, (unsigned long long)ck->step, had, parts, had, had);
}

/* The export stage: reads the checkpoint at ckpt_path back (which checks
 * it) and writes the model for serving systems next to it, model.onnx and
 * model.safetensors in out_dir. Returns 0, or -1 with err. */
static int export_stage(const char *out_dir, const char *ckpt_path, err_t *err)
{
    trained_t *t = trained_open(ckpt_path, 1, err);
    if (!t)
        return -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.onnx", out_dir);
    int rc = onnx_export(t, path, PSTRAIN_VERSION, err);
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    if (rc == 0)
        rc = safetensors_export(t, path, err);
    trained_destroy(&t);
    if (rc != 0)
        return err_prefix(err, "export stage (the checkpoint %s is complete)", ckpt_path);
    return 0;
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
        if (checkpoint_write(ckpt_path, ck, err) != 0 ||
            (!opts->no_export && export_stage(opts->out_dir, ckpt_path, err) != 0))
            return -1;
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
    res->binary = last->binary;
    res->val_auc = last->binary ? last->val_auc : NAN;
    res->val_logloss = last->binary ? last->val_logloss : NAN;
    res->test_auc = last->binary ? last->test_auc : NAN;
    res->test_logloss = last->binary ? last->test_logloss : NAN;
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
    char val[96] = "", val_auc[32] = "", test_auc[32] = "";
    if (r->binary) { /* its log loss is the loss shown */
        snprintf(val_auc, sizeof val_auc, " auc %.4f", r->val_auc);
        snprintf(test_auc, sizeof test_auc, " auc %.4f", r->test_auc);
    }
    if (has_val)
        snprintf(val, sizeof val, " | val loss %.4f acc %.2f%%%s", r->val_loss, 100 * r->val_acc,
                 val_auc);
    train_logf(o, 0,
               "%sepoch %d/%d done: train loss %.4f acc %.2f%%%s | test loss %.4f acc %.2f%%%s | "
               "%.0f samples/s, %.1f s",
               prefix, r->epoch, epochs, r->train_loss, 100 * r->train_acc, val, r->test_loss,
               100 * r->test_acc, test_auc, r->samples_per_s, seconds);
}
