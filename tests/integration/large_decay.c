/* large_decay.c — resident memory after a spike of large blocks, while the program goes on with
 * small ones only. jemalloc, which serves the large blocks, gives its unused pages back on a
 * clock that only its own calls move; pyarena's pool traffic must move it too, or the spike's
 * pages would stay for good. Run with MALLOC_CONF=dirty_decay_ms:200: after 64 MiB of 16 KiB
 * blocks are freed, VmRSS must fall to within a quarter of the spike's growth within a few
 * seconds of small mallocs and frees. Then the same spike again, freed, and malloc_trim(0):
 * it must return 1, and VmRSS must be back within a quarter of the growth when it returns.
 * Prints "key value" lines for run.sh and one OK/FAIL line per check. */
#define _GNU_SOURCE
#include <malloc.h>
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

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);   /* stdout never allocates a buffer */
    void *b[512];
    for (int i = 0; i < 512; i++)       /* the small path's own pools, before the baseline */
        b[i] = malloc(16 + (size_t)(i % 32) * 16);
    for (int i = 0; i < 512; i++)
        free(b[i]);
    long before = rss_kib(), peak, freed;
    spike(&peak, &freed);
    long after = freed;
    double t0 = now_sec(), waited = 0;
    /* small requests of every class: their pools fill and go empty again, and no large
     * request reaches jemalloc */
    while ((after - before) * 100 >= (freed - before) * MAX_PCT && waited < MAX_WAIT) {
        for (int i = 0; i < 512; i++)
            if ((b[i] = malloc(16 + (size_t)(i % 32) * 16)) == NULL)
                abort();
        for (int i = 0; i < 512; i++)
            free(b[i]);
        waited = now_sec() - t0;
        after = rss_kib();
    }
    printf("rss_before_kib %ld\nrss_peak_kib %ld\nrss_freed_kib %ld\nrss_after_kib %ld\n"
           "waited_ms %.0f\n", before, peak, freed, after, waited * 1000);
    check(freed - before > 16 * 1024, "large_decay_kept",
          "only %ld KiB of the spike's %ld stayed resident once freed: nothing left to decay",
          freed - before, peak - before);
    check((after - before) * 100 < (freed - before) * MAX_PCT, "large_decay",
          "rss before %ld, after the free %ld, %.1f s of small requests later %ld KiB", before,
          freed, waited, after);
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
