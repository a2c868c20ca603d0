/* sparse.c - a parameter server's sparse embedding tables (see
 * server_int.h): the rows it owns (rows_hash % S == its index) in a row
 * store (common/nn/rows.h), PULL_ROWS and PUSH_ROWS on them, and their
 * consistency. ASP applies each piece of row gradients as it arrives. BSP
 * keeps each trainer's pieces of a step until every live trainer has ended
 * the step (an empty PUSH_ROWS), then sums each row's gradients in trainer
 * order (never arrival order) and applies the row optimizer once per row;
 * a row pull of the next step waits until then. Kept apart from
 * consistency.c because a waiting row pull must keep its ids, and a row
 * step ends with a message rather than with a shard's worth of keys. */
#include <stdlib.h>
#include <string.h>

#include "common/util/le.h"
#include "ps/server_int.h"

/* ------------------------------------------------------------ lifecycle */

/* Copies o.row_tables and their optimizers into sp. Returns 0 or -1. */
static int copy_tables(sparse_t *sp, const server_opts_t *o)
{
    sp->tables = calloc((size_t)o->n_row_tables, sizeof *sp->tables);
    sp->optims = calloc((size_t)o->n_row_tables, sizeof *sp->optims);
    if (!sp->tables || !sp->optims)
        return -1;
    for (int k = 0; k < o->n_row_tables; k++) {
        sp->tables[k] = o->row_tables[k];
        sp->optims[k] = o->row_tables[k].optim ? *o->row_tables[k].optim : o->optim;
        sp->tables[k].optim = &sp->optims[k];
    }
    sp->n_tables = o->n_row_tables;
    return 0;
}

int sparse_init(server_t *s, err_t *err)
{
    sparse_t *sp = &s->sparse;
    const server_opts_t *o = &s->o;
    const size_t T = (size_t)o->n_trainers;
    sp->version = o->start_step;
    if (o->n_row_tables <= 0 || !o->row_tables)
        return 0;
    if (o->consistency == CONS_SSP)
        return err_set(err, "server %d: sparse tables need BSP or ASP, not SSP", o->index);
    for (int k = 0; k < o->n_row_tables; k++)
        if (o->row_tables[k].id > INT32_MAX)
            return err_set(err, "server %d: sparse table id %u: ids travel in the header's "
                           "status, 0..%d", o->index, o->row_tables[k].id, INT32_MAX);
    if (copy_tables(sp, o) != 0)
        return err_set(err, "server %d: out of memory for %d sparse tables", o->index,
                       o->n_row_tables);
    rows_opts_t ro = {.seed = o->seed, .optim = &o->optim, .max_rows = o->row_max};
    if (!(sp->rows = rows_new(sp->tables, sp->n_tables, &ro, err)))
        return err_prefix(err, "server %d", o->index);
    sp->tpos = calloc(T, sizeof *sp->tpos);
    sp->tstep = calloc(T, sizeof *sp->tstep);
    sp->tend = calloc(T, 1);
    sp->tbuf = calloc(T, sizeof *sp->tbuf);
    sp->n_trainers = sp->tbuf ? (int)T : 0;
    sp->cap_pending = 4 * (int)T + 4;
    sp->pending = calloc((size_t)sp->cap_pending, sizeof *sp->pending);
    sp->rowbuf = malloc(WIRE_PIECE_FLOATS * sizeof *sp->rowbuf);
    sp->idbuf = malloc(WIRE_PIECE_FLOATS * sizeof *sp->idbuf);
    sp->sorted = malloc(WIRE_PIECE_FLOATS * sizeof *sp->sorted);
    if (!sp->tpos || !sp->tstep || !sp->tend || !sp->tbuf || !sp->pending || !sp->rowbuf ||
        !sp->idbuf || !sp->sorted)
        return err_set(err, "server %d: out of memory for the sparse tables' buffers", o->index);
    for (size_t t = 0; t < T; t++)
        sp->tstep[t] = o->start_step;
    return 0;
}

/* Empties b (keeping its memory). */
static void rbuf_clear(rbuf_t *b)
{
    b->n = b->ng = 0;
}

void sparse_free(sparse_t *sp)
{
    rows_destroy(&sp->rows);
    for (int t = 0; sp->tbuf && t < sp->n_trainers; t++) {
        free(sp->tbuf[t].tab);
        free(sp->tbuf[t].id);
        free(sp->tbuf[t].g);
    }
    for (int i = 0; i < sp->n_pending; i++)
        free(sp->pending[i].ids);
    free(sp->tables);
    free(sp->optims);
    free(sp->tpos);
    free(sp->tstep);
    free(sp->tend);
    free(sp->tbuf);
    free(sp->pending);
    free(sp->rowbuf);
    free(sp->idbuf);
    free(sp->sorted);
    memset(sp, 0, sizeof *sp);
}

void sparse_stats(const server_t *s, server_stats_t *st)
{
    const sparse_t *sp = &s->sparse;
    st->rows = st->rows_created = st->rows_bytes = 0;
    if (!sp->rows)
        return;
    st->rows = rows_count(sp->rows);
    st->rows_bytes = rows_bytes(sp->rows);
    for (int k = 0; k < sp->n_tables; k++) {
        rows_stats_t rs;
        if (rows_stats(sp->rows, sp->tables[k].id, &rs) == 0)
            st->rows_created += rs.created;
    }
}

/* ------------------------------------------------------------ validation */

/* Orders uint64 values (qsort). */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Checks request r against the tables: the table (status) exists, the
 * piece's rows fit WIRE_PIECE_FLOATS floats, a PUSH_ROWS's count is n x
 * dim, and every id (read into sp->idbuf) is within the table's bound and
 * this server's; a PUSH_ROWS has no id twice. Returns the table's index, or
 * -1 with *code and err naming what is wrong. */
static int check_rows_req(server_t *s, const req_t *r, int *code, err_t *err)
{
    sparse_t *sp = &s->sparse;
    const wire_hdr_t *h = &r->h;
    const char *name = wire_type_name(h->type);
    const uint64_t n = h->end - h->begin;
    *code = WIRE_E_RANGE;
    if (!sp->rows)
        return err_set(err, "%s of table %d: this server holds no sparse tables", name,
                       h->status);
    int k = 0;
    while (k < sp->n_tables && sp->tables[k].id != (uint32_t)h->status)
        k++;
    if (k == sp->n_tables)
        return err_set(err, "%s of table %d: no such sparse table", name, h->status);
    const rows_table_t *tb = &sp->tables[k];
    *code = WIRE_E_LENGTH;
    if (n > WIRE_PIECE_FLOATS / tb->dim)
        return err_set(err, "%s of %llu rows of table %u (dim %zu): a piece holds at most %zu",
                       name, (unsigned long long)n, tb->id, tb->dim, WIRE_PIECE_FLOATS / tb->dim);
    if (h->type == WIRE_PUSH_ROWS && h->count != n * tb->dim)
        return err_set(err, "PUSH_ROWS of %llu rows of table %u with %llu floats, expected %llu "
                       "(dim %zu)", (unsigned long long)n, tb->id, (unsigned long long)h->count,
                       (unsigned long long)(n * tb->dim), tb->dim);
    *code = WIRE_E_RANGE;
    for (uint64_t i = 0; i < n; i++) {
        const uint64_t id = le_load64(r->payload + 8 * i);
        if (tb->rows && id >= tb->rows)
            return err_set(err, "%s: row %llu of table %u is beyond its %llu rows", name,
                           (unsigned long long)id, tb->id, (unsigned long long)tb->rows);
        if (rows_hash(tb->id, id) % (uint64_t)s->o.n_servers != (uint64_t)s->o.index)
            return err_set(err, "%s: row %llu of table %u belongs to server %llu, not %d", name,
                           (unsigned long long)id, tb->id,
                           (unsigned long long)(rows_hash(tb->id, id) % (uint64_t)s->o.n_servers),
                           s->o.index);
        sp->idbuf[i] = id;
    }
    if (h->type != WIRE_PUSH_ROWS)
        return k;
    memcpy(sp->sorted, sp->idbuf, n * sizeof *sp->sorted);
    qsort(sp->sorted, n, sizeof *sp->sorted, cmp_u64);
    for (uint64_t i = 1; i < n; i++)
        if (sp->sorted[i] == sp->sorted[i - 1])
            return err_set(err, "PUSH_ROWS: row %llu of table %u twice in one push",
                           (unsigned long long)sp->sorted[i], tb->id);
    return k;
}

/* ------------------------------------------------------------ pulls */

/* The rows ids[0, n) of table tb into out without touching the store: a
 * row not held reads as its initial value (a PEEK_ROWS). Returns 0, or -1
 * with err. */
static int peek_rows(const sparse_t *sp, const rows_table_t *tb, const uint64_t *ids, size_t n,
                     float *out, err_t *err)
{
    for (size_t i = 0; i < n; i++)
        if (rows_peek(sp->rows, tb->id, ids[i], out + i * tb->dim, NULL) != 1 &&
            rows_initial(sp->rows, tb->id, ids[i], out + i * tb->dim, err) != 0)
            return -1;
    return 0;
}

/* Answers the row pull w (PULL_ROWS, or PEEK_ROWS: read-only) with the
 * rows ids[0, n) of table k: PULL_ROWS with float32 rows, or ERROR
 * internal when the row store fails (then nothing changed). */
static void serve_rows(server_t *s, const waiter_t *w, int k, const uint64_t *ids)
{
    sparse_t *sp = &s->sparse;
    const rows_table_t *tb = &sp->tables[k];
    const size_t n = (size_t)(w->hdr.end - w->hdr.begin);
    err_t e;
    if ((w->hdr.type == WIRE_PEEK_ROWS ? peek_rows(sp, tb, ids, n, sp->rowbuf, &e)
                                       : rows_pull(sp->rows, tb->id, ids, n, sp->rowbuf, &e)) != 0) {
        srv_error(s, w->peer, w->peer_len, &w->hdr, WIRE_E_INTERNAL, e.msg);
        return;
    }
    wire_hdr_t h;
    wire_hdr_init(&h, WIRE_PULL_ROWS, s->o.rank);
    h.req = w->hdr.req;
    h.clock = sp->version;
    h.begin = w->hdr.begin;
    h.end = w->hdr.end;
    h.count = n * tb->dim;
    h.status = w->hdr.status;
    srv_send(s, w->peer, w->peer_len, &h, sp->rowbuf, h.count * sizeof(float), 0);
    s->stats.pulls++;
}

/* The index of table id in sp (it was checked). */
static int table_index(const sparse_t *sp, int id)
{
    for (int k = 0; k < sp->n_tables; k++)
        if (sp->tables[k].id == (uint32_t)id)
            return k;
    return 0;
}

/* May a row pull of step clock be answered now? BSP: once the step before
 * it is applied. */
static int rows_ready(const server_t *s, int64_t clock)
{
    return s->o.consistency != CONS_BSP || s->sparse.version >= clock;
}

int sparse_pull(server_t *s, const req_t *r, int *code, err_t *err)
{
    sparse_t *sp = &s->sparse;
    const int k = check_rows_req(s, r, code, err);
    if (k < 0)
        return -1;
    const size_t n = (size_t)(r->h.end - r->h.begin);
    const int halted = live_pull_halted(s, r->h.clock);
    if (halted || rows_ready(s, r->h.clock)) {
        waiter_t w;
        srv_keep(&w, r);
        if (halted)
            live_refuse(s, &w);
        else
            serve_rows(s, &w, k, sp->idbuf);
        return 0;
    }
    if (sp->n_pending == sp->cap_pending) { /* a trainer ahead may wait in many pieces */
        const int most = WIRE_PIECES_MAX * s->o.n_trainers;
        rpull_t *more = sp->cap_pending < most
                            ? realloc(sp->pending, 2 * (size_t)sp->cap_pending * sizeof *more)
                            : NULL;
        if (!more) {
            *code = sp->cap_pending < most ? WIRE_E_INTERNAL : WIRE_E_STATE;
            return err_set(err, "%d row pulls waiting already (at most %d)", sp->n_pending, most);
        }
        sp->pending = more;
        sp->cap_pending *= 2;
    }
    rpull_t *p = &sp->pending[sp->n_pending];
    if (!(p->ids = malloc(n * sizeof *p->ids))) {
        *code = WIRE_E_INTERNAL;
        return err_set(err, "out of memory for a waiting row pull of %zu rows", n);
    }
    memcpy(p->ids, sp->idbuf, n * sizeof *p->ids);
    srv_keep(&p->w, r);
    sp->n_pending++;
    return 0;
}

void sparse_flush(server_t *s)
{
    sparse_t *sp = &s->sparse;
    int keep = 0;
    for (int i = 0; i < sp->n_pending; i++) {
        rpull_t *p = &sp->pending[i];
        if (live_pull_halted(s, p->w.hdr.clock))
            live_refuse(s, &p->w);
        else if (!rows_ready(s, p->w.hdr.clock)) {
            sp->pending[keep++] = *p;
            continue;
        } else
            serve_rows(s, &p->w, table_index(sp, p->w.hdr.status), p->ids);
        free(p->ids);
    }
    sp->n_pending = keep;
}

void sparse_drop_trainer(server_t *s, int t)
{
    sparse_t *sp = &s->sparse;
    int keep = 0;
    for (int i = 0; i < sp->n_pending; i++) {
        if (sp->pending[i].w.hdr.sender != t)
            sp->pending[keep++] = sp->pending[i];
        else
            free(sp->pending[i].ids);
    }
    sp->n_pending = keep;
}

/* ------------------------------------------------------------ pushes */

/* Appends n rows of table k (ids, and their gradients at g: n x dim
 * little-endian float32) to b, growing it by doubling. Returns 0, or -1
 * (out of memory; b keeps what it held). */
static int rbuf_add(rbuf_t *b, int k, const uint64_t *ids, size_t n, const uint8_t *g, size_t dim)
{
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->n + n)
            c *= 2;
        int *tab = realloc(b->tab, c * sizeof *tab);
        if (!tab)
            return -1;
        b->tab = tab; /* larger than cap says: harmless */
        uint64_t *id = realloc(b->id, c * sizeof *id);
        if (!id)
            return -1;
        b->id = id;
        b->cap = c;
    }
    if (b->ng + n * dim > b->capg) {
        size_t c = b->capg ? b->capg : 1024;
        while (c < b->ng + n * dim)
            c *= 2;
        float *gg = realloc(b->g, c * sizeof *gg);
        if (!gg)
            return -1;
        b->g = gg;
        b->capg = c;
    }
    for (size_t i = 0; i < n; i++) {
        b->tab[b->n + i] = k;
        b->id[b->n + i] = ids[i];
    }
    memcpy(b->g + b->ng, g, n * dim * sizeof *b->g); /* little-endian host (le.h) */
    b->n += n;
    b->ng += n * dim;
    return 0;
}

/* A slot of the open-addressing map in apply_table for id among cap
 * (a power of two) slots of index (-1: free) into ids. */
static size_t slot_of(const int64_t *map, size_t cap, const uint64_t *ids, uint64_t id)
{
    uint64_t x = id + 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    size_t i = (size_t)(x ^ (x >> 31)) & (cap - 1);
    while (map[i] >= 0 && ids[map[i]] != id)
        i = (i + 1) & (cap - 1);
    return i;
}

/* BSP: sums the gradients of table k's rows that the trainers pushed in
 * the step, in trainer order (each row's sum starts with the lowest
 * trainer that pushed it), and applies the row optimizer once per row as
 * step version + 1. Returns 0, or -1 with err (out of memory, the row
 * store's refusal). */
static int apply_table(server_t *s, int k, err_t *err)
{
    sparse_t *sp = &s->sparse;
    const size_t dim = sp->tables[k].dim;
    size_t most = 0, cap = 2;
    for (int t = 0; t < s->o.n_trainers; t++)
        most += sp->tbuf[t].n;
    while (cap < 2 * most)
        cap *= 2;
    uint64_t *ids = malloc((most ? most : 1) * sizeof *ids);
    float *sum = malloc((most ? most : 1) * dim * sizeof *sum);
    int64_t *map = malloc(cap * sizeof *map);
    int rc = -1;
    if (!ids || !sum || !map) {
        err_set(err, "out of memory to sum %zu rows of table %u", most, sp->tables[k].id);
        goto done;
    }
    memset(map, 0xff, cap * sizeof *map);
    size_t m = 0;
    for (int t = 0; t < s->o.n_trainers; t++) {
        const rbuf_t *b = &sp->tbuf[t];
        for (size_t i = 0, off = 0; i < b->n; off += sp->tables[b->tab[i]].dim, i++) {
            if (b->tab[i] != k)
                continue;
            size_t at = slot_of(map, cap, ids, b->id[i]);
            if (map[at] < 0) { /* the row's first gradient of the step */
                map[at] = (int64_t)m;
                ids[m] = b->id[i];
                memcpy(sum + m * dim, b->g + off, dim * sizeof *sum);
                m++;
            } else {
                float *dst = sum + (size_t)map[at] * dim;
                for (size_t j = 0; j < dim; j++)
                    dst[j] += b->g[off + j];
            }
        }
    }
    const double lr = optim_lr(&sp->optims[k], sp->version, s->o.total_steps);
    rc = m ? rows_push(sp->rows, sp->tables[k].id, ids, m, sum, sp->version + 1, lr, err) : 0;
done:
    free(ids);
    free(sum);
    free(map);
    return rc;
}

/* BSP: once every live trainer has ended the step, applies its rows (every
 * table), moves on to the next step and answers the row pulls that waited
 * for it. A table the row store refuses (out of memory) misses the step's
 * update and counts an error; the step still completes. */
static void step_maybe_done(server_t *s)
{
    sparse_t *sp = &s->sparse;
    int live = 0;
    if (s->live.halt == HALT_LOST)
        return;
    for (int u = 0; u < s->o.n_trainers; u++) {
        if (s->live.lost[u])
            continue;
        live++;
        if (!sp->tend[u])
            return;
    }
    if (!live)
        return;
    for (int k = 0; k < sp->n_tables; k++) {
        err_t e;
        if (apply_table(s, k, &e) != 0)
            s->stats.errors++;
    }
    for (int u = 0; u < s->o.n_trainers; u++) {
        sp->tend[u] = 0;
        rbuf_clear(&sp->tbuf[u]);
    }
    sp->version++;
    sparse_flush(s);
    cons_save_if_due(s); /* a checkpoint that waited for the step's rows */
}

/* Trainer t ends its row pushes of the step with the empty PUSH_ROWS h. */
static void end_step(server_t *s, int t)
{
    sparse_t *sp = &s->sparse;
    sp->tpos[t] = 0;
    sp->tstep[t]++;
    if (s->o.consistency == CONS_BSP) {
        sp->tend[t] = 1;
        step_maybe_done(s);
        return;
    }
    int64_t m = INT64_MAX; /* ASP: the steps every live trainer ended */
    for (int u = 0; u < s->o.n_trainers; u++)
        if (!s->live.lost[u] && sp->tstep[u] < m)
            m = sp->tstep[u];
    if (m != INT64_MAX && m > sp->version)
        sp->version = m;
}

/* Checks a PUSH_ROWS h from trainer t against the step and the order of
 * its pieces. Returns 0, or -1 with *code and err. */
static int check_push_step(const server_t *s, int t, const wire_hdr_t *h, int *code, err_t *err)
{
    const sparse_t *sp = &s->sparse;
    *code = WIRE_E_RANGE;
    if (!sp->rows)
        return err_set(err, "PUSH_ROWS of table %d: this server holds no sparse tables",
                       h->status);
    *code = WIRE_E_STATE;
    if (s->o.consistency == CONS_BSP && h->clock != sp->version)
        return err_set(err, "PUSH_ROWS for step %lld from trainer %d, but the rows are at step "
                       "%ld", (long long)h->clock, t, sp->version);
    if (s->o.consistency == CONS_BSP && sp->tend[t])
        return err_set(err, "PUSH_ROWS from trainer %d, which ended step %ld already", t,
                       sp->version);
    if (h->begin != sp->tpos[t])
        return err_set(err, "PUSH_ROWS from trainer %d at row position %llu, but %llu came "
                       "before in its step", t, (unsigned long long)h->begin,
                       (unsigned long long)sp->tpos[t]);
    return 0;
}

int sparse_push(server_t *s, const req_t *r, int *code, err_t *err)
{
    sparse_t *sp = &s->sparse;
    const wire_hdr_t *h = &r->h;
    const int t = r->t;
    if (check_push_step(s, t, h, code, err) != 0)
        return -1;
    if (h->begin == h->end) {
        end_step(s, t);
        return 0;
    }
    const int k = check_rows_req(s, r, code, err);
    if (k < 0)
        return -1;
    const size_t n = (size_t)(h->end - h->begin), dim = sp->tables[k].dim;
    const uint8_t *g = r->payload + 8 * n;
    *code = WIRE_E_INTERNAL;
    if (s->o.consistency == CONS_BSP) {
        if (rbuf_add(&sp->tbuf[t], k, sp->idbuf, n, g, dim) != 0)
            return err_set(err, "out of memory to keep %zu rows of trainer %d", n, t);
    } else {
        memcpy(sp->rowbuf, g, n * dim * sizeof *sp->rowbuf); /* aligned, little-endian host */
        const double lr = optim_lr(&sp->optims[k], (long)h->clock, s->o.total_steps);
        if (rows_push(sp->rows, sp->tables[k].id, sp->idbuf, n, sp->rowbuf, (long)h->clock + 1,
                      lr, err) != 0)
            return -1;
    }
    sp->tpos[t] = h->end;
    s->stats.pushes++;
    return 0;
}

void sparse_go_on(server_t *s)
{
    if (s->sparse.rows && s->o.consistency == CONS_BSP)
        step_maybe_done(s);
}

int sparse_save(server_t *s, long step, int delta, err_t *err)
{
    const server_saver_t *sv = &s->o.saver;
    if (!sv->write_rows)
        return err_set(err, "this server cannot write its sparse tables (no saver for them)");
    return sv->write_rows(sv->ctx, s->sparse.rows, s->o.index, s->o.n_servers, step, delta, err);
}

/* rows_load's filter: the rows server ctx owns. */
static int owns_row(void *ctx, uint32_t table, uint64_t row)
{
    const server_t *s = ctx;
    return rows_hash(table, row) % (uint64_t)s->o.n_servers == (uint64_t)s->o.index;
}

int server_load_rows(server_t *s, const char *path, err_t *err)
{
    if (!s->sparse.rows)
        return err_set(err, "%s: this job's servers hold no sparse tables", path);
    return rows_load(s->sparse.rows, path, owns_row, s, err);
}
