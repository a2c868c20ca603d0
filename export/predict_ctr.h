/* predict_ctr.h - native inference with a trained sparse model (pstrain
 * predict --criteo): click probabilities for the lines of a click log in
 * the Criteo layout.
 *
 * A line becomes the model's input as training made it (trainer/ctr_feed.c):
 * its 13 dense features log(1 + max(I, 0)) (common/data/criteo.h), then for
 * each field f the row id % rows_f of table f (the held row of the row
 * files, else its initial value: export/tables.h). The forward pass is the
 * training code's (team_predict), in batches of the model's max batch, in
 * file order.
 */
#ifndef PST_PREDICT_CTR_H
#define PST_PREDICT_CTR_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"
#include "export/trained.h"

/* Called for every line, in file order: its index, the model's probability
 * of a click, the line's label (0 or 1), its n_num dense features and its
 * n_ids ids already reduced to their tables (the ONNX model's inputs "num"
 * and "ids"; valid during the call only). */
typedef void (*predict_ctr_fn)(void *ctx, long index, float prob, float label,
                               const float *num, int n_num, const uint64_t *ids, int n_ids);

/* Predicts the first limit lines (0: all) of the click log source (a file,
 * folder or glob, plain or gzip: common/data/ctr_stream.h) with t's sparse
 * model, its tables loaded from t's row files (tables_load), in batches
 * split among t->threads threads, calling fn (may be NULL) for each line.
 * Returns the lines predicted, or -1 with err (a model without tables, a
 * model that does not take Criteo lines, a bad line "FILE:LINE: column", a
 * row file that does not load, out of memory). */
long predict_ctr_run(trained_t *t, const char *source, size_t limit, predict_ctr_fn fn,
                     void *ctx, err_t *err);

#endif
