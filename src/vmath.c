/* Element-wise exp and GELU through glibc's vector math library (libmvec:
 * AVX-512 or AVX2 expf/erff, a few ulp from the scalar functions), chosen at
 * run time; the scalar libm loop elsewhere. Every element of an array goes
 * through the same routine (a short tail is padded to a whole vector), so a
 * result never depends on how callers split the work between threads. */
#include <math.h>
#include <string.h>

#include "vmath.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512);
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_erff(__m512);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256);
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_erff(__m256);

/* 2: AVX-512, 1: AVX2 + FMA, 0: scalar */
static int level(void)
{
    static int l = -1;
    int v = __atomic_load_n(&l, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&l, v, __ATOMIC_RELAXED);
    }
    return v;
}

__attribute__((target("avx512f")))
static double exp_sum_512(float *x, int n, float sub)
{
    const __m512 s = _mm512_set1_ps(sub);
    double sum = 0.0;
    for (int i = 0; i < n; i += 16) {
        float buf[16];
        const int m = n - i < 16 ? n - i : 16;
        float *p = m == 16 ? x + i : buf;
        if (m < 16) {
            memcpy(buf, x + i, sizeof(float) * m);
            memset(buf + m, 0, sizeof(float) * (16 - m));
        }
        __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_loadu_ps(p), s));
        _mm512_storeu_ps(p, e);
        for (int j = 0; j < m; j++)
            sum += p[j];
        if (m < 16) memcpy(x + i, buf, sizeof(float) * m);
    }
    return sum;
}

__attribute__((target("avx2,fma")))
static double exp_sum_256(float *x, int n, float sub)
{
    const __m256 s = _mm256_set1_ps(sub);
    double sum = 0.0;
    for (int i = 0; i < n; i += 8) {
        float buf[8];
        const int m = n - i < 8 ? n - i : 8;
        float *p = m == 8 ? x + i : buf;
        if (m < 8) {
            memcpy(buf, x + i, sizeof(float) * m);
            memset(buf + m, 0, sizeof(float) * (8 - m));
        }
        __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(p), s));
        _mm256_storeu_ps(p, e);
        for (int j = 0; j < m; j++)
            sum += p[j];
        if (m < 8) memcpy(x + i, buf, sizeof(float) * m);
    }
    return sum;
}

__attribute__((target("avx512f")))
static void gelu_512(float *x, size_t n)
{
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f),
                 r2 = _mm512_set1_ps(0.70710678118654752f);
    for (size_t i = 0; i < n; i += 16) {
        float buf[16];
        const size_t m = n - i < 16 ? n - i : 16;
        float *p = m == 16 ? x + i : buf;
        if (m < 16) {
            memcpy(buf, x + i, sizeof(float) * m);
            memset(buf + m, 0, sizeof(float) * (16 - m));
        }
        __m512 v = _mm512_loadu_ps(p);
        __m512 e = _ZGVeN16v_erff(_mm512_mul_ps(v, r2));
        _mm512_storeu_ps(p, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, e)));
        if (m < 16) memcpy(x + i, buf, sizeof(float) * m);
    }
}

__attribute__((target("avx2,fma")))
static void gelu_256(float *x, size_t n)
{
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f),
                 r2 = _mm256_set1_ps(0.70710678118654752f);
    for (size_t i = 0; i < n; i += 8) {
        float buf[8];
        const size_t m = n - i < 8 ? n - i : 8;
        float *p = m == 8 ? x + i : buf;
        if (m < 8) {
            memcpy(buf, x + i, sizeof(float) * m);
            memset(buf + m, 0, sizeof(float) * (8 - m));
        }
        __m256 v = _mm256_loadu_ps(p);
        __m256 e = _ZGVdN8v_erff(_mm256_mul_ps(v, r2));
        _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
        if (m < 8) memcpy(x + i, buf, sizeof(float) * m);
    }
}
#else
static int level(void) { return 0; }
static double exp_sum_512(float *x, int n, float sub) { (void)x; (void)n; (void)sub; return 0; }
static double exp_sum_256(float *x, int n, float sub) { (void)x; (void)n; (void)sub; return 0; }
static void gelu_512(float *x, size_t n) { (void)x; (void)n; }
static void gelu_256(float *x, size_t n) { (void)x; (void)n; }
#endif

double vq_vexp_sum(float *x, int n, float sub)
{
    switch (level()) {
    case 2: return exp_sum_512(x, n, sub);
    case 1: return exp_sum_256(x, n, sub);
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - sub);
        sum += x[i];
    }
    return sum;
}

void vq_vgelu(float *x, size_t n)
{
    switch (level()) {
    case 2: gelu_512(x, n); return;
    case 1: gelu_256(x, n); return;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}
