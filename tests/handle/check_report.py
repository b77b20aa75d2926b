#!/usr/bin/env python3
"""check_report.py PROGRAM — runs leak_report with PYARENA_STATS json and checks the handles
section of the report against what the program left alive."""
import json, os, subprocess, sys

env = {k: v for k, v in os.environ.items() if not k.startswith("PYARENA_")}
env.update(PYARENA_STATS="1", PYARENA_STATS_FORMAT="json")
r = subprocess.run([sys.argv[1]], env=env, capture_output=True, text=True, timeout=60)
assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
h = json.loads(r.stderr)["handles"]
types = {t["name"]: t["count"] for t in h["types"]}
assert types == {"node": 4, 'leaf "quoted"': 5}, types
assert h["tracked"] == 9 and h["frozen"] == 1, h
assert h["generations"][2]["collections"] >= 1 and h["generations"][2]["collected"] >= 2, h
r = subprocess.run([sys.argv[1]], env=dict(env, PYARENA_STATS_FORMAT="text"),
                   capture_output=True, text=True, timeout=60)
assert "handles (libpyarena_handle): 9 tracked, 1 frozen" in r.stderr, r.stderr[-600:]
assert "           4  node" in r.stderr and '           5  leaf "quoted"' in r.stderr, r.stderr[-600:]
print("handles report: ok")
