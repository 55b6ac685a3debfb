/* Per-thread last error, process-wide log callback. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>

#include "error.h"

static _Thread_local char last_error[1024];

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static vqgan_log_callback log_cb;
static void *log_opaque;

const char *vqgan_version(void) { return VQGAN_VERSION_STRING; }

const char *vqgan_status_string(int status)
{
    switch (status) {
    case VQGAN_OK:              return "ok";
    case VQGAN_ERR_IO:          return "I/O error";
    case VQGAN_ERR_FORMAT:      return "malformed model file";
    case VQGAN_ERR_INVALID:     return "invalid argument";
    case VQGAN_ERR_NOMEM:       return "out of memory";
    case VQGAN_ERR_UNSUPPORTED: return "not supported by this model";
    case VQGAN_ERR_LIMIT:       return "limit exceeded";
    case VQGAN_ERR_CANCELLED:   return "cancelled";
    default:                    return "unknown status";
    }
}

const char *vqgan_last_error(void) { return last_error; }
void vq_clear_error(void) { last_error[0] = 0; }

void vqgan_set_log_callback(vqgan_log_callback cb, void *opaque)
{
    pthread_mutex_lock(&log_lock);
    log_cb = cb;
    log_opaque = opaque;
    pthread_mutex_unlock(&log_lock);
}

/* The log target of the session call running on this thread (sessions with
 * their own log_callback), set by vq_session_enter. */
static _Thread_local vqgan_log_callback thread_cb;
static _Thread_local void *thread_opaque;
static _Thread_local int thread_depth;

void vq_log_push(vqgan_log_callback cb, void *opaque)
{
    if (thread_depth++ == 0) {
        thread_cb = cb;
        thread_opaque = opaque;
    }
}

void vq_log_pop(void)
{
    if (thread_depth > 0 && --thread_depth == 0) {
        thread_cb = NULL;
        thread_opaque = NULL;
    }
}

static void emit(int level, const char *msg)
{
    vqgan_log_callback cb;
    void *opaque;
    if (thread_cb) {
        thread_cb(thread_opaque, level, msg);
        return;
    }
    pthread_mutex_lock(&log_lock);
    cb = log_cb;
    opaque = log_opaque;
    pthread_mutex_unlock(&log_lock);
    if (cb)
        cb(opaque, level, msg);
    else if (level <= VQGAN_LOG_WARNING)
        fprintf(stderr, "vqgan: %s\n", msg);
}

void vq_log(int level, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    emit(level, buf);
}

int vq_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    emit(VQGAN_LOG_ERROR, last_error);
    return status;
}
