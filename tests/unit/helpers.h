/* helpers.h — what every unit test needs: the internal API and a heap checker that walks the
 * calling thread's rings and every arena, asserting the invariants stated in internal.h. */
#ifndef PA_TEST_HELPERS_H
#define PA_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "snapshot.h"

/* FULL pools are in no list: found by walking the arenas. */
static void check_full_pools(pa_arena *a, void *heap)
{
    for (size_t i = 0; i < PA_ARENA_POOLS; i++) {
        const pa_pool *p = pa_arena_pool(a, i);
        if (pa_pool_owner(p) == heap && p->state == PA_POOL_FULL)
            cr_assert_lt(p->slow_at, pa_pool_used(p), "FULL pool past its reattach point");
    }
}

static inline void check_ring(const pa_heap *h)
{
    for (size_t c = 0; c < PA_NCLASSES; c++) {
        const pa_pool *prev = NULL;
        for (const pa_pool *p = h->cur[c]; p != &pa_empty_pool && p; p = p->next) {
            cr_assert_eq(p->state, PA_POOL_ATTACHED, "class %zu: ring pool not ATTACHED", c);
            cr_assert_eq(pa_meta(p)->cls, c, "pool of class %u on ring %zu", pa_meta(p)->cls, c);
            cr_assert_eq(pa_pool_owner(p), h);
            cr_assert_eq(p->prev, prev, "broken back link");
            cr_assert_leq(pa_pool_used(p) - p->pinned, pa_pool_capacity(p));
            cr_assert_eq(p->slow_at, 0, "ATTACHED pool with a FULL pool's exit");
            cr_assert_leq(p->pinned, 1);
            if (p->pinned)
                cr_assert(p == h->cur[c] && p->next == NULL, "pinned pool not alone in its ring");
            cr_assert_eq(pa_pool_free_count(p) + pa_pool_used(p) - p->pinned, pa_pool_capacity(p),
                         "class %zu: free list + used != capacity", c);
            if (prev)
                cr_assert_not_null(p->free, "non-head ring pool without free blocks");
            prev = p;
        }
    }
    pa_arena_foreach(check_full_pools, (void *)h, NULL);
}

static inline void check_heap(void)
{
    if (pa_tls_heap->state == PA_HEAP_LIVE)
        check_ring(pa_tls_heap);
}

/* For the suites that test pools and arenas themselves: every free reaches its pool at once,
 * and every pool that goes empty its arena (no thread cache, no spare pools). Criterion runs
 * each test in a process of its own, before which no heap exists. */
static inline void no_caches(void)
{
    pa_config.thread_cache = 0;
    pa_config.spare_pools = 0;
}

/* Page address of a small block. */
static inline uintptr_t page_of(const void *p) { return (uintptr_t)p & ~(uintptr_t)4095; }

#endif
