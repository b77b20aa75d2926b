/* fuzz_handle.c — libFuzzer target for libpyarena_handle: decodes the input into operations on
 * 64 strong references the harness owns (random object graphs, refcounts, weak references,
 * collections and the gc controls), keeps a model of every live object and of who references
 * it, and checks the library against that model after every step; at the end every root is
 * dropped, a full collection may leave only uncollectable cycles, and breaking those by hand
 * must free everything. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"

#include "pyarena/handle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* pyarena_shim.c: called with every block libpyarena_handle frees; empties the quarantine. */
extern void (*pyarena_shim_free_hook)(void *block);
void pyarena_shim_flush(void);

#define FAIL(...) do {                                              \
        fprintf(stderr, "fuzz_handle: " __VA_ARGS__);               \
        fputc('\n', stderr);                                        \
        abort();                                                    \
    } while (0)
#define CHECK(cond, ...) do { if (!(cond)) FAIL(__VA_ARGS__); } while (0)

#define NSLOTS  64     /* the harness's own references */
#define NRES    16     /* references finalizers store to resurrect their object */
#define NADOPT  8      /* references weakref callbacks take to other objects */
#define NWREF   64     /* weak references */
#define NCHILD  4
#define MAXOBJ  4096   /* objects created per input */
#define HCAP    8192   /* body -> id map, at most half full */
#define NONE    UINT32_MAX

/* ---- object types */

enum kind { K_NODE, K_BIG, K_FIN, K_NOCLEAR, K_LEAF, K_LEAFFIN, NKINDS };

/* Finalizer actions (act byte of K_FIN / K_LEAFFIN objects). */
#define A_RESURRECT 0x01   /* store a reference to self in a free resur[] slot */
#define A_SPAWN     0x02   /* create a new object and make it child (act >> 5) & 3 */
#define A_DROP0     0x04   /* drop child 0 */
#define A_COLLECT   0x08   /* pa_gc_collect((act >> 6) % 3) from the finalizer */
#define A_SPAWNLEAF 0x10   /* A_SPAWN creates a leaf instead of a node */

typedef struct ohead {
    uint64_t magic;        /* stamp(id) while alive */
    uint32_t id;
    uint8_t  kind;
    uint8_t  act;
    uint16_t pad;
} ohead;

typedef struct gobj {      /* every kind with traverse */
    ohead h;
    void *child[NCHILD];
} gobj;

static void g_traverse(void *self, pa_visit_fn visit, void *arg);
static void g_clear(void *self);
static void fin_finalize(void *self);
static void noclear_finalize(void *self);

/* K_NOCLEAR's finalizer drops its children: without clear that is the only way an object of the
 * type that dies by refcount lets go of them (the library never clears it). */
static const pa_type types[NKINDS] = {
    [K_NODE]    = { "node", sizeof(gobj), g_traverse, g_clear, NULL },
    [K_BIG]     = { "big", 600, g_traverse, g_clear, NULL },    /* past the pools: large path */
    [K_FIN]     = { "fin", sizeof(gobj), g_traverse, g_clear, fin_finalize },
    [K_NOCLEAR] = { "noclear", sizeof(gobj), g_traverse, NULL, noclear_finalize },
    [K_LEAF]    = { "leaf", sizeof(ohead), NULL, NULL, NULL },
    [K_LEAFFIN] = { "leaffin", 40, NULL, NULL, fin_finalize },
};
static const char *const kind_name[NKINDS] = { "node", "big", "fin", "noclear", "leaf", "leaffin" };

static bool kind_gc(unsigned k) { return k <= K_NOCLEAR; }

static uint64_t stamp(uint32_t id)
{
    return UINT64_C(0x5eed0bad1dea5a11) ^ ((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15));
}
#define DEAD_MAGIC UINT64_C(0xdeaddeaddeaddead)

/* ---- the model: every object created by this input */

typedef struct rec {
    void    *body;
    uint32_t pos;          /* index in live[] while alive */
    uint8_t  kind;
    bool     alive;
    uint8_t  finalized;    /* finalizer calls */
} rec;

static rec      recs[MAXOBJ];
static uint32_t nobj;                  /* ids handed out this input */
static uint32_t live[MAXOBJ], nlive, nlive_gc;

static struct hent { void *key; uint32_t id; } htab[HCAP];

static size_t hslot(const void *p)
{
    return (size_t)(((uint64_t)(uintptr_t)p >> 4) * UINT64_C(0x9E3779B97F4A7C15) >> 51) & (HCAP - 1);
}

static uint32_t hfind(const void *p)
{
    for (size_t i = hslot(p);; i = (i + 1) & (HCAP - 1)) {
        if (htab[i].key == p)
            return htab[i].id;
        if (htab[i].key == NULL)
            return NONE;
    }
}

static void hinsert(void *p, uint32_t id)
{
    size_t i = hslot(p);
    while (htab[i].key) {
        CHECK(htab[i].key != p, "pa_new returned %p, the body of live object #%u", p, htab[i].id);
        i = (i + 1) & (HCAP - 1);
    }
    htab[i].key = p;
    htab[i].id = id;
}

static void herase(const void *p)
{
    size_t hole = hslot(p);
    while (htab[hole].key != p)
        hole = (hole + 1) & (HCAP - 1);
    for (size_t i = (hole + 1) & (HCAP - 1); htab[i].key; i = (i + 1) & (HCAP - 1)) {
        size_t home = hslot(htab[i].key);
        if (((i - home) & (HCAP - 1)) >= ((i - hole) & (HCAP - 1))) {
            htab[hole] = htab[i];
            hole = i;
        }
    }
    htab[hole].key = NULL;
}

/* Roots: references the harness (or code it ran) holds outside any object. */
static void *slots[NSLOTS], *resur[NRES], *adopt[NADOPT];
#define NROOTS (NSLOTS + NRES + NADOPT)
static void **root(unsigned i)
{
    return i < NSLOTS ? &slots[i] : i < NSLOTS + NRES ? &resur[i - NSLOTS] : &adopt[i - NSLOTS - NRES];
}

/* Weak references. */
enum { W_NOCB, W_RECORD, W_FREESELF, W_FREEPARTNER, W_ADOPTPARTNER, W_MODES };
typedef struct wrec {
    pa_weakref *ref;
    uint32_t    target;    /* object id */
    uint32_t    gen;       /* matches the callback's arg while this record is in use */
    uint32_t    epoch;     /* resurrect_epoch at creation */
    uint8_t     mode, partner;
    bool        active, fired;
} wrec;
static wrec     wrecs[NWREF];
static uint32_t wgen;

/* Collector state as the harness sees it. */
static bool     in_collection;
static int      coll_gen;
static uint32_t coll_resurrections;    /* resurrections since the running collection began */
static size_t   last_cb_found;         /* collected + uncollectable of the last phase-1 callback */
static uint32_t resurrect_epoch;       /* resurrections this input */
static bool     model_enabled = true;
static size_t   model_threshold[3] = { 700, 10, 10 };
static bool     teardown;              /* finalizers and callbacks act no more */
/* Finalizers run inside pa_new (an automatic collection) and may spawn one object each, of a
 * kind without a finalizer; so the harness's own creations stop at half the budget (MAXOBJ),
 * and the spawns, never more numerous than the objects they come from, always fit. */
static unsigned fin_depth;
static bool     strict_garbage;        /* FUZZ_HANDLE_STRICT_GARBAGE=1, see final_check */

/* ---- object lookup and checks */

static uint32_t id_of(const void *p, const char *what)
{
    uint32_t id = hfind(p);
    CHECK(id != NONE, "%s: %p is not a live object (freed, or never made by pa_new)", what, p);
    CHECK(recs[id].alive, "%s: object #%u is dead", what, id);
    return id;
}

static uint32_t check_obj(const void *p, const char *what)
{
    uint32_t id = id_of(p, what);
    const ohead *h = p;
    CHECK(h->magic == stamp(id) && h->id == id && h->kind == recs[id].kind,
          "%s: body of object #%u (%s) at %p overwritten", what, id, kind_name[recs[id].kind], p);
    CHECK(pa_type_of(p) == &types[recs[id].kind], "%s: pa_type_of(#%u) is %p, not %p", what, id,
          (const void *)pa_type_of(p), (const void *)&types[recs[id].kind]);
    return id;
}

/* Does any root reach object `target` (walk through children)? Every object on the way must be
 * alive. Used from callbacks and finalizers, where the object in question must be dead. */
static uint32_t mark[MAXOBJ], mark_epoch, stack[MAXOBJ];

static void mark_from(void *p, uint32_t *sp, const char *what)
{
    uint32_t id = id_of(p, what);
    if (mark[id] == mark_epoch)
        return;
    mark[id] = mark_epoch;
    stack[(*sp)++] = id;
}

static void walk_marked(uint32_t sp, const char *what)
{
    while (sp) {
        uint32_t id = stack[--sp];
        if (!kind_gc(recs[id].kind))
            continue;
        gobj *o = recs[id].body;
        for (int k = 0; k < NCHILD; k++)
            if (o->child[k])
                mark_from(o->child[k], &sp, what);
    }
}

static bool reachable(uint32_t target, const char *what)
{
    mark_epoch++;
    uint32_t sp = 0;
    for (unsigned i = 0; i < NROOTS; i++)
        if (*root(i))
            mark_from(*root(i), &sp, what);
    walk_marked(sp, what);
    return mark[target] == mark_epoch;
}

/* ---- type functions */

static gobj *self_gobj(void *self, const char *what)
{
    const ohead *h = self;
    CHECK(h->magic == stamp(h->id) && h->id < nobj && recs[h->id].body == self && kind_gc(h->kind),
          "%s called on %p, not a live object with traverse", what, self);
    return self;
}

static void g_traverse(void *self, pa_visit_fn visit, void *arg)
{
    gobj *o = self_gobj(self, "traverse");
    for (int k = 0; k < NCHILD; k++)
        visit(o->child[k], arg);
}

static void g_clear(void *self)
{
    gobj *o = self_gobj(self, "clear");
    CHECK(o->h.kind != K_NOCLEAR, "clear of a type without clear");
    for (int k = 0; k < NCHILD; k++)
        PA_CLEAR(o->child[k]);
}

static void *new_obj(unsigned kind, uint8_t act);

/* Entered by every finalizer: once per object, and (unless a finalizer of the same collection
 * resurrected something) only for an object no root reaches. */
static uint32_t fin_enter(void *self)
{
    uint32_t id = check_obj(self, "finalize");
    CHECK(recs[id].finalized == 0, "finalizer of object #%u (%s) runs a second time", id,
          kind_name[recs[id].kind]);
    recs[id].finalized++;
    if (!(in_collection && coll_resurrections))
        CHECK(!reachable(id, "finalize: walk from the roots"),
              "finalizer of object #%u (%s) runs while the harness still reaches it", id,
              kind_name[recs[id].kind]);
    return id;
}

static void fin_finalize(void *self)
{
    uint32_t id = fin_enter(self);
    uint8_t act = ((ohead *)self)->act;
    if (teardown)
        return;
    if (kind_gc(recs[id].kind)) {
        gobj *o = self;
        if (act & A_SPAWN) {
            fin_depth++;
            void *c = new_obj((act & A_SPAWNLEAF) ? K_LEAF : K_NODE, 0);
            fin_depth--;
            if (c)
                pa_setref(&o->child[(act >> 5) & 3], c);
        }
        if (act & A_DROP0)
            PA_CLEAR(o->child[0]);
    }
    if (act & A_COLLECT) {
        bool running = in_collection;
        size_t r = pa_gc_collect((act >> 6) % 3);
        CHECK(!running || r == 0, "pa_gc_collect inside a collection returned %zu, not 0", r);
    }
    if (act & A_RESURRECT) {
        for (int i = 0; i < NRES; i++) {
            if (resur[i] == NULL) {
                pa_incref(self);
                resur[i] = self;
                resurrect_epoch++;
                coll_resurrections++;
                break;
            }
        }
    }
}

static void noclear_finalize(void *self)
{
    fin_enter(self);
    gobj *o = self_gobj(self, "finalize");
    for (int k = 0; k < NCHILD; k++)
        PA_CLEAR(o->child[k]);
}

/* ---- the free hook: the model learns of every death here */

static void on_free(void *block)
{
    uint32_t id = hfind((char *)block + PA_HANDLE_GC_HEADER);
    if (id == NONE || !kind_gc(recs[id].kind)) {
        id = hfind((char *)block + PA_HANDLE_HEADER);
        if (id == NONE || kind_gc(recs[id].kind))
            return;   /* a weak reference or the weakref table */
    }
    rec *r = &recs[id];
    void *body = r->body;
    const char *kn = kind_name[r->kind];
    CHECK(r->alive, "object #%u freed twice", id);
    CHECK(((ohead *)body)->magic == stamp(id), "object #%u (%s) freed with its body overwritten", id, kn);
    CHECK(!types[r->kind].finalize || r->finalized == 1,
          "object #%u (%s) freed after %u finalizer calls, not 1", id, kn, r->finalized);
    for (unsigned i = 0; i < NROOTS; i++)
        CHECK(*root(i) != body, "object #%u (%s) freed while root %u holds it", id, kn, i);
    if (kind_gc(r->kind))
        for (int k = 0; k < NCHILD; k++)
            CHECK(((gobj *)body)->child[k] == NULL, "object #%u (%s) freed still holding child %d",
                  id, kn, k);
    for (int i = 0; i < NWREF; i++)
        CHECK(!(wrecs[i].active && wrecs[i].target == id && wrecs[i].mode != W_NOCB &&
                !wrecs[i].fired),
              "object #%u (%s) freed before the callback of weak reference %d ran", id, kn, i);
    ((ohead *)body)->magic = DEAD_MAGIC;
    herase(body);
    r->alive = false;
    uint32_t last = live[--nlive];
    live[r->pos] = last;
    recs[last].pos = r->pos;
    if (kind_gc(r->kind))
        nlive_gc--;
}

static void *new_obj(unsigned kind, uint8_t act)
{
    if (nobj >= (fin_depth ? MAXOBJ : MAXOBJ / 2))
        return NULL;
    void *p = pa_new(&types[kind]);
    CHECK(p != NULL, "pa_new(%s) failed: errno %d", kind_name[kind], errno);
    CHECK(((uintptr_t)p & 15) == 0, "pa_new(%s) = %p: body not 16-byte aligned", kind_name[kind], p);
    CHECK(pa_refcount(p) == 1, "pa_new(%s): refcount %zu", kind_name[kind], pa_refcount(p));
    const unsigned char *b = p;
    for (size_t i = 0; i < types[kind].size; i++)
        CHECK(b[i] == 0, "pa_new(%s): body byte %zu is %#x, not 0", kind_name[kind], i, b[i]);
    CHECK(nobj < MAXOBJ, "finalizers created too many objects");
    uint32_t id = nobj++;
    recs[id] = (rec){ .body = p, .pos = nlive, .kind = (uint8_t)kind, .alive = true };
    live[nlive++] = id;
    if (kind_gc(kind))
        nlive_gc++;
    hinsert(p, id);
    ohead *h = p;
    *h = (ohead){ .magic = stamp(id), .id = id, .kind = (uint8_t)kind, .act = act };
    return p;
}

/* ---- weak reference callbacks */

static void put_root(void **r, void *obj)   /* r takes the reference obj carries */
{
    void *old = *r;
    *r = obj;
    pa_decref(old);
}

static void w_callback(pa_weakref *ref, void *arg)
{
    uintptr_t a = (uintptr_t)arg;
    unsigned i = a & 0xff;
    CHECK(i < NWREF && wrecs[i].active && wrecs[i].gen == (uint32_t)(a >> 8),
          "callback of weak reference %u after it was freed (arg %#lx)", i, (unsigned long)a);
    wrec *w = &wrecs[i];
    CHECK(w->ref == ref, "callback of weak reference %u got %p, not %p", i, (void *)ref, (void *)w->ref);
    CHECK(!w->fired, "callback of weak reference %u runs a second time", i);
    CHECK(w->mode != W_NOCB, "weak reference %u was made without a callback", i);
    w->fired = true;
    CHECK(!recs[w->target].alive || !reachable(w->target, "weakref callback: walk from the roots"),
          "callback of weak reference %u runs while object #%u is still reachable", i, w->target);
    CHECK(pa_weakref_get(ref) == NULL, "pa_weakref_get in the callback of weak reference %u is not NULL", i);
    if (teardown)
        return;
    wrec *p = &wrecs[w->partner];
    switch (w->mode) {
    case W_FREESELF:
        w->active = false;
        pa_weakref_free(ref);
        break;
    case W_FREEPARTNER:
        if (p != w && p->active) {
            p->active = false;
            pa_weakref_free(p->ref);
        }
        break;
    case W_ADOPTPARTNER:
        if (p != w && p->active) {
            void *o = pa_weakref_get(p->ref);
            if (o) {
                uint32_t id = check_obj(o, "pa_weakref_get in a callback");
                CHECK(id == p->target, "weak reference %u returned #%u, not #%u", w->partner, id, p->target);
                put_root(&adopt[i % NADOPT], o);
            }
        }
        break;
    }
}

static void gc_callback(int phase, int generation, size_t collected, size_t uncollectable, void *arg)
{
    CHECK(generation >= 0 && generation <= 2, "gc callback: generation %d", generation);
    if (phase == 0) {
        CHECK(!in_collection, "gc callback: start of a collection inside another");
        CHECK(collected == 0 && uncollectable == 0, "gc callback: start with counts %zu, %zu",
              collected, uncollectable);
        in_collection = true;
        coll_gen = generation;
        coll_resurrections = 0;
    } else {
        CHECK(phase == 1, "gc callback: phase %d", phase);
        CHECK(in_collection && coll_gen == generation, "gc callback: end of a collection never started");
        in_collection = false;
        last_cb_found = collected + uncollectable;
    }
}

/* ---- the full check between operations */

static uint32_t expected[MAXOBJ];
static size_t   foreach_n;
static void    *foreach_seen[MAXOBJ];

static void foreach_record(void *obj, void *arg)
{
    uint32_t id = check_obj(obj, "pa_gc_foreach");
    CHECK(kind_gc(recs[id].kind), "pa_gc_foreach visits #%u of an untracked type", id);
    CHECK(foreach_n < MAXOBJ, "pa_gc_foreach visits more objects than exist");
    foreach_seen[foreach_n++] = obj;
}

static size_t foreach_all(void)
{
    foreach_n = 0;
    pa_gc_foreach(foreach_record, NULL);
    return foreach_n;
}

static void check_weakrefs(void)
{
    for (int i = 0; i < NWREF; i++) {
        wrec *w = &wrecs[i];
        if (!w->active)
            continue;
        rec *t = &recs[w->target];
        void *o = pa_weakref_get(w->ref);
        if (o) {
            CHECK(t->alive && o == t->body,
                  "pa_weakref_get(%d) = %p, but its object #%u is %s", i, o, w->target,
                  t->alive ? "elsewhere" : "dead");
            CHECK(!w->fired, "pa_weakref_get(%d) returns #%u after its callback ran", i, w->target);
            pa_decref(o);
            continue;
        }
        /* NULL: the object died, or a collection found it unreachable before a finalizer
         * brought it back (then the callback, if any, ran). */
        CHECK(!t->alive || w->fired || (w->mode == W_NOCB && w->epoch != resurrect_epoch),
              "pa_weakref_get(%d) = NULL, but object #%u (%s) is alive%s", i, w->target,
              kind_name[t->kind], w->mode == W_NOCB ? " and nothing was resurrected" : " and no callback ran");
    }
}

static void check_all(void)
{
    CHECK(!in_collection, "a collection is still running between operations");
    for (uint32_t i = 0; i < nlive; i++) {
        check_obj(recs[live[i]].body, "live object");
        expected[live[i]] = 0;
    }
    for (unsigned i = 0; i < NROOTS; i++)
        if (*root(i))
            expected[id_of(*root(i), "root")]++;
    for (uint32_t i = 0; i < nlive; i++) {
        uint32_t id = live[i];
        if (!kind_gc(recs[id].kind))
            continue;
        gobj *o = recs[id].body;
        for (int k = 0; k < NCHILD; k++) {
            if (o->child[k] == NULL)
                continue;
            uint32_t c = hfind(o->child[k]);
            CHECK(c != NONE, "object #%u (%s) holds %p as child %d, which is no live object", id,
                  kind_name[recs[id].kind], o->child[k], k);
            expected[c]++;
        }
    }
    for (uint32_t i = 0; i < nlive; i++) {
        uint32_t id = live[i];
        size_t rc = pa_refcount(recs[id].body);
        CHECK(rc == expected[id], "object #%u (%s): refcount %zu, the model counts %u references",
              id, kind_name[recs[id].kind], rc, expected[id]);
    }
    size_t tracked = pa_gc_tracked();
    CHECK(tracked == nlive_gc, "pa_gc_tracked() = %zu, %u objects with traverse are alive", tracked, nlive_gc);
    CHECK(foreach_all() == tracked, "pa_gc_foreach visits %zu objects, pa_gc_tracked() = %zu",
          foreach_n, tracked);
    CHECK(pa_gc_garbage_count() + pa_gc_freeze_count() <= tracked,
          "garbage %zu + frozen %zu exceed the %zu tracked", pa_gc_garbage_count(),
          pa_gc_freeze_count(), tracked);
    CHECK(pa_gc_is_enabled() == model_enabled, "pa_gc_is_enabled() = %d", pa_gc_is_enabled());
    check_weakrefs();
}

/* ---- input */


static gobj *gc_slot(unsigned s)
{
    void *p = slots[s % NSLOTS];
    if (p == NULL || !kind_gc(recs[check_obj(p, "slot")].kind))
        return NULL;
    return p;
}

static void drop_root(void **r)
{
    void *old = *r;
    *r = NULL;
    pa_decref(old);
}

static void wref_free(wrec *w)
{
    if (!w->active)
        return;
    w->active = false;
    pa_weakref_free(w->ref);
}

/* A chain of n objects with traverse, each holding the next as child 0; the last holds the
 * first when ring. Kinds cycle through mix's 2-bit fields. Only head is held here: each new
 * object's reference moves into its predecessor (head keeps the chain alive through any
 * collection that pa_new runs). */
static void op_chain(unsigned s, unsigned n, unsigned mix, bool ring, uint8_t act)
{
    static const uint8_t kinds[4] = { K_NODE, K_FIN, K_NOCLEAR, K_BIG };
    gobj *head = new_obj(kinds[mix & 3], act), *tail = head;
    if (head == NULL)
        return;
    for (unsigned i = 1; i < n; i++) {
        gobj *o = new_obj(kinds[(mix >> (2 * (i % 4))) & 3], act);
        if (o == NULL)
            break;
        tail->child[0] = o;
        tail = o;
    }
    if (ring) {
        pa_incref(head);
        tail->child[0] = head;
    }
    put_root(&slots[s], head);
}

static struct foreach_pick { size_t want, n; void *obj; } pick;
static void foreach_pick_fn(void *obj, void *arg)
{
    check_obj(obj, "pa_gc_foreach");
    if (pick.n++ == pick.want) {
        pa_incref(obj);
        pick.obj = obj;
    }
}

static void op_control(input *in)
{
    unsigned sub = byte(in) % 9;
    switch (sub) {
    case 0:
        pa_gc_enable();
        model_enabled = true;
        break;
    case 1:
        pa_gc_disable();
        model_enabled = false;
        break;
    case 2: {
        size_t t0 = byte(in) % 12, t1 = byte(in) % 5, t2 = byte(in) % 5;
        pa_gc_set_threshold(t0, t1, t2);
        model_threshold[0] = t0, model_threshold[1] = t1, model_threshold[2] = t2;
        break;
    }
    case 3:
        pa_gc_freeze();
        CHECK(pa_gc_freeze_count() + pa_gc_garbage_count() == pa_gc_tracked(),
              "after pa_gc_freeze: frozen %zu + garbage %zu != tracked %zu", pa_gc_freeze_count(),
              pa_gc_garbage_count(), pa_gc_tracked());
        break;
    case 4:
        pa_gc_unfreeze();
        CHECK(pa_gc_freeze_count() == 0, "after pa_gc_unfreeze: %zu frozen", pa_gc_freeze_count());
        break;
    case 5: {   /* gc.get_objects()[i]: any tracked object, garbage included, into a slot */
        unsigned s = byte(in) % NSLOTS;
        size_t n = pa_gc_tracked();
        if (n == 0)
            break;
        pick = (struct foreach_pick){ .want = byte(in) % n };
        pa_gc_foreach(foreach_pick_fn, NULL);
        CHECK(pick.obj != NULL, "pa_gc_foreach visited %zu objects, tracked %zu", pick.n, n);
        put_root(&slots[s], pick.obj);
        break;
    }
    case 6: {
        size_t t[3], c[3];
        pa_gc_get_threshold(t);
        pa_gc_get_count(c);
        for (int i = 0; i < 3; i++)
            CHECK(t[i] == model_threshold[i], "threshold %d is %zu, set %zu", i, t[i], model_threshold[i]);
        CHECK(c[0] <= pa_gc_tracked(), "count 0 is %zu, only %zu tracked", c[0], pa_gc_tracked());
        break;
    }
    case 7:
        pa_gc_set_threshold(700, 10, 10);
        model_threshold[0] = 700, model_threshold[1] = 10, model_threshold[2] = 10;
        break;
    case 8: {
        errno = 0;
        CHECK(pa_gc_collect(3) == 0 && errno == EINVAL, "pa_gc_collect(3): no EINVAL");
        errno = 0;
        CHECK(pa_gc_collect(-1) == 0 && errno == EINVAL, "pa_gc_collect(-1): no EINVAL");
        break;
    }
    }
}

static void op_collect(int gen)
{
    pa_gc_stats before[3], after[3];
    pa_gc_get_stats(before);
    size_t tracked = pa_gc_tracked();
    size_t r = pa_gc_collect(gen);
    pa_gc_get_stats(after);
    CHECK(r == last_cb_found, "pa_gc_collect(%d) = %zu, its callback reported %zu", gen, r, last_cb_found);
    for (int i = 0; i < 3; i++) {
        size_t dc = after[i].collections - before[i].collections;
        size_t df = after[i].collected + after[i].uncollectable - before[i].collected - before[i].uncollectable;
        CHECK(dc == (i == gen), "pa_gc_collect(%d): %zu collections of generation %d", gen, dc, i);
        CHECK(i == gen ? df == r : df == 0, "pa_gc_collect(%d) = %zu, stats of generation %d grew by %zu",
              gen, r, i, df);
    }
    /* objects found = tracked before + tracked created by finalizers - ... : at least bounded */
    CHECK(r <= tracked + MAXOBJ, "pa_gc_collect(%d) = %zu of %zu tracked", gen, r, tracked);
}

static void run_op(input *in)
{
    unsigned op = byte(in) % 21;
    unsigned s = byte(in) % NSLOTS;
    switch (op) {
    case 0: case 1: case 2: {
        unsigned kind = byte(in) % NKINDS;
        uint8_t act = (uint8_t)byte(in);
        void *p = new_obj(kind, act);
        if (p)
            put_root(&slots[s], p);
        break;
    }
    case 3: {
        unsigned n = byte(in), mix = byte(in);
        uint8_t act = (uint8_t)byte(in);
        unsigned len = 2 + n % 15;
        if (n & 0x80)
            len *= 20;   /* past the trashcan depth */
        op_chain(s, len, mix, n & 0x40, act);
        break;
    }
    case 4: case 5: {   /* incref: slot d gets another reference to slot s's object */
        unsigned d = byte(in) % NSLOTS;
        void *p = slots[s];
        if (p)
            check_obj(p, "incref");
        pa_incref(p);
        put_root(&slots[d], p);
        break;
    }
    case 6: case 7:
        drop_root(&slots[s]);
        break;
    case 8: case 9: case 10: {   /* a.child[k] := slot b (or NULL) */
        unsigned k = byte(in) % NCHILD, b = byte(in) % NSLOTS;
        gobj *a = gc_slot(s);
        if (a == NULL)
            break;
        void *v = slots[b];
        pa_incref(v);
        pa_setref(&a->child[k], v);
        break;
    }
    case 11: {
        gobj *a = gc_slot(s);
        unsigned k = byte(in) % NCHILD;
        if (a)
            PA_CLEAR(a->child[k]);
        break;
    }
    case 12: {   /* slot d := a.child[k] */
        unsigned k = byte(in) % NCHILD, d = byte(in) % NSLOTS;
        gobj *a = gc_slot(s);
        if (a == NULL || a->child[k] == NULL)
            break;
        void *c = a->child[k];
        pa_incref(c);
        put_root(&slots[d], c);
        break;
    }
    case 13: {
        unsigned r = byte(in) % NWREF, mode = byte(in) % W_MODES, partner = byte(in) % NWREF;
        wrec *w = &wrecs[r];
        wref_free(w);
        if (slots[s] == NULL)
            break;
        uint32_t id = check_obj(slots[s], "weakref target");
        ++wgen;
        pa_weakref *ref = pa_weakref_new(slots[s], mode == W_NOCB ? NULL : w_callback,
                                         (void *)(((uintptr_t)wgen << 8) | r));
        CHECK(ref != NULL, "pa_weakref_new failed: errno %d", errno);
        *w = (wrec){ .ref = ref, .target = id, .gen = wgen, .epoch = resurrect_epoch,
                     .mode = (uint8_t)mode, .partner = (uint8_t)partner, .active = true };
        void *o = pa_weakref_get(ref);
        CHECK(o == slots[s], "pa_weakref_get of a new reference = %p, not %p", o, slots[s]);
        pa_decref(o);
        break;
    }
    case 14: {
        wrec *w = &wrecs[byte(in) % NWREF];
        if (!w->active)
            break;
        void *o = pa_weakref_get(w->ref);
        if (o) {
            CHECK(check_obj(o, "pa_weakref_get") == w->target, "pa_weakref_get: wrong object");
            put_root(&slots[s], o);
        }
        break;
    }
    case 15:
        wref_free(&wrecs[byte(in) % NWREF]);
        break;
    case 16:
        op_collect((int)(byte(in) % 3));
        break;
    case 17:
        op_control(in);
        break;
    case 18: {   /* a resurrected or adopted reference: drop it, or give it to slot s */
        unsigned r = NSLOTS + byte(in) % (NRES + NADOPT), how = byte(in);
        void *p = *root(r);
        *root(r) = NULL;
        if (how & 1)
            put_root(&slots[s], p);
        else
            pa_decref(p);
        break;
    }
    case 20: {   /* slot d := the object n steps down slot s's child-0 chain (deep nodes) */
        unsigned n = byte(in), d = byte(in) % NSLOTS;
        gobj *o = gc_slot(s);
        for (unsigned i = 0; o && i < n && o->child[0]; i++) {
            void *c = o->child[0];
            o = kind_gc(recs[check_obj(c, "walk")].kind) ? c : NULL;
        }
        if (o == NULL)
            break;
        pa_incref(o);
        put_root(&slots[d], o);
        break;
    }
    case 19: {   /* drop a run of slots */
        unsigned len = byte(in) % 16;
        for (unsigned i = 0; i < len; i++)
            drop_root(&slots[(s + i) % NSLOTS]);
        break;
    }
    }
}

/* ---- start and end of an input */

static void drop_all_roots(void)
{
    for (unsigned i = 0; i < NROOTS; i++)
        drop_root(root(i));
}

static bool any_root(void)
{
    for (unsigned i = 0; i < NROOTS; i++)
        if (*root(i))
            return true;
    return false;
}

/* With no roots left and after a full collection, what lives must be uncollectable: the
 * garbage list (the last pa_gc_garbage_count() objects pa_gc_foreach visits) and what it
 * reaches. Optionally (strict) every garbage member must itself still hang off an object without
 * clear: a garbage cycle that user code broke is otherwise never examined again. */
static void final_check(void)
{
    check_all();
    CHECK(pa_gc_freeze_count() == 0, "%zu objects frozen after pa_gc_unfreeze", pa_gc_freeze_count());
    size_t n = foreach_all(), ng = pa_gc_garbage_count();
    CHECK(ng <= n, "garbage %zu > tracked %zu", ng, n);
    mark_epoch++;
    uint32_t sp = 0;
    for (size_t i = n - ng; i < n; i++)
        mark_from(foreach_seen[i], &sp, "garbage");
    walk_marked(sp, "walk from the garbage");
    for (uint32_t i = 0; i < nlive; i++) {
        uint32_t id = live[i];
        CHECK(mark[id] == mark_epoch,
              "object #%u (%s, refcount %zu, finalized %u) survived a full collection with no root "
              "and no uncollectable object reaching it", id, kind_name[recs[id].kind],
              pa_refcount(recs[id].body), recs[id].finalized);
    }
    if (strict_garbage) {
        mark_epoch++;
        sp = 0;
        for (uint32_t i = 0; i < nlive; i++)
            if (recs[live[i]].kind == K_NOCLEAR)
                mark_from(recs[live[i]].body, &sp, "noclear");
        walk_marked(sp, "walk from the objects without clear");
        for (size_t i = n - ng; i < n; i++) {
            uint32_t id = hfind(foreach_seen[i]);
            CHECK(mark[id] == mark_epoch, "garbage object #%u (%s) no longer hangs off an object "
                  "without clear, yet stays uncollected", id, kind_name[recs[id].kind]);
        }
    }
}

static void end_input(void)
{
    /* Drop every root; what finalizers resurrect or callbacks adopt is dropped in turn. */
    for (unsigned iter = 0;; iter++) {
        CHECK(iter <= MAXOBJ, "roots keep coming back after %u full collections", iter);
        drop_all_roots();
        pa_gc_unfreeze();
        pa_gc_collect(2);
        if (!any_root())
            break;
    }
    final_check();

    /* Break the uncollectable cycles by hand (user code emptying gc.garbage). */
    teardown = true;
    static void *held[MAXOBJ];
    for (unsigned iter = 0; nlive; iter++) {
        CHECK(iter <= MAXOBJ, "%u objects survive the teardown", nlive);
        size_t n = foreach_all();
        for (size_t i = 0; i < n; i++) {
            held[i] = foreach_seen[i];
            pa_incref(held[i]);
        }
        for (size_t i = 0; i < n; i++) {
            gobj *o = held[i];
            for (int k = 0; k < NCHILD; k++)
                PA_CLEAR(o->child[k]);
        }
        for (size_t i = 0; i < n; i++)
            pa_decref(held[i]);
        drop_all_roots();
        if (nlive && pa_gc_tracked() == 0)
            FAIL("%u untracked objects alive with no reference from the harness or a tracked object", nlive);
    }
    CHECK(pa_gc_tracked() == 0 && pa_gc_garbage_count() == 0,
          "after the teardown: %zu tracked, %zu garbage", pa_gc_tracked(), pa_gc_garbage_count());
    for (int i = 0; i < NWREF; i++)
        wref_free(&wrecs[i]);
    teardown = false;
    pa_gc_enable();
    model_enabled = true;
    pa_gc_set_threshold(700, 10, 10);
    pyarena_shim_flush();
}

static void begin_input(unsigned b)
{
    static bool once;
    if (!once) {
        once = true;
        pyarena_shim_free_hook = on_free;
        pa_gc_set_callback(gc_callback, NULL);
        const char *e = getenv("FUZZ_HANDLE_STRICT_GARBAGE");
        strict_garbage = e && *e == '1';
        errno = 0;
        CHECK(pa_new(NULL) == NULL && errno == EINVAL, "pa_new(NULL): no EINVAL");
        CHECK(pa_refcount(NULL) == 0 && pa_type_of(NULL) == NULL, "NULL handle: refcount or type");
        CHECK(pa_weakref_get(NULL) == NULL, "pa_weakref_get(NULL) is not NULL");
        pa_weakref_free(NULL);
    }
    CHECK(nlive == 0 && pa_gc_tracked() == 0, "a previous input left %u objects", nlive);
    nobj = 0;
    resurrect_epoch = 0;
    memset(wrecs, 0, sizeof wrecs);
    /* Same collector state for every input: empty generations, counts 0. */
    pa_gc_collect(2);
    if (b % 4 == 0) {
        model_threshold[0] = 700, model_threshold[1] = 10, model_threshold[2] = 10;
    } else {
        model_threshold[0] = 1 + (b >> 2) % 16;
        model_threshold[1] = 1 + b % 3;
        model_threshold[2] = 1 + (b >> 6);
    }
    pa_gc_set_threshold(model_threshold[0], model_threshold[1], model_threshold[2]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = { data, size };
    begin_input(byte(&in));
    while (in.n > 0) {
        run_op(&in);
        check_all();
    }
    end_input();
    return 0;
}
