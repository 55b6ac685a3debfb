/* Shared by the C tests: the check macro, paths to golden data and models. */
#ifndef VQ_TEST_COMMON_H
#define VQ_TEST_COMMON_H

#include <stdio.h>
#include <stdlib.h>

static int test_failures;

#define CHECK(cond, ...) do { \
    if (cond) { printf("ok - "); } else { printf("not ok - "); test_failures++; } \
    printf(__VA_ARGS__); printf("\n"); fflush(stdout); \
} while (0)

static inline const char *golden_path(const char *rel)
{
    static char buf[8][1024];
    static int k;
    const char *g = getenv("GOLDEN");
    char *b = buf[k++ % 8];
    snprintf(b, sizeof(buf[0]), "%s/%s", g ? g : "../shared/golden", rel);
    return b;
}

static inline const char *model_path(const char *name)
{
    static char buf[8][1024];
    static int k;
    const char *m = getenv("VQ_TEST_MODELS");
    char *b = buf[k++ % 8];
    snprintf(b, sizeof(buf[0]), "%s/%s.gguf", m ? m : "build/test-models", name);
    return b;
}

static int test_exit(void) { return test_failures ? 1 : 0; }

/* Copies a file; 0 on success. */
static inline int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof(buf), in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out)) ok = 0;
    return ok ? 0 : -1;
}

#endif
