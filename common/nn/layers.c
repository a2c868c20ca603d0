/* layers.c - forward and backward passes of every layer (see layers.h for
 * layouts and conventions). */
#include "common/nn/layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "common/util/fastmath.h"

/* ---------------------------------------------------------------- activations */

void act_forward(float *y, const float *x, size_t n, int n_cols, act_t act)
{
    switch (act) {
    case ACT_NONE:
        if (y != x)
            memmove(y, x, n * sizeof *y);
        break;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case ACT_SIGMOID:
        fast_sigmoid(y, x, n);
        break;
    case ACT_TANH:
        fast_tanh(y, x, n);
        break;
    case ACT_SOFTMAX:
        for (size_t r = 0; r < n / (size_t)n_cols; r++) {
            const float *xr = x + r * n_cols;
            float *yr = y + r * n_cols;
            float mx = xr[0];
            for (int j = 1; j < n_cols; j++)
                mx = xr[j] > mx ? xr[j] : mx;
            float sum = 0.0f;
            for (int j = 0; j < n_cols; j++) {
                yr[j] = expf(xr[j] - mx);
                sum += yr[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < n_cols; j++)
                yr[j] *= inv;
        }
        break;
    }
}

void act_backward(float *dx, const float *dy, const float *y, size_t n, int n_cols, act_t act)
{
    switch (act) {
    case ACT_NONE:
        if (dx != dy)
            memmove(dx, dy, n * sizeof *dx);
        break;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    case ACT_SOFTMAX:
        for (size_t r = 0; r < n / (size_t)n_cols; r++) {
            const float *dyr = dy + r * n_cols, *yr = y + r * n_cols;
            float *dxr = dx + r * n_cols;
            float s = 0.0f;
            for (int j = 0; j < n_cols; j++)
                s += dyr[j] * yr[j];
            for (int j = 0; j < n_cols; j++)
                dxr[j] = yr[j] * (dyr[j] - s);
        }
        break;
    }
}

/* --------------------------------------------------------------------- conv2d */

int conv_dims_fill(conv_dims_t *d)
{
    if (d->K < 1 || d->stride < 1 || d->pad < 0 || d->H + 2 * d->pad < d->K ||
        d->W + 2 * d->pad < d->K)
        return -1;
    d->OH = (d->H + 2 * d->pad - d->K) / d->stride + 1;
    d->OW = (d->W + 2 * d->pad - d->K) / d->stride + 1;
    return 0;
}

size_t conv_col_size(const conv_dims_t *d)
{
    return (size_t)d->C * d->K * d->K * d->B * d->OH * d->OW;
}

size_t conv_tmp_size(const conv_dims_t *d)
{
    return (size_t)d->F * d->B * d->OH * d->OW;
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

void conv2d_forward(float *out, float *col, float *tmp, const float *in, const float *w,
                    const float *b, const conv_dims_t *d, act_t act)
{
    const int P = d->OH * d->OW, CKK = d->C * d->K * d->K;
    const int BP = d->B * P;
    im2col(col, in, d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->F, BP, CKK, 1.0f, w, CKK, col, BP,
                0.0f, tmp, BP);
    /* tmp [F][B][P] -> out [B][F][P], adding the bias (and ReLU) on the way. */
    for (int bi = 0; bi < d->B; bi++)
        for (int f = 0; f < d->F; f++) {
            const float *src = tmp + (size_t)f * BP + (size_t)bi * P;
            float *dst = out + ((size_t)bi * d->F + f) * P;
            const float bf = b[f];
            if (act == ACT_RELU) {
#pragma omp simd
                for (int p = 0; p < P; p++) {
                    float v = src[p] + bf;
                    dst[p] = v > 0.0f ? v : 0.0f;
                }
            } else {
#pragma omp simd
                for (int p = 0; p < P; p++)
                    dst[p] = src[p] + bf;
            }
        }
    if (act != ACT_NONE && act != ACT_RELU)
        act_forward(out, out, (size_t)d->B * d->F * P, d->F * P, act);
}

void conv2d_backward(float *din, float *dw, float *db, float *dout, float *tmp, float *col,
                     const float *out, const float *w, const conv_dims_t *d, act_t act)
{
    const int P = d->OH * d->OW, CKK = d->C * d->K * d->K;
    const int BP = d->B * P;
    if (act != ACT_NONE && act != ACT_RELU)
        act_backward(dout, dout, out, (size_t)d->B * d->F * P, d->F * P, act);
    /* dout [B][F][P] -> tmp [F][B][P] (through the ReLU mask), summing db. */
    for (int f = 0; f < d->F; f++) {
        float sum = 0.0f;
        for (int bi = 0; bi < d->B; bi++) {
            const float *src = dout + ((size_t)bi * d->F + f) * P;
            const float *y = out + ((size_t)bi * d->F + f) * P;
            float *dst = tmp + (size_t)f * BP + (size_t)bi * P;
            /* omp simd reduction: the sum is vectorised (its rounding is
             * fixed by the build, so results stay reproducible) */
            if (act == ACT_RELU) {
#pragma omp simd reduction(+ : sum)
                for (int p = 0; p < P; p++) {
                    float g = y[p] > 0.0f ? src[p] : 0.0f;
                    dst[p] = g;
                    sum += g;
                }
            } else {
#pragma omp simd reduction(+ : sum)
                for (int p = 0; p < P; p++) {
                    dst[p] = src[p];
                    sum += src[p];
                }
            }
        }
        db[f] += sum;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->F, CKK, BP, 1.0f, tmp, BP, col, BP,
                1.0f, dw, CKK);
    if (din) {
        /* col is free now: it takes dcol = w^T tmp */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, BP, d->F, 1.0f, w, CKK, tmp, BP,
                    0.0f, col, BP);
        col2im(din, col, d);
    }
}

/* ------------------------------------------------------ conv2d + maxpool fused */

int convpool_dims_fill(convpool_dims_t *d)
{
    if (conv_dims_fill(&d->c) != 0 || d->pool < 1 || d->pool > 15 || d->c.OH < d->pool ||
        d->c.OW < d->pool)
        return -1;
    d->PH = d->c.OH / d->pool;
    d->PW = d->c.OW / d->pool;
    return 0;
}

size_t convpool_tmp_size(const convpool_dims_t *d)
{
    return (size_t)d->c.B * d->c.OH * d->c.OW * d->c.F;
}

size_t convpool_pooled_size(const convpool_dims_t *d)
{
    return (size_t)d->c.B * d->PH * d->PW * d->c.F;
}

void conv2d_pool_forward(float *out, uint8_t *code, float *col, float *tmp, float *pn,
                         const float *in, const float *w, const float *b,
                         const convpool_dims_t *d, act_t act)
{
    const conv_dims_t *c = &d->c;
    const int F = c->F, CKK = c->C * c->K * c->K, P = c->OH * c->OW, BP = c->B * P;
    const int p = d->pool, PHW = d->PH * d->PW;
    im2col(col, in, c);
    /* channels-last conv output: tmp [B*P][F] = col^T w^T */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, BP, F, CKK, 1.0f, col, BP, w, CKK, 0.0f,
                tmp, F);
    for (int bi = 0; bi < c->B; bi++) {
        const float *tb = tmp + (size_t)bi * P * F;
        for (int ph = 0; ph < d->PH; ph++)
            for (int pw = 0; pw < d->PW; pw++) {
                const size_t q = ((size_t)bi * PHW + ph * d->PW + pw) * F;
                float *best = pn + q;
                uint8_t *cd = code + q;
                const float *first = tb + ((size_t)(ph * p) * c->OW + pw * p) * F;
                memcpy(best, first, F * sizeof *best);
                memset(cd, 0, (size_t)F);
                for (int i = 0; i < p; i++)
                    for (int j = 0; j < p; j++) {
                        if (i == 0 && j == 0)
                            continue;
                        const float *x = tb + ((size_t)(ph * p + i) * c->OW + pw * p + j) * F;
                        const uint8_t k = (uint8_t)(i * p + j);
#pragma omp simd
                        for (int f = 0; f < F; f++) {
                            int gt = x[f] > best[f];
                            best[f] = gt ? x[f] : best[f];
                            cd[f] = gt ? k : cd[f];
                        }
                    }
#pragma omp simd
                for (int f = 0; f < F; f++) {
                    float v = best[f] + b[f];
                    best[f] = (act == ACT_RELU && v < 0.0f) ? 0.0f : v;
                }
            }
        /* pn [PHW][F] -> out [F][PHW] for this sample */
        const float *src = pn + (size_t)bi * PHW * F;
        float *dst = out + (size_t)bi * F * PHW;
        for (int q = 0; q < PHW; q++)
            for (int f = 0; f < F; f++)
                dst[(size_t)f * PHW + q] = src[(size_t)q * F + f];
    }
    if (act != ACT_NONE && act != ACT_RELU)
        act_forward(out, out, (size_t)c->B * F * PHW, F * PHW, act);
}

void conv2d_pool_backward(float *din, float *dw, float *db, const float *dout, const float *out,
                          const uint8_t *code, float *col, float *tmp, float *pn, const float *w,
                          const convpool_dims_t *d, act_t act)
{
    const conv_dims_t *c = &d->c;
    const int F = c->F, CKK = c->C * c->K * c->K, P = c->OH * c->OW, BP = c->B * P;
    const int p = d->pool, PHW = d->PH * d->PW;
    for (int bi = 0; bi < c->B; bi++) {
        /* pooled gradient through the activation, to channels-last pn [PHW][F] */
        const float *src = dout + (size_t)bi * F * PHW, *y = out + (size_t)bi * F * PHW;
        float *g = pn + (size_t)bi * PHW * F;
        for (int f = 0; f < F; f++)
            for (int q = 0; q < PHW; q++) {
                size_t k = (size_t)f * PHW + q;
                float v = src[k];
                if (act == ACT_RELU)
                    v = y[k] > 0.0f ? v : 0.0f;
                else if (act == ACT_SIGMOID)
                    v *= y[k] * (1.0f - y[k]);
                else if (act == ACT_TANH)
                    v *= 1.0f - y[k] * y[k];
                g[(size_t)q * F + f] = v;
            }
        /* scatter to the window position each value came from: every
         * covered pixel is written once, so no zeroing pass is needed */
        float *tb = tmp + (size_t)bi * P * F;
        for (int ph = 0; ph < d->PH; ph++)
            for (int pw = 0; pw < d->PW; pw++) {
                const size_t q = ((size_t)ph * d->PW + pw) * F;
                const float *gq = g + q;
                const uint8_t *cd = code + (size_t)bi * PHW * F + q;
                for (int i = 0; i < p; i++)
                    for (int j = 0; j < p; j++) {
                        float *x = tb + ((size_t)(ph * p + i) * c->OW + pw * p + j) * F;
                        const uint8_t k = (uint8_t)(i * p + j);
#pragma omp simd
                        for (int f = 0; f < F; f++)
                            x[f] = cd[f] == k ? gq[f] : 0.0f;
                    }
            }
        /* rows and columns past the last window get no gradient */
        for (int oh = 0; oh < c->OH; oh++)
            for (int ow = 0; ow < c->OW; ow++)
                if (oh >= d->PH * p || ow >= d->PW * p)
                    memset(tb + ((size_t)oh * c->OW + ow) * F, 0, F * sizeof(float));
    }
    /* db: each pooled gradient lands on exactly one pixel */
    for (size_t q = 0; q < (size_t)c->B * PHW; q++) {
        const float *gq = pn + q * F;
#pragma omp simd
        for (int f = 0; f < F; f++)
            db[f] += gq[f];
    }
    /* dw [F][CKK] += tmp^T col^T */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, F, CKK, BP, 1.0f, tmp, F, col, BP, 1.0f, dw,
                CKK);
    if (din) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, CKK, BP, F, 1.0f, w, CKK, tmp, F, 0.0f,
                    col, BP);
        col2im(din, col, c);
    }
}

/* ------------------------------------------------------------------ maxpool2d */

int pool_dims_fill(pool_dims_t *d)
{
    if (d->pool < 1 || d->stride < 1 || d->H < d->pool || d->W < d->pool)
        return -1;
    d->OH = (d->H - d->pool) / d->stride + 1;
    d->OW = (d->W - d->pool) / d->stride + 1;
    return 0;
}

void maxpool2d_forward(float *out, int32_t *argmax, const float *in, const pool_dims_t *d)
{
    const size_t planes = (size_t)d->B * d->C;
    const int HW = d->H * d->W, OP = d->OH * d->OW;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *src = in + pl * HW;
        float *dst = out + pl * OP;
        int32_t *am = argmax + pl * OP;
        if (d->pool == 2 && d->stride == 2) {
            /* the common case, branch-free: data-dependent branches here
             * cost more than the rest of the layer */
            for (int oh = 0; oh < d->OH; oh++) {
                const float *r0 = src + (size_t)(2 * oh) * d->W, *r1 = r0 + d->W;
                float *o = dst + oh * d->OW;
                int32_t *a = am + oh * d->OW;
                const int base = 2 * oh * d->W;
#pragma omp simd
                for (int ow = 0; ow < d->OW; ow++) {
                    float a0 = r0[2 * ow], a1 = r0[2 * ow + 1];
                    float b0 = r1[2 * ow], b1 = r1[2 * ow + 1];
                    /* first maximum in row-major window order, like PyTorch */
                    int ia = a1 > a0;
                    float va = ia ? a1 : a0;
                    int ib = b1 > b0;
                    float vb = ib ? b1 : b0;
                    int sel = vb > va;
                    o[ow] = sel ? vb : va;
                    a[ow] = base + 2 * ow + (sel ? d->W + ib : ia);
                }
            }
            continue;
        }
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                int bi = oh * d->stride * d->W + ow * d->stride;
                float best = src[bi];
                for (int ph = 0; ph < d->pool; ph++)
                    for (int pw = 0; pw < d->pool; pw++) {
                        int i = (oh * d->stride + ph) * d->W + ow * d->stride + pw;
                        if (src[i] > best) {
                            best = src[i];
                            bi = i;
                        }
                    }
                dst[oh * d->OW + ow] = best;
                am[oh * d->OW + ow] = bi;
            }
    }
}

void maxpool2d_backward(float *din, const float *dout, const int32_t *argmax, const pool_dims_t *d)
{
    const size_t planes = (size_t)d->B * d->C;
    const int HW = d->H * d->W, OP = d->OH * d->OW;
    if (d->pool == d->stride) {
        /* Windows tile the plane without overlap: write every covered input
         * once (the gradient or 0), so no separate zeroing pass is needed;
         * only rows and columns past the last window are zeroed. */
        const int P = d->pool, covered_w = d->OW * P, covered_h = d->OH * P;
        for (size_t pl = 0; pl < planes; pl++) {
            float *dst = din + pl * HW;
            const float *src = dout + pl * OP;
            const int32_t *am = argmax + pl * OP;
            for (int oh = 0; oh < d->OH; oh++) {
                for (int ph = 0; ph < P; ph++) {
                    float *row = dst + (size_t)(oh * P + ph) * d->W;
                    const int rbase = (oh * P + ph) * d->W;
#pragma omp simd
                    for (int iw = 0; iw < covered_w; iw++) {
                        int k = oh * d->OW + iw / P;
                        row[iw] = am[k] == rbase + iw ? src[k] : 0.0f;
                    }
                    for (int iw = covered_w; iw < d->W; iw++)
                        row[iw] = 0.0f;
                }
            }
            if (covered_h < d->H)
                memset(dst + (size_t)covered_h * d->W, 0,
                       (size_t)(d->H - covered_h) * d->W * sizeof *dst);
        }
        return;
    }
    memset(din, 0, planes * HW * sizeof *din);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dst = din + pl * HW;
        const float *src = dout + pl * OP;
        const int32_t *am = argmax + pl * OP;
        for (int i = 0; i < OP; i++)
            dst[am[i]] += src[i];
    }
}

/* ---------------------------------------------------------------------- dense */

void dense_forward(float *out, const float *in, const float *w, const float *b, int B, int In,
                   int O, act_t act)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, O, In, 1.0f, in, In, w, In, 0.0f, out, O);
    for (int r = 0; r < B; r++) {
        float *row = out + (size_t)r * O;
        for (int j = 0; j < O; j++)
            row[j] += b[j];
    }
    if (act != ACT_NONE)
        act_forward(out, out, (size_t)B * O, O, act);
}

void dense_backward(float *din, float *dw, float *db, float *dout, const float *out,
                    const float *in, const float *w, int B, int In, int O, act_t act)
{
    if (act != ACT_NONE)
        act_backward(dout, dout, out, (size_t)B * O, O, act);
    for (int r = 0; r < B; r++) {
        const float *row = dout + (size_t)r * O;
        for (int j = 0; j < O; j++)
            db[j] += row[j];
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, In, B, 1.0f, dout, O, in, In, 1.0f, dw, In);
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, In, O, 1.0f, dout, O, w, In, 0.0f,
                    din, In);
}

/* ----------------------------------------------------------------------- lstm */

void lstm_buf_sizes(const lstm_dims_t *d, size_t sizes[9])
{
    size_t TB = (size_t)d->T * d->B;
    sizes[0] = TB * d->In;                   /* x_tm */
    sizes[1] = TB * 4 * d->H;               /* gates */
    sizes[2] = (TB + d->B) * d->H;          /* h */
    sizes[3] = (TB + d->B) * d->H;          /* c */
    sizes[4] = TB * d->H;                   /* tanh_c */
    sizes[5] = TB * 4 * d->H;               /* dgates */
    sizes[6] = (size_t)d->B * d->H;         /* dh */
    sizes[7] = (size_t)d->B * d->H;         /* dc */
    sizes[8] = TB * d->In;                   /* dx_tm */
}

size_t lstm_buf_bind(lstm_buf_t *b, float *mem, const lstm_dims_t *d)
{
    size_t sz[9], total = 0;
    lstm_buf_sizes(d, sz);
    float **slots[9] = {&b->x_tm, &b->gates, &b->h,  &b->c,    &b->tanh_c,
                        &b->dgates, &b->dh, &b->dc, &b->dx_tm};
    for (int i = 0; i < 9; i++) {
        if (mem)
            *slots[i] = mem + total;
        total += sz[i];
    }
    return total;
}

void lstm_forward(float *out, const lstm_buf_t *buf, const float *in, const float *w_ih,
                  const float *w_hh, const float *bias, const lstm_dims_t *d)
{
    const int B = d->B, T = d->T, In = d->In, H = d->H, G = 4 * H;
    const size_t BH = (size_t)B * H, BG = (size_t)B * G;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(buf->x_tm + ((size_t)t * B + b) * In, in + ((size_t)b * T + t) * In,
                   (size_t)In * sizeof(float));
    /* input projection of every step at once: gates [T*B][4H] = x_tm w_ih^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T * B, G, In, 1.0f, buf->x_tm, In, w_ih, In,
                0.0f, buf->gates, G);
    memset(buf->h, 0, BH * sizeof(float));
    memset(buf->c, 0, BH * sizeof(float));
    for (int t = 0; t < T; t++) {
        float *gt = buf->gates + t * BG;
        const float *hp = buf->h + t * BH, *cp = buf->c + t * BH;
        float *hn = buf->h + (t + 1) * BH, *cn = buf->c + (t + 1) * BH;
        float *tc = buf->tanh_c + t * BH;
        if (t > 0) /* h_0 = 0 adds nothing */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, G, H, 1.0f, hp, H, w_hh, H,
                        1.0f, gt, G);
        for (int b = 0; b < B; b++) {
            float *g = gt + (size_t)b * G;
            for (int j = 0; j < G; j++)
                g[j] += bias[j];
            fast_sigmoid(g, g, 2 * (size_t)H);           /* i, f */
            fast_tanh(g + 2 * H, g + 2 * H, (size_t)H);  /* g */
            fast_sigmoid(g + 3 * H, g + 3 * H, (size_t)H); /* o */
            const float *cpb = cp + (size_t)b * H;
            float *cnb = cn + (size_t)b * H, *tcb = tc + (size_t)b * H, *hnb = hn + (size_t)b * H;
            for (int j = 0; j < H; j++)
                cnb[j] = g[H + j] * cpb[j] + g[j] * g[2 * H + j];
            fast_tanh(tcb, cnb, (size_t)H);
            for (int j = 0; j < H; j++)
                hnb[j] = g[3 * H + j] * tcb[j];
        }
    }
    if (d->return_sequences) {
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++)
                memcpy(out + ((size_t)b * T + t) * H, buf->h + (t + 1) * BH + (size_t)b * H,
                       (size_t)H * sizeof(float));
    } else {
        memcpy(out, buf->h + T * BH, BH * sizeof(float));
    }
}

void lstm_backward(float *din, float *dw_ih, float *dw_hh, float *dbias, const float *dout,
                   const lstm_buf_t *buf, const float *w_ih, const float *w_hh,
                   const lstm_dims_t *d)
{
    const int B = d->B, T = d->T, In = d->In, H = d->H, G = 4 * H;
    const size_t BH = (size_t)B * H, BG = (size_t)B * G;
    float *dh = buf->dh, *dc = buf->dc;
    memset(dh, 0, BH * sizeof(float));
    memset(dc, 0, BH * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        const float *gt = buf->gates + t * BG;
        const float *cp = buf->c + t * BH, *tc = buf->tanh_c + t * BH;
        float *dg = buf->dgates + t * BG;
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
        if (t > 0) /* dh_{t-1} = dgates_t w_hh */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, G, 1.0f, dg, G, w_hh, H,
                        0.0f, dh, H);
    }
    /* weight gradients over all steps at once */
    if (T > 1)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, H, (T - 1) * B, 1.0f,
                    buf->dgates + BG, G, buf->h + BH, H, 1.0f, dw_hh, H);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, G, In, T * B, 1.0f, buf->dgates, G,
                buf->x_tm, In, 1.0f, dw_ih, In);
    for (size_t r = 0; r < (size_t)T * B; r++) {
        const float *row = buf->dgates + r * G;
        for (int j = 0; j < G; j++)
            dbias[j] += row[j];
    }
    if (din) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T * B, In, G, 1.0f, buf->dgates, G,
                    w_ih, In, 0.0f, buf->dx_tm, In);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                memcpy(din + ((size_t)b * T + t) * In, buf->dx_tm + ((size_t)t * B + b) * In,
                       (size_t)In * sizeof(float));
    }
}
