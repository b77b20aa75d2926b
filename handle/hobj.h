/* hobj.h — memory layout of a handle object and the calls between the files of handle/
 * (object.c: life and death of objects; collect.c: generations and the cycle collector;
 * weakref.c: weak references; lock.c: the global lock). Nothing here is exported. */
#ifndef PA_HOBJ_H
#define PA_HOBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pyarena.h"
#include "pyarena/handle.h"

#define PA_HINTERNAL __attribute__((visibility("hidden")))
#define pa_likely(x)   __builtin_expect(!!(x), 1)
#define pa_unlikely(x) __builtin_expect(!!(x), 0)

/*   allocation of a type with traverse (tracked):
 *   +---------+---------+---------------+---------+------------
 *   | next    | prev    | type | flags  | refcnt  | body ...          32-byte header
 *   +---------+---------+---------------+---------+------------
 *   allocation of a type without traverse (never tracked):
 *                       +---------------+---------+------------
 *                       | type | flags  | refcnt  | body ...          16-byte header
 *                       +---------------+---------+------------
 * Both sizes are multiples of 16, so the body keeps the allocator's 16-byte alignment. */

/* Links of a tracked object (and the shape of every list head). Outside a collection both are
 * plain pointers of a circular doubly linked list, except that prev may carry a whole mark
 * (below), which readers mask off. While a collection examines the object:
 *   prev  bit 0 (PA_HGC_COLLECTING) set; bits 2.. hold gc_refs (references not accounted for
 *         by other examined objects) while the object sits in the young list, or the real
 *         prev pointer while it sits in the tentatively-unreachable list (unless nothing will
 *         read it there: when the whole young list turns out unreachable and no member has
 *         a finalizer, weak references or a type without clear, gc_refs stays);
 *   next  bit 0 (PA_HGC_UNREACHABLE) set while in the tentatively-unreachable list, as long
 *         as members can still be pulled back from it.
 * A full collection that examines every tracked object (collect.c, "whole marks") keeps the
 * prev pointer instead and puts gc_refs beside it:
 *   prev  bits 63..48 gc_refs, 47..4 the pointer, and one of the two whole marks: bit 1
 *         (PA_HGC_WMARK_A) or bit 2 (PA_HGC_WMARK_B), in turn; bit 0 clear.
 * Nothing clears a whole mark: the next such collection uses the other one, and a mark of
 * the kind in use cannot be left from an earlier one (that one examined every object and
 * marked it again, or made the link plain). List heads and objects are 16-byte aligned and
 * below 2^48 (pa_collect_track checks), which is what leaves those bits free.
 * Every link is clean again before any finalizer or weak reference callback runs. clear may
 * run with the unreachable list still in that state: no user code can reach that list, whose
 * members the collector holds until it frees them, walking it forwards. */
typedef struct pa_hgc {
    uintptr_t next;
    uintptr_t prev;
} __attribute__((aligned(16))) pa_hgc;

/* The part every object has, immediately before the body. */
typedef struct pa_hobj {
    uintptr_t type;    /* const pa_type * | PA_HOBJ_* flags (pa_type is 8-aligned: 3 free bits) */
    size_t    refcnt;  /* at body - 8: the inline incref/decref in handle.h depend on it */
} pa_hobj;

#define PA_HOBJ_GC         ((uintptr_t)1)  /* has pa_hgc links (type->traverse != NULL); fixed */
#define PA_HOBJ_FINALIZED  ((uintptr_t)2)  /* finalize ran (or started): never again (PEP 442) */
#define PA_HOBJ_WEAKREFS   ((uintptr_t)4)  /* has an entry in the weak reference table */
#define PA_HOBJ_FLAGS      ((uintptr_t)7)

#define PA_HGC_COLLECTING  ((uintptr_t)1)
#define PA_HGC_UNREACHABLE ((uintptr_t)1)
#define PA_HGC_REFS_SHIFT  2
#define PA_HGC_REFS_ONE    ((uintptr_t)1 << PA_HGC_REFS_SHIFT)
#define PA_HGC_WMARK_A     ((uintptr_t)2)   /* whole marks: one test of a bit tells */
#define PA_HGC_WMARK_B     ((uintptr_t)4)
#define PA_HGC_TAGS        ((uintptr_t)7)
#define PA_HGC_WREFS_SHIFT 48
#define PA_HGC_WREFS_ONE   ((uintptr_t)1 << PA_HGC_WREFS_SHIFT)
#define PA_HGC_WREFS_MAX   ((size_t)1 << (64 - PA_HGC_WREFS_SHIFT))   /* gc_refs below this */
#define PA_HGC_PTR         (((uintptr_t)1 << PA_HGC_WREFS_SHIFT) - 16)

_Static_assert(sizeof(pa_hobj) == PA_HANDLE_HEADER, "handle.h header size");
_Static_assert(sizeof(pa_hgc) + sizeof(pa_hobj) == PA_HANDLE_GC_HEADER, "handle.h gc header size");
_Static_assert(offsetof(pa_hobj, refcnt) + sizeof(size_t) == sizeof(pa_hobj),
               "the refcount ends where the body starts");

static inline pa_hobj *pa_hobj_of(const void *body) { return (pa_hobj *)body - 1; }
static inline pa_hgc *pa_hobj_gc(const void *body) { return (pa_hgc *)((pa_hobj *)body - 1) - 1; }
static inline void *pa_hobj_body(const pa_hgc *g) { return (char *)g + PA_HANDLE_GC_HEADER; }
static inline const pa_type *pa_hobj_type(const pa_hobj *h)
{
    return (const pa_type *)(h->type & ~PA_HOBJ_FLAGS);
}

/* ---- list primitives on clean links */
static inline pa_hgc *pa_hlist_next(const pa_hgc *g) { return (pa_hgc *)g->next; }
static inline pa_hgc *pa_hlist_prev(const pa_hgc *g) { return (pa_hgc *)(g->prev & PA_HGC_PTR); }
static inline void pa_hlist_init(pa_hgc *head) { head->next = head->prev = (uintptr_t)head; }
static inline bool pa_hlist_empty(const pa_hgc *head) { return head->next == (uintptr_t)head; }

static inline void pa_hlist_append(pa_hgc *g, pa_hgc *head)
{
    pa_hgc *last = pa_hlist_prev(head);
    last->next = (uintptr_t)g;
    g->prev = (uintptr_t)last;
    g->next = (uintptr_t)head;
    head->prev = (uintptr_t)g;
}

static inline void pa_hlist_remove(pa_hgc *g)
{
    pa_hgc *p = pa_hlist_prev(g), *n = pa_hlist_next(g);
    p->next = (uintptr_t)n;
    n->prev = (uintptr_t)p;
}

/* Appends all of from to the end of to; from becomes empty. */
static inline void pa_hlist_merge(pa_hgc *from, pa_hgc *to)
{
    if (pa_hlist_empty(from))
        return;
    pa_hgc *first = pa_hlist_next(from), *last = pa_hlist_prev(from), *tail = pa_hlist_prev(to);
    tail->next = (uintptr_t)first;
    first->prev = (uintptr_t)tail;
    last->next = (uintptr_t)to;
    to->prev = (uintptr_t)last;
    pa_hlist_init(from);
}

/* ---- object.c */
/* Finalizers running in pa_hobj_destroy: their objects are untracked meanwhile, yet may be
 * referenced (a finalizer may store its object anywhere). */
PA_HINTERNAL extern unsigned pa_hobj_finalizing;
/* Finalizers and weak reference callbacks started so far: the user code that may reach a dying
 * object by a raw pointer and give it handles again (clear functions only drop handles). The
 * collector's release pass calls clear a second time only when this moved since its clear pass
 * began, which saves an indirect call per object in the common case. */
PA_HINTERNAL extern unsigned long pa_hobj_user_runs;

/* ---- collect.c */
/* Links a new or resurrected object into generation 0 and counts it towards threshold 0. */
PA_HINTERNAL void pa_collect_track(pa_hgc *g);
/* Unlinks a dying object from whatever collector list holds it. */
PA_HINTERNAL void pa_collect_untrack(pa_hgc *g);
/* Runs the automatic collection that the counts call for, if any (pa_new calls it when
 * count 0 exceeds pa_collect_gen0_threshold, before allocating). */
PA_HINTERNAL void pa_collect_maybe(void);
PA_HINTERNAL extern size_t pa_collect_gen0_count;    /* gen 0 trigger count: read by pa_new's fast check */
PA_HINTERNAL extern size_t pa_collect_gen0_threshold;
/* While the clear pass of a collection that takes its holds as it goes runs: the whole mark
 * (PA_HGC_WMARK_A or _B) of its members, whose death pa_hobj_dealloc leaves to the collector;
 * 0 otherwise. */
PA_HINTERNAL extern uintptr_t pa_collect_defer_mark;

/* Whether the death of g, whose refcount just reached 0, is the collector's to handle. */
static inline bool pa_collect_defers(const pa_hgc *g)
{
    return pa_unlikely(pa_collect_defer_mark != 0) &&
           (g->prev & PA_HGC_TAGS) == pa_collect_defer_mark;
}

/* ---- weakref.c */
/* Detaches every weak reference to obj (clears them; obj's WEAKREFS flag is cleared) and
 * pushes those with a callback on *queue (a stack). No user code runs. */
PA_HINTERNAL void pa_wref_detach(void *obj, pa_weakref **queue);
/* Runs (and dequeues) the callbacks queued by pa_wref_detach: the last detached object's
 * first, each object's newest reference first. A reference freed while queued is released
 * without its callback. */
PA_HINTERNAL void pa_wref_run(pa_weakref **queue);
/* How many objects have weak references. */
PA_HINTERNAL size_t pa_wref_objects(void);

/* ---- death of an object (object.c, and the collector's release pass, which inlines it) */

/* The start of the allocation holding body; tw is its type word. */
static inline void *pa_hobj_base(void *body, uintptr_t tw)
{
    return (char *)body - ((tw & PA_HOBJ_GC) ? PA_HANDLE_GC_HEADER : PA_HANDLE_HEADER);
}

/* Clears the weak references to a dying object and runs their callbacks. */
static inline void pa_hobj_clear_weakrefs(void *body)
{
    if (pa_hobj_of(body)->type & PA_HOBJ_WEAKREFS) {
        pa_weakref *queue = NULL;
        pa_wref_detach(body, &queue);
        pa_wref_run(&queue);
    }
}

/* Frees an object the collector has cleared and released: untracked, refcount 0, finalizer
 * done or absent. Clears its weak references (running their callbacks) and calls clear once
 * more if a finalizer or callback has run since its clear (pa_hobj_user_runs was runs then),
 * as that one may have given it new handles. */
static inline void pa_hobj_free_cleared(void *body, unsigned long runs)
{
    pa_hobj_clear_weakrefs(body);
    pa_hobj *h = pa_hobj_of(body);
    if (pa_unlikely(pa_hobj_user_runs != runs))
        pa_hobj_type(h)->clear(body);
    pyarena_free(pa_hobj_base(body, h->type));
}

#endif
