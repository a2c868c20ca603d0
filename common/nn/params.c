/* params.c - flat parameter table and Keras-style initialisers (see params.h). */
#include "common/nn/params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util/rng.h"

/* Random stream of tensor i: "INIT" in the high word, so it never meets the
 * data permutation's streams ("PERM"). */
#define INIT_STREAM(i) (0x494E495400000000ull | (uint64_t)(i))

param_spec_t *params_add(param_table_t *tab, const char *name, int ndim, const int *shape,
                         init_kind_t init, err_t *err)
{
    if (tab->n >= PARAMS_MAX) {
        err_set(err, "model has more than %d parameter tensors", PARAMS_MAX);
        return NULL;
    }
    if (ndim < 1 || ndim > 4) {
        err_set(err, "%s: tensor rank %d not in 1..4", name, ndim);
        return NULL;
    }
    param_spec_t *p = &tab->t[tab->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->size = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->size *= (size_t)shape[i];
    }
    p->offset = tab->n_params;
    p->init = init;
    tab->n_params += p->size;
    return p;
}

int params_find(const param_table_t *tab, const char *name)
{
    for (int i = 0; i < tab->n; i++)
        if (strcmp(tab->t[i].name, name) == 0)
            return i;
    return -1;
}

/* Fills q (rows x cols, row-major, rows >= cols... or the transpose) with the
 * Keras Orthogonal initial value of tensor `idx`: a normal matrix of shape
 * (max, min), its QR's Q with the signs of diag(R) folded in (which is what
 * modified Gram-Schmidt yields directly), transposed when rows < cols.
 * Returns 0, or -1 on allocation failure. */
static int orthogonal_fill(double *q, int rows, int cols, uint64_t seed, int idx)
{
    int m = rows > cols ? rows : cols; /* a is m x n, m >= n */
    int n = rows > cols ? cols : rows;
    double *a = malloc((size_t)m * n * sizeof *a);
    if (!a)
        return -1;
    for (size_t i = 0; i < (size_t)m * n; i++)
        a[i] = rng_normal(seed, INIT_STREAM(idx), i);
    /* Modified Gram-Schmidt on the n columns of a (column j: a[i*n + j]). */
    for (int j = 0; j < n; j++) {
        for (int k = 0; k < j; k++) {
            double dot = 0;
            for (int i = 0; i < m; i++)
                dot += a[(size_t)i * n + k] * a[(size_t)i * n + j];
            for (int i = 0; i < m; i++)
                a[(size_t)i * n + j] -= dot * a[(size_t)i * n + k];
        }
        double norm = 0;
        for (int i = 0; i < m; i++)
            norm += a[(size_t)i * n + j] * a[(size_t)i * n + j];
        norm = sqrt(norm);
        if (norm == 0)
            norm = 1; /* probability zero; keep the column as is */
        for (int i = 0; i < m; i++)
            a[(size_t)i * n + j] /= norm;
    }
    if (rows >= cols) {
        memcpy(q, a, (size_t)m * n * sizeof *q);
    } else { /* q = a^T: rows = n, cols = m */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                q[(size_t)j * m + i] = a[(size_t)i * n + j];
    }
    free(a);
    return 0;
}

int params_init_slice(const param_table_t *tab, uint64_t seed, size_t begin, size_t end,
                      float *out, err_t *err)
{
    if (begin > end || end > tab->n_params)
        return err_set(err, "init slice [%zu, %zu) outside [0, %zu)", begin, end, tab->n_params);
    for (int ti = 0; ti < tab->n; ti++) {
        const param_spec_t *p = &tab->t[ti];
        size_t lo = p->offset > begin ? p->offset : begin;
        size_t hi = p->offset + p->size < end ? p->offset + p->size : end;
        if (lo >= hi)
            continue;
        float *dst = out + (lo - begin);
        size_t first = lo - p->offset, count = hi - lo;
        switch (p->init) {
        case INIT_ZEROS:
            memset(dst, 0, count * sizeof *dst);
            break;
        case INIT_UNIT_FORGET_BIAS:
            for (size_t i = 0; i < count; i++) {
                size_t k = first + i;
                dst[i] = (k >= (size_t)p->units && k < 2 * (size_t)p->units) ? 1.0f : 0.0f;
            }
            break;
        case INIT_GLOROT_UNIFORM: {
            double limit = sqrt(6.0 / (double)(p->fan_in + p->fan_out));
            for (size_t i = 0; i < count; i++)
                dst[i] = (float)((2.0 * rng_uniform(seed, INIT_STREAM(ti), first + i) - 1.0) * limit);
            break;
        }
        case INIT_UNIFORM_ROWS: {
            const double limit = sqrt(1.0 / (double)p->rows);
            for (size_t i = 0; i < count; i++)
                dst[i] = (float)((2.0 * rng_uniform(seed, INIT_STREAM(ti), first + i) - 1.0) * limit);
            break;
        }
        case INIT_ORTHOGONAL: {
            double *q = malloc(p->size * sizeof *q);
            if (!q || orthogonal_fill(q, p->rows, p->cols, seed, ti) != 0) {
                free(q);
                return err_set(err, "%s: out of memory for the orthogonal initialiser", p->name);
            }
            for (size_t i = 0; i < count; i++)
                dst[i] = (float)q[first + i];
            free(q);
            break;
        }
        }
    }
    return 0;
}
