/* oneDNN primitives: direct convolution (fp32, or bf16 on CPUs with native
 * bf16/AMX), the bf16 matrix product, and int8 sums (u8 x s8 -> s32) for the
 * int8 backend. Any failure returns nonzero so the caller falls back (to
 * im2col + gemm, or the int8 backend's own kernel). */
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend_dnnl.h"
#include "largealloc.h"
#include "linear_bf16.h"
#include "linear_small.h"
#include "scratch.h"

#ifdef VQ_HAVE_DNNL
#include <dnnl.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static int bf16_native, amx;   /* amx: oneDNN runs bf16 and int8 on AMX tiles */

static pthread_key_t prim_key;
static void prim_cache_free(void *p);

static void init(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        engine = NULL;
    /* the ISA values are masks of features (AVX2_VNNI's is numerically
     * above AVX-512's), so each is tested as a subset */
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    bf16_native = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
    amx = (isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx;
    if (pthread_key_create(&prim_key, prim_cache_free))
        engine = NULL;
}

int vq_dnnl_bf16_native(void)
{
    pthread_once(&once, init);
    return engine && bf16_native;
}

/* Reorder user memory into (or out of) the primitive's layout when they differ. */
static int reorder(dnnl_stream_t st, dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *fmd, *tmd;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    int ok = 0;
    dnnl_memory_get_memory_desc(from, &fmd);
    dnnl_memory_get_memory_desc(to, &tmd);
    if (dnnl_reorder_primitive_desc_create(&pd, fmd, engine, tmd, engine, NULL) != dnnl_success)
        return -1;
    if (dnnl_primitive_create(&p, pd) == dnnl_success) {
        dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
        ok = dnnl_primitive_execute(p, st, 2, args) == dnnl_success;
        dnnl_primitive_destroy(p);
    }
    dnnl_primitive_desc_destroy(pd);
    return ok ? 0 : -1;
}

/* Memory in the primitive's layout pmd: the user's buffer itself when the
 * layouts agree, else a new buffer *buf (scratch.h: the stage's layers reuse
 * them), filled from the user's when in. */
static int bind(dnnl_stream_t st, const dnnl_memory_desc_t *pmd, dnnl_memory_t user, int in, dnnl_memory_t *out,
                void **buf)
{
    const dnnl_memory_desc_t *umd;
    dnnl_memory_get_memory_desc(user, &umd);
    if (dnnl_memory_desc_equal(umd, pmd)) {
        *out = user;
        return 0;
    }
    *out = NULL;
    if (!(*buf = vq_scratch_alloc(dnnl_memory_desc_get_size(pmd))) ||
        dnnl_memory_create(out, pmd, engine, *buf) != dnnl_success) {
        *out = NULL;
        return -1;
    }
    return in ? reorder(st, user, *out) : 0;
}

/* The primitive's own threads: oneDNN's OpenMP runtime sizes its regions
 * from the calling thread's setting, so the call's count is set around it
 * and the caller's restored. */
static int conv2d(const float *in, int C, int H, int W, const float *weight, const float *bias,
                  int Cout, int k, int s, int pt, int pl, int pb, int pr, float *out, int bf16);
int vq_dnnl_conv2d(int n_threads, const float *in, int C, int H, int W, const float *weight, const float *bias,
                   int Cout, int k, int s, int pt, int pl, int pb, int pr, float *out, int bf16)
{
    pthread_once(&once, init);
    if (!engine || (bf16 && !bf16_native))
        return -1;
    const int saved = omp_get_max_threads();
    omp_set_num_threads(n_threads > 0 ? n_threads : 1);
    const int r = conv2d(in, C, H, W, weight, bias, Cout, k, s, pt, pl, pb, pr, out, bf16);
    omp_set_num_threads(saved);
    return r;
}

static int conv2d(const float *in, int C, int H, int W, const float *weight, const float *bias,
                  int Cout, int k, int s, int pt, int pl, int pb, int pr, float *out, int bf16)
{
    const int Ho = (H + pt + pb - k) / s + 1, Wo = (W + pl + pr - k) / s + 1;
    const dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t sd = { 1, C, H, W }, wd = { Cout, C, k, k }, bd = { Cout }, dd = { 1, Cout, Ho, Wo };
    dnnl_dims_t strides = { s, s }, padl = { pt, pl }, padr = { pb, pr };
    dnnl_memory_desc_t src_u, wei_u, bias_u, dst_u, src_a, wei_a, dst_a;
    dnnl_memory_desc_init_by_tag(&src_u, 4, sd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&wei_u, 4, wd, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&bias_u, 1, bd, dnnl_f32, dnnl_a);
    dnnl_memory_desc_init_by_tag(&dst_u, 4, dd, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&src_a, 4, sd, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wei_a, 4, wd, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dst_a, 4, dd, dnnl_f32, dnnl_format_tag_any);

    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_stream_t st = NULL;
    dnnl_memory_t mu[4] = { 0 }, mp[4] = { 0 };
    void *buf[4] = { 0 };
    int r = -1;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_a, &wei_a,
                                           bias ? &bias_u : NULL, &dst_a, strides, padl, padr) != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &cd, NULL, engine, NULL) != dnnl_success)
        return -1;
    if (dnnl_stream_create(&st, engine, dnnl_stream_default_flags) != dnnl_success)
        goto done;
    if (dnnl_memory_create(&mu[0], &src_u, engine, (void *)in) != dnnl_success ||
        dnnl_memory_create(&mu[1], &wei_u, engine, (void *)weight) != dnnl_success ||
        (bias && dnnl_memory_create(&mu[2], &bias_u, engine, (void *)bias) != dnnl_success) ||
        dnnl_memory_create(&mu[3], &dst_u, engine, out) != dnnl_success)
        goto done;
    if (bind(st, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), mu[0], 1, &mp[0], &buf[0]) ||
        bind(st, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), mu[1], 1, &mp[1], &buf[1]) ||
        bind(st, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), mu[3], 0, &mp[3], &buf[3]))
        goto done;
    if (dnnl_primitive_create(&prim, pd) != dnnl_success)
        goto done;
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, mp[0] }, { DNNL_ARG_WEIGHTS, mp[1] }, { DNNL_ARG_DST, mp[3] },
                                { DNNL_ARG_BIAS, mu[2] } };
    if (dnnl_primitive_execute(prim, st, bias ? 4 : 3, args) != dnnl_success)
        goto done;
    if (mp[3] != mu[3] && reorder(st, mp[3], mu[3]))
        goto done;
    dnnl_stream_wait(st);
    r = 0;
done:
    for (int i = 0; i < 4; i++) {
        if (mp[i] && mp[i] != mu[i]) dnnl_memory_destroy(mp[i]);
        if (mu[i]) dnnl_memory_destroy(mu[i]);
    }
    for (int i = 3; i >= 0; i--) vq_scratch_free(buf[i]);
    if (prim) dnnl_primitive_destroy(prim);
    if (st) dnnl_stream_destroy(st);
    dnnl_primitive_desc_destroy(pd);
    return r;
}

/* A weight matrix repacked for bf16 products: one block per column panel
 * (vq_panel_size), each in the layout oneDNN's matmul prefers for it (VNNI
 * pairs along K, blocked along N), so no call repacks it again: at 1 to 16
 * rows that is 1.4x to 5x faster than the plain [N][K] layout (Zen 4). */
struct vq_bf16_weight {
    struct vq_packed hdr;        /* precision VQ_PREC_BF16, N, K */
    int N, K, panel, n_panel;
    int kpairs;                  /* every panel is as is_kpairs() says */
    void *mem;                   /* the panels, one after the other */
    struct { void *data; dnnl_memory_desc_t md; } p[];
};

/* Whether md is K x n in oneDNN's 16a64b2a blocking (k blocked by 16 x 2 =
 * 32, n by 64; each 32 x 64 block is [16][64][2]), unpadded, blocks of k
 * consecutive: each 64-column block is then [K/2][64][2], one after the
 * other. When every panel is, the panels (stored end to end) are N/64 such
 * blocks in a row, which is what vq_linear_small_bf16 reads. */
static int is_kpairs(const dnnl_memory_desc_t *md, int K, int n)
{
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    return md->format_kind == dnnl_blocked && md->ndims == 2 && md->padded_dims[0] == K &&
           md->padded_dims[1] == n && K % 32 == 0 && n % 64 == 0 && md->offset0 == 0 && b->inner_nblks == 3 &&
           b->inner_blks[0] == 16 && b->inner_idxs[0] == 0 && b->inner_blks[1] == 64 && b->inner_idxs[1] == 1 &&
           b->inner_blks[2] == 2 && b->inner_idxs[2] == 0 && b->strides[0] == 32 * 64 && b->strides[1] == (dnnl_dim_t)K * 64;
}

/* The matmul x[T×K] (bf16) · w (panel of n columns, descriptor wmd) + b -> y
 * (row stride ldy): fp32, or with epi (enum vq_epilogue, 0 for none) GELU
 * into bf16 or a sum into y (post-ops). With int8 weights (wmd s8): uint8
 * rows, int32 sums, neither bias nor epilogue. */
static int matmul_desc(int T, int K, int n, const dnnl_memory_desc_t *wmd, int bias, int ldy, int epi,
                       dnnl_primitive_desc_t *pd, dnnl_memory_desc_t md[4])
{
    const int i8 = wmd->data_type == dnnl_s8;
    dnnl_dims_t sd = { T, K }, bd = { 1, n }, dd = { T, n }, ds = { ldy, 1 };
    dnnl_memory_desc_init_by_tag(&md[0], 2, sd, i8 ? dnnl_u8 : dnnl_bf16, dnnl_ab);
    md[1] = *wmd;
    dnnl_memory_desc_init_by_tag(&md[2], 2, bd, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_strides(&md[3], 2, dd, i8 ? dnnl_s32 : epi == VQ_EPI_GELU_BF16 ? dnnl_bf16 : dnnl_f32,
                                     ds);
    dnnl_matmul_desc_t d;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    int ok = dnnl_matmul_desc_init(&d, &md[0], &md[1], bias ? &md[2] : NULL, &md[3]) == dnnl_success;
    if (ok && epi) {
        ok = dnnl_primitive_attr_create(&attr) == dnnl_success && dnnl_post_ops_create(&po) == dnnl_success &&
             (epi == VQ_EPI_GELU_BF16 ? dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f)
                                      : dnnl_post_ops_append_sum(po, 1.0f)) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    }
    ok = ok && dnnl_primitive_desc_create(pd, &d, attr, engine, NULL) == dnnl_success;
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return ok ? 0 : -1;
}

/* A panel's share of the weight's memory: its size, 64-byte aligned. */
static size_t panel_bytes(const dnnl_memory_desc_t *md)
{
    return (dnnl_memory_desc_get_size(md) + 63) & ~(size_t)63;
}

void vq_dnnl_pack_free(struct vq_packed *p)
{
    struct vq_bf16_weight *w = (struct vq_bf16_weight *)p;
    if (!w) return;
    free(w->mem);
    free(w);
}

struct vq_packed *vq_dnnl_pack_bf16(const float *W, int N, int K)
{
    pthread_once(&once, init);
    if (!engine || !bf16_native || N < 1 || K < 1)
        return NULL;
    const int panel = vq_panel_size(N), n_panel = (N + panel - 1) / panel;
    struct vq_bf16_weight *w = calloc(1, sizeof(*w) + sizeof(w->p[0]) * n_panel);
    uint16_t *plain = malloc(sizeof(uint16_t) * (size_t)panel * K);
    dnnl_stream_t st = NULL;
    int ok = w && plain && dnnl_stream_create(&st, engine, dnnl_stream_default_flags) == dnnl_success;
    if (w) {
        w->hdr = (struct vq_packed){ VQ_PREC_BF16, N, K };
        w->N = N;
        w->K = K;
        w->panel = panel;
        w->n_panel = n_panel;
    }
    /* each panel in the layout the matmul picks for a 64-row product (used
     * for every row count), the panels end to end in one allocation */
    size_t total = 0;
    for (int t = 0; ok && t < n_panel; t++) {
        const int n = N - t * panel < panel ? N - t * panel : panel;
        dnnl_dims_t wd = { K, n };
        dnnl_memory_desc_t any, md[4];
        dnnl_memory_desc_init_by_tag(&any, 2, wd, dnnl_bf16, dnnl_format_tag_any);
        dnnl_primitive_desc_t pd;
        if (matmul_desc(64, K, n, &any, 1, n, 0, &pd, md)) {
            dnnl_dims_t ws = { 1, K };                          /* keep the plain layout */
            dnnl_memory_desc_init_by_strides(&w->p[t].md, 2, wd, dnnl_bf16, ws);
        } else {
            w->p[t].md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
            dnnl_primitive_desc_destroy(pd);
        }
        total += panel_bytes(&w->p[t].md);
    }
    ok = ok && (w->mem = vq_alloc_large(total)) != NULL;
    if (ok) w->kpairs = 1;
    size_t at = 0;
    for (int t = 0; ok && t < n_panel; t++) {
        const int off = t * panel, n = N - off < panel ? N - off : panel;
        w->p[t].data = (char *)w->mem + at;
        at += panel_bytes(&w->p[t].md);
        w->kpairs &= is_kpairs(&w->p[t].md, K, n);
        vq_f32_to_bf16(W + (size_t)off * K, plain, (size_t)n * K);
        dnnl_dims_t wd = { K, n }, ws = { 1, K };
        dnnl_memory_desc_t pmd;
        dnnl_memory_desc_init_by_strides(&pmd, 2, wd, dnnl_bf16, ws);
        dnnl_memory_t from = NULL, to = NULL;
        ok = dnnl_memory_create(&from, &pmd, engine, plain) == dnnl_success &&
             dnnl_memory_create(&to, &w->p[t].md, engine, w->p[t].data) == dnnl_success &&
             reorder(st, from, to) == 0;
        dnnl_stream_wait(st);
        if (from) dnnl_memory_destroy(from);
        if (to) dnnl_memory_destroy(to);
    }
    if (st) dnnl_stream_destroy(st);
    free(plain);
    if (!ok) {
        vq_dnnl_pack_free(w ? &w->hdr : NULL);
        return NULL;
    }
    return &w->hdr;
}

/* Each thread keeps its stream and its last PRIM_CACHE matmul primitives,
 * with their memory objects, so a product of a few rows does not pay for
 * building them again (several microseconds a panel, about a fifth of a
 * one-position transformer step). */
#define PRIM_CACHE 48
struct prim_entry {
    int T, K, n, bias, epi;
    dnnl_memory_desc_t wmd;
    dnnl_primitive_t prim;
    dnnl_memory_t m[4];
};
struct prim_cache {
    dnnl_stream_t st;
    int count, next;
    struct prim_entry e[PRIM_CACHE];
};

static void entry_free(struct prim_entry *e)
{
    for (int i = 0; i < 4; i++)
        if (e->m[i]) dnnl_memory_destroy(e->m[i]);
    if (e->prim) dnnl_primitive_destroy(e->prim);
    memset(e, 0, sizeof(*e));
}

static void prim_cache_free(void *p)
{
    struct prim_cache *c = p;
    if (!c) return;
    for (int i = 0; i < c->count; i++) entry_free(&c->e[i]);
    if (c->st) dnnl_stream_destroy(c->st);
    free(c);
}

static struct prim_entry *prim_get(int T, int K, int n, int bias, int epi, const dnnl_memory_desc_t *wmd,
                                   dnnl_stream_t *st)
{
    struct prim_cache *c = pthread_getspecific(prim_key);
    if (!c) {
        if (!(c = calloc(1, sizeof(*c)))) return NULL;
        if (dnnl_stream_create(&c->st, engine, dnnl_stream_default_flags) != dnnl_success ||
            pthread_setspecific(prim_key, c)) {
            if (c->st) dnnl_stream_destroy(c->st);
            free(c);
            return NULL;
        }
    }
    *st = c->st;
    for (int i = 0; i < c->count; i++) {
        struct prim_entry *e = &c->e[i];
        if (e->T == T && e->K == K && e->n == n && e->bias == bias && e->epi == epi &&
            dnnl_memory_desc_equal(&e->wmd, wmd))
            return e;
    }
    struct prim_entry *e = &c->e[c->count < PRIM_CACHE ? c->count++ : c->next++ % PRIM_CACHE];
    entry_free(e);
    dnnl_memory_desc_t md[4];
    dnnl_primitive_desc_t pd = NULL;
    if (matmul_desc(T, K, n, wmd, bias, n, epi, &pd, md))
        return NULL;
    /* int8 only where oneDNN has a real kernel for it: its reference code
     * takes seconds a product */
    const char *impl = NULL;
    int ok = wmd->data_type != dnnl_s8 ||
             (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
              strncmp(impl, "ref", 3) != 0);
    ok = ok && dnnl_primitive_create(&e->prim, pd) == dnnl_success;
    for (int i = 0; ok && i < 4; i++)
        ok = dnnl_memory_create(&e->m[i], &md[i], engine, DNNL_MEMORY_NONE) == dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    if (!ok) {
        entry_free(e);
        return NULL;
    }
    e->T = T;
    e->K = K;
    e->n = n;
    e->bias = bias;
    e->epi = epi;
    e->wmd = *wmd;
    return e;
}

/* One panel: y[T×n] (row stride ldy) = xb[T×K] · panelᵀ (+ b), for weights
 * whose panels are not one blocked matrix (linear_whole). The product
 * writes a dense block (with a strided destination oneDNN 2.6 gives the
 * blocked weights to its reference kernel), copied into y after. */
static int linear_panel(const uint16_t *xb, int T, const struct vq_bf16_weight *w, int t, const float *b,
                        float *y, int ldy)
{
    const int off = t * w->panel, n = w->N - off < w->panel ? w->N - off : w->panel;
    dnnl_stream_t st;
    struct prim_entry *e = prim_get(T, w->K, n, b != NULL, 0, &w->p[t].md, &st);
    if (!e) return -1;
    float *dense = n == ldy ? y + off : malloc(sizeof(float) * (size_t)T * n);
    if (!dense) return -1;
    int r = -1;
    if (dnnl_memory_set_data_handle(e->m[0], (void *)xb) == dnnl_success &&
        dnnl_memory_set_data_handle(e->m[1], w->p[t].data) == dnnl_success &&
        (!b || dnnl_memory_set_data_handle(e->m[2], (void *)(b + off)) == dnnl_success) &&
        dnnl_memory_set_data_handle(e->m[3], dense) == dnnl_success) {
        dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, e->m[0] }, { DNNL_ARG_WEIGHTS, e->m[1] },
                                    { DNNL_ARG_DST, e->m[3] }, { DNNL_ARG_BIAS, e->m[2] } };
        if (dnnl_primitive_execute(e->prim, st, b ? 4 : 3, args) == dnnl_success &&
            dnnl_stream_wait(st) == dnnl_success)
            r = 0;
    }
    if (dense != y + off) {
        if (!r)
            for (int i = 0; i < T; i++)
                memcpy(y + (size_t)i * ldy + off, dense + (size_t)i * n, sizeof(float) * n);
        free(dense);
    }
    return r;
}

/* The whole product in one oneDNN call on nt threads, where the panels, end to
 * end, are the blocked layout of the whole matrix (kpairs: N/64 blocks of
 * [K/2][64][2], oneDNN's BA16a64b2a): its destination is y itself, dense,
 * so nothing is copied. The same bits as the panels' calls (each output's
 * sum runs over k in the same order; test_ops compares them). */
static int linear_whole(int nt, const uint16_t *xb, int T, const struct vq_bf16_weight *w, const float *b, int epi,
                        void *y)
{
    dnnl_memory_desc_t wmd;
    dnnl_dims_t wd = { w->K, w->N };
    if (dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_bf16, dnnl_BA16a64b2a) != dnnl_success ||
        !is_kpairs(&wmd, w->K, w->N))
        return -1;
    dnnl_stream_t st;
    struct prim_entry *e = prim_get(T, w->K, w->N, b != NULL, epi, &wmd, &st);
    if (!e) return -1;
    if (dnnl_memory_set_data_handle(e->m[0], (void *)xb) != dnnl_success ||
        dnnl_memory_set_data_handle(e->m[1], w->mem) != dnnl_success ||
        (b && dnnl_memory_set_data_handle(e->m[2], (void *)b) != dnnl_success) ||
        dnnl_memory_set_data_handle(e->m[3], y) != dnnl_success)
        return -1;
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, e->m[0] }, { DNNL_ARG_WEIGHTS, e->m[1] },
                                { DNNL_ARG_DST, e->m[3] }, { DNNL_ARG_BIAS, e->m[2] } };
    /* oneDNN takes its threads from the calling thread's OpenMP setting */
    const int before = omp_get_max_threads();
    omp_set_num_threads(nt);
    const int r = dnnl_primitive_execute(e->prim, st, b ? 4 : 3, args) == dnnl_success &&
                  dnnl_stream_wait(st) == dnnl_success ? 0 : -1;
    omp_set_num_threads(before);
    return r;
}

int vq_dnnl_amx(void)
{
    pthread_once(&once, init);
    return engine && amx;
}

/* oneDNN had no kernel for a shape, or failed to run one: the int8 backend
 * keeps its own for the rest of the process */
static int int8_refused;

int vq_dnnl_int8_sums(int n_threads, const uint8_t *xq, int T, int K, const int8_t *wq, int N, int32_t *acc)
{
    pthread_once(&once, init);
    if (!engine || T < 1 || K < 1 || N < 1 || K % 64 || N % 64 || __atomic_load_n(&int8_refused, __ATOMIC_RELAXED))
        return -1;
    /* the int8 packing's bytes, blocks of 64 columns of [K/4][64][4], are
     * this layout when K is whole blocks of 64 */
    dnnl_memory_desc_t wmd;
    dnnl_dims_t wd = { K, N };
    if (dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_s8, dnnl_BA16a64b4a) != dnnl_success)
        return -1;
    dnnl_stream_t st;
    struct prim_entry *e = prim_get(T, K, N, 0, 0, &wmd, &st);
    if (!e) {
        __atomic_store_n(&int8_refused, 1, __ATOMIC_RELAXED);
        return -1;
    }
    if (dnnl_memory_set_data_handle(e->m[0], (void *)xq) != dnnl_success ||
        dnnl_memory_set_data_handle(e->m[1], (void *)wq) != dnnl_success ||
        dnnl_memory_set_data_handle(e->m[3], acc) != dnnl_success)
        return -1;
    dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, e->m[0] }, { DNNL_ARG_WEIGHTS, e->m[1] }, { DNNL_ARG_DST, e->m[3] } };
    const int before = omp_get_max_threads();
    omp_set_num_threads(n_threads > 0 ? n_threads : 1);
    const int r = dnnl_primitive_execute(e->prim, st, 3, args) == dnnl_success &&
                  dnnl_stream_wait(st) == dnnl_success ? 0 : -1;
    omp_set_num_threads(before);
    if (r) __atomic_store_n(&int8_refused, 1, __ATOMIC_RELAXED);
    return r;
}

static int whole_off;   /* tests: 1 runs every product panel by panel */
void vq_dnnl_whole_force_off(int off) { __atomic_store_n(&whole_off, off, __ATOMIC_RELAXED); }

int vq_dnnl_small_ok(const struct vq_packed *p)
{
    const struct vq_bf16_weight *W = (const struct vq_bf16_weight *)p;
    return W && W->hdr.precision == VQ_PREC_BF16 && W->kpairs && W->K % 2 == 0 && W->N % 64 == 0 &&
           vq_linear_small_ready(1);
}

int vq_dnnl_bf16_own(void)
{
    return vq_linear_bf16_ready();
}

/* More than the few-rows kernel's rows through our own kernel
 * (linear_bf16.h; on AMX tiles where the CPU has them, linear_amx.h), where
 * the weights are its blocks and vq_dnnl_bf16_own. */
static int own_rows(int nt, const struct vq_bf16_weight *W, const uint16_t *xb, int T, const float *b, int epi,
                    void *y)
{
    return !W->kpairs || !vq_dnnl_bf16_own() ? -1 : vq_linear_bf16_rows(nt, xb, T, W->K, W->mem, b, W->N, epi, y);
}

int vq_dnnl_linear_bf16_in(int n_threads, int small_rows, const struct vq_packed *p, const uint16_t *xb, int T,
                           const float *b, float *y)
{
    const struct vq_bf16_weight *W = (const struct vq_bf16_weight *)p;
    if (!W || W->hdr.precision != VQ_PREC_BF16)
        return -1;
    const int K = W->K, N = W->N, nt = n_threads > 0 ? n_threads : 1;
    int fail = 0;
    vq_flops_add(2ull * T * N * K);
    /* a few rows: streamed through the blocks directly (linear_small.c) */
    if (T <= small_rows && W->kpairs && !vq_linear_small_bf16(nt, xb, T, K, W->mem, b, N, y))
        return 0;
    if (!own_rows(nt, W, xb, T, b, 0, y))
        return 0;
    if (W->kpairs && W->n_panel > 1 && !__atomic_load_n(&whole_off, __ATOMIC_RELAXED) &&
        !linear_whole(nt, xb, T, W, b, 0, y))
        return 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : fail) num_threads(nt)
    for (int t = 0; t < W->n_panel; t++)
        fail |= linear_panel(xb, T, W, t, b, y, N) != 0;
    return fail ? -1 : 0;
}

int vq_dnnl_linear_bf16_epi(int n_threads, int small_rows, const struct vq_packed *p, const uint16_t *xb, int T,
                            const float *b, int epi, void *y)
{
    const struct vq_bf16_weight *W = (const struct vq_bf16_weight *)p;
    const int nt = n_threads > 0 ? n_threads : 1;
    if (!W || W->hdr.precision != VQ_PREC_BF16 || T <= small_rows || !W->kpairs ||
        (own_rows(nt, W, xb, T, b, epi, y) &&
         (W->n_panel < 2 || __atomic_load_n(&whole_off, __ATOMIC_RELAXED) || linear_whole(nt, xb, T, W, b, epi, y))))
        return -1;
    vq_flops_add(2ull * T * W->N * W->K);
    return 0;
}

int vq_dnnl_linear_bf16(int n_threads, int small_rows, const struct vq_packed *p, const float *x, int T,
                        const float *b, float *y)
{
    const struct vq_bf16_weight *W = (const struct vq_bf16_weight *)p;
    if (!W || W->hdr.precision != VQ_PREC_BF16)
        return -1;
    const size_t nx = (size_t)T * W->K;
    uint16_t *xb = malloc(sizeof(uint16_t) * nx);
    if (!xb) return -1;
    /* the input is converted once, shared by every panel */
    vq_f32_to_bf16_par(n_threads > 0 ? n_threads : 1, x, xb, nx);
    const int r = vq_dnnl_linear_bf16_in(n_threads, small_rows, p, xb, T, b, y);
    free(xb);
    return r;
}

#else
struct vq_packed *vq_dnnl_pack_bf16(const float *W, int N, int K)
{
    (void)W; (void)N; (void)K;
    return NULL;
}
void vq_dnnl_pack_free(struct vq_packed *w) { (void)w; }
int vq_dnnl_small_ok(const struct vq_packed *p)
{
    (void)p;
    return 0;
}
int vq_dnnl_linear_bf16(int n_threads, int small_rows, const struct vq_packed *p, const float *x, int T,
                        const float *b, float *y)
{
    (void)n_threads; (void)small_rows; (void)p; (void)x; (void)T; (void)b; (void)y;
    return -1;
}
int vq_dnnl_linear_bf16_in(int n_threads, int small_rows, const struct vq_packed *p, const uint16_t *xb, int T,
                           const float *b, float *y)
{
    (void)n_threads; (void)small_rows; (void)p; (void)xb; (void)T; (void)b; (void)y;
    return -1;
}
int vq_dnnl_linear_bf16_epi(int n_threads, int small_rows, const struct vq_packed *p, const uint16_t *xb, int T,
                            const float *b, int epi, void *y)
{
    (void)n_threads; (void)small_rows; (void)p; (void)xb; (void)T; (void)b; (void)epi; (void)y;
    return -1;
}
int vq_dnnl_bf16_native(void) { return 0; }
int vq_dnnl_amx(void) { return 0; }
int vq_dnnl_bf16_own(void) { return 0; }
int vq_dnnl_int8_sums(int n_threads, const uint8_t *xq, int T, int K, const int8_t *wq, int N, int32_t *acc)
{
    (void)n_threads; (void)xq; (void)T; (void)K; (void)wq; (void)N; (void)acc;
    return -1;
}
void vq_dnnl_whole_force_off(int off) { (void)off; }
int vq_dnnl_conv2d(int n_threads, const float *in, int C, int H, int W, const float *weight, const float *bias,
                   int Cout, int k, int s, int pt, int pl, int pb, int pr, float *out, int bf16)
{
    (void)n_threads; (void)in; (void)C; (void)H; (void)W; (void)weight; (void)bias; (void)Cout; (void)k; (void)s;
    (void)pt; (void)pl; (void)pb; (void)pr; (void)out; (void)bf16;
    return -1;
}
#endif
