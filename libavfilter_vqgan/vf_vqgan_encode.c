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

    char *model_path;
    int   stage;
    int   threads;
    char *map;
    int   precision;
    char *depth_range;
    int   depth_invert;
    float depth_lo, depth_hi;
    char *palette_path;
    char *palette_match;

    VQGANPalette palette;         ///< colour label frames (rgb24, bgr24, rgba)

    struct vqgan_model     *model;
    struct vqgan_model_info info;
    struct vqgan_session   *session;
    uint8_t label_map[256];
    char    model_id[17];

    int factor;                   ///< downsampling factor of the stage used
    int gw, gh;                   ///< token grid of the current input size
    int pw, ph;                   ///< input size padded to a multiple of factor

    uint8_t *pad;                 ///< padded input (or mapped labels)
    unsigned int pad_size;
    float *depth;                 ///< depth map padded to the factor, model range
    unsigned int depth_size;
    int32_t *tokens;
    unsigned int tokens_size;

    int in_w, in_h, in_format;    ///< input the filter is configured for

    int64_t frame_count;
} VQGANEncodeContext;

#define OFFSET(x) offsetof(VQGANEncodeContext, x)
#define FLAGS AV_OPT_FLAG_FILTERING_PARAM | AV_OPT_FLAG_VIDEO_PARAM
/* Options that commands (sendcmd, zmq) may change between frames. */
#define TFLAGS FLAGS | AV_OPT_FLAG_RUNTIME_PARAM

static const AVOption vqgan_encode_options[] = {
    { "model",   "set the libvqgan model file (GGUF)", OFFSET(model_path), AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, FLAGS },
    { "stage",   "set the tokenizer to run", OFFSET(stage), AV_OPT_TYPE_INT, { .i64 = STAGE_IMAGE }, 0, STAGE_NB - 1, FLAGS, .unit = "stage" },
        { "cond",  "segmentation labels (gray8, pal8), depth maps (gray8, gray16, grayf32) or a frame's coordinates to condition tokens", 0, AV_OPT_TYPE_CONST, { .i64 = STAGE_COND  }, 0, 0, FLAGS, .unit = "stage" },
        { "image", "RGB picture (rgb24) to image tokens",            0, AV_OPT_TYPE_CONST, { .i64 = STAGE_IMAGE }, 0, 0, FLAGS, .unit = "stage" },
    { "threads", "set the number of threads (0: all online cores)", OFFSET(threads), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, 1024, FLAGS },
    { "map",     "remap gray8 label ids before encoding, src=dst pairs (stage=cond)", OFFSET(map), AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, TFLAGS },
    VQGAN_PRECISION_OPTIONS(OFFSET(precision), "precision", FLAGS),
    VQGAN_DEPTH_OPTIONS(OFFSET(depth_range), OFFSET(depth_invert), FLAGS),
    { "palette", "label colours of rgb24/bgr24/rgba label frames (\"id name #rrggbb\" lines; stage=cond)", OFFSET(palette_path), AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, TFLAGS },
    { "palette_match", "how label colours match the palette: exact, or nearest:DIST", OFFSET(palette_match), AV_OPT_TYPE_STRING, { .str = "exact" }, 0, 0, TFLAGS },
    { NULL }
};

AVFILTER_DEFINE_CLASS(vqgan_encode);

static av_cold int init(AVFilterContext *ctx)
{
    VQGANEncodeContext *s = ctx->priv;

    ff_vqgan_log_init();
    /* The model itself is loaded when the output is configured: ffmpeg
     * creates and frees a graph once before the one that runs. */
    return ff_vqgan_find_model(ctx, &s->model_path);
}

/* map, palette and palette_match against the loaded model, into lut and pal
 * (so that a refused command leaves the current ones). */
static int parse_label_options(AVFilterContext *ctx, uint8_t lut[256], VQGANPalette *pal)
{
    VQGANEncodeContext *s = ctx->priv;
    int ret = ff_vqgan_parse_label_map(ctx, s->map, s->info.n_labels, lut);

    if (ret < 0)
        return ret;
    if (s->palette_path && *s->palette_path) {
        if ((ret = ff_vqgan_palette_load(ctx, s->palette_path, s->info.n_labels, pal)) < 0)
            return ret;
    } else if (!ff_vqgan_palette_from_model(ctx, s->model, s->model_path, s->info.n_labels, pal)) {
        pal->count = 0; /* colour frames are refused */
    }
    return ff_vqgan_palette_parse_match(ctx, s->palette_match, pal);
}

/* A runtime command (map, palette, palette_match): a value refused keeps
 * the old one. */
static int process_command(AVFilterContext *ctx, const char *cmd, const char *args,
                           char *res, int res_len, int flags)
{
    VQGANEncodeContext *s = ctx->priv;
    char *old[3] = { NULL }, **opt[3] = { &s->map, &s->palette_path, &s->palette_match };
    VQGANPalette *pal = NULL;
    uint8_t lut[256];
    int ret = 0;

    for (int i = 0; i < 3; i++)
        if (*opt[i] && !(old[i] = av_strdup(*opt[i])))
            ret = AVERROR(ENOMEM);
    if (ret < 0 || (ret = ff_filter_process_command(ctx, cmd, args, res, res_len, flags)) < 0)
        goto refused;
    if (s->session && s->stage == STAGE_COND) {
        if (!(pal = av_malloc(sizeof(*pal)))) {
            ret = AVERROR(ENOMEM);
            goto refused;
        }
        *pal = s->palette;
        if ((ret = parse_label_options(ctx, lut, pal)) < 0)
            goto refused;
        if (ff_vqgan_is_color_label_format(s->in_format) && !pal->count) {
            av_log(ctx, AV_LOG_ERROR, "The input holds colour labels: the palette cannot be unset.\n");
            ret = AVERROR(EINVAL);
            goto refused;
        }
        memcpy(s->label_map, lut, sizeof(lut));
        s->palette = *pal;
    }
    for (int i = 0; i < 3; i++)
        av_free(old[i]);
    av_free(pal);
    return 0;

refused:
    for (int i = 0; i < 3; i++) {
        av_free(*opt[i]);
        *opt[i] = old[i];
    }
    if (ret != AVERROR(ENOSYS))
        av_log(ctx, AV_LOG_ERROR, "Command %s=%s refused; the old value is kept.\n", cmd, args);
    av_free(pal);
    return ret;
}

/* Load the model (from the shared cache) and check it can do the stage. */
static int load_model(AVFilterContext *ctx)
{
    VQGANEncodeContext *s = ctx->priv;
    struct vqgan_session_params params;
    int ret;

    vqgan_model_unref(s->model); /* from an earlier failed attempt */
    ret = ff_vqgan_model_open(ctx, s->model_path, s->precision, &s->model, &s->info);
    if (ret < 0)
        return ret;
    snprintf(s->model_id, sizeof(s->model_id), "%016"PRIx64, s->info.identity);

    if (s->stage == STAGE_COND) {
        if (s->info.cond_kind != VQGAN_COND_SEGMENTATION && s->info.cond_kind != VQGAN_COND_DEPTH &&
            s->info.cond_kind != VQGAN_COND_COORD) {
            av_log(ctx, AV_LOG_ERROR, "stage=cond needs a spatial condition (segmentation, "
                   "depth, coordinates), but model '%s' has condition '%s'. Use stage=image, or a "
                   "model with a spatial condition.\n",
                   s->model_path, ff_vqgan_cond_name(s->info.cond_kind));
            return AVERROR(EINVAL);
        }
        if (s->info.cond_kind == VQGAN_COND_DEPTH &&
            (ret = ff_vqgan_parse_depth_range(ctx, s->depth_range, &s->depth_lo, &s->depth_hi)) < 0)
            return ret;
        s->factor = s->info.cond_factor;
        if (s->info.cond_codes > VQGAN_MAX_CODES) {
            av_log(ctx, AV_LOG_ERROR, "Model '%s' has %d condition codes; gray16 tokens "
                   "hold at most %d.\n", s->model_path, s->info.cond_codes, VQGAN_MAX_CODES);
            return AVERROR_PATCHWELCOME;
        }
        if (s->info.cond_kind == VQGAN_COND_SEGMENTATION) {
            ret = parse_label_options(ctx, s->label_map, &s->palette);
            if (ret < 0)
                return ret;
        } else if (s->map || s->palette_path) {
            av_log(ctx, AV_LOG_WARNING, "The map and palette options apply to segmentation labels only; ignored.\n");
        }
    } else {
        if (!s->info.has_first_stage) {
            av_log(ctx, AV_LOG_ERROR, "stage=image needs an image tokenizer, which "
                   "model '%s' lacks. Use stage=cond for a segmentation stage.\n",
                   s->model_path);
            return AVERROR(EINVAL);
        }
        s->factor = s->info.factor;
        if (s->info.image_codes > VQGAN_MAX_CODES) {
            av_log(ctx, AV_LOG_ERROR, "Model '%s' has %d image codes; gray16 tokens "
                   "hold at most %d.\n", s->model_path, s->info.image_codes, VQGAN_MAX_CODES);
            return AVERROR_PATCHWELCOME;
        }
        if (s->map)
            av_log(ctx, AV_LOG_WARNING, "The map option applies to stage=cond only; ignored.\n");
    }
    if (s->factor <= 0) {
        av_log(ctx, AV_LOG_ERROR, "Model '%s' declares an invalid factor %d.\n",
               s->model_path, s->factor);
        return AVERROR_INVALIDDATA;
    }

    params = vqgan_session_default_params();
    params.n_threads = s->threads;
    ff_vqgan_session_log_setup(&params, ctx);
    return ff_vqgan_session_new(ctx, s->model, &params, &s->session);
}

static av_cold void uninit(AVFilterContext *ctx)
{
    VQGANEncodeContext *s = ctx->priv;

    vqgan_session_free(s->session);
    s->session = NULL;
    vqgan_model_unref(s->model);
    s->model = NULL;
    av_freep(&s->pad);
    av_freep(&s->depth);
    av_freep(&s->tokens);
}

static int query_formats(const AVFilterContext *ctx,
                         AVFilterFormatsConfig **cfg_in,
                         AVFilterFormatsConfig **cfg_out)
{
    const VQGANEncodeContext *s = ctx->priv;
    /* Palette pictures hold their labels as the palette indices. */
    /* Colour-coded label pictures too (read with palette= or the model's);
     * depth maps come as gray8, gray16 or grayf32 (the model, loaded later,
     * decides which are accepted: checked in config_output). */
    static const enum AVPixelFormat cond_fmts[]  = { AV_PIX_FMT_GRAY8, AV_PIX_FMT_PAL8, AV_PIX_FMT_RGB24,
                                                     AV_PIX_FMT_BGR24, AV_PIX_FMT_RGBA, AV_PIX_FMT_GRAY16LE,
                                                     AV_PIX_FMT_GRAY16BE, AV_PIX_FMT_GRAYF32LE,
                                                     AV_PIX_FMT_GRAYF32BE, AV_PIX_FMT_NONE };
    static const enum AVPixelFormat image_fmts[] = { AV_PIX_FMT_RGB24, AV_PIX_FMT_NONE };
    static const enum AVPixelFormat token_fmts[] = { VQGAN_TOKEN_PIX_FMT, AV_PIX_FMT_NONE };
    int ret;

    ret = ff_formats_ref(ff_make_pixel_format_list(s->stage != STAGE_COND ? image_fmts : cond_fmts),
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

    if (s->stage != STAGE_COND || s->info.cond_kind == VQGAN_COND_COORD)
        return 0;
    if (s->info.cond_kind == VQGAN_COND_SEGMENTATION &&
        format != AV_PIX_FMT_GRAY8 && format != AV_PIX_FMT_PAL8 && !ff_vqgan_is_color_label_format(format)) {
        av_log(ctx, AV_LOG_ERROR, "Input format %s cannot be used: model '%s' is "
               "segmentation-conditional and takes gray8 (or pal8) labels or colour-coded labels "
               "(rgb24, bgr24, rgba with a palette)%s. Insert format=gray8 "
               "for label pictures.\n", av_get_pix_fmt_name(format), s->model_path,
               ff_vqgan_is_depth_format(format) ?
               ", not depth maps (those need a depth-conditioned model)" : "");
        return AVERROR(EINVAL);
    }
    if (s->info.cond_kind == VQGAN_COND_DEPTH && !ff_vqgan_is_depth_format(format)) {
        av_log(ctx, AV_LOG_ERROR, "Input format %s cannot be used: model '%s' is depth-conditioned "
               "and takes depth maps (gray8, gray16, grayf32)%s.\n", av_get_pix_fmt_name(format),
               s->model_path, format == AV_PIX_FMT_PAL8 ? ", not segmentation labels" : "");
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

    if (s->info.cond_kind == VQGAN_COND_COORD)
        return vqgan_encode_coord(s->session, s->pw, s->ph, s->tokens);
    av_fast_malloc(&s->depth, &s->depth_size, (size_t)s->pw * s->ph * sizeof(*s->depth));
    if (!s->depth)
        return AVERROR(ENOMEM);
    ret = ff_vqgan_prepare_depth(ctx, in, s->depth_lo, s->depth_hi, s->depth_invert,
                                 s->depth, s->pw, s->ph);
    if (ret < 0)
        return ret;
    return vqgan_encode_depth(s->session, s->depth, s->pw, s->ph, s->tokens, NULL);
}

static int config_output(AVFilterLink *outlink)
{
    AVFilterContext *ctx = outlink->src;
    VQGANEncodeContext *s = ctx->priv;
    AVFilterLink *inlink = ctx->inputs[0];
    int f, ret;

    if (!s->session && (ret = load_model(ctx)) < 0)
        return ret;
    f = s->factor;
    if ((ret = check_cond_format(ctx, inlink->format)) < 0)
        return ret;

    s->gw = (inlink->w + f - 1) / f;
    s->gh = (inlink->h + f - 1) / f;
    if (s->gw > VQGAN_MAX_GRID || s->gh > VQGAN_MAX_GRID) {
        av_log(ctx, AV_LOG_ERROR, "Input %dx%d gives a %dx%d token grid (factor %d); "
               "grids up to %dx%d (%dx%d pixels) are accepted.\n",
               inlink->w, inlink->h, s->gw, s->gh, f,
               VQGAN_MAX_GRID, VQGAN_MAX_GRID, VQGAN_MAX_GRID * f, VQGAN_MAX_GRID * f);
        return AVERROR(EINVAL);
    }
    s->pw = s->gw * f;
    s->ph = s->gh * f;

    if (s->stage == STAGE_COND && s->info.cond_kind == VQGAN_COND_SEGMENTATION &&
        ff_vqgan_is_color_label_format(inlink->format) && !s->palette.count) {
        av_log(ctx, AV_LOG_ERROR, "Input format %s holds colour-coded labels, and the model "
               "carries no palette: set palette=FILE (\"id name #rrggbb\" lines, as libvqgan's "
               "legend.txt), or insert format=gray8 for grey label ids.\n",
               av_get_pix_fmt_name(inlink->format));
        return AVERROR(EINVAL);
    }
    outlink->w = s->gw;
    outlink->h = s->gh;
    s->in_w      = inlink->w;
    s->in_h      = inlink->h;
    s->in_format = inlink->format;

    av_log(ctx, AV_LOG_VERBOSE, "%s %dx%d -> %s tokens %dx%d (factor %d%s)\n",
           av_get_pix_fmt_name(inlink->format), inlink->w, inlink->h,
           s->stage == STAGE_COND ? "condition" : "image", s->gw, s->gh, f,
           s->pw != inlink->w || s->ph != inlink->h ? ", edges replicated to a multiple" : "");
    return 0;
}

static int reconfigure(AVFilterContext *ctx, const AVFrame *in)
{
    VQGANEncodeContext *s = ctx->priv;
    AVFilterLink *inlink = ctx->inputs[0];

    av_log(ctx, AV_LOG_VERBOSE, "Input changed from %dx%d to %dx%d; reconfiguring.\n",
           s->in_w, s->in_h, in->width, in->height);
    if (in->format != s->in_format) {
        /* Only one format is negotiated for each stage. */
        av_log(ctx, AV_LOG_ERROR, "Input format changed from %s to %s mid-stream; "
               "only %s is accepted here.\n", av_get_pix_fmt_name(s->in_format),
               av_get_pix_fmt_name(in->format), av_get_pix_fmt_name(s->in_format));
        return AVERROR(EINVAL);
    }
    inlink->w = in->width;
    inlink->h = in->height;
    return config_output(ctx->outputs[0]);
}

static int filter_frame(AVFilterLink *inlink, AVFrame *in)
{
    AVFilterContext *ctx = inlink->dst;
    VQGANEncodeContext *s = ctx->priv;
    AVFilterLink *outlink = ctx->outputs[0];
    const int bpp = s->stage == STAGE_COND ? 1 : 3; /* of the padded copy */
    const int spatial = s->stage == STAGE_COND && s->info.cond_kind != VQGAN_COND_SEGMENTATION;
    const uint8_t *src = in->data[0];
    ptrdiff_t src_stride = in->linesize[0];
    int64_t t0 = av_gettime_relative();
    char grid[32], factor[16];
    AVFrame *out = NULL;
    int ret;

    /* Compared with what this filter was configured for: the link itself
     * may have been updated already by a filter before that reconfigured. */
    if (in->width != s->in_w || in->height != s->in_h || in->format != s->in_format) {
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
                ret = ff_vqgan_prepare_color_labels(ctx, in, &s->palette, s->label_map,
                                                    s->info.n_labels, s->pad, s->pw, s->pw, s->ph);
            else
                ret = ff_vqgan_prepare_labels(ctx, in, s->label_map, s->info.n_labels,
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
        ret = vqgan_encode_labels(s->session, src, src_stride, s->pw, s->ph, s->tokens, NULL);
    else
        ret = vqgan_encode_image(s->session, src, src_stride, s->pw, s->ph, s->tokens);
    if (ret < 0) {
        av_log(ctx, AV_LOG_ERROR, "Encoding frame %"PRId64" (%dx%d) failed: %s.\n",
               s->frame_count, s->pw, s->ph, vqgan_last_error());
        ret = ff_vqgan_averror(ret);
        goto fail;
    }

    out = ff_get_video_buffer(outlink, outlink->w, outlink->h);
    if (!out) {
        ret = AVERROR(ENOMEM);
        goto fail;
    }
    ret = av_frame_copy_props(out, in);
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
    av_dict_set(&out->metadata, VQGAN_META_MODEL, s->model_id, 0);
    av_dict_set(&out->metadata, VQGAN_META_FACTOR, factor, 0);

    {
        double secs = (av_gettime_relative() - t0) / 1e6;
        av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %d %s tokens in %.3f s (%.1f tokens/s)\n",
               s->frame_count, s->gw * s->gh, s->stage == STAGE_COND ? "condition" : "image",
               secs, secs > 0 ? s->gw * s->gh / secs : 0.0);
    }
    s->frame_count++;

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

#if LIBAVFILTER_VERSION_MAJOR >= 11
const FFFilter ff_vf_vqgan_encode = {
    .p.name        = "vqgan_encode",
    .p.description = NULL_IF_CONFIG_SMALL("Turn pictures or segmentation labels into VQGAN tokens (libvqgan)."),
    .p.priv_class  = &vqgan_encode_class,
#else
const AVFilter ff_vf_vqgan_encode = {
    .name          = "vqgan_encode",
    .description   = NULL_IF_CONFIG_SMALL("Turn pictures or segmentation labels into VQGAN tokens (libvqgan)."),
    .priv_class    = &vqgan_encode_class,
#endif
    .priv_size     = sizeof(VQGANEncodeContext),
    .init          = init,
    .uninit        = uninit,
    FILTER_INPUTS(vqgan_encode_inputs),
    FILTER_OUTPUTS(vqgan_encode_outputs),
    FILTER_QUERY_FUNC2(query_formats),
    .process_command = process_command,
};
