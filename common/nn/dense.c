/* dense.c - the fully connected layer: out [B][O] = act(in [B][In] w^T + b),
 * weight [O][In] (PyTorch's layout), bias [O], Keras's initialisers
 * (glorot uniform weight, zero bias). */
#include <cblas.h>

#include "common/nn/layer.h"
#include "export/onnx_graph.h"

enum { K_UNITS, K_ACT };

static const layer_key_t KEYS[] = {
    {"units", LKEY_INT, NULL, ">=1"},
    {"activation", LKEY_ACT, "none", NULL},
    {NULL},
};

enum { P_WEIGHT, P_BIAS };

/* Needs a flat input; output [units]; adds weight and bias. Returns 0 or -1
 * with err. */
static int dense_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    char shp[64];
    if (L->in.rank != 1)
        return err_set(err, "%s: needs a flat input, got %s (add a flatten layer)", b->where,
                       shape_str(shp, sizeof shp, &L->in));
    const int In = L->in.dim[0], O = c->v[K_UNITS].i;
    L->out.rank = 1;
    L->out.dim[0] = O;
    L->act = c->v[K_ACT].act;
    const int ws[2] = {O, In}, bs[1] = {O};
    param_spec_t *w = layer_add_param(L, b, "weight", 2, ws, INIT_GLOROT_UNIFORM, err);
    if (!w)
        return -1;
    w->fan_in = In;
    w->fan_out = O;
    return layer_add_param(L, b, "bias", 1, bs, INIT_ZEROS, err) ? 0 : -1;
}

/* out = act(in w^T + b): one GEMM, the bias, then the activation. */
static void dense_forward(const layer_t *L, const layer_pass_t *x)
{
    const int B = x->B, In = L->in.dim[0], O = L->out.dim[0];
    const float *b = x->p[P_BIAS];
    float *out = x->out;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, O, In, 1.0f, x->in, In,
                x->p[P_WEIGHT], In, 0.0f, out, O);
    for (int r = 0; r < B; r++) {
        float *row = out + (size_t)r * O;
        for (int j = 0; j < O; j++)
            row[j] += b[j];
    }
    if (L->act)
        L->act->forward(out, out, (size_t)B * O, O);
}

/* dout becomes the pre-activation gradient; dw += dout^T in, db += column
 * sums of dout, din = dout w. */
static void dense_backward(const layer_t *L, const layer_pass_t *x)
{
    const int B = x->B, In = L->in.dim[0], O = L->out.dim[0];
    float *dout = x->dout, *db = x->g[P_BIAS];
    if (L->act)
        L->act->backward(dout, dout, x->out, (size_t)B * O, O);
    for (int r = 0; r < B; r++) {
        const float *row = dout + (size_t)r * O;
        for (int j = 0; j < O; j++)
            db[j] += row[j];
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, In, B, 1.0f, dout, O, x->in, In, 1.0f,
                x->g[P_WEIGHT], In);
    if (x->din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, In, O, 1.0f, dout, O,
                    x->p[P_WEIGHT], In, 0.0f, x->din, In);
}

/* ---- one pass split among a team's threads (large layers) -------------- */

/* [*a, *b): part `part` of n columns cut into n_parts. */
static void cols_of(int n, int part, int n_parts, int *a, int *b)
{
    *a = (int)((long)n * part / n_parts);
    *b = (int)((long)n * (part + 1) / n_parts);
}

/* Splits by output columns unless the activation normalises whole rows. */
static int dense_can_split(const layer_t *L)
{
    return !L->act || !L->act->row_normalising;
}

/* out[:, o0:o1) = act(in w[o0:o1)^T + b[o0:o1)). */
static void dense_split_forward(const layer_t *L, const layer_pass_t *x)
{
    const int B = x->B, In = L->in.dim[0], O = L->out.dim[0];
    int o0, o1;
    cols_of(O, x->part, x->n_parts, &o0, &o1);
    const int n = o1 - o0;
    if (n <= 0)
        return;
    const float *b = x->p[P_BIAS] + o0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, n, In, 1.0f, x->in, In,
                x->p[P_WEIGHT] + (size_t)o0 * In, In, 0.0f, x->out + o0, O);
    for (int r = 0; r < B; r++) {
        float *row = x->out + (size_t)r * O + o0;
        for (int j = 0; j < n; j++)
            row[j] += b[j];
        if (L->act) /* elementwise (dense_can_split): a part of a row is a row of its own */
            L->act->forward(row, row, (size_t)n, n);
    }
}

/* Columns [o0, o1) of the pre-activation gradient, of dw's rows and of db;
 * then, once every part has its columns, columns [i0, i1) of din. */
static void dense_split_backward(const layer_t *L, const layer_pass_t *x)
{
    const int B = x->B, In = L->in.dim[0], O = L->out.dim[0];
    int o0, o1, i0, i1;
    cols_of(O, x->part, x->n_parts, &o0, &o1);
    cols_of(In, x->part, x->n_parts, &i0, &i1);
    const int n = o1 - o0;
    float *db = x->g[P_BIAS];
    for (int r = 0; n > 0 && r < B; r++) {
        float *d = x->dout + (size_t)r * O + o0;
        if (L->act)
            L->act->backward(d, d, x->out + (size_t)r * O + o0, (size_t)n, n);
        for (int j = 0; j < n; j++)
            db[o0 + j] += d[j];
    }
    if (n > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, In, B, 1.0f, x->dout + o0, O,
                    x->in, In, 1.0f, x->g[P_WEIGHT] + (size_t)o0 * In, In);
    if (!x->din)
        return;
    x->meet(x->meet_ctx); /* din needs every column of the gradient */
    if (i1 > i0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, i1 - i0, O, 1.0f, x->dout, O,
                    x->p[P_WEIGHT] + i0, In, 0.0f, x->din + i0, In);
}

/* Gemm with transB = 1 (our weight is [O][In]), then the activation. */
static const char *dense_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x)
{
    const char *w = onnx_init_param(g, L->param[P_WEIGHT]);
    const char *bias = onnx_init_param(g, L->param[P_BIAS]);
    const char *y = onnx_name(g, "%s.gemm", base);
    onnx_node_t *n = onnx_node(g, "Gemm", y, (const char *[]){x, w, bias, NULL},
                               (const char *[]){y, NULL});
    onnx_attr_int(g, n, "transB", 1);
    if (onnx_failed(g))
        return NULL;
    return L->act ? L->act->emit(g, base, y, &L->out) : y;
}

const layer_kind_t layer_dense = {
    .name = "dense",
    .keys = KEYS,
    .param_prefix = "dense",
    .plan = dense_plan,
    .forward = dense_forward,
    .backward = dense_backward,
    .emit = dense_emit,
    .can_split = dense_can_split,
    .split_forward = dense_split_forward,
    .split_backward = dense_split_backward,
};
