/* test_torch.c - pstrain against PyTorch 1.13 reference tensors (written by
 * tests/fixtures/make_torch_fixtures.py): the CNN chain conv2d -> relu ->
 * maxpool -> dense -> cross-entropy (also conv with stride 2 and padding 2),
 * the two-layer LSTM classifier, and three steps of each optimizer.
 * Every tensor must agree within 1e-4 relative to its largest value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "common/nn/layers.h"
#include "common/nn/loss.h"
#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "tests.h"

#define REL_TOL 1e-4

/* max |a - b| / max(max |b|, 1e-6) <= REL_TOL; prints the tensor on failure. */
static int close_to_tol(const char *what, const float *a, const float *b, size_t n, double tol)
{
    double maxdiff = 0, maxref = 0;
    for (size_t i = 0; i < n; i++) {
        maxdiff = fmax(maxdiff, fabs((double)a[i] - b[i]));
        maxref = fmax(maxref, fabs((double)b[i]));
    }
    double rel = maxdiff / fmax(maxref, 1e-6);
    if (!(rel <= tol)) {
        fprintf(stderr, "\n  %s: max diff %.3g (relative %.3g) against PyTorch\n", what, maxdiff, rel);
        return 0;
    }
    return 1;
}

static int close_to(const char *what, const float *a, const float *b, size_t n)
{
    return close_to_tol(what, a, b, n, REL_TOL);
}

static fixture_t *load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tests_fixture_dir(), name);
    err_t err;
    fixture_t *f = fixture_load(path, &err);
    if (!f)
        fprintf(stderr, "\n  %s\n", err.msg);
    return f;
}

static const float *get(const fixture_t *f, const char *name, size_t want)
{
    size_t n = 0;
    const float *p = fixture_get(f, name, &n);
    if (!p || n != want) {
        fprintf(stderr, "\n  fixture tensor %s: missing or %zu values instead of %zu\n", name, n, want);
        return NULL;
    }
    return p;
}

/* conv (F filters, K, stride, pad) -> relu -> [maxpool 2] -> flatten -> dense -> xent,
 * at the level of the layer functions, comparing every intermediate tensor
 * and gradient including grad.x; then the same network through model_t. */
static void check_cnn(const char *file, int B, int C, int H, int W, int F, int K, int stride,
                      int pad, int pool, int classes)
{
    fixture_t *fx = load(file);
    CU_ASSERT_FATAL(fx != NULL);
    conv_dims_t cd = {.B = B, .C = C, .H = H, .W = W, .F = F, .K = K, .stride = stride, .pad = pad};
    CU_ASSERT_FATAL(conv_dims_fill(&cd) == 0);
    pool_dims_t pd = {.B = B, .C = F, .H = cd.OH, .W = cd.OW, .pool = 2, .stride = 2};
    if (pool)
        CU_ASSERT_FATAL(pool_dims_fill(&pd) == 0);
    size_t nx = (size_t)B * C * H * W, nw = (size_t)F * C * K * K;
    size_t nc = (size_t)B * F * cd.OH * cd.OW;
    size_t np = pool ? (size_t)B * F * pd.OH * pd.OW : nc;
    int flat = (int)(np / B);
    const float *x = get(fx, "x", nx), *lab = get(fx, "labels", B);
    const float *cw = get(fx, "conv.weight", nw), *cb = get(fx, "conv.bias", F);
    const float *dw = get(fx, "dense.weight", (size_t)classes * flat),
                *dbias = get(fx, "dense.bias", classes);
    CU_ASSERT_FATAL(x && lab && cw && cb && dw && dbias);
    int32_t y[16];
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)lab[i];

    float *col = malloc(conv_col_size(&cd) * 4), *tmp = malloc(conv_tmp_size(&cd) * 4);
    float *pre = malloc(nc * 4), *act = malloc(nc * 4), *pooled = malloc(np * 4);
    int32_t *am = malloc(np * 4);
    float logits[64], probs[64], dlog[64], loss_ref;
    conv2d_forward(pre, col, tmp, x, cw, cb, &cd, ACT_NONE);
    CU_ASSERT(close_to("conv.out", pre, get(fx, "conv.out", nc), nc));
    conv2d_forward(act, col, tmp, x, cw, cb, &cd, ACT_RELU);
    CU_ASSERT(close_to("relu.out", act, get(fx, "relu.out", nc), nc));
    const float *dense_in = act;
    if (pool) {
        maxpool2d_forward(pooled, am, act, &pd);
        CU_ASSERT(close_to("pool.out", pooled, get(fx, "pool.out", np), np));
        dense_in = pooled;
    }
    dense_forward(logits, dense_in, dw, dbias, B, flat, classes, ACT_NONE);
    CU_ASSERT(close_to("logits", logits, get(fx, "logits", (size_t)B * classes), (size_t)B * classes));
    double loss = loss_xent_forward_backward(probs, dlog, logits, y, B, classes, 1.0f / B, NULL) / B;
    CU_ASSERT(close_to("probs", probs, get(fx, "probs", (size_t)B * classes), (size_t)B * classes));
    loss_ref = *get(fx, "loss", 1);
    CU_ASSERT(fabs(loss - loss_ref) <= REL_TOL * fabs(loss_ref));

    float *gdw = calloc((size_t)classes * flat, 4), gdb[16] = {0}, *gin = malloc(np * 4);
    float *gcw = calloc(nw, 4), gcb[64] = {0}, *gx = malloc(nx * 4), *gact = malloc(nc * 4);
    dense_backward(gin, gdw, gdb, dlog, logits, dense_in, dw, B, flat, classes, ACT_NONE);
    CU_ASSERT(close_to("grad.dense.weight", gdw, get(fx, "grad.dense.weight", (size_t)classes * flat),
                       (size_t)classes * flat));
    CU_ASSERT(close_to("grad.dense.bias", gdb, get(fx, "grad.dense.bias", classes), classes));
    if (pool)
        maxpool2d_backward(gact, gin, am, &pd);
    else
        memcpy(gact, gin, nc * 4);
    conv2d_backward(gx, gcw, gcb, gact, tmp, col, act, cw, &cd, ACT_RELU);
    CU_ASSERT(close_to("grad.conv.weight", gcw, get(fx, "grad.conv.weight", nw), nw));
    CU_ASSERT(close_to("grad.conv.bias", gcb, get(fx, "grad.conv.bias", F), F));
    CU_ASSERT(close_to("grad.x", gx, get(fx, "grad.x", nx), nx));

    /* the same network built from a config, through model_t */
    job_config_t *cfg = calloc(1, sizeof *cfg);
    snprintf(cfg->source, sizeof cfg->source, "%s", file);
    cfg->model.input_rank = 3;
    cfg->model.input[0] = C;
    cfg->model.input[1] = H;
    cfg->model.input[2] = W;
    int n = 0;
    cfg->model.layers[n++] = (layer_cfg_t){.type = LAYER_CONV2D, .filters = F, .kernel = K,
                                           .stride = stride, .padding = pad, .activation = ACT_RELU};
    if (pool)
        cfg->model.layers[n++] = (layer_cfg_t){.type = LAYER_MAXPOOL2D, .pool = 2};
    cfg->model.layers[n++] = (layer_cfg_t){.type = LAYER_FLATTEN};
    cfg->model.layers[n++] = (layer_cfg_t){.type = LAYER_DENSE, .units = classes,
                                           .activation = ACT_SOFTMAX};
    cfg->model.n_layers = n;
    cfg->model.loss = LOSS_CROSS_ENTROPY;
    err_t err;
    model_t *m = model_new(cfg, B, &err);
    CU_ASSERT_FATAL(m != NULL);
    const param_table_t *pt = model_params(m);
    float *params = calloc(pt->n_params, 4), *grads = calloc(pt->n_params, 4);
    const char *mine[4] = {"conv1.weight", "conv1.bias", "dense1.weight", "dense1.bias"};
    const char *theirs[4] = {"conv.weight", "conv.bias", "dense.weight", "dense.bias"};
    for (int i = 0; i < 4; i++) {
        int k = params_find(pt, mine[i]);
        CU_ASSERT_FATAL(k >= 0);
        memcpy(params + pt->t[k].offset, get(fx, theirs[i], pt->t[k].size), pt->t[k].size * 4);
    }
    double ml = model_train_step(m, params, grads, x, y, B, 1.0f / B, NULL) / B;
    CU_ASSERT(fabs(ml - loss_ref) <= REL_TOL * fabs(loss_ref));
    for (int i = 0; i < 4; i++) {
        int k = params_find(pt, mine[i]);
        char g[64];
        snprintf(g, sizeof g, "grad.%s", theirs[i]);
        CU_ASSERT(close_to(g, grads + pt->t[k].offset, get(fx, g, pt->t[k].size), pt->t[k].size));
    }
    const float *mp = model_predict(m, params, x, B);
    CU_ASSERT(close_to("model probs", mp, get(fx, "probs", (size_t)B * classes), (size_t)B * classes));
    model_destroy(&m);
    free(params); free(grads); free(cfg);
    free(col); free(tmp); free(pre); free(act); free(pooled); free(am);
    free(gdw); free(gin); free(gcw); free(gx); free(gact);
    fixture_destroy(&fx);
}

static void test_torch_cnn(void) { check_cnn("cnn.bin", 3, 2, 9, 9, 4, 3, 1, 1, 1, 5); }
static void test_torch_cnn_stride(void) { check_cnn("cnn_s2.bin", 2, 1, 7, 7, 3, 3, 2, 2, 0, 4); }

/* LSTM(4->6, sequences) -> LSTM(6->5) -> dense 3 -> xent through model_t, and
 * each LSTM's output and grad.x at the layer level. */
static void test_torch_lstm(void)
{
    enum { B = 3, T = 5, F = 4, H1 = 6, H2 = 5, K = 3 };
    fixture_t *fx = load("lstm.bin");
    CU_ASSERT_FATAL(fx != NULL);
    job_config_t *cfg = calloc(1, sizeof *cfg);
    snprintf(cfg->source, sizeof cfg->source, "lstm.bin");
    cfg->model.input_rank = 2;
    cfg->model.input[0] = T;
    cfg->model.input[1] = F;
    cfg->model.layers[0] = (layer_cfg_t){.type = LAYER_LSTM, .units = H1, .return_sequences = 1};
    cfg->model.layers[1] = (layer_cfg_t){.type = LAYER_LSTM, .units = H2};
    cfg->model.layers[2] = (layer_cfg_t){.type = LAYER_DENSE, .units = K, .activation = ACT_SOFTMAX};
    cfg->model.n_layers = 3;
    cfg->model.loss = LOSS_CROSS_ENTROPY;
    err_t err;
    model_t *m = model_new(cfg, B, &err);
    CU_ASSERT_FATAL(m != NULL);
    const param_table_t *pt = model_params(m);
    CU_ASSERT_EQUAL(pt->n, 8);
    float *params = calloc(pt->n_params, 4), *grads = calloc(pt->n_params, 4);
    const char *mine[8] = {"lstm1.w_ih", "lstm1.w_hh", "lstm1.bias", "lstm2.w_ih",
                           "lstm2.w_hh", "lstm2.bias", "dense1.weight", "dense1.bias"};
    const char *theirs[8] = {"lstm1.w_ih", "lstm1.w_hh", "lstm1.bias", "lstm2.w_ih",
                             "lstm2.w_hh", "lstm2.bias", "dense.weight", "dense.bias"};
    for (int i = 0; i < 8; i++) {
        int k = params_find(pt, mine[i]);
        CU_ASSERT_FATAL(k >= 0);
        const float *src = get(fx, theirs[i], pt->t[k].size);
        CU_ASSERT_FATAL(src != NULL);
        memcpy(params + pt->t[k].offset, src, pt->t[k].size * 4);
    }
    const float *x = get(fx, "x", B * T * F), *lab = get(fx, "labels", B);
    CU_ASSERT_FATAL(x && lab);
    int32_t y[B];
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)lab[i];
    double loss = model_train_step(m, params, grads, x, y, B, 1.0f / B, NULL) / B;
    double lref = *get(fx, "loss", 1);
    CU_ASSERT(fabs(loss - lref) <= REL_TOL * fabs(lref));
    for (int i = 0; i < 8; i++) {
        int k = params_find(pt, mine[i]);
        char g[64];
        snprintf(g, sizeof g, "grad.%s", theirs[i]);
        CU_ASSERT(close_to(g, grads + pt->t[k].offset, get(fx, g, pt->t[k].size), pt->t[k].size));
    }
    CU_ASSERT(close_to("probs", model_predict(m, params, x, B), get(fx, "probs", B * K), B * K));

    /* layer level: outputs of both LSTMs and the input gradient */
    lstm_dims_t d1 = {.B = B, .T = T, .In = F, .H = H1, .return_sequences = 1};
    lstm_dims_t d2 = {.B = B, .T = T, .In = H1, .H = H2, .return_sequences = 0};
    lstm_buf_t b1, b2;
    float *m1 = calloc(lstm_buf_bind(&b1, NULL, &d1), 4), *m2 = calloc(lstm_buf_bind(&b2, NULL, &d2), 4);
    lstm_buf_bind(&b1, m1, &d1);
    lstm_buf_bind(&b2, m2, &d2);
    const float *P[8];
    for (int i = 0; i < 8; i++)
        P[i] = params + pt->t[params_find(pt, mine[i])].offset;
    float o1[B * T * H1], o2[B * H2], logits[B * K], probs[B * K], dlog[B * K];
    float d_o2[B * H2], d_o1[B * T * H1], gx[B * T * F];
    float gw[4 * H1 * H1 + 4 * H1 * F + 4 * H1 + 4 * H2 * H2 + 4 * H2 * H1 + 4 * H2 + K * H2 + K];
    memset(gw, 0, sizeof gw);
    lstm_forward(o1, &b1, x, P[0], P[1], P[2], &d1);
    CU_ASSERT(close_to("lstm1.out", o1, get(fx, "lstm1.out", B * T * H1), B * T * H1));
    lstm_forward(o2, &b2, o1, P[3], P[4], P[5], &d2);
    CU_ASSERT(close_to("lstm2.out", o2, get(fx, "lstm2.out", B * H2), B * H2));
    dense_forward(logits, o2, P[6], P[7], B, H2, K, ACT_NONE);
    loss_xent_forward_backward(probs, dlog, logits, y, B, K, 1.0f / B, NULL);
    float *g = gw;
    dense_backward(d_o2, g, g + K * H2, dlog, logits, o2, P[6], B, H2, K, ACT_NONE);
    g += K * H2 + K;
    lstm_backward(d_o1, g, g + 4 * H2 * H1, g + 4 * H2 * H1 + 4 * H2 * H2, d_o2, &b2, P[3], P[4], &d2);
    g += 4 * H2 * H1 + 4 * H2 * H2 + 4 * H2;
    lstm_backward(gx, g, g + 4 * H1 * F, g + 4 * H1 * F + 4 * H1 * H1, d_o1, &b1, P[0], P[1], &d1);
    CU_ASSERT(close_to("grad.x", gx, get(fx, "grad.x", B * T * F), B * T * F));
    free(m1);
    free(m2);
    model_destroy(&m);
    free(params);
    free(grads);
    free(cfg);
    fixture_destroy(&fx);
}

/* Three steps of each optimizer against torch.optim. */
static void test_torch_optim(void)
{
    fixture_t *fx = load("optim.bin");
    CU_ASSERT_FATAL(fx != NULL);
    const float *p0 = get(fx, "p0", 10);
    const float *g[3] = {get(fx, "g1", 10), get(fx, "g2", 10), get(fx, "g3", 10)};
    CU_ASSERT_FATAL(p0 && g[0] && g[1] && g[2]);
    struct {
        const char *name;
        optim_params_t o;
    } cases[] = {
        {"adam", {.kind = OPT_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-7}},
        {"sgd", {.kind = OPT_SGD, .lr = 0.1}},
        {"momentum", {.kind = OPT_MOMENTUM, .lr = 0.1, .momentum = 0.9}},
        {"nesterov", {.kind = OPT_MOMENTUM, .lr = 0.1, .momentum = 0.9, .nesterov = 1}},
        {"adagrad", {.kind = OPT_ADAGRAD, .lr = 0.1, .eps = 1e-7, .initial_accumulator = 0.1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float p[10], state[20];
        memcpy(p, p0, sizeof p);
        optim_state_init(&cases[c].o, state, 10);
        for (int t = 1; t <= 3; t++) {
            optim_update(&cases[c].o, p, g[t - 1], state, 10, t, cases[c].o.lr);
            char name[32];
            snprintf(name, sizeof name, "%s.p%d", cases[c].name, t);
            /* Compare the change from p0, so that the update itself must be
             * right (a 1e-3 step is small beside p ~ 1); both sides went
             * through float32 parameters of size ~1, whose spacing (1.2e-7)
             * is ~1e-4 of an Adam step: hence 1e-3 on the change. */
            const float *ref = get(fx, name, 10);
            CU_ASSERT_FATAL(ref != NULL);
            float dm[10], dr[10];
            for (int i = 0; i < 10; i++) {
                dm[i] = p[i] - p0[i];
                dr[i] = ref[i] - p0[i];
            }
            CU_ASSERT(close_to_tol(name, dm, dr, 10, 1e-3));
            CU_ASSERT(close_to(name, p, ref, 10));
        }
    }
    fixture_destroy(&fx);
}

int test_torch_register(void)
{
    CU_pSuite s = CU_add_suite("torch", NULL, NULL);
    if (!s || !CU_add_test(s, "cnn", test_torch_cnn) ||
        !CU_add_test(s, "cnn_stride_pad", test_torch_cnn_stride) ||
        !CU_add_test(s, "lstm", test_torch_lstm) || !CU_add_test(s, "optim", test_torch_optim))
        return -1;
    return 0;
}
