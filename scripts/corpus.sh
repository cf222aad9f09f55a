#!/usr/bin/env bash
# Makes the benchmark corpus: a copy of this machine's CPython standard library directory
# (lib/pythonX.Y, site-packages included) with bytecode compiled for every module, so the
# tree carries the ~15k *.pyc in ~3k __pycache__ of a real installation.
#
# Usage: scripts/corpus.sh DIR      (DIR is created; the corpus is DIR/pristine)
#
# Idempotent: a finished corpus (marked by DIR/.complete) is left alone. Other benchmarks
# (keys, image) reuse DIR/pristine; never modify it — copy it (see scripts/bench-clean.sh).
set -euo pipefail

dir="${1:?usage: scripts/corpus.sh DIR}"
py="${PYTHON:-python3}"
src="$("$py" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
pristine="$dir/pristine"

if [[ -f "$dir/.complete" && -d "$pristine" ]]; then
    echo "corpus: $pristine (already there)" >&2
    exit 0
fi

rm -rf "$pristine" "$dir/.complete"
mkdir -p "$dir"
echo "corpus: copying $src to $pristine" >&2
cp -a "$src" "$pristine"
# Some installations ship without bytecode; compile whatever is missing. Modules that fail to
# compile (test fixtures with deliberate syntax errors) are expected: ignore the status.
"$py" -m compileall -q -j 0 "$pristine" >/dev/null 2>&1 || true
touch "$dir/.complete"

files=$(find "$pristine" -type f | wc -l)
pyc=$(find "$pristine" -name '*.pyc' | wc -l)
caches=$(find "$pristine" -type d -name __pycache__ | wc -l)
size=$(du -sh "$pristine" | cut -f1)
echo "corpus: $files files, $pyc .pyc in $caches __pycache__, $size" >&2
