/* Large buffers on transparent huge pages (largealloc.h). */
#include <stdlib.h>
#include <sys/mman.h>

#include "largealloc.h"

#define HUGE_PAGE ((size_t)2 << 20)

void *vq_alloc_large(size_t bytes)
{
    void *p;
    if (bytes < HUGE_PAGE)
        return posix_memalign(&p, 64, bytes ? bytes : 64) ? NULL : p;
    if (posix_memalign(&p, HUGE_PAGE, bytes)) return NULL;
#ifdef MADV_HUGEPAGE
    /* the whole huge pages inside the buffer; failure leaves small pages */
    (void)madvise(p, bytes & ~(HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
    return p;
}
