/* fuzz_criteo.c - libFuzzer target of the click-log line parser
 * (criteo_parse); the input format and the checks are in criteo_check.h. */
#include <stdio.h>
#include <stdlib.h>

#include "criteo_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[512];
    if (fuzz_criteo_run(data, size, NULL, msg, sizeof msg) != 0) {
        fprintf(stderr, "fuzz_criteo: %s\n", msg);
        abort();
    }
    return 0;
}
