/* config.h — every threshold of the small-object allocator, named once, with the constants
 * derived from them and compile-time checks of how they relate. */
#ifndef PA_CONFIG_H
#define PA_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define PA_ALIGN          16                           /* every small block is 16-byte aligned */
#define PA_SMALL_MAX      512                          /* largest request served from pools */
#define PA_NCLASSES       (PA_SMALL_MAX / PA_ALIGN)    /* 32 classes: 16, 32, ..., 512 */

#define PA_POOL_SHIFT     12
#define PA_POOL_SIZE      ((size_t)1 << PA_POOL_SHIFT) /* 4 KiB: one page, one size class */
#define PA_ARENA_SHIFT    18
#define PA_ARENA_SIZE     ((size_t)1 << PA_ARENA_SHIFT) /* 256 KiB, aligned to its size */
#define PA_ARENA_PAGES    (PA_ARENA_SIZE / PA_POOL_SIZE) /* 64 pages */
#define PA_ARENA_POOLS    PA_ARENA_PAGES                /* every page is a pool: the headers
                                                           live in the region's tables */

/* Arenas are carved from regions of reserved address space; the ownership map has one byte per
 * region, so a region is the granule at which "is this pointer ours?" is answered. */
#define PA_REGION_SHIFT   25
#define PA_REGION_SIZE    ((size_t)1 << PA_REGION_SHIFT) /* 32 MiB = 128 arenas */
#define PA_REGION_ARENAS  (PA_REGION_SIZE / PA_ARENA_SIZE)
/* The region's last 2.5 MiB (10 arena slots) hold its tables, indexed by page of the region or
 * by arena slot, whose pages are touched only where they describe arenas in use:
 *   waste table: one byte per 16-byte granule of the arenas before it (a block's first granule
 *                holds the low byte of its request, track.c), written only while stats are on;
 *   pools:       one 64-byte pa_pool descriptor per page (one page of them per arena);
 *   metadata:    one 16-byte pa_pool_meta per page;
 *   arenas:      one 64-byte pa_arena header per slot.
 * Descriptor and metadata share the index, so that the free fast path finds both with one
 * shift and mask (alloc.h). */
#define PA_REGION_USABLE  118                            /* arena slots per region */
#define PA_REGION_PAGES   (PA_REGION_SIZE / PA_POOL_SIZE)
#define PA_WASTE_OFFSET   (PA_REGION_USABLE * PA_ARENA_SIZE)
#define PA_WASTE_SIZE     (PA_WASTE_OFFSET / PA_ALIGN)
#define PA_POOLS_OFFSET   (PA_WASTE_OFFSET + PA_WASTE_SIZE)
#define PA_POOL_DESC_SIZE 64
#define PA_META_OFFSET    (PA_POOLS_OFFSET + PA_REGION_PAGES * PA_POOL_DESC_SIZE)
#define PA_META_SIZE      16
#define PA_ARENAS_OFFSET  (PA_META_OFFSET + PA_REGION_PAGES * PA_META_SIZE)
#define PA_ARENA_HDR_SIZE 64
#define PA_ADDR_BITS      47                             /* user space of x86-64 / aarch64 (4 levels) */
#define PA_MAP_ENTRIES    ((size_t)1 << (PA_ADDR_BITS - PA_REGION_SHIFT)) /* 4 Mi bytes of .bss */
#define PA_MAX_REGIONS    4096                           /* 128 GiB of small objects at most */

#define PA_FREE_FILL      0xdb                           /* PYARENA_CHECK=2: free blocks' bytes */

/* A thread batches its frees into another thread's pool, per class, and pushes a batch when
 * it reaches this many bytes or PA_REMOTE_BATCH_MAX blocks (or at its next malloc slow path,
 * malloc_trim or exit): at most about 60 KiB per thread wait to go back. */
#define PA_REMOTE_BATCH_BYTES 2048
#define PA_REMOTE_BATCH_MAX   16
_Static_assert(PA_REMOTE_BATCH_BYTES / PA_SMALL_MAX >= 2, "every class batches two blocks");

/* Defaults of the settings (README, "Settings"). */
#define PA_DEFAULT_CHECK        1      /* cheap checks: double free, invalid pointers */
#define PA_DEFAULT_ARENA_CACHE  2      /* wholly free arenas kept resident whatever their age */
#define PA_DEFAULT_PURGE        1      /* give the pages of empty pools back with madvise */
#define PA_DEFAULT_DECAY_MS     1000   /* empty pools stay resident this long... */
#define PA_DEFAULT_DIRTY_MAX    16384  /* ...unless more than this many (64 MiB) wait */
#define PA_DEFAULT_THREAD_CACHE 1      /* a thread caches a pool's worth of each class... */
#define PA_MAX_THREAD_CACHE     16     /* ...at most 16 (a bin counts in 15 bits) */
_Static_assert(PA_MAX_THREAD_CACHE * (PA_POOL_SIZE / PA_ALIGN) < 32767, "bin room fits");
#define PA_DEFAULT_SPARE_POOLS  512    /* empty pools (2 MiB) a thread keeps for its next ones */
#define PA_MAX_SPARE_POOLS      65536
#define PA_RELINK_CAP           8      /* fills relink a wholly free pool whose list runs
                                          backward forward only at this many blocks or fewer
                                          (cache.c) */
#define PA_SPARE_PERIOD         1024   /* spare list events between two checks of its use */
#define PA_SPARE_DECAY_EVENTS   64     /* spare list events between two looks at the decay */
#define PA_LARGE_DECAY_EVENTS   64     /* a thread's malloc slow paths between two looks at the
                                          large path's decay... */
#define PA_LARGE_DECAY_TICK_MS  50     /* ...which moves it at most this often */
#define PA_LARGE_DECAY_ARM_BYTES ((size_t)4 << 20) /* ...once this much has been taken */
_Static_assert(PA_SPARE_PERIOD % PA_SPARE_DECAY_EVENTS == 0, "ticks line up");
#define PA_SWEEP_SAMPLE         4      /* a freer looks at an owner's activity once in this
                                          many of its completions of that owner's FULL pools */
#define PA_SWEEP_IDLE_MS        2      /* an owner with no malloc slow path for this long
                                          (1-2 ms: the clock's are milliseconds) is idle, while
                                          other threads complete its pools */
#define PA_SWEEP_RATIO          4      /* a sweep of an idle owner's reclaim stack waits for a
                                          quarter of its length in completions (heap.c) */

_Static_assert(PA_SMALL_MAX % PA_ALIGN == 0, "classes must tile the small range");
_Static_assert(PA_ARENA_SIZE % PA_POOL_SIZE == 0, "an arena is a whole number of pools");
_Static_assert(PA_ARENA_POOLS == 64, "pool bitmaps of an arena are one 64-bit word");
_Static_assert(PA_REGION_SIZE % PA_ARENA_SIZE == 0, "a region is a whole number of arenas");
_Static_assert(PA_REGION_ARENAS == 128, "region slot bitmaps are two 64-bit words");
_Static_assert(PA_ARENAS_OFFSET + PA_REGION_ARENAS * PA_ARENA_HDR_SIZE <= PA_REGION_SIZE,
               "the tables fit behind the usable arenas");
_Static_assert(PA_POOLS_OFFSET % PA_POOL_SIZE == 0 && PA_META_OFFSET % PA_POOL_SIZE == 0,
               "the tables start on pages; an arena's descriptors fill one page");
_Static_assert(PA_ARENA_POOLS * PA_POOL_DESC_SIZE == PA_POOL_SIZE, "one page of descriptors");
_Static_assert(PA_SMALL_MAX * 8 <= PA_POOL_SIZE, "the largest class still fits 8 blocks a pool");

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Symbols other object files of the library call, never exported from the shared object. */
#define PA_HIDDEN   __attribute__((visibility("hidden")))
#define PA_EXPORT   __attribute__((visibility("default")))

#endif
