/* data.h - the data pipeline: a labelled image set in float, preprocessing
 * (scale to [0,1], optional global or per-pixel mean/std normalisation), the
 * validation split, the per-epoch shuffle and the cutting into batches.
 *
 * Data order is a pure function of (seed, epoch): every trainer computes the
 * same permutation and takes its own slice of each global batch.
 */
#ifndef PST_DATA_H
#define PST_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/config/config.h"
#include "common/util/err.h"

typedef struct {
    size_t n;            /* number of samples */
    size_t dim;          /* floats per sample (e.g. 784) */
    int rows, cols;      /* image shape from the IDX header */
    float *x;            /* n * dim, owned */
    int32_t *y;          /* n labels, owned */
    int n_classes;       /* 1 + max label */
} dataset_t;

/* Normalisation statistics computed on the training part only. */
typedef struct {
    norm_t kind;
    size_t dim;
    float *mean;         /* dim floats (global: all equal), owned */
    float *inv_std;      /* dim floats, owned */
} norm_stats_t;

/* Loads images and labels (first `limit` records, 0 = all), checks that the
 * counts agree and that labels are < 256, and scales pixels to [0,1].
 * Returns a new dataset or NULL with err naming the file. */
dataset_t *dataset_load(const char *images_path, const char *labels_path,
                        size_t limit, err_t *err);

/* Splits the last n_val samples of *all off into a new validation set; *all
 * keeps the first n - n_val. Returns 0, or -1 if n_val >= n. *val_p gets NULL
 * when n_val is 0. */
int dataset_split(dataset_t *all, size_t n_val, dataset_t **val_p, err_t *err);

void dataset_destroy(dataset_t **self_p);

/* Computes normalisation statistics of kind over ds (kind NORM_NONE gives
 * mean 0, inv_std 1). Returns 0 or -1 (allocation). */
int norm_stats_compute(norm_stats_t *st, const dataset_t *ds, norm_t kind, err_t *err);
/* Applies st to every sample of ds in place. */
void norm_stats_apply(const norm_stats_t *st, dataset_t *ds);
void norm_stats_free(norm_stats_t *st);

/* Fills perm[0..n) with the permutation of epoch `epoch` for `seed`
 * (Fisher-Yates driven by a counter-based generator): the same on every rank. */
void data_permutation(uint32_t *perm, size_t n, uint64_t seed, uint64_t epoch);

/* Number of global batches per epoch for n samples (the last, short batch
 * counts; it is dropped only if drop_last). */
size_t data_batches_per_epoch(size_t n, size_t batch, int drop_last);

/* The slice of global batch b that trainer t of T computes:
 * [*begin, *end) as positions into the permutation. The global batch is
 * [b*batch, min((b+1)*batch, n)); it is cut into T slices whose sizes differ
 * by at most one, the first ones larger. A slice may be empty. */
void data_batch_slice(size_t n, size_t batch, size_t b, int t, int T,
                      size_t *begin, size_t *end);

/* Copies samples perm[begin..end) into x (rows of ds->dim) and y. */
void data_gather(const dataset_t *ds, const uint32_t *perm, size_t begin, size_t end,
                 float *x, int32_t *y);

#endif
