#!/usr/bin/env bash
# A cold Cloud Build worker, simulated on this engine: the example backend built with an empty
# local layer cache (a full rebuild: --no-cache after removing every layer of the last build)
# against the same build with --cache-from the image pushed to the loopback registry (pulled,
# then every step served from it). RUNS pairs, alternating; prints each time and the ratio.
# Needs the engine, the loopback registry (scripts/registry.sh) and the offline python base
# image (scripts/base-images.sh); builds ctxbuild in release mode unless CTXBUILD_BIN is set.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
BASE="${CTXBUILD_TEST_PYTHON:-ctxbuild-test/python:3-bookworm}"
REG="${CTXBUILD_TEST_REGISTRY:-127.0.0.1:5000}"
REF="$REG/ctxbuild-bench/backend:cold"
# CTXBUILD_BIN: an already built binary (the times are the engine's and pip's, not ctxbuild's).
if [ -n "${CTXBUILD_BIN:-}" ]; then
    bin="$CTXBUILD_BIN"
else
    cargo build --release --locked -q
    bin="$PWD/target/release/ctxbuild"
fi
work="$(mktemp -d /tmp/ctxbuild-cold.XXXXXX)"
trap 'rm -rf "$work"; docker rmi "$REF" >/dev/null 2>&1 || true' EXIT
build() { # build NAME ARGS… → seconds
    local start end
    start=$(date +%s.%N)
    CTXBUILD_CACHE_DIR="$work/$1" "$bin" --progress none image backend --slim \
        --base-image "$BASE" -t "$REF" "${@:2}" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}
forget() { docker rmi "$REF" >/dev/null 2>&1 || true; }
# The image every cache-from run pulls.
build seed --no-cache --push >/dev/null
full=(); warm=()
for i in $(seq 1 "$RUNS"); do
    forget
    full+=("$(build "full$i" --no-cache)")
    forget
    warm+=("$(build "warm$i" --cache-from "$REF")")
    echo "run $i: full rebuild ${full[-1]} s, --cache-from ${warm[-1]} s (load $(cut -d' ' -f1 /proc/loadavg))"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
f=$(median "${full[@]}"); w=$(median "${warm[@]}")
echo "median: full rebuild $f s, --cache-from $w s, ratio $(echo "scale=2; $w / $f" | bc)"
