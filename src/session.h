/* Per-user state: everything that changes while a model is used. */
#ifndef VQ_SESSION_H
#define VQ_SESSION_H

#include "vqgan.h"
#include "backend.h"
#include "memo.h"
#include "model.h"

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
};

/* What a call does with the process's kept working buffers (scratch.h). */
enum vq_buffers {
    VQ_BUFFERS_LOCAL = 0,             /* its own (a cheap call)               */
    VQ_BUFFERS_KEPT,                  /* an encode or decode: takes the kept
                                         set, leaves its own as the next      */
    VQ_BUFFERS_RELEASE,               /* sampling: its buffers are of other
                                         sizes, and its caches large; frees
                                         the kept set first                   */
};

/* Called at the top of every public call: takes the call's share of the
 * cores into s->exec, which carries it to the backend with what the call
 * does with the kept working buffers (buffers: enum vq_buffers), and clears
 * the last error. */
void vq_session_enter(struct vqgan_session *s, int buffers);
/* Ends the call vq_session_enter began (gives its share of the cores back). */
void vq_session_leave(void);
/* Progress report; returns nonzero when the user asked to cancel. */
int vq_session_progress(struct vqgan_session *s, int64_t done, int64_t total);

#endif
