/* criteo.c - the Criteo click-log line parser (see criteo.h). One pass over
 * the bytes of a line with hand-written digit and hex scanning: no sscanf or
 * strtol per field, so a core parses millions of lines a second. */
#include "common/data/criteo.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CRITEO_INT_DIGITS 18   /* at most this many digits: |x| < 10^18 fits int64 */
#define CRITEO_SHOW 24         /* characters of a bad value shown in a message */

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
    int k = c <= CRITEO_DENSE ? c : c - CRITEO_DENSE; /* 1..26: two digits at most */
    buf[0] = c <= CRITEO_DENSE ? 'I' : 'C';
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
                   CRITEO_DENSE, CRITEO_CAT);
}

/* Parses the integer [v, v + n) (an optional sign and 1..18 digits) into
 * *x. Returns 0, or -1 if it is not one. */
static int parse_int(const char *v, size_t n, int64_t *x)
{
    size_t i = 0;
    int neg = 0;
    if (v[0] == '-' || v[0] == '+') {
        neg = v[0] == '-';
        i = 1;
    }
    if (i == n || n - i > CRITEO_INT_DIGITS)
        return -1;
    int64_t r = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)v[i] - '0';
        if (d > 9)
            return -1;
        r = r * 10 + (int64_t)d;
    }
    *x = neg ? -r : r;
    return 0;
}

/* Parses the hex value [v, v + n) (1..8 digits) into *x. Returns 0, or -1
 * (a non-hex character, or too many digits: *too_long set). */
static int parse_hex(const char *v, size_t n, uint64_t *x, int *too_long)
{
    uint64_t r = 0;
    *too_long = n > CRITEO_HEX_DIGITS;
    if (*too_long)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned h = HEX1[(unsigned char)v[i]];
        if (!h)
            return -1;
        r = (r << 4) | (h - 1);
    }
    *x = r;
    return 0;
}

/* Stores the value [v, v + n) of column c (1..39) into out. Returns 0, or
 * -1 with err. */
static int parse_field(int c, const char *v, size_t n, const uint32_t *rows,
                       criteo_sample_t *out, const criteo_where_t *w, err_t *err)
{
    if (c <= CRITEO_DENSE) {
        int64_t x = 0;
        if (n && parse_int(v, n, &x) != 0)
            return bad_value(w, c, v, n, "is not an integer (at most 18 digits)", err);
        out->dense[c - 1] = x > 0 ? log1pf((float)x) : 0.0f;
        return 0;
    }
    int f = c - 1 - CRITEO_DENSE;
    uint64_t id = CRITEO_MISSING;
    if (!n) {
        out->missing |= 1u << f;
    } else {
        int too_long;
        if (parse_hex(v, n, &id, &too_long) != 0)
            return bad_value(w, c, v, n,
                             too_long ? "has more than 8 hex digits" : "is not hexadecimal", err);
    }
    out->cat[f] = rows && rows[f] ? id % rows[f] : id;
    return 0;
}

int criteo_parse(const char *p, size_t len, const uint32_t *rows, criteo_sample_t *out,
                 const criteo_where_t *where, err_t *err)
{
    const char *end = p + len;
    if (len && end[-1] == '\r')
        end--;
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
    for (int c = 1; c < CRITEO_COLS; c++) {
        const char *e = v;
        while (e < end && *e != '\t')
            e++;
        if (parse_field(c, v, (size_t)(e - v), rows, out, where, err) != 0)
            return -1;
        v = e + 1;
    }
    return 0;
}
