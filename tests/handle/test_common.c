/* test_common.c — the object types and helpers of handle_test.h, plus the tests of the
 * public header's constants. */
#include "handle_test.h"

#include <stdarg.h>
#include <stdio.h>

size_t t_finalized, t_cleared, t_leaf_finalized, t_peer_checks_failed;
char t_events[4096];

void t_log(const char *fmt, ...)
{
    size_t len = strlen(t_events);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_events + len, sizeof t_events - len, fmt, ap);
    va_end(ap);
}

static void node_traverse(void *self, pa_visit_fn visit, void *arg)
{
    node *n = self;
    visit(n->a, arg);
    visit(n->b, arg);
}

static void node_clear(void *self)
{
    node *n = self;
    t_cleared++;
    n->magic = 0;
    PA_CLEAR(n->a);
    PA_CLEAR(n->b);
}

static void peer_check(void *peer)
{
    if (peer && pa_type_of(peer)->traverse &&
        (((node *)peer)->magic != NODE_MAGIC || pa_refcount(peer) == 0))
        t_peer_checks_failed++;
}

static void fnode_finalize(void *self)
{
    node *n = self;
    t_finalized++;
    t_log("F%d ", n->id);
    if (n->magic != NODE_MAGIC)
        t_peer_checks_failed++;
    peer_check(n->a);
    peer_check(n->b);
    if (n->resurrect) {
        pa_incref(n);
        *n->resurrect = n;
        n->resurrect = NULL;
    }
}

static void leaf_finalize(void *self)
{
    t_leaf_finalized++;
}

const pa_type node_type = { "node", sizeof(node), node_traverse, node_clear, NULL };
const pa_type fnode_type = { "fnode", sizeof(node), node_traverse, node_clear, fnode_finalize };
const pa_type noclear_type = { "noclear", sizeof(node), node_traverse, NULL, NULL };
const pa_type leaf_type = { "leaf", 16, NULL, NULL, leaf_finalize };

node *t_node(const pa_type *type, int id)
{
    node *n = pa_new(type);
    cr_assert_not_null(n);
    n->magic = NODE_MAGIC;
    n->id = id;
    return n;
}

void t_link(node *from, void **slot, node *to)
{
    (void)from;
    pa_incref(to);
    pa_setref(slot, to);
}

node *t_ring(const pa_type *type, size_t n)
{
    node *first = t_node(type, 0), *cur = first;
    for (size_t i = 1; i < n; i++) {
        node *next = t_node(type, (int)i);
        cur->a = next;   /* the new reference moves into the slot */
        cur = next;
    }
    t_link(cur, &cur->a, first);
    return first;
}

Test(header, layout_constants)
{
    node *n = t_node(&node_type, 1);
    void *leaf = pa_new(&leaf_type);
    cr_assert_not_null(leaf);
    /* The refcount sits right before the body, the type word before it. */
    cr_assert_eq(((size_t *)n)[-1], 1);
    cr_assert_eq(pa_type_of(n), &node_type);
    cr_assert_eq(pa_type_of(leaf), &leaf_type);
    cr_assert_eq((uintptr_t)n % 16, 0, "bodies keep 16-byte alignment");
    cr_assert_eq((uintptr_t)leaf % 16, 0);
    pa_decref(n);
    pa_decref(leaf);
    cr_assert_eq(pa_gc_tracked(), 0);
}
