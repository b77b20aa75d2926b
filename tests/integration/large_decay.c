/* large_decay.c — resident memory after a spike of large blocks, while the program goes on with
 * small ones only. jemalloc, which serves the large blocks, gives its unused pages back on a
 * clock that only its own calls move; pyarena's pool traffic must move it too, or the spike's
 * pages would stay for good. Run with MALLOC_CONF=dirty_decay_ms:200: after 64 MiB of 16 KiB
 * blocks are freed, VmRSS must fall to within a quarter of the spike's growth within a few
 * seconds of small mallocs and frees. Then the same spike again, freed, and malloc_trim(0):
 * it must return 1, and VmRSS must be back within a quarter of the growth when it returns.
 * With the argument idle-child (run with MALLOC_CONF=background_thread:true,dirty_decay_ms:200),
 * a forked child takes and frees the spike, then sleeps without allocating: jemalloc turns its
 * background threads off in a forked child, pyarena turns them back on, and the child's
 * VmRSS must fall within a quarter of the growth while it idles.
 * Prints "key value" lines for run.sh and one OK/FAIL line per check. */
#define _GNU_SOURCE
#include <malloc.h>
#include <sys/wait.h>
#include <time.h>

#include "probe.h"

#define BLOCKS   4096
#define SIZE     (16 * 1024)   /* 64 MiB in all */
#define MAX_WAIT 10.0          /* seconds of small mallocs and frees */
#define MAX_PCT  25            /* rss_after - rss_before must fall under this % of the growth */

static double now_sec(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Takes the spike and gives it back: VmRSS at its peak and once it is freed. */
static void spike(long *peak, long *freed)
{
    static char *big[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        if ((big[i] = malloc(SIZE)) == NULL)
            abort();
        memset(big[i], i, SIZE);
    }
    *peak = rss_kib();
    for (int i = 0; i < BLOCKS; i++)
        free(big[i]);
    *freed = rss_kib();
}

/* Takes the spike, frees it, then calls meanwhile() until VmRSS has fallen within MAX_PCT of
 * the growth or MAX_WAIT seconds have passed; checks "<name>_kept" (the spike stayed resident
 * once freed: there was something to give back) and "<name>" (it went back). */
static void spike_and_wait(const char *name, void (*meanwhile)(void), long *before)
{
    long peak, freed;
    *before = rss_kib();
    spike(&peak, &freed);
    long after = freed;
    double t0 = now_sec(), waited = 0;
    while ((after - *before) * 100 >= (freed - *before) * MAX_PCT && waited < MAX_WAIT) {
        meanwhile();
        waited = now_sec() - t0;
        after = rss_kib();
    }
    printf("rss_before_kib %ld\nrss_peak_kib %ld\nrss_freed_kib %ld\nrss_after_kib %ld\n"
           "waited_ms %.0f\n", *before, peak, freed, after, waited * 1000);
    char kept[64];
    snprintf(kept, sizeof kept, "%s_kept", name);
    check(freed - *before > 16 * 1024, kept,
          "only %ld KiB of the spike's %ld stayed resident once freed: nothing left to decay",
          freed - *before, peak - *before);
    check((after - *before) * 100 < (freed - *before) * MAX_PCT, name,
          "rss before %ld, after the free %ld, %.1f s later %ld KiB", *before, freed, waited,
          after);
}

static void *b[512];

/* Small requests of every class: their pools fill and go empty again, and no large request
 * reaches jemalloc. */
static void small_requests(void)
{
    for (int i = 0; i < 512; i++)
        if ((b[i] = malloc(16 + (size_t)(i % 32) * 16)) == NULL)
            abort();
    for (int i = 0; i < 512; i++)
        free(b[i]);
}

/* Nothing reaches the allocator. */
static void nap(void)
{
    struct timespec t = { 0, 50 * 1000 * 1000 };
    nanosleep(&t, NULL);
}

/* The spike in a forked child, which then sleeps. */
static int idle_child(void)
{
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid > 0) {
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    long before;
    spike_and_wait("idle_child", nap, &before);
    _exit(probe_failed ? 1 : 0);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);   /* stdout never allocates a buffer */
    if (argc > 1 && strcmp(argv[1], "idle-child") == 0)
        return idle_child();
    small_requests();                   /* the small path's own pools, before the baseline */
    long before;
    spike_and_wait("large_decay", small_requests, &before);
    long peak2, freed2;
    spike(&peak2, &freed2);
    int trimmed = malloc_trim(0);
    long trim = rss_kib();
    printf("rss_freed2_kib %ld\nrss_trim_kib %ld\n", freed2, trim);
    check(trimmed == 1 && (trim - before) * 100 < (peak2 - before) * MAX_PCT, "large_trim",
          "malloc_trim(0) = %d; rss before %ld, after the second spike's free %ld, after "
          "malloc_trim %ld KiB", trimmed, before, freed2, trim);
    return probe_failed ? 1 : 0;
}
