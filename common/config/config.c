/* config.c - job configuration (see config.h). A libconfig file is checked
 * against one schema table (SCHEMA below: path, type, default, range) and
 * the layers against their kinds' key tables, then the --set overrides are
 * written into the libconfig tree and the tree is checked again, so
 * config_text() shows exactly the configuration that runs. */
#include "common/config/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/nn/optim.h"
#include "common/nn/registry.h"

/* ------------------------------------------------------------------ schema */

typedef enum {
    K_INT,       /* integer; a 64-bit field also takes libconfig's 64-bit ints (5000000000L) */
    K_COUNT,     /* a count (integer in .range) or the string "auto", stored as CFG_AUTO (0) */
    K_FLOAT,     /* double; an integer value is accepted */
    K_BOOL,      /* true / false, stored as int */
    K_STRING,    /* stored in a char array of .size bytes (size 0: not stored) */
    K_DATAFILE,  /* a string naming a data file: joined with data.dir, checked by check_files */
    K_DATASRC,   /* a click-log source (file, folder or glob; "" = none): joined with data.dir
                  * like K_DATAFILE, checked by check_files when data.format is "criteo" */
    K_ENUM,      /* a string among .choices, stored as the choice's value (an int) */
    K_KIND,      /* the name of a registered descriptor (.entries), stored as its pointer */
    K_INT_ARRAY, /* [a, b, ...]: .nmin to .nmax ints, each in .range; count stored at .count */
    K_STR_ARRAY, /* ["a", "b", ...]: likewise, strings */
    K_LAYERS,    /* a list of groups, each checked against its layer kind's key table */
} kind_t;

typedef struct {
    const char *name;
    int value;
} choice_t;

/* The i-th name of a registry (NULL past the last) and, in *desc, its
 * descriptor. */
typedef const char *(*entry_fn)(int i, const void **desc);

typedef struct {
    const char *path;        /* dotted path; "*" stands for a layer's index */
    kind_t kind;
    size_t off, size;        /* destination in job_config_t (layer keys: in layer_cfg_t) */
    const char *def;         /* default as text, "|" between array items; NULL: none or computed */
    const char *range;       /* NULL, ">=a", ">a", "[a,b)", "[a,b]" (numbers and array items) */
    const choice_t *choices; /* K_ENUM; the first spelling of a value is its canonical name */
    entry_fn entries;        /* K_KIND: the registry's names and descriptors */
    int required;            /* 1: the file must give it */
    int nmin, nmax;          /* arrays: number of items */
    size_t count;            /* arrays: offset of the int that receives the number of items */
} schema_key_t;

/* The registries behind K_KIND keys (see entry_fn). */
static const char *layer_entry(int i, const void **desc)
{
    const layer_kind_t *k = layer_kind_at(i);
    *desc = k;
    return k ? k->name : NULL;
}

/* Activations: "none" and "linear" (no activation: NULL), then the registered ones. */
static const char *act_entry(int i, const void **desc)
{
    static const char *const NONE[] = {"none", "linear"};
    const int n_none = (int)(sizeof NONE / sizeof NONE[0]);
    const act_kind_t *k = i >= n_none ? act_at(i - n_none) : NULL;
    *desc = k;
    return i < n_none ? NONE[i] : k ? k->name : NULL;
}

static const char *loss_entry(int i, const void **desc)
{
    const loss_kind_t *k = loss_at(i);
    *desc = k;
    return k ? k->name : NULL;
}

static const char *optim_entry(int i, const void **desc)
{
    const optim_kind_t *k = optim_at(i);
    *desc = k;
    return k ? k->name : NULL;
}

static const choice_t NORMS[] = {
    {"none", NORM_NONE}, {"global", NORM_GLOBAL}, {"per_pixel", NORM_PER_PIXEL}, {NULL, 0},
};
static const choice_t FORMATS[] = {
    {"idx", FORMAT_IDX}, {"criteo", FORMAT_CRITEO}, {NULL, 0},
};
static const choice_t BAD_LINES[] = {
    {"stop", BAD_LINES_STOP}, {"skip", BAD_LINES_SKIP}, {NULL, 0},
};
static const choice_t CONSISTENCIES[] = {
    {"bsp", CONS_BSP}, {"asp", CONS_ASP}, {"ssp", CONS_SSP}, {NULL, 0},
};
static const choice_t AUTHS[] = {
    {"curve", AUTH_CURVE}, {"none", AUTH_NONE}, {NULL, 0},
};
static const choice_t COMPRESSIONS[] = {
    {"none", COMP_NONE}, {"fp16", COMP_FP16}, {"bf16", COMP_BF16}, {"topk", COMP_TOPK}, {NULL, 0},
};
static const choice_t PULL_COMPRESSIONS[] = {
    {"none", COMP_NONE}, {"fp16", COMP_FP16}, {"bf16", COMP_BF16}, {NULL, 0},
};
static const choice_t LOSS_ACTIONS[] = {
    {"stop", LOSS_STOP}, {"continue", LOSS_CONTINUE}, {NULL, 0},
};
static const choice_t SCHEDS[] = {
    {"constant", SCHED_CONSTANT}, {"step", SCHED_STEP}, {"cosine", SCHED_COSINE}, {NULL, 0},
};

/* The destination of a key (.off, .size); the entries go on with .def and
 * .range in order, then name the rarer fields. */
#define JOB(m) .off = offsetof(job_config_t, m), .size = sizeof(((job_config_t *)0)->m)
#define NOWHERE .off = 0, .size = 0
#define LAYER_KEYS "model.layers.*." /* a layer key's schema path: this and its name */

/* Every key a job file may hold. A new key is one line here; a new group
 * (cluster.*, checkpoint.*) needs no line of its own. */
static const schema_key_t SCHEMA[] = {
    {"name", K_STRING, JOB(name), NULL /* the file name without .cfg */},

    {"data.dir", K_STRING, NOWHERE, "/usr/share/datasets/fashion-mnist"},
    {"data.format", K_ENUM, JOB(data.format), "idx", .choices = FORMATS},
    {"data.train", K_DATASRC, JOB(data.train), "" /* required for criteo */},
    {"data.test", K_DATASRC, JOB(data.test), ""},
    {"data.bad_lines", K_ENUM, JOB(data.bad_lines), "stop", .choices = BAD_LINES},
    {"data.shuffle_buffer", K_INT, JOB(data.shuffle_buffer), "0", "[0,16777216]"},
    {"data.parts", K_INT, JOB(data.parts), "0", "[0,1024]"},
    {"data.train_images", K_DATAFILE, JOB(data.train_images), "train-images-idx3-ubyte.gz"},
    {"data.train_labels", K_DATAFILE, JOB(data.train_labels), "train-labels-idx1-ubyte.gz"},
    {"data.test_images", K_DATAFILE, JOB(data.test_images), "t10k-images-idx3-ubyte.gz"},
    {"data.test_labels", K_DATAFILE, JOB(data.test_labels), "t10k-labels-idx1-ubyte.gz"},
    {"data.validation", K_INT, JOB(data.validation), "5000", ">=0"},
    {"data.limit", K_INT, JOB(data.limit), "0", ">=0"},
    {"data.test_limit", K_INT, JOB(data.test_limit), "0", ">=0"},
    {"data.normalize", K_ENUM, JOB(data.normalize), "none", .choices = NORMS},
    {"data.classes", K_STR_ARRAY, JOB(data.classes),
     "T-shirt/top|Trouser|Pullover|Dress|Coat|Sandal|Shirt|Sneaker|Bag|Ankle boot",
     .nmin = 1, .nmax = CFG_MAX_CLASSES, .count = offsetof(job_config_t, data.n_classes_names)},

    {"model.input", K_INT_ARRAY, JOB(model.input), NULL, ">=1", .required = 1, .nmin = 1,
     .nmax = 3, .count = offsetof(job_config_t, model.input_rank)},
    {"model.loss", K_KIND, JOB(model.loss), "cross_entropy", .entries = loss_entry},
    /* embedding tables of categorical fields, held outside the model: each
     * sample's field vectors follow its model.input values */
    {"model.sparse.fields", K_INT, JOB(model.sparse.fields), "0", "[0,64]"},
    {"model.sparse.dim", K_INT, JOB(model.sparse.dim), "16", "[1,4096]"},
    {"model.sparse.rows", K_INT_ARRAY, JOB(model.sparse.rows), "1", ">=1", .nmin = 1,
     .nmax = CFG_MAX_FIELDS, .count = offsetof(job_config_t, model.sparse.n_rows)},
    /* each layer's keys: its kind's table (layer_kind_t.keys) */
    {"model.layers", K_LAYERS, NOWHERE, NULL, .required = 1, .nmin = 1, .nmax = CFG_MAX_LAYERS},

    {"optimizer.name", K_KIND, JOB(optimizer.kind), "adam", .entries = optim_entry},
    {"optimizer.lr", K_FLOAT, JOB(optimizer.lr), NULL /* by optimizer */, ">0"},
    {"optimizer.beta1", K_FLOAT, JOB(optimizer.beta1), "0.9", "[0,1)"},
    {"optimizer.beta2", K_FLOAT, JOB(optimizer.beta2), "0.999", "[0,1)"},
    {"optimizer.eps", K_FLOAT, JOB(optimizer.eps), "1e-7", ">0"},
    {"optimizer.momentum", K_FLOAT, JOB(optimizer.momentum), NULL /* by optimizer */, "[0,1)"},
    {"optimizer.nesterov", K_BOOL, JOB(optimizer.nesterov), "false"},
    {"optimizer.initial_accumulator", K_FLOAT, JOB(optimizer.initial_accumulator), "0.1", ">=0"},
    {"optimizer.schedule", K_ENUM, JOB(optimizer.schedule), "constant", .choices = SCHEDS},
    {"optimizer.step_size", K_INT, JOB(optimizer.step_size), "0", ">=0" /* >=1 for step */},
    {"optimizer.gamma", K_FLOAT, JOB(optimizer.gamma), "0.1", ">0"},
    {"optimizer.min_lr", K_FLOAT, JOB(optimizer.min_lr), "0", ">=0"},
    {"optimizer.decay_steps", K_INT, JOB(optimizer.decay_steps), "0", ">=0"},

    {"train.epochs", K_INT, JOB(train.epochs), "1", ">=1"},
    {"train.batch", K_INT, JOB(train.batch), "32", ">=1"},
    {"train.seed", K_INT, JOB(train.seed), "0", ">=0"},
    {"train.max_steps", K_INT, JOB(train.max_steps), "0", ">=0"},
    {"train.threads", K_COUNT, JOB(train.threads), "auto", ">=1"},
    {"train.log_every", K_INT, JOB(train.log_every), "100", ">=1"},
    {"train.eval_batch", K_INT, JOB(train.eval_batch), "1000", ">=1"},

    {"cluster.servers", K_INT, JOB(cluster.servers), "1", ">=1"},
    {"cluster.io_threads", K_COUNT, JOB(cluster.io_threads), "auto", "[1,64]"},
    {"cluster.consistency", K_ENUM, JOB(cluster.consistency), "bsp", .choices = CONSISTENCIES},
    {"cluster.staleness", K_INT, JOB(cluster.staleness), "2", ">=0"},
    {"cluster.bind", K_STRING, JOB(cluster.bind), "127.0.0.1"},
    {"cluster.advertise", K_STRING, JOB(cluster.advertise), ""},
    {"cluster.timeout_ms", K_INT, JOB(cluster.timeout_ms), "60000", ">=100"},
    {"cluster.auth", K_ENUM, JOB(cluster.auth), "curve", .choices = AUTHS},
    {"cluster.on_trainer_loss", K_ENUM, JOB(cluster.on_trainer_loss), "stop",
     .choices = LOSS_ACTIONS},
    {"cluster.compression", K_ENUM, JOB(cluster.compression), "none", .choices = COMPRESSIONS},
    {"cluster.topk_ratio", K_FLOAT, JOB(cluster.topk_ratio), "0.01", "(0,1]"},
    {"cluster.pull_compression", K_ENUM, JOB(cluster.pull_compression), "none",
     .choices = PULL_COMPRESSIONS},
    /* the start's network warning (launch/sizing.h). core_gflops bounds the
     * compute from below before a step is timed, so it must not be less than
     * a core does: the bench MLP's GEMMs ran at 98 GFLOP/s on one core of the
     * project's 2-core machine when it was quiet (bench/calibrate.py, 6 flops
     * per parameter per sample; 48 under other jobs' load) */
    {"cluster.link_gbps", K_FLOAT, JOB(cluster.link_gbps), "10", ">0"},
    {"cluster.core_gflops", K_FLOAT, JOB(cluster.core_gflops), "100", ">0"},

    {"server.threads", K_COUNT, JOB(server.threads), "auto", "[1,1024]"},

    {"checkpoint.every_steps", K_INT, JOB(checkpoint.every_steps), "0", ">=0"},
    {"checkpoint.every_seconds", K_INT, JOB(checkpoint.every_seconds), "600", ">=0"},
    {"checkpoint.keep", K_INT, JOB(checkpoint.keep), "3", ">=1"},
    {"checkpoint.full_every", K_INT, JOB(checkpoint.full_every), "1", "[1,64]"},
};

#define N_SCHEMA (sizeof SCHEMA / sizeof SCHEMA[0])
#define KEY_LEN 256 /* longest key path we handle */
#define SET_MAX_ITEMS 64

/* Returns the schema key whose path is spath, or NULL if there is none. */
static const schema_key_t *schema_find(const char *spath)
{
    for (size_t i = 0; i < N_SCHEMA; i++)
        if (strcmp(SCHEMA[i].path, spath) == 0)
            return &SCHEMA[i];
    return NULL;
}

/* Returns 1 if spath is a group of the schema (a prefix "spath." of some
 * key's path), else 0. */
static int schema_is_group(const char *spath)
{
    size_t n = strlen(spath);
    for (size_t i = 0; i < N_SCHEMA; i++)
        if (strncmp(SCHEMA[i].path, spath, n) == 0 && SCHEMA[i].path[n] == '.')
            return 1;
    return 0;
}

/* Returns the path of a key whose last part is name and that is not `path`
 * (a hint for a misplaced key), or NULL. */
static const char *schema_suggest(const char *name, const char *path)
{
    for (size_t i = 0; i < N_SCHEMA; i++) {
        const char *dot = strrchr(SCHEMA[i].path, '.');
        const char *last = dot ? dot + 1 : SCHEMA[i].path;
        if (strcmp(last, name) == 0 && strcmp(SCHEMA[i].path, path) != 0)
            return SCHEMA[i].path;
    }
    return NULL;
}

/* Returns the value of the choice spelled name, or -1 if there is none. */
static int choice_value(const choice_t *c, const char *name)
{
    for (; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c->value;
    return -1;
}

/* Returns the first spelling of value among c, or "?" if there is none. */
static const char *choice_name(const choice_t *c, int value)
{
    for (; c->name; c++)
        if (c->value == value)
            return c->name;
    return "?";
}

/* Writes the spellings of c as "a, b, c" into buf (n bytes, truncated). */
static void choice_list(const choice_t *c, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const choice_t *p = c; p->name && used < n; p++) {
        int w = snprintf(buf + used, n - used, "%s%s", p == c ? "" : ", ", p->name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* Looks name up among the entries of a registry. Returns 1 and sets *desc
 * to its descriptor, or 0 if there is none. */
static int kind_lookup(entry_fn entries, const char *name, const void **desc)
{
    const char *e;
    for (int i = 0; (e = entries(i, desc)); i++)
        if (strcmp(e, name) == 0)
            return 1;
    return 0;
}

/* Writes the names of a registry as "a, b, c" into buf (n bytes, truncated). */
static void kind_list(entry_fn entries, char *buf, size_t n)
{
    size_t used = 0;
    const char *e;
    const void *desc;
    buf[0] = '\0';
    for (int i = 0; used < n && (e = entries(i, &desc)); i++) {
        int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", e);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* Writes the keys (other than type) that layer kind t takes into buf, as
 * "a, b", or "no other keys". */
static void layer_keys_list(const layer_kind_t *t, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; t->keys && t->keys[i].name && used < n; i++) {
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", t->keys[i].name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (!buf[0])
        snprintf(buf, n, "no other keys");
}

/* Returns the index of key `name` in kind t's table, or -1. */
static int layer_key_index(const layer_kind_t *t, const char *name)
{
    for (int i = 0; t && t->keys && t->keys[i].name; i++)
        if (strcmp(t->keys[i].name, name) == 0)
            return i;
    return -1;
}

/* Returns the first registered layer kind that takes key `name`, or NULL. */
static const layer_kind_t *layer_kind_taking(const char *name)
{
    const layer_kind_t *t;
    for (int i = 0; (t = layer_kind_at(i)); i++)
        if (layer_key_index(t, name) >= 0)
            return t;
    return NULL;
}

/* The schema form of layer key lk (path p): its check, its type for --set,
 * and where it goes in a layer_val_t. */
static schema_key_t layer_schema_key(const char *p, const layer_key_t *lk)
{
    schema_key_t k = {.path = p, .def = lk->def, .range = lk->range};
    switch (lk->type) {
    case LKEY_INT:
        k.kind = K_INT;
        k.size = sizeof(int);
        break;
    case LKEY_FLOAT:
        k.kind = K_FLOAT;
        k.size = sizeof(double);
        break;
    case LKEY_BOOL:
        k.kind = K_BOOL;
        k.size = sizeof(int);
        break;
    case LKEY_ACT:
        k.kind = K_KIND;
        k.size = sizeof(const void *);
        k.entries = act_entry;
        break;
    }
    return k;
}

/* A layer's type key. */
static const schema_key_t LAYER_TYPE_KEY = {LAYER_KEYS "type", K_KIND, NOWHERE,
                                            .entries = layer_entry, .required = 1};

/* ------------------------------------------------------------------ errors */

typedef struct {
    const char *file; /* the job file: for settings libconfig knows no file of */
    err_t *err;
} ctx_t;

/* Writes where setting s comes from into buf: "--set path=value" if an
 * override wrote it (or a setting around it), else "FILE:LINE"; s NULL gives
 * "FILE:0". Returns buf. */
static const char *where(const ctx_t *x, const config_setting_t *s, char *buf, size_t n)
{
    for (const config_setting_t *p = s; p; p = config_setting_parent(p)) {
        const char *set = config_setting_get_hook(p);
        if (set) {
            snprintf(buf, n, "--set %s", set);
            return buf;
        }
    }
    const char *file = s ? config_setting_source_file(s) : NULL;
    snprintf(buf, n, "%s:%u", file ? file : x->file, s ? config_setting_source_line(s) : 0u);
    return buf;
}

/* Fills x->err with "WHERE: KEY: message" for setting s (see where()).
 * Returns -1. */
__attribute__((format(printf, 4, 5))) static int fail(const ctx_t *x, const config_setting_t *s,
                                                      const char *key, const char *fmt, ...)
{
    char loc[ERR_LEN], msg[ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(x->err, "%s: %s: %s", where(x, s, loc, sizeof loc), key, msg);
}

/* Returns "an integer", "a string", ... for the type of s. */
static const char *type_name(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "nothing";
    }
}

/* ------------------------------------------------------------------ checks */

/* Returns the value of an int or int64 setting. */
static long long int_of(const config_setting_t *s)
{
    return config_setting_type(s) == CONFIG_TYPE_INT64 ? config_setting_get_int64(s)
                                                       : config_setting_get_int(s);
}

/* Returns the value of a numeric setting (int, int64 or float) as a double. */
static double num_of(const config_setting_t *s)
{
    return config_setting_type(s) == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                                       : (double)int_of(s);
}

/* Returns 1 if v lies in range r (NULL, ">=a", ">a", "[a,b)", "[a,b]",
 * "(a,b)", "(a,b]"), else 0. */
static int range_ok(const char *r, double v)
{
    if (!r)
        return 1;
    if (r[0] == '>')
        return r[1] == '=' ? v >= strtod(r + 2, NULL) : v > strtod(r + 1, NULL);
    char *end;
    double lo = strtod(r + 1, &end);
    double hi = strtod(end + 1, &end);
    int lo_ok = r[0] == '[' ? v >= lo : v > lo;
    int hi_ok = *end == ']' ? v <= hi : v < hi;
    return lo_ok && hi_ok;
}

/* Fills x->err with "WHERE: KEY: VALUE is out of range, must be R". Returns -1. */
static int range_fail(const ctx_t *x, const config_setting_t *s, const char *key, const char *r,
                      const char *value)
{
    return fail(x, s, key, "%s is out of range, must be %s%s", value,
                r[0] == '[' || r[0] == '(' ? "in " : "", r);
}

/* Checks that s is an integer that fits a field of `size` bytes and lies in
 * range. Returns 0, or -1 with x->err. */
static int int_check(const ctx_t *x, const config_setting_t *s, const char *key, size_t size,
                     const char *range)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return fail(x, s, key, "wants an integer, not %s", type_name(s));
    long long v = int_of(s);
    char text[32];
    snprintf(text, sizeof text, "%lld", v);
    if (size < sizeof(long long) && (v < INT_MIN || v > INT_MAX))
        return fail(x, s, key, "%s does not fit in a 32-bit integer", text);
    if (!range_ok(range, (double)v))
        return range_fail(x, s, key, range, text);
    return 0;
}

/* Checks array setting s against key k: item type, count and range.
 * Returns 0, or -1 with x->err. */
static int array_check(const ctx_t *x, const config_setting_t *s, const char *key,
                       const schema_key_t *k)
{
    int ints = k->kind == K_INT_ARRAY;
    const char *what = ints ? "integers" : "strings";
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return fail(x, s, key, "wants an array of %s like %s, not %s", what,
                    ints ? "[1, 28, 28]" : "[\"a\", \"b\"]", type_name(s));
    int n = config_setting_length(s);
    if (n < k->nmin || n > k->nmax) {
        if (k->nmin == k->nmax)
            return fail(x, s, key, "wants %d %s, not %d", k->nmin, what, n);
        return fail(x, s, key, "wants %d to %d %s, not %d", k->nmin, k->nmax, what, n);
    }
    size_t item_size = k->size / (size_t)k->nmax;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        char ikey[KEY_LEN + 16];
        snprintf(ikey, sizeof ikey, "%s.[%d]", key, i);
        if (ints) {
            if (int_check(x, e, ikey, item_size, k->range) != 0)
                return -1;
        } else if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            return fail(x, e, ikey, "wants a string, not %s", type_name(e));
        } else if (strlen(config_setting_get_string(e)) >= item_size) {
            return fail(x, e, ikey, "is longer than %zu characters", item_size - 1);
        }
    }
    return 0;
}

static int layers_check(const ctx_t *x, const config_setting_t *list, const schema_key_t *k);

/* Checks setting s (whose path is key) against schema key k: its type,
 * range, choices. Returns 0, or -1 with x->err. */
static int value_check(const ctx_t *x, const config_setting_t *s, const char *key,
                       const schema_key_t *k)
{
    char text[ERR_LEN / 2];
    switch (k->kind) {
    case K_INT:
        return int_check(x, s, key, k->size, k->range);
    case K_COUNT:
        if (config_setting_type(s) == CONFIG_TYPE_STRING) {
            if (strcmp(config_setting_get_string(s), "auto") == 0)
                return 0;
            return fail(x, s, key, "wants a number or \"auto\", not \"%s\"",
                        config_setting_get_string(s));
        }
        return int_check(x, s, key, k->size, k->range);
    case K_FLOAT:
        if (!config_setting_is_number(s))
            return fail(x, s, key, "wants a number, not %s", type_name(s));
        if (!range_ok(k->range, num_of(s))) {
            snprintf(text, sizeof text, "%g", num_of(s));
            return range_fail(x, s, key, k->range, text);
        }
        return 0;
    case K_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return fail(x, s, key, "wants true or false, not %s", type_name(s));
        return 0;
    case K_STRING:
    case K_DATAFILE:
    case K_DATASRC:
    case K_ENUM:
    case K_KIND: {
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
            return fail(x, s, key, "wants a string, not %s", type_name(s));
        const char *v = config_setting_get_string(s);
        const void *desc;
        if (k->kind == K_ENUM && choice_value(k->choices, v) < 0) {
            choice_list(k->choices, text, sizeof text);
            return fail(x, s, key, "\"%s\" is not one of %s", v, text);
        }
        if (k->kind == K_KIND && !kind_lookup(k->entries, v, &desc)) {
            kind_list(k->entries, text, sizeof text);
            return fail(x, s, key, "\"%s\" is not one of %s", v, text);
        }
        size_t max = k->size ? k->size : CFG_PATH_LEN;
        if ((k->kind == K_STRING || k->kind == K_DATAFILE || k->kind == K_DATASRC) &&
            strlen(v) >= max)
            return fail(x, s, key, "is longer than %zu characters", max - 1);
        return 0;
    }
    case K_INT_ARRAY:
    case K_STR_ARRAY:
        return array_check(x, s, key, k);
    case K_LAYERS:
        return layers_check(x, s, k);
    }
    return 0;
}

/* Checks layer group g (whose path is lkey): a registered type, only the
 * keys of that kind, each of the right type and range, and every key
 * without a default. Returns 0, or -1 with x->err. */
static int layer_check(const ctx_t *x, const config_setting_t *g, const char *lkey)
{
    char mkey[2 * KEY_LEN], keys[ERR_LEN / 2];
    if (!config_setting_is_group(g))
        return fail(x, g, lkey, "wants a group like { type = \"dense\"; units = 10; }, not %s",
                    type_name(g));
    const config_setting_t *ts = config_setting_get_member(g, "type");
    if (!ts)
        return fail(x, g, lkey, "has no type");
    snprintf(mkey, sizeof mkey, "%s.type", lkey);
    if (value_check(x, ts, mkey, &LAYER_TYPE_KEY) != 0)
        return -1;
    const layer_kind_t *t = layer_kind_find(config_setting_get_string(ts));
    for (int j = 0; j < config_setting_length(g); j++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)j);
        const char *name = config_setting_name(m);
        if (strcmp(name, "type") == 0)
            continue;
        snprintf(mkey, sizeof mkey, "%s.%s", lkey, name);
        int ki = layer_key_index(t, name);
        if (ki < 0) {
            layer_keys_list(t, keys, sizeof keys);
            if (!layer_kind_taking(name))
                return fail(x, m, mkey, "unknown key (%s layers take %s)", t->name, keys);
            return fail(x, m, mkey, "%s layers take no %s (they take %s)", t->name, name, keys);
        }
        const schema_key_t mk = layer_schema_key(mkey, &t->keys[ki]);
        if (value_check(x, m, mkey, &mk) != 0)
            return -1;
    }
    for (int j = 0; t->keys && t->keys[j].name; j++)
        if (!t->keys[j].def && !config_setting_get_member(g, t->keys[j].name))
            return fail(x, g, lkey, "%s layers need %s", t->name, t->keys[j].name);
    return 0;
}

/* Checks model.layers: a list of 1..CFG_MAX_LAYERS groups, each a valid
 * layer (layer_check). Returns 0, or -1 with x->err. */
static int layers_check(const ctx_t *x, const config_setting_t *list, const schema_key_t *k)
{
    const char *key = k->path;
    if (!config_setting_is_list(list))
        return fail(x, list, key, "wants a list of layers like ( { type = \"dense\"; units = 10; } ), "
                                  "not %s", type_name(list));
    int n = config_setting_length(list);
    if (n < k->nmin)
        return fail(x, list, key, "holds no layer");
    if (n > k->nmax)
        return fail(x, list, key, "holds %d layers, at most %d are allowed", n, k->nmax);
    for (int i = 0; i < n; i++) {
        char lkey[KEY_LEN];
        snprintf(lkey, sizeof lkey, "%s.[%d]", key, i);
        if (layer_check(x, config_setting_get_elem(list, (unsigned)i), lkey) != 0)
            return -1;
    }
    return 0;
}

/* Checks the members of group g, whose path is `path` ("" for the root):
 * every one must be a schema key or group, of the right type. Returns 0, or
 * -1 with x->err. */
static int group_check(const ctx_t *x, const config_setting_t *g, const char *path)
{
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(m);
        char key[KEY_LEN];
        int w = path[0] ? snprintf(key, sizeof key, "%s.%s", path, name)
                        : snprintf(key, sizeof key, "%s", name);
        int fits = w >= 0 && w < (int)sizeof key;
        const schema_key_t *k = fits ? schema_find(key) : NULL;
        if (k) {
            if (value_check(x, m, key, k) != 0)
                return -1;
        } else if (fits && schema_is_group(key)) {
            if (!config_setting_is_group(m))
                return fail(x, m, key, "wants a group { ... }, not %s", type_name(m));
            if (group_check(x, m, key) != 0)
                return -1;
        } else {
            const char *hint = schema_suggest(name, key);
            if (hint)
                return fail(x, m, key, "unknown key (did you mean %s?)", hint);
            return fail(x, m, key, "unknown key");
        }
    }
    return 0;
}

/* Checks the whole tree: known keys of the right types and ranges, and the
 * required keys present. Returns 0, or -1 with x->err. */
static int tree_check(const ctx_t *x, const config_t *c)
{
    if (group_check(x, config_root_setting(c), "") != 0)
        return -1;
    for (size_t i = 0; i < N_SCHEMA; i++) {
        const schema_key_t *k = &SCHEMA[i];
        if (!k->required || config_lookup(c, k->path))
            continue;
        /* Blame the innermost group on the way that the file has. */
        char parent[KEY_LEN];
        const config_setting_t *at = NULL;
        char *dot;
        snprintf(parent, sizeof parent, "%s", k->path);
        while (!at && (dot = strrchr(parent, '.'))) {
            *dot = '\0';
            at = config_lookup(c, parent);
        }
        return fail(x, at ? at : config_root_setting(c), k->path, "is required but missing");
    }
    return 0;
}

/* ------------------------------------------------------------------ fill */

/* Stores integer v into the size-byte integer at dst (int or long long). */
static void put_int(void *dst, size_t size, long long v)
{
    if (size == sizeof(int)) {
        int i = (int)v;
        memcpy(dst, &i, sizeof i);
    } else if (size == sizeof(long long)) {
        memcpy(dst, &v, sizeof v);
    }
}

/* Stores the (already checked) value of setting s for key k into the struct
 * at base. */
static void value_store(void *base, const schema_key_t *k, const config_setting_t *s)
{
    char *dst = (char *)base + k->off;
    if (!k->size)
        return;
    switch (k->kind) {
    case K_INT:
        put_int(dst, k->size, int_of(s));
        break;
    case K_COUNT:
        put_int(dst, k->size, config_setting_type(s) == CONFIG_TYPE_STRING ? CFG_AUTO : int_of(s));
        break;
    case K_FLOAT: {
        double v = num_of(s);
        memcpy(dst, &v, sizeof v);
        break;
    }
    case K_BOOL:
        put_int(dst, k->size, config_setting_get_bool(s));
        break;
    case K_STRING:
    case K_DATAFILE:
    case K_DATASRC:
        snprintf(dst, k->size, "%s", config_setting_get_string(s));
        break;
    case K_ENUM:
        put_int(dst, k->size, choice_value(k->choices, config_setting_get_string(s)));
        break;
    case K_KIND: {
        const void *desc = NULL;
        kind_lookup(k->entries, config_setting_get_string(s), &desc);
        memcpy(dst, &desc, sizeof desc);
        break;
    }
    case K_INT_ARRAY:
    case K_STR_ARRAY: {
        int n = config_setting_length(s);
        size_t item_size = k->size / (size_t)k->nmax;
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            char *item = dst + (size_t)i * item_size;
            if (k->kind == K_INT_ARRAY)
                put_int(item, item_size, int_of(e));
            else
                snprintf(item, item_size, "%s", config_setting_get_string(e));
        }
        put_int((char *)base + k->count, sizeof(int), n);
        break;
    }
    case K_LAYERS:
        break;
    }
}

/* Stores key k's default (the text k->def) into the struct at base; a key
 * without one is left as it is. */
static void default_store(void *base, const schema_key_t *k)
{
    char *dst = (char *)base + k->off;
    if (!k->def || !k->size)
        return;
    switch (k->kind) {
    case K_INT:
        put_int(dst, k->size, strtoll(k->def, NULL, 10));
        break;
    case K_COUNT:
        put_int(dst, k->size, strcmp(k->def, "auto") == 0 ? CFG_AUTO : strtoll(k->def, NULL, 10));
        break;
    case K_FLOAT: {
        double v = strtod(k->def, NULL);
        memcpy(dst, &v, sizeof v);
        break;
    }
    case K_BOOL:
        put_int(dst, k->size, strcmp(k->def, "true") == 0);
        break;
    case K_STRING:
    case K_DATAFILE:
    case K_DATASRC:
        snprintf(dst, k->size, "%s", k->def);
        break;
    case K_ENUM:
        put_int(dst, k->size, choice_value(k->choices, k->def));
        break;
    case K_KIND: {
        const void *desc = NULL;
        kind_lookup(k->entries, k->def, &desc);
        memcpy(dst, &desc, sizeof desc);
        break;
    }
    case K_INT_ARRAY:
    case K_STR_ARRAY: {
        size_t item_size = k->size / (size_t)k->nmax;
        const char *p = k->def;
        int n = 0;
        while (n < k->nmax) {
            size_t len = strcspn(p, "|");
            char *item = dst + (size_t)n * item_size;
            if (k->kind == K_INT_ARRAY)
                put_int(item, item_size, strtoll(p, NULL, 10));
            else
                snprintf(item, item_size, "%.*s", (int)len, p);
            n++;
            if (!p[len])
                break;
            p += len + 1;
        }
        put_int((char *)base + k->count, sizeof(int), n);
        break;
    }
    case K_LAYERS:
        break;
    }
}

/* Returns the string at path in the tree, or the key's default text. */
static const char *string_of(const config_t *c, const char *path)
{
    const char *v = NULL;
    if (config_lookup_string(c, path, &v) == CONFIG_TRUE)
        return v;
    const schema_key_t *k = schema_find(path);
    return k && k->def ? k->def : "";
}

/* Returns the setting to blame for data file key: an override of the key,
 * else an override of data.dir if the name is relative, else the key, else
 * data.dir, else NULL (the file as a whole). */
static const config_setting_t *data_blame(const config_t *c, const char *key)
{
    const config_setting_t *s = config_lookup(c, key);
    const config_setting_t *dir = config_lookup(c, "data.dir");
    if (s && config_setting_get_hook(s))
        return s;
    if (dir && config_setting_get_hook(dir) && string_of(c, key)[0] != '/')
        return dir;
    return s ? s : dir;
}

/* Fills the layers of *cfg from the checked list of the tree: each one's
 * kind, line, and its kind's keys (given or default). */
static void layers_fill(const config_t *c, job_config_t *cfg)
{
    const config_setting_t *list = config_lookup(c, "model.layers");
    cfg->model.n_layers = config_setting_length(list);
    for (int i = 0; i < cfg->model.n_layers; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        layer_cfg_t *l = &cfg->model.layers[i];
        const char *type = NULL;
        config_setting_lookup_string(g, "type", &type);
        l->kind = layer_kind_find(type);
        l->line = (int)config_setting_source_line(g);
        for (int j = 0; l->kind && l->kind->keys && l->kind->keys[j].name && j < CFG_LAYER_KEYS;
             j++) {
            const schema_key_t k = layer_schema_key(l->kind->keys[j].name, &l->kind->keys[j]);
            const config_setting_t *m = config_setting_get_member(g, k.path);
            if (m)
                value_store(&l->v[j], &k, m);
            else
                default_store(&l->v[j], &k);
        }
    }
}

/* The optimizer's defaults (lr, momentum), and sgd with momentum > 0 as
 * the optimizer that is sgd with momentum. */
static void optimizer_fill(const config_t *c, job_config_t *cfg)
{
    const optim_kind_t *kind = cfg->optimizer.kind;
    if (!config_lookup(c, "optimizer.lr"))
        cfg->optimizer.lr = kind->default_lr;
    if (!config_lookup(c, "optimizer.momentum"))
        cfg->optimizer.momentum = kind->default_momentum;
    const optim_kind_t *with_momentum = optim_momentum_form(kind);
    if (with_momentum && cfg->optimizer.momentum > 0)
        cfg->optimizer.kind = with_momentum;
}

/* Checks that the data keys fit data.format: criteo needs data.train, and
 * the click-log keys (train, test) mean nothing to idx. Returns 0, or -1
 * with x->err naming the key. */
static int data_format_check(const ctx_t *x, const config_t *c, const job_config_t *cfg)
{
    const config_setting_t *fmt = config_lookup(c, "data.format");
    if (cfg->data.format == FORMAT_CRITEO && !cfg->data.train[0]) {
        const config_setting_t *s = config_lookup(c, "data.train");
        return fail(x, s ? s : fmt, "data.train",
                    "is required when data.format is \"criteo\" (a file, folder or glob)");
    }
    if (cfg->data.format == FORMAT_IDX) {
        const char *keys[] = {"data.train", "data.test"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const config_setting_t *s = config_lookup(c, keys[i]);
            if (s && config_setting_get_string(s)[0])
                return fail(x, s, keys[i],
                            "is read only when data.format = \"criteo\" (IDX data is named by "
                            "train_images, train_labels, test_images, test_labels)");
        }
    }
    return 0;
}

/* Fills *cfg from the checked tree: schema defaults, then the values in the
 * tree, then the computed ones (name, lr, momentum, data paths). Returns 0,
 * or -1 with x->err (a path too long, step schedule without step_size). */
static int job_fill(const ctx_t *x, const config_t *c, job_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->source, sizeof cfg->source, "%s", x->file);
    for (size_t i = 0; i < N_SCHEMA; i++) {
        const schema_key_t *k = &SCHEMA[i];
        const config_setting_t *s = config_lookup(c, k->path);
        if (s)
            value_store(cfg, k, s);
        else
            default_store(cfg, k);
    }
    layers_fill(c, cfg);
    if (!cfg->model.loss || !cfg->optimizer.kind) /* a default that names nothing registered */
        return fail(x, NULL, cfg->model.loss ? "optimizer.name" : "model.loss",
                    "internal error: the default is not registered");

    if (!config_lookup(c, "name")) {
        const char *base = strrchr(x->file, '/');
        base = base ? base + 1 : x->file;
        size_t len = strlen(base);
        if (len > 4 && strcmp(base + len - 4, ".cfg") == 0)
            len -= 4;
        if (len >= sizeof cfg->name)
            return fail(x, NULL, "name", "the file name is longer than %zu characters; set name",
                        sizeof cfg->name - 1);
        memcpy(cfg->name, base, len);
        cfg->name[len] = '\0';
    }

    optimizer_fill(c, cfg);
    if (cfg->optimizer.schedule == SCHED_STEP && cfg->optimizer.step_size < 1) {
        const config_setting_t *s = config_lookup(c, "optimizer.step_size");
        return fail(x, s ? s : config_lookup(c, "optimizer.schedule"), "optimizer.step_size",
                    "must be >=1 when schedule is \"step\"");
    }

    if (data_format_check(x, c, cfg) != 0)
        return -1;
    const char *dir = string_of(c, "data.dir");
    size_t dlen = strlen(dir);
    const char *sep = dlen && dir[dlen - 1] == '/' ? "" : "/";
    for (size_t i = 0; i < N_SCHEMA; i++) {
        const schema_key_t *k = &SCHEMA[i];
        char *dst = (char *)cfg + k->off;
        int source = k->kind == K_DATASRC;
        if ((k->kind != K_DATAFILE && !source) || (source && !dst[0]) || dst[0] == '/' || !dir[0])
            continue;
        char name[CFG_PATH_LEN];
        memcpy(name, dst, sizeof name);
        int w = snprintf(dst, k->size, "%s%s%s", dir, sep, name);
        if (w < 0 || (size_t)w >= k->size)
            return fail(x, data_blame(c, k->path), k->path,
                        "%s%s%s is longer than %zu characters", dir, sep, name, k->size - 1);
    }
    return 0;
}

/* Checks that click-log source path (data.train, data.test) names data: a
 * glob that matches something, a folder that holds a visible entry, or a
 * file. Returns 0, or -1 with x->err "WHERE: KEY: ..." (the reader checks
 * each file when it opens it). */
static int source_check(const ctx_t *x, const config_t *c, const char *key, const char *path)
{
    struct stat st;
    if (strpbrk(path, "*?[") && stat(path, &st) != 0) {
        glob_t g;
        int rc = glob(path, 0, NULL, &g);
        if (rc == 0)
            globfree(&g);
        return rc == 0 ? 0 : fail(x, data_blame(c, key), key, "%s matches no file", path);
    }
    if (stat(path, &st) != 0)
        return fail(x, data_blame(c, key), key, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return 0;
    DIR *d = opendir(path);
    if (!d)
        return fail(x, data_blame(c, key), key, "cannot open folder %s: %s", path,
                    strerror(errno));
    const struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)))
        any = e->d_name[0] != '.';
    closedir(d);
    return any ? 0 : fail(x, data_blame(c, key), key, "folder %s holds no file", path);
}

/* Checks that each data file of cfg (those of its data.format) can be
 * opened for reading. Returns 0, or -1 with x->err "WHERE: data.KEY: cannot
 * open PATH: reason". */
static int files_check(const ctx_t *x, const config_t *c, const job_config_t *cfg)
{
    int criteo = cfg->data.format == FORMAT_CRITEO;
    for (size_t i = 0; i < N_SCHEMA; i++) {
        const schema_key_t *k = &SCHEMA[i];
        const char *path = (const char *)cfg + k->off;
        if (k->kind == K_DATASRC && criteo && path[0] && source_check(x, c, k->path, path) != 0)
            return -1;
        if (k->kind != K_DATAFILE || criteo)
            continue;
        int e = 0;
        FILE *f = fopen(path, "rb");
        if (!f) {
            e = errno;
        } else {
            struct stat st;
            if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode))
                e = EISDIR;
            fclose(f);
        }
        if (e)
            return fail(x, data_blame(c, k->path), k->path, "cannot open %s: %s", path,
                        strerror(e));
    }
    return 0;
}

/* ------------------------------------------------------------------ --set */

/* Removes leading and trailing white space of s in place. Returns the start. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Strips one pair of matching quotes (" or ') around s, in place. Returns the
 * start of the text. */
static char *unquote(char *s)
{
    size_t n = strlen(s);
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = '\0';
        return s + 1;
    }
    return s;
}

/* Cuts the array text s ("[a, b]" or "a, b"; changed in place) at the commas
 * outside quotes into at most max items, trimmed and unquoted. Returns the
 * number of items, or -1 if there are more or a bracket or quote is open. */
static int split_items(char *s, char **items, int max)
{
    s = trim(s);
    size_t n = strlen(s);
    if (s[0] == '[') {
        if (n < 2 || s[n - 1] != ']')
            return -1;
        s[n - 1] = '\0';
        s++;
    }
    s = trim(s);
    if (!*s)
        return 0;
    int count = 0;
    char quote = 0;
    char *start = s;
    for (char *p = s;; p++) {
        if (quote && *p) {
            if (*p == quote)
                quote = 0;
            continue;
        }
        if (quote)
            return -1;
        if (*p == '"' || *p == '\'') {
            quote = *p;
            continue;
        }
        if (*p == ',' || !*p) {
            int last = !*p;
            *p = '\0';
            if (count == max)
                return -1;
            items[count++] = unquote(trim(start));
            if (last)
                break;
            start = p + 1;
        }
    }
    return count;
}

/* Parses a whole decimal integer. Returns 1 and sets *v, or 0. */
static int parse_int(const char *s, long long *v)
{
    char *end;
    errno = 0;
    long long r = strtoll(s, &end, 10);
    if (end == s || *end || errno)
        return 0;
    *v = r;
    return 1;
}

/* Parses a whole finite number. Returns 1 and sets *v, or 0. */
static int parse_float(const char *s, double *v)
{
    char *end;
    errno = 0;
    double r = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(r))
        return 0;
    *v = r;
    return 1;
}

/* Returns 1 if seg is an index ("[3]" or "3") and sets *i, else 0. */
static int seg_index(const char *seg, int *i)
{
    const char *p = seg;
    size_t n = strlen(seg);
    if (seg[0] == '[') {
        if (n < 3 || seg[n - 1] != ']')
            return 0;
        p++;
        n -= 2;
    }
    if (n == 0 || n > 6)
        return 0;
    for (size_t j = 0; j < n; j++)
        if (!isdigit((unsigned char)p[j]))
            return 0;
    *i = atoi(p);
    return 1;
}

/* Returns the libconfig type an override of key k with integer value iv gets. */
static int set_type(const schema_key_t *k, long long iv, const char *sv)
{
    switch (k->kind) {
    case K_COUNT:
        if (sv)
            return CONFIG_TYPE_STRING;
        __attribute__((fallthrough)); /* a number */
    case K_INT:
        return iv >= INT_MIN && iv <= INT_MAX ? CONFIG_TYPE_INT : CONFIG_TYPE_INT64;
    case K_FLOAT:
        return CONFIG_TYPE_FLOAT;
    case K_BOOL:
        return CONFIG_TYPE_BOOL;
    case K_INT_ARRAY:
    case K_STR_ARRAY:
        return CONFIG_TYPE_ARRAY;
    default:
        return CONFIG_TYPE_STRING;
    }
}

/* Returns the schema key of an override's path spath (segments segs): a
 * key of SCHEMA, or a layer's key, typed by the kind of the layer the tree
 * has at that index (else by the first kind that takes the key), built in
 * *tmp. NULL if there is no such key. */
static const schema_key_t *set_key_find(const config_t *c, const char *spath, char *const *segs,
                                        int nseg, schema_key_t *tmp)
{
    const size_t prefix = strlen(LAYER_KEYS);
    if (strncmp(spath, LAYER_KEYS, prefix) != 0 || nseg != 4)
        return schema_find(spath);
    const char *name = spath + prefix;
    if (strcmp(name, "type") == 0)
        return &LAYER_TYPE_KEY;
    int idx = -1;
    const char *type = NULL;
    const config_setting_t *list = config_lookup(c, "model.layers");
    const config_setting_t *g =
        list && seg_index(segs[2], &idx) ? config_setting_get_elem(list, (unsigned)idx) : NULL;
    const layer_kind_t *t = g && config_setting_lookup_string(g, "type", &type) == CONFIG_TRUE
                                ? layer_kind_find(type)
                                : NULL;
    if (layer_key_index(t, name) < 0)
        t = layer_kind_taking(name);
    if (!t)
        return NULL;
    *tmp = layer_schema_key(spath, &t->keys[layer_key_index(t, name)]);
    return tmp;
}

/* The value of an override, parsed as its key's type wants. */
typedef struct {
    long long iv;                /* K_INT */
    double fv;                   /* K_FLOAT */
    int bv;                      /* K_BOOL */
    const char *sv;              /* strings (in the caller's copy of the text) */
    char *items[SET_MAX_ITEMS];  /* arrays */
    int n_items;
} set_value_t;

/* Parses val (changed in place) as key k (path p) of override `set` wants.
 * Returns 0, or -1 with x->err "--set SET: P wants ...". */
static int set_parse(const ctx_t *x, const char *set, const char *p, const schema_key_t *k,
                     char *val, set_value_t *v)
{
    switch (k->kind) {
    case K_INT:
        if (!parse_int(val, &v->iv))
            return err_set(x->err, "--set %s: %s wants an integer", set, p);
        return 0;
    case K_COUNT:
        if (strcmp(unquote(val), "auto") == 0) {
            v->sv = "auto";
            return 0;
        }
        if (!parse_int(val, &v->iv))
            return err_set(x->err, "--set %s: %s wants a number or \"auto\"", set, p);
        return 0;
    case K_FLOAT:
        if (!parse_float(val, &v->fv))
            return err_set(x->err, "--set %s: %s wants a number", set, p);
        return 0;
    case K_BOOL:
        if (strcasecmp(val, "true") == 0 || strcasecmp(val, "false") == 0) {
            v->bv = strcasecmp(val, "true") == 0;
            return 0;
        }
        return err_set(x->err, "--set %s: %s wants true or false", set, p);
    case K_INT_ARRAY:
    case K_STR_ARRAY:
        v->n_items = split_items(val, v->items, SET_MAX_ITEMS);
        for (int i = 0; i < v->n_items && k->kind == K_INT_ARRAY; i++)
            if (!parse_int(v->items[i], &v->iv) || v->iv < INT_MIN || v->iv > INT_MAX)
                v->n_items = -1;
        if (v->n_items < 0)
            return err_set(x->err, "--set %s: %s wants an array of %s", set, p,
                           k->kind == K_INT_ARRAY ? "integers like [1,28,28]"
                                                  : "strings like [\"a\",\"b\"]");
        return 0;
    default:
        v->sv = unquote(val);
        return 0;
    }
}

/* Walks the tree of c to the parent of the last of the nseg segments of
 * path p, adding missing groups (not list items). Returns the parent, or
 * NULL with x->err. */
static config_setting_t *set_parent(const ctx_t *x, config_t *c, const char *set, const char *p,
                                    char *const *segs, int nseg)
{
    config_setting_t *node = config_root_setting(c);
    for (int j = 0; j < nseg - 1; j++) {
        int idx, next_idx;
        config_setting_t *next;
        if (seg_index(segs[j], &idx)) {
            next = config_setting_is_list(node) ? config_setting_get_elem(node, (unsigned)idx) : NULL;
            if (!next) {
                err_set(x->err, "--set %s: %s: there is no item [%d] (the file has %d)", set, p,
                        idx, config_setting_is_list(node) ? config_setting_length(node) : 0);
                return NULL;
            }
        } else {
            next = config_setting_get_member(node, segs[j]);
            if (!next && seg_index(segs[j + 1], &next_idx)) {
                err_set(x->err, "--set %s: %s: the file has no %s", set, p, segs[j]);
                return NULL;
            }
            if (!next && !(next = config_setting_add(node, segs[j], CONFIG_TYPE_GROUP))) {
                err_set(x->err, "--set %s: cannot add group %s", set, segs[j]);
                return NULL;
            }
        }
        node = next;
    }
    return node;
}

/* Writes value v of key k as member `name` of node (replacing a member of
 * another type) and keeps `set` as its hook. Returns 0, or -1 with x->err. */
static int set_store(const ctx_t *x, config_setting_t *node, const char *set, const char *p,
                     const char *name, const schema_key_t *k, set_value_t *v)
{
    int type = set_type(k, v->iv, v->sv);
    config_setting_t *s = config_setting_get_member(node, name);
    if (s && config_setting_type(s) != type) {
        if (config_setting_remove(node, name) != CONFIG_TRUE)
            return err_set(x->err, "--set %s: cannot replace %s", set, p);
        s = NULL;
    }
    if (!s && !(s = config_setting_add(node, name, type)))
        return err_set(x->err, "--set %s: cannot add %s", set, p);
    int ok = CONFIG_TRUE;
    switch (k->kind) {
    case K_COUNT:
        if (v->sv) {
            ok = config_setting_set_string(s, v->sv);
            break;
        }
        __attribute__((fallthrough)); /* a number */
    case K_INT:
        ok = type == CONFIG_TYPE_INT ? config_setting_set_int(s, (int)v->iv)
                                     : config_setting_set_int64(s, v->iv);
        break;
    case K_FLOAT:
        ok = config_setting_set_float(s, v->fv);
        break;
    case K_BOOL:
        ok = config_setting_set_bool(s, v->bv);
        break;
    case K_INT_ARRAY:
    case K_STR_ARRAY:
        while (ok && config_setting_length(s) > 0)
            ok = config_setting_remove_elem(s, 0);
        for (int i = 0; i < v->n_items && ok; i++) {
            if (k->kind == K_INT_ARRAY) {
                parse_int(v->items[i], &v->iv);
                ok = config_setting_set_int_elem(s, -1, (int)v->iv) != NULL;
            } else {
                ok = config_setting_set_string_elem(s, -1, v->items[i]) != NULL;
            }
        }
        break;
    default:
        ok = config_setting_set_string(s, v->sv);
        break;
    }
    if (!ok)
        return err_set(x->err, "--set %s: cannot set %s", set, p);
    config_setting_set_hook(s, (void *)set);
    return 0;
}

/* Applies the override `set` ("path=value") to the tree in c: the value is
 * typed by the schema key of path and groups missing on the way are added.
 * The setting written keeps `set` as its hook, for later messages. Returns 0,
 * or -1 with x->err "--set SET: what is wrong". */
static int set_apply(const ctx_t *x, config_t *c, const char *set)
{
    char path[KEY_LEN], spath[KEY_LEN];
    char *segs[KEY_LEN / 2];
    int nseg = 0;

    const char *eq = strchr(set, '=');
    if (!eq)
        return err_set(x->err, "--set %s: wants path=value", set);
    if ((size_t)(eq - set) >= sizeof path)
        return err_set(x->err, "--set %s: key path longer than %zu characters", set,
                       sizeof path - 1);
    memcpy(path, set, (size_t)(eq - set));
    path[eq - set] = '\0';
    char *p = trim(path);
    if (!*p)
        return err_set(x->err, "--set %s: no key before '='", set);

    /* The schema path: each index ("[0]" or "0") becomes "*". */
    char segbuf[KEY_LEN];
    snprintf(segbuf, sizeof segbuf, "%s", p);
    spath[0] = '\0';
    for (char *s = segbuf;;) {
        char *dot = strchr(s, '.');
        if (dot)
            *dot = '\0';
        int idx;
        if (!*s)
            return err_set(x->err, "--set %s: unknown key %s", set, p);
        segs[nseg++] = s;
        const char *part = seg_index(s, &idx) ? "*" : s;
        size_t used = strlen(spath), plen = strlen(part);
        if (used + 1 + plen >= sizeof spath)
            return err_set(x->err, "--set %s: unknown key %s", set, p);
        if (used)
            spath[used++] = '.';
        memcpy(spath + used, part, plen + 1);
        if (!dot)
            break;
        s = dot + 1;
    }
    schema_key_t layer_key;
    const schema_key_t *k = set_key_find(c, spath, segs, nseg, &layer_key);
    if (!k) {
        if (schema_is_group(spath))
            return err_set(x->err, "--set %s: %s is a group; set its keys one by one", set, p);
        return err_set(x->err, "--set %s: unknown key %s", set, p);
    }
    if (k->kind == K_LAYERS)
        return err_set(x->err,
                       "--set %s: %s cannot be replaced from the command line; set a layer's keys, "
                       "e.g. model.layers.[0].units=64",
                       set, p);

    char *copy = strdup(eq + 1);
    if (!copy)
        return err_set(x->err, "--set %s: out of memory", set);
    set_value_t v = {0};
    config_setting_t *node = NULL;
    int rc = -1;
    if (set_parse(x, set, p, k, trim(copy), &v) == 0 &&
        (node = set_parent(x, c, set, p, segs, nseg)) != NULL)
        rc = set_store(x, node, set, p, segs[nseg - 1], k, &v);
    free(copy);
    return rc;
}

/* ------------------------------------------------------------------ public */

/* Reads the job file x->file into c (initialised by the caller, who destroys
 * it), checks it, applies the overrides and checks again, then fills *cfg.
 * Returns 0, or -1 with x->err. */
static int job_build(const ctx_t *x, config_t *c, const char *text, const char *const *sets,
                     int n_sets, job_config_t *cfg)
{
    const char *path = x->file;
    char dir[CFG_PATH_LEN];
    if (strlen(path) >= CFG_PATH_LEN)
        return err_set(x->err, "%s: path longer than %d characters", path, CFG_PATH_LEN - 1);
    if (text) {
        /* a config kept inside a checkpoint: no file, no include folder */
        if (config_read_string(c, text) != CONFIG_TRUE)
            return err_set(x->err, "%s:%d: %s", path, config_error_line(c),
                           config_error_text(c));
    } else {
        FILE *f = fopen(path, "r");
        if (!f)
            return err_set(x->err, "%s: cannot open: %s", path, strerror(errno));
        fclose(f);

        const char *slash = strrchr(path, '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else if (slash == path)
            snprintf(dir, sizeof dir, "/");
        else
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        config_set_include_dir(c, dir); /* libconfig keeps a copy */

        if (config_read_file(c, path) != CONFIG_TRUE) {
            const char *file = config_error_file(c);
            return err_set(x->err, "%s:%d: %s", file ? file : path, config_error_line(c),
                           config_error_text(c));
        }
    }
    if (tree_check(x, c) != 0)
        return -1;
    for (int i = 0; i < n_sets; i++)
        if (set_apply(x, c, sets[i]) != 0)
            return -1;
    if (n_sets > 0 && tree_check(x, c) != 0)
        return -1;
    return job_fill(x, c, cfg);
}

/* config_load and config_load_text: text NULL reads the file path. */
static int load(job_config_t *cfg, const char *path, const char *text, const char *const *sets,
                int n_sets, int check_files, err_t *err)
{
    ctx_t x = {path, err};
    config_t c;
    int rc = -1;
    job_config_t *tmp = malloc(sizeof *tmp);
    config_init(&c);
    if (!tmp) {
        err_set(err, "%s: out of memory", path);
        goto out;
    }
    if (job_build(&x, &c, text, sets, n_sets, tmp) != 0)
        goto out;
    if (check_files && files_check(&x, &c, tmp) != 0)
        goto out;
    memcpy(cfg, tmp, sizeof *cfg);
    rc = 0;
out:
    config_destroy(&c);
    free(tmp);
    return rc;
}

/* See config.h. On error *cfg is left unchanged. */
int config_load(job_config_t *cfg, const char *path, const char *const *sets, int n_sets,
                int check_files, err_t *err)
{
    if (!cfg || !path)
        return err_set(err, "config_load: no config file given");
    return load(cfg, path, NULL, sets, n_sets, check_files, err);
}

/* See config.h. On error *cfg is left unchanged. */
int config_load_text(job_config_t *cfg, const char *name, const char *text,
                     const char *const *sets, int n_sets, int check_files, err_t *err)
{
    if (!cfg || !name || !text)
        return err_set(err, "config_load_text: no config text given");
    return load(cfg, name, text, sets, n_sets, check_files, err);
}

/* See config.h. The text is checked as config_load checks it (without the
 * data files); on error NULL is returned and err says why. */
char *config_text(const char *path, const char *const *sets, int n_sets, err_t *err)
{
    return config_text_from(path, NULL, sets, n_sets, err);
}

/* See config.h. */
char *config_text_from(const char *path, const char *src, const char *const *sets, int n_sets,
                       err_t *err)
{
    ctx_t x = {path, err};
    config_t c;
    char *buf = NULL, *text = NULL;
    size_t len = 0;
    if (!path) {
        err_set(err, "config_text: no config file given");
        return NULL;
    }
    job_config_t *tmp = malloc(sizeof *tmp);
    config_init(&c);
    if (!tmp) {
        err_set(err, "%s: out of memory", path);
        goto out;
    }
    if (job_build(&x, &c, src, sets, n_sets, tmp) != 0)
        goto out;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) {
        err_set(err, "%s: open_memstream: %s", path, strerror(errno));
        goto out;
    }
    config_write(&c, mem);
    int bad = ferror(mem);
    int closed = fclose(mem);
    if (bad || closed != 0 || !buf) {
        err_set(err, "%s: cannot write the configuration text", path);
        goto out;
    }
    text = buf;
    buf = NULL;
out:
    free(buf);
    config_destroy(&c);
    free(tmp);
    return text;
}

const char *config_consistency_name(consistency_t c)
{
    return choice_name(CONSISTENCIES, (int)c);
}

int cfg_sparse_rows(const job_config_t *cfg, int f)
{
    return cfg->model.sparse.rows[cfg->model.sparse.n_rows == 1 ? 0 : f];
}
