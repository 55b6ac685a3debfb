/* Temporal memos of a session's tokenizer calls (docs/sampling.md, "Temporal
 * modes"): the previous call's input (key) and output (value) per kind, so
 * that a frame whose label map (or tokens) did not change returns the
 * previous result without computing it. Owned by the session. */
#ifndef VQ_MEMO_H
#define VQ_MEMO_H

#include <stddef.h>

enum { VQ_MEMO_LABELS = 0, VQ_MEMO_DECODE_U8 = 1, VQ_MEMO_DECODE_F32 = 2, VQ_MEMO_KINDS = 3 };

struct vq_memo {
    unsigned char *key, *val;
    size_t key_len, key_cap, val_len, val_cap;
    int valid;
};
struct vq_memos {
    struct vq_memo memo[VQ_MEMO_KINDS];
};

/* The stored value when key equals the stored key, else NULL. */
const void *vq_memo_find(const struct vq_memos *ms, int kind, const void *key, size_t key_len, size_t *val_len);
/* Stores key and value; on failure the memo is just left empty (returns
 * VQGAN_ERR_NOMEM, the caller may ignore it). */
int vq_memo_store(struct vq_memos *ms, int kind, const void *key, size_t key_len, const void *val,
                  size_t val_len);
/* Frees every memo (the struct stays usable). */
void vq_memo_clear(struct vq_memos *ms);
/* The stored key and value of a kind, whatever they are (NULL when empty). */
const void *vq_memo_peek(const struct vq_memos *ms, int kind, const void **key, size_t *key_len,
                         size_t *val_len);

#endif
