/* commands.c - pstrain export and pstrain predict (see commands.h). Like
 * main.c, this is a place that prints and exits; the work is in export/. */
#include "launch/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export/onnx.h"
#include "common/util/cpus.h"
#include "common/util/le.h"
#include "export/predict.h"
#include "export/predict_ctr.h"
#include "export/safetensors.h"
#include "export/trained.h"
#include "common/util/version.h"

/* --checkpoint takes a file or a run folder (its model.ckpt). */
static void checkpoint_path(const char *arg, char *buf, size_t len)
{
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(buf, len, "%s/model.ckpt", arg);
    else
        snprintf(buf, len, "%s", arg);
}

#define ROW_FILES_MAX 4096 /* --rows given at most */

/* The row files given with --rows (none: those next to the checkpoint). */
typedef struct {
    const char *v[ROW_FILES_MAX];
    int n;
} row_files_t;

/* Takes "--rows FILE" at argv[*i]. Returns 1 when it was that option (*i
 * moved past it), 0 when not, -1 when there are too many. */
static int take_rows(int argc, char **argv, int *i, row_files_t *rf)
{
    if (strcmp(argv[*i], "--rows") != 0 || *i + 1 >= argc)
        return 0;
    if (rf->n == ROW_FILES_MAX) {
        fprintf(stderr, "pstrain: more than %d --rows files\n", ROW_FILES_MAX);
        return -1;
    }
    rf->v[rf->n++] = argv[++*i];
    return 1;
}

static void export_usage(FILE *f)
{
    fprintf(f, "usage: pstrain export --checkpoint FILE_OR_RUN_DIR --format onnx|safetensors "
               "--out FILE [--rows FILE]...\n"
               "  A model with embedding tables takes them from the row files next to the\n"
               "  checkpoint (tables-S-of-N.rows), or from the --rows files applied in order\n"
               "  (a full file, then its deltas). ONNX keeps tables over 2 GiB in FILE.data.\n");
}

int cmd_export(int argc, char **argv)
{
    const char *ck = NULL, *format = "onnx", *out = NULL;
    row_files_t rf = {.n = 0};
    for (int i = 2; i < argc; i++) {
        int r = take_rows(argc, argv, &i, &rf);
        if (r < 0)
            return 2;
        if (r)
            continue;
        if (strcmp(argv[i], "--checkpoint") == 0 && i + 1 < argc)
            ck = argv[++i];
        else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
            format = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            export_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "pstrain export: unknown or incomplete option '%s'\n", argv[i]);
            export_usage(stderr);
            return 2;
        }
    }
    int onnx = strcmp(format, "onnx") == 0, st = strcmp(format, "safetensors") == 0;
    if (!ck || !out || (!onnx && !st)) {
        if (!onnx && !st)
            fprintf(stderr, "pstrain export: --format is onnx or safetensors, not '%s'\n", format);
        export_usage(stderr);
        return 2;
    }
    char path[4200];
    checkpoint_path(ck, path, sizeof path);
    err_t err;
    trained_t *t = trained_open_rows(path, 1, rf.v, rf.n, &err);
    int rc = !t || (onnx ? onnx_export(t, out, PSTRAIN_VERSION, &err)
                         : safetensors_export(t, out, &err)) != 0;
    if (rc)
        fprintf(stderr, "pstrain export: %s\n", err.msg);
    else
        printf("%s\n", out);
    trained_destroy(&t);
    return rc;
}

static void predict_usage(FILE *f)
{
    fprintf(f, "usage: pstrain predict --checkpoint FILE_OR_RUN_DIR --images FILE.idx[.gz]\n"
               "                       [--labels FILE.idx[.gz]] [--limit N] [--threads N|auto] [--quiet]\n"
               "       pstrain predict --checkpoint FILE_OR_RUN_DIR --criteo FILE [--limit N]\n"
               "                       [--rows FILE]... [--dump-inputs PREFIX] [--threads N|auto]\n"
               "  Images: one line per image (index, class number, class name), then with\n"
               "  --labels the accuracy and the confusion matrix. --quiet: the summary only.\n"
               "  Click logs (a model with embedding tables): one click probability per line\n"
               "  of FILE (Criteo layout, plain or gzip); --rows as for export; --dump-inputs\n"
               "  writes the ONNX model's inputs: PREFIX.num (float32 [N,13]) and PREFIX.ids\n"
               "  (int64 [N,26], ids reduced to their tables), little-endian.\n"
               "  --threads: threads that share each batch (default auto: this process's CPUs).\n");
}

/* What pstrain predict was asked. */
typedef struct {
    const char *ck, *images, *labels, *criteo, *dump;
    long limit;
    int quiet, threads;
    row_files_t rf;
} predict_opts_t;

/* Parses predict's options into o. Returns -1 when they are complete, else
 * the exit status (0 after --help, 2 for bad usage). */
static int predict_parse(int argc, char **argv, predict_opts_t *o)
{
    for (int i = 2; i < argc; i++) {
        const int r = take_rows(argc, argv, &i, &o->rf);
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (r < 0)
            return 2;
        if (r)
            continue;
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            predict_usage(stdout);
            return 0;
        }
        const char **slot = strcmp(a, "--checkpoint") == 0 ? &o->ck
                            : strcmp(a, "--images") == 0   ? &o->images
                            : strcmp(a, "--labels") == 0   ? &o->labels
                            : strcmp(a, "--criteo") == 0   ? &o->criteo
                            : strcmp(a, "--dump-inputs") == 0 ? &o->dump
                                                              : NULL;
        if (v && slot) {
            *slot = argv[++i];
        } else if (v && strcmp(a, "--limit") == 0) {
            o->limit = strtol(argv[++i], &end, 10);
            if (*end || o->limit < 0) {
                fprintf(stderr, "pstrain predict: --limit wants a count, got '%s'\n", v);
                return 2;
            }
        } else if (v && strcmp(a, "--threads") == 0) {
            i++;
            o->threads = strcmp(v, "auto") == 0 ? cpus_available() : (int)strtol(v, &end, 10);
            if (strcmp(v, "auto") != 0 && (*end || o->threads < 1 || o->threads > 1024)) {
                fprintf(stderr, "pstrain predict: --threads wants 1 to 1024 or auto, got '%s'\n",
                        v);
                return 2;
            }
        } else {
            fprintf(stderr, "pstrain predict: unknown or incomplete option '%s'\n", a);
            predict_usage(stderr);
            return 2;
        }
    }
    if (!o->ck || !o->images == !o->criteo || (o->dump && !o->criteo)) {
        predict_usage(stderr);
        return 2;
    }
    return -1;
}

typedef struct {
    const trained_t *t;
} print_ctx_t;

static void print_pred(void *ctx, long index, int pred, const float *probs, int classes)
{
    const print_ctx_t *p = ctx;
    char name[64];
    /* the predicted class's probability; a one-output model's: that of class 1 */
    const float prob = classes == 1 ? probs[0] : probs[pred];
    printf("%ld\t%d\t%s\t%.4f\n", index, pred, trained_class_name(p->t, pred, name, sizeof name),
           (double)prob);
}

/* Images through t. Returns the exit status. */
static int predict_images(trained_t *t, const predict_opts_t *o, err_t *err)
{
    predict_result_t res;
    memset(&res, 0, sizeof res);
    print_ctx_t pc = {t};
    int rc = 1;
    if (predict_run(t, o->images, o->labels, (size_t)o->limit, o->quiet ? NULL : print_pred, &pc,
                    &res, err) != 0)
        goto out;
    fflush(stdout);
    if (o->labels && predict_print_report(stdout, t, &res, err) != 0)
        goto out;
    if (!o->labels)
        printf("%ld images classified\n", res.n);
    rc = 0;
out:
    predict_result_free(&res);
    return rc;
}

/* Where a click-log prediction goes: stdout, and the inputs' files. */
typedef struct {
    FILE *num, *ids;
    int failed;
} ctr_out_t;

static void print_ctr(void *ctx, long index, float prob, float label, const float *num,
                      int n_num, const uint64_t *ids, int n_ids)
{
    ctr_out_t *c = ctx;
    (void)index, (void)label;
    printf("%.9g\n", (double)prob);
    for (int k = 0; c->num && k < n_num; k++) {
        uint8_t b[4];
        le_storef(b, num[k]);
        c->failed |= fwrite(b, 1, sizeof b, c->num) != sizeof b;
    }
    for (int k = 0; c->ids && k < n_ids; k++) {
        uint8_t b[8];
        le_store64(b, ids[k]);
        c->failed |= fwrite(b, 1, sizeof b, c->ids) != sizeof b;
    }
}

/* Click-log lines through t. Returns the exit status. */
static int predict_criteo(trained_t *t, const predict_opts_t *o, err_t *err)
{
    ctr_out_t c = {NULL, NULL, 0};
    char dpath[4200], ipath[4200];
    if (o->dump) {
        snprintf(dpath, sizeof dpath, "%s.num", o->dump);
        snprintf(ipath, sizeof ipath, "%s.ids", o->dump);
        c.num = fopen(dpath, "wb");
        c.ids = fopen(ipath, "wb");
        if (!c.num || !c.ids)
            err_set(err, "--dump-inputs: cannot create %s", !c.num ? dpath : ipath);
    }
    long n = -1;
    if (!o->dump || (c.num && c.ids))
        n = predict_ctr_run(t, o->criteo, (size_t)o->limit, print_ctr, &c, err);
    if (c.num && fclose(c.num) != 0)
        c.failed = 1;
    if (c.ids && fclose(c.ids) != 0)
        c.failed = 1;
    if (n >= 0 && c.failed)
        err_set(err, "--dump-inputs: cannot write %s.num / .ids", o->dump);
    if (n < 0 || c.failed || fflush(stdout) != 0)
        return 1;
    fprintf(stderr, "pstrain predict: %ld lines of %s\n", n, o->criteo);
    return 0;
}

int cmd_predict(int argc, char **argv)
{
    predict_opts_t o = {.threads = cpus_available()};
    int rc = predict_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    char path[4200];
    checkpoint_path(o.ck, path, sizeof path);
    err_t err;
    /* the training run's batch size: the same batches, the same rounding */
    trained_t *t = trained_open_rows(path, 0, o.rf.v, o.rf.n, &err);
    rc = 1;
    if (t) {
        t->threads = o.threads;
        rc = o.criteo ? predict_criteo(t, &o, &err) : predict_images(t, &o, &err);
    }
    if (rc)
        fprintf(stderr, "pstrain predict: %s\n", err.msg);
    trained_destroy(&t);
    return rc;
}
