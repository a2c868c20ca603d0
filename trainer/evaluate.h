/* evaluate.h - loss and accuracy of a model's parameters on a data set. */
#ifndef PST_EVALUATE_H
#define PST_EVALUATE_H

#include <stddef.h>

#include "common/data/data.h"
#include "common/nn/model.h"

/* Runs samples [begin, end) of ds through the model in batches of its max
 * batch. Adds the sum of losses to *loss_sum and the number right to
 * *correct. */
void evaluate_range(model_t *m, const float *params, const dataset_t *ds, size_t begin, size_t end,
                    double *loss_sum, long *correct);

#endif
