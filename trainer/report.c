/* report.c - metrics.csv, summary.json and curves.png of a run (see report.h). */
#include "trainer/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util/fsutil.h"

extern char **environ;

static void csv_num(FILE *f, double v, const char *fmt)
{
    if (isnan(v))
        fputs(",", f); /* empty cell: no validation set */
    else {
        fputc(',', f);
        fprintf(f, fmt, v);
    }
}

int report_write_metrics(const char *dir, const epoch_row_t *rows, int n, err_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return err_set(err, "%s: out of memory", path);
    const int binary = n > 0 && rows[0].binary;
    fprintf(f, "%s%s\n", METRICS_HEADER, binary ? METRICS_BINARY_COLUMNS : "");
    for (int i = 0; i < n; i++) {
        const epoch_row_t *r = &rows[i];
        fprintf(f, "%d,%ld", r->epoch, r->step);
        csv_num(f, r->train_loss, "%.6f");
        csv_num(f, r->train_acc, "%.6f");
        csv_num(f, r->val_loss, "%.6f");
        csv_num(f, r->val_acc, "%.6f");
        csv_num(f, r->test_loss, "%.6f");
        csv_num(f, r->test_acc, "%.6f");
        csv_num(f, r->wall_s, "%.3f");
        csv_num(f, r->samples_per_s, "%.1f");
        if (binary) {
            csv_num(f, r->val_auc, "%.6f");
            csv_num(f, r->val_logloss, "%.6f");
            csv_num(f, r->test_auc, "%.6f");
            csv_num(f, r->test_logloss, "%.6f");
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        free(buf);
        return err_set(err, "%s: out of memory", path);
    }
    int rc = fs_write_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

/* "tables": the embedding rows of a sparse model (rows created per table
 * and in all, rows held, their bytes) and the bad lines skipped. */
static void add_tables(cJSON *o, const run_summary_t *s)
{
    cJSON *t = cJSON_AddObjectToObject(o, "tables");
    if (!t)
        return;
    cJSON *per = cJSON_AddArrayToObject(t, "rows_created");
    double all = 0;
    for (int i = 0; per && i < s->n_tables; i++) {
        cJSON_AddItemToArray(per, cJSON_CreateNumber((double)s->table_rows_created[i]));
        all += (double)s->table_rows_created[i];
    }
    cJSON_AddNumberToObject(t, "rows_created_all", all);
    cJSON_AddNumberToObject(t, "rows_held", (double)s->rows_held);
    cJSON_AddNumberToObject(t, "bytes", (double)s->rows_bytes);
    cJSON_AddNumberToObject(o, "bad_lines_skipped", (double)s->bad_lines);
}

/* One cell of a metrics.csv row at *p: a number, or NaN when empty. */
static double csv_cell(const char **p)
{
    const char *s = *p;
    double v = NAN;
    if (*s && *s != ',' && *s != '\n')
        v = strtod(s, NULL);
    while (*s && *s != ',' && *s != '\n')
        s++;
    if (*s == ',')
        s++;
    *p = s;
    return v;
}

int report_read_metrics(const char *dir, epoch_row_t *rows, int max, int upto_epoch)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    err_t err;
    char *text = fs_read_all(path, NULL, &err);
    if (!text)
        return 0;
    int n = 0;
    const size_t hlen = strlen(METRICS_HEADER METRICS_BINARY_COLUMNS);
    const int binary = strncmp(text, METRICS_HEADER METRICS_BINARY_COLUMNS, hlen) == 0 &&
                       (text[hlen] == '\n' || text[hlen] == '\r');
    const char *line = strchr(text, '\n'); /* after the header */
    while (line && *++line && n < max) {
        const char *p = line;
        epoch_row_t r;
        r.epoch = (int)csv_cell(&p);
        r.step = (long)csv_cell(&p);
        r.train_loss = csv_cell(&p);
        r.train_acc = csv_cell(&p);
        r.val_loss = csv_cell(&p);
        r.val_acc = csv_cell(&p);
        r.test_loss = csv_cell(&p);
        r.test_acc = csv_cell(&p);
        r.wall_s = csv_cell(&p);
        r.samples_per_s = csv_cell(&p);
        r.binary = binary;
        r.val_auc = r.val_logloss = r.test_auc = r.test_logloss = NAN;
        if (binary) {
            r.val_auc = csv_cell(&p);
            r.val_logloss = csv_cell(&p);
            r.test_auc = csv_cell(&p);
            r.test_logloss = csv_cell(&p);
        }
        /* only whole epochs 1, 2, ... in order, as this run would have written them */
        if (r.epoch != n + 1 || r.epoch > upto_epoch)
            break;
        rows[n++] = r;
        line = strchr(line, '\n');
    }
    free(text);
    return n;
}

static cJSON *num_or_null(double v)
{
    return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

int report_write_summary(const char *dir, const run_summary_t *s, err_t *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return err_set(err, "%s: out of memory", path);
    cJSON_AddStringToObject(o, "name", s->name ? s->name : "");
    cJSON_AddStringToObject(o, "mode", s->mode ? s->mode : "local");
    cJSON_AddItemToObject(o, "test_accuracy", num_or_null(s->test_accuracy));
    cJSON_AddItemToObject(o, "test_loss", num_or_null(s->test_loss));
    cJSON_AddItemToObject(o, "val_accuracy", num_or_null(s->val_accuracy));
    cJSON_AddItemToObject(o, "val_loss", num_or_null(s->val_loss));
    cJSON_AddItemToObject(o, "train_accuracy", num_or_null(s->train_accuracy));
    cJSON_AddItemToObject(o, "train_loss", num_or_null(s->train_loss));
    if (s->binary) {
        cJSON_AddItemToObject(o, "test_auc", num_or_null(s->test_auc));
        cJSON_AddItemToObject(o, "test_logloss", num_or_null(s->test_logloss));
        cJSON_AddItemToObject(o, "val_auc", num_or_null(s->val_auc));
        cJSON_AddItemToObject(o, "val_logloss", num_or_null(s->val_logloss));
    }
    cJSON_AddNumberToObject(o, "epochs", s->epochs);
    cJSON_AddNumberToObject(o, "steps", (double)s->steps);
    cJSON_AddNumberToObject(o, "samples", (double)s->samples);
    cJSON_AddNumberToObject(o, "batch", s->batch);
    cJSON_AddNumberToObject(o, "threads", s->threads);
    cJSON_AddNumberToObject(o, "whole_batch_layers", s->whole_layers);
    cJSON_AddNumberToObject(o, "wall_s", s->wall_s);
    cJSON_AddNumberToObject(o, "train_s", s->train_s);
    cJSON_AddNumberToObject(o, "samples_per_s", s->samples_per_s);
    cJSON_AddNumberToObject(o, "params", (double)s->params);
    cJSON_AddStringToObject(o, "config", s->config_path ? s->config_path : "");
    if (s->config_text)
        cJSON_AddStringToObject(o, "config_text", s->config_text);
    if (s->n_tables > 0)
        add_tables(o, s);
    if (s->dist) {
        cJSON *c = cJSON_AddObjectToObject(o, "cluster");
        if (c) {
            cJSON_AddNumberToObject(c, "servers", s->n_servers);
            cJSON_AddNumberToObject(c, "trainers", s->n_trainers);
            cJSON_AddStringToObject(c, "consistency", s->consistency ? s->consistency : "");
            cJSON_AddNumberToObject(c, "trainer_threads", s->threads);
            cJSON_AddNumberToObject(c, "server_threads", s->server_threads);
            cJSON_AddNumberToObject(c, "io_threads", s->io_threads);
        }
        cJSON *t = cJSON_AddObjectToObject(o, "trainer0");
        if (t) {
            cJSON_AddNumberToObject(t, "compute_s", s->trainer0_compute_s);
            cJSON_AddNumberToObject(t, "pull_wait_s", s->trainer0_pull_wait_s);
            cJSON_AddNumberToObject(t, "push_s", s->trainer0_push_s);
            cJSON_AddNumberToObject(t, "rows_fetch_s", s->trainer0_rows_fetch_s);
            cJSON_AddNumberToObject(t, "bytes_sent", (double)s->trainer0_bytes_sent);
            cJSON_AddNumberToObject(t, "bytes_received", (double)s->trainer0_bytes_received);
        }
        cJSON *v = cJSON_AddObjectToObject(o, "servers");
        if (v) {
            cJSON_AddNumberToObject(v, "busy_s", s->servers_busy_s);
            cJSON_AddNumberToObject(v, "updates", s->servers_updates);
            cJSON_AddNumberToObject(v, "pushes", s->servers_pushes);
            cJSON_AddNumberToObject(v, "pulls", s->servers_pulls);
            if (s->servers_rows > 0) { /* sparse tables: the memory of their rows */
                cJSON_AddNumberToObject(v, "rows", s->servers_rows);
                cJSON_AddNumberToObject(v, "rows_bytes", s->servers_rows_bytes);
                cJSON_AddNumberToObject(v, "rows_bytes_max_server", s->servers_rows_bytes_max);
            }
        }
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        return err_set(err, "%s: out of memory", path);
    size_t len = strlen(text);
    char *file = malloc(len + 1); /* the JSON and a final newline */
    int rc;
    if (!file) {
        rc = err_set(err, "%s: out of memory", path);
    } else {
        memcpy(file, text, len);
        file[len] = '\n';
        rc = fs_write_atomic(path, file, len + 1, err);
        free(file);
    }
    cJSON_free(text);
    return rc;
}

/* The gnuplot script that draws csv (epochs rows) into png: loss and
 * accuracy, and for a binary model's file (binary) the AUC, each of train
 * (not for the AUC), validation (has_val) and test, in the same colours in
 * every panel. Returns 0, or -1 when the paths make it longer than len. */
static int plot_script(char *script, size_t len, const char *png, const char *dir,
                       const char *csv, int epochs, int has_val, int binary)
{
    /* columns: 1 epoch 3 train_loss 4 train_acc 5 val_loss 6 val_acc 7 test_loss 8 test_acc,
     * binary: 11 val_auc 13 test_auc */
    const char *val_loss = has_val ? "'' using 1:5 with linespoints title 'validation', " : "";
    const char *val_acc = has_val ? "'' using 1:6 with linespoints title 'validation', " : "";
    char auc[4096 + 256] = ""; /* csv is a path of up to 4096 bytes */
    if (binary &&
        snprintf(auc, sizeof auc,
                 "set title 'ROC AUC'\nset key bottom right\n"
                 "plot \"%s\" using 1:13 with linespoints lt 3 title 'test'%s\n", csv,
                 has_val ? ", '' using 1:11 with linespoints lt 2 title 'validation'" : "") >=
            (int)sizeof auc)
        return -1;
    int n = snprintf(script, len,
                 "set terminal pngcairo size %d,450 noenhanced font ',10'\n"
                 "set output \"%s\"\n"
                 "set datafile separator ','\n"
                 "set datafile missing ''\n"
                 "set key autotitle columnhead\n"
                 "set multiplot layout 1,%d title \"%s\"\n"
                 "set xlabel 'epoch'\nset grid\nset xtics 1\nset xrange [0.5:%d.5]\n"
                 "set title 'loss'\n"
                 "plot \"%s\" using 1:3 with linespoints title 'train', %s"
                 "'' using 1:7 with linespoints title 'test'\n"
                 "set title 'accuracy'\nset key bottom right\n"
                 "plot \"%s\" using 1:4 with linespoints title 'train', %s"
                 "'' using 1:8 with linespoints title 'test'\n"
                 "%s"
                 "unset multiplot\n",
                 binary ? 1500 : 1100, png, binary ? 3 : 2, dir, epochs, csv, val_loss, csv, val_acc,
                 auc);
    return n >= 0 && (size_t)n < len ? 0 : -1;
}

int report_plot(const char *dir, err_t *err)
{
    char csv[4096], png[4096], tmp[4096], script[16384];
    snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
    snprintf(png, sizeof png, "%s/curves.png", dir);
    snprintf(tmp, sizeof tmp, "%s/curves.png.tmp.%ld", dir, (long)getpid());
    size_t len;
    char *data = fs_read_all(csv, &len, err);
    if (!data)
        return -1;
    int ok = strncmp(data, METRICS_HEADER, strlen(METRICS_HEADER)) == 0;
    const size_t blen = strlen(METRICS_HEADER METRICS_BINARY_COLUMNS);
    const int binary = strncmp(data, METRICS_HEADER METRICS_BINARY_COLUMNS, blen) == 0;
    int rows = 0;
    for (char *p = data; *p; p++)
        rows += *p == '\n';
    /* a run without a validation set leaves columns 5 and 6 empty */
    int has_val = 0;
    char *line = strchr(data, '\n');
    if (line) {
        const char *f = line + 1;
        for (int col = 1; col < 5 && f; col++) {
            f = strchr(f, ',');
            if (f)
                f++;
        }
        has_val = f && *f != ',' && *f != '\n' && *f != '\0';
    }
    free(data);
    if (!ok)
        return err_set(err, "%s: not a pstrain metrics file (header differs)", csv);
    if (rows < 2)
        return err_set(err, "%s: no epoch rows to plot", csv);
    for (const char *p = dir; *p; p++)
        if (*p == '"' || *p == '\\')
            return err_set(err, "%s: cannot plot a folder whose name holds quotes", dir);
    if (plot_script(script, sizeof script, tmp, dir, csv, rows - 1, has_val, binary) != 0)
        return err_set(err, "%s: the folder's name is too long to plot", dir);
    char spath[4096];
    snprintf(spath, sizeof spath, "%s/.curves.gp.%ld", dir, (long)getpid());
    FILE *f = fopen(spath, "w");
    if (!f)
        return err_set(err, "%s: cannot write: %s", spath, strerror(errno));
    fputs(script, f);
    fclose(f);
    pid_t pid;
    char *argv[] = {"gnuplot", spath, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        unlink(spath);
        return err_set(err, "cannot run gnuplot (Debian package gnuplot-nox): %s", strerror(rc));
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    unlink(spath);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        unlink(tmp);
        return err_set(err, "gnuplot failed drawing %s (exit status %d)", png,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    if (rename(tmp, png) != 0) {
        unlink(tmp);
        return err_set(err, "%s: rename failed: %s", png, strerror(errno));
    }
    return 0;
}
