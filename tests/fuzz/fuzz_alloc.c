/* fuzz_alloc.c — libFuzzer target: decodes the input into a sequence of malloc-family calls on
 * pyarena's internal API (up to 256 live blocks), pattern-fills every block and checks contents,
 * alignment, usable sizes and the documented edge cases (README, "Behaviour"). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"

#include "alloc.h"

#define NSLOTS 256
#define PAGE   4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct slot {
    unsigned char *p;
    size_t req;        /* requested size */
    size_t usable;     /* usable size when allocated; filled with the pattern */
    uint32_t seed;     /* pattern seed: slot index and a generation */
    bool owned;        /* served from pyarena's pools (else from the large path) */
} slot;

static slot     slots[NSLOTS];
static uint32_t generation;


#define FAIL(...) do {                                              \
        fprintf(stderr, "fuzz_alloc: " __VA_ARGS__);                \
        fputc('\n', stderr);                                        \
        abort();                                                    \
    } while (0)
#define CHECK(cond, ...) do { if (!(cond)) FAIL(__VA_ARGS__); } while (0)

/* Byte i of a block is byte i % 8 of the word patword(seed, i / 8); filled and checked a word
 * at a time. */
static inline uint64_t patword(uint32_t seed, size_t k)
{
    return ((uint64_t)seed * 0x9E3779B97F4A7C15u) ^ ((uint64_t)k * 0x100000001B3u);
}

static inline unsigned char pat(uint32_t seed, size_t i)
{
    uint64_t w = patword(seed, i / 8);
    unsigned char b[8];
    memcpy(b, &w, 8);
    return b[i % 8];
}

static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    size_t k = 0;
    for (; k < n / 8; k++) {
        uint64_t w = patword(seed, k);
        memcpy(p + 8 * k, &w, 8);
    }
    for (size_t i = 8 * k; i < n; i++)
        p[i] = pat(seed, i);
}

static void verify(const unsigned char *p, size_t n, uint32_t seed, const char *what)
{
    size_t k = 0;
    for (; k < n / 8; k++) {
        uint64_t w;
        memcpy(&w, p + 8 * k, 8);
        if (w != patword(seed, k))
            break;
    }
    for (size_t i = 8 * k; i < n; i++)
        CHECK(p[i] == pat(seed, i), "%s: block %p byte %zu of %zu is %#x, expected %#x", what,
              (const void *)p, i, n, p[i], pat(seed, i));
}

/* Size from two bytes: mostly small (0..512), some medium (..16 KiB), a few up to 64 KiB and
 * fewer up to 1 MiB. */
static size_t size_of(input *in)
{
    unsigned a = byte(in), b = byte(in);
    unsigned v = ((a & 31u) << 8) | b;
    switch (a >> 5) {
    case 5: case 6: return 513 + v % 16384;
    case 7:         return (size_t)v << (b % 8 == 0 ? 7 : 3);
    default:        return v % 513;
    }
}

static size_t round_pow2(size_t a)
{
    if (a <= 1)
        return 1;
    return (size_t)1 << (64 - __builtin_clzl(a - 1));
}

/* The properties every fresh block has; records it in s (the caller fills it). */
static void check_new(slot *s, size_t idx, void *p, size_t req, size_t align, const char *what)
{
    CHECK(p != NULL, "%s(%zu) returned NULL", what, req);
    CHECK(((uintptr_t)p & (PA_ALIGN - 1)) == 0, "%s(%zu) = %p: not 16-byte aligned", what, req, p);
    CHECK(align <= 1 || ((uintptr_t)p & (align - 1)) == 0, "%s(%zu) = %p: not aligned to %zu",
          what, req, p, align);
    size_t u = pa_api_usable_size(p);
    CHECK(u >= req && u >= 1, "%s(%zu) = %p: usable size %zu too small", what, req, p, u);
    if (req <= PA_SMALL_MAX && align <= PA_ALIGN) {
        CHECK(pa_owned(p), "%s(%zu) = %p: small request not served from the pools", what, req, p);
        CHECK(u == pa_class_size(pa_class_of(req ? req : 1)), "%s(%zu): usable %zu is not the class size",
              what, req, u);
    } else {
        CHECK(!pa_owned(p), "%s(%zu, align %zu) = %p: large request inside a pool", what, req,
              align, p);
    }
    s->p = p;
    s->req = req;
    s->usable = u;
    s->owned = pa_owned(p);
    s->seed = (uint32_t)idx * 1009u + ++generation;
}

static void take(slot *s, size_t idx, void *p, size_t req, size_t align, const char *what)
{
    check_new(s, idx, p, req, align, what);
    fill(s->p, s->usable, s->seed);
}

static void release(slot *s, const char *what)
{
    if (s->p == NULL)
        return;
    verify(s->p, s->usable, s->seed, what);
    CHECK(pa_api_usable_size(s->p) == s->usable, "%s: usable size of %p changed from %zu to %zu",
          what, (void *)s->p, s->usable, pa_api_usable_size(s->p));
    errno = 1234;
    pa_free(s->p);
    CHECK(errno == 1234, "%s: free changed errno to %d", what, errno);
    s->p = NULL;
}

static void verify_all(const char *what)
{
    for (size_t i = 0; i < NSLOTS; i++)
        if (slots[i].p)
            verify(slots[i].p, slots[i].usable, slots[i].seed, what);
}

static void op_realloc(slot *s, size_t idx, size_t n, bool array, size_t count)
{
    unsigned char *old = s->p;
    size_t old_req = s->req, old_usable = s->usable;
    uint32_t old_seed = s->seed;
    if (old)
        verify(old, old_usable, old_seed, "realloc (before)");
    errno = 0;
    void *q = array ? pa_api_reallocarray(old, count, n) : pa_api_realloc(old, n);
    size_t total = array ? count * n : n;
    if (old != NULL && total == 0) {
        CHECK(q == NULL, "realloc(%p, 0) returned %p, not NULL", (void *)old, q);
        CHECK(errno == 0, "realloc(p, 0) set errno %d", errno);
        s->p = NULL;
        return;
    }
    check_new(s, idx, q, total, 0, array ? "reallocarray" : "realloc");
    if (old != NULL) {
        size_t keep = old_req < total ? old_req : total;
        verify(q, keep, old_seed, "realloc kept prefix");
        if (pa_owned(old) && total <= PA_SMALL_MAX &&
            pa_class_size(pa_class_of(total)) == old_usable)
            CHECK(q == old, "realloc within a class moved the block (%zu -> %zu)", old_req, total);
    }
    fill(q, s->usable, s->seed);
}

/* Requests that must fail without touching anything. */
static void op_edge(input *in)
{
    unsigned k = byte(in) % 10;
    slot *s = &slots[byte(in)];
    void *out = (void *)&out;
    errno = 0;
    switch (k) {
    case 0:
        CHECK(pa_malloc(SIZE_MAX) == NULL && errno == ENOMEM, "malloc(SIZE_MAX): no ENOMEM");
        break;
    case 1:
        CHECK(pa_malloc((size_t)PTRDIFF_MAX + 1) == NULL && errno == ENOMEM,
              "malloc(PTRDIFF_MAX + 1): no ENOMEM");
        break;
    case 2:
        CHECK(pa_api_calloc(SIZE_MAX / 16 + 2, 16) == NULL && errno == ENOMEM,
              "calloc overflow: no ENOMEM");
        break;
    case 3:
    case 4:
        if (s->p) {
            size_t huge = k == 3 ? SIZE_MAX - 4096 : (size_t)PTRDIFF_MAX + 16;
            CHECK(pa_api_realloc(s->p, huge) == NULL && errno == ENOMEM,
                  "realloc(p, %zu): no NULL/ENOMEM", huge);
            verify(s->p, s->usable, s->seed, "block after failed realloc");
        }
        break;
    case 5:
        if (s->p) {
            CHECK(pa_api_reallocarray(s->p, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM,
                  "reallocarray overflow: no ENOMEM");
            verify(s->p, s->usable, s->seed, "block after failed reallocarray");
        }
        break;
    case 6:
        CHECK(pa_api_posix_memalign(&out, 24, 64) == EINVAL && out == (void *)&out,
              "posix_memalign(24): not EINVAL or *out changed");
        CHECK(pa_api_posix_memalign(&out, 4, 64) == EINVAL && out == (void *)&out,
              "posix_memalign(4): not EINVAL or *out changed");
        CHECK(errno == 0, "posix_memalign set errno %d", errno);
        break;
    case 7:
        CHECK(pa_api_posix_memalign(&out, 64, SIZE_MAX) == ENOMEM && out == (void *)&out,
              "posix_memalign(64, SIZE_MAX): not ENOMEM or *out changed");
        CHECK(errno == 0, "posix_memalign changed errno to %d", errno);
        break;
    case 8:
        CHECK(pa_api_memalign(SIZE_MAX / 2 + 2, 16) == NULL && errno == EINVAL,
              "memalign(huge alignment): no EINVAL");
        break;
    case 9:
        CHECK(pa_api_pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM, "pvalloc(huge): no ENOMEM");
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = { data, size };
    while (in.n > 0) {
        unsigned op = byte(&in) % 16;
        size_t idx = byte(&in);
        slot *s = &slots[idx];
        switch (op) {
        case 0: case 1: case 2: case 3: {
            size_t n = size_of(&in);
            release(s, "free before malloc");
            take(s, idx, pa_malloc(n), n, 0, "malloc");
            break;
        }
        case 4: {
            size_t count = byte(&in) % 9, n = size_of(&in);
            if (count && n > 64 * 1024)
                n /= count;
            release(s, "free before calloc");
            unsigned char *p = pa_api_calloc(count, n);
            for (size_t i = 0; i < count * n; i++)
                CHECK(p && p[i] == 0, "calloc(%zu, %zu): byte %zu not zero", count, n, i);
            take(s, idx, p, count * n, 0, "calloc");
            break;
        }
        case 5: case 6:
            op_realloc(s, idx, size_of(&in), false, 0);
            break;
        case 7: case 8:
            release(s, "free");
            break;
        case 9: {
            size_t align = (size_t)1 << (byte(&in) % 17), n = size_of(&in);
            release(s, "free before posix_memalign");
            void *p = NULL;
            errno = 0;
            int rc = pa_api_posix_memalign(&p, align, n);
            if (align < sizeof(void *)) {
                CHECK(rc == EINVAL && p == NULL, "posix_memalign(%zu): not EINVAL", align);
                break;
            }
            CHECK(rc == 0, "posix_memalign(%zu, %zu) = %d", align, n, rc);
            CHECK(errno == 0, "posix_memalign changed errno to %d", errno);
            take(s, idx, p, n, align, "posix_memalign");
            break;
        }
        case 10: {   /* aligned_alloc and memalign: same function, any alignment */
            unsigned a = byte(&in);
            size_t align = a < 128 ? (size_t)1 << (a % 17) : (size_t)(a - 127) * 3, n = size_of(&in);
            release(s, "free before memalign");
            take(s, idx, pa_api_memalign(align, n), n, round_pow2(align), "memalign");
            break;
        }
        case 11: {
            size_t n = size_of(&in);
            release(s, "free before valloc");
            if (byte(&in) & 1) {
                take(s, idx, pa_api_valloc(n), n, PAGE, "valloc");
            } else {
                size_t r = n ? (n + PAGE - 1) & ~(size_t)(PAGE - 1) : PAGE;
                take(s, idx, pa_api_pvalloc(n), r, PAGE, "pvalloc");
            }
            break;
        }
        case 12:
            if (s->p) {
                CHECK(pa_api_usable_size(s->p) == s->usable, "usable size of %p changed from %zu to %zu",
                      (void *)s->p, s->usable, pa_api_usable_size(s->p));
                CHECK(pa_owned(s->p) == s->owned, "ownership of %p changed", (void *)s->p);
            }
            CHECK(pa_api_usable_size(NULL) == 0, "usable size of NULL is not 0");
            break;
        case 13:
            if (idx < 16) {
                int r = pa_api_trim();
                CHECK(r == 0 || r == 1, "trim returned %d", r);
                verify_all("live block after trim");
            } else {
                op_realloc(s, idx, size_of(&in), true, 1 + byte(&in) % 4);
            }
            break;
        case 14: {   /* free a run of slots */
            unsigned len = byte(&in) % 32;
            for (unsigned i = 0; i < len; i++)
                release(&slots[(idx + i) % NSLOTS], "free run");
            break;
        }
        case 15:
            op_edge(&in);
            break;
        }
    }
    for (size_t i = 0; i < NSLOTS; i++)
        release(&slots[i], "free at end");
    return 0;
}
