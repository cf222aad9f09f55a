#!/usr/bin/env bash
# Benchmarks `ctxbuild image` against `DOCKER_BUILDKIT=0 docker build`, side by side in one
# hyperfine run each, on the real engine:
#
#   1. the CPython corpus as a context, `FROM scratch` + `COPY . /x`, cache off (every run
#      uploads and copies the whole context): wall time, and ctxbuild's peak RSS via
#      /usr/bin/time -v. Targets: wall <= 0.9x docker build, peak RSS <= 64 MiB.
#   2. a fully cached rebuild of the example backend (offline Python base image): <= 1.0x.
#
# Usage: scripts/bench-image.sh [WORKDIR]   (default: a temp dir; needs hyperfine, a release build)
# The corpus comes from scripts/corpus.sh when present, else a copy of the machine's CPython
# standard library (with its __pycache__ bytecode, as real trees carry it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${1:-$(mktemp -d /tmp/ctxbuild-bench-image.XXXXXX)}
mkdir -p "$work"
runs=${BENCH_RUNS:-5}
pyimg=${CTXBUILD_TEST_PYTHON:-ctxbuild-test/python:3-bookworm}

command -v hyperfine >/dev/null || { echo "bench-image: hyperfine is missing (apt-get install hyperfine)" >&2; exit 1; }
scripts/ensure-docker.sh >/dev/null
scripts/base-images.sh >/dev/null
cargo build --release --locked -q
bin="$root/target/release/ctxbuild"

corpus="$work/corpus"
if [ ! -d "$corpus" ]; then
    if [ -x scripts/corpus.sh ]; then
        scripts/corpus.sh "$corpus"
    else
        src=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
        [ -d /root/.pyenv/versions/3.11.7/lib/python3.11 ] && src=/root/.pyenv/versions/3.11.7/lib/python3.11
        cp -a "$src" "$corpus"
    fi
fi
printf 'FROM scratch\nCOPY . /x\n' > "$work/scratch.Dockerfile"
cat > "$work/ctxbuild.toml" <<TOML
[services.corpus]
kind = "python-asgi"
context = "corpus"
app = "main:app"
TOML

tag=ctxbuild-bench/corpus:1
echo "== corpus: $(du -sh "$corpus" | cut -f1), $(find "$corpus" -type f | wc -l) files, $(find "$corpus" -name '*.pyc' | wc -l) .pyc"
cd "$work"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/corpus.json" \
    -n "ctxbuild image" "$bin --progress none image corpus -f scratch.Dockerfile --no-check --no-cache -t $tag" \
    -n "docker build (classic)" "DOCKER_BUILDKIT=0 docker build -q --no-cache -f scratch.Dockerfile -t $tag corpus"
/usr/bin/time -v "$bin" --progress none image corpus -f scratch.Dockerfile --no-check --no-cache -t "$tag" 2> "$work/time.txt" >/dev/null
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
docker rmi -f "$tag" >/dev/null 2>&1 || true

echo "== cached rebuild of the example backend (FROM $pyimg)"
cd "$root"
btag=ctxbuild-bench/backend:1
"$bin" --progress none image backend --alpine --base-image "$pyimg" -t "$btag" >/dev/null
# docker build gets the same rendered Dockerfile, inside a copy of the context: given one from
# outside, the CLI injects it under a random name and rewrites .dockerignore, which busts
# the cache of `COPY . …` on every run.
rm -rf "$work/backend" && cp -a examples/backend "$work/backend"
"$bin" --progress none render backend --alpine --base-image "$pyimg" -o "$work/backend/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$btag-docker" "$work/backend" >/dev/null
hyperfine --warmup 1 --runs "$runs" --export-json "$work/backend.json" \
    -n "ctxbuild image (cached)" "$bin --progress none image backend --alpine --base-image $pyimg -t $btag" \
    -n "docker build (cached)" "DOCKER_BUILDKIT=0 docker build -q -t $btag-docker $work/backend"
docker rmi -f "$btag-docker" >/dev/null 2>&1 || true
docker rmi -f "$btag" >/dev/null 2>&1 || true

python3 - "$work" "$rss_kb" <<'PY'
import json, sys
work, rss = sys.argv[1], int(sys.argv[2])
def ratio(name):
    r = json.load(open(f"{work}/{name}.json"))["results"]
    return r[0]["mean"], r[1]["mean"], r[0]["mean"] / r[1]["mean"]
c, d, q = ratio("corpus")
print(f"corpus COPY . : ctxbuild {c:.2f}s vs docker build {d:.2f}s = {q:.2f}x (target <= 0.9x)")
print(f"ctxbuild peak RSS: {rss/1024:.1f} MiB (target <= 64 MiB)")
c, d, q = ratio("backend")
print(f"cached backend rebuild: ctxbuild {c:.2f}s vs docker build {d:.2f}s = {q:.2f}x (target <= 1.0x)")
PY
