/* test_wholemark.c — full collections that keep the links and put gc_refs beside them ("whole
 * marks", see handle/hobj.h): marks left behind never confuse list operations or the next
 * collection, objects pulled back to young are relinked, counts that do not fit fall back to
 * the plain method, and members of the garbage that a clear drops to 0 before the collector
 * holds them are freed once, by the collector. */
#include "handle_test.h"

static size_t counted;
static void count_one(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    counted++;
}

static size_t foreach_count(void)
{
    counted = 0;
    pa_gc_foreach(count_one, NULL);
    return counted;
}

/* Marks stay on every object after a full collection that finds everything alive: deaths by
 * refcount (which unlink through the marked prev words), young collections, new objects and
 * full collections of both parities in turn must all see plain links. */
Test(wholemark, marks_left_behind_are_harmless)
{
    enum { NRING = 100, NLOOSE = 100 };
    node *ring = t_ring(&node_type, NRING);
    node *loose[NLOOSE];
    for (int i = 0; i < NLOOSE; i++)
        loose[i] = t_node(&node_type, 1000 + i);
    for (int round = 0; round < 5; round++) {
        cr_assert_eq(pa_gc_collect(2), 0);
        /* one death per round, unlinked through a marked prev word */
        pa_decref(loose[2 * round]);
        loose[2 * round] = NULL;
        node *fresh = t_node(&node_type, 2000 + round);
        cr_assert_eq(pa_gc_collect(0), 0);
        pa_decref(fresh);
    }
    size_t live = NRING + NLOOSE - 5;
    cr_assert_eq(pa_gc_tracked(), live);
    cr_assert_eq(foreach_count(), live, "every list still links every object once");
    for (int i = 0; i < NLOOSE; i++)
        pa_decref(loose[i]);
    cr_assert_eq(pa_gc_tracked(), NRING);
    pa_decref(ring);
    cr_assert_eq(pa_gc_collect(2), NRING);
    cr_assert_eq(pa_gc_tracked(), 0);
}

/* A full collection finds A (only B refers to it) and B (only X) at gc_refs 0; A is set aside,
 * then pulled back to the end of young by B's scan, after the 100 objects that follow. The
 * scan stops finding work at C1, so A's link and its hold are fixed without a scan of its
 * own: afterwards every object dies by refcount alone, through its prev word. */
Test(wholemark, object_pulled_back_behind_the_scan_is_relinked)
{
    enum { NC = 100 };
    node *a = t_node(&node_type, 1);
    node *x = t_node(&node_type, 2);
    node *b = t_node(&node_type, 3);
    b->a = a;   /* the references move into the slots */
    x->a = b;
    node *c[NC];
    for (int i = 0; i < NC; i++)
        c[i] = t_node(&node_type, 10 + i);
    cr_assert_eq(pa_gc_collect(2), 0);
    cr_assert_eq(pa_refcount(a), 1, "the collector's hold on A is gone");
    cr_assert_eq(pa_refcount(b), 1);
    cr_assert_eq(pa_gc_tracked(), NC + 3);
    cr_assert_eq(foreach_count(), NC + 3);
    for (int i = NC - 1; i >= 0; i--)
        pa_decref(c[i]);
    cr_assert_eq(foreach_count(), 3);
    pa_decref(x);   /* X, then B, then A, by refcount */
    cr_assert_eq(pa_gc_tracked(), 0);
    cr_assert_eq(foreach_count(), 0);
}

/* 70000 members refer to one hub: its gc_refs does not fit beside the link. The collection
 * falls back to the plain method and still finds everything; so do the full collections
 * after it, with and without marks. */
Test(wholemark, hub_with_more_references_than_a_mark_holds)
{
    enum { N = 70000 };
    for (int round = 0; round < 3; round++) {
        node *hub = t_node(&node_type, -1);
        node *first = NULL, *prev = NULL;
        for (int i = 0; i < N; i++) {
            node *m = t_node(&node_type, i);
            t_link(m, &m->a, hub);
            if (prev)
                prev->b = m;   /* the reference moves: members form a chain through b */
            else
                first = m;
            prev = m;
        }
        hub->b = first;
        cr_assert_eq(pa_refcount(hub), N + 1);
        cr_assert_eq(pa_gc_collect(2), 0, "the hub is held from outside");
        cr_assert_eq(pa_refcount(hub), N + 1);
        pa_decref(hub);
        cr_assert_eq(pa_gc_collect(2), N + 1);
        cr_assert_eq(pa_gc_tracked(), 0);
    }
    for (int i = 0; i < 20; i++)   /* past the collections that go without marks */
        cr_assert_eq(pa_gc_collect(2), 0);
    node *r = t_ring(&node_type, 1000);
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 1000);
    cr_assert_eq(pa_gc_tracked(), 0);
}

/* A traverse that visits one handle twice: gc_refs would go below 0. Nothing reachable is
 * freed (the collector counts the doubly visited object as referenced from outside), and
 * the collections after it work. */
static void twice_traverse(void *self, pa_visit_fn visit, void *arg)
{
    node *n = self;
    visit(n->a, arg);
    visit(n->a, arg);
}

Test(wholemark, traverse_that_visits_too_much)
{
    static const pa_type twice = { "twice", sizeof(node), twice_traverse, NULL, NULL };
    node *x = t_node(&node_type, 1), *y = t_node(&twice, 2);
    x->a = y;
    t_link(y, &y->a, x);
    pa_decref(x);
    cr_assert_eq(pa_gc_collect(2), 0);
    cr_assert_eq(x->magic, NODE_MAGIC);
    cr_assert_eq(pa_refcount(x), 1);
    cr_assert_eq(pa_refcount(y), 1);
    node *r = t_ring(&node_type, 100);
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 100);
    cr_assert_eq(pa_gc_tracked(), 2);
}

/* The first member of the garbage holds the only reference to the last, a thousand members
 * further on: clearing the first drops the last to 0 before the collector holds it (the holds
 * of a garbage-only full collection are taken as the clear pass goes). The collector frees it
 * after clearing it, once, like every other member. */
Test(wholemark, member_dropped_to_zero_before_its_hold)
{
    enum { NMID = 1000 };
    node *first = t_node(&node_type, 0);
    node *mid = t_ring(&node_type, NMID);
    node *last = t_node(&node_type, 1);
    first->a = last;   /* the only reference to last */
    t_link(last, &last->a, first);
    pa_decref(first);
    pa_decref(mid);
    cr_assert_eq(pa_refcount(last), 1);
    cr_assert_eq(pa_gc_collect(2), NMID + 2);
    cr_assert_eq(pa_gc_tracked(), 0);
    cr_assert_eq(t_cleared, NMID + 2, "each member cleared once");
    cr_assert_eq(foreach_count(), 0);
}

/* The same where edges are long (random chords), so that the clear pass holds 32 members
 * ahead and keeps a pointer to the next one to hold: member 0 holds the only reference to
 * member 33, which is that one while member 0 is cleared. */
Test(wholemark, member_dropped_to_zero_ahead_of_the_holds_on_a_far_graph)
{
    enum { N = 20000, VICTIM = 33 };
    static node *v[N];
    for (int i = 0; i < N; i++)
        v[i] = t_node(&node_type, i);
    for (int i = 0; i < N; i++) {
        if (i + 1 < N && i + 1 != VICTIM)
            t_link(v[i], &v[i]->a, v[i + 1]);
        int j = (int)(((long)i * 7919 + 13) % N);
        if (j != VICTIM)
            t_link(v[i], &v[i]->b, v[j]);
    }
    pa_setref(&v[0]->b, NULL);
    t_link(v[0], &v[0]->b, v[VICTIM]);
    t_link(v[N - 1], &v[N - 1]->a, v[0]);
    for (int i = 0; i < N; i++)
        pa_decref(v[i]);
    cr_assert_eq(pa_refcount(v[VICTIM]), 1);
    cr_assert_eq(pa_gc_collect(2), N);
    cr_assert_eq(pa_gc_tracked(), 0);
    cr_assert_eq(t_cleared, N, "each member cleared once");
}

/* 65536 references from outside and none from the graph: gc_refs is a multiple of 2^16, which
 * the mark cannot hold; cut to 16 bits it would read 0 and free a live object. */
Test(wholemark, object_with_65536_references_from_outside)
{
    node *x = t_node(&node_type, 1);
    for (int i = 1; i < 65536; i++)
        pa_incref(x);
    cr_assert_eq(pa_gc_collect(2), 0);
    cr_assert_eq(x->magic, NODE_MAGIC);
    cr_assert_eq(pa_refcount(x), 65536);
    cr_assert_eq(pa_gc_tracked(), 1);
}
