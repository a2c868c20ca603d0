/* sparse_input.c - the embedding rows of one batch (see sparse_input.h).
 *
 * Deduplication uses one open-addressing table of positions per call,
 * sized to a power of two at least twice the batch, cleared by generation
 * stamps rather than memset, so indexing a batch costs O(n) whatever cap. */
#include "common/nn/sparse_input.h"

#include <stdlib.h>
#include <string.h>

#define SLOT_EMPTY 0u /* a slot whose stamp is not the current generation */

typedef struct {
    uint64_t id;
    uint32_t pos;   /* place among the field's unique ids */
    uint32_t stamp; /* generation that wrote it */
} slot_t;

struct sparse_input_t {
    int fields, dim, offset, input_size, cap;
    int n;               /* samples of the batch last indexed */
    size_t *n_unique;    /* [fields] */
    uint64_t *unique;    /* [fields][cap] */
    uint32_t *pos;       /* [cap][fields]: the place of sample i's id of field f */
    float *rows, *grads; /* [fields][cap][dim] each */
    slot_t *slots;       /* the dedup table, mask + 1 of them */
    size_t mask;
    uint32_t gen;        /* its current generation (never SLOT_EMPTY) */
};

sparse_input_t *sparse_input_new(int fields, int dim, int offset, int input_size, int cap,
                                 err_t *err)
{
    if (fields < 1 || dim < 1 || offset < 0 || cap < 1 ||
        (long)offset + (long)fields * dim > input_size)
        return err_set(err, "sparse input: %d fields of %d floats from float %d do not fit a "
                       "sample of %d floats (batch %d)", fields, dim, offset, input_size, cap),
               NULL;
    sparse_input_t *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, "sparse input: out of memory"), NULL;
    *s = (sparse_input_t){.fields = fields, .dim = dim, .offset = offset,
                          .input_size = input_size, .cap = cap, .gen = SLOT_EMPTY};
    size_t slots = 1;
    while (slots < 2 * (size_t)cap)
        slots <<= 1;
    s->mask = slots - 1;
    const size_t per = (size_t)fields * cap;
    s->n_unique = calloc((size_t)fields, sizeof *s->n_unique);
    s->unique = malloc(per * sizeof *s->unique);
    s->pos = malloc(per * sizeof *s->pos);
    s->rows = malloc(per * dim * sizeof *s->rows);
    s->grads = malloc(per * dim * sizeof *s->grads);
    s->slots = calloc(slots, sizeof *s->slots);
    if (!s->n_unique || !s->unique || !s->pos || !s->rows || !s->grads || !s->slots) {
        sparse_input_destroy(&s);
        return err_set(err, "sparse input: out of memory for a batch of %d", cap), NULL;
    }
    return s;
}

void sparse_input_destroy(sparse_input_t **self_p)
{
    sparse_input_t *s = self_p ? *self_p : NULL;
    if (!s)
        return;
    free(s->n_unique);
    free(s->unique);
    free(s->pos);
    free(s->rows);
    free(s->grads);
    free(s->slots);
    free(s);
    *self_p = NULL;
}

/* A 64-bit mix (splitmix64's finaliser): skewed ids spread over the slots. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A new generation of the dedup table (clearing it when the stamps wrap). */
static void next_generation(sparse_input_t *s)
{
    if (++s->gen == SLOT_EMPTY) {
        memset(s->slots, 0, (s->mask + 1) * sizeof *s->slots);
        s->gen = 1;
    }
}

/* Field f's unique ids and places for the n ids ids[i * fields + f]. */
static void index_field(sparse_input_t *s, int f, const uint64_t *ids, int n)
{
    next_generation(s);
    uint64_t *u = s->unique + (size_t)f * s->cap;
    size_t nu = 0;
    for (int i = 0; i < n; i++) {
        const uint64_t id = ids[(size_t)i * s->fields + f];
        size_t k = mix(id) & s->mask;
        while (s->slots[k].stamp == s->gen && s->slots[k].id != id)
            k = (k + 1) & s->mask;
        if (s->slots[k].stamp != s->gen) {
            s->slots[k] = (slot_t){.id = id, .pos = (uint32_t)nu, .stamp = s->gen};
            u[nu++] = id;
        }
        s->pos[(size_t)i * s->fields + f] = s->slots[k].pos;
    }
    s->n_unique[f] = nu;
}

void sparse_input_index(sparse_input_t *s, const uint64_t *ids, int n)
{
    s->n = n < s->cap ? n : s->cap;
    for (int f = 0; f < s->fields; f++)
        index_field(s, f, ids, s->n);
}

size_t sparse_input_unique(const sparse_input_t *s, int f, const uint64_t **ids)
{
    *ids = s->unique + (size_t)f * s->cap;
    return s->n_unique[f];
}

float *sparse_input_rows(sparse_input_t *s, int f)
{
    return s->rows + (size_t)f * s->cap * s->dim;
}

const float *sparse_input_grads(const sparse_input_t *s, int f)
{
    return s->grads + (size_t)f * s->cap * s->dim;
}

void sparse_input_gather(const sparse_input_t *s, float *x)
{
    const size_t d = (size_t)s->dim;
    for (int i = 0; i < s->n; i++) {
        float *dst = x + (size_t)i * s->input_size + s->offset;
        for (int f = 0; f < s->fields; f++) {
            const float *row = s->rows + ((size_t)f * s->cap + s->pos[(size_t)i * s->fields + f]) * d;
            memcpy(dst + (size_t)f * d, row, d * sizeof *dst);
        }
    }
}

void sparse_input_scatter(sparse_input_t *s, const float *dx)
{
    const size_t d = (size_t)s->dim;
    for (int f = 0; f < s->fields; f++)
        memset(s->grads + (size_t)f * s->cap * d, 0, s->n_unique[f] * d * sizeof *s->grads);
    for (int i = 0; i < s->n; i++) {
        const float *src = dx + (size_t)i * s->input_size + s->offset;
        for (int f = 0; f < s->fields; f++) {
            float *g = s->grads + ((size_t)f * s->cap + s->pos[(size_t)i * s->fields + f]) * d;
            const float *v = src + (size_t)f * d;
            for (size_t k = 0; k < d; k++)
                g[k] += v[k];
        }
    }
}
