/* avgpool2d.c - average pooling over pool x pool windows, pool_stride apart
 * (0: pool), Keras 'valid' (floor), like maxpool2d: in [B][C][H][W] ->
 * out [B][C][OH][OW], OH = (H - pool) / stride + 1, each output the mean of
 * its window. */
#include <string.h>

#include "common/nn/layer.h"
#include "export/onnx_graph.h"

enum { K_POOL, K_POOL_STRIDE };

static const layer_key_t KEYS[] = {
    POOL_WINDOW_KEYS,
    {NULL},
};

typedef pool_window_t avg_dims_t;

_Static_assert(sizeof(avg_dims_t) <= LAYER_PLAN_BYTES, "the window does not fit a layer plan");

/* L's plan data. */
static const avg_dims_t *dims_of(const layer_t *L)
{
    return (const avg_dims_t *)L->plan.bytes;
}

/* Needs [C,H,W] that holds a window; output [C,OH,OW]. Returns 0 or -1. */
static int avgpool_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    return pool_window_plan(L, c, K_POOL, b, (avg_dims_t *)L->plan.bytes, err);
}

/* out = the mean of each window (summed in float in row-major order). */
static void avgpool_forward(const layer_t *L, const layer_pass_t *x)
{
    const avg_dims_t *d = dims_of(L);
    const size_t planes = (size_t)x->B * d->C;
    const int HW = d->H * d->W, OP = d->OH * d->OW;
    const float inv = 1.0f / (float)(d->pool * d->pool);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *src = x->in + pl * HW;
        float *dst = x->out + pl * OP;
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                const float *win = src + (size_t)oh * d->stride * d->W + ow * d->stride;
                float s = 0.0f;
                for (int ph = 0; ph < d->pool; ph++)
                    for (int pw = 0; pw < d->pool; pw++)
                        s += win[ph * d->W + pw];
                dst[oh * d->OW + ow] = s * inv;
            }
    }
}

/* din (zeroed, then each output's gradient / pool^2 added over its window). */
static void avgpool_backward(const layer_t *L, const layer_pass_t *x)
{
    if (!x->din)
        return;
    const avg_dims_t *d = dims_of(L);
    const size_t planes = (size_t)x->B * d->C;
    const int HW = d->H * d->W, OP = d->OH * d->OW;
    const float inv = 1.0f / (float)(d->pool * d->pool);
    memset(x->din, 0, planes * HW * sizeof *x->din);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dst = x->din + pl * HW;
        const float *src = x->dout + pl * OP;
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                float *win = dst + (size_t)oh * d->stride * d->W + ow * d->stride;
                const float g = src[oh * d->OW + ow] * inv;
                for (int ph = 0; ph < d->pool; ph++)
                    for (int pw = 0; pw < d->pool; pw++)
                        win[ph * d->W + pw] += g;
            }
    }
}

/* AveragePool (kernel_shape, strides; floor, no padding). */
static const char *avgpool_emit(onnx_graph_t *g, const layer_t *L, const char *base,
                                const char *x)
{
    const avg_dims_t *d = dims_of(L);
    onnx_node_t *n;
    const char *y = onnx_unary(g, "AveragePool", onnx_name(g, "%s.avgpool", base), x, &n);
    onnx_attr_ints(g, n, "kernel_shape", 2, (const int64_t[]){d->pool, d->pool});
    onnx_attr_ints(g, n, "strides", 2, (const int64_t[]){d->stride, d->stride});
    onnx_attr_ints(g, n, "pads", 4, (const int64_t[]){0, 0, 0, 0});
    return y;
}

const layer_kind_t layer_avgpool2d = {
    .name = "avgpool2d",
    .keys = KEYS,
    .plan = avgpool_plan,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .emit = avgpool_emit,
};
