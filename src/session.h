/* Per-user state: everything that changes while a model is used. */
#ifndef VQ_SESSION_H
#define VQ_SESSION_H

#include "vqgan.h"
#include "backend.h"
#include "memo.h"
#include "model.h"
#include "scratch.h"

struct vq_window_state;               /* sliding-window caches (window.c)   */

struct vqgan_session {
    struct vqgan_model *model;        /* holds one reference                 */
    struct vqgan_session_params params;
    int n_threads;                    /* resolved (never 0)                  */
    int threads_used;                 /* by the last call (its share)         */
    struct vq_exec exec;              /* the call's backend (the model's) and
                                         threads, set by vq_session_enter     */
    struct vqgan_sample_stats stats;
    struct vq_window_state *window;   /* the sampler's caches and previous
                                         frame (window.c), may be NULL       */
    struct vq_memos memos;            /* the tokenizer calls' previous frame */
    struct vq_scratch_keep keep;      /* the last stage call's working
                                         buffers, for the next of its kind   */
    int keep_kind;                    /* enum vq_keep_kind of keep's blocks   */
};

/* Which working buffers a call keeps for the next (scratch.h). A stream of
 * calls of one kind (the frames an encode filter tokenizes, or a decode
 * filter decodes) reuses one set of pages; a call of another kind frees the
 * kept set first, so a session never holds two kinds' buffers at once (a
 * synthesis stream's encode, sample and decode calls keep nothing of each
 * other's, and hold no more memory than before). */
enum vq_keep_kind {
    VQ_KEEP_NONE = 0,                 /* sampling, cheap calls               */
    VQ_KEEP_ENCODE,                   /* the image tokenizer's encoder       */
    VQ_KEEP_LABELS,                   /* the segmentation condition's encoder */
    VQ_KEEP_DEPTH,                    /* the depth condition's encoder       */
    VQ_KEEP_DECODE,                   /* the image tokenizer's decoder       */
};

/* Called at the top of every public call: takes the call's share of the
 * cores into s->exec, which carries it to the backend, with where the call
 * keeps its working buffers (keep: enum vq_keep_kind; another kind than the
 * kept buffers' frees them), and clears the last error. */
void vq_session_enter(struct vqgan_session *s, int keep);
/* Ends the call vq_session_enter began (gives its share of the cores back). */
void vq_session_leave(void);
/* Progress report; returns nonzero when the user asked to cancel. */
int vq_session_progress(struct vqgan_session *s, int64_t done, int64_t total);

#endif
