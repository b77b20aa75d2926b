/* track.c — request sizes of small blocks while stats are on, so the report can tell the bytes
 * the program asked for from the bytes its blocks hold. A malloc writes the low byte of its
 * request as its block's byte in the region's waste table; nothing else runs on the fast
 * paths, not even at free. The report knows each block's class size S, and the waste S - n is
 * 0..16, so (S - byte) mod 256 gives it back. It sums that over the blocks that are live when
 * it runs, telling live from free by the mark every free block carries (alloc.h). Every block
 * the pools hand out is tracked from the start (tracking is set before the first one), so no
 * live block has a stale byte. Off (the default), nothing here runs. */
#include "alloc.h"

PA_HIDDEN uint8_t pa_track_on;

void pa_track_alloc(void *p, size_t n)
{
    if (likely(p != NULL && pa_owned(p)))   /* else NULL, or a dead thread's block from jemalloc */
        *pa_waste_slot(p) = (uint8_t)n;
}

/* realloc within the block's class. */
void pa_track_resize(void *p, size_t n)
{
    *pa_waste_slot(p) = (uint8_t)n;
}

/* The waste of p's live blocks. Runs under the arena lock (the pool's page stays mapped) while
 * the owner may be allocating and freeing: each word is read once, and a block changing state
 * meanwhile is counted on one side or the other; one caught between its mark and its byte may
 * show a byte left by an earlier class of the page, so a waste over 16 counts as none. */
uint64_t pa_track_pool_waste(const pa_pool *p)
{
    const char *page = pa_pool_page(p);
    const pa_pool_meta *m = pa_meta(p);
    size_t size = pa_class_size(m->cls), limit = m->limit;
    uint64_t sum = 0;
    for (size_t off = 0; size && off + size <= limit; off += size) {
        const pa_block *b = (const pa_block *)(page + off);
        if (__atomic_load_n(&b->mark, __ATOMIC_RELAXED) != pa_free_mark(b)) {
            uint8_t w = (uint8_t)(size - __atomic_load_n(pa_waste_slot(b), __ATOMIC_RELAXED));
            sum += w <= PA_ALIGN ? w : 0;
        }
    }
    return sum;
}
