/* A pipeline assembled from a model file, and the process-wide shared cache. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "backend.h"
#include "backend_int8.h"
#include "gguf.h"
#include "gpt.h"
#include "largealloc.h"
#include "memlimit.h"
#include "model.h"
#include "grid.h"

/* ---- tensors -------------------------------------------------------------- */

static float half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {                       /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Copy a file tensor into an f32 heap tensor; refuse non-finite values. */
static int load_tensor(const struct vq_gguf *g, const struct vq_gguf_tensor *src,
                       struct vq_tensor *dst, int check_finite)
{
    dst->name = strdup(src->name);
    dst->n = (int64_t)src->n_elements;
    dst->n_dims = (int)src->n_dims;
    for (int i = 0; i < dst->n_dims; i++)
        dst->shape[i] = (int64_t)src->ne[dst->n_dims - 1 - i];
    dst->data = vq_alloc_large((size_t)dst->n * sizeof(float));
    if (!dst->name || !dst->data)
        return vq_error(VQGAN_ERR_NOMEM, "%s: out of memory loading tensor '%s' (%" PRId64 " values)",
                        g->path, src->name, dst->n);
    const uint8_t *p = src->data;
    for (int64_t i = 0; i < dst->n; i++) {
        float v;
        if (src->type == VQ_TYPE_F32) {
            memcpy(&v, p + 4 * i, 4);
        } else {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            if (src->type == VQ_TYPE_F16) {
                v = half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&v, &bits, 4);
            }
        }
        if (check_finite && !isfinite(v))
            return vq_error(VQGAN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value (%g) at index %" PRId64,
                            g->path, src->name, v, i);
        dst->data[i] = v;
    }
    return 0;
}

const struct vq_tensor *vq_model_tensor(const struct vqgan_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return &m->tensors[i];
    return NULL;
}

/* ---- wiring tensors into stages ------------------------------------------- */

struct wire {
    const struct vqgan_model *m;
    const char *path;
    const char *prefix;
    int err;
};

/* The tensor prefix+name with exactly the given shape (-1 ends the shape). */
static const float *get(struct wire *w, const char *name, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    char full[512];
    int64_t want[4] = { d0, d1, d2, d3 };
    int nd = 0;
    while (nd < 4 && want[nd] >= 0) nd++;
    if (w->err) return NULL;
    snprintf(full, sizeof(full), "%s%s", w->prefix, name);
    const struct vq_tensor *t = vq_model_tensor(w->m, full);
    if (!t) {
        w->err = vq_error(VQGAN_ERR_FORMAT, "%s: required tensor '%s' is missing", w->path, full);
        return NULL;
    }
    int ok = t->n_dims == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = t->shape[i] == want[i];
    if (!ok) {
        char a[96] = "", b[96] = "";
        for (int i = 0; i < t->n_dims; i++)
            snprintf(a + strlen(a), sizeof(a) - strlen(a), "%s%" PRId64, i ? "," : "", t->shape[i]);
        for (int i = 0; i < nd; i++)
            snprintf(b + strlen(b), sizeof(b) - strlen(b), "%s%" PRId64, i ? "," : "", want[i]);
        w->err = vq_error(VQGAN_ERR_FORMAT, "%s: tensor '%s' has shape [%s], the config needs [%s]",
                          w->path, full, a, b);
        return NULL;
    }
    return t->data;
}

static void wire_conv(struct wire *w, struct vq_conv *c, const char *name, int cin, int cout, int k)
{
    char n[256];
    c->cin = cin; c->cout = cout; c->k = k;
    snprintf(n, sizeof(n), "%s.weight", name);
    c->w = get(w, n, cout, cin, k, k);
    snprintf(n, sizeof(n), "%s.bias", name);
    c->b = get(w, n, cout, -1, -1, -1);
}

static void wire_norm(struct wire *w, struct vq_norm *nm, const char *name, int c)
{
    char n[256];
    nm->c = c;
    snprintf(n, sizeof(n), "%s.weight", name);
    nm->g = get(w, n, c, -1, -1, -1);
    snprintf(n, sizeof(n), "%s.bias", name);
    nm->b = get(w, n, c, -1, -1, -1);
}

static void wire_resblock(struct wire *w, struct vq_resblock *b, const char *name, int cin, int cout)
{
    char n[256];
    snprintf(n, sizeof(n), "%s.norm1", name); wire_norm(w, &b->norm1, n, cin);
    snprintf(n, sizeof(n), "%s.conv1", name); wire_conv(w, &b->conv1, n, cin, cout, 3);
    snprintf(n, sizeof(n), "%s.norm2", name); wire_norm(w, &b->norm2, n, cout);
    snprintf(n, sizeof(n), "%s.conv2", name); wire_conv(w, &b->conv2, n, cout, cout, 3);
    memset(&b->nin_shortcut, 0, sizeof(b->nin_shortcut));
    if (cin != cout) {
        snprintf(n, sizeof(n), "%s.nin_shortcut", name);
        wire_conv(w, &b->nin_shortcut, n, cin, cout, 1);
    }
}

static void wire_attn(struct wire *w, struct vq_attnblock *a, const char *name, int c)
{
    char n[256];
    snprintf(n, sizeof(n), "%s.norm", name); wire_norm(w, &a->norm, n, c);
    snprintf(n, sizeof(n), "%s.q", name); wire_conv(w, &a->q, n, c, c, 1);
    snprintf(n, sizeof(n), "%s.k", name); wire_conv(w, &a->k, n, c, c, 1);
    snprintf(n, sizeof(n), "%s.v", name); wire_conv(w, &a->v, n, c, c, 1);
    snprintf(n, sizeof(n), "%s.proj_out", name); wire_conv(w, &a->proj_out, n, c, c, 1);
}

static int has_attn(const struct vq_stage *s, int res)
{
    for (int i = 0; i < s->n_attn_res; i++)
        if (s->attn_res[i] == res) return 1;
    return 0;
}

/* Encoder / Decoder exactly as taming/modules/diffusionmodules/model.py builds them. */
static void wire_encoder(struct wire *w, struct vq_stage *s)
{
    struct vq_coder *e = &s->enc;
    char n[256];
    int res = s->resolution, block_in = s->ch;
    e->n_level = s->n_level;
    wire_conv(w, &e->conv_in, "encoder.conv_in", s->in_channels, s->ch, 3);
    for (int l = 0; l < s->n_level; l++) {
        struct vq_level *lv = &e->level[l];
        int block_out = s->ch * s->ch_mult[l];
        block_in = s->ch * (l ? s->ch_mult[l - 1] : 1);
        lv->n_block = s->num_res_blocks;
        lv->has_attn = has_attn(s, res);
        for (int b = 0; b < s->num_res_blocks; b++) {
            snprintf(n, sizeof(n), "encoder.down.%d.block.%d", l, b);
            wire_resblock(w, &lv->block[b], n, block_in, block_out);
            block_in = block_out;
            if (lv->has_attn) {
                snprintf(n, sizeof(n), "encoder.down.%d.attn.%d", l, b);
                wire_attn(w, &lv->attn[b], n, block_in);
            }
        }
        lv->has_resample = l != s->n_level - 1;
        if (lv->has_resample) {
            snprintf(n, sizeof(n), "encoder.down.%d.downsample.conv", l);
            wire_conv(w, &lv->resample, n, block_in, block_in, 3);
            res /= 2;
        }
    }
    wire_resblock(w, &e->mid_block_1, "encoder.mid.block_1", block_in, block_in);
    wire_attn(w, &e->mid_attn_1, "encoder.mid.attn_1", block_in);
    wire_resblock(w, &e->mid_block_2, "encoder.mid.block_2", block_in, block_in);
    wire_norm(w, &e->norm_out, "encoder.norm_out", block_in);
    wire_conv(w, &e->conv_out, "encoder.conv_out", block_in, s->z_channels, 3);
}

static void wire_decoder(struct wire *w, struct vq_stage *s)
{
    struct vq_coder *d = &s->dec;
    char n[256];
    int block_in = s->ch * s->ch_mult[s->n_level - 1];
    int res = s->resolution >> (s->n_level - 1);
    d->n_level = s->n_level;
    wire_conv(w, &d->conv_in, "decoder.conv_in", s->z_channels, block_in, 3);
    wire_resblock(w, &d->mid_block_1, "decoder.mid.block_1", block_in, block_in);
    wire_attn(w, &d->mid_attn_1, "decoder.mid.attn_1", block_in);
    wire_resblock(w, &d->mid_block_2, "decoder.mid.block_2", block_in, block_in);
    for (int l = s->n_level - 1; l >= 0; l--) {
        struct vq_level *lv = &d->level[l];
        int block_out = s->ch * s->ch_mult[l];
        lv->n_block = s->num_res_blocks + 1;
        lv->has_attn = has_attn(s, res);
        for (int b = 0; b < lv->n_block; b++) {
            snprintf(n, sizeof(n), "decoder.up.%d.block.%d", l, b);
            wire_resblock(w, &lv->block[b], n, block_in, block_out);
            block_in = block_out;
            if (lv->has_attn) {
                snprintf(n, sizeof(n), "decoder.up.%d.attn.%d", l, b);
                wire_attn(w, &lv->attn[b], n, block_in);
            }
        }
        lv->has_resample = l != 0;
        if (lv->has_resample) {
            snprintf(n, sizeof(n), "decoder.up.%d.upsample.conv", l);
            wire_conv(w, &lv->resample, n, block_in, block_in, 3);
            res *= 2;
        }
    }
    wire_norm(w, &d->norm_out, "decoder.norm_out", block_in);
    wire_conv(w, &d->conv_out, "decoder.conv_out", block_in, s->out_ch, 3);
}

static int read_stage(const struct vq_gguf *g, struct vqgan_model *m, struct vq_stage *s,
                      const char *stage, int has_decoder)
{
    char key[128], *prefix = NULL;
    int64_t v;
    int r, n;
#define KEY(k) (snprintf(key, sizeof(key), "vqgan.%s.%s", stage, k), key)
#define INT(k, lo, hi, dst) do { if ((r = vq_gguf_get_int(g, KEY(k), 1, lo, hi, &v))) return r; dst = (int)v; } while (0)
    INT("ch", 1, 4096, s->ch);
    INT("num_res_blocks", 0, VQ_MAX_RES - 1, s->num_res_blocks);
    INT("resolution", 1, 1 << 16, s->resolution);
    INT("in_channels", 1, 4096, s->in_channels);
    INT("out_ch", 1, 4096, s->out_ch);
    INT("z_channels", 1, 4096, s->z_channels);
    INT("embed_dim", 1, 4096, s->embed_dim);
    INT("n_embed", 1, 65536, s->n_embed);
    if ((r = vq_gguf_get_int_array(g, KEY("ch_mult"), 1, VQ_MAX_LEVELS, 1, 64, s->ch_mult, &n)))
        return r;
    if (n < 1)
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s' is empty", g->path, key);
    s->n_level = n;
    if ((r = vq_gguf_get_int_array(g, KEY("attn_resolutions"), 1, VQ_MAX_LEVELS, 1, 1 << 16,
                                   s->attn_res, &s->n_attn_res)))
        return r;
    char *quant = NULL;
    if ((r = vq_gguf_get_string(g, KEY("quantizer"), 0, &quant)))
        return r;
    if (quant && strcmp(quant, "vq") && strcmp(quant, "gumbel")) {
        r = vq_error(VQGAN_ERR_FORMAT, "%s: %s is '%s', not vq or gumbel", g->path, key, quant);
        free(quant);
        return r;
    }
    s->gumbel = quant && !strcmp(quant, "gumbel");
    free(quant);
    if ((r = vq_gguf_get_string(g, KEY("tensor_prefix"), 1, &prefix)))
        return r;
    for (int i = 0; i < s->n_level; i++)
        if ((s->ch * s->ch_mult[i]) % 32)
            r = vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.%s.ch x ch_mult = %d is not a multiple of the 32 GroupNorm groups",
                         g->path, stage, s->ch * s->ch_mult[i]);
    if (!r && s->ch % 32)
        r = vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.%s.ch = %d is not a multiple of the 32 GroupNorm groups",
                     g->path, stage, s->ch);
#undef INT
#undef KEY
    s->factor = 1 << (s->n_level - 1);
    s->has_decoder = has_decoder;
    struct wire w = { m, g->path, prefix, r };
    wire_encoder(&w, s);
    wire_conv(&w, &s->quant_conv, "quant_conv", s->z_channels, s->embed_dim, 1);
    if (s->gumbel) {
        /* GumbelQuantize: proj is built on z_channels inputs and applied to
         * quant_conv's embed_dim outputs; the reference runs only when equal */
        if (!w.err && s->embed_dim != s->z_channels)
            w.err = vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.%s: a gumbel quantizer needs embed_dim (%d) equal to "
                             "z_channels (%d)", g->path, stage, s->embed_dim, s->z_channels);
        wire_conv(&w, &s->proj, "quantize.proj", s->embed_dim, s->n_embed, 1);
        s->codebook = get(&w, "quantize.embed.weight", s->n_embed, s->embed_dim, -1, -1);
    } else {
        s->codebook = get(&w, "quantize.embedding.weight", s->n_embed, s->embed_dim, -1, -1);
    }
    if (has_decoder) {
        wire_conv(&w, &s->post_quant_conv, "post_quant_conv", s->embed_dim, s->z_channels, 1);
        wire_decoder(&w, s);
    }
    free(prefix);
    if (w.err) return w.err;
    s->codebook_norm2 = malloc(sizeof(float) * s->n_embed);
    if (!s->codebook_norm2) return vq_error(VQGAN_ERR_NOMEM, "%s: out of memory", g->path);
    for (int i = 0; i < s->n_embed; i++) {
        float acc = 0.0f;
        for (int j = 0; j < s->embed_dim; j++)
            acc += s->codebook[(size_t)i * s->embed_dim + j] * s->codebook[(size_t)i * s->embed_dim + j];
        s->codebook_norm2[i] = acc;
    }
    s->present = 1;
    return 0;
}

static int read_gpt(const struct vq_gguf *g, struct vqgan_model *m)
{
    struct vq_gpt *t = &m->gpt;
    char *prefix = NULL, n[256];
    int64_t v;
    int r;
#define INT(k, lo, hi, dst) do { if ((r = vq_gguf_get_int(g, "vqgan.transformer." k, 1, lo, hi, &v))) return r; dst = (int)v; } while (0)
    INT("vocab_size", 1, 1 << 20, t->vocab);
    INT("block_size", 1, 1 << 16, t->block);
    INT("n_layer", 1, 1024, t->n_layer);
    INT("n_head", 1, 1024, t->n_head);
    INT("n_embd", 1, 1 << 16, t->n_embd);
#undef INT
    t->n_unmasked = 0;
    if ((r = vq_gguf_get_int(g, "vqgan.transformer.n_unmasked", 0, 0, t->block, &v))) return r;
    if (vq_gguf_find(g, "vqgan.transformer.n_unmasked")) t->n_unmasked = (int)v;
    if (t->n_embd % t->n_head)
        return vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.transformer.n_head = %d does not divide n_embd = %d",
                        g->path, t->n_head, t->n_embd);
    if ((r = vq_gguf_get_string(g, "vqgan.transformer.tensor_prefix", 1, &prefix))) return r;
    t->blocks = calloc((size_t)t->n_layer, sizeof(*t->blocks));
    if (!t->blocks) { free(prefix); return vq_error(VQGAN_ERR_NOMEM, "%s: out of memory", g->path); }
    struct wire w = { m, g->path, prefix, 0 };
    const int D = t->n_embd;
    t->tok_emb = get(&w, "tok_emb.weight", t->vocab, D, -1, -1);
    t->pos_emb = get(&w, "pos_emb", 1, t->block, D, -1);
    for (int l = 0; l < t->n_layer; l++) {
        struct vq_gpt_block *b = &t->blocks[l];
#define W(field, name, d0, d1) (snprintf(n, sizeof(n), "blocks.%d." name, l), b->field = get(&w, n, d0, d1, -1, -1))
        W(ln1_w, "ln1.weight", D, -1);  W(ln1_b, "ln1.bias", D, -1);
        W(ln2_w, "ln2.weight", D, -1);  W(ln2_b, "ln2.bias", D, -1);
        W(q_w, "attn.query.weight", D, D); W(q_b, "attn.query.bias", D, -1);
        W(k_w, "attn.key.weight", D, D);   W(k_b, "attn.key.bias", D, -1);
        W(v_w, "attn.value.weight", D, D); W(v_b, "attn.value.bias", D, -1);
        W(proj_w, "attn.proj.weight", D, D); W(proj_b, "attn.proj.bias", D, -1);
        W(fc_w, "mlp.0.weight", 4 * D, D); W(fc_b, "mlp.0.bias", 4 * D, -1);
        W(fc2_w, "mlp.2.weight", D, 4 * D); W(fc2_b, "mlp.2.bias", D, -1);
#undef W
    }
    t->lnf_w = get(&w, "ln_f.weight", D, -1, -1, -1);
    t->lnf_b = get(&w, "ln_f.bias", D, -1, -1, -1);
    t->head_w = get(&w, "head.weight", t->vocab, D, -1, -1);
    free(prefix);
    if (w.err) return w.err;
    /* the model's backend, and its linear weights packed for it once (bf16) */
    r = vq_gpt_pack(t, m->backend);
    if (r) return vq_error(VQGAN_ERR_NOMEM, "%s: out of memory packing weights for the %s backend", g->path,
                           m->backend->name);
    t->present = 1;
    return 0;
}

static void model_free(struct vqgan_model *m)
{
    if (!m) return;
    vq_gpt_unpack(&m->gpt);             /* the packed weights, before their tensors */
    for (int i = 0; i < m->n_tensors; i++) {
        free(m->tensors[i].name);
        free(m->tensors[i].data);
    }
    free(m->tensors);
    free(m->first.codebook_norm2);
    free(m->cond.codebook_norm2);
    free(m->gpt.blocks);
    if (m->label_names)
        for (int i = 0; i < m->n_labels; i++) free(m->label_names[i]);
    free(m->label_names);
    free(m->label_colors);
    free(m->path);
    free(m);
}


/* Optional vqgan.cond_stage.label_colors: one "#rrggbb" per label (the
 * palette of colour-coded label maps); all or none. */
static int read_label_colors(const struct vq_gguf *g, struct vqgan_model *m)
{
    char **s = NULL;
    int n = 0, r;
    if ((r = vq_gguf_get_string_array(g, "vqgan.cond_stage.label_colors", 0, &s, &n))) return r;
    if (!s) return 0;
    if (n != m->n_labels)
        r = vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.cond_stage.label_colors has %d colours for %d labels",
                     g->path, n, m->n_labels);
    else if (!(m->label_colors = malloc(sizeof(*m->label_colors) * (size_t)n)))
        r = vq_error(VQGAN_ERR_NOMEM, "out of memory");
    for (int i = 0; !r && i < n; i++) {
        if (strlen(s[i]) != 7 || s[i][0] != '#' || strspn(s[i] + 1, "0123456789abcdefABCDEF") != 6) {
            r = vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.cond_stage.label_colors[%d] = '%.16s' is not #rrggbb",
                         g->path, i, s[i]);
            break;
        }
        /* two labels may share a colour (ADE20K's standard palette does);
         * readers of colour maps decide */
        m->label_colors[i] = (uint32_t)strtoul(s[i] + 1, NULL, 16);
    }
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
    return r;
}

static int build_model(const struct vq_gguf *g, struct vqgan_model *m, const struct vqgan_model_params *p)
{
    char *arch = NULL, *kind = NULL, *name = NULL;
    int64_t v;
    int r, has_first = 0, has_tf = 0;

    if ((r = vq_gguf_get_string(g, "general.architecture", 1, &arch))) return r;
    if (strcmp(arch, "vqgan")) {
        r = vq_error(VQGAN_ERR_FORMAT, "%s: general.architecture is '%s', expected 'vqgan'", g->path, arch);
        free(arch);
        return r;
    }
    free(arch);
    if ((r = vq_gguf_get_int(g, "vqgan.format_version", 1, 1, 1, &v))) return r;
    if ((r = vq_gguf_get_string(g, "general.name", 0, &name))) return r;
    if (name) {
        snprintf(m->info.name, sizeof(m->info.name), "%s", name);
        free(name);
    }

    m->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*m->tensors));
    if (!m->tensors) return vq_error(VQGAN_ERR_NOMEM, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        m->n_tensors++;
        if ((r = load_tensor(g, &g->tensors[i], &m->tensors[i], p->check_finite))) return r;
    }

    if ((r = vq_gguf_get_bool(g, "vqgan.has_first_stage", 1, &has_first))) return r;
    if ((r = vq_gguf_get_bool(g, "vqgan.has_transformer", 1, &has_tf))) return r;
    if ((r = vq_gguf_get_string(g, "vqgan.cond_stage.kind", 1, &kind))) return r;
    if (!strcmp(kind, "none")) m->info.cond_kind = VQGAN_COND_NONE;
    else if (!strcmp(kind, "segmentation")) m->info.cond_kind = VQGAN_COND_SEGMENTATION;
    else if (!strcmp(kind, "class")) m->info.cond_kind = VQGAN_COND_CLASS;
    else if (!strcmp(kind, "sos")) m->info.cond_kind = VQGAN_COND_SOS;
    else if (!strcmp(kind, "depth")) m->info.cond_kind = VQGAN_COND_DEPTH;
    else if (!strcmp(kind, "coord")) m->info.cond_kind = VQGAN_COND_COORD;
    else r = vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.cond_stage.kind '%s' is not none, segmentation, depth, coord, "
                      "class or sos", g->path, kind);
    free(kind);
    if (r) return r;

    if (has_first && (r = read_stage(g, m, &m->first, "first_stage", 1))) return r;
    if (m->info.cond_kind == VQGAN_COND_SEGMENTATION) {
        if ((r = read_stage(g, m, &m->cond, "cond_stage", 0))) return r;
        if ((r = vq_gguf_get_int(g, "vqgan.cond_stage.n_labels", 1, 1, 256, &v))) return r;
        m->n_labels = (int)v;
        if (m->n_labels != m->cond.in_channels)
            return vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.cond_stage.n_labels = %d differs from in_channels = %d",
                            g->path, m->n_labels, m->cond.in_channels);
        int nn = 0;
        if ((r = vq_gguf_get_string_array(g, "vqgan.cond_stage.label_names", 0, &m->label_names, &nn))) return r;
        if (m->label_names && nn != m->n_labels)
            return vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.cond_stage.label_names has %d names for %d labels",
                            g->path, nn, m->n_labels);
        if ((r = read_label_colors(g, m))) return r;
    } else if (m->info.cond_kind == VQGAN_COND_DEPTH) {
        if ((r = read_stage(g, m, &m->cond, "cond_stage", 0))) return r;
        if (m->cond.in_channels != 1)
            return vq_error(VQGAN_ERR_FORMAT, "%s: a depth condition stage takes one channel, "
                            "vqgan.cond_stage.in_channels is %d", g->path, m->cond.in_channels);
        if (m->cond.gumbel)
            return vq_error(VQGAN_ERR_FORMAT, "%s: a depth condition stage with a gumbel quantizer is not supported",
                            g->path);
        char *norm = NULL;
        if ((r = vq_gguf_get_string(g, "vqgan.cond_stage.depth_normalization", 1, &norm))) return r;
        if (strcmp(norm, "minmax"))
            r = vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.cond_stage.depth_normalization is '%s', not minmax",
                         g->path, norm);
        free(norm);
        if (r) return r;
    } else if (m->info.cond_kind == VQGAN_COND_COORD) {
        if ((r = vq_gguf_get_int(g, "vqgan.cond_stage.n_embed", 1, 1, 1 << 20, &v))) return r;
        m->coord_n_embed = (int)v;
        if ((r = vq_gguf_get_int(g, "vqgan.cond_stage.down_factor", 1, 1, 1 << 10, &v))) return r;
        m->coord_down = (int)v;
    } else if (m->info.cond_kind == VQGAN_COND_CLASS) {
        if ((r = vq_gguf_get_int(g, "vqgan.cond_stage.n_classes", 1, 1, 1 << 20, &v))) return r;
        m->info.n_classes = (int)v;
    } else if (m->info.cond_kind == VQGAN_COND_SOS) {
        if ((r = vq_gguf_get_int(g, "vqgan.cond_stage.sos_token", 1, 0, 1 << 20, &v))) return r;
        m->info.sos_token = (int)v;
    }
    if (has_tf && (r = read_gpt(g, m))) return r;

    /* cross-stage consistency */
    struct vqgan_model_info *in = &m->info;
    in->has_first_stage = m->first.present;
    in->has_transformer = m->gpt.present;
    in->factor = m->first.present ? m->first.factor : 0;
    in->image_codes = m->first.present ? m->first.n_embed : 0;
    in->cond_factor = m->cond.present ? m->cond.factor : 0;
    in->cond_codes = m->cond.present ? m->cond.n_embed : 0;
    in->n_labels = m->n_labels;
    in->image_quantizer = m->first.present && m->first.gumbel ? VQGAN_QUANTIZER_GUMBEL : VQGAN_QUANTIZER_VQ;
    if (in->cond_kind == VQGAN_COND_COORD) {
        in->cond_factor = m->coord_down;
        in->cond_codes = m->coord_n_embed;
        if (m->first.present && m->coord_down != m->first.factor)
            return vq_error(VQGAN_ERR_FORMAT, "%s: vqgan.cond_stage.down_factor %d differs from the image factor %d",
                            g->path, m->coord_down, m->first.factor);
    }
    if (m->gpt.present) {
        const struct vq_gpt *t = &m->gpt;
        in->vocab_size = t->vocab;
        in->block_size = t->block;
        in->n_layer = t->n_layer;
        in->n_head = t->n_head;
        in->n_embd = t->n_embd;
        if (in->image_codes > t->vocab || in->cond_codes > t->vocab)
            return vq_error(VQGAN_ERR_FORMAT, "%s: codebooks (%d image, %d condition codes) exceed the transformer vocabulary %d",
                            g->path, in->image_codes, in->cond_codes, t->vocab);
        if (in->cond_kind == VQGAN_COND_SEGMENTATION || in->cond_kind == VQGAN_COND_DEPTH ||
            in->cond_kind == VQGAN_COND_COORD) {
            const int w = vq_window_side(t->block);
            if (!w)
                return vq_error(VQGAN_ERR_FORMAT, "%s: block_size %d is not 2*w*w for a segmentation-conditional window",
                                g->path, t->block);
            in->window = w;
            if (m->first.present && m->cond.present && m->cond.factor != m->first.factor)
                return vq_error(VQGAN_ERR_FORMAT, "%s: condition stage factor %d differs from image factor %d",
                                g->path, m->cond.factor, m->first.factor);
        } else if (in->cond_kind == VQGAN_COND_CLASS || in->cond_kind == VQGAN_COND_SOS) {
            /* the sampler's own rule (grid.c): the largest w with w*w <= block */
            in->window = vq_window_side_token(t->block);
            if (in->cond_kind == VQGAN_COND_CLASS && in->n_classes > t->vocab)
                return vq_error(VQGAN_ERR_FORMAT, "%s: n_classes %d exceeds the vocabulary %d", g->path,
                                in->n_classes, t->vocab);
            if (in->cond_kind == VQGAN_COND_SOS && in->sos_token >= t->vocab)
                return vq_error(VQGAN_ERR_FORMAT, "%s: sos_token %d is outside the vocabulary %d", g->path,
                                in->sos_token, t->vocab);
        }
    }
    return 0;
}

struct vqgan_model_params vqgan_model_default_params(void)
{
    struct vqgan_model_params p = { VQGAN_PRECISION_AUTO, 1 };
    return p;
}

#define GIB(x) ((double)(x) / (double)(1u << 30))

/* Opens path for reading without blocking (a FIFO nobody writes to would
 * block open() forever) and refuses anything but a regular file. Takes no
 * lock: vqgan_model_acquire calls it before taking the cache lock. */
static int open_model_file(const char *path, int *fd_out, struct stat *st)
{
    *fd_out = -1;
    if (!path || !*path)
        return vq_error(VQGAN_ERR_INVALID, "no model file given");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return vq_error(VQGAN_ERR_IO, "%s: cannot open model file: %s", path, strerror(errno));
    if (fstat(fd, st) < 0) {
        int r = vq_error(VQGAN_ERR_IO, "%s: cannot stat model file: %s", path, strerror(errno));
        close(fd);
        return r;
    }
    if (S_ISDIR(st->st_mode)) {
        close(fd);
        return vq_error(VQGAN_ERR_IO, "%s: is a directory, not a model file", path);
    }
    if (!S_ISREG(st->st_mode)) {
        const char *kind = S_ISFIFO(st->st_mode) ? "a FIFO" : S_ISCHR(st->st_mode) ? "a character device"
                         : S_ISBLK(st->st_mode) ? "a block device" : S_ISSOCK(st->st_mode) ? "a socket"
                         : "a special file";
        close(fd);
        return vq_error(VQGAN_ERR_IO, "%s: is not a regular file (%s), not a model file", path, kind);
    }
    const int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int r = vq_error(VQGAN_ERR_IO, "%s: fcntl: %s", path, strerror(errno));
        close(fd);
        return r;
    }
    *fd_out = fd;
    return 0;
}

/* pread bytes [from, to) of the file into buf + from. A short file is a
 * truncation that happened after the fstat (it was checked for size). */
static int read_range(int fd, const char *path, uint8_t *buf, size_t from, size_t to)
{
    size_t got = from;
    while (got < to) {
        const size_t want = to - got < ((size_t)1 << 30) ? to - got : ((size_t)1 << 30);
        ssize_t k = pread(fd, buf + got, want, (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0)
            return vq_error(VQGAN_ERR_IO, "%s: read error at byte %zu: %s", path, got, strerror(errno));
        if (k == 0)
            return vq_error(VQGAN_ERR_FORMAT, "%s: file truncated while being loaded: it ends at byte %zu, "
                            "more bytes were expected", path, got);
        got += (size_t)k;
    }
    return 0;
}

/* After reading: the same size and modification time as at the start. */
static int check_unchanged(int fd, const char *path, const struct stat *st)
{
    struct stat st2;
    if (fstat(fd, &st2) < 0)
        return vq_error(VQGAN_ERR_IO, "%s: cannot stat model file: %s", path, strerror(errno));
    if (st2.st_size != st->st_size || st2.st_mtim.tv_sec != st->st_mtim.tv_sec ||
        st2.st_mtim.tv_nsec != st->st_mtim.tv_nsec)
        return vq_error(VQGAN_ERR_IO, "%s: the file changed while being loaded (size %lld -> %lld bytes, or a "
                        "new modification time); not loaded", path, (long long)st->st_size, (long long)st2.st_size);
    return 0;
}

/* Refuses, before allocating, a model whose weights would take more than
 * VQGAN_MAX_MODEL_BYTES as f32 (or more than this process may allocate). */
static int check_model_size(const struct vq_gguf *g, size_t file_bytes)
{
    double f32 = 0.0;
    for (uint64_t i = 0; i < g->n_tensors; i++) f32 += (double)g->tensors[i].n_elements * sizeof(float);
    if (f32 > (double)VQGAN_MAX_MODEL_BYTES)
        return vq_error(VQGAN_ERR_LIMIT, "%s: the model's %" PRIu64 " tensors take %.1f GiB as f32, above the "
                        "limit of %.0f GiB (VQGAN_MAX_MODEL_BYTES)", g->path, g->n_tensors, GIB(f32),
                        GIB(VQGAN_MAX_MODEL_BYTES));
    const char *which = "";
    const double lim = vq_process_memory_limit(&which);
    if (lim > 0.0 && f32 + (double)file_bytes > lim)
        return vq_error(VQGAN_ERR_LIMIT, "%s: loading needs %.1f GiB (%.1f GiB of f32 weights and the %.1f GiB "
                        "file), above this process's memory limit (%s %.1f GiB)", g->path,
                        GIB(f32 + (double)file_bytes), GIB(f32), GIB(file_bytes), which, GIB(lim));
    return 0;
}

/* Validate, copy to memory, close fd (always). A file changed later cannot
 * reach us. */
static int model_load_fd(int fd, const char *path, const struct stat *st, const struct vqgan_model_params *params,
                         struct vqgan_model **out)
{
    struct vqgan_model_params p = params ? *params : vqgan_model_default_params();
    struct vq_gguf g;
    uint8_t *data = NULL;
    int r;

    *out = NULL;
    if (st->st_size < 24) {
        close(fd);
        return vq_error(VQGAN_ERR_FORMAT, "%s: file truncated: %lld bytes is too short for a GGUF header",
                        path, (long long)st->st_size);
    }
    const char *which = "";
    const double lim = vq_process_memory_limit(&which);
    if ((double)st->st_size > (double)VQGAN_MAX_MODEL_BYTES || (lim > 0.0 && (double)st->st_size > lim)) {
        close(fd);
        if ((double)st->st_size > (double)VQGAN_MAX_MODEL_BYTES)
            return vq_error(VQGAN_ERR_LIMIT, "%s: the model file is %.1f GiB, above the limit of %.0f GiB "
                            "(VQGAN_MAX_MODEL_BYTES)", path, GIB(st->st_size), GIB(VQGAN_MAX_MODEL_BYTES));
        return vq_error(VQGAN_ERR_LIMIT, "%s: the model file is %.1f GiB, above this process's memory limit "
                        "(%s %.1f GiB)", path, GIB(st->st_size), which, GIB(lim));
    }
    /* Read the header first (1 MiB, more while it runs past what was read),
     * parse it and check the weights' size; only then read the rest. */
    const size_t size = (size_t)st->st_size;
    size_t have = 0, want = size < ((size_t)1 << 20) ? size : ((size_t)1 << 20);
    for (;;) {
        uint8_t *nd = realloc(data, want);
        if (!nd) {
            r = vq_error(VQGAN_ERR_NOMEM, "%s: out of memory reading the model file (%zu bytes)", path, want);
            break;
        }
        data = nd;
        if ((r = read_range(fd, path, data, have, want))) break;
        have = want;
        r = vq_gguf_parse_header(&g, data, have, size, path);
        if (r != VQ_GGUF_MORE) break;
        if (have == size) {                 /* cannot happen: the whole file is there */
            r = vq_error(VQGAN_ERR_FORMAT, "%s: the GGUF header could not be parsed", path);
            break;
        }
        want = want > size / 4 ? size : want * 4;
    }
    if (!r && (r = check_model_size(&g, size))) vq_gguf_free(&g);
    if (!r && have < size) {                /* the tensor data */
        vq_gguf_free(&g);
        uint8_t *nd = vq_alloc_large(size);    /* the header read so far moves in */
        if (!nd) {
            r = vq_error(VQGAN_ERR_NOMEM, "%s: out of memory reading the model file (%zu bytes)", path, size);
        } else {
            memcpy(nd, data, have);
            free(data);
            data = nd;
        }
        if (!r) r = read_range(fd, path, data, have, size);
        if (!r && (r = vq_gguf_parse(&g, data, size, path))) { /* g is left empty */ }
    }
    if (!r && (r = check_unchanged(fd, path, st))) vq_gguf_free(&g);
    close(fd);
    if (r) {
        free(data);
        return r;
    }

    struct vqgan_model *m = calloc(1, sizeof(*m));
    if (!m) {
        vq_gguf_free(&g);
        free(data);
        return vq_error(VQGAN_ERR_NOMEM, "out of memory");
    }
    m->refcount = 1;
    /* auto is fp32: exact parity with the reference (docs/precision.md) */
    int downgraded;
    m->backend = vq_backend_choose(p.precision, &downgraded);
    m->check_finite = p.check_finite != 0;
    if (downgraded)
        vq_log(VQGAN_LOG_WARNING, "vqgan: %s: this CPU has no %s; using %s", path,
               p.precision == VQGAN_PRECISION_INT8 ? "AVX512_VNNI with native bf16" : "native bf16",
               m->backend->precision == VQ_PREC_BF16 ? "bf16" : "fp32");
    m->info.identity = g.identity;
    r = build_model(&g, m, &p);
    vq_gguf_free(&g);
    free(data);
    if (r) {
        model_free(m);
        return r;
    }
    if (!(m->path = strdup(path))) {
        model_free(m);
        return vq_error(VQGAN_ERR_NOMEM, "out of memory");
    }
    vq_log(VQGAN_LOG_VERBOSE, "vqgan: loaded model %s (%s, %d tensors, identity %016" PRIx64 ")",
           path, m->info.name, m->n_tensors, m->info.identity);
    if (m->backend->precision == VQ_PREC_INT8)
        vq_log(VQGAN_LOG_VERBOSE, "vqgan: %s: int8 products by %s", path, vq_int8_kernel_name());
    *out = m;
    return 0;
}

static int check_model_params(const struct vqgan_model_params *params)
{
    if (params && (params->precision < VQGAN_PRECISION_AUTO || params->precision > VQGAN_PRECISION_INT8))
        return vq_error(VQGAN_ERR_INVALID, "precision %d is not auto (0), fp32 (1), bf16 (2) or int8 (3)",
                        params->precision);
    return 0;
}

int vqgan_model_load(const char *path, const struct vqgan_model_params *params, struct vqgan_model **out)
{
    if (!out) return vq_error(VQGAN_ERR_INVALID, "vqgan_model_load: out is NULL");
    *out = NULL;
    vq_clear_error();
    struct stat st;
    int fd, r;
    if ((r = check_model_params(params))) return r;
    if ((r = open_model_file(path, &fd, &st))) return r;
    return model_load_fd(fd, path, &st, params, out);
}

struct vqgan_model *vqgan_model_ref(struct vqgan_model *m)
{
    if (m) __atomic_add_fetch(&m->refcount, 1, __ATOMIC_ACQ_REL);
    return m;
}

/* ---- the process-wide shared cache ---------------------------------------- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
#define VQ_CACHE_MAX 64
static struct vqgan_model *cache[VQ_CACHE_MAX];

void vqgan_model_unref(struct vqgan_model *m)
{
    if (!m) return;
    pthread_mutex_lock(&cache_lock);   /* a cached model leaves the cache atomically */
    if (__atomic_sub_fetch(&m->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
        for (int i = 0; i < VQ_CACHE_MAX; i++)
            if (cache[i] == m) cache[i] = NULL;
        pthread_mutex_unlock(&cache_lock);
        model_free(m);
        return;
    }
    pthread_mutex_unlock(&cache_lock);
}

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

int vqgan_model_acquire(const char *path, const struct vqgan_model_params *params,
                        struct vqgan_model **out)
{
    struct stat st;
    int r, fd;
    if (!out) return vq_error(VQGAN_ERR_INVALID, "vqgan_model_acquire: out is NULL");
    *out = NULL;
    vq_clear_error();
    if ((r = check_model_params(params))) return r;
    /* opened and checked (a regular file) before taking the lock: nothing
     * that can block, such as a FIFO, is ever waited on while it is held */
    if ((r = open_model_file(path, &fd, &st))) return r;

    /* the same file loaded with the same parameters, as they resolve here */
    const struct vqgan_model_params p = params ? *params : vqgan_model_default_params();
    const struct vq_backend *backend = vq_backend_choose(p.precision, NULL);
    const int finite = p.check_finite != 0;

    /* Loading happens under the lock so two instances never load one file twice. */
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < VQ_CACHE_MAX; i++) {
        struct vqgan_model *m = cache[i];
        if (m && !strcmp(m->path, path) && m->dev == (uint64_t)st.st_dev && m->ino == (uint64_t)st.st_ino &&
            m->size == (uint64_t)st.st_size && m->mtime_ns == mtime_ns(&st) && m->backend == backend &&
            m->check_finite == finite) {
            __atomic_add_fetch(&m->refcount, 1, __ATOMIC_ACQ_REL);
            pthread_mutex_unlock(&cache_lock);
            close(fd);
            vq_log(VQGAN_LOG_DEBUG, "vqgan: shared model %s from the cache", path);
            *out = m;
            return 0;
        }
    }
    struct vqgan_model *m;
    r = model_load_fd(fd, path, &st, params, &m);
    if (!r) {
        m->dev = (uint64_t)st.st_dev;
        m->ino = (uint64_t)st.st_ino;
        m->size = (uint64_t)st.st_size;
        m->mtime_ns = mtime_ns(&st);
        for (int i = 0; i < VQ_CACHE_MAX; i++)
            if (!cache[i]) { cache[i] = m; m->cached = 1; break; }
        *out = m;
    }
    pthread_mutex_unlock(&cache_lock);
    return r;
}

int vqgan_model_cache_count(void)
{
    int n = 0;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < VQ_CACHE_MAX; i++) n += cache[i] != NULL;
    pthread_mutex_unlock(&cache_lock);
    return n;
}

int vqgan_model_get_info(const struct vqgan_model *m, struct vqgan_model_info *info)
{
    if (!m || !info) return vq_error(VQGAN_ERR_INVALID, "vqgan_model_get_info: NULL argument");
    *info = m->info;
    return 0;
}

int vqgan_model_label_color(const struct vqgan_model *m, int label, uint8_t rgb[3])
{
    if (!m || !m->label_colors || label < 0 || label >= m->n_labels || !rgb) return 0;
    rgb[0] = m->label_colors[label] >> 16;
    rgb[1] = m->label_colors[label] >> 8 & 0xff;
    rgb[2] = m->label_colors[label] & 0xff;
    return 1;
}

int vqgan_model_image_channels(const struct vqgan_model *m, int *in_channels, int *out_channels)
{
    if (!m || !in_channels || !out_channels)
        return vq_error(VQGAN_ERR_INVALID, "vqgan_model_image_channels: NULL argument");
    if (!m->info.has_first_stage)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s has no image tokenizer", m->path);
    *in_channels = m->first.in_channels;
    *out_channels = m->first.out_ch;
    return 0;
}

const char *vqgan_model_label_name(const struct vqgan_model *m, int label)
{
    if (!m || !m->label_names || label < 0 || label >= m->n_labels) return NULL;
    return m->label_names[label];
}
