/* test_api.c — the malloc family's semantics: every realloc path, the aligned functions,
 * calloc, usable sizes, and out-of-memory through an injected mapping failure. */
#include <stdint.h>

#include "helpers.h"

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 31);
}

static void check_pattern(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(p[i], (unsigned char)(seed + i * 31), "byte %zu lost", i);
}

Test(realloc, null_pointer_is_malloc_and_zero_size_frees)
{
    void *p = pa_api_realloc(NULL, 40);
    cr_assert(pa_owned(p));
    cr_assert_eq(pa_api_usable_size(p), 48);
    errno = 0;
    cr_assert_null(pa_api_realloc(p, 0));
    cr_assert_eq(errno, 0);
    cr_assert_eq(pa_api_malloc_other(0) != NULL, 1);
}

Test(realloc, stays_in_place_within_a_class)
{
    unsigned char *p = pa_malloc(33);
    fill_pattern(p, 33, 1);
    cr_assert_eq(pa_api_realloc(p, 48), p);
    cr_assert_eq(pa_api_realloc(p, 40), p);
    check_pattern(p, 33, 1);
    pa_free(p);
}

Test(realloc, moves_across_classes_and_paths_keeping_data)
{
    unsigned char *p = pa_malloc(20);
    fill_pattern(p, 20, 7);
    unsigned char *q = pa_api_realloc(p, 300);             /* small -> small, other class */
    cr_assert_neq(q, p);
    cr_assert_eq(pa_api_usable_size(q), 304);
    check_pattern(q, 20, 7);
    fill_pattern(q, 300, 9);
    unsigned char *r = pa_api_realloc(q, 5000);            /* small -> large */
    cr_assert_not(pa_owned(r));
    check_pattern(r, 300, 9);
    fill_pattern(r, 5000, 3);
    unsigned char *s = pa_api_realloc(r, 100000);          /* large -> large */
    check_pattern(s, 5000, 3);
    unsigned char *t = pa_api_realloc(s, 64);              /* large -> small */
    cr_assert(pa_owned(t));
    check_pattern(t, 64, 3);
    unsigned char *u = pa_api_realloc(t, 16);              /* shrinks to a smaller class */
    cr_assert_eq(pa_api_usable_size(u), 16);
    check_pattern(u, 16, 3);
    pa_free(u);
    check_heap();
}

Test(realloc, failure_keeps_the_old_block)
{
    unsigned char *p = pa_malloc(100);
    fill_pattern(p, 100, 5);
    errno = 0;
    cr_assert_null(pa_api_realloc(p, (size_t)PTRDIFF_MAX + 1));
    cr_assert_eq(errno, ENOMEM);
    check_pattern(p, 100, 5);
    errno = 0;
    cr_assert_null(pa_api_reallocarray(p, SIZE_MAX / 2, 3));
    cr_assert_eq(errno, ENOMEM);
    check_pattern(p, 100, 5);
    pa_free(p);
}

Test(calloc, zeroes_and_rejects_overflow)
{
    for (size_t n = 1; n <= 600; n += 37) {
        unsigned char *p = pa_malloc(n);
        memset(p, 0xff, n);
        pa_free(p);
        unsigned char *z = pa_api_calloc(1, n);   /* likely the same, dirty block */
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(z[i], 0, "calloc(%zu) byte %zu not zero", n, i);
        pa_free(z);
    }
    errno = 0;
    cr_assert_null(pa_api_calloc(SIZE_MAX / 2, 3));
    cr_assert_eq(errno, ENOMEM);
    void *p = pa_api_calloc(0, 0);
    cr_assert_not_null(p);
    pa_free(p);
}

/* Once the large path has handed out PA_LARGE_DECAY_ARM_BYTES, malloc and calloc above 512
 * bytes take their short ways to jemalloc: a block freed dirty (and carrying the free mark)
 * must come back from calloc zeroed, and freeing it must not read as a double free. */
Test(calloc, large_blocks_zeroed_on_the_short_way)
{
    for (size_t taken = 0; taken <= PA_LARGE_DECAY_ARM_BYTES; taken += 1 << 20)
        pa_free(pa_malloc(1 << 20));
    for (size_t n = 513; n <= 70000; n = n * 3 / 2 + 7) {
        for (int round = 0; round < 3; round++) {
            unsigned char *p = pa_malloc(n);
            cr_assert_not_null(p);
            memset(p, 0xab, n);
            pa_free(p);
            unsigned char *z = pa_api_calloc(1, n);   /* likely the same, dirty block */
            cr_assert_not_null(z);
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(z[i], 0, "calloc(%zu) byte %zu not zero", n, i);
            pa_free(z);
        }
    }
}

Test(aligned, every_function_aligns_as_asked)
{
    for (size_t a = 8; a <= 65536; a <<= 1) {
        for (size_t n = 1; n <= 3000; n += 499) {
            void *p = NULL;
            cr_assert_eq(pa_api_posix_memalign(&p, a, n), 0);
            cr_assert_eq((uintptr_t)p % a, 0, "posix_memalign(%zu, %zu) -> %p", a, n, p);
            cr_assert_geq(pa_api_usable_size(p), n);
            memset(p, 1, n);
            pa_free(p);
            void *q = pa_api_memalign(a, n);
            cr_assert_eq((uintptr_t)q % a, 0);
            pa_free(q);
        }
    }
    void *q = pa_api_memalign(48, 96);             /* glibc 2.36: rounded up to 64 */
    cr_assert_not_null(q);
    cr_assert_eq((uintptr_t)q % 64, 0);
    pa_free(q);
    void *v = pa_api_valloc(10);
    cr_assert_eq((uintptr_t)v % 4096, 0);
    pa_free(v);
    void *pv = pa_api_pvalloc(5000);
    cr_assert_eq((uintptr_t)pv % 4096, 0);
    cr_assert_geq(pa_api_usable_size(pv), 8192);
    pa_free(pv);
}

Test(aligned, bad_alignments_are_rejected)
{
    void *p = (void *)1;
    cr_assert_eq(pa_api_posix_memalign(&p, 0, 10), EINVAL);
    cr_assert_eq(pa_api_posix_memalign(&p, 24, 10), EINVAL);
    cr_assert_eq(pa_api_posix_memalign(&p, 4, 10), EINVAL);
    cr_assert_eq(p, (void *)1, "posix_memalign wrote *out on failure");
    errno = 0;
    cr_assert_null(pa_api_memalign(SIZE_MAX / 2 + 2, 10));
    cr_assert_eq(errno, EINVAL);
}

Test(usable, null_and_small_and_large)
{
    cr_assert_eq(pa_api_usable_size(NULL), 0);
    void *p = pa_malloc(130);
    cr_assert_eq(pa_api_usable_size(p), 144);
    pa_free(p);
}

Test(oom, failed_mapping_gives_enomem_then_recovers)
{
    pa_os_fail_next_maps(1);
    errno = 0;
    cr_assert_null(pa_malloc(32), "first small malloc needs a mapping that was made to fail");
    cr_assert_eq(errno, ENOMEM);
    void *p = pa_malloc(32);
    cr_assert_not_null(p, "allocation did not recover once mappings work again");
    pa_free(p);
}

Test(oom, new_arena_failure_after_heap_exists)
{
    void *keep = pa_malloc(16);                  /* heap and first region exist */
    pa_config.arena_cache = 0;
    /* exhaust the region's arenas so the next pool needs a new region */
    size_t n = (PA_REGION_USABLE * PA_ARENA_POOLS + 1) * 8;
    void **b = pa_large_alloc(n * sizeof *b, 0);
    size_t got = 0;
    pa_os_fail_next_maps(1);
    for (; got < n; got++) {
        errno = 0;
        if ((b[got] = pa_malloc(512)) == NULL)
            break;
    }
    cr_assert_lt(got, n, "the injected failure was never hit");
    cr_assert_eq(errno, ENOMEM);
    cr_assert_eq(got, PA_REGION_USABLE * PA_ARENA_POOLS * 8 - 8 * (1 + 0),
                 "failed after %zu blocks", got);
    void *p = pa_malloc(512);
    cr_assert_not_null(p, "no recovery after the failure");
    pa_free(p);
    for (size_t i = 0; i < got; i++)
        pa_free(b[i]);
    pa_free(keep);
    pa_large_free(b);
}

Test(oom, huge_requests_fail_cleanly)
{
    errno = 0;
    cr_assert_null(pa_malloc(SIZE_MAX));
    cr_assert_eq(errno, ENOMEM);
    errno = 0;
    cr_assert_null(pa_malloc((size_t)PTRDIFF_MAX + 1));
    cr_assert_eq(errno, ENOMEM);
    void *p = (void *)1;
    cr_assert_eq(pa_api_posix_memalign(&p, 64, SIZE_MAX - 10), ENOMEM);
}
