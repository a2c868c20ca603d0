/* team.h - N threads that run one model over one batch together: the
 * data-parallel trainer inside a rank.
 *
 * Worker w takes the w-th contiguous slice of the batch (slices differ in
 * size by at most one sample, the first ones larger) and runs forward and
 * backward on it in a workspace of its own, reading the one shared copy of
 * the parameters; the activations of all slices sit one after the other in
 * one batch-sized buffer per layer. Each worker accumulates its gradient in
 * a buffer of its own (worker 0: the caller's), and the team sums them into
 * the caller's in worker order, each worker summing a disjoint range of
 * keys, so a result depends on N only, never on scheduling.
 *
 * GEMM threading: workers call OpenBLAS single-threaded. A layer whose
 * GEMMs are large (team_whole_batch says which) runs over the whole batch
 * instead of one slice per worker, so that its gradient needs no sum: when
 * its kind can split a pass (dense: by output columns) the workers share
 * that pass, each with single-threaded OpenBLAS on its columns; otherwise
 * worker 0 runs it with N OpenBLAS threads while the others wait. Measured
 * on the bench MLP (4096-wide dense layers, batch 256), 2 threads against 1:
 * 1.92x split by columns, 1.73x with OpenBLAS's threads, whose workers
 * spin and yield around every GEMM (README, "Threads").
 *
 * With a gradient hook (a distributed trainer pushing each layer's gradient
 * while backward goes on), the workers meet after each layer with
 * parameters, sum its range, and worker 0 calls the hook; without one, the
 * sum runs once after backward. An update (team_set_update: single-process
 * training's optimizer, which sets one for a team of one thread) is applied
 * the same way, layer by layer, each worker over the keys it has just
 * summed, while the gradient is still in its cache. */
#ifndef PST_TEAM_H
#define PST_TEAM_H

#include <stddef.h>
#include <stdint.h>

#include "common/nn/model.h"
#include "common/util/err.h"

typedef struct team_t team_t;

/* A team of n_threads workers for m, for batches of up to max_batch
 * samples (n_threads - 1 threads are started; 1: the caller alone). Returns
 * it, or NULL with err. m must outlive it. */
team_t *team_new(const model_t *m, int n_threads, int max_batch, err_t *err);

/* Stops the threads, frees *self_p (may be NULL), sets it to NULL. */
void team_destroy(team_t **self_p);

int team_size(const team_t *t);

/* 1 when layer `layer` of m, in batches of B samples, runs over the whole
 * batch (split by columns, or on OpenBLAS's threads) rather than in slices (the rule
 * the README's benchmark section measured; see team.c). */
int team_whole_batch(const model_t *m, int layer, int B);

/* Number of model layers that run over the whole batch in this team. */
int team_n_whole(const team_t *t);

/* The gradient hook (see model.h), called by worker 0 once a layer's
 * parameter range is summed; NULL: none. */
void team_set_grad_hook(team_t *t, model_grad_hook_fn fn, void *ctx);

/* Runs fn(ctx, begin, end) over disjoint slices of [0, n) (see team_for). */
typedef void (*team_range_fn)(void *ctx, size_t begin, size_t end);

/* The update (NULL: none): in each training step, fn(ctx, b, e) is called
 * on every layer's parameter range as soon as its gradient is final (the
 * workers each on a share of it, after they summed that share), to apply
 * the optimizer to parameters [b, e) from the gradient and leave the
 * gradient's [b, e) zero. A step then ends with its parameters updated and
 * the gradient buffer clear, and the team does not clear it at the next
 * (the buffer must be zero when the update is set). No pass of the step
 * reads a layer's parameters once backward is past that layer, so the
 * update is the one the whole buffer would get after the step. */
void team_set_update(team_t *t, team_range_fn fn, void *ctx);

/* A fused step (params NULL: none): in the next training steps, a team of
 * one worker applies param -= lr * gradient to each layer whose kind can
 * (model_op_fusable: dense) as backward computes the gradient, straight
 * into params (the step's parameters, writable), instead of writing the
 * gradient: the SGD step without a pass over a gradient buffer. Those
 * layers' keys then get no update (team_set_update) and their gradient
 * stays zero. With several workers it does nothing (each worker holds a
 * part of the gradient). The result is the SGD step's to float rounding. */
void team_set_step(team_t *t, float *params, float lr);

/* With dx not NULL, every training step also writes the gradient of the
 * objective with respect to the input into dx [B][input_size] (the step's
 * batch; each worker its slice): a model fed by embedding rows outside it
 * turns that into the rows' gradients. NULL (the default): not computed. */
void team_set_input_grad(team_t *t, float *dx);

/* A training step over B samples x [B][input_size] with labels y (run:
 * the step, and run->first the index of x's first sample in the global
 * batch): grads = d(scale * sum of the B losses)/d(params) (overwritten,
 * not added to; with an update, applied and cleared). B = 0 still calls
 * the hook and the update for every range (a zero gradient). Returns the
 * sum of the losses; *correct (if not NULL) gets the samples classified
 * right. */
double team_train_step(team_t *t, const model_run_t *run, const float *params, float *grads,
                       const float *x, const int32_t *y, int B, float scale, int *correct);

/* Forward (evaluation) and loss over B samples. Returns the sum of the
 * losses; *correct (if not NULL) += the samples classified right. */
double team_eval_batch(team_t *t, const float *params, const float *x, const int32_t *y, int B,
                       int *correct);

/* After team_eval_batch of B samples: the probabilities [B][outputs] the
 * loss's fused activation gave (the team's buffer, valid until its next
 * pass), or NULL for a loss without one (mse). */
const float *team_eval_probs(const team_t *t);

/* Forward (evaluation) only: the output probabilities [B][classes] (a
 * buffer of the team's, valid until its next pass). */
const float *team_predict(team_t *t, const float *params, const float *x, int B);

/* Runs fn(ctx, begin, end) on every worker at once over disjoint slices of
 * [0, n) that cover it (an optimizer's update of the whole buffer). */
void team_for(team_t *t, size_t n, team_range_fn fn, void *ctx);

#endif
