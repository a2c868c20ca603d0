/* sparse_input.c - the embedding rows of one batch (see sparse_input.h).
 *
 * A batch is held as bags: bag (i, f) is ids [bag[i F + f], bag[i F + f + 1])
 * (one id per field is the case bag[k] = k). The unique ids of all fields
 * share one array, field after field (field f's from ustart[f]), and so do
 * their rows and gradients; pos[k] is the place of id occurrence k among
 * them. Deduplication uses one open-addressing table, at least twice the
 * largest batch, cleared by generation stamps rather than memset, so
 * indexing a batch costs O(ids) whatever its capacity. */
#include "common/nn/sparse_input.h"

#include <stdlib.h>
#include <string.h>

#include "common/util/hash.h"

#define SLOT_EMPTY 0u /* a slot whose stamp is not the current generation */

typedef struct {
    uint64_t id;
    uint32_t pos;   /* place among the unique ids */
    uint32_t stamp; /* generation that wrote it */
} slot_t;

struct sparse_input_t {
    sparse_input_opts_t o;
    int n;               /* samples of the batch last indexed */
    uint32_t *bag;       /* [cap * fields + 1] offsets of the bags into the ids */
    size_t *ustart;      /* [fields + 1]: field f's unique ids are [ustart[f], ustart[f + 1]) */
    uint64_t *unique;    /* [max_ids] */
    uint32_t *pos;       /* [max_ids]: the place of each id occurrence among them */
    float *rows, *grads; /* [max_ids][dim] each */
    slot_t *slots;       /* the dedup table, mask + 1 of them */
    size_t mask;
    uint32_t gen;        /* its current generation (never SLOT_EMPTY) */
};

/* Allocates s's arrays for s->o. Returns 0, or -1 (out of memory). */
static int alloc_arrays(sparse_input_t *s)
{
    const size_t ids = (size_t)s->o.max_ids, d = (size_t)s->o.dim;
    size_t slots = 1;
    while (slots < 2 * ids)
        slots <<= 1;
    s->mask = slots - 1;
    s->bag = malloc(((size_t)s->o.cap * s->o.fields + 1) * sizeof *s->bag);
    s->ustart = calloc((size_t)s->o.fields + 1, sizeof *s->ustart);
    s->unique = malloc(ids * sizeof *s->unique);
    s->pos = malloc(ids * sizeof *s->pos);
    s->rows = malloc(ids * d * sizeof *s->rows);
    s->grads = malloc(ids * d * sizeof *s->grads);
    s->slots = calloc(slots, sizeof *s->slots);
    return s->bag && s->ustart && s->unique && s->pos && s->rows && s->grads && s->slots ? 0 : -1;
}

sparse_input_t *sparse_input_new(const sparse_input_opts_t *o, err_t *err)
{
    if (o->fields < 1 || o->dim < 1 || o->offset < 0 || o->cap < 1 || o->max_ids < 0 ||
        (long)o->offset + (long)o->fields * o->dim > o->input_size)
        return err_set(err, "sparse input: %d fields of %d floats from float %d do not fit a "
                       "sample of %d floats (batch %d)", o->fields, o->dim, o->offset,
                       o->input_size, o->cap),
               NULL;
    if ((size_t)o->cap * (size_t)o->fields >= UINT32_MAX || o->combiner > SPARSE_MEAN)
        return err_set(err, "sparse input: a batch of %d samples x %d fields is too large, or "
                       "an unknown combiner", o->cap, o->fields), NULL;
    sparse_input_t *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(err, "sparse input: out of memory"), NULL;
    s->o = *o;
    if (s->o.max_ids == 0)
        s->o.max_ids = o->cap * o->fields;
    s->gen = SLOT_EMPTY;
    if (alloc_arrays(s) != 0) {
        sparse_input_destroy(&s);
        return err_set(err, "sparse input: out of memory for %d ids", o->max_ids), NULL;
    }
    return s;
}

void sparse_input_destroy(sparse_input_t **self_p)
{
    sparse_input_t *s = self_p ? *self_p : NULL;
    if (!s)
        return;
    free(s->bag);
    free(s->ustart);
    free(s->unique);
    free(s->pos);
    free(s->rows);
    free(s->grads);
    free(s->slots);
    free(s);
    *self_p = NULL;
}

/* A new generation of the dedup table (clearing it when the stamps wrap). */
static void next_generation(sparse_input_t *s)
{
    if (++s->gen == SLOT_EMPTY) {
        memset(s->slots, 0, (s->mask + 1) * sizeof *s->slots);
        s->gen = 1;
    }
}

/* Field f's unique ids (appended after field f - 1's) and the places of
 * its id occurrences, from s->bag. */
static void index_field(sparse_input_t *s, int f, const uint64_t *ids)
{
    const int F = s->o.fields;
    next_generation(s);
    size_t nu = s->ustart[f];
    for (int i = 0; i < s->n; i++)
        for (uint32_t k = s->bag[i * F + f]; k < s->bag[i * F + f + 1]; k++) {
            const uint64_t id = ids[k];
            size_t h = hash_mix64(id) & s->mask; /* skewed ids spread over the slots */
            while (s->slots[h].stamp == s->gen && s->slots[h].id != id)
                h = (h + 1) & s->mask;
            if (s->slots[h].stamp != s->gen) {
                s->slots[h] = (slot_t){.id = id, .pos = (uint32_t)nu, .stamp = s->gen};
                s->unique[nu++] = id;
            }
            s->pos[k] = s->slots[h].pos;
        }
    s->ustart[f + 1] = nu;
}

/* Indexes every field from s->bag and s->n. */
static void index_all(sparse_input_t *s, const uint64_t *ids)
{
    s->ustart[0] = 0;
    for (int f = 0; f < s->o.fields; f++)
        index_field(s, f, ids);
}

void sparse_input_index(sparse_input_t *s, const uint64_t *ids, int n)
{
    s->n = n < s->o.cap ? n : s->o.cap;
    const uint32_t bags = (uint32_t)s->n * (uint32_t)s->o.fields;
    for (uint32_t k = 0; k <= bags; k++)
        s->bag[k] = k;
    index_all(s, ids);
}

int sparse_input_index_bags(sparse_input_t *s, const uint64_t *ids, const uint32_t *bags, int n,
                            err_t *err)
{
    if (n < 0 || n > s->o.cap)
        return err_set(err, "sparse input: a batch of %d samples, at most %d", n, s->o.cap);
    const size_t nb = (size_t)n * s->o.fields;
    if (bags[0] != 0)
        return err_set(err, "sparse input: the first bag starts at %u, not 0", bags[0]);
    for (size_t k = 0; k < nb; k++)
        if (bags[k + 1] < bags[k])
            return err_set(err, "sparse input: bag %zu ends before it starts", k);
    if (bags[nb] > (uint32_t)s->o.max_ids)
        return err_set(err, "sparse input: %u ids in the batch, at most %d", bags[nb],
                       s->o.max_ids);
    memcpy(s->bag, bags, (nb + 1) * sizeof *bags);
    s->n = n;
    index_all(s, ids);
    return 0;
}

size_t sparse_input_unique(const sparse_input_t *s, int f, const uint64_t **ids)
{
    *ids = s->unique + s->ustart[f];
    return s->ustart[f + 1] - s->ustart[f];
}

float *sparse_input_rows(sparse_input_t *s, int f)
{
    return s->rows + s->ustart[f] * (size_t)s->o.dim;
}

const float *sparse_input_grads(const sparse_input_t *s, int f)
{
    return s->grads + s->ustart[f] * (size_t)s->o.dim;
}

/* The weight of each id of a bag of `count` ids: 1 (sum) or 1/count (mean). */
static float bag_weight(const sparse_input_t *s, uint32_t count)
{
    return s->o.combiner == SPARSE_MEAN && count > 0 ? 1.0f / (float)count : 1.0f;
}

void sparse_input_gather(const sparse_input_t *s, float *x)
{
    const size_t d = (size_t)s->o.dim;
    const int F = s->o.fields;
    for (int i = 0; i < s->n; i++)
        for (int f = 0; f < F; f++) {
            float *v = x + (size_t)i * s->o.input_size + s->o.offset + (size_t)f * d;
            const uint32_t b = s->bag[i * F + f], e = s->bag[i * F + f + 1];
            if (e - b == 1) { /* the common case: one id */
                memcpy(v, s->rows + (size_t)s->pos[b] * d, d * sizeof *v);
                continue;
            }
            memset(v, 0, d * sizeof *v);
            for (uint32_t k = b; k < e; k++) {
                const float *row = s->rows + (size_t)s->pos[k] * d;
                for (size_t j = 0; j < d; j++)
                    v[j] += row[j];
            }
            const float w = bag_weight(s, e - b);
            for (size_t j = 0; w != 1.0f && j < d; j++)
                v[j] *= w;
        }
}

void sparse_input_scatter(sparse_input_t *s, const float *dx)
{
    const size_t d = (size_t)s->o.dim;
    const int F = s->o.fields;
    memset(s->grads, 0, s->ustart[F] * d * sizeof *s->grads);
    for (int i = 0; i < s->n; i++)
        for (int f = 0; f < F; f++) {
            const float *g = dx + (size_t)i * s->o.input_size + s->o.offset + (size_t)f * d;
            const uint32_t b = s->bag[i * F + f], e = s->bag[i * F + f + 1];
            const float w = bag_weight(s, e - b);
            for (uint32_t k = b; k < e; k++) {
                float *r = s->grads + (size_t)s->pos[k] * d;
                for (size_t j = 0; j < d; j++)
                    r[j] += w * g[j];
            }
        }
}
