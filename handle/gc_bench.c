/* gc_bench.c — times pa_gc_collect(2) on an N-object cyclic graph, in ns per object, for the
 * shapes gc_bench.py builds in CPython: node i has two handles, a = node (i+1) mod N (a ring)
 * and b = node (i-1) mod N ("ring": a doubly linked ring, neighbours in memory) or
 * b = node (i*7919+13) mod N ("chord": a random-looking permutation, one cache miss per edge).
 * "garbage": nothing outside holds the graph, the collection finds and frees all of it;
 * "live": an array holds every node, nothing is freed.
 * Usage: gc_bench [N] [repeats] [ring|chord|both]   (defaults 1000000, 3, both; best run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pyarena/handle.h>

typedef struct node { void *a, *b; } node;

static void node_traverse(void *self, pa_visit_fn visit, void *arg)
{
    node *n = self;
    visit(n->a, arg);
    visit(n->b, arg);
}

static void node_clear(void *self)
{
    node *n = self;
    PA_CLEAR(n->a);
    PA_CLEAR(n->b);
}

static const pa_type node_type = { "node", sizeof(node), node_traverse, node_clear, NULL };

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static node **build(size_t n, int chord)
{
    node **v = malloc(n * sizeof *v);
    if (!v) {
        perror("malloc");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        v[i] = pa_new(&node_type);
    for (size_t i = 0; i < n; i++) {
        v[i]->a = v[(i + 1) % n];
        v[i]->b = chord ? v[(i * 7919 + 13) % n] : v[(i + n - 1) % n];
        pa_incref(v[i]->a);
        pa_incref(v[i]->b);
    }
    return v;
}

static int run(size_t n, int reps, int chord)
{
    double best_garbage = 1e30, best_live = 1e30;
    for (int r = 0; r < reps; r++) {
        node **v = build(n, chord);
        double t0 = now_ns();
        size_t found = pa_gc_collect(2);
        double dt = now_ns() - t0;
        if (found != 0) {
            fprintf(stderr, "live graph: %zu found unreachable\n", found);
            return 1;
        }
        if (dt < best_live)
            best_live = dt;
        for (size_t i = 0; i < n; i++)
            pa_decref(v[i]);
        free(v);
        t0 = now_ns();
        found = pa_gc_collect(2);
        dt = now_ns() - t0;
        if (found != n || pa_gc_tracked() != 0) {
            fprintf(stderr, "garbage graph: %zu of %zu found, %zu left\n", found, n, pa_gc_tracked());
            return 1;
        }
        if (dt < best_garbage)
            best_garbage = dt;
    }
    printf("pyarena handles  %-5s N=%zu  garbage: %6.1f ns/object  live: %6.1f ns/object\n",
           chord ? "chord" : "ring", n, best_garbage / (double)n, best_live / (double)n);
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    const char *shape = argc > 3 ? argv[3] : "both";
    pa_gc_disable();
    if (strcmp(shape, "chord") != 0 && run(n, reps, 0))
        return 1;
    if (strcmp(shape, "ring") != 0 && run(n, reps, 1))
        return 1;
    return 0;
}
