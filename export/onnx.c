/* onnx.c - writes a trained model as an ONNX file (see onnx.h). The graph is
 * built as protobuf-c messages (C code generated at build time from
 * export/onnx.proto), packed once and written atomically.
 *
 * Every message, string and tensor of the graph is allocated from one arena
 * of the builder and freed at once. Builder calls have a sticky error, like a
 * stdio stream's: after the first failure each call does nothing and returns
 * NULL, so the emitters read as straight lines and onnx_export checks
 * b->failed once, before packing. */
#include "export/onnx.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/util/fsutil.h"
#include "onnx.pb-c.h"
#include "common/util/le.h"

#define ONNX_IR_VERSION 8
#define ONNX_OPSET 13
#define MAX_NODES (8 * (CFG_MAX_LAYERS + 4)) /* a layer takes at most 5 nodes */
#define MAX_INITS (4 * (CFG_MAX_LAYERS + 4)) /* and at most 3 initializers */
#define MAX_ATTRS 4                          /* per node */
#define MAX_META 8
#define MAX_BYTES 2147483647u                /* protobuf's limit for one message */

/* One allocation of the arena; data is aligned for any type. */
typedef struct block_t {
    struct block_t *next;
    max_align_t data[];
} block_t;

typedef struct {
    block_t *mem;                  /* every allocation, freed by builder_free */
    int failed;                    /* sticky: err holds the first failure */
    err_t *err;
    Onnx__NodeProto *nodes[MAX_NODES];
    size_t n_nodes;
    Onnx__TensorProto *inits[MAX_INITS];
    size_t n_inits;
    const float *params;           /* the checkpoint's flat parameters */
    const param_table_t *tab;
} builder_t;

/* ---- arena and sticky errors -------------------------------------------- */

/* Marks b failed with a formatted message (the first failure wins). Returns NULL. */
static void *fail(builder_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *fail(builder_t *b, const char *fmt, ...)
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
        return fail(b, "out of memory");
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

/* Returns the formatted string in the arena, or NULL (b failed). */
static char *arena_fmt(builder_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *arena_fmt(builder_t *b, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        return fail(b, "internal error: name too long");
    return arena_str(b, buf);
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
        return fail(b, "internal error: more than %d initializers", MAX_INITS);
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
static const char *init_floats(builder_t *b, const char *name, int ndim, const int64_t *dims,
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
static const char *init_int64s(builder_t *b, const char *name, int n, const int64_t *v)
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
static const char *init_param(builder_t *b, int idx)
{
    const param_spec_t *s = &b->tab->t[idx];
    int64_t dims[4] = {0};
    for (int i = 0; i < s->ndim; i++)
        dims[i] = s->shape[i];
    return init_floats(b, s->name, s->ndim, dims, b->params + s->offset);
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
            return fail(b, "internal error: missing value name");
    return out;
}

/* Appends a node of op_type (default domain) named name, with the inputs and
 * outputs of two NULL-terminated lists ("" for an optional output left out).
 * Returns the node, or NULL (b failed: also when any name is NULL, that is
 * when an earlier call failed). */
static Onnx__NodeProto *node_add(builder_t *b, const char *op_type, const char *name,
                                 const char *const *in, const char *const *out)
{
    if (b->failed || !name)
        return NULL;
    if (b->n_nodes == MAX_NODES)
        return fail(b, "internal error: more than %d nodes", MAX_NODES);
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
        return fail(b, "internal error: more than %d attributes", MAX_ATTRS);
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

static void attr_int(builder_t *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_add(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

static void attr_ints(builder_t *b, Onnx__NodeProto *n, const char *name, int count,
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
static const char *node_unary(builder_t *b, const char *op_type, const char *name, const char *x,
                              Onnx__NodeProto **node)
{
    Onnx__NodeProto *n = node_add(b, op_type, name, (const char *[]){x, NULL},
                                  (const char *[]){name, NULL});
    if (node)
        *node = n;
    return n ? name : NULL;
}

/* ---- layers ------------------------------------------------------------- */

/* Softmax over each sample's whole output of rank dims (shape), as
 * act_forward does: Softmax on the last axis for a flat sample, else
 * Flatten + Softmax + Reshape back. Returns the output name or NULL. */
static const char *emit_softmax(builder_t *b, const char *base, const char *x, int rank,
                                const int *shape)
{
    Onnx__NodeProto *n;
    if (rank == 1) {
        const char *y = node_unary(b, "Softmax", arena_fmt(b, "%s.softmax", base), x, &n);
        attr_int(b, n, "axis", -1);
        return y;
    }
    const char *flat = node_unary(b, "Flatten", arena_fmt(b, "%s.softmax_flat", base), x, &n);
    attr_int(b, n, "axis", 1);
    const char *sm = node_unary(b, "Softmax", arena_fmt(b, "%s.softmax", base), flat, &n);
    attr_int(b, n, "axis", -1);
    int64_t to[4] = {0}; /* 0: the batch dim of the input (allowzero = 0) */
    for (int i = 0; i < rank; i++)
        to[1 + i] = shape[i];
    const char *shp = init_int64s(b, arena_fmt(b, "%s.softmax_shape", base), rank + 1, to);
    const char *y = arena_fmt(b, "%s.softmax_out", base);
    node_add(b, "Reshape", arena_fmt(b, "%s.softmax_reshape", base),
             (const char *[]){sm, shp, NULL}, (const char *[]){y, NULL});
    return b->failed ? NULL : y;
}

/* The activation act on x, a sample of rank dims (shape). Returns the output
 * name (x itself for ACT_NONE) or NULL. */
static const char *emit_act(builder_t *b, const char *base, const char *x, act_t act, int rank,
                            const int *shape)
{
    switch (act) {
    case ACT_NONE:
        return x;
    case ACT_RELU:
        return node_unary(b, "Relu", arena_fmt(b, "%s.relu", base), x, NULL);
    case ACT_SIGMOID:
        return node_unary(b, "Sigmoid", arena_fmt(b, "%s.sigmoid", base), x, NULL);
    case ACT_TANH:
        return node_unary(b, "Tanh", arena_fmt(b, "%s.tanh", base), x, NULL);
    case ACT_SOFTMAX:
        return emit_softmax(b, base, x, rank, shape);
    }
    return fail(b, "internal error: activation %d", (int)act);
}

/* Adds the LSTM weight of parameter idx, [4H][cols] in our gate order
 * i, f, g, o, as an ONNX [1][4H][cols] tensor in ONNX's order i, o, f, c.
 * With bias, idx is our bias [4H] and the tensor is B [1][8H]: our bias as
 * Wb, zeros as Rb. Returns its name or NULL. */
static const char *init_lstm(builder_t *b, const char *name, int idx, int H, int cols, int bias)
{
    static const int ONNX_FROM_OURS[4] = {0, 3, 1, 2}; /* i, o, f, c <- i, f, g, o */
    const float *src = b->params + b->tab->t[idx].offset;
    const size_t block = (size_t)H * cols;
    float *dst = arena_alloc(b, (bias ? 8 : 4) * block * sizeof *dst); /* zeroed: Rb */
    if (!dst)
        return NULL;
    for (int k = 0; k < 4; k++)
        memcpy(dst + k * block, src + ONNX_FROM_OURS[k] * block, block * sizeof *dst);
    const int64_t dims[3] = {1, 4 * (int64_t)H, cols}, bias_dims[2] = {1, 8 * (int64_t)H};
    return bias ? init_floats(b, name, 2, bias_dims, dst) : init_floats(b, name, 3, dims, dst);
}

/* LSTM over x [N][T][In] (batch first): out [N][T][H] or [N][H]. Returns the
 * output name or NULL. */
static const char *emit_lstm(builder_t *b, const char *base, const char *x, const model_layer_t *L)
{
    const lstm_dims_t *d = &L->lstm;
    const char *pname = b->tab->t[L->param[0]].name; /* "lstmK.w_ih" */
    char stem[PARAM_NAME_LEN];
    snprintf(stem, sizeof stem, "%.*s", (int)strcspn(pname, "."), pname);
    const char *W = init_lstm(b, arena_fmt(b, "%s.W", stem), L->param[0], d->H, d->In, 0);
    const char *R = init_lstm(b, arena_fmt(b, "%s.R", stem), L->param[1], d->H, d->H, 0);
    const char *B = init_lstm(b, arena_fmt(b, "%s.B", stem), L->param[2], d->H, 1, 1);
    Onnx__NodeProto *n;
    const int64_t perm[3] = {1, 0, 2};
    const char *x_tm = node_unary(b, "Transpose", arena_fmt(b, "%s.time_major", base), x, &n);
    attr_ints(b, n, "perm", 3, perm);
    /* only the output used is named: Y for every step, else Y_h */
    const char *Y = arena_fmt(b, "%s.Y", base), *Y_h = arena_fmt(b, "%s.Y_h", base);
    const char *in[] = {x_tm, W, R, B, NULL};
    const char *out_seq[] = {Y, NULL}, *out_last[] = {"", Y_h, NULL};
    n = node_add(b, "LSTM", arena_fmt(b, "%s.lstm", base), in,
                 d->return_sequences ? out_seq : out_last);
    attr_int(b, n, "hidden_size", d->H);
    /* Y [T][1][N][H] -> [T][N][H] -> [N][T][H]; Y_h [1][N][H] -> [N][H] */
    const int64_t axes[1] = {d->return_sequences ? 1 : 0};
    const char *ax = init_int64s(b, arena_fmt(b, "%s.squeeze_axes", base), 1, axes);
    const char *sq = arena_fmt(b, "%s.squeeze", base);
    node_add(b, "Squeeze", sq, (const char *[]){d->return_sequences ? Y : Y_h, ax, NULL},
             (const char *[]){sq, NULL});
    if (!d->return_sequences)
        return b->failed ? NULL : sq;
    const char *y = node_unary(b, "Transpose", arena_fmt(b, "%s.batch_major", base), sq, &n);
    attr_ints(b, n, "perm", 3, perm);
    return y;
}

/* Layer li of the model on x. Returns its output name, or NULL (b failed). */
static const char *emit_layer(builder_t *b, int li, const model_layer_t *L, const char *x)
{
    const char *base = arena_fmt(b, "layer%d", li);
    Onnx__NodeProto *n;
    switch (L->type) {
    case LAYER_CONV2D: {
        const conv_dims_t *d = &L->conv;
        const char *w = init_param(b, L->param[0]), *bias = init_param(b, L->param[1]);
        const char *y = arena_fmt(b, "%s.conv", base);
        n = node_add(b, "Conv", y, (const char *[]){x, w, bias, NULL}, (const char *[]){y, NULL});
        attr_ints(b, n, "kernel_shape", 2, (const int64_t[]){d->K, d->K});
        attr_ints(b, n, "strides", 2, (const int64_t[]){d->stride, d->stride});
        attr_ints(b, n, "pads", 4, (const int64_t[]){d->pad, d->pad, d->pad, d->pad});
        attr_ints(b, n, "dilations", 2, (const int64_t[]){1, 1});
        return emit_act(b, base, b->failed ? NULL : y, L->act, L->out_rank, L->out_shape);
    }
    case LAYER_MAXPOOL2D: {
        const pool_dims_t *d = &L->pool;
        const char *y = node_unary(b, "MaxPool", arena_fmt(b, "%s.maxpool", base), x, &n);
        attr_ints(b, n, "kernel_shape", 2, (const int64_t[]){d->pool, d->pool});
        attr_ints(b, n, "strides", 2, (const int64_t[]){d->stride, d->stride});
        attr_ints(b, n, "pads", 4, (const int64_t[]){0, 0, 0, 0});
        return y;
    }
    case LAYER_FLATTEN: {
        const char *y = node_unary(b, "Flatten", arena_fmt(b, "%s.flatten", base), x, &n);
        attr_int(b, n, "axis", 1);
        return y;
    }
    case LAYER_DENSE: {
        const char *w = init_param(b, L->param[0]), *bias = init_param(b, L->param[1]);
        const char *y = arena_fmt(b, "%s.gemm", base);
        n = node_add(b, "Gemm", y, (const char *[]){x, w, bias, NULL}, (const char *[]){y, NULL});
        attr_int(b, n, "transB", 1);
        return emit_act(b, base, b->failed ? NULL : y, L->act, L->out_rank, L->out_shape);
    }
    case LAYER_LSTM:
        return emit_lstm(b, base, x, L);
    case LAYER_RELU:
    case LAYER_SIGMOID:
    case LAYER_TANH:
    case LAYER_SOFTMAX:
        return emit_act(b, base, x, L->act, L->out_rank, L->out_shape);
    }
    return fail(b, "layer %d: type %d has no ONNX form", li, (int)L->type);
}

/* ---- graph inputs, outputs and metadata ------------------------------- */

/* A float32 graph input or output: [N, shape...] with N symbolic. Returns
 * it, or NULL (b failed). */
static Onnx__ValueInfoProto *value_info(builder_t *b, const char *name, int rank,
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
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shp;
    ty->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    ty->tensor_type = tt;
    v->name = nm;
    v->type = ty;
    return v;
}

/* The class names of t as a JSON list, in the arena. Returns it or NULL. */
static char *classes_json(builder_t *b, const trained_t *t)
{
    cJSON *arr = cJSON_CreateArray();
    int ok = arr != NULL;
    for (int k = 0; ok && k < model_output_size(t->model); k++) {
        char buf[CFG_NAME_LEN + 16];
        cJSON *s = cJSON_CreateString(trained_class_name(t, k, buf, sizeof buf));
        ok = s && cJSON_AddItemToArray(arr, s);
        if (!ok)
            cJSON_Delete(s);
    }
    char *text = ok ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!text)
        return fail(b, "out of memory");
    char *out = arena_str(b, text);
    cJSON_free(text);
    return out;
}

/* Appends the key/value pair to meta[*n]. */
static void meta_add(builder_t *b, Onnx__StringStringEntryProto **meta, size_t *n,
                     const char *key, const char *value)
{
    if (*n == MAX_META) {
        fail(b, "internal error: more than %d metadata entries", MAX_META);
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

/* Builds the whole graph of t into b and model (whose messages point into
 * b's arena). Returns 0, or -1 with b->err. */
static int build_model(builder_t *b, const trained_t *t, const char *producer_version,
                       Onnx__ModelProto *model, Onnx__GraphProto *graph,
                       Onnx__OperatorSetIdProto *opset, Onnx__OperatorSetIdProto **opsets,
                       Onnx__StringStringEntryProto **meta)
{
    const model_t *m = t->model;
    const checkpoint_t *ck = t->ck;
    const job_config_t *cfg = t->cfg;
    const int in_rank = cfg->model.input_rank;
    const int *in_shape = cfg->model.input;
    const int classes = model_output_size(m);

    /* input, then the training normalisation folded in */
    const char *x = "input";
    if (ck->norm_kind) {
        int64_t dims[3];
        for (int i = 0; i < in_rank; i++)
            dims[i] = in_shape[i];
        const char *mean = init_floats(b, "norm.mean", in_rank, dims, ck->norm_mean);
        const char *inv = init_floats(b, "norm.inv_std", in_rank, dims, ck->norm_inv_std);
        node_add(b, "Sub", "norm.sub", (const char *[]){x, mean, NULL},
                 (const char *[]){"input.centered", NULL});
        node_add(b, "Mul", "norm.mul", (const char *[]){"input.centered", inv, NULL},
                 (const char *[]){"input.normalized", NULL});
        x = "input.normalized";
    }
    for (int li = 0; li < model_n_layers(m) && x; li++)
        x = emit_layer(b, li, model_layer(m, li), x);
    if (x && model_softmax_output(m)) {
        Onnx__NodeProto *n;
        x = node_unary(b, "Softmax", "output.softmax", x, &n);
        attr_int(b, n, "axis", -1);
    }
    if (b->failed)
        return -1;
    /* the last node's output becomes the graph's output */
    Onnx__NodeProto *last = b->n_nodes ? b->nodes[b->n_nodes - 1] : NULL;
    size_t k = 0;
    while (last && k < last->n_output && strcmp(last->output[k], x) != 0)
        k++;
    if (!last || k == last->n_output) {
        fail(b, "internal error: the graph's result is no node's output");
        return -1;
    }
    last->output[k] = arena_str(b, "probabilities");

    Onnx__ValueInfoProto *in = value_info(b, "input", in_rank, in_shape);
    Onnx__ValueInfoProto *out = value_info(b, "probabilities", 1, &classes);
    Onnx__ValueInfoProto **ins = arena_alloc(b, sizeof *ins), **outs = arena_alloc(b, sizeof *outs);
    char layout[128];
    if (in_rank == 3)
        snprintf(layout, sizeof layout, "float32 [N,%d,%d,%d] (N,C,H,W), pixels scaled to [0,1]",
                 in_shape[0], in_shape[1], in_shape[2]);
    else
        snprintf(layout, sizeof layout, "float32 [N,%d,%d] (N,T,F), pixels scaled to [0,1]",
                 in_shape[0], in_shape[1]);
    char *doc = arena_fmt(b, "pstrain model %s: input %s; output probabilities [N,%d]",
                          cfg->name, layout, classes);
    char nclasses[16];
    snprintf(nclasses, sizeof nclasses, "%d", classes);
    size_t n_meta = 0;
    meta_add(b, meta, &n_meta, "classes", classes_json(b, t));
    meta_add(b, meta, &n_meta, "num_classes", nclasses);
    meta_add(b, meta, &n_meta, "pstrain_version", producer_version);
    meta_add(b, meta, &n_meta, "name", cfg->name);
    meta_add(b, meta, &n_meta, "input", layout);
    meta_add(b, meta, &n_meta, "normalization", norm_name(ck->norm_kind));
    if (b->failed)
        return -1;
    ins[0] = in;
    outs[0] = out;

    graph->name = arena_str(b, cfg->name);
    graph->doc_string = doc;
    graph->n_node = b->n_nodes;
    graph->node = b->nodes;
    graph->n_initializer = b->n_inits;
    graph->initializer = b->inits;
    graph->n_input = 1;
    graph->input = ins;
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

int onnx_export(const trained_t *t, const char *path, const char *producer_version, err_t *err)
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
    uint8_t *buf = NULL;
    int rc = -1;

    if (build_model(b, t, producer_version ? producer_version : "", &model, &graph, &opset,
                    opsets, meta) != 0) {
        err_prefix(err, "%s", path);
        goto done;
    }
    size_t len = onnx__model_proto__get_packed_size(&model);
    if (len > MAX_BYTES) {
        err_set(err, "%s: the model takes %zu bytes, over protobuf's 2 GiB limit for one file",
                path, len);
        goto done;
    }
    if (!(buf = malloc(len))) {
        err_set(err, "%s: out of memory for %zu bytes", path, len);
        goto done;
    }
    if (onnx__model_proto__pack(&model, buf) != len) {
        err_set(err, "%s: internal error: packed size changed", path);
        goto done;
    }
    rc = fs_write_atomic(path, buf, len, err);
done:
    free(buf);
    builder_free(b);
    free(b);
    return rc;
}
