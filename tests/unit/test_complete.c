/* The sliding window with a one-token condition (class-conditional and
 * unconditional models on grids larger than the window) and completion (kept
 * cells), against the slow oracle (tests/common/window_oracle.h) on random models:
 * every grid shape against the window, masks of every shape, cache caps down
 * to 1 byte, temporal reuse; then the golden classwin, uncondwin and complete
 * cases through the public API.
 *
 *   test_complete [CASE]   runs every case, or the one named */
#include <stdint.h>
#include <string.h>

#include "gpt.h"
#include "model.h"
#include "npy.h"
#include "test_common.h"
#include "vqgan.h"
#include "window.h"

#include "random_gpt.h"
#include "window_oracle.h"

static struct vq_window_state *state;

static void random_tokens(int32_t *t, size_t n, int vocab, uint64_t seed)
{
    rng_state = seed;
    for (size_t k = 0; k < n; k++) t[k] = irand(vocab);
}

/* The windowed sampler under p: spatial (in->cond) or one token. */
static int windowed(const struct vq_gpt *g, struct vq_window_params p, const struct oracle_input *in, int gw,
                    int gh, int32_t *out, struct vqgan_sample_stats *st)
{
    p.given = in->given;
    p.mask = in->mask;
    if (in->cond) return vq_window_sample(&state, g, &p, in->cond, gw, gh, out, st);
    return vq_window_sample_token(&state, g, &p, in->token, in->stream, gw, gh, out, st);
}

static const struct vq_sampler_params greedy = { 1.0f, 1, 1.0f, 0 }, topk = { 1.0f, 5, 1.0f, 77 };

/* ---- one-token condition on grids larger than the window ------------------------ */

static void token_shapes(const struct vq_gpt *g, const char *model, const int (*shapes)[2], int n_shapes)
{
    for (int s = 0; s < n_shapes; s++) {
        const int gh = shapes[s][0], gw = shapes[s][1], n = gw * gh;
        int32_t *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n);
        for (int mode = 0; mode < 2; mode++) {
            /* a class token (its own stream) and a start token */
            const struct oracle_input in = { NULL, mode ? 3 : 0, mode ? VQ_STREAM_CLASS(3) : VQ_STREAM_SOS,
                                             NULL, NULL };
            struct vq_window_params p;
            memset(&p, 0, sizeof(p));
            p.sampling = mode ? topk : greedy;
            struct vqgan_sample_stats st;
            double margin;
            const int rc1 = windowed(g, p, &in, gw, gh, a, &st);
            const int rc2 = oracle_sample(g, &p.sampling, &in, gw, gh, b, &margin);
            const int w = vq_window_side_token(g->block), Wp = gw > w ? gw : w;
            CHECK(!rc1 && !rc2 && !memcmp(a, b, sizeof(int32_t) * n) && st.positions_sampled == (int64_t)gh * Wp,
                  "%s, %dx%d grid, %s: tokens identical to the naive loop (%lld positions fed, naive %lld; "
                  "smallest greedy margin %.1e)", model, gh, gw, mode ? "class token, top-k 5 seeded" :
                  "start token, greedy", (long long)st.transformer_tokens, (long long)gh * Wp * (w * w), margin);
        }
        free(a);
        free(b);
    }
}

static void test_token_window(void)
{
    struct rgpt r;
    /* w = 4 (block 17): larger than the window, and smaller in one direction */
    if (rgpt_init(&r, 24, 17, 2, 4, 32, 51)) { CHECK(0, "allocation"); return; }
    static const int shapes4[][2] = { { 5, 4 }, { 7, 9 }, { 4, 12 }, { 12, 4 }, { 9, 9 }, { 2, 9 }, { 1, 17 } };
    token_shapes(&r.g, "block 17 (w=4)", shapes4, (int)(sizeof(shapes4) / sizeof(shapes4[0])));
    rgpt_free(&r);
    /* w = 6 (block 37), w = 3 (block 10: odd window) */
    if (rgpt_init(&r, 30, 37, 2, 2, 16, 52)) { CHECK(0, "allocation"); return; }
    static const int shapes6[][2] = { { 7, 13 }, { 10, 6 } };
    token_shapes(&r.g, "block 37 (w=6)", shapes6, 2);
    rgpt_free(&r);
    if (rgpt_init(&r, 20, 10, 1, 2, 16, 53)) { CHECK(0, "allocation"); return; }
    static const int shapes3[][2] = { { 4, 5 }, { 6, 3 } };
    token_shapes(&r.g, "block 10 (w=3)", shapes3, 2);
    CHECK(vq_window_side_token(17) == 4 && vq_window_side_token(10) == 3 && vq_window_side_token(256) == 16 &&
          vq_window_side_token(32) == 5 && vq_window_side_token(1) == 1 && vq_window_side_token(0) == 0,
          "window side from the block size (the largest w with w^2 <= block: 17 -> 4, 256 -> 16)");
    rgpt_free(&r);
    /* a block that is not 1 + w^2: block 12 slides a 3x3 window (9 positions
     * fed at most), as block 16 = w^2 slides 4x4 (the released FFHQ /
     * CelebA-HQ configs: block 256 = 16 x 16) */
    if (rgpt_init(&r, 20, 12, 1, 2, 16, 54)) { CHECK(0, "allocation"); return; }
    static const int shapes12[][2] = { { 5, 4 } };
    token_shapes(&r.g, "block 12 (w=3)", shapes12, 1);
    rgpt_free(&r);
    if (rgpt_init(&r, 20, 16, 1, 2, 16, 55)) { CHECK(0, "allocation"); return; }
    static const int shapes16[][2] = { { 5, 6 } };
    token_shapes(&r.g, "block 16 (w=4)", shapes16, 1);
    int32_t out[64];
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = greedy;
    const struct oracle_input bad = { NULL, 20, VQ_STREAM_SOS, NULL, NULL };
    CHECK(windowed(&r.g, p, &bad, 8, 8, out, NULL) == VQGAN_ERR_INVALID,
          "a condition token outside the vocabulary is refused");
    rgpt_free(&r);
}

/* ---- completion ------------------------------------------------------------------ */

enum { MASK_EMPTY, MASK_FULL, MASK_TOP_ROW, MASK_LEFT_COLUMN, MASK_LOWER_RIGHT, MASK_ONE_CELL, MASK_RANDOM,
       MASK_KINDS };
static const char *mask_name[MASK_KINDS] = { "empty", "full", "top row", "left column", "lower-right block",
                                             "one cell", "random 40 %" };

static void make_mask(uint8_t *m, int kind, int gw, int gh, uint64_t seed)
{
    rng_state = seed;
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            int v = 0;
            switch (kind) {
            case MASK_FULL: v = 1; break;
            case MASK_TOP_ROW: v = i == 0; break;
            case MASK_LEFT_COLUMN: v = j == 0; break;
            case MASK_LOWER_RIGHT: v = i >= gh / 2 && j >= gw / 2; break;
            case MASK_ONE_CELL: v = i == gh / 2 && j == gw / 2; break;
            case MASK_RANDOM: v = frand() < -0.2f; break;
            }
            m[i * gw + j] = (uint8_t)(v ? 1 + (i + j) % 200 : 0);    /* any nonzero value samples */
        }
}

/* Every mask kind on one grid, spatial or one-token, greedy and top-k, with
 * the default cap and (cap_one) a 1-byte cap: tokens identical to the oracle,
 * kept cells hold their tokens, counts add up. */
static void masks_on(const struct vq_gpt *g, const char *model, int spatial, int gw, int gh, int cap_one)
{
    const int n = gw * gh;
    int32_t *cond = malloc(sizeof(int32_t) * n), *given = malloc(sizeof(int32_t) * n);
    int32_t *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n), *plain = malloc(sizeof(int32_t) * n);
    uint8_t *mask = malloc((size_t)n);
    random_tokens(cond, (size_t)n, g->vocab, 600 + gw);
    random_tokens(given, (size_t)n, g->vocab, 700 + gh);
    for (int kind = 0; kind < MASK_KINDS; kind++) {
        make_mask(mask, kind, gw, gh, 800 + kind);
        int n_masked = 0;
        for (int k = 0; k < n; k++) n_masked += mask[k] != 0;
        for (int mode = 0; mode < 2; mode++) {
            const struct oracle_input in = { spatial ? cond : NULL, 5, spatial ? VQ_STREAM_WINDOW : VQ_STREAM_CLASS(5),
                                             given, mask };
            struct vq_window_params p;
            memset(&p, 0, sizeof(p));
            p.sampling = mode ? topk : greedy;
            p.cache_bytes = cap_one ? 1 : 0;
            struct vqgan_sample_stats st;
            const int rc1 = windowed(g, p, &in, gw, gh, a, &st);
            const int rc2 = oracle_sample(g, &p.sampling, &in, gw, gh, b, NULL);
            int kept_ok = 1;
            for (int k = 0; k < n; k++)
                if (!mask[k] && a[k] != given[k]) kept_ok = 0;
            CHECK(!rc1 && !rc2 && !memcmp(a, b, sizeof(int32_t) * n) && kept_ok &&
                  st.positions_kept >= n - n_masked,
                  "%s, %dx%d, mask %s (%d cells), %s%s: tokens identical to the naive loop, kept cells kept "
                  "(%lld sampled, %lld kept, %lld fed)", model, gh, gw, mask_name[kind], n_masked,
                  mode ? "top-k 5" : "greedy", cap_one ? ", 1-byte cap" : "", (long long)st.positions_sampled,
                  (long long)st.positions_kept, (long long)st.transformer_tokens);
            if (kind == MASK_EMPTY)
                CHECK(!rc1 && !memcmp(a, given, sizeof(int32_t) * n) && st.positions_sampled == 0 &&
                      st.transformer_tokens == 0, "%s, %dx%d, empty mask: the given tokens, nothing through the "
                      "transformer", model, gh, gw);
            if (kind == MASK_FULL) {
                const struct oracle_input none = { in.cond, in.token, in.stream, NULL, NULL };
                const int rc3 = windowed(g, p, &none, gw, gh, plain, NULL);
                CHECK(!rc1 && !rc3 && !memcmp(a, plain, sizeof(int32_t) * n),
                      "%s, %dx%d, full mask, %s: identical to sampling without a mask", model, gh, gw,
                      mode ? "top-k 5" : "greedy");
            }
        }
    }
    free(cond); free(given); free(a); free(b); free(plain); free(mask);
}

static void test_masks(void)
{
    struct rgpt r;
    /* spatial condition, w = 4 (block 32): larger than the window, smaller, one direction each */
    if (rgpt_init(&r, 24, 32, 2, 4, 32, 61)) { CHECK(0, "allocation"); return; }
    masks_on(&r.g, "spatial w=4", 1, 11, 9, 0);
    masks_on(&r.g, "spatial w=4", 1, 3, 3, 0);
    masks_on(&r.g, "spatial w=4", 1, 12, 3, 1);
    masks_on(&r.g, "spatial w=4", 1, 5, 10, 1);
    rgpt_free(&r);
    /* one-token condition, w = 4 (block 17) */
    if (rgpt_init(&r, 24, 17, 2, 4, 32, 62)) { CHECK(0, "allocation"); return; }
    masks_on(&r.g, "class w=4", 0, 9, 7, 0);
    masks_on(&r.g, "class w=4", 0, 6, 5, 1);
    rgpt_free(&r);
}

/* A grid that fits the block goes through the one cached sequence: kept cells
 * are fed, not drawn, and the others equal full forwards of the sequence. */
static void test_sequence_masked(void)
{
    struct rgpt r;
    if (rgpt_init(&r, 30, 26, 2, 4, 32, 63)) { CHECK(0, "allocation"); return; }
    const struct vq_gpt *g = &r.g;
    const int gw = 5, gh = 5, n = 25;
    int32_t given[25], got[25], seq[26];
    uint8_t mask[25];
    random_tokens(given, n, g->vocab, 71);
    make_mask(mask, MASK_RANDOM, gw, gh, 72);
    mask[n - 2] = mask[n - 1] = 0;                 /* kept cells after the last sampled one */
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = topk;
    p.given = given;
    p.mask = mask;
    struct vqgan_sample_stats st;
    int rc = vq_sequence_sample(g, &p, 7, VQ_STREAM_CLASS(7), gw, gh, got, &st);
    struct vq_sampler smp;
    float *logits = malloc(sizeof(float) * 26 * g->vocab);
    rc |= vq_sampler_init(&smp, &topk, g->vocab);
    seq[0] = 7;
    int same = 1, kept = 0;
    for (int k = 0; !rc && k < n; k++) {
        int32_t t = given[k];
        if (mask[k]) {
            rc = vq_gpt_logits_all(NULL, g, seq, k + 1, logits);
            const struct vq_draw_key key = { VQ_STREAM_CLASS(7), k / gw, k % gw };
            t = vq_sample_token(&smp, logits + (size_t)k * g->vocab, key);
        } else {
            kept++;
        }
        same &= got[k] == t;
        seq[k + 1] = t;
    }
    vq_sampler_free(&smp);
    free(logits);
    CHECK(rc == 0 && same && st.positions_kept == kept && st.positions_sampled == n - kept,
          "class-conditional 5x5 sequence with %d kept cells: sampled cells equal full forwards", kept);
    /* kept cells after the last sampled one predict nothing: not fed */
    int last = n - 1;
    while (last >= 0 && !mask[last]) last--;
    int32_t tail[25];
    memcpy(tail, got, sizeof(tail));
    for (int k = last + 1; k < n; k++) tail[k] = given[k];
    CHECK(rc == 0 && st.transformer_tokens == last + 1 && !memcmp(got, tail, sizeof(tail)),
          "class-conditional 5x5 sequence, last sampled cell %d: %d positions fed (%lld), the rest kept", last,
          last + 1, (long long)st.transformer_tokens);
    uint8_t none[25] = { 0 };
    p.mask = none;
    rc = vq_sequence_sample(g, &p, 7, VQ_STREAM_CLASS(7), gw, gh, got, &st);
    CHECK(rc == 0 && !memcmp(got, given, sizeof(given)) && st.transformer_tokens == 0 && st.positions_kept == n &&
          st.positions_sampled == 0, "class-conditional 5x5 sequence, all-zero mask: the given tokens, nothing "
          "through the transformer (%lld fed)", (long long)st.transformer_tokens);
    p.mask = mask;
    given[3] = g->vocab;
    mask[3] = 0;
    CHECK(vq_sequence_sample(g, &p, 7, VQ_STREAM_CLASS(7), gw, gh, got, &st) == VQGAN_ERR_INVALID,
          "a kept token outside the vocabulary is refused");
    rgpt_free(&r);
}

/* temporal=reuse with kept cells: every frame identical to sampling it alone;
 * a change of the kept picture resamples only the cells whose windows see it. */
static void test_temporal_masked(void)
{
    struct rgpt r;
    if (rgpt_init(&r, 24, 32, 2, 4, 32, 64)) { CHECK(0, "allocation"); return; }
    const struct vq_gpt *g = &r.g;
    const int gw = 14, gh = 10, n = gw * gh;
    int32_t cond[140], given[140], a[140], b[140];
    uint8_t mask[140];
    random_tokens(cond, n, g->vocab, 81);
    random_tokens(given, n, g->vocab, 82);
    make_mask(mask, MASK_LOWER_RIGHT, gw, gh, 0);
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = topk;
    p.given = given;
    p.mask = mask;
    struct vq_window_state *t_state = NULL, *o_state = NULL;
    struct vqgan_sample_stats st, so;
    int ok = 1;
    int64_t sampled[4] = { 0 }, reused[4] = { 0 };
    for (int frame = 0; frame < 4; frame++) {
        if (frame == 2) given[1 * gw + 1] = (given[1 * gw + 1] + 1) % g->vocab;      /* far above the hole */
        if (frame == 3) given[6 * gw + 6] = (given[6 * gw + 6] + 1) % g->vocab;  /* left of the hole, in its windows */
        p.temporal = VQGAN_TEMPORAL_REUSE;
        int rc = vq_window_sample(&t_state, g, &p, cond, gw, gh, a, &st);
        p.temporal = VQGAN_TEMPORAL_OFF;
        rc |= vq_window_sample(&o_state, g, &p, cond, gw, gh, b, &so);
        ok &= !rc && !memcmp(a, b, sizeof(a));
        sampled[frame] = st.positions_sampled;
        reused[frame] = st.positions_reused;
    }
    CHECK(ok, "temporal=reuse with a kept picture: 4 frames identical to sampling each alone");
    CHECK(sampled[1] == 0 && reused[1] > 0,
          "an unchanged frame resamples nothing (%lld cells reused)", (long long)reused[1]);
    CHECK(sampled[2] == 0 && sampled[3] > 0 && reused[3] > 0 && sampled[3] + reused[3] == reused[1],
          "a changed kept token resamples only the cells whose windows see it (frame 3: %lld sampled, %lld "
          "reused; frame 2: %lld sampled)", (long long)sampled[3], (long long)reused[3], (long long)sampled[2]);
    /* a changed mask: still identical */
    mask[0] = 1;
    p.temporal = VQGAN_TEMPORAL_REUSE;
    int rc = vq_window_sample(&t_state, g, &p, cond, gw, gh, a, &st);
    p.temporal = VQGAN_TEMPORAL_OFF;
    rc |= vq_window_sample(&o_state, g, &p, cond, gw, gh, b, &so);
    CHECK(!rc && !memcmp(a, b, sizeof(a)) && st.positions_reused > 0,
          "a changed mask: identical to sampling alone (%lld reused)", (long long)st.positions_reused);
    vq_window_state_free(t_state);
    vq_window_state_free(o_state);
    rgpt_free(&r);
}

/* ---- golden cases through the public API ------------------------------------------- */

static int load_i64(const char *rel, struct npy *a, int32_t **out, int *n)
{
    if (npy_load(golden_path(rel), a)) return -1;
    *n = (int)a->n;
    *out = malloc(sizeof(int32_t) * (size_t)a->n);
    for (long k = 0; k < a->n; k++) (*out)[k] = (int32_t)((const int64_t *)a->data)[k];
    return 0;
}

/* Greedy indices of a one-token window case (classwin, uncondwin). */
static void golden_token(const char *name)
{
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    struct npy want_a, tok_a;
    int32_t *want = NULL, *ct = NULL;
    int n = 0, nt = 0;
    char rel[256];
    int rc = vqgan_model_load(model_path(name), NULL, &m);
    CHECK(rc == 0, "load %s", model_path(name));
    if (rc) return;
    snprintf(rel, sizeof(rel), "%s/indices.npy", name);
    if (load_i64(rel, &want_a, &want, &n)) { CHECK(0, "read golden %s", rel); vqgan_model_unref(m); return; }
    snprintf(rel, sizeof(rel), "%s/cond_token.npy", name);
    const int class_id = load_i64(rel, &tok_a, &ct, &nt) == 0 ? ct[0] : 0;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 1;
    rc = vqgan_session_new(m, &sp, &s);
    const int gh = (int)want_a.shape[1], gw = (int)want_a.shape[2];
    int32_t *got = malloc(sizeof(int32_t) * n);
    if (!rc) rc = vqgan_sample_unconditional(s, class_id, gw, gh, got);
    int same = 0;
    for (int k = 0; !rc && k < n; k++) same += got[k] == want[k];
    CHECK(rc == 0 && same == n, "golden %s (%s token %d), %dx%d grid, block %d: %d of %d greedy tokens identical "
          "to indices.npy", name, m->info.cond_kind == VQGAN_COND_CLASS ? "class" : "start",
          m->info.cond_kind == VQGAN_COND_CLASS ? class_id : m->info.sos_token, gh, gw, m->gpt.block, same, n);
    free(got);
    free(want);
    free(ct);
    npy_free(&want_a);
    if (nt) npy_free(&tok_a);
    vqgan_session_free(s);
    vqgan_model_unref(m);
}

static void test_golden_classwin(void) { golden_token("classwin"); }
static void test_golden_uncondwin(void) { golden_token("uncondwin"); }

static void test_golden_complete(void)
{
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    struct npy ci_a, pi_a, want_a, mask_a, pic, img;
    int32_t *cond = NULL, *given = NULL, *want = NULL;
    int n = 0, n2 = 0, n3 = 0;
    int rc = vqgan_model_load(model_path("complete"), NULL, &m);
    CHECK(rc == 0, "load %s", model_path("complete"));
    if (rc) return;
    if (load_i64("complete/picture_indices.npy", &pi_a, &given, &n) ||
        load_i64("complete/indices.npy", &want_a, &want, &n2) || npy_load(golden_path("complete/cell_mask.npy"), &mask_a) ||
        npy_load(golden_path("complete/picture.npy"), &pic) || npy_load(golden_path("complete/image.npy"), &img) ||
        npy_load(golden_path("complete/labels.npy"), &ci_a)) {
        CHECK(0, "read the golden complete case");
        vqgan_model_unref(m);
        return;
    }
    (void)n3;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 1;
    rc = vqgan_session_new(m, &sp, &s);
    const int gh = (int)want_a.shape[1], gw = (int)want_a.shape[2];
    const int H = (int)pic.shape[2], W = (int)pic.shape[3];
    /* the picture's tokens: the first stage's encoding of picture.npy */
    int32_t *enc = malloc(sizeof(int32_t) * n), *tok = malloc(sizeof(int32_t) * n);
    cond = malloc(sizeof(int32_t) * n);
    if (!rc) rc = vqgan_encode_image_f32(s, pic.data, W, H, enc, NULL);
    CHECK(rc == 0 && !memcmp(enc, given, sizeof(int32_t) * n), "golden complete: the picture encodes to "
          "picture_indices.npy (%dx%d tokens)", gh, gw);
    /* the labels' condition tokens */
    uint8_t *ids = malloc((size_t)W * H);
    for (long k = 0; k < (long)W * H; k++)
        ids[k] = (uint8_t)(!strcmp(ci_a.dtype, "|u1") ? ((const uint8_t *)ci_a.data)[k] : ((const int64_t *)ci_a.data)[k]);
    if (!rc) rc = vqgan_encode_labels(s, ids, W, W, H, cond, NULL);
    uint8_t *mask = malloc((size_t)n);
    int masked = 0;
    for (int k = 0; k < n; k++) {
        mask[k] = !strcmp(mask_a.dtype, "|u1") || !strcmp(mask_a.dtype, "|b1") ? ((const uint8_t *)mask_a.data)[k] != 0
                                              : ((const int64_t *)mask_a.data)[k] != 0;
        masked += mask[k];
    }
    if (!rc) rc = vqgan_sample_masked(s, cond, 0, given, mask, gw, gh, tok);
    int same = 0, kept_ok = 1;
    for (int k = 0; !rc && k < n; k++) {
        same += tok[k] == want[k];
        if (!mask[k] && tok[k] != given[k]) kept_ok = 0;
    }
    struct vqgan_sample_stats st;
    vqgan_session_get_stats(s, &st);
    CHECK(rc == 0 && same == n && kept_ok, "golden complete, %dx%d grid, %d cells masked: %d of %d greedy tokens "
          "identical to indices.npy, kept cells equal picture_indices.npy (%lld sampled, %lld kept)", gh, gw, masked,
          same, n, (long long)st.positions_sampled, (long long)st.positions_kept);
    /* the decoded frame, 8-bit, within 1 of image.npy's */
    const int f = m->info.factor;
    uint8_t *rgb = malloc((size_t)gw * f * gh * f * 3);
    if (!rc) rc = vqgan_decode(s, tok, gw, gh, rgb, (ptrdiff_t)gw * f * 3);
    int worst = 0;
    const float *ref = img.data;
    const int ow = gw * f, oh = gh * f;
    for (int c = 0; !rc && c < 3; c++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                float v = ref[((size_t)c * oh + y) * ow + x];
                v = v < -1 ? -1 : v > 1 ? 1 : v;
                const int want8 = (int)lrintf((v + 1.0f) * 127.5f), d = abs(want8 - rgb[((size_t)y * ow + x) * 3 + c]);
                if (d > worst) worst = d;
            }
    CHECK(rc == 0 && worst <= 1, "golden complete: decoded image within %d of image.npy in 8 bits", worst);
    /* errors */
    CHECK(vqgan_sample_masked(s, cond, 0, NULL, mask, gw, gh, tok) == VQGAN_ERR_INVALID,
          "vqgan_sample_masked without given tokens is refused (\"%s\")", vqgan_last_error());
    CHECK(vqgan_sample_masked(s, NULL, 0, given, mask, gw, gh, tok) == VQGAN_ERR_INVALID,
          "vqgan_sample_masked on a segmentation model without condition tokens is refused");
    free(enc); free(tok); free(cond); free(given); free(want); free(ids); free(mask); free(rgb);
    npy_free(&ci_a); npy_free(&pi_a); npy_free(&want_a); npy_free(&mask_a); npy_free(&pic); npy_free(&img);
    vqgan_session_free(s);
    vqgan_model_unref(m);
}

static void drop(void *o, int l, const char *msg) { (void)o; (void)l; (void)msg; }

static const struct test_case cases[] = {
    { "token_window", test_token_window, 0 },
    { "masks", test_masks, 0 },
    { "sequence_masked", test_sequence_masked, 0 },
    { "temporal_masked", test_temporal_masked, 1 },
    { "golden_classwin", test_golden_classwin, 1 },
    { "golden_uncondwin", test_golden_uncondwin, 1 },
    { "golden_complete", test_golden_complete, 1 },
};

int main(int argc, char **argv)
{
    vqgan_set_log_callback(drop, NULL);
    const int r = TEST_RUN_CASES(argc, argv, cases);
    vq_window_state_free(state);
    return r;
}
