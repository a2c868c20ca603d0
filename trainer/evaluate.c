/* evaluate.c - evaluation over a data set (see evaluate.h). */
#include "trainer/evaluate.h"

void evaluate_range(team_t *t, int batch, const float *params, const dataset_t *ds, size_t begin,
                    size_t end, double *loss_sum, long *correct)
{
    const size_t mb = (size_t)batch;
    for (size_t i = begin; i < end; i += mb) {
        int B = (int)(end - i < mb ? end - i : mb);
        int right = 0;
        *loss_sum += team_eval_batch(t, params, ds->x + i * ds->dim, ds->y + i, B, &right);
        *correct += right;
    }
}
