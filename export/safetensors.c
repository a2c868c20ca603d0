/* safetensors.c - the safetensors exporter (format in safetensors.h): a cJSON
 * header, space padding to 8 bytes, then the float32 data, written in one
 * atomic file write. */
#include "export/safetensors.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/util/fsutil.h"
#include "common/util/le.h"

/* One tensor of the file: its name, shape and floats (data, or the
 * embedding table `table` of the trained model when data is NULL). */
typedef struct {
    const char *name;
    int ndim;
    const int *shape;
    const float *data;
    size_t n;
    int table;
} st_tensor_t;

/* Every tensor of a file: the checkpoint's, NORM's, the tables'. */
typedef struct {
    st_tensor_t t[PARAMS_MAX + 2 + CFG_MAX_FIELDS];
    int n;
    int norm_shape[1];
    int table_shape[CFG_MAX_FIELDS][2];
    char table_name[CFG_MAX_FIELDS][32];
} st_list_t;

static const char *norm_name(int kind)
{
    switch (kind) {
    case NORM_NONE: return "none";
    case NORM_GLOBAL: return "global";
    case NORM_PER_PIXEL: return "per_pixel";
    default: return "unknown";
    }
}

/* Adds key: value (a string) to obj. Returns 0, or -1 (out of memory). */
static int add_str(cJSON *obj, const char *key, const char *value)
{
    return cJSON_AddStringToObject(obj, key, value) ? 0 : -1;
}

/* The class names of t as a JSON array, in a malloc'd string. Returns it,
 * or NULL (out of memory). */
static char *classes_json(const trained_t *t)
{
    cJSON *a = cJSON_CreateArray();
    if (!a)
        return NULL;
    char buf[CFG_NAME_LEN + 16];
    for (int k = 0; k < model_n_classes(t->model); k++) {
        cJSON *s = cJSON_CreateString(trained_class_name(t, k, buf, sizeof buf));
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    char *text = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return text;
}

/* The "__metadata__" object of t. Returns it, or NULL (out of memory). */
static cJSON *metadata(const trained_t *t)
{
    const checkpoint_t *ck = t->ck;
    cJSON *m = cJSON_CreateObject();
    char num[32];
    char *classes = classes_json(t);
    if (!m || !classes)
        goto fail;
    snprintf(num, sizeof num, "%d", CHECKPOINT_VERSION);
    if (add_str(m, "format", "pt") || add_str(m, "producer", "pstrain") ||
        add_str(m, "checkpoint_version", num) || add_str(m, "name", t->cfg->name))
        goto fail;
    snprintf(num, sizeof num, "%" PRIu64, ck->step);
    if (add_str(m, "step", num))
        goto fail;
    snprintf(num, sizeof num, "%" PRIu32, ck->epoch);
    if (add_str(m, "epoch", num) || add_str(m, "normalize", norm_name(ck->norm_kind)) ||
        add_str(m, "classes", classes) ||
        add_str(m, "config", ck->config_text ? ck->config_text : ""))
        goto fail;
    free(classes);
    return m;
fail:
    free(classes);
    cJSON_Delete(m);
    return NULL;
}

/* The entry {"dtype":"F32","shape":[...],"data_offsets":[begin,end]} of a
 * tensor. Returns it, or NULL (out of memory). */
static cJSON *tensor_entry(const st_tensor_t *x, uint64_t begin)
{
    cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
    if (!e || !shape || !offs)
        goto fail;
    for (int d = 0; d < x->ndim; d++)
        if (!cJSON_AddItemToArray(shape, cJSON_CreateNumber(x->shape[d])))
            goto fail;
    /* offsets are exact in a double up to 2^53 bytes: tables of 8 PiB */
    if (!cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)begin)) ||
        !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(begin + 4 * (uint64_t)x->n))))
        goto fail;
    if (!cJSON_AddStringToObject(e, "dtype", "F32") || !cJSON_AddItemToObject(e, "shape", shape))
        goto fail;
    shape = NULL; /* e's now */
    if (!cJSON_AddItemToObject(e, "data_offsets", offs))
        goto fail;
    return e;
fail:
    cJSON_Delete(e);
    cJSON_Delete(shape);
    cJSON_Delete(offs);
    return NULL;
}

/* The tensors of t in file order into l: the checkpoint's, then NORM's,
 * then the embedding tables (SAFETENSORS_TABLE). Returns 0, or -1 with err
 * naming path. */
static int collect(const trained_t *t, st_list_t *l, const char *path, err_t *err)
{
    const checkpoint_t *ck = t->ck;
    const param_table_t *tab = &ck->table;
    l->n = 0;
    for (int i = 0; i < tab->n; i++) {
        const param_spec_t *p = &tab->t[i];
        if (strcmp(p->name, SAFETENSORS_NORM_MEAN) == 0 ||
            strcmp(p->name, SAFETENSORS_NORM_INV_STD) == 0 || strcmp(p->name, "__metadata__") == 0 ||
            strncmp(p->name, SAFETENSORS_TABLE_PREFIX, strlen(SAFETENSORS_TABLE_PREFIX)) == 0)
            return err_set(err, "%s: the checkpoint's tensor %s takes a name the safetensors "
                           "file reserves", path, p->name);
        l->t[l->n++] = (st_tensor_t){p->name, p->ndim, p->shape, ck->params + p->offset, p->size,
                                     -1};
    }
    l->norm_shape[0] = (int)ck->norm_dim;
    if (ck->norm_kind != 0) {
        if (!ck->norm_mean || !ck->norm_inv_std || ck->norm_dim == 0 || ck->norm_dim > INT32_MAX)
            return err_set(err, "%s: normalisation of %zu features without its statistics",
                           path, ck->norm_dim);
        l->t[l->n++] = (st_tensor_t){SAFETENSORS_NORM_MEAN, 1, l->norm_shape, ck->norm_mean,
                                     ck->norm_dim, -1};
        l->t[l->n++] = (st_tensor_t){SAFETENSORS_NORM_INV_STD, 1, l->norm_shape,
                                     ck->norm_inv_std, ck->norm_dim, -1};
    }
    for (int f = 0; t->tables && f < tables_fields(t->tables); f++) {
        l->table_shape[f][0] = (int)tables_rows(t->tables, f);
        l->table_shape[f][1] = tables_dim(t->tables);
        snprintf(l->table_name[f], sizeof l->table_name[f], SAFETENSORS_TABLE_PREFIX "%d", f);
        l->t[l->n++] = (st_tensor_t){l->table_name[f], 2, l->table_shape[f], NULL,
                                     (size_t)tables_rows(t->tables, f) * tables_dim(t->tables), f};
    }
    return 0;
}

/* The header of t's file with the tensors of l, padded with spaces to a
 * multiple of 8 bytes, in a malloc'd string (*len its length). Returns it,
 * or NULL (out of memory). */
static char *header(const trained_t *t, const st_list_t *l, size_t *len)
{
    char *json = NULL, *out = NULL;
    cJSON *root = cJSON_CreateObject(), *meta = metadata(t);
    if (!root || !meta || !cJSON_AddItemToObject(root, "__metadata__", meta))
        goto out;
    meta = NULL; /* root's now */
    uint64_t data_len = 0;
    for (int i = 0; i < l->n; i++) {
        cJSON *e = tensor_entry(&l->t[i], data_len);
        if (!e || !cJSON_AddItemToObject(root, l->t[i].name, e)) {
            cJSON_Delete(e);
            goto out;
        }
        data_len += 4 * (uint64_t)l->t[i].n;
    }
    if (!(json = cJSON_PrintUnformatted(root)))
        goto out;
    size_t jlen = strlen(json);
    *len = (jlen + 7) / 8 * 8;
    if ((out = malloc(*len))) {
        memcpy(out, json, jlen);
        memset(out + jlen, ' ', *len - jlen);
    }
out:
    free(json);
    cJSON_Delete(meta);
    cJSON_Delete(root);
    return out;
}

/* tables_write_fn into an atomic file. */
static int write_piece(void *ctx, const void *data, size_t len, err_t *err)
{
    return fs_atomic_write(ctx, data, len, err);
}

/* Writes n floats little-endian to f through a small buffer. Returns 0, or
 * -1 with err. */
static int write_floats(fs_atomic_t *f, const float *x, size_t n, err_t *err)
{
    uint8_t buf[1 << 16];
    const size_t per = sizeof buf / 4;
    for (size_t off = 0; off < n; off += per) {
        const size_t k = n - off < per ? n - off : per;
        le_store_floats(buf, x + off, k);
        if (fs_atomic_write(f, buf, 4 * k, err) != 0)
            return -1;
    }
    return 0;
}

int safetensors_export(const trained_t *t, const char *path, err_t *err)
{
    if (!path)
        return err_set(err, "safetensors_export: no path");
    if (!t || !t->ck || !t->cfg || !t->model)
        return err_set(err, "%s: no model to export", path);
    st_list_t *l = malloc(sizeof *l);
    if (!l)
        return err_set(err, "%s: out of memory", path);
    int rc = collect(t, l, path, err);
    size_t hlen = 0;
    char *head = rc == 0 ? header(t, l, &hlen) : NULL;
    fs_atomic_t *f = NULL;
    if (rc == 0 && !head)
        rc = err_set(err, "%s: out of memory for the header", path);
    if (rc == 0 && !(f = fs_atomic_open(path, err)))
        rc = -1;
    uint8_t n8[8];
    le_store64(n8, (uint64_t)hlen);
    if (rc == 0 && (fs_atomic_write(f, n8, sizeof n8, err) != 0 ||
                    fs_atomic_write(f, head, hlen, err) != 0))
        rc = -1;
    for (int i = 0; rc == 0 && i < l->n; i++) {
        const st_tensor_t *x = &l->t[i];
        rc = x->data ? write_floats(f, x->data, x->n, err)
                     : tables_stream(t->tables, x->table, 0, write_piece, f, err);
    }
    if (rc == 0)
        rc = fs_atomic_commit(&f, err);
    else
        fs_atomic_abort(&f);
    if (rc != 0 && err && !strstr(err->msg, path))
        err_prefix(err, "%s", path);
    free(head);
    free(l);
    return rc;
}
