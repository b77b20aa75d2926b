/* collect.c — the generations of tracked objects and the cycle collector (CPython's method:
 * gc_refs from refcounts minus internal references, then reachability from the objects left
 * with external references), plus the gc-module style controls, statistics and callbacks.
 * A collection allocates nothing: every list it builds is threaded through the object headers. */
#include "hobj.h"

#include <errno.h>
#include <stdint.h>

#define PA_NGEN 3

/* Generation i's list head and trigger. count[0]: tracked allocations minus deallocations since
 * the last collection (never below 0); count[i > 0]: collections of generation i - 1 since the
 * last collection of generation i. */
#define PA_LIST_HEAD(h) { (uintptr_t)&(h), (uintptr_t)&(h) }
static pa_hgc pa_collect_gen[PA_NGEN] = {
    PA_LIST_HEAD(pa_collect_gen[0]), PA_LIST_HEAD(pa_collect_gen[1]), PA_LIST_HEAD(pa_collect_gen[2]),
};
static pa_hgc pa_collect_permanent = PA_LIST_HEAD(pa_collect_permanent); /* pa_gc_freeze */
static pa_hgc pa_collect_garbage = PA_LIST_HEAD(pa_collect_garbage);     /* uncollectable */

static size_t pa_collect_threshold[PA_NGEN] = { 700, 10, 10 };
static size_t pa_collect_count12[PA_NGEN];      /* [1], [2] used; [0] is pa_collect_gen0_count */
size_t pa_collect_gen0_count;
/* What pa_new compares count 0 against: threshold 0, or SIZE_MAX while automatic collection
 * is off, so that the disabled case costs pa_new nothing either. */
size_t pa_collect_gen0_threshold = 700;

static bool   pa_collect_enabled = true;
static bool   pa_collect_running;              /* no collection starts inside another */
static size_t pa_collect_ntracked;
/* CPython's guard against quadratic full collections: objects that survived into generation 2
 * since the last full collection, and the size of generation 2 after it. */
static size_t pa_collect_long_lived_pending, pa_collect_long_lived_total;
static pa_gc_stats pa_collect_stats[PA_NGEN];
static void (*pa_collect_cb)(int, int, size_t, size_t, void *);
static void *pa_collect_cb_arg;

static void pa_collect_retrigger(void)
{
    pa_collect_gen0_threshold =
        (pa_collect_enabled && pa_collect_threshold[0]) ? pa_collect_threshold[0] : SIZE_MAX;
}

/* ---- tracking */

void pa_collect_track(pa_hgc *g)
{
    pa_hlist_append(g, &pa_collect_gen[0]);
    pa_collect_gen0_count++;
    pa_collect_ntracked++;
}

void pa_collect_untrack(pa_hgc *g)
{
    pa_hlist_remove(g);
    if (pa_collect_gen0_count > 0)
        pa_collect_gen0_count--;
    pa_collect_ntracked--;
}

/* ---- the phases of a collection */

static inline const pa_type *pa_collect_type(pa_hgc *g)
{
    return pa_hobj_type(pa_hobj_of(pa_hobj_body(g)));
}

static inline void pa_collect_traverse(pa_hgc *g, pa_visit_fn visit, void *arg)
{
    void *body = pa_hobj_body(g);
    pa_hobj_type(pa_hobj_of(body))->traverse(body, visit, arg);
}

/* Children far away in memory cost a cache miss each, which would dominate on graphs with
 * random edges; the phases below ask for them some objects ahead of where they are needed.
 * A prefetch never faults, so the words before an untracked child (its header is 16 bytes)
 * may be named too. */
#ifndef PA_PF_DEPTH
#define PA_PF_DEPTH 64   /* edges in flight in subtract_refs (power of two) */
#endif
#ifndef PA_PF_AHEAD
#define PA_PF_AHEAD 32   /* objects ahead for the traverse-ahead prefetch */
#endif

static inline void pa_collect_prefetch(const void *child)
{
    __builtin_prefetch((const char *)child - 24, 1);
    __builtin_prefetch((const char *)child - 16, 1);
}

static void pa_collect_visit_prefetch(void *child, void *arg)
{
    if (child)
        pa_collect_prefetch(child);
}

/* gc_refs := refcount for every object of the list, which also marks it as examined. */
static void pa_collect_update_refs(pa_hgc *head)
{
    for (pa_hgc *g = pa_hlist_next(head); g != head; g = pa_hlist_next(g))
        g->prev = (pa_hobj_of(pa_hobj_body(g))->refcnt << PA_HGC_REFS_SHIFT) | PA_HGC_COLLECTING;
}

static inline void pa_collect_decref_one(void *child)
{
    if (!(pa_hobj_of(child)->type & PA_HOBJ_GC))
        return;
    pa_hgc *g = pa_hobj_gc(child);
    if (g->prev & PA_HGC_COLLECTING)
        g->prev -= PA_HGC_REFS_ONE;
}

/* Decrements commute, so subtract_refs queues each edge in a small ring and performs it
 * PA_PF_DEPTH edges later, when its prefetch has landed. */
typedef struct pa_collect_ring {
    void  *child[PA_PF_DEPTH];
    size_t in, out;          /* in - out edges pending, at most PA_PF_DEPTH */
} pa_collect_ring;

static void pa_collect_visit_decref(void *child, void *arg)
{
    if (child == NULL)
        return;
    pa_collect_ring *r = arg;
    pa_collect_prefetch(child);
    r->child[r->in++ & (PA_PF_DEPTH - 1)] = child;
    if (r->in - r->out == PA_PF_DEPTH)
        pa_collect_decref_one(r->child[r->out++ & (PA_PF_DEPTH - 1)]);
}

/* Removes the references examined objects hold to each other: what is left of gc_refs comes
 * from outside the examined set. */
static void pa_collect_subtract_refs(pa_hgc *head)
{
    pa_collect_ring ring;
    ring.in = ring.out = 0;
    for (pa_hgc *g = pa_hlist_next(head); g != head; g = pa_hlist_next(g))
        pa_collect_traverse(g, pa_collect_visit_decref, &ring);
    while (ring.out != ring.in)
        pa_collect_decref_one(ring.child[ring.out++ & (PA_PF_DEPTH - 1)]);
}

/* Visit of a child of an object known to be reachable: the child is reachable too. */
static void pa_collect_visit_reachable(void *child, void *arg)
{
    if (child == NULL || !(pa_hobj_of(child)->type & PA_HOBJ_GC))
        return;
    pa_hgc *g = pa_hobj_gc(child);
    uintptr_t pv = g->prev;
    if (!(pv & PA_HGC_COLLECTING))
        return;   /* outside the examined set, or already scanned as reachable */
    if (g->next & PA_HGC_UNREACHABLE) {
        /* Was put aside as unreachable before we knew better: back to the end of young, where
         * the scan loop will reach it and scan its children in turn. */
        pa_hgc *young = arg;
        pa_hgc *p = (pa_hgc *)(pv & ~PA_HGC_COLLECTING);
        pa_hgc *n = (pa_hgc *)(g->next & ~PA_HGC_UNREACHABLE);
        p->next = (p->next & PA_HGC_UNREACHABLE) | (uintptr_t)n;
        n->prev = (n->prev & PA_HGC_COLLECTING) | (uintptr_t)p;
        pa_hgc *last = pa_hlist_prev(young);
        last->next = (uintptr_t)g;
        g->next = (uintptr_t)young;
        young->prev = (uintptr_t)g;
        g->prev = PA_HGC_REFS_ONE | PA_HGC_COLLECTING;
    } else if ((pv >> PA_HGC_REFS_SHIFT) == 0) {
        g->prev = PA_HGC_REFS_ONE | PA_HGC_COLLECTING;   /* still ahead of the scan in young */
    }
}

/* Scans young in order. An object with gc_refs > 0 is reachable: its children are marked
 * reachable (pulled back from the unreachable list if already there) and its prev link is
 * restored. An object with gc_refs == 0 goes to the unreachable list, tentatively. young is
 * singly linked meanwhile (prev words hold gc_refs), except young->prev, its last element,
 * which the visit appends at and which is kept right when that element leaves. Returns how
 * many objects stayed in young; *noclear: how many went to unreachable with a type that has
 * no clear (0: the uncollectable split can be skipped). */
static size_t pa_collect_move_unreachable(pa_hgc *young, pa_hgc *unreachable, size_t *noclear)
{
    pa_hgc *prev = young;
    pa_hgc *g = pa_hlist_next(young);
    pa_hgc *ahead = g;   /* PA_PF_AHEAD objects on: its children are being prefetched */
    for (int i = 0; i < PA_PF_AHEAD && ahead != young; i++)
        ahead = pa_hlist_next(ahead);
    size_t kept = 0, nc = 0;
    while (g != young) {
        if (ahead != young) {
            if (ahead->prev >> PA_HGC_REFS_SHIFT)
                pa_collect_traverse(ahead, pa_collect_visit_prefetch, NULL);
            ahead = pa_hlist_next(ahead);
        }
        if (g->prev >> PA_HGC_REFS_SHIFT) {
            pa_collect_traverse(g, pa_collect_visit_reachable, young);
            g->prev = (uintptr_t)prev;
            prev = g;
            kept++;
            g = pa_hlist_next(g);   /* read after the visit: it may have appended after g */
        } else {
            pa_hgc *next = pa_hlist_next(g);
            prev->next = (uintptr_t)next;
            if (next == young)
                young->prev = (uintptr_t)prev;
            pa_hgc *last = pa_hlist_prev(unreachable);
            last->next = (uintptr_t)g | (last == unreachable ? 0 : PA_HGC_UNREACHABLE);
            g->prev = (uintptr_t)last | PA_HGC_COLLECTING;
            g->next = (uintptr_t)unreachable | PA_HGC_UNREACHABLE;
            unreachable->prev = (uintptr_t)g;
            nc += pa_collect_type(g)->clear == NULL;
            g = next;
        }
    }
    if (noclear)
        *noclear = nc;
    return kept;
}

/* Unlinks g from a list whose links may carry the collection tags. */
static void pa_collect_unlink_tagged(pa_hgc *g)
{
    pa_hgc *p = (pa_hgc *)(g->prev & ~PA_HGC_COLLECTING);
    pa_hgc *n = (pa_hgc *)(g->next & ~PA_HGC_UNREACHABLE);
    p->next = (p->next & PA_HGC_UNREACHABLE) | (uintptr_t)n;
    n->prev = (n->prev & PA_HGC_COLLECTING) | (uintptr_t)p;
}

static void pa_collect_visit_move(void *child, void *arg)
{
    if (child == NULL || !(pa_hobj_of(child)->type & PA_HOBJ_GC))
        return;
    pa_hgc *g = pa_hobj_gc(child);
    if (!(g->prev & PA_HGC_COLLECTING))
        return;
    pa_collect_unlink_tagged(g);
    pa_hlist_append(g, arg);
}

/* Moves the members of unreachable whose type cannot clear, and everything they reach, to
 * uncollectable (clean links). Tags stay on the rest: untag clears them. */
static void pa_collect_split_uncollectable(pa_hgc *unreachable, pa_hgc *uncollectable)
{
    pa_hgc *g = pa_hlist_next(unreachable);
    while (g != unreachable) {
        pa_hgc *next = (pa_hgc *)(g->next & ~PA_HGC_UNREACHABLE);
        if (pa_collect_type(g)->clear == NULL) {
            pa_collect_unlink_tagged(g);
            pa_hlist_append(g, uncollectable);
        }
        g = next;
    }
    /* uncollectable is its own work list: traversing appends to its end. */
    for (g = pa_hlist_next(uncollectable); g != uncollectable; g = pa_hlist_next(g))
        pa_collect_traverse(g, pa_collect_visit_move, uncollectable);
}

/* Cleans the links (no user code may run before), detaches weak references, and takes a
 * reference to every member ("hold"): from here on no member dies before the release pass,
 * so the later passes can walk the list while user code runs. Counts members and pending
 * finalizers. */
static size_t pa_collect_untag(pa_hgc *unreachable, pa_weakref **queue, size_t *nfinal)
{
    size_t n = 0, nf = 0;
    pa_hgc *g = pa_hlist_next(unreachable);
    while (g != unreachable) {
        pa_hgc *next = (pa_hgc *)(g->next & ~PA_HGC_UNREACHABLE);
        g->next = (uintptr_t)next;
        g->prev &= ~PA_HGC_COLLECTING;
        pa_hobj *h = pa_hobj_of(pa_hobj_body(g));
        uintptr_t tw = h->type;
        if (tw & PA_HOBJ_WEAKREFS)
            pa_wref_detach(pa_hobj_body(g), queue);
        if (pa_hobj_type(h)->finalize && !(tw & PA_HOBJ_FINALIZED))
            nf++;
        h->refcnt++;
        n++;
        g = next;
    }
    *nfinal = nf;
    return n;
}

/* Runs every pending finalizer. Each member is held (untag); the hold is dropped right after
 * its finalizer, so that the resurrection check sees true refcounts. Members may die
 * meanwhile (a finalizer drops a reference): they leave the lists through
 * pa_collect_untrack, so the loop always takes the current first member. */
static void pa_collect_finalize(pa_hgc *unreachable)
{
    pa_hgc done;
    pa_hlist_init(&done);
    while (!pa_hlist_empty(unreachable)) {
        pa_hgc *g = pa_hlist_next(unreachable);
        pa_hlist_remove(g);
        pa_hlist_append(g, &done);
        void *body = pa_hobj_body(g);
        pa_hobj *h = pa_hobj_of(body);
        const pa_type *type = pa_hobj_type(h);
        if (type->finalize && !(h->type & PA_HOBJ_FINALIZED)) {
            h->type |= PA_HOBJ_FINALIZED;
            type->finalize(body);
        }
        pa_decref(body);
    }
    pa_hlist_merge(&done, unreachable);
}

/* After finalizers: whatever they made reachable again (resurrected, and all it reaches) goes
 * to old; unreachable keeps the rest, with clean links and held again. Returns its size. */
static size_t pa_collect_resurrected(pa_hgc *unreachable, pa_hgc *old)
{
    pa_hgc still;
    pa_hlist_init(&still);
    pa_collect_update_refs(unreachable);
    pa_collect_subtract_refs(unreachable);
    pa_collect_move_unreachable(unreachable, &still, NULL);
    pa_hlist_merge(unreachable, old);
    size_t n = 0;
    pa_hgc *g = pa_hlist_next(&still);
    while (g != &still) {
        pa_hgc *next = (pa_hgc *)(g->next & ~PA_HGC_UNREACHABLE);
        g->next = (uintptr_t)next;
        g->prev &= ~PA_HGC_COLLECTING;
        pa_hobj_of(pa_hobj_body(g))->refcnt++;
        n++;
        g = next;
    }
    pa_hlist_merge(&still, unreachable);
    return n;
}

/* Breaks the cycles: every member is held, so clearing them all kills none and the walk is
 * safe (no dealloc chains either); then the holds are released in list order, which frees,
 * in memory order, each object whose references all came from the garbage. A member still
 * referenced after that (a clear that did not drop everything) lives on in old. */
static void pa_collect_delete(pa_hgc *unreachable, pa_hgc *old)
{
    pa_hgc *ahead = pa_hlist_next(unreachable);
    for (int i = 0; i < PA_PF_AHEAD && ahead != unreachable; i++)
        ahead = pa_hlist_next(ahead);
    for (pa_hgc *g = pa_hlist_next(unreachable); g != unreachable; g = pa_hlist_next(g)) {
        if (ahead != unreachable) {
            pa_collect_traverse(ahead, pa_collect_visit_prefetch, NULL);
            ahead = pa_hlist_next(ahead);
        }
        void *body = pa_hobj_body(g);
        pa_hobj_type(pa_hobj_of(body))->clear(body);
    }
    while (!pa_hlist_empty(unreachable)) {
        pa_hgc *g = pa_hlist_next(unreachable);
        pa_hobj *h = pa_hobj_of(pa_hobj_body(g));
        pa_hlist_remove(g);
        if (h->refcnt == 1) {
            h->refcnt = 0;
            pa_collect_ntracked--;
            if (pa_collect_gen0_count > 0)
                pa_collect_gen0_count--;
            pa_hobj_free_cleared(pa_hobj_body(g));
        } else {
            h->refcnt--;
            pa_hlist_append(g, old);
        }
    }
}

static size_t pa_collect_list_size(const pa_hgc *head)
{
    size_t n = 0;
    for (const pa_hgc *g = pa_hlist_next(head); g != head; g = pa_hlist_next(g))
        n++;
    return n;
}

static void pa_collect_run(int gen, size_t *ncollected, size_t *nuncollectable)
{
    if (gen + 1 < PA_NGEN)
        pa_collect_count12[gen + 1]++;
    pa_collect_gen0_count = 0;
    for (int i = 1; i <= gen; i++)
        pa_collect_count12[i] = 0;

    pa_hgc *young = &pa_collect_gen[gen];
    pa_hgc *old = &pa_collect_gen[gen + 1 < PA_NGEN ? gen + 1 : gen];
    for (int i = 0; i < gen; i++)
        pa_hlist_merge(&pa_collect_gen[i], young);

    pa_hgc unreachable, uncollectable;
    pa_hlist_init(&unreachable);
    pa_hlist_init(&uncollectable);
    pa_collect_update_refs(young);
    pa_collect_subtract_refs(young);
    size_t noclear = 0;
    size_t survivors = pa_collect_move_unreachable(young, &unreachable, &noclear);
    if (gen == PA_NGEN - 2)
        pa_collect_long_lived_pending += survivors;
    if (young != old)
        pa_hlist_merge(young, old);
    if (gen == PA_NGEN - 1) {
        pa_collect_long_lived_pending = 0;
        pa_collect_long_lived_total = survivors;
    }

    size_t nfinal = 0, ncol = 0, nunc = 0;
    if (!pa_hlist_empty(&unreachable)) {
        pa_weakref *queue = NULL;
        if (noclear) {
            pa_collect_split_uncollectable(&unreachable, &uncollectable);
            nunc = pa_collect_list_size(&uncollectable);
            pa_hlist_merge(&uncollectable, &pa_collect_garbage);
        }
        ncol = pa_collect_untag(&unreachable, &queue, &nfinal);
        pa_wref_run(&queue);
        if (nfinal) {
            pa_collect_finalize(&unreachable);
            ncol = pa_collect_resurrected(&unreachable, old);
        }
        pa_collect_delete(&unreachable, old);
    }
    pa_collect_stats[gen].collections++;
    pa_collect_stats[gen].collected += ncol;
    pa_collect_stats[gen].uncollectable += nunc;
    *ncollected = ncol;
    *nuncollectable = nunc;
}

static size_t pa_collect_with_callback(int gen)
{
    size_t ncol = 0, nunc = 0;
    pa_collect_running = true;
    if (pa_collect_cb)
        pa_collect_cb(0, gen, 0, 0, pa_collect_cb_arg);
    pa_collect_run(gen, &ncol, &nunc);
    if (pa_collect_cb)
        pa_collect_cb(1, gen, ncol, nunc, pa_collect_cb_arg);
    pa_collect_running = false;
    return ncol + nunc;
}

void pa_collect_maybe(void)
{
    if (pa_collect_running || pa_collect_gen0_count <= pa_collect_gen0_threshold)
        return;
    for (int i = PA_NGEN - 1; i >= 0; i--) {
        size_t count = i ? pa_collect_count12[i] : pa_collect_gen0_count;
        if (count <= pa_collect_threshold[i])
            continue;
        /* A full collection costs the whole heap: only when enough new long-lived objects
         * wait for it (a quarter of those the last one kept), as CPython does. */
        if (i == PA_NGEN - 1 && pa_collect_long_lived_pending < pa_collect_long_lived_total / 4)
            continue;
        pa_collect_with_callback(i);
        break;
    }
}

/* ---- the gc module */

PA_HANDLE_API size_t pa_gc_collect(int generation)
{
    if (generation < 0 || generation >= PA_NGEN) {
        errno = EINVAL;
        return 0;
    }
    if (pa_collect_running)
        return 0;
    return pa_collect_with_callback(generation);
}

PA_HANDLE_API void pa_gc_enable(void)
{
    pa_collect_enabled = true;
    pa_collect_retrigger();
}

PA_HANDLE_API void pa_gc_disable(void)
{
    pa_collect_enabled = false;
    pa_collect_retrigger();
}

PA_HANDLE_API int pa_gc_is_enabled(void)
{
    return pa_collect_enabled;
}

PA_HANDLE_API void pa_gc_set_threshold(size_t t0, size_t t1, size_t t2)
{
    pa_collect_threshold[0] = t0;
    pa_collect_threshold[1] = t1;
    pa_collect_threshold[2] = t2;
    pa_collect_retrigger();
}

PA_HANDLE_API void pa_gc_get_threshold(size_t out[3])
{
    for (int i = 0; i < PA_NGEN; i++)
        out[i] = pa_collect_threshold[i];
}

PA_HANDLE_API void pa_gc_get_count(size_t out[3])
{
    out[0] = pa_collect_gen0_count;
    out[1] = pa_collect_count12[1];
    out[2] = pa_collect_count12[2];
}

PA_HANDLE_API void pa_gc_freeze(void)
{
    for (int i = 0; i < PA_NGEN; i++)
        pa_hlist_merge(&pa_collect_gen[i], &pa_collect_permanent);
    pa_collect_gen0_count = 0;
}

PA_HANDLE_API void pa_gc_unfreeze(void)
{
    pa_hlist_merge(&pa_collect_permanent, &pa_collect_gen[PA_NGEN - 1]);
}

PA_HANDLE_API size_t pa_gc_freeze_count(void)
{
    return pa_collect_list_size(&pa_collect_permanent);
}

PA_HANDLE_API size_t pa_gc_tracked(void)
{
    return pa_collect_ntracked;
}

PA_HANDLE_API size_t pa_gc_garbage_count(void)
{
    return pa_collect_list_size(&pa_collect_garbage);
}

PA_HANDLE_API void pa_gc_get_stats(pa_gc_stats out[3])
{
    for (int i = 0; i < PA_NGEN; i++)
        out[i] = pa_collect_stats[i];
}

static void pa_collect_foreach_list(pa_hgc *head, void (*fn)(void *, void *), void *arg)
{
    for (pa_hgc *g = pa_hlist_next(head), *next; g != head; g = next) {
        next = pa_hlist_next(g);
        fn(pa_hobj_body(g), arg);
    }
}

PA_HANDLE_API void pa_gc_foreach(void (*fn)(void *obj, void *arg), void *arg)
{
    for (int i = 0; i < PA_NGEN; i++)
        pa_collect_foreach_list(&pa_collect_gen[i], fn, arg);
    pa_collect_foreach_list(&pa_collect_permanent, fn, arg);
    pa_collect_foreach_list(&pa_collect_garbage, fn, arg);
}

PA_HANDLE_API void pa_gc_set_callback(void (*cb)(int phase, int generation, size_t collected,
                                                 size_t uncollectable, void *arg),
                                      void *arg)
{
    pa_collect_cb = cb;
    pa_collect_cb_arg = arg;
}
