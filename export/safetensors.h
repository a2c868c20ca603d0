/* safetensors.h - writes a trained model's parameters as a safetensors file
 * (the Hugging Face format that PyTorch, JAX and the Rust crate load with
 * safetensors.torch.load_file and friends), so the weights leave pstrain
 * without a converter.
 *
 * Layout: uint64 little-endian N; N bytes of a JSON header (UTF-8, starting
 * with '{', padded with spaces to a multiple of 8); the data area. The header
 * maps each tensor name to {"dtype":"F32","shape":[...],"data_offsets":[b,e]}
 * (byte offsets into the data area) and "__metadata__" to a string->string
 * map. The tensors are the checkpoint's, named as there ("conv1.weight"), in
 * table order, little-endian float32, end to end; when the checkpoint holds
 * the input normalisation (NORM section), "input.norm_mean" and
 * "input.norm_inv_std" [dim] follow: a consumer computes
 * (pixel / 255 - norm_mean) * norm_inv_std before the first layer. A model
 * with embedding tables (model.sparse) ends with each field's table,
 * "tables.F" [rows_F, dim] (F = 0 .. fields - 1, the field C(F+1) of a
 * Criteo line; rows_F its table size, ids reduced % rows_F), streamed from
 * the row files (export/tables.h) in bounded memory; offsets are 64-bit, so
 * the file may exceed 4 GiB. The model takes the 13 dense features then the
 * fields' rows (tables.F[id_F]) in field order.
 *
 * __metadata__: "format": "pt", "producer": "pstrain", "checkpoint_version"
 * (the checkpoint format read, CHECKPOINT_VERSION), "name" (the job's config
 * name), "step", "epoch", "normalize" ("none", "global", "per_pixel"),
 * "classes" (the class names as a JSON array in a string) and "config" (the job's
 * config text as trained).
 */
#ifndef PST_SAFETENSORS_H
#define PST_SAFETENSORS_H

#include "common/util/err.h"
#include "export/trained.h"

/* Tensor names of the normalisation statistics. */
#define SAFETENSORS_NORM_MEAN "input.norm_mean"
#define SAFETENSORS_NORM_INV_STD "input.norm_inv_std"
/* Tensor names of the embedding tables: this prefix and the field number. */
#define SAFETENSORS_TABLE_PREFIX "tables."

/* Writes t's parameters at path in the safetensors layout, atomically
 * (fs_write_atomic: an old file stays whole until the new one is complete).
 * Returns 0, or -1 with err naming path (unwritable path, out of memory, a
 * checkpoint tensor named like the normalisation tensors, "__metadata__" or
 * a table);
 * on error no temporary file is left. */
int safetensors_export(const trained_t *t, const char *path, err_t *err);

#endif
