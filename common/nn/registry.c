/* registry.c - the one list of pstrain's layer kinds, activations and
 * losses. Each is a descriptor defined in its own file; adding one is that
 * file plus one line here (tests/check_layers.sh reads the LAYER lines and
 * checks that no other file names a layer kind). */
#include "common/nn/registry.h"

#include <string.h>

/* Layer kinds, in the order config messages list them: LAYER(x) is the
 * descriptor layer_x of common/nn/x.c. */
#define LAYER_KINDS(LAYER)                                                                         \
    LAYER(conv2d)                                                                                  \
    LAYER(maxpool2d)                                                                               \
    LAYER(flatten)                                                                                 \
    LAYER(dense)                                                                                   \
    LAYER(lstm)                                                                                    \
    LAYER(relu)                                                                                    \
    LAYER(sigmoid)                                                                                 \
    LAYER(tanh)                                                                                    \
    LAYER(softmax)                                                                                 \
    LAYER(dropout)                                                                                 \
    LAYER(avgpool2d)                                                                               \
    LAYER(global_avgpool2d)                                                                        \
    LAYER(interaction)                                                                             \
    LAYER(embedding)

/* Activations (also layer kinds above): ACTIVATION(x) is act_x of common/nn/x.c. */
#define ACTIVATIONS(ACTIVATION)                                                                    \
    ACTIVATION(relu)                                                                               \
    ACTIVATION(sigmoid)                                                                            \
    ACTIVATION(tanh)                                                                               \
    ACTIVATION(softmax)

/* Losses: LOSS(x) is loss_x of common/nn/x.c. */
#define LOSSES(LOSS)                                                                               \
    LOSS(cross_entropy)                                                                            \
    LOSS(mse)                                                                                      \
    LOSS(binary_cross_entropy)

#define DECLARE_LAYER(x) extern const layer_kind_t layer_##x;
#define DECLARE_ACT(x) extern const act_kind_t act_##x;
#define DECLARE_LOSS(x) extern const loss_kind_t loss_##x;
#define ROW_LAYER(x) &layer_##x,
#define ROW_ACT(x) &act_##x,
#define ROW_LOSS(x) &loss_##x,

LAYER_KINDS(DECLARE_LAYER)
ACTIVATIONS(DECLARE_ACT)
LOSSES(DECLARE_LOSS)

static const layer_kind_t *const LAYERS[] = {LAYER_KINDS(ROW_LAYER)};
static const act_kind_t *const ACTS[] = {ACTIVATIONS(ROW_ACT)};
static const loss_kind_t *const LOSS_TABLE[] = {LOSSES(ROW_LOSS)};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

const layer_kind_t *layer_kind_at(int i)
{
    return i >= 0 && i < COUNT(LAYERS) ? LAYERS[i] : NULL;
}

const layer_kind_t *layer_kind_find(const char *name)
{
    for (int i = 0; name && i < COUNT(LAYERS); i++)
        if (strcmp(LAYERS[i]->name, name) == 0)
            return LAYERS[i];
    return NULL;
}

const act_kind_t *act_at(int i)
{
    return i >= 0 && i < COUNT(ACTS) ? ACTS[i] : NULL;
}

const act_kind_t *act_find(const char *name)
{
    for (int i = 0; name && i < COUNT(ACTS); i++)
        if (strcmp(ACTS[i]->name, name) == 0)
            return ACTS[i];
    return NULL;
}

const act_kind_t *act_row_normalising(void)
{
    for (int i = 0; i < COUNT(ACTS); i++)
        if (ACTS[i]->row_normalising)
            return ACTS[i];
    return NULL;
}

const act_kind_t *act_binary_probability(void)
{
    for (int i = 0; i < COUNT(ACTS); i++)
        if (ACTS[i]->binary_probability)
            return ACTS[i];
    return NULL;
}

const loss_kind_t *loss_at(int i)
{
    return i >= 0 && i < COUNT(LOSS_TABLE) ? LOSS_TABLE[i] : NULL;
}

const loss_kind_t *loss_find(const char *name)
{
    for (int i = 0; name && i < COUNT(LOSS_TABLE); i++)
        if (strcmp(LOSS_TABLE[i]->name, name) == 0)
            return LOSS_TABLE[i];
    return NULL;
}
