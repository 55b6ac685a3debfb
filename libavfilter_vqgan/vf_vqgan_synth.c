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
 * VQGAN + transformer image synthesis (Taming Transformers) via libvqgan.
 *
 * mode=sample draws image tokens with the model's transformer, conditioned
 * on segmentation labels (gray8), on condition tokens from vqgan_encode
 * (gray16), on a class id or on nothing, and decodes them to RGB.
 * mode=decode decodes image tokens from vqgan_encode (gray16).
 */

#include <inttypes.h>
#include <string.h>

#include "libavutil/common.h"
#include "libavutil/dict.h"
#include "libavutil/imgutils.h"
#include "libavutil/mem.h"
#include "libavutil/opt.h"
#include "libavutil/pixdesc.h"
#include "libavutil/time.h"

#include "avfilter.h"
#include "filters.h"
#include "formats.h"
#include "video.h"
#include "vqgan_common.h"

enum VQGANMode {
    MODE_SAMPLE,
    MODE_DECODE,
    MODE_NB
};

/* What the current input frames hold. */
enum VQGANInput {
    INPUT_LABELS,         ///< gray8 (or pal8 indices) segmentation labels
    INPUT_COND_TOKENS,    ///< gray16 condition tokens
    INPUT_IMAGE_TOKENS,   ///< gray16 image tokens (mode=decode)
    INPUT_TIMING,         ///< any frame: size and timing only (class/unconditional)
};

typedef struct VQGANSynthContext {
    const AVClass *class;

    char   *model_path;
    int     mode;
    float   temperature;
    int     top_k;
    float   top_p;
    int64_t seed;
    int     threads;
    int     class_id;
    char   *map;
    int     temporal;
    int     fast;
    int     precision;
    char   *palette_path;
    char   *palette_match;

    VQGANPalette palette;         ///< colour label frames (rgb24, bgr24, rgba)
    int     have_palette;

    struct vqgan_model     *model;
    struct vqgan_model_info info;
    struct vqgan_session   *session;
    uint8_t label_map[256];
    char    model_id[17];
    VQGANProgress progress;

    enum VQGANInput input;
    int gw, gh;                   ///< token grid
    int lw, lh;                   ///< gray8 labels padded to the condition factor
    int dw, dh;                   ///< decoded size: grid * factor
    int warned_meta;

    uint8_t *labels;
    unsigned int labels_size;
    int32_t *cond;
    unsigned int cond_size;
    int32_t *tokens;
    unsigned int tokens_size;
    uint8_t *rgb;                 ///< decoded picture when it gets cropped
    unsigned int rgb_size;

    int in_w, in_h, in_format;    ///< input the filter is configured for

    int64_t frame_count;
} VQGANSynthContext;

#define OFFSET(x) offsetof(VQGANSynthContext, x)
#define FLAGS AV_OPT_FLAG_FILTERING_PARAM | AV_OPT_FLAG_VIDEO_PARAM
/* Options that commands (sendcmd, zmq) may change between frames. */
#define TFLAGS FLAGS | AV_OPT_FLAG_RUNTIME_PARAM

static const AVOption vqgan_synth_options[] = {
    { "model",       "set the libvqgan model file (GGUF)", OFFSET(model_path), AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, FLAGS },
    { "mode",        "set what to do with the input", OFFSET(mode), AV_OPT_TYPE_INT, { .i64 = MODE_SAMPLE }, 0, MODE_NB - 1, FLAGS, .unit = "mode" },
        { "sample", "sample image tokens with the transformer, then decode", 0, AV_OPT_TYPE_CONST, { .i64 = MODE_SAMPLE }, 0, 0, FLAGS, .unit = "mode" },
        { "decode", "decode gray16 image tokens",                            0, AV_OPT_TYPE_CONST, { .i64 = MODE_DECODE }, 0, 0, FLAGS, .unit = "mode" },
    { "temperature", "set the sampling temperature (> 0)", OFFSET(temperature), AV_OPT_TYPE_FLOAT, { .dbl = 1.0 }, 0, 100, TFLAGS },
    { "top_k",       "sample among the k most likely tokens (0: off, 1: greedy)", OFFSET(top_k), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, INT_MAX, TFLAGS },
    { "top_p",       "sample within this cumulative probability (1: off)", OFFSET(top_p), AV_OPT_TYPE_FLOAT, { .dbl = 1.0 }, 0, 1, TFLAGS },
    { "seed",        "set the random seed", OFFSET(seed), AV_OPT_TYPE_INT64, { .i64 = 0 }, 0, INT64_MAX, TFLAGS },
    { "threads",     "set the number of threads (0: all online cores)", OFFSET(threads), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, 1024, FLAGS },
    { "class",       "set the class id of class-conditional models", OFFSET(class_id), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, INT_MAX, TFLAGS },
    { "map",         "remap gray8 label ids, src=dst pairs", OFFSET(map), AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, TFLAGS },
    { "temporal",    "set how successive frames of a video are sampled", OFFSET(temporal), AV_OPT_TYPE_INT, { .i64 = VQGAN_TEMPORAL_OFF }, VQGAN_TEMPORAL_OFF, VQGAN_TEMPORAL_STEADY, FLAGS, .unit = "temporal" },
        { "off",    "sample every frame afresh",                              0, AV_OPT_TYPE_CONST, { .i64 = VQGAN_TEMPORAL_OFF    }, 0, 0, FLAGS, .unit = "temporal" },
        { "reuse",  "reuse what did not change (frames identical to off)",    0, AV_OPT_TYPE_CONST, { .i64 = VQGAN_TEMPORAL_REUSE  }, 0, 0, FLAGS, .unit = "temporal" },
        { "follow", "as reuse, and move the picture with panned labels",      0, AV_OPT_TYPE_CONST, { .i64 = VQGAN_TEMPORAL_FOLLOW }, 0, 0, FLAGS, .unit = "temporal" },
        { "steady", "as reuse, and keep the pixels far from every change (approximate)", 0, AV_OPT_TYPE_CONST, { .i64 = VQGAN_TEMPORAL_STEADY }, 0, 0, FLAGS, .unit = "temporal" },
    { "fast",        "approximate fast sampling: one window placement predicts up to fast x fast cells (0 or 1: exact)", OFFSET(fast), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, VQGAN_MAX_FAST_STEP, TFLAGS },
    VQGAN_PRECISION_OPTIONS(OFFSET(precision), "precision", FLAGS),
    { "palette",     "label colours of rgb24/bgr24/rgba label frames (\"id name #rrggbb\" lines)", OFFSET(palette_path), AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, TFLAGS },
    { "palette_match", "how label colours match the palette: exact, or nearest:DIST", OFFSET(palette_match), AV_OPT_TYPE_STRING, { .str = "exact" }, 0, 0, TFLAGS },
    { NULL }
};

AVFILTER_DEFINE_CLASS(vqgan_synth);

static av_cold int init(AVFilterContext *ctx)
{
    VQGANSynthContext *s = ctx->priv;

    if (s->temperature <= 0) {
        av_log(ctx, AV_LOG_ERROR, "temperature=%g is invalid: it must be > 0 (up to 100).\n",
               s->temperature);
        return AVERROR(EINVAL);
    }
    if (s->top_p <= 0) {
        av_log(ctx, AV_LOG_ERROR, "top_p=%g is invalid: accepted range (0, 1], 1 disables.\n",
               s->top_p);
        return AVERROR(EINVAL);
    }
    ff_vqgan_log_init();
    /* The model itself is loaded when the output is configured: ffmpeg
     * creates and frees a graph once before the one that runs. */
    return ff_vqgan_find_model(ctx, &s->model_path);
}

/* The session parameters the options give. */
static struct vqgan_session_params session_params(VQGANSynthContext *s)
{
    struct vqgan_session_params params = vqgan_session_default_params();
    params.n_threads       = s->threads;
    params.temperature     = s->temperature;
    params.top_k           = s->top_k;
    params.top_p           = s->top_p;
    params.seed            = s->seed;
    params.temporal        = s->mode == MODE_SAMPLE && s->info.cond_kind == VQGAN_COND_SEGMENTATION ?
                             s->temporal : VQGAN_TEMPORAL_OFF;
    params.fast_step       = s->fast;
    params.progress        = ff_vqgan_progress;
    params.progress_opaque = &s->progress;
    ff_vqgan_session_log_setup(&params, s->progress.log_ctx);
    return params;
}

/* The label options (map, palette, palette_match) against the loaded model:
 * into lut and pal, so that a refused command leaves the current ones. */
static int parse_label_options(AVFilterContext *ctx, uint8_t lut[256], VQGANPalette *pal,
                               int *have_palette)
{
    VQGANSynthContext *s = ctx->priv;
    int ret = ff_vqgan_parse_label_map(ctx, s->map, s->info.n_labels, lut);

    if (ret < 0)
        return ret;
    if (s->palette_path && *s->palette_path) {
        if ((ret = ff_vqgan_palette_load(ctx, s->palette_path, s->info.n_labels, pal)) < 0)
            return ret;
        *have_palette = 1;
    } else {
        /* the palette the model file carries, if any */
        *have_palette = ff_vqgan_palette_from_model(ctx, s->model, s->model_path, s->info.n_labels, pal);
    }
    return ff_vqgan_palette_parse_match(ctx, s->palette_match, pal);
}

/* Load the model (from the shared cache), check the options against it. */
static int load_model(AVFilterContext *ctx)
{
    VQGANSynthContext *s = ctx->priv;
    struct vqgan_session_params params;
    int ret;

    vqgan_model_unref(s->model); /* from an earlier failed attempt */
    ret = ff_vqgan_model_open(ctx, s->model_path, s->precision, &s->model, &s->info);
    if (ret < 0)
        return ret;
    snprintf(s->model_id, sizeof(s->model_id), "%016"PRIx64, s->info.identity);

    if (!s->info.has_first_stage || s->info.factor <= 0) {
        av_log(ctx, AV_LOG_ERROR, "Model '%s' has no image decoder (first stage); "
               "vqgan_synth needs one.\n", s->model_path);
        return AVERROR(EINVAL);
    }
    if (s->info.image_codes > VQGAN_MAX_CODES || s->info.cond_codes > VQGAN_MAX_CODES) {
        av_log(ctx, AV_LOG_ERROR, "Model '%s' has more than %d codes, more than gray16 "
               "tokens can hold.\n", s->model_path, VQGAN_MAX_CODES);
        return AVERROR_PATCHWELCOME;
    }

    if (s->mode == MODE_SAMPLE) {
        if (!s->info.has_transformer || s->info.cond_kind == VQGAN_COND_NONE) {
            av_log(ctx, AV_LOG_ERROR, "mode=sample needs a transformer, but model '%s' "
                   "is a tokenizer only. Use mode=decode, or a model with a transformer.\n",
                   s->model_path);
            return AVERROR(EINVAL);
        }
        if (s->top_k > s->info.vocab_size) {
            av_log(ctx, AV_LOG_ERROR, "top_k=%d is above the vocabulary of model '%s': "
                   "accepted range 0..%d (0 disables, 1 is greedy).\n",
                   s->top_k, s->model_path, s->info.vocab_size);
            return AVERROR(EINVAL);
        }
        switch (s->info.cond_kind) {
        case VQGAN_COND_SEGMENTATION:
            ret = parse_label_options(ctx, s->label_map, &s->palette, &s->have_palette);
            if (ret < 0)
                return ret;
            break;
        case VQGAN_COND_CLASS:
            if (s->class_id >= s->info.n_classes) {
                av_log(ctx, AV_LOG_ERROR, "class=%d is outside the classes of model '%s': "
                       "accepted range 0..%d.\n", s->class_id, s->model_path,
                       s->info.n_classes - 1);
                return AVERROR(EINVAL);
            }
            break;
        default:
            if (s->class_id)
                av_log(ctx, AV_LOG_WARNING, "Model '%s' is unconditional; class=%d is ignored.\n",
                       s->model_path, s->class_id);
            break;
        }
        if (s->temporal != VQGAN_TEMPORAL_OFF && s->info.cond_kind != VQGAN_COND_SEGMENTATION)
            av_log(ctx, AV_LOG_WARNING, "The temporal option applies to segmentation-conditional "
                   "models only; ignored.\n");
        if (s->fast > 1 && s->info.cond_kind != VQGAN_COND_SEGMENTATION)
            av_log(ctx, AV_LOG_WARNING, "The fast option applies to segmentation-conditional "
                   "models only; ignored.\n");
        if (s->map && s->info.cond_kind != VQGAN_COND_SEGMENTATION)
            av_log(ctx, AV_LOG_WARNING, "The map option applies to segmentation-conditional "
                   "models only; ignored.\n");
    }

    s->progress.log_ctx = ctx;
    params = session_params(s);
    return ff_vqgan_session_new(ctx, s->model, &params, &s->session);
}

static av_cold void uninit(AVFilterContext *ctx)
{
    VQGANSynthContext *s = ctx->priv;

    vqgan_session_free(s->session);
    s->session = NULL;
    vqgan_model_unref(s->model);
    s->model = NULL;
    av_freep(&s->labels);
    av_freep(&s->cond);
    av_freep(&s->tokens);
    av_freep(&s->rgb);
}

static int query_formats(const AVFilterContext *ctx,
                         AVFilterFormatsConfig **cfg_in,
                         AVFilterFormatsConfig **cfg_out)
{
    const VQGANSynthContext *s = ctx->priv;
    static const enum AVPixelFormat token_fmts[] = { VQGAN_TOKEN_PIX_FMT, AV_PIX_FMT_NONE };
    static const enum AVPixelFormat out_fmts[]   = { AV_PIX_FMT_RGB24, AV_PIX_FMT_NONE };
    AVFilterFormats *in;
    int ret;

    /* In sample mode the model (loaded later) decides: gray8 labels or gray16
     * condition tokens for segmentation models, anything otherwise; checked
     * in config_output rather than converted behind the user's back. */
    if (s->mode == MODE_DECODE)
        in = ff_make_pixel_format_list(token_fmts);
    else
        in = ff_formats_pixdesc_filter(0, AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BITSTREAM);

    ret = ff_formats_ref(in, &cfg_in[0]->formats);
    if (ret < 0)
        return ret;
    return ff_formats_ref(ff_make_pixel_format_list(out_fmts), &cfg_out[0]->formats);
}

static int check_grid(AVFilterContext *ctx, int w, int h, int f)
{
    VQGANSynthContext *s = ctx->priv;

    if (s->gw > VQGAN_MAX_GRID || s->gh > VQGAN_MAX_GRID) {
        av_log(ctx, AV_LOG_ERROR, "Input %dx%d gives a %dx%d token grid; grids up to "
               "%dx%d (%dx%d pixels at factor %d) are accepted.\n", w, h, s->gw, s->gh,
               VQGAN_MAX_GRID, VQGAN_MAX_GRID, VQGAN_MAX_GRID * f, VQGAN_MAX_GRID * f, f);
        return AVERROR(EINVAL);
    }
    return 0;
}

static int config_output(AVFilterLink *outlink)
{
    AVFilterContext *ctx = outlink->src;
    VQGANSynthContext *s = ctx->priv;
    AVFilterLink *inlink = ctx->inputs[0];
    int f, ret;

    if (!s->session && (ret = load_model(ctx)) < 0)
        return ret;
    f = s->info.factor;

    if (s->mode == MODE_DECODE) {
        if (inlink->format != VQGAN_TOKEN_PIX_FMT)
            goto bad_format;
        s->input = INPUT_IMAGE_TOKENS;
    } else if (s->info.cond_kind == VQGAN_COND_SEGMENTATION) {
        if (inlink->format == AV_PIX_FMT_GRAY8 || inlink->format == AV_PIX_FMT_PAL8)
            s->input = INPUT_LABELS; /* pal8: the palette indices are the labels */
        else if (ff_vqgan_is_color_label_format(inlink->format) && s->have_palette)
            s->input = INPUT_LABELS; /* colours through the palette option */
        else if (ff_vqgan_is_color_label_format(inlink->format)) {
            av_log(ctx, AV_LOG_ERROR, "Input format %s holds colour-coded labels, and the "
                   "model carries no palette: set palette=FILE (\"id name #rrggbb\" lines, as "
                   "libvqgan's legend.txt) to read them, or insert format=gray8 for grey label ids.\n",
                   av_get_pix_fmt_name(inlink->format));
            return AVERROR(EINVAL);
        } else if (inlink->format == VQGAN_TOKEN_PIX_FMT)
            s->input = INPUT_COND_TOKENS;
        else
            goto bad_format;
    } else {
        s->input = INPUT_TIMING;
    }

    switch (s->input) {
    case INPUT_IMAGE_TOKENS:
    case INPUT_COND_TOKENS:
        s->gw = inlink->w;
        s->gh = inlink->h;
        if ((ret = check_grid(ctx, inlink->w, inlink->h, f)) < 0)
            return ret;
        outlink->w = s->gw * f;
        outlink->h = s->gh * f;
        break;
    case INPUT_LABELS: {
        const int cf = s->info.cond_factor;
        s->gw = (inlink->w + cf - 1) / cf;
        s->gh = (inlink->h + cf - 1) / cf;
        if ((ret = check_grid(ctx, inlink->w, inlink->h, cf)) < 0)
            return ret;
        s->lw = s->gw * cf;
        s->lh = s->gh * cf;
        /* Labels come back at their own size when both stages share the factor. */
        outlink->w = cf == f ? inlink->w : s->gw * f;
        outlink->h = cf == f ? inlink->h : s->gh * f;
        break;
    }
    case INPUT_TIMING:
        s->gw = (inlink->w + f - 1) / f;
        s->gh = (inlink->h + f - 1) / f;
        if ((int64_t)s->gw * s->gh > s->info.block_size - 1) {
            av_log(ctx, AV_LOG_ERROR, "Input %dx%d needs a %dx%d token grid (%d tokens), "
                   "but model '%s' samples at most %d tokens (block size %d - 1), "
                   "e.g. %dx%d pixels.\n", inlink->w, inlink->h, s->gw, s->gh, s->gw * s->gh,
                   s->model_path, s->info.block_size - 1, s->info.block_size,
                   s->info.window * f, s->info.window * f);
            return AVERROR(EINVAL);
        }
        outlink->w = inlink->w;
        outlink->h = inlink->h;
        break;
    }
    s->dw = s->gw * f;
    s->dh = s->gh * f;
    s->in_w      = inlink->w;
    s->in_h      = inlink->h;
    s->in_format = inlink->format;

    av_log(ctx, AV_LOG_VERBOSE, "%s %dx%d (%s) -> tokens %dx%d -> rgb24 %dx%d%s\n",
           av_get_pix_fmt_name(inlink->format), inlink->w, inlink->h,
           s->input == INPUT_LABELS       ? "labels" :
           s->input == INPUT_COND_TOKENS  ? "condition tokens" :
           s->input == INPUT_IMAGE_TOKENS ? "image tokens" : "size and timing only",
           s->gw, s->gh, outlink->w, outlink->h,
           s->dw != outlink->w || s->dh != outlink->h ? " (cropped from the padded grid)" : "");
    return 0;

bad_format:
    av_log(ctx, AV_LOG_ERROR, "Input format %s cannot be used: %s. Insert format=gray8 "
           "for label pictures.\n", av_get_pix_fmt_name(inlink->format),
           s->mode == MODE_DECODE ? "mode=decode takes gray16 image tokens from vqgan_encode" :
           "a segmentation-conditional model takes gray8 (or pal8) labels or gray16 condition tokens");
    return AVERROR(EINVAL);
}

static int reconfigure(AVFilterContext *ctx, const AVFrame *in)
{
    VQGANSynthContext *s = ctx->priv;
    AVFilterLink *inlink = ctx->inputs[0];

    av_log(ctx, AV_LOG_VERBOSE, "Input changed from %s %dx%d to %s %dx%d; reconfiguring.\n",
           av_get_pix_fmt_name(s->in_format), s->in_w, s->in_h,
           av_get_pix_fmt_name(in->format), in->width, in->height);
    inlink->w      = in->width;
    inlink->h      = in->height;
    inlink->format = in->format;
    return config_output(ctx->outputs[0]);
}

/* Check what vqgan_encode wrote into the frame metadata. */
static int check_metadata(AVFilterContext *ctx, const AVFrame *in, const char *want)
{
    VQGANSynthContext *s = ctx->priv;
    const AVDictionaryEntry *stage = av_dict_get(in->metadata, VQGAN_META_STAGE, NULL, 0);
    const AVDictionaryEntry *model = av_dict_get(in->metadata, VQGAN_META_MODEL, NULL, 0);

    if (!stage) {
        if (!s->warned_meta)
            av_log(ctx, AV_LOG_WARNING, "Input frames carry no " VQGAN_META_STAGE
                   " metadata; taking them as %s tokens.\n", want);
        s->warned_meta = 1;
        return 0;
    }
    if (strcmp(stage->value, want)) {
        av_log(ctx, AV_LOG_ERROR, "Input holds %s tokens (" VQGAN_META_STAGE "=%s), but "
               "mode=%s needs %s tokens%s.\n", stage->value, stage->value,
               s->mode == MODE_DECODE ? "decode" : "sample", want,
               s->mode == MODE_DECODE ? " from vqgan_encode=stage=image" :
               " from vqgan_encode=stage=cond, or gray8 labels; use mode=decode for image tokens");
        return AVERROR(EINVAL);
    }
    if (model && strcmp(model->value, s->model_id) && !(s->warned_meta & 2)) {
        av_log(ctx, AV_LOG_WARNING, "Tokens come from model %s, this filter uses %s ('%s'); "
               "they must share the codebook.\n", model->value, s->model_id, s->model_path);
        s->warned_meta |= 2;
    }
    return 0;
}

static int read_tokens(AVFilterContext *ctx, const AVFrame *in, int32_t *dst,
                       int codes, const char *what)
{
    for (int y = 0; y < in->height; y++) {
        const uint16_t *row = (const uint16_t *)(in->data[0] + y * in->linesize[0]);
        for (int x = 0; x < in->width; x++) {
            if (row[x] >= codes) {
                av_log(ctx, AV_LOG_ERROR, "Token %d at (%d,%d) is outside the %s codebook "
                       "of the model: accepted range 0..%d.\n", row[x], x, y, what, codes - 1);
                return AVERROR(EINVAL);
            }
            dst[y * in->width + x] = row[x];
        }
    }
    return 0;
}

/* The frame's statistics as lavfi.vqgan.* metadata (ffprobe -show_frames,
 * the metadata filter). tokens: sampled (mode=sample) or decoded tokens. */
static int set_stats_metadata(AVFrame *out, const struct vqgan_sample_stats *st,
                              double secs, int64_t tokens)
{
    char buf[64];
    int ret;

#define SET(key, ...) do {                                                   \
        snprintf(buf, sizeof(buf), __VA_ARGS__);                             \
        if ((ret = av_dict_set(&out->metadata, "lavfi.vqgan." key, buf, 0)) < 0) \
            return ret;                                                      \
    } while (0)
    SET("sampled", "%"PRId64, st->positions_sampled);
    SET("reused", "%"PRId64, st->positions_reused);
    SET("shift_x", "%d", st->shift_x);
    SET("shift_y", "%d", st->shift_y);
    SET("seconds", "%.6f", secs);
    SET("tokens_per_second", "%.1f", secs > 0 ? tokens / secs : 0.0);
#undef SET
    return 0;
}

/* A runtime command (sendcmd, zmq): applied between frames through
 * vqgan_session_set_params; a value the option or the model refuses is
 * reported and every option keeps its old value. */
static int process_command(AVFilterContext *ctx, const char *cmd, const char *args,
                           char *res, int res_len, int flags)
{
    VQGANSynthContext *s = ctx->priv;
    VQGANSynthContext old = *s;
    char *old_map = NULL, *old_palette = NULL, *old_match = NULL;
    uint8_t lut[256];
    VQGANPalette *pal = NULL;
    int have_palette = s->have_palette, ret;

    if ((s->map && !(old_map = av_strdup(s->map))) ||
        (s->palette_path && !(old_palette = av_strdup(s->palette_path))) ||
        (s->palette_match && !(old_match = av_strdup(s->palette_match)))) {
        ret = AVERROR(ENOMEM);
        goto end;
    }
    ret = ff_filter_process_command(ctx, cmd, args, res, res_len, flags);
    if (ret < 0)
        goto refused;
    if (!s->session) /* not configured yet: load_model checks the values */
        goto end;

    ret = AVERROR(EINVAL);
    if (s->temperature <= 0) {
        av_log(ctx, AV_LOG_ERROR, "temperature=%g is invalid: it must be > 0 (up to 100).\n", s->temperature);
        goto refused;
    }
    if (s->top_p <= 0) {
        av_log(ctx, AV_LOG_ERROR, "top_p=%g is invalid: accepted range (0, 1], 1 disables.\n", s->top_p);
        goto refused;
    }
    if (s->mode == MODE_SAMPLE && s->top_k > s->info.vocab_size) {
        av_log(ctx, AV_LOG_ERROR, "top_k=%d is above the vocabulary of model '%s': accepted "
               "range 0..%d.\n", s->top_k, s->model_path, s->info.vocab_size);
        goto refused;
    }
    if (s->mode == MODE_SAMPLE && s->info.cond_kind == VQGAN_COND_CLASS && s->class_id >= s->info.n_classes) {
        av_log(ctx, AV_LOG_ERROR, "class=%d is outside the classes of model '%s': accepted "
               "range 0..%d.\n", s->class_id, s->model_path, s->info.n_classes - 1);
        goto refused;
    }
    if (s->mode == MODE_SAMPLE && s->info.cond_kind == VQGAN_COND_SEGMENTATION) {
        if (!(pal = av_malloc(sizeof(*pal)))) {
            ret = AVERROR(ENOMEM);
            goto refused;
        }
        *pal = s->palette;
        if ((ret = parse_label_options(ctx, lut, pal, &have_palette)) < 0)
            goto refused;
        if (ff_vqgan_is_color_label_format(s->in_format) && !have_palette) {
            av_log(ctx, AV_LOG_ERROR, "The input holds colour labels: the palette cannot be unset.\n");
            ret = AVERROR(EINVAL);
            goto refused;
        }
    }
    {
        struct vqgan_session_params params = session_params(s);
        int r = vqgan_session_set_params(s->session, &params);
        if (r < 0) {
            av_log(ctx, AV_LOG_ERROR, "%s\n", vqgan_last_error());
            ret = ff_vqgan_averror(r);
            goto refused;
        }
    }
    if (pal) {
        memcpy(s->label_map, lut, sizeof(lut));
        s->palette      = *pal;
        s->have_palette = have_palette;
    }
    av_log(ctx, AV_LOG_VERBOSE, "Command %s=%s applied from frame %"PRId64".\n", cmd, args, s->frame_count);
    ret = 0;
    goto end;

refused:
    /* Every option back to its value before the command. */
    av_freep(&s->map);
    av_freep(&s->palette_path);
    av_freep(&s->palette_match);
    s->temperature = old.temperature;
    s->top_k       = old.top_k;
    s->top_p       = old.top_p;
    s->seed        = old.seed;
    s->class_id    = old.class_id;
    s->fast        = old.fast;
    s->map           = old_map;
    s->palette_path  = old_palette;
    s->palette_match = old_match;
    old_map = old_palette = old_match = NULL;
    if (ret != AVERROR(ENOSYS))
        av_log(ctx, AV_LOG_ERROR, "Command %s=%s refused; the old value is kept.\n", cmd, args);
end:
    av_free(old_map);
    av_free(old_palette);
    av_free(old_match);
    av_free(pal);
    return ret;
}

static int filter_frame(AVFilterLink *inlink, AVFrame *in)
{
    AVFilterContext *ctx = inlink->dst;
    VQGANSynthContext *s = ctx->priv;
    AVFilterLink *outlink = ctx->outputs[0];
    int64_t t0 = av_gettime_relative();
    struct vqgan_sample_stats stats = { 0 };
    AVFrame *out = NULL;
    const char *step = "sampling";
    int ret;

    /* Compared with what this filter was configured for: the link itself
     * may have been updated already by a filter before that reconfigured. */
    if (in->width != s->in_w || in->height != s->in_h || in->format != s->in_format) {
        ret = reconfigure(ctx, in);
        if (ret < 0)
            goto fail;
    }
    s->progress.frame       = s->frame_count;
    s->progress.last_report = t0;

    av_fast_malloc(&s->tokens, &s->tokens_size, (size_t)s->gw * s->gh * sizeof(*s->tokens));
    if (!s->tokens) {
        ret = AVERROR(ENOMEM);
        goto fail;
    }

    switch (s->input) {
    case INPUT_LABELS:
        av_fast_malloc(&s->labels, &s->labels_size, (size_t)s->lw * s->lh);
        av_fast_malloc(&s->cond, &s->cond_size, (size_t)s->gw * s->gh * sizeof(*s->cond));
        if (!s->labels || !s->cond) {
            ret = AVERROR(ENOMEM);
            goto fail;
        }
        if (ff_vqgan_is_color_label_format(in->format))
            ret = ff_vqgan_prepare_color_labels(ctx, in, &s->palette, s->label_map, s->info.n_labels,
                                                s->labels, s->lw, s->lw, s->lh);
        else
            ret = ff_vqgan_prepare_labels(ctx, in, s->label_map, s->info.n_labels,
                                          s->labels, s->lw, s->lw, s->lh);
        if (ret < 0)
            goto fail;
        step = "encoding the labels of";
        ret = vqgan_encode_labels(s->session, s->labels, s->lw, s->lw, s->lh, s->cond, NULL);
        if (ret < 0)
            break;
        step = "sampling";
        ret = vqgan_sample_conditional(s->session, s->cond, s->gw, s->gh, s->tokens);
        break;
    case INPUT_COND_TOKENS:
        av_fast_malloc(&s->cond, &s->cond_size, (size_t)s->gw * s->gh * sizeof(*s->cond));
        if (!s->cond) {
            ret = AVERROR(ENOMEM);
            goto fail;
        }
        if ((ret = check_metadata(ctx, in, "cond")) < 0 ||
            (ret = read_tokens(ctx, in, s->cond, s->info.cond_codes, "condition")) < 0)
            goto fail;
        ret = vqgan_sample_conditional(s->session, s->cond, s->gw, s->gh, s->tokens);
        break;
    case INPUT_IMAGE_TOKENS:
        if ((ret = check_metadata(ctx, in, "image")) < 0 ||
            (ret = read_tokens(ctx, in, s->tokens, s->info.image_codes, "image")) < 0)
            goto fail;
        break;
    case INPUT_TIMING:
        ret = vqgan_sample_unconditional(s->session, s->class_id, s->gw, s->gh, s->tokens);
        break;
    }
    if (ret >= 0 && s->mode == MODE_SAMPLE)
        ret = vqgan_session_get_stats(s->session, &stats);
    if (ret < 0) {
        av_log(ctx, AV_LOG_ERROR, "Failed %s frame %"PRId64" (%dx%d tokens): %s.\n",
               step, s->frame_count, s->gw, s->gh, vqgan_last_error());
        ret = ff_vqgan_averror(ret);
        goto fail;
    }

    out = ff_get_video_buffer(outlink, outlink->w, outlink->h);
    if (!out) {
        ret = AVERROR(ENOMEM);
        goto fail;
    }
    if (out->width == s->dw && out->height == s->dh) {
        ret = vqgan_decode(s->session, s->tokens, s->gw, s->gh, out->data[0], out->linesize[0]);
    } else {
        /* Decode the padded grid, keep the input's size. */
        av_fast_malloc(&s->rgb, &s->rgb_size, (size_t)s->dw * s->dh * 3);
        if (!s->rgb) {
            ret = AVERROR(ENOMEM);
            goto fail;
        }
        ret = vqgan_decode(s->session, s->tokens, s->gw, s->gh, s->rgb, (ptrdiff_t)s->dw * 3);
        if (ret >= 0)
            av_image_copy_plane(out->data[0], out->linesize[0], s->rgb, (ptrdiff_t)s->dw * 3,
                                out->width * 3, out->height);
    }
    if (ret < 0) {
        av_log(ctx, AV_LOG_ERROR, "Failed decoding frame %"PRId64" (%dx%d tokens): %s.\n",
               s->frame_count, s->gw, s->gh, vqgan_last_error());
        ret = ff_vqgan_averror(ret);
        goto fail;
    }

    ret = av_frame_copy_props(out, in);
    if (ret < 0)
        goto fail;
    /* The output is a picture, no longer a token map. */
    av_dict_set(&out->metadata, VQGAN_META_STAGE, NULL, 0);
    av_dict_set(&out->metadata, VQGAN_META_GRID, NULL, 0);
    av_dict_set(&out->metadata, VQGAN_META_FACTOR, NULL, 0);
    av_dict_set(&out->metadata, VQGAN_META_MODEL, s->model_id, 0);

    {
        double secs = (av_gettime_relative() - t0) / 1e6;
        ret = set_stats_metadata(out, &stats, secs, s->mode == MODE_SAMPLE ? stats.positions_sampled :
                                 (int64_t)s->gw * s->gh);
        if (ret < 0)
            goto fail;
        if (s->mode == MODE_SAMPLE && s->temporal != VQGAN_TEMPORAL_OFF)
            av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %"PRId64" tokens sampled, %"PRId64
                   " reused (shift %d,%d) in %.3f s (%.1f tokens/s), %dx%d decoded\n",
                   s->frame_count, stats.positions_sampled, stats.positions_reused,
                   stats.shift_x, stats.shift_y,
                   secs, secs > 0 ? stats.positions_sampled / secs : 0.0, s->dw, s->dh);
        else if (s->mode == MODE_SAMPLE)
            av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %"PRId64" tokens sampled in %.3f s "
                   "(%.1f tokens/s), %dx%d decoded\n", s->frame_count, stats.positions_sampled,
                   secs, secs > 0 ? stats.positions_sampled / secs : 0.0, s->dw, s->dh);
        else
            av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %d tokens decoded in %.3f s "
                   "(%.1f tokens/s)\n", s->frame_count, s->gw * s->gh,
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

static const AVFilterPad vqgan_synth_inputs[] = {
    {
        .name         = "default",
        .type         = AVMEDIA_TYPE_VIDEO,
        .filter_frame = filter_frame,
    },
};

static const AVFilterPad vqgan_synth_outputs[] = {
    {
        .name         = "default",
        .type         = AVMEDIA_TYPE_VIDEO,
        .config_props = config_output,
    },
};

#if LIBAVFILTER_VERSION_MAJOR >= 11
const FFFilter ff_vf_vqgan_synth = {
    .p.name        = "vqgan_synth",
    .p.description = NULL_IF_CONFIG_SMALL("Synthesize pictures with a VQGAN and its transformer (libvqgan)."),
    .p.priv_class  = &vqgan_synth_class,
#else
const AVFilter ff_vf_vqgan_synth = {
    .name          = "vqgan_synth",
    .description   = NULL_IF_CONFIG_SMALL("Synthesize pictures with a VQGAN and its transformer (libvqgan)."),
    .priv_class    = &vqgan_synth_class,
#endif
    .priv_size     = sizeof(VQGANSynthContext),
    .init          = init,
    .uninit        = uninit,
    FILTER_INPUTS(vqgan_synth_inputs),
    FILTER_OUTPUTS(vqgan_synth_outputs),
    FILTER_QUERY_FUNC2(query_formats),
    .process_command = process_command,
};
