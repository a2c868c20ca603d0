/* loss.h - what a loss is to the model: one descriptor per loss, defined in
 * its own file (common/nn/cross_entropy.c, mse.c, binary_cross_entropy.c)
 * and listed in
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
    /* 1: the model gives ONE output per sample, the logit of label 1
     * (labels 0 / 1: two classes); 0: one output per class, at least 2. */
    int single_output;
    /* 1: the loss applies the model's final binary-probability activation
     * itself (act_kind_t.binary_probability), as fuses_row_normalising. */
    int fuses_binary_probability;
    /* Loss of out [B][C] against integer labels (checked by the data
     * loader to lie in [0, C)). act: the fused activation (or NULL), probs
     * [B][C] its output; dout (if not NULL) = d(scale * sum)/d out;
     * *correct (if not NULL) += the number of rows whose predicted class
     * (loss_predict) is the label. Returns the sum of the B losses. */
    double (*eval)(const act_kind_t *act, float *probs, float *dout, const float *out,
                   const int32_t *labels, int B, int C, float scale, int *correct);
} loss_kind_t;

/* The index of the first largest of row[0..C): the class a row predicts
 * (ties and NaNs go to the first; pstrain predict uses the same rule). */
int loss_argmax(const float *row, int C);

/* The class loss l predicts from one row of the model's probabilities (C
 * outputs): a single-output loss's is 1 when row[0] >= 0.5 (ties go to 1,
 * a NaN to 0), else 0; the others' is loss_argmax. */
int loss_predict(const loss_kind_t *l, const float *row, int C);

/* The number of classes (label values) of a model with C outputs under l:
 * 2 for a single-output loss, else C. */
int loss_n_classes(const loss_kind_t *l, int C);

#endif
