/* checkpoint.h - one file that holds a whole model: step counters, the job's
 * config text, the tensor table, the parameters, the optimizer state and the
 * trainer's data order, so that a run can resume or a model be exported.
 *
 * Format version 1, little-endian:
 *   "PSTCKPT\0" (8 bytes), uint32 version = 1, uint32 number of sections;
 *   then each section: uint32 id, uint64 length L, uint32 CRC32 (zlib) of the
 *   L bytes, the L bytes. Ids in increasing order, each at most once:
 *     1 META      uint64 step, uint32 epoch, uint64 clock, uint64 seed,
 *                 uint64 n_params, uint32 n_slots, uint32 optimizer kind (44 bytes)
 *     2 CONFIG    the job's config text (no NUL byte)
 *     3 TENSORS   uint32 count; per tensor: uint16 name length, name,
 *                 uint32 ndim, uint32 dims[ndim], uint64 offset, uint64 size
 *     4 PARAMS    n_params float32
 *     5 OPTSTATE  n_slots * n_params float32, slot-major (slot k of parameter i
 *                 at k * n_params + i, as in optim.h); present iff n_slots > 0
 *     6 DATAORDER opaque bytes of the trainer; absent when empty
 *     7 NORM      uint32 kind (norm_t: 1 global, 2 per pixel), uint64 dim,
 *                 float32 mean[dim], float32 inv_std[dim]: the input
 *                 normalisation training used (x - mean) * inv_std, applied
 *                 after scaling pixels to [0,1]; absent when none
 *     8 SHARD     uint64 begin, uint64 end, uint32 index, uint32 count: the
 *                 file holds shard index of count, the flat range
 *                 [begin, end) of the model's parameters (as a parameter
 *                 server keeps it); PARAMS then holds end - begin floats
 *                 and OPTSTATE n_slots * (end - begin). Absent: the whole model.
 *   META, CONFIG, TENSORS and PARAMS are required; any other id is refused.
 * The tensors tile [0, n_params) in order, as params_add lays them out.
 */
#ifndef PST_CHECKPOINT_H
#define PST_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"
#include "common/nn/params.h"

#define CHECKPOINT_VERSION 1
/* Largest checkpoint file written or read (bytes). */
#define CHECKPOINT_MAX_BYTES (4ull << 30)

typedef struct {
    uint64_t step, clock, seed;
    uint32_t epoch;
    int opt_kind;                 /* the optimizer's fixed id (optim_kind_t.id), stored as given */
    int n_slots;                  /* optimizer state floats per parameter */
    char *config_text;            /* owned; NULL is written as "" */
    param_table_t table;          /* tensors (name, ndim, shape, offset, size), n_params;
                                   * read back with init fields zero */
    float *params;                /* n_params, owned */
    float *opt_state;             /* n_slots * n_params or NULL, owned */
    uint8_t *data_order;          /* owned, may be NULL */
    size_t data_order_len;
    int norm_kind;                /* norm_t; 0 (none): no NORM section */
    size_t norm_dim;              /* floats per sample of norm_mean, norm_inv_std */
    float *norm_mean, *norm_inv_std; /* owned, NULL when norm_kind is 0 */
    int n_shards;                 /* 0: the whole model; else this is shard */
    int shard_index;              /*   shard_index of n_shards, holding */
    size_t shard_begin, shard_end;/*   params/opt_state of [shard_begin, shard_end) */
} checkpoint_t;

/* Floats of params (and of each optimizer slot) that ck holds: n_params, or
 * the shard's length. */
size_t checkpoint_len(const checkpoint_t *ck);

/* Puts shards (n of them, from checkpoint_read of each server's file, in any
 * order) together into one whole-model checkpoint: they must be the shards
 * 0..n-1 of n, tile [0, n_params), and agree on everything else (step, epoch,
 * clock, seed, optimizer, config, tensors, data order, normalisation).
 * Returns a new checkpoint (checkpoint_free), or NULL with err naming the
 * file (names[i] is shards[i]'s) and the difference. */
checkpoint_t *checkpoint_assemble(checkpoint_t *const *shards, const char *const *names, int n,
                                  err_t *err);

/* Writes ck to path atomically (fs_write_atomic: the old file, if any, stays
 * whole until the new one is complete). Refuses a checkpoint it could not read
 * back (inconsistent table, missing buffers, over CHECKPOINT_MAX_BYTES).
 * Returns 0, or -1 with err naming the path; on error no temporary file is left. */
int checkpoint_write(const char *path, const checkpoint_t *ck, err_t *err);

/* Reads path and checks all of it: magic, version, section order, each CRC,
 * section lengths against META, the tensor table (tiles [0, n_params), names
 * unique, shapes multiply to sizes). Returns a new checkpoint that the caller
 * frees with checkpoint_free, or NULL with err naming the path and, where it
 * applies, the section ("PATH: section PARAMS: CRC mismatch"). */
checkpoint_t *checkpoint_read(const char *path, err_t *err);

/* Checks that ck's tensor table equals tab: same names, shapes and offsets.
 * Returns 0, or -1 with err naming path (which may be NULL) and the first
 * difference ("PATH: checkpoint holds conv1.weight [32,1,3,3], the model wants [16,1,3,3]"). */
int checkpoint_match(const checkpoint_t *ck, const param_table_t *tab, const char *path,
                     err_t *err);

/* Frees ck's owned buffers and the struct itself (from checkpoint_read, or
 * calloc'd by the caller) and sets *ck_p to NULL. Accepts NULL and *ck_p == NULL. */
void checkpoint_free(checkpoint_t **ck_p);

#endif
