/* registry.h - the layer kinds, activations and losses pstrain knows
 * (listed once, in common/nn/registry.c). Lookups by config spelling and
 * walks in registration order, for the config checks and the model. */
#ifndef PST_REGISTRY_H
#define PST_REGISTRY_H

#include "common/nn/layer.h"
#include "common/nn/loss.h"

/* The registered layer kind called name, or NULL. */
const layer_kind_t *layer_kind_find(const char *name);
/* The i-th registered layer kind (0-based), or NULL past the last. */
const layer_kind_t *layer_kind_at(int i);

/* The registered activation called name, or NULL. */
const act_kind_t *act_find(const char *name);
/* The i-th registered activation, or NULL past the last. */
const act_kind_t *act_at(int i);
/* The first registered row-normalising activation, or NULL. */
const act_kind_t *act_row_normalising(void);
/* The first registered binary-probability activation (a logit to the
 * probability of label 1), or NULL. */
const act_kind_t *act_binary_probability(void);

/* The registered loss called name, or NULL. */
const loss_kind_t *loss_find(const char *name);
/* The i-th registered loss, or NULL past the last. */
const loss_kind_t *loss_at(int i);

#endif
