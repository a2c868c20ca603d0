/* binary_cross_entropy.c - binary cross-entropy (log loss) for models with
 * ONE output per sample, the logit z of label 1 (labels 0 / 1: click-through
 * rate and the like). The model's final binary-probability activation (the
 * logistic function) is applied here, fused, as cross_entropy.c fuses the
 * row-normalising one: a last layer written with it, or without it (a
 * linear logit), gives the same model. In the stable form of PyTorch's
 * BCEWithLogitsLoss:
 *   loss_b = max(z, 0) - z y + log(1 + e^-|z|),   d loss_b / dz = p - y,
 * p = the activation of z (the same kernel as evaluation and prediction).
 * Accuracy counts (p >= 0.5) == y (loss_predict). */
#include <math.h>
#include <stddef.h>

#include "common/nn/loss.h"

extern const loss_kind_t loss_binary_cross_entropy;

/* See loss_kind_t.eval; act is the model's binary-probability activation,
 * C is 1 (the model checks it). */
static double bce_eval(const act_kind_t *act, float *probs, float *dout, const float *out,
                       const int32_t *labels, int B, int C, float scale, int *correct)
{
    act->forward(probs, out, (size_t)B * C, C);
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const double z = out[(size_t)b * C];
        const int y = labels[b];
        total += (z > 0 ? z : 0) - z * y + log1p(exp(-fabs(z)));
        const float *p = probs + (size_t)b * C;
        if (correct && loss_predict(&loss_binary_cross_entropy, p, C) == y)
            (*correct)++;
        if (dout)
            dout[(size_t)b * C] = scale * (p[0] - (float)y);
    }
    return total;
}

const loss_kind_t loss_binary_cross_entropy = {
    .name = "binary_cross_entropy",
    .single_output = 1,
    .fuses_binary_probability = 1,
    .eval = bce_eval,
};
