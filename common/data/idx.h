/* idx.h - reader for IDX files (the MNIST / Fashion-MNIST layout), raw or gzip.
 *
 * An IDX file is a 4-byte magic (0, 0, type code, number of dimensions),
 * the dimensions as big-endian uint32, then the data. We read unsigned-byte
 * files (type 0x08), which is what MNIST-layout data sets ship.
 */
#ifndef PST_IDX_H
#define PST_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"

#define IDX_MAX_DIMS 4

typedef struct {
    int ndim;
    uint32_t dims[IDX_MAX_DIMS];
    size_t count;        /* dims[0]: number of records */
    size_t record_size;  /* product of dims[1..] (1 for a label file) */
    uint8_t *data;       /* count * record_size bytes, owned */
} idx_t;

/* Reads the records [first, first + n) of PATH (gzip or raw, detected by
 * content); n = 0 means all records from first on. Checks the magic, the type,
 * the dimensions and that the file holds exactly the data its header
 * announces. Returns a new idx_t the caller destroys, or NULL with err saying
 * "PATH: what is wrong". */
idx_t *idx_load(const char *path, size_t first, size_t n, err_t *err);

/* Reads and checks only the header of PATH into *hdr (ndim, dims, count,
 * record_size; data is NULL, nothing to free): how many records the file
 * announces, without reading them. The data length is not checked (idx_load
 * does that). Returns 0, or -1 with err saying "PATH: what is wrong". */
int idx_probe(const char *path, idx_t *hdr, err_t *err);

/* Frees *self_p (may be NULL) and sets it to NULL. */
void idx_destroy(idx_t **self_p);

#endif
