/* test_registry.c - CUnit suite "registry": the rule that a layer kind is
 * one file plus one registry line (tests/check_layers.sh) holds for the
 * tree, the check fails where it should (on a small tree of its own), and
 * every registered descriptor is complete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <CUnit/CUnit.h>

#include "common/nn/optim.h"
#include "common/nn/registry.h"
#include "common/util/fsutil.h"
#include "tests.h"

#define OUT_MAX 4096

/* Runs tests/check_layers.sh on root, keeping its output in out. Returns
 * its exit status, or -1 when it did not run to an end. */
static int run_check(const char *root, char *out, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh tests/check_layers.sh '%s' 2>&1", root);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    while (fgetc(p) != EOF)
        ;
    int st = pclose(p);
    return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

/* Writes text to root/name. */
static void put(const char *root, const char *name, const char *text)
{
    char path[1024];
    err_t err;
    snprintf(path, sizeof path, "%s/%s", root, name);
    CU_ASSERT_EQUAL_FATAL(fs_write_atomic(path, text, strlen(text), &err), 0);
}

static void test_layer_names(void)
{
    char out[OUT_MAX];
    int st = run_check(".", out, sizeof out);
    if (st != 0)
        fprintf(stderr, "\n%s", out);
    CU_ASSERT_EQUAL(st, 0);
}

/* A tree with kinds foo and foo_bar: clean, then each kind of mention. */
static void test_check_fails(void)
{
    char root[512], dir[600], out[OUT_MAX];
    snprintf(root, sizeof root, "%s/layer_tree", tests_tmp_dir());
    snprintf(dir, sizeof dir, "%s/common/nn", root);
    err_t err;
    CU_ASSERT_EQUAL_FATAL(fs_mkdirs(dir, &err), 0);
    put(root, "common/nn/registry.c", "#define LAYER_KINDS(LAYER) \\\n    LAYER(foo) \\\n"
                                      "    LAYER(foo_bar)\n");
    put(root, "common/nn/foo.c", "const int layer_foo = 1; const char *n = \"foo\";\n");
    put(root, "common/nn/foo_bar.c", "const int layer_foo_bar = 1;\n");
    put(root, "common/nn/model.c", "/* foo, LAYER_FOO in a comment */\n"
                                   "const char *s = \"Foo %d.foo\"; int fast_foof;\n");
    CU_ASSERT_EQUAL(run_check(root, out, sizeof out), 0);
    const char *bad[] = {"int foo_forward;\n", "int LAYER_FOO = 2;\n", "const char *t = \"foo\";\n",
                         "int x = foo;\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put(root, "common/nn/other.c", bad[i]);
        CU_ASSERT_EQUAL(run_check(root, out, sizeof out), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "common/nn/other.c names layer kind foo"));
        CU_ASSERT_PTR_NULL(strstr(out, "kind foo_bar"));
    }
    /* the longer name is a mention of foo_bar only */
    put(root, "common/nn/other.c", "int layer_foo_bar_x;\n");
    CU_ASSERT_EQUAL(run_check(root, out, sizeof out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "names layer kind foo_bar"));
    CU_ASSERT_PTR_NULL(strstr(out, "names layer kind foo ("));
    /* a test file may name any kind; a kind needs its own file */
    put(root, "common/nn/other.c", "int other;\n");
    snprintf(dir, sizeof dir, "%s/tests", root);
    CU_ASSERT_EQUAL_FATAL(fs_mkdirs(dir, &err), 0);
    put(root, "tests/test_foo.c", "int foo_forward;\n");
    CU_ASSERT_EQUAL(run_check(root, out, sizeof out), 0);
    put(root, "common/nn/registry.c", "LAYER(foo)\nLAYER(baz)\n");
    CU_ASSERT_EQUAL(run_check(root, out, sizeof out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "baz: no file common/nn/baz.c"));
}

/* Every registered descriptor is complete: what the model, the config and
 * the exporter call through it is there, its keys fit a layer_cfg_t and
 * have distinct names, and the optimizers' checkpoint ids are distinct. */
static void test_descriptors(void)
{
    const layer_kind_t *k;
    for (int i = 0; (k = layer_kind_at(i)); i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(k->name);
        CU_ASSERT(k->plan && k->emit);
        CU_ASSERT(k->alias || (k->forward && k->backward));
        int n = 0;
        for (; k->keys && k->keys[n].name; n++)
            for (int j = 0; j < n; j++)
                CU_ASSERT(strcmp(k->keys[j].name, k->keys[n].name) != 0);
        CU_ASSERT(n <= CFG_LAYER_KEYS);
        for (int j = 0; j < i; j++)
            CU_ASSERT(strcmp(layer_kind_at(j)->name, k->name) != 0);
        if (k->act)
            CU_ASSERT_EQUAL(act_find(k->act->name), k->act);
    }
    const act_kind_t *a;
    for (int i = 0; (a = act_at(i)); i++) {
        CU_ASSERT(a->name && a->forward && a->backward && a->emit);
        CU_ASSERT(!a->row_normalising || a->normalise_row);
    }
    const loss_kind_t *l;
    for (int i = 0; (l = loss_at(i)); i++)
        CU_ASSERT(l->name && l->eval);
    const optim_kind_t *o;
    for (int i = 0; (o = optim_at(i)); i++) {
        CU_ASSERT(o->name && o->update && o->slots >= 0 && o->default_lr > 0);
        for (int j = 0; j < i; j++)
            CU_ASSERT(optim_at(j)->id != o->id);
    }
}

int test_registry_register(void)
{
    CU_pSuite s = CU_add_suite("registry", NULL, NULL);
    if (!s || !CU_add_test(s, "layer_names", test_layer_names) ||
        !CU_add_test(s, "check_fails", test_check_fails) ||
        !CU_add_test(s, "descriptors", test_descriptors))
        return -1;
    return 0;
}
