/* track.c — request sizes of small blocks while stats are on, so the report can tell the bytes
 * the program asked for from the bytes its blocks hold. Each block's waste (class size minus
 * request, 0..16) is one byte in its region's waste table; each thread sums what it adds and
 * removes. Off (the default), nothing here runs. */
#include "alloc.h"

PA_HIDDEN uint8_t pa_track_on;
static _Atomic int64_t pa_track_stray;   /* waste freed by threads without a heap of their own */

static inline uint8_t *waste_slot(const void *p)
{
    uintptr_t a = (uintptr_t)p, base = a & ~(uintptr_t)(PA_REGION_SIZE - 1);
    return (uint8_t *)(base + PA_WASTE_OFFSET + ((a - base) >> 4));
}

static void account(int64_t delta)
{
    pa_heap *h = pa_tls_heap;
    if (h->state == PA_HEAP_LIVE)
        h->waste += delta;
    else
        atomic_fetch_add_explicit(&pa_track_stray, delta, memory_order_relaxed);
}

void pa_track_alloc(void *p, size_t n)
{
    if (unlikely(p == NULL || !pa_owned(p)))   /* NULL, or a dead thread's block from jemalloc */
        return;
    uint8_t w = (uint8_t)(pa_class_size(n ? pa_class_of(n) : 0) - n);
    *waste_slot(p) = w;
    pa_tls_heap->waste += w;       /* the block came from this thread's own pool: a live heap */
}

void pa_track_free(const void *p)
{
    account(-(int64_t)*waste_slot(p));
}

/* Stats on with checks at level 0 or 1 (pa_mode == PA_MODE_TRACK): the inline fast paths
 * with the bookkeeping folded in. */
void *pa_track_malloc(size_t n)
{
    size_t cls = n ? pa_class_of(n) : 0;
    pa_heap *h = pa_tls_heap;
    pa_pool *p = h->cur[cls];
    pa_block *b = p->free;
    if (unlikely(b == NULL)) {
        void *q = pa_heap_alloc_slow(h, cls);
        pa_track_alloc(q, n);
        return q;
    }
    p->free = b->next;
    p->used++;
    h->nalloc[cls]++;
    b->mark = 0;
    uint8_t w = (uint8_t)(pa_class_size(cls) - n);
    *waste_slot(b) = w;
    h->waste += w;
    return b;
}

void pa_track_free_small(void *ptr)
{
    int64_t w = *waste_slot(ptr);       /* a bad pointer's slot is still inside our region */
    pa_heap *h = pa_tls_heap;
    if (likely(pa_pool_of(ptr)->owner == h))
        h->waste -= w;
    else
        account(-w);
    pa_small_free(ptr);                 /* checks as the fast path does */
}

void pa_track_resize(void *p, size_t n)
{
    uint8_t *slot = waste_slot(p), w = (uint8_t)(pa_pool_of(p)->block_size - n);
    account((int64_t)w - *slot);
    *slot = w;
}

int64_t pa_track_waste(void)
{
    int64_t sum = atomic_load_explicit(&pa_track_stray, memory_order_relaxed);
    for (pa_heap *h = pa_heap_first(); h; h = h->next_all)
        sum += h->waste;
    return sum;
}
