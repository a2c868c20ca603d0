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

/* A file written atomically in pieces (for files too large to build in
 * memory first): fs_atomic_open creates the temporary file, fs_atomic_write
 * appends, fs_atomic_commit makes it the real file (fsync, rename, fsync of
 * the folder) and fs_atomic_abort removes it. Both end the writer. */
typedef struct fs_atomic_t fs_atomic_t;

/* A writer for path, or NULL with err naming the path. */
fs_atomic_t *fs_atomic_open(const char *path, err_t *err);
/* Appends len bytes. Returns 0, or -1 with err naming the file (the writer
 * stays valid: abort it). */
int fs_atomic_write(fs_atomic_t *f, const void *data, size_t len, err_t *err);
/* Finishes the file and frees the writer (*f_p set to NULL). Returns 0, or
 * -1 with err naming the path: then the temporary file is removed and the
 * old file (if any) is untouched. */
int fs_atomic_commit(fs_atomic_t **f_p, err_t *err);
/* Removes the temporary file and frees the writer; accepts NULL. */
void fs_atomic_abort(fs_atomic_t **f_p);

/* Creates dir and its missing parents (mode 0755). Returns 0 or -1 with err. */
int fs_mkdirs(const char *dir, err_t *err);

/* Makes path a second name of the file src (a hard link; a copy where the
 * file system has none), replacing what path was, atomically: a reader sees
 * the old file or the new one. Returns 0, or -1 with err naming both. */
int fs_link_atomic(const char *src, const char *path, err_t *err);

/* Reads a whole file into a malloc'd buffer (NUL-terminated, *len excludes
 * the NUL). Returns the buffer, or NULL with err naming the path. */
char *fs_read_all(const char *path, size_t *len, err_t *err);

#endif
