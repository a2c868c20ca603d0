/* evaluate.h - loss and accuracy of a model's parameters on a data set,
 * with the trainer's team of threads. */
#ifndef PST_EVALUATE_H
#define PST_EVALUATE_H

#include <stddef.h>

#include "common/data/data.h"
#include "common/nn/team.h"

/* Runs samples [begin, end) of ds through the team in batches of `batch`
 * (at most the team's max batch). Adds the sum of losses to *loss_sum and
 * the number right to *correct. */
void evaluate_range(team_t *t, int batch, const float *params, const dataset_t *ds, size_t begin,
                    size_t end, double *loss_sum, long *correct);

#endif
