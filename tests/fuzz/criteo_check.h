/* criteo_check.h - the click-log line parser under fuzzing: what
 * criteo_parse promises about any bytes, checked line by line. */
#ifndef PST_FUZZ_CRITEO_CHECK_H
#define PST_FUZZ_CRITEO_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input: its first byte chooses the table sizes (bit 0: reduce
 * ids by a fixed set of rows, else none), the rest is text cut into lines
 * at '\n'. For every line, criteo_parse either accepts it, and then the
 * label is 0 or 1, every dense value finite and >= 0, every id below its
 * table's rows (or at most CRITEO_MISSING without), the missing bit of a
 * field set exactly when its id is the missing one; or refuses it with
 * "fuzz:LINE: " and a message. Returns 0, or -1 with msg (msg_len bytes)
 * naming the broken promise; *accepted (if not NULL) gets the lines
 * accepted. */
int fuzz_criteo_run(const uint8_t *data, size_t size, int *accepted, char *msg, size_t msg_len);

#endif
