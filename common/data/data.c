/* data.c - the data pipeline (see data.h): IDX images and labels to float,
 * validation split, normalisation, and the per-epoch order and batch slices
 * that every trainer computes alike from (seed, epoch). */
#include "common/data/data.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/data/idx.h"
#include "common/util/rng.h"

/* A feature whose standard deviation on the training set is below this is
 * taken as constant: it is only centred (inv_std = 1), not divided by a
 * near-zero std, so a value that differs at test time is not blown up. */
#define NORM_STD_EPS 1e-6

/* Stream of the epoch permutation ("PERM"), xor-ed with the epoch. */
#define DATA_PERM_STREAM 0x5045524D00000000ull

/* Returns a new dataset of n samples of dim floats with x and y allocated
 * (uninitialised), or NULL if out of memory. */
static dataset_t *dataset_alloc(size_t n, size_t dim)
{
    if (n == 0 || dim == 0 || n > SIZE_MAX / sizeof(float) / dim ||
        n > SIZE_MAX / sizeof(int32_t))
        return NULL;
    dataset_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n = n;
    self->dim = dim;
    self->x = malloc(n * dim * sizeof(float));
    self->y = malloc(n * sizeof(int32_t));
    if (!self->x || !self->y)
        dataset_destroy(&self);
    return self;
}

dataset_t *dataset_load(const char *images_path, const char *labels_path, size_t limit,
                        err_t *err)
{
    idx_t ih, lh;
    idx_t *images = NULL, *labels = NULL;
    dataset_t *self = NULL;

    /* Headers first: the counts of the two files must agree even when only
     * the first `limit` records are read. */
    if (idx_probe(images_path, &ih, err) != 0 || idx_probe(labels_path, &lh, err) != 0)
        goto err;
    if (ih.ndim != 3) {
        err_set(err, "%s: an image file has 3 dimensions (count, rows, cols), this one has %d",
                images_path, ih.ndim);
        goto err;
    }
    if (lh.ndim != 1) {
        err_set(err, "%s: a label file has 1 dimension, this one has %d", labels_path, lh.ndim);
        goto err;
    }
    if (ih.count != lh.count) {
        err_set(err, "%s holds %zu images but %s holds %zu labels", images_path, ih.count,
                labels_path, lh.count);
        goto err;
    }
    if (ih.dims[1] > INT_MAX || ih.dims[2] > INT_MAX) {
        err_set(err, "%s: images of %u x %u pixels are too large", images_path, ih.dims[1],
                ih.dims[2]);
        goto err;
    }
    if (limit > ih.count) {
        err_set(err, "%s: limit %zu is more than the %zu records the file holds", images_path,
                limit, ih.count);
        goto err;
    }

    images = idx_load(images_path, 0, limit, err);
    if (!images)
        goto err;
    labels = idx_load(labels_path, 0, limit, err);
    if (!labels)
        goto err;
    if (images->count != labels->count) { /* the files changed since the probe */
        err_set(err, "%s holds %zu images but %s holds %zu labels", images_path, images->count,
                labels_path, labels->count);
        goto err;
    }

    self = dataset_alloc(images->count, images->record_size);
    if (!self) {
        err_set(err, "%s: out of memory for %zu images of %zu floats", images_path,
                images->count, images->record_size);
        goto err;
    }
    self->rows = (int)images->dims[1];
    self->cols = (int)images->dims[2];
    size_t total = self->n * self->dim;
    for (size_t i = 0; i < total; i++)
        self->x[i] = (float)images->data[i] / 255.0f;
    int max_label = 0;
    for (size_t i = 0; i < self->n; i++) {
        self->y[i] = labels->data[i]; /* unsigned bytes: always < 256 */
        if (self->y[i] > max_label)
            max_label = self->y[i];
    }
    self->n_classes = max_label + 1;
    idx_destroy(&images);
    idx_destroy(&labels);
    return self;

err:
    idx_destroy(&images);
    idx_destroy(&labels);
    dataset_destroy(&self);
    return NULL;
}

int dataset_split(dataset_t *all, size_t n_val, dataset_t **val_p, err_t *err)
{
    *val_p = NULL;
    if (n_val >= all->n)
        return err_set(err, "validation split of %zu samples leaves nothing to train on "
                       "(the data set holds %zu)", n_val, all->n);
    if (n_val == 0)
        return 0;

    size_t keep = all->n - n_val;
    dataset_t *val = dataset_alloc(n_val, all->dim);
    if (!val)
        return err_set(err, "out of memory for a validation set of %zu samples", n_val);
    val->rows = all->rows;
    val->cols = all->cols;
    val->n_classes = all->n_classes; /* the label space, even if a class is absent */
    memcpy(val->x, all->x + keep * all->dim, n_val * all->dim * sizeof(float));
    memcpy(val->y, all->y + keep, n_val * sizeof(int32_t));

    /* Shrink; if realloc cannot, the old blocks keep their capacity. */
    float *x = realloc(all->x, keep * all->dim * sizeof(float));
    if (x)
        all->x = x;
    int32_t *y = realloc(all->y, keep * sizeof(int32_t));
    if (y)
        all->y = y;
    all->n = keep;
    *val_p = val;
    return 0;
}

void dataset_destroy(dataset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->x);
    free((*self_p)->y);
    free(*self_p);
    *self_p = NULL;
}

/* Returns 1 / std, or 1 when the feature is constant (std < NORM_STD_EPS). */
static float norm_inv_std(double var)
{
    double sd = sqrt(var > 0 ? var : 0);
    return sd < NORM_STD_EPS ? 1.0f : (float)(1.0 / sd);
}

int norm_stats_compute(norm_stats_t *st, const dataset_t *ds, norm_t kind, err_t *err)
{
    double *acc = NULL;
    size_t dim = ds->dim, n = ds->n;

    memset(st, 0, sizeof *st);
    st->kind = kind;
    st->dim = dim;
    st->mean = malloc(dim * sizeof(float));
    st->inv_std = malloc(dim * sizeof(float));
    if (!st->mean || !st->inv_std) {
        err_set(err, "out of memory for normalisation statistics of %zu features", dim);
        goto err;
    }

    if (kind == NORM_GLOBAL && n > 0) {
        /* Two passes in double: mean, then the mean squared deviation. */
        double sum = 0;
        size_t total = n * dim;
        for (size_t i = 0; i < total; i++)
            sum += ds->x[i];
        double mean = sum / (double)total;
        double ss = 0;
        for (size_t i = 0; i < total; i++) {
            double d = ds->x[i] - mean;
            ss += d * d;
        }
        float inv = norm_inv_std(ss / (double)total);
        for (size_t j = 0; j < dim; j++) {
            st->mean[j] = (float)mean;
            st->inv_std[j] = inv;
        }
    } else if (kind == NORM_PER_PIXEL && n > 0) {
        acc = calloc(2 * dim, sizeof(double)); /* [0, dim): mean; [dim, 2 dim): squares */
        if (!acc) {
            err_set(err, "out of memory for normalisation statistics of %zu features", dim);
            goto err;
        }
        double *mean = acc, *ss = acc + dim;
        for (size_t i = 0; i < n; i++) {
            const float *row = ds->x + i * dim;
            for (size_t j = 0; j < dim; j++)
                mean[j] += row[j];
        }
        for (size_t j = 0; j < dim; j++)
            mean[j] /= (double)n;
        for (size_t i = 0; i < n; i++) {
            const float *row = ds->x + i * dim;
            for (size_t j = 0; j < dim; j++) {
                double d = row[j] - mean[j];
                ss[j] += d * d;
            }
        }
        for (size_t j = 0; j < dim; j++) {
            st->mean[j] = (float)mean[j];
            st->inv_std[j] = norm_inv_std(ss[j] / (double)n);
        }
        free(acc);
    } else {
        /* NORM_NONE (or an empty set): the identity. */
        for (size_t j = 0; j < dim; j++) {
            st->mean[j] = 0.0f;
            st->inv_std[j] = 1.0f;
        }
    }
    return 0;

err:
    free(acc);
    norm_stats_free(st);
    return -1;
}

/* ds->dim must equal st->dim; a mismatch (a caller's bug) changes nothing. */
void norm_stats_apply(const norm_stats_t *st, dataset_t *ds)
{
    if (!st || !ds || st->dim != ds->dim || !st->mean || !st->inv_std)
        return;
    for (size_t i = 0; i < ds->n; i++) {
        float *row = ds->x + i * ds->dim;
        for (size_t j = 0; j < ds->dim; j++)
            row[j] = (row[j] - st->mean[j]) * st->inv_std[j];
    }
}

/* Frees the arrays of st (st may be NULL) and zeroes it. */
void norm_stats_free(norm_stats_t *st)
{
    if (!st)
        return;
    free(st->mean);
    free(st->inv_std);
    memset(st, 0, sizeof *st);
}

/* n must not exceed UINT32_MAX (perm holds uint32 indices). */
void data_permutation(uint32_t *perm, size_t n, uint64_t seed, uint64_t epoch)
{
    uint64_t stream = DATA_PERM_STREAM ^ epoch;
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n; i-- > 1;) {
        uint32_t j = rng_below(seed, stream, i, (uint32_t)(i + 1));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* Returns 0 when batch is 0. */
size_t data_batches_per_epoch(size_t n, size_t batch, int drop_last)
{
    if (batch == 0)
        return 0;
    return drop_last ? n / batch : n / batch + (n % batch != 0);
}

/* t outside [0, T) (or T < 1) gets an empty slice at the batch's start; a batch
 * past the end of the epoch is empty. */
void data_batch_slice(size_t n, size_t batch, size_t b, int t, int T, size_t *begin,
                      size_t *end)
{
    size_t gb = (batch != 0 && b <= n / batch) ? b * batch : n;
    if (gb > n)
        gb = n;
    size_t ge = (n - gb > batch) ? gb + batch : n;
    if (T < 1 || t < 0 || t >= T) {
        *begin = *end = gb;
        return;
    }
    size_t len = ge - gb, tt = (size_t)t;
    size_t q = len / (size_t)T, r = len % (size_t)T;
    *begin = gb + tt * q + (tt < r ? tt : r);
    *end = *begin + q + (tt < r);
}

/* x or y may be NULL to skip the images or the labels. */
void data_gather(const dataset_t *ds, const uint32_t *perm, size_t begin, size_t end, float *x,
                 int32_t *y)
{
    for (size_t i = begin; i < end; i++) {
        size_t s = perm[i];
        if (x)
            memcpy(x + (i - begin) * ds->dim, ds->x + s * ds->dim, ds->dim * sizeof(float));
        if (y)
            y[i - begin] = ds->y[s];
    }
}
