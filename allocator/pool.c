/* pool.c — one pool's blocks: carving a fresh pool into its free list and taking back the
 * blocks other threads freed into it. Owner-only operations (see internal.h for the states). */
#include <string.h>

#include "alloc.h"

/* Carves the whole page at once: it is one page, touched by the first block anyway. Every
 * block gets the free mark, as a freed one would, and so does the slack. Under
 * PYARENA_CHECK=2 the page is first filled with the free pattern that handing out verifies. */
static void pool_carve(pa_pool *p, size_t cls)
{
    size_t size = pa_class_size(cls);
    uint32_t cap = (uint32_t)(PA_POOL_SIZE / size);
    char *page = pa_pool_page(p);
    if (pa_hot.check_level >= 2)
        memset(page, PA_FREE_FILL, PA_POOL_SIZE);
    for (uint32_t i = 0; i < cap; i++) {
        pa_block *b = (pa_block *)(page + i * size);
        pa_link(b, i + 1 < cap ? (pa_block *)(page + (i + 1) * size) : NULL);
        b->mark = pa_free_mark(b);   /* free from the start: a free of it is a double free */
    }
    if (cap * size < PA_POOL_SIZE) {   /* the slack's pseudo-block: see pa_block_start_or_slack */
        pa_block *slack = (pa_block *)(page + cap * size);
        slack->mark = pa_free_mark(slack);
    }
    pa_pool_meta *m = pa_meta(p);
    p->free = (pa_block *)page;
    m->cls = (uint8_t)cls;
    m->limit = (uint16_t)(cap * size);
    m->magic = (uint32_t)(((UINT64_C(1) << 32) + size - 1) / size);
    p->carved = (uint8_t)(cls + 1);
}

/* Makes p an ATTACHED pool of class cls owned by owner, with every block free. */
void pa_pool_init(pa_pool *p, pa_heap *owner, size_t cls)
{
    /* A pool released empty holds every block on its list; unless its page was purged since,
     * a heap taking it for the same class takes that list as it is. */
    if (p->carved != cls + 1)
        pool_carve(p, cls);
    p->counts = 0;   /* left and handouts */
    p->slow_at = 0;
    pa_pool_meta *m = pa_meta(p);
    m->owner = (pa_heap *)((uintptr_t)owner | (pa_hot.careful ? PA_OWNER_CAREFUL : 0));
    p->next = p->prev = NULL;
    p->reclaim_next = NULL;
    atomic_store_explicit(&p->thread_free, 0, memory_order_relaxed);
    p->state = PA_POOL_ATTACHED;
    p->pinned = 0;
}

/* Moves the blocks other threads freed into p onto its local list, keeping the QUEUED flag.
 * Returns false when there were none. */
bool pa_pool_collect(pa_pool *p)
{
    uintptr_t tf = atomic_load_explicit(&p->thread_free, memory_order_relaxed);
    do {
        if (pa_tf_stack(tf) == NULL)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&p->thread_free, &tf, tf & PA_TF_QUEUED,
                                                    memory_order_acquire, memory_order_relaxed));
    pa_pool_take(p, pa_tf_stack(tf), pa_tf_count(tf));
    return true;
}

/* Puts a stack of n remote-freed blocks, taken from p's thread_free, on p's local list. The
 * stack is never walked (see the thread_free word in internal.h): when the local list is not
 * empty (the malloc slow path takes stacks only when it is), the stack goes after its end,
 * which lies in this thread's cache. */
void pa_pool_take(pa_pool *p, pa_block *first, uint32_t n)
{
    if (p->free) {
        pa_block *last = p->free;
        while (pa_next(last))
            last = pa_next(last);
        pa_link(last, first);
    } else {
        p->free = first;
    }
    p->left -= n;
    pa_pool_owner(p)->nremote += n;
}

/* Blocks on the local list (for stats and checks; owner or quiescent callers only). */
size_t pa_pool_free_count(const pa_pool *p)
{
    size_t n = 0;
    for (const pa_block *b = p->free; b && n < pa_pool_capacity(p); b = pa_next(b))
        n++;
    return n;
}
