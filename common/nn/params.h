/* params.h - the flat parameter layout of a model and its initial values.
 *
 * All of a model's parameters live in one float buffer [0, n_params); each
 * tensor is a named view (name, shape, offset). Gradients and optimizer
 * state use the same layout, and the flat index is the key space that
 * parameter servers shard, so initialisation works on any slice
 * [begin, end) alone: each tensor's values are a pure function of
 * (seed, tensor index) (see rng.h), and the result of params_init_slice for
 * a slice equals that slice of the whole buffer, bit for bit.
 */
#ifndef PST_PARAMS_H
#define PST_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"

#define PARAMS_MAX 64
#define PARAM_NAME_LEN 48

typedef enum {
    INIT_ZEROS = 0,
    INIT_GLOROT_UNIFORM, /* U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Keras default) */
    INIT_ORTHOGONAL,     /* Keras Orthogonal(gain 1) of a rows x cols matrix */
    INIT_UNIT_FORGET_BIAS, /* Keras unit_forget_bias: zeros, the second quarter [H, 2H) = 1 */
    INIT_UNIFORM_ROWS,   /* U(-l, l), l = sqrt(1 / rows): DLRM's embedding tables */
} init_kind_t;

typedef struct {
    char name[PARAM_NAME_LEN]; /* e.g. "conv1.weight" */
    int ndim;
    int shape[4];
    size_t offset;             /* first flat index */
    size_t size;               /* number of floats */
    init_kind_t init;
    int fan_in, fan_out;       /* glorot */
    int rows, cols;            /* orthogonal: the tensor read as a rows x cols matrix */
    int units;                 /* unit forget bias: H (a quarter of the tensor) */
} param_spec_t;

typedef struct {
    int n;
    param_spec_t t[PARAMS_MAX];
    size_t n_params;
} param_table_t;

/* Appends a tensor of the given shape at the end of the table and returns its
 * spec (offset and size filled), or NULL with err when the table is full. */
param_spec_t *params_add(param_table_t *tab, const char *name, int ndim, const int *shape,
                         init_kind_t init, err_t *err);

/* Returns the index of the tensor named `name`, or -1. */
int params_find(const param_table_t *tab, const char *name);

/* Writes the initial values of flat indices [begin, end) into out[0 .. end-begin).
 * Returns 0, or -1 with err on a bad range or an allocation failure
 * (orthogonal tensors need a scratch matrix of the whole tensor). */
int params_init_slice(const param_table_t *tab, uint64_t seed, size_t begin, size_t end,
                      float *out, err_t *err);

#endif
