#!/usr/bin/env python3
"""check_stats.py — runs the stats programs under the preload and checks every figure of the
report against the known pattern (stats_pattern.c). Prints PASS/FAIL per case and the closing
line 'N passed, N failed'."""
import json, os, subprocess, sys, tempfile

build, lib = sys.argv[1], os.path.abspath(sys.argv[2])
prog = os.path.abspath(os.path.join(build, "tests", "stats_pattern"))
results = []


def run(args, cwd=None, stderr=subprocess.PIPE, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("PYARENA_")}
    e.update(env)
    e["LD_PRELOAD"] = lib
    return subprocess.run(args, env=e, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                          timeout=60)


def case(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
        except Exception as ex:  # noqa: BLE001 — any failure is reported by name
            results.append((name, f"{type(ex).__name__}: {ex}"))
        return fn
    return wrap


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def report(mode):
    r = run([prog, mode], PYARENA_STATS="1", PYARENA_STATS_FORMAT="json")
    expect(r.returncode == 0, f"exit {r.returncode}: {r.stderr}")
    return json.loads(r.stderr)


def cls(rep, size):
    return next(c for c in rep["small"]["classes"] if c["size"] == size)


@case("json report matches the allocation pattern")
def _():
    base, pat = report("0"), report("1")
    expect(pat["schema"] == 1 and isinstance(pat["pid"], int), "schema/pid")
    classes = pat["small"]["classes"]
    expect([c["size"] for c in classes] == list(range(16, 513, 16)), "32 classes 16..512")
    expect(pat["small"]["threshold"] == 512, "threshold")
    d = lambda size, key: cls(pat, size)[key] - cls(base, size)[key]  # noqa: E731
    expect(d(112, "allocs") == 1500, f"class 112 allocs +{d(112, 'allocs')}")
    expect(d(112, "in_use") == 1000, f"class 112 in_use +{d(112, 'in_use')}")
    expect(d(112, "frees") == 500, f"class 112 frees +{d(112, 'frees')}")
    expect(d(48, "allocs") == 300 and d(48, "in_use") == 150 and d(48, "frees") == 150,
           f"class 48: {cls(pat, 48)} vs {cls(base, 48)}")
    c112 = cls(pat, 112)
    expect(c112["pools"] >= 1000 // 36 + 1, f"class 112 pools {c112['pools']} (36 blocks a pool)")
    expect(c112["in_use"] + c112["free"] == c112["pools"] * (4096 // 112), "in_use + free = capacity")
    s, b = pat["summary"], base["summary"]
    # the edge cases of the waste table: malloc(0), low byte 0, class 512, realloc in place
    edge_req, edge_waste = 0 * 20 + 256 * 30 + 500 * 40 + 241 * 10, 16 * 20 + 0 + 12 * 40 + 15 * 10
    expect(s["requested_bytes"] - b["requested_bytes"] == 1000 * 100 + 150 * 40 + edge_req,
           f"requested +{s['requested_bytes'] - b['requested_bytes']}")
    expect(s["waste_bytes"] - b["waste_bytes"] == 1000 * 12 + 150 * 8 + edge_waste,
           f"waste +{s['waste_bytes'] - b['waste_bytes']}")
    expect(s["block_bytes"] - b["block_bytes"] == 1000 * 112 + 150 * 48 + 16 * 20 + 256 * 40 + 512 * 40,
           "block bytes")
    expect(d(256, "in_use") == 40 and d(512, "in_use") == 40 and d(16, "in_use") == 20,
           f"edge classes: 16 +{d(16, 'in_use')}, 256 +{d(256, 'in_use')}, 512 +{d(512, 'in_use')}")
    expect(s["block_bytes"] == s["requested_bytes"] + s["waste_bytes"], "blocks = requested + waste")
    expect(s["threads"] == b["threads"] == 2, f"threads {s['threads']} vs {b['threads']}")
    expect(s["remote_frees"] - b["remote_frees"] == 50, f"remote frees {s['remote_frees']}")
    L, BL = pat["large"], base["large"]
    expect(L["in_use"] - BL["in_use"] == 10, f"large in_use +{L['in_use'] - BL['in_use']}")
    expect(L["bytes"] - BL["bytes"] >= 10 * 100000, "large bytes")
    expect(L["allocs"] - BL["allocs"] >= 10 and L["frees"] == L["allocs"] - L["in_use"], "large counts")
    h = {e["le"]: e["count"] for e in L["histogram"]}
    hb = {e["le"]: e["count"] for e in BL["histogram"]}
    expect(h.get(131072, 0) - hb.get(131072, 0) == 10, f"histogram {L['histogram']}")
    a = pat["arenas"]
    expect(a["size"] == 262144 and a["current"] >= 1 and a["peak"] >= a["current"], f"arenas {a}")
    expect(a["allocated"] - a["released"] == a["current"], "arenas allocated - released = current")
    expect(s["arena_bytes"] == a["current"] * 262144, "arena bytes")
    p = pat["process"]
    expect(0 < p["rss"] <= p["peak_rss"], f"process {p}")


@case("text report has the summary and the class table")
def _():
    r = run([prog, "1"], PYARENA_STATS="stderr")
    out = r.stderr
    expect(out.startswith("pyarena stats, pid "), out[:80])
    for label in ("requested, live", "internal waste", "arenas mapped", "resident (VmRSS)",
                  "peak resident", "remote frees", "size  pools     in use       free"):
        expect(label in out, f"missing {label!r}")
    row = next(l for l in out.splitlines() if l.split()[:1] == ["112"])
    size, pools, in_use, free, allocs, frees = map(int, row.split())
    expect(in_use >= 1000 and allocs >= 1500 and in_use + free == pools * 36, f"row {row!r}")
    expect("large path (jemalloc): " in out and "<= 128.0 KiB" in out, "large section")


@case("%p names one file per process, forked child included")
def _():
    with tempfile.TemporaryDirectory() as d:
        r = run([prog, "fork"], PYARENA_STATS=os.path.join(d, "stats-%p.json"),
                PYARENA_STATS_FORMAT="json")
        parent, child = map(int, r.stdout.split())
        files = sorted(os.listdir(d))
        expect(files == sorted([f"stats-{parent}.json", f"stats-{child}.json"]), f"files {files}")
        for pid in (parent, child):
            with open(os.path.join(d, f"stats-{pid}.json")) as f:
                expect(json.load(f)["pid"] == pid, f"pid inside stats-{pid}.json")


@case("the report goes where PYARENA_STATS said at start-up, though the program wrote over it")
def _():
    with tempfile.TemporaryDirectory() as d:
        r = run([prog, "title"], cwd=d, PYARENA_STATS=os.path.join(d, "report.txt"))
        expect(r.returncode == 0 and r.stderr == "", f"exit {r.returncode}: {r.stderr[:200]!r}")
        files = os.listdir(d)
        expect(files == ["report.txt"], f"files {files}")
        with open(os.path.join(d, "report.txt")) as f:
            expect("pyarena stats, pid" in f.read(), "report.txt holds the report")
    r = run([prog, "title"], PYARENA_STATS="1")
    expect("pyarena stats, pid" in r.stderr, f"stderr {r.stderr[:200]!r}")
    r = run([prog, "0"], PYARENA_STATS="/tmp/" + "x" * 4096)
    expect(r.returncode == 0 and r.stderr.startswith(
        "pyarena: PYARENA_STATS names a path longer than 4095 bytes; no report") and
        "pyarena stats" not in r.stderr, f"stderr {r.stderr[:200]!r}")


@case("a relative PYARENA_STATS is where the program started, though it changed directory")
def _():
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "elsewhere"))
        r = run([prog, "chdir", "elsewhere"], cwd=d, PYARENA_STATS="stats-%p.txt")
        expect(r.returncode == 0 and r.stderr == "", f"exit {r.returncode}: {r.stderr[:200]!r}")
        files = sorted(os.listdir(d))
        expect(len(files) == 2 and files[0] == "elsewhere" and files[1].startswith("stats-") and
               os.listdir(os.path.join(d, "elsewhere")) == [], f"files {files}")


@case("report reaches stderr even when the program closed it")
def _():
    r = run([prog, "close"], PYARENA_STATS="1")
    expect(r.returncode == 0 and "pyarena stats, pid" in r.stderr, f"stderr {r.stderr[:200]!r}")


@case("a descriptor that took the place of pyarena's copy of stderr does not get the report")
def _():
    with tempfile.TemporaryDirectory() as d:
        other = os.path.join(d, "other")
        r = run([prog, "reuse", other], PYARENA_STATS="1")
        expect(r.returncode == 0 and "pyarena stats, pid" in r.stderr, f"stderr {r.stderr[:200]!r}")
        with open(other) as f:
            expect(f.read() == "", "the program's own file holds nothing")
        # stderr closed too and the same file in its place: no report anywhere
        r = run([prog, "reuse", other, "all"], PYARENA_STATS="1")
        expect(r.returncode == 0 and r.stderr == "", f"stderr {r.stderr[:200]!r}")
        with open(other) as f:
            expect(f.read() == "", "with fd 2 replaced too, the program's file holds nothing")
        # stderr a log file, which the program reopens read-only in the duplicate's place:
        # the report still reaches the log through fd 2
        log = os.path.join(d, "log")
        with open(log, "w") as err:
            rc = run([prog, "reuse", log, "ro"], stderr=err, PYARENA_STATS="1").returncode
        with open(log) as f:
            expect(rc == 0 and "pyarena stats, pid" in f.read(), "report in the log through fd 2")


@case("nothing at all when PYARENA_STATS is unset or 0")
def _():
    for env in ({}, {"PYARENA_STATS": "0"}):
        r = run([prog, "1"], **env)
        expect(r.returncode == 0 and r.stderr == "" and r.stdout == "", f"{env}: {r.stderr[:100]!r}")


@case("bad settings get a clear message")
def _():
    r = run([prog, "0"], PYARENA_STATS="1", PYARENA_STATS_FORMAT="xml", PYARENA_ARENA_CACHE="lots",
            PYARENA_THREAD_CACHE="17", PYARENA_SPARE_POOLS="-1", PYARENA_DECAY_MS="12x",
            PYARENA_DIRTY_MAX="99999999999999999999999")
    expect("PYARENA_STATS_FORMAT=xml: expected text or json; using text" in r.stderr, r.stderr[:300])
    expect("PYARENA_ARENA_CACHE=lots: expected a whole number from 0 to 1024; using 2" in r.stderr,
           r.stderr[:300])
    expect("PYARENA_THREAD_CACHE=17: expected a whole number from 0 to 16; using 1" in r.stderr,
           r.stderr[:300])
    expect("PYARENA_SPARE_POOLS=-1: expected a whole number from 0 to 65536; using 512"
           in r.stderr, r.stderr[:400])
    expect("PYARENA_DECAY_MS=12x: expected a whole number from 0 to 3600000; using 1000"
           in r.stderr, r.stderr[:600])
    expect("PYARENA_DIRTY_MAX=99999999999999999999999: expected a whole number from 0 to 16777216;"
           " using 16384" in r.stderr, r.stderr[:700])
    expect("pyarena stats, pid" in r.stderr, "report still printed as text")


@case("an unwritable stats file is reported, the program unharmed")
def _():
    r = run([prog, "1"], PYARENA_STATS="/nonexistent-dir/stats-%p.txt")
    expect(r.returncode == 0, f"exit {r.returncode}")
    expect("pyarena: cannot write stats to /nonexistent-dir/stats-" in r.stderr, r.stderr[:200])


@case("pyarena_stats_print from a program linked with -lpyarena")
def _():
    e = {k: v for k, v in os.environ.items() if not k.startswith("PYARENA_")}
    r = subprocess.run([os.path.join(build, "tests", "stats_link")], env=e, capture_output=True,
                       text=True, timeout=60)
    expect(r.returncode == 0, f"exit {r.returncode}")
    rep = json.loads(r.stdout)
    expect(cls(rep, 304)["in_use"] >= 64, f"class 304: {cls(rep, 304)}")
    expect(rep["summary"]["requested_bytes"] is None, "request sizes untracked without PYARENA_STATS")


@case("secure execution: a setuid program writes no stats file")
def _():
    import pwd, shutil, stat
    if os.geteuid() != 0:
        results.append(("secure execution (skipped: needs root to make a setuid program)", None))
        return
    nobody = pwd.getpwnam("nobody").pw_uid
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o777)                  # writable by anyone: only secure mode keeps it empty
        exe = os.path.join(d, "stats_link")
        shutil.copy(os.path.join(build, "tests", "stats_link"), exe)
        os.chown(exe, nobody, -1)
        os.chmod(exe, 0o755 | stat.S_ISUID)  # runs with euid nobody: AT_SECURE
        out = os.path.join(d, "stats-%p.txt")
        e = {k: v for k, v in os.environ.items() if not k.startswith("PYARENA_")}
        e["PYARENA_STATS"] = out
        r = subprocess.run([exe], env=e, capture_output=True, text=True, timeout=60)
        expect(r.returncode == 0, f"setuid run: exit {r.returncode} {r.stderr[:200]}")
        expect(sorted(os.listdir(d)) == ["stats_link"], f"files: {os.listdir(d)}")
        shutil.copy(os.path.join(build, "tests", "stats_link"), exe + "2")   # control: not setuid
        os.chmod(exe + "2", 0o755)
        r = subprocess.run(["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups",
                            exe + "2"], env=e, capture_output=True, text=True, timeout=60)
        expect(any(f.startswith("stats-") for f in os.listdir(d)),
               f"control run as nobody wrote no file ({r.returncode} {r.stderr[:200]}): the test proves nothing")


failed = 0
for name, err in results:
    print(("PASS " if err is None else "FAIL ") + name + ("" if err is None else f": {err}"))
    failed += err is not None
print(f"stats: {len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
