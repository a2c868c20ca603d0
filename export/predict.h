/* predict.h - native inference with a trained model (pstrain predict): the
 * checkpoint's model run over an IDX image file, with accuracy and the
 * confusion matrix when labels are given.
 *
 * It runs the training code's own forward pass (model_predict) on inputs
 * prepared as training prepared its test set (pixels / 255, then the
 * checkpoint's NORM statistics), in batches of the model's max batch, and
 * classifies as the trainer's evaluation does (the first largest output;
 * p >= 0.5 for a one-output binary model), so
 * that with the training run's batch (trained_open(path, 0, ...)) and its
 * test_limit it gets the training run's test accuracy image for image.
 */
#ifndef PST_PREDICT_H
#define PST_PREDICT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/util/err.h"
#include "export/trained.h"

/* Called for every image, in file order: its index, predicted class and the
 * model's output (probabilities for a softmax model, the probability of
 * class 1 for a one-output binary_cross_entropy model; `classes` floats:
 * the model's outputs, valid during the call only). */
typedef void (*predict_fn)(void *ctx, long index, int pred, const float *probs, int classes);

typedef struct {
    long n;            /* images classified */
    long correct;      /* of those, predicted right (0 without labels) */
    int classes;       /* the model's classes (2 for a one-output model) */
    int has_labels;    /* 1 when a labels file was given */
    int32_t *pred;     /* n predicted classes, owned */
    long *confusion;   /* classes * classes counts, [true][pred], owned;
                        * NULL without labels */
} predict_result_t;

/* Classifies the images of the IDX file images (raw or gzip; the first
 * limit records, 0 = all) with t's model and parameters, in batches split
 * among t->threads threads, calling fn (may be
 * NULL) for each. labels (may be NULL) is an IDX label file with as many
 * records as images; then res gets the number right and the confusion
 * matrix. res is overwritten; free it with predict_result_free. Returns 0, or
 * -1 with err naming the file (missing or damaged file, image size other
 * than the model's input, label count other than the image count, a label
 * not below the model's classes, limit past the end), and res left empty. */
int predict_run(trained_t *t, const char *images, const char *labels, size_t limit,
                predict_fn fn, void *ctx, predict_result_t *res, err_t *err);

/* Frees res's arrays (res may be NULL) and zeroes it. */
void predict_result_free(predict_result_t *res);

/* Writes the report of res to f: the count of images and, with labels, the
 * accuracy, the confusion matrix (rows: true class, columns: predicted)
 * with trained_class_name's names, and each class's recall and precision.
 * Prints nothing else. Returns 0, or -1 with err when f reports a write
 * error. */
int predict_print_report(FILE *f, const trained_t *t, const predict_result_t *res, err_t *err);

#endif
