/* onnx.h - exports a trained model as an ONNX file (IR version 8, opset 13 of
 * the default domain) that any ONNX runtime serves without pstrain.
 *
 * Serving contract of the written graph:
 *   input  "input"          float32 [N,C,H,W] (CNN, from model.input) or
 *                           [N,T,F] (LSTM), pixels scaled to [0,1]; N is
 *                           symbolic (dim_param "N"), any batch size works
 *   output "probabilities"  float32 [N,classes], what model_predict returns
 *                           (ends in the activation of model_output_act)
 * A model with embedding tables (model.sparse) takes "num" float32 [N,D] and
 * "ids" int64 [N,F] instead (ids reduced to their tables), its tables in the
 * graph or, past ONNX_EXTERNAL_OVER bytes, in PATH.data: export/onnx_tables.h.
 * The training normalisation of the checkpoint (NORM section), if any, is in
 * the graph: (input - mean) * inv_std with initializers shaped like one
 * sample. metadata_props: "classes" (JSON list of the class names, index =
 * class), "num_classes", "pstrain_version", "name" (the job), "input"
 * (layout and scaling), "normalization" (none, global or per_pixel).
 *
 * Each layer adds its own nodes (its kind's emit, in common/nn/<kind>.c,
 * through the builder of export/onnx_graph.h). The kinds map onto ONNX
 * operators as follows (layouts in each kind's file):
 *   conv2d     Conv (kernel_shape, strides, pads) + activation
 *   maxpool2d  MaxPool (kernel_shape, strides; floor, no padding)
 *   avgpool2d  AveragePool (kernel_shape, strides; floor, no padding)
 *   global_avgpool2d  GlobalAveragePool + Flatten axis 1
 *   flatten    Flatten axis 1 (NCHW, C order, as ours)
 *   dense      Gemm transB=1 (weight [O][In]) + activation
 *   lstm       Transpose to time-major, LSTM (gate blocks permuted from our
 *              i, f, g, o to ONNX's i, o, f, c; our one bias as Wb, Rb = 0),
 *              then Squeeze + Transpose back (return_sequences) or Squeeze
 *              of Y_h (last step)
 *   dropout    nothing (the identity at inference)
 *   relu, sigmoid, tanh  Relu, Sigmoid, Tanh
 *   softmax    Softmax over each sample's whole output, as the layer does
 *              (Flatten + Softmax + Reshape when the sample is not flat)
 * and the activation the loss applied in training (model_output_act) ends
 * the graph, as it ends model_predict.
 */
#ifndef PST_ONNX_H
#define PST_ONNX_H

#include <stdint.h>

#include "common/util/err.h"
#include "export/trained.h"

/* Writes t's model as an ONNX file at path, atomically (fs_write_atomic: an
 * old file there stays whole until the new one is complete); producer_version
 * goes into producer_version and the "pstrain_version" metadata. Returns 0,
 * or -1 with err naming the path and what failed (out of memory, a layer
 * that cannot be expressed, the write). */
int onnx_export(const trained_t *t, const char *path, const char *producer_version, err_t *err);

/* Initializer bytes past which onnx_export keeps a sparse model's tables in
 * an external data file: what stays under protobuf's 2 GiB for one file. */
#define ONNX_EXTERNAL_OVER (((uint64_t)1 << 31) - ((uint64_t)64 << 20))

/* As onnx_export, with the threshold: a sparse model whose file would take
 * more than external_over bytes keeps its tables in PATH.data (ONNX's
 * external data, export/onnx_tables.h). */
int onnx_export_with(const trained_t *t, const char *path, const char *producer_version,
                     uint64_t external_over, err_t *err);

#endif
