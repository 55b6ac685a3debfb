/* GGUF v3 reader: a bounds-checked cursor over the file read into memory
 * (all of it, or only its beginning for vq_gguf_parse_header). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf.h"

struct cursor {
    const struct vq_gguf *g;
    size_t pos;
    const char *what;       /* the field being read, for messages */
};

static int truncated(struct cursor *c)
{
    return vq_error(VQGAN_ERR_FORMAT, "%s: file truncated while reading %s at byte %zu (file size %zu)",
                    c->g->path, c->what, c->pos, c->g->size);
}

static int take(struct cursor *c, size_t n, const uint8_t **p)
{
    if (n > c->g->size - c->pos)
        return truncated(c);
    if (n > c->g->avail - c->pos)          /* in the file, not yet in memory */
        return VQ_GGUF_MORE;
    *p = c->g->base + c->pos;
    c->pos += n;
    return 0;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int rd_u32(struct cursor *c, uint32_t *v)
{
    const uint8_t *p = NULL;
    int r = take(c, 4, &p);
    if (!r) *v = (uint32_t)le(p, 4);
    return r;
}

static int rd_u64(struct cursor *c, uint64_t *v)
{
    const uint8_t *p = NULL;
    int r = take(c, 8, &p);
    if (!r) *v = le(p, 8);
    return r;
}

/* A GGUF string: u64 length + bytes. */
static int rd_str(struct cursor *c, uint64_t max, const uint8_t **s, uint64_t *len)
{
    int r = rd_u64(c, len);
    if (r) return r;
    if (*len > c->g->size - c->pos)
        return truncated(c);
    if (*len > max)
        return vq_error(VQGAN_ERR_FORMAT, "%s: %s: string length %" PRIu64 " exceeds the limit %" PRIu64,
                        c->g->path, c->what, *len, max);
    return take(c, (size_t)*len, s);
}

static int rd_name(struct cursor *c, char **out)
{
    const uint8_t *s;
    uint64_t len;
    int r = rd_str(c, VQ_GGUF_MAX_NAME, &s, &len);
    if (r) return r;
    if (len == 0)
        return vq_error(VQGAN_ERR_FORMAT, "%s: %s is empty (byte %zu)", c->g->path, c->what, c->pos);
    if (memchr(s, 0, len))
        return vq_error(VQGAN_ERR_FORMAT, "%s: %s contains a NUL byte", c->g->path, c->what);
    *out = malloc(len + 1);
    if (!*out) return vq_error(VQGAN_ERR_NOMEM, "%s: out of memory", c->g->path);
    memcpy(*out, s, len);
    (*out)[len] = 0;
    return 0;
}

static int scalar_size(uint32_t t)
{
    switch (t) {
    case VQ_GGUF_U8: case VQ_GGUF_I8: case VQ_GGUF_BOOL: return 1;
    case VQ_GGUF_U16: case VQ_GGUF_I16: return 2;
    case VQ_GGUF_U32: case VQ_GGUF_I32: case VQ_GGUF_F32: return 4;
    case VQ_GGUF_U64: case VQ_GGUF_I64: case VQ_GGUF_F64: return 8;
    }
    return 0;
}

static int skip_value(struct cursor *c, uint32_t type, const char *key)
{
    const uint8_t *p = NULL;
    uint64_t len;
    if (type == VQ_GGUF_STRING)
        return rd_str(c, VQ_GGUF_MAX_STRING, &p, &len);
    int n = scalar_size(type);
    if (!n)
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s': unknown value type %u", c->g->path, key, type);
    return take(c, (size_t)n, &p);
}

static int parse_kv(struct cursor *c, struct vq_gguf_kv *kv)
{
    int r;
    c->what = "key";
    if ((r = rd_name(c, &kv->key))) return r;
    c->what = "value type";
    if ((r = rd_u32(c, &kv->type))) return r;
    kv->value = c->g->base + c->pos;
    c->what = kv->key;
    if (kv->type != VQ_GGUF_ARRAY)
        return skip_value(c, kv->type, kv->key);
    c->what = "array header";
    if ((r = rd_u32(c, &kv->arr_type)) || (r = rd_u64(c, &kv->count))) return r;
    if (kv->arr_type == VQ_GGUF_ARRAY)
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s': nested arrays are not supported (value type)",
                        c->g->path, kv->key);
    if (kv->arr_type != VQ_GGUF_STRING && !scalar_size(kv->arr_type))
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s': unknown array element value type %u",
                        c->g->path, kv->key, kv->arr_type);
    if (kv->count > VQ_GGUF_MAX_ARRAY)
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s': array count %" PRIu64 " exceeds the limit %u",
                        c->g->path, kv->key, kv->count, VQ_GGUF_MAX_ARRAY);
    kv->value = c->g->base + c->pos;
    c->what = kv->key;
    for (uint64_t i = 0; i < kv->count; i++)
        if ((r = skip_value(c, kv->arr_type, kv->key))) return r;
    return 0;
}

static int tensor_type_size(uint32_t t)
{
    return t == VQ_TYPE_F32 ? 4 : (t == VQ_TYPE_F16 || t == VQ_TYPE_BF16) ? 2 : 0;
}

static int parse_tensor_info(struct cursor *c, struct vq_gguf_tensor *t)
{
    int r;
    c->what = "tensor name";
    if ((r = rd_name(c, &t->name))) return r;
    c->what = "tensor n_dims";
    if ((r = rd_u32(c, &t->n_dims))) return r;
    if (t->n_dims < 1 || t->n_dims > 4)
        return vq_error(VQGAN_ERR_FORMAT, "%s: tensor '%s': n_dims %u is outside 1..4",
                        c->g->path, t->name, t->n_dims);
    c->what = "tensor dims";
    t->n_elements = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        if ((r = rd_u64(c, &t->ne[i]))) return r;
        if (t->ne[i] == 0 || t->ne[i] > VQ_GGUF_MAX_ELEMENTS ||
            t->n_elements > VQ_GGUF_MAX_ELEMENTS / t->ne[i])
            return vq_error(VQGAN_ERR_FORMAT,
                            "%s: tensor '%s': dims[%u] = %" PRIu64 " is zero or makes more than 2^31 elements",
                            c->g->path, t->name, i, t->ne[i]);
        t->n_elements *= t->ne[i];
    }
    for (uint32_t i = t->n_dims; i < 4; i++)
        t->ne[i] = 1;
    c->what = "tensor type";
    if ((r = rd_u32(c, &t->type))) return r;
    int ts = tensor_type_size(t->type);
    if (!ts)
        return vq_error(VQGAN_ERR_FORMAT, "%s: tensor '%s': tensor type %u is not f32 (0), f16 (1) or bf16 (30)",
                        c->g->path, t->name, t->type);
    t->nbytes = t->n_elements * (uint64_t)ts;
    c->what = "tensor offset";
    return rd_u64(c, &t->offset);
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp((*(const struct vq_gguf_kv *const *)a)->key, (*(const struct vq_gguf_kv *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const struct vq_gguf_tensor *const *)a)->name,
                  (*(const struct vq_gguf_tensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    uint64_t x = (*(const struct vq_gguf_tensor *const *)a)->offset;
    uint64_t y = (*(const struct vq_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Keys and tensor names unique; tensors aligned, inside the file, disjoint. */
static int check_layout(struct vq_gguf *g)
{
    int r = 0;
    size_t nmax = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    const void **v = malloc((nmax ? nmax : 1) * sizeof(*v));
    if (!v) return vq_error(VQGAN_ERR_NOMEM, "%s: out of memory", g->path);

    for (uint64_t i = 0; i < g->n_kv; i++) v[i] = &g->kv[i];
    qsort(v, g->n_kv, sizeof(*v), cmp_kv);
    for (uint64_t i = 1; i < g->n_kv && !r; i++)
        if (!cmp_kv(&v[i - 1], &v[i]))
            r = vq_error(VQGAN_ERR_FORMAT, "%s: duplicate key '%s'", g->path,
                         ((const struct vq_gguf_kv *)v[i])->key);

    for (uint64_t i = 0; i < g->n_tensors && !r; i++) v[i] = &g->tensors[i];
    if (!r) qsort(v, g->n_tensors, sizeof(*v), cmp_tensor_name);
    for (uint64_t i = 1; i < g->n_tensors && !r; i++)
        if (!cmp_tensor_name(&v[i - 1], &v[i]))
            r = vq_error(VQGAN_ERR_FORMAT, "%s: duplicate tensor name '%s'", g->path,
                         ((const struct vq_gguf_tensor *)v[i])->name);

    const uint64_t avail = g->size - g->data_start;
    for (uint64_t i = 0; i < g->n_tensors && !r; i++) {
        struct vq_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            r = vq_error(VQGAN_ERR_FORMAT, "%s: tensor '%s': offset %" PRIu64 " breaks the alignment %u",
                         g->path, t->name, t->offset, g->alignment);
        else if (t->offset > avail || t->nbytes > avail - t->offset)
            r = vq_error(VQGAN_ERR_FORMAT,
                         "%s: tensor '%s': data [%" PRIu64 ", +%" PRIu64 ") runs past the end of the file (%" PRIu64 " data bytes)",
                         g->path, t->name, t->offset, t->nbytes, avail);
        else if (g->avail == g->size)       /* header-only parse: no data yet */
            t->data = g->base + g->data_start + t->offset;
    }
    if (!r) qsort(v, g->n_tensors, sizeof(*v), cmp_tensor_offset);
    for (uint64_t i = 1; i < g->n_tensors && !r; i++) {
        const struct vq_gguf_tensor *a = v[i - 1], *b = v[i];
        if (a->offset + a->nbytes > b->offset)
            r = vq_error(VQGAN_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", g->path, a->name, b->name);
    }
    free(v);
    return r;
}

static int parse(struct vq_gguf *g, const uint8_t *buf, size_t avail, size_t size, const char *path)
{
    struct cursor c = { g, 0, "magic" };
    const uint8_t *p = NULL;
    uint32_t version;
    int r;

    memset(g, 0, sizeof(*g));
    g->path = path;
    g->base = buf;
    g->size = size;
    g->avail = avail;
    g->alignment = 32;

    if ((r = take(&c, 4, &p))) goto fail;
    if (memcmp(p, "GGUF", 4)) {
        r = vq_error(VQGAN_ERR_FORMAT, "%s: bad magic (not a GGUF model file)", path);
        goto fail;
    }
    c.what = "version";
    if ((r = rd_u32(&c, &version))) goto fail;
    if (version != 3) {
        r = vq_error(VQGAN_ERR_FORMAT, "%s: GGUF version %u is not supported (expected 3)", path, version);
        goto fail;
    }
    c.what = "tensor_count";
    if ((r = rd_u64(&c, &g->n_tensors))) goto fail;
    if (g->n_tensors > VQ_GGUF_MAX_TENSORS) {
        r = vq_error(VQGAN_ERR_FORMAT, "%s: tensor_count %" PRIu64 " exceeds the limit %d", path,
                     g->n_tensors, VQ_GGUF_MAX_TENSORS);
        g->n_tensors = 0;
        goto fail;
    }
    c.what = "kv_count";
    if ((r = rd_u64(&c, &g->n_kv))) goto fail;
    if (g->n_kv > VQ_GGUF_MAX_KV) {
        r = vq_error(VQGAN_ERR_FORMAT, "%s: kv_count %" PRIu64 " exceeds the limit %d", path, g->n_kv,
                     VQ_GGUF_MAX_KV);
        g->n_kv = 0;
        goto fail;
    }
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof(*g->kv));
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*g->tensors));
    if (!g->kv || !g->tensors) {
        r = vq_error(VQGAN_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (uint64_t i = 0; i < g->n_kv; i++)
        if ((r = parse_kv(&c, &g->kv[i]))) goto fail;

    const struct vq_gguf_kv *al = vq_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != VQ_GGUF_U32) {
            r = vq_error(VQGAN_ERR_FORMAT, "%s: general.alignment must be a u32 (value type %u)", path, al->type);
            goto fail;
        }
        g->alignment = (uint32_t)le(al->value, 4);
        if (g->alignment == 0 || g->alignment > 4096 || (g->alignment & (g->alignment - 1))) {
            r = vq_error(VQGAN_ERR_FORMAT, "%s: general.alignment %u is not a power of two in 1..4096",
                         path, g->alignment);
            goto fail;
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((r = parse_tensor_info(&c, &g->tensors[i]))) goto fail;

    g->data_start = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->data_start > size) {
        if (g->n_tensors) {
            c.what = "padding before tensor data";
            r = truncated(&c);
            goto fail;
        }
        g->data_start = size;
    }
    if ((r = check_layout(g))) goto fail;
    if (avail < size) {                     /* header only: no tensor data */
        for (uint64_t i = 0; i < g->n_tensors; i++) g->tensors[i].data = NULL;
        return 0;
    }

    g->identity = fnv1a(14695981039346656037ull, buf, c.pos);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct vq_gguf_tensor *t = &g->tensors[i];
        g->identity = fnv1a(g->identity, t->data, t->nbytes < 64 ? t->nbytes : 64);
    }
    return 0;
fail:
    vq_gguf_free(g);
    return r;
}

int vq_gguf_parse(struct vq_gguf *g, const uint8_t *buf, size_t size, const char *path)
{
    return parse(g, buf, size, size, path);
}

int vq_gguf_parse_header(struct vq_gguf *g, const uint8_t *buf, size_t avail, size_t size, const char *path)
{
    return parse(g, buf, avail < size ? avail : size, size, path);
}

void vq_gguf_free(struct vq_gguf *g)
{
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) free(g->kv[i].key);
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    g->kv = NULL;
    g->tensors = NULL;
    g->n_kv = g->n_tensors = 0;
}

const struct vq_gguf_kv *vq_gguf_find(const struct vq_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key))
            return &g->kv[i];
    return NULL;
}

const struct vq_gguf_tensor *vq_gguf_find_tensor(const struct vq_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

static int missing(const struct vq_gguf *g, const char *key, int required)
{
    return required ? vq_error(VQGAN_ERR_FORMAT, "%s: required key '%s' is missing", g->path, key) : 0;
}

/* Integer value of a scalar at p; returns 0 when the type is not an integer. */
static int int_value(uint32_t type, const uint8_t *p, int64_t *v)
{
    switch (type) {
    case VQ_GGUF_U8:  *v = p[0]; return 1;
    case VQ_GGUF_I8:  *v = (int8_t)p[0]; return 1;
    case VQ_GGUF_U16: *v = (int64_t)le(p, 2); return 1;
    case VQ_GGUF_I16: *v = (int16_t)le(p, 2); return 1;
    case VQ_GGUF_U32: *v = (int64_t)le(p, 4); return 1;
    case VQ_GGUF_I32: *v = (int32_t)le(p, 4); return 1;
    case VQ_GGUF_I64: *v = (int64_t)le(p, 8); return 1;
    case VQ_GGUF_U64: { uint64_t u = le(p, 8); *v = u > INT64_MAX ? INT64_MAX : (int64_t)u; return 1; }
    }
    return 0;
}

int vq_gguf_get_int(const struct vq_gguf *g, const char *key, int required,
                    int64_t lo, int64_t hi, int64_t *out)
{
    const struct vq_gguf_kv *kv = vq_gguf_find(g, key);
    int64_t v;
    if (!kv) return missing(g, key, required);
    if (!int_value(kv->type, kv->value, &v))
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s' must be an integer (value type %u)", g->path, key, kv->type);
    if (v < lo || v > hi)
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s' = %" PRId64 " is outside %" PRId64 "..%" PRId64,
                        g->path, key, v, lo, hi);
    *out = v;
    return 0;
}

int vq_gguf_get_bool(const struct vq_gguf *g, const char *key, int required, int *out)
{
    const struct vq_gguf_kv *kv = vq_gguf_find(g, key);
    if (!kv) return missing(g, key, required);
    if (kv->type != VQ_GGUF_BOOL || kv->value[0] > 1)
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s' must be a bool (value type %u)", g->path, key, kv->type);
    *out = kv->value[0];
    return 0;
}

static int copy_string(const struct vq_gguf *g, const char *key, const uint8_t *p, char **out,
                       size_t *consumed)
{
    uint64_t len = le(p, 8);       /* validated by the parser */
    if (memchr(p + 8, 0, len))
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s': string contains a NUL byte", g->path, key);
    *out = malloc(len + 1);
    if (!*out) return vq_error(VQGAN_ERR_NOMEM, "%s: out of memory", g->path);
    memcpy(*out, p + 8, len);
    (*out)[len] = 0;
    if (consumed) *consumed = 8 + len;
    return 0;
}

int vq_gguf_get_string(const struct vq_gguf *g, const char *key, int required, char **out)
{
    const struct vq_gguf_kv *kv = vq_gguf_find(g, key);
    if (!kv) return missing(g, key, required);
    if (kv->type != VQ_GGUF_STRING)
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s' must be a string (value type %u)", g->path, key, kv->type);
    return copy_string(g, key, kv->value, out, NULL);
}

int vq_gguf_get_int_array(const struct vq_gguf *g, const char *key, int required, int max,
                          int64_t lo, int64_t hi, int *out, int *n)
{
    const struct vq_gguf_kv *kv = vq_gguf_find(g, key);
    if (!kv) return missing(g, key, required);
    if (kv->type != VQ_GGUF_ARRAY || kv->arr_type == VQ_GGUF_STRING ||
        !int_value(kv->arr_type, kv->value, &(int64_t){0}))
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s' must be an integer array", g->path, key);
    if (kv->count > (uint64_t)max)
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s' has %" PRIu64 " elements, at most %d allowed",
                        g->path, key, kv->count, max);
    const int es = scalar_size(kv->arr_type);
    for (uint64_t i = 0; i < kv->count; i++) {
        int64_t v;
        int_value(kv->arr_type, kv->value + i * es, &v);
        if (v < lo || v > hi)
            return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s'[%" PRIu64 "] = %" PRId64 " is outside %" PRId64 "..%" PRId64,
                            g->path, key, i, v, lo, hi);
        out[i] = (int)v;
    }
    *n = (int)kv->count;
    return 0;
}

int vq_gguf_get_string_array(const struct vq_gguf *g, const char *key, int required,
                             char ***out, int *n)
{
    const struct vq_gguf_kv *kv = vq_gguf_find(g, key);
    if (!kv) return missing(g, key, required);
    if (kv->type != VQ_GGUF_ARRAY || kv->arr_type != VQ_GGUF_STRING)
        return vq_error(VQGAN_ERR_FORMAT, "%s: key '%s' must be a string array", g->path, key);
    char **a = calloc(kv->count ? kv->count : 1, sizeof(*a));
    if (!a) return vq_error(VQGAN_ERR_NOMEM, "%s: out of memory", g->path);
    const uint8_t *p = kv->value;
    for (uint64_t i = 0; i < kv->count; i++) {
        size_t used;
        int r = copy_string(g, key, p, &a[i], &used);
        if (r) {
            for (uint64_t j = 0; j < i; j++) free(a[j]);
            free(a);
            return r;
        }
        p += used;
    }
    *out = a;
    *n = (int)kv->count;
    return 0;
}
