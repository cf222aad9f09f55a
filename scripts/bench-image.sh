#!/usr/bin/env bash
# Benchmarks `ctxbuild image` against `DOCKER_BUILDKIT=0 docker build`, side by side in one
# hyperfine run each, on the real engine:
#
#   1. the CPython corpus as a context, `FROM scratch` + `COPY . /x`, cache off (every run
#      uploads and copies the whole context): wall time, and ctxbuild's peak RSS via
#      /usr/bin/time -v. Targets: wall <= 0.9x docker build, peak RSS <= 64 MiB.
#   2. an unchanged rebuild of the example backend (offline Python base image): ctxbuild's
#      no-op build (no upload, no build) vs docker's fully cached build: <= 0.5x.
#   3. an unchanged rebuild with the CPython corpus as the context (FROM scratch + COPY . /x,
#      Dockerfile inside the context for both): ctxbuild re-keys warm and skips; docker
#      uploads the whole context to learn that every step is cached: <= 0.05x.
#   4. (part `buildkit`) BuildKit vs classic, both through ctxbuild and both through the 20.10
#      docker CLI (`DOCKER_BUILDKIT=1 /usr/bin/docker build` vs `DOCKER_BUILDKIT=0`): a cold
#      (--no-cache) and a fully cached (--force: no no-op skip) build of the example backend,
#      and the corpus context (FROM scratch + COPY . /x, --no-cache). No target: figures.
#
# Usage: scripts/bench-image.sh [WORKDIR]   (default: a temp dir; needs hyperfine, a release build)
#        BENCH_PARTS="backend noop-corpus" scripts/bench-image.sh   (only those parts; default
#        all: corpus backend noop-corpus)
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

parts=${BENCH_PARTS:-corpus backend noop-corpus buildkit}
want() { [[ " $parts " == *" $1 "* ]]; }
rss_kb=0
tag=ctxbuild-bench/corpus:1
if want corpus; then
echo "== corpus: $(du -sh "$corpus" | cut -f1), $(find "$corpus" -type f | wc -l) files, $(find "$corpus" -name '*.pyc' | wc -l) .pyc"
cd "$work"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/corpus.json" \
    -n "ctxbuild image" "$bin --progress none image corpus -f scratch.Dockerfile --no-check --no-cache -t $tag" \
    -n "docker build (classic)" "DOCKER_BUILDKIT=0 docker build -q --no-cache -f scratch.Dockerfile -t $tag corpus"
/usr/bin/time -v "$bin" --progress none image corpus -f scratch.Dockerfile --no-check --no-cache -t "$tag" 2> "$work/time.txt" >/dev/null
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
docker rmi -f "$tag" >/dev/null 2>&1 || true
fi

if want backend; then
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
uptime
hyperfine --warmup 1 --runs "$runs" --export-json "$work/backend.json" \
    -n "ctxbuild image (cached)" "$bin --progress none image backend --alpine --base-image $pyimg -t $btag" \
    -n "docker build (cached)" "DOCKER_BUILDKIT=0 docker build -q -t $btag-docker $work/backend"
docker rmi -f "$btag-docker" >/dev/null 2>&1 || true
docker rmi -f "$btag" >/dev/null 2>&1 || true
fi

if want noop-corpus; then
echo "== unchanged rebuild, the corpus as context (FROM scratch + COPY . /x)"
# The Dockerfile inside the context for both, so docker's COPY . cache can hit.
printf 'FROM scratch\nCOPY . /x\n' > "$corpus/Dockerfile"
touch -d '2 hours ago' "$corpus/Dockerfile"
ntag=ctxbuild-bench/corpus-noop:1
cd "$work"
"$bin" --progress none image corpus -f corpus/Dockerfile --no-check -t "$ntag" >/dev/null
DOCKER_BUILDKIT=0 docker build -q -t "$ntag-docker" corpus >/dev/null
uptime
hyperfine --warmup 1 --runs "${BENCH_NOOP_RUNS:-3}" --export-json "$work/noop-corpus.json" \
    -n "ctxbuild image (no-op)" "$bin --progress none image corpus -f corpus/Dockerfile --no-check -t $ntag" \
    -n "docker build (cached)" "DOCKER_BUILDKIT=0 docker build -q -t $ntag-docker corpus"
uptime
docker rmi -f "$ntag-docker" "$ntag" >/dev/null 2>&1 || true
rm -f "$corpus/Dockerfile"
fi

if want buildkit; then
echo "== BuildKit vs classic"
cd "$root"
rm -rf "$work/bk-backend" && cp -a examples/backend "$work/bk-backend"
"$bin" --progress none render backend --alpine --base-image "$pyimg" -o "$work/bk-backend/Dockerfile"
kt=ctxbuild-bench/bk:1
img="$bin --progress none image backend --alpine --base-image $pyimg"
uptime
hyperfine --warmup 0 --runs "${BENCH_COLD_RUNS:-3}" --export-json "$work/bk-cold.json" \
    -n "ctxbuild buildkit (cold)" "$img --builder buildkit --no-cache -t $kt" \
    -n "ctxbuild classic (cold)" "$img --builder classic --no-cache -t $kt-classic" \
    -n "docker BuildKit (cold)" "DOCKER_BUILDKIT=1 /usr/bin/docker build -q --no-cache -t $kt-docker $work/bk-backend" \
    -n "docker classic (cold)" "DOCKER_BUILDKIT=0 docker build -q --no-cache -t $kt-docker $work/bk-backend"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/bk-cached.json" \
    -n "ctxbuild buildkit (cached)" "$img --builder buildkit --force -t $kt" \
    -n "ctxbuild classic (cached)" "$img --builder classic --force -t $kt-classic" \
    -n "docker BuildKit (cached)" "DOCKER_BUILDKIT=1 /usr/bin/docker build -q -t $kt-docker $work/bk-backend" \
    -n "docker classic (cached)" "DOCKER_BUILDKIT=0 docker build -q -t $kt-docker $work/bk-backend"
cd "$work"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/bk-corpus.json" \
    -n "ctxbuild buildkit (corpus)" "$bin --progress none image corpus -f scratch.Dockerfile --no-check --no-cache --builder buildkit -t $kt-corpus" \
    -n "ctxbuild classic (corpus)" "$bin --progress none image corpus -f scratch.Dockerfile --no-check --no-cache --builder classic -t $kt-corpus" \
    -n "docker BuildKit (corpus)" "DOCKER_BUILDKIT=1 /usr/bin/docker build -q --no-cache -f scratch.Dockerfile -t $kt-corpus corpus" \
    -n "docker classic (corpus)" "DOCKER_BUILDKIT=0 docker build -q --no-cache -f scratch.Dockerfile -t $kt-corpus corpus"
uptime
docker rmi -f "$kt" "$kt-classic" "$kt-docker" "$kt-corpus" >/dev/null 2>&1 || true
fi

python3 - "$work" "$rss_kb" <<'PY'
import json, os, sys
work, rss = sys.argv[1], int(sys.argv[2])
def ratio(name):
    path = f"{work}/{name}.json"
    if not os.path.exists(path):
        return None
    r = json.load(open(path))["results"]
    return r[0]["mean"], r[1]["mean"], r[0]["mean"] / r[1]["mean"]
rows = [
    ("corpus", "corpus COPY . (--no-cache)", 0.9),
    ("backend", "unchanged backend rebuild (no-op)", 0.5),
    ("noop-corpus", "unchanged corpus rebuild (no-op)", 0.05),
]
for name, label, target in rows:
    r = ratio(name)
    if r is None:
        continue
    c, d, q = r
    ok = "ok" if q <= target else "MISS"
    print(f"{label}: ctxbuild {c:.3f}s vs docker build {d:.3f}s = {q:.3f}x (target <= {target}x) {ok}")
if rss:
    print(f"ctxbuild peak RSS (corpus --no-cache): {rss/1024:.1f} MiB (target <= 64 MiB)")
for name in ("bk-cold", "bk-cached", "bk-corpus"):
    path = f"{work}/{name}.json"
    if not os.path.exists(path):
        continue
    r = json.load(open(path))["results"]
    m = {x["command"]: x["mean"] for x in r}
    means = [x["mean"] for x in r]
    print(f"{name}: " + ", ".join(f"{x['command']} {x['mean']:.2f}s" for x in r))
    print(f"  ctxbuild buildkit/classic = {means[0]/means[1]:.2f}x; docker BuildKit/classic = {means[2]/means[3]:.2f}x; "
          f"ctxbuild buildkit/docker BuildKit = {means[0]/means[2]:.2f}x")
PY
