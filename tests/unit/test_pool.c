/* test_pool.c — a pool's life: carving, FULL when exhausted, reattached by a free, back to
 * its arena when empty (all but the last pool of a class). */
#include "helpers.h"

#define CLS64_CAP (4096 / 64)

TestSuite(pool, .init = no_caches);

Test(pool, fills_one_page_then_detaches_and_moves_on)
{
    void *b[CLS64_CAP + 1];
    for (int i = 0; i < CLS64_CAP; i++) {
        b[i] = pa_malloc(64);
        cr_assert_eq(page_of(b[i]), page_of(b[0]), "block %d left the first pool early", i);
    }
    pa_pool *first = pa_pool_of(b[0]);
    cr_assert_eq(pa_pool_capacity(first), CLS64_CAP);
    cr_assert_eq(pa_pool_used(first), CLS64_CAP);
    b[CLS64_CAP] = pa_malloc(64);
    cr_assert_neq(page_of(b[CLS64_CAP]), page_of(b[0]), "a full pool handed out another block");
    cr_assert_eq(first->state, PA_POOL_FULL);
    cr_assert_neq(pa_tls_heap->cur[pa_class_of(64)], first, "a FULL pool left its ring");
    cr_assert_eq(pa_tls_heap->cur[pa_class_of(64)]->next, NULL);
    check_heap();

    /* It goes back on its ring, behind the current pool, once an eighth of it is free again. */
    for (int i = 0; i < CLS64_CAP / 8 - 1; i++)
        pa_free(b[i]);
    cr_assert_eq(first->state, PA_POOL_FULL, "reattached before an eighth was free");
    check_heap();
    pa_free(b[CLS64_CAP / 8 - 1]);
    cr_assert_eq(first->state, PA_POOL_ATTACHED);
    cr_assert_eq(pa_tls_heap->cur[pa_class_of(64)]->next, first);
    cr_assert_eq(pa_pool_free_count(first), CLS64_CAP / 8);
    check_heap();

    for (int i = CLS64_CAP / 8; i <= CLS64_CAP; i++)
        pa_free(b[i]);
    /* Both pools emptied: one went back to its arena, the last of the class stays. */
    pa_pool *second = pa_pool_of(b[CLS64_CAP]);
    int freed = (first->state == PA_POOL_FREE) + (second->state == PA_POOL_FREE);
    cr_assert_eq(freed, 1, "expected exactly one of the two empty pools returned");
    check_heap();
}

Test(pool, largest_class_packs_eight_blocks_a_pool)
{
    void *b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = pa_malloc(512);
        cr_assert_eq(page_of(b[i]), page_of(b[0]));
    }
    cr_assert_eq(pa_pool_capacity(pa_pool_of(b[0])), 8);
    for (int i = 0; i < 8; i++)
        pa_free(b[i]);
}

Test(pool, freed_blocks_are_reused_lifo)
{
    void *a = pa_malloc(100);
    pa_free(a);
    void *b = pa_malloc(100);
    cr_assert_eq(a, b);
    pa_free(b);
}

/* A pool's handouts move to its class's total when it goes back to its arena, and a pool taken
 * again (here by another class) counts from zero. */
Test(pool, allocation_counts_outlive_the_pools)
{
    enum { N = 200 };   /* 11 pools of 19 blocks of 208 bytes */
    void *b[N];
    size_t big = pa_class_of(200), other = pa_class_of(40);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++)
            b[i] = pa_malloc(200);
        for (int i = 0; i < N; i++)
            pa_free(b[i]);
    }
    pa_snapshot s;
    pa_snapshot_take(&s);
    cr_assert_eq(s.cls[big].in_use, 0);
    cr_assert_leq(s.cls[big].pools, 1, "empty pools went back, but for the pinned last one");
    cr_assert_eq(s.cls[big].allocs, 2 * N);
    cr_assert_eq(s.cls[big].frees, 2 * N);
    for (int i = 0; i < N; i++)
        b[i] = pa_malloc(40);   /* 48-byte blocks, in the pools the 208-byte ones gave back */
    pa_snapshot_take(&s);
    cr_assert_eq(s.cls[big].allocs, 2 * N);
    cr_assert_eq(s.cls[other].allocs, N);
    cr_assert_eq(s.cls[other].in_use, N);
    for (int i = 0; i < N; i++)
        pa_free(b[i]);
}

Test(pool, snapshot_counts_blocks_by_class)
{
    void *b[100];
    for (int i = 0; i < 100; i++)
        b[i] = pa_malloc(200);
    for (int i = 0; i < 40; i++)
        pa_free(b[i]);
    pa_snapshot s;
    pa_snapshot_take(&s);
    pa_class_snapshot *c = &s.cls[pa_class_of(200)];
    cr_assert_eq(c->size, 208);
    cr_assert_eq(c->in_use, 60);
    cr_assert_eq(c->allocs, 100);
    cr_assert_eq(c->frees, 40);
    cr_assert_eq(c->pools, (60 + 18) / 19, "208-byte pools hold 19 blocks");
    for (int i = 40; i < 100; i++)
        pa_free(b[i]);
}
