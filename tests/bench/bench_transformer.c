/* The windowed, cached sampler against the reference's naive loop on the
 * released S-FLCKR transformer's shape (24 layers, width 1024, 16 heads,
 * vocabulary 1024, block 512 = 2·16·16) with random weights, on 16x32,
 * 32x32 and 42x64 token grids (rows x columns; 42x64 is the paper's 1024x672
 * frame), in fp32 and, where the CPU has native bf16, in bf16.
 *
 * Positions pushed through the transformer are counted exactly (a dry run of
 * the sampler's schedule, caches and default cap included). Seconds per
 * frame are, by default, extrapolated from timed subsets:
 *  - naive: one full-window forward (511 positions) is timed, times the cells;
 *  - windowed: the dry run lists every transformer call (cache length, new
 *    positions); the calls are grouped by the number of new positions, one
 *    call per group is timed at the group's median cache length (the mean of
 *    up to 5 spread ones for chunks of <= 32 positions), and each group's
 *    time is multiplied by its size.
 * --full additionally runs the windowed sampler for real on the first two
 * grids and reports the measured time (16x32 takes minutes here, 32x32 much
 * longer). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "bench_common.h"
#include "gpt.h"
#include "memlimit.h"
#include "model.h"
#include "window.h"
#include "window_test.h"

/* ---- random weights ---------------------------------------------------------------- */

static uint64_t rng_state = 1;
static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float *take(float **p, size_t n, float scale, float offset)
{
    float *a = *p;
    for (size_t i = 0; i < n; i++)
        a[i] = offset + scale * frand();
    *p += n;
    return a;
}

static int make_gpt(struct vq_gpt *g, float **mem, int vocab, int block, int n_layer, int n_head, int D)
{
    const size_t per_layer = 4 * (size_t)D + 4 * ((size_t)D * D + D) + 8 * (size_t)D * D + 5 * (size_t)D;
    const size_t total = 2 * (size_t)vocab * D + (size_t)block * D + n_layer * per_layer + 2 * (size_t)D;
    memset(g, 0, sizeof(*g));
    *mem = malloc(sizeof(float) * total);
    g->blocks = calloc((size_t)n_layer, sizeof(*g->blocks));
    if (!*mem || !g->blocks) return -1;
    float *p = *mem;
    const float a = 1.7f / sqrtf((float)D), a4 = 1.7f / sqrtf(4.0f * D);
    g->present = 1;
    g->vocab = vocab; g->block = block; g->n_layer = n_layer; g->n_head = n_head; g->n_embd = D;
    g->tok_emb = take(&p, (size_t)vocab * D, 1.0f, 0.0f);
    g->pos_emb = take(&p, (size_t)block * D, 0.5f, 0.0f);
    for (int l = 0; l < n_layer; l++) {
        struct vq_gpt_block *b = &g->blocks[l];
        b->ln1_w = take(&p, D, 0.2f, 1.0f); b->ln1_b = take(&p, D, 0.1f, 0.0f);
        b->ln2_w = take(&p, D, 0.2f, 1.0f); b->ln2_b = take(&p, D, 0.1f, 0.0f);
        b->q_w = take(&p, (size_t)D * D, a, 0.0f); b->q_b = take(&p, D, 0.1f, 0.0f);
        b->k_w = take(&p, (size_t)D * D, a, 0.0f); b->k_b = take(&p, D, 0.1f, 0.0f);
        b->v_w = take(&p, (size_t)D * D, a, 0.0f); b->v_b = take(&p, D, 0.1f, 0.0f);
        b->proj_w = take(&p, (size_t)D * D, a, 0.0f); b->proj_b = take(&p, D, 0.1f, 0.0f);
        b->fc_w = take(&p, 4 * (size_t)D * D, a, 0.0f); b->fc_b = take(&p, 4 * (size_t)D, 0.1f, 0.0f);
        b->fc2_w = take(&p, 4 * (size_t)D * D, a4, 0.0f); b->fc2_b = take(&p, D, 0.1f, 0.0f);
    }
    g->lnf_w = take(&p, D, 0.2f, 1.0f);
    g->lnf_b = take(&p, D, 0.1f, 0.0f);
    g->head_w = take(&p, (size_t)vocab * D, 3.0f / sqrtf((float)D), 0.0f);
    return 0;
}

/* ---- the dry run's list of transformer calls ---------------------------------------- */

struct call { int len, n; };
struct calls { struct call *c; size_t count, cap; };

static void on_call(void *opaque, int r0, int c0, int len, int n)
{
    struct calls *cs = opaque;
    (void)r0; (void)c0;
    if (cs->count == cs->cap) {
        cs->cap = cs->cap ? 2 * cs->cap : 1024;
        cs->c = realloc(cs->c, sizeof(*cs->c) * cs->cap);
    }
    cs->c[cs->count].len = len;
    cs->c[cs->count].n = n;
    cs->count++;
}

static int by_n_len(const void *pa, const void *pb)
{
    const struct call *a = pa, *b = pb;
    if (a->n != b->n) return a->n - b->n;
    return a->len - b->len;
}

/* Seconds of one forward of n new positions on a cache already holding len. */
static double time_forward(const struct vq_gpt *g, struct vq_kv_cache *c, int len, int n, int32_t *tok,
                           float *logits)
{
    c->len = len;
    double t0 = now_s();
    if (vq_gpt_forward(NULL, g, c, tok, n, n - 1, logits)) {
        fprintf(stderr, "forward failed\n");
        exit(1);
    }
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    int full = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int k = 1; k < argc; k++)
        if (!strcmp(argv[k], "--full")) full = 1;

    const int vocab = 1024, block = 512, n_layer = 24, n_head = 16, D = 1024;
    struct vq_gpt g;
    float *mem;
    double t0 = now_s();
    if (make_gpt(&g, &mem, vocab, block, n_layer, n_head, D)) {
        fprintf(stderr, "out of memory for the weights\n");
        return 1;
    }
    const int w = vq_window_side(block), T = 2 * w * w - 1;
    printf("transformer: %d layers, width %d, %d heads, vocabulary %d, block %d (window %dx%d), random weights "
           "(%.1f s to make)\n", n_layer, D, n_head, vocab, block, w, w, now_s() - t0);
    printf("backend %s, %d threads; best sgemm %.0f GFLOPS\n", vq_backend_default()->name,
           vq_threads_available(), bench_peak_gflops(0));

    struct vq_kv_cache cache;
    int32_t *tok = malloc(sizeof(int32_t) * block);
    float *logits = malloc(sizeof(float) * vocab);
    for (int i = 0; i < block; i++) tok[i] = (int32_t)(i * 37 % vocab);

    for (int prec = 0; prec < 2; prec++) {
    if (prec) {
        const struct vq_backend *bf16 = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16);
        if (!bf16) break;
        if (vq_gpt_pack(&g, bf16)) return 1;
        vq_kv_cache_free(&cache);
    }
    /* the cache in this precision's layout, every slot holding a value */
    if (vq_kv_cache_init(&cache, &g, block)) return 1;
    for (size_t i = 0; i < vq_kv_cache_bytes(&g, block) / sizeof(uint16_t); i++)
        ((uint16_t *)cache.kv)[i] = (uint16_t)(0x3e00 + (int)((frand() + 1.0f) * 127.0f));   /* 0.125 .. 0.25 */
    printf("== %s\n", prec ? "bf16 (weights repacked once, fp32 accumulation)" : "fp32");
    /* the naive loop: one forward of the whole window (2w^2 - 1 positions) per cell */
    time_forward(&g, &cache, 0, T, tok, logits); /* warm-up */
    double t_naive = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        double t = time_forward(&g, &cache, 0, T, tok, logits);
        if (t < t_naive) t_naive = t;
    }
    printf("naive loop: one %d-position forward takes %.2f s (best of 2)\n\n", T, t_naive);

    static const int grids[][2] = { { 16, 32 }, { 32, 32 }, { 42, 64 } };
    for (int gi = 0; gi < 3; gi++) {
        const int gh = grids[gi][0], gw = grids[gi][1], cells = gw * gh;
        int32_t *cond = malloc(sizeof(int32_t) * cells), *out = malloc(sizeof(int32_t) * cells);
        for (int k = 0; k < cells; k++) cond[k] = (int32_t)((k * 7919) % vocab);

        struct calls cs = { 0 };
        struct vq_window_params p;
        memset(&p, 0, sizeof(p));
        p.sampling.temperature = 1.0f;
        p.sampling.top_k = 100;
        p.sampling.top_p = 1.0f;
        p.sampling.seed = 1;
        const struct vq_window_hooks dry = { .dry_run = 1, .trace = on_call, .trace_opaque = &cs };
        struct vq_window_state *state = NULL;
        struct vqgan_sample_stats st;
        if (vq_window_sample_hooked(&state, &g, &p, &dry, cond, gw, gh, out, &st)) return 1;
        const int64_t naive_pos = (int64_t)cells * T;

        /* windowed time: one timed call per chunk size, at its median cache length */
        qsort(cs.c, cs.count, sizeof(*cs.c), by_n_len);
        double est = 0;
        int groups = 0;
        printf("%dx%d grid (rows x columns), %d cells\n", gh, gw, cells);
        printf("  transformer calls x new positions (seconds per call): ");
        for (size_t a = 0; a < cs.count;) {
            size_t b = a;
            while (b < cs.count && cs.c[b].n == cs.c[a].n) b++;
            /* small chunks are cheap and many: average over up to 5 spread cache lengths */
            const size_t k = cs.c[a].n <= 32 ? (b - a < 5 ? b - a : 5) : 1;
            double t = 0;
            for (size_t s = 0; s < k; s++) {
                const struct call c = cs.c[a + (2 * s + 1) * (b - a) / (2 * k)];
                t += time_forward(&g, &cache, c.len, c.n, tok, logits) / (double)k;
            }
            est += t * (double)(b - a);
            printf("%s%zu x %d (%.2f s)", groups ? ", " : "", b - a, cs.c[a].n, t);
            groups++;
            a = b;
        }
        printf("\n");
        printf("  positions through the transformer: windowed %lld in %zu calls, naive %lld in %d calls "
               "(%.1fx fewer positions); cache evictions %lld (cap %zu MiB)\n",
               (long long)st.transformer_tokens, cs.count, (long long)naive_pos, cells,
               (double)naive_pos / st.transformer_tokens, (long long)st.cache_evictions,
               vq_default_cache_bytes() >> 20);
        printf("  seconds per frame: windowed %.1f (extrapolated: %d chunk sizes timed), "
               "naive %.1f (extrapolated: one forward x %d cells), %.1fx faster\n",
               est, groups, t_naive * cells, cells, t_naive * cells / est);
        if (full && gi < 2) {
            if (vq_window_sample(&state, &g, &p, cond, gw, gh, out, &st)) return 1;
            printf("  --full: windowed sampler measured %.1f s for the frame (%lld positions, %lld evictions)\n",
                   st.seconds, (long long)st.transformer_tokens, (long long)st.cache_evictions);
        }
        printf("\n");
        vq_window_state_free(state);
        free(cs.c);
        free(cond);
        free(out);
    }
    }
    vq_gpt_unpack(&g);
    vq_kv_cache_free(&cache);
    free(tok);
    free(logits);
    free(mem);
    free(g.blocks);
    return 0;
}
