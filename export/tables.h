/* tables.h - the embedding tables of a trained sparse model (model.sparse),
 * as the exporters and native inference see them.
 *
 * A sparse job leaves next to its checkpoint (RUN/model.ckpt) one full row
 * file per server, RUN/tables-S-of-N.rows (S in [0, N); rows_save format,
 * common/nn/rows.c), each row in exactly one of them. Field f's table is
 * [rows_f, dim] (rows_f = cfg_sparse_rows(cfg, f)): the rows the files
 * hold, and every other row its initial value (rows_initial, a pure
 * function of the seed, the table and the row). Files given explicitly are
 * applied in order, as rows_load applies them, so a full file followed by
 * its deltas gives the tables as of the last delta.
 *
 * The files are mapped and checked once (tables_open); a table is then
 * written out in windows of rows (tables_stream: initial values, then the
 * files' rows that fall in the window), so exporting needs one window of
 * memory, not the tables. Native inference loads them into a row store
 * (tables_load), which holds only the rows the files hold.
 */
#ifndef PST_TABLES_H
#define PST_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "common/config/config.h"
#include "common/nn/rows.h"
#include "common/util/err.h"

#define TABLES_PATTERN "tables-*-of-*.rows"   /* the row files next to a checkpoint */
#define TABLES_WINDOW_BYTES ((size_t)64 << 20) /* tables_stream's default window */

typedef struct tables_t tables_t;

/* The tables of cfg's model.sparse from the row files paths[0..n) (n >= 1),
 * applied in order. Each file is mapped and checked (rows_file_open), and
 * must be of cfg's tables: the job's seed (train.seed), table ids below
 * model.sparse.fields, each table's dim and rows as cfg gives them. cfg
 * must outlive the tables. Returns a new tables_t (paths are copied), or
 * NULL with err naming the file and what is wrong. */
tables_t *tables_open(const job_config_t *cfg, const char *const *paths, int n, err_t *err);

/* cfg's embedding tables into tab: one per field of model.sparse (id =
 * the field, its dim and rows; the store's optimizer applies). Returns their
 * number (0 for a model without tables). */
int tables_of_config(const job_config_t *cfg, rows_table_t *tab);

/* An empty row store of cfg's tables as training makes it: table f the
 * field f, of model.sparse.dim floats and cfg_sparse_rows(cfg, f) rows,
 * under the job's optimizer and seed (train.seed); max_rows as rows_opts_t.
 * Returns it (the caller destroys it), or NULL with err. */
rows_t *tables_store_new(const job_config_t *cfg, size_t max_rows, err_t *err);

/* tables_open with the row files found next to the checkpoint ckpt_path
 * (DIR/tables-S-of-N.rows, DIR its folder): all N files of one set, else
 * NULL with err naming the first missing file (or the two sets when files of
 * different N are there, or the pattern when there is none). */
tables_t *tables_open_next_to(const job_config_t *cfg, const char *ckpt_path, err_t *err);

/* Unmaps and frees *self_p (may be NULL) and sets it to NULL. */
void tables_destroy(tables_t **self_p);

/* The fields (tables), floats per row, and the rows of field f's table. */
int tables_fields(const tables_t *t);
int tables_dim(const tables_t *t);
uint64_t tables_rows(const tables_t *t, int f);

/* The row files, in the order applied: n of them, file i. */
int tables_n_files(const tables_t *t);
const char *tables_file(const tables_t *t, int i);

/* Takes the next len bytes of a table. Returns 0, or -1 with err. */
typedef int (*tables_write_fn)(void *ctx, const void *data, size_t len, err_t *err);

/* Writes field f's whole table, rows_f x dim float32 little-endian in row
 * order (rows_f * dim * 4 bytes), through write in pieces of at most window
 * bytes (0: TABLES_WINDOW_BYTES; at least one row). Returns 0, or -1 with err
 * (out of memory for the window, or write's error). */
int tables_stream(const tables_t *t, int f, size_t window, tables_write_fn write, void *ctx,
                  err_t *err);

/* A row store holding every row of the files (rows_load of each in order,
 * under cfg's optimizer), for native inference: read rows with
 * tables_lookup. Returns it (the caller destroys it), or NULL with err. */
rows_t *tables_load(const tables_t *t, err_t *err);

/* Row `row` (below tables_rows(t, f)) of field f's table from store (from
 * tables_load): the held row, else its initial value; dim floats into out.
 * Returns 0, or -1 with err (a row out of its table). */
int tables_lookup(const rows_t *store, int f, uint64_t row, float *out, err_t *err);

#endif
