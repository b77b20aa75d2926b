/* handover.c — a program that starts its first thread after allocating: while it is single-
 * threaded, pyarena takes and gives back pools without the arena lock and marks exhausted pools
 * FULL without a locked instruction (pa_single_threaded). Blocks allocated then are freed by a
 * thread started afterwards; the main thread must get their pages back (a FULL pool's first
 * remote free queues it for its owner, which releases it once empty) when it allocates again. Prints "OK <check>" / "FAIL <check>:
 * why" and "single_threaded_at_start N"; the runner reads them. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>

#include "probe.h"

#define N 4096                      /* blocks per size: 512 pools of the 512-byte class */

static const size_t sizes[] = { 48, 256, 512 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

static unsigned char *blocks[NSIZES][N];
static unsigned long pattern_errors;

static void fill(unsigned char *b, size_t size, size_t i)
{
    memset(b, (int)(i * 7 + size) & 0xff, size);
}

static void verify(const unsigned char *b, size_t size, size_t i)
{
    for (size_t k = 0; k < size; k++)
        if (b[k] != ((i * 7 + size) & 0xff)) {
            pattern_errors++;
            return;
        }
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void *free_all(void *arg)
{
    (void)arg;
    for (size_t s = 0; s < NSIZES; s++)
        for (size_t i = 0; i < N; i++) {
            verify(blocks[s][i], sizes[s], i);
            free(blocks[s][i]);
        }
    return NULL;
}

int main(void)
{
    printf("single_threaded_at_start %d\n", __libc_single_threaded ? 1 : 0);
    /* single-threaded: pools come from the arenas, go back (all freed here) and come again */
    for (int round = 0; round < 2; round++)
        for (size_t s = 0; s < NSIZES; s++)
            for (size_t i = 0; i < N; i++) {
                if (round == 1) {
                    verify(blocks[s][i], sizes[s], i);
                    free(blocks[s][i]);
                }
                blocks[s][i] = malloc(sizes[s]);
                if (blocks[s][i] == NULL) {
                    printf("FAIL malloc: out of memory\n");
                    return 1;
                }
                fill(blocks[s][i], sizes[s], i);
            }
    static uintptr_t pages[NSIZES * N];   /* the 4 KiB pages (pools) they came from */
    for (size_t s = 0; s < NSIZES; s++)
        for (size_t i = 0; i < N; i++)
            pages[s * N + i] = (uintptr_t)blocks[s][i] >> 12;
    qsort(pages, NSIZES * N, sizeof pages[0], cmp_ptr);

    /* every block freed by another thread, into pools that went FULL single-threaded */
    pthread_t t;
    if (pthread_create(&t, NULL, free_all, NULL) != 0 || pthread_join(t, NULL) != 0) {
        printf("FAIL thread: could not run the freeing thread\n");
        return 1;
    }
    check(pattern_errors == 0, "patterns", "%lu blocks changed while live", pattern_errors);

    /* the main thread allocates as much again: from the pools handed back (as blocks of any
     * class: pools emptied go back to their arenas); had they stayed lost, every pool would
     * be a new one */
    for (size_t s = 0; s < NSIZES; s++) {
        size_t reused = 0;
        for (size_t i = 0; i < N; i++) {
            uintptr_t page = (uintptr_t)malloc(sizes[s]) >> 12;
            reused += bsearch(&page, pages, NSIZES * N, sizeof pages[0], cmp_ptr) != NULL;
        }
        char name[32];
        snprintf(name, sizeof name, "reused_%zu", sizes[s]);
        check(reused >= N * 9 / 10, name, "%zu of %d blocks of %zu bytes are in pools the other "
              "thread freed into", reused, N, sizes[s]);
    }
    return probe_failed ? 1 : 0;
}
