/* layer.h - what a layer kind and an activation are to the rest of pstrain:
 * one descriptor each (a struct of data and function pointers, like the
 * kernel's file_operations), defined in the kind's own file
 * common/nn/<kind>.c and listed once in common/nn/registry.c. The model,
 * the config checks and the ONNX exporter go through these descriptors and
 * never name a kind.
 *
 * Conventions of every kind (in the manner of llm.c): tensors are row-major
 * floats, a batch of B samples first; backward ACCUMULATES into parameter
 * gradients (+=), OVERWRITES the input gradient and skips it when din is
 * NULL (the first layer needs none); GEMMs go through cblas_sgemm and none
 * runs inside a per-sample loop. One exception to the input gradient's
 * rule: a first layer may leave its input's last values to a later layer
 * that reads them straight from the model's input (layer_t.grad_tail and
 * input_tail: DLRM's field vectors, which then need not be copied through
 * the bottom MLP), and then writes only the other columns of din. Passes
 * allocate nothing: each kind asks for its scratch buffers once (.buffers)
 * and gets them in every pass.
 */
#ifndef PST_LAYER_H
#define PST_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "common/config/config.h"
#include "common/nn/params.h"
#include "common/util/err.h"

#define LAYER_MAX_PARAMS 3   /* parameter tensors of one layer */
#define LAYER_MAX_BUFS 4     /* scratch buffers of one layer */
#define LAYER_SPLIT_STAGES 2 /* stages of a split backward (layer_pass_t.stage) */
#define LAYER_PLAN_BYTES 128 /* a kind's own plan data (dims) inside layer_t */
#define LAYER_WHERE_LEN (CFG_PATH_LEN + 96)

typedef struct layer_kind_t layer_kind_t;
typedef struct act_kind_t act_kind_t;
typedef struct layer_t layer_t;
typedef struct onnx_graph_t onnx_graph_t; /* the ONNX builder (export/onnx_graph.h) */

/* The shape of one sample: [C,H,W] images, [T,F] sequences, [N] flat. */
typedef struct {
    int rank;
    int dim[3];
} shape_t;

/* The context of a forward or backward pass. */
typedef struct {
    int training; /* 1: a training step (dropout drops); 0: evaluation, prediction */
    long step;    /* the training step's number, 0-based */
    long first;   /* index, in the step's global batch, of this pass's first sample */
} model_run_t;

/* ---- activations ------------------------------------------------------- */

/* An activation: a layer kind of its own (relu, ...) that conv2d and dense
 * can also apply to their output (activation = "..."). */
struct act_kind_t {
    const char *name;      /* config spelling */
    int monotone;          /* elementwise and non-decreasing: act(max x) = max act(x),
                              so a max pool after it may run before it */
    int row_normalising;   /* normalises each row to a distribution: a loss that
                              declares so applies it itself (fused) */
    int binary_probability; /* maps each value, a logit, to the probability of label 1
                              (the logistic function): a single-output loss that
                              declares so applies it itself (fused) */
    /* y = act(x) over n values, rows of n_cols; x and y may alias. */
    void (*forward)(float *y, const float *x, size_t n, int n_cols);
    /* dx = dy * act'(x), from the forward's output y; dx and dy may alias. */
    void (*backward)(float *dx, const float *dy, const float *y, size_t n, int n_cols);
    /* Row-normalising ones: y = act(x) over one row of n values, with
     * *shift and *sum such that log y_j = x_j - shift - log(sum) exactly
     * (a loss's log-likelihood without taking log y). NULL for the others. */
    void (*normalise_row)(float *y, const float *x, int n, float *shift, double *sum);
    /* Its ONNX nodes on x, a sample of shape s; base prefixes the node
     * names. Returns the output's name, or NULL (the builder failed). */
    const char *(*emit)(onnx_graph_t *g, const char *base, const char *x, const shape_t *s);
};

/* ---- layer kinds ------------------------------------------------------- */

/* What a kind's plan function is given besides its config entry. */
typedef struct {
    char where[LAYER_WHERE_LEN]; /* "FILE:LINE: model.layers.[i] (kind)", for messages */
    param_table_t *params;       /* the model's table: add this layer's tensors */
    int nth;                     /* this layer is the nth (1-based) of its kind */
    int input_size;              /* floats of a sample of the model's input */
    int index;                   /* its position in model.layers */
    uint64_t seed;               /* the job's seed (train.seed) */
} layer_build_t;

/* One pass of a layer over B samples. */
typedef struct {
    int B;                          /* samples in this pass */
    int cap;                        /* samples the buffers were sized for (B <= cap) */
    const model_run_t *run;         /* NULL: evaluation */
    const float *in;                /* [B][in] */
    float *out;                     /* [B][out] */
    float *dout;                    /* backward: gradient of out; the kind may overwrite it */
    float *din;                     /* backward: input gradient to write, or NULL */
    void *const *buf;               /* the kind's scratch buffers, as .buffers sized them */
    /* The model's input rows of these samples [B][x0_size] and their
     * gradient to write (backward; NULL: not wanted), for a layer that
     * reads the model input's last values besides its input (input_tail). */
    const float *x0;
    float *dx0;
    int x0_size;
    const float *p[LAYER_MAX_PARAMS]; /* its parameter tensors */
    float *g[LAYER_MAX_PARAMS];       /* their gradients (backward) */
    /* backward adds g_scale times the gradients into g: 1, or for a fused
     * SGD step (scaled_grads kinds) -lr, with g the parameters themselves */
    float g_scale;
    /* A pass shared by a team's workers (split): part of n_parts, and its
     * stage: a split backward runs stage 0 of every part, then stage 1 of
     * every part (what needs all of stage 0's results). */
    int part, n_parts;
    int stage;
} layer_pass_t;

struct layer_kind_t {
    const char *name;         /* config spelling (model.layers.[i].type) */
    const layer_key_t *keys;  /* its config keys, ended by a {NULL} row (NULL: none);
                                 layer_cfg_t.v holds their values in this order */
    const char *param_prefix; /* its tensors are named PREFIXn.NAME (n = layer_build_t.nth) */
    const act_kind_t *act;    /* activation layers: the activation they apply */
    int alias;                /* the output is the input reshaped: the model lets them share
                                 memory (no forward / backward functions needed) */
    int scaled_grads;         /* backward honours layer_pass_t.g_scale and reads its
                                 parameters only before it adds to g, so that g may be the
                                 parameters (a fused step; not its split passes) */
    /* Checks L->in, fills L->out, L->act, the parameter tensors
     * (layer_add_param) and the kind's plan data (L->plan). Returns 0, or -1
     * with err "b->where: what does not fit". */
    int (*plan)(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err);
    /* Writes the bytes of each scratch buffer a pass of up to B samples
     * needs into sizes[]; returns their number (0..LAYER_MAX_BUFS). NULL: none. */
    int (*buffers)(const layer_t *L, int B, size_t sizes[LAYER_MAX_BUFS]);
    /* x->out = the layer of x->in, keeping in x->buf what backward needs. */
    void (*forward)(const layer_t *L, const layer_pass_t *x);
    /* After forward of the same pass, from x->dout: x->g += the parameters'
     * gradients, x->din = the input's gradient (skipped when NULL). */
    void (*backward)(const layer_t *L, const layer_pass_t *x);
    /* Its ONNX nodes on x (base prefixes their names). Returns the output's
     * name (x itself for a layer that is the identity at inference), or NULL
     * (the builder failed). */
    const char *(*emit)(onnx_graph_t *g, const layer_t *L, const char *base, const char *x);
    /* Fusion. tiling_max_pool: the window of a max pool whose windows tile
     * the plane (stride = window), else 0. absorb: makes L's passes do the
     * work of the layer after it too (they then read L's input and write
     * next's output); returns 1 if it did, 0 if it cannot. Either may be NULL. */
    int (*tiling_max_pool)(const layer_t *L);
    int (*absorb)(layer_t *L, const layer_t *next);
    /* Sharing one large pass among a team's threads (common/nn/team.h): 1
     * when L's passes can be split (split_forward / split_backward then do
     * part x->part of x->n_parts of the whole pass each, over the same
     * buffers, disjoint outputs, split_backward in LAYER_SPLIT_STAGES
     * stages); NULL or 0: they cannot. */
    int (*can_split)(const layer_t *L);
    void (*split_forward)(const layer_t *L, const layer_pass_t *x);
    void (*split_backward)(const layer_t *L, const layer_pass_t *x);
};

/* A layer of a built model: its kind, shapes, parameters and plan. Read-only
 * once the model is built: any number of workspaces run it at once. */
struct layer_t {
    const layer_kind_t *kind;
    int index;                       /* position in model.layers */
    shape_t in, out;
    const act_kind_t *act;           /* fused activation, NULL: none */
    int param[LAYER_MAX_PARAMS];     /* indices into the parameter table, -1: none */
    int absorbed;                    /* 1: it also computes the layer after it (whose
                                        output its passes then write) */
    int input_tail;                  /* > 0: it also reads the model input's last
                                        input_tail values (layer_pass_t.x0), after its
                                        own input, and writes their gradient (dx0) */
    int grad_tail;                   /* > 0 (a first layer): it does not write the
                                        gradient of its input's last grad_tail values,
                                        which a later layer's input_tail covers */
    union {
        max_align_t align;
        unsigned char bytes[LAYER_PLAN_BYTES];
    } plan;                          /* the kind's own data (dims), set by .plan; each
                                        kind checks that its type fits */
};

/* ---- helpers shared by the kinds (common/nn/layer.c) --------------------- */

/* Number of floats of a sample of shape s. */
int shape_size(const shape_t *s);

/* Writes s as "[a,b,c]" into buf (len bytes). Returns buf. */
const char *shape_str(char *buf, size_t len, const shape_t *s);

/* Appends tensor PREFIXn.NAME (L's kind's prefix, n = b->nth) of the given
 * shape and initialiser to b->params and records its index in L->param.
 * Returns its spec (to set fan_in and the like), or NULL with err. */
param_spec_t *layer_add_param(layer_t *L, layer_build_t *b, const char *name, int ndim,
                              const int *shape, init_kind_t init, err_t *err);

/* The value of key `name` of config entry c, or NULL when its kind has no
 * such key. */
const layer_val_t *layer_cfg_get(const layer_cfg_t *c, const char *name);

/* A pooling window: pool x pool, `stride` apart, Keras 'valid' (floor) over
 * an image [C,H,W]: OH = (H - pool) / stride + 1 windows down, OW across.
 * The plan of the pooling kinds. */
typedef struct {
    int C, H, W;
    int pool, stride;
    int OH, OW;
} pool_window_t;

/* The config keys of a pooling window, in this order: pool (default 2) and
 * pool_stride (0: pool), for a kind's key table. */
#define POOL_WINDOW_KEYS {"pool", LKEY_INT, "2", ">=1"}, {"pool_stride", LKEY_INT, "0", ">=0"}

/* Plans the window of L from the values of POOL_WINDOW_KEYS at c->v[k] and
 * c->v[k + 1], on L's image input: fills *w and L->out ([C,OH,OW]). Returns
 * 0, or -1 with err "b->where: what does not fit". */
int pool_window_plan(layer_t *L, const layer_cfg_t *c, int k, const layer_build_t *b,
                     pool_window_t *w, err_t *err);

/* The functions of an activation layer (a kind whose .act is set): the
 * output has the input's shape and is act(input) over each whole sample. */
int act_layer_plan(layer_t *L, const layer_cfg_t *c, layer_build_t *b, err_t *err);
void act_layer_forward(const layer_t *L, const layer_pass_t *x);
void act_layer_backward(const layer_t *L, const layer_pass_t *x);
const char *act_layer_emit(onnx_graph_t *g, const layer_t *L, const char *base, const char *x);

#endif
