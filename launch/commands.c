/* commands.c - pstrain export and pstrain predict (see commands.h). Like
 * main.c, this is a place that prints and exits; the work is in export/. */
#include "launch/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export/onnx.h"
#include "common/util/cpus.h"
#include "export/predict.h"
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

static void export_usage(FILE *f)
{
    fprintf(f, "usage: pstrain export --checkpoint FILE_OR_RUN_DIR --format onnx|safetensors "
               "--out FILE\n");
}

int cmd_export(int argc, char **argv)
{
    const char *ck = NULL, *format = "onnx", *out = NULL;
    for (int i = 2; i < argc; i++) {
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
    trained_t *t = trained_open(path, 1, &err);
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
               "  Prints one line per image (index, class number, class name), then with\n"
               "  --labels the accuracy and the confusion matrix. --quiet: the summary only.\n"
               "  --threads: threads that share each batch (default auto: this process's CPUs).\n");
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

int cmd_predict(int argc, char **argv)
{
    const char *ck = NULL, *images = NULL, *labels = NULL;
    long limit = 0;
    int quiet = 0, threads = cpus_available();
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--checkpoint") == 0 && i + 1 < argc) {
            ck = argv[++i];
        } else if (strcmp(argv[i], "--images") == 0 && i + 1 < argc) {
            images = argv[++i];
        } else if (strcmp(argv[i], "--labels") == 0 && i + 1 < argc) {
            labels = argv[++i];
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            char *end;
            limit = strtol(argv[++i], &end, 10);
            if (*end || limit < 0) {
                fprintf(stderr, "pstrain predict: --limit wants a count, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;
            const char *v = argv[++i];
            threads = strcmp(v, "auto") == 0 ? cpus_available() : (int)strtol(v, &end, 10);
            if (strcmp(v, "auto") != 0 && (*end || threads < 1 || threads > 1024)) {
                fprintf(stderr, "pstrain predict: --threads wants 1 to 1024 or auto, got '%s'\n",
                        v);
                return 2;
            }
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            predict_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "pstrain predict: unknown or incomplete option '%s'\n", argv[i]);
            predict_usage(stderr);
            return 2;
        }
    }
    if (!ck || !images) {
        predict_usage(stderr);
        return 2;
    }
    char path[4200];
    checkpoint_path(ck, path, sizeof path);
    err_t err;
    /* the training run's batch size: the same batches, the same rounding */
    trained_t *t = trained_open(path, 0, &err);
    predict_result_t res;
    memset(&res, 0, sizeof res);
    print_ctx_t pc = {t};
    int rc = 1;
    if (!t)
        goto out;
    t->threads = threads;
    if (predict_run(t, images, labels, (size_t)limit, quiet ? NULL : print_pred, &pc, &res,
                    &err) != 0)
        goto out;
    fflush(stdout);
    if (labels && predict_print_report(stdout, t, &res, &err) != 0)
        goto out;
    if (!labels)
        printf("%ld images classified\n", res.n);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "pstrain predict: %s\n", err.msg);
    predict_result_free(&res);
    trained_destroy(&t);
    return rc;
}
