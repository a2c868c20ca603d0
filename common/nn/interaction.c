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
 * With `from_input = K` the vectors are the layer's input followed by the
 * model input's last K values (DLRM's field vectors, read where the model
 * takes them in rather than carried through the bottom MLP: the first layer
 * leaves them, dense's pass_rest = false); the layer then also writes their
 * gradient into the model input's.
 *
 * DLRM's other interaction, "concat", is the concatenated input itself: a
 * model with it has no interaction layer (its top MLP reads the vectors). */
#include <string.h>

#include "common/nn/layer.h"
#include "export/onnx_graph.h"

enum { K_VECTORS, K_SELF, K_FROM_INPUT };

static const layer_key_t KEYS[] = {
    {"vectors", LKEY_INT, NULL, ">=2"},
    {"self", LKEY_BOOL, "false", NULL},
    {"from_input", LKEY_INT, "0", ">=0"},
    {NULL},
};

typedef struct {
    int V, d;  /* vectors of a sample and their length */
    int self;  /* pairs (i, i) too */
    int P;     /* dot products of a sample */
    int n_in;  /* of the V * d values, those of the layer's input (the rest: from_input) */
    int x0_at; /* where the model input's values it reads start */
} inter_dims_t;

_Static_assert(sizeof(inter_dims_t) <= LAYER_PLAN_BYTES, "interaction plan too large");

/* Needs a flat input that, with the model input's last from_input values,
 * is `vectors` equal parts; output [d + P]. Returns 0 or -1 with err. */
static int inter_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    char shp[64];
    const int V = c->v[K_VECTORS].i, K = c->v[K_FROM_INPUT].i;
    if (K && (K > b->input_size || b->index == 0))
        return err_set(err, "%s: from_input: %d values of the model's input of %d, for a layer "
                       "after the first", b->where, K, b->input_size);
    const int n = L->in.rank == 1 ? L->in.dim[0] + K : 0;
    if (L->in.rank != 1 || n % V != 0 || L->in.dim[0] % (n / V) != 0)
        return err_set(err, "%s: needs a flat input of %d vectors of equal length%s, got %s",
                       b->where, V, K ? " with the model input's values it reads" : "",
                       shape_str(shp, sizeof shp, &L->in));
    inter_dims_t *d = (inter_dims_t *)L->plan.bytes;
    d->V = V;
    d->d = n / V;
    d->n_in = L->in.dim[0];
    d->x0_at = b->input_size - K;
    L->input_tail = K;
    d->self = c->v[K_SELF].i;
    d->P = d->self ? V * (V + 1) / 2 : V * (V - 1) / 2;
    L->out = (shape_t){1, {d->d + d->P}};
    return 0;
}

/* Samples computed side by side, one per SIMD lane: a pair's dot product
 * is then d multiply-adds across the lanes, with no sum across a vector's
 * own lanes, and a vector's gradient builds up in registers rather than in
 * memory that every pair reads and writes. A block's vectors and pair
 * values (V*d and P floats a lane) stay in the first-level cache. The lanes
 * are a GCC vector (also clang's) of the widest registers the build's
 * target has, 16 floats with AVX-512, 8 with AVX and 4 else (SSE, NEON): a
 * vector wider than the registers is split, and GCC 12 then moves each
 * float of a tile transpose's shuffles through the stack (on AVX2, a
 * 16-lane build spent 12% of DLRM's 1-thread step in this layer, 7 times
 * the 8-lane build's share). `#pragma omp simd` on the lanes loop left the
 * sums over k and j in memory. Each lane is one sample and every sum runs
 * in the same order at any width: the results do not depend on it. */
#if defined(__AVX512F__)
#define INTER_LANES 16
#elif defined(__AVX__)
#define INTER_LANES 8
#else /* 128-bit registers: SSE, Arm's NEON */
#define INTER_LANES 4
#endif
#define INTER_UNROLL 4 /* independent sums in flight (multiply-add latency) */
/* The loops over the INTER_UNROLL sums are unrolled by pragma: GCC 12
 * at -O2 left them rolled, which kept the sums in memory (a store and a
 * reload per multiply-add, 43-48% of the layer's time on that store). */
#define INTER_UNROLL_LOOP _Pragma("GCC unroll 4")
_Static_assert(INTER_UNROLL == 4, "INTER_UNROLL_LOOP unrolls 4");
typedef float lanes_t __attribute__((vector_size(INTER_LANES * sizeof(float)), aligned(4)));

/* scratch, in lanes_t: a block's vectors (V*d), its pair values (P), the
 * vectors' gradients (V*d) and one vector's pair weights (V) */
enum { B_VECS, B_PAIRS, B_GRADS, B_WEIGHTS };

static int inter_buffers(const layer_t *L, int B, size_t sizes[LAYER_MAX_BUFS])
{
    (void)B;
    const inter_dims_t *d = (const inter_dims_t *)L->plan.bytes;
    sizes[B_VECS] = (size_t)d->V * (size_t)d->d * sizeof(lanes_t);
    sizes[B_PAIRS] = (size_t)d->P * sizeof(lanes_t);
    sizes[B_GRADS] = sizes[B_VECS];
    sizes[B_WEIGHTS] = (size_t)d->V * sizeof(lanes_t);
    return 4;
}

/* The index of pair (i, j), j < i (j <= i with self), in DLRM's order. */
static inline int pair_index(const inter_dims_t *d, int i, int j)
{
    return d->self ? i * (i + 1) / 2 + j : i * (i - 1) / 2 + j;
}

/* A tile of INTER_LANES x INTER_LANES floats, a lanes_t a row, is
 * transposed in registers in log2(INTER_LANES) rounds: round h swaps the
 * off-diagonal h x h blocks of every 2h x 2h block (it exchanges bit h of
 * the row with bit h of the column), two shuffles of two rows each. Moving
 * a block's samples in and out this way rather than one float at a time
 * took DLRM's interaction (27 vectors of 16, batch 128, the layer's forward
 * and backward alone, best of 5, AVX-512) from 1.26 to 0.88 us a sample. */
typedef int32_t lane_index_t __attribute__((vector_size(INTER_LANES * sizeof(int32_t))));
#define TILE_ROUNDS (INTER_LANES == 16 ? 4 : INTER_LANES == 8 ? 3 : 2)

/* Round k's shuffles (h = INTER_LANES / 2 >> k): the new row a (bit h
 * clear) takes column c of row a, or where bit h of c is set column c - h
 * of row a + h (index INTER_LANES + c - h); the new row a + h takes column
 * c + h of row a, or where bit h of c is set column c of row a + h
 * (INTER_LANES + c). */
#if INTER_LANES == 16
static const lane_index_t TILE_LO[TILE_ROUNDS] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
    {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
    {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
    {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
};
static const lane_index_t TILE_HI[TILE_ROUNDS] = {
    {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
    {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},
    {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},
    {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31},
};
#elif INTER_LANES == 8
static const lane_index_t TILE_LO[TILE_ROUNDS] = {
    {0, 1, 2, 3, 8, 9, 10, 11},
    {0, 1, 8, 9, 4, 5, 12, 13},
    {0, 8, 2, 10, 4, 12, 6, 14},
};
static const lane_index_t TILE_HI[TILE_ROUNDS] = {
    {4, 5, 6, 7, 12, 13, 14, 15},
    {2, 3, 10, 11, 6, 7, 14, 15},
    {1, 9, 3, 11, 5, 13, 7, 15},
};
#else
static const lane_index_t TILE_LO[TILE_ROUNDS] = {{0, 1, 4, 5}, {0, 4, 2, 6}};
static const lane_index_t TILE_HI[TILE_ROUNDS] = {{2, 3, 6, 7}, {1, 5, 3, 7}};
#endif

static inline void tile_transpose(lanes_t r[INTER_LANES])
{
#pragma GCC unroll 4
    for (int k = 0; k < TILE_ROUNDS; k++) {
        const int h = INTER_LANES / 2 >> k;
#pragma GCC unroll 16
        for (int a = 0; a < INTER_LANES; a++) {
            if (a & h)
                continue;
            const lanes_t x = r[a], y = r[a + h];
            r[a] = __builtin_shuffle(x, y, TILE_LO[k]);
            r[a + h] = __builtin_shuffle(x, y, TILE_HI[k]);
        }
    }
}

/* t[c] lane s = column c of row r0 + s of src (rows of stride floats), for
 * the block's n samples; lanes n.. of a partial block get zeros. Whole
 * tiles of INTER_LANES columns go through tile_transpose. */
static void block_load(lanes_t *t, const float *src, size_t stride, int r0, int n, int width)
{
    int c0 = 0;
    for (; c0 + INTER_LANES <= width; c0 += INTER_LANES) {
        lanes_t r[INTER_LANES];
        for (int s = 0; s < INTER_LANES; s++)
            if (s < n)
                memcpy(&r[s], src + (size_t)(r0 + s) * stride + c0, sizeof r[s]);
            else
                r[s] = (lanes_t){0};
        tile_transpose(r);
        for (int k = 0; k < INTER_LANES; k++)
            t[c0 + k] = r[k];
    }
    for (int c = c0; c < width; c++) {
        lanes_t v = {0};
        for (int s = 0; s < n; s++)
            v[s] = src[(size_t)(r0 + s) * stride + c];
        t[c] = v;
    }
}

/* The inverse of block_load for the block's first n lanes. */
static void block_store(float *dst, const lanes_t *t, size_t stride, int r0, int n, int width)
{
    int c0 = 0;
    for (; c0 + INTER_LANES <= width; c0 += INTER_LANES) {
        lanes_t r[INTER_LANES];
        for (int k = 0; k < INTER_LANES; k++)
            r[k] = t[c0 + k];
        tile_transpose(r);
        for (int s = 0; s < n; s++)
            memcpy(dst + (size_t)(r0 + s) * stride + c0, &r[s], sizeof r[s]);
    }
    for (int s = 0; s < n; s++) {
        float *row = dst + (size_t)(r0 + s) * stride;
        for (int c = c0; c < width; c++)
            row[c] = t[c][s];
    }
}

/* z[pair (i, j)] = x_i . x_j over the block (t: V vectors of d lanes_t),
 * for j in [0, j1): INTER_UNROLL pairs at a time, k in order. */
static void block_dots(lanes_t *z, const lanes_t *t, const inter_dims_t *d, int i, int j1)
{
    const int n = d->d;
    const lanes_t *a = t + (size_t)i * n;
    int j = 0;
    for (; j + INTER_UNROLL <= j1; j += INTER_UNROLL) {
        lanes_t acc[INTER_UNROLL] = {{0}};
        for (int k = 0; k < n; k++)
            INTER_UNROLL_LOOP
            for (int u = 0; u < INTER_UNROLL; u++)
                acc[u] += a[k] * t[(size_t)(j + u) * n + k];
        INTER_UNROLL_LOOP
        for (int u = 0; u < INTER_UNROLL; u++)
            z[pair_index(d, i, j + u)] = acc[u];
    }
    for (; j < j1; j++) {
        lanes_t acc = {0};
        for (int k = 0; k < n; k++)
            acc += a[k] * t[(size_t)j * n + k];
        z[pair_index(d, i, j)] = acc;
    }
}

/* A block's vectors: the input's values, then the model input's it reads. */
static void block_vectors(lanes_t *t, const inter_dims_t *d, const layer_pass_t *x, int r0,
                          int nb)
{
    block_load(t, x->in, (size_t)d->n_in, r0, nb, d->n_in);
    if (d->n_in < d->V * d->d)
        block_load(t + d->n_in, x->x0 + d->x0_at, (size_t)x->x0_size, r0, nb,
                   d->V * d->d - d->n_in);
}

/* out = [x_0, (x_i . x_j) for i, j < i (or <= i)] per sample, INTER_LANES
 * samples at a time. */
static void inter_forward(const layer_t *L, const layer_pass_t *x)
{
    const inter_dims_t *d = (const inter_dims_t *)L->plan.bytes;
    const int in = L->in.dim[0], on = L->out.dim[0], n = d->d;
    lanes_t *t = x->buf[B_VECS], *z = x->buf[B_PAIRS];
    for (int r0 = 0; r0 < x->B; r0 += INTER_LANES) {
        const int nb = x->B - r0 < INTER_LANES ? x->B - r0 : INTER_LANES;
        block_vectors(t, d, x, r0, nb);
        for (int i = 1 - d->self; i < d->V; i++)
            block_dots(z, t, d, i, i + d->self);
        for (int s = 0; s < nb; s++)
            memcpy(x->out + (size_t)(r0 + s) * on, x->in + (size_t)(r0 + s) * in,
                   (size_t)n * sizeof(float));
        block_store(x->out + n, z, (size_t)on, r0, nb, d->P);
    }
}

/* dx_i (n lanes_t at dx) = sum over j of w_j x_j, w_j the gradient of pair
 * (i, j) (twice it for a self pair, 0 for j = i without), k in
 * INTER_UNROLL-wide steps (n a multiple, or the rest one at a time). */
static void block_grad(lanes_t *dx, const lanes_t *t, const lanes_t *g, const inter_dims_t *d,
                       int i, lanes_t *w)
{
    const int n = d->d, V = d->V;
    for (int j = 0; j < V; j++)
        w[j] = j == i ? (d->self ? 2.0f * g[pair_index(d, i, i)] : (lanes_t){0})
                      : g[j < i ? pair_index(d, i, j) : pair_index(d, j, i)];
    int k = 0;
    for (; k + INTER_UNROLL <= n; k += INTER_UNROLL) {
        lanes_t acc[INTER_UNROLL] = {{0}};
        for (int j = 0; j < V; j++)
            INTER_UNROLL_LOOP
            for (int u = 0; u < INTER_UNROLL; u++)
                acc[u] += w[j] * t[(size_t)j * n + k + u];
        INTER_UNROLL_LOOP
        for (int u = 0; u < INTER_UNROLL; u++)
            dx[k + u] = acc[u];
    }
    for (; k < n; k++) {
        lanes_t acc = {0};
        for (int j = 0; j < V; j++)
            acc += w[j] * t[(size_t)j * n + k];
        dx[k] = acc;
    }
}

/* din_i = sum over pairs (i, j) of g_ij x_j (each side of a pair, so
 * 2 g_ii x_i for a self pair), plus dout's first d for i = 0; the vectors
 * from the model's input get theirs in dx0 (when wanted). No parameters.
 * INTER_LANES samples at a time. */
static void inter_backward(const layer_t *L, const layer_pass_t *x)
{
    if (!x->din) /* nothing below needs a gradient: nor does the model's input */
        return;
    const inter_dims_t *d = (const inter_dims_t *)L->plan.bytes;
    const int in = L->in.dim[0], on = L->out.dim[0], n = d->d, tail = d->V * n - in;
    lanes_t *t = x->buf[B_VECS], *g = x->buf[B_PAIRS], *dx = x->buf[B_GRADS];
    lanes_t *w = x->buf[B_WEIGHTS];
    for (int r0 = 0; r0 < x->B; r0 += INTER_LANES) {
        const int nb = x->B - r0 < INTER_LANES ? x->B - r0 : INTER_LANES;
        block_vectors(t, d, x, r0, nb);
        block_load(g, x->dout + n, (size_t)on, r0, nb, d->P);
        for (int i = 0; i < d->V; i++)
            block_grad(dx + (size_t)i * n, t, g, d, i, w);
        block_store(x->din, dx, (size_t)in, r0, nb, in);
        if (tail && x->dx0)
            block_store(x->dx0 + d->x0_at, dx + in, (size_t)x->x0_size, r0, nb, tail);
        for (int s = 0; s < nb; s++) {
            float *di = x->din + (size_t)(r0 + s) * in;
            const float *g0 = x->dout + (size_t)(r0 + s) * on;
            for (int k = 0; k < n; k++)
                di[k] += g0[k];
        }
    }
}

/* x, then the model input's values the layer reads (Slice, Concat), if
 * any. Returns the name of all the vectors, or NULL. */
static const char *emit_vectors(onnx_graph_t *g, const inter_dims_t *d, const char *base,
                                const char *x)
{
    const int tail = d->V * d->d - d->n_in;
    if (!tail)
        return x;
    const int64_t st[1] = {d->x0_at}, en[1] = {d->x0_at + tail}, ax[1] = {1};
    const char *sv[] = {onnx_model_input(g),
                        onnx_init_int64s(g, onnx_name(g, "%s.x0_start", base), 1, st),
                        onnx_init_int64s(g, onnx_name(g, "%s.x0_end", base), 1, en),
                        onnx_init_int64s(g, onnx_name(g, "%s.x0_axis", base), 1, ax), NULL};
    const char *from = onnx_name(g, "%s.from_input", base), *all = onnx_name(g, "%s.all", base);
    onnx_node(g, "Slice", from, sv, (const char *[]){from, NULL});
    onnx_node_t *n = onnx_node(g, "Concat", all, (const char *[]){x, from, NULL},
                               (const char *[]){all, NULL});
    onnx_attr_int(g, n, "axis", 1);
    return onnx_failed(g) ? NULL : all;
}

/* Reshape [N,V,d]; MatMul with its transpose [N,V,V]; Reshape [N,V*V];
 * Gather (axis 1) of the pairs' flat indices; Concat with the first d
 * inputs (Slice). With from_input, the vectors are first completed from
 * the model's input. */
static const char *inter_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x)
{
    const inter_dims_t *d = (const inter_dims_t *)L->plan.bytes;
    onnx_node_t *n;
    x = emit_vectors(g, d, base, x);
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
    .buffers = inter_buffers,
    .forward = inter_forward,
    .backward = inter_backward,
    .emit = inter_emit,
};
