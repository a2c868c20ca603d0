/* auc.h - the exact ROC AUC of (score, label) pairs: the Mann-Whitney
 * statistic with tied scores counted one half (average ranks), which is
 * what sklearn.metrics.roc_auc_score computes, in O(n log n).
 *
 * An auc_t collects pairs (auc_add) and keeps them as RUNS: one per
 * distinct score, with the number of negatives and positives that have it,
 * in ascending order of score. Runs are exact counts, so parts of a set
 * (each trainer's share, each evaluation batch) combine exactly: merging
 * the runs of parts (auc_merge, auc_add_runs) gives the runs of the whole,
 * whatever the order and the cut; the AUC of the merge is the AUC of the
 * whole set, bit for bit. */
#ifndef PST_AUC_H
#define PST_AUC_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"

/* The pairs of one distinct score. */
typedef struct {
    float score;
    uint64_t neg, pos; /* pairs with label 0, with label 1 */
} auc_run_t;

typedef struct auc_t auc_t;

/* A new, empty collection. Returns it (the caller owns it), or NULL with
 * err (out of memory). */
auc_t *auc_new(err_t *err);

/* Frees *self_p (may be NULL) and sets it to NULL. */
void auc_destroy(auc_t **self_p);

/* Empties a (keeps its memory). */
void auc_clear(auc_t *a);

/* Adds n pairs (scores[i], labels[i]); a label other than 0 counts as 1. A
 * NaN score is counted apart (auc_value is then NaN). Returns 0, or -1
 * with err (out of memory: a is then as it was). */
int auc_add(auc_t *a, const float *scores, const int32_t *labels, size_t n, err_t *err);

/* Adds the runs[0, n) of another part (ascending scores, each distinct, as
 * auc_runs gives them). Returns 0, or -1 with err (out of memory, or runs
 * not in ascending order of distinct, non-NaN scores: a is then as it was). */
int auc_add_runs(auc_t *a, const auc_run_t *runs, size_t n, err_t *err);

/* Adds everything src holds to dst (src is not changed). Returns 0, or -1
 * with err (out of memory: dst is then as it was). */
int auc_merge(auc_t *dst, const auc_t *src, err_t *err);

/* The runs of a, in ascending order of distinct scores, *n of them (sorted
 * in place, nothing is allocated); valid until a changes. */
const auc_run_t *auc_runs(auc_t *a, size_t *n);

/* The pairs added so far (NaN scores included). */
uint64_t auc_count(const auc_t *a);

/* The ROC AUC of the pairs of a: the probability that a random positive
 * scores above a random negative, ties counting one half. NaN when it is
 * undefined: no positive or no negative (one class only, or no pairs; where
 * sklearn raises an error), or a NaN score among the pairs (a model that
 * diverged). Exact while 2 * positives * negatives < 2^64. */
double auc_value(auc_t *a);

#endif
