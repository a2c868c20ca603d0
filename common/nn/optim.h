/* optim.h - optimizers and learning-rate schedules.
 *
 * Each optimizer is one update over a slice of the flat buffers: a trainer
 * in single-process mode passes [0, n_params), a parameter server its shard.
 * The state (Adam's m and v, the momentum buffer, Adagrad's accumulator) of a
 * slice of n parameters is optim_slots() arrays of n floats, one after the
 * other: slot k of parameter i is state[k * n + i]. The formulas are
 * PyTorch's (torch.optim), which Keras's agree with for these settings.
 */
#ifndef PST_OPTIM_H
#define PST_OPTIM_H

#include <stddef.h>

#include "common/config/config.h"

typedef struct {
    opt_kind_t kind;
    double lr, beta1, beta2, eps, momentum, initial_accumulator;
    int nesterov;
    sched_kind_t schedule;
    int step_size;
    double gamma, min_lr;
    long decay_steps;     /* cosine: 0 means total_steps */
} optim_params_t;

/* Copies the optimizer section of a job config. */
void optim_params_from_config(optim_params_t *o, const job_config_t *cfg);

/* Number of state floats per parameter: 0 (sgd), 1 (momentum, adagrad), 2 (adam). */
int optim_slots(const optim_params_t *o);

/* Sets the state of a slice of n parameters to its starting value. */
void optim_state_init(const optim_params_t *o, float *state, size_t n);

/* The learning rate for step `step` (0-based) of a run of total_steps steps. */
double optim_lr(const optim_params_t *o, long step, long total_steps);

/* One update of n parameters from their gradient: t is the 1-based number
 * of this update (Adam's bias correction), lr the rate for this step. */
void optim_update(const optim_params_t *o, float *param, const float *grad, float *state,
                  size_t n, long t, double lr);

/* The same over n parameters whose state slots lie slot_stride floats apart
 * (slot k of parameter i at state[k * slot_stride + i]): a piece of a larger
 * slice, updated on its own. optim_update is this with slot_stride = n. */
void optim_update_slice(const optim_params_t *o, float *param, const float *grad, float *state,
                        size_t slot_stride, size_t n, long t, double lr);

#endif
