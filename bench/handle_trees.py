"""handle_trees.py -- bench/handle_trees.c's binary-trees workload in CPython, gc on with its
default thresholds: Node objects with __slots__ (left, right, parent); every left child holds a
strong reference to its parent, so each tree is cyclic garbage once dropped and only the
collector frees it. Same output lines as the C program (time, ns_node, hwm1, hwm_half, hwm, base_rss,
gc0..gc2, gc_found, checksum), plus the libraries mapped.

Usage: python3 handle_trees.py DEPTH ROUNDS"""
import gc
import json
import sys
import time


class Node:
    __slots__ = ("left", "right", "parent")

    def __init__(self):
        self.left = self.right = self.parent = None


built = 0


def make_tree(depth):
    global built
    built += 1
    n = Node()
    if depth > 0:
        n.left = make_tree(depth - 1)
        n.right = make_tree(depth - 1)
        n.left.parent = n
    return n


def check_tree(n):
    if n.left is None:
        return 1
    if n.left.parent is not n or n.right.parent is not None:
        sys.exit("tree node: broken parent link")
    return 1 + check_tree(n.left) + check_tree(n.right)


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def emit(depth, what, value, unit):
    print(json.dumps({"metric": "htrees/d%d/%s" % (depth, what), "value": value, "unit": unit}))


def libs():
    seen = []
    with open("/proc/self/maps") as f:
        for line in f:
            name = line.rstrip("\n").rsplit("/", 1)[-1] if "/" in line else ""
            if ".so" in name and ("malloc" in name or "pyarena" in name or "libc.so" in name) \
                    and name not in seen:
                seen.append(name)
    return ",".join(seen)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: handle_trees.py DEPTH ROUNDS")
    max_depth, rounds, min_depth = int(sys.argv[1]), int(sys.argv[2]), 4
    if not gc.isenabled():
        sys.exit("gc is disabled at start")
    base = status_kb("VmRSS")
    checked = 0
    long_lived = make_tree(max_depth)
    long_lived_nodes = built
    hwm1 = hwm_half = 0
    t0 = time.perf_counter()
    for r in range(rounds):
        stretch = make_tree(max_depth + 1)
        checked += check_tree(stretch)
        del stretch
        for d in range(min_depth, max_depth + 1, 2):
            for _ in range(1 << (max_depth - d + 2)):
                t = make_tree(d)
                checked += check_tree(t)
                del t
        if r == 0:
            hwm1 = status_kb("VmHWM")
        if r + 1 == (rounds + 1) // 2:
            hwm_half = status_kb("VmHWM")
    elapsed = time.perf_counter() - t0
    hwm = status_kb("VmHWM")
    checked += check_tree(long_lived)
    del long_lived
    stats = gc.get_stats()
    emit(max_depth, "time", elapsed, "s")
    emit(max_depth, "ns_node", elapsed * 1e9 / (built - long_lived_nodes), "ns/node")
    emit(max_depth, "hwm1", hwm1 / 1024.0, "MiB")
    emit(max_depth, "hwm_half", hwm_half / 1024.0, "MiB")
    emit(max_depth, "hwm", hwm / 1024.0, "MiB")
    emit(max_depth, "base_rss", base / 1024.0, "MiB")
    for g in range(3):
        emit(max_depth, "gc%d" % g, stats[g]["collections"], "collections")
    emit(max_depth, "gc_found", sum(s["collected"] for s in stats), "objects")
    print(json.dumps({"checksum": checked}))
    print(json.dumps({"libs": libs()}))


if __name__ == "__main__":
    main()
