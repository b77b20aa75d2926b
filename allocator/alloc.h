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

static inline __attribute__((always_inline)) uintptr_t pa_region_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(PA_REGION_SIZE - 1);
}

/* 16 * the index of p's page in its region: the offset of its metadata in the table, and a
 * quarter of its descriptor's, so that the free fast path computes one shift and mask. */
static inline __attribute__((always_inline)) uintptr_t pa_page16(const void *p)
{
    _Static_assert(PA_META_SIZE == 16 && PA_POOL_DESC_SIZE == 4 * PA_META_SIZE, "the scales");
    return ((uintptr_t)p >> (PA_POOL_SHIFT - 4)) & ((PA_REGION_PAGES - 1) * PA_META_SIZE);
}

/* Metadata and descriptor of the pool holding small pointer p (a pointer into the region's
 * tables gets entries that read as FREE: nothing ever writes them). */
static inline __attribute__((always_inline)) pa_pool_meta *pa_meta_of(const void *p)
{
    return (pa_pool_meta *)(pa_region_of(p) + PA_META_OFFSET + pa_page16(p));
}

static inline __attribute__((always_inline)) pa_pool *pa_pool_of(const void *p)
{
    return (pa_pool *)(pa_region_of(p) + PA_POOLS_OFFSET + 4 * pa_page16(p));
}

/* Offset of descriptor p in its region's table: 64 * the page index. */
static inline __attribute__((always_inline)) uintptr_t pa_pool_off(const pa_pool *p)
{
    return (uintptr_t)p - pa_region_of(p) - PA_POOLS_OFFSET;
}

static inline __attribute__((always_inline)) void *pa_pool_page(const pa_pool *p)
{
    return (void *)(pa_region_of(p) + pa_pool_off(p) * (PA_POOL_SIZE / PA_POOL_DESC_SIZE));
}

static inline __attribute__((always_inline)) pa_pool_meta *pa_meta(const pa_pool *p)
{
    return (pa_pool_meta *)(pa_region_of(p) + PA_META_OFFSET + pa_pool_off(p) / 4);
}

/* Index of pool p in its arena (0..63). */
static inline size_t pa_pool_index(const pa_pool *p)
{
    return (pa_pool_off(p) / PA_POOL_DESC_SIZE) & (PA_ARENA_POOLS - 1);
}

/* Header of the arena holding small pointer p (a block, not a descriptor). */
static inline pa_arena *pa_arena_of(const void *p)
{
    size_t slot = ((uintptr_t)p >> PA_ARENA_SHIFT) & (PA_REGION_ARENAS - 1);
    return (pa_arena *)(pa_region_of(p) + PA_ARENAS_OFFSET + slot * PA_ARENA_HDR_SIZE);
}

/* The arena's 256 KiB, from its header. */
static inline char *pa_arena_base(const pa_arena *a)
{
    size_t slot = ((uintptr_t)a - pa_region_of(a) - PA_ARENAS_OFFSET) / PA_ARENA_HDR_SIZE;
    return (char *)(pa_region_of(a) + slot * PA_ARENA_SIZE);
}

static inline pa_pool *pa_arena_pool(const pa_arena *a, size_t i)
{
    return pa_pool_of(pa_arena_base(a) + i * PA_POOL_SIZE);
}

static inline pa_arena *pa_pool_arena(const pa_pool *p)
{
    return pa_arena_of(pa_pool_page(p));
}

/* The owner word without its level-2 tag. */
static inline struct pa_heap *pa_meta_owner(const pa_pool_meta *m)
{
    return (struct pa_heap *)((uintptr_t)m->owner & ~PA_OWNER_CAREFUL);
}

static inline struct pa_heap *pa_pool_owner(const pa_pool *p)
{
    return pa_meta_owner(pa_meta(p));
}

static inline size_t pa_pool_block_size(const pa_pool *p)
{
    return pa_class_size(pa_meta(p)->cls);
}

/* Free-list links as the slow paths read and write them: encoded with pa_hot.list_key, which is 0
 * except under PYARENA_CHECK=2, when only the careful paths run. The inline fast paths below
 * (the tracked one too) never run at that level, so they use the raw links. */
static inline __attribute__((always_inline)) pa_block *pa_next(const pa_block *b)
{
    return (pa_block *)((uintptr_t)b->next ^ pa_hot.list_key);
}

static inline __attribute__((always_inline)) void pa_link(pa_block *b, pa_block *next)
{
    b->next = (pa_block *)((uintptr_t)next ^ pa_hot.list_key);
}

/* What a free block carries in its second word, at every check level: a per-process random
 * secret, so a second free of it is caught (level >= 1), a write after free likely breaks it,
 * and the stats can tell live blocks from free ones without walking lists (track.c). Mixing
 * in the block's address would add an instruction to every free and no secrecy: whoever can
 * read one freed block knows its address too. Nor may it be an address the free path has at
 * hand, such as the pool descriptor's (one load fewer): a use after free that follows the word
 * (a CPython object's ob_type) must fault, not land on writable allocator metadata. */
static inline __attribute__((always_inline)) uintptr_t pa_free_mark(const pa_block *b)
{
    (void)b;
    return pa_hot.free_key;
}

/* The mark a freed block of the large path carries in its second word: the address is mixed
 * in, unlike the pools' mark, because jemalloc leaves it in memory it later hands out inside
 * bigger blocks, unwritten, and a program may copy such bytes (a struct with an unused union,
 * a partly filled buffer) into a large block's second word; with the address mixed in, only
 * bytes copied back to the very address they were written at could pass for the mark, and
 * the large path's malloc clears that word itself (a zeroed block carries none). (Nothing
 * confirms a match as the pools' walk does: jemalloc cannot say whether a block is free.) */
static inline __attribute__((always_inline)) uintptr_t pa_large_mark(const void *p)
{
    return pa_hot.free_key ^ (uintptr_t)p;
}

/* Is ptr exactly the start of one of p's blocks? size divides off iff off * magic, modulo
 * 2^32, is below magic = ceil(2^32 / size) (Lemire, Kaser and Kurz: exact for every 12-bit
 * offset and size up to 512; checked exhaustively). Past `limit` lies only the page's slack. */
static inline __attribute__((always_inline)) bool pa_block_start(const pa_pool_meta *m,
                                                                 const void *ptr)
{
    uint32_t off = (uint32_t)((uintptr_t)ptr & (PA_POOL_SIZE - 1));
    return off * m->magic < m->magic && off < m->limit;
}

/* Can `link`, read from a free block of p, be followed: a block start in p's own page? For
 * the walks of lists another party may have written (checks, the cache's fill). */
static inline bool pa_pool_link_ok(const pa_pool *p, const pa_block *link)
{
    return ((uintptr_t)link & ~(uintptr_t)(PA_POOL_SIZE - 1)) == (uintptr_t)pa_pool_page(p) &&
           pa_block_start(pa_meta(p), link);
}

/* The same test without the limit, for the free fast path: in the slack only the offset
 * `limit` itself is a multiple of the size (the slack is shorter than a block), and carving
 * gives that pseudo-block the free mark, so a free of it still leaves the fast path for the
 * full check. */
static inline __attribute__((always_inline)) bool pa_block_start_or_slack(const pa_pool_meta *m,
                                                                          const void *ptr)
{
    uint32_t off = (uint32_t)((uintptr_t)ptr & (PA_POOL_SIZE - 1));
    return off * m->magic < m->magic;
}

/* Does the list of a wholly free pool (cap blocks of size at page), starting at head, run
 * backward from its last block, as first-in first-out frees leave it, and is it handed out so
 * (a pool of more than PA_RELINK_CAP blocks: fewer are relinked forward, cache.c)? */
static inline bool pa_list_kept_backward(const pa_block *head, const char *page, size_t size,
                                         uint32_t cap)
{
    return cap > PA_RELINK_CAP && head == (const pa_block *)(page + (cap - 1) * size);
}

static inline __attribute__((always_inline)) uint32_t pa_pool_capacity(const pa_pool *p)
{
    const pa_pool_meta *m = pa_meta(p);
    /* limit / block_size without a divide: magic exceeds 2^32 / block_size by less than 1,
     * so the product's excess is below limit / 2^32 and the floor is exact */
    return (uint32_t)(((uint64_t)m->limit * m->magic) >> 32);
}

/* The byte of the waste table (config.h) that belongs to small block p. */
static inline __attribute__((always_inline)) uint8_t *pa_waste_slot(const void *p)
{
    uintptr_t a = (uintptr_t)p, base = a & ~(uintptr_t)(PA_REGION_SIZE - 1);
    return (uint8_t *)(base + PA_WASTE_OFFSET + ((a - base) >> 4));
}

/* Pop a block of class cls from the calling thread's cache, which the slow path fills with
 * the whole free list of a pool when it is empty (level 0 or 1). With track (stats on,
 * track.c), the request n goes to the block's slot: its low byte is enough, since the class
 * size minus it, modulo 256, is the waste (0..16), and storing it costs nothing. */
static inline __attribute__((always_inline)) void *pa_small_alloc_as(size_t cls, size_t n,
                                                                     bool track)
{
    pa_heap *h = pa_tls_heap;
    pa_block *b = h->bin[cls];
    if (unlikely(b == NULL))
        return track ? pa_heap_alloc_slow_tracked(h, cls, n) : pa_heap_alloc_slow(h, cls);
    pa_block *next = b->next;
    __builtin_prefetch(next);
    h->bin[cls] = next;
    h->bin_counts[cls].counts += PA_HANDOUT;   /* room + 1, handouts + 1 */
    b->mark = 0;
    if (track)
        *pa_waste_slot(b) = (uint8_t)n;
    return b;
}

static inline __attribute__((always_inline)) void *pa_small_alloc(size_t cls)
{
    return pa_small_alloc_as(cls, 0, false);
}

/* The owner's push of free block b (marked already, levels 0 and 1): onto its bin cls, or
 * when that is full onto its pool's list, as before there was a cache. */
static inline __attribute__((always_inline)) void pa_cache_push(pa_heap *h, size_t cls,
                                                               pa_block *b)
{
    if (likely(--h->bin_counts[cls].room >= 0)) {   /* one subtract, branch on its sign */
        b->next = h->bin[cls];
        h->bin[cls] = b;
    } else {
        h->bin_counts[cls].room = 0;
        pa_pool *p = pa_pool_of(b);
        b->next = p->free;
        p->free = b;
        if (unlikely(--p->left == 0))     /* became empty, or a FULL pool has room again */
            pa_heap_free_slow(h, p);
    }
}

/* Push a small block back: onto the calling thread's cache (or pool) when it owns the block's
 * pool, else onto the pool's remote stack (by way of a batch). Level 1 checks: the pointer
 * starts a block of a pool in use, and the block is not already free (a matching mark is
 * confirmed out of line). The path is the same at every level and with stats on: at level 0
 * pa_free_suspect skips the checks, and at level 2 no pool's owner word matches
 * (PA_OWNER_CAREFUL). */
static inline __attribute__((always_inline)) void pa_small_free(void *ptr)
{
    const pa_pool_meta *m = pa_meta_of(ptr);
    pa_heap *h = pa_tls_heap;
    pa_block *b = ptr;
    pa_pool_meta meta = { .owner = m->owner, .magic = m->magic, .cls = m->cls };  /* a line */
    if (unlikely(meta.owner != h)) {
        pa_heap_free_remote(h, b);   /* tail calls: the fast path keeps no stack frame */
        return;
    }
    if (unlikely(!pa_block_start_or_slack(&meta, ptr) || b->mark == pa_free_mark(b))) {
        pa_free_suspect(h, b);
        return;
    }
    b->mark = pa_free_mark(b);
    pa_cache_push(h, meta.cls, b);
}

/* ---- api.c: the malloc family's semantics, shared by preload/ and the pyarena_* API */
PA_HIDDEN void  *pa_api_malloc_other(size_t n);
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

/* Stats tracking and PYARENA_CHECK=2 set pa_hot.small_limit to 0, which sends every malloc to
 * pa_api_malloc_other: there small requests go to the tracked fast path or the careful one.
 * The default path thus pays for the modes only by comparing against a variable instead of a
 * constant, and the call stays a tail call, so the fast path needs no stack frame. Frees need
 * no mode: see pa_small_free. */
static inline __attribute__((always_inline)) void *pa_malloc(size_t n)
{
    if (likely(n - 1 < pa_hot.small_limit)) {
        if (pa_class_of(n) >= PA_NCLASSES)   /* small_limit <= PA_SMALL_MAX: never, and */
            __builtin_unreachable();         /* the compiler may rely on it, at no cost */
        return pa_small_alloc(pa_class_of(n));
    }
    return pa_api_malloc_other(n);
}

static inline __attribute__((always_inline)) void pa_free(void *ptr)
{
    if (likely(pa_owned(ptr)))
        pa_small_free(ptr);
    else
        pa_large_free_any(ptr);
}

#endif
