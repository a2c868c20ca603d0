/* model.h - a network built from a job config's model section: the list of
 * layers, the flat parameter table, and the activation buffers of a batch.
 *
 * The model holds no parameters itself: every call takes the flat parameter
 * buffer (and gradient buffer) laid out as model_params() says, so the same
 * model serves a trainer, an evaluator and the exporter. All buffers are
 * allocated (and touched) once in model_new, for batches up to max_batch;
 * nothing is allocated per step.
 */
#ifndef PST_MODEL_H
#define PST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/config/config.h"
#include "common/nn/layers.h"
#include "common/nn/params.h"

typedef struct model_t model_t;

/* A layer of the built model, for the exporter and for printing. */
typedef struct {
    layer_type_t type;
    act_t act;              /* fused activation of conv2d / dense */
    int in_rank, in_shape[3];
    int out_rank, out_shape[3];
    conv_dims_t conv;       /* conv2d (B unset) */
    pool_dims_t pool;       /* maxpool2d (B unset) */
    lstm_dims_t lstm;       /* lstm (B unset) */
    int param[3];           /* indices into the param table (-1: none):
                               conv/dense weight, bias; lstm w_ih, w_hh, bias */
} model_layer_t;

/* Builds the model of cfg (its layers checked for shape compatibility) with
 * buffers for up to max_batch samples. Returns a new model, or NULL with err
 * naming the config file, the layer's line and what does not fit. */
model_t *model_new(const job_config_t *cfg, int max_batch, err_t *err);

/* Frees *self_p (may be NULL) and sets it to NULL. */
void model_destroy(model_t **self_p);

const param_table_t *model_params(const model_t *m);
size_t model_n_params(const model_t *m);
int model_input_size(const model_t *m);   /* floats per sample */
int model_output_size(const model_t *m);  /* number of classes */
int model_max_batch(const model_t *m);
int model_n_layers(const model_t *m);
const model_layer_t *model_layer(const model_t *m, int i);
/* 1 when the model's output goes through a softmax (fused into the loss for
 * cross-entropy training), so that exported graphs end in Softmax. */
int model_softmax_output(const model_t *m);

/* Called by model_train_step as soon as backward has finished the gradient
 * of one layer's parameters: flat range [begin, end). A distributed trainer
 * pushes that range while backward goes on below it. */
typedef void (*model_grad_hook_fn)(void *ctx, size_t begin, size_t end);
void model_set_grad_hook(model_t *m, model_grad_hook_fn fn, void *ctx);

/* Calls the hook for every layer's parameter range, in the order backward
 * would, without computing anything: a trainer with no samples in a step
 * still pushes its (zero) gradient in the same pieces as the others. */
void model_emit_grad_ranges(model_t *m);

/* Forward, loss and backward over B <= max_batch samples x [B][input_size]
 * with labels y: grads += d(scale * sum of the B losses)/d(params).
 * Returns the sum of the B losses; *correct (if not NULL) += the number of
 * samples classified right. */
double model_train_step(model_t *m, const float *params, float *grads, const float *x,
                        const int32_t *y, int B, float scale, int *correct);

/* Forward and loss only. Returns the sum of the B losses. */
double model_eval_batch(model_t *m, const float *params, const float *x, const int32_t *y, int B,
                        int *correct);

/* Forward only: returns the model's output probabilities [B][classes]
 * (a buffer of the model, valid until the next call). */
const float *model_predict(model_t *m, const float *params, const float *x, int B);

#endif
