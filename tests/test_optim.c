/* test_optim.c - each optimizer against steps computed by hand, the
 * learning-rate schedules, and slice independence (a server updating its
 * shard gets what the whole-buffer update gives). */
#include <math.h>
#include <string.h>

#include "common/nn/optim.h"
#include "tests.h"

static void test_sgd_momentum(void)
{
    optim_params_t o = {.kind = optim_find("sgd"), .lr = 0.1};
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, -1.0f}, st[2];
    optim_update(&o, p, g, NULL, 2, 1, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.95, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -1.9, 1e-7);

    o = (optim_params_t){.kind = optim_find("momentum"), .lr = 0.1, .momentum = 0.9};
    p[0] = 1.0f;
    optim_state_init(&o, st, 1);
    float g1 = 0.5f, g2 = -0.25f;
    optim_update(&o, p, &g1, st, 1, 1, 0.1); /* buf = .5; p = 1 - .05 */
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.95, 1e-7);
    optim_update(&o, p, &g2, st, 1, 2, 0.1); /* buf = .45 - .25 = .2; p = .95 - .02 */
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.93, 1e-7);

    o.nesterov = 1;
    p[0] = 1.0f;
    optim_state_init(&o, st, 1);
    optim_update(&o, p, &g1, st, 1, 1, 0.1); /* buf = .5; p = 1 - .1 (.5 + .45) */
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.905, 1e-7);
    optim_update(&o, p, &g2, st, 1, 2, 0.1); /* buf = .2; p = .905 - .1 (-.25 + .18) */
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.912, 1e-7);
}

static void test_adam(void)
{
    optim_params_t o = {.kind = optim_find("adam"), .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-7};
    CU_ASSERT_EQUAL(optim_slots(&o), 2);
    float p = 0.5f, st[2];
    optim_state_init(&o, st, 1);
    float g = 2.0f;
    /* step 1: m = .2, v = .004, m^ = 2, v^ = 4: p -= 1e-3 * 2 / (2 + 1e-7) */
    optim_update(&o, &p, &g, st, 1, 1, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(p, 0.5 - 1e-3 * 2 / (2 + 1e-7), 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(st[0], 0.2, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(st[1], 0.004, 1e-7); /* (1 - beta2) is inexact in float */
    /* step 2 with g = -1: m = .18 - .1 = .08; v = .003996 + .001 = .004996 */
    g = -1.0f;
    double before = p;
    optim_update(&o, &p, &g, st, 1, 2, 1e-3);
    double mh = 0.08 / (1 - 0.81), vh = 0.004996 / (1 - 0.998001);
    CU_ASSERT_DOUBLE_EQUAL(p, before - 1e-3 * mh / (sqrt(vh) + 1e-7), 1e-7);
}

static void test_adagrad(void)
{
    optim_params_t o = {.kind = optim_find("adagrad"), .lr = 0.1, .eps = 1e-7, .initial_accumulator = 0.1};
    float p = 1.0f, st;
    optim_state_init(&o, &st, 1);
    CU_ASSERT_DOUBLE_EQUAL(st, 0.1, 1e-8);
    float g = 0.3f;
    optim_update(&o, &p, &g, &st, 1, 1, 0.1); /* acc = .19; p -= .1 * .3 / sqrt(.19) */
    CU_ASSERT_DOUBLE_EQUAL(st, 0.19, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(p, 1.0 - 0.03 / (sqrt(0.19) + 1e-7), 1e-7);
}

static void test_schedules(void)
{
    optim_params_t o = {.kind = optim_find("sgd"), .lr = 0.1, .schedule = SCHED_CONSTANT};
    CU_ASSERT_DOUBLE_EQUAL(optim_lr(&o, 1000, 10), 0.1, 1e-12);
    o.schedule = SCHED_STEP;
    o.step_size = 10;
    o.gamma = 0.5;
    CU_ASSERT_DOUBLE_EQUAL(optim_lr(&o, 9, 100), 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(optim_lr(&o, 10, 100), 0.05, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(optim_lr(&o, 25, 100), 0.025, 1e-12);
    o.schedule = SCHED_COSINE;
    o.min_lr = 0.01;
    CU_ASSERT_DOUBLE_EQUAL(optim_lr(&o, 0, 100), 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(optim_lr(&o, 50, 100), 0.055, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(optim_lr(&o, 100, 100), 0.01, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(optim_lr(&o, 200, 100), 0.01, 1e-12);
    o.decay_steps = 10;
    CU_ASSERT_DOUBLE_EQUAL(optim_lr(&o, 5, 100), 0.055, 1e-12);
}

/* Updating [0, n) at once, as two shards each with its own state slice, or
 * as two pieces of one slice (optim_update_slice) gives the same bits. */
static void test_slices(void)
{
    for (int k = 0; optim_at(k); k++) {
        optim_params_t o = {.kind = optim_at(k), .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999,
                            .eps = 1e-7, .momentum = 0.9, .initial_accumulator = 0.1};
        enum { N = 37, CUT = 15 };
        float pa[N], pb[N], pc[N], g[N], sa[2 * N], s1[2 * CUT], s2[2 * (N - CUT)], sc[2 * N];
        for (int i = 0; i < N; i++) {
            pa[i] = pb[i] = pc[i] = 0.01f * i - 0.2f;
            g[i] = 0.03f * ((i * 7) % 11) - 0.15f;
        }
        optim_state_init(&o, sa, N);
        optim_state_init(&o, s1, CUT);
        optim_state_init(&o, s2, N - CUT);
        optim_state_init(&o, sc, N);
        for (int t = 1; t <= 3; t++) {
            optim_update(&o, pa, g, sa, N, t, 0.01);
            optim_update(&o, pb, g, s1, CUT, t, 0.01);
            optim_update(&o, pb + CUT, g + CUT, s2, N - CUT, t, 0.01);
            /* two pieces of one slice: its state slots stay N floats apart */
            optim_update_slice(&o, pc, g, sc, N, CUT, t, 0.01);
            optim_update_slice(&o, pc + CUT, g + CUT, sc + CUT, N, N - CUT, t, 0.01);
        }
        CU_ASSERT(memcmp(pa, pb, sizeof pa) == 0);
        CU_ASSERT(memcmp(pa, pc, sizeof pa) == 0);
        CU_ASSERT(memcmp(sa, sc, (size_t)optim_slots(&o) * N * sizeof(float)) == 0);
    }
}

/* The numbers checkpoints keep for each optimizer never change (a
 * checkpoint written before must load), and the registry maps both ways. */
static void test_registry(void)
{
    const char *names[] = {"sgd", "momentum", "adam", "adagrad", "rowwise_adagrad"};
    const int slots[] = {0, 1, 2, 1, 1};
    for (int id = 0; id < 5; id++) {
        const optim_kind_t *k = optim_find(names[id]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(k);
        CU_ASSERT_EQUAL(k->id, id);
        CU_ASSERT_EQUAL(k->slots, slots[id]);
        CU_ASSERT_EQUAL(optim_by_id(id), k);
        CU_ASSERT_STRING_EQUAL(optim_id_name(id), names[id]);
    }
    CU_ASSERT_PTR_NULL(optim_by_id(5)); /* the first number not yet given */
    CU_ASSERT_STRING_EQUAL(optim_id_name(-1), "?");
    CU_ASSERT_PTR_NULL(optim_find("adamw"));
    /* sgd with momentum > 0 is the momentum optimizer */
    CU_ASSERT_EQUAL(optim_momentum_form(optim_find("sgd")), optim_find("momentum"));
    CU_ASSERT_PTR_NULL(optim_momentum_form(optim_find("adam")));
}

int test_optim_register(void)
{
    CU_pSuite s = CU_add_suite("optim", NULL, NULL);
    if (!s || !CU_add_test(s, "sgd_momentum", test_sgd_momentum) || !CU_add_test(s, "adam", test_adam) ||
        !CU_add_test(s, "adagrad", test_adagrad) || !CU_add_test(s, "schedules", test_schedules) ||
        !CU_add_test(s, "slices", test_slices) || !CU_add_test(s, "registry", test_registry))
        return -1;
    return 0;
}
