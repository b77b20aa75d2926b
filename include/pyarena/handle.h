/* pyarena/handle.h — public API of libpyarena_handle: refcounted objects ("handles") whose
 * memory comes from pyarena's pools, with CPython-style generational cycle collection and
 * weak references. Link with -lpyarena_handle (it brings libpyarena.so along).
 *
 * An object is a header followed by the body that pa_new returns. The header holds, just
 * before the body, the type word and the reference count (PA_HANDLE_HEADER bytes); types with
 * a traverse function have two more list links in front of those (PA_HANDLE_GC_HEADER bytes in
 * all), which chain them into the collector's generation lists. pa_incref/pa_decref are inline
 * and reach the count at a fixed offset before the body. */
#ifndef PYARENA_HANDLE_H
#define PYARENA_HANDLE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PA_HANDLE_API __attribute__((visibility("default")))

/* Bytes in front of the body: objects of types without traverse / with traverse. */
#define PA_HANDLE_HEADER     16
#define PA_HANDLE_GC_HEADER  32

typedef void (*pa_visit_fn)(void *child, void *arg);

typedef struct pa_type {
    const char *name;     /* shown in stats and leak reports */
    size_t size;          /* bytes of the body that pa_new returns */
    /* calls visit(child, arg) once for every handle this object holds a reference to (NULL
       children may be passed, they are ignored); NULL: the type holds no handles, is never
       tracked, cannot be part of a cycle */
    void (*traverse)(void *self, pa_visit_fn visit, void *arg);
    /* drops (pa_decref and forgets) every handle the object holds; called when the object dies
       (refcount 0, after finalize) and by the collector to break unreachable cycles, so it may
       run twice and must forget what it dropped; NULL on a type with traverse: its cycles
       cannot be broken and are reported uncollectable */
    void (*clear)(void *self);
    /* optional; called exactly once in the object's life, before it is freed, whether it dies
       by refcount or by the collector; it may store a new reference to self (resurrection):
       the object then lives on and is not freed */
    void (*finalize)(void *self);
} pa_type;

/* ---- objects and reference counts */

/* Zero-filled body of type->size bytes, refcount 1. NULL with errno EINVAL (no type) or
 * ENOMEM. May run an automatic collection first (see pa_gc_set_threshold). */
PA_HANDLE_API void *pa_new(const pa_type *type);
PA_HANDLE_API size_t pa_refcount(const void *obj);
PA_HANDLE_API const pa_type *pa_type_of(const void *obj);

/* Called by pa_decref when the count reaches zero: finalize, weak references, clear, free.
 * Not for direct use. */
PA_HANDLE_API void pa_hobj_dealloc(void *obj);

#ifndef PA_HANDLE_NO_INLINE
/* NULL is ignored. */
static inline void pa_incref(void *obj)
{
    if (obj)
        ((size_t *)obj)[-1]++;
}

/* NULL is ignored; at zero: finalize, clear, free. */
static inline void pa_decref(void *obj)
{
    if (obj && --((size_t *)obj)[-1] == 0)
        pa_hobj_dealloc(obj);
}
#else
/* The library also exports both as functions, for callers that cannot use inline code. */
PA_HANDLE_API void pa_incref(void *obj);
PA_HANDLE_API void pa_decref(void *obj);
#endif

/* Replaces the handle in *slot by val (which the caller already owns a reference to) and drops
 * the old one after the store, so clear functions and setters never expose a dangling slot. */
static inline void pa_setref(void **slot, void *val)
{
    void *old = *slot;
    *slot = val;
    if (old) {
        if (--((size_t *)old)[-1] == 0)
            pa_hobj_dealloc(old);
    }
}
#define PA_CLEAR(slot) pa_setref((void **)&(slot), NULL)

/* ---- the collector, modelled on Python's gc module */

/* Collects generation 0, 1 or 2 (2 = full) and all younger ones; returns how many unreachable
 * objects it found (collected + uncollectable; resurrected ones are not counted). 0 while a
 * collection is already running; 0 with errno EINVAL for another generation. */
PA_HANDLE_API size_t pa_gc_collect(int generation);
/* Switch the automatic collections (pa_gc_collect always works). Enabled at start. */
PA_HANDLE_API void   pa_gc_enable(void);
PA_HANDLE_API void   pa_gc_disable(void);
PA_HANDLE_API int    pa_gc_is_enabled(void);
/* Defaults 700, 10, 10. Threshold 0 of 0 disables automatic collection, as in CPython. */
PA_HANDLE_API void   pa_gc_set_threshold(size_t t0, size_t t1, size_t t2);
PA_HANDLE_API void   pa_gc_get_threshold(size_t out[3]);
/* out[0]: tracked allocations minus deallocations since the last collection; out[1], out[2]:
 * collections of the next younger generation since the last collection of this one. */
PA_HANDLE_API void   pa_gc_get_count(size_t out[3]);
/* Move every tracked object to a permanent generation that no collection looks at / back
 * into the oldest generation. */
PA_HANDLE_API void   pa_gc_freeze(void);
PA_HANDLE_API void   pa_gc_unfreeze(void);
PA_HANDLE_API size_t pa_gc_freeze_count(void);
/* Objects tracked now: generations, permanent generation and uncollectable garbage. */
PA_HANDLE_API size_t pa_gc_tracked(void);

typedef struct pa_gc_stats { size_t collections, collected, uncollectable; } pa_gc_stats;
/* Per generation, since start. */
PA_HANDLE_API void   pa_gc_get_stats(pa_gc_stats out[3]);
/* Calls fn on every tracked object (youngest generation first, then the permanent generation,
 * then uncollectable garbage). fn may read objects and take references it keeps; it must not
 * make any object die or create tracked objects while the walk runs. */
PA_HANDLE_API void   pa_gc_foreach(void (*fn)(void *obj, void *arg), void *arg);
/* Objects found in unreachable cycles that could not be broken (a member's type has no clear),
 * kept alive; like Python's gc.garbage. */
PA_HANDLE_API size_t pa_gc_garbage_count(void);
/* One callback (NULL removes it), called at the start (phase 0) and end (phase 1) of every
 * collection; collected/uncollectable are 0 at the start. It must not call pa_gc_collect
 * (which would return 0). */
PA_HANDLE_API void   pa_gc_set_callback(void (*cb)(int phase, int generation, size_t collected,
                                                   size_t uncollectable, void *arg),
                                        void *arg);

/* ---- weak references */

typedef struct pa_weakref pa_weakref;
/* A reference that does not keep obj alive (obj must be live). When obj dies, by refcount or
 * by the collector, the reference is cleared and callback (if any) runs once with the
 * reference and arg; pa_weakref_free may be called from the callback. NULL + errno on failure. */
PA_HANDLE_API pa_weakref *pa_weakref_new(void *obj, void (*callback)(pa_weakref *ref, void *arg),
                                         void *arg);
/* A new strong reference, or NULL once the object died. */
PA_HANDLE_API void       *pa_weakref_get(pa_weakref *ref);
/* Releases the reference (NULL is ignored); its callback will not run afterwards. */
PA_HANDLE_API void        pa_weakref_free(pa_weakref *ref);

/* ---- threads: like CPython's GIL. A program that uses handles from several threads holds
 * pa_lock() around its handle calls; a single-threaded program never calls these. */
PA_HANDLE_API void pa_lock(void);
PA_HANDLE_API void pa_unlock(void);

#ifdef __cplusplus
}
#endif

#endif
