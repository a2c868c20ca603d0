/* ctr_synth.h - synthetic click logs in the Criteo layout (criteo.h), with
 * labels drawn from a planted model, so that tests and benchmarks know the
 * best AUC a model can reach on them.
 *
 * Line i is a pure function of (options, i) through Philox (rng.h): any range
 * of lines can be generated alone, on any machine, and equals that range of
 * the whole file.
 *
 *   - categorical field f: an id in [0, rows_f) drawn from a Zipf law of
 *     exponent `zipf` (rank 0 the most frequent), rows_f the Criteo Kaggle
 *     cardinality of the field (CTR_CRITEO_ROWS) times rows_scale; written as
 *     8 hex digits through a bijection of 32-bit values keyed by (seed, f), so
 *     ids look like Criteo's hashes and never collide; empty with the field's
 *     Criteo-like missing rate;
 *   - dense field j: a count from a heavy-tailed law (log-uniform-like), a
 *     few negatives in I2, empty with I_j's Criteo-like missing rate;
 *   - label ~ Bernoulli(sigmoid(logit)), logit = bias + sum_f w_f(id) +
 *     sum_j a_j * log(1 + max(I_j, 0)). w_f(id) is a pseudo-random weight
 *     computed from (seed, f, id) when needed (no tables: any cardinality
 *     fits), the missing value of a field having a weight of its own; bias is
 *     calibrated on the first lines so that about CTR_SYNTH_RATE of the
 *     labels are 1 (Criteo's 25.6%).
 */
#ifndef PST_CTR_SYNTH_H
#define PST_CTR_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/data/criteo.h"
#include "common/util/err.h"

#define CTR_SYNTH_ZIPF 1.1       /* default Zipf exponent */
#define CTR_SYNTH_RATE 0.256     /* positive rate the bias is calibrated for */
#define CTR_SYNTH_LINE_MAX 640   /* longest line ctr_synth_line writes, '\n' included */

/* The 26 field cardinalities of the Criteo Kaggle display-advertising set
 * (as DLRM's data loader counts them). */
extern const uint32_t CTR_CRITEO_ROWS[CRITEO_CAT];

typedef struct {
    uint64_t seed;
    double rows_scale;           /* cardinalities x this, at least 1 (0: 1.0) */
    double zipf;                 /* exponent (0: CTR_SYNTH_ZIPF) */
} ctr_synth_opts_t;

typedef struct ctr_synth_t ctr_synth_t;

/* What ctr_synth_write wrote. */
typedef struct {
    uint64_t lines, positives;
    double positive_rate;
    double best_auc;             /* AUC of the planted probabilities on the labels drawn */
} ctr_synth_result_t;

/* A generator for options o (calibrates the bias on the first lines).
 * Returns it, or NULL with err (bad options, out of memory). */
ctr_synth_t *ctr_synth_new(const ctr_synth_opts_t *o, err_t *err);
void ctr_synth_destroy(ctr_synth_t **self_p);

/* Writes line i with its '\n' into buf (CTR_SYNTH_LINE_MAX bytes) and
 * returns its length; *logit (if not NULL) gets its planted logit. */
size_t ctr_synth_line(const ctr_synth_t *g, uint64_t i, char *buf, double *logit);

/* Rows of categorical field f (0..25): the scaled cardinality. */
uint32_t ctr_synth_rows(const ctr_synth_t *g, int f);
/* The calibrated bias of the planted model. */
double ctr_synth_bias(const ctr_synth_t *g);

/* Writes lines [0, lines) to path (gzip level 1 if gz, else plain) through
 * a temporary file renamed at the end, then PATH.meta.json: lines, seed,
 * zipf, rows_scale, cardinalities, bias, positives, positive_rate,
 * best_auc. Fills *res (may be NULL). Returns 0, or -1 with err naming the
 * file. */
int ctr_synth_write(const ctr_synth_t *g, const char *path, uint64_t lines, int gz,
                    ctr_synth_result_t *res, err_t *err);

/* AUC from per-bin counts of positives and negatives over ordered score bins
 * (ties within a bin count one half). Returns 0.5 when either count is 0. */
double ctr_auc_from_bins(const uint64_t *pos, const uint64_t *neg, size_t bins);

#endif
