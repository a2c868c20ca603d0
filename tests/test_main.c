/* test_main.c - runs every CUnit suite of pstrain; exits 1 if any check fails.
 * Usage: test_pstrain [SUITE [TEST]] to run one suite or one test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "tests.h"

static char tmp_dir[256];

const char *tests_fixture_dir(void)
{
    const char *d = getenv("PST_FIXTURES");
    return d ? d : "tests/fixtures";
}

const char *tests_data_dir(void)
{
    const char *d = getenv("PST_DATA_DIR");
    return d ? d : "/usr/share/datasets/fashion-mnist";
}

const char *tests_tmp_dir(void)
{
    return tmp_dir;
}

static void remove_tmp(void)
{
    if (tmp_dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_pstrain: could not remove %s\n", tmp_dir);
    }
}

int main(int argc, char **argv)
{
    /* mkdtemp's template: the prefix and six 'X' to be replaced */
    int n = snprintf(tmp_dir, sizeof tmp_dir, "/tmp/pstrain-test-");
    memset(tmp_dir + n, 'X', 6);
    tmp_dir[n + 6] = '\0';
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(remove_tmp);

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    int (*regs[])(void) = {
        test_rng_register,   test_init_register, test_layers_register, test_loss_register,
        test_optim_register, test_idx_register,  test_data_register,   test_config_register,
        test_torch_register, test_train_register, test_shard_register, test_server_register, test_client_register,
        test_cluster_register,
        test_checkpoint_register, test_onnx_register,
        test_wire_register, test_compress_register, test_fuzz_register,
        test_safetensors_register, test_predict_register,
        test_auth_register, test_registry_register, test_threads_register, test_ctr_register,
        test_sparse_register, test_rows_register, test_auc_register, test_tables_register,
        test_sizing_register,
    };
    for (size_t i = 0; i < sizeof regs / sizeof regs[0]; i++)
        if (regs[i]() != 0) {
            fprintf(stderr, "test_pstrain: cannot register suite %zu: %s\n", i, CU_get_error_msg());
            CU_cleanup_registry();
            return 1;
        }

    CU_basic_set_mode(CU_BRM_VERBOSE);
    if (argc >= 2) {
        CU_pSuite s = CU_get_suite(argv[1]);
        if (!s) {
            fprintf(stderr, "test_pstrain: no suite %s\n", argv[1]);
            CU_cleanup_registry();
            return 1;
        }
        if (argc >= 3) {
            CU_pTest t = CU_get_test(s, argv[2]);
            if (!t) {
                fprintf(stderr, "test_pstrain: no test %s in %s\n", argv[2], argv[1]);
                CU_cleanup_registry();
                return 1;
            }
            CU_basic_run_test(s, t);
        } else {
            CU_basic_run_suite(s);
        }
    } else {
        CU_basic_run_tests();
    }
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    printf("\ntest_pstrain: %u tests run, %s\n", run, failed ? "FAILURES" : "all passed");
    return (failed || run == 0) ? 1 : 0;
}
