/* test_torch.c - pstrain against PyTorch 1.13 reference tensors (written by
 * tests/fixtures/make_torch_fixtures.py), through the public model API: the
 * CNN chain conv2d -> relu -> maxpool -> dense -> cross-entropy (also conv
 * with stride 2 and padding 2), the two-layer LSTM classifier, average and
 * global average pooling, binary cross-entropy on one logit, dropout with a
 * given mask, and three steps of each optimizer. Every tensor must agree within 1e-4 relative to its
 * largest value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "common/nn/model.h"
#include "common/nn/optim.h"
#include "common/nn/sparse_input.h"
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

/* A model of config text for batches of B (the test fails unless it builds). */
static model_t *build(const char *name, const char *text, int B, int no_fusion)
{
    job_config_t *cfg = calloc(1, sizeof *cfg);
    err_t err = {{0}};
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    if (config_load_text(cfg, name, text, NULL, 0, 0, &err) != 0)
        fprintf(stderr, "\n    config: %s\n", err.msg);
    model_t *m = cfg->model.n_layers ? model_new_opts(cfg, B, &(model_opts_t){no_fusion}, &err)
                                     : NULL;
    if (!m)
        fprintf(stderr, "\n    model: %s\n", err.msg);
    free(cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    return m;
}

/* A parameter vector of m with tensor mine[i] set to the fixture's theirs[i]. */
static float *params_from(const model_t *m, const fixture_t *fx, const char *const *mine,
                          const char *const *theirs, int n)
{
    const param_table_t *pt = model_params(m);
    CU_ASSERT_EQUAL_FATAL(pt->n, n);
    float *params = calloc(pt->n_params, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(params);
    for (int i = 0; i < n; i++) {
        int k = params_find(pt, mine[i]);
        CU_ASSERT_FATAL(k >= 0);
        const float *src = get(fx, theirs[i], pt->t[k].size);
        CU_ASSERT_FATAL(src != NULL);
        memcpy(params + pt->t[k].offset, src, pt->t[k].size * 4);
    }
    return params;
}

/* Compares the gradients of tensors mine[i] with the fixture's grad.theirs[i]. */
static void check_grads(const model_t *m, const float *grads, const fixture_t *fx,
                        const char *const *mine, const char *const *theirs, int n)
{
    const param_table_t *pt = model_params(m);
    for (int i = 0; i < n; i++) {
        int k = params_find(pt, mine[i]);
        char g[64];
        snprintf(g, sizeof g, "grad.%s", theirs[i]);
        CU_ASSERT(close_to(g, grads + pt->t[k].offset, get(fx, g, pt->t[k].size), pt->t[k].size));
    }
}

/* Layer i's output in the last forward of m's workspace against the fixture's `name`. */
static void check_output(model_t *m, int i, const fixture_t *fx, const char *name, size_t n)
{
    const float *y = model_ws_layer_output(model_ws(m), i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    CU_ASSERT(close_to(name, y, get(fx, name, n), n));
}

/* The fixture's labels as integers. */
static void labels_of(const fixture_t *fx, int32_t *y, int B)
{
    const float *lab = get(fx, "labels", B);
    CU_ASSERT_FATAL(lab != NULL);
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)lab[i];
}

/* conv (F filters, K, stride, pad) -> relu -> [maxpool 2] -> flatten -> dense -> xent.
 * Unfused, with the relu as a layer of its own: every layer's output, the
 * loss, the probabilities, every gradient and grad.x through the model API;
 * then the network as jobs write it (conv with a fused relu, its pool
 * absorbed) through model_train_step and model_predict. */
static void check_cnn(const char *file, int B, int C, int H, int W, int F, int K, int stride,
                      int pad, int pool, int classes)
{
    fixture_t *fx = load(file);
    CU_ASSERT_FATAL(fx != NULL);
    const int OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
    const size_t nx = (size_t)B * C * H * W, nc = (size_t)B * F * OH * OW;
    const size_t np = pool ? (size_t)B * F * (OH / 2) * (OW / 2) : nc, nl = (size_t)B * classes;
    char text[2048], conv[160];
    snprintf(conv, sizeof conv, "{ type = \"conv2d\"; filters = %d; kernel = %d; stride = %d; "
             "padding = %d; activation = \"%%s\"; },\n", F, K, stride, pad);
    char conv_none[192], conv_relu[192];
    snprintf(conv_none, sizeof conv_none, conv, "none");
    snprintf(conv_relu, sizeof conv_relu, conv, "relu");
    const char *tail = "{ type = \"flatten\"; },\n  { type = \"dense\"; units = %d; "
                       "activation = \"softmax\"; } ); };\n";
    char tail_text[160];
    snprintf(tail_text, sizeof tail_text, tail, classes);
    snprintf(text, sizeof text, "model = { input = [%d, %d, %d]; layers = (\n  %s  "
             "{ type = \"relu\"; },\n  %s%s", C, H, W, conv_none,
             pool ? "{ type = \"maxpool2d\"; pool = 2; },\n  " : "", tail_text);
    model_t *m = build(file, text, B, 1);
    const char *mine[4] = {"conv1.weight", "conv1.bias", "dense1.weight", "dense1.bias"};
    const char *theirs[4] = {"conv.weight", "conv.bias", "dense.weight", "dense.bias"};
    float *params = params_from(m, fx, mine, theirs, 4);
    float *grads = calloc(model_n_params(m), 4), *gx = malloc(nx * 4), *dlog = malloc(nl * 4);
    const float *x = get(fx, "x", nx);
    CU_ASSERT_FATAL(x && grads && gx && dlog);
    int32_t y[16];
    labels_of(fx, y, B);

    model_ws_t *w = model_ws(m);
    const float *logits = model_ws_forward(w, NULL, params, x, B);
    check_output(m, 0, fx, "conv.out", nc);
    check_output(m, 1, fx, "relu.out", nc);
    if (pool)
        check_output(m, 2, fx, "pool.out", np);
    CU_ASSERT(close_to("logits", logits, get(fx, "logits", nl), nl));
    double loss = model_ws_loss(w, logits, y, B, 1.0f / B, dlog, NULL) / B;
    const double loss_ref = *get(fx, "loss", 1);
    CU_ASSERT(fabs(loss - loss_ref) <= REL_TOL * fabs(loss_ref));
    model_ws_backward(w, NULL, params, grads, x, B, dlog, gx);
    check_grads(m, grads, fx, mine, theirs, 4);
    CU_ASSERT(close_to("grad.x", gx, get(fx, "grad.x", nx), nx));
    CU_ASSERT(close_to("probs", model_ws_predict(w, params, x, B), get(fx, "probs", nl), nl));
    free(params);
    model_destroy(&m);

    /* as a job writes it: the relu fused into the conv, the pool absorbed */
    snprintf(text, sizeof text, "model = { input = [%d, %d, %d]; layers = (\n  %s  %s%s", C, H,
             W, conv_relu, pool ? "{ type = \"maxpool2d\"; pool = 2; },\n  " : "", tail_text);
    m = build(file, text, B, 0);
    params = params_from(m, fx, mine, theirs, 4);
    memset(grads, 0, model_n_params(m) * 4);
    double ml = model_train_step(m, &(model_run_t){.training = 1}, params, grads, x, y, B,
                                 1.0f / B, NULL) / B;
    CU_ASSERT(fabs(ml - loss_ref) <= REL_TOL * fabs(loss_ref));
    check_grads(m, grads, fx, mine, theirs, 4);
    CU_ASSERT(close_to("model probs", model_predict(m, params, x, B), get(fx, "probs", nl), nl));
    model_destroy(&m);
    free(params); free(grads); free(gx); free(dlog);
    fixture_destroy(&fx);
}

static void test_torch_cnn(void) { check_cnn("cnn.bin", 3, 2, 9, 9, 4, 3, 1, 1, 1, 5); }
static void test_torch_cnn_stride(void) { check_cnn("cnn_s2.bin", 2, 1, 7, 7, 3, 3, 2, 2, 0, 4); }

/* LSTM(4->6, sequences) -> LSTM(6->5) -> dense 3 -> xent through the model
 * API: each LSTM's output, the logits, the loss, every gradient, grad.x and
 * the probabilities; and model_train_step's gradients. */
static void test_torch_lstm(void)
{
    enum { B = 3, T = 5, F = 4, H1 = 6, H2 = 5, K = 3 };
    fixture_t *fx = load("lstm.bin");
    CU_ASSERT_FATAL(fx != NULL);
    model_t *m = build("lstm.bin",
                       "model = { input = [5, 4]; layers = (\n"
                       "  { type = \"lstm\"; units = 6; return_sequences = true; },\n"
                       "  { type = \"lstm\"; units = 5; },\n"
                       "  { type = \"dense\"; units = 3; activation = \"softmax\"; } ); };\n",
                       B, 0);
    const char *mine[8] = {"lstm1.w_ih", "lstm1.w_hh", "lstm1.bias", "lstm2.w_ih",
                           "lstm2.w_hh", "lstm2.bias", "dense1.weight", "dense1.bias"};
    const char *theirs[8] = {"lstm1.w_ih", "lstm1.w_hh", "lstm1.bias", "lstm2.w_ih",
                             "lstm2.w_hh", "lstm2.bias", "dense.weight", "dense.bias"};
    float *params = params_from(m, fx, mine, theirs, 8);
    const size_t n = model_n_params(m);
    float *grads = calloc(n, 4), *grads2 = calloc(n, 4), gx[B * T * F], dlog[B * K];
    const float *x = get(fx, "x", B * T * F);
    CU_ASSERT_FATAL(x && grads && grads2);
    int32_t y[B];
    labels_of(fx, y, B);
    model_ws_t *w = model_ws(m);
    const float *logits = model_ws_forward(w, NULL, params, x, B);
    check_output(m, 0, fx, "lstm1.out", B * T * H1);
    check_output(m, 1, fx, "lstm2.out", B * H2);
    CU_ASSERT(close_to("logits", logits, get(fx, "logits", B * K), B * K));
    double loss = model_ws_loss(w, logits, y, B, 1.0f / B, dlog, NULL) / B;
    double lref = *get(fx, "loss", 1);
    CU_ASSERT(fabs(loss - lref) <= REL_TOL * fabs(lref));
    model_ws_backward(w, NULL, params, grads, x, B, dlog, gx);
    check_grads(m, grads, fx, mine, theirs, 8);
    CU_ASSERT(close_to("grad.x", gx, get(fx, "grad.x", B * T * F), B * T * F));
    CU_ASSERT(close_to("probs", model_predict(m, params, x, B), get(fx, "probs", B * K), B * K));
    loss = model_train_step(m, &(model_run_t){.training = 1}, params, grads2, x, y, B, 1.0f / B,
                            NULL) / B;
    CU_ASSERT(fabs(loss - lref) <= REL_TOL * fabs(lref));
    check_grads(m, grads2, fx, mine, theirs, 8);
    model_destroy(&m);
    free(params);
    free(grads);
    free(grads2);
    fixture_destroy(&fx);
}

/* The model of `layers` (MSE loss, nothing fused) on the fixture's x
 * [B][...] (input: x's dimensions after the batch): its output and grad.x
 * (from upstream gradient r) against PyTorch's. */
static void check_io_fixture(const char *file, const char *layers)
{
    fixture_t *fx = load(file);
    CU_ASSERT_FATAL(fx != NULL);
    int nd, xd[FIXTURE_MAX_DIMS], od[FIXTURE_MAX_DIMS], ond;
    CU_ASSERT_FATAL(fixture_shape(fx, "x", &nd, xd) == 0 && nd >= 2 && nd <= 4);
    CU_ASSERT_FATAL(fixture_shape(fx, "out", &ond, od) == 0);
    const int B = xd[0];
    size_t nx = 1, nout = 1;
    char text[512], input[64];
    int k = snprintf(input, sizeof input, "[");
    for (int i = 0; i < nd; i++) {
        nx *= (size_t)xd[i];
        if (i > 0)
            k += snprintf(input + k, sizeof input - (size_t)k, "%s%d", i > 1 ? ", " : "", xd[i]);
    }
    snprintf(input + k, sizeof input - (size_t)k, "]");
    for (int i = 0; i < ond; i++)
        nout *= (size_t)od[i];
    snprintf(text, sizeof text, "model = { input = %s; loss = \"mse\"; layers = (\n  %s ); };\n",
             input, layers);
    model_t *m = build(file, text, B, 0);
    CU_ASSERT_EQUAL_FATAL((size_t)B * model_output_size(m), nout);
    const float *x = get(fx, "x", nx), *r = get(fx, "r", nout);
    CU_ASSERT_FATAL(x && r);
    float *gx = malloc(nx * 4);
    const float *out = model_ws_forward(model_ws(m), NULL, NULL, x, B);
    CU_ASSERT(close_to("out", out, get(fx, "out", nout), nout));
    model_ws_backward(model_ws(m), NULL, NULL, NULL, x, B, r, gx);
    CU_ASSERT(close_to("grad.x", gx, get(fx, "grad.x", nx), nx));
    free(gx);
    model_destroy(&m);
    fixture_destroy(&fx);
}

static void test_torch_avgpool(void)
{
    check_io_fixture("avgpool.bin", "{ type = \"avgpool2d\"; pool = 2; }, { type = \"flatten\"; }");
    check_io_fixture("avgpool_overlap.bin", "{ type = \"avgpool2d\"; pool = 3; pool_stride = 2; }, "
                                            "{ type = \"flatten\"; }");
    check_io_fixture("global_avgpool.bin", "{ type = \"global_avgpool2d\"; }");
}

/* An embedding of the fixture's table on its ids [B][T] (then a flatten):
 * the output and the table's gradient against torch.nn.Embedding's. */
static void test_torch_embedding(void)
{
    fixture_t *fx = load("embedding.bin");
    CU_ASSERT_FATAL(fx != NULL);
    int nd, xd[FIXTURE_MAX_DIMS], wd[FIXTURE_MAX_DIMS];
    CU_ASSERT_FATAL(fixture_shape(fx, "x", &nd, xd) == 0 && nd == 2);
    CU_ASSERT_FATAL(fixture_shape(fx, "weight", &nd, wd) == 0 && nd == 2);
    const int B = xd[0], T = xd[1], rows = wd[0], dim = wd[1];
    const size_t nx = (size_t)B * T, nw = (size_t)rows * dim, nout = nx * dim;
    char text[512];
    snprintf(text, sizeof text, "model = { input = [%d]; loss = \"mse\"; layers = (\n"
             "  { type = \"embedding\"; rows = %d; dim = %d; }, { type = \"flatten\"; } ); };\n",
             T, rows, dim);
    model_t *m = build("embedding.bin", text, B, 0);
    CU_ASSERT_EQUAL_FATAL(model_n_params(m), nw);
    const float *x = get(fx, "x", nx), *r = get(fx, "r", nout), *w = get(fx, "weight", nw);
    CU_ASSERT_FATAL(x && r && w);
    float *g = calloc(nw, 4);
    CU_ASSERT_FATAL(g != NULL);
    const float *out = model_ws_forward(model_ws(m), NULL, w, x, B);
    CU_ASSERT(close_to("out", out, get(fx, "out", nout), nout));
    model_ws_backward(model_ws(m), NULL, w, g, x, B, r, NULL);
    CU_ASSERT(close_to("grad.weight", g, get(fx, "grad.weight", nw), nw));
    free(g);
    model_destroy(&m);
    fixture_destroy(&fx);
}

/* Two fields of bags through the sparse input (common/nn/sparse_input.h),
 * rows fetched from the fixture's two tables: the pooled vectors and each
 * table's gradient against torch.nn.EmbeddingBag's (mode sum or mean). */
static void check_bag_fixture(const char *file, sparse_combiner_t comb)
{
    fixture_t *fx = load(file);
    CU_ASSERT_FATAL(fx != NULL);
    int nd, id[FIXTURE_MAX_DIMS], bd[FIXTURE_MAX_DIMS], wd[FIXTURE_MAX_DIMS];
    CU_ASSERT_FATAL(fixture_shape(fx, "ids", &nd, id) == 0 && nd == 1);
    CU_ASSERT_FATAL(fixture_shape(fx, "bags", &nd, bd) == 0 && nd == 1);
    CU_ASSERT_FATAL(fixture_shape(fx, "weight0", &nd, wd) == 0 && nd == 2);
    const int n = (bd[0] - 1) / 2, rows = wd[0], dim = wd[1];
    const float *fid = get(fx, "ids", (size_t)id[0]), *fbag = get(fx, "bags", (size_t)bd[0]);
    const float *r = get(fx, "r", (size_t)n * 2 * dim);
    const float *w[2] = {get(fx, "weight0", (size_t)rows * dim), get(fx, "weight1", (size_t)rows * dim)};
    CU_ASSERT_FATAL(fid && fbag && r && w[0] && w[1]);
    uint64_t *ids = malloc((size_t)(id[0] + 1) * sizeof *ids);
    uint32_t *bags = malloc((size_t)bd[0] * sizeof *bags);
    float *x = malloc((size_t)n * 2 * dim * sizeof *x), *g = calloc((size_t)rows * dim, sizeof *g);
    CU_ASSERT_FATAL(ids && bags && x && g);
    for (int k = 0; k < id[0]; k++)
        ids[k] = (uint64_t)fid[k];
    for (int k = 0; k < bd[0]; k++)
        bags[k] = (uint32_t)fbag[k];
    err_t err;
    const sparse_input_opts_t o = {2, dim, 0, 2 * dim, n, id[0], comb};
    sparse_input_t *s = sparse_input_new(&o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(sparse_input_index_bags(s, ids, bags, n, &err), 0);
    for (int f = 0; f < 2; f++) {
        const uint64_t *u;
        const size_t nu = sparse_input_unique(s, f, &u);
        for (size_t j = 0; j < nu; j++)
            memcpy(sparse_input_rows(s, f) + j * dim, w[f] + u[j] * dim, (size_t)dim * 4);
    }
    sparse_input_gather(s, x);
    CU_ASSERT(close_to("out", x, get(fx, "out", (size_t)n * 2 * dim), (size_t)n * 2 * dim));
    sparse_input_scatter(s, r);
    for (int f = 0; f < 2; f++) {
        const uint64_t *u;
        const size_t nu = sparse_input_unique(s, f, &u);
        memset(g, 0, (size_t)rows * dim * 4);
        for (size_t j = 0; j < nu; j++)
            memcpy(g + u[j] * dim, sparse_input_grads(s, f) + j * dim, (size_t)dim * 4);
        CU_ASSERT(close_to(f ? "grad.weight1" : "grad.weight0", g,
                           get(fx, f ? "grad.weight1" : "grad.weight0", (size_t)rows * dim),
                           (size_t)rows * dim));
    }
    sparse_input_destroy(&s);
    free(ids); free(bags); free(x); free(g);
    fixture_destroy(&fx);
}

static void test_torch_embedding_bag(void)
{
    check_bag_fixture("embedding_bag_sum.bin", SPARSE_SUM);
    check_bag_fixture("embedding_bag_mean.bin", SPARSE_MEAN);
}

/* DLRM's dot interaction against dlrm_s_pytorch.py's interact_features. */
static void test_torch_interaction(void)
{
    check_io_fixture("interaction.bin", "{ type = \"interaction\"; vectors = 5; }");
    check_io_fixture("interaction_self.bin", "{ type = \"interaction\"; vectors = 4; self = true; }");
}

/* Dropout in training against PyTorch's formula x * mask / (1 - rate) with
 * the mask that the fixture script draws from its own Philox (the seed, the
 * step and the global index of the batch's first sample): the same mask,
 * output and grad.x. */
static void test_torch_dropout(void)
{
    fixture_t *fx = load("dropout.bin");
    CU_ASSERT_FATAL(fx != NULL);
    int nd, xd[FIXTURE_MAX_DIMS];
    CU_ASSERT_FATAL(fixture_shape(fx, "x", &nd, xd) == 0 && nd == 3);
    const int B = xd[0];
    const size_t n = (size_t)B * xd[1] * xd[2];
    const float *x = get(fx, "x", n), *r = get(fx, "r", n), *mask = get(fx, "mask", n);
    const float *seed = get(fx, "seed", 1), *step = get(fx, "step", 1);
    const float *first = get(fx, "first", 1), *rate = get(fx, "rate", 1);
    CU_ASSERT_FATAL(x && r && mask && seed && step && first && rate);
    char text[512];
    snprintf(text, sizeof text, "train = { seed = %d; };\nmodel = { input = [%d, %d]; loss = "
             "\"mse\"; layers = (\n  { type = \"dropout\"; rate = %.9g; }, { type = \"flatten\"; }"
             " ); };\n", (int)*seed, xd[1], xd[2], (double)*rate);
    model_t *m = build("dropout.bin", text, B, 0);
    const model_run_t run = {.training = 1, .step = (long)*step, .first = (long)*first};
    const float *out = model_ws_forward(model_ws(m), &run, NULL, x, B);
    long differ = 0;
    for (size_t i = 0; i < n; i++)
        differ += (out[i] != 0.0f) != (mask[i] != 0.0f);
    CU_ASSERT_EQUAL(differ, 0);
    CU_ASSERT(close_to("out", out, get(fx, "out", n), n));
    float *gx = malloc(n * 4);
    model_ws_backward(model_ws(m), &run, NULL, NULL, x, B, r, gx);
    CU_ASSERT(close_to("grad.x", gx, get(fx, "grad.x", n), n));
    free(gx);
    model_destroy(&m);
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
        {"adam", {.kind = optim_find("adam"), .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-7}},
        {"sgd", {.kind = optim_find("sgd"), .lr = 0.1}},
        {"momentum", {.kind = optim_find("momentum"), .lr = 0.1, .momentum = 0.9}},
        {"nesterov", {.kind = optim_find("momentum"), .lr = 0.1, .momentum = 0.9, .nesterov = 1}},
        {"adagrad", {.kind = optim_find("adagrad"), .lr = 0.1, .eps = 1e-7, .initial_accumulator = 0.1}},
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

/* dense -> relu -> dense to one logit -> binary cross-entropy: the logits,
 * the loss (BCEWithLogitsLoss, the mean; some |z| > 12), the probabilities
 * the model predicts (the logistic function the loss fuses) and every
 * gradient; the last layer written with activation = "sigmoid", as the loss
 * takes it over. */
static void test_torch_bce(void)
{
    fixture_t *fx = load("bce.bin");
    CU_ASSERT_FATAL(fx != NULL);
    int nd, xd[FIXTURE_MAX_DIMS];
    CU_ASSERT_FATAL(fixture_shape(fx, "x", &nd, xd) == 0 && nd == 2);
    const int B = xd[0], In = xd[1];
    const size_t nx = (size_t)B * In;
    char text[512];
    snprintf(text, sizeof text, "model = { input = [%d]; loss = \"binary_cross_entropy\"; layers = (\n"
             "  { type = \"dense\"; units = 5; activation = \"relu\"; },\n"
             "  { type = \"dense\"; units = 1; activation = \"sigmoid\"; } ); };\n", In);
    model_t *m = build("bce.bin", text, B, 0);
    const char *names[4] = {"dense1.weight", "dense1.bias", "dense2.weight", "dense2.bias"};
    float *params = params_from(m, fx, names, names, 4);
    float *grads = calloc(model_n_params(m), 4), *gx = malloc(nx * 4), *dz = malloc((size_t)B * 4);
    const float *x = get(fx, "x", nx);
    CU_ASSERT_FATAL(x && grads && gx && dz);
    int32_t y[16];
    CU_ASSERT_FATAL(B <= 16);
    labels_of(fx, y, B);
    model_ws_t *w = model_ws(m);
    const float *z = model_ws_forward(w, NULL, params, x, B);
    CU_ASSERT(close_to("logits", z, get(fx, "logits", B), B));
    double loss = model_ws_loss(w, z, y, B, 1.0f / B, dz, NULL) / B;
    const double loss_ref = *get(fx, "loss", 1);
    CU_ASSERT(fabs(loss - loss_ref) <= REL_TOL * fabs(loss_ref));
    model_ws_backward(w, NULL, params, grads, x, B, dz, gx);
    check_grads(m, grads, fx, names, names, 4);
    CU_ASSERT(close_to("grad.x", gx, get(fx, "grad.x", nx), nx));
    CU_ASSERT(close_to("probs", model_predict(m, params, x, B), get(fx, "probs", B), B));
    free(params);
    free(grads);
    free(gx);
    free(dz);
    model_destroy(&m);
    fixture_destroy(&fx);
}

int test_torch_register(void)
{
    CU_pSuite s = CU_add_suite("torch", NULL, NULL);
    if (!s || !CU_add_test(s, "cnn", test_torch_cnn) ||
        !CU_add_test(s, "cnn_stride_pad", test_torch_cnn_stride) ||
        !CU_add_test(s, "lstm", test_torch_lstm) || !CU_add_test(s, "optim", test_torch_optim) ||
        !CU_add_test(s, "avgpool", test_torch_avgpool) ||
        !CU_add_test(s, "dropout", test_torch_dropout) ||
        !CU_add_test(s, "interaction", test_torch_interaction) ||
        !CU_add_test(s, "embedding", test_torch_embedding) ||
        !CU_add_test(s, "embedding_bag", test_torch_embedding_bag) ||
        !CU_add_test(s, "bce", test_torch_bce))
        return -1;
    return 0;
}
