/* Error reporting and logging inside libvqgan.
 * vq_error() records a message for vqgan_last_error() (per thread), logs it at
 * error level and returns the status, so failures read:
 *     return vq_error(VQGAN_ERR_FORMAT, "%s: tensor '%s': ...", path, name);
 */
#ifndef VQ_ERROR_H
#define VQ_ERROR_H

#include "vqgan.h"

#if defined(__GNUC__)
#define VQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VQ_PRINTF(a, b)
#endif

int  vq_error(int status, const char *fmt, ...) VQ_PRINTF(2, 3);
void vq_log(int level, const char *fmt, ...) VQ_PRINTF(2, 3);
void vq_clear_error(void);
/* Messages of this thread go to cb (NULL: the process-wide callback) until
 * the matching vq_log_pop; nested pushes keep the outermost target. */
void vq_log_push(vqgan_log_callback cb, void *opaque);
void vq_log_pop(void);

#endif
