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
 * on segmentation labels (gray8), on depth maps (gray8, gray9 to gray16, grayf32),
 * on the frame's own position map (coordinate models), on condition tokens
 * from vqgan_encode (gray16), on a class id or on nothing, and decodes them
 * to RGB.
 * mode=decode decodes image tokens from vqgan_encode (gray16).
 * complete=1|alpha keeps a picture's tokens outside a mask and samples only
 * inside it (three or two inputs, synchronised with framesync).
 * mode=origin samples nothing: it passes the labels through with the content
 * origin temporal=follow reaches at each frame (tools/vqgan-farm's pre-pass).
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
#include "framesync.h"
#include "video.h"
#include "vqgan_common.h"
#include "vqgan_complete.h"

enum VQGANMode {
    MODE_SAMPLE,
    MODE_DECODE,
    MODE_ORIGIN,
    MODE_NB
};

/* complete=: which inputs carry the picture to keep and its mask. */
enum VQGANComplete {
    COMPLETE_OFF,         ///< one input: synthesize whole frames
    COMPLETE_MASK,        ///< [condition][picture rgb24][mask gray8]
    COMPLETE_ALPHA,       ///< [condition][picture rgba, the mask in its alpha]
    COMPLETE_NB
};

enum VQGANBlend {
    BLEND_NONE,           ///< the decoded frame as it is
    BLEND_MASK,           ///< the input picture outside the pixel mask
    BLEND_NB
};

enum VQGANOutput {
    OUTPUT_PICTURE,       ///< rgb24 pictures
    OUTPUT_TOKENS,        ///< gray16 image tokens (as vqgan_encode=stage=image)
    OUTPUT_NB
};

/* What the current input frames hold. */
enum VQGANInput {
    INPUT_LABELS,         ///< gray8 (or pal8 indices) segmentation labels
    INPUT_COND_TOKENS,    ///< gray16 condition tokens
    INPUT_IMAGE_TOKENS,   ///< gray16 image tokens (mode=decode)
    INPUT_TIMING,         ///< any frame: size and timing only (class/unconditional)
    INPUT_DEPTH,          ///< gray8, gray16 or grayf32 depth maps (depth models)
    INPUT_COORD,          ///< any frame: its size gives the position map (coordinate models)
};

typedef struct VQGANSynthContext {
    const AVClass *class;
    VQGANCommon common;           ///< model, session, label options, input (vqgan_common.h)

    int     mode;
    float   temperature;
    int     top_k;
    float   top_p;
    int64_t seed;
    int     class_id;
    int     temporal;
    int     fast;
    int     complete;             ///< enum VQGANComplete
    int     mask_grow;
    int     blend;                ///< enum VQGANBlend
    int     feather;
    int     output;               ///< enum VQGANOutput
    char   *depth_range;
    int     depth_invert;
    int     cond_tokens;
    float   depth_lo, depth_hi;
    int     origin_x, origin_y;   ///< draws keyed to (row + origin_y, column + origin_x)

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
    float *depth;                 ///< depth map padded to the factor, model range
    unsigned int depth_size;

    FFFrameSync fs;               ///< complete=: the inputs' frames by timestamp
    VQGANCompletion cpl;          ///< complete=: picture, masks, kept tokens
    int pic_w, pic_h, pic_format; ///< complete=: the picture input configured

    /* mode=origin: the previous frame's condition tokens and the origin */
    int32_t *prev_cond;
    unsigned int prev_cond_size;
    int prev_gw, prev_gh;         ///< grid of prev_cond; 0: no previous frame
    int32_t cur_ox, cur_oy;
} VQGANSynthContext;

/* mode=origin's frame metadata (docs/farm.md) */
#define VQGAN_META_ORIGIN_X "lavfi.vqgan.origin_x"
#define VQGAN_META_ORIGIN_Y "lavfi.vqgan.origin_y"

#define OFFSET(x) offsetof(VQGANSynthContext, x)
#define FLAGS AV_OPT_FLAG_FILTERING_PARAM | AV_OPT_FLAG_VIDEO_PARAM
/* Options that commands (sendcmd, zmq) may change between frames. */
#define TFLAGS FLAGS | AV_OPT_FLAG_RUNTIME_PARAM

static const AVOption vqgan_synth_options[] = {
    VQGAN_COMMON_OPTIONS(VQGANSynthContext, FLAGS, TFLAGS, "remap gray8 label ids, src=dst pairs",
                         "label colours of rgb24/bgr24/rgba label frames (\"id name #rrggbb\" lines)"),
    { "mode",        "set what to do with the input", OFFSET(mode), AV_OPT_TYPE_INT, { .i64 = MODE_SAMPLE }, 0, MODE_NB - 1, FLAGS, .unit = "mode" },
        { "sample", "sample image tokens with the transformer, then decode", 0, AV_OPT_TYPE_CONST, { .i64 = MODE_SAMPLE }, 0, 0, FLAGS, .unit = "mode" },
        { "decode", "decode gray16 image tokens",                            0, AV_OPT_TYPE_CONST, { .i64 = MODE_DECODE }, 0, 0, FLAGS, .unit = "mode" },
        { "origin", "no sampling: pass the labels through with temporal=follow's content origin as metadata", 0, AV_OPT_TYPE_CONST, { .i64 = MODE_ORIGIN }, 0, 0, FLAGS, .unit = "mode" },
    { "temperature", "set the sampling temperature (> 0)", OFFSET(temperature), AV_OPT_TYPE_FLOAT, { .dbl = 1.0 }, 0, 100, TFLAGS },
    { "top_k",       "sample among the k most likely tokens (0: off, 1: greedy)", OFFSET(top_k), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, INT_MAX, TFLAGS },
    { "top_p",       "sample within this cumulative probability (1: off)", OFFSET(top_p), AV_OPT_TYPE_FLOAT, { .dbl = 1.0 }, 0, 1, TFLAGS },
    { "seed",        "set the random seed", OFFSET(seed), AV_OPT_TYPE_INT64, { .i64 = 0 }, 0, INT64_MAX, TFLAGS },
    { "class",       "set the class id of class-conditional models", OFFSET(class_id), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, INT_MAX, TFLAGS },
    { "temporal",    "set how successive frames of a video are sampled", OFFSET(temporal), AV_OPT_TYPE_INT, { .i64 = VQGAN_TEMPORAL_OFF }, VQGAN_TEMPORAL_OFF, VQGAN_TEMPORAL_STEADY, FLAGS, .unit = "temporal" },
        { "off",    "sample every frame afresh",                              0, AV_OPT_TYPE_CONST, { .i64 = VQGAN_TEMPORAL_OFF    }, 0, 0, FLAGS, .unit = "temporal" },
        { "reuse",  "reuse what did not change (frames identical to off)",    0, AV_OPT_TYPE_CONST, { .i64 = VQGAN_TEMPORAL_REUSE  }, 0, 0, FLAGS, .unit = "temporal" },
        { "follow", "as reuse, and move the picture with panned labels",      0, AV_OPT_TYPE_CONST, { .i64 = VQGAN_TEMPORAL_FOLLOW }, 0, 0, FLAGS, .unit = "temporal" },
        { "steady", "as reuse, and keep the pixels far from every change (approximate)", 0, AV_OPT_TYPE_CONST, { .i64 = VQGAN_TEMPORAL_STEADY }, 0, 0, FLAGS, .unit = "temporal" },
    { "fast",        "approximate fast sampling: one window placement predicts up to fast x fast cells (0 or 1: exact)", OFFSET(fast), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, VQGAN_MAX_FAST_STEP, TFLAGS },
    { "complete",    "keep a picture outside a mask, synthesize inside it (0: off)", OFFSET(complete), AV_OPT_TYPE_INT, { .i64 = COMPLETE_OFF }, 0, COMPLETE_NB - 1, FLAGS, .unit = "complete" },
        { "off",   "one input: synthesize whole frames",                          0, AV_OPT_TYPE_CONST, { .i64 = COMPLETE_OFF   }, 0, 0, FLAGS, .unit = "complete" },
        { "mask",  "three inputs: condition, picture (rgb24), mask (gray8, non-zero = resynthesize)", 0, AV_OPT_TYPE_CONST, { .i64 = COMPLETE_MASK  }, 0, 0, FLAGS, .unit = "complete" },
        { "alpha", "two inputs: condition, picture (rgba) whose alpha is the mask", 0, AV_OPT_TYPE_CONST, { .i64 = COMPLETE_ALPHA }, 0, 0, FLAGS, .unit = "complete" },
    { "mask_grow",   "complete: grow the mask of resampled cells by this many cells", OFFSET(mask_grow), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, VQGAN_MAX_GRID, FLAGS },
    { "blend",       "complete: how the output is made of the decoded frame and the picture", OFFSET(blend), AV_OPT_TYPE_INT, { .i64 = BLEND_MASK }, 0, BLEND_NB - 1, FLAGS, .unit = "blend" },
        { "none", "the decoded frame as it is",                                   0, AV_OPT_TYPE_CONST, { .i64 = BLEND_NONE }, 0, 0, FLAGS, .unit = "blend" },
        { "mask", "the input picture's pixels outside the mask",                  0, AV_OPT_TYPE_CONST, { .i64 = BLEND_MASK }, 0, 0, FLAGS, .unit = "blend" },
    { "feather",     "complete, blend=mask: blend over this many pixels outside the mask", OFFSET(feather), AV_OPT_TYPE_INT, { .i64 = 0 }, 0, 1024, FLAGS },
    { "output",      "what to output", OFFSET(output), AV_OPT_TYPE_INT, { .i64 = OUTPUT_PICTURE }, 0, OUTPUT_NB - 1, FLAGS, .unit = "output" },
        { "picture", "rgb24 pictures",                                            0, AV_OPT_TYPE_CONST, { .i64 = OUTPUT_PICTURE }, 0, 0, FLAGS, .unit = "output" },
        { "tokens",  "gray16 image tokens (as vqgan_encode=stage=image writes them)", 0, AV_OPT_TYPE_CONST, { .i64 = OUTPUT_TOKENS }, 0, 0, FLAGS, .unit = "output" },
    VQGAN_DEPTH_OPTIONS(OFFSET(depth_range), OFFSET(depth_invert), FLAGS),
    { "cond_tokens", "gray16 input holds condition tokens from vqgan_encode, not depth maps (depth models)", OFFSET(cond_tokens), AV_OPT_TYPE_BOOL, { .i64 = 0 }, 0, 1, FLAGS },
    { "origin_x",    "key the draws of column x to x + origin_x (follow: the first frame's content origin)", OFFSET(origin_x), AV_OPT_TYPE_INT, { .i64 = 0 }, -VQGAN_MAX_ORIGIN, VQGAN_MAX_ORIGIN, FLAGS },
    { "origin_y",    "key the draws of row y to y + origin_y (follow: the first frame's content origin)", OFFSET(origin_y), AV_OPT_TYPE_INT, { .i64 = 0 }, -VQGAN_MAX_ORIGIN, VQGAN_MAX_ORIGIN, FLAGS },
    { NULL }
};

AVFILTER_DEFINE_CLASS(vqgan_synth);

/* The input pads: one (the condition), or with complete= the condition,
 * the picture and (complete=mask) the mask. */
static av_cold int init_inputs(AVFilterContext *ctx)
{
    VQGANSynthContext *s = ctx->priv;
    static const char *const names[] = { "condition", "picture", "mask" };
    const int n = s->complete == COMPLETE_MASK ? 3 : s->complete == COMPLETE_ALPHA ? 2 : 1;
    int ret;

    s->cpl.weights_feather = -1;
    if (s->complete != COMPLETE_OFF && s->mode == MODE_DECODE) {
        av_log(ctx, AV_LOG_ERROR, "complete=%s samples the masked cells: it needs mode=sample, "
               "not mode=decode.\n", s->complete == COMPLETE_MASK ? "mask" : "alpha");
        return AVERROR(EINVAL);
    }
    if (s->complete != COMPLETE_OFF && s->mode == MODE_ORIGIN) {
        av_log(ctx, AV_LOG_ERROR, "complete=%s samples the masked cells: it needs mode=sample; "
               "mode=origin samples nothing (it passes its input through).\n",
               s->complete == COMPLETE_MASK ? "mask" : "alpha");
        return AVERROR(EINVAL);
    }
    if (s->output == OUTPUT_TOKENS && s->mode != MODE_SAMPLE) {
        av_log(ctx, AV_LOG_ERROR, "output=tokens with mode=%s has no image tokens to output "
               "(%s); use output=tokens with mode=sample.\n", s->mode == MODE_DECODE ? "decode" : "origin",
               s->mode == MODE_DECODE ? "it would return its input" : "it samples nothing");
        return AVERROR(EINVAL);
    }
    if (s->complete == COMPLETE_OFF && (s->mask_grow || s->feather))
        av_log(ctx, AV_LOG_WARNING, "mask_grow and feather apply with complete= only; ignored.\n");
    if (s->feather && s->blend != BLEND_MASK)
        av_log(ctx, AV_LOG_WARNING, "feather applies with blend=mask only; ignored.\n");

    for (int i = 0; i < n; i++) {
        AVFilterPad pad = {
            .name = s->complete == COMPLETE_OFF ? "default" : names[i],
            .type = AVMEDIA_TYPE_VIDEO,
        };
        if ((ret = ff_append_inpad(ctx, &pad)) < 0)
            return ret;
    }
    return 0;
}

/* Condition kinds sampled with the sliding window from a condition grid. */
static int spatial_condition(int kind)
{
    return kind == VQGAN_COND_SEGMENTATION || kind == VQGAN_COND_DEPTH || kind == VQGAN_COND_COORD;
}

static av_cold int init(AVFilterContext *ctx)
{
    VQGANSynthContext *s = ctx->priv;
    int ret;

    if ((ret = init_inputs(ctx)) < 0)
        return ret;
    return ff_vqgan_common_init(ctx, &s->common);
}

/* The session parameters the options give. */
static struct vqgan_session_params session_params(VQGANSynthContext *s)
{
    struct vqgan_session_params params = vqgan_session_default_params();
    params.temperature     = s->temperature;
    params.top_k           = s->mode == MODE_SAMPLE ? s->top_k : 0; /* decoding samples nothing */
    params.top_p           = s->top_p;
    params.seed            = s->seed;
    params.temporal        = s->mode == MODE_SAMPLE && spatial_condition(s->common.info.cond_kind) ?
                             s->temporal : VQGAN_TEMPORAL_OFF;
    params.fast_step       = s->fast;
    params.origin_x        = s->origin_x;
    params.origin_y        = s->origin_y;
    params.progress        = ff_vqgan_progress;
    params.progress_opaque = &s->progress;
    params.n_threads       = s->common.threads;
    ff_vqgan_session_log_setup(&params, s->progress.log_ctx);
    return params;
}

/* Load the model (from the shared cache), check the options against it. */
static int load_model(AVFilterContext *ctx)
{
    VQGANSynthContext *s = ctx->priv;
    struct vqgan_session_params params;
    int ret = ff_vqgan_common_load(ctx, &s->common);

    if (ret < 0)
        return ret;

    if (s->complete != COMPLETE_OFF && (!s->common.info.has_first_stage || s->common.info.factor <= 0)) {
        av_log(ctx, AV_LOG_ERROR, "complete=%s encodes the picture with the model's image "
               "tokenizer (first stage), but model '%s' has none.\n",
               s->complete == COMPLETE_MASK ? "mask" : "alpha", s->common.model_path);
        return AVERROR(EINVAL);
    }
    if (!s->common.info.has_first_stage || s->common.info.factor <= 0) {
        av_log(ctx, AV_LOG_ERROR, "Model '%s' has no image decoder (first stage); "
               "vqgan_synth needs one.\n", s->common.model_path);
        return AVERROR(EINVAL);
    }
    if (s->common.info.image_codes > VQGAN_MAX_CODES || s->common.info.cond_codes > VQGAN_MAX_CODES) {
        av_log(ctx, AV_LOG_ERROR, "Model '%s' has more than %d codes, more than gray16 "
               "tokens can hold.\n", s->common.model_path, VQGAN_MAX_CODES);
        return AVERROR_PATCHWELCOME;
    }

    if (s->mode == MODE_SAMPLE) {
        if (!s->common.info.has_transformer || s->common.info.cond_kind == VQGAN_COND_NONE) {
            av_log(ctx, AV_LOG_ERROR, "mode=sample needs a transformer, but model '%s' "
                   "is a tokenizer only. Use mode=decode, or a model with a transformer.\n",
                   s->common.model_path);
            return AVERROR(EINVAL);
        }
        switch (s->common.info.cond_kind) {
        case VQGAN_COND_SEGMENTATION:
            ret = ff_vqgan_parse_label_options(ctx, &s->common, s->common.label_map, &s->common.palette);
            if (ret < 0)
                return ret;
            s->common.have_palette = ret;
            break;
        case VQGAN_COND_CLASS:
            if (s->class_id >= s->common.info.n_classes) {
                av_log(ctx, AV_LOG_ERROR, "class=%d is outside the classes of model '%s': "
                       "accepted range 0..%d.\n", s->class_id, s->common.model_path,
                       s->common.info.n_classes - 1);
                return AVERROR(EINVAL);
            }
            break;
        case VQGAN_COND_DEPTH:
            ret = ff_vqgan_parse_depth_range(ctx, s->depth_range, &s->depth_lo, &s->depth_hi);
            if (ret < 0)
                return ret;
            break;
        default:
            break;
        }
        if (s->class_id && s->common.info.cond_kind != VQGAN_COND_CLASS)
            av_log(ctx, AV_LOG_WARNING, "Model '%s' is %s; class=%d is ignored.\n", s->common.model_path,
                   s->common.info.cond_kind == VQGAN_COND_COORD ? "coordinate-conditioned" :
                   s->common.info.cond_kind == VQGAN_COND_SEGMENTATION ? "segmentation-conditional" :
                   s->common.info.cond_kind == VQGAN_COND_DEPTH ? "depth-conditioned" : "unconditional",
                   s->class_id);
        if (s->common.info.cond_kind != VQGAN_COND_DEPTH && (s->depth_range || s->depth_invert || s->cond_tokens))
            av_log(ctx, AV_LOG_WARNING, "The depth_range, depth_invert and cond_tokens options apply to "
                   "depth-conditioned models only; ignored.\n");
        if (s->temporal != VQGAN_TEMPORAL_OFF && !spatial_condition(s->common.info.cond_kind))
            av_log(ctx, AV_LOG_WARNING, "The temporal option applies to models with a spatial "
                   "condition (segmentation, depth, coordinates) only; ignored.\n");
        if (s->fast > 1 && !spatial_condition(s->common.info.cond_kind))
            av_log(ctx, AV_LOG_WARNING, "The fast option applies to models with a spatial "
                   "condition (segmentation, depth, coordinates) only; ignored.\n");
        if (s->common.map && s->common.info.cond_kind != VQGAN_COND_SEGMENTATION)
            av_log(ctx, AV_LOG_WARNING, "The map option applies to segmentation-conditional "
                   "models only; ignored.\n");
    }
    if (s->mode == MODE_ORIGIN) {
        if (!s->common.info.has_transformer || s->common.info.cond_kind != VQGAN_COND_SEGMENTATION) {
            av_log(ctx, AV_LOG_ERROR, "mode=origin needs a segmentation-conditional model "
                   "(temporal=follow applies to those only), but model '%s' is not one.\n",
                   s->common.model_path);
            return AVERROR(EINVAL);
        }
        ret = ff_vqgan_parse_label_options(ctx, &s->common, s->common.label_map, &s->common.palette);
        if (ret < 0)
            return ret;
        s->common.have_palette = ret;
    }

    s->progress.log_ctx = ctx;
    params = session_params(s);
    return ff_vqgan_common_session(ctx, &s->common, &params);
}

static av_cold void uninit(AVFilterContext *ctx)
{
    VQGANSynthContext *s = ctx->priv;

    ff_vqgan_common_uninit(&s->common);
    av_freep(&s->labels);
    av_freep(&s->cond);
    av_freep(&s->tokens);
    av_freep(&s->rgb);
    ff_framesync_uninit(&s->fs);
    ff_vqgan_completion_free(&s->cpl);
    av_freep(&s->depth);
    av_freep(&s->prev_cond);
}

static int query_formats(const AVFilterContext *ctx,
                         AVFilterFormatsConfig **cfg_in,
                         AVFilterFormatsConfig **cfg_out)
{
    const VQGANSynthContext *s = ctx->priv;
    static const enum AVPixelFormat token_fmts[] = { VQGAN_TOKEN_PIX_FMT, AV_PIX_FMT_NONE };
    static const enum AVPixelFormat out_fmts[]   = { AV_PIX_FMT_RGB24, AV_PIX_FMT_NONE };
    static const enum AVPixelFormat rgb_fmts[]   = { AV_PIX_FMT_RGB24, AV_PIX_FMT_NONE };
    AVFilterFormats *in;
    int ret;

    /* mode=origin passes its input through: one list for both sides, any
     * format, checked in config_output as in sample mode (a list with
     * rgb24 in it would let ffmpeg turn a yuv label video into colours) */
    if (s->mode == MODE_ORIGIN) {
        in = VQGAN_ANY_SW_FORMATS();
        if ((ret = ff_formats_ref(in, &cfg_in[0]->formats)) < 0)
            return ret;
        return ff_formats_ref(in, &cfg_out[0]->formats);
    }

    /* In sample mode the model (loaded later) decides: gray8 labels or gray16
     * condition tokens for segmentation models, anything otherwise; checked
     * in config_output rather than converted behind the user's back. */
    if (s->mode == MODE_DECODE)
        in = ff_make_pixel_format_list(token_fmts);
    else
        in = VQGAN_ANY_SW_FORMATS();

    ret = ff_formats_ref(in, &cfg_in[0]->formats);
    if (ret < 0)
        return ret;
    /* complete=: the picture is converted to rgb24 (complete=mask); an
     * alpha picture and the mask are checked in config_output rather than
     * converted (a conversion would invent an alpha channel or grey levels). */
    for (int i = 1; i < ctx->nb_inputs; i++) {
        in = i == 1 && s->complete == COMPLETE_MASK ? ff_make_pixel_format_list(rgb_fmts) :
             VQGAN_ANY_SW_FORMATS();
        if ((ret = ff_formats_ref(in, &cfg_in[i]->formats)) < 0)
            return ret;
    }
    return ff_formats_ref(ff_make_pixel_format_list(s->output == OUTPUT_TOKENS ? token_fmts : out_fmts),
                          &cfg_out[0]->formats);
}

static int complete_frame(FFFrameSync *fs);

/* complete=: check the picture and the mask against the output the condition
 * gives, size the buffers, synchronise the inputs. Called by config_output
 * once the grid and the output size are known. */
static int config_complete(AVFilterContext *ctx, AVFilterLink *outlink)
{
    VQGANSynthContext *s = ctx->priv;
    AVFilterLink *cl = ctx->inputs[0], *pl = ctx->inputs[1];
    AVFilterLink *ml = s->complete == COMPLETE_MASK ? ctx->inputs[2] : NULL;
    const char *what = s->complete == COMPLETE_MASK ? "mask" : "alpha";
    int ret;

    if (s->complete == COMPLETE_ALPHA && pl->format != AV_PIX_FMT_RGBA) {
        av_log(ctx, AV_LOG_ERROR, "complete=alpha takes an rgba picture whose alpha channel is "
               "the mask (non-zero = resynthesize), not %s%s. Insert format=rgba, or give the "
               "mask as a third input with complete=mask.\n", av_get_pix_fmt_name(pl->format),
               av_pix_fmt_desc_get(pl->format)->flags & AV_PIX_FMT_FLAG_ALPHA ? "" : " (no alpha)");
        return AVERROR(EINVAL);
    }
    if (ml && ml->format != AV_PIX_FMT_GRAY8) {
        av_log(ctx, AV_LOG_ERROR, "The mask (input 2 of complete=mask) is %s; it must be gray8 "
               "(non-zero = resynthesize, 0 = keep). Insert format=gray8 when it is a grey "
               "picture in another format.\n", av_get_pix_fmt_name(ml->format));
        return AVERROR(EINVAL);
    }
    if (ml && (ml->w != pl->w || ml->h != pl->h)) {
        av_log(ctx, AV_LOG_ERROR, "The mask is %dx%d but the picture is %dx%d; they must "
               "have the same size.\n", ml->w, ml->h, pl->w, pl->h);
        return AVERROR(EINVAL);
    }
    if (pl->w != outlink->w || pl->h != outlink->h) {
        av_log(ctx, AV_LOG_ERROR, "The picture is %dx%d but the condition (%s %dx%d) gives a "
               "%dx%d frame; complete=%s needs the picture%s at the output's size.\n",
               pl->w, pl->h, s->input == INPUT_LABELS ? "labels" : "condition tokens",
               cl->w, cl->h, outlink->w, outlink->h, what, ml ? " and the mask" : "");
        return AVERROR(EINVAL);
    }
    if ((ret = ff_vqgan_completion_init(&s->cpl, pl->w, pl->h, s->common.info.factor, s->gw, s->gh)) < 0)
        return ret;
    s->pic_w      = pl->w;
    s->pic_h      = pl->h;
    s->pic_format = pl->format;

    /* The picture drives the output: every input's frames make events, the
     * output ends with the picture, and the condition and the mask keep
     * their last frame after they end (one still mask for a whole video). */
    ff_framesync_uninit(&s->fs);
    if ((ret = ff_framesync_init(&s->fs, ctx, ctx->nb_inputs)) < 0)
        return ret;
    s->fs.opaque    = s;
    s->fs.on_event  = complete_frame;
    s->fs.time_base = pl->time_base; /* the output keeps the picture's time base */
    for (int i = 0; i < ctx->nb_inputs; i++) {
        FFFrameSyncIn *in = &s->fs.in[i];
        in->time_base = ctx->inputs[i]->time_base;
        in->sync      = 1;
        in->before    = EXT_INFINITY;
        in->after     = i == 1 ? EXT_STOP : EXT_INFINITY;
    }
    if ((ret = ff_framesync_configure(&s->fs)) < 0)
        return ret;
    outlink->time_base = s->fs.time_base;
    outlink->sample_aspect_ratio = pl->sample_aspect_ratio;
    ff_filter_link(outlink)->frame_rate = ff_filter_link(pl)->frame_rate;
    av_log(ctx, AV_LOG_VERBOSE, "complete=%s: picture %s %dx%d kept outside the mask%s, "
           "mask_grow=%d, blend=%s, feather=%d\n", what, av_get_pix_fmt_name(pl->format),
           pl->w, pl->h, ml ? " (gray8)" : " (its alpha)", s->mask_grow,
           s->blend == BLEND_MASK ? "mask" : "none", s->feather);
    return 0;
}

/* Depth models: gray8, gray16, grayf32 depth maps, or gray16 condition tokens
 * with cond_tokens=1 (gray16 is a depth map otherwise). */
static int config_depth_input(AVFilterContext *ctx, int format)
{
    VQGANSynthContext *s = ctx->priv;

    if (format == VQGAN_TOKEN_PIX_FMT && s->cond_tokens) {
        s->input = INPUT_COND_TOKENS;
        return 0;
    }
    if (ff_vqgan_is_depth_format(format)) {
        s->input = INPUT_DEPTH;
        return 0;
    }
    if (format == AV_PIX_FMT_PAL8)
        av_log(ctx, AV_LOG_ERROR, "Input format pal8 holds segmentation labels, but model '%s' is "
               "depth-conditioned: it takes depth maps (gray8, gray9 to gray16, grayf32), or gray16 "
               "condition tokens with cond_tokens=1.\n", s->common.model_path);
    else
        av_log(ctx, AV_LOG_ERROR, "Input format %s cannot be used: depth-conditioned model '%s' "
               "takes depth maps (gray8, gray9 to gray16, grayf32), or gray16 condition tokens with "
               "cond_tokens=1. Insert format=gray16 (or grayf32) for depth pictures.\n",
               av_get_pix_fmt_name(format), s->common.model_path);
    return AVERROR(EINVAL);
}

/* vqgan_encode_depth / _coord: a libvqgan status, or an AVERROR (logged)
 * from reading the frame. */
static int condition_tokens(AVFilterContext *ctx, const AVFrame *in)
{
    VQGANSynthContext *s = ctx->priv;
    int ret;

    av_fast_malloc(&s->cond, &s->cond_size, (size_t)s->gw * s->gh * sizeof(*s->cond));
    if (!s->cond)
        return AVERROR(ENOMEM);
    if (s->input == INPUT_COORD)
        return vqgan_encode_coord(s->common.session, s->dw, s->dh, s->cond);
    if (in->metadata && av_dict_get(in->metadata, VQGAN_META_STAGE, NULL, 0)) {
        av_log(ctx, AV_LOG_ERROR, "Input frames hold tokens from vqgan_encode (" VQGAN_META_STAGE
               " metadata), not depth maps; set cond_tokens=1 to sample from condition tokens.\n");
        return AVERROR(EINVAL);
    }
    av_fast_malloc(&s->depth, &s->depth_size, (size_t)s->lw * s->lh * sizeof(*s->depth));
    if (!s->depth)
        return AVERROR(ENOMEM);
    ret = ff_vqgan_prepare_depth(ctx, in, s->depth_lo, s->depth_hi, s->depth_invert,
                                 s->depth, s->lw, s->lh);
    if (ret < 0)
        return ret;
    return vqgan_encode_depth(s->common.session, s->depth, s->lw, s->lh, s->cond, NULL);
}

/* The condition tokens of a depth frame or of the frame's coordinates;
 * an AVERROR, logged, on failure. */
static int depth_or_coord_condition(AVFilterContext *ctx, const AVFrame *in)
{
    VQGANSynthContext *s = ctx->priv;
    int ret = condition_tokens(ctx, in);

    if (ret >= 0 || ret < VQGAN_ERR_CANCELLED)   /* done, or an AVERROR already logged */
        return ret;
    return ff_vqgan_call_failed(ctx, ret, "%s frame %"PRId64" (%dx%d)",
                                s->input == INPUT_DEPTH ? "encoding the depth of" : "building the coordinates of",
                                s->common.frame_count, s->dw, s->dh);
}

static int config_output(AVFilterLink *outlink)
{
    AVFilterContext *ctx = outlink->src;
    VQGANSynthContext *s = ctx->priv;
    AVFilterLink *inlink = ctx->inputs[0];
    int f, ret;

    if (!s->common.session && (ret = load_model(ctx)) < 0)
        return ret;
    f = s->common.info.factor;

    if (s->mode == MODE_DECODE) {
        if (inlink->format != VQGAN_TOKEN_PIX_FMT)
            goto bad_format;
        s->input = INPUT_IMAGE_TOKENS;
    } else if (s->common.info.cond_kind == VQGAN_COND_SEGMENTATION) {
        if (inlink->format == AV_PIX_FMT_GRAY8 || inlink->format == AV_PIX_FMT_PAL8)
            s->input = INPUT_LABELS; /* pal8: the palette indices are the labels */
        else if (ff_vqgan_is_color_label_format(inlink->format) && s->common.have_palette)
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
    } else if (s->common.info.cond_kind == VQGAN_COND_DEPTH) {
        if ((ret = config_depth_input(ctx, inlink->format)) < 0)
            return ret;
    } else if (s->common.info.cond_kind == VQGAN_COND_COORD) {
        s->input = INPUT_COORD;
    } else {
        s->input = INPUT_TIMING;
    }

    if (s->input == INPUT_TIMING && s->complete != COMPLETE_OFF)
        inlink = ctx->inputs[1]; /* the picture gives the size, not the condition input */
    switch (s->input) {
    case INPUT_IMAGE_TOKENS:
    case INPUT_COND_TOKENS:
        s->gw = inlink->w;
        s->gh = inlink->h;
        if ((ret = ff_vqgan_check_grid(ctx, inlink->w, inlink->h, s->gw, s->gh, f)) < 0)
            return ret;
        outlink->w = s->gw * f;
        outlink->h = s->gh * f;
        break;
    case INPUT_DEPTH:
    case INPUT_LABELS: {
        const int cf = s->common.info.cond_factor;
        s->gw = (inlink->w + cf - 1) / cf;
        s->gh = (inlink->h + cf - 1) / cf;
        if ((ret = ff_vqgan_check_grid(ctx, inlink->w, inlink->h, s->gw, s->gh, cf)) < 0)
            return ret;
        s->lw = s->gw * cf;
        s->lh = s->gh * cf;
        /* Labels come back at their own size when both stages share the factor. */
        outlink->w = cf == f ? inlink->w : s->gw * f;
        outlink->h = cf == f ? inlink->h : s->gh * f;
        break;
    }
    case INPUT_COORD:
    case INPUT_TIMING:
        /* coordinates: the position map of the frame the model synthesizes
         * (the input's size padded to the factor); class and unconditional
         * models: grids larger than the block slide the window (libvqgan) */
        s->gw = (inlink->w + f - 1) / f;
        s->gh = (inlink->h + f - 1) / f;
        if ((ret = ff_vqgan_check_grid(ctx, inlink->w, inlink->h, s->gw, s->gh, f)) < 0)
            return ret;
        outlink->w = inlink->w;
        outlink->h = inlink->h;
        break;
    }
    if (s->complete != COMPLETE_OFF && (ret = config_complete(ctx, outlink)) < 0)
        return ret;
    if (s->output == OUTPUT_TOKENS) {
        outlink->w = s->gw;
        outlink->h = s->gh;
    }
    s->dw = s->gw * f;
    s->dh = s->gh * f;
    if (s->mode == MODE_ORIGIN) {   /* the input passes through */
        outlink->w = inlink->w;
        outlink->h = inlink->h;
    }
    ff_vqgan_input_configured(&s->common, inlink->w, inlink->h, inlink->format);

    av_log(ctx, AV_LOG_VERBOSE, "%s %dx%d (%s) -> tokens %dx%d -> rgb24 %dx%d%s\n",
           av_get_pix_fmt_name(inlink->format), inlink->w, inlink->h,
           s->input == INPUT_LABELS       ? "labels" :
           s->input == INPUT_COND_TOKENS  ? "condition tokens" :
           s->input == INPUT_IMAGE_TOKENS ? "image tokens" :
           s->input == INPUT_DEPTH        ? "depth" :
           s->input == INPUT_COORD        ? "size and timing only: coordinates" : "size and timing only",
           s->gw, s->gh, outlink->w, outlink->h,
           s->dw != outlink->w || s->dh != outlink->h ? " (cropped from the padded grid)" : "");
    return 0;

bad_format:
    if (s->mode == MODE_SAMPLE && ff_vqgan_is_depth_format(inlink->format)) {
        /* gray8 and native gray16 are labels and tokens here: the rest is depth */
        av_log(ctx, AV_LOG_ERROR, "Input format %s looks like a depth map, but model '%s' "
               "is segmentation-conditional: it takes gray8 (or pal8) labels, packed 8-bit RGB "
               "colour-coded labels (with a palette) or gray16 condition tokens. Depth maps need a "
               "depth-conditioned model (D-RIN).\n",
               av_get_pix_fmt_name(inlink->format), s->common.model_path);
        return AVERROR(EINVAL);
    }
    av_log(ctx, AV_LOG_ERROR, "Input format %s cannot be used: %s. Insert %s.\n",
           av_get_pix_fmt_name(inlink->format),
           s->mode == MODE_DECODE ? "mode=decode takes gray16 image tokens from vqgan_encode" :
           "a segmentation-conditional model takes gray8 (or pal8) labels, packed 8-bit RGB "
           "colour-coded labels (rgb24, bgr24, rgba, bgr0, ..., with a palette) or gray16 condition tokens",
           ff_vqgan_label_format_hint(inlink->format));
    return AVERROR(EINVAL);
}

/* The format may change too: config_output takes what the model accepts. */
static int reconfigure(AVFilterContext *ctx, const AVFrame *in)
{
    VQGANSynthContext *s = ctx->priv;
    int ret = ff_vqgan_reconfigure_input(ctx, &s->common, ctx->inputs[0], in, 1);

    return ret < 0 ? ret : config_output(ctx->outputs[0]);
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
    if (model && strcmp(model->value, s->common.model_id) && !(s->warned_meta & 2)) {
        av_log(ctx, AV_LOG_WARNING, "Tokens come from model %s, this filter uses %s ('%s'); "
               "they must share the codebook.\n", model->value, s->common.model_id, s->common.model_path);
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

/* output=tokens: send s->tokens as a gray16 token map with the properties
 * of props and the timestamp pts, the metadata vqgan_encode=stage=image
 * writes, and the frame's log line. */
static int tokens_out(AVFilterContext *ctx, const AVFrame *props, int64_t pts,
                      const struct vqgan_sample_stats *stats, int64_t t0)
{
    VQGANSynthContext *s = ctx->priv;
    AVFilterLink *outlink = ctx->outputs[0];
    AVFrame *out = ff_get_video_buffer(outlink, s->gw, s->gh);
    char grid[32], factor[16];
    double secs;
    int ret;

    if (!out)
        return AVERROR(ENOMEM);
    for (int y = 0; y < s->gh; y++) {
        uint16_t *row = (uint16_t *)(out->data[0] + y * out->linesize[0]);
        for (int x = 0; x < s->gw; x++)
            row[x] = s->tokens[y * s->gw + x];
    }
    if ((ret = ff_vqgan_copy_props(out, props)) < 0) {
        av_frame_free(&out);
        return ret;
    }
    out->pts = pts;
    snprintf(grid, sizeof(grid), "%dx%d", s->gw, s->gh);
    snprintf(factor, sizeof(factor), "%d", s->common.info.factor);
    av_dict_set(&out->metadata, VQGAN_META_STAGE, "image", 0);
    av_dict_set(&out->metadata, VQGAN_META_GRID, grid, 0);
    av_dict_set(&out->metadata, VQGAN_META_MODEL, s->common.model_id, 0);
    av_dict_set(&out->metadata, VQGAN_META_FACTOR, factor, 0);
    secs = (av_gettime_relative() - t0) / 1e6;
    if ((ret = set_stats_metadata(out, stats, secs, stats->positions_sampled)) < 0) {
        av_frame_free(&out);
        return ret;
    }
    av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %"PRId64" tokens sampled, %"PRId64" reused "
           "in %.3f s, %dx%d tokens out\n", s->common.frame_count, stats->positions_sampled,
           stats->positions_reused, secs, s->gw, s->gh);
    s->common.frame_count++;
    return ff_filter_frame(outlink, out);
}

/* mode=origin (tools/vqgan-farm's pre-pass, docs/farm.md): the content
 * origin that temporal=follow reaches at this frame, without sampling: the
 * origin options at the first frame and after a change of grid (as the
 * library's follow state starts again there), then the previous origin plus
 * the shift the library's own detection finds against the previous frame's
 * condition tokens. The input frame passes through with the origin as
 * metadata. */
static int origin_frame(AVFilterContext *ctx, AVFrame *in)
{
    VQGANSynthContext *s = ctx->priv;
    const size_t n = (size_t)s->gw * s->gh;
    const int have_prev = s->prev_gw == s->gw && s->prev_gh == s->gh;
    int32_t *swap;
    unsigned int swap_size;
    int sx, sy, ret;
    char v[16];

    ret = vqgan_follow_shift(s->common.model, s->cond, have_prev ? s->prev_cond : NULL,
                             s->gw, s->gh, &sx, &sy);
    if (ret < 0) {
        av_frame_free(&in);
        return ff_vqgan_call_failed(ctx, ret, "detecting the shift of frame %"PRId64" (%dx%d tokens)",
                                    s->common.frame_count, s->gw, s->gh);
    }
    if (have_prev) {
        s->cur_ox += sx;
        s->cur_oy += sy;
    } else {
        s->cur_ox = s->origin_x;
        s->cur_oy = s->origin_y;
    }
    /* this frame's tokens become the previous ones */
    av_fast_malloc(&s->prev_cond, &s->prev_cond_size, n * sizeof(*s->prev_cond));
    if (!s->prev_cond) {
        av_frame_free(&in);
        return AVERROR(ENOMEM);
    }
    swap = s->prev_cond; swap_size = s->prev_cond_size;
    s->prev_cond = s->cond; s->prev_cond_size = s->cond_size;
    s->cond = swap; s->cond_size = swap_size;
    s->prev_gw = s->gw;
    s->prev_gh = s->gh;

    snprintf(v, sizeof(v), "%d", (int)s->cur_ox);
    av_dict_set(&in->metadata, VQGAN_META_ORIGIN_X, v, 0);
    snprintf(v, sizeof(v), "%d", (int)s->cur_oy);
    av_dict_set(&in->metadata, VQGAN_META_ORIGIN_Y, v, 0);
    av_log(ctx, AV_LOG_VERBOSE, "frame %"PRId64": shift %d,%d, origin %d,%d\n", s->common.frame_count,
           sx, sy, (int)s->cur_ox, (int)s->cur_oy);
    s->common.frame_count++;
    return ff_filter_frame(ctx->outputs[0], in);
}

/* A runtime command (sendcmd, zmq): applied between frames through
 * vqgan_session_set_params; a value the option or the model refuses is
 * reported and every option keeps its old value. */
static int process_command(AVFilterContext *ctx, const char *cmd, const char *args,
                           char *res, int res_len, int flags)
{
    VQGANSynthContext *s = ctx->priv;
    VQGANSynthContext old = *s;
    VQGANCommand t;
    int ret = ff_vqgan_command_begin(ctx, &s->common, &t, cmd, args, res, res_len, flags);

    if (ret < 0)
        goto refused;
    if (!s->common.session) { /* not configured yet: load_model checks the values */
        ff_vqgan_command_commit(&s->common, &t);
        return ret;
    }

    /* The sampling parameters are the library's to check (vqgan_session_set_params
     * below); the class id travels with each call, so it is checked here. */
    ret = AVERROR(EINVAL);
    if (s->mode == MODE_SAMPLE && s->common.info.cond_kind == VQGAN_COND_CLASS && s->class_id >= s->common.info.n_classes) {
        av_log(ctx, AV_LOG_ERROR, "class=%d is outside the classes of model '%s': accepted "
               "range 0..%d.\n", s->class_id, s->common.model_path, s->common.info.n_classes - 1);
        goto refused;
    }
    if (s->mode != MODE_DECODE && s->common.info.cond_kind == VQGAN_COND_SEGMENTATION &&
        (ret = ff_vqgan_command_labels(ctx, &s->common, &t)) < 0)
        goto refused;
    if (!strcmp(cmd, "class") && (s->mode != MODE_SAMPLE || s->common.info.cond_kind != VQGAN_COND_CLASS))
        av_log(ctx, AV_LOG_WARNING, "Command class=%s: model '%s' %s; ignored.\n", args ? args : "",
               s->common.model_path, s->mode != MODE_SAMPLE ? "samples nothing in this mode" : "is not class-conditional");
    {
        struct vqgan_session_params params = session_params(s);
        int r = vqgan_session_set_params(s->common.session, &params);
        if (r < 0) {
            av_log(ctx, AV_LOG_ERROR, "%s\n", vqgan_last_error());
            ret = ff_vqgan_averror(r);
            goto refused;
        }
    }
    ff_vqgan_command_commit(&s->common, &t);
    av_log(ctx, AV_LOG_VERBOSE, "Command %s=%s applied from frame %"PRId64".\n", cmd, args ? args : "", s->common.frame_count);
    return 0;

refused:
    /* Every option back to its value before the command. */
    s->temperature = old.temperature;
    s->top_k       = old.top_k;
    s->top_p       = old.top_p;
    s->seed        = old.seed;
    s->class_id    = old.class_id;
    s->fast        = old.fast;
    return ff_vqgan_command_refused(ctx, &s->common, &t, cmd, args, ret);
}

static int decode_failed(AVFilterContext *ctx, int status)
{
    VQGANSynthContext *s = ctx->priv;

    return ff_vqgan_call_failed(ctx, status, "decoding frame %"PRId64" (%dx%d tokens)",
                                s->common.frame_count, s->gw, s->gh);
}

/* The image tokens decoded into s->rgb, the whole padded grid (dw x dh). */
static int decode_padded(AVFilterContext *ctx)
{
    VQGANSynthContext *s = ctx->priv;
    int ret;

    av_fast_malloc(&s->rgb, &s->rgb_size, (size_t)s->dw * s->dh * 3);
    if (!s->rgb)
        return AVERROR(ENOMEM);
    ret = vqgan_decode(s->common.session, s->tokens, s->gw, s->gh, s->rgb, (ptrdiff_t)s->dw * 3);
    return ret < 0 ? decode_failed(ctx, ret) : 0;
}

/* The label ids of a label frame (grey ids, pal8 indices or colours through
 * the palette) into s->labels, lw x lh; an AVERROR, logged, on failure. */
static int prepare_labels(AVFilterContext *ctx, const AVFrame *in)
{
    VQGANSynthContext *s = ctx->priv;

    if (ff_vqgan_is_color_label_format(in->format))
        return ff_vqgan_prepare_color_labels(ctx, in, &s->common.palette, s->common.label_map,
                                             s->common.info.n_labels, s->labels, s->lw, s->lw, s->lh);
    return ff_vqgan_prepare_labels(ctx, in, s->common.label_map, s->common.info.n_labels,
                                   s->labels, s->lw, s->lw, s->lh);
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
    if (ff_vqgan_input_changed(&s->common, in)) {
        ret = reconfigure(ctx, in);
        if (ret < 0)
            goto fail;
    }
    s->progress.frame       = s->common.frame_count;
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
        if ((ret = prepare_labels(ctx, in)) < 0)
            goto fail;
        step = "encoding the labels of";
        ret = vqgan_encode_labels(s->common.session, s->labels, s->lw, s->lw, s->lh, s->cond, NULL);
        if (ret < 0)
            break;
        step = "sampling";
        if (s->mode == MODE_ORIGIN)
            break;
        ret = vqgan_sample_conditional(s->common.session, s->cond, s->gw, s->gh, s->tokens);
        break;
    case INPUT_COND_TOKENS:
        av_fast_malloc(&s->cond, &s->cond_size, (size_t)s->gw * s->gh * sizeof(*s->cond));
        if (!s->cond) {
            ret = AVERROR(ENOMEM);
            goto fail;
        }
        if ((ret = check_metadata(ctx, in, "cond")) < 0 ||
            (ret = read_tokens(ctx, in, s->cond, s->common.info.cond_codes, "condition")) < 0)
            goto fail;
        if (s->mode != MODE_ORIGIN)
            ret = vqgan_sample_conditional(s->common.session, s->cond, s->gw, s->gh, s->tokens);
        break;
    case INPUT_IMAGE_TOKENS:
        if ((ret = check_metadata(ctx, in, "image")) < 0 ||
            (ret = read_tokens(ctx, in, s->tokens, s->common.info.image_codes, "image")) < 0)
            goto fail;
        break;
    case INPUT_TIMING:
        ret = vqgan_sample_unconditional(s->common.session, s->class_id, s->gw, s->gh, s->tokens);
        break;
    case INPUT_DEPTH:
    case INPUT_COORD:
        if ((ret = depth_or_coord_condition(ctx, in)) < 0)
            goto fail;
        ret = vqgan_sample_conditional(s->common.session, s->cond, s->gw, s->gh, s->tokens);
        break;
    }
    if (ret >= 0 && s->mode == MODE_SAMPLE)
        ret = vqgan_session_get_stats(s->common.session, &stats);
    if (ret < 0) {
        ret = ff_vqgan_call_failed(ctx, ret, "%s frame %"PRId64" (%dx%d tokens)",
                                   step, s->common.frame_count, s->gw, s->gh);
        goto fail;
    }
    if (s->output == OUTPUT_TOKENS) {
        ret = tokens_out(ctx, in, in->pts, &stats, t0);
        av_frame_free(&in);
        return ret;
    }
    if (s->mode == MODE_ORIGIN)
        return origin_frame(ctx, in);

    out = ff_get_video_buffer(outlink, outlink->w, outlink->h);
    if (!out) {
        ret = AVERROR(ENOMEM);
        goto fail;
    }
    if (out->width == s->dw && out->height == s->dh) {
        ret = vqgan_decode(s->common.session, s->tokens, s->gw, s->gh, out->data[0], out->linesize[0]);
        if (ret < 0)
            ret = decode_failed(ctx, ret);
    } else {
        /* Decode the padded grid, keep the input's size. */
        ret = decode_padded(ctx);
        if (ret >= 0)
            av_image_copy_plane(out->data[0], out->linesize[0], s->rgb, (ptrdiff_t)s->dw * 3,
                                out->width * 3, out->height);
    }
    if (ret < 0)
        goto fail;

    ret = ff_vqgan_copy_props(out, in);
    if (ret < 0)
        goto fail;
    ff_vqgan_picture_metadata(&s->common, out);

    {
        double secs = (av_gettime_relative() - t0) / 1e6;
        ret = set_stats_metadata(out, &stats, secs, s->mode == MODE_SAMPLE ? stats.positions_sampled :
                                 (int64_t)s->gw * s->gh);
        if (ret < 0)
            goto fail;
        if (s->mode == MODE_SAMPLE && s->temporal != VQGAN_TEMPORAL_OFF)
            av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %"PRId64" tokens sampled, %"PRId64
                   " reused (shift %d,%d) in %.3f s (%.1f tokens/s), %dx%d decoded\n",
                   s->common.frame_count, stats.positions_sampled, stats.positions_reused,
                   stats.shift_x, stats.shift_y,
                   secs, secs > 0 ? stats.positions_sampled / secs : 0.0, s->dw, s->dh);
        else if (s->mode == MODE_SAMPLE)
            av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %"PRId64" tokens sampled in %.3f s "
                   "(%.1f tokens/s), %dx%d decoded\n", s->common.frame_count, stats.positions_sampled,
                   secs, secs > 0 ? stats.positions_sampled / secs : 0.0, s->dw, s->dh);
        else
            av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %d tokens decoded in %.3f s "
                   "(%.1f tokens/s)\n", s->common.frame_count, s->gw * s->gh,
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

/* complete=: the condition tokens of the first input's frame, or NULL for
 * models without a spatial condition. */
static int complete_condition(AVFilterContext *ctx, const AVFrame *in, const int32_t **cond)
{
    VQGANSynthContext *s = ctx->priv;
    const size_t n = (size_t)s->gw * s->gh;
    int ret;

    *cond = NULL;
    if (s->input == INPUT_TIMING)
        return 0;
    if (in->width != s->common.in_w || in->height != s->common.in_h || in->format != s->common.in_format) {
        av_log(ctx, AV_LOG_ERROR, "The condition input changed from %s %dx%d to %s %dx%d; "
               "complete= does not follow size changes within the filter (let ffmpeg "
               "rebuild the graph: drop -reinit_filter 0).\n",
               av_get_pix_fmt_name(s->common.in_format), s->common.in_w, s->common.in_h,
               av_get_pix_fmt_name(in->format), in->width, in->height);
        return AVERROR(EINVAL);
    }
    av_fast_malloc(&s->cond, &s->cond_size, n * sizeof(*s->cond));
    if (!s->cond)
        return AVERROR(ENOMEM);
    if (s->input == INPUT_LABELS) {
        av_fast_malloc(&s->labels, &s->labels_size, (size_t)s->lw * s->lh);
        if (!s->labels)
            return AVERROR(ENOMEM);
        if ((ret = prepare_labels(ctx, in)) < 0)
            return ret;
        ret = vqgan_encode_labels(s->common.session, s->labels, s->lw, s->lw, s->lh, s->cond, NULL);
        if (ret < 0) {
            return ff_vqgan_call_failed(ctx, ret, "encoding the labels of frame %"PRId64,
                                        s->common.frame_count);
        }
    } else if (s->input == INPUT_DEPTH || s->input == INPUT_COORD) {
        if ((ret = depth_or_coord_condition(ctx, in)) < 0)
            return ret;
    } else {
        if ((ret = check_metadata(ctx, in, "cond")) < 0 ||
            (ret = read_tokens(ctx, in, s->cond, s->common.info.cond_codes, "condition")) < 0)
            return ret;
    }
    *cond = s->cond;
    return 0;
}

/* complete=: one frame event: condition, picture and mask in, one picture
 * (or token map) out. */
static int complete_frame(FFFrameSync *fs)
{
    AVFilterContext *ctx = fs->parent;
    VQGANSynthContext *s = ctx->priv;
    AVFilterLink *outlink = ctx->outputs[0];
    VQGANCompletion *c = &s->cpl;
    const int alpha = s->complete == COMPLETE_ALPHA;
    const int total = s->gw * s->gh;
    int64_t t0 = av_gettime_relative(), masked;
    struct vqgan_sample_stats stats = { 0 };
    AVFrame *cin, *pic, *mask = NULL, *out = NULL;
    const int32_t *cond;
    int64_t pts;
    int ret, cells, kept_changed, encoded = 0;

    if ((ret = ff_framesync_get_frame(fs, 0, &cin, 0)) < 0 ||
        (ret = ff_framesync_get_frame(fs, 1, &pic, 0)) < 0 ||
        (!alpha && (ret = ff_framesync_get_frame(fs, 2, &mask, 0)) < 0))
        return ret;
    if (!cin || !pic || (!alpha && !mask)) {
        /* an input that ended before its first frame (the others are
         * extended after their last) */
        av_log(ctx, AV_LOG_ERROR, "complete=%s: the %s input (input %d) ended before its first frame; "
               "every input needs at least one.\n", alpha ? "alpha" : "mask",
               !cin ? "condition" : !pic ? "picture" : "mask", !cin ? 0 : !pic ? 1 : 2);
        return AVERROR(EINVAL);
    }
    pts = av_rescale_q(fs->pts, fs->time_base, outlink->time_base);
    if (pic->width != s->pic_w || pic->height != s->pic_h || pic->format != s->pic_format ||
        (mask && (mask->width != s->pic_w || mask->height != s->pic_h ||
                  mask->format != AV_PIX_FMT_GRAY8))) {
        char mask_now[64] = "";
        if (mask)
            snprintf(mask_now, sizeof(mask_now), ", mask %s %dx%d (gray8 %dx%d needed)",
                     av_get_pix_fmt_name(mask->format), mask->width, mask->height, s->pic_w, s->pic_h);
        av_log(ctx, AV_LOG_ERROR, "The picture%s changed size or format mid-stream "
               "(%s %dx%d configured, now %s %dx%d%s); complete= does not follow such "
               "changes within the filter.\n", mask ? " or the mask" : "",
               av_get_pix_fmt_name(s->pic_format), s->pic_w, s->pic_h,
               av_get_pix_fmt_name(pic->format), pic->width, pic->height, mask_now);
        return AVERROR(EINVAL);
    }
    s->progress.frame       = s->common.frame_count;
    s->progress.last_report = t0;
    av_fast_malloc(&s->tokens, &s->tokens_size, (size_t)total * sizeof(*s->tokens));
    if (!s->tokens)
        return AVERROR(ENOMEM);
    if ((ret = complete_condition(ctx, cin, &cond)) < 0)
        return ret;

    masked = alpha ? ff_vqgan_completion_read_mask(c, pic->data[0] + 3, pic->linesize[0], 4) :
                     ff_vqgan_completion_read_mask(c, mask->data[0], mask->linesize[0], 1);
    if ((cells = ff_vqgan_completion_cells(c, s->mask_grow)) < 0)
        return cells;
    ff_vqgan_completion_read_picture(c, pic->data[0], pic->linesize[0], alpha ? 4 : 3);

    /* The picture's tokens, unless every cell is sampled; an unchanged
     * picture keeps the tokens of the previous frame (the encoder is
     * deterministic). */
    if (cells < total) {
        if (!c->have_prev || memcmp(c->rgb, c->prev_rgb, (size_t)c->pw * c->ph * 3)) {
            ret = vqgan_encode_image(s->common.session, c->rgb, (ptrdiff_t)c->pw * 3, c->pw, c->ph,
                                     c->given);
            if (ret < 0) {
                return ff_vqgan_call_failed(ctx, ret, "encoding the picture of frame %"PRId64" (%dx%d)",
                                            s->common.frame_count, c->pw, c->ph);
            }
            encoded = 1;
        }
    } else {
        memset(c->given, 0, (size_t)total * sizeof(*c->given));
    }
    kept_changed = ff_vqgan_completion_kept_changed(c);

    ret = vqgan_sample_masked(s->common.session, cond, s->class_id, c->given, c->cells,
                              s->gw, s->gh, s->tokens);
    if (ret >= 0)
        ret = vqgan_session_get_stats(s->common.session, &stats);
    if (ret < 0) {
        return ff_vqgan_call_failed(ctx, ret, "sampling frame %"PRId64" (%d of %dx%d cells masked)",
                                    s->common.frame_count, cells, s->gw, s->gh);
    }
    if (cells < total) {
        memcpy(c->prev_given, c->given, (size_t)total * sizeof(*c->given));
        memcpy(c->prev_rgb, c->rgb, (size_t)c->pw * c->ph * 3);
        c->have_prev = 1;
    } else {
        c->have_prev = 0;
    }

    av_log(ctx, AV_LOG_VERBOSE, "frame %"PRId64": %"PRId64" pixels masked, %d of %d cells "
           "sampled, picture %s, %d kept tokens changed\n", s->common.frame_count, masked, cells,
           total, cells == total ? "not needed" : encoded ? "encoded" : "unchanged",
           kept_changed);
    if (s->output == OUTPUT_TOKENS)
        return tokens_out(ctx, pic, pts, &stats, t0);

    out = ff_get_video_buffer(outlink, outlink->w, outlink->h);
    if (!out)
        return AVERROR(ENOMEM);
    if (s->blend == BLEND_MASK && !cells) {
        /* Nothing resampled: the picture itself, not its reconstruction. */
        av_image_copy_plane(out->data[0], out->linesize[0], c->rgb, (ptrdiff_t)c->pw * 3,
                            out->width * 3, out->height);
    } else {
        if ((ret = decode_padded(ctx)) < 0)
            goto fail;
        if (s->blend == BLEND_MASK)
            ret = ff_vqgan_completion_blend(c, s->feather, out->data[0], out->linesize[0],
                                            s->rgb, (ptrdiff_t)s->dw * 3);
        else
            av_image_copy_plane(out->data[0], out->linesize[0], s->rgb, (ptrdiff_t)s->dw * 3,
                                out->width * 3, out->height);
        if (ret < 0)
            goto fail;
    }
    if ((ret = ff_vqgan_copy_props(out, pic)) < 0)
        goto fail;
    out->pts = pts;
    ff_vqgan_picture_metadata(&s->common, out);

    {
        double secs = (av_gettime_relative() - t0) / 1e6;
        if ((ret = set_stats_metadata(out, &stats, secs, stats.positions_sampled)) < 0)
            goto fail;
        av_log(ctx, AV_LOG_INFO, "frame %"PRId64": %d of %d cells masked, %d kept tokens "
               "changed; %"PRId64" tokens sampled, %"PRId64" reused in %.3f s, %dx%d %s\n",
               s->common.frame_count, cells, total, kept_changed, stats.positions_sampled,
               stats.positions_reused, secs, out->width, out->height,
               s->blend == BLEND_MASK && !cells ? "copied" : "decoded");
    }
    s->common.frame_count++;
    return ff_filter_frame(outlink, out);

fail:
    av_frame_free(&out);
    return ret;
}

/* One input: as libavfilter's default activation would call filter_frame;
 * complete=: framesync. */
static int activate(AVFilterContext *ctx)
{
    VQGANSynthContext *s = ctx->priv;
    AVFilterLink *inlink = ctx->inputs[0], *outlink = ctx->outputs[0];
    AVFrame *in;
    int ret;

    if (s->complete != COMPLETE_OFF)
        return ff_framesync_activate(&s->fs);

    FF_FILTER_FORWARD_STATUS_BACK(outlink, inlink);
    ret = ff_inlink_consume_frame(inlink, &in);
    if (ret < 0)
        return ret;
    if (ret > 0) {
        ret = filter_frame(inlink, in);
        if (ret >= 0 && ff_inlink_queued_frames(inlink))
            ff_filter_set_ready(ctx, 100);
        return ret;
    }
    FF_FILTER_FORWARD_STATUS(inlink, outlink);
    FF_FILTER_FORWARD_WANTED(outlink, inlink);
    return FFERROR_NOT_READY;
}

static const AVFilterPad vqgan_synth_outputs[] = {
    {
        .name         = "default",
        .type         = AVMEDIA_TYPE_VIDEO,
        .config_props = config_output,
    },
};

const VQGANFilter ff_vf_vqgan_synth = {
    .VQGAN_PUBLIC(name)        = "vqgan_synth",
    .VQGAN_PUBLIC(description) = NULL_IF_CONFIG_SMALL("Synthesize pictures with a VQGAN and its transformer (libvqgan)."),
    .VQGAN_PUBLIC(priv_class)  = &vqgan_synth_class,
    .VQGAN_PUBLIC(flags)       = AVFILTER_FLAG_DYNAMIC_INPUTS,
    .priv_size     = sizeof(VQGANSynthContext),
    .init          = init,
    .uninit        = uninit,
    .activate      = activate,
    FILTER_OUTPUTS(vqgan_synth_outputs),
    FILTER_QUERY_FUNC2(query_formats),
    .process_command = process_command,
};
