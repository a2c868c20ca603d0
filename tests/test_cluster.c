/* test_cluster.c - distributed jobs launched by mpirun on a slice of
 * Fashion-MNIST: BSP with 2 trainers equals single-process training within
 * 1e-5 on every parameter after 20 steps (batch 32), and so does
 * 2 servers + 3 trainers with batch 33 (also with pieces, and with dropout); ASP and SSP jobs train; a singleton
 * start (no mpirun) runs with its in-process server. pstrain is
 * build/pstrain (PST_BIN overrides). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/data/criteo.h"
#include "common/nn/optim.h"
#include "common/nn/rows.h"
#include "export/checkpoint.h"
#include "common/util/fsutil.h"
#include "tests.h"
#include "common/net/wire.h"

static const char *CFG =
    "name = \"t_dist\";\n"
    "data = { limit = 3000; validation = 300; test_limit = 500; };\n"
    "model = { input = [1, 28, 28];\n"
    "  layers = ( { type = \"conv2d\"; filters = 8; kernel = 3; activation = \"relu\"; },\n"
    "             { type = \"maxpool2d\"; pool = 2; }, { type = \"flatten\"; },\n"
    "             { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n"
    "optimizer = { name = \"adam\"; };\n"
    "train = { epochs = 1; batch = 32; seed = 4; max_steps = 20; };\n"
    "cluster = { timeout_ms = 20000; };\n";

/* A model large enough that each of 2 servers' shards (about 278,000 keys)
 * is pushed and pulled in pieces of WIRE_PIECE_FLOATS (262,144). */
static const char *CFG_BIG =
    "name = \"t_big\";\n"
    "data = { limit = 3000; validation = 300; test_limit = 500; };\n"
    "model = { input = [1, 28, 28];\n"
    "  layers = ( { type = \"flatten\"; },\n"
    "             { type = \"dense\"; units = 700; activation = \"relu\"; },\n"
    "             { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n"
    "optimizer = { name = \"adam\"; };\n"
    "train = { epochs = 1; batch = 32; seed = 4; max_steps = 20; };\n"
    "cluster = { timeout_ms = 20000; };\n";

/* CFG with dropout between the convolution and the dense layer: its masks
 * follow each sample's place in the global batch, so BSP still equals
 * single-process training. */
static const char *CFG_DROP =
    "name = \"t_drop\";\n"
    "data = { limit = 3000; validation = 300; test_limit = 500; };\n"
    "model = { input = [1, 28, 28];\n"
    "  layers = ( { type = \"conv2d\"; filters = 8; kernel = 3; activation = \"relu\"; },\n"
    "             { type = \"maxpool2d\"; pool = 2; }, { type = \"flatten\"; },\n"
    "             { type = \"dropout\"; rate = 0.3; },\n"
    "             { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n"
    "optimizer = { name = \"adam\"; };\n"
    "train = { epochs = 1; batch = 32; seed = 4; max_steps = 20; };\n"
    "cluster = { timeout_ms = 20000; };\n";

/* A one-logit binary_cross_entropy model on footwear-or-not (the label
 * files tests_footwear_labels writes into %s, the run's folder). */
static const char *CFG_BIN =
    "name = \"t_bin\";\n"
    "data = { limit = 3000; validation = 300; test_limit = 500;\n"
    "  train_labels = \"%s/bin-train-labels\"; test_labels = \"%s/bin-test-labels\"; };\n"
    "model = { input = [1, 28, 28]; loss = \"binary_cross_entropy\";\n"
    "  layers = ( { type = \"flatten\"; },\n"
    "             { type = \"dense\"; units = 16; activation = \"relu\"; },\n"
    "             { type = \"dense\"; units = 1; } ); };\n"
    "optimizer = { name = \"adam\"; };\n"
    "train = { epochs = 1; batch = 33; seed = 4; max_steps = 20; };\n"
    "cluster = { timeout_ms = 20000; };\n";

static const char *bin(void)
{
    const char *b = getenv("PST_BIN");
    return b ? b : "build/pstrain";
}

/* A small DLRM (dim 4; bottom 13-16-4, the dot interaction, top 16-1) on
 * the click log of tests_ctr_log (its paths and the tables' sizes fill the
 * %s), Adagrad (with state per row), 2 threads, 60 steps. */
static const char *CFG_CTR =
    "name = \"t_ctr\";\n"
    "data = { format = \"criteo\"; train = \"%s\"; test = \"%s\"; shuffle_buffer = 500; };\n"
    TESTS_CTR_MODEL
    "optimizer = { name = \"adagrad\"; lr = 0.05; };\n"
    "train = { epochs = 1; batch = 64; seed = 2; threads = 2; max_steps = 60; };\n"
    "cluster = { timeout_ms = 20000; };\n";

/* The config file of the next run(): CFG, or CFG_BIG / CFG_DROP / CFG_BIN /
 * CFG_CTR while big is 1 / 2 / 3 / 4. */
static int big;

static const char *cfg_path(void)
{
    static const char *const NAMES[5] = {"dist", "dist_big", "dist_drop", "dist_bin", "dist_ctr"};
    static char path[5][512];
    char *p = path[big];
    if (!p[0]) {
        snprintf(p, sizeof path[0], "%s/%s.cfg", tests_tmp_dir(), NAMES[big]);
        err_t err;
        char bin_text[4096];
        if (big == 4) {
            char train[512], test[512], rows[1024];
            tests_ctr_log(train, test, sizeof train, rows, sizeof rows);
            snprintf(bin_text, sizeof bin_text, CFG_CTR, train, test, rows);
        } else {
            snprintf(bin_text, sizeof bin_text, CFG_BIN, tests_tmp_dir(), tests_tmp_dir());
        }
        const char *text = big >= 3 ? bin_text : big == 2 ? CFG_DROP : big ? CFG_BIG : CFG;
        if (fs_write_atomic(p, text, strlen(text), &err) != 0)
            fprintf(stderr, "\n  %s\n", err.msg);
    }
    return p;
}

/* Runs pstrain (np = 0: --local; 1: singleton; else mpirun -np) into
 * TMP/out; returns the exit status. */
static int run(int np, const char *extra, const char *out)
{
    char cmd[2048];
    const char *root = getuid() == 0 ? "--allow-run-as-root" : "";
    if (np == 0)
        snprintf(cmd, sizeof cmd, "%s --local --config %s --out %s/%s --quiet --no-plot %s > %s/%s.log 2>&1",
                 bin(), cfg_path(), tests_tmp_dir(), out, extra, tests_tmp_dir(), out);
    else if (np == 1)
        snprintf(cmd, sizeof cmd, "%s --config %s --out %s/%s --quiet --no-plot %s > %s/%s.log 2>&1",
                 bin(), cfg_path(), tests_tmp_dir(), out, extra, tests_tmp_dir(), out);
    else
        snprintf(cmd, sizeof cmd,
                 "timeout 120 mpirun %s --oversubscribe -np %d %s --config %s --out %s/%s --quiet "
                 "--no-plot %s > %s/%s.log 2>&1",
                 root, np, bin(), cfg_path(), tests_tmp_dir(), out, extra, tests_tmp_dir(), out);
    int rc = system(cmd);
    if (rc != 0 && !strstr(out, "bad_")) { /* bad_* runs are meant to fail */
        char log[600];
        snprintf(log, sizeof log, "%s/%s.log", tests_tmp_dir(), out);
        err_t err;
        char *text = fs_read_all(log, NULL, &err);
        fprintf(stderr, "\n  %s -> %d\n%s\n", cmd, rc, text ? text : "");
        free(text);
    }
    return rc;
}

/* The run `out` that a test builds on: run now unless an earlier test of
 * this process made it already (its model.ckpt is there). Each test thus
 * sets up what it needs, in any order, and tests run together share the
 * work. Returns 0 or the exit status. */
static int need(int np, const char *extra, const char *out)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/model.ckpt", tests_tmp_dir(), out);
    return access(path, F_OK) == 0 ? 0 : run(np, extra, out);
}

#define L7 "--set train.max_steps=7" /* run l_7: 7 steps, single process */

/* l_7 resumed to the job's 20 steps (l_7res). Returns 0 or the exit status. */
static int need_l7res(void)
{
    char extra[700];
    snprintf(extra, sizeof extra, "--resume %s/l_7/model.ckpt", tests_tmp_dir());
    int rc = need(0, L7, "l_7");
    return rc ? rc : need(0, extra, "l_7res");
}

/* TMP/flipped.ckpt: l_7's checkpoint with a byte of its optimizer state
 * flipped. Returns its path, or NULL. */
static const char *flipped_ckpt(void)
{
    static char dst[600];
    char src[600];
    snprintf(src, sizeof src, "%s/l_7/model.ckpt", tests_tmp_dir());
    snprintf(dst, sizeof dst, "%s/flipped.ckpt", tests_tmp_dir());
    if (access(dst, F_OK) == 0)
        return dst;
    err_t err;
    size_t len = 0;
    char *buf = need(0, L7, "l_7") == 0 ? fs_read_all(src, &len, &err) : NULL;
    if (!buf || len <= 2000) {
        free(buf);
        return NULL;
    }
    buf[len - 1000] ^= 0x10;
    int rc = fs_write_atomic(dst, buf, len, &err);
    free(buf);
    return rc == 0 ? dst : NULL;
}

static checkpoint_t *ckpt(const char *out)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/model.ckpt", tests_tmp_dir(), out);
    err_t err;
    checkpoint_t *c = checkpoint_read(path, &err);
    if (!c)
        fprintf(stderr, "\n  %s\n", err.msg);
    return c;
}

static double max_diff(const checkpoint_t *a, const checkpoint_t *b)
{
    if (a->table.n_params != b->table.n_params)
        return INFINITY;
    double d = 0;
    for (size_t i = 0; i < a->table.n_params; i++)
        d = fmax(d, fabs((double)a->params[i] - b->params[i]));
    return d;
}

/* Runs local_out and dist_out ended at step `steps` with the same
 * parameters within 1e-5. */
static void check_equal_at(const char *local_out, const char *dist_out, uint64_t steps)
{
    checkpoint_t *a = ckpt(local_out), *b = ckpt(dist_out);
    CU_ASSERT_FATAL(a && b);
    double d = max_diff(a, b);
    if (!(d <= 1e-5))
        fprintf(stderr, "\n  %s vs %s: max |diff| %.3g\n", local_out, dist_out, d);
    CU_ASSERT(d <= 1e-5);
    CU_ASSERT_EQUAL(a->step, steps);
    CU_ASSERT_EQUAL(b->step, steps);
    checkpoint_free(&a);
    checkpoint_free(&b);
}

static void check_equal(const char *local_out, const char *dist_out)
{
    check_equal_at(local_out, dist_out, 20);
}

/* Reads "key": number from RUN/FILE (a flat search is enough for the keys
 * used here). Returns NAN when it is not there. */
static double json_num(const char *out, const char *file, const char *key)
{
    char path[700], needle[80];
    snprintf(path, sizeof path, "%s/%s/%s", tests_tmp_dir(), out, file);
    snprintf(needle, sizeof needle, "\"%s\":", key);
    err_t err;
    char *js = fs_read_all(path, NULL, &err);
    char *p = js ? strstr(js, needle) : NULL;
    double v = p ? atof(p + strlen(needle)) : NAN;
    free(js);
    return v;
}

static double summary_num(const char *out, const char *key)
{
    return json_num(out, "summary.json", key);
}

/* Each trainer of run `out` (ranks [S, S + T)) reports its own steps and
 * samples (its slices of the batches of `batch`) and its rate in
 * RUN/ranks/rank-R.json. */
static void check_trainer_reports(const char *out, int S, int T, int batch, int steps)
{
    for (int t = 0; t < T; t++) {
        char file[64];
        snprintf(file, sizeof file, "ranks/rank-%d.json", S + t);
        const int slice = batch / T + (t < batch % T);
        CU_ASSERT_EQUAL(json_num(out, file, "steps"), steps);
        CU_ASSERT_EQUAL(json_num(out, file, "samples"), (double)slice * steps);
        const double train_s = json_num(out, file, "train_s");
        CU_ASSERT(train_s > 0);
        CU_ASSERT_DOUBLE_EQUAL(json_num(out, file, "samples_per_s"), slice * steps / train_s,
                               1e-3 * slice * steps / train_s);
    }
    char file[64];
    snprintf(file, sizeof file, "ranks/rank-%d.json", S - 1);
    CU_ASSERT(isnan(json_num(out, file, "samples"))); /* a server trains on nothing */
    CU_ASSERT(json_num(out, file, "peak_rss_mib") > 0);
}

static void test_bsp_1x2(void)
{
    CU_ASSERT_FATAL(need(0, "", "local32") == 0);
    CU_ASSERT_FATAL(need(3, "--servers 1", "bsp_1x2") == 0);
    check_equal("local32", "bsp_1x2");
    char path[600];
    snprintf(path, sizeof path, "%s/bsp_1x2/cluster.json", tests_tmp_dir());
    err_t err;
    char *js = fs_read_all(path, NULL, &err);
    CU_ASSERT_FATAL(js != NULL);
    CU_ASSERT(strstr(js, "\"role\":\t\"server\"") != NULL);
    CU_ASSERT(strstr(js, "\"endpoint\":\t\"tcp://127.0.0.1:") != NULL);
    CU_ASSERT(strstr(js, "\"consistency\":\t\"bsp\"") != NULL);
    free(js);
}

static void test_bsp_2x3_b33(void)
{
    CU_ASSERT_FATAL(run(0, "--set train.batch=33", "local33") == 0);
    CU_ASSERT_FATAL(run(5, "--servers 2 --set train.batch=33", "bsp_2x3") == 0);
    check_equal("local33", "bsp_2x3");
    check_trainer_reports("bsp_2x3", 2, 3, 33, 20);
}

/* BSP with trainers of several threads: 2 servers + 3 trainers of 3
 * threads each (batch 33: slices of 11 cut in 4, 4 and 3) equal
 * single-process training with one thread. */
static void test_bsp_threads(void)
{
    CU_ASSERT_FATAL(need(0, "--set train.batch=33 --set train.threads=1", "local33_t1") == 0);
    CU_ASSERT_FATAL(run(5, "--servers 2 --set train.batch=33 --set train.threads=3",
                        "bsp_2x3_t3") == 0);
    check_equal("local33_t1", "bsp_2x3_t3");
}

/* BSP with pushes and pulls in pieces: 2 servers + 3 trainers, batch 33,
 * equal single-process training. */
static void test_bsp_pieces(void)
{
    big = 1;
    int local = run(0, "--set train.batch=33", "big_local33");
    int dist = run(5, "--servers 2 --set train.batch=33", "big_bsp_2x3");
    big = 0;
    CU_ASSERT_FATAL(local == 0 && dist == 0);
    checkpoint_t *c = ckpt("big_bsp_2x3");
    CU_ASSERT_FATAL(c != NULL);
    /* the premise: each shard is larger than one piece */
    CU_ASSERT(c->table.n_params / 2 > WIRE_PIECE_FLOATS);
    checkpoint_free(&c);
    check_equal("big_local33", "big_bsp_2x3");
}

/* Dropout under BSP: 2 servers + 3 trainers, batch 33 (slices of 11 that
 * start mid-batch) equal single-process training. */
static void test_bsp_dropout(void)
{
    big = 2;
    int local = run(0, "--set train.batch=33", "drop_local33");
    int dist = run(5, "--servers 2 --set train.batch=33", "drop_bsp_2x3");
    big = 0;
    CU_ASSERT_FATAL(local == 0 && dist == 0);
    check_equal("drop_local33", "drop_bsp_2x3");
}

/* Column `col` (0-based) of the row of epoch 1 of TMP/out/metrics.csv,
 * or NAN. */
static double metric(const char *out, int col)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/metrics.csv", tests_tmp_dir(), out);
    err_t err;
    char *csv = fs_read_all(path, NULL, &err);
    const char *p = csv ? strstr(csv, "\n1,") : NULL;
    for (int i = 0; i < col && p; i++)
        p = strchr(p + 1, ',');
    double v = p ? atof(p + 1) : NAN;
    free(csv);
    return v;
}

/* A binary model under BSP with 3 trainers (each evaluates the whole set
 * for the AUC) equals single-process training: parameters within 1e-5, the
 * test and validation AUC (columns 13 and 11 of metrics.csv) within 1e-4,
 * and the AUC well above chance. */
static void test_bsp_binary(void)
{
    CU_ASSERT_FATAL(tests_footwear_labels("train-labels-idx1-ubyte.gz", "bin-train-labels") == 0);
    CU_ASSERT_FATAL(tests_footwear_labels("t10k-labels-idx1-ubyte.gz", "bin-test-labels") == 0);
    big = 3;
    int local = need(0, "", "bin_local33");
    int dist = need(4, "--servers 1", "bin_bsp_1x3");
    big = 0;
    CU_ASSERT_FATAL(local == 0 && dist == 0);
    check_equal("bin_local33", "bin_bsp_1x3");
    for (int col = 10; col <= 12; col += 2) {
        const double a = metric("bin_local33", col), b = metric("bin_bsp_1x3", col);
        if (!(fabs(a - b) <= 1e-4))
            fprintf(stderr, "\n  AUC column %d: local %.6f, BSP %.6f\n", col + 1, a, b);
        CU_ASSERT(fabs(a - b) <= 1e-4);
        CU_ASSERT(a > 0.9);
    }
}

static void test_singleton(void)
{
    CU_ASSERT_FATAL(run(1, "", "single") == 0);
    CU_ASSERT_FATAL(need(0, "", "local32") == 0);
    checkpoint_t *a = ckpt("local32"), *b = ckpt("single");
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT(max_diff(a, b) <= 1e-5);
    checkpoint_free(&a);
    checkpoint_free(&b);
}

/* ASP and SSP: the loss falls (a full epoch of the slice). */
static void check_trains(const char *mode, const char *out)
{
    char extra[256];
    snprintf(extra, sizeof extra,
             "--servers 1 --set cluster.consistency=%s --set train.max_steps=0 --set train.epochs=2",
             mode);
    CU_ASSERT_FATAL(run(3, extra, out) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/%s/metrics.csv", tests_tmp_dir(), out);
    err_t err;
    char *csv = fs_read_all(path, NULL, &err);
    CU_ASSERT_FATAL(csv != NULL);
    /* row 2: epoch 2; test loss (7th column) below 0.8, accuracy above 70% */
    char *row = strstr(csv, "\n2,");
    CU_ASSERT_FATAL(row != NULL);
    double v[10] = {0};
    char *p = row + 1;
    for (int i = 0; i < 10 && p; i++) {
        v[i] = atof(p);
        p = strchr(p, ',');
        if (p)
            p++;
    }
    CU_ASSERT(v[6] > 0 && v[6] < 0.8);
    CU_ASSERT(v[7] > 0.7);
    free(csv);
}

static void test_asp(void) { check_trains("asp", "asp"); }
static void test_ssp(void) { check_trains("ssp", "ssp"); }

/* Too few ranks for the servers asked: a clear error, no hang. */
static void test_bad_layout(void)
{
    CU_ASSERT(run(2, "--servers 2", "bad_layout") != 0);
    char path[600];
    snprintf(path, sizeof path, "%s/bad_layout.log", tests_tmp_dir());
    err_t err;
    char *log = fs_read_all(path, NULL, &err);
    CU_ASSERT_FATAL(log != NULL);
    CU_ASSERT(strstr(log, "cannot hold 2 server(s) and at least one trainer") != NULL);
    free(log);
}

static void check_log(const char *out, const char *needle);

/* 1 when a and b hold the same parameters and optimizer state, bit for bit. */
static int same_bits(const checkpoint_t *a, const checkpoint_t *b)
{
    size_t n = a->table.n_params;
    if (n != b->table.n_params || a->n_slots != b->n_slots || a->step != b->step)
        return 0;
    if (memcmp(a->params, b->params, n * sizeof *a->params) != 0)
        return 0;
    return a->n_slots == 0 ||
           memcmp(a->opt_state, b->opt_state, (size_t)a->n_slots * n * sizeof(float)) == 0;
}

static void check_same_bits(const char *x, const char *y)
{
    checkpoint_t *a = ckpt(x), *b = ckpt(y);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT(same_bits(a, b));
    if (!same_bits(a, b))
        fprintf(stderr, "\n  %s and %s differ (max |diff| %.3g)\n", x, y, max_diff(a, b));
    checkpoint_free(&a);
    checkpoint_free(&b);
}

/* 2 epochs in one go equal 1 epoch, checkpoint, resume, 1 more epoch: bit for
 * bit, in single-process training and in BSP; and a resume in the middle of
 * an epoch (after 7 steps). */
#define TWO_EPOCHS "--set train.max_steps=0 --set train.epochs=2"
static void test_resume_local(void)
{
    CU_ASSERT_FATAL(run(0, TWO_EPOCHS, "l_2ep") == 0);
    CU_ASSERT_FATAL(run(0, "--set train.max_steps=0 --set train.epochs=1", "l_1ep") == 0);
    char extra[700];
    snprintf(extra, sizeof extra, TWO_EPOCHS " --resume %s/l_1ep", tests_tmp_dir());
    CU_ASSERT_FATAL(run(0, extra, "l_res") == 0);
    check_same_bits("l_2ep", "l_res");

    CU_ASSERT_FATAL(need_l7res() == 0);
    CU_ASSERT_FATAL(need(0, "", "local32") == 0);
    check_same_bits("local32", "l_7res");
}

static void test_resume_bsp(void)
{
    CU_ASSERT_FATAL(run(3, "--servers 1 " TWO_EPOCHS, "b_2ep") == 0);
    CU_ASSERT_FATAL(run(3, "--servers 1 --set train.max_steps=0 --set train.epochs=1", "b_1ep") == 0);
    char extra[700];
    snprintf(extra, sizeof extra, "--servers 1 " TWO_EPOCHS " --resume %s/b_1ep", tests_tmp_dir());
    CU_ASSERT_FATAL(run(3, extra, "b_res") == 0);
    check_same_bits("b_2ep", "b_res");
    /* periodic checkpoints: each of 2 servers writes its shard every 30 steps;
     * with the end of the job (step 170) and model.ckpt lost, --resume RUN_DIR
     * takes step 150 and finishes the job as if nothing had happened (the same
     * trainers: each key's sum is the same whatever the number of servers) */
    CU_ASSERT_FATAL(run(4, "--servers 2 --set checkpoint.every_steps=30 " TWO_EPOCHS, "b_per") == 0);
    char cmd[1400];
    const char *t = tests_tmp_dir();
    snprintf(cmd, sizeof cmd,
             "ls %s/b_per/checkpoints > %s/b_per_ls.log && cp -r %s/b_per %s/b_lost && "
             "rm -r %s/b_lost/model.ckpt %s/b_lost/checkpoints/step-000000170", t, t, t, t, t, t);
    CU_ASSERT_FATAL(system(cmd) == 0);
    check_log("b_per_ls", "step-000000120\nstep-000000150\nstep-000000170\n"); /* keep = 3 */
    snprintf(extra, sizeof extra, "--servers 2 " TWO_EPOCHS " --resume %s/b_lost", t);
    CU_ASSERT_FATAL(run(4, extra, "b_lost") == 0);
    check_log("b_lost", ""); /* the log exists */
    check_same_bits("b_2ep", "b_lost");
    snprintf(cmd, sizeof cmd, "%s/b_lost/metrics.csv", t);
    err_t err;
    char *csv = fs_read_all(cmd, NULL, &err);
    CU_ASSERT(csv && strstr(csv, "\n1,85,") && strstr(csv, "\n2,170,")); /* epoch 1 kept */
    free(csv);

    /* another layout (2 servers, 3 trainers) resumes the same job: the sums
     * come in another grouping, so equal within float rounding */
    CU_ASSERT_FATAL(run(3, "--servers 1 --set train.max_steps=7", "b_7") == 0);
    snprintf(extra, sizeof extra, "--servers 2 --resume %s/b_7", tests_tmp_dir());
    CU_ASSERT_FATAL(run(5, extra, "b_7res") == 0);
    CU_ASSERT_FATAL(need(3, "--servers 1", "bsp_1x2") == 0);
    checkpoint_t *a = ckpt("bsp_1x2"), *b = ckpt("b_7res");
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT(max_diff(a, b) <= 1e-5);
    CU_ASSERT_EQUAL(b->step, 20);
    checkpoint_free(&a);
    checkpoint_free(&b);
}

/* A log of a run that must fail holds the message. */
static void check_log(const char *out, const char *needle)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.log", tests_tmp_dir(), out);
    err_t err;
    char *log = fs_read_all(path, NULL, &err);
    CU_ASSERT_FATAL(log != NULL);
    if (!strstr(log, needle))
        fprintf(stderr, "\n  %s lacks \"%s\":\n%s\n", path, needle, log);
    CU_ASSERT(strstr(log, needle) != NULL);
    free(log);
}

/* Checkpoints that cannot resume the job are refused with the reason, before
 * any training, in single-process and distributed runs. */
static void test_resume_refused(void)
{
    char extra[700];
    CU_ASSERT_FATAL(need(0, L7, "l_7") == 0 && need(0, "", "local32") == 0);
    snprintf(extra, sizeof extra, "--set train.batch=16 --resume %s/l_7", tests_tmp_dir());
    CU_ASSERT(run(0, extra, "bad_res_batch") != 0);
    check_log("bad_res_batch", "batch 32 on 2700 samples; this job has seed 4, batch 16");
    snprintf(extra, sizeof extra, "--set optimizer.name=sgd --resume %s/l_7", tests_tmp_dir());
    CU_ASSERT(run(3, extra, "bad_res_opt") != 0);
    check_log("bad_res_opt", "trained with optimizer adam");
    snprintf(extra, sizeof extra, "--resume %s/local32", tests_tmp_dir());
    CU_ASSERT(run(0, extra, "bad_res_done") != 0);
    check_log("bad_res_done", "already 20 steps done, the job has 20");

    /* a flipped byte in the parameters */
    const char *dst = flipped_ckpt();
    CU_ASSERT_FATAL(dst != NULL);
    snprintf(extra, sizeof extra, "--resume %s", dst);
    CU_ASSERT(run(3, extra, "bad_res_crc") != 0);
    check_log("bad_res_crc", "flipped.ckpt: section OPTSTATE: CRC mismatch");
}

/* The 26 tables of CFG_CTR (dim 4, Adagrad) in a store, with the rows of
 * the tables files RUN/tables-S-of-N.rows of run `out` (N files) loaded.
 * Returns it, or NULL. */
static rows_t *ctr_tables(const char *out, int n, uint64_t *sizes)
{
    char train[512], test[512], rows[1024];
    tests_ctr_log(train, test, sizeof train, rows, sizeof rows);
    rows_table_t t[CRITEO_CAT];
    const char *p = rows;
    for (int f = 0; f < CRITEO_CAT; f++, p = strchr(p, ',') ? strchr(p, ',') + 1 : p) {
        sizes[f] = strtoull(p, NULL, 10);
        t[f] = (rows_table_t){.id = (uint32_t)f, .dim = 4, .rows = sizes[f]};
    }
    optim_params_t op = {.kind = optim_find("adagrad"), .lr = 0.05};
    const rows_opts_t o = {.seed = 2, .optim = &op};
    err_t err;
    rows_t *s = rows_new(t, CRITEO_CAT, &o, &err);
    for (int i = 0; s && i < n; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s/tables-%d-of-%d.rows", tests_tmp_dir(), out, i, n);
        if (rows_load(s, path, NULL, NULL, &err) != 0) {
            fprintf(stderr, "\n  %s\n", err.msg);
            rows_destroy(&s);
        }
    }
    return s;
}

/* The tables of runs a (na tables files) and b (nb) hold the same rows
 * with values and optimizer state within 1e-5 (and more than 1,000 of
 * them). */
static void check_tables(const char *a_out, int na, const char *b_out, int nb)
{
    uint64_t sizes[CRITEO_CAT];
    rows_t *a = ctr_tables(a_out, na, sizes), *b = ctr_tables(b_out, nb, sizes);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT(rows_count(a) > 1000 && rows_count(a) == rows_count(b));
    double most = 0;
    size_t differ = 0;
    for (uint32_t f = 0; f < CRITEO_CAT; f++)
        for (uint64_t r = 0; r < sizes[f]; r++) {
            float va[4], vb[4], sa[4], sb[4];
            const int ha = rows_peek(a, f, r, va, sa), hb = rows_peek(b, f, r, vb, sb);
            differ += ha != hb;
            for (int i = 0; ha == 1 && hb == 1 && i < 4; i++)
                most = fmax(most, fmax(fabs((double)va[i] - vb[i]), fabs((double)sa[i] - sb[i])));
        }
    if (differ || !(most <= 1e-5))
        fprintf(stderr, "\n  tables of %s and %s: %zu rows held by one run only; max |diff| "
                "%.3g\n", a_out, b_out, differ, most);
    CU_ASSERT(differ == 0 && most <= 1e-5);
    rows_destroy(&a);
    rows_destroy(&b);
}

/* A sparse model (DLRM with embedding tables on the servers) under BSP
 * with 2 servers and 3 trainers x 2 threads equals one process that reads
 * the click log in the same 3 parts (data.parts = 3): the dense parameters
 * and every row of every table (held by the same rows, values and Adagrad
 * state within 1e-5), the test AUC within 1e-4. */
static void test_bsp_sparse(void)
{
    big = 4;
    int local = need(0, "--set data.parts=3 --set train.threads=1", "ctr_local");
    int dist = need(5, "--servers 2", "ctr_bsp_2x3");
    big = 0;
    CU_ASSERT_FATAL(local == 0 && dist == 0);
    check_equal_at("ctr_local", "ctr_bsp_2x3", 60);
    check_tables("ctr_local", 1, "ctr_bsp_2x3", 2);
    const double ua = metric("ctr_local", 12), ub = metric("ctr_bsp_2x3", 12);
    CU_ASSERT(fabs(ua - ub) <= 1e-4 && ua > 0.55);
}

/* The sparse job stopped after 30 of its 60 steps on 2 servers and resumed
 * from its run folder (model.ckpt and the tables next to it) on 1 server,
 * or in one process reading the same 3 parts, ends where the job that ran
 * through ends: dense parameters and every table row within 1e-5. Resumed
 * by 2 trainers (2 parts: other batches) inside the epoch, it is refused. */
static void test_resume_sparse(void)
{
    char extra[700];
    snprintf(extra, sizeof extra, "--servers 1 --resume %s/ctr_bsp_30", tests_tmp_dir());
    big = 4;
    int full = need(5, "--servers 2", "ctr_bsp_2x3");
    int half = need(5, "--servers 2 --set train.max_steps=30", "ctr_bsp_30");
    int rest = half ? half : need(4, extra, "ctr_bsp_res");
    snprintf(extra, sizeof extra, "--set data.parts=3 --resume %s/ctr_bsp_30", tests_tmp_dir());
    int local = half ? half : need(0, extra, "ctr_local_res");
    snprintf(extra, sizeof extra, "--servers 1 --resume %s/ctr_bsp_30", tests_tmp_dir());
    int two = run(3, extra, "bad_ctr_parts");
    big = 0;
    CU_ASSERT_FATAL(full == 0 && half == 0 && rest == 0 && local == 0);
    check_equal_at("ctr_bsp_2x3", "ctr_bsp_res", 60);
    check_tables("ctr_bsp_2x3", 2, "ctr_bsp_res", 1);
    check_equal_at("ctr_bsp_2x3", "ctr_local_res", 60);
    check_tables("ctr_bsp_2x3", 2, "ctr_local_res", 1);
    CU_ASSERT(two != 0);
    check_log("bad_ctr_parts", "read the click log in 3 parts (one per trainer), and this one "
                               "reads it in 2");
}

/* Delta checkpoints of the tables (checkpoint.full_every = 3, one every
 * 10 steps: full at 10, deltas at 20 and 30, full at 40, a delta at 50):
 * the step folders hold the files their chains say, and the job resumed
 * from the delta of step 50 (its full files of step 40, then the delta) on
 * 1 server ends where the job that ran through ends. In one process too. */
static void test_resume_delta(void)
{
    const char *ck = "--set checkpoint.every_steps=10 --set checkpoint.full_every=3 "
                     "--set checkpoint.keep=2";
    char extra[900], path[700];
    big = 4;
    snprintf(extra, sizeof extra, "--servers 2 %s", ck);
    int full = need(5, "--servers 2", "ctr_bsp_2x3"), dist = need(5, extra, "ctr_delta");
    snprintf(extra, sizeof extra, "--set data.parts=3 --set train.threads=1 %s", ck);
    int local = need(0, "--set data.parts=3 --set train.threads=1", "ctr_local");
    int ldelta = need(0, extra, "ctr_local_delta");
    CU_ASSERT_FATAL(full == 0 && dist == 0 && local == 0 && ldelta == 0);
    static const char *const want[] = {"step-000000040/tables-0-of-2.rows",
                                       "step-000000050/delta-1-of-2.rows",
                                       "step-000000060/tables-1-of-2.rows"};
    for (int i = 0; i < 3; i++) { /* 30 was pruned (keep 2), 40 kept for 50's chain */
        snprintf(path, sizeof path, "%s/ctr_delta/checkpoints/%s", tests_tmp_dir(), want[i]);
        CU_ASSERT(access(path, F_OK) == 0);
    }
    snprintf(path, sizeof path, "%s/ctr_delta/checkpoints/step-000000030", tests_tmp_dir());
    CU_ASSERT(access(path, F_OK) != 0);
    snprintf(extra, sizeof extra, "--servers 1 --resume %s/ctr_delta/checkpoints/step-000000050",
             tests_tmp_dir());
    int rest = need(4, extra, "ctr_delta_res");
    snprintf(extra, sizeof extra, "--set data.parts=3 --set train.threads=1 --resume "
             "%s/ctr_local_delta/checkpoints/step-000000050", tests_tmp_dir());
    int lrest = need(0, extra, "ctr_local_delta_res");
    big = 0;
    CU_ASSERT_FATAL(rest == 0 && lrest == 0);
    check_equal_at("ctr_bsp_2x3", "ctr_delta_res", 60);
    check_tables("ctr_bsp_2x3", 2, "ctr_delta_res", 1);
    check_equal_at("ctr_local", "ctr_local_delta_res", 60);
    check_tables("ctr_local", 1, "ctr_local_delta_res", 1);
}

/* The export stage of a finished run, proved as `make run` proves it:
 * ONNX Runtime on model.onnx and pstrain predict on model.ckpt classify each
 * of the run's test images alike, and as many right as the run reported. */
static int verify(const char *out)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "PST_BIN=%s tests/onnx/verify_run.sh %s/%s /usr/share/datasets/fashion-mnist/"
             "t10k-images-idx3-ubyte.gz /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz "
             "500 > %s/%s.verify 2>&1",
             bin(), tests_tmp_dir(), out, tests_tmp_dir(), out);
    int rc = system(cmd);
    char path[600];
    snprintf(path, sizeof path, "%s/%s.verify", tests_tmp_dir(), out);
    err_t err;
    char *log = fs_read_all(path, NULL, &err);
    if (rc != 0 || !log || !strstr(log, "agree on every image"))
        fprintf(stderr, "\n  %s -> %d\n%s\n", cmd, rc, log ? log : "");
    int ok = rc == 0 && log && strstr(log, "agree on every image");
    free(log);
    return ok;
}

static void test_export_cnn(void)
{
    CU_ASSERT_FATAL(need(3, "--servers 1", "bsp_1x2") == 0 && need_l7res() == 0);
    CU_ASSERT(verify("bsp_1x2"));    /* distributed: trainer 0 exported */
    CU_ASSERT(verify("l_7res"));     /* single-process, resumed */
}

static void test_export_lstm(void)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "%s --local --config configs/fashion_lstm.cfg --set data.limit=2000 "
             "--set data.validation=200 --set data.test_limit=500 --set train.max_steps=40 "
             "--out %s/lstm --quiet --no-plot > %s/lstm.log 2>&1",
             bin(), tests_tmp_dir(), tests_tmp_dir());
    CU_ASSERT_FATAL(system(cmd) == 0);
    CU_ASSERT(verify("lstm"));
}

/* pstrain export writes either format on demand and refuses bad usage. */
static void test_export_command(void)
{
    char cmd[1400];
    const char *t = tests_tmp_dir();
    CU_ASSERT_FATAL(need(0, L7, "l_7") == 0 && flipped_ckpt() != NULL);
    snprintf(cmd, sizeof cmd,
             "%s export --checkpoint %s/l_7 --format safetensors --out %s/x.safetensors > /dev/null"
             " && %s export --checkpoint %s/l_7/model.ckpt --out %s/x.onnx > /dev/null"
             " && cmp -s %s/x.safetensors %s/l_7/model.safetensors"
             " && cmp -s %s/x.onnx %s/l_7/model.onnx",
             bin(), t, t, bin(), t, t, t, t, t, t);
    CU_ASSERT(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s export --checkpoint %s/l_7 --format pickle --out %s/x.pkl "
             "2> %s/bad_fmt.log", bin(), t, t, t);
    int rc = system(cmd);
    CU_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    check_log("bad_fmt", "--format is onnx or safetensors, not 'pickle'");
    snprintf(cmd, sizeof cmd, "%s export --checkpoint %s/flipped.ckpt --out %s/x2.onnx "
             "2> %s/bad_ck.log", bin(), t, t, t);
    rc = system(cmd);
    CU_ASSERT(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    check_log("bad_ck", "flipped.ckpt: section OPTSTATE: CRC mismatch");
    char path[600];
    snprintf(path, sizeof path, "%s/x2.onnx", t);
    CU_ASSERT(access(path, F_OK) != 0); /* nothing written */
}

/* Compression: the 3-epoch Fashion-MNIST CNN (configs/fashion_cnn.cfg, 1
 * server + 2 trainers) with fp16 pushes and with top-k 1% pushes reaches the
 * test accuracy of the uncompressed run within half a point, and each push
 * carries at most 0.52x (fp16) and 0.03x (top-k, values and indices) of the
 * uncompressed bytes. */
static void test_compression(void)
{
    static const char *const modes[] = {"none", "fp16", "topk"};
    double acc[3], bytes[3];
    for (int i = 0; i < 3; i++) {
        char out[64], cmd[1400];
        snprintf(out, sizeof out, "comp_%s", modes[i]);
        snprintf(cmd, sizeof cmd,
                 "timeout 300 mpirun %s --oversubscribe -np 3 %s --config configs/fashion_cnn.cfg "
                 "--servers 1 --set cluster.compression=%s --out %s/%s --quiet --no-plot "
                 "> %s/%s.log 2>&1",
                 getuid() == 0 ? "--allow-run-as-root" : "", bin(), modes[i], tests_tmp_dir(),
                 out, tests_tmp_dir(), out);
        CU_ASSERT_FATAL(system(cmd) == 0);
        acc[i] = summary_num(out, "test_accuracy");
        bytes[i] = summary_num(out, "bytes_sent");
    }
    fprintf(stderr, "\n  3 epochs: none %.2f%%, fp16 %.2f%%, top-k 1%% %.2f%%; trainer 0 sent "
            "%.3gx (fp16) and %.3gx (top-k) of the uncompressed bytes\n", 100 * acc[0],
            100 * acc[1], 100 * acc[2], bytes[1] / bytes[0], bytes[2] / bytes[0]);
    CU_ASSERT(fabs(acc[1] - acc[0]) <= 0.005);
    CU_ASSERT(fabs(acc[2] - acc[0]) <= 0.005);
    CU_ASSERT(bytes[1] <= 0.52 * bytes[0]);
    CU_ASSERT(bytes[2] <= 0.03 * bytes[0]);
}

/* Faults in the middle of a job (tests/faults.sh says what each must do). */
static void fault(const char *scenario)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "tests/faults.sh %s %s/fault_%s %s > %s/fault_%s.out 2>&1", scenario,
             tests_tmp_dir(), scenario, bin(), tests_tmp_dir(), scenario);
    int rc = system(cmd);
    char path[600];
    snprintf(path, sizeof path, "%s/fault_%s.out", tests_tmp_dir(), scenario);
    err_t err;
    char *out = fs_read_all(path, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "\n  %s -> %d\n%s\n", cmd, rc, out ? out : "");
    CU_ASSERT(rc == 0);
    free(out);
}

static void test_fault_server_kill(void) { fault("server_kill"); }
static void test_fault_trainer_asp(void) { fault("trainer_asp"); }
static void test_fault_lead_asp(void) { fault("lead_asp"); }
static void test_fault_trainer_bsp(void) { fault("trainer_bsp"); }
static void test_fault_lead_bsp(void) { fault("lead_bsp"); }
static void test_fault_trainer_bsp_continue(void) { fault("trainer_bsp_continue"); }
static void test_fault_sigterm(void) { fault("sigterm"); }
static void test_fault_sigterm_local(void) { fault("sigterm_local"); }
static void test_fault_sigterm_epoch_end(void) { fault("sigterm_epoch_end"); }

int test_cluster_register(void)
{
    CU_pSuite s = CU_add_suite("cluster", NULL, NULL);
    if (!s || !CU_add_test(s, "bsp_1x2", test_bsp_1x2) ||
        !CU_add_test(s, "bsp_2x3_b33", test_bsp_2x3_b33) ||
        !CU_add_test(s, "bsp_pieces", test_bsp_pieces) ||
        !CU_add_test(s, "bsp_threads", test_bsp_threads) ||
        !CU_add_test(s, "bsp_dropout", test_bsp_dropout) ||
        !CU_add_test(s, "bsp_binary", test_bsp_binary) ||
        !CU_add_test(s, "singleton", test_singleton) || !CU_add_test(s, "asp", test_asp) ||
        !CU_add_test(s, "ssp", test_ssp) || !CU_add_test(s, "bad_layout", test_bad_layout) ||
        !CU_add_test(s, "resume_local", test_resume_local) ||
        !CU_add_test(s, "resume_bsp", test_resume_bsp) ||
        !CU_add_test(s, "resume_refused", test_resume_refused) ||
        !CU_add_test(s, "bsp_sparse", test_bsp_sparse) ||
        !CU_add_test(s, "resume_sparse", test_resume_sparse) ||
        !CU_add_test(s, "resume_delta", test_resume_delta) ||
        !CU_add_test(s, "export_cnn", test_export_cnn) ||
        !CU_add_test(s, "export_lstm", test_export_lstm) ||
        !CU_add_test(s, "export_command", test_export_command) ||
        !CU_add_test(s, "fault_server_kill", test_fault_server_kill) ||
        !CU_add_test(s, "fault_trainer_asp", test_fault_trainer_asp) ||
        !CU_add_test(s, "fault_lead_asp", test_fault_lead_asp) ||
        !CU_add_test(s, "fault_trainer_bsp", test_fault_trainer_bsp) ||
        !CU_add_test(s, "fault_lead_bsp", test_fault_lead_bsp) ||
        !CU_add_test(s, "fault_trainer_bsp_continue", test_fault_trainer_bsp_continue) ||
        !CU_add_test(s, "fault_sigterm", test_fault_sigterm) ||
        !CU_add_test(s, "fault_sigterm_local", test_fault_sigterm_local) ||
        !CU_add_test(s, "fault_sigterm_epoch_end", test_fault_sigterm_epoch_end) ||
        !CU_add_test(s, "compression", test_compression))
        return -1;
    return 0;
}
