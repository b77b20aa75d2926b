/* api.c — the malloc family's semantics on top of the two paths (small pools, large jemalloc):
 * glibc's rules for zero sizes, overflow, realloc and the aligned functions. The exported
 * names in preload/ and the pyarena_* entry points are thin wrappers over these. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

/* malloc's miss: a large size, size 0 (a unique minimum block, as glibc), or, while a mode is
 * on (pa_hot.small_limit is 0), any small size. With stats on (levels 0 and 1) a small size
 * takes the tracked fast path from here, after one compare, as the default mode's does in
 * pa_malloc; a large one then goes to jemalloc's malloc after a second. The careful path (which
 * tracks too when stats are on) takes small sizes under PYARENA_CHECK=2, and in the moment a
 * thread sees pa_check_init's small_limit of 0 but not yet its track_limit. */
void *pa_api_malloc_other(size_t n)
{
    if (likely(n - 1 < pa_hot.track_limit))
        return pa_small_alloc_as(pa_class_of(n), n, true);
    if (likely(n > PA_SMALL_MAX))
        return pa_large_malloc(n);
    if (n != 0)
        return pa_careful_malloc(n);
    /* as a 1-byte request, but its waste is 16 */
    return pa_hot.small_limit ? pa_small_alloc(0)
         : pa_hot.track_limit ? pa_small_alloc_as(0, 0, true) : pa_careful_malloc(0);
}

void *pa_api_calloc(size_t count, size_t size)
{
    size_t n;
    if (unlikely(__builtin_mul_overflow(count, size, &n))) {
        errno = ENOMEM;
        return NULL;
    }
    if (n - 1 < PA_SMALL_MAX || n == 0) {
        void *p = pa_malloc(n);
        if (p)
            memset(p, 0, n ? n : 1);
        return p;
    }
    return pa_large_calloc(n);
}

/* A small pointer given to realloc or malloc_usable_size must be a live block: the free fast
 * path's tests inline, and pa_check_live's full check only when one fails (a pointer that
 * starts no block, or a block carrying the free mark). CPython reallocs a small block in
 * place every few hundred instructions; the full check on each cost 30 of them. */
static inline __attribute__((always_inline)) const pa_pool_meta *live_meta(const void *ptr,
                                                                          const char *fn)
{
    const pa_pool_meta *m = pa_meta_of(ptr);
    if (unlikely(pa_meta_owner(m) == NULL || !pa_block_start(m, ptr) ||
                 ((const pa_block *)ptr)->mark == pa_free_mark(ptr)))
        pa_check_live(ptr, fn);
    return m;
}

size_t pa_api_usable_size(const void *ptr)
{
    if (ptr == NULL)
        return 0;
    if (pa_owned(ptr))
        return pa_class_size(live_meta(ptr, "malloc_usable_size")->cls);
    pa_check_large(ptr, "malloc_usable_size");
    return pa_large_usable(ptr);
}

/* glibc: realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL. A small block
 * stays in place while the new size keeps its class; otherwise it moves (also between the
 * small and large paths). On failure the old block is untouched. */
void *pa_api_realloc(void *ptr, size_t n)
{
    if (ptr == NULL)
        return pa_malloc(n);
    if (n == 0) {
        pa_free(ptr);
        return NULL;
    }
    const pa_pool_meta *m = NULL;
    bool small_old = pa_owned(ptr);
    if (small_old)
        m = live_meta(ptr, "realloc");
    else
        pa_check_large(ptr, "realloc");
    if (!small_old && n > PA_SMALL_MAX)
        return pa_large_realloc(ptr, n);
    size_t old = small_old ? pa_class_size(m->cls) : pa_large_usable(ptr);
    if (small_old && n <= PA_SMALL_MAX && pa_class_size(pa_class_of(n)) == old) {
        if (unlikely(pa_track_on))
            pa_track_resize(ptr, n);
        return ptr;
    }
    void *q = pa_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, ptr, old < n ? old : n);
    pa_free(ptr);
    return q;
}

void *pa_api_reallocarray(void *ptr, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return pa_api_realloc(ptr, n);
}

/* align: a power of two. Up to 16 every block qualifies; above, jemalloc aligns. */
void *pa_api_aligned(size_t align, size_t n)
{
    if (align <= PA_ALIGN)
        return pa_malloc(n);
    return pa_large_alloc(n, align);
}

int pa_api_posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *p = pa_api_aligned(align, n);
    if (p == NULL) {
        errno = saved;
        return ENOMEM;
    }
    *out = p;
    return 0;
}

/* glibc 2.36 semantics for memalign and aligned_alloc: an alignment that is not a power of two
 * is rounded up to the next one; one beyond half the address space is EINVAL. */
void *pa_api_memalign(size_t align, size_t n)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (align & (align - 1))
        align = (size_t)1 << (64 - __builtin_clzl(align));
    return pa_api_aligned(align, n);
}

void *pa_api_valloc(size_t n)
{
    return pa_api_aligned((size_t)sysconf(_SC_PAGESIZE), n);
}

void *pa_api_pvalloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), rounded;
    if (__builtin_add_overflow(n, page - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    rounded &= ~(page - 1);
    return pa_api_aligned(page, rounded ? rounded : page);
}

/* malloc_trim: the calling thread's remote frees and empty pools, then every empty page, and
 * the large path's unused pages. */
int pa_api_trim(void)
{
    pa_heap_collect_all(pa_tls_heap);
    pa_heap_sweep_all();    /* the pools other threads emptied for the others */
    pa_spare_flush_all();   /* idle threads' spare pools too */
    bool small = pa_arena_trim() > 0;
    return pa_large_trim() || small;
}
