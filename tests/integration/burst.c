/* burst.c — resident memory after a burst: 4 million small blocks (32..64 bytes) are allocated,
 * then freed (90% in random order, then the rest); VmRSS must fall back close to where it was
 * (pyarena purges empty pools and releases empty arenas). glibc keeps the freed chunks in its
 * fastbins and fails this. No malloc_trim is called. Reads /proc/self/status with read(2) only,
 * so that no stdio buffer is allocated during the measurement. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#define NBLOCKS   (4u * 1024 * 1024)
#define MAX_PCT   20      /* rss_after - rss_before must stay under this % of the growth */


static double now_sec(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rs = 0x2545f4914f6cdd1dull;
static uint32_t rng(void)
{
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (uint32_t)(rs >> 11);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);   /* stdout never allocates a buffer */
    /* the pointer array and the permutation come from mmap, not malloc, and are touched first */
    void **ptrs = mmap(NULL, NBLOCKS * sizeof(void *), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *order = mmap(NULL, NBLOCKS * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ptrs == MAP_FAILED || order == MAP_FAILED) {
        printf("mmap failed\n");
        return 2;
    }
    memset(ptrs, 0, NBLOCKS * sizeof(void *));
    for (uint32_t i = 0; i < NBLOCKS; i++)
        order[i] = i;
    for (uint32_t i = NBLOCKS - 1; i > 0; i--) {     /* Fisher-Yates */
        uint32_t j = rng() % (i + 1);
        uint32_t t = order[i]; order[i] = order[j]; order[j] = t;
    }
    /* warm-up so that one-time allocations are not counted as burst */
    for (int i = 0; i < 1000; i++)
        free(malloc(48));

    long before = rss_kib();
    for (uint32_t i = 0; i < NBLOCKS; i++) {
        size_t sz = 32 + rng() % 33;
        char *p = malloc(sz);
        if (p == NULL) {
            printf("malloc failed at block %u\n", i);
            return 2;
        }
        memset(p, (int)(i & 0xff), sz);
        ptrs[i] = p;
    }
    long peak = rss_kib();
    uint32_t ninety = NBLOCKS / 10 * 9;
    for (uint32_t i = 0; i < ninety; i++) {
        free(ptrs[order[i]]);
        ptrs[order[i]] = NULL;
    }
    long mid = rss_kib();
    for (uint32_t i = 0; i < NBLOCKS; i++)
        free(ptrs[i]);
    /* The program goes on after its spike: 1.5 s of modest work in another size class. An
     * allocator may keep freed pages for a while (pyarena: PYARENA_DECAY_MS, 1 s) to spare a
     * program that refills them, but must give them back once they stay unused. */
    for (double t0 = now_sec(); now_sec() - t0 < 1.5;) {
        void *w[64];
        for (int k = 0; k < 64; k++)
            w[k] = malloc(200);
        for (int k = 0; k < 64; k++)
            free(w[k]);
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    long after = rss_kib();

    long growth = peak - before;
    printf("rss_before_kib %ld\n", before);
    printf("rss_peak_kib %ld\n", peak);
    printf("rss_after_90pct_free_kib %ld\n", mid);
    printf("rss_after_kib %ld\n", after);
    printf("growth_kib %ld retained_kib %ld\n", growth, after - before);
    if (before < 0 || peak < 0 || after < 0) {
        printf("burst BAD: cannot read VmRSS\n");
        return 2;
    }
    if (growth < 100 * 1024) {
        printf("burst BAD: the burst grew RSS by only %ld KiB\n", growth);
        return 1;
    }
    long retained_pct = (after - before) * 100 / growth;
    printf("retained_pct %ld (limit %d)\n", retained_pct, MAX_PCT);
    if ((after - before) * 100 >= (long)MAX_PCT * growth) {
        printf("burst BAD: RSS did not fall back\n");
        return 1;
    }
    printf("burst OK\n");
    return 0;
}
