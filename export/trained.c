/* trained.c - opens a checkpoint as a model (see trained.h). */
#include "export/trained.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

trained_t *trained_open(const char *path, int max_batch, err_t *err)
{
    return trained_open_rows(path, max_batch, NULL, 0, err);
}

/* The embedding tables of t's model, if it has them: row_files, or those
 * next to the checkpoint. Returns 0, or -1 with err. */
static int open_tables(trained_t *t, const char *const *row_files, int n_files, err_t *err)
{
    if (t->cfg->model.sparse.fields == 0) {
        if (n_files > 0)
            return err_set(err, "%s: row files given (%s), but the model has no embedding "
                           "tables", t->path, row_files[0]);
        return 0;
    }
    t->tables = n_files > 0 ? tables_open(t->cfg, row_files, n_files, err)
                            : tables_open_next_to(t->cfg, t->path, err);
    return t->tables ? 0 : -1;
}

trained_t *trained_open_rows(const char *path, int max_batch, const char *const *row_files,
                             int n_files, err_t *err)
{
    trained_t *t = calloc(1, sizeof *t);
    if (!t) {
        err_set(err, "%s: out of memory", path);
        return NULL;
    }
    snprintf(t->path, sizeof t->path, "%s", path);
    if (!(t->ck = checkpoint_read(path, err)))
        goto fail;
    if (!(t->cfg = calloc(1, sizeof *t->cfg))) {
        err_set(err, "%s: out of memory", path);
        goto fail;
    }
    char name[4200];
    snprintf(name, sizeof name, "%s: section CONFIG", path);
    if (config_load_text(t->cfg, name, t->ck->config_text, NULL, 0, 0, err) != 0)
        goto fail;
    if (max_batch <= 0) /* as train_prepare sizes the training model */
        max_batch = t->cfg->train.batch > t->cfg->train.eval_batch ? t->cfg->train.batch
                                                                   : t->cfg->train.eval_batch;
    if (!(t->model = model_new(t->cfg, max_batch, err))) {
        err_prefix(err, "%s", path);
        goto fail;
    }
    if (checkpoint_match(t->ck, model_params(t->model), path, err) != 0)
        goto fail;
    if (t->ck->norm_kind && t->ck->norm_dim != (size_t)model_input_size(t->model)) {
        err_set(err, "%s: section NORM: statistics of %zu features, the model takes %d", path,
                t->ck->norm_dim, model_input_size(t->model));
        goto fail;
    }
    if (open_tables(t, row_files, n_files, err) != 0)
        goto fail;
    t->threads = 1;
    return t;
fail:
    trained_destroy(&t);
    return NULL;
}

void trained_destroy(trained_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    trained_t *t = *self_p;
    checkpoint_free(&t->ck);
    model_destroy(&t->model);
    tables_destroy(&t->tables);
    free(t->cfg);
    free(t);
    *self_p = NULL;
}

void trained_normalize(const trained_t *t, float *x, int B)
{
    const checkpoint_t *ck = t->ck;
    if (!ck->norm_kind)
        return;
    const size_t dim = ck->norm_dim;
    for (int b = 0; b < B; b++) {
        float *row = x + (size_t)b * dim;
        for (size_t j = 0; j < dim; j++)
            row[j] = (row[j] - ck->norm_mean[j]) * ck->norm_inv_std[j];
    }
}

static const char *const FASHION[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

const char *trained_class_name(const trained_t *t, int k, char *buf, size_t len)
{
    const job_config_t *c = t->cfg;
    const int classes = model_n_classes(t->model);
    if (c->data.n_classes_names == classes && k >= 0 && k < classes)
        snprintf(buf, len, "%s", c->data.classes[k]);
    else if (classes == 10 && strstr(c->data.train_images, "fashion") && k >= 0 && k < 10)
        snprintf(buf, len, "%s", FASHION[k]);
    else
        snprintf(buf, len, "%d", k);
    return buf;
}
