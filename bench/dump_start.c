/* dump_start.c - writes a job's starting point for bench/torch_trajectory.py:
 * the initial flat parameters (params.bin, float32), the epoch-0 data order
 * of the training part (perm.bin, uint32) and the tensor table (tensors.txt:
 * name offset size per line), so that PyTorch can be started from exactly
 * pstrain's weights and fed exactly its batches.
 * Usage: dump_start CONFIG OUTDIR [key=value]... */
#include <stdio.h>
#include <stdlib.h>

#include "common/config/config.h"
#include "common/data/data.h"
#include "common/nn/model.h"
#include "common/nn/params.h"

static int write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "dump_start: cannot write %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dump_start CONFIG OUTDIR [key=value]...\n");
        return 2;
    }
    err_t err;
    job_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg || config_load(cfg, argv[1], (const char *const *)argv + 3, argc - 3, 1, &err) != 0) {
        fprintf(stderr, "dump_start: %s\n", cfg ? err.msg : "out of memory");
        return 1;
    }
    model_t *m = model_new(cfg, 1, &err);
    if (!m) {
        fprintf(stderr, "dump_start: %s\n", err.msg);
        return 1;
    }
    dataset_t *ds = dataset_load(cfg->data.train_images, cfg->data.train_labels,
                                 (size_t)cfg->data.limit, &err);
    if (!ds) {
        fprintf(stderr, "dump_start: %s\n", err.msg);
        return 1;
    }
    size_t n_train = ds->n - (size_t)cfg->data.validation;
    const param_table_t *t = model_params(m);
    float *p = malloc(t->n_params * sizeof *p);
    uint32_t *perm = malloc(n_train * sizeof *perm);
    if (!p || !perm || params_init_slice(t, cfg->train.seed, 0, t->n_params, p, &err) != 0) {
        fprintf(stderr, "dump_start: out of memory\n");
        return 1;
    }
    data_permutation(perm, n_train, cfg->train.seed, 0);
    char tab[8192];
    int k = 0;
    for (int i = 0; i < t->n && k < (int)sizeof tab; i++)
        k += snprintf(tab + k, sizeof tab - k, "%s %zu %zu\n", t->t[i].name, t->t[i].offset,
                      t->t[i].size);
    int rc = write_file(argv[2], "params.bin", p, t->n_params * sizeof *p) ||
             write_file(argv[2], "perm.bin", perm, n_train * sizeof *perm) ||
             write_file(argv[2], "tensors.txt", tab, (size_t)k);
    free(p);
    free(perm);
    dataset_destroy(&ds);
    model_destroy(&m);
    free(cfg);
    return rc ? 1 : 0;
}
