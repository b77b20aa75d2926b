"""An allocation-heavy CPython workload for the benchmark suite.

Builds and drops many small objects the way ordinary Python programs do: dicts of records,
lists and tuples, short strings, instances of classes with __slots__, a tree of nodes, sets.
Deterministic (fixed seed); checks its own results and prints one JSON line with a checksum
that must be identical under every allocator.

    python3 py_workload.py [scale [size]]
        scale 1.0 (4 rounds) takes about 1-3 s on one core; size (default 1.0) multiplies the
        number of objects of every phase (bench/run.py counts instructions at size 0.25)
"""
import json
import random
import sys


class Point:
    __slots__ = ("x", "y", "label")

    def __init__(self, x, y, label):
        self.x = x
        self.y = y
        self.label = label


class Node:
    __slots__ = ("key", "payload", "children")

    def __init__(self, key, payload):
        self.key = key
        self.payload = payload
        self.children = []


def records(rng, n):
    """Dicts of small strings, lists and tuples; grouped, filtered, half of them dropped."""
    rows = []
    for i in range(n):
        rows.append({
            "id": i,
            "name": "user%d" % i,
            "city": "city%d" % rng.randrange(50),
            "tags": ["t%d" % rng.randrange(20) for _ in range(rng.randrange(1, 5))],
            "pos": (rng.random(), rng.random()),
        })
    by_city = {}
    for row in rows:
        by_city.setdefault(row["city"], []).append(row)
    assert sum(len(v) for v in by_city.values()) == n
    tag_count = {}
    for row in rows:
        for tag in row["tags"]:
            tag_count[tag] = tag_count.get(tag, 0) + 1
    kept = [r for r in rows if r["id"] % 2 == 0]
    del rows, by_city
    kept.sort(key=lambda r: (r["city"], r["name"]))
    assert len(kept) == (n + 1) // 2
    return len(kept) + sum(tag_count.values())


def points(rng, n):
    """Objects with __slots__ and float arithmetic producing temporaries."""
    pts = [Point(rng.uniform(-1, 1), rng.uniform(-1, 1), "p" + str(i)) for i in range(n)]
    inside = [p for p in pts if p.x * p.x + p.y * p.y <= 1.0]
    moved = [Point(p.x + 0.5, p.y - 0.5, p.label + "'") for p in inside]
    assert all(m.label.endswith("'") for m in moved)
    count = len(inside)
    del pts, inside, moved
    return count


def strings(rng, n):
    """Short strings split, joined, formatted and counted."""
    words = ["w%x" % rng.randrange(4096) for _ in range(n)]
    lines = [" ".join(words[i:i + 8]) for i in range(0, n, 8)]
    counts = {}
    for line in lines:
        for word in line.split():
            counts[word] = counts.get(word, 0) + 1
    assert sum(counts.values()) == n
    report = ["%s=%d" % (k, v) for k, v in sorted(counts.items())]
    return len(report) + len("".join(report[:100]))


def tree(rng, n):
    """A random tree of nodes holding tuples, walked depth first and then dropped."""
    nodes = [Node(0, (0, "root"))]
    for i in range(1, n):
        parent = nodes[rng.randrange(len(nodes))]
        child = Node(i, (i, str(i), i * 0.5))
        parent.children.append(child)
        nodes.append(child)
    total, stack = 0, [nodes[0]]
    while stack:
        node = stack.pop()
        total += node.payload[0]
        stack.extend(node.children)
    assert total == n * (n - 1) // 2
    del nodes, stack
    return total % 1000003


def tuples_and_sets(rng, n):
    """Tuples built, zipped, sorted and deduplicated through sets and frozensets."""
    pairs = [(rng.randrange(1000), rng.randrange(1000)) for _ in range(n)]
    uniq = set(pairs)
    keyed = {p: (p[1], p[0]) for p in uniq}
    swapped = sorted(keyed.values())
    groups = {frozenset((a % 7, b % 7)) for a, b in swapped}
    return len(uniq) + len(groups)


def mapped_allocators():
    names = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                name = line.rstrip().rsplit("/", 1)[-1]
                if ".so" in name and ("malloc" in name or "pyarena" in name):
                    names.add(name)
    except OSError:
        pass
    return sorted(names)


def peak_rss_kib():
    """VmHWM of this process (its peak resident size), in KiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    size = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    n = lambda k: max(8, int(k * size))  # noqa: E731
    rng = random.Random(20240601)
    checksum = 0
    for rnd in range(max(1, round(4 * scale))):
        checksum = (checksum * 31 + records(rng, n(40000))) % (1 << 61)
        checksum = (checksum * 31 + points(rng, n(60000))) % (1 << 61)
        checksum = (checksum * 31 + strings(rng, n(80000))) % (1 << 61)
        checksum = (checksum * 31 + tree(rng, n(50000))) % (1 << 61)
        checksum = (checksum * 31 + tuples_and_sets(rng, n(60000))) % (1 << 61)
    print(json.dumps({"checksum": checksum, "peak_rss_kib": peak_rss_kib(),
                      "libs": ",".join(mapped_allocators())}))


if __name__ == "__main__":
    main()
