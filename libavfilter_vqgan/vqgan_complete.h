/*
 * Completion (inpainting) helpers of the vqgan_synth filter (libvqgan)
 *
 * This file is part of FFmpeg.
 *
 * FFmpeg is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Lesser General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * FFmpeg is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
 * Lesser General Public License for more details.
 *
 * You should have received a copy of the GNU Lesser General Public
 * License along with FFmpeg; if not, write to the Free Software
 * Foundation, Inc., 51 Franklin Street, Fifth Floor, Boston, MA 02110-1301 USA
 */

/*
 * vqgan_synth=complete keeps a picture's first-stage tokens outside a mask and
 * lets the transformer sample only inside it. This file holds the pixel work
 * around libvqgan's vqgan_sample_masked(): the pixel mask from a gray8 plane
 * or an alpha channel, the cell mask (a cell is resampled when any of its
 * pixels is masked, grown by whole cells), the picture padded to the token
 * grid, and blend=mask with its feathered edge. Buffers are owned by a
 * VQGANCompletion and sized once per configuration.
 */

#ifndef AVFILTER_VQGAN_COMPLETE_H
#define AVFILTER_VQGAN_COMPLETE_H

#include <stddef.h>
#include <stdint.h>

/* The blend weight of a fully decoded pixel (weights are 0..VQGAN_BLEND_ONE). */
#define VQGAN_BLEND_ONE 256

typedef struct VQGANCompletion {
    int w, h;               ///< picture (and output) size
    int f, gw, gh;          ///< first-stage factor, token grid
    int pw, ph;             ///< padded picture: gw * f x gh * f

    uint8_t  *rgb;          ///< the picture, rgb24, padded to pw x ph (edges replicated)
    uint8_t  *prev_rgb;     ///< the previous frame's, to skip encoding an unchanged picture
    int       have_prev;    ///< prev_rgb and prev_given hold a frame

    uint8_t  *pmask;        ///< w x h, 1 = resynthesize this pixel
    uint8_t  *cells;        ///< gw x gh, 1 = sample this cell
    int32_t  *given;        ///< the picture's tokens (kept cells)
    int32_t  *prev_given;   ///< the previous frame's, for the statistics

    uint16_t *weights;      ///< w x h blend weights of the decoded picture
    uint8_t  *weights_mask; ///< the pmask the weights were computed for
    int       weights_feather; ///< and its feather; -1: no weights yet
} VQGANCompletion;

/**
 * Size the buffers for a w x h picture and a gw x gh grid of factor f
 * (frees what an earlier configuration held). Returns 0 or AVERROR(ENOMEM).
 */
int ff_vqgan_completion_init(VQGANCompletion *c, int w, int h, int f, int gw, int gh);

void ff_vqgan_completion_free(VQGANCompletion *c);

/**
 * Read the pixel mask into c->pmask: a pixel is resynthesized where the
 * byte at src + y * stride + x * step is non-zero (step 1: a gray8 plane;
 * step 4 with src at the alpha byte: the alpha channel of rgba).
 * Returns the number of masked pixels.
 */
int64_t ff_vqgan_completion_read_mask(VQGANCompletion *c, const uint8_t *src,
                                      ptrdiff_t stride, int step);

/**
 * Fill c->cells from c->pmask: a cell is sampled when any of its pixels
 * (within the picture) is masked, then the cell mask is grown by grow cells
 * (Chebyshev distance: a square of 2 * grow + 1 cells around each).
 * Returns the number of cells to sample.
 */
int ff_vqgan_completion_cells(VQGANCompletion *c, int grow);

/**
 * Copy the picture (bpp 3: rgb24; 4: rgba, alpha dropped) into c->rgb,
 * padded to pw x ph by replicating the right column and the bottom row.
 */
void ff_vqgan_completion_read_picture(VQGANCompletion *c, const uint8_t *src,
                                      ptrdiff_t stride, int bpp);

/**
 * blend=mask: dst = decoded where the pixel mask is set, the picture
 * (c->rgb) elsewhere; with feather > 0, pixels outside the mask within
 * feather pixels (Euclidean distance to the nearest masked pixel, d) take
 * (1 - d / (feather + 1)) of the decoded picture. Pixels farther than
 * feather from every masked pixel are the picture's, bit for bit. The
 * weights are recomputed only when the mask or feather changed.
 * Returns 0 or AVERROR(ENOMEM).
 */
int ff_vqgan_completion_blend(VQGANCompletion *c, int feather, uint8_t *dst,
                              ptrdiff_t dst_stride, const uint8_t *decoded,
                              ptrdiff_t decoded_stride);

/**
 * Number of kept cells whose given token differs from the previous frame's
 * (all kept cells when there is no previous frame).
 */
int ff_vqgan_completion_kept_changed(const VQGANCompletion *c);

#endif /* AVFILTER_VQGAN_COMPLETE_H */
