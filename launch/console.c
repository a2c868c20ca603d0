/* console.c - the job's lines on stderr (see console.h). */
#include "launch/console.h"

#include <stdio.h>
#include <unistd.h>

void console_init(console_t *c, int quiet, int rank, const char *role)
{
    *c = (console_t){.tty = isatty(STDERR_FILENO), .quiet = quiet, .rank = rank, .role = role};
}

void console_line(void *ctx, int transient, const char *line)
{
    console_t *c = ctx;
    if (c->quiet)
        return;
    if (c->tty) {
        fprintf(stderr, "\r%s\033[K%s", line, transient ? "" : "\n");
        c->pending = transient;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void console_server_line(void *ctx, const char *line)
{
    const console_t *c = ctx;
    fprintf(stderr, "rank %d %s: %s\n", c->rank, c->role ? c->role : "server", line);
}

const char *console_break(const console_t *c)
{
    return c->pending ? "\n" : "";
}
