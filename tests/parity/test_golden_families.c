/* Parity with the reference (../shared/golden, "The other released model
 * families") for the condition kinds and tokenizers beyond S-FLCKR: depth
 * (D-RIN: a one-channel VQModel condition), coordinates (FacesHQ:
 * CoordStage), COCO-Stuff's 183 labels, and the Gumbel first stage. Tokens
 * identical, pictures within 1 in 8 bits, the bad inputs refused by name. */
#include <math.h>
#include <string.h>

#include "npy.h"
#include "test_common.h"
#include "vqgan.h"

static int to_u8(float v)
{
    v = v < -1 ? -1 : v > 1 ? 1 : v;
    return (int)floorf((v + 1.0f) * 127.5f + 0.5f);
}

static int load_npy(const char *rel, struct npy *a)
{
    int r = npy_load(golden_path(rel), a);
    CHECK(r == 0, "read %s", golden_path(rel));
    return r;
}

static int same_tokens(const int32_t *got, const struct npy *want, long n)
{
    if (want->n != n) return 0;
    for (long i = 0; i < n; i++)
        if (got[i] != ((const int64_t *)want->data)[i]) return 0;
    return 1;
}

/* The largest 8-bit difference between decoding tokens and image.npy. */
static int image_diff(struct vqgan_session *s, const int32_t *tok, int gw, int gh, const struct npy *img)
{
    const int H = (int)img->shape[2], W = (int)img->shape[3];
    uint8_t *rgb = malloc((size_t)W * H * 3);
    int worst = 256;
    if (rgb && !vqgan_decode(s, tok, gw, gh, rgb, W * 3)) {
        worst = 0;
        const float *f = img->data;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) {
                    const int d = abs(rgb[(y * W + x) * 3 + c] - to_u8(f[((size_t)c * H + y) * W + x]));
                    worst = d > worst ? d : worst;
                }
    }
    free(rgb);
    return worst;
}

/* Greedy sampling from the golden condition tokens, then the picture. */
static void check_sampling(const char *name, struct vqgan_session *s, const int32_t *cond, int gw, int gh)
{
    char p[128];
    struct npy idx, img;
    snprintf(p, sizeof(p), "%s/indices.npy", name);
    if (load_npy(p, &idx)) return;
    snprintf(p, sizeof(p), "%s/image.npy", name);
    if (load_npy(p, &img)) { npy_free(&idx); return; }
    int32_t *tok = calloc((size_t)gw * gh, sizeof(int32_t));
    int r = vqgan_sample_conditional(s, cond, gw, gh, tok);
    CHECK(r == 0 && same_tokens(tok, &idx, (long)gw * gh), "%s: greedy sliding-window sampling on %dx%d gives "
          "indices.npy (%s)", name, gw, gh, r ? vqgan_last_error() : "identical");
    const int d = image_diff(s, tok, gw, gh, &img);
    CHECK(d <= 1, "%s: decoded picture within 1 of image.npy in 8 bits (max %d)", name, d);
    free(tok);
    npy_free(&idx);
    npy_free(&img);
}

static struct vqgan_session *open_case(const char *name, struct vqgan_model **m, struct vqgan_model_info *info)
{
    struct vqgan_session *s = NULL;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 1;
    int r = vqgan_model_load(model_path(name), NULL, m);
    CHECK(r == 0, "%s: load %s (%s)", name, model_path(name), r ? vqgan_last_error() : "ok");
    if (r) return NULL;
    vqgan_model_get_info(*m, info);
    if (vqgan_session_new(*m, &sp, &s)) {
        CHECK(0, "%s: session (%s)", name, vqgan_last_error());
        vqgan_model_unref(*m);
        return NULL;
    }
    return s;
}

static void close_case(struct vqgan_session *s, struct vqgan_model *m)
{
    vqgan_session_free(s);
    vqgan_model_unref(m);
}

static void test_depth(void)
{
    struct vqgan_model *m;
    struct vqgan_model_info info;
    struct vqgan_session *s = open_case("depth", &m, &info);
    if (!s) return;
    CHECK(info.cond_kind == VQGAN_COND_DEPTH && info.cond_factor == 8 && info.cond_codes == 32 &&
          info.window == 4, "depth: kind depth, factor %d, %d condition codes, window %d", info.cond_factor,
          info.cond_codes, info.window);
    struct npy d, ci;
    if (load_npy("depth/depth.npy", &d)) goto out;
    if (load_npy("depth/cond_indices.npy", &ci)) { npy_free(&d); goto out; }
    const int H = (int)d.shape[2], W = (int)d.shape[3], gh = H / 8, gw = W / 8;
    int32_t *tok = calloc((size_t)gw * gh, sizeof(int32_t)), *tok2 = calloc((size_t)gw * gh, sizeof(int32_t));
    float *norm = malloc(sizeof(float) * (size_t)W * H), *raw = malloc(sizeof(float) * (size_t)W * H);
    int r = vqgan_encode_depth(s, d.data, W, H, tok, NULL);
    CHECK(r == 0 && same_tokens(tok, &ci, (long)gw * gh), "depth: depth.npy ([-1, 1]) encodes to cond_indices.npy "
          "(%s)", r ? vqgan_last_error() : "identical");

    /* depth.png spans 0..65535: the per-image min-max of any affine copy of
     * it is depth.npy again (to float rounding), so the same tokens */
    const float *df = d.data;
    for (long i = 0; i < (long)W * H; i++) raw[i] = (df[i] + 1.0f) * 0.5f * 3.7f + 0.25f;
    r = vqgan_depth_normalize(raw, W, H, 0.0f, 0.0f, 0, norm);
    float err = 0.0f;
    for (long i = 0; i < (long)W * H; i++) err = fmaxf(err, fabsf(norm[i] - df[i]));
    CHECK(r == 0 && err < 1e-5f, "depth: per-image min-max of an affine copy gives depth.npy (max diff %.2g)", err);
    r = vqgan_encode_depth(s, norm, W, H, tok2, NULL);
    CHECK(r == 0 && !memcmp(tok, tok2, sizeof(int32_t) * gw * gh), "depth: ... and the same condition tokens");
    /* a fixed range equal to the map's own range is the per-image mapping */
    r = vqgan_depth_normalize(raw, W, H, 0.25f, 3.95f, 0, norm);
    err = 0.0f;
    for (long i = 0; i < (long)W * H; i++) err = fmaxf(err, fabsf(norm[i] - df[i]));
    CHECK(r == 0 && err < 1e-5f, "depth: depth_range = the map's own min:max gives depth.npy (max diff %.2g)", err);
    /* invert: larger-is-farther input of the inverted map gives the same */
    for (long i = 0; i < (long)W * H; i++) raw[i] = 10.0f - raw[i];
    r = vqgan_depth_normalize(raw, W, H, 0.0f, 0.0f, 1, norm);
    err = 0.0f;
    for (long i = 0; i < (long)W * H; i++) err = fmaxf(err, fabsf(norm[i] - df[i]));
    CHECK(r == 0 && err < 1e-5f, "depth: invert on the reversed map gives depth.npy (max diff %.2g)", err);
    /* a fixed range clamps outside values */
    raw[0] = 100.0f;
    raw[1] = -100.0f;
    r = vqgan_depth_normalize(raw, W, H, 0.0f, 10.0f, 0, norm);
    CHECK(r == 0 && norm[0] == 1.0f && norm[1] == -1.0f, "depth: a fixed range clamps to [-1, 1] (%g, %g)",
          norm[0], norm[1]);
    r = vqgan_depth_normalize(raw, W, H, 2.0f, 1.0f, 0, norm);
    CHECK(r == VQGAN_ERR_INVALID && strstr(vqgan_last_error(), "2:1"), "depth: range 2:1 refused: %s",
          vqgan_last_error());
    raw[3] = NAN;
    r = vqgan_depth_normalize(raw, W, H, 0.0f, 0.0f, 0, norm);
    CHECK(r == VQGAN_ERR_INVALID && strstr(vqgan_last_error(), "not finite"), "depth: NaN refused: %s",
          vqgan_last_error());

    check_sampling("depth", s, tok, gw, gh);

    /* labels on a depth model, depth sizes off the factor */
    uint8_t *ids = calloc((size_t)W * H, 1);
    r = vqgan_encode_labels(s, ids, W, W, H, tok2, NULL);
    CHECK(r == VQGAN_ERR_UNSUPPORTED && strstr(vqgan_last_error(), "depth"),
          "depth: a label map on a depth model refused: %s", vqgan_last_error());
    r = vqgan_encode_depth(s, d.data, W - 1, H, tok2, NULL);
    CHECK(r == VQGAN_ERR_INVALID && strstr(vqgan_last_error(), "multiple"), "depth: width %d refused: %s", W - 1,
          vqgan_last_error());
    free(ids); free(tok); free(tok2); free(norm); free(raw);
    npy_free(&d);
    npy_free(&ci);
out:
    close_case(s, m);
}

static void test_coord(void)
{
    struct vqgan_model *m;
    struct vqgan_model_info info;
    struct vqgan_session *s = open_case("coord", &m, &info);
    if (!s) return;
    struct npy ci, img;
    if (load_npy("coord/cond_indices.npy", &ci)) goto out;
    if (load_npy("coord/image.npy", &img)) { npy_free(&ci); goto out; }
    const int H = (int)img.shape[2], W = (int)img.shape[3], gh = H / 8, gw = W / 8;
    CHECK(info.cond_kind == VQGAN_COND_COORD && info.cond_factor == 8 && info.cond_codes == 64,
          "coord: kind coord, down_factor %d, n_embed %d", info.cond_factor, info.cond_codes);
    int32_t *tok = calloc((size_t)gw * gh, sizeof(int32_t));
    int r = vqgan_encode_coord(s, W, H, tok);
    CHECK(r == 0 && same_tokens(tok, &ci, (long)gw * gh), "coord: the %dx%d frame's position map gives "
          "cond_indices.npy (%s)", W, H, r ? vqgan_last_error() : "identical");
    check_sampling("coord", s, tok, gw, gh);
    /* a frame so tall that round(n_embed * x) reaches the vocabulary */
    int32_t *big = calloc((size_t)1 * 8 * 1024, sizeof(int32_t));
    r = vqgan_encode_coord(s, 8, 8 * 1024, big);
    CHECK(r == VQGAN_ERR_LIMIT && strstr(vqgan_last_error(), "vocabulary"), "coord: a 8x8192 frame refused: %s",
          vqgan_last_error());
    r = vqgan_encode_coord(s, W + 4, H, tok);
    CHECK(r == VQGAN_ERR_INVALID && strstr(vqgan_last_error(), "down_factor"), "coord: width %d refused: %s",
          W + 4, vqgan_last_error());
    float zero[64] = { 0 };
    r = vqgan_encode_depth(s, zero, 8, 8, tok, NULL);
    CHECK(r == VQGAN_ERR_UNSUPPORTED, "coord: a depth map on a coordinate model refused: %s", vqgan_last_error());
    free(big);
    free(tok);
    npy_free(&ci);
    npy_free(&img);
out:
    close_case(s, m);
}

static void test_coco(void)
{
    struct vqgan_model *m;
    struct vqgan_model_info info;
    struct vqgan_session *s = open_case("coco", &m, &info);
    if (!s) return;
    struct npy lab, ci;
    if (load_npy("coco/labels.npy", &lab)) goto out;
    if (load_npy("coco/cond_indices.npy", &ci)) { npy_free(&lab); goto out; }
    const int H = (int)lab.shape[lab.ndim - 2], W = (int)lab.shape[lab.ndim - 1], gh = H / 8, gw = W / 8;
    CHECK(info.cond_kind == VQGAN_COND_SEGMENTATION && info.n_labels == 183, "coco: segmentation, %d labels",
          info.n_labels);
    uint8_t *ids = malloc((size_t)W * H);
    int has182 = 0;
    for (long i = 0; i < (long)W * H; i++) {
        ids[i] = (uint8_t)(!strcmp(lab.dtype, "<i8") ? ((int64_t *)lab.data)[i] : ((uint8_t *)lab.data)[i]);
        has182 |= ids[i] == 182;
    }
    int32_t *tok = calloc((size_t)gw * gh, sizeof(int32_t));
    int r = vqgan_encode_labels(s, ids, W, W, H, tok, NULL);
    CHECK(r == 0 && has182 && same_tokens(tok, &ci, (long)gw * gh), "coco: labels (182 among them) encode to "
          "cond_indices.npy (%s)", r ? vqgan_last_error() : "identical");
    check_sampling("coco", s, tok, gw, gh);
    ids[7] = 183;
    r = vqgan_encode_labels(s, ids, W, W, H, tok, NULL);
    CHECK(r == VQGAN_ERR_INVALID && strstr(vqgan_last_error(), "183") && strstr(vqgan_last_error(), "0..182"),
          "coco: label id 183 refused: %s", vqgan_last_error());
    float *dz = calloc((size_t)W * H, sizeof(float));
    r = vqgan_encode_depth(s, dz, W, H, tok, NULL);
    CHECK(r == VQGAN_ERR_UNSUPPORTED && strstr(vqgan_last_error(), "segmentation"),
          "coco: a depth map on a segmentation model refused: %s", vqgan_last_error());
    free(dz); free(ids); free(tok);
    npy_free(&lab);
    npy_free(&ci);
out:
    close_case(s, m);
}

static void test_gumbel(void)
{
    struct vqgan_model *m;
    struct vqgan_model_info info;
    struct vqgan_session *s = open_case("gumbel", &m, &info);
    if (!s) return;
    struct npy x, idx, lg, dec;
    if (load_npy("gumbel/x.npy", &x)) goto out;
    if (load_npy("gumbel/indices.npy", &idx) || load_npy("gumbel/logits.npy", &lg) ||
        load_npy("gumbel/dec.npy", &dec)) { npy_free(&x); goto out; }
    CHECK(info.image_quantizer == VQGAN_QUANTIZER_GUMBEL && info.image_codes == 128,
          "gumbel: the first stage's quantizer is gumbel, %d codes", info.image_codes);
    const int H = (int)x.shape[2], W = (int)x.shape[3], gh = H / info.factor, gw = W / info.factor;
    int32_t *tok = calloc((size_t)gw * gh, sizeof(int32_t)), *tok2 = calloc((size_t)gw * gh, sizeof(int32_t));
    float *logits = calloc((size_t)lg.n, sizeof(float));
    int r = vqgan_encode_image_f32(s, x.data, W, H, tok, NULL);
    CHECK(r == 0 && same_tokens(tok, &idx, (long)gw * gh), "gumbel: x.npy encodes to indices.npy, the argmax "
          "of the logits (%s)", r ? vqgan_last_error() : "identical");
    r = vqgan_encode_image_logits(s, x.data, W, H, tok2, logits);
    double md = 0.0;
    for (long i = 0; i < lg.n; i++) md = fmax(md, fabs((double)logits[i] - ((float *)lg.data)[i]));
    CHECK(r == 0 && md <= 2e-4 && !memcmp(tok, tok2, sizeof(int32_t) * gw * gh),
          "gumbel: logits within 2e-4 of logits.npy (max %.3g)", md);
    /* 8-bit encode of x.png (x = k/127.5 - 1) gives the same tokens */
    uint8_t *rgb = malloc((size_t)W * H * 3);
    const float *xf = x.data;
    for (int y = 0; y < H; y++)
        for (int i = 0; i < W; i++)
            for (int c = 0; c < 3; c++)
                rgb[(y * W + i) * 3 + c] = (uint8_t)lrintf((xf[(c * H + y) * W + i] + 1.0f) * 127.5f);
    r = vqgan_encode_image(s, rgb, W * 3, W, H, tok2);
    CHECK(r == 0 && !memcmp(tok, tok2, sizeof(int32_t) * gw * gh), "gumbel: 8-bit RGB encode gives the same "
          "tokens");
    const int d = image_diff(s, tok, gw, gh, &dec);
    CHECK(d <= 1, "gumbel: decoding indices.npy is within 1 of dec.npy in 8 bits (max %d)", d);
    free(rgb); free(tok); free(tok2); free(logits);
    npy_free(&x); npy_free(&idx); npy_free(&lg); npy_free(&dec);
out:
    close_case(s, m);
    /* a plain VQ tokenizer has no logits */
    struct vqgan_model *v;
    if (!vqgan_model_load(model_path("vqgan"), NULL, &v)) {
        struct vqgan_session *vs = NULL;
        vqgan_session_new(v, NULL, &vs);
        float px[3 * 64] = { 0 }, l[64];
        int32_t t[1];
        const int r2 = vqgan_encode_image_logits(vs, px, 8, 8, t, l);
        CHECK(r2 == VQGAN_ERR_UNSUPPORTED, "vqgan: logits of a VQ tokenizer refused: %s", vqgan_last_error());
        vqgan_session_free(vs);
        vqgan_model_unref(v);
    }
}

static const struct test_case cases[] = {
    { "depth", test_depth, 0 },
    { "coord", test_coord, 0 },
    { "coco", test_coco, 0 },
    { "gumbel", test_gumbel, 0 },
};

int main(int argc, char **argv)
{
    return TEST_RUN_CASES(argc, argv, cases);
}
