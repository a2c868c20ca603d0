/* flatten.c - a sample of any shape read as a flat vector (C, H, W order,
 * as stored): the model lets it share its input's memory, so it costs
 * nothing. */
#include "common/nn/layer.h"
#include "export/onnx_graph.h"

/* Output [C*H*W] (or [T*F]). Returns 0. */
static int flatten_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    (void)c;
    (void)b;
    (void)err;
    L->out.rank = 1;
    L->out.dim[0] = shape_size(&L->in);
    return 0;
}

/* Flatten from axis 1 (NCHW, C order, as ours). */
static const char *flatten_emit(onnx_graph_t *g, const layer_t *L, const char *base,
                                const char *x)
{
    (void)L;
    onnx_node_t *n;
    const char *y = onnx_unary(g, "Flatten", onnx_name(g, "%s.flatten", base), x, &n);
    onnx_attr_int(g, n, "axis", 1);
    return y;
}

const layer_kind_t layer_flatten = {
    .name = "flatten",
    .alias = 1,
    .plan = flatten_plan,
    .emit = flatten_emit,
};
