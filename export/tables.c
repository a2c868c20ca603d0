/* tables.c - a trained sparse model's embedding tables from its row files
 * (see tables.h): the set next to a checkpoint, files checked against the
 * job's config, a table streamed out in windows of rows, a store for
 * inference. */
#include "export/tables.h"

#include <glob.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nn/optim.h"
#include "common/util/le.h"

#define SET_MAX 4096 /* row files of one set at most */

struct tables_t {
    const job_config_t *cfg; /* borrowed */
    int fields, dim;
    uint64_t rows[CFG_MAX_FIELDS];
    uint64_t seed;
    rows_t *init;         /* an empty store of the tables: their initial values */
    int n;                /* row files */
    char **paths;         /* n, owned */
    rows_file_t **files;  /* n, mapped */
};

int tables_of_config(const job_config_t *cfg, rows_table_t *tab)
{
    const int F = cfg->model.sparse.fields;
    for (int f = 0; f < F; f++)
        tab[f] = (rows_table_t){.id = (uint32_t)f, .dim = (size_t)cfg->model.sparse.dim,
                                .rows = (uint64_t)cfg_sparse_rows(cfg, f)};
    return F;
}

rows_t *tables_store_new(const job_config_t *cfg, size_t max_rows, err_t *err)
{
    rows_table_t tab[CFG_MAX_FIELDS];
    const int F = tables_of_config(cfg, tab);
    optim_params_t op;
    optim_params_from_config(&op, cfg);
    const rows_opts_t o = {.seed = cfg->train.seed, .optim = &op, .max_rows = max_rows};
    return rows_new(tab, F, &o, err);
}

/* Checks that the mapped file at path holds tables of t. Returns 0, or -1
 * with err naming path. */
static int check_file(const tables_t *t, const rows_file_t *file, const char *path, err_t *err)
{
    if (rows_file_seed(file) != t->seed)
        return err_set(err, "%s: row file of seed %llu, the model's train.seed is %llu", path,
                       (unsigned long long)rows_file_seed(file), (unsigned long long)t->seed);
    for (int i = 0; i < rows_file_n_tables(file); i++) {
        const rows_file_table_t *ft = rows_file_table(file, i);
        if (ft->id >= (uint32_t)t->fields)
            return err_set(err, "%s: table %u, the model has %d fields (tables 0 to %d)", path,
                           ft->id, t->fields, t->fields - 1);
        if (ft->dim != (size_t)t->dim || ft->rows != t->rows[ft->id])
            return err_set(err, "%s: table %u of dim %zu and %llu rows, the model's has dim %d "
                           "and %llu rows", path, ft->id, ft->dim, (unsigned long long)ft->rows,
                           t->dim, (unsigned long long)t->rows[ft->id]);
    }
    return 0;
}

tables_t *tables_open(const job_config_t *cfg, const char *const *paths, int n, err_t *err)
{
    const int F = cfg->model.sparse.fields;
    if (F < 1 || F > CFG_MAX_FIELDS)
        return err_set(err, "%s: the model has no embedding tables (model.sparse)", cfg->source),
               NULL;
    if (n < 1)
        return err_set(err, "%s: no row files for the model's embedding tables", cfg->source),
               NULL;
    tables_t *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(err, "row files: out of memory"), NULL;
    t->cfg = cfg;
    t->fields = F;
    t->dim = cfg->model.sparse.dim;
    t->seed = cfg->train.seed;
    for (int f = 0; f < F; f++)
        t->rows[f] = (uint64_t)cfg_sparse_rows(cfg, f);
    t->paths = calloc((size_t)n, sizeof *t->paths);
    t->files = calloc((size_t)n, sizeof *t->files);
    if (!t->paths || !t->files) {
        err_set(err, "row files: out of memory");
        goto fail;
    }
    t->n = n;
    if (!(t->init = tables_store_new(cfg, 0, err)))
        goto fail;
    for (int i = 0; i < n; i++) {
        if (!(t->paths[i] = strdup(paths[i]))) {
            err_set(err, "%s: out of memory", paths[i]);
            goto fail;
        }
        if (!(t->files[i] = rows_file_open(paths[i], err)) ||
            check_file(t, t->files[i], paths[i], err) != 0)
            goto fail;
    }
    return t;
fail:
    tables_destroy(&t);
    return NULL;
}

/* The folder of path into dir ("." when it has none). */
static void dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, len, ".");
    else if (slash == path)
        snprintf(dir, len, "/");
    else
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

/* The set of row files in dir: N (returned) files tables-S-of-N.rows, S in
 * [0, N), all there. Returns N, or -1 with err. */
static int find_set(const char *dir, err_t *err)
{
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/" TABLES_PATTERN, dir);
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH)
        return err_set(err, "no row files %s next to the checkpoint: a model with embedding "
                       "tables keeps them there", pattern);
    if (rc != 0)
        return err_set(err, "%s: cannot list the row files", pattern);
    int set = 0;
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) {
        const char *name = strrchr(g.gl_pathv[i], '/') + 1;
        int s, n, end = 0;
        if (sscanf(name, "tables-%d-of-%d.rows%n", &s, &n, &end) != 2 || name[end] ||
            n < 1 || n > SET_MAX || s < 0 || s >= n)
            rc = err_set(err, "%s: not a name of the row files (tables-S-of-N.rows, S below N)",
                         g.gl_pathv[i]);
        else if (set && n != set)
            rc = err_set(err, "%s: row files of two sets (tables-*-of-%d.rows and "
                         "tables-*-of-%d.rows); keep one", dir, set, n);
        set = n;
    }
    globfree(&g);
    return rc == 0 ? set : -1;
}

tables_t *tables_open_next_to(const job_config_t *cfg, const char *ckpt_path, err_t *err)
{
    char dir[4096];
    dir_of(ckpt_path, dir, sizeof dir);
    const int n = find_set(dir, err);
    if (n < 0)
        return NULL;
    char **paths = calloc((size_t)n, sizeof *paths);
    tables_t *t = NULL;
    int i = 0;
    if (!paths) {
        err_set(err, "%s: out of memory", dir);
        return NULL;
    }
    for (; i < n; i++) {
        char p[4300];
        snprintf(p, sizeof p, "%s/tables-%d-of-%d.rows", dir, i, n);
        if (access(p, R_OK) != 0) {
            err_set(err, "%s is missing (the set of %d row files next to the checkpoint %s)", p,
                    n, ckpt_path);
            break;
        }
        if (!(paths[i] = strdup(p))) {
            err_set(err, "%s: out of memory", p);
            break;
        }
    }
    if (i == n)
        t = tables_open(cfg, (const char *const *)paths, n, err);
    for (int k = 0; k < n; k++)
        free(paths[k]);
    free(paths);
    return t;
}

void tables_destroy(tables_t **self_p)
{
    tables_t *t = self_p ? *self_p : NULL;
    if (!t)
        return;
    for (int i = 0; i < t->n; i++) {
        rows_file_close(&t->files[i]);
        free(t->paths[i]);
    }
    free(t->files);
    free(t->paths);
    rows_destroy(&t->init);
    free(t);
    *self_p = NULL;
}

int tables_fields(const tables_t *t)
{
    return t->fields;
}

int tables_dim(const tables_t *t)
{
    return t->dim;
}

uint64_t tables_rows(const tables_t *t, int f)
{
    return t->rows[f];
}

int tables_n_files(const tables_t *t)
{
    return t->n;
}

const char *tables_file(const tables_t *t, int i)
{
    return t->paths[i];
}

/* Rows [r0, r1) of field f's table into w ((r1 - r0) x dim floats): initial
 * values, then each file's evicted rows (initial again) and rows in order. */
static void fill_window(const tables_t *t, int f, uint64_t r0, uint64_t r1, float *w)
{
    const size_t dim = (size_t)t->dim;
    for (uint64_t r = r0; r < r1; r++)
        rows_initial(t->init, (uint32_t)f, r, w + (r - r0) * dim, NULL);
    for (int i = 0; i < t->n; i++) {
        const rows_file_t *file = t->files[i];
        for (uint64_t k = 0; k < rows_file_n_evicted(file); k++) {
            uint32_t id;
            uint64_t r;
            rows_file_evicted(file, k, &id, &r);
            if (id == (uint32_t)f && r >= r0 && r < r1)
                rows_initial(t->init, id, r, w + (r - r0) * dim, NULL);
        }
        for (int j = 0; j < rows_file_n_tables(file); j++) {
            const rows_file_table_t *ft = rows_file_table(file, j);
            if (ft->id != (uint32_t)f)
                continue;
            for (uint64_t k = 0; k < ft->n_rows; k++) {
                const uint64_t r = rows_file_row(file, j, k, NULL);
                if (r >= r0 && r < r1)
                    rows_file_row(file, j, k, w + (r - r0) * dim);
            }
        }
    }
}

int tables_stream(const tables_t *t, int f, size_t window, tables_write_fn write, void *ctx,
                  err_t *err)
{
    const size_t row_bytes = (size_t)t->dim * sizeof(float);
    const uint64_t rows = t->rows[f];
    uint64_t per = (window ? window : TABLES_WINDOW_BYTES) / row_bytes;
    per = per < 1 ? 1 : per > rows ? rows : per;
    float *w = malloc((size_t)per * row_bytes);
    if (!w)
        return err_set(err, "table %d: out of memory for a window of %llu rows", f,
                       (unsigned long long)per);
    int rc = 0;
    for (uint64_t r0 = 0; r0 < rows && rc == 0; r0 += per) {
        const uint64_t r1 = rows - r0 < per ? rows : r0 + per;
        fill_window(t, f, r0, r1, w);
        const size_t n = (size_t)(r1 - r0) * (size_t)t->dim;
#if !LE_HOST
        for (size_t i = 0; i < n; i++) {
            const float v = w[i];
            le_storef((uint8_t *)w + 4 * i, v);
        }
#endif
        rc = write(ctx, w, n * sizeof *w, err);
    }
    free(w);
    return rc;
}

rows_t *tables_load(const tables_t *t, err_t *err)
{
    rows_t *s = tables_store_new(t->cfg, 0, err);
    for (int i = 0; s && i < t->n; i++)
        if (rows_load(s, t->paths[i], NULL, NULL, err) != 0)
            rows_destroy(&s);
    return s;
}

int tables_lookup(const rows_t *store, int f, uint64_t row, float *out, err_t *err)
{
    const int held = rows_peek(store, (uint32_t)f, row, out, NULL);
    if (held == 1)
        return 0;
    return rows_initial(store, (uint32_t)f, row, out, err);
}
