/* test_rows.c - the row store of sparse embedding tables (common/nn/rows.h)
 * and the row forms of the optimizers: each row optimizer against steps
 * computed by hand, initial values independent of creation order and store,
 * validation that changes nothing, admission, LRU eviction, full and delta
 * files, loading onto another number of servers, corrupted files, memory
 * per row. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/nn/rows.h"
#include "fixture.h"
#include "tests.h"

#define DIM_MAX 8

static optim_params_t opt_named(const char *name)
{
    return (optim_params_t){.kind = optim_find(name), .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999,
                            .eps = 1e-8, .initial_accumulator = 0.0};
}

/* A store of one table (id 3, dim, bound rows, admit_after) under op. */
static rows_t *one_table(const optim_params_t *op, size_t dim, uint64_t rows, unsigned admit,
                         size_t max_rows, uint64_t seed)
{
    rows_table_t t = {.id = 3, .dim = dim, .rows = rows, .admit_after = admit};
    rows_opts_t o = {.seed = seed, .optim = op, .max_rows = max_rows, .sketch_width = 1u << 12};
    err_t err = {{0}};
    rows_t *s = rows_new(&t, 1, &o, &err);
    if (!s)
        fprintf(stderr, "rows_new: %s\n", err.msg);
    return s;
}

/* Sets row id of table 3 to value v (pull to create it, then an SGD-like
 * write is not available: push a gradient that moves it there with lr 1
 * under sgd). Only for sgd stores. */
static void set_row(rows_t *s, uint64_t id, const float *v, size_t dim)
{
    float cur[DIM_MAX], g[DIM_MAX];
    CU_ASSERT_EQUAL_FATAL(rows_pull(s, 3, &id, 1, cur, NULL), 0);
    for (size_t k = 0; k < dim; k++)
        g[k] = cur[k] - v[k];
    CU_ASSERT_EQUAL(rows_push(s, 3, &id, 1, g, 1, 1.0, NULL), 0);
}

static void test_sgd_rows(void)
{
    optim_params_t op = opt_named("sgd");
    rows_t *s = one_table(&op, 3, 100, 0, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(rows_state_len(s, 3), 0);
    const float p0[3] = {1.0f, -2.0f, 0.5f}, g1[3] = {0.5f, -1.0f, 2.0f}, g2[3] = {1, 1, 1};
    set_row(s, 7, p0, 3);
    uint64_t id = 7;
    float p[3];
    CU_ASSERT_EQUAL(rows_push(s, 3, &id, 1, g1, 2, 0.1, NULL), 0); /* p -= .1 g */
    CU_ASSERT_EQUAL(rows_pull(s, 3, &id, 1, p, NULL), 0);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.95, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -1.9, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[2], 0.3, 1e-6);
    CU_ASSERT_EQUAL(rows_push(s, 3, &id, 1, g2, 3, 0.05, NULL), 0);
    CU_ASSERT_EQUAL(rows_pull(s, 3, &id, 1, p, NULL), 0);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.90, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -1.95, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[2], 0.25, 1e-6);
    rows_destroy(&s);
    CU_ASSERT_PTR_NULL(s);
}

/* PyTorch's sparse Adagrad: the dense formula on each element of a touched
 * row, one accumulator per element. */
static void test_adagrad_rows(void)
{
    optim_params_t op = opt_named("adagrad");
    op.eps = 1e-7;
    op.initial_accumulator = 0.1;
    float p[2] = {1.0f, 1.0f}, st[2] = {0, 0}, g[2] = {0.3f, -0.2f};
    CU_ASSERT_EQUAL(optim_row_slots(&op, 2), 2);
    optim_row_state_init(&op, st, 2);
    CU_ASSERT_DOUBLE_EQUAL(st[1], 0.1, 1e-8);
    /* acc = .1 + .09 = .19, .1 + .04 = .14; p -= .1 g / sqrt(acc) */
    optim_update_row(&op, p, g, st, 2, 1, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(st[0], 0.19, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(st[1], 0.14, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 1.0 - 0.03 / (sqrt(0.19) + 1e-7), 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], 1.0 + 0.02 / (sqrt(0.14) + 1e-7), 1e-6);
    double q0 = p[0];
    float g2[2] = {-0.2f, 0.0f}; /* acc .23, .14 (a zero gradient leaves its element) */
    optim_update_row(&op, p, g2, st, 2, 2, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(st[0], 0.23, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(p[0], q0 + 0.02 / (sqrt(0.23) + 1e-7), 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], 1.0 + 0.02 / (sqrt(0.14) + 1e-7), 1e-6);
}

/* FBGEMM / DLRM row-wise Adagrad: one accumulator per row, acc += mean(g^2). */
static void test_rowwise_adagrad(void)
{
    optim_params_t op = opt_named("rowwise_adagrad");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op.kind);
    CU_ASSERT_EQUAL(optim_row_slots(&op, 2), 1);
    CU_ASSERT_EQUAL(optim_row_slots(&op, 64), 1);
    float p[2] = {0.5f, -0.5f}, acc = 1.0f, g[2] = {0.3f, -0.4f};
    optim_row_state_init(&op, &acc, 2);
    CU_ASSERT_DOUBLE_EQUAL(acc, 0.0, 0);
    /* acc = (.09 + .16) / 2 = .125; p -= .1 g / sqrt(.125) = .1 g / .353553 */
    optim_update_row(&op, p, g, &acc, 2, 1, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(acc, 0.125, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.5 - 0.0848528, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -0.5 + 0.1131371, 1e-6);
    /* step 2, g = (.1, .1): acc = .125 + .01 = .135; p -= .01 / sqrt(.135) = .0272166 */
    float g2[2] = {0.1f, 0.1f};
    optim_update_row(&op, p, g2, &acc, 2, 2, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(acc, 0.135, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.5 - 0.0848528 - 0.0272166, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -0.5 + 0.1131371 - 0.0272166, 1e-6);
    /* step 3 at lr .05, g = (0, .6): acc = .135 + .18 = .315; p1 -= .05 .6 / .561249 */
    float g3[2] = {0.0f, 0.6f};
    double before = p[1];
    optim_update_row(&op, p, g3, &acc, 2, 3, 0.05);
    CU_ASSERT_DOUBLE_EQUAL(acc, 0.315, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], before - 0.0534522, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.5 - 0.0848528 - 0.0272166, 1e-6);

    /* dense: every parameter is a row of one value, which is Adagrad */
    optim_params_t ad = op;
    ad.kind = optim_find("adagrad");
    float pa[5], pb[5], sa[5], sb[5], gd[5];
    for (int i = 0; i < 5; i++) {
        pa[i] = pb[i] = 0.1f * i;
        gd[i] = 0.2f * i - 0.3f;
    }
    optim_state_init(&op, sa, 5);
    optim_state_init(&ad, sb, 5);
    for (int t = 1; t <= 3; t++) {
        optim_update(&op, pa, gd, sa, 5, t, 0.1);
        optim_update(&ad, pb, gd, sb, 5, t, 0.1);
    }
    CU_ASSERT(memcmp(pa, pb, sizeof pa) == 0);
}

/* torch.optim.SparseAdam: moments of touched rows only, bias correction by
 * the global step, eps outside the bias correction. */
static void test_lazy_adam(void)
{
    optim_params_t op = opt_named("adam");
    op.lr = 1e-3;
    CU_ASSERT_EQUAL(optim_row_slots(&op, 1), 2);
    float a = 0.5f, b = 0.5f, sa[2], sb[2];
    optim_row_state_init(&op, sa, 1);
    optim_row_state_init(&op, sb, 1);
    /* t = 1, row a, g = 2: m = .2, v = .004; step = 1e-3 sqrt(.001) / .1;
     * p -= step .2 / sqrt(.004) = 1e-3 exactly (the first step is lr sign g) */
    float g = 2.0f;
    optim_update_row(&op, &a, &g, sa, 1, 1, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(sa[0], 0.2, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(sa[1], 0.004, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(a, 0.499, 1e-6);
    /* t = 2, only row b, g = .5: m = .05, v = .00025, bc1 = .19, bc2 = .001999 */
    g = 0.5f;
    optim_update_row(&op, &b, &g, sb, 1, 2, 1e-3);
    double step2 = 1e-3 * sqrt(0.001999) / 0.19;
    CU_ASSERT_DOUBLE_EQUAL(b, 0.5 - step2 * 0.05 / (sqrt(0.00025) + 1e-8), 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(sa[0], 0.2, 1e-7); /* row a untouched: not decayed */
    /* t = 3, row a, g = -1: m = .2 + .1 (-1 - .2) = .08 (a dense Adam would
     * have decayed it at t = 2: .18 - .1 = .062); v = .004 + .001 (1 - .004) */
    g = -1.0f;
    double before = a;
    optim_update_row(&op, &a, &g, sa, 1, 3, 1e-3);
    double v3 = 0.004 + 0.001 * (1 - 0.004);
    double step3 = 1e-3 * sqrt(1 - pow(0.999, 3)) / (1 - pow(0.9, 3));
    CU_ASSERT_DOUBLE_EQUAL(sa[0], 0.08, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(sa[1], v3, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(a, before - step3 * 0.08 / (sqrt(v3) + 1e-8), 1e-6);
    /* momentum has no row form */
    optim_params_t mo = opt_named("momentum");
    CU_ASSERT_FALSE(optim_has_rows(&mo));
    CU_ASSERT_TRUE(optim_has_rows(&op));
}

/* Three sparse steps of each row optimizer on a table of 6 rows of dim 4
 * against PyTorch (tests/fixtures/make_row_fixtures.py): torch.optim.SGD and
 * Adagrad on sparse gradients, SparseAdam, and DLRM's row-wise Adagrad. Rows
 * a step does not touch keep their value and state (lazy updates). */
static void test_torch_rows(void)
{
    enum { R = 6, D = 4 };
    char path[512];
    snprintf(path, sizeof path, "%s/rows_optim.bin", tests_fixture_dir());
    err_t err = {{0}};
    fixture_t *fx = fixture_load(path, &err);
    if (!fx)
        fprintf(stderr, "\n  %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx);
    struct {
        const char *name;
        optim_params_t o;
    } cases[] = {
        {"sgd", {.kind = optim_find("sgd"), .lr = 0.1}},
        {"adagrad", {.kind = optim_find("adagrad"), .lr = 0.1, .eps = 1e-10, .initial_accumulator = 0.1}},
        {"adam", {.kind = optim_find("adam"), .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}},
        {"rowwise_adagrad", {.kind = optim_find("rowwise_adagrad"), .lr = 0.1, .eps = 1e-8}},
    };
    size_t n = 0;
    const float *w0 = fixture_get(fx, "w0", &n);
    CU_ASSERT_FATAL(w0 && n == R * D);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const optim_params_t *o = &cases[c].o;
        float w[R * D], state[R * 2 * D];
        const size_t ns = optim_row_slots(o, D);
        memcpy(w, w0, sizeof w);
        for (int r = 0; r < R; r++)
            optim_row_state_init(o, state + r * ns, D);
        for (int t = 1; t <= 3; t++) {
            char name[48];
            size_t k = 0, kg = 0;
            snprintf(name, sizeof name, "idx%d", t);
            const float *idx = fixture_get(fx, name, &k);
            snprintf(name, sizeof name, "g%d", t);
            const float *g = fixture_get(fx, name, &kg);
            CU_ASSERT_FATAL(idx && g && kg == k * D);
            for (size_t i = 0; i < k; i++) {
                size_t r = (size_t)idx[i];
                optim_update_row(o, w + r * D, g + i * D, state + r * ns, D, t, o->lr);
            }
            snprintf(name, sizeof name, "%s.w%d", cases[c].name, t);
            const float *ref = fixture_get(fx, name, &n);
            CU_ASSERT_FATAL(ref && n == R * D);
            /* the change from w0 within 1e-4 of its size (float32 against
             * float64), the values within 1e-6 */
            double worst = 0;
            for (int i = 0; i < R * D; i++) {
                double dm = (double)w[i] - w0[i], dr = (double)ref[i] - w0[i];
                double e = fabs(dm - dr) / (fabs(dr) + 1e-3);
                worst = e > worst ? e : worst;
                if (fabs((double)w[i] - ref[i]) > 1e-6)
                    worst = 1;
            }
            if (worst > 1e-4)
                fprintf(stderr, "\n  %s: relative error %g\n", name, worst);
            CU_ASSERT(worst <= 1e-4);
        }
    }
    fixture_destroy(&fx);
}

/* The store applies the table's optimizer (lazy Adam here) to pushed rows,
 * with the step the caller gives, and leaves other rows alone. */
static void test_push_applies(void)
{
    optim_params_t op = opt_named("adam");
    rows_t *s = one_table(&op, 2, 0, 0, 0, 9);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint64_t ids[2] = {11, 1ull << 63};
    float v[4], init[4], g[4] = {2, 2, -1, -1}, st[4];
    CU_ASSERT_EQUAL(rows_pull(s, 3, ids, 2, init, NULL), 0);
    CU_ASSERT_EQUAL(rows_push(s, 3, ids, 1, g, 1, 1e-3, NULL), 0);
    CU_ASSERT_EQUAL(rows_pull(s, 3, ids, 2, v, NULL), 0);
    CU_ASSERT_DOUBLE_EQUAL(v[0], init[0] - 1e-3, 1e-6); /* SparseAdam's first step */
    CU_ASSERT_DOUBLE_EQUAL(v[1], init[1] - 1e-3, 1e-6);
    CU_ASSERT(v[2] == init[2] && v[3] == init[3]);
    CU_ASSERT_EQUAL(rows_peek(s, 3, ids[1], NULL, st), 1);
    CU_ASSERT(st[0] == 0 && st[1] == 0 && st[2] == 0 && st[3] == 0);
    CU_ASSERT_EQUAL(rows_peek(s, 3, ids[0], NULL, st), 1);
    CU_ASSERT_DOUBLE_EQUAL(st[0], 0.2, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(st[3], 0.004, 1e-7);
    rows_destroy(&s);
}

/* A row's initial value is a pure function of (seed, table, row): the same
 * whatever was created before it and in whichever store. */
static void test_initial(void)
{
    optim_params_t op = opt_named("sgd");
    rows_table_t tabs[2] = {{.id = 1, .dim = 5, .rows = 10000}, {.id = 2, .dim = 5, .rows = 0}};
    rows_opts_t o = {.seed = 42, .optim = &op};
    rows_t *a = rows_new(tabs, 2, &o, NULL), *b = rows_new(tabs, 2, &o, NULL);
    rows_t *c = rows_new(tabs + 1, 1, &o, NULL); /* another store, one table */
    CU_ASSERT_FATAL(a && b && c);
    uint64_t ids_a[3] = {5, 77, 9999}, ids_b[4] = {9999, 3, 4, 77};
    float va[15], vb[20], vc[5], ref[5];
    CU_ASSERT_EQUAL(rows_pull(a, 1, ids_a, 3, va, NULL), 0);
    CU_ASSERT_EQUAL(rows_pull(b, 2, ids_b, 4, vb, NULL), 0); /* other rows first */
    CU_ASSERT_EQUAL(rows_pull(b, 1, ids_b, 4, vb, NULL), 0);
    CU_ASSERT(memcmp(va + 10, vb, 5 * sizeof(float)) == 0); /* row 9999 */
    CU_ASSERT(memcmp(va + 5, vb + 15, 5 * sizeof(float)) == 0); /* row 77 */
    CU_ASSERT_EQUAL(rows_initial(a, 1, 77, ref, NULL), 0);
    CU_ASSERT(memcmp(va + 5, ref, sizeof ref) == 0);
    /* bounded: uniform in [-sqrt(1/rows), sqrt(1/rows)] = [-.01, .01], not constant */
    int differ = 0;
    for (int i = 0; i < 15; i++) {
        CU_ASSERT(fabsf(va[i]) <= 0.01f);
        differ |= va[i] != va[0];
    }
    CU_ASSERT(differ);
    /* unbounded, default scale sqrt(1/dim); the same row in store c */
    uint64_t big = 0xfedcba9876543210ull;
    float vu[5];
    CU_ASSERT_EQUAL(rows_pull(a, 2, &big, 1, vu, NULL), 0);
    CU_ASSERT_EQUAL(rows_pull(c, 2, &big, 1, vc, NULL), 0);
    CU_ASSERT(memcmp(vu, vc, sizeof vu) == 0);
    float lim = sqrtf(1.0f / 5), maxabs = 0;
    for (int i = 0; i < 5; i++)
        maxabs = fmaxf(maxabs, fabsf(vu[i]));
    CU_ASSERT(maxabs <= lim && maxabs > 0.01f);
    /* another table or seed gives other values */
    float other[5];
    CU_ASSERT_EQUAL(rows_initial(a, 2, 77, other, NULL), 0);
    CU_ASSERT(memcmp(other, ref, sizeof ref) != 0);
    rows_destroy(&a);
    rows_destroy(&b);
    rows_destroy(&c);
    o.seed = 43;
    a = rows_new(tabs, 2, &o, NULL);
    CU_ASSERT_EQUAL(rows_initial(a, 1, 77, other, NULL), 0);
    CU_ASSERT(memcmp(other, ref, sizeof ref) != 0);
    /* init_scale */
    rows_destroy(&a);
    tabs[0].init_scale = 1e-6;
    a = rows_new(tabs, 2, &o, NULL);
    CU_ASSERT_EQUAL(rows_initial(a, 1, 77, other, NULL), 0);
    CU_ASSERT(fabsf(other[0]) <= 1e-6f && other[0] != 0);
    rows_destroy(&a);
}

/* Every bad request fails with a message naming what is wrong and changes
 * nothing: no row created, updated, stamped or counted. */
static void test_validation(void)
{
    optim_params_t op = opt_named("sgd");
    rows_t *s = one_table(&op, 2, 50, 0, 40, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint64_t ok[3] = {1, 2, 3};
    float v[200], g[200], before[6], after[6];
    for (int i = 0; i < 200; i++)
        g[i] = 1.0f;
    CU_ASSERT_EQUAL(rows_pull(s, 3, ok, 3, before, NULL), 0);
    err_t err = {{0}};
    uint64_t bad[3] = {4, 50, 5};
    CU_ASSERT_EQUAL(rows_pull(s, 3, bad, 3, v, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "row 50 out of range"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "table 3"));
    CU_ASSERT_EQUAL(rows_push(s, 3, bad, 3, g, 1, 0.1, &err), -1);
    CU_ASSERT_EQUAL(rows_pull(s, 9, ok, 3, v, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "table 9: no such table"));
    CU_ASSERT_EQUAL(rows_push(s, 9, ok, 3, g, 1, 0.1, &err), -1);
    uint64_t dup[4] = {1, 2, 3, 2};
    CU_ASSERT_EQUAL(rows_push(s, 3, dup, 4, g, 1, 0.1, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "row 2 appears twice"));
    CU_ASSERT_EQUAL(rows_push(s, 3, ok, 3, g, 0, 0.1, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "step 0"));
    uint64_t many[41];
    for (int i = 0; i < 41; i++)
        many[i] = (uint64_t)i;
    CU_ASSERT_EQUAL(rows_pull(s, 3, many, 41, v, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "max_rows 40"));
    /* nothing changed: three rows, their values, no evictions */
    CU_ASSERT_EQUAL(rows_count(s), 3);
    rows_stats_t st;
    CU_ASSERT_EQUAL(rows_stats(s, 3, &st), 0);
    CU_ASSERT_EQUAL(st.created, 3);
    CU_ASSERT_EQUAL(st.dropped, 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(rows_peek(s, 3, ok[i], after + 2 * i, NULL), 1);
    CU_ASSERT(memcmp(before, after, sizeof before) == 0);
    CU_ASSERT_EQUAL(rows_peek(s, 3, 4, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rows_peek(s, 9, 4, NULL, NULL), -1);
    CU_ASSERT_EQUAL(rows_stats(s, 9, &st), -1);
    rows_destroy(&s);

    /* bad settings */
    rows_table_t t = {.id = 1, .dim = 0};
    rows_opts_t o = {.optim = &op};
    CU_ASSERT_PTR_NULL(rows_new(&t, 1, &o, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "dim 0"));
    t.dim = 4;
    t.admit_after = 300;
    CU_ASSERT_PTR_NULL(rows_new(&t, 1, &o, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "admit_after"));
    t.admit_after = 0;
    optim_params_t mo = opt_named("momentum");
    t.optim = &mo;
    CU_ASSERT_PTR_NULL(rows_new(&t, 1, &o, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "momentum has no row form"));
    rows_table_t two[2] = {{.id = 5, .dim = 2}, {.id = 5, .dim = 3}};
    CU_ASSERT_PTR_NULL(rows_new(two, 2, &o, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "table 5: listed twice"));
}

/* admit_after = 3: the first two pulls of an id read zeros and hold
 * nothing, a push to it is dropped; the third pull creates it. */
static void test_admission(void)
{
    optim_params_t op = opt_named("sgd");
    rows_t *s = one_table(&op, 4, 0, 3, 0, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint64_t ids[2] = {1000, 2000};
    float v[8], init[4], g[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    const float zero[8] = {0};
    CU_ASSERT_EQUAL(rows_initial(s, 3, 1000, init, NULL), 0);
    CU_ASSERT_EQUAL(rows_pull(s, 3, ids, 1, v, NULL), 0); /* 1000 seen once */
    CU_ASSERT(memcmp(v, zero, 4 * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(rows_push(s, 3, ids, 2, g, 1, 0.1, NULL), 0); /* dropped, not counted */
    CU_ASSERT_EQUAL(rows_pull(s, 3, ids, 2, v, NULL), 0); /* 1000 twice, 2000 once */
    CU_ASSERT(memcmp(v, zero, sizeof v) == 0);
    CU_ASSERT_EQUAL(rows_count(s), 0);
    rows_stats_t st;
    rows_stats(s, 3, &st);
    CU_ASSERT_EQUAL(st.dropped, 2);
    CU_ASSERT_EQUAL(st.created, 0);
    CU_ASSERT_EQUAL(rows_pull(s, 3, ids, 2, v, NULL), 0); /* 1000: third time */
    CU_ASSERT(memcmp(v, init, sizeof init) == 0);
    CU_ASSERT(memcmp(v + 4, zero, 4 * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(rows_count(s), 1);
    CU_ASSERT_EQUAL(rows_push(s, 3, ids, 2, g, 2, 0.1, NULL), 0); /* 1000 moves, 2000 dropped */
    CU_ASSERT_EQUAL(rows_pull(s, 3, ids, 1, v, NULL), 0);
    CU_ASSERT_DOUBLE_EQUAL(v[0], init[0] - 0.1, 1e-6);
    CU_ASSERT_EQUAL(rows_pull(s, 3, ids + 1, 1, v, NULL), 0); /* 2000: third time */
    CU_ASSERT_EQUAL(rows_count(s), 2);
    rows_stats(s, 3, &st);
    CU_ASSERT_EQUAL(st.dropped, 3);
    CU_ASSERT_EQUAL(st.created, 2);
    /* many ids, each pulled k times: held exactly from the third pull */
    for (int k = 1; k <= 3; k++) {
        uint64_t batch[200];
        for (int i = 0; i < 200; i++)
            batch[i] = 100000 + (uint64_t)i * 7919;
        float out[800];
        CU_ASSERT_EQUAL(rows_pull(s, 3, batch, 200, out, NULL), 0);
        CU_ASSERT_EQUAL(rows_count(s), k < 3 ? 2 : 202);
    }
    rows_destroy(&s);
}

/* Pulls id `i` alone at each tick of a store of max_rows 100: the rows
 * evicted are the least recently pulled, the count never passes 100. */
static void test_eviction(void)
{
    optim_params_t op = opt_named("sgd");
    rows_t *s = one_table(&op, 2, 0, 0, 100, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    float v[20];
    for (uint64_t batch = 0; batch < 10; batch++) { /* rows 0..99, ten per tick */
        uint64_t ids[10];
        for (int k = 0; k < 10; k++)
            ids[k] = batch * 10 + (uint64_t)k;
        CU_ASSERT_EQUAL(rows_pull(s, 3, ids, 10, v, NULL), 0);
    }
    CU_ASSERT_EQUAL(rows_count(s), 100);
    /* rows 0..49 and 60..99 again: 50..59 are now the oldest */
    for (uint64_t id = 0; id < 100; id++)
        if (id < 50 || id >= 60)
            CU_ASSERT_EQUAL(rows_pull(s, 3, &id, 1, v, NULL), 0);
    /* push a change to 55, then five new rows: 50..54 (tick order, then slot) go */
    uint64_t id55 = 55;
    float g[2] = {1, 1}, init[2];
    CU_ASSERT_EQUAL(rows_push(s, 3, &id55, 1, g, 1, 0.5, NULL), 0);
    uint64_t fresh[5] = {1000, 1001, 1002, 1003, 1004};
    CU_ASSERT_EQUAL(rows_pull(s, 3, fresh, 5, v, NULL), 0);
    CU_ASSERT_EQUAL(rows_count(s), 100);
    for (uint64_t id = 0; id < 100; id++)
        CU_ASSERT_EQUAL(rows_peek(s, 3, id, NULL, NULL), !(id >= 50 && id < 55));
    rows_stats_t st;
    rows_stats(s, 3, &st);
    CU_ASSERT_EQUAL(st.evicted, 5);
    /* evict 55 (pushed, but older than everything else now) and bring it back */
    for (uint64_t id = 0; id < 100; id++)
        if (id != 55)
            rows_pull(s, 3, &id, 1, v, NULL);
    uint64_t one = 5000;
    CU_ASSERT_EQUAL(rows_pull(s, 3, &one, 1, v, NULL), 0);
    CU_ASSERT_EQUAL(rows_peek(s, 3, 55, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rows_pull(s, 3, &id55, 1, v, NULL), 0);
    CU_ASSERT_EQUAL(rows_initial(s, 3, 55, init, NULL), 0);
    CU_ASSERT(memcmp(v, init, sizeof init) == 0); /* its push is forgotten */
    CU_ASSERT(rows_count(s) <= 100);
    rows_destroy(&s);
}

/* Past the clock's end (2^32 requests) stamps are moved down and keep their
 * order: the least recently used row is still the one evicted, through many
 * wraps. The rows' order of use is the reverse of their slots' order, so
 * that lost stamps (ties broken by slot) would evict the wrong ones. */
static void test_clock_wrap(void)
{
    optim_params_t op = opt_named("sgd");
    rows_t *s = one_table(&op, 1, 0, 0, 3, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    float v[1];
    uint64_t a = 1, b = 2, c = 3, d = 4, e = 5;
    uint64_t abc[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(rows_pull(s, 3, &abc[i], 1, v, NULL), 0); /* slots 0, 1, 2 */
    rows_clock_advance(s, 3000000000ull);
    CU_ASSERT_EQUAL(rows_pull(s, 3, &a, 1, v, NULL), 0); /* a the newest */
    rows_clock_advance(s, 1294967288ull); /* 5 ticks before the end */
    rows_clock_advance(s, 10);            /* past it: moved down and halved */
    CU_ASSERT_EQUAL(rows_pull(s, 3, &d, 1, v, NULL), 0); /* evicts b */
    CU_ASSERT_EQUAL(rows_peek(s, 3, b, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rows_peek(s, 3, a, NULL, NULL), 1);
    CU_ASSERT_EQUAL(rows_pull(s, 3, &e, 1, v, NULL), 0); /* evicts c */
    CU_ASSERT_EQUAL(rows_peek(s, 3, c, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rows_count(s), 3);
    /* now a, d, e in slots 0, 1, 2: use them as e, d, a a billion requests
     * apart, then six more wraps */
    CU_ASSERT_EQUAL(rows_pull(s, 3, &e, 1, v, NULL), 0);
    rows_clock_advance(s, 1000000000ull);
    CU_ASSERT_EQUAL(rows_pull(s, 3, &d, 1, v, NULL), 0);
    rows_clock_advance(s, 1000000000ull);
    CU_ASSERT_EQUAL(rows_pull(s, 3, &a, 1, v, NULL), 0);
    for (int k = 0; k < 3; k++)
        rows_clock_advance(s, 5000000000ull);
    CU_ASSERT_EQUAL(rows_pull(s, 3, &b, 1, v, NULL), 0); /* evicts e */
    CU_ASSERT_EQUAL(rows_peek(s, 3, e, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rows_peek(s, 3, d, NULL, NULL), 1);
    CU_ASSERT_EQUAL(rows_pull(s, 3, &c, 1, v, NULL), 0); /* evicts d */
    CU_ASSERT_EQUAL(rows_peek(s, 3, d, NULL, NULL), 0);
    CU_ASSERT_EQUAL(rows_peek(s, 3, a, NULL, NULL), 1);
    rows_destroy(&s);
}

/* Random requests against a reference of last touches: the count never
 * passes max_rows, and every row evicted by a request was touched no later
 * than every row that stayed (exact LRU at the resolution of requests). */
static void test_eviction_random(void)
{
    enum { IDS = 3000, MAX = 500, REQ = 400, N = 60 };
    optim_params_t op = opt_named("adagrad");
    rows_t *s = one_table(&op, 1, 0, 0, MAX, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    static long last[IDS];
    static char held[IDS];
    memset(last, 0, sizeof last);
    memset(held, 0, sizeof held);
    uint64_t r = 12345;
    int bad = 0;
    for (long tick = 1; tick <= REQ; tick++) {
        uint64_t ids[N];
        float v[N], g[N];
        size_t n = 0;
        for (int k = 0; k < N; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t id = (r >> 33) % (k % 3 ? 300 : IDS); /* a hot set and a long tail */
            int seen = 0;
            for (size_t j = 0; j < n; j++)
                seen |= ids[j] == id;
            if (!seen)
                ids[n] = id, g[n] = 0.1f, n++;
        }
        int push = tick % 2 == 0;
        CU_ASSERT_EQUAL_FATAL(push ? rows_push(s, 3, ids, n, g, tick, 0.1, NULL)
                                   : rows_pull(s, 3, ids, n, v, NULL), 0);
        for (size_t j = 0; j < n; j++)
            last[ids[j]] = tick;
        long newest_gone = 0, oldest_kept = tick;
        for (int id = 0; id < IDS; id++) {
            int now = rows_peek(s, 3, (uint64_t)id, NULL, NULL);
            if (held[id] && !now && last[id] > newest_gone)
                newest_gone = last[id];
            if (now && last[id] < tick && last[id] < oldest_kept)
                oldest_kept = last[id];
            held[id] = (char)now;
        }
        bad |= rows_count(s) > MAX || newest_gone > oldest_kept;
    }
    CU_ASSERT_FALSE(bad);
    rows_stats_t st;
    rows_stats(s, 3, &st);
    CU_ASSERT(st.evicted > 0);
    CU_ASSERT_EQUAL(st.rows, rows_count(s));
    rows_destroy(&s);
}

/* Every held row of a and b (ids [0, n_ids) of table 3, plus the given
 * extra ids) has the same value and state, and the same rows are held. */
static int same_rows(const rows_t *a, const rows_t *b, const uint64_t *ids, size_t n)
{
    size_t dim = rows_dim(a, 3), sl = rows_state_len(a, 3);
    float va[64], vb[64], sa[64], sb[64];
    if (rows_count(a) != rows_count(b))
        return 0;
    for (size_t i = 0; i < n; i++) {
        int ha = rows_peek(a, 3, ids[i], va, sa), hb = rows_peek(b, 3, ids[i], vb, sb);
        if (ha != hb || (ha == 1 && (memcmp(va, vb, dim * 4) || memcmp(sa, sb, sl * 4))))
            return 0;
    }
    return 1;
}

/* A push of the rows the last pull named reuses the slots it found: the
 * same values and state as a push with no pull before it and as one naming
 * the rows in another order (which looks them up); and when rows were
 * evicted between the pull and the push (another table's pull), the push
 * looks them up again and brings back the ones gone. */
static void test_pulled_push(void)
{
    optim_params_t op = opt_named("adagrad");
    enum { N = 40, DIM = 3 };
    uint64_t ids[N], perm[N];
    float g[N * DIM], gp[N * DIM], v[N * DIM];
    for (int i = 0; i < N; i++)
        ids[i] = (uint64_t)(i * 7919 % 1000);
    for (int i = 0; i < N; i++) {
        perm[i] = ids[N - 1 - i];
        for (int k = 0; k < DIM; k++)
            gp[(N - 1 - i) * DIM + k] = g[i * DIM + k] = 0.01f * (float)(i - k);
    }
    rows_t *a = one_table(&op, DIM, 0, 0, 0, 9), *c = one_table(&op, DIM, 0, 0, 0, 9);
    rows_t *d = one_table(&op, DIM, 0, 0, 0, 9);
    CU_ASSERT_FATAL(a && c && d);
    for (int step = 1; step <= 3; step++) {
        CU_ASSERT_EQUAL(rows_pull(a, 3, ids, N, v, NULL), 0);
        CU_ASSERT_EQUAL(rows_push(a, 3, ids, N, g, step, 0.1, NULL), 0);
        CU_ASSERT_EQUAL(rows_push(c, 3, ids, N, g, step, 0.1, NULL), 0);
        CU_ASSERT_EQUAL(rows_pull(d, 3, ids, N, v, NULL), 0);
        CU_ASSERT_EQUAL(rows_push(d, 3, perm, N, gp, step, 0.1, NULL), 0);
    }
    CU_ASSERT(same_rows(a, c, ids, N));
    CU_ASSERT(same_rows(a, d, ids, N));
    rows_destroy(&a);
    rows_destroy(&c);
    rows_destroy(&d);
    /* two tables, room for 4 rows: table 4's pull evicts rows 1 and 2 */
    op = opt_named("sgd");
    rows_table_t tabs[2] = {{.id = 3, .dim = 2}, {.id = 4, .dim = 2}};
    rows_opts_t o = {.seed = 5, .optim = &op, .max_rows = 4};
    rows_t *s = rows_new(tabs, 2, &o, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint64_t t3[3] = {1, 2, 3}, t4[3] = {7, 8, 9};
    float g3[6] = {1, 2, 3, 4, 5, 6}, init[2], got[2];
    CU_ASSERT_EQUAL(rows_pull(s, 3, t3, 3, v, NULL), 0);
    CU_ASSERT_EQUAL(rows_pull(s, 4, t4, 3, v, NULL), 0);
    CU_ASSERT(rows_peek(s, 3, 1, NULL, NULL) == 0 || rows_peek(s, 3, 2, NULL, NULL) == 0);
    CU_ASSERT_EQUAL(rows_push(s, 3, t3, 3, g3, 1, 0.5, NULL), 0);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(rows_peek(s, 3, t3[i], got, NULL), 1);
        CU_ASSERT_EQUAL(rows_initial(s, 3, t3[i], init, NULL), 0);
        for (int k = 0; k < 2; k++)
            CU_ASSERT_EQUAL(got[k], init[k] - 0.5f * g3[i * 2 + k]);
    }
    rows_destroy(&s);
}

static void path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tests_tmp_dir(), name);
}

/* A full save loads back into a fresh store: rows, state, counts. */
static void test_save_load(void)
{
    optim_params_t op = opt_named("adam");
    rows_t *s = one_table(&op, 3, 0, 2, 0, 8), *t = one_table(&op, 3, 0, 2, 0, 8);
    CU_ASSERT_FATAL(s && t);
    uint64_t ids[50];
    float v[150], g[150];
    for (int i = 0; i < 50; i++)
        ids[i] = (uint64_t)i * 1000003ull;
    for (int i = 0; i < 150; i++)
        g[i] = 0.01f * (float)(i % 17) - 0.05f;
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL(rows_pull(s, 3, ids, 20 + 10 * (size_t)k, v, NULL), 0);
        CU_ASSERT_EQUAL(rows_push(s, 3, ids, 20 + 10 * (size_t)k, g, k + 1, 1e-2, NULL), 0);
    }
    CU_ASSERT_EQUAL(rows_count(s), 30); /* admitted at the second pull: 20 + 10 */
    CU_ASSERT_EQUAL(rows_dirty(s), 30);
    char path[512];
    path_of(path, sizeof path, "rows_full.bin");
    err_t err = {{0}};
    CU_ASSERT_EQUAL_FATAL(rows_save(s, path, &err), 0);
    CU_ASSERT_EQUAL(rows_dirty(s), 0);
    CU_ASSERT_EQUAL_FATAL(rows_load(t, path, NULL, NULL, &err), 0);
    CU_ASSERT(same_rows(s, t, ids, 50));
    CU_ASSERT_EQUAL(rows_dirty(t), 0);
    rows_stats_t st;
    rows_stats(t, 3, &st);
    CU_ASSERT_EQUAL(st.loaded, 30);
    CU_ASSERT_EQUAL(st.created, 0);
    /* the admission counts came along: ids 30..39 were seen once, a second
     * pull admits them in both stores alike */
    CU_ASSERT_EQUAL(rows_pull(s, 3, ids + 30, 10, v, NULL), 0);
    CU_ASSERT_EQUAL(rows_pull(t, 3, ids + 30, 10, g, NULL), 0);
    CU_ASSERT_EQUAL(rows_count(t), 40);
    CU_ASSERT(same_rows(s, t, ids, 50));
    /* and the two go on alike */
    for (int i = 0; i < 150; i++)
        g[i] = 0.02f;
    CU_ASSERT_EQUAL(rows_push(s, 3, ids, 50, g, 4, 1e-2, NULL), 0);
    CU_ASSERT_EQUAL(rows_push(t, 3, ids, 50, g, 4, 1e-2, NULL), 0);
    CU_ASSERT(same_rows(s, t, ids, 50));
    rows_destroy(&s);
    rows_destroy(&t);
}

/* Full file, then two deltas (with updates, new rows and evictions in
 * between): loading them in order gives the live store. */
static void test_delta(void)
{
    optim_params_t op = opt_named("rowwise_adagrad");
    rows_t *s = one_table(&op, 2, 0, 0, 64, 6), *t = one_table(&op, 2, 0, 0, 64, 6);
    CU_ASSERT_FATAL(s && t);
    enum { IDS = 200 };
    uint64_t all[IDS];
    for (int i = 0; i < IDS; i++)
        all[i] = (uint64_t)i;
    float v[128], g[128];
    for (int i = 0; i < 128; i++)
        g[i] = 0.1f * (float)(i % 5) - 0.2f;
    uint64_t first[60];
    for (int i = 0; i < 60; i++)
        first[i] = (uint64_t)i;
    CU_ASSERT_EQUAL(rows_push(s, 3, first, 60, g, 1, 0.1, NULL), 0);
    char full[512], d1[512], d2[512];
    path_of(full, sizeof full, "rows_d0.bin");
    path_of(d1, sizeof d1, "rows_d1.bin");
    path_of(d2, sizeof d2, "rows_d2.bin");
    CU_ASSERT_EQUAL_FATAL(rows_save(s, full, NULL), 0);
    uint64_t b1[30]; /* 40..69: 10 new rows in a store of 60 evict the 6 oldest */
    for (int i = 0; i < 30; i++)
        b1[i] = 40 + (uint64_t)i;
    CU_ASSERT_EQUAL(rows_push(s, 3, b1, 30, g, 2, 0.1, NULL), 0);
    CU_ASSERT_EQUAL(rows_dirty(s), 30);
    CU_ASSERT_EQUAL_FATAL(rows_save_delta(s, d1, NULL), 0);
    CU_ASSERT_EQUAL(rows_dirty(s), 0);
    uint64_t b2[40]; /* 100..139: evicts more, among them rows d1 wrote */
    for (int i = 0; i < 40; i++)
        b2[i] = 100 + (uint64_t)i;
    CU_ASSERT_EQUAL(rows_pull(s, 3, b2, 40, v, NULL), 0);
    CU_ASSERT_EQUAL(rows_push(s, 3, b2, 20, g, 3, 0.1, NULL), 0);
    CU_ASSERT_EQUAL(rows_push(s, 3, b1 + 25, 5, g, 3, 0.1, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(rows_save_delta(s, d2, NULL), 0);
    err_t err = {{0}};
    CU_ASSERT_EQUAL(rows_load(t, full, NULL, NULL, &err), 0);
    CU_ASSERT_FALSE(same_rows(s, t, all, IDS));
    CU_ASSERT_EQUAL(rows_load(t, d1, NULL, NULL, &err), 0);
    CU_ASSERT_EQUAL(rows_load(t, d2, NULL, NULL, &err), 0);
    CU_ASSERT(same_rows(s, t, all, IDS));
    CU_ASSERT(rows_count(t) <= 64);
    /* the delta files are smaller than a full one */
    FILE *f1 = fopen(full, "rb"), *f2 = fopen(d1, "rb");
    CU_ASSERT_FATAL(f1 && f2);
    fseek(f1, 0, SEEK_END);
    fseek(f2, 0, SEEK_END);
    CU_ASSERT(ftell(f2) < ftell(f1));
    fclose(f1);
    fclose(f2);
    rows_destroy(&s);
    rows_destroy(&t);
}

static int owns_mod(void *ctx, uint32_t table, uint64_t row)
{
    const int *k = ctx; /* k[0] of k[1] servers */
    return (int)(rows_hash(table, row) % (uint64_t)k[1]) == k[0];
}

/* The files of two servers load onto three: each gets only its rows, and
 * together they hold what the two held. */
static void test_reshard(void)
{
    optim_params_t op = opt_named("adagrad");
    rows_t *old[2], *neu[3];
    enum { IDS = 300 };
    uint64_t all[IDS];
    float g[4 * IDS];
    for (int i = 0; i < IDS; i++)
        all[i] = (uint64_t)i * 977;
    for (int i = 0; i < 4 * IDS; i++)
        g[i] = 0.01f * (float)(i % 13);
    char paths[2][512];
    for (int k = 0; k < 2; k++) {
        old[k] = one_table(&op, 4, 0, 0, 0, 2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(old[k]);
        uint64_t mine[IDS];
        size_t n = 0;
        int who[2] = {k, 2};
        for (int i = 0; i < IDS; i++)
            if (owns_mod(who, 3, all[i]))
                mine[n++] = all[i];
        CU_ASSERT_EQUAL(rows_push(old[k], 3, mine, n, g, 1, 0.1, NULL), 0);
        snprintf(paths[k], sizeof paths[k], "%s/rows_old%d.bin", tests_tmp_dir(), k);
        CU_ASSERT_EQUAL_FATAL(rows_save(old[k], paths[k], NULL), 0);
    }
    size_t total = 0;
    int bad = 0;
    for (int j = 0; j < 3; j++) {
        neu[j] = one_table(&op, 4, 0, 0, 0, 2);
        int who[2] = {j, 3};
        for (int k = 0; k < 2; k++)
            CU_ASSERT_EQUAL(rows_load(neu[j], paths[k], owns_mod, who, NULL), 0);
        total += rows_count(neu[j]);
        for (int i = 0; i < IDS; i++) {
            float a[4], b[4], sa[4], sb[4];
            int k = owns_mod((int[]){0, 2}, 3, all[i]) ? 0 : 1;
            int held = rows_peek(neu[j], 3, all[i], a, sa);
            bad |= held != owns_mod(who, 3, all[i]);
            if (held == 1) {
                rows_peek(old[k], 3, all[i], b, sb);
                bad |= memcmp(a, b, sizeof a) || memcmp(sa, sb, sizeof sa);
            }
        }
    }
    CU_ASSERT_FALSE(bad);
    CU_ASSERT_EQUAL(total, IDS);
    for (int k = 0; k < 2; k++)
        rows_destroy(&old[k]);
    for (int j = 0; j < 3; j++)
        rows_destroy(&neu[j]);
}

/* Writes len bytes of data to path (no atomicity needed in a test). */
static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Writes a store of 10 rows (0..9 of table 3, dim 2, bound 1000, seed 1)
 * to path. */
static void save_ten(const char *path)
{
    optim_params_t op = opt_named("sgd");
    rows_t *s = one_table(&op, 2, 1000, 0, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint64_t ids[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    float v[20];
    CU_ASSERT_EQUAL(rows_pull(s, 3, ids, 10, v, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(rows_save(s, path, NULL), 0);
    rows_destroy(&s);
}

/* Loading fails on each kind of damage, names the file, and leaves the
 * store as it was. */
static void test_corrupt(void)
{
    optim_params_t op = opt_named("sgd");
    char good[512], bad[512];
    path_of(good, sizeof good, "rows_good.bin");
    path_of(bad, sizeof bad, "rows_bad.bin");
    save_ten(good);
    FILE *f = fopen(good, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    unsigned char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CU_ASSERT_FATAL(len > 100 && len < sizeof buf);

    /* the target: a store holding rows 100..104 that must stay so */
    rows_t *t = one_table(&op, 2, 1000, 0, 0, 1);
    uint64_t mine[5] = {100, 101, 102, 103, 104};
    float g[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, ref[10], now[10];
    CU_ASSERT_EQUAL(rows_push(t, 3, mine, 5, g, 1, 0.5, NULL), 0);
    for (int i = 0; i < 5; i++)
        rows_peek(t, 3, mine[i], ref + 2 * i, NULL);
    size_t dirty = rows_dirty(t);
    err_t err;
    struct {
        const char *what, *expect;
        size_t len;
        int off;
        unsigned char x;
    } cases[] = {
        {"truncated", "checksum", len - 7, -1, 0},
        {"truncated header", "truncated", 10, -1, 0},
        {"bad magic", "bad magic", len, 0, 'X'},
        {"flipped byte", "checksum", len, 40, 0x55},
        {"flipped float", "checksum", (size_t)len, (int)len - 10, 0x01},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unsigned char copy[4096];
        memcpy(copy, buf, len);
        if (cases[c].off >= 0)
            copy[cases[c].off] ^= cases[c].x;
        write_bytes(bad, copy, cases[c].len);
        memset(&err, 0, sizeof err);
        CU_ASSERT_EQUAL(rows_load(t, bad, NULL, NULL, &err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad));
        if (!strstr(err.msg, cases[c].expect))
            fprintf(stderr, "\n%s: %s\n", cases[c].what, err.msg);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[c].expect));
    }
    /* damage behind a valid checksum: another version, a row count past the end */
    for (int c = 0; c < 2; c++) {
        unsigned char copy[4096];
        memcpy(copy, buf, len);
        if (c == 0)
            copy[8] = 2; /* version 2 */
        else
            copy[len - 4 - 10 * 20 - 8] = 11; /* table 3 claims 11 rows */
        uLong crc = crc32(crc32(0L, Z_NULL, 0), copy, (uInt)(len - 4));
        for (int i = 0; i < 4; i++)
            copy[len - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
        write_bytes(bad, copy, len);
        CU_ASSERT_EQUAL(rows_load(t, bad, NULL, NULL, &err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, c == 0 ? "format version 2" : "truncated rows"));
    }
    CU_ASSERT_EQUAL(rows_load(t, "/nonexistent/rows.bin", NULL, NULL, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/rows.bin: cannot open"));
    /* nothing of it reached t */
    CU_ASSERT_EQUAL(rows_count(t), 5);
    CU_ASSERT_EQUAL(rows_dirty(t), dirty);
    for (int i = 0; i < 5; i++)
        rows_peek(t, 3, mine[i], now + 2 * i, NULL);
    CU_ASSERT(memcmp(ref, now, sizeof ref) == 0);
    rows_destroy(&t);
}

/* A sound file for another store (dim, bound, seed, tables, room) is refused,
 * naming the file and what differs, and nothing is loaded. */
static void test_mismatch(void)
{
    optim_params_t op = opt_named("sgd");
    char good[512];
    path_of(good, sizeof good, "rows_ten.bin");
    save_ten(good);
    err_t err = {{0}};
    float g[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    uint64_t mine[5] = {100, 101, 102, 103, 104};
    /* a well-formed file for another store: dim, bound, seed, table */
    rows_t *other[4] = {one_table(&op, 3, 1000, 0, 0, 1), one_table(&op, 2, 999, 0, 0, 1),
                        one_table(&op, 2, 1000, 0, 0, 77), NULL};
    rows_table_t tt = {.id = 4, .dim = 2, .rows = 1000};
    rows_opts_t o = {.seed = 1, .optim = &op};
    other[3] = rows_new(&tt, 1, &o, NULL);
    const char *expect[4] = {"dim 3", "1000 rows", "seed 77", "table 3: not in this store"};
    for (int k = 0; k < 4; k++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(other[k]);
        memset(&err, 0, sizeof err);
        /* load the good file into the mismatched store (the file names table 3, dim 2) */
        CU_ASSERT_EQUAL(rows_load(other[k], good, NULL, NULL, &err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, good));
        if (!strstr(err.msg, expect[k]))
            fprintf(stderr, "\nmismatch %d: %s\n", k, err.msg);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, expect[k]));
        CU_ASSERT_EQUAL(rows_count(other[k]), 0);
        rows_destroy(&other[k]);
    }
    /* max_rows: a store of 12 rows at most cannot take 5 + 10 */
    rows_t *small = one_table(&op, 2, 1000, 0, 12, 1);
    CU_ASSERT_EQUAL(rows_push(small, 3, mine, 5, g, 1, 0.5, NULL), 0);
    CU_ASSERT_EQUAL(rows_load(small, good, NULL, NULL, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "max_rows 12"));
    CU_ASSERT_EQUAL(rows_count(small), 5);
    rows_destroy(&small);
}

/* The memory of a store of 200,000 rows of dim 16 under row-wise Adagrad:
 * within the project's goal of 1.5 x rows x (dim + state) x 4 bytes. */
static void test_memory(void)
{
    optim_params_t op = opt_named("rowwise_adagrad");
    rows_t *s = one_table(&op, 16, 0, 0, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 200000, B = 4096 };
    static uint64_t ids[B];
    static float v[B * 16];
    for (size_t done = 0; done < N; done += B) {
        size_t n = N - done < B ? N - done : B;
        for (size_t i = 0; i < n; i++)
            ids[i] = (done + i) * 0x9e3779b97f4a7c15ull;
        CU_ASSERT_EQUAL_FATAL(rows_pull(s, 3, ids, n, v, NULL), 0);
    }
    CU_ASSERT_EQUAL(rows_count(s), N);
    double per_row = (double)rows_bytes(s) / N;
    CU_ASSERT(per_row >= 17 * 4 + 16);
    CU_ASSERT(per_row <= 1.5 * 17 * 4);
    rows_destroy(&s);
}

/* The index through its doublings: 100,000 rows made in pieces (the index
 * grows from 64 buckets to 2^18, its buckets' tags shrinking from 26 bits to
 * 14), then every row pulled again is found, with its value, and none made;
 * half of them evicted (backward-shift deletion moving tagged buckets), the
 * others still found. */
static void test_index(void)
{
    optim_params_t op = opt_named("sgd");
    enum { N = 100000, B = 1000, DIM = 2 };
    rows_t *s = one_table(&op, DIM, 0, 0, 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    static uint64_t ids[N];
    static float first[N * DIM], again[N * DIM];
    for (size_t i = 0; i < N; i++)
        ids[i] = i * 0x9e3779b97f4a7c15ull ^ (i >> 3);
    for (size_t i = 0; i < N; i += B)
        CU_ASSERT_EQUAL_FATAL(rows_pull(s, 3, ids + i, B, first + i * DIM, NULL), 0);
    CU_ASSERT_EQUAL(rows_count(s), N);
    for (size_t i = 0; i < N; i += B)
        CU_ASSERT_EQUAL_FATAL(rows_pull(s, 3, ids + i, B, again + i * DIM, NULL), 0);
    CU_ASSERT_EQUAL(rows_count(s), N);
    CU_ASSERT_EQUAL(memcmp(first, again, sizeof first), 0);
    rows_destroy(&s);
    /* a store of N / 2 rows at most: the older half is evicted */
    s = one_table(&op, DIM, 0, 0, N / 2, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (size_t i = 0; i < N; i += B)
        CU_ASSERT_EQUAL_FATAL(rows_pull(s, 3, ids + i, B, again + i * DIM, NULL), 0);
    int found = 0;
    for (size_t i = N / 2; i < N; i++)
        found += rows_peek(s, 3, ids[i], NULL, NULL);
    CU_ASSERT_EQUAL(found, N / 2);
    CU_ASSERT_EQUAL(rows_count(s), N / 2);
    rows_destroy(&s);
}

int test_rows_register(void)
{
    CU_pSuite s = CU_add_suite("rows", NULL, NULL);
    if (!s || !CU_add_test(s, "sgd_rows", test_sgd_rows) ||
        !CU_add_test(s, "adagrad_rows", test_adagrad_rows) ||
        !CU_add_test(s, "rowwise_adagrad", test_rowwise_adagrad) ||
        !CU_add_test(s, "lazy_adam", test_lazy_adam) ||
        !CU_add_test(s, "torch_rows", test_torch_rows) ||
        !CU_add_test(s, "push_applies", test_push_applies) ||
        !CU_add_test(s, "initial", test_initial) || !CU_add_test(s, "validation", test_validation) ||
        !CU_add_test(s, "admission", test_admission) || !CU_add_test(s, "eviction", test_eviction) ||
        !CU_add_test(s, "pulled_push", test_pulled_push) ||
        !CU_add_test(s, "eviction_random", test_eviction_random) ||
        !CU_add_test(s, "clock_wrap", test_clock_wrap) ||
        !CU_add_test(s, "save_load", test_save_load) || !CU_add_test(s, "delta", test_delta) ||
        !CU_add_test(s, "reshard", test_reshard) || !CU_add_test(s, "corrupt", test_corrupt) ||
        !CU_add_test(s, "mismatch", test_mismatch) ||
        !CU_add_test(s, "index", test_index) || !CU_add_test(s, "memory", test_memory))
        return -1;
    return 0;
}
