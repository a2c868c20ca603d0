/* err.c - error message helpers (see err.h). */
#include "common/util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(err_t *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int err_prefix(err_t *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[ERR_LEN / 2], old[ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* the message may be cut at ERR_LEN; say so rather than warn */
    int n = snprintf(err->msg, sizeof err->msg, "%s: ", prefix);
    if (n >= 0 && (size_t)n < sizeof err->msg) {
        size_t room = sizeof err->msg - (size_t)n - 1, len = strlen(old);
        if (len > room)
            len = room;
        memcpy(err->msg + n, old, len);
        err->msg[n + len] = '\0';
    }
    return -1;
}
