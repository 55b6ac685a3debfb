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

#ifndef AVFILTER_VQGAN_COMMON_H
#define AVFILTER_VQGAN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <vqgan.h>

#include "libavutil/attributes.h"
#include "libavutil/frame.h"

#include "avfilter.h"
#include "filters.h"
#include "version_major.h"

/* The environment variable naming the model when no model= option is given. */
#define VQGAN_MODEL_ENV "VQGAN_MODEL"

/* Token maps travel as gray16 frames, one pixel per token. */
#define VQGAN_TOKEN_PIX_FMT AV_PIX_FMT_GRAY16
#define VQGAN_MAX_CODES     65536

/* Frame metadata written by vqgan_encode and read by vqgan_synth. */
#define VQGAN_META_STAGE  "lavfi.vqgan.stage"
#define VQGAN_META_GRID   "lavfi.vqgan.grid"
#define VQGAN_META_MODEL  "lavfi.vqgan.model"
#define VQGAN_META_FACTOR "lavfi.vqgan.factor"

/* libavfilter before 11 (FFmpeg 7.x) lacks ff_make_pixel_format_list(). */
#if LIBAVFILTER_VERSION_MAJOR < 11
#define ff_make_pixel_format_list(fmts) ff_make_format_list((const int *)(fmts))
#endif

/* The filter definition: FFFilter (libavfilter 11, FFmpeg 8 and later) wraps
 * the public AVFilter fields in .p; before, the filter is an AVFilter.
 *     const VQGANFilter ff_vf_x = { .VQGAN_PUBLIC(name) = "x", ... };     */
#if LIBAVFILTER_VERSION_MAJOR >= 11
typedef FFFilter VQGANFilter;
#define VQGAN_PUBLIC(field) p.field
#else
typedef AVFilter VQGANFilter;
#define VQGAN_PUBLIC(field) field
#endif

typedef struct VQGANProgress {
    void    *log_ctx;
    int64_t  frame;        ///< index of the frame being processed
    int64_t  last_report;  ///< av_gettime_relative() of the last report
} VQGANProgress;

/**
 * Route libvqgan's messages to av_log() (done once per process).
 */
void ff_vqgan_log_init(void);

/**
 * Attribute the messages of a session's calls to the filter instance log_ctx
 * (the session's log_callback and log_opaque).
 */
void ff_vqgan_session_log_setup(struct vqgan_session_params *params, void *log_ctx);

/**
 * Map a libvqgan status to an AVERROR code.
 */
int ff_vqgan_averror(int status);

/**
 * Check that path names a file (not missing, not a directory) without
 * loading it; logs a message naming the file on failure.
 */
int ff_vqgan_model_check_path(void *log_ctx, const char *path);

/**
 * Find the model file of a filter instance, in this order: the model option
 * (*path, when set); the VQGAN_MODEL environment variable; the installed
 * default model (vqgan_default_model_path(), from libvqgan's configured
 * datadir); and, only in an FFmpeg built inside libvqgan's build tree
 * (VQGAN_BUILD_TREE_MODEL defined by that build), the tree's own copy.
 * The option and the variable are taken as given (a missing file is an
 * error naming it); the defaults are used when they exist. On success *path
 * holds the file (replaced with an av_malloc'ed string when it was unset);
 * otherwise the message lists every place tried.
 */
int ff_vqgan_find_model(void *log_ctx, char **path);

/**
 * Take a reference to the model in path, loaded with the given precision
 * (enum vqgan_precision), from libvqgan's shared cache and read its
 * description. Logs a message naming the file on failure.
 */
int ff_vqgan_model_open(void *log_ctx, const char *path, int precision,
                        struct vqgan_model **model, struct vqgan_model_info *info);

/* The precision option of both filters (an int field of their context). */
#define VQGAN_PRECISION_OPTIONS(field_, unit_, flags_)                                                  \
    { "precision", "set the arithmetic of the model's products", field_, AV_OPT_TYPE_INT,               \
      { .i64 = VQGAN_PRECISION_AUTO }, VQGAN_PRECISION_AUTO, VQGAN_PRECISION_BF16, flags_, .unit = unit_ }, \
        { "auto", "the library's default (fp32)", 0, AV_OPT_TYPE_CONST,                                 \
          { .i64 = VQGAN_PRECISION_AUTO }, 0, 0, flags_, .unit = unit_ },                               \
        { "fp32", "fp32 products: reproducible across machines", 0, AV_OPT_TYPE_CONST,                  \
          { .i64 = VQGAN_PRECISION_FP32 }, 0, 0, flags_, .unit = unit_ },                               \
        { "bf16", "bf16 products where the CPU has them (faster; other tokens)", 0, AV_OPT_TYPE_CONST,  \
          { .i64 = VQGAN_PRECISION_BF16 }, 0, 0, flags_, .unit = unit_ }

/* Colour-coded label maps: a palette of label colours (legend.txt format). */
#define VQGAN_PALETTE_MAX 256
typedef struct VQGANPalette {
    int      count;
    uint32_t rgb[VQGAN_PALETTE_MAX];   ///< 0xRRGGBB, sorted
    uint8_t  id[VQGAN_PALETTE_MAX];    ///< label of rgb[i]
    char     name[VQGAN_PALETTE_MAX][48];
    char     source[256];              ///< "'FILE'" or "of model 'FILE'", for messages
    int      match_dist;               ///< 0: exact; > 0: nearest within this distance
} VQGANPalette;

/**
 * What both filters hold: the options every one of them has (model, threads,
 * precision, and the label options map, palette, palette_match), the model
 * and its session, the label lookup, and the input configured. Embedded as
 * the field `common` of each filter's context (VQGAN_COMMON_OPTIONS).
 */
typedef struct VQGANCommon {
    char   *model_path;
    int     threads;
    int     precision;
    char   *map;
    char   *palette_path;
    char   *palette_match;

    struct vqgan_model     *model;
    struct vqgan_model_info info;
    struct vqgan_session   *session;
    char    model_id[17];             ///< the model's identity, hex (frame metadata)
    uint8_t label_map[256];
    VQGANPalette palette;             ///< colour label frames (rgb24, bgr24, rgba)
    int     have_palette;

    int     in_w, in_h, in_format;    ///< input the filter is configured for
    int64_t frame_count;
} VQGANCommon;

/* The common options of a filter whose context type_ embeds a VQGANCommon as
 * `common`; the map and palette help strings name what the filter applies
 * them to. */
#define VQGAN_COMMON_OFFSET(type_, field_) offsetof(type_, common.field_)
#define VQGAN_COMMON_OPTIONS(type_, flags_, runtime_flags_, map_help_, palette_help_)                    \
    { "model",   "set the libvqgan model file (GGUF)", VQGAN_COMMON_OFFSET(type_, model_path),            \
      AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0, flags_ },                                                \
    { "threads", "set the number of threads (0: all online cores)", VQGAN_COMMON_OFFSET(type_, threads),  \
      AV_OPT_TYPE_INT, { .i64 = 0 }, 0, 1024, flags_ },                                                   \
    VQGAN_PRECISION_OPTIONS(VQGAN_COMMON_OFFSET(type_, precision), "precision", flags_),                 \
    { "map", map_help_, VQGAN_COMMON_OFFSET(type_, map), AV_OPT_TYPE_STRING, { .str = NULL }, 0, 0,       \
      runtime_flags_ },                                                                                   \
    { "palette", palette_help_, VQGAN_COMMON_OFFSET(type_, palette_path), AV_OPT_TYPE_STRING,             \
      { .str = NULL }, 0, 0, runtime_flags_ },                                                            \
    { "palette_match", "how label colours match the palette: exact, or nearest:DIST",                     \
      VQGAN_COMMON_OFFSET(type_, palette_match), AV_OPT_TYPE_STRING, { .str = "exact" }, 0, 0,           \
      runtime_flags_ }

/**
 * init: route libvqgan's messages to av_log() and find the model file (the
 * model itself is loaded when the output is configured: ffmpeg creates and
 * frees a graph once before the one that runs).
 */
int ff_vqgan_common_init(void *log_ctx, VQGANCommon *c);

/**
 * Take a reference to the model (c->model_path, c->precision) from the
 * shared cache, dropping one left by an earlier failed attempt; fills
 * c->info and c->model_id.
 */
int ff_vqgan_common_load(void *log_ctx, VQGANCommon *c);

/**
 * Create the session with params, its thread count from the threads option
 * and its messages attributed to the filter instance log_ctx.
 */
int ff_vqgan_common_session(void *log_ctx, VQGANCommon *c, struct vqgan_session_params *params);

/**
 * Free the session and drop the model reference.
 */
void ff_vqgan_common_uninit(VQGANCommon *c);

/**
 * The label options (map, palette, palette_match) against the loaded model,
 * into lut and pal, so that a refused command leaves the current ones.
 * Without the palette option the model's own palette is taken, when it has
 * one. Returns have_palette (1 or 0), or a negative AVERROR.
 */
int ff_vqgan_parse_label_options(void *log_ctx, const VQGANCommon *c, uint8_t lut[256], VQGANPalette *pal);

/**
 * 1 when frame in differs in size or format from the input configured.
 */
int ff_vqgan_input_changed(const VQGANCommon *c, const AVFrame *in);

/**
 * Record the input the filter is now configured for.
 */
void ff_vqgan_input_configured(VQGANCommon *c, int w, int h, int format);

/**
 * A frame of another size (or, when formats is set, format) than the input
 * configured: the link takes the frame's, to be configured again by the
 * caller. Fails when the format changed and formats is 0 (one format is
 * negotiated).
 */
int ff_vqgan_reconfigure_input(void *log_ctx, const VQGANCommon *c, AVFilterLink *inlink,
                               const AVFrame *in, int formats);

/**
 * A runtime command (sendcmd, zmq) as a transaction over the label options:
 * ff_vqgan_command_begin applies it to the options, keeping the old label
 * option strings; ff_vqgan_command_labels parses the label options into the
 * transaction; then either ff_vqgan_command_commit (the parsed lookup and
 * palette become the filter's) or ff_vqgan_command_refused (every label
 * option back to its old value, one message). A filter restores its own
 * other options itself before calling ff_vqgan_command_refused.
 */
typedef struct VQGANCommand {
    char         *old[3];             ///< map, palette, palette_match before the command
    VQGANPalette *pal;                ///< parsed palette (NULL: labels not parsed)
    uint8_t       lut[256];
    int           have_palette;
} VQGANCommand;

int  ff_vqgan_command_begin(AVFilterContext *ctx, VQGANCommon *c, VQGANCommand *t, const char *cmd,
                            const char *args, char *res, int res_len, int flags);
int  ff_vqgan_command_labels(void *log_ctx, VQGANCommon *c, VQGANCommand *t);
void ff_vqgan_command_commit(VQGANCommon *c, VQGANCommand *t);
int  ff_vqgan_command_refused(void *log_ctx, VQGANCommon *c, VQGANCommand *t, const char *cmd,
                              const char *args, int ret);

/**
 * An input of w x h pixels gives a gw x gh token grid at factor f: fails,
 * naming the largest input accepted, when the grid is over VQGAN_MAX_GRID.
 */
int ff_vqgan_check_grid(void *log_ctx, int w, int h, int gw, int gh, int f);

/**
 * Mark out as a picture (no longer a token map) of the model c->model_id.
 */
void ff_vqgan_picture_metadata(const VQGANCommon *c, AVFrame *out);

/**
 * Log a failed libvqgan call once, with what the filter was doing and the
 * library's message, and return its AVERROR.
 */
int ff_vqgan_call_failed(void *log_ctx, int status, const char *fmt, ...) av_printf_format(3, 4);

/**
 * Create a session with the given parameters; logs on failure.
 */
int ff_vqgan_session_new(void *log_ctx, struct vqgan_model *model,
                         const struct vqgan_session_params *params,
                         struct vqgan_session **session);

/**
 * Parse a label remap "src=dst[,src=dst...]" (',', '|' or ' ' separated)
 * into lut; ids not named map to themselves. Every dst must be below
 * n_labels. An empty or NULL spec leaves the identity.
 */
int ff_vqgan_parse_label_map(void *log_ctx, const char *spec, int n_labels,
                             uint8_t lut[256]);

/**
 * Copy a w x h gray8 label frame through lut into dst (pw x ph), replicating
 * the right column and the bottom row into the padding. Fails, naming the
 * id, its position and the accepted range, when a label is not below
 * n_labels.
 */
int ff_vqgan_prepare_labels(void *log_ctx, const AVFrame *in, const uint8_t lut[256],
                            int n_labels, uint8_t *dst, ptrdiff_t dst_stride,
                            int pw, int ph);

/**
 * Read a palette file: one entry a line, "id name #rrggbb" (tab- or
 * space-separated; further columns and lines starting with '#' ignored),
 * the format of libvqgan's samples/legend.txt and tools/colorize_labels.py.
 * Every id must be below n_labels; ids and colours must be unique.
 */
int ff_vqgan_palette_load(void *log_ctx, const char *path, int n_labels, VQGANPalette *pal);

/**
 * The palette the model file carries (vqgan_model_label_color), sorted as
 * ff_vqgan_palette_load's; returns 1, or 0 when the model has none.
 */
int ff_vqgan_palette_from_model(void *log_ctx, const struct vqgan_model *model,
                                const char *model_path, int n_labels, VQGANPalette *pal);

/**
 * Parse palette_match: "exact" or "nearest:DIST" / "nearest=DIST" (DIST 1..442, the
 * Euclidean RGB distance) into pal->match_dist.
 */
int ff_vqgan_palette_parse_match(void *log_ctx, const char *spec, VQGANPalette *pal);

/**
 * 1 when fmt is a colour label format the palette applies to: packed RGB
 * with 8-bit components, 3 or 4 bytes a pixel (rgb24, bgr24, rgba, bgra,
 * argb, abgr, rgb0, bgr0, 0rgb, 0bgr; alpha or padding ignored).
 */
int ff_vqgan_is_color_label_format(int fmt);

/**
 * The conversion to suggest for a label input fmt the filter cannot read:
 * "format=rgb24 for colour-coded labels" for an RGB format, else
 * "format=gray8 for label pictures".
 */
const char *ff_vqgan_label_format_hint(int fmt);

/* Every software pixel format: for inputs the model (loaded later) decides
 * on in config_output, rather than letting ffmpeg convert behind the user's
 * back (callers include formats.h). */
#define VQGAN_ANY_SW_FORMATS() \
    ff_formats_pixdesc_filter(0, AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BITSTREAM)

/**
 * As ff_vqgan_prepare_labels for a colour label frame (ff_vqgan_is_color_label_format; alpha
 * ignored): each colour becomes its palette id (exact, or the nearest within
 * pal->match_dist), then goes through lut. A colour that is not in the
 * palette (or farther than the distance) fails with a message naming the
 * colour, its position and the closest palette entry.
 */
int ff_vqgan_prepare_color_labels(void *log_ctx, const AVFrame *in, const VQGANPalette *pal,
                                  const uint8_t lut[256], int n_labels, uint8_t *dst,
                                  ptrdiff_t dst_stride, int pw, int ph);

/**
 * av_frame_copy_props for an output frame: where its size differs from the
 * source's (token maps, decoded grids), the source's crop fields (in its
 * pixels) are cleared rather than carried onto it.
 */
int ff_vqgan_copy_props(AVFrame *out, const AVFrame *src);

/**
 * Copy a w x h picture of bpp bytes per pixel into dst (pw x ph), replicating
 * the right column and the bottom row into the padding.
 */
void ff_vqgan_copy_padded(uint8_t *dst, ptrdiff_t dst_stride,
                          const uint8_t *src, ptrdiff_t src_stride,
                          int w, int h, int pw, int ph, int bpp);

/**
 * libvqgan progress callback: reports at verbose level, at most every 2 s.
 * opaque is a VQGANProgress.
 */
int ff_vqgan_progress(void *opaque, int64_t done, int64_t total);

/**
 * Short name of a condition kind (enum vqgan_cond_kind).
 */
const char *ff_vqgan_cond_name(int cond_kind);

/**
 * Whether a pixel format carries depth maps (gray8, gray9 to gray16, grayf32; both byte orders).
 */
int ff_vqgan_is_depth_format(int format);

/**
 * Parse depth_range "LO:HI" or "LO|HI" (LO < HI, in the input's units; '|'
 * needs no escaping inside a filter graph). An empty or NULL
 * spec gives lo = hi = 0: the reference's per-image min-max.
 */
int ff_vqgan_parse_depth_range(void *log_ctx, const char *spec, float *lo, float *hi);

/**
 * Convert a w x h depth frame (gray8, gray16, grayf32) into dst (planar
 * float pw x ph, edges replicated into the padding) and map it to the
 * model's [-1, 1] with vqgan_depth_normalize(lo, hi, invert). Fails, with a
 * message, on a non-finite value.
 */
int ff_vqgan_prepare_depth(void *log_ctx, const AVFrame *in, float lo, float hi, int invert,
                           float *dst, int pw, int ph);

/* The depth options of both filters (fields of their context). */
#define VQGAN_DEPTH_OPTIONS(range_, invert_, flags_)                                                    \
    { "depth_range", "map depth LO:HI or LO|HI (input units) to the model's range for the whole stream "        \
      "(default: each frame's own min-max, as the reference)", range_, AV_OPT_TYPE_STRING,               \
      { .str = NULL }, 0, 0, flags_ },                                                                   \
    { "depth_invert", "depth input where larger means farther (the models take larger = nearer)",      \
      invert_, AV_OPT_TYPE_BOOL, { .i64 = 0 }, 0, 1, flags_ }

#endif /* AVFILTER_VQGAN_COMMON_H */
