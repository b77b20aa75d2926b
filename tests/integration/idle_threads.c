/* idle_threads.c — resident memory of threads that allocate a burst, free it and then only wait,
 * while the main thread goes on allocating. Each of THREADS threads mallocs and frees 2 MiB of
 * 250-byte blocks; the pools they emptied stay with them as spare pools. Run with a short
 * PYARENA_DECAY_MS, the main thread's pool trips must sweep the idle threads' spares back to
 * the arenas, whose decay then gives the pages back: VmRSS must fall to within a quarter of the
 * burst's growth within a few seconds, without malloc_trim. Prints "key value" lines for
 * run.sh and one OK/FAIL line. */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>

#include "probe.h"

#define THREADS  16
#define BLOCKS   8192      /* of 250 bytes: 2 MiB a thread */
#define MAX_WAIT 10.0      /* seconds the main thread keeps allocating */
#define MAX_PCT  25        /* rss_after - rss_before must fall under this % of the growth */

static pthread_barrier_t burst_done, may_exit;

static double now_sec(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *burst_then_wait(void *arg)
{
    (void)arg;
    static __thread char *b[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        b[i] = malloc(250);
        if (b[i] == NULL)
            abort();
        memset(b[i], i, 250);
    }
    for (int i = 0; i < BLOCKS; i++)
        free(b[i]);
    pthread_barrier_wait(&burst_done);
    pthread_barrier_wait(&may_exit);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);   /* stdout never allocates a buffer */
    pthread_t t[THREADS];
    pthread_barrier_init(&burst_done, NULL, THREADS + 1);
    pthread_barrier_init(&may_exit, NULL, THREADS + 1);
    for (int i = 0; i < 1000; i++)       /* the main thread's own start-up allocations */
        free(malloc(48));
    long before = rss_kib();
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, burst_then_wait, NULL) != 0) {
            printf("FAIL idle_threads: pthread_create\n");
            return 2;
        }
    pthread_barrier_wait(&burst_done);
    long burst = rss_kib(), after = burst;
    double t0 = now_sec(), waited = 0;
    void *b[256];
    /* pool trips: 256 blocks of 48 bytes fill three pools, which go empty again */
    while ((after - before) * 100 >= (burst - before) * MAX_PCT && waited < MAX_WAIT) {
        for (int i = 0; i < 256; i++)
            if ((b[i] = malloc(48)) == NULL)
                abort();
        for (int i = 0; i < 256; i++)
            free(b[i]);
        waited = now_sec() - t0;
        after = rss_kib();
    }
    printf("rss_before_kib %ld\nrss_burst_kib %ld\nrss_after_kib %ld\nwaited_ms %.0f\n",
           before, burst, after, waited * 1000);
    check(burst - before > 16 * 1024 && (after - before) * 100 < (burst - before) * MAX_PCT,
          "idle_threads", "rss before %ld, after the burst %ld, %.1f s later %ld KiB", before,
          burst, waited, after);
    pthread_barrier_wait(&may_exit);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return probe_failed ? 1 : 0;
}
