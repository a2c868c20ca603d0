/* ctr_feed.c - click logs into a sparse model (see ctr_feed.h). */
#include "trainer/ctr_feed.h"

#include <stdlib.h>
#include <string.h>

#include "common/data/criteo.h"
#include "common/data/ctr_stream.h"
#include "common/data/data.h"
#include "common/nn/sparse_input.h"

struct ctr_feed_t {
    const job_config_t *cfg;
    int input_size, cap;
    int part0, n_own, parts;    /* this feed reads parts [part0, part0 + n_own) of parts */
    uint64_t *part_lines;       /* the lines of every part */
    int *part_batch;            /* every part's samples in a global batch */
    long per_epoch, taken;      /* batches of an epoch; taken this epoch */
    uint64_t lines;             /* of all parts */
    uint32_t rows[CRITEO_CAT];  /* each field's table size: ids are reduced % rows */
    ctr_stream_t **train;       /* n_own streams, one per part */
    ctr_batch_t b;              /* the batch (this feed's parts end to end) */
    ctr_batch_t pb;             /* one part's samples, when the feed reads several */
    sparse_input_t *si;
    float *x;                   /* evaluation's input batch [cap][input_size] */
    int32_t *y;
    uint64_t bad_test;          /* bad lines skipped in the test sets so far */
};

/* The stream options of source for this feed, as part `part` of `parts`. */
static ctr_stream_opts_t stream_opts(const ctr_feed_t *f, const char *source, const char *name,
                                     int part, int parts)
{
    const job_config_t *cfg = f->cfg;
    return (ctr_stream_opts_t){.source = source, .name = name, .rank = part, .ranks = parts,
                               .rows = f->rows, .seed = cfg->train.seed,
                               .shuffle_buffer = (size_t)cfg->data.shuffle_buffer,
                               .bad_lines = cfg->data.bad_lines == BAD_LINES_SKIP ? CTR_BAD_SKIP
                                                                                  : CTR_BAD_STOP,
                               .batch = f->cap};
}

/* Part p's samples in a global batch of `batch` cut among `parts`. */
static int part_batch(int batch, int p, int parts)
{
    size_t lo, hi;
    data_batch_slice((size_t)batch, (size_t)batch, 0, p, parts, &lo, &hi);
    return (int)(hi - lo);
}

int ctr_feed_plan(const job_config_t *cfg, int parts, uint64_t *lines, long *per_epoch,
                  uint64_t *total_lines, err_t *err)
{
    if (parts < 1 || parts > cfg->train.batch)
        return err_set(err, "%s: train.batch = %d cannot be cut into %d parts (one per trainer)",
                       cfg->source, cfg->train.batch, parts);
    long most = 0;
    uint64_t total = 0;
    for (int p = 0; p < parts; p++) {
        uint64_t n;
        if (ctr_count_part_lines(cfg->data.train, "data.train", p, parts, &n, err) != 0)
            return -1;
        const uint64_t b = (uint64_t)part_batch(cfg->train.batch, p, parts);
        if ((long)((n + b - 1) / b) > most)
            most = (long)((n + b - 1) / b);
        total += n;
        if (lines)
            lines[p] = n;
    }
    if (total == 0)
        return err_set(err, "%s: data.train = '%s' holds no lines", cfg->source, cfg->data.train);
    *per_epoch = most;
    if (total_lines)
        *total_lines = total;
    return 0;
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

/* Allocates f's buffers and counts its parts' lines. Returns 0, or -1 with err. */
static int feed_alloc(ctr_feed_t *f, err_t *err)
{
    const int cap = f->cap;
    const sparse_input_opts_t so = {CRITEO_CAT, f->cfg->model.sparse.dim, CRITEO_NUM,
                                    f->input_size, cap, 0, SPARSE_SUM};
    f->x = malloc((size_t)cap * f->input_size * sizeof *f->x);
    f->y = malloc((size_t)cap * sizeof *f->y);
    f->part_lines = calloc((size_t)f->parts, sizeof *f->part_lines);
    f->part_batch = calloc((size_t)f->parts, sizeof *f->part_batch);
    f->train = calloc((size_t)f->n_own, sizeof *f->train);
    if (!f->x || !f->y || !f->part_lines || !f->part_batch || !f->train)
        return err_set(err, "click logs: out of memory for batches of %d", cap);
    if (ctr_batch_alloc(&f->b, cap, err) != 0 || ctr_batch_alloc(&f->pb, cap, err) != 0 ||
        !(f->si = sparse_input_new(&so, err)))
        return -1;
    for (int p = 0; p < f->parts; p++)
        f->part_batch[p] = part_batch(f->cfg->train.batch, p, f->parts);
    return ctr_feed_plan(f->cfg, f->parts, f->part_lines, &f->per_epoch, &f->lines, err);
}

ctr_feed_t *ctr_feed_new(const job_config_t *cfg, int input_size, int part0, int n_own,
                         int parts, err_t *err)
{
    if (model_fits(cfg, input_size, err) != 0)
        return NULL;
    if (part0 < 0 || n_own < 1 || part0 + n_own > parts)
        return err_set(err, "click logs: parts [%d, %d) of %d", part0, part0 + n_own, parts),
               NULL;
    ctr_feed_t *f = calloc(1, sizeof *f);
    if (!f)
        return err_set(err, "click logs: out of memory"), NULL;
    *f = (ctr_feed_t){.cfg = cfg, .input_size = input_size, .cap = cfg->train.batch,
                      .part0 = part0, .n_own = n_own, .parts = parts};
    for (int k = 0; k < CRITEO_CAT; k++)
        f->rows[k] = (uint32_t)cfg_sparse_rows(cfg, k);
    int rc = feed_alloc(f, err);
    for (int i = 0; rc == 0 && i < n_own; i++) {
        const ctr_stream_opts_t o = stream_opts(f, cfg->data.train, "data.train", part0 + i,
                                                parts);
        if (!(f->train[i] = ctr_stream_new(&o, err)))
            rc = -1;
    }
    if (rc != 0)
        ctr_feed_destroy(&f);
    return f;
}

long ctr_feed_per_epoch(const ctr_feed_t *f)
{
    return f->per_epoch;
}

uint64_t ctr_feed_lines(const ctr_feed_t *f)
{
    return f->lines;
}

void ctr_feed_destroy(ctr_feed_t **self_p)
{
    ctr_feed_t *f = self_p ? *self_p : NULL;
    if (!f)
        return;
    for (int i = 0; f->train && i < f->n_own; i++)
        ctr_stream_destroy(&f->train[i]);
    free(f->train);
    free(f->part_lines);
    free(f->part_batch);
    ctr_batch_free(&f->b);
    ctr_batch_free(&f->pb);
    sparse_input_destroy(&f->si);
    free(f->x);
    free(f->y);
    free(f);
    *self_p = NULL;
}

int ctr_feed_rewind(ctr_feed_t *f, int epoch, err_t *err)
{
    f->taken = 0;
    for (int i = 0; epoch > 0 && i < f->n_own; i++)
        if (ctr_stream_rewind(f->train[i], (uint64_t)epoch, err) != 0)
            return -1;
    return 0;
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
    const uint64_t *ids[CRITEO_CAT];
    size_t nu[CRITEO_CAT];
    float *out[CRITEO_CAT];
    for (int k = 0; k < CRITEO_CAT; k++) {
        nu[k] = sparse_input_unique(f->si, k, &ids[k]);
        out[k] = sparse_input_rows(f->si, k);
    }
    if (fetch(ctx, CRITEO_CAT, ids, nu, out, training, err) != 0)
        return -1;
    sparse_input_gather(f->si, x);
    return 0;
}

/* Appends part i's next samples (its share of a global batch) to f->b.
 * Returns how many, or -1 with err. */
static int take_part(ctr_feed_t *f, int i, err_t *err)
{
    const int want = f->part_batch[f->part0 + i];
    if (f->n_own == 1)
        return ctr_stream_next(f->train[i], &f->b, want, err);
    const int n = ctr_stream_next(f->train[i], &f->pb, want, err), at = f->b.n;
    if (n <= 0)
        return n;
    memcpy(f->b.label + at, f->pb.label, (size_t)n * sizeof *f->b.label);
    memcpy(f->b.num + (size_t)at * CRITEO_NUM, f->pb.num,
           (size_t)n * CRITEO_NUM * sizeof *f->b.num);
    memcpy(f->b.cat + (size_t)at * CRITEO_CAT, f->pb.cat,
           (size_t)n * CRITEO_CAT * sizeof *f->b.cat);
    memcpy(f->b.missing + at, f->pb.missing, (size_t)n * sizeof *f->b.missing);
    f->b.n = at + n;
    return n;
}

/* The global batch `batch` of the epoch as the parts' line counts give it:
 * its samples and where this feed's first part starts in it. */
static void global_batch(const ctr_feed_t *f, long batch, ctr_step_t *st)
{
    st->global = st->first = 0;
    for (int p = 0; p < f->parts; p++) {
        const uint64_t b = (uint64_t)f->part_batch[p], done = (uint64_t)batch * b;
        const int n = f->part_lines[p] > done ? (int)(f->part_lines[p] - done < b
                                                     ? f->part_lines[p] - done : b) : 0;
        if (p < f->part0)
            st->first += n;
        st->global += n;
    }
}

int ctr_feed_train(ctr_feed_t *f, float *x, int32_t *y, ctr_fetch_fn fetch, void *ctx,
                   ctr_step_t *st, err_t *err)
{
    st->global = st->first = 0;
    if (f->taken >= f->per_epoch)
        return 0;
    global_batch(f, f->taken, st);
    f->b.n = 0;
    for (int i = 0; i < f->n_own; i++)
        if (take_part(f, i, err) < 0)
            return -1;
    const int n = f->b.n;
    if (n == 0 && f->n_own == f->parts)
        st->global = 0; /* every part ended early (bad lines skipped): the epoch is over */
    else if (st->global < n)
        st->global = n;  /* never scale by less than what is here */
    f->taken++;
    return build(f, n, x, y, fetch, ctx, 1, err) == 0 ? n : -1;
}

int ctr_feed_skip(ctr_feed_t *f, long batches, err_t *err)
{
    for (; batches > 0 && f->taken < f->per_epoch; batches--, f->taken++)
        for (int i = 0; i < f->n_own; i++) {
            f->b.n = 0;
            if (take_part(f, i, err) < 0)
                return -1;
        }
    return 0;
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
    /* the whole test set, whatever this feed's parts: every trainer has
     * every score, and the AUC is exact */
    const ctr_stream_opts_t o = stream_opts(f, f->cfg->data.test, "data.test", 0, 1);
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
    uint64_t bad = f->bad_test;
    for (int i = 0; i < f->n_own; i++) {
        ctr_stream_stats_t st;
        ctr_stream_stats(f->train[i], &st);
        bad += st.bad_lines_total;
    }
    return bad;
}
