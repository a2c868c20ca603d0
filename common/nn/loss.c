/* loss.c - what the losses share (see loss.h). */
#include "common/nn/loss.h"

/* A single-output model predicts class 1 from this probability up. */
#define BINARY_THRESHOLD 0.5f

int loss_argmax(const float *row, int C)
{
    int best = 0;
    for (int j = 1; j < C; j++)
        if (row[j] > row[best])
            best = j;
    return best;
}

int loss_predict(const loss_kind_t *l, const float *row, int C)
{
    if (l->single_output)
        return row[0] >= BINARY_THRESHOLD;
    return loss_argmax(row, C);
}

int loss_n_classes(const loss_kind_t *l, int C)
{
    return l->single_output ? 2 : C;
}
