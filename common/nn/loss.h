/* loss.h - what a loss is to the model: one descriptor per loss, defined in
 * its own file (common/nn/cross_entropy.c, mse.c) and listed in
 * common/nn/registry.c. A loss returns the SUM of the per-sample losses of
 * a batch and writes the gradient of (scale * that sum) with respect to the
 * model's output. scale = 1/B gives the mean; in a distributed step each
 * trainer uses 1/(global batch) so that the trainers' gradients add up to
 * the mean. */
#ifndef PST_LOSS_H
#define PST_LOSS_H

#include <stdint.h>

#include "common/nn/layer.h"

typedef struct loss_kind_t {
    const char *name;          /* config spelling (model.loss) */
    /* 1: the loss applies the model's final row-normalising activation
     * itself (act_kind_t.row_normalising; exact gradient, no overflow): the
     * model hands it the activation and leaves it out of its own layers. */
    int fuses_row_normalising;
    /* Loss of out [B][C] against integer labels (checked by the data
     * loader to lie in [0, C)). act: the fused activation (or NULL), probs
     * [B][C] its output; dout (if not NULL) = d(scale * sum)/d out;
     * *correct (if not NULL) += the number of rows whose first largest
     * output (loss_argmax) is the label. Returns the sum of the B losses. */
    double (*eval)(const act_kind_t *act, float *probs, float *dout, const float *out,
                   const int32_t *labels, int B, int C, float scale, int *correct);
} loss_kind_t;

/* The index of the first largest of row[0..C): the class a row predicts
 * (ties and NaNs go to the first; pstrain predict uses the same rule). */
int loss_argmax(const float *row, int C);

#endif
