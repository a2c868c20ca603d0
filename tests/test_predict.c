/* test_predict.c - CUnit suite "predict": native inference (export/predict.h)
 * on the checkpoint of a short training run must classify the test images
 * exactly as the run's own evaluation did (the same number right, image for
 * image against evaluate_range), with and without input normalisation and
 * under MSE; ties go the evaluation's way; bad inputs are refused with the
 * file named; the report names the classes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "common/config/config.h"
#include "common/data/data.h"
#include "trainer/evaluate.h"
#include "export/checkpoint.h"
#include "export/predict.h"
#include "export/trained.h"
#include "common/util/fsutil.h"
#include "common/nn/model.h"
#include "tests.h"
#include "trainer/train.h"

/* A small CNN trained for a few hundred steps: test_limit 1000 is not a
 * multiple of eval_batch, so the last evaluation batch is short. %s: the
 * data folder, %s: the normalisation. */
static const char CNN_FMT[] =
    "name = \"p_cnn\";\n"
    "data = { dir = \"%s\"; limit = 2000; validation = 0; test_limit = 1000; normalize = \"%s\"; };\n"
    "model = { input = [1, 28, 28];\n"
    "  layers = ( { type = \"conv2d\"; filters = 4; kernel = 3; activation = \"relu\"; },\n"
    "             { type = \"maxpool2d\"; pool = 2; }, { type = \"flatten\"; },\n"
    "             { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n"
    "optimizer = { name = \"adam\"; };\n"
    "train = { epochs = 1; batch = 32; eval_batch = 300; seed = 3; log_every = 100000; };\n";

/* A dense model under MSE: no softmax on the outputs. */
static const char MSE_FMT[] =
    "name = \"p_mse\";\n"
    "data = { dir = \"%s\"; limit = 1000; validation = 0; test_limit = 700; normalize = \"%s\"; };\n"
    "model = { input = [1, 28, 28]; loss = \"mse\";\n"
    "  layers = ( { type = \"flatten\"; }, { type = \"dense\"; units = 10; } ); };\n"
    "optimizer = { name = \"sgd\"; lr = 0.05; };\n"
    "train = { epochs = 1; batch = 50; eval_batch = 256; seed = 4; log_every = 100000; };\n";

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tests_tmp_dir(), name);
}

/* The job of fmt with the data folder and normalize filled in, parsed into
 * *cfg; the text into text. */
static void make_cfg(job_config_t *cfg, char *text, size_t len, const char *fmt,
                     const char *normalize)
{
    snprintf(text, len, fmt, tests_data_dir(), normalize);
    err_t err = {{0}};
    int rc = config_load_text(cfg, "predict.cfg", text, NULL, 0, 1, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(rc == 0);
}

/* Trains fmt's job into RUN_DIR/out (its checkpoint: out/model.ckpt, path
 * into ckpt). Returns the result. */
static train_result_t train_job(const char *fmt, const char *normalize, const char *out,
                                char *ckpt, size_t len)
{
    job_config_t *cfg = calloc(1, sizeof *cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    char text[2048], dir[512];
    make_cfg(cfg, text, sizeof text, fmt, normalize);
    tmp_path(dir, sizeof dir, out);
    train_opts_t o = {.out_dir = dir, .config_text = text, .no_plot = 1};
    train_result_t r;
    err_t err = {{0}};
    int rc = train_local(cfg, &o, &r, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(rc == 0);
    snprintf(ckpt, len, "%s/model.ckpt", dir);
    free(cfg);
    return r;
}

/* Number right of the trainer's evaluation (evaluate_range) of t's
 * parameters on the config's test set, prepared as jobdata prepares it:
 * the data loaded and the checkpoint's statistics applied. */
static long evaluate_test_set(trained_t *t, int32_t **labels_out)
{
    err_t err = {{0}};
    const job_config_t *c = t->cfg;
    dataset_t *ds = dataset_load(c->data.test_images, c->data.test_labels,
                                 (size_t)c->data.test_limit, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    trained_normalize(t, ds->x, (int)ds->n);
    double loss = 0;
    long right = 0;
    const int mb = model_max_batch(t->model);
    team_t *team = team_new(t->model, 1, mb, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(team);
    CU_ASSERT(evaluate_range(team, mb, t->ck->params, ds, 0, ds->n, &loss, &right, NULL, NULL) == 0);
    team_destroy(&team);
    if (labels_out) {
        *labels_out = malloc(ds->n * sizeof **labels_out);
        CU_ASSERT_PTR_NOT_NULL_FATAL(*labels_out);
        memcpy(*labels_out, ds->y, ds->n * sizeof **labels_out);
    }
    dataset_destroy(&ds);
    return right;
}

/* Counts the callback's calls and checks their order. */
typedef struct {
    long calls, out_of_order;
    int32_t *seen; /* the classes reported, by index */
    int classes;
} cb_ctx_t;

static void on_pred(void *ctx, long index, int pred, const float *probs, int classes)
{
    cb_ctx_t *c = ctx;
    if (index != c->calls || classes != c->classes || !probs)
        c->out_of_order++;
    else
        c->seen[index] = pred;
    c->calls++;
}

/* Trains fmt's job, runs predict over its test set and requires the same
 * number right as the training run reported and as evaluate_range, and a
 * consistent confusion matrix. */
static void check_matches_training(const char *fmt, const char *normalize, const char *out,
                                   int want_norm)
{
    char ckpt[600];
    train_result_t r = train_job(fmt, normalize, out, ckpt, sizeof ckpt);
    err_t err = {{0}};
    trained_t *t = trained_open(ckpt, 0, &err);
    if (!t)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT(t->ck->norm_kind == want_norm);
    const job_config_t *c = t->cfg;
    const int C = model_output_size(t->model);
    const long n = c->data.test_limit;
    CU_ASSERT(model_max_batch(t->model) ==
              (c->train.batch > c->train.eval_batch ? c->train.batch : c->train.eval_batch));

    cb_ctx_t cb = {.classes = C, .seen = calloc((size_t)n, sizeof(int32_t))};
    CU_ASSERT_PTR_NOT_NULL_FATAL(cb.seen);
    predict_result_t res;
    int rc = predict_run(t, c->data.test_images, c->data.test_labels, (size_t)n, on_pred, &cb,
                         &res, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT(res.n == n && res.has_labels && res.classes == C);
    CU_ASSERT(cb.calls == n && cb.out_of_order == 0);
    CU_ASSERT(memcmp(cb.seen, res.pred, (size_t)n * sizeof *res.pred) == 0);

    /* the training run's figure, and the evaluation's count */
    const long want = lround(r.test_acc * (double)n);
    CU_ASSERT((double)want / (double)n == r.test_acc);
    if (res.correct != want)
        fprintf(stderr, "\n    predict: %ld right, training: %ld\n", res.correct, want);
    CU_ASSERT(res.correct == want);
    int32_t *labels = NULL;
    CU_ASSERT(evaluate_test_set(t, &labels) == res.correct);

    /* image for image: the confusion matrix counts each (label, prediction) */
    long *cm = calloc((size_t)C * C, sizeof *cm), right = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(cm);
    for (long i = 0; i < n; i++) {
        cm[(size_t)labels[i] * C + res.pred[i]]++;
        right += labels[i] == res.pred[i];
    }
    CU_ASSERT(right == res.correct);
    CU_ASSERT(memcmp(cm, res.confusion, (size_t)C * C * sizeof *cm) == 0);

    /* without labels: the same predictions, no accuracy */
    predict_result_t nol;
    CU_ASSERT_FATAL(predict_run(t, c->data.test_images, NULL, (size_t)n, NULL, NULL, &nol,
                                &err) == 0);
    CU_ASSERT(nol.n == n && !nol.has_labels && nol.correct == 0 && nol.confusion == NULL);
    CU_ASSERT(memcmp(nol.pred, res.pred, (size_t)n * sizeof *res.pred) == 0);
    predict_result_free(&nol);

    free(cm);
    free(labels);
    free(cb.seen);
    predict_result_free(&res);
    CU_ASSERT_PTR_NULL(res.pred);
    trained_destroy(&t);
}

static void test_matches_training(void)
{
    check_matches_training(CNN_FMT, "none", "p_cnn", 0);
}

static void test_matches_training_per_pixel(void)
{
    check_matches_training(CNN_FMT, "per_pixel", "p_cnn_pp", NORM_PER_PIXEL);
}

static void test_matches_training_mse(void)
{
    check_matches_training(MSE_FMT, "global", "p_mse", NORM_GLOBAL);
}

/* All parameters zero: every output ties, every image is class 0, in
 * predict as in the evaluation. */
static void test_ties(void)
{
    job_config_t *cfg = calloc(1, sizeof *cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    char text[2048], ckpt[512];
    make_cfg(cfg, text, sizeof text, CNN_FMT, "none");
    err_t err = {{0}};
    model_t *m = model_new(cfg, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    checkpoint_t ck = {.config_text = text, .table = *model_params(m)};
    ck.params = calloc(ck.table.n_params, sizeof *ck.params);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck.params);
    tmp_path(ckpt, sizeof ckpt, "p_zero.ckpt");
    CU_ASSERT_FATAL(checkpoint_write(ckpt, &ck, &err) == 0);
    free(ck.params);
    model_destroy(&m);

    trained_t *t = trained_open(ckpt, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    predict_result_t res;
    CU_ASSERT_FATAL(predict_run(t, cfg->data.test_images, cfg->data.test_labels, 1000, NULL, NULL,
                                &res, &err) == 0);
    long zeros = 0;
    for (long i = 0; i < res.n; i++)
        CU_ASSERT(res.pred[i] == 0);
    for (int k = 0; k < 10; k++)
        zeros += res.confusion[(size_t)k * 10];
    CU_ASSERT(zeros == 1000);
    CU_ASSERT(res.correct == res.confusion[0]);
    CU_ASSERT(evaluate_test_set(t, NULL) == res.correct);
    predict_result_free(&res);
    trained_destroy(&t);
    free(cfg);
}

/* Writes an IDX ubyte file of the given dimensions, every value fill. */
static void write_idx(const char *path, int ndim, const uint32_t *dims, uint8_t fill)
{
    size_t n = 1;
    uint8_t head[4 + 4 * 4] = {0, 0, 8, (uint8_t)ndim};
    for (int d = 0; d < ndim; d++) {
        n *= dims[d];
        for (int b = 0; b < 4; b++)
            head[4 + 4 * d + b] = (uint8_t)(dims[d] >> (8 * (3 - b)));
    }
    uint8_t *buf = malloc(4 + 4 * (size_t)ndim + n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    memcpy(buf, head, 4 + 4 * (size_t)ndim);
    memset(buf + 4 + 4 * ndim, fill, n);
    err_t err;
    CU_ASSERT_FATAL(fs_write_atomic(path, buf, 4 + 4 * (size_t)ndim + n, &err) == 0);
    free(buf);
}

static void test_errors(void)
{
    char ckpt[600], path[600], lpath[600];
    /* a trained model is not needed: zero parameters will do */
    job_config_t *cfg = calloc(1, sizeof *cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    char text[2048];
    make_cfg(cfg, text, sizeof text, CNN_FMT, "none");
    err_t err = {{0}};
    model_t *m = model_new(cfg, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    checkpoint_t ck = {.config_text = text, .table = *model_params(m)};
    ck.params = calloc(ck.table.n_params, sizeof *ck.params);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck.params);
    tmp_path(ckpt, sizeof ckpt, "p_err.ckpt");
    CU_ASSERT_FATAL(checkpoint_write(ckpt, &ck, &err) == 0);
    free(ck.params);
    model_destroy(&m);
    trained_t *t = trained_open(ckpt, 16, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    predict_result_t res;

    /* a missing images file */
    tmp_path(path, sizeof path, "no_such_images.gz");
    CU_ASSERT(predict_run(t, path, NULL, 0, NULL, NULL, &res, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, path);
    CU_ASSERT(res.pred == NULL && res.confusion == NULL && res.n == 0);

    /* a missing labels file */
    CU_ASSERT(predict_run(t, cfg->data.test_images, path, 0, NULL, NULL, &res, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, path);

    /* 10000 test images, 60000 training labels */
    CU_ASSERT(predict_run(t, cfg->data.test_images, cfg->data.train_labels, 100, NULL, NULL, &res,
                          &err) == -1);
    TESTS_ASSERT_HAS(err.msg, cfg->data.test_images);
    TESTS_ASSERT_HAS(err.msg, cfg->data.train_labels);
    TESTS_ASSERT_HAS(err.msg, "holds 10000 images but");
    TESTS_ASSERT_HAS(err.msg, "holds 60000 labels");

    /* images of 14x14 for a 28x28 model */
    const uint32_t small[3] = {5, 14, 14};
    tmp_path(path, sizeof path, "small-images-idx3-ubyte");
    write_idx(path, 3, small, 7);
    CU_ASSERT(predict_run(t, path, NULL, 0, NULL, NULL, &res, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, path);
    TESTS_ASSERT_HAS(err.msg, "14x14 = 196 values");
    TESTS_ASSERT_HAS(err.msg, "takes 784");

    /* a label the model has no class for */
    const uint32_t five[3] = {5, 28, 28}, lab[1] = {5};
    tmp_path(path, sizeof path, "five-images-idx3-ubyte");
    write_idx(path, 3, five, 200);
    tmp_path(lpath, sizeof lpath, "five-labels-idx1-ubyte");
    write_idx(lpath, 1, lab, 12);
    CU_ASSERT(predict_run(t, path, lpath, 0, NULL, NULL, &res, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, lpath);
    TESTS_ASSERT_HAS(err.msg, "label 12 of record 0 is not below the model's 10 classes");

    /* more images asked for than the file has */
    CU_ASSERT(predict_run(t, path, NULL, 6, NULL, NULL, &res, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, path);
    TESTS_ASSERT_HAS(err.msg, "limit 6");

    /* labels swapped for images: one dimension, not an image file */
    CU_ASSERT(predict_run(t, lpath, NULL, 0, NULL, NULL, &res, &err) == -1);
    TESTS_ASSERT_HAS(err.msg, lpath);

    /* and the good small file works, in one short batch */
    write_idx(lpath, 1, lab, 3);
    CU_ASSERT_FATAL(predict_run(t, path, lpath, 0, NULL, NULL, &res, &err) == 0);
    CU_ASSERT(res.n == 5 && res.correct == 0 && res.confusion[3 * 10 + 0] == 5);
    predict_result_free(&res);
    predict_result_free(NULL);
    trained_destroy(&t);
    free(cfg);
}

/* The report: accuracy, the class names (Fashion-MNIST's), a matrix row per class. */
static void test_report(void)
{
    char ckpt[600];
    job_config_t *cfg = calloc(1, sizeof *cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    char text[2048];
    make_cfg(cfg, text, sizeof text, CNN_FMT, "none");
    err_t err = {{0}};
    model_t *m = model_new(cfg, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    checkpoint_t ck = {.config_text = text, .table = *model_params(m)};
    ck.params = calloc(ck.table.n_params, sizeof *ck.params);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck.params);
    ck.params[ck.table.n_params - 1] = 1.0f; /* the last bias: everything is "Ankle boot" */
    tmp_path(ckpt, sizeof ckpt, "p_report.ckpt");
    CU_ASSERT_FATAL(checkpoint_write(ckpt, &ck, &err) == 0);
    free(ck.params);
    model_destroy(&m);
    trained_t *t = trained_open(ckpt, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    predict_result_t res;
    CU_ASSERT_FATAL(predict_run(t, cfg->data.test_images, cfg->data.test_labels, 200, NULL, NULL,
                                &res, &err) == 0);
    CU_ASSERT(res.pred[0] == 9 && res.pred[199] == 9);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT(predict_print_report(f, t, &res, &err) == 0);
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "(%ld of 200 images)", res.correct);
    TESTS_ASSERT_HAS(buf, "accuracy ");
    TESTS_ASSERT_HAS(buf, want);
    TESTS_ASSERT_HAS(buf, "0 T-shirt/top");
    TESTS_ASSERT_HAS(buf, "9 Ankle boot");
    TESTS_ASSERT_HAS(buf, "recall");
    TESTS_ASSERT_HAS(buf, "precision");
    int lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    CU_ASSERT(lines == 1 + 1 + 1 + 10 + 1);
    free(buf);

    /* without labels: only the count */
    predict_result_free(&res);
    CU_ASSERT_FATAL(predict_run(t, cfg->data.test_images, NULL, 50, NULL, NULL, &res, &err) == 0);
    f = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT(predict_print_report(f, t, &res, &err) == 0);
    fclose(f);
    TESTS_ASSERT_HAS(buf, "50 images classified");
    free(buf);
    predict_result_free(&res);
    trained_destroy(&t);
    free(cfg);
}

int test_predict_register(void)
{
    CU_pSuite s = CU_add_suite("predict", NULL, NULL);
    if (!s || !CU_add_test(s, "matches_training", test_matches_training) ||
        !CU_add_test(s, "matches_training_per_pixel", test_matches_training_per_pixel) ||
        !CU_add_test(s, "matches_training_mse", test_matches_training_mse) ||
        !CU_add_test(s, "ties", test_ties) || !CU_add_test(s, "errors", test_errors) ||
        !CU_add_test(s, "report", test_report))
        return -1;
    return 0;
}
