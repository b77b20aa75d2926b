/* test_cache.c — the thread cache: frees of a thread's own blocks wait in its bin for its next
 * mallocs, up to the cap, past which they go to their pools; the stats count cached blocks as
 * free; thread exit and malloc_trim empty the bins; PYARENA_CHECK=2 and PYARENA_THREAD_CACHE=0
 * turn it off. */
#include <pthread.h>
#include <string.h>

#include "helpers.h"

#define SIZE 64
#define CLS  pa_class_of(SIZE)
#define PER_POOL (4096 / SIZE)
#define CAP (PA_DEFAULT_THREAD_CACHE * PER_POOL)   /* 64 blocks of 64 bytes by default */

/* The first malloc of a class moves a fresh pool's whole list to the bin. */
Test(cache, an_empty_bin_takes_a_pools_whole_list)
{
    void *a = pa_malloc(SIZE);
    pa_pool *p = pa_pool_of(a);
    cr_assert_null(p->free, "the pool kept blocks on its list");
    cr_assert_eq(pa_pool_used(p), PER_POOL + p->pinned, "the pool counts cached blocks as used");
    cr_assert_eq(pa_bin_cached(pa_tls_heap, CLS), PER_POOL - 1);
    for (int i = 1; i < PER_POOL; i++)
        cr_assert_eq(pa_pool_of(pa_malloc(SIZE)), p, "block %d from another pool", i);
    cr_assert_null(pa_tls_heap->bin[CLS]);
    void *next = pa_malloc(SIZE);   /* a second pool's list */
    cr_assert_neq(pa_pool_of(next), p);
    cr_assert_eq(pa_bin_cached(pa_tls_heap, CLS), PER_POOL - 1);
    check_heap();
}

Test(cache, a_free_waits_in_the_bin_and_is_handed_out_first)
{
    void *a = pa_malloc(SIZE), *b = pa_malloc(SIZE);
    pa_pool *p = pa_pool_of(a);
    uint16_t used = pa_pool_used(p);
    uint32_t cached = pa_bin_cached(pa_tls_heap, CLS);
    pa_free(a);
    cr_assert_eq(pa_pool_used(p), used, "the free reached the pool");
    cr_assert_eq(pa_tls_heap->bin[CLS], a);
    cr_assert_eq(pa_bin_cached(pa_tls_heap, CLS), cached + 1);
    cr_assert_eq(pa_malloc(SIZE), a);
    cr_assert_eq(pa_bin_cached(pa_tls_heap, CLS), cached);
    pa_free(a);
    pa_free(b);
    cr_assert_eq(pa_tls_heap->bin[CLS], b, "last in, first out");
    cr_assert_eq(pa_bin_cached(pa_tls_heap, CLS), cached + 2);
}

Test(cache, frees_past_the_cap_go_to_their_pools)
{
    enum { N = CAP + 2 * PER_POOL };
    void *v[N];
    for (int i = 0; i < N; i++)
        v[i] = pa_malloc(SIZE);
    uint32_t left = pa_bin_cached(pa_tls_heap, CLS);   /* of the last pool's list */
    for (int i = 0; i < N; i++)
        pa_free(v[i]);
    cr_assert_eq(pa_tls_heap->cache_cap[CLS], CAP);
    cr_assert_eq(pa_bin_cached(pa_tls_heap, CLS), CAP, "the bin holds its cap");
    /* the first frees filled it, the others went to their pools */
    uint32_t fit = CAP - left;
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(pa_cache_holds(pa_tls_heap, CLS, v[i]), i < fit, "block %u", i);
    check_heap();
    /* the mallocs take the bin first, newest first */
    for (int i = (int)fit - 1; i >= 0; i--)
        cr_assert_eq(pa_malloc(SIZE), v[i]);
    check_heap();
}

Test(cache, stats_count_cached_blocks_as_free_and_their_handouts_once)
{
    enum { N = 100 };
    void *v[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)
            v[i] = pa_malloc(SIZE);
        for (int i = 0; i < N - 10; i++)
            pa_free(v[i]);
        pa_snapshot s;
        pa_snapshot_take(&s);
        cr_assert_eq(s.cls[CLS].in_use, 10 * (round + 1), "round %d: %zu in use", round,
                     s.cls[CLS].in_use);
        cr_assert_eq(s.cls[CLS].allocs, (size_t)N * (round + 1));
        cr_assert_eq(s.cls[CLS].frees, (size_t)(N - 10) * (round + 1));
    }
}

static bool on_ring(const pa_heap *h, size_t cls, const pa_pool *p)
{
    for (const pa_pool *r = h->cur[cls]; r != &pa_empty_pool && r; r = r->next)
        if (r == p)
            return true;
    return false;
}

/* An empty bin that finds its ring exhausted and a spare pool of its class at hand takes the
 * spare's whole list, and the spare goes FULL at once, without joining the ring (where the
 * next fill would only detach it again); its frees bring it back as any FULL pool's do. */
Test(cache, a_spare_of_the_class_fills_the_bin_without_joining_its_ring)
{
    enum { BIG = 512, PER = 4096 / BIG, N = 4 * PER };
    size_t cls = pa_class_of(BIG);
    pa_heap *h;
    void *v[N + 1];
    for (int i = 0; i < N; i++)
        v[i] = pa_malloc(BIG);
    for (int i = 0; i < N; i++)
        pa_free(v[i]);   /* the first pool's blocks fill the bin, the middle ones go spare */
    h = pa_tls_heap;
    int k = 0;   /* empty the bin, and the ring's last pool, which stayed pinned */
    while (k < N && (h->bin[cls] != NULL || h->cur[cls]->free != NULL))
        v[k++] = pa_malloc(BIG);
    pa_pool *q = h->spare;
    cr_assert(q != NULL && pa_meta(q)->cls == cls, "no spare of the class to test with");
    pa_arena_counts before, after;
    pa_arena_counts_get(&before);
    v[k] = pa_malloc(BIG);
    pa_arena_counts_get(&after);
    cr_assert_eq(pa_pool_of(v[k]), q, "the bin was not filled from the spare");
    cr_assert_eq(after.pools_taken, before.pools_taken);
    cr_assert_eq(q->state, PA_POOL_FULL, "the spare went on its ring, not FULL");
    cr_assert(!on_ring(h, cls, q));
    cr_assert(atomic_load(&q->thread_free) & PA_TF_DETACHED);
    int cached = 0;
    for (pa_block *b = h->bin[cls]; b; b = b->next, cached++)
        cr_assert_eq(pa_pool_of(b), q, "a cached block of another pool");
    cr_assert_eq(cached, PER - 1);
    check_heap();
    for (int i = 0; i <= k; i++)
        pa_free(v[i]);
    check_heap();
}

static void *churn_and_exit(void *arg)
{
    void *v[500];
    for (int i = 0; i < 500; i++)
        v[i] = pa_malloc(SIZE);
    for (int i = 0; i < 500; i++)
        pa_free(v[i]);
    *(pa_heap **)arg = pa_tls_heap;
    return NULL;
}

/* Frees the blocks of v[0 .. PER_POOL) (one pool's) in an order that starts and ends inside
 * the pool, none of them to the bin. */
static void free_scrambled(void **v, int count)
{
    for (int k = 0; k < count; k++)
        pa_free(v[(5 + 7 * k) % PER_POOL]);   /* 7 is prime to 64: every block once */
}

/* A pool's blocks freed in a scrambled order, all of them, are handed out again lowest
 * address first (without the relinking, in the reverse of the frees). */
Test(cache, a_wholly_free_pool_is_handed_out_in_address_order)
{
    enum { N = CAP + 2 * PER_POOL };
    void *v[N];
    for (int i = 0; i < N; i++)
        v[i] = pa_malloc(SIZE);
    for (int i = 0; i < CAP; i++)
        pa_free(v[i]);   /* the bin is full from here on */
    char *page = (char *)page_of(v[CAP]);
    cr_assert_eq(page_of(v[CAP + PER_POOL - 1]), (uintptr_t)page, "a pool per PER_POOL blocks");
    free_scrambled(v + CAP, PER_POOL);
    free_scrambled(v + CAP + PER_POOL, PER_POOL);
    for (int i = 0; i < CAP; i++)
        pa_malloc(SIZE);   /* the bin's blocks */
    char *first = pa_malloc(SIZE);
    cr_assert_eq(page_of(first), (uintptr_t)first, "the fill starts at the page's first block");
    for (int i = 1; i < PER_POOL; i++) {
        char *b = pa_malloc(SIZE);
        cr_assert_eq(b, first + i * SIZE, "block %d out of order", i);
    }
    check_heap();
}

/* Freed first in, first out, a pool's list runs backward from its last block. A pool of 8
 * blocks (512 bytes) is relinked forward for the bin (bigger ones are handed out as they lie,
 * and spare.c takes them from the top down). */
Test(cache, a_pool_of_eight_freed_in_order_is_handed_out_forward)
{
    enum { BIG = 512, PER = 4096 / BIG, N = 4 * PER };
    size_t cls = pa_class_of(BIG);
    void *v[N];
    for (int i = 0; i < N; i++)
        v[i] = pa_malloc(BIG);
    for (int i = 0; i < N; i++)
        pa_free(v[i]);   /* the first pool's fill the bin, the others go spare */
    pa_heap *h = pa_tls_heap;
    int k = 0;   /* empty the bin, and the ring's last pool */
    while (k < N && (h->bin[cls] != NULL || h->cur[cls]->free != NULL))
        v[k++] = pa_malloc(BIG);
    pa_pool *q = h->spare;
    char *page = pa_pool_page(q);
    cr_assert(pa_meta(q)->cls == cls && q->free == (pa_block *)(page + (PER - 1) * BIG),
              "no spare of the class with a backward list to test with");
    for (int i = 0; i < PER; i++)
        cr_assert_eq(v[k + i] = pa_malloc(BIG), page + i * BIG, "block %d out of order", i);
    check_heap();
    for (int i = 0; i < k + PER; i++)
        pa_free(v[i]);
    check_heap();
}

/* A pool with a few blocks free (under a quarter of it) hands them out lowest first too. */
Test(cache, a_pool_with_few_free_blocks_hands_them_out_in_address_order)
{
    enum { N = 2 * PER_POOL, FEW = PER_POOL / 4 - 2 };
    void *v[N];
    for (int i = 0; i < N; i++)
        v[i] = pa_malloc(SIZE);
    for (int i = PER_POOL; i < N; i++)
        pa_free(v[i]);   /* the second pool's blocks fill the bin */
    cr_assert_eq(pa_bin_cached(pa_tls_heap, CLS), CAP);
    free_scrambled(v, FEW);   /* onto the first pool's list, in that order */
    for (int i = 0; i < CAP; i++)
        pa_malloc(SIZE);
    char *prev = NULL;
    int found = 0;
    for (int i = 0; i < FEW; i++) {
        char *b = pa_malloc(SIZE);
        cr_assert_eq(page_of(b), page_of(v[0]), "block %d from another pool", i);
        cr_assert_gt(b, prev, "block %d out of order", i);
        for (int k = 0; k < FEW; k++)
            found += b == v[(5 + 7 * k) % PER_POOL];
        prev = b;
    }
    cr_assert_eq(found, FEW, "the blocks handed out are not the ones freed");
    check_heap();
}

/* A write after free that turns a pool's list into a loop must not hang the fill's walk: the
 * list is handed over as it is, as before fills sorted anything. */
Test(cache, a_looping_list_is_not_walked_forever, .timeout = 20)
{
    enum { N = 2 * PER_POOL, FEW = PER_POOL / 8 + 2 };   /* enough to reattach the pool */
    void *v[N];
    for (int i = 0; i < N; i++)
        v[i] = pa_malloc(SIZE);
    for (int i = PER_POOL; i < N; i++)
        pa_free(v[i]);
    free_scrambled(v, FEW);
    pa_pool *p = pa_pool_of(v[0]);
    pa_block *head = p->free;
    cr_assert_not_null(head);
    head->next = head;   /* the program's write after free */
    for (int i = 0; i < CAP; i++)
        pa_malloc(SIZE);
    cr_assert_eq(pa_malloc(SIZE), head, "the list was not handed over as it was");
}

static void level_0(void)
{
    pa_config.check = 0;
    pa_check_init();
}

/* At level 0 a double free goes unseen, and the pool's count then says every block is free
 * while one is still live. The fill that relinks a wholly free pool must not link that one
 * in: it has no free mark, so it is left out, and the double-freed block, on the pool's list
 * twice, is linked once. */
Test(cache, a_live_block_is_not_relinked_after_an_unseen_double_free, .init = level_0)
{
    enum { N = CAP + PER_POOL };
    char *v[N];
    for (int i = 0; i < N; i++)
        v[i] = pa_malloc(SIZE);
    char *live = v[N - 1], **b = v + CAP;
    strcpy(live, "still mine");
    for (int i = 0; i < CAP; i++)
        pa_free(v[i]);   /* the bin is full from here on */
    pa_free(b[3]);
    pa_free(b[3]);       /* the program's bug: its count now covers `live` too */
    for (int k = 0; k < PER_POOL; k++)   /* the rest but `live`, the last freed mid-page */
        if ((5 + 7 * k) % PER_POOL != 3 && (5 + 7 * k) % PER_POOL != PER_POOL - 1)
            pa_free(b[(5 + 7 * k) % PER_POOL]);
    pa_pool *p = pa_pool_of(live);
    cr_assert_eq(pa_pool_used(p), p->pinned, "the counts do not say all free");
    for (int i = 0; i < CAP; i++)
        pa_malloc(SIZE);
    char *got[PER_POOL];
    for (int i = 0; i < PER_POOL; i++) {
        got[i] = pa_malloc(SIZE);
        if (i == 0)   /* the fill linked every block but `live`, b[3] once: one is out now */
            cr_assert_eq(pa_bin_cached(pa_tls_heap, CLS), PER_POOL - 2,
                         "the bin counts blocks it does not hold");
        cr_assert_neq(got[i], live, "the live block was handed out (malloc %d)", i);
        for (int j = 0; j < i; j++)
            cr_assert_neq(got[i], got[j], "malloc %d and %d returned one block", j, i);
    }
    cr_assert_str_eq(live, "still mine");
}

static void count_pools_of(pa_arena *a, void *arg)
{
    void **ctx = arg;
    for (size_t i = 0; i < PA_ARENA_POOLS; i++)
        if (pa_arena_pool(a, i)->state != PA_POOL_FREE && pa_pool_owner(pa_arena_pool(a, i)) == ctx[0])
            (*(size_t *)ctx[1])++;
}

Test(cache, thread_exit_empties_the_bins_and_gives_the_pools_back)
{
    pa_heap *h = NULL;
    pthread_t t;
    pthread_create(&t, NULL, churn_and_exit, &h);
    pthread_join(t, NULL);
    cr_assert_not_null(h);
    for (size_t c = 0; c < PA_NCLASSES; c++)
        cr_assert_null(h->bin[c], "class %zu still cached", c);
    size_t pools = 0;
    void *ctx[2] = { h, &pools };
    pa_arena_foreach(count_pools_of, ctx, NULL);
    cr_assert_eq(pools, 0, "%zu pools kept by an exited thread", pools);
}

Test(cache, malloc_trim_empties_the_bins)
{
    void *v[300];
    for (int i = 0; i < 300; i++)
        v[i] = pa_malloc(SIZE);
    for (int i = 0; i < 300; i++)
        pa_free(v[i]);
    cr_assert_gt(pa_bin_cached(pa_tls_heap, CLS), 0);
    pa_api_trim();
    cr_assert_null(pa_tls_heap->bin[CLS]);
    cr_assert_eq(pa_bin_cached(pa_tls_heap, CLS), 0);
    pa_snapshot s;
    pa_snapshot_take(&s);
    cr_assert_eq(s.cls[CLS].pools, 0, "every pool of the class went back");
    check_heap();
}

static void cache_off(void)
{
    pa_config.thread_cache = 0;
}

Test(cache, can_be_switched_off, .init = cache_off)
{
    void *a = pa_malloc(SIZE), *b = pa_malloc(SIZE);
    pa_pool *p = pa_pool_of(a);
    uint16_t used = pa_pool_used(p);
    pa_free(a);
    cr_assert_eq(pa_pool_used(p), used - 1, "the free did not reach the pool");
    cr_assert_null(pa_tls_heap->bin[CLS]);
    cr_assert_eq(pa_tls_heap->cache_cap[CLS], 0);
    pa_free(b);
}

static void level_2(void)
{
    pa_config.check = 2;
    pa_check_init();
}

Test(cache, is_off_under_check_level_2, .init = level_2)
{
    void *a = pa_malloc(SIZE), *b = pa_malloc(SIZE);
    pa_free(a);
    for (size_t c = 0; c < PA_NCLASSES; c++)
        cr_assert_eq(pa_tls_heap->cache_cap[c], 0);
    cr_assert_null(pa_tls_heap->bin[CLS]);
    pa_free(b);
}

/* A pool of the largest class holds 8 blocks, of the smallest 256, of 48 bytes 85. */
Test(cache, caps_are_pools_worth_of_each_class)
{
    pa_free(pa_malloc(1));
    cr_assert_eq(pa_tls_heap->cache_cap[0], PA_DEFAULT_THREAD_CACHE * 256);
    cr_assert_eq(pa_tls_heap->cache_cap[PA_NCLASSES - 1], PA_DEFAULT_THREAD_CACHE * 8);
    cr_assert_eq(pa_tls_heap->cache_cap[pa_class_of(48)], PA_DEFAULT_THREAD_CACHE * 85);
}
