/* sgd.c - plain stochastic gradient descent: p -= lr g. No state. */
#include "common/nn/optim.h"

/* p -= lr g over n parameters. */
static void sgd_update(const optim_params_t *o, float *param, const float *grad, float *state,
                       size_t slot_stride, size_t n, long t, double lr)
{
    (void)o;
    (void)state;
    (void)slot_stride;
    (void)t;
    const float flr = (float)lr;
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        param[i] -= flr * grad[i];
}

const optim_kind_t optim_sgd = {
    .name = "sgd",
    .id = 0,
    .slots = 0,
    .default_lr = 0.01,
    .update = sgd_update,
};
