/* oom.c — out of memory under an address-space limit, run under LD_PRELOAD=libpyarena.so:
 * RLIMIT_AS is set to the current size plus a little, then small and large blocks are allocated
 * until NULL; every failure must be NULL (or the error code) with ENOMEM, and every block
 * allocated before must keep its contents. Prints one "oom: <check>: ok|FAIL ..." line a check. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define HEADROOM   ((size_t)64 << 20)   /* above the current address-space size */
#define SMALL      64
#define LARGE      ((size_t)1 << 20)
#define HUGE       ((size_t)256 << 20)  /* cannot fit under the limit */
#define MAX_SMALL  ((size_t)4 << 20)    /* pointer slots for small blocks (mapped up front) */
#define MAX_LARGE  4096

static int failures;

/* A failed realloc leaves the old block valid; called through a pointer so that gcc's
 * -Wuse-after-free does not assume every realloc freed its argument. */
static void *(*volatile realloc_fn)(void *, size_t) = realloc;

static void check(int ok, const char *name, const char *detail)
{
    printf("oom: %s: %s%s%s\n", name, ok ? "ok" : "FAIL", detail[0] ? " - " : "", detail);
    fflush(stdout);
    if (!ok)
        failures++;
}

/* the pattern of a block: one word per 8 bytes, made of its address and its size */
static inline uint64_t word(const void *p, size_t n, size_t k)
{
    return ((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15u) ^ ((uint64_t)n << 40) ^ k;
}

static void fill(void *p, size_t n)
{
    uint64_t *w = p;
    for (size_t k = 0; k < n / 8; k++)
        w[k] = word(p, n, k);
}

static int intact(const void *p, size_t n)
{
    const uint64_t *w = p;
    for (size_t k = 0; k < n / 8; k++)
        if (w[k] != word(p, n, k))
            return 0;
    return 1;
}

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kib = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kib) == 1)
            break;
    fclose(f);
    return kib * 1024;
}

/* Allocates blocks of n bytes into ptrs[*count...] until malloc fails; returns its errno. */
static int fill_until_null(void **ptrs, size_t *count, size_t max, size_t n)
{
    for (;;) {
        if (*count == max)
            return -1;
        errno = 0;
        void *p = malloc(n);
        if (p == NULL)
            return errno;
        fill(p, n);
        ptrs[(*count)++] = p;
    }
}

static size_t count_damaged(void **ptrs, size_t count, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < count; i++)
        if (ptrs[i] && !intact(ptrs[i], n))
            bad++;
    return bad;
}

/* Frees every other block (odd indices), leaving NULL in their slots. */
static void free_half(void **ptrs, size_t count)
{
    for (size_t i = 1; i < count; i += 2) {
        free(ptrs[i]);
        ptrs[i] = NULL;
    }
}

static void free_all(void **ptrs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(ptrs[i]);
        ptrs[i] = NULL;
    }
}

int main(void)
{
    char d[256];
    printf("oom: start\n");              /* stdout's buffer exists before the limit */
    fflush(stdout);
    void **small = mmap(NULL, MAX_SMALL * sizeof *small, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    static void *large[MAX_LARGE];
    if (small == MAP_FAILED) {
        perror("oom: mmap");
        return 2;
    }
    free(malloc(SMALL));                 /* the allocator is up: its first region is mapped */
    free(malloc(LARGE));

    size_t vm = vm_size();
    struct rlimit rl = { vm + HEADROOM, vm + HEADROOM };
    int rc = vm ? setrlimit(RLIMIT_AS, &rl) : -1;
    snprintf(d, sizeof d, "RLIMIT_AS = VmSize %zu MiB + %zu MiB", vm >> 20, HEADROOM >> 20);
    check(rc == 0, "limit", d);
    if (rc != 0)
        return 1;

    /* small blocks until NULL */
    size_t nsmall = 0, nlarge = 0;
    int err = fill_until_null(small, &nsmall, MAX_SMALL, SMALL);
    snprintf(d, sizeof d, "%zu blocks of %d bytes, then NULL with errno %d (%s)", nsmall, SMALL,
             err, err > 0 ? strerror(err) : "slots exhausted");
    check(err == ENOMEM && nsmall > 0, "small fill", d);
    snprintf(d, sizeof d, "%zu of %zu damaged", count_damaged(small, nsmall, SMALL), nsmall);
    check(count_damaged(small, nsmall, SMALL) == 0, "small blocks intact", d);

    /* large blocks until NULL */
    err = fill_until_null(large, &nlarge, MAX_LARGE, LARGE);
    snprintf(d, sizeof d, "%zu blocks of 1 MiB, then NULL with errno %d (%s)", nlarge, err,
             err > 0 ? strerror(err) : "slots exhausted");
    check(err == ENOMEM && nlarge > 0, "large fill", d);
    snprintf(d, sizeof d, "%zu of %zu damaged", count_damaged(large, nlarge, LARGE), nlarge);
    check(count_damaged(large, nlarge, LARGE) == 0 && count_damaged(small, nsmall, SMALL) == 0,
          "all blocks intact after large fill", d);

    if (nsmall == 0 || nlarge == 0) {
        printf("oom: FAILED (nothing to test the limit with)\n");
        return 1;
    }

    /* both paths are exhausted now */
    errno = 0;
    void *p = calloc(1, SMALL);
    snprintf(d, sizeof d, "returned %p, errno %d", p, errno);
    check(p == NULL && errno == ENOMEM, "calloc small at the limit", d);
    errno = 0;
    p = calloc(1024, LARGE / 1024);
    snprintf(d, sizeof d, "returned %p, errno %d", p, errno);
    check(p == NULL && errno == ENOMEM, "calloc large at the limit", d);

    void *victim = small[0];
    errno = 0;
    p = realloc_fn(victim, HUGE);
    snprintf(d, sizeof d, "returned %p, errno %d, old block %s", p, errno,
             intact(victim, SMALL) ? "intact" : "DAMAGED");
    check(p == NULL && errno == ENOMEM && intact(victim, SMALL), "realloc small to huge", d);
    errno = 0;
    p = realloc_fn(victim, LARGE);
    snprintf(d, sizeof d, "returned %p, errno %d, old block %s", p, errno,
             intact(victim, SMALL) ? "intact" : "DAMAGED");
    check(p == NULL && errno == ENOMEM && intact(victim, SMALL), "realloc small to 1 MiB", d);
    victim = large[0];
    errno = 0;
    p = realloc_fn(victim, HUGE);
    snprintf(d, sizeof d, "returned %p, errno %d, old block %s", p, errno,
             intact(victim, LARGE) ? "intact" : "DAMAGED");
    check(p == NULL && errno == ENOMEM && intact(victim, LARGE), "realloc large to huge", d);

    void *out = &out;
    errno = 0;
    rc = posix_memalign(&out, 4096, LARGE);
    snprintf(d, sizeof d, "returned %d, *out %s, errno %d", rc,
             out == &out ? "untouched" : "CHANGED", errno);
    check(rc == ENOMEM && out == &out && errno == 0, "posix_memalign at the limit", d);
    errno = 0;
    p = aligned_alloc(4096, LARGE);
    void *q = memalign(64, LARGE);
    snprintf(d, sizeof d, "aligned_alloc %p, memalign %p, errno %d", p, q, errno);
    check(p == NULL && q == NULL && errno == ENOMEM, "aligned_alloc and memalign at the limit", d);

    /* give some back: both paths work again */
    free_half(small, nsmall);
    errno = 0;
    p = malloc(SMALL);
    q = calloc(1, SMALL);
    int zero = q && !memcmp(q, (char[SMALL]){ 0 }, SMALL);
    snprintf(d, sizeof d, "malloc %p, calloc %p (%s)", p, q, zero ? "zeroed" : "NOT ZEROED");
    check(p && q && zero, "small allocation after freeing half", d);
    free(p);
    free(q);
    free_half(large, nlarge);
    p = malloc(LARGE);
    q = calloc(1, LARGE);
    zero = q && !memcmp(q, (char[4096]){ 0 }, 4096) && !memcmp((char *)q + LARGE - 4096,
                                                               (char[4096]){ 0 }, 4096);
    snprintf(d, sizeof d, "malloc %p, calloc %p (%s)", p, q, zero ? "zeroed" : "NOT ZEROED");
    check(p && q && zero, "large allocation after freeing half", d);
    free(p);
    free(q);
    snprintf(d, sizeof d, "%zu small, %zu large damaged",
             count_damaged(small, nsmall, SMALL), count_damaged(large, nlarge, LARGE));
    check(count_damaged(small, nsmall, SMALL) == 0 && count_damaged(large, nlarge, LARGE) == 0,
          "remaining blocks intact", d);

    /* give everything back, then fill again: about as much fits as before */
    free_all(small, nsmall);
    free_all(large, nlarge);
    malloc_trim(0);
    size_t nsmall2 = 0, nlarge2 = 0;
    err = fill_until_null(small, &nsmall2, MAX_SMALL, SMALL);
    int err2 = fill_until_null(large, &nlarge2, MAX_LARGE, LARGE);
    snprintf(d, sizeof d, "%zu small (before: %zu), errno %d; then %zu large (before: %zu), errno %d",
             nsmall2, nsmall, err, nlarge2, nlarge, err2);
    check(err == ENOMEM && err2 == ENOMEM && nsmall2 >= nsmall - nsmall / 10 && nlarge2 > 0,
          "refill after freeing everything", d);
    snprintf(d, sizeof d, "%zu small, %zu large damaged",
             count_damaged(small, nsmall2, SMALL), count_damaged(large, nlarge2, LARGE));
    check(count_damaged(small, nsmall2, SMALL) == 0 && count_damaged(large, nlarge2, LARGE) == 0,
          "refilled blocks intact", d);
    free_all(small, nsmall2);
    free_all(large, nlarge2);
    p = malloc(SMALL);
    q = malloc(LARGE);
    snprintf(d, sizeof d, "malloc(64) %p, malloc(1 MiB) %p", p, q);
    check(p && q, "allocation after freeing everything", d);
    free(p);
    free(q);

    printf("oom: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
