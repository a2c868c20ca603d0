/* onnx_graph.h - the ONNX graph builder of export/onnx.c, for the layer
 * kinds' emitters (layer_kind_t.emit, act_kind_t.emit): nodes,
 * attributes and initializers of the graph being written.
 *
 * Everything a call returns (names, nodes) lives in the builder's arena and
 * is freed with the builder. Calls have a sticky error, like a stdio
 * stream's: after the first failure each call does nothing and returns NULL
 * (a NULL name or node passed in counts as that failure), so an emitter
 * reads as a straight line and returns the name it got, NULL or not. */
#ifndef PST_ONNX_GRAPH_H
#define PST_ONNX_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "common/nn/params.h"

typedef struct onnx_graph_t onnx_graph_t;
struct Onnx__NodeProto;
typedef struct Onnx__NodeProto onnx_node_t;

/* Returns the formatted string in the arena (a node or value name), or NULL. */
const char *onnx_name(onnx_graph_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns n zeroed bytes in the arena, or NULL. */
void *onnx_alloc(onnx_graph_t *g, size_t n);

/* 1 once a call has failed. */
int onnx_failed(const onnx_graph_t *g);

/* Marks g failed with the message (the first failure wins). Returns NULL. */
void *onnx_fail(onnx_graph_t *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The name of the model's input (after the lookups and the normalisation
 * the graph applies first), which a layer reading it besides its own input
 * (layer_t.input_tail) slices. Returns it, or NULL. */
const char *onnx_model_input(onnx_graph_t *g);

/* Appends a node of op_type (default domain) named name, with the inputs and
 * outputs of two NULL-terminated lists ("" for an optional one left out).
 * Returns the node, or NULL. */
onnx_node_t *onnx_node(onnx_graph_t *g, const char *op_type, const char *name,
                       const char *const *in, const char *const *out);

/* One node of one input whose one output is named after the node; *node
 * (if not NULL) gets the node. Returns the output's name, or NULL. */
const char *onnx_unary(onnx_graph_t *g, const char *op_type, const char *name, const char *x,
                       onnx_node_t **node);

/* Attributes of node n (NULL: nothing happens): one integer, a list of them. */
void onnx_attr_int(onnx_graph_t *g, onnx_node_t *n, const char *name, int64_t v);
void onnx_attr_ints(onnx_graph_t *g, onnx_node_t *n, const char *name, int count,
                    const int64_t *v);

/* Adds a float32 initializer of ndim dims holding data[0 .. product of
 * dims). Returns its name, or NULL. */
const char *onnx_init_floats(onnx_graph_t *g, const char *name, int ndim, const int64_t *dims,
                             const float *data);

/* Adds a 1-D int64 initializer of the n values v. Returns its name, or NULL. */
const char *onnx_init_int64s(onnx_graph_t *g, const char *name, int n, const int64_t *v);

/* Element types of graph inputs (ONNX's TensorProto.DataType). */
#define ONNX_ELEM_FLOAT 1
#define ONNX_ELEM_INT64 7

/* Declares a graph input of elem_type, [N, shape[0..rank)) with N
 * symbolic, in the order declared. Returns its name, or NULL. */
const char *onnx_input(onnx_graph_t *g, const char *name, int elem_type, int rank,
                       const int *shape);

/* Adds the float32 initializer [rows, dim] of embedding table `table` of
 * the trained model, named name; its data is streamed when the file is
 * written (export/onnx_tables.h), inline or as external data. Returns its
 * name, or NULL. */
const char *onnx_init_table(onnx_graph_t *g, const char *name, int table, int64_t rows,
                            int64_t dim);

/* Adds parameter tensor idx of the model as an initializer, named and
 * shaped as in the parameter table. Returns its name, or NULL. */
const char *onnx_init_param(onnx_graph_t *g, int idx);

/* The spec and values of parameter tensor idx (for emitters that
 * rearrange a tensor before adding it). */
const param_spec_t *onnx_param_spec(const onnx_graph_t *g, int idx);
const float *onnx_param_data(const onnx_graph_t *g, int idx);

#endif
