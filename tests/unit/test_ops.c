/* Every operator against a plain scalar reference on random shapes, odd and
 * non-square sizes included, with an explicit error bound. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attention.h"
#include "amx.h"
#include "attention_amx.h"
#include "backend.h"
#include "backend_dnnl.h"
#include "backend_int8.h"
#include "bf16.h"
#include "linear_amx.h"
#include "linear_bf16.h"
#include "linear_small.h"
#include "model.h"
#include "ops.h"
#include "scratch.h"
#include "vmath.h"
#include "test_common.h"
#include "vqgan_stage.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static int irand(int lo, int hi) { return lo + (int)((frand() + 1.0f) * 0.5f * (hi - lo + 1)) % (hi - lo + 1); }
static float *rnd(size_t n) { float *p = malloc(n * sizeof(float)); for (size_t i = 0; i < n; i++) p[i] = frand(); return p; }

/* max |a-b| / (1 + |b|) */
static double rel_err(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= m)) m = d;
    }
    return m;
}

static void test_gemm(void)
{
    for (int kind = 0; kind <= VQ_BACKEND_DNNL; kind++) {
        if (!vq_backend_get(kind, VQ_PREC_FP32)) continue;
        const struct vq_exec ex = vq_exec_make(vq_backend_get(kind, VQ_PREC_FP32), 0);
        double worst = 0;
        for (int t = 0; t < 24; t++) {
            int M = irand(1, 300), N = irand(1, 300), K = irand(1, 300), ta = t & 1, tb = (t >> 1) & 1;
            if (t == 23) { M = 1; N = 1037; K = 513; }
            float *A = rnd((size_t)M * K), *B = rnd((size_t)K * N), *C = rnd((size_t)M * N);
            float *R = malloc(sizeof(float) * M * N);
            memcpy(R, C, sizeof(float) * M * N);
            float beta = (t % 3 == 0) ? 0.5f : 0.0f;
            int lda = ta ? M : K, ldb = tb ? K : N;
            vq_gemm(&ex, ta, tb, M, N, K, A, lda, B, ldb, beta, C, N);
            /* reference in double */
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = 0;
                    for (int k = 0; k < K; k++)
                        acc += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
                    R[i * N + j] = (float)(acc + beta * R[i * N + j]);
                }
            double e = rel_err(C, R, (size_t)M * N) / sqrt((double)K);
            if (e > worst) worst = e;
            free(A); free(B); free(C); free(R);
        }
        CHECK(worst < 1e-6, "gemm[%s]: 24 random shapes incl. transposes, err/sqrt(K) %.2g < 1e-6",
              vq_backend_name(kind), worst);
    }
}

/* The first shape is a linear layer's; the next two, the first stage's
 * attention at 9 x 16 positions (products of two panels, each on one
 * thread: with one thread oneDNN's AVX2 sgemm was offered both cores and
 * gave other bits, so the pictures changed with the thread count); the last,
 * a small model's projection of 150 rows (two row panels of 75). */
static void test_gemm_threads(void)
{
    static const int shapes[][5] = {
        { 200, 3001, 257, 0, 1 }, { 144, 144, 64, 1, 0 }, { 64, 144, 144, 0, 1 }, { 150, 128, 128, 0, 1 },
    };
    const struct vq_exec one = vq_exec_make(NULL, 1), two = vq_exec_make(NULL, 2);
    int same = 1;
    for (int s = 0; s < 4; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = shapes[s][3], tb = shapes[s][4];
        float *A = rnd((size_t)M * K), *B = rnd((size_t)K * N), *C1 = malloc(sizeof(float) * M * N),
              *C2 = malloc(sizeof(float) * M * N);
        vq_gemm(&one, ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, 0.0f, C1, N);
        vq_gemm(&two, ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, 0.0f, C2, N);
        same &= !memcmp(C1, C2, sizeof(float) * M * N);
        free(A); free(B); free(C1); free(C2);
    }
    CHECK(same, "gemm: bit-identical with 1 and 2 threads (two linear layers' shapes, the first stage's attention's two)");
}

/* The panels cover the product once, in order; row panels hold at least 64
 * rows; and from 128 rows (two panels of 64) a product of rows is split. */
static void test_gemm_panels(void)
{
    int ok = 1, split = 1, first_bad = 0;
    for (int rows = 0; rows <= 1; rows++)
        for (int len = 1; len <= 4096; len++) {
            const struct vq_panels q = vq_panels_of(len, rows);
            int end = 0, good = q.n >= 1 && q.size >= 1 && q.last >= 0 && q.last < len;
            for (int t = 0; good && t < q.n; t++) {
                int off;
                const int to = vq_panel_at(&q, t, &off) + off;
                good = off == end && to > off && (!rows || q.n == 1 || to - off >= 64);
                end = to;
            }
            good &= end == len;
            if (!good && ok) first_bad = len;
            ok &= good;
            if (rows && len >= 128 && q.n < 2) split = 0;
        }
    CHECK(ok, "gemm panels: 1..4096 columns and rows covered once in order, row panels of 64 rows or more "
          "(first wrong: %d)", first_bad);
    CHECK(split, "gemm panels: products of 128..4096 rows split into two panels or more");
}

static void conv_ref(const float *in, int C, int H, int W, const float *w, const float *b, int Co, int k, int s,
                     int pt, int pl, int pb, int pr, float *out)
{
    int Ho = (H + pt + pb - k) / s + 1, Wo = (W + pl + pr - k) / s + 1;
    for (int o = 0; o < Co; o++)
        for (int y = 0; y < Ho; y++)
            for (int x = 0; x < Wo; x++) {
                double acc = b ? b[o] : 0;
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = y * s + ky - pt, ix = x * s + kx - pl;
                            if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                acc += (double)w[((o * C + c) * k + ky) * k + kx] * in[(c * H + iy) * W + ix];
                        }
                out[(o * Ho + y) * Wo + x] = (float)acc;
            }
}

static void test_conv(void)
{
    double worst = 0;
    for (int t = 0; t < 16; t++) {
        int C = irand(1, 19), Co = irand(1, 23), H = irand(1, 21), W = irand(1, 27);
        int k = (t % 3 == 0) ? 1 : 3, s = (t % 4 == 3) ? 2 : 1;
        int pt = k / 2, pl = k / 2, pb = k / 2, pr = k / 2;
        if (s == 2) { pt = pl = 0; pb = pr = 1; }   /* the reference's Downsample */
        if (H + pt + pb < k || W + pl + pr < k) continue;
        int Ho = (H + pt + pb - k) / s + 1, Wo = (W + pl + pr - k) / s + 1;
        float *in = rnd((size_t)C * H * W), *w = rnd((size_t)Co * C * k * k), *b = rnd(Co);
        float *o1 = malloc(sizeof(float) * Co * Ho * Wo), *o2 = malloc(sizeof(float) * Co * Ho * Wo);
        vq_conv2d(NULL, in, C, H, W, w, b, Co, k, s, pt, pl, pb, pr, o1);
        conv_ref(in, C, H, W, w, b, Co, k, s, pt, pl, pb, pr, o2);
        double e = rel_err(o1, o2, (size_t)Co * Ho * Wo);
        if (e > worst) worst = e;
        free(in); free(w); free(b); free(o1); free(o2);
    }
    CHECK(worst < 1e-5, "conv2d: 16 random shapes, k 1/3, stride 1/2 with asymmetric pad, rel err %.2g < 1e-5", worst);
}

/* oneDNN's direct convolution: bit-identical across thread counts; bf16
 * inputs (where the CPU has them) within bf16 rounding of the fp32 result. */
static void test_conv_threads_bf16(void)
{
    int C = 64, Co = 96, H = 37, W = 29;
    float *in = rnd((size_t)C * H * W), *w = rnd((size_t)Co * C * 9), *b = rnd(Co);
    size_t n = (size_t)Co * H * W;
    float *o1 = malloc(sizeof(float) * n), *o2 = malloc(sizeof(float) * n), *o3 = malloc(sizeof(float) * n);
    const struct vq_exec one = vq_exec_make(NULL, 1), two = vq_exec_make(NULL, 2);
    vq_conv2d(&one, in, C, H, W, w, b, Co, 3, 1, 1, 1, 1, 1, o1);
    vq_conv2d(&two, in, C, H, W, w, b, Co, 3, 1, 1, 1, 1, 1, o2);
    CHECK(!memcmp(o1, o2, sizeof(float) * n), "conv2d: bit-identical with 1 and 2 threads");
    const struct vq_backend *bf16 = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16);
    if (bf16) {
        const struct vq_exec ex = vq_exec_make(bf16, 0);
        vq_conv2d(&ex, in, C, H, W, w, b, Co, 3, 1, 1, 1, 1, 1, o3);
        double e = 0, s = 0;
        for (size_t i = 0; i < n; i++) { e += fabs(o3[i] - o1[i]); s += fabs(o1[i]); }
        CHECK(e / s < 1e-2, "conv2d bf16: mean relative error %.2g < 1e-2 against fp32", e / s);
    } else {
        printf("ok - conv2d bf16: no native bf16 on this CPU, fp32 used (skipped comparison)\n");
    }
    free(in); free(w); free(b); free(o1); free(o2); free(o3);
}

/* The few-rows bf16 kernel on AMX tiles (linear_amx.c), where the CPU
 * has them: against the AVX512_BF16 kernel on the same bf16 inputs (fp32
 * sums in another order), each row as computed alone (batches of sequences
 * run it past VQ_SMALL_ROWS rows), bit-identical with 1 and 2 threads. */
static void test_linear_small_amx(void)
{
    static const int shapes[][2] = { { 64, 64 }, { 160, 320 }, { 1024, 128 } };   /* K, N */
    static const int Ts[] = { 1, 5, 16, 17, VQ_SMALL_ROWS, 3 * VQ_SMALL_ROWS + 5 };
    if (!vq_amx_bf16_ready() || !vq_linear_small_ready(1)) {
        printf("ok - linear, few rows, bf16 on AMX tiles: no AMX-BF16 on this CPU (skipped)\n");
        return;
    }
    int ok_run = 1, ok_rows = 1, ok_thr = 1, n = 0;
    double worst = 0;
    for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
        const int K = shapes[sh][0], N = shapes[sh][1];
        float *w = rnd((size_t)N * K), *b = rnd(N);
        /* blocks of 64 columns, [K/2][64][2] */
        uint16_t *blk = malloc(2 * (size_t)N * K);
        for (int c = 0; c < N; c++)
            for (int k = 0; k < K; k++)
                blk[(size_t)(c / 64) * 64 * K + (size_t)(k / 2) * 128 + (c % 64) * 2 + (k & 1)] =
                    vq_bf16_round(w[(size_t)c * K + k]);
        for (size_t ti = 0; ti < sizeof(Ts) / sizeof(Ts[0]); ti++) {
            const int T = Ts[ti];
            const float *bias = ti & 1 ? NULL : b;
            float *x = rnd((size_t)T * K);
            uint16_t *xb = malloc(2 * (size_t)T * K);
            vq_f32_to_bf16(x, xb, (size_t)T * K);
            float *y = malloc(sizeof(float) * T * N), *y1 = malloc(sizeof(float) * T * N), *yv = malloc(sizeof(float) * T * N);
            ok_run &= !vq_linear_bf16_amx(2, xb, T, K, blk, bias, N, 0, y) &&
                      !vq_linear_small_bf16(2, xb, T, K, blk, bias, N, y1);
            ok_run &= !memcmp(y, y1, sizeof(float) * T * N);   /* the kernel the products take here */
            vq_linear_small_force(3);
            ok_run &= !vq_linear_small_bf16(2, xb, T, K, blk, bias, N, yv);
            vq_linear_small_force(-1);
            for (size_t i = 0; i < (size_t)T * N; i++) {
                const double d = fabs((double)y[i] - yv[i]) / (1.0 + fabs((double)yv[i]));
                if (!(d <= worst)) worst = d;
            }
            for (int r = 0; r < T; r++) {
                vq_linear_bf16_amx(2, xb + (size_t)r * K, 1, K, blk, bias, N, 0, y1);
                ok_rows &= !memcmp(y1, y + (size_t)r * N, sizeof(float) * N);
            }
            vq_linear_bf16_amx(1, xb, T, K, blk, bias, N, 0, y1);
            ok_thr &= !memcmp(y, y1, sizeof(float) * T * N);
            n++;
            free(x); free(xb); free(y); free(y1); free(yv);
        }
        free(w); free(b); free(blk);
    }
    CHECK(ok_run && worst < 1e-5, "linear, few rows, bf16 on AMX tiles: %d products (K 64..1024, N 64..320, 1..%d "
          "rows), the products' kernel here, within %.2g of the AVX512_BF16 kernel's sums (< 1e-5, relative to "
          "1 + |y|)", n, 3 * VQ_SMALL_ROWS + 5, worst);
    CHECK(ok_rows, "linear, few rows, bf16 on AMX tiles: each row as computed alone, bit for bit");
    CHECK(ok_thr, "linear, few rows, bf16 on AMX tiles: bit-identical with 1 and 2 threads");
}

/* The AMX tiles' products over K in chunks (linear_amx.c's chunk_rows: K
 * above 1024, the MLP's second product): bit for bit the sums of one sweep
 * over K (the same product where the threads are too many for whole groups
 * of blocks), with every epilogue, any thread count, each row as computed
 * alone, runs of rows past the sums' slot (CHUNK_ROWS), a last chunk
 * shorter than the others, a last group of fewer blocks; and within 1e-4
 * of the AVX512_BF16 kernel. */
static void test_linear_amx_chunks(void)
{
    static const int shapes[][4] = { { 2080, 512, 48, 2 }, { 4096, 512, 300, 2 }, { 2080, 768, 77, 3 },
                                     { 4096, 512, 1100, 1 }, { 2080, 576, 64, 2 } };   /* K, N, T, threads */
    if (!vq_amx_bf16_ready()) {
        printf("ok - linear, bf16 on AMX tiles over K in chunks: no AMX-BF16 on this CPU (skipped)\n");
        return;
    }
    int ok_taken = 1, ok_sweep = 1, ok_thr = 1, ok_rows = 1, n = 0;
    const unsigned long ran0 = vq_linear_bf16_amx_chunked_calls();
    double worst = 0;
    for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
        const int K = shapes[sh][0], N = shapes[sh][1], T = shapes[sh][2], nt = shapes[sh][3];
        const int sweep_nt = N / 64 / 4 + 1;   /* too many threads for whole groups: one sweep over K */
        ok_taken &= vq_linear_bf16_amx_chunked(nt, T, K, N) && vq_linear_bf16_amx_chunked(1, T, K, N) &&
                    !vq_linear_bf16_amx_chunked(sweep_nt, T, K, N) && !vq_linear_bf16_amx_chunked(nt, 1, K, N) &&
                    !vq_linear_bf16_amx_chunked(nt, T, 1024, N);
        float *w = rnd((size_t)N * K), *b = rnd(N), *x = rnd((size_t)T * K), *base = rnd((size_t)T * N);
        uint16_t *blk = malloc(2 * (size_t)N * K), *xb = malloc(2 * (size_t)T * K);
        for (int c = 0; c < N; c++)
            for (int k = 0; k < K; k++)
                blk[(size_t)(c / 64) * 64 * K + (size_t)(k / 2) * 128 + (c % 64) * 2 + (k & 1)] =
                    vq_bf16_round(w[(size_t)c * K + k]);
        vq_f32_to_bf16(x, xb, (size_t)T * K);
        float *y = malloc(sizeof(float) * T * N), *y1 = malloc(sizeof(float) * T * N);
        for (int epi = 0; epi < 3; epi++) {
            const int e = epi == 1 ? VQ_EPI_ADD : epi == 2 ? VQ_EPI_GELU_BF16 : 0;
            const float *bias = sh & 1 ? NULL : b;
            const size_t bytes = (e == VQ_EPI_GELU_BF16 ? 2 : 4) * (size_t)T * N;
            memcpy(y, base, sizeof(float) * T * N);
            memcpy(y1, base, sizeof(float) * T * N);
            ok_sweep &= !vq_linear_bf16_amx(nt, xb, T, K, blk, bias, N, e, y) &&
                        !vq_linear_bf16_amx(sweep_nt, xb, T, K, blk, bias, N, e, y1) && !memcmp(y, y1, bytes);
            memcpy(y1, base, sizeof(float) * T * N);
            vq_linear_bf16_amx(nt == 1 ? 2 : 1, xb, T, K, blk, bias, N, e, y1);
            ok_thr &= !memcmp(y, y1, bytes);
            n++;
            if (e) continue;
            for (int r = 0; r < T; r += 1 + r % 29) {
                vq_linear_bf16_amx(nt, xb + (size_t)r * K, 1, K, blk, bias, N, 0, y1);
                ok_rows &= !memcmp(y1, y + (size_t)r * N, sizeof(float) * N);
            }
            if (vq_linear_small_ready(1)) {
                vq_linear_small_force(3);
                const int rc = vq_linear_small_bf16(2, xb, T, K, blk, bias, N, y1);
                vq_linear_small_force(-1);
                const double d = rc ? 1 : rel_err(y, y1, (size_t)T * N);
                if (!(d <= worst)) worst = d;
            }
        }
        free(w); free(b); free(x); free(base); free(blk); free(xb); free(y); free(y1);
    }
    /* each product's first call and its call on the other thread count ran chunked; the sweeps and rows not */
    const unsigned long ran = vq_linear_bf16_amx_chunked_calls() - ran0;
    CHECK(ok_taken && ran == 2ul * n, "linear, bf16 on AMX tiles over K in chunks: taken for K > 1024, 48 rows or "
          "more, 4 blocks a thread (%lu of %d calls that should); not otherwise", ran, 2 * n);
    CHECK(ok_sweep, "linear, bf16 on AMX tiles over K in chunks: %d products (K 2080 and 4096, 48..1100 rows, no "
          "epilogue, y +=, GELU to bf16), bit for bit one sweep over K", n);
    /* fp32 sums of up to 4096 products in two orders (32 k a tile step
     * against vdpbf16ps's pairs): |y| about 20 here */
    CHECK(worst < 1e-4, "linear, bf16 on AMX tiles over K in chunks: within %.2g of the AVX512_BF16 kernel's sums "
          "(< 1e-4, relative to 1 + |y|)", worst);
    CHECK(ok_thr, "linear, bf16 on AMX tiles over K in chunks: bit-identical with 1, 2 and 3 threads");
    CHECK(ok_rows, "linear, bf16 on AMX tiles over K in chunks: each row as computed alone, bit for bit");
}

/* bf16 products with weights repacked once (the transformer's path). */
static void test_linear_bf16(void)
{
    const struct vq_backend *bf16 = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16);
    if (!bf16) {
        printf("ok - linear bf16: no native bf16 on this CPU, fp32 used (skipped comparison)\n");
        return;
    }
    /* 1000 columns: the last panel is not whole 64-column blocks, so every
     * row count goes to oneDNN; 320: up to VQ_SMALL_ROWS rows stream the
     * blocks directly (linear_small.c) */
    static const int shapes[2][2] = { { 256, 1000 }, { 160, 320 } };
    static const int Ts[] = { 1, 8, 37, 5, 16, VQ_SMALL_ROWS };
    for (int sh = 0; sh < 2; sh++) {
    const int Din = shapes[sh][0], Dout = shapes[sh][1];
    float *w = rnd((size_t)Dout * Din), *b = rnd(Dout);
    const struct vq_exec one = vq_exec_make(bf16, 1), two = vq_exec_make(bf16, 2);
    struct vq_packed *pk = vq_backend_pack(bf16, w, Dout, Din, NULL);
    CHECK(pk != NULL, "linear bf16 %dx%d: weight repacked", Din, Dout);
    for (int k = 0; k < (sh ? 6 : 3); k++) {
        const int T = Ts[k];
        float *x = rnd((size_t)T * Din);
        float *y0 = malloc(sizeof(float) * T * Dout), *y1 = malloc(sizeof(float) * T * Dout),
              *y2 = malloc(sizeof(float) * T * Dout);
        vq_linear(NULL, x, T, Din, w, NULL, b, Dout, y0);
        vq_linear(&one, x, T, Din, w, pk, b, Dout, y1);
        vq_linear(&two, x, T, Din, w, pk, b, Dout, y2);
        double e = 0, s = 0;
        for (int i = 0; i < T * Dout; i++) { e += fabs(y1[i] - y0[i]); s += fabs(y0[i]); }
        CHECK(e / s < 1e-2 && e > 0, "linear bf16 %dx%d, %d rows: mean relative error %.2g < 1e-2 against fp32",
              Din, Dout, T, e / s);
        CHECK(!memcmp(y1, y2, sizeof(float) * T * Dout), "linear bf16 %dx%d, %d rows: bit-identical with 1 and 2 "
              "threads", Din, Dout, T);
        /* from the input rounded once beforehand (gpt.c: k, v and q share it) */
        uint16_t *xb = malloc(sizeof(uint16_t) * T * Din);
        vq_f32_to_bf16_par(2, x, xb, (size_t)T * Din);
        CHECK(vq_linear_bf16_input(&two, pk) && !vq_linear_bf16(&two, xb, T, pk, b, y2) &&
              !memcmp(y1, y2, sizeof(float) * T * Dout), "linear bf16 %dx%d, %d rows: from a bf16 input, the same "
              "bits", Din, Dout, T);
        free(xb);
        if (sh && T <= VQ_SMALL_ROWS) {
            /* the same bf16 inputs through oneDNN: fp32 sums in another order */
            vq_linear_small_force(0);
            vq_linear(&two, x, T, Din, w, pk, b, Dout, y2);
            vq_linear_small_force(-1);
            double d = 0;
            for (int i = 0; i < T * Dout; i++) {
                const double t = fabs((double)y1[i] - y2[i]) / (1.0 + fabs((double)y2[i]));
                if (!(t <= d)) d = t;
            }
            CHECK(d < 1e-5, "linear bf16 %dx%d, %d rows: streamed kernel within %.2g of oneDNN's (< 1e-5)", Din, Dout,
                  T, d);
        }
        free(x); free(y0); free(y1); free(y2);
    }
    /* the packed weight is the caller's (the model's): without it the same
     * backend computes in fp32 from the f32 weights */
    vq_backend_pack_free(bf16, pk);
    {
        const int T = 16;
        float *x = rnd((size_t)T * Din), *y0 = malloc(sizeof(float) * T * Dout), *y1 = malloc(sizeof(float) * T * Dout);
        vq_linear(NULL, x, T, Din, w, NULL, b, Dout, y0);
        vq_linear(&two, x, T, Din, w, NULL, b, Dout, y1);
        CHECK(!memcmp(y0, y1, sizeof(float) * T * Dout), "linear bf16 %dx%d: without its packed weight the bf16 "
              "backend's product is the fp32 one, bit for bit", Din, Dout);
        free(x); free(y0); free(y1);
    }
    free(w); free(b);
    }
}

/* bf16 products whose panels form one blocked matrix run as one oneDNN call
 * writing y directly (backend_dnnl.c, linear_whole): the same bits as the
 * panels' calls, with 1 and 2 threads, at the transformer's row counts. */
static void test_linear_bf16_whole(void)
{
    const struct vq_backend *bf16 = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16);
    if (!bf16) {
        printf("ok - linear bf16, whole products: no native bf16 on this CPU (skipped)\n");
        return;
    }
    static const int shapes[][2] = { { 256, 1024 }, { 128, 320 }, { 512, 256 }, { 1024, 576 } };   /* K, N */
    static const int Ts[] = { VQ_SMALL_ROWS + 1, 40, 64, 100, 136, 256, 392 };
    int ok = 1, ok_thr = 1, n = 0;
    vq_linear_bf16_force(0);   /* oneDNN's products, not our own kernel's */
    for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
        const int K = shapes[sh][0], N = shapes[sh][1];
        float *w = rnd((size_t)N * K), *b = rnd(N);
        struct vq_packed *pk = vq_backend_pack(bf16, w, N, K, NULL);
        const struct vq_exec one = vq_exec_make(bf16, 1), two = vq_exec_make(bf16, 2);
        for (size_t k = 0; k < sizeof(Ts) / sizeof(Ts[0]); k++) {
            const int T = Ts[k];
            float *x = rnd((size_t)T * K), *y0 = malloc(sizeof(float) * T * N), *y1 = malloc(sizeof(float) * T * N),
                  *y2 = malloc(sizeof(float) * T * N);
            vq_dnnl_whole_force_off(1);
            vq_linear(&two, x, T, K, w, pk, sh & 1 ? NULL : b, N, y0);
            vq_dnnl_whole_force_off(0);
            vq_linear(&two, x, T, K, w, pk, sh & 1 ? NULL : b, N, y1);
            vq_linear(&one, x, T, K, w, pk, sh & 1 ? NULL : b, N, y2);
            ok &= pk && !memcmp(y0, y1, sizeof(float) * T * N);
            ok_thr &= !memcmp(y1, y2, sizeof(float) * T * N);
            n++;
            free(x); free(y0); free(y1); free(y2);
        }
        vq_backend_pack_free(bf16, pk);
        free(w); free(b);
    }
    vq_linear_bf16_force(-1);
    CHECK(ok, "linear bf16, whole products: one call writing y gives the panels' bits (%d products, K 128..1024, "
          "N 256..1024, %d..392 rows, with and without bias)", n, VQ_SMALL_ROWS + 1);
    CHECK(ok_thr, "linear bf16, whole products: bit-identical with 1 and 2 threads");
}

/* bf16 products of many rows by our own kernel (linear_bf16.h): each
 * element's sum has the few-rows kernel's bits (the same vdpbf16ps sums in
 * the order of k), so a row's product does not depend on the row count,
 * the kernel or the threads; within 1e-5 of oneDNN's (another order), and
 * within bf16 rounding of fp32. Where the weights are not whole blocks of 64
 * columns, oneDNN computes them. */
static void test_linear_bf16_rows(void)
{
    const struct vq_backend *bf16 = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16);
    if (!bf16 || !vq_dnnl_bf16_own()) {
        printf("ok - linear bf16, own kernel: not used on this CPU (no AVX512_BF16, or oneDNN on AMX; skipped)\n");
        return;
    }
    /* K, N; 1000 columns are not whole blocks: oneDNN computes them */
    static const int shapes[][2] = { { 256, 1024 }, { 1024, 256 }, { 64, 128 }, { 96, 64 }, { 160, 1000 } };
    static const int Ts[] = { VQ_SMALL_ROWS + 1, 37, 64, 137, 392 };
    int ok_small = 1, ok_thr = 1, ok_own = 1, ok_fp32 = 1, n = 0;
    double worst = 0;
    for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
        const int K = shapes[sh][0], N = shapes[sh][1];
        float *w = rnd((size_t)N * K), *b = rnd(N);
        struct vq_packed *pk = vq_backend_pack(bf16, w, N, K, NULL);
        for (size_t k = 0; k < sizeof(Ts) / sizeof(Ts[0]) && pk; k++) {
            const int T = Ts[k];
            const size_t nx = (size_t)T * K, ny = (size_t)T * N;
            float *x = rnd(nx), *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
            float *y2 = malloc(sizeof(float) * ny), *yd = malloc(sizeof(float) * ny), *yf = malloc(sizeof(float) * ny);
            uint16_t *xb = malloc(2 * nx);
            vq_f32_to_bf16(x, xb, nx);
            const float *bias = k & 1 ? NULL : b;
            /* the few-rows kernel over all T rows, our kernel on 2 and 1 threads */
            ok_own &= !vq_dnnl_linear_bf16_in(2, T, pk, xb, T, bias, y0);
            ok_own &= !vq_dnnl_linear_bf16_in(2, VQ_SMALL_ROWS, pk, xb, T, bias, y1);
            ok_own &= !vq_dnnl_linear_bf16_in(1, VQ_SMALL_ROWS, pk, xb, T, bias, y2);
            vq_linear_bf16_force(0);
            ok_own &= !vq_dnnl_linear_bf16_in(2, VQ_SMALL_ROWS, pk, xb, T, bias, yd);
            vq_linear_bf16_force(-1);
            ok_small &= N % 64 || !memcmp(y0, y1, sizeof(float) * ny);
            ok_thr &= !memcmp(y1, y2, sizeof(float) * ny);
            vq_linear(NULL, x, T, K, w, NULL, bias, N, yf);
            double e = 0, s = 0;
            for (size_t i = 0; i < ny; i++) {
                const double t = fabs((double)y1[i] - yd[i]) / (1.0 + fabs((double)yd[i]));
                if (!(t <= worst)) worst = t;
                e += fabs((double)y1[i] - yf[i]);
                s += fabs((double)yf[i]);
            }
            ok_fp32 &= e / s < 1e-2 && e > 0;
            n++;
            free(x); free(y0); free(y1); free(y2); free(yd); free(yf); free(xb);
        }
        ok_own &= pk != NULL;
        vq_backend_pack_free(bf16, pk);
        free(w); free(b);
    }
    CHECK(ok_own, "linear bf16, own kernel: every product ran (%d products, K 64..1024, N 64..1024, %d..392 rows)", n,
          VQ_SMALL_ROWS + 1);
    CHECK(ok_small, "linear bf16, own kernel: the few-rows kernel's bits at every row count, with and without bias");
    CHECK(ok_thr, "linear bf16, own kernel: bit-identical with 1 and 2 threads");
    CHECK(worst < 1e-5, "linear bf16, own kernel: within %.2g of oneDNN's sums (< 1e-5, relative to 1 + |y|)", worst);
    CHECK(ok_fp32, "linear bf16, own kernel: mean relative error < 1e-2 against fp32");
}

/* bf16 products with their epilogue (ops.h vq_linear_bf16_add and
 * vq_linear_bf16_gelu): the add gives the bits of the product followed by
 * vq_add at every row count; GELU into bf16 the bits of vq_vgelu_poly and
 * the rounding, from the few-rows kernel (the epilogue after it) and our
 * own kernel (on its registers) alike; oneDNN's fused gelu_erf (our kernel
 * off, or on AMX) within one bf16 rounding step of that, on a small share
 * of the elements. Each gives a row the same bits whatever else its call
 * holds, and the same with 1 and 2 threads. */
static void test_linear_bf16_epilogue(void)
{
    const struct vq_backend *bf16 = vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_BF16);
    if (!bf16) {
        printf("ok - linear bf16 epilogues: no native bf16 on this CPU (skipped)\n");
        return;
    }
    static const int shapes[][2] = { { 256, 1024 }, { 1024, 256 }, { 512, 576 } };   /* K, N */
    static const int Ts[] = { 1, 7, VQ_SMALL_ROWS, VQ_SMALL_ROWS + 1, 64, 136, 392 };
    int ok_add = 1, ok_gelu = 1, ok_rows = 1, ok_thr = 1, n = 0;
    size_t diff = 0, total = 0;
    double worst = 0;
    for (int own = 1; own >= 0; own--) {
    vq_linear_bf16_force(own ? -1 : 0);
    for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
        const int K = shapes[sh][0], N = shapes[sh][1];
        float *w = rnd((size_t)N * K), *b = rnd(N);
        for (size_t i = 0; i < (size_t)N * K; i++) w[i] *= 4.0f / sqrtf((float)K);   /* pre-activations ~ +-4 */
        struct vq_packed *pk = vq_backend_pack(bf16, w, N, K, NULL);
        const struct vq_exec one = vq_exec_make(bf16, 1), two = vq_exec_make(bf16, 2);
        for (size_t k = 0; k < sizeof(Ts) / sizeof(Ts[0]) && pk; k++) {
            const int T = Ts[k];
            const size_t nx = (size_t)T * K, ny = (size_t)T * N;
            float *x = rnd(nx), *acc = rnd(ny), *y0 = malloc(sizeof(float) * ny), *ya = malloc(sizeof(float) * ny);
            float *yt = malloc(sizeof(float) * ny);
            uint16_t *xb = malloc(2 * nx), *g0 = malloc(2 * ny), *g1 = malloc(2 * ny), *g2 = malloc(2 * ny);
            vq_f32_to_bf16(x, xb, nx);
            /* add: against the product and vq_add */
            memcpy(y0, acc, sizeof(float) * ny);
            vq_linear_bf16(&two, xb, T, pk, b, yt);
            vq_add(&two, y0, yt, ny);
            memcpy(ya, acc, sizeof(float) * ny);
            ok_add &= !vq_linear_bf16_add(&two, xb, T, pk, b, ya) && !memcmp(ya, y0, sizeof(float) * ny);
            memcpy(ya, acc, sizeof(float) * ny);
            ok_thr &= !vq_linear_bf16_add(&one, xb, T, pk, b, ya) && !memcmp(ya, y0, sizeof(float) * ny);
            /* GELU: against vq_vgelu_poly and the rounding */
            vq_vgelu_poly(yt, ny);
            vq_f32_to_bf16(yt, g0, ny);
            ok_gelu &= !vq_linear_bf16_gelu(&two, xb, T, pk, b, g1);
            ok_thr &= !vq_linear_bf16_gelu(&one, xb, T, pk, b, g2) && !memcmp(g1, g2, 2 * ny);
            if (T <= VQ_SMALL_ROWS || (own && vq_dnnl_bf16_own())) {
                ok_gelu &= !memcmp(g0, g1, 2 * ny);
            } else {
                for (size_t i = 0; i < ny; i++) {
                    if (g0[i] == g1[i]) continue;
                    uint32_t u0 = (uint32_t)g0[i] << 16, u1 = (uint32_t)g1[i] << 16;
                    float f0, f1;
                    memcpy(&f0, &u0, 4);
                    memcpy(&f1, &u1, 4);
                    /* relative to one bf16 step of the value, or absolute
                     * near zero (the tail of large negative inputs, where
                     * the approximations differ by ~1e-7 absolute) */
                    const double d = fabs((double)f0 - f1) / (fabs((double)f0) + 1e-4);
                    if (!(d <= worst)) worst = d;
                    diff++;
                }
                total += ny;
            }
            /* a row's bits without the rows after it */
            const int half = T / 2 > VQ_SMALL_ROWS ? T / 2 : VQ_SMALL_ROWS + 1;
            if (T > VQ_SMALL_ROWS && half < T)
                ok_rows &= !vq_linear_bf16_gelu(&two, xb, half, pk, b, g2) && !memcmp(g1, g2, 2 * (size_t)half * N);
            n++;
            free(x); free(acc); free(y0); free(ya); free(yt); free(xb); free(g0); free(g1); free(g2);
        }
        ok_add &= pk != NULL;
        vq_backend_pack_free(bf16, pk);
        free(w); free(b);
    }
    }
    vq_linear_bf16_force(-1);
    CHECK(ok_add, "linear bf16 + add: the bits of the product and vq_add (%d products, 1..392 rows, our kernel and "
          "oneDNN's)", n);
    CHECK(ok_gelu, "linear bf16 + GELU to bf16: the bits of vq_vgelu_poly and the rounding (up to %d rows, and past "
          "them in our kernel%s)", VQ_SMALL_ROWS, vq_dnnl_bf16_own() ? "" : ": not on this CPU");
    CHECK(total > 0 && diff * 100 <= total && worst <= 1.0 / 64,
          "linear bf16 + GELU to bf16, fused by oneDNN: %zu of %zu differ from vq_vgelu_poly's (at most 1 %%), by at "
          "most %.2g of |value| + 1e-4 (one bf16 step: <= 1/128; 1/64 allowed)", diff, total, worst);
    CHECK(ok_rows, "linear bf16 + GELU to bf16: a row's bits do not depend on the rows after it");
    CHECK(ok_thr, "linear bf16 epilogues: bit-identical with 1 and 2 threads");
}

/* Rows quantized once for several int8 products (vq_layer_norm_int8, then
 * vq_linear_int8 of any run of them, for packings of other widths too: the
 * transformer's key, value and query products) against vq_layer_norm
 * followed by vq_int8_linear of the same rows, bit for bit, with each
 * epilogue and each kernel; and what they refuse. */
static void test_int8_rows(void)
{
    static const int shapes[][3] = { { 1024, 192, 64 }, { 160, 64, 128 }, { 40, 7, 64 } };   /* K, N, other N */
    static const int Ts[] = { 1, 5, 7, 37, 100 };
    int ok = 1, n = 0, ok_err = 1;
    for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
        const int K = shapes[sh][0], N = shapes[sh][1], N2 = shapes[sh][2];
        float *w = rnd((size_t)N * K), *w2 = rnd((size_t)N2 * K), *b = rnd(N), *g = rnd(K), *be = rnd(K);
        struct vq_packed *pk = vq_int8_pack(w, N, K), *pk2 = vq_int8_pack(w2, N2, K);
        for (size_t ti = 0; pk && pk2 && ti < sizeof(Ts) / sizeof(Ts[0]); ti++) {
            const int T = Ts[ti], r0 = T / 3, m = T - r0;
            float *x = rnd((size_t)T * K), *xn = malloc(sizeof(float) * T * K);
            const int Nm = N > N2 ? N : N2;
            float *want = malloc(sizeof(float) * T * Nm), *got = malloc(sizeof(float) * T * Nm);
            vq_layer_norm(NULL, x, T, K, g, be, 1e-5f, xn);
            for (int kern = -1; kern < 4; kern++) {
                if ((kern > 0 && !vq_int8_native()) || (kern == 3 && !vq_amx_int8_ready())) continue;
                vq_int8_force(kern);
                struct vq_int8_rows r;
                if (vq_layer_norm_int8(NULL, x, T, K, g, be, 1e-5f, pk, &r)) { ok = 0; continue; }
                for (int epi = 0; epi < 3; epi++) {
                    const int e = epi == 0 ? 0 : epi == 1 ? VQ_EPI_ADD : VQ_EPI_GELU;
                    for (int i = 0; i < T * Nm; i++) want[i] = got[i] = (float)(i % 11) * 0.25f - 1.0f;
                    /* every row, then rows r0 .. T - 1 */
                    ok &= vq_int8_linear(2, pk, xn, T, b, e, want) == 0 && vq_linear_int8(NULL, &r, 0, T, pk, b, e, got) == 0 &&
                          !memcmp(want, got, sizeof(float) * T * N);
                    ok &= vq_int8_linear(2, pk, xn + (size_t)r0 * K, m, b, e, want) == 0 &&
                          vq_linear_int8(NULL, &r, r0, m, pk, b, e, got) == 0 && !memcmp(want, got, sizeof(float) * m * N);
                    /* the same rows for another packing of K inputs */
                    ok &= vq_int8_linear(2, pk2, xn + (size_t)r0 * K, m, NULL, e, want) == 0 &&
                          vq_linear_int8(NULL, &r, r0, m, pk2, NULL, e, got) == 0 &&
                          !memcmp(want, got, sizeof(float) * m * N2);
                    n++;
                }
                if (kern < 0 && ti == 0)
                    ok_err &= vq_linear_int8(NULL, &r, r0, m + 1, pk, b, 0, got) != 0 &&
                              vq_linear_int8(NULL, &r, -1, 1, pk, b, 0, got) != 0;
                vq_int8_rows_free(&r);
            }
            vq_int8_force(-1);
            free(x); free(xn); free(want); free(got);
        }
        /* what is not int8 products of K inputs */
        struct vq_int8_rows r;
        float *x = rnd(K);
        ok_err &= vq_layer_norm_int8(NULL, x, 1, K, g, be, 1e-5f, NULL, &r) == VQGAN_ERR_INVALID;
        ok_err &= !vq_linear_int8_input(NULL, NULL);
        if (pk && !vq_layer_norm_int8(NULL, x, 1, K, g, be, 1e-5f, pk, &r)) {
            struct vq_packed *other = vq_int8_pack(w, 1, K > 1 ? K - 1 : 2);   /* another K */
            float *y1 = malloc(sizeof(float) * N);
            ok_err &= other && vq_linear_int8(NULL, &r, 0, 1, other, NULL, 0, y1) != 0;
            vq_int8_pack_free(other);
            vq_int8_rows_free(&r);
            ok_err &= vq_linear_int8(NULL, &r, 0, 1, pk, NULL, 0, y1) != 0;   /* rows freed */
            free(y1);
        } else {
            ok_err = 0;
        }
        free(x);
        vq_int8_pack_free(pk); vq_int8_pack_free(pk2);
        free(w); free(w2); free(b); free(g); free(be);
    }
    CHECK(ok && n > 0, "int8: rows quantized once by vq_layer_norm_int8 give vq_layer_norm then vq_int8_linear's bits "
          "(%d cases: every row and a run of them, 3 epilogues, another packing's width, each kernel)", n);
    CHECK(ok_err, "int8: rows refused past their count, for another K and once freed, and layer norm into rows for "
          "non-int8 weights");
}

/* int8 products (backend_int8.h): the quantized operands as documented; the
 * VNNI kernel, oneDNN's sums (with the VNNI kernel's epilogue) and the scalar
 * kernel against a reference written here from the quantized operands with
 * exact (64-bit) integer sums and the documented epilogue, bit for bit;
 * threads and rows; the error against fp32. */
static void test_linear_int8(void)
{
    static const int shapes[][2] = { { 257, 1000 }, { 160, 320 }, { 3, 7 }, { 1024, 64 }, { 256, 192 } };   /* K, N */
    static const int Ts[] = { 1, 5, 6, 7, 16, VQ_SMALL_ROWS, 37, 100 };
    int ok_w = 1, ok_x = 1, ok_ref[4] = { 1, 1, 1, 1 }, ran[4] = { 0, 0, 0, 0 }, ok_thr = 1, ok_rows = 1, ok_epi = 1,
        n_epi = 0, ok_dnnl = 1, n_dnnl = 0;
    double err = 0, mag = 0, ulps = 0;   /* ulps: the epilogue against its exact value, below */
    for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
        const int K = shapes[sh][0], N = shapes[sh][1];
        float *w = rnd((size_t)N * K), *b = rnd(N);
        for (int i = 0; i < K; i++) w[(size_t)3 % N * K + i] *= 1e-3f;    /* a row of small weights */
        struct vq_packed *pk = vq_int8_pack(w, N, K);
        if (!pk) { CHECK(0, "int8: packing %dx%d", K, N); free(w); free(b); continue; }
        /* weights: sw = max|W[n]| / 127, Wq = W / sw rounded, |W - sw Wq| <= sw / 2 */
        int32_t *wq = malloc(sizeof(int32_t) * (size_t)N * K);
        float *sw = malloc(sizeof(float) * N);
        for (int n = 0; n < N; n++) {
            float amax = 0;
            for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(w[(size_t)n * K + k]));
            for (int k = 0; k < K; k++) {
                wq[(size_t)n * K + k] = vq_int8_weight(pk, n, k, &sw[n]);
                ok_w &= fabs((double)w[(size_t)n * K + k] - (double)sw[n] * wq[(size_t)n * K + k]) <= sw[n] * 0.5001 &&
                        abs(wq[(size_t)n * K + k]) <= 127;
            }
            ok_w &= sw[n] == amax / 127.0f;
        }
        for (size_t ti = 0; ti < sizeof(Ts) / sizeof(Ts[0]); ti++) {
            const int T = Ts[ti];
            float *x = rnd((size_t)T * K), *y = malloc(sizeof(float) * T * N), *r = malloc(sizeof(float) * T * N),
                  *y2 = malloc(sizeof(float) * T * N), *f = malloc(sizeof(float) * T * N),
                  *r0 = malloc(sizeof(float) * T * N);   /* r without a bias */
            for (int k = 0; k < K; k += 5) x[k] = 0.0f;
            for (int k = 0; k < K; k++) x[(size_t)(T - 1) * K + k] = fabsf(x[(size_t)(T - 1) * K + k]);   /* >= 0 */
            uint8_t *q = malloc(K);
            for (int t = 0; t < T; t++) {
                float sx;
                int32_t zx;
                vq_int8_quantize_row(x + (size_t)t * K, K, q, &sx, &zx);
                for (int k = 0; k < K; k++) {
                    const float v = x[(size_t)t * K + k];
                    ok_x &= fabs((double)v - (double)sx * (q[k] - zx)) <= sx * 0.5001 && (v != 0.0f || q[k] == zx);
                }
                for (int n = 0; n < N; n++) {
                    int64_t acc = 0, cs = 0;
                    for (int k = 0; k < K; k++) {
                        acc += (int64_t)q[k] * wq[(size_t)n * K + k];
                        cs += wq[(size_t)n * K + k];
                    }
                    /* backend_int8.h's epilogue: acc (sx sw) + (b - zx sx csw), two
                     * fused multiply-adds, csw = colsum sw rounded once */
                    const float csw = (float)(int32_t)cs * sw[n], zs = -((float)zx * sx);
                    r[(size_t)t * N + n] = fmaf((float)(int32_t)acc, sx * sw[n], fmaf(csw, zs, b[n]));
                    r0[(size_t)t * N + n] = fmaf((float)(int32_t)acc, sx * sw[n], csw * zs);
                    /* its error against the exact (acc - zx cs) sx sw + b, in units of 2^-24 of its
                     * terms' magnitudes (the part the two terms cancel is not kept) */
                    const double ex = (double)(acc - (int64_t)zx * cs) * ((double)sx * sw[n]) + b[n],
                                 terms = fabs((double)acc * sx * sw[n]) + fabs((double)zx * cs * sx * sw[n]) +
                                         fabs(b[n]);
                    if (terms > 0) ulps = fmax(ulps, fabs(r[(size_t)t * N + n] - ex) / (terms * 0x1p-24));
                }
            }
            vq_gemm_ref(0, 1, T, N, K, x, K, w, K, 0.0f, f, N);
            for (int i = 0; i < T * N; i++) {
                f[i] += b[i % N];
                err += fabs((double)f[i] - r[i]);
                mag += fabs((double)f[i]);
            }
            /* oneDNN's sums straight from the packing's layout as documented
             * (blocks of 64 columns of [K/4][64][4]: its BA16a64b4a), where
             * the shape is whole blocks of 64 */
            if (K % 64 == 0 && N % 64 == 0) {
                int8_t *wb = malloc((size_t)N * K);
                uint8_t *xq = malloc((size_t)T * K);
                int32_t *sums = malloc(sizeof(int32_t) * T * N);
                float scale;
                int32_t zero;
#define AT_BA16A64B4A(n, k) (((size_t)((n) / 64) * (K / 4) + (k) / 4) * 256 + ((n) % 64) * 4 + (k) % 4)
                for (int n = 0; n < N; n++)
                    for (int k = 0; k < K; k++) wb[AT_BA16A64B4A(n, k)] = (int8_t)wq[(size_t)n * K + k];
                for (int t = 0; t < T; t++)
                    vq_int8_quantize_row(x + (size_t)t * K, K, xq + (size_t)t * K, &scale, &zero);
                if (!vq_dnnl_int8_sums(2, xq, T, K, wb, N, sums)) {
                    n_dnnl++;
                    for (int t = 0; t < T; t++)
                        for (int n = 0; n < N; n++) {
                            int64_t a = 0;
                            for (int k = 0; k < K; k++) a += (int64_t)xq[(size_t)t * K + k] * wb[AT_BA16A64B4A(n, k)];
                            ok_dnnl &= a == sums[(size_t)t * N + n];
                        }
                }
#undef AT_BA16A64B4A
                free(wb); free(xq); free(sums);
            }
            for (int kern = 0; kern < 4; kern++) {
                if ((kern && !vq_int8_native()) || (kern == 3 && !vq_amx_int8_ready())) continue;
                vq_int8_force(kern);
                ran[kern] = 1;
                for (int i = 0; i < T * N; i++) y[i] = NAN;   /* nothing left from the kernel before */
                ok_ref[kern] &= vq_int8_linear(2, pk, x, T, NULL, 0, y) == 0 && !memcmp(y, r0, sizeof(float) * T * N);
                ok_ref[kern] &= vq_int8_linear(2, pk, x, T, b, 0, y) == 0 && !memcmp(y, r, sizeof(float) * T * N);
                vq_int8_linear(1, pk, x, T, b, 0, y2);
                ok_thr &= !memcmp(y, y2, sizeof(float) * T * N);
                for (int t = 0; t < T; t += 3) {
                    vq_int8_linear(2, pk, x + (size_t)t * K, 1, b, 0, y2);
                    ok_rows &= !memcmp(y2, y + (size_t)t * N, sizeof(float) * N);
                }
                /* the epilogues: the product's bits then vq_add / vq_vgelu_poly */
                float *acc = malloc(sizeof(float) * T * N), *want = malloc(sizeof(float) * T * N);
                for (int i = 0; i < T * N; i++) acc[i] = want[i] = (float)(i % 13) * 0.37f - 2.0f;
                vq_add(NULL, want, y, (size_t)T * N);
                ok_epi &= vq_int8_linear(2, pk, x, T, b, VQ_EPI_ADD, acc) == 0 &&
                          !memcmp(acc, want, sizeof(float) * T * N);
                memcpy(want, y, sizeof(float) * T * N);
                vq_vgelu_poly(want, (size_t)T * N);
                ok_epi &= vq_int8_linear(2, pk, x, T, b, VQ_EPI_GELU, acc) == 0 &&
                          !memcmp(acc, want, sizeof(float) * T * N);
                n_epi++;
                free(acc); free(want);
            }
            vq_int8_force(-1);
            free(x); free(y); free(r); free(y2); free(f); free(q); free(r0);
        }
        vq_int8_pack_free(pk);
        free(w); free(b); free(wq); free(sw);
    }
    CHECK(ok_w, "int8: weights per output channel, scale max|W|/127, |W - s Wq| <= s/2 (5 shapes, K 3..1024, N 7..1000)");
    CHECK(ok_epi && n_epi > 0, "int8: the add and GELU epilogues give the product's bits then vq_add / vq_vgelu_poly's (%d "
          "products, every kernel)", n_epi);
    CHECK(ok_x, "int8: rows of activations in 0..255 with a zero point, |x - s (q - z)| <= s/2, zero exact");
    CHECK(ulps <= 4, "int8: the epilogue's two fused multiply-adds within %.2f (bar 4) units of 2^-24 of its terms' "
          "magnitudes, |acc sx sw| + |zx colsum sx sw| + |b|, of the exact (acc - zx colsum) sx sw + b", ulps);
    if (vq_int8_native()) {
        /* the AVX-512 row quantizer against the scalar one: rows of every
         * tail length, of one sign, constant, zero, and with exact halves */
        int ok_q = 1;
        uint8_t q0[300], q1[300];
        for (int K = 1; K <= 300 && ok_q; K += K < 40 ? 1 : 37) {
            for (int kind = 0; kind < 6; kind++) {
                float *x = rnd((size_t)K);
                for (int k = 0; k < K; k++) {
                    if (kind == 1) x[k] = fabsf(x[k]) + 0.5f;          /* positive only */
                    if (kind == 2) x[k] = -fabsf(x[k]);                /* negative only */
                    if (kind == 3) x[k] = 0.25f;                       /* constant */
                    if (kind == 4) x[k] = 0.0f;
                    if (kind == 5) x[k] = (float)(k % 511) - 255.0f;   /* steps of exactly one, halves after scaling */
                }
                float s0, s1;
                int32_t z0, z1;
                vq_int8_force(0);
                vq_int8_quantize_row(x, K, q0, &s0, &z0);
                vq_int8_force(1);
                vq_int8_quantize_row(x, K, q1, &s1, &z1);
                ok_q &= s0 == s1 && z0 == z1 && !memcmp(q0, q1, (size_t)K);
                free(x);
            }
        }
        vq_int8_force(-1);
        CHECK(ok_q, "int8: the AVX-512 row quantizer gives the scalar one's bytes, scale and zero point (K 1..300, "
              "tails, one sign, constant and zero rows)");
    }
    CHECK(ok_ref[0], "int8, scalar kernel: 1..100 rows, bit-identical to the reference (exact integer sums, the "
          "documented epilogue, with and without a bias)");
    if (ran[1])
        CHECK(ok_ref[1], "int8, AVX512_VNNI kernel: 1..100 rows, bit-identical to the reference (exact integer sums, "
              "with and without a bias, whole and partial blocks of 64 columns)");
    else
        printf("ok - int8, AVX512_VNNI kernel: not on this CPU (skipped)\n");
#ifdef VQ_HAVE_DNNL
    if (vq_backend_get(VQ_BACKEND_DNNL, VQ_PREC_INT8)) {
        CHECK(n_dnnl > 0 && ok_dnnl, "int8, oneDNN's u8 x s8 -> s32 matmul on the packing's own bytes (BA16a64b4a): the "
              "exact integer sums (%d products, 1..100 rows)", n_dnnl);
    } else {
        /* without AVX512_VNNI and native bf16 (an AVX2 CPU) oneDNN may refuse
         * the layout; the int8 backend is not offered and int8 falls back */
        int down = 0;
        const struct vq_backend *be = vq_backend_choose(3, &down);
        CHECK(ok_dnnl && down && be->precision != VQ_PREC_INT8, "int8, without the int8 backend on this CPU: "
              "precision=int8 falls back to %s (downgraded); oneDNN took %d of the products on the packing's bytes, "
              "each with the exact integer sums", be->name, n_dnnl);
    }
    if (ran[2])
        CHECK(ok_ref[2], "int8, oneDNN's sums with the VNNI kernel's epilogue (forced): 1..100 rows, "
              "bit-identical to the reference, epilogues and threads as above");
#endif
    if (ran[3])
        CHECK(ok_ref[3], "int8, the AMX tiles' sums with the VNNI kernel's epilogue: 1..100 rows, K 3..1024 (padded to "
              "64), bit-identical to the reference, epilogues and threads as above");
    else
        printf("ok - int8, AMX tiles: not on this CPU (skipped: no AMX-INT8)\n");
    CHECK(ok_thr && ok_rows, "int8: bit-identical with 1 and 2 threads; each row as computed alone");
    CHECK(err / mag < 2e-2, "int8: mean relative error %.2g < 2e-2 against the fp32 product", err / mag);
}

/* Linear layers of a few rows (linear_small.c), at every instruction set
 * this CPU has: against the scalar reference; each row's result independent
 * of the other rows of the call; bit-identical with 1 and 2 threads. */
static void test_linear_small(void)
{
    static const int shapes[][2] = { { 1, 1 }, { 7, 3 }, { 16, 4 }, { 33, 5 }, { 96, 67 }, { 1024, 130 } };
    static const int Ts[] = { 1, 2, 3, 4, 5, 7, 16, VQ_SMALL_ROWS };
    static const char *names[] = { "", "AVX2", "AVX-512" };
    for (int level = 2; level >= 1; level--) {
        vq_linear_small_force(level);
        float probe = 0;
        const float one = 1.0f;
        if (vq_linear_small(1, &one, 1, 1, &one, NULL, 1, &probe)) {
            printf("ok - linear, few rows, %s: not on this CPU (skipped)\n", names[level]);
            continue;
        }
        int ok_ref = 1, ok_rows = 1, ok_thr = 1;
        double worst = 0;
        for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++)
            for (size_t ti = 0; ti < sizeof(Ts) / sizeof(Ts[0]); ti++) {
                const int K = shapes[sh][0], N = shapes[sh][1], T = Ts[ti];
                float *x = rnd((size_t)T * K), *w = rnd((size_t)N * K), *b = ti % 2 ? NULL : rnd(N);
                float *y = malloc(sizeof(float) * T * N), *r = malloc(sizeof(float) * T * N),
                      *y1 = malloc(sizeof(float) * N), *y2 = malloc(sizeof(float) * T * N);
                ok_ref &= vq_linear_small(2, x, T, K, w, b, N, y) == 0;
                vq_gemm_ref(0, 1, T, N, K, x, K, w, K, 0.0f, r, N);
                for (int i = 0; i < T * N; i++) {
                    if (b) r[i] += b[i % N];
                    /* fp32 sums of K terms of size <= 1: |error| <= K * 2^-23 or so */
                    const double e = fabs((double)y[i] - r[i]) / (1.0 + sqrt((double)K));
                    if (!(e <= worst)) worst = e;
                }
                for (int i = 0; i < T; i++) {
                    vq_linear_small(2, x + (size_t)i * K, 1, K, w, b, N, y1);
                    ok_rows &= !memcmp(y1, y + (size_t)i * N, sizeof(float) * N);
                }
                vq_linear_small(1, x, T, K, w, b, N, y2);
                ok_thr &= !memcmp(y, y2, sizeof(float) * T * N);
                free(x); free(w); free(b); free(y); free(r); free(y1); free(y2);
            }
        CHECK(ok_ref && worst < 1e-5, "linear, few rows, %s: 1..%d rows, K 1..1024, N 1..130: error %.2g "
              "(scaled by 1 + sqrt K) < 1e-5 against the reference", names[level], VQ_SMALL_ROWS, worst);
        CHECK(ok_rows, "linear, few rows, %s: each row as computed alone, bit for bit", names[level]);
        CHECK(ok_thr, "linear, few rows, %s: bit-identical with 1 and 2 threads", names[level]);
    }
    vq_linear_small_force(-1);
    {
        /* batches of sequences (vq_gpt_forward_batch) run the kernel beyond
         * VQ_SMALL_ROWS rows: each row keeps the bits of its own call */
        const int T = 3 * VQ_SMALL_ROWS + 5, K = 200, N = 70;
        float *x = rnd((size_t)T * K), *w = rnd((size_t)N * K);
        float *y = malloc(sizeof(float) * T * N), *y1 = malloc(sizeof(float) * N);
        int ok = !vq_linear_small(2, x, T, K, w, NULL, N, y);
        for (int t = 0; t < T && ok; t++)
            ok = !vq_linear_small(1, x + (size_t)t * K, 1, K, w, NULL, N, y1) &&
                 !memcmp(y1, y + (size_t)t * N, sizeof(float) * N);
        CHECK(ok, "linear, few rows: %d rows, each row as computed alone, bit for bit", T);
        free(x); free(w); free(y); free(y1);
    }
}

/* Working buffers of a stage call (scratch.h). */
static void test_scratch(void)
{
    const size_t big = (size_t)3 << 20;
    vq_scratch_begin();
    char *a = vq_scratch_alloc(big);
    CHECK(a && ((uintptr_t)a & 63) == 0, "scratch: 64-byte aligned");
    memset(a, 1, big);
    vq_scratch_free(a);
    char *b = vq_scratch_alloc(big - 4096);
    CHECK(b == a, "scratch: a block freed during a call is reused by the next that it holds");
    char *c = vq_scratch_alloc(big / 8);
    CHECK(c && c != b, "scratch: a request far smaller than the free blocks gets its own");
    vq_scratch_begin();                 /* nested: the outer end releases */
    vq_scratch_free(b);
    vq_scratch_end();
    char *d = vq_scratch_alloc(big);
    CHECK(d == a, "scratch: an inner end keeps the free blocks");
    vq_scratch_free(c);
    vq_scratch_free(d);
    vq_scratch_end();
    char *e = vq_scratch_alloc(100);
    CHECK(e != NULL, "scratch: outside a call it is malloc and free");
    vq_scratch_free(e);
    vq_scratch_free(NULL);
}

/* group_norm against a double reference: groups of a few vector lanes
 * (7x13), and groups over several of group_stats' runs with a partial last
 * one (37x29: 2 x 1073 values), offset far from zero */
static void group_norm_case(int C, int H, int W, float offset)
{
    const int HW = H * W;
    float *x = rnd((size_t)C * HW), *g = rnd(C), *b = rnd(C), *y = malloc(sizeof(float) * C * HW), *r = malloc(sizeof(float) * C * HW);
    for (int i = 0; i < C * HW; i++) x[i] = x[i] * 3 + offset;
    vq_group_norm(NULL, x, C, HW, 32, 1e-6f, g, b, y);
    for (int grp = 0; grp < 32; grp++) {
        int cpg = C / 32;
        double m = 0, v = 0;
        for (int i = 0; i < cpg * HW; i++) m += x[grp * cpg * HW + i];
        m /= cpg * HW;
        for (int i = 0; i < cpg * HW; i++) v += (x[grp * cpg * HW + i] - m) * (x[grp * cpg * HW + i] - m);
        v /= cpg * HW;
        for (int c = grp * cpg; c < (grp + 1) * cpg; c++)
            for (int i = 0; i < HW; i++)
                r[c * HW + i] = (float)((x[c * HW + i] - m) / sqrt(v + 1e-6) * g[c] + b[c]);
    }
    double e = rel_err(y, r, (size_t)C * HW);
    CHECK(e < 1e-5, "group_norm: %d channels, 32 groups, %dx%d, offset %g, rel err %.2g < 1e-5", C, H, W, offset, e);
    free(x); free(g); free(b); free(y); free(r);
}

/* The row kernels' double sum of 16 lanes (AVX-512's two vectors of 8, or
 * AVX2's four of 4): lane j sums elements j, j + 16, ... in order; then
 * lanes j and j + 8, then 4 onto 4, 2 onto 2, the last two
 * (_mm512_reduce_add_pd). */
static double lanes16_reduce(const double *lane)
{
    double l[8], t[4], h[2];
    for (int j = 0; j < 8; j++) l[j] = lane[j] + lane[j + 8];
    for (int j = 0; j < 4; j++) t[j] = l[j + 4] + l[j];
    for (int j = 0; j < 2; j++) h[j] = t[j + 2] + t[j];
    return h[0] + h[1];
}

/* layer norm of a row as the row kernels compute it, D a multiple of 16 */
static void layer_norm_lanes16(const float *x, int D, const float *g, const float *b, float eps, float *y)
{
    double lane[16] = { 0 };
    for (int i = 0; i < D; i++) lane[i % 16] += x[i];
    const double mean = lanes16_reduce(lane) / D;
    for (int j = 0; j < 16; j++) lane[j] = 0.0;
    for (int i = 0; i < D; i++) { const double d = (double)x[i] - mean; lane[i % 16] += d * d; }
    const double sq = lanes16_reduce(lane);
    const float inv = (float)(1.0 / sqrt(sq / D + eps)), m = (float)mean;
    for (int i = 0; i < D; i++) y[i] = (x[i] - m) * inv * g[i] + b[i];
}

static void test_norms(void)
{
    group_norm_case(64, 7, 13, 1);
    group_norm_case(64, 37, 29, 100);

    int T = 5, D = 37;
    float *lx = rnd((size_t)T * D), *lg = rnd(D), *lb = rnd(D), *ly = malloc(sizeof(float) * T * D), *lr = malloc(sizeof(float) * T * D);
    vq_layer_norm(NULL, lx, T, D, lg, lb, 1e-5f, ly);
    for (int t = 0; t < T; t++) {
        double m = 0, v = 0;
        for (int i = 0; i < D; i++) m += lx[t * D + i];
        m /= D;
        for (int i = 0; i < D; i++) v += (lx[t * D + i] - m) * (lx[t * D + i] - m);
        v /= D;
        for (int i = 0; i < D; i++) lr[t * D + i] = (float)((lx[t * D + i] - m) / sqrt(v + 1e-5) * lg[i] + lb[i]);
    }
    double e = rel_err(ly, lr, (size_t)T * D);
    CHECK(e < 1e-5, "layer_norm: 5x37, rel err %.2g < 1e-5", e);
    free(lx); free(lg); free(lb); free(ly); free(lr);

    /* widths of 16s take the row kernel (AVX-512, else AVX2) where the CPU
     * has one: the scalar loop's float arithmetic, only the double sums in
     * another order */
    for (int w = 0; w < 2; w++) {
        const int LT = 9, LD = w ? 1024 : 128;
        float *ax = rnd((size_t)LT * LD), *ag = rnd(LD), *ab = rnd(LD);
        float *ay = malloc(sizeof(float) * LT * LD), *ar = malloc(sizeof(float) * LT * LD);
        for (int i = 0; i < LT * LD; i++) ax[i] = ax[i] * (1 + i % 7) + 3.0f;  /* an offset mean, spread rows */
        vq_layer_norm(NULL, ax, LT, LD, ag, ab, 1e-5f, ay);
        for (int t = 0; t < LT; t++) {  /* the scalar loop, as written before the kernel */
            const float *xt = ax + (size_t)t * LD;
            double sum = 0.0, sq = 0.0;
            for (int i = 0; i < LD; i++) sum += xt[i];
            const double mean = sum / LD;
            for (int i = 0; i < LD; i++) { double d = xt[i] - mean; sq += d * d; }
            const float inv = (float)(1.0 / sqrt(sq / LD + 1e-5f)), m = (float)mean;
            for (int i = 0; i < LD; i++) ar[(size_t)t * LD + i] = (xt[i] - m) * inv * ag[i] + ab[i];
        }
        int same = 0;
        for (int i = 0; i < LT * LD; i++) same += memcmp(&ay[i], &ar[i], sizeof(float)) == 0;
        e = rel_err(ay, ar, (size_t)LT * LD);
        const char *kernel = vq_simd_level() >= 2 ? "AVX-512 kernel" : vq_simd_level() == 1 ? "AVX2 kernel" : "scalar";
        CHECK(e < 1e-6, "layer_norm: 9x%d (%s), rel err %.2g < 1e-6 against the scalar loop, %d of %d bit-identical",
              LD, kernel, e, same, LT * LD);
        if (vq_simd_level() >= 1) {   /* both kernels: the 16-lane sums' bits, each with the other forced off */
            int lanes_ok = 1;
            for (int t = 0; t < LT; t++)
                layer_norm_lanes16(ax + (size_t)t * LD, LD, ag, ab, 1e-5f, ar + (size_t)t * LD);
            for (int lv = vq_simd_level() >= 2 ? 2 : 1; lv >= 1; lv--) {
                vq_simd_force(lv);
                vq_layer_norm(NULL, ax, LT, LD, ag, ab, 1e-5f, ay);
                vq_simd_force(-1);
                lanes_ok &= !memcmp(ay, ar, sizeof(float) * LT * LD);
            }
            CHECK(lanes_ok, "layer_norm: 9x%d, the row kernel%s bit for bit the 16-lane double sums' result", LD,
                  vq_simd_level() >= 2 ? "s (AVX-512 and AVX2)" : " (AVX2)");
        }
        /* straight to bf16: vq_layer_norm's bits rounded, kernel and scalar loop */
        uint16_t *want = malloc(2 * (size_t)LT * LD), *got = malloc(2 * (size_t)LT * LD);
        int ok = 1;
        for (int f = 0; f < 2; f++) {
            if (f) vq_simd_force(0);
            vq_layer_norm(NULL, ax, LT, LD, ag, ab, 1e-5f, ay);
            vq_f32_to_bf16(ay, want, (size_t)LT * LD);
            vq_layer_norm_bf16(NULL, ax, LT, LD, ag, ab, 1e-5f, got);
            ok &= !memcmp(want, got, 2 * (size_t)LT * LD);
            vq_simd_force(-1);
        }
        CHECK(ok, "layer_norm to bf16: 9x%d, the fp32 rows' bits rounded (kernel and scalar loop)", LD);
        free(want); free(got);
        free(ax); free(ag); free(ab); free(ay); free(ar);
    }
}

static void test_pointwise(void)
{
    const int n = 1001;
    float *x = rnd(n), *y = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) x[i] *= 8;
    memcpy(y, x, sizeof(float) * n);
    vq_swish(NULL, y, n);
    for (int i = 0; i < n; i++) r[i] = (float)(x[i] / (1 + exp(-(double)x[i])));
    double e = rel_err(y, r, n);
    CHECK(e < 1e-6, "swish: rel err %.2g < 1e-6", e);
    memcpy(y, x, sizeof(float) * n);
    vq_gelu(NULL, y, n);
    for (int i = 0; i < n; i++) r[i] = (float)(0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0))));
    e = rel_err(y, r, n);
    CHECK(e < 1e-6, "gelu (exact erf): rel err %.2g < 1e-6", e);
    memcpy(y, x, sizeof(float) * n);
    vq_softmax(y, n);
    double mx = -1e30, sum = 0;
    for (int i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) sum += exp(x[i] - mx);
    for (int i = 0; i < n; i++) r[i] = (float)(exp(x[i] - mx) / sum);
    e = rel_err(y, r, n);
    CHECK(e < 1e-6, "softmax: 1001 values, rel err %.2g < 1e-6", e);
    /* lengths around the vector width: the masked tails */
    static const int lens[] = { 1, 2, 15, 16, 17, 31, 33, 392 };
    double worst = 0;
    int ok_max = 1;
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        const int m = lens[li];
        memcpy(y, x + 100, sizeof(float) * m);
        double mxl = -1e30, sl = 0;
        for (int i = 0; i < m; i++) if (y[i] > mxl) mxl = y[i];
        ok_max &= vq_vmax(y, m) == (float)mxl;
        for (int i = 0; i < m; i++) sl += exp(y[i] - mxl);
        vq_softmax(y, m);
        for (int i = 0; i < m; i++) {
            const double d = fabs(y[i] - exp(x[100 + i] - mxl) / sl);
            if (!(d <= worst)) worst = d;
        }
    }
    CHECK(ok_max && worst < 1e-6, "softmax and max at 1..392 values (vector tails): max exact, abs err %.2g < 1e-6",
          worst);

    int C = 3, H = 5, W = 7;
    float *u = malloc(sizeof(float) * C * 4 * H * W);
    vq_upsample2x(NULL, x, C, H, W, u);
    int ok = 1;
    for (int c = 0; c < C; c++)
        for (int yy = 0; yy < 2 * H; yy++)
            for (int xx = 0; xx < 2 * W; xx++)
                ok &= u[(c * 2 * H + yy) * 2 * W + xx] == x[(c * H + yy / 2) * W + xx / 2];
    CHECK(ok, "upsample2x: nearest, 3x5x7 exact");

    int T = 9, Din = 33, Dout = 17;
    float *lx = rnd((size_t)T * Din), *w = rnd((size_t)Dout * Din), *b = rnd(Dout), *ly = malloc(sizeof(float) * T * Dout), *lr = malloc(sizeof(float) * T * Dout);
    vq_linear(NULL, lx, T, Din, w, NULL, b, Dout, ly);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < Dout; o++) {
            double acc = b[o];
            for (int i = 0; i < Din; i++) acc += (double)lx[t * Din + i] * w[o * Din + i];
            lr[t * Dout + o] = (float)acc;
        }
    e = rel_err(ly, lr, (size_t)T * Dout);
    CHECK(e < 1e-5, "linear: 9x33 -> 17, rel err %.2g < 1e-5", e);
    free(x); free(y); free(r); free(u); free(lx); free(w); free(b); free(ly); free(lr);
}

/* Attention against a double-precision reference, for the AVX-512 kernels and
 * the vq_gemm path (keys transposed as in the cache): head widths the kernels
 * take (16, 48, 64) and one they do not (20); chunks with earlier positions
 * cached; the first positions unmasked. The kernels' rows do not depend on
 * the chunk they are computed in, nor on the thread count. */
static void attention_ref(const float *q, const float *Kt, int ldk, const float *V, int D, int nh, int nu, int L0,
                          int n, float *y)
{
    const int hd = D / nh;
    double *s = malloc(sizeof(double) * (L0 + n));
    for (int r = 0; r < n; r++)
        for (int h = 0; h < nh; h++) {
            const int pos = L0 + r, vis = pos < nu && nu > pos + 1 ? nu : pos + 1;
            double mx = -1e300, sum = 0;
            for (int t = 0; t < vis; t++) {
                double a = 0;
                for (int d = 0; d < hd; d++) a += (double)q[(size_t)r * D + h * hd + d] * Kt[(size_t)(h * hd + d) * ldk + t];
                s[t] = a / sqrt((double)hd);
                if (s[t] > mx) mx = s[t];
            }
            for (int t = 0; t < vis; t++) sum += s[t] = exp(s[t] - mx);
            for (int e = 0; e < hd; e++) {
                double a = 0;
                for (int t = 0; t < vis; t++) a += s[t] / sum * V[(size_t)t * D + h * hd + e];
                y[(size_t)r * D + h * hd + e] = (float)a;
            }
        }
    free(s);
}

static void test_attention(void)
{
    static const int cases[][5] = {   /* D, n_head, n_unmasked, L0, n */
        { 64, 1, 0, 0, 1 }, { 128, 2, 0, 0, 77 }, { 128, 2, 0, 50, 9 }, { 192, 4, 0, 133, 70 },
        { 96, 2, 0, 0, 130 }, { 64, 4, 0, 37, 1 }, { 40, 2, 0, 5, 40 }, { 128, 2, 24, 0, 40 }, { 128, 2, 24, 24, 3 },
    };
    /* without AVX-512 the kernels' slot runs vq_gemm too */
    static const char *names[] = { "vq_gemm", "AVX-512 kernels" }, *absent = "AVX-512 kernels' slot: vq_gemm on this CPU";
    const struct vq_exec one = vq_exec_make(NULL, 1), two = vq_exec_make(NULL, 2);
    for (int kern = 1; kern >= 0; kern--) {
        vq_attention_force(kern);
        double worst = 0;
        int ok_rows = 1, ok_thr = 1;
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            const int D = cases[c][0], nh = cases[c][1], nu = cases[c][2], L0 = cases[c][3], n = cases[c][4];
            const int T = L0 + n, ldk = T + 3;
            float *q = rnd((size_t)n * D), *Kt = rnd((size_t)D * ldk), *V = rnd((size_t)T * D);
            for (size_t i = 0; i < (size_t)n * D; i++) q[i] *= 3.0f;
            float *att = malloc(sizeof(float) * nh * n * T), *y = malloc(sizeof(float) * n * D),
                  *r = malloc(sizeof(float) * n * D), *y1 = malloc(sizeof(float) * n * D);
            vq_attention(&two, q, Kt, ldk, V, D, nh, nu, L0, n, att, y);
            attention_ref(q, Kt, ldk, V, D, nh, nu, L0, n, r);
            for (int i = 0; i < n * D; i++) {
                const double e = fabs((double)y[i] - r[i]);
                if (!(e <= worst)) worst = e;
            }
            vq_attention(&one, q, Kt, ldk, V, D, nh, nu, L0, n, att, y1);
            ok_thr &= memcmp(y, y1, sizeof(float) * n * D) == 0;
            /* the same rows in a later chunk: positions L0+k.. on their own */
            const int k = n / 3;
            if (k > 0 && L0 + k >= nu) {
                vq_attention(&one, q + (size_t)k * D, Kt, ldk, V, D, nh, nu, L0 + k, n - k, att, y1);
                ok_rows &= memcmp(y + (size_t)k * D, y1, sizeof(float) * (n - k) * D) == 0;
            }
            free(q); free(Kt); free(V); free(att); free(y); free(r); free(y1);
        }
        const char *name = kern && vq_simd_level() < 2 ? absent : names[kern];
        CHECK(worst < 1e-5, "attention (%s): 9 shapes, abs err %.2g < 1e-5 against double", name, worst);
        CHECK(ok_thr, "attention (%s): bit-identical with 1 and 2 threads", name);
        if (kern && vq_simd_level() >= 2)
            CHECK(ok_rows, "attention (%s): a row's result does not depend on the chunk it is computed in", names[kern]);
    }
    vq_attention_force(-1);
}

/* The fp32 cache's keys, transposed (8 x 8 blocks in registers with AVX2,
 * elsewhere element by element): every element in place, nothing past the
 * rows written, at row counts off the block and dimensions off 16. */
static void test_transpose_keys(void)
{
    static const int ns[] = { 1, 7, 8, 9, 16, 77, 256 }, Ds[] = { 16, 40, 64, 128 };
    int ok = 1;
    for (int di = 0; di < 4; di++)
        for (int ni = 0; ni < 7; ni++) {
            const int n = ns[ni], D = Ds[di], ldk = n + 13;
            float *k = rnd((size_t)n * D), *Kt = malloc(sizeof(float) * (size_t)D * ldk);
            for (size_t i = 0; i < (size_t)D * ldk; i++) Kt[i] = -9.0f;
            vq_transpose_keys(NULL, k, n, D, Kt, ldk);
            for (int d = 0; d < D; d++)
                for (int t = 0; t < ldk; t++)
                    ok &= Kt[(size_t)d * ldk + t] == (t < n ? k[(size_t)t * D + d] : -9.0f);
            free(k); free(Kt);
        }
    CHECK(ok, "transpose keys (%s): every element in place, nothing past the rows, 1-256 rows, 16-128 dimensions",
          vq_simd_level() == 1 ? "AVX2 blocks" : "element by element");
}

static float round_bf16(float x)
{
    uint16_t b;
    vq_f32_to_bf16(&x, &b, 1);
    uint32_t u = (uint32_t)b << 16;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

static uint16_t bf16_bits(float x)
{
    uint16_t b;
    vq_f32_to_bf16(&x, &b, 1);
    return b;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* vq_bf16_round_512 (the layer norm's, the keys' and attention's output
 * rounding) against vq_bf16_round, 16 values at a time. */
__attribute__((target("avx512f"))) static int bf16_round_512_matches(const float *x, int n)
{
    int ok = 1;
    for (int i = 0; i + 16 <= n; i += 16) {
        uint32_t lanes[16];
        _mm512_storeu_si512(lanes, vq_bf16_round_512(_mm512_loadu_ps(x + i)));
        for (int j = 0; j < 16; j++) ok &= lanes[j] == vq_bf16_round(x[i + j]);
    }
    return ok;
}
#else
static int bf16_round_512_matches(const float *x, int n) { (void)x; (void)n; return 1; }
#endif

/* vq_f32_to_bf16 on many values at once (16 lanes where the CPU has
 * AVX-512) against one value at a time (the scalar loop): ties, NaNs,
 * infinities, subnormals and values that round up into the exponent. */
static void test_bf16_rounding(void)
{
    enum { N = 16 * 19 + 5 };
    static const uint32_t special[] = { 0x7fc00000u, 0x7f800001u, 0xffc00001u, 0x7f800000u, 0xff800000u,
                                        0x00000001u, 0x00008000u, 0x00018000u, 0x007fffffu, 0x80008000u,
                                        0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0x477fffffu,
                                        0x00000000u, 0x80000000u, 0x3f7f8000u };
    float x[N];
    uint16_t y[N];
    uint64_t st = 12345;
    for (int i = 0; i < N; i++) {
        uint32_t u;
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        u = (uint32_t)(st >> 32);
        if (i % 3 == 0) u = special[(i / 3) % (sizeof(special) / sizeof(special[0]))];
        if (i % 7 == 1) u = (u & 0xffff0000u) | 0x8000u;    /* an exact tie */
        memcpy(&x[i], &u, 4);
    }
    int ok = 1;
    for (int off = 0; off < 3; off++) {
        vq_f32_to_bf16(x + off, y, (size_t)(N - off));
        for (int i = 0; i < N - off; i++)
            ok &= y[i] == bf16_bits(x[off + i]);
    }
    CHECK(ok, "f32 to bf16: %d values (ties, NaN, inf, subnormals) at 3 offsets convert as one at a time", N);

    /* a NaN stays a quiet NaN with its sign and top payload (a low-only
     * payload used to round up into infinity); infinities stay, the
     * largest float rounds up to infinity */
    static const uint32_t in[] = { 0x7f800001u, 0xff800001u, 0x7fc00000u, 0x7fffffffu, 0xffa5a5a5u,
                                   0x7f800000u, 0xff800000u, 0x7f7fffffu };
    static const uint16_t want[] = { 0x7fc0, 0xffc0, 0x7fc0, 0x7fff, 0xffe5, 0x7f80, 0xff80, 0x7f80 };
    int ok_nan = 1, ok_vec = 1;
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        float v;
        memcpy(&v, &in[i], 4);
        ok_nan &= bf16_bits(v) == want[i] && vq_bf16_round(v) == want[i];
    }
    if (vq_simd_level() >= 2) ok_vec = bf16_round_512_matches(x, N);
    CHECK(ok_nan && ok_vec, "f32 to bf16: NaN kept a quiet NaN (sign, top payload), infinities kept; the AVX-512 "
          "rounding of the kernels (vq_bf16_round_512) gives the scalar bits on the same %d values", N);
}

/* The bf16 cache layout and kernels: against the double reference on the
 * bf16-rounded query, keys and values (what is left is the probabilities'
 * rounding), slots past the positions fed holding NaN; threads and chunks. */
static void attention_bf16_kernel(const char *kern)
{
    const struct vq_exec one = vq_exec_make(NULL, 1), two = vq_exec_make(NULL, 2);
    static const int cases[][5] = {   /* D, n_head, n_unmasked, L0, n: odd and even ends */
        { 64, 1, 0, 0, 1 }, { 128, 2, 0, 0, 77 }, { 128, 2, 0, 50, 9 }, { 192, 4, 0, 133, 70 }, { 96, 2, 0, 0, 130 },
        { 64, 4, 0, 37, 1 }, { 128, 2, 24, 0, 40 }, { 128, 2, 24, 24, 3 }, { 32, 2, 0, 10, 2 },
        { 48, 3, 0, 5, 21 },   /* 24 lanes: a tile of 8 through the portable store */
        /* heads of 128, 96 and 32 (AMX: the query in 4, 3 and 1 tiles) */
        { 256, 2, 0, 70, 61 }, { 192, 2, 0, 19, 50 }, { 64, 2, 0, 40, 35 },
    };
    double worst = 0;
    int ok_rows = 1, ok_thr = 1, finite = 1, layout_ok = 1, ok_yb = 1;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const int D = cases[c][0], nh = cases[c][1], nu = cases[c][2], L0 = cases[c][3], n = cases[c][4];
        const int T = L0 + n, ldk = (T + 3 + 1) & ~1;
        float *q = rnd((size_t)n * D), *k = rnd((size_t)T * D), *V = rnd((size_t)T * D);
        for (size_t i = 0; i < (size_t)n * D; i++) q[i] = round_bf16(3.0f * q[i]);
        for (size_t i = 0; i < (size_t)T * D; i++) { k[i] = round_bf16(k[i]); V[i] = round_bf16(V[i]); }
        float *Kt = malloc(sizeof(float) * D * ldk);
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) Kt[(size_t)d * ldk + t] = k[(size_t)t * D + d];
        uint16_t *K2 = malloc(2 * (size_t)D * ldk), *V2 = malloc(2 * (size_t)D * ldk), *qs = malloc(2 * (size_t)n * D);
        for (size_t i = 0; i < (size_t)D * ldk; i++) K2[i] = V2[i] = 0x7fc1;   /* NaN */
        /* fed in two calls, as a cache is */
        vq_store_keys_bf16(&two, k, L0, D, K2, ldk, 0);
        vq_store_values_bf16(&two, V, L0, D, V2, 0);
        vq_store_keys_bf16(&two, k + (size_t)L0 * D, n, D, K2, ldk, L0);
        vq_store_values_bf16(&two, V + (size_t)L0 * D, n, D, V2, L0);
        /* the layout and the rounding, slot by slot: keys [D/2][ldk][2],
         * values [T/2][D][2], the partner of an odd last position zero; from
         * values that bf16 does not hold (every 7th an exact tie, which goes
         * to even), in separate buffers */
        {
            float *kr = rnd((size_t)T * D), *vr = rnd((size_t)T * D);
            for (size_t i = 0; i < (size_t)T * D; i += 7) {
                uint32_t u;
                memcpy(&u, &kr[i], 4);
                u = (u & 0xffff0000u) | 0x8000u;
                memcpy(&kr[i], &u, 4);
                memcpy(&vr[i], &u, 4);
            }
            uint16_t *K3 = malloc(2 * (size_t)D * ldk), *V3 = malloc(2 * (size_t)D * ldk);
            vq_store_keys_bf16(&two, kr, L0, D, K3, ldk, 0);
            vq_store_values_bf16(&two, vr, L0, D, V3, 0);
            vq_store_keys_bf16(&two, kr + (size_t)L0 * D, n, D, K3, ldk, L0);
            vq_store_values_bf16(&two, vr + (size_t)L0 * D, n, D, V3, L0);
            for (int t = 0; t < T; t++)
                for (int d = 0; d < D; d++) {
                    layout_ok &= K3[((size_t)(d / 2) * ldk + t) * 2 + (d & 1)] == bf16_bits(kr[(size_t)t * D + d]);
                    layout_ok &= V3[(size_t)(t / 2) * D * 2 + (size_t)d * 2 + (t & 1)] == bf16_bits(vr[(size_t)t * D + d]);
                    if (T & 1) layout_ok &= V3[(size_t)(T / 2) * D * 2 + (size_t)d * 2 + 1] == 0;
                }
            free(kr); free(vr); free(K3); free(V3);
        }
        float *att = malloc(sizeof(float) * nh * n * T), *y = malloc(sizeof(float) * n * D),
              *r = malloc(sizeof(float) * n * D), *y1 = malloc(sizeof(float) * n * D);
        vq_attention_bf16(&two, q, qs, K2, ldk, V2, D, nh, nu, L0, n, att, y, NULL);
        attention_ref(q, Kt, ldk, V, D, nh, nu, L0, n, r);
        for (int i = 0; i < n * D; i++) {
            const double e = fabs((double)y[i] - r[i]);
            finite &= isfinite(y[i]);
            if (!(e <= worst)) worst = e;
        }
        vq_attention_bf16(&one, q, qs, K2, ldk, V2, D, nh, nu, L0, n, att, y1, NULL);
        ok_thr &= memcmp(y, y1, sizeof(float) * n * D) == 0;
        const int s = n / 3;
        if (s > 0 && L0 + s >= nu) {
            vq_attention_bf16(&one, q + (size_t)s * D, qs, K2, ldk, V2, D, nh, nu, L0 + s, n - s, att, y1, NULL);
            ok_rows &= memcmp(y + (size_t)s * D, y1, sizeof(float) * (n - s) * D) == 0;
        }
        uint16_t *yb = malloc(2 * (size_t)n * D), *want = malloc(2 * (size_t)n * D);
        vq_attention_bf16(&two, q, qs, K2, ldk, V2, D, nh, nu, L0, n, att, NULL, yb);
        vq_f32_to_bf16(y, want, (size_t)n * D);
        ok_yb &= memcmp(yb, want, 2 * (size_t)n * D) == 0;
        free(yb); free(want);
        free(q); free(k); free(V); free(Kt); free(K2); free(V2); free(qs); free(att); free(y); free(r); free(y1);
    }
    CHECK(ok_yb, "attention bf16 (%s): the output straight in bf16 is the fp32 output rounded (nearest even)", kern);
    CHECK(finite && worst < 4e-3, "attention bf16 (%s): 13 shapes, abs err %.2g < 4e-3 against double on the rounded "
          "inputs (the probabilities' rounding), no NaN read from past the positions fed", kern, worst);
    CHECK(layout_ok, "attention bf16 (%s): keys and values stored in their cache layout, rounded to nearest even (ties "
          "included), slot by slot, fed in two calls (odd and even starts and ends)", kern);
    CHECK(ok_thr, "attention bf16 (%s): bit-identical with 1 and 2 threads", kern);
    CHECK(ok_rows, "attention bf16 (%s): a row's result does not depend on the chunk it is computed in", kern);
}

/* Both bf16 kernels where the CPU has them: the AMX tiles' (where AMX-BF16
 * is ready; the heads of width 32, 64, 96 and 128 among the shapes) and
 * AVX512_BF16's. */
static void test_attention_bf16(void)
{
    if (!vq_attention_bf16_kernel(NULL, 64)) {
        printf("ok - attention bf16: no AVX512_BF16 on this CPU, the fp32 layout is used (skipped)\n");
        return;
    }
    if (vq_attention_amx(64))
        attention_bf16_kernel("AMX tiles where the head width is a multiple of 32, else AVX512_BF16");
    else
        printf("ok - attention bf16 on AMX tiles: no AMX-BF16 on this CPU (skipped)\n");
    vq_attention_amx_force(0);
    attention_bf16_kernel("AVX512_BF16");
    vq_attention_amx_force(-1);
}

/* Products whose rows are not independent, as kernels that block the sum by
 * the row count, read a neighbouring row or round by position would be: the
 * probe must find each of them out. */
static void linear_by_count(const float *x, int T, int Din, const float *W, const float *b, int Dout, float *y)
{
    vq_gemm_ref(0, 1, T, Dout, Din, x, Din, W, Din, 0.0f, y, Dout);
    for (size_t i = 0; i < (size_t)T * Dout; i++) y[i] = y[i] * (1.0f + 1e-6f * (float)(T % 7)) + b[i % Dout];
}
static void linear_by_neighbour(const float *x, int T, int Din, const float *W, const float *b, int Dout, float *y)
{
    vq_gemm_ref(0, 1, T, Dout, Din, x, Din, W, Din, 0.0f, y, Dout);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < Dout; i++) y[(size_t)t * Dout + i] += b[i] + (t + 1 < T ? 1e-3f * x[(size_t)(t + 1) * Din] : 0);
}
static void linear_by_position(const float *x, int T, int Din, const float *W, const float *b, int Dout, float *y)
{
    vq_gemm_ref(0, 1, T, Dout, Din, x, Din, W, Din, 0.0f, y, Dout);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < Dout; i++) y[(size_t)t * Dout + i] += b[i] + 1e-3f * (float)(t % 3);
}
static void linear_plain(const float *x, int T, int Din, const float *W, const float *b, int Dout, float *y)
{
    vq_gemm_ref(0, 1, T, Dout, Din, x, Din, W, Din, 0.0f, y, Dout);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < Dout; i++) y[(size_t)t * Dout + i] += b[i];
}

/* Rows [o, o+n) of a call of M rows against a call of those n rows alone,
 * and rows [0, o) against a call where the rows after them hold other values. */
static int split_same(const struct vq_exec *ex, const struct vq_packed *pk, const float *W, const float *b, int N,
                      int K, int M, int o)
{
    float *x = rnd((size_t)M * K), *x2 = malloc(sizeof(float) * (size_t)M * K);
    float *y = malloc(sizeof(float) * (size_t)M * N), *y2 = malloc(sizeof(float) * (size_t)M * N);
    memcpy(x2, x, sizeof(float) * (size_t)M * K);
    for (size_t i = (size_t)o * K; i < (size_t)M * K; i++) x2[i] = frand();
    vq_linear(ex, x, M, K, W, pk, b, N, y);
    vq_linear(ex, x2, M, K, W, pk, b, N, y2);
    int same = !memcmp(y, y2, sizeof(float) * (size_t)o * N);
    vq_linear(ex, x + (size_t)o * K, M - o, K, W, pk, b, N, y2);
    same &= !memcmp(y + (size_t)o * N, y2, sizeof(float) * (size_t)(M - o) * N);
    free(x); free(x2); free(y); free(y2);
    return same;
}

/* The bf16 attention's exp against expf: within 2 ulp where the result is
 * normal, and the same bits from the scalar and the AVX-512 forms (the
 * softmax below compares the two). */
static void test_exp_bf16(void)
{
    double worst = 0;
    int ok = 1, n = 0;
    for (float x = -104.5f; x <= 1.0f; x += 0.000731f, n++) {
        const float e = vq_exp_bf16(x), want = expf(x);
        if (want >= 1.1754944e-38f) {
            const double ulp = (double)nextafterf(want, INFINITY) - want, err = fabs((double)e - want) / ulp;
            if (err > worst) worst = err;
        } else
            ok &= fabs((double)e - want) <= 1.5e-45;
    }
    ok &= vq_exp_bf16(-INFINITY) == 0.0f && vq_exp_bf16(0.0f) == 1.0f && vq_exp_bf16(-200.0f) == 0.0f;
    CHECK(ok && worst <= 2.0, "bf16 attention's exp: within %.2f ulp of expf at %d points of -104.5..1 (bar 2), "
          "0 at -inf and below -104, exactly 1 at 0", worst, n);
}

/* The bf16 and int8 paths' GELU (Abramowitz and Stegun's erf) against the
 * exact one (erfc in double): within 8e-7 absolute over -16.5..16.5 (7.1e-7
 * measured), within 1e-5 relative for x >= -2 (7e-6 measured); the vector
 * form's bits equal the scalar's at every point, in spans of every tail
 * length; 0, -0, ±40, ±inf and NaN as GELU has them. */
static void test_gelu_poly(void)
{
    double worst_abs = 0, worst_rel = 0, at_abs = 0, at_rel = 0;
    int ok = 1, n = 0;
    float buf[37], one[37];
    for (float x = -16.5f; x <= 16.5f; n++) {
        const int w = 1 + n % 37;   /* a span of w values from x */
        for (int i = 0; i < w; i++, x = x + (fabsf(x) < 1e-3f ? 1.37e-7f : 0.000613f)) buf[i] = x;
        memcpy(one, buf, sizeof(float) * w);
        vq_vgelu_poly(buf, (size_t)w);
        for (int i = 0; i < w; i++) {
            const float s = vq_gelu_poly(one[i]);
            ok &= !memcmp(&s, &buf[i], sizeof(float));
            const double want = one[i] * 0.5 * erfc(-one[i] / sqrt(2.0)), e = fabs((double)s - want);
            if (e > worst_abs) worst_abs = e, at_abs = one[i];
            if (one[i] >= -2.0f && want != 0 && e / fabs(want) > worst_rel) worst_rel = e / fabs(want), at_rel = one[i];
        }
    }
    const float z = vq_gelu_poly(-0.0f);
    ok &= vq_gelu_poly(0.0f) == 0.0f && z == 0.0f && signbit(z) && vq_gelu_poly(INFINITY) == INFINITY &&
          vq_gelu_poly(-INFINITY) == 0.0f && vq_gelu_poly(-40.0f) == 0.0f && vq_gelu_poly(40.0f) == 40.0f &&
          isnan(vq_gelu_poly(NAN));
    CHECK(ok && worst_abs <= 8e-7 && worst_rel <= 1e-5,
          "GELU of the bf16 and int8 paths (A&S erf): within %.2g absolute (at %g; bar 8e-7) over -16.5..16.5, "
          "%.2g relative for x >= -2 (at %g; bar 1e-5), vector = scalar bits in spans of 1..37, 0, -0, ±40, ±inf, "
          "NaN", worst_abs, at_abs, worst_rel, at_rel);
}

/* The softmax-to-bf16 row, AVX-512 against the scalar loop (the same
 * operations one value at a time), bit for bit. */
static void test_softmax_bf16(void)
{
    if (vq_simd_level() < 3) {
        printf("ok - softmax to bf16: no AVX512_BF16 on this CPU, the scalar loop is used (skipped)\n");
        return;
    }
    int ok = 1, cases = 0;
    /* short rows of every tail, then long ones: about 30 of their 0.5 M
     * values fall on a rounding tie (low half 0x8000, or 0x7fff and odd) */
    for (int vis = 1; vis <= 100 + 64 * 8192; vis += vis < 40 ? 1 : vis <= 100 ? 13 : 8192)
        for (int extra = 0; extra < (vis <= 100 ? 4 : 1); extra++) {
            const int tb = vis + extra * 5, n = tb + 2;
            float *x = rnd((size_t)n), *r = malloc(sizeof(float) * n);
            for (int i = 0; i < n; i++) x[i] *= extra == 3 ? 60.0f : 4.0f;   /* wide ranges: tiny and denormal p */
            memcpy(r, x, sizeof(float) * n);
            vq_vsoftmax_bf16(x, 0, 1, &vis, tb);
            vq_simd_force(0);
            vq_vsoftmax_bf16(r, 0, 1, &vis, tb);
            vq_simd_force(-1);
            ok &= !memcmp(x, r, 2 * (size_t)((tb + 1) & ~1));
            cases++;
            free(x); free(r);
        }
    CHECK(ok, "softmax to bf16 (AVX512_BF16): the scalar loop's bits in %d rows (1..100 keys, odd and even ends, wide "
          "ranges; 64 of 8k keys for the rounding ties)", cases);

    /* many rows in one call (taken VQ_SOFTMAX_ROWS at a time, pass by pass):
     * each row's bits as alone */
    const int rows = 2 * VQ_SOFTMAX_ROWS + 3, lds = 300, tb = 291;
    int vis[2 * VQ_SOFTMAX_ROWS + 3];
    float *x = rnd((size_t)rows * lds), *r = malloc(sizeof(float) * rows * lds);
    for (int i = 0; i < rows * lds; i++) x[i] *= 8.0f;
    for (int i = 0; i < rows; i++) vis[i] = tb - 17 * (i % 4) - (i & 1);
    memcpy(r, x, sizeof(float) * rows * lds);
    vq_vsoftmax_bf16(x, lds, rows, vis, tb);
    ok = 1;
    for (int i = 0; i < rows; i++) {
        vq_vsoftmax_bf16(r + (size_t)i * lds, 0, 1, &vis[i], tb);
        ok &= !memcmp(x + (size_t)i * lds, r + (size_t)i * lds, 2 * (size_t)((tb + 1) & ~1));
    }
    free(x); free(r);
    CHECK(ok, "softmax to bf16: %d rows of 240..291 keys in one call, each row's bits as alone", rows);
}

static void test_rows_probe(void)
{
    float *w = rnd(48 * 40), *b = rnd(48);
    CHECK(vq_rows_probe(linear_plain, w, b, 48, 40) == 1 && vq_rows_probe(linear_by_count, w, b, 48, 40) == 0 &&
          vq_rows_probe(linear_by_neighbour, w, b, 48, 40) == 0 &&
          vq_rows_probe(linear_by_position, w, b, 48, 40) == 0,
          "rows probe: passes a row-independent product; finds out one that depends on the row count, one that "
          "reads the next row, one that depends on the row's place in the call");
    free(w); free(b);

    /* the real products, at the transformer's shapes (D = 256): when the
     * probe passes, calls it did not try must agree too */
    static const int shapes[3][2] = { { 256, 256 }, { 1024, 256 }, { 256, 1024 } };
    for (int kind = 0; kind <= VQ_BACKEND_DNNL; kind++) {
        if (!vq_backend_get(kind, VQ_PREC_FP32)) continue;
        for (int bf = 0; bf < 2; bf++) {
            const struct vq_backend *be = vq_backend_get(kind, bf ? VQ_PREC_BF16 : VQ_PREC_FP32);
            if (!be) continue;
            const struct vq_exec ex = vq_exec_make(be, 0);
            for (int s = 0; s < 3; s++) {
                const int N = shapes[s][0], K = shapes[s][1];
                float *W = rnd((size_t)N * K), *B = rnd(N);
                struct vq_packed *pk = vq_backend_pack(be, W, N, K, NULL);
                const int r = vq_linear_rows_independent(&ex, W, pk, B, N, K);
                int tried = 0, same = 1;
                for (; r && tried < (kind == VQ_BACKEND_REF ? 1 : 6); tried++) {
                    const int M = irand(2 * VQ_ROWS_INDEPENDENT_FROM, 512);
                    same &= split_same(&ex, pk, W, B, N, K, M, irand(VQ_ROWS_INDEPENDENT_FROM, M - VQ_ROWS_INDEPENDENT_FROM));
                }
                CHECK(same && vq_linear_rows_independent(&ex, W, pk, B, N, K) == r,
                      "rows probe, %s %s, %dx%d: rows %s; %d more splits (128..512-row calls) bit-identical",
                      vq_backend_name(kind), bf ? "bf16" : "fp32", K, N, r ? "independent" : "depend on the call",
                      tried);
                if (kind == VQ_BACKEND_REF)
                    CHECK(r == 1, "rows probe: the reference backend is row-independent");
                vq_backend_pack_free(be, pk);
                free(W); free(B);
            }
        }
    }
}

static void test_quantize(void)
{
    struct vq_stage s;
    memset(&s, 0, sizeof(s));
    s.embed_dim = 7; s.n_embed = 53;
    float *cb = rnd((size_t)s.n_embed * s.embed_dim);
    memcpy(cb + 10 * 7, cb + 3 * 7, sizeof(float) * 7);   /* a duplicate code: ties go to the lowest index */
    s.codebook = cb;
    s.codebook_norm2 = malloc(sizeof(float) * s.n_embed);
    for (int k = 0; k < s.n_embed; k++) {
        float a = 0;
        for (int d = 0; d < 7; d++) a += cb[k * 7 + d] * cb[k * 7 + d];
        s.codebook_norm2[k] = a;
    }
    const int n = 1500;
    float *z = rnd((size_t)n * 7);
    for (int d = 0; d < 7; d++) z[d * n + 0] = cb[10 * 7 + d];   /* exactly code 3 == code 10 */
    int32_t *idx = malloc(sizeof(int32_t) * n);
    vq_quantize(NULL, &s, z, n, idx);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        double best = 1e30; int arg = 0;
        for (int k = 0; k < s.n_embed; k++) {
            double d2 = 0;
            for (int d = 0; d < 7; d++) { double t = (double)z[d * n + i] - cb[k * 7 + d]; d2 += t * t; }
            if (d2 < best) { best = d2; arg = k; }
        }
        ok &= idx[i] == arg;
    }
    CHECK(ok, "quantize: 1500 vectors x 53 codes, nearest code identical to brute force");
    CHECK(idx[0] == 3, "quantize: a tie goes to the lowest index (got %d)", idx[0]);
    free(cb); free(s.codebook_norm2); free(z); free(idx);
}

static const struct test_case cases[] = {
    { "gemm", test_gemm, 0 },
    { "gemm_threads", test_gemm_threads, 0 },
    { "gemm_panels", test_gemm_panels, 0 },
    { "conv", test_conv, 0 },
    { "conv_threads_bf16", test_conv_threads_bf16, 0 },
    { "linear_small_amx", test_linear_small_amx, 0 },
    { "linear_amx_chunks", test_linear_amx_chunks, 0 },
    { "linear_bf16", test_linear_bf16, 0 },
    { "linear_bf16_whole", test_linear_bf16_whole, 0 },
    { "linear_bf16_rows", test_linear_bf16_rows, 0 },
    { "linear_bf16_epilogue", test_linear_bf16_epilogue, 0 },
    { "linear_int8", test_linear_int8, 0 },
    { "int8_rows", test_int8_rows, 0 },
    { "linear_small", test_linear_small, 0 },
    { "scratch", test_scratch, 0 },
    { "norms", test_norms, 0 },
    { "pointwise", test_pointwise, 0 },
    { "attention", test_attention, 0 },
    { "transpose_keys", test_transpose_keys, 0 },
    { "attention_bf16", test_attention_bf16, 0 },
    { "bf16_rounding", test_bf16_rounding, 0 },
    { "exp_bf16", test_exp_bf16, 0 },
    { "gelu_poly", test_gelu_poly, 0 },
    { "softmax_bf16", test_softmax_bf16, 0 },
    { "rows_probe", test_rows_probe, 0 },
    { "quantize", test_quantize, 0 },
};

int main(int argc, char **argv)
{
    return TEST_RUN_CASES(argc, argv, cases);
}
