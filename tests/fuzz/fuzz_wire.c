/* fuzz_wire.c - libFuzzer target of the header decoder (wire_decode and
 * wire_check_payload); the input format and the checks are in harness.h. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[512];
    if (fuzz_wire_run(data, size, msg, sizeof msg) != 0) {
        fprintf(stderr, "fuzz_wire: %s\n", msg);
        abort();
    }
    return 0;
}
