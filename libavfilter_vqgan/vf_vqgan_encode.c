/*
 * Copyright (c) 2026 the libvqgan authors
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

/**
 * @file
 * VQGAN tokenizer (Taming Transformers) via libvqgan: turns RGB pictures
 * into first-stage image tokens, or segmentation label maps into condition
 * tokens. Tokens leave as gray16 frames, one pixel per token.
 */

#include <inttypes.h>

#include "libavutil/common.h"
#include "libavutil/dict.h"
#include "libavutil/mem.h"
#include "libavutil/opt.h"
#include "libavutil/pixdesc.h"
#include "libavutil/time.h"

#include "avfilter.h"
#include "filters.h"
#include "formats.h"
#include "video.h"
#include "vqgan_common.h"

enum VQGANStage {
    STAGE_COND,
    STAGE_IMAGE,
    STAGE_NB
};

typedef struct VQGANEncodeContext {
    const AVClass *class;
    VQGANCommon common;           ///< model, session, label options, input (vqgan_common.h)

    int   stage;
    char *depth_range;
    int   depth_invert;
    float depth_lo, depth_hi;

    int factor;                   ///< downsampling factor of the stage used
    int gw, gh;                   ///< token grid of the current input size
    int pw, ph;                   ///< input size padded to a multiple of factor

    uint8_t *pad;                 ///< padded input (or mapped labels)
    unsigned int pad_size;
    float *depth;                 ///< depth map padded to the factor, model range
    unsigned int depth_size;
    int32_t *tokens;
    unsigned int tokens_size;
} VQGANEncodeContext;

#define OFFSET(x) offsetof(VQGANEncodeContext, x)
#define FLAGS AV_OPT_FLAG_FILTERING_PARAM | AV_OPT_FLAG_VIDEO_PARAM
/* Options that commands (sendcmd, zmq) may change between frames. */
#define TFLAGS FLAGS | AV_OPT_FLAG_RUNTIME_PARAM

static const AVOption vqgan_encode_options[] = {
    VQGAN_COMMON_OPTIONS(VQGANEncodeContext, FLAGS, TFLAGS,
                         "remap gray8 label ids before encoding, src=dst pairs (stage=cond)",
                         "label colours of rgb24/bgr24/rgba label frames (\"id name #rrggbb\" lines; stage=cond)"),
    { "stage",   "set the tokenizer to run", OFFSET(stage), AV_OPT_TYPE_INT, { .i64 = STAGE_IMAGE }, 0, STAGE_NB - 1, FLAGS, .unit = "stage" },
        { "cond",  "segmentation labels (gray8, pal8), depth maps (gray8, gray9 to gray16, grayf32) or a frame's coordinates to condition tokens", 0, AV_OPT_TYPE_CONST, { .i64 = STAGE_COND  }, 0, 0, FLAGS, .unit = "stage" },
        { "image", "RGB picture (rgb24) to image tokens",            0, AV_OPT_TYPE_CONST, { .i64 = STAGE_IMAGE }, 0, 0, FLAGS, .unit = "stage" },
    VQGAN_DEPTH_OPTIONS(OFFSET(depth_range), OFFSET(depth_invert), FLAGS),
    { NULL }
};

AVFILTER_DEFINE_CLASS(vqgan_encode);

static av_cold int init(AVFilterContext *ctx)
{
    VQGANEncodeContext *s = ctx->priv;

    return ff_vqgan_common_init(ctx, &s->common);
}

/* A runtime command (map, palette, palette_match): a value refused keeps
 * the old one. */
static int process_command(AVFilterContext *ctx, const char *cmd, const char *args,
                           char *res, int res_len, int flags)
{
    VQGANEncodeContext *s = ctx->priv;
    VQGANCommand t;
    int ret = ff_vqgan_command_begin(ctx, &s->common, &t, cmd, args, res, res_len, flags);

    if (ret >= 0 && s->common.session && s->stage == STAGE_COND)
        ret = ff_vqgan_command_labels(ctx, &s->common, &t);
    else if (ret >= 0 && s->common.session)
        av_log(ctx, AV_LOG_WARNING, "Command %s=%s: the label options apply to stage=cond only; ignored.\n",
               cmd, args ? args : "");
    if (ret < 0)
        return ff_vqgan_command_refused(ctx, &s->common, &t, cmd, args, ret);
    ff_vqgan_command_commit(&s->common, &t);
    return 0;
}

/* Load the model (from the shared cache) and check it can do the stage. */
static int load_model(AVFilterContext *ctx)
{
    VQGANEncodeContext *s = ctx->priv;
    struct vqgan_session_params params;
    int ret = ff_vqgan_common_load(ctx, &s->common);

    if (ret < 0)
        return ret;

    if (s->stage == STAGE_COND) {
        if (s->common.info.cond_kind != VQGAN_COND_SEGMENTATION && s->common.info.cond_kind != VQGAN_COND_DEPTH &&
            s->common.info.cond_kind != VQGAN_COND_COORD) {
            av_log(ctx, AV_LOG_ERROR, "stage=cond needs a spatial condition (segmentation, "
                   "depth, coordinates), but model '%s' has condition '%s'. Use stage=image, or a "
                   "model with a spatial condition.\n",
                   s->common.model_path, ff_vqgan_cond_name(s->common.info.cond_kind));
            return AVERROR(EINVAL);
        }
        if (s->common.info.cond_kind == VQGAN_COND_DEPTH &&
            (ret = ff_vqgan_parse_depth_range(ctx, s->depth_range, &s->depth_lo, &s->depth_hi)) < 0)
            return ret;
        s->factor = s->common.info.cond_factor;
        if (s->common.info.cond_codes > VQGAN_MAX_CODES) {
            av_log(ctx, AV_LOG_ERROR, "Model '%s' has %d condition codes; gray16 tokens "
                   "hold at most %d.\n", s->common.model_path, s->common.info.cond_codes, VQGAN_MAX_CODES);
            return AVERROR_PATCHWELCOME;
        }
        if (s->common.info.cond_kind == VQGAN_COND_SEGMENTATION) {
            ret = ff_vqgan_parse_label_options(ctx, &s->common, s->common.label_map, &s->common.palette);
            if (ret < 0)
                return ret;
            s->common.have_palette = ret;
        } else if (s->common.map || s->common.palette_path) {
            av_log(ctx, AV_LOG_WARNING, "The map and palette options apply to segmentation labels only; ignored.\n");
        }
    } else {
        if (!s->common.info.has_first_stage) {
            av_log(ctx, AV_LOG_ERROR, "stage=image needs an image tokenizer, which "
                   "model '%s' lacks. Use stage=cond for a segmentation stage.\n",
                   s->common.model_path);
            return AVERROR(EINVAL);
        }
        s->factor = s->common.info.factor;
        if (s->common.info.image_codes > VQGAN_MAX_CODES) {
            av_log(ctx, AV_LOG_ERROR, "Model '%s' has %d image codes; gray16 tokens "
                   "hold at most %d.\n", s->common.model_path, s->common.info.image_codes, VQGAN_MAX_CODES);
            return AVERROR_PATCHWELCOME;
        }
        if (s->common.map)
            av_log(ctx, AV_LOG_WARNING, "The map option applies to stage=cond only; ignored.\n");
    }
    if (s->factor <= 0) {
        av_log(ctx, AV_LOG_ERROR, "Model '%s' declares an invalid factor %d.\n",
               s->common.model_path, s->factor);
        return AVERROR_INVALIDDATA;
    }

    params = vqgan_session_default_params();
    return ff_vqgan_common_session(ctx, &s->common, &params);
}

static av_cold void uninit(AVFilterContext *ctx)
{
    VQGANEncodeContext *s = ctx->priv;

    ff_vqgan_common_uninit(&s->common);
    av_freep(&s->pad);
    av_freep(&s->depth);
    av_freep(&s->tokens);
}

static int query_formats(const AVFilterContext *ctx,
                         AVFilterFormatsConfig **cfg_in,
                         AVFilterFormatsConfig **cfg_out)
{
    const VQGANEncodeContext *s = ctx->priv;
    static const enum AVPixelFormat image_fmts[] = { AV_PIX_FMT_RGB24, AV_PIX_FMT_NONE };
    static const enum AVPixelFormat token_fmts[] = { VQGAN_TOKEN_PIX_FMT, AV_PIX_FMT_NONE };
    int ret;

    /* stage=cond: the model, loaded later, decides what it takes (label ids
     * in gray8 or pal8, colour-coded labels, depth maps in gray8, gray16 or
     * grayf32, anything for coordinates): checked in config_output rather
     * than converted behind the user's back (a yuv label video converted to
     * rgb24 would be read as colours). */
    ret = ff_formats_ref(s->stage != STAGE_COND ? ff_make_pixel_format_list(image_fmts) :
                         VQGAN_ANY_SW_FORMATS(),
                         &cfg_in[0]->formats);
    if (ret < 0)
        return ret;
    return ff_formats_ref(ff_make_pixel_format_list(token_fmts), &cfg_out[0]->formats);
}

/* stage=cond: labels for segmentation models, depth maps for depth models,
 * anything for coordinate models (only the size counts). */
static int check_cond_format(AVFilterContext *ctx, int format)
{
    VQGANEncodeContext *s = ctx->priv;

    if (s->stage != STAGE_COND || s->common.info.cond_kind == VQGAN_COND_COORD)
        return 0;
    if (s->common.info.cond_kind == VQGAN_COND_SEGMENTATION &&
        format != AV_PIX_FMT_GRAY8 && format != AV_PIX_FMT_PAL8 && !ff_vqgan_is_color_label_format(format)) {
        av_log(ctx, AV_LOG_ERROR, "Input format %s cannot be used: model '%s' is "
               "segmentation-conditional and takes gray8 (or pal8) labels or colour-coded labels "
               "(packed 8-bit RGB: rgb24, bgr24, rgba, bgr0, ..., with a palette)%s. Insert %s.\n",
               av_get_pix_fmt_name(format), s->common.model_path,
               ff_vqgan_is_depth_format(format) ?
               ", not depth maps (those need a depth-conditioned model)" : "",
               ff_vqgan_label_format_hint(format));
        return AVERROR(EINVAL);
    }
    if (s->common.info.cond_kind == VQGAN_COND_DEPTH && !ff_vqgan_is_depth_format(format)) {
        av_log(ctx, AV_LOG_ERROR, "Input format %s cannot be used: model '%s' is depth-conditioned "
               "and takes depth maps (gray8, gray9 to gray16, grayf32)%s. Insert format=gray16 for a grey "
               "depth video stored in another format.\n", av_get_pix_fmt_name(format),
               s->common.model_path, format == AV_PIX_FMT_PAL8 ? ", not segmentation labels" : "");
        return AVERROR(EINVAL);
    }
    return 0;
}

/* stage=cond on depth and coordinate models: condition tokens into s->tokens;
 * a libvqgan status, or an AVERROR (logged) from reading the frame. */
static int encode_depth_or_coord(AVFilterContext *ctx, const AVFrame *in)
{
    VQGANEncodeContext *s = ctx->priv;
    int ret;

    if (s->common.info.cond_kind == VQGAN_COND_COORD)
        return vqgan_encode_coord(s->common.session, s->pw, s->ph, s->tokens);
    av_fast_malloc(&s->depth, &s->depth_size, (size_t)s->pw * s->ph * sizeof(*s->depth));
    if (!s->depth)
        return AVERROR(ENOMEM);
    ret = ff_vqgan_prepare_depth(ctx, in, s->depth_lo, s->depth_hi, s->depth_invert,
                                 s->depth, s->pw, s->ph);
    if (ret < 0)
        return ret;
    return vqgan_encode_depth(s->common.session, s->depth, s->pw, s->ph, s->tokens, NULL);
}

static int config_output(AVFilterLink *outlink)
{
    AVFilterContext *ctx = outlink->src;
    VQGANEncodeContext *s = ctx->priv;
    AVFilterLink *inlink = ctx->inputs[0];
    int f, ret;

    if (!s->common.session && (ret = load_model(ctx)) < 0)
        return ret;
    f = s->factor;
    if ((ret = check_cond_format(ctx, inlink->format)) < 0)
        return ret;

    s->gw = (inlink->w + f - 1) / f;
    s->gh = (inlink->h + f - 1) / f;
    if ((ret = ff_vqgan_check_grid(ctx, inlink->w, inlink->h, s->gw, s->gh, f)) < 0)
        return ret;
    s->pw = s->gw * f;
    s->ph = s->gh * f;

    if (s->stage == STAGE_COND && s->common.info.cond_kind == VQGAN_COND_SEGMENTATION &&
        ff_vqgan_is_color_label_format(inlink->format) && !s->common.palette.count) {
        av_log(ctx, AV_LOG_ERROR, "Input format %s holds colour-coded labels, and the model "
               "carries no palette: set palette=FILE (\"id name #rrggbb\" lines, as libvqgan's "
               "legend.txt), or insert format=gray8 for grey label ids.\n",
               av_get_pix_fmt_name(inlink->format));
        return AVERROR(EINVAL);
    }
    outlink->w = s->gw;
    outlink->h = s->gh;
    ff_vqgan_input_configured(&s->common, inlink->w, inlink->h, inlink->format);

    av_log(ctx, AV_LOG_VERBOSE, "%s %dx%d -> %s tokens %dx%d (factor %d%s)\n",
           av_get_pix_fmt_name(inlink->format), inlink->w, inlink->h,
           s->stage == STAGE_COND ? "condition" : "image", s->gw, s->gh, f,
           s->pw != inlink->w || s->ph != inlink->h ? ", edges replicated to a multiple" : "");
    return 0;
}

/* Only one format is negotiated for each stage: the size may change. */
static int reconfigure(AVFilterContext *ctx, const AVFrame *in)
{
    VQGANEncodeContext *s = ctx->priv;
    int ret = ff_vqgan_reconfigure_input(ctx, &s->common, ctx->inputs[0], in, 0);

    return ret < 0 ? ret : config_output(ctx->outputs[0]);
}

static int filter_frame(AVFilterLink *inlink, AVFrame *in)
{
    AVFilterContext *ctx = inlink->dst;
    VQGANEncodeContext *s = ctx->priv;
    AVFilterLink *outlink = ctx->outputs[0];
    const int bpp = s->stage == STAGE_COND ? 1 : 3; /* of the padded copy */
    const int spatial = s->stage == STAGE_COND && s->common.info.cond_kind != VQGAN_COND_SEGMENTATION;
    const uint8_t *src = in->data[0];
    ptrdiff_t src_stride = in->linesize[0];
    int64_t t0 = av_gettime_relative();
    char grid[32], factor[16];
    AVFrame *out = NULL;
    int ret;

    /* Compared with what this filter was configured for: the link itself
     * may have been updated already by a filter before that reconfigured. */
    if (ff_vqgan_input_changed(&s->common, in)) {
        ret = reconfigure(ctx, in);
        if (ret < 0)
            goto fail;
    }

    if (!spatial && (s->stage == STAGE_COND || s->pw != in->width || s->ph != in->height)) {
        av_fast_malloc(&s->pad, &s->pad_size, (size_t)s->pw * s->ph * bpp);
        if (!s->pad) {
            ret = AVERROR(ENOMEM);
            goto fail;
        }
        if (s->stage == STAGE_COND) {
            if (ff_vqgan_is_color_label_format(in->format))
                ret = ff_vqgan_prepare_color_labels(ctx, in, &s->common.palette, s->common.label_map,
                                                    s->common.info.n_labels, s->pad, s->pw, s->pw, s->ph);
            else
                ret = ff_vqgan_prepare_labels(ctx, in, s->common.label_map, s->common.info.n_labels,
                                              s->pad, s->pw, s->pw, s->ph);
            if (ret < 0)
                goto fail;
        } else {
            ff_vqgan_copy_padded(s->pad, (ptrdiff_t)s->pw * bpp, in->data[0], in->linesize[0],
                                 in->width, in->height, s->pw, s->ph, bpp);
        }
        src = s->pad;
        src_stride = (ptrdiff_t)s->pw * bpp;
    }

    av_fast_malloc(&s->tokens, &s->tokens_size, (size_t)s->gw * s->gh * sizeof(*s->tokens));
    if (!s->tokens) {
        ret = AVERROR(ENOMEM);
        goto fail;
    }

    if (spatial) {
        ret = encode_depth_or_coord(ctx, in);
        if (ret < VQGAN_ERR_CANCELLED)          /* an AVERROR, logged */
            goto fail;
    } else if (s->stage == STAGE_COND)
        ret = vqgan_encode_labels(s->common.session, src, src_stride, s->pw, s->ph, s->tokens, NULL);
    else
        ret = vqgan_encode_image(s->common.session, src, src_stride, s->pw, s->ph, s->tokens);
    if (ret < 0) {
        ret = ff_vqgan_call_failed(ctx, ret, "encoding frame %"PRId64" (%dx%d)",
                                   s->common.frame_count, s->pw, s->ph);
        goto fail;
    }

    out = ff_get_video_buffer(outlink, outlink->w, outlink->h);
    if (!out) {
        ret = AVERROR(ENOMEM);
        goto fail;
    }
    ret = ff_vqgan_copy_props(out, in);
    if (ret < 0)
        goto fail;

    for (int y = 0; y < s->gh; y++) {
        uint16_t *row = (uint16_t *)(out->data[0] + y * out->linesize[0]);
        const int32_t *t = s->tokens + (size_t)y * s->gw;
        for (int x = 0; x < s->gw; x++)
            row[x] = t[x];
    }

    snprintf(grid, sizeof(grid), "%dx%d", s->gw, s->gh);
    snprintf(factor, sizeof(factor), "%d", s->factor);
    av_dict_set(&out->metadata, VQGAN_META_STAGE, s->stage == STAGE_COND ? "cond" : "image", 0);
    av_dict_set(&out->metadata, VQGAN_META_GRID, grid, 0);
    av_dict_set(&out->metadata, VQGAN_META_MODEL, s->common.model_id, 0);
    av_dict_set(&out->metadata, VQGAN_META_FACTOR, factor, 0);

    {
        double secs = (av_gettime_relative() - t0) / 1e6;
        av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %d %s tokens in %.3f s (%.1f tokens/s)\n",
               s->common.frame_count, s->gw * s->gh, s->stage == STAGE_COND ? "condition" : "image",
               secs, secs > 0 ? s->gw * s->gh / secs : 0.0);
    }
    s->common.frame_count++;

    av_frame_free(&in);
    return ff_filter_frame(outlink, out);

fail:
    av_frame_free(&out);
    av_frame_free(&in);
    return ret;
}

static const AVFilterPad vqgan_encode_inputs[] = {
    {
        .name         = "default",
        .type         = AVMEDIA_TYPE_VIDEO,
        .filter_frame = filter_frame,
    },
};

static const AVFilterPad vqgan_encode_outputs[] = {
    {
        .name         = "default",
        .type         = AVMEDIA_TYPE_VIDEO,
        .config_props = config_output,
    },
};

const VQGANFilter ff_vf_vqgan_encode = {
    .VQGAN_PUBLIC(name)        = "vqgan_encode",
    .VQGAN_PUBLIC(description) = NULL_IF_CONFIG_SMALL("Turn pictures or segmentation labels into VQGAN tokens (libvqgan)."),
    .VQGAN_PUBLIC(priv_class)  = &vqgan_encode_class,
    .priv_size     = sizeof(VQGANEncodeContext),
    .init          = init,
    .uninit        = uninit,
    FILTER_INPUTS(vqgan_encode_inputs),
    FILTER_OUTPUTS(vqgan_encode_outputs),
    FILTER_QUERY_FUNC2(query_formats),
    .process_command = process_command,
};
