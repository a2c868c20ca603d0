/* lstm.c - the LSTM layer: in [B][T][In] (batch first) -> out [B][T][H]
 * with return_sequences, else [B][H] (the last step); weights w_ih [4H][In],
 * w_hh [4H][H], one bias [4H]; Keras's initialisers (glorot w_ih,
 * orthogonal w_hh, bias 1 on the forget gate).
 *
 * Gate order is i, f, g, o (input, forget, cell candidate, output), the
 * order of PyTorch (whose two biases b_ih + b_hh add up to our one bias) and
 * of Keras (i, f, c, o; Keras kernels are our weights transposed). ONNX's LSTM
 * operator wants i, o, f, c: the exporter permutes the four H-row blocks of
 * w_ih, w_hh and the bias as (0, 3, 1, 2) and gives R's bias as zeros.
 *   i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
 *   c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t),  h_0 = c_0 = 0
 *   a = x_t w_ih^T + h_{t-1} w_hh^T + bias
 */
#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "common/nn/layer.h"
#include "common/util/fastmath.h"
#include "export/onnx_graph.h"

enum { K_UNITS, K_RETURN_SEQUENCES };

static const layer_key_t KEYS[] = {
    {"units", LKEY_INT, NULL, ">=1"},
    {"return_sequences", LKEY_BOOL, "false", NULL},
    {NULL},
};

enum { P_W_IH, P_W_HH, P_BIAS };

typedef struct {
    int B, T, In, H;  /* B: of the pass (unset in the plan) */
    int return_sequences;
} lstm_dims_t;

_Static_assert(sizeof(lstm_dims_t) <= LAYER_PLAN_BYTES, "lstm_dims_t does not fit a layer plan");

/* Buffers an LSTM keeps from forward to backward, and its scratch, one
 * after the other in the layer's one scratch buffer. */
typedef struct {
    float *x_tm;    /* [T][B][In]   input, time-major */
    float *gates;   /* [T][B][4H]  activated gates i, f, g, o */
    float *h;       /* [T+1][B][H] h[0] = 0 */
    float *c;       /* [T+1][B][H] c[0] = 0 */
    float *tc;      /* [T][B][H]   the activated cell state (g's function of c) */
    float *dgates;  /* [T][B][4H]  backward scratch */
    float *dh;      /* [B][H]      backward scratch */
    float *dc;      /* [B][H]      backward scratch */
    float *dx_tm;   /* [T][B][In]   backward scratch */
} lstm_buf_t;

/* L's dims for a pass of B samples. */
static lstm_dims_t dims_for(const layer_t *L, int B)
{
    lstm_dims_t d = *(const lstm_dims_t *)L->plan.bytes;
    d.B = B;
    return d;
}

/* Points the buffers of b into mem (NULL: only counts), laid out for d->B
 * samples. Returns the number of floats they take. */
static size_t buf_bind(lstm_buf_t *b, float *mem, const lstm_dims_t *d)
{
    const size_t TB = (size_t)d->T * d->B;
    const size_t sz[9] = {
        TB * d->In, TB * 4 * d->H, (TB + d->B) * d->H, (TB + d->B) * d->H, TB * d->H,
        TB * 4 * d->H, (size_t)d->B * d->H, (size_t)d->B * d->H, TB * d->In,
    };
    float **slots[9] = {&b->x_tm, &b->gates, &b->h,  &b->c,    &b->tc,
                        &b->dgates, &b->dh, &b->dc, &b->dx_tm};
    size_t total = 0;
    for (int i = 0; i < 9; i++) {
        if (mem)
            *slots[i] = mem + total;
        total += sz[i];
    }
    return total;
}

/* Needs [T,F]; output [T,H] or [H]; adds w_ih, w_hh and bias. Returns 0 or -1. */
static int lstm_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    char shp[64];
    if (L->in.rank != 2)
        return err_set(err, "%s: needs a sequence input [T,F], got %s", b->where,
                       shape_str(shp, sizeof shp, &L->in));
    lstm_dims_t *d = (lstm_dims_t *)L->plan.bytes;
    d->T = L->in.dim[0];
    d->In = L->in.dim[1];
    d->H = c->v[K_UNITS].i;
    d->return_sequences = c->v[K_RETURN_SEQUENCES].i;
    L->out = d->return_sequences ? (shape_t){2, {d->T, d->H}} : (shape_t){1, {d->H}};
    const int wi[2] = {4 * d->H, d->In}, wh[2] = {4 * d->H, d->H}, bs[1] = {4 * d->H};
    param_spec_t *p = layer_add_param(L, b, "w_ih", 2, wi, INIT_GLOROT_UNIFORM, err);
    if (!p)
        return -1;
    p->fan_in = d->In;
    p->fan_out = 4 * d->H;
    if (!(p = layer_add_param(L, b, "w_hh", 2, wh, INIT_ORTHOGONAL, err)))
        return -1;
    p->rows = 4 * d->H;
    p->cols = d->H;
    if (!(p = layer_add_param(L, b, "bias", 1, bs, INIT_UNIT_FORGET_BIAS, err)))
        return -1;
    p->units = d->H;
    return 0;
}

/* One scratch buffer holding lstm_buf_t for B samples. */
static int lstm_buffers(const layer_t *L, int B, size_t sizes[LAYER_MAX_BUFS])
{
    const lstm_dims_t d = dims_for(L, B);
    sizes[0] = buf_bind(&(lstm_buf_t){0}, NULL, &d) * sizeof(float);
    return 1;
}

/* The buffers of pass x: laid out for the capacity, used for x->B samples. */
static lstm_buf_t bufs_of(const layer_t *L, const layer_pass_t *x)
{
    lstm_buf_t b;
    const lstm_dims_t cap = dims_for(L, x->cap);
    buf_bind(&b, x->buf[0], &cap);
    return b;
}

/* Step t's gates, cell and output for every sample (gt holds the input
 * projection plus h_{t-1} w_hh^T on entry). */
static void lstm_cell(const lstm_buf_t *buf, const float *bias, const lstm_dims_t *d, int t)
{
    const int B = d->B, H = d->H, G = 4 * H;
    const size_t BH = (size_t)B * H, BG = (size_t)B * G;
    float *gt = buf->gates + t * BG;
    const float *cp = buf->c + t * BH;
    float *hn = buf->h + (t + 1) * BH, *cn = buf->c + (t + 1) * BH, *tc = buf->tc + t * BH;
    for (int b = 0; b < B; b++) {
        float *g = gt + (size_t)b * G;
        for (int j = 0; j < G; j++)
            g[j] += bias[j];
        fast_sigmoidf_vec(g, g, 2 * (size_t)H);           /* i, f */
        fast_tanhf_vec(g + 2 * H, g + 2 * H, (size_t)H);  /* g */
        fast_sigmoidf_vec(g + 3 * H, g + 3 * H, (size_t)H); /* o */
        const float *cpb = cp + (size_t)b * H;
        float *cnb = cn + (size_t)b * H, *tcb = tc + (size_t)b * H, *hnb = hn + (size_t)b * H;
        for (int j = 0; j < H; j++)
            cnb[j] = g[H + j] * cpb[j] + g[j] * g[2 * H + j];
        fast_tanhf_vec(tcb, cnb, (size_t)H);
        for (int j = 0; j < H; j++)
            hnb[j] = g[3 * H + j] * tcb[j];
    }
}

/* out = [B][T][H] (return_sequences) or [B][H] (last h). One GEMM computes
 * the input projection of all steps (x_tm [T*B][In] w_ih^T); each step adds
 * h_{t-1} w_hh^T for the four gates at once. */
static void lstm_forward(const layer_t *L, const layer_pass_t *x)
{
    const lstm_dims_t d = dims_for(L, x->B);
    const lstm_buf_t buf = bufs_of(L, x);
    const int B = d.B, T = d.T, In = d.In, H = d.H, G = 4 * H;
    const size_t BH = (size_t)B * H, BG = (size_t)B * G;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(buf.x_tm + ((size_t)t * B + b) * In, x->in + ((size_t)b * T + t) * In,
                   (size_t)In * sizeof(float));
    /* input projection of every step at once: gates [T*B][4H] = x_tm w_ih^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T * B, G, In, 1.0f, buf.x_tm, In,
                x->p[P_W_IH], In, 0.0f, buf.gates, G);
    memset(buf.h, 0, BH * sizeof(float));
    memset(buf.c, 0, BH * sizeof(float));
    for (int t = 0; t < T; t++) {
        if (t > 0) /* h_0 = 0 adds nothing */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G, H, 1.0f, buf.h + t * BH, H,
                        x->p[P_W_HH], H, 1.0f, buf.gates + t * BG, G);
        lstm_cell(&buf, x->p[P_BIAS], &d, t);
    }
    if (d.return_sequences) {
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++)
                memcpy(x->out + ((size_t)b * T + t) * H, buf.h + (t + 1) * BH + (size_t)b * H,
                       (size_t)H * sizeof(float));
    } else {
        memcpy(x->out, buf.h + T * BH, BH * sizeof(float));
    }
}

/* Step t of backpropagation through time: adds dout's share to dh, then
 * the gates' gradients and dc_{t-1}. */
static void lstm_cell_backward(const lstm_buf_t *buf, const float *dout, const lstm_dims_t *d,
                               int t)
{
    const int B = d->B, T = d->T, H = d->H, G = 4 * H;
    const size_t BH = (size_t)B * H, BG = (size_t)B * G;
    const float *gt = buf->gates + t * BG;
    const float *cp = buf->c + t * BH, *tc = buf->tc + t * BH;
    float *dg = buf->dgates + t * BG, *dh = buf->dh, *dc = buf->dc;
    if (d->return_sequences) {
        for (int b = 0; b < B; b++) {
            const float *src = dout + ((size_t)b * T + t) * H;
            float *dhb = dh + (size_t)b * H;
            for (int j = 0; j < H; j++)
                dhb[j] += src[j];
        }
    } else if (t == T - 1) {
        for (size_t k = 0; k < BH; k++)
            dh[k] += dout[k];
    }
    for (int b = 0; b < B; b++) {
        const float *g = gt + (size_t)b * G;
        float *dgb = dg + (size_t)b * G;
        const float *cpb = cp + (size_t)b * H, *tcb = tc + (size_t)b * H;
        float *dhb = dh + (size_t)b * H, *dcb = dc + (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
            float tcj = tcb[j], dhj = dhb[j];
            float dcc = dcb[j] + dhj * o * (1.0f - tcj * tcj);
            dgb[j] = dcc * gg * i * (1.0f - i);
            dgb[H + j] = dcc * cpb[j] * f * (1.0f - f);
            dgb[2 * H + j] = dcc * i * (1.0f - gg * gg);
            dgb[3 * H + j] = dhj * tcj * o * (1.0f - o);
            dcb[j] = dcc * f;
        }
    }
}

/* Full BPTT from dout (shape as out): dw_ih, dw_hh, dbias +=; din [B][T][In]
 * = (if asked). */
static void lstm_backward(const layer_t *L, const layer_pass_t *x)
{
    const lstm_dims_t d = dims_for(L, x->B);
    const lstm_buf_t buf = bufs_of(L, x);
    const int B = d.B, T = d.T, In = d.In, H = d.H, G = 4 * H;
    const size_t BH = (size_t)B * H, BG = (size_t)B * G;
    memset(buf.dh, 0, BH * sizeof(float));
    memset(buf.dc, 0, BH * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        lstm_cell_backward(&buf, x->dout, &d, t);
        if (t > 0) /* dh_{t-1} = dgates_t w_hh */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, G, 1.0f,
                        buf.dgates + t * BG, G, x->p[P_W_HH], H, 0.0f, buf.dh, H);
    }
    /* weight gradients over all steps at once */
    if (T > 1)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, H, (T - 1) * B, 1.0f,
                    buf.dgates + BG, G, buf.h + BH, H, 1.0f, x->g[P_W_HH], H);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, In, T * B, 1.0f, buf.dgates, G,
                buf.x_tm, In, 1.0f, x->g[P_W_IH], In);
    float *dbias = x->g[P_BIAS];
    for (size_t r = 0; r < (size_t)T * B; r++) {
        const float *row = buf.dgates + r * G;
        for (int j = 0; j < G; j++)
            dbias[j] += row[j];
    }
    if (x->din) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T * B, In, G, 1.0f, buf.dgates, G,
                    x->p[P_W_IH], In, 0.0f, buf.dx_tm, In);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                memcpy(x->din + ((size_t)b * T + t) * In, buf.dx_tm + ((size_t)t * B + b) * In,
                       (size_t)In * sizeof(float));
    }
}

/* Adds parameter idx, [4H][cols] in our gate order i, f, g, o, as an ONNX
 * [1][4H][cols] tensor in ONNX's order i, o, f, c. With bias, idx is our
 * bias [4H] and the tensor is B [1][8H]: our bias as Wb, zeros as Rb.
 * Returns its name or NULL. */
static const char *init_gates(onnx_graph_t *g, const char *name, int idx, int H, int cols,
                              int bias)
{
    static const int ONNX_FROM_OURS[4] = {0, 3, 1, 2}; /* i, o, f, c <- i, f, g, o */
    const float *src = onnx_param_data(g, idx);
    const size_t block = (size_t)H * cols;
    float *dst = onnx_alloc(g, (bias ? 8 : 4) * block * sizeof *dst); /* zeroed: Rb */
    if (!dst)
        return NULL;
    for (int k = 0; k < 4; k++)
        memcpy(dst + k * block, src + ONNX_FROM_OURS[k] * block, block * sizeof *dst);
    const int64_t dims[3] = {1, 4 * (int64_t)H, cols}, bias_dims[2] = {1, 8 * (int64_t)H};
    return bias ? onnx_init_floats(g, name, 2, bias_dims, dst)
                : onnx_init_floats(g, name, 3, dims, dst);
}

/* Transpose to time-major, LSTM, then Squeeze + Transpose back
 * (return_sequences) or Squeeze of Y_h (last step). */
static const char *lstm_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x)
{
    const lstm_dims_t *d = (const lstm_dims_t *)L->plan.bytes;
    const char *pname = onnx_param_spec(g, L->param[P_W_IH])->name; /* "lstmK.w_ih" */
    char stem[PARAM_NAME_LEN];
    snprintf(stem, sizeof stem, "%.*s", (int)strcspn(pname, "."), pname);
    const char *W = init_gates(g, onnx_name(g, "%s.W", stem), L->param[P_W_IH], d->H, d->In, 0);
    const char *R = init_gates(g, onnx_name(g, "%s.R", stem), L->param[P_W_HH], d->H, d->H, 0);
    const char *B = init_gates(g, onnx_name(g, "%s.B", stem), L->param[P_BIAS], d->H, 1, 1);
    onnx_node_t *n;
    const int64_t perm[3] = {1, 0, 2};
    const char *x_tm = onnx_unary(g, "Transpose", onnx_name(g, "%s.time_major", base), x, &n);
    onnx_attr_ints(g, n, "perm", 3, perm);
    /* only the output used is named: Y for every step, else Y_h */
    const char *Y = onnx_name(g, "%s.Y", base), *Y_h = onnx_name(g, "%s.Y_h", base);
    const char *in[] = {x_tm, W, R, B, NULL};
    const char *out_seq[] = {Y, NULL}, *out_last[] = {"", Y_h, NULL};
    n = onnx_node(g, "LSTM", onnx_name(g, "%s.lstm", base), in,
                  d->return_sequences ? out_seq : out_last);
    onnx_attr_int(g, n, "hidden_size", d->H);
    /* Y [T][1][N][H] -> [T][N][H] -> [N][T][H]; Y_h [1][N][H] -> [N][H] */
    const int64_t axes[1] = {d->return_sequences ? 1 : 0};
    const char *ax = onnx_init_int64s(g, onnx_name(g, "%s.squeeze_axes", base), 1, axes);
    const char *sq = onnx_name(g, "%s.squeeze", base);
    onnx_node(g, "Squeeze", sq, (const char *[]){d->return_sequences ? Y : Y_h, ax, NULL},
              (const char *[]){sq, NULL});
    if (!d->return_sequences)
        return onnx_failed(g) ? NULL : sq;
    const char *y = onnx_unary(g, "Transpose", onnx_name(g, "%s.batch_major", base), sq, &n);
    onnx_attr_ints(g, n, "perm", 3, perm);
    return y;
}

const layer_kind_t layer_lstm = {
    .name = "lstm",
    .keys = KEYS,
    .param_prefix = "lstm",
    .plan = lstm_plan,
    .buffers = lstm_buffers,
    .forward = lstm_forward,
    .backward = lstm_backward,
    .emit = lstm_emit,
};
