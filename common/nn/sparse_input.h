/* sparse_input.h - the embedding rows of one batch of categorical features,
 * for a model whose tables are held outside it (a row store in this
 * process, common/nn/rows.h, or the parameter servers).
 *
 * A sample has, for each of `fields` categorical fields, one id or a bag of
 * them (multi-hot, pooled by sum or mean), and each field has a table of
 * its own. For a batch, sparse_input_index finds the unique ids
 * of every field (in the order of their first appearance, so the same batch
 * always gives the same lists) and the place of each sample's id among
 * them. The caller fetches those rows (dim floats each) into
 * sparse_input_rows; sparse_input_gather writes them into the model's input
 * after the dense features (sample i, field f at x[i][offset + f dim]); and
 * after backward, sparse_input_scatter sums the input's gradient into one
 * gradient per unique row, adding the ids in batch order, which the
 * caller pushes. So a trainer pulls and pushes only the rows its batch
 * touches, once each, and its memory depends on the batch, not the tables.
 */
#ifndef PST_SPARSE_INPUT_H
#define PST_SPARSE_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"

typedef struct sparse_input_t sparse_input_t;

/* How a field's several ids in one sample (a bag, multi-hot) make one
 * vector: their rows' sum or mean (PyTorch EmbeddingBag's mode). An empty
 * bag, a missing value, gives zeros either way. */
typedef enum { SPARSE_SUM = 0, SPARSE_MEAN } sparse_combiner_t;

typedef struct {
    int fields;       /* categorical fields, one table each */
    int dim;          /* floats per row */
    int offset;       /* the first field's vector starts at this float of a sample */
    int input_size;   /* floats per sample of the model input */
    int cap;          /* samples per batch at most */
    int max_ids;      /* ids per batch at most, all fields (0: cap * fields, one each) */
    sparse_combiner_t combiner;
} sparse_input_opts_t;

/* A batch indexer for o (offset + fields * dim <= input_size). Returns it,
 * or NULL with err (bad sizes, out of memory). */
sparse_input_t *sparse_input_new(const sparse_input_opts_t *o, err_t *err);

/* Frees *self_p (may be NULL) and sets it to NULL. */
void sparse_input_destroy(sparse_input_t **self_p);

/* Indexes a batch of n (<= cap) samples with one id per field: ids
 * [n][fields]. */
void sparse_input_index(sparse_input_t *s, const uint64_t *ids, int n);

/* Indexes a batch of n samples whose fields hold bags of ids: bag (i, f) is
 * ids[bags[i * fields + f] .. bags[i * fields + f + 1]) (bags: n * fields
 * + 1 non-decreasing offsets from 0). Returns 0, or -1 with err when the
 * batch holds more than max_ids ids, n > cap, or the offsets are not
 * non-decreasing from 0 (nothing indexed). */
int sparse_input_index_bags(sparse_input_t *s, const uint64_t *ids, const uint32_t *bags, int n,
                            err_t *err);

/* The unique ids of field f in the batch last indexed: *ids gets them.
 * Returns their number. */
size_t sparse_input_unique(const sparse_input_t *s, int f, const uint64_t **ids);

/* Where the rows of field f's unique ids go (the caller fills them, in the
 * order of sparse_input_unique: n x dim floats). */
float *sparse_input_rows(sparse_input_t *s, int f);

/* Writes every sample's rows into its place in x [n][input_size] (the
 * dense features around them are the caller's). */
void sparse_input_gather(const sparse_input_t *s, float *x);

/* From dx [n][input_size], the gradient of the batch's objective with
 * respect to the model input: each unique row's gradient, the sum over the
 * samples that use it in batch order (sparse_input_grads). */
void sparse_input_scatter(sparse_input_t *s, const float *dx);

/* The row gradients of field f after sparse_input_scatter (n x dim floats,
 * in the order of sparse_input_unique). */
const float *sparse_input_grads(const sparse_input_t *s, int f);

#endif
