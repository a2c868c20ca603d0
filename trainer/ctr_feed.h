/* ctr_feed.h - click logs into a sparse model: the epoch driver's batches
 * of a job with data.format = "criteo" and model.sparse.
 *
 * A batch of samples streamed from data.train (common/data/ctr_stream.h)
 * becomes the model's input: each sample's 13 dense features, then its 26
 * field vectors, the rows of the fields' embedding tables that the batch
 * touches fetched once per unique id (common/nn/sparse_input.h) from where
 * the tables live (a row store in this process, or the parameter servers:
 * the caller's fetch function). After the step, the input's gradient
 * becomes one gradient per row, handed to the caller's push function.
 */
#ifndef PST_CTR_FEED_H
#define PST_CTR_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "common/config/config.h"
#include "common/nn/rows.h"
#include "common/nn/team.h"
#include "common/util/err.h"
#include "trainer/auc.h"

typedef struct ctr_feed_t ctr_feed_t;

/* Writes the rows of every field's table a batch touches: for field k of
 * n_fields, the rows ids[k][0..n[k]) into out[k] (n[k] x dim floats).
 * training: 1 in a training step (rows may come into being), 0 in
 * evaluation (a row not held reads as its initial value and is not made).
 * Returns 0, or -1 with err. */
typedef int (*ctr_fetch_fn)(void *ctx, int n_fields, const uint64_t *const *ids, const size_t *n,
                            float *const *out, int training, err_t *err);

/* Takes the gradients (n x dim floats) of the rows ids[0..n) of field's
 * table for the step just computed. Returns 0, or -1 with err. */
typedef int (*ctr_push_fn)(void *ctx, int field, const uint64_t *ids, size_t n,
                           const float *grads, err_t *err);

/* The training data is read in parts (ctr_stream.h's split, part p of P as
 * trainer p of P reads it), and a global batch of train.batch samples is
 * the parts' shares of it (data_batch_slice's cut) end to end, in part
 * order: part p's s-th share is its lines [s b_p, (s + 1) b_p). A trainer
 * of T reads part t of T; one process may read all P parts in step and so
 * train on the batches of a P-trainer job. An epoch has as many batches as
 * its longest part needs: max over p of ceil(lines_p / b_p). */

/* What a training batch is within its global batch (the line counts say). */
typedef struct {
    int global;  /* samples of the global batch; 0: the epoch is over */
    int first;   /* where this feed's samples start in it */
} ctr_step_t;

/* Counts the lines of each of the `parts` parts of data.train into lines
 * (parts of them; may be NULL), the batches of an epoch into *per_epoch and
 * the lines of all into *total_lines (may be NULL): one pass over the data.
 * Returns 0, or -1 with err (a batch smaller than parts, a source that
 * matches nothing or holds no line, a read error). */
int ctr_feed_plan(const job_config_t *cfg, int parts, uint64_t *lines, long *per_epoch,
                  uint64_t *total_lines, err_t *err);

/* A feed of cfg's click logs for a model whose input holds input_size
 * floats, reading parts [part0, part0 + n_own) of `parts`. Opens data.train
 * (epoch 0). Returns it, or NULL with err (a source that matches nothing,
 * a model that does not fit the logs, out of memory). */
ctr_feed_t *ctr_feed_new(const job_config_t *cfg, int input_size, int part0, int n_own,
                         int parts, err_t *err);

/* Batches of an epoch, and the lines of data.train (ctr_feed_plan). */
long ctr_feed_per_epoch(const ctr_feed_t *f);
uint64_t ctr_feed_lines(const ctr_feed_t *f);

/* Stops the readers, frees *self_p (may be NULL), sets it to NULL. */
void ctr_feed_destroy(ctr_feed_t **self_p);

/* Starts epoch `epoch` of the training data. Returns 0, or -1 with err. */
int ctr_feed_rewind(ctr_feed_t *f, int epoch, err_t *err);

/* The feed's share of the epoch's next global batch into x
 * [train.batch][input_size] and y, with its rows from fetch, and into *st
 * what the global batch is (st->global 0: the epoch is over). Returns the
 * samples here (0 when this feed's parts have ended before the others), or
 * -1 with err (a bad line, a failed fetch). */
int ctr_feed_train(ctr_feed_t *f, float *x, int32_t *y, ctr_fetch_fn fetch, void *ctx,
                   ctr_step_t *st, err_t *err);

/* Passes over the epoch's next `batches` global batches (a resumed job
 * starting inside an epoch): their lines are read, nothing is fetched.
 * Returns 0, or -1 with err. */
int ctr_feed_skip(ctr_feed_t *f, long batches, err_t *err);

/* From dx [n][input_size], the gradient of the last batch's objective with
 * respect to the model input: each row's gradient to push. Returns 0, or -1
 * with err. */
int ctr_feed_push(ctr_feed_t *f, const float *dx, ctr_push_fn push, void *ctx, err_t *err);

/* Evaluates params on the whole of data.test (every feed reads all of it), in
 * batches through the team: adds the losses to *loss_sum, the samples right
 * to *right and their number to *n, and every (probability, label) to auc.
 * Returns 0, or -1 with err. */
int ctr_feed_evaluate(ctr_feed_t *f, team_t *t, const float *params, ctr_fetch_fn fetch,
                      void *ctx, double *loss_sum, long *right, size_t *n, auc_t *auc, err_t *err);

/* Bad lines skipped so far (data.bad_lines = "skip"), training and test. */
uint64_t ctr_feed_bad_lines(const ctr_feed_t *f);

#endif
