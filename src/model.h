/* A loaded pipeline: the weights of every stage, f32 in memory, read-only
 * after vqgan_model_load() returns and shared by every session. */
#ifndef VQ_MODEL_H
#define VQ_MODEL_H

#include <stdint.h>
#include "vqgan.h"

struct vq_backend;
struct vq_packed;

/* One named tensor, shape in numpy order (outermost first). */
struct vq_tensor {
    char *name;
    float *data;
    int n_dims;
    int64_t shape[4];
    int64_t n;
};

/* ---- VQGAN stages (taming/modules/diffusionmodules/model.py) ---------- */
struct vq_conv   { const float *w, *b; int cin, cout, k; };
struct vq_norm   { const float *g, *b; int c; };
struct vq_resblock {
    struct vq_norm norm1, norm2;
    struct vq_conv conv1, conv2;
    struct vq_conv nin_shortcut;      /* w == NULL when cin == cout */
};
struct vq_attnblock { struct vq_norm norm; struct vq_conv q, k, v, proj_out; };

#define VQ_MAX_LEVELS 8
#define VQ_MAX_RES    8
struct vq_level {
    int n_block;                      /* res blocks at this level            */
    struct vq_resblock block[VQ_MAX_RES];
    int has_attn;
    struct vq_attnblock attn[VQ_MAX_RES];
    int has_resample;                 /* downsample (encoder) / upsample (decoder) */
    struct vq_conv resample;
};
struct vq_coder {                     /* Encoder or Decoder */
    int n_level;
    struct vq_conv conv_in, conv_out;
    struct vq_level level[VQ_MAX_LEVELS];
    struct vq_resblock mid_block_1, mid_block_2;
    struct vq_attnblock mid_attn_1;
    struct vq_norm norm_out;
};
struct vq_stage {
    int present;
    int ch, n_level, num_res_blocks, resolution, in_channels, out_ch, z_channels;
    int ch_mult[VQ_MAX_LEVELS];
    int n_attn_res, attn_res[VQ_MAX_LEVELS];
    int embed_dim, n_embed, factor;
    int has_decoder;
    struct vq_coder enc, dec;
    struct vq_conv quant_conv, post_quant_conv;
    const float *codebook;            /* [n_embed][embed_dim]               */
    float *codebook_norm2;            /* |e|^2 per code, computed at load    */
    int gumbel;                       /* GumbelQuantize: tokens are the argmax
                                         of proj's logits, codebook = embed  */
    struct vq_conv proj;              /* quantize.proj (gumbel): embed_dim -> n_embed */
};

/* ---- GPT (taming/modules/transformer/mingpt.py) ------------------------- */
struct vq_gpt_block {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;   /* [n_embd][n_embd], [n_embd] */
    const float *proj_w, *proj_b;
    const float *fc_w, *fc_b;         /* mlp.0: [4·n_embd][n_embd]           */
    const float *fc2_w, *fc2_b;       /* mlp.2: [n_embd][4·n_embd]           */
    /* the same weights packed for the model's backend (vq_gpt_pack), or NULL */
    struct vq_packed *q_p, *k_p, *v_p, *proj_p, *fc_p, *fc2_p;
};
struct vq_gpt {
    int present;
    int vocab, block, n_layer, n_head, n_embd, n_unmasked;
    const float *tok_emb;             /* [vocab][n_embd]                     */
    const float *pos_emb;             /* [block][n_embd]                     */
    struct vq_gpt_block *blocks;      /* [n_layer]                           */
    const float *lnf_w, *lnf_b;
    const float *head_w;              /* [vocab][n_embd], no bias            */
    struct vq_packed *head_p;         /* head_w packed, or NULL              */
    /* the backend that runs its products, chosen at load (backend.h); NULL:
     * the default fp32 backend (transformers built by tests) */
    const struct vq_backend *be;
};

struct vqgan_model {
    int refcount;                     /* atomic                              */
    const struct vq_backend *backend; /* runs the products: chosen at load from
                                         the precision asked for and the CPU */
    int check_finite;                 /* loaded with vqgan_model_params.check_finite */
    struct vqgan_model_info info;
    struct vq_stage first, cond;
    struct vq_gpt gpt;
    int n_labels;
    char **label_names;               /* [n_labels] or NULL                  */
    int coord_n_embed, coord_down;    /* CoordStage (cond_kind COORD)        */
    uint32_t *label_colors;           /* [n_labels] 0xRRGGBB, or NULL        */
    int n_tensors;
    struct vq_tensor *tensors;
    /* shared-cache key */
    char *path;
    uint64_t dev, ino, size;
    int64_t mtime_ns;
    int cached;
};

const struct vq_tensor *vq_model_tensor(const struct vqgan_model *m, const char *name);

#endif
