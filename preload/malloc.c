/* malloc.c — the exported malloc family and the pyarena_* entry points of include/pyarena.h:
 * thin wrappers over the inline fast paths and api.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "alloc.h"
#include "pyarena.h"
#include "snapshot.h"

PA_EXPORT void *malloc(size_t n)
{
    return pa_malloc(n);
}

PA_EXPORT void free(void *ptr)
{
    pa_free(ptr);
}

PA_EXPORT void *calloc(size_t count, size_t size)
{
    return pa_api_calloc(count, size);
}

PA_EXPORT void *realloc(void *ptr, size_t n)
{
    return pa_api_realloc(ptr, n);
}

PA_EXPORT void *reallocarray(void *ptr, size_t count, size_t size)
{
    return pa_api_reallocarray(ptr, count, size);
}

PA_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    return pa_api_posix_memalign(out, align, n);
}

PA_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    return pa_api_memalign(align, n);
}

PA_EXPORT void *memalign(size_t align, size_t n)
{
    return pa_api_memalign(align, n);
}

PA_EXPORT void *valloc(size_t n)
{
    return pa_api_valloc(n);
}

PA_EXPORT void *pvalloc(size_t n)
{
    return pa_api_pvalloc(n);
}

PA_EXPORT size_t malloc_usable_size(void *ptr)
{
    return pa_api_usable_size(ptr);
}

PA_EXPORT void *pyarena_malloc(size_t n)                  { return pa_malloc(n); }
PA_EXPORT void  pyarena_free(void *ptr)                   { pa_free(ptr); }
PA_EXPORT void *pyarena_calloc(size_t count, size_t size) { return pa_api_calloc(count, size); }
PA_EXPORT void *pyarena_realloc(void *ptr, size_t n)      { return pa_api_realloc(ptr, n); }
PA_EXPORT size_t pyarena_usable_size(const void *ptr)     { return pa_api_usable_size(ptr); }

PA_EXPORT int pyarena_stats_print(int fd, int format)
{
    return pa_stats_write(fd, format);
}

PA_EXPORT int pyarena_stats_add_section(const char *key, pyarena_stats_section_fn fn, void *arg)
{
    return pa_stats_add_section(key, fn, arg);
}
