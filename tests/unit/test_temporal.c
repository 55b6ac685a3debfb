/* Temporal modes (docs/sampling.md, "Temporal modes"): every frame sampled
 * with temporal=reuse is identical to the same frame sampled from scratch
 * (temporal=off), on random models and condition sequences with local
 * changes, greedy and seeded, with and without a tight cache cap; a static
 * sequence reuses every position with no transformer work; follow detects
 * whole-token shifts, equals from-scratch sampling (Gumbel-max rule, which
 * draws from the same distribution) keyed to content coordinates, and its
 * tokens move with the content; through the public API
 * on the golden `conditional` model: labels -> tokens -> picture identical to
 * a session without temporal state, label and decoder memos included. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "gpt.h"
#include "model.h"
#include "test_common.h"
#include "vqgan.h"
#include "window.h"

/* ---- a random GPT (as in test_window.c) -------------------------------------- */

#include "random_gpt.h"

static int use_gumbel;   /* off-mode references of follow frames draw as follow does */

static int sample(struct vq_window_state **st, const struct vq_gpt *g, const struct vq_sampler_params *sp,
                  int temporal, size_t cap, int32_t oi, int32_t oj, const int32_t *cond, int gw, int gh,
                  int32_t *out, struct vqgan_sample_stats *stats)
{
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.gumbel = use_gumbel;
    p.sampling = *sp;
    p.cache_bytes = cap;
    p.temporal = temporal;
    p.origin_i = oi;
    p.origin_j = oj;
    return vq_window_sample(st, g, &p, cond, gw, gh, out, stats);
}

/* ---- reuse: identical to sampling from scratch ------------------------------- */

/* Frame t of a condition sequence: a local change (a small rectangle of new
 * tokens, anywhere), no change, a change in the last row only, a change of
 * one cell, or an entirely new map. */
static void next_frame(int32_t *c, int gw, int gh, int vocab, int t)
{
    switch (t % 6) {
    case 1: case 4: {                       /* a small rectangle */
        const int h = 1 + irand(2), w = 1 + irand(3), i0 = irand(gh), j0 = irand(gw);
        for (int i = i0; i < i0 + h && i < gh; i++)
            for (int j = j0; j < j0 + w && j < gw; j++) c[i * gw + j] = irand(vocab);
        break;
    }
    case 2:                                 /* static */
        break;
    case 3:                                 /* last row */
        c[(gh - 1) * gw + irand(gw)] = irand(vocab);
        break;
    case 5:                                 /* one cell */
        c[irand(gh) * gw + irand(gw)] = irand(vocab);
        break;
    default:                                /* a cut */
        for (int k = 0; k < gw * gh; k++) c[k] = irand(vocab);
    }
}

static void test_reuse_exact(void)
{
    struct rgpt r;
    if (rgpt_init(&r, 24, 32, 2, 4, 32, 41)) { CHECK(0, "allocation"); return; }
    const struct vq_gpt *g = &r.g;
    static const int shapes[][2] = { { 9, 11 }, { 6, 6 }, { 3, 5 }, { 12, 7 }, { 4, 13 } };
    const struct vq_sampler_params modes[] = { { 1.0f, 1, 1.0f, 0 }, { 1.0f, 5, 1.0f, 77 }, { 0.8f, 0, 0.9f, 5 } };
    static const char *mode_name[] = { "greedy", "top-k 5 seeded", "top-p 0.9 T 0.8 seeded" };
    const size_t tight = 3 * vq_kv_cache_bytes(g, g->block);
    for (int s = 0; s < 5; s++)
        for (int m = 0; m < 3; m++)
            for (int capped = 0; capped < (m < 2 ? 2 : 1); capped++) {
                const int gh = shapes[s][0], gw = shapes[s][1], n = gw * gh, w = 4;
                const int Wp = gw > w ? gw : w;
                int32_t *c = malloc(sizeof(int32_t) * n), *a = malloc(sizeof(int32_t) * n);
                int32_t *b = malloc(sizeof(int32_t) * n);
                struct vq_window_state *tst = NULL, *ost = NULL;
                int frames = 0, same = 0, stats_ok = 1, static_ok = 1, rc = 0;
                int64_t reused = 0, total = 0, fed_t = 0, fed_o = 0;
                rng_state = 900 + s;
                for (int k = 0; k < n; k++) c[k] = irand(g->vocab);
                for (int t = 0; t < 12 && !rc; t++) {
                    if (t) next_frame(c, gw, gh, g->vocab, t);
                    struct vqgan_sample_stats st, so;
                    rc = sample(&tst, g, &modes[m], VQGAN_TEMPORAL_REUSE, capped ? tight : 0, 0, 0, c, gw, gh, a, &st);
                    rc |= sample(&ost, g, &modes[m], VQGAN_TEMPORAL_OFF, capped ? tight : 0, 0, 0, c, gw, gh, b, &so);
                    frames++;
                    same += !rc && !memcmp(a, b, sizeof(int32_t) * n);
                    if (st.positions_sampled + st.positions_reused != (int64_t)gh * Wp ||
                        so.positions_sampled != (int64_t)gh * Wp || so.positions_reused)
                        stats_ok = 0;
                    if (t % 6 == 2 && (st.positions_reused != (int64_t)gh * Wp || st.transformer_tokens))
                        static_ok = 0;
                    reused += st.positions_reused;
                    total += (int64_t)gh * Wp;
                    fed_t += st.transformer_tokens;
                    fed_o += so.transformer_tokens;
                }
                CHECK(rc == 0 && same == frames,
                      "reuse, %dx%d grid, %s%s: %d of %d frames identical to sampling from scratch "
                      "(%.0f%% of positions reused, %lld vs %lld positions through the transformer)",
                      gh, gw, mode_name[m], capped ? ", cap of 3 windows" : "", same, frames,
                      100.0 * reused / total, (long long)fed_t, (long long)fed_o);
                if (!capped)
                    CHECK(stats_ok && static_ok && reused > 0 && fed_t < fed_o,
                          "reuse, %dx%d grid, %s: reused + sampled = every position; static frames reuse "
                          "all with no transformer work", gh, gw, mode_name[m]);
                vq_window_state_free(tst);
                vq_window_state_free(ost);
                free(c); free(a); free(b);
            }

    /* changing the seed, mode or grid between frames starts afresh, still exact */
    {
        const int gw = 8, gh = 7, n = gw * gh;
        int32_t c[56], a[56], b[56], c2[9 * 10], a2[90], b2[90];
        struct vq_window_state *tst = NULL, *ost = NULL;
        struct vqgan_sample_stats st, so;
        struct vq_sampler_params sp = modes[1];
        rng_state = 3;
        for (int k = 0; k < n; k++) c[k] = irand(g->vocab);
        for (int k = 0; k < 90; k++) c2[k] = irand(g->vocab);
        int rc = sample(&tst, g, &sp, VQGAN_TEMPORAL_REUSE, 0, 0, 0, c, gw, gh, a, &st);
        sp.seed = 78;
        rc |= sample(&tst, g, &sp, VQGAN_TEMPORAL_REUSE, 0, 0, 0, c, gw, gh, a, &st);
        rc |= sample(&ost, g, &sp, VQGAN_TEMPORAL_OFF, 0, 0, 0, c, gw, gh, b, &so);
        CHECK(rc == 0 && !memcmp(a, b, sizeof(a)) && st.positions_reused == 0 &&
              st.transformer_tokens < so.transformer_tokens,
              "a new seed: nothing reused, identical to from scratch, kept caches still used "
              "(%lld vs %lld positions fed)", (long long)st.transformer_tokens, (long long)so.transformer_tokens);
        rc = sample(&tst, g, &sp, VQGAN_TEMPORAL_REUSE, 0, 0, 0, c2, 10, 9, a2, &st);
        rc |= sample(&ost, g, &sp, VQGAN_TEMPORAL_OFF, 0, 0, 0, c2, 10, 9, b2, &so);
        CHECK(rc == 0 && !memcmp(a2, b2, sizeof(a2)) && st.positions_reused == 0 &&
              st.transformer_tokens == so.transformer_tokens,
              "a new grid size: the state starts afresh, identical to from scratch");
        rc = sample(&tst, g, &sp, VQGAN_TEMPORAL_OFF, 0, 0, 0, c2, 10, 9, a2, &st);
        CHECK(rc == 0 && !memcmp(a2, b2, sizeof(a2)) && st.positions_reused == 0,
              "switching to off drops the state; same tokens");
        /* one changed cell, in the last row: the windows of the rows more than
         * w/2 above it do not show it */
        rc = sample(&tst, g, &sp, VQGAN_TEMPORAL_REUSE, 0, 0, 0, c, gw, gh, a, &st);
        c[n - 3] = (c[n - 3] + 1) % g->vocab;
        struct vq_window_params p;
        memset(&p, 0, sizeof(p));
        p.sampling = sp;
        p.temporal = VQGAN_TEMPORAL_REUSE;
        rc |= sample(&ost, g, &sp, VQGAN_TEMPORAL_OFF, 0, 0, 0, c, gw, gh, b, &so);
        rc |= vq_window_sample(&tst, g, &p, c, gw, gh, a, &st);
        CHECK(rc == 0 && !memcmp(a, b, sizeof(a)) && st.positions_reused >= 5 * gw,
              "one changed cell in the last row: %lld positions reused, %lld sampled, identical to from scratch",
              (long long)st.positions_reused, (long long)st.positions_sampled);
        p.temporal = 3;
        CHECK(vq_window_sample(&tst, g, &p, c, gw, gh, a, &st) == VQGAN_ERR_INVALID, "temporal = 3 is refused");
        vq_window_state_free(tst);
        vq_window_state_free(ost);
    }
    rgpt_free(&r);
}

/* ---- progress cancel in the middle of a temporal frame ----------------------- */

static int cancel_at(void *opaque, int64_t done, int64_t total)
{
    (void)total;
    return done >= *(int64_t *)opaque;
}

static void test_cancel(void)
{
    struct rgpt r;
    if (rgpt_init(&r, 24, 32, 2, 4, 32, 43)) { CHECK(0, "allocation"); return; }
    const int gw = 9, gh = 8, n = gw * gh;
    int32_t c[72], a[72], b[72];
    struct vq_window_state *tst = NULL, *ost = NULL;
    struct vqgan_sample_stats st;
    const struct vq_sampler_params sp = { 1.0f, 6, 1.0f, 9 };
    rng_state = 17;
    for (int k = 0; k < n; k++) c[k] = irand(r.g.vocab);
    int rc = sample(&tst, &r.g, &sp, VQGAN_TEMPORAL_REUSE, 0, 0, 0, c, gw, gh, a, &st);
    c[2 * gw + 4] = (c[2 * gw + 4] + 5) % r.g.vocab;
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = sp;
    p.temporal = VQGAN_TEMPORAL_REUSE;
    int64_t stop = 40;
    p.progress = cancel_at;
    p.progress_opaque = &stop;
    int rc1 = vq_window_sample(&tst, &r.g, &p, c, gw, gh, a, &st);
    p.progress = NULL;
    rc |= vq_window_sample(&tst, &r.g, &p, c, gw, gh, a, &st);
    rc |= sample(&ost, &r.g, &sp, VQGAN_TEMPORAL_OFF, 0, 0, 0, c, gw, gh, b, NULL);
    CHECK(rc1 == VQGAN_ERR_CANCELLED && rc == 0 && !memcmp(a, b, sizeof(a)),
          "a frame cancelled half-way, then sampled again: identical to from scratch");
    vq_window_state_free(tst);
    vq_window_state_free(ost);
    rgpt_free(&r);
}

/* ---- follow ------------------------------------------------------------------- */

/* The Gumbel-max rule draws from the same distribution as vq_sample_token. */
static void test_gumbel(void)
{
    enum { V = 12, N = 60000 };
    float logits[V];
    rng_state = 8;
    for (int t = 0; t < V; t++) logits[t] = 2.0f * frand();
    logits[3] = logits[7];                      /* a tie */
    const struct vq_sampler_params modes[] = { { 1.0f, 0, 1.0f, 1 }, { 0.7f, 5, 1.0f, 2 }, { 1.3f, 0, 0.8f, 3 },
                                               { 1.0f, 1, 1.0f, 4 } };
    for (int m = 0; m < 4; m++) {
        struct vq_sampler s;
        if (vq_sampler_init(&s, &modes[m], V)) { CHECK(0, "sampler"); return; }
        int64_t cg[V] = { 0 }, ci[V] = { 0 };
        for (int k = 0; k < N; k++) {
            const struct vq_draw_key key = { VQ_STREAM_WINDOW, k / 300, k % 300 };
            cg[vq_gumbel_token(&s, logits, key)]++;
            ci[vq_sample_token(&s, logits, key)]++;
        }
        /* both against each other: same support, frequencies within 5 sigma */
        int ok = 1;
        double worst = 0;
        for (int t = 0; t < V; t++) {
            const double p = (double)ci[t] / N, sd = sqrt(p * (1 - p) / N) + 1e-9;
            const double z = fabs((double)cg[t] / N - p) / (sd * 1.4143);
            if ((ci[t] == 0) != (cg[t] == 0) || z > 5) ok = 0;
            if (ci[t] && z > worst) worst = z;
        }
        CHECK(ok, "Gumbel-max draws follow the inverse-CDF sampler's distribution (T %.1f, top-k %d, top-p %.1f; "
              "largest deviation %.1f sigma)", modes[m].temperature, modes[m].top_k, modes[m].top_p, worst);
        vq_sampler_free(&s);
    }
}

static void test_detect_shift(void)
{
    enum { W = 20, H = 14 };
    int32_t big[40 * 40], a[W * H], b[W * H];
    rng_state = 5;
    for (int k = 0; k < 40 * 40; k++) big[k] = irand(50);
    int ok = 1;
    for (int dy = -3; dy <= 3; dy++)
        for (int dx = -3; dx <= 3; dx++) {
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    b[i * W + j] = big[(10 + i) * 40 + 10 + j];            /* previous */
                    a[i * W + j] = big[(10 + i + dy) * 40 + 10 + j + dx];  /* current  */
                }
            int sy, sx;
            vq_detect_shift(a, b, W, H, 4, &sy, &sx);
            if (sy != dy || sx != dx) ok = 0;
        }
    CHECK(ok, "shift detection finds every whole-token shift up to 3 on a 20x14 grid");
    for (int k = 0; k < W * H; k++) a[k] = irand(50);
    int sy, sx;
    vq_detect_shift(a, b, W, H, 4, &sy, &sx);
    CHECK(sy == 0 && sx == 0, "an unrelated grid (a cut) gives no shift");
    for (int k = 0; k < W * H; k++) a[k] = b[k] = 7;
    vq_detect_shift(a, b, W, H, 4, &sy, &sx);
    CHECK(sy == 0 && sx == 0, "a uniform grid gives no shift");
    /* 5 % of the cells changed on top of a shift: still found */
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            b[i * W + j] = big[(10 + i) * 40 + 10 + j];
            a[i * W + j] = big[(10 + i + 1) * 40 + 10 + j - 2];
        }
    for (int k = 0; k < W * H / 20; k++) a[irand(W * H)] = irand(50);
    vq_detect_shift(a, b, W, H, 4, &sy, &sx);
    CHECK(sy == 1 && sx == -2, "a shift (1, -2) with 5%% of the cells changed is found (%d, %d)", sy, sx);
}

static void test_follow(void)
{
    struct rgpt r;
    if (rgpt_init(&r, 24, 32, 2, 4, 32, 51)) { CHECK(0, "allocation"); return; }
    const struct vq_gpt *g = &r.g;
    enum { BW = 40, BH = 30, gw = 12, gh = 10, n = gw * gh };
    int32_t big[BW * BH], c[n], a[n], b[n], prev[n];
    rng_state = 61;
    for (int k = 0; k < BW * BH; k++) big[k] = irand(g->vocab);
    /* the camera's top-left corner on the big map per frame; a cut at frame 6 */
    static const int path[][2] = { { 10, 10 }, { 10, 11 }, { 11, 11 }, { 11, 11 }, { 10, 9 }, { 12, 9 },
                                   { -1, -1 }, { 3, 4 }, { 3, 5 }, { 3, 6 } };
    const int nf = (int)(sizeof(path) / sizeof(path[0]));
    /* a model whose logits are all zero: the draw alone picks the token
     * (floor(u * vocab)), so tokens are a function of their draw keys */
    struct rgpt z;
    if (rgpt_init(&z, 24, 32, 2, 4, 32, 51)) { CHECK(0, "allocation"); return; }
    memset((float *)z.g.head_w, 0, sizeof(float) * 24 * 32);
    const struct vq_sampler_params modes[] = { { 1.0f, 1, 1.0f, 0 }, { 1.0f, 5, 1.0f, 77 }, { 1.0f, 0, 1.0f, 3 } };
    static const char *names[] = { "greedy", "top-k 5 seeded", "constant logits, seeded" };
    for (int m = 0; m < 3; m++) {
        g = m == 2 ? &z.g : &r.g;
        struct vq_window_state *fst = NULL, *ost = NULL, *rst = NULL;
        int shifts_ok = 1, exact = 1, rc = 0;
        int64_t moved = 0, moved_reuse = 0, overlap = 0, reused = 0;
        int32_t oy = 0, ox = 0;
        int32_t rprev[n];
        for (int t = 0; t < nf && !rc; t++) {
            const int y0 = path[t][0], x0 = path[t][1];
            if (y0 < 0) {
                for (int k = 0; k < n; k++) c[k] = irand(g->vocab);
            } else {
                for (int i = 0; i < gh; i++)
                    for (int j = 0; j < gw; j++) c[i * gw + j] = big[(y0 + i) * BW + x0 + j];
            }
            struct vqgan_sample_stats st, sr;
            int32_t ra[n];
            rc = sample(&fst, g, &modes[m], VQGAN_TEMPORAL_FOLLOW, 0, 0, 0, c, gw, gh, a, &st);
            rc |= sample(&rst, g, &modes[m], VQGAN_TEMPORAL_REUSE, 0, 0, 0, c, gw, gh, ra, &sr);
            int ey = 0, ex = 0;
            if (t && y0 >= 0 && path[t - 1][0] >= 0) {
                ey = y0 - path[t - 1][0];
                ex = x0 - path[t - 1][1];
            }
            if (st.shift_y != ey || st.shift_x != ex) shifts_ok = 0;
            oy += st.shift_y;
            ox += st.shift_x;
            int32_t gy, gx;
            vq_window_origin(fst, &gy, &gx);
            if (gy != oy || gx != ox) shifts_ok = 0;
            use_gumbel = 1;
            rc |= sample(&ost, g, &modes[m], VQGAN_TEMPORAL_OFF, 0, oy, ox, c, gw, gh, b, NULL);
            use_gumbel = 0;
            if (memcmp(a, b, sizeof(a))) exact = 0;
            reused += st.positions_reused;
            /* interior cells (the window at offset w/2 in both frames) whose
             * content was on screen in the previous frame */
            if (t && (ey || ex) && path[t - 1][0] >= 0 && y0 >= 0)
                for (int i = 3; i < gh - 3; i++)
                    for (int j = 3; j < gw - 3; j++) {
                        const int pi = i + ey, pj = j + ex;
                        if (pi < 0 || pi >= gh || pj < 0 || pj >= gw) continue;
                        overlap++;
                        moved += a[i * gw + j] == prev[pi * gw + pj];
                        moved_reuse += ra[i * gw + j] == rprev[pi * gw + pj];
                    }
            memcpy(prev, a, sizeof(a));
            memcpy(rprev, ra, sizeof(ra));
        }
        CHECK(rc == 0 && shifts_ok, "follow, %s: the detected shifts are the camera's moves, none at the cut "
              "(origin %d, %d)", names[m], oy, ox);
        CHECK(rc == 0 && exact, "follow, %s: every frame identical to sampling from scratch (Gumbel-max draws) "
              "keyed to content coordinates (%lld positions reused)", names[m], (long long)reused);
        if (m == 2)
            CHECK(moved > 0.95 * overlap && moved_reuse < 0.3 * overlap && reused > 0,
                  "follow, %s (draws dominate): %lld of %lld interior tokens moved with the content "
                  "(reuse, keyed to the frame: %lld)", names[m], (long long)moved, (long long)overlap,
                  (long long)moved_reuse);
        else if (m == 1)
            CHECK(moved > 2 * moved_reuse,
                  "follow, %s: %lld of %lld interior tokens moved with the content (reuse, keyed to the frame: %lld)",
                  names[m], (long long)moved, (long long)overlap, (long long)moved_reuse);
        else
            printf("# follow, %s: %lld of %lld interior tokens moved with the content (reuse: %lld)\n",
                   names[m], (long long)moved, (long long)overlap, (long long)moved_reuse);
        vq_window_state_free(fst);
        vq_window_state_free(ost);
        vq_window_state_free(rst);
    }

    /* a pure shift of a map whose new edge is static elsewhere: the interior
     * windows are identical, so they are reused (no transformer) */
    {
        struct vq_window_state *fst = NULL;
        struct vqgan_sample_stats st;
        const struct vq_sampler_params sp = { 1.0f, 0, 1.0f, 4 };
        enum { W2 = 20, H2 = 12 };
        int32_t c2[W2 * H2], t2[W2 * H2];
        for (int i = 0; i < H2; i++)
            for (int j = 0; j < W2; j++) c2[i * W2 + j] = big[(5 + i) * BW + 5 + j];
        int rc = sample(&fst, &z.g, &sp, VQGAN_TEMPORAL_FOLLOW, 0, 0, 0, c2, W2, H2, t2, &st);
        for (int i = 0; i < H2; i++)
            for (int j = 0; j < W2; j++) c2[i * W2 + j] = big[(5 + i) * BW + 6 + j];
        rc |= sample(&fst, &z.g, &sp, VQGAN_TEMPORAL_FOLLOW, 0, 0, 0, c2, W2, H2, t2, &st);
        CHECK(rc == 0 && st.shift_x == 1 && st.shift_y == 0 && st.positions_reused > W2 * H2 / 2,
              "follow, constant logits, a pan by one token on a 20x12 grid: shift (0, 1), %lld of %d positions "
              "reused",
              (long long)st.positions_reused, W2 * H2);
        vq_window_state_free(fst);
    }
    rgpt_free(&r);
    rgpt_free(&z);
}

/* ---- public API on the golden conditional model ---------------------------- */

/* A label map of 8x8-pixel blocks with a moving square (class 7). */
static void label_frame(uint8_t *lab, int W, int H, int t, int kind)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int bx = x / 16, by = y / 16;
            lab[y * W + x] = (uint8_t)((bx * 3 + by * 5 + (bx * by) % 3) % 6);
        }
    if (kind == 1) {                            /* a square moving right, 4 px a frame */
        const int x0 = 10 + 4 * t, y0 = 24;
        for (int y = y0; y < y0 + 14 && y < H; y++)
            for (int x = x0; x < x0 + 14 && x < W; x++) lab[y * W + x] = 7;
    }
}

static void test_public(void)
{
    struct vqgan_model *m = NULL;
    int rc = vqgan_model_load(model_path("conditional"), NULL, &m);
    CHECK(rc == 0, "load %s", model_path("conditional"));
    if (rc) return;
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    const int W = 128, H = 72, f = info.factor, gw = W / f, gh = H / f, n = gw * gh;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 3;
    sp.seed = 11;
    sp.n_threads = 2;
    struct vqgan_session *off = NULL, *tmp = NULL;
    rc = vqgan_session_new(m, &sp, &off);
    sp.temporal = VQGAN_TEMPORAL_REUSE;
    rc |= vqgan_session_new(m, &sp, &tmp);
    struct vqgan_session_params bad = sp;
    bad.temporal = 4;
    struct vqgan_session *x = NULL;
    CHECK(vqgan_session_new(m, &bad, &x) == VQGAN_ERR_INVALID && !x &&
          vqgan_session_set_params(tmp, &bad) == VQGAN_ERR_INVALID && strstr(vqgan_last_error(), "temporal"),
          "temporal = 4 is refused (\"%s\")", vqgan_last_error());

    uint8_t *lab = malloc((size_t)W * H), *pa = malloc((size_t)(W * 3 + 5) * H), *pb = malloc((size_t)(W * 3 + 5) * H);
    int32_t *ca = malloc(sizeof(int32_t) * n), *cb = malloc(sizeof(int32_t) * n);
    int32_t *ta = malloc(sizeof(int32_t) * n), *tb = malloc(sizeof(int32_t) * n);
    float *fa = malloc(sizeof(float) * 3 * W * H), *fb = malloc(sizeof(float) * 3 * W * H);
    int frames = 0, same = 0;
    int64_t reused = 0, sampled = 0;
    double t_first = 0, t_static = 0;
    uint8_t *first = malloc((size_t)W * H * 3);
    for (int t = 0; t < 12 && !rc; t++) {
        const int kind = t < 8 ? 1 : 0;         /* 8 frames of a moving square, then 4 static */
        label_frame(lab, W, H, kind ? t : 8, kind ? 1 : 0);
        struct vqgan_sample_stats st;
        rc = vqgan_encode_labels(tmp, lab, W, W, H, ca, NULL);
        rc |= vqgan_sample_conditional(tmp, ca, gw, gh, ta);
        rc |= vqgan_session_get_stats(tmp, &st);
        rc |= vqgan_decode(tmp, ta, gw, gh, pa, W * 3);
        rc |= vqgan_encode_labels(off, lab, W, W, H, cb, NULL);
        rc |= vqgan_sample_conditional(off, cb, gw, gh, tb);
        rc |= vqgan_decode(off, tb, gw, gh, pb, W * 3);
        frames++;
        same += !rc && !memcmp(ca, cb, sizeof(int32_t) * n) && !memcmp(ta, tb, sizeof(int32_t) * n) &&
                !memcmp(pa, pb, (size_t)W * H * 3);
        reused += st.positions_reused;
        sampled += st.positions_sampled;
        if (t == 0) t_first = st.seconds;
        if (t >= 9) {
            t_static += st.seconds;
            if (st.positions_sampled || st.transformer_tokens) same = -100;
            if (memcmp(pa, first, (size_t)W * H * 3)) same = -100;
        }
        memcpy(first, pa, (size_t)W * H * 3);
    }
    CHECK(rc == 0 && same == frames,
          "public API, reuse, %d label frames (a moving square, then static): condition tokens, tokens and "
          "pictures identical to a session without temporal state; static frames resample nothing and give "
          "the same picture (%lld reused, %lld sampled; sampling %.4f s first, %.5f s per static frame)",
          frames, (long long)reused, (long long)sampled, t_first, t_static / 3);

    /* f32 decode memo: same values as a fresh decode, and after a change too */
    rc = vqgan_decode_f32(tmp, ta, gw, gh, fa);
    rc |= vqgan_decode_f32(tmp, ta, gw, gh, fa);
    rc |= vqgan_decode_f32(off, ta, gw, gh, fb);
    int ok = !rc && !memcmp(fa, fb, sizeof(float) * 3 * W * H);
    ta[5] = (ta[5] + 1) % info.image_codes;
    rc = vqgan_decode_f32(tmp, ta, gw, gh, fa);
    rc |= vqgan_decode_f32(off, ta, gw, gh, fb);
    rc |= vqgan_decode(tmp, ta, gw, gh, pa, W * 3 + 5);  /* another stride */
    rc |= vqgan_decode(off, ta, gw, gh, pb, W * 3 + 5);
    CHECK(ok && !rc && !memcmp(fa, fb, sizeof(float) * 3 * W * H) && !memcmp(pa, pb, (size_t)(W * 3 + 5) * (H - 1) + W * 3),
          "decoder memos: f32 and 8-bit pictures identical to fresh decodes, repeated and changed");
    /* pre_quant requested: computed, same tokens */
    float *pq = malloc(sizeof(float) * 4096 * 64);
    rc = vqgan_encode_labels(tmp, lab, W, W, H, ca, pq);
    rc |= vqgan_encode_labels(off, lab, W, W, H, cb, NULL);
    CHECK(!rc && !memcmp(ca, cb, sizeof(int32_t) * n), "label memo with pre_quant requested: same tokens");
    lab[77] = 200;
    rc = vqgan_encode_labels(tmp, lab, W, W, H, ca, NULL);
    CHECK(rc == VQGAN_ERR_INVALID, "label memo: a bad id in a changed map is still refused");
    free(pq);

    /* follow through the public API: a label map panned by one token */
    struct vqgan_session *fol = NULL;
    sp.temporal = VQGAN_TEMPORAL_FOLLOW;
    rc = vqgan_session_new(m, &sp, &fol);
    enum { BW = 256 };
    uint8_t *bigl = malloc((size_t)BW * H);
    rng_state = 99;
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < BW; xx++) bigl[y * BW + xx] = (uint8_t)(((xx / 8) * 7 + (y / 8) * 3 + ((xx / 8) * (y / 8)) % 5) % 8);
    int shifts[4] = { 0 };
    int64_t fre = 0;
    for (int t = 0; t < 4 && !rc; t++) {
        struct vqgan_sample_stats st;
        rc = vqgan_encode_labels(fol, bigl + f * t, BW, W, H, ca, NULL);
        rc |= vqgan_sample_conditional(fol, ca, gw, gh, ta);
        rc |= vqgan_session_get_stats(fol, &st);
        shifts[t] = st.shift_x * 100 + st.shift_y;
        if (t) fre += st.positions_reused;
    }
    CHECK(rc == 0 && shifts[1] == 100 && shifts[2] == 100 && shifts[3] == 100,
          "public API, follow: a label pan of %d px a frame is detected as 1 token (shifts %d %d %d, %lld positions "
          "reused over 3 frames)", f, shifts[1], shifts[2], shifts[3], (long long)fre);
    free(bigl);
    vqgan_session_free(fol);
    free(lab); free(pa); free(pb); free(ca); free(cb); free(ta); free(tb); free(fa); free(fb); free(first);
    vqgan_session_free(off);
    vqgan_session_free(tmp);
    vqgan_model_unref(m);
}

/* The morph sample (samples/labels_morph.mkv: the sea rising, a change every
 * frame), a 128x72 crop at its bottom-left, ids modulo the model's labels,
 * through labels -> tokens -> picture with reuse and with off. */

/* temporal = steady: tokens identical to off; in the 8-bit picture every cell
 * at least VQGAN_STEADY_RADIUS cells from every token that changed keeps the
 * previous picture's pixels, every other cell has the fresh decode's. */
static void test_steady(void)
{
    struct vqgan_model *m = NULL;
    int rc = vqgan_model_load(model_path("conditional"), NULL, &m);
    if (rc) { CHECK(0, "steady: load %s", model_path("conditional")); return; }
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    const int W = 128, H = 72, f = info.factor, gw = W / f, gh = H / f, n = gw * gh, R = VQGAN_STEADY_RADIUS;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 3;
    sp.seed = 5;
    struct vqgan_session *off = NULL, *sty = NULL;
    rc = vqgan_session_new(m, &sp, &off);
    sp.temporal = VQGAN_TEMPORAL_STEADY;
    rc |= vqgan_session_new(m, &sp, &sty);
    uint8_t *lab = malloc((size_t)W * H), *ps = malloc((size_t)W * H * 3), *po = malloc((size_t)W * H * 3);
    uint8_t *prev = malloc((size_t)W * H * 3);
    int32_t *c = malloc(sizeof(int32_t) * n), *ts = malloc(sizeof(int32_t) * n), *to = malloc(sizeof(int32_t) * n);
    int32_t *tprev = malloc(sizeof(int32_t) * n);
    int tok_same = 1, rule = 1, frames = 0;
    long kept = 0, fresh = 0, kept_flicker = 0;
    for (int t = 0; t < 6 && !rc; t++) {
        label_frame(lab, W, H, t < 4 ? t : 3, 1);          /* a moving square, then still */
        rc = vqgan_encode_labels(sty, lab, W, W, H, c, NULL);
        rc |= vqgan_sample_conditional(sty, c, gw, gh, ts);
        rc |= vqgan_decode(sty, ts, gw, gh, ps, W * 3);
        rc |= vqgan_encode_labels(off, lab, W, W, H, c, NULL);
        rc |= vqgan_sample_conditional(off, c, gw, gh, to);
        rc |= vqgan_decode(off, to, gw, gh, po, W * 3);
        if (rc) break;
        tok_same &= !memcmp(ts, to, sizeof(int32_t) * n);
        if (t == 0) {
            rule &= !memcmp(ps, po, (size_t)W * H * 3);       /* nothing before: the fresh picture */
        } else {
            for (int y = 0; y < gh; y++)
                for (int x = 0; x < gw; x++) {
                    int near = 0;
                    for (int yy = y - R; yy <= y + R; yy++)
                        for (int xx = x - R; xx <= x + R; xx++)
                            if (yy >= 0 && yy < gh && xx >= 0 && xx < gw && tprev[yy * gw + xx] != to[yy * gw + xx])
                                near = 1;
                    const uint8_t *want = near ? po : prev;
                    int diff_fresh = 0;
                    for (int py = y * f; py < (y + 1) * f; py++) {
                        const size_t o = (size_t)py * W * 3 + (size_t)x * f * 3;
                        rule &= !memcmp(ps + o, want + o, (size_t)f * 3);
                        diff_fresh |= memcmp(po + o, prev + o, (size_t)f * 3) != 0;
                    }
                    if (near) fresh++;
                    else { kept++; kept_flicker += diff_fresh; }
                }
        }
        memcpy(prev, ps, (size_t)W * H * 3);
        memcpy(tprev, to, sizeof(int32_t) * n);
        frames++;
    }
    CHECK(rc == 0 && tok_same, "steady: %d frames, tokens identical to off (%s)", frames, rc ? vqgan_last_error() : "");
    CHECK(rc == 0 && rule && kept > 0,
          "steady: cells at least %d cells from every changed token keep the previous pixels (%ld cells, %ld of them "
          "would have changed in a fresh decode), the others are the fresh decode (%ld cells)",
          R, kept, kept_flicker, fresh);
    /* a new mode starts afresh: steady's picture of tokens with one change is
     * a blend; after a switch to reuse, the same tokens decode to the fresh
     * picture, not to the blend remembered from steady */
    if (rc == 0) {
        memcpy(tprev, ts, sizeof(int32_t) * n);
        tprev[n / 2] = (tprev[n / 2] + 1) % info.image_codes;
        rc = vqgan_decode(sty, ts, gw, gh, ps, W * 3);
        rc |= vqgan_decode(sty, tprev, gw, gh, ps, W * 3);
        rc |= vqgan_decode(off, tprev, gw, gh, po, W * 3);
        const int blended = rc == 0 && memcmp(ps, po, (size_t)W * H * 3) != 0;
        sp.temporal = VQGAN_TEMPORAL_REUSE;
        rc |= vqgan_session_set_params(sty, &sp);
        rc |= vqgan_decode(sty, tprev, gw, gh, ps, W * 3);
        CHECK(rc == 0 && blended && !memcmp(ps, po, (size_t)W * H * 3),
              "steady then reuse: the same tokens decode to the fresh picture, not steady's blend (%s)",
              rc ? vqgan_last_error() : blended ? "" : "steady's picture was not a blend");
    }
    free(lab); free(ps); free(po); free(prev); free(c); free(ts); free(to); free(tprev);
    vqgan_session_free(off);
    vqgan_session_free(sty);
    vqgan_model_unref(m);
}

static void test_sample_video(void)
{
    const char *b = getenv("BUILD");
    char tmp[] = "/tmp/vqtemporalXXXXXX", cmd[1024];
    int fd = mkstemp(tmp);
    if (fd < 0) return;
    close(fd);
    snprintf(cmd, sizeof(cmd), "%s/ffmpeg -hide_banner -loglevel error -y -i samples/labels_morph.mkv -frames:v 10 "
             "-f rawvideo -pix_fmt gray %s", b ? b : "build", tmp);
    enum { VW = 512, VH = 320, W = 128, H = 72, NF = 10 };
    uint8_t *v = malloc((size_t)VW * VH * NF);
    FILE *f = system(cmd) == 0 ? fopen(tmp, "rb") : NULL;
    const size_t got = f ? fread(v, 1, (size_t)VW * VH * NF, f) : 0;
    if (f) fclose(f);
    unlink(tmp);
    if (got != (size_t)VW * VH * NF) {
        printf("# skipped: samples/labels_morph.mkv cannot be read with build/ffmpeg\n");
        free(v);
        return;
    }
    struct vqgan_model *m = NULL;
    if (vqgan_model_load(model_path("conditional"), NULL, &m)) { CHECK(0, "load"); free(v); return; }
    struct vqgan_model_info info;
    vqgan_model_get_info(m, &info);
    const int gw = W / info.factor, gh = H / info.factor, n = gw * gh;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 16;
    sp.seed = 3;
    struct vqgan_session *off = NULL, *tmp_s = NULL;
    int rc = vqgan_session_new(m, &sp, &off);
    sp.temporal = VQGAN_TEMPORAL_REUSE;
    rc |= vqgan_session_new(m, &sp, &tmp_s);
    uint8_t lab[W * H], pa[W * H * 3], pb[W * H * 3];
    int32_t ca[64 * 64], cb[64 * 64], ta[64 * 64], tb[64 * 64];
    int same = 0, changed = 0;
    int64_t reused = 0, cells = 0;
    for (int t = 0; t < NF && !rc; t++) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) lab[y * W + x] = v[(size_t)t * VW * VH + (size_t)(VH - H + y) * VW + x] % info.n_labels;
        struct vqgan_sample_stats st;
        rc = vqgan_encode_labels(tmp_s, lab, W, W, H, ca, NULL);
        rc |= vqgan_sample_conditional(tmp_s, ca, gw, gh, ta);
        rc |= vqgan_session_get_stats(tmp_s, &st);
        rc |= vqgan_decode(tmp_s, ta, gw, gh, pa, W * 3);
        rc |= vqgan_encode_labels(off, lab, W, W, H, cb, NULL);
        rc |= vqgan_sample_conditional(off, cb, gw, gh, tb);
        rc |= vqgan_decode(off, tb, gw, gh, pb, W * 3);
        same += !rc && !memcmp(ta, tb, sizeof(int32_t) * n) && !memcmp(pa, pb, sizeof(pa));
        changed += t && st.positions_sampled > 0;
        reused += st.positions_reused;
        cells += st.positions_reused + st.positions_sampled;
    }
    CHECK(rc == 0 && same == NF && changed > 0,
          "samples/labels_morph.mkv (bottom-left 128x72, ids mod %d), reuse: %d of %d frames identical to sampling "
          "from scratch (pictures included; %d frames with changes, %.0f%% of positions reused)", info.n_labels,
          same, NF, changed, 100.0 * reused / (cells ? cells : 1));
    vqgan_session_free(off);
    vqgan_session_free(tmp_s);
    vqgan_model_unref(m);
    free(v);
}

static void drop(void *o, int l, const char *msg) { (void)o; (void)l; (void)msg; }

static const struct test_case cases[] = {
    { "reuse_exact", test_reuse_exact, 0 },
    { "cancel", test_cancel, 0 },
    { "gumbel", test_gumbel, 0 },
    { "detect_shift", test_detect_shift, 0 },
    { "follow", test_follow, 0 },
    { "public", test_public, 1 },
    { "steady", test_steady, 1 },
    { "sample_video", test_sample_video, 1 },
};

int main(int argc, char **argv)
{
    (void)golden_path;
    vqgan_set_log_callback(drop, NULL);
    return TEST_RUN_CASES(argc, argv, cases);
}
