#!/usr/bin/env bash
# Benchmarks `ctxbuild clean` against `find -delete` and `pyclean` on the CPython corpus
# (scripts/corpus.sh), with hyperfine. Every timed run starts from a fresh copy of the corpus
# (--prepare: remove the last copy, cp -a the pristine one, sync so no writeback of the copy
# competes with the run). Prints the ratios the README reports.
#
# Usage: scripts/bench-clean.sh [BENCH_DIR]   (default: $CTXBUILD_BENCH_DIR or /tmp/ctxbuild-bench)
# Environment: RUNS (default 5), CTXBUILD_ARGS (extra arguments for `ctxbuild clean`).
#
# The find command is the one from the issue. -delete implies -depth, so a __pycache__ is
# tested with -empty only after its files were deleted: it does remove the emptied
# directories (checked below after each tool's run, not assumed).
set -euo pipefail
cd "$(dirname "$0")/.."

bench="${1:-${CTXBUILD_BENCH_DIR:-/tmp/ctxbuild-bench}}"
runs="${RUNS:-5}"
scripts/corpus.sh "$bench"
pristine="$bench/pristine"
work="$bench/work"

if ! command -v hyperfine >/dev/null; then
    if [[ $(id -u) == 0 ]]; then apt-get install -y -q hyperfine >/dev/null; else
        echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; fi
fi

cargo build --release --locked -q
bin="$PWD/target/release/ctxbuild"

# pyclean (PyPI) in its own virtualenv, so the corpus' source installation stays untouched.
pyclean="$bench/pyclean-venv/bin/pyclean"
if [[ ! -x "$pyclean" ]]; then
    python3 -m venv "$bench/pyclean-venv"
    if ! "$bench/pyclean-venv/bin/pip" install -q pyclean; then
        echo "pip install pyclean failed; falling back to Debian's py3clean" >&2
        pyclean="$(command -v py3clean)"
    fi
fi
echo "pyclean: $("$pyclean" --version 2>&1 | head -1)" >&2

ctxbuild_cmd="$bin clean -q ${CTXBUILD_ARGS:-} $work"
find_cmd="find $work \\( -name '*.pyc' -o -name '*.pyo' \\) -delete -o -name __pycache__ -type d -empty -delete"
pyclean_cmd="$pyclean -q $work"
prepare="rm -rf '$work' && cp -a '$pristine' '$work' && sync"

# Each tool must actually do the job before its time means anything. pyclean always skips
# directories named `venv` (its hard-coded ignore list), which includes the standard library's
# own `venv` package: the only leftovers it is allowed (7 files and their __pycache__).
check() {
    local cmd="$1" allowed="$2"
    bash -c "$prepare"
    bash -c "$cmd"
    left=$(find "$work" -path "$allowed" -prune -o \( -name '*.pyc' -o -name '*.pyo' -o -name __pycache__ \) -print | wc -l)
    if [[ $left != 0 ]]; then
        echo "not clean after: $cmd ($left left)" >&2
        exit 1
    fi
}
check "$ctxbuild_cmd" /nonexistent
check "$find_cmd" /nonexistent
check "$pyclean_cmd" "$work/venv"

hyperfine --runs "$runs" --warmup 0 --prepare "$prepare" \
    --export-markdown "$bench/clean.md" --export-json "$bench/clean.json" \
    -n "ctxbuild clean" "$ctxbuild_cmd" \
    -n "find -delete" "$find_cmd" \
    -n "pyclean" "$pyclean_cmd"

# What the disk did during one more run of each tool: on a filesystem mounted with `discard`
# every freed block range is discarded before the unlink returns, so the device's own rate of
# discards can bound the run (the README's clean section). Fields of /sys/.../stat: 10 is the
# time the device had a request in flight (io_ticks), 12 the discards completed. Skipped where
# the context is not on a block device (tmpfs, overlay) or the kernel has no discard fields.
stat="/sys/dev/block/$(findmnt -no MAJ:MIN -T "$bench" | head -1 | tr -d ' ')/stat"
device() {
    local name="$1" cmd="$2" a b s e
    bash -c "$prepare"
    read -ra a <"$stat"
    s=$(date +%s%N)
    bash -c "$cmd"
    e=$(date +%s%N)
    read -ra b <"$stat"
    printf '%-16s wall %5d ms  device busy %5d ms  discards %6d\n' "$name" \
        $(( (e - s) / 1000000 )) $(( b[9] - a[9] )) $(( b[11] - a[11] ))
}
if [[ -r "$stat" ]] && (( $(wc -w <"$stat") >= 15 )); then
    echo "device ($(findmnt -no SOURCE,OPTIONS -T "$bench" | head -1)):"
    device "ctxbuild clean" "$ctxbuild_cmd"
    device "find -delete" "$find_cmd"
    device "pyclean" "$pyclean_cmd"
fi
rm -rf "$work"

python3 - "$bench/clean.json" <<'PY'
import json, statistics, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
c, f, p = (r[k] for k in ("ctxbuild clean", "find -delete", "pyclean"))
# min is the fairest view for the single-threaded tools, whose times swing widely when each
# unlink waits for the disk (see README); all three are printed.
for stat in ("mean", "median", "min"):
    cf, cp = c[stat] / f[stat], c[stat] / p[stat]
    print(f"{stat:>6}: ctxbuild {c[stat]:.3f}s  find {f[stat]:.3f}s  pyclean {p[stat]:.3f}s"
          f"  ->  ctxbuild/find {cf:.2f}x (target <= 0.25)  ctxbuild/pyclean {cp:.2f}x (target <= 0.12)")
PY
echo "results: $bench/clean.md, $bench/clean.json" >&2
