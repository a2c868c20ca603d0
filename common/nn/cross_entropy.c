/* cross_entropy.c - cross-entropy with integer labels over the model's
 * final row-normalising activation, which this loss applies itself (fused):
 * probs = act(logits), loss_b = -log probs[b][label_b], and the gradient
 * with respect to the logits is the exact scale * (probs - onehot).
 * Without such an activation in the model the outputs are read as logits
 * (Keras's from_logits). */
#include <math.h>
#include <stddef.h>

#include "common/nn/loss.h"

/* See loss_kind_t.eval; act is the model's row-normalising activation. */
static double xent_eval(const act_kind_t *act, float *probs, float *dout, const float *out,
                        const int32_t *labels, int B, int C, float scale, int *correct)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = out + (size_t)b * C;
        float *p = probs + (size_t)b * C;
        float shift;
        double sum;
        act->normalise_row(p, z, C, &shift, &sum);
        int y = labels[b];
        /* log p_y = z_y - shift - log(sum), exact even when p_y underflows */
        total += -((double)z[y] - shift - log(sum));
        if (correct && loss_argmax(p, C) == y)
            (*correct)++;
        if (dout) {
            float *d = dout + (size_t)b * C;
            for (int j = 0; j < C; j++)
                d[j] = scale * (p[j] - (j == y ? 1.0f : 0.0f));
        }
    }
    return total;
}

const loss_kind_t loss_cross_entropy = {
    .name = "cross_entropy",
    .fuses_row_normalising = 1,
    .eval = xent_eval,
};
