/* leak_report.c — leaves known handle objects alive at exit for the stats report to list:
 * 3 "node" objects in a live cycle, 5 "leaf" objects, 1 frozen "node"; one dead 2-cycle is
 * collected by a full collection first. */
#include <pyarena/handle.h>

typedef struct node { void *next; } node;
static void node_traverse(void *s, pa_visit_fn visit, void *arg) { visit(((node *)s)->next, arg); }
static void node_clear(void *s) { PA_CLEAR(((node *)s)->next); }
static const pa_type node_type = { "node", sizeof(node), node_traverse, node_clear, NULL };
static const pa_type leaf_type = { "leaf \"quoted\"", 24, node_traverse, node_clear, NULL };

static void *ring(const pa_type *t, int n)
{
    node *first = pa_new(t), *prev = first;
    for (int i = 1; i < n; i++) {
        node *x = pa_new(t);
        prev->next = x;
        prev = x;
    }
    pa_incref(first);
    prev->next = first;
    return first;
}

static void *keep[6];   /* the objects alive at exit, stored for good */

int main(void)
{
    void *frozen = pa_new(&node_type);
    pa_gc_freeze();
    void *dead = ring(&node_type, 2);
    pa_decref(dead);
    pa_gc_collect(2);                    /* finds the dead 2-cycle */
    keep[0] = ring(&node_type, 3);       /* alive at exit */
    for (int i = 1; i <= 5; i++)
        keep[i] = pa_new(&leaf_type);
    (void)frozen;
    return 0;
}
