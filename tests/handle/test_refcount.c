/* test_refcount.c — objects and reference counts: allocation, incref/decref, death by
 * refcount (finalize, clear, free, in that order), resurrection, long chains (trashcan),
 * and where object memory comes from. */
#include "handle_test.h"

#include <dlfcn.h>
#include <errno.h>

Test(refcount, new_is_zero_filled_with_refcount_one)
{
    static const pa_type big = { "big", 300, NULL, NULL, NULL };
    for (int round = 0; round < 2; round++) {
        unsigned char *p = pa_new(&big);
        cr_assert_not_null(p);
        cr_assert_eq(pa_refcount(p), 1);
        cr_assert_eq(pa_type_of(p), &big);
        for (size_t i = 0; i < big.size; i++)
            cr_assert_eq(p[i], 0, "byte %zu not zeroed", i);
        memset(p, 0xab, big.size);   /* dirty the block so the second round reuses it dirty */
        pa_decref(p);
    }
}

Test(refcount, new_rejects_null_type)
{
    errno = 0;
    cr_assert_null(pa_new(NULL));
    cr_assert_eq(errno, EINVAL);
}

Test(refcount, incref_decref_and_null)
{
    node *n = t_node(&fnode_type, 1);
    pa_incref(n);
    pa_incref(n);
    cr_assert_eq(pa_refcount(n), 3);
    pa_decref(n);
    pa_decref(n);
    cr_assert_eq(pa_refcount(n), 1);
    cr_assert_eq(t_finalized, 0);
    pa_incref(NULL);
    pa_decref(NULL);
    cr_assert_eq(pa_refcount(NULL), 0);
    cr_assert_null(pa_type_of(NULL));
    cr_assert_eq(pa_gc_tracked(), 1);
    pa_decref(n);
    cr_assert_eq(t_finalized, 1);
    cr_assert_eq(t_cleared, 1);
    cr_assert_eq(pa_gc_tracked(), 0);
}

static int order_step;
static int order_finalize_at, order_clear_at;
static void order_finalize(void *self) { order_finalize_at = ++order_step; }
static void order_clear(void *self) { order_clear_at = ++order_step; }
static void order_traverse(void *self, pa_visit_fn visit, void *arg) {}

Test(refcount, death_runs_finalize_then_clear)
{
    static const pa_type t = { "order", 8, order_traverse, order_clear, order_finalize };
    void *o = pa_new(&t);
    pa_decref(o);
    cr_assert_eq(order_finalize_at, 1);
    cr_assert_eq(order_clear_at, 2);
}

Test(refcount, untracked_objects_finalize_and_are_not_tracked)
{
    void *l = pa_new(&leaf_type);
    cr_assert_eq(pa_gc_tracked(), 0);
    size_t count[3];
    pa_gc_get_count(count);
    cr_assert_eq(count[0], 0, "untracked allocations do not count towards threshold 0");
    pa_decref(l);
    cr_assert_eq(t_leaf_finalized, 1);
}

Test(refcount, chain_freed_by_refcount)
{
    node *head = t_node(&fnode_type, 0), *cur = head;
    for (int i = 1; i < 1000; i++) {
        cur->a = t_node(&fnode_type, i);
        cur = cur->a;
    }
    cur->b = pa_new(&leaf_type);
    cr_assert_eq(pa_gc_tracked(), 1000);
    pa_decref(head);
    cr_assert_eq(pa_gc_tracked(), 0);
    cr_assert_eq(t_finalized, 1000);
    cr_assert_eq(t_leaf_finalized, 1);
    cr_assert_eq(t_peer_checks_failed, 0);
}

/* Without the trashcan, clear -> decref -> dealloc -> clear ... would nest a million frames. */
Test(refcount, million_long_chain_freed_without_recursion)
{
    node *head = t_node(&node_type, 0), *cur = head;
    for (int i = 1; i < 1000000; i++) {
        cur->a = t_node(&node_type, i);
        cur = cur->a;
    }
    cr_assert_eq(pa_gc_tracked(), 1000000);
    pa_decref(head);
    cr_assert_eq(pa_gc_tracked(), 0);
    cr_assert_eq(t_cleared, 1000000);
}

/* A wide and deep tree: dealloc nests through both slots. */
static node *tree(int depth)
{
    node *n = t_node(&node_type, depth);
    if (depth > 0) {
        n->a = tree(depth - 1);
        n->b = tree(depth - 1);
    }
    return n;
}

Test(refcount, binary_tree_freed)
{
    node *t = tree(14);
    cr_assert_eq(pa_gc_tracked(), (1u << 15) - 1);
    pa_decref(t);
    cr_assert_eq(pa_gc_tracked(), 0);
}

static void *saved;

Test(refcount, finalizer_resurrects_once)
{
    node *n = t_node(&fnode_type, 7);
    n->resurrect = &saved;
    pa_decref(n);
    cr_assert_eq(saved, n, "the finalizer kept the object");
    cr_assert_eq(pa_refcount(n), 1);
    cr_assert_eq(n->magic, NODE_MAGIC, "not cleared");
    cr_assert_eq(t_cleared, 0);
    cr_assert_eq(pa_gc_tracked(), 1, "tracked again");
    pa_gc_collect(2);
    cr_assert_eq(pa_gc_tracked(), 1);
    n->resurrect = &saved;   /* would resurrect again if the finalizer ran again */
    saved = NULL;
    pa_decref(n);
    cr_assert_eq(t_finalized, 1, "finalize runs once in a life");
    cr_assert_null(saved);
    cr_assert_eq(t_cleared, 1);
    cr_assert_eq(pa_gc_tracked(), 0);
}

Test(refcount, setref_drops_old_after_store)
{
    node *holder = t_node(&node_type, 0);
    node *x = t_node(&fnode_type, 1), *y = t_node(&fnode_type, 2);
    pa_setref(&holder->a, x);
    pa_setref(&holder->a, y);
    cr_assert_eq(t_finalized, 1, "x died when replaced");
    cr_assert_eq(holder->a, y);
    PA_CLEAR(holder->a);
    cr_assert_null(holder->a);
    cr_assert_eq(t_finalized, 2);
    pa_decref(holder);
}

Test(refcount, exported_out_of_line_incref_decref)
{
    void (*inc)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "pa_incref");
    void (*dec)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "pa_decref");
    cr_assert(inc && dec);
    node *n = t_node(&fnode_type, 1);
    inc(n);
    cr_assert_eq(pa_refcount(n), 2);
    dec(n);
    dec(n);
    cr_assert_eq(t_finalized, 1);
    inc(NULL);
    dec(NULL);
}

/* Small objects come from pyarena's pools: a 130-byte block (header + body) has the usable
 * size of the 144-byte class (jemalloc would give 160, glibc 136). */
Test(refcount, small_objects_come_from_pyarena_pools)
{
    static const pa_type t130 = { "t130", 130 - PA_HANDLE_GC_HEADER, order_traverse, order_clear, NULL };
    static const pa_type u130 = { "u130", 130 - PA_HANDLE_HEADER, NULL, NULL, NULL };
    void *a = pa_new(&t130), *b = pa_new(&u130);
    cr_assert_eq(pyarena_usable_size((char *)a - PA_HANDLE_GC_HEADER), 144);
    cr_assert_eq(pyarena_usable_size((char *)b - PA_HANDLE_HEADER), 144);
    /* a body whose header pushes it past 512 goes to jemalloc through pyarena */
    static const pa_type big = { "big", 500, NULL, NULL, NULL };
    void *c = pa_new(&big);
    cr_assert_geq(pyarena_usable_size((char *)c - PA_HANDLE_HEADER), 516);
    pa_decref(a);
    pa_decref(b);
    pa_decref(c);
}

Test(refcount, huge_size_fails_with_enomem)
{
    static const pa_type huge = { "huge", SIZE_MAX - 8, NULL, NULL, NULL };
    errno = 0;
    cr_assert_null(pa_new(&huge));
    cr_assert_eq(errno, ENOMEM);
}
