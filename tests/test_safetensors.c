/* test_safetensors.c - CUnit suite "safetensors": a checkpoint of a real
 * model (with and without the NORM section) exported with safetensors_export
 * and read back by an independent parser of the format: the header length
 * and its space padding, the JSON header (cJSON), each tensor's dtype, shape
 * and data offsets (which must tile the data area), the metadata, and the
 * data bit for bit. Plus an unwritable path. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>

#include "common/config/config.h"
#include "export/checkpoint.h"
#include "export/safetensors.h"
#include "export/trained.h"
#include "common/util/fsutil.h"
#include "common/nn/model.h"
#include "tests.h"

static const char CFG_TEXT[] =
    "name = \"st_cnn\";\n"
    "data = { classes = [\"zero\", \"one\", \"two\", \"three\", \"four\", \"five\", \"six\",\n"
    "                    \"seven\", \"eight\", \"nine\"]; };\n"
    "model = { input = [1, 28, 28];\n"
    "  layers = ( { type = \"conv2d\"; filters = 3; kernel = 3; activation = \"relu\"; },\n"
    "             { type = \"maxpool2d\"; pool = 2; }, { type = \"flatten\"; },\n"
    "             { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n"
    "train = { batch = 4; };\n";

/* Bit patterns of every kind (NaN with payload, -0, subnormals, infinities):
 * only a bit-exact export passes. */
static float pattern(size_t i, uint32_t salt)
{
    uint32_t u = (uint32_t)(i * 2654435761u) ^ salt;
    if (i == 1)
        u = 0x7fc01234u;
    if (i == 2)
        u = 0x80000000u;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Writes a checkpoint of CFG_TEXT's model at path, with NORM statistics of
 * kind norm_kind (0: none). */
static void write_ckpt(const char *path, int norm_kind)
{
    job_config_t *cfg = calloc(1, sizeof *cfg);
    err_t err = {{0}};
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    int rc = config_load_text(cfg, "st.cfg", CFG_TEXT, NULL, 0, 0, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(rc == 0);
    model_t *m = model_new(cfg, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    checkpoint_t ck = {.step = 1234567890123ull, .epoch = 3, .seed = 9,
                       .config_text = (char *)CFG_TEXT, .table = *model_params(m)};
    const size_t n = ck.table.n_params;
    ck.params = malloc(n * sizeof *ck.params);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck.params);
    for (size_t i = 0; i < n; i++)
        ck.params[i] = pattern(i, 0x3f000000u);
    if (norm_kind) {
        ck.norm_kind = norm_kind;
        ck.norm_dim = (size_t)model_input_size(m);
        ck.norm_mean = malloc(ck.norm_dim * sizeof(float));
        ck.norm_inv_std = malloc(ck.norm_dim * sizeof(float));
        CU_ASSERT_FATAL(ck.norm_mean && ck.norm_inv_std);
        unsigned seed = 7u * (unsigned)norm_kind; /* random-looking, the same every run */
        for (size_t j = 0; j < ck.norm_dim; j++) {
            seed = seed * 1103515245u + 12345u;
            ck.norm_mean[j] = (float)(seed >> 8) / (float)(1u << 24);
            seed = seed * 1103515245u + 12345u;
            ck.norm_inv_std[j] = 1.0f + 10.0f * (float)(seed >> 8) / (float)(1u << 24);
        }
    }
    rc = checkpoint_write(path, &ck, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT(rc == 0);
    free(ck.params);
    free(ck.norm_mean);
    free(ck.norm_inv_std);
    model_destroy(&m);
    free(cfg);
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* One tensor's place in the data area, for the tiling check. */
typedef struct {
    uint64_t begin, end;
} span_t;

static int span_cmp(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Checks that the header entry `name` of root is an F32 tensor of the given
 * shape whose bytes in data (data_len bytes) equal vals[0..n) bit for bit,
 * little-endian. Stores its span in *sp. */
static void check_tensor(const cJSON *root, const char *name, int ndim, const int *shape,
                         const float *vals, size_t n, const uint8_t *data, uint64_t data_len,
                         span_t *sp)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!e)
        fprintf(stderr, "\n    no tensor %s in the header\n", name);
    CU_ASSERT_FATAL(cJSON_IsObject(e));
    CU_ASSERT(cJSON_GetArraySize(e) == 3);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    CU_ASSERT(cJSON_IsString(dt) && strcmp(dt->valuestring, "F32") == 0);
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    CU_ASSERT_FATAL(cJSON_IsArray(sh));
    CU_ASSERT_FATAL(cJSON_GetArraySize(sh) == ndim);
    for (int d = 0; d < ndim; d++) {
        const cJSON *v = cJSON_GetArrayItem(sh, d);
        CU_ASSERT(cJSON_IsNumber(v) && v->valuedouble == shape[d]);
    }
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    CU_ASSERT_FATAL(cJSON_IsArray(off) && cJSON_GetArraySize(off) == 2);
    const cJSON *b = cJSON_GetArrayItem(off, 0), *en = cJSON_GetArrayItem(off, 1);
    CU_ASSERT_FATAL(cJSON_IsNumber(b) && cJSON_IsNumber(en));
    sp->begin = (uint64_t)b->valuedouble;
    sp->end = (uint64_t)en->valuedouble;
    CU_ASSERT_FATAL(sp->begin <= sp->end && sp->end <= data_len);
    CU_ASSERT_FATAL(sp->end - sp->begin == 4 * (uint64_t)n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = data + sp->begin + 4 * i;
        uint32_t got = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 24, want;
        memcpy(&want, &vals[i], 4);
        bad += got != want;
    }
    if (bad)
        fprintf(stderr, "\n    %s: %zu of %zu floats differ\n", name, bad, n);
    CU_ASSERT(bad == 0);
}

/* The metadata value of key, or NULL. */
static const char *meta_str(const cJSON *meta, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Exports the checkpoint at ckpt to out and checks the file against it. */
static void export_and_check(const char *ckpt, const char *out)
{
    err_t err = {{0}};
    trained_t *t = trained_open(ckpt, 1, &err);
    if (!t)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    int rc = safetensors_export(t, out, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(rc == 0);

    size_t len;
    char *raw = fs_read_all(out, &len, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
    const uint8_t *f = (const uint8_t *)raw;
    CU_ASSERT_FATAL(len >= 8);
    const uint64_t hlen = le64(f);
    CU_ASSERT_FATAL(hlen >= 2 && hlen <= len - 8);
    CU_ASSERT(hlen % 8 == 0);
    CU_ASSERT(f[8] == '{');
    /* the JSON text, then at most 7 spaces of padding */
    size_t jlen = (size_t)hlen;
    while (jlen > 0 && f[8 + jlen - 1] == ' ')
        jlen--;
    CU_ASSERT(hlen - jlen < 8);
    CU_ASSERT(jlen > 0 && f[8 + jlen - 1] == '}');
    CU_ASSERT(memchr(f + 8, '\0', (size_t)hlen) == NULL);
    cJSON *root = cJSON_ParseWithLength(raw + 8, jlen);
    CU_ASSERT_FATAL(cJSON_IsObject(root));
    const uint8_t *data = f + 8 + hlen;
    const uint64_t data_len = len - 8 - hlen;

    /* every tensor of the checkpoint, then NORM's, and nothing else */
    const checkpoint_t *ck = t->ck;
    const param_table_t *tab = &ck->table;
    span_t sp[PARAMS_MAX + 2];
    int n = 0;
    for (int i = 0; i < tab->n; i++, n++)
        check_tensor(root, tab->t[i].name, tab->t[i].ndim, tab->t[i].shape,
                     ck->params + tab->t[i].offset, tab->t[i].size, data, data_len, &sp[n]);
    if (ck->norm_kind) {
        const int dim[1] = {(int)ck->norm_dim};
        check_tensor(root, SAFETENSORS_NORM_MEAN, 1, dim, ck->norm_mean, ck->norm_dim, data,
                     data_len, &sp[n++]);
        check_tensor(root, SAFETENSORS_NORM_INV_STD, 1, dim, ck->norm_inv_std, ck->norm_dim, data,
                     data_len, &sp[n++]);
    } else {
        CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(root, SAFETENSORS_NORM_MEAN));
        CU_ASSERT_PTR_NULL(cJSON_GetObjectItemCaseSensitive(root, SAFETENSORS_NORM_INV_STD));
    }
    CU_ASSERT(cJSON_GetArraySize(root) == n + 1);
    /* the spans tile [0, data_len) without overlap, in table order */
    for (int i = 1; i < n; i++)
        CU_ASSERT(sp[i].begin == sp[i - 1].end);
    qsort(sp, (size_t)n, sizeof sp[0], span_cmp);
    uint64_t next = 0;
    for (int i = 0; i < n; i++) {
        CU_ASSERT(sp[i].begin == next);
        next = sp[i].end;
    }
    CU_ASSERT(next == data_len);

    /* metadata: strings only */
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    CU_ASSERT_FATAL(cJSON_IsObject(meta));
    const cJSON *it;
    cJSON_ArrayForEach(it, meta) CU_ASSERT(cJSON_IsString(it));
    const char *v;
    CU_ASSERT((v = meta_str(meta, "format")) && strcmp(v, "pt") == 0);
    CU_ASSERT((v = meta_str(meta, "producer")) && strcmp(v, "pstrain") == 0);
    CU_ASSERT((v = meta_str(meta, "checkpoint_version")) && strcmp(v, "1") == 0);
    CU_ASSERT((v = meta_str(meta, "name")) && strcmp(v, "st_cnn") == 0);
    CU_ASSERT((v = meta_str(meta, "step")) && strcmp(v, "1234567890123") == 0);
    CU_ASSERT((v = meta_str(meta, "epoch")) && strcmp(v, "3") == 0);
    CU_ASSERT((v = meta_str(meta, "config")) && strcmp(v, CFG_TEXT) == 0);
    CU_ASSERT((v = meta_str(meta, "normalize")) &&
              strcmp(v, ck->norm_kind == 2 ? "per_pixel" : ck->norm_kind ? "global" : "none") == 0);
    v = meta_str(meta, "classes");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    cJSON *cls = cJSON_Parse(v);
    CU_ASSERT(cJSON_IsArray(cls) && cJSON_GetArraySize(cls) == 10);
    CU_ASSERT(cJSON_IsString(cJSON_GetArrayItem(cls, 7)) &&
              strcmp(cJSON_GetArrayItem(cls, 7)->valuestring, "seven") == 0);
    cJSON_Delete(cls);

    cJSON_Delete(root);
    free(raw);
    trained_destroy(&t);
}

static void test_export_plain(void)
{
    char ckpt[512], out[512];
    snprintf(ckpt, sizeof ckpt, "%s/st_plain.ckpt", tests_tmp_dir());
    snprintf(out, sizeof out, "%s/st_plain.safetensors", tests_tmp_dir());
    write_ckpt(ckpt, 0);
    export_and_check(ckpt, out);
    /* an export over an existing file replaces it */
    export_and_check(ckpt, out);
}

static void test_export_norm(void)
{
    char ckpt[512], out[512];
    snprintf(ckpt, sizeof ckpt, "%s/st_norm.ckpt", tests_tmp_dir());
    snprintf(out, sizeof out, "%s/st_norm.safetensors", tests_tmp_dir());
    write_ckpt(ckpt, 2);
    export_and_check(ckpt, out);
    write_ckpt(ckpt, 1);
    export_and_check(ckpt, out);
}

static void test_export_errors(void)
{
    char ckpt[512], out[600];
    err_t err = {{0}};
    struct stat st;
    snprintf(ckpt, sizeof ckpt, "%s/st_err.ckpt", tests_tmp_dir());
    write_ckpt(ckpt, 0);
    trained_t *t = trained_open(ckpt, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    snprintf(out, sizeof out, "%s/st_no_such_dir/model.safetensors", tests_tmp_dir());
    CU_ASSERT(safetensors_export(t, out, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, out);
    CU_ASSERT(stat(out, &st) != 0);
    CU_ASSERT(safetensors_export(t, NULL, &err) == -1);
    /* a tensor that takes a name the file reserves */
    snprintf(t->ck->table.t[0].name, PARAM_NAME_LEN, "%s", SAFETENSORS_NORM_MEAN);
    snprintf(out, sizeof out, "%s/st_reserved.safetensors", tests_tmp_dir());
    CU_ASSERT(safetensors_export(t, out, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, out);
    TESTS_ASSERT_HAS(err.msg, SAFETENSORS_NORM_MEAN);
    CU_ASSERT(stat(out, &st) != 0);
    trained_destroy(&t);
}

int test_safetensors_register(void)
{
    CU_pSuite s = CU_add_suite("safetensors", NULL, NULL);
    if (!s || !CU_add_test(s, "export_plain", test_export_plain) ||
        !CU_add_test(s, "export_norm", test_export_norm) ||
        !CU_add_test(s, "export_errors", test_export_errors))
        return -1;
    return 0;
}
