/* arena.c — arenas and their free pools: hands out pools fullest-arena-first, takes them back,
 * and decides when the pages of empty pools and wholly free arenas go back to the OS.
 * Everything here runs under pa_arena_lock, which a single-threaded process skips (arena_lock).
 *
 * Purging, like jemalloc's decay: a FREE pool whose page may still be resident is "dirty".
 * Dirty pages are given back (madvise; a wholly free arena is released whole) oldest first,
 *   - once they have stayed unused for PYARENA_DECAY_MS (checked whenever pools are taken or
 *     given back), so resident memory falls after a spike, and
 *   - at once beyond PYARENA_DIRTY_MAX dirty pools,
 * so that a program which drops and rebuilds tens of MiB in a loop (CPython does) does not pay
 * a page fault and an madvise per pool each time. PYARENA_ARENA_CACHE wholly free arenas stay
 * resident. */
#include <string.h>

#include "alloc.h"

static pthread_mutex_t pa_arena_lock = PTHREAD_MUTEX_INITIALIZER;

/* Every arena operation but the fork handlers' (which pair with each other): returns whether
 * it locked, for arena_unlock (see pa_single_threaded). */
static inline bool arena_lock(void)
{
    if (pa_single_threaded() || pa_tls_in_fork)   /* held by this thread across a fork */
        return false;
    pthread_mutex_lock(&pa_arena_lock);
    return true;
}

static inline void arena_unlock(bool locked)
{
    if (locked)
        pthread_mutex_unlock(&pa_arena_lock);
}

/* Arenas with free pools, by how many (1..64; 64: wholly free): taking from the lowest
 * non-empty bucket serves the fullest arena first, so the emptiest drain and can go back to
 * the OS. Arenas with no free pool are on no list. */
static pa_arena *pa_bucket[PA_ARENA_POOLS + 1];
static uint64_t  pa_bucket_nonempty;          /* bit n - 1: pa_bucket[n] is not empty */
static pa_arena *pa_dirty_oldest, *pa_dirty_newest; /* arenas with dirty pools, oldest first */
static size_t    pa_ndirty;                   /* dirty pools in all arenas */
static pa_arena_counts pa_counts;
static uint64_t  pa_released_handouts[PA_NCLASSES]; /* per class: see pa_arena_foreach */

static void bucket_remove(pa_arena *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else if ((pa_bucket[a->nfree] = a->next) == NULL)
        pa_bucket_nonempty &= ~(UINT64_C(1) << (a->nfree - 1));
    if (a->next)
        a->next->prev = a->prev;
}

static void bucket_insert(pa_arena *a)
{
    a->prev = NULL;
    a->next = pa_bucket[a->nfree];
    if (a->next)
        a->next->prev = a;
    pa_bucket[a->nfree] = a;
    pa_bucket_nonempty |= UINT64_C(1) << (a->nfree - 1);
}

/* ---- the dirty list: arenas with dirty pools, by when their oldest dirty pool was freed */

/* Milliseconds, read from the clock on one call in 16 (under the lock), or at once when
 * fresh: pool turnover is frequent, and decay needs no finer time than that. */
static uint64_t now_ms(bool fresh)
{
    static uint64_t last;
    static unsigned calls;
    if ((calls++ & 15) == 0 || fresh)
        last = pa_os_now_ms();
    return last;
}

static void dirty_remove(pa_arena *a)
{
    if (a->dirty_prev)
        a->dirty_prev->dirty_next = a->dirty_next;
    else
        pa_dirty_oldest = a->dirty_next;
    if (a->dirty_next)
        a->dirty_next->dirty_prev = a->dirty_prev;
    else
        pa_dirty_newest = a->dirty_prev;
}

static void dirty_append(pa_arena *a, uint64_t now)
{
    a->dirty_since = now;
    a->dirty_next = NULL;
    a->dirty_prev = pa_dirty_newest;
    if (pa_dirty_newest)
        pa_dirty_newest->dirty_next = a;
    else
        pa_dirty_oldest = a;
    pa_dirty_newest = a;
}

static void mark_dirty(pa_arena *a, size_t i, uint64_t now)
{
    if (a->dirty == 0)
        dirty_append(a, now);
    a->dirty |= UINT64_C(1) << i;
    pa_ndirty++;
}

static void mark_clean(pa_arena *a, size_t i)
{
    uint64_t bit = UINT64_C(1) << i;
    if (!(a->dirty & bit))
        return;
    a->dirty &= ~bit;
    pa_ndirty--;
    if (a->dirty == 0)
        dirty_remove(a);
}

/* ---- taking arenas from the address space and giving them back */

static pa_arena *arena_new(void)
{
    pa_arena *a = pa_space_arena_new();
    if (a == NULL)
        return NULL;
    a->free_pools = NULL;
    for (size_t i = PA_ARENA_POOLS; i-- > 0;) {
        pa_pool *p = pa_arena_pool(a, i);   /* its page of descriptors reads as zeroes */
        p->state = PA_POOL_FREE;
        pa_meta(p)->owner = NULL;
        p->next = a->free_pools;
        a->free_pools = p;
    }
    a->nfree = PA_ARENA_POOLS;
    a->dirty = 0;
    pa_counts.allocated++;
    if (++pa_counts.current > pa_counts.peak)
        pa_counts.peak = pa_counts.current;
    return a;
}

static void arena_release(pa_arena *a)
{
    bucket_remove(a);
    if (a->dirty) {
        pa_ndirty -= (size_t)__builtin_popcountll(a->dirty);
        dirty_remove(a);
    }
    pa_space_arena_release(a);
    pa_counts.released++;
    pa_counts.current--;
}

/* Gives back an arena's dirty pages: the whole arena if it is wholly free (and not one of the
 * PYARENA_ARENA_CACHE kept), else each run of dirty pools with one madvise. */
static void purge_arena(pa_arena *a)
{
    if (a->nfree == PA_ARENA_POOLS) {
        size_t wholly_free = 0;
        for (pa_arena *b = pa_bucket[PA_ARENA_POOLS]; b && wholly_free <= pa_config.arena_cache; b = b->next)
            wholly_free++;
        if (wholly_free > pa_config.arena_cache) {
            arena_release(a);
            return;
        }
        /* a cached arena: stays resident, off the dirty list */
        pa_ndirty -= (size_t)__builtin_popcountll(a->dirty);
        a->dirty = 0;
        dirty_remove(a);
        return;
    }
    uint64_t d = a->dirty;
    while (d) {
        int first = __builtin_ctzll(d);
        uint64_t run = d >> first;
        int len = ~run ? __builtin_ctzll(~run) : 64 - first;
        pa_os_purge(pa_arena_base(a) + (size_t)first * PA_POOL_SIZE, (size_t)len * PA_POOL_SIZE);
        for (int i = first; i < first + len; i++)
            pa_arena_pool(a, (size_t)i)->carved = 0;   /* the page reads as zeros: carve again */
        pa_counts.pools_purged += (size_t)len;
        d &= len == 64 ? 0 : ~(((UINT64_C(1) << len) - 1) << first);
    }
    pa_ndirty -= (size_t)__builtin_popcountll(a->dirty);
    a->dirty = 0;
    dirty_remove(a);
}

static void purge_due(uint64_t now)
{
    if (!pa_config.purge)
        return;
    while (pa_dirty_oldest && (pa_ndirty > pa_config.dirty_max ||
                               now - pa_dirty_oldest->dirty_since >= pa_config.decay_ms))
        purge_arena(pa_dirty_oldest);
}

/* ---- pools */

pa_pool *pa_arena_pool_get(void)
{
    bool locked = arena_lock();
    if (pa_dirty_oldest)
        purge_due(now_ms(false));
    pa_arena *a;
    if (pa_bucket_nonempty) {
        a = pa_bucket[__builtin_ctzll(pa_bucket_nonempty) + 1];
        bucket_remove(a);
    } else if ((a = arena_new()) == NULL) {
        arena_unlock(locked);
        return NULL;
    }
    pa_pool *p = a->free_pools;                   /* LIFO: the most recently freed, likely resident */
    a->free_pools = p->next;
    a->nfree--;
    mark_clean(a, pa_pool_index(p));
    if (a->nfree)
        bucket_insert(a);
    pa_counts.pools_taken++;
    arena_unlock(locked);
    return p;
}

/* The decay's check, for a heap that takes and gives back its pools without the arenas for a
 * while (spare.c): otherwise pages left dirty by other pools would wait for the next trip. */
void pa_arena_decay_tick(void)
{
    if (__atomic_load_n(&pa_dirty_oldest, __ATOMIC_RELAXED) == NULL)   /* racy: a hint */
        return;
    bool locked = arena_lock();
    if (pa_dirty_oldest)
        purge_due(now_ms(true));   /* one tick in 64 spare events: the clock is cheap enough */
    arena_unlock(locked);
}

static pa_arena *pool_put(pa_pool *p, uint64_t now)
{
    pa_arena *a = pa_pool_arena(p);
    p->state = PA_POOL_FREE;
    pa_released_handouts[pa_meta(p)->cls] += pa_pool_handouts(p);
    p->counts = 0;   /* under the lock: a walk never sees them again once folded */
    pa_meta(p)->owner = NULL;
    p->next = a->free_pools;
    a->free_pools = p;
    if (a->nfree)
        bucket_remove(a);
    a->nfree++;
    bucket_insert(a);
    mark_dirty(a, pa_pool_index(p), now);
    return a;
}

void pa_arena_pool_put(pa_pool *p)
{
    bool locked = arena_lock();
    uint64_t now = now_ms(false);
    pool_put(p, now);
    purge_due(now);
    arena_unlock(locked);
}

/* Pools a sweep took back wholly free from an idle heap (heap.c), linked by reclaim_next. An
 * arena they leave wholly free goes back at once (beyond PYARENA_ARENA_CACHE) rather than
 * after the decay time: the decay is looked at only on later events, and a process whose
 * threads have gone idle (Redis's main thread once its lazyfree thread has freed the dataset)
 * may have none. */
void pa_arena_put_idle(pa_pool *chain)
{
    bool locked = arena_lock();
    uint64_t now = now_ms(true);
    for (pa_pool *p = chain, *next; p; p = next) {
        next = p->reclaim_next;   /* read before a release zeroes p's descriptor */
        atomic_store_explicit(&p->thread_free, 0, memory_order_relaxed);
        pa_arena *a = pool_put(p, now);
        /* wholly free: none of its pools is further down the chain, whose pools are not FREE */
        if (a->nfree == PA_ARENA_POOLS && pa_config.purge)
            purge_arena(a);
    }
    purge_due(now);
    arena_unlock(locked);
}

/* malloc_trim: every wholly free arena is released (the cache too) and every dirty pool
 * purged. Returns bytes given back to the OS. */
size_t pa_arena_trim(void)
{
    bool locked = arena_lock();
    size_t purged = pa_counts.pools_purged, released = pa_counts.released;
    while (pa_bucket[PA_ARENA_POOLS])
        arena_release(pa_bucket[PA_ARENA_POOLS]);
    while (pa_dirty_oldest)
        purge_arena(pa_dirty_oldest);
    size_t bytes = (pa_counts.pools_purged - purged) * PA_POOL_SIZE +
                   (pa_counts.released - released) * PA_ARENA_SIZE;
    arena_unlock(locked);
    return bytes;
}

void pa_arena_counts_get(pa_arena_counts *out)
{
    bool locked = arena_lock();
    *out = pa_counts;
    out->cached = 0;
    for (pa_arena *a = pa_bucket[PA_ARENA_POOLS]; a; a = a->next)
        out->cached++;
    out->dirty_pools = pa_ndirty;
    arena_unlock(locked);
}

void pa_arena_foreach(void (*fn)(pa_arena *a, void *arg), void *arg, uint64_t *released)
{
    bool locked = arena_lock();
    pa_space_foreach(fn, arg);
    for (size_t c = 0; released && c < PA_NCLASSES; c++)
        released[c] += pa_released_handouts[c];
    arena_unlock(locked);
}

void pa_arena_fork_prepare(void) { pthread_mutex_lock(&pa_arena_lock); }
void pa_arena_fork_parent(void)  { pthread_mutex_unlock(&pa_arena_lock); }
void pa_arena_fork_child(void)   { pthread_mutex_init(&pa_arena_lock, NULL); }
