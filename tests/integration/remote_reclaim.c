/* remote_reclaim.c — a thread frees everything another thread allocated (as Redis's lazyfree
 * thread does after FLUSHALL ASYNC). The owner's FULL pools that the other thread emptied wait
 * on its reclaim stack, which only the owner pops, and VmRSS must fall within a quarter of
 * the load's growth all the same:
 *   idle  the owner makes no request at all: the freeing thread's sweep must give the pools
 *         back, and their arenas to the OS, by the time it is done;
 *   busy  the owner goes on with a light working set whose rings never run dry, during the
 *         frees and after: its slow paths' ticks (or a sweep) must reclaim them and the arenas'
 *         decay give the arenas back, though no pool trip asks, within a few seconds;
 *   many  rounds of the idle case with FREERS threads, each freeing whole pools of its own,
 *         so that several complete pools of the same idle owner at once and sweep each
 *         other's (before stop 25's fix a freer could sample the owner of a pool another had
 *         just given back: a crash in most runs); memory must come back all the same.
 * Prints "key value" lines for run.sh and one OK/FAIL line. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "probe.h"

#define N        400000   /* blocks of 16-215 bytes: ~55 MiB with the pools' rounding */
#define LIVE     2000     /* the owner's working set afterwards */
#define MAX_WAIT 8.0      /* seconds */
#define MAX_PCT  25
#define FREERS   8
#define ROUNDS   150

static void *blocks[N];
static _Atomic int freeing = 1;
static pthread_barrier_t go, gone;
static size_t many_size;
static int many_n;

static void *free_all(void *arg)
{
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    freeing = 0;
    return arg;
}

static double now_sec(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Freer t of the many case: each round, the blocks of every FREERS-th pool from its t-th (the
 * owner allocated them in address order, a pool's worth after another), in two halves with a
 * pause between. A freer sees the owner idle only once its slow-path count has stood still
 * for 1-2 ms since a freer first sampled it (heap.c), and 8 threads can free the whole round
 * in less: the second half's samples come after the pause, and sweep the first half's pools
 * with their own. */
static void *free_share(void *arg)
{
    long t = (long)arg;
    for (int r = 0; r < ROUNDS; r++)
        for (int half = 0; half < 2; half++) {
            pthread_barrier_wait(&go);
            int per = (int)(4096 / many_size);
            for (int i = half * many_n / 2; i < (half + 1) * many_n / 2; i++)
                if ((i / per) % FREERS == t)
                    free(blocks[i]);
            pthread_barrier_wait(&gone);
        }
    return arg;
}

static int many(void)
{
    static const size_t sizes[] = { 64, 256, 512 };
    pthread_t t[FREERS];
    pthread_barrier_init(&go, NULL, FREERS + 1);
    pthread_barrier_init(&gone, NULL, FREERS + 1);
    for (long i = 0; i < FREERS; i++)
        if (pthread_create(&t[i], NULL, free_share, (void *)i) != 0)
            abort();
    long before = rss_kib(), loaded_max = 0, after = 0;
    struct timespec idle = { 0, 3 * 1000 * 1000 };   /* no slow path for 3 ms */
    for (int r = 0; r < ROUNDS; r++) {
        many_size = sizes[r % 3];
        many_n = N / 4;
        for (int i = 0; i < many_n; i++)
            if ((blocks[i] = malloc(many_size)) == NULL)
                abort();
        long loaded = rss_kib();
        loaded_max = loaded > loaded_max ? loaded : loaded_max;
        for (int half = 0; half < 2; half++) {   /* the pause between the halves: see above */
            nanosleep(&idle, NULL);
            pthread_barrier_wait(&go);
            pthread_barrier_wait(&gone);
        }
        after = rss_kib();
    }
    for (int i = 0; i < FREERS; i++)
        pthread_join(t[i], NULL);
    printf("rss_before_kib %ld\nrss_loaded_kib %ld\nrss_freed_kib %ld\nrss_after_kib %ld\n"
           "waited_ms 0\n", before, loaded_max, after, after);
    check((after - before) * 100 < (loaded_max - before) * MAX_PCT, "remote_reclaim",
          "%d rounds of %d freers: rss before %ld, loaded at most %ld, after the last round's "
          "frees %ld KiB", ROUNDS, FREERS, before, loaded_max, after);
    return probe_failed ? 1 : 0;
}

/* A thousand steps of the owner's light work: random sizes, so that the cache's bins run dry
 * now and then. */
static void light_work(void **live, uint64_t *r)
{
    for (int k = 0; k < 1000; k++) {
        *r = *r * 6364136223846793005u + 1442695040888963407u;
        int i = (int)((*r >> 33) % LIVE);
        free(live[i]);
        if ((live[i] = malloc(16 + (size_t)(*r >> 40) % 200)) == NULL)
            abort();
    }
}

int main(int argc, char **argv)
{
    int busy = argc > 1 && strcmp(argv[1], "busy") == 0;
    setvbuf(stdout, NULL, _IONBF, 0);   /* stdout never allocates a buffer */
    if (argc > 1 && strcmp(argv[1], "many") == 0)
        return many();
    static void *live[LIVE];
    for (int i = 0; i < LIVE; i++)
        live[i] = malloc(16);
    long before = rss_kib();
    uint64_t r = 1;
    for (int i = 0; i < N; i++) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        size_t n = 16 + (size_t)(r >> 33) % 200;
        if ((blocks[i] = malloc(n)) == NULL)
            abort();
        memset(blocks[i], i, n);
    }
    long loaded = rss_kib();
    pthread_t t;
    if (pthread_create(&t, NULL, free_all, NULL) != 0)
        abort();
    while (busy && freeing)
        light_work(live, &r);
    pthread_join(t, NULL);
    long freed = rss_kib(), after = freed;
    double t0 = now_sec(), waited = 0;
    struct timespec nap = { 0, 20 * 1000 * 1000 };
    while (busy && (after - before) * 100 >= (loaded - before) * MAX_PCT && waited < MAX_WAIT) {
        light_work(live, &r);
        nanosleep(&nap, NULL);
        waited = now_sec() - t0;
        after = rss_kib();
    }
    printf("rss_before_kib %ld\nrss_loaded_kib %ld\nrss_freed_kib %ld\nrss_after_kib %ld\n"
           "waited_ms %.0f\n", before, loaded, freed, after, waited * 1000);
    check((after - before) * 100 < (loaded - before) * MAX_PCT, "remote_reclaim",
          "%s owner: rss before %ld, loaded %ld, after the other thread's frees %ld, %.1f s of "
          "light work later %ld KiB", busy ? "busy" : "idle", before, loaded, freed, waited,
          after);
    for (int i = 0; i < LIVE; i++)
        free(live[i]);
    return probe_failed ? 1 : 0;
}
