/* check.c — bad input: double frees, pointers that start no block, writes after free; and the
 * careful paths that serve small requests under PYARENA_CHECK=2 (with stats tracking or not).
 * Every failure aborts with one line on stderr, written with write(2).
 *
 * Levels (PYARENA_CHECK):
 *   0  no checks.
 *   1  (default) a free or realloc of a pointer that is not the start of a block of a pool in
 *      use, or of a block already free, aborts; non-pyarena pointers are checked for the
 *      alignment every block has, and for the mark a freed large block carries. The inline
 *      fast paths of alloc.h do this level themselves.
 *   2  adds free-list links encoded with a per-process secret and validated before use, and
 *      free blocks filled with PA_FREE_FILL, verified when handed out again, so a write to a
 *      block after free (use after free) is caught at its next allocation; and the ledger
 *      (ledger.c): a non-pyarena pointer must be a live block of the large path. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>

#include "alloc.h"

PA_HIDDEN pa_hot_vars pa_hot = {
    .small_limit = PA_SMALL_MAX,
    .check_level = PA_DEFAULT_CHECK,
    .careful = PA_DEFAULT_CHECK >= 2,
};

static uintptr_t random_word(void)
{
    uintptr_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        const uintptr_t *at = (const uintptr_t *)getauxval(AT_RANDOM);   /* 16 kernel bytes */
        v = (at ? at[0] ^ at[1] : 0) ^ (uintptr_t)&v;
    }
    return v;
}

/* Start-up, after the settings: choose the mode and the secrets. */
void pa_check_init(void)
{
    pa_hot.check_level = pa_config.check;
    pa_hot.free_key = random_word() | 1;
    if (pa_hot.check_level >= 2)
        pa_hot.list_key = random_word();
    pa_hot.careful = pa_hot.check_level >= 2;
    pa_hot.track_limit = pa_track_on && !pa_hot.careful ? PA_SMALL_MAX : 0;
    /* last: a thread that sees it 0 goes to pa_api_malloc_other, whose careful path serves any
     * mode, should it still see the old track_limit */
    bool mode = pa_track_on || pa_hot.careful;
    __atomic_store_n(&pa_hot.small_limit, mode ? 0 : PA_SMALL_MAX, __ATOMIC_RELEASE);
}

/* ---- messages */

/* "pyarena: double free of 0x… (48-byte class)" when fn is free,
 * "pyarena: realloc of freed block 0x… (48-byte class)" otherwise ("(large block)" for the
 * large path's); "pyarena: invalid pointer 0x… passed to free"; other kinds name the block
 * and class. */
_Noreturn void pa_check_fail(const char *what, const void *ptr, const char *fn, size_t class_size)
{
    char hex[20], dec[24];
    hex[pa_os_fmt_hex(hex, (uintptr_t)ptr)] = '\0';
    dec[pa_os_fmt_dec(dec, class_size)] = '\0';
    bool invalid = strcmp(what, "invalid pointer") == 0;
    bool refree = strcmp(what, "double free") == 0 && strcmp(fn, "free") != 0;
    bool large = class_size == PA_LARGE_BLOCK, cls = !invalid && class_size;
    const char *parts[] = {
        "pyarena: ", refree ? fn : what, refree ? " of freed block " : invalid ? " " : " of ", hex,
        invalid ? " passed to " : cls ? " (" : "", invalid ? fn : !cls ? "" : large ? "large block" : dec,
        !cls ? "" : large ? ")" : "-byte class)",
    };
    pa_os_say(2, parts, sizeof parts / sizeof *parts);
    abort();
}

/* ---- confirming a suspicion */

/* Is b on the list starting at head? Links are validated before being followed and the walk
 * is bounded, so a corrupted or concurrently changing list cannot take it out of the pool. */
static bool on_list(const pa_pool *p, const pa_block *head, const pa_block *b)
{
    for (size_t n = 0, cap = pa_pool_capacity(p); head && n <= cap; n++) {
        if (!pa_pool_link_ok(p, head))
            return false;
        if (head == b)
            return true;
        head = pa_next(head);
    }
    return false;
}

/* Free blocks are on p's local list, its remote stack, its owner's cache (cache.c), or a batch
 * of remote frees that some thread has not pushed yet (heap.c). Other threads' lists are read
 * without their owners' consent: on_list and pa_cache_holds stay inside pools in use whatever
 * they read. owner: p's, read once by the caller (the pool may be released meanwhile). */
static bool is_free_once(const pa_pool *p, const pa_heap *owner, const pa_block *b)
{
    uintptr_t tf = atomic_load_explicit(&p->thread_free, memory_order_acquire);
    if (on_list(p, p->free, b) || on_list(p, pa_tf_stack(tf), b) ||
        pa_cache_holds(owner, pa_meta(p)->cls, b))
        return true;
    for (pa_heap *h = pa_heap_first(); h; h = h->next_all) {
        pa_remote_batch *r = &h->remote[pa_meta(p)->cls];
        if (__atomic_load_n(&r->pool, __ATOMIC_ACQUIRE) == p &&
            on_list(p, __atomic_load_n(&r->first, __ATOMIC_RELAXED), b))
            return true;
    }
    return false;
}

/* A fill on the owner's thread rewrites the links of the blocks it moves to a bin (cache.c):
 * an answer of "not free" read while one ran (owner->fill_seq odd or changed) is read again.
 * The fill is short; after a bounded number of tries the check lets the free through, as it
 * would any free it cannot prove double. */
static bool is_free(const pa_pool *p, const pa_heap *owner, const pa_block *b)
{
    const _Atomic uint32_t *fill_seq = owner ? &owner->fill_seq : NULL;
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t seq = fill_seq ? atomic_load_explicit(fill_seq, memory_order_acquire) : 0;
        if (!(seq & 1)) {
            if (is_free_once(p, owner, b))
                return true;
            atomic_thread_fence(memory_order_acquire);
            if (!fill_seq || atomic_load_explicit(fill_seq, memory_order_relaxed) == seq)
                return false;
        }
        sched_yield();
    }
    return false;
}

/* The fast path saw a pointer that starts no block, or a block carrying the free mark.
 * Aborts, unless the mark was the program's own data (then the free goes on). */
void pa_check_free_slow(pa_pool *p, pa_block *b, const char *fn)
{
    const pa_pool_meta *m = pa_meta(p);
    const pa_heap *owner = pa_meta_owner(m);
    if (owner == NULL || !pa_block_start(m, b))
        pa_check_fail("invalid pointer", b, fn, 0);
    if (b->mark == pa_free_mark(b) && is_free(p, owner, b))
        pa_check_fail("double free", b, fn, pa_class_size(m->cls));
}

/* The inline free fast path's suspicion, out of line: check (unless at level 0), then finish
 * that free as the fast path would (level 0 or 1). */
void pa_free_suspect(pa_heap *h, pa_block *b)
{
    pa_pool *p = pa_pool_of(b);
    if (pa_hot.check_level)
        pa_check_free_slow(p, b, "free");
    b->mark = pa_free_mark(b);
    pa_cache_push(h, pa_meta(p)->cls, b);
}

/* realloc and malloc_usable_size on a small pointer: it must be a live block. */
void pa_check_live(const void *ptr, const char *fn)
{
    if (pa_hot.check_level)
        pa_check_free_slow(pa_pool_of(ptr), (pa_block *)ptr, fn);
}

/* A pointer that is not pyarena's goes to jemalloc, which cannot tell cheaply whether it is
 * its own, nor whether the block is still live. Under the ledger (level 2) the ledger knows,
 * and nothing of the pointer's is read: it may not be readable. Otherwise, every block either
 * hands out is 16-byte aligned, so anything else is invalid; and the large path's freed blocks
 * carry the mark in their second word (pa_large_mark: pa_large_free writes it, the large path's
 * malloc clears it and its calloc zeroes it), so a second free is caught while the block's
 * memory still holds it: until jemalloc hands the block out again or gives its page back. Before the secret is chosen
 * (pa_check_init) no block carries a mark. */
void pa_check_large(const void *ptr, const char *fn)
{
    if (!pa_hot.check_level)
        return;
    if (pa_ledger_on) {
        pa_ledger_check(ptr, fn);
        return;
    }
    if ((uintptr_t)ptr & (PA_ALIGN - 1))
        pa_check_fail("invalid pointer", ptr, fn, 0);
    if (((const pa_block *)ptr)->mark == pa_large_mark(ptr) && pa_hot.free_key != 0)
        pa_check_fail("double free", ptr, fn, PA_LARGE_BLOCK);
}

/* A block leaves a free list: forget its mark; level 2 verifies nothing wrote to it. */
void pa_check_handout(pa_pool *p, pa_block *b)
{
    if (pa_hot.check_level >= 2) {
        const unsigned char *c = (const unsigned char *)b;
        size_t size = pa_pool_block_size(p);
        for (size_t i = sizeof(pa_block); i < size; i++)
            if (c[i] != PA_FREE_FILL)
                pa_check_fail("use after free: write to freed block", b, "malloc", size);
    }
    b->mark = 0;
}

/* A block joins a free list: mark it (at every level: the stats count live blocks by it);
 * level 2 fills it. */
void pa_check_freed(pa_pool *p, pa_block *b)
{
    if (pa_hot.check_level >= 2)
        memset((char *)b + sizeof(pa_block), PA_FREE_FILL, pa_pool_block_size(p) - sizeof(pa_block));
    b->mark = pa_free_mark(b);
}

/* ---- the careful paths */

void *pa_careful_malloc(size_t n)
{
    size_t cls = n ? pa_class_of(n) : 0;

    pa_heap *h = pa_tls_heap;
    pa_pool *p = h->cur[cls];
    pa_block *b = p->free;
    if (b == NULL) {
        b = pa_heap_alloc_slow(h, cls);   /* hands out through pa_check_handout */
    } else {
        pa_block *next = pa_next(b);
        if (pa_hot.check_level >= 2 && next && !pa_pool_link_ok(p, next))
            pa_check_fail("use after free: free-list link overwritten in freed block", b, "malloc",
                          pa_pool_block_size(p));
        p->free = next;
        pa_pool_handout(p);
        pa_check_handout(p, b);
    }
    if (pa_track_on)
        pa_track_alloc(b, n);
    return b;
}
