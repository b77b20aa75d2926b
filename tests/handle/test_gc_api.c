/* test_gc_api.c — the gc-module controls: thresholds and counts, automatic collection and how
 * it bounds garbage, enable/disable, the generation-2 quarter rule, freeze/unfreeze, foreach,
 * statistics and callbacks. */
#include "handle_test.h"

static void make_garbage_cycles(size_t ncycles)
{
    for (size_t i = 0; i < ncycles; i++) {
        node *x = t_node(&node_type, 1), *y = t_node(&node_type, 2);
        x->a = y;
        t_link(y, &y->a, x);
        pa_decref(x);
    }
}

Test(gc_api, threshold_defaults_and_set)
{
    size_t t[3];
    pa_gc_get_threshold(t);
    cr_assert(t[0] == 700 && t[1] == 10 && t[2] == 10);
    pa_gc_set_threshold(5, 6, 7);
    pa_gc_get_threshold(t);
    cr_assert(t[0] == 5 && t[1] == 6 && t[2] == 7);
}

Test(gc_api, counts_follow_allocations_and_collections)
{
    size_t c[3];
    node *keep[10];
    for (int i = 0; i < 10; i++)
        keep[i] = t_node(&node_type, i);
    pa_gc_get_count(c);
    cr_assert_eq(c[0], 10);
    pa_decref(keep[9]);
    pa_decref(keep[8]);
    pa_gc_get_count(c);
    cr_assert_eq(c[0], 8, "deallocations count down");
    pa_gc_collect(0);
    pa_gc_get_count(c);
    cr_assert(c[0] == 0 && c[1] == 1 && c[2] == 0, "%zu %zu %zu", c[0], c[1], c[2]);
    pa_gc_collect(0);
    pa_gc_collect(1);
    pa_gc_get_count(c);
    cr_assert(c[0] == 0 && c[1] == 0 && c[2] == 1, "%zu %zu %zu", c[0], c[1], c[2]);
    pa_gc_collect(2);
    pa_gc_get_count(c);
    cr_assert(c[0] == 0 && c[1] == 0 && c[2] == 0);
    for (int i = 0; i < 8; i++)
        pa_decref(keep[i]);
}

Test(gc_api, automatic_collection_bounds_garbage)
{
    pa_gc_set_threshold(100, 10, 10);
    size_t peak = 0;
    for (int i = 0; i < 5000; i++) {
        make_garbage_cycles(1);
        if (pa_gc_tracked() > peak)
            peak = pa_gc_tracked();
    }
    /* threshold 0, plus pairs split across a collection that wait in generation 1 */
    cr_assert_leq(peak, 100 + 2 + 2 * 11, "garbage stays bounded (peak %zu)", peak);
    pa_gc_stats st[3];
    pa_gc_get_stats(st);
    cr_assert_geq(st[0].collections + st[1].collections, 95);
    cr_assert_geq(st[1].collections, 5, "every 11th collection is of generation 1");
    cr_assert_gt(st[0].collected + st[1].collected + st[2].collected, 9000);
}

Test(gc_api, disable_stops_only_automatic_collection)
{
    cr_assert(pa_gc_is_enabled());
    pa_gc_set_threshold(10, 10, 10);
    pa_gc_disable();
    cr_assert(!pa_gc_is_enabled());
    make_garbage_cycles(500);
    cr_assert_eq(pa_gc_tracked(), 1000, "nothing collected while disabled");
    pa_gc_stats st[3];
    pa_gc_get_stats(st);
    cr_assert_eq(st[0].collections + st[1].collections + st[2].collections, 0);
    cr_assert_eq(pa_gc_collect(2), 1000, "explicit collection still works");
    pa_gc_enable();
    cr_assert(pa_gc_is_enabled());
    make_garbage_cycles(500);
    cr_assert_leq(pa_gc_tracked(), 10 + 2 + 2 * 11);
}

Test(gc_api, threshold_zero_disables_automatic_collection)
{
    pa_gc_set_threshold(0, 10, 10);
    make_garbage_cycles(2000);
    cr_assert_eq(pa_gc_tracked(), 4000);
}

/* Full collections wait until the objects that entered generation 2 since the last one exceed
 * a quarter of those it kept. */
Test(gc_api, full_collection_waits_for_a_quarter_of_long_lived)
{
    enum { LONG = 2000 };
    pa_gc_disable();
    static node *keep[LONG];
    for (int i = 0; i < LONG; i++)
        keep[i] = t_node(&node_type, i);
    pa_gc_collect(2);   /* long-lived total: 2000 */
    pa_gc_set_threshold(10, 1, 1);
    pa_gc_enable();
    make_garbage_cycles(2000);   /* no survivors: nothing pending */
    pa_gc_stats st[3];
    pa_gc_get_stats(st);
    cr_assert_eq(st[2].collections, 1, "only the explicit one");
    cr_assert_gt(st[1].collections, 50);
    size_t c[3];
    pa_gc_get_count(c);
    cr_assert_gt(c[2], 1, "generation 2 is over its threshold, yet not collected");

    /* survivors pile up in generation 2 until more than 500 are pending */
    static node *more[700];
    for (int i = 0; i < 700; i++) {
        more[i] = t_node(&node_type, i);
        make_garbage_cycles(1);
    }
    pa_gc_get_stats(st);
    cr_assert_eq(st[2].collections, 2, "one full collection once a quarter was pending");
    for (int i = 0; i < 700; i++)
        pa_decref(more[i]);
    for (int i = 0; i < LONG; i++)
        pa_decref(keep[i]);
}

Test(gc_api, freeze_and_unfreeze)
{
    pa_gc_disable();
    node *r = t_ring(&node_type, 3);
    pa_decref(r);
    pa_gc_freeze();
    cr_assert_eq(pa_gc_freeze_count(), 3);
    cr_assert_eq(pa_gc_tracked(), 3, "frozen objects are still tracked");
    size_t c[3];
    pa_gc_get_count(c);
    cr_assert_eq(c[0], 0);
    cr_assert_eq(pa_gc_collect(2), 0, "collections ignore the permanent generation");
    node *fresh = t_ring(&node_type, 2);   /* after the freeze: collectable as usual */
    pa_decref(fresh);
    cr_assert_eq(pa_gc_collect(2), 2);
    pa_gc_unfreeze();
    cr_assert_eq(pa_gc_freeze_count(), 0);
    cr_assert_eq(pa_gc_collect(1), 0, "unfrozen objects go to the oldest generation");
    cr_assert_eq(pa_gc_collect(2), 3);
    cr_assert_eq(pa_gc_tracked(), 0);
}

struct census { size_t node, fnode, other, total_refs; };
static void count_by_type(void *obj, void *arg)
{
    struct census *c = arg;
    const char *name = pa_type_of(obj)->name;
    if (strcmp(name, "node") == 0)
        c->node++;
    else if (strcmp(name, "fnode") == 0)
        c->fnode++;
    else
        c->other++;
    c->total_refs += pa_refcount(obj);
}

Test(gc_api, foreach_sees_every_tracked_object_once)
{
    pa_gc_disable();
    node *a = t_ring(&node_type, 5);
    pa_gc_collect(0);                         /* generation 1 */
    node *b = t_ring(&fnode_type, 3);
    pa_gc_freeze();                           /* permanent */
    node *c = t_node(&node_type, 1);          /* generation 0 */
    void *leaf = pa_new(&leaf_type);          /* untracked: not listed */
    node *u = t_node(&noclear_type, 1);       /* uncollectable garbage */
    t_link(u, &u->a, u);
    pa_decref(u);
    pa_gc_collect(2);
    struct census cen = { 0 };
    pa_gc_foreach(count_by_type, &cen);
    cr_assert_eq(cen.node, 6);
    cr_assert_eq(cen.fnode, 3);
    cr_assert_eq(cen.other, 1);
    cr_assert_eq(cen.node + cen.fnode + cen.other, pa_gc_tracked());
    cr_assert_eq(cen.total_refs, 5 + 1 + 3 + 1 + 1 + 1);
    pa_decref(a);
    pa_decref(b);
    pa_decref(c);
    pa_decref(leaf);
}

struct cb_log { int calls; int phase[8], gen[8]; size_t col[8], unc[8]; };
static void record(int phase, int generation, size_t collected, size_t uncollectable, void *arg)
{
    struct cb_log *l = arg;
    if (l->calls < 8) {
        l->phase[l->calls] = phase;
        l->gen[l->calls] = generation;
        l->col[l->calls] = collected;
        l->unc[l->calls] = uncollectable;
    }
    l->calls++;
    cr_assert_eq(pa_gc_collect(0), 0, "no collection inside a collection");
}

Test(gc_api, callbacks_and_stats)
{
    struct cb_log log = { 0 };
    pa_gc_set_callback(record, &log);
    node *r = t_ring(&node_type, 4);
    pa_decref(r);
    node *u = t_node(&noclear_type, 1);
    t_link(u, &u->a, u);
    pa_decref(u);
    cr_assert_eq(pa_gc_collect(1), 5);
    cr_assert_eq(log.calls, 2);
    cr_assert(log.phase[0] == 0 && log.gen[0] == 1 && log.col[0] == 0 && log.unc[0] == 0);
    cr_assert(log.phase[1] == 1 && log.gen[1] == 1 && log.col[1] == 4 && log.unc[1] == 1);
    pa_gc_stats st[3];
    pa_gc_get_stats(st);
    cr_assert(st[1].collections == 1 && st[1].collected == 4 && st[1].uncollectable == 1);
    cr_assert(st[0].collections == 0 && st[2].collections == 0);
    pa_gc_set_callback(NULL, NULL);
    pa_gc_collect(0);
    cr_assert_eq(log.calls, 2, "callback removed");
    pa_gc_get_stats(st);
    cr_assert_eq(st[0].collections, 1);
}
