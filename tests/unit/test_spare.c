/* test_spare.c — spare pools (spare.c): a pool that goes empty stays with its heap, off its
 * ring, and is taken again for the next pool of any class, before the arenas, lowest first (or
 * from the top down when their lists run backward); past PYARENA_SPARE_POOLS the top ones go
 * back, and so do as many as a whole period left untouched; all of them go back at
 * malloc_trim, an idle thread's too, and an idle thread's after a decay time; the stats keep
 * their allocation counts; a double free into one is caught. Without a thread cache, so that
 * every free reaches its pool at once. */
#include <pthread.h>
#include <signal.h>

#include "helpers.h"

static void spares_on(void)
{
    pa_config.thread_cache = 0;   /* spare_pools keeps its default */
}

TestSuite(spare, .init = spares_on);

#define CAP64 64   /* blocks of 64 bytes in a pool */

static size_t pools_taken(void)
{
    pa_arena_counts c;
    pa_arena_counts_get(&c);
    return c.pools_taken;
}

static bool on_spare_list(const pa_heap *h, const pa_pool *p)
{
    for (const pa_pool *s = h->spare; s; s = s->next)
        if (s == p)
            return true;
    return false;
}

/* Fills n pools of 64-byte blocks (b[i * CAP64 ...]) and returns the first block of each. */
static void fill_pools(void **b, int n)
{
    for (int i = 0; i < n * CAP64; i++)
        b[i] = pa_malloc(64);
    for (int k = 0; k < n; k++)
        cr_assert_eq(page_of(b[k * CAP64]), page_of(b[k * CAP64 + CAP64 - 1]), "pool %d split", k);
}

static void free_pool(void **b, int k)
{
    for (int i = 0; i < CAP64; i++)
        pa_free(b[k * CAP64 + i]);
}

Test(spare, an_emptied_pool_is_kept_and_taken_again_for_its_class)
{
    void *b[3 * CAP64];
    fill_pools(b, 3);
    pa_heap *h = pa_tls_heap;
    pa_pool *first = pa_pool_of(b[0]);
    free_pool(b, 0);
    cr_assert_eq(first->state, PA_POOL_ATTACHED, "an emptied pool went back to its arena");
    cr_assert_eq(h->nspare, 1);
    cr_assert(on_spare_list(h, first));
    cr_assert_eq(pa_pool_free_count(first), CAP64, "a spare pool holds every block");
    check_heap();   /* and it is on no ring */

    size_t taken = pools_taken();
    void *c[CAP64];
    for (int i = 0; i < CAP64; i++)   /* the ring's head is full: the next pool is needed */
        c[i] = pa_malloc(64);
    cr_assert_eq(pools_taken(), taken, "the arena served a pool while a spare was kept");
    cr_assert_eq(h->nspare, 0);
    for (int i = 0; i < CAP64; i++)
        cr_assert_eq(page_of(c[i]), page_of(b[0]), "block %d is not the spare pool's", i);
    check_heap();
    for (int i = 0; i < CAP64; i++)
        pa_free(c[i]);
    for (int k = 1; k < 3; k++)
        free_pool(b, k);
    check_heap();
}

Test(spare, a_spare_pool_serves_another_class)
{
    void *b[2 * CAP64];
    fill_pools(b, 2);
    free_pool(b, 0);
    cr_assert_eq(pa_tls_heap->nspare, 1);
    size_t taken = pools_taken();
    void *c[32];
    for (int i = 0; i < 32; i++) {   /* 256-byte blocks: 16 a pool, carved anew */
        c[i] = pa_malloc(250);
        memset(c[i], 0xab, 250);
    }
    cr_assert_eq(pa_tls_heap->nspare, 0);
    cr_assert_eq(page_of(c[0]), page_of(b[0]), "the new class did not take the spare pool");
    cr_assert_eq(pa_pool_block_size(pa_pool_of(c[0])), 256);
    cr_assert_eq(pools_taken(), taken + 1, "one pool from the arena, one spare");
    check_heap();
    for (int i = 0; i < 32; i++)
        pa_free(c[i]);
    free_pool(b, 1);
}

static int by_address(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t)*(void *const *)x, b = (uintptr_t)*(void *const *)y;
    return a < b ? -1 : a > b;
}

/* Fills n pools of 64-byte blocks and puts their first blocks in p[], lowest first. */
static void fill_sorted(void **b, int n, void **p)
{
    fill_pools(b, n);
    for (int k = 0; k < n; k++)
        p[k] = b[k * CAP64];
    qsort(p, (size_t)n, sizeof *p, by_address);
}

/* The blocks of the pool of first block f (from b[]), last handed out first: its list then
 * runs forward. */
static void free_pool_reversed(void *f)
{
    for (int i = CAP64 - 1; i >= 0; i--)
        pa_free((char *)f + i * 64);
}

Test(spare, past_the_cap_the_top_ones_go_back)
{
    pa_config.spare_pools = 2;
    void *b[5 * CAP64], *p[5];
    fill_sorted(b, 5, p);
    for (int k = 3; k >= 0; k--)   /* falling: each goes to the bottom */
        free_pool_reversed(p[k]);
    pa_heap *h = pa_tls_heap;
    cr_assert_eq(h->nspare, 2);
    cr_assert_eq(pa_pool_of(p[3])->state, PA_POOL_FREE, "the top spare stayed");
    cr_assert_eq(pa_pool_of(p[2])->state, PA_POOL_FREE);
    cr_assert(on_spare_list(h, pa_pool_of(p[0])));
    cr_assert(on_spare_list(h, pa_pool_of(p[1])));
    cr_assert_eq(h->spare, pa_pool_of(p[0]), "the lowest is taken first");
    check_heap();
    free_pool_reversed(p[4]);
}

/* Pools emptied in rising or in falling order are taken again lowest first, so that a batch
 * freed in either order comes back at rising addresses. */
static void taken_rising(bool falling)
{
    void *b[5 * CAP64], *p[5], *c[4 * CAP64];
    fill_sorted(b, 5, p);   /* p[4] stays live: the ring's head is full */
    for (int k = 0; k < 4; k++)
        free_pool_reversed(p[falling ? 3 - k : k]);
    cr_assert_eq(pa_tls_heap->nspare, 4);
    for (int i = 0; i < 4 * CAP64; i++)
        c[i] = pa_malloc(64);
    for (int k = 0; k < 4; k++)
        cr_assert_eq(page_of(c[k * CAP64]), page_of(p[k]), "pool %d out of order", k);
    for (int i = 0; i < 4 * CAP64; i++)
        cr_assert_eq(c[i], (char *)c[i / CAP64 * CAP64] + i % CAP64 * 64, "block %d", i);
    check_heap();
}

Test(spare, pools_emptied_rising_are_taken_rising) { taken_rising(false); }
Test(spare, pools_emptied_falling_are_taken_rising) { taken_rising(true); }

/* Freed first in, first out, a pool of 64 blocks has its list backward (the fill hands it out
 * as it lies: cache.c): such pools are taken from the top down, so that the batch comes back
 * falling throughout rather than each pool backward in a rising sequence. */
Test(spare, pools_with_backward_lists_are_taken_falling)
{
    void *b[5 * CAP64], *p[5], *c[4 * CAP64];
    fill_sorted(b, 5, p);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < CAP64; i++)
            pa_free((char *)p[k] + i * 64);
    for (int i = 0; i < 4 * CAP64; i++)
        c[i] = pa_malloc(64);
    for (int i = 0; i < 4 * CAP64; i++)
        cr_assert_eq(c[i], (char *)p[3 - i / CAP64] + (CAP64 - 1 - i % CAP64) * 64, "block %d", i);
    check_heap();
}

/* 17 blocks of 256 bytes: the class's pinned pool holds 16, the 17th takes a pool, which goes
 * empty again (a spare) when they are freed. */
static void trip_of_256(void)
{
    void *c[17];
    for (int i = 0; i < 17; i++)
        c[i] = pa_malloc(250);
    for (int i = 0; i < 17; i++)
        pa_free(c[i]);
}

Test(spare, spares_left_untouched_for_a_period_go_back)
{
    trip_of_256();   /* the 256-byte class has its pinned pool (its other one, a spare, goes
                        to the 64-byte class below) */
    void *b[4 * CAP64];
    fill_pools(b, 4);
    for (int k = 0; k < 3; k++)
        free_pool(b, k);
    pa_heap *h = pa_tls_heap;
    cr_assert_eq(h->nspare, 3);
    /* Every trip takes the bottom spare and gives it back: two events on the list, none for
     * the other two. */
    pa_pool *used = h->spare;
    for (int round = 0; round < 2 * PA_SPARE_PERIOD / 2; round++)
        trip_of_256();
    for (int k = 0; k < 3; k++)
        if (pa_pool_of(b[k * CAP64]) != used)
            cr_assert_eq(pa_pool_of(b[k * CAP64])->state, PA_POOL_FREE,
                         "spare pool %d stayed through two periods unused", k);
    cr_assert_eq(h->nspare, 1, "only the pool the trips use may stay");
    cr_assert_eq(h->spare, used, "the trips' pool was given back");
    check_heap();
    free_pool(b, 3);
}

Test(spare, malloc_trim_gives_every_spare_back)
{
    void *b[3 * CAP64];
    fill_pools(b, 3);
    free_pool(b, 0);
    free_pool(b, 1);
    cr_assert_eq(pa_tls_heap->nspare, 2);
    pa_api_trim();
    cr_assert_eq(pa_tls_heap->nspare, 0);
    cr_assert_null(pa_tls_heap->spare);
    cr_assert_eq(pa_pool_of(b[0])->state, PA_POOL_FREE);
    cr_assert_eq(pa_pool_of(b[CAP64])->state, PA_POOL_FREE);
    free_pool(b, 2);
}

Test(spare, allocation_counts_survive_a_pool_changing_class)
{
    void *b[2 * CAP64];
    fill_pools(b, 2);
    free_pool(b, 0);   /* a spare, with its 64 handouts */
    void *c[16];
    for (int i = 0; i < 16; i++)
        c[i] = pa_malloc(250);   /* takes it for the 256-byte class */
    cr_assert_eq(page_of(c[0]), page_of(b[0]));
    pa_snapshot s;
    pa_snapshot_take(&s);
    cr_assert_eq(s.cls[pa_class_of(64)].allocs, 2 * CAP64);
    cr_assert_eq(s.cls[pa_class_of(64)].frees, CAP64);
    cr_assert_eq(s.cls[pa_class_of(250)].allocs, 16);
    cr_assert_eq(s.cls[pa_class_of(250)].in_use, 16);
    for (int i = 0; i < 16; i++)
        pa_free(c[i]);
    free_pool(b, 1);
}

Test(spare, a_double_free_into_a_spare_pool_aborts, .signal = SIGABRT)
{
    void *b[2 * CAP64];
    fill_pools(b, 2);
    free_pool(b, 0);
    cr_assert(on_spare_list(pa_tls_heap, pa_pool_of(b[0])));
    pa_free(b[5]);
}

/* A thread that made spares and then only waits keeps them; malloc_trim on another thread
 * gives them back. */
static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static int idle_stage;   /* 1: spares made; 2: done, exit; 3: make one event; 4: made */
static pa_pool *idle_pools[2];
static pa_heap *idle_heap;

static void *make_spares_then_wait(void *arg)
{
    (void)arg;
    void *b[3 * CAP64];
    fill_pools(b, 3);
    free_pool(b, 0);
    free_pool(b, 1);
    pthread_mutex_lock(&idle_mu);
    idle_heap = pa_tls_heap;
    idle_pools[0] = pa_pool_of(b[0]);
    idle_pools[1] = pa_pool_of(b[CAP64]);
    idle_stage = 1;
    pthread_cond_broadcast(&idle_cv);
    while (idle_stage != 2) {
        if (idle_stage == 3) {   /* pool 2 is full: this takes a spare (which stays, pinned) */
            pa_free(pa_malloc(64));
            idle_stage = 4;
            pthread_cond_broadcast(&idle_cv);
        }
        pthread_cond_wait(&idle_cv, &idle_mu);
    }
    pthread_mutex_unlock(&idle_mu);
    free_pool(b, 2);
    return NULL;
}

static void idle_thread_start(pthread_t *t)
{
    cr_assert_eq(pthread_create(t, NULL, make_spares_then_wait, NULL), 0);
    pthread_mutex_lock(&idle_mu);
    while (idle_stage != 1)
        pthread_cond_wait(&idle_cv, &idle_mu);
    pthread_mutex_unlock(&idle_mu);
    cr_assert_eq(idle_heap->nspare, 2);
}

static void idle_thread_stage(int stage, int until)
{
    pthread_mutex_lock(&idle_mu);
    idle_stage = stage;
    pthread_cond_broadcast(&idle_cv);
    while (idle_stage != until)
        pthread_cond_wait(&idle_cv, &idle_mu);
    pthread_mutex_unlock(&idle_mu);
}

static void idle_thread_end(pthread_t t)
{
    pthread_mutex_lock(&idle_mu);
    idle_stage = 2;
    pthread_cond_broadcast(&idle_cv);
    pthread_mutex_unlock(&idle_mu);
    cr_assert_eq(pthread_join(t, NULL), 0);
}

Test(spare, malloc_trim_reaches_an_idle_thread_s_spares)
{
    pthread_t t;
    idle_thread_start(&t);
    cr_assert_eq(idle_pools[0]->state, PA_POOL_ATTACHED);
    pa_api_trim();
    cr_assert_eq(idle_heap->nspare, 0, "the idle thread kept its spares through malloc_trim");
    cr_assert_eq(idle_pools[0]->state, PA_POOL_FREE);
    cr_assert_eq(idle_pools[1]->state, PA_POOL_FREE);
    idle_thread_end(t);
}

/* A sweep flags every other heap with spares; the next gives back the lists of those that made
 * no put or take in between. */
Test(spare, a_second_sweep_gives_back_an_idle_thread_s_spares)
{
    pthread_t t;
    idle_thread_start(&t);
    pa_spare_sweep(pa_tls_heap);
    cr_assert_eq(idle_heap->nspare, 2, "the first sweep gave back spares not yet idle");
    idle_thread_stage(3, 4);   /* an event between the sweeps: the take of one spare */
    cr_assert_eq(idle_heap->nspare, 1);
    pa_spare_sweep(pa_tls_heap);
    cr_assert_eq(idle_heap->nspare, 1, "a sweep gave back the spares of a heap in use");
    pa_spare_sweep(pa_tls_heap);
    cr_assert_eq(idle_heap->nspare, 0, "a sweep kept the spares of a heap idle since the last");
    cr_assert_eq(idle_pools[0]->state + idle_pools[1]->state, PA_POOL_ATTACHED + PA_POOL_FREE,
                 "the spare left was not given back");
    idle_thread_end(t);
}

/* The sweeps are due once per PYARENA_DECAY_MS, on the pool trips of any thread. */
Test(spare, an_idle_thread_s_spares_go_back_while_another_makes_pool_trips)
{
    pa_config.decay_ms = 5;
    pthread_t t;
    idle_thread_start(&t);
    void *b[CAP64 + 1];
    b[CAP64] = pa_malloc(64);   /* its pool stays: the trips below empty one pool after another */
    uint64_t deadline = pa_os_now_ms() + 5000;
    size_t trips = 0;
    while (idle_heap->nspare > 0 && pa_os_now_ms() < deadline) {
        for (int i = 0; i < CAP64; i++)
            b[i] = pa_malloc(64);
        for (int i = 0; i < CAP64; i++)
            pa_free(b[i]);
        trips++;
    }
    cr_assert_eq(idle_heap->nspare, 0, "the idle thread kept its spares through %zu trips", trips);
    cr_assert_eq(idle_pools[0]->state, PA_POOL_FREE);
    pa_free(b[CAP64]);
    idle_thread_end(t);
}
