/* snapshot.c — gathers pa_snapshot: walks every arena header under the arena lock, reading the
 * descriptors of the pools in use (their handouts are the allocation counts, with those of pools
 * given back), and sums the per-thread counters; with stats on it also reads every block's mark
 * (track.c). Other threads keep running, so figures for their pools are approximate while they
 * allocate; at exit or when quiescent they are exact. */
#include <string.h>

#include "alloc.h"
#include "snapshot.h"

/* Blocks waiting on a pool's remote stack (its length is kept in the word). */
static size_t remote_pending(const pa_pool *p)
{
    uintptr_t tf = atomic_load_explicit(&p->thread_free, memory_order_acquire);
    size_t n = pa_tf_count(tf), cap = pa_pool_capacity(p);
    return n < cap ? n : cap;
}

static void walk_arena(pa_arena *a, void *arg)
{
    pa_snapshot *s = arg;
    for (size_t i = 0; i < PA_ARENA_POOLS; i++) {
        const pa_pool *p = pa_arena_pool(a, i);
        const pa_pool_meta *m = pa_meta(p);
        if (p->state == PA_POOL_FREE) {
            s->pools_free++;
            continue;
        }
        pa_class_snapshot *c = &s->cls[m->cls];
        size_t pending = remote_pending(p);
        size_t cap = pa_pool_capacity(p);
        size_t used = (size_t)pa_pool_used(p) - p->pinned;   /* racy reads: keep within bounds */
        used = used > cap ? cap : used;
        size_t live = used > pending ? used - pending : 0;
        s->remote_frees += pending;
        c->pools++;
        c->allocs += pa_pool_handouts(p);
        c->in_use += live;
        c->free += cap - live;
        s->pools_in_use++;
        if (pa_track_on)
            s->waste += pa_track_pool_waste(p);
    }
}

void pa_snapshot_take(pa_snapshot *s)
{
    /* The calling thread's batched remote frees go back first (other threads' batches, at most
     * a few KiB each, count as in use until they do). */
    pa_heap_remote_flush(pa_tls_heap);
    memset(s, 0, sizeof *s);
    uint64_t released[PA_NCLASSES] = { 0 };
    pa_arena_foreach(walk_arena, s, released);
    pa_arena_counts_get(&s->arenas);
    uint64_t cached[PA_NCLASSES] = { 0 };
    for (pa_heap *h = pa_heap_first(); h; h = h->next_all) {
        s->threads++;
        s->remote_frees += h->nremote +
                           atomic_load_explicit(&h->nremote_swept, memory_order_relaxed);
        for (size_t c = 0; c < PA_NCLASSES; c++) {
            s->cls[c].allocs += pa_bin_handouts(h, c) +
                                __atomic_load_n(&h->spare_handouts[c], __ATOMIC_RELAXED);
            cached[c] += pa_bin_cached(h, c);
        }
    }
    for (size_t c = 0; c < PA_NCLASSES; c++) {
        pa_class_snapshot *k = &s->cls[c];
        k->allocs += released[c];
        /* the pools count cached blocks as used */
        uint64_t moved = cached[c] < k->in_use ? cached[c] : k->in_use;
        k->in_use -= moved;
        k->free += moved;
        k->size = (c + 1) * PA_ALIGN;
        k->frees = k->allocs > k->in_use ? k->allocs - k->in_use : 0;
        s->block_bytes += k->in_use * k->size;
        s->free_bytes += k->free * k->size;
    }
    s->arena_bytes = s->arenas.current * PA_ARENA_SIZE;
}
