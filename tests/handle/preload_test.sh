#!/bin/sh
# preload_test.sh BUILD [SAN] — runs the handle probe without and with
# LD_PRELOAD=BUILD/libpyarena.so; both runs must show handle objects in pyarena's pools and a
# single pyarena in the process (see preload_probe.c).
set -eu
build=$(cd "$1" && pwd)
san=${2:-}
probe=$build/tests/handle/preload_probe
echo "== handle probe, plain"
"$probe" plain
echo "== handle probe, LD_PRELOAD=$build/libpyarena.so"
if [ -n "$san" ]; then
    # A sanitized program needs its runtime first in the lookup order, ahead of the preload,
    # so malloc stays the sanitizer's; the run still checks that handle objects come from the
    # one (preloaded) pyarena.
    asan=$(ldd "$probe" | awk '/libasan/ {print $3}')
    LD_PRELOAD="$asan $build/libpyarena.so" "$probe" preload-san
else
    LD_PRELOAD="$build/libpyarena.so" "$probe" preload
fi
