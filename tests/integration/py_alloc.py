# py_alloc.py — allocation-heavy CPython workload (run with PYTHONMALLOC=malloc so every object
# goes through malloc): dicts, lists, strings, classes, a json round-trip and reference cycles
# collected by gc. Prints a checksum the runner compares with a run without the preload.
import gc
import hashlib
import json
import os
import sys


class Node:
    def __init__(self, i):
        self.i = i
        self.peer = None
        self.tags = [str(i), hex(i)]


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a = a
        self.b = b


def main():
    h = hashlib.sha256()

    # dicts and lists of strings of many sizes
    d = {}
    for i in range(150000):
        k = "k%d" % (i * 7919 % 50021)
        d.setdefault(k, []).append("v" * (i % 300))
        if i % 5 == 0:
            d.pop("k%d" % (i * 31 % 50021), None)
    for k in sorted(d):
        h.update(k.encode())
        h.update(str(sum(map(len, d[k]))).encode())
    del d

    # string building and slicing
    parts = []
    for i in range(40000):
        s = ("%05d|" % i) * (i % 40 + 1)
        parts.append(s[i % 7: len(s) - i % 5].upper())
    joined = "".join(parts)
    h.update(joined.encode())
    h.update(str(len(joined.split("|"))).encode())
    del parts, joined

    # objects, slotted objects, sets, tuples
    objs = [Node(i) for i in range(60000)]
    sl = [Slotted(i, (i, str(i))) for i in range(60000)]
    st = {(o.i % 977, len(o.tags[1])) for o in objs}
    h.update(str(sorted(st)[:50]).encode())
    h.update(str(sum(s.a for s in sl)).encode())
    del objs, sl, st

    # json round trip
    doc = {"items": [{"id": i, "name": "n%d" % i, "vals": list(range(i % 17)),
                      "sub": {"x": i * 0.5, "y": [None, True, "s" * (i % 50)]}}
                     for i in range(20000)]}
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    assert back == doc
    h.update(hashlib.sha256(text.encode()).digest())
    del doc, back, text

    # reference cycles: only the collector frees them
    gc.collect()
    collected = 0
    for rnd in range(10):
        ring = [Node(i) for i in range(20000)]
        for i, n in enumerate(ring):
            n.peer = ring[(i + 1) % len(ring)]
            n.tags.append(n)          # self cycle through a list
        del ring, n
        collected += gc.collect()
    h.update(str(collected >= 10 * 20000).encode())

    # bytearray / bytes churn over the 512-byte small/large boundary
    acc = 0
    for i in range(100000):
        b = bytearray(i % 1100)
        b[:4] = b"abcd"[: len(b)]
        acc += len(bytes(b))
    h.update(str(acc).encode())

    print("checksum", h.hexdigest())
    print("gc_collected_enough", collected >= 10 * 20000)
    pre = os.environ.get("LD_PRELOAD", "")
    if pre:
        with open("/proc/self/maps") as f:
            maps = f.read()
        print("preload_mapped", os.path.basename(pre) in maps)
    sys.stdout.flush()


main()
