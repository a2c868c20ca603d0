/* adam.c - Adam (Kingma and Ba), PyTorch's form:
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
 * State: two slots, m then v (both start at 0). */
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

const optim_kind_t optim_adam = {
    .name = "adam",
    .id = 2,
    .slots = 2,
    .default_lr = 0.001,
    .update = adam_update,
};
