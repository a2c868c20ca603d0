/* momentum.c - SGD with momentum, PyTorch's form, optionally Nesterov's:
 * buf = mu buf + g;  p -= lr buf, or p -= lr (g + mu buf) with nesterov.
 * State: one slot, the buffer (starts at 0). */
#include "common/nn/optim.h"

/* One update of n parameters and their buffers (slot 0 of state). */
static void momentum_update(const optim_params_t *o, float *param, const float *grad,
                            float *state, size_t slot_stride, size_t n, long t, double lr)
{
    (void)slot_stride;
    (void)t;
    const float flr = (float)lr;
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
}

const optim_kind_t optim_momentum = {
    .name = "momentum",
    .id = 1,
    .slots = 1,
    .default_lr = 0.01,
    .default_momentum = 0.9,
    .momentum_form_of = "sgd",
    .update = momentum_update,
};
