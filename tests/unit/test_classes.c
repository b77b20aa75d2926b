/* test_classes.c — size to class mapping, block sizes and alignment, malloc(0). */
#include "helpers.h"

Test(classes, mapping_covers_1_to_512_in_16_byte_steps)
{
    for (size_t n = 1; n <= PA_SMALL_MAX; n++) {
        size_t c = pa_class_of(n);
        cr_assert_lt(c, PA_NCLASSES);
        cr_assert_geq(pa_class_size(c), n, "class too small for %zu", n);
        cr_assert_lt(pa_class_size(c) - n, 16, "more than 15 bytes of waste for %zu", n);
    }
    cr_assert_eq(pa_class_of(16), 0);
    cr_assert_eq(pa_class_of(17), 1);
    cr_assert_eq(pa_class_of(512), 31);
}

Test(classes, every_small_size_is_served_from_pools_with_class_usable_size)
{
    for (size_t n = 0; n <= PA_SMALL_MAX; n++) {
        void *p = pa_malloc(n);
        cr_assert_not_null(p);
        cr_assert(pa_owned(p), "size %zu did not take the arena path", n);
        cr_assert_eq((uintptr_t)p % 16, 0, "size %zu: misaligned %p", n, p);
        cr_assert_eq(pa_api_usable_size(p), n ? pa_class_size(pa_class_of(n)) : 16);
        memset(p, 0xab, pa_api_usable_size(p));
        pa_free(p);
    }
    check_heap();
}

Test(classes, large_sizes_go_to_jemalloc)
{
    void *p = pa_malloc(513);
    cr_assert_not_null(p);
    cr_assert_not(pa_owned(p));
    cr_assert_geq(pa_api_usable_size(p), 513);
    pa_free(p);
}

Test(classes, malloc_zero_returns_unique_pointers)
{
    void *a = pa_malloc(0), *b = pa_malloc(0);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    pa_free(a);
    pa_free(b);
}

Test(classes, consecutive_blocks_of_a_class_share_a_pool_page)
{
    char *a = pa_malloc(48), *b = pa_malloc(48);
    cr_assert_eq(page_of(a), page_of(b));
    cr_assert_eq(labs((long)(b - a)), 48);
    pa_free(a);
    pa_free(b);
}
