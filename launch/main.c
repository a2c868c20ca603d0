/* main.c - the pstrain command: parses the command line, loads the job
 * config and runs the job. It is the only place that prints and exits.
 *
 *   mpirun -np N pstrain --config FILE [--servers S] [--bind HOST] [--keys DIR] [--set key=value]...
 *   pstrain --local --config FILE [--set key=value]... [--out DIR]
 *   pstrain ... --resume FILE_OR_DIR      continue a job from its checkpoint
 *   pstrain plot RUN_DIR
 *   pstrain export --checkpoint C --format onnx|safetensors --out FILE
 *   pstrain predict --checkpoint C --images FILE [--labels FILE]
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
#include "common/config/config.h"
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
            "       pstrain predict --checkpoint FILE_OR_RUN_DIR --images FILE [--labels FILE]\n"
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
            "  --resume PATH      continue from a checkpoint file, or a run folder's newest\n"
            "                     complete checkpoint (checkpoints/step-N or model.ckpt);\n"
            "                     without --config the checkpoint's own config is used\n"
            "  --set key=value    override a config key, e.g. --set train.epochs=2\n"
            "                     or --set optimizer.name=sgd (repeatable)\n"
            "  --out DIR          run folder (default runs/<job name>/; with --resume the\n"
            "                     resumed run's folder; never one that holds another run)\n"
            "  --local            single-process training: no servers, no MPI\n"
            "  --no-plot          do not draw curves.png\n"
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

    const char *config_path = NULL, *out_dir = NULL;
    const char *sets[MAX_SETS];
    int n_sets = 0, no_plot = 0, quiet = 0, local = 0, servers = 0;
    const char *bind = NULL, *resume_arg = NULL, *keys_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(a, "--set") == 0 && i + 1 < argc) {
            if (n_sets == MAX_SETS) {
                fprintf(stderr, "pstrain: more than %d --set options\n", MAX_SETS);
                return 2;
            }
            sets[n_sets++] = argv[++i];
        } else if (strcmp(a, "--out") == 0 && i + 1 < argc) {
            out_dir = argv[++i];
        } else if (strcmp(a, "--local") == 0) {
            local = 1;
        } else if (strcmp(a, "--servers") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > SHARD_SERVERS_MAX) {
                fprintf(stderr, "pstrain: --servers wants a number from 1 to %d, got '%s'\n",
                        SHARD_SERVERS_MAX, argv[i]);
                return 2;
            }
            servers = (int)v;
        } else if (strcmp(a, "--resume") == 0 && i + 1 < argc) {
            resume_arg = argv[++i];
        } else if (strcmp(a, "--bind") == 0 && i + 1 < argc) {
            bind = argv[++i];
        } else if (strcmp(a, "--keys") == 0 && i + 1 < argc) {
            keys_dir = argv[++i];
        } else if (strcmp(a, "--no-plot") == 0) {
            no_plot = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("pstrain %s\n", PSTRAIN_VERSION);
            return 0;
        } else {
            fprintf(stderr, "pstrain: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!config_path && !resume_arg) {
        fprintf(stderr, "pstrain: --config FILE (or --resume PATH) is required\n");
        usage(stderr);
        return 2;
    }

    err_t err;
    checkpoint_t *resume = NULL;
    char resume_path[4200] = "";
    if (resume_arg) {
        /* a file, or a run folder's newest complete checkpoint */
        if (!(resume = ckptdir_resume(resume_arg, resume_path, sizeof resume_path, &err))) {
            fprintf(stderr, "pstrain: --resume: %s\n", err.msg);
            return 1;
        }
    }
    /* the job: --config, or the config kept in the checkpoint */
    char ck_name[4300];
    snprintf(ck_name, sizeof ck_name, "%s: section CONFIG", resume_path);
    const char *src = config_path ? NULL : resume->config_text;
    const char *name = config_path ? config_path : ck_name;
    job_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        fprintf(stderr, "pstrain: out of memory\n");
        checkpoint_free(&resume);
        return 1;
    }
    int loaded = src ? config_load_text(cfg, name, src, sets, n_sets, 1, &err)
                     : config_load(cfg, name, sets, n_sets, 1, &err);
    if (loaded != 0) {
        fprintf(stderr, "pstrain: %s\n", err.msg);
        free(cfg);
        checkpoint_free(&resume);
        return 1;
    }
    char *text = config_text_from(name, src, sets, n_sets, &err);
    if (!text) {
        fprintf(stderr, "pstrain: %s\n", err.msg);
        free(cfg);
        checkpoint_free(&resume);
        return 1;
    }
    char dir[CFG_PATH_LEN + 16], run_dir[4200] = "";
    if (resume_arg && out_dir_check(resume_arg, &out_dir, run_dir, sizeof run_dir) != 0) {
        free(text);
        free(cfg);
        checkpoint_free(&resume);
        return 2;
    }
    if (!out_dir) {
        snprintf(dir, sizeof dir, "runs/%s", cfg->name);
        out_dir = dir;
    }
    /* SIGINT / SIGTERM: a checkpoint at the next step, then a clean exit */
    train_catch_signals();
    if (!local) {
        cluster_opts_t co = {.servers = servers, .bind = bind, .out_dir = out_dir,
                             .config_text = text, .no_plot = no_plot, .quiet = quiet,
                             .resume = resume, .resume_path = resume_path,
                             .resume_dir = run_dir[0] ? run_dir : NULL,
                             .keys_dir = keys_dir};
        int st = cluster_main(&argc, &argv, cfg, &co);
        free(text);
        free(cfg);
        checkpoint_free(&resume);
        return st;
    }
    console_t ls;
    console_init(&ls, quiet, 0, "trainer");
    train_opts_t opts = {
        .out_dir = out_dir, .config_text = text, .log = console_line, .log_ctx = &ls,
        .no_plot = no_plot, .resume = resume, .resume_path = resume_path,
        .resume_dir = run_dir[0] ? run_dir : NULL,
    };
    train_result_t res;
    int rc = train_local(cfg, &opts, &res, &err);
    if (rc != 0) {
        fprintf(stderr, "%spstrain: %s\n", console_break(&ls), err.msg);
    } else {
        if (res.plot_error[0])
            fprintf(stderr, "pstrain: warning: curves.png not drawn: %s\n", res.plot_error);
        if (res.stopped)
            printf("stopped at step %ld; continue with --resume %s\n", res.steps, out_dir);
        else
            cluster_print_result(&res, 0, 1, out_dir);
    }
    free(text);
    free(cfg);
    checkpoint_free(&resume);
    return rc == 0 ? 0 : 1;
}
