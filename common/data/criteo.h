/* criteo.h - one line of a Criteo click log, parsed.
 *
 * The layout (Criteo Kaggle / Terabyte): 40 tab-separated columns,
 *
 *     label \t I1 .. I13 \t C1 .. C26 \n
 *
 * label 0 or 1; I1..I13 integers (counts, possibly negative, possibly empty);
 * C1..C26 categorical values as hexadecimal of at most 8 digits (Criteo's
 * are 8, e.g. 68fd1e64), possibly empty. As DLRM does, a dense value becomes
 * log(1 + max(x, 0)) and an empty one 0.
 *
 * A missing (empty) categorical is marked twice: bit f of `missing` is set,
 * and its id is the reserved value CRITEO_MISSING (2^32, one past any
 * 8-digit hex value). With a table size rows[f] the id is reduced as every
 * other one, cat[f] = id % rows[f] (DLRM's --max-ind-range): the missing value
 * then lands on row 2^32 % rows[f] like any hashed value would, and a model
 * that wants a row of its own for it reads the mask.
 */
#ifndef PST_CRITEO_H
#define PST_CRITEO_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/err.h"

/* "num" names the numeric (dense) features: the word dense belongs to the dense
 * layer kind alone (tests/check_layers.sh). */
#define CRITEO_NUM 13                             /* I1..I13 */
#define CRITEO_CAT 26                             /* C1..C26 */
#define CRITEO_COLS (1 + CRITEO_NUM + CRITEO_CAT) /* 40 */
#define CRITEO_HEX_DIGITS 8                       /* most digits of a categorical */
#define CRITEO_MISSING (UINT64_C(1) << 32)        /* the id of an empty categorical */

/* One parsed line. */
typedef struct {
    float label;                 /* 0 or 1 */
    float num[CRITEO_NUM];       /* the dense features: log(1 + max(I, 0)); empty: 0 */
    uint64_t cat[CRITEO_CAT];    /* hex value (or CRITEO_MISSING), % rows[f] when given */
    uint32_t missing;            /* bit f: C(f+1) was empty */
} criteo_sample_t;

/* Where a line comes from, for messages: "FILE:LINE: ...". */
typedef struct {
    const char *file;
    uint64_t line;               /* 1-based */
} criteo_where_t;

/* Parses the line [p, p + len) (without its '\n'; a trailing '\r' is
 * ignored) into *out. rows: CRITEO_CAT table sizes (0 = no reduction for that
 * field), or NULL for none. Returns 0, or -1 with err "FILE:LINE: what is
 * wrong", naming the column (label, I3, C7) for a bad value: wrong column
 * count, label other than 0/1, non-integer or too long integer, non-hex or
 * longer than 8-digit categorical. *out is undefined on error. */
int criteo_parse(const char *p, size_t len, const uint32_t *rows, criteo_sample_t *out,
                 const criteo_where_t *where, err_t *err);

/* The name of column c (0 = "label", 1..13 = "I1".."I13", 14..39 =
 * "C1".."C26"; anything else "label") in buf (at least 8 bytes). Returns buf. */
const char *criteo_column_name(int c, char *buf);

#endif
