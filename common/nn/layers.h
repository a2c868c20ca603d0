/* layers.h - the layers of pstrain: forward and backward over a whole batch.
 *
 * In the manner of llm.c: plain functions over float arrays, outputs and
 * scratch first, then inputs, then dimensions. Every backward ACCUMULATES
 * into parameter gradients (+=) and OVERWRITES the input gradient; passing
 * NULL for the input gradient skips its computation (the first layer needs
 * none). GEMMs go through cblas_sgemm; no GEMM runs inside a per-sample loop.
 *
 * Layouts (row-major):
 *   images   NCHW              conv weight [F][C][K][K], bias [F]
 *   dense    in [B][In], out [B][O], weight [O][In] (PyTorch's), bias [O]
 *   lstm     in [B][T][In] (batch first), out [B][T][H] with return_sequences
 *            or [B][H] (last step) without; weights w_ih [4H][In], w_hh [4H][H],
 *            one bias [4H].
 *
 * LSTM gate order is i, f, g, o (input, forget, cell candidate, output), the
 * order of PyTorch (whose two biases b_ih + b_hh add up to our one bias) and
 * of Keras (i, f, c, o; Keras kernels are our weights transposed). ONNX's LSTM
 * operator wants i, o, f, c: the exporter permutes the four H-row blocks of
 * w_ih, w_hh and the bias as (0, 3, 1, 2) and gives R's bias as zeros.
 *   i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
 *   c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t),  h_0 = c_0 = 0
 *   a = x_t w_ih^T + h_{t-1} w_hh^T + bias
 */
#ifndef PST_LAYERS_H
#define PST_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/config/config.h" /* act_t */

/* ---- activations (elementwise; softmax over rows of n_cols) ---- */

/* y = act(x); x and y may alias. Softmax normalises each row of n_cols. */
void act_forward(float *y, const float *x, size_t n, int n_cols, act_t act);
/* dx = dy * act'(x), written from the activation's OUTPUT y (all of relu,
 * sigmoid, tanh, softmax have derivatives expressible through y); dx and dy
 * may alias. */
void act_backward(float *dx, const float *dy, const float *y, size_t n, int n_cols, act_t act);

/* ---- conv2d ---- */

typedef struct {
    int B, C, H, W;   /* input */
    int F, K, stride, pad;
    int OH, OW;       /* output: (H + 2 pad - K) / stride + 1 */
} conv_dims_t;

/* Fills OH, OW; returns 0, or -1 when the kernel does not fit. */
int conv_dims_fill(conv_dims_t *d);
/* Floats of the col scratch: C*K*K x B*OH*OW. */
size_t conv_col_size(const conv_dims_t *d);
/* Floats of the tmp scratch: F x B*OH*OW. */
size_t conv_tmp_size(const conv_dims_t *d);

/* out [B][F][OH][OW] = act(conv(in [B][C][H][W], w) + b).
 * col (conv_col_size) keeps im2col(in) for the backward pass; tmp
 * (conv_tmp_size) is scratch. One GEMM: tmp[F][B*P] = w[F][CKK] col[CKK][B*P]. */
void conv2d_forward(float *out, float *col, float *tmp, const float *in, const float *w,
                    const float *b, const conv_dims_t *d, act_t act);
/* From dout [B][F][OH][OW] (overwritten: it becomes the pre-activation
 * gradient) and the forward's out and col: dw += , db += , din = (if not
 * NULL). tmp as in forward. When din is asked for, col is reused as scratch
 * for its gradient and no longer holds im2col(in) afterwards. */
void conv2d_backward(float *din, float *dw, float *db, float *dout, float *tmp, float *col,
                     const float *out, const float *w, const conv_dims_t *d, act_t act);

/* ---- maxpool2d ---- */

typedef struct {
    int B, C, H, W;
    int pool, stride;
    int OH, OW;       /* (H - pool) / stride + 1 (floor, like Keras 'valid') */
} pool_dims_t;

int pool_dims_fill(pool_dims_t *d);

/* out [B][C][OH][OW] = max over each window; argmax[i] keeps the input index
 * (within the sample's channel plane) of each output's maximum. */
void maxpool2d_forward(float *out, int32_t *argmax, const float *in, const pool_dims_t *d);
/* din (zeroed then scattered) from dout and argmax. */
void maxpool2d_backward(float *din, const float *dout, const int32_t *argmax, const pool_dims_t *d);

/* ---- conv2d + activation + maxpool, fused ----
 *
 * The pattern conv2d (relu or linear) -> maxpool2d with windows that tile
 * the plane (stride == pool) is most of a CNN's time, all of it in passes
 * over the largest tensor of the network. This kernel computes it without
 * ever writing the conv output in NCHW: the GEMM writes channels-last
 * [B*OH*OW][F], where the pool is a plain vector max over F, and only the
 * pooled (4x smaller) tensor is transposed to NCHW. Since relu and +bias are
 * monotonic, relu(max(x) + b) = max(relu(x + b)) bit for bit, so the bias and
 * ReLU are applied once per pooled value. Same results as conv2d_forward
 * followed by maxpool2d_forward (up to the GEMM's summation order). */

typedef struct {
    conv_dims_t c;    /* the convolution (B, C, H, W, F, K, stride, pad; OH, OW) */
    int pool;         /* window and stride, 1..15 */
    int PH, PW;       /* OH / pool, OW / pool */
} convpool_dims_t;

/* Fills c.OH/OW and PH/PW; returns 0 or -1 when something does not fit. */
int convpool_dims_fill(convpool_dims_t *d);
/* Floats of the tmp scratch (B*OH*OW x F) and of the pn scratch
 * (B*PH*PW x F); bytes of code (B*PH*PW*F). col is conv_col_size(&d->c). */
size_t convpool_tmp_size(const convpool_dims_t *d);
size_t convpool_pooled_size(const convpool_dims_t *d);

/* out [B][F][PH][PW] = maxpool(act(conv(in) + b)); code keeps, per pooled
 * value, the window position (row-major, first maximum) it came from; col
 * keeps im2col(in) for the backward pass. */
void conv2d_pool_forward(float *out, uint8_t *code, float *col, float *tmp, float *pn,
                         const float *in, const float *w, const float *b,
                         const convpool_dims_t *d, act_t act);
/* From dout [B][F][PH][PW] and the forward's out, code and col: dw +=, db +=,
 * din = (if not NULL; col is then reused as scratch). */
void conv2d_pool_backward(float *din, float *dw, float *db, const float *dout, const float *out,
                          const uint8_t *code, float *col, float *tmp, float *pn, const float *w,
                          const convpool_dims_t *d, act_t act);

/* ---- dense ---- */

/* out [B][O] = act(in [B][In] w^T + b). */
void dense_forward(float *out, const float *in, const float *w, const float *b, int B, int In,
                   int O, act_t act);
/* dout [B][O] is overwritten with the pre-activation gradient;
 * dw [O][In] +=, db [O] +=, din [B][In] = (if not NULL). */
void dense_backward(float *din, float *dw, float *db, float *dout, const float *out,
                    const float *in, const float *w, int B, int In, int O, act_t act);

/* ---- lstm ---- */

typedef struct {
    int B, T, In, H;
    int return_sequences;
} lstm_dims_t;

/* Buffers an LSTM keeps from forward to backward, and its scratch. Sizes in
 * floats (lstm_buf_sizes gives them); the model allocates them once. */
typedef struct {
    float *x_tm;    /* [T][B][In]   input, time-major */
    float *gates;   /* [T][B][4H]  activated gates i, f, g, o */
    float *h;       /* [T+1][B][H] h[0] = 0 */
    float *c;       /* [T+1][B][H] c[0] = 0 */
    float *tanh_c;  /* [T][B][H] */
    float *dgates;  /* [T][B][4H]  backward scratch */
    float *dh;      /* [B][H]      backward scratch */
    float *dc;      /* [B][H]      backward scratch */
    float *dx_tm;   /* [T][B][In]   backward scratch */
} lstm_buf_t;

/* Writes the number of floats of each buffer, in the order of lstm_buf_t. */
void lstm_buf_sizes(const lstm_dims_t *d, size_t sizes[9]);

/* Points the buffers of b into mem, one after the other. With mem NULL only
 * counts. Returns the number of floats they take. */
size_t lstm_buf_bind(lstm_buf_t *b, float *mem, const lstm_dims_t *d);

/* out = [B][T][H] (return_sequences) or [B][H] (last h). One GEMM computes
 * the input projection of all steps (x_tm [T*B][In] w_ih^T); each step adds
 * h_{t-1} w_hh^T for the four gates at once. */
void lstm_forward(float *out, const lstm_buf_t *buf, const float *in, const float *w_ih,
                  const float *w_hh, const float *bias, const lstm_dims_t *d);
/* Full BPTT from dout (shape as out): dw_ih, dw_hh, dbias +=; din [B][T][In]
 * = (if not NULL). */
void lstm_backward(float *din, float *dw_ih, float *dw_hh, float *dbias, const float *dout,
                   const lstm_buf_t *buf, const float *w_ih, const float *w_hh,
                   const lstm_dims_t *d);

#endif
