/* report.h - what a run leaves in its folder: metrics.csv (one row per
 * epoch), summary.json (cJSON) and curves.png (gnuplot). */
#ifndef PST_REPORT_H
#define PST_REPORT_H

#include <stdint.h>

#include "common/util/err.h"

typedef struct {
    int epoch;
    long step;
    double train_loss, train_acc;
    double val_loss, val_acc;      /* NaN when there is no validation set */
    double test_loss, test_acc;
    double wall_s;                 /* since the start of the run */
    double samples_per_s;          /* training samples/s of this epoch's steps */
    /* A one-output binary_cross_entropy model (binary = 1): the exact ROC
     * AUC and the log loss (the mean binary cross-entropy, = its loss) of
     * the validation and test sets, NaN when there is no such set or the
     * AUC is undefined (one class only). metrics.csv has their columns
     * only for such a model. */
    int binary;
    double val_auc, val_logloss, test_auc, test_logloss;
} epoch_row_t;

typedef struct {
    const char *name, *config_path, *config_text;
    int epochs;
    long steps;
    size_t params;
    double test_accuracy, test_loss, val_accuracy, val_loss, train_loss, train_accuracy;
    double wall_s, train_s, samples_per_s;
    int binary;                    /* 1: the four below go into summary.json */
    double test_auc, test_logloss, val_auc, val_logloss;
    long samples;
    int threads, batch;            /* threads: a trainer's worker threads */
    int whole_layers;              /* layers that ran over the whole batch on OpenBLAS's threads */
    const char *mode;              /* "local" or "distributed" */
    /* distributed jobs: the layout and per-role figures */
    int dist, n_servers, n_trainers;
    int server_threads, io_threads; /* a server's optimizer threads, a rank's ZeroMQ I/O threads */
    const char *consistency;
    double trainer0_compute_s, trainer0_pull_wait_s, trainer0_push_s;
    double trainer0_rows_fetch_s; /* of pull_wait_s, the training batches' rows (click logs) */
    uint64_t trainer0_bytes_sent, trainer0_bytes_received;
    double servers_busy_s, servers_updates, servers_pushes, servers_pulls;
    /* the servers' row stores (sparse tables): rows held, bytes in all, bytes of the largest */
    double servers_rows, servers_rows_bytes, servers_rows_bytes_max;
    /* a model with embedding tables: rows created per table, the rows held
     * and their bytes, and the click-log lines skipped (data.bad_lines) */
    int n_tables;
    const uint64_t *table_rows_created;
    uint64_t rows_held, rows_bytes, bad_lines;
} run_summary_t;

#define METRICS_HEADER \
    "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,wall_s,samples_per_s"

/* The columns a binary model's metrics.csv adds after METRICS_HEADER's. */
#define METRICS_BINARY_COLUMNS ",val_auc,val_logloss,test_auc,test_logloss"

/* (Re)writes DIR/metrics.csv with rows[0..n) atomically: METRICS_HEADER's
 * columns, and METRICS_BINARY_COLUMNS too when the rows are a binary
 * model's (rows[0].binary). Returns 0 or -1. */
int report_write_metrics(const char *dir, const epoch_row_t *rows, int n, err_t *err);

/* Reads back the rows of DIR/metrics.csv for epochs 1..upto_epoch (at most
 * max) into rows, for a run that resumes in its own folder and must keep
 * its earlier epochs. Returns the number read: 0 when there is no file or
 * its rows do not start at epoch 1. */
int report_read_metrics(const char *dir, epoch_row_t *rows, int max, int upto_epoch);

/* Writes DIR/summary.json atomically. Returns 0 or -1. */
int report_write_summary(const char *dir, const run_summary_t *s, err_t *err);

/* Draws DIR/curves.png from DIR/metrics.csv with gnuplot (loss and accuracy
 * per epoch for train, validation and test; and the AUC of validation and
 * test when the file has a binary model's columns). Returns 0, or -1 with err when
 * metrics.csv is missing or malformed or gnuplot is missing or fails. */
int report_plot(const char *dir, err_t *err);

#endif
