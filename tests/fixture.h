/* fixture.h - loader for the PyTorch reference tensors in the tests/fixtures/ .bin files,
 * written by tests/fixtures/make_torch_fixtures.py, that the tests compare
 * pstrain's layers, loss and optimizers against.
 *
 * File format (little-endian):
 *     char     magic[8] = "PSTFIXT\0"
 *     uint32   version  = 1
 *     uint32   n_tensors
 *     n_tensors times:
 *         uint16  name_len; char name[name_len]   (no NUL; names are unique)
 *         uint32  ndim                             (0..4; 0 = scalar)
 *         uint32  dims[ndim]
 *         float32 data[prod(dims)]                 (row-major; a scalar has one value)
 * Integer-valued tensors (labels) are stored as float32. Nothing may follow
 * the last tensor.
 */
#ifndef PST_FIXTURE_H
#define PST_FIXTURE_H

#include <stddef.h>

#include "common/util/err.h"

#define FIXTURE_MAX_DIMS 4

typedef struct fixture_t fixture_t;

/* Reads and checks the whole of PATH. Returns a new fixture the caller
 * destroys, or NULL with err set to "PATH: what is wrong" (missing file, bad
 * magic, other version, truncation, absurd sizes, trailing bytes, duplicate
 * names). Never reads outside the file's bytes. */
fixture_t *fixture_load(const char *path, err_t *err);

/* Returns the data of tensor NAME (owned by f, valid until fixture_destroy)
 * and sets *count (if count is not NULL) to its element count, 1 for a
 * scalar. Returns NULL, leaving *count alone, if there is no such tensor. */
const float *fixture_get(const fixture_t *f, const char *name, size_t *count);

/* Sets *ndim (0 for a scalar) and dims[0 .. ndim-1] of tensor NAME; the
 * other entries of dims are set to 1. Returns 0, or -1 (nothing changed) if
 * there is no such tensor. */
int fixture_shape(const fixture_t *f, const char *name, int *ndim, int dims[FIXTURE_MAX_DIMS]);

/* Returns the number of tensors in f. */
size_t fixture_size(const fixture_t *f);

/* Returns the name of tensor I (in file order; owned by f), or NULL if
 * i >= fixture_size(f). Lets a test check that it compared every tensor. */
const char *fixture_name(const fixture_t *f, size_t i);

/* Frees *self_p (may be NULL or point to NULL) and sets it to NULL. */
void fixture_destroy(fixture_t **self_p);

#endif
