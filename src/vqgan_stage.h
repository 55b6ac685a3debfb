/* The VQGAN stages: encoder, quantizer, decoder (taming/models/vqgan.py). */
#ifndef VQ_VQGAN_STAGE_H
#define VQ_VQGAN_STAGE_H

#include <stdint.h>
#include "model.h"

/* Encoder + quant_conv on a C×H×W input: *out (malloc'd) is embed_dim×(H/f)×(W/f). */
int vq_stage_encode(const struct vq_stage *s, const float *x, int H, int W, float **out);
/* Segmentation input given as class ids: the one-hot first convolution is a
 * per-label lookup (exact), the rest as vq_stage_encode. */
int vq_stage_encode_labels(const struct vq_stage *s, const uint8_t *ids, ptrdiff_t stride,
                           int H, int W, float **out);
/* Nearest codebook entry per position of z (embed_dim×n): argmin |z - e|²,
 * lowest index on ties. */
int vq_quantize(const struct vq_stage *s, const float *z, int n, int32_t *idx);
/* Tokens -> codebook vectors -> post_quant_conv -> decoder: *out is out_ch×(gh·f)×(gw·f). */
int vq_stage_decode(const struct vq_stage *s, const int32_t *tokens, int gw, int gh, float **out);

#endif
