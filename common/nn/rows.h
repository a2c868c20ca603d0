/* rows.h - a store of sparse embedding rows with their optimizer state.
 *
 * A store holds several embedding tables. A row is keyed by (table id, row
 * id) and holds dim floats of value followed by its optimizer's state for the
 * row (optim_row_slots floats, common/nn/optim.h). A parameter server keeps
 * the rows it owns (by rows_hash) in one store; a single-process job keeps
 * all rows in one. Trainers pull the unique rows a batch touches and push
 * their gradients.
 *
 * Rows are created on first touch with an initial value that is a pure
 * function of (seed, table, row) (rows_initial), so any number of servers,
 * and any order of creation, gives the same model.
 *
 * Admission: a table with admit_after = k > 1 creates a row only at the pull
 * that sees it for the k-th time. Only pulls count as sightings (a trainer
 * pulls every row of its batch before it pushes them, so k is the number of
 * batches the id appeared in); until admitted, a row reads as zeros and a
 * push to it is dropped. The counts live in one count-min sketch per store
 * (4 rows of sketch_width one-byte counters, conservative update): bounded
 * memory, and a count is never under the truth, so a collision can only
 * admit a row early, never late. Counts are not aged.
 *
 * Eviction: with max_rows > 0, a store holds at most max_rows rows (all
 * tables together). Each pull or push is one tick of the store's clock and
 * stamps the rows it touches; when rows must be created in a full store, the
 * least recently used rows (oldest stamps) are evicted, in a batch of at
 * least max_rows / ROWS_EVICT_DIV so that the scan is paid once per batch.
 * Rows of the request under way are never evicted. An evicted row created
 * again starts from its initial value and a fresh optimizer state.
 *
 * Memory: rows live in chunks of ROWS_CHUNK rows (no allocation per row);
 * a row costs 16 bytes of header (id, stamp, flags) + 4 (dim + state) bytes,
 * plus 4 / load bytes of hash index (open addressing, linear probing, load
 * between 3/8 and 3/4). A store is not thread-safe: one thread calls it.
 */
#ifndef PST_ROWS_H
#define PST_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "common/nn/optim.h"
#include "common/util/err.h"

#define ROWS_DIM_MAX 65536           /* floats per row at most */
#define ROWS_TABLES_MAX 1024         /* tables per store at most */
#define ROWS_ADMIT_MAX 255           /* admit_after at most (one-byte counters) */
#define ROWS_SKETCH_DEPTH 4          /* rows of the admission sketch */
#define ROWS_SKETCH_WIDTH (1u << 20) /* its default width: 4 MiB of counters */
#define ROWS_CHUNK (1u << 14)        /* rows per allocation */
#define ROWS_EVICT_DIV 64            /* an eviction frees at least max_rows / this */

typedef struct rows_t rows_t;

/* One embedding table. */
typedef struct {
    uint32_t id;        /* its number, as the model and the wire name it */
    size_t dim;         /* floats per row, 1..ROWS_DIM_MAX */
    uint64_t rows;      /* row ids are [0, rows); 0: any 64-bit id (unbounded) */
    /* Initial values are uniform in [-scale, scale]: scale = init_scale when
     * > 0, else sqrt(1 / rows) (DLRM's) for a bounded table and sqrt(1 / dim)
     * for an unbounded one. */
    double init_scale;
    unsigned admit_after; /* 0 or 1: rows are created at first touch; k: at their k-th pull */
    const optim_params_t *optim; /* NULL: the store's (rows_opts_t.optim); copied */
} rows_table_t;

/* The store's settings. */
typedef struct {
    uint64_t seed;               /* of every initial value */
    const optim_params_t *optim; /* the tables' optimizer unless they name one; copied */
    size_t max_rows;             /* rows held at most, all tables together; 0: no bound */
    size_t sketch_width;         /* admission counters per sketch row (power of two); 0: default */
} rows_opts_t;

/* A table's counters. */
typedef struct {
    uint64_t rows;    /* rows held now */
    uint64_t created; /* rows created (first touch, admission, again after eviction) */
    uint64_t evicted; /* rows evicted */
    uint64_t loaded;  /* rows read by rows_load */
    uint64_t dropped; /* pushed rows dropped because they were not admitted */
} rows_stats_t;

/* Does this store own (table, row)? rows_load keeps only the rows for
 * which it returns non-zero. */
typedef int (*rows_owns_fn)(void *ctx, uint32_t table, uint64_t row);

/* A new empty store of n_tables tables (their settings copied). Returns it
 * (the caller owns it), or NULL with err naming what is wrong: no tables,
 * two with the same id, a dim out of range, admit_after > ROWS_ADMIT_MAX, an
 * optimizer without a row form, a bad init_scale or sketch width, or out of
 * memory. */
rows_t *rows_new(const rows_table_t *tables, int n_tables, const rows_opts_t *o, err_t *err);

/* Frees the store; accepts NULL and sets *self_p to NULL. */
void rows_destroy(rows_t **self_p);

/* Copies the rows ids[0..n) of table into out (n x dim floats, row-major).
 * A row not present is created (initial value, fresh state) unless its table
 * has admission and this pull is not its admit_after-th sighting, in which
 * case it reads as zeros. An id may appear more than once (each occurrence
 * counts as a sighting). Returns 0, or -1 with err naming the table and the
 * id when the table does not exist, an id is out of its bound, n exceeds
 * max_rows, or memory runs out; on error nothing is changed. */
int rows_pull(rows_t *s, uint32_t table, const uint64_t *ids, size_t n, float *out, err_t *err);

/* Applies the table's row optimizer to the rows ids[0..n) with their
 * gradients grads (n x dim floats, row-major) as global step `step`
 * (1-based, lazy Adam's bias correction) at learning rate lr. A row not
 * present is created first when it is admitted (always without admission),
 * else its gradient is dropped (rows_stats_t.dropped). Returns 0, or -1 with
 * err naming the table and the id when the table does not exist, an id is
 * out of its bound or appears twice, n exceeds max_rows, step < 1, or memory
 * runs out; on error nothing is changed. A push of the ids the table's last
 * pull named, in the same order (what a trainer does with the rows of its
 * step), reuses the rows that pull found, unless a row left the store since
 * (eviction, a load) or the table has admission: the same result, without
 * looking the rows up again. */
int rows_push(rows_t *s, uint32_t table, const uint64_t *ids, size_t n, const float *grads,
              long step, double lr, err_t *err);

/* The rows held, all tables together. */
size_t rows_count(const rows_t *s);
/* The bytes the store holds: row chunks, hash indexes, the admission sketch,
 * the eviction record and scratch buffers. */
size_t rows_bytes(const rows_t *s);
/* The rows changed (created, updated) since the last save. */
size_t rows_dirty(const rows_t *s);
/* Fills *out with table's counters. Returns 0, or -1 if there is no such table. */
int rows_stats(const rows_t *s, uint32_t table, rows_stats_t *out);
/* The store's tables: their number, and the id of the i-th (0 <= i < n). */
int rows_n_tables(const rows_t *s);
uint32_t rows_table_id(const rows_t *s, int i);
/* The dim of table, or 0 if there is no such table. */
size_t rows_dim(const rows_t *s, uint32_t table);
/* The state floats per row of table, or 0 if there is none (or no such table). */
size_t rows_state_len(const rows_t *s, uint32_t table);

/* The initial value of row `row` of table (dim floats into out): a pure
 * function of (seed, table, row). Returns 0, or -1 with err if there is no
 * such table or the id is out of its bound. */
int rows_initial(const rows_t *s, uint32_t table, uint64_t row, float *out, err_t *err);

/* Looks at one row without touching it (no creation, no stamp, no
 * sighting): copies its value (dim floats) into value and its optimizer
 * state into state (either may be NULL). Returns 1 if the row is held, 0 if
 * not, -1 if there is no such table. */
int rows_peek(const rows_t *s, uint32_t table, uint64_t row, float *value, float *state);

/* Moves the store's clock on by `ticks` requests that touched none of its
 * rows (an idle period; the tests use it to reach the clock's wrap-around,
 * where stamps are moved down, keeping their order). */
void rows_clock_advance(rows_t *s, uint64_t ticks);

/* The hash that decides which server owns (table, row): a server of S owns
 * the keys with rows_hash % S == its index. Fixed for ever (checkpoints are
 * resharded by it) and independent of the stores' own hash indexes. */
uint64_t rows_hash(uint32_t table, uint64_t row);

/* Writes every row the store holds, with its optimizer state, stamp and the
 * admission counts, to path atomically (temporary file, fsync, rename), and
 * marks all rows clean. File format in rows.c. Returns 0, or -1 with err
 * naming the path; on error the store and any old file are unchanged. */
int rows_save(rows_t *s, const char *path, err_t *err);

/* The same with only the rows changed since the last save (full or delta)
 * and the rows evicted since then. Loading the last full file and then its
 * deltas in order gives the store as it was at the last delta. Returns 0, or
 * -1 with err (as rows_save; also when the record of evictions was lost to
 * an allocation failure: write a full save then). */
int rows_save_delta(rows_t *s, const char *path, err_t *err);

/* Reads a full or delta file written by rows_save / rows_save_delta into the
 * store: evicted rows are removed, rows are written over, admission counts
 * are merged (the larger count wins), and only the rows owns() accepts are
 * kept (owns NULL: all), so that the files of S servers can be loaded onto
 * any number of servers. Loaded rows are clean. The whole file is checked
 * before the store is touched. Returns 0, or -1 with err naming the file and
 * what is wrong (truncated, bad magic or version, checksum mismatch, another
 * seed, a table the store lacks or whose dim, bound or optimizer differs, an
 * id out of bound, more than max_rows rows, out of memory); on error the
 * store is unchanged. */
int rows_load(rows_t *s, const char *path, rows_owns_fn owns, void *ctx, err_t *err);

/* ---- a row file read without a store ------------------------------------
 * For the exporters (export/tables.c): the rows of a file, read in place
 * from its mapping, so that a table far larger than memory can be written
 * out row by row. */
typedef struct rows_file_t rows_file_t;

/* One table of a row file, as the file describes it. */
typedef struct {
    uint32_t id;        /* the table's id */
    size_t dim;         /* floats per row */
    size_t state;       /* optimizer state floats per row */
    int optim_id;       /* optim_kind_t.id of its row optimizer */
    uint64_t rows;      /* its bound (0: unbounded) */
    uint64_t n_rows;    /* rows the file holds of it */
} rows_file_table_t;

/* Maps the file at path (rows_save / rows_save_delta) read-only and checks
 * all of it as rows_load does: magic, version, checksum, structure, every
 * row and evicted row within its table's bound, nothing past the end.
 * Returns a reader (the caller closes it), or NULL with err naming the file
 * and what is wrong. */
rows_file_t *rows_file_open(const char *path, err_t *err);

/* Unmaps and frees *self_p (may be NULL) and sets it to NULL. */
void rows_file_close(rows_file_t **self_p);

/* The seed the file's store had (of every initial value). */
uint64_t rows_file_seed(const rows_file_t *f);

/* 1 for a delta file (rows changed since the previous save, and evicted
 * rows), 0 for a full one. */
int rows_file_is_delta(const rows_file_t *f);

/* The tables of the file: n of them, table i (NULL past the end). */
int rows_file_n_tables(const rows_file_t *f);
const rows_file_table_t *rows_file_table(const rows_file_t *f, int i);

/* The rows a delta names as evicted since the previous save (0 in a full
 * file): the k-th one's table id and row id (k below rows_file_n_evicted).
 * Loading the file removes them, so they read as their initial value
 * again. */
uint64_t rows_file_n_evicted(const rows_file_t *f);
void rows_file_evicted(const rows_file_t *f, uint64_t k, uint32_t *table, uint64_t *row);

/* Row k (below rows_file_table(f, i)->n_rows) of the file's table i: returns
 * its row id and, when value is not NULL, copies its dim floats there. */
uint64_t rows_file_row(const rows_file_t *f, int i, uint64_t k, float *value);

#endif
