/* criteo.c - the Criteo click-log line parser (see criteo.h). One pass over
 * the bytes of a line with hand-written digit and hex scanning: no sscanf or
 * strtol per field, so a core parses millions of lines a second. */
#include "common/data/criteo.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define CRITEO_INT_DIGITS 18   /* at most this many digits: |x| < 10^18 fits int64 */
#define CRITEO_SHOW 24         /* characters of a bad value shown in a message */
#define CRITEO_LOG_TABLE 4096  /* counts below this take log(1 + x) from a table */

/* 1 + the value of each hexadecimal digit; 0 for anything else. */
static const uint8_t HEX1[256] = {
    ['0'] = 1,   ['1'] = 2,   ['2'] = 3,   ['3'] = 4,   ['4'] = 5,   ['5'] = 6,
    ['6'] = 7,   ['7'] = 8,   ['8'] = 9,   ['9'] = 10,  ['a'] = 11,  ['b'] = 12,
    ['c'] = 13,  ['d'] = 14,  ['e'] = 15,  ['f'] = 16,  ['A'] = 11,  ['B'] = 12,
    ['C'] = 13,  ['D'] = 14,  ['E'] = 15,  ['F'] = 16,
};

const char *criteo_column_name(int c, char *buf)
{
    if (c <= 0 || c >= CRITEO_COLS) {
        memcpy(buf, "label", 6);
        return buf;
    }
    int k = c <= CRITEO_NUM ? c : c - CRITEO_NUM; /* 1..26: two digits at most */
    buf[0] = c <= CRITEO_NUM ? 'I' : 'C';
    buf[1] = k >= 10 ? (char)('0' + k / 10) : (char)('0' + k);
    buf[2] = k >= 10 ? (char)('0' + k % 10) : '\0';
    buf[3] = '\0';
    return buf;
}

/* Fills err with "FILE:LINE: COLUMN: 'VALUE' what" for the value [v, v + n)
 * of column c (shown up to CRITEO_SHOW characters). Returns -1. */
static int bad_value(const criteo_where_t *w, int c, const char *v, size_t n, const char *what,
                     err_t *err)
{
    char name[8];
    int shown = n > CRITEO_SHOW ? CRITEO_SHOW : (int)n;
    return err_set(err, "%s:%llu: %s: '%.*s%s' %s", w->file, (unsigned long long)w->line,
                   criteo_column_name(c, name), shown, v, n > CRITEO_SHOW ? "..." : "", what);
}

/* Fills err with "FILE:LINE: N columns, a Criteo line has 40 ..." for the
 * line [p, p + len). Returns -1. */
static int bad_columns(const criteo_where_t *w, const char *p, size_t len, err_t *err)
{
    size_t cols = 1;
    for (size_t i = 0; i < len; i++)
        cols += p[i] == '\t';
    return err_set(err, "%s:%llu: %zu column%s, a Criteo line has %d (label, I1-I%d, C1-C%d)",
                   w->file, (unsigned long long)w->line, cols, cols == 1 ? "" : "s", CRITEO_COLS,
                   CRITEO_NUM, CRITEO_CAT);
}

/* The end of the field that starts at v: its tab, or end. */
static const char *field_end(const char *v, const char *end)
{
    const char *t = memchr(v, '\t', (size_t)(end - v));
    return t ? t : end;
}

/* Fills err for the bad value of column c that starts at v (the slow path:
 * only for a line that is refused). Returns -1. */
static int bad_field(const criteo_where_t *w, int c, const char *v, const char *end, err_t *err)
{
    size_t n = (size_t)(field_end(v, end) - v);
    if (c <= CRITEO_NUM)
        return bad_value(w, c, v, n, "is not an integer (at most 18 digits)", err);
    int hex = 1;
    for (size_t i = 0; i < n; i++)
        hex &= HEX1[(unsigned char)v[i]] != 0;
    return bad_value(w, c, v, n,
                     hex && n > CRITEO_HEX_DIGITS ? "has more than 8 hex digits"
                                                  : "is not hexadecimal",
                     err);
}

/* log(1 + x) of the small counts, which most dense values are. */
static float LOG1P[CRITEO_LOG_TABLE];
static pthread_once_t log1p_once = PTHREAD_ONCE_INIT;

static void log1p_init(void)
{
    for (int x = 0; x < CRITEO_LOG_TABLE; x++)
        LOG1P[x] = log1pf((float)x);
}

/* Parses the integer field at *pv (an optional sign and at most 18 digits,
 * or nothing), which a tab ends, into *out = log(1 + max(x, 0)) (empty: 0)
 * and moves *pv past the tab. Returns 0, or -1 if it is not one. */
static inline int num_field(const char **pv, float *out)
{
    const char *q = *pv;
    int neg = *q == '-';
    q += neg || *q == '+';
    const char *d0 = q;
    uint64_t r = 0;
    unsigned d;
    while ((d = (unsigned)(unsigned char)*q - '0') <= 9) {
        r = r * 10 + d;
        q++;
    }
    size_t digits = (size_t)(q - d0);
    if (*q != '\t' || digits > CRITEO_INT_DIGITS || (!digits && q != *pv))
        return -1;
    *out = neg || !r ? 0.0f : r < CRITEO_LOG_TABLE ? LOG1P[r] : log1pf((float)r);
    *pv = q + 1;
    return 0;
}

/* Parses the hex field at *pv (at most 8 digits, or nothing: CRITEO_MISSING)
 * into *id; a tab ends it, or end for the last field. Moves *pv past the
 * tab. Returns 0, or -1 if it is not one. */
static inline int cat_field(const char **pv, const char *end, int last, uint64_t *id)
{
    const char *q = *pv;
    uint64_t r = 0;
    unsigned h;
    if (last) {
        while (q < end && (h = HEX1[(unsigned char)*q])) {
            r = (r << 4) | (h - 1);
            q++;
        }
        if (q != end)
            return -1;
    } else { /* a tab follows within the line: the column count was checked */
        while ((h = HEX1[(unsigned char)*q])) {
            r = (r << 4) | (h - 1);
            q++;
        }
        if (*q != '\t')
            return -1;
    }
    size_t n = (size_t)(q - *pv);
    if (n > CRITEO_HEX_DIGITS)
        return -1;
    *id = n ? r : CRITEO_MISSING;
    *pv = q + 1;
    return 0;
}

int criteo_parse(const char *p, size_t len, const uint32_t *rows, criteo_sample_t *out,
                 const criteo_where_t *where, err_t *err)
{
    const char *end = p + len;
    if (len && end[-1] == '\r')
        end--;
    pthread_once(&log1p_once, log1p_init);
    /* the column count first: a shifted line is named as such, not by the
     * first value that happens to be out of place */
    size_t tabs = 0;
    for (const char *q = p; q < end; q++)
        tabs += *q == '\t';
    if (tabs != CRITEO_COLS - 1)
        return bad_columns(where, p, len, err);
    if (p[1] != '\t' || (p[0] != '0' && p[0] != '1'))
        return bad_value(where, 0, p, (size_t)((const char *)memchr(p, '\t', len) - p),
                         "is not 0 or 1", err);
    out->label = (float)(p[0] - '0');
    out->missing = 0;
    const char *v = p + 2;
    for (int j = 0; j < CRITEO_NUM; j++) {
        const char *start = v;
        if (num_field(&v, &out->num[j]) != 0)
            return bad_field(where, 1 + j, start, end, err);
    }
    for (int f = 0; f < CRITEO_CAT; f++) {
        const char *start = v;
        uint64_t id;
        if (cat_field(&v, end, f == CRITEO_CAT - 1, &id) != 0)
            return bad_field(where, 1 + CRITEO_NUM + f, start, end, err);
        if (id == CRITEO_MISSING)
            out->missing |= 1u << f;
        out->cat[f] = rows && rows[f] ? id % rows[f] : id;
    }
    return 0;
}
