/* main.c - the pstrain command: parses the command line, loads the job
 * config and runs the job. It is the only place that prints and exits.
 *
 *   mpirun -np N pstrain --config FILE [--servers S] [--bind HOST] [--keys DIR] [--set key=value]...
 *   pstrain --local --config FILE [--set key=value]... [--out DIR]
 *   pstrain ... --resume FILE_OR_DIR      continue a job from its checkpoint
 *   pstrain plot RUN_DIR
 *   pstrain export --checkpoint C --format onnx|safetensors --out FILE [--rows FILE]...
 *   pstrain predict --checkpoint C --images FILE [--labels FILE]
 *   pstrain predict --checkpoint C --criteo FILE [--limit N] [--dump-inputs PREFIX]
 *   pstrain gen-ctr --out FILE --lines N [--seed S] [--gzip] [--rows-scale X]
 */
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch/cluster.h"
#include "launch/console.h"
#include "launch/commands.h"
#include "launch/gen_ctr.h"
#include "common/config/config.h"
#include "common/util/cpus.h"
#include "export/checkpoint.h"
#include "export/ckptdir.h"
#include "ps/shard.h"
#include "trainer/report.h"
#include "trainer/train.h"
#include "common/util/version.h"

#define MAX_SETS 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N pstrain --config FILE [--servers S] [--bind HOST] [options]\n"
            "       pstrain --local --config FILE [options]\n"
            "       pstrain plot RUN_DIR\n"
            "       pstrain export --checkpoint FILE_OR_RUN_DIR --format onnx|safetensors --out FILE\n"
            "                      [--rows FILE]...\n"
            "       pstrain predict --checkpoint FILE_OR_RUN_DIR --images FILE [--labels FILE]\n"
            "       pstrain predict --checkpoint FILE_OR_RUN_DIR --criteo FILE [--limit N]\n"
            "                      [--rows FILE]... [--dump-inputs PREFIX]\n"
            "       pstrain gen-ctr --out FILE --lines N [--seed S] [--gzip] [--rows-scale X]\n"
            "\n"
            "  Under mpirun, ranks 0..S-1 are parameter servers and the others trainers;\n"
            "  started alone (no mpirun) pstrain runs one trainer and an in-process server.\n"
            "  --servers S        parameter-server ranks (default cluster.servers, 1)\n"
            "  --bind HOST        address or interface the servers bind to (default\n"
            "                     cluster.bind, 127.0.0.1: all ranks on one node)\n"
            "  --keys DIR         keep the job's CURVE key pairs in DIR (server.key and\n"
            "                     client.key, mode 0600): rank 0 uses the keys DIR holds,\n"
            "                     or makes new ones and writes them there. Without it the\n"
            "                     keys are made per job and never written (cluster.auth =\n"
            "                     \"curve\", the default; mpirun jobs only)\n"
            "  --config FILE      job file (libconfig syntax; see configs/)\n"
            "  --resume PATH      continue from a checkpoint file or step folder, or a run\n"
            "                     folder's newest complete checkpoint (checkpoints/step-N\n"
            "                     or model.ckpt);\n"
            "                     without --config the checkpoint's own config is used\n"
            "  --set key=value    override a config key, e.g. --set train.epochs=2\n"
            "                     or --set optimizer.name=sgd (repeatable)\n"
            "  --out DIR          run folder (default runs/<job name>/; with --resume the\n"
            "                     resumed run's folder; never one that holds another run)\n"
            "  --local            single-process training: no servers, no MPI\n"
            "  --no-plot          do not draw curves.png\n"
            "  --no-export        write the checkpoint but not model.onnx and\n"
            "                     model.safetensors (pstrain export makes them later)\n"
            "  --quiet            only the final result\n"
            "  plot RUN_DIR       redraw RUN_DIR/curves.png from RUN_DIR/metrics.csv\n");
}

/* 1 when a and b name the same existing folder. */
static int same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* Where a resumed job writes: into the run folder it continues (run_dir,
 * from --resume PATH) unless --out says otherwise, and never into a folder
 * that holds another run. Sets *out_dir (when NULL) to run_dir. Returns 0,
 * or prints why not and returns -1. */
static int out_dir_check(const char *resume_arg, const char **out_dir, char *run_dir,
                         size_t len)
{
    err_t err;
    if (ckptdir_run_dir(resume_arg, run_dir, len, &err) != 0) {
        fprintf(stderr, "pstrain: --resume: %s\n", err.msg);
        return -1;
    }
    const char *what;
    if (!*out_dir) {
        *out_dir = run_dir;
    } else if (!same_dir(*out_dir, run_dir) && ckptdir_holds_run(*out_dir, &what)) {
        fprintf(stderr, "pstrain: --out %s holds another run (%s/%s); a resumed job writes "
                "into the run it continues (%s, the default) or into a folder of its own\n",
                *out_dir, *out_dir, what, run_dir);
        return -1;
    }
    return 0;
}

static int cmd_plot(int argc, char **argv)
{
    if (argc != 3) {
        usage(stderr);
        return 2;
    }
    err_t err;
    if (report_plot(argv[2], &err) != 0) {
        fprintf(stderr, "pstrain plot: %s\n", err.msg);
        return 1;
    }
    printf("%s/curves.png\n", argv[2]);
    return 0;
}

/* The command line of a training job. */
typedef struct {
    const char *config_path, *out_dir, *bind, *resume_arg, *keys_dir;
    const char *sets[MAX_SETS];
    int n_sets, no_plot, no_export, quiet, local, servers;
} args_t;

/* The field of a that option o sets to its value, or NULL when o is not
 * one of the plain value options. */
static const char **value_slot(args_t *a, const char *o)
{
    return strcmp(o, "--config") == 0   ? &a->config_path
           : strcmp(o, "--out") == 0    ? &a->out_dir
           : strcmp(o, "--resume") == 0 ? &a->resume_arg
           : strcmp(o, "--bind") == 0   ? &a->bind
           : strcmp(o, "--keys") == 0   ? &a->keys_dir
                                        : NULL;
}

/* Takes value v of option o (--set, --servers or a value_slot one).
 * Returns -1, or 2 after a usage error (said). */
static int take_value(args_t *a, const char *o, const char *v)
{
    const char **slot = value_slot(a, o);
    if (slot) {
        *slot = v;
    } else if (strcmp(o, "--set") == 0) {
        if (a->n_sets == MAX_SETS) {
            fprintf(stderr, "pstrain: more than %d --set options\n", MAX_SETS);
            return 2;
        }
        a->sets[a->n_sets++] = v;
    } else {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > SHARD_SERVERS_MAX) {
            fprintf(stderr, "pstrain: --servers wants a number from 1 to %d, got '%s'\n",
                    SHARD_SERVERS_MAX, v);
            return 2;
        }
        a->servers = (int)n;
    }
    return -1;
}

/* Reads the options of a training job into *a. Returns -1 to go on, or the
 * exit status: 0 after --help or --version, 2 after a usage error (said). */
static int parse_args(int argc, char **argv, args_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int *flag = strcmp(o, "--local") == 0       ? &a->local
                    : strcmp(o, "--no-plot") == 0   ? &a->no_plot
                    : strcmp(o, "--no-export") == 0 ? &a->no_export
                    : strcmp(o, "--quiet") == 0     ? &a->quiet
                                                    : NULL;
        if (flag) {
            *flag = 1;
        } else if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(o, "--version") == 0) {
            printf("pstrain %s\n", PSTRAIN_VERSION);
            return 0;
        } else if ((value_slot(a, o) || strcmp(o, "--set") == 0 || strcmp(o, "--servers") == 0) &&
                   i + 1 < argc) {
            int rc = take_value(a, o, argv[++i]);
            if (rc >= 0)
                return rc;
        } else {
            fprintf(stderr, "pstrain: unknown or incomplete option '%s'\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (!a->config_path && !a->resume_arg) {
        fprintf(stderr, "pstrain: --config FILE (or --resume PATH) is required\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

/* A loaded job: its config (from --config, or kept in the checkpoint it
 * resumes), the effective config text, the checkpoint, the run folder. */
typedef struct {
    checkpoint_t *resume;
    char resume_path[4200];
    char run_dir[4200];          /* the resumed run's folder ("" when not resuming) */
    char dir[CFG_PATH_LEN + 16]; /* runs/<name> */
    const char *out_dir;
    job_config_t *cfg;
    char *text;
} job_t;

static void job_free(job_t *j)
{
    free(j->text);
    free(j->cfg);
    checkpoint_free(&j->resume);
}

/* Loads the job a asks for into *j. Returns -1 to go on, or the exit
 * status after an error (said; nothing is left to free). */
static int load_job(const args_t *a, job_t *j)
{
    err_t err;
    memset(j, 0, sizeof *j);
    /* a file, or a run folder's newest complete checkpoint */
    if (a->resume_arg &&
        !(j->resume = ckptdir_resume(a->resume_arg, j->resume_path, sizeof j->resume_path, &err))) {
        fprintf(stderr, "pstrain: --resume: %s\n", err.msg);
        return 1;
    }
    /* the job: --config, or the config kept in the checkpoint */
    char ck_name[4300];
    snprintf(ck_name, sizeof ck_name, "%s: section CONFIG", j->resume_path);
    const char *src = a->config_path ? NULL : j->resume->config_text;
    const char *name = a->config_path ? a->config_path : ck_name;
    int rc = 1;
    if (!(j->cfg = calloc(1, sizeof *j->cfg))) {
        fprintf(stderr, "pstrain: out of memory\n");
        goto fail;
    }
    if ((src ? config_load_text(j->cfg, name, src, a->sets, a->n_sets, 1, &err)
             : config_load(j->cfg, name, a->sets, a->n_sets, 1, &err)) != 0 ||
        !(j->text = config_text_from(name, src, a->sets, a->n_sets, &err))) {
        fprintf(stderr, "pstrain: %s\n", err.msg);
        goto fail;
    }
    j->out_dir = a->out_dir;
    if (a->resume_arg && out_dir_check(a->resume_arg, &j->out_dir, j->run_dir,
                                       sizeof j->run_dir) != 0) {
        rc = 2;
        goto fail;
    }
    if (!j->out_dir) {
        snprintf(j->dir, sizeof j->dir, "runs/%s", j->cfg->name);
        j->out_dir = j->dir;
    }
    return -1;
fail:
    job_free(j);
    return rc;
}

/* Trains the job in this process. Returns the exit status. */
static int run_local(const args_t *a, job_t *j)
{
    err_t err;
    console_t ls;
    console_init(&ls, a->quiet, 0, "trainer");
    train_opts_t opts = {
        .out_dir = j->out_dir, .config_text = j->text, .log = console_line, .log_ctx = &ls,
        .no_plot = a->no_plot, .no_export = a->no_export, .resume = j->resume,
        .resume_path = j->resume_path,
        .resume_dir = j->run_dir[0] ? j->run_dir : NULL,
    };
    train_result_t res;
    if (j->cfg->train.threads == CFG_AUTO)
        j->cfg->train.threads = cpus_available();
    if (train_local(j->cfg, &opts, &res, &err) != 0) {
        fprintf(stderr, "%spstrain: %s\n", console_break(&ls), err.msg);
        return 1;
    }
    if (res.plot_error[0])
        fprintf(stderr, "pstrain: warning: curves.png not drawn: %s\n", res.plot_error);
    if (res.stopped)
        printf("stopped at step %ld; continue with --resume %s\n", res.steps, j->out_dir);
    else
        cluster_print_result(&res, 0, 1, j->out_dir);
    return 0;
}

int main(int argc, char **argv)
{
    /* Large buffers (ZeroMQ's receive buffers for parameter messages, the
     * model's) go back to malloc for reuse instead of being unmapped and
     * mapped again: a freshly touched page costs 11-17 us on these machines,
     * which made a 16 MiB round trip a third slower. */
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    if (argc >= 2 && strcmp(argv[1], "plot") == 0)
        return cmd_plot(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "export") == 0)
        return cmd_export(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "predict") == 0)
        return cmd_predict(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "gen-ctr") == 0)
        return cmd_gen_ctr(argc, argv);
    args_t a;
    job_t j;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0 || (rc = load_job(&a, &j)) >= 0)
        return rc;
    /* SIGINT / SIGTERM: a checkpoint at the next step, then a clean exit */
    train_catch_signals();
    if (a.local) {
        rc = run_local(&a, &j);
    } else {
        cluster_opts_t co = {.servers = a.servers, .bind = a.bind, .out_dir = j.out_dir,
                             .config_text = j.text, .no_plot = a.no_plot,
                             .no_export = a.no_export, .quiet = a.quiet,
                             .resume = j.resume, .resume_path = j.resume_path,
                             .resume_dir = j.run_dir[0] ? j.run_dir : NULL,
                             .keys_dir = a.keys_dir};
        rc = cluster_main(&argc, &argv, j.cfg, &co);
    }
    job_free(&j);
    return rc;
}
