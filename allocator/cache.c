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
 * test and a branch. An empty one takes a pool's whole list, which needs no walk: the list and
 * its length are at hand. With the cache off (cap 0), every malloc takes the slow path, which
 * then pops from the pool itself. */
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

/* Malloc found bin cls empty, and p is the ring head with free blocks: its whole list moves to
 * the bin, without a walk (the bin holds at least a pool's worth, so it fits), and the pool
 * counts the blocks as used from now on. */
void pa_cache_fill(pa_heap *h, pa_pool *p, size_t cls)
{
    /* an ATTACHED pool's used count is left: its other blocks are all on its list */
    uint32_t n = pa_pool_capacity(p) + p->pinned - p->left;
    h->bin[cls] = p->free;
    /* after: a remote double-free check (is_free) must find the blocks on one list or the
     * other, never between them */
    __atomic_store_n(&p->free, NULL, __ATOMIC_RELEASE);
    p->counts += n;   /* left; no carry: used becomes the capacity (+ 1 pinned) */
    h->bin_counts[cls].room = (int16_t)(h->cache_cap[cls] - n);
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
