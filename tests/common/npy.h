/* Tiny .npy reader for the golden vectors (little-endian <f4, <i8, |u1, C order). */
#ifndef VQ_TEST_NPY_H
#define VQ_TEST_NPY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct npy {
    char dtype[8];      /* "<f4", "<i8", "|u1" */
    int ndim;
    long shape[8];
    long n;
    void *data;
};

static void npy_free(struct npy *a) { free(a->data); a->data = NULL; }

/* Returns 0 on success. */
static int npy_load(const char *path, struct npy *a)
{
    memset(a, 0, sizeof(*a));
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) { fclose(f); return -1; }
    size_t hl = pre[8] | (pre[9] << 8);
    if (pre[6] >= 2) {
        unsigned char b[2];
        if (fread(b, 1, 2, f) != 2) { fclose(f); return -1; }
        hl |= (size_t)b[0] << 16 | (size_t)b[1] << 24;
    }
    char *h = calloc(1, hl + 1);
    if (!h || fread(h, 1, hl, f) != hl) { free(h); fclose(f); return -1; }
    char *d = strstr(h, "'descr': '");
    char *s = strstr(h, "'shape': (");
    if (!d || !s || strstr(h, "'fortran_order': True")) { free(h); fclose(f); return -1; }
    memcpy(a->dtype, d + 10, 3);
    a->n = 1;
    for (char *p = s + 10; *p && *p != ')';) {
        if (*p >= '0' && *p <= '9') {
            long v = strtol(p, &p, 10);
            a->shape[a->ndim++] = v;
            a->n *= v;
        } else {
            p++;
        }
    }
    free(h);
    size_t es = !strcmp(a->dtype, "<f4") ? 4 : !strcmp(a->dtype, "<i8") ? 8 : !strcmp(a->dtype, "|u1") ? 1 : 0;
    if (!es) { fclose(f); return -1; }
    a->data = malloc(es * (size_t)a->n + 1);
    if (!a->data || fread(a->data, es, (size_t)a->n, f) != (size_t)a->n) { npy_free(a); fclose(f); return -1; }
    fclose(f);
    return 0;
}

#endif
