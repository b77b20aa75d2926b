/* bench_fastpath — a fixed number of malloc(32)/free pairs, for instruction counting.
 *
 *   bench_fastpath N [--harness]
 *     Warms up (10000 pairs with some blocks held), then runs N pairs of malloc(32) + free,
 *     filling each block with a pattern and checking it before the free. Run under
 *     `valgrind --tool=callgrind` with N and 2N: the difference of the totals divided by N is
 *     the cost of one pair, with the start-up cost cancelled. With --harness the same loop
 *     calls two trivial functions instead of malloc and free, measuring the loop's own cost,
 *     which bench/run.py subtracts.
 */
#include "common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Alignas(16) unsigned char harness_block[32];

__attribute__((noinline)) static void *harness_malloc(size_t size)
{
    (void)size;
    return harness_block;
}

__attribute__((noinline)) static void harness_free(void *p)
{
    (void)p;
}

/* Called through volatile pointers in both modes, so the call sequences match. */
static void *(*volatile alloc_fn)(size_t) = malloc;
static void (*volatile free_fn)(void *) = free;

static void pairs(size_t n)
{
    void *(*m)(size_t) = alloc_fn;
    void (*f)(void *) = free_fn;
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = m(32);
        if (p == NULL || ((uintptr_t)p & 15))
            die("malloc(32) returned %p", (void *)p);
        uint64_t tag = i ^ 0xA5A5A5A5A5A5A5A5ull, w[4];
        for (int k = 0; k < 4; k++)
            memcpy(p + 8 * k, &tag, 8);
        escape(p);
        memcpy(w, p, 32);
        if ((w[0] ^ tag) | (w[1] ^ tag) | (w[2] ^ tag) | (w[3] ^ tag))
            die("block at %p was overwritten", (void *)p);
        f(p);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s N [--harness]\n", argv[0]);
        return 64;
    }
    size_t n = strtoull(argv[1], NULL, 10);
    void *held[64];
    for (int i = 0; i < 64; i++) { /* some live blocks, as in a real heap */
        held[i] = malloc(16 + 16 * (size_t)(i % 8));
        if (held[i] == NULL)
            die("malloc failed");
    }
    pairs(10000);
    if (argc > 2 && strcmp(argv[2], "--harness") == 0) {
        alloc_fn = harness_malloc;
        free_fn = harness_free;
    }
    pairs(n);
    for (int i = 0; i < 64; i++)
        free(held[i]);
    return 0;
}
