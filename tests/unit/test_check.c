/* test_check.c — bad input aborts (PYARENA_CHECK 1 and 2) and nothing else does: double
 * frees, pointers that start no block, freed blocks passed to realloc, writes after free. */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>

#include "helpers.h"

/* Start-up already ran (the archive's constructor) but nothing was allocated yet: choose the
 * level as start-up would have. */
static void level(unsigned n)
{
    pa_config.check = n;
    pa_check_init();
    cr_assert_eq(pa_hot.check_level, n);
}

/* A large request through the inline malloc, which GCC would otherwise also expand for the
 * small path with the constant's out-of-range class (-Warray-bounds). */
static __attribute__((noinline)) void *large(size_t n)
{
    return pa_malloc(n);
}

Test(check, double_free_aborts, .signal = SIGABRT)
{
    void *p = pa_malloc(48);
    void *keep = pa_malloc(48);   /* the pool stays in use */
    pa_free(p);
    pa_free(p);
    (void)keep;
}

/* Carving marks every block free: a pointer to one never handed out is a double free too. */
Test(check, free_of_a_block_never_handed_out_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(400);          /* a class nothing else uses here: a freshly carved pool */
    pa_free(p + 416);                  /* the next block of the page */
}

static void *free_it(void *p)
{
    pa_free(p);
    return NULL;
}

/* Runs fn(arg) on a new thread and waits for it. */
static void on_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_create(&t, NULL, fn, arg);
    pthread_join(t, NULL);
}

/* A remote free waits in the freeing thread's batch (heap.c) before it reaches the pool: a
 * second free of it, by that thread or any other, is still a double free. */
static void *free_twice(void *p)
{
    pa_free(p);   /* no assertion here: a failing one must not pass for the expected abort */
    pa_free(p);
    return NULL;
}

static sem_t batched, done;

static void *free_and_stay(void *p)
{
    pa_free(p);
    sem_post(&batched);
    sem_wait(&done);
    return NULL;
}

Test(check, double_free_from_another_thread_aborts, .signal = SIGABRT)
{
    void *p = pa_malloc(100), *keep = pa_malloc(100);
    pa_free(p);
    on_thread(free_it, p);
    (void)keep;
}

Test(check, double_free_of_a_batched_remote_free_aborts, .signal = SIGABRT)
{
    /* the owner is this thread's heap; the frees come from a helper that batches them */
    void *p = pa_malloc(100), *keep = pa_malloc(100);
    on_thread(free_twice, p);
    (void)keep;
}

Test(check, double_free_of_a_block_batched_by_another_thread_aborts, .signal = SIGABRT)
{
    void *p = pa_malloc(100), *keep = pa_malloc(100);
    sem_init(&batched, 0, 0);
    sem_init(&done, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, free_and_stay, p);   /* batches p, then waits, alive */
    sem_wait(&batched);
    cr_assert_null(pa_tf_stack(atomic_load(&pa_pool_of(p)->thread_free)),
                   "the helper's free was pushed, not batched");
    on_thread(free_it, p);                         /* a third thread frees p again */
    (void)keep;
}

Test(check, interior_pointer_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(48);
    pa_free(p + 16);
}

Test(check, misaligned_pointer_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(64);
    pa_free(p + 3);
}

Test(check, pointer_past_the_last_block_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(48);   /* 85 blocks: 4080 bytes, 16 bytes of slack at the page end */
    char *page = (char *)((uintptr_t)p & ~(uintptr_t)4095);
    pa_free(page + 85 * 48);
}

Test(check, pointer_into_a_free_pool_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(64);
    pa_free(p + 4096 * 5);     /* same arena, a pool never handed out */
}

Test(check, pointer_into_the_region_tables_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(64);
    pa_free(pa_pool_of(p));    /* a descriptor: inside the region, but no block */
}

Test(check, pointer_into_the_arena_headers_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(64);
    pa_free(pa_arena_of(p));
}

Test(check, realloc_of_a_freed_block_aborts, .signal = SIGABRT)
{
    void *p = pa_malloc(40), *keep = pa_malloc(40);
    pa_free(p);
    pa_api_realloc(p, 44);
    (void)keep;
}

/* A size of the same class: realloc would return the pointer itself, were it not checked. */
Test(check, realloc_of_a_pointer_inside_a_block_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(64);
    pa_api_realloc(p + 16, 60);
}

Test(check, realloc_of_a_pointer_into_a_free_pool_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(64);
    pa_api_realloc(p + 5 * 4096, 8);   /* a page of the arena no pool uses yet */
}

Test(check, usable_size_of_a_pointer_inside_a_block_aborts, .signal = SIGABRT)
{
    char *p = pa_malloc(64);
    pa_api_usable_size(p + 16);
}

Test(check, usable_size_of_a_freed_block_aborts, .signal = SIGABRT)
{
    void *p = pa_malloc(40), *keep = pa_malloc(40);
    pa_free(p);
    pa_api_usable_size(p);
    (void)keep;
}

Test(check, realloc_in_place_of_a_live_block_whose_data_matches_the_mark)
{
    pa_block *b = pa_malloc(32);
    b->mark = pa_free_mark(b);   /* the program's data, not a free */
    cr_assert_eq(pa_api_realloc(b, 30), b);
    cr_assert_eq(pa_api_usable_size(b), 32);
    pa_free(b);
}

Test(check, misaligned_large_pointer_aborts, .signal = SIGABRT)
{
    char *p = large(5000);
    pa_free(p + 8);
}

/* The large path: a freed block carries the mark (level 1), and under level 2 the ledger knows
 * every live block. */
Test(check, double_free_of_a_large_block_aborts, .signal = SIGABRT)
{
    char *p = large(5000);
    pa_free(p);
    pa_free(p);
}

Test(check, a_large_block_handed_out_again_carries_no_mark)
{
    for (int i = 0; i < 1000; i++) {   /* jemalloc hands the same block out again and again */
        pa_block *b = large(5000);
        cr_assert_neq(b->mark, pa_large_mark(b));
        pa_free(b);
    }
}

/* jemalloc leaves a freed block's mark in memory it later hands out inside bigger blocks, and
 * a program may copy those bytes it never wrote into a large block's second word: another
 * block's mark is no double free. */
Test(check, another_large_blocks_mark_copied_into_a_block_is_no_double_free)
{
    pa_block *x = large(5000), *y = large(5000);
    pa_free(x);
    y->mark = x->mark;   /* what the freed block holds (read here on purpose) */
    pa_free(y);
}

/* Turns the ledger on, as start-up does under PYARENA_CHECK=2 (nothing large handed out yet). */
static void ledger(void)
{
    cr_assert(pa_large_none_yet());
    level(2);
    pa_ledger_start(pa_large_none_yet());
    cr_assert(pa_ledger_on);
}

Test(check, ledger_catches_an_interior_large_pointer, .signal = SIGABRT)
{
    ledger();
    char *p = large(5000);
    pa_free(p + 16);
}

Test(check, ledger_catches_a_double_free_whose_mark_was_overwritten, .signal = SIGABRT)
{
    ledger();
    pa_block *b = large(5000);
    pa_free(b);
    b->mark = 0;   /* a write after free erased it */
    pa_free(b);
}

Test(check, ledger_catches_a_pointer_no_allocator_gave_out, .signal = SIGABRT)
{
    ledger();
    static char foreign[64] __attribute__((aligned(16)));
    pa_free(foreign + 16);
}

Test(check, ledger_catches_the_old_pointer_of_a_moved_realloc, .signal = SIGABRT)
{
    ledger();
    char *p = large(5000);
    char *q = pa_api_realloc(p, 50000);
    cr_assert_neq(q, p, "under the ledger a large realloc always moves");
    pa_free(p);
}

/* Many blocks, several rehashes, freed entries dropped by them: nothing live is ever
 * forgotten, and what realloc and malloc_usable_size see is right. */
Test(check, ledger_keeps_every_live_block_through_rehashes)
{
    ledger();
    enum { N = 20000 };
    static char *b[N];
    uint64_t rng = 7;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            b[i] = large(600 + (size_t)(i % 7) * 300);
            cr_assert_not_null(b[i]);
            memset(b[i], i & 0xff, 600);
        }
        for (int i = 0; i < N; i += 2) {   /* every other one, in a scrambled order */
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            int j = (int)((rng >> 33) % (N / 2)) * 2;
            if (b[j] == NULL)
                continue;
            pa_free(b[j]);
            b[j] = NULL;
        }
        for (int i = 1; i < N; i += 2) {
            cr_assert_geq(pa_api_usable_size(b[i]), 600);
            b[i] = pa_api_realloc(b[i], 9000);
            cr_assert_eq(b[i][599], (char)(i & 0xff), "realloc lost the contents");
        }
        for (int i = 0; i < N; i++)
            pa_free(b[i]);
    }
}

/* realloc and malloc_usable_size ask the ledger too, and it never reads the pointer. */
Test(check, ledger_catches_realloc_of_an_interior_large_pointer, .signal = SIGABRT)
{
    ledger();
    char *p = large(5000);
    pa_api_realloc(p + 32, 6000);
}

Test(check, ledger_catches_malloc_usable_size_of_a_foreign_pointer, .signal = SIGABRT)
{
    ledger();
    static char foreign[64] __attribute__((aligned(16)));
    pa_api_usable_size(foreign);
}

Test(check, ledger_catches_an_unreadable_pointer_without_reading_it, .signal = SIGABRT)
{
    ledger();
    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    munmap(m, 1 << 20);
    pa_free(m);   /* a read of it would be SIGSEGV, not the abort */
}

/* A large realloc resizes in place when jemalloc can (a shrink, here), and only moves
 * otherwise: a shrink jemalloc will not make in place (below its large classes) moves, rather
 * than keep the whole block. */
Test(check, ledger_realloc_resizes_in_place)
{
    ledger();
    char *p = large(100000);
    memset(p, 7, 100000);
    char *q = pa_api_realloc(p, 90000);
    cr_assert_eq(q, p, "a shrink stayed in place");
    cr_assert_eq(q[89999], 7);
    char *r = pa_api_realloc(q, 1000);
    cr_assert_eq(r[999], 7);
    cr_assert_leq(pa_api_usable_size(r), 1024, "the shrunk block kept its old size");
    pa_free(r);
}

/* The table follows the live count down as well as up. */
Test(check, ledger_shrinks_when_blocks_are_freed)
{
    ledger();
    enum { N = 20000 };
    static void *b[N];
    for (int i = 0; i < N; i++)
        b[i] = large(600);
    size_t peak = pa_ledger_capacity();
    cr_assert_geq(peak, 4 * N / 2, "the table holds every live block");
    for (int i = 0; i < N; i++)
        pa_free(b[i]);
    cr_assert_leq(pa_ledger_capacity(), peak / 8, "the table stayed at its peak");
}

Test(check, ledger_out_of_memory_fails_the_request_only)
{
    ledger();
    pa_os_fail_next_maps(1);   /* the ledger's first table */
    errno = 0;
    cr_assert_null(large(5000));
    cr_assert_eq(errno, ENOMEM);
    char *p = large(5000);
    cr_assert_not_null(p);
    pa_free(p);
}

Test(check, the_programs_own_data_matching_the_mark_is_no_double_free)
{
    pa_block *b = pa_malloc(32);
    void *keep = pa_malloc(32);
    b->mark = pa_free_mark(b);   /* as if the program stored exactly that word */
    pa_free(b);                  /* suspicious, confirmed not free: goes on */
    pa_block *again = pa_malloc(32);
    cr_assert_eq(again, b);
    cr_assert_eq(again->mark, 0, "the mark was not cleared on hand-out");
    pa_free(again);
    pa_free(keep);
}

Test(check, level_0_does_not_check)
{
    level(0);
    char *p = pa_malloc(48), *keep = pa_malloc(48);
    pa_free(p + 16);   /* invalid, but unchecked: the process goes on (its heap is now corrupt) */
    pa_free(p);
    pa_free(p);
    (void)keep;
}

Test(check, level_2_catches_a_write_after_free, .signal = SIGABRT)
{
    level(2);
    char *p = pa_malloc(64), *keep = pa_malloc(64);
    pa_free(p);
    p[40] = 'x';                 /* use after free */
    pa_malloc(64);               /* hands p out again: the pattern is broken */
    (void)keep;
}

Test(check, level_2_catches_a_corrupted_free_list, .signal = SIGABRT)
{
    level(2);
    char *a = pa_malloc(64), *b = pa_malloc(64), *keep = pa_malloc(64);
    pa_free(a);
    pa_free(b);                   /* list: b -> a */
    *(uintptr_t *)b = 0x12345678; /* overwrite b's link */
    pa_malloc(64);                /* pops b, must refuse to follow its link */
    (void)keep;
}

Test(check, level_2_round_trips_data)
{
    level(2);
    for (int round = 0; round < 3; round++) {
        void *p[500];
        for (int i = 0; i < 500; i++) {
            size_t n = 1 + (size_t)(i * 37 % 512);
            p[i] = pa_malloc(n);
            memset(p[i], i, n);
        }
        for (int i = 0; i < 500; i += 2)
            pa_free(p[i]);
        for (int i = 1; i < 500; i += 2)
            pa_free(p[i]);
    }
    check_heap();
}
