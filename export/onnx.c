/* onnx.c - writes a trained model as an ONNX file (see onnx.h). The graph is
 * built as protobuf-c messages (C code generated at build time from
 * export/onnx.proto), packed once and written atomically. Each layer adds
 * its own nodes through its kind's emit function and the builder calls of
 * onnx_graph.h, which this file implements.
 *
 * Every message, string and tensor of the graph is allocated from one arena
 * of the builder and freed at once. Builder calls have a sticky error, like a
 * stdio stream's: after the first failure each call does nothing and returns
 * NULL, so the emitters read as straight lines and onnx_export checks
 * b->failed once, before packing. */
#include "export/onnx.h"
#include "export/onnx_graph.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/util/fsutil.h"
#include "export/onnx_tables.h"
#include "onnx.pb-c.h"
#include "common/util/le.h"

#define ONNX_IR_VERSION 8
#define ONNX_OPSET 13
/* a layer takes at most 5 nodes and 3 initializers; a field's lookup 2
 * nodes, an index and its table */
#define MAX_NODES (8 * (CFG_MAX_LAYERS + 4) + 2 * CFG_MAX_FIELDS)
#define MAX_INITS (4 * (CFG_MAX_LAYERS + 4) + CFG_MAX_FIELDS)
#define MAX_INPUTS 2                         /* graph inputs */
#define MAX_ATTRS 4                          /* per node */
#define MAX_META 8
#define MAX_BYTES 2147483647u                /* protobuf's limit for one message */

/* One allocation of the arena; data is aligned for any type. */
typedef struct block_t {
    struct block_t *next;
    max_align_t data[];
} block_t;

struct onnx_graph_t {
    block_t *mem;                  /* every allocation, freed by builder_free */
    int failed;                    /* sticky: err holds the first failure */
    err_t *err;
    Onnx__NodeProto *nodes[MAX_NODES];
    size_t n_nodes;
    Onnx__TensorProto *inits[MAX_INITS];
    size_t n_inits;
    Onnx__ValueInfoProto *inputs[MAX_INPUTS];
    size_t n_inputs;
    onnx_table_init_t tables[CFG_MAX_FIELDS]; /* initializers streamed when written */
    int n_tables;
    const float *params;           /* the checkpoint's flat parameters */
    const param_table_t *tab;
    const char *model_input;       /* the model input's name (onnx_model_input) */
};
typedef onnx_graph_t builder_t;

const char *onnx_model_input(onnx_graph_t *g)
{
    return g->failed ? NULL : g->model_input ? g->model_input
                                             : onnx_fail(g, "the model's input is not named yet");
}

/* ---- arena and sticky errors -------------------------------------------- */

/* Marks b failed with a formatted message (the first failure wins). Returns NULL. */
void *onnx_fail(builder_t *b, const char *fmt, ...)
{
    if (!b->failed) {
        b->failed = 1;
        if (b->err) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(b->err->msg, sizeof b->err->msg, fmt, ap);
            va_end(ap);
        }
    }
    return NULL;
}

/* Returns n zeroed bytes owned by the arena, or NULL (b failed). */
static void *arena_alloc(builder_t *b, size_t n)
{
    if (b->failed)
        return NULL;
    block_t *blk = calloc(1, sizeof *blk + (n ? n : 1));
    if (!blk)
        return onnx_fail(b, "out of memory");
    blk->next = b->mem;
    b->mem = blk;
    return blk->data;
}

static void builder_free(builder_t *b)
{
    while (b->mem) {
        block_t *next = b->mem->next;
        free(b->mem);
        b->mem = next;
    }
}

/* Returns a copy of s in the arena, or NULL (b failed). */
static char *arena_str(builder_t *b, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(b, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Returns the string fmt formats from ap in the arena, or NULL (b failed). */
static char *arena_vfmt(builder_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static char *arena_vfmt(builder_t *b, const char *fmt, va_list ap)
{
    char buf[256];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        return onnx_fail(b, "internal error: name too long");
    return arena_str(b, buf);
}

/* Returns the formatted string in the arena, or NULL (b failed). */
static char *arena_fmt(builder_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *arena_fmt(builder_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = arena_vfmt(b, fmt, ap);
    va_end(ap);
    return s;
}

const char *onnx_name(builder_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = arena_vfmt(b, fmt, ap);
    va_end(ap);
    return s;
}

void *onnx_alloc(builder_t *b, size_t n)
{
    return arena_alloc(b, n);
}

int onnx_failed(const builder_t *b)
{
    return b->failed;
}

/* ---- initializers ------------------------------------------------------- */

/* Adds an initializer tensor of ndim dims and nbytes of raw little-endian
 * data (returned through *raw for the caller to fill). Returns its name (in
 * the arena), or NULL (b failed). */
static const char *init_add(builder_t *b, const char *name, int32_t type, int ndim,
                            const int64_t *dims, size_t nbytes, uint8_t **raw)
{
    *raw = NULL;
    if (b->failed)
        return NULL;
    if (b->n_inits == MAX_INITS)
        return onnx_fail(b, "internal error: more than %d initializers", MAX_INITS);
    Onnx__TensorProto *t = arena_alloc(b, sizeof *t);
    int64_t *d = arena_alloc(b, (size_t)(ndim ? ndim : 1) * sizeof *d);
    uint8_t *bytes = arena_alloc(b, nbytes);
    char *nm = arena_str(b, name);
    if (!nm)
        return NULL;
    onnx__tensor_proto__init(t);
    memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    t->name = nm;
    t->has_raw_data = 1;
    t->raw_data.len = nbytes;
    t->raw_data.data = bytes;
    b->inits[b->n_inits++] = t;
    *raw = bytes;
    return nm;
}

/* Adds a float32 initializer holding data[0 .. product of dims). Returns its
 * name, or NULL (b failed). */
const char *onnx_init_floats(builder_t *b, const char *name, int ndim, const int64_t *dims,
                               const float *data)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)dims[i];
    uint8_t *raw;
    const char *nm = init_add(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims,
                              n * sizeof(float), &raw);
    if (!nm)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &data[i], sizeof u);
        le_store32(raw + 4 * i, u);
    }
    return nm;
}

/* Adds a 1-D int64 initializer of the n values v. Returns its name, or NULL. */
const char *onnx_init_int64s(builder_t *b, const char *name, int n, const int64_t *v)
{
    uint8_t *raw;
    const int64_t dims[1] = {n};
    const char *nm =
        init_add(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, dims, (size_t)n * 8, &raw);
    if (!nm)
        return NULL;
    for (int i = 0; i < n; i++)
        le_store64(raw + 8 * i, (uint64_t)v[i]);
    return nm;
}

/* Parameter tensor idx of the model as it is stored (ours and ONNX's layouts
 * agree: conv [F][C][K][K], dense [O][In], biases). Returns its name. */
const char *onnx_init_param(builder_t *b, int idx)
{
    const param_spec_t *s = &b->tab->t[idx];
    int64_t dims[4] = {0};
    for (int i = 0; i < s->ndim; i++)
        dims[i] = s->shape[i];
    return onnx_init_floats(b, s->name, s->ndim, dims, b->params + s->offset);
}

const param_spec_t *onnx_param_spec(const builder_t *b, int idx)
{
    return &b->tab->t[idx];
}

const float *onnx_param_data(const builder_t *b, int idx)
{
    return b->params + b->tab->t[idx].offset;
}

/* ---- nodes -------------------------------------------------------------- */

/* Counts the strings of a NULL-terminated list. */
static size_t count_names(const char *const *v)
{
    size_t n = 0;
    while (v[n])
        n++;
    return n;
}

/* Copies a NULL-terminated list of names into the arena (n of them). */
static char **copy_names(builder_t *b, const char *const *v, size_t n)
{
    char **out = arena_alloc(b, (n ? n : 1) * sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!v[i] || !(out[i] = arena_str(b, v[i])))
            return onnx_fail(b, "internal error: missing value name");
    return out;
}

/* Appends a node of op_type (default domain) named name, with the inputs and
 * outputs of two NULL-terminated lists ("" for an optional output left out).
 * Returns the node, or NULL (b failed: also when any name is NULL, that is
 * when an earlier call failed). */
Onnx__NodeProto *onnx_node(builder_t *b, const char *op_type, const char *name,
                                 const char *const *in, const char *const *out)
{
    if (b->failed || !name)
        return NULL;
    if (b->n_nodes == MAX_NODES)
        return onnx_fail(b, "internal error: more than %d nodes", MAX_NODES);
    size_t n_in = count_names(in), n_out = count_names(out);
    Onnx__NodeProto *n = arena_alloc(b, sizeof *n);
    Onnx__AttributeProto **attrs = arena_alloc(b, MAX_ATTRS * sizeof *attrs);
    char **ins = copy_names(b, in, n_in), **outs = copy_names(b, out, n_out);
    char *op = arena_str(b, op_type), *nm = arena_str(b, name), *dom = arena_str(b, "");
    if (b->failed)
        return NULL;
    onnx__node_proto__init(n);
    n->n_input = n_in;
    n->input = ins;
    n->n_output = n_out;
    n->output = outs;
    n->op_type = op;
    n->name = nm;
    n->domain = dom;
    n->attribute = attrs;
    b->nodes[b->n_nodes++] = n;
    return n;
}

/* Adds an attribute of type ty and name to node n (NULL: nothing). Returns
 * it, or NULL (b failed). */
static Onnx__AttributeProto *attr_add(builder_t *b, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType ty)
{
    if (b->failed || !n)
        return NULL;
    if (n->n_attribute == MAX_ATTRS)
        return onnx_fail(b, "internal error: more than %d attributes", MAX_ATTRS);
    Onnx__AttributeProto *a = arena_alloc(b, sizeof *a);
    char *nm = arena_str(b, name);
    if (!nm)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = nm;
    a->has_type = 1;
    a->type = ty;
    n->attribute[n->n_attribute++] = a;
    return a;
}

void onnx_attr_int(builder_t *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_add(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

void onnx_attr_ints(builder_t *b, Onnx__NodeProto *n, const char *name, int count,
                      const int64_t *v)
{
    Onnx__AttributeProto *a = attr_add(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *vals = arena_alloc(b, (size_t)count * sizeof *vals);
    if (a && vals) {
        memcpy(vals, v, (size_t)count * sizeof *vals);
        a->n_ints = (size_t)count;
        a->ints = vals;
    }
}

/* One node with one input and one output named after the node. Returns the
 * output's name, or NULL (b failed). */
const char *onnx_unary(builder_t *b, const char *op_type, const char *name, const char *x,
                              Onnx__NodeProto **node)
{
    Onnx__NodeProto *n = onnx_node(b, op_type, name, (const char *[]){x, NULL},
                                  (const char *[]){name, NULL});
    if (node)
        *node = n;
    return n ? name : NULL;
}

/* ---- graph inputs, outputs and metadata ------------------------------- */

/* A graph input or output of elem_type: [N, shape...] with N symbolic.
 * Returns it, or NULL (b failed). */
static Onnx__ValueInfoProto *value_info(builder_t *b, const char *name, int elem_type, int rank,
                                        const int *shape)
{
    Onnx__ValueInfoProto *v = arena_alloc(b, sizeof *v);
    Onnx__TypeProto *ty = arena_alloc(b, sizeof *ty);
    Onnx__TypeProto__Tensor *tt = arena_alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *shp = arena_alloc(b, sizeof *shp);
    Onnx__TensorShapeProto__Dimension *dims = arena_alloc(b, (size_t)(rank + 1) * sizeof *dims);
    Onnx__TensorShapeProto__Dimension **dimp = arena_alloc(b, (size_t)(rank + 1) * sizeof *dimp);
    char *nm = arena_str(b, name), *batch = arena_str(b, "N");
    if (b->failed)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(ty);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(shp);
    for (int i = 0; i <= rank; i++) {
        onnx__tensor_shape_proto__dimension__init(&dims[i]);
        if (i == 0) {
            dims[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dims[i].dim_param = batch;
        } else {
            dims[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dims[i].dim_value = shape[i - 1];
        }
        dimp[i] = &dims[i];
    }
    shp->n_dim = (size_t)rank + 1;
    shp->dim = dimp;
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    tt->shape = shp;
    ty->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    ty->tensor_type = tt;
    v->name = nm;
    v->type = ty;
    return v;
}

const char *onnx_input(builder_t *b, const char *name, int elem_type, int rank, const int *shape)
{
    if (b->failed)
        return NULL;
    if (b->n_inputs == MAX_INPUTS)
        return onnx_fail(b, "internal error: more than %d graph inputs", MAX_INPUTS);
    Onnx__ValueInfoProto *v = value_info(b, name, elem_type, rank, shape);
    if (!v)
        return NULL;
    b->inputs[b->n_inputs++] = v;
    return v->name;
}

const char *onnx_init_table(builder_t *b, const char *name, int table, int64_t rows, int64_t dim)
{
    if (b->failed)
        return NULL;
    if (b->n_tables == CFG_MAX_FIELDS)
        return onnx_fail(b, "internal error: more than %d tables", CFG_MAX_FIELDS);
    Onnx__TensorProto *t = arena_alloc(b, sizeof *t);
    int64_t *d = arena_alloc(b, 2 * sizeof *d);
    char *nm = arena_str(b, name);
    if (!nm)
        return NULL;
    onnx__tensor_proto__init(t);
    d[0] = rows;
    d[1] = dim;
    t->n_dims = 2;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->name = nm;
    b->tables[b->n_tables++] = (onnx_table_init_t){t, table, (uint64_t)rows * (uint64_t)dim * 4};
    return nm;
}

/* The class names of t as a JSON list, in the arena. Returns it or NULL. */
static char *classes_json(builder_t *b, const trained_t *t)
{
    cJSON *arr = cJSON_CreateArray();
    int ok = arr != NULL;
    for (int k = 0; ok && k < model_n_classes(t->model); k++) {
        char buf[CFG_NAME_LEN + 16];
        cJSON *s = cJSON_CreateString(trained_class_name(t, k, buf, sizeof buf));
        ok = s && cJSON_AddItemToArray(arr, s);
        if (!ok)
            cJSON_Delete(s);
    }
    char *text = ok ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!text)
        return onnx_fail(b, "out of memory");
    char *out = arena_str(b, text);
    cJSON_free(text);
    return out;
}

/* Appends the key/value pair to meta[*n]. */
static void meta_add(builder_t *b, Onnx__StringStringEntryProto **meta, size_t *n,
                     const char *key, const char *value)
{
    if (*n == MAX_META) {
        onnx_fail(b, "internal error: more than %d metadata entries", MAX_META);
        return;
    }
    Onnx__StringStringEntryProto *e = arena_alloc(b, sizeof *e);
    char *k = arena_str(b, key), *v = value ? arena_str(b, value) : NULL;
    if (!v)
        return;
    onnx__string_string_entry_proto__init(e);
    e->key = k;
    e->value = v;
    meta[(*n)++] = e;
}

static const char *norm_name(int kind)
{
    return kind == NORM_GLOBAL ? "global" : kind == NORM_PER_PIXEL ? "per_pixel" : "none";
}

/* ---- the model ---------------------------------------------------------- */

/* The graph's input up to the model's input: "input" (a dense model), or
 * "dense" and "ids" with the tables' lookups (a sparse one); then the
 * training normalisation, if any. Returns the model input's name, or NULL
 * (b failed). */
static const char *model_input(builder_t *b, const trained_t *t)
{
    const checkpoint_t *ck = t->ck;
    const job_config_t *cfg = t->cfg;
    const int size = model_input_size(t->model);
    int rank = cfg->model.input_rank;
    const int *shape = cfg->model.input;
    const char *x;
    if (t->tables) {
        x = onnx_tables_emit(b, t);
        rank = 1;
        shape = &size;
    } else {
        x = onnx_input(b, "input", ONNX_ELEM_FLOAT, rank, shape);
    }
    if (!x || !ck->norm_kind)
        return x;
    int64_t dims[3];
    for (int i = 0; i < rank; i++)
        dims[i] = shape[i];
    const char *mean = onnx_init_floats(b, "norm.mean", rank, dims, ck->norm_mean);
    const char *inv = onnx_init_floats(b, "norm.inv_std", rank, dims, ck->norm_inv_std);
    onnx_node(b, "Sub", "norm.sub", (const char *[]){x, mean, NULL},
              (const char *[]){"input.centered", NULL});
    onnx_node(b, "Mul", "norm.mul", (const char *[]){"input.centered", inv, NULL},
              (const char *[]){"input.normalized", NULL});
    return b->failed ? NULL : "input.normalized";
}

/* The nodes of t's model into b, from the graph's inputs to its output
 * "probabilities". Returns 0, or -1 with b->err. */
static int build_nodes(builder_t *b, const trained_t *t)
{
    const model_t *m = t->model;
    const int classes = model_output_size(m);
    const char *x = b->model_input = model_input(b, t);
    for (int li = 0; li < model_n_layers(m) && x; li++) {
        const layer_t *L = model_layer(m, li);
        x = L->kind->emit(b, L, arena_fmt(b, "layer%d", li), x);
    }
    /* the activation the loss applied in training, as model_predict does */
    const act_kind_t *act = model_output_act(m);
    if (x && act)
        x = act->emit(b, "output", x, &(shape_t){1, {classes}});
    if (b->failed)
        return -1;
    /* the last node's output becomes the graph's output */
    Onnx__NodeProto *last = b->n_nodes ? b->nodes[b->n_nodes - 1] : NULL;
    size_t k = 0;
    while (last && k < last->n_output && strcmp(last->output[k], x) != 0)
        k++;
    if (!last || k == last->n_output) {
        onnx_fail(b, "internal error: the graph's result is no node's output");
        return -1;
    }
    last->output[k] = arena_str(b, "probabilities");
    return b->failed ? -1 : 0;
}

/* What the graph's input is, for the doc string and the "input" metadata. */
static void input_layout(const trained_t *t, char *buf, size_t len)
{
    const job_config_t *cfg = t->cfg;
    const int *in = cfg->model.input;
    if (t->tables)
        onnx_tables_layout(t, buf, len);
    else if (cfg->model.input_rank == 3)
        snprintf(buf, len, "float32 [N,%d,%d,%d] (N,C,H,W), pixels scaled to [0,1]", in[0], in[1],
                 in[2]);
    else
        snprintf(buf, len, "float32 [N,%d,%d] (N,T,F), pixels scaled to [0,1]", in[0], in[1]);
}

/* Builds the whole graph of t into b and model (whose messages point into
 * b's arena). Returns 0, or -1 with b->err. */
static int build_model(builder_t *b, const trained_t *t, const char *producer_version,
                       Onnx__ModelProto *model, Onnx__GraphProto *graph,
                       Onnx__OperatorSetIdProto *opset, Onnx__OperatorSetIdProto **opsets,
                       Onnx__StringStringEntryProto **meta)
{
    const job_config_t *cfg = t->cfg;
    const int classes = model_output_size(t->model);
    if (build_nodes(b, t) != 0)
        return -1;
    Onnx__ValueInfoProto *out = value_info(b, "probabilities", ONNX_ELEM_FLOAT, 1, &classes);
    Onnx__ValueInfoProto **outs = arena_alloc(b, sizeof *outs);
    char layout[512];
    input_layout(t, layout, sizeof layout);
    char text[1024];
    snprintf(text, sizeof text, "pstrain model %s: input %s; output probabilities [N,%d]",
             cfg->name, layout, classes);
    char *doc = arena_str(b, text);
    char nclasses[16];
    snprintf(nclasses, sizeof nclasses, "%d", classes);
    size_t n_meta = 0;
    meta_add(b, meta, &n_meta, "classes", classes_json(b, t));
    meta_add(b, meta, &n_meta, "num_classes", nclasses);
    meta_add(b, meta, &n_meta, "pstrain_version", producer_version);
    meta_add(b, meta, &n_meta, "name", cfg->name);
    meta_add(b, meta, &n_meta, "input", layout);
    meta_add(b, meta, &n_meta, "normalization", norm_name(t->ck->norm_kind));
    if (b->failed)
        return -1;
    outs[0] = out;

    graph->name = arena_str(b, cfg->name);
    graph->doc_string = doc;
    graph->n_node = b->n_nodes;
    graph->node = b->nodes;
    graph->n_initializer = b->n_inits;
    graph->initializer = b->inits;
    graph->n_input = b->n_inputs;
    graph->input = b->inputs;
    graph->n_output = 1;
    graph->output = outs;

    opset->domain = arena_str(b, "");
    opset->has_version = 1;
    opset->version = ONNX_OPSET;
    opsets[0] = opset;

    model->has_ir_version = 1;
    model->ir_version = ONNX_IR_VERSION;
    model->n_opset_import = 1;
    model->opset_import = opsets;
    model->producer_name = arena_str(b, "pstrain");
    model->producer_version = arena_str(b, producer_version);
    model->doc_string = doc;
    model->graph = graph;
    model->n_metadata_props = n_meta;
    model->metadata_props = meta;
    return b->failed ? -1 : 0;
}

/* Packs model (no streamed tables) and writes it at path atomically.
 * Returns 0, or -1 with err naming path. */
static int write_packed(const Onnx__ModelProto *model, const char *path, err_t *err)
{
    size_t len = onnx__model_proto__get_packed_size(model);
    if (len > MAX_BYTES)
        return err_set(err, "%s: the model takes %zu bytes, over protobuf's 2 GiB limit for one "
                       "file", path, len);
    uint8_t *buf = malloc(len);
    if (!buf)
        return err_set(err, "%s: out of memory for %zu bytes", path, len);
    int rc = -1;
    if (onnx__model_proto__pack(model, buf) != len)
        err_set(err, "%s: internal error: packed size changed", path);
    else
        rc = fs_write_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

int onnx_export(const trained_t *t, const char *path, const char *producer_version, err_t *err)
{
    return onnx_export_with(t, path, producer_version, ONNX_EXTERNAL_OVER, err);
}

int onnx_export_with(const trained_t *t, const char *path, const char *producer_version,
                     uint64_t external_over, err_t *err)
{
    builder_t *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(err, "%s: out of memory", path);
    b->err = err;
    b->params = t->ck->params;
    b->tab = model_params(t->model);
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *opsets[1];
    Onnx__StringStringEntryProto *meta[MAX_META];
    int rc = -1;
    if (build_model(b, t, producer_version ? producer_version : "", &model, &graph, &opset,
                    opsets, meta) != 0)
        err_prefix(err, "%s", path);
    else if (b->n_tables)
        rc = onnx_tables_write(path, &model, b->tables, b->n_tables, t->tables, external_over,
                               err);
    else
        rc = write_packed(&model, path, err);
    builder_free(b);
    free(b);
    return rc;
}
