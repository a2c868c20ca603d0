/* mse.c - mean squared error against one-hot targets from the labels
 * (Keras 'mse' on a one-hot y: the mean over the C outputs):
 * loss_b = mean_j (y_bj - t_bj)^2, gradient scale * 2 (y - t) / C. */
#include <stddef.h>

#include "common/nn/loss.h"

/* See loss_kind_t.eval; act and probs are not used. */
static double mse_eval(const act_kind_t *act, float *probs, float *dout, const float *out,
                       const int32_t *labels, int B, int C, float scale, int *correct)
{
    (void)act;
    (void)probs;
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *yr = out + (size_t)b * C;
        double s = 0.0;
        for (int j = 0; j < C; j++) {
            float diff = yr[j] - (j == labels[b] ? 1.0f : 0.0f);
            s += (double)diff * diff;
            if (dout)
                dout[(size_t)b * C + j] = scale * 2.0f * diff / (float)C;
        }
        total += s / C;
        if (correct && loss_argmax(yr, C) == labels[b])
            (*correct)++;
    }
    return total;
}

const loss_kind_t loss_mse = {
    .name = "mse",
    .eval = mse_eval,
};
