/* rowwise_adagrad.c - row-wise Adagrad, FBGEMM's EXACT_ROWWISE_ADAGRAD and
 * DLRM's RowWiseSparseAdagrad: ONE accumulator per embedding row,
 *   acc += mean(g^2) over the row;  p -= lr g / (sqrt(acc) + eps),
 * so a row costs one state float instead of dim (Adagrad's row form).
 * The accumulator starts at initial_accumulator (FBGEMM's default is 0; set
 * optimizer.initial_accumulator = 0 to match it).
 *
 * A dense tensor has no rows: its dense update treats every parameter as a
 * row of one value (mean(g^2) = g^2), which is exactly Adagrad. That choice
 * keeps the dense update slice-independent (a server's shard gets what the
 * whole buffer gets) and lets a job use one optimizer name for both its
 * dense layers and its embedding tables. */
#include "common/nn/optim.h"

#include <math.h>

/* The accumulator's starting value. */
static double rowwise_initial(const optim_params_t *o)
{
    return o->initial_accumulator;
}

/* On a dense tensor every value is a row of one, so the update is
 * Adagrad's: the same function, not a copy of it. */
extern const optim_kind_t optim_adagrad;

static void rowwise_update(const optim_params_t *o, float *param, const float *grad, float *state,
                           size_t slot_stride, size_t n, long t, double lr)
{
    optim_adagrad.update(o, param, grad, state, slot_stride, n, t, lr);
}

/* One accumulator per row, whatever its width. */
static size_t rowwise_row_slots(size_t dim)
{
    (void)dim;
    return 1;
}

/* One row of dim values; state[0] is its accumulator. The mean of g^2 is
 * summed in double so that a wide row loses nothing to rounding. */
static void rowwise_update_row(const optim_params_t *o, float *param, const float *grad,
                               float *state, size_t dim, long t, double lr)
{
    (void)t;
    double sq = 0.0;
    for (size_t i = 0; i < dim; i++)
        sq += (double)grad[i] * grad[i];
    state[0] += (float)(sq / (double)(dim ? dim : 1));
    const float mult = (float)(lr / (sqrt((double)state[0]) + o->eps));
#pragma omp simd
    for (size_t i = 0; i < dim; i++)
        param[i] -= mult * grad[i];
}

const optim_kind_t optim_rowwise_adagrad = {
    .name = "rowwise_adagrad",
    .id = 4,
    .slots = 1,
    .default_lr = 0.01,
    .initial_state = rowwise_initial,
    .update = rowwise_update,
    .row_slots = rowwise_row_slots,
    .update_row = rowwise_update_row,
};
