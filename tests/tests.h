/* tests.h - the CUnit suites of build/test_pstrain. Each tests/test_X.c
 * defines test_X_register(), which adds its suite and returns 0 (or -1 if
 * CUnit could not add it). */
#ifndef PST_TESTS_H
#define PST_TESTS_H

#include <CUnit/CUnit.h>

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

#endif
