/* test_loss.c - cross-entropy (with the softmax it fuses) and MSE, through
 * their registered descriptors: values by hand and gradients by finite
 * differences. */
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "common/nn/loss.h"
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

int test_loss_register(void)
{
    CU_pSuite s = CU_add_suite("loss", NULL, NULL);
    if (!s || !CU_add_test(s, "xent_values", test_xent_values) || !CU_add_test(s, "grads", test_grads))
        return -1;
    return 0;
}
