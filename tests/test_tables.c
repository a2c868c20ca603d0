/* test_tables.c - CUnit suite "tables": a small click-through model with
 * embedding tables (26 fields of dim 2, DLRM's shape) exported and served.
 *
 * Each case writes a dense checkpoint (tests_write_checkpoint) and the row
 * files a run leaves next to it: a store of the job's tables whose rows
 * were pushed twice (so held rows differ from their initial values), split
 * over N files by rows_hash as N servers would hold them. The reference
 * table is that store: a held row, else its initial value.
 *
 *   - predict --criteo (predict_ctr_run) on generated Criteo lines gives,
 *     line by line, model_predict of the line's dense features and the
 *     reference rows of its reduced ids;
 *   - the ONNX export, inline and forced to external data, passes the onnx
 *     package's full check and, run by ONNX Runtime (tests/onnx/run_ctr.js)
 *     on the inputs predict dumped (through the library, or `pstrain
 *     predict --criteo --dump-inputs --rows`, which must print the same
 *     probabilities), agrees with predict within 1e-5;
 *   - the safetensors export holds every table, [rows, dim], as the
 *     reference;
 *   - a full file and its delta (with evictions) give the store as of the
 *     delta, whatever the window of rows streamed;
 *   - a missing, extra, damaged or foreign row file is refused by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>

#include "common/config/config.h"
#include "common/nn/model.h"
#include "common/nn/rows.h"
#include "common/util/fsutil.h"
#include "common/util/le.h"
#include "common/util/rng.h"
#include "export/onnx.h"
#include "export/predict_ctr.h"
#include "export/safetensors.h"
#include "export/tables.h"
#include "export/trained.h"
#include "tests.h"

#define FIELDS 26
#define DIM 2
#define DENSE 13
#define LINES 300     /* Criteo lines predicted */
#define TOL_ONNX 1e-5 /* ONNX Runtime against pstrain predict */
#define TOL_REF 1e-6  /* predict's batches against model_predict of one sample */
#define VERSION "0.1-test"

static const char *CTR_CFG =
    "name = \"tables_ctr\";\n"
    "model = { input = [13]; loss = \"binary_cross_entropy\";\n"
    "  sparse = { fields = 26; dim = 2;\n"
    "    rows = [7, 3, 50, 20, 1, 9, 64, 5, 2, 33, 11, 8, 17, 4, 40, 6, 3, 12, 2, 25, 10, 7, 3,\n"
    "            30, 5, 16]; };\n"
    "  layers = (\n"
    "    { type = \"dense\"; units = 4; inputs = 13; pass_rest = false; activation = \"relu\"; },\n"
    "    { type = \"dense\"; units = 2; activation = \"relu\"; },\n"
    "    { type = \"interaction\"; vectors = 27; from_input = 52; },\n"
    "    { type = \"dense\"; units = 3; activation = \"relu\"; },\n"
    "    { type = \"dense\"; units = 1; }\n"
    "  ); };\n"
    "optimizer = { name = \"adagrad\"; lr = 0.1; };\n"
    "train = { seed = 5; batch = 8; eval_batch = 16; };\n";

/* One case's files and its reference store. */
typedef struct {
    char dir[512], ckpt[600], lines[600];
    job_config_t *cfg;
    rows_t *ref; /* every row the files hold */
} fix_t;

/* ---- the fixture ---------------------------------------------------------- */

/* Pushes gradients to some rows of every table of s (round r picks them). */
static void train_rows(rows_t *s, const job_config_t *cfg, int r)
{
    for (int f = 0; f < FIELDS; f++) {
        const uint64_t rows = (uint64_t)cfg_sparse_rows(cfg, f);
        uint64_t ids[8];
        float g[8 * DIM];
        size_t n = 0;
        for (uint64_t id = (uint64_t)r % 2; id < rows && n < 8; id += 1 + (id + f) % 3)
            ids[n++] = id;
        for (size_t k = 0; k < n * DIM; k++)
            g[k] = (float)(rng_uniform(9, (uint64_t)(100 * r + f), k) - 0.5);
        CU_ASSERT_EQUAL(rows_push(s, (uint32_t)f, ids, n, g, 1 + r, 0.5, NULL), 0);
    }
}

static int owns_mod(void *ctx, uint32_t table, uint64_t row)
{
    const int *sn = ctx;
    return rows_hash(table, row) % (uint64_t)sn[1] == (uint64_t)sn[0];
}

/* Writes s's rows as n server files dir/tables-S-of-N.rows (by rows_hash). */
static void save_split(rows_t *s, const job_config_t *cfg, const char *dir, int n)
{
    char all[700], path[700];
    snprintf(all, sizeof all, "%s/all.bin", dir);
    CU_ASSERT_EQUAL_FATAL(rows_save(s, all, NULL), 0);
    for (int k = 0; k < n; k++) {
        int sn[2] = {k, n};
        rows_t *part = tables_store_new(cfg, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(part);
        CU_ASSERT_EQUAL(rows_load(part, all, owns_mod, sn, NULL), 0);
        snprintf(path, sizeof path, "%s/tables-%d-of-%d.rows", dir, k, n);
        CU_ASSERT_EQUAL(rows_save(part, path, NULL), 0);
        rows_destroy(&part);
    }
    unlink(all);
}

/* Writes LINES Criteo lines (empty and negative integers, empty and 8-digit
 * categoricals) to path. */
static void write_lines(const char *path)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (uint64_t i = 0; i < LINES; i++) {
        fprintf(f, "%u", rng_below(3, 0, i, 2));
        for (int k = 0; k < DENSE; k++) {
            const uint64_t c = i * 64 + (uint64_t)k;
            if (rng_below(3, 1, c, 6) == 0)
                fprintf(f, "\t");
            else
                fprintf(f, "\t%d", (int)rng_below(3, 2, c, 2000) - 3);
        }
        for (int k = 0; k < FIELDS; k++) {
            const uint64_t c = i * 64 + (uint64_t)k;
            if (rng_below(3, 3, c, 9) == 0)
                fprintf(f, "\t");
            else
                fprintf(f, "\t%08x", rng_below(3, 4, c, UINT32_MAX));
        }
        fprintf(f, "\n");
    }
    CU_ASSERT_EQUAL(fclose(f), 0);
}

/* A case named name: checkpoint, row files (n of them), lines. */
static void setup(fix_t *x, const char *name, int n)
{
    err_t err;
    snprintf(x->dir, sizeof x->dir, "%s/%s", tests_tmp_dir(), name);
    CU_ASSERT_EQUAL_FATAL(fs_mkdirs(x->dir, &err), 0);
    snprintf(x->ckpt, sizeof x->ckpt, "%s/model.ckpt", x->dir);
    snprintf(x->lines, sizeof x->lines, "%s/lines.txt", x->dir);
    tests_write_checkpoint(x->ckpt, name, CTR_CFG, NORM_NONE);
    x->cfg = calloc(1, sizeof *x->cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x->cfg);
    if (config_load_text(x->cfg, name, CTR_CFG, NULL, 0, 0, &err) != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(x->cfg->model.sparse.fields, FIELDS);
    x->ref = tables_store_new(x->cfg, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x->ref);
    train_rows(x->ref, x->cfg, 0);
    train_rows(x->ref, x->cfg, 1);
    save_split(x->ref, x->cfg, x->dir, n);
    write_lines(x->lines);
}

static void teardown(fix_t *x)
{
    rows_destroy(&x->ref);
    free(x->cfg);
}

/* Opens x's model, printing the error. */
static trained_t *open_model(const fix_t *x)
{
    err_t err;
    trained_t *t = trained_open(x->ckpt, 0, &err);
    if (!t)
        fprintf(stderr, "\n    %s\n", err.msg);
    return t;
}

/* ---- predict and ONNX -------------------------------------------------------- */

/* What predict gave for each line. */
typedef struct {
    long n;
    float prob[LINES], dense[LINES][DENSE];
    uint64_t ids[LINES][FIELDS];
} got_t;

static void keep(void *ctx, long i, float prob, float label, const float *dense, int nd,
                 const uint64_t *ids, int ni)
{
    got_t *g = ctx;
    (void)label;
    if (i != g->n || i >= LINES || nd != DENSE || ni != FIELDS)
        return;
    g->prob[i] = prob;
    memcpy(g->dense[i], dense, sizeof g->dense[i]);
    memcpy(g->ids[i], ids, sizeof g->ids[i]);
    g->n++;
}

/* Each line's probability against model_predict of its input built from
 * the reference rows. */
static void check_reference(const fix_t *x, trained_t *t, const got_t *g)
{
    float in[DENSE + FIELDS * DIM];
    double worst = 0;
    for (long i = 0; i < g->n; i++) {
        memcpy(in, g->dense[i], sizeof g->dense[i]);
        for (int f = 0; f < FIELDS; f++) {
            CU_ASSERT(g->ids[i][f] < (uint64_t)cfg_sparse_rows(x->cfg, f));
            CU_ASSERT_EQUAL(tables_lookup(x->ref, f, g->ids[i][f], in + DENSE + f * DIM, NULL),
                            0);
        }
        const float *p = model_predict(t->model, t->ck->params, in, 1);
        const double d = fabs((double)p[0] - g->prob[i]);
        worst = d > worst || isnan(d) ? d : worst;
    }
    printf("\n    predict --criteo: %ld lines, max |batch - one sample| = %.3g", g->n, worst);
    CU_ASSERT(worst <= TOL_REF);
}

/* Writes what predict gave as run_ctr.js reads it: PREFIX.num, .ids, .txt. */
static void dump(const got_t *g, const char *prefix)
{
    char p[760];
    FILE *fd, *fi, *ft;
    snprintf(p, sizeof p, "%s.num", prefix);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fd = fopen(p, "wb"));
    snprintf(p, sizeof p, "%s.ids", prefix);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fi = fopen(p, "wb"));
    snprintf(p, sizeof p, "%s.txt", prefix);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ft = fopen(p, "w"));
    for (long i = 0; i < g->n; i++) {
        uint8_t b[8];
        for (int k = 0; k < DENSE; k++) {
            le_storef(b, g->dense[i][k]);
            fwrite(b, 1, 4, fd);
        }
        for (int k = 0; k < FIELDS; k++) {
            le_store64(b, g->ids[i][k]);
            fwrite(b, 1, 8, fi);
        }
        fprintf(ft, "%.9g\n", (double)g->prob[i]);
    }
    CU_ASSERT(fclose(fd) == 0 && fclose(fi) == 0 && fclose(ft) == 0);
}

/* The same files from pstrain predict --criteo --dump-inputs (build/pstrain,
 * PST_BIN overrides), its row files named with --rows, 2 threads as
 * run_onnx's predict_ctr_run (the same sums); then its probabilities
 * against predict_ctr_run's, as printed. */
static void dump_cli(const fix_t *x, const got_t *g, const char *prefix, int n_files)
{
    const char *bin = getenv("PST_BIN") ? getenv("PST_BIN") : "build/pstrain";
    char cmd[8192], out[64];
    int k = snprintf(cmd, sizeof cmd, "%s predict --checkpoint '%s' --criteo '%s' --threads 2 "
                     "--dump-inputs '%s'", bin, x->dir, x->lines, prefix);
    for (int i = 0; i < n_files; i++)
        k += snprintf(cmd + k, sizeof cmd - (size_t)k, " --rows '%s/tables-%d-of-%d.rows'", x->dir,
                      i, n_files);
    snprintf(cmd + k, sizeof cmd - (size_t)k, " > '%s.txt' 2>/dev/null", prefix);
    CU_ASSERT_EQUAL_FATAL(tests_run_cmd(cmd, out, sizeof out), 0);
    char path[760];
    snprintf(path, sizeof path, "%s.txt", prefix);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    long n = 0;
    int same = 1;
    double v;
    while (fscanf(f, "%lf", &v) == 1 && n < LINES)
        same &= (float)v == g->prob[n++]; /* 9 digits give a float back exactly */
    fclose(f);
    CU_ASSERT_EQUAL(n, g->n);
    CU_ASSERT(same);
}

/* The onnx package's check of the file and its sparse serving contract. */
static void check_contract(const char *onnx_path)
{
    char cmd[2048], report[8192];
    snprintf(cmd, sizeof cmd, "PYTHONIOENCODING=utf-8 /usr/bin/python3 '%s/check.py' '%s'",
             tests_onnx_dir(), onnx_path);
    int st = tests_run_cmd(cmd, report, sizeof report);
    if (st != 0)
        fprintf(stderr, "\n    %s: exit status %d\n", cmd, st);
    CU_ASSERT_FATAL(st == 0);
    tests_assert_line(report, "input=num[N,13] type=1");
    tests_assert_line(report, "input=ids[N,26] type=7");
    tests_assert_line(report, "output=probabilities[N,1] type=1");
}

/* Exports x's model (external: forced to external data), checks it and
 * compares ONNX Runtime with predict --criteo on x's lines. */
static void run_onnx(const char *name, int n_files, int external)
{
    fix_t x;
    setup(&x, name, n_files);
    trained_t *t = open_model(&x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    got_t *g = calloc(1, sizeof *g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    err_t err;
    t->threads = 2;
    long n = predict_ctr_run(t, x.lines, 0, keep, g, &err);
    if (n < 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(n, LINES);
    CU_ASSERT_EQUAL_FATAL(g->n, LINES);
    check_reference(&x, t, g);

    char onnx_path[700], data[720], prefix[700], cmd[4096], out[512];
    snprintf(onnx_path, sizeof onnx_path, "%s/model.onnx", x.dir);
    snprintf(data, sizeof data, "%s.data", onnx_path);
    snprintf(prefix, sizeof prefix, "%s/inputs", x.dir);
    int rc = onnx_export_with(t, onnx_path, VERSION, external ? 0 : ONNX_EXTERNAL_OVER, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT_EQUAL(access(data, F_OK) == 0, external);
    check_contract(onnx_path);
    if (external) /* the command line's files (and --rows) ... */
        dump_cli(&x, g, prefix, n_files);
    else /* ... or the library's */
        dump(g, prefix);
    snprintf(cmd, sizeof cmd, "node '%s/run_ctr.js' '%s' '%s.num' '%s.ids' '%s.ort' "
             "--compare '%s.txt' --tol %g 2>&1", tests_onnx_dir(), onnx_path, prefix, prefix,
             prefix, prefix, TOL_ONNX);
    int st = tests_run_cmd(cmd, out, sizeof out);
    printf("\n    %s (%s): %s", name, external ? "external data" : "inline", out);
    CU_ASSERT_EQUAL(st, 0);
    free(g);
    trained_destroy(&t);
    teardown(&x);
}

static void test_onnx_inline(void)
{
    run_onnx("tables_inline", 2, 0);
}

static void test_onnx_external(void)
{
    run_onnx("tables_external", 3, 1);
}

/* ---- safetensors ----------------------------------------------------------- */

/* Checks tensor "tables.f" of the file's header against the reference. */
static void check_st_table(const fix_t *x, const cJSON *head, const uint8_t *data, int f)
{
    char name[32];
    snprintf(name, sizeof name, SAFETENSORS_TABLE_PREFIX "%d", f);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(head, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    const cJSON *shape = cJSON_GetObjectItem(e, "shape"), *offs = cJSON_GetObjectItem(e,
                                                                                    "data_offsets");
    const int rows = cfg_sparse_rows(x->cfg, f);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(shape, 0)->valuedouble, rows);
    CU_ASSERT_EQUAL(cJSON_GetArrayItem(shape, 1)->valuedouble, DIM);
    const size_t b = (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
    CU_ASSERT_EQUAL((size_t)cJSON_GetArrayItem(offs, 1)->valuedouble - b, (size_t)rows * DIM * 4);
    int same = 1;
    for (int r = 0; r < rows; r++) {
        float want[DIM], got[DIM];
        tables_lookup(x->ref, f, (uint64_t)r, want, NULL);
        le_load_floats(got, data + b + (size_t)r * DIM * 4, DIM);
        same &= memcmp(want, got, sizeof want) == 0;
    }
    CU_ASSERT(same);
}

static void test_safetensors(void)
{
    fix_t x;
    setup(&x, "tables_st", 2);
    trained_t *t = open_model(&x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", x.dir);
    err_t err;
    CU_ASSERT_EQUAL_FATAL(safetensors_export(t, path, &err), 0);
    size_t len;
    uint8_t *buf = (uint8_t *)fs_read_all(path, &len, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    const uint64_t hlen = le_load64(buf);
    CU_ASSERT_FATAL(hlen % 8 == 0 && 8 + hlen <= len);
    cJSON *head = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(head);
    for (int f = 0; f < FIELDS; f++)
        check_st_table(&x, head, buf + 8 + hlen, f);
    /* the data area ends with the last table */
    const cJSON *last = cJSON_GetObjectItem(cJSON_GetObjectItem(head, "tables.25"),
                                            "data_offsets");
    CU_ASSERT_EQUAL((size_t)cJSON_GetArrayItem(last, 1)->valuedouble, len - 8 - hlen);
    cJSON_Delete(head);
    free(buf);
    trained_destroy(&t);
    teardown(&x);
}

/* ---- full and delta files, windows -------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} sink_t;

static int sink(void *ctx, const void *data, size_t len, err_t *err)
{
    sink_t *s = ctx;
    (void)err;
    if (s->n + len > s->cap)
        return -1;
    memcpy(s->p + s->n, data, len);
    s->n += len;
    return 0;
}

/* A store of at most 40 rows: a full save, more rows (evictions), a delta.
 * tables_open of both gives the store as of the delta in any window. */
static void test_full_delta(void)
{
    fix_t x;
    setup(&x, "tables_delta", 1);
    err_t err;
    char full[700], delta[700];
    snprintf(full, sizeof full, "%s/full.rows", x.dir);
    snprintf(delta, sizeof delta, "%s/delta.rows", x.dir);
    rows_t *s = tables_store_new(x.cfg, 40, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    train_rows(s, x.cfg, 0);
    CU_ASSERT_EQUAL(rows_save(s, full, &err), 0);
    train_rows(s, x.cfg, 1);
    train_rows(s, x.cfg, 2);
    CU_ASSERT_EQUAL(rows_save_delta(s, delta, &err), 0);
    rows_file_t *d = rows_file_open(delta, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT(rows_file_is_delta(d) && rows_file_n_evicted(d) > 0);
    rows_file_close(&d);

    const char *files[2] = {full, delta};
    tables_t *tb = tables_open(x.cfg, files, 2, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tb);
    for (int f = 0; f < FIELDS; f++) {
        const size_t rows = (size_t)tables_rows(tb, f), bytes = rows * DIM * 4;
        const size_t windows[3] = {DIM * 4, 3 * DIM * 4, 0};
        uint8_t *want = malloc(bytes);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        for (size_t r = 0; r < rows; r++) {
            float v[DIM];
            tables_lookup(s, f, r, v, NULL);
            le_store_floats(want + r * DIM * 4, v, DIM);
        }
        for (int w = 0; w < 3; w++) {
            sink_t k = {malloc(bytes), 0, bytes};
            CU_ASSERT_EQUAL(tables_stream(tb, f, windows[w], sink, &k, &err), 0);
            CU_ASSERT(k.n == bytes && memcmp(k.p, want, bytes) == 0);
            free(k.p);
        }
        free(want);
    }
    tables_destroy(&tb);
    rows_destroy(&s);
    teardown(&x);
}

/* ---- refusals ------------------------------------------------------------------ */

/* trained_open of the checkpoint in dir must fail with a message holding
 * want (and, when path is given, that path). */
static void expect_open_error(const char *ckpt, const char *want, const char *path)
{
    err_t err = {{0}};
    trained_t *t = trained_open(ckpt, 0, &err);
    CU_ASSERT_PTR_NULL(t);
    TESTS_ASSERT_HAS(err.msg, want);
    if (path)
        TESTS_ASSERT_HAS(err.msg, path);
    trained_destroy(&t);
}

static void test_refused(void)
{
    fix_t x;
    setup(&x, "tables_bad", 2);
    char p0[700], p1[700], other[700];
    snprintf(p0, sizeof p0, "%s/tables-0-of-2.rows", x.dir);
    snprintf(p1, sizeof p1, "%s/tables-1-of-2.rows", x.dir);
    snprintf(other, sizeof other, "%s/tables-0-of-1.rows", x.dir);
    /* a set of two with one missing */
    CU_ASSERT_EQUAL(rename(p1, other), 0);
    expect_open_error(x.ckpt, "of-2", "two sets");
    CU_ASSERT_EQUAL(unlink(other), 0);
    expect_open_error(x.ckpt, "is missing", p1);
    /* none at all */
    CU_ASSERT_EQUAL(unlink(p0), 0);
    expect_open_error(x.ckpt, "no row files", x.dir);
    /* a damaged file */
    save_split(x.ref, x.cfg, x.dir, 1);
    size_t len;
    err_t err;
    char *b = fs_read_all(other, &len, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    b[len / 2] ^= 0x10;
    CU_ASSERT_EQUAL(fs_write_atomic(other, b, len, &err), 0);
    expect_open_error(x.ckpt, "checksum", other);
    free(b);
    /* rows of another job: another seed, another table size */
    const char *seed = strstr(CTR_CFG, "seed = 5"), *rows = strstr(CTR_CFG, "[7, 3, 50");
    for (int k = 0; k < 2; k++) {
        char *text = strdup(CTR_CFG);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        text[(k == 0 ? seed - CTR_CFG + 7 : rows - CTR_CFG + 1)] = '6';
        job_config_t *c = calloc(1, sizeof *c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL_FATAL(config_load_text(c, "other", text, NULL, 0, 0, &err), 0);
        rows_t *s = tables_store_new(c, 0, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        train_rows(s, c, 0);
        save_split(s, c, x.dir, 1);
        expect_open_error(x.ckpt, k == 0 ? "seed 6" : "table 0 of dim 2 and 6 rows", other);
        rows_destroy(&s);
        free(c);
        free(text);
    }
    /* a dense model takes no row files */
    char dense_ck[700];
    snprintf(dense_ck, sizeof dense_ck, "%s/dense.ckpt", x.dir);
    tests_write_checkpoint(dense_ck, "dense", "model = { input = [4]; layers = ( { type = "
                           "\"dense\"; units = 2; } ); };\n", NORM_NONE);
    const char *files[1] = {other};
    trained_t *t = trained_open_rows(dense_ck, 0, files, 1, &err);
    CU_ASSERT_PTR_NULL(t);
    TESTS_ASSERT_HAS(err.msg, "no embedding tables");
    teardown(&x);
}

int test_tables_register(void)
{
    CU_pSuite s = CU_add_suite("tables", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "onnx_inline", test_onnx_inline) ||
        !CU_add_test(s, "onnx_external", test_onnx_external) ||
        !CU_add_test(s, "safetensors", test_safetensors) ||
        !CU_add_test(s, "full_delta", test_full_delta) ||
        !CU_add_test(s, "refused", test_refused))
        return -1;
    return 0;
}
