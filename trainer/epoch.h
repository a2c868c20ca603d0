/* epoch.h - the epoch driver that single-process and distributed training
 * share: the global data order (a seeded permutation per epoch, cut into
 * global batches), this trainer's slice of every batch, the forward and
 * backward pass, the progress line, periodic checkpoints, and the end of
 * every epoch (the epoch's sums, evaluation, its row of metrics.csv).
 *
 * What differs between the two is a backend (a table of functions, as a
 * layer kind is): where the parameters of a step come from (single process:
 * its own buffer; a trainer: the servers) and where its gradient goes (the
 * optimizer here, or the servers through the model's gradient hook), how a
 * checkpoint is written, how the epoch's figures are summed and how a set is
 * evaluated (over all trainers). */
#ifndef PST_EPOCH_H
#define PST_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/config/config.h"
#include "common/nn/model.h"
#include "common/nn/team.h"
#include "common/util/err.h"
#include "trainer/auc.h"
#include "trainer/ctr_feed.h"
#include "trainer/jobdata.h"
#include "trainer/report.h"
#include "trainer/train.h"

/* How a step, an epoch or the whole loop ended. */
typedef enum {
    EPOCH_GO = 0,   /* go on (after the last epoch: every step ran) */
    EPOCH_STOPPED,  /* the job stopped on request; the backend has written its checkpoint */
    EPOCH_HALT,     /* a request failed: the job may halt (the backend knows) */
    EPOCH_FAILED,   /* an error, in err */
} epoch_end_t;

typedef struct epoch_t epoch_t;

/* What the two kinds of training do differently. ctx is epoch_t.ctx. */
typedef struct {
    /* Before the gradient of step `step`: e->params must then hold the
     * step's parameters. A stop on request is handled here (EPOCH_STOPPED). */
    epoch_end_t (*begin_step)(epoch_t *e, long step, err_t *err);
    /* After it: e->grads holds this trainer's gradient of the step. */
    epoch_end_t (*end_step)(epoch_t *e, long step, err_t *err);
    /* A periodic checkpoint of the job after `step` steps (the leader only).
     * Returns 0, or -1 with err. */
    int (*checkpoint)(epoch_t *e, long step, err_t *err);
    /* The end of an epoch after `step` steps: sums (loss, right, samples of
     * this trainer) become the job's, and e->params the model to evaluate. */
    epoch_end_t (*end_epoch)(epoch_t *e, long step, double sums[3], err_t *err);
    /* The loss and accuracy of e->params on ds (NAN for an empty set); for
     * a binary model (e->auc not NULL) also the exact AUC of the whole set
     * into *auc (NAN: an empty set, or one class only). */
    epoch_end_t (*evaluate)(epoch_t *e, const dataset_t *ds, double *loss, double *acc,
                            double *auc, err_t *err);
    /* Sparse models (click logs, model.sparse): the rows of a field's table
     * for a batch, and their gradients after the step (ctr_feed.h's fetch
     * and push; ctx is the epoch_t); the test set's loss, accuracy and AUC
     * streamed through e->feed. NULL: the backend has no tables yet. */
    ctr_fetch_fn fetch_rows;
    ctr_push_fn push_rows;
    epoch_end_t (*evaluate_feed)(epoch_t *e, double *loss, double *acc, double *auc, err_t *err);

} epoch_backend_t;

struct epoch_t {
    /* set by the caller before epoch_setup */
    const job_config_t *cfg;
    const train_opts_t *opts;  /* its log and out_dir (the backend may switch the log on) */
    const job_data_t *data;
    model_t *m;
    float *params, *grads;     /* model_n_params(m) each, the caller's */
    int trainer, n_trainers;   /* this trainer's slice of every global batch: t of T */
    int lead;                  /* 1: this trainer prints progress and writes metrics.csv */
    char prefix[64];           /* before every log line ("" or "rank R trainer T: ") */
    const epoch_backend_t *be;
    void *ctx;                 /* the backend's */
    long step0;                /* steps done before (a resumed job), 0 otherwise */

    /* set by epoch_setup */
    team_t *team;              /* the threads that run the model (train.threads of them) */
    long total, per_epoch;     /* steps of the job, batches of one epoch */
    epoch_row_t *rows;         /* one per epoch; epochs_done of them filled */
    int epochs_done;
    float *xb;                 /* this trainer's slice of a batch: inputs ... */
    int32_t *yb;               /* ... and labels */
    auc_t *auc;                /* a binary model's (one output, binary_cross_entropy):
                                  the scores of the set being evaluated; else NULL */
    uint32_t *perm;            /* the epoch's data order (IDX data) */
    ctr_feed_t *feed;          /* click logs: the batches and their rows; else NULL */
    float *dx;                 /* click logs: the input's gradient of a step */

    /* kept by epoch_run */
    long step, samples;        /* steps done; training samples of the job so far */
    long own_samples;          /* of those, this trainer's (its slices of the batches) */
    double t0, train_s;        /* start; seconds spent in training steps */
    double compute_s;          /* of those, in forward and backward (and the hook) */
    double last_ckpt_s;
    train_chain_t chain;       /* a sparse model's tables checkpoints since the last full one */
};

/* Computes the job's steps, allocates the batch buffers and starts the
 * team of train.threads threads (CFG_AUTO: the CPUs this process may use).
 * Returns 0, or -1 with err (out of memory, a thread that did not start). */
int epoch_setup(epoch_t *e, err_t *err);

/* Runs the epochs from step e->step0 to the job's last (a resumed job first
 * logs where it resumes and takes the epochs before from the resumed run's
 * metrics.csv). Returns EPOCH_GO
 * when every step ran, else how it ended (err for EPOCH_FAILED, and for
 * EPOCH_HALT the request that failed). */
epoch_end_t epoch_run(epoch_t *e, err_t *err);

/* The loss and accuracy of e->params on samples [begin, end) of ds, in
 * evaluation batches, with the team: sums added to *loss_sum and *right;
 * auc (may be NULL) gets the samples' probabilities and labels. Returns 0,
 * or -1 with err (out of memory for the scores). */
int epoch_evaluate(epoch_t *e, const dataset_t *ds, size_t begin, size_t end, double *loss_sum,
                   long *right, auc_t *auc, err_t *err);

/* A click-log job's test set streamed through e->feed with the rows from
 * fetch (ctx e): its loss, accuracy and exact AUC (NAN when empty). Returns
 * 0, or -1 with err. */
int epoch_evaluate_feed(epoch_t *e, ctr_fetch_fn fetch, double *loss, double *acc, double *auc,
                        err_t *err);

/* Frees what epoch_setup allocated (not the caller's buffers). */
void epoch_free(epoch_t *e);

#endif
