/* Large buffers on transparent huge pages (largealloc.h). */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "largealloc.h"

#define HUGE_PAGE ((size_t)2 << 20)
#define ALIGNED_FROM (16 * HUGE_PAGE)    /* the alignment's slack: at most 1/16 */

void *vq_alloc_large(size_t bytes)
{
    void *p;
    if (posix_memalign(&p, bytes >= ALIGNED_FROM ? HUGE_PAGE : 64, bytes ? bytes : 64)) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_PAGE) {
        /* the small pages the buffer covers: the kernel backs each whole
         * 2 MiB range among them with a huge page; failure leaves small pages */
        const long ps = sysconf(_SC_PAGESIZE);
        const uintptr_t page = ps > 0 ? (uintptr_t)ps : 4096;
        const uintptr_t from = (uintptr_t)p & ~(page - 1), to = ((uintptr_t)p + bytes + page - 1) & ~(page - 1);
        (void)madvise((void *)from, to - from, MADV_HUGEPAGE);
    }
#endif
    return p;
}
