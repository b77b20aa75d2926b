/* test_space.c — ownership: decided from the address alone, for our blocks and for memory
 * that is not ours, without reading it (a PROT_NONE page would fault if read). */
#include <sys/mman.h>

#include "helpers.h"

static int a_static;

Test(space, our_blocks_are_owned)
{
    for (size_t n = 1; n <= PA_SMALL_MAX; n += 97) {
        void *p = pa_malloc(n);
        cr_assert(pa_owned(p));
        pa_free(p);
    }
}

Test(space, foreign_memory_is_not)
{
    int on_stack;
    void *large = pa_large_alloc(100, 64);   /* jemalloc's */
    void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(none, MAP_FAILED);
    void *mine = pa_malloc(32);                      /* a region exists */
    cr_assert(pa_owned(mine));
    cr_assert_not(pa_owned(&on_stack));
    cr_assert_not(pa_owned(&a_static));
    cr_assert_not(pa_owned(large));
    cr_assert_not(pa_owned(none), "a PROT_NONE page counted as ours");
    cr_assert_not(pa_owned(NULL));
    cr_assert_not(pa_owned((void *)UINTPTR_MAX));
    cr_assert_not(pa_owned((void *)((uintptr_t)1 << 47)), "above the 47-bit space");
    /* the edges of our region: the byte before it and after it are not ours */
    uintptr_t base = (uintptr_t)mine & ~(uintptr_t)(PA_REGION_SIZE - 1);
    cr_assert(pa_owned((void *)base));
    cr_assert(pa_owned((void *)(base + PA_REGION_SIZE - 1)));
    if (!pa_space_map[(base >> PA_REGION_SHIFT) - 1])
        cr_assert_not(pa_owned((void *)(base - 1)));
    if (!pa_space_map[(base >> PA_REGION_SHIFT) + 1])
        cr_assert_not(pa_owned((void *)(base + PA_REGION_SIZE)));
    /* and free() of them takes the large path, which for jemalloc's own block is right */
    pa_free(large);
    pa_free(mine);
    munmap(none, 4096);
}

Test(space, regions_are_aligned_and_hold_118_arenas)
{
    void *p = pa_malloc(64);
    pa_arena *a = pa_arena_of(p);
    char *base = pa_arena_base(a);
    cr_assert_eq((uintptr_t)base % PA_ARENA_SIZE, 0);
    cr_assert_lt((uintptr_t)base % PA_REGION_SIZE, PA_WASTE_OFFSET, "arena in the tables");
    cr_assert_eq((uintptr_t)a - pa_region_of(p) - PA_ARENAS_OFFSET,
                 ((uintptr_t)base % PA_REGION_SIZE) / PA_ARENA_SIZE * sizeof(pa_arena));
    cr_assert_eq(pa_arena_pool(a, pa_pool_index(pa_pool_of(p))), pa_pool_of(p));
    cr_assert_eq(pa_pool_page(pa_pool_of(p)), (void *)((uintptr_t)p & ~(PA_POOL_SIZE - 1)));
    cr_assert_eq(pa_meta(pa_pool_of(p)), pa_meta_of(p));
    cr_assert_eq(pa_space_regions(), 1);
    pa_free(p);
}
