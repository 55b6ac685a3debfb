/* Sharing a loop's items between threads by their measured speed
 * (balance.h): the ranges, the learning, and the int8 and bf16 products'
 * bits under any shares. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "amx.h"
#include "backend.h"
#include "backend_int8.h"
#include "balance.h"
#include "bf16.h"
#include "gemm.h"
#include "linear_amx.h"
#include "linear_bf16.h"
#include "test_common.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static double urand(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

/* every thread's range contiguous, in order, covering 0 .. n once, and
 * within one item of n times its share */
static void ranges(void)
{
    int ok = 1, cases = 0;
    float w[VQ_BALANCE_MAX];
    for (int nth = 1; nth <= 9; nth++)
        for (int n = 0; n <= 300; n += n < 20 ? 1 : 17)
            for (int rep = 0; rep < 20; rep++, cases++) {
                double all = 0;
                for (int i = 0; i < nth; i++) all += w[i] = rep ? (float)exp(urand() * 8.3 - 4.15) : 1.0f;
                int at = 0;
                for (int i = 0; i < nth; i++) {
                    int lo, hi;
                    vq_balance_range(w, nth, n, i, &lo, &hi);
                    ok &= lo == at && hi >= lo && fabs((hi - lo) - n * w[i] / all) <= 1.0 + 1e-9;
                    at = hi;
                }
                ok &= at == n;
            }
    CHECK(ok, "balance: ranges contiguous, in thread order, covering every item once, each within one item of its "
          "share (%d cases: 1..9 threads, 0..300 items, shares 1/64..64)", cases);
}

/* fresh state: even shares; learning from a thread 0.8x as fast as the
 * other converges to shares 1 : 0.8 and finish times within an item */
static void learning(void)
{
    struct vq_balance b;
    memset(&b, 0, sizeof b);
    float w[VQ_BALANCE_MAX];
    vq_balance_get(&b, 2, w);
    CHECK(w[0] == 1.0f && w[1] == 1.0f, "balance: a fresh memory gives even shares");
    const double rate[2] = { 1000.0, 800.0 };   /* items a second */
    const int n = 96;
    double sec[2];
    int done[3];
    for (int it = 0; it < 1000; it++) {
        vq_balance_get(&b, 2, w);
        for (int i = 0; i < 2; i++) {
            int lo, hi;
            vq_balance_range(w, 2, n, i, &lo, &hi);
            done[i] = hi - lo;
            sec[i] = done[i] / rate[i];
        }
        vq_balance_learn(&b, w, 2, done, sec);
    }
    vq_balance_get(&b, 2, w);
    CHECK(fabs(w[1] / w[0] - 0.8) < 0.02 && fabs(sec[0] - sec[1]) <= 1.0 / 800,
          "balance: a thread 0.8x as fast gets 0.8x the share (%.3f) and the threads finish within one item "
          "(%.2f, %.2f ms)", w[1] / w[0], 1e3 * sec[0], 1e3 * sec[1]);
    /* one call in which thread 0 was preempted for 100x its time: the share
     * moves at most an eighth of the way to half the mean */
    const float before = w[0];
    int lo, hi;
    vq_balance_range(w, 2, n, 0, &lo, &hi);
    done[0] = hi - lo;
    sec[0] = 100.0 * done[0] / rate[0];
    vq_balance_range(w, 2, n, 1, &lo, &hi);
    done[1] = hi - lo;
    sec[1] = done[1] / rate[1];
    vq_balance_learn(&b, w, 2, done, sec);
    vq_balance_get(&b, 2, w);
    CHECK(w[0] < before && w[0] > before * 0.92f, "balance: one preempted call moves a share a little (%.3f -> %.3f)",
          before, w[0]);
    /* equal speeds timed with 5 % noise, a million calls: the shares stay
     * near even and their mean at 1 (no drift from rounding) */
    struct vq_balance e;
    memset(&e, 0, sizeof e);
    double lo_w = 2, hi_w = 0;
    for (int it = 0; it < 1000000; it++) {
        vq_balance_get(&e, 3, w);
        double s3[3];
        for (int i = 0; i < 3; i++) {
            int l, h;
            vq_balance_range(w, 3, n, i, &l, &h);
            done[i] = h - l;
            s3[i] = done[i] / (1000.0 * (0.95 + 0.1 * urand()));
        }
        vq_balance_learn(&e, w, 3, done, s3);
        if (it > 1000)
            for (int i = 0; i < 3; i++) {
                if (w[i] < lo_w) lo_w = w[i];
                if (w[i] > hi_w) hi_w = w[i];
            }
    }
    vq_balance_get(&e, 3, w);
    CHECK(lo_w > 0.9 && hi_w < 1.1 && fabs(w[0] + w[1] + w[2] - 3) < 1e-3, "balance: equal speeds timed with 5 %% "
          "noise keep 3 threads' shares within %.3f .. %.3f over a million calls, their sum at %.4f", lo_w, hi_w,
          w[0] + w[1] + w[2]);
    /* threads beyond what is remembered: even shares, nothing learnt */
    float many[VQ_BALANCE_MAX + 3];
    double msec[VQ_BALANCE_MAX + 3];
    int mdone[VQ_BALANCE_MAX + 3];
    for (int i = 0; i < VQ_BALANCE_MAX + 3; i++) msec[i] = 1.0 + i, mdone[i] = 10;
    const struct vq_balance kept = b;
    vq_balance_get(&b, VQ_BALANCE_MAX + 3, many);
    vq_balance_learn(&b, many, VQ_BALANCE_MAX + 3, mdone, msec);
    int even = 1;
    for (int i = 0; i < VQ_BALANCE_MAX + 3; i++) even &= many[i] == 1.0f;
    CHECK(even && !memcmp(&kept, &b, sizeof b), "balance: more threads than remembered share evenly and leave the "
          "memory as it was");
}

/* claims: one thread alone takes its own range front to back, then the
 * backs of the others'; a team of threads claims every item exactly once,
 * however many threads take part */
static void claims(void)
{
    static struct vq_claims c;
    float w[VQ_BALANCE_MAX];
    int ok = 1, order = 1, cases = 0;
    static int count[400], seq[400];
    for (int nth = 1; nth <= 9; nth++)
        for (int n = 0; n <= 300; n += n < 20 ? 1 : 23)
            for (int rep = 0; rep < 6; rep++, cases++) {
                for (int i = 0; i < nth; i++) w[i] = rep ? (float)exp(urand() * 8.3 - 4.15) : 1.0f;
                /* one thread (id 0 of nth) alone */
                vq_claims_init(&c, w, nth, n);
                int k = 0, it, cnt, lo, hi;
                while ((it = vq_claims_next(&c, 0, &cnt)) >= 0 && k + cnt <= 400)
                    for (int j = 0; j < cnt; j++) seq[k++] = it + j;
                vq_balance_range(w, nth, n, 0, &lo, &hi);
                ok &= k == n;
                for (int j = 0; j < hi - lo && j < k; j++) order &= seq[j] == lo + j;
                memset(count, 0, sizeof count);
                for (int j = 0; j < k; j++) count[seq[j]]++;
                for (int j = 0; j < n; j++) ok &= count[j] == 1;
                /* the whole team, concurrently, and part of it (threads
                 * nth/2 .. nth-1 never come: the others take their items) */
                for (int part = 0; part < 2; part++) {
                    vq_claims_init(&c, w, nth, n);
                    memset(count, 0, sizeof count);
                    const int from = part ? nth / 2 : 0;
#pragma omp parallel num_threads(nth - from)
                    {
                        int item, cnt;
                        while ((item = vq_claims_next(&c, from + omp_get_thread_num(), &cnt)) >= 0)
                            for (int j = item; j < item + cnt; j++)
                                if (j >= 0 && j < 400) __atomic_add_fetch(&count[j], 1, __ATOMIC_RELAXED);
                    }
                    for (int j = 0; j < n; j++) ok &= count[j] == 1;
                }
            }
    CHECK(ok && order, "balance: claims hand out every item exactly once, alone, by a team and by part of a team; "
          "a thread takes its own range first, in order (%d cases: 1..9 threads, 0..300 items)", cases);
}

/* A product run on n_threads threads with epilogue number epi (0..2) into y. */
typedef int (*product_fn)(void *ctx, int n_threads, int epi, float *y);

/* Runs a product on one thread under even shares of b, then on 2 and 3
 * threads under skewed shares, every epilogue, y filled with 0.25 before
 * each run (the epilogues that add to it): 1 when every run gives the
 * first's bits. b's shares are restored after. */
static int same_bits_skewed(struct vq_balance *b, product_fn run, void *ctx, size_t ny, int *runs)
{
    static const float skew[][3] = { { 1, 1, 1 }, { 0.05f, 1.95f, 1 }, { 1.95f, 0.05f, 1 }, { 3, 1, 0.2f } };
    float *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
    struct vq_balance saved = *b;
    int ok = 1;
    for (int epi = 0; epi < 3; epi++) {
        memset(b, 0, sizeof *b);
        for (size_t i = 0; i < ny; i++) y0[i] = 0.25f;
        ok &= !run(ctx, 1, epi, y0);
        for (int s = 0; s < 4; s++)
            for (int nt = 2; nt <= 3; nt++) {
                for (int i = 0; i < VQ_BALANCE_MAX; i++)
                    b->share[i] = i < 3 ? (unsigned int)(skew[s][i] * 65536.0f) : 0;
                for (size_t i = 0; i < ny; i++) y1[i] = 0.25f;
                ok &= !run(ctx, nt, epi, y1) && !memcmp(y0, y1, sizeof(float) * ny);
                ++*runs;
            }
    }
    *b = saved;
    free(y0); free(y1);
    return ok;
}

struct int8_case { const struct vq_packed *p; const float *x, *bias; int T; };

static int int8_run(void *ctx, int nt, int epi, float *y)
{
    const struct int8_case *c = ctx;
    return vq_int8_linear(nt, c->p, c->x, c->T, c->bias, epi == 0 ? 0 : epi == 1 ? VQ_EPI_ADD : VQ_EPI_GELU, y);
}

/* the int8 products give the same bits under any shares and thread count */
static void int8_bits(void)
{
    const int N = 1000, K = 200;
    for (int T = 37; T <= 100; T += 63) {   /* items of whole blocks, of row tiles */
    float *W = malloc(sizeof(float) * N * K), *x = malloc(sizeof(float) * T * K), *bias = malloc(sizeof(float) * N);
    for (int i = 0; i < N * K; i++) W[i] = (float)(urand() - 0.5);
    for (int i = 0; i < T * K; i++) x[i] = (float)(urand() * 4 - 2);
    for (int i = 0; i < N; i++) bias[i] = (float)(urand() - 0.5);
    struct vq_packed *p = vq_int8_pack(W, N, K);
    struct int8_case c = { p, x, bias, T };
    int runs = 0;
    const int ok = p && same_bits_skewed(vq_int8_blocks_balance(), int8_run, &c, (size_t)T * N, &runs);
    CHECK(ok, "balance: int8 products (%s) give one thread's bits under skewed shares, 2 and 3 threads, every "
          "epilogue (%d products of %d x 200 x 1000: items of %s)", vq_int8_kernel_name(), runs, T,
          T < 64 ? "whole column blocks" : "row tiles");
    vq_int8_pack_free(p);
    free(W); free(x); free(bias);
    }
}

struct bf16_case { const uint16_t *blocks, *xb; const float *bias; int T, K, N; };

static int bf16_run(void *ctx, int nt, int epi, float *y)
{
    const struct bf16_case *c = ctx;
    return vq_linear_bf16_rows(nt, c->xb, c->T, c->K, c->blocks, c->bias, c->N,
                               epi == 0 ? 0 : epi == 1 ? VQ_EPI_ADD : VQ_EPI_GELU_BF16, y);
}

/* our bf16 kernel gives the same bits under any shares and thread count,
 * every epilogue (blocks of [K/2][64][2] built here: the layout's values
 * need not be a real matrix's) */
static void bf16_bits(void)
{
    if (!vq_linear_bf16_ready()) {
        printf("ok - balance: bf16 products: no AVX512_BF16 on this CPU (skipped)\n");
        return;
    }
    const int N = 1024, K = 192, T = 100;
    uint16_t *blocks = aligned_alloc(64, sizeof(uint16_t) * N * K), *xb = malloc(sizeof(uint16_t) * T * K);
    float *bias = malloc(sizeof(float) * N);
    for (int i = 0; i < N * K; i++) blocks[i] = vq_bf16_round((float)(urand() - 0.5));
    for (int i = 0; i < T * K; i++) xb[i] = vq_bf16_round((float)(urand() * 4 - 2));
    for (int i = 0; i < N; i++) bias[i] = (float)(urand() - 0.5);
    struct bf16_case c = { blocks, xb, bias, T, K, N };
    int runs = 0;
    /* on AMX tiles where the CPU has them (K a multiple of 32 here) */
    const int amx = vq_amx_bf16_ready();
    const int ok = same_bits_skewed(amx ? vq_linear_bf16_amx_balance() : vq_linear_bf16_balance(), bf16_run, &c,
                                    (size_t)T * N, &runs);
    CHECK(ok, "balance: bf16 products (our kernel, %s) give one thread's bits under skewed shares, 2 and 3 threads, "
          "every epilogue (%d products of %d x %d x %d: items of row tiles)", amx ? "AMX tiles" : "AVX512_BF16", runs,
          T, K, N);
    free(blocks); free(xb); free(bias);
}

static const struct test_case cases[] = {
    { "ranges", ranges, 0 },
    { "learning", learning, 0 },
    { "claims", claims, 0 },
    { "int8_bits", int8_bits, 0 },
    { "bf16_bits", bf16_bits, 0 },
};

int main(int argc, char **argv)
{
    (void)golden_path;
    (void)model_path;
    return TEST_RUN_CASES(argc, argv, cases);
}
