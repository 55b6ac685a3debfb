/* Reading and validating GGUF v3 containers (docs/model-format.md).
 * Nothing in the file is trusted: every length, count, offset and shape is
 * checked with overflow-safe arithmetic before use. */
#ifndef VQ_GGUF_H
#define VQ_GGUF_H

#include <stddef.h>
#include <stdint.h>

enum vq_gguf_type {
    VQ_GGUF_U8 = 0, VQ_GGUF_I8 = 1, VQ_GGUF_U16 = 2, VQ_GGUF_I16 = 3,
    VQ_GGUF_U32 = 4, VQ_GGUF_I32 = 5, VQ_GGUF_F32 = 6, VQ_GGUF_BOOL = 7,
    VQ_GGUF_STRING = 8, VQ_GGUF_ARRAY = 9, VQ_GGUF_U64 = 10, VQ_GGUF_I64 = 11,
    VQ_GGUF_F64 = 12,
};
enum vq_tensor_type { VQ_TYPE_F32 = 0, VQ_TYPE_F16 = 1, VQ_TYPE_BF16 = 30 };

#define VQ_GGUF_MAX_TENSORS   65536
#define VQ_GGUF_MAX_KV        65536
#define VQ_GGUF_MAX_NAME      256
#define VQ_GGUF_MAX_STRING    (1u << 20)
#define VQ_GGUF_MAX_ARRAY     (1u << 20)
#define VQ_GGUF_MAX_ELEMENTS  ((uint64_t)1 << 31)

struct vq_gguf_kv {
    char *key;
    uint32_t type;          /* enum vq_gguf_type                         */
    uint32_t arr_type;      /* element type when type == ARRAY           */
    uint64_t count;         /* elements when ARRAY                       */
    const uint8_t *value;   /* the value's bytes inside the file         */
};

struct vq_gguf_tensor {
    char *name;
    uint32_t n_dims;
    uint64_t ne[4];         /* innermost first                           */
    uint32_t type;
    uint64_t offset;        /* from data_start                           */
    uint64_t n_elements, nbytes;
    const uint8_t *data;
};

struct vq_gguf {
    const char *path;       /* for messages                              */
    const uint8_t *base;
    size_t size;            /* of the file                               */
    size_t avail;           /* bytes of it at base (size, but for a
                               header-only parse)                        */
    uint32_t alignment;
    size_t data_start;
    uint64_t n_kv, n_tensors;
    struct vq_gguf_kv *kv;
    struct vq_gguf_tensor *tensors;
    uint64_t identity;      /* FNV-1a over header and tensor heads       */
};

/* Parse and validate buf[0..size). On failure returns VQGAN_ERR_FORMAT with a
 * message naming the field (vqgan_last_error) and leaves g empty. */
int  vq_gguf_parse(struct vq_gguf *g, const uint8_t *buf, size_t size, const char *path);
void vq_gguf_free(struct vq_gguf *g);
/* The same checks on the file's first `avail` of `size` bytes, without
 * touching tensor data (tensors' data NULL, identity 0 when avail < size):
 * returns VQ_GGUF_MORE (g left empty, no message) when the header runs past
 * `avail`. Lets the loader learn the tensors' sizes before reading them. */
#define VQ_GGUF_MORE 1
int  vq_gguf_parse_header(struct vq_gguf *g, const uint8_t *buf, size_t avail, size_t size, const char *path);

const struct vq_gguf_kv *vq_gguf_find(const struct vq_gguf *g, const char *key);
const struct vq_gguf_tensor *vq_gguf_find_tensor(const struct vq_gguf *g, const char *name);

/* Typed getters. A missing key is an error when required (message names the
 * key), otherwise *out keeps its value and 0 is returned. Integer keys accept
 * any integer type whose value fits in [lo, hi]. */
int vq_gguf_get_int(const struct vq_gguf *g, const char *key, int required,
                    int64_t lo, int64_t hi, int64_t *out);
int vq_gguf_get_bool(const struct vq_gguf *g, const char *key, int required, int *out);
/* *out is a malloc'd NUL-terminated copy; the string may not contain NUL. */
int vq_gguf_get_string(const struct vq_gguf *g, const char *key, int required, char **out);
/* Integer array of at most max elements, each in [lo, hi]. */
int vq_gguf_get_int_array(const struct vq_gguf *g, const char *key, int required, int max,
                          int64_t lo, int64_t hi, int *out, int *n);
/* String array: *out is a malloc'd array of *n malloc'd strings. */
int vq_gguf_get_string_array(const struct vq_gguf *g, const char *key, int required,
                             char ***out, int *n);

#endif
