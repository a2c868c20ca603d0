/* optim.c - the optimizer table (one row per optimizer, each defined in its
 * own file), the calls that go through it, and the lr schedules. */
#include "common/nn/optim.h"

#include <math.h>
#include <string.h>

/* The registered optimizers, one line each, in the order config messages
 * list them. OPTIMIZER(x) names the descriptor optim_x of common/nn/x.c. */
#define OPTIMIZERS(OPTIMIZER)                                                                      \
    OPTIMIZER(sgd)                                                                                 \
    OPTIMIZER(momentum)                                                                            \
    OPTIMIZER(adam)                                                                                \
    OPTIMIZER(adagrad)                                                                             \
    OPTIMIZER(rowwise_adagrad)

#define DECLARE(x) extern const optim_kind_t optim_##x;
#define ROW(x) &optim_##x,
OPTIMIZERS(DECLARE)
static const optim_kind_t *const TABLE[] = {OPTIMIZERS(ROW)};
#define N_TABLE (sizeof TABLE / sizeof TABLE[0])

const optim_kind_t *optim_at(int i)
{
    return i >= 0 && (size_t)i < N_TABLE ? TABLE[i] : NULL;
}

const optim_kind_t *optim_find(const char *name)
{
    for (size_t i = 0; name && i < N_TABLE; i++)
        if (strcmp(TABLE[i]->name, name) == 0)
            return TABLE[i];
    return NULL;
}

const optim_kind_t *optim_by_id(int id)
{
    for (size_t i = 0; i < N_TABLE; i++)
        if (TABLE[i]->id == id)
            return TABLE[i];
    return NULL;
}

const char *optim_id_name(int id)
{
    const optim_kind_t *k = optim_by_id(id);
    return k ? k->name : "?";
}

const optim_kind_t *optim_momentum_form(const optim_kind_t *k)
{
    for (size_t i = 0; k && i < N_TABLE; i++)
        if (TABLE[i]->momentum_form_of && strcmp(TABLE[i]->momentum_form_of, k->name) == 0)
            return TABLE[i];
    return NULL;
}

void optim_params_from_config(optim_params_t *o, const job_config_t *cfg)
{
    memset(o, 0, sizeof *o);
    o->kind = cfg->optimizer.kind;
    o->lr = cfg->optimizer.lr;
    o->beta1 = cfg->optimizer.beta1;
    o->beta2 = cfg->optimizer.beta2;
    o->eps = cfg->optimizer.eps;
    o->momentum = cfg->optimizer.momentum;
    o->nesterov = cfg->optimizer.nesterov;
    o->initial_accumulator = cfg->optimizer.initial_accumulator;
    o->schedule = cfg->optimizer.schedule;
    o->step_size = cfg->optimizer.step_size;
    o->gamma = cfg->optimizer.gamma;
    o->min_lr = cfg->optimizer.min_lr;
    o->decay_steps = cfg->optimizer.decay_steps;
}

int optim_slots(const optim_params_t *o)
{
    return o->kind->slots;
}

int optim_has_rows(const optim_params_t *o)
{
    return o->kind->update_row != NULL;
}

size_t optim_row_slots(const optim_params_t *o, size_t dim)
{
    return o->kind->row_slots ? o->kind->row_slots(dim) : 0;
}

void optim_row_state_init(const optim_params_t *o, float *state, size_t dim)
{
    const size_t n = optim_row_slots(o, dim);
    const float v = o->kind->initial_state ? (float)o->kind->initial_state(o) : 0.0f;
    for (size_t i = 0; i < n; i++)
        state[i] = v;
}

void optim_update_row(const optim_params_t *o, float *param, const float *grad, float *state,
                      size_t dim, long t, double lr)
{
    o->kind->update_row(o, param, grad, state, dim, t, lr);
}

void optim_state_init(const optim_params_t *o, float *state, size_t n)
{
    size_t total = (size_t)optim_slots(o) * n;
    if (o->kind->initial_state) {
        const float v = (float)o->kind->initial_state(o);
        for (size_t i = 0; i < total; i++)
            state[i] = v;
    } else if (total) {
        memset(state, 0, total * sizeof *state);
    }
}

double optim_lr(const optim_params_t *o, long step, long total_steps)
{
    switch (o->schedule) {
    case SCHED_CONSTANT:
        return o->lr;
    case SCHED_STEP:
        return o->lr * pow(o->gamma, (double)(step / (o->step_size > 0 ? o->step_size : 1)));
    case SCHED_COSINE: {
        long span = o->decay_steps > 0 ? o->decay_steps : total_steps;
        if (span <= 0)
            return o->lr;
        double frac = step >= span ? 1.0 : (double)step / (double)span;
        return o->min_lr + (o->lr - o->min_lr) * 0.5 * (1.0 + cos(M_PI * frac));
    }
    }
    return o->lr;
}

void optim_update(const optim_params_t *o, float *param, const float *grad, float *state,
                  size_t n, long t, double lr)
{
    optim_update_slice(o, param, grad, state, n, n, t, lr);
}

void optim_update_slice(const optim_params_t *o, float *param, const float *grad, float *state,
                        size_t slot_stride, size_t n, long t, double lr)
{
    o->kind->update(o, param, grad, state, slot_stride, n, t, lr);
}
