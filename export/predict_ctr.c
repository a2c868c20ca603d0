/* predict_ctr.c - native inference over a click log (see predict_ctr.h). */
#include "export/predict_ctr.h"

#include <stdlib.h>
#include <string.h>

#include "common/data/criteo.h"
#include "common/data/ctr_stream.h"
#include "common/nn/team.h"

/* What one run holds. */
typedef struct {
    trained_t *t;
    rows_t *store;       /* every row of the row files */
    ctr_stream_t *in;
    ctr_batch_t b;
    team_t *team;
    float *x;            /* [B][input_size] */
    uint32_t rows[CRITEO_CAT];
} run_t;

/* Checks that t's model takes Criteo lines: 26 fields after 13 dense
 * features. Returns 0, or -1 with err. */
static int fits(const trained_t *t, err_t *err)
{
    const job_config_t *cfg = t->cfg;
    if (!t->tables)
        return err_set(err, "%s: the model has no embedding tables (model.sparse): predict "
                       "images with --images", t->path);
    const int F = cfg->model.sparse.fields, D = cfg->model.sparse.dim;
    if (F != CRITEO_CAT || model_input_size(t->model) != CRITEO_NUM + F * D)
        return err_set(err, "%s: the model takes %d fields after %d dense features; a Criteo "
                       "line has %d after %d", t->path, F, model_input_size(t->model) - F * D,
                       CRITEO_CAT, CRITEO_NUM);
    return 0;
}

/* Opens what run r needs for source. Returns 0, or -1 with err. */
static int run_open(run_t *r, const char *source, err_t *err)
{
    trained_t *t = r->t;
    const int B = model_max_batch(t->model), size = model_input_size(t->model);
    for (int f = 0; f < CRITEO_CAT; f++)
        r->rows[f] = (uint32_t)tables_rows(t->tables, f);
    const ctr_stream_opts_t o = {.source = source, .name = "--criteo", .rows = r->rows,
                                 .bad_lines = CTR_BAD_STOP, .batch = B};
    if (!(r->store = tables_load(t->tables, err)) || !(r->in = ctr_stream_new(&o, err)) ||
        ctr_batch_alloc(&r->b, B, err) != 0 ||
        !(r->team = team_new(t->model, t->threads > 0 ? t->threads : 1, B, err)))
        return -1;
    if (!(r->x = malloc((size_t)B * size * sizeof *r->x)))
        return err_set(err, "%s: out of memory for batches of %d", source, B);
    return 0;
}

static void run_close(run_t *r)
{
    rows_destroy(&r->store);
    ctr_stream_destroy(&r->in);
    ctr_batch_free(&r->b);
    team_destroy(&r->team);
    free(r->x);
}

/* The model inputs of the batch's n samples into r->x. Returns 0, or -1
 * with err. */
static int inputs(run_t *r, int n, err_t *err)
{
    const int size = model_input_size(r->t->model), dim = tables_dim(r->t->tables);
    for (int i = 0; i < n; i++) {
        float *x = r->x + (size_t)i * size;
        memcpy(x, r->b.num + (size_t)i * CRITEO_NUM, CRITEO_NUM * sizeof *x);
        for (int f = 0; f < CRITEO_CAT; f++)
            if (tables_lookup(r->store, f, r->b.cat[(size_t)i * CRITEO_CAT + f],
                              x + CRITEO_NUM + (size_t)f * dim, err) != 0)
                return -1;
    }
    return 0;
}

long predict_ctr_run(trained_t *t, const char *source, size_t limit, predict_ctr_fn fn,
                     void *ctx, err_t *err)
{
    if (fits(t, err) != 0)
        return -1;
    run_t r = {.t = t};
    long done = 0;
    int rc = run_open(&r, source, err);
    /* a one-output model gives p(click); a 2-class one p(class 1) after p(class 0) */
    const int B = model_max_batch(t->model), C = model_output_size(t->model);
    while (rc == 0 && (!limit || (size_t)done < limit)) {
        const int want = limit && limit - (size_t)done < (size_t)B ? (int)(limit - done) : B;
        const int n = ctr_stream_next(r.in, &r.b, want, err);
        if (n <= 0 || (rc = inputs(&r, n, err)) != 0) {
            rc = n < 0 ? -1 : rc;
            break;
        }
        trained_normalize(t, r.x, n);
        const float *p = team_predict(r.team, t->ck->params, r.x, n);
        for (int i = 0; fn && i < n; i++)
            fn(ctx, done + i, p[(size_t)i * C + (C > 1)], r.b.label[i],
               r.b.num + (size_t)i * CRITEO_NUM, CRITEO_NUM, r.b.cat + (size_t)i * CRITEO_CAT,
               CRITEO_CAT);
        done += n;
    }
    run_close(&r);
    return rc == 0 ? done : -1;
}
