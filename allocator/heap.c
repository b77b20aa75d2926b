/* heap.c — per-thread heaps: the slow paths of malloc and free, remote (cross-thread) frees,
 * and the life of a heap across thread start, thread exit and fork.
 *
 * A thread allocates only from pools its heap owns, without locks. A block freed by another
 * thread is pushed on its pool's thread_free stack with one CAS; the owner takes the stack
 * when its list runs dry. A FULL pool is off the owner's rings, so the first remote free into
 * it queues the pool on the owner's reclaim stack (see the flags in internal.h).
 *
 * A heap outlives its thread: at thread exit it gives back its empty pools and waits on the
 * abandoned list; frees into it are then done under pa_heaps_lock on its behalf, and the next
 * new thread adopts it whole. */
#include <errno.h>

#include "alloc.h"

#define PA_EMPTY_RING { [0 ... PA_NCLASSES - 1] = &pa_empty_pool }

/* The pool every empty ring points at: no free block, so the fast path falls through. */
PA_HIDDEN pa_pool pa_empty_pool;

/* A thread starts on pa_heap_boot and moves to a heap of its own on its first slow path; after
 * its exit destructor it is on pa_heap_dead, and its small requests go to the large path. */
static pa_heap pa_heap_boot = { .cur = PA_EMPTY_RING, .state = PA_HEAP_BOOT };
static pa_heap pa_heap_dead = { .cur = PA_EMPTY_RING, .state = PA_HEAP_DEAD };

PA_HIDDEN __thread pa_heap *pa_tls_heap __attribute__((tls_model("initial-exec"))) = &pa_heap_boot;
PA_HIDDEN pthread_key_t pa_heap_key;

static pthread_mutex_t pa_heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static pa_heap *pa_heaps_all;        /* every heap ever made, by next_all */
static pa_heap *pa_heaps_abandoned;  /* heaps waiting for a new thread */

/* Heaps come from a bump chunk of their own; they are never unmapped. */
static char  *pa_heap_chunk;
static size_t pa_heap_chunk_left;

pa_heap *pa_heap_first(void)
{
    return __atomic_load_n(&pa_heaps_all, __ATOMIC_ACQUIRE);
}

/* ---- rings (ATTACHED pools per class, head = allocation pool) */

static void unpin(pa_pool *p)
{
    if (p->pinned) {
        p->pinned = 0;
        p->left--;
    }
}

/* A pinned pool is the sole member of its ring: whoever joins it ends the pin. */
static void ring_insert_head(pa_heap *h, pa_pool *p)
{
    pa_pool *head = h->cur[pa_meta(p)->cls];
    if (head != &pa_empty_pool)
        unpin(head);
    p->prev = NULL;
    p->next = head == &pa_empty_pool ? NULL : head;
    if (p->next)
        p->next->prev = p;
    h->cur[pa_meta(p)->cls] = p;
}

/* A reattached pool goes second: as head it would be exhausted and detached again at once. */
static void ring_insert_second(pa_heap *h, pa_pool *p)
{
    pa_pool *head = h->cur[pa_meta(p)->cls];
    if (head == &pa_empty_pool) {
        ring_insert_head(h, p);
        return;
    }
    unpin(head);
    p->prev = head;
    p->next = head->next;
    if (p->next)
        p->next->prev = p;
    head->next = p;
}

static void ring_remove(pa_heap *h, pa_pool *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        h->cur[pa_meta(p)->cls] = p->next ? p->next : &pa_empty_pool;
    if (p->next)
        p->next->prev = p->prev;
}

/* ---- pool state changes, by the owner (or under pa_heaps_lock for an abandoned heap) */

/* p, off its ring and DETACHED, every block out: FULL, with its counts set to come back to
 * the ring once an eighth of it is free (see PA_REATTACH_SHIFT). */
static inline __attribute__((always_inline)) void pool_set_full(pa_pool *p)
{
    p->state = PA_POOL_FULL;
    uint32_t room = pa_pool_capacity(p) >> PA_REATTACH_SHIFT;
    uint16_t left = (uint16_t)(room > 2 ? room : 2);
    p->slow_at = (uint16_t)(p->left - left);   /* slow_at was 0: used == left */
    p->left = left;
}

/* p, FULL, back on its ring: second (see ring_insert_second), or as its head when a detach is
 * undone (its remote stack is taken next). */
static void pool_unset_full(pa_heap *h, pa_pool *p, bool head)
{
    p->left = pa_pool_used(p);
    p->slow_at = 0;
    p->state = PA_POOL_ATTACHED;
    if (head)
        ring_insert_head(h, p);
    else
        ring_insert_second(h, p);
}

/* The head has no block left: move it to FULL, unless a remote free slipped in. DETACHED goes
 * on last, by the CAS that checks the stack is still empty, so that a sweep of the reclaim
 * stack (below) that sees the flag sees the pool's fields final; if a remote free came
 * first, the move is undone. */
static inline __attribute__((always_inline)) bool pool_detach(pa_heap *h, pa_pool *p)
{
    uintptr_t tf = atomic_load_explicit(&p->thread_free, memory_order_relaxed);
    if (pa_tf_stack(tf))
        return false;
    unpin(p);
    ring_remove(h, p);
    pool_set_full(p);
    if (pa_single_threaded()) {   /* no remote freer to race with: no locked instruction */
        atomic_store_explicit(&p->thread_free, tf | PA_TF_DETACHED, memory_order_relaxed);
        return true;
    }
    while (!atomic_compare_exchange_weak_explicit(&p->thread_free, &tf, tf | PA_TF_DETACHED,
                                                  memory_order_acq_rel, memory_order_relaxed))
        if (pa_tf_stack(tf)) {
            pool_unset_full(h, p, true);
            return false;
        }
    return true;
}

static void pool_reattach(pa_heap *h, pa_pool *p)
{
    if (pa_single_threaded())
        atomic_store_explicit(&p->thread_free, ~PA_TF_DETACHED &
                              atomic_load_explicit(&p->thread_free, memory_order_relaxed),
                              memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&p->thread_free, ~PA_TF_DETACHED, memory_order_acq_rel);
    pool_unset_full(h, p, false);
}

/* An ATTACHED pool with no block out leaves its ring, unless it still sits on the reclaim stack
 * (then it goes when popped from there). live: the heap goes on allocating, so the pool becomes
 * a spare (spare.c), or, the only pool of its class, stays pinned instead (which spares both
 * trips on every fill/empty cycle); otherwise (malloc_trim, thread exit, an abandoned heap)
 * it goes back to its arena. */
static void pool_release_if_empty(pa_heap *h, pa_pool *p, bool live)
{
    if (!live)
        unpin(p);
    if (p->state != PA_POOL_ATTACHED || p->left != 0)   /* ATTACHED: left == used */
        return;
    if (live && h->cur[pa_meta(p)->cls] == p && p->next == NULL) {
        p->pinned = 1;
        p->left = 1;
        return;
    }
    if (atomic_load_explicit(&p->thread_free, memory_order_acquire) & PA_TF_QUEUED)
        return;
    ring_remove(h, p);
    if (live)
        pa_spare_put(h, p);
    else
        pa_arena_pool_put(p);
}

/* Pops the FULL pools that received remote frees, takes their blocks and reattaches them. */
static void heap_reclaim(pa_heap *h)
{
    pa_pool *p = pa_rc_top(atomic_exchange_explicit(&h->reclaim, 0, memory_order_acquire));
    for (pa_pool *next; p; p = next) {
        next = p->reclaim_next;
        uintptr_t tf = atomic_load_explicit(&p->thread_free, memory_order_relaxed), keep;
        do  /* clear QUEUED and take the blocks; with none, a FULL pool stays DETACHED */
            keep = pa_tf_stack(tf) ? 0 : (tf & PA_TF_DETACHED);
        while (!atomic_compare_exchange_weak_explicit(&p->thread_free, &tf, keep,
                                                      memory_order_acquire, memory_order_relaxed));
        /* FULL, nothing taken: from that CAS on a remote free may queue p again, and a sweep
         * give it back to its arena (below), so this thread no longer touches it */
        if (keep & PA_TF_DETACHED)
            continue;
        pa_block *first = pa_tf_stack(tf);
        if (first) {
            pa_pool_take(p, first, pa_tf_count(tf));
            if (p->state == PA_POOL_FULL)
                pool_reattach(h, p);
        }
        pool_release_if_empty(h, p, true);
    }
}

/* ---- the slow path of malloc */

static void batch_push(pa_heap *h, pa_remote_batch *r);

static pa_heap *heap_new(void)
{
    size_t need = (sizeof(pa_heap) + 63) & ~(size_t)63;
    if (pa_heap_chunk_left < need) {
        size_t chunk = 64 * 1024;
        char *c = pa_os_reserve(chunk, 4096);
        if (c == NULL)
            return NULL;
        pa_heap_chunk = c;
        pa_heap_chunk_left = chunk;
    }
    pa_heap *h = (pa_heap *)pa_heap_chunk;
    pa_heap_chunk += need;
    pa_heap_chunk_left -= need;
    for (size_t c = 0; c < PA_NCLASSES; c++)
        h->cur[c] = &pa_empty_pool;
    pa_cache_init(h);
    /* made by the forking thread inside a fork window (a fork handler's first small request):
     * its spare list is held, as pa_spare_fork_prepare left every other heap's, until the
     * parent or child handler releases them all; another thread's malloc_trim must wait */
    atomic_store_explicit(&h->spare_lock, pa_tls_in_fork, memory_order_relaxed);
    h->next_all = pa_heaps_all;
    __atomic_store_n(&pa_heaps_all, h, __ATOMIC_RELEASE);
    return h;
}

/* pa_heaps_lock, unless the calling thread holds it across a fork: a malloc or free from a
 * fork handler (fork.c). */
static bool heaps_lock(void)
{
    if (pa_tls_in_fork)
        return false;
    pthread_mutex_lock(&pa_heaps_lock);
    return true;
}

static void heaps_unlock(bool locked)
{
    if (locked)
        pthread_mutex_unlock(&pa_heaps_lock);
}

/* First slow path of a thread: adopt an abandoned heap or make one. */
static pa_heap *thread_start(void)
{
    pa_init();
    bool locked = heaps_lock();
    pa_heap *h = pa_heaps_abandoned;
    if (h)
        pa_heaps_abandoned = h->next_abandoned;
    else
        h = heap_new();
    if (h)
        atomic_store_explicit(&h->state, PA_HEAP_LIVE, memory_order_release);
    heaps_unlock(locked);
    if (h == NULL)
        return NULL;
    pa_tls_heap = h;
    /* may allocate (keys past the first 32): that re-enters malloc with pa_tls_heap set */
    pthread_setspecific(pa_heap_key, h);
    return h;
}

/* pool_with_blocks' way out for a spare of the class when the bin is empty (fill): the pool's
 * whole list goes to the bin and the pool is FULL at once, without joining its ring, where the
 * next fill would only detach it again (the trip every pool of 512-byte blocks makes every 8
 * pairs). With none of its blocks out, no remote free can race with the DETACHED flag. */
static inline __attribute__((always_inline)) void pool_fill_full(pa_heap *h, pa_pool *p,
                                                                 size_t cls)
{
    pa_cache_fill(h, p, cls);
    pool_set_full(p);
    atomic_store_explicit(&p->thread_free, PA_TF_DETACHED, memory_order_release);
}

/* A pool of h's class cls with blocks on its list, at the head of its ring; NULL when out of
 * memory. With fill (the bin is empty and to be filled), a spare of the class may instead fill
 * the bin itself and come back FULL, off its ring (*filled). */
static inline __attribute__((always_inline)) pa_pool *pool_with_blocks(pa_heap *h, size_t cls,
                                                                      bool fill, bool *filled)
{
    for (;;) {
        pa_pool *p = h->cur[cls];
        if (p->free)
            return p;
        if (p != &pa_empty_pool) {
            if (!pa_pool_collect(p))
                pool_detach(h, p);
            continue;
        }
        if (atomic_load_explicit(&h->reclaim, memory_order_relaxed)) {
            heap_reclaim(h);
            if (h->cur[cls] != &pa_empty_pool)
                continue;
        }
        p = pa_spare_take(h, cls);
        /* a spare of the class is as pa_pool_init would leave it (see pa_spare_put) */
        bool ready = p != NULL && pa_meta(p)->cls == cls;
        if (ready && fill) {
            pool_fill_full(h, p, cls);
            *filled = true;
            return p;
        }
        if (!ready) {
            if (p == NULL && (p = pa_arena_pool_get()) == NULL)
                return NULL;
            pa_pool_init(p, h, cls);
        }
        ring_insert_head(h, p);
        return p;
    }
}

/* One malloc slow path in PA_LARGE_DECAY_EVENTS: what would otherwise wait for an event that
 * a thread in a steady state may never have. Pools that other threads freed into while they
 * were FULL wait on the reclaim stack until a ring of h runs dry, which a thread whose working
 * set fits its rings never sees (a Redis main thread after FLUSHALL ASYNC, its lazyfree thread
 * having freed the whole dataset); and the arenas' decay looks at the clock only on pool
 * trips, which the spare pools and the cache make rare. */
static __attribute__((noinline)) void heap_tick(pa_heap *h)
{
    if (atomic_load_explicit(&h->reclaim, memory_order_relaxed))
        heap_reclaim(h);
    pa_arena_decay_tick();
    pa_large_decay_tick();
}

/* track: stats on, n the request, whose low byte goes to the block's waste slot (track.c);
 * the blocks of the large path above are not ours to track. */
static inline __attribute__((always_inline)) void *heap_alloc_slow(pa_heap *h, size_t cls,
                                                                   size_t n, bool track)
{
    if (unlikely(h->remote[cls].pool != NULL))   /* a busy thread's batches go back soon */
        batch_push(h, &h->remote[cls]);
    if (unlikely(atomic_load_explicit(&h->state, memory_order_relaxed) != PA_HEAP_LIVE)) {
        if (h->state == PA_HEAP_DEAD || pa_tls_in_init)
            return pa_large_alloc(pa_class_size(cls), 0);
        if ((h = thread_start()) == NULL) {
            errno = ENOMEM;
            return NULL;
        }
    }
    uint32_t slow = atomic_load_explicit(&h->slow_paths, memory_order_relaxed) + 1;
    atomic_store_explicit(&h->slow_paths, slow, memory_order_relaxed);   /* the owner's alone */
    if (unlikely(slow % PA_LARGE_DECAY_EVENTS == 0))
        heap_tick(h);
    /* fill: the empty bin takes a pool's whole list; else one block comes from the pool (no
     * cache: a careful path's call; or blocks cached: malloc re-entered from thread_start) */
    bool fill = h->cache_cap[cls] && h->bin[cls] == NULL, filled = false;
    pa_pool *p = pool_with_blocks(h, cls, fill, &filled);
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    pa_block *b;
    if (fill) {
        if (!filled)
            pa_cache_fill(h, p, cls);
        b = h->bin[cls];
        h->bin[cls] = b->next;
        h->bin_counts[cls].counts += PA_HANDOUT;
    } else {
        b = p->free;
        p->free = pa_next(b);
        pa_pool_handout(p);
    }
    pa_check_handout(p, b);
    if (track)
        *pa_waste_slot(b) = (uint8_t)n;
    return b;
}

void *pa_heap_alloc_slow(pa_heap *h, size_t cls)
{
    return heap_alloc_slow(h, cls, 0, false);
}

/* The tracked fast path's miss: one function, so that it stays a tail call. */
void *pa_heap_alloc_slow_tracked(pa_heap *h, size_t cls, size_t n)
{
    return heap_alloc_slow(h, cls, n, true);
}

/* ---- the slow paths of free */

/* The owner's push of a free block onto its pool's list, outside the inline fast path (careful
 * paths, emptying the cache, frees into an abandoned heap under pa_heaps_lock). */
void pa_heap_free_local(pa_heap *h, pa_pool *p, pa_block *b)
{
    pa_link(b, p->free);
    p->free = b;
    if (--p->left == 0)
        pa_heap_free_slow(h, p);
}

/* Owner's local free made the pool empty or found it FULL (the block is already pushed). */
void pa_heap_free_slow(pa_heap *h, pa_pool *p)
{
    if (p->state == PA_POOL_FULL)
        pool_reattach(h, p);
    /* an abandoned heap keeps nothing back: no thread allocates from it */
    pool_release_if_empty(h, p, h->state == PA_HEAP_LIVE);
}

/* ---- remote frees: a block freed by a thread that does not own its pool */

/* Pushes the pools first .. last (n, linked by reclaim_next) onto o's reclaim stack. */
static void reclaim_push(pa_heap *o, pa_pool *first, pa_pool *last, uint32_t n)
{
    uintptr_t rc = atomic_load_explicit(&o->reclaim, memory_order_relaxed);
    do
        last->reclaim_next = pa_rc_top(rc);
    while (!atomic_compare_exchange_weak_explicit(&o->reclaim, &rc, pa_rc_push(rc, first, n),
                                                  memory_order_release, memory_order_relaxed));
}

/* Gives the chain first .. last (n blocks, linked) back to p: one CAS onto its thread_free
 * stack, or under pa_heaps_lock straight onto the local list of an abandoned owner. Returns
 * p's owner if that completed a FULL pool (every block of it now on the stack), else NULL:
 * read before the push, while the chain kept p in use, since a sweep may give p back to its
 * arena as soon as the push is done. */
static pa_heap *remote_push(pa_pool *p, pa_block *first, pa_block *last, uint32_t n)
{
    pa_heap *owner = pa_pool_owner(p);
    uint32_t cap = pa_pool_capacity(p);
    int st = atomic_load_explicit(&owner->state, memory_order_acquire);
    if (unlikely(st == PA_HEAP_ABANDONED)) {
        bool locked = heaps_lock();
        if (atomic_load_explicit(&owner->state, memory_order_relaxed) == PA_HEAP_ABANDONED) {
            owner->nremote += n;
            for (pa_block *b = first, *next; n--; b = next) {
                next = pa_next(b);
                pa_heap_free_local(owner, p, b);
            }
            heaps_unlock(locked);
            return NULL;
        }
        heaps_unlock(locked);   /* adopted meanwhile: a plain remote free */
    }
    uintptr_t tf = atomic_load_explicit(&p->thread_free, memory_order_relaxed), nw;
    do {
        pa_link(last, pa_tf_stack(tf));
        nw = (uintptr_t)first | ((tf & PA_TF_COUNT) + n * PA_TF_COUNT_ONE) |
             (tf & PA_TF_FLAGS) | ((tf & PA_TF_DETACHED) ? PA_TF_QUEUED : 0);
    } while (!atomic_compare_exchange_weak_explicit(&p->thread_free, &tf, nw,
                                                    memory_order_release, memory_order_relaxed));
    if ((tf & PA_TF_DETACHED) && !(tf & PA_TF_QUEUED))
        reclaim_push(owner, p, p, 1);
    return (nw & PA_TF_DETACHED) && pa_tf_count(nw) == cap ? owner : NULL;
}

/* ---- idle owners: FULL pools other threads emptied, on a reclaim stack nobody pops
 *
 * An owner takes its reclaim stack back when a ring runs dry, or at the latest on one in 64 of
 * its malloc slow paths (heap_tick). A thread that takes none (Redis's main thread while its
 * lazyfree thread frees the whole dataset, then idle) would keep every pool on it. So the
 * freeing threads look: once in PA_SWEEP_SAMPLE of its completions of FULL pools (every block
 * of the pool on its remote stack), a freer samples the owner's count of slow paths. An owner
 * that took one in the last PA_SWEEP_IDLE_MS is active: it keeps its pools, which its ticks
 * will bring back. From an idle one, once the completions sampled since the last sweep reach
 * a PA_SWEEP_RATIO-th of its stack's length (so that the walks cost a few steps per pool
 * taken, whatever the length), the freer takes the stack, gives the wholly free FULL pools
 * back to their arenas and pushes the others back.
 *
 * Such a pool is its owner's in name only: none of its blocks is live or in the owner's
 * cache, and only a pop of the stack, which the sweep holds, would lead the owner to it. The
 * test is one word: DETACHED (FULL, set only once the owner is done moving the pool there),
 * and a count of blocks on the stack equal to the capacity, which a CAS from that very word
 * makes the sweep's. The sweep runs under pa_heaps_lock, waited for (a sweep that only tried
 * it, and gave up while another ran, lost the last pools of a burst): so no thread exit or
 * fork finds the stack half taken; a freer in a fork handler, which holds it, skips. */

static void reclaim_sweep(pa_heap *o)
{
    bool locked = heaps_lock();
    if (!locked)
        return;   /* this thread holds it across a fork: a free or trim in a fork handler */
    if (atomic_load_explicit(&o->state, memory_order_relaxed) == PA_HEAP_LIVE) {
        pa_pool *p = pa_rc_top(atomic_exchange_explicit(&o->reclaim, 0, memory_order_acquire));
        pa_pool *keep = NULL, *keep_last = NULL, *swept = NULL;
        uint32_t nkeep = 0;
        uint64_t blocks = 0;
        for (pa_pool *next; p; p = next) {
            next = p->reclaim_next;
            uintptr_t tf = atomic_load_explicit(&p->thread_free, memory_order_acquire);
            /* the CAS makes p the sweep's; the stack stays counted until p is FREE (under the
             * arena lock, as the stats walk pools), so that they never see its blocks live */
            if ((tf & PA_TF_DETACHED) && pa_tf_count(tf) == pa_pool_capacity(p) &&
                atomic_compare_exchange_strong_explicit(&p->thread_free, &tf,
                                                        tf & ~PA_TF_QUEUED,
                                                        memory_order_acquire,
                                                        memory_order_relaxed)) {
                p->free = pa_tf_stack(tf);   /* every block: as an empty pool goes back */
                blocks += pa_tf_count(tf);
                p->reclaim_next = swept;
                swept = p;
                continue;
            }
            p->reclaim_next = keep;
            if (keep == NULL)
                keep_last = p;
            keep = p;
            nkeep++;
        }
        if (keep)
            reclaim_push(o, keep, keep_last, nkeep);
        if (swept) {
            pa_arena_put_idle(swept);   /* their stacks counted as remote frees until then */
            atomic_fetch_add_explicit(&o->nremote_swept, blocks, memory_order_relaxed);
        }
    }
    heaps_unlock(locked);
}

/* malloc_trim: every other live heap's wholly free FULL pools go back, idle or not. */
void pa_heap_sweep_all(void)
{
    for (pa_heap *h = pa_heap_first(); h; h = h->next_all)
        if (h != pa_tls_heap && atomic_load_explicit(&h->reclaim, memory_order_relaxed))
            reclaim_sweep(h);
}

/* A sample of owner o, whose FULL pool the calling thread just completed: whether o is idle. */
static __attribute__((noinline)) bool reclaim_sample(pa_heap *o)
{
    uint32_t credit = PA_SWEEP_SAMPLE + atomic_fetch_add_explicit(&o->sweep_credit,
                                                                  PA_SWEEP_SAMPLE,
                                                                  memory_order_relaxed);
    uint32_t slow = atomic_load_explicit(&o->slow_paths, memory_order_relaxed);
    uint64_t now = pa_os_now_ms();
    if (slow != atomic_load_explicit(&o->sweep_seen, memory_order_relaxed)) {
        atomic_store_explicit(&o->sweep_seen, slow, memory_order_relaxed);
        atomic_store_explicit(&o->sweep_seen_ms, now, memory_order_relaxed);
        return false;
    }
    if (now - atomic_load_explicit(&o->sweep_seen_ms, memory_order_relaxed) < PA_SWEEP_IDLE_MS)
        return false;
    uint32_t queued = pa_rc_count(atomic_load_explicit(&o->reclaim, memory_order_relaxed));
    if ((uint64_t)credit * PA_SWEEP_RATIO >= queued) {
        atomic_store_explicit(&o->sweep_credit, 0, memory_order_relaxed);
        reclaim_sweep(o);
    }
    return true;
}

/* While the owner it last sampled is idle, a freer samples every completion: otherwise the
 * last few of a burst of frees, after its last sample, would keep their pools, and each such
 * pool its arena. */
static void batch_push(pa_heap *h, pa_remote_batch *r)
{
    pa_heap *owner = remote_push(r->pool, r->first, r->last, r->n);
    r->pool = NULL;
    if (owner && h->sweep_countdown-- == 0)
        h->sweep_countdown = reclaim_sample(owner) ? 0 : PA_SWEEP_SAMPLE - 1;
}

/* Only a live heap ever batches, so the static boot and dead heaps have nothing to push. */
void pa_heap_remote_flush(pa_heap *h)
{
    for (size_t c = 0; c < PA_NCLASSES; c++)
        if (h->remote[c].pool)
            batch_push(h, &h->remote[c]);
}

/* The rest of pa_heap_free_remote: the checks, the first free of a batch, level 2, and heaps
 * that are not live. */
static __attribute__((noinline)) void free_remote_other(pa_heap *h, pa_pool *p, pa_block *b,
                                                        const pa_pool_meta *m)
{
    if (pa_hot.check_level) {
        if (unlikely(m->owner == NULL))   /* FREE */
            pa_check_fail("invalid pointer", b, "free", 0);
        if (unlikely(!pa_block_start(m, b) || b->mark == pa_free_mark(b)))
            pa_check_free_slow(p, b, "free");
    }
    pa_check_freed(p, b);
    pa_heap *owner = pa_meta_owner(m);
    if (unlikely(owner == h)) {   /* level 2, a local free */
        pa_heap_free_local(h, p, b);
        return;
    }
    if (unlikely(h->state == PA_HEAP_BOOT) && !pa_tls_in_init) {
        pa_heap *mine = thread_start();   /* a thread that only frees batches too */
        if (mine)
            h = mine;
    }
    if (unlikely(atomic_load_explicit(&h->state, memory_order_relaxed) != PA_HEAP_LIVE ||
                 atomic_load_explicit(&owner->state, memory_order_relaxed) != PA_HEAP_LIVE)) {
        /* dead and orphan heaps keep nothing; an abandoned owner takes it at once */
        pa_link(b, NULL);
        remote_push(p, b, b, 1);
        return;
    }
    pa_remote_batch *r = &h->remote[m->cls];
    if (r->pool == p) {   /* level 2, or a block whose data looked like the free mark */
        pa_link(b, r->first);
        r->first = b;
        if (++r->n == r->limit)
            batch_push(h, r);
        return;
    }
    if (r->pool)
        batch_push(h, r);
    pa_link(b, NULL);
    r->pool = p;
    r->first = r->last = b;
    r->n = 1;
    uint32_t fit = (uint32_t)(PA_REMOTE_BATCH_BYTES / pa_class_size(m->cls));
    r->limit = fit < PA_REMOTE_BATCH_MAX ? fit : PA_REMOTE_BATCH_MAX;
}

/* p's owner word is not h, the calling thread's heap: p belongs to another heap, or is not in
 * use at all (a bad pointer), or carries PA_OWNER_CAREFUL (level 2), when it may be h's own.
 * A live heap batches the block: the CAS on p's thread_free (whose line p's owner writes at
 * every malloc) is paid once per batch. The block is marked free at once, so a second free
 * of it is caught meanwhile as any other.
 *
 * Adding to the batch under way is the common case, kept short: a heap that holds a batch is
 * its thread's live heap (thread exit switches to the dead heap before it flushes), and the
 * batch's owner was live when the batch began; if it has been abandoned since, remote_push
 * hands the blocks over under the lock. */
void pa_heap_free_remote(pa_heap *h, pa_block *b)
{
    pa_pool *p = pa_pool_of(b);
    const pa_pool_meta *m = pa_meta_of(b);
    unsigned level = pa_hot.check_level;
    pa_remote_batch *r = &h->remote[m->cls];
    /* The batch's blocks keep p in use, so p is not FREE: level 1 checks the rest. */
    if (likely(r->pool == p) && likely(level < 2) &&
        likely(level == 0 || (pa_block_start(m, b) && b->mark != pa_free_mark(b)))) {
        b->mark = pa_free_mark(b);
        b->next = r->first;   /* raw link: the list key is 0 below level 2 */
        r->first = b;
        if (++r->n == r->limit)
            batch_push(h, r);
        return;
    }
    free_remote_other(h, p, b, m);
}

/* ---- whole-heap operations */

/* Takes every remote free and gives every empty pool back, spare ones too. */
static void heap_collect(pa_heap *h)
{
    heap_reclaim(h);
    for (size_t c = 0; c < PA_NCLASSES; c++) {
        pa_pool *p = h->cur[c];
        if (p == &pa_empty_pool)
            continue;
        while (p) {
            pa_pool *next = p->next;
            pa_pool_collect(p);
            pool_release_if_empty(h, p, false);
            p = next;
        }
    }
    pa_spare_flush(h);
}

void pa_heap_collect_all(pa_heap *h)
{
    if (atomic_load_explicit(&h->state, memory_order_relaxed) == PA_HEAP_LIVE) {
        pa_cache_flush_all(h);
        pa_heap_remote_flush(h);
        heap_collect(h);
    }
}

/* pthread key destructor: runs at thread exit, before glibc's last frees of the thread. */
void pa_heap_thread_exit(void *arg)
{
    pa_heap *h = arg;
    pa_tls_heap = &pa_heap_dead;
    pa_heap_remote_flush(h);   /* before the lock, which a push to an abandoned owner takes */
    pa_cache_flush_all(h);     /* the heap is still this thread's alone: no lock either */
    pthread_mutex_lock(&pa_heaps_lock);
    heap_collect(h);
    atomic_store_explicit(&h->state, PA_HEAP_ABANDONED, memory_order_release);
    h->next_abandoned = pa_heaps_abandoned;
    pa_heaps_abandoned = h;
    pthread_mutex_unlock(&pa_heaps_lock);
}

void pa_heap_fork_prepare(void)
{
    pthread_mutex_lock(&pa_heaps_lock);
    pa_spare_fork_prepare();
}

void pa_heap_fork_parent(void)
{
    pa_spare_fork_parent();
    pthread_mutex_unlock(&pa_heaps_lock);
}

/* In the child only the forking thread survives. The heaps of the others may have been
 * caught mid-update, so they are never walked again: frees into their pools are remote
 * pushes only (that memory is not reused in the child). Abandoned heaps were consistent
 * (changed only under the lock we held) and stay adoptable. */
void pa_heap_fork_child(void)
{
    pa_spare_fork_child();
    pthread_mutex_init(&pa_heaps_lock, NULL);
    for (pa_heap *h = pa_heaps_all; h; h = h->next_all)
        if (h != pa_tls_heap && h->state == PA_HEAP_LIVE)
            atomic_store_explicit(&h->state, PA_HEAP_ORPHAN, memory_order_relaxed);
}
