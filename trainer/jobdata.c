/* jobdata.c - loads and prepares a job's data (see jobdata.h). */
#include "trainer/jobdata.h"

#include <string.h>

#include "common/data/ctr_stream.h"
#include "common/data/idx.h"

static int check_set(const dataset_t *ds, const char *what, const char *path, int input_size,
                     int n_classes, err_t *err)
{
    if ((int)ds->dim != input_size)
        return err_set(err, "%s: %s samples have %zu values (%dx%d) but the model's input takes %d",
                       path, what, ds->dim, ds->rows, ds->cols, input_size);
    for (size_t i = 0; i < ds->n; i++)
        if (ds->y[i] < 0 || ds->y[i] >= n_classes)
            return err_set(err, "%s: label %d of record %zu is not below the model's %d classes",
                           path, (int)ds->y[i], i, n_classes);
    return 0;
}

/* The training rule in one place: of `records` samples, the first
 * data.limit (when set) are used, and data.validation of those are held out.
 * Returns 0 with *n_train, or -1 with err when nothing would be left. */
static int train_count(const job_config_t *cfg, size_t records, size_t *n_train, err_t *err)
{
    size_t n = records;
    if (cfg->data.limit > 0 && (size_t)cfg->data.limit < n)
        n = (size_t)cfg->data.limit;
    if ((size_t)cfg->data.validation >= n)
        return err_set(err, "%s: data.validation = %d leaves no training samples out of %zu",
                       cfg->source, cfg->data.validation, n);
    *n_train = n - (size_t)cfg->data.validation;
    return 0;
}

/* Click logs need a model that takes them (model.sparse), and IDX images
 * one that does not. Returns 0, or -1 with err. */
static int format_check(const job_config_t *cfg, err_t *err)
{
    const int sparse = cfg->model.sparse.fields > 0;
    if (cfg->data.format == FORMAT_CRITEO && !sparse)
        return err_set(err, "%s: data.format = \"criteo\" needs a model with embedding tables "
                       "for its 26 categorical fields (model.sparse)", cfg->source);
    if (cfg->data.format != FORMAT_CRITEO && sparse)
        return err_set(err, "%s: model.sparse: IDX images have no categorical fields (use "
                       "data.format = \"criteo\")", cfg->source);
    return 0;
}

int job_data_train_size(const job_config_t *cfg, size_t *n_train, err_t *err)
{
    idx_t hdr;
    if (format_check(cfg, err) != 0)
        return -1;
    if (cfg->data.format == FORMAT_CRITEO) { /* counted with its parts (ctr_feed_plan) */
        *n_train = 0;
        return 0;
    }
    if (idx_probe(cfg->data.train_images, &hdr, err) != 0)
        return -1;
    return train_count(cfg, hdr.count, n_train, err);
}

int job_data_load(job_data_t *d, const job_config_t *cfg, int input_size, int n_classes,
                  err_t *err)
{
    memset(d, 0, sizeof *d);
    size_t n_train = 0;
    if (format_check(cfg, err) != 0)
        return -1;
    if (cfg->data.format == FORMAT_CRITEO) { /* streamed; the feed counts the lines */
        d->ctr = 1;
        return 0;
    }
    d->train = dataset_load(cfg->data.train_images, cfg->data.train_labels,
                            (size_t)cfg->data.limit, err);
    if (!d->train || train_count(cfg, d->train->n, &n_train, err) != 0)
        goto err;
    if (d->train->n > n_train &&
        dataset_split(d->train, d->train->n - n_train, &d->val, err) != 0)
        goto err;
    d->test = dataset_load(cfg->data.test_images, cfg->data.test_labels,
                           (size_t)cfg->data.test_limit, err);
    if (!d->test)
        goto err;
    if (check_set(d->train, "training", cfg->data.train_images, input_size, n_classes, err) ||
        check_set(d->test, "test", cfg->data.test_images, input_size, n_classes, err) ||
        (d->val && check_set(d->val, "validation", cfg->data.train_images, input_size,
                             n_classes, err)))
        goto err;
    if (norm_stats_compute(&d->norm, d->train, cfg->data.normalize, err) != 0)
        goto err;
    if (cfg->data.normalize != NORM_NONE) {
        norm_stats_apply(&d->norm, d->train);
        norm_stats_apply(&d->norm, d->test);
        if (d->val)
            norm_stats_apply(&d->norm, d->val);
    }
    return 0;
err:
    job_data_free(d);
    return -1;
}

void job_data_free(job_data_t *d)
{
    dataset_destroy(&d->train);
    dataset_destroy(&d->val);
    dataset_destroy(&d->test);
    norm_stats_free(&d->norm);
}

size_t job_data_n_train(const job_data_t *d)
{
    return d->ctr ? (size_t)d->ctr_lines : d->train ? d->train->n : 0;
}
