/* config.h - job configuration: a libconfig file, checked against a schema,
 * with command-line overrides (--set path=value).
 *
 * Every key a job file may hold is listed in one schema table in config.c,
 * with its type, default and range; the keys of a layer are listed in its
 * kind's descriptor, and model.layers.[i].type, model.loss and
 * optimizer.name take the names of the registered layer kinds, losses and
 * optimizers (common/nn/registry.c, common/nn/optim.c). Unknown keys, wrong
 * types, out-of-range values and missing data files are refused with
 * "FILE:LINE: key: what".
 */
#ifndef PST_CONFIG_H
#define PST_CONFIG_H

#include "common/util/err.h"

#define CFG_MAX_LAYERS 32
#define CFG_MAX_FIELDS 64            /* categorical fields of a sparse model */
#define CFG_MAX_CLASSES 64
#define CFG_NAME_LEN 64
#define CFG_PATH_LEN 1024
#define CFG_AUTO 0 /* a count given as "auto": the program decides (train.threads, ...) */

/* The form of one config key of a layer kind: each kind lists its keys in
 * its descriptor (common/nn/layer.h), and the checks below go by that table. */
typedef enum {
    LKEY_INT,    /* integer, checked against .range */
    LKEY_FLOAT,  /* number (an integer is accepted), checked against .range */
    LKEY_BOOL,   /* true / false */
    LKEY_ACT,    /* an activation's name, "none" or "linear" (no activation) */
} layer_key_type_t;

typedef struct {
    const char *name;        /* the key in the layer's group */
    layer_key_type_t type;
    const char *def;         /* default as text; NULL: the key is required */
    const char *range;       /* NULL, ">=a", ">a", "[a,b)", "[a,b]", "(a,b)", "(a,b]" */
} layer_key_t;

#define CFG_LAYER_KEYS 8     /* keys of one layer kind, at most */

struct layer_kind_t;         /* a layer kind's descriptor (common/nn/layer.h) */
struct act_kind_t;           /* an activation's descriptor (common/nn/layer.h) */
struct loss_kind_t;          /* a loss's descriptor (common/nn/loss.h) */
struct optim_kind_t;         /* an optimizer's descriptor (common/nn/optim.h) */

/* A value of a layer key, read as its key's type says. */
typedef union {
    int i;                           /* LKEY_INT, LKEY_BOOL */
    double f;                        /* LKEY_FLOAT */
    const struct act_kind_t *act;    /* LKEY_ACT: NULL for none */
} layer_val_t;

/* One entry of model.layers: its kind and the values of the kind's keys,
 * v[k] for key k of kind->keys (defaults filled in). */
typedef struct {
    const struct layer_kind_t *kind;
    int line;              /* line in the config file, for error messages */
    layer_val_t v[CFG_LAYER_KEYS];
} layer_cfg_t;

typedef enum { NORM_NONE = 0, NORM_GLOBAL, NORM_PER_PIXEL } norm_t;
typedef enum { FORMAT_IDX = 0, FORMAT_CRITEO } data_format_t;
/* data.bad_lines; the same values as ctr_bad_lines_t (common/data/ctr_stream.h) */
typedef enum { BAD_LINES_STOP = 0, BAD_LINES_SKIP } bad_lines_t;
typedef enum { SCHED_CONSTANT = 0, SCHED_STEP, SCHED_COSINE } sched_kind_t;
typedef enum { CONS_BSP = 0, CONS_ASP, CONS_SSP } consistency_t;
typedef enum { AUTH_CURVE = 0, AUTH_NONE } auth_kind_t;
typedef enum { LOSS_STOP = 0, LOSS_CONTINUE } loss_action_t;
typedef enum { COMP_NONE = 0, COMP_FP16, COMP_BF16, COMP_TOPK } compression_t;

typedef struct {
    char source[CFG_PATH_LEN];     /* the config file's path */
    char name[CFG_NAME_LEN];       /* job name (default: file name without .cfg) */

    struct {
        data_format_t format;      /* idx: the four IDX files; criteo: click logs */
        char train[CFG_PATH_LEN];  /* criteo: a file, folder or glob (dir already joined) */
        char test[CFG_PATH_LEN];   /* criteo: likewise; "" = no test set */
        bad_lines_t bad_lines;     /* criteo: stop at a bad line, or skip and count it */
        int shuffle_buffer;        /* criteo: samples of the shuffle buffer; 0 or 1: file order */
        int parts;                 /* criteo: the parts the training data is read in, one per
                                    * trainer (0: as many as trainers); --local reads all of
                                    * them in step, to train on a distributed job's batches */
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
        const struct loss_kind_t *loss;    /* model.loss */
        struct {                   /* embedding tables held outside the model (model.sparse) */
            int fields;            /* categorical fields, one table each (0: none) */
            int dim;               /* floats per row */
            int rows[CFG_MAX_FIELDS]; /* rows of each field's table (ids are reduced % rows);
                                       * one value: every table's (cfg_sparse_rows) */
            int n_rows;
        } sparse;
    } model;

    struct {
        const struct optim_kind_t *kind;   /* optimizer.name (sgd with momentum: momentum) */
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
        int threads;               /* worker threads of a trainer (CFG_AUTO: the CPUs this
                                    * rank may use, shared among the trainers of its node) */
        int log_every;             /* progress line every N steps */
        int eval_batch;
    } train;

    struct {
        int servers;               /* parameter-server ranks */
        int io_threads;            /* ZeroMQ I/O threads of each rank (CFG_AUTO: decided by
                                    * the cores and cluster.auth) */
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
        double link_gbps;           /* each host's link, Gbit/s each way (the start's
                                     * network-bound warning, launch/sizing.h) */
        double core_gflops;         /* one core's GEMM rate, GFLOP/s (the same) */
    } cluster;

    struct {
        int threads;               /* threads of a server's optimizer over large shards
                                    * (CFG_AUTO: the CPUs of its rank) */
    } server;

    struct {
        int every_steps;           /* a checkpoint every N steps (0: not by steps) */
        int full_every;            /* a sparse model's tables: full files every N periodic
                                    * checkpoints, deltas (rows changed) in between */
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

const char *config_consistency_name(consistency_t c);

/* The rows of field f's table in cfg's model.sparse: model.sparse.rows[f],
 * or its one value for every field. */
int cfg_sparse_rows(const job_config_t *cfg, int f);

#endif
