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
 * The list is kept in address order as far as that is free: a pool above the top one goes on
 * top, any other at the bottom, so that pools emptied in either direction line up from the
 * lowest. A take is from the bottom: a batch of blocks freed and allocated again then comes
 * back at rising addresses whatever the order of its frees, which is what hardware prefetchers
 * follow best (the fills relink the 8-block pools forward, cache.c). Only when the top pool is
 * of the class wanted and its list runs backward, from its last block down (first-in first-out
 * frees of a pool of more than 8 blocks, handed out as they lie), is the top taken: the batch
 * then comes back falling, pool after pool, rather than each pool backward in a rising
 * sequence, which costs more than either (fifo/256: +3.6 %). Taking the newest instead, as
 * before, gave rounds of first-in first-out frees that alternated rising and falling, and the
 * falling ones of 512-byte blocks cost 10-12 % more.
 *
 * How many a heap keeps: PYARENA_SPARE_POOLS at most, the top ones going back first when
 * more come; and, like jemalloc's tcache GC, every PA_SPARE_PERIOD spare events as many pools
 * as stayed on the list the whole period (its low-water mark) go back, from the top, so that
 * a thread which stops needing them gives them back to its arenas (whose decay returns the
 * pages to the OS) as long as it keeps taking and emptying pools. The count is right; which
 * pools go is not always: the takes usually come from the bottom, and the top ones are the
 * idle ones, but while they come from the top (the falling sequences above), a pool in use
 * may go back and an idle one stay, to be taken (and carved, for another class) next. All of
 * them go back at thread exit and when any thread calls malloc_trim, which empties every
 * heap's list.
 *
 * A thread that stops allocating has no events to run that period: its spares go back once
 * they have been left untouched for PYARENA_DECAY_MS, as the arenas' empty pools do. Every
 * PA_SPARE_DECAY_EVENTS events a heap's tick looks at the clock, and at most once per decay
 * time some heap sweeps the others: a sweep sets each heap's spare_idle, every put and take
 * clears it, and a heap whose flag a sweep finds still set has had no event for a whole
 * interval, so its list goes back. An idle thread's spares thus go back between one and two
 * decay times after its last event, while any thread makes pool trips; when none does, they
 * wait, as the arenas' own decay does (it is checked on the same events).
 *
 * So that malloc_trim and the sweeps can, the list has a lock of its own (spare_lock), which
 * the owner takes around each operation once the process has a second thread
 * (pa_single_threaded): one uncontended exchange per pool trip, against the arena lock and its
 * bookkeeping spared. Lock order: pa_heaps_lock, then a heap's spare_lock, then the arena
 * lock; a sweep, which runs under its own heap's spare_lock, only tries the others' (a heap
 * whose lock is held is not idle).
 *
 *   h->spare (bottom) <-> ... <-> h->spare_top     linked by the pools' next/prev; rising
 *                                                  addresses, but for the pools put at the
 *                                                  bottom out of order */
#include <sched.h>

#include "alloc.h"

static void lock_always(pa_heap *h)
{
    while (atomic_exchange_explicit(&h->spare_lock, 1, memory_order_acquire))
        sched_yield();   /* held by another thread for one pool's put at most (a trim, a
                            sweep), or across a fork */
}

static void unlock_always(pa_heap *h)
{
    atomic_store_explicit(&h->spare_lock, 0, memory_order_release);
}

static bool spare_lock(pa_heap *h)
{
    if (pa_single_threaded() || pa_tls_in_fork)   /* held by this thread across a fork */
        return false;
    lock_always(h);
    return true;
}

static void spare_unlock(pa_heap *h, bool locked)
{
    if (locked)
        unlock_always(h);
}

/* Off the list, whichever end: the low-water mark follows. */
static void spare_unlink(pa_heap *h, pa_pool *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        h->spare = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        h->spare_top = p->prev;
    if (h->spare_low > --h->nspare)
        h->spare_low = h->nspare;
}

static void spare_release_top(pa_heap *h, uint32_t n)
{
    while (n-- && h->spare_top) {
        pa_pool *p = h->spare_top;
        spare_unlink(h, p);
        pa_arena_pool_put(p);
    }
}

/* When the last sweep ran (pa_os_now_ms). */
static _Atomic uint64_t pa_spare_swept_ms;

/* Every heap but self whose list no put or take touched since the last sweep gives it back;
 * the others are flagged for the next. */
void pa_spare_sweep(pa_heap *self)
{
    for (pa_heap *h = pa_heap_first(); h; h = h->next_all) {
        if (h == self || atomic_load_explicit(&h->state, memory_order_acquire) != PA_HEAP_LIVE ||
            __atomic_load_n(&h->spare, __ATOMIC_RELAXED) == NULL)
            continue;
        if (!atomic_exchange_explicit(&h->spare_idle, 1, memory_order_relaxed))
            continue;   /* flagged now: idle if still flagged at the next sweep */
        /* One pool per hold of the lock, which is only tried: an owner that comes back
         * meanwhile waits for one put at most, and its put or take clears the flag, which
         * ends the sweep of its list. */
        for (bool more = true; more;) {
            if (atomic_exchange_explicit(&h->spare_lock, 1, memory_order_acquire))
                break;   /* its owner (or a trim) is at work on it */
            more = atomic_load_explicit(&h->spare_idle, memory_order_relaxed) &&
                   h->spare_top != NULL;
            if (more)
                spare_release_top(h, 1);
            unlock_always(h);
        }
    }
}

/* At most once per decay time, by whichever heap's tick comes first. A single-threaded process
 * has no other heap with spares (a thread's exit gives its list back). */
static void spare_sweep_due(pa_heap *self)
{
    if (!pa_single_threaded() && pa_os_once_per(&pa_spare_swept_ms, pa_config.decay_ms))
        pa_spare_sweep(self);
}

/* Every PA_SPARE_DECAY_EVENTS events: the arenas' decay gets its look at the clock, which their
 * own trips no longer give it while the spares serve a thread, and the idle heaps' lists may
 * be due to go back. Every PA_SPARE_PERIOD events (a multiple), the pools no take reached since
 * the last such tick go back. */
static __attribute__((noinline)) void spare_tick_due(pa_heap *h)
{
    pa_arena_decay_tick();
    spare_sweep_due(h);
    if (h->spare_events < PA_SPARE_PERIOD)
        return;
    h->spare_events = 0;
    spare_release_top(h, h->spare_low);
    h->spare_low = h->nspare;
}

/* Every put and take: the list is in use. */
static inline __attribute__((always_inline)) void spare_tick(pa_heap *h)
{
    atomic_store_explicit(&h->spare_idle, 0, memory_order_relaxed);
    if (++h->spare_events % PA_SPARE_DECAY_EVENTS == 0)
        spare_tick_due(h);
}

/* p: h's own, ATTACHED, empty (every block on its list, carved for its class), off its ring,
 * not on the reclaim stack, not pinned, slow_at and thread_free 0: as pa_pool_init leaves a
 * pool, once its counts are 0, so that a take for the same class needs no init (heap.c). Its
 * handouts go to h's count for the class now, so that a take for another class starts from
 * zero with nothing lost. */
void pa_spare_put(pa_heap *h, pa_pool *p)
{
    if (pa_config.spare_pools == 0) {
        pa_arena_pool_put(p);
        return;
    }
    bool locked = spare_lock(h);
    h->spare_handouts[pa_meta(p)->cls] += pa_pool_handouts(p);
    p->counts = 0;   /* left was 0 already */
    pa_pool *top = h->spare_top;
    if (top != NULL && (uintptr_t)p > (uintptr_t)top) {
        p->next = NULL;
        p->prev = top;
        top->next = p;
        h->spare_top = p;
    } else {
        p->prev = NULL;
        p->next = h->spare;
        if (p->next)
            p->next->prev = p;
        else
            h->spare_top = p;
        h->spare = p;
    }
    if (++h->nspare > pa_config.spare_pools)
        spare_release_top(h, 1);
    spare_tick(h);
    spare_unlock(h, locked);
}

/* Is p a spare of class cls whose list a fill hands out backward (every block of a spare is
 * free)? */
static bool list_backward(const pa_pool *p, size_t cls)
{
    return pa_meta(p)->cls == cls &&
           pa_list_kept_backward(p->free, pa_pool_page(p), pa_class_size(cls),
                                 pa_pool_capacity(p));
}

/* A spare pool for class cls, the bottom one unless the top one continues a falling sequence
 * (see above); the caller inits it if its class is not cls. NULL if there is none. */
pa_pool *pa_spare_take(pa_heap *h, size_t cls)
{
    if (__atomic_load_n(&h->spare, __ATOMIC_RELAXED) == NULL)   /* a trim only empties it */
        return NULL;
    bool locked = spare_lock(h);
    pa_pool *p = h->spare, *top = h->spare_top;
    if (top != p && list_backward(top, cls))
        p = top;
    if (p) {
        spare_unlink(h, p);
        spare_tick(h);
    }
    spare_unlock(h, locked);
    return p;
}

/* Thread exit and malloc_trim: every spare pool of h goes back. */
void pa_spare_flush(pa_heap *h)
{
    bool locked = spare_lock(h);
    uint32_t n = h->nspare;   /* those there now: an owner adding more cannot prolong this */
    h->spare_events = 0;
    spare_unlock(h, locked);
    while (n-- > 0) {   /* one pool per hold of the lock: a trim may flush a busy list */
        locked = spare_lock(h);
        spare_release_top(h, 1);
        spare_unlock(h, locked);
    }
}

/* malloc_trim: every live heap's spares go back, idle threads' included. Heaps are never
 * freed, and only live ones have spares (thread exit empties the list first). */
void pa_spare_flush_all(void)
{
    for (pa_heap *h = pa_heap_first(); h; h = h->next_all)
        if (atomic_load_explicit(&h->state, memory_order_acquire) == PA_HEAP_LIVE &&
            __atomic_load_n(&h->spare, __ATOMIC_RELAXED))
            pa_spare_flush(h);
}

/* fork: no trim may be halfway through a list when the child starts from it. */
void pa_spare_fork_prepare(void)
{
    for (pa_heap *h = pa_heap_first(); h; h = h->next_all)
        lock_always(h);
}

void pa_spare_fork_parent(void)
{
    for (pa_heap *h = pa_heap_first(); h; h = h->next_all)
        unlock_always(h);
}

void pa_spare_fork_child(void)
{
    pa_spare_fork_parent();
}
