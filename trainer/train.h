/* train.h - training a job: its options and result, what single-process and
 * distributed training share (train.c: the stop signal, the data-order
 * record, checkpoints and their manifests, resume checks, a finished run's
 * outputs), and single-process training itself (train_local, local.c: one
 * trainer with the whole parameter buffer and the optimizer in the same
 * process, the same model, data order and optimizer code as a distributed
 * job, through the same epoch driver, epoch.h). */
#ifndef PST_TRAIN_H
#define PST_TRAIN_H

#include <signal.h>
#include <stddef.h>

#include "common/config/config.h"
#include "common/util/err.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "trainer/jobdata.h"
#include "common/nn/model.h"
#include "common/nn/rows.h"
#include "trainer/report.h"

/* Where a trainer's human-readable lines go; main decides (stderr). A
 * transient line is a progress update that the next line may overwrite. */
typedef void (*train_log_fn)(void *ctx, int transient, const char *line);

typedef struct {
    const char *out_dir;      /* run folder; created if missing */
    const char *config_text;  /* effective config, stored in summary.json (may be NULL) */
    train_log_fn log;         /* may be NULL: silent */
    void *log_ctx;
    int no_plot;              /* skip curves.png */
    int no_export;            /* skip the export stage (model.onnx, model.safetensors) */
    float *final_params;      /* if not NULL: receives the trained parameters (n_params) */
    const checkpoint_t *resume; /* if not NULL: continue from this checkpoint (its
                                 * parameters, optimizer state and place in the data order) */
    const char *resume_path;  /* the checkpoint's file, for messages */
    const char *resume_dir;   /* the run folder it belongs to, whose metrics.csv holds the
                               * epochs before (NULL: out_dir) */
} train_opts_t;

typedef struct {
    int stopped;              /* 1: stopped early on request (a signal), with a checkpoint;
                               * 2: this trainer stopped because the job halted (a trainer
                               * was lost) and trainer 0 writes the checkpoint */
    int lost_trainers;        /* trainers the job lost and went on without (ASP/SSP) */
    int led;                  /* this trainer led the end of the job and wrote its outputs
                               * (trainer 0, or the lowest one left when trainer 0 was lost) */
    int first_lost;           /* the first of them, or -1 */
    int epochs;
    long steps;
    size_t params;
    double train_loss, train_acc, val_loss, val_acc, test_loss, test_acc;
    int binary;               /* a binary_cross_entropy model: the four below are set */
    double val_auc, val_logloss, test_auc, test_logloss;
    double wall_s, train_s, samples_per_s;
    long own_samples;         /* the samples this trainer (process) trained on itself: in ASP
                               * each trainer goes at its own pace, and the job's rate is the
                               * sum of the trainers' own_samples / train_s */
    char plot_error[ERR_LEN]; /* non-empty when curves.png could not be drawn */
} train_result_t;

/* Set by train_catch_signals' handler when SIGINT or SIGTERM arrives: the
 * training loops then write a checkpoint at the next step and stop. */
extern volatile sig_atomic_t train_stop_signal;

/* Installs the SIGINT / SIGTERM handler that sets train_stop_signal (a
 * second signal ends the process at once, the default action). */
void train_catch_signals(void);

/* Helpers shared by the local and the distributed training loops. */
/* A line for opts->log (nothing when it is NULL). */
void train_logf(const train_opts_t *o, int transient, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Steps of the job for n_train training samples (epochs x batches, cut at
 * train.max_steps); *per_epoch gets the batches of one epoch. Every trainer
 * and server computes the same. */
long train_total_steps(const job_config_t *cfg, size_t n_train, long *per_epoch);
/* Steps of a job of per_epoch batches an epoch: epochs x per_epoch, cut at
 * train.max_steps. */
long train_steps_capped(const job_config_t *cfg, long per_epoch);
/* Sets the BLAS threads and builds the model (buffers for the larger of the
 * training and evaluation batch) and the job's data. Returns 0, or -1 with
 * err; on error nothing is left allocated. */
int train_prepare(const job_config_t *cfg, model_t **m, job_data_t *data, err_t *err);
/* Fills the fields of s that every run has (job, result, totals) from cfg,
 * opts and res; mode is "local" or "distributed". */
void train_summary_init(run_summary_t *s, const job_config_t *cfg, const train_opts_t *opts,
                        const train_result_t *res, long samples, const char *mode);

/* Bytes of the data-order record of a checkpoint (DATAORDER section):
 * uint32 version 2, uint64 seed, uint64 training samples, uint32 batch,
 * uint64 steps done (the next global batch is that step's), uint32 the
 * parts a click log is read in (0: not one), little-endian. Version 1, its
 * first 32 bytes, is read too (parts unknown). */
#define TRAIN_ORDER_LEN 36
#define TRAIN_ORDER_LEN_V1 32

/* Writes the data-order record (TRAIN_ORDER_LEN bytes) of cfg's job over
 * n_train samples after `step` steps, read in `parts` parts, into order. */
void train_order_record(uint8_t *order, const job_config_t *cfg, size_t n_train, long step,
                        int parts);

/* 1 when a periodic checkpoint is due before step `step` (checkpoint.every_steps
 * divides it, or checkpoint.every_seconds have passed since *last_s, which
 * is then reset to now). */
int train_checkpoint_due(const job_config_t *cfg, long step, double *last_s);

/* The whole model as a checkpoint (borrowing params, state (n_slots floats
 * per parameter, slot-major) and the normalisation statistics of data)
 * after `step` steps and `epochs` epochs; order (TRAIN_ORDER_LEN bytes, the
 * caller's) receives the data-order record and is borrowed too. */
void train_checkpoint_init(checkpoint_t *ck, const job_config_t *cfg, const train_opts_t *opts,
                           const model_t *m, const job_data_t *data, long step, long clock,
                           int epochs, float *params, float *state, int n_slots, uint8_t *order);

/* The checkpoints of a sparse model's tables since the last full one: the
 * steps of the full checkpoint, then of each delta (export/ckptdir.h). */
typedef struct {
    long steps[CKPT_CHAIN_MAX];
    int len;
} train_chain_t;

/* The checkpoint of `step` writes its tables as deltas (returns 1) when it
 * is periodic and the chain holds fewer than checkpoint.full_every; the
 * chain then grows by step; otherwise it writes them full (returns 0) and
 * the chain starts again at step. */
int train_chain_next(train_chain_t *c, const job_config_t *cfg, long step, int periodic);

/* Writes the manifest of the checkpoint of `step` under
 * out_dir/checkpoints once its parts are on disk (n_shards server shards,
 * or 0: one model.ckpt; a sparse model's tables as chain says, NULL:
 * none): the data-order record of cfg's job over data's training set and
 * data's normalisation (ckptdir_commit, which also removes
 * checkpoints beyond checkpoint.keep). Returns 0, or -1 with err. */
int train_commit_checkpoint(const job_config_t *cfg, const char *out_dir, const job_data_t *data,
                            long step, long per_epoch, int n_shards, const train_chain_t *chain,
                            err_t *err);

/* A click-log job resumed from ck (read from path) reads the log in
 * `parts` parts: refused, naming the checkpoint's, when ck lies inside an
 * epoch (per_epoch batches) of a job that read it in another number
 * (whose batches differ). Returns 0, or -1 with err. */
int train_resume_parts(const checkpoint_t *ck, const char *path, int parts, long per_epoch,
                       err_t *err);

/* A sparse model's tables at the end of a run: the tables files of the
 * checkpoint of `step` (n_parts parts, 0: one) linked into out_dir next to
 * model.ckpt (ckptdir_tables_path), replacing older ones. Returns 0, or -1
 * with err. */
int train_link_tables(const char *out_dir, long step, int n_parts, err_t *err);

/* The counters of the tables file path (rows held, created, evicted,
 * dropped per table) as PATH.json next to it, for the end of the job.
 * Returns 0, or -1 with err. */
int train_tables_counts_write(const rows_t *rows, const char *path, err_t *err);

/* The rows created per table (n_tables, ids 0..n_tables-1) over the n_parts
 * tables files in dir, from their counters (train_tables_counts_write) into
 * created. Returns 0, or -1 with err naming the file. */
int train_tables_created(const char *dir, int n_parts, int n_tables, uint64_t *created,
                         err_t *err);

/* Checks that ck (read from path) can resume cfg's job: the same tensors as
 * model m, the same optimizer (n_slots state floats per parameter), and a
 * data-order record with the job's seed, batch and number of training
 * samples (n_train), at a step before the job's last (total). Returns the
 * number of steps already done, or -1 with err naming path and the first
 * difference. */
long train_resume_check(const checkpoint_t *ck, const char *path, const job_config_t *cfg,
                        const model_t *m, size_t n_train, int n_slots, long total, err_t *err);

/* Writes a finished run's outputs into opts->out_dir: summary.json, the
 * checkpoint ck to ckpt_path (when both are given) and the model exported
 * from it (model.onnx, model.safetensors) unless opts->no_export, and
 * curves.png unless opts->no_plot (a plot that fails is only noted in
 * res->plot_error).
 * Returns 0, or -1 with err. */
int train_write_outputs(const train_opts_t *opts, const run_summary_t *s, const char *ckpt_path,
                        const checkpoint_t *ck, train_result_t *res, err_t *err);

/* Fills res from the last of the n epoch rows and the run's totals. */
void train_result_fill(train_result_t *res, const epoch_row_t *rows, int n, long steps, size_t params,
                       double wall_s, double train_s, long samples);
/* The start of a run resumed at step0 (nothing when opts->resume is NULL):
 * the "resuming from ..." line (after prefix) and the metrics.csv rows of the
 * epochs done before, read into rows from the resumed run's folder
 * (opts->resume_dir), so that a run continued in a new folder has them too.
 * Returns the number of rows read. */
int train_resume_begin(const train_opts_t *opts, const char *prefix, long step0, long per_epoch,
                       epoch_row_t *rows, int max_rows);

/* The line printed after each epoch ("epoch 2/3 done: ..."), with prefix. */
void train_log_epoch(const train_opts_t *o, const char *prefix, const epoch_row_t *r, int epochs,
                     int has_val, double seconds);

/* Trains cfg's model on cfg's data in this process, evaluating on the
 * validation and test sets after each epoch and writing metrics.csv,
 * summary.json and curves.png into opts->out_dir. Returns 0, or -1 with err
 * (data, model or file errors). A failing plot is not an error: it is
 * reported in res->plot_error. */
int train_local(const job_config_t *cfg, const train_opts_t *opts, train_result_t *res,
                err_t *err);

#endif
