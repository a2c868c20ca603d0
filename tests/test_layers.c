/* test_layers.c - finite-difference checks of every layer's backward pass:
 * conv2d (with stride and padding, fused activations), maxpool2d (also
 * overlapping windows), dense with each activation, standalone activations,
 * and the LSTM (one and several steps, with and without return_sequences). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "common/nn/layers.h"
#include "common/nn/model.h"
#include "tests.h"

#define H_STEP 1e-3
#define ATOL 2e-3
#define RTOL 1e-2

/* ------------------------------------------------------------------ conv2d */

typedef struct {
    conv_dims_t d;
    act_t act;
    float *in, *w, *b, *out, *col, *tmp, *r;
} conv_ctx_t;

static double conv_obj(void *p)
{
    conv_ctx_t *c = p;
    conv2d_forward(c->out, c->col, c->tmp, c->in, c->w, c->b, &c->d, c->act);
    return dot_double(c->out, c->r, (size_t)c->d.B * c->d.F * c->d.OH * c->d.OW);
}

static void check_conv(int B, int C, int H, int W, int F, int K, int stride, int pad, act_t act,
                       unsigned seed)
{
    conv_ctx_t c = {.d = {.B = B, .C = C, .H = H, .W = W, .F = F, .K = K, .stride = stride,
                          .pad = pad},
                    .act = act};
    CU_ASSERT_FATAL(conv_dims_fill(&c.d) == 0);
    size_t nin = (size_t)B * C * H * W, nw = (size_t)F * C * K * K,
           nout = (size_t)B * F * c.d.OH * c.d.OW;
    c.in = malloc(nin * 4);
    c.w = malloc(nw * 4);
    c.b = malloc(F * 4);
    c.out = malloc(nout * 4);
    c.r = malloc(nout * 4);
    c.col = malloc(conv_col_size(&c.d) * 4);
    c.tmp = malloc(conv_tmp_size(&c.d) * 4);
    float *dw = calloc(nw, 4), *db = calloc(F, 4), *din = malloc(nin * 4), *dout = malloc(nout * 4);
    fill_uniform(c.in, nin, seed, -1, 1);
    fill_uniform(c.w, nw, seed + 1, -0.5f, 0.5f);
    fill_uniform(c.b, F, seed + 2, -0.2f, 0.2f);
    fill_uniform(c.r, nout, seed + 3, -1, 1);
    conv_obj(&c);
    memcpy(dout, c.r, nout * 4);
    /* accumulation: start dw at 0.5 and subtract it afterwards */
    for (size_t i = 0; i < nw; i++)
        dw[i] = 0.5f;
    conv2d_backward(din, dw, db, dout, c.tmp, c.col, c.out, c.w, &c.d, act);
    for (size_t i = 0; i < nw; i++)
        dw[i] -= 0.5f;
    CU_ASSERT_EQUAL(gradcheck("conv.w", conv_obj, &c, c.w, dw, nw, 200, H_STEP, ATOL, RTOL), 0);
    CU_ASSERT_EQUAL(gradcheck("conv.b", conv_obj, &c, c.b, db, F, 200, H_STEP, ATOL, RTOL), 0);
    CU_ASSERT_EQUAL(gradcheck("conv.in", conv_obj, &c, c.in, din, nin, 300, H_STEP, ATOL, RTOL), 0);
    free(c.in); free(c.w); free(c.b); free(c.out); free(c.r); free(c.col); free(c.tmp);
    free(dw); free(db); free(din); free(dout);
}

static void test_conv_plain(void) { check_conv(2, 2, 6, 5, 3, 3, 1, 0, ACT_NONE, 11); }
static void test_conv_relu_pad(void) { check_conv(3, 2, 7, 7, 4, 3, 1, 1, ACT_RELU, 21); }
static void test_conv_stride_pad(void) { check_conv(2, 3, 9, 8, 2, 3, 2, 2, ACT_TANH, 31); }
static void test_conv_k5_s3(void) { check_conv(2, 1, 11, 11, 3, 5, 3, 1, ACT_SIGMOID, 41); }

/* The first layer skips its input gradient: din NULL must leave dw, db the same. */
static void test_conv_no_din(void)
{
    conv_dims_t d = {.B = 2, .C = 1, .H = 6, .W = 6, .F = 2, .K = 3, .stride = 1, .pad = 0};
    CU_ASSERT_FATAL(conv_dims_fill(&d) == 0);
    size_t nin = 72, nw = 18, nout = (size_t)2 * 2 * d.OH * d.OW;
    float in[72], w[18], b[2] = {0.1f, -0.1f}, out[128], r[128], d1[128], d2[128];
    float dw1[18] = {0}, dw2[18] = {0}, db1[2] = {0}, db2[2] = {0}, din[72];
    float *col = malloc(conv_col_size(&d) * 4), *tmp = malloc(conv_tmp_size(&d) * 4);
    fill_uniform(in, nin, 5, -1, 1);
    fill_uniform(w, nw, 6, -1, 1);
    fill_uniform(r, nout, 7, -1, 1);
    memcpy(d1, r, nout * 4);
    memcpy(d2, r, nout * 4);
    conv2d_forward(out, col, tmp, in, w, b, &d, ACT_RELU);
    conv2d_backward(NULL, dw1, db1, d1, tmp, col, out, w, &d, ACT_RELU);
    conv2d_forward(out, col, tmp, in, w, b, &d, ACT_RELU);
    conv2d_backward(din, dw2, db2, d2, tmp, col, out, w, &d, ACT_RELU);
    CU_ASSERT(memcmp(dw1, dw2, sizeof dw1) == 0);
    CU_ASSERT(memcmp(db1, db2, sizeof db1) == 0);
    free(col);
    free(tmp);
}

/* A direct convolution as reference for the im2col + GEMM lowering. */
static void test_conv_direct(void)
{
    conv_dims_t d = {.B = 2, .C = 2, .H = 7, .W = 6, .F = 3, .K = 3, .stride = 2, .pad = 1};
    CU_ASSERT_FATAL(conv_dims_fill(&d) == 0);
    size_t nin = (size_t)2 * 2 * 7 * 6, nw = 3 * 2 * 9, nout = (size_t)2 * 3 * d.OH * d.OW;
    float *in = malloc(nin * 4), *w = malloc(nw * 4), b[3] = {0.3f, -0.2f, 0.1f};
    float *out = malloc(nout * 4), *col = malloc(conv_col_size(&d) * 4),
          *tmp = malloc(conv_tmp_size(&d) * 4);
    fill_uniform(in, nin, 8, -1, 1);
    fill_uniform(w, nw, 9, -1, 1);
    conv2d_forward(out, col, tmp, in, w, b, &d, ACT_NONE);
    double maxerr = 0;
    for (int bi = 0; bi < d.B; bi++)
        for (int f = 0; f < d.F; f++)
            for (int oh = 0; oh < d.OH; oh++)
                for (int ow = 0; ow < d.OW; ow++) {
                    double s = b[f];
                    for (int c = 0; c < d.C; c++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++) {
                                int ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
                                if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W)
                                    continue;
                                s += (double)in[((bi * d.C + c) * d.H + ih) * d.W + iw] *
                                     w[((f * d.C + c) * 3 + kh) * 3 + kw];
                            }
                    double got = out[((bi * d.F + f) * d.OH + oh) * d.OW + ow];
                    maxerr = fmax(maxerr, fabs(got - s));
                }
    CU_ASSERT(maxerr < 1e-5);
    free(in); free(w); free(out); free(col); free(tmp);
}

/* ------------------------------------------------- conv2d + maxpool fused */

/* The fused kernel against conv2d_forward + maxpool2d_forward (and their
 * backward passes), then its own gradients by finite differences. */
typedef struct {
    convpool_dims_t d;
    act_t act;
    float *in, *w, *b, *out, *col, *tmp, *pn, *r;
    uint8_t *code;
} cp_ctx_t;

static double cp_obj(void *p)
{
    cp_ctx_t *c = p;
    conv2d_pool_forward(c->out, c->code, c->col, c->tmp, c->pn, c->in, c->w, c->b, &c->d, c->act);
    return dot_double(c->out, c->r, (size_t)c->d.c.B * c->d.c.F * c->d.PH * c->d.PW);
}

static void check_convpool(int B, int C, int H, int W, int F, int K, int stride, int pad, int pool,
                           act_t act, unsigned seed)
{
    cp_ctx_t c = {.d = {.c = {.B = B, .C = C, .H = H, .W = W, .F = F, .K = K, .stride = stride,
                              .pad = pad},
                        .pool = pool},
                  .act = act};
    CU_ASSERT_FATAL(convpool_dims_fill(&c.d) == 0);
    conv_dims_t cd = c.d.c;
    pool_dims_t pd = {.B = B, .C = F, .H = cd.OH, .W = cd.OW, .pool = pool, .stride = pool};
    CU_ASSERT_FATAL(pool_dims_fill(&pd) == 0);
    CU_ASSERT_EQUAL(pd.OH, c.d.PH);
    size_t nin = (size_t)B * C * H * W, nw = (size_t)F * C * K * K;
    size_t nconv = (size_t)B * F * cd.OH * cd.OW, nout = (size_t)B * F * c.d.PH * c.d.PW;
    c.in = malloc(nin * 4);
    c.w = malloc(nw * 4);
    c.b = malloc(F * 4);
    c.out = malloc(nout * 4);
    c.r = malloc(nout * 4);
    c.col = malloc(conv_col_size(&cd) * 4);
    c.tmp = malloc(convpool_tmp_size(&c.d) * 4);
    c.pn = malloc(convpool_pooled_size(&c.d) * 4);
    c.code = malloc(convpool_pooled_size(&c.d));
    fill_uniform(c.in, nin, seed, -1, 1);
    fill_uniform(c.w, nw, seed + 1, -0.5f, 0.5f);
    fill_uniform(c.b, F, seed + 2, -0.2f, 0.2f);
    fill_uniform(c.r, nout, seed + 3, -1, 1);
    /* unfused reference */
    float *conv = malloc(nconv * 4), *pooled = malloc(nout * 4), *tmp2 = malloc(conv_tmp_size(&cd) * 4);
    float *col2 = malloc(conv_col_size(&cd) * 4), *dconv = malloc(nconv * 4), *dpool = malloc(nout * 4);
    int32_t *am = malloc(nout * 4);
    float *dw1 = calloc(nw, 4), *db1 = calloc(F, 4), *din1 = malloc(nin * 4);
    float *dw2 = calloc(nw, 4), *db2 = calloc(F, 4), *din2 = malloc(nin * 4);
    conv2d_forward(conv, col2, tmp2, c.in, c.w, c.b, &cd, act);
    maxpool2d_forward(pooled, am, conv, &pd);
    cp_obj(&c);
    double maxd = 0;
    for (size_t i = 0; i < nout; i++)
        maxd = fmax(maxd, fabs(pooled[i] - c.out[i]));
    CU_ASSERT(maxd < 1e-5);
    memcpy(dpool, c.r, nout * 4);
    maxpool2d_backward(dconv, dpool, am, &pd);
    conv2d_backward(din1, dw1, db1, dconv, tmp2, col2, conv, c.w, &cd, act);
    conv2d_pool_backward(din2, dw2, db2, c.r, c.out, c.code, c.col, c.tmp, c.pn, c.w, &c.d, act);
    maxd = 0;
    for (size_t i = 0; i < nw; i++)
        maxd = fmax(maxd, fabs(dw1[i] - dw2[i]));
    for (int i = 0; i < F; i++)
        maxd = fmax(maxd, fabs(db1[i] - db2[i]));
    for (size_t i = 0; i < nin; i++)
        maxd = fmax(maxd, fabs(din1[i] - din2[i]));
    CU_ASSERT(maxd < 1e-4);
    CU_ASSERT_EQUAL(gradcheck("convpool.w", cp_obj, &c, c.w, dw2, nw, 200, H_STEP, ATOL, RTOL), 0);
    CU_ASSERT_EQUAL(gradcheck("convpool.b", cp_obj, &c, c.b, db2, F, 200, H_STEP, ATOL, RTOL), 0);
    free(c.in); free(c.w); free(c.b); free(c.out); free(c.r); free(c.col); free(c.tmp); free(c.pn);
    free(c.code); free(conv); free(pooled); free(tmp2); free(col2); free(dconv); free(dpool); free(am);
    free(dw1); free(db1); free(din1); free(dw2); free(db2); free(din2);
}

/* small enough that no pooling window holds a near-tie that a step of h would flip */
static void test_convpool_relu(void) { check_convpool(2, 1, 8, 8, 4, 3, 1, 0, 2, ACT_RELU, 401); }
static void test_convpool_odd(void) { check_convpool(2, 2, 11, 10, 5, 3, 1, 1, 3, ACT_TANH, 411); }
static void test_convpool_stride(void) { check_convpool(2, 3, 13, 13, 17, 3, 2, 1, 2, ACT_NONE, 421); }

/* --------------------------------------------------------------- maxpool2d */

typedef struct {
    pool_dims_t d;
    float *in, *out, *r;
    int32_t *am;
} pool_ctx_t;

static double pool_obj(void *p)
{
    pool_ctx_t *c = p;
    maxpool2d_forward(c->out, c->am, c->in, &c->d);
    return dot_double(c->out, c->r, (size_t)c->d.B * c->d.C * c->d.OH * c->d.OW);
}

static void check_pool(int B, int C, int H, int W, int pool, int stride)
{
    pool_ctx_t c = {.d = {.B = B, .C = C, .H = H, .W = W, .pool = pool, .stride = stride}};
    CU_ASSERT_FATAL(pool_dims_fill(&c.d) == 0);
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * c.d.OH * c.d.OW;
    c.in = malloc(nin * 4);
    c.out = malloc(nout * 4);
    c.r = malloc(nout * 4);
    c.am = malloc(nout * 4);
    float *din = malloc(nin * 4);
    /* distinct values 0.01 apart, shuffled: no ties within the step */
    for (size_t i = 0; i < nin; i++)
        c.in[i] = 0.01f * (float)((i * 7919) % nin);
    fill_uniform(c.r, nout, 3, -1, 1);
    pool_obj(&c);
    maxpool2d_backward(din, c.r, c.am, &c.d);
    CU_ASSERT_EQUAL(gradcheck("pool.in", pool_obj, &c, c.in, din, nin, 1000, 1e-3, 1e-3, 1e-3), 0);
    free(c.in); free(c.out); free(c.r); free(c.am); free(din);
}

static void test_pool_2x2(void) { check_pool(2, 3, 6, 7, 2, 2); }
static void test_pool_overlap(void) { check_pool(2, 2, 7, 7, 3, 2); }

/* ------------------------------------------------------------------- dense */

typedef struct {
    int B, I, O;
    act_t act;
    float *in, *w, *b, *out, *r;
} dense_ctx_t;

static double dense_obj(void *p)
{
    dense_ctx_t *c = p;
    dense_forward(c->out, c->in, c->w, c->b, c->B, c->I, c->O, c->act);
    return dot_double(c->out, c->r, (size_t)c->B * c->O);
}

static void check_dense(act_t act, unsigned seed)
{
    dense_ctx_t c = {.B = 4, .I = 7, .O = 5, .act = act};
    size_t nin = 28, nw = 35, nout = 20;
    c.in = malloc(nin * 4);
    c.w = malloc(nw * 4);
    c.b = malloc(5 * 4);
    c.out = malloc(nout * 4);
    c.r = malloc(nout * 4);
    float *dw = calloc(nw, 4), *db = calloc(5, 4), *din = malloc(nin * 4), *dout = malloc(nout * 4);
    fill_uniform(c.in, nin, seed, -1, 1);
    fill_uniform(c.w, nw, seed + 1, -0.7f, 0.7f);
    fill_uniform(c.b, 5, seed + 2, -0.3f, 0.3f);
    fill_uniform(c.r, nout, seed + 3, -1, 1);
    dense_obj(&c);
    memcpy(dout, c.r, nout * 4);
    dense_backward(din, dw, db, dout, c.out, c.in, c.w, c.B, c.I, c.O, act);
    CU_ASSERT_EQUAL(gradcheck("dense.w", dense_obj, &c, c.w, dw, nw, 100, H_STEP, ATOL, RTOL), 0);
    CU_ASSERT_EQUAL(gradcheck("dense.b", dense_obj, &c, c.b, db, 5, 100, H_STEP, ATOL, RTOL), 0);
    CU_ASSERT_EQUAL(gradcheck("dense.in", dense_obj, &c, c.in, din, nin, 100, H_STEP, ATOL, RTOL), 0);
    free(c.in); free(c.w); free(c.b); free(c.out); free(c.r); free(dw); free(db); free(din);
    free(dout);
}

static void test_dense_linear(void) { check_dense(ACT_NONE, 51); }
static void test_dense_relu(void) { check_dense(ACT_RELU, 61); }
static void test_dense_sigmoid(void) { check_dense(ACT_SIGMOID, 71); }
static void test_dense_tanh(void) { check_dense(ACT_TANH, 81); }
static void test_dense_softmax(void) { check_dense(ACT_SOFTMAX, 91); }

/* ------------------------------------------------------------- activations */

typedef struct {
    act_t act;
    size_t n;
    int cols;
    float *x, *y, *r;
} act_ctx_t;

static double act_obj(void *p)
{
    act_ctx_t *c = p;
    act_forward(c->y, c->x, c->n, c->cols, c->act);
    return dot_double(c->y, c->r, c->n);
}

static void test_activations(void)
{
    act_t acts[] = {ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX};
    const char *names[] = {"linear", "relu", "sigmoid", "tanh", "softmax"};
    for (int k = 0; k < 5; k++) {
        act_ctx_t c = {.act = acts[k], .n = 60, .cols = 6};
        float x[60], y[60], r[60], dx[60];
        c.x = x;
        c.y = y;
        c.r = r;
        fill_uniform(x, 60, 100 + k, -3, 3);
        fill_uniform(r, 60, 200 + k, -1, 1);
        act_obj(&c);
        act_backward(dx, r, y, 60, 6, acts[k]);
        CU_ASSERT_EQUAL(gradcheck(names[k], act_obj, &c, x, dx, 60, 60, H_STEP, ATOL, RTOL), 0);
    }
    /* values: the fast sigmoid/tanh against libm */
    float xs[2001], ys[2001];
    for (int i = 0; i < 2001; i++)
        xs[i] = (i - 1000) * 0.02f;
    act_forward(ys, xs, 2001, 1, ACT_TANH);
    double e = 0;
    for (int i = 0; i < 2001; i++)
        e = fmax(e, fabs(ys[i] - tanh(xs[i])));
    CU_ASSERT(e < 1e-6);
    act_forward(ys, xs, 2001, 1, ACT_SIGMOID);
    e = 0;
    for (int i = 0; i < 2001; i++)
        e = fmax(e, fabs(ys[i] - 1.0 / (1.0 + exp(-xs[i]))));
    CU_ASSERT(e < 1e-6);
}

/* -------------------------------------------------------------------- lstm */

typedef struct {
    lstm_dims_t d;
    lstm_buf_t buf;
    float *mem, *in, *wi, *wh, *b, *out, *r;
} lstm_ctx_t;

static size_t lstm_out_size(const lstm_dims_t *d)
{
    return (size_t)d->B * d->H * (d->return_sequences ? d->T : 1);
}

static double lstm_obj(void *p)
{
    lstm_ctx_t *c = p;
    lstm_forward(c->out, &c->buf, c->in, c->wi, c->wh, c->b, &c->d);
    return dot_double(c->out, c->r, lstm_out_size(&c->d));
}

static void check_lstm(int B, int T, int I, int H, int seq, unsigned seed)
{
    lstm_ctx_t c = {.d = {.B = B, .T = T, .In = I, .H = H, .return_sequences = seq}};
    c.mem = malloc(lstm_buf_bind(&c.buf, NULL, &c.d) * 4);
    lstm_buf_bind(&c.buf, c.mem, &c.d);
    size_t nin = (size_t)B * T * I, nwi = (size_t)4 * H * I, nwh = (size_t)4 * H * H,
           nb = 4 * (size_t)H, nout = lstm_out_size(&c.d);
    c.in = malloc(nin * 4);
    c.wi = malloc(nwi * 4);
    c.wh = malloc(nwh * 4);
    c.b = malloc(nb * 4);
    c.out = malloc(nout * 4);
    c.r = malloc(nout * 4);
    float *dwi = calloc(nwi, 4), *dwh = calloc(nwh, 4), *db = calloc(nb, 4),
          *din = malloc(nin * 4);
    fill_uniform(c.in, nin, seed, -1, 1);
    fill_uniform(c.wi, nwi, seed + 1, -0.6f, 0.6f);
    fill_uniform(c.wh, nwh, seed + 2, -0.6f, 0.6f);
    fill_uniform(c.b, nb, seed + 3, -0.5f, 0.5f);
    fill_uniform(c.r, nout, seed + 4, -1, 1);
    lstm_obj(&c);
    lstm_backward(din, dwi, dwh, db, c.r, &c.buf, c.wi, c.wh, &c.d);
    CU_ASSERT_EQUAL(gradcheck("lstm.w_ih", lstm_obj, &c, c.wi, dwi, nwi, 150, H_STEP, ATOL, RTOL), 0);
    CU_ASSERT_EQUAL(gradcheck("lstm.w_hh", lstm_obj, &c, c.wh, dwh, nwh, 150, H_STEP, ATOL, RTOL), 0);
    CU_ASSERT_EQUAL(gradcheck("lstm.bias", lstm_obj, &c, c.b, db, nb, 150, H_STEP, ATOL, RTOL), 0);
    CU_ASSERT_EQUAL(gradcheck("lstm.in", lstm_obj, &c, c.in, din, nin, 150, H_STEP, ATOL, RTOL), 0);
    free(c.mem); free(c.in); free(c.wi); free(c.wh); free(c.b); free(c.out); free(c.r);
    free(dwi); free(dwh); free(db); free(din);
}

static void test_lstm_one_step(void) { check_lstm(3, 1, 4, 5, 0, 301); }
static void test_lstm_last(void) { check_lstm(3, 6, 4, 5, 0, 311); }
static void test_lstm_sequences(void) { check_lstm(2, 5, 3, 4, 1, 321); }
static void test_lstm_batch1_long(void) { check_lstm(1, 12, 2, 3, 1, 331); }

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

static void check_model(job_config_t *cfg, int B, unsigned seed)
{
    err_t err;
    model_t *m = model_new(cfg, B, &err);
    CU_ASSERT_FATAL(m != NULL);
    size_t n = model_n_params(m), nx = (size_t)B * model_input_size(m);
    float *params = malloc(n * 4), *grads = calloc(n, 4), *x = malloc(nx * 4);
    int32_t y[8];
    CU_ASSERT_FATAL(params_init_slice(model_params(m), seed, 0, n, params, &err) == 0);
    fill_uniform(x, nx, seed, 0, 1);
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)((i * 7 + seed) % (unsigned)model_output_size(m));
    model_train_step(m, params, grads, x, y, B, 1.0f / B, NULL);
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
    job_config_t *cfg = calloc(1, sizeof *cfg);
    cfg->model.input_rank = 2;
    cfg->model.input[0] = 6;
    cfg->model.input[1] = 5;
    cfg->model.layers[0] = (layer_cfg_t){.type = LAYER_LSTM, .units = 7, .return_sequences = 1};
    cfg->model.layers[1] = (layer_cfg_t){.type = LAYER_LSTM, .units = 6, .return_sequences = 1};
    cfg->model.layers[2] = (layer_cfg_t){.type = LAYER_LSTM, .units = 5};
    cfg->model.layers[3] = (layer_cfg_t){.type = LAYER_DENSE, .units = 4, .activation = ACT_SOFTMAX};
    cfg->model.n_layers = 4;
    cfg->model.loss = LOSS_CROSS_ENTROPY;
    check_model(cfg, 3, 501);
    free(cfg);
}

static void test_model_cnn_mse(void)
{
    job_config_t *cfg = calloc(1, sizeof *cfg);
    cfg->model.input_rank = 3;
    cfg->model.input[0] = 2;
    cfg->model.input[1] = 10;
    cfg->model.input[2] = 10;
    layer_cfg_t *L = cfg->model.layers;
    L[0] = (layer_cfg_t){.type = LAYER_CONV2D, .filters = 3, .kernel = 3, .stride = 1, .padding = 1,
                         .activation = ACT_TANH};
    L[1] = (layer_cfg_t){.type = LAYER_MAXPOOL2D, .pool = 2};                   /* fused */
    L[2] = (layer_cfg_t){.type = LAYER_CONV2D, .filters = 4, .kernel = 2, .stride = 1};
    L[3] = (layer_cfg_t){.type = LAYER_SIGMOID};
    L[4] = (layer_cfg_t){.type = LAYER_MAXPOOL2D, .pool = 2, .pool_stride = 1}; /* overlapping */
    L[5] = (layer_cfg_t){.type = LAYER_FLATTEN};
    L[6] = (layer_cfg_t){.type = LAYER_DENSE, .units = 5, .activation = ACT_SIGMOID};
    cfg->model.n_layers = 7;
    cfg->model.loss = LOSS_MSE;
    check_model(cfg, 2, 511);
    free(cfg);
}

int test_layers_register(void)
{
    CU_pSuite s = CU_add_suite("layers", NULL, NULL);
    if (!s)
        return -1;
    struct { const char *name; CU_TestFunc fn; } t[] = {
        {"conv_plain", test_conv_plain},         {"conv_relu_pad", test_conv_relu_pad},
        {"conv_stride_pad", test_conv_stride_pad}, {"conv_k5_s3", test_conv_k5_s3},
        {"conv_no_din", test_conv_no_din},       {"conv_direct", test_conv_direct},
        {"convpool_relu", test_convpool_relu},   {"convpool_odd", test_convpool_odd},
        {"convpool_stride", test_convpool_stride},
        {"pool_2x2", test_pool_2x2},             {"pool_overlap", test_pool_overlap},
        {"dense_linear", test_dense_linear},     {"dense_relu", test_dense_relu},
        {"dense_sigmoid", test_dense_sigmoid},   {"dense_tanh", test_dense_tanh},
        {"dense_softmax", test_dense_softmax},   {"activations", test_activations},
        {"lstm_one_step", test_lstm_one_step},   {"lstm_last", test_lstm_last},
        {"lstm_sequences", test_lstm_sequences}, {"lstm_batch1_long", test_lstm_batch1_long},
        {"model_stacked_lstm", test_model_stacked_lstm}, {"model_cnn_mse", test_model_cnn_mse},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!CU_add_test(s, t[i].name, t[i].fn))
            return -1;
    return 0;
}
