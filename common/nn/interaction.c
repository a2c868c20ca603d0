/* interaction.c - DLRM's dot feature interaction (Naumov et al. 2019,
 * dlrm_s_pytorch.py interact_features, arch_interaction_op = "dot"): the
 * input of a sample is V vectors of d floats one after the other, the
 * bottom MLP's output first, then one per categorical field; the output is
 * that first vector followed by the dot products of every pair of vectors
 * (i, j), j < i, in DLRM's order (i = 1..V-1, j = 0..i-1), or j <= i with
 * `self = true` (arch_interaction_itself):
 *
 *     in [B][V*d] -> out [B][d + P],  P = V(V-1)/2 (V(V+1)/2 with self)
 *
 * DLRM's other interaction, "concat", is the concatenated input itself: a
 * model with it has no interaction layer (its top MLP reads the vectors). */
#include <string.h>

#include "common/nn/layer.h"
#include "export/onnx_graph.h"

enum { K_VECTORS, K_SELF };

static const layer_key_t KEYS[] = {
    {"vectors", LKEY_INT, NULL, ">=2"},
    {"self", LKEY_BOOL, "false", NULL},
    {NULL},
};

typedef struct {
    int V, d;  /* vectors of a sample and their length */
    int self;  /* pairs (i, i) too */
    int P;     /* dot products of a sample */
} inter_dims_t;

_Static_assert(sizeof(inter_dims_t) <= LAYER_PLAN_BYTES, "interaction plan too large");

/* Needs a flat input of `vectors` equal parts; output [d + P]. Returns 0
 * or -1 with err. */
static int inter_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    char shp[64];
    const int V = c->v[K_VECTORS].i;
    if (L->in.rank != 1 || L->in.dim[0] % V != 0)
        return err_set(err, "%s: needs a flat input of %d vectors of equal length, got %s",
                       b->where, V, shape_str(shp, sizeof shp, &L->in));
    inter_dims_t *d = (inter_dims_t *)L->plan.bytes;
    d->V = V;
    d->d = L->in.dim[0] / V;
    d->self = c->v[K_SELF].i;
    d->P = d->self ? V * (V + 1) / 2 : V * (V - 1) / 2;
    L->out = (shape_t){1, {d->d + d->P}};
    return 0;
}

/* Dot product of two vectors of n floats (in SIMD lanes: the order of the
 * sum is the vector unit's, not k's). */
static float dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < n; k++)
        s += a[k] * b[k];
    return s;
}

/* out = [x_0, (x_i . x_j) for i, j < i (or <= i)] per sample. */
static void inter_forward(const layer_t *L, const layer_pass_t *x)
{
    const inter_dims_t *d = (const inter_dims_t *)L->plan.bytes;
    const int in = L->in.dim[0], on = L->out.dim[0];
    for (int r = 0; r < x->B; r++) {
        const float *v = x->in + (size_t)r * in;
        float *o = x->out + (size_t)r * on;
        memcpy(o, v, (size_t)d->d * sizeof(float));
        float *z = o + d->d;
        for (int i = 1 - d->self; i < d->V; i++)
            for (int j = 0; j < i + d->self; j++)
                *z++ = dot(v + (size_t)i * d->d, v + (size_t)j * d->d, d->d);
    }
}

/* din_0 = dout's first d; for each pair's gradient g: din_i += g x_j,
 * din_j += g x_i. No parameters. */
static void inter_backward(const layer_t *L, const layer_pass_t *x)
{
    if (!x->din)
        return;
    const inter_dims_t *d = (const inter_dims_t *)L->plan.bytes;
    const int in = L->in.dim[0], on = L->out.dim[0], n = d->d;
    for (int r = 0; r < x->B; r++) {
        const float *v = x->in + (size_t)r * in;
        const float *g = x->dout + (size_t)r * on;
        float *dv = x->din + (size_t)r * in;
        memcpy(dv, g, (size_t)n * sizeof(float));
        memset(dv + n, 0, (size_t)(in - n) * sizeof(float));
        const float *gz = g + n;
        for (int i = 1 - d->self; i < d->V; i++)
            for (int j = 0; j < i + d->self; j++) {
                const float gij = *gz++;
                float *di = dv + (size_t)i * n, *dj = dv + (size_t)j * n;
                const float *vi = v + (size_t)i * n, *vj = v + (size_t)j * n;
#pragma omp simd /* di and dj are distinct vectors (j < i, or j == i adding twice) */
                for (int k = 0; k < n; k++) {
                    di[k] += gij * vj[k];
                    dj[k] += gij * vi[k];
                }
            }
    }
}

/* Reshape [N,V,d]; MatMul with its transpose [N,V,V]; Reshape [N,V*V];
 * Gather (axis 1) of the pairs' flat indices; Concat with the first d
 * inputs (Slice). */
static const char *inter_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x)
{
    const inter_dims_t *d = (const inter_dims_t *)L->plan.bytes;
    onnx_node_t *n;
    const int64_t s3[3] = {0, d->V, d->d}, s2[2] = {0, (int64_t)d->V * d->V};
    const char *sh3 = onnx_init_int64s(g, onnx_name(g, "%s.shape3", base), 3, s3);
    const char *sh2 = onnx_init_int64s(g, onnx_name(g, "%s.shape2", base), 2, s2);
    const char *t = onnx_name(g, "%s.vectors", base);
    onnx_node(g, "Reshape", t, (const char *[]){x, sh3, NULL}, (const char *[]){t, NULL});
    const int64_t perm[3] = {0, 2, 1};
    const char *tt = onnx_unary(g, "Transpose", onnx_name(g, "%s.vectors_t", base), t, &n);
    onnx_attr_ints(g, n, "perm", 3, perm);
    const char *z = onnx_name(g, "%s.z", base), *zf = onnx_name(g, "%s.z_flat", base);
    onnx_node(g, "MatMul", z, (const char *[]){t, tt, NULL}, (const char *[]){z, NULL});
    onnx_node(g, "Reshape", zf, (const char *[]){z, sh2, NULL}, (const char *[]){zf, NULL});
    int64_t *pairs = onnx_alloc(g, (size_t)d->P * sizeof *pairs);
    if (!pairs)
        return NULL;
    int k = 0;
    for (int i = 1 - d->self; i < d->V; i++)
        for (int j = 0; j < i + d->self; j++)
            pairs[k++] = (int64_t)i * d->V + j;
    const char *idx = onnx_init_int64s(g, onnx_name(g, "%s.pairs", base), d->P, pairs);
    const char *zp = onnx_name(g, "%s.dots", base);
    n = onnx_node(g, "Gather", zp, (const char *[]){zf, idx, NULL}, (const char *[]){zp, NULL});
    onnx_attr_int(g, n, "axis", 1);
    const int64_t st[1] = {0}, en[1] = {d->d}, ax[1] = {1};
    const char *sv[] = {x, onnx_init_int64s(g, onnx_name(g, "%s.s0", base), 1, st),
                        onnx_init_int64s(g, onnx_name(g, "%s.s1", base), 1, en),
                        onnx_init_int64s(g, onnx_name(g, "%s.sa", base), 1, ax), NULL};
    const char *first = onnx_name(g, "%s.first", base), *y = onnx_name(g, "%s.out", base);
    onnx_node(g, "Slice", first, sv, (const char *[]){first, NULL});
    n = onnx_node(g, "Concat", y, (const char *[]){first, zp, NULL}, (const char *[]){y, NULL});
    onnx_attr_int(g, n, "axis", 1);
    return onnx_failed(g) ? NULL : y;
}

const layer_kind_t layer_interaction = {
    .name = "interaction",
    .keys = KEYS,
    .plan = inter_plan,
    .forward = inter_forward,
    .backward = inter_backward,
    .emit = inter_emit,
};
