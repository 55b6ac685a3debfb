/* The speed benchmark (issue 6): the machine's limits, each stage's rate
 * against them, and whole frames against the reference's algorithm on the
 * same weights.
 *
 *   build/tests/bench_speed [--quick | --stages | --full | --full-only]   (make bench: no flag)
 *
 * Model: $VQ_BENCH_MODEL (default build/sflckr-random.gguf: the released
 * S-FLCKR shapes, random weights). Reference timings: $VQ_REFERENCE_TIMING
 * (default build/reference-timing.json, written by tools/reference_timing.py
 * on the same weights). Whole frames: 256x512 and 512x512 (fp32, bf16; the
 * 512x512 ones take about 10 minutes each on 2 cores), and 256x512 in the
 * fast mode; --quick leaves out the 512x512 frames, --stages stops before the
 * whole frames, --full adds the paper's 1024x672 frame in bf16 (fp32 where the
 * CPU lacks native bf16; about 25 minutes on 2 cores of a Zen 4), against the
 * paper's 379 s on a GPU, and --full-only runs that frame alone after the
 * machine's peaks. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_common.h"
#include "gpt.h"
#include "session.h"
#include "vqgan.h"

static double peak_bf16(void)
{
    if (!vq_dnnl_bf16_native()) return 0;
    static const int shapes[][3] = { { 512, 4096, 1024 }, { 512, 1024, 4096 }, { 1024, 4096, 1024 } };
    double best = 0;
    vq_backend_set_bf16(1);
    for (size_t s = 0; s < 3; s++) {
        const int T = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = malloc(sizeof(float) * T * K), *w = malloc(sizeof(float) * N * K), *y = malloc(sizeof(float) * T * N);
        for (long i = 0; i < (long)T * K; i++) x[i] = (float)(i % 7) * 0.1f;
        for (long i = 0; i < (long)N * K; i++) w[i] = (float)(i % 5) * 0.1f;
        struct vq_bf16_weight *wb = vq_dnnl_pack_bf16(w, N, K);
        /* warm up (the first bf16/AMX products of a process run slowly) */
        for (double t0 = now_s(); now_s() - t0 < 0.5;)
            vq_linear_bf16(x, T, K, wb, NULL, N, y);
        double t = 1e30;
        for (int r = 0; r < 8; r++) {
            double t0 = now_s();
            vq_linear_bf16(x, T, K, wb, NULL, N, y);
            double d = now_s() - t0;
            if (d < t) t = d;
        }
        double g = 2.0 * T * N * K / t * 1e-9;
        if (g > best) best = g;
        free(x); free(w); free(y);
        vq_dnnl_pack_free(wb);
    }
    vq_backend_set_bf16(0);
    return best;
}

/* CPU seconds (user + system) of the process so far. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static double memcpy_gbs(void)
{
    const size_t n = (size_t)1 << 30;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n);
    memset(b, 2, n);
    /* every thread copies its share: one thread alone does not reach the
     * memory's bandwidth (the transformer's steps stream weights on all) */
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
#pragma omp parallel
        {
            const int nt = omp_get_num_threads(), t = omp_get_thread_num();
            const size_t lo = n / nt * t, hi = t == nt - 1 ? n : n / nt * (t + 1);
            memcpy(b + lo, a + lo, hi - lo);
        }
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    free(a); free(b);
    return 2.0 * n / best * 1e-9;   /* read + write */
}

/* Reading alone, all threads: what a one-position step (which only reads
 * its weights) can reach. memcpy's figure counts its writes too, which
 * overlap with its reads, so it is higher than this. */
static double read_gbs(void)
{
    const size_t n = (size_t)1 << 30, m = n / sizeof(uint64_t);
    uint64_t *a = malloc(n);
    for (size_t i = 0; i < m; i++) a[i] = i;
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int r = 0; r < 3; r++) {
        uint64_t sum = 0;
        double t0 = now_s();
#pragma omp parallel for schedule(static) reduction(+ : sum)
        for (size_t i = 0; i < m; i++) sum += a[i];
        double t = now_s() - t0;
        sink += sum;
        if (t < best) best = t;
    }
    free(a);
    return n / best * 1e-9;
}

static double ref_frame_seconds(const char *size)
{
    const char *p = getenv("VQ_REFERENCE_TIMING") ? getenv("VQ_REFERENCE_TIMING") : "build/reference-timing.json";
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char key[64];
    snprintf(key, sizeof(key), "\"%s\"", size);
    char *s = strstr(buf, key);
    if (!s) return 0;
    s = strstr(s, "\"frame_s\":");
    return s ? atof(s + 10) : 0;
}

struct models { struct vqgan_model *m[2]; struct vqgan_session *s[2]; };

static void stages(struct models *M, double peak[2])
{
    for (int p = 0; p < 2; p++) {
        if (!M->s[p]) continue;
        const int S = 512, g = S / 16;
        uint8_t *rgb = malloc((size_t)S * S * 3), *ids = malloc((size_t)S * S);
        int32_t *tok = malloc(sizeof(int32_t) * g * g);
        for (int i = 0; i < g * g; i++) tok[i] = (i * 37) % 1024;
        for (int i = 0; i < S * S; i++) ids[i] = (uint8_t)(((i % S) / 37 + (i / S) / 53) % 182);
        for (int o = 0; o < 2; o++) {
            unsigned long long f0 = vq_gemm_flops();
            double t0 = now_s();
            int r = o ? vqgan_encode_labels(M->s[p], ids, S, S, S, tok, NULL) : vqgan_decode(M->s[p], tok, g, g, rgb, S * 3);
            double t = now_s() - t0, gf = (vq_gemm_flops() - f0) * 1e-9;
            if (r) { printf("  %s\n", vqgan_last_error()); continue; }
            printf("  %-26s %s  %6.2f s  %6.1f GFLOP  %6.1f GFLOPS  %5.1f%% of peak\n",
                   o ? "segmentation encode 512x512" : "first-stage decode 512x512", p ? "bf16" : "fp32", t, gf, gf / t,
                   100 * gf / t / peak[p]);
        }
        free(rgb); free(ids); free(tok);
    }
}

static void transformer(struct models *M, double peak[2])
{
    for (int p = 0; p < 2; p++) {
        if (!M->s[p]) continue;
        const struct vq_gpt *g = &M->m[p]->gpt;
        vq_session_enter(M->s[p]);
        struct vq_kv_cache c;
        vq_kv_cache_init(&c, g, g->block);
        int32_t *tok = malloc(sizeof(int32_t) * g->block);
        for (int i = 0; i < g->block; i++) tok[i] = (i * 131) % g->vocab;
        float *logits = malloc(sizeof(float) * g->vocab);
        const int n = g->block;
        double best = 1e30;
        unsigned long long f0 = 0, f1 = 0;
        for (int r = 0; r < 2; r++) {
            c.len = 0;
            f0 = vq_gemm_flops();
            double t0 = now_s();
            vq_gpt_forward(g, &c, tok, n, n - 1, logits);
            double t = now_s() - t0;
            f1 = vq_gemm_flops();
            if (t < best) best = t;
        }
        double gf = (f1 - f0) * 1e-9;
        printf("  transformer prefill %d pos  %s  %6.2f s  %6.1f GFLOP  %6.1f GFLOPS  %5.1f%% of peak\n", n,
               p ? "bf16" : "fp32", best, gf, gf / best, 100 * gf / best / peak[p]);
        /* single-position decode at the middle of the window, between two
         * measurements of the bandwidth (this VM's moves by half within the
         * hour): the higher of each is the reference */
        double bw = memcpy_gbs(), rd = read_gbs(), bd = 1e30;
        for (int r = 0; r < 5; r++) {
            c.len = n / 2;
            double t0 = now_s();
            vq_gpt_forward(g, &c, tok, 1, 0, logits);
            double t = now_s() - t0;
            if (t < bd) bd = t;
        }
        const double bw2 = memcpy_gbs(), rd2 = read_gbs();
        bw = bw2 > bw ? bw2 : bw;
        rd = rd2 > rd ? rd2 : rd;
        double wbytes = (double)g->n_layer * 12.0 * g->n_embd * g->n_embd * (p ? 2 : 4) +
                        (double)g->vocab * g->n_embd * (p ? 2 : 4);
        printf("  transformer decode 1 pos    %s  %6.3f s  weights %.2f GB  %6.1f GB/s  %5.1f%% of memcpy bandwidth"
               " (%.1f GB/s beside it; %.0f%% of a read-only stream, %.1f GB/s)\n", p ? "bf16" : "fp32", bd,
               wbytes * 1e-9, wbytes / bd * 1e-9, 100 * wbytes / bd * 1e-9 / bw, bw, 100 * wbytes / bd * 1e-9 / rd, rd);
        vq_kv_cache_free(&c);
        free(tok); free(logits);
        vq_session_leave();
    }
}

/* The last exact frame of each precision, for the fast mode's drift. */
static struct { int32_t *tok; uint8_t *rgb; int W, H; } last_exact[2];

/* One whole frame per precision; fast > 1: the approximate fast mode
 * (fast_step, docs/sampling.md), compared with the exact frame of the same
 * size and precision run before it; only_p >= 0: that precision only. */
static void frame(struct models *M, int W, int H, int fast, int only_p)
{
    char size[32];
    snprintf(size, sizeof(size), "%dx%d", H, W);
    double ref = ref_frame_seconds(size);
    for (int p = 0; p < 2; p++) {
        if (!M->s[p] || (only_p >= 0 && p != only_p)) continue;
        struct vqgan_session_params sp = vqgan_session_default_params();
        sp.fast_step = fast;
        vqgan_session_set_params(M->s[p], &sp);
        const int gw = W / 16, gh = H / 16;
        uint8_t *ids = malloc((size_t)W * H), *rgb = malloc((size_t)W * H * 3);
        int32_t *cond = malloc(sizeof(int32_t) * gw * gh), *tok = malloc(sizeof(int32_t) * gw * gh);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                ids[y * W + x] = (uint8_t)(y < H / 3 ? 156 : (x + y / 2) % 200 < 100 ? 134 : 168);
        const double c0 = cpu_s(), t0 = now_s();
        int r = vqgan_encode_labels(M->s[p], ids, W, W, H, cond, NULL);
        if (!r) r = vqgan_sample_conditional(M->s[p], cond, gw, gh, tok);
        if (!r) r = vqgan_decode(M->s[p], tok, gw, gh, rgb, W * 3);
        double t = now_s() - t0, cpu = cpu_s() - c0;
        struct vqgan_sample_stats st;
        vqgan_session_get_stats(M->s[p], &st);
        char tag[48] = "";
        if (fast > 1) snprintf(tag, sizeof(tag), " fast_step=%d (approximate)", fast);
        if (r) printf("  frame %s: %s\n", size, vqgan_last_error());
        else if (ref > 0)
            printf("  whole frame %-9s %s%s  %7.1f s  (%lld positions through the transformer)  reference %.0f s  -> %.1fx faster\n",
                   size, p ? "bf16" : "fp32", tag, t,
                   (long long)st.transformer_tokens, ref, ref / t);
        else
            printf("  whole frame %-9s %s%s  %7.1f s  (%lld positions, %lld cache evictions; sampling %.1f s; no "
                   "reference timing)\n", size, p ? "bf16" : "fp32", tag, t, (long long)st.transformer_tokens,
                   (long long)st.cache_evictions, st.seconds);
        if (!r)
            printf("    CPU time %.1f s = %.0f %% of %d threads x wall time (below 100 %%: the machine was shared "
                   "or threads waited)\n", cpu, 100.0 * cpu / (t * vq_threads_get()), vq_threads_get());
        if (!r && fast > 1 && last_exact[p].tok && last_exact[p].W == W && last_exact[p].H == H) {
            int same = 0;
            double se = 0;
            for (int i = 0; i < gw * gh; i++) same += tok[i] == last_exact[p].tok[i];
            for (size_t i = 0; i < (size_t)W * H * 3; i++) {
                const double d = (double)rgb[i] - last_exact[p].rgb[i];
                se += d * d;
            }
            printf("    drift against the exact frame: %.1f %% of the tokens equal, PSNR %.2f dB\n",
                   100.0 * same / (gw * gh), se ? 10 * log10(65025.0 / (se / ((double)W * H * 3))) : INFINITY);
        }
        if (!r && fast <= 1) {
            free(last_exact[p].tok);
            free(last_exact[p].rgb);
            last_exact[p].tok = tok;
            last_exact[p].rgb = rgb;
            last_exact[p].W = W;
            last_exact[p].H = H;
            tok = NULL;
            rgb = NULL;
        }
        sp.fast_step = 0;
        vqgan_session_set_params(M->s[p], &sp);
        fflush(stdout);
        free(ids); free(rgb); free(cond); free(tok);
    }
}

int main(int argc, char **argv)
{
    int full_only = argc > 1 && !strcmp(argv[1], "--full-only");
    int full = full_only || (argc > 1 && !strcmp(argv[1], "--full"));
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    int stages_only = argc > 1 && !strcmp(argv[1], "--stages");
    const char *path = getenv("VQ_BENCH_MODEL") ? getenv("VQ_BENCH_MODEL") : "build/sflckr-random.gguf";
    struct models M;
    memset(&M, 0, sizeof(M));
    for (int p = 0; p < 2; p++) {
        struct vqgan_model_params mp = vqgan_model_default_params();
        mp.precision = p ? VQGAN_PRECISION_BF16 : VQGAN_PRECISION_FP32;
        if (p && !vq_dnnl_bf16_native()) break;
        if (vqgan_model_load(path, &mp, &M.m[p]) || vqgan_session_new(M.m[p], NULL, &M.s[p])) {
            fprintf(stderr, "bench_speed: %s\n", vqgan_last_error());
            return 1;
        }
    }
    vq_threads_set(0);
    printf("backend %s, %d threads, native bf16: %s; OpenBLAS (%s) kernels: %s\n",
           vq_backend_name(vq_backend_current()), vq_threads_get(), vq_dnnl_bf16_native() ? "yes" : "no",
           vq_backend_current() == VQ_BACKEND_BLAS ? "in use" : "fallback only, not used here",
           vq_blas_corename() ? vq_blas_corename() : "not built in");
    printf("OpenMP wait policy: %s\n", getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY")
                                                                  : "libgomp's default (spin a while, then sleep)");
    double peak[2] = { bench_peak_gflops(0), peak_bf16() }, bw = memcpy_gbs(), rd = read_gbs();
    printf("machine peak: matmul fp32 %.0f GFLOPS, bf16 %.0f GFLOPS; memcpy %.1f GB/s (read + write, all threads); "
           "read alone %.1f GB/s\n", peak[0], peak[1], bw, rd);
    if (full_only) goto paper_frame;
    stages(&M, peak);
    transformer(&M, peak);
    if (stages_only) goto done;
    frame(&M, 512, 256, 0, -1);
    frame(&M, 512, 256, 4, M.s[1] ? 1 : 0);    /* the approximate fast mode, bf16 where native */
    if (!quick)
        frame(&M, 512, 512, 0, -1);
paper_frame:
    if (full) {
        printf("  the paper's frame, 1024x672: target under 379 s (the paper's figure for its sampler on a 2021 GPU)\n");
        frame(&M, 1024, 672, 0, M.s[1] ? 1 : 0);
    }
done:;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak resident memory: %.2f GB (both precisions' models loaded)\n", ru.ru_maxrss / 1048576.0);
    for (int p = 0; p < 2; p++) {
        free(last_exact[p].tok);
        free(last_exact[p].rgb);
        vqgan_session_free(M.s[p]);
        vqgan_model_unref(M.m[p]);
    }
    return 0;
}
