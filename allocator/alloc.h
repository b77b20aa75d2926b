/* alloc.h — the fast paths: size to class, ownership, pop and push on the calling thread's
 * pools. Everything here is static inline __attribute__((always_inline)); every miss calls one out-of-line function. */
#ifndef PA_ALLOC_H
#define PA_ALLOC_H

#include "internal.h"

static inline __attribute__((always_inline)) size_t pa_class_of(size_t n)        { return (n - 1) >> 4; }   /* n in 1..512 */
static inline __attribute__((always_inline)) size_t pa_class_size(size_t cls)    { return (cls + 1) << 4; }

/* Is p inside one of our regions? One load from our own map; never reads memory at p. */
static inline __attribute__((always_inline)) bool pa_owned(const void *p)
{
    uintptr_t r = (uintptr_t)p >> PA_REGION_SHIFT;
    return r < PA_MAP_ENTRIES && pa_space_map[r];
}

static inline __attribute__((always_inline)) pa_arena *pa_arena_of(const void *p)
{
    return (pa_arena *)((uintptr_t)p & ~(uintptr_t)(PA_ARENA_SIZE - 1));
}

static inline __attribute__((always_inline)) size_t pa_page_of(const void *p)
{
    return ((uintptr_t)p >> PA_POOL_SHIFT) & (PA_ARENA_PAGES - 1);
}

/* Descriptor of the pool holding p; for a pointer into the header page (page 0) this is the
 * header's first line, whose state byte reads as PA_POOL_FREE. */
static inline __attribute__((always_inline)) pa_pool *pa_pool_of(const void *p)
{
    /* &pools[page - 1], written as an offset so that page 0 is no out-of-bounds index */
    return (pa_pool *)((uintptr_t)pa_arena_of(p) + pa_page_of(p) * sizeof(pa_pool));
}

static inline __attribute__((always_inline)) void *pa_pool_page(const pa_pool *p)
{
    pa_arena *a = pa_arena_of(p);
    return (char *)a + ((size_t)(p - a->pools) + 1) * PA_POOL_SIZE;
}

/* Free-list links as the slow paths read and write them: encoded with pa_list_key, which is 0
 * except under PYARENA_CHECK=2, when only the careful paths run. The inline fast paths below
 * run only while pa_mode == 0, so they use the raw links. */
static inline __attribute__((always_inline)) pa_block *pa_next(const pa_block *b)
{
    return (pa_block *)((uintptr_t)b->next ^ pa_list_key);
}

static inline __attribute__((always_inline)) void pa_link(pa_block *b, pa_block *next)
{
    b->next = (pa_block *)((uintptr_t)next ^ pa_list_key);
}

/* What a free block carries in its second word, at every check level: a per-process random
 * secret, so a second free of it is caught (level >= 1), a write after free likely breaks it,
 * and the stats can tell live blocks from free ones without walking lists (track.c). Mixing
 * in the block's address would add an instruction to every free and no secrecy: whoever can
 * read one freed block knows its address too. */
static inline __attribute__((always_inline)) uintptr_t pa_free_mark(const pa_block *b)
{
    (void)b;
    return pa_free_key;
}

/* Is ptr exactly the start of one of p's blocks? size divides off iff off * magic, modulo
 * 2^32, is below magic = ceil(2^32 / size) (Lemire, Kaser and Kurz: exact for every 12-bit
 * offset and size up to 512; checked exhaustively). Past `limit` lies only the page's slack. */
static inline __attribute__((always_inline)) bool pa_block_start(const pa_pool *p, const void *ptr)
{
    uint32_t off = (uint32_t)((uintptr_t)ptr & (PA_POOL_SIZE - 1));
    return off * p->magic < p->magic && off < p->limit;
}

/* The same test without the limit, for the free fast path: in the slack only the offset
 * `limit` itself is a multiple of the size (the slack is shorter than a block), and carving
 * gives that pseudo-block the free mark, so a free of it still leaves the fast path for the
 * full check. */
static inline __attribute__((always_inline)) bool pa_block_start_or_slack(const pa_pool *p,
                                                                          const void *ptr)
{
    uint32_t off = (uint32_t)((uintptr_t)ptr & (PA_POOL_SIZE - 1));
    return off * p->magic < p->magic;
}

static inline __attribute__((always_inline)) uint32_t pa_pool_capacity(const pa_pool *p)
{
    /* limit / block_size without a divide: magic exceeds 2^32 / block_size by less than 1,
     * so the product's excess is below limit / 2^32 and the floor is exact */
    return (uint32_t)(((uint64_t)p->limit * p->magic) >> 32);
}

/* The byte of the waste table (config.h) that belongs to small block p. */
static inline __attribute__((always_inline)) uint8_t *pa_waste_slot(const void *p)
{
    uintptr_t a = (uintptr_t)p, base = a & ~(uintptr_t)(PA_REGION_SIZE - 1);
    return (uint8_t *)(base + PA_WASTE_OFFSET + ((a - base) >> 4));
}

/* Pop a block of class cls from the calling thread's current pool (level 0 or 1). With track
 * (stats on, track.c), the request n goes to the block's slot: its low byte is enough, since
 * the class size minus it, modulo 256, is the waste (0..16), and storing it costs nothing. */
static inline __attribute__((always_inline)) void *pa_small_alloc_as(size_t cls, size_t n,
                                                                     bool track)
{
    pa_heap *h = pa_tls_heap;
    pa_pool *p = h->cur[cls];
    pa_block *b = p->free;
    if (unlikely(b == NULL))
        return track ? pa_heap_alloc_slow_tracked(h, cls, n) : pa_heap_alloc_slow(h, cls);
    pa_block *next = b->next;
    __builtin_prefetch(next);
    p->free = next;
    p->left++;
    h->nalloc[cls]++;
    b->mark = 0;
    if (track)
        *pa_waste_slot(b) = (uint8_t)n;
    return b;
}

static inline __attribute__((always_inline)) void *pa_small_alloc(size_t cls)
{
    return pa_small_alloc_as(cls, 0, false);
}

/* Push a small block back: onto its pool's local list when this thread owns the pool, else
 * onto the pool's remote stack. Level 1 checks: the pointer starts a block of a pool in use,
 * and the block is not already free (a matching mark is confirmed out of line). The path is
 * the same at every level and with stats on: at level 0 pa_free_suspect skips the checks,
 * and at level 2 no pool's owner word matches (PA_OWNER_CAREFUL). */
static inline __attribute__((always_inline)) void pa_small_free(void *ptr)
{
    pa_pool *p = pa_pool_of(ptr);
    pa_heap *h = pa_tls_heap;
    pa_block *b = ptr;
    if (unlikely(p->owner != h)) {
        pa_heap_free_remote(h, p, b);   /* tail calls: the fast path keeps no stack frame */
        return;
    }
    if (unlikely(!pa_block_start_or_slack(p, ptr) || b->mark == pa_free_mark(b))) {
        pa_free_suspect(h, p, b);
        return;
    }
    b->mark = pa_free_mark(b);
    b->next = p->free;
    p->free = b;
    if (unlikely(--p->left == 0))     /* became empty, or a FULL pool has room again */
        pa_heap_free_slow(h, p);
}

/* ---- api.c: the malloc family's semantics, shared by preload/ and the pyarena_* API */
PA_HIDDEN void  *pa_api_malloc_other(size_t n);
PA_HIDDEN void   pa_api_free_other(void *ptr);
PA_HIDDEN void  *pa_api_calloc(size_t count, size_t size);
PA_HIDDEN void  *pa_api_realloc(void *ptr, size_t n);
PA_HIDDEN void  *pa_api_reallocarray(void *ptr, size_t count, size_t size);
PA_HIDDEN void  *pa_api_aligned(size_t align, size_t n);
PA_HIDDEN int    pa_api_posix_memalign(void **out, size_t align, size_t n);
PA_HIDDEN void  *pa_api_memalign(size_t align, size_t n);
PA_HIDDEN void  *pa_api_valloc(size_t n);
PA_HIDDEN void  *pa_api_pvalloc(size_t n);
PA_HIDDEN size_t pa_api_usable_size(const void *ptr);
PA_HIDDEN int    pa_api_trim(void);

/* Stats tracking and PYARENA_CHECK=2 set pa_mode, which sends small mallocs to track.c or the
 * careful paths of check.c; in the default mode that costs one compare and branch, and the
 * calls stay tail calls so the fast paths need no stack frame. The choice between the two is
 * made here, off the default path, so that tracking jumps straight to its own fast path; it
 * reads pa_careful rather than pa_mode again, which would keep pa_mode in a register and cost
 * the default path an instruction. Frees need no mode: see pa_small_free. */
static inline __attribute__((always_inline)) void *pa_malloc(size_t n)
{
    if (likely(n - 1 < PA_SMALL_MAX)) {
        if (unlikely(pa_mode))
            return pa_careful ? pa_careful_malloc(n) : pa_track_malloc(n);
        return pa_small_alloc(pa_class_of(n));
    }
    return pa_api_malloc_other(n);
}

static inline __attribute__((always_inline)) void pa_free(void *ptr)
{
    if (likely(pa_owned(ptr)))
        pa_small_free(ptr);
    else
        pa_api_free_other(ptr);
}

#endif
