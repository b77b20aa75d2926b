/* test_arena.c — arenas: fullest first, release of wholly free arenas past the cache, purging
 * of empty pools' pages, malloc_trim. */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <time.h>

#include "helpers.h"

TestSuite(arena, .init = no_caches);

#define PER_POOL 8                    /* 512-byte blocks a pool */
#define PER_ARENA (PA_ARENA_POOLS * PER_POOL)

static bool resident(const void *page)
{
    unsigned char v = 0;
    cr_assert_eq(mincore((void *)page_of(page), 4096, &v), 0);
    return v & 1;
}

static void **fill(size_t n)
{
    void **b = pa_large_alloc(n * sizeof *b, 0);
    for (size_t i = 0; i < n; i++) {
        b[i] = pa_malloc(512);
        cr_assert_not_null(b[i]);
        memset(b[i], 1, 512);
    }
    return b;
}

Test(arena, wholly_free_arenas_are_released_past_the_cache)
{
    pa_config.arena_cache = 1;
    pa_config.decay_ms = 0;          /* give back at once */
    size_t n = 3 * PER_ARENA;
    void **b = fill(n);
    pa_arena_counts c;
    pa_arena_counts_get(&c);
    cr_assert_geq(c.current, 3);
    size_t before = c.current;
    for (size_t i = 0; i < n; i++)
        pa_free(b[i]);
    pa_arena_counts_get(&c);
    /* one arena keeps the class's last pool, one is cached, the rest went back */
    cr_assert_eq(c.cached, 1);
    cr_assert_eq(c.current, 2, "current %zu (was %zu)", c.current, before);
    cr_assert_eq(c.released, before - 2);
    cr_assert_eq(pa_api_trim(), 1);
    pa_arena_counts_get(&c);
    cr_assert_eq(c.current, 0, "malloc_trim left %zu arenas", c.current);
    cr_assert_eq(c.cached, 0);
    pa_large_free(b);
}

/* The region's tables hold everything about an arena (internal.h): a released arena gives its
 * page of descriptors back with its own pages, and its slot serves again from zeroes. */
Test(arena, a_released_arena_gives_back_its_descriptors_and_serves_again)
{
    pa_config.decay_ms = 0;
    void **b = fill(2 * PER_ARENA);
    pa_pool *first = pa_pool_of(b[0]);
    cr_assert_eq(pa_pool_index(first), 0, "a fresh arena serves its first pool first");
    for (size_t i = 0; i < 2 * PER_ARENA; i++)
        pa_free(b[i]);
    pa_api_trim();
    pa_arena_counts c;
    pa_arena_counts_get(&c);
    cr_assert_eq(c.current, 0, "malloc_trim left %zu arenas", c.current);
    cr_assert_not(resident(first), "the released arena's descriptors are still resident");
    cr_assert_not(resident(pa_pool_page(first)), "the released arena is still resident");
    cr_assert_null(pa_meta(first)->owner);
    void *x = pa_malloc(512);
    cr_assert_eq(pa_arena_of(x), pa_arena_of(b[0]), "the lowest slot did not serve again");
    cr_assert_eq((void *)x, pa_pool_page(first), "not carved again from the first block");
    cr_assert_eq(first->carved, pa_class_of(512) + 1);
    cr_assert_eq(pa_meta(first)->owner, pa_tls_heap);
    pa_free(x);
    pa_large_free(b);
}

Test(arena, fullest_arena_serves_first)
{
    pa_config.arena_cache = 4;
    void **b = fill(PER_ARENA + 3 * PER_POOL);   /* arena A full, arena B with 3 pools */
    pa_arena *A = pa_arena_of(b[0]), *B = pa_arena_of(b[PER_ARENA + 1]);
    cr_assert_neq(A, B);
    /* empty 2 pools of A: A has 2 free pools, B has 60 */
    for (size_t i = 8; i < 8 + 2 * PER_POOL; i++)
        pa_free(b[i]);
    cr_assert_eq(A->nfree, 2);
    /* the next new pools come from A, the fuller one */
    void *x[3 * PER_POOL];
    for (size_t i = 0; i < 3 * PER_POOL; i++)
        x[i] = pa_malloc(512);
    cr_assert_eq(pa_arena_of(x[2 * PER_POOL - 1]), A, "a new pool came from the emptier arena");
    cr_assert_eq(pa_arena_of(x[3 * PER_POOL - 1]), B);
    pa_large_free(b);
}

Test(arena, empty_pools_are_purged_over_the_dirty_budget)
{
    pa_config.dirty_max = 0;
    pa_config.arena_cache = 4;
    void **b = fill(4 * PER_POOL);
    void *victim = b[PER_POOL];               /* second pool */
    cr_assert(resident(victim));
    pa_arena_counts c0, c1;
    pa_arena_counts_get(&c0);
    for (size_t i = PER_POOL; i < 2 * PER_POOL; i++)
        pa_free(b[i]);
    pa_arena_counts_get(&c1);
    cr_assert_eq(pa_pool_of(victim)->state, PA_POOL_FREE);
    cr_assert_eq(c1.pools_purged, c0.pools_purged + 1);
    cr_assert_not(resident(victim), "purged pool still resident");
    pa_large_free(b);
}

/* A pool released empty keeps its free list while it waits; taken again for its class it is
 * not carved again (its blocks come back in the order they were freed), and once purged it is. */
Test(arena, a_released_pool_keeps_its_carving_until_purged)
{
    pa_config.dirty_max = 1000;
    void **b = fill(4 * PER_POOL);                 /* four FULL pools */
    pa_pool *v1 = pa_pool_of(b[PER_POOL]), *v2 = pa_pool_of(b[2 * PER_POOL]);
    for (size_t i = PER_POOL; i < 2 * PER_POOL; i++)
        pa_free(b[i]);
    cr_assert_eq(v1->state, PA_POOL_FREE);
    cr_assert_eq(v1->carved, pa_meta(v1)->cls + 1);
    void *head = v1->free;
    cr_assert_eq(head, b[2 * PER_POOL - 1], "the last freed block heads the list");
    void *again[PER_POOL];
    again[0] = pa_malloc(512);                     /* the most recently released pool */
    cr_assert_eq(again[0], head, "taken back with its list, not carved again");

    for (size_t i = 2 * PER_POOL; i < 3 * PER_POOL; i++)
        pa_free(b[i]);                             /* v2 empties beside v1: released */
    cr_assert_eq(v2->state, PA_POOL_FREE);
    pa_arena_trim();
    cr_assert_eq(v2->carved, 0, "purged but still marked carved");
    for (size_t i = 1; i < PER_POOL; i++)
        again[i] = pa_malloc(512);                 /* the rest of v1 */
    void *fresh = pa_malloc(512);
    cr_assert_eq(pa_pool_of(fresh), v2);
    cr_assert_eq(fresh, pa_pool_page(v2), "carved again from its first block");
    check_heap();
    pa_free(fresh);
    for (size_t i = 0; i < PER_POOL; i++)
        pa_free(again[i]);
    pa_large_free(b);
}

Test(arena, purging_can_be_switched_off)
{
    pa_config.purge = 0;
    pa_config.dirty_max = 0;
    void **b = fill(4 * PER_POOL);
    void *victim = b[PER_POOL];
    for (size_t i = PER_POOL; i < 2 * PER_POOL; i++)
        pa_free(b[i]);
    cr_assert(resident(victim), "PYARENA_PURGE=0 still purged");
    pa_large_free(b);
}

Test(arena, empty_pools_decay_before_they_are_purged)
{
    pa_config.decay_ms = 100;
    void **b = fill(24 * PER_POOL);
    void *victim = b[PER_POOL];
    for (size_t i = PER_POOL; i < 2 * PER_POOL; i++)
        pa_free(b[i]);
    cr_assert_eq(pa_pool_of(victim)->state, PA_POOL_FREE);
    cr_assert(resident(victim), "purged at once although under the budget");
    struct timespec pause = { 0, 150 * 1000000 };
    nanosleep(&pause, NULL);
    for (size_t i = 3 * PER_POOL; i < 21 * PER_POOL; i++)  /* releases (the clock is read on */
        pa_free(b[i]);                                        /* one in 16) purge the old ones */
    cr_assert_not(resident(victim), "not purged after PYARENA_DECAY_MS");
    pa_large_free(b);
}

Test(arena, freeing_and_refilling_a_few_mib_in_a_loop_purges_nothing)
{
    size_t n = 4096;                 /* 2 MiB of 512-byte blocks: 512 pools, 8 arenas */
    void **b = pa_large_alloc(n * sizeof *b, 0);
    pa_arena_counts c0, c1;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < n; i++)
            b[i] = pa_malloc(512);
        for (size_t i = 0; i < n; i++)
            pa_free(b[i]);
        if (round == 0)
            pa_arena_counts_get(&c0);
    }
    pa_arena_counts_get(&c1);
    cr_assert_eq(c1.pools_purged, c0.pools_purged, "purged %zu pools", c1.pools_purged - c0.pools_purged);
    cr_assert_eq(c1.released, c0.released);
    cr_assert_eq(c1.allocated, c0.allocated, "arenas rebuilt");
    pa_large_free(b);
}

Test(arena, a_spike_over_the_budget_is_given_back_at_once)
{
    size_t n = 6 * PA_ARENA_POOLS * PER_POOL;    /* 6 arenas, 1.5 MiB over the budget */
    pa_config.dirty_max = 64;                    /* 256 KiB */
    void **b = fill(n);
    for (size_t i = 0; i < n; i++)
        pa_free(b[i]);
    pa_arena_counts c;
    pa_arena_counts_get(&c);
    cr_assert_leq(c.dirty_pools, 64, "%zu dirty pools left", c.dirty_pools);
    cr_assert_leq(c.current, 1 + pa_config.arena_cache + 1, "%zu arenas held", c.current);
    pa_large_free(b);
}
