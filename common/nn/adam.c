/* adam.c - Adam (Kingma and Ba), PyTorch's form:
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
 * State: two slots, m then v (both start at 0).
 *
 * The row form is lazy Adam, torch.optim.SparseAdam's: only the rows a batch
 * touched have their moments updated (the others keep theirs, not decayed),
 * and the bias correction uses the global step t:
 *   m += (1-b1) (g - m); v += (1-b2) (g^2 - v);
 *   p -= lr sqrt(1-b2^t) / (1-b1^t) * m / (sqrt(v) + eps).
 * Note that SparseAdam's eps is not scaled by the bias correction as Adam's
 * is (the two differ by eps * (1/sqrt(1-b2^t) - 1) in the denominator).
 * A row of dim values holds 2 dim state floats: its m, then its v. */
#include "common/nn/optim.h"

#include <math.h>

/* One update of n parameters; m is slot 0, v slot 1 (slot_stride apart). */
static void adam_update(const optim_params_t *o, float *param, const float *grad, float *state,
                        size_t slot_stride, size_t n, long t, double lr)
{
    const float flr = (float)lr;
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
}

/* m and v of each element of a row. */
static size_t adam_row_slots(size_t dim)
{
    return 2 * dim;
}

/* One lazy (SparseAdam) update of a row: m is state[0, dim), v state[dim, 2 dim). */
static void adam_update_row(const optim_params_t *o, float *param, const float *grad, float *state,
                            size_t dim, long t, double lr)
{
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    const float step_size = (float)(lr * sqrt(bc2) / bc1);
    float *m = state, *v = state + dim;
#pragma omp simd
    for (size_t i = 0; i < dim; i++) {
        float g = grad[i];
        m[i] += (1.0f - b1) * (g - m[i]);
        v[i] += (1.0f - b2) * (g * g - v[i]);
        param[i] -= step_size * (m[i] / (sqrtf(v[i]) + eps));
    }
}

const optim_kind_t optim_adam = {
    .name = "adam",
    .id = 2,
    .slots = 2,
    .default_lr = 0.001,
    .update = adam_update,
    .row_slots = adam_row_slots,
    .update_row = adam_update_row,
};
