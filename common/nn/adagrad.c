/* adagrad.c - Adagrad, PyTorch's form: acc += g^2; p -= lr g / (sqrt(acc) + eps).
 * State: one slot, the accumulator, starting at initial_accumulator. The row
 * form is PyTorch's sparse Adagrad (torch.optim.Adagrad on a sparse gradient,
 * lr_decay = 0): the same update on each element of a touched row, dim
 * accumulators per row. */
#include "common/nn/optim.h"

#include <math.h>

/* The accumulator's starting value. */
static double adagrad_initial(const optim_params_t *o)
{
    return o->initial_accumulator;
}

/* One update of n parameters and their accumulators (slot 0 of state). */
static void adagrad_update(const optim_params_t *o, float *param, const float *grad,
                           float *state, size_t slot_stride, size_t n, long t, double lr)
{
    (void)slot_stride;
    (void)t;
    const float flr = (float)lr;
    const float eps = (float)o->eps;
    float *acc = state;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        acc[i] += grad[i] * grad[i];
        param[i] -= flr * grad[i] / (sqrtf(acc[i]) + eps);
    }
}

/* One accumulator per element of a row. */
static size_t adagrad_row_slots(size_t dim)
{
    return dim;
}

/* The elementwise update over one row and its dim accumulators. */
static void adagrad_update_row(const optim_params_t *o, float *param, const float *grad,
                               float *state, size_t dim, long t, double lr)
{
    adagrad_update(o, param, grad, state, dim, dim, t, lr);
}

const optim_kind_t optim_adagrad = {
    .name = "adagrad",
    .id = 3,
    .slots = 1,
    .default_lr = 0.001,
    .initial_state = adagrad_initial,
    .update = adagrad_update,
    .row_slots = adagrad_row_slots,
    .update_row = adagrad_update_row,
};
