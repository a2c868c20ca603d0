/* onnx_tables.h - a sparse model's embedding tables in its ONNX file
 * (export/onnx.c calls these): the lookups at the head of the graph, and
 * the file written with the tables' data streamed from the row files
 * (export/tables.h), never held whole in memory.
 *
 * Serving contract of a model with model.sparse:
 *   input  "num"    float32 [N,D]: the D dense (numeric) features of a sample as
 *                   training saw them (for a Criteo line, log(1 + max(I, 0)),
 *                   0 when empty: common/data/criteo.h)
 *   input  "ids"    int64 [N,F]: field f's id already reduced to its table,
 *                   id % rows_f (rows_f = model.sparse.rows of f), so
 *                   0 <= ids[n][f] < rows_f; ONNX Gather refuses larger ids
 *   output "probabilities" as for every model (onnx.h)
 * Per field f: Gather (axis 1) of column f of ids, Gather of table
 * "tables.f" [rows_f, dim] (an initializer) -> [N,1,dim]; Concat of the
 * fields (axis 1), Reshape to [N, F dim], Concat after "num": the model's
 * input, then the model's own graph.
 *
 * The tables are written inline (the file is one protobuf message) when the
 * whole file stays within the threshold, else as ONNX external data: each
 * table's TensorProto has data_location EXTERNAL and external_data
 * location = "<model file name>.data" (next to the model), offset (a
 * multiple of ONNX_TABLES_ALIGN, as ONNX Runtime maps it) and length.
 */
#ifndef PST_ONNX_TABLES_H
#define PST_ONNX_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"
#include "export/onnx_graph.h"
#include "export/tables.h"
#include "export/trained.h"

#define ONNX_TABLES_ALIGN 65536 /* offsets in the data file: page and Windows granularity */
#define ONNX_TABLES_DATA ".data" /* the data file: the model's path and this */

struct Onnx__TensorProto;
struct Onnx__ModelProto;

/* A table initializer of the graph whose data is streamed when written. */
typedef struct {
    struct Onnx__TensorProto *proto; /* name, dims [rows, dim], type float */
    int table;                       /* its field: the table of export/tables.h */
    uint64_t bytes;                  /* rows * dim * 4 */
} onnx_table_init_t;

/* Declares the graph inputs "num" and "ids" of t's sparse model and adds
 * the lookups of its tables (onnx_init_table). Returns the name of the
 * model's input (dense features, then the fields' rows), or NULL (g
 * failed). */
const char *onnx_tables_emit(onnx_graph_t *g, const trained_t *t);

/* The inputs of t's sparse model in words, for the doc string and the
 * "input" metadata, into buf. */
void onnx_tables_layout(const trained_t *t, char *buf, size_t len);

/* Writes model at path with the n tables (not in model's initializers)
 * streamed from src: inline when the file takes at most external_over
 * bytes, else in PATH.data (written first; both atomically). Returns 0, or
 * -1 with err naming the file (over protobuf's 2 GiB with the tables
 * inline, a write, out of memory). */
int onnx_tables_write(const char *path, struct Onnx__ModelProto *model,
                      const onnx_table_init_t *tables, int n, const tables_t *src,
                      uint64_t external_over, err_t *err);

#endif
