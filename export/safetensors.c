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

/* One tensor of the file: its name, shape and floats. */
typedef struct {
    const char *name;
    int ndim;
    const int *shape;
    const float *data;
    size_t n;
} st_tensor_t;

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
    /* offsets stay below CHECKPOINT_MAX_BYTES, far inside a double's exact integers */
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

int safetensors_export(const trained_t *t, const char *path, err_t *err)
{
    if (!path)
        return err_set(err, "safetensors_export: no path");
    if (!t || !t->ck || !t->cfg || !t->model)
        return err_set(err, "%s: no model to export", path);
    const checkpoint_t *ck = t->ck;
    const param_table_t *tab = &ck->table;

    /* the tensors in file order: the checkpoint's, then NORM's */
    st_tensor_t ts[PARAMS_MAX + 2];
    int n = 0;
    for (int i = 0; i < tab->n; i++) {
        const param_spec_t *p = &tab->t[i];
        if (strcmp(p->name, SAFETENSORS_NORM_MEAN) == 0 ||
            strcmp(p->name, SAFETENSORS_NORM_INV_STD) == 0 || strcmp(p->name, "__metadata__") == 0)
            return err_set(err, "%s: the checkpoint's tensor %s takes a name the safetensors "
                           "file reserves", path, p->name);
        ts[n++] = (st_tensor_t){p->name, p->ndim, p->shape, ck->params + p->offset, p->size};
    }
    int norm_shape[1] = {(int)ck->norm_dim};
    if (ck->norm_kind != 0) {
        if (!ck->norm_mean || !ck->norm_inv_std || ck->norm_dim == 0 || ck->norm_dim > INT32_MAX)
            return err_set(err, "%s: normalisation of %zu features without its statistics",
                           path, ck->norm_dim);
        ts[n++] = (st_tensor_t){SAFETENSORS_NORM_MEAN, 1, norm_shape, ck->norm_mean, ck->norm_dim};
        ts[n++] = (st_tensor_t){SAFETENSORS_NORM_INV_STD, 1, norm_shape, ck->norm_inv_std,
                                ck->norm_dim};
    }

    int rc = -1;
    char *json = NULL;
    uint8_t *buf = NULL;
    cJSON *root = cJSON_CreateObject(), *meta = metadata(t);
    if (!root || !meta) {
        err_set(err, "%s: out of memory for the header", path);
        goto out;
    }
    if (!cJSON_AddItemToObject(root, "__metadata__", meta)) {
        err_set(err, "%s: out of memory for the header", path);
        goto out;
    }
    meta = NULL; /* root's now */
    uint64_t data_len = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = tensor_entry(&ts[i], data_len);
        if (!e || !cJSON_AddItemToObject(root, ts[i].name, e)) {
            cJSON_Delete(e);
            err_set(err, "%s: out of memory for the header", path);
            goto out;
        }
        data_len += 4 * (uint64_t)ts[i].n;
    }
    if (!(json = cJSON_PrintUnformatted(root))) {
        err_set(err, "%s: out of memory for the header", path);
        goto out;
    }
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
    if (data_len > SIZE_MAX - 8 - hlen) {
        err_set(err, "%s: %" PRIu64 " bytes of tensors do not fit in memory", path, data_len);
        goto out;
    }
    size_t total = 8 + hlen + (size_t)data_len;
    if (!(buf = malloc(total))) {
        err_set(err, "%s: out of memory for %zu bytes", path, total);
        goto out;
    }
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, json, jlen);
    memset(buf + 8 + jlen, ' ', hlen - jlen);
    uint8_t *p = buf + 8 + hlen;
    for (int i = 0; i < n; i++) {
        le_store_floats(p, ts[i].data, ts[i].n);
        p += 4 * ts[i].n;
    }
    rc = fs_write_atomic(path, buf, total, err);
out:
    free(buf);
    free(json);
    cJSON_Delete(meta);
    cJSON_Delete(root);
    return rc;
}
