/* optim.h - optimizers and learning-rate schedules.
 *
 * Each optimizer is one descriptor in its own file (common/nn/sgd.c,
 * momentum.c, adam.c, adagrad.c), listed in the table of optim.c. Its
 * update works on a slice of the flat buffers: a trainer in single-process
 * mode passes [0, n_params), a parameter server its shard. The state
 * (Adam's m and v, the momentum buffer, Adagrad's accumulator) of a slice
 * of n parameters is `slots` arrays, slot_stride floats apart: slot k of
 * parameter i is state[k * slot_stride + i]. The formulas are PyTorch's
 * (torch.optim), which Keras's agree with for these settings.
 *
 * An optimizer may also have a row form, which the row store of sparse
 * embedding tables (common/nn/rows.h) applies to the rows a batch touched:
 * row_slots(dim) state floats per row of dim values, laid out as the
 * optimizer likes inside the row, and update_row applied to one row at a
 * time. Rows that were not touched keep their state (lazy updates). sgd,
 * adagrad (PyTorch's sparse Adagrad), rowwise_adagrad (FBGEMM's and DLRM's:
 * one accumulator per row) and adam (torch.optim.SparseAdam's lazy Adam)
 * have one; momentum has none.
 */
#ifndef PST_OPTIM_H
#define PST_OPTIM_H

#include <stddef.h>

#include "common/config/config.h"

typedef struct optim_kind_t optim_kind_t;

typedef struct {
    const optim_kind_t *kind;
    double lr, beta1, beta2, eps, momentum, initial_accumulator;
    int nesterov;
    sched_kind_t schedule;
    int step_size;
    double gamma, min_lr;
    long decay_steps;     /* cosine: 0 means total_steps */
} optim_params_t;

struct optim_kind_t {
    const char *name;        /* config spelling (optimizer.name) */
    int id;                  /* its number in checkpoints: fixed for ever (a checkpoint
                                written before must load) */
    int slots;               /* state floats per parameter */
    double default_lr;       /* optimizer.lr when the file gives none */
    double default_momentum; /* optimizer.momentum when the file gives none */
    /* 1: the update is param -= lr grad and nothing else (no state, no
     * other term), so a layer may apply it while it computes the gradient
     * (a fused step: layer_pass_t.g_scale). */
    int plain_step;
    /* Non-NULL: this optimizer is that one with momentum, and a job asking
     * for that one with momentum > 0 runs this one. */
    const char *momentum_form_of;
    /* The starting value of every state float (NULL: 0). */
    double (*initial_state)(const optim_params_t *o);
    /* One update of n parameters from their gradient: t is the 1-based
     * number of this update (Adam's bias correction), lr the rate for it. */
    void (*update)(const optim_params_t *o, float *param, const float *grad, float *state,
                   size_t slot_stride, size_t n, long t, double lr);
    /* Row form (NULL: none). The state floats of one row of dim values. */
    size_t (*row_slots)(size_t dim);
    /* One update of one row of dim values from its gradient, with the row's
     * state (row_slots(dim) floats, starting at initial_state): t is the
     * 1-based global step (lazy Adam's bias correction), lr the rate. */
    void (*update_row)(const optim_params_t *o, float *param, const float *grad, float *state,
                       size_t dim, long t, double lr);
};

/* The registered optimizer called name, or NULL. */
const optim_kind_t *optim_find(const char *name);
/* The registered optimizer with checkpoint number id, or NULL. */
const optim_kind_t *optim_by_id(int id);
/* The name of the optimizer with checkpoint number id, or "?". */
const char *optim_id_name(int id);
/* The i-th registered optimizer (0-based), or NULL past the last. */
const optim_kind_t *optim_at(int i);
/* The optimizer that is k with momentum (momentum_form_of), or NULL. */
const optim_kind_t *optim_momentum_form(const optim_kind_t *k);

/* Copies the optimizer section of a job config. */
void optim_params_from_config(optim_params_t *o, const job_config_t *cfg);

/* Number of state floats per parameter: 0 (sgd), 1 (momentum, adagrad,
 * rowwise_adagrad), 2 (adam). */
int optim_slots(const optim_params_t *o);

/* Whether the optimizer has a row form (optim_kind_t.update_row). */
int optim_has_rows(const optim_params_t *o);
/* The state floats of one row of dim values under the row form (0 when
 * there is none). */
size_t optim_row_slots(const optim_params_t *o, size_t dim);
/* Sets the state of one row of dim values to its starting value. */
void optim_row_state_init(const optim_params_t *o, float *state, size_t dim);
/* One row-form update of one row (the optimizer must have a row form). */
void optim_update_row(const optim_params_t *o, float *param, const float *grad, float *state,
                      size_t dim, long t, double lr);

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
