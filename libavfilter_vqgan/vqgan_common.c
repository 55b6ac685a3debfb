/*
 * Shared helpers of the vqgan_encode and vqgan_synth filters (libvqgan)
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

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "libavutil/avstring.h"
#include "libavutil/error.h"
#include "libavutil/macros.h"
#include "libavutil/log.h"
#include "libavutil/intfloat.h"
#include "libavutil/intreadwrite.h"
#include "libavutil/pixdesc.h"
#include "libavutil/pixfmt.h"
#include "libavutil/thread.h"
#include "libavutil/time.h"

#include "vqgan_common.h"

static const AVClass vqgan_log_class = {
    .class_name = "libvqgan",
    .item_name  = av_default_item_name,
    .version    = LIBAVUTIL_VERSION_INT,
};
static const AVClass *const vqgan_log_ctx = &vqgan_log_class;

static void vqgan_log_callback_av(void *opaque, int level, const char *msg)
{
    static const int levels[] = {
        [VQGAN_LOG_ERROR]   = AV_LOG_ERROR,
        [VQGAN_LOG_WARNING] = AV_LOG_WARNING,
        [VQGAN_LOG_INFO]    = AV_LOG_INFO,
        [VQGAN_LOG_VERBOSE] = AV_LOG_VERBOSE,
        [VQGAN_LOG_DEBUG]   = AV_LOG_DEBUG,
    };
    int av_level = level >= 0 && level < (int)FF_ARRAY_ELEMS(levels) ? levels[level] : AV_LOG_DEBUG;
    size_t len = msg ? strlen(msg) : 0;

    if (!len)
        return;
    av_log((void *)&vqgan_log_ctx, av_level, "%s%s", msg, msg[len - 1] == '\n' ? "" : "\n");
}

static void vqgan_log_setup(void)
{
    vqgan_set_log_callback(vqgan_log_callback_av, NULL);
}

void ff_vqgan_log_init(void)
{
    static AVOnce once = AV_ONCE_INIT;
    ff_thread_once(&once, vqgan_log_setup);
}

int ff_vqgan_averror(int status)
{
    switch (status) {
    case VQGAN_OK:              return 0;
    case VQGAN_ERR_IO:          return AVERROR(EIO);
    case VQGAN_ERR_FORMAT:      return AVERROR_INVALIDDATA;
    case VQGAN_ERR_INVALID:     return AVERROR(EINVAL);
    case VQGAN_ERR_NOMEM:       return AVERROR(ENOMEM);
    case VQGAN_ERR_UNSUPPORTED: return AVERROR(ENOSYS);
    case VQGAN_ERR_LIMIT:       return AVERROR(ERANGE);
    case VQGAN_ERR_CANCELLED:   return AVERROR_EXIT;
    default:                    return AVERROR_EXTERNAL;
    }
}

const char *ff_vqgan_cond_name(int cond_kind)
{
    switch (cond_kind) {
    case VQGAN_COND_NONE:         return "none (tokenizer only)";
    case VQGAN_COND_SEGMENTATION: return "segmentation";
    case VQGAN_COND_CLASS:        return "class";
    case VQGAN_COND_SOS:          return "unconditional";
    case VQGAN_COND_DEPTH:        return "depth";
    case VQGAN_COND_COORD:        return "coordinates";
    default:                      return "unknown";
    }
}

int ff_vqgan_model_check_path(void *log_ctx, const char *path)
{
    struct stat st;
    int ret;

    if (!path || !*path) {
        av_log(log_ctx, AV_LOG_ERROR, "No model file given: set the model option "
               "to a libvqgan model file (.gguf).\n");
        return AVERROR(EINVAL);
    }
    if (stat(path, &st) < 0) {
        ret = AVERROR(errno);
        av_log(log_ctx, AV_LOG_ERROR, "Cannot open model file '%s': %s.\n",
               path, av_err2str(ret));
        return ret;
    }
    if (S_ISDIR(st.st_mode)) {
        av_log(log_ctx, AV_LOG_ERROR, "Model path '%s' is a directory; "
               "the model option takes a model file (.gguf).\n", path);
        return AVERROR(EISDIR);
    }
    return 0;
}

int ff_vqgan_model_open(void *log_ctx, const char *path, int precision,
                        struct vqgan_model **model, struct vqgan_model_info *info)
{
    struct vqgan_model_params params = vqgan_model_default_params();
    int ret;

    ff_vqgan_log_init();

    ret = ff_vqgan_model_check_path(log_ctx, path);
    if (ret < 0)
        return ret;

    params.precision = precision;
    ret = vqgan_model_acquire(path, &params, model);
    if (ret < 0) {
        av_log(log_ctx, AV_LOG_ERROR, "Cannot load model file '%s': %s (%s).\n",
               path, vqgan_last_error(), vqgan_status_string(ret));
        *model = NULL;
        return ff_vqgan_averror(ret);
    }
    ret = vqgan_model_get_info(*model, info);
    if (ret < 0) {
        av_log(log_ctx, AV_LOG_ERROR, "Cannot read the description of model '%s': %s.\n",
               path, vqgan_last_error());
        vqgan_model_unref(*model);
        *model = NULL;
        return ff_vqgan_averror(ret);
    }

    av_log(log_ctx, AV_LOG_INFO, "Model '%s' (%s, identity %016"PRIx64"): "
           "image tokenizer %s (factor %d, %d codes), condition %s, transformer %s; "
           "%d model(s) in the shared cache.\n",
           path, info->name, info->identity,
           info->has_first_stage ? "yes" : "no", info->factor, info->image_codes,
           ff_vqgan_cond_name(info->cond_kind),
           info->has_transformer ? "yes" : "no", vqgan_model_cache_count());
    return 0;
}

int ff_vqgan_session_new(void *log_ctx, struct vqgan_model *model,
                         const struct vqgan_session_params *params,
                         struct vqgan_session **session)
{
    int ret = vqgan_session_new(model, params, session);
    if (ret < 0) {
        av_log(log_ctx, AV_LOG_ERROR, "Cannot create a libvqgan session: %s (%s).\n",
               vqgan_last_error(), vqgan_status_string(ret));
        *session = NULL;
        return ff_vqgan_averror(ret);
    }
    return 0;
}

static int parse_label(const char *s, char **end, long *val)
{
    errno = 0;
    *val = strtol(s, end, 10);
    return *end != s && !errno;
}

int ff_vqgan_parse_label_map(void *log_ctx, const char *spec, int n_labels,
                             uint8_t lut[256])
{
    const char *p = spec;

    for (int i = 0; i < 256; i++)
        lut[i] = i;
    if (!spec)
        return 0;

    while (*p) {
        char *end;
        long src, dst;

        p += strspn(p, ", |");
        if (!*p)
            break;
        if (!parse_label(p, &end, &src) || *end != '=' ||
            !parse_label(end + 1, &end, &dst) || (*end && !strchr(", |", *end))) {
            av_log(log_ctx, AV_LOG_ERROR, "Invalid map entry at '%s' in '%s': "
                   "expected src=dst pairs such as \"255=0|12=3\".\n", p, spec);
            return AVERROR(EINVAL);
        }
        if (src < 0 || src > 255) {
            av_log(log_ctx, AV_LOG_ERROR, "map: source label %ld is out of range: "
                   "gray8 labels are 0..255.\n", src);
            return AVERROR(EINVAL);
        }
        if (dst < 0 || dst >= n_labels) {
            av_log(log_ctx, AV_LOG_ERROR, "map: target label %ld (for %ld) is outside "
                   "the model's label range 0..%d.\n", dst, src, n_labels - 1);
            return AVERROR(EINVAL);
        }
        lut[src] = dst;
        p = end;
    }
    return 0;
}

int ff_vqgan_prepare_labels(void *log_ctx, const AVFrame *in, const uint8_t lut[256],
                            int n_labels, uint8_t *dst, ptrdiff_t dst_stride,
                            int pw, int ph)
{
    const int w = in->width, h = in->height;

    for (int y = 0; y < h; y++) {
        const uint8_t *src = in->data[0] + y * in->linesize[0];
        uint8_t *row = dst + y * dst_stride;

        for (int x = 0; x < w; x++) {
            int id = lut[src[x]];
            if (id >= n_labels) {
                av_log(log_ctx, AV_LOG_ERROR, "Label id %d at (%d,%d) is not known to "
                       "the model: accepted range 0..%d. Remap it with the map option, "
                       "e.g. map=%d=0.\n", src[x], x, y, n_labels - 1, src[x]);
                return AVERROR(EINVAL);
            }
            row[x] = id;
        }
        memset(row + w, row[w - 1], pw - w);
    }
    for (int y = h; y < ph; y++)
        memcpy(dst + y * dst_stride, dst + (h - 1) * dst_stride, pw);
    return 0;
}

void ff_vqgan_copy_padded(uint8_t *dst, ptrdiff_t dst_stride,
                          const uint8_t *src, ptrdiff_t src_stride,
                          int w, int h, int pw, int ph, int bpp)
{
    for (int y = 0; y < h; y++) {
        uint8_t *row = dst + y * dst_stride;
        memcpy(row, src + y * src_stride, (size_t)w * bpp);
        for (int x = w; x < pw; x++)
            memcpy(row + x * bpp, row + (w - 1) * bpp, bpp);
    }
    for (int y = h; y < ph; y++)
        memcpy(dst + y * dst_stride, dst + (h - 1) * dst_stride, (size_t)pw * bpp);
}

int ff_vqgan_progress(void *opaque, int64_t done, int64_t total)
{
    VQGANProgress *p = opaque;
    int64_t now = av_gettime_relative();

    if (now - p->last_report >= 2000000 && total > 0) {
        av_log(p->log_ctx, AV_LOG_VERBOSE, "frame %"PRId64": %"PRId64"/%"PRId64
               " tokens (%.0f%%)\n", p->frame, done, total, 100.0 * done / total);
        p->last_report = now;
    }
    return 0;
}

int ff_vqgan_is_depth_format(int format)
{
    /* both byte orders: in sample mode vqgan_synth takes any format as it
     * comes (16-bit PNGs decode to gray16be) */
    return format == AV_PIX_FMT_GRAY8 || format == AV_PIX_FMT_GRAY16LE || format == AV_PIX_FMT_GRAY16BE ||
           format == AV_PIX_FMT_GRAYF32LE || format == AV_PIX_FMT_GRAYF32BE;
}

int ff_vqgan_parse_depth_range(void *log_ctx, const char *spec, float *lo, float *hi)
{
    char *end;
    double a, b;

    *lo = *hi = 0.0f;
    if (!spec || !*spec)
        return 0;
    a = strtod(spec, &end);
    /* LO|HI as well: a ':' must be escaped twice inside a filter graph */
    if (end == spec || (*end != ':' && *end != '|'))
        goto bad;
    b = strtod(end + 1, &end);
    if (*end || !isfinite(a) || !isfinite(b) || !(a < b) || fabs(a) > 3e38 || fabs(b) > 3e38)
        goto bad;
    *lo = (float)a;
    *hi = (float)b;
    if (!(*lo < *hi))
        goto bad;
    return 0;
bad:
    av_log(log_ctx, AV_LOG_ERROR, "depth_range='%s' is invalid: it takes LO:HI (or LO|HI), two finite "
           "numbers in the input's units with LO < HI (e.g. 0|65535 for gray16).\n", spec);
    return AVERROR(EINVAL);
}

int ff_vqgan_prepare_depth(void *log_ctx, const AVFrame *in, float lo, float hi, int invert,
                           float *dst, int pw, int ph)
{
    const int w = in->width, h = in->height;
    int ret;

    for (int y = 0; y < ph; y++) {
        const uint8_t *row = in->data[0] + (ptrdiff_t)FFMIN(y, h - 1) * in->linesize[0];
        float *d = dst + (size_t)y * pw;
        for (int x = 0; x < pw; x++) {
            const int sx = FFMIN(x, w - 1);
            switch (in->format) {
            case AV_PIX_FMT_GRAY8:     d[x] = row[sx]; break;
            case AV_PIX_FMT_GRAY16LE:  d[x] = AV_RL16(row + 2 * sx); break;
            case AV_PIX_FMT_GRAY16BE:  d[x] = AV_RB16(row + 2 * sx); break;
            case AV_PIX_FMT_GRAYF32LE: d[x] = av_int2float(AV_RL32(row + 4 * sx)); break;
            default:                   d[x] = av_int2float(AV_RB32(row + 4 * sx)); break;
            }
        }
    }
    /* padding replicates the edges: the per-image min and max are the frame's */
    ret = vqgan_depth_normalize(dst, pw, ph, lo, hi, invert, dst);
    if (ret < 0) {
        av_log(log_ctx, AV_LOG_ERROR, "Depth frame %dx%d (%s) cannot be used: %s.\n", w, h,
               av_get_pix_fmt_name(in->format), vqgan_last_error());
        return ff_vqgan_averror(ret);
    }
    return 0;
}
