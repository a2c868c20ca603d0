/* loss.c - what the losses share (see loss.h). */
#include "common/nn/loss.h"

int loss_argmax(const float *row, int C)
{
    int best = 0;
    for (int j = 1; j < C; j++)
        if (row[j] > row[best])
            best = j;
    return best;
}
