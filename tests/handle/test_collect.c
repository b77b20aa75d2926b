/* test_collect.c — cycle detection: garbage cycles of every size are found and freed, anything
 * reachable from outside survives, deep graphs, finalizers (once, before any clear, peers
 * alive), resurrection, uncollectable cycles, re-entrancy from finalizers, and a clear that
 * keeps a member alive. */
#include "handle_test.h"

#include <errno.h>

Test(collect, cycle_of_two)
{
    node *x = t_node(&fnode_type, 1), *y = t_node(&fnode_type, 2);
    x->a = y;
    t_link(y, &y->a, x);
    pa_decref(x);
    cr_assert_eq(pa_gc_tracked(), 2, "a cycle is not freed by refcount");
    cr_assert_eq(t_finalized, 0);
    cr_assert_eq(pa_gc_collect(0), 2);
    cr_assert_eq(pa_gc_tracked(), 0);
    cr_assert_eq(t_finalized, 2);
    cr_assert_eq(t_peer_checks_failed, 0);
    cr_assert_eq(pa_gc_collect(2), 0, "nothing left");
}

Test(collect, self_cycle)
{
    node *x = t_node(&node_type, 1);
    t_link(x, &x->b, x);
    pa_decref(x);
    cr_assert_eq(pa_gc_collect(2), 1);
    cr_assert_eq(pa_gc_tracked(), 0);
}

Test(collect, cycle_of_three_with_leaves)
{
    node *r = t_ring(&fnode_type, 3);
    r->b = pa_new(&leaf_type);
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 3);
    cr_assert_eq(pa_gc_tracked(), 0);
    cr_assert_eq(t_leaf_finalized, 1, "untracked children die with the cycle");
}

Test(collect, cycle_of_many_with_chords)
{
    enum { N = 20000 };
    node *r = t_ring(&node_type, N);
    /* chords: b of every member points 7 further along the ring */
    node *cur = r;
    for (int i = 0; i < N; i++) {
        node *t = cur;
        for (int k = 0; k < 7; k++)
            t = t->a;
        t_link(cur, &cur->b, t);
        cur = cur->a;
    }
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), N);
    cr_assert_eq(pa_gc_tracked(), 0);
}

Test(collect, reachable_cycle_survives)
{
    node *r = t_ring(&fnode_type, 50);
    node *member = ((node *)r->a)->a;
    pa_incref(member);   /* external reference to one member keeps the whole ring */
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 0);
    cr_assert_eq(pa_gc_tracked(), 50);
    cr_assert_eq(t_finalized, 0);
    cr_assert_eq(pa_refcount(member), 2);
    pa_decref(member);
    cr_assert_eq(pa_gc_collect(2), 50);
    cr_assert_eq(pa_gc_tracked(), 0);
}

/* The order of objects in the lists must not matter: an external object that is examined
 * after the cycle members it reaches (reached late, after being put aside as unreachable). */
Test(collect, reachability_found_late_in_the_scan)
{
    node *x = t_node(&node_type, 1), *y = t_node(&node_type, 2);
    x->a = y;
    t_link(y, &y->a, x);
    node *holder = t_node(&node_type, 3);   /* allocated last: scanned after x and y */
    t_link(holder, &holder->a, x);
    pa_decref(x);
    cr_assert_eq(pa_gc_collect(0), 0);
    cr_assert_eq(pa_gc_tracked(), 3);
    cr_assert_eq(x->magic, NODE_MAGIC);
    cr_assert_eq(y->magic, NODE_MAGIC);
    pa_decref(holder);   /* by refcount: holder; x and y remain a cycle */
    cr_assert_eq(pa_gc_tracked(), 2);
    cr_assert_eq(pa_gc_collect(2), 2);
}

Test(collect, garbage_cycle_drops_references_to_live_objects)
{
    node *live = t_node(&node_type, 9);
    node *r = t_ring(&node_type, 4);
    t_link(r, &r->b, live);
    t_link(r->a, &((node *)r->a)->b, live);
    cr_assert_eq(pa_refcount(live), 3);
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 4);
    cr_assert_eq(pa_refcount(live), 1);
    cr_assert_eq(live->magic, NODE_MAGIC);
    pa_decref(live);
    cr_assert_eq(pa_gc_tracked(), 0);
}

Test(collect, million_ring_collected_iteratively)
{
    node *r = t_ring(&node_type, 1000000);
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 1000000);
    cr_assert_eq(pa_gc_tracked(), 0);
}

/* A million-long list reachable from outside, scanned from its tail end: the reachability
 * propagation walks the whole list without recursion. */
Test(collect, million_long_list_reachable_survives)
{
    enum { N = 1000000 };
    node *head = t_node(&node_type, 0), *cur = head;
    for (int i = 1; i < N; i++) {
        cur->a = t_node(&node_type, i);
        cur = cur->a;
    }
    t_link(cur, &cur->b, head);   /* closes a cycle too */
    cr_assert_eq(pa_gc_collect(2), 0);
    cr_assert_eq(pa_gc_tracked(), N);
    pa_decref(head);
    cr_assert_eq(pa_gc_collect(2), N);
    cr_assert_eq(pa_gc_tracked(), 0);
}

Test(collect, survivors_move_up_one_generation)
{
    pa_gc_disable();
    node *r = t_ring(&node_type, 2);
    cr_assert_eq(pa_gc_collect(0), 0);   /* held by r: survives into generation 1 */
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(0), 0, "generation 0 no longer holds it");
    cr_assert_eq(pa_gc_collect(1), 2);

    r = t_ring(&node_type, 3);
    pa_gc_collect(0);
    pa_gc_collect(1);   /* now in generation 2 */
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(0), 0);
    cr_assert_eq(pa_gc_collect(1), 0);
    cr_assert_eq(pa_gc_collect(2), 3);
    cr_assert_eq(pa_gc_tracked(), 0);
}

Test(collect, invalid_generation)
{
    errno = 0;
    cr_assert_eq(pa_gc_collect(3), 0);
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_eq(pa_gc_collect(-1), 0);
    cr_assert_eq(errno, EINVAL);
}

Test(collect, finalizers_run_once_before_any_clear)
{
    node *r = t_ring(&fnode_type, 5);
    for (node *m = r->a; m != r; m = m->a)
        t_link(m, &m->b, r);   /* every member also points at the first */
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 5);
    cr_assert_eq(t_finalized, 5);
    cr_assert_eq(t_peer_checks_failed, 0, "a finalizer saw a cleared or freed peer");
    cr_assert_str_eq(t_events, "F0 F1 F2 F3 F4 ");
}

Test(collect, resurrection_keeps_what_the_resurrected_reaches)
{
    static void *saved;
    node *r = t_ring(&fnode_type, 4);
    node *extra = t_node(&fnode_type, 10);   /* reachable only from r->b, not part of the ring */
    r->b = extra;
    node *victim = r->a;
    victim->resurrect = &saved;
    pa_decref(r);
    size_t found = pa_gc_collect(2);
    cr_assert_eq(found, 0, "everything is reachable again from the resurrected member");
    cr_assert_eq(saved, victim);
    cr_assert_eq(t_finalized, 5);
    cr_assert_eq(pa_gc_tracked(), 5);
    for (node *m = victim->a; m != victim; m = m->a)
        cr_assert_eq(m->magic, NODE_MAGIC);
    cr_assert_eq(extra->magic, NODE_MAGIC);

    saved = NULL;
    pa_decref(victim);
    cr_assert_eq(pa_gc_collect(2), 5);
    cr_assert_eq(t_finalized, 5, "no second finalization");
    cr_assert_null(saved);
    cr_assert_eq(pa_gc_tracked(), 0);
}

Test(collect, resurrection_of_part_of_the_garbage)
{
    static void *saved;
    /* two separate garbage cycles; one member of the first resurrects itself */
    node *c1 = t_ring(&fnode_type, 3), *c2 = t_ring(&fnode_type, 3);
    ((node *)c1->a)->resurrect = &saved;
    pa_decref(c1);
    pa_decref(c2);
    cr_assert_eq(pa_gc_collect(2), 3, "the other cycle is collected");
    cr_assert_eq(pa_gc_tracked(), 3);
    pa_decref(saved);
    cr_assert_eq(pa_gc_collect(2), 3);
    cr_assert_eq(pa_gc_tracked(), 0);
}

Test(collect, uncollectable_cycle_is_kept_and_counted)
{
    node *x = t_node(&noclear_type, 1), *y = t_node(&noclear_type, 2);
    x->a = y;
    t_link(y, &y->a, x);
    pa_decref(x);
    node *dead = t_ring(&node_type, 3);   /* a normal cycle in the same collection */
    pa_decref(dead);
    cr_assert_eq(pa_gc_collect(2), 5);
    pa_gc_stats st[3];
    pa_gc_get_stats(st);
    cr_assert_eq(st[2].collected, 3);
    cr_assert_eq(st[2].uncollectable, 2);
    cr_assert_eq(pa_gc_tracked(), 2);
    cr_assert_eq(pa_gc_garbage_count(), 2);
    cr_assert_eq(x->magic, NODE_MAGIC);
    cr_assert_eq(pa_gc_collect(2), 0, "reported once, not on every collection");
}

Test(collect, whatever_an_uncollectable_object_reaches_is_kept)
{
    /* u (no clear) -> c (clear) -> u: c cannot be cleared without freeing what u points to */
    node *u = t_node(&noclear_type, 1), *c = t_node(&fnode_type, 2);
    u->a = c;
    t_link(c, &c->a, u);
    /* d (clear, in a cycle of its own) -> u: d can go; u survives through its own cycle */
    node *d = t_node(&node_type, 3);
    t_link(d, &d->a, u);
    t_link(d, &d->b, d);
    pa_decref(u);
    pa_decref(d);
    cr_assert_eq(pa_gc_collect(2), 3);
    pa_gc_stats st[3];
    pa_gc_get_stats(st);
    cr_assert_eq(st[2].uncollectable, 2);
    cr_assert_eq(st[2].collected, 1);
    cr_assert_eq(pa_gc_tracked(), 2);
    cr_assert_eq(c->magic, NODE_MAGIC);
    cr_assert_eq(t_finalized, 0, "uncollectable objects are not finalized");
    cr_assert_eq(pa_refcount(u), 1);
}

static void *dropper_target;
static void dropping_finalize(void *self)
{
    node *n = self;
    t_finalized++;
    PA_CLEAR(n->a);   /* may kill another member of the dying cycle right now */
    PA_CLEAR(n->b);
}
static void node_trav(void *self, pa_visit_fn visit, void *arg)
{
    node *n = self;
    visit(n->a, arg);
    visit(n->b, arg);
}
static void node_clr(void *self)
{
    node *n = self;
    PA_CLEAR(n->a);
    PA_CLEAR(n->b);
}

Test(collect, finalizer_that_breaks_the_cycle_itself)
{
    static const pa_type dropper = { "dropper", sizeof(node), node_trav, node_clr, dropping_finalize };
    node *r = t_ring(&dropper, 100);
    dropper_target = r;
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 0, "the finalizers freed everything; nothing left to clear");
    cr_assert_eq(t_finalized, 100);
    cr_assert_eq(pa_gc_tracked(), 0);
}

static size_t nested_result = 99;
static void nesting_finalize(void *self)
{
    nested_result = pa_gc_collect(2);
    /* allocation in a finalizer during a collection: tracked in generation 0, no new
     * collection starts even above threshold 0 */
    pa_gc_set_threshold(1, 1, 1);
    for (int i = 0; i < 10; i++)
        pa_decref(pa_new(&node_type));
    node *keep = pa_new(&node_type);
    ((node *)self)->b = keep;
}

Test(collect, collect_inside_a_finalizer_returns_zero)
{
    static const pa_type nester = { "nester", sizeof(node), node_trav, node_clr, nesting_finalize };
    node *x = t_node(&nester, 1);
    t_link(x, &x->a, x);
    pa_decref(x);
    cr_assert_eq(pa_gc_collect(2), 1);
    cr_assert_eq(nested_result, 0);
    cr_assert_eq(pa_gc_tracked(), 0, "the object made by the finalizer died with x");
    pa_gc_stats st[3];
    pa_gc_get_stats(st);
    cr_assert_eq(st[0].collections + st[1].collections, 0);
    cr_assert_eq(st[2].collections, 1);
}

/* A finalizer run by refcount (not by the collector) stores its object into a live one and
 * collects: the object, untracked meanwhile, is reachable from examined objects and must come
 * out of the collection untouched, tracked again once the finalizer returns. */
static node *keeper;
static size_t storing_found = 99;
static void storing_finalize(void *self)
{
    t_link(keeper, &keeper->b, self);
    storing_found = pa_gc_collect(2);
}

Test(collect, collect_from_a_finalizer_run_by_refcount)
{
    static const pa_type storer = { "storer", sizeof(node), node_trav, node_clr,
                                    storing_finalize };
    keeper = t_node(&node_type, 1);
    node *dead = t_ring(&node_type, 10);   /* garbage for the collection in the finalizer */
    pa_decref(dead);
    node *x = t_node(&storer, 2);
    t_link(x, &x->a, keeper);
    pa_decref(x);
    cr_assert_eq(storing_found, 10);
    cr_assert_eq(keeper->b, x);
    cr_assert_eq(pa_refcount(x), 1);
    cr_assert_eq(pa_refcount(keeper), 2);
    cr_assert_eq(pa_gc_tracked(), 2, "keeper and x, tracked again");
    cr_assert_eq(pa_gc_collect(2), 0);
    pa_decref(keeper);   /* the test's reference: keeper and x now form a garbage cycle */
    cr_assert_eq(pa_gc_collect(2), 2);
    cr_assert_eq(pa_gc_tracked(), 0);
}

/* The same, with the object stored into an uncollectable cycle that the finalizer makes and
 * drops: the collection keeps that cycle, and must leave the finalizer's object alone although
 * the cycle reaches it. */
static size_t dropped_found = 99;
static void dropping_cycle_finalize(void *self)
{
    node *u = t_node(&noclear_type, 3), *v = t_node(&noclear_type, 4);
    u->a = v;
    t_link(v, &v->a, u);
    t_link(u, &u->b, self);
    pa_decref(u);
    dropped_found = pa_gc_collect(2);
}

Test(collect, finalizer_object_reached_from_uncollectable_garbage)
{
    static const pa_type dropper2 = { "dropper2", sizeof(node), node_trav, node_clr,
                                      dropping_cycle_finalize };
    node *x = t_node(&dropper2, 2);
    pa_decref(x);
    cr_assert_eq(dropped_found, 2);
    cr_assert_eq(pa_gc_garbage_count(), 2);
    cr_assert_eq(pa_refcount(x), 1, "kept by the uncollectable cycle");
    cr_assert_eq(pa_gc_tracked(), 3);
    cr_assert_eq(pa_gc_collect(2), 0);
    cr_assert_eq(pa_gc_tracked(), 3);
}

/* A clear that moves a member's reference out (into a global) instead of dropping it: that
 * member outlives the collection in the oldest generation and dies later by refcount. */
static void *moved_out;
static void moving_clear(void *self)
{
    node *n = self;
    if (n->id == 0 && moved_out == NULL) {
        moved_out = n->a;
        n->a = NULL;
    }
    node_clr(self);
}

Test(collect, member_kept_alive_by_a_clear)
{
    static const pa_type mover = { "mover", sizeof(node), node_trav, moving_clear, NULL };
    node *r = t_ring(&mover, 1000);
    node *kept = r->a;
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 1000);
    cr_assert_eq(moved_out, kept);
    cr_assert_eq(pa_refcount(kept), 1);
    cr_assert_eq(pa_gc_tracked(), 1);
    cr_assert_eq(pa_gc_collect(2), 0);
    cr_assert_eq(pa_gc_tracked(), 1);
    pa_decref(moved_out);
    cr_assert_eq(pa_gc_tracked(), 0);
}

/* Nothing but clear runs while a plain garbage ring is freed: each member is cleared once. */
Test(collect, clear_runs_once_per_member)
{
    node *r = t_ring(&node_type, 100);
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 100);
    cr_assert_eq(t_cleared, 100);
}

/* User code that runs during the clear pass (here the finalizer or a weak reference callback
 * of an untracked object that a member's clear drops) gives members that were already cleared
 * new handles, by raw pointers: the collector clears them once more before freeing them, so
 * the object they were given loses those references again. */
static node *given_to[2];
static node *gift;
static void give_handles(void)
{
    for (int i = 0; i < 2; i++)
        if (given_to[i]->a == NULL)
            t_link(given_to[i], &given_to[i]->a, gift);
}

static void giving_finalize(void *self)
{
    (void)self;
    give_handles();
}

static void giving_callback(pa_weakref *ref, void *arg)
{
    (void)arg;
    pa_weakref_free(ref);
    give_handles();
}

static void cleared_members_given_handles(bool by_callback)
{
    static const pa_type giver = { "giver", 16, NULL, NULL, giving_finalize };
    static const pa_type plain_leaf = { "plain_leaf", 16, NULL, NULL, NULL };
    gift = t_node(&node_type, 9);
    node *x = t_node(&node_type, 1), *y = t_node(&node_type, 2);
    given_to[0] = x;
    given_to[1] = y;
    x->a = y;
    t_link(y, &y->a, x);
    y->b = pa_new(by_callback ? &plain_leaf : &giver);
    cr_assert_not_null(y->b);
    if (by_callback)
        cr_assert_not_null(pa_weakref_new(y->b, giving_callback, NULL));
    pa_decref(x);
    cr_assert_eq(pa_gc_collect(2), 2);
    cr_assert_eq(pa_refcount(gift), 1, "the members' handles to gift were dropped");
    cr_assert_eq(pa_gc_tracked(), 1);
    pa_decref(gift);
    cr_assert_eq(pa_gc_tracked(), 0);
}

Test(collect, cleared_members_given_handles_by_a_finalizer)
{
    cleared_members_given_handles(false);
}

Test(collect, cleared_members_given_handles_by_a_weakref_callback)
{
    cleared_members_given_handles(true);
}
