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

#include <math.h>
#include <string.h>

#include "libavutil/error.h"
#include "libavutil/macros.h"
#include "libavutil/mem.h"

#include "vqgan_complete.h"

void ff_vqgan_completion_free(VQGANCompletion *c)
{
    av_freep(&c->rgb);
    av_freep(&c->prev_rgb);
    av_freep(&c->pmask);
    av_freep(&c->cells);
    av_freep(&c->given);
    av_freep(&c->prev_given);
    av_freep(&c->weights);
    av_freep(&c->weights_mask);
    c->have_prev       = 0;
    c->weights_feather = -1;
}

int ff_vqgan_completion_init(VQGANCompletion *c, int w, int h, int f, int gw, int gh)
{
    const size_t npix = (size_t)w * h, ncell = (size_t)gw * gh;

    ff_vqgan_completion_free(c);
    c->w  = w;
    c->h  = h;
    c->f  = f;
    c->gw = gw;
    c->gh = gh;
    c->pw = gw * f;
    c->ph = gh * f;
    c->rgb          = av_malloc((size_t)c->pw * c->ph * 3);
    c->prev_rgb     = av_malloc((size_t)c->pw * c->ph * 3);
    c->pmask        = av_malloc(npix);
    c->cells        = av_malloc(ncell);
    c->given        = av_malloc_array(ncell, sizeof(*c->given));
    c->prev_given   = av_malloc_array(ncell, sizeof(*c->prev_given));
    c->weights      = av_malloc_array(npix, sizeof(*c->weights));
    c->weights_mask = av_malloc(npix);
    if (!c->rgb || !c->prev_rgb || !c->pmask || !c->cells || !c->given ||
        !c->prev_given || !c->weights || !c->weights_mask) {
        ff_vqgan_completion_free(c);
        return AVERROR(ENOMEM);
    }
    return 0;
}

int64_t ff_vqgan_completion_read_mask(VQGANCompletion *c, const uint8_t *src,
                                      ptrdiff_t stride, int step)
{
    int64_t n = 0;

    for (int y = 0; y < c->h; y++) {
        const uint8_t *row = src + y * stride;
        uint8_t *dst = c->pmask + (size_t)y * c->w;
        for (int x = 0; x < c->w; x++) {
            dst[x] = row[x * step] != 0;
            n += dst[x];
        }
    }
    return n;
}

/* Dilate a 0/1 line of n values by r (any set value within r): prefix counts. */
static void dilate_line(uint8_t *line, ptrdiff_t step, int n, int r, int *sum)
{
    sum[0] = 0;
    for (int i = 0; i < n; i++)
        sum[i + 1] = sum[i] + line[i * step];
    for (int i = 0; i < n; i++)
        line[i * step] = sum[FFMIN(n, i + r + 1)] - sum[FFMAX(0, i - r)] > 0;
}

int ff_vqgan_completion_cells(VQGANCompletion *c, int grow)
{
    int n = 0;

    memset(c->cells, 0, (size_t)c->gw * c->gh);
    for (int y = 0; y < c->h; y++) {
        const uint8_t *row = c->pmask + (size_t)y * c->w;
        uint8_t *cells = c->cells + (size_t)(y / c->f) * c->gw;
        for (int x = 0; x < c->w; x++)
            cells[x / c->f] |= row[x];
    }
    if (grow > 0) {
        int *sum = av_malloc_array(FFMAX(c->gw, c->gh) + 1, sizeof(*sum));
        if (!sum)
            return AVERROR(ENOMEM);
        for (int i = 0; i < c->gh; i++)
            dilate_line(c->cells + (size_t)i * c->gw, 1, c->gw, grow, sum);
        for (int j = 0; j < c->gw; j++)
            dilate_line(c->cells + j, c->gw, c->gh, grow, sum);
        av_free(sum);
    }
    for (size_t i = 0; i < (size_t)c->gw * c->gh; i++)
        n += c->cells[i];
    return n;
}

void ff_vqgan_completion_read_picture(VQGANCompletion *c, const uint8_t *src,
                                      ptrdiff_t stride, int bpp)
{
    const ptrdiff_t ds = (ptrdiff_t)c->pw * 3;

    for (int y = 0; y < c->h; y++) {
        const uint8_t *s = src + y * stride;
        uint8_t *d = c->rgb + y * ds;
        if (bpp == 3) {
            memcpy(d, s, (size_t)c->w * 3);
        } else {
            for (int x = 0; x < c->w; x++) {
                d[3 * x + 0] = s[bpp * x + 0];
                d[3 * x + 1] = s[bpp * x + 1];
                d[3 * x + 2] = s[bpp * x + 2];
            }
        }
        for (int x = c->w; x < c->pw; x++)
            memcpy(d + 3 * x, d + 3 * (c->w - 1), 3);
    }
    for (int y = c->h; y < c->ph; y++)
        memcpy(c->rgb + y * ds, c->rgb + (c->h - 1) * ds, ds);
}

/* Squared Euclidean distance transform of one line (Felzenszwalb and
 * Huttenlocher's lower envelope of parabolas): d[q] = min_p (q - p)^2 + f[p]. */
static void edt_line(const double *f, int n, double *d, int *v, double *z)
{
    int k = 0;

    v[0] = 0;
    z[0] = -HUGE_VAL;
    z[1] = HUGE_VAL;
    for (int q = 1; q < n; q++) {
        double s;
        /* z[0] is -infinity: the loop stops at k = 0 at the latest. */
        for (;;) {
            const int p = v[k];
            s = ((f[q] + (double)q * q) - (f[p] + (double)p * p)) / (2.0 * q - 2.0 * p);
            if (s > z[k])
                break;
            k--;
        }
        k++;
        v[k] = q;
        z[k] = s;
        z[k + 1] = HUGE_VAL;
    }
    k = 0;
    for (int q = 0; q < n; q++) {
        while (z[k + 1] < q)
            k++;
        d[q] = (double)(q - v[k]) * (q - v[k]) + f[v[k]];
    }
}

/* Weights of the decoded picture: VQGAN_BLEND_ONE inside the mask, a linear
 * ramp to 0 over feather pixels outside it, 0 beyond. */
static int compute_weights(VQGANCompletion *c, int feather)
{
    const int w = c->w, h = c->h, n = FFMAX(w, h);
    /* Larger than any squared distance within the picture. */
    const double far = 4.0 * ((double)w * w + (double)h * h) + 1.0;
    double *dist = NULL, *f = NULL, *d = NULL, *z = NULL;
    int *v = NULL;

    if (feather <= 0) {
        for (size_t i = 0; i < (size_t)w * h; i++)
            c->weights[i] = c->pmask[i] ? VQGAN_BLEND_ONE : 0;
        return 0;
    }

    dist = av_malloc_array((size_t)w * h, sizeof(*dist));
    f    = av_malloc_array(n, sizeof(*f));
    d    = av_malloc_array(n, sizeof(*d));
    z    = av_malloc_array(n + 1, sizeof(*z));
    v    = av_malloc_array(n, sizeof(*v));
    if (!dist || !f || !d || !z || !v) {
        av_free(dist); av_free(f); av_free(d); av_free(z); av_free(v);
        return AVERROR(ENOMEM);
    }
    /* Columns, then rows. */
    for (int x = 0; x < w; x++) {
        for (int y = 0; y < h; y++)
            f[y] = c->pmask[(size_t)y * w + x] ? 0.0 : far;
        edt_line(f, h, d, v, z);
        for (int y = 0; y < h; y++)
            dist[(size_t)y * w + x] = d[y];
    }
    for (int y = 0; y < h; y++) {
        double *row = dist + (size_t)y * w;
        memcpy(f, row, w * sizeof(*f));
        edt_line(f, w, row, v, z);
    }
    for (size_t i = 0; i < (size_t)w * h; i++) {
        if (c->pmask[i]) {
            c->weights[i] = VQGAN_BLEND_ONE;
        } else {
            const double r = sqrt(dist[i]);
            c->weights[i] = r <= feather ?
                lrint(VQGAN_BLEND_ONE * (1.0 - r / (feather + 1.0))) : 0;
        }
    }
    av_free(dist); av_free(f); av_free(d); av_free(z); av_free(v);
    return 0;
}

int ff_vqgan_completion_blend(VQGANCompletion *c, int feather, uint8_t *dst,
                              ptrdiff_t dst_stride, const uint8_t *decoded,
                              ptrdiff_t decoded_stride)
{
    const ptrdiff_t ps = (ptrdiff_t)c->pw * 3;

    if (c->weights_feather != feather ||
        memcmp(c->weights_mask, c->pmask, (size_t)c->w * c->h)) {
        int ret = compute_weights(c, feather);
        if (ret < 0) {
            c->weights_feather = -1;
            return ret;
        }
        memcpy(c->weights_mask, c->pmask, (size_t)c->w * c->h);
        c->weights_feather = feather;
    }
    for (int y = 0; y < c->h; y++) {
        const uint16_t *wt = c->weights + (size_t)y * c->w;
        const uint8_t *a = decoded + y * decoded_stride;
        const uint8_t *b = c->rgb + y * ps;
        uint8_t *o = dst + y * dst_stride;
        for (int x = 0; x < c->w; x++) {
            const int k = wt[x];
            for (int ch = 0; ch < 3; ch++) {
                const int i = 3 * x + ch;
                o[i] = k == 0               ? b[i] :
                       k == VQGAN_BLEND_ONE ? a[i] :
                       (a[i] * k + b[i] * (VQGAN_BLEND_ONE - k) + VQGAN_BLEND_ONE / 2) / VQGAN_BLEND_ONE;
            }
        }
    }
    return 0;
}

int ff_vqgan_completion_kept_changed(const VQGANCompletion *c)
{
    int n = 0;

    for (size_t i = 0; i < (size_t)c->gw * c->gh; i++)
        n += !c->cells[i] && (!c->have_prev || c->given[i] != c->prev_given[i]);
    return n;
}
