/*
 * libvqgan: Taming Transformers (VQGAN + GPT) inference in C.
 *
 * The whole public contract of the library is this header.
 *
 *  - A struct vqgan_model holds the weights of one model file. It is
 *    read-only after loading and reference-counted: any number of threads
 *    and sessions share one model.
 *  - A struct vqgan_session holds everything that changes per run (scratch
 *    buffers, transformer caches, sampling parameters). One thread uses a
 *    session at a time.
 *  - Every function returns a status (VQGAN_OK == 0, negative on error).
 *    On error, vqgan_last_error() returns a message for the calling thread
 *    that names the file, field or value at fault. The library never exits
 *    or aborts on bad input.
 *  - Messages go through a process-wide log callback (stderr by default).
 *
 * Token maps are int32, raster order, one value per grid cell. Images are
 * interleaved 8-bit RGB (or planar float CHW in [-1, 1] for the _f32 calls).
 */
#ifndef VQGAN_H
#define VQGAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* VQGAN_VERSION_MAJOR, _MINOR, _PATCH and VQGAN_VERSION_STRING: generated
 * from the source tree's VERSION file by the build (vqgan_version.h is
 * installed next to this header). */
#include "vqgan_version.h"

/* Every function of the public API carries VQGAN_API: the shared library is
 * built with -fvisibility=hidden and exports these alone. */
#ifndef VQGAN_API
#  if defined(_WIN32)
#    define VQGAN_API
#  elif defined(__GNUC__) && __GNUC__ >= 4
#    define VQGAN_API __attribute__((visibility("default")))
#  else
#    define VQGAN_API
#  endif
#endif

/* ---- status codes ------------------------------------------------------ */
enum vqgan_status {
    VQGAN_OK              =  0,
    VQGAN_ERR_IO          = -1, /* file missing, unreadable, a directory   */
    VQGAN_ERR_FORMAT      = -2, /* model file malformed                    */
    VQGAN_ERR_INVALID     = -3, /* bad argument (size, option, label id)   */
    VQGAN_ERR_NOMEM       = -4, /* allocation failed                       */
    VQGAN_ERR_UNSUPPORTED = -5, /* model lacks the stage the call needs    */
    VQGAN_ERR_LIMIT       = -6, /* a documented limit would be exceeded    */
    VQGAN_ERR_CANCELLED   = -7  /* the progress callback asked to stop     */
};

VQGAN_API const char *vqgan_version(void);              /* VQGAN_VERSION_STRING        */
VQGAN_API const char *vqgan_status_string(int status);  /* short name of a status code */
/* Message describing the last failure on the calling thread ("" if none). */
VQGAN_API const char *vqgan_last_error(void);

/* ---- logging ----------------------------------------------------------- */
enum vqgan_log_level {
    VQGAN_LOG_ERROR   = 0,
    VQGAN_LOG_WARNING = 1,
    VQGAN_LOG_INFO    = 2,
    VQGAN_LOG_VERBOSE = 3,
    VQGAN_LOG_DEBUG   = 4
};
typedef void (*vqgan_log_callback)(void *opaque, int level, const char *msg);
/* Process-wide. NULL restores the default (stderr, warnings and errors). */
VQGAN_API void vqgan_set_log_callback(vqgan_log_callback cb, void *opaque);

/* ---- model ------------------------------------------------------------- */
enum vqgan_precision {
    VQGAN_PRECISION_AUTO = 0, /* the library's documented default (fp32)     */
    VQGAN_PRECISION_FP32 = 1,
    VQGAN_PRECISION_BF16 = 2, /* bf16 products where the CPU supports them   */
    VQGAN_PRECISION_INT8 = 3  /* the transformer's linear layers in int8 (the
                                 rest as bf16) where the CPU has AVX512_VNNI
                                 and native bf16; docs/precision.md */
};

struct vqgan_model_params {
    int precision;            /* enum vqgan_precision                        */
    int check_finite;         /* 1: refuse weights holding NaN/Inf (default) */
};
VQGAN_API struct vqgan_model_params vqgan_model_default_params(void);

struct vqgan_model;

/* Largest model accepted: the weights as f32 in memory (and the file itself)
 * at most this many bytes; a larger one is refused with VQGAN_ERR_LIMIT
 * before anything is allocated, as is one whose loading (file + f32 weights)
 * would exceed the process's RLIMIT_AS / RLIMIT_DATA. */
#define VQGAN_MAX_MODEL_BYTES ((uint64_t)32 << 30)

/* Load a GGUF model file (see docs/model-format.md). params may be NULL.
 * Only regular files are accepted (a FIFO or device is refused without
 * blocking); the file is read into memory and closed, so changing or
 * truncating it later does not affect the model. */
VQGAN_API int  vqgan_model_load(const char *path, const struct vqgan_model_params *params,
                      struct vqgan_model **out);
/* The process-wide shared cache: returns the model already loaded from the
 * same file (same path, device, inode, size and mtime) with the same
 * parameters (precision as it resolves on this CPU: AUTO and FP32 are one;
 * check_finite), with its reference count raised, or loads it. Thread-safe.
 * Release with vqgan_model_unref(); the model is freed with its last
 * reference. */
VQGAN_API int  vqgan_model_acquire(const char *path, const struct vqgan_model_params *params,
                         struct vqgan_model **out);
/* Number of models the shared cache holds now (for tests and logs). */
VQGAN_API int  vqgan_model_cache_count(void);
VQGAN_API struct vqgan_model *vqgan_model_ref(struct vqgan_model *model);
VQGAN_API void vqgan_model_unref(struct vqgan_model *model); /* NULL is a no-op */

/* The installed default model, "$datadir/libvqgan/models/default.gguf" for
 * the datadir the library was configured with (./configure --datadir). The
 * path is returned whether or not the file exists there (an uninstalled
 * build has none); callers that look in several places check it and name it
 * among the places tried. */
VQGAN_API const char *vqgan_default_model_path(void);

enum vqgan_cond_kind {
    VQGAN_COND_NONE         = 0, /* no transformer: tokenizer only           */
    VQGAN_COND_SEGMENTATION = 1, /* segmentation VQGAN condition stage       */
    VQGAN_COND_CLASS        = 2, /* one class-label token                    */
    VQGAN_COND_SOS          = 3, /* unconditional: one start token           */
    VQGAN_COND_DEPTH        = 4, /* depth map through a one-channel VQModel  */
    VQGAN_COND_COORD        = 5  /* the output frame's own position map
                                    (CoordStage): no input content          */
};

struct vqgan_model_info {
    char name[64];            /* general.name                                */
    uint64_t identity;        /* 64-bit hash of the file's header            */
    int has_first_stage;      /* image tokenizer present                     */
    int has_transformer;
    int cond_kind;            /* enum vqgan_cond_kind                        */
    int factor;               /* image tokenizer downsampling factor (f)     */
    int image_codes;          /* first-stage codebook size                   */
    int cond_factor;          /* condition stage downsampling factor (segmentation,
                                 depth; coordinates: CoordStage down_factor) */
    int cond_codes;           /* condition stage codebook size (coordinates:
                                 n_embed; their tokens are 0..n_embed)       */
    int n_labels;             /* segmentation label count (class ids 0..n-1) */
    int n_classes;            /* class-conditional: number of classes        */
    int sos_token;            /* unconditional: the start token              */
    int vocab_size;           /* transformer vocabulary                      */
    int block_size;           /* transformer context                         */
    int window;               /* sliding-window side w in tokens: spatial
                                 conditions block = 2*w*w; class or start
                                 token the largest w with w*w <= block; 0:
                                 no transformer                              */
    int n_layer, n_head, n_embd;
    int image_quantizer;      /* enum vqgan_quantizer of the first stage     */
};
enum vqgan_quantizer {
    VQGAN_QUANTIZER_VQ     = 0, /* nearest codebook vector (VectorQuantizer) */
    VQGAN_QUANTIZER_GUMBEL = 1  /* argmax of quantize.proj's logits (GumbelVQ,
                                   without the Gumbel noise: deterministic) */
};
VQGAN_API int vqgan_model_get_info(const struct vqgan_model *model, struct vqgan_model_info *info);
/* Name of a segmentation label, or NULL when unknown. */
VQGAN_API const char *vqgan_model_label_name(const struct vqgan_model *model, int label);
/* The image tokenizer's input and output channels (ddconfig.in_channels,
 * out_ch): 3 and 3 for RGB, as every released model; planes of the f32
 * encode and decode. VQGAN_ERR_UNSUPPORTED without an image tokenizer. */
VQGAN_API int vqgan_model_image_channels(const struct vqgan_model *model, int *in_channels, int *out_channels);
/* The colour of a segmentation label in the model's palette (for colour-coded
 * label maps; vqgan.cond_stage.label_colors): 1 and rgb[0..2] filled, or 0
 * when the model carries no palette or the label is out of range. Two labels
 * may share a colour (ADE20K's standard palette gives two the same). */
VQGAN_API int vqgan_model_label_color(const struct vqgan_model *model, int label, uint8_t rgb[3]);

/* ---- session ----------------------------------------------------------- */
/* Returns nonzero to cancel the running call (it then fails with
 * VQGAN_ERR_CANCELLED). done/total count token positions (a grid narrower
 * than the window: its padded columns too, as stats.positions_sampled). */
typedef int (*vqgan_progress_callback)(void *opaque, int64_t done, int64_t total);

struct vqgan_session_params {
    int n_threads;            /* 0: all online cores                         */
    float temperature;        /* > 0; default 1.0                            */
    int top_k;                /* 0 disables; 1 is greedy argmax; default 0   */
    float top_p;              /* (0, 1]; 1 disables; default 1.0             */
    uint64_t seed;            /* random draws are keyed to (seed, position)  */
    int temporal;             /* enum vqgan_temporal; default off            */
    size_t cache_bytes;       /* cap for transformer window caches; 0: default:
                                 VQGAN_DEFAULT_CACHE_BYTES, lowered to a
                                 quarter of the machine's RAM and of the
                                 process's RLIMIT_AS / RLIMIT_DATA           */
    vqgan_progress_callback progress;
    void *progress_opaque;
    int fast_step;            /* segmentation-conditional sampling: 0 or 1
                                 exact (default); s in 2..VQGAN_MAX_FAST_STEP
                                 approximate fast mode, one window placement
                                 predicts up to s x s cells (capped at w - w/2;
                                 docs/sampling.md, "Fast mode"). Checked by the
                                 sampling call (VQGAN_ERR_INVALID).            */
    int32_t origin_x, origin_y; /* segmentation-conditional sampling: the draws
                                 of cell (row, column) are keyed to (row +
                                 origin_y, column + origin_x); default 0, 0.
                                 FOLLOW: the content origin of the first frame
                                 of a sequence (later frames add the shifts
                                 they detect), so a video cut into parts and
                                 each part started at the origin the whole
                                 run reaches there (vqgan_follow_shift) gives
                                 the whole run's frames (docs/farm.md).
                                 |value| <= VQGAN_MAX_ORIGIN                  */
    vqgan_log_callback log_callback; /* NULL: the process-wide callback. Else
                                 the messages of this session's calls (made
                                 on the calling thread) go here with
                                 log_opaque, e.g. to attribute them to the
                                 user of the session                        */
    void *log_opaque;
};
#define VQGAN_MAX_ORIGIN (1 << 30)
#define VQGAN_DEFAULT_CACHE_BYTES ((size_t)6 << 30)
#define VQGAN_MAX_FAST_STEP 64

/* Temporal modes: successive vqgan_sample_conditional calls on a session as
 * the frames of a video (docs/sampling.md, "Temporal modes").
 *  - OFF: every call samples afresh; nothing is kept between calls.
 *  - REUSE: exact reuse. A call's tokens are identical to sampling the frame
 *    from scratch with the same seed (OFF); a cell whose window shows what it
 *    showed in the previous call gets its token copied instead of running the
 *    transformer, and window caches are kept across calls under cache_bytes.
 *    vqgan_encode_labels (same label map) and vqgan_decode / _f32 (same tokens)
 *    return the previous call's result without computing it again.
 *  - FOLLOW: as REUSE, but draws are keyed to content coordinates: a shift of
 *    the condition grid by whole tokens (|d| <= w/2, see the docs for the
 *    agreement rule) is detected against the previous call and added to a
 *    content origin, so the picture moves with the labels; tokens are picked
 *    by the Gumbel-max rule (the same distribution, more stable under small
 *    changes). A call is identical to sampling from scratch that way with
 *    draws keyed to (row + origin_y, column + origin_x).
 * Changing the grid size, the mode or the sampling parameters starts afresh
 * (nothing is reused; the promises hold). */
/*  - STEADY: as REUSE for the tokens (identical to OFF), and vqgan_decode
 *    (8-bit) keeps the previous call's pixels for every cell at least
 *    VQGAN_STEADY_RADIUS cells (Chebyshev distance) away from every token that
 *    changed since the previous call: what did not change stays still, pixel
 *    for pixel. Approximate: a fresh decode would change those pixels slightly
 *    (the decoder's attention block mixes every token into every pixel), so
 *    pictures are not identical to OFF's. */
enum vqgan_temporal {
    VQGAN_TEMPORAL_OFF    = 0,
    VQGAN_TEMPORAL_REUSE  = 1,
    VQGAN_TEMPORAL_FOLLOW = 2,
    VQGAN_TEMPORAL_STEADY = 3
};
#define VQGAN_STEADY_RADIUS 3
VQGAN_API struct vqgan_session_params vqgan_session_default_params(void);

struct vqgan_session;
VQGAN_API int  vqgan_session_new(struct vqgan_model *model, const struct vqgan_session_params *params,
                       struct vqgan_session **out);
VQGAN_API void vqgan_session_free(struct vqgan_session *session); /* NULL is a no-op */
/* The working buffers of an encode or decode call (its layers' activations:
 * hundreds of MiB at 1024x672) are kept for the next such call, of any
 * session of the process: the next frame of a stream then reuses pages
 * already in memory instead of faulting in and zeroing fresh ones. The
 * sessions share one set (about one call's buffers; those the next call
 * cannot use are freed at its end), a sampling call frees it first (its own
 * buffers are others), and so does freeing the last session. This frees it
 * now, e.g. before a process goes idle; returns the bytes freed. */
VQGAN_API size_t vqgan_release_buffers(void);
/* Change sampling parameters between calls (validated like at creation). */
VQGAN_API int  vqgan_session_set_params(struct vqgan_session *session,
                              const struct vqgan_session_params *params);

/* ---- tokenizer --------------------------------------------------------- */
/* Largest grid side (tokens) any call accepts (VQGAN_ERR_LIMIT above). */
#define VQGAN_MAX_GRID 1024
/* Largest working memory of one encode or decode (activations, and the
 * attention blocks' (gw*gh)^2 floats), estimated before allocating; above it,
 * or above the process's RLIMIT_AS / RLIMIT_DATA, the call fails with
 * VQGAN_ERR_LIMIT. */
#define VQGAN_MAX_WORK_BYTES ((uint64_t)32 << 30)
/* Row strides are in bytes: at least 3*width (RGB) or width (label ids),
 * otherwise VQGAN_ERR_INVALID. A negative stride of that size walks the rows
 * upwards from the pointer (a bottom-up buffer; FFmpeg's flipped frames). */

/* Image -> first-stage tokens. width and height must be multiples of the
 * factor; tokens receives (height/f)*(width/f) values. 8-bit RGB: a
 * tokenizer of other than 3 input channels is VQGAN_ERR_UNSUPPORTED here
 * (vqgan_model_image_channels; the f32 form takes its planes). */
VQGAN_API int vqgan_encode_image(struct vqgan_session *s, const uint8_t *rgb, ptrdiff_t stride,
                       int width, int height, int32_t *tokens);
/* Same from planar float CHW in [-1, 1], C the tokenizer's input channels
 * (3 for RGB, as every released model; vqgan_model_image_channels);
 * pre_quant (may be NULL) receives the encoder + quant_conv output,
 * embed_dim x (h/f) x (w/f). */
VQGAN_API int vqgan_encode_image_f32(struct vqgan_session *s, const float *chw, int width, int height,
                           int32_t *tokens, float *pre_quant);

/* Segmentation class ids -> condition tokens (one-hot encoded as the
 * reference does). Every id must be < n_labels. */
VQGAN_API int vqgan_encode_labels(struct vqgan_session *s, const uint8_t *ids, ptrdiff_t stride,
                        int width, int height, int32_t *tokens, float *pre_quant);

/* Depth-conditioned models (VQGAN_COND_DEPTH, D-RIN): a depth map, planar
 * float width x height, already in the model's input range [-1, 1] (see
 * vqgan_depth_normalize) -> condition tokens through the one-channel
 * condition stage. width and height multiples of cond_factor; pre_quant as
 * for vqgan_encode_labels. A non-finite value is VQGAN_ERR_INVALID. */
VQGAN_API int vqgan_encode_depth(struct vqgan_session *s, const float *depth, int width, int height,
                       int32_t *tokens, float *pre_quant);
/* Maps a depth map (any unit, planar float) to the model's [-1, 1] into out
 * (may be depth itself). lo == hi: the reference's per-image min-max,
 * d' = 2 (d - min) / max(1e-8, max - min) - 1 (D-RIN's data pipeline;
 * flickers on video when the frame's range changes). lo < hi: a fixed range
 * for a whole stream, d' = 2 (d - lo) / (hi - lo) - 1 clamped to [-1, 1].
 * invert: d' = -d' afterwards (inputs where larger means farther; D-RIN
 * was trained on inverse depth, larger = nearer). */
VQGAN_API int vqgan_depth_normalize(const float *depth, int width, int height, float lo, float hi, int invert,
                          float *out);
/* Coordinate-conditioned models (VQGAN_COND_COORD, FacesHQ): the condition
 * tokens of a width x height frame, from its size alone: the reference's
 * CoordStage on the raster-position map p / (width * height), area-averaged
 * over down_factor x down_factor blocks, times n_embed, rounded. A frame
 * so tall that a token reaches the vocabulary is VQGAN_ERR_LIMIT. */
VQGAN_API int vqgan_encode_coord(struct vqgan_session *s, int width, int height, int32_t *tokens);
/* Gumbel image tokenizers (image_quantizer VQGAN_QUANTIZER_GUMBEL): as
 * vqgan_encode_image_f32, with the quantizer's logits (image_codes x
 * (height/f) x (width/f), planar) whose argmax the tokens are. */
VQGAN_API int vqgan_encode_image_logits(struct vqgan_session *s, const float *chw, int width, int height,
                              int32_t *tokens, float *logits);

/* First-stage tokens -> picture, grid gw x gh, output (gw*f) x (gh*f).
 * 8-bit output is round((clamp(x, -1, 1) + 1) * 127.5), RGB (a decoder of
 * other than 3 output channels is VQGAN_ERR_UNSUPPORTED there); the f32
 * output is planar, the decoder's out_ch planes. */
VQGAN_API int vqgan_decode(struct vqgan_session *s, const int32_t *tokens, int gw, int gh,
                 uint8_t *rgb, ptrdiff_t stride);
VQGAN_API int vqgan_decode_f32(struct vqgan_session *s, const int32_t *tokens, int gw, int gh,
                     float *chw);

/* ---- transformer ------------------------------------------------------- */
/* Segmentation-conditional: sample a gw x gh grid of image tokens from a
 * gw x gh grid of condition tokens with the reference's sliding window
 * (docs/sampling.md). */
VQGAN_API int vqgan_sample_conditional(struct vqgan_session *s, const int32_t *cond_tokens,
                             int gw, int gh, int32_t *tokens);
/* Class-conditional (class_id) or unconditional (class_id ignored) models:
 * sample gw x gh tokens. A grid of at most block_size tokens is one
 * sequence [token] + the grid in raster order (the reference's
 * sample_with_past: the last token is predicted, never fed); a larger one
 * slides a w x w window (info.window: the largest w with w*w <= block_size)
 * with the segmentation case's schedule, the one class or start token as the
 * whole condition (docs/sampling.md). */
VQGAN_API int vqgan_sample_unconditional(struct vqgan_session *s, int class_id, int gw, int gh,
                               int32_t *tokens);

/* Completion (inpainting): sample only the cells whose cell_mask is nonzero;
 * every other cell keeps given[] (first-stage image tokens, e.g. from
 * vqgan_encode_image) and is never sampled. cond_tokens: the condition grid
 * for spatial conditions (segmentation, depth, coordinates; NULL otherwise);
 * class_id: class-conditional models (ignored by the others). The sampled
 * cells see the kept cells before them in their window (raster order), never
 * those after them: that is the autoregressive model's limit
 * (docs/sampling.md, "Completion"). An all-zero mask returns given; an
 * all-nonzero one is vqgan_sample_conditional / _unconditional exactly. */
VQGAN_API int vqgan_sample_masked(struct vqgan_session *s, const int32_t *cond_tokens, int class_id,
                        const int32_t *given, const uint8_t *cell_mask, int gw, int gh,
                        int32_t *tokens);

/* Statistics of the last sampling call on this session. */
struct vqgan_sample_stats {
    int64_t positions_sampled;   /* grid positions whose token was drawn (a
                                    grid narrower than the window: with its
                                    padded columns, docs/sampling.md)         */
    int64_t positions_reused;    /* taken from the previous frame (temporal)  */
    int64_t transformer_tokens;  /* positions pushed through the transformer  */
    int64_t positions_shared;    /* condition positions whose keys and values
                                    were copied from another window placement
                                    (not in transformer_tokens)               */
    int64_t cache_evictions;
    double seconds;
    int shift_x, shift_y;        /* follow: pan detected against the previous
                                    frame, in tokens (cur[i][j] = prev[i + shift_y]
                                    [j + shift_x]); 0 otherwise                */
    int threads;                 /* threads the last call on this session used:
                                    its n_threads, capped by its share of the
                                    cores while other calls were running      */
    int64_t positions_kept;      /* completion: cells that kept their given
                                    token (vqgan_sample_masked; padded columns
                                    count as above)                           */
};
VQGAN_API int vqgan_session_get_stats(const struct vqgan_session *s, struct vqgan_sample_stats *st);

/* Follow mode without sampling (docs/farm.md): the shift (*shift_x,
 * *shift_y) that a FOLLOW session detects in the condition tokens cond
 * against those of the frame before, prev_cond (both gw x gh, the grids the
 * session is given, e.g. from vqgan_encode_labels), with the session's own
 * rule and radius (w/2 for the model's window w); 0, 0 when prev_cond is
 * NULL (the first frame). A FOLLOW session's content origin is the
 * session's origin_x/y at its first frame (and again after a change of grid
 * size), then the previous origin plus this shift at every frame: the
 * origins of a whole video can be computed in a pass over its condition
 * tokens, with no transformer. A model without a sliding-window transformer
 * (segmentation, depth or coordinate condition) is refused with
 * VQGAN_ERR_UNSUPPORTED. */
VQGAN_API int vqgan_follow_shift(const struct vqgan_model *model, const int32_t *cond, const int32_t *prev_cond,
                       int gw, int gh, int *shift_x, int *shift_y);

#ifdef __cplusplus
}
#endif
#endif /* VQGAN_H */
