/* relu.c - the rectifier max(x, 0): a layer kind, and an activation that
 * conv2d and dense apply to their output (activation = "relu"). */
#include <string.h>

#include "common/nn/layer.h"
#include "export/onnx_graph.h"

/* y = max(x, 0); a NaN gives 0. */
static void relu_forward(float *y, const float *x, size_t n, int n_cols)
{
    (void)n_cols;
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx = dy where the output is positive, else 0. */
static void relu_backward(float *dx, const float *dy, const float *y, size_t n, int n_cols)
{
    (void)n_cols;
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* One Relu node. */
static const char *relu_emit(onnx_graph_t *g, const char *base, const char *x, const shape_t *s)
{
    (void)s;
    return onnx_unary(g, "Relu", onnx_name(g, "%s.relu", base), x, NULL);
}

const act_kind_t act_relu = {
    .name = "relu",
    .monotone = 1,
    .forward = relu_forward,
    .backward = relu_backward,
    .emit = relu_emit,
};

const layer_kind_t layer_relu = {
    .name = "relu",
    .act = &act_relu,
    .plan = act_layer_plan,
    .forward = act_layer_forward,
    .backward = act_layer_backward,
    .emit = act_layer_emit,
};
