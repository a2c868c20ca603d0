/* model.c - builds a network from the config through the layer kinds'
 * descriptors, and runs forward / backward over a batch in a workspace
 * (see model.h). Nothing here knows any layer kind: each layer is driven
 * through its kind's plan, buffers, forward and backward functions. */
#include "common/nn/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nn/model_int.h"
#include "common/nn/registry.h"

/* ---- building the plan ---------------------------------------------------- */

/* Plans layer li of cfg on input shape *in (then the layer's output). Returns
 * 0, or -1 with err naming the file, the layer's line and what does not fit. */
static int layer_build(model_t *m, int li, const job_config_t *cfg, shape_t *in, err_t *err)
{
    const layer_cfg_t *lc = &cfg->model.layers[li];
    layer_t *L = &m->layers[li];
    memset(L, 0, sizeof *L);
    if (!lc->kind)
        return err_set(err, "%s:%d: model.layers.[%d] has no kind", cfg->source, lc->line, li);
    layer_build_t b = {.params = &m->params, .nth = 1, .index = li, .seed = cfg->train.seed,
                       .input_size = m->input_size};
    snprintf(b.where, sizeof b.where, "%s:%d: model.layers.[%d] (%s)", cfg->source, lc->line, li,
             lc->kind->name);
    for (int k = 0; k < li; k++)
        b.nth += cfg->model.layers[k].kind == lc->kind;
    L->kind = lc->kind;
    L->index = li;
    L->in = *in;
    for (int k = 0; k < LAYER_MAX_PARAMS; k++)
        L->param[k] = -1;
    if (lc->kind->plan(L, lc, &b, err) != 0)
        return -1;
    *in = L->out;
    return 0;
}

/* A layer reading the model input's last values itself (input_tail) is the
 * only writer of their gradient, so the first layer must leave exactly
 * those to it (grad_tail), and a first layer leaving some needs such a
 * reader. Returns 0, or -1 with err "FILE:LINE: what". */
static int tails_check(const model_t *m, const job_config_t *cfg, err_t *err)
{
    const int leaves = m->layers[0].grad_tail;
    int readers = 0;
    for (int li = 1; li < m->n_layers; li++) {
        const layer_t *L = &m->layers[li];
        if (!L->input_tail)
            continue;
        char why[160];
        if (++readers > 1)
            snprintf(why, sizeof why, "another layer reads them already");
        else if (!leaves)
            snprintf(why, sizeof why, "the first layer writes their gradient (give it inputs = "
                     "P and pass_rest = false, with P + %d the input's length)", L->input_tail);
        else if (L->input_tail != leaves)
            snprintf(why, sizeof why, "the first layer leaves the last %d to it: from_input = "
                     "%d", leaves, leaves);
        else
            continue;
        return err_set(err, "%s:%d: model.layers.[%d] (%s): from_input = %d: %s", cfg->source,
                       cfg->model.layers[li].line, li, L->kind->name, L->input_tail, why);
    }
    if (leaves && !readers)
        return err_set(err, "%s:%d: model.layers.[0] (%s): pass_rest = false: the input's last "
                       "%d values go to no layer (a later layer reads them with from_input = %d)",
                       cfg->source, cfg->model.layers[0].line, m->layers[0].kind->name, leaves,
                       leaves);
    return 0;
}

/* Checks the number of outputs of the last layer against the loss: one per
 * class and at least 2, or exactly 1 for a single-output loss (the logit of
 * label 1). Returns 0, or -1 with err "FILE:LINE: what". */
static int output_count_check(const model_t *m, const job_config_t *cfg, int line, err_t *err)
{
    if (m->loss->single_output && m->n_out != 1)
        return err_set(err, "%s:%d: the last layer has %d outputs; model.loss %s needs exactly 1 "
                       "(the logit of label 1)", cfg->source, line, m->n_out, m->loss->name);
    const char *one = NULL; /* a registered loss for one output, for the message */
    for (int i = 0; !one && loss_at(i); i++)
        one = loss_at(i)->single_output ? loss_at(i)->name : NULL;
    if (!m->loss->single_output && m->n_out < 2)
        return err_set(err, "%s:%d: the last layer has %d output(s); a classifier needs at least "
                       "2 (one per class)%s%s%s", cfg->source, line, m->n_out,
                       one ? ", or model.loss = \"" : "", one ? one : "", one ? "\" for 1" : "");
    return 0;
}

/* Checks that the last layer gives a flat vector of outputs that fits the
 * loss, and lets a loss that applies the final activation itself (the
 * row-normalising one, or the binary-probability one) take it out of the
 * model. Returns 0 or -1 with err. */
static int output_plan(model_t *m, const job_config_t *cfg, err_t *err)
{
    const layer_t *last = &m->layers[m->n_layers - 1];
    const int line = cfg->model.layers[m->n_layers - 1].line;
    char shp[64];
    if (last->out.rank != 1)
        return err_set(err, "%s:%d: the last layer's output %s is not a flat class vector",
                       cfg->source, line, shape_str(shp, sizeof shp, &last->out));
    m->n_out = last->out.dim[0];
    if (!m->loss)
        return err_set(err, "%s: model.loss: no loss given", cfg->source);
    if (output_count_check(m, cfg, line, err) != 0)
        return -1;
    const char *what = NULL;
    if (m->loss->fuses_row_normalising) {
        m->out_act = act_row_normalising();
        what = "row-normalising";
    } else if (m->loss->fuses_binary_probability) {
        m->out_act = act_binary_probability();
        what = "binary-probability";
    }
    if (!what)
        return 0;
    /* The loss applies the activation itself (fused, exact gradient): a
     * final one, standalone or fused into the last layer, moves into the
     * loss. Without one the outputs are read as logits (Keras's from_logits). */
    if (!m->out_act)
        return err_set(err, "%s: model.loss %s needs a %s activation, and none is registered",
                       cfg->source, m->loss->name, what);
    if (last->kind->act == m->out_act)
        m->n_layers--;
    else if (last->act == m->out_act)
        m->layers[m->n_layers - 1].act = NULL;
    return 0;
}

/* Orders the layers into ops, letting a layer absorb the next where its
 * kind can (unless no_fusion), and finds the first op with parameters. */
static void ops_plan(model_t *m, int no_fusion)
{
    for (int i = 0; i < m->n_layers; i++) {
        layer_t *L = &m->layers[i];
        op_t *op = &m->ops[m->n_ops];
        op->layer = op->last = i;
        if (!no_fusion && L->kind->absorb && i + 1 < m->n_layers &&
            L->kind->absorb(L, &m->layers[i + 1])) {
            L->absorbed = 1;
            op->last = i + 1;
        }
        op->in_size = shape_size(&L->in);
        op->out_size = shape_size(&m->layers[op->last].out);
        op->alias = L->kind->alias && m->n_ops > 0;
        m->layer_op[i] = -1;
        m->layer_op[op->last] = m->n_ops;
        i = op->last;
        m->n_ops++;
    }
    m->first_trainable = m->n_ops;
    for (int i = m->n_ops - 1; i >= 0; i--)
        if (m->layers[m->ops[i].layer].param[0] >= 0)
            m->first_trainable = i;
}

/* The shape of a sample of the model's input: model.input, and with
 * model.sparse the vectors of its fields after the input's values (a flat
 * input then). Returns 0, or -1 with err. */
static int input_shape(const job_config_t *cfg, shape_t *shape, err_t *err)
{
    *shape = (shape_t){.rank = cfg->model.input_rank};
    for (int i = 0; i < shape->rank && i < 3; i++)
        shape->dim[i] = cfg->model.input[i];
    const int F = cfg->model.sparse.fields;
    if (F == 0)
        return 0;
    if (shape->rank != 1)
        return err_set(err, "%s: model.input: a model with model.sparse takes a flat input "
                       "(its dense features), not %d dimensions", cfg->source, shape->rank);
    if (cfg->model.sparse.n_rows != F && cfg->model.sparse.n_rows != 1)
        return err_set(err, "%s: model.sparse.rows: %d table sizes for %d fields (give one "
                       "per field, or one for all)", cfg->source, cfg->model.sparse.n_rows, F);
    shape->dim[0] += F * cfg->model.sparse.dim;
    return 0;
}

model_t *model_new_opts(const job_config_t *cfg, int max_batch, const model_opts_t *opts,
                        err_t *err)
{
    if (max_batch < 1) {
        err_set(err, "model: batch size %d < 1", max_batch);
        return NULL;
    }
    if (cfg->model.n_layers < 1 || cfg->model.n_layers > CFG_MAX_LAYERS) {
        err_set(err, "%s: model.layers holds %d layers, not 1 to %d", cfg->source,
                cfg->model.n_layers, CFG_MAX_LAYERS);
        return NULL;
    }
    model_t *m = calloc(1, sizeof *m);
    if (!m) {
        err_set(err, "model: out of memory");
        return NULL;
    }
    m->max_batch = max_batch;
    m->loss = cfg->model.loss;
    shape_t shape;
    if (input_shape(cfg, &shape, err) != 0)
        goto err;
    m->input_size = shape_size(&shape);
    for (int li = 0; li < cfg->model.n_layers; li++)
        if (layer_build(m, li, cfg, &shape, err) != 0)
            goto err;
    m->n_layers = cfg->model.n_layers;
    if (tails_check(m, cfg, err) != 0 || output_plan(m, cfg, err) != 0)
        goto err;
    ops_plan(m, opts && opts->no_fusion);
    if (!(m->ws = model_ws_new(m, max_batch, err)))
        goto err;
    return m;
err:
    model_destroy(&m);
    return NULL;
}

model_t *model_new(const job_config_t *cfg, int max_batch, err_t *err)
{
    return model_new_opts(cfg, max_batch, NULL, err);
}

void model_destroy(model_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    model_ws_destroy(&(*self_p)->ws);
    free(*self_p);
    *self_p = NULL;
}

const param_table_t *model_params(const model_t *m) { return &m->params; }
size_t model_n_params(const model_t *m) { return m->params.n_params; }
int model_input_size(const model_t *m) { return m->input_size; }
int model_output_size(const model_t *m) { return m->n_out; }
int model_n_classes(const model_t *m) { return loss_n_classes(m->loss, m->n_out); }
int model_max_batch(const model_t *m) { return m->max_batch; }
int model_n_layers(const model_t *m) { return m->n_layers; }
const layer_t *model_layer(const model_t *m, int i) { return &m->layers[i]; }
const loss_kind_t *model_loss(const model_t *m) { return m->loss; }
const act_kind_t *model_output_act(const model_t *m) { return m->out_act; }

/* ---- workspaces ---------------------------------------------------------- */

/* calloc of n floats (at least one): touches the pages once, here. */
static float *alloc_floats(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}

/* Allocates op i's scratch, and (unless w is a view) its output and
 * gradient, for w->cap samples. Returns 0, or -1 when out of memory. */
static int ws_alloc_op(model_ws_t *w, int i)
{
    const model_t *m = w->m;
    const op_t *op = &m->ops[i];
    const layer_t *L = &m->layers[op->layer];
    if (op->alias) {
        w->out[i] = w->out[i - 1];
        w->dout[i] = w->dout[i - 1];
    } else if (!w->view) {
        w->owns[i] = 1;
        w->out[i] = alloc_floats((size_t)w->cap * op->out_size);
        w->dout[i] = alloc_floats((size_t)w->cap * op->out_size);
        if (!w->out[i] || !w->dout[i])
            return -1;
    }
    size_t sizes[LAYER_MAX_BUFS];
    int n = L->kind->buffers ? L->kind->buffers(L, w->cap, sizes) : 0;
    for (int k = 0; k < n; k++)
        if (!(w->buf[i][k] = calloc(sizes[k] ? sizes[k] : 1, 1)))
            return -1;
    return 0;
}

/* A workspace for passes of up to max_batch samples; a view's activations
 * are another's. Returns it, or NULL with err. */
static model_ws_t *ws_new(const model_t *m, int max_batch, int view, err_t *err)
{
    model_ws_t *w = calloc(1, sizeof *w);
    if (!w) {
        err_set(err, "model: out of memory");
        return NULL;
    }
    w->m = m;
    w->cap = max_batch;
    w->view = view;
    for (int i = 0; i < m->n_ops; i++)
        if (ws_alloc_op(w, i) != 0)
            goto err;
    if (!view) {
        w->probs = alloc_floats((size_t)max_batch * m->n_out);
        w->dlogits = alloc_floats((size_t)max_batch * m->n_out);
        if (!w->probs || !w->dlogits)
            goto err;
    }
    return w;
err:
    err_set(err, "model: out of memory for the buffers of batch %d", max_batch);
    model_ws_destroy(&w);
    return NULL;
}

model_ws_t *model_ws_new(const model_t *m, int max_batch, err_t *err)
{
    return ws_new(m, max_batch, 0, err);
}

model_ws_t *model_ws_new_view(const model_t *m, int rows, err_t *err)
{
    return ws_new(m, rows, 1, err);
}

void model_ws_view_at(model_ws_t *v, const model_ws_t *big, int row0)
{
    const model_t *m = v->m;
    for (int i = 0; i < m->n_ops; i++) {
        const size_t off = (size_t)row0 * m->ops[i].out_size;
        v->out[i] = big->out[i] + off;
        v->dout[i] = big->dout[i] + off;
    }
    v->probs = big->probs + (size_t)row0 * m->n_out;
    v->dlogits = big->dlogits + (size_t)row0 * m->n_out;
}

void model_ws_destroy(model_ws_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    model_ws_t *w = *self_p;
    for (int i = 0; i < CFG_MAX_LAYERS; i++) {
        if (w->owns[i]) {
            free(w->out[i]);
            free(w->dout[i]);
        }
        for (int k = 0; k < LAYER_MAX_BUFS; k++)
            free(w->buf[i][k]);
    }
    if (!w->view) {
        free(w->probs);
        free(w->dlogits);
    }
    free(w);
    *self_p = NULL;
}

model_ws_t *model_ws(model_t *m) { return m->ws; }

void model_ws_set_grad_hook(model_ws_t *w, model_grad_hook_fn fn, void *ctx)
{
    w->hook = fn;
    w->hook_ctx = ctx;
}

int model_op_params(const model_t *m, int i, size_t *b, size_t *e)
{
    const layer_t *L = &m->layers[m->ops[i].layer];
    if (L->param[0] < 0)
        return 0;
    int last = L->param[0];
    for (int k = 1; k < LAYER_MAX_PARAMS; k++)
        if (L->param[k] > last)
            last = L->param[k];
    *b = m->params.t[L->param[0]].offset;
    *e = m->params.t[last].offset + m->params.t[last].size;
    return 1;
}

/* Tells the hook that the parameter gradients of op i's layer are final. */
static void grads_done(const model_ws_t *w, int i)
{
    size_t b, e;
    if (w->hook && model_op_params(w->m, i, &b, &e))
        w->hook(w->hook_ctx, b, e);
}

void model_ws_emit_grad_ranges(model_ws_t *w)
{
    for (int i = w->m->n_ops - 1; i >= w->m->first_trainable && i >= 0; i--)
        grads_done(w, i);
}

/* The pass of op i over B samples: its buffers and parameter tensors (and
 * their gradients when grads is not NULL). */
static layer_pass_t pass_of(const model_ws_t *w, int i, const model_run_t *run,
                            const float *params, float *grads, const float *in, int B)
{
    const layer_t *L = &w->m->layers[w->m->ops[i].layer];
    layer_pass_t x = {.B = B, .cap = w->cap, .run = run, .in = in, .out = w->out[i],
                      .buf = w->buf[i], .x0 = w->x0, .dx0 = w->dx0,
                      .x0_size = w->m->input_size, .g_scale = 1.0f};
    for (int k = 0; k < LAYER_MAX_PARAMS; k++)
        if (L->param[k] >= 0) {
            const size_t off = w->m->params.t[L->param[k]].offset;
            x.p[k] = params + off;
            x.g[k] = grads ? grads + off : NULL;
        }
    return x;
}

void model_op_forward(model_ws_t *w, int i, const model_run_t *run, const float *params,
                      const float *in, int B)
{
    const op_t *op = &w->m->ops[i];
    const layer_t *L = &w->m->layers[op->layer];
    if (L->kind->alias) {
        if (!op->alias) /* the input itself: a copy keeps ownership simple */
            memcpy(w->out[i], in, (size_t)B * op->in_size * sizeof(float));
        return;
    }
    const layer_pass_t p = pass_of(w, i, run, params, NULL, in, B);
    L->kind->forward(L, &p);
}

const float *model_ws_forward(model_ws_t *w, const model_run_t *run, const float *params,
                              const float *x, int B)
{
    const float *in = x;
    w->x0 = x;
    for (int i = 0; i < w->m->n_ops; i++) {
        model_op_forward(w, i, run, params, in, B);
        in = w->out[i];
    }
    return in;
}

/* Backward of op i, its parameters' gradients added times g_scale into
 * grads (see model_op_backward and model_op_backward_step). */
static void op_backward(model_ws_t *w, int i, const model_run_t *run, const float *params,
                        float *grads, float g_scale, const float *in, int B, float *dnext,
                        float *din)
{
    const op_t *op = &w->m->ops[i];
    const layer_t *L = &w->m->layers[op->layer];
    if (L->kind->alias) {
        /* shares its buffers with the previous op; copy only if the
         * gradient arrived elsewhere (the loss's buffer, or dx) */
        if (din && dnext != din)
            memcpy(din, dnext, (size_t)B * op->out_size * sizeof(float));
        return;
    }
    layer_pass_t p = pass_of(w, i, run, params, grads, in, B);
    p.g_scale = g_scale;
    p.dout = dnext;
    p.din = din;
    L->kind->backward(L, &p);
}

void model_op_backward(model_ws_t *w, int i, const model_run_t *run, const float *params,
                       float *grads, const float *in, int B, float *dnext, float *din)
{
    op_backward(w, i, run, params, grads, 1.0f, in, B, dnext, din);
}

int model_op_fusable(const model_t *m, int i)
{
    const op_t *op = &m->ops[i];
    const layer_t *L = &m->layers[op->layer];
    return op->last == op->layer && L->param[0] >= 0 && L->kind->scaled_grads;
}

void model_op_backward_step(model_ws_t *w, int i, const model_run_t *run, float *params,
                            float lr, const float *in, int B, float *dnext, float *din)
{
    op_backward(w, i, run, params, params, -lr, in, B, dnext, din);
}

int model_op_can_split(const model_t *m, int i)
{
    const op_t *op = &m->ops[i];
    const layer_t *L = &m->layers[op->layer];
    return op->last == op->layer && L->kind->can_split && L->kind->can_split(L);
}

void model_op_split(model_ws_t *w, int i, const model_run_t *run, const float *params,
                    float *grads, const float *in, int B, float *dnext, float *din, int backward,
                    int part, int n_parts, int stage)
{
    const layer_t *L = &w->m->layers[w->m->ops[i].layer];
    layer_pass_t p = pass_of(w, i, run, params, backward ? grads : NULL, in, B);
    p.part = part;
    p.n_parts = n_parts;
    p.stage = stage;
    if (!backward) {
        L->kind->split_forward(L, &p);
        return;
    }
    p.dout = dnext;
    p.din = din;
    L->kind->split_backward(L, &p);
}

/* Backward from dtop, the gradient of the last op's output (overwritten):
 * grads += ; dx (if not NULL) = the input's gradient. Ops before the first
 * with parameters are skipped unless dx is asked for. */
static void backward(model_ws_t *w, const model_run_t *run, const float *params, float *grads,
                     const float *x, int B, float *dtop, float *dx)
{
    const model_t *m = w->m;
    float *dnext = dtop; /* gradient of the current op's output */
    w->x0 = x;
    w->dx0 = dx;
    for (int i = m->n_ops - 1; i >= 0; i--) {
        float *din = i == 0 ? dx : (dx || i > m->first_trainable) ? w->dout[i - 1] : NULL;
        model_op_backward(w, i, run, params, grads, i ? w->out[i - 1] : x, B, dnext, din);
        grads_done(w, i);
        if (!din)
            break; /* nothing below this op has parameters */
        dnext = din;
    }
}

double model_ws_loss(model_ws_t *w, const float *out, const int32_t *y, int B, float scale,
                     float *dout, int *correct)
{
    const model_t *m = w->m;
    return m->loss->eval(m->out_act, w->probs, dout, out, y, B, m->n_out, scale, correct);
}

void model_ws_backward(model_ws_t *w, const model_run_t *run, const float *params, float *grads,
                       const float *x, int B, const float *dout, float *dx)
{
    memcpy(w->dlogits, dout, (size_t)B * w->m->n_out * sizeof(float));
    backward(w, run, params, grads, x, B, w->dlogits, dx);
}

const float *model_ws_layer_output(const model_ws_t *w, int i)
{
    if (i < 0 || i >= w->m->n_layers || w->m->layer_op[i] < 0)
        return NULL;
    return w->out[w->m->layer_op[i]];
}

double model_ws_train_step(model_ws_t *w, const model_run_t *run, const float *params,
                           float *grads, const float *x, const int32_t *y, int B, float scale,
                           int *correct)
{
    const float *out = model_ws_forward(w, run, params, x, B);
    double total = model_ws_loss(w, out, y, B, scale, w->dlogits, correct);
    backward(w, run, params, grads, x, B, w->dlogits, NULL);
    return total;
}

double model_ws_eval_batch(model_ws_t *w, const float *params, const float *x, const int32_t *y,
                           int B, int *correct)
{
    const float *out = model_ws_forward(w, NULL, params, x, B);
    return model_ws_loss(w, out, y, B, 1.0f, NULL, correct);
}

const float *model_ws_predict(model_ws_t *w, const float *params, const float *x, int B)
{
    const float *out = model_ws_forward(w, NULL, params, x, B);
    const act_kind_t *act = w->m->out_act;
    if (!act)
        return out;
    act->forward(w->probs, out, (size_t)B * w->m->n_out, w->m->n_out);
    return w->probs;
}

/* ---- the model's own workspace -------------------------------------------- */

void model_set_grad_hook(model_t *m, model_grad_hook_fn fn, void *ctx)
{
    model_ws_set_grad_hook(m->ws, fn, ctx);
}

void model_emit_grad_ranges(model_t *m)
{
    model_ws_emit_grad_ranges(m->ws);
}

double model_train_step(model_t *m, const model_run_t *run, const float *params, float *grads,
                        const float *x, const int32_t *y, int B, float scale, int *correct)
{
    return model_ws_train_step(m->ws, run, params, grads, x, y, B, scale, correct);
}

double model_eval_batch(model_t *m, const float *params, const float *x, const int32_t *y, int B,
                        int *correct)
{
    return model_ws_eval_batch(m->ws, params, x, y, B, correct);
}

const float *model_predict(model_t *m, const float *params, const float *x, int B)
{
    return model_ws_predict(m->ws, params, x, B);
}
