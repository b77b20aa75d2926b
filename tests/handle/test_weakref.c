/* test_weakref.c — weak references: strong references from get, clearing and callbacks at
 * death by refcount and by the collector (before finalizers), freeing from callbacks, many
 * references on many objects. */
#include "handle_test.h"

#include <errno.h>

static int cb_calls;
static pa_weakref *cb_last_ref;
static void *cb_last_arg;
static void on_death(pa_weakref *ref, void *arg)
{
    cb_calls++;
    cb_last_ref = ref;
    cb_last_arg = arg;
    cr_assert_null(pa_weakref_get(ref), "cleared before the callback");
    t_log("W%d ", (int)(intptr_t)arg);
}

static void free_self(pa_weakref *ref, void *arg)
{
    cb_calls++;
    pa_weakref_free(ref);
}

Test(weakref, get_returns_a_strong_reference)
{
    node *n = t_node(&node_type, 1);
    pa_weakref *w = pa_weakref_new(n, NULL, NULL);
    cr_assert_not_null(w);
    cr_assert_eq(pa_refcount(n), 1, "a weak reference does not count");
    void *s = pa_weakref_get(w);
    cr_assert_eq(s, n);
    cr_assert_eq(pa_refcount(n), 2);
    pa_decref(s);
    pa_decref(n);
    cr_assert_null(pa_weakref_get(w));
    cr_assert_eq(pa_gc_tracked(), 0);
    pa_weakref_free(w);
    pa_weakref_free(NULL);
}

Test(weakref, rejects_null)
{
    errno = 0;
    cr_assert_null(pa_weakref_new(NULL, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(pa_weakref_get(NULL));
}

Test(weakref, callback_once_at_refcount_death)
{
    void *leaf = pa_new(&leaf_type);   /* untracked objects have weak references too */
    pa_weakref *w = pa_weakref_new(leaf, on_death, (void *)(intptr_t)5);
    pa_weakref *w2 = pa_weakref_new(leaf, on_death, (void *)(intptr_t)6);
    pa_weakref *w3 = pa_weakref_new(leaf, NULL, NULL);
    pa_decref(leaf);
    cr_assert_eq(cb_calls, 2);
    cr_assert_eq(t_leaf_finalized, 1);
    cr_assert(strstr(t_events, "W5") && strstr(t_events, "W6"));
    cr_assert_null(pa_weakref_get(w));
    cr_assert_null(pa_weakref_get(w3));
    pa_weakref_free(w);
    pa_weakref_free(w2);
    pa_weakref_free(w3);
}

Test(weakref, freed_reference_gets_no_callback)
{
    node *n = t_node(&node_type, 1);
    pa_weakref *w = pa_weakref_new(n, on_death, NULL);
    pa_weakref *keep = pa_weakref_new(n, on_death, (void *)(intptr_t)2);
    pa_weakref_free(w);
    pa_decref(n);
    cr_assert_eq(cb_calls, 1);
    cr_assert_eq(cb_last_ref, keep);
    cr_assert_eq(cb_last_arg, (void *)(intptr_t)2);
    pa_weakref_free(keep);
}

Test(weakref, callback_may_free_its_reference)
{
    node *n = t_node(&node_type, 1);
    for (int i = 0; i < 3; i++)
        cr_assert_not_null(pa_weakref_new(n, free_self, NULL));
    pa_decref(n);
    cr_assert_eq(cb_calls, 3);
}

static pa_weakref *other_ref;
static void free_other(pa_weakref *ref, void *arg)
{
    cb_calls++;
    if (other_ref) {   /* frees a reference whose callback has not run yet */
        pa_weakref_free(other_ref);
        other_ref = NULL;
    }
    pa_weakref_free(ref);
}

Test(weakref, callback_may_free_a_pending_reference)
{
    node *n = t_node(&node_type, 1);
    pa_weakref *first = pa_weakref_new(n, free_other, NULL);
    pa_weakref *second = pa_weakref_new(n, free_other, NULL);
    /* callbacks run newest first: second's callback frees first before it runs */
    other_ref = first;
    (void)second;
    pa_decref(n);
    cr_assert_eq(cb_calls, 1);
}

/* Weak references to garbage are cleared and their callbacks run before any finalizer, so no
 * callback can reach a finalized object. */
Test(weakref, cleared_by_the_collector_before_finalizers)
{
    node *r = t_ring(&fnode_type, 3);
    pa_weakref *w0 = pa_weakref_new(r, on_death, (void *)(intptr_t)0);
    pa_weakref *w1 = pa_weakref_new(r->a, on_death, (void *)(intptr_t)1);
    node *survivor = t_node(&node_type, 9);
    pa_weakref *ws = pa_weakref_new(survivor, on_death, (void *)(intptr_t)9);
    pa_decref(r);
    cr_assert_eq(pa_gc_collect(2), 3);
    cr_assert_eq(cb_calls, 2);
    cr_assert_str_eq(t_events, "W1 W0 F0 F1 F2 ");
    cr_assert_null(pa_weakref_get(w0));
    void *s = pa_weakref_get(ws);
    cr_assert_eq(s, survivor);
    pa_decref(s);
    pa_weakref_free(w0);
    pa_weakref_free(w1);
    pa_decref(survivor);
    cr_assert_eq(cb_calls, 3);
    pa_weakref_free(ws);
}

Test(weakref, uncollectable_objects_keep_their_weak_references)
{
    node *u = t_node(&noclear_type, 1);
    t_link(u, &u->a, u);
    pa_weakref *w = pa_weakref_new(u, on_death, NULL);
    pa_decref(u);
    cr_assert_eq(pa_gc_collect(2), 1);
    cr_assert_eq(cb_calls, 0);
    node *back = pa_weakref_get(w);
    cr_assert_eq(back, u);
    /* the program can still break the cycle by hand */
    PA_CLEAR(back->a);
    pa_decref(back);
    cr_assert_eq(cb_calls, 1);
    cr_assert_eq(pa_gc_garbage_count(), 0);
    cr_assert_eq(pa_gc_tracked(), 0);
    pa_weakref_free(w);
}

/* Exercises the referent table: growth, deletion in any order, many live entries. */
Test(weakref, many_objects_many_references)
{
    enum { N = 20000 };
    static node *objs[N];
    static pa_weakref *refs[N][2];
    for (int i = 0; i < N; i++) {
        objs[i] = t_node(&node_type, i);
        refs[i][0] = pa_weakref_new(objs[i], on_death, NULL);
        refs[i][1] = pa_weakref_new(objs[i], NULL, NULL);
    }
    for (int i = 0; i < N; i += 3)
        pa_weakref_free(refs[i][0]), refs[i][0] = NULL;
    for (int i = 1; i < N; i += 2)
        pa_weakref_free(refs[i][1]), refs[i][1] = NULL;
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 2; k++) {
            if (refs[i][k]) {
                node *s = pa_weakref_get(refs[i][k]);
                cr_assert_eq(s, objs[i], "reference %d/%d", i, k);
                pa_decref(s);
            }
        }
    }
    int expect = 0;
    for (int i = N - 1; i >= 0; i -= 2) {
        expect += refs[i][0] != NULL;
        pa_decref(objs[i]);
        objs[i] = NULL;
    }
    cr_assert_eq(cb_calls, expect);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < 2; k++) {
            if (!refs[i][k])
                continue;
            node *s = pa_weakref_get(refs[i][k]);
            cr_assert_eq(s, objs[i], "reference %d/%d", i, k);
            pa_decref(s);
        }
    }
    for (int i = 0; i < N; i++) {
        pa_decref(objs[i]);
        pa_weakref_free(refs[i][0]);
        pa_weakref_free(refs[i][1]);
    }
    cr_assert_eq(pa_gc_tracked(), 0);
}
