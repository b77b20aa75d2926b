/* large_reuse.c — batches of large blocks taken and given back over and over, as a program
 * that builds and drops a table of records each round does. The memory a batch frees must
 * serve the next batch: the process's peak resident memory may grow by at most MAX_BATCHES
 * batches' worth above its size before the first batch, and the rounds after each size's first
 * must fault in fewer pages than two batches hold.
 *
 * The sizes are those jemalloc keeps in slabs of 20 KiB (577-640, 1153-1280, 2305-2560,
 * 4609-5120 and 8193-10240 bytes). With jemalloc's default lg_extent_max_active_fit (6), a
 * slab may not be cut from a free extent more than 64 times its size, so once a batch's slabs
 * have merged into one free extent of 4 MiB, the next batch's slabs come from fresh pages
 * while that extent waits for the decay, and every round faults its pages in again: 8 times
 * the batch resident and 10-40 times the time. pyarena sets the option to 12 (large.c); the
 * run with MALLOC_CONF=lg_extent_max_active_fit:6 (run.sh) shows that the environment still
 * overrides it, and that this program sees the difference.
 * Prints "key value" lines for run.sh and one OK/FAIL line per size. */
#define _GNU_SOURCE
#include <sys/resource.h>

#include "probe.h"

#define BATCH_BYTES (4u << 20)
#define ROUNDS      40
#define MAX_BATCHES 3      /* peak growth allowed, in batches */

static long faults(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

static void *blocks[BATCH_BYTES / 640];

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);   /* stdout never allocates a buffer */
    static const size_t sizes[] = { 640, 1280, 2560, 5120, 10240 };
    long start = rss_kib();
    const long batch_pages = BATCH_BYTES / 4096;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t size = sizes[s], k = BATCH_BYTES / size;
        long f0 = faults(), f1 = 0;
        for (int r = 0; r < ROUNDS; r++) {
            for (size_t i = 0; i < k; i++) {
                if ((blocks[i] = malloc(size)) == NULL)
                    abort();
                memset(blocks[i], (int)(i + (size_t)r), size);
            }
            for (size_t i = k; i-- > 0;) {
                if (*(unsigned char *)blocks[i] != (unsigned char)(i + (size_t)r))
                    abort();
                free(blocks[i]);
            }
            if (r == 0)
                f1 = faults();
        }
        long later = faults() - f1;
        printf("size %zu first_round_faults %ld later_faults %ld\n", size, f1 - f0, later);
        char name[32];
        snprintf(name, sizeof name, "large_reuse_%zu", size);
        check(later < 2 * batch_pages, name,
              "%zu-byte blocks: %ld page faults in rounds 2-%d (limit %ld), %ld in the first",
              size, later, ROUNDS, 2 * batch_pages, f1 - f0);
    }
    long growth = status_kib("VmHWM:") - start;
    printf("peak_growth_kib %ld\n", growth);
    check(growth < MAX_BATCHES * (long)(BATCH_BYTES >> 10), "large_reuse_peak",
          "the peak grew by %ld KiB over the rounds (limit %u)", growth,
          MAX_BATCHES * (BATCH_BYTES >> 10));
    return probe_failed ? 1 : 0;
}
