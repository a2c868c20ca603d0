/* tanh.c - the hyperbolic tangent: a layer kind, and an activation that
 * conv2d and dense apply to their output. */
#include "common/nn/layer.h"
#include "common/util/fastmath.h"
#include "export/onnx_graph.h"

/* y = tanh(x), vectorised (fastmath.h). */
static void tanh_forward(float *y, const float *x, size_t n, int n_cols)
{
    (void)n_cols;
    fast_tanhf_vec(y, x, n);
}

/* dx = dy (1 - y^2). */
static void tanh_backward(float *dx, const float *dy, const float *y, size_t n, int n_cols)
{
    (void)n_cols;
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

/* One Tanh node. */
static const char *tanh_emit(onnx_graph_t *g, const char *base, const char *x, const shape_t *s)
{
    (void)s;
    return onnx_unary(g, "Tanh", onnx_name(g, "%s.tanh", base), x, NULL);
}

const act_kind_t act_tanh = {
    .name = "tanh",
    .monotone = 1,
    .forward = tanh_forward,
    .backward = tanh_backward,
    .emit = tanh_emit,
};

const layer_kind_t layer_tanh = {
    .name = "tanh",
    .act = &act_tanh,
    .plan = act_layer_plan,
    .forward = act_layer_forward,
    .backward = act_layer_backward,
    .emit = act_layer_emit,
};
