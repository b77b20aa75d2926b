/* large.c — the large path: requests above 512 bytes, or aligned above 16, go to jemalloc
 * through its non-standard API, so the program's own malloc symbols stay pyarena's.
 * jemalloc is never handed size 0 (undefined for the *allocx functions). */
#include <errno.h>
#include <jemalloc/jemalloc.h>

#include "internal.h"

void *pa_large_alloc(size_t size, size_t align, bool zero)
{
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    int flags = zero ? MALLOCX_ZERO : 0;
    if (align > PA_ALIGN)
        flags |= MALLOCX_LG_ALIGN(__builtin_ctzl(align));
    void *p = mallocx(size ? size : 1, flags);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

void pa_large_free(void *ptr)
{
    dallocx(ptr, 0);
}

void *pa_large_realloc(void *ptr, size_t size)
{
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = rallocx(ptr, size ? size : 1, 0);
    if (p == NULL)
        errno = ENOMEM;
    return p;
}

size_t pa_large_usable(const void *ptr)
{
    return sallocx(ptr, 0);
}
