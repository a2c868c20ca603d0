/* jobdata.h - the data of a job, prepared as the config says: the training
 * set (less the validation split), the validation and test sets, all scaled
 * to [0,1] and normalised with statistics of the training part only. */
#ifndef PST_JOBDATA_H
#define PST_JOBDATA_H

#include "common/config/config.h"
#include "common/data/data.h"

typedef struct {
    dataset_t *train, *val, *test; /* val is NULL when data.validation = 0 */
    norm_stats_t norm;
    /* Click logs (data.format = "criteo"): streamed by the trainer
     * (trainer/ctr_feed.h), so the three sets above stay NULL; the lines of
     * data.train, set by the trainer once its feed has counted them with
     * their parts (ctr_feed_lines: one pass over the data). */
    int ctr;
    uint64_t ctr_lines;
    int ctr_parts;                 /* the parts the log is read in (set by the trainer) */
} job_data_t;

/* Loads and prepares the data of cfg into *d. Returns 0, or -1 with err
 * naming the file or key at fault (d is then empty). Also checks that the
 * samples fit the model's input (input_size floats) and that every label is
 * below n_classes. */
int job_data_load(job_data_t *d, const job_config_t *cfg, int input_size, int n_classes,
                  err_t *err);

void job_data_free(job_data_t *d);

/* The training samples of an epoch: the training set's, or a click-log
 * job's lines of data.train (the data-order record keeps it). */
size_t job_data_n_train(const job_data_t *d);

/* The number of samples cfg's job trains on: the training file's records
 * (data.limit of them when set) less the data.validation held out, read from
 * the file's header alone (a server needs it for the learning-rate schedule
 * without loading the data); 0 for click logs, whose lines ctr_feed_plan
 * counts with their parts. Returns 0 with *n_train, or -1 with err. */
int job_data_train_size(const job_config_t *cfg, size_t *n_train, err_t *err);

#endif
