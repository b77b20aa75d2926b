#!/usr/bin/env bash
# run.sh — the stress tier: runs stress (for DURATION seconds) and oom under
# LD_PRELOAD=<libpyarena.so> and checks what they print. Usage: run.sh LIBPYARENA_SO BIN_DIR
# [DURATION] [case ...] (cases: stress oom; default both). Prints "PASS name" or
# "FAIL name: reason" per case, then exactly "N passed, N failed"; exits 1 if any failed.
set -u

LIB=${1:?usage: run.sh LIBPYARENA_SO BIN_DIR [DURATION] [case ...]}
BIN=${2:?usage: run.sh LIBPYARENA_SO BIN_DIR [DURATION] [case ...]}
DURATION=${3:-20}
shift $(($# < 3 ? $# : 3))
CASES=${*:-stress oom}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(cd "$(dirname "$0")/.." && pwd)/runner.sh"

# pre LIMIT OUT CMD...: CMD under the preload, bounded by LIMIT seconds, output into OUT
pre() {
    local limit=$1 out=$2; shift 2
    { timeout -k 5 "$limit" env LD_PRELOAD="$LIB" "$@" >"$out" 2>&1; } 2>/dev/null
}

case_stress() {
    local out=$TMP/stress.out rc line
    pre $((DURATION + 60)) "$out" "$BIN/stress" "$DURATION"
    rc=$?
    cat "$out"
    line=$(grep -E '^stress: [0-9]+ ops, [0-9]+ threads started, [0-9]+ forks, [0-9]+ pattern errors$' "$out")
    if [ $rc -ne 0 ]; then fail stress "$(status_text $rc)" "$out"; return; fi
    if [ -z "$line" ]; then fail stress "no summary line" "$out"; return; fi
    read -r ops threads forks errors <<<"$(echo "$line" | sed -E 's/[^0-9]+/ /g')"
    if [ "$errors" -ne 0 ]; then fail stress "$errors pattern errors" "$out"; return; fi
    if [ "$ops" -eq 0 ] || [ "$threads" -le 4 ] || [ "$forks" -eq 0 ]; then
        fail stress "too little happened: $line" "$out"; return
    fi
    pass stress
}

OOM_CHECKS=(
    "limit" "small fill" "small blocks intact" "large fill" "all blocks intact after large fill"
    "calloc small at the limit" "calloc large at the limit" "realloc small to huge"
    "realloc small to 1 MiB" "realloc large to huge" "posix_memalign at the limit"
    "aligned_alloc and memalign at the limit" "small allocation after freeing half"
    "large allocation after freeing half" "remaining blocks intact"
    "refill after freeing everything" "refilled blocks intact"
    "allocation after freeing everything"
)

case_oom() {
    local out=$TMP/oom.out rc c bad=""
    pre 60 "$out" "$BIN/oom"
    rc=$?
    cat "$out"
    for c in "${OOM_CHECKS[@]}"; do
        grep -qxF "oom: $c: ok" "$out" || grep -qF "oom: $c: ok - " "$out" || bad="$bad; $c"
    done
    if [ $rc -ne 0 ]; then fail oom "$(status_text $rc)${bad:+, failed checks: ${bad#; }}" "$out"
    elif [ -n "$bad" ]; then fail oom "checks not ok: ${bad#; }" "$out"
    elif ! grep -qx "oom: all checks passed" "$out"; then fail oom "no final line" "$out"
    else pass oom
    fi
}

for c in $CASES; do
    case $c in
        stress) case_stress ;;
        oom) case_oom ;;
        *) fail "$c" "unknown case" ;;
    esac
done
finish
