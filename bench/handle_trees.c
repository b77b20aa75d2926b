/* handle_trees — a binary-trees workload on handle objects, with the cycle collector on (its
 * default thresholds 700, 10, 10), to show what the collector costs in time and that memory
 * stays bounded while trees are built and dropped. bench/handle_trees.py is the same workload
 * in CPython.
 *
 *   handle_trees DEPTH ROUNDS
 *
 * A long-lived tree of depth DEPTH is built first and kept until the end. Then, ROUNDS times:
 * a "stretch" tree of depth DEPTH+1 is built, checked and dropped; then for each depth d =
 * 4, 6, ..., DEPTH, 2^(DEPTH-d+2) trees of depth d are built, checked and dropped one by one
 * (about 2^(DEPTH+3) nodes per depth). A node holds handles to its two children; every left
 * child also holds a strong handle to its parent, so every tree is one big cyclic structure
 * that reference counting cannot free: dropping the root frees nothing, the collector finds
 * each tree when its generation's turn comes.
 *
 * Output (one JSON line each, DEPTH in the metric name):
 *   htrees/dD/time       s      all rounds (the long-lived tree's construction excluded)
 *   htrees/dD/ns_node    ns     per node built
 *   htrees/dD/hwm1       MiB    VmHWM after the first round
 *   htrees/dD/hwm_half   MiB    VmHWM after half the rounds (rounded up)
 *   htrees/dD/hwm        MiB    VmHWM at the end (equal to hwm1 if memory stays bounded)
 *   htrees/dD/base_rss   MiB    VmRSS before the first tree
 *   htrees/dD/gc0, gc1, gc2     collections of each generation; gc_found: objects collected
 *   {"checksum": nodes checked} (the same in handle_trees.py)
 */
#include "common.h"
#include "handle_common.h"

#include <pyarena/handle.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct node { struct node *left, *right, *parent; } node;

static void node_traverse(void *self, pa_visit_fn visit, void *arg)
{
    node *n = self;
    visit(n->left, arg);
    visit(n->right, arg);
    visit(n->parent, arg);
}

static void node_clear(void *self)
{
    node *n = self;
    PA_CLEAR(n->left);
    PA_CLEAR(n->right);
    PA_CLEAR(n->parent);
}

static const pa_type node_type = { "tree_node", sizeof(node), node_traverse, node_clear, NULL };

static size_t built;

static node *make_tree(int depth)
{
    node *n = pa_new(&node_type);
    if (n == NULL)
        die("pa_new failed at %zu nodes", built);
    built++;
    if (depth > 0) {
        n->left = make_tree(depth - 1);
        n->right = make_tree(depth - 1);
        pa_incref(n);
        n->left->parent = n;
    }
    return n;
}

static size_t check_tree(const node *n)
{
    if (n->left == NULL)
        return 1;
    if (n->left->parent != n || n->right->parent != NULL)
        die("tree node %p: broken parent link", (const void *)n);
    return 1 + check_tree(n->left) + check_tree(n->right);
}

static double mib(long kb)
{
    return (double)kb / 1024.0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DEPTH ROUNDS\n", argv[0]);
        return 64;
    }
    int max_depth = atoi(argv[1]), rounds = atoi(argv[2]), min_depth = 4;
    if (max_depth < min_depth || max_depth > 24 || rounds < 1)
        die("DEPTH must be 4..24 and ROUNDS at least 1");
    if (!pa_gc_is_enabled())
        die("the collector is disabled at start");
    long base = proc_status_kb("VmRSS"), hwm1 = 0, hwm_half = 0;
    uint64_t checked = 0;

    node *long_lived = make_tree(max_depth);
    size_t long_lived_nodes = built;
    double t0 = now_sec();
    for (int r = 0; r < rounds; r++) {
        node *stretch = make_tree(max_depth + 1);
        checked += check_tree(stretch);
        pa_decref(stretch);
        for (int d = min_depth; d <= max_depth; d += 2) {
            size_t iters = (size_t)1 << (max_depth - d + 2);
            for (size_t i = 0; i < iters; i++) {
                node *t = make_tree(d);
                checked += check_tree(t);
                pa_decref(t);
            }
        }
        if (r == 0)
            hwm1 = proc_status_kb("VmHWM");
        if (r + 1 == (rounds + 1) / 2)
            hwm_half = proc_status_kb("VmHWM");
    }
    double t = now_sec() - t0;
    long hwm = proc_status_kb("VmHWM");
    checked += check_tree(long_lived);
    pa_decref(long_lived);

    pa_gc_stats st[3];
    pa_gc_get_stats(st);
    char name[64];
#define EMIT(what, value, unit)                                               \
    do {                                                                      \
        snprintf(name, sizeof name, "htrees/d%d/%s", max_depth, what);        \
        emit(name, value, unit);                                              \
    } while (0)
    EMIT("time", t, "s");
    EMIT("ns_node", t * 1e9 / (double)(built - long_lived_nodes), "ns/node");
    EMIT("hwm1", mib(hwm1), "MiB");
    EMIT("hwm_half", mib(hwm_half), "MiB");
    EMIT("hwm", mib(hwm), "MiB");
    EMIT("base_rss", mib(base), "MiB");
    EMIT("gc0", (double)st[0].collections, "collections");
    EMIT("gc1", (double)st[1].collections, "collections");
    EMIT("gc2", (double)st[2].collections, "collections");
    EMIT("gc_found", (double)(st[0].collected + st[1].collected + st[2].collected), "objects");
    printf("{\"checksum\": %llu}\n", (unsigned long long)checked);
    emit_handle_libs();
    /* What the last full collection had not reached yet must still be found. */
    pa_gc_collect(2);
    if (pa_gc_tracked() != 0)
        die("%zu objects still tracked after a full collection", pa_gc_tracked());
    return 0;
}
