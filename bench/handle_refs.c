/* handle_refs — the cost of pa_incref + pa_decref (handle.h's inline versions) on a live object.
 *
 *   handle_refs [--quick]          times N pairs (best of 5 slices); ns per pair
 *   handle_refs N [--harness]      runs N pairs once, for instruction counting under
 *                                  `valgrind --tool=callgrind` with N and 2N (the difference
 *                                  over N is one pair, start-up cancelled); with --harness the
 *                                  same loop without the incref and decref (the loop's own
 *                                  cost, which bench/run.py subtracts)
 *
 * Between the incref and the decref the object's address escapes to an empty asm statement
 * that clobbers memory, as a call would: the compiler must store the new count and load it
 * again, so the pair cannot be folded away (the counts are checked at the end). The object
 * alternates between two live objects, one tracked (a type with traverse), one not. */
#include "common.h"
#include "handle_common.h"

#include <pyarena/handle.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cell { void *next; uint64_t value; } cell;

static void cell_traverse(void *self, pa_visit_fn visit, void *arg)
{
    visit(((cell *)self)->next, arg);
}

static void cell_clear(void *self)
{
    PA_CLEAR(((cell *)self)->next);
}

static const pa_type tracked_type = { "bench_cell", sizeof(cell), cell_traverse, cell_clear, NULL };
static const pa_type plain_type = { "bench_plain", sizeof(cell), NULL, NULL, NULL };

__attribute__((noinline)) static void pairs(void *objs[2], size_t n, int harness)
{
    if (harness) {
        for (size_t i = 0; i < n; i++) {
            void *o = objs[i & 1];
            escape(o);
            escape(o);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        void *o = objs[i & 1];
        pa_incref(o);
        escape(o);
        pa_decref(o);
        escape(o);
    }
}

int main(int argc, char **argv)
{
    void *objs[2] = { pa_new(&tracked_type), pa_new(&plain_type) };
    if (objs[0] == NULL || objs[1] == NULL)
        die("pa_new failed");
    int harness = argc > 2 && strcmp(argv[2], "--harness") == 0;
    int counting = argc > 1 && argv[1][0] >= '0' && argv[1][0] <= '9';
    if (counting) {
        pairs(objs, strtoull(argv[1], NULL, 10), harness);
    } else {
        size_t n = (size_t)(200000000 / quick_divisor(argc, argv));
        double best = 0;
        pairs(objs, n / 10, 0); /* warm-up */
        for (int slice = 0; slice < 5; slice++) {
            double t0 = now_sec();
            pairs(objs, n / 5, 0);
            double t = (now_sec() - t0) * 1e9 / (double)(n / 5);
            if (slice == 0 || t < best)
                best = t;
        }
        emit("hrefs/time", best, "ns/pair");
    }
    if (pa_refcount(objs[0]) != 1 || pa_refcount(objs[1]) != 1)
        die("refcounts are %zu and %zu after the pairs, not 1", pa_refcount(objs[0]),
            pa_refcount(objs[1]));
    pa_decref(objs[0]);
    pa_decref(objs[1]);
    if (pa_gc_tracked() != 0)
        die("%zu objects still tracked", pa_gc_tracked());
    if (!counting)
        emit_handle_libs();
    return 0;
}
