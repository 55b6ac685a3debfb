/* Temporal memos of the tokenizer calls (memo.h). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "memo.h"

static int grow(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    void *p = realloc(*buf, need);
    if (!p) return vq_error(VQGAN_ERR_NOMEM, "temporal memo: out of memory");
    *buf = p;
    *cap = need;
    return 0;
}

const void *vq_memo_find(const struct vq_memos *ms, int kind, const void *key, size_t key_len, size_t *val_len)
{
    if (kind < 0 || kind >= VQ_MEMO_KINDS) return NULL;
    const struct vq_memo *m = &ms->memo[kind];
    if (!m->valid || m->key_len != key_len || memcmp(m->key, key, key_len)) return NULL;
    if (val_len) *val_len = m->val_len;
    return m->val;
}

const void *vq_memo_peek(const struct vq_memos *ms, int kind, const void **key, size_t *key_len,
                         size_t *val_len)
{
    if (kind < 0 || kind >= VQ_MEMO_KINDS || !ms->memo[kind].valid) return NULL;
    const struct vq_memo *m = &ms->memo[kind];
    *key = m->key;
    *key_len = m->key_len;
    *val_len = m->val_len;
    return m->val;
}

int vq_memo_store(struct vq_memos *ms, int kind, const void *key, size_t key_len, const void *val,
                  size_t val_len)
{
    int r;
    if (kind < 0 || kind >= VQ_MEMO_KINDS) return vq_error(VQGAN_ERR_INVALID, "memo kind %d", kind);
    struct vq_memo *m = &ms->memo[kind];
    m->valid = 0;
    if ((r = grow(&m->key, &m->key_cap, key_len ? key_len : 1))) return r;
    if ((r = grow(&m->val, &m->val_cap, val_len ? val_len : 1))) return r;
    memcpy(m->key, key, key_len);
    memcpy(m->val, val, val_len);
    m->key_len = key_len;
    m->val_len = val_len;
    m->valid = 1;
    return 0;
}

void vq_memo_clear(struct vq_memos *ms)
{
    for (int k = 0; k < VQ_MEMO_KINDS; k++) {
        free(ms->memo[k].key);
        free(ms->memo[k].val);
        memset(&ms->memo[k], 0, sizeof(ms->memo[k]));
    }
}
