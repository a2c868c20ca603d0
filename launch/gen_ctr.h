/* gen_ctr.h - pstrain gen-ctr: writes a synthetic Criteo-layout click log
 * (common/data/ctr_synth.h) and its FILE.meta.json.
 *
 *   pstrain gen-ctr --out FILE --lines N [--seed S] [--gzip] [--rows-scale X] [--zipf A]
 */
#ifndef PST_GEN_CTR_H
#define PST_GEN_CTR_H

/* Takes main's argc/argv (argv[1] is "gen-ctr"), prints its result or error
 * and returns the exit status (0 ok, 1 failure, 2 bad usage). */
int cmd_gen_ctr(int argc, char **argv);

#endif
