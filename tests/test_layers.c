/* test_layers.c - finite-difference checks of every layer kind's backward
 * pass, through the public model API: a model of the layer under test and
 * a flatten (MSE loss, so that nothing is fused into it), whose objective
 * dot(output, r) is checked with respect to every parameter tensor AND the
 * input. Covered: conv2d (stride, padding, each activation; no input
 * gradient; a direct convolution as reference), conv2d + maxpool2d fused
 * against the unfused pair, maxpool2d (also overlapping windows), dense with
 * each activation, the standalone activations, the LSTM (one and several
 * steps, with and without return_sequences), dropout (mask statistics,
 * determinism, global sample indices), avgpool2d, global_avgpool2d, two
 * workspaces against one, and whole models through model_train_step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "common/nn/model.h"
#include "tests.h"

#define H_STEP 1e-3
#define ATOL 2e-3
#define RTOL 1e-2
#define TEXT_MAX 2048

/* How a check fills its tensors. */
typedef struct {
    float x_lo, x_hi;     /* input, uniform */
    float w_lo, w_hi;     /* parameter tensors, uniform */
    float b_lo, b_hi;     /* tensors named *.bias, uniform */
    int x_distinct;       /* 1: distinct inputs 0.01 apart, shuffled (no ties in a pool) */
    size_t checks;        /* elements checked per tensor, at most */
    double atol, rtol;
} fill_t;

static const fill_t FILL = {-1, 1, -0.5f, 0.5f, -0.2f, 0.2f, 0, 200, ATOL, RTOL};

/* A model built from config text for batches of B; the test fails unless
 * it builds. */
static model_t *build(const char *text, int B, int no_fusion)
{
    job_config_t *cfg = calloc(1, sizeof *cfg);
    err_t err = {{0}};
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    if (config_load_text(cfg, "layer_test", text, NULL, 0, 0, &err) != 0)
        fprintf(stderr, "\n    config: %s\n", err.msg);
    model_t *m = cfg->model.n_layers ? model_new_opts(cfg, B, &(model_opts_t){no_fusion}, &err)
                                     : NULL;
    if (!m)
        fprintf(stderr, "\n    model: %s\n", err.msg);
    free(cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    return m;
}

/* The text of a model of input `input` ("[C, H, W]" or "[T, F]"): `layers`
 * then a flatten, MSE loss. */
static const char *model_text(char *buf, const char *input, const char *layers)
{
    snprintf(buf, TEXT_MAX,
             "model = { input = %s; loss = \"mse\";\n layers = ( %s,\n { type = \"flatten\"; } ); };\n",
             input, layers);
    return buf;
}

typedef struct {
    model_t *m;
    const model_run_t *run;
    float *params, *x, *r;
    int B;
} obj_ctx_t;

/* dot(output, r) in double. */
static double obj(void *p)
{
    obj_ctx_t *c = p;
    const float *y = model_ws_forward(model_ws(c->m), c->run, c->params, c->x, c->B);
    return dot_double(y, c->r, (size_t)c->B * model_output_size(c->m));
}

/* Fills x with the values 0.01 k for k = 0..n-1, shuffled. */
static void fill_distinct(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.01f * (float)((i * 7919) % n);
}

/* Fills c's input (seed), parameter tensors (seed + 1, + 2, ...) and r
 * (the next seed) as f says: the data the kernel-level checks used. */
static void fill_ctx(obj_ctx_t *c, const fill_t *f, unsigned seed)
{
    const param_table_t *t = model_params(c->m);
    for (int i = 0; i < t->n; i++) {
        const param_spec_t *p = &t->t[i];
        int bias = strstr(p->name, ".bias") != NULL;
        fill_uniform(c->params + p->offset, p->size, seed + 1 + i, bias ? f->b_lo : f->w_lo,
                     bias ? f->b_hi : f->w_hi);
    }
    size_t nx = (size_t)c->B * model_input_size(c->m);
    if (f->x_distinct)
        fill_distinct(c->x, nx);
    else
        fill_uniform(c->x, nx, seed, f->x_lo, f->x_hi);
    fill_uniform(c->r, (size_t)c->B * model_output_size(c->m), seed + 1 + t->n, -1, 1);
}

/* Checks d dot(output, r) / d (every parameter tensor, the input) of the
 * model of text against finite differences. Gradients start at 0.5 and
 * have it subtracted afterwards: backward must accumulate into them. */
static void check_text(const char *what, const char *text, int B, const fill_t *f, unsigned seed,
                       const model_run_t *run)
{
    model_t *m = build(text, B, 1);
    const size_t n = model_n_params(m), nx = (size_t)B * model_input_size(m);
    const size_t nout = (size_t)B * model_output_size(m);
    obj_ctx_t c = {m, run, malloc((n ? n : 1) * 4), malloc(nx * 4), malloc(nout * 4), B};
    float *grads = malloc((n ? n : 1) * 4), *dx = malloc(nx * 4);
    CU_ASSERT_FATAL(c.params && c.x && c.r && grads && dx);
    fill_ctx(&c, f, seed);
    for (size_t i = 0; i < n; i++)
        grads[i] = 0.5f;
    obj(&c);
    model_ws_backward(model_ws(m), run, c.params, grads, c.x, B, c.r, dx);
    for (size_t i = 0; i < n; i++)
        grads[i] -= 0.5f;
    const param_table_t *t = model_params(m);
    char name[96];
    for (int i = 0; i < t->n; i++) {
        snprintf(name, sizeof name, "%s %s", what, t->t[i].name);
        CU_ASSERT_EQUAL(gradcheck(name, obj, &c, c.params + t->t[i].offset, grads + t->t[i].offset,
                                  t->t[i].size, f->checks, H_STEP, f->atol, f->rtol),
                        0);
    }
    snprintf(name, sizeof name, "%s input", what);
    CU_ASSERT_EQUAL(gradcheck(name, obj, &c, c.x, dx, nx, f->checks, H_STEP, f->atol, f->rtol), 0);
    free(c.params); free(c.x); free(c.r); free(grads); free(dx);
    model_destroy(&m);
}

/* check_text for the one layer `layer` on input `input` (then a flatten). */
static void check_layer(const char *what, const char *input, const char *layer, int B,
                        const fill_t *f, unsigned seed)
{
    char text[TEXT_MAX];
    check_text(what, model_text(text, input, layer), B, f, seed, NULL);
}

/* ------------------------------------------------------------------ conv2d */

static void test_conv_plain(void)
{
    check_layer("conv", "[2, 6, 5]", "{ type = \"conv2d\"; filters = 3; kernel = 3; }", 2, &FILL, 11);
}
static void test_conv_relu_pad(void)
{
    check_layer("conv relu", "[2, 7, 7]",
                "{ type = \"conv2d\"; filters = 4; padding = 1; activation = \"relu\"; }", 3, &FILL, 21);
}
static void test_conv_stride_pad(void)
{
    check_layer("conv tanh", "[3, 9, 8]",
                "{ type = \"conv2d\"; filters = 2; stride = 2; padding = 2; activation = \"tanh\"; }",
                2, &FILL, 31);
}
static void test_conv_k5_s3(void)
{
    check_layer("conv sigmoid", "[1, 11, 11]",
                "{ type = \"conv2d\"; filters = 3; kernel = 5; stride = 3; padding = 1; "
                "activation = \"sigmoid\"; }", 2, &FILL, 41);
}
static void test_conv_softmax(void)
{
    check_layer("conv softmax", "[1, 6, 6]",
                "{ type = \"conv2d\"; filters = 2; activation = \"softmax\"; }", 2, &FILL, 45);
}

/* The first layer skips its input gradient: asking for none must leave
 * the parameter gradients the same, bit for bit. */
static void test_conv_no_din(void)
{
    char text[TEXT_MAX];
    model_t *m = build(model_text(text, "[1, 6, 6]",
                                  "{ type = \"conv2d\"; filters = 2; activation = \"relu\"; }"),
                       2, 1);
    const size_t n = model_n_params(m), nx = 72, nout = 2 * (size_t)model_output_size(m);
    float *p = malloc(n * 4), *g1 = calloc(n, 4), *g2 = calloc(n, 4), x[72], *r = malloc(nout * 4);
    float dx[72];
    fill_uniform(p, n, 6, -1, 1);
    fill_uniform(x, nx, 5, -1, 1);
    fill_uniform(r, nout, 7, -1, 1);
    model_ws_forward(model_ws(m), NULL, p, x, 2);
    model_ws_backward(model_ws(m), NULL, p, g1, x, 2, r, NULL);
    model_ws_forward(model_ws(m), NULL, p, x, 2);
    model_ws_backward(model_ws(m), NULL, p, g2, x, 2, r, dx);
    CU_ASSERT(memcmp(g1, g2, n * 4) == 0);
    free(p); free(g1); free(g2); free(r);
    model_destroy(&m);
}

/* A direct convolution as reference for the im2col + GEMM lowering. */
static void test_conv_direct(void)
{
    char text[TEXT_MAX];
    model_t *m = build(model_text(text, "[2, 7, 6]",
                                  "{ type = \"conv2d\"; filters = 3; stride = 2; padding = 1; }"),
                       2, 1);
    const param_table_t *t = model_params(m);
    enum { B = 2, C = 2, H = 7, W = 6, F = 3, OH = 4, OW = 3 };
    CU_ASSERT_EQUAL_FATAL(model_output_size(m), F * OH * OW);
    float *p = malloc(t->n_params * 4), in[B * C * H * W];
    fill_uniform(p, t->n_params, 9, -1, 1);
    fill_uniform(in, sizeof in / 4, 8, -1, 1);
    const float *w = p + t->t[params_find(t, "conv1.weight")].offset;
    const float *b = p + t->t[params_find(t, "conv1.bias")].offset;
    const float *out = model_ws_forward(model_ws(m), NULL, p, in, B);
    double maxerr = 0;
    for (int bi = 0; bi < B; bi++)
        for (int f = 0; f < F; f++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double s = b[f];
                    for (int c = 0; c < C; c++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++) {
                                int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                    continue;
                                s += (double)in[((bi * C + c) * H + ih) * W + iw] *
                                     w[((f * C + c) * 3 + kh) * 3 + kw];
                            }
                    double got = out[((bi * F + f) * OH + oh) * OW + ow];
                    maxerr = fmax(maxerr, fabs(got - s));
                }
    CU_ASSERT(maxerr < 1e-5);
    free(p);
    model_destroy(&m);
}

/* ------------------------------------------------- conv2d + maxpool fused */

/* The fused kernel (a conv2d that absorbed a tiling maxpool2d) against the
 * unfused pair, forward and backward, then its own gradients. */
static void check_convpool(const char *input, const char *conv, int pool, int B, unsigned seed)
{
    char layers[512], text[TEXT_MAX];
    snprintf(layers, sizeof layers, "%s, { type = \"maxpool2d\"; pool = %d; }", conv, pool);
    model_text(text, input, layers);
    model_t *fused = build(text, B, 0), *plain = build(text, B, 1);
    /* the fused model computes the conv output inside its kernel only */
    CU_ASSERT_PTR_NULL(model_ws_layer_output(model_ws(fused), 0));
    CU_ASSERT_PTR_NOT_NULL(model_ws_layer_output(model_ws(plain), 0));
    const size_t n = model_n_params(fused), nx = (size_t)B * model_input_size(fused);
    const size_t nout = (size_t)B * model_output_size(fused);
    obj_ctx_t c = {fused, NULL, malloc(n * 4), malloc(nx * 4), malloc(nout * 4), B};
    fill_ctx(&c, &FILL, seed);
    float *g1 = calloc(n, 4), *g2 = calloc(n, 4), *dx1 = malloc(nx * 4), *dx2 = malloc(nx * 4);
    const float *y1 = model_ws_forward(model_ws(plain), NULL, c.params, c.x, B);
    const float *y2 = model_ws_forward(model_ws(fused), NULL, c.params, c.x, B);
    double maxd = 0;
    for (size_t i = 0; i < nout; i++)
        maxd = fmax(maxd, fabs(y1[i] - y2[i]));
    CU_ASSERT(maxd < 1e-5);
    model_ws_backward(model_ws(plain), NULL, c.params, g1, c.x, B, c.r, dx1);
    model_ws_backward(model_ws(fused), NULL, c.params, g2, c.x, B, c.r, dx2);
    maxd = 0;
    for (size_t i = 0; i < n; i++)
        maxd = fmax(maxd, fabs(g1[i] - g2[i]));
    for (size_t i = 0; i < nx; i++)
        maxd = fmax(maxd, fabs(dx1[i] - dx2[i]));
    CU_ASSERT(maxd < 1e-4);
    const param_table_t *t = model_params(fused);
    for (int i = 0; i < t->n; i++)
        CU_ASSERT_EQUAL(gradcheck(t->t[i].name, obj, &c, c.params + t->t[i].offset,
                                  g2 + t->t[i].offset, t->t[i].size, 200, H_STEP, ATOL, RTOL), 0);
    CU_ASSERT_EQUAL(gradcheck("convpool.in", obj, &c, c.x, dx2, nx, 200, H_STEP, ATOL, RTOL), 0);
    free(c.params); free(c.x); free(c.r); free(g1); free(g2); free(dx1); free(dx2);
    model_destroy(&fused);
    model_destroy(&plain);
}

/* small enough that no pooling window holds a near-tie that a step of h would flip */
static void test_convpool_relu(void)
{
    check_convpool("[1, 8, 8]", "{ type = \"conv2d\"; filters = 4; activation = \"relu\"; }", 2, 2,
                   401);
}
static void test_convpool_odd(void)
{
    check_convpool("[2, 11, 10]",
                   "{ type = \"conv2d\"; filters = 5; padding = 1; activation = \"tanh\"; }", 3, 2,
                   411);
}
static void test_convpool_stride(void)
{
    check_convpool("[3, 13, 13]", "{ type = \"conv2d\"; filters = 17; stride = 2; padding = 1; }",
                   2, 2, 421);
}

/* 70 filters: the fused kernel's pool takes 8 channels at a time (whole
 * vectors), then the 6 after them one by one */
static void test_convpool_wide(void)
{
    check_convpool("[1, 4, 4]", "{ type = \"conv2d\"; filters = 70; }", 2, 1, 431);
}

/* A softmax does not commute with max: a conv with it keeps its pool apart. */
static void test_convpool_softmax_not_fused(void)
{
    char text[TEXT_MAX];
    model_t *m = build(model_text(text, "[1, 6, 6]",
                                  "{ type = \"conv2d\"; filters = 2; activation = \"softmax\"; },"
                                  " { type = \"maxpool2d\"; }"),
                       1, 0);
    CU_ASSERT_PTR_NOT_NULL(model_ws_layer_output(model_ws(m), 0));
    model_destroy(&m);
}

/* --------------------------------------------------------------- pooling */

static void test_pool_2x2(void)
{
    fill_t f = FILL;
    f.x_distinct = 1;
    f.checks = 1000;
    f.atol = f.rtol = 1e-3;
    check_layer("maxpool 2x2", "[3, 6, 7]", "{ type = \"maxpool2d\"; }", 2, &f, 3);
}
static void test_pool_overlap(void)
{
    fill_t f = FILL;
    f.x_distinct = 1;
    f.checks = 1000;
    f.atol = f.rtol = 1e-3;
    check_layer("maxpool overlap", "[2, 7, 7]", "{ type = \"maxpool2d\"; pool = 3; pool_stride = 2; }",
                2, &f, 3);
}
static void test_avgpool(void)
{
    check_layer("avgpool 2x2", "[3, 6, 7]", "{ type = \"avgpool2d\"; }", 2, &FILL, 5);
    check_layer("avgpool overlap", "[2, 7, 7]",
                "{ type = \"avgpool2d\"; pool = 3; pool_stride = 2; }", 2, &FILL, 6);
}
static void test_global_avgpool(void)
{
    check_layer("global_avgpool", "[3, 5, 4]", "{ type = \"global_avgpool2d\"; }", 2, &FILL, 7);
}

/* ------------------------------------------------------------- interaction */

static void test_interaction(void)
{
    check_layer("interaction", "[15]", "{ type = \"interaction\"; vectors = 5; }", 3, &FILL, 8);
    check_layer("interaction self", "[12]",
                "{ type = \"interaction\"; vectors = 4; self = true; }", 2, &FILL, 9);
    /* samples go 16, 8 or 4 to a block of SIMD lanes (the build's widest
     * registers): whole blocks and a part of one; vectors of 5 (not a
     * multiple of the 4 sums kept in flight) */
    check_layer("interaction blocks", "[30]", "{ type = \"interaction\"; vectors = 6; }", 37,
                &FILL, 10);
    check_layer("interaction blocks self", "[20]",
                "{ type = \"interaction\"; vectors = 4; self = true; }", 17, &FILL, 11);
    /* 45 inputs and 36 pairs: whole tiles of lanes x lanes (moved in
     * registers) and, at every width, input columns after them, over 19
     * samples */
    check_layer("interaction tiles", "[45]", "{ type = \"interaction\"; vectors = 9; }", 19,
                &FILL, 12);
}

/* The interaction's output against the dot products computed one at a time
 * (8 vectors of 5: whole tiles and, with 16 lanes, the rest; 19 samples:
 * blocks and a part of one): the sample's first vector, then x_i . x_j for
 * j < i. */
static void test_interaction_values(void)
{
    enum { B = 19, V = 8, D = 5, P = V * (V - 1) / 2 };
    char text[TEXT_MAX];
    model_t *m = build(model_text(text, "[40]", "{ type = \"interaction\"; vectors = 8; }"), B, 1);
    CU_ASSERT_EQUAL_FATAL(model_output_size(m), D + P);
    float x[B * V * D];
    fill_uniform(x, B * V * D, 5, -1, 1);
    const float *y = model_ws_forward(model_ws(m), NULL, NULL, x, B);
    double worst = 0;
    for (int s = 0; s < B; s++) {
        const float *xs = x + s * V * D, *ys = y + s * (D + P);
        for (int k = 0; k < D; k++)
            worst = fmax(worst, fabs(ys[k] - xs[k]));
        for (int i = 1, q = 0; i < V; i++)
            for (int j = 0; j < i; j++, q++) {
                double dot = 0;
                for (int k = 0; k < D; k++)
                    dot += (double)xs[i * D + k] * xs[j * D + k];
                worst = fmax(worst, fabs(ys[D + q] - dot));
            }
    }
    CU_ASSERT(worst < 1e-6);
    model_destroy(&m);
}

/* --------------------------------------------------------------- embedding */

/* An embedding (7 rows of 3) then an LSTM on ids with duplicates, a
 * missing one (-1), one past the table (7) and one not whole (2.5): the
 * forward gathers the rows (zeros for the three), and the gradients of the
 * table and of the LSTM agree with finite differences (the ids have none). */
static void test_embedding(void)
{
    char text[TEXT_MAX];
    const int B = 2, T = 5, D = 3;
    model_t *m = build(model_text(text, "[5]", "{ type = \"embedding\"; rows = 7; dim = 3; }, "
                                              "{ type = \"lstm\"; units = 4; return_sequences = true; }"),
                       B, 1);
    const float ids[10] = {0, 3, 3, -1, 6, 7, 2.5f, 1, 0, 6};
    const size_t n = model_n_params(m), nout = (size_t)B * model_output_size(m);
    obj_ctx_t c = {m, NULL, malloc(n * 4), malloc(sizeof ids), malloc(nout * 4), B};
    float *grads = calloc(n, 4);
    CU_ASSERT_FATAL(c.params && c.x && c.r && grads);
    fill_ctx(&c, &FILL, 11);
    memcpy(c.x, ids, sizeof ids);
    model_ws_t *ws = model_ws(m);
    obj(&c);
    const float *table = c.params + model_params(m)->t[0].offset, *e = model_ws_layer_output(ws, 0);
    for (int i = 0; i < B * T; i++) {
        const int valid = i != 3 && i != 5 && i != 6;
        for (int k = 0; k < D; k++)
            CU_ASSERT_EQUAL(e[i * D + k], valid ? table[(int)ids[i] * D + k] : 0.0f);
    }
    model_ws_backward(ws, NULL, c.params, grads, c.x, B, c.r, NULL);
    const param_table_t *t = model_params(m);
    for (int i = 0; i < t->n; i++)
        CU_ASSERT_EQUAL(gradcheck(t->t[i].name, obj, &c, c.params + t->t[i].offset,
                                  grads + t->t[i].offset, t->t[i].size, 200, H_STEP, ATOL, RTOL),
                        0);
    /* rows no id names (2, 4, 5) get no gradient */
    for (int k = 0; k < D; k++)
        CU_ASSERT(grads[2 * D + k] == 0.0f && grads[4 * D + k] == 0.0f && grads[5 * D + k] == 0.0f);
    free(c.params); free(c.x); free(c.r); free(grads);
    model_destroy(&m);
}

/* ------------------------------------------------------------------- dense */

static void check_dense(const char *act, unsigned seed)
{
    char layer[128];
    snprintf(layer, sizeof layer, "{ type = \"flatten\"; }, { type = \"dense\"; units = 5; "
                                  "activation = \"%s\"; }", act);
    fill_t f = FILL;
    f.w_lo = -0.7f;
    f.w_hi = 0.7f;
    f.b_lo = -0.3f;
    f.b_hi = 0.3f;
    f.checks = 100;
    check_layer(act, "[1, 7]", layer, 4, &f, seed);
}

/* Dense over the first inputs of a sample, the rest passed through: two
 * such layers (DLRM's bottom MLP) then the dot interaction of the result. */
static void test_dense_inputs(void)
{
    check_layer("dense inputs", "[11]",
                "{ type = \"dense\"; units = 4; inputs = 5; activation = \"relu\"; }, "
                "{ type = \"dense\"; units = 2; inputs = 4; activation = \"tanh\"; }, "
                "{ type = \"interaction\"; vectors = 4; }", 3, &FILL, 12);
}

/* The same model with the field vectors read where the model takes them in:
 * the first layer leaves them (pass_rest = false) and the interaction reads
 * them from the model's input (from_input); the input's gradient is then
 * written by both, each its own columns. */
static void test_dense_skip(void)
{
    check_layer("dense skip", "[11]",
                "{ type = \"dense\"; units = 4; inputs = 5; pass_rest = false; "
                "activation = \"relu\"; }, "
                "{ type = \"dense\"; units = 2; activation = \"tanh\"; }, "
                "{ type = \"interaction\"; vectors = 4; from_input = 6; }", 3, &FILL, 12);
    /* over whole blocks of SIMD lanes and a part of one */
    check_layer("dense skip blocks", "[37]",
                "{ type = \"dense\"; units = 3; inputs = 7; pass_rest = false; "
                "activation = \"relu\"; }, "
                "{ type = \"interaction\"; vectors = 11; from_input = 30; }", 19, &FILL, 14);
}

static void test_dense_linear(void) { check_dense("linear", 51); }
static void test_dense_relu(void) { check_dense("relu", 61); }
static void test_dense_sigmoid(void) { check_dense("sigmoid", 71); }
static void test_dense_tanh(void) { check_dense("tanh", 81); }
static void test_dense_softmax(void) { check_dense("softmax", 91); }

/* ------------------------------------------------------------- activations */

static void test_activations(void)
{
    const char *names[] = {"relu", "sigmoid", "tanh", "softmax"};
    fill_t f = FILL;
    f.x_lo = -3;
    f.x_hi = 3;
    f.checks = 60;
    for (int k = 0; k < 4; k++) {
        char layer[64];
        snprintf(layer, sizeof layer, "{ type = \"%s\"; }", names[k]);
        check_layer(names[k], "[2, 3]", layer, 10, &f, 100 + k);
    }
    /* values: the fast sigmoid and tanh against libm */
    float xs[2001];
    for (int i = 0; i < 2001; i++)
        xs[i] = (i - 1000) * 0.02f;
    char text[TEXT_MAX];
    for (int k = 1; k <= 2; k++) {
        char layer[64];
        snprintf(layer, sizeof layer, "{ type = \"%s\"; }", names[k]);
        model_t *m = build(model_text(text, "[1, 2001]", layer), 1, 1);
        const float *ys = model_ws_forward(model_ws(m), NULL, NULL, xs, 1);
        double e = 0;
        for (int i = 0; i < 2001; i++)
            e = fmax(e, fabs(ys[i] - (k == 2 ? tanh(xs[i]) : 1.0 / (1.0 + exp(-xs[i])))));
        CU_ASSERT(e < 1e-6);
        model_destroy(&m);
    }
}

/* -------------------------------------------------------------------- lstm */

static void check_lstm(int B, int T, int I, int H, int seq, unsigned seed)
{
    char input[32], layer[128];
    snprintf(input, sizeof input, "[%d, %d]", T, I);
    snprintf(layer, sizeof layer, "{ type = \"lstm\"; units = %d; return_sequences = %s; }", H,
             seq ? "true" : "false");
    fill_t f = FILL;
    f.w_lo = -0.6f;
    f.w_hi = 0.6f;
    f.b_lo = -0.5f;
    f.b_hi = 0.5f;
    f.checks = 150;
    check_layer("lstm", input, layer, B, &f, seed);
}

static void test_lstm_one_step(void) { check_lstm(3, 1, 4, 5, 0, 301); }
static void test_lstm_last(void) { check_lstm(3, 6, 4, 5, 0, 311); }
static void test_lstm_sequences(void) { check_lstm(2, 5, 3, 4, 1, 321); }
static void test_lstm_batch1_long(void) { check_lstm(1, 12, 2, 3, 1, 331); }

/* ----------------------------------------------------------------- dropout */

#define DROP_N 1000
#define DROP_B 64

/* The model "dropout rate, flatten" on [1, DROP_N]. */
static model_t *dropout_model(double rate, int B)
{
    char layer[96], text[TEXT_MAX];
    snprintf(layer, sizeof layer, "{ type = \"dropout\"; rate = %g; }", rate);
    return build(model_text(text, "[1, 1000]", layer), B, 1);
}

/* Gradients through a training pass's mask (a fixed step: a fixed mask). */
static void test_dropout_grads(void)
{
    const model_run_t run = {.training = 1, .step = 7, .first = 3};
    char text[TEXT_MAX];
    check_text("dropout", model_text(text, "[2, 5]", "{ type = \"dropout\"; rate = 0.4; }"), 3,
               &FILL, 501, &run);
}

/* The share of zeros is the rate, the kept values are scaled by
 * 1 / (1 - rate), evaluation is the identity, and so is rate 0. */
static void test_dropout_mask(void)
{
    const double rate = 0.3;
    model_t *m = dropout_model(rate, DROP_B);
    float *x = malloc(DROP_B * DROP_N * 4);
    fill_uniform(x, DROP_B * DROP_N, 9, 0.5f, 1.5f); /* never 0 */
    const model_run_t run = {.training = 1, .step = 11, .first = 0};
    const float *y = model_ws_forward(model_ws(m), &run, NULL, x, DROP_B);
    const float scale = (float)(1.0 / (1.0 - rate));
    long zeros = 0, bad = 0;
    for (int i = 0; i < DROP_B * DROP_N; i++) {
        zeros += y[i] == 0.0f;
        bad += y[i] != 0.0f && y[i] != x[i] * scale;
    }
    const double share = (double)zeros / (DROP_B * DROP_N); /* sd 0.0018 */
    CU_ASSERT(fabs(share - rate) < 0.01);
    CU_ASSERT_EQUAL(bad, 0);
    /* evaluation (no run, or training 0): the identity */
    y = model_ws_forward(model_ws(m), NULL, NULL, x, DROP_B);
    CU_ASSERT(memcmp(y, x, DROP_B * DROP_N * 4) == 0);
    y = model_ws_forward(model_ws(m), &(model_run_t){.training = 0, .step = 11}, NULL, x, DROP_B);
    CU_ASSERT(memcmp(y, x, DROP_B * DROP_N * 4) == 0);
    model_destroy(&m);
    m = dropout_model(0.0, DROP_B);
    y = model_ws_forward(model_ws(m), &run, NULL, x, DROP_B);
    CU_ASSERT(memcmp(y, x, DROP_B * DROP_N * 4) == 0);
    model_destroy(&m);
    free(x);
}

/* The mask depends on (seed, step, global sample index) only: the same
 * run gives the same mask, another step or another sample index another
 * one, and a batch computed as two slices in two workspaces (with their
 * global first indices) equals the batch at once. */
static void test_dropout_determinism(void)
{
    enum { B = 8, N = DROP_N };
    model_t *m = dropout_model(0.5, B);
    err_t err;
    model_ws_t *w2 = model_ws_new(m, B / 2, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w2);
    float *x = malloc(B * N * 4), *a = malloc(B * N * 4), *b = malloc(B * N * 4);
    fill_uniform(x, B * N, 10, 0.5f, 1.5f);
    const model_run_t run = {.training = 1, .step = 5, .first = 0};
    memcpy(a, model_ws_forward(model_ws(m), &run, NULL, x, B), B * N * 4);
    CU_ASSERT(memcmp(a, model_ws_forward(model_ws(m), &run, NULL, x, B), B * N * 4) == 0);
    CU_ASSERT(memcmp(a, model_ws_forward(model_ws(m), &(model_run_t){1, 6, 0}, NULL, x, B),
                     B * N * 4) != 0);
    CU_ASSERT(memcmp(a, model_ws_forward(model_ws(m), &(model_run_t){1, 5, 1}, NULL, x, B),
                     B * N * 4) != 0);
    /* slices: samples [0, 4) in the model's workspace, [4, 8) in another */
    memcpy(b, model_ws_forward(model_ws(m), &run, NULL, x, B / 2), B / 2 * N * 4);
    memcpy(b + B / 2 * N,
           model_ws_forward(w2, &(model_run_t){1, 5, B / 2}, NULL, x + B / 2 * N, B / 2),
           B / 2 * N * 4);
    CU_ASSERT(memcmp(a, b, B * N * 4) == 0);
    model_ws_destroy(&w2);
    model_destroy(&m);
    free(x); free(a); free(b);
}

/* ------------------------------------------------------- whole models */

/* Gradients of whole models through model_train_step against finite
 * differences of the loss: a stacked LSTM classifier (sequences into a second
 * LSTM, then dense + cross-entropy) and a CNN with two convolutions, a fused
 * and an unfused pool, tanh and MSE. */
typedef struct {
    model_t *m;
    float *params;
    const float *x;
    const int32_t *y;
    int B;
} model_ctx_t;

static double model_obj(void *p)
{
    model_ctx_t *c = p;
    return model_eval_batch(c->m, c->params, c->x, c->y, c->B, NULL) / c->B;
}

static void check_model(const char *text, int B, unsigned seed)
{
    err_t err;
    model_t *m = build(text, B, 0);
    size_t n = model_n_params(m), nx = (size_t)B * model_input_size(m);
    float *params = malloc(n * 4), *grads = calloc(n, 4), *x = malloc(nx * 4);
    int32_t y[8];
    CU_ASSERT_FATAL(params_init_slice(model_params(m), seed, 0, n, params, &err) == 0);
    fill_uniform(x, nx, seed, 0, 1);
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)((i * 7 + seed) % (unsigned)model_output_size(m));
    model_train_step(m, &(model_run_t){.training = 1}, params, grads, x, y, B, 1.0f / B, NULL);
    model_ctx_t c = {m, params, x, y, B};
    const param_table_t *t = model_params(m);
    for (int i = 0; i < t->n; i++)
        CU_ASSERT_EQUAL(gradcheck(t->t[i].name, model_obj, &c, params + t->t[i].offset,
                                  grads + t->t[i].offset, t->t[i].size, 40, H_STEP, 1e-3, RTOL),
                        0);
    free(params);
    free(grads);
    free(x);
    model_destroy(&m);
}

static void test_model_stacked_lstm(void)
{
    check_model("model = { input = [6, 5]; loss = \"cross_entropy\"; layers = (\n"
                "  { type = \"lstm\"; units = 7; return_sequences = true; },\n"
                "  { type = \"lstm\"; units = 6; return_sequences = true; },\n"
                "  { type = \"lstm\"; units = 5; },\n"
                "  { type = \"dense\"; units = 4; activation = \"softmax\"; } ); };\n",
                3, 501);
}

static void test_model_cnn_mse(void)
{
    check_model("model = { input = [2, 10, 10]; loss = \"mse\"; layers = (\n"
                "  { type = \"conv2d\"; filters = 3; padding = 1; activation = \"tanh\"; },\n"
                "  { type = \"maxpool2d\"; pool = 2; },\n" /* fused */
                "  { type = \"conv2d\"; filters = 4; kernel = 2; },\n"
                "  { type = \"sigmoid\"; },\n"
                "  { type = \"maxpool2d\"; pool = 2; pool_stride = 1; },\n" /* overlapping */
                "  { type = \"flatten\"; },\n"
                "  { type = \"dense\"; units = 5; activation = \"sigmoid\"; } ); };\n",
                2, 511);
}

/* Two workspaces over the two halves of a batch (each with its global
 * first index, scale 1 / the whole batch) add up to one workspace over the
 * whole batch: the losses, and the gradients within float rounding (the
 * GEMMs sum in another order). */
static void test_workspaces(void)
{
    enum { B = 6 };
    model_t *m = build("model = { input = [1, 8, 8]; layers = (\n"
                       "  { type = \"conv2d\"; filters = 3; activation = \"relu\"; },\n"
                       "  { type = \"maxpool2d\"; },\n"
                       "  { type = \"dropout\"; rate = 0.25; },\n"
                       "  { type = \"flatten\"; },\n"
                       "  { type = \"dense\"; units = 4; activation = \"softmax\"; } ); };\n",
                       B, 0);
    err_t err;
    model_ws_t *w1 = model_ws_new(m, B / 2, &err), *w2 = model_ws_new(m, B / 2, &err);
    CU_ASSERT_FATAL(w1 && w2);
    const size_t n = model_n_params(m);
    float *p = malloc(n * 4), *ga = calloc(n, 4), *gb = calloc(n, 4), x[B * 64];
    int32_t y[B] = {0, 1, 2, 3, 1, 2};
    CU_ASSERT_FATAL(params_init_slice(model_params(m), 4, 0, n, p, &err) == 0);
    fill_uniform(x, B * 64, 12, 0, 1);
    double la = model_train_step(m, &(model_run_t){1, 3, 0}, p, ga, x, y, B, 1.0f / B, NULL);
    double lb = model_ws_train_step(w1, &(model_run_t){1, 3, 0}, p, gb, x, y, B / 2, 1.0f / B, NULL);
    lb += model_ws_train_step(w2, &(model_run_t){1, 3, B / 2}, p, gb, x + B / 2 * 64, y + B / 2,
                              B / 2, 1.0f / B, NULL);
    CU_ASSERT(fabs(la - lb) <= 1e-5 * fabs(la));
    double maxd = 0, maxg = 0;
    for (size_t i = 0; i < n; i++) {
        maxd = fmax(maxd, fabs(ga[i] - gb[i]));
        maxg = fmax(maxg, fabs(ga[i]));
    }
    CU_ASSERT(maxg > 0 && maxd <= 1e-5 * maxg);
    model_ws_destroy(&w1);
    model_ws_destroy(&w2);
    free(p); free(ga); free(gb);
    model_destroy(&m);
}

/* A model whose layers do not fit is refused with the file, the layer's
 * line, its index and kind, and what does not fit. */
static void test_shape_errors(void)
{
    struct {
        const char *input, *layers, *want;
    } cases[] = {
        {"[2, 5, 5]", "{ type = \"dense\"; units = 3; }",
         "bad_shape:3: model.layers.[0] (dense): needs a flat input, got [2,5,5] (add a flatten layer)"},
        {"[1, 4, 4]", "{ type = \"avgpool2d\"; pool = 5; }, { type = \"flatten\"; }",
         "bad_shape:3: model.layers.[0] (avgpool2d): pool 5 does not fit input [1,4,4]"},
        {"[1, 4, 4]", "{ type = \"maxpool2d\"; pool = 5; }, { type = \"flatten\"; }",
         "bad_shape:3: model.layers.[0] (maxpool2d): pool 5 does not fit input [1,4,4]"},
        {"[1, 4, 4]", "{ type = \"conv2d\"; filters = 2; kernel = 5; }, { type = \"flatten\"; }",
         "bad_shape:3: model.layers.[0] (conv2d): kernel 5 with padding 0 does not fit input [1,4,4]"},
        {"[4, 3]", "{ type = \"flatten\"; }, { type = \"global_avgpool2d\"; }",
         "bad_shape:3: model.layers.[1] (global_avgpool2d): needs an image input [C,H,W], got [12]"},
        {"[2, 4, 4]", "{ type = \"lstm\"; units = 3; }",
         "bad_shape:3: model.layers.[0] (lstm): needs a sequence input [T,F], got [2,4,4]"},
        {"[2, 4, 4]", "{ type = \"dropout\"; rate = 0.5; }",
         "bad_shape:3: the last layer's output [2,4,4] is not a flat class vector"},
        {"[2, 4]", "{ type = \"embedding\"; rows = 5; dim = 2; }",
         "bad_shape:3: model.layers.[0] (embedding): needs a flat input of ids [steps], got [2,4]"},
        {"[6]", "{ type = \"dense\"; units = 2; inputs = 6; }",
         "bad_shape:3: model.layers.[0] (dense): inputs: 6 is not less than the input's length 6 "
         "(leave it out to read them all)"},
        {"[10]", "{ type = \"interaction\"; vectors = 3; }",
         "bad_shape:3: model.layers.[0] (interaction): needs a flat input of 3 vectors of equal "
         "length, got [10]"},
        {"[1, 4, 4]", "{ type = \"global_avgpool2d\"; }",
         "bad_shape:3: the last layer has 1 output(s); a classifier needs at least 2"},
        {"[11]", "{ type = \"dense\"; units = 4; inputs = 5; }, "
         "{ type = \"dense\"; units = 2; inputs = 4; pass_rest = false; }",
         "bad_shape:3: model.layers.[1] (dense): pass_rest: only the first layer, which reads "
         "the model's input, can leave the rest to a later layer"},
        {"[11]", "{ type = \"dense\"; units = 2; inputs = 5; pass_rest = false; }, "
         "{ type = \"dense\"; units = 3; }",
         "bad_shape:3: model.layers.[0] (dense): pass_rest = false: the input's last 6 values go "
         "to no layer (a later layer reads them with from_input = 6)"},
        {"[11]", "{ type = \"dense\"; units = 2; inputs = 5; }, " /* both would carry them */
         "{ type = \"interaction\"; vectors = 7; from_input = 6; }",
         "bad_shape:3: model.layers.[1] (interaction): from_input = 6: the first layer writes "
         "their gradient (give it inputs = P and pass_rest = false, with P + 6 the input's "
         "length)"},
        {"[11]", "{ type = \"dense\"; units = 2; inputs = 5; pass_rest = false; }, "
         "{ type = \"interaction\"; vectors = 3; from_input = 4; }",
         "bad_shape:3: model.layers.[1] (interaction): from_input = 4: the first layer leaves "
         "the last 6 to it: from_input = 6"},
        {"[11]", "{ type = \"interaction\"; vectors = 3; from_input = 4; }",
         "bad_shape:3: model.layers.[0] (interaction): from_input: 4 values of the model's "
         "input of 11, for a layer after the first"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[TEXT_MAX];
        snprintf(text, sizeof text, "model = { input = %s;\n  layers = (\n  %s ); };\n",
                 cases[i].input, cases[i].layers);
        job_config_t *cfg = calloc(1, sizeof *cfg);
        err_t err = {{0}};
        CU_ASSERT_FATAL(cfg && config_load_text(cfg, "bad_shape", text, NULL, 0, 0, &err) == 0);
        model_t *m = model_new(cfg, 2, &err);
        CU_ASSERT_PTR_NULL(m);
        if (!strstr(err.msg, cases[i].want))
            fprintf(stderr, "\n    message \"%s\"\n    lacks   \"%s\"\n", err.msg, cases[i].want);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].want));
        model_destroy(&m);
        free(cfg);
    }
}

int test_layers_register(void)
{
    CU_pSuite s = CU_add_suite("layers", NULL, NULL);
    if (!s)
        return -1;
    struct { const char *name; CU_TestFunc fn; } t[] = {
        {"conv_plain", test_conv_plain},         {"conv_relu_pad", test_conv_relu_pad},
        {"conv_stride_pad", test_conv_stride_pad}, {"conv_k5_s3", test_conv_k5_s3},
        {"conv_softmax", test_conv_softmax},
        {"conv_no_din", test_conv_no_din},       {"conv_direct", test_conv_direct},
        {"convpool_relu", test_convpool_relu},   {"convpool_odd", test_convpool_odd},
        {"convpool_stride", test_convpool_stride}, {"convpool_wide", test_convpool_wide},
        {"convpool_softmax_not_fused", test_convpool_softmax_not_fused},
        {"pool_2x2", test_pool_2x2},             {"pool_overlap", test_pool_overlap},
        {"avgpool", test_avgpool},               {"global_avgpool", test_global_avgpool},
        {"interaction", test_interaction},
        {"interaction values", test_interaction_values},       {"embedding", test_embedding},
        {"dense_inputs", test_dense_inputs},     {"dense_skip", test_dense_skip},
        {"dense_linear", test_dense_linear},     {"dense_relu", test_dense_relu},
        {"dense_sigmoid", test_dense_sigmoid},   {"dense_tanh", test_dense_tanh},
        {"dense_softmax", test_dense_softmax},   {"activations", test_activations},
        {"lstm_one_step", test_lstm_one_step},   {"lstm_last", test_lstm_last},
        {"lstm_sequences", test_lstm_sequences}, {"lstm_batch1_long", test_lstm_batch1_long},
        {"dropout_grads", test_dropout_grads},   {"dropout_mask", test_dropout_mask},
        {"dropout_determinism", test_dropout_determinism},
        {"model_stacked_lstm", test_model_stacked_lstm}, {"model_cnn_mse", test_model_cnn_mse},
        {"workspaces", test_workspaces},         {"shape_errors", test_shape_errors},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!CU_add_test(s, t[i].name, t[i].fn))
            return -1;
    return 0;
}
