/* conv2d.c - 2-D convolution: in [B][C][H][W] -> out [B][F][OH][OW] =
 * act(conv(in, w) + b), weight [F][C][K][K], bias [F], square kernel, one
 * stride and zero padding on every side; OH = (H + 2 pad - K) / stride + 1.
 * Lowered to im2col followed by one GEMM over the whole batch.
 *
 * A tiling max pool after it (stride = window, at most 15) is absorbed
 * (layer_kind_t.absorb): the pair is then most of a CNN's time, all of it in
 * passes over the largest tensor of the network, and the fused kernel never
 * writes the conv output in NCHW. The GEMM writes channels-last [B*OH*OW][F],
 * where the pool is a plain vector max over F, and only the pooled (pool^2
 * times smaller) tensor is transposed to NCHW. Since +bias and a monotone
 * activation commute with max, act(max(x) + b) = max(act(x + b)), so the
 * bias and activation are applied once per pooled value. */
#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "common/nn/layer.h"
#include "export/onnx_graph.h"

enum { K_FILTERS, K_KERNEL, K_STRIDE, K_PADDING, K_ACT };

static const layer_key_t KEYS[] = {
    {"filters", LKEY_INT, NULL, ">=1"},
    {"kernel", LKEY_INT, "3", ">=1"},
    {"stride", LKEY_INT, "1", ">=1"},
    {"padding", LKEY_INT, "0", ">=0"},
    {"activation", LKEY_ACT, "none", NULL},
    {NULL},
};

enum { P_WEIGHT, P_BIAS };
enum { B_COL, B_TMP, B_PN, B_CODE }; /* scratch buffers */

#define MAX_FUSED_POOL 15 /* the window position of a pooled value fits a byte */

typedef struct {
    int B, C, H, W;   /* input (B: of the pass) */
    int F, K, stride, pad;
    int OH, OW;       /* output */
} conv_dims_t;

typedef struct {
    conv_dims_t c;    /* B unset in the plan */
    int pool;         /* absorbed pool's window and stride (0: none) */
    int PH, PW;       /* OH / pool, OW / pool */
} conv_plan_t;

_Static_assert(sizeof(conv_plan_t) <= LAYER_PLAN_BYTES, "conv_plan_t does not fit a layer plan");

/* L's plan data. */
static const conv_plan_t *plan_of(const layer_t *L)
{
    return (const conv_plan_t *)L->plan.bytes;
}

/* The plan's dims for a pass of B samples. */
static conv_dims_t dims_for(const layer_t *L, int B)
{
    conv_dims_t d = plan_of(L)->c;
    d.B = B;
    return d;
}

/* Needs [C,H,W] that the kernel fits; output [F,OH,OW]; adds weight and
 * bias. Returns 0 or -1 with err. */
static int conv_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    char shp[64];
    shape_str(shp, sizeof shp, &L->in);
    if (L->in.rank != 3)
        return err_set(err, "%s: needs an image input [C,H,W], got %s", b->where, shp);
    conv_plan_t *p = (conv_plan_t *)L->plan.bytes;
    conv_dims_t *d = &p->c;
    d->C = L->in.dim[0];
    d->H = L->in.dim[1];
    d->W = L->in.dim[2];
    d->F = c->v[K_FILTERS].i;
    d->K = c->v[K_KERNEL].i;
    d->stride = c->v[K_STRIDE].i;
    d->pad = c->v[K_PADDING].i;
    if (d->K < 1 || d->stride < 1 || d->pad < 0 || d->H + 2 * d->pad < d->K ||
        d->W + 2 * d->pad < d->K)
        return err_set(err, "%s: kernel %d with padding %d does not fit input %s", b->where, d->K,
                       d->pad, shp);
    d->OH = (d->H + 2 * d->pad - d->K) / d->stride + 1;
    d->OW = (d->W + 2 * d->pad - d->K) / d->stride + 1;
    L->out = (shape_t){3, {d->F, d->OH, d->OW}};
    L->act = c->v[K_ACT].act;
    const int ws[4] = {d->F, d->C, d->K, d->K}, bs[1] = {d->F};
    param_spec_t *w = layer_add_param(L, b, "weight", 4, ws, INIT_GLOROT_UNIFORM, err);
    if (!w)
        return -1;
    w->fan_in = d->C * d->K * d->K;
    w->fan_out = d->F * d->K * d->K;
    return layer_add_param(L, b, "bias", 1, bs, INIT_ZEROS, err) ? 0 : -1;
}

/* Takes over a following tiling max pool whose window fits the fused
 * kernel, when the activation commutes with max. Returns 1 if it did. */
static int conv_absorb(layer_t *L, const layer_t *next)
{
    conv_plan_t *p = (conv_plan_t *)L->plan.bytes;
    const int pool = next->kind->tiling_max_pool ? next->kind->tiling_max_pool(next) : 0;
    if (pool < 1 || pool > MAX_FUSED_POOL || (L->act && !L->act->monotone) ||
        p->c.OH < pool || p->c.OW < pool || next->out.dim[1] != p->c.OH / pool ||
        next->out.dim[2] != p->c.OW / pool)
        return 0;
    p->pool = pool;
    p->PH = p->c.OH / pool;
    p->PW = p->c.OW / pool;
    return 1;
}

/* col (C*K*K x B*OH*OW floats), tmp (F x B*OH*OW); fused also pn
 * (B*PH*PW x F floats) and code (B*PH*PW*F bytes). */
static int conv_buffers(const layer_t *L, int B, size_t sizes[LAYER_MAX_BUFS])
{
    const conv_plan_t *p = plan_of(L);
    const conv_dims_t *d = &p->c;
    const size_t BP = (size_t)B * d->OH * d->OW;
    sizes[B_COL] = (size_t)d->C * d->K * d->K * BP * sizeof(float);
    sizes[B_TMP] = (size_t)d->F * BP * sizeof(float);
    if (!p->pool)
        return 2;
    const size_t pooled = (size_t)B * p->PH * p->PW * d->F;
    sizes[B_PN] = pooled * sizeof(float);
    sizes[B_CODE] = pooled;
    return 4;
}

/* col[(c*K + kh)*K + kw][b*P + oh*OW + ow] = in[b][c][oh*s - pad + kh][ow*s - pad + kw],
 * zero outside the image. */
static void im2col(float *col, const float *in, const conv_dims_t *d)
{
    const int P = d->OH * d->OW;
    const size_t BP = (size_t)d->B * P;
    for (int c = 0; c < d->C; c++)
        for (int kh = 0; kh < d->K; kh++)
            for (int kw = 0; kw < d->K; kw++) {
                float *row = col + ((size_t)(c * d->K + kh) * d->K + kw) * BP;
                for (int b = 0; b < d->B; b++) {
                    const float *plane = in + ((size_t)b * d->C + c) * d->H * d->W;
                    float *dst = row + (size_t)b * P;
                    for (int oh = 0; oh < d->OH; oh++) {
                        int ih = oh * d->stride - d->pad + kh;
                        float *drow = dst + (size_t)oh * d->OW;
                        if (ih < 0 || ih >= d->H) {
                            memset(drow, 0, d->OW * sizeof *drow);
                            continue;
                        }
                        const float *srow = plane + (size_t)ih * d->W;
                        if (d->stride == 1) {
                            /* iw = ow - pad + kw: a shifted copy with zero borders */
                            int lo = d->pad - kw, hi = d->W + d->pad - kw; /* ow range inside */
                            if (lo < 0)
                                lo = 0;
                            if (hi > d->OW)
                                hi = d->OW;
                            for (int ow = 0; ow < lo; ow++)
                                drow[ow] = 0.0f;
                            if (hi > lo)
                                memcpy(drow + lo, srow + lo - d->pad + kw, (size_t)(hi - lo) * sizeof *drow);
                            for (int ow = hi > lo ? hi : lo; ow < d->OW; ow++)
                                drow[ow] = 0.0f;
                        } else {
                            for (int ow = 0; ow < d->OW; ow++) {
                                int iw = ow * d->stride - d->pad + kw;
                                drow[ow] = (iw >= 0 && iw < d->W) ? srow[iw] : 0.0f;
                            }
                        }
                    }
                }
            }
}

/* din (zeroed here) += col2im(dcol): the adjoint of im2col. */
static void col2im(float *din, const float *dcol, const conv_dims_t *d)
{
    const int P = d->OH * d->OW;
    const size_t BP = (size_t)d->B * P;
    memset(din, 0, (size_t)d->B * d->C * d->H * d->W * sizeof *din);
    for (int c = 0; c < d->C; c++)
        for (int kh = 0; kh < d->K; kh++)
            for (int kw = 0; kw < d->K; kw++) {
                const float *row = dcol + ((size_t)(c * d->K + kh) * d->K + kw) * BP;
                for (int b = 0; b < d->B; b++) {
                    float *plane = din + ((size_t)b * d->C + c) * d->H * d->W;
                    const float *src = row + (size_t)b * P;
                    for (int oh = 0; oh < d->OH; oh++) {
                        int ih = oh * d->stride - d->pad + kh;
                        if (ih < 0 || ih >= d->H)
                            continue;
                        float *drow = plane + (size_t)ih * d->W;
                        const float *srow = src + (size_t)oh * d->OW;
                        for (int ow = 0; ow < d->OW; ow++) {
                            int iw = ow * d->stride - d->pad + kw;
                            if (iw >= 0 && iw < d->W)
                                drow[iw] += srow[ow];
                        }
                    }
                }
            }
}

/* out [B][F][P] = act(w col + b): im2col (kept in col for the backward
 * pass), one GEMM tmp[F][B*P] = w[F][CKK] col[CKK][B*P], then tmp is
 * transposed to out adding the bias, and the activation runs over it. */
static void conv_forward_plain(const layer_t *L, const layer_pass_t *x)
{
    const conv_dims_t d = dims_for(L, x->B);
    const int P = d.OH * d.OW, CKK = d.C * d.K * d.K, BP = d.B * P;
    float *col = x->buf[B_COL], *tmp = x->buf[B_TMP], *out = x->out;
    const float *b = x->p[P_BIAS];
    im2col(col, x->in, &d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d.F, BP, CKK, 1.0f, x->p[P_WEIGHT], CKK,
                col, BP, 0.0f, tmp, BP);
    for (int bi = 0; bi < d.B; bi++)
        for (int f = 0; f < d.F; f++) {
            const float *src = tmp + (size_t)f * BP + (size_t)bi * P;
            float *dst = out + ((size_t)bi * d.F + f) * P;
            const float bf = b[f];
#pragma omp simd
            for (int p = 0; p < P; p++)
                dst[p] = src[p] + bf;
        }
    if (L->act)
        L->act->forward(out, out, (size_t)d.B * d.F * P, d.F * P);
}

/* From dout (overwritten: it becomes the pre-activation gradient) and the
 * forward's out and col: db += , dw += tmp col^T, din = col2im(w^T tmp) (if
 * asked; col is then reused for w^T tmp). */
static void conv_backward_plain(const layer_t *L, const layer_pass_t *x)
{
    const conv_dims_t d = dims_for(L, x->B);
    const int P = d.OH * d.OW, CKK = d.C * d.K * d.K, BP = d.B * P;
    float *col = x->buf[B_COL], *tmp = x->buf[B_TMP], *dout = x->dout, *db = x->g[P_BIAS];
    if (L->act)
        L->act->backward(dout, dout, x->out, (size_t)d.B * d.F * P, d.F * P);
    /* dout [B][F][P] -> tmp [F][B][P], summing db */
    for (int f = 0; f < d.F; f++) {
        float sum = 0.0f;
        for (int bi = 0; bi < d.B; bi++) {
            const float *src = dout + ((size_t)bi * d.F + f) * P;
            float *dst = tmp + (size_t)f * BP + (size_t)bi * P;
            /* omp simd reduction: the sum is vectorised (its rounding is
             * fixed by the build, so results stay reproducible) */
#pragma omp simd reduction(+ : sum)
            for (int p = 0; p < P; p++) {
                dst[p] = src[p];
                sum += src[p];
            }
        }
        db[f] += sum;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d.F, CKK, BP, 1.0f, tmp, BP, col, BP,
                1.0f, x->g[P_WEIGHT], CKK);
    if (x->din) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, BP, d.F, 1.0f, x->p[P_WEIGHT],
                    CKK, tmp, BP, 0.0f, col, BP);
        col2im(x->din, col, &d);
    }
}

/* POOL_LANES channels of a window at a time, as GCC vectors (also clang's),
 * with the running maximum and its window position in registers, blended
 * by the comparison's mask. A loop over the channels per window position
 * with the maximum kept in pn (`best[f] = x[f] > best[f] ? x[f] :
 * best[f]`) became AVX2 masked stores under GCC 12, which are slow on
 * AMD's cores (the CNN's 1-thread epoch on a Zen 3: 10,702 samples/s
 * before, 11,086 after, medians of 4 alternating rounds, bit-identical). */
#define POOL_LANES 8
typedef float pool_vf __attribute__((vector_size(POOL_LANES * sizeof(float))));
typedef int32_t pool_vi __attribute__((vector_size(POOL_LANES * sizeof(int32_t))));

/* Channels [f, f + POOL_LANES) of one window: pn, code (see below). */
static inline void pool_lanes(float *pn, uint8_t *code, const float *first, const size_t *at_k,
                              int n, const float *b)
{
    pool_vf best, v, bias;
    memcpy(&best, first, sizeof best);
    pool_vi at = {0};
    for (int k = 1; k < n; k++) {
        memcpy(&v, first + at_k[k], sizeof v);
        const pool_vi gt = v > best; /* -1 where a new maximum, else 0 */
        best = (pool_vf)(((pool_vi)v & gt) | ((pool_vi)best & ~gt));
        at = (at & ~gt) | (((pool_vi){0} + k) & gt);
    }
    memcpy(&bias, b, sizeof bias);
    best += bias;
    memcpy(pn, &best, sizeof best);
    int32_t a[POOL_LANES]; /* read as at[l], at stayed in memory through the loop */
    memcpy(a, &at, sizeof a);
    for (int l = 0; l < POOL_LANES; l++)
        code[l] = (uint8_t)a[l];
}

/* The max over each pool x pool window of the channels-last conv output tb
 * [OH*OW][F] of one sample, plus the bias: pn [PH*PW][F], and code, the
 * window position (row-major, first maximum) each value came from. */
static void pool_channels_last(float *pn, uint8_t *code, const float *tb, const float *b,
                               const conv_plan_t *cp)
{
    const int F = cp->c.F, p = cp->pool, n = p * p;
    size_t at_k[MAX_FUSED_POOL * MAX_FUSED_POOL]; /* window position k's offset in tb */
    for (int k = 0; k < n; k++)
        at_k[k] = (size_t)(k / p * cp->c.OW + k % p) * F;
    for (int ph = 0; ph < cp->PH; ph++)
        for (int pw = 0; pw < cp->PW; pw++) {
            const size_t q = ((size_t)ph * cp->PW + pw) * F;
            const float *first = tb + ((size_t)(ph * p) * cp->c.OW + (size_t)(pw * p)) * F;
            int f = 0;
            for (; f + POOL_LANES <= F; f += POOL_LANES)
                pool_lanes(pn + q + f, code + q + f, first + f, at_k, n, b + f);
            for (; f < F; f++) { /* the channels after the last whole vector */
                float best = first[f];
                uint8_t at = 0;
                for (int k = 1; k < n; k++)
                    if (first[at_k[k] + f] > best) {
                        best = first[at_k[k] + f];
                        at = (uint8_t)k;
                    }
                pn[q + f] = best + b[f];
                code[q + f] = at;
            }
        }
}

/* out [B][F][PH][PW] = act(maxpool(conv(in)) + b); code keeps, per pooled
 * value, the window position it came from; col keeps im2col(in). */
static void conv_forward_fused(const layer_t *L, const layer_pass_t *x)
{
    const conv_plan_t *cp = plan_of(L);
    const conv_dims_t d = dims_for(L, x->B);
    const int F = d.F, CKK = d.C * d.K * d.K, P = d.OH * d.OW, BP = d.B * P;
    const int PHW = cp->PH * cp->PW;
    float *col = x->buf[B_COL], *tmp = x->buf[B_TMP], *pn = x->buf[B_PN];
    uint8_t *code = x->buf[B_CODE];
    im2col(col, x->in, &d);
    /* channels-last conv output: tmp [B*P][F] = col^T w^T */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, BP, F, CKK, 1.0f, col, BP, x->p[P_WEIGHT],
                CKK, 0.0f, tmp, F);
    for (int bi = 0; bi < d.B; bi++) {
        const size_t q = (size_t)bi * PHW * F;
        pool_channels_last(pn + q, code + q, tmp + (size_t)bi * P * F, x->p[P_BIAS], cp);
        /* pn [PHW][F] -> out [F][PHW] for this sample, then the activation
         * while the sample is in cache; written in order and read across
         * (the sample's pn is in the first-level cache: writes that stride
         * across lines cost more, 8% of the CNN's 1-thread step on an AVX2
         * Zen 3, against reads across) */
        const float *src = pn + q;
        float *dst = x->out + (size_t)bi * F * PHW;
        for (int f = 0; f < F; f++)
            for (int k = 0; k < PHW; k++)
                dst[(size_t)f * PHW + k] = src[(size_t)k * F + f];
        if (L->act)
            L->act->forward(dst, dst, (size_t)F * PHW, F * PHW);
    }
}

/* Scatters one sample's pooled gradient g [PHW][F] to the window position
 * each value came from, in the channels-last tb [OH*OW][F]: every covered
 * pixel is written once, so no zeroing pass is needed; rows and columns
 * past the last window get 0. */
static void unpool_channels_last(float *tb, const float *g, const uint8_t *code,
                                 const conv_plan_t *cp)
{
    const int F = cp->c.F, p = cp->pool;
    for (int ph = 0; ph < cp->PH; ph++)
        for (int pw = 0; pw < cp->PW; pw++) {
            const size_t q = ((size_t)ph * cp->PW + pw) * F;
            const float *gq = g + q;
            const uint8_t *cd = code + q;
            for (int i = 0; i < p; i++)
                for (int j = 0; j < p; j++) {
                    float *x = tb + ((size_t)(ph * p + i) * cp->c.OW + pw * p + j) * F;
                    const uint8_t k = (uint8_t)(i * p + j);
#pragma omp simd
                    for (int f = 0; f < F; f++)
                        x[f] = cd[f] == k ? gq[f] : 0.0f;
                }
        }
    for (int oh = 0; oh < cp->c.OH; oh++)
        for (int ow = 0; ow < cp->c.OW; ow++)
            if (oh >= cp->PH * p || ow >= cp->PW * p)
                memset(tb + ((size_t)oh * cp->c.OW + ow) * F, 0, F * sizeof(float));
}

/* From dout [B][F][PH][PW] (overwritten with the pre-activation gradient)
 * and the forward's out, code and col: dw +=, db +=, din = (if asked; col
 * is then reused as scratch). */
static void conv_backward_fused(const layer_t *L, const layer_pass_t *x)
{
    const conv_plan_t *cp = plan_of(L);
    const conv_dims_t d = dims_for(L, x->B);
    const int F = d.F, CKK = d.C * d.K * d.K, P = d.OH * d.OW, BP = d.B * P;
    const int PHW = cp->PH * cp->PW;
    float *col = x->buf[B_COL], *tmp = x->buf[B_TMP], *pn = x->buf[B_PN], *db = x->g[P_BIAS];
    const uint8_t *code = x->buf[B_CODE];
    for (int bi = 0; bi < d.B; bi++) {
        /* pooled gradient through the activation (one sample at a time, in
         * cache), to channels-last pn [PHW][F] */
        float *src = x->dout + (size_t)bi * F * PHW;
        if (L->act)
            L->act->backward(src, src, x->out + (size_t)bi * F * PHW, (size_t)F * PHW, F * PHW);
        float *g = pn + (size_t)bi * PHW * F; /* written in order, as in the forward */
        for (int k = 0; k < PHW; k++)
            for (int f = 0; f < F; f++)
                g[(size_t)k * F + f] = src[(size_t)f * PHW + k];
        unpool_channels_last(tmp + (size_t)bi * P * F, g, code + (size_t)bi * PHW * F, cp);
    }
    /* db: each pooled gradient lands on exactly one pixel */
    for (size_t q = 0; q < (size_t)d.B * PHW; q++) {
        const float *gq = pn + q * F;
#pragma omp simd
        for (int f = 0; f < F; f++)
            db[f] += gq[f];
    }
    /* dw [F][CKK] += tmp^T col^T */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, F, CKK, BP, 1.0f, tmp, F, col, BP, 1.0f,
                x->g[P_WEIGHT], CKK);
    if (x->din) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, CKK, BP, F, 1.0f, x->p[P_WEIGHT], CKK,
                    tmp, F, 0.0f, col, BP);
        col2im(x->din, col, &d);
    }
}

/* The fused kernel when L absorbed the pool after it, else the plain one. */
static void conv_forward(const layer_t *L, const layer_pass_t *x)
{
    if (L->absorbed)
        conv_forward_fused(L, x);
    else
        conv_forward_plain(L, x);
}

/* The backward pass of the kernel conv_forward ran. */
static void conv_backward(const layer_t *L, const layer_pass_t *x)
{
    if (L->absorbed)
        conv_backward_fused(L, x);
    else
        conv_backward_plain(L, x);
}

/* Conv (kernel_shape, strides, pads, dilations), then the activation. */
static const char *conv_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x)
{
    const conv_dims_t *d = &plan_of(L)->c;
    const char *w = onnx_init_param(g, L->param[P_WEIGHT]);
    const char *bias = onnx_init_param(g, L->param[P_BIAS]);
    const char *y = onnx_name(g, "%s.conv", base);
    onnx_node_t *n = onnx_node(g, "Conv", y, (const char *[]){x, w, bias, NULL},
                               (const char *[]){y, NULL});
    onnx_attr_ints(g, n, "kernel_shape", 2, (const int64_t[]){d->K, d->K});
    onnx_attr_ints(g, n, "strides", 2, (const int64_t[]){d->stride, d->stride});
    onnx_attr_ints(g, n, "pads", 4, (const int64_t[]){d->pad, d->pad, d->pad, d->pad});
    onnx_attr_ints(g, n, "dilations", 2, (const int64_t[]){1, 1});
    if (onnx_failed(g))
        return NULL;
    return L->act ? L->act->emit(g, base, y, &L->out) : y;
}

const layer_kind_t layer_conv2d = {
    .name = "conv2d",
    .keys = KEYS,
    .param_prefix = "conv",
    .plan = conv_plan,
    .buffers = conv_buffers,
    .forward = conv_forward,
    .backward = conv_backward,
    .emit = conv_emit,
    .absorb = conv_absorb,
};
