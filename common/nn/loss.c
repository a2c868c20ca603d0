/* loss.c - softmax cross-entropy and mean squared error (see loss.h). */
#include "common/nn/loss.h"

#include <math.h>
#include <stddef.h>

static int argmax_row(const float *row, int C)
{
    int best = 0;
    for (int j = 1; j < C; j++)
        if (row[j] > row[best])
            best = j;
    return best;
}

double loss_xent_forward_backward(float *probs, float *dlogits, const float *logits,
                                  const int32_t *labels, int B, int C, float scale, int *correct)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        float *p = probs + (size_t)b * C;
        float mx = z[0];
        for (int j = 1; j < C; j++)
            mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < C; j++) {
            p[j] = expf(z[j] - mx);
            sum += p[j];
        }
        float inv = (float)(1.0 / sum);
        int y = labels[b];
        /* log p_y = z_y - mx - log(sum), exact even when p_y underflows */
        total += -((double)z[y] - mx - log(sum));
        for (int j = 0; j < C; j++)
            p[j] *= inv;
        if (correct && argmax_row(p, C) == y)
            (*correct)++;
        if (dlogits) {
            float *d = dlogits + (size_t)b * C;
            for (int j = 0; j < C; j++)
                d[j] = scale * (p[j] - (j == y ? 1.0f : 0.0f));
        }
    }
    return total;
}

double loss_mse_forward_backward(float *dy, const float *y, const int32_t *labels, int B, int C,
                                 float scale, int *correct)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *yr = y + (size_t)b * C;
        double s = 0.0;
        for (int j = 0; j < C; j++) {
            float diff = yr[j] - (j == labels[b] ? 1.0f : 0.0f);
            s += (double)diff * diff;
            if (dy)
                dy[(size_t)b * C + j] = scale * 2.0f * diff / (float)C;
        }
        total += s / C;
        if (correct && argmax_row(yr, C) == labels[b])
            (*correct)++;
    }
    return total;
}
