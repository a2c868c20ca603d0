/* trained.h - a trained model opened from a checkpoint: the checkpoint, the
 * job config kept inside it, and the model rebuilt from that config, ready
 * for the exporters and for native inference (pstrain predict). */
#ifndef PST_TRAINED_H
#define PST_TRAINED_H

#include "export/checkpoint.h"
#include "common/config/config.h"
#include "common/util/err.h"
#include "common/nn/model.h"
#include "export/tables.h"

typedef struct {
    char path[4096];      /* the checkpoint file, for messages */
    checkpoint_t *ck;     /* owned: parameters, optimizer state, NORM statistics */
    job_config_t *cfg;    /* owned: the config text of the checkpoint, parsed */
    model_t *model;       /* owned: built from cfg, buffers for max_batch samples */
    int threads;          /* threads predict_run uses (1 after trained_open) */
    tables_t *tables;     /* owned: a model with model.sparse, its embedding
                           * tables (row files); NULL for a dense model */
} trained_t;

/* Reads and checks the checkpoint at path (checkpoint_read), parses its
 * config (without looking for the data files), rebuilds the model with
 * buffers for up to max_batch samples (max_batch <= 0: the training run's,
 * the larger of train.batch and train.eval_batch, whose batches of
 * evaluation predict_run then repeats exactly) and checks that the checkpoint's
 * tensors are the model's and that its NORM statistics (if any) have the
 * model's input size. A model with embedding tables (model.sparse) gets
 * them from the row files next to the checkpoint (tables_open_next_to:
 * DIR/tables-S-of-N.rows, all N of the set). Returns a new trained_t, or
 * NULL with err naming the file and what is wrong. */
trained_t *trained_open(const char *path, int max_batch, err_t *err);

/* As trained_open, with the embedding tables of a model with model.sparse
 * from the row files row_files[0..n_files) applied in order (a full file,
 * then its deltas; or one full file per server). n_files = 0: the files
 * next to the checkpoint, as trained_open. A dense model takes no row files
 * (NULL with err when some are given). */
trained_t *trained_open_rows(const char *path, int max_batch, const char *const *row_files,
                             int n_files, err_t *err);

/* Frees *self_p (may be NULL) and sets it to NULL. */
void trained_destroy(trained_t **self_p);

/* Applies the training normalisation to B samples x [B][input_size] (pixels
 * already scaled to [0,1]) in place; nothing when training used none. */
void trained_normalize(const trained_t *t, float *x, int B);

/* Class name of class k: data.classes of the config when it names them all,
 * else the Fashion-MNIST names for a 10-class model on Fashion-MNIST data,
 * else the class number; written into buf. Returns buf. */
const char *trained_class_name(const trained_t *t, int k, char *buf, size_t len);

#endif
