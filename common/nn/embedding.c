/* embedding.c - a lookup table: integer ids [B][T] -> vectors [B][T][dim]
 * (PyTorch nn.Embedding, Keras Embedding); it feeds lstm for token
 * sequences. The table is weight [rows][dim], initialised as DLRM
 * initialises its tables, U(-sqrt(1/rows), sqrt(1/rows)).
 *
 * Ids arrive in the float input (a model's input is floats), so they are
 * exact up to 2^24 = 16,777,216: a table with more rows is refused (tables
 * that large are sparse ones, held by the parameter servers). An id that is
 * not a whole number in [0, rows) - a negative one marks a missing value or
 * padding - reads as a vector of zeros and gets no gradient; ONNX Runtime
 * computes the same (see emb_emit). */
#include <math.h>
#include <string.h>

#include "common/nn/layer.h"
#include "export/onnx_graph.h"

#define EMB_MAX_ROWS (1 << 24) /* ids exact in a float */

enum { K_ROWS, K_DIM };

static const layer_key_t KEYS[] = {
    {"rows", LKEY_INT, NULL, ">=1"},
    {"dim", LKEY_INT, NULL, ">=1"},
    {NULL},
};

enum { P_WEIGHT };

typedef struct {
    int rows; /* the table's rows */
} emb_dims_t;

_Static_assert(sizeof(emb_dims_t) <= LAYER_PLAN_BYTES, "embedding plan too large");

/* The table's rows, from L's plan. */
static int emb_rows(const layer_t *L)
{
    return ((const emb_dims_t *)L->plan.bytes)->rows;
}

/* Needs [T] ids per sample; output [T, dim]; adds the table. Returns 0 or
 * -1 with err. */
static int emb_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    char shp[64];
    const int rows = c->v[K_ROWS].i, dim = c->v[K_DIM].i;
    if (L->in.rank != 1)
        return err_set(err, "%s: needs a flat input of ids [steps], got %s", b->where,
                       shape_str(shp, sizeof shp, &L->in));
    if (rows > EMB_MAX_ROWS)
        return err_set(err, "%s: rows: %d is more than %d, the ids a float holds exactly",
                       b->where, rows, EMB_MAX_ROWS);
    ((emb_dims_t *)L->plan.bytes)->rows = rows;
    L->out = (shape_t){2, {L->in.dim[0], dim}};
    const int ws[2] = {rows, dim};
    param_spec_t *w = layer_add_param(L, b, "weight", 2, ws, INIT_UNIFORM_ROWS, err);
    if (!w)
        return -1;
    w->rows = rows;
    w->cols = dim;
    return 0;
}

/* The row of id v, or -1 when v is not a whole number in [0, rows). */
static long emb_row(float v, int rows)
{
    if (!(v >= 0.0f && v < (float)rows) || v != floorf(v))
        return -1;
    return (long)v;
}

/* out[b][t] = weight[in[b][t]] (zeros for an id outside the table). */
static void emb_forward(const layer_t *L, const layer_pass_t *x)
{
    const int T = L->in.dim[0], dim = L->out.dim[1], n_rows = emb_rows(L);
    const size_t n = (size_t)x->B * T;
    for (size_t i = 0; i < n; i++) {
        const long r = emb_row(x->in[i], n_rows);
        float *o = x->out + i * dim;
        if (r < 0)
            memset(o, 0, (size_t)dim * sizeof *o);
        else
            memcpy(o, x->p[P_WEIGHT] + (size_t)r * dim, (size_t)dim * sizeof *o);
    }
}

/* weight[in[b][t]] += dout[b][t]; ids have no gradient (din = 0). */
static void emb_backward(const layer_t *L, const layer_pass_t *x)
{
    const int T = L->in.dim[0], dim = L->out.dim[1], n_rows = emb_rows(L);
    const size_t n = (size_t)x->B * T;
    for (size_t i = 0; i < n; i++) {
        const long r = emb_row(x->in[i], n_rows);
        if (r < 0)
            continue;
        float *g = x->g[P_WEIGHT] + (size_t)r * dim;
        const float *d = x->dout + i * dim;
        for (int k = 0; k < dim; k++)
            g[k] += d[k];
    }
    if (x->din)
        memset(x->din, 0, n * sizeof *x->din);
}

/* valid = (x >= 0) and (x < rows) and (x = floor(x)); Gather(weight,
 * Cast(Where(valid, x, 0))) times Unsqueeze(Cast(valid)): zeros for the ids
 * outside the table, as the forward pass. */
static const char *emb_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x)
{
    onnx_node_t *n;
    const float zero = 0.0f, top = (float)emb_rows(L);
    const int64_t scalar[1] = {1};
    const char *z = onnx_init_floats(g, onnx_name(g, "%s.zero", base), 1, scalar, &zero);
    const char *hi = onnx_init_floats(g, onnx_name(g, "%s.rows", base), 1, scalar, &top);
    const char *ge = onnx_name(g, "%s.ge0", base), *lt = onnx_name(g, "%s.lt_rows", base);
    onnx_node(g, "GreaterOrEqual", ge, (const char *[]){x, z, NULL}, (const char *[]){ge, NULL});
    onnx_node(g, "Less", lt, (const char *[]){x, hi, NULL}, (const char *[]){lt, NULL});
    const char *fl = onnx_unary(g, "Floor", onnx_name(g, "%s.floor", base), x, NULL);
    const char *eq = onnx_name(g, "%s.whole", base), *in = onnx_name(g, "%s.in", base);
    onnx_node(g, "Equal", eq, (const char *[]){x, fl, NULL}, (const char *[]){eq, NULL});
    onnx_node(g, "And", in, (const char *[]){ge, lt, NULL}, (const char *[]){in, NULL});
    const char *ok = onnx_name(g, "%s.valid", base), *id = onnx_name(g, "%s.idf", base);
    onnx_node(g, "And", ok, (const char *[]){in, eq, NULL}, (const char *[]){ok, NULL});
    onnx_node(g, "Where", id, (const char *[]){ok, x, z, NULL}, (const char *[]){id, NULL});
    const char *idx = onnx_unary(g, "Cast", onnx_name(g, "%s.ids", base), id, &n);
    onnx_attr_int(g, n, "to", 7); /* INT64 */
    const char *W = onnx_init_param(g, L->param[P_WEIGHT]);
    const char *rows = onnx_name(g, "%s.gather", base);
    onnx_node(g, "Gather", rows, (const char *[]){W, idx, NULL}, (const char *[]){rows, NULL});
    const char *m = onnx_unary(g, "Cast", onnx_name(g, "%s.mask", base), ok, &n);
    onnx_attr_int(g, n, "to", 1); /* FLOAT */
    const char *ax = onnx_init_int64s(g, onnx_name(g, "%s.axis", base), 1, (const int64_t[]){2});
    const char *mu = onnx_name(g, "%s.mask3", base), *y = onnx_name(g, "%s.out", base);
    onnx_node(g, "Unsqueeze", mu, (const char *[]){m, ax, NULL}, (const char *[]){mu, NULL});
    onnx_node(g, "Mul", y, (const char *[]){rows, mu, NULL}, (const char *[]){y, NULL});
    return onnx_failed(g) ? NULL : y;
}

const layer_kind_t layer_embedding = {
    .name = "embedding",
    .keys = KEYS,
    .param_prefix = "embedding",
    .plan = emb_plan,
    .forward = emb_forward,
    .backward = emb_backward,
    .emit = emb_emit,
};
