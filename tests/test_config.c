/* test_config.c - CUnit suite "config": the shipped job files, defaults,
 * every kind of refused file (each message must keep its file, line and key),
 * --set overrides and config_text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <CUnit/CUnit.h>

#include "common/config/config.h"
#include "common/nn/optim.h"
#include "common/nn/registry.h"
#include "tests.h"

/* A valid model group of 7 lines: the layers open on line 4 and 5. */
#define MODEL                                                                                      \
    "model = {\n"                                                                                  \
    "  input = [1, 28, 28];\n"                                                                     \
    "  layers = (\n"                                                                               \
    "    { type = \"flatten\"; },\n"                                                               \
    "    { type = \"dense\"; units = 10; }\n"                                                      \
    "  );\n"                                                                                       \
    "};\n"

/* The same with a conv2d layer (line 4) in front of the dense one (line 5). */
#define MODEL_CONV                                                                                 \
    "model = {\n"                                                                                  \
    "  input = [1, 28, 28];\n"                                                                     \
    "  layers = (\n"                                                                               \
    "    { type = \"conv2d\"; filters = 8; },\n"                                                   \
    "    { type = \"flatten\"; }, { type = \"dense\"; units = 10; }\n"                             \
    "  );\n"                                                                                       \
    "};\n"

/* The value of key `key` of layer l: an integer (or bool), an activation. */
static int lint(const layer_cfg_t *l, const char *key)
{
    const layer_val_t *v = layer_cfg_get(l, key);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    return v->i;
}

static const act_kind_t *lact(const layer_cfg_t *l, const char *key)
{
    const layer_val_t *v = layer_cfg_get(l, key);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    return v->act;
}

/* The layer kind, activation and optimizer called name. */
#define KIND(name) layer_kind_find(name)
#define ACT(name) act_find(name)
#define OPT(name) optim_find(name)

/* Fails the current test, showing msg, unless msg contains needle. */
/* Writes text to NAME.cfg in the test run's temporary directory and puts its
 * path into path (CFG_PATH_LEN bytes). Returns 0, or -1 (test failed). */
static int write_cfg(char *path, const char *name, const char *text)
{
    snprintf(path, CFG_PATH_LEN, "%s/%s.cfg", tests_tmp_dir(), name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    int ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    CU_ASSERT_TRUE(ok);
    return ok ? 0 : -1;
}

/* Writes text as NAME.cfg and loads it (without data files) into *cfg.
 * Returns config_load's status; err holds its message. */
static int load_text(job_config_t *cfg, const char *name, const char *text,
                     const char *const *sets, int n_sets, err_t *err)
{
    char path[CFG_PATH_LEN];
    err->msg[0] = '\0';
    if (write_cfg(path, name, text) != 0)
        return -1;
    return config_load(cfg, path, sets, n_sets, 0, err);
}

/* Expects NAME.cfg holding text to be refused with a message that contains
 * "PATH:LINE: what" (line < 0: just what). */
static void expect_refused(const char *name, const char *text, int line, const char *what)
{
    static job_config_t cfg;
    char path[CFG_PATH_LEN], needle[2 * CFG_PATH_LEN];
    err_t err = {{0}};
    if (write_cfg(path, name, text) != 0)
        return;
    CU_ASSERT_EQUAL(config_load(&cfg, path, NULL, 0, 0, &err), -1);
    if (line >= 0)
        snprintf(needle, sizeof needle, "%s:%d: %s", path, line, what);
    else
        snprintf(needle, sizeof needle, "%s", what);
    TESTS_ASSERT_HAS(err.msg, needle);
}

static void test_shipped_cnn(void)
{
    static job_config_t cfg;
    err_t err = {{0}};
    char set_dir[CFG_PATH_LEN + 16];
    snprintf(set_dir, sizeof set_dir, "data.dir=%s", tests_data_dir());
    const char *sets[] = {set_dir};
    int rc = config_load(&cfg, "configs/fashion_cnn.cfg", sets, 1, 1, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cfg.name, "fashion_cnn");
    CU_ASSERT_STRING_EQUAL(cfg.source, "configs/fashion_cnn.cfg");
    CU_ASSERT_EQUAL(cfg.model.input_rank, 3);
    CU_ASSERT(cfg.model.input[0] == 1 && cfg.model.input[1] == 28 && cfg.model.input[2] == 28);
    CU_ASSERT_EQUAL_FATAL(cfg.model.n_layers, 4);
    CU_ASSERT_EQUAL(cfg.model.layers[0].kind, KIND("conv2d"));
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "filters"), 32);
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "kernel"), 3);
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "stride"), 1);
    CU_ASSERT_EQUAL(lact(&cfg.model.layers[0], "activation"), ACT("relu"));
    CU_ASSERT(cfg.model.layers[0].line > 0);
    CU_ASSERT_EQUAL(cfg.model.layers[1].kind, KIND("maxpool2d"));
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[1], "pool"), 2);
    CU_ASSERT_EQUAL(cfg.model.layers[2].kind, KIND("flatten"));
    CU_ASSERT_EQUAL(cfg.model.layers[3].kind, KIND("dense"));
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[3], "units"), 10);
    CU_ASSERT_EQUAL(lact(&cfg.model.layers[3], "activation"), ACT("softmax"));
    CU_ASSERT_EQUAL(cfg.model.loss, loss_find("cross_entropy"));
    CU_ASSERT_EQUAL(cfg.optimizer.kind, OPT("adam"));
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.lr, 0.001, 1e-12);
    CU_ASSERT_EQUAL(cfg.train.epochs, 3);
    CU_ASSERT_EQUAL(cfg.train.batch, 32);
    CU_ASSERT_EQUAL(cfg.train.seed, 0);
    CU_ASSERT_EQUAL(cfg.train.threads, CFG_AUTO);
    CU_ASSERT_EQUAL(cfg.train.log_every, 100);
    CU_ASSERT_EQUAL(cfg.data.validation, 5000);
    CU_ASSERT_EQUAL(cfg.data.normalize, NORM_NONE);
    char want[2 * CFG_PATH_LEN];
    snprintf(want, sizeof want, "%s/train-images-idx3-ubyte.gz", tests_data_dir());
    CU_ASSERT_STRING_EQUAL(cfg.data.train_images, want);
    snprintf(want, sizeof want, "%s/t10k-labels-idx1-ubyte.gz", tests_data_dir());
    CU_ASSERT_STRING_EQUAL(cfg.data.test_labels, want);
}

static void test_shipped_lstm(void)
{
    static job_config_t cfg;
    err_t err = {{0}};
    int rc = config_load(&cfg, "configs/fashion_lstm.cfg", NULL, 0, 0, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cfg.name, "fashion_lstm");
    CU_ASSERT_EQUAL(cfg.model.input_rank, 2);
    CU_ASSERT(cfg.model.input[0] == 28 && cfg.model.input[1] == 28);
    CU_ASSERT_EQUAL_FATAL(cfg.model.n_layers, 3);
    CU_ASSERT_EQUAL(cfg.model.layers[0].kind, KIND("lstm"));
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "units"), 64);
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "return_sequences"), 1);
    CU_ASSERT_EQUAL(cfg.model.layers[1].kind, KIND("lstm"));
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[1], "units"), 32);
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[1], "return_sequences"), 0);
    CU_ASSERT_EQUAL(cfg.model.layers[2].kind, KIND("dense"));
    CU_ASSERT_EQUAL(lact(&cfg.model.layers[2], "activation"), ACT("softmax"));
    CU_ASSERT_EQUAL(cfg.optimizer.kind, OPT("adam"));
    CU_ASSERT_EQUAL(cfg.train.epochs, 1);
    CU_ASSERT_EQUAL(cfg.train.batch, 32);
}

static void test_defaults(void)
{
    static job_config_t cfg;
    err_t err;
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "mini_job", MODEL_CONV, NULL, 0, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.name, "mini_job");
    CU_ASSERT_STRING_EQUAL(cfg.data.train_images,
                           "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    CU_ASSERT_STRING_EQUAL(cfg.data.train_labels,
                           "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
    CU_ASSERT_STRING_EQUAL(cfg.data.test_images,
                           "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    CU_ASSERT_STRING_EQUAL(cfg.data.test_labels,
                           "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
    CU_ASSERT_EQUAL(cfg.data.validation, 5000);
    CU_ASSERT_EQUAL(cfg.data.limit, 0);
    CU_ASSERT_EQUAL(cfg.data.test_limit, 0);
    CU_ASSERT_EQUAL(cfg.data.normalize, NORM_NONE);
    CU_ASSERT_EQUAL_FATAL(cfg.data.n_classes_names, 10);
    CU_ASSERT_STRING_EQUAL(cfg.data.classes[0], "T-shirt/top");
    CU_ASSERT_STRING_EQUAL(cfg.data.classes[6], "Shirt");
    CU_ASSERT_STRING_EQUAL(cfg.data.classes[9], "Ankle boot");
    CU_ASSERT_EQUAL(cfg.model.loss, loss_find("cross_entropy"));
    CU_ASSERT_EQUAL_FATAL(cfg.model.n_layers, 3);
    const layer_cfg_t *conv = &cfg.model.layers[0];
    CU_ASSERT_EQUAL(conv->line, 4);
    CU_ASSERT_EQUAL(cfg.model.layers[2].line, 5);
    CU_ASSERT_EQUAL(conv->kind, KIND("conv2d"));
    CU_ASSERT_EQUAL(lint(conv, "filters"), 8);
    CU_ASSERT_EQUAL(lint(conv, "kernel"), 3);
    CU_ASSERT_EQUAL(lint(conv, "stride"), 1);
    CU_ASSERT_EQUAL(lint(conv, "padding"), 0);
    CU_ASSERT_PTR_NULL(lact(conv, "activation"));
    /* a kind holds its own keys only */
    CU_ASSERT_PTR_NULL(layer_cfg_get(conv, "pool"));
    CU_ASSERT_PTR_NULL(layer_cfg_get(conv, "units"));
    CU_ASSERT_EQUAL(cfg.optimizer.kind, OPT("adam"));
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.lr, 0.001, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.beta1, 0.9, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.beta2, 0.999, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.eps, 1e-7, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.momentum, 0.0, 0.0);
    CU_ASSERT_EQUAL(cfg.optimizer.nesterov, 0);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.initial_accumulator, 0.1, 1e-12);
    CU_ASSERT_EQUAL(cfg.optimizer.schedule, SCHED_CONSTANT);
    CU_ASSERT_EQUAL(cfg.optimizer.step_size, 0);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.gamma, 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.min_lr, 0.0, 0.0);
    CU_ASSERT_EQUAL(cfg.optimizer.decay_steps, 0);
    CU_ASSERT_EQUAL(cfg.train.epochs, 1);
    CU_ASSERT_EQUAL(cfg.train.batch, 32);
    CU_ASSERT_EQUAL(cfg.train.seed, 0);
    CU_ASSERT_EQUAL(cfg.train.max_steps, 0);
    CU_ASSERT_EQUAL(cfg.train.threads, CFG_AUTO);
    CU_ASSERT_EQUAL(cfg.train.log_every, 100);
    CU_ASSERT_EQUAL(cfg.train.eval_batch, 1000);
    CU_ASSERT_EQUAL(cfg.server.threads, CFG_AUTO);
    CU_ASSERT_EQUAL(cfg.cluster.io_threads, CFG_AUTO);
}

/* Thread counts: a number, or "auto" (CFG_AUTO), in the file or by --set;
 * anything else is refused with the key and what it wants. */
static void test_thread_counts(void)
{
    static job_config_t cfg;
    err_t err;
    const char *text = "model = { input = [1, 4]; layers = ( { type = \"flatten\"; }, { type = \"dense\"; units = 2; } ); };\n"
                       "train = { threads = 3; };\nserver = { threads = \"auto\"; };\n";
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "counts", text, NULL, 0, &err), 0);
    CU_ASSERT_EQUAL(cfg.train.threads, 3);
    CU_ASSERT_EQUAL(cfg.server.threads, CFG_AUTO);
    const char *sets[] = {"train.threads=auto", "server.threads=2", "cluster.io_threads=4"};
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "counts_set", text, sets, 3, &err), 0);
    CU_ASSERT_EQUAL(cfg.train.threads, CFG_AUTO);
    CU_ASSERT_EQUAL(cfg.server.threads, 2);
    CU_ASSERT_EQUAL(cfg.cluster.io_threads, 4);
    const char *zero[] = {"train.threads=0"};
    CU_ASSERT_EQUAL(load_text(&cfg, "counts_zero", text, zero, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "train.threads: 0 is out of range, must be >=1");
    const char *word[] = {"train.threads=many"};
    CU_ASSERT_EQUAL(load_text(&cfg, "counts_word", text, word, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set train.threads=many: train.threads wants a number or \"auto\"");
    const char *bad = "model = { input = [1, 4]; layers = ( { type = \"flatten\"; }, { type = \"dense\"; units = 2; } ); };\n"
                      "train = { threads = \"all\"; };\n";
    CU_ASSERT_EQUAL(load_text(&cfg, "counts_bad", bad, NULL, 0, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "counts_bad.cfg:2: train.threads: wants a number or \"auto\", not \"all\"");
}

static void test_optimizer_defaults(void)
{
    static job_config_t cfg;
    err_t err;
    CU_ASSERT_EQUAL_FATAL(
        load_text(&cfg, "opt_sgd", MODEL "optimizer = { name = \"sgd\"; };\n", NULL, 0, &err), 0);
    CU_ASSERT_EQUAL(cfg.optimizer.kind, OPT("sgd"));
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.lr, 0.01, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.momentum, 0.0, 0.0);

    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "opt_momentum",
                                    MODEL "optimizer = { name = \"momentum\"; };\n", NULL, 0, &err),
                          0);
    CU_ASSERT_EQUAL(cfg.optimizer.kind, OPT("momentum"));
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.lr, 0.01, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.momentum, 0.9, 1e-12);

    CU_ASSERT_EQUAL_FATAL(
        load_text(&cfg, "opt_sgd_m", MODEL "optimizer = { name = \"sgd\"; momentum = 0.5; };\n",
                  NULL, 0, &err),
        0);
    CU_ASSERT_EQUAL(cfg.optimizer.kind, OPT("momentum"));
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.momentum, 0.5, 1e-12);

    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "opt_adagrad",
                                    MODEL "optimizer = { name = \"adagrad\"; };\n"
                                          "train = { seed = 5000000000L; max_steps = 7; };\n",
                                    NULL, 0, &err),
                          0);
    CU_ASSERT_EQUAL(cfg.optimizer.kind, OPT("adagrad"));
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.lr, 0.001, 1e-12);
    CU_ASSERT_EQUAL(cfg.train.seed, 5000000000ULL);
    CU_ASSERT_EQUAL(cfg.train.max_steps, 7);

    /* A float key takes an integer; the name key overrides the file name. */
    CU_ASSERT_EQUAL_FATAL(
        load_text(&cfg, "opt_int_lr", "name = \"given\";\n" MODEL "optimizer = { lr = 1; };\n",
                  NULL, 0, &err),
        0);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.lr, 1.0, 0.0);
    CU_ASSERT_STRING_EQUAL(cfg.name, "given");

    /* A step schedule needs step_size. */
    expect_refused("opt_step", MODEL "optimizer = {\n  schedule = \"step\";\n};\n", 9,
                   "optimizer.step_size: must be >=1");
}

static void test_unknown_key_top(void)
{
    expect_refused("unknown_top", MODEL "train = {\n  epochs = 2;\n  epoch = 3;\n};\n", 10,
                   "train.epoch: unknown key");
    expect_refused("unknown_root", MODEL "\nfoo = 1;\n", 9, "foo: unknown key");
    expect_refused("unknown_group", MODEL "clusters = { workers = 2; };\n", 8,
                   "clusters: unknown key");
    expect_refused("unknown_in_group", MODEL "cluster = { workers = 2; };\n", 8,
                   "cluster.workers: unknown key");
    /* A key in the wrong group gets a hint. */
    expect_refused("misplaced", MODEL "epochs = 3;\n", 8, "epochs: unknown key (did you mean train.epochs?)");
}

static void test_unknown_key_layer(void)
{
    const char *text = "model = {\n"
                       "  input = [1, 28, 28];\n"
                       "  layers = (\n"
                       "    { type = \"flatten\"; },\n"
                       "    { type = \"dense\";\n"
                       "      units = 10;\n"
                       "      unitz = 3; }\n"
                       "  );\n"
                       "};\n";
    expect_refused("unknown_layer", text, 7, "model.layers.[1].unitz: unknown key");

    /* A key of another layer type names the key and the type. */
    const char *wrong = "model = {\n"
                        "  input = [1, 28, 28];\n"
                        "  layers = (\n"
                        "    { type = \"flatten\"; units = 5; },\n"
                        "    { type = \"dense\"; units = 10; }\n"
                        "  );\n"
                        "};\n";
    expect_refused("layer_wrong_key", wrong, 4, "model.layers.[0].units: flatten layers take no units");
    const char *lstm = "model = {\n"
                       "  input = [28, 28];\n"
                       "  layers = (\n"
                       "    { type = \"lstm\"; units = 5; activation = \"relu\"; }\n"
                       "  );\n"
                       "};\n";
    expect_refused("lstm_activation", lstm, 4,
                   "model.layers.[0].activation: lstm layers take no activation");
}

static void test_wrong_type(void)
{
    expect_refused("type_float_int", MODEL "train = {\n  epochs = 2.5;\n};\n", 9,
                   "train.epochs: wants an integer");
    expect_refused("type_string_int", MODEL "train = { batch = \"32\"; };\n", 8,
                   "train.batch: wants an integer, not a string");
    expect_refused("type_bool", MODEL "optimizer = { nesterov = 1; };\n", 8,
                   "optimizer.nesterov: wants true or false");
    expect_refused("type_string", MODEL "data = { dir = 5; };\n", 8, "data.dir: wants a string");
    expect_refused("type_group", MODEL "train = 5;\n", 8, "train: wants a group");
    expect_refused("type_float_str", MODEL "optimizer = { lr = \"fast\"; };\n", 8,
                   "optimizer.lr: wants a number");
    expect_refused("type_layers", "model = {\n  input = [1, 28, 28];\n  layers = 3;\n};\n", 3,
                   "model.layers: wants a list");
    expect_refused("type_layer_int", "model = {\n  input = [1, 28, 28];\n  layers = (\n"
                                     "    { type = \"dense\"; units = 1.5; }\n  );\n};\n",
                   4, "model.layers.[0].units: wants an integer");
}

static void test_out_of_range(void)
{
    expect_refused("range_batch", MODEL "train = { batch = 0; };\n", 8,
                   "train.batch: 0 is out of range, must be >=1");
    expect_refused("range_beta1", MODEL "optimizer = { beta1 = 1.0; };\n", 8,
                   "optimizer.beta1: 1 is out of range, must be in [0,1)");
    expect_refused("range_lr", MODEL "optimizer = { lr = 0.0; };\n", 8,
                   "optimizer.lr: 0 is out of range, must be >0");
    expect_refused("range_seed", MODEL "train = { seed = -1; };\n", 8, "train.seed: -1 is out of range");
    expect_refused("range_input", "model = {\n  input = [1, 0, 28];\n  layers = ( { type = \"flatten\"; } );\n};\n",
                   2, "model.input.[1]: 0 is out of range, must be >=1");
    expect_refused("range_input_len", "model = {\n  input = [1, 1, 28, 28];\n  layers = ( { type = \"flatten\"; } );\n};\n",
                   2, "model.input: wants 1 to 3 integers, not 4");
    expect_refused("range_filters", "model = {\n  input = [1, 28, 28];\n  layers = (\n"
                                    "    { type = \"conv2d\"; filters = 0; }\n  );\n};\n",
                   4, "model.layers.[0].filters: 0 is out of range");
    expect_refused("range_int32", MODEL "train = { epochs = 5000000000L; };\n", 8,
                   "train.epochs: 5000000000 does not fit");
    expect_refused("range_no_layers", "model = {\n  input = [1, 28, 28];\n  layers = ( );\n};\n", 3,
                   "model.layers: holds no layer");
}

static void test_bad_enum(void)
{
    expect_refused("enum_norm", MODEL "data = {\n  normalize = \"zscore\";\n};\n", 9,
                   "data.normalize: \"zscore\" is not one of none, global, per_pixel");
    expect_refused("enum_opt", MODEL "optimizer = { name = \"adamw\"; };\n", 8,
                   "optimizer.name: \"adamw\" is not one of");
    expect_refused("enum_layer", "model = {\n  input = [1, 28, 28];\n  layers = (\n"
                                 "    { type = \"conv3d\"; }\n  );\n};\n",
                   4, "model.layers.[0].type: \"conv3d\" is not one of conv2d");
    expect_refused("enum_act", "model = {\n  input = [1, 28, 28];\n  layers = (\n"
                               "    { type = \"dense\"; units = 2; activation = \"gelu\"; }\n  );\n};\n",
                   4, "model.layers.[0].activation: \"gelu\" is not one of");
    expect_refused("enum_loss", "model = {\n  input = [1, 28, 28];\n  layers = ( { type = \"flatten\"; } );\n"
                                "  loss = \"hinge\";\n};\n",
                   4, "model.loss: \"hinge\" is not one of cross_entropy, mse, binary_cross_entropy");
}

static void test_missing_data_file(void)
{
    static job_config_t cfg;
    char path[CFG_PATH_LEN], text[2 * CFG_PATH_LEN], needle[3 * CFG_PATH_LEN];
    err_t err = {{0}};

    /* data.dir (line 9) holds no such file: the message names the full path. */
    snprintf(text, sizeof text, MODEL "data = {\n  dir = \"%s/nodata\";\n};\n", tests_tmp_dir());
    CU_ASSERT_EQUAL_FATAL(write_cfg(path, "missing_data", text), 0);
    CU_ASSERT_EQUAL(config_load(&cfg, path, NULL, 0, 0, &err), 0);
    CU_ASSERT_EQUAL(config_load(&cfg, path, NULL, 0, 1, &err), -1);
    snprintf(needle, sizeof needle, "%s:9: data.train_images: cannot open %s/nodata/train-images-idx3-ubyte.gz: ",
             path, tests_tmp_dir());
    TESTS_ASSERT_HAS(err.msg, needle);
    TESTS_ASSERT_HAS(err.msg, "No such file");

    /* A file named by its own key: that key's line; an absolute name is kept. */
    snprintf(text, sizeof text,
             MODEL "data = {\n  dir = \"%s\";\n  test_labels = \"/nonexistent/labels.gz\";\n};\n",
             tests_data_dir());
    CU_ASSERT_EQUAL_FATAL(write_cfg(path, "missing_labels", text), 0);
    CU_ASSERT_EQUAL(config_load(&cfg, path, NULL, 0, 1, &err), -1);
    snprintf(needle, sizeof needle, "%s:10: data.test_labels: cannot open /nonexistent/labels.gz",
             path);
    TESTS_ASSERT_HAS(err.msg, needle);

    /* A directory is not a data file. */
    snprintf(text, sizeof text, MODEL "data = { train_images = \"%s\"; };\n", tests_tmp_dir());
    CU_ASSERT_EQUAL_FATAL(write_cfg(path, "dir_as_file", text), 0);
    CU_ASSERT_EQUAL(config_load(&cfg, path, NULL, 0, 1, &err), -1);
    snprintf(needle, sizeof needle, "%s:8: data.train_images: cannot open %s", path,
             tests_tmp_dir());
    TESTS_ASSERT_HAS(err.msg, needle);

    /* A path given by --set: the message names the override. */
    char set[CFG_PATH_LEN];
    CU_ASSERT_EQUAL_FATAL(write_cfg(path, "no_data_group", MODEL), 0);
    snprintf(set, sizeof set, "data.test_images=%s/none.gz", tests_tmp_dir());
    const char *sets[] = {set};
    CU_ASSERT_EQUAL(config_load(&cfg, path, NULL, 0, 1, &err), 0);
    CU_ASSERT_EQUAL(config_load(&cfg, path, sets, 1, 1, &err), -1);
    snprintf(needle, sizeof needle, "--set %s: data.test_images: cannot open %s/none.gz", set,
             tests_tmp_dir());
    TESTS_ASSERT_HAS(err.msg, needle);

    /* An overridden data.dir is blamed even though the file names the files. */
    snprintf(text, sizeof text, MODEL "data = {\n  train_images = \"train-images-idx3-ubyte.gz\";\n};\n");
    CU_ASSERT_EQUAL_FATAL(write_cfg(path, "set_dir", text), 0);
    snprintf(set, sizeof set, "data.dir=%s/nodir", tests_tmp_dir());
    CU_ASSERT_EQUAL(config_load(&cfg, path, sets, 1, 1, &err), -1);
    snprintf(needle, sizeof needle, "--set %s: data.train_images: cannot open %s/nodir/train-images-idx3-ubyte.gz",
             set, tests_tmp_dir());
    TESTS_ASSERT_HAS(err.msg, needle);
}

static void test_missing_required(void)
{
    expect_refused("no_layers", "train = { epochs = 1; };\nmodel = {\n  input = [1, 28, 28];\n};\n",
                   2, "model.layers: is required but missing");
    expect_refused("no_input", "model = {\n  layers = ( { type = \"flatten\"; } );\n};\n", 1,
                   "model.input: is required but missing");
    expect_refused("no_model", "train = { epochs = 1; };\n", 0,
                   "model.input: is required but missing");
    expect_refused("no_filters", "model = {\n  input = [1, 28, 28];\n  layers = (\n"
                                 "    { type = \"flatten\"; },\n    { type = \"conv2d\"; kernel = 5; }\n  );\n};\n",
                   5, "model.layers.[1]: conv2d layers need filters");
    expect_refused("no_type", "model = {\n  input = [1, 28, 28];\n  layers = (\n"
                              "    { units = 3; }\n  );\n};\n",
                   4, "model.layers.[0]: has no type");
    static job_config_t cfg;
    err_t err = {{0}};
    char path[CFG_PATH_LEN];
    snprintf(path, sizeof path, "%s/does_not_exist.cfg", tests_tmp_dir());
    CU_ASSERT_EQUAL(config_load(&cfg, path, NULL, 0, 0, &err), -1);
    TESTS_ASSERT_HAS(err.msg, path);
    TESTS_ASSERT_HAS(err.msg, "cannot open");
}

static void test_parse_error(void)
{
    expect_refused("syntax", MODEL "train = {\n  epochs = ;\n};\n", 9, "syntax error");
}

static void test_set_values(void)
{
    static job_config_t cfg;
    err_t err;
    const char *sets[] = {
        "train.epochs=7",
        "optimizer.lr=0.05",
        "optimizer.beta1=0",
        "name=\"job x\"",
        "data.normalize=per_pixel",
        "optimizer.nesterov=true",
        "model.input=[3, 32, 32]",
        "model.layers.[0].filters=16",
        "model.layers.0.kernel=5",
        "model.layers.[2].activation=softmax",
        "train.seed=5000000000",
        "data.classes=[\"a\", \"b, c\", 'd']",
        "optimizer.momentum = 0.25",
    };
    int n = (int)(sizeof sets / sizeof sets[0]);
    int rc = load_text(&cfg, "set_values", MODEL_CONV "train = { epochs = 2; };\n", sets, n, &err);
    if (rc != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(cfg.train.epochs, 7);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.lr, 0.05, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.beta1, 0.0, 0.0);
    CU_ASSERT_STRING_EQUAL(cfg.name, "job x");
    CU_ASSERT_EQUAL(cfg.data.normalize, NORM_PER_PIXEL);
    CU_ASSERT_EQUAL(cfg.optimizer.nesterov, 1);
    CU_ASSERT_EQUAL(cfg.model.input_rank, 3);
    CU_ASSERT(cfg.model.input[0] == 3 && cfg.model.input[1] == 32 && cfg.model.input[2] == 32);
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "filters"), 16);
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "kernel"), 5);
    CU_ASSERT_EQUAL(lact(&cfg.model.layers[2], "activation"), ACT("softmax"));
    CU_ASSERT_EQUAL(cfg.train.seed, 5000000000ULL);
    CU_ASSERT_EQUAL_FATAL(cfg.data.n_classes_names, 3);
    CU_ASSERT_STRING_EQUAL(cfg.data.classes[1], "b, c");
    CU_ASSERT_STRING_EQUAL(cfg.data.classes[2], "d");
    CU_ASSERT_DOUBLE_EQUAL(cfg.optimizer.momentum, 0.25, 1e-12);

    /* A bare string, and false for a bool that the file sets to true. */
    const char *more[] = {"name=plain", "model.layers.[0].return_sequences=false"};
    const char *lstm = "model = {\n  input = [28, 28];\n  layers = (\n"
                       "    { type = \"lstm\"; units = 4; return_sequences = true; }\n  );\n};\n";
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "set_more", lstm, more, 2, &err), 0);
    CU_ASSERT_STRING_EQUAL(cfg.name, "plain");
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "return_sequences"), 0);
}

static void test_set_unknown_key(void)
{
    static job_config_t cfg;
    err_t err;
    const char *s1[] = {"train.epoch=2"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_unknown", MODEL, s1, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set train.epoch=2: unknown key train.epoch");
    const char *s2[] = {"model.layers.[0].unitz=2"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_unknown_layer", MODEL, s2, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set model.layers.[0].unitz=2: unknown key model.layers.[0].unitz");
    const char *s3[] = {"model.layers.[5].units=2"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_no_layer", MODEL, s3, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set model.layers.[5].units=2: model.layers.[5].units: there is no item [5]");
    const char *s4[] = {"train=3"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_group", MODEL, s4, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set train=3: train is a group");
    const char *s5[] = {"train.epochs"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_no_value", MODEL, s5, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set train.epochs: wants path=value");
    /* A key valid for another layer type is refused by the check after the overrides. */
    const char *s6[] = {"model.layers.[0].units=5"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_wrong_layer_key", MODEL, s6, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set model.layers.[0].units=5: model.layers.[0].units: flatten layers take no units");
}

static void test_set_bad_value(void)
{
    static job_config_t cfg;
    err_t err;
    const char *s1[] = {"train.epochs=x"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_bad_int", MODEL, s1, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set train.epochs=x: train.epochs wants an integer");
    const char *s2[] = {"train.epochs=2.5"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_float_int", MODEL, s2, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set train.epochs=2.5: train.epochs wants an integer");
    const char *s3[] = {"optimizer.lr=fast"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_bad_float", MODEL, s3, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set optimizer.lr=fast: optimizer.lr wants a number");
    const char *s4[] = {"optimizer.nesterov=maybe"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_bad_bool", MODEL, s4, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set optimizer.nesterov=maybe: optimizer.nesterov wants true or false");
    const char *s5[] = {"model.input=[1,x,28]"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_bad_array", MODEL, s5, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set model.input=[1,x,28]: model.input wants an array of integers");
    /* Values of the right type are still checked against ranges and choices. */
    const char *s6[] = {"train.batch=0"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_range", MODEL, s6, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set train.batch=0: train.batch: 0 is out of range, must be >=1");
    const char *s7[] = {"optimizer.name=adamw"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_enum", MODEL, s7, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set optimizer.name=adamw: optimizer.name: \"adamw\" is not one of");
    const char *s8[] = {"model.input=[1,1,28,28]"};
    CU_ASSERT_EQUAL(load_text(&cfg, "set_short_array", MODEL, s8, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set model.input=[1,1,28,28]: model.input: wants 1 to 3 integers, not 4");
}

static void test_config_text(void)
{
    char path[CFG_PATH_LEN];
    err_t err = {{0}};
    CU_ASSERT_EQUAL_FATAL(write_cfg(path, "text", MODEL_CONV "train = { epochs = 2; };\n"), 0);
    const char *sets[] = {"train.epochs=9", "train.batch=64", "optimizer.lr=0.5",
                          "model.layers.[0].filters=12", "data.normalize=global"};
    char *text = config_text(path, sets, 5, &err);
    if (!text)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    TESTS_ASSERT_HAS(text, "epochs = 9;");
    TESTS_ASSERT_HAS(text, "batch = 64;");
    TESTS_ASSERT_HAS(text, "lr = 0.5;");
    TESTS_ASSERT_HAS(text, "filters = 12;");
    TESTS_ASSERT_HAS(text, "normalize = \"global\";");
    CU_ASSERT_PTR_NULL(strstr(text, "epochs = 2;"));
    CU_ASSERT_PTR_NULL(strstr(text, "filters = 8;"));

    /* The text loads again to the same configuration. */
    static job_config_t a, b;
    char again[CFG_PATH_LEN];
    CU_ASSERT_EQUAL_FATAL(write_cfg(again, "text_again", text), 0);
    free(text);
    CU_ASSERT_EQUAL_FATAL(config_load(&a, path, sets, 5, 0, &err), 0);
    CU_ASSERT_EQUAL_FATAL(config_load(&b, again, NULL, 0, 0, &err), 0);
    CU_ASSERT_EQUAL(b.train.epochs, 9);
    CU_ASSERT_EQUAL(lint(&b.model.layers[0], "filters"), 12);
    CU_ASSERT_EQUAL(lint(&a.model.layers[0], "filters"), lint(&b.model.layers[0], "filters"));
    CU_ASSERT_EQUAL(a.train.batch, b.train.batch);
    CU_ASSERT_EQUAL(a.data.normalize, b.data.normalize);
    CU_ASSERT_DOUBLE_EQUAL(a.optimizer.lr, b.optimizer.lr, 0.0);

    /* A bad override gives NULL and the message. */
    const char *bad[] = {"train.epoch=2"};
    CU_ASSERT_PTR_NULL(config_text(path, bad, 1, &err));
    TESTS_ASSERT_HAS(err.msg, "--set train.epoch=2: unknown key train.epoch");
}

/* The keys of the kinds the layer table added, checked through their
 * descriptors as every other kind's are. */
static void test_new_layer_keys(void)
{
    const char *head = "model = {\n  input = [1, 8, 8];\n  layers = (\n";
    char text[1024];
    snprintf(text, sizeof text, "%s    { type = \"dropout\"; }\n  );\n};\n", head);
    expect_refused("dropout_no_rate", text, 4, "model.layers.[0]: dropout layers need rate");
    snprintf(text, sizeof text, "%s    { type = \"dropout\"; rate = 1.0; }\n  );\n};\n", head);
    expect_refused("dropout_rate_1", text, 4,
                   "model.layers.[0].rate: 1 is out of range, must be in [0,1)");
    snprintf(text, sizeof text, "%s    { type = \"dropout\"; rate = \"half\"; }\n  );\n};\n", head);
    expect_refused("dropout_rate_str", text, 4, "model.layers.[0].rate: wants a number");
    snprintf(text, sizeof text, "%s    { type = \"avgpool2d\"; units = 2; }\n  );\n};\n", head);
    expect_refused("avgpool_units", text, 4, "model.layers.[0].units: avgpool2d layers take no "
                                             "units (they take pool, pool_stride)");
    snprintf(text, sizeof text, "%s    { type = \"global_avgpool2d\"; pool = 2; }\n  );\n};\n", head);
    expect_refused("gap_pool", text, 4, "model.layers.[0].pool: global_avgpool2d layers take no "
                                        "pool (they take no other keys)");

    static job_config_t cfg;
    err_t err;
    snprintf(text, sizeof text, "%s    { type = \"avgpool2d\"; pool_stride = 1; },\n"
             "    { type = \"dropout\"; rate = 0.5; },\n    { type = \"global_avgpool2d\"; }\n"
             "  );\n};\n", head);
    const char *sets[] = {"model.layers.[1].rate=0.25", "model.layers.[0].pool=3"};
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "new_layers", text, sets, 2, &err), 0);
    CU_ASSERT_EQUAL(cfg.model.layers[0].kind, KIND("avgpool2d"));
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "pool"), 3);
    CU_ASSERT_EQUAL(lint(&cfg.model.layers[0], "pool_stride"), 1);
    CU_ASSERT_EQUAL(cfg.model.layers[1].kind, KIND("dropout"));
    CU_ASSERT_DOUBLE_EQUAL(layer_cfg_get(&cfg.model.layers[1], "rate")->f, 0.25, 0.0);
    CU_ASSERT_EQUAL(cfg.model.layers[2].kind, KIND("global_avgpool2d"));
    const char *bad[] = {"model.layers.[1].rate=abc"};
    CU_ASSERT_EQUAL(load_text(&cfg, "new_layers_bad", text, bad, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set model.layers.[1].rate=abc: model.layers.[1].rate wants a number");
}

static void test_names(void)
{
    /* the registries: every kind found by its name, in config order */
    const char *layers[] = {"conv2d", "maxpool2d", "flatten", "dense", "lstm", "relu", "sigmoid",
                            "tanh", "softmax", "dropout", "avgpool2d", "global_avgpool2d",
                            "interaction", "embedding"};
    const int n = (int)(sizeof layers / sizeof layers[0]);
    for (int i = 0; i < n; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(layer_kind_at(i));
        CU_ASSERT_STRING_EQUAL(layer_kind_at(i)->name, layers[i]);
        CU_ASSERT_EQUAL(layer_kind_find(layers[i]), layer_kind_at(i));
    }
    CU_ASSERT_PTR_NULL(layer_kind_at(n));
    CU_ASSERT_PTR_NULL(layer_kind_find("conv3d"));
    /* the activations are layer kinds too, each applying itself */
    const char *acts[] = {"relu", "sigmoid", "tanh", "softmax"};
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(act_find(acts[i]));
        CU_ASSERT_EQUAL(layer_kind_find(acts[i])->act, act_find(acts[i]));
    }
    CU_ASSERT_PTR_NULL(act_find("none"));
    CU_ASSERT_EQUAL(act_row_normalising(), act_find("softmax"));
    CU_ASSERT_EQUAL(act_binary_probability(), act_find("sigmoid"));
    CU_ASSERT(loss_find("binary_cross_entropy")->single_output);
    CU_ASSERT_STRING_EQUAL(loss_find("mse")->name, "mse");
    CU_ASSERT(loss_find("cross_entropy")->fuses_row_normalising);
    CU_ASSERT_PTR_NULL(loss_find("hinge"));
    CU_ASSERT_STRING_EQUAL(optim_find("adagrad")->name, "adagrad");
    CU_ASSERT_PTR_NULL(optim_find("adamw"));
}

/* data.format = "criteo" and its keys: defaults, values, data.dir joined,
 * and every refusal with its file, line and key. */
static void test_criteo_keys(void)
{
    static job_config_t cfg;
    char path[CFG_PATH_LEN], text[2 * CFG_PATH_LEN], needle[3 * CFG_PATH_LEN];
    err_t err = {{0}};

    /* defaults: idx, nothing for click logs */
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "criteo_default", MODEL, NULL, 0, &err), 0);
    CU_ASSERT_EQUAL(cfg.data.format, FORMAT_IDX);
    CU_ASSERT_STRING_EQUAL(cfg.data.train, "");
    CU_ASSERT_EQUAL(cfg.data.bad_lines, BAD_LINES_STOP);
    CU_ASSERT_EQUAL(cfg.data.shuffle_buffer, 0);

    /* a folder, relative to data.dir; a glob; skip; a buffer */
    snprintf(text, sizeof text,
             MODEL "data = {\n  format = \"criteo\";\n  dir = \"%s\";\n  train = \"logs\";\n"
                   "  test = \"/var/test-*.gz\";\n  bad_lines = \"skip\";\n"
                   "  shuffle_buffer = 100000;\n};\n",
             tests_tmp_dir());
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, "criteo_ok", text, NULL, 0, &err), 0);
    CU_ASSERT_EQUAL(cfg.data.format, FORMAT_CRITEO);
    snprintf(needle, sizeof needle, "%s/logs", tests_tmp_dir());
    CU_ASSERT_STRING_EQUAL(cfg.data.train, needle);
    CU_ASSERT_STRING_EQUAL(cfg.data.test, "/var/test-*.gz");
    CU_ASSERT_EQUAL(cfg.data.bad_lines, BAD_LINES_SKIP);
    CU_ASSERT_EQUAL(cfg.data.shuffle_buffer, 100000);

    /* check_files: the folder holds nothing yet (line 11), then a file; the glob (line 12)
     * matches nothing */
    snprintf(needle, sizeof needle, "%s/logs", tests_tmp_dir());
    mkdir(needle, 0755);
    CU_ASSERT_EQUAL_FATAL(write_cfg(path, "criteo_files", text), 0);
    CU_ASSERT_EQUAL(config_load(&cfg, path, NULL, 0, 1, &err), -1);
    snprintf(needle, sizeof needle, "%s:11: data.train: folder %s/logs holds no file", path,
             tests_tmp_dir());
    TESTS_ASSERT_HAS(err.msg, needle);
    snprintf(needle, sizeof needle, "%s/logs/day_0", tests_tmp_dir());
    FILE *f = fopen(needle, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    CU_ASSERT_EQUAL(config_load(&cfg, path, NULL, 0, 1, &err), -1);
    snprintf(needle, sizeof needle, "%s:12: data.test: /var/test-*.gz matches no file", path);
    TESTS_ASSERT_HAS(err.msg, needle);
    /* the IDX files are not looked for with criteo (data.dir holds none) */
    const char *no_test[] = {"data.test=\"\""};
    CU_ASSERT_EQUAL(config_load(&cfg, path, no_test, 1, 1, &err), 0);
    /* a missing file, given by --set */
    const char *set_train[] = {"data.train=/nonexistent/day_1.gz", "data.test=\"\""};
    CU_ASSERT_EQUAL(config_load(&cfg, path, set_train, 2, 1, &err), -1);
    TESTS_ASSERT_HAS(err.msg, "--set data.train=/nonexistent/day_1.gz: data.train: cannot open "
                        "/nonexistent/day_1.gz: No such file");

    expect_refused("criteo_format", MODEL "data = {\n  format = \"csv\";\n};\n", 9,
                   "data.format: \"csv\" is not one of idx, criteo");
    expect_refused("criteo_no_train", MODEL "data = {\n  format = \"criteo\";\n};\n", 9,
                   "data.train: is required when data.format is \"criteo\"");
    expect_refused("criteo_bad_lines",
                   MODEL "data = {\n  format = \"criteo\";\n  train = \"/x\";\n"
                         "  bad_lines = \"ignore\";\n};\n",
                   11, "data.bad_lines: \"ignore\" is not one of stop, skip");
    expect_refused("criteo_shuffle", MODEL "data = {\n  shuffle_buffer = -1;\n};\n", 9,
                   "data.shuffle_buffer: -1 is out of range, must be in [0,16777216]");
    expect_refused("criteo_shuffle_type", MODEL "data = {\n  shuffle_buffer = \"big\";\n};\n",
                   9, "data.shuffle_buffer: wants an integer, not a string");
    expect_refused("criteo_train_type", MODEL "data = {\n  format = \"criteo\";\n  train = 3;\n};\n",
                   10, "data.train: wants a string, not an integer");
    expect_refused("criteo_idx_train", MODEL "data = {\n  test = \"/logs/test.gz\";\n};\n", 9,
                   "data.test: is read only when data.format = \"criteo\"");
}

int test_config_register(void)
{
    CU_pSuite s = CU_add_suite("config", NULL, NULL);
    if (!s)
        return -1;
    struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"shipped_cnn", test_shipped_cnn},
        {"shipped_lstm", test_shipped_lstm},
        {"defaults", test_defaults},
        {"optimizer_defaults", test_optimizer_defaults},
        {"thread_counts", test_thread_counts},
        {"unknown_key_top", test_unknown_key_top},
        {"unknown_key_layer", test_unknown_key_layer},
        {"wrong_type", test_wrong_type},
        {"out_of_range", test_out_of_range},
        {"bad_enum", test_bad_enum},
        {"missing_data_file", test_missing_data_file},
        {"missing_required", test_missing_required},
        {"parse_error", test_parse_error},
        {"set_values", test_set_values},
        {"set_unknown_key", test_set_unknown_key},
        {"set_bad_value", test_set_bad_value},
        {"config_text", test_config_text},
        {"new_layer_keys", test_new_layer_keys},
        {"names", test_names},
        {"criteo_keys", test_criteo_keys},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            return -1;
    return 0;
}
