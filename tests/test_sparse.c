/* test_sparse.c - the embedding rows of a batch (common/nn/sparse_input.h):
 * unique ids per field in order of first appearance, each sample's place,
 * the gather into the model input and the scatter of its gradient, against
 * a direct lookup and a direct sum over samples; batches that reuse the
 * object; Zipf-like repeats and ids equal across fields. */
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "common/nn/sparse_input.h"
#include "common/util/rng.h"
#include "gradcheck.h"
#include "tests.h"

#define FIELDS 3
#define DIM 4
#define OFFSET 2
#define INPUT (OFFSET + FIELDS * DIM + 1) /* one float after the fields too */

/* The value of row `id` of field f, element k: a function of the three. */
static float row_value(int f, uint64_t id, int k)
{
    return (float)(f * 1000 + (double)(id % 997) + 0.125 * k);
}

/* One batch of n samples drawn with seed: ids skewed (many repeats), field
 * 2 a copy of field 0 (equal ids in different tables). */
static void check_batch(sparse_input_t *s, int n, uint64_t seed)
{
    uint64_t *ids = malloc((size_t)n * FIELDS * sizeof *ids);
    float *x = malloc((size_t)n * INPUT * sizeof *x), *dx = malloc((size_t)n * INPUT * sizeof *dx);
    CU_ASSERT_FATAL(ids && x && dx);
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < 2; f++) {
            const uint32_t r = rng_below(seed, (uint64_t)f, (uint64_t)i, 1000);
            ids[i * FIELDS + f] = r < 700 ? r % 5 : 1000000007ULL * r; /* hot ids and rare ones */
        }
        ids[i * FIELDS + 2] = ids[i * FIELDS];
    }
    sparse_input_index(s, ids, n);
    for (int f = 0; f < FIELDS; f++) {
        const uint64_t *u;
        const size_t nu = sparse_input_unique(s, f, &u);
        /* unique, in order of first appearance, covering every id */
        size_t seen = 0;
        for (int i = 0; i < n; i++) {
            const uint64_t id = ids[i * FIELDS + f];
            size_t k = 0;
            while (k < seen && u[k] != id)
                k++;
            if (k == seen) {
                CU_ASSERT_FATAL(seen < nu);
                CU_ASSERT_EQUAL(u[seen], id);
                seen++;
            }
        }
        CU_ASSERT_EQUAL(seen, nu);
        float *rows = sparse_input_rows(s, f);
        for (size_t j = 0; j < nu; j++)
            for (int k = 0; k < DIM; k++)
                rows[j * DIM + k] = row_value(f, u[j], k);
    }
    for (int i = 0; i < n * INPUT; i++)
        x[i] = -7.0f;
    sparse_input_gather(s, x);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * INPUT;
        CU_ASSERT(xi[0] == -7.0f && xi[1] == -7.0f && xi[INPUT - 1] == -7.0f); /* not touched */
        for (int f = 0; f < FIELDS; f++)
            for (int k = 0; k < DIM; k++)
                CU_ASSERT_EQUAL(xi[OFFSET + f * DIM + k], row_value(f, ids[i * FIELDS + f], k));
    }
    fill_uniform(dx, (size_t)n * INPUT, (unsigned)seed, -1, 1);
    sparse_input_scatter(s, dx);
    for (int f = 0; f < FIELDS; f++) {
        const uint64_t *u;
        const size_t nu = sparse_input_unique(s, f, &u);
        const float *g = sparse_input_grads(s, f);
        for (size_t j = 0; j < nu; j++)
            for (int k = 0; k < DIM; k++) {
                float want = 0.0f; /* the samples in batch order, as documented */
                for (int i = 0; i < n; i++)
                    if (ids[i * FIELDS + f] == u[j])
                        want += dx[(size_t)i * INPUT + OFFSET + f * DIM + k];
                CU_ASSERT_EQUAL(g[j * DIM + k], want);
            }
    }
    free(ids);
    free(x);
    free(dx);
}

static void test_batches(void)
{
    err_t err;
    const sparse_input_opts_t o = {FIELDS, DIM, OFFSET, INPUT, 64, 0, SPARSE_SUM};
    sparse_input_t *s = sparse_input_new(&o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    check_batch(s, 64, 1);
    check_batch(s, 7, 2); /* a smaller batch after a larger one */
    check_batch(s, 1, 3);
    check_batch(s, 64, 4);
    sparse_input_destroy(&s);
    CU_ASSERT_PTR_NULL(s);
    sparse_input_destroy(&s); /* NULL is fine */
}

/* Bags of several ids (a repeat inside one, empty ones): the sum or the
 * mean of their rows, zeros for an empty bag, and each id's gradient the
 * sum of its bags' gradients (times 1/count for the mean). */
static void check_bags(sparse_combiner_t comb)
{
    err_t err;
    const sparse_input_opts_t o = {2, 2, 1, 6, 3, 8, comb};
    sparse_input_t *s = sparse_input_new(&o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* samples x fields: {5,5,9} {} | {9} {1,2} | {} {2} */
    const uint64_t ids[] = {5, 5, 9, 9, 1, 2, 2};
    const uint32_t bags[] = {0, 3, 3, 4, 6, 6, 7};
    CU_ASSERT_EQUAL_FATAL(sparse_input_index_bags(s, ids, bags, 3, &err), 0);
    const uint64_t *u;
    CU_ASSERT_EQUAL(sparse_input_unique(s, 0, &u), 2);
    CU_ASSERT(u[0] == 5 && u[1] == 9);
    CU_ASSERT_EQUAL(sparse_input_unique(s, 1, &u), 2);
    CU_ASSERT(u[0] == 1 && u[1] == 2);
    float *r0 = sparse_input_rows(s, 0), *r1 = sparse_input_rows(s, 1);
    r0[0] = 1, r0[1] = 2, r0[2] = 10, r0[3] = 20;   /* rows 5 and 9 of field 0 */
    r1[0] = 100, r1[1] = 200, r1[2] = 7, r1[3] = 8; /* rows 1 and 2 of field 1 */
    float x[18];
    sparse_input_gather(s, x);
    const int mean = comb == SPARSE_MEAN;
    const float want0[2] = {mean ? 12.0f / 3 : 12, mean ? 24.0f / 3 : 24};
    CU_ASSERT(x[1] == want0[0] && x[2] == want0[1] && x[3] == 0 && x[4] == 0);
    CU_ASSERT(x[7] == 10 && x[8] == 20);
    CU_ASSERT(x[9] == (mean ? 53.5f : 107) && x[10] == (mean ? 104 : 208));
    CU_ASSERT(x[13] == 0 && x[14] == 0 && x[15] == 7 && x[16] == 8);
    float dx[18];
    for (int i = 0; i < 18; i++)
        dx[i] = (float)(i + 1);
    sparse_input_scatter(s, dx);
    const float *g0 = sparse_input_grads(s, 0), *g1 = sparse_input_grads(s, 1);
    const float w = mean ? 1.0f / 3 : 1.0f, w2 = mean ? 0.5f : 1.0f;
    /* id 5: twice in bag (0,0); id 9: once there and alone in (1,0) */
    CU_ASSERT(g0[0] == 2 * w * 2 && g0[1] == 2 * w * 3);
    CU_ASSERT(g0[2] == w * 2 + 8 && g0[3] == w * 3 + 9);
    /* id 1: in (1,1) of two; id 2: there and alone in (2,1) */
    CU_ASSERT(g1[0] == w2 * 10 && g1[1] == w2 * 11);
    CU_ASSERT(g1[2] == w2 * 10 + 16 && g1[3] == w2 * 11 + 17);
    sparse_input_destroy(&s);
}

static void test_bags(void)
{
    check_bags(SPARSE_SUM);
    check_bags(SPARSE_MEAN);
}

static void test_bad_sizes(void)
{
    err_t err;
    sparse_input_opts_t o = {FIELDS, DIM, OFFSET, OFFSET + FIELDS * DIM - 1, 8, 0, SPARSE_SUM};
    CU_ASSERT_PTR_NULL(sparse_input_new(&o, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "do not fit a sample of 13 floats"));
    o = (sparse_input_opts_t){0, DIM, 0, 10, 8, 0, SPARSE_SUM};
    CU_ASSERT_PTR_NULL(sparse_input_new(&o, &err));
    o = (sparse_input_opts_t){FIELDS, DIM, 0, 100, 0, 0, SPARSE_SUM};
    CU_ASSERT_PTR_NULL(sparse_input_new(&o, &err));
    /* bags beyond max_ids, out of order, too many samples: refused */
    o = (sparse_input_opts_t){1, 2, 0, 2, 4, 3, SPARSE_SUM};
    sparse_input_t *s = sparse_input_new(&o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const uint64_t ids[4] = {1, 2, 3, 4};
    const uint32_t too_many[] = {0, 2, 4}, backwards[] = {0, 2, 1};
    CU_ASSERT_EQUAL(sparse_input_index_bags(s, ids, too_many, 2, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "4 ids in the batch, at most 3"));
    CU_ASSERT_EQUAL(sparse_input_index_bags(s, ids, backwards, 2, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bag 1 ends before it starts"));
    CU_ASSERT_EQUAL(sparse_input_index_bags(s, ids, too_many, 5, &err), -1);
    sparse_input_destroy(&s);
}

int test_sparse_register(void)
{
    CU_pSuite s = CU_add_suite("sparse", NULL, NULL);
    if (!s || !CU_add_test(s, "batches", test_batches) || !CU_add_test(s, "bags", test_bags) ||
        !CU_add_test(s, "bad_sizes", test_bad_sizes))
        return -1;
    return 0;
}
