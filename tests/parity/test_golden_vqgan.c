/* Parity with the reference (../shared/golden): the image tokenizer and the
 * segmentation stage, through the converter's model files. */
#include <math.h>
#include <string.h>

#include "npy.h"
#include "test_common.h"
#include "vqgan.h"

static double max_abs_diff(const float *a, const float *b, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;   /* NaN counts as infinitely far */
    }
    return m;
}

static int to_u8(float v)
{
    v = v < -1 ? -1 : v > 1 ? 1 : v;
    return (int)floorf((v + 1.0f) * 127.5f + 0.5f);
}

static void test_vqgan(void)
{
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    struct npy x, h, idx, dec;
    int r = vqgan_model_load(model_path("vqgan"), NULL, &m);
    CHECK(r == 0, "vqgan: load %s (%s)", model_path("vqgan"), vqgan_last_error());
    if (r) return;
    vqgan_session_new(m, NULL, &s);
    if (npy_load(golden_path("vqgan/x.npy"), &x) || npy_load(golden_path("vqgan/h.npy"), &h) ||
        npy_load(golden_path("vqgan/indices.npy"), &idx) || npy_load(golden_path("vqgan/dec.npy"), &dec)) {
        CHECK(0, "vqgan: read golden npy files");
        return;
    }
    const int H = (int)x.shape[2], W = (int)x.shape[3];
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    const int gh = H / info.factor, gw = W / info.factor;
    int32_t *tok = calloc((size_t)gw * gh, sizeof(int32_t));
    float *pre = calloc((size_t)h.n, sizeof(float));
    r = vqgan_encode_image_f32(s, x.data, W, H, tok, pre);
    CHECK(r == 0, "vqgan: encode %dx%d", W, H);
    double dh = max_abs_diff(pre, h.data, h.n);
    CHECK(dh <= 2e-4, "vqgan: h within 2e-4 (max abs diff %.3g)", dh);
    int same = 1;
    for (long i = 0; i < idx.n; i++) same &= tok[i] == ((int64_t *)idx.data)[i];
    CHECK(same && idx.n == gw * gh, "vqgan: indices identical (%ld tokens)", idx.n);

    /* 8-bit encode of x.png's pixels gives the same tokens (x = k/127.5 - 1 exactly) */
    uint8_t *rgb = malloc((size_t)W * H * 3);
    const float *xf = x.data;
    for (int y = 0; y < H; y++)
        for (int i = 0; i < W; i++)
            for (int c = 0; c < 3; c++)
                rgb[(y * W + i) * 3 + c] = (uint8_t)lrintf((xf[(c * H + y) * W + i] + 1.0f) * 127.5f);
    int32_t *tok8 = calloc((size_t)gw * gh, sizeof(int32_t));
    r = vqgan_encode_image(s, rgb, W * 3, W, H, tok8);
    CHECK(r == 0 && !memcmp(tok8, tok, sizeof(int32_t) * gw * gh), "vqgan: 8-bit RGB encode gives the same tokens");

    /* decode the golden indices */
    int32_t *gi = malloc(sizeof(int32_t) * idx.n);
    for (long i = 0; i < idx.n; i++) gi[i] = (int32_t)((int64_t *)idx.data)[i];
    float *out = calloc((size_t)dec.n, sizeof(float));
    r = vqgan_decode_f32(s, gi, gw, gh, out);
    CHECK(r == 0, "vqgan: decode %dx%d grid", gw, gh);
    double dd = max_abs_diff(out, dec.data, dec.n);
    CHECK(dd <= 2e-4, "vqgan: dec within 2e-4 (max abs diff %.3g)", dd);
    uint8_t *out8 = malloc((size_t)W * H * 3);
    r = vqgan_decode(s, gi, gw, gh, out8, W * 3);
    int worst = 0;
    const float *df = dec.data;
    for (int y = 0; y < H; y++)
        for (int i = 0; i < W; i++)
            for (int c = 0; c < 3; c++) {
                int d = abs(out8[(y * W + i) * 3 + c] - to_u8(df[(c * H + y) * W + i]));
                if (d > worst) worst = d;
            }
    CHECK(r == 0 && worst <= 1, "vqgan: 8-bit dec within 1 of the golden's conversion (max %d)", worst);

    /* sizes that are not a multiple of the factor are refused clearly */
    r = vqgan_encode_image(s, rgb, W * 3, W - 1, H, tok8);
    CHECK(r == VQGAN_ERR_INVALID && strstr(vqgan_last_error(), "multiple"),
          "vqgan: width %d refused: %s", W - 1, vqgan_last_error());
    gi[0] = info.image_codes;
    r = vqgan_decode(s, gi, gw, gh, out8, W * 3);
    CHECK(r == VQGAN_ERR_INVALID, "vqgan: out-of-range token refused: %s", vqgan_last_error());
    r = vqgan_encode_labels(s, rgb, W, W, H, tok8, NULL);
    CHECK(r == VQGAN_ERR_UNSUPPORTED, "vqgan: label encode on a model without condition stage refused: %s",
          vqgan_last_error());

    free(tok); free(pre); free(rgb); free(tok8); free(gi); free(out); free(out8);
    npy_free(&x); npy_free(&h); npy_free(&idx); npy_free(&dec);
    vqgan_session_free(s);
    vqgan_model_unref(m);
}

static void test_segmentation(const char *model, const char *dir, int check_h)
{
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    struct npy lab, h, idx;
    char p[256];
    int r = vqgan_model_load(model_path(model), NULL, &m);
    CHECK(r == 0, "%s: load (%s)", model, vqgan_last_error());
    if (r) return;
    vqgan_session_new(m, NULL, &s);
    snprintf(p, sizeof(p), "%s/labels.npy", dir);
    int bad = npy_load(golden_path(p), &lab);
    snprintf(p, sizeof(p), "%s/%s", dir, check_h ? "indices.npy" : "cond_indices.npy");
    bad |= npy_load(golden_path(p), &idx);
    snprintf(p, sizeof(p), "%s/h.npy", dir);
    if (check_h) bad |= npy_load(golden_path(p), &h);
    if (bad) { CHECK(0, "%s: read golden npy files", model); return; }
    const int H = (int)lab.shape[lab.ndim - 2], W = (int)lab.shape[lab.ndim - 1];
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    const int f = info.cond_factor;
    int32_t *tok = calloc((size_t)(W / f) * (H / f), sizeof(int32_t));
    float *pre = calloc((size_t)(W / f) * (H / f) * 1024, sizeof(float));
    r = vqgan_encode_labels(s, lab.data, W, W, H, tok, pre);
    CHECK(r == 0, "%s: encode %dx%d labels (%s)", model, W, H, vqgan_last_error());
    if (check_h) {
        double d = max_abs_diff(pre, h.data, h.n);
        CHECK(d <= 2e-4, "%s: h within 2e-4 (max abs diff %.3g)", model, d);
        npy_free(&h);
    }
    int same = idx.n == (W / f) * (H / f);
    for (long i = 0; same && i < idx.n; i++) same &= tok[i] == ((int64_t *)idx.data)[i];
    CHECK(same, "%s: condition indices identical (%ld tokens)", model, idx.n);
    ((uint8_t *)lab.data)[5] = (uint8_t)info.n_labels;
    r = vqgan_encode_labels(s, lab.data, W, W, H, tok, NULL);
    CHECK(r == VQGAN_ERR_INVALID && strstr(vqgan_last_error(), "label id"),
          "%s: unknown label id refused: %s", model, vqgan_last_error());
    free(tok); free(pre);
    npy_free(&lab); npy_free(&idx);
    vqgan_session_free(s);
    vqgan_model_unref(m);
}

static void test_segmentation_stage(void) { test_segmentation("segmentation", "segmentation", 1); }
static void test_conditional_stage(void) { test_segmentation("conditional", "conditional", 0); }

static const struct test_case cases[] = {
    { "vqgan", test_vqgan, 0 },
    { "segmentation", test_segmentation_stage, 0 },
    { "conditional", test_conditional_stage, 0 },
};

int main(int argc, char **argv)
{
    return TEST_RUN_CASES(argc, argv, cases);
}
