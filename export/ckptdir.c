/* ckptdir.c - a run's checkpoint folders and their manifests (see ckptdir.h). */
#include "export/ckptdir.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/util/fsutil.h"

#define MANIFEST "manifest.json"
#define MANIFEST_FORMAT "pstrain-checkpoint"
#define MAX_PARTS 1024

int ckptdir_step_dir(char *buf, size_t len, const char *root, long step, err_t *err)
{
    int w = snprintf(buf, len, "%s/step-%09ld", root, step);
    if (w < 0 || (size_t)w >= len)
        return err_set(err, "%s: checkpoint folder name too long", root);
    return 0;
}

int ckptdir_part_path(char *buf, size_t len, const char *root, long step, int index,
                      int n_shards, err_t *err)
{
    int w = n_shards ? snprintf(buf, len, "%s/step-%09ld/shard-%d-of-%d.ckpt", root, step, index,
                                n_shards)
                     : snprintf(buf, len, "%s/step-%09ld/model.ckpt", root, step);
    if (w < 0 || (size_t)w >= len)
        return err_set(err, "%s: checkpoint file name too long", root);
    return 0;
}

int ckptdir_tables_path(char *buf, size_t len, const char *dir, int index, int n_parts, int delta,
                        err_t *err)
{
    int w = snprintf(buf, len, "%s/%s-%d-of-%d.rows", dir, delta ? "delta" : "tables", index,
                     n_parts > 0 ? n_parts : 1);
    if (w < 0 || (size_t)w >= len)
        return err_set(err, "%s: tables file name too long", dir);
    return 0;
}

/* Lists step's tables files (one per part, n_parts 0: one; full or delta)
 * in the array tables, checking that each exists. Returns 0, or -1 with
 * err. */
static int list_tables(cJSON *tables, const char *dir, long step, int n_parts, int delta,
                       err_t *err)
{
    char path[4400];
    for (int i = 0; i < (n_parts ? n_parts : 1); i++) {
        struct stat st;
        if (ckptdir_tables_path(path, sizeof path, dir, i, n_parts, delta, err) != 0)
            return -1;
        if (stat(path, &st) != 0)
            return err_set(err, "%s: missing (%s): checkpoint of step %ld not committed", path,
                           strerror(errno), step);
        cJSON_AddItemToArray(tables, cJSON_CreateString(strrchr(path, '/') + 1));
    }
    return 0;
}

/* ---- hex strings for the binary parts of the manifest ----------------------- */

static char *hex_of(const void *data, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    char *s = malloc(2 * n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[2 * n] = '\0';
    return s;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes exactly n bytes from hex string s into out. Returns 0 or -1. */
static int hex_decode(const char *s, void *out, size_t n)
{
    uint8_t *o = out;
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        o[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* Little-endian float32 bytes of v (n floats) as hex. */
static char *hex_of_floats(const float *v, size_t n)
{
    uint8_t *b = malloc(n ? 4 * n : 1);
    if (!b)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            b[4 * i + k] = (uint8_t)(u >> (8 * k));
    }
    char *s = hex_of(b, 4 * n);
    free(b);
    return s;
}

static int floats_of_hex(const char *s, float *v, size_t n)
{
    uint8_t *b = malloc(n ? 4 * n : 1);
    if (!b || hex_decode(s, b, 4 * n) != 0) {
        free(b);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u = 0;
        for (int k = 0; k < 4; k++)
            u |= (uint32_t)b[4 * i + k] << (8 * k);
        memcpy(&v[i], &u, 4);
    }
    free(b);
    return 0;
}

/* ---- step folders ---------------------------------------------------------- */

/* Parses "step-000001234" into *step. Returns 1 on a match. */
static int step_of_name(const char *name, long *step)
{
    if (strncmp(name, "step-", 5) != 0 || !name[5])
        return 0;
    char *end;
    long v = strtol(name + 5, &end, 10);
    if (*end || v < 0)
        return 0;
    *step = v;
    return 1;
}

static int has_manifest(const char *root, long step)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/step-%09ld/" MANIFEST, root, step);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Removes a step folder and the files in it (no subfolders are made there). */
static void remove_step(const char *root, long step)
{
    char dir[4200], path[4500];
    snprintf(dir, sizeof dir, "%s/step-%09ld", root, step);
    /* the manifest first: a half-removed folder must not look complete */
    snprintf(path, sizeof path, "%s/" MANIFEST, dir);
    unlink(path);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int cmp_long_desc(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

/* Lists the step folders under root, newest first, into steps (up to cap).
 * Returns the count. */
static int list_steps(const char *root, long *steps, int cap)
{
    DIR *d = opendir(root);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    long step;
    while ((e = readdir(d)) != NULL && n < cap)
        if (step_of_name(e->d_name, &step))
            steps[n++] = step;
    closedir(d);
    qsort(steps, (size_t)n, sizeof *steps, cmp_long_desc);
    return n;
}

/* The "tables_chain" of step's manifest under root into chain (at most
 * CKPT_CHAIN_MAX steps). Returns its length, 0 when there is none. */
static int read_chain(const char *root, long step, long *chain)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/step-%09ld/" MANIFEST, root, step);
    err_t err;
    char *text = fs_read_all(path, NULL, &err);
    cJSON *m = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "tables_chain"), *v;
    int n = 0;
    cJSON_ArrayForEach(v, c) {
        if (n == CKPT_CHAIN_MAX || !cJSON_IsNumber(v))
            break;
        chain[n++] = (long)v->valuedouble;
    }
    cJSON_Delete(m);
    return n;
}

/* 1 when step is in one of the n_kept chains of kept[] (the folders a kept
 * checkpoint's tables are rebuilt from). */
static int in_chains(const long (*kept)[CKPT_CHAIN_MAX], const int *len, int n_kept, long step)
{
    for (int k = 0; k < n_kept; k++)
        for (int i = 0; i < len[k]; i++)
            if (kept[k][i] == step)
                return 1;
    return 0;
}

static void prune(const char *root, long newest, int keep)
{
    long steps[4096];
    int n = list_steps(root, steps, 4096), complete = 0;
    long (*kept)[CKPT_CHAIN_MAX] = calloc((size_t)keep, sizeof *kept);
    int *len = calloc((size_t)keep, sizeof *len);
    if (!kept || !len) { /* remove nothing rather than a folder a kept one needs */
        free(kept);
        free(len);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (steps[i] > newest)
            continue; /* a later one in the making: not ours to judge */
        if (has_manifest(root, steps[i])) {
            if (++complete <= keep)
                len[complete - 1] = read_chain(root, steps[i], kept[complete - 1]);
            else if (!in_chains((const long (*)[CKPT_CHAIN_MAX])kept, len, keep, steps[i]))
                remove_step(root, steps[i]);
        } else if (steps[i] < newest) {
            remove_step(root, steps[i]); /* left incomplete by a crash */
        }
    }
    free(kept);
    free(len);
}

long ckptdir_latest(const char *root)
{
    long steps[4096];
    int n = list_steps(root, steps, 4096);
    for (int i = 0; i < n; i++)
        if (has_manifest(root, steps[i]))
            return steps[i];
    return -1;
}

/* ---- the manifest ------------------------------------------------------------ */

/* Adds "tables" (this folder's tables files) and "tables_chain" (the steps
 * whose files rebuild the tables: a full one, then deltas) to manifest m.
 * Returns 0, or -1 with err. */
static int add_tables(cJSON *m, const char *dir, long step, int n_shards,
                      const ckpt_tables_t *t, err_t *err)
{
    cJSON *files = cJSON_AddArrayToObject(m, "tables"),
          *chain = cJSON_AddArrayToObject(m, "tables_chain");
    if (!files || !chain)
        return err_set(err, "%s: out of memory writing the manifest", dir);
    if (t->chain_len < 1 || t->chain_len > CKPT_CHAIN_MAX || t->chain[t->chain_len - 1] != step)
        return err_set(err, "%s: a tables chain of %d steps that does not end at step %ld", dir,
                       t->chain_len, step);
    for (int i = 0; i < t->chain_len; i++)
        cJSON_AddItemToArray(chain, cJSON_CreateNumber((double)t->chain[i]));
    return list_tables(files, dir, step, n_shards, t->chain_len > 1, err);
}

int ckptdir_commit(const char *root, long step, int epoch, int n_shards, const ckpt_tables_t *tables,
                   const uint8_t *order, size_t order_len, int norm_kind, size_t norm_dim,
                   const float *norm_mean, const float *norm_inv_std, int keep, err_t *err)
{
    char dir[4200], path[4400];
    if (n_shards < 0 || n_shards > MAX_PARTS)
        return err_set(err, "%s: %d shards", root, n_shards);
    if (ckptdir_step_dir(dir, sizeof dir, root, step, err) != 0)
        return -1;
    cJSON *m = cJSON_CreateObject(), *files = cJSON_CreateArray();
    char *text = NULL, *hex = NULL;
    int rc = -1;
    if (!m || !files) {
        cJSON_Delete(files);
        goto oom;
    }
    cJSON_AddStringToObject(m, "format", MANIFEST_FORMAT);
    cJSON_AddNumberToObject(m, "version", 1);
    cJSON_AddNumberToObject(m, "step", (double)step);
    cJSON_AddNumberToObject(m, "epoch", epoch);
    cJSON_AddNumberToObject(m, "shards", n_shards);
    cJSON_AddItemToObject(m, "files", files);
    for (int i = 0; i < (n_shards ? n_shards : 1); i++) {
        if (ckptdir_part_path(path, sizeof path, root, step, i, n_shards, err) != 0)
            goto out;
        struct stat st;
        if (stat(path, &st) != 0) {
            err_set(err, "%s: missing (%s): checkpoint of step %ld not committed", path,
                    strerror(errno), step);
            goto out;
        }
        cJSON_AddItemToArray(files, cJSON_CreateString(strrchr(path, '/') + 1));
    }
    if (tables && add_tables(m, dir, step, n_shards, tables, err) != 0)
        goto out; /* the sparse embedding tables, a row file per part */
    if (!(hex = hex_of(order ? (const void *)order : "", order_len)))
        goto oom;
    cJSON_AddStringToObject(m, "data_order", hex);
    free(hex);
    hex = NULL;
    cJSON_AddNumberToObject(m, "norm_kind", norm_kind);
    if (norm_kind) {
        cJSON_AddNumberToObject(m, "norm_dim", (double)norm_dim);
        if (!(hex = hex_of_floats(norm_mean, norm_dim)))
            goto oom;
        cJSON_AddStringToObject(m, "norm_mean", hex);
        free(hex);
        if (!(hex = hex_of_floats(norm_inv_std, norm_dim)))
            goto oom;
        cJSON_AddStringToObject(m, "norm_inv_std", hex);
        free(hex);
        hex = NULL;
    }
    if (!(text = cJSON_Print(m)))
        goto oom;
    snprintf(path, sizeof path, "%s/" MANIFEST, dir);
    if (fs_write_atomic(path, text, strlen(text), err) != 0)
        goto out;
    prune(root, step, keep);
    rc = 0;
    goto out;
oom:
    err_set(err, "%s: out of memory writing the manifest", dir);
out:
    free(hex);
    free(text);
    cJSON_Delete(m);
    return rc;
}

/* The number in object m under key, checked to be a whole number in
 * [lo, hi]. Returns 0 or -1 with err. */
static int get_int(const cJSON *m, const char *key, double lo, double hi, long *v,
                   const char *path, err_t *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(m, key);
    if (!cJSON_IsNumber(it) || it->valuedouble < lo || it->valuedouble > hi ||
        it->valuedouble != (double)(long)it->valuedouble)
        return err_set(err, "%s: \"%s\" missing or not a whole number in [%.0f, %.0f]", path, key,
                       lo, hi);
    *v = (long)it->valuedouble;
    return 0;
}

checkpoint_t *ckptdir_load(const char *root, long step, err_t *err)
{
    char dir[4200], path[4400];
    if (ckptdir_step_dir(dir, sizeof dir, root, step, err) != 0)
        return NULL;
    snprintf(path, sizeof path, "%s/" MANIFEST, dir);
    size_t len = 0;
    char *text = fs_read_all(path, &len, err);
    if (!text)
        return NULL;
    cJSON *m = cJSON_ParseWithLength(text, len);
    free(text);
    checkpoint_t *parts[MAX_PARTS] = {0}, *whole = NULL;
    char names[MAX_PARTS > 64 ? 64 : MAX_PARTS][4400];
    const char *name_ptrs[64];
    int n_parts = 0;
    long v_step, v_epoch, n_shards, norm_kind = 0, norm_dim = 0;
    const cJSON *files, *fmt;
    if (!m) {
        err_set(err, "%s: not JSON", path);
        goto out;
    }
    fmt = cJSON_GetObjectItemCaseSensitive(m, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, MANIFEST_FORMAT) != 0) {
        err_set(err, "%s: not a pstrain checkpoint manifest", path);
        goto out;
    }
    if (get_int(m, "step", 0, 9e15, &v_step, path, err) != 0 ||
        get_int(m, "epoch", 0, 2e9, &v_epoch, path, err) != 0 ||
        get_int(m, "shards", 0, 64, &n_shards, path, err) != 0 ||
        get_int(m, "norm_kind", 0, 2, &norm_kind, path, err) != 0)
        goto out;
    if (v_step != step) {
        err_set(err, "%s: says step %ld, in the folder of step %ld", path, v_step, step);
        goto out;
    }
    files = cJSON_GetObjectItemCaseSensitive(m, "files");
    if (!cJSON_IsArray(files) || cJSON_GetArraySize(files) != (n_shards ? n_shards : 1)) {
        err_set(err, "%s: \"files\" does not list the %ld part(s)", path, n_shards ? n_shards : 1);
        goto out;
    }
    for (int i = 0; i < (n_shards ? n_shards : 1); i++) {
        if (ckptdir_part_path(names[i], sizeof names[i], root, step, i, (int)n_shards, err) != 0)
            goto out;
        name_ptrs[i] = names[i];
        if (!(parts[i] = checkpoint_read(names[i], err)))
            goto out;
        n_parts++;
        if (parts[i]->step != (uint64_t)step) {
            err_set(err, "%s: holds step %llu, the manifest says %ld", names[i],
                    (unsigned long long)parts[i]->step, step);
            goto out;
        }
    }
    if (n_shards) {
        if (!(whole = checkpoint_assemble(parts, name_ptrs, (int)n_shards, err)))
            goto out;
    } else {
        if (parts[0]->n_shards) {
            err_set(err, "%s: a shard, but the manifest lists the whole model", names[0]);
            goto out;
        }
        whole = parts[0];
        parts[0] = NULL;
    }
    whole->epoch = (uint32_t)v_epoch;
    /* the trainers' part: data order and normalisation */
    const cJSON *ord = cJSON_GetObjectItemCaseSensitive(m, "data_order");
    if (!cJSON_IsString(ord) || strlen(ord->valuestring) % 2 != 0 ||
        strlen(ord->valuestring) / 2 > 4096) {
        err_set(err, "%s: \"data_order\" missing or not hex", path);
        goto fail_whole;
    }
    free(whole->data_order);
    whole->data_order_len = strlen(ord->valuestring) / 2;
    whole->data_order = malloc(whole->data_order_len ? whole->data_order_len : 1);
    if (!whole->data_order || hex_decode(ord->valuestring, whole->data_order,
                                         whole->data_order_len) != 0) {
        err_set(err, "%s: \"data_order\" is not hex", path);
        goto fail_whole;
    }
    if (norm_kind) {
        const cJSON *mean = cJSON_GetObjectItemCaseSensitive(m, "norm_mean"),
                    *inv = cJSON_GetObjectItemCaseSensitive(m, "norm_inv_std");
        if (get_int(m, "norm_dim", 1, 1 << 24, &norm_dim, path, err) != 0)
            goto fail_whole;
        free(whole->norm_mean);
        free(whole->norm_inv_std);
        whole->norm_kind = (int)norm_kind;
        whole->norm_dim = (size_t)norm_dim;
        whole->norm_mean = malloc((size_t)norm_dim * sizeof(float));
        whole->norm_inv_std = malloc((size_t)norm_dim * sizeof(float));
        if (!whole->norm_mean || !whole->norm_inv_std || !cJSON_IsString(mean) ||
            !cJSON_IsString(inv) ||
            floats_of_hex(mean->valuestring, whole->norm_mean, (size_t)norm_dim) != 0 ||
            floats_of_hex(inv->valuestring, whole->norm_inv_std, (size_t)norm_dim) != 0) {
            err_set(err, "%s: \"norm_mean\" / \"norm_inv_std\" missing or not %ld floats", path,
                    norm_dim);
            goto fail_whole;
        }
    }
    goto out;
fail_whole:
    checkpoint_free(&whole);
out:
    for (int i = 0; i < n_parts; i++)
        checkpoint_free(&parts[i]);
    cJSON_Delete(m);
    return whole;
}

checkpoint_t *ckptdir_resume(const char *path, char *used, size_t used_len, err_t *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(used, used_len, "%s", path);
        return checkpoint_read(path, err);
    }
    char root[4200], final[4200];
    const char *name = strrchr(path, '/');
    long step;
    char parent[4000];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (step_of_name(name ? name + 1 : path, &step) && slash) { /* RUN/checkpoints/step-N */
        *slash = '\0';
        if (has_manifest(parent, step)) {
            snprintf(used, used_len, "%s", path);
            return ckptdir_load(parent, step, err);
        }
    }
    snprintf(root, sizeof root, "%s/checkpoints", path);
    snprintf(final, sizeof final, "%s/model.ckpt", path);
    long latest = ckptdir_latest(root);
    checkpoint_t *end = NULL;
    if (stat(final, &st) == 0 && S_ISREG(st.st_mode)) {
        if (!(end = checkpoint_read(final, err)))
            return NULL;
        if (latest < 0 || (long)end->step >= latest) {
            snprintf(used, used_len, "%s", final);
            return end;
        }
        checkpoint_free(&end);
    }
    if (latest < 0) {
        err_set(err, "%s: no model.ckpt and no complete checkpoint under checkpoints/", path);
        return NULL;
    }
    snprintf(used, used_len, "%s/step-%09ld", root, latest);
    return ckptdir_load(root, latest, err);
}

/* The folder a checkpoint path names: itself, or a file's folder, into
 * buf. Returns 0, or -1 with err. */
static int part_dir(const char *path, char *buf, size_t len, err_t *err)
{
    struct stat st;
    int n = snprintf(buf, len, "%s", path);
    if (n < 0 || (size_t)n >= len)
        return err_set(err, "%s: path too long", path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(buf, len, ".");
    return 0;
}

/* The tables files of a delta checkpoint in folder dir (a step folder of
 * root whose manifest has a chain of chain_len > 1 steps): the full files of
 * the chain's first step, then each later step's delta files, into *files
 * (*n of them). Returns 0, or -1 with err. */
static int chain_files(const char *dir, const long *chain, int chain_len, char ***files, int *n,
                       err_t *err)
{
    char root[4200], base[4300];
    snprintf(root, sizeof root, "%s", dir);
    char *slash = strrchr(root, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(root, sizeof root, ".");
    snprintf(base, sizeof base, "%s/step-%09ld", root, chain[0]);
    char **full;
    int parts;
    if (ckptdir_tables_list(base, &full, &parts, err) != 0)
        return err_prefix(err, "%s: the full checkpoint its deltas start from", dir);
    *files = realloc(full, (size_t)parts * (size_t)chain_len * sizeof **files);
    if (!*files) {
        ckptdir_tables_free(&full, parts);
        return err_set(err, "out of memory");
    }
    *n = parts;
    for (int k = 1; k < chain_len; k++)
        for (int i = 0; i < parts; i++) {
            char step_dir[4300], path[4500];
            struct stat st;
            snprintf(step_dir, sizeof step_dir, "%s/step-%09ld", root, chain[k]);
            if (ckptdir_tables_path(path, sizeof path, step_dir, i, parts, 1, err) != 0) {
                ckptdir_tables_free(files, *n);
                return -1;
            }
            if (stat(path, &st) != 0 || !((*files)[*n] = strdup(path))) {
                ckptdir_tables_free(files, *n);
                return err_set(err, "%s: missing (or out of memory): a delta of the tables", path);
            }
            (*n)++;
        }
    return 0;
}

int ckptdir_tables_list(const char *used, char ***files, int *n, err_t *err)
{
    char dir[4200], pattern[4300];
    *files = NULL;
    *n = 0;
    if (part_dir(used, dir, sizeof dir, err) != 0)
        return -1;
    const char *name = strrchr(dir, '/');
    long step, chain[CKPT_CHAIN_MAX];
    if (step_of_name(name ? name + 1 : dir, &step)) { /* a step folder: its chain */
        char root[4200];
        snprintf(root, sizeof root, "%s", dir);
        char *slash = strrchr(root, '/');
        if (slash)
            *slash = '\0';
        const int len = read_chain(slash ? root : ".", step, chain);
        if (len > 1)
            return chain_files(dir, chain, len, files, n, err);
    }
    snprintf(pattern, sizeof pattern, "%s/tables-*-of-*.rows", dir);
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc != 0) {
        if (rc != GLOB_NOMATCH)
            globfree(&g);
        return err_set(err, "%s: no tables files (tables-S-of-N.rows) next to the checkpoint: "
                       "a model with embedding tables resumes from a checkpoint written with them",
                       dir);
    }
    int parts = 0, idx;
    const char *base = strrchr(g.gl_pathv[0], '/') + 1;
    if (sscanf(base, "tables-%d-of-%d.rows", &idx, &parts) != 2 || parts < 1 ||
        parts > MAX_PARTS || g.gl_pathc != (size_t)parts) {
        globfree(&g);
        return err_set(err, "%s: %zu tables files, not one per server of one job (%s)", dir,
                       g.gl_pathc, base);
    }
    globfree(&g);
    if (!(*files = calloc((size_t)parts, sizeof **files)))
        return err_set(err, "out of memory");
    for (int i = 0; i < parts; i++) {
        char path[4400];
        struct stat st;
        if (ckptdir_tables_path(path, sizeof path, dir, i, parts, 0, err) != 0) {
            ckptdir_tables_free(files, parts);
            return -1;
        }
        if (!((*files)[i] = strdup(path))) {
            ckptdir_tables_free(files, parts);
            return err_set(err, "out of memory");
        }
        if (stat(path, &st) != 0) {
            ckptdir_tables_free(files, parts);
            return err_set(err, "%s: missing: the tables files of %d servers are incomplete",
                           path, parts);
        }
    }
    *n = parts;
    return 0;
}

int ckptdir_tables_load(const char *used, int (*load)(void *ctx, const char *path, err_t *err),
                        void *ctx, err_t *err)
{
    char **files;
    int n;
    if (ckptdir_tables_list(used, &files, &n, err) != 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = load(ctx, files[i], err);
    ckptdir_tables_free(&files, n);
    return rc;
}

void ckptdir_tables_free(char ***files, int n)
{
    for (int i = 0; *files && i < n; i++)
        free((*files)[i]);
    free(*files);
    *files = NULL;
}

int ckptdir_run_dir(const char *path, char *buf, size_t len, err_t *err)
{
    struct stat st;
    int n = snprintf(buf, len, "%s", path);
    if (n < 0 || (size_t)n >= len)
        return err_set(err, "%s: path too long", path);
    /* a step folder: the run's above checkpoints/ (as for a file in it) */
    const int dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    const char *last = strrchr(buf, '/');
    if (dir && strncmp(last ? last + 1 : buf, "step-", 5) != 0)
        return 0;
    if (dir && n + 2 < (int)len)
        snprintf(buf + n, len - (size_t)n, "/x"); /* as if a file in it */
    /* a file: its folder, and above checkpoints/step-N/ the run's */
    char *slash = strrchr(buf, '/');
    if (!slash) {
        snprintf(buf, len, ".");
        return 0;
    }
    *slash = '\0';
    const char *step = strrchr(buf, '/');
    step = step ? step + 1 : buf;
    size_t dlen = (size_t)(step - buf);
    const size_t cl = strlen("checkpoints/");
    if (strncmp(step, "step-", 5) == 0 && dlen >= cl &&
        strncmp(buf + dlen - cl, "checkpoints/", cl) == 0 &&
        (dlen == cl || buf[dlen - cl - 1] == '/')) {
        size_t keep = dlen - cl;
        if (keep == 0)
            snprintf(buf, len, ".");
        else
            buf[keep - 1] = '\0';
    }
    if (!buf[0])
        snprintf(buf, len, "/");
    return 0;
}

int ckptdir_holds_run(const char *dir, const char **what)
{
    static const char *const RUN_FILES[] = {"summary.json", "metrics.csv", "model.ckpt",
                                            "checkpoints"};
    for (size_t i = 0; i < sizeof RUN_FILES / sizeof RUN_FILES[0]; i++) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, RUN_FILES[i]);
        if (stat(path, &st) == 0) {
            if (what)
                *what = RUN_FILES[i];
            return 1;
        }
    }
    return 0;
}
