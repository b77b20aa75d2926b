/* internal.h — the memory layout of the small-object allocator and every cross-file internal
 * function, grouped by the file that defines it. Nothing here is exported from the library.
 *
 * Layers (addresses grow to the right):
 *
 *   region (32 MiB of reserved address space, aligned to 32 MiB; one byte in pa_space_map says "ours")
 *   +---------+---------+-----+-----------+-------+-------------+----------+---------+
 *   | arena 0 | arena 1 | ... | arena 117 | waste | descriptors | metadata | headers |
 *   +---------+---------+-----+-----------+-------+-------------+----------+---------+
 *   arenas are committed and released one by one; the tables after them (config.h) hold
 *   everything the allocator knows about them, so that arenas hold nothing but blocks
 *
 *   arena (256 KiB, aligned to 256 KiB)
 *   +--------+--------+-----+---------+
 *   | pool 0 | pool 1 | ... | pool 63 |
 *   +--------+--------+-----+---------+
 *
 *   pool (4 KiB page, one size class)
 *   +-------+-------+-------+-----+---------+
 *   | block | block | block | ... | (slack) |     capacity = 4096 / class size blocks
 *   +-------+-------+-------+-----+---------+
 *
 * From any small pointer p, all arithmetic: base = p & ~(32M-1); i = (p >> 12) & 8191, the page
 * of the region; descriptor = base + PA_POOLS_OFFSET + 64 i; metadata = base + PA_META_OFFSET
 * + 16 i; arena header = base + PA_ARENAS_OFFSET + 64 (i / 64).
 *
 * Pool states and which list holds a pool in each:
 *   FREE      in its arena's free-pool list; no class, no owner. Its page may still be resident
 *             ("dirty") until purged with madvise.
 *   ATTACHED  in its owner heap's ring for its class; head of the ring (heap->cur[cls]) is where
 *             allocation pops from; every other ring member has local free blocks.
 *   FULL      detached from the ring (local free list empty, no remote frees seen), in no list:
 *             nothing looks for it until a free reaches it. Enough local frees reattach it
 *             (slow_at); the first remote free queues it on the owner's reclaim stack (see
 *             thread_free flags), from which the owner reattaches it, or, once other threads
 *             have freed every block while the owner was idle, one of them gives it back to
 *             its arena (heap.c, "idle owners").
 */
#ifndef PA_INTERNAL_H
#define PA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/single_threaded.h>
#include <sys/types.h>

#include "config.h"

/* A free block; the two words fit the smallest class. */
typedef struct pa_block {
    struct pa_block *next;        /* xor pa_hot.list_key (0 unless PYARENA_CHECK=2) */
    uintptr_t        mark;        /* pa_free_mark(b) while free (from carving on), 0 once
                                     handed out */
} pa_block;

enum pa_pool_state { PA_POOL_FREE = 0, PA_POOL_ATTACHED, PA_POOL_FULL };

/* thread_free word: a stack of blocks freed by other threads, with two flags in the low bits
 * (blocks are 16-byte aligned) and the stack's length in the top 16 bits (user addresses
 * have 47), so that the owner takes the stack without walking it: the blocks were last
 * written by other cores, and a walk would miss on each of them in turn.
 *   bits 63..48  blocks on the stack (a pool holds at most 256)
 *   bits 47..4   the top block
 *   DETACHED  the pool is FULL: set by the owner, only when the stack is empty, once it has
 *             moved the pool there (so that whoever sees the flag sees a FULL pool the owner
 *             no longer touches), cleared only by the owner as it reattaches the pool. A
 *             remote freer that finds it without QUEUED queues the pool on the owner's
 *             reclaim stack.
 *   QUEUED    the pool sits on its owner's reclaim stack (reclaim_next is in use); set by the
 *             remote freer that queues it, cleared by whoever pops it: the owner, or a sweep
 *             that takes it back wholly free from an idle owner (heap.c).
 * Remote freers only push (one CAS); the owner only takes the whole stack: no ABA. */
#define PA_TF_DETACHED  ((uintptr_t)1)
#define PA_TF_QUEUED    ((uintptr_t)2)
#define PA_TF_FLAGS     ((uintptr_t)3)
#define PA_TF_COUNT_SHIFT 48
#define PA_TF_COUNT_ONE ((uintptr_t)1 << PA_TF_COUNT_SHIFT)
#define PA_TF_COUNT     (~(uintptr_t)0 << PA_TF_COUNT_SHIFT)
_Static_assert(PA_ADDR_BITS <= PA_TF_COUNT_SHIFT, "block addresses stay below the count");

/* True while the process has one thread: glibc clears __libc_single_threaded (2.32) in
 * pthread_create before the new thread exists, and only the calling thread can create one, so
 * a true read holds until this thread starts another. Until then nothing can race with us:
 * the arena lock and the owner's CAS on a pool's thread_free word are skipped, as glibc's own
 * malloc skips its arena locks (SINGLE_THREAD_P). A locked instruction costs about as much
 * as a pool's whole state change, at 512 bytes several per 8 blocks. Before libc sets it up
 * the variable reads false: the locked paths. */
static inline bool pa_single_threaded(void)
{
    return __libc_single_threaded;
}

static inline struct pa_block *pa_tf_stack(uintptr_t tf)
{
    return (struct pa_block *)(tf & ~(PA_TF_COUNT | PA_TF_FLAGS));
}

static inline uint32_t pa_tf_count(uintptr_t tf)
{
    return (uint32_t)(tf >> PA_TF_COUNT_SHIFT);
}

/* The reclaim word of a heap: the top pool and the stack's length, which saturates. */
static inline struct pa_pool *pa_rc_top(uintptr_t rc)
{
    return (struct pa_pool *)(rc & ~PA_TF_COUNT);
}

static inline uint32_t pa_rc_count(uintptr_t rc)
{
    return (uint32_t)(rc >> PA_TF_COUNT_SHIFT);
}

static inline uintptr_t pa_rc_push(uintptr_t rc, struct pa_pool *top, uint32_t n)
{
    uintptr_t count = (rc >> PA_TF_COUNT_SHIFT) + n;
    uintptr_t max = PA_TF_COUNT >> PA_TF_COUNT_SHIFT;
    return (uintptr_t)top | ((count < max ? count : max) << PA_TF_COUNT_SHIFT);
}

/* The owner's free fast path leaves for pa_heap_free_slow when the pool's used count (blocks
 * not on its local list) comes down to slow_at: for an ATTACHED pool slow_at is 0 (the pool
 * just became empty); for a FULL pool it is capacity - max(capacity/8, 2), so a full pool goes
 * back on its ring only once an eighth of it (two blocks at least) is free again, instead of
 * ping-ponging between FULL and ATTACHED one block at a time. The descriptor keeps
 * left = used - slow_at rather than used, so that the fast path's test is a decrement that
 * sets the flags (`--left == 0`); used is left + slow_at, modulo 2^16 (taking a remote stack
 * into a FULL pool may take left below 0 until the pool is reattached). A pinned pool (the
 * only one of its class) carries +1 in used, so a malloc/free cycle on it never leaves the
 * fast path; live blocks = used - pinned. */
#define PA_REATTACH_SHIFT 3

struct pa_heap;

/* Pool descriptor: what the owner writes (the free list and its counts when its thread's cache
 * takes the list or lets a free through, at every malloc and free with the cache off; ring
 * links and state on transitions) and the remote stack, which other threads push to once per
 * batch. One cache line, so that owners of neighbouring pools never share a line;
 * what other threads read at every free is in pa_pool_meta, below. */
typedef struct pa_pool {
    pa_block          *free;         /* owner: blocks ready to hand out, LIFO */
    union {                          /* owner; one word, so that a malloc counts both at once */
        uint64_t       counts;       /* left in bits 0-15, handouts in bits 16-63 */
        struct {
            uint16_t   left;         /* used - slow_at, where used counts the blocks not on
                                        `free` (live, in its owner's cache, or remote-freed but
                                        not collected) + pinned; see PA_REATTACH_SHIFT and
                                        pa_pool_used */
            uint16_t   handouts_[3]; /* blocks handed out since the pool was taken: read with
                                        pa_pool_handouts; they go to the class's total when the
                                        pool goes back to its arena */
        };
    };
    uint16_t           slow_at;      /* owner: used at the free fast path's exit */
    uint8_t            pinned;       /* 1: sole pool of its class ring, with used biased by 1
                                        so that churn on it never reads as "empty" */
    uint8_t            carved;       /* cls + 1 while the page holds that class's complete
                                        free list, also while FREE; 0 once purged */
    uint8_t            state;        /* enum pa_pool_state; FULL and ATTACHED alternate often,
                                        and the metadata's line is shared (owner != NULL there
                                        says "not FREE" to other threads) */
    struct pa_pool    *next, *prev;  /* ATTACHED: class ring, or its heap's spare list (empty,
                                        off the ring); FREE: arena list; FULL: unused */
    _Atomic uintptr_t  thread_free;  /* remote frees | PA_TF_* flags */
    struct pa_pool    *reclaim_next; /* link in owner->reclaim while QUEUED */
} __attribute__((aligned(64))) pa_pool;

_Static_assert(sizeof(pa_pool) == 64, "pool descriptors are one cache line");

/* Pool metadata: the read-mostly half, in the region's metadata table (config.h), 16 bytes per
 * page. A thread freeing into another thread's pool reads only this half and the block, so
 * it no longer takes the line the owner writes at every malloc (which cost a miss on each
 * side per block in producer/consumer pairs). Written only when the pool is taken from its
 * arena or given back, so that entries can share lines: four to a line. Pages that hold no
 * pool (the region's tables, unused slots) read as zeroes: no owner, as for a FREE pool. */
typedef struct pa_pool_meta {
    struct pa_heap    *owner;        /* heap that allocates from it, | PA_OWNER_CAREFUL under
                                        PYARENA_CHECK=2 (read it with pa_pool_owner); NULL while
                                        FREE */
    uint32_t           magic;        /* ceil(2^32 / block size): divisibility by a multiply */
    uint16_t           limit;        /* end of the last block: capacity * block size */
    uint8_t            cls;          /* size class index */
} pa_pool_meta;

_Static_assert(sizeof(pa_pool_meta) == PA_META_SIZE, "metadata entries are 16 bytes");

/* Under PYARENA_CHECK=2 a pool's owner word carries this bit, so that it never equals the
 * calling thread's heap and the inline free sends every free of the pool down the careful
 * remote path (heap.c) without a test of the level of its own. */
#define PA_OWNER_CAREFUL ((uintptr_t)1)

static inline uint16_t pa_pool_used(const pa_pool *p)
{
    return (uint16_t)(p->left + p->slow_at);
}

/* A malloc's bookkeeping in one add: left + 1 and handouts + 1 (of a pool, or room + 1 and
 * handouts + 1 of a bin). No carry crosses from left into the count, since only an ATTACHED
 * pool hands out blocks, and its left is used (+1 pinned), at most the capacity + 1; nor from
 * room, which a malloc takes at most to cache_cap. */
#define PA_HANDOUT (((uint64_t)1 << 16) | 1)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "left is the low 16 bits of counts");

static inline void pa_pool_handout(pa_pool *p)
{
    p->counts += PA_HANDOUT;
}

/* Blocks handed out since the pool was taken from its arena (read racily by the stats). */
static inline uint64_t pa_pool_handouts(const pa_pool *p)
{
    return __atomic_load_n(&p->counts, __ATOMIC_RELAXED) >> 16;
}

/* Arena header, in its region's table of headers. Fields under pa_arena_lock. */
typedef struct pa_arena {
    struct pa_arena   *next, *prev;  /* in bucket nfree (1..64, 64: wholly free); none when 0 */
    pa_pool           *free_pools;   /* FREE pools, linked by next, most recently freed first */
    uint32_t           nfree;        /* pools on free_pools */
    uint32_t           region;       /* index of its region */
    uint64_t           dirty;        /* bit i: pool i is FREE and its page may be resident */
    struct pa_arena   *dirty_next, *dirty_prev; /* on the dirty list while dirty != 0 */
    uint64_t           dirty_since;  /* ms (monotonic) when dirty last went from 0 to non-0 */
} pa_arena;

_Static_assert(sizeof(pa_arena) == PA_ARENA_HDR_SIZE, "arena headers are 64 bytes");
_Static_assert(sizeof(pa_pool) == PA_POOL_DESC_SIZE, "descriptors are 64 bytes");

/* Per-thread heap. Everything but `reclaim` and `state` is touched by the owning thread only
 * (or, once the heap is abandoned, under pa_heaps_lock). Heaps are never unmapped: a heap whose
 * thread exited is adopted by the next new thread, so pool->owner stays valid forever. */
/* Blocks this thread freed into one pool of another heap, not pushed yet: one CAS pushes the
 * whole chain (heap.c, "remote frees"). */
typedef struct pa_remote_batch {
    pa_pool  *pool;    /* NULL: empty */
    pa_block *first;   /* chain first .. last, linked with pa_link */
    pa_block *last;
    uint32_t  n;       /* blocks in the chain, below limit */
    uint32_t  limit;   /* pushed when n reaches it: PA_REMOTE_BATCH_MAX blocks, fewer if
                          PA_REMOTE_BATCH_BYTES fit fewer of the class (at least 2: config.h) */
} pa_remote_batch;

/* Thread cache bin: free blocks of one class from any of the heap's pools, most recently
 * freed first, so that a block freed and soon wanted again by the same thread neither goes
 * back to its pool nor comes out of it: malloc and free touch only this and the block, not
 * the pool's descriptor (a cache line per 4 KiB, which a working set of a few thousand pools
 * no longer keeps in L2). The pools count cached blocks as used. A bin holds at most
 * cache_cap blocks: a free finding it full goes on to the pool, and a malloc finding it empty
 * has it take the current pool's whole list, so that nothing ever walks a bin (cache.c). */
/* A bin is its list's head, in pa_heap.bin, and this word, in pa_heap.bin_counts: two arrays
 * of 8-byte entries, which the fast paths index by class with no multiply. */
typedef union pa_bin_counts {        /* one word, so that a malloc counts both at once */
    uint64_t           counts;       /* room in bits 0-15, handouts in bits 16-63 */
    struct {
        int16_t        room;         /* cache_cap - blocks on the list: at 0, frees go on
                                        to the pools */
        uint16_t       handouts_[3]; /* blocks malloc popped from the list (pa_bin_handouts) */
    };
} pa_bin_counts;

typedef struct pa_heap {
    pa_block          *bin[PA_NCLASSES];  /* the thread cache, where malloc and free start: free
                                             blocks linked raw (levels 0 and 1 only) */
    pa_bin_counts      bin_counts[PA_NCLASSES];
    pa_pool           *cur[PA_NCLASSES];  /* ring head per class; &pa_empty_pool when empty */
    uint16_t           cache_cap[PA_NCLASSES]; /* blocks a bin may hold, set with the heap (0:
                                             the cache is off, PYARENA_CHECK=2 included) */
    _Atomic uintptr_t  reclaim;           /* FULL pools that received remote frees: a stack
                                             linked by reclaim_next, its length (saturating)
                                             in the top 16 bits as in thread_free */
    _Atomic uint32_t   slow_paths;        /* the owner's malloc slow paths: its ticks, and
                                             what tells the sweeps an active owner (heap.c) */
    _Atomic uint32_t   sweep_seen;        /* slow_paths at the last sample by a freer... */
    _Atomic uint64_t   sweep_seen_ms;     /* ...that found it changed, and when */
    _Atomic uint32_t   sweep_credit;      /* completions sampled since the last sweep */
    _Atomic int        state;             /* enum pa_heap_state */
    _Atomic uint32_t   fill_seq;          /* odd while a fill relinks a pool's list into a bin
                                             (cache.c): a double-free check on another thread
                                             that found nothing meanwhile looks again */
    struct pa_heap    *next_all;          /* every heap ever made */
    struct pa_heap    *next_abandoned;
    uint64_t           nremote;           /* blocks other threads freed into this heap's pools,
                                             counted when taken back */
    _Atomic uint64_t   nremote_swept;     /* ... and those a sweep took back with their pools */
    uint32_t           sweep_countdown;   /* this thread's completions of other heaps' pools
                                             until it samples their owner (heap.c) */
    pa_remote_batch    remote[PA_NCLASSES]; /* this thread's frees into other heaps, by class;
                                               touched only by the thread (LIVE heaps only) */
    _Atomic int        spare_lock;        /* 1 while a thread works on the list (spare.c) */
    pa_pool           *spare, *spare_top; /* empty pools kept for the next ones, lowest
                                             first (spare.c) */
    uint32_t           nspare;            /* on that list: at most PYARENA_SPARE_POOLS */
    uint32_t           spare_low;         /* the fewest on it since the last period's end */
    uint32_t           spare_events;      /* puts and takes in this period */
    _Atomic uint32_t   spare_idle;        /* set by a sweep, cleared by every put and take: a
                                             sweep that finds it still set gives the list back
                                             (spare.c) */
    uint64_t           spare_handouts[PA_NCLASSES]; /* handouts of pools that went spare, by
                                             class (read racily by the stats) */
} pa_heap;

/* Blocks malloc took from h's bin c, and blocks on it now (both read racily by the stats). */
static inline uint64_t pa_bin_handouts(const pa_heap *h, size_t c)
{
    return __atomic_load_n(&h->bin_counts[c].counts, __ATOMIC_RELAXED) >> 16;
}

static inline uint32_t pa_bin_cached(const pa_heap *h, size_t c)
{
    int16_t room = (int16_t)__atomic_load_n(&h->bin_counts[c].counts, __ATOMIC_RELAXED);
    /* a full bin reads -1 for a moment, while a free passes it by; room never exceeds the cap */
    return room < 0 ? h->cache_cap[c] : (uint32_t)(h->cache_cap[c] - room);
}

enum pa_heap_state {
    PA_HEAP_BOOT = 0,   /* the static heap of a thread that has not allocated yet */
    PA_HEAP_LIVE,       /* owned by a running thread */
    PA_HEAP_ABANDONED,  /* its thread exited; waits for adoption; freed into under pa_heaps_lock */
    PA_HEAP_ORPHAN,     /* in a fork child: its thread did not survive the fork; only pushed to */
    PA_HEAP_DEAD,       /* the static heap of a thread past its exit destructor */
};

/* ---- heap.c */
PA_HIDDEN extern __thread pa_heap *pa_tls_heap __attribute__((tls_model("initial-exec")));
PA_HIDDEN extern pa_pool pa_empty_pool;
PA_HIDDEN void *pa_heap_alloc_slow(pa_heap *h, size_t cls);
PA_HIDDEN void *pa_heap_alloc_slow_tracked(pa_heap *h, size_t cls, size_t n);   /* stats on */
PA_HIDDEN void  pa_heap_free_slow(pa_heap *h, pa_pool *p);
PA_HIDDEN void  pa_heap_free_local(pa_heap *h, pa_pool *p, pa_block *b);
PA_HIDDEN void  pa_heap_free_remote(pa_heap *h, pa_block *b);
PA_HIDDEN void  pa_heap_remote_flush(pa_heap *h);   /* pushes every batch of h (any state) */
PA_HIDDEN void  pa_heap_thread_exit(void *heap);
PA_HIDDEN void  pa_heap_collect_all(pa_heap *h);   /* cache, remote batches, empty pools */
PA_HIDDEN void  pa_heap_sweep_all(void);   /* other heaps' wholly free FULL pools: trim */
PA_HIDDEN void  pa_heap_fork_prepare(void);
PA_HIDDEN void  pa_heap_fork_parent(void);
PA_HIDDEN void  pa_heap_fork_child(void);
PA_HIDDEN pa_heap *pa_heap_first(void);
PA_HIDDEN extern pthread_key_t pa_heap_key;

/* ---- spare.c (the owner, and malloc_trim from any thread, under the heap's spare_lock) */
PA_HIDDEN void     pa_spare_put(pa_heap *h, pa_pool *p);
PA_HIDDEN pa_pool *pa_spare_take(pa_heap *h, size_t cls);
PA_HIDDEN void     pa_spare_flush(pa_heap *h);
PA_HIDDEN void     pa_spare_flush_all(void);     /* every live heap's: malloc_trim */
PA_HIDDEN void     pa_spare_sweep(pa_heap *self); /* idle heaps' (tests call it directly) */
PA_HIDDEN void     pa_spare_fork_prepare(void);  /* under pa_heaps_lock */
PA_HIDDEN void     pa_spare_fork_parent(void);
PA_HIDDEN void     pa_spare_fork_child(void);

/* ---- cache.c */
PA_HIDDEN void  pa_cache_init(pa_heap *h);
PA_HIDDEN void  pa_cache_fill(pa_heap *h, pa_pool *p, size_t cls);
PA_HIDDEN void  pa_cache_flush_all(pa_heap *h);
PA_HIDDEN bool  pa_cache_holds(const pa_heap *h, size_t cls, const pa_block *b);

/* ---- pool.c */
PA_HIDDEN void   pa_pool_init(pa_pool *p, pa_heap *owner, size_t cls);
PA_HIDDEN bool   pa_pool_collect(pa_pool *p);
PA_HIDDEN void   pa_pool_take(pa_pool *p, pa_block *first, uint32_t n);
PA_HIDDEN size_t pa_pool_free_count(const pa_pool *p);

/* ---- arena.c (all under pa_arena_lock, taken inside) */
PA_HIDDEN pa_pool *pa_arena_pool_get(void);
PA_HIDDEN void     pa_arena_pool_put(pa_pool *p);
PA_HIDDEN void     pa_arena_put_idle(pa_pool *chain);   /* linked by reclaim_next */
PA_HIDDEN void     pa_arena_decay_tick(void);
PA_HIDDEN size_t   pa_arena_trim(void);
PA_HIDDEN void     pa_arena_fork_prepare(void);
PA_HIDDEN void     pa_arena_fork_parent(void);
PA_HIDDEN void     pa_arena_fork_child(void);
typedef struct pa_arena_counts {
    size_t current, peak, allocated, released, cached, pools_purged, dirty_pools, pools_taken;
} pa_arena_counts;
PA_HIDDEN void     pa_arena_counts_get(pa_arena_counts *out);
/* Calls fn on every arena under pa_arena_lock; fn must not allocate or take that lock. Under
 * the same lock, when released is not NULL, adds to released[c] the handouts of the pools of
 * class c given back to their arenas since start (those in use are in their descriptors). */
PA_HIDDEN void     pa_arena_foreach(void (*fn)(pa_arena *a, void *arg), void *arg,
                                    uint64_t *released);

/* ---- space.c */
PA_HIDDEN extern uint8_t pa_space_map[PA_MAP_ENTRIES];
PA_HIDDEN pa_arena *pa_space_arena_new(void);
PA_HIDDEN void      pa_space_arena_release(pa_arena *a);
PA_HIDDEN size_t    pa_space_regions(void);
PA_HIDDEN void      pa_space_foreach(void (*fn)(pa_arena *a, void *arg), void *arg);

/* ---- os.c: every system call the allocator makes */
PA_HIDDEN void *pa_os_reserve(size_t size, size_t align);
PA_HIDDEN void  pa_os_release(void *addr, size_t size);
PA_HIDDEN int   pa_os_purge(void *addr, size_t size);
PA_HIDDEN uint64_t pa_os_now_ms(void);
PA_HIDDEN bool     pa_os_once_per(_Atomic uint64_t *last_ms, uint64_t period_ms);
PA_HIDDEN int   pa_os_write(int fd, const char *s, size_t n);
PA_HIDDEN void  pa_os_fail_next_maps(int n);   /* fault injection for tests */
PA_HIDDEN size_t pa_os_fmt_dec(char *buf, uint64_t v);
PA_HIDDEN uint64_t pa_os_scan_dec(const char **s);
PA_HIDDEN size_t pa_os_fmt_hex(char *buf, uint64_t v);
PA_HIDDEN void  pa_os_say(int fd, const char *const *parts, size_t nparts);
PA_HIDDEN _Noreturn void pa_os_fatal(const char *msg);

/* ---- large.c: requests above PA_SMALL_MAX or aligned above PA_ALIGN, through jemalloc */
PA_HIDDEN void  *pa_large_malloc(size_t size);   /* size >= 1: malloc's way here */
PA_HIDDEN void  *pa_large_calloc(size_t size);   /* size >= 1: calloc's */
PA_HIDDEN void  *pa_large_alloc(size_t size, size_t align);   /* any size and alignment */
PA_HIDDEN void   pa_large_free(void *ptr);        /* a live block of this path */
PA_HIDDEN void   pa_large_free_any(void *ptr);    /* free's way: checks, and NULL */
PA_HIDDEN void  *pa_large_realloc(void *ptr, size_t size);
PA_HIDDEN size_t pa_large_usable(const void *ptr);
PA_HIDDEN void   pa_large_decay_tick(void);   /* no lock held: it may re-enter malloc */
PA_HIDDEN bool   pa_large_trim(void);         /* malloc_trim: true if pages went back */
PA_HIDDEN void   pa_large_init(void);         /* right after pa_fork_register */
PA_HIDDEN void   pa_large_fork_child(void);   /* from our child handler */
PA_HIDDEN bool   pa_large_none_yet(void);     /* nothing handed out on this path so far */

/* ---- ledger.c: the large path's live blocks, under PYARENA_CHECK=2 */
PA_HIDDEN extern bool pa_ledger_on;
PA_HIDDEN void pa_ledger_start(bool without_handouts);   /* pa_init, after the settings */
PA_HIDDEN bool pa_ledger_add(const void *ptr);           /* false: no memory */
PA_HIDDEN void pa_ledger_check(const void *ptr, const char *fn);   /* must be live */
PA_HIDDEN void pa_ledger_take(const void *ptr, const char *fn);    /* must be live; freed */
PA_HIDDEN size_t pa_ledger_capacity(void);
PA_HIDDEN void pa_ledger_fork_prepare(void);
PA_HIDDEN void pa_ledger_fork_parent(void);
PA_HIDDEN void pa_ledger_fork_child(void);
#define PA_HIST_BUCKETS 48   /* bucket k: sizes in (2^(k-1), 2^k] */
typedef struct pa_large_snapshot {
    size_t in_use, bytes, allocs, frees, mapped;
    size_t hist[PA_HIST_BUCKETS];
} pa_large_snapshot;
PA_HIDDEN void   pa_large_snapshot_take(pa_large_snapshot *s);
PA_HIDDEN void   pa_large_totals(size_t *allocated, size_t *mapped);

/* ---- jemalloc_math.c: what jemalloc's references to libm are renamed to */
PA_HIDDEN double pa_jemalloc_log(double x);
PA_HIDDEN double pa_jemalloc_exp(double x);
PA_HIDDEN double pa_jemalloc_round(double x);

/* ---- settings (preload/settings.c): read once at start-up */
typedef struct pa_settings {
    unsigned    check;         /* PYARENA_CHECK */
    unsigned    arena_cache;   /* PYARENA_ARENA_CACHE */
    unsigned    purge;         /* PYARENA_PURGE */
    unsigned    dirty_max;     /* PYARENA_DIRTY_MAX */
    unsigned    decay_ms;      /* PYARENA_DECAY_MS */
    unsigned    thread_cache;  /* PYARENA_THREAD_CACHE: pools' worth a bin holds */
    unsigned    spare_pools;   /* PYARENA_SPARE_POOLS: empty pools a heap keeps */
    const char *stats;         /* PYARENA_STATS: NULL (off), "stderr", or a path with %p */
    int         stats_format;  /* PYARENA_STATS_FORMAT: PYARENA_STATS_TEXT or _JSON */
} pa_settings;
PA_HIDDEN extern pa_settings pa_config;
PA_HIDDEN void pa_settings_read(void);

/* ---- track.c: request sizes while stats are on (the waste table, see config.h) */
PA_HIDDEN extern uint8_t pa_track_on;
PA_HIDDEN void     pa_track_alloc(void *p, size_t n);
PA_HIDDEN void     pa_track_resize(void *p, size_t n);
PA_HIDDEN uint64_t pa_track_pool_waste(const pa_pool *p);   /* over p's live blocks */

/* ---- check.c: bad input (PYARENA_CHECK) and the careful paths */

/* What every malloc or free reads and only start-up writes, on a cache line of its own: when it
 * shared one with the arena lock, every pool taken or given back cost the other cores a miss on
 * their next malloc and free. */
typedef struct pa_hot_vars {
    uintptr_t free_key;     /* secret behind the free-block mark */
    uintptr_t list_key;     /* free-list pointer encoding, level 2 */
    size_t    small_limit;  /* malloc(n) takes the inline fast path iff n - 1 < small_limit:
                               PA_SMALL_MAX, or 0 while a mode is on (stats tracking or
                               PYARENA_CHECK=2): the one record of the mode */
    size_t    track_limit;  /* else the tracked one iff n - 1 < track_limit: PA_SMALL_MAX with
                               stats on at levels 0 and 1, else 0 */
    unsigned  check_level;  /* PYARENA_CHECK: 0, 1 (default) or 2 */
    uint8_t   careful;      /* 1 at level 2 */
} __attribute__((aligned(64))) pa_hot_vars;

PA_HIDDEN extern pa_hot_vars pa_hot;
PA_HIDDEN void  pa_check_init(void);
PA_HIDDEN void *pa_careful_malloc(size_t n);   /* small (n <= 512, or 0) */
PA_HIDDEN void  pa_check_free_slow(pa_pool *p, pa_block *b, const char *fn);
PA_HIDDEN void  pa_free_suspect(pa_heap *h, pa_block *b);
PA_HIDDEN void  pa_check_live(const void *ptr, const char *fn);
PA_HIDDEN void  pa_check_large(const void *ptr, const char *fn);
PA_HIDDEN void  pa_check_handout(pa_pool *p, pa_block *b);
PA_HIDDEN void  pa_check_freed(pa_pool *p, pa_block *b);
PA_HIDDEN _Noreturn void pa_check_fail(const char *what, const void *ptr, const char *fn,
                                       size_t class_size);
#define PA_LARGE_BLOCK SIZE_MAX   /* pa_check_fail's class_size for a block of the large path */

/* ---- fork.c (preload/) */
PA_HIDDEN void pa_fork_register(void);
PA_HIDDEN void pa_fork_guard_register(void);   /* right after pa_large_init */
PA_HIDDEN bool pa_fork_guard_needed(const char *glibc_version);   /* "2.36" and on */
/* around each registration atfork.c forwards to glibc; end gets what begin returned */
PA_HIDDEN bool pa_fork_forward_begin(void);
PA_HIDDEN void pa_fork_forward_end(bool locked);

/* ---- init.c (preload/): process-wide start-up, once */
PA_HIDDEN void pa_init(void);
PA_HIDDEN extern __thread int pa_tls_in_init __attribute__((tls_model("initial-exec")));
/* fork.c: the forking thread between our prepare and parent/child handlers */
PA_HIDDEN extern __thread bool pa_tls_in_fork __attribute__((tls_model("initial-exec")));

#endif
