/* softmax.c - softmax over each row: a layer kind (over each sample's whole
 * output), an activation of conv2d and dense, and the row-normalising
 * activation that the cross-entropy loss applies itself (fused). One kernel
 * serves all three, so training, evaluation and prediction compute the same
 * probabilities. */
#include <math.h>

#include "common/nn/layer.h"
#include "export/onnx_graph.h"

/* y = softmax(x) over one row of n: e_j = expf(x_j - max x), summed in
 * double, times the float 1/sum. *shift = max x and *sum = the double sum,
 * so that log y_j = x_j - shift - log(sum) exactly, even where y_j underflows. */
static void softmax_row(float *y, const float *x, int n, float *shift, double *sum)
{
    float mx = x[0];
    for (int j = 1; j < n; j++)
        mx = x[j] > mx ? x[j] : mx;
    double s = 0.0;
    for (int j = 0; j < n; j++) {
        y[j] = expf(x[j] - mx);
        s += y[j];
    }
    float inv = (float)(1.0 / s);
    for (int j = 0; j < n; j++)
        y[j] *= inv;
    *shift = mx;
    *sum = s;
}

/* Each row of n_cols of x, n values in all; x and y may alias. */
static void softmax_forward(float *y, const float *x, size_t n, int n_cols)
{
    float shift;
    double sum;
    for (size_t r = 0; r < n / (size_t)n_cols; r++)
        softmax_row(y + r * n_cols, x + r * n_cols, n_cols, &shift, &sum);
}

/* dx = y (dy - sum_j dy_j y_j) per row. */
static void softmax_backward(float *dx, const float *dy, const float *y, size_t n, int n_cols)
{
    for (size_t r = 0; r < n / (size_t)n_cols; r++) {
        const float *dyr = dy + r * n_cols, *yr = y + r * n_cols;
        float *dxr = dx + r * n_cols;
        float s = 0.0f;
        for (int j = 0; j < n_cols; j++)
            s += dyr[j] * yr[j];
        for (int j = 0; j < n_cols; j++)
            dxr[j] = yr[j] * (dyr[j] - s);
    }
}

/* Softmax over each sample's whole output of shape s: Softmax on the last
 * axis for a flat sample, else Flatten + Softmax + Reshape back. */
static const char *softmax_emit(onnx_graph_t *g, const char *base, const char *x,
                                const shape_t *s)
{
    onnx_node_t *n;
    if (s->rank == 1) {
        const char *y = onnx_unary(g, "Softmax", onnx_name(g, "%s.softmax", base), x, &n);
        onnx_attr_int(g, n, "axis", -1);
        return y;
    }
    const char *flat = onnx_unary(g, "Flatten", onnx_name(g, "%s.softmax_flat", base), x, &n);
    onnx_attr_int(g, n, "axis", 1);
    const char *sm = onnx_unary(g, "Softmax", onnx_name(g, "%s.softmax", base), flat, &n);
    onnx_attr_int(g, n, "axis", -1);
    int64_t to[4] = {0}; /* 0: the batch dim of the input (allowzero = 0) */
    for (int i = 0; i < s->rank; i++)
        to[1 + i] = s->dim[i];
    const char *shp = onnx_init_int64s(g, onnx_name(g, "%s.softmax_shape", base), s->rank + 1, to);
    const char *y = onnx_name(g, "%s.softmax_out", base);
    onnx_node(g, "Reshape", onnx_name(g, "%s.softmax_reshape", base),
              (const char *[]){sm, shp, NULL}, (const char *[]){y, NULL});
    return onnx_failed(g) ? NULL : y;
}

const act_kind_t act_softmax = {
    .name = "softmax",
    .row_normalising = 1,
    .forward = softmax_forward,
    .backward = softmax_backward,
    .normalise_row = softmax_row,
    .emit = softmax_emit,
};

const layer_kind_t layer_softmax = {
    .name = "softmax",
    .act = &act_softmax,
    .plan = act_layer_plan,
    .forward = act_layer_forward,
    .backward = act_layer_backward,
    .emit = act_layer_emit,
};
