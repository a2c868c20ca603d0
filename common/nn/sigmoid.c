/* sigmoid.c - the logistic function 1 / (1 + e^-x): a layer kind, and an
 * activation that conv2d and dense apply to their output. */
#include "common/nn/layer.h"
#include "common/util/fastmath.h"
#include "export/onnx_graph.h"

/* y = 1 / (1 + e^-x), vectorised (fastmath.h). */
static void sigmoid_forward(float *y, const float *x, size_t n, int n_cols)
{
    (void)n_cols;
    fast_sigmoidf_vec(y, x, n);
}

/* dx = dy y (1 - y). */
static void sigmoid_backward(float *dx, const float *dy, const float *y, size_t n, int n_cols)
{
    (void)n_cols;
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

/* One Sigmoid node. */
static const char *sigmoid_emit(onnx_graph_t *g, const char *base, const char *x,
                                const shape_t *s)
{
    (void)s;
    return onnx_unary(g, "Sigmoid", onnx_name(g, "%s.sigmoid", base), x, NULL);
}

const act_kind_t act_sigmoid = {
    .name = "sigmoid",
    .monotone = 1,
    .binary_probability = 1,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
    .emit = sigmoid_emit,
};

const layer_kind_t layer_sigmoid = {
    .name = "sigmoid",
    .act = &act_sigmoid,
    .plan = act_layer_plan,
    .forward = act_layer_forward,
    .backward = act_layer_backward,
    .emit = act_layer_emit,
};
