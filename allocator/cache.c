/* cache.c — the thread cache (pa_heap.bin, internal.h) behind the fast paths of alloc.h, which
 * do all its work but this: setting a heap's bins up, filling an empty one from a pool,
 * emptying them back into the pools at thread exit and malloc_trim, and finding a block in one
 * for the checks.
 *
 * A bin holds PYARENA_THREAD_CACHE pools' worth of its class (one by default: 4 KiB, 128 KiB a
 * thread for all classes; two gain the churn nothing more). Its blocks keep their pools in
 * use, so at worst a bin keeps one pool per block (256 for the 16-byte class) until the thread
 * mallocs them again, calls malloc_trim or exits; jemalloc's and glibc's caches hold their
 * slabs and chunks the same way.
 *
 * A bin is never flushed in bulk: that would walk its list, a chain of dependent loads, for
 * every block that goes through while a program frees more of a class at once than the bin
 * holds. A full bin instead lets frees through to their pools, so that such a program pays a
 * test and a branch. An empty one takes a pool's whole list, whose head and length are at
 * hand, put in address order on the way where that is cheap (a walk only for a list of a few
 * blocks). With the cache off (cap 0), every malloc takes the slow path, which then pops from
 * the pool itself. */
#include "alloc.h"

void pa_cache_init(pa_heap *h)
{
    for (size_t c = 0; c < PA_NCLASSES; c++) {
        /* PYARENA_CHECK=2 checks every block on its way in and out of a pool: no cache */
        uint32_t cap = pa_hot.careful ? 0
                     : pa_config.thread_cache * (uint32_t)(PA_POOL_SIZE / pa_class_size(c));
        h->cache_cap[c] = (uint16_t)cap;
        h->bin[c] = NULL;
        h->bin_counts[c].room = (int16_t)cap;
    }
}

/* The n free blocks of p, on its list, as a list in address order, lowest first, where that
 * is cheap to get: a thread then hands out consecutive blocks at rising addresses, as from a
 * fresh pool, rather than in the order its frees left them. A program that later reads its
 * objects in the order it made them (CPython's collector walks every container that way; lists
 * and dicts are read in order) then reads memory forward, which the hardware prefetchers follow;
 * in the order of the frees, each block costs a miss of its own. jemalloc's slabs hand out their
 * lowest free region first, to the same effect. On bench/py_workload.py the interpreter's own
 * time (perf samples outside the allocator) fell by 16 % when every fill was sorted.
 *
 *   - Every block free: relinked in one pass over the page without reading the list, unless
 *     the list starts at the page's first block, as a carved list and one freed in the reverse
 *     of the order it was handed out do, or, in a pool of more than PA_RELINK_CAP blocks, at
 *     its last, as one freed in that order does: such a list is most likely in order already,
 *     forward or backward (if it is not, only the order suffers). Backward, a pool of
 *     512-byte blocks costs more than the pass (fifo/512, 21 alternating runs: 6.6 % less
 *     time relinked, with the spares taken in address order, spare.c); below 464 bytes (9 or
 *     more blocks; measured at 256) the pass costs more than it gains (fifo/256: +3.5 %, 8.8
 *     instructions a pair), and spare.c lines such pools up falling instead.
 *   - Fewer than a quarter free: a walk of the list sets a bit per block.
 *   - Otherwise the list stays as it is: sorting it costs a walk or a scan of the page, about
 *     twenty instructions per block (callgrind, random-order batches of 64-byte blocks, where
 *     the bin pins each pool with a block or two), for a gain only programs that keep what they
 *     allocate would see. */
static pa_block *pool_list_sorted(pa_pool *p, char *page, size_t size, uint32_t n,
                                  pa_block *head);

static pa_block *pool_list_in_order(pa_pool *p, size_t cls, uint32_t n, uint32_t cap,
                                    uint32_t *len)
{
    char *page = pa_pool_page(p);
    size_t size = pa_class_size(cls);
    uintptr_t key = pa_free_mark(NULL);
    pa_block *head = p->free;
    if (n == cap) {
        if (head == (pa_block *)page || pa_list_kept_backward(head, page, size, cap))
            return head;
        /* the counts say every block is free; after a double free that went unseen (level
         * 0, or a mark broken by a write after free) they may be wrong, and a block without
         * the mark is live: it is left out (and the double-freed one, on the list twice,
         * comes once). One pass reads each mark and links the marked blocks. */
        pa_block *first = NULL, **link = &first;
        uint32_t linked = 0;
        for (char *b = page, *end = page + cap * size; b < end; b += size) {
            if (unlikely(((pa_block *)b)->mark != key))
                continue;
            *link = (pa_block *)b;
            link = &((pa_block *)b)->next;
            linked++;
        }
        *link = NULL;
        if (unlikely(linked == 0))   /* no mark at all: the page was overwritten; as it is */
            return head;
        *len = linked;
        return first;
    }
    if (4 * n >= cap)
        return head;
    return pool_list_sorted(p, page, size, n, head);
}

/* The fewer-than-a-quarter case, out of line: its bitmap would give every fill a stack frame.
 * A list that is not what the counts say (written after a free: a link out of the page, into
 * a block, to a block without the free mark, back to a block seen, or longer or shorter than
 * n) is left as it is, as it was before fills sorted anything: the walk must neither loop nor
 * hand out a block that is not free. */
static __attribute__((noinline)) pa_block *pool_list_sorted(pa_pool *p, char *page, size_t size,
                                                            uint32_t n, pa_block *head)
{
    uintptr_t key = pa_free_mark(NULL);
    uint64_t bits[PA_POOL_SIZE / PA_ALIGN / 64] = { 0 };   /* 256 blocks of the 16-byte class */
    uint32_t magic = pa_meta(p)->magic;
    uint32_t seen = 0;
    for (pa_block *b = head; b; b = b->next, seen++) {
        if (seen == n || !pa_pool_link_ok(p, b) || b->mark != key)
            return head;
        /* the offset times magic, over 2^32, is the block's index */
        uint32_t i = (uint32_t)((((uintptr_t)b & (PA_POOL_SIZE - 1)) * (uint64_t)magic) >> 32);
        uint64_t bit = UINT64_C(1) << (i % 64);
        if (bits[i / 64] & bit)
            return head;
        bits[i / 64] |= bit;
    }
    if (seen != n)
        return head;
    head = NULL;   /* linked from the highest block down, so that the lowest comes first */
    for (size_t w = sizeof bits / sizeof bits[0]; w-- > 0;) {
        for (uint64_t x = bits[w]; x; ) {
            unsigned top = 63u - (unsigned)__builtin_clzll(x);
            x &= ~(UINT64_C(1) << top);
            pa_block *b = (pa_block *)(page + (w * 64 + top) * size);
            b->next = head;
            head = b;
        }
    }
    return head;
}

/* Malloc found bin cls empty, and p is the ring head with free blocks: its whole list moves to
 * the bin (the bin holds at least a pool's worth, so it fits), in address order where that is
 * cheap (above), and the pool counts the blocks as used from now on. */
void pa_cache_fill(pa_heap *h, pa_pool *p, size_t cls)
{
    /* an ATTACHED pool's used count is left: its other blocks are all on its list */
    uint32_t cap = pa_pool_capacity(p), n = cap + p->pinned - p->left;
    /* A double-free check on another thread (is_free, check.c) walks p's list and this bin:
     * while the links are rewritten it may find a free block on neither, so the sequence is
     * odd meanwhile and it looks again. Raw links: the cache runs at levels 0 and 1 only. */
    uint32_t seq = atomic_load_explicit(&h->fill_seq, memory_order_relaxed);
    atomic_store_explicit(&h->fill_seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    uint32_t len = n;   /* fewer only when a live block was left out */
    __atomic_store_n(&h->bin[cls], pool_list_in_order(p, cls, n, cap, &len), __ATOMIC_RELEASE);
    /* after: such a check must find the blocks on one list or the other */
    __atomic_store_n(&p->free, NULL, __ATOMIC_RELEASE);
    atomic_store_explicit(&h->fill_seq, seq + 2, memory_order_release);
    p->counts += n;   /* left; no carry: used becomes the capacity (+ 1 pinned) */
    h->bin_counts[cls].room = (int16_t)(h->cache_cap[cls] - len);
}

void pa_cache_flush_all(pa_heap *h)
{
    for (size_t c = 0; c < PA_NCLASSES; c++) {
        pa_block *b = h->bin[c];
        h->bin[c] = NULL;
        h->bin_counts[c].room = (int16_t)h->cache_cap[c];
        while (b) {
            pa_block *next = b->next;
            pa_heap_free_local(h, pa_pool_of(b), b);
            b = next;
        }
    }
}

/* Is b on h's bin cls? For the checks, which may run on another thread than h's: every link
 * is checked to be a block start of h's pools of that class before it is followed, and the
 * walk is bounded, so a list changing meanwhile cannot take it outside pools in use. */
bool pa_cache_holds(const pa_heap *h, size_t cls, const pa_block *b)
{
    if (h == NULL)
        return false;
    const pa_block *x = __atomic_load_n(&h->bin[cls], __ATOMIC_ACQUIRE);
    for (uint32_t n = 0; x && n <= h->cache_cap[cls]; n++) {
        if (!pa_owned(x))
            return false;
        const pa_pool_meta *m = pa_meta_of(x);
        if (pa_meta_owner(m) != h || m->cls != cls || !pa_block_start(m, x))
            return false;
        if (x == b)
            return true;
        x = __atomic_load_n(&x->next, __ATOMIC_RELAXED);
    }
    return false;
}
