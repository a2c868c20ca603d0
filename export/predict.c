/* predict.c - native inference over an IDX image file (see predict.h). */
#include "export/predict.h"

#include <stdlib.h>
#include <string.h>

#include "common/data/idx.h"
#include "common/nn/loss.h"
#include "common/nn/team.h"

/* The images of path (first limit records) checked against t's model; the
 * labels of lpath (may be NULL), checked against the images and classes.
 * Returns 0, or -1 with err naming the file. */
static int load_inputs(const trained_t *t, const char *path, const char *lpath, size_t limit,
                       idx_t **images, idx_t **labels, err_t *err)
{
    idx_t ih, lh;
    const int dim = model_input_size(t->model), C = model_n_classes(t->model);
    if (idx_probe(path, &ih, err) != 0)
        return -1;
    if (ih.ndim < 2)
        return err_set(err, "%s: an image file has 2 or more dimensions (count, rows, cols), "
                       "this one has %d", path, ih.ndim);
    if (ih.record_size != (size_t)dim) {
        if (ih.ndim == 3)
            return err_set(err, "%s: images of %ux%u = %zu values, the model (%s) takes %d",
                           path, ih.dims[1], ih.dims[2], ih.record_size, t->path, dim);
        return err_set(err, "%s: records of %zu values, the model (%s) takes %d", path,
                       ih.record_size, t->path, dim);
    }
    if (lpath) {
        if (idx_probe(lpath, &lh, err) != 0)
            return -1;
        if (lh.ndim != 1)
            return err_set(err, "%s: a label file has 1 dimension, this one has %d", lpath,
                           lh.ndim);
        if (lh.count != ih.count)
            return err_set(err, "%s holds %zu images but %s holds %zu labels", path, ih.count,
                           lpath, lh.count);
    }
    if (limit > ih.count)
        return err_set(err, "%s: limit %zu is more than the %zu images the file holds", path,
                       limit, ih.count);
    if (ih.count == 0)
        return err_set(err, "%s: no images", path);
    if (!(*images = idx_load(path, 0, limit, err)))
        return -1;
    if (lpath) {
        if (!(*labels = idx_load(lpath, 0, limit, err)))
            return -1;
        if ((*labels)->count != (*images)->count) /* a file changed since the probe */
            return err_set(err, "%s holds %zu images but %s holds %zu labels", path,
                           (*images)->count, lpath, (*labels)->count);
        for (size_t i = 0; i < (*labels)->count; i++)
            if ((*labels)->data[i] >= C)
                return err_set(err, "%s: label %u of record %zu is not below the model's %d "
                               "classes", lpath, (*labels)->data[i], i, C);
    }
    return 0;
}

int predict_run(trained_t *t, const char *images, const char *labels, size_t limit,
                predict_fn fn, void *ctx, predict_result_t *res, err_t *err)
{
    memset(res, 0, sizeof *res);
    if (!images)
        return err_set(err, "predict: no images file");
    model_t *m = t->model;
    const float *params = t->ck->params;
    /* C outputs per image, K classes (2 for a one-output model) */
    const int C = model_output_size(m), K = model_n_classes(m), B = model_max_batch(m);
    const size_t dim = (size_t)model_input_size(m);
    idx_t *im = NULL, *lb = NULL;
    float *x = NULL;
    team_t *team = NULL;
    int rc = -1;
    if (load_inputs(t, images, labels, limit, &im, &lb, err) != 0 ||
        !(team = team_new(m, t->threads > 0 ? t->threads : 1, B, err)))
        goto out;
    const size_t n = im->count;
    res->classes = K;
    res->has_labels = lb != NULL;
    res->pred = malloc(n * sizeof *res->pred);
    x = malloc((size_t)B * dim * sizeof *x);
    if (lb)
        res->confusion = calloc((size_t)K * K, sizeof *res->confusion);
    if (!res->pred || !x || (lb && !res->confusion)) {
        err_set(err, "%s: out of memory for %zu images", images, n);
        goto out;
    }
    for (size_t i = 0; i < n; i += (size_t)B) {
        const int nb = (int)(n - i < (size_t)B ? n - i : (size_t)B);
        const uint8_t *src = im->data + i * dim;
        for (size_t k = 0; k < (size_t)nb * dim; k++)
            x[k] = (float)src[k] / 255.0f; /* as dataset_load scales */
        trained_normalize(t, x, nb);
        const float *probs = team_predict(team, params, x, nb);
        int32_t *pred = res->pred + i;
        for (int b = 0; b < nb; b++) {
            /* the evaluation's rule (ties and NaNs go the same way), over
             * the same activation: the classes the training run reported */
            pred[b] = loss_predict(model_loss(m), probs + (size_t)b * C, C);
            if (lb) {
                int truth = lb->data[i + (size_t)b];
                res->correct += pred[b] == truth;
                res->confusion[(size_t)truth * K + pred[b]]++;
            }
            if (fn)
                fn(ctx, (long)(i + (size_t)b), pred[b], probs + (size_t)b * C, C);
        }
        res->n += nb;
    }
    rc = 0;
out:
    if (rc != 0)
        predict_result_free(res);
    idx_destroy(&im);
    idx_destroy(&lb);
    free(x);
    team_destroy(&team);
    return rc;
}

void predict_result_free(predict_result_t *res)
{
    if (!res)
        return;
    free(res->pred);
    free(res->confusion);
    memset(res, 0, sizeof *res);
}

/* Digits of v >= 0. */
static int digits(long v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

int predict_print_report(FILE *f, const trained_t *t, const predict_result_t *res, err_t *err)
{
    const int C = res->classes;
    const long *cm = res->confusion;
    if (!res->has_labels || !cm) {
        fprintf(f, "%ld images classified (no labels: no accuracy)\n", res->n);
        goto done;
    }
    fprintf(f, "accuracy %.2f%% (%ld of %ld images)\n",
            res->n ? 100.0 * (double)res->correct / (double)res->n : 0.0, res->correct, res->n);
    /* columns wide enough for the largest count, the class numbers and "100.0" */
    long most = 0;
    int name_w = (int)strlen("precision %");
    char name[CFG_NAME_LEN + 16];
    for (int k = 0; k < C; k++) {
        for (int j = 0; j < C; j++)
            most = cm[(size_t)k * C + j] > most ? cm[(size_t)k * C + j] : most;
        int len = (int)strlen(trained_class_name(t, k, name, sizeof name)) + digits(C - 1) + 1;
        name_w = len > name_w ? len : name_w;
    }
    int w = digits(most) > digits(C - 1) ? digits(most) : digits(C - 1);
    w = w > 5 ? w : 5;
    fprintf(f, "confusion matrix (rows: true class, columns: predicted class)\n%*s", name_w, "");
    for (int j = 0; j < C; j++)
        fprintf(f, " %*d", w, j);
    fprintf(f, "  recall %%\n");
    for (int k = 0; k < C; k++) {
        const long *row = cm + (size_t)k * C;
        long total = 0;
        char label[CFG_NAME_LEN + 32];
        snprintf(label, sizeof label, "%d %s", k, trained_class_name(t, k, name, sizeof name));
        fprintf(f, "%-*s", name_w, label);
        for (int j = 0; j < C; j++) {
            fprintf(f, " %*ld", w, row[j]);
            total += row[j];
        }
        if (total)
            fprintf(f, "  %8.1f\n", 100.0 * (double)row[k] / (double)total);
        else
            fprintf(f, "  %8s\n", "-");
    }
    fprintf(f, "%-*s", name_w, "precision %");
    for (int j = 0; j < C; j++) {
        long col = 0;
        for (int k = 0; k < C; k++)
            col += cm[(size_t)k * C + j];
        if (col)
            fprintf(f, " %*.1f", w, 100.0 * (double)cm[(size_t)j * C + j] / (double)col);
        else
            fprintf(f, " %*s", w, "-");
    }
    fprintf(f, "\n");
done:
    if (fflush(f) != 0 || ferror(f))
        return err_set(err, "cannot write the prediction report");
    return 0;
}
