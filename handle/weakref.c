/* weakref.c — weak references: the table from a referent to its references (consulted only
 * for objects whose header carries PA_HOBJ_WEAKREFS, so objects without weak references pay
 * nothing), clearing at death and the callbacks. */
#include "hobj.h"

#include <errno.h>
#include <stdint.h>

#include "pyarena.h"

enum pa_wref_state {
    PA_WREF_ATTACHED,   /* obj is alive; the reference is in obj's list */
    PA_WREF_QUEUED,     /* obj died; the callback has not run yet */
    PA_WREF_DEAD,       /* obj died; callback ran or there is none */
};

struct pa_weakref {
    void              *obj;         /* the referent while ATTACHED, else NULL */
    void             (*cb)(pa_weakref *ref, void *arg);
    void              *arg;
    pa_weakref        *next;        /* ATTACHED: obj's list; QUEUED: the callback queue */
    pa_weakref        *prev;        /* ATTACHED: obj's list, NULL at its head */
    uint8_t            state;       /* enum pa_wref_state */
    bool               free_asked;  /* QUEUED only: freed before its callback: skip, then free */
};

/* Open addressing, linear probing, power-of-two capacity, at most half full; deletion shifts
 * followers back, so there are no tombstones. An empty slot has obj == NULL. */
typedef struct pa_wref_slot {
    void       *obj;
    pa_weakref *head;   /* never NULL in a used slot: the entry goes with the last reference */
} pa_wref_slot;

static pa_wref_slot *pa_wref_tab;
static size_t        pa_wref_cap, pa_wref_used;

static size_t pa_wref_hash(const void *obj)
{
    return (size_t)(((uint64_t)(uintptr_t)obj >> 4) * UINT64_C(0x9E3779B97F4A7C15) >> 17);
}

static pa_wref_slot *pa_wref_find(const void *obj)
{
    size_t mask = pa_wref_cap - 1;
    for (size_t i = pa_wref_hash(obj) & mask;; i = (i + 1) & mask) {
        if (pa_wref_tab[i].obj == obj)
            return &pa_wref_tab[i];
        if (pa_wref_tab[i].obj == NULL)
            return NULL;
    }
}

static pa_wref_slot *pa_wref_place(pa_wref_slot *tab, size_t cap, void *obj)
{
    size_t i = pa_wref_hash(obj) & (cap - 1);
    while (tab[i].obj)
        i = (i + 1) & (cap - 1);
    tab[i].obj = obj;
    return &tab[i];
}

static pa_wref_slot *pa_wref_insert(void *obj)
{
    if ((pa_wref_used + 1) * 2 > pa_wref_cap) {
        size_t cap = pa_wref_cap ? pa_wref_cap * 2 : 64;
        pa_wref_slot *tab = pyarena_calloc(cap, sizeof *tab);
        if (tab == NULL)
            return NULL;
        for (size_t i = 0; i < pa_wref_cap; i++)
            if (pa_wref_tab[i].obj)
                pa_wref_place(tab, cap, pa_wref_tab[i].obj)->head = pa_wref_tab[i].head;
        pyarena_free(pa_wref_tab);
        pa_wref_tab = tab;
        pa_wref_cap = cap;
    }
    pa_wref_used++;
    pa_wref_slot *s = pa_wref_place(pa_wref_tab, pa_wref_cap, obj);
    s->head = NULL;
    return s;
}

static void pa_wref_erase(pa_wref_slot *s)
{
    size_t mask = pa_wref_cap - 1, hole = (size_t)(s - pa_wref_tab);
    for (size_t i = (hole + 1) & mask; pa_wref_tab[i].obj; i = (i + 1) & mask) {
        size_t home = pa_wref_hash(pa_wref_tab[i].obj) & mask;
        /* Entry i may fill the hole only if its home is not cyclically in (hole, i]. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            pa_wref_tab[hole] = pa_wref_tab[i];
            hole = i;
        }
    }
    pa_wref_tab[hole].obj = NULL;
    pa_wref_tab[hole].head = NULL;
    pa_wref_used--;
}

PA_HANDLE_API pa_weakref *pa_weakref_new(void *obj, void (*callback)(pa_weakref *ref, void *arg),
                                         void *arg)
{
    if (obj == NULL || pa_hobj_of(obj)->refcnt == 0) {
        errno = EINVAL;
        return NULL;
    }
    pa_hobj *h = pa_hobj_of(obj);
    pa_weakref *ref = pyarena_malloc(sizeof *ref);
    if (ref == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    pa_wref_slot *s = (h->type & PA_HOBJ_WEAKREFS) ? pa_wref_find(obj) : pa_wref_insert(obj);
    if (s == NULL) {
        pyarena_free(ref);
        errno = ENOMEM;
        return NULL;
    }
    *ref = (pa_weakref){ .obj = obj, .cb = callback, .arg = arg, .next = s->head,
                         .state = PA_WREF_ATTACHED };
    if (s->head)
        s->head->prev = ref;
    s->head = ref;
    h->type |= PA_HOBJ_WEAKREFS;
    return ref;
}

PA_HANDLE_API void *pa_weakref_get(pa_weakref *ref)
{
    /* refcnt 0: the referent is being deallocated (or parked in the trashcan) and its weak
     * references are about to be cleared. */
    if (ref == NULL || ref->obj == NULL || pa_hobj_of(ref->obj)->refcnt == 0)
        return NULL;
    pa_hobj_of(ref->obj)->refcnt++;
    return ref->obj;
}

PA_HANDLE_API void pa_weakref_free(pa_weakref *ref)
{
    if (ref == NULL)
        return;
    if (ref->state == PA_WREF_QUEUED) {
        ref->free_asked = true;
        return;
    }
    if (ref->state == PA_WREF_ATTACHED) {
        if (ref->next)
            ref->next->prev = ref->prev;
        if (ref->prev) {
            ref->prev->next = ref->next;
        } else {
            pa_wref_slot *s = pa_wref_find(ref->obj);
            s->head = ref->next;
            if (s->head == NULL) {
                pa_wref_erase(s);
                pa_hobj_of(ref->obj)->type &= ~PA_HOBJ_WEAKREFS;
            }
        }
    }
    pyarena_free(ref);
}

void pa_wref_detach(void *obj, pa_weakref **queue)
{
    pa_wref_slot *s = pa_wref_find(obj);
    pa_weakref *r = s->head;
    pa_wref_erase(s);
    pa_hobj_of(obj)->type &= ~PA_HOBJ_WEAKREFS;
    /* obj's list runs newest first; keep that order and put the whole run in front of the
     * queue (appending at its end would need a walk). */
    pa_weakref *first = NULL, **tail = &first;
    while (r) {
        pa_weakref *next = r->next;
        r->obj = NULL;
        r->prev = NULL;
        r->next = NULL;
        if (r->cb) {
            r->state = PA_WREF_QUEUED;
            *tail = r;
            tail = &r->next;
        } else {
            r->state = PA_WREF_DEAD;
        }
        r = next;
    }
    *tail = *queue;
    *queue = first;
}

void pa_wref_run(pa_weakref **queue)
{
    while (*queue) {
        pa_weakref *r = *queue;
        *queue = r->next;
        r->next = NULL;
        if (r->free_asked) {
            pyarena_free(r);
            continue;
        }
        r->state = PA_WREF_DEAD;
        pa_hobj_user_runs++;
        r->cb(r, r->arg);   /* may free r */
    }
}

size_t pa_wref_objects(void)
{
    return pa_wref_used;
}
