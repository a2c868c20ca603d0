/* maxpool2d.c - max pooling over pool x pool windows, pool_stride apart
 * (0: pool), Keras 'valid' (floor): in [B][C][H][W] -> out [B][C][OH][OW],
 * OH = (H - pool) / stride + 1. When the windows tile the plane (stride =
 * pool) a convolution before it may absorb it (layer_kind_t.absorb). */
#include <stdint.h>
#include <string.h>

#include "common/nn/layer.h"
#include "export/onnx_graph.h"

enum { K_POOL, K_POOL_STRIDE };

static const layer_key_t KEYS[] = {
    POOL_WINDOW_KEYS,
    {NULL},
};

typedef pool_window_t pool_dims_t;

_Static_assert(sizeof(pool_dims_t) <= LAYER_PLAN_BYTES, "the window does not fit a layer plan");

/* L's plan data. */
static const pool_dims_t *dims_of(const layer_t *L)
{
    return (const pool_dims_t *)L->plan.bytes;
}

/* Needs [C,H,W] that holds a window; output [C,OH,OW]. Returns 0 or -1. */
static int maxpool_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    return pool_window_plan(L, c, K_POOL, b, (pool_dims_t *)L->plan.bytes, err);
}

/* One buffer: the argmax of each output, int32. */
static int maxpool_buffers(const layer_t *L, int B, size_t sizes[LAYER_MAX_BUFS])
{
    sizes[0] = (size_t)B * shape_size(&L->out) * sizeof(int32_t);
    return 1;
}

/* The 2x2, stride-2 case, branch-free: data-dependent branches here cost
 * more than the rest of the layer. First maximum in row-major window order,
 * like PyTorch. */
static void pool2x2_plane(float *dst, int32_t *am, const float *src, const pool_dims_t *d)
{
    for (int oh = 0; oh < d->OH; oh++) {
        const float *r0 = src + (size_t)(2 * oh) * d->W, *r1 = r0 + d->W;
        float *o = dst + oh * d->OW;
        int32_t *a = am + oh * d->OW;
        const int base = 2 * oh * d->W;
#pragma omp simd
        for (int ow = 0; ow < d->OW; ow++) {
            float a0 = r0[2 * ow], a1 = r0[2 * ow + 1];
            float b0 = r1[2 * ow], b1 = r1[2 * ow + 1];
            int ia = a1 > a0;
            float va = ia ? a1 : a0;
            int ib = b1 > b0;
            float vb = ib ? b1 : b0;
            int sel = vb > va;
            o[ow] = sel ? vb : va;
            a[ow] = base + 2 * ow + (sel ? d->W + ib : ia);
        }
    }
}

/* out = max over each window; the argmax buffer keeps the input index
 * (within the sample's channel plane) of each output's maximum. */
static void maxpool_forward(const layer_t *L, const layer_pass_t *x)
{
    const pool_dims_t *d = dims_of(L);
    const size_t planes = (size_t)x->B * d->C;
    const int HW = d->H * d->W, OP = d->OH * d->OW;
    int32_t *argmax = x->buf[0];
    for (size_t pl = 0; pl < planes; pl++) {
        const float *src = x->in + pl * HW;
        float *dst = x->out + pl * OP;
        int32_t *am = argmax + pl * OP;
        if (d->pool == 2 && d->stride == 2) {
            pool2x2_plane(dst, am, src, d);
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

/* Windows that tile the plane: every covered input is written once (the
 * gradient or 0), so no zeroing pass is needed; only rows and columns past
 * the last window are zeroed. */
static void unpool_tiled(float *din, const float *dout, const int32_t *argmax, size_t planes,
                         const pool_dims_t *d)
{
    const int HW = d->H * d->W, OP = d->OH * d->OW;
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
}

/* din (zeroed, then each output's gradient added at its argmax). */
static void maxpool_backward(const layer_t *L, const layer_pass_t *x)
{
    if (!x->din)
        return;
    const pool_dims_t *d = dims_of(L);
    const size_t planes = (size_t)x->B * d->C;
    const int32_t *argmax = x->buf[0];
    if (d->pool == d->stride) {
        unpool_tiled(x->din, x->dout, argmax, planes, d);
        return;
    }
    const int HW = d->H * d->W, OP = d->OH * d->OW;
    memset(x->din, 0, planes * HW * sizeof *x->din);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dst = x->din + pl * HW;
        const float *src = x->dout + pl * OP;
        const int32_t *am = argmax + pl * OP;
        for (int i = 0; i < OP; i++)
            dst[am[i]] += src[i];
    }
}

/* MaxPool (kernel_shape, strides; floor, no padding). */
static const char *maxpool_emit(onnx_graph_t *g, const layer_t *L, const char *base,
                                const char *x)
{
    const pool_dims_t *d = dims_of(L);
    onnx_node_t *n;
    const char *y = onnx_unary(g, "MaxPool", onnx_name(g, "%s.maxpool", base), x, &n);
    onnx_attr_ints(g, n, "kernel_shape", 2, (const int64_t[]){d->pool, d->pool});
    onnx_attr_ints(g, n, "strides", 2, (const int64_t[]){d->stride, d->stride});
    onnx_attr_ints(g, n, "pads", 4, (const int64_t[]){0, 0, 0, 0});
    return y;
}

/* The window when the windows tile the plane, else 0. */
static int maxpool_tiling(const layer_t *L)
{
    const pool_dims_t *d = dims_of(L);
    return d->stride == d->pool ? d->pool : 0;
}

const layer_kind_t layer_maxpool2d = {
    .name = "maxpool2d",
    .keys = KEYS,
    .plan = maxpool_plan,
    .buffers = maxpool_buffers,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .emit = maxpool_emit,
    .tiling_max_pool = maxpool_tiling,
};
