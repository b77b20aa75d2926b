/* object.c — life and death of handle objects: allocation from pyarena, the reference count's
 * out-of-line calls, and deallocation (finalize, weak references, clear, free) with a
 * trashcan that turns the clear -> decref -> dealloc recursion of long chains into a loop. */
#define PA_HANDLE_NO_INLINE
#include "hobj.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "pyarena.h"

/* Trashcan. Deallocation nests when clear drops the last reference to another object; past
 * PA_TRASH_DEPTH nested deallocations, tracked objects are parked on pa_hobj_trash (linked
 * through their gc next word, already untracked, refcount 0) and the outermost deallocation
 * finishes them one by one. Untracked types hold no handles, so they never nest through clear.
 * Globals, not thread-local: handle calls are serialised by pa_lock. */
#define PA_TRASH_DEPTH 64
static unsigned pa_hobj_depth;
static pa_hgc  *pa_hobj_trash;
unsigned pa_hobj_finalizing;
unsigned long pa_hobj_user_runs;

PA_HANDLE_API void *pa_new(const pa_type *type)
{
    if (pa_unlikely(type == NULL || ((uintptr_t)type & PA_HOBJ_FLAGS))) {
        errno = EINVAL;
        return NULL;
    }
    bool gc = type->traverse != NULL;
    size_t hdr = gc ? PA_HANDLE_GC_HEADER : PA_HANDLE_HEADER;
    if (pa_unlikely(type->size > SIZE_MAX - hdr)) {
        errno = ENOMEM;
        return NULL;
    }
    if (gc && pa_unlikely(pa_collect_gen0_count > pa_collect_gen0_threshold))
        pa_collect_maybe();
    char *base = pyarena_malloc(hdr + type->size);
    if (pa_unlikely(base == NULL)) {
        errno = ENOMEM;
        return NULL;
    }
    void *body = base + hdr;
    pa_hobj *h = pa_hobj_of(body);
    h->type = (uintptr_t)type | (gc ? PA_HOBJ_GC : 0);
    h->refcnt = 1;
    memset(body, 0, type->size);
    if (gc)
        pa_collect_track(pa_hobj_gc(body));
    return body;
}

PA_HANDLE_API size_t pa_refcount(const void *obj)
{
    return obj ? pa_hobj_of(obj)->refcnt : 0;
}

PA_HANDLE_API const pa_type *pa_type_of(const void *obj)
{
    return obj ? pa_hobj_type(pa_hobj_of(obj)) : NULL;
}

PA_HANDLE_API void pa_incref(void *obj)
{
    if (obj)
        pa_hobj_of(obj)->refcnt++;
}

PA_HANDLE_API void pa_decref(void *obj)
{
    if (obj && --pa_hobj_of(obj)->refcnt == 0)
        pa_hobj_dealloc(obj);
}

/* The object is untracked and its count is 0. */
static void pa_hobj_destroy(void *body)
{
    pa_hobj *h = pa_hobj_of(body);
    const pa_type *type = pa_hobj_type(h);
    if (type->finalize && !(h->type & PA_HOBJ_FINALIZED)) {
        h->type |= PA_HOBJ_FINALIZED;
        h->refcnt = 1;   /* the finalizer sees a live object and may keep it */
        pa_hobj_finalizing++;
        pa_hobj_user_runs++;
        type->finalize(body);
        pa_hobj_finalizing--;
        if (--h->refcnt != 0) {
            if (h->type & PA_HOBJ_GC)
                pa_collect_track(pa_hobj_gc(body));
            return;
        }
    }
    pa_hobj_clear_weakrefs(body);
    if (type->clear)
        type->clear(body);
    pyarena_free(pa_hobj_base(body, h->type));
}

PA_HANDLE_API void pa_hobj_dealloc(void *body)
{
    pa_hobj *h = pa_hobj_of(body);
    if (h->type & PA_HOBJ_GC) {
        pa_hgc *g = pa_hobj_gc(body);
        if (pa_collect_defers(g))
            return;   /* a member of the garbage being cleared: freed by the collector */
        pa_collect_untrack(g);
        if (pa_unlikely(pa_hobj_depth >= PA_TRASH_DEPTH)) {
            g->next = (uintptr_t)pa_hobj_trash;
            pa_hobj_trash = g;
            return;
        }
    }
    pa_hobj_depth++;
    pa_hobj_destroy(body);
    pa_hobj_depth--;
    if (pa_hobj_depth == 0) {
        while (pa_hobj_trash) {
            pa_hgc *g = pa_hobj_trash;
            pa_hobj_trash = (pa_hgc *)g->next;
            pa_hobj_depth++;
            pa_hobj_destroy(pa_hobj_body(g));
            pa_hobj_depth--;
        }
    }
}
