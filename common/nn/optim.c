/* optim.c - SGD, momentum (Nesterov), Adam, Adagrad and the lr schedules. */
#include "common/nn/optim.h"

#include <math.h>
#include <string.h>

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
    switch (o->kind) {
    case OPT_SGD:
        return 0;
    case OPT_MOMENTUM:
    case OPT_ADAGRAD:
        return 1;
    case OPT_ADAM:
        return 2;
    }
    return 0;
}

void optim_state_init(const optim_params_t *o, float *state, size_t n)
{
    size_t total = (size_t)optim_slots(o) * n;
    if (o->kind == OPT_ADAGRAD) {
        for (size_t i = 0; i < total; i++)
            state[i] = (float)o->initial_accumulator;
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
    const float flr = (float)lr;
    switch (o->kind) {
    case OPT_SGD:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            param[i] -= flr * grad[i];
        break;
    case OPT_MOMENTUM: {
        /* buf = mu buf + g;  p -= lr (g + mu buf) (Nesterov) or lr buf */
        const float mu = (float)o->momentum;
        float *buf = state;
        if (o->nesterov) {
#pragma omp simd
            for (size_t i = 0; i < n; i++) {
                buf[i] = mu * buf[i] + grad[i];
                param[i] -= flr * (grad[i] + mu * buf[i]);
            }
        } else {
#pragma omp simd
            for (size_t i = 0; i < n; i++) {
                buf[i] = mu * buf[i] + grad[i];
                param[i] -= flr * buf[i];
            }
        }
        break;
    }
    case OPT_ADAM: {
        /* m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
         * p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) */
        const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
        const float c1 = (float)(1.0 / (1.0 - pow(o->beta1, (double)t)));
        const float c2 = (float)(1.0 / sqrt(1.0 - pow(o->beta2, (double)t)));
        float *m = state, *v = state + slot_stride;
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float g = grad[i];
            m[i] = b1 * m[i] + (1.0f - b1) * g;
            v[i] = b2 * v[i] + (1.0f - b2) * g * g;
            param[i] -= flr * (m[i] * c1) / (sqrtf(v[i]) * c2 + eps);
        }
        break;
    }
    case OPT_ADAGRAD: {
        const float eps = (float)o->eps;
        float *acc = state;
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            acc[i] += grad[i] * grad[i];
            param[i] -= flr * grad[i] / (sqrtf(acc[i]) + eps);
        }
        break;
    }
    }
}
