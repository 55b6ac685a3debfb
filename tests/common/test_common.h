/* Shared by the C tests: the check macro, paths to golden data and models. */
#ifndef VQ_TEST_COMMON_H
#define VQ_TEST_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A test program is a table of named cases: with no argument it runs them
 * all, with one it runs the case of that name (`build/tests/test_window
 * prefix_sharing`), `--list` names them (those needing the golden data
 * marked "golden"). */
struct test_case {
    const char *name;
    void (*run)(void);
    int golden;          /* 1: needs ../shared/golden (or the models converted from it) */
};

/* VQ_NO_GOLDEN=1 (make check-quick without ../shared): the cases that need
 * the golden data are skipped, each named on a "# skipped" line. */
static inline int test_no_golden(void)
{
    const char *e = getenv("VQ_NO_GOLDEN");
    return e && *e && strcmp(e, "0");
}

static inline int test_run_cases(int argc, char **argv, const struct test_case *cases, size_t n)
{
    const char *prog = argv[0] && strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (argc > 1 && !strcmp(argv[1], "--list")) {
        for (size_t k = 0; k < n; k++) printf("%s%s\n", cases[k].name, cases[k].golden ? " golden" : "");
        return 0;
    }
    int ran = 0;
    for (size_t k = 0; k < n; k++)
        if (argc < 2 || !strcmp(argv[1], cases[k].name)) {
            if (cases[k].golden && test_no_golden())
                printf("# skipped %s: needs the golden data (VQ_NO_GOLDEN set)\n", cases[k].name);
            else
                cases[k].run();
            ran++;
        }
    if (!ran) {
        fprintf(stderr, "%s: no case named %s (--list names them)\n", prog, argv[1]);
        return 2;
    }
    return test_exit();
}
#define TEST_RUN_CASES(argc, argv, cases) test_run_cases(argc, argv, cases, sizeof(cases) / sizeof((cases)[0]))

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
