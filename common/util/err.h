/* err.h - error reporting for library code.
 * Library functions return a status (0 / -1, or NULL) and fill an err_t with a
 * message that names the file, line, field or peer; only main() prints. */
#ifndef PST_ERR_H
#define PST_ERR_H

#include <stddef.h>

#define ERR_LEN 512

typedef struct {
    char msg[ERR_LEN];
} err_t;

/* Formats a message into err (err may be NULL). Always returns -1 so that
 * callers can write `return err_set(err, "...")`. */
int err_set(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the message already in err with a formatted context string,
 * e.g. err_prefix(err, "%s", path) turns "bad magic" into "path: bad magic".
 * Returns -1. */
int err_prefix(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
