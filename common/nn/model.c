/* model.c - builds a network from the config and runs forward / backward
 * over a batch through the layer functions (see model.h). */
#include "common/nn/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nn/loss.h"

typedef struct {
    model_layer_t L;
    int in_size, out_size;   /* floats per sample */
    float *out;              /* [max_batch][out_size]; flatten aliases its input */
    float *dout;             /* gradient of out, same shape */
    float *col, *tmp;        /* conv scratch */
    int32_t *argmax;         /* maxpool */
    lstm_buf_t lb;           /* lstm */
    float *lstm_mem;         /* one allocation behind lb */
    int owns_out;
    /* conv2d followed by a tiling maxpool2d runs as one fused kernel
     * (conv2d_pool_*): the conv op computes the pool op's output and the
     * pool op is skipped. */
    int fuse_pool;           /* conv op: computes the next op's output */
    int fused_away;          /* pool op: done by the previous op */
    convpool_dims_t cp;
    float *pn;               /* fused scratch: pooled channels-last */
    uint8_t *code;           /* fused: window position of each pooled value */
} op_t;

struct model_t {
    param_table_t params;
    int n_ops;
    op_t ops[CFG_MAX_LAYERS];
    int max_batch;
    int input_size, n_classes;
    loss_kind_t loss;
    int softmax_output;
    int first_trainable;     /* first op with parameters: nothing before it needs gradients */
    model_grad_hook_fn hook;
    void *hook_ctx;
    float *probs;            /* [max_batch][classes] */
    float *dlogits;          /* [max_batch][classes] for the loss gradient */
};

static float *alloc_floats(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p); /* calloc touches the pages once, here */
    return p;
}

static int shape_size(int rank, const int *shape)
{
    int n = 1;
    for (int i = 0; i < rank; i++)
        n *= shape[i];
    return n;
}

static void shape_str(char *buf, size_t len, int rank, const int *shape)
{
    int k = snprintf(buf, len, "[");
    for (int i = 0; i < rank && k < (int)len; i++)
        k += snprintf(buf + k, len - k, i ? ",%d" : "%d", shape[i]);
    if (k < (int)len)
        snprintf(buf + k, len - k, "]");
}

/* Works out the output shape and parameters of layer lc on an input of
 * in_rank/in_shape, filling op->L. Returns 0 or -1 with err. */
static int op_plan(model_t *m, op_t *op, const layer_cfg_t *lc, int li, const job_config_t *cfg,
                   int *counters, err_t *err)
{
    model_layer_t *L = &op->L;
    char where[CFG_PATH_LEN + 64], shp[64];
    snprintf(where, sizeof where, "%s:%d: model.layers.[%d] (%s)", cfg->source, lc->line, li,
             config_layer_name(lc->type));
    shape_str(shp, sizeof shp, L->in_rank, L->in_shape);
    L->type = lc->type;
    L->act = lc->activation;
    L->param[0] = L->param[1] = L->param[2] = -1;
    char name[PARAM_NAME_LEN];
    switch (lc->type) {
    case LAYER_CONV2D: {
        if (L->in_rank != 3)
            return err_set(err, "%s: needs an image input [C,H,W], got %s", where, shp);
        conv_dims_t *d = &L->conv;
        d->C = L->in_shape[0];
        d->H = L->in_shape[1];
        d->W = L->in_shape[2];
        d->F = lc->filters;
        d->K = lc->kernel;
        d->stride = lc->stride;
        d->pad = lc->padding;
        if (conv_dims_fill(d) != 0)
            return err_set(err, "%s: kernel %d with padding %d does not fit input %s", where,
                           d->K, d->pad, shp);
        L->out_rank = 3;
        L->out_shape[0] = d->F;
        L->out_shape[1] = d->OH;
        L->out_shape[2] = d->OW;
        int k = ++counters[LAYER_CONV2D];
        int ws[4] = {d->F, d->C, d->K, d->K}, bs[1] = {d->F};
        snprintf(name, sizeof name, "conv%d.weight", k);
        param_spec_t *w = params_add(&m->params, name, 4, ws, INIT_GLOROT_UNIFORM, err);
        if (!w)
            return -1;
        w->fan_in = d->C * d->K * d->K;
        w->fan_out = d->F * d->K * d->K;
        L->param[0] = m->params.n - 1;
        snprintf(name, sizeof name, "conv%d.bias", k);
        if (!params_add(&m->params, name, 1, bs, INIT_ZEROS, err))
            return -1;
        L->param[1] = m->params.n - 1;
        break;
    }
    case LAYER_MAXPOOL2D: {
        if (L->in_rank != 3)
            return err_set(err, "%s: needs an image input [C,H,W], got %s", where, shp);
        pool_dims_t *d = &L->pool;
        d->C = L->in_shape[0];
        d->H = L->in_shape[1];
        d->W = L->in_shape[2];
        d->pool = lc->pool;
        d->stride = lc->pool_stride > 0 ? lc->pool_stride : lc->pool;
        if (pool_dims_fill(d) != 0)
            return err_set(err, "%s: pool %d does not fit input %s", where, d->pool, shp);
        L->out_rank = 3;
        L->out_shape[0] = d->C;
        L->out_shape[1] = d->OH;
        L->out_shape[2] = d->OW;
        break;
    }
    case LAYER_FLATTEN:
        L->out_rank = 1;
        L->out_shape[0] = shape_size(L->in_rank, L->in_shape);
        break;
    case LAYER_DENSE: {
        if (L->in_rank != 1)
            return err_set(err, "%s: needs a flat input, got %s (add a flatten layer)", where, shp);
        int In = L->in_shape[0], O = lc->units;
        L->out_rank = 1;
        L->out_shape[0] = O;
        int k = ++counters[LAYER_DENSE];
        int ws[2] = {O, In}, bs[1] = {O};
        snprintf(name, sizeof name, "dense%d.weight", k);
        param_spec_t *w = params_add(&m->params, name, 2, ws, INIT_GLOROT_UNIFORM, err);
        if (!w)
            return -1;
        w->fan_in = In;
        w->fan_out = O;
        L->param[0] = m->params.n - 1;
        snprintf(name, sizeof name, "dense%d.bias", k);
        if (!params_add(&m->params, name, 1, bs, INIT_ZEROS, err))
            return -1;
        L->param[1] = m->params.n - 1;
        break;
    }
    case LAYER_LSTM: {
        if (L->in_rank != 2)
            return err_set(err, "%s: needs a sequence input [T,F], got %s", where, shp);
        lstm_dims_t *d = &L->lstm;
        d->T = L->in_shape[0];
        d->In = L->in_shape[1];
        d->H = lc->units;
        d->return_sequences = lc->return_sequences;
        if (d->return_sequences) {
            L->out_rank = 2;
            L->out_shape[0] = d->T;
            L->out_shape[1] = d->H;
        } else {
            L->out_rank = 1;
            L->out_shape[0] = d->H;
        }
        int k = ++counters[LAYER_LSTM];
        int wi[2] = {4 * d->H, d->In}, wh[2] = {4 * d->H, d->H}, bs[1] = {4 * d->H};
        snprintf(name, sizeof name, "lstm%d.w_ih", k);
        param_spec_t *p = params_add(&m->params, name, 2, wi, INIT_GLOROT_UNIFORM, err);
        if (!p)
            return -1;
        p->fan_in = d->In;
        p->fan_out = 4 * d->H;
        L->param[0] = m->params.n - 1;
        snprintf(name, sizeof name, "lstm%d.w_hh", k);
        if (!(p = params_add(&m->params, name, 2, wh, INIT_ORTHOGONAL, err)))
            return -1;
        p->rows = 4 * d->H;
        p->cols = d->H;
        L->param[1] = m->params.n - 1;
        snprintf(name, sizeof name, "lstm%d.bias", k);
        if (!(p = params_add(&m->params, name, 1, bs, INIT_LSTM_BIAS, err)))
            return -1;
        p->units = d->H;
        L->param[2] = m->params.n - 1;
        break;
    }
    case LAYER_RELU:
    case LAYER_SIGMOID:
    case LAYER_TANH:
    case LAYER_SOFTMAX:
        L->act = lc->type == LAYER_RELU      ? ACT_RELU
                 : lc->type == LAYER_SIGMOID ? ACT_SIGMOID
                 : lc->type == LAYER_TANH    ? ACT_TANH
                                             : ACT_SOFTMAX;
        L->out_rank = L->in_rank;
        memcpy(L->out_shape, L->in_shape, sizeof L->out_shape);
        break;
    }
    op->in_size = shape_size(L->in_rank, L->in_shape);
    op->out_size = shape_size(L->out_rank, L->out_shape);
    return 0;
}

/* Allocates the buffers of op for batches of up to B. Returns 0 or -1. */
static int op_alloc(op_t *op, const op_t *prev, int B)
{
    model_layer_t *L = &op->L;
    if (op->fuse_pool) { /* writes the next op's out; needs only its scratch */
        op->cp.c.B = B;
        op->col = alloc_floats(conv_col_size(&op->cp.c));
        op->tmp = alloc_floats(convpool_tmp_size(&op->cp));
        op->pn = alloc_floats(convpool_pooled_size(&op->cp));
        op->code = calloc(convpool_pooled_size(&op->cp), 1);
        return (op->col && op->tmp && op->pn && op->code) ? 0 : -1;
    }
    if (L->type == LAYER_FLATTEN && prev) {
        op->out = prev->out;
        op->dout = prev->dout;
        return 0;
    }
    op->owns_out = 1;
    op->out = alloc_floats((size_t)B * op->out_size);
    op->dout = alloc_floats((size_t)B * op->out_size);
    if (!op->out || !op->dout)
        return -1;
    if (L->type == LAYER_CONV2D) {
        conv_dims_t d = L->conv;
        d.B = B;
        op->col = alloc_floats(conv_col_size(&d));
        op->tmp = alloc_floats(conv_tmp_size(&d));
        if (!op->col || !op->tmp)
            return -1;
    } else if (L->type == LAYER_MAXPOOL2D && !op->fused_away) {
        op->argmax = calloc((size_t)B * op->out_size, sizeof *op->argmax);
        if (!op->argmax)
            return -1;
    } else if (L->type == LAYER_LSTM) {
        lstm_dims_t d = L->lstm;
        d.B = B;
        op->lstm_mem = alloc_floats(lstm_buf_bind(&op->lb, NULL, &d));
        if (!op->lstm_mem)
            return -1;
        lstm_buf_bind(&op->lb, op->lstm_mem, &d);
    }
    return 0;
}

model_t *model_new(const job_config_t *cfg, int max_batch, err_t *err)
{
    if (max_batch < 1) {
        err_set(err, "model: batch size %d < 1", max_batch);
        return NULL;
    }
    if (cfg->model.n_layers < 1) {
        err_set(err, "%s: model.layers is empty", cfg->source);
        return NULL;
    }
    model_t *m = calloc(1, sizeof *m);
    if (!m) {
        err_set(err, "model: out of memory");
        return NULL;
    }
    m->max_batch = max_batch;
    m->loss = cfg->model.loss;
    int counters[16] = {0};
    int rank = cfg->model.input_rank, shape[3] = {0, 0, 0};
    for (int i = 0; i < rank; i++)
        shape[i] = cfg->model.input[i];
    m->input_size = shape_size(rank, shape);

    for (int li = 0; li < cfg->model.n_layers; li++) {
        op_t *op = &m->ops[m->n_ops];
        op->L.in_rank = rank;
        memcpy(op->L.in_shape, shape, sizeof shape);
        if (op_plan(m, op, &cfg->model.layers[li], li, cfg, counters, err) != 0)
            goto err;
        rank = op->L.out_rank;
        memcpy(shape, op->L.out_shape, sizeof shape);
        m->n_ops++;
    }
    op_t *last = &m->ops[m->n_ops - 1];
    if (last->L.out_rank != 1) {
        char shp[64];
        shape_str(shp, sizeof shp, last->L.out_rank, last->L.out_shape);
        err_set(err, "%s:%d: the last layer's output %s is not a flat class vector", cfg->source,
                cfg->model.layers[cfg->model.n_layers - 1].line, shp);
        goto err;
    }
    m->n_classes = last->L.out_shape[0];
    if (m->n_classes < 2) {
        err_set(err, "%s:%d: the last layer has %d output(s); a classifier needs at least 2",
                cfg->source, cfg->model.layers[cfg->model.n_layers - 1].line, m->n_classes);
        goto err;
    }
    /* Cross-entropy applies the softmax itself (fused, exact gradient): a
     * final softmax, standalone or fused into a dense layer, moves into the loss.
     * Without one the outputs are read as logits (Keras's from_logits). */
    if (m->loss == LOSS_CROSS_ENTROPY) {
        m->softmax_output = 1;
        if (last->L.type == LAYER_SOFTMAX && m->n_ops > 1)
            m->n_ops--;
        else if (last->L.act == ACT_SOFTMAX)
            last->L.act = ACT_NONE;
    } else {
        m->softmax_output = 0;
    }
    for (int i = 0; i + 1 < m->n_ops; i++) {
        op_t *a = &m->ops[i], *b = &m->ops[i + 1];
        if (a->L.type == LAYER_CONV2D && b->L.type == LAYER_MAXPOOL2D &&
            b->L.pool.stride == b->L.pool.pool && b->L.pool.pool <= 15 &&
            a->L.act != ACT_SOFTMAX) {
            a->fuse_pool = 1;
            b->fused_away = 1;
            a->cp.c = a->L.conv;
            a->cp.pool = b->L.pool.pool;
            if (convpool_dims_fill(&a->cp) != 0 || a->cp.PH != b->L.pool.OH ||
                a->cp.PW != b->L.pool.OW) {
                err_set(err, "model: internal error fusing conv2d and maxpool2d");
                goto err;
            }
        }
    }
    m->first_trainable = m->n_ops;
    for (int i = m->n_ops - 1; i >= 0; i--)
        if (m->ops[i].L.param[0] >= 0)
            m->first_trainable = i;
    for (int i = 0; i < m->n_ops; i++)
        if (op_alloc(&m->ops[i], i ? &m->ops[i - 1] : NULL, max_batch) != 0) {
            err_set(err, "model: out of memory for the buffers of batch %d", max_batch);
            goto err;
        }
    m->probs = alloc_floats((size_t)max_batch * m->n_classes);
    m->dlogits = alloc_floats((size_t)max_batch * m->n_classes);
    if (!m->probs || !m->dlogits) {
        err_set(err, "model: out of memory");
        goto err;
    }
    return m;
err:
    model_destroy(&m);
    return NULL;
}

void model_destroy(model_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    model_t *m = *self_p;
    for (int i = 0; i < CFG_MAX_LAYERS; i++) {
        op_t *op = &m->ops[i];
        if (op->owns_out) {
            free(op->out);
            free(op->dout);
        }
        free(op->col);
        free(op->tmp);
        free(op->argmax);
        free(op->lstm_mem);
        free(op->pn);
        free(op->code);
    }
    free(m->probs);
    free(m->dlogits);
    free(m);
    *self_p = NULL;
}

const param_table_t *model_params(const model_t *m) { return &m->params; }
size_t model_n_params(const model_t *m) { return m->params.n_params; }
int model_input_size(const model_t *m) { return m->input_size; }
int model_output_size(const model_t *m) { return m->n_classes; }
int model_max_batch(const model_t *m) { return m->max_batch; }
int model_n_layers(const model_t *m) { return m->n_ops; }
const model_layer_t *model_layer(const model_t *m, int i) { return &m->ops[i].L; }
int model_softmax_output(const model_t *m) { return m->softmax_output; }

void model_set_grad_hook(model_t *m, model_grad_hook_fn fn, void *ctx)
{
    m->hook = fn;
    m->hook_ctx = ctx;
}

/* Tells the hook that op's parameter gradients are final. */
static void grads_done(model_t *m, const op_t *op)
{
    if (!m->hook || op->L.param[0] < 0)
        return;
    int last = op->L.param[0];
    for (int k = 1; k < 3; k++)
        if (op->L.param[k] > last)
            last = op->L.param[k];
    const param_spec_t *a = &m->params.t[op->L.param[0]], *b = &m->params.t[last];
    m->hook(m->hook_ctx, a->offset, b->offset + b->size);
}

void model_emit_grad_ranges(model_t *m)
{
    for (int i = m->n_ops - 1; i >= m->first_trainable && i >= 0; i--)
        if (!m->ops[i].fused_away)
            grads_done(m, &m->ops[i]);
}

static const float *P(const model_t *m, const float *params, int idx)
{
    return params + m->params.t[idx].offset;
}

static float *G(const model_t *m, float *grads, int idx)
{
    return grads + m->params.t[idx].offset;
}

/* Runs every layer forward; returns the last layer's output. */
static const float *forward(model_t *m, const float *params, const float *x, int B)
{
    const float *in = x;
    for (int i = 0; i < m->n_ops; i++) {
        op_t *op = &m->ops[i];
        model_layer_t *L = &op->L;
        if (op->fuse_pool) {
            op->cp.c.B = B;
            conv2d_pool_forward(m->ops[i + 1].out, op->code, op->col, op->tmp, op->pn, in,
                                P(m, params, L->param[0]), P(m, params, L->param[1]), &op->cp,
                                L->act);
            in = m->ops[++i].out;
            continue;
        }
        switch (L->type) {
        case LAYER_CONV2D:
            L->conv.B = B;
            conv2d_forward(op->out, op->col, op->tmp, in, P(m, params, L->param[0]),
                           P(m, params, L->param[1]), &L->conv, L->act);
            break;
        case LAYER_MAXPOOL2D:
            L->pool.B = B;
            maxpool2d_forward(op->out, op->argmax, in, &L->pool);
            break;
        case LAYER_FLATTEN:
            if (i == 0) /* flatten of the input itself: a copy keeps ownership simple */
                memcpy(op->out, in, (size_t)B * op->in_size * sizeof(float));
            break;
        case LAYER_DENSE:
            dense_forward(op->out, in, P(m, params, L->param[0]), P(m, params, L->param[1]), B,
                          L->in_shape[0], L->out_shape[0], L->act);
            break;
        case LAYER_LSTM:
            L->lstm.B = B;
            lstm_forward(op->out, &op->lb, in, P(m, params, L->param[0]),
                         P(m, params, L->param[1]), P(m, params, L->param[2]), &L->lstm);
            break;
        case LAYER_RELU:
        case LAYER_SIGMOID:
        case LAYER_TANH:
        case LAYER_SOFTMAX:
            act_forward(op->out, in, (size_t)B * op->out_size, op->out_size, L->act);
            break;
        }
        in = op->out;
    }
    return in;
}

/* Loss of the output against y; writes dlogits scaled when want_grad. */
static double loss(model_t *m, const float *out, const int32_t *y, int B, float scale,
                   int want_grad, int *correct)
{
    if (m->loss == LOSS_CROSS_ENTROPY)
        return loss_xent_forward_backward(m->probs, want_grad ? m->dlogits : NULL, out, y, B,
                                          m->n_classes, scale, correct);
    return loss_mse_forward_backward(want_grad ? m->dlogits : NULL, out, y, B, m->n_classes, scale,
                                     correct);
}

double model_train_step(model_t *m, const float *params, float *grads, const float *x,
                        const int32_t *y, int B, float scale, int *correct)
{
    const float *out = forward(m, params, x, B);
    double total = loss(m, out, y, B, scale, 1, correct);
    float *dnext = m->dlogits; /* gradient of the current op's output */
    for (int i = m->n_ops - 1; i >= 0; i--) {
        op_t *op = &m->ops[i];
        model_layer_t *L = &op->L;
        const float *in = i ? m->ops[i - 1].out : x;
        /* The input gradient lands in the previous op's dout; the first
         * trainable op needs none (skip work nobody needs). */
        float *din = i > m->first_trainable ? m->ops[i - 1].dout : NULL;
        if (op->fused_away)
            continue; /* the conv op before it does the work, from dnext */
        if (op->fuse_pool) {
            op->cp.c.B = B;
            conv2d_pool_backward(din, G(m, grads, L->param[0]), G(m, grads, L->param[1]), dnext,
                                 m->ops[i + 1].out, op->code, op->col, op->tmp, op->pn,
                                 P(m, params, L->param[0]), &op->cp, L->act);
            grads_done(m, op);
            if (!din)
                break;
            dnext = din;
            continue;
        }
        switch (L->type) {
        case LAYER_CONV2D:
            conv2d_backward(din, G(m, grads, L->param[0]), G(m, grads, L->param[1]), dnext, op->tmp,
                            op->col, op->out, P(m, params, L->param[0]), &L->conv, L->act);
            break;
        case LAYER_MAXPOOL2D:
            if (din)
                maxpool2d_backward(din, dnext, op->argmax, &L->pool);
            break;
        case LAYER_FLATTEN:
            /* shares its buffers with the previous op; copy only if the
             * gradient arrived elsewhere (the loss's buffer) */
            if (din && dnext != din)
                memcpy(din, dnext, (size_t)B * op->out_size * sizeof(float));
            break;
        case LAYER_DENSE:
            dense_backward(din, G(m, grads, L->param[0]), G(m, grads, L->param[1]), dnext, op->out,
                           in, P(m, params, L->param[0]), B, L->in_shape[0], L->out_shape[0],
                           L->act);
            break;
        case LAYER_LSTM:
            lstm_backward(din, G(m, grads, L->param[0]), G(m, grads, L->param[1]),
                          G(m, grads, L->param[2]), dnext, &op->lb, P(m, params, L->param[0]),
                          P(m, params, L->param[1]), &L->lstm);
            break;
        case LAYER_RELU:
        case LAYER_SIGMOID:
        case LAYER_TANH:
        case LAYER_SOFTMAX:
            if (din)
                act_backward(din, dnext, op->out, (size_t)B * op->out_size, op->out_size, L->act);
            break;
        }
        grads_done(m, op);
        if (!din)
            break; /* nothing below this op has parameters */
        dnext = din;
    }
    return total;
}

double model_eval_batch(model_t *m, const float *params, const float *x, const int32_t *y, int B,
                        int *correct)
{
    const float *out = forward(m, params, x, B);
    return loss(m, out, y, B, 1.0f, 0, correct);
}

const float *model_predict(model_t *m, const float *params, const float *x, int B)
{
    const float *out = forward(m, params, x, B);
    if (!m->softmax_output)
        return out;
    act_forward(m->probs, out, (size_t)B * m->n_classes, m->n_classes, ACT_SOFTMAX);
    return m->probs;
}
