/* global_avgpool2d.c - the mean of each channel's whole plane:
 * in [B][C][H][W] -> out [B][C], flat (Keras GlobalAveragePooling2D,
 * PyTorch AdaptiveAvgPool2d(1) + flatten). */
#include "common/nn/layer.h"
#include "export/onnx_graph.h"

/* Needs [C,H,W]; output [C]. Returns 0 or -1. */
static int gap_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    (void)c;
    char shp[64];
    if (L->in.rank != 3)
        return err_set(err, "%s: needs an image input [C,H,W], got %s", b->where,
                       shape_str(shp, sizeof shp, &L->in));
    L->out = (shape_t){1, {L->in.dim[0]}};
    return 0;
}

/* out[b][c] = mean of plane (b, c), summed in double. */
static void gap_forward(const layer_t *L, const layer_pass_t *x)
{
    const size_t planes = (size_t)x->B * L->in.dim[0];
    const int HW = L->in.dim[1] * L->in.dim[2];
    for (size_t pl = 0; pl < planes; pl++) {
        const float *src = x->in + pl * HW;
        double s = 0.0;
        for (int i = 0; i < HW; i++)
            s += src[i];
        x->out[pl] = (float)(s / HW);
    }
}

/* din[b][c][:] = dout[b][c] / (H W). */
static void gap_backward(const layer_t *L, const layer_pass_t *x)
{
    if (!x->din)
        return;
    const size_t planes = (size_t)x->B * L->in.dim[0];
    const int HW = L->in.dim[1] * L->in.dim[2];
    const float inv = 1.0f / (float)HW;
    for (size_t pl = 0; pl < planes; pl++) {
        float *dst = x->din + pl * HW;
        const float g = x->dout[pl] * inv;
        for (int i = 0; i < HW; i++)
            dst[i] = g;
    }
}

/* GlobalAveragePool ([N,C,1,1]) + Flatten axis 1 ([N,C]). */
static const char *gap_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x)
{
    (void)L;
    onnx_node_t *n;
    const char *p = onnx_unary(g, "GlobalAveragePool", onnx_name(g, "%s.gap", base), x, NULL);
    const char *y = onnx_unary(g, "Flatten", onnx_name(g, "%s.gap_flat", base), p, &n);
    onnx_attr_int(g, n, "axis", 1);
    return y;
}

const layer_kind_t layer_global_avgpool2d = {
    .name = "global_avgpool2d",
    .plan = gap_plan,
    .forward = gap_forward,
    .backward = gap_backward,
    .emit = gap_emit,
};
