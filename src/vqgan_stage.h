/* The VQGAN stages: encoder, quantizer, decoder (taming/models/vqgan.py). */
#ifndef VQ_VQGAN_STAGE_H
#define VQ_VQGAN_STAGE_H

#include <stdint.h>
#include "backend.h"
#include "model.h"

/* Each call runs with an execution context (backend.h: the model's backend
 * and the call's threads; NULL: the default fp32 backend, every core). */

/* Encoder + quant_conv on a C×H×W input: *out (malloc'd) is embed_dim×(H/f)×(W/f). */
int vq_stage_encode(const struct vq_exec *ex, const struct vq_stage *s, const float *x, int H, int W, float **out);
/* Segmentation input given as class ids: the one-hot first convolution is a
 * per-label lookup (exact), the rest as vq_stage_encode. */
int vq_stage_encode_labels(const struct vq_exec *ex, const struct vq_stage *s, const uint8_t *ids, ptrdiff_t stride,
                           int H, int W, float **out);
/* Nearest codebook entry per position of z (embed_dim×n): argmin |z - e|²,
 * lowest index on ties. */
int vq_quantize(const struct vq_exec *ex, const struct vq_stage *s, const float *z, int n, int32_t *idx);
/* Gumbel stages: the same tokens, and the quantizer's logits (n_embed x n). */
int vq_quantize_logits(const struct vq_exec *ex, const struct vq_stage *s, const float *z, int n, int32_t *idx, float *logits);
/* Tokens -> codebook vectors -> post_quant_conv -> decoder: *out is out_ch×(gh·f)×(gw·f). */
int vq_stage_decode(const struct vq_exec *ex, const struct vq_stage *s, const int32_t *tokens, int gw, int gh, float **out);

/* Working memory: an estimate of the peak bytes one call allocates
 * (activations, im2col bands, the attention blocks' (HW)^2 floats), for an
 * encode of a width x height image (VQ_WORK_ENCODE: f32 input; VQ_WORK_LABELS:
 * label ids) or a decode of a width x height token grid (VQ_WORK_DECODE).
 * A double: the attention term of an absurd size does not fit 64 bits. */
enum { VQ_WORK_ENCODE, VQ_WORK_LABELS, VQ_WORK_DECODE };
double vq_stage_work_bytes(const struct vq_stage *s, int kind, int width, int height, double *attn_bytes);
/* VQGAN_ERR_LIMIT, with a message, when the estimate plus `extra` bytes is
 * above VQGAN_MAX_WORK_BYTES or the process's RLIMIT_AS / RLIMIT_DATA. */
int vq_stage_check_work(const struct vq_stage *s, int kind, int width, int height, double extra,
                        const char *what);

#endif
