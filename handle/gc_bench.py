"""gc_bench.py — the CPython side of gc_bench.c: the same N-object graphs of __slots__ objects
(a = node (i+1) mod N; b = node (i-1) mod N for "ring", node (i*7919+13) mod N for "chord"),
gc.collect() timed on each as garbage and while a list holds it.
Usage: python3 gc_bench.py [N] [repeats] [ring|chord|both]; prints the best run of each."""
import gc
import sys
import time


class Node:
    __slots__ = ("a", "b")


def build(n, chord):
    v = [Node() for _ in range(n)]
    for i in range(n):
        v[i].a = v[(i + 1) % n]
        v[i].b = v[(i * 7919 + 13) % n] if chord else v[(i + n - 1) % n]
    return v


def run(n, reps, chord):
    best_garbage = best_live = float("inf")
    for _ in range(reps):
        v = build(n, chord)
        t0 = time.perf_counter_ns()
        gc.collect()
        best_live = min(best_live, time.perf_counter_ns() - t0)
        del v
        t0 = time.perf_counter_ns()
        found = gc.collect()
        best_garbage = min(best_garbage, time.perf_counter_ns() - t0)
        if found < n:
            sys.exit(f"garbage graph: {found} of {n} found")
    print(f"CPython {sys.version.split()[0]:8} {'chord' if chord else 'ring':5} N={n}  garbage: "
          f"{best_garbage / n:6.1f} ns/object  live: {best_live / n:6.1f} ns/object")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    shape = sys.argv[3] if len(sys.argv) > 3 else "both"
    gc.disable()
    gc.collect()
    if shape != "chord":
        run(n, reps, False)
    if shape != "ring":
        run(n, reps, True)


if __name__ == "__main__":
    main()
