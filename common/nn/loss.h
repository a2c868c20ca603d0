/* loss.h - losses over a batch, each returning the SUM of per-sample losses
 * and writing the gradient of (scale * that sum) with respect to the model's
 * output. scale = 1/B gives the mean; in a distributed step each trainer uses
 * 1/(global batch) so that the trainers' gradients add up to the mean. */
#ifndef PST_LOSS_H
#define PST_LOSS_H

#include <stdint.h>

/* Softmax cross-entropy fused with the softmax, integer labels:
 * probs [B][C] = softmax(logits), loss_b = -log probs[b][label_b].
 * dlogits [B][C] = scale * (probs - onehot) when not NULL (may alias logits).
 * *correct (if not NULL) += number of rows whose argmax is the label.
 * Labels outside [0, C) are the caller's error (checked when data load). */
double loss_xent_forward_backward(float *probs, float *dlogits, const float *logits,
                                  const int32_t *labels, int B, int C, float scale, int *correct);

/* Mean squared error against one-hot targets from labels (Keras 'mse' on a
 * one-hot y: the mean over the C outputs): loss_b = mean_j (y_bj - t_bj)^2;
 * dy [B][C] = scale * 2 (y - t) / C when not NULL. */
double loss_mse_forward_backward(float *dy, const float *y, const int32_t *labels, int B, int C,
                                 float scale, int *correct);

#endif
