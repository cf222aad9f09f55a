#!/usr/bin/env bash
# Benchmarks `ctxbuild plan` (cold and warm keying) and `ctxbuild context` on the CPython corpus,
# side by side with the tools users would otherwise reach for, in one hyperfine run each:
#   cold plan (stat cache empty)   vs  find -type f -print0 | xargs -0 -P2 b3sum
#   warm plan (stat cache valid)   vs  find . -printf '%s %T@ %m\n' (one lstat per entry, one
#                                      thread), fdfind -HI --changed-before 2100-01-01 (fd's
#                                      parallel walk with one stat per entry), fdfind -HI (a
#                                      bare walk), and ctxbuild ls (names only)
#   ctxbuild context -o /dev/null  vs  tar -cf - . | cat >/dev/null
# plus peak RSS of the cold plan and of the tar via /usr/bin/time -v.
# Targets (issues 3 and 14): cold ≤ 0.85× b3sum, warm ≤ 0.75× find -printf and ≤ 0.9× fd
# --changed-before (where it stood: 0.69× and 0.83×), ls ≤ 2× fd, tar ≤ 1.0× GNU tar,
# RSS ≤ 64 MiB. `uptime` is printed with each run: the machine is shared.
#
# Usage: scripts/bench-keys.sh [WORKDIR]   (default: a fresh /tmp directory; kept for reuse)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-$(mktemp -d /tmp/ctxbuild-bench-keys.XXXXXX)}
mkdir -p "$WORK"
CORPUS=$WORK/corpus
RUNS=${RUNS:-5}

for tool in hyperfine b3sum fdfind; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install hyperfine b3sum fd-find)" >&2; exit 2; }
done
if [ ! -x /usr/bin/time ]; then
  apt-get install -y time >/dev/null
fi

if [ ! -d "$CORPUS" ]; then
  if [ -x scripts/corpus.sh ]; then
    scripts/corpus.sh "$CORPUS"
  else
    # The CPython standard library with its __pycache__ (about 716 MB), as in issue 2.
    src=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    [ -d /root/.pyenv/versions/3.11.7/lib/python3.11 ] && src=/root/.pyenv/versions/3.11.7/lib/python3.11
    cp -a "$src" "$CORPUS"
  fi
fi
[ -f "$CORPUS/Dockerfile" ] || printf 'FROM scratch\nCOPY . /src/\n' >"$CORPUS/Dockerfile"
# Old mtimes everywhere, so the stat cache may keep every entry (it skips "racily clean" ones).
touch -d '2 hours ago' "$CORPUS/Dockerfile"

cargo build --release --locked --quiet
BIN=$REPO/target/release/ctxbuild
export CTXBUILD_CACHE_DIR=$WORK/cache
cd "$CORPUS"
echo "corpus: $(find . -type f | wc -l) files, $(du -sh . | cut -f1)"
tar -cf - . | cat >/dev/null   # page cache warm for everyone

uptime
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/cold.json" \
  --prepare "rm -rf $WORK/cache" \
  -n 'ctxbuild plan (cold)' "$BIN plan . --json >/dev/null" \
  -n 'find | xargs -P2 b3sum' 'find . -type f -print0 | xargs -0 -P2 b3sum >/dev/null'

"$BIN" plan . >/dev/null   # fill the stat cache
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/warm.json" \
  -n 'ctxbuild plan (warm)' "$BIN plan . --json >/dev/null" \
  -n 'fdfind -HI' 'fdfind -HI >/dev/null' \
  -n 'ctxbuild ls' "$BIN ls . >/dev/null" \
  -n "find -printf" "find . -printf '%s %T@ %m\\n' >/dev/null" \
  -n 'fdfind -HI --changed-before' 'fdfind -HI --changed-before 2100-01-01 >/dev/null'
uptime

hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/tar.json" \
  -n 'ctxbuild context -o /dev/null' "$BIN context . -o /dev/null" \
  -n 'tar -cf - . | cat' 'tar -cf - . | cat >/dev/null'

rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}'; }
rm -rf "$WORK/cache"
RSS_COLD=$(rss "$BIN" plan . --json)
RSS_WARM=$(rss "$BIN" plan . --json)
RSS_TAR=$(rss "$BIN" context . -o /dev/null)

python3 - "$WORK" "$RSS_COLD" "$RSS_WARM" "$RSS_TAR" <<'PY'
import json, sys
work, rc, rw, rt = sys.argv[1], *map(int, sys.argv[2:])
def pair(name):
    r = json.load(open(f"{work}/{name}.json"))["results"]
    return r[0]["mean"], r[1]["mean"], r[0]["command"], r[1]["command"]
rows = [("cold", 0.85), ("tar", 1.0)]
print()
print(f"{'comparison':<58} {'ours':>8} {'theirs':>8} {'ratio':>6} {'target':>7}")
for name, target in rows:
    a, b, ca, cb = pair(name)
    ok = "ok" if a / b <= target else "MISS"
    print(f"{ca + ' vs ' + cb:<58} {a:8.3f} {b:8.3f} {a/b:6.2f} {'≤'+str(target):>7} {ok}")
w = json.load(open(f"{work}/warm.json"))["results"]
warm = w[0]["mean"]
for i, label, target in ((3, "find -printf", 0.75), (4, "fdfind -HI --changed-before", 0.9), (1, "fdfind -HI", 2.0)):
    b = w[i]["mean"]
    print(f"{'ctxbuild plan (warm) vs ' + label:<58} {warm:8.3f} {b:8.3f} {warm/b:6.2f} {'≤'+str(target):>7} {'ok' if warm / b <= target else 'MISS'}")
ls, fd = w[2]["mean"], w[1]["mean"]
print(f"{'ctxbuild ls vs fdfind -HI':<58} {ls:8.3f} {fd:8.3f} {ls/fd:6.2f} {'≤2.0':>7} {'ok' if ls / fd <= 2.0 else 'MISS'}")
for label, kb in (("plan cold", rc), ("plan warm", rw), ("context", rt)):
    print(f"peak RSS {label:<10} {kb/1024:7.1f} MiB  (target ≤ 64 MiB) {'ok' if kb <= 64*1024 else 'MISS'}")
PY
