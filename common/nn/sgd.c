/* sgd.c - plain stochastic gradient descent: p -= lr g. No state; the row
 * form (sparse embedding rows) is the same update on each touched row. */
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

/* No state per row. */
static size_t sgd_row_slots(size_t dim)
{
    (void)dim;
    return 0;
}

/* p -= lr g over one row of dim values. */
static void sgd_update_row(const optim_params_t *o, float *param, const float *grad, float *state,
                           size_t dim, long t, double lr)
{
    sgd_update(o, param, grad, state, dim, dim, t, lr);
}

const optim_kind_t optim_sgd = {
    .name = "sgd",
    .id = 0,
    .slots = 0,
    .default_lr = 0.01,
    .plain_step = 1,
    .update = sgd_update,
    .row_slots = sgd_row_slots,
    .update_row = sgd_update_row,
};
