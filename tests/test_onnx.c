/* test_onnx.c - CUnit suite "onnx": models exported by onnx_export
 * (export/onnx.h) must pass the ONNX package's own full check (Debian's
 * python3-onnx, tests/onnx/check.py) and, run by ONNX Runtime
 * (onnxruntime-node, tests/onnx/run.js, installed by `make test`), give the
 * probabilities of model_predict within 1e-4 and the same predicted class
 * (argmax, or p >= 0.5 for a one-output binary model), for batch
 * sizes that no dimension of the graph fixes.
 *
 * Each case writes a checkpoint of its config with random parameters (the
 * seeded initial values plus noise, so that no bias is zero) and, for some,
 * random normalisation statistics; opens it with trained_open as the
 * exporter's callers do; exports; checks; runs both ways and compares. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "common/config/config.h"
#include "export/checkpoint.h"
#include "export/onnx.h"
#include "export/trained.h"
#include "common/util/fsutil.h"
#include "common/nn/loss.h"
#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "common/nn/params.h"
#include "common/util/rng.h"
#include "tests.h"

#define TOL 1e-4
#define VERSION "0.1-test"
#define OUT_MAX 8192 /* bytes of check.py's report */

/* Folder of run.js, check.py and node_modules (PST_ONNX_DIR or tests/onnx). */
const char *tests_onnx_dir(void)
{
    const char *d = getenv("PST_ONNX_DIR");
    return d ? d : "tests/onnx";
}

static const char *FASHION_JSON = "[\"T-shirt/top\",\"Trouser\",\"Pullover\",\"Dress\",\"Coat\","
                                  "\"Sandal\",\"Shirt\",\"Sneaker\",\"Bag\",\"Ankle boot\"]";

/* A CNN with padding and stride, a pool that overlaps (stride 1) and one
 * that the model fuses into the conv before it (with sigmoid), tanh and
 * sigmoid fused and standalone, a final standalone softmax that
 * cross-entropy takes into the loss, a 2-channel non-square input, and class
 * names that JSON must escape. Stored with per-pixel normalisation. */
static const char *CNN_VARIANT =
    "name = \"onnx_cnn_variant\";\n"
    "data = { classes = [\"zero\", \"one \\\"1\\\"\", \"zwei/2\", \"drei\", \"f\xc3\xbcnf\"]; };\n"
    "model = { input = [2, 13, 11]; loss = \"cross_entropy\";\n"
    "  layers = (\n"
    "    { type = \"conv2d\"; filters = 4; kernel = 3; stride = 2; padding = 1;"
    " activation = \"tanh\"; },\n"
    "    { type = \"maxpool2d\"; pool = 3; pool_stride = 1; },\n"
    "    { type = \"conv2d\"; filters = 6; kernel = 2; padding = 1; activation = \"sigmoid\"; },\n"
    "    { type = \"maxpool2d\"; pool = 2; },\n"
    "    { type = \"relu\"; },\n"
    "    { type = \"flatten\"; },\n"
    "    { type = \"dense\"; units = 12; activation = \"tanh\"; },\n"
    "    { type = \"sigmoid\"; },\n"
    "    { type = \"dense\"; units = 5; },\n"
    "    { type = \"softmax\"; }\n"
    "  ); };\n";
static const char *CNN_VARIANT_JSON =
    "[\"zero\",\"one \\\"1\\\"\",\"zwei/2\",\"drei\",\"f\xc3\xbcnf\"]";

/* Stacked LSTMs that both return sequences, a standalone tanh between them,
 * flatten of a sequence, and a dense softmax kept in the model (MSE loss).
 * Stored with global normalisation. */
static const char *LSTM_VARIANT =
    "name = \"onnx_lstm_variant\";\n"
    "model = { input = [6, 5]; loss = \"mse\";\n"
    "  layers = (\n"
    "    { type = \"lstm\"; units = 8; return_sequences = true; },\n"
    "    { type = \"tanh\"; },\n"
    "    { type = \"lstm\"; units = 7; return_sequences = true; },\n"
    "    { type = \"flatten\"; },\n"
    "    { type = \"dense\"; units = 4; activation = \"softmax\"; }\n"
    "  ); };\n";

/* Softmax over a whole image sample, fused into a conv and standalone, and
 * a linear output read as is (MSE: no softmax after the model). */
static const char *SOFTMAX_IMAGE =
    "name = \"onnx_softmax_image\";\n"
    "model = { input = [1, 8, 8]; loss = \"mse\";\n"
    "  layers = (\n"
    "    { type = \"conv2d\"; filters = 2; kernel = 3; activation = \"softmax\"; },\n"
    "    { type = \"maxpool2d\"; pool = 2; },\n"
    "    { type = \"softmax\"; },\n"
    "    { type = \"flatten\"; },\n"
    "    { type = \"dense\"; units = 3; }\n"
    "  ); };\n";

/* The layers added by the layer table: average pooling (tiling and
 * overlapping), global average pooling (GlobalAveragePool + Flatten) and
 * dropout (none in the graph: the identity at inference), twice, one of
 * them last before the dense layer. Stored with global normalisation. */
static const char *NEW_LAYERS =
    "name = \"onnx_new_layers\";\n"
    "model = { input = [2, 12, 12]; loss = \"cross_entropy\";\n"
    "  layers = (\n"
    "    { type = \"conv2d\"; filters = 4; padding = 1; activation = \"relu\"; },\n"
    "    { type = \"avgpool2d\"; pool = 2; },\n"
    "    { type = \"dropout\"; rate = 0.5; },\n"
    "    { type = \"conv2d\"; filters = 6; activation = \"tanh\"; },\n"
    "    { type = \"avgpool2d\"; pool = 3; pool_stride = 1; },\n"
    "    { type = \"global_avgpool2d\"; },\n"
    "    { type = \"dropout\"; rate = 0.25; },\n"
    "    { type = \"dense\"; units = 5; activation = \"softmax\"; }\n"
    "  ); };\n";

typedef struct {
    const char *name;       /* file stem in the test's temp folder */
    const char *cfg_file;   /* the config: a file ... */
    const char *cfg_text;   /* ... or this text */
    norm_t norm;            /* statistics stored in the checkpoint */
    int batch[2];           /* the batch sizes run */
    const char *classes;    /* the expected "classes" metadata */
    int ids;                /* > 0: the inputs are ids in [-1, ids] (-1 and ids itself
                               lie outside the table); 0: pixels in [0,1] */
} case_t;

/* ---- helpers ------------------------------------------------------------- */

static void tmp_path(char *buf, size_t len, const char *stem, const char *ext)
{
    snprintf(buf, len, "%s/%s%s", tests_tmp_dir(), stem, ext);
}

/* Writes n floats little-endian to path. Returns 0 or -1. */
static int write_floats(const char *path, const float *x, size_t n)
{
    unsigned char *buf = malloc(4 * n);
    if (!buf)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        for (int k = 0; k < 4; k++)
            buf[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
    err_t err;
    int rc = fs_write_atomic(path, buf, 4 * n, &err);
    free(buf);
    return rc;
}

/* Reads exactly n little-endian floats from path into x. Returns 0 or -1. */
int tests_read_floats(const char *path, float *x, size_t n)
{
    err_t err;
    size_t len;
    unsigned char *buf = (unsigned char *)fs_read_all(path, &len, &err);
    if (!buf || len != 4 * n) {
        fprintf(stderr, "\n    %s: %s (%zu bytes, want %zu)\n", path, buf ? "wrong size" : err.msg,
                buf ? len : 0, 4 * n);
        free(buf);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u = 0;
        for (int k = 0; k < 4; k++)
            u |= (uint32_t)buf[4 * i + k] << (8 * k);
        memcpy(&x[i], &u, 4);
    }
    free(buf);
    return 0;
}

/* Runs cmd, keeping up to len-1 bytes of its output in out. Returns its exit
 * status, or -1 when it could not run or was killed. */
int tests_run_cmd(const char *cmd, char *out, size_t len)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    while (fgetc(p) != EOF) /* drain what did not fit */
        ;
    int st = pclose(p);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

/* Writes head, ",D" for each dimension of cfg's input, then tail into buf. */
static void dims_text(char *buf, size_t len, const char *head, const job_config_t *cfg,
                      const char *tail)
{
    int k = snprintf(buf, len, "%s", head);
    for (int i = 0; i < cfg->model.input_rank; i++)
        k += snprintf(buf + k, len - (size_t)k, ",%d", cfg->model.input[i]);
    snprintf(buf + k, len - (size_t)k, "%s", tail);
}

/* Fails the test, showing the report, unless report holds line as a whole line. */
void tests_assert_line(const char *report, const char *line)
{
    size_t n = strlen(line);
    int found = 0;
    for (const char *p = report; *p && !found; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "")
        found = strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0');
    if (!found)
        fprintf(stderr, "\n    check.py's report lacks the line\n      %s\n    report:\n%s", line,
                report);
    CU_ASSERT(found);
}

/* Writes a checkpoint of config text at path: the seeded initial values of
 * the model's parameters plus uniform noise in [-0.2, 0.2), and random NORM
 * statistics of kind norm (none, global or per pixel). */
void tests_write_checkpoint(const char *path, const char *name, const char *text, norm_t norm)
{
    err_t err;
    job_config_t *cfg = calloc(1, sizeof *cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    if (config_load_text(cfg, name, text, NULL, 0, 0, &err) != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(cfg->model.n_layers > 0);
    model_t *m = model_new(cfg, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    const param_table_t *tab = model_params(m);
    const size_t n = tab->n_params, dim = (size_t)model_input_size(m);

    checkpoint_t *ck = calloc(1, sizeof *ck);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck);
    ck->seed = 11;
    ck->opt_kind = cfg->optimizer.kind->id;
    ck->config_text = strdup(text);
    ck->table = *tab;
    ck->params = malloc(n * sizeof *ck->params);
    CU_ASSERT_FATAL(ck->config_text && ck->params);
    CU_ASSERT_FATAL(params_init_slice(tab, ck->seed, 0, n, ck->params, &err) == 0);
    for (size_t i = 0; i < n; i++)
        ck->params[i] += (float)(0.4 * rng_uniform(ck->seed, 901, i) - 0.2);
    if (norm != NORM_NONE) {
        ck->norm_kind = norm;
        ck->norm_dim = dim;
        ck->norm_mean = malloc(dim * sizeof *ck->norm_mean);
        ck->norm_inv_std = malloc(dim * sizeof *ck->norm_inv_std);
        CU_ASSERT_FATAL(ck->norm_mean && ck->norm_inv_std);
        for (size_t j = 0; j < dim; j++) {
            size_t k = norm == NORM_GLOBAL ? 0 : j; /* one value for every feature */
            ck->norm_mean[j] = (float)(0.2 + 0.3 * rng_uniform(ck->seed, 902, k));
            ck->norm_inv_std[j] = (float)(1.5 + 2.5 * rng_uniform(ck->seed, 903, k));
        }
    }
    if (checkpoint_write(path, ck, &err) != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT(access(path, R_OK) == 0);
    checkpoint_free(&ck);
    model_destroy(&m);
    free(cfg);
}

/* Runs check.py on the exported file and checks the serving contract:
 * IR 8, opset 13, producer, input / output names, shapes and type (float32),
 * class names and version in the metadata. */
static void check_contract(const char *onnx_path, const trained_t *t, const case_t *c)
{
    char cmd[2048], report[OUT_MAX], line[512];
    snprintf(cmd, sizeof cmd, "PYTHONIOENCODING=utf-8 /usr/bin/python3 '%s/check.py' '%s'",
             tests_onnx_dir(), onnx_path);
    int st = tests_run_cmd(cmd, report, sizeof report);
    if (st != 0)
        fprintf(stderr, "\n    %s: exit status %d\n", cmd, st);
    CU_ASSERT_FATAL(st == 0);
    tests_assert_line(report, "ir=8");
    tests_assert_line(report, "opset=ai.onnx:13");
    tests_assert_line(report, "producer=pstrain " VERSION);
    const job_config_t *cfg = t->cfg;
    dims_text(line, sizeof line, "input=input[N", cfg, "] type=1");
    tests_assert_line(report, line);
    snprintf(line, sizeof line, "output=probabilities[N,%d] type=1", model_output_size(t->model));
    tests_assert_line(report, line);
    snprintf(line, sizeof line, "meta.classes=%s", c->classes);
    tests_assert_line(report, line);
    tests_assert_line(report, "meta.pstrain_version=" VERSION);
    snprintf(line, sizeof line, "meta.normalization=%s",
             c->norm == NORM_GLOBAL ? "global" : c->norm == NORM_PER_PIXEL ? "per_pixel" : "none");
    tests_assert_line(report, line);
}

/* Exports case c and compares ONNX Runtime's probabilities with
 * model_predict's for each of its batch sizes. */
static void run_case(const case_t *c)
{
    err_t err;
    char ckpt[512], onnx_path[512];
    tmp_path(ckpt, sizeof ckpt, c->name, ".ckpt");
    tmp_path(onnx_path, sizeof onnx_path, c->name, ".onnx");

    char *text = NULL;
    if (c->cfg_file) {
        size_t len;
        text = fs_read_all(c->cfg_file, &len, &err);
        if (!text)
            fprintf(stderr, "\n    %s\n", err.msg);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    }
    tests_write_checkpoint(ckpt, c->name, text ? text : c->cfg_text, c->norm);
    free(text);

    const int max_b = c->batch[0] > c->batch[1] ? c->batch[0] : c->batch[1];
    trained_t *t = trained_open(ckpt, max_b, &err);
    if (!t)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    int rc = onnx_export(t, onnx_path, VERSION, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(rc == 0);
    check_contract(onnx_path, t, c);

    char node_modules[512];
    snprintf(node_modules, sizeof node_modules, "%s/node_modules/onnxruntime-node", tests_onnx_dir());
    if (access(node_modules, R_OK) != 0)
        fprintf(stderr, "\n    %s is missing: `make test` installs it "
                        "(ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix tests/onnx)\n",
                node_modules);
    CU_ASSERT_FATAL(access(node_modules, R_OK) == 0);

    /* inputs of each batch size, one node run for all of them */
    const int in_size = model_input_size(t->model), classes = model_output_size(t->model);
    const job_config_t *cfg = t->cfg;
    float *x[2] = {NULL, NULL};
    char cmd[4096], out[256];
    int k = snprintf(cmd, sizeof cmd, "node '%s/run.js' '%s'", tests_onnx_dir(), onnx_path);
    for (int r = 0; r < 2; r++) {
        const int B = c->batch[r];
        char in_path[512], out_path[512], dims[64];
        snprintf(in_path, sizeof in_path, "%s/%s.in%d", tests_tmp_dir(), c->name, r);
        snprintf(out_path, sizeof out_path, "%s/%s.out%d", tests_tmp_dir(), c->name, r);
        x[r] = malloc((size_t)B * in_size * sizeof *x[r]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x[r]);
        for (size_t i = 0; i < (size_t)B * in_size; i++) /* pixels in [0,1], or ids */
            x[r][i] = c->ids ? (float)rng_below(77, (uint64_t)r, i, (uint32_t)c->ids + 2) - 1.0f
                             : (float)rng_uniform(77, (uint64_t)r, i);
        CU_ASSERT_FATAL(write_floats(in_path, x[r], (size_t)B * in_size) == 0);
        char b_text[16];
        snprintf(b_text, sizeof b_text, "%d", B);
        dims_text(dims, sizeof dims, b_text, cfg, "");
        k += snprintf(cmd + k, sizeof cmd - k, " '%s' %s '%s'", in_path, dims, out_path);
    }
    int st = tests_run_cmd(cmd, out, sizeof out);
    if (st != 0)
        fprintf(stderr, "\n    %s: exit status %d\n", cmd, st);
    CU_ASSERT_FATAL(st == 0);
    char want[64];
    snprintf(want, sizeof want, "%d,%d\n%d,%d\n", c->batch[0], classes, c->batch[1], classes);
    CU_ASSERT_STRING_EQUAL(out, want);

    /* the reference: normalisation (as pstrain predict applies it), then model_predict */
    for (int r = 0; r < 2; r++) {
        const int B = c->batch[r];
        char out_path[512];
        snprintf(out_path, sizeof out_path, "%s/%s.out%d", tests_tmp_dir(), c->name, r);
        float *got = malloc((size_t)B * classes * sizeof *got);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        CU_ASSERT(tests_read_floats(out_path, got, (size_t)B * classes) == 0);
        trained_normalize(t, x[r], B);
        const float *want_p = model_predict(t->model, t->ck->params, x[r], B);
        double max_diff = 0.0;
        int same_argmax = 1; /* the same predicted class (loss_predict: argmax, or p >= 0.5) */
        const loss_kind_t *loss = model_loss(t->model);
        for (int b = 0; b < B; b++) {
            for (int j = 0; j < classes; j++) {
                const size_t i = (size_t)b * classes + j;
                double d = fabs((double)got[i] - want_p[i]);
                max_diff = (d > max_diff || isnan(d)) ? d : max_diff;
            }
            same_argmax &= loss_predict(loss, got + (size_t)b * classes, classes) ==
                           loss_predict(loss, want_p + (size_t)b * classes, classes);
        }
        printf("\n    %s, batch %d: max |onnxruntime - model_predict| = %.3g, argmax %s", c->name,
               B, max_diff, same_argmax ? "equal" : "DIFFERENT");
        CU_ASSERT(max_diff <= TOL); /* false for NaN */
        CU_ASSERT(same_argmax);
        free(got);
        free(x[r]);
    }
    trained_destroy(&t);
}

/* ---- tests ---------------------------------------------------------------- */

/* The reference CNN (configs/fashion_cnn.cfg): relu conv, maxpool, flatten,
 * dense softmax taken into the cross-entropy loss. */
static void test_cnn_reference(void)
{
    const case_t c = {"onnx_cnn", "configs/fashion_cnn.cfg", NULL, NORM_NONE, {7, 1}, FASHION_JSON, 0};
    run_case(&c);
}

/* The stacked LSTM (configs/fashion_lstm.cfg): LSTM 64 returning sequences,
 * LSTM 32 (last step), dense softmax. */
static void test_lstm_reference(void)
{
    const case_t c = {"onnx_lstm", "configs/fashion_lstm.cfg", NULL, NORM_NONE, {5, 2},
                      FASHION_JSON, 0};
    run_case(&c);
}

static void test_cnn_variant_normalized(void)
{
    const case_t c = {"onnx_cnn_variant", NULL, CNN_VARIANT, NORM_PER_PIXEL, {3, 6},
                      CNN_VARIANT_JSON, 0};
    run_case(&c);
}

static void test_lstm_variant_normalized(void)
{
    const case_t c = {"onnx_lstm_variant", NULL, LSTM_VARIANT, NORM_GLOBAL, {4, 9},
                      "[\"0\",\"1\",\"2\",\"3\"]", 0};
    run_case(&c);
}

static void test_softmax_image(void)
{
    const case_t c = {"onnx_softmax_image", NULL, SOFTMAX_IMAGE, NORM_NONE, {3, 2},
                      "[\"0\",\"1\",\"2\"]", 0};
    run_case(&c);
}

static void test_new_layers(void)
{
    const case_t c = {"onnx_new_layers", NULL, NEW_LAYERS, NORM_GLOBAL, {4, 1},
                      "[\"0\",\"1\",\"2\",\"3\",\"4\"]", 0};
    run_case(&c);
}

/* Token ids through an embedding (some outside the table: zeros) into a
 * stacked LSTM; and DLRM's dot interaction over four vectors then a dense
 * softmax. */
static const char *EMBEDDING_LSTM =
    "name = \"onnx_embedding\";\n"
    "model = { input = [6]; loss = \"cross_entropy\";\n"
    "  layers = (\n"
    "    { type = \"embedding\"; rows = 11; dim = 4; },\n"
    "    { type = \"lstm\"; units = 5; return_sequences = true; },\n"
    "    { type = \"lstm\"; units = 3; },\n"
    "    { type = \"dense\"; units = 3; activation = \"softmax\"; }\n"
    "  ); };\n";
static const char *INTERACTION =
    "name = \"onnx_interaction\";\n"
    "model = { input = [12]; loss = \"cross_entropy\";\n"
    "  layers = (\n"
    "    { type = \"interaction\"; vectors = 4; },\n"
    "    { type = \"dense\"; units = 4; activation = \"softmax\"; }\n"
    "  ); };\n";

/* DLRM's shape: a bottom MLP over the first 3 inputs (dense with inputs =
 * P: Slice, Gemm, Concat) while 3 field vectors of 2 ride along, the dot
 * interaction, a top MLP. */
static const char *DLRM_SHAPE =
    "name = \"onnx_dlrm_shape\";\n"
    "model = { input = [9]; loss = \"cross_entropy\";\n"
    "  layers = (\n"
    "    { type = \"dense\"; units = 5; inputs = 3; activation = \"relu\"; },\n"
    "    { type = \"dense\"; units = 2; inputs = 5; activation = \"sigmoid\"; },\n"
    "    { type = \"interaction\"; vectors = 4; },\n"
    "    { type = \"dense\"; units = 6; activation = \"relu\"; },\n"
    "    { type = \"dense\"; units = 2; activation = \"softmax\"; }\n"
    "  ); };\n";

/* DLRM_SHAPE with the field vectors read from the model's input (dense
 * with pass_rest = false: Slice, Gemm; the interaction's from_input: Slice
 * of the model's input, Concat). */
static const char *DLRM_SKIP =
    "name = \"onnx_dlrm_skip\";\n"
    "model = { input = [9]; loss = \"cross_entropy\";\n"
    "  layers = (\n"
    "    { type = \"dense\"; units = 5; inputs = 3; pass_rest = false; activation = \"relu\"; },\n"
    "    { type = \"dense\"; units = 2; activation = \"sigmoid\"; },\n"
    "    { type = \"interaction\"; vectors = 4; from_input = 6; },\n"
    "    { type = \"dense\"; units = 6; activation = \"relu\"; },\n"
    "    { type = \"dense\"; units = 2; activation = \"softmax\"; }\n"
    "  ); };\n";

static void test_dlrm_shape(void)
{
    const case_t c = {"onnx_dlrm_shape", NULL, DLRM_SHAPE, NORM_NONE, {7, 1}, "[\"0\",\"1\"]", 0};
    run_case(&c);
    const case_t k = {"onnx_dlrm_skip", NULL, DLRM_SKIP, NORM_NONE, {7, 1}, "[\"0\",\"1\"]", 0};
    run_case(&k);
}

/* A click-through-rate model: DLRM's interaction, a relu dense, then ONE
 * logit with the logistic activation that binary_cross_entropy takes into
 * the loss: the graph must end in a Sigmoid giving [N,1] probabilities of
 * class 1, the class names "0" and "1". */
static const char *BINARY =
    "name = \"onnx_binary\";\n"
    "model = { input = [12]; loss = \"binary_cross_entropy\";\n"
    "  layers = (\n"
    "    { type = \"interaction\"; vectors = 4; self = true; },\n"
    "    { type = \"dense\"; units = 5; activation = \"relu\"; },\n"
    "    { type = \"dense\"; units = 1; activation = \"sigmoid\"; }\n"
    "  ); };\n";

static void test_binary(void)
{
    const case_t c = {"onnx_binary", NULL, BINARY, NORM_NONE, {7, 1}, "[\"0\",\"1\"]", 0};
    run_case(&c);
}

static void test_embedding(void)
{
    const case_t c = {"onnx_embedding", NULL, EMBEDDING_LSTM, NORM_NONE, {5, 2},
                      "[\"0\",\"1\",\"2\"]", 11};
    run_case(&c);
}

static void test_interaction(void)
{
    const case_t c = {"onnx_interaction", NULL, INTERACTION, NORM_NONE, {6, 1},
                      "[\"0\",\"1\",\"2\",\"3\"]", 0};
    run_case(&c);
}

/* A path that cannot be written: -1, the path in the message, no file. */
static void test_export_error(void)
{
    err_t err;
    char ckpt[512];
    tmp_path(ckpt, sizeof ckpt, "onnx_err", ".ckpt");
    tests_write_checkpoint(ckpt, "onnx_err", SOFTMAX_IMAGE, NORM_NONE);
    trained_t *t = trained_open(ckpt, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/model.onnx", tests_tmp_dir());
    err.msg[0] = '\0';
    CU_ASSERT(onnx_export(t, path, VERSION, &err) == -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
    CU_ASSERT(access(path, F_OK) != 0);
    trained_destroy(&t);
}

int test_onnx_register(void)
{
    CU_pSuite s = CU_add_suite("onnx", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "cnn_reference", test_cnn_reference) ||
        !CU_add_test(s, "lstm_reference", test_lstm_reference) ||
        !CU_add_test(s, "cnn_variant_normalized", test_cnn_variant_normalized) ||
        !CU_add_test(s, "lstm_variant_normalized", test_lstm_variant_normalized) ||
        !CU_add_test(s, "softmax_image", test_softmax_image) ||
        !CU_add_test(s, "new_layers", test_new_layers) ||
        !CU_add_test(s, "embedding", test_embedding) ||
        !CU_add_test(s, "interaction", test_interaction) ||
        !CU_add_test(s, "dlrm_shape", test_dlrm_shape) ||
        !CU_add_test(s, "binary", test_binary) ||
        !CU_add_test(s, "export_error", test_export_error))
        return -1;
    return 0;
}
