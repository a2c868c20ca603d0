/* test_auc.c - CUnit suite "auc": the exact ROC AUC (trainer/auc.h) against
 * a brute-force count over every (positive, negative) pair, on random
 * scores with many ties; values by hand (sklearn's roc_auc_score on the same
 * pairs); one class only gives NaN; the runs of 3 parts merged equal the
 * whole set's, whatever the cut. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util/rng.h"
#include "trainer/auc.h"
#include "tests.h"

#define N_PAIRS 3000
#define N_LEVELS 37 /* distinct scores: many ties */

/* U / (P N) by looking at every pair: ties count one half. NaN for one class. */
static double brute_auc(const float *s, const int32_t *y, size_t n)
{
    double u = 0, pos = 0, neg = 0;
    for (size_t i = 0; i < n; i++) {
        pos += y[i] != 0;
        neg += y[i] == 0;
        if (!y[i])
            continue;
        for (size_t j = 0; j < n; j++)
            if (!y[j])
                u += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
    }
    return pos && neg ? u / (pos * neg) : NAN;
}

/* n random pairs: scores among N_LEVELS values in (0, 1), labels that lean
 * towards high scores (an AUC well above 0.5) with rate `bias`. */
static void random_pairs(float *s, int32_t *y, size_t n, uint64_t seed, double bias)
{
    for (size_t i = 0; i < n; i++) {
        const uint32_t level = rng_below(seed, 0, i, N_LEVELS);
        s[i] = (float)(level + 1) / (N_LEVELS + 1);
        y[i] = rng_uniform(seed, 1, i) < (1 - bias) * 0.5 + bias * s[i];
    }
}

/* The same runs, field by field (the struct has padding). */
static int runs_equal(const auc_run_t *a, size_t na, const auc_run_t *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (a[i].score != b[i].score || a[i].neg != b[i].neg || a[i].pos != b[i].pos)
            return 0;
    return 1;
}

static double auc_of(const float *s, const int32_t *y, size_t n)
{
    err_t err;
    auc_t *a = auc_new(&err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_FATAL(auc_add(a, s, y, n, &err) == 0);
    double v = auc_value(a);
    auc_destroy(&a);
    CU_ASSERT_PTR_NULL(a);
    return v;
}

/* Small cases by hand (the values sklearn.metrics.roc_auc_score gives). */
static void test_auc_by_hand(void)
{
    const float s1[4] = {0.1f, 0.4f, 0.35f, 0.8f};
    const int32_t y1[4] = {0, 0, 1, 1};
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s1, y1, 4), 0.75, 1e-15);
    /* ties across classes: [0.5, 0.5, 0.5, 0.9] / [0, 1, 0, 1] -> 0.75 */
    const float s2[4] = {0.5f, 0.5f, 0.5f, 0.9f};
    const int32_t y2[4] = {0, 1, 0, 1};
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s2, y2, 4), 0.75, 1e-15);
    /* all scores equal: 0.5; perfectly reversed: 0 */
    const float s3[3] = {0.3f, 0.3f, 0.3f};
    const int32_t y3[3] = {1, 0, 1};
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s3, y3, 3), 0.5, 1e-15);
    const float s4[4] = {0.9f, 0.8f, 0.2f, 0.1f};
    const int32_t y4[4] = {0, 0, 1, 1};
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s4, y4, 4), 0.0, 1e-15);
    /* -0 and +0 are one score (a tie) */
    const float s5[2] = {-0.0f, 0.0f};
    const int32_t y5[2] = {1, 0};
    CU_ASSERT_DOUBLE_EQUAL(auc_of(s5, y5, 2), 0.5, 1e-15);
}

/* Random scores with ties against the O(n^2) pair count; then the same
 * pairs added in batches of 7 and in one go give the same runs. */
static void test_auc_brute_force(void)
{
    float *s = malloc(N_PAIRS * sizeof *s);
    int32_t *y = malloc(N_PAIRS * sizeof *y);
    CU_ASSERT_FATAL(s && y);
    const double bias[3] = {0.0, 0.6, 1.0};
    for (int k = 0; k < 3; k++) {
        random_pairs(s, y, N_PAIRS, 40 + (uint64_t)k, bias[k]);
        const double want = brute_auc(s, y, N_PAIRS), got = auc_of(s, y, N_PAIRS);
        CU_ASSERT(fabs(got - want) <= 1e-12);
        if (k == 2)
            CU_ASSERT(got > 0.7); /* the labels follow the scores */
    }
    err_t err;
    auc_t *a = auc_new(&err), *b = auc_new(&err);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT(auc_add(a, s, y, N_PAIRS, &err) == 0);
    for (size_t i = 0; i < N_PAIRS; i += 7)
        CU_ASSERT(auc_add(b, s + i, y + i, N_PAIRS - i < 7 ? N_PAIRS - i : 7, &err) == 0);
    size_t na, nb;
    const auc_run_t *ra = auc_runs(a, &na), *rb = auc_runs(b, &nb);
    CU_ASSERT_EQUAL(na, N_LEVELS);
    CU_ASSERT(runs_equal(ra, na, rb, nb));
    CU_ASSERT_EQUAL(auc_count(a), N_PAIRS);
    auc_destroy(&a);
    auc_destroy(&b);
    free(s);
    free(y);
}

/* One class only (or nothing, or a NaN score): the AUC is undefined, NaN. */
static void test_auc_undefined(void)
{
    const float s[3] = {0.2f, 0.7f, 0.7f};
    const int32_t ones[3] = {1, 1, 1}, zeros[3] = {0, 0, 0};
    CU_ASSERT(isnan(auc_of(s, ones, 3)));
    CU_ASSERT(isnan(auc_of(s, zeros, 3)));
    CU_ASSERT(isnan(auc_of(s, ones, 0)));
    const float with_nan[3] = {0.2f, NAN, 0.7f};
    const int32_t y[3] = {0, 1, 1};
    CU_ASSERT(isnan(auc_of(with_nan, y, 3)));
}

/* The set cut in 3 uneven parts, each collected alone (as trainers do);
 * part 1 travels as runs (auc_add_runs), part 2 merged whole: the runs and
 * the AUC equal the whole set's, exactly. Runs out of order are refused. */
static void test_auc_merge_parts(void)
{
    float *s = malloc(N_PAIRS * sizeof *s);
    int32_t *y = malloc(N_PAIRS * sizeof *y);
    CU_ASSERT_FATAL(s && y);
    random_pairs(s, y, N_PAIRS, 77, 0.5);
    err_t err;
    auc_t *whole = auc_new(&err), *part[3];
    CU_ASSERT_FATAL(whole != NULL);
    CU_ASSERT(auc_add(whole, s, y, N_PAIRS, &err) == 0);
    const size_t cut[4] = {0, 1000, 1100, N_PAIRS};
    for (int p = 0; p < 3; p++) {
        part[p] = auc_new(&err);
        CU_ASSERT_FATAL(part[p] != NULL);
        CU_ASSERT(auc_add(part[p], s + cut[p], y + cut[p], cut[p + 1] - cut[p], &err) == 0);
    }
    size_t n1;
    const auc_run_t *r1 = auc_runs(part[1], &n1);
    CU_ASSERT(auc_add_runs(part[0], r1, n1, &err) == 0);
    CU_ASSERT(auc_merge(part[0], part[2], &err) == 0);
    size_t nw, nm;
    const auc_run_t *rw = auc_runs(whole, &nw), *rm = auc_runs(part[0], &nm);
    CU_ASSERT(runs_equal(rw, nw, rm, nm));
    CU_ASSERT(auc_value(part[0]) == auc_value(whole));
    CU_ASSERT(fabs(auc_value(whole) - brute_auc(s, y, N_PAIRS)) <= 1e-12);
    const auc_run_t bad[2] = {{0.5f, 1, 0}, {0.5f, 0, 1}};
    CU_ASSERT(auc_add_runs(part[0], bad, 2, &err) == -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "run 1 of 2 is not above"));
    CU_ASSERT_EQUAL(auc_count(part[0]), N_PAIRS);
    for (int p = 0; p < 3; p++)
        auc_destroy(&part[p]);
    auc_destroy(&whole);
    free(s);
    free(y);
}

int test_auc_register(void)
{
    CU_pSuite s = CU_add_suite("auc", NULL, NULL);
    if (!s || !CU_add_test(s, "by_hand", test_auc_by_hand) ||
        !CU_add_test(s, "brute_force", test_auc_brute_force) ||
        !CU_add_test(s, "undefined", test_auc_undefined) ||
        !CU_add_test(s, "merge_parts", test_auc_merge_parts))
        return -1;
    return 0;
}
