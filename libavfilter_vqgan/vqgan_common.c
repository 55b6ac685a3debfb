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
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libavutil/avstring.h"
#include "libavutil/dict.h"
#include "libavutil/error.h"
#include "libavutil/macros.h"
#include "libavutil/mem.h"
#include "libavutil/pixfmt.h"
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

/* libvqgan's messages to av_log(): opaque is the filter instance whose
 * session made the call (per-session log_callback), or NULL (model loading,
 * worker threads: the "libvqgan" context). Errors come at debug level: the
 * filters report every failed call themselves, with vqgan_last_error() and
 * the frame or file at fault, so that a failure is one line. */
static void vqgan_log_callback_av(void *opaque, int level, const char *msg)
{
    static const int levels[] = {
        [VQGAN_LOG_ERROR]   = AV_LOG_DEBUG,
        [VQGAN_LOG_WARNING] = AV_LOG_WARNING,
        [VQGAN_LOG_INFO]    = AV_LOG_INFO,
        [VQGAN_LOG_VERBOSE] = AV_LOG_VERBOSE,
        [VQGAN_LOG_DEBUG]   = AV_LOG_DEBUG,
    };
    int av_level = level >= 0 && level < (int)FF_ARRAY_ELEMS(levels) ? levels[level] : AV_LOG_DEBUG;
    size_t len = msg ? strlen(msg) : 0;

    if (!len)
        return;
    av_log(opaque ? opaque : (void *)&vqgan_log_ctx, av_level, "%s%s", msg,
           msg[len - 1] == '\n' ? "" : "\n");
}

void ff_vqgan_session_log_setup(struct vqgan_session_params *params, void *log_ctx)
{
    params->log_callback = vqgan_log_callback_av;
    params->log_opaque   = log_ctx;
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

/* 1 when path is a regular file (or a link to one) that can be read. */
static int model_file_exists(const char *path)
{
    struct stat st;
    return path && *path && stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

int ff_vqgan_find_model(void *log_ctx, char **path)
{
    const char *env = getenv(VQGAN_MODEL_ENV);
    const char *installed = vqgan_default_model_path();
#ifdef VQGAN_BUILD_TREE_MODEL
    const char *build_tree = VQGAN_BUILD_TREE_MODEL;
#else
    const char *build_tree = NULL;
#endif
    const char *found = NULL;

    if (*path)
        return ff_vqgan_model_check_path(log_ctx, *path);
    if (env && *env) {
        int ret = ff_vqgan_model_check_path(log_ctx, env);
        if (ret < 0) {
            av_log(log_ctx, AV_LOG_ERROR, "(The model file came from the " VQGAN_MODEL_ENV
                   " environment variable, as no model option was given.)\n");
            return ret;
        }
        found = env;
    } else if (model_file_exists(installed)) {
        found = installed;
    } else if (model_file_exists(build_tree)) {
        found = build_tree;
    } else {
        av_log(log_ctx, AV_LOG_ERROR, "No model file found. Tried: the model option "
               "(not set); the " VQGAN_MODEL_ENV " environment variable (not set); '%s' "
               "(libvqgan %s's installed default model: %s)%s%s%s. Set model=FILE (a "
               "libvqgan model file, .gguf) or " VQGAN_MODEL_ENV "=FILE, or install "
               "libvqgan's default model.\n",
               installed, vqgan_version(), access(installed, F_OK) ? "no such file" : "not a readable file",
               build_tree ? "; '" : "", build_tree ? build_tree : "",
               build_tree ? "' (the libvqgan build tree's copy: no such file)" : "");
        return AVERROR(ENOENT);
    }
    *path = av_strdup(found);
    if (!*path)
        return AVERROR(ENOMEM);
    av_log(log_ctx, AV_LOG_VERBOSE, "No model option: using '%s' (%s).\n", found,
           found == env ? "from " VQGAN_MODEL_ENV : found == installed ? "the installed default" :
           "the build tree's default");
    return 0;
}

int ff_vqgan_model_open(void *log_ctx, const char *path, int precision,
                        struct vqgan_model **model, struct vqgan_model_info *info)
{
    struct vqgan_model_params params = vqgan_model_default_params();
    int ret;

    ff_vqgan_log_init();

    /* the library checks the path (missing, a directory, unreadable) */
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

int ff_vqgan_common_init(void *log_ctx, VQGANCommon *c)
{
    ff_vqgan_log_init();
    return ff_vqgan_find_model(log_ctx, &c->model_path);
}

int ff_vqgan_common_load(void *log_ctx, VQGANCommon *c)
{
    int ret;

    vqgan_model_unref(c->model); /* from an earlier failed attempt */
    ret = ff_vqgan_model_open(log_ctx, c->model_path, c->precision, &c->model, &c->info);
    if (ret < 0)
        return ret;
    snprintf(c->model_id, sizeof(c->model_id), "%016"PRIx64, c->info.identity);
    return 0;
}

int ff_vqgan_common_session(void *log_ctx, VQGANCommon *c, struct vqgan_session_params *params)
{
    params->n_threads = c->threads;
    ff_vqgan_session_log_setup(params, log_ctx);
    return ff_vqgan_session_new(log_ctx, c->model, params, &c->session);
}

void ff_vqgan_common_uninit(VQGANCommon *c)
{
    vqgan_session_free(c->session);
    c->session = NULL;
    vqgan_model_unref(c->model);
    c->model = NULL;
}

int ff_vqgan_parse_label_options(void *log_ctx, const VQGANCommon *c, uint8_t lut[256], VQGANPalette *pal)
{
    int have_palette = 1;
    int ret = ff_vqgan_parse_label_map(log_ctx, c->map, c->info.n_labels, lut);

    if (ret < 0)
        return ret;
    if (c->palette_path && *c->palette_path) {
        if ((ret = ff_vqgan_palette_load(log_ctx, c->palette_path, c->info.n_labels, pal)) < 0)
            return ret;
    } else if (!(have_palette = ff_vqgan_palette_from_model(log_ctx, c->model, c->model_path,
                                                           c->info.n_labels, pal))) {
        pal->count = 0; /* colour frames are refused */
    }
    ret = ff_vqgan_palette_parse_match(log_ctx, c->palette_match, pal);
    return ret < 0 ? ret : have_palette;
}

int ff_vqgan_input_changed(const VQGANCommon *c, const AVFrame *in)
{
    return in->width != c->in_w || in->height != c->in_h || in->format != c->in_format;
}

void ff_vqgan_input_configured(VQGANCommon *c, int w, int h, int format)
{
    c->in_w      = w;
    c->in_h      = h;
    c->in_format = format;
}

int ff_vqgan_reconfigure_input(void *log_ctx, const VQGANCommon *c, AVFilterLink *inlink,
                               const AVFrame *in, int formats)
{
    av_log(log_ctx, AV_LOG_VERBOSE, "Input changed from %s %dx%d to %s %dx%d; reconfiguring.\n",
           av_get_pix_fmt_name(c->in_format), c->in_w, c->in_h,
           av_get_pix_fmt_name(in->format), in->width, in->height);
    if (!formats && in->format != c->in_format) {
        /* Only one format is negotiated. */
        av_log(log_ctx, AV_LOG_ERROR, "Input format changed from %s to %s mid-stream; "
               "only %s is accepted here.\n", av_get_pix_fmt_name(c->in_format),
               av_get_pix_fmt_name(in->format), av_get_pix_fmt_name(c->in_format));
        return AVERROR(EINVAL);
    }
    inlink->w      = in->width;
    inlink->h      = in->height;
    inlink->format = in->format;
    return 0;
}

static char **label_option(VQGANCommon *c, int i)
{
    return i == 0 ? &c->map : i == 1 ? &c->palette_path : &c->palette_match;
}

int ff_vqgan_command_begin(AVFilterContext *ctx, VQGANCommon *c, VQGANCommand *t, const char *cmd,
                           const char *args, char *res, int res_len, int flags)
{
    memset(t, 0, sizeof(*t));
    t->have_palette = c->have_palette;
    for (int i = 0; i < 3; i++) {
        char **opt = label_option(c, i);
        if (*opt && !(t->old[i] = av_strdup(*opt)))
            return AVERROR(ENOMEM);
    }
    return ff_filter_process_command(ctx, cmd, args, res, res_len, flags);
}

int ff_vqgan_command_labels(void *log_ctx, VQGANCommon *c, VQGANCommand *t)
{
    int ret;

    if (!(t->pal = av_malloc(sizeof(*t->pal))))
        return AVERROR(ENOMEM);
    *t->pal = c->palette;
    if ((ret = ff_vqgan_parse_label_options(log_ctx, c, t->lut, t->pal)) < 0)
        return ret;
    t->have_palette = ret;
    if (ff_vqgan_is_color_label_format(c->in_format) && !t->have_palette) {
        av_log(log_ctx, AV_LOG_ERROR, "The input holds colour labels: the palette cannot be unset.\n");
        return AVERROR(EINVAL);
    }
    return 0;
}

void ff_vqgan_command_commit(VQGANCommon *c, VQGANCommand *t)
{
    if (t->pal) {
        memcpy(c->label_map, t->lut, sizeof(t->lut));
        c->palette      = *t->pal;
        c->have_palette = t->have_palette;
    }
    for (int i = 0; i < 3; i++)
        av_freep(&t->old[i]);
    av_freep(&t->pal);
}

int ff_vqgan_command_refused(void *log_ctx, VQGANCommon *c, VQGANCommand *t, const char *cmd,
                             const char *args, int ret)
{
    for (int i = 0; i < 3; i++) {
        char **opt = label_option(c, i);
        av_free(*opt);
        *opt = t->old[i];
        t->old[i] = NULL;
    }
    av_freep(&t->pal);
    if (ret != AVERROR(ENOSYS))
        av_log(log_ctx, AV_LOG_ERROR, "Command %s=%s refused; the old value is kept.\n", cmd, args ? args : "");
    return ret;
}

int ff_vqgan_check_grid(void *log_ctx, int w, int h, int gw, int gh, int f)
{
    if (gw > VQGAN_MAX_GRID || gh > VQGAN_MAX_GRID) {
        av_log(log_ctx, AV_LOG_ERROR, "Input %dx%d gives a %dx%d token grid; grids up to "
               "%dx%d (%dx%d pixels at factor %d) are accepted.\n", w, h, gw, gh,
               VQGAN_MAX_GRID, VQGAN_MAX_GRID, VQGAN_MAX_GRID * f, VQGAN_MAX_GRID * f, f);
        return AVERROR(EINVAL);
    }
    return 0;
}

void ff_vqgan_picture_metadata(const VQGANCommon *c, AVFrame *out)
{
    av_dict_set(&out->metadata, VQGAN_META_STAGE, NULL, 0);
    av_dict_set(&out->metadata, VQGAN_META_GRID, NULL, 0);
    av_dict_set(&out->metadata, VQGAN_META_FACTOR, NULL, 0);
    av_dict_set(&out->metadata, VQGAN_META_MODEL, c->model_id, 0);
}

int ff_vqgan_call_failed(void *log_ctx, int status, const char *fmt, ...)
{
    char what[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    av_log(log_ctx, AV_LOG_ERROR, "Failed %s: %s.\n", what, vqgan_last_error());
    return ff_vqgan_averror(status);
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

static int palette_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a >> 8, y = *(const uint32_t *)b >> 8;
    return x < y ? -1 : x > y;
}

int ff_vqgan_palette_load(void *log_ctx, const char *path, int n_labels, VQGANPalette *pal)
{
    /* Entries are sorted by colour through one packed key: rgb << 8 | slot. */
    uint32_t keys[VQGAN_PALETTE_MAX];
    char names[VQGAN_PALETTE_MAX][48];
    uint8_t ids[VQGAN_PALETTE_MAX], seen[256] = { 0 };
    char line[1024];
    int n = 0, lineno = 0, ret = 0;
    FILE *f = fopen(path, "r");

    if (!f) {
        ret = AVERROR(errno);
        av_log(log_ctx, AV_LOG_ERROR, "Cannot open palette file '%s': %s.\n", path, av_err2str(ret));
        return ret;
    }
    while (fgets(line, sizeof(line), f)) {
        char *tok[16], *save = NULL, *p, *colour = NULL, *end;
        const char *delim;
        int ntok = 0, ci = -1;
        long id;
        unsigned long rgb;

        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        p = line + strspn(line, " \t");
        if (!*p || *p == '#')
            continue;
        /* tab-separated when the line has tabs (names may hold spaces) */
        delim = strchr(p, '\t') ? "\t" : " ";
        for (char *s = av_strtok(p, delim, &save); s && ntok < 16; s = av_strtok(NULL, delim, &save))
            if (*s)
                tok[ntok++] = s;
        for (int i = 1; i < ntok; i++)
            if (tok[i][0] == '#' && strlen(tok[i]) == 7 && strspn(tok[i] + 1, "0123456789abcdefABCDEF") == 6) {
                colour = tok[i];
                ci = i;
                break;
            }
        errno = 0;
        id = strtol(tok[0], &end, 10);
        if (*end || errno || !colour) {
            av_log(log_ctx, AV_LOG_ERROR, "Palette '%s', line %d: expected \"id name #rrggbb\", "
                   "got \"%s\".\n", path, lineno, tok[0]);
            ret = AVERROR_INVALIDDATA;
            break;
        }
        if (id < 0 || id >= n_labels || id > 255) {
            av_log(log_ctx, AV_LOG_ERROR, "Palette '%s', line %d: id %ld is outside the model's "
                   "labels 0..%d.\n", path, lineno, id, n_labels - 1);
            ret = AVERROR(EINVAL);
            break;
        }
        if (seen[id]) {
            av_log(log_ctx, AV_LOG_ERROR, "Palette '%s', line %d: id %ld is listed twice.\n",
                   path, lineno, id);
            ret = AVERROR_INVALIDDATA;
            break;
        }
        if (n == VQGAN_PALETTE_MAX)
            break;
        seen[id] = 1;
        rgb = strtoul(colour + 1, NULL, 16);
        keys[n] = (uint32_t)rgb << 8 | n;
        ids[n] = id;
        names[n][0] = 0;
        for (int i = 1; i < ci; i++)
            av_strlcatf(names[n], sizeof(names[n]), "%s%s", i > 1 ? " " : "", tok[i]);
        n++;
    }
    fclose(f);
    if (ret < 0)
        return ret;
    if (!n) {
        av_log(log_ctx, AV_LOG_ERROR, "Palette '%s' has no entries (\"id name #rrggbb\" lines).\n", path);
        return AVERROR_INVALIDDATA;
    }
    qsort(keys, n, sizeof(*keys), palette_cmp);
    for (int i = 0; i < n; i++) {
        int slot = keys[i] & 0xff;
        if (i && keys[i] >> 8 == keys[i - 1] >> 8) {
            av_log(log_ctx, AV_LOG_ERROR, "Palette '%s': colour #%06x is given to two labels "
                   "(%d and %d); a colour must name one label.\n", path, (unsigned)(keys[i] >> 8),
                   ids[keys[i - 1] & 0xff], ids[slot]);
            return AVERROR_INVALIDDATA;
        }
        pal->rgb[i] = keys[i] >> 8;
        pal->id[i]  = ids[slot];
        memcpy(pal->name[i], names[slot], sizeof(pal->name[i]));
    }
    pal->count = n;
    snprintf(pal->source, sizeof(pal->source), "'%s'", path);
    return 0;
}

int ff_vqgan_palette_from_model(void *log_ctx, const struct vqgan_model *model,
                                const char *model_path, int n_labels, VQGANPalette *pal)
{
    uint32_t keys[VQGAN_PALETTE_MAX];
    int n = 0;

    for (int i = 0; i < n_labels && i < VQGAN_PALETTE_MAX; i++) {
        uint8_t rgb[3];
        if (!vqgan_model_label_color(model, i, rgb))
            return 0;
        keys[n++] = (uint32_t)(rgb[0] << 16 | rgb[1] << 8 | rgb[2]) << 8 | i;
    }
    if (!n)
        return 0;
    qsort(keys, n, sizeof(*keys), palette_cmp);
    /* A colour two labels share reads as the lower id (qsort is not stable:
     * order the pair by id first). */
    for (int i = 1; i < n; i++)
        if (keys[i] >> 8 == keys[i - 1] >> 8 && (keys[i] & 0xff) < (keys[i - 1] & 0xff)) {
            uint32_t k = keys[i];
            keys[i] = keys[i - 1];
            keys[i - 1] = k;
        }
    {
        int j = 0;
        for (int i = 0; i < n; i++) {
            if (j && keys[i] >> 8 == keys[j - 1] >> 8) {
                av_log(log_ctx, AV_LOG_WARNING, "The palette of model '%s' gives #%06x to labels %d "
                       "and %d; that colour reads as %d.\n", model_path, (unsigned)(keys[i] >> 8),
                       (int)(keys[j - 1] & 0xff), (int)(keys[i] & 0xff), (int)(keys[j - 1] & 0xff));
                continue;
            }
            keys[j++] = keys[i];
        }
        n = j;
    }
    for (int i = 0; i < n; i++) {
        const char *name = vqgan_model_label_name(model, keys[i] & 0xff);
        pal->rgb[i] = keys[i] >> 8;
        pal->id[i]  = keys[i] & 0xff;
        av_strlcpy(pal->name[i], name ? name : "", sizeof(pal->name[i]));
    }
    pal->count = n;
    snprintf(pal->source, sizeof(pal->source), "of model '%s'", model_path);
    av_log(log_ctx, AV_LOG_VERBOSE, "Colour label pictures read with the palette of model '%s' "
           "(%d colours).\n", model_path, n);
    return 1;
}

int ff_vqgan_palette_parse_match(void *log_ctx, const char *spec, VQGANPalette *pal)
{
    char *end;
    long d;

    if (!spec || !strcmp(spec, "exact")) {
        pal->match_dist = 0;
        return 0;
    }
    /* nearest=DIST too: ':' separates a filter's options in a filter graph */
    if (!strncmp(spec, "nearest:", 8) || !strncmp(spec, "nearest=", 8)) {
        errno = 0;
        d = strtol(spec + 8, &end, 10);
        if (!*end && end != spec + 8 && !errno && d >= 1 && d <= 442) {
            pal->match_dist = d;
            return 0;
        }
    }
    av_log(log_ctx, AV_LOG_ERROR, "palette_match='%s' is invalid: use exact, or nearest:DIST "
           "(nearest=DIST in a filter graph) with DIST from 1 to 442 (Euclidean distance "
           "in RGB), e.g. nearest=40.\n", spec);
    return AVERROR(EINVAL);
}

int ff_vqgan_is_color_label_format(int fmt)
{
    /* packed RGB with 8-bit components in one plane, 3 or 4 bytes a pixel
     * (rgb24, bgr24, rgba, bgra, argb, abgr, rgb0, bgr0, 0rgb, 0bgr: an
     * FFV1 or PNG colour label video decodes to some of these) */
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt);

    if (!d || !(d->flags & AV_PIX_FMT_FLAG_RGB) || d->nb_components < 3 ||
        d->flags & (AV_PIX_FMT_FLAG_PLANAR | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM |
                    AV_PIX_FMT_FLAG_HWACCEL))
        return 0;
    for (int c = 0; c < 3; c++)
        if (d->comp[c].depth != 8 || d->comp[c].plane || d->comp[c].shift ||
            d->comp[c].step != d->comp[0].step)
            return 0;
    return d->comp[0].step == 3 || d->comp[0].step == 4;
}

const char *ff_vqgan_label_format_hint(int fmt)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt);

    return d && d->flags & AV_PIX_FMT_FLAG_RGB && !(d->flags & AV_PIX_FMT_FLAG_PAL) ?
           "format=rgb24 for colour-coded labels" : "format=gray8 for label pictures";
}

/* Index of rgb in the sorted palette, or -1. */
static int palette_find(const VQGANPalette *pal, uint32_t rgb)
{
    int lo = 0, hi = pal->count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (pal->rgb[mid] == rgb)
            return mid;
        if (pal->rgb[mid] < rgb)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Index of the palette colour nearest rgb; *d2 its squared distance. */
static int palette_nearest(const VQGANPalette *pal, uint32_t rgb, int *d2)
{
    int best = 0, bd = INT_MAX;
    for (int i = 0; i < pal->count; i++) {
        int dr = (int)(pal->rgb[i] >> 16) - (int)(rgb >> 16);
        int dg = (int)(pal->rgb[i] >> 8 & 0xff) - (int)(rgb >> 8 & 0xff);
        int db = (int)(pal->rgb[i] & 0xff) - (int)(rgb & 0xff);
        int d = dr * dr + dg * dg + db * db;
        if (d < bd) {
            bd = d;
            best = i;
        }
    }
    *d2 = bd;
    return best;
}

int ff_vqgan_prepare_color_labels(void *log_ctx, const AVFrame *in, const VQGANPalette *pal,
                                  const uint8_t lut[256], int n_labels, uint8_t *dst,
                                  ptrdiff_t dst_stride, int pw, int ph)
{
    const int w = in->width, h = in->height;
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(in->format);
    const int bpp = d->comp[0].step;
    const int ri = d->comp[0].offset, gi = d->comp[1].offset, bi = d->comp[2].offset;
    const int64_t max_d2 = (int64_t)pal->match_dist * pal->match_dist;
    uint32_t last_rgb = 0xffffffff;
    int last_id = 0;

    for (int y = 0; y < h; y++) {
        const uint8_t *src = in->data[0] + y * in->linesize[0];
        uint8_t *row = dst + y * dst_stride;

        for (int x = 0; x < w; x++, src += bpp) {
            uint32_t rgb = (uint32_t)src[ri] << 16 | src[gi] << 8 | src[bi];
            if (rgb != last_rgb) {
                int i = palette_find(pal, rgb), d2 = 0;
                if (i < 0)
                    i = palette_nearest(pal, rgb, &d2);
                if (d2 && (!pal->match_dist || d2 > max_d2)) {
                    av_log(log_ctx, AV_LOG_ERROR, "Colour #%06x at (%d,%d) is not in the palette "
                           "%s%s: the closest entry is %d %s #%06x, at distance %.1f. %s\n",
                           (unsigned)rgb, x, y, pal->source,
                           pal->match_dist ? " within the palette_match distance" : "",
                           pal->id[i], pal->name[i], (unsigned)pal->rgb[i], sqrt(d2),
                           pal->match_dist ? "Raise the distance of palette_match=nearest:DIST, or fix the picture." :
                           "For lossy label videos use palette_match=nearest:DIST; otherwise fix the picture or the palette.");
                    return AVERROR(EINVAL);
                }
                last_rgb = rgb;
                last_id  = lut[pal->id[i]];
                if (last_id >= n_labels) {
                    av_log(log_ctx, AV_LOG_ERROR, "Label %d (colour #%06x at (%d,%d)) is mapped to %d, "
                           "outside the model's labels 0..%d.\n", pal->id[i], (unsigned)rgb, x, y,
                           last_id, n_labels - 1);
                    return AVERROR(EINVAL);
                }
            }
            row[x] = last_id;
        }
        memset(row + w, row[w - 1], pw - w);
    }
    for (int y = h; y < ph; y++)
        memcpy(dst + y * dst_stride, dst + (h - 1) * dst_stride, pw);
    return 0;
}

int ff_vqgan_copy_props(AVFrame *out, const AVFrame *src)
{
    int ret = av_frame_copy_props(out, src);
    if (ret >= 0 && (out->width != src->width || out->height != src->height))
        out->crop_left = out->crop_right = out->crop_top = out->crop_bottom = 0;
    return ret;
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
     * comes (16-bit PNGs decode to gray16be); 9 to 14 bits (depth sensors'
     * gray10/gray12) as their stored values, the input's own units */
    switch (format) {
    case AV_PIX_FMT_GRAY8:
    case AV_PIX_FMT_GRAY9LE:  case AV_PIX_FMT_GRAY9BE:
    case AV_PIX_FMT_GRAY10LE: case AV_PIX_FMT_GRAY10BE:
    case AV_PIX_FMT_GRAY12LE: case AV_PIX_FMT_GRAY12BE:
    case AV_PIX_FMT_GRAY14LE: case AV_PIX_FMT_GRAY14BE:
    case AV_PIX_FMT_GRAY16LE: case AV_PIX_FMT_GRAY16BE:
    case AV_PIX_FMT_GRAYF32LE: case AV_PIX_FMT_GRAYF32BE:
        return 1;
    default:
        return 0;
    }
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
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(in->format);
    /* 9 to 16 bits: one 16-bit word a pixel, in either byte order */
    const int words = desc && !(desc->flags & AV_PIX_FMT_FLAG_FLOAT) && desc->comp[0].depth > 8;
    const int be = desc && (desc->flags & AV_PIX_FMT_FLAG_BE);
    int ret;

    for (int y = 0; y < ph; y++) {
        const uint8_t *row = in->data[0] + (ptrdiff_t)FFMIN(y, h - 1) * in->linesize[0];
        float *d = dst + (size_t)y * pw;
        for (int x = 0; x < pw; x++) {
            const int sx = FFMIN(x, w - 1);
            if (words)
                d[x] = be ? AV_RB16(row + 2 * sx) : AV_RL16(row + 2 * sx);
            else if (in->format == AV_PIX_FMT_GRAY8)
                d[x] = row[sx];
            else
                d[x] = av_int2float(be ? AV_RB32(row + 4 * sx) : AV_RL32(row + 4 * sx));
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
