/* criteo_check.c - the oracle of the click-log parser (see criteo_check.h). */
#include "criteo_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/data/criteo.h"

/* Table sizes when the first byte asks for them: small, large, 1 (every id
 * becomes 0) and 0 (no reduction for that field). */
static void fuzz_rows(uint32_t rows[CRITEO_CAT])
{
    for (int f = 0; f < CRITEO_CAT; f++)
        rows[f] = f % 4 == 0 ? 7u : f % 4 == 1 ? 4000000000u : f % 4 == 2 ? 1u : 0u;
}

/* Checks an accepted sample. Returns 0, or -1 with msg. */
static int check_sample(const criteo_sample_t *s, const uint32_t *rows, uint64_t line, char *msg,
                        size_t msg_len)
{
    if (s->label != 0.0f && s->label != 1.0f)
        return snprintf(msg, msg_len, "line %llu: label %g", (unsigned long long)line,
                        (double)s->label), -1;
    for (int j = 0; j < CRITEO_NUM; j++)
        if (!isfinite(s->num[j]) || s->num[j] < 0.0f)
            return snprintf(msg, msg_len, "line %llu: I%d = %g", (unsigned long long)line, j + 1,
                            (double)s->num[j]), -1;
    for (int f = 0; f < CRITEO_CAT; f++) {
        const uint64_t r = rows ? rows[f] : 0;
        const uint64_t missing = r ? CRITEO_MISSING % r : CRITEO_MISSING;
        const int bit = (s->missing >> f) & 1;
        if ((r && s->cat[f] >= r) || (!r && s->cat[f] > CRITEO_MISSING) ||
            (bit && s->cat[f] != missing) || (!bit && !r && s->cat[f] == CRITEO_MISSING))
            return snprintf(msg, msg_len, "line %llu: C%d = %llu (rows %llu, missing bit %d)",
                            (unsigned long long)line, f + 1, (unsigned long long)s->cat[f],
                            (unsigned long long)r, bit), -1;
    }
    return 0;
}

int fuzz_criteo_run(const uint8_t *data, size_t size, int *accepted, char *msg, size_t msg_len)
{
    char none[1];
    if (!msg || !msg_len)
        msg = none, msg_len = sizeof none;
    msg[0] = '\0';
    if (accepted)
        *accepted = 0;
    if (size == 0)
        return 0;
    uint32_t table[CRITEO_CAT];
    fuzz_rows(table);
    const uint32_t *rows = data[0] & 1 ? table : NULL;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    for (uint64_t line = 1; p <= end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const size_t len = (size_t)((nl ? nl : end) - p);
        criteo_sample_t s;
        const criteo_where_t where = {"fuzz", line};
        err_t err = {{0}};
        char head[64];
        snprintf(head, sizeof head, "fuzz:%llu: ", (unsigned long long)line);
        if (criteo_parse(p, len, rows, &s, &where, &err) == 0) {
            if (check_sample(&s, rows, line, msg, msg_len) != 0)
                return -1;
            if (accepted)
                (*accepted)++;
        } else if (strncmp(err.msg, head, strlen(head)) != 0 || !err.msg[strlen(head)]) {
            return snprintf(msg, msg_len, "line %llu refused without FILE:LINE: '%s'",
                            (unsigned long long)line, err.msg), -1;
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}
