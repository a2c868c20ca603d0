/* fsutil.h - files written so that a crash never leaves half a file under
 * the real name: temporary file in the same folder, fsync, rename, fsync of
 * the folder. */
#ifndef PST_FSUTIL_H
#define PST_FSUTIL_H

#include <stddef.h>

#include "common/util/err.h"

/* Writes len bytes to path atomically. Returns 0, or -1 with err naming the
 * path and the failing call; on error the old file (if any) is untouched and
 * no temporary file is left behind. */
int fs_write_atomic(const char *path, const void *data, size_t len, err_t *err);

/* As fs_write_atomic, with the file's mode (e.g. 0600 for a secret key: the
 * temporary file is never readable by others either). */
int fs_write_atomic_mode(const char *path, const void *data, size_t len, int mode, err_t *err);

/* Creates dir and its missing parents (mode 0755). Returns 0 or -1 with err. */
int fs_mkdirs(const char *dir, err_t *err);

/* Reads a whole file into a malloc'd buffer (NUL-terminated, *len excludes
 * the NUL). Returns the buffer, or NULL with err naming the path. */
char *fs_read_all(const char *path, size_t *len, err_t *err);

#endif
