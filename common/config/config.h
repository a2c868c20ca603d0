/* config.h - job configuration: a libconfig file, checked against a schema,
 * with command-line overrides (--set path=value).
 *
 * Every key a job file may hold is listed in one schema table in config.c,
 * with its type, default and range. Unknown keys, wrong types, out-of-range
 * values and missing data files are refused with "FILE:LINE: key: what".
 */
#ifndef PST_CONFIG_H
#define PST_CONFIG_H

#include "common/util/err.h"

#define CFG_MAX_LAYERS 32
#define CFG_MAX_CLASSES 64
#define CFG_NAME_LEN 64
#define CFG_PATH_LEN 1024

typedef enum {
    LAYER_CONV2D = 0,
    LAYER_MAXPOOL2D,
    LAYER_FLATTEN,
    LAYER_DENSE,
    LAYER_LSTM,
    LAYER_RELU,
    LAYER_SIGMOID,
    LAYER_TANH,
    LAYER_SOFTMAX,
} layer_type_t;

typedef enum {
    ACT_NONE = 0,   /* "linear" or absent */
    ACT_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    ACT_SOFTMAX,
} act_t;

/* One entry of model.layers. Fields unused by a type keep their defaults. */
typedef struct {
    layer_type_t type;
    int line;              /* line in the config file, for error messages */
    /* conv2d */
    int filters, kernel, stride, padding;
    /* maxpool2d */
    int pool, pool_stride; /* pool_stride 0 = same as pool */
    /* dense / lstm */
    int units;
    int return_sequences;  /* lstm */
    act_t activation;      /* conv2d / dense: fused activation */
} layer_cfg_t;

typedef enum { NORM_NONE = 0, NORM_GLOBAL, NORM_PER_PIXEL } norm_t;
typedef enum { LOSS_CROSS_ENTROPY = 0, LOSS_MSE } loss_kind_t;
typedef enum { OPT_SGD = 0, OPT_MOMENTUM, OPT_ADAM, OPT_ADAGRAD } opt_kind_t;
typedef enum { SCHED_CONSTANT = 0, SCHED_STEP, SCHED_COSINE } sched_kind_t;
typedef enum { CONS_BSP = 0, CONS_ASP, CONS_SSP } consistency_t;
typedef enum { AUTH_CURVE = 0, AUTH_NONE } auth_kind_t;
typedef enum { LOSS_STOP = 0, LOSS_CONTINUE } loss_action_t;
typedef enum { COMP_NONE = 0, COMP_FP16, COMP_BF16, COMP_TOPK } compression_t;

typedef struct {
    char source[CFG_PATH_LEN];     /* the config file's path */
    char name[CFG_NAME_LEN];       /* job name (default: file name without .cfg) */

    struct {
        char train_images[CFG_PATH_LEN];   /* full paths, dir already joined */
        char train_labels[CFG_PATH_LEN];
        char test_images[CFG_PATH_LEN];
        char test_labels[CFG_PATH_LEN];
        int validation;            /* samples held out of the training set */
        int limit;                 /* use the first N training samples; 0 = all */
        int test_limit;            /* use the first N test samples; 0 = all */
        norm_t normalize;
        int n_classes_names;
        char classes[CFG_MAX_CLASSES][CFG_NAME_LEN];
    } data;

    struct {
        int input[3];              /* [C,H,W] for images; [T,F] uses input_rank 2 */
        int input_rank;            /* 3 or 2 */
        int n_layers;
        layer_cfg_t layers[CFG_MAX_LAYERS];
        loss_kind_t loss;
    } model;

    struct {
        opt_kind_t kind;
        double lr;
        double beta1, beta2, eps;  /* adam (eps also adagrad) */
        double momentum;           /* sgd with momentum */
        int nesterov;
        double initial_accumulator;/* adagrad */
        sched_kind_t schedule;
        int step_size;             /* step decay: every step_size steps ... */
        double gamma;              /* ... lr *= gamma */
        double min_lr;             /* cosine floor */
        int decay_steps;           /* cosine: steps to decay over; 0 = whole run */
    } optimizer;

    struct {
        int epochs;
        int batch;
        unsigned long long seed;
        long max_steps;            /* 0 = no limit */
        int threads;               /* BLAS threads */
        int log_every;             /* progress line every N steps */
        int eval_batch;
    } train;

    struct {
        int servers;               /* parameter-server ranks */
        consistency_t consistency;
        int staleness;             /* SSP: K */
        char bind[CFG_NAME_LEN];   /* address the servers bind to */
        char advertise[CFG_NAME_LEN]; /* address others dial ("" = bind address) */
        int timeout_ms;            /* every receive gives up after this long */
        auth_kind_t auth;          /* CURVE on the servers' sockets, or none */
        loss_action_t on_trainer_loss; /* BSP: stop (checkpoint) or continue with the rest */
        compression_t compression;  /* of the pushes: none, fp16, bf16 or topk */
        double topk_ratio;          /* topk: the share of each piece sent */
        compression_t pull_compression; /* of the pulls: none, fp16 or bf16 */
    } cluster;

    struct {
        int every_steps;           /* a checkpoint every N steps (0: not by steps) */
        int every_seconds;         /* ... and/or every N seconds of training (0: not by time) */
        int keep;                  /* complete checkpoints kept under RUN_DIR/checkpoints/ */
    } checkpoint;
} job_config_t;

/* Loads and checks PATH, then applies the overrides ("path=value", n_sets of
 * them) and checks again. Fills *cfg. Returns 0, or -1 with err naming the
 * file, line and key (or the override) that is wrong. check_files = 1 also
 * checks that the data files exist and are readable. */
int config_load(job_config_t *cfg, const char *path, const char *const *sets,
                int n_sets, int check_files, err_t *err);

/* As config_load, from text (a config kept in a checkpoint) instead of a
 * file; name stands for the file in messages ("run/model.ckpt: config:12:
 * ..."). The job name defaults as for a file called name. */
int config_load_text(job_config_t *cfg, const char *name, const char *text,
                     const char *const *sets, int n_sets, int check_files, err_t *err);

/* Returns the config's text as loaded and with overrides applied, as libconfig
 * writes it, in a malloc'd string that the caller frees; NULL on error. */
char *config_text(const char *path, const char *const *sets, int n_sets, err_t *err);
/* As config_text, from text src (NULL: read the file path) with path
 * standing for the file in messages. */
char *config_text_from(const char *path, const char *src, const char *const *sets, int n_sets,
                       err_t *err);

const char *config_layer_name(layer_type_t t);
const char *config_act_name(act_t a);
const char *config_opt_name(opt_kind_t k);
const char *config_consistency_name(consistency_t c);

#endif
