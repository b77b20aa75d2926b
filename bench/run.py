#!/usr/bin/env python3
"""pyarena benchmark runner (python3 standard library only).

Runs every benchmark program under each allocator -- pyarena (LD_PRELOAD of libpyarena.so),
glibc (no preload), jemalloc, mimalloc and tcmalloc (LD_PRELOAD of Debian's libraries) --
alternating the allocators run by run (A B C D E A B C D E ...), prints a table of medians as
ratios to pyarena (pyarena = 1.00; above 1 = slower or bigger than pyarena), and writes the
raw figures to bench/results/<date>.json and the table as an SVG to bench/results/latest.svg
(a --quick run to <date>-quick.json and latest-quick.svg, so that it leaves the last full run's
files, which the README shows, as they are).
If libpyarena.so has not been built, pyarena is skipped and glibc is the reference.

The last sections compare pyarena with itself and its handle library with CPython: the cost
of PYARENA_STATS and of each PYARENA_CHECK level (pyarena only, settings alternated run by run,
each setting's time as a ratio to the base setting's in the same run), and the handle shim
(handle/gc_bench, bench/handle_refs, bench/handle_trees with and without the preload, against
handle/gc_bench.py and bench/handle_trees.py in CPython); see handle_and_stats_jobs().

    python3 bench/run.py [--quick] [--runs N] [--only JOB,...] [--bin-dir DIR] [--lib PATH]

Normally started by `make bench` (QUICK=1 for a short run).
"""
import argparse
import atexit
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from xml.sax.saxutils import escape as xml_escape

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, dynamically linked to libc: preloads apply

# (name, soname, Debian package)
PEERS = [
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
]
CALLGRIND_ALLOCATORS = ("pyarena", "glibc", "jemalloc", "mimalloc", "tcmalloc")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# Finding and installing the peer allocators
# ----------------------------------------------------------------------------------------

def ldconfig_paths():
    """soname -> path, from the dynamic linker's cache."""
    found = {}
    for tool in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            out = subprocess.run([tool, "-p"], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        for line in out.splitlines():
            m = re.match(r"\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)", line)
            if not m:
                continue
            if platform.machine() == "x86_64" and "x86-64" not in m.group(2):
                continue  # a 32-bit or x32 copy
            found.setdefault(m.group(1), m.group(3))
        break
    return found


def find_library(soname, cache):
    if soname in cache and os.path.exists(cache[soname]):
        return cache[soname]
    arch = platform.machine()
    for d in ("/usr/lib/%s-linux-gnu" % arch, "/lib/%s-linux-gnu" % arch, "/usr/lib64", "/usr/lib"):
        path = os.path.join(d, soname)
        if os.path.exists(path):
            return path
    return None


def dpkg_installed(pkg):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                             capture_output=True, text=True).stdout
    except OSError:
        return False
    return "install ok installed" in out


def file_name(path):
    return os.path.basename(path) if path else None


def dpkg_version(pkg):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                              capture_output=True, text=True).stdout.strip() or None
    except OSError:
        return None


def ensure_packages(want_callgrind):
    """Installs the missing peers (and valgrind) with apt-get as root, else prints the command."""
    cache = ldconfig_paths()
    missing = [pkg for _, soname, pkg in PEERS if not find_library(soname, cache)]
    if want_callgrind and not shutil.which("valgrind"):
        missing.append("valgrind")
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + missing
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log("bench: missing packages: %s" % " ".join(missing))
        log("bench: to install them, run as root:  apt-get update && %s" % " ".join(cmd))
        log("bench: continuing without them")
        return
    log("bench: installing %s" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)


def allocators(lib):
    """The allocators to compare: list of dicts name/preload/package."""
    result = []
    lib = os.path.abspath(lib)
    if os.path.exists(lib):
        # Preload a private copy, so that a rebuild of the library during the run (the build
        # replaces the file) cannot mix two versions in one set of results.
        snap_dir = tempfile.mkdtemp(prefix="pyarena-bench-")
        atexit.register(shutil.rmtree, snap_dir, True)
        snap = os.path.join(snap_dir, os.path.basename(lib))
        shutil.copy2(lib, snap)
        with open(snap, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        result.append({"name": "pyarena", "preload": snap, "package": None,
                       "source": lib, "sha256": digest,
                       "built": datetime.datetime.fromtimestamp(os.path.getmtime(lib)).isoformat()})
    else:
        log("bench: %s does not exist yet (run `make`): pyarena SKIPPED, "
            "glibc is the reference" % os.path.relpath(lib, ROOT))
    result.append({"name": "glibc", "preload": None, "package": "libc6"})
    cache = ldconfig_paths()
    for name, soname, pkg in PEERS:
        path = find_library(soname, cache)
        if path:
            result.append({"name": name, "preload": path, "package": pkg})
        else:
            log("bench: %s (%s) not found: %s SKIPPED" % (soname, pkg, name))
    return result


# ----------------------------------------------------------------------------------------
# What is measured: jobs (one process each) and the metrics shown in the table
# ----------------------------------------------------------------------------------------

def jobs(bin_dir, quick):
    q = ["--quick"] if quick else []
    b = lambda name: os.path.join(bin_dir, name)  # noqa: E731
    return [
        {"name": "pairs", "argv": [b("bench_micro"), "pairs"] + q},
        {"name": "churn", "argv": [b("bench_micro"), "churn"] + q},
        {"name": "aligned", "argv": [b("bench_micro"), "aligned"] + q},
        {"name": "threads", "argv": [b("bench_threads")] + q},
        # malloc_trim(0) is called only because of --trim; "rss/after_free" is read before it.
        {"name": "rss", "argv": [b("bench_rss"), "--trim"]},
        {"name": "python", "python": True,
         "argv": [SYSTEM_PYTHON, os.path.join(HERE, "py_workload.py"), "0.5" if quick else "1"]},
    ] + handle_and_stats_jobs(bin_dir, quick)


# ---- Handle shim, stats and checks: jobs whose runs are not "one program under each
# ---- allocator" but a list of configurations (job["configs"](allocs) -> [cfg]), each with its
# ---- own argv, environment and column ("allocator" in the records), run alternately.
#
# stats, checks: pyarena only, one setting against another (stats off/on, PYARENA_CHECK 0/1/2)
#   on the churn and on malloc+free pairs of 32 B (LIFO); every run also records the ratio of
#   each setting's time to the base setting's time of the same run (paired, so slow drift of
#   the machine cancels), the figure the table shows. The order of the settings is reversed
#   on every other run.
# hgc, hrefs, htrees: programs linked with libpyarena_handle, run with libpyarena.so preloaded
#   (column "pyarena") and without any preload (column "glibc": the program's own malloc is
#   glibc's, the handles still come from libpyarena.so, the one allocator instance); the
#   CPython counterparts (gc_bench.py, handle_trees.py, CPython's own allocator) fill the
#   "pymalloc" column, so that column's ratio is CPython's cost over pyarena's.

GC_BENCH = os.path.join(ROOT, "handle", "gc_bench.py")
STATS_WORKLOADS = (("churn", "churn/time"), ("pairs32", "pairs/lifo/32"))


def trees_shape(quick):
    """(depth, rounds) of the two binary-trees runs: the second builds trees 4 times as big,
    as many nodes in all."""
    d = 12 if quick else 14
    return {"small": (d, 8), "large": (d + 2, 2)}


def handle_and_stats_jobs(bin_dir, quick):
    q = ["--quick"] if quick else []
    b = lambda name: os.path.join(bin_dir, name)  # noqa: E731
    micro = {"churn": [b("bench_micro"), "churn"] + q,
             "pairs32": [b("bench_micro"), "pairs", "--cell", "lifo/32"] + q}
    # best of 3 collections in each process (gc_bench's default; see handle/gc_bench.c)
    gc_n, gc_reps = ("200000", "3") if quick else ("1000000", "3")
    gc_c = os.path.join(os.path.dirname(bin_dir), "handle", "gc_bench")

    def settings(prefix, values, env_var):
        """[cfg] for pyarena under each setting of env_var (None: unset) on each workload."""
        def configs(allocs):
            pa = [a for a in allocs if a["name"] == "pyarena"]
            if not pa:
                return []
            out = []
            for work, argv in micro.items():
                for label, value in values:
                    env = {"PYARENA_STATS": None, "PYARENA_CHECK": None}
                    if value is not None:
                        env[env_var] = value
                    out.append(dict(pa[0], argv=argv, env=env, variant="%s/%s" % (label, work),
                                    metric_prefix="%s/%s/" % (prefix, label),
                                    setting=label, workload=work))
            return out
        return configs

    def handle_configs(c_argv, py_argv, variant=None, parse=None):
        def configs(allocs):
            out = [dict(a, argv=c_argv, variant=variant, parse=parse)
                   for a in allocs if a["name"] in ("pyarena", "glibc")]
            if not any(a["name"] == "pyarena" for a in allocs):
                return []  # no libpyarena.so: the handle library cannot exist either
            if py_argv and os.path.exists(SYSTEM_PYTHON):
                out.append({"name": "pymalloc", "preload": None, "package": None,
                            "argv": py_argv, "variant": variant, "parse": parse})
            return out
        return configs

    def trees_configs(allocs):
        out = []
        for role, (depth, rounds) in trees_shape(quick).items():
            args = [str(depth), str(rounds)]
            for cfg in handle_configs([b("handle_trees")] + args,
                                      [SYSTEM_PYTHON, os.path.join(HERE, "handle_trees.py")] + args,
                                      variant=role)(allocs):
                cfg["rename"] = ("htrees/d%d/" % depth, "htrees/%s/" % role)
                out.append(cfg)
        return out

    return [
        {"name": "stats", "configs": settings("stats", (("off", None), ("on", "/dev/null")),
                                              "PYARENA_STATS"),
         "compare": ("stats", "off"), "min_runs": 5 if quick else 11},
        {"name": "checks", "configs": settings("checks", (("0", "0"), ("1", "1"), ("2", "2")),
                                               "PYARENA_CHECK"),
         "compare": ("checks", "1"), "min_runs": 5 if quick else 9},
        {"name": "hgc", "argv": [gc_c],
         "configs": handle_configs([gc_c, gc_n, gc_reps, "both"],
                                   [SYSTEM_PYTHON, GC_BENCH, gc_n, gc_reps, "both"],
                                   parse=parse_gc_bench)},
        {"name": "hrefs", "argv": [b("handle_refs")],
         "configs": handle_configs([b("handle_refs")] + q, None)},
        {"name": "htrees", "argv": [b("handle_trees")], "configs": trees_configs},
    ]


GC_BENCH_LINE = re.compile(r"^(?:pyarena handles|CPython \S+)\s+(ring|chord)\s+N=(\d+)\s+"
                           r"garbage:\s*([\d.]+) ns/object\s+live:\s*([\d.]+) ns/object\s*$")


def parse_gc_bench(stdout):
    """handle/gc_bench(.py)'s text lines -> [(metric, value, unit)] (hgc/SHAPE/garbage|live);
    [] (a failed run) unless both shapes were reported."""
    out = []
    for line in stdout.splitlines():
        m = GC_BENCH_LINE.match(line.strip())
        if m:
            out.append(("hgc/%s/garbage" % m.group(1), float(m.group(3)), "ns/object"))
            out.append(("hgc/%s/live" % m.group(1), float(m.group(4)), "ns/object"))
    return out if len({metric for metric, _, _ in out}) == 4 else []


def derive_ratios(job, run_recs):
    """For a job with "compare": (prefix, base setting), the records of one run -> a record of
    prefix/SETTING/WORKLOAD = time under SETTING / time under the base setting (unit "x")."""
    prefix, base = job["compare"]
    if not run_recs or any("error" in r for r in run_recs):
        return None  # the failed run's record marks the job failed already
    times = {}
    for r in run_recs:
        for m, v in r["metrics"].items():
            if m == "%s/%s/%s" % (prefix, r["setting"], dict(STATS_WORKLOADS)[r["workload"]]):
                times[(r["setting"], r["workload"])] = v
    rec = {"job": job["name"], "allocator": "pyarena", "derived": True, "run": run_recs[0]["run"],
           "metrics": {}, "units": {}}
    for (setting, work), v in sorted(times.items()):
        b = times.get((base, work))
        if setting != base and b:
            m = "%s/%s/%s" % (prefix, setting, work)
            rec["metrics"][m] = v / b
            rec["units"][m] = "x"
    return rec


SIZES = (16, 32, 48, 64, 128, 256, 512, 1024, 4096, 65536)


def _size(n):
    return "%d KiB" % (n // 1024) if n >= 1024 else "%d B" % n


# Table sections: (title, [(metric key, label)]). Lower is better for every row.
BASE_SECTIONS = [
    ("Small objects, one thread", [
        ("pairs/%s/%d" % (o, s), "malloc+free %s, %s" % (_size(s), o.upper() if o != "random" else "random"))
        for s in SIZES for o in ("lifo", "fifo", "random")
    ] + [
        ("churn/time", "churn, sizes 8-512 (per step)"),
        ("aligned/time", "posix_memalign/aligned_alloc 16-4096"),
    ]),
    ("Threads", [
        ("own/1", "own blocks, 1 thread (per step)"),
        ("own/2", "own blocks, 2 threads (aggregate)"),
        ("own/4", "own blocks, 4 threads (aggregate)"),
        ("pc/1", "producer/consumer, 1 pair (per block)"),
        ("pc/2", "producer/consumer, 2 pairs (per block)"),
    ]),
    ("Memory", [
        ("churn/peak_rss", "churn: peak RSS (VmHWM)"),
        ("churn/base_rss", "churn: RSS before the heap grows"),
        ("churn/heap_rss", "churn: peak RSS minus that"),
        ("rss/full", "4M small blocks: RSS"),
        ("rss/after_free", "4M blocks, 90% freed: RSS"),
        ("rss/after_trim", "... then malloc_trim(0): RSS"),
    ]),
    ("CPython (py_workload.py)", [
        ("python/time", "python3 workload: wall time"),
        ("python/peak_rss", "python3 workload: peak RSS"),
        ("python/instr", "python3 workload: instructions per round"),
    ]),
    ("Fast path (callgrind)", [
        ("fastpath/instr", "instructions per malloc(32)+free"),
    ]),
]


def sections(quick):
    """BASE_SECTIONS and the handle shim, stats and checks sections (their labels name the
    sizes of the QUICK or full run)."""
    t = trees_shape(quick)
    (ds, rs), (dl, rl) = t["small"], t["large"]
    stats = []
    for work, label in (("churn", "churn"), ("pairs32", "malloc+free 32 B, LIFO")):
        stats.append(("stats/on/%s" % work, "stats on / off: %s" % label))
    checks = []
    for level in ("0", "2"):
        for work, label in (("churn", "churn"), ("pairs32", "malloc+free 32 B, LIFO")):
            checks.append(("checks/%s/%s" % (level, work), "level %s / 1: %s" % (level, label)))
    gc_n = "N=200k" if quick else "N=1M"
    handles = [
        ("hgc/ring/garbage", "gc: ring of %s, garbage (per object)" % gc_n),
        ("hgc/ring/live", "gc: ring, all live (per object)"),
        ("hgc/chord/garbage", "gc: random chords, garbage (per object)"),
        ("hgc/chord/live", "gc: random chords, all live (per object)"),
        ("hrefs/time", "pa_incref+pa_decref (per pair)"),
        ("hrefs/instr", "pa_incref+pa_decref: instructions"),
        ("htrees/small/time", "trees d%d, %d rounds: time" % (ds, rs)),
        ("htrees/small/hwm_half", "trees d%d: peak RSS after %d rounds" % (ds, (rs + 1) // 2)),
        ("htrees/small/hwm", "trees d%d: peak RSS after %d rounds" % (ds, rs)),
        ("htrees/large/time", "trees d%d, %d rounds (same nodes): time" % (dl, rl)),
        ("htrees/large/hwm", "trees d%d: peak RSS" % dl),
    ]
    return BASE_SECTIONS + [
        ("Handle shim and stats: stats cost (pyarena only; PYARENA_STATS on / off, same run)",
         stats),
        ("Handle shim and stats: handles (pyarena = preloaded, glibc = no preload, "
         "pymalloc = CPython)", handles),
        ("Handle shim and stats: checks (pyarena only; PYARENA_CHECK level / 1, same run)",
         checks),
    ]


# ----------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------

def base_env(extra=None):
    """The environment of a run; extra: variables to set (a value of None removes one)."""
    env = dict(os.environ)
    for var in ("LD_PRELOAD", "PYTHONMALLOC", "PYARENA_STATS"):
        env.pop(var, None)
    for var, value in (extra or {}).items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    return env


def run_process(argv, env, timeout):
    """Runs argv; returns (returncode, wall seconds, max RSS KiB, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        timed_out = threading.Event()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

        def kill():
            timed_out.set()
            proc.kill()
        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # blocking: exact wall time, child's rusage
        wall = time.perf_counter() - t0
        timer.cancel()
        proc.returncode = 0  # reaped here; keep Popen from waiting again
        if timed_out.is_set():
            status = -1
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if status == -1:
        rc = "timeout"
    elif os.WIFSIGNALED(status):
        rc = -os.WTERMSIG(status)
    else:
        rc = os.WEXITSTATUS(status)
    return rc, wall, usage.ru_maxrss, stdout, stderr


def expected_lib(alloc):
    return os.path.basename(os.path.realpath(alloc["preload"])) if alloc["preload"] else None


def alloc_env(alloc, python=False):
    """The environment of a run under alloc: its preload, and for CPython under any allocator
    but pymalloc, PYTHONMALLOC=malloc (else CPython keeps small objects to itself)."""
    env = base_env(alloc.get("env"))
    if alloc.get("preload"):
        env["LD_PRELOAD"] = alloc["preload"]
    if python and alloc["name"] != "pymalloc":
        env["PYTHONMALLOC"] = "malloc"
    return env


def run_job_once(job, alloc, timeout):
    """One run of a job under an allocator -- or, for the jobs with "configs", under one
    configuration: an allocator dict with its own argv, env, metric_prefix, rename (old
    prefix, new prefix), parse (stdout -> [(metric, value, unit)] for programs that print
    text; they print no libs line) and variant (which run's checksum to compare with)."""
    env = alloc_env(alloc, job.get("python"))
    rc, wall, maxrss, stdout, stderr = run_process(alloc.get("argv") or job["argv"], env, timeout)
    rec = {"job": job["name"], "allocator": alloc["name"], "rc": rc, "wall_s": wall,
           "maxrss_mib": maxrss / 1024.0, "metrics": {}, "units": {}}
    for key in ("variant", "setting", "workload"):
        if alloc.get(key):
            rec[key] = alloc[key]
    libs = python_hwm = pyarena_path = None
    results = []
    for line in stdout.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if "metric" in obj:
            results.append((obj["metric"], obj["value"], obj["unit"]))
        if "libs" in obj:
            libs = [l.replace(" (deleted)", "") for l in obj["libs"].split(",") if l]
        if "pyarena_path" in obj:
            pyarena_path = obj["pyarena_path"]
        if "checksum" in obj:
            rec["checksum"] = obj["checksum"]
            python_hwm = obj.get("peak_rss_kib")
    if alloc.get("parse"):
        results = alloc["parse"](stdout)
    for metric, value, unit in results:
        old, new = alloc.get("rename") or ("", "")
        if old and metric.startswith(old):
            metric = new + metric[len(old):]
        metric = alloc.get("metric_prefix", "") + metric
        rec["metrics"][metric] = value
        rec["units"][metric] = unit
    if job.get("python"):
        rec["metrics"]["python/time"] = wall
        rec["units"]["python/time"] = "s"
        if python_hwm is not None:  # the workload's own VmHWM (ru_maxrss of a child spawned
            # by this runner can include the runner's size at the fork)
            rec["metrics"]["python/peak_rss"] = python_hwm / 1024.0
            rec["units"]["python/peak_rss"] = "MiB"
    error = None
    if rc != 0:
        lines = [l for l in stderr.splitlines() if l.strip()]
        error = "exit %s: %s" % (rc, lines[-1] if lines else "(no message)")
    elif alloc.get("parse"):
        if not results:
            error = "result lines missing on stdout"
    elif libs is None:
        error = "no result line (libs) on stdout"
    elif expected_lib(alloc) and expected_lib(alloc) not in libs:
        error = "preload %s was not mapped (saw %s)" % (expected_lib(alloc), ",".join(libs))
    elif pyarena_path and alloc["name"] == "pyarena" and pyarena_path != alloc["preload"]:
        # the handle programs link libpyarena.so: the preloaded copy must be the one in use
        error = "libpyarena.so in use is %s, not the preloaded %s" % (pyarena_path, alloc["preload"])
    if error:
        rec["error"] = error
    return rec


def callgrind_total(argv, env, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + argv
        rc, wall, _, _, stderr = run_process(cmd, env, timeout)
        if rc != 0:
            lines = [l for l in stderr.splitlines() if l.strip() and "==" not in l[:2]]
            raise RuntimeError("exit %s: %s" % (rc, (lines or stderr.splitlines() or ["?"])[-1]))
        with open(out) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    return int(line.split()[1]), wall
    raise RuntimeError("no totals in callgrind output")


def run_callgrind(bin_dir, allocs, quick, timeout, progress):
    """Instructions per malloc(32)+free pair: (I(2N) - I(N)) / N, minus the harness loop."""
    n = 100000 if quick else 400000
    prog = os.path.join(bin_dir, "bench_fastpath")
    records = []
    env = base_env()
    try:
        i1, _ = callgrind_total([prog, str(n), "--harness"], env, timeout)
        i2, w = callgrind_total([prog, str(2 * n), "--harness"], env, timeout)
        harness = (i2 - i1) / n
        progress("callgrind", "harness", "%.1f instr/loop" % harness, w)
    except (RuntimeError, OSError) as e:
        log("bench: callgrind harness failed (%s): fast-path row skipped" % e)
        return [], None
    for alloc in allocs:
        if alloc["name"] not in CALLGRIND_ALLOCATORS:
            continue
        env = alloc_env(alloc)
        rec = {"job": "fastpath", "allocator": alloc["name"], "metrics": {}, "units": {}}
        try:
            a, _ = callgrind_total([prog, str(n)], env, timeout)
            b, w = callgrind_total([prog, str(2 * n)], env, timeout)
            rec["metrics"]["fastpath/instr"] = (b - a) / n - harness
            rec["metrics"]["fastpath/instr_raw"] = (b - a) / n
            rec["units"]["fastpath/instr"] = rec["units"]["fastpath/instr_raw"] = "instr/pair"
            rec["totals"] = {"N": n, "I_N": a, "I_2N": b}
            progress("callgrind", alloc["name"], "%.1f instr/pair" % rec["metrics"]["fastpath/instr"], w)
        except (RuntimeError, OSError) as e:
            rec["error"] = str(e)
            progress("callgrind", alloc["name"], "FAIL " + str(e), 0)
        records.append(rec)
    return records, harness


def run_python_callgrind(allocs, timeout, progress):
    """Instructions of one round of py_workload.py at a quarter of its size, under each
    allocator and CPython's own: I(2 rounds) - I(1 round), so that the interpreter's start-up
    cancels. Deterministic, where the workload's time on a shared machine is not. Two minutes:
    not in QUICK runs."""
    size = "0.25"
    argv = lambda rounds: [SYSTEM_PYTHON, os.path.join(HERE, "py_workload.py"),  # noqa: E731
                           "%g" % (rounds / 4.0), size]
    records = []
    for alloc in [a for a in allocs if a["name"] in CALLGRIND_ALLOCATORS] + [
            {"name": "pymalloc", "preload": None}]:
        env = alloc_env(alloc, python=True)
        rec = {"job": "python_cg", "allocator": alloc["name"], "metrics": {}, "units": {}}
        try:
            a, _ = callgrind_total(argv(1), env, timeout)
            b, w = callgrind_total(argv(2), env, timeout)
            rec["metrics"]["python/instr"] = (b - a) / 1e6
            rec["units"]["python/instr"] = "Minstr"
            rec["totals"] = {"size": float(size), "I_1": a, "I_2": b}
            progress("python_cg", alloc["name"], "%.1f M instr/round" % ((b - a) / 1e6), w)
        except (RuntimeError, OSError) as e:
            rec["error"] = str(e)
            progress("python_cg", alloc["name"], "FAIL " + str(e), 0)
        records.append(rec)
    return records


def run_hrefs_callgrind(bin_dir, allocs, timeout, progress):
    """Instructions per pa_incref+pa_decref pair (handle_refs N, as run_callgrind does)."""
    n = 1000000
    prog = os.path.join(bin_dir, "handle_refs")
    records = []
    try:
        i1, _ = callgrind_total([prog, str(n), "--harness"], base_env(), timeout)
        i2, w = callgrind_total([prog, str(2 * n), "--harness"], base_env(), timeout)
        harness = (i2 - i1) / n
        progress("hrefs_cg", "harness", "%.1f instr/loop" % harness, w)
    except (RuntimeError, OSError) as e:
        log("bench: callgrind harness of handle_refs failed (%s): row skipped" % e)
        return []
    for alloc in allocs:
        if alloc["name"] not in ("pyarena", "glibc"):
            continue
        env = alloc_env(alloc)
        rec = {"job": "hrefs_cg", "allocator": alloc["name"], "metrics": {}, "units": {}}
        try:
            a, _ = callgrind_total([prog, str(n)], env, timeout)
            b, w = callgrind_total([prog, str(2 * n)], env, timeout)
            rec["metrics"]["hrefs/instr"] = (b - a) / n - harness
            rec["metrics"]["hrefs/instr_raw"] = (b - a) / n
            rec["units"]["hrefs/instr"] = rec["units"]["hrefs/instr_raw"] = "instr/pair"
            rec["totals"] = {"N": n, "I_N": a, "I_2N": b, "harness": harness}
            progress("hrefs_cg", alloc["name"], "%.1f instr/pair" % rec["metrics"]["hrefs/instr"], w)
        except (RuntimeError, OSError) as e:
            rec["error"] = str(e)
            progress("hrefs_cg", alloc["name"], "FAIL " + str(e), 0)
        records.append(rec)
    return records


# ----------------------------------------------------------------------------------------
# Summaries, table, SVG
# ----------------------------------------------------------------------------------------

def summarize(records):
    """{allocator: {metric: {...}}}; a metric that failed in any run is marked failed."""
    values, failed, units = {}, {}, {}
    for rec in records:
        a = rec["allocator"]
        if "error" in rec:
            failed.setdefault(a, {})[rec["job"]] = rec["error"]
            continue
        for m, v in rec["metrics"].items():
            values.setdefault(a, {}).setdefault(m, []).append(v)
            units[m] = rec["units"].get(m, "")
    summary = {}
    for a, ms in values.items():
        for m, vs in ms.items():
            vs = sorted(vs)
            q = statistics.quantiles(vs, n=4, method="inclusive") if len(vs) > 1 else [vs[0]] * 3
            summary.setdefault(a, {})[m] = {
                "median": statistics.median(vs), "min": vs[0], "max": vs[-1],
                "q1": q[0], "q3": q[2], "n": len(vs), "unit": units[m]}
    job_of = {}
    for rec in records:
        for m in rec["metrics"]:
            job_of[m] = rec["job"]
    for a, jobs_failed in failed.items():
        for m, job in job_of.items():
            if job in jobs_failed:
                summary.setdefault(a, {})[m] = {"failed": jobs_failed[job]}
    return summary


def spread(s):
    """Half the min-max range, in percent of the median."""
    if s["median"] == 0 or s["n"] < 2:
        return None
    return 50.0 * (s["max"] - s["min"]) / abs(s["median"])


def fmt_abs(v, unit):
    if abs(v) >= 100:
        txt = "%.0f" % v
    elif abs(v) >= 10:
        txt = "%.1f" % v
    else:
        txt = "%.2f" % v
    return "%s %s" % (txt, unit)


def table_rows(summary, ref, columns, quick):
    """[(section title, [(label, unit, [cell dict per column])])] for the rows that have data."""
    out = []
    for title, rows in sections(quick):
        section = []
        for key, label in rows:
            cells, any_data = [], False
            unit = ""
            for col in columns:
                s = summary.get(col, {}).get(key)
                if s is None:
                    cells.append({"kind": "none"})
                    continue
                any_data = True
                if "failed" in s:
                    cells.append({"kind": "fail", "error": s["failed"]})
                    continue
                unit = s["unit"]
                r = summary.get(ref, {}).get(key)
                if col == ref:
                    cells.append({"kind": "ref", "value": s["median"], "spread": spread(s)})
                elif r is None or "failed" in r or r["median"] == 0:
                    cells.append({"kind": "abs", "value": s["median"], "spread": spread(s)})
                else:
                    cells.append({"kind": "ratio", "value": s["median"] / r["median"],
                                  "spread": spread(s)})
            if any_data:
                section.append((label, unit, cells))
        out.append((title, section))
    return out


def cell_text(c, unit):
    sp = "" if c.get("spread") is None else " ±%.0f%%" % c["spread"]
    if c["kind"] == "none":
        return "-"
    if c["kind"] == "fail":
        return "FAIL"
    if c["kind"] == "ratio":
        # deterministic counts differ by less than a percent: three decimals show it
        return ("%.3f%s" if unit == "Minstr" else "%.2f%s") % (c["value"], sp)
    if unit == "x":  # a setting's time over the base setting's (stats, checks)
        return "%.3f (%+.1f%%)%s" % (c["value"], 100.0 * (c["value"] - 1.0), sp)
    return fmt_abs(c["value"], unit) + sp


def print_table(rows, columns, ref, header):
    label_w = max([len(l) for _, sec in rows for l, _, _ in sec] + [20]) + 2
    col_w = [max(12, len(c) + 2) for c in columns]
    texts = {}
    for _, sec in rows:
        for label, unit, cells in sec:
            texts[label] = [cell_text(c, unit) for c in cells]
            col_w = [max(w, len(t) + 2) for w, t in zip(col_w, texts[label])]
    lines = [header, ""]
    lines.append("".ljust(label_w) + "".join(c.rjust(w) for c, w in zip(columns, col_w)))
    for title, sec in rows:
        if not sec:
            lines.append("-- %s: not measured yet" % title)
            continue
        lines.append("-- " + title)
        for label, unit, cells in sec:
            lines.append(label.ljust(label_w) + "".join(t.rjust(w) for t, w in zip(texts[label], col_w)))
    return "\n".join(lines)


def ratio_color(r):
    """Green when the peer is worse than the reference (the reference wins), red when better."""
    import math
    x = max(-1.0, min(1.0, math.log2(r) / 2.0)) if r > 0 else 0.0
    if x >= 0:  # white -> green
        return "#%02x%02x%02x" % (int(255 - 150 * x), int(255 - 60 * x), int(255 - 150 * x))
    x = -x      # white -> red
    return "#%02x%02x%02x" % (int(255 - 30 * x), int(255 - 150 * x), int(255 - 150 * x))


def svg_table(rows, columns, ref, title, subtitle):
    """The table as a heat map: one row per metric, one column per allocator."""
    label_w, row_h, top = 300, 20, 78
    widths = [160 if c == ref else 100 for c in columns]
    lefts = [label_w + sum(widths[:i]) for i in range(len(columns))]
    n_rows = sum(1 + max(1, len(sec)) for _, sec in rows)
    width = label_w + sum(widths) + 10
    height = top + row_h * (n_rows + 1) + 50
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" '
         'font-size="12">' % (width, height, width, height),
         '<rect width="100%" height="100%" fill="#ffffff"/>',
         '<text x="10" y="24" font-size="16" font-weight="bold">%s</text>' % xml_escape(title),
         '<text x="10" y="44" fill="#444">%s</text>' % xml_escape(subtitle[0]),
         '<text x="10" y="62" fill="#444">%s</text>' % xml_escape(subtitle[1])]
    y = top
    for col, x, w in zip(columns, lefts, widths):
        weight = ' font-weight="bold"' if col == ref else ""
        o.append('<text x="%.0f" y="%d" text-anchor="middle"%s>%s</text>'
                 % (x + w / 2, y + 14, weight, xml_escape(col + (" (ref)" if col == ref else ""))))
    y += row_h
    for sec_title, sec in rows:
        o.append('<rect x="0" y="%d" width="%d" height="%d" fill="#e8e8f0"/>' % (y, width, row_h))
        o.append('<text x="10" y="%d" font-weight="bold">%s</text>' % (y + 14, xml_escape(sec_title)))
        y += row_h
        if not sec:
            o.append('<text x="20" y="%d" fill="#888" font-style="italic">not measured yet</text>'
                     % (y + 14))
            y += row_h
            continue
        for label, unit, cells in sec:
            o.append('<text x="20" y="%d">%s</text>' % (y + 14, xml_escape(label)))
            for c, x, w in zip(cells, lefts, widths):
                fill = "#f4f4f4" if c["kind"] in ("ref", "abs") else "#ffffff"
                if c["kind"] == "ratio":
                    fill = ratio_color(c["value"])
                elif c["kind"] == "fail":
                    fill = "#b00020"
                o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#ffffff"/>'
                         % (x, y, w, row_h, fill))
                color = "#ffffff" if c["kind"] == "fail" else "#000000"
                o.append('<text x="%.0f" y="%d" text-anchor="middle" fill="%s">%s</text>'
                         % (x + w / 2, y + 14, color, xml_escape(cell_text(c, unit))))
            y += row_h
    o.append('<text x="10" y="%d" fill="#444">Green: %s is faster or smaller than that allocator; '
             'red: the allocator beats %s. &#177;: half the min-max range over the runs.</text>'
             % (y + 24, ref, ref))
    o.append('<text x="10" y="%d" fill="#444">FAIL: the allocator broke a check (see the JSON '
             'file for the message).</text>' % (y + 42))
    o.append("</svg>")
    return "\n".join(o) + "\n"


# ----------------------------------------------------------------------------------------

def machine_info():
    info = {"machine": platform.machine(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (about two minutes)")
    ap.add_argument("--runs", type=int, help="runs per allocator and job (default 3 quick, 7 full; "
                    "stats and checks at least 5 quick, 11 and 9 full)")
    ap.add_argument("--only", help="comma-separated jobs: pairs,churn,aligned,threads,rss,python,"
                    "callgrind,stats,checks,hgc,hrefs,htrees (results go to "
                    "bench/results/partial.*.tmp)")
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libpyarena.so"))
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per process")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    only = set(args.only.split(",")) if args.only else None
    want = lambda name: only is None or name in only  # noqa: E731

    ensure_packages(want("callgrind"))
    allocs = allocators(args.lib)
    ref = "pyarena" if allocs[0]["name"] == "pyarena" else "glibc"
    job_list = [j for j in jobs(os.path.abspath(args.bin_dir), args.quick) if want(j["name"])]
    has_python = os.path.exists(SYSTEM_PYTHON)
    if not has_python:
        log("bench: %s not found: CPython workload SKIPPED" % SYSTEM_PYTHON)
        job_list = [j for j in job_list if not j.get("python")]
    pymalloc = {"name": "pymalloc", "preload": None, "package": None}
    for j in job_list:
        # what one run of the job runs, in order: the allocators, or the job's configurations
        if "configs" in j:
            j["order"] = j["configs"](allocs)
            if not j["order"]:
                log("bench: %s needs libpyarena.so: SKIPPED" % j["name"])
        else:
            j["order"] = allocs + ([pymalloc] if j.get("python") else [])
        j["runs"] = args.runs or max(runs, j.get("min_runs", 0))
        argvs = ([j["argv"]] if "argv" in j else []) + [c["argv"] for c in j["order"] if c.get("argv")]
        for argv0 in [a[0] for a in argvs]:
            if not os.path.exists(argv0):
                sys.exit("bench: %s is missing (run `make bench-build`)" % argv0)

    total = sum(j["runs"] * len(j["order"]) for j in job_list)
    do_callgrind = want("callgrind") and shutil.which("valgrind")
    if do_callgrind:
        total += 1 + len([a for a in allocs if a["name"] in CALLGRIND_ALLOCATORS])
    do_python_cg = want("python") and has_python and not args.quick and shutil.which("valgrind")
    if do_python_cg:
        total += 1 + len([a for a in allocs if a["name"] in CALLGRIND_ALLOCATORS])
    do_hrefs_cg = want("hrefs") and shutil.which("valgrind") and any(
        j["name"] == "hrefs" and j["order"] for j in job_list)
    if do_hrefs_cg:
        total += 1 + len([a for a in allocs if a["name"] in ("pyarena", "glibc")])
    counter = [0]
    started = time.perf_counter()

    def progress(job, alloc, what, wall):
        counter[0] += 1
        log("[%4d/%d %5.0fs] %-9s %-9s %6.2fs  %s"
            % (counter[0], total, time.perf_counter() - started, job, alloc, wall, what))

    log("bench: %s run, %d runs per allocator, allocators: %s; reference: %s"
        % ("QUICK" if args.quick else "full", runs, " ".join(a["name"] for a in allocs), ref))
    if ref == "pyarena":
        log("bench: pyarena = %s (built %s, sha256 %s), preloaded from a private copy"
            % (os.path.relpath(allocs[0]["source"], ROOT), allocs[0]["built"], allocs[0]["sha256"][:12]))
    records = []
    checksums = {}
    for job in job_list:
        for r in range(job["runs"]):
            order = job["order"]
            if job.get("compare") and r % 2:
                order = order[::-1]  # settings compared in the same run: ABC CBA ABC ...
            run_recs = []
            for alloc in order:  # alternate: A B C D E A B C D E ...
                rec = run_job_once(job, alloc, args.timeout)
                rec["run"] = r
                if "checksum" in rec:
                    first = checksums.setdefault((job["name"], alloc.get("variant")),
                                                 (rec["checksum"], alloc["name"]))
                    if rec["checksum"] != first[0] and "error" not in rec:
                        rec["error"] = "checksum %s differs from %s's %s" % (
                            rec["checksum"], first[1], first[0])
                records.append(rec)
                run_recs.append(rec)
                name = alloc["name"] + (":" + alloc["variant"] if alloc.get("variant") else "")
                progress(job["name"], name,
                         "FAIL " + rec["error"] if "error" in rec else "ok", rec["wall_s"])
            if job.get("compare"):
                derived = derive_ratios(job, run_recs)
                if derived:
                    records.append(derived)

    harness = None
    if want("callgrind"):
        if do_callgrind:
            cg, harness = run_callgrind(os.path.abspath(args.bin_dir), allocs, args.quick,
                                        args.timeout * 2, progress)
            records += cg
        else:
            log("bench: valgrind not installed: fast-path instruction counts SKIPPED")
    if do_python_cg:
        records += run_python_callgrind(allocs, args.timeout * 2, progress)
    if do_hrefs_cg:
        records += run_hrefs_callgrind(os.path.abspath(args.bin_dir), allocs, args.timeout * 2,
                                       progress)

    summary = summarize(records)
    columns = [a["name"] for a in allocs] + (["pymalloc"] if "pymalloc" in summary else [])
    columns = [ref] + [c for c in columns if c != ref]
    today = datetime.date.today().isoformat()
    elapsed = time.perf_counter() - started
    header = ("pyarena benchmarks %s (%s, %d runs each, %.0f s). Reference: %s = 1.00; other "
              "columns are median ratios to it\n(above 1 = slower or bigger than %s), "
              "± = half the min-max range. pymalloc = CPython's own allocator, no preload."
              % (today, "QUICK" if args.quick else "full", runs, elapsed, ref, ref))
    more = ["%s %d" % (j["name"], j["runs"]) for j in job_list if j["runs"] != runs]
    if more:
        header += "\nRuns of the jobs that differ: %s." % ", ".join(more)
    rows = table_rows(summary, ref, columns, args.quick)
    print(print_table(rows, columns, ref, header))
    failures, counts = [], {}
    for r in records:
        if "error" in r:
            key = (r["allocator"], r["job"])
            if key not in counts:
                failures.append((r["allocator"], r["job"], r["error"]))
            counts[key] = counts.get(key, 0) + 1
    if failures:
        print("\nFailures (the allocator's figures for that job are shown as FAIL):")
        for a, j, e in failures:
            n_runs = sum(1 for r in records if r["allocator"] == a and r["job"] == j)
            print("  %-9s %-9s %d of %d runs; %s" % (a, j, counts[(a, j)], n_runs, e))

    os.makedirs(args.out_dir, exist_ok=True)
    result = {
        "date": today, "quick": args.quick, "runs": runs, "reference": ref,
        "job_runs": {j["name"]: j["runs"] for j in job_list},
        "elapsed_s": elapsed, "machine": machine_info(),
        # file names only: where a library sits on this machine is nobody else's business
        "python": file_name(SYSTEM_PYTHON) if has_python else None,
        "allocators": {a["name"]: {"preload": file_name(a.get("source", a["preload"])),
                                   "sha256": a.get("sha256"), "built": a.get("built"),
                                   "version": dpkg_version(a["package"]) if a["package"] else None}
                       for a in allocs},
        "callgrind_harness_instr": harness,
        "summary": summary, "records": records,
        "failures": [{"allocator": a, "job": j, "error": e} for a, j, e in failures],
    }
    # A partial run (--only) must not replace the day's full results: its files end in .tmp.
    # Nor a quick one, whose figures are too short to compare with them: it writes its own.
    stem = today if only is None else "partial"
    if only is None and args.quick:
        stem = today + "-quick"
    path = os.path.join(args.out_dir, stem + ".json" + (".tmp" if only else ""))
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
    svg = svg_table(rows, columns, ref, "pyarena benchmarks, %s%s" % (today, " (QUICK)" if args.quick else ""),
                    ("Median of each allocator as a ratio to %s's (%s = 1.00; above 1 = slower "
                     "or bigger than %s)" % (ref, ref, ref),
                     "%s, %s CPUs, %d runs per allocator, allocators run alternately"
                     % (result["machine"].get("cpu", platform.machine()), os.cpu_count(), runs)))
    svg_path = os.path.join(args.out_dir, "partial.svg.tmp" if only is not None
                            else "latest-quick.svg" if args.quick else "latest.svg")
    with open(svg_path + ".tmp", "w") as f:
        f.write(svg)
    os.replace(svg_path + ".tmp", svg_path)
    log("bench: wrote %s and %s" % (os.path.relpath(path, ROOT), os.path.relpath(svg_path, ROOT)))
    return 1 if failures and any(a == ref for a, _, _ in failures) else 0


if __name__ == "__main__":
    sys.exit(main())
