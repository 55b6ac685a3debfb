/* Rendering a video in parts (tools/vqgan-farm, docs/farm.md), through the
 * public API on the golden `conditional` model: with temporal=follow, the
 * origins computed without sampling (vqgan_follow_shift over the condition
 * tokens, the pre-pass) are those a session reaches by sampling every frame,
 * and a part started at frame k with that origin (session origin_x/y) gives
 * the whole run's tokens and pictures from frame k on; with reuse, a part
 * started anywhere gives them too. A part started at the wrong origin does
 * not (the check can fail). Bad origins and models are refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"
#include "vqgan.h"

enum { W = 128, H = 72, NF = 10 };

/* The camera's top-left corner on the big map, in tokens, per frame: pans
 * right and down, a still frame, a cut (a jump past the detection radius),
 * then more pans. */
static const int path[NF][2] = { { 0, 0 }, { 1, 0 }, { 2, 0 }, { 2, 1 }, { 3, 1 }, { 3, 1 },
                                 { 12, 6 }, { 13, 6 }, { 13, 5 }, { 14, 5 } };

struct video {
    int f, gw, gh, n, BW, BH;
    uint8_t *big, *lab;
};

static void frame_labels(const struct video *v, int t)
{
    const int x0 = path[t][0] * v->f, y0 = path[t][1] * v->f;
    for (int y = 0; y < H; y++) memcpy(v->lab + (size_t)y * W, v->big + (size_t)(y0 + y) * v->BW + x0, W);
}

/* Frames first..last-1 on a new session (temporal, origin); tokens and
 * pictures to tok[t], rgb[t]; shift/origin bookkeeping into sx/sy. */
static int render(struct vqgan_model *m, const struct video *v, int temporal, int32_t ox, int32_t oy,
                  int first, int last, int32_t **tok, uint8_t **rgb, int *sx, int *sy)
{
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 5;
    sp.seed = 23;
    sp.n_threads = 2;
    sp.temporal = temporal;
    sp.origin_x = ox;
    sp.origin_y = oy;
    struct vqgan_session *s = NULL;
    int rc = vqgan_session_new(m, &sp, &s);
    int32_t *cond = malloc(sizeof(int32_t) * v->n);
    for (int t = first; t < last && !rc; t++) {
        struct vqgan_sample_stats st;
        frame_labels(v, t);
        rc = vqgan_encode_labels(s, v->lab, W, W, H, cond, NULL);
        rc |= vqgan_sample_conditional(s, cond, v->gw, v->gh, tok[t]);
        rc |= vqgan_session_get_stats(s, &st);
        rc |= vqgan_decode(s, tok[t], v->gw, v->gh, rgb[t], W * 3);
        if (sx) sx[t] = st.shift_x;
        if (sy) sy[t] = st.shift_y;
    }
    free(cond);
    vqgan_session_free(s);
    return rc;
}

static void test_parts(void)
{
    struct vqgan_model *m = NULL;
    int rc = vqgan_model_load(model_path("conditional"), NULL, &m);
    CHECK(rc == 0, "load %s", model_path("conditional"));
    if (rc) return;
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    struct video v;
    v.f = info.factor;
    v.gw = W / v.f;
    v.gh = H / v.f;
    v.n = v.gw * v.gh;
    v.BW = W + 16 * v.f;
    v.BH = H + 8 * v.f;
    v.big = malloc((size_t)v.BW * v.BH);
    v.lab = malloc((size_t)W * H);
    for (int y = 0; y < v.BH; y++)
        for (int x = 0; x < v.BW; x++)
            v.big[(size_t)y * v.BW + x] = (uint8_t)(((x / 8) * 7 + (y / 8) * 3 + ((x / 8) * (y / 8)) % 5) % info.n_labels);

    int32_t *tok[NF], *part_tok[NF];
    uint8_t *rgb[NF], *part_rgb[NF];
    for (int t = 0; t < NF; t++) {
        tok[t] = malloc(sizeof(int32_t) * v.n);
        part_tok[t] = malloc(sizeof(int32_t) * v.n);
        rgb[t] = malloc((size_t)W * H * 3);
        part_rgb[t] = malloc((size_t)W * H * 3);
    }

    /* from a start origin of (-3, 5) and from (0, 0) */
    static const int32_t starts[2][2] = { { -3, 5 }, { 0, 0 } };
    for (int so = 0; so < 2; so++) {
        const int32_t ox0 = starts[so][0], oy0 = starts[so][1];
        int sx[NF], sy[NF];
        rc = render(m, &v, VQGAN_TEMPORAL_FOLLOW, ox0, oy0, 0, NF, tok, rgb, sx, sy);
        CHECK(rc == 0, "follow from origin (%d, %d): %d frames rendered in one session%s%s", ox0, oy0, NF,
              rc ? ": " : "", rc ? vqgan_last_error() : "");
        if (rc) break;

        /* the pre-pass: condition tokens and shift detection only */
        struct vqgan_session *enc = NULL;
        int32_t *cur = malloc(sizeof(int32_t) * v.n), *prev = malloc(sizeof(int32_t) * v.n);
        int32_t ox[NF], oy[NF];
        int same_shift = 1, moved = 0;
        char trail[256] = "";
        rc = vqgan_session_new(m, NULL, &enc);
        for (int t = 0; t < NF && !rc; t++) {
            int dx = 99, dy = 99;
            frame_labels(&v, t);
            rc = vqgan_encode_labels(enc, v.lab, W, W, H, cur, NULL);
            rc |= vqgan_follow_shift(m, cur, t ? prev : NULL, v.gw, v.gh, &dx, &dy);
            ox[t] = t ? ox[t - 1] + dx : ox0;
            oy[t] = t ? oy[t - 1] + dy : oy0;
            same_shift &= dx == sx[t] && dy == sy[t];
            moved += ox[t] != ox0 || oy[t] != oy0;
            int32_t *x = prev; prev = cur; cur = x;
            snprintf(trail + strlen(trail), sizeof(trail) - strlen(trail), " (%d,%d)", ox[t], oy[t]);
        }
        vqgan_session_free(enc);
        free(cur);
        free(prev);
        CHECK(rc == 0 && same_shift && moved >= NF / 2,
              "follow from (%d, %d): the pre-pass's shifts are the session's at every frame; origins%s", ox0, oy0,
              trail);

        /* parts started at frames 2, 5, 6 and 8 with the pre-pass's origins */
        static const int part_starts[] = { 2, 5, 6, 8 };
        int same = 0, parts = 0, tried = 0;
        for (int p = 0; p < 4 && !rc; p++) {
            const int k = part_starts[p], end = k + 3 < NF ? k + 3 : NF;
            rc = render(m, &v, VQGAN_TEMPORAL_FOLLOW, ox[k], oy[k], k, end, part_tok, part_rgb, NULL, NULL);
            for (int t = k; t < end && !rc; t++) {
                tried++;
                same += !memcmp(part_tok[t], tok[t], sizeof(int32_t) * v.n) &&
                        !memcmp(part_rgb[t], rgb[t], (size_t)W * H * 3);
            }
            parts++;
        }
        CHECK(rc == 0 && same == tried && tried > 0,
              "follow from (%d, %d): %d parts started at frames 2, 5, 6, 8 with the pre-pass's origin: %d of %d "
              "frames' tokens and pictures identical to the whole run", ox0, oy0, parts, same, tried);

        /* the control: a part started at frame 8 at the start origin instead */
        if (ox[8] != ox0 || oy[8] != oy0) {
            rc = render(m, &v, VQGAN_TEMPORAL_FOLLOW, ox0, oy0, 8, NF, part_tok, part_rgb, NULL, NULL);
            int differ = 0;
            for (int t = 8; t < NF; t++) differ += !!memcmp(part_tok[t], tok[t], sizeof(int32_t) * v.n);
            CHECK(rc == 0 && differ == NF - 8,
                  "follow from (%d, %d): a part started at frame 8 at the start origin instead of (%d, %d) gives "
                  "other tokens (%d of %d frames differ)", ox0, oy0, ox[8], oy[8], differ, NF - 8);
        }
    }

    /* reuse: parts started anywhere are the whole run's frames */
    rc = render(m, &v, VQGAN_TEMPORAL_REUSE, 0, 0, 0, NF, tok, rgb, NULL, NULL);
    int same = 0, tried = 0;
    for (int k = 1; k < NF && !rc; k += 3) {
        const int end = k + 3 < NF ? k + 3 : NF;
        rc = render(m, &v, VQGAN_TEMPORAL_REUSE, 0, 0, k, end, part_tok, part_rgb, NULL, NULL);
        for (int t = k; t < end && !rc; t++) {
            tried++;
            same += !memcmp(part_tok[t], tok[t], sizeof(int32_t) * v.n) &&
                    !memcmp(part_rgb[t], rgb[t], (size_t)W * H * 3);
        }
    }
    CHECK(rc == 0 && same == tried && tried == NF - 1,
          "reuse: parts of 3 frames started at frames 1, 4, 7: %d of %d frames identical to the whole run", same,
          tried);

    /* errors */
    struct vqgan_session_params sp = vqgan_session_default_params();
    struct vqgan_session *s = NULL;
    sp.origin_x = VQGAN_MAX_ORIGIN + 1;
    rc = vqgan_session_new(m, &sp, &s);
    CHECK(rc == VQGAN_ERR_INVALID && !s && strstr(vqgan_last_error(), "origin"),
          "origin_x = VQGAN_MAX_ORIGIN + 1 is refused (\"%s\")", vqgan_last_error());
    sp.origin_x = 0;
    sp.origin_y = -VQGAN_MAX_ORIGIN;
    rc = vqgan_session_new(m, &sp, &s);
    CHECK(rc == 0, "origin_y = -VQGAN_MAX_ORIGIN is accepted");
    vqgan_session_free(s);
    int dx = 7, dy = 7;
    int32_t c[4] = { 0, 1, 2, 3 };
    rc = vqgan_follow_shift(m, c, NULL, 2, 2, &dx, &dy);
    CHECK(rc == 0 && dx == 0 && dy == 0, "vqgan_follow_shift without a previous frame: no shift");
    CHECK(vqgan_follow_shift(m, NULL, c, 2, 2, &dx, &dy) == VQGAN_ERR_INVALID &&
          vqgan_follow_shift(m, c, c, 0, 2, &dx, &dy) == VQGAN_ERR_INVALID &&
          vqgan_follow_shift(m, c, c, VQGAN_MAX_GRID + 1, 1, &dx, &dy) == VQGAN_ERR_LIMIT,
          "vqgan_follow_shift: NULL tokens, an empty grid and one past VQGAN_MAX_GRID are refused");
    struct vqgan_model *tokenizer = NULL;
    rc = vqgan_model_load(model_path("vqgan"), NULL, &tokenizer);
    CHECK(rc == 0 && vqgan_follow_shift(tokenizer, c, c, 2, 2, &dx, &dy) == VQGAN_ERR_UNSUPPORTED &&
          strstr(vqgan_last_error(), "sliding-window"),
          "vqgan_follow_shift on a tokenizer-only model is refused (\"%s\")", vqgan_last_error());
    vqgan_model_unref(tokenizer);

    for (int t = 0; t < NF; t++) {
        free(tok[t]); free(part_tok[t]); free(rgb[t]); free(part_rgb[t]);
    }
    free(v.big);
    free(v.lab);
    vqgan_model_unref(m);
}

static void drop(void *o, int l, const char *msg) { (void)o; (void)l; (void)msg; }

static const struct test_case cases[] = {
    { "parts", test_parts, 1 },
};

int main(int argc, char **argv)
{
    (void)golden_path;
    (void)copy_file;
    vqgan_set_log_callback(drop, NULL);
    return TEST_RUN_CASES(argc, argv, cases);
}
