/* The speed benchmark (issue 6): the machine's limits, each stage's rate
 * against them, and whole frames against the reference's algorithm on the
 * same weights.
 *
 *   build/tests/bench_speed [--quick | --stages | --products | --full | --full-only]   (make bench: no flag)
 *
 * Model: $VQ_BENCH_MODEL (default build/sflckr-random.gguf: the released
 * S-FLCKR shapes, random weights). Reference timings: $VQ_REFERENCE_TIMING
 * (default build/reference-timing.json, written by tools/reference_timing.py
 * on the same weights). The int8 backend's peak and the linear layers'
 * rate at the transformer's shapes in fp32, bf16 and int8, and the
 * transformer's attention alone for a middle placement of the frame (fp32
 * and bf16), its prefill and decode in each. Whole frames: 256x512 (fp32,
 * bf16, int8) and 512x512 (fp32, bf16; about 10 minutes each on 2 cores of a
 * Zen 4), and 256x512 in the fast mode, each with its products' time at peak;
 * --quick leaves out the 512x512 frames, --products stops after the peaks,
 * the linear layers' rates and attention's, --stages stops before the whole
 * frames, --full
 * adds the paper's 1024x672 frame against the paper's 379 s on a GPU: bf16,
 * int8, int8, bf16 in alternation (paper_frames; one fp32 frame where the CPU
 * lacks native bf16; the four took about 26 minutes on 2 cores of a Zen 5),
 * and --full-only runs those frames alone after the machine's peaks. A
 * peak is the best of the run's measurements of it: three at the start, and
 * one more after each frame whose products are set against it (a
 * measurement taken while the shared machine is slow reads low and would
 * flatter the shares); bf16's, the better of our own kernel's products and
 * oneDNN's at each measurement. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/resource.h>

#include "amx.h"
#include "attention.h"
#include "backend_dnnl.h"
#include "backend_int8.h"
#include "bench_common.h"
#include "gpt.h"
#include "linear_bf16.h"
#include "ops.h"
#include "session.h"
#include "vqgan.h"

static const char *prec_name[3] = { "fp32", "bf16", "int8" };

/* The best rate of a backend's packed products (bf16, int8) on large
 * transformer-shaped products: GFLOPS, or GOPS for int8 (2 per multiply-add). */
static double peak_packed(int precision)
{
    const struct vq_backend *be = vq_backend_get(VQ_BACKEND_DNNL, precision);
    if (!be) return 0;
    const struct vq_exec ex = vq_exec_make(be, 0);
    static const int shapes[][3] = { { 512, 4096, 1024 }, { 512, 1024, 4096 }, { 1024, 4096, 1024 } };
    double best = 0;
    for (size_t s = 0; s < 3; s++) {
        const int T = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *x = malloc(sizeof(float) * T * K), *w = malloc(sizeof(float) * N * K), *y = malloc(sizeof(float) * T * N);
        for (long i = 0; i < (long)T * K; i++) x[i] = (float)(i % 7) * 0.1f;
        for (long i = 0; i < (long)N * K; i++) w[i] = (float)(i % 5) * 0.1f;
        struct vq_packed *wb = vq_backend_pack(be, w, N, K, NULL);
        /* warm up (the first bf16/AMX products of a process run slowly) */
        for (double t0 = now_s(); now_s() - t0 < 0.5;)
            be->linear_packed(&ex, wb, x, T, NULL, y);
        double t = 1e30;
        for (int r = 0; r < 8; r++) {
            double t0 = now_s();
            be->linear_packed(&ex, wb, x, T, NULL, y);
            double d = now_s() - t0;
            if (d < t) t = d;
        }
        double g = 2.0 * T * N * K / t * 1e-9;
        if (g > best) best = g;
        free(x); free(w); free(y);
        vq_backend_pack_free(be, wb);
    }
    return best;
}

#ifdef VQ_HAVE_DNNL
#include <dnnl.h>
/* oneDNN's own int8 matmul (u8 x s8 -> s32, weights reordered once into the
 * layout it picks, no quantization or epilogue: the raw product) at the
 * int8 backend's shapes, best GOPS: what oneDNN would give the int8
 * backend on a CPU where the backend keeps its own kernel. 0 when oneDNN
 * refuses. */
static double dnnl_int8_gops(void)
{
    static const int shapes[][3] = { { 512, 4096, 1024 }, { 512, 1024, 4096 }, { 16, 4096, 1024 } };
    dnnl_engine_t eng;
    dnnl_stream_t st;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return 0;
    if (dnnl_stream_create(&st, eng, dnnl_stream_default_flags) != dnnl_success) return 0;
    double best = 0;
    for (size_t sh = 0; sh < 3; sh++) {
        const int T = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
        dnnl_dims_t sd = { T, K }, wd = { K, N }, dd = { T, N };
        dnnl_memory_desc_t smd, wany, wplain, dmd;
        dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_u8, dnnl_ab);
        dnnl_memory_desc_init_by_tag(&wany, 2, wd, dnnl_s8, dnnl_format_tag_any);
        dnnl_memory_desc_init_by_tag(&wplain, 2, wd, dnnl_s8, dnnl_ba);   /* W[N][K] */
        dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_s32, dnnl_ab);
        dnnl_matmul_desc_t d;
        dnnl_primitive_desc_t pd;
        dnnl_primitive_t prim;
        if (dnnl_matmul_desc_init(&d, &smd, &wany, NULL, &dmd) != dnnl_success ||
            dnnl_primitive_desc_create(&pd, &d, NULL, eng, NULL) != dnnl_success)
            continue;
        const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        uint8_t *x = malloc((size_t)T * K);
        int8_t *w = malloc((size_t)N * K), *wp = malloc(dnnl_memory_desc_get_size(wmd));
        int32_t *y = malloc(sizeof(int32_t) * (size_t)T * N);
        for (size_t i = 0; i < (size_t)T * K; i++) x[i] = (uint8_t)(i * 7);
        for (size_t i = 0; i < (size_t)N * K; i++) w[i] = (int8_t)(i * 5 % 255 - 127);
        dnnl_memory_t mx, mw0, mw, my;
        dnnl_memory_create(&mx, &smd, eng, x);
        dnnl_memory_create(&mw0, &wplain, eng, w);
        dnnl_memory_create(&mw, wmd, eng, wp);
        dnnl_memory_create(&my, &dmd, eng, y);
        dnnl_primitive_desc_t rpd;
        dnnl_primitive_t rp;
        if (dnnl_reorder_primitive_desc_create(&rpd, &wplain, eng, wmd, eng, NULL) == dnnl_success &&
            dnnl_primitive_create(&rp, rpd) == dnnl_success) {
            dnnl_exec_arg_t ra[2] = { { DNNL_ARG_FROM, mw0 }, { DNNL_ARG_TO, mw } };
            dnnl_primitive_execute(rp, st, 2, ra);
            dnnl_stream_wait(st);
            dnnl_primitive_destroy(rp);
            dnnl_primitive_desc_destroy(rpd);
            if (dnnl_primitive_create(&prim, pd) == dnnl_success) {
                dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, mx }, { DNNL_ARG_WEIGHTS, mw }, { DNNL_ARG_DST, my } };
                double t = 1e30;
                for (int r = 0; r < 6; r++) {
                    const double t0 = now_s();
                    dnnl_primitive_execute(prim, st, 3, args);
                    dnnl_stream_wait(st);
                    t = fmin(t, now_s() - t0);
                }
                best = fmax(best, 2.0 * T * N * K / t * 1e-9);
                dnnl_primitive_destroy(prim);
            }
        }
        dnnl_memory_destroy(mx); dnnl_memory_destroy(mw0); dnnl_memory_destroy(mw); dnnl_memory_destroy(my);
        dnnl_primitive_desc_destroy(pd);
        free(x); free(w); free(wp); free(y);
    }
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
    return best;
}
#else
static double dnnl_int8_gops(void) { return 0; }
#endif

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

struct models { struct vqgan_model *m[3]; struct vqgan_session *s[3]; };

/* The transformer's linear layers alone, at its shapes (D x D, 4D x D,
 * D x 4D) and row counts (a 512-position prefill, a window row of 16, one
 * position), in each precision through its model's backend: the rate, and
 * its share of that precision's peak. */
static void products(struct models *M, const double peak[3])
{
    static const int rows[3] = { 512, 16, 1 };
    double rate[3][3] = { { 0 } };
    /* three rounds, the precisions interleaved, the best of each kept: the
     * machine is shared and its load moves within seconds */
    for (int round = 0; round < 3; round++)
    for (int p = 0; p < 3; p++) {
        if (!M->s[p]) continue;
        const struct vq_gpt *g = &M->m[p]->gpt;
        const struct vq_gpt_block *b = &g->blocks[0];
        const int D = g->n_embd;
        const struct vq_exec ex = vq_exec_make(g->be, 0);
        const float *W[3] = { b->q_w, b->fc_w, b->fc2_w };
        const struct vq_packed *P[3] = { b->q_p, b->fc_p, b->fc2_p };
        const int N[3] = { D, 4 * D, D }, K[3] = { D, D, 4 * D };
        float *x = malloc(sizeof(float) * 512 * 4 * D), *y = malloc(sizeof(float) * 512 * 4 * D);
        for (long i = 0; i < 512L * 4 * D; i++) x[i] = sinf(0.01f * (float)i);
        for (int r = 0; r < 3; r++) {
            const int T = rows[r];
            double ops = 0, t = 0;
            for (int k = 0; k < 3; k++) {
                vq_linear(&ex, x, T, K[k], W[k], P[k], NULL, N[k], y);
                double best = 1e30;
                for (int rep = 0; rep < (T > 16 ? 4 : 30); rep++) {
                    const double t0 = now_s();
                    vq_linear(&ex, x, T, K[k], W[k], P[k], NULL, N[k], y);
                    best = fmin(best, now_s() - t0);
                }
                ops += 2.0 * T * N[k] * K[k];
                t += best;
            }
            rate[p][r] = fmax(rate[p][r], ops / t * 1e-9);
        }
        free(x); free(y);
    }
    for (int p = 0; p < 3; p++) {
        if (!M->s[p]) continue;
        printf("  linear layers at the transformer's shapes, %s: %d rows %6.1f, 16 rows %6.1f, 1 row %6.1f G%s/s; "
               "512 rows at %5.1f%% of the %s peak\n", prec_name[p], rows[0], rate[p][0], rate[p][1], rate[p][2],
               p == 2 ? "OP" : "FLOP", 100 * rate[p][0] / peak[p], prec_name[p]);
    }
    if (M->s[2] && M->s[1])
        printf("  int8 against bf16 (same run): 512 rows %.2fx, 16 rows %.2fx, 1 row %.2fx; against fp32 %.2fx, "
               "%.2fx, %.2fx\n", rate[2][0] / rate[1][0], rate[2][1] / rate[1][1], rate[2][2] / rate[1][2],
               rate[2][0] / rate[0][0], rate[2][1] / rate[0][1], rate[2][2] / rate[0][2]);
}

/* Attention alone (scores, softmax, output; the caches' stores excluded) for
 * a middle placement of the frame: 256 positions in the cache (its
 * condition), 136 new rows (its image rows after the first), the model's
 * layers each on its own layer of one cache filled by a real prefill, best
 * of 20 passes over the layers, in fp32 and bf16. Its rate against the
 * peak says how far from it this part of a placement runs, which the linear
 * layers' rates do not show. */
static void attention(struct models *M, const double peak[3])
{
    for (int p = 0; p < 2; p++) {
        if (!M->s[p]) continue;
        const struct vq_gpt *g = &M->m[p]->gpt;
        const int D = g->n_embd, L0 = g->block / 2, n = L0 * 17 / 32, T = L0 + n;
        if (T > g->block) continue;
        vq_session_enter(M->s[p], VQ_BUFFERS_LOCAL);
        const struct vq_exec *ex = &M->s[p]->exec;
        struct vq_kv_cache c;
        int32_t *tok = malloc(sizeof(int32_t) * T);
        float *logits = malloc(sizeof(float) * g->vocab), *q = malloc(sizeof(float) * n * D);
        float *y = malloc(sizeof(float) * n * D), *att = malloc(sizeof(float) * g->n_head * n * T);
        uint16_t *qb = malloc(sizeof(uint16_t) * n * D), *yb = malloc(sizeof(uint16_t) * n * D);
        for (int i = 0; i < T; i++) tok[i] = (i * 131) % g->vocab;
        for (int i = 0; i < n * D; i++) q[i] = 2.0f * sinf(0.37f * (float)i);
        if (vq_kv_cache_init(&c, g, T) || vq_gpt_forward(ex, g, &c, tok, T, T - 1, logits)) {
            printf("  attention: %s\n", vqgan_last_error());
        } else {
            double best = 1e30, flops = 0;
            for (int r = 0; r < n; r++) flops += 4.0 * (L0 + r + 1) * D * g->n_layer;
            for (int rep = 0; rep < 20; rep++) {
                const double t0 = now_s();
                for (int l = 0; l < g->n_layer; l++) {
                    if (c.bf16)
                        vq_attention_bf16(ex, q, qb, vq_kv_cache_k(&c, l), vq_kv_cache_rows(&c), vq_kv_cache_v(&c, l),
                                          D, g->n_head, g->n_unmasked, L0, n, att, NULL, yb);
                    else
                        vq_attention(ex, q, vq_kv_cache_k(&c, l), vq_kv_cache_rows(&c), vq_kv_cache_v(&c, l), D,
                                     g->n_head, g->n_unmasked, L0, n, att, y);
                }
                best = fmin(best, now_s() - t0);
            }
            printf("  attention of a middle placement (%d positions cached, %d new rows, %d layers), %s%s: %.2f ms, "
                   "%.2f GFLOP, %.0f GFLOPS, %.1f%% of the %s peak\n", L0, n, g->n_layer, prec_name[p],
                   c.bf16 ? " (bf16 cache)" : "", best * 1e3, flops * 1e-9, flops / best * 1e-9,
                   100 * flops / best * 1e-9 / peak[p], prec_name[p]);
        }
        vq_kv_cache_free(&c);
        free(tok); free(logits); free(q); free(y); free(att); free(qb); free(yb);
        vq_session_leave();
    }
}

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

static void transformer(struct models *M, double peak[3])
{
    for (int p = 0; p < 3; p++) {
        if (!M->s[p]) continue;
        const struct vq_gpt *g = &M->m[p]->gpt;
        vq_session_enter(M->s[p], VQ_BUFFERS_LOCAL);
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
            vq_gpt_forward(&M->s[p]->exec, g, &c, tok, n, n - 1, logits);
            double t = now_s() - t0;
            f1 = vq_gemm_flops();
            if (t < best) best = t;
        }
        double gf = (f1 - f0) * 1e-9;
        printf("  transformer prefill %d pos  %s  %6.2f s  %6.1f GFLOP  %6.1f GFLOPS  %5.1f%% of peak\n", n,
               prec_name[p], best, gf, gf / best, 100 * gf / best / peak[p]);
        /* single-position decode at the middle of the window, between two
         * measurements of the bandwidth (this VM's moves by half within the
         * hour): the higher of each is the reference */
        double bw = memcpy_gbs(), rd = read_gbs(), bd = 1e30;
        for (int r = 0; r < 5; r++) {
            c.len = n / 2;
            double t0 = now_s();
            vq_gpt_forward(&M->s[p]->exec, g, &c, tok, 1, 0, logits);
            double t = now_s() - t0;
            if (t < bd) bd = t;
        }
        const double bw2 = memcpy_gbs(), rd2 = read_gbs();
        bw = bw2 > bw ? bw2 : bw;
        rd = rd2 > rd ? rd2 : rd;
        const int wb = p == 2 ? 1 : p ? 2 : 4;
        double wbytes = (double)g->n_layer * 12.0 * g->n_embd * g->n_embd * wb + (double)g->vocab * g->n_embd * wb;
        printf("  transformer decode 1 pos    %s  %6.3f s  weights %.2f GB  %6.1f GB/s  %5.1f%% of memcpy bandwidth"
               " (%.1f GB/s beside it; %.0f%% of a read-only stream, %.1f GB/s)\n", prec_name[p], bd,
               wbytes * 1e-9, wbytes / bd * 1e-9, 100 * wbytes / bd * 1e-9 / bw, bw, 100 * wbytes / bd * 1e-9 / rd, rd);
        vq_kv_cache_free(&c);
        free(tok); free(logits);
        vq_session_leave();
    }
}

/* The last exact frame of each precision, for the fast mode's drift and
 * for int8's against bf16. */
static struct { int32_t *tok; uint8_t *rgb; int W, H; double t; } last_exact[3];

enum { FP32 = 1, BF16 = 2, INT8 = 4 };

/* bf16's peak: the better of our own kernel's products and oneDNN's
 * (linear_bf16.h; where the backend does not run that kernel, oneDNN's
 * alone), each measured once; *own and *onednn, when not NULL, get each
 * one's rate. */
static double peak_bf16(double *own, double *onednn)
{
    const double o = vq_dnnl_bf16_own() ? peak_packed(VQ_PREC_BF16) : 0;
    vq_linear_bf16_force(0);
    const double d = peak_packed(VQ_PREC_BF16);
    vq_linear_bf16_force(-1);
    if (own) *own = o;
    if (onednn) *onednn = d;
    return fmax(o, d);
}

/* The peak of precision p (0 fp32, 1 bf16, 2 int8) measured again: the machine is
 * shared and a measurement taken in a slow spell reads low, which would
 * flatter every share computed against it; the run keeps its highest. */
static double peak_again(int p, double *peak)
{
    const double again = p == 0 ? bench_peak_gflops(0) : p == 1 ? peak_bf16(NULL, NULL) : peak_packed(VQ_PREC_INT8);
    if (again > peak[p]) peak[p] = again;
    return again;
}

/* What one exact frame took: its time and its products (0 when it failed). */
struct frame_result { double t, flops_all; };

/* One whole frame in precision p (see frame()); out, when not NULL, gets its
 * time and products. A repeated exact frame of the same size says whether
 * its tokens equal the last one's (they must: the draws are seeded). */
static void frame_one(struct models *M, double peak[3], int W, int H, int fast, int p, struct frame_result *out)
{
    char size[32];
    snprintf(size, sizeof(size), "%dx%d", H, W);
    const double ref = ref_frame_seconds(size);
    if (out) out->t = out->flops_all = 0;
    struct vqgan_session_params sp = vqgan_session_default_params();
    sp.fast_step = fast;
    vqgan_session_set_params(M->s[p], &sp);
    const int gw = W / 16, gh = H / 16;
    uint8_t *ids = malloc((size_t)W * H), *rgb = malloc((size_t)W * H * 3);
    int32_t *cond = malloc(sizeof(int32_t) * gw * gh), *tok = malloc(sizeof(int32_t) * gw * gh);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            ids[y * W + x] = (uint8_t)(y < H / 3 ? 156 : (x + y / 2) % 200 < 100 ? 134 : 168);
    const unsigned long long fa = vq_gemm_flops();
    const double c0 = cpu_s(), t0 = now_s();
    int r = vqgan_encode_labels(M->s[p], ids, W, W, H, cond, NULL);
    const unsigned long long f0 = vq_gemm_flops();
    const double ts = now_s();
    if (!r) r = vqgan_sample_conditional(M->s[p], cond, gw, gh, tok);
    const double tsample = now_s() - ts, flops = (double)(vq_gemm_flops() - f0);
    if (!r) r = vqgan_decode(M->s[p], tok, gw, gh, rgb, W * 3);
    double t = now_s() - t0, cpu = cpu_s() - c0;
    const double flops_all = (double)(vq_gemm_flops() - fa);
    struct vqgan_sample_stats st;
    vqgan_session_get_stats(M->s[p], &st);
    char tag[48] = "";
    if (fast > 1) snprintf(tag, sizeof(tag), " fast_step=%d (approximate)", fast);
    if (r) printf("  frame %s: %s\n", size, vqgan_last_error());
    else if (ref > 0)
        printf("  whole frame %-9s %s%s  %7.1f s  (%lld positions through the transformer)  reference %.0f s  -> %.1fx faster\n",
               size, prec_name[p], tag, t,
               (long long)st.transformer_tokens, ref, ref / t);
    else
        printf("  whole frame %-9s %s%s  %7.1f s  (%lld positions, %lld cache evictions; sampling %.1f s; no "
               "reference timing)\n", size, prec_name[p], tag, t, (long long)st.transformer_tokens,
               (long long)st.cache_evictions, st.seconds);
    if (!r)
        printf("    CPU time %.1f s = %.0f %% of %d threads x wall time (below 100 %%: the machine was shared "
               "or threads waited)\n", cpu, 100.0 * cpu / (t * vq_threads_available()), vq_threads_available());
    if (!r && peak[p] > 0 && p < 2) {   /* int8 frames mix int8 and bf16 (attention, first stage) products */
        const double again = peak_again(p, peak);
        printf("    the %s peak measured again after the frame: %.0f GFLOPS; the shares below are against the "
               "run's highest, %.0f\n", prec_name[p], again, peak[p]);
        const double at_peak = flops / (peak[p] * 1e9), all_at_peak = flops_all / (peak[p] * 1e9);
        printf("    products at the %s peak (%.0f GFLOPS): the sampler's %.1f TFLOP %.1f s = %.1f %% of its %.1f s; "
               "the whole frame's %.1f TFLOP (first stage included) %.1f s = %.1f %% of its %.1f s\n",
               prec_name[p], peak[p], flops * 1e-12, at_peak, 100 * at_peak / tsample, tsample,
               flops_all * 1e-12, all_at_peak, 100 * all_at_peak / t, t);
    }
    if (!r && p == 2 && peak[1] > 0 && peak[2] > 0) {   /* the host's speed in this frame's slot */
        const double i8 = peak_again(2, peak), b16 = peak_again(1, peak);
        printf("    the peaks measured again after the frame: int8 %.0f GOPS (the run's highest %.0f), bf16 %.0f "
               "GFLOPS (%.0f)\n", i8, peak[2], b16, peak[1]);
    }
    if (!r && p == 2 && fast <= 1 && last_exact[1].tok && last_exact[1].W == W && last_exact[1].H == H) {
        int same = 0;
        for (int i = 0; i < gw * gh; i++) same += tok[i] == last_exact[1].tok[i];
        printf("    int8 against bf16: %.2fx the bf16 frame's time; %.1f %% of the tokens equal (the draws "
               "diverge after the first differing token)\n", t / last_exact[1].t, 100.0 * same / (gw * gh));
    }
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
    if (!r && fast <= 1 && last_exact[p].tok && last_exact[p].W == W && last_exact[p].H == H)
        printf("    the same tokens as this size's last %s frame: %s\n", prec_name[p],
               memcmp(tok, last_exact[p].tok, sizeof(int32_t) * gw * gh) ? "NO" : "yes");
    if (!r && out) {
        out->t = t;
        out->flops_all = flops_all;
    }
    if (!r && fast <= 1) {
        free(last_exact[p].tok);
        free(last_exact[p].rgb);
        last_exact[p].tok = tok;
        last_exact[p].rgb = rgb;
        last_exact[p].W = W;
        last_exact[p].H = H;
        last_exact[p].t = t;
        tok = NULL;
        rgb = NULL;
    }
    sp.fast_step = 0;
    vqgan_session_set_params(M->s[p], &sp);
    fflush(stdout);
    free(ids); free(rgb); free(cond); free(tok);
}

/* One whole frame per precision in the mask (FP32 | BF16 | INT8); fast > 1:
 * the approximate fast mode (fast_step, docs/sampling.md), compared with the
 * exact frame of the same size and precision run before it. Each frame
 * prints its products (linear layers and attention, as the backends count
 * them), the time they alone would take at the precision's peak measured in
 * this run, and that time's share of the frame's: the rest is the edge
 * steps, the small chunks, element-wise work and sampling. */
static void frame(struct models *M, double peak[3], int W, int H, int fast, int mask)
{
    for (int p = 0; p < 3; p++)
        if (M->s[p] && (mask & (1 << p))) frame_one(M, peak, W, H, fast, p, NULL);
}

/* The paper's 1024x672 frame in bf16 and int8 run in alternation, bf16,
 * int8, int8, bf16: the host's speed drifts over the ~25 minutes, and a
 * steady drift then weighs on both precisions alike. int8's ratio is the
 * sum of its two frames against the sum of bf16's; bf16's products at peak
 * are set against the mean of its two frames and against the run's highest
 * bf16 peak (re-measured after every frame; after an int8 frame the int8
 * peak too, so that a slow spell in its slot shows). Without native bf16: one
 * fp32 frame. */
static void paper_frames(struct models *M, double peak[3])
{
    const int W = 1024, H = 672;
    if (!M->s[1]) {
        frame_one(M, peak, W, H, 0, 0, NULL);
        return;
    }
    static const int order[4] = { 1, 2, 2, 1 };
    struct frame_result r[4];
    for (int k = 0; k < 4; k++)
        if (M->s[order[k]]) frame_one(M, peak, W, H, 0, order[k], &r[k]);
        else r[k].t = 0;
    if (!(r[0].t > 0 && r[3].t > 0)) return;
    const double tb = (r[0].t + r[3].t) / 2, fb = (r[0].flops_all + r[3].flops_all) / 2;
    const double at_peak = fb / (peak[1] * 1e9);
    printf("  in alternation (bf16, int8, int8, bf16): bf16 %.1f s and %.1f s, mean %.1f s; its products at the "
           "run's highest bf16 peak (%.0f GFLOPS) %.1f s = %.1f %% of the mean frame (each frame: %.1f %%, %.1f %%)\n",
           r[0].t, r[3].t, tb, peak[1], at_peak, 100 * at_peak / tb, 100 * r[0].flops_all / (peak[1] * 1e9) / r[0].t,
           100 * r[3].flops_all / (peak[1] * 1e9) / r[3].t);
    if (r[1].t > 0 && r[2].t > 0)
        printf("  in alternation: int8 %.1f s and %.1f s, mean %.1f s = %.3fx bf16's mean (pairs in order: %.3fx, "
               "%.3fx)\n", r[1].t, r[2].t, (r[1].t + r[2].t) / 2, (r[1].t + r[2].t) / (r[0].t + r[3].t),
               r[1].t / r[0].t, r[2].t / r[3].t);
}

int main(int argc, char **argv)
{
    int full_only = argc > 1 && !strcmp(argv[1], "--full-only");
    int full = full_only || (argc > 1 && !strcmp(argv[1], "--full"));
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    int stages_only = argc > 1 && !strcmp(argv[1], "--stages");
    int products_only = argc > 1 && !strcmp(argv[1], "--products");
    const char *path = getenv("VQ_BENCH_MODEL") ? getenv("VQ_BENCH_MODEL") : "build/sflckr-random.gguf";
    struct models M;
    memset(&M, 0, sizeof(M));
    for (int p = 0; p < 3; p++) {
        struct vqgan_model_params mp = vqgan_model_default_params();
        mp.precision = p == 2 ? VQGAN_PRECISION_INT8 : p ? VQGAN_PRECISION_BF16 : VQGAN_PRECISION_FP32;
        if (p && !vq_backend_get(VQ_BACKEND_DNNL, p == 2 ? VQ_PREC_INT8 : VQ_PREC_BF16)) break;
        if (vqgan_model_load(path, &mp, &M.m[p]) || vqgan_session_new(M.m[p], NULL, &M.s[p])) {
            fprintf(stderr, "bench_speed: %s\n", vqgan_last_error());
            return 1;
        }
    }
    printf("backend %s, %d threads, native bf16: %s; OpenBLAS (%s) kernels: %s\n",
           vq_backend_default()->name, vq_threads_available(),
           vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16) ? "yes" : "no",
           vq_backend_default()->kind == VQ_BACKEND_BLAS ? "in use" : "fallback only, not used here",
           vq_blas_corename() ? vq_blas_corename() : "not built in");
    printf("OpenMP wait policy: %s\n", getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY")
                                                                  : "libgomp's default (spin a while, then sleep)");
    /* each peak is the best of its measurements in this run (a shared machine's
     * slow spells read low, and would flatter the shares against them) */
    double own_bf16 = 0, dnnl_bf16 = 0;
    double peak[3] = { bench_peak_gflops(0), peak_bf16(&own_bf16, &dnnl_bf16), peak_packed(VQ_PREC_INT8) };
    for (int r = 0; r < 2; r++) {
        double o, d;
        peak_again(0, peak);
        peak[1] = fmax(peak[1], peak_bf16(&o, &d));
        own_bf16 = fmax(own_bf16, o);
        dnnl_bf16 = fmax(dnnl_bf16, d);
    }
    double bw = memcpy_gbs(), rd = read_gbs();
    printf("machine peak: matmul fp32 %.0f GFLOPS, bf16 %.0f GFLOPS, int8 %.0f GOPS (the int8 backend's "
           "products: %s, activations quantized per call included); memcpy %.1f GB/s (read + write, all "
           "threads); read alone %.1f GB/s\n", peak[0], peak[1], peak[2], vq_int8_kernel_name(), bw, rd);
    if (peak[1] > 0)
        printf("bf16 products: our kernel (%s) %.0f GFLOPS%s; oneDNN's %.0f GFLOPS; the peak is the better "
               "of the two\n", vq_amx_bf16_ready() ? "AMX tiles" : "AVX512_BF16", own_bf16,
               vq_dnnl_bf16_own() ? "" : " (not used on this CPU)", dnnl_bf16);
    if (peak[2] > 0) {
        /* the same run, interleaved: oneDNN's raw int8 product against the
         * int8 backend's kernel (quantization and epilogue included) */
        double own = peak[2], onednn = 0;
        for (int r = 0; r < 2; r++) {
            onednn = fmax(onednn, dnnl_int8_gops());
            own = fmax(own, peak_packed(VQ_PREC_INT8));
        }
        printf("int8 products: the backend's (%s) %.0f GOPS; oneDNN's u8 x s8 -> s32 matmul at the same "
               "shapes %.0f GOPS (its raw product, without quantizing the rows or the epilogue)\n",
               vq_int8_kernel_name(), own, onednn);
        peak[2] = own;   /* the best of the int8 kernel's three measurements */
    }
    products(&M, peak);
    attention(&M, peak);
    if (products_only) goto done;
    if (full_only) goto paper_frame;
    stages(&M, peak);
    transformer(&M, peak);
    if (stages_only) goto done;
    frame(&M, peak, 512, 256, 0, FP32 | BF16 | INT8);
    frame(&M, peak, 512, 256, 4, M.s[1] ? BF16 : FP32);    /* the approximate fast mode, bf16 where native */
    if (!quick)
        frame(&M, peak, 512, 512, 0, FP32 | BF16);
paper_frame:
    if (full) {
        printf("  the paper's frame, 1024x672: target under 379 s (the paper's figure for its sampler on a 2021 GPU)\n");
        paper_frames(&M, peak);
    }
done:;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak resident memory: %.2f GB (every precision's model loaded)\n", ru.ru_maxrss / 1048576.0);
    for (int p = 0; p < 3; p++) {
        free(last_exact[p].tok);
        free(last_exact[p].rgb);
        vqgan_session_free(M.s[p]);
        vqgan_model_unref(M.m[p]);
    }
    return 0;
}
