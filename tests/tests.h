/* tests.h - the CUnit suites of build/test_pstrain. Each tests/test_X.c
 * defines test_X_register(), which adds its suite and returns 0 (or -1 if
 * CUnit could not add it). */
#ifndef PST_TESTS_H
#define PST_TESTS_H

#include <stddef.h>

#include <CUnit/CUnit.h>
#include <stddef.h>

#include "common/config/config.h"

int test_rng_register(void);
int test_init_register(void);
int test_layers_register(void);
int test_loss_register(void);
int test_optim_register(void);
int test_idx_register(void);
int test_data_register(void);
int test_config_register(void);
int test_torch_register(void);
int test_train_register(void);
int test_wire_register(void);
int test_compress_register(void);
int test_fuzz_register(void);
int test_onnx_register(void);
int test_checkpoint_register(void);
int test_shard_register(void);
int test_server_register(void);
int test_client_register(void);
int test_cluster_register(void);
int test_safetensors_register(void);
int test_predict_register(void);
int test_auth_register(void);
int test_threads_register(void);
int test_registry_register(void);
int test_ctr_register(void);
int test_sparse_register(void);
int test_rows_register(void);
int test_auc_register(void);
int test_tables_register(void);
int test_sizing_register(void);

/* Directory of the committed test fixtures (tests/fixtures), overridable with
 * the PST_FIXTURES environment variable. */
const char *tests_fixture_dir(void);
/* Directory of Fashion-MNIST (PST_DATA_DIR or /usr/share/datasets/fashion-mnist). */
const char *tests_data_dir(void);
/* A fresh temporary directory for this test run (removed at exit). */
const char *tests_tmp_dir(void);
/* Writes tests_tmp_dir()/NAME, an IDX label file of the Fashion-MNIST
 * label file SRC (in tests_data_dir()) mapped to 1 for footwear (sandal,
 * sneaker, ankle boot) and 0 for the rest: a binary task. Returns 0, or -1. */
int tests_footwear_labels(const char *src, const char *name);
/* A synthetic click log (seed 5, cardinalities x 0.001: 20,000 training and
 * 4,000 test lines) as tests_tmp_dir()/ctr_train.txt and ctr_test.txt (their
 * paths into train and test, written once per run), and the tables' sizes
 * of its 26 fields, comma-separated, into rows. Fails the test unless
 * written. */
void tests_ctr_log(char *train, char *test, size_t len, char *rows, size_t rows_len);
/* A small DLRM (dim 4; bottom 13-16-4, the dot interaction, top 16-1, one
 * logit) for that log: a config's model section, its tables' sizes the
 * one %s (tests_ctr_log's rows). */
#define TESTS_CTR_MODEL                                                                       \
    "model = { input = [13]; sparse = { fields = 26; dim = 4; rows = [%s]; };\n"              \
    "  loss = \"binary_cross_entropy\";\n"                                                     \
    "  layers = ( { type = \"dense\"; units = 16; inputs = 13; pass_rest = false;\n"           \
    "               activation = \"relu\"; },\n"                                                \
    "    { type = \"dense\"; units = 4; activation = \"relu\"; },\n"                          \
    "    { type = \"interaction\"; vectors = 27; from_input = 104; },\n"                       \
    "    { type = \"dense\"; units = 16; activation = \"relu\"; },\n"                          \
    "    { type = \"dense\"; units = 1; } ); };\n"

/* Checks that the message msg holds needle, showing both when not. */
#define TESTS_ASSERT_HAS(msg, needle)                                                              \
    do {                                                                                           \
        if (!strstr((msg), (needle)))                                                              \
            fprintf(stderr, "\n    message \"%s\"\n    lacks   \"%s\"\n", (msg), (needle));    \
        CU_ASSERT_PTR_NOT_NULL(strstr((msg), (needle)));                                           \
    } while (0)

/* Shared by the ONNX suites (tests/test_onnx.c defines them). */
/* Folder of run.js, check.py and node_modules (PST_ONNX_DIR or tests/onnx). */
const char *tests_onnx_dir(void);
/* Runs cmd, keeping up to len-1 bytes of its output in out. Returns its exit
 * status, or -1 when it could not run or was killed. */
int tests_run_cmd(const char *cmd, char *out, size_t len);
/* Reads exactly n little-endian floats from path into x. Returns 0 or -1. */
int tests_read_floats(const char *path, float *x, size_t n);
/* Fails the test, showing the report, unless report holds line as a whole line. */
void tests_assert_line(const char *report, const char *line);
/* Writes a checkpoint of config text at path: the seeded initial values of
 * the model's parameters plus uniform noise in [-0.2, 0.2), and random NORM
 * statistics of kind norm (norm_t: none, global or per pixel). */
void tests_write_checkpoint(const char *path, const char *name, const char *text, norm_t norm);

#endif
