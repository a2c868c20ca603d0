/* ctr_feed.c - click logs into a sparse model (see ctr_feed.h). */
#include "trainer/ctr_feed.h"

#include <stdlib.h>
#include <string.h>

#include "common/data/criteo.h"
#include "common/data/ctr_stream.h"
#include "common/nn/sparse_input.h"

struct ctr_feed_t {
    const job_config_t *cfg;
    int input_size, cap, rank, ranks;
    uint32_t rows[CRITEO_CAT];  /* each field's table size: ids are reduced % rows */
    ctr_stream_t *train;
    ctr_batch_t b;
    sparse_input_t *si;
    float *x;                   /* evaluation's input batch [cap][input_size] */
    int32_t *y;
    uint64_t bad_test;          /* bad lines skipped in the test sets so far */
};

/* The stream options of source for this feed. */
static ctr_stream_opts_t stream_opts(const ctr_feed_t *f, const char *source, const char *name)
{
    const job_config_t *cfg = f->cfg;
    return (ctr_stream_opts_t){.source = source, .name = name, .rank = f->rank,
                               .ranks = f->ranks, .rows = f->rows, .seed = cfg->train.seed,
                               .shuffle_buffer = (size_t)cfg->data.shuffle_buffer,
                               .bad_lines = cfg->data.bad_lines == BAD_LINES_SKIP ? CTR_BAD_SKIP
                                                                                  : CTR_BAD_STOP,
                               .batch = f->cap};
}

/* Checks that cfg's model takes Criteo samples. Returns 0, or -1 with err. */
static int model_fits(const job_config_t *cfg, int input_size, err_t *err)
{
    const int F = cfg->model.sparse.fields, D = cfg->model.sparse.dim;
    if (F != CRITEO_CAT)
        return err_set(err, "%s: model.sparse.fields = %d: a Criteo sample has %d categorical "
                       "fields", cfg->source, F, CRITEO_CAT);
    if (input_size != CRITEO_NUM + F * D)
        return err_set(err, "%s: model.input: a Criteo sample has %d dense features (input = "
                       "[%d]), the model takes %d before its field vectors", cfg->source,
                       CRITEO_NUM, CRITEO_NUM, input_size - F * D);
    return 0;
}

ctr_feed_t *ctr_feed_new(const job_config_t *cfg, int input_size, int cap, int rank, int ranks,
                         err_t *err)
{
    if (model_fits(cfg, input_size, err) != 0)
        return NULL;
    ctr_feed_t *f = calloc(1, sizeof *f);
    if (!f)
        return err_set(err, "click logs: out of memory"), NULL;
    *f = (ctr_feed_t){.cfg = cfg, .input_size = input_size, .cap = cap, .rank = rank,
                      .ranks = ranks};
    for (int k = 0; k < CRITEO_CAT; k++)
        f->rows[k] = (uint32_t)cfg_sparse_rows(cfg, k);
    const sparse_input_opts_t so = {CRITEO_CAT, cfg->model.sparse.dim, CRITEO_NUM, input_size,
                                    cap, 0, SPARSE_SUM};
    f->x = malloc((size_t)cap * input_size * sizeof *f->x);
    f->y = malloc((size_t)cap * sizeof *f->y);
    if (!f->x || !f->y || ctr_batch_alloc(&f->b, cap, err) != 0 ||
        !(f->si = sparse_input_new(&so, err))) {
        if (!f->x || !f->y)
            err_set(err, "click logs: out of memory for batches of %d", cap);
        ctr_feed_destroy(&f);
        return NULL;
    }
    const ctr_stream_opts_t o = stream_opts(f, cfg->data.train, "data.train");
    if (!(f->train = ctr_stream_new(&o, err))) {
        ctr_feed_destroy(&f);
        return NULL;
    }
    return f;
}

void ctr_feed_destroy(ctr_feed_t **self_p)
{
    ctr_feed_t *f = self_p ? *self_p : NULL;
    if (!f)
        return;
    ctr_stream_destroy(&f->train);
    ctr_batch_free(&f->b);
    sparse_input_destroy(&f->si);
    free(f->x);
    free(f->y);
    free(f);
    *self_p = NULL;
}

int ctr_feed_rewind(ctr_feed_t *f, int epoch, err_t *err)
{
    return epoch == 0 ? 0 : ctr_stream_rewind(f->train, (uint64_t)epoch, err);
}

/* The n samples of f->b into x and y, their rows from fetch. Returns 0, or
 * -1 with err. */
static int build(ctr_feed_t *f, int n, float *x, int32_t *y, ctr_fetch_fn fetch, void *ctx,
                 int training, err_t *err)
{
    for (int i = 0; i < n; i++) {
        memcpy(x + (size_t)i * f->input_size, f->b.num + (size_t)i * CRITEO_NUM,
               CRITEO_NUM * sizeof *x);
        y[i] = f->b.label[i] > 0.5f;
    }
    sparse_input_index(f->si, f->b.cat, n); /* the batch's ids are [n][CRITEO_CAT] already */
    for (int k = 0; k < CRITEO_CAT; k++) {
        const uint64_t *u;
        const size_t nu = sparse_input_unique(f->si, k, &u);
        if (fetch(ctx, k, u, nu, sparse_input_rows(f->si, k), training, err) != 0)
            return -1;
    }
    sparse_input_gather(f->si, x);
    return 0;
}

int ctr_feed_train(ctr_feed_t *f, float *x, int32_t *y, int max, ctr_fetch_fn fetch, void *ctx,
                   err_t *err)
{
    int n = ctr_stream_next(f->train, &f->b, max < f->cap ? max : f->cap, err);
    if (n <= 0)
        return n;
    return build(f, n, x, y, fetch, ctx, 1, err) == 0 ? n : -1;
}

int ctr_feed_push(ctr_feed_t *f, const float *dx, ctr_push_fn push, void *ctx, err_t *err)
{
    sparse_input_scatter(f->si, dx);
    for (int k = 0; k < CRITEO_CAT; k++) {
        const uint64_t *u;
        const size_t nu = sparse_input_unique(f->si, k, &u);
        if (push(ctx, k, u, nu, sparse_input_grads(f->si, k), err) != 0)
            return -1;
    }
    return 0;
}

int ctr_feed_evaluate(ctr_feed_t *f, team_t *t, const float *params, ctr_fetch_fn fetch,
                      void *ctx, double *loss_sum, long *right, size_t *n, auc_t *auc, err_t *err)
{
    const ctr_stream_opts_t o = stream_opts(f, f->cfg->data.test, "data.test");
    ctr_stream_t *s = ctr_stream_new(&o, err);
    if (!s)
        return -1;
    int rc = 0, B;
    while ((B = ctr_stream_next(s, &f->b, f->cap, err)) > 0) {
        if ((rc = build(f, B, f->x, f->y, fetch, ctx, 0, err)) != 0)
            break;
        int ok = 0;
        *loss_sum += team_eval_batch(t, params, f->x, f->y, B, &ok);
        *right += ok;
        *n += (size_t)B;
        const float *p = auc ? team_eval_probs(t) : NULL;
        if (auc && (!p || auc_add(auc, p, f->y, (size_t)B, err) != 0)) {
            if (!p)
                err_set(err, "evaluate: the model's loss gives no probabilities for an AUC");
            rc = -1;
            break;
        }
    }
    ctr_stream_stats_t st;
    ctr_stream_stats(s, &st);
    f->bad_test += st.bad_lines_total;
    ctr_stream_destroy(&s);
    return B < 0 ? -1 : rc;
}

uint64_t ctr_feed_bad_lines(const ctr_feed_t *f)
{
    ctr_stream_stats_t st;
    ctr_stream_stats(f->train, &st);
    return st.bad_lines_total + f->bad_test;
}
