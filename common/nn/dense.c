/* dense.c - the fully connected layer: out [B][O] = act(in [B][In] w^T + b),
 * weight [O][In] (PyTorch's layout), bias [O], Keras's initialisers
 * (glorot uniform weight, zero bias).
 *
 * With `inputs = P` (0 < P < the input's length) the layer reads only the
 * first P inputs of a sample and passes the others through after its
 * output: [x_P | rest] -> [act(x_P w^T + b) | rest]. A chain of such layers
 * is a branch of the model over part of its input, in a sequential model:
 * DLRM's bottom MLP over the dense features, while the field vectors ride
 * along to the interaction. With `pass_rest = false` as well (the first
 * layer only) the rest is not passed on, [x_P | rest] -> act(x_P w^T + b),
 * and the layer leaves the rest's gradient to the later layer that reads it
 * straight from the model's input (interaction's from_input): the field
 * vectors then skip the copies through every layer of the branch, forward
 * and backward. */
#include <cblas.h>
#include <string.h>

#include "common/nn/layer.h"
#include "common/util/pool.h"
#include "export/onnx_graph.h"

enum { K_UNITS, K_ACT, K_INPUTS, K_PASS_REST };

static const layer_key_t KEYS[] = {
    {"units", LKEY_INT, NULL, ">=1"},
    {"activation", LKEY_ACT, "none", NULL},
    {"inputs", LKEY_INT, "0", ">=0"},
    {"pass_rest", LKEY_BOOL, "true", NULL},
    {NULL},
};

enum { P_WEIGHT, P_BIAS };

typedef struct {
    int P;    /* inputs the layer reads (the first P of a sample) */
    int rest; /* inputs passed through after its output (0: none) */
} dense_dims_t;

_Static_assert(sizeof(dense_dims_t) <= LAYER_PLAN_BYTES, "dense plan too large");

static const dense_dims_t *dims_of(const layer_t *L)
{
    return (const dense_dims_t *)L->plan.bytes;
}

/* Needs a flat input; output [units]; adds weight and bias. Returns 0 or -1
 * with err. */
static int dense_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    char shp[64];
    if (L->in.rank != 1)
        return err_set(err, "%s: needs a flat input, got %s (add a flatten layer)", b->where,
                       shape_str(shp, sizeof shp, &L->in));
    const int n = L->in.dim[0], O = c->v[K_UNITS].i, P = c->v[K_INPUTS].i;
    if (P >= n)
        return err_set(err, "%s: inputs: %d is not less than the input's length %d (leave it "
                       "out to read them all)", b->where, P, n);
    dense_dims_t *d = (dense_dims_t *)L->plan.bytes;
    d->P = P ? P : n;
    d->rest = n - d->P;
    if (!c->v[K_PASS_REST].i && d->rest) { /* the rest goes to a later layer itself */
        if (b->index != 0 || n != b->input_size)
            return err_set(err, "%s: pass_rest: only the first layer, which reads the model's "
                           "input, can leave the rest to a later layer", b->where);
        L->grad_tail = d->rest;
        d->rest = 0;
    }
    L->out.rank = 1;
    L->out.dim[0] = O + d->rest;
    L->act = c->v[K_ACT].act;
    if (d->rest && L->act && L->act->row_normalising)
        return err_set(err, "%s: activation: %s normalises a whole row, which a layer with "
                       "inputs = %d does not own", b->where, c->v[K_ACT].act->name, P);
    const int ws[2] = {O, d->P}, bs[1] = {O};
    param_spec_t *w = layer_add_param(L, b, "weight", 2, ws, INIT_GLOROT_UNIFORM, err);
    if (!w)
        return -1;
    w->fan_in = d->P;
    w->fan_out = O;
    return layer_add_param(L, b, "bias", 1, bs, INIT_ZEROS, err) ? 0 : -1;
}

/* out[:, :O] = act(in[:, :P] w^T + b), one GEMM onto rows that hold b
 * (beta = 1: no pass of its own to zero them, none to add b after);
 * out[:, O:] = in[:, P:]. */
static void dense_forward(const layer_t *L, const layer_pass_t *x)
{
    const dense_dims_t *d = dims_of(L);
    const int B = x->B, In = L->in.dim[0], N = L->out.dim[0], O = N - d->rest;
    const float *b = x->p[P_BIAS];
    float *out = x->out;
    for (int r = 0; r < B; r++) {
        float *row = out + (size_t)r * N;
        memcpy(row, b, (size_t)O * sizeof *row);
        if (d->rest)
            memcpy(row + O, x->in + (size_t)r * In + d->P, (size_t)d->rest * sizeof *row);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, O, d->P, 1.0f, x->in, In,
                x->p[P_WEIGHT], d->P, 1.0f, out, N);
    if (L->act && !d->rest)
        L->act->forward(out, out, (size_t)B * O, O);
    else if (L->act) /* elementwise: each row's first O values */
        for (int r = 0; r < B; r++)
            L->act->forward(out + (size_t)r * N, out + (size_t)r * N, (size_t)O, O);
}

/* dout[:, :O] becomes the pre-activation gradient; din[:, :P] = dout w,
 * din[:, P:] = dout[:, O:] (left as it is with pass_rest = false:
 * L->grad_tail); then, w no longer read, dw += s dout^T in[:, :P] and
 * db += s column sums (s = g_scale: dw and db may be w and b). */
static void dense_backward(const layer_t *L, const layer_pass_t *x)
{
    const dense_dims_t *d = dims_of(L);
    const int B = x->B, In = L->in.dim[0], N = L->out.dim[0], O = N - d->rest;
    const float s = x->g_scale;
    float *dout = x->dout, *db = x->g[P_BIAS];
    for (int r = 0; r < B; r++) {
        float *row = dout + (size_t)r * N;
        if (L->act)
            L->act->backward(row, row, x->out + (size_t)r * N, (size_t)O, O);
        /* db and row never overlap: no run-time check needed to vectorise */
#pragma omp simd
        for (int j = 0; j < O; j++)
            db[j] += s * row[j];
    }
    if (x->din) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, d->P, O, 1.0f, dout, N,
                    x->p[P_WEIGHT], d->P, 0.0f, x->din, In);
        for (int r = 0; d->rest && r < B; r++)
            memcpy(x->din + (size_t)r * In + d->P, dout + (size_t)r * N + O,
                   (size_t)d->rest * sizeof *dout);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, d->P, B, s, dout, N, x->in, In,
                1.0f, x->g[P_WEIGHT], d->P);
}

/* ---- one pass split among a team's threads (large layers) -------------- */

/* [*a, *b): part `part` of n columns cut into n_parts. */
static void cols_of(int n, int part, int n_parts, int *a, int *b)
{
    size_t sa, sb;
    pool_share((size_t)n, part, n_parts, &sa, &sb);
    *a = (int)sa;
    *b = (int)sb;
}

/* Splits by output columns unless the activation normalises whole rows
 * (and when it reads its whole input). */
static int dense_can_split(const layer_t *L)
{
    return dims_of(L)->P == L->in.dim[0] && (!L->act || !L->act->row_normalising);
}

/* out[:, o0:o1) = act(in w[o0:o1)^T + b[o0:o1)), the GEMM onto b as in
 * dense_forward. */
static void dense_split_forward(const layer_t *L, const layer_pass_t *x)
{
    const int B = x->B, In = L->in.dim[0], O = L->out.dim[0];
    int o0, o1;
    cols_of(O, x->part, x->n_parts, &o0, &o1);
    const int n = o1 - o0;
    if (n <= 0)
        return;
    const float *b = x->p[P_BIAS] + o0;
    for (int r = 0; r < B; r++)
        memcpy(x->out + (size_t)r * O + o0, b, (size_t)n * sizeof *b);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, n, In, 1.0f, x->in, In,
                x->p[P_WEIGHT] + (size_t)o0 * In, In, 1.0f, x->out + o0, O);
    if (L->act) /* elementwise (dense_can_split): a part of a row is a row of its own */
        for (int r = 0; r < B; r++) {
            float *row = x->out + (size_t)r * O + o0;
            L->act->forward(row, row, (size_t)n, n);
        }
}

/* Stage 0: columns [o0, o1) of the pre-activation gradient, of dw's rows
 * and of db. Stage 1 (every column of the gradient done): columns [i0, i1)
 * of din. */
static void dense_split_backward(const layer_t *L, const layer_pass_t *x)
{
    const int B = x->B, In = L->in.dim[0], O = L->out.dim[0];
    int o0, o1, i0, i1;
    cols_of(O, x->part, x->n_parts, &o0, &o1);
    cols_of(In, x->part, x->n_parts, &i0, &i1);
    if (x->stage == 1) {
        if (x->din && i1 > i0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, i1 - i0, O, 1.0f, x->dout,
                        O, x->p[P_WEIGHT] + i0, In, 0.0f, x->din + i0, In);
        return;
    }
    const int n = o1 - o0;
    float *db = x->g[P_BIAS];
    for (int r = 0; n > 0 && r < B; r++) {
        float *d = x->dout + (size_t)r * O + o0;
        if (L->act)
            L->act->backward(d, d, x->out + (size_t)r * O + o0, (size_t)n, n);
#pragma omp simd
        for (int j = 0; j < n; j++)
            db[o0 + j] += d[j];
    }
    if (n > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, In, B, 1.0f, x->dout + o0, O,
                    x->in, In, 1.0f, x->g[P_WEIGHT] + (size_t)o0 * In, In);
}

/* Gemm with transB = 1 (our weight is [O][In]), then the activation; with
 * inputs = P, on Slice(x, 0, P), then Concat with Slice(x, P, end). */
static const char *dense_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x)
{
    const dense_dims_t *d = dims_of(L);
    const char *in = x, *rest = NULL;
    if (d->P < L->in.dim[0]) {
        const int64_t a[1] = {1}, z[1] = {0}, p[1] = {d->P}, e[1] = {L->in.dim[0]};
        const char *ax = onnx_init_int64s(g, onnx_name(g, "%s.axis", base), 1, a);
        const char *i0 = onnx_init_int64s(g, onnx_name(g, "%s.i0", base), 1, z);
        const char *ip = onnx_init_int64s(g, onnx_name(g, "%s.ip", base), 1, p);
        const char *ie = onnx_init_int64s(g, onnx_name(g, "%s.ie", base), 1, e);
        in = onnx_name(g, "%s.read", base);
        rest = onnx_name(g, "%s.rest", base);
        onnx_node(g, "Slice", in, (const char *[]){x, i0, ip, ax, NULL}, (const char *[]){in, NULL});
        if (d->rest)
            onnx_node(g, "Slice", rest, (const char *[]){x, ip, ie, ax, NULL},
                      (const char *[]){rest, NULL});
        else
            rest = NULL; /* left to the layer that reads it from the model's input */
    }
    const char *w = onnx_init_param(g, L->param[P_WEIGHT]);
    const char *bias = onnx_init_param(g, L->param[P_BIAS]);
    const char *y = onnx_name(g, "%s.gemm", base);
    onnx_node_t *n = onnx_node(g, "Gemm", y, (const char *[]){in, w, bias, NULL},
                               (const char *[]){y, NULL});
    onnx_attr_int(g, n, "transB", 1);
    if (onnx_failed(g))
        return NULL;
    const shape_t own = {1, {L->out.dim[0] - d->rest}};
    if (L->act)
        y = L->act->emit(g, base, y, &own);
    if (!y || !rest)
        return y;
    const char *cat = onnx_name(g, "%s.concat", base);
    n = onnx_node(g, "Concat", cat, (const char *[]){y, rest, NULL}, (const char *[]){cat, NULL});
    onnx_attr_int(g, n, "axis", 1);
    return onnx_failed(g) ? NULL : cat;
}

const layer_kind_t layer_dense = {
    .name = "dense",
    .keys = KEYS,
    .param_prefix = "dense",
    .scaled_grads = 1,
    .plan = dense_plan,
    .forward = dense_forward,
    .backward = dense_backward,
    .emit = dense_emit,
    .can_split = dense_can_split,
    .split_forward = dense_split_forward,
    .split_backward = dense_split_backward,
};
