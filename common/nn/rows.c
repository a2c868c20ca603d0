/* rows.c - the row store of sparse embedding tables (see rows.h): per table
 * an open-addressing hash index (linear probing, backward-shift deletion)
 * over slots that live in chunks; the admission sketch; LRU eviction by
 * request stamps; full and delta files.
 *
 * A slot is a 16-byte header (row id, stamp, flags) followed by the row's
 * dim values and its optimizer state. A freed slot links the next free one
 * through its stamp field. A bucket of the index holds slot + 1 (0 = empty)
 * in its low b bits, where the index has 2^b buckets, and above them, as a
 * tag, the same bits of the row's index hash (32 - b of them, none once
 * b >= 32): a probe reads a slot's header only when the tags match, so a
 * lookup touches the row's slot and hardly any other (reading the slots of
 * the probe run was 82% of lookup's time, a cache miss each). slot + 1 fits
 * in b bits: slots are only added when none is free, so there are never
 * more than the rows held, at most 3/4 of the buckets.
 *
 * File format (little-endian, version 1):
 *   char  magic[8] = "PSTROWS\0"
 *   u32   version = 1
 *   u32   kind: 0 full, 1 delta
 *   u64   seed
 *   u32   clock (the store's request clock; stamps are of that clock)
 *   u32   n_tables, then per table:
 *         u32 id, u32 dim, u32 state floats per row, u32 optimizer id,
 *         u64 rows bound (0 unbounded), u32 admit_after
 *   u32   sketch depth (0: none), u32 sketch width, depth x width u8 counts
 *   u64   n_evicted, then n_evicted times: u32 table id, u64 row
 *         (rows evicted since the previous save and not held now; 0 in a full file)
 *   per table, in the order above: u64 n, then n times:
 *         u64 row, u32 stamp, f32 value[dim], f32 state[state floats]
 *   u32   CRC-32 (zlib) of every byte before it
 */
#include "common/nn/rows.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common/util/fsutil.h"
#include "common/util/hash.h"
#include "common/util/le.h"
#include "common/util/rng.h"

#define ROWS_VERSION 1
#define KIND_FULL 0
#define KIND_DELTA 1
static const uint8_t MAGIC[8] = "PSTROWS"; /* 7 letters and the NUL */

#define F_LIVE 1u  /* the slot holds a row */
#define F_DIRTY 2u /* changed since the last save */
#define NO_SLOT UINT32_MAX
#define PENDING (UINT32_MAX - 1)    /* a request's row to be created */
#define SLOTS_MAX (UINT32_MAX - 2u) /* slots per table: the index holds slot + 1 */
#define INDEX_MIN 64                /* buckets of a new index */
#define CLOCK_MAX (UINT32_MAX - 1u) /* the clock is rebased before it gets here */
#define EVICT_BINS 1024             /* histogram bins of the eviction scan */
#define HDR_BYTES 16
/* Random streams of row initial values: "RW" in the top 16 bits, then the
 * table id, then the block of 4 values (Philox gives 4 words per counter). */
#define ROWS_STREAM(table, block) (0x5257000000000000ull | (uint64_t)(table) << 16 | (uint64_t)(block))
#define INDEX_SALT 0x8f1bbcdcca62c1d6ull
#define SKETCH_SALT 0x5a827999ed9eba1full

typedef struct {
    uint32_t row_lo, row_hi, stamp, flags;
} hdr_t;

typedef struct {
    rows_table_t cfg;
    optim_params_t optim;
    float scale;          /* initial values in [-scale, scale] */
    size_t state;         /* state floats per row */
    size_t stride;        /* bytes per slot */
    unsigned char **chunks;
    size_t n_chunks, cap_chunks;
    uint32_t n_slots;     /* slots ever handed out: the next fresh one */
    uint32_t free_head;   /* first freed slot, or NO_SLOT */
    size_t n_free;
    uint32_t *index;      /* mask + 1 buckets: tag | (slot + 1), 0 empty */
    size_t mask;
    uint32_t slot_mask;   /* a bucket's slot bits: mask, at most 32 bits */
    rows_stats_t st;      /* st.rows: the rows held */
    /* The last pull's ids and slots (a trainer pushes the rows it pulled):
     * valid while no row of the store was removed since (s->removals) */
    uint64_t *pulled_ids;
    uint32_t *pulled_slots;
    size_t n_pulled, cap_pulled;
    uint64_t pulled_at;   /* s->removals when they were found; UINT64_MAX: none */
} table_t;

typedef struct {
    uint32_t table;
    uint64_t row;
} rowkey_t;

struct rows_t {
    table_t *t;
    int n_tables;
    uint64_t seed;
    size_t max_rows, count;
    uint32_t clock, floor; /* floor: no held row has an older stamp */
    uint8_t *sketch;       /* ROWS_SKETCH_DEPTH x sketch_w, or NULL without admission */
    size_t sketch_w;
    rowkey_t *ev;          /* rows evicted since the last save */
    size_t n_ev, cap_ev;
    int ev_lost;           /* an eviction could not be recorded */
    uint64_t removals;     /* rows removed so far (a slot may then hold another row) */
    uint32_t *slots;       /* scratch: a request's slots, cap_scratch */
    uint32_t *set;         /* scratch: the duplicate check, 2 cap_scratch rounded up */
    size_t cap_scratch, cap_set;
};

/* ---- hashing ---------------------------------------------------------- */

uint64_t rows_hash(uint32_t table, uint64_t row)
{
    /* splitmix64's finaliser over the row moved by the table */
    uint64_t z = row + 0x9e3779b97f4a7c15ull * ((uint64_t)table + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- slots and the index ---------------------------------------------- */

static inline hdr_t *slot_hdr(const table_t *t, uint32_t sl)
{
    return (hdr_t *)(t->chunks[sl / ROWS_CHUNK] + (size_t)(sl % ROWS_CHUNK) * t->stride);
}

static inline float *slot_val(const table_t *t, uint32_t sl)
{
    return (float *)(t->chunks[sl / ROWS_CHUNK] + (size_t)(sl % ROWS_CHUNK) * t->stride +
                     HDR_BYTES);
}

static inline uint64_t hdr_row(const hdr_t *h)
{
    return (uint64_t)h->row_hi << 32 | h->row_lo;
}

static inline uint64_t index_hash(uint64_t row)
{
    return hash_mix64(row ^ INDEX_SALT);
}

static inline size_t home(const table_t *t, uint64_t row)
{
    return (size_t)index_hash(row) & t->mask;
}

/* The tag of index hash h: its high word's bits above the slot bits. */
static inline uint32_t tag_of(const table_t *t, uint64_t h)
{
    return (uint32_t)(h >> 32) & ~t->slot_mask;
}

/* The slot of row, whose index hash is h, or NO_SLOT; *pos (if not NULL)
 * gets its bucket, or the empty bucket where it would go. */
static uint32_t probe(const table_t *t, uint64_t row, uint64_t h, size_t *pos)
{
    const uint32_t tag = tag_of(t, h);
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        uint32_t e = t->index[i], sl = (e & t->slot_mask) - 1;
        if (!e || ((e & ~t->slot_mask) == tag && hdr_row(slot_hdr(t, sl)) == row)) {
            if (pos)
                *pos = i;
            return e ? sl : NO_SLOT;
        }
    }
}

/* probe() with row's hash. */
static uint32_t lookup(const table_t *t, uint64_t row, size_t *pos)
{
    return probe(t, row, index_hash(row), pos);
}

/* A request's lookups miss the cache twice each (the index bucket, then the
 * slot), so find_slots asks for both ahead of time: the bucket of the row
 * PREFETCH_FAR requests ahead, and the slot that the bucket of the row
 * PREFETCH_NEAR ahead names (read by then). */
#define PREFETCH_FAR 16
#define PREFETCH_NEAR 8
/* GCC 12 takes a function whose only effect is a prefetch for one without
 * effects (local-pure-const) and drops its calls, unless it was inlined
 * first: so these two are always inlined. */
#define PREFETCH_FN static inline __attribute__((always_inline)) void

PREFETCH_FN prefetch_bucket(const table_t *t, uint64_t row)
{
    __builtin_prefetch(&t->index[home(t, row)]);
}

/* Prefetches slot sl, header to last value. */
PREFETCH_FN prefetch_slot_at(const table_t *t, uint32_t sl)
{
    const unsigned char *p = (const unsigned char *)slot_hdr(t, sl);
    __builtin_prefetch(p);
    __builtin_prefetch(p + t->stride - 1);
}

/* Prefetches the slot of the bucket row hashes to when that bucket's tag
 * is row's: the first of its probe run. */
PREFETCH_FN prefetch_slot(const table_t *t, uint64_t row)
{
    const uint64_t h = index_hash(row);
    const uint32_t e = t->index[(size_t)h & t->mask];
    if (e && (e & ~t->slot_mask) == tag_of(t, h))
        prefetch_slot_at(t, (e & t->slot_mask) - 1);
}

/* Puts slot sl of row into the index (room reserved). */
static void index_put(table_t *t, uint64_t row, uint32_t sl)
{
    const uint64_t h = index_hash(row);
    size_t pos;
    probe(t, row, h, &pos);
    t->index[pos] = tag_of(t, h) | (sl + 1);
}

/* Sets the index to cap (a power of two) empty buckets. */
static void index_set(table_t *t, uint32_t *index, size_t cap)
{
    t->index = index;
    t->mask = cap - 1;
    t->slot_mask = t->mask > UINT32_MAX ? UINT32_MAX : (uint32_t)t->mask;
}

/* Grows the index so that `extra` more rows keep its load <= 3/4. Returns 0,
 * or -1 (out of memory; the index is unchanged). */
static int index_reserve(table_t *t, size_t extra)
{
    size_t cap = t->mask + 1, need = t->st.rows + extra;
    if (need <= cap / 4 * 3)
        return 0;
    while (need > cap / 4 * 3)
        cap *= 2;
    uint32_t *ni = calloc(cap, sizeof *ni);
    if (!ni)
        return -1;
    uint32_t *old = t->index, old_slots = t->slot_mask;
    size_t old_cap = t->mask + 1;
    index_set(t, ni, cap);
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) {
            uint32_t sl = (old[i] & old_slots) - 1;
            index_put(t, hdr_row(slot_hdr(t, sl)), sl);
        }
    free(old);
    return 0;
}

/* Removes bucket i, moving later entries of its run back (no tombstones). */
static void index_delete(table_t *t, size_t i)
{
    for (size_t j = i;;) {
        j = (j + 1) & t->mask;
        uint32_t e = t->index[j];
        if (!e)
            break;
        size_t k = home(t, hdr_row(slot_hdr(t, (e & t->slot_mask) - 1)));
        /* e may fill i unless its home lies cyclically in (i, j] */
        if (((j - k) & t->mask) >= ((j - i) & t->mask)) {
            t->index[i] = e;
            i = j;
        }
    }
    t->index[i] = 0;
}

/* Allocates chunks so that `extra` more rows have slots. Returns 0, -1 when
 * out of memory, -2 past SLOTS_MAX (nothing is freed: chunks are kept). */
static int chunks_reserve(table_t *t, size_t extra)
{
    size_t fresh = extra > t->n_free ? extra - t->n_free : 0;
    if ((size_t)t->n_slots + fresh > SLOTS_MAX)
        return -2;
    size_t need = ((size_t)t->n_slots + fresh + ROWS_CHUNK - 1) / ROWS_CHUNK;
    if (need > t->cap_chunks) {
        size_t cap = t->cap_chunks ? t->cap_chunks : 8;
        while (cap < need)
            cap *= 2;
        unsigned char **nc = realloc(t->chunks, cap * sizeof *nc);
        if (!nc)
            return -1;
        t->chunks = nc;
        t->cap_chunks = cap;
    }
    while (t->n_chunks < need) {
        if (!(t->chunks[t->n_chunks] = malloc(ROWS_CHUNK * t->stride)))
            return -1;
        t->n_chunks++;
    }
    return 0;
}

/* The initial value of a row: uniform in [-scale, scale] from Philox, 4
 * values per counter; the counter is the row id. */
static void initial_values(uint64_t seed, const table_t *t, uint64_t row, float *out)
{
    const size_t dim = t->cfg.dim;
    for (size_t b = 0; b * 4 < dim; b++) {
        uint32_t w[4];
        rng_philox(seed, ROWS_STREAM(t->cfg.id, b), row, w);
        for (size_t k = 0; k < 4 && b * 4 + k < dim; k++) {
            double u = ((double)w[k] + 0.5) * (1.0 / 4294967296.0); /* (0, 1) */
            out[b * 4 + k] = (float)((2.0 * u - 1.0) * t->scale);
        }
    }
}

/* Creates row (not held; room reserved) with its initial value and state,
 * stamped now and dirty. Returns its slot. */
static uint32_t row_create(rows_t *s, table_t *t, uint64_t row)
{
    uint32_t sl = t->free_head;
    if (sl != NO_SLOT) {
        t->free_head = slot_hdr(t, sl)->stamp;
        t->n_free--;
    } else {
        sl = t->n_slots++;
    }
    hdr_t *h = slot_hdr(t, sl);
    *h = (hdr_t){(uint32_t)row, (uint32_t)(row >> 32), s->clock, F_LIVE | F_DIRTY};
    float *v = slot_val(t, sl);
    initial_values(s->seed, t, row, v);
    optim_row_state_init(&t->optim, v + t->cfg.dim, t->cfg.dim);
    index_put(t, row, sl);
    t->st.rows++;
    t->st.created++;
    s->count++;
    return sl;
}

/* Removes the row in slot sl (held) and frees the slot. */
static void row_remove(rows_t *s, table_t *t, uint32_t sl)
{
    hdr_t *h = slot_hdr(t, sl);
    size_t pos;
    lookup(t, hdr_row(h), &pos);
    index_delete(t, pos);
    h->flags = 0;
    h->stamp = t->free_head;
    t->free_head = sl;
    t->n_free++;
    t->st.rows--;
    s->count--;
    s->removals++;
}

/* ---- the store -------------------------------------------------------- */

static table_t *find_table(const rows_t *s, uint32_t id)
{
    for (int i = 0; i < s->n_tables; i++)
        if (s->t[i].cfg.id == id)
            return &s->t[i];
    return NULL;
}

/* Checks table i's settings and fills its derived fields. Returns 0 or -1. */
static int table_setup(table_t *t, const rows_table_t *c, const rows_opts_t *o, err_t *err)
{
    t->cfg = *c;
    t->pulled_at = UINT64_MAX;
    const optim_params_t *op = c->optim ? c->optim : o->optim;
    if (!op || !op->kind)
        return err_set(err, "table %u: no optimizer", c->id);
    t->optim = *op;
    t->cfg.optim = NULL;
    if (!optim_has_rows(op)) {
        char names[256] = "";
        const optim_kind_t *k;
        for (int i = 0; (k = optim_at(i)); i++)
            if (k->update_row) {
                size_t at = strlen(names);
                snprintf(names + at, sizeof names - at, "%s%s", at ? ", " : "", k->name);
            }
        return err_set(err, "table %u: optimizer %s has no row form (these have: %s)", c->id,
                       op->kind->name, names);
    }
    if (c->dim < 1 || c->dim > ROWS_DIM_MAX)
        return err_set(err, "table %u: dim %zu out of range [1, %d]", c->id, c->dim, ROWS_DIM_MAX);
    if (c->admit_after > ROWS_ADMIT_MAX)
        return err_set(err, "table %u: admit_after %u is more than %d", c->id, c->admit_after,
                       ROWS_ADMIT_MAX);
    if (!(c->init_scale >= 0.0) || !isfinite(c->init_scale))
        return err_set(err, "table %u: init_scale %g is not a finite number >= 0", c->id,
                       c->init_scale);
    t->scale = (float)(c->init_scale > 0 ? c->init_scale
                       : c->rows ? sqrt(1.0 / (double)c->rows) : sqrt(1.0 / (double)c->dim));
    t->state = optim_row_slots(op, c->dim);
    t->stride = HDR_BYTES + (c->dim + t->state) * sizeof(float);
    t->free_head = NO_SLOT;
    uint32_t *index = calloc(INDEX_MIN, sizeof *index);
    if (!index)
        return err_set(err, "table %u: out of memory", c->id);
    index_set(t, index, INDEX_MIN);
    return 0;
}

rows_t *rows_new(const rows_table_t *tables, int n_tables, const rows_opts_t *o, err_t *err)
{
    if (n_tables < 1 || n_tables > ROWS_TABLES_MAX || !tables) {
        err_set(err, "row store: %d tables (1 to %d)", n_tables, ROWS_TABLES_MAX);
        return NULL;
    }
    size_t w = o->sketch_width ? o->sketch_width : ROWS_SKETCH_WIDTH;
    if (w < 64 || (w & (w - 1)) || w > ((size_t)1 << 30)) {
        err_set(err, "row store: sketch width %zu is not a power of two in [64, 2^30]", w);
        return NULL;
    }
    rows_t *s = calloc(1, sizeof *s);
    if (!s || !(s->t = calloc((size_t)n_tables, sizeof *s->t))) {
        free(s);
        err_set(err, "row store: out of memory");
        return NULL;
    }
    s->seed = o->seed;
    s->max_rows = o->max_rows;
    int admission = 0;
    for (int i = 0; i < n_tables; i++) {
        s->n_tables = i + 1;
        if (table_setup(&s->t[i], &tables[i], o, err) != 0)
            goto err;
        for (int j = 0; j < i; j++)
            if (tables[j].id == tables[i].id) {
                err_set(err, "table %u: listed twice", tables[i].id);
                goto err;
            }
        admission |= tables[i].admit_after > 1;
    }
    if (admission) {
        s->sketch_w = w;
        if (!(s->sketch = calloc(ROWS_SKETCH_DEPTH * w, 1))) {
            err_set(err, "row store: out of memory for the admission sketch (%zu bytes)",
                    ROWS_SKETCH_DEPTH * w);
            goto err;
        }
    }
    return s;
err:
    rows_destroy(&s);
    return NULL;
}

void rows_destroy(rows_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rows_t *s = *self_p;
    for (int i = 0; s->t && i < s->n_tables; i++) {
        for (size_t c = 0; c < s->t[i].n_chunks; c++)
            free(s->t[i].chunks[c]);
        free(s->t[i].chunks);
        free(s->t[i].index);
        free(s->t[i].pulled_ids);
        free(s->t[i].pulled_slots);
    }
    free(s->t);
    free(s->sketch);
    free(s->ev);
    free(s->slots);
    free(s->set);
    free(s);
    *self_p = NULL;
}

size_t rows_count(const rows_t *s)
{
    return s->count;
}

size_t rows_bytes(const rows_t *s)
{
    size_t b = sizeof *s + (size_t)s->n_tables * sizeof *s->t;
    for (int i = 0; i < s->n_tables; i++) {
        const table_t *t = &s->t[i];
        b += t->n_chunks * ROWS_CHUNK * t->stride + t->cap_chunks * sizeof *t->chunks;
        b += (t->mask + 1) * sizeof *t->index;
        b += t->cap_pulled * (sizeof *t->pulled_ids + sizeof *t->pulled_slots);
    }
    b += ROWS_SKETCH_DEPTH * s->sketch_w * (s->sketch != NULL);
    b += s->cap_ev * sizeof *s->ev + s->cap_scratch * sizeof *s->slots + s->cap_set * sizeof *s->set;
    return b;
}

size_t rows_dirty(const rows_t *s)
{
    size_t n = 0;
    for (int i = 0; i < s->n_tables; i++)
        for (uint32_t sl = 0; sl < s->t[i].n_slots; sl++)
            n += (slot_hdr(&s->t[i], sl)->flags & (F_LIVE | F_DIRTY)) == (F_LIVE | F_DIRTY);
    return n;
}

int rows_stats(const rows_t *s, uint32_t table, rows_stats_t *out)
{
    const table_t *t = find_table(s, table);
    if (!t)
        return -1;
    *out = t->st;
    return 0;
}

int rows_n_tables(const rows_t *s)
{
    return s->n_tables;
}

uint32_t rows_table_id(const rows_t *s, int i)
{
    return s->t[i].cfg.id;
}

size_t rows_dim(const rows_t *s, uint32_t table)
{
    const table_t *t = find_table(s, table);
    return t ? t->cfg.dim : 0;
}

size_t rows_state_len(const rows_t *s, uint32_t table)
{
    const table_t *t = find_table(s, table);
    return t ? t->state : 0;
}

int rows_initial(const rows_t *s, uint32_t table, uint64_t row, float *out, err_t *err)
{
    const table_t *t = find_table(s, table);
    if (!t)
        return err_set(err, "table %u: no such table", table);
    if (t->cfg.rows && row >= t->cfg.rows)
        return err_set(err, "table %u: row %llu out of range (the table has %llu rows)", table,
                       (unsigned long long)row, (unsigned long long)t->cfg.rows);
    initial_values(s->seed, t, row, out);
    return 0;
}

int rows_peek(const rows_t *s, uint32_t table, uint64_t row, float *value, float *state)
{
    const table_t *t = find_table(s, table);
    if (!t)
        return -1;
    uint32_t sl = lookup(t, row, NULL);
    if (sl == NO_SLOT)
        return 0;
    const float *v = slot_val(t, sl);
    if (value)
        memcpy(value, v, t->cfg.dim * sizeof *v);
    if (state && t->state)
        memcpy(state, v + t->cfg.dim, t->state * sizeof *v);
    return 1;
}

/* ---- admission -------------------------------------------------------- */

/* The counter of sketch row d for a key hash h (double hashing). */
static inline uint8_t *sketch_cell(const rows_t *s, uint64_t h, int d)
{
    uint32_t h1 = (uint32_t)h, h2 = (uint32_t)(h >> 32) | 1u;
    return s->sketch + (size_t)d * s->sketch_w + ((h1 + (uint32_t)d * h2) & (s->sketch_w - 1));
}

/* The sightings counted for (table, row): never fewer than the truth. */
static unsigned sketch_count(const rows_t *s, uint32_t table, uint64_t row)
{
    const uint64_t h = hash_mix64(rows_hash(table, row) ^ SKETCH_SALT);
    unsigned m = ROWS_ADMIT_MAX;
    for (int d = 0; d < ROWS_SKETCH_DEPTH; d++) {
        unsigned c = *sketch_cell(s, h, d);
        m = c < m ? c : m;
    }
    return m;
}

/* Counts one sighting (conservative update: only the counters at the
 * minimum grow) and returns the new count. */
static unsigned sketch_add(rows_t *s, uint32_t table, uint64_t row)
{
    const uint64_t h = hash_mix64(rows_hash(table, row) ^ SKETCH_SALT);
    unsigned m = sketch_count(s, table, row);
    if (m < ROWS_ADMIT_MAX)
        m++;
    for (int d = 0; d < ROWS_SKETCH_DEPTH; d++) {
        uint8_t *c = sketch_cell(s, h, d);
        if (*c < m)
            *c = (uint8_t)m;
    }
    return m;
}

/* Whether a row not held may be created: at its admit_after-th pull
 * (counting this one when `count` is set, a pull) or after it (a push). */
static int admitted(rows_t *s, const table_t *t, uint64_t row, int count)
{
    if (t->cfg.admit_after <= 1)
        return 1;
    unsigned c = count ? sketch_add(s, t->cfg.id, row) : sketch_count(s, t->cfg.id, row);
    return c >= t->cfg.admit_after;
}

/* ---- the clock and eviction ------------------------------------------- */

/* Runs the statement that follows once for every held row: tp its table, sl
 * its slot, h its header (table by table, slot by slot). */
#define FOR_EACH_HELD(s, tp, sl, h)                                                                \
    for (table_t *tp = (s)->t; tp < (s)->t + (s)->n_tables; tp++)                                  \
        for (uint32_t sl = 0; sl < tp->n_slots; sl++)                                              \
            for (hdr_t *h = slot_hdr(tp, sl); h && (h->flags & F_LIVE); h = NULL)

/* Moves the stamps down before the clock runs out (once in 2^32 requests):
 * by the oldest held stamp, then, if the held rows still span more than half
 * the clock, halved. Order is kept, except that rows touched within a tick
 * of each other may come to share a stamp after a halving. */
static void clock_rebase(rows_t *s)
{
    uint32_t shift = s->clock;
    FOR_EACH_HELD(s, t, sl, h)
        shift = h->stamp < shift ? h->stamp : shift;
    const int halve = s->clock - shift > CLOCK_MAX / 2;
    FOR_EACH_HELD(s, t, sl, h) {
        h->stamp -= shift;
        if (halve)
            h->stamp /= 2;
    }
    s->clock -= shift;
    if (halve)
        s->clock /= 2;
    s->floor = 0;
}

/* One tick of the clock: a request begins. */
static void clock_tick(rows_t *s)
{
    if (s->clock >= CLOCK_MAX)
        clock_rebase(s);
    s->clock++;
}

void rows_clock_advance(rows_t *s, uint64_t ticks)
{
    while (ticks > 0) {
        if (s->clock >= CLOCK_MAX)
            clock_rebase(s);
        uint64_t step = CLOCK_MAX - s->clock < ticks ? CLOCK_MAX - s->clock : ticks;
        s->clock += (uint32_t)step;
        ticks -= step;
    }
}

/* Records an evicted row for the next delta (or notes that it could not). */
static void evicted_note(rows_t *s, uint32_t table, uint64_t row)
{
    if (s->n_ev == s->cap_ev) {
        size_t cap = s->cap_ev ? 2 * s->cap_ev : 1024;
        rowkey_t *ne = realloc(s->ev, cap * sizeof *ne);
        if (!ne) {
            s->ev_lost = 1;
            return;
        }
        s->ev = ne;
        s->cap_ev = cap;
    }
    s->ev[s->n_ev++] = (rowkey_t){table, row};
}

/* Counts the held rows of age (clock - stamp) in [lo, hi] into hist by
 * (age - lo) / width. */
static void age_histogram(rows_t *s, uint32_t lo, uint32_t hi, uint64_t width, size_t *hist)
{
    memset(hist, 0, EVICT_BINS * sizeof *hist);
    FOR_EACH_HELD(s, t, sl, h) {
        uint32_t age = s->clock - h->stamp;
        if (age >= lo && age <= hi)
            hist[(age - lo) / width]++;
    }
}

/* Evicts at least `need` rows (at least max_rows / ROWS_EVICT_DIV when
 * there are that many), oldest stamps first; rows stamped by the current
 * request (age 0) are never evicted. Exact LRU at the clock's resolution:
 * a histogram of ages narrowed until one bin is one age, ties broken by
 * slot order. */
static void evict(rows_t *s, size_t need)
{
    size_t want = s->max_rows / ROWS_EVICT_DIV > need ? s->max_rows / ROWS_EVICT_DIV : need;
    size_t hist[EVICT_BINS], above = 0, at_cut = 0;
    uint32_t lo = 1, hi = s->clock - s->floor, cut = 0;
    while (lo <= hi) {
        uint64_t width = ((uint64_t)hi - lo) / EVICT_BINS + 1;
        age_histogram(s, lo, hi, width, hist);
        size_t acc = above;
        int b = EVICT_BINS - 1;
        for (; b >= 0 && acc + hist[b] < want; b--)
            acc += hist[b];
        if (b < 0) { /* fewer than want: every row of age >= lo goes */
            cut = lo - 1;
            break;
        }
        uint32_t nlo = lo + (uint32_t)((uint64_t)b * width);
        uint64_t nhi = (uint64_t)nlo + width - 1;
        above = acc;
        if (width == 1) {
            cut = nlo;
            at_cut = want - acc;
            break;
        }
        lo = nlo;
        hi = nhi < hi ? (uint32_t)nhi : hi;
    }
    FOR_EACH_HELD(s, t, sl, h) {
        uint32_t age = s->clock - h->stamp;
        if (age > cut || (age == cut && at_cut > 0 && age > 0)) {
            if (age == cut)
                at_cut--;
            evicted_note(s, t->cfg.id, hdr_row(h));
            t->st.evicted++;
            row_remove(s, t, sl);
        }
    }
    s->floor = s->clock - cut;
}

/* ---- pull and push ---------------------------------------------------- */

/* Checks a request (the table, ids in bound, its size) and reserves what it
 * may need (index, chunks, scratch): after it succeeds nothing can fail. */
static int request_check(rows_t *s, table_t *t, uint32_t table, const uint64_t *ids, size_t n,
                         const char *what, err_t *err)
{
    if (!t)
        return err_set(err, "%s: table %u: no such table", what, table);
    if (n && !ids)
        return err_set(err, "%s: table %u: no ids", what, table);
    if (n > SLOTS_MAX || (s->max_rows && n > s->max_rows))
        return err_set(err, "%s: table %u: %zu rows in one request, more than max_rows %zu", what,
                       table, n, s->max_rows);
    for (size_t i = 0; t->cfg.rows && i < n; i++)
        if (ids[i] >= t->cfg.rows)
            return err_set(err, "%s: table %u: row %llu out of range (the table has %llu rows)",
                           what, table, (unsigned long long)ids[i],
                           (unsigned long long)t->cfg.rows);
    if (n > s->cap_scratch) {
        uint32_t *ns = realloc(s->slots, n * sizeof *ns);
        if (!ns)
            return err_set(err, "%s: table %u: out of memory", what, table);
        s->slots = ns;
        s->cap_scratch = n;
    }
    int rc = index_reserve(t, n) != 0 ? -1 : chunks_reserve(t, n);
    if (rc == -2)
        return err_set(err, "%s: table %u: more than %u rows", what, table, SLOTS_MAX);
    if (rc != 0)
        return err_set(err, "%s: table %u: out of memory for %zu more rows", what, table, n);
    return 0;
}

/* Fails if an id appears twice in ids[0..n) (a push). Returns 0 or -1. */
static int check_unique(rows_t *s, uint32_t table, const uint64_t *ids, size_t n, err_t *err)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    if (cap > s->cap_set) {
        uint32_t *ns = realloc(s->set, cap * sizeof *ns);
        if (!ns)
            return err_set(err, "push: table %u: out of memory", table);
        s->set = ns;
        s->cap_set = cap;
    }
    memset(s->set, 0, cap * sizeof *s->set);
    for (size_t i = 0; i < n; i++) {
        size_t j = (size_t)hash_mix64(ids[i]) & (cap - 1);
        for (; s->set[j]; j = (j + 1) & (cap - 1))
            if (ids[s->set[j] - 1] == ids[i])
                return err_set(err, "push: table %u: row %llu appears twice", table,
                               (unsigned long long)ids[i]);
        s->set[j] = (uint32_t)i + 1;
    }
    return 0;
}

/* Creates the rows of s->slots marked PENDING (need of them), evicting
 * first when the store would hold more than max_rows. */
static void create_pending(rows_t *s, table_t *t, const uint64_t *ids, size_t n, size_t need)
{
    if (s->max_rows && s->count + need > s->max_rows)
        evict(s, s->count + need - s->max_rows);
    for (size_t i = 0; i < n; i++) {
        if (s->slots[i] != PENDING)
            continue;
        uint32_t sl = lookup(t, ids[i], NULL); /* a pull may name a new row twice */
        s->slots[i] = sl != NO_SLOT ? sl : row_create(s, t, ids[i]);
    }
}

/* The slots of a request's rows into s->slots: a held row's (stamped with
 * this request's tick before any eviction), a new one's for each row now
 * admitted (pull: this pull is a sighting; created, evicting if need be),
 * NO_SLOT for a row not admitted (push: its gradient is dropped, counted). */
static void find_slots(rows_t *s, table_t *t, const uint64_t *ids, size_t n, int pull)
{
    size_t need = 0;
    for (size_t i = 0; i < n && i < PREFETCH_FAR; i++)
        prefetch_bucket(t, ids[i]);
    for (size_t i = 0; i < n && i < PREFETCH_NEAR; i++)
        prefetch_slot(t, ids[i]);
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH_FAR < n)
            prefetch_bucket(t, ids[i + PREFETCH_FAR]);
        if (i + PREFETCH_NEAR < n)
            prefetch_slot(t, ids[i + PREFETCH_NEAR]);
        uint32_t sl = lookup(t, ids[i], NULL);
        if (sl != NO_SLOT)
            slot_hdr(t, sl)->stamp = s->clock;
        else if (admitted(s, t, ids[i], pull))
            sl = PENDING, need++;
        if (!pull)
            t->st.dropped += sl == NO_SLOT;
        s->slots[i] = sl;
    }
    if (need)
        create_pending(s, t, ids, n, need);
}

/* Keeps the slots a pull found (s->slots) for a push of the same rows.
 * Only without admission: a push may admit a row its pull did not (the
 * sketch counts other rows' sightings too), which the pull's NO_SLOT would
 * miss. Out of memory, nothing is kept (the push looks the rows up). */
static void keep_pulled(rows_t *s, table_t *t, const uint64_t *ids, size_t n)
{
    t->pulled_at = UINT64_MAX;
    if (t->cfg.admit_after > 1 || n == 0) /* (a push of none has nothing to find) */
        return;
    if (n > t->cap_pulled) {
        uint64_t *ni = realloc(t->pulled_ids, n * sizeof *ni);
        if (ni)
            t->pulled_ids = ni;
        uint32_t *ns = realloc(t->pulled_slots, n * sizeof *ns);
        if (ns)
            t->pulled_slots = ns;
        if (!ni || !ns)
            return;
        t->cap_pulled = n;
    }
    memcpy(t->pulled_ids, ids, n * sizeof *ids);
    memcpy(t->pulled_slots, s->slots, n * sizeof *s->slots);
    t->n_pulled = n;
    t->pulled_at = s->removals;
}

/* The slots of a push's rows into s->slots: the last pull's when it named
 * the same rows and no row was removed since (no lookups), else found. */
static void push_slots(rows_t *s, table_t *t, const uint64_t *ids, size_t n)
{
    if (t->pulled_at != s->removals || n != t->n_pulled ||
        memcmp(ids, t->pulled_ids, n * sizeof *ids) != 0) {
        find_slots(s, t, ids, n, 0);
        return;
    }
    memcpy(s->slots, t->pulled_slots, n * sizeof *s->slots);
}

int rows_pull(rows_t *s, uint32_t table, const uint64_t *ids, size_t n, float *out, err_t *err)
{
    table_t *t = find_table(s, table);
    if (request_check(s, t, table, ids, n, "pull", err) != 0)
        return -1;
    if (n && !out)
        return err_set(err, "pull: table %u: no output buffer", table);
    clock_tick(s);
    const size_t dim = t->cfg.dim;
    find_slots(s, t, ids, n, 1);
    keep_pulled(s, t, ids, n);
    for (size_t i = 0; i < n; i++) {
        if (s->slots[i] == NO_SLOT)
            memset(out + i * dim, 0, dim * sizeof *out);
        else
            memcpy(out + i * dim, slot_val(t, s->slots[i]), dim * sizeof *out);
    }
    return 0;
}

int rows_push(rows_t *s, uint32_t table, const uint64_t *ids, size_t n, const float *grads,
              long step, double lr, err_t *err)
{
    table_t *t = find_table(s, table);
    if (request_check(s, t, table, ids, n, "push", err) != 0 ||
        check_unique(s, table, ids, n, err) != 0)
        return -1;
    if (n && !grads)
        return err_set(err, "push: table %u: no gradients", table);
    if (step < 1)
        return err_set(err, "push: table %u: step %ld (steps count from 1)", table, step);
    clock_tick(s);
    const size_t dim = t->cfg.dim;
    push_slots(s, t, ids, n);
    for (size_t i = 0; i < n; i++) {
        /* the slots a reused pull found have left the cache since */
        if (i + PREFETCH_NEAR < n && s->slots[i + PREFETCH_NEAR] != NO_SLOT)
            prefetch_slot_at(t, s->slots[i + PREFETCH_NEAR]);
        if (s->slots[i] == NO_SLOT)
            continue;
        hdr_t *h = slot_hdr(t, s->slots[i]);
        h->stamp = s->clock;
        h->flags |= F_DIRTY;
        float *v = slot_val(t, s->slots[i]);
        optim_update_row(&t->optim, v, grads + i * dim, v + dim, dim, step, lr);
    }
    return 0;
}

/* ---- saving ----------------------------------------------------------- */

typedef struct {
    fs_atomic_t *f;
    uLong crc;
    int failed;
    err_t *err;
} writer_t;

static void w_bytes(writer_t *w, const void *p, size_t n)
{
    const size_t piece = (size_t)1 << 30; /* zlib's crc32 takes a 32-bit length */
    for (size_t off = 0; off < n && !w->failed; off += piece) {
        size_t k = n - off < piece ? n - off : piece;
        w->crc = crc32(w->crc, (const Bytef *)p + off, (uInt)k);
    }
    if (!w->failed && fs_atomic_write(w->f, p, n, w->err) != 0)
        w->failed = 1;
}

static void w_u32(writer_t *w, uint32_t v)
{
    uint8_t b[4];
    le_store32(b, v);
    w_bytes(w, b, sizeof b);
}

static void w_u64(writer_t *w, uint64_t v)
{
    uint8_t b[8];
    le_store64(b, v);
    w_bytes(w, b, sizeof b);
}

static void w_floats(writer_t *w, const float *p, size_t n)
{
#if LE_HOST
    w_bytes(w, p, n * sizeof *p);
#else
    uint8_t b[4096];
    for (size_t off = 0; off < n; off += sizeof b / 4) {
        size_t k = n - off < sizeof b / 4 ? n - off : sizeof b / 4;
        le_store_floats(b, p + off, k);
        w_bytes(w, b, 4 * k);
    }
#endif
}

/* The header and the tables' settings. */
static void write_head(writer_t *w, const rows_t *s, int kind)
{
    w_bytes(w, MAGIC, sizeof MAGIC);
    w_u32(w, ROWS_VERSION);
    w_u32(w, (uint32_t)kind);
    w_u64(w, s->seed);
    w_u32(w, s->clock);
    w_u32(w, (uint32_t)s->n_tables);
    for (int i = 0; i < s->n_tables; i++) {
        const table_t *t = &s->t[i];
        w_u32(w, t->cfg.id);
        w_u32(w, (uint32_t)t->cfg.dim);
        w_u32(w, (uint32_t)t->state);
        w_u32(w, (uint32_t)t->optim.kind->id);
        w_u64(w, t->cfg.rows);
        w_u32(w, t->cfg.admit_after);
    }
    w_u32(w, s->sketch ? ROWS_SKETCH_DEPTH : 0);
    w_u32(w, s->sketch ? (uint32_t)s->sketch_w : 0);
    if (s->sketch)
        w_bytes(w, s->sketch, ROWS_SKETCH_DEPTH * s->sketch_w);
}

/* The evicted rows (a delta: those not held again) and the rows (a delta:
 * the dirty ones), table by table. */
static void write_rows(writer_t *w, rows_t *s, int delta)
{
    uint64_t n_ev = 0;
    for (size_t i = 0; delta && i < s->n_ev; i++)
        n_ev += lookup(find_table(s, s->ev[i].table), s->ev[i].row, NULL) == NO_SLOT;
    w_u64(w, n_ev);
    for (size_t i = 0; delta && i < s->n_ev; i++)
        if (lookup(find_table(s, s->ev[i].table), s->ev[i].row, NULL) == NO_SLOT) {
            w_u32(w, s->ev[i].table);
            w_u64(w, s->ev[i].row);
        }
    const uint32_t want = delta ? F_LIVE | F_DIRTY : F_LIVE;
    for (int i = 0; i < s->n_tables; i++) {
        const table_t *t = &s->t[i];
        uint64_t n = 0;
        for (uint32_t sl = 0; sl < t->n_slots; sl++)
            n += (slot_hdr(t, sl)->flags & want) == want;
        w_u64(w, n);
        for (uint32_t sl = 0; sl < t->n_slots && !w->failed; sl++) {
            const hdr_t *h = slot_hdr(t, sl);
            if ((h->flags & want) != want)
                continue;
            w_u64(w, hdr_row(h));
            w_u32(w, h->stamp);
            w_floats(w, slot_val(t, sl), t->cfg.dim + t->state);
        }
    }
}

/* rows_save and rows_save_delta. */
static int save(rows_t *s, const char *path, int delta, err_t *err)
{
    if (delta && s->ev_lost)
        return err_set(err, "%s: rows evicted since the last save were not recorded (out of "
                            "memory): write a full save", path);
    writer_t w = {.crc = crc32(0L, Z_NULL, 0), .err = err};
    if (!(w.f = fs_atomic_open(path, err)))
        return -1;
    write_head(&w, s, delta ? KIND_DELTA : KIND_FULL);
    write_rows(&w, s, delta);
    w_u32(&w, (uint32_t)w.crc);
    if (w.failed) {
        fs_atomic_abort(&w.f);
        return -1;
    }
    if (fs_atomic_commit(&w.f, err) != 0)
        return -1;
    FOR_EACH_HELD(s, t, sl, h)
        h->flags &= ~F_DIRTY;
    s->n_ev = 0;
    s->ev_lost = 0;
    return 0;
}

int rows_save(rows_t *s, const char *path, err_t *err)
{
    return save(s, path, 0, err);
}

int rows_save_delta(rows_t *s, const char *path, err_t *err)
{
    return save(s, path, 1, err);
}

/* ---- loading ---------------------------------------------------------- */

/* A bounded reader over the file's bytes: a read past the end sets bad. */
typedef struct {
    const uint8_t *p, *end;
    int bad;
} reader_t;

static const uint8_t *r_take(reader_t *r, uint64_t n)
{
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

static uint32_t r_u32(reader_t *r)
{
    const uint8_t *q = r_take(r, 4);
    return q ? le_load32(q) : 0;
}

static uint64_t r_u64(reader_t *r)
{
    const uint8_t *q = r_take(r, 8);
    return q ? le_load64(q) : 0;
}

/* What a checked file holds, read without a store: the header, per table
 * its settings and where its records begin, the sketch, the evicted list. */
typedef struct {
    uint64_t seed;
    uint32_t kind, clock;
    int n_tables;
    rows_file_table_t *tab; /* n_tables */
    const uint8_t **rows;   /* n_tables: each table's records */
    uint32_t sketch_depth, sketch_width;
    const uint8_t *sketch;
    const uint8_t *ev;      /* n_ev records of u32 table, u64 row */
    uint64_t n_ev;
} scan_t;

static void scan_free(scan_t *sc)
{
    free(sc->tab);
    free(sc->rows);
    memset(sc, 0, sizeof *sc);
}

/* The file's table of id, or NULL. */
static const rows_file_table_t *scan_table(const scan_t *sc, uint32_t id)
{
    for (int i = 0; i < sc->n_tables; i++)
        if (sc->tab[i].id == id)
            return &sc->tab[i];
    return NULL;
}

/* Bytes of one row record of table ft. */
static uint64_t record_bytes(const rows_file_table_t *ft)
{
    return 12 + 4 * (uint64_t)(ft->dim + ft->state);
}

/* Reads the header and the tables' settings. */
static int scan_head(reader_t *r, scan_t *sc, err_t *err)
{
    r_take(r, sizeof MAGIC);
    uint32_t version = r_u32(r);
    sc->kind = r_u32(r);
    sc->seed = r_u64(r);
    sc->clock = r_u32(r);
    uint32_t n = r_u32(r);
    if (r->bad)
        return err_set(err, "truncated header");
    if (version != ROWS_VERSION)
        return err_set(err, "format version %u, this build reads %d", version, ROWS_VERSION);
    if (sc->kind != KIND_FULL && sc->kind != KIND_DELTA)
        return err_set(err, "unknown file kind %u", sc->kind);
    if (n < 1 || n > ROWS_TABLES_MAX)
        return err_set(err, "%u tables (1 to %d)", n, ROWS_TABLES_MAX);
    sc->tab = calloc(n, sizeof *sc->tab);
    sc->rows = calloc(n, sizeof *sc->rows);
    if (!sc->tab || !sc->rows)
        return err_set(err, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        rows_file_table_t *ft = &sc->tab[i];
        ft->id = r_u32(r);
        ft->dim = r_u32(r);
        ft->state = r_u32(r);
        ft->optim_id = (int)r_u32(r);
        ft->rows = r_u64(r);
        r_u32(r); /* admit_after: the store's own setting applies */
        if (r->bad)
            return err_set(err, "truncated table list");
        if (ft->dim < 1 || ft->dim > ROWS_DIM_MAX || ft->state > ROWS_DIM_MAX * 4u)
            return err_set(err, "table %u: dim %zu, %zu state floats", ft->id, ft->dim,
                           ft->state);
        if (scan_table(sc, ft->id))
            return err_set(err, "table %u: listed twice", ft->id);
        sc->n_tables = (int)i + 1;
    }
    return 0;
}

/* Reads the sketch and the evicted list (each evicted row a row of a table
 * of the file). */
static int scan_sketch_evicted(reader_t *r, scan_t *sc, err_t *err)
{
    sc->sketch_depth = r_u32(r);
    sc->sketch_width = r_u32(r);
    if (r->bad)
        return err_set(err, "truncated before the admission sketch");
    if (sc->sketch_depth != 0 && sc->sketch_depth != ROWS_SKETCH_DEPTH)
        return err_set(err, "admission sketch of depth %u (%d expected)", sc->sketch_depth,
                       ROWS_SKETCH_DEPTH);
    sc->sketch = r_take(r, (uint64_t)sc->sketch_depth * sc->sketch_width);
    if (r->bad)
        return err_set(err, "truncated admission sketch");
    sc->n_ev = r_u64(r);
    if (r->bad || sc->n_ev > (uint64_t)(r->end - r->p) / 12)
        return err_set(err, "truncated list of evicted rows");
    sc->ev = r_take(r, sc->n_ev * 12);
    for (uint64_t i = 0; i < sc->n_ev; i++) {
        uint32_t id = le_load32(sc->ev + 12 * i);
        uint64_t row = le_load64(sc->ev + 12 * i + 4);
        const rows_file_table_t *ft = scan_table(sc, id);
        if (!ft || (ft->rows && row >= ft->rows))
            return err_set(err, "evicted row %llu of table %u: no such row",
                           (unsigned long long)row, id);
    }
    return 0;
}

/* Reads every table's records: each row within its table's bound and
 * stamped no later than the file's clock; nothing after them. */
static int scan_rows(reader_t *r, scan_t *sc, err_t *err)
{
    for (int i = 0; i < sc->n_tables; i++) {
        rows_file_table_t *ft = &sc->tab[i];
        const uint64_t rec = record_bytes(ft);
        ft->n_rows = r_u64(r);
        if (r->bad || ft->n_rows > (uint64_t)(r->end - r->p) / rec)
            return err_set(err, "table %u: truncated rows", ft->id);
        sc->rows[i] = r_take(r, ft->n_rows * rec);
        for (uint64_t k = 0; k < ft->n_rows; k++) {
            const uint8_t *q = sc->rows[i] + k * rec;
            uint64_t row = le_load64(q);
            if ((ft->rows && row >= ft->rows) || le_load32(q + 8) > sc->clock)
                return err_set(err, "table %u: row %llu out of range or stamped after the "
                                    "file's clock", ft->id, (unsigned long long)row);
        }
    }
    if (r->p != r->end)
        return err_set(err, "%td bytes after the rows", r->end - r->p);
    return 0;
}

/* Checks the magic and the checksum of a mapped file. */
static int check_whole(const uint8_t *buf, size_t len, err_t *err)
{
    if (memcmp(buf, MAGIC, sizeof MAGIC) != 0)
        return err_set(err, "not a row store file (bad magic)");
    uLong c = crc32(0L, Z_NULL, 0);
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < len - 4; off += piece)
        c = crc32(c, buf + off, (uInt)(len - 4 - off < piece ? len - 4 - off : piece));
    if ((uint32_t)c != le_load32(buf + len - 4))
        return err_set(err, "checksum mismatch (corrupted or truncated)");
    return 0;
}

/* Checks all of a mapped file and fills *sc (scan_free it, also on error).
 * Returns 0, or -1 with err saying what is wrong (without the path). */
static int scan_file(const uint8_t *buf, size_t len, scan_t *sc, err_t *err)
{
    memset(sc, 0, sizeof *sc);
    reader_t r = {buf, buf + len - 4, 0};
    if (check_whole(buf, len, err) != 0 || scan_head(&r, sc, err) != 0 ||
        scan_sketch_evicted(&r, sc, err) != 0 || scan_rows(&r, sc, err) != 0)
        return -1;
    return 0;
}

/* A checked file matched to a store: per file table the store's table. */
typedef struct {
    scan_t sc;
    table_t **tab;         /* sc.n_tables */
    const uint8_t *sketch; /* NULL: none, or not used by this store */
} plan_t;

/* Matches the file's seed, tables and sketch to the store's. */
static int load_match(rows_t *s, plan_t *p, err_t *err)
{
    const scan_t *sc = &p->sc;
    if (sc->seed != s->seed)
        return err_set(err, "written with seed %llu, the store has seed %llu",
                       (unsigned long long)sc->seed, (unsigned long long)s->seed);
    if (!(p->tab = calloc((size_t)sc->n_tables, sizeof *p->tab)))
        return err_set(err, "out of memory");
    for (int i = 0; i < sc->n_tables; i++) {
        const rows_file_table_t *ft = &sc->tab[i];
        table_t *t = p->tab[i] = find_table(s, ft->id);
        if (!t)
            return err_set(err, "table %u: not in this store", ft->id);
        if (ft->dim != t->cfg.dim || ft->state != t->state || ft->rows != t->cfg.rows ||
            ft->optim_id != t->optim.kind->id)
            return err_set(err, "table %u: dim %zu, %zu state floats, %llu rows, optimizer %s in "
                                "the file; dim %zu, %zu, %llu, %s in the store", ft->id, ft->dim,
                           ft->state, (unsigned long long)ft->rows, optim_id_name(ft->optim_id),
                           t->cfg.dim, t->state, (unsigned long long)t->cfg.rows,
                           t->optim.kind->name);
    }
    if (sc->sketch_depth && s->sketch) {
        if (sc->sketch_width != s->sketch_w)
            return err_set(err, "admission sketch of width %u, the store's is %zu",
                           sc->sketch_width, s->sketch_w);
        p->sketch = sc->sketch;
    }
    return 0;
}

/* Counts the rows loading adds to the store (owned and not held) and
 * removes (owned evicted rows held), and reserves room for the added ones. */
static int load_count(rows_t *s, const plan_t *p, rows_owns_fn owns, void *ctx, size_t *add,
                      size_t *drop, err_t *err)
{
    const scan_t *sc = &p->sc;
    for (uint64_t i = 0; i < sc->n_ev; i++) {
        uint32_t id = le_load32(sc->ev + 12 * i);
        uint64_t row = le_load64(sc->ev + 12 * i + 4);
        if ((!owns || owns(ctx, id, row)) && lookup(find_table(s, id), row, NULL) != NO_SLOT)
            (*drop)++;
    }
    for (int i = 0; i < sc->n_tables; i++) {
        table_t *t = p->tab[i];
        const uint64_t rec = record_bytes(&sc->tab[i]);
        size_t fresh = 0;
        for (uint64_t k = 0; k < sc->tab[i].n_rows; k++) {
            uint64_t row = le_load64(sc->rows[i] + k * rec);
            if ((!owns || owns(ctx, t->cfg.id, row)) && lookup(t, row, NULL) == NO_SLOT)
                fresh++;
        }
        *add += fresh;
        if (index_reserve(t, fresh) != 0 || chunks_reserve(t, fresh) != 0)
            return err_set(err, "table %u: out of memory for %zu more rows", t->cfg.id, fresh);
    }
    return 0;
}

/* Applies a checked file: sketch, evicted rows, rows. */
static void load_apply(rows_t *s, const plan_t *p, rows_owns_fn owns, void *ctx)
{
    const scan_t *sc = &p->sc;
    for (size_t i = 0; p->sketch && i < ROWS_SKETCH_DEPTH * s->sketch_w; i++)
        if (p->sketch[i] > s->sketch[i])
            s->sketch[i] = p->sketch[i];
    for (uint64_t i = 0; i < sc->n_ev; i++) {
        uint32_t id = le_load32(sc->ev + 12 * i);
        uint64_t row = le_load64(sc->ev + 12 * i + 4);
        table_t *t = find_table(s, id);
        uint32_t sl = lookup(t, row, NULL);
        if (sl != NO_SLOT && (!owns || owns(ctx, id, row)))
            row_remove(s, t, sl);
    }
    if (sc->clock > s->clock)
        s->clock = sc->clock;
    s->floor = 0;
    for (int i = 0; i < sc->n_tables; i++) {
        table_t *t = p->tab[i];
        const size_t nf = t->cfg.dim + t->state, rec = 12 + 4 * nf;
        for (uint64_t k = 0; k < sc->tab[i].n_rows; k++) {
            const uint8_t *q = sc->rows[i] + k * rec;
            uint64_t row = le_load64(q);
            if (owns && !owns(ctx, t->cfg.id, row))
                continue;
            uint32_t sl = lookup(t, row, NULL);
            if (sl == NO_SLOT) {
                sl = row_create(s, t, row);
                t->st.created--; /* loaded, not created */
            }
            hdr_t *h = slot_hdr(t, sl);
            h->stamp = le_load32(q + 8);
            h->flags = F_LIVE;
            le_load_floats(slot_val(t, sl), q + 12, nf);
            t->st.loaded++;
        }
    }
}

/* Maps path read-only. Returns the bytes (*len set) or NULL with err. */
static const uint8_t *map_file(const char *path, size_t *len, err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err_set(err, "cannot stat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (st.st_size < (off_t)(sizeof MAGIC + 4)) {
        close(fd);
        err_set(err, "truncated (%lld bytes)", (long long)st.st_size);
        return NULL;
    }
    *len = (size_t)st.st_size;
    void *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        err_set(err, "cannot map: %s", strerror(errno));
        return NULL;
    }
    return m;
}

int rows_load(rows_t *s, const char *path, rows_owns_fn owns, void *ctx, err_t *err)
{
    size_t len = 0, add = 0, drop = 0;
    const uint8_t *buf = map_file(path, &len, err);
    if (!buf)
        return err_prefix(err, "%s", path);
    plan_t p = {0};
    int rc = scan_file(buf, len, &p.sc, err);
    if (rc == 0)
        rc = load_match(s, &p, err);
    if (rc == 0)
        rc = load_count(s, &p, owns, ctx, &add, &drop, err);
    if (rc == 0 && s->max_rows && s->count - drop + add > s->max_rows)
        rc = err_set(err, "would hold %zu rows, more than max_rows %zu", s->count - drop + add,
                     s->max_rows);
    if (rc == 0)
        load_apply(s, &p, owns, ctx);
    scan_free(&p.sc);
    free(p.tab);
    munmap((void *)buf, len);
    return rc == 0 ? 0 : err_prefix(err, "%s", path);
}

/* ---- reading a file without a store ------------------------------------ */

struct rows_file_t {
    const uint8_t *buf;
    size_t len;
    scan_t sc;
};

rows_file_t *rows_file_open(const char *path, err_t *err)
{
    rows_file_t *f = calloc(1, sizeof *f);
    if (!f) {
        err_set(err, "%s: out of memory", path);
        return NULL;
    }
    if (!(f->buf = map_file(path, &f->len, err)) || scan_file(f->buf, f->len, &f->sc, err) != 0) {
        err_prefix(err, "%s", path);
        rows_file_close(&f);
    }
    return f;
}

void rows_file_close(rows_file_t **self_p)
{
    rows_file_t *f = self_p ? *self_p : NULL;
    if (!f)
        return;
    scan_free(&f->sc);
    if (f->buf)
        munmap((void *)f->buf, f->len);
    free(f);
    *self_p = NULL;
}

uint64_t rows_file_seed(const rows_file_t *f)
{
    return f->sc.seed;
}

int rows_file_is_delta(const rows_file_t *f)
{
    return f->sc.kind == KIND_DELTA;
}

int rows_file_n_tables(const rows_file_t *f)
{
    return f->sc.n_tables;
}

const rows_file_table_t *rows_file_table(const rows_file_t *f, int i)
{
    return i >= 0 && i < f->sc.n_tables ? &f->sc.tab[i] : NULL;
}

uint64_t rows_file_n_evicted(const rows_file_t *f)
{
    return f->sc.n_ev;
}

void rows_file_evicted(const rows_file_t *f, uint64_t k, uint32_t *table, uint64_t *row)
{
    *table = le_load32(f->sc.ev + 12 * k);
    *row = le_load64(f->sc.ev + 12 * k + 4);
}

uint64_t rows_file_row(const rows_file_t *f, int i, uint64_t k, float *value)
{
    const uint8_t *q = f->sc.rows[i] + k * record_bytes(&f->sc.tab[i]);
    if (value)
        le_load_floats(value, q + 12, f->sc.tab[i].dim);
    return le_load64(q);
}
