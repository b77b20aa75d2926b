#!/usr/bin/env bash
# run.sh — the integration tier: runs real programs with LD_PRELOAD=<libpyarena.so> and checks
# their exit status and output. Usage: run.sh <path of libpyarena.so> <dir of the built test
# programs> [case ...]. Prints "PASS name" or "FAIL name: reason" per case, then exactly
# "N passed, N failed"; exits 1 if any case failed.
set -u

LIB=${1:?usage: run.sh LIBPYARENA_SO BIN_DIR [case ...]}
BIN=${2:?usage: run.sh LIBPYARENA_SO BIN_DIR [case ...]}
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
LIBNAME=$(basename "$LIB")
PY=/usr/bin/python3
T="timeout -k 5 60"                 # every command of every case is bounded
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$HERE/../runner.sh"


# pre OUT CMD...: run CMD under the preload, stdout+stderr into OUT; returns its status
# (the outer 2>/dev/null only hides bash's own "Aborted" notice; the status is reported instead)
pre() { local out=$1; shift; { $T env LD_PRELOAD="$LIB" "$@" >"$out" 2>&1; } 2>/dev/null; }
# ref OUT CMD...: the same without the preload
ref() { local out=$1; shift; { $T env -u LD_PRELOAD "$@" >"$out" 2>&1; } 2>/dev/null; }

# value of "key value" line in a file
val() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }

# check_bindings NAME OUT SYMBOLS-REGEX: every LD_DEBUG=bindings line for those symbols must bind
# to the preload; at least one such line must exist. Prints a reason, returns 1, on failure.
check_bindings() {
    local out=$1 re=$2 lines wrong
    lines=$(grep -E "normal symbol \`($re)'" "$out")
    if [ -z "$lines" ]; then echo "no LD_DEBUG binding lines for $re"; return 1; fi
    wrong=$(printf '%s\n' "$lines" | grep -v " to [^ ]*/$LIBNAME \[" | head -n 3 |
            sed -E 's/^ *[0-9]+:[[:space:]]*//')
    if [ -n "$wrong" ]; then echo "binds outside $LIBNAME: $(printf '%s' "$wrong" | tr '\n' ';')"; return 1; fi
    return 0
}

want() {   # should case $1 run?
    [ ${#SELECTED[@]} -eq 0 ] && return 0
    local s; for s in "${SELECTED[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1
}
SELECTED=("$@")

if [ ! -f "$LIB" ]; then
    echo "FAIL setup: $LIB does not exist"
    echo "0 passed, 1 failed"
    exit 1
fi

# ---- 1. python3 with PYTHONMALLOC=malloc: same checksum as without the preload
case_python() {
    local n=python3 o=$TMP/py.pre r=$TMP/py.ref rc
    if [ ! -x $PY ]; then fail $n "$PY not found"; return; fi
    ref "$r" env PYTHONMALLOC=malloc PYTHONHASHSEED=0 $PY "$HERE/py_alloc.py"
    rc=$?; [ $rc -eq 0 ] || { fail $n "reference run without preload: $(status_text $rc)" "$r"; return; }
    pre "$o" env PYTHONMALLOC=malloc PYTHONHASHSEED=0 $PY "$HERE/py_alloc.py"
    rc=$?; [ $rc -eq 0 ] || { fail $n "$(status_text $rc)" "$o"; return; }
    local a b
    a=$(val "$r" checksum); b=$(val "$o" checksum)
    [ -n "$a" ] || { fail $n "reference run printed no checksum" "$r"; return; }
    [ "$a" = "$b" ] || { fail $n "checksum '$b' differs from the run without preload '$a'" "$o"; return; }
    [ "$(val "$o" gc_collected_enough)" = True ] || { fail $n "gc did not collect the cycles" "$o"; return; }
    [ "$(val "$o" preload_mapped)" = True ] || { fail $n "$LIBNAME not mapped in the python process" "$o"; return; }
    pass $n
}

# ---- 2. cross-thread frees with threads exiting and starting
case_xthread() {
    local n=xthread o=$TMP/xthread.out rc
    pre "$o" "$BIN/xthread"; rc=$?
    local al fr pe ae
    al=$(awk '$1 == "allocated" { print $2 }' "$o"); fr=$(awk '$1 == "allocated" { print $4 }' "$o")
    pe=$(val "$o" pattern_errors); ae=$(val "$o" freed_after_owner_exit)
    [ $rc -eq 0 ] || { fail $n "$(status_text $rc)" "$o"; return; }
    [ -n "$al" ] && [ "$al" -gt 0 ] || { fail $n "no 'allocated' count" "$o"; return; }
    [ "$al" = "$fr" ] || { fail $n "allocated $al != freed $fr" "$o"; return; }
    [ "$pe" = 0 ] || { fail $n "pattern_errors ${pe:-missing}" "$o"; return; }
    [ "$(val "$o" alloc_failures)" = 0 ] || { fail $n "allocation failures" "$o"; return; }
    [ -n "$ae" ] && [ "$ae" -gt 0 ] || { fail $n "no block was freed after its owner thread exited" "$o"; return; }
    grep -qx "xthread OK" "$o" || { fail $n "no 'xthread OK' line" "$o"; return; }
    pass $n
}

# ---- 3. fork while threads allocate; children free the parent threads' blocks
case_fork() {
    local n=fork o=$TMP/fork.out rc
    pre "$o" "$BIN/forkthreads"; rc=$?
    [ $rc -eq 0 ] || { fail $n "$(status_text $rc)$(grep -m1 '^fork [0-9]*:' "$o" | sed 's/^/; /')" "$o"; return; }
    grep -qx "forks 20 ok 20" "$o" || { fail $n "not every child exited 0" "$o"; return; }
    pass $n
}

# ---- 4. RSS falls back after a burst of 4 million small blocks
case_burst() {
    local n=burst o=$TMP/burst.out rc
    pre "$o" "$BIN/burst"; rc=$?
    local b p a
    b=$(val "$o" rss_before_kib); p=$(val "$o" rss_peak_kib); a=$(val "$o" rss_after_kib)
    if [ $rc -ne 0 ]; then
        fail $n "$(status_text $rc); rss before ${b:-?} peak ${p:-?} after ${a:-?} KiB" "$o"; return
    fi
    if [ -z "$b" ] || [ -z "$p" ] || [ -z "$a" ]; then fail $n "VmRSS figures missing" "$o"; return; fi
    # re-check the bound here: retained < 20% of the growth, growth > 100 MiB
    if [ $((p - b)) -lt 102400 ] || [ $(((a - b) * 100)) -ge $(((p - b) * 20)) ]; then
        fail $n "rss before $b peak $p after $a KiB: retained $((a - b)) KiB of $((p - b)) KiB growth (limit 20%)" "$o"; return
    fi
    grep -qx "burst OK" "$o" || { fail $n "no 'burst OK' line" "$o"; return; }
    pass $n
    echo "    burst: rss before $b KiB, peak $p KiB, after $a KiB ($(val "$o" retained_pct)% of growth retained)"
}

# ---- 5. small requests take the arena path; malloc binds to the preload
case_arena_path() {
    local n=arena_path o=$TMP/arena.out d=$TMP/arena.dbg rc c
    pre "$o" "$BIN/arena_path"; rc=$?
    if grep -q '^FAIL' "$o"; then fail $n "$(grep -m1 '^FAIL' "$o" | cut -c6-)" "$o"; return; fi
    [ $rc -eq 0 ] || { fail $n "$(status_text $rc)" "$o"; return; }
    for c in usable_130 usable_classes align16 same_page_208 same_page_336 same_page_496 usable_513 \
             resolve_malloc resolve_free resolve_calloc resolve_realloc resolve_posix_memalign \
             resolve_aligned_alloc resolve_memalign resolve_malloc_usable_size got_malloc; do
        grep -qx "OK $c" "$o" || { fail $n "check $c did not report OK" "$o"; return; }
    done
    $T env LD_PRELOAD="$LIB" LD_DEBUG=bindings "$BIN/arena_path" >/dev/null 2>"$d"
    local why
    why=$(check_bindings "$d" 'malloc|free|calloc|realloc') || { fail $n "LD_DEBUG: $why"; return; }
    pass $n
}

# ---- 6. C++ new/delete
case_cxx() {
    local n=cxx o=$TMP/cxx.pre r=$TMP/cxx.ref d=$TMP/cxx.dbg rc c
    ref "$r" "$BIN/cxx_new"
    pre "$o" "$BIN/cxx_new"; rc=$?
    if grep -q '^FAIL' "$o"; then fail $n "$(grep -m1 '^FAIL' "$o" | cut -c6-)" "$o"; return; fi
    [ $rc -eq 0 ] || { fail $n "$(status_text $rc)" "$o"; return; }
    local a b
    a=$(val "$r" checksum); b=$(val "$o" checksum)
    [ -n "$a" ] || { fail $n "reference run printed no checksum" "$r"; return; }
    [ "$a" = "$b" ] || { fail $n "checksum '$b' differs from the run without preload '$a'" "$o"; return; }
    for c in aligned_new nothrow_new bad_alloc nothrow_huge odd_alignment new_usable_130 resolve__Znwm \
             resolve__ZdlPv resolve__ZnwmSt11align_val_t; do
        grep -qx "OK $c" "$o" || { fail $n "check $c did not report OK" "$o"; return; }
    done
    $T env LD_PRELOAD="$LIB" LD_DEBUG=bindings "$BIN/cxx_new" >/dev/null 2>"$d"
    local why
    why=$(check_bindings "$d" '_Znwm|_ZdlPv|_Znam|_ZdaPv|malloc|free') || { fail $n "LD_DEBUG: $why"; return; }
    pass $n
}

# ---- 7. malloc API semantics
API_CHECKS=44
case_api() {
    local n=api o=$TMP/api.out rc
    pre "$o" "$BIN/api"; rc=$?
    if grep -q '^FAIL' "$o"; then
        fail $n "$(grep -c '^FAIL' "$o") check(s) failed: $(grep '^FAIL' "$o" | cut -d' ' -f2 | tr -d : | tr '\n' ' ')($(status_text $rc))" "$o"
        return
    fi
    [ $rc -eq 0 ] || { fail $n "$(status_text $rc) after check '$(grep '^OK' "$o" | tail -n 1 | cut -c4-)'" "$o"; return; }
    grep -qx "api checks: $API_CHECKS ok, 0 failed" "$o" ||
        { fail $n "expected 'api checks: $API_CHECKS ok, 0 failed'" "$o"; return; }
    pass $n
}

# ---- 8. shell tools and gcc under the preload
case_tools() {
    local n=tools rc
    awk 'BEGIN { srand(7); for (i = 0; i < 200000; i++)
                 printf "%s%d %d %c\n", substr("alphabetagammadeltaepsilon", 1 + i % 20, 1 + i % 7),
                        int(rand() * 5000), int(rand() * 1000000), 97 + i % 26 }' >"$TMP/data.txt"
    local pipeline='sort --parallel=2 -S 16M -k2,2n -k1,1 "$1" | grep -v "^e" | sed -E "s/([a-d])/<\1>/g" |
                    awk "{ s[\$1] += \$2; c[\$4]++ } END { for (k in s) print k, s[k]; for (k in c) print k, c[k] }" |
                    sort | uniq -c | sort -k1,1nr -k2 | head -n 5000'
    ref "$TMP/pipe.ref" bash -c "$pipeline" sh "$TMP/data.txt"
    rc=$?; [ $rc -eq 0 ] || { fail $n "reference pipeline: $(status_text $rc)" "$TMP/pipe.ref"; return; }
    pre "$TMP/pipe.pre" bash -c "$pipeline" sh "$TMP/data.txt"
    rc=$?; [ $rc -eq 0 ] || { fail $n "pipeline under preload: $(status_text $rc)" "$TMP/pipe.pre"; return; }
    [ -s "$TMP/pipe.ref" ] || { fail $n "reference pipeline printed nothing"; return; }
    cmp -s "$TMP/pipe.ref" "$TMP/pipe.pre" ||
        { fail $n "sort|grep|sed|awk output differs from the run without preload" "$TMP/pipe.pre"; return; }
    ref "$TMP/cc.ref" gcc -O2 -c "$HERE/cc_input.c" -o "$TMP/ref.o"
    rc=$?; [ $rc -eq 0 ] || { fail $n "gcc without preload: $(status_text $rc)" "$TMP/cc.ref"; return; }
    pre "$TMP/cc.pre" gcc -O2 -c "$HERE/cc_input.c" -o "$TMP/pre.o"
    rc=$?; [ $rc -eq 0 ] || { fail $n "gcc -c under preload: $(status_text $rc)" "$TMP/cc.pre"; return; }
    [ -s "$TMP/cc.pre" ] && { fail $n "gcc -c under preload printed diagnostics" "$TMP/cc.pre"; return; }
    cmp -s "$TMP/ref.o" "$TMP/pre.o" || { fail $n "gcc -c object differs from the one built without preload"; return; }
    pass $n
}

# ---- 9. exported symbols
case_symbols() {
    local n=symbols allowed extra missing s
    allowed="malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign valloc
             pvalloc malloc_usable_size malloc_trim mallinfo mallinfo2 malloc_stats malloc_info mallopt"
    # glibc's registration behind pthread_atfork: ours and jemalloc's handlers first (atfork.c)
    allowed="$allowed __register_atfork pthread_atfork"
    # the pyarena_* functions declared in the public header
    allowed="$allowed $(grep -oE '\bpyarena_[a-z0-9_]+[[:space:]]*\(' "$ROOT/include/pyarena.h" | tr -d '( ' | sort -u)"
    # operator new/delete: plain, array, nothrow, sized, aligned
    local nt=RKSt9nothrow_t al=St11align_val_t
    allowed="$allowed _Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t _Znwm$al _Znam$al
             _Znwm$al$nt _Znam$al$nt _ZdlPv _ZdaPv _ZdlPv$nt _ZdaPv$nt _ZdlPvm _ZdaPvm
             _ZdlPv$al _ZdaPv$al _ZdlPvm$al _ZdaPvm$al _ZdlPv$al$nt _ZdaPv$al$nt"
    local syms
    syms=$(nm -D --defined-only "$LIB" 2>"$TMP/nm.err") || { fail $n "nm failed" "$TMP/nm.err"; return; }
    syms=$(printf '%s\n' "$syms" | awk 'NF >= 2 { print $NF }' | sed 's/@.*//' | sort -u)
    extra=""
    for s in $syms; do
        case " $(echo $allowed) " in *" $s "*) ;; *) extra="$extra $s" ;; esac
    done
    missing=""
    for s in malloc free calloc realloc posix_memalign aligned_alloc malloc_usable_size _Znwm _ZdlPv; do
        printf '%s\n' "$syms" | grep -qx "$s" || missing="$missing $s"
    done
    [ -z "$extra" ] || { fail $n "exports symbols outside the allowed list:$(echo $extra | cut -c1-600)"; return; }
    [ -z "$missing" ] || { fail $n "does not export:$missing"; return; }
    pass $n
}

# ---- 10. bad input: a precise message and an abort, as glibc gives for its own blocks
case_bad_input() {
    local n=bad_input o=$TMP/bad.out rc addr m mode arg key level want
    # the pools' misuses, then the large path's (MODE:SIZE): double frees of jemalloc's small
    # and large classes, one above its 2 MiB pages, an aligned block and one never written to;
    # a freed block given to the others; and under PYARENA_CHECK=2 (the ledger), a pointer
    # into one
    for m in double interior realloc large uaf \
             large_double:1000 large_double:70000 large_double:3000000 large_aligned:4096 \
             large_untouched:20000 large_realloc:6000 large_usable:6000 large_interior:6000; do
        mode=${m%:*} arg=${m#"${m%:*}"} arg=${arg#:}
        case $mode in uaf|large_interior) level=PYARENA_CHECK=2 ;; *) level= ;; esac
        case $mode in large_*) key=large ;; *) key=block ;; esac
        pre "$o" env $level "$BIN/bad_input" $mode $arg; rc=$?
        [ $rc -eq 134 ] || { fail $n "$m: expected an abort, got $(status_text $rc)" "$o"; return; }
        addr=$(val "$o" $key)
        case $mode in
            double)   want="pyarena: double free of $addr (48-byte class)" ;;
            interior|large_interior)
                      want="pyarena: invalid pointer $(printf '0x%x' $((addr + 16))) passed to free" ;;
            realloc)  want="pyarena: realloc of freed block $addr (48-byte class)" ;;
            large)    want="pyarena: invalid pointer 0x[0-9a-f]*8 passed to free" ;;
            uaf)      want="pyarena: use after free: write to freed block of $addr (48-byte class)" ;;
            large_realloc) want="pyarena: realloc of freed block $addr (large block)" ;;
            large_usable)  want="pyarena: malloc_usable_size of freed block $addr (large block)" ;;
            *)        want="pyarena: double free of $addr (large block)" ;;
        esac
        grep -qx "$want" "$o" || { fail $n "$m: no line '$want'" "$o"; return; }
    done
    pre "$o" env PYARENA_CHECK=0 "$BIN/bad_input" interior; rc=$?
    grep -q survived "$o" || { fail $n "PYARENA_CHECK=0 still checked: $(status_text $rc)" "$o"; return; }
    pass $n
}

# ---- 11. MALLOC_CONF still tunes the jemalloc behind the large path (linked inside pyarena)
case_malloc_conf() {
    local n=malloc_conf o=$TMP/mc.out
    pre "$o" env MALLOC_CONF=stats_print:true /bin/true
    grep -q "Begin jemalloc statistics" "$o" || { fail $n "MALLOC_CONF=stats_print:true printed nothing" "$o"; return; }
    readelf -d "$LIB" | grep -q "libjemalloc\|libstdc++" && { fail $n "libpyarena.so still needs libjemalloc or libstdc++"; return; }
    pass $n
}

# ---- 12. start-up: the first malloc comes from another library's constructor, before ours ran
case_early() {
    local n=early_ctor o=$TMP/early.out rc order
    for order in "$BIN/early_ctor.so:$LIB" "$LIB:$BIN/early_ctor.so"; do
        { $T env LD_PRELOAD="$order" /bin/true >"$o" 2>&1; } 2>/dev/null; rc=$?
        [ $rc -eq 0 ] || { fail $n "LD_PRELOAD=$order: $(status_text $rc)" "$o"; return; }
        grep -qx "early ctor ok" "$o" || { fail $n "LD_PRELOAD=$order: constructor saw a bad allocator" "$o"; return; }
    done
    pass $n
}

# ---- 13. blocks allocated single-threaded (no arena lock, no locked instruction), freed by a
# thread started afterwards, come back to the main thread
case_handover() {
    local n=handover o=$TMP/handover.out rc c
    pre "$o" "$BIN/handover"; rc=$?
    if grep -q '^FAIL' "$o"; then fail $n "$(grep -m1 '^FAIL' "$o" | cut -c6-)" "$o"; return; fi
    [ $rc -eq 0 ] || { fail $n "$(status_text $rc)" "$o"; return; }
    [ "$(val "$o" single_threaded_at_start)" = 1 ] || { fail $n "the program was not single-threaded at start" "$o"; return; }
    for c in patterns reused_48 reused_256 reused_512; do
        grep -qx "OK $c" "$o" || { fail $n "check $c did not report OK" "$o"; return; }
    done
    pass $n
}

# ---- 14. idle threads' spare pools go back while another thread allocates
case_idle_threads() {
    local n=idle_threads o=$TMP/idle_threads.out rc
    pre "$o" env PYARENA_DECAY_MS=100 "$BIN/idle_threads"; rc=$?
    if grep -q '^FAIL' "$o"; then fail $n "$(grep -m1 '^FAIL' "$o" | cut -c6-)" "$o"; return; fi
    [ $rc -eq 0 ] || { fail $n "$(status_text $rc)" "$o"; return; }
    grep -qx "OK idle_threads" "$o" || { fail $n "no 'OK idle_threads' line" "$o"; return; }
    pass $n
    echo "    idle_threads: rss before $(val "$o" rss_before_kib) KiB, after the burst $(val "$o" rss_burst_kib) KiB, $(val "$o" waited_ms) ms later $(val "$o" rss_after_kib) KiB"
}

# ---- 15. jemalloc's unused pages go back after a spike of large blocks, with small requests
# only, and at once with malloc_trim
case_large_decay() {
    local n=large_decay o=$TMP/large_decay.out rc
    # the ticks come from malloc's slow paths: the default cache, whatever the environment says
    pre "$o" env MALLOC_CONF=dirty_decay_ms:200 PYARENA_THREAD_CACHE=1 "$BIN/large_decay"; rc=$?
    if grep -q '^FAIL' "$o"; then fail $n "$(grep -m1 '^FAIL' "$o" | cut -c6-)" "$o"; return; fi
    [ $rc -eq 0 ] || { fail $n "$(status_text $rc)" "$o"; return; }
    grep -qx "OK large_decay" "$o" || { fail $n "no 'OK large_decay' line" "$o"; return; }
    grep -qx "OK large_trim" "$o" || { fail $n "no 'OK large_trim' line" "$o"; return; }
    local line="    large_decay: rss before $(val "$o" rss_before_kib) KiB, peak $(val "$o" rss_peak_kib) KiB, after the free $(val "$o" rss_freed_kib) KiB, $(val "$o" waited_ms) ms later $(val "$o" rss_after_kib) KiB; again freed $(val "$o" rss_freed2_kib) KiB, after malloc_trim $(val "$o" rss_trim_kib) KiB"
    # an idle forked child, with jemalloc's background threads asked for (off in a child)
    pre "$o" env MALLOC_CONF=background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0 \
        "$BIN/large_decay" idle-child; rc=$?
    if grep -q '^FAIL' "$o"; then fail $n "$(grep -m1 '^FAIL' "$o" | cut -c6-)" "$o"; return; fi
    [ $rc -eq 0 ] || { fail $n "idle-child: $(status_text $rc)" "$o"; return; }
    grep -qx "OK idle_child" "$o" || { fail $n "no 'OK idle_child' line" "$o"; return; }
    pass $n
    echo "$line"
    echo "    idle child: rss before $(val "$o" rss_before_kib) KiB, after the free $(val "$o" rss_freed_kib) KiB, $(val "$o" waited_ms) ms idle later $(val "$o" rss_after_kib) KiB"
}

# ---- 15a. batches of large blocks taken and freed over and over reuse their pages; the run
# with jemalloc's default fit must fault them in again each round, which shows that
# MALLOC_CONF still overrides pyarena's setting and that the program can tell
case_large_reuse() {
    local n=large_reuse o=$TMP/large_reuse.out d=$TMP/large_reuse.default.out rc
    pre "$o" "$BIN/large_reuse"; rc=$?
    if grep -q '^FAIL' "$o"; then fail $n "$(grep -m1 '^FAIL' "$o" | cut -c6-)" "$o"; return; fi
    [ $rc -eq 0 ] || { fail $n "$(status_text $rc)" "$o"; return; }
    [ "$(grep -c '^OK large_reuse' "$o")" -eq 6 ] || { fail $n "not 6 'OK large_reuse' lines" "$o"; return; }
    pre "$d" env MALLOC_CONF=lg_extent_max_active_fit:6 "$BIN/large_reuse"; rc=$?
    grep -q '^FAIL large_reuse_peak' "$d" ||
        { fail $n "with MALLOC_CONF=lg_extent_max_active_fit:6 the peak stayed low: the environment did not override, or the test cannot tell ($(status_text $rc))" "$d"; return; }
    pass $n
    echo "    large_reuse: faults after the first round $(awk '$1 == "size" { printf "%s B %s, ", $2, $6 }' "$o")peak +$(val "$o" peak_growth_kib) KiB; with jemalloc's default fit: $(awk '$1 == "size" { printf "%s, ", $6 }' "$d")peak +$(val "$d" peak_growth_kib) KiB"
}

# ---- 15b. pools another thread emptied go back, whether the owner is idle (freed by one thread
# or by eight at once, which sweep each other's; idle2: the idle case at PYARENA_CHECK=2, where
# every free takes the careful path) or its rings never run dry
case_remote_reclaim() {
    local n=remote_reclaim mode o rc modes="idle busy many idle2"
    for mode in $modes; do
        o=$TMP/remote_reclaim.$mode.out
        if [ $mode = idle2 ]; then
            pre "$o" env PYARENA_CHECK=2 "$BIN/remote_reclaim" idle; rc=$?
        else
            pre "$o" "$BIN/remote_reclaim" $mode; rc=$?
        fi
        if grep -q '^FAIL' "$o"; then fail $n "$mode: $(grep -m1 '^FAIL' "$o" | cut -c6-)" "$o"; return; fi
        [ $rc -eq 0 ] || { fail $n "$mode: $(status_text $rc)" "$o"; return; }
        grep -qx "OK remote_reclaim" "$o" || { fail $n "$mode: no 'OK remote_reclaim' line" "$o"; return; }
    done
    pass $n
    for mode in $modes; do
        o=$TMP/remote_reclaim.$mode.out
        echo "    remote_reclaim $mode: rss before $(val "$o" rss_before_kib) KiB, loaded $(val "$o" rss_loaded_kib) KiB, after the other thread's frees $(val "$o" rss_freed_kib) KiB, $(val "$o" waited_ms) ms of light work later $(val "$o" rss_after_kib) KiB"
    done
}

# ---- 16. malloc in other libraries' fork handlers (glibc allows it), whichever order the
# handlers were registered in: the handlers' library preloaded before and after ours; then
# forks from new threads while another thread calls malloc_trim
# fork_handlers_ok ORDER HANDLER LARGE VIA ARGS...: one run (LARGE 1: the handler makes large
# requests too; VIA compat: registered through a reference to glibc's compatibility
# pthread_atfork, not the library's own stub); prints why and returns 1 if it failed
fork_handlers_ok() {
    local order=$1 w=$2 large=$3 via=$4 o=$TMP/fork_handlers.out rc; shift 4
    { $T env LD_PRELOAD="$order" FORK_HANDLER_CHURN=$w FORK_HANDLER_LARGE=$large \
        FORK_HANDLER_VIA=$via "$BIN/fork_handlers" "$@" >"$o" 2>&1; } 2>/dev/null
    rc=$?
    [ $rc -eq 0 ] && grep -qx "fork_handlers ok" "$o" && return 0
    echo "LD_PRELOAD=$order, mallocs in the $w handler (large: $large, via: $via), $*: $(status_text $rc)"
    return 1
}

case_fork_handlers() {
    local n=fork_handlers order w th f why
    for order in "$BIN/fork_handlers.so:$LIB" "$LIB:$BIN/fork_handlers.so"; do
        for w in prepare parent child; do
            for th in single threaded; do
                for f in warm fresh; do
                    why=$(fork_handlers_ok "$order" $w 0 stub $th $f) ||
                        { fail $n "$why" "$TMP/fork_handlers.out"; return; }
                done
                for via in stub compat; do   # jemalloc's requests
                    why=$(fork_handlers_ok "$order" $w 1 $via $th fresh) ||
                        { fail $n "$why" "$TMP/fork_handlers.out"; return; }
                done
            done
            why=$(fork_handlers_ok "$order" $w 0 stub trim) ||   # malloc_trim meanwhile
                { fail $n "$why" "$TMP/fork_handlers.out"; return; }
        done
    done
    pass $n
}

# ---- 17. handlers registered while another thread forks, past glibc's 48 (preload/fork.c's guard);
# the C++ build starts with a large request, so jemalloc's registration starts pyarena
case_fork_register() {
    local n=fork_register o=$TMP/fork_register.out rc prog
    for prog in fork_register fork_register_cxx; do
        pre "$o" "$BIN/$prog" 200; rc=$?
        [ $rc -eq 0 ] || { fail $n "$prog: $(status_text $rc)$(grep -m1 '^run ' "$o" | sed 's/^/; /')" "$o"; return; }
        grep -qx "fork_register ok: 200 runs" "$o" || { fail $n "$prog: no 'ok' line" "$o"; return; }
    done
    pass $n
}

want python3    && case_python
want xthread    && case_xthread
want fork       && case_fork
want burst      && case_burst
want arena_path && case_arena_path
want cxx        && case_cxx
want api        && case_api
want tools      && case_tools
want symbols    && case_symbols
want bad_input  && case_bad_input
want malloc_conf && case_malloc_conf
want early_ctor && case_early
want handover   && case_handover
want idle_threads && case_idle_threads
want large_decay && case_large_decay
want large_reuse && case_large_reuse
want remote_reclaim && case_remote_reclaim
want fork_handlers && case_fork_handlers
want fork_register && case_fork_register

finish
