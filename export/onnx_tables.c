/* onnx_tables.c - a sparse model's embedding tables in its ONNX file (see
 * onnx_tables.h).
 *
 * Inline, the tables cannot be packed by protobuf-c (that would need them
 * whole in memory), so the file is the packed model without them, followed
 * by a second occurrence of ModelProto.graph (field 7) holding only their
 * initializers (GraphProto field 5), each a packed TensorProto header
 * followed by its raw_data (field 9) streamed from the row files. Protobuf
 * merges the occurrences of a message field ("later fields are merged,
 * repeated fields appended": the encoding's rule, which ONNX Runtime's and
 * the onnx package's parsers follow), so readers see one graph. */
#include "export/onnx_tables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util/fsutil.h"
#include "onnx.pb-c.h"

#define MAX_BYTES 2147483647u  /* protobuf's limit for one message */
#define TAG_MODEL_GRAPH 0x3A    /* ModelProto.graph: field 7, length-delimited */
#define TAG_GRAPH_INIT 0x2A     /* GraphProto.initializer: field 5 */
#define TAG_TENSOR_RAW 0x4A     /* TensorProto.raw_data: field 9 */
#define VARINT_MAX 10           /* bytes of a 64-bit varint at most */

/* ---- the graph ------------------------------------------------------------ */

/* Dense (numeric) features per sample: the model's input less the fields' vectors. */
static int num_features(const trained_t *t)
{
    const job_config_t *cfg = t->cfg;
    return model_input_size(t->model) - cfg->model.sparse.fields * cfg->model.sparse.dim;
}

const char *onnx_tables_emit(onnx_graph_t *g, const trained_t *t)
{
    const tables_t *tb = t->tables;
    const int F = tables_fields(tb), dim = tables_dim(tb), D = num_features(t);
    const char *num = onnx_input(g, "num", ONNX_ELEM_FLOAT, 1, &D);
    const char *ids = onnx_input(g, "ids", ONNX_ELEM_INT64, 1, &F);
    const char **rows = onnx_alloc(g, (size_t)(F + 1) * sizeof *rows);
    if (!rows)
        return NULL;
    for (int f = 0; f < F; f++) {
        const int64_t col[1] = {f};
        const char *k = onnx_init_int64s(g, onnx_name(g, "ids.%d.index", f), 1, col);
        const char *id = onnx_name(g, "ids.%d", f);
        onnx_node_t *n = onnx_node(g, "Gather", id, (const char *[]){ids, k, NULL},
                                   (const char *[]){id, NULL});
        onnx_attr_int(g, n, "axis", 1);
        const char *tab = onnx_init_table(g, onnx_name(g, "tables.%d", f), f,
                                          (int64_t)tables_rows(tb, f), dim);
        rows[f] = onnx_name(g, "rows.%d", f);
        onnx_node(g, "Gather", rows[f], (const char *[]){tab, id, NULL},
                  (const char *[]){rows[f], NULL});
    }
    const char *all = onnx_name(g, "rows"), *flat = onnx_name(g, "rows.flat");
    onnx_node_t *n = onnx_node(g, "Concat", all, rows, (const char *[]){all, NULL});
    onnx_attr_int(g, n, "axis", 1);
    const int64_t shape[2] = {0, (int64_t)F * dim};
    const char *sh = onnx_init_int64s(g, "rows.shape", 2, shape);
    onnx_node(g, "Reshape", flat, (const char *[]){all, sh, NULL}, (const char *[]){flat, NULL});
    const char *x = onnx_name(g, "model_input");
    n = onnx_node(g, "Concat", x, (const char *[]){num, flat, NULL}, (const char *[]){x, NULL});
    onnx_attr_int(g, n, "axis", 1);
    return onnx_failed(g) ? NULL : x;
}

void onnx_tables_layout(const trained_t *t, char *buf, size_t len)
{
    const int F = tables_fields(t->tables);
    snprintf(buf, len, "num float32 [N,%d] (the dense features, log(1 + max(x, 0)) of a Criteo "
             "line's integers) and ids int64 [N,%d] (field f's id already reduced %% the rows "
             "of table f, model.sparse.rows; tables.f [rows, %d] in the graph)",
             num_features(t), F, tables_dim(t->tables));
}

/* ---- writing -------------------------------------------------------------- */

/* Bytes of v as a protobuf varint. */
static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Writes the tag and the varint v to f. Returns 0, or -1 with err. */
static int write_tag_len(fs_atomic_t *f, uint8_t tag, uint64_t v, err_t *err)
{
    uint8_t b[1 + VARINT_MAX];
    size_t n = 0;
    b[n++] = tag;
    do {
        b[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return fs_atomic_write(f, b, n, err);
}

/* tables_write_fn into an atomic file. */
static int write_piece(void *ctx, const void *data, size_t len, err_t *err)
{
    return fs_atomic_write(ctx, data, len, err);
}

/* Bytes of table i's TensorProto with its data inline. */
static uint64_t tensor_len(const onnx_table_init_t *t)
{
    return onnx__tensor_proto__get_packed_size(t->proto) + 1 + varint_len(t->bytes) + t->bytes;
}

/* Writes one table's initializer (GraphProto field 5: header, raw_data
 * streamed). Returns 0, or -1 with err. */
static int write_inline_tensor(fs_atomic_t *f, const onnx_table_init_t *t, const tables_t *src,
                               err_t *err)
{
    const size_t hlen = onnx__tensor_proto__get_packed_size(t->proto);
    uint8_t *h = malloc(hlen ? hlen : 1);
    if (!h)
        return err_set(err, "out of memory");
    int rc = -1;
    if (onnx__tensor_proto__pack(t->proto, h) != hlen)
        err_set(err, "internal error: packed size changed");
    else if (write_tag_len(f, TAG_GRAPH_INIT, tensor_len(t), err) == 0 &&
             fs_atomic_write(f, h, hlen, err) == 0 &&
             write_tag_len(f, TAG_TENSOR_RAW, t->bytes, err) == 0)
        rc = tables_stream(src, t->table, 0, write_piece, f, err);
    free(h);
    return rc;
}

/* The model packed (tables left out), then its tables inline. */
static int write_inline(const char *path, const uint8_t *head, size_t head_len,
                        const onnx_table_init_t *tables, int n, const tables_t *src, err_t *err)
{
    uint64_t frag = 0;
    for (int i = 0; i < n; i++)
        frag += 1 + varint_len(tensor_len(&tables[i])) + tensor_len(&tables[i]);
    const uint64_t total = head_len + 1 + varint_len(frag) + frag;
    if (total > MAX_BYTES)
        return err_set(err, "%s: the model takes %llu bytes with its tables, over protobuf's "
                       "2 GiB limit for one file (external data is for that)", path,
                       (unsigned long long)total);
    fs_atomic_t *f = fs_atomic_open(path, err);
    if (!f)
        return -1;
    int rc = fs_atomic_write(f, head, head_len, err) != 0 ||
             write_tag_len(f, TAG_MODEL_GRAPH, frag, err) != 0 ? -1 : 0;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = write_inline_tensor(f, &tables[i], src, err);
    if (rc != 0) {
        fs_atomic_abort(&f);
        return -1;
    }
    return fs_atomic_commit(&f, err);
}

/* The external_data entries of one table. */
typedef struct {
    Onnx__StringStringEntryProto e[3], *ep[3];
    char offset[24], length[24];
} ext_t;

/* Writes the tables into the data file dpath at offsets aligned to
 * ONNX_TABLES_ALIGN and points their TensorProtos there (location is the
 * data file's name). Returns 0, or -1 with err. */
static int write_data(const char *dpath, const char *location, const onnx_table_init_t *tables,
                      int n, ext_t *ext, const tables_t *src, err_t *err)
{
    static const uint8_t zeros[ONNX_TABLES_ALIGN];
    fs_atomic_t *f = fs_atomic_open(dpath, err);
    if (!f)
        return -1;
    uint64_t off = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const uint64_t pad = (ONNX_TABLES_ALIGN - off % ONNX_TABLES_ALIGN) % ONNX_TABLES_ALIGN;
        if ((rc = fs_atomic_write(f, zeros, (size_t)pad, err)) != 0)
            break;
        off += pad;
        ext_t *x = &ext[i];
        snprintf(x->offset, sizeof x->offset, "%llu", (unsigned long long)off);
        snprintf(x->length, sizeof x->length, "%llu", (unsigned long long)tables[i].bytes);
        const char *kv[3][2] = {{"location", location}, {"offset", x->offset},
                                {"length", x->length}};
        for (int k = 0; k < 3; k++) {
            onnx__string_string_entry_proto__init(&x->e[k]);
            x->e[k].key = (char *)kv[k][0];
            x->e[k].value = (char *)kv[k][1];
            x->ep[k] = &x->e[k];
        }
        Onnx__TensorProto *t = tables[i].proto;
        t->n_external_data = 3;
        t->external_data = x->ep;
        t->has_data_location = 1;
        t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        rc = tables_stream(src, tables[i].table, 0, write_piece, f, err);
        off += tables[i].bytes;
    }
    if (rc != 0) {
        fs_atomic_abort(&f);
        return -1;
    }
    return fs_atomic_commit(&f, err);
}

/* The tables in PATH.data, then the model with them as external
 * initializers at path. */
static int write_external(const char *path, Onnx__ModelProto *model,
                          const onnx_table_init_t *tables, int n, const tables_t *src, err_t *err)
{
    char dpath[4200];
    snprintf(dpath, sizeof dpath, "%s" ONNX_TABLES_DATA, path);
    const char *slash = strrchr(dpath, '/');
    const char *location = slash ? slash + 1 : dpath;
    Onnx__GraphProto *g = model->graph;
    const size_t n_init = g->n_initializer;
    Onnx__TensorProto **inits = malloc((n_init + (size_t)n) * sizeof *inits);
    ext_t *ext = calloc((size_t)n, sizeof *ext);
    uint8_t *buf = NULL;
    int rc = -1;
    if (!inits || !ext) {
        err_set(err, "%s: out of memory", path);
        goto out;
    }
    if (write_data(dpath, location, tables, n, ext, src, err) != 0)
        goto out;
    memcpy(inits, g->initializer, n_init * sizeof *inits);
    for (int i = 0; i < n; i++)
        inits[n_init + (size_t)i] = tables[i].proto;
    Onnx__TensorProto **own = g->initializer;
    g->initializer = inits;
    g->n_initializer = n_init + (size_t)n;
    const size_t len = onnx__model_proto__get_packed_size(model);
    if (len > MAX_BYTES)
        err_set(err, "%s: the model takes %zu bytes without its tables, over protobuf's 2 GiB",
                path, len);
    else if (!(buf = malloc(len)))
        err_set(err, "%s: out of memory for %zu bytes", path, len);
    else if (onnx__model_proto__pack(model, buf) != len)
        err_set(err, "%s: internal error: packed size changed", path);
    else
        rc = fs_write_atomic(path, buf, len, err);
    g->initializer = own;
    g->n_initializer = n_init;
out:
    free(buf);
    free(ext);
    free(inits);
    return rc;
}

int onnx_tables_write(const char *path, Onnx__ModelProto *model, const onnx_table_init_t *tables,
                      int n, const tables_t *src, uint64_t external_over, err_t *err)
{
    const size_t head_len = onnx__model_proto__get_packed_size(model);
    uint64_t total = head_len;
    for (int i = 0; i < n; i++)
        total += tables[i].bytes;
    if (total > external_over)
        return write_external(path, model, tables, n, src, err);
    if (head_len > MAX_BYTES)
        return err_set(err, "%s: the model takes %zu bytes, over protobuf's 2 GiB", path,
                       head_len);
    uint8_t *head = malloc(head_len ? head_len : 1);
    if (!head)
        return err_set(err, "%s: out of memory for %zu bytes", path, head_len);
    int rc = onnx__model_proto__pack(model, head) != head_len
                 ? err_set(err, "%s: internal error: packed size changed", path)
                 : write_inline(path, head, head_len, tables, n, src, err);
    free(head);
    return rc;
}
