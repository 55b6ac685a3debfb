/* The windowed, cached sampler against the slow oracle (the reference's loop:
 * one full forward of the whole window per token), on random models and many
 * grid shapes; the cache cap; determinism; the golden `conditional` and
 * `classcond` cases through the public API. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "gpt.h"
#include "memlimit.h"
#include "model.h"
#include "ops.h"
#include "npy.h"
#include "test_common.h"
#include "vqgan.h"
#include "window.h"
#include "window_test.h"

/* ---- a random GPT (as in test_gpt.c) ---------------------------------------- */

#include "random_gpt.h"

static void random_tokens(int32_t *t, size_t n, int vocab, uint64_t seed)
{
    rng_state = seed;
    for (size_t k = 0; k < n; k++)
        t[k] = (int32_t)((frand() + 1.0f) * 0.5f * vocab) % vocab;
}

/* ---- the slow oracle -------------------------------------------------------------- */

#include "window_oracle.h"

static int oracle(const struct vq_gpt *g, const struct vq_sampler_params *sp, const int32_t *cond, int gw, int gh,
                  int32_t *out, double *min_margin)
{
    const struct oracle_input in = { cond, 0, VQ_STREAM_WINDOW, NULL, NULL };
    return oracle_sample(g, sp, &in, gw, gh, out, min_margin);
}

/* Positions the windowed sampler should push through the transformer when no
 * cache is evicted: per placement, the longest prefix any of its cells needs. */
static int64_t expected_fed(int w, int gw, int gh)
{
    const int Hp = gh > w ? gh : w, Wp = gw > w ? gw : w;
    const int nr = Hp - w + 1, nc = Wp - w + 1;
    int *need = calloc((size_t)nr * nc, sizeof(int));
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < Wp; j++) {
            const int li = oracle_offset(i, Hp, w), lj = oracle_offset(j, Wp, w);
            const int p = w * w + li * w + lj, k = (i - li) * nc + (j - lj);
            if (p > need[k]) need[k] = p;
        }
    int64_t sum = 0;
    for (int k = 0; k < nr * nc; k++) sum += need[k];
    free(need);
    return sum;
}

/* ---- windowed sampler vs oracle ------------------------------------------------------ */

static struct vq_window_state *state;

static int windowed(const struct vq_gpt *g, const struct vq_sampler_params *sp, size_t cache_bytes,
                    const int32_t *cond, int gw, int gh, int32_t *out, struct vqgan_sample_stats *st)
{
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = *sp;
    p.cache_bytes = cache_bytes;
    return vq_window_sample(&state, g, &p, cond, gw, gh, out, st);
}

/* The same on n_threads threads. */
static int windowed_threads(const struct vq_gpt *g, const struct vq_sampler_params *sp, int n_threads,
                            const int32_t *cond, int gw, int gh, int32_t *out, struct vqgan_sample_stats *st)
{
    const struct vq_exec ex = vq_exec_make(NULL, n_threads);
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = *sp;
    p.exec = &ex;
    return vq_window_sample(&state, g, &p, cond, gw, gh, out, st);
}

static void compare_shapes(const struct vq_gpt *g, const char *model, const int (*shapes)[2], int n_shapes)
{
    const int w = vq_window_side(g->block);
    const struct vq_sampler_params greedy = { 1.0f, 1, 1.0f, 0 }, topk = { 1.0f, 5, 1.0f, 77 };
    for (int s = 0; s < n_shapes; s++) {
        const int gh = shapes[s][0], gw = shapes[s][1];
        int32_t *cond = malloc(sizeof(int32_t) * gw * gh), *a = malloc(sizeof(int32_t) * gw * gh);
        int32_t *b = malloc(sizeof(int32_t) * gw * gh);
        random_tokens(cond, (size_t)gw * gh, g->vocab, 1000 + s);
        for (int mode = 0; mode < 2; mode++) {
            const struct vq_sampler_params *sp = mode ? &topk : &greedy;
            struct vqgan_sample_stats st;
            double margin;
            int rc1 = windowed(g, sp, 0, cond, gw, gh, a, &st);
            int rc2 = oracle(g, sp, cond, gw, gh, b, &margin);
            const int same = !rc1 && !rc2 && !memcmp(a, b, sizeof(int32_t) * gw * gh);
            const int Wp = gw > w ? gw : w;
            const int64_t naive = (int64_t)gh * Wp * (2 * w * w - 1), want = expected_fed(w, gw, gh);
            if (mode == 0)
                CHECK(same, "%s, %dx%d grid (h x w), greedy: tokens identical to the naive loop "
                      "(smallest greedy margin %.1e)", model, gh, gw, margin);
            else
                CHECK(same, "%s, %dx%d grid, top-k 5 seeded: tokens identical to the naive loop", model, gh, gw);
            if (mode == 0)
                CHECK(!rc1 && st.transformer_tokens == want && st.positions_sampled == (int64_t)gh * Wp &&
                      st.cache_evictions == 0,
                      "%s, %dx%d grid: %lld positions through the transformer (naive loop: %lld), %lld cells sampled",
                      model, gh, gw, (long long)st.transformer_tokens, (long long)naive,
                      (long long)st.positions_sampled);
        }
        free(cond); free(a); free(b);
    }
}

static void test_oracle(void)
{
    struct rgpt r;
    /* w = 4 (block 32): H and W from w to 3w, including w itself and odd sizes */
    if (rgpt_init(&r, 24, 32, 2, 4, 32, 11)) { CHECK(0, "allocation"); return; }
    static const int shapes4[][2] = { { 4, 4 }, { 4, 12 }, { 12, 4 }, { 5, 7 }, { 7, 5 }, { 9, 9 }, { 8, 11 },
                                      { 12, 12 }, { 6, 10 }, { 11, 6 } };
    compare_shapes(&r.g, "w=4", shapes4, (int)(sizeof(shapes4) / sizeof(shapes4[0])));
    /* smaller than the window in one or both directions: padded, sampled, cropped */
    static const int small4[][2] = { { 1, 1 }, { 3, 3 }, { 2, 9 }, { 9, 3 }, { 4, 1 } };
    compare_shapes(&r.g, "w=4 (smaller than the window)", small4, (int)(sizeof(small4) / sizeof(small4[0])));
    rgpt_free(&r);

    /* w = 6 (block 72), another width and head count */
    if (rgpt_init(&r, 40, 72, 2, 2, 16, 12)) { CHECK(0, "allocation"); return; }
    static const int shapes6[][2] = { { 6, 6 }, { 7, 13 }, { 18, 9 }, { 10, 18 } };
    compare_shapes(&r.g, "w=6", shapes6, (int)(sizeof(shapes6) / sizeof(shapes6[0])));
    rgpt_free(&r);

    /* odd w = 3 (block 18): our generalisation of the schedule */
    if (rgpt_init(&r, 20, 18, 1, 2, 16, 13)) { CHECK(0, "allocation"); return; }
    static const int shapes3[][2] = { { 3, 3 }, { 5, 8 }, { 9, 4 }, { 2, 5 } };
    compare_shapes(&r.g, "w=3", shapes3, (int)(sizeof(shapes3) / sizeof(shapes3[0])));
    rgpt_free(&r);
}

static void test_schedule(void)
{
    int ok = 1;
    for (int w = 2; w <= 16; w += 2)
        for (int n = w; n <= 3 * w + 1; n++)
            for (int i = 0; i < n; i++) {
                const int o = vq_window_offset(i, n, w);
                if (o != oracle_offset(i, n, w) || i - o < 0 || i - o + w > n) ok = 0;
            }
    CHECK(ok, "window offsets follow the golden README's rule for even w = 2..16, grids w..3w+1");
    CHECK(vq_window_side(512) == 16 && vq_window_side(32) == 4 && vq_window_side(18) == 3 &&
          vq_window_side(17) == 0 && vq_window_side(1) == 0, "window side from the block size (2 w^2)");
}

/* ---- cache cap, threads, seeds, progress, errors ------------------------------------ */

struct progress_log { int64_t calls, last_done, total, cancel_at; int monotone; };
static int on_progress(void *opaque, int64_t done, int64_t total)
{
    struct progress_log *p = opaque;
    if (done != p->last_done + 1) p->monotone = 0;
    p->last_done = done;
    p->total = total;
    p->calls++;
    return p->cancel_at && done >= p->cancel_at;
}

static void test_cache_and_determinism(void)
{
    struct rgpt r;
    if (rgpt_init(&r, 24, 32, 2, 4, 32, 21)) { CHECK(0, "allocation"); return; }
    const struct vq_gpt *g = &r.g;
    const int gw = 11, gh = 10, n = gw * gh;
    int32_t cond[110], a[110], b[110], c[110];
    random_tokens(cond, n, g->vocab, 5);
    const struct vq_sampler_params sp = { 1.0f, 0, 0.9f, 1234 };
    struct vqgan_sample_stats s0, s1, s2;

    int rc = windowed(g, &sp, 0, cond, gw, gh, a, &s0);
    CHECK(rc == 0 && s0.cache_evictions == 0, "default cap: no evictions, %lld positions fed",
          (long long)s0.transformer_tokens);
    rc = windowed(g, &sp, 1, cond, gw, gh, b, &s1);
    CHECK(rc == 0 && !memcmp(a, b, sizeof(a)) && s1.cache_evictions > 0,
          "1-byte cap: %lld evictions, %lld positions fed, tokens identical", (long long)s1.cache_evictions,
          (long long)s1.transformer_tokens);
    const size_t three = 3 * vq_kv_cache_bytes(g, g->block);
    rc = windowed(g, &sp, three, cond, gw, gh, c, &s2);
    CHECK(rc == 0 && !memcmp(a, c, sizeof(a)) && s2.cache_evictions > 0 &&
          s2.transformer_tokens < s1.transformer_tokens,
          "cap of 3 full windows: %lld evictions, %lld positions fed, tokens identical",
          (long long)s2.cache_evictions, (long long)s2.transformer_tokens);

    /* the naive loop, for the record: tokens identical under the cap too */
    double margin;
    rc = oracle(g, &sp, cond, gw, gh, c, &margin);
    CHECK(rc == 0 && !memcmp(a, c, sizeof(a)), "top-p 0.9 seeded: tokens identical to the naive loop");

    /* dry run counts the same work */
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = sp;
    p.cache_bytes = three;
    const struct vq_window_hooks dry = { .dry_run = 1 };
    struct vqgan_sample_stats sd;
    rc = vq_window_sample_hooked(&state, g, &p, &dry, cond, gw, gh, c, &sd);
    CHECK(rc == 0 && sd.transformer_tokens == s2.transformer_tokens && sd.cache_evictions == s2.cache_evictions,
          "dry run counts the same positions and evictions");

    /* threads and seeds */
    rc = windowed_threads(g, &sp, 1, cond, gw, gh, b, &s1);
    rc |= windowed_threads(g, &sp, 2, cond, gw, gh, c, &s1);
    CHECK(rc == 0 && !memcmp(b, c, sizeof(b)) && !memcmp(a, b, sizeof(a)),
          "same seed: identical tokens with 1 and 2 threads");
    struct vq_sampler_params sp2 = sp;
    sp2.seed = 1235;
    rc = windowed(g, &sp2, 0, cond, gw, gh, b, &s1);
    int differ = 0;
    for (int k = 0; k < n; k++) differ += a[k] != b[k];
    CHECK(rc == 0 && differ > n / 4, "different seeds: different tokens (%d of %d cells differ)", differ, n);

    /* progress and cancel */
    struct progress_log log = { 0, 0, 0, 0, 1 };
    memset(&p, 0, sizeof(p));
    p.sampling = sp;
    p.progress = on_progress;
    p.progress_opaque = &log;
    rc = vq_window_sample(&state, g, &p, cond, gw, gh, b, &s1);
    CHECK(rc == 0 && log.monotone && log.calls == n && log.total == n, "progress: %lld calls, done 1..%d of %lld",
          (long long)log.calls, n, (long long)log.total);
    struct progress_log stop = { 0, 0, 0, 17, 1 };
    p.progress_opaque = &stop;
    rc = vq_window_sample(&state, g, &p, cond, gw, gh, b, &s1);
    CHECK(rc == VQGAN_ERR_CANCELLED && s1.positions_sampled == 17,
          "progress callback returning nonzero cancels (VQGAN_ERR_CANCELLED after 17 cells)");
    rc = vq_window_sample(&state, g, &p, cond, gw, gh, b, &s1);
    CHECK(rc == VQGAN_ERR_CANCELLED, "the state is usable again after a cancel");
    p.progress = NULL;
    rc = vq_window_sample(&state, g, &p, cond, gw, gh, b, &s1);
    CHECK(rc == 0 && !memcmp(a, b, sizeof(a)), "and gives the same tokens after it");

    /* errors */
    cond[37] = g->vocab;
    rc = windowed(g, &sp, 0, cond, gw, gh, b, &s1);
    CHECK(rc == VQGAN_ERR_INVALID, "a condition token outside the vocabulary is refused");
    cond[37] = -1;
    rc = windowed(g, &sp, 0, cond, gw, gh, b, &s1);
    CHECK(rc == VQGAN_ERR_INVALID, "a negative condition token is refused");
    cond[37] = 0;
    rc = windowed(g, &sp, 0, cond, 0, gh, b, &s1);
    CHECK(rc == VQGAN_ERR_INVALID, "an empty grid is refused");
    rc = windowed(g, &sp, 0, cond, VQGAN_MAX_GRID + 1, 1, b, &s1);
    CHECK(rc == VQGAN_ERR_LIMIT, "a grid wider than VQGAN_MAX_GRID is refused (VQGAN_ERR_LIMIT)");
    struct vq_sampler_params bad = sp;
    bad.temperature = 0;
    rc = windowed(g, &bad, 0, cond, gw, gh, b, &s1);
    CHECK(rc == VQGAN_ERR_INVALID, "temperature 0 is refused");
    r.g.block = 33;
    rc = windowed(g, &sp, 0, cond, gw, gh, b, &s1);
    CHECK(rc == VQGAN_ERR_UNSUPPORTED, "a block size that is not 2 w^2 has no window (VQGAN_ERR_UNSUPPORTED)");
    r.g.block = 32;
    r.g.n_unmasked = 17;
    rc = windowed(g, &sp, 0, cond, gw, gh, b, &s1);
    CHECK(rc == VQGAN_ERR_UNSUPPORTED, "n_unmasked beyond the condition tokens is refused");
    r.g.n_unmasked = 16;
    rc = windowed(g, &sp, 0, cond, gw, gh, b, &s1);
    CHECK(rc == 0, "n_unmasked = w*w (the condition tokens see each other) is accepted");
    r.g.n_unmasked = 0;
    rgpt_free(&r);
}

/* ---- class-conditional / unconditional sequence ------------------------------------- */

/* Eviction order on the paper's 1024x672 frame (42 x 64 tokens, w = 16): a
 * dry run of a small transformer with the same block, under caps that hold as
 * many placements as 2 GiB and 6 GiB (the default's ceiling) hold of the
 * S-FLCKR transformer's. The raster order revisits the 49 placements of the
 * top (and bottom) band once per row; under 2 GiB, evicting the least recently
 * used evicted each one just before its next visit (781 208 positions fed, 689
 * evictions); evicting the one visited last (Belady) keeps most of the band.
 * 6 GiB holds both bands: nothing is evicted. The batched order (window.c,
 * walk_wave), where the transformer's products can be shared, runs the band's
 * rows a few at a time and evicts less under 2 GiB. */
static void test_eviction_order(void)
{
    struct rgpt r;
    if (rgpt_init(&r, 16, 512, 1, 1, 8, 41)) { CHECK(0, "allocation"); return; }
    const struct vq_gpt *g = &r.g;
    const int gw = 64, gh = 42, n = gw * gh;
    int32_t *cond = malloc(sizeof(int32_t) * n), *out = malloc(sizeof(int32_t) * n);
    if (!cond || !out) { CHECK(0, "allocation"); free(cond); free(out); rgpt_free(&r); return; }
    random_tokens(cond, n, g->vocab, 9);
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = (struct vq_sampler_params){ 1.0f, 0, 1.0f, 1 };
    const struct vq_window_hooks dry = { .dry_run = 1, .no_batch = 1 }, dry_wave = { .dry_run = 1 };
    /* S-FLCKR bytes / (2 * 24 layers * 1024 wide * 4 bytes) positions */
    const double per_sflckr_byte = (double)vq_kv_cache_bytes(g, 1) / (2.0 * 24 * 1024 * 4);
    p.cache_bytes = (size_t)((double)(1u << 31) * per_sflckr_byte);
    struct vq_window_state *st = NULL;
    struct vqgan_sample_stats s_cap, s_all, s_6g, s_wave;
    int rc = vq_window_sample_hooked(&st, g, &p, &dry, cond, gw, gh, out, &s_cap);
    rc |= vq_window_sample_hooked(&st, g, &p, &dry_wave, cond, gw, gh, out, &s_wave);
    p.cache_bytes = (size_t)1 << 40;
    rc |= vq_window_sample_hooked(&st, g, &p, &dry, cond, gw, gh, out, &s_all);
    p.cache_bytes = (size_t)((double)VQGAN_DEFAULT_CACHE_BYTES * per_sflckr_byte);
    rc |= vq_window_sample_hooked(&st, g, &p, &dry, cond, gw, gh, out, &s_6g);
    vq_window_state_free(st);
    CHECK(rc == 0 && s_all.cache_evictions == 0 && s_all.transformer_tokens == 524293,
          "42x64 grid, no cap: %lld positions fed, no evictions", (long long)s_all.transformer_tokens);
    CHECK(rc == 0 && s_6g.cache_evictions == 0 && s_6g.transformer_tokens == 524293,
          "42x64 grid under the 6 GiB-equivalent cap: %lld positions fed, %lld evictions",
          (long long)s_6g.transformer_tokens, (long long)s_6g.cache_evictions);
    CHECK(rc == 0 && s_cap.transformer_tokens == 666853 && s_cap.cache_evictions == 372,
          "42x64 grid under the 2 GiB-equivalent cap: %lld positions fed, %lld evictions (least recently used: "
          "781208, 689)", (long long)s_cap.transformer_tokens, (long long)s_cap.cache_evictions);
    const int wave = vq_gpt_batchable(NULL, g);
    CHECK(rc == 0 && s_wave.transformer_tokens == (wave ? 650413 : 666853) &&
          s_wave.cache_evictions == (wave ? 327 : 372),
          "42x64 grid under the 2 GiB-equivalent cap, %s order: %lld positions fed, %lld evictions",
          wave ? "batched" : "raster", (long long)s_wave.transformer_tokens, (long long)s_wave.cache_evictions);
    free(cond);
    free(out);
    rgpt_free(&r);
}

/* cache_bytes = 0: VQGAN_DEFAULT_CACHE_BYTES (6 GiB), lowered to a quarter of
 * the RAM and of the process's memory limit (checked in a child process under
 * RLIMIT_DATA = 2 GiB). */
static void test_default_cap(void)
{
    const double ram = vq_physical_memory();
    double want = (double)VQGAN_DEFAULT_CACHE_BYTES;
    if (ram / 4 < want) want = ram / 4;
    const double lim = vq_process_memory_limit(NULL);
    if (lim > 0.0 && lim / 4 < want) want = lim / 4;
    CHECK(ram > 0.0 && vq_default_cache_bytes() == (size_t)want,
          "default cache cap %.2f GiB (RAM %.1f GiB, ceiling %.0f GiB)", (double)vq_default_cache_bytes() / (1u << 30),
          ram / (1u << 30), (double)VQGAN_DEFAULT_CACHE_BYTES / (1u << 30));
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = { (rlim_t)2 << 30, (rlim_t)2 << 30 };
        struct rlimit cur;
        if (getrlimit(RLIMIT_DATA, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && cur.rlim_max < rl.rlim_max)
            rl.rlim_cur = rl.rlim_max = cur.rlim_max;
        _exit(setrlimit(RLIMIT_DATA, &rl) == 0 && vq_default_cache_bytes() <= (size_t)rl.rlim_cur / 4 ? 0 : 1);
    }
    int status = -1;
    if (pid > 0) waitpid(pid, &status, 0);
    CHECK(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "under RLIMIT_DATA = 2 GiB the default cache cap is at most 512 MiB");
}

/* Each cell's logits hashed on their own (the order of the cells aside). */
struct cell_hashes {
    uint64_t *h;
    int gw;
};
static void cell_logits(void *opaque, int i, int j, const float *logits, int vocab)
{
    struct cell_hashes *c = opaque;
    uint64_t h = 14695981039346656037ull;
    const unsigned char *b = (const unsigned char *)logits;
    for (size_t k = 0; k < sizeof(float) * (size_t)vocab; k++) h = (h ^ b[k]) * 1099511628211ull;
    if (j < c->gw) c->h[(size_t)i * c->gw + j] = h;
}

/* Samples the gh x gw grid under p in the batched order and in raster order
 * (a state each: temporal frames follow on), comparing tokens and every
 * cell's logits bit for bit: 1 when the same. */
static struct vq_window_state *st_wave, *st_raster;
static int same_unbatched(const struct vq_gpt *g, struct vq_window_params p, const int32_t *cond, int gw, int gh)
{
    const size_t n = (size_t)gw * gh;
    int32_t *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n);
    struct cell_hashes ha = { calloc(n, sizeof(uint64_t)), gw }, hb = { calloc(n, sizeof(uint64_t)), gw };
    struct vq_window_hooks h = { .on_logits = cell_logits, .on_logits_opaque = &ha };
    int rc = !a || !b || !ha.h || !hb.h || vq_window_sample_hooked(&st_wave, g, &p, &h, cond, gw, gh, a, NULL);
    h.on_logits_opaque = &hb;
    h.no_batch = 1;
    rc = rc || vq_window_sample_hooked(&st_raster, g, &p, &h, cond, gw, gh, b, NULL);
    const int same = !rc && !memcmp(a, b, sizeof(int32_t) * n) && !memcmp(ha.h, hb.h, sizeof(uint64_t) * n);
    free(a); free(b); free(ha.h); free(hb.h);
    return same;
}

/* The products of precision precs[pi] packed into g: 1, or 0 (a skip line
 * printed) where this CPU / build has none. */
static const int precs[3] = { VQ_PREC_FP32, VQ_PREC_BF16, VQ_PREC_INT8 };
static const char *const prec_names[3] = { "fp32", "bf16", "int8" };
static int pack_precision(struct vq_gpt *g, int pi, const char *what)
{
    const struct vq_backend *be = vq_backend_get(VQ_BACKEND_DNNL, precs[pi]);
    if (!be) be = pi ? NULL : vq_backend_default();
    if (!be || vq_gpt_pack(g, be)) {
        printf("ok - %s, %s: not on this CPU / build (skipped)\n", what, prec_names[pi]);
        return 0;
    }
    return 1;
}

/* The batched order (window.c, walk_wave: small feeds of several rows in one
 * forward) gives the raster order's tokens and logits bit for bit: fp32,
 * bf16 and int8 products where the CPU has them, seeded and greedy, in fast
 * mode, under a tight cache cap, with completion, over temporal frames. */
static void test_batched_order(void)
{
    const char *const *names = prec_names;
    struct rgpt r;
    if (rgpt_init(&r, 64, 512, 2, 2, 128, 91)) { CHECK(0, "allocation"); return; }
    struct vq_gpt *g = &r.g;
    const int gw = 37, gh = 23, n = gw * gh;
    int32_t *cond = malloc(sizeof(int32_t) * n), *given = malloc(sizeof(int32_t) * n);
    uint8_t *mask = malloc((size_t)n);
    random_tokens(cond, n, g->vocab, 5);
    random_tokens(given, n, g->vocab, 6);
    for (int k = 0; k < n; k++) mask[k] = (k * 7) % 11 != 0;
    for (int pi = 0; pi < 3; pi++) {
        if (!pack_precision(g, pi, "batched order")) continue;
        if (!vq_gpt_batchable(NULL, g)) {
            printf("ok - batched order, %s: products not batchable here (skipped)\n", names[pi]);
            vq_gpt_unpack(g);
            continue;
        }
        struct vq_window_params p;
        memset(&p, 0, sizeof(p));
        p.sampling = (struct vq_sampler_params){ 1.0f, 0, 1.0f, 17 };
        int ok = same_unbatched(g, p, cond, gw, gh);
        p.sampling = (struct vq_sampler_params){ 1.0f, 1, 1.0f, 0 };
        ok = ok && same_unbatched(g, p, cond, gw, gh);
        p.sampling = (struct vq_sampler_params){ 1.0f, 0, 1.0f, 3 };
        p.fast_step = 3;
        ok = ok && same_unbatched(g, p, cond, gw, gh);
        p.fast_step = 0;
        p.cache_bytes = 3 * vq_kv_cache_bytes(g, g->block);
        ok = ok && same_unbatched(g, p, cond, gw, gh);
        p.cache_bytes = 0;
        p.given = given;
        p.mask = mask;
        ok = ok && same_unbatched(g, p, cond, gw, gh);
        p.given = NULL;
        p.mask = NULL;
        p.temporal = VQGAN_TEMPORAL_REUSE;
        ok = ok && same_unbatched(g, p, cond, gw, gh);
        cond[5 * gw + 20] = (cond[5 * gw + 20] + 1) % g->vocab;   /* a changed cell: part reused */
        ok = ok && same_unbatched(g, p, cond, gw, gh);
        vq_window_state_free(st_wave);
        vq_window_state_free(st_raster);
        st_wave = st_raster = NULL;
        CHECK(ok, "batched order, %s: tokens and every logit as in raster order (seeded, greedy, fast, tight "
              "cap, completion, temporal reuse)", names[pi]);
        vq_gpt_unpack(g);
    }
    free(cond); free(given); free(mask);
    rgpt_free(&r);
}

/* vq_gpt_forward_batch of large sequences (VQ_ROWS_INDEPENDENT_FROM rows or
 * more each, products whose rows are independent): every sequence's logits
 * and cache bit for bit as its own forward; a batch mixing a large and a
 * small sequence is refused. */
static void test_large_batch(void)
{
    const char *const *names = prec_names;
    static const int rows[3] = { VQ_ROWS_INDEPENDENT_FROM, 130, 201 };
    struct rgpt r;
    if (rgpt_init(&r, 64, 512, 2, 2, 128, 93)) { CHECK(0, "allocation"); return; }
    struct vq_gpt *g = &r.g;
    int32_t toks[3][512];
    for (int k = 0; k < 3; k++) random_tokens(toks[k], 512, g->vocab, 40 + k);
    for (int pi = 0; pi < 3; pi++) {
        if (!pack_precision(g, pi, "large batch")) continue;
        if (!vq_gpt_batchable(NULL, g) || !vq_gpt_rows_independent(NULL, g)) {
            printf("ok - large batch, %s: products not batchable or rows not independent here (skipped)\n", names[pi]);
            vq_gpt_unpack(g);
            continue;
        }
        struct vq_kv_cache a[3] = { { 0 } }, b[3] = { { 0 } };   /* freed below even if not all made */
        float *la = malloc(sizeof(float) * 3 * g->vocab), *lb = malloc(sizeof(float) * 3 * g->vocab);
        int rc = !la || !lb, ok = 1;
        for (int k = 0; k < 3 && !rc; k++) {
            rc |= vq_kv_cache_init(&a[k], g, 512) || vq_kv_cache_init(&b[k], g, 512);
            rc |= vq_gpt_forward(NULL, g, &a[k], toks[k], 100 + 20 * k, 100 + 20 * k, NULL);
            rc |= vq_gpt_forward(NULL, g, &b[k], toks[k], 100 + 20 * k, 100 + 20 * k, NULL);
        }
        struct vq_gpt_seq seq[3];
        for (int k = 0; k < 3 && !rc; k++) {
            const int L0 = a[k].len;
            rc |= vq_gpt_forward(NULL, g, &a[k], toks[k] + L0, rows[k], rows[k] - 1, la + (size_t)k * g->vocab);
            seq[k] = (struct vq_gpt_seq){ &b[k], toks[k] + L0, rows[k], rows[k] - 1, lb + (size_t)k * g->vocab };
        }
        rc = rc || vq_gpt_forward_batch(NULL, g, seq, 3);
        ok = !rc && !memcmp(la, lb, sizeof(float) * 3 * g->vocab);
        /* the caches through one more position's logits */
        for (int k = 0; k < 3 && ok; k++) {
            const int L = a[k].len;
            ok = L == b[k].len && !vq_gpt_forward(NULL, g, &a[k], toks[k] + L, 1, 0, la) &&
                 !vq_gpt_forward(NULL, g, &b[k], toks[k] + L, 1, 0, lb) &&
                 !memcmp(la, lb, sizeof(float) * g->vocab);
        }
        CHECK(ok, "large batch, %s: sequences of %d, %d and %d rows together, each one's logits and cache bit for bit "
              "as its own forward", names[pi], rows[0], rows[1], rows[2]);
        /* a large and a small sequence: refused */
        seq[0].n = 2;
        seq[0].first_row = 1;
        CHECK(!rc && vq_gpt_forward_batch(NULL, g, seq, 2) == VQGAN_ERR_INVALID,
              "large batch, %s: a sequence of 2 rows with one of %d refused (%s)", names[pi], rows[1],
              vqgan_last_error());
        for (int k = 0; k < 3; k++) {
            vq_kv_cache_free(&a[k]);
            vq_kv_cache_free(&b[k]);
        }
        free(la); free(lb);
        vq_gpt_unpack(g);
    }
    rgpt_free(&r);
}

/* Samples the gh x gw grid under p with and without prefix sharing, hashing
 * every cell's logits (sharing lets large feeds of several rows go together,
 * so the cells come in another order): 1 when both calls succeed with the
 * same tokens and logits. */
static int same_unshared(const struct vq_gpt *g, struct vq_window_params p, const int32_t *cond, int gw, int gh,
                         struct vqgan_sample_stats *on, struct vqgan_sample_stats *off)
{
    const size_t n = (size_t)gw * gh;
    int32_t *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n);
    struct cell_hashes h_on = { calloc(n, sizeof(uint64_t)), gw }, h_off = { calloc(n, sizeof(uint64_t)), gw };
    struct vq_window_hooks h = { .on_logits = cell_logits, .on_logits_opaque = &h_on, .no_share = 0 };
    int rc = !a || !b || !h_on.h || !h_off.h || vq_window_sample_hooked(&state, g, &p, &h, cond, gw, gh, a, on);
    h.on_logits_opaque = &h_off;
    h.no_share = 1;
    rc = rc || vq_window_sample_hooked(&state, g, &p, &h, cond, gw, gh, b, off);
    const int same = !rc && !memcmp(a, b, sizeof(int32_t) * n) && !memcmp(h_on.h, h_off.h, sizeof(uint64_t) * n);
    free(a); free(b); free(h_on.h); free(h_off.h);
    return same;
}

/* Condition prefixes shared between placements (docs/sampling.md): on a grid
 * whose condition has uniform bands (a sky above, a uniform strip on the
 * left), sharing copies many condition positions, and every logit is that of
 * the same call without sharing: greedy and seeded, fp32 and (where the CPU
 * has it) bf16, under a tight cache cap, in fast mode, in temporal reuse,
 * under the reference and OpenBLAS backends, with unmasked leading positions. */
static void test_prefix_sharing(void)
{
    struct rgpt r;
    if (rgpt_init(&r, 40, 512, 2, 2, 64, 77)) { CHECK(0, "allocation"); return; }
    struct vq_gpt *g = &r.g;
    const int gw = 30, gh = 22, n = gw * gh;
    int32_t *cond = malloc(sizeof(int32_t) * n), *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n);
    random_tokens(cond, n, g->vocab, 3);
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++)
            if (i < 9 || (j < 3 && i < 15)) cond[i * gw + j] = i < 9 ? 7 : 11;
    if (!vq_gpt_rows_independent(NULL, g)) {
        printf("ok - prefix sharing: off with this backend / CPU (rows not independent) (skipped)\n");
        free(cond); free(a); free(b); rgpt_free(&r);
        return;
    }
    const struct vq_sampler_params modes[] = { { 1.0f, 1, 1.0f, 0 }, { 1.0f, 0, 0.95f, 99 } };
    struct vqgan_sample_stats s_on, s_off;
    for (int bf = 0; bf < 2; bf++) {
        const struct vq_backend *bf16 = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16);
        if (bf && (!bf16 || vq_gpt_pack(g, bf16))) {
            printf("ok - prefix sharing, bf16: no native bf16 (skipped)\n");
            break;
        }
        for (int m = 0; m < 4; m++) {
            struct vq_window_params p;
            memset(&p, 0, sizeof(p));
            p.sampling = modes[m % 2];
            p.cache_bytes = m == 2 ? 2 * vq_kv_cache_bytes(g, g->block) : 0;
            p.fast_step = m == 3 ? 2 : 0;
            struct vqgan_sample_stats s_dry;
            const int same = same_unshared(g, p, cond, gw, gh, &s_on, &s_off);
            const struct vq_window_hooks dry = { .dry_run = 1 };
            const int rc = vq_window_sample_hooked(&state, g, &p, &dry, cond, gw, gh, b, &s_dry);
            static const char *what[] = { "greedy", "top-p 0.95 seeded", "greedy, cap of 2 windows",
                                          "top-p 0.95, fast step 2" };
            /* under a cap the orders differ (sharing lets large feeds of
             * several rows go together), and so do the evictions */
            CHECK(rc == 0 && same && s_on.positions_shared > 0 &&
                  (m == 2 || s_on.transformer_tokens + s_on.positions_shared == s_off.transformer_tokens) &&
                  s_dry.transformer_tokens == s_on.transformer_tokens && s_off.positions_shared == 0,
                  "prefix sharing, %s, %s: tokens and every logit bit-identical to no sharing; %lld of %lld positions "
                  "shared (dry run %lld fed)", bf ? "bf16" : "fp32", what[m], (long long)s_on.positions_shared,
                  (long long)s_off.transformer_tokens, (long long)s_dry.transformer_tokens);
        }
        /* temporal reuse: a second frame with part of the condition changed,
         * sampled on the first frame's caches, against from scratch unshared */
        int32_t *c2 = malloc(sizeof(int32_t) * n);
        memcpy(c2, cond, sizeof(int32_t) * n);
        for (int i = 19; i < gh; i++)
            for (int j = 22; j < gw; j++) c2[i * gw + j] = (c2[i * gw + j] + 1) % g->vocab;
        struct vq_window_state *ts = NULL;
        struct vq_window_params p;
        memset(&p, 0, sizeof(p));
        p.sampling = modes[1];
        p.temporal = VQGAN_TEMPORAL_REUSE;
        struct vqgan_sample_stats s1, s2, s3;
        int rc = vq_window_sample(&ts, g, &p, cond, gw, gh, a, &s1);
        rc |= vq_window_sample(&ts, g, &p, c2, gw, gh, a, &s2);
        vq_window_state_free(ts);
        memset(&p, 0, sizeof(p));
        p.sampling = modes[1];
        const struct vq_window_hooks unshared = { .no_share = 1 };
        rc |= vq_window_sample_hooked(&state, g, &p, &unshared, c2, gw, gh, b, &s3);
        CHECK(rc == 0 && !memcmp(a, b, sizeof(int32_t) * n) && s2.positions_reused > 0 && s2.positions_shared > 0,
              "prefix sharing, %s, temporal reuse: second frame identical to from scratch without sharing (%lld cells "
              "reused, %lld positions shared)", bf ? "bf16" : "fp32", (long long)s2.positions_reused,
              (long long)s2.positions_shared);
        free(c2);
        if (bf) vq_gpt_unpack(g);
    }
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = modes[0];
    /* the portable reference backend (scalar products and attention), and
     * OpenBLAS where its products pass the row probe, on the top-left 18 x 20
     * of the grid */
    for (int kind = VQ_BACKEND_REF; kind <= VQ_BACKEND_BLAS; kind++) {
        if (!vq_backend_get(kind, VQ_PREC_FP32)) continue;
        g->be = vq_backend_get(kind, VQ_PREC_FP32);
        const int gw2 = 20, gh2 = 18, on = vq_gpt_rows_independent(NULL, g);
        int32_t *c2 = malloc(sizeof(int32_t) * gw2 * gh2);
        for (int i = 0; i < gh2; i++)
            memcpy(c2 + i * gw2, cond + i * gw, sizeof(int32_t) * gw2);
        const int same = same_unshared(g, p, c2, gw2, gh2, &s_on, &s_off);
        g->be = NULL;
        CHECK(same && (on ? s_on.positions_shared > 0 : s_on.positions_shared == 0) && (on || kind != VQ_BACKEND_REF),
              "prefix sharing, %s backend: every logit bit-identical to no sharing; %lld positions shared%s",
              vq_backend_name(kind), (long long)s_on.positions_shared, on ? "" : " (rows not independent: off)");
        free(c2);
    }
    /* a model whose first 100 positions see each other: only prefixes of at
     * least 100 positions can be shared */
    struct rgpt u;
    if (rgpt_init_unmasked(&u, 40, 512, 2, 2, 64, 100, 78)) {
        CHECK(0, "allocation");
    } else {
        const int same = same_unshared(&u.g, p, cond, gw, gh, &s_on, &s_off);
        CHECK(same && s_on.positions_shared > 0 &&
              s_on.transformer_tokens + s_on.positions_shared == s_off.transformer_tokens,
              "prefix sharing, first 100 positions unmasked: every logit bit-identical to no sharing; %lld positions "
              "shared", (long long)s_on.positions_shared);
    }
    rgpt_free(&u);
    free(cond); free(a); free(b);
    rgpt_free(&r);
}

static void test_sequence(void)
{
    struct rgpt r;
    if (rgpt_init(&r, 30, 26, 2, 4, 32, 31)) { CHECK(0, "allocation"); return; }
    const struct vq_gpt *g = &r.g;
    const struct vq_sampler_params modes[] = { { 1.0f, 1, 1.0f, 0 }, { 0.9f, 6, 1.0f, 3 } };
    /* up to the whole block: the last token is predicted, never fed */
    static const int shapes[][2] = { { 5, 5 }, { 3, 7 }, { 1, 1 }, { 1, 25 }, { 2, 13 } };
    for (int s = 0; s < 5; s++)
        for (int m = 0; m < 2; m++) {
            const int gh = shapes[s][0], gw = shapes[s][1], n = gw * gh;
            struct vq_window_params p;
            memset(&p, 0, sizeof(p));
            p.sampling = modes[m];
            int32_t got[26], want[26], seq[27];
            struct vqgan_sample_stats st;
            int rc = vq_sequence_sample(g, &p, 7, VQ_STREAM_CLASS(7), gw, gh, got, &st);
            /* oracle: the whole sequence through the transformer per token */
            struct vq_sampler smp;
            float *logits = malloc(sizeof(float) * 26 * g->vocab);
            rc |= vq_sampler_init(&smp, &modes[m], g->vocab);
            seq[0] = 7;
            for (int k = 0; !rc && k < n; k++) {
                rc = vq_gpt_logits_all(NULL, g, seq, k + 1, logits);
                const struct vq_draw_key key = { VQ_STREAM_CLASS(7), k / gw, k % gw };
                want[k] = seq[k + 1] = vq_sample_token(&smp, logits + (size_t)k * g->vocab, key);
            }
            vq_sampler_free(&smp);
            free(logits);
            CHECK(rc == 0 && !memcmp(got, want, sizeof(int32_t) * n) && st.transformer_tokens == n &&
                  st.positions_sampled == n,
                  "class-conditional %dx%d, %s: cached sampling equals full forwards, %d positions fed", gh, gw,
                  m ? "top-k 6 seeded" : "greedy", n);
        }
    struct vq_window_params p;
    memset(&p, 0, sizeof(p));
    p.sampling = modes[0];
    int32_t out[36];
    int rc = vq_sequence_sample(g, &p, 7, VQ_STREAM_SOS, 6, 5, out, NULL);
    CHECK(rc == VQGAN_ERR_LIMIT, "30 tokens with block 26 are refused (VQGAN_ERR_LIMIT)");
    rc = vq_sequence_sample(g, &p, 30, VQ_STREAM_SOS, 2, 2, out, NULL);
    CHECK(rc == VQGAN_ERR_INVALID, "a start token outside the vocabulary is refused");
    rgpt_free(&r);
}

/* ---- golden cases through the public API ---------------------------------------------- */

static void test_golden_conditional(void)
{
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    struct npy ci, want;
    int rc = vqgan_model_load(model_path("conditional"), NULL, &m);
    CHECK(rc == 0, "load %s", model_path("conditional"));
    if (rc) return;
    if (npy_load(golden_path("conditional/cond_indices.npy"), &ci) ||
        npy_load(golden_path("conditional/indices.npy"), &want)) {
        CHECK(0, "read golden conditional/cond_indices.npy, indices.npy");
        vqgan_model_unref(m);
        return;
    }
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 1;
    rc = vqgan_session_new(m, &sp, &s);
    const int gh = (int)ci.shape[1], gw = (int)ci.shape[2], n = gw * gh;
    int32_t *cond = malloc(sizeof(int32_t) * n), *tok = malloc(sizeof(int32_t) * n);
    for (int k = 0; k < n; k++) cond[k] = (int32_t)((const int64_t *)ci.data)[k];
    if (!rc) rc = vqgan_sample_conditional(s, cond, gw, gh, tok);
    int same = 0;
    for (int k = 0; k < n; k++) same += tok[k] == ((const int64_t *)want.data)[k];
    struct vqgan_sample_stats st;
    vqgan_session_get_stats(s, &st);
    CHECK(rc == 0 && same == n, "golden conditional %dx%d, greedy: %d of %d tokens identical to indices.npy "
          "(%lld positions fed, the reference's loop %d)", gh, gw, same, n, (long long)st.transformer_tokens,
          n * 31);
    CHECK(rc == 0 && st.positions_sampled == n && st.seconds >= 0, "stats: %lld cells sampled in %.3f s",
          (long long)st.positions_sampled, st.seconds);

    /* the public call's argument checks */
    cond[5] = m->gpt.vocab;
    rc = vqgan_sample_conditional(s, cond, gw, gh, tok);
    CHECK(rc == VQGAN_ERR_INVALID && strstr(vqgan_last_error(), "condition token"),
          "public call: condition token outside the vocabulary refused (\"%s\")", vqgan_last_error());
    cond[5] = 0;
    rc = vqgan_sample_conditional(s, cond, gw, VQGAN_MAX_GRID + 1, tok);
    CHECK(rc == VQGAN_ERR_LIMIT, "public call: grid taller than VQGAN_MAX_GRID refused");
    rc = vqgan_sample_unconditional(s, 0, 2, 2, tok);
    CHECK(rc == VQGAN_ERR_UNSUPPORTED, "vqgan_sample_unconditional on a segmentation model is refused");
    free(cond); free(tok);
    npy_free(&ci);
    npy_free(&want);
    vqgan_session_free(s);
    vqgan_model_unref(m);
}

static void test_golden_classcond(void)
{
    struct vqgan_model *m = NULL;
    struct vqgan_session *s = NULL;
    struct npy cid, want;
    int rc = vqgan_model_load(model_path("classcond"), NULL, &m);
    CHECK(rc == 0, "load %s", model_path("classcond"));
    if (rc) return;
    if (npy_load(golden_path("classcond/class_id.npy"), &cid) || npy_load(golden_path("classcond/indices.npy"), &want)) {
        CHECK(0, "read golden classcond/class_id.npy, indices.npy");
        vqgan_model_unref(m);
        return;
    }
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.top_k = 1;
    rc = vqgan_session_new(m, &sp, &s);
    const int gh = (int)want.shape[1], gw = (int)want.shape[2], n = gw * gh;
    const int cls = (int)((const int64_t *)cid.data)[0];
    int32_t tok[64];
    if (!rc) rc = vqgan_sample_unconditional(s, cls, gw, gh, tok);
    int same = 0;
    for (int k = 0; k < n; k++) same += tok[k] == ((const int64_t *)want.data)[k];
    struct vqgan_sample_stats st;
    vqgan_session_get_stats(s, &st);
    CHECK(rc == 0 && same == n && st.transformer_tokens == n,
          "golden classcond, class %d, %dx%d greedy: %d of %d tokens identical to indices.npy", cls, gh, gw, same, n);
    rc = vqgan_sample_unconditional(s, m->info.n_classes, gw, gh, tok);
    CHECK(rc == VQGAN_ERR_INVALID, "class id %d (n_classes %d) is refused", m->info.n_classes, m->info.n_classes);
    rc = vqgan_sample_unconditional(s, cls, 5, 4, tok);
    vqgan_session_get_stats(s, &st);
    CHECK(rc == 0 && st.positions_sampled == 20 && st.transformer_tokens > 20,
          "a 5x4 grid with block 17 slides the 4x4 window (%lld positions fed for 20 cells; test_complete "
          "checks the tokens)", (long long)st.transformer_tokens);
    rc = vqgan_sample_conditional(s, tok, gw, gh, tok);
    CHECK(rc == VQGAN_ERR_UNSUPPORTED, "vqgan_sample_conditional on a class-conditional model is refused");
    npy_free(&cid);
    npy_free(&want);
    vqgan_session_free(s);
    vqgan_model_unref(m);
}

static void drop(void *o, int l, const char *msg) { (void)o; (void)l; (void)msg; }

static const struct test_case cases[] = {
    { "schedule", test_schedule, 0 },
    { "oracle", test_oracle, 0 },
    { "cache_and_determinism", test_cache_and_determinism, 0 },
    { "eviction_order", test_eviction_order, 0 },
    { "default_cap", test_default_cap, 0 },
    { "prefix_sharing", test_prefix_sharing, 0 },
    { "batched_order", test_batched_order, 0 },
    { "large_batch", test_large_batch, 0 },
    { "sequence", test_sequence, 0 },
    { "golden_conditional", test_golden_conditional, 1 },
    { "golden_classcond", test_golden_classcond, 1 },
};

int main(int argc, char **argv)
{
    vqgan_set_log_callback(drop, NULL);
    const int r = TEST_RUN_CASES(argc, argv, cases);
    vq_window_state_free(state);
    return r;
}
