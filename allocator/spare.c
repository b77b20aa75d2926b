/* spare.c — a heap's spare pools: pools of its own that went empty, kept for its next pools
 * of any class instead of going back to their arenas at once.
 *
 * A pool's trip through its arena (taken, given back) costs more than its blocks' mallocs and
 * frees at the larger classes: 8 blocks of 512 bytes make it every 8 pairs, and the arena's
 * bookkeeping (its buckets, the dirty list, the clock, the lock once there are threads) is
 * most of it. A program that frees a few MiB of one size and allocates them again (batches,
 * request buffers, CPython dropping a list of objects) then pays it for every pool, twice.
 * A spare pool instead stays ATTACHED, owned by its heap, off its class ring, with every
 * block on its list: taken again for the same class, it is handed over as it is (the list
 * carved or freed in, no carving), for another class it is carved anew (pa_pool_init). The
 * stats count spare pools as pools of their class with every block free.
 *
 * How many a heap keeps: PYARENA_SPARE_POOLS at most, the oldest going back first when
 * more come; and, like jemalloc's tcache GC, every PA_SPARE_PERIOD spare events the pools
 * that stayed on the list the whole period (its low-water mark) go back, so that a thread
 * which stops needing them gives them back to its arenas (whose decay returns the pages to
 * the OS) as long as it keeps taking and emptying pools. A thread that stops allocating keeps
 * them until it calls malloc_trim (which reaches only the calling thread's spares) or exits.
 *
 *   h->spare (newest) <-> ... <-> h->spare_oldest     linked by the pools' next/prev */
#include "alloc.h"

static void spare_unlink(pa_heap *h, pa_pool *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        h->spare = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        h->spare_oldest = p->prev;
    h->nspare--;
}

static void spare_release_oldest(pa_heap *h, uint32_t n)
{
    while (n-- && h->spare_oldest) {
        pa_pool *p = h->spare_oldest;
        spare_unlink(h, p);
        pa_arena_pool_put(p);
    }
    if (h->spare_low > h->nspare)
        h->spare_low = h->nspare;
}

/* Every PA_SPARE_PERIOD events, the pools no take reached since the last such tick go back;
 * every PA_SPARE_DECAY_EVENTS, the arenas' decay gets its look at the clock, which their own
 * trips no longer give it while the spares serve a thread. */
static void spare_tick(pa_heap *h)
{
    if (++h->spare_events % PA_SPARE_DECAY_EVENTS == 0)
        pa_arena_decay_tick();
    if (h->spare_events < PA_SPARE_PERIOD)
        return;
    h->spare_events = 0;
    spare_release_oldest(h, h->spare_low);
    h->spare_low = h->nspare;
}

/* p: h's own, ATTACHED, empty (every block on its list), off its ring, not on the reclaim
 * stack. Its handouts go to h's count for the class now, so that a take for another class
 * starts from zero with nothing lost. */
void pa_spare_put(pa_heap *h, pa_pool *p)
{
    if (pa_config.spare_pools == 0) {
        pa_arena_pool_put(p);
        return;
    }
    h->spare_handouts[pa_meta(p)->cls] += pa_pool_handouts(p);
    p->counts = 0;   /* left was 0 already */
    p->prev = NULL;
    p->next = h->spare;
    if (p->next)
        p->next->prev = p;
    else
        h->spare_oldest = p;
    h->spare = p;
    if (++h->nspare > pa_config.spare_pools)
        spare_release_oldest(h, 1);
    spare_tick(h);
}

/* The newest spare pool, for the caller to pa_pool_init; NULL if there is none. */
pa_pool *pa_spare_take(pa_heap *h)
{
    pa_pool *p = h->spare;
    if (p == NULL)
        return NULL;
    spare_unlink(h, p);
    if (h->spare_low > h->nspare)
        h->spare_low = h->nspare;
    spare_tick(h);
    return p;
}

/* malloc_trim, thread exit: every spare pool goes back. */
void pa_spare_flush(pa_heap *h)
{
    spare_release_oldest(h, UINT32_MAX);
    h->spare_events = 0;
}
