/* evaluate.h - loss and accuracy of a model's parameters on a data set,
 * with the trainer's team of threads; and, for a one-output binary model,
 * the (probability, label) pairs its AUC is computed from. */
#ifndef PST_EVALUATE_H
#define PST_EVALUATE_H

#include <stddef.h>

#include "common/data/data.h"
#include "common/nn/team.h"
#include "common/util/err.h"
#include "trainer/auc.h"

/* Runs samples [begin, end) of ds through the team in batches of `batch`
 * (at most the team's max batch). Adds the sum of losses to *loss_sum and
 * the number right to *correct; auc (may be NULL; a model with ONE output
 * and a fused activation only) gets each sample's probability and label.
 * Returns 0, or -1 with err (out of memory for the scores). */
int evaluate_range(team_t *t, int batch, const float *params, const dataset_t *ds, size_t begin,
                   size_t end, double *loss_sum, long *correct, auc_t *auc, err_t *err);

#endif
