/* space.c — the address space behind the arenas: 32 MiB regions reserved on demand, the slots
 * of the arenas inside them, and pa_space_map, the byte-per-region map that makes the ownership
 * test one load. Called only by arena.c, under pa_arena_lock. */
#include <errno.h>

#include "alloc.h"

/* One byte per 32 MiB of the 47-bit address space (4 MiB of .bss, resident only where
 * touched): non-zero where the region is ours. Entries are set once and never cleared, since
 * regions are never unmapped; only their arenas' pages are given back. */
PA_HIDDEN uint8_t pa_space_map[PA_MAP_ENTRIES];

typedef struct pa_region {
    char     *base;       /* PA_REGION_SIZE bytes, aligned to PA_REGION_SIZE */
    uint64_t  taken[2];   /* bit i: arena slot i holds an arena (in use or cached) */
} pa_region;

static pa_region pa_regions[PA_MAX_REGIONS];
static size_t    pa_nregions;
static size_t    pa_first_open;  /* no region below this index has a free slot */

size_t pa_space_regions(void)
{
    return pa_nregions;
}

static int lowest_free_slot(const pa_region *r)
{
    if (~r->taken[0])
        return __builtin_ctzll(~r->taken[0]);
    if (~r->taken[1])
        return 64 + __builtin_ctzll(~r->taken[1]);
    return -1;
}

static pa_region *region_new(void)
{
    if (pa_nregions == PA_MAX_REGIONS) {
        errno = ENOMEM;
        return NULL;
    }
    char *base = pa_os_reserve(PA_REGION_SIZE, PA_REGION_SIZE);
    if (base == NULL)
        return NULL;
    if (((uintptr_t)base >> PA_REGION_SHIFT) >= PA_MAP_ENTRIES)
        pa_os_fatal("the kernel mapped memory above the 47-bit address space");
    pa_region *r = &pa_regions[pa_nregions++];
    r->base = base;
    r->taken[1] = ~UINT64_C(0) << (PA_REGION_USABLE - 64);   /* the waste table's slots */
    pa_space_map[(uintptr_t)base >> PA_REGION_SHIFT] = 1;
    return r;
}

/* A zero-filled arena at the lowest free slot: low addresses first keep the heap compact. */
pa_arena *pa_space_arena_new(void)
{
    size_t i = pa_first_open;
    int slot = -1;
    for (; i < pa_nregions; i++)
        if ((slot = lowest_free_slot(&pa_regions[i])) >= 0)
            break;
    if (i == pa_nregions) {
        if (region_new() == NULL)
            return NULL;
        slot = 0;
    }
    pa_first_open = i;
    pa_region *r = &pa_regions[i];
    r->taken[slot >> 6] |= UINT64_C(1) << (slot & 63);
    pa_arena *a = pa_arena_of(r->base + (size_t)slot * PA_ARENA_SIZE);
    a->region = (uint32_t)i;
    return a;
}

/* Gives the arena's pages and its page of descriptors back to the OS and frees its slot; the
 * next use sees zeroes there (arena.c sets the rest up again). */
void pa_space_arena_release(pa_arena *a)
{
    size_t i = a->region;
    pa_region *r = &pa_regions[i];
    size_t slot = (size_t)(pa_arena_base(a) - r->base) / PA_ARENA_SIZE;
    pa_os_purge(pa_arena_base(a), PA_ARENA_SIZE);
    pa_os_purge(pa_arena_pool(a, 0), PA_POOL_SIZE);   /* its 64 descriptors fill one page */
    r->taken[slot >> 6] &= ~(UINT64_C(1) << (slot & 63));
    if (i < pa_first_open)
        pa_first_open = i;
}

/* Calls fn on every arena that holds a slot (in use or cached). */
void pa_space_foreach(void (*fn)(pa_arena *a, void *arg), void *arg)
{
    const uint64_t arena_slots[2] = { ~UINT64_C(0), ~(~UINT64_C(0) << (PA_REGION_USABLE - 64)) };
    for (size_t i = 0; i < pa_nregions; i++)
        for (int w = 0; w < 2; w++)
            for (uint64_t t = pa_regions[i].taken[w] & arena_slots[w]; t; t &= t - 1)
                fn(pa_arena_of(pa_regions[i].base +
                               (size_t)(w * 64 + __builtin_ctzll(t)) * PA_ARENA_SIZE), arg);
}
