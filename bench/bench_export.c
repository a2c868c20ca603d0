/* bench_export.c - the export of a sparse model as large as its config's
 * tables (configs/criteo_dlrm.cfg: 26 tables, 33.8M rows of dim 16, 2.2 GB
 * of floats), and a run folder for tests/onnx/verify_ctr.sh.
 *
 * Writes OUT/model.ckpt (the config's seeded initial dense parameters plus
 * noise, so that the probabilities spread as a trained model's do) and
 * the row files a run of SERVERS servers leaves, OUT/tables-S-of-N.rows:
 * the rows of the ids of the first LINES lines of the click log LOG, each
 * batch's rows given a random gradient (so that held rows differ from their
 * initial values). Then opens the model as the export stage does
 * (trained_open) and times onnx_export (external data past 2 GiB) and
 * safetensors_export into OUT: seconds and MB/s of the file written.
 *
 * Usage: bench_export CONFIG OUT LOG [LINES [SERVERS]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/data/criteo.h"
#include "common/data/ctr_stream.h"
#include "common/nn/model.h"
#include "common/nn/sparse_input.h"
#include "common/util/fsutil.h"
#include "common/util/rng.h"
#include "common/util/version.h"
#include "export/checkpoint.h"
#include "export/onnx.h"
#include "export/safetensors.h"
#include "export/tables.h"
#include "export/trained.h"

#define LINES_DEFAULT 300000
#define SERVERS_DEFAULT 2
#define BATCH 4096
#define GRAD_SCALE 0.05  /* row gradients uniform in [-scale, scale] */
#define NOISE 0.1        /* dense parameters: initial values + uniform [-noise, noise] */
#define LR 0.1
#define PATH_LEN 4400

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* OUT/model.ckpt: the config's text and its seeded initial parameters plus
 * noise. Returns 0, or -1 with err. */
static int write_ckpt(const job_config_t *cfg, const char *text, const char *path, err_t *err)
{
    model_t *m = model_new(cfg, 1, err);
    if (!m)
        return -1;
    const param_table_t *tab = model_params(m);
    checkpoint_t ck = {.seed = cfg->train.seed, .opt_kind = cfg->optimizer.kind->id,
                       .config_text = (char *)text, .table = *tab};
    int rc = -1;
    if (!(ck.params = malloc(tab->n_params * sizeof *ck.params)))
        err_set(err, "out of memory");
    else if (params_init_slice(tab, cfg->train.seed, 0, tab->n_params, ck.params, err) == 0) {
        for (size_t i = 0; i < tab->n_params; i++)
            ck.params[i] += (float)(NOISE * (2 * rng_uniform(cfg->train.seed, 901, i) - 1));
        rc = checkpoint_write(path, &ck, err);
    }
    free(ck.params);
    model_destroy(&m);
    return rc;
}

/* The rows of the first `lines` lines of log, pushed random gradients
 * batch by batch, into s. Returns the lines read, or -1 with err. */
static long train_rows(const job_config_t *cfg, rows_t *s, const char *log, long lines,
                       err_t *err)
{
    uint32_t rows[CRITEO_CAT];
    for (int f = 0; f < CRITEO_CAT; f++)
        rows[f] = (uint32_t)cfg_sparse_rows(cfg, f);
    const int dim = cfg->model.sparse.dim;
    const ctr_stream_opts_t o = {.source = log, .rows = rows, .batch = BATCH};
    const sparse_input_opts_t so = {CRITEO_CAT, dim, 0, CRITEO_CAT * dim, BATCH, 0, SPARSE_SUM};
    ctr_stream_t *in = ctr_stream_new(&o, err);
    sparse_input_t *si = sparse_input_new(&so, err);
    ctr_batch_t b = {0};
    float *g = malloc((size_t)BATCH * dim * sizeof *g);
    long done = 0, step = 0;
    int n = -1;
    if (in && si && g && ctr_batch_alloc(&b, BATCH, err) == 0) {
        while (done < lines && (n = ctr_stream_next(in, &b, lines - done < BATCH ? (int)(lines - done)
                                                                             : BATCH, err)) > 0) {
            sparse_input_index(si, b.cat, n);
            step++;
            for (int f = 0; f < CRITEO_CAT && n > 0; f++) {
                const uint64_t *u;
                const size_t nu = sparse_input_unique(si, f, &u);
                for (size_t k = 0; k < nu * (size_t)dim; k++)
                    g[k] = (float)(GRAD_SCALE * (2 * rng_uniform(7, (uint64_t)step, k) - 1));
                if (rows_push(s, (uint32_t)f, u, nu, g, step, LR, err) != 0)
                    n = -1;
            }
            done += n > 0 ? n : 0;
        }
    }
    if (!g)
        err_set(err, "out of memory");
    const int ok = in && si && g && n >= 0;
    ctr_batch_free(&b);
    sparse_input_destroy(&si);
    ctr_stream_destroy(&in);
    free(g);
    return ok ? done : -1;
}

static int owns_mod(void *ctx, uint32_t table, uint64_t row)
{
    const int *sn = ctx;
    return rows_hash(table, row) % (uint64_t)sn[1] == (uint64_t)sn[0];
}

/* s's rows as the files of n servers in out. Returns 0, or -1 with err. */
static int save_split(const job_config_t *cfg, rows_t *s, const char *out, int n, err_t *err)
{
    char all[PATH_LEN], path[PATH_LEN];
    snprintf(all, sizeof all, "%s/all-rows.tmp", out);
    if (rows_save(s, all, err) != 0)
        return -1;
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        int sn[2] = {k, n};
        rows_t *part = tables_store_new(cfg, 0, err);
        snprintf(path, sizeof path, "%s/tables-%d-of-%d.rows", out, k, n);
        rc = part && rows_load(part, all, owns_mod, sn, err) == 0 && rows_save(part, path, err) == 0
                 ? 0 : -1;
        rows_destroy(&part);
    }
    unlink(all);
    return rc;
}

/* Size of path in MB (1e6 bytes), 0 when missing. */
static double mb(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
}

/* Opens the model in out and times both exports. Returns 0, or -1 with err. */
static int export_all(const char *out, err_t *err)
{
    char ck[PATH_LEN], onnx[PATH_LEN], data[PATH_LEN + 8], st[PATH_LEN];
    snprintf(ck, sizeof ck, "%s/model.ckpt", out);
    snprintf(onnx, sizeof onnx, "%s/model.onnx", out);
    snprintf(data, sizeof data, "%s.data", onnx);
    snprintf(st, sizeof st, "%s/model.safetensors", out);
    double t0 = now();
    trained_t *t = trained_open(ck, 1, err);
    if (!t)
        return -1;
    double t1 = now();
    int rc = onnx_export(t, onnx, PSTRAIN_VERSION, err);
    double t2 = now();
    if (rc == 0)
        rc = safetensors_export(t, st, err);
    double t3 = now();
    trained_destroy(&t);
    if (rc != 0)
        return -1;
    const double on = mb(onnx) + mb(data), sn = mb(st);
    printf("trained_open (row files mapped and checked): %.2f s\n", t1 - t0);
    printf("model.onnx + model.onnx.data: %.1f MB in %.2f s, %.0f MB/s%s\n", on, t2 - t1,
           on / (t2 - t1), mb(data) > 0 ? " (external data)" : " (inline)");
    printf("model.safetensors: %.1f MB in %.2f s, %.0f MB/s\n", sn, t3 - t2, sn / (t3 - t2));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_export CONFIG OUT LOG [LINES [SERVERS]]\n");
        return 2;
    }
    const char *cfg_path = argv[1], *out = argv[2], *log = argv[3];
    const long lines = argc > 4 ? atol(argv[4]) : LINES_DEFAULT;
    const int servers = argc > 5 ? atoi(argv[5]) : SERVERS_DEFAULT;
    err_t err;
    size_t len;
    char ck[PATH_LEN];
    char *text = fs_read_all(cfg_path, &len, &err);
    job_config_t *cfg = calloc(1, sizeof *cfg);
    rows_t *s = NULL;
    int rc = 1;
    if (!text || !cfg || fs_mkdirs(out, &err) != 0 ||
        config_load_text(cfg, cfg_path, text, NULL, 0, 0, &err) != 0)
        goto out;
    snprintf(ck, sizeof ck, "%s/model.ckpt", out);
    double t0 = now();
    long n;
    if (write_ckpt(cfg, text, ck, &err) != 0 || !(s = tables_store_new(cfg, 0, &err)) ||
        (n = train_rows(cfg, s, log, lines, &err)) < 0 ||
        save_split(cfg, s, out, servers, &err) != 0)
        goto out;
    printf("%s: %ld lines, %zu rows held (%.1f MiB store), %d row files in %.1f s\n", out, n,
           rows_count(s), (double)rows_bytes(s) / 1048576.0, servers, now() - t0);
    rows_destroy(&s);
    rc = export_all(out, &err) != 0;
out:
    if (rc)
        fprintf(stderr, "bench_export: %s\n", err.msg);
    rows_destroy(&s);
    free(cfg);
    free(text);
    return rc;
}
