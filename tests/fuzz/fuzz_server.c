/* fuzz_server.c - libFuzzer target of the parameter server's request
 * handler (server_handle): each input builds a small server and feeds it a
 * sequence of messages; the input format and the checks are in harness.h. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char ckpt_dir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_ckpt_dir(void)
{
    nftw(ckpt_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Checkpoints (config bit 7) go to a fresh temporary directory. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(ckpt_dir, sizeof ckpt_dir, "/tmp/pstrain-fuzz-XXXXXX");
    if (mkdtemp(ckpt_dir)) {
        fuzz_set_ckpt_root(ckpt_dir);
        atexit(rm_ckpt_dir);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_report_t rep;
    if (fuzz_server_run(data, size, &rep) != 0) {
        fprintf(stderr, "fuzz_server: message %d: %s\n", rep.messages, rep.msg);
        abort();
    }
    return 0;
}
