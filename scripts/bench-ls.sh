#!/usr/bin/env bash
# Benchmarks `ctxbuild ls` (the Docker-faithful context listing) against a bare walk,
# `fd -HI .`, on the CPython corpus (scripts/corpus.sh). Target: ctxbuild ≤ 2× fd.
#
# Usage: scripts/bench-ls.sh [BENCH_DIR]   (default: $CTXBUILD_BENCH_DIR or /tmp/ctxbuild-bench)
# Environment: RUNS (default 10).
#
# The corpus is only read, never changed. It has no Dockerfile: if `ctxbuild ls` insists on
# one, a Dockerfile outside the context is passed with -f.
set -euo pipefail
cd "$(dirname "$0")/.."

bench="${1:-${CTXBUILD_BENCH_DIR:-/tmp/ctxbuild-bench}}"
runs="${RUNS:-10}"
scripts/corpus.sh "$bench"
pristine="$bench/pristine"

command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }
fd="$(command -v fd || command -v fdfind || true)"
[[ -n "$fd" ]] || { echo "fd is missing: apt-get install fd-find" >&2; exit 1; }

cargo build --release --locked -q
bin="$PWD/target/release/ctxbuild"

ls_cmd="$bin ls $pristine"
if ! $ls_cmd >/dev/null 2>"$bench/ls.err"; then
    printf 'FROM scratch\nCOPY . /ctx/\n' >"$bench/Dockerfile"
    ls_cmd="$bin ls $pristine -f $bench/Dockerfile"
    if ! $ls_cmd >/dev/null 2>"$bench/ls.err"; then
        echo "ctxbuild ls does not run yet:" >&2
        cat "$bench/ls.err" >&2
        exit 1
    fi
fi

hyperfine --runs "$runs" --warmup 2 \
    --export-markdown "$bench/ls.md" --export-json "$bench/ls.json" \
    -n "ctxbuild ls" "$ls_cmd >/dev/null" \
    -n "fd -HI" "$fd -HI . $pristine >/dev/null"

python3 - "$bench/ls.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
c, f = r["ctxbuild ls"], r["fd -HI"]
for stat in ("mean", "median"):
    print(f"{stat:>6}: ctxbuild ls {c[stat]:.3f}s  fd {f[stat]:.3f}s  ->  {c[stat] / f[stat]:.2f}x (target <= 2)")
PY
