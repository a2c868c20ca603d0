/* model.h - a network built from a job config's model section.
 *
 * The model is a PLAN, read-only once built: the chain of layers (each a
 * layer_t of its kind, common/nn/layer.h), the flat parameter table, the
 * loss, and the order in which the layers run (a convolution may absorb
 * the max pool after it). A WORKSPACE (model_ws_t) holds what one batch
 * needs: every layer's activations, their gradients and its scratch, for
 * up to max_batch samples, allocated (and touched) once. Several
 * workspaces can run one plan at the same time on disjoint slices of a
 * batch; nothing holds parameters: every call takes the flat parameter
 * buffer (and gradient buffer) laid out as model_params() says, so the same
 * model serves a trainer, an evaluator and the exporter. Nothing is
 * allocated per step.
 *
 * model_new also makes the model's own workspace (model_ws), which the
 * model_* run functions below use.
 */
#ifndef PST_MODEL_H
#define PST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/config/config.h"
#include "common/nn/layer.h"
#include "common/nn/loss.h"
#include "common/nn/params.h"

typedef struct model_t model_t;
typedef struct model_ws_t model_ws_t;

typedef struct {
    int no_fusion; /* 1: no layer absorbs the next (each runs its own kernel) */
} model_opts_t;

/* Builds the model of cfg (its layers checked for shape compatibility) with
 * its own workspace for up to max_batch samples. Returns a new model, or
 * NULL with err naming the config file, the layer's line and what does not
 * fit. opts may be NULL (the defaults). */
model_t *model_new(const job_config_t *cfg, int max_batch, err_t *err);
model_t *model_new_opts(const job_config_t *cfg, int max_batch, const model_opts_t *opts,
                        err_t *err);

/* Frees *self_p (may be NULL) and its own workspace, and sets it to NULL.
 * Workspaces made with model_ws_new must be destroyed first. */
void model_destroy(model_t **self_p);

const param_table_t *model_params(const model_t *m);
size_t model_n_params(const model_t *m);
int model_input_size(const model_t *m);   /* floats per sample */
int model_output_size(const model_t *m);  /* outputs per sample */
/* The number of classes (label values): the outputs per sample, or 2 for a
 * single-output loss (binary_cross_entropy: one logit, labels 0 / 1). */
int model_n_classes(const model_t *m);
int model_max_batch(const model_t *m);
/* The layers of the model (without a final activation the loss applies
 * itself), in config order. */
int model_n_layers(const model_t *m);
const layer_t *model_layer(const model_t *m, int i);
const loss_kind_t *model_loss(const model_t *m);
/* The activation the loss applies itself (fused) and that prediction and
 * exported graphs therefore end in, or NULL: outputs are read as they are. */
const act_kind_t *model_output_act(const model_t *m);

/* ---- workspaces --------------------------------------------------------- */

/* A new workspace for m, for passes of up to max_batch samples. Returns it,
 * or NULL with err (out of memory). m must outlive it. */
model_ws_t *model_ws_new(const model_t *m, int max_batch, err_t *err);
/* Frees *self_p (may be NULL) and sets it to NULL. */
void model_ws_destroy(model_ws_t **self_p);
/* The model's own workspace (max_batch of model_new). */
model_ws_t *model_ws(model_t *m);

/* Called by a training step as soon as backward has finished the gradient
 * of one layer's parameters: flat range [begin, end). A distributed trainer
 * pushes that range while backward goes on below it. */
typedef void (*model_grad_hook_fn)(void *ctx, size_t begin, size_t end);
void model_ws_set_grad_hook(model_ws_t *w, model_grad_hook_fn fn, void *ctx);

/* Calls the hook for every layer's parameter range, in the order backward
 * would, without computing anything: a trainer with no samples in a step
 * still pushes its (zero) gradient in the same pieces as the others. */
void model_ws_emit_grad_ranges(model_ws_t *w);

/* Forward over B samples x [B][input_size] (run NULL: evaluation). Returns
 * the model's raw output [B][outputs] (before the fused activation), a
 * buffer of w valid until its next pass. */
const float *model_ws_forward(model_ws_t *w, const model_run_t *run, const float *params,
                              const float *x, int B);

/* The loss of the raw output out [B][outputs] against labels y: returns the
 * sum of the B losses; dout (if not NULL) = d(scale * sum)/d out; *correct
 * (if not NULL) += the samples classified right. */
double model_ws_loss(model_ws_t *w, const float *out, const int32_t *y, int B, float scale,
                     float *dout, int *correct);

/* Backward after model_ws_forward of the same run, params, x and B, from
 * dout [B][outputs], the gradient of the raw output (not changed):
 * grads += d/d params; dx (if not NULL) = d/d x [B][input_size]. */
void model_ws_backward(model_ws_t *w, const model_run_t *run, const float *params, float *grads,
                       const float *x, int B, const float *dout, float *dx);

/* The output [B][out] of layer i (model_layer) in the last forward of w,
 * or NULL when a layer before it computed it within its own kernel. */
const float *model_ws_layer_output(const model_ws_t *w, int i);

/* Forward, loss and backward over B <= max_batch samples x with labels y:
 * grads += d(scale * sum of the B losses)/d(params). Returns the sum of
 * the B losses; *correct (if not NULL) += the samples classified right. */
double model_ws_train_step(model_ws_t *w, const model_run_t *run, const float *params,
                           float *grads, const float *x, const int32_t *y, int B, float scale,
                           int *correct);

/* Forward (evaluation) and loss only. Returns the sum of the B losses. */
double model_ws_eval_batch(model_ws_t *w, const float *params, const float *x, const int32_t *y,
                           int B, int *correct);

/* Forward (evaluation) only: returns the model's output probabilities
 * [B][outputs] (through model_output_act), a buffer of w valid until its
 * next pass. */
const float *model_ws_predict(model_ws_t *w, const float *params, const float *x, int B);

/* ---- the same on the model's own workspace --------------------------- */

void model_set_grad_hook(model_t *m, model_grad_hook_fn fn, void *ctx);
void model_emit_grad_ranges(model_t *m);
double model_train_step(model_t *m, const model_run_t *run, const float *params, float *grads,
                        const float *x, const int32_t *y, int B, float scale, int *correct);
double model_eval_batch(model_t *m, const float *params, const float *x, const int32_t *y, int B,
                        int *correct);
const float *model_predict(model_t *m, const float *params, const float *x, int B);

#endif
