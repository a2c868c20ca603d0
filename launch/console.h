/* console.h - where a job's human-readable lines go: stderr, with progress
 * lines that overwrite each other on a terminal. The trainers' log callback
 * (train_log_fn) and the servers' (server_log_fn) both end here, so the
 * job's lines look alike whichever role printed them. Launcher code only:
 * library code logs through the callbacks it is given. */
#ifndef PST_CONSOLE_H
#define PST_CONSOLE_H

typedef struct {
    int tty;          /* stderr is a terminal: transient lines overwrite each other */
    int quiet;        /* print nothing (--quiet) */
    int pending;      /* a transient line is on screen and wants a newline first */
    int rank;         /* for server lines: "rank R ROLE: line" */
    const char *role;
} console_t;

/* Sets c up for stderr: tty from isatty, quiet as given, rank and role for
 * server lines. */
void console_init(console_t *c, int quiet, int rank, const char *role);

/* A train_log_fn: prints line to stderr; a transient line (progress) stays
 * on a terminal's current row until the next line replaces it. */
void console_line(void *ctx, int transient, const char *line);

/* A server_log_fn: "rank R ROLE: line" on stderr (even when quiet: these
 * are refused requests and lost trainers). */
void console_server_line(void *ctx, const char *line);

/* "\n" when a transient line is on screen (so that an error message that
 * follows starts on a row of its own), else "". */
const char *console_break(const console_t *c);

#endif
