/* evaluate.c - evaluation over a data set (see evaluate.h). */
#include "trainer/evaluate.h"

int evaluate_range(team_t *t, int batch, const float *params, const dataset_t *ds, size_t begin,
                   size_t end, double *loss_sum, long *correct, auc_t *auc, err_t *err)
{
    const size_t mb = (size_t)batch;
    for (size_t i = begin; i < end; i += mb) {
        int B = (int)(end - i < mb ? end - i : mb);
        int right = 0;
        *loss_sum += team_eval_batch(t, params, ds->x + i * ds->dim, ds->y + i, B, &right);
        *correct += right;
        const float *probs = auc ? team_eval_probs(t) : NULL;
        if (auc && !probs)
            return err_set(err, "evaluate: the model's loss gives no probabilities for an AUC");
        if (auc && auc_add(auc, probs, ds->y + i, (size_t)B, err) != 0)
            return -1;
    }
    return 0;
}
