/* Shared by the benchmarks: wall clock, the backend's best matmul rate. */
#ifndef VQ_BENCH_COMMON_H
#define VQ_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best GFLOPS of vq_gemm over a few large, transformer- and convolution-shaped
 * products (the limit the layers are measured against), each with B as is
 * and transposed (the linear layers' weights are [out][in]): on a Zen 3
 * (AVX2) oneDNN's transposed products ran faster than the plain ones, and a
 * peak of the plain ones alone read below the layers' own rate. */
static double bench_peak_gflops(int verbose)
{
    static const int shapes[][3] = { { 1024, 1024, 1024 }, { 512, 4096, 1024 }, { 256, 4096, 2304 },
                                     { 2048, 2048, 1024 } };
    double best = 0;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *C = malloc(sizeof(float) * M * N);
        for (long i = 0; i < (long)M * K; i++) A[i] = (float)((i * 7) % 13) * 0.01f;
        for (long i = 0; i < (long)K * N; i++) B[i] = (float)((i * 5) % 11) * 0.01f;
        for (int tb = 0; tb < 2; tb++) {
            const int ldb = tb ? K : N;
            vq_gemm(NULL, 0, tb, M, N, K, A, K, B, ldb, 0.0f, C, N);
            double t_best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now_s();
                vq_gemm(NULL, 0, tb, M, N, K, A, K, B, ldb, 0.0f, C, N);
                double t = now_s() - t0;
                if (t < t_best) t_best = t;
            }
            double g = 2.0 * M * N * K / t_best * 1e-9;
            if (verbose) printf("  sgemm %4dx%4dx%4d%s: %7.1f GFLOPS\n", M, N, K, tb ? ", B transposed" : "", g);
            if (g > best) best = g;
        }
        free(A); free(B); free(C);
    }
    return best;
}

#endif
