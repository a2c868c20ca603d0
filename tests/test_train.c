/* test_train.c - short single-process training runs on a slice of
 * Fashion-MNIST: the loss must fall below a bound, the run folder must hold
 * metrics.csv, summary.json (whose figures must be the run's) and
 * curves.png, and two runs of the same job must give the same parameters;
 * a binary_cross_entropy model (footwear or not) must reach an AUC, with
 * the AUC and log-loss columns, and predict must agree with it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "common/config/config.h"
#include "common/data/ctr_synth.h"
#include "common/data/idx.h"
#include "common/util/fsutil.h"
#include "export/predict.h"
#include "export/trained.h"
#include "trainer/report.h"
#include "trainer/train.h"
#include "tests.h"

static const char *CNN_CFG =
    "name = \"t_cnn\";\n"
    "data = { limit = 3000; validation = 500; test_limit = 1000; };\n"
    "model = { input = [1, 28, 28];\n"
    "  layers = ( { type = \"conv2d\"; filters = 8; kernel = 3; activation = \"relu\"; },\n"
    "             { type = \"maxpool2d\"; pool = 2; }, { type = \"flatten\"; },\n"
    "             { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n"
    "optimizer = { name = \"adam\"; };\n"
    "train = { epochs = 2; batch = 32; seed = 1; log_every = 1000; };\n";

static const char *LSTM_CFG =
    "name = \"t_lstm\";\n"
    "data = { limit = 3000; validation = 0; test_limit = 500; };\n"
    "model = { input = [28, 28];\n"
    "  layers = ( { type = \"lstm\"; units = 16; return_sequences = true; },\n"
    "             { type = \"lstm\"; units = 16; },\n"
    "             { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n"
    "optimizer = { name = \"adam\"; lr = 0.003; };\n"
    "train = { epochs = 2; batch = 32; seed = 2; };\n";

/* The number at key of summary object o, or NAN when it has none. */
static double json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* cJSON writes a double with 15 significant digits when they read back
 * within its epsilon: equal to 1e-14 relative. */
static int same_num(double a, double b)
{
    return fabs(a - b) <= 1e-14 * fabs(b);
}

static int write_cfg(const char *name, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", tests_tmp_dir(), name);
    err_t err;
    return fs_write_atomic(path, text, strlen(text), &err);
}

static int run_export(const char *cfg_text, const char *name, const char *out,
                      train_result_t *res, float **params_out, size_t *n_out,
                      const char *const *sets, int n_sets, int no_export)
{
    char path[1024];
    if (write_cfg(name, cfg_text, path, sizeof path) != 0)
        return -1;
    job_config_t *cfg = calloc(1, sizeof *cfg);
    err_t err;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", tests_tmp_dir(), out);
    if (config_load(cfg, path, sets, n_sets, 1, &err) != 0) {
        fprintf(stderr, "\n  %s\n", err.msg);
        free(cfg);
        return -1;
    }
    float *p = calloc(200000, sizeof *p); /* larger than the test models */
    char *text = config_text(path, sets, n_sets, &err); /* kept in model.ckpt */
    train_opts_t o = {.out_dir = dir, .final_params = p, .config_text = text,
                      .no_export = no_export};
    int rc = train_local(cfg, &o, res, &err);
    free(text);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err.msg);
    *params_out = p;
    *n_out = rc == 0 ? res->params : 0;
    free(cfg);
    return rc;
}

static int run(const char *cfg_text, const char *name, const char *out, train_result_t *res,
               float **params_out, size_t *n_out, const char *const *sets, int n_sets)
{
    return run_export(cfg_text, name, out, res, params_out, n_out, sets, n_sets, 0);
}

static void test_cnn_learns(void)
{
    train_result_t r;
    float *p;
    size_t n;
    CU_ASSERT_FATAL(run(CNN_CFG, "cnn.cfg", "run_cnn", &r, &p, &n, NULL, 0) == 0);
    CU_ASSERT(n < 200000);
    CU_ASSERT_EQUAL(r.epochs, 2);
    CU_ASSERT_EQUAL(r.steps, 2 * ((2500 + 31) / 32));
    /* chance is loss 2.30, accuracy 10% */
    CU_ASSERT(r.train_loss < 0.9);
    CU_ASSERT(r.test_loss < 0.9);
    CU_ASSERT(r.test_acc > 0.68);
    CU_ASSERT(r.val_acc > 0.68);
    /* the speed is the samples trained over the time spent training them */
    CU_ASSERT(r.train_s > 0 && r.train_s <= r.wall_s);
    CU_ASSERT(fabs(r.samples_per_s * r.train_s - 2 * 2500) < 1e-6 * 2 * 2500);

    char f[1200];
    struct stat st;
    snprintf(f, sizeof f, "%s/run_cnn/metrics.csv", tests_tmp_dir());
    err_t err;
    size_t len;
    char *csv = fs_read_all(f, &len, &err);
    CU_ASSERT_FATAL(csv != NULL);
    CU_ASSERT(strncmp(csv, "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,"
                           "test_accuracy,wall_s,samples_per_s\n1,79,", 100) == 0);
    CU_ASSERT(strstr(csv, "\n2,158,") != NULL);
    free(csv);
    snprintf(f, sizeof f, "%s/run_cnn/summary.json", tests_tmp_dir());
    char *js = fs_read_all(f, &len, &err);
    CU_ASSERT_FATAL(js != NULL);
    cJSON *o = cJSON_Parse(js);
    free(js);
    CU_ASSERT_FATAL(o != NULL);
    /* summary.json says what the run returned */
    CU_ASSERT(same_num(json_num(o, "test_accuracy"), r.test_acc));
    CU_ASSERT(same_num(json_num(o, "test_loss"), r.test_loss));
    CU_ASSERT(same_num(json_num(o, "val_accuracy"), r.val_acc));
    CU_ASSERT(same_num(json_num(o, "train_loss"), r.train_loss));
    CU_ASSERT(same_num(json_num(o, "samples_per_s"), r.samples_per_s));
    CU_ASSERT(same_num(json_num(o, "wall_s"), r.wall_s));
    CU_ASSERT_EQUAL(json_num(o, "epochs"), 2);
    CU_ASSERT_EQUAL(json_num(o, "steps"), 158);
    CU_ASSERT_EQUAL(json_num(o, "samples"), 2 * 2500);
    CU_ASSERT_EQUAL(json_num(o, "params"), 13610);
    CU_ASSERT_EQUAL(json_num(o, "batch"), 32);
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(o, "mode");
    CU_ASSERT(cJSON_IsString(mode) && strcmp(mode->valuestring, "local") == 0);
    const cJSON *cfgp = cJSON_GetObjectItemCaseSensitive(o, "config");
    CU_ASSERT(cJSON_IsString(cfgp) && strstr(cfgp->valuestring, "cnn.cfg") != NULL);
    cJSON_Delete(o);
    snprintf(f, sizeof f, "%s/run_cnn/curves.png", tests_tmp_dir());
    CU_ASSERT(stat(f, &st) == 0 && st.st_size > 1000);

    /* the same job again: the same parameters, bit for bit */
    train_result_t r2;
    float *p2;
    size_t n2;
    CU_ASSERT_FATAL(run(CNN_CFG, "cnn.cfg", "run_cnn2", &r2, &p2, &n2, NULL, 0) == 0);
    CU_ASSERT(n2 == n && memcmp(p, p2, n * sizeof *p) == 0);
    free(p2);
    /* another seed: other parameters */
    const char *sets[] = {"train.seed=5", "train.epochs=1"};
    CU_ASSERT_FATAL(run(CNN_CFG, "cnn.cfg", "run_cnn3", &r2, &p2, &n2, sets, 2) == 0);
    CU_ASSERT(r2.epochs == 1);
    CU_ASSERT(memcmp(p, p2, n * sizeof *p) != 0);
    free(p2);
    free(p);
}

static void test_lstm_learns(void)
{
    train_result_t r;
    float *p;
    size_t n;
    CU_ASSERT_FATAL(run(LSTM_CFG, "lstm.cfg", "run_lstm", &r, &p, &n, NULL, 0) == 0);
    CU_ASSERT(r.steps == 2 * 94);
    CU_ASSERT(r.train_loss < 1.3);
    CU_ASSERT(r.test_loss < 1.1);
    CU_ASSERT(r.test_acc > 0.62);
    CU_ASSERT(isnan(r.val_acc)); /* validation = 0 */
    free(p);
}

/* max_steps stops early; sgd and the step schedule train too */
static void test_max_steps_sgd(void)
{
    train_result_t r;
    float *p;
    size_t n;
    const char *sets[] = {"train.max_steps=40", "optimizer.name=momentum", "optimizer.lr=0.05",
                          "optimizer.schedule=step", "optimizer.step_size=20"};
    CU_ASSERT_FATAL(run(CNN_CFG, "cnn.cfg", "run_sgd", &r, &p, &n, sets, 5) == 0);
    CU_ASSERT_EQUAL(r.steps, 40);
    CU_ASSERT_EQUAL(r.epochs, 1);
    CU_ASSERT(r.test_loss < 1.5);
    free(p);
}

/* --no-export: the run's checkpoint and summary, no model.onnx or
 * model.safetensors; without it, both. */
static void test_no_export(void)
{
    const char *sets[] = {"train.max_steps=5"};
    const char *outs[] = {"run_no_export", "run_export"};
    for (int k = 0; k < 2; k++) {
        train_result_t r;
        float *p;
        size_t n;
        CU_ASSERT_FATAL(run_export(CNN_CFG, "cnn.cfg", outs[k], &r, &p, &n, sets, 1, !k) == 0);
        free(p);
        const char *files[] = {"model.ckpt", "summary.json", "model.onnx", "model.safetensors"};
        for (int f = 0; f < 4; f++) {
            char path[1200];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s/%s", tests_tmp_dir(), outs[k], files[f]);
            CU_ASSERT_EQUAL(stat(path, &st) == 0, f < 2 || k == 1);
        }
    }
}

/* A binary job: Fashion-MNIST labelled 1 for footwear (sandal 5, sneaker
 * 7, ankle boot 9), else 0; one logit, the logistic activation fused. The
 * label files are written by tests_footwear_labels; %s: their folder. */
static const char *BINARY_CFG =
    "name = \"t_binary\";\n"
    "data = { limit = 3000; validation = 500; test_limit = 1000;\n"
    "  train_labels = \"%s/bin-train-labels\"; test_labels = \"%s/bin-test-labels\"; };\n"
    "model = { input = [1, 28, 28]; loss = \"binary_cross_entropy\";\n"
    "  layers = ( { type = \"flatten\"; },\n"
    "             { type = \"dense\"; units = 16; activation = \"relu\"; },\n"
    "             { type = \"dense\"; units = 1; activation = \"sigmoid\"; } ); };\n"
    "optimizer = { name = \"adam\"; };\n"
    "train = { epochs = 2; batch = 32; seed = 3; log_every = 1000; };\n";

int tests_footwear_labels(const char *src, const char *name)
{
    char in[1024], out[1024];
    snprintf(in, sizeof in, "%s/%s", tests_data_dir(), src);
    snprintf(out, sizeof out, "%s/%s", tests_tmp_dir(), name);
    err_t err;
    idx_t *l = idx_load(in, 0, 0, &err);
    if (!l) {
        fprintf(stderr, "\n  %s\n", err.msg);
        return -1;
    }
    const size_t n = l->count;
    uint8_t *buf = malloc(8 + n);
    int rc = -1;
    if (buf) {
        const uint8_t head[8] = {0, 0, 0x08, 0x01, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
                                 (uint8_t)(n >> 8), (uint8_t)n};
        memcpy(buf, head, 8);
        for (size_t i = 0; i < n; i++)
            buf[8 + i] = l->data[i] == 5 || l->data[i] == 7 || l->data[i] == 9;
        rc = fs_write_atomic(out, buf, 8 + n, &err);
    }
    free(buf);
    idx_destroy(&l);
    return rc;
}

/* The AUC of a tiny network on footwear-or-not rises well above chance;
 * metrics.csv has the binary columns, summary.json the AUC, the log loss is
 * the loss; predict's count right (p >= 0.5) is the run's test accuracy. */
static void test_binary_auc(void)
{
    CU_ASSERT_FATAL(tests_footwear_labels("train-labels-idx1-ubyte.gz", "bin-train-labels") == 0);
    CU_ASSERT_FATAL(tests_footwear_labels("t10k-labels-idx1-ubyte.gz", "bin-test-labels") == 0);
    char text[2048];
    snprintf(text, sizeof text, BINARY_CFG, tests_tmp_dir(), tests_tmp_dir());
    train_result_t r;
    float *p;
    size_t n;
    CU_ASSERT_FATAL(run(text, "binary.cfg", "run_binary", &r, &p, &n, NULL, 0) == 0);
    free(p);
    CU_ASSERT(r.binary);
    CU_ASSERT(r.test_auc > 0.97 && r.test_auc <= 1.0);
    CU_ASSERT(r.val_auc > 0.97 && r.val_auc <= 1.0);
    CU_ASSERT(r.test_logloss == r.test_loss && r.test_loss < 0.25);
    CU_ASSERT(r.test_acc > 0.9);

    char f[1200];
    err_t err;
    size_t len;
    snprintf(f, sizeof f, "%s/run_binary/metrics.csv", tests_tmp_dir());
    char *csv = fs_read_all(f, &len, &err);
    CU_ASSERT_FATAL(csv != NULL);
    CU_ASSERT(strncmp(csv, "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,"
                           "test_accuracy,wall_s,samples_per_s,val_auc,val_logloss,test_auc,"
                           "test_logloss\n1,79,", 140) == 0);
    free(csv);
    /* a resumed run reads the binary columns back */
    epoch_row_t rows[2];
    snprintf(f, sizeof f, "%s/run_binary", tests_tmp_dir());
    CU_ASSERT_EQUAL_FATAL(report_read_metrics(f, rows, 2, 2), 2);
    CU_ASSERT(rows[1].binary && fabs(rows[1].test_auc - r.test_auc) < 1e-6);
    CU_ASSERT(fabs(rows[1].val_logloss - r.val_loss) < 1e-6);
    snprintf(f, sizeof f, "%s/run_binary/summary.json", tests_tmp_dir());
    char *js = fs_read_all(f, &len, &err);
    CU_ASSERT_FATAL(js != NULL);
    cJSON *o = cJSON_Parse(js);
    free(js);
    CU_ASSERT_FATAL(o != NULL);
    CU_ASSERT(same_num(json_num(o, "test_auc"), r.test_auc));
    CU_ASSERT(same_num(json_num(o, "val_auc"), r.val_auc));
    CU_ASSERT(same_num(json_num(o, "test_logloss"), r.test_logloss));
    cJSON_Delete(o);
    struct stat st;
    snprintf(f, sizeof f, "%s/run_binary/curves.png", tests_tmp_dir());
    CU_ASSERT(stat(f, &st) == 0 && st.st_size > 1000);

    /* predict classifies the test set as the evaluation did */
    snprintf(f, sizeof f, "%s/run_binary/model.ckpt", tests_tmp_dir());
    trained_t *t = trained_open(f, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    predict_result_t res;
    CU_ASSERT_FATAL(predict_run(t, t->cfg->data.test_images, t->cfg->data.test_labels, 1000, NULL,
                                NULL, &res, &err) == 0);
    CU_ASSERT(res.classes == 2 && res.n == 1000);
    CU_ASSERT(res.correct == lround(r.test_acc * 1000));
    predict_result_free(&res);
    trained_destroy(&t);
}

/* ---- a sparse model on click logs ------------------------------------- */

#define CTR_TRAIN_LINES 20000
#define CTR_TEST_LINES 4000

void tests_ctr_log(char *train, char *test, size_t len, char *rows, size_t rows_len)
{
    snprintf(train, len, "%s/ctr_train.txt", tests_tmp_dir());
    snprintf(test, len, "%s/ctr_test.txt", tests_tmp_dir());
    err_t err;
    const ctr_synth_opts_t o = {.seed = 5, .rows_scale = 0.001};
    ctr_synth_t *g = ctr_synth_new(&o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    size_t k = 0;
    for (int f = 0; f < CRITEO_CAT; f++)
        k += (size_t)snprintf(rows + k, rows_len - k, "%s%u", f ? ", " : "", ctr_synth_rows(g, f));
    if (access(train, F_OK) == 0 && access(test, F_OK) == 0) { /* written by an earlier test */
        ctr_synth_destroy(&g);
        return;
    }
    FILE *ft = fopen(train, "w"), *fe = fopen(test, "w");
    CU_ASSERT_FATAL(ft && fe);
    char line[CTR_SYNTH_LINE_MAX];
    for (uint64_t i = 0; i < CTR_TRAIN_LINES + CTR_TEST_LINES; i++) {
        size_t n = ctr_synth_line(g, i, line, NULL);
        CU_ASSERT_FATAL(fwrite(line, 1, n, i < CTR_TRAIN_LINES ? ft : fe) == n);
    }
    fclose(ft);
    fclose(fe);
    ctr_synth_destroy(&g);
}

/* The small DLRM of TESTS_CTR_MODEL for the log of tests_ctr_log. */
static void ctr_cfg(char *text, size_t len, const char *train, const char *test, const char *rows)
{
    snprintf(text, len,
             "data = { format = \"criteo\"; train = \"%s\"; test = \"%s\"; };\n"
             TESTS_CTR_MODEL
             "optimizer = { name = \"sgd\"; lr = 0.1; };\n"
             "train = { epochs = 2; batch = 64; seed = 0; threads = 1; };\n",
             train, test, rows);
}

/* DLRM learns the planted model of a synthetic click log in one process:
 * the steps the lines give, the test AUC well above chance, a rerun bit
 * for bit the same, 2 threads within a hair of 1, the summary's tables. */
static void test_ctr_learns(void)
{
    char train[512], test[512], rows[1024], text[4096];
    tests_ctr_log(train, test, sizeof train, rows, sizeof rows);
    ctr_cfg(text, sizeof text, train, test, rows);
    train_result_t r, r2, r3;
    float *p;
    size_t n;
    CU_ASSERT_FATAL(run(text, "ctr.cfg", "run_ctr", &r, &p, &n, NULL, 0) == 0);
    free(p);
    CU_ASSERT_EQUAL(r.steps, 2 * ((CTR_TRAIN_LINES + 63) / 64));
    CU_ASSERT(r.binary);
    printf("\n    DLRM on %d synthetic lines: test AUC %.4f, log loss %.4f ", CTR_TRAIN_LINES,
           r.test_auc, r.test_logloss);
    CU_ASSERT(r.test_auc > 0.58); /* chance: 0.5, with a std of 0.01 on 4,000 samples */
    CU_ASSERT(r.test_logloss < 0.6);
    CU_ASSERT_FATAL(run(text, "ctr.cfg", "run_ctr2", &r2, &p, &n, NULL, 0) == 0);
    free(p);
    CU_ASSERT(r2.test_auc == r.test_auc && r2.test_loss == r.test_loss);
    const char *two[] = {"train.threads=2"};
    CU_ASSERT_FATAL(run(text, "ctr.cfg", "run_ctr3", &r3, &p, &n, two, 1) == 0);
    free(p);
    CU_ASSERT(fabs(r3.test_auc - r.test_auc) < 0.01);
    char path[1200];
    snprintf(path, sizeof path, "%s/run_ctr/summary.json", tests_tmp_dir());
    err_t err;
    size_t len;
    char *js = fs_read_all(path, &len, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(js);
    cJSON *o = cJSON_Parse(js);
    const cJSON *t = cJSON_GetObjectItem(o, "tables");
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(t, "rows_created")), CRITEO_CAT);
    CU_ASSERT(json_num(t, "rows_held") > 100 && json_num(t, "bytes") > 0);
    CU_ASSERT(json_num(o, "test_auc") == r.test_auc);
    cJSON_Delete(o);
    free(js);
}

/* Click logs need model.sparse, and model.sparse click logs. */
static void test_ctr_refused(void)
{
    char train[512], test[512], rows[1024], text[4096];
    tests_ctr_log(train, test, sizeof train, rows, sizeof rows);
    ctr_cfg(text, sizeof text, train, test, rows);
    train_result_t r;
    float *p = NULL; /* run() sets it only once the config has loaded */
    size_t n;
    const char *idx[] = {"data.format=idx"};
    CU_ASSERT(run(text, "ctr_idx.cfg", "run_ctr_idx", &r, &p, &n, idx, 1) == -1);
    free(p);
    p = NULL;
    const char *no_tables[] = {"model.sparse.fields=0", "model.input=[117]"};
    CU_ASSERT(run(text, "ctr_plain.cfg", "run_ctr_plain", &r, &p, &n, no_tables, 2) == -1);
    free(p);
    p = NULL;
    const char *wrong_dim[] = {"model.input=[12]"};
    CU_ASSERT(run(text, "ctr_dim.cfg", "run_ctr_dim", &r, &p, &n, wrong_dim, 1) == -1);
    free(p);
}

int test_train_register(void)
{
    CU_pSuite s = CU_add_suite("train", NULL, NULL);
    if (!s || !CU_add_test(s, "cnn_learns", test_cnn_learns) ||
        !CU_add_test(s, "lstm_learns", test_lstm_learns) ||
        !CU_add_test(s, "max_steps_sgd", test_max_steps_sgd) ||
        !CU_add_test(s, "no_export", test_no_export) ||
        !CU_add_test(s, "binary_auc", test_binary_auc) ||
        !CU_add_test(s, "ctr_learns", test_ctr_learns) ||
        !CU_add_test(s, "ctr_refused", test_ctr_refused))
        return -1;
    return 0;
}
