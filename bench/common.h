/* common.h — shared helpers of the benchmark programs: timing, a seeded generator, pattern
 * filling and checking of blocks, alignment checks, /proc readings and result output.
 *
 * Every benchmark fills each block it gets from the allocator with a pattern derived from a
 * per-block tag and checks that pattern (and the block's alignment) before freeing it, so a
 * broken allocator makes the program fail (exit status 2, message on stderr) instead of
 * posting a good time.
 *
 * Results go to stdout, one JSON object per line:
 *   {"metric": "pairs/lifo/32", "value": 12.5, "unit": "ns/pair"}
 * bench/run.py collects them. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_NORETURN __attribute__((noreturn))

static inline BENCH_NORETURN __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("bench: FAIL: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static inline double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps the compiler from proving a block unused and deleting the malloc/free pair. */
static inline void escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* splitmix64: small, fast and good enough to pick sizes and free orders. */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(uint64_t *state, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(state) * n) >> 64);
}

static inline double rng_unit(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* A request size in [8, 512], weighted to the small end like an interpreter's objects
 * (median about 70 bytes, a quarter of requests at most 24 bytes). */
static inline size_t small_size(uint64_t *state)
{
    double u = rng_unit(state);
    return 8 + (size_t)(505.0 * u * u * u);
}

/* The per-block tag: distinct for distinct (index, round), never zero. */
static inline uint64_t block_tag(uint64_t index, uint64_t round)
{
    return (index * 0x9E3779B97F4A7C15ull) ^ (round * 0xC2B2AE3D27D4EB4Full) ^ 0x5DEECE66Dull;
}

/* The alignment malloc owes a request of this size: 16 on x86-64 and aarch64 (max_align_t),
 * less for requests too small to hold an object that needs 16 (C17 7.22.3). */
static inline size_t owed_alignment(size_t size)
{
    if (size >= 16)
        return 16;
    if (size >= 8)
        return 8;
    if (size >= 4)
        return 4;
    return size >= 2 ? 2 : 1;
}

static inline void check_block(const void *p, size_t size, size_t align, const char *what)
{
    if (p == NULL)
        die("%s: allocation of %zu bytes returned NULL", what, size);
    if ((uintptr_t)p & (align - 1))
        die("%s: %zu-byte block at %p is not %zu-byte aligned", what, size, p, align);
}

/* Blocks up to FILL_FULL bytes are filled completely; larger ones get their first and last
 * FILL_EDGE bytes and one word in every 4 KiB page (so every page is touched and an overlap
 * with another block is caught without the fill dominating the timing). */
#define FILL_FULL 4096
#define FILL_EDGE 256

static inline void fill_range(unsigned char *p, size_t n, uint64_t tag)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        memcpy(p + i, &tag, 8);
    for (; i < n; i++)
        p[i] = (unsigned char)(tag >> (8 * (i & 7)));
}

static inline int range_ok(const unsigned char *p, size_t n, uint64_t tag)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != tag)
            return 0;
    }
    for (; i < n; i++)
        if (p[i] != (unsigned char)(tag >> (8 * (i & 7))))
            return 0;
    return 1;
}

static inline void fill_block(void *block, size_t n, uint64_t tag)
{
    unsigned char *p = block;
    if (n <= FILL_FULL) {
        fill_range(p, n, tag);
        return;
    }
    fill_range(p, FILL_EDGE, tag);
    for (size_t off = 4096; off + 8 <= n - FILL_EDGE; off += 4096)
        memcpy(p + off, &tag, 8);
    fill_range(p + n - FILL_EDGE, FILL_EDGE, tag);
}

static inline void verify_block(const void *block, size_t n, uint64_t tag, const char *what)
{
    const unsigned char *p = block;
    int ok;
    if (n <= FILL_FULL) {
        ok = range_ok(p, n, tag);
    } else {
        ok = range_ok(p, FILL_EDGE, tag) && range_ok(p + n - FILL_EDGE, FILL_EDGE, tag);
        for (size_t off = 4096; ok && off + 8 <= n - FILL_EDGE; off += 4096) {
            uint64_t w;
            memcpy(&w, p + off, 8);
            ok = w == tag;
        }
    }
    if (!ok)
        die("%s: %zu-byte block at %p was overwritten while live (heap corruption or overlap)",
            what, n, block);
}

/* A "VmRSS:" / "VmHWM:" figure of /proc/self/status, in KiB (-1 if unreadable). */
static inline long proc_status_kb(const char *field)
{
    char line[256];
    long kb = -1;
    size_t len = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            kb = strtol(line + len + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static inline void emit(const char *metric, double value, const char *unit)
{
    printf("{\"metric\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"}\n", metric, value, unit);
    fflush(stdout);
}

/* Reports which allocator libraries are mapped, so the runner can check the preload took. */
static inline void emit_libs(void)
{
    char line[512], seen[1024] = "";
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f)) {
        char *name = strrchr(line, '/');
        if (name == NULL || strstr(name, ".so") == NULL)
            continue;
        name++;
        name[strcspn(name, "\n")] = '\0';
        if (!strstr(name, "malloc") && !strstr(name, "pyarena") && !strstr(name, "libc.so"))
            continue;
        if (strstr(seen, name))
            continue;
        if (strlen(seen) + strlen(name) + 2 < sizeof seen) {
            if (seen[0])
                strcat(seen, ",");
            strcat(seen, name);
        }
    }
    fclose(f);
    printf("{\"libs\": \"%s\"}\n", seen);
    fflush(stdout);
}

/* Parses "--quick" and returns the work divisor (4 when quick, else 1). */
static inline int quick_divisor(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            return 4;
    return 1;
}

#endif
