/* test_loss.c - cross-entropy (with the softmax it fuses), MSE and binary
 * cross-entropy (with the logistic activation it fuses), through their
 * registered descriptors: values by hand and gradients by finite
 * differences; the model's rule on the number of outputs per loss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "common/config/config.h"
#include "common/nn/loss.h"
#include "common/nn/model.h"
#include "common/nn/registry.h"
#include "tests.h"

/* Cross-entropy over the registered row-normalising activation (softmax). */
static double loss_xent_forward_backward(float *probs, float *dlogits, const float *logits,
                                         const int32_t *labels, int B, int C, float scale,
                                         int *correct)
{
    const loss_kind_t *l = loss_find("cross_entropy");
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_FATAL(l->fuses_row_normalising && act_row_normalising() != NULL);
    return l->eval(act_row_normalising(), probs, dlogits, logits, labels, B, C, scale, correct);
}

static double loss_mse_forward_backward(float *dy, const float *y, const int32_t *labels, int B,
                                        int C, float scale, int *correct)
{
    const loss_kind_t *l = loss_find("mse");
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    return l->eval(NULL, NULL, dy, y, labels, B, C, scale, correct);
}

typedef struct {
    int mse;
    float *z;
    const int32_t *y;
} loss_ctx_t;

static double loss_obj(void *p)
{
    loss_ctx_t *c = p;
    float tmp[40];
    if (c->mse)
        return loss_mse_forward_backward(NULL, c->z, c->y, 4, 10, 1.0f, NULL);
    return loss_xent_forward_backward(tmp, NULL, c->z, c->y, 4, 10, 1.0f, NULL);
}

static void test_xent_values(void)
{
    float z[20] = {0}, p[20], d[20];
    int32_t y[2] = {3, 7};
    int right = 0;
    double l = loss_xent_forward_backward(p, d, z, y, 2, 10, 0.5f, &right);
    CU_ASSERT(fabs(l - 2 * log(10.0)) < 1e-6);
    CU_ASSERT(fabs(p[5] - 0.1f) < 1e-7);
    CU_ASSERT(fabs(d[3] - 0.5f * (0.1f - 1.0f)) < 1e-7);
    CU_ASSERT(fabs(d[4] - 0.05f) < 1e-7);
    /* huge logits: no overflow, exact log-sum-exp */
    float big[10] = {1000, 0, 0, 0, 0, 0, 0, 0, 0, -1000};
    int32_t yb = 9;
    right = 0;
    l = loss_xent_forward_backward(p, NULL, big, &yb, 1, 10, 1.0f, &right);
    CU_ASSERT(fabs(l - 2000.0) < 1e-3);
    CU_ASSERT(right == 0);
    yb = 0;
    l = loss_xent_forward_backward(p, NULL, big, &yb, 1, 10, 1.0f, &right);
    CU_ASSERT(l < 1e-6);
    CU_ASSERT(right == 1);
}

static void test_grads(void)
{
    for (int mse = 0; mse <= 1; mse++) {
        float z[40], d[40], p[40];
        int32_t y[4] = {0, 9, 4, 4};
        fill_uniform(z, 40, 17 + mse, -2, 2);
        loss_ctx_t c = {.mse = mse, .z = z, .y = y};
        if (mse)
            loss_mse_forward_backward(d, z, y, 4, 10, 1.0f, NULL);
        else
            loss_xent_forward_backward(p, d, z, y, 4, 10, 1.0f, NULL);
        CU_ASSERT_EQUAL(gradcheck(mse ? "mse" : "xent", loss_obj, &c, z, d, 40, 40, 1e-3, 1e-4, 1e-3), 0);
    }
    float y1[3] = {1, 0, 0};
    int32_t lab = 1;
    /* mse on one-hot: ((1-0)^2 + (0-1)^2 + 0) / 3 */
    CU_ASSERT(fabs(loss_mse_forward_backward(NULL, y1, &lab, 1, 3, 1.0f, NULL) - 2.0 / 3) < 1e-7);
}

/* Binary cross-entropy over the registered binary-probability activation. */
static double loss_bce(float *probs, float *dz, const float *z, const int32_t *labels, int B,
                       float scale, int *correct)
{
    const loss_kind_t *l = loss_find("binary_cross_entropy");
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_FATAL(l->single_output && l->fuses_binary_probability &&
                    act_binary_probability() != NULL);
    return l->eval(act_binary_probability(), probs, dz, z, labels, B, 1, scale, correct);
}

#define BCE_N 16

typedef struct {
    float *z;
    const int32_t *y;
} bce_ctx_t;

static double bce_obj(void *p)
{
    bce_ctx_t *c = p;
    float probs[BCE_N];
    return loss_bce(probs, NULL, c->z, c->y, BCE_N, 1.0f, NULL);
}

/* Values by hand: z = 0 gives log 2 and gradient scale (0.5 - y); logits
 * of +-100 stay finite (no log(0)); accuracy is (p >= 0.5) == y. */
static void test_bce_values(void)
{
    float z[4] = {0, 0, 100, -100}, p[4], d[4];
    int32_t y[4] = {0, 1, 0, 1};
    int right = 0;
    double l = loss_bce(p, d, z, y, 4, 0.25f, &right);
    CU_ASSERT(fabs(l - (2 * log(2.0) + 200.0)) < 1e-9);
    CU_ASSERT(p[0] == 0.5f && p[2] > 0.999f && p[3] < 1e-6f);
    CU_ASSERT(fabs(d[0] - 0.125f) < 1e-7 && fabs(d[1] + 0.125f) < 1e-7);
    CU_ASSERT(fabs(d[2] - 0.25f) < 1e-6 && fabs(d[3] + 0.25f) < 1e-6);
    CU_ASSERT_EQUAL(right, 1); /* p = 0.5 predicts 1: only sample 1 is right */
    /* one sample: -(y log p + (1-y) log(1-p)) at z = 1.5 */
    float z1 = 1.5f, p1;
    int32_t y1 = 1;
    double want = -log(1.0 / (1.0 + exp(-1.5)));
    CU_ASSERT(fabs(loss_bce(&p1, NULL, &z1, &y1, 1, 1.0f, NULL) - want) < 1e-7);
    y1 = 0;
    want = -log(1.0 - 1.0 / (1.0 + exp(-1.5)));
    CU_ASSERT(fabs(loss_bce(&p1, NULL, &z1, &y1, 1, 1.0f, NULL) - want) < 1e-6);
    const loss_kind_t *bce = loss_find("binary_cross_entropy");
    CU_ASSERT_EQUAL(loss_n_classes(bce, 1), 2);
    CU_ASSERT_EQUAL(loss_n_classes(loss_find("cross_entropy"), 10), 10);
    float row[1] = {0.5f};
    CU_ASSERT_EQUAL(loss_predict(bce, row, 1), 1);
    row[0] = 0.49999f;
    CU_ASSERT_EQUAL(loss_predict(bce, row, 1), 0);
    row[0] = NAN;
    CU_ASSERT_EQUAL(loss_predict(bce, row, 1), 0);
}

static void test_bce_grads(void)
{
    float z[BCE_N], d[BCE_N], p[BCE_N];
    int32_t y[BCE_N];
    fill_uniform(z, BCE_N, 29, -4, 4);
    for (int i = 0; i < BCE_N; i++)
        y[i] = (i * 5 + 1) % 3 == 0;
    bce_ctx_t c = {.z = z, .y = y};
    loss_bce(p, d, z, y, BCE_N, 1.0f, NULL);
    CU_ASSERT_EQUAL(gradcheck("bce", bce_obj, &c, z, d, BCE_N, BCE_N, 1e-3, 1e-4, 1e-3), 0);
}

/* The model of `layers` (dense layers on input [4]) with `loss`, or NULL
 * with err. */
static model_t *small_model(const char *layers, const char *loss, err_t *err)
{
    char text[1024];
    snprintf(text, sizeof text, "model = { input = [4];\n  layers = ( %s );\n  loss = \"%s\"; };\n",
             layers, loss);
    job_config_t *cfg = calloc(1, sizeof *cfg);
    CU_ASSERT_FATAL(cfg != NULL);
    model_t *m = NULL;
    if (config_load_text(cfg, "bce.cfg", text, NULL, 0, 0, err) == 0)
        m = model_new(cfg, 4, err);
    free(cfg);
    return m;
}

/* One output is allowed with binary_cross_entropy only, and it needs one;
 * refusals name the file and the last layer's line. */
static void test_bce_output_count(void)
{
    struct {
        const char *layers, *loss, *want;
    } bad[] = {
        {"{ type = \"dense\"; units = 1; }", "cross_entropy",
         "bce.cfg:2: the last layer has 1 output(s); a classifier needs at least 2 (one per "
         "class), or model.loss = \"binary_cross_entropy\" for 1"},
        {"{ type = \"dense\"; units = 1; }", "mse", "bce.cfg:2: the last layer has 1 output(s)"},
        {"{ type = \"dense\"; units = 3; }", "binary_cross_entropy",
         "bce.cfg:2: the last layer has 3 outputs; model.loss binary_cross_entropy needs exactly 1"},
        {"{ type = \"dense\"; units = 2; activation = \"softmax\"; }", "binary_cross_entropy",
         "bce.cfg:2: the last layer has 2 outputs; model.loss binary_cross_entropy needs exactly 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_t err = {{0}};
        model_t *m = small_model(bad[i].layers, bad[i].loss, &err);
        CU_ASSERT_PTR_NULL(m);
        if (!strstr(err.msg, bad[i].want))
            fprintf(stderr, "\n    message \"%s\"\n    lacks   \"%s\"\n", err.msg, bad[i].want);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad[i].want));
        model_destroy(&m);
    }
    err_t err = {{0}};
    model_t *m = small_model("{ type = \"dense\"; units = 1; }", "binary_cross_entropy", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(model_output_size(m), 1);
    CU_ASSERT_EQUAL(model_n_classes(m), 2);
    CU_ASSERT_PTR_EQUAL(model_output_act(m), act_binary_probability());
    model_destroy(&m);
}

/* A last layer written with the logistic activation (fused into dense, or
 * a layer of its own) and one without it (a linear logit) are the same
 * model: the loss applies it, and prediction gives the probability. */
static void test_bce_fused_activation(void)
{
    const char *forms[] = {
        "{ type = \"dense\"; units = 3; activation = \"relu\"; }, { type = \"dense\"; units = 1; }",
        "{ type = \"dense\"; units = 3; activation = \"relu\"; }, "
        "{ type = \"dense\"; units = 1; activation = \"sigmoid\"; }",
        "{ type = \"dense\"; units = 3; activation = \"relu\"; }, { type = \"dense\"; units = 1; }, "
        "{ type = \"sigmoid\"; }",
    };
    float probs[3][4], loss[3], x[16];
    int32_t y[4] = {1, 0, 0, 1};
    fill_uniform(x, 16, 5, -1, 1);
    for (int f = 0; f < 3; f++) {
        err_t err = {{0}};
        model_t *m = small_model(forms[f], "binary_cross_entropy", &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(model_n_layers(m), 2);
        CU_ASSERT_PTR_NULL(model_layer(m, 1)->act);
        const size_t n = model_n_params(m);
        float *params = malloc(n * sizeof *params);
        CU_ASSERT_FATAL(params != NULL);
        fill_uniform(params, n, 77, -1, 1);
        const float *out = model_ws_forward(model_ws(m), NULL, params, x, 4);
        float z[4];
        memcpy(z, out, sizeof z);
        loss[f] = (float)model_eval_batch(m, params, x, y, 4, NULL);
        memcpy(probs[f], model_predict(m, params, x, 4), sizeof probs[f]);
        for (int b = 0; b < 4; b++)
            CU_ASSERT(fabs(probs[f][b] - 1.0 / (1.0 + exp(-z[b]))) < 1e-6);
        free(params);
        model_destroy(&m);
    }
    for (int f = 1; f < 3; f++) {
        CU_ASSERT_EQUAL(loss[f], loss[0]);
        CU_ASSERT(memcmp(probs[f], probs[0], sizeof probs[0]) == 0);
    }
}

int test_loss_register(void)
{
    CU_pSuite s = CU_add_suite("loss", NULL, NULL);
    if (!s || !CU_add_test(s, "xent_values", test_xent_values) || !CU_add_test(s, "grads", test_grads) ||
        !CU_add_test(s, "bce_values", test_bce_values) || !CU_add_test(s, "bce_grads", test_bce_grads) ||
        !CU_add_test(s, "bce_output_count", test_bce_output_count) ||
        !CU_add_test(s, "bce_fused_activation", test_bce_fused_activation))
        return -1;
    return 0;
}
