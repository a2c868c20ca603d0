/* fsutil.c - atomic file writes and folder creation (see fsutil.h). */
#include "common/util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_write_atomic(const char *path, const void *data, size_t len, err_t *err)
{
    return fs_write_atomic_mode(path, data, len, 0644, err);
}

int fs_write_atomic_mode(const char *path, const void *data, size_t len, int mode, err_t *err)
{
    char tmp[4096], dir[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return err_set(err, "%s: path too long", path);
    /* mkstemp: a new file of our own, 0600 until fchmod gives it its mode */
    int fd = mkstemp(tmp);
    if (fd < 0)
        return err_set(err, "%s: cannot create a temporary file: %s", path, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err_set(err, "%s: write failed: %s", tmp, strerror(errno));
            goto fail;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) {
        err_set(err, "%s: fchmod/fsync failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        err_set(err, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        err_set(err, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* make the rename itself durable */
        fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

struct fs_atomic_t {
    char path[4096], tmp[4096];
    FILE *f;
};

/* fsyncs the folder of path, so that a rename into it is durable. */
static void sync_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

fs_atomic_t *fs_atomic_open(const char *path, err_t *err)
{
    fs_atomic_t *f = calloc(1, sizeof *f);
    if (!f) {
        err_set(err, "%s: out of memory", path);
        return NULL;
    }
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path ||
        snprintf(f->tmp, sizeof f->tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof f->tmp) {
        err_set(err, "%s: path too long", path);
        free(f);
        return NULL;
    }
    int fd = mkstemp(f->tmp);
    if (fd < 0) {
        err_set(err, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(f);
        return NULL;
    }
    if (fchmod(fd, 0644) != 0 || !(f->f = fdopen(fd, "wb"))) {
        err_set(err, "%s: cannot open %s: %s", path, f->tmp, strerror(errno));
        close(fd);
        unlink(f->tmp);
        free(f);
        return NULL;
    }
    return f;
}

int fs_atomic_write(fs_atomic_t *f, const void *data, size_t len, err_t *err)
{
    if (len && fwrite(data, 1, len, f->f) != len)
        return err_set(err, "%s: write failed: %s", f->tmp, strerror(errno));
    return 0;
}

int fs_atomic_commit(fs_atomic_t **f_p, err_t *err)
{
    fs_atomic_t *f = *f_p;
    if (fflush(f->f) != 0 || ferror(f->f) || fsync(fileno(f->f)) != 0) {
        err_set(err, "%s: write/fsync failed: %s", f->tmp, strerror(errno));
        fs_atomic_abort(f_p);
        return -1;
    }
    FILE *fp = f->f;
    f->f = NULL;
    if (fclose(fp) != 0) {
        err_set(err, "%s: close failed: %s", f->tmp, strerror(errno));
        fs_atomic_abort(f_p);
        return -1;
    }
    if (rename(f->tmp, f->path) != 0) {
        err_set(err, "%s: rename from %s failed: %s", f->path, f->tmp, strerror(errno));
        fs_atomic_abort(f_p);
        return -1;
    }
    sync_dir(f->path);
    free(f);
    *f_p = NULL;
    return 0;
}

void fs_atomic_abort(fs_atomic_t **f_p)
{
    if (!f_p || !*f_p)
        return;
    fs_atomic_t *f = *f_p;
    if (f->f)
        fclose(f->f);
    unlink(f->tmp);
    free(f);
    *f_p = NULL;
}

int fs_mkdirs(const char *dir, err_t *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return err_set(err, "%s: path too long", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return err_set(err, "%s: cannot create folder: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(err, "%s: not a folder", dir);
    return 0;
}

char *fs_read_all(const char *path, size_t *len, err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (!buf) {
        fclose(f);
        err_set(err, "%s: out of memory", path);
        return NULL;
    }
    if (ferror(f)) {
        err_set(err, "%s: read failed: %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Copies src into path atomically (fs_atomic_*). Returns 0, or -1 with err. */
static int copy_atomic(const char *src, const char *path, err_t *err)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, "%s: cannot open: %s", src, strerror(errno));
    fs_atomic_t *f = fs_atomic_open(path, err);
    enum { CHUNK = 1 << 20 };
    char *buf = f ? malloc(CHUNK) : NULL;
    int rc = f && !buf ? err_set(err, "%s: out of memory", path) : f ? 0 : -1;
    ssize_t got = 0;
    while (rc == 0 && (got = read(fd, buf, CHUNK)) > 0)
        rc = fs_atomic_write(f, buf, (size_t)got, err);
    if (rc == 0 && got < 0)
        rc = err_set(err, "%s: read error: %s", src, strerror(errno));
    if (rc == 0)
        rc = fs_atomic_commit(&f, err);
    fs_atomic_abort(&f);
    free(buf);
    close(fd);
    return rc;
}

int fs_link_atomic(const char *src, const char *path, err_t *err)
{
    char tmp[4200];
    int w = snprintf(tmp, sizeof tmp, "%s.link-%ld", path, (long)getpid());
    if (w < 0 || (size_t)w >= sizeof tmp)
        return err_set(err, "%s: path too long", path);
    unlink(tmp);
    if (link(src, tmp) != 0) {
        if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP)
            return copy_atomic(src, path, err);
        return err_set(err, "%s -> %s: %s", src, path, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return err_set(err, "%s -> %s: %s", src, path, strerror(e));
    }
    return 0;
}
