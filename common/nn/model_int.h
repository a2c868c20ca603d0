/* model_int.h - the inside of a model and its workspaces, shared by
 * model.c (one workspace runs the plan) and team.c (several threads run it
 * over one batch); not for use outside common/nn. */
#ifndef PST_MODEL_INT_H
#define PST_MODEL_INT_H

#include "common/nn/model.h"

/* One kernel run of a pass: a layer, and the layer after it if it absorbed it. */
typedef struct {
    int layer;               /* index into model_t.layers */
    int last;                /* the last layer it computes (layer or layer + 1) */
    int in_size, out_size;   /* floats per sample */
    int alias;               /* shares the previous op's buffers (an alias kind) */
} op_t;

struct model_t {
    param_table_t params;
    int n_layers;
    layer_t layers[CFG_MAX_LAYERS];
    int n_ops;
    op_t ops[CFG_MAX_LAYERS];
    int layer_op[CFG_MAX_LAYERS]; /* the op whose output is layer i's output, or -1 */
    int max_batch;
    int input_size, n_out;
    const loss_kind_t *loss;
    const act_kind_t *out_act;    /* the activation the loss applies (fused), or NULL */
    int first_trainable;          /* first op with parameters: nothing before it needs gradients */
    model_ws_t *ws;               /* the model's own workspace */
};

struct model_ws_t {
    const model_t *m;
    int cap;                                   /* samples per pass, at most */
    float *out[CFG_MAX_LAYERS];                /* op i's output [cap][out_size] */
    float *dout[CFG_MAX_LAYERS];               /* its gradient, same shape */
    unsigned char owns[CFG_MAX_LAYERS];        /* 0: out/dout are the previous op's (alias) */
    void *buf[CFG_MAX_LAYERS][LAYER_MAX_BUFS]; /* op i's scratch */
    float *probs;                              /* [cap][classes] the loss's activation */
    float *dlogits;                            /* [cap][classes] gradient of the raw output */
    model_grad_hook_fn hook;
    void *hook_ctx;
    const float *x0;                           /* the pass's model input rows, and their */
    float *dx0;                                /* gradient (NULL: not wanted): what a layer
                                                  with input_tail reads and writes */
    int view;                                  /* 1: out, dout, probs and dlogits are rows of
                                                  another workspace's (model_ws_view_at) */
};

/* The pass of op i of w over B samples from in: out = the op of in. */
void model_op_forward(model_ws_t *w, int i, const model_run_t *run, const float *params,
                      const float *in, int B);

/* Backward of op i of w after its forward over the same B samples from in:
 * grads += its parameters' gradients (from dnext, the gradient of its output,
 * which it may overwrite); din (if not NULL) = its input's gradient. */
void model_op_backward(model_ws_t *w, int i, const model_run_t *run, const float *params,
                       float *grads, const float *in, int B, float *dnext, float *din);

/* 1 when op i has parameters and its kind can apply a plain SGD step as
 * it computes their gradient (layer_kind_t.scaled_grads). */
int model_op_fusable(const model_t *m, int i);

/* model_op_backward of a fusable op with the step fused: its parameters
 * (in params) get -lr times their gradient as backward computes it, and no
 * gradient is written: the SGD update of the gradient, to float rounding. */
void model_op_backward_step(model_ws_t *w, int i, const model_run_t *run, float *params,
                            float lr, const float *in, int B, float *dnext, float *din);

/* Part `part` of n_parts of op i's pass over B samples, split among a
 * team's threads (the op's kind can_split it). Forward: its share of the
 * output. Backward, stage `stage` (0 for every part, then 1 for every
 * part): its share of grads and din, as model_op_backward's. */
void model_op_split(model_ws_t *w, int i, const model_run_t *run, const float *params,
                    float *grads, const float *in, int B, float *dnext, float *din, int backward,
                    int part, int n_parts, int stage);

/* 1 when op i's passes can be split among threads (its kind says so). */
int model_op_can_split(const model_t *m, int i);

/* The flat range [*b, *e) of op i's parameters. Returns 1, or 0 when it
 * has none. */
int model_op_params(const model_t *m, int i, size_t *b, size_t *e);

/* A workspace whose activations, gradients and loss buffers are rows of
 * another's (set by model_ws_view_at before each use), with scratch of its
 * own for passes of up to rows samples. Returns it, or NULL with err. */
model_ws_t *model_ws_new_view(const model_t *m, int rows, err_t *err);

/* Points view v at rows [row0, row0 + v->cap) of big's buffers. */
void model_ws_view_at(model_ws_t *v, const model_ws_t *big, int row0);

#endif
