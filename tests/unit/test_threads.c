/* test_threads.c — cross-thread frees (remote stacks, reclaim of FULL pools), thread exit
 * (abandoned heaps freed into, then adopted), fork with blocks of other threads, and when the
 * fork-handler registration guard is on. */
#include <pthread.h>
#include <semaphore.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define N 2000

static void *blocks[N];
static sem_t go_free, freed;

static void *alloc_then_wait(void *arg)
{
    size_t size = (size_t)arg;
    for (int i = 0; i < N; i++)
        memset(blocks[i] = pa_malloc(size), 0x5a, size);
    pa_snapshot loaded, after;
    pa_snapshot_take(&loaded);
    sem_post(&go_free);
    sem_wait(&freed);
    /* every block came back, through the remote stacks to this idle thread or with the pools
     * a sweep gave back to their arenas: reallocating needs no more pools than the first time */
    for (int i = 0; i < N; i++)
        blocks[i] = pa_malloc(size);
    pa_snapshot_take(&after);
    size_t c = pa_class_of(size);
    cr_assert_leq(after.cls[c].pools, loaded.cls[c].pools, "remote frees were not reused");
    cr_assert_eq(after.cls[c].in_use, N);
    check_ring(pa_tls_heap);
    return NULL;
}

Test(threads, remote_frees_return_to_the_owner)
{
    sem_init(&go_free, 0, 0);
    sem_init(&freed, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, alloc_then_wait, (void *)64);
    sem_wait(&go_free);
    for (int i = 0; i < N; i++) {
        pa_pool *p = pa_pool_of(blocks[i]);
        cr_assert_neq(pa_meta(p)->owner, pa_tls_heap);
        pa_free(blocks[i]);
    }
    pa_snapshot s;
    pa_snapshot_take(&s);
    cr_assert_eq(s.remote_frees, N);
    cr_assert_eq(s.cls[pa_class_of(64)].in_use, 0, "remote-freed blocks still counted live");
    sem_post(&freed);
    pthread_join(t, NULL);
    for (int i = 0; i < N; i++)
        pa_free(blocks[i]);
}

/* The owner of 16 FULL pools of 8 blocks (512 bytes), which the main thread frees: it waits,
 * takes one malloc slow path, and waits again. */
#define SWEPT_POOLS 16
static void *fill_pools_and_wait(void *arg)
{
    for (int i = 0; i < 8 * SWEPT_POOLS; i++)
        blocks[i] = pa_malloc(512);
    sem_post(&go_free);
    sem_wait(&freed);
    void *first_16 = pa_malloc(16);   /* its first of the class: a slow path */
    sem_post(&go_free);
    sem_wait(&freed);
    pa_free(first_16);
    check_ring(pa_tls_heap);
    return arg;
}

/* Frees pools first .. last - 1 of those, wholly: each completes with its second batch. */
static void free_pools(int first, int last)
{
    for (int i = 8 * first; i < 8 * last; i++)
        pa_free(blocks[i]);
    pa_heap_remote_flush(pa_tls_heap);
}

/* Starts fill_pools_and_wait on *t; returns its heap once its pools are full. */
static pa_heap *start_pool_owner(pthread_t *t)
{
    sem_init(&go_free, 0, 0);
    sem_init(&freed, 0, 0);
    pthread_create(t, NULL, fill_pools_and_wait, NULL);
    sem_wait(&go_free);
    return pa_meta_of(blocks[0])->owner;
}

static int pools_free(int first, int last)
{
    int n = 0;
    for (int i = first; i < last; i++)
        n += pa_pool_of(blocks[8 * i])->state == PA_POOL_FREE;
    return n;
}

/* A freer samples the owner of the FULL pools it completes, one completion in PA_SWEEP_SAMPLE
 * (the first included), every one while the owner is idle: an owner that took a malloc slow
 * path since the last sample keeps them, one idle since for PA_SWEEP_IDLE_MS has them taken
 * back to their arenas. */
Test(threads, an_idle_owners_emptied_pools_go_back_to_their_arenas)
{
    _Static_assert(PA_SWEEP_SAMPLE == 4, "the completions below");
    pthread_t t;
    pa_heap *owner = start_pool_owner(&t);
    free_pools(0, 1);   /* the first sample: the owner's slow paths since none */
    sem_post(&freed);
    sem_wait(&go_free);   /* that slow path took pool 0 back from the reclaim stack */
    cr_assert_neq(pa_pool_of(blocks[0])->state, PA_POOL_FULL, "pool 0 not reclaimed");
    free_pools(1, 5);   /* sampled at the fifth completion: one slow path since the first */
    cr_assert_eq(pools_free(1, 5), 0, "an active owner's pools were taken back");
    cr_assert_eq(pa_rc_count(atomic_load(&owner->reclaim)), 4);
    struct timespec idle = { 0, 3 * PA_SWEEP_IDLE_MS * 1000 * 1000 };
    nanosleep(&idle, NULL);
    free_pools(5, 9);   /* sampled at the ninth: none since, for longer than PA_SWEEP_IDLE_MS */
    cr_assert_eq(pools_free(1, 9), 8, "an idle owner's empty pools stayed (%d went back)",
                 pools_free(1, 9));
    cr_assert_eq(pa_rc_count(atomic_load(&owner->reclaim)), 0);
    /* the owner found idle, every completion is sampled: each pool goes back as it empties */
    free_pools(9, SWEPT_POOLS - 1);   /* the last is its ring's head, not FULL */
    cr_assert_eq(pools_free(9, SWEPT_POOLS - 1), 6, "pools 9-14 not swept as they emptied (%d)",
                 pools_free(9, SWEPT_POOLS - 1));
    cr_assert_eq(pa_rc_count(atomic_load(&owner->reclaim)), 0);
    pa_snapshot s;
    pa_snapshot_take(&s);
    cr_assert_eq(s.remote_frees, 8 * (SWEPT_POOLS - 1), "%zu", (size_t)s.remote_frees);
    free_pools(SWEPT_POOLS - 1, SWEPT_POOLS);
    sem_post(&freed);
    pthread_join(t, NULL);
}

/* malloc_trim takes back the pools other threads emptied from every heap, busy or not. */
Test(threads, trim_takes_back_the_pools_other_threads_emptied)
{
    pthread_t t;
    pa_heap *owner = start_pool_owner(&t);
    free_pools(0, 3);   /* sampled at the first: the owner's slow paths since none */
    cr_assert_eq(pools_free(0, 3), 0, "swept without a trim");
    cr_assert_eq(pa_rc_count(atomic_load(&owner->reclaim)), 3);
    pa_api_trim();
    cr_assert_eq(pools_free(0, 3), 3, "malloc_trim left %d of 3 emptied pools",
                 3 - pools_free(0, 3));
    cr_assert_eq(pa_rc_count(atomic_load(&owner->reclaim)), 0);
    sem_post(&freed);
    sem_wait(&go_free);
    free_pools(3, SWEPT_POOLS);
    sem_post(&freed);
    pthread_join(t, NULL);
}

static void *alloc_and_exit(void *arg)
{
    for (int i = 0; i < N; i++)
        blocks[i] = pa_malloc(32 + (size_t)(i % 400));
    return NULL;
}

static void *alloc_one(void *arg)
{
    *(void **)arg = pa_malloc(32);
    return NULL;
}

/* Remote frees wait in the freeing thread's per-class batch, then go back with one push: when
 * the batch is full, at malloc_trim, at the thread's exit. */
static sem_t step, resume;

static void *free_some_then_trim(void *arg)
{
    void **v = arg;
    for (int i = 0; i < 3; i++)
        pa_free(v[i]);
    sem_post(&step);
    sem_wait(&resume);
    pa_api_trim();
    sem_post(&step);
    sem_wait(&resume);
    for (int i = 3; i < 6; i++)
        pa_free(v[i]);
    return NULL;   /* exit: the last three go back too */
}

Test(threads, remote_frees_are_batched_and_pushed_at_trim_and_exit)
{
    sem_init(&step, 0, 0);
    sem_init(&resume, 0, 0);
    void *v[19];
    for (int i = 0; i < 19; i++)
        v[i] = pa_malloc(200);   /* 2 KiB / 208: batches of 9, more than these frees */
    pa_pool *p = pa_pool_of(v[0]);
    cr_assert_eq(pa_pool_used(p), 19, "one pool of 19 blocks, all handed out");
    cr_assert_null(p->free);
    pthread_t t;
    pthread_create(&t, NULL, free_some_then_trim, v);
    sem_wait(&step);
    cr_assert_eq(pa_tf_count(p->thread_free), 0, "the frees were pushed one by one");
    sem_post(&resume);
    sem_wait(&step);
    cr_assert_eq(pa_tf_count(p->thread_free), 3, "malloc_trim did not push the batch");
    sem_post(&resume);
    pthread_join(t, NULL);
    cr_assert_eq(pa_tf_count(p->thread_free), 6, "thread exit did not push the batch (%u)",
                 pa_tf_count(p->thread_free));
    void *again[6];
    for (int i = 0; i < 6; i++)   /* the owner takes them back without a new pool */
        again[i] = pa_malloc(200);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(pa_pool_of(again[i]), p);
    cr_assert_eq(pa_pool_used(p), 19, "used %u", pa_pool_used(p));
    check_ring(pa_tls_heap);
}

Test(threads, blocks_of_an_exited_thread_can_be_freed_and_its_heap_is_adopted)
{
    void *mine = pa_malloc(16);   /* the main thread's heap exists */
    pthread_t t;
    pthread_create(&t, NULL, alloc_and_exit, NULL);
    pthread_join(t, NULL);
    pa_heap *dead = pa_meta_of(blocks[0])->owner;
    cr_assert_eq(dead->state, PA_HEAP_ABANDONED);
    for (int i = 0; i < N; i++)
        pa_free(blocks[i]);
    pa_snapshot s;
    pa_snapshot_take(&s);
    cr_assert_eq(s.pools_in_use, 1, "pools of the exited thread not returned (%zu in use)",
                 s.pools_in_use);
    void *fresh;
    pthread_create(&t, NULL, alloc_one, &fresh);
    pthread_join(t, NULL);
    cr_assert_eq(pa_meta_of(fresh)->owner, dead, "new thread did not adopt the abandoned heap");
    pa_snapshot_take(&s);
    cr_assert_eq(s.threads, 2, "heaps: %zu", s.threads);
    pa_free(fresh);
    pa_free(mine);
}

/* The owner's half of the two tests below: two pools of class 512, the first FULL; then waits
 * while the main thread frees two of its blocks, which queues it on the reclaim stack. */
static pa_pool *fill_and_wait_for_remote_frees(void)
{
    for (int i = 0; i < 9; i++)
        blocks[i] = pa_malloc(512);
    pa_pool *first = pa_pool_of(blocks[0]);
    cr_assert_eq(first->state, PA_POOL_FULL);
    sem_post(&go_free);
    sem_wait(&freed);
    cr_assert_eq(pa_rc_top(atomic_load(&pa_tls_heap->reclaim)), first, "FULL pool not queued");
    return first;
}

/* The main thread's half: runs owner on a thread and frees two blocks of its FULL pool. */
static void free_two_into_a_full_pool(void *(*owner)(void *))
{
    sem_init(&go_free, 0, 0);
    sem_init(&freed, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, owner, NULL);
    sem_wait(&go_free);
    pa_free(blocks[3]);
    pa_free(blocks[4]);
    pa_api_trim();   /* pushes this thread's batch of remote frees */
    sem_post(&freed);
    pthread_join(t, NULL);
}

/* Without the cache every malloc takes the slow path; one in PA_LARGE_DECAY_EVENTS ticks, and
 * the tick takes the reclaim stack, though the owner's ring for the class it allocates from
 * never runs dry (a thread whose working set fits its rings). */
static void *fill_then_tick(void *arg)
{
    static void *small[2 * PA_LARGE_DECAY_EVENTS];
    small[0] = pa_malloc(16);   /* the ring of 16-byte blocks exists before the remote frees */
    pa_pool *first = fill_and_wait_for_remote_frees();
    for (int i = 1; i < 2 * PA_LARGE_DECAY_EVENTS; i++)
        small[i] = pa_malloc(16);
    cr_assert_eq(pa_pool_of(small[0]), pa_pool_of(small[2 * PA_LARGE_DECAY_EVENTS - 1]),
                 "the 16-byte ring ran dry: this test needs a pool of them to last");
    cr_assert_null(pa_rc_top(atomic_load(&pa_tls_heap->reclaim)),
                   "the tick left the reclaim stack");
    cr_assert_eq(first->state, PA_POOL_ATTACHED, "the FULL pool was not reattached");
    for (int i = 0; i < 2 * PA_LARGE_DECAY_EVENTS; i++)
        pa_free(small[i]);
    for (int i = 0; i < 9; i++)
        if (i != 3 && i != 4)
            pa_free(blocks[i]);
    check_ring(pa_tls_heap);
    return arg;
}

static void no_cache(void)
{
    pa_config.thread_cache = 0;
}

Test(threads, the_tick_reclaims_a_full_pool_though_no_ring_runs_dry, .init = no_cache)
{
    free_two_into_a_full_pool(fill_then_tick);
}

static void *fill_pools(void *arg)
{
    pa_pool *first = fill_and_wait_for_remote_frees();
    /* exhaust the current pool: the slow path reclaims the FULL pool rather than a new one */
    for (int i = 9; i < 16; i++)
        blocks[i] = pa_malloc(512);
    void *again = pa_malloc(512);
    cr_assert_eq(pa_pool_of(again), first, "remote-freed FULL pool not reclaimed");
    cr_assert_eq(first->state, PA_POOL_ATTACHED);
    check_ring(pa_tls_heap);
    return arg;
}

Test(threads, full_pool_is_reclaimed_after_a_remote_free)
{
    free_two_into_a_full_pool(fill_pools);
}

static volatile int stop;
static void *churn(void *arg)
{
    void *local[64] = { 0 };
    unsigned s = (unsigned)(uintptr_t)arg;
    while (!stop) {
        s = s * 1103515245 + 12345;
        int i = (s >> 8) & 63;
        pa_free(local[i]);
        local[i] = pa_malloc(1 + (s >> 16) % 512);
    }
    for (int i = 0; i < 64; i++)
        pa_free(local[i]);
    return NULL;
}

Test(threads, fork_child_frees_blocks_of_other_threads)
{
    pthread_t t[2];
    for (int i = 0; i < N; i++)
        blocks[i] = NULL;
    pthread_create(&t[0], NULL, alloc_and_exit, NULL);     /* fills blocks[], exits */
    pthread_join(t[0], NULL);
    pthread_create(&t[0], NULL, churn, (void *)1);
    pthread_create(&t[1], NULL, churn, (void *)2);
    for (int round = 0; round < 20; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < N; i++)
                pa_free(blocks[i]);
            for (int i = 0; i < N; i++)
                blocks[i] = pa_malloc(64);
            for (int i = 0; i < N; i++)
                pa_free(blocks[i]);
            _exit(0);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status %d", st);
    }
    stop = 1;
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
}

/* The registration guard (preload/fork.c) is on from glibc 2.36, which runs fork handlers with
 * its atfork lock released; 2.28-2.35 hold it through the fork, and the guard would deadlock
 * there. Versions compare as numbers ("2.9" is older than "2.36"); unreadable ones leave it off. */
Test(threads, fork_guard_is_on_from_glibc_2_36)
{
    const char *on[] = { "2.36", "2.36.1", "2.40", "2.100", "3.0", "10.1" };
    const char *off[] = { "2.35", "2.28", "2.9", "2.4", "1.99", "", "x", "2", "2.", "2.x", ".36" };
    for (size_t i = 0; i < sizeof on / sizeof *on; i++)
        cr_assert(pa_fork_guard_needed(on[i]), "guard off for glibc %s", on[i]);
    for (size_t i = 0; i < sizeof off / sizeof *off; i++)
        cr_assert(!pa_fork_guard_needed(off[i]), "guard on for glibc \"%s\"", off[i]);
}

/* A thread's frees into one pool of another heap wait in its batch for that class, which goes
 * onto the pool's remote stack whole when it reaches the class's limit: 4 blocks of 512 bytes
 * (PA_REMOTE_BATCH_BYTES), 16 of 64 (PA_REMOTE_BATCH_MAX); the rest goes at thread exit. */
struct batch_case {
    void   **b;
    uint32_t limit;
    uint32_t seen[3];   /* remote stack's length: after limit - 1 frees, limit, limit + 1 */
};

static uint32_t remote_count(const void *p)
{
    return pa_tf_count(atomic_load(&pa_pool_of(p)->thread_free));
}

static void *free_in_batches(void *arg)
{
    struct batch_case *c = arg;
    for (uint32_t i = 0; i + 1 < c->limit; i++)
        pa_free(c->b[i]);
    c->seen[0] = remote_count(c->b[0]);
    pa_free(c->b[c->limit - 1]);
    c->seen[1] = remote_count(c->b[0]);
    pa_free(c->b[c->limit]);
    c->seen[2] = remote_count(c->b[0]);
    return NULL;
}

static void check_batch_limit(size_t size, uint32_t limit)
{
    void *b[17];
    for (uint32_t i = 0; i <= limit; i++) {
        b[i] = pa_malloc(size);
        cr_assert_eq(pa_pool_of(b[i]), pa_pool_of(b[0]), "blocks from one pool");
    }
    struct batch_case c = { .b = b, .limit = limit };
    pthread_t t;
    pthread_create(&t, NULL, free_in_batches, &c);
    pthread_join(t, NULL);
    cr_assert_eq(c.seen[0], 0, "%zu B: pushed before the batch was full", size);
    cr_assert_eq(c.seen[1], limit, "%zu B: the full batch was not pushed whole", size);
    cr_assert_eq(c.seen[2], limit, "%zu B: a new batch was pushed at once", size);
    cr_assert_eq(remote_count(b[0]), limit + 1, "%zu B: thread exit left a batch behind", size);
}

Test(threads, remote_frees_go_back_in_batches_of_the_class_limit)
{
    check_batch_limit(512, PA_REMOTE_BATCH_BYTES / 512);
    check_batch_limit(64, PA_REMOTE_BATCH_MAX);
}
