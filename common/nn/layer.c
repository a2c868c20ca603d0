/* layer.c - helpers every layer kind may use (see layer.h): shapes,
 * parameter naming, config values, and the functions of activation layers. */
#include "common/nn/layer.h"

#include <stdio.h>
#include <string.h>

#include "export/onnx_graph.h"

int shape_size(const shape_t *s)
{
    int n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->dim[i];
    return n;
}

const char *shape_str(char *buf, size_t len, const shape_t *s)
{
    int k = snprintf(buf, len, "[");
    for (int i = 0; i < s->rank && k < (int)len; i++)
        k += snprintf(buf + k, len - k, i ? ",%d" : "%d", s->dim[i]);
    if (k < (int)len)
        snprintf(buf + k, len - k, "]");
    return buf;
}

param_spec_t *layer_add_param(layer_t *L, layer_build_t *b, const char *name, int ndim,
                              const int *shape, init_kind_t init, err_t *err)
{
    int slot = 0;
    while (slot < LAYER_MAX_PARAMS && L->param[slot] >= 0)
        slot++;
    if (slot == LAYER_MAX_PARAMS) {
        err_set(err, "%s: more than %d parameter tensors", b->where, LAYER_MAX_PARAMS);
        return NULL;
    }
    char full[PARAM_NAME_LEN];
    snprintf(full, sizeof full, "%s%d.%s", L->kind->param_prefix, b->nth, name);
    param_spec_t *p = params_add(b->params, full, ndim, shape, init, err);
    if (p)
        L->param[slot] = b->params->n - 1;
    return p;
}

const layer_val_t *layer_cfg_get(const layer_cfg_t *c, const char *name)
{
    const layer_key_t *k = c->kind ? c->kind->keys : NULL;
    for (int i = 0; k && k[i].name && i < CFG_LAYER_KEYS; i++)
        if (strcmp(k[i].name, name) == 0)
            return &c->v[i];
    return NULL;
}

/* Output shape = input shape. Returns 0. */
int act_layer_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    (void)c;
    (void)b;
    (void)err;
    L->out = L->in;
    return 0;
}

/* out = act(in), each sample's whole output one row. */
void act_layer_forward(const layer_t *L, const layer_pass_t *x)
{
    const int n = shape_size(&L->out);
    L->kind->act->forward(x->out, x->in, (size_t)x->B * n, n);
}

/* din = dout * act'(in), from the forward's output. */
void act_layer_backward(const layer_t *L, const layer_pass_t *x)
{
    const int n = shape_size(&L->out);
    if (x->din)
        L->kind->act->backward(x->din, x->dout, x->out, (size_t)x->B * n, n);
}

/* The activation's nodes on x. */
const char *act_layer_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x)
{
    return L->kind->act->emit(g, base, x, &L->out);
}

int pool_window_plan(layer_t *L, const layer_cfg_t *c, int k, const layer_build_t *b,
                     pool_window_t *w, err_t *err)
{
    char shp[64];
    shape_str(shp, sizeof shp, &L->in);
    if (L->in.rank != 3)
        return err_set(err, "%s: needs an image input [C,H,W], got %s", b->where, shp);
    w->C = L->in.dim[0];
    w->H = L->in.dim[1];
    w->W = L->in.dim[2];
    w->pool = c->v[k].i;
    w->stride = c->v[k + 1].i > 0 ? c->v[k + 1].i : w->pool;
    if (w->pool < 1 || w->stride < 1 || w->H < w->pool || w->W < w->pool)
        return err_set(err, "%s: pool %d does not fit input %s", b->where, w->pool, shp);
    w->OH = (w->H - w->pool) / w->stride + 1;
    w->OW = (w->W - w->pool) / w->stride + 1;
    L->out = (shape_t){3, {w->C, w->OH, w->OW}};
    return 0;
}
