/* test_init.c - Keras-style initialisers over the flat buffer: any slice
 * computed alone equals that slice of the whole buffer, bit for bit (what a
 * parameter server relies on), and the values have the promised shape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nn/model.h"
#include "common/nn/params.h"
#include "tests.h"

static job_config_t *cnn_lstm_cfg(int lstm)
{
    static const char *LSTM =
        "model = { input = [28, 28]; layers = (\n"
        "  { type = \"lstm\"; units = 64; return_sequences = true; },\n"
        "  { type = \"lstm\"; units = 32; },\n"
        "  { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n";
    static const char *CNN =
        "model = { input = [1, 28, 28]; layers = (\n"
        "  { type = \"conv2d\"; filters = 32; kernel = 3; activation = \"relu\"; },\n"
        "  { type = \"maxpool2d\"; pool = 2; },\n"
        "  { type = \"flatten\"; },\n"
        "  { type = \"dense\"; units = 10; activation = \"softmax\"; } ); };\n";
    job_config_t *c = calloc(1, sizeof *c);
    err_t err;
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    if (config_load_text(c, "test", lstm ? LSTM : CNN, NULL, 0, 0, &err) != 0)
        fprintf(stderr, "\n    %s\n", err.msg);
    CU_ASSERT_FATAL(c->model.n_layers > 0);
    return c;
}

static void check_slices(int lstm)
{
    job_config_t *cfg = cnn_lstm_cfg(lstm);
    err_t err;
    model_t *m = model_new(cfg, 1, &err);
    CU_ASSERT_FATAL(m != NULL);
    const param_table_t *t = model_params(m);
    size_t n = t->n_params;
    CU_ASSERT_EQUAL(n, lstm ? (size_t)(4 * 64 * 28 + 4 * 64 * 64 + 256 + 4 * 32 * 64 + 4 * 32 * 32 +
                                       128 + 330)
                            : (size_t)(32 * 9 + 32 + 5408 * 10 + 10));
    float *whole = malloc(n * 4), *part = malloc(n * 4);
    CU_ASSERT_FATAL(params_init_slice(t, 42, 0, n, whole, &err) == 0);
    /* slices with boundaries inside tensors, at their edges, and tiny ones */
    size_t cuts[][2] = {{0, 1}, {0, n}, {5, 300}, {n - 7, n}, {n / 3, n / 2}, {1000, 1001}};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        size_t a = cuts[k][0], b = cuts[k][1];
        memset(part, 0xff, n * 4);
        CU_ASSERT_FATAL(params_init_slice(t, 42, a, b, part, &err) == 0);
        CU_ASSERT(memcmp(part, whole + a, (b - a) * 4) == 0);
    }
    for (int i = 0; i < t->n; i++) { /* every tensor's own range */
        const param_spec_t *p = &t->t[i];
        CU_ASSERT_FATAL(params_init_slice(t, 42, p->offset, p->offset + p->size, part, &err) == 0);
        CU_ASSERT(memcmp(part, whole + p->offset, p->size * 4) == 0);
    }
    /* another seed gives other weights */
    CU_ASSERT_FATAL(params_init_slice(t, 43, 0, n, part, &err) == 0);
    CU_ASSERT(memcmp(part, whole, n * 4) != 0);
    CU_ASSERT(params_init_slice(t, 42, 3, n + 1, part, &err) == -1);
    free(whole);
    free(part);
    model_destroy(&m);
    free(cfg);
}

static void test_slice_cnn(void) { check_slices(0); }
static void test_slice_lstm(void) { check_slices(1); }

static void test_values(void)
{
    job_config_t *cfg = cnn_lstm_cfg(1);
    err_t err;
    model_t *m = model_new(cfg, 1, &err);
    CU_ASSERT_FATAL(m != NULL);
    const param_table_t *t = model_params(m);
    float *w = malloc(t->n_params * 4);
    CU_ASSERT_FATAL(params_init_slice(t, 0, 0, t->n_params, w, &err) == 0);
    /* glorot: inside the limit, mean ~0, variance ~ limit^2 / 3 */
    const param_spec_t *wi = &t->t[params_find(t, "lstm1.w_ih")];
    double lim = sqrt(6.0 / (28 + 256)), s = 0, s2 = 0, mx = 0;
    for (size_t i = 0; i < wi->size; i++) {
        double v = w[wi->offset + i];
        s += v;
        s2 += v * v;
        mx = fmax(mx, fabs(v));
    }
    CU_ASSERT(mx <= lim);
    CU_ASSERT(fabs(s / wi->size) < 0.05 * lim);
    CU_ASSERT(fabs(s2 / wi->size - lim * lim / 3) < 0.1 * lim * lim / 3);
    /* orthogonal: the 4H x H recurrent kernel has orthonormal columns */
    const param_spec_t *wh = &t->t[params_find(t, "lstm1.w_hh")];
    double worst = 0;
    for (int a = 0; a < 64; a++)
        for (int b = 0; b < 64; b++) {
            double d = 0;
            for (int r = 0; r < 256; r++)
                d += (double)w[wh->offset + r * 64 + a] * w[wh->offset + r * 64 + b];
            worst = fmax(worst, fabs(d - (a == b)));
        }
    CU_ASSERT(worst < 1e-5);
    /* LSTM bias: forget gate quarter is 1, the rest 0 */
    const param_spec_t *bb = &t->t[params_find(t, "lstm2.bias")];
    for (int j = 0; j < 128; j++)
        CU_ASSERT_EQUAL(w[bb->offset + j], (j >= 32 && j < 64) ? 1.0f : 0.0f);
    const param_spec_t *db = &t->t[params_find(t, "dense1.bias")];
    for (int j = 0; j < 10; j++)
        CU_ASSERT_EQUAL(w[db->offset + j], 0.0f);
    free(w);
    model_destroy(&m);
    free(cfg);
}

int test_init_register(void)
{
    CU_pSuite s = CU_add_suite("init", NULL, NULL);
    if (!s || !CU_add_test(s, "slice_cnn", test_slice_cnn) ||
        !CU_add_test(s, "slice_lstm", test_slice_lstm) || !CU_add_test(s, "values", test_values))
        return -1;
    return 0;
}
