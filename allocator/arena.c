/* arena.c — arenas and their free pools: hands out pools fullest-arena-first, takes them back,
 * keeps a small cache of wholly free arenas, and purges the pages of empty pools so that
 * resident memory falls after a spike. Everything here runs under pa_arena_lock. */
#include <string.h>

#include "alloc.h"

static pthread_mutex_t pa_arena_lock = PTHREAD_MUTEX_INITIALIZER;

/* Arenas with free pools, by how many (1..62): taking from the lowest non-empty bucket serves
 * the fullest arena first, so that the emptiest ones drain and go back to the OS. Arenas with
 * no free pool are on no list; wholly free ones are cached or released. */
static pa_arena *pa_bucket[PA_ARENA_POOLS];
static uint64_t  pa_bucket_nonempty;          /* bit n: pa_bucket[n] is not empty */
static pa_arena *pa_cache;                    /* wholly free arenas kept resident */
static size_t    pa_ncached;
static size_t    pa_ndirty;                   /* dirty FREE pools outside cached arenas */
static pa_arena_counts pa_counts;

static void bucket_remove(pa_arena *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else if ((pa_bucket[a->nfree] = a->next) == NULL)
        pa_bucket_nonempty &= ~(UINT64_C(1) << a->nfree);
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
    pa_bucket_nonempty |= UINT64_C(1) << a->nfree;
}

static pa_arena *arena_new(void)
{
    pa_arena *a = pa_space_arena_new();
    if (a == NULL)
        return NULL;
    a->free_pools = NULL;
    for (size_t i = PA_ARENA_POOLS; i-- > 0;) {
        a->pools[i].state = PA_POOL_FREE;
        a->pools[i].next = a->free_pools;
        a->free_pools = &a->pools[i];
    }
    a->nfree = PA_ARENA_POOLS;
    a->dirty = 0;
    pa_counts.allocated++;
    if (++pa_counts.current > pa_counts.peak)
        pa_counts.peak = pa_counts.current;
    return a;
}

static void purge_arena(pa_arena *a)
{
    uint64_t d = a->dirty;
    while (d) {
        int first = __builtin_ctzll(d);
        uint64_t run = (d >> first);
        int len = (~run == 0) ? 64 - first : __builtin_ctzll(~run);
        /* bit i stands for page i + 1 */
        pa_os_purge((char *)a + (size_t)(first + 1) * PA_POOL_SIZE, (size_t)len * PA_POOL_SIZE);
        pa_counts.pools_purged += (size_t)len;
        d &= (len == 64) ? 0 : ~(((UINT64_C(1) << len) - 1) << first);
    }
    pa_ndirty -= (size_t)__builtin_popcountll(a->dirty);
    a->dirty = 0;
}

/* Over the dirty budget: purge arenas until half the budget is left. */
static void purge_excess(pa_arena *hint)
{
    if (!pa_config.purge || pa_ndirty <= pa_config.dirty_max)
        return;
    if (hint)
        purge_arena(hint);
    for (size_t n = 1; n < PA_ARENA_POOLS && pa_ndirty > pa_config.dirty_max / 2; n++)
        for (pa_arena *a = pa_bucket[n]; a && pa_ndirty > pa_config.dirty_max / 2; a = a->next)
            if (a->dirty)
                purge_arena(a);
}

pa_pool *pa_arena_pool_get(void)
{
    pthread_mutex_lock(&pa_arena_lock);
    pa_arena *a;
    if (pa_bucket_nonempty) {
        a = pa_bucket[__builtin_ctzll(pa_bucket_nonempty)];
        bucket_remove(a);
    } else if (pa_cache) {
        a = pa_cache;
        pa_cache = a->next;
        pa_ncached--;
        pa_ndirty += (size_t)__builtin_popcountll(a->dirty);
    } else if ((a = arena_new()) == NULL) {
        pthread_mutex_unlock(&pa_arena_lock);
        return NULL;
    }
    pa_pool *p = a->free_pools;
    a->free_pools = p->next;
    a->nfree--;
    uint64_t bit = UINT64_C(1) << (p - a->pools);
    if (a->dirty & bit) {
        a->dirty &= ~bit;
        pa_ndirty--;
    }
    if (a->nfree)
        bucket_insert(a);
    pthread_mutex_unlock(&pa_arena_lock);
    return p;
}

void pa_arena_pool_put(pa_pool *p)
{
    pa_arena *a = pa_arena_of(p);
    pthread_mutex_lock(&pa_arena_lock);
    p->state = PA_POOL_FREE;
    p->owner = NULL;
    p->next = a->free_pools;
    a->free_pools = p;
    a->dirty |= UINT64_C(1) << (p - a->pools);
    pa_ndirty++;
    if (a->nfree)
        bucket_remove(a);
    a->nfree++;
    if (a->nfree < PA_ARENA_POOLS) {
        bucket_insert(a);
        purge_excess(a);
    } else if (pa_ncached < pa_config.arena_cache) {
        pa_ndirty -= (size_t)__builtin_popcountll(a->dirty);
        a->next = pa_cache;
        pa_cache = a;
        pa_ncached++;
    } else {
        pa_ndirty -= (size_t)__builtin_popcountll(a->dirty);
        pa_space_arena_release(a);
        pa_counts.released++;
        pa_counts.current--;
    }
    pthread_mutex_unlock(&pa_arena_lock);
}

/* malloc_trim: release every cached arena and purge every empty pool. Returns bytes given
 * back to the OS. */
size_t pa_arena_trim(void)
{
    pthread_mutex_lock(&pa_arena_lock);
    size_t before = pa_counts.pools_purged, arenas = 0;
    while (pa_cache) {
        pa_arena *a = pa_cache;
        pa_cache = a->next;
        pa_ncached--;
        pa_space_arena_release(a);
        pa_counts.released++;
        pa_counts.current--;
        arenas++;
    }
    for (size_t n = 1; n < PA_ARENA_POOLS; n++)
        for (pa_arena *a = pa_bucket[n]; a; a = a->next)
            if (a->dirty)
                purge_arena(a);
    size_t bytes = (pa_counts.pools_purged - before) * PA_POOL_SIZE + arenas * PA_ARENA_SIZE;
    pthread_mutex_unlock(&pa_arena_lock);
    return bytes;
}

void pa_arena_counts_get(pa_arena_counts *out)
{
    pthread_mutex_lock(&pa_arena_lock);
    *out = pa_counts;
    out->cached = pa_ncached;
    out->dirty_pools = pa_ndirty;
    pthread_mutex_unlock(&pa_arena_lock);
}

void pa_arena_fork_prepare(void) { pthread_mutex_lock(&pa_arena_lock); }
void pa_arena_fork_parent(void)  { pthread_mutex_unlock(&pa_arena_lock); }
void pa_arena_fork_child(void)   { pthread_mutex_init(&pa_arena_lock, NULL); }

void pa_arena_foreach(void (*fn)(pa_arena *a, void *arg), void *arg)
{
    pthread_mutex_lock(&pa_arena_lock);
    pa_space_foreach(fn, arg);
    pthread_mutex_unlock(&pa_arena_lock);
}
