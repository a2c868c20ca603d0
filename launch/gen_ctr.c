/* gen_ctr.c - pstrain gen-ctr (see gen_ctr.h). Like main.c, a place that
 * prints; the generator itself is common/data/ctr_synth.c. */
#include "launch/gen_ctr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/data/ctr_synth.h"

static void gen_usage(FILE *f)
{
    fprintf(f,
            "usage: pstrain gen-ctr --out FILE --lines N [--seed S] [--gzip] [--rows-scale X]\n"
            "                       [--zipf A]\n"
            "  Writes N lines of a synthetic click log in the Criteo layout (label, I1-I13,\n"
            "  C1-C26), labels drawn from a planted model, and FILE.meta.json with the\n"
            "  positive rate and the planted model's AUC (the best a model can reach).\n"
            "  --rows-scale X   Criteo Kaggle cardinalities times X (default 1)\n"
            "  --zipf A         Zipf exponent of the ids (default %.1f)\n"
            "  --gzip           gzip the file (level 1)\n",
            CTR_SYNTH_ZIPF);
}

/* Parses the whole of text as a non-negative number: into *u if integer,
 * else into *d. Returns 0, or -1 if it is not one. */
static int parse_num(const char *text, int integer, unsigned long long *u, double *d)
{
    char *end;
    errno = 0;
    if (integer)
        *u = strtoull(text, &end, 10);
    else
        *d = strtod(text, &end);
    return end == text || *end || errno || text[0] == '-' ? -1 : 0;
}

int cmd_gen_ctr(int argc, char **argv)
{
    const char *out = NULL;
    unsigned long long lines = 0, seed = 0;
    int gz = 0, have_lines = 0;
    ctr_synth_opts_t o = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(a, "--out") == 0 && v) {
            out = argv[++i];
        } else if (strcmp(a, "--lines") == 0 && v) {
            bad = parse_num(argv[++i], 1, &lines, NULL);
            have_lines = 1;
        } else if (strcmp(a, "--seed") == 0 && v) {
            bad = parse_num(argv[++i], 1, &seed, NULL);
        } else if (strcmp(a, "--rows-scale") == 0 && v) {
            bad = parse_num(argv[++i], 0, NULL, &o.rows_scale) || o.rows_scale <= 0;
        } else if (strcmp(a, "--zipf") == 0 && v) {
            bad = parse_num(argv[++i], 0, NULL, &o.zipf) || o.zipf <= 0;
        } else if (strcmp(a, "--gzip") == 0) {
            gz = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            gen_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "pstrain gen-ctr: unknown or incomplete option '%s'\n", a);
            gen_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "pstrain gen-ctr: %s wants a positive number, not '%s'\n", a,
                    argv[i]);
            return 2;
        }
    }
    if (!out || !have_lines) {
        gen_usage(stderr);
        return 2;
    }
    o.seed = seed;
    err_t err;
    ctr_synth_result_t res;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ctr_synth_t *g = ctr_synth_new(&o, &err);
    int rc = !g || ctr_synth_write(g, out, lines, gz, &res, &err) != 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ctr_synth_destroy(&g);
    if (rc) {
        fprintf(stderr, "pstrain gen-ctr: %s\n", err.msg);
        return 1;
    }
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%s: %llu lines, positive rate %.4f, planted model's AUC %.4f (%s.meta.json); "
           "%.1f s, %.0f lines/s\n",
           out, lines, res.positive_rate, res.best_auc, out, s, s > 0 ? (double)lines / s : 0.0);
    return 0;
}
