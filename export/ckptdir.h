/* ckptdir.h - the checkpoints of a run, RUN_DIR/checkpoints/step-NNNNNNNNN/:
 *
 *   shard-S-of-N.ckpt   each parameter server's part (a checkpoint with a
 *                       SHARD section), written by that server, or
 *   model.ckpt          the whole model (single-process training);
 *   tables-S-of-N.rows  a sparse model's embedding rows held by server S
 *                       (common/nn/rows.h's file), next to its shard;
 *                       tables-0-of-1.rows next to a model.ckpt;
 *   manifest.json       written last, by trainer 0 once every part is on
 *                       disk: step, epoch, the files, the trainers'
 *                       data-order record and the input normalisation.
 *
 * A step folder without a manifest is incomplete and never used. Every file
 * is written atomically (fs_write_atomic), and older step folders beyond
 * `keep` are removed only after a newer manifest is written.
 */
#ifndef PST_CKPTDIR_H
#define PST_CKPTDIR_H

#include <stddef.h>
#include <stdint.h>

#include "export/checkpoint.h"
#include "common/util/err.h"

/* "ROOT/step-000001234" into buf. Returns 0, or -1 with err if it does not fit. */
int ckptdir_step_dir(char *buf, size_t len, const char *root, long step, err_t *err);

/* "ROOT/step-000001234/shard-S-of-N.ckpt" (n_shards 0: "model.ckpt"). */
int ckptdir_part_path(char *buf, size_t len, const char *root, long step, int index,
                      int n_shards, err_t *err);

/* "DIR/tables-S-of-N.rows" (n_parts 0: "tables-0-of-1.rows"): the rows of
 * part S's embedding tables, next to its checkpoint part in DIR; delta 1:
 * "DIR/delta-S-of-N.rows", the rows changed since the checkpoint before.
 * Returns 0, or -1 with err if it does not fit. */
int ckptdir_tables_path(char *buf, size_t len, const char *dir, int index, int n_parts, int delta,
                        err_t *err);

/* Full tables files at most every CKPT_CHAIN_MAX checkpoints. */
#define CKPT_CHAIN_MAX 64

/* A checkpoint's sparse tables: chain[0, chain_len) are the steps whose
 * files rebuild them, the last this checkpoint's: {step} when its files are
 * full, else the full checkpoint's step, then the deltas' up to this one. */
typedef struct {
    const long *chain;
    int chain_len;
} ckpt_tables_t;

/* Writes step's manifest.json (atomically) once its parts are on disk:
 * n_shards shard files (0: one model.ckpt), with tables (not NULL) a
 * tables file next to each (listed as "tables", full or delta as its chain,
 * "tables_chain", says), the data-order record (order,
 * order_len bytes) and the normalisation (norm_kind 0: none; else norm_dim
 * means and inverse standard deviations). Each part is checked to exist.
 * Then removes the oldest step folders so that `keep` complete ones remain
 * (and incomplete folders older than this one), never one a kept
 * checkpoint's tables chain needs. Returns 0, or -1 with err. */
int ckptdir_commit(const char *root, long step, int epoch, int n_shards, const ckpt_tables_t *tables,
                   const uint8_t *order, size_t order_len, int norm_kind, size_t norm_dim,
                   const float *norm_mean, const float *norm_inv_std, int keep, err_t *err);

/* Step of the newest complete checkpoint under root, or -1 when there is none
 * (or root does not exist). */
long ckptdir_latest(const char *root);

/* Reads the complete checkpoint of step under root: its manifest, every
 * part (checked as checkpoint_read checks), assembled into one whole-model
 * checkpoint with the manifest's data order and normalisation. Returns it
 * (checkpoint_free), or NULL with err naming the file at fault. */
checkpoint_t *ckptdir_load(const char *root, long step, err_t *err);

/* What --resume PATH means: a checkpoint file; a complete step folder
 * (RUN_DIR/checkpoints/step-N); or a run folder, whose newest complete
 * checkpoint wins: RUN_DIR/checkpoints/step-N or RUN_DIR/model.ckpt (the
 * end of the job), the one with more steps (model.ckpt on a tie).
 * Returns the whole-model checkpoint, with the file or folder used in used;
 * or NULL with err. */
checkpoint_t *ckptdir_resume(const char *path, char *used, size_t used_len, err_t *err);

/* The tables files of the checkpoint --resume used (ckptdir_resume's
 * `used`: a checkpoint file or a step folder), in the order to load them:
 * every tables-S-of-N.rows in its folder, S = 0..N-1; for a step folder
 * whose manifest has a chain of deltas, those of the chain's full
 * checkpoint, then each delta's delta-S-of-N.rows in order. Into *files
 * (malloc'd, ckptdir_tables_free), their number into *n. Returns 0, or -1
 * with err (none there, or not one whole set). */
int ckptdir_tables_list(const char *used, char ***files, int *n, err_t *err);
void ckptdir_tables_free(char ***files, int n);
/* Hands each of those files, in order, to load(ctx, path, err). Returns 0,
 * or -1 with err (the list's, or the first load's that failed). */
int ckptdir_tables_load(const char *used, int (*load)(void *ctx, const char *path, err_t *err),
                        void *ctx, err_t *err);

/* The run folder that --resume PATH continues: PATH itself when it is a
 * run folder; the folder of a checkpoint file, or RUN_DIR for a file inside
 * RUN_DIR/checkpoints/step-N/ or for that step folder itself. Written into buf. Returns 0, or -1 with err
 * when it does not fit. */
int ckptdir_run_dir(const char *path, char *buf, size_t len, err_t *err);

/* Names in *what the first file of a run that folder dir holds (summary.json,
 * metrics.csv, model.ckpt, checkpoints/), if any. Returns 1 when dir holds a
 * run, 0 when it is missing or holds none of them. */
int ckptdir_holds_run(const char *dir, const char **what);

#endif
