/* store.h - a parameter server's shard storage: its keys [begin, end) of
 * the flat parameter index, their parameters and optimizer state, the
 * server-side optimizer step on a piece of the shard, and the buffers that
 * decode a compressed push and encode a compressed pull reply.
 *
 * It knows nothing of trainers, steps or consistency models: the caller
 * says which update a piece belongs to (ps/consistency.c decides when).
 */
#ifndef PST_STORE_H
#define PST_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/net/wire.h"
#include "common/util/err.h"
#include "ps/server.h"

typedef struct store_t store_t;

/* Builds the store of shard o->index of o->n_servers over the model o->table
 * (copied): its parameters as params_init_slice gives them and a fresh
 * optimizer state, or o->init_params / o->init_state (the whole model's,
 * copied) when they are given. Returns it (the caller owns it), or NULL
 * with err (out of memory, or a table params_init_slice refuses). */
store_t *store_new(const server_opts_t *o, err_t *err);

/* Frees the store; accepts NULL and sets *self_p to NULL. */
void store_destroy(store_t **self_p);

/* The shard's parameters ([*begin, *end) of the flat index: end - begin
 * floats); valid until store_destroy. */
const float *store_params(const store_t *st, size_t *begin, size_t *end);
/* The shard's first key and number of keys. */
size_t store_begin(const store_t *st);
size_t store_len(const store_t *st);
/* The number of parameters of the whole model. */
size_t store_n_params(const store_t *st);

/* Applies the optimizer to the piece [off, off + n) of the shard (offsets
 * from its first key) with the gradient g (n floats) as update number
 * version + 1, at the learning rate of step version. The optimizers are
 * elementwise, so a piece can be applied on its own. */
void store_apply(store_t *st, size_t off, const float *g, size_t n, long version);

/* The threads that apply the optimizer (1 unless the shard is large and
 * server_opts_t.threads asked for more). */
int store_threads(const store_t *st);

/* The gradient of the PUSH h (already checked by wire_check_payload, keys
 * in the shard) as floats: *g points into the payload (float32, aligned) or
 * into the store's piece buffer, decoded from float32 (unaligned), float16,
 * bfloat16 or top-k pairs. Top-k indices must ascend inside the range.
 * Returns 0, or -1 with *code = WIRE_E_MALFORMED and err (nothing changed). */
int store_decode_push(store_t *st, const wire_hdr_t *h, const uint8_t *payload, const float **g,
                      int *code, err_t *err);

/* The parameters [off, off + n) encoded as float16 (bf16 = 0) or bfloat16
 * in the store's encode buffer, valid until the next call. */
const uint16_t *store_encode16(store_t *st, size_t off, size_t n, int bf16);

/* Floats of store_gather's output: the parameters and the optimizer state. */
size_t store_gather_len(const store_t *st);
/* Copies the parameters, then the optimizer state (slot-major), into buf
 * (store_gather_len floats). */
void store_gather(const store_t *st, float *buf);

/* Writes the shard through saver as a checkpoint of step `step`, after
 * `version` updates. Returns 0, or -1 with err (no saver, or its error). */
int store_save(const store_t *st, const server_saver_t *saver, long step, long version,
               err_t *err);

#endif
