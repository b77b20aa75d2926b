/* collect.c — the generations of tracked objects and the cycle collector (CPython's method:
 * gc_refs from refcounts minus internal references, then reachability from the objects left
 * with external references), plus the gc-module style controls, statistics and callbacks.
 * A collection allocates nothing: every list it builds is threaded through the object headers. */
#include "hobj.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

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

uintptr_t pa_collect_defer_mark;
/* The whole mark of the last full collection that used them: the next flips its parity. */
static uintptr_t pa_collect_wmark = PA_HGC_WMARK_A;
/* Full collections left to run without whole marks, after one found a gc_refs they cannot
 * hold (see pa_collect_examine). */
static unsigned pa_collect_wmark_skip;

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

/* The whole marks keep gc_refs above bit 47 of the prev word. Linux gives no address above
 * that unless asked (with a hint to mmap), and neither pyarena nor jemalloc asks. */
static _Noreturn void pa_collect_wide_address(void)
{
    static const char msg[] = "pyarena handles: object address above 2^48: not supported\n";
    ssize_t rc = write(2, msg, sizeof msg - 1);
    (void)rc;
    abort();
}

void pa_collect_track(pa_hgc *g)
{
    if (pa_unlikely((uintptr_t)g >> PA_HGC_WREFS_SHIFT))
        pa_collect_wide_address();
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

/* next of a member of the tentatively-unreachable list, whose links may carry the tags */
static inline pa_hgc *pa_collect_next_tagged(const pa_hgc *g)
{
    return (pa_hgc *)(g->next & ~PA_HGC_UNREACHABLE);
}

/* Children far away in memory cost a cache miss each, which would dominate on graphs with
 * random edges; the phases below ask for them some objects ahead of where they are needed.
 * A prefetch never faults, so the words before an untracked child (its header is 16 bytes)
 * may be named too. Where children lie close to their parents (objects made together, which
 * the pools place together), the walk has their lines in cache already and the prefetching
 * only costs: subtract_refs measures how many edges are long and the phases prefetch only
 * where they are frequent. */
#ifndef PA_PF_DEPTH
#define PA_PF_DEPTH 64   /* edges in flight in subtract_refs (power of two) */
#endif
#ifndef PA_PF_AHEAD
#define PA_PF_AHEAD 32   /* objects ahead for the traverse-ahead prefetch */
#endif
#define PA_PF_NEAR  4096 /* a child this close to its parent (bytes, either way) is near */
#define PA_PF_SAMPLE 32  /* subtract_refs measures the edges of one object in this many */
#define PA_PF_CHUNK 1024 /* and chooses afresh after this many objects */
/* nfar long edges among those of nobj objects: frequent enough to prefetch */
#define PA_PF_FAR(nfar, nobj) ((nfar) * 16 > (nobj))

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

/* gc_refs starts as the refcount; the prev word holds it from then on, with
 * PA_HGC_COLLECTING, which marks the object as examined. */
static inline uintptr_t pa_collect_refs_start(const pa_hgc *g)
{
    return (pa_hobj_of(pa_hobj_body(g))->refcnt << PA_HGC_REFS_SHIFT) | PA_HGC_COLLECTING;
}

/* Marks every object of the list. Returns how many start at 0 (none, unless the counts are
 * broken: the scan must know them all). */
static size_t pa_collect_update_refs(pa_hgc *head)
{
    size_t nzero = 0;
    for (pa_hgc *g = pa_hlist_next(head); g != head; g = pa_hlist_next(g)) {
        g->prev = pa_collect_refs_start(g);
        nzero += (g->prev >> PA_HGC_REFS_SHIFT) == 0;
    }
    return nzero;
}

/* What the caller of pa_collect_examine must know of the objects it finds unreachable. */
#define PA_COLLECT_NOCLEAR 1u   /* a type without clear */
#define PA_COLLECT_SPECIAL 2u   /* weak references or a pending finalizer */

/* The PA_COLLECT_* bits of one object. */
static inline unsigned pa_collect_bits(const pa_hgc *g)
{
    const pa_hobj *h = pa_hobj_of(pa_hobj_body(g));
    uintptr_t tw = h->type;
    const pa_type *type = pa_hobj_type(h);
    return (type->clear == NULL ? PA_COLLECT_NOCLEAR : 0) |
           ((tw & PA_HOBJ_WEAKREFS) || (type->finalize && !(tw & PA_HOBJ_FINALIZED))
                ? PA_COLLECT_SPECIAL : 0);
}

/* The same from the type alone (a finalizer may have run already): at least the bits of its
 * objects without weak references. subtract_refs computes it when the type changes along the
 * list, as a per-object test would chain the iterations through a spilled accumulator. */
static inline unsigned pa_collect_type_bits(const pa_type *type)
{
    return (type->clear == NULL ? PA_COLLECT_NOCLEAR : 0) |
           (type->finalize ? PA_COLLECT_SPECIAL : 0);
}

/* State and outcome of the examination of a list (update_refs, subtract_refs,
 * move_unreachable). */
typedef struct pa_collect_scan {
    pa_hgc *young;
    size_t  examined;     /* objects in young at the start */
    size_t  pending;      /* objects at gc_refs 0 not yet found reachable: while none is left,
                             reachable objects need not be traversed */
    size_t  kept;         /* objects left in young */
    size_t  unreachable;  /* objects in the unreachable list at the end */
    size_t  pulled;       /* objects put there, then found reachable and moved back */
    size_t  noclear;      /* objects put there whose type has no clear (pulled ones too) */
    bool    special;      /* one put there had weak references or a pending finalizer */
    bool    far;          /* long edges are frequent: prefetch children ahead */
    unsigned seen;        /* PA_COLLECT_* bits that examined objects may have (weak references
                             aside) */
    uintptr_t mark;       /* whole marks: this collection's (PA_HGC_WMARK_A or _B); else 0 */
    pa_hgc *tail;         /* whole marks: the first object pulled back to young, whose prev
                             word no longer holds its link; NULL while none was */
    pa_hgc *tail_prev;    /* and the last object of young when it was pulled back */
    bool    deferred;     /* whole marks, all unreachable: no holds taken yet (see
                             pa_collect_clear) */
} pa_collect_scan;

/* How subtract_refs finds gc_refs: update_refs marked the examined set (PART); or the walk and
 * the edges mark every object as they first meet it, keeping gc_refs in the prev word
 * (WHOLE) or beside the prev pointer (MARKED: see hobj.h). */
enum pa_collect_mode { PA_SUB_PART, PA_SUB_WHOLE, PA_SUB_MARKED };

/* State of subtract_refs. Decrements commute: where children lie far away, each edge is
 * queued in a small ring and performed PA_PF_DEPTH edges later, when its prefetch has landed. */
typedef struct pa_collect_sub {
    void  *child[PA_PF_DEPTH];
    size_t in, out;     /* in - out edges queued, at most PA_PF_DEPTH */
    size_t nzero;       /* examined objects at gc_refs 0 */
    bool   queue;       /* queue the edges, else perform them at once */
    bool   overflow;    /* MARKED: a gc_refs did not fit, or went below 0 */
    uintptr_t mark;     /* MARKED: the whole mark */
} pa_collect_sub;

/* A prev word pv marked with mark and gc_refs refs (< PA_HGC_WREFS_MAX), its link kept. */
static inline uintptr_t pa_collect_wmark_word(uintptr_t pv, size_t refs, uintptr_t mark)
{
    return (pv & PA_HGC_PTR) | ((uintptr_t)refs << PA_HGC_WREFS_SHIFT) | mark;
}

/* The whole mark of g, with gc_refs starting as its refcount. A count that does not fit (an
 * object with PA_HGC_WREFS_MAX - 1 references or more) ends the attempt (pa_collect_examine). */
static inline uintptr_t pa_collect_wmark_start(const pa_hgc *g, pa_collect_sub *r)
{
    size_t rc = pa_hobj_of(pa_hobj_body(g))->refcnt;
    if (pa_unlikely(rc >= PA_HGC_WREFS_MAX - 1)) {
        r->overflow = true;
        rc = 0;
    }
    return pa_collect_wmark_word(g->prev, rc, r->mark);
}

/* mode is a constant at each call site: the visits below are specialised on it. */
static inline __attribute__((always_inline)) void
pa_collect_decref_one(pa_collect_sub *r, void *child, enum pa_collect_mode mode)
{
    if (!(pa_hobj_of(child)->type & PA_HOBJ_GC))
        return;
    pa_hgc *g = pa_hobj_gc(child);
    uintptr_t pv = g->prev;
    if (mode == PA_SUB_MARKED) {
        if (pa_unlikely(!(pv & r->mark))) {   /* met before the walk reached it */
            size_t rc = pa_hobj_of(child)->refcnt;
            if (pa_unlikely(rc - 1 >= PA_HGC_WREFS_MAX - 1)) {   /* 0 (see below), or too many */
                r->overflow = true;
                return;
            }
            r->nzero += rc == 1;
            g->prev = pa_collect_wmark_word(pv, rc - 1, r->mark);   /* start and decrement */
            return;
        }
        if (pa_unlikely(pv < 2 * PA_HGC_WREFS_ONE)) {   /* gc_refs <= 1 */
            if (pv < PA_HGC_WREFS_ONE) {   /* more edges than references: see below */
                r->overflow = true;
                return;
            }
            r->nzero++;
        }
        g->prev = pv - PA_HGC_WREFS_ONE;
        return;
    }
    if (!(pv & PA_HGC_COLLECTING)) {
        if (mode == PA_SUB_PART)
            return;   /* outside the examined set */
        pv = pa_collect_refs_start(g);   /* examined, and met before the walk reached it */
    }
    g->prev = pv - PA_HGC_REFS_ONE;
    /* nzero stays exact: 1 -> 0 adds one, 0 -> below (a traverse that visits more handles than
     * it holds) takes it back, and that object never comes back to 0 */
    if (pa_unlikely(pv < 2 * PA_HGC_REFS_ONE))
        r->nzero += (pv >> PA_HGC_REFS_SHIFT) ? 1 : (size_t)-1;
}

/* The edges of one object are queued, or performed at once, as r->queue says. A flag rather
 * than two visit functions: the call site in a traverse function that has seen two targets
 * is predicted more slowly from then on (8 % on a ring that fits in cache). */
static inline __attribute__((always_inline)) void
pa_collect_visit_sub(void *child, void *arg, enum pa_collect_mode mode)
{
    if (child == NULL)
        return;
    pa_collect_sub *r = arg;
    if (pa_likely(!r->queue)) {
        pa_collect_decref_one(r, child, mode);
        return;
    }
    pa_collect_prefetch(child);
    r->child[r->in++ & (PA_PF_DEPTH - 1)] = child;
    if (r->in - r->out == PA_PF_DEPTH)
        pa_collect_decref_one(r, r->child[r->out++ & (PA_PF_DEPTH - 1)], mode);
}

static void pa_collect_visit_decref_part(void *child, void *arg)
{
    pa_collect_visit_sub(child, arg, PA_SUB_PART);
}

static void pa_collect_visit_decref_whole(void *child, void *arg)
{
    pa_collect_visit_sub(child, arg, PA_SUB_WHOLE);
}

static void pa_collect_visit_decref_marked(void *child, void *arg)
{
    pa_collect_visit_sub(child, arg, PA_SUB_MARKED);
}

static inline bool pa_collect_is_far(const void *child, const pa_hgc *parent)
{
    return (uintptr_t)child - (uintptr_t)parent + PA_PF_NEAR > 2 * PA_PF_NEAR;
}

/* Long edges among those parent queued since first. */
static size_t pa_collect_count_far(const pa_collect_sub *r, size_t first, const pa_hgc *parent)
{
    size_t n = 0;
    if (r->in - first > PA_PF_DEPTH)
        first = r->in - PA_PF_DEPTH;   /* the older ones are overwritten */
    for (size_t i = first; i != r->in; i++)
        n += pa_collect_is_far(r->child[i & (PA_PF_DEPTH - 1)], parent);
    return n;
}

/* The walk of subtract_refs reaches g: marks it if no edge has (WHOLE, MARKED), then holds it
 * (see pa_collect_examine; not MARKED), gc_refs having been read. */
static inline __attribute__((always_inline)) void
pa_collect_walk_reach(pa_hgc *g, enum pa_collect_mode mode, pa_collect_sub *r)
{
    if (mode == PA_SUB_MARKED) {
        if (!(g->prev & r->mark)) {
            g->prev = pa_collect_wmark_start(g, r);
            if (g->prev < PA_HGC_WREFS_ONE)
                r->nzero++;
        }
        return;
    }
    if (mode == PA_SUB_WHOLE && !(g->prev & PA_HGC_COLLECTING)) {
        g->prev = pa_collect_refs_start(g);
        if ((g->prev >> PA_HGC_REFS_SHIFT) == 0)
            r->nzero++;
    }
    pa_hobj_of(pa_hobj_body(g))->refcnt++;
}

/* Whether subtract_refs queues edges, from samples of their lengths. */
typedef struct pa_collect_probe {
    size_t nfar;        /* long edges among the samples of the chunks before */
    size_t chunk_far;   /* and among those of this chunk */
    bool   pf;          /* queue and prefetch in this chunk */
} pa_collect_probe;

/* Measures the edges of g, the nobj-th object, queued since first; at the end of a chunk,
 * chooses the mode of the next. */
static inline void pa_collect_probe_edges(pa_collect_probe *p, size_t nobj,
                                          const pa_collect_sub *r, size_t first, const pa_hgc *g)
{
    p->chunk_far += pa_collect_count_far(r, first, g);
    if (nobj % PA_PF_CHUNK == 0) {
        p->pf = PA_PF_FAR(p->chunk_far, PA_PF_CHUNK / PA_PF_SAMPLE);
        p->nfar += p->chunk_far;
        p->chunk_far = 0;
    }
}

/* Removes the references examined objects hold to each other: what is left of gc_refs comes
 * from outside the examined set. WHOLE, MARKED: the objects are marked here, as the walk or an
 * edge first meets them, instead of by update_refs (s->pending: how many update_refs left at
 * 0). Holds every object, except MARKED. Sets s->pending to how many objects are at 0,
 * s->examined, s->seen and s->far (long edges are frequent). One object in PA_PF_SAMPLE has its edges queued and
 * measured whatever the mode (measuring every edge would cost near graphs more than the
 * prefetching saves on far ones); after every PA_PF_CHUNK objects, the samples of the chunk
 * choose the mode of the next. */
static inline __attribute__((always_inline)) bool
pa_collect_subtract_walk(pa_hgc *head, enum pa_collect_mode mode, pa_collect_scan *s)
{
    pa_collect_sub r;
    r.in = r.out = 0;
    r.nzero = s->pending;
    r.queue = true;
    r.overflow = false;
    r.mark = s->mark;
    pa_visit_fn visit = mode == PA_SUB_MARKED ? pa_collect_visit_decref_marked
                        : mode == PA_SUB_WHOLE ? pa_collect_visit_decref_whole
                                               : pa_collect_visit_decref_part;
    pa_collect_probe probe = { .pf = true };
    size_t nobj = 0;
    const pa_type *type = NULL;
    unsigned seen = 0;
    for (pa_hgc *g = pa_hlist_next(head), *next; g != head; g = next) {
        next = pa_hlist_next(g);   /* visits write no next word */
        pa_collect_walk_reach(g, mode, &r);
        if (pa_unlikely(pa_collect_type(g) != type)) {
            type = pa_collect_type(g);
            seen |= pa_collect_type_bits(type);
        }
        if (++nobj % PA_PF_SAMPLE) {
            type->traverse(pa_hobj_body(g), visit, &r);
            continue;
        }
        size_t first = r.in;
        r.queue = true;
        type->traverse(pa_hobj_body(g), visit, &r);
        pa_collect_probe_edges(&probe, nobj, &r, first, g);
        r.queue = probe.pf;
    }
    while (r.out != r.in)
        pa_collect_decref_one(&r, r.child[r.out++ & (PA_PF_DEPTH - 1)], mode);
    s->pending = r.nzero;
    s->examined = nobj;
    s->seen = seen;
    s->far = PA_PF_FAR(probe.nfar + probe.chunk_far, nobj / PA_PF_SAMPLE);
    return !r.overflow;
}

/* One copy of the walk per mode. Returns false if MARKED overflowed (nothing else changed
 * then but the marks). */
static bool pa_collect_subtract_refs(pa_hgc *head, enum pa_collect_mode mode, pa_collect_scan *s)
{
    switch (mode) {
    case PA_SUB_PART:  return pa_collect_subtract_walk(head, PA_SUB_PART, s);
    case PA_SUB_WHOLE: return pa_collect_subtract_walk(head, PA_SUB_WHOLE, s);
    default:           return pa_collect_subtract_walk(head, PA_SUB_MARKED, s);
    }
}

/* A member of the unreachable list, found reachable: back to the end of young, where the scan
 * loop will reach it and scan its children in turn. pv: its prev word. */
static void pa_collect_pull_back(pa_hgc *g, uintptr_t pv, pa_collect_scan *s)
{
    pa_hgc *young = s->young;
    pa_hgc *p = (pa_hgc *)(pv & ~PA_HGC_COLLECTING);
    pa_hgc *n = pa_collect_next_tagged(g);
    p->next = (p->next & PA_HGC_UNREACHABLE) | (uintptr_t)n;
    n->prev = (n->prev & PA_HGC_COLLECTING) | (uintptr_t)p;
    pa_hgc *last = pa_hlist_prev(young);
    if (s->mark && s->tail == NULL) {
        s->tail = g;
        s->tail_prev = last;
    }
    last->next = (uintptr_t)g;
    g->next = (uintptr_t)young;
    young->prev = (uintptr_t)g;
    g->prev = PA_HGC_REFS_ONE | PA_HGC_COLLECTING;
    s->pulled++;
    s->pending--;
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
    pa_collect_scan *s = arg;
    if (g->next & PA_HGC_UNREACHABLE) {
        pa_collect_pull_back(g, pv, s);
    } else if ((pv >> PA_HGC_REFS_SHIFT) == 0) {
        g->prev = PA_HGC_REFS_ONE | PA_HGC_COLLECTING;   /* still ahead of the scan in young */
        s->pending--;
    }
}

/* The same with whole marks: young holds marked objects (gc_refs beside the prev pointer) and,
 * at its end, pulled back ones (gc_refs 1 as above); a scanned object has a plain link. */
static void pa_collect_visit_reachable_marked(void *child, void *arg)
{
    if (child == NULL || !(pa_hobj_of(child)->type & PA_HOBJ_GC))
        return;
    pa_hgc *g = pa_hobj_gc(child);
    uintptr_t pv = g->prev;
    pa_collect_scan *s = arg;
    if (pv & PA_HGC_COLLECTING) {
        if (g->next & PA_HGC_UNREACHABLE)
            pa_collect_pull_back(g, pv, s);
    } else if ((pv & PA_HGC_TAGS) == s->mark && (pv >> PA_HGC_WREFS_SHIFT) == 0) {
        g->prev = pv + PA_HGC_WREFS_ONE;   /* still ahead of the scan in young */
        s->pending--;
    }
}

/* Gives back the prev links of young from g (which follows prev) to the end, and the holds:
 * the scan found nothing left to rescue, so every one of them stays.
 * With so little work per object, the loop would wait on each next load in turn; objects made
 * one after another sit at a fixed stride within a pool, so the walk steps by the last stride
 * and only checks the loaded link, a branch that the processor predicts and runs past (the
 * empty asm keeps the compiler from using the loaded value instead). 1.7 -> 1.4 ns per
 * object on a 1M-object ring. */
static void pa_collect_relink(pa_hgc *young, pa_hgc *prev, pa_hgc *g)
{
    uintptr_t d = 0;
    while (g != young) {
        pa_hgc *next = pa_hlist_next(g);
        g->prev = (uintptr_t)prev;
        pa_hobj_of(pa_hobj_body(g))->refcnt--;
        prev = g;
        pa_hgc *guess = (pa_hgc *)((uintptr_t)g + d);
        if (pa_likely(guess == next)) {
            __asm__("" : "+r"(guess));
        } else {
            d = (uintptr_t)next - (uintptr_t)g;
            guess = next;
        }
        g = guess;
    }
    young->prev = (uintptr_t)prev;
}

/* Puts g at the end of the unreachable list, tagged. */
static inline void pa_collect_set_aside(pa_hgc *g, pa_hgc *unreachable)
{
    pa_hgc *last = pa_hlist_prev(unreachable);
    last->next = (uintptr_t)g | (last == unreachable ? 0 : PA_HGC_UNREACHABLE);
    g->prev = (uintptr_t)last | PA_HGC_COLLECTING;
    g->next = (uintptr_t)unreachable | PA_HGC_UNREACHABLE;
    unreachable->prev = (uintptr_t)g;
}

/* gc_refs > 0, from a prev word of young (marked: see pa_collect_visit_reachable_marked). */
static inline bool pa_collect_refs_nonzero(uintptr_t pv, bool marked)
{
    if (marked)
        return (pv & PA_HGC_COLLECTING) || (pv >> PA_HGC_WREFS_SHIFT);
    return pv >> PA_HGC_REFS_SHIFT;
}

/* The scan found nothing left to rescue at g (prev: the last object kept before it). Without
 * whole marks, every prev word from g on holds gc_refs: pa_collect_relink. With them, those of
 * the objects not yet scanned are links still, and right but g's (its predecessors may have
 * been set aside); only the pulled back ones at the end (s->tail on, with the hold they took
 * when set aside) need relinking, or everything from g if the scan is among them already. */
static void pa_collect_relink_marked(pa_hgc *young, pa_hgc *prev, pa_hgc *g, pa_collect_scan *s)
{
    if (g->prev & PA_HGC_COLLECTING) {
        pa_collect_relink(young, prev, g);
        return;
    }
    g->prev = (uintptr_t)prev;
    if (s->tail)
        pa_collect_relink(young, s->tail_prev, s->tail);
}

/* Scans young in order. An object with gc_refs > 0 is reachable: its children are marked
 * reachable (pulled back from the unreachable list if already there), its prev link is
 * restored and its hold released. An object with gc_refs == 0 goes to the unreachable list,
 * tentatively. Once no object is left at 0, the rest of young is only relinked. young is
 * singly linked meanwhile (prev words hold gc_refs), except young->prev, its last element,
 * which the visit appends at and which is kept right when that element leaves. s->pending
 * must hold the number of objects at gc_refs 0. marked: whole marks, where only the objects
 * set aside are held (from then on, pulled back or not), and links survive (above). */
static inline __attribute__((always_inline)) void
pa_collect_move_unreachable_as(pa_hgc *young, pa_hgc *unreachable, pa_collect_scan *s,
                               bool marked)
{
    s->young = young;
    s->pulled = 0;
    s->tail = NULL;
    pa_visit_fn reach = marked ? pa_collect_visit_reachable_marked : pa_collect_visit_reachable;
    pa_hgc *prev = young;
    pa_hgc *g = pa_hlist_next(young);
    /* PA_PF_AHEAD objects on: its children are being prefetched */
    pa_hgc *ahead = s->far ? g : young;
    for (int i = 0; i < PA_PF_AHEAD && ahead != young; i++)
        ahead = pa_hlist_next(ahead);
    size_t moved = 0, noclear = 0;
    unsigned what = 0;
    while (g != young) {
        if (s->pending == 0) {
            if (marked)
                pa_collect_relink_marked(young, prev, g, s);
            else
                pa_collect_relink(young, prev, g);
            break;
        }
        if (ahead != young) {
            if (pa_collect_refs_nonzero(ahead->prev, marked))
                pa_collect_traverse(ahead, pa_collect_visit_prefetch, NULL);
            ahead = pa_hlist_next(ahead);
        }
        uintptr_t pv = g->prev;
        if (pa_collect_refs_nonzero(pv, marked)) {
            pa_collect_traverse(g, reach, s);
            g->prev = (uintptr_t)prev;
            if (!marked || (pv & PA_HGC_COLLECTING))
                pa_hobj_of(pa_hobj_body(g))->refcnt--;   /* reachable: the hold goes */
            prev = g;
            g = pa_hlist_next(g);   /* read after the visit: it may have appended after g */
        } else {
            pa_hgc *next = pa_hlist_next(g);
            prev->next = (uintptr_t)next;
            if (next == young)
                young->prev = (uintptr_t)prev;
            pa_collect_set_aside(g, unreachable);
            if (marked)
                pa_hobj_of(pa_hobj_body(g))->refcnt++;
            unsigned w = pa_collect_bits(g);
            moved++;
            noclear += w & PA_COLLECT_NOCLEAR;
            what |= w;
            g = next;
        }
    }
    /* Counted as they went: the visits change only pending and pulled meanwhile. */
    s->unreachable = moved - s->pulled;
    s->kept = s->examined - s->unreachable;
    s->noclear = noclear;
    s->special = what & PA_COLLECT_SPECIAL;
}

static void pa_collect_move_unreachable(pa_hgc *young, pa_hgc *unreachable, pa_collect_scan *s)
{
    if (s->mark)
        pa_collect_move_unreachable_as(young, unreachable, s, true);
    else
        pa_collect_move_unreachable_as(young, unreachable, s, false);
}

/* Hands the whole of young over to unreachable, in the same order, links as they are. */
static void pa_collect_hand_over(pa_hgc *young, pa_hgc *unreachable)
{
    pa_hgc *first = pa_hlist_next(young), *last = pa_hlist_prev(young);
    unreachable->next = (uintptr_t)first;
    unreachable->prev = (uintptr_t)last;
    last->next = (uintptr_t)unreachable;
    pa_hlist_init(young);
}

/* move_unreachable when every object of young is at gc_refs 0: none is reachable, so the
 * whole list becomes the unreachable one. Only the prev words carry the tag
 * (split_uncollectable tells members by it); the next words need none, as nothing will be
 * pulled back. When no object can have a finalizer, weak references or a type without clear,
 * nothing before the release pass reads the prev words at all: they keep gc_refs, and the
 * walk is saved. With whole marks the walk also takes the holds; without it the clear pass
 * does (s->deferred). */
static void pa_collect_move_all(pa_hgc *young, pa_hgc *unreachable, pa_collect_scan *s)
{
    size_t noclear = 0;
    unsigned what = 0;
    s->deferred = false;
    if (s->seen || pa_wref_objects()) {
        pa_hgc *last = unreachable;
        for (pa_hgc *g = pa_hlist_next(young); g != young; last = g, g = pa_hlist_next(g)) {
            g->prev = (uintptr_t)last | PA_HGC_COLLECTING;
            if (s->mark)
                pa_hobj_of(pa_hobj_body(g))->refcnt++;
            unsigned w = pa_collect_bits(g);
            noclear += w & PA_COLLECT_NOCLEAR;
            what |= w;
        }
    } else {
        s->deferred = s->mark != 0;
    }
    pa_collect_hand_over(young, unreachable);
    s->kept = 0;
    s->unreachable = s->examined;
    s->noclear = noclear;
    s->special = what & PA_COLLECT_SPECIAL;
}

/* Full collections of a big heap would otherwise spend a pass in ten on nothing. */
#define PA_WMARK_SKIP 16

/* Examines the objects of young: those not reachable from outside go to unreachable (links
 * as move_unreachable or move_all leave them). Each of them is held: a reference is taken to
 * every object of young while gc_refs are computed, and given back when it proves reachable;
 * until the release pass no member can die, whatever user code does meanwhile. whole: see
 * pa_collect_examines_all.
 * A whole collection uses whole marks (hobj.h), which keep the links: when everything is
 * reachable, as in a full collection of a heap that holds little garbage, nothing is left to
 * do after subtract_refs; the holds are taken only on objects found unreachable, then. An
 * object with 65535 references or more (or a traverse that visits more handles than its
 * object holds) does not fit the marks: the collection starts again without them, and so do
 * the next PA_WMARK_SKIP whole ones. */
static void pa_collect_examine(pa_hgc *young, bool whole, pa_hgc *unreachable,
                               pa_collect_scan *s)
{
    s->mark = 0;
    s->deferred = false;
    if (whole && pa_collect_wmark_skip == 0) {
        pa_collect_wmark ^= PA_HGC_WMARK_A | PA_HGC_WMARK_B;
        s->mark = pa_collect_wmark;
        s->pending = 0;
        if (pa_collect_subtract_refs(young, PA_SUB_MARKED, s)) {
            if (s->pending == 0) {
                s->kept = s->examined;
                s->unreachable = s->pulled = s->noclear = 0;
                s->special = false;
            } else if (s->pending == s->examined) {
                pa_collect_move_all(young, unreachable, s);
            } else {
                pa_collect_move_unreachable(young, unreachable, s);
            }
            return;
        }
        s->mark = 0;
        pa_collect_wmark_skip = PA_WMARK_SKIP;
    } else if (whole) {
        pa_collect_wmark_skip--;
    }
    s->pending = whole ? 0 : pa_collect_update_refs(young);
    pa_collect_subtract_refs(young, whole ? PA_SUB_WHOLE : PA_SUB_PART, s);
    if (s->examined && s->pending == s->examined)
        pa_collect_move_all(young, unreachable, s);
    else
        pa_collect_move_unreachable(young, unreachable, s);
}

/* Unlinks g from a list whose links may carry the collection tags. */
static void pa_collect_unlink_tagged(pa_hgc *g)
{
    pa_hgc *p = (pa_hgc *)(g->prev & ~PA_HGC_COLLECTING);
    pa_hgc *n = pa_collect_next_tagged(g);
    p->next = (p->next & PA_HGC_UNREACHABLE) | (uintptr_t)n;
    n->prev = (n->prev & PA_HGC_COLLECTING) | (uintptr_t)p;
}

/* A member of unreachable goes to uncollectable (clean links), and its hold with it. */
static void pa_collect_keep(pa_hgc *g, pa_hgc *uncollectable)
{
    pa_collect_unlink_tagged(g);
    pa_hlist_append(g, uncollectable);
    pa_hobj_of(pa_hobj_body(g))->refcnt--;
}

static void pa_collect_visit_move(void *child, void *arg)
{
    if (child == NULL || !(pa_hobj_of(child)->type & PA_HOBJ_GC))
        return;
    pa_hgc *g = pa_hobj_gc(child);
    if (g->prev & PA_HGC_COLLECTING)
        pa_collect_keep(g, arg);
}

/* Moves the members of unreachable whose type cannot clear, and everything they reach, to
 * uncollectable. Tags stay on the rest. */
static void pa_collect_split_uncollectable(pa_hgc *unreachable, pa_hgc *uncollectable)
{
    pa_hgc *g = pa_hlist_next(unreachable);
    while (g != unreachable) {
        pa_hgc *next = pa_collect_next_tagged(g);
        if (pa_collect_type(g)->clear == NULL)
            pa_collect_keep(g, uncollectable);
        g = next;
    }
    /* uncollectable is its own work list: traversing appends to its end. */
    for (g = pa_hlist_next(uncollectable); g != uncollectable; g = pa_hlist_next(g))
        pa_collect_traverse(g, pa_collect_visit_move, uncollectable);
}

/* Cleans the links (no user code may run before) and detaches weak references. Returns the
 * number of pending finalizers. Only needed when a member has weak references or a pending
 * finalizer: otherwise no user code runs before the clear pass, which reads tagged links. */
static size_t pa_collect_untag(pa_hgc *unreachable, pa_weakref **queue)
{
    size_t nf = 0;
    pa_hgc *g = pa_hlist_next(unreachable);
    while (g != unreachable) {
        pa_hgc *next = pa_collect_next_tagged(g);
        g->next = (uintptr_t)next;
        g->prev &= ~PA_HGC_COLLECTING;
        pa_hobj *h = pa_hobj_of(pa_hobj_body(g));
        uintptr_t tw = h->type;
        if (tw & PA_HOBJ_WEAKREFS)
            pa_wref_detach(pa_hobj_body(g), queue);
        if (pa_hobj_type(h)->finalize && !(tw & PA_HOBJ_FINALIZED))
            nf++;
        g = next;
    }
    return nf;
}

/* Runs every pending finalizer. Each member is held (set_aside); the hold is dropped right after
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
            pa_hobj_user_runs++;
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
    pa_collect_scan s;
    pa_collect_examine(unreachable, false, &still, &s);
    pa_hlist_merge(unreachable, old);
    for (pa_hgc *g = pa_hlist_next(&still); g != &still; g = pa_hlist_next(g)) {
        g->next &= ~PA_HGC_UNREACHABLE;
        g->prev &= ~PA_HGC_COLLECTING;
    }
    pa_hlist_merge(&still, unreachable);
    return s.unreachable;
}

/* Frees a cleared member of unreachable if only the collector's hold is left on it (see
 * pa_hobj_free_cleared for runs); false if something still references it. */
static inline bool pa_collect_free_dropped(pa_hgc *g, unsigned long runs)
{
    pa_hobj *h = pa_hobj_of(pa_hobj_body(g));
    if (h->refcnt != 1)
        return false;
    h->refcnt = 0;
    pa_collect_ntracked--;
    if (pa_collect_gen0_count > 0)
        pa_collect_gen0_count--;
    pa_hobj_free_cleared(pa_hobj_body(g), runs);
    return true;
}

/* Breaks the cycles: every member is held, so clearing them all kills none and the walk is
 * safe (no dealloc chains either). The links may still carry the tags: no user code walks
 * this list, and no member leaves it but here and in the release pass.
 * A member whose references all came from members cleared before it (in a ring, from its two
 * neighbours) is left with the hold alone once the next one is cleared: it is freed then,
 * saving the release pass a second trip through memory (ring of 1M: 11.7 -> 10.0 ns per
 * object). Only while freeing runs no user code: no finalizer or callback has run since the
 * pass began (runs) and it has no weak references; the release pass sees to the others, which
 * stay linked by their next words. Not where edges are long (far): few members qualify, and
 * the gaps they leave cost the release walk more than it saves (random chords: 28 -> 35 ns).
 * defer (s->deferred: the whole mark of the members): the holds are taken here, one member
 * ahead of the one cleared (PA_PF_AHEAD where edges are long), and pa_hobj_dealloc leaves to
 * the collector a member that a clear drops to 0 before its hold (left at 0, it is held from 0
 * to 1 later). */
static inline __attribute__((always_inline)) void
pa_collect_clear_as(pa_hgc *unreachable, bool far, unsigned long runs, uintptr_t defer)
{
    /* PA_PF_AHEAD members on: prefetched (far) and held (defer); near, the next member is
     * far enough for the holds (an ahead walk of its own would cost 1.7 ns per object on a
     * ring of 1M) */
    pa_hgc *ahead = far || defer ? pa_collect_next_tagged(unreachable) : unreachable;
    for (int i = 0, n = far ? PA_PF_AHEAD : 1; i < n && ahead != unreachable; i++) {
        if (defer)
            pa_hobj_of(pa_hobj_body(ahead))->refcnt++;
        ahead = pa_collect_next_tagged(ahead);
    }
    pa_collect_defer_mark = defer;
    pa_hgc *kept = unreachable, *behind = NULL;   /* last member kept; the one cleared last */
    for (pa_hgc *g = pa_collect_next_tagged(unreachable), *next; g != unreachable; g = next) {
        next = pa_collect_next_tagged(g);
        if (ahead != unreachable) {
            if (far)
                pa_collect_traverse(ahead, pa_collect_visit_prefetch, NULL);
            if (defer)
                pa_hobj_of(pa_hobj_body(ahead))->refcnt++;
            ahead = pa_collect_next_tagged(ahead);
        }
        void *body = pa_hobj_body(g);
        pa_hobj_type(pa_hobj_of(body))->clear(body);
        if (behind) {
            if (far || pa_hobj_user_runs != runs || (pa_hobj_of(pa_hobj_body(behind))->type &
                                              PA_HOBJ_WEAKREFS) ||
                !pa_collect_free_dropped(behind, runs)) {
                kept->next = (uintptr_t)behind;
                kept = behind;
            }
        }
        behind = g;
    }
    pa_collect_defer_mark = 0;
    if (behind) {
        kept->next = (uintptr_t)behind;
        kept = behind;
    }
    kept->next = (uintptr_t)unreachable;
}

/* One copy of the pass for each way of walking ahead. */
static void pa_collect_clear(pa_hgc *unreachable, bool far, unsigned long runs, uintptr_t defer)
{
    if (far)
        pa_collect_clear_as(unreachable, true, runs, defer);
    else if (defer)
        pa_collect_clear_as(unreachable, false, runs, defer);
    else
        pa_collect_clear_as(unreachable, false, runs, 0);
}

/* Then the holds are released in list order, which frees, in memory order, each object whose
 * references all came from the garbage. A member still referenced after that (a clear that
 * did not drop everything) lives on in old. Each link is read before its member goes, and
 * the list is dropped whole at the end. runs: pa_hobj_user_runs before the clear pass. */
static void pa_collect_release(pa_hgc *unreachable, pa_hgc *old, unsigned long runs)
{
    pa_hgc *g = pa_collect_next_tagged(unreachable);
    while (g != unreachable) {
        pa_hgc *next = pa_collect_next_tagged(g);
        if (!pa_collect_free_dropped(g, runs)) {
            pa_hobj_of(pa_hobj_body(g))->refcnt--;
            pa_hlist_append(g, old);
        }
        g = next;
    }
    pa_hlist_init(unreachable);
}

static size_t pa_collect_list_size(const pa_hgc *head)
{
    size_t n = 0;
    for (const pa_hgc *g = pa_hlist_next(head); g != head; g = pa_hlist_next(g))
        n++;
    return n;
}

/* Whether a collection of gen examines every object that an edge can lead to: a full one with
 * nothing frozen, no uncollectable garbage and no finalizer running in pa_hobj_destroy (whose
 * object is untracked but may be referenced). Untracked objects are then dying ones, which
 * nothing references, so an edge to an unmarked object leads to one of young that the walk
 * has not reached yet, and update_refs can be folded into subtract_refs ("whole"). */
static bool pa_collect_examines_all(int gen)
{
    return gen == PA_NGEN - 1 && pa_hlist_empty(&pa_collect_permanent) &&
           pa_hlist_empty(&pa_collect_garbage) && pa_hobj_finalizing == 0;
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
    pa_collect_scan s;
    pa_collect_examine(young, pa_collect_examines_all(gen), &unreachable, &s);
    if (gen == PA_NGEN - 2)
        pa_collect_long_lived_pending += s.kept;
    if (young != old)
        pa_hlist_merge(young, old);
    if (gen == PA_NGEN - 1) {
        pa_collect_long_lived_pending = 0;
        pa_collect_long_lived_total = s.kept;
    }

    size_t ncol = 0, nunc = 0;
    if (!pa_hlist_empty(&unreachable)) {
        if (s.noclear) {
            pa_collect_split_uncollectable(&unreachable, &uncollectable);
            nunc = pa_collect_list_size(&uncollectable);
            pa_hlist_merge(&uncollectable, &pa_collect_garbage);
        }
        ncol = s.unreachable - nunc;
        if (s.special) {
            pa_weakref *queue = NULL;
            size_t nfinal = pa_collect_untag(&unreachable, &queue);
            pa_wref_run(&queue);
            if (nfinal) {
                pa_collect_finalize(&unreachable);
                ncol = pa_collect_resurrected(&unreachable, old);
            }
        }
        unsigned long runs = pa_hobj_user_runs;
        pa_collect_clear(&unreachable, s.far, runs, s.deferred ? s.mark : 0);
        pa_collect_release(&unreachable, old, runs);
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
