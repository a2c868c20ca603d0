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
    sparse_input_t *s = sparse_input_new(FIELDS, DIM, OFFSET, INPUT, 64, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    check_batch(s, 64, 1);
    check_batch(s, 7, 2); /* a smaller batch after a larger one */
    check_batch(s, 1, 3);
    check_batch(s, 64, 4);
    sparse_input_destroy(&s);
    CU_ASSERT_PTR_NULL(s);
    sparse_input_destroy(&s); /* NULL is fine */
}

static void test_bad_sizes(void)
{
    err_t err;
    CU_ASSERT_PTR_NULL(sparse_input_new(FIELDS, DIM, OFFSET, OFFSET + FIELDS * DIM - 1, 8, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "do not fit a sample of 13 floats"));
    CU_ASSERT_PTR_NULL(sparse_input_new(0, DIM, 0, 10, 8, &err));
    CU_ASSERT_PTR_NULL(sparse_input_new(FIELDS, DIM, 0, 100, 0, &err));
}

int test_sparse_register(void)
{
    CU_pSuite s = CU_add_suite("sparse", NULL, NULL);
    if (!s || !CU_add_test(s, "batches", test_batches) || !CU_add_test(s, "bad_sizes", test_bad_sizes))
        return -1;
    return 0;
}
