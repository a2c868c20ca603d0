/* auc.c - the exact ROC AUC from runs of equal scores (see auc.h). Pairs
 * and parts are appended as runs and sorted once, when the runs or the
 * value are asked for: O(n log n) for n pairs. */
#include "trainer/auc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AUC_FIRST_CAP 1024 /* runs of the first allocation */

struct auc_t {
    auc_run_t *r;   /* [0, n): runs; ascending and distinct when `sorted` */
    size_t n, cap;
    int sorted;
    uint64_t nan;   /* pairs with a NaN score */
};

auc_t *auc_new(err_t *err)
{
    auc_t *a = calloc(1, sizeof *a);
    if (!a)
        err_set(err, "auc: out of memory");
    else
        a->sorted = 1;
    return a;
}

void auc_destroy(auc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->r);
    free(*self_p);
    *self_p = NULL;
}

void auc_clear(auc_t *a)
{
    a->n = 0;
    a->nan = 0;
    a->sorted = 1;
}

/* Room for `more` runs after the n there are. Returns 0, or -1 with err. */
static int reserve(auc_t *a, size_t more, err_t *err)
{
    if (a->n + more <= a->cap)
        return 0;
    size_t cap = a->cap ? a->cap : AUC_FIRST_CAP;
    while (cap < a->n + more)
        cap *= 2;
    auc_run_t *r = realloc(a->r, cap * sizeof *r);
    if (!r)
        return err_set(err, "auc: out of memory for %zu scores", a->n + more);
    a->r = r;
    a->cap = cap;
    return 0;
}

int auc_add(auc_t *a, const float *scores, const int32_t *labels, size_t n, err_t *err)
{
    if (reserve(a, n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (isnan(scores[i])) {
            a->nan++;
            continue;
        }
        a->r[a->n++] = (auc_run_t){scores[i], labels[i] == 0, labels[i] != 0};
    }
    a->sorted = a->sorted && n == 0;
    return 0;
}

int auc_add_runs(auc_t *a, const auc_run_t *runs, size_t n, err_t *err)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(runs[i].score) || (i > 0 && !(runs[i - 1].score < runs[i].score)))
            return err_set(err, "auc: run %zu of %zu is not above the one before (score %g)", i,
                           n, (double)runs[i].score);
    if (reserve(a, n, err) != 0)
        return -1;
    memcpy(a->r + a->n, runs, n * sizeof *runs);
    a->n += n;
    a->sorted = a->sorted && n == 0;
    return 0;
}

int auc_merge(auc_t *dst, const auc_t *src, err_t *err)
{
    if (reserve(dst, src->n, err) != 0)
        return -1;
    memcpy(dst->r + dst->n, src->r, src->n * sizeof *src->r);
    dst->n += src->n;
    dst->nan += src->nan;
    dst->sorted = dst->sorted && src->n == 0;
    return 0;
}

/* qsort order of runs: ascending score (no NaN among them). */
static int by_score(const void *pa, const void *pb)
{
    const float x = ((const auc_run_t *)pa)->score, y = ((const auc_run_t *)pb)->score;
    return (x > y) - (x < y);
}

/* Sorts the runs and adds up those of equal scores, in place. */
static void normalise(auc_t *a)
{
    if (a->sorted)
        return;
    qsort(a->r, a->n, sizeof *a->r, by_score);
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (k > 0 && a->r[k - 1].score == a->r[i].score) {
            a->r[k - 1].neg += a->r[i].neg;
            a->r[k - 1].pos += a->r[i].pos;
        } else {
            a->r[k++] = a->r[i];
        }
    }
    a->n = k;
    a->sorted = 1;
}

const auc_run_t *auc_runs(auc_t *a, size_t *n)
{
    normalise(a);
    *n = a->n;
    return a->r;
}

uint64_t auc_count(const auc_t *a)
{
    uint64_t c = a->nan;
    for (size_t i = 0; i < a->n; i++)
        c += a->r[i].neg + a->r[i].pos;
    return c;
}

double auc_value(auc_t *a)
{
    if (a->nan)
        return NAN;
    normalise(a);
    /* 2U = sum over runs of pos * (2 * negatives below + negatives tied),
     * in integers: exact while 2 * P * N < 2^64 */
    uint64_t two_u = 0, neg_below = 0, pos = 0;
    for (size_t i = 0; i < a->n; i++) {
        two_u += a->r[i].pos * (2 * neg_below + a->r[i].neg);
        neg_below += a->r[i].neg;
        pos += a->r[i].pos;
    }
    if (pos == 0 || neg_below == 0)
        return NAN;
    return (double)two_u / (2.0 * (double)pos * (double)neg_below);
}
