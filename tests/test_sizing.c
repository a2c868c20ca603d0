/* test_sizing.c - CUnit suite "sizing": the start's small model of a
 * distributed job (launch/sizing.h) by hand: the busiest host link's bytes
 * and time for 32 trainers on 1 server and on 32 (the bench MLP at 10
 * Gbit/s, the README's example), BSP against ASP, fp16, ranks sharing a host,
 * a measured compute that hides the network, and one step timed. */
#include <math.h>
#include <stdlib.h>

#include "common/config/config.h"
#include "launch/sizing.h"
#include "tests.h"

#define MLP_PARAMS 36818954u
#define LINK_10G (10e9 / 8 / (1538.0 / 1448.0)) /* payload bytes/s of a 10 Gbit/s link */

static int hosts[128];

/* T trainers and S servers of the bench MLP, every rank on a host of its own. */
static sizing_job_t mlp_job(int S, int T)
{
    for (int i = 0; i < S + T; i++)
        hosts[i] = i;
    sizing_job_t j = {.params = MLP_PARAMS, .batch = 256 * T, .servers = S, .trainers = T,
                      .threads = 16, .bsp = 1, .push_bytes = 4, .pull_bytes = 4, .link_gbps = 10,
                      .core_gflops = 100, .host = hosts, .n_hosts = S + T};
    return j;
}

static void test_sizing_one_server(void)
{
    sizing_job_t j = mlp_job(1, 32);
    sizing_t z;
    CU_ASSERT_EQUAL(sizing_eval(&j, &z), 1);
    /* the server's link carries every trainer's 4 bytes a key each way */
    CU_ASSERT_DOUBLE_EQUAL(z.bytes, 32.0 * 4 * MLP_PARAMS, 1.0);
    CU_ASSERT_EQUAL(z.busiest, 0);
    CU_ASSERT_DOUBLE_EQUAL(z.net_s, 2 * 32.0 * 4 * MLP_PARAMS / LINK_10G, 1e-9);
    /* 6 flops per parameter per sample, 256 samples, 16 threads at 100 GFLOP/s */
    CU_ASSERT_DOUBLE_EQUAL(z.compute_s, 6.0 * MLP_PARAMS * 256 / (16 * 100e9), 1e-12);
}

static void test_sizing_many_servers(void)
{
    sizing_job_t j = mlp_job(32, 32);
    sizing_t z;
    sizing_eval(&j, &z);
    /* each link, a server's or a trainer's, carries one model's bytes */
    CU_ASSERT_DOUBLE_EQUAL(z.bytes, 4.0 * MLP_PARAMS, 1.0);
    CU_ASSERT_DOUBLE_EQUAL(z.net_s, 2 * 4.0 * MLP_PARAMS / LINK_10G, 1e-9);
}

static void test_sizing_asp_fp16(void)
{
    sizing_job_t j = mlp_job(1, 32);
    sizing_t bsp, asp, half;
    sizing_eval(&j, &bsp);
    j.bsp = 0; /* pushes of some overlap pulls of others: the larger phase */
    sizing_eval(&j, &asp);
    CU_ASSERT_DOUBLE_EQUAL(asp.net_s, bsp.net_s / 2, 1e-9);
    j.bsp = 1;
    j.push_bytes = j.pull_bytes = 2;
    sizing_eval(&j, &half);
    CU_ASSERT_DOUBLE_EQUAL(half.bytes, bsp.bytes / 2, 1.0);
}

static void test_sizing_one_host(void)
{
    sizing_job_t j = mlp_job(1, 2);
    int same[3] = {0, 0, 0};
    j.host = same;
    j.n_hosts = 1;
    sizing_t z;
    CU_ASSERT_EQUAL(sizing_eval(&j, &z), 0);
    CU_ASSERT_EQUAL(z.net_s, 0);
    /* two trainers with the server on host 0, one on host 1: only that one's
     * bytes cross a link */
    int two[4] = {0, 0, 0, 1};
    j = mlp_job(1, 3);
    j.host = two;
    j.n_hosts = 2;
    sizing_eval(&j, &z);
    CU_ASSERT_DOUBLE_EQUAL(z.bytes, 4.0 * MLP_PARAMS, 1.0);
}

static void test_sizing_measured(void)
{
    sizing_job_t j = mlp_job(32, 32);
    sizing_t z;
    j.compute_s = 1.0; /* longer than 2 x 147 MB at 10 Gbit/s */
    CU_ASSERT_EQUAL(sizing_eval(&j, &z), 0);
    CU_ASSERT_EQUAL(z.compute_s, 1.0);
    j.compute_s = 0.1;
    CU_ASSERT_EQUAL(sizing_eval(&j, &z), 1);
}

static void test_sizing_timed(void)
{
    static job_config_t cfg;
    err_t err;
    if (config_load(&cfg, "configs/fashion_cnn.cfg", NULL, 0, 0, &err) != 0) {
        CU_FAIL(err.msg);
        return;
    }
    double s = sizing_measure(&cfg, 8, 1);
    CU_ASSERT(s > 0 && s < 5);
}

int test_sizing_register(void)
{
    CU_pSuite s = CU_add_suite("sizing", NULL, NULL);
    if (!s || !CU_add_test(s, "one_server", test_sizing_one_server) ||
        !CU_add_test(s, "many_servers", test_sizing_many_servers) ||
        !CU_add_test(s, "asp_fp16", test_sizing_asp_fp16) ||
        !CU_add_test(s, "one_host", test_sizing_one_host) ||
        !CU_add_test(s, "measured", test_sizing_measured) ||
        !CU_add_test(s, "timed", test_sizing_timed))
        return -1;
    return 0;
}
