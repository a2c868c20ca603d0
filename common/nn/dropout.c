/* dropout.c - inverted dropout: in training each value is kept with
 * probability 1 - rate and scaled by 1 / (1 - rate), else zeroed; in
 * evaluation, prediction and ONNX it is the identity.
 *
 * The mask is a pure function of (job seed, the layer's position, the step,
 * the sample's index in the step's GLOBAL batch, the value's index in the
 * sample), drawn from Philox (common/util/rng.h): a trainer that computes
 * samples [lo, hi) of the global batch draws exactly the bits a single
 * process would draw for them, so BSP training with any number of trainers
 * (or threads) equals single-process training. Value j of sample s uses
 * word j % 4 of the Philox block (seed, stream, counter):
 *   stream  = "DR" << 48 | layer index << 40 | step (40 bits)
 *   counter = s << 32 | j / 4
 * and is kept when the word is below (1 - rate) 2^32. */
#include <stdint.h>
#include <string.h>

#include "common/nn/layer.h"
#include "common/util/rng.h"

enum { K_RATE };

static const layer_key_t KEYS[] = {
    {"rate", LKEY_FLOAT, NULL, "[0,1)"},
    {NULL},
};

#define STREAM_TAG 0x4452ull /* "DR": never meets the init ("INIT") or data ("PERM") streams */
#define STEP_BITS 40

typedef struct {
    uint64_t seed;
    uint64_t keep_below;  /* a word is kept when below this (up to 2^32) */
    float scale;          /* 1 / (1 - rate) */
    int index;            /* the layer's position in model.layers */
    int n;                /* values per sample */
} dropout_plan_t;

_Static_assert(sizeof(dropout_plan_t) <= LAYER_PLAN_BYTES, "dropout_plan_t does not fit a plan");

/* L's plan data. */
static const dropout_plan_t *plan_of(const layer_t *L)
{
    return (const dropout_plan_t *)L->plan.bytes;
}

/* Any shape; output = input shape. Returns 0. */
static int dropout_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err)
{
    (void)err;
    dropout_plan_t *p = (dropout_plan_t *)L->plan.bytes;
    const double rate = c->v[K_RATE].f;
    p->seed = b->seed;
    p->keep_below = (uint64_t)((1.0 - rate) * 4294967296.0);
    p->scale = (float)(1.0 / (1.0 - rate));
    p->index = b->index;
    p->n = shape_size(&L->in);
    L->out = L->in;
    return 0;
}

/* One buffer: each value's factor (0 or scale) from the last training pass. */
static int dropout_buffers(const layer_t *L, int B, size_t sizes[LAYER_MAX_BUFS])
{
    sizes[0] = (size_t)B * plan_of(L)->n * sizeof(float);
    return 1;
}

/* mask [B][n] = 0 or scale for the pass's samples (global indices
 * run->first + b) at run->step. */
static void make_mask(float *mask, const dropout_plan_t *p, const model_run_t *run, int B)
{
    const uint64_t stream = STREAM_TAG << 48 | (uint64_t)p->index << STEP_BITS |
                            ((uint64_t)run->step & ((1ull << STEP_BITS) - 1));
    for (int b = 0; b < B; b++) {
        const uint64_t s = (uint64_t)(run->first + b);
        float *m = mask + (size_t)b * p->n;
        for (int j = 0; j < p->n; j += 4) {
            uint32_t w[4];
            rng_philox(p->seed, stream, s << 32 | (uint64_t)(j / 4), w);
            for (int k = 0; k < 4 && j + k < p->n; k++)
                m[j + k] = (uint64_t)w[k] < p->keep_below ? p->scale : 0.0f;
        }
    }
}

/* Training: out = in * mask (the mask kept for backward); else out = in. */
static void dropout_forward(const layer_t *L, const layer_pass_t *x)
{
    const dropout_plan_t *p = plan_of(L);
    const size_t n = (size_t)x->B * p->n;
    if (!x->run || !x->run->training) {
        memcpy(x->out, x->in, n * sizeof *x->out);
        return;
    }
    float *mask = x->buf[0];
    make_mask(mask, p, x->run, x->B);
    for (size_t i = 0; i < n; i++)
        x->out[i] = x->in[i] * mask[i];
}

/* din = dout * mask in training, dout otherwise. */
static void dropout_backward(const layer_t *L, const layer_pass_t *x)
{
    if (!x->din)
        return;
    const size_t n = (size_t)x->B * plan_of(L)->n;
    if (!x->run || !x->run->training) {
        memcpy(x->din, x->dout, n * sizeof *x->din);
        return;
    }
    const float *mask = x->buf[0];
    for (size_t i = 0; i < n; i++)
        x->din[i] = x->dout[i] * mask[i];
}

/* The identity at inference: no node. */
static const char *dropout_emit(onnx_graph_t *g, const layer_t *L, const char *base,
                                const char *x)
{
    (void)g;
    (void)L;
    (void)base;
    return x;
}

const layer_kind_t layer_dropout = {
    .name = "dropout",
    .keys = KEYS,
    .plan = dropout_plan,
    .buffers = dropout_buffers,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .emit = dropout_emit,
};
