#!/usr/bin/env bash
# Runs every command of ctxbuild on the generated scale trees of issue 14 and reports wall time
# and peak RSS (`/usr/bin/time -f '%e %M'`) per command:
#
#   ls, clean --dry-run, plan cold (stat cache empty), plan warm, plan --save, explain --since
#   (after a one-file change), context -o /dev/null,
#   image (FROM scratch + COPY . /, on the real engine), and clean last (it removes the
#   bytecode, so it runs once per freshly generated tree).
#
# Each tree also times `find . -printf '%s %T@ %m\n'` (one lstat per entry, one thread) in the
# same pass as a yardstick: the machine is shared, so compare ctxbuild's time per tree with
# find's of the same pass rather than across runs.
# Targets: the 1M-file tree < 256 MiB peak RSS for every command; the large-file context
# < 64 MiB for `context` and `image`.
#
# Usage: scripts/bench-scale.sh [TREE...]    TREE: 100k | 300k | 1m | NUMBER (files) | 5g (GiB)
#                                             (default: 100k 300k 1m 5g)
#   SCALE_WORK=/work/tmp-scale   where trees are generated (each is deleted after its pass)
#   SCALE_IMAGE=0                skip the `image` command (no engine needed); or a list of
#                                the trees to build images of, e.g. SCALE_IMAGE="100k 5g"
#                                (the engine needs ~4 min per 100k small files)
#   SCALE_BUILDERS="classic buildkit"  the builders `image` runs with, one row each
#                                (default classic; BuildKit unpacks a context much faster)
#   SCALE_REBUILD=1              after each `image`, change one module and build again (the
#                                rebuild's report compares with the saved plan of the first)
# Results are appended to $SCALE_WORK/scale.tsv (tree files bytes command seconds peak_kib).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${SCALE_WORK:-/work/tmp-scale}
mkdir -p "$work"
[ -x /usr/bin/time ] || { echo "bench-scale: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
CARGO_INCREMENTAL=0 cargo build --release --locked --quiet
bin=$repo/target/release/ctxbuild
export CTXBUILD_CACHE_DIR=$work/cache
with_image=${SCALE_IMAGE:-1}
if [ "$with_image" != 0 ]; then
    scripts/ensure-docker.sh >/dev/null
fi
tsv=$work/scale.tsv
[ -f "$tsv" ] || printf 'date\ttree\tfiles\tbytes\tcommand\tseconds\tpeak_kib\n' >"$tsv"

# measure TREE LABEL CMD...: one run, wall seconds and peak RSS, appended to the table.
measure() {
    local tree=$1 label=$2
    shift 2
    local out=$work/time.out
    if ! /usr/bin/time -o "$out" -f '%e %M' "$@" >/dev/null 2>"$work/stderr.out"; then
        echo "bench-scale: $label failed on $tree:" >&2
        tail -5 "$work/stderr.out" >&2
        return 1
    fi
    secs=$(tail -1 "$out" | cut -d' ' -f1)
    kib=$(tail -1 "$out" | cut -d' ' -f2)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$tree" "$files" "$bytes" "$label" "$secs" "$kib" >>"$tsv"
    printf '  %-22s %8.2f s %9.1f MiB\n' "$label" "$secs" "$(echo "$kib / 1024" | bc -l)"
}

run_tree() {
    local name=$1 mode count
    case $name in
        100k) mode=files count=100000 ;;
        300k) mode=files count=300000 ;;
        1m) mode=files count=1000000 ;;
        [0-9]*g) mode=large count=${name%g} ;;
        [0-9]*) mode=files count=$name ;;
        *) echo "bench-scale: unknown tree '$name' (100k, 300k, 1m, N, Ng)" >&2; exit 2 ;;
    esac
    local dir=$work/t$name
    rm -rf "$dir" "$work/cache"
    echo "== $name: generating ($(df -h --output=avail "$work" | tail -1 | tr -d ' ') free)"
    "$repo/scripts/gen-tree.sh" "$mode" "$count" "$dir"
    files=$(find "$dir" -type f | wc -l)
    bytes=$(du -sb "$dir" | cut -f1)
    echo "== $name: $files files, $(du -sh "$dir" | cut -f1); $(uptime | sed 's/.*load/load/')"
    cd "$dir"
    tar -cf - . | cat >/dev/null # the page cache warm for every command alike
    measure "$name" "find -printf" find . -printf '%s %T@ %m\n'
    measure "$name" "ls" "$bin" --progress none ls .
    measure "$name" "clean --dry-run" "$bin" --progress none clean --dry-run .
    rm -rf "$work/cache"
    measure "$name" "plan (cold)" "$bin" --progress none plan . --json
    measure "$name" "plan (warm)" "$bin" --progress none plan . --json
    measure "$name" "plan --save" "$bin" --progress none plan . --save "$work/plan.json"
    # explain reads the saved plan's manifest against this one's, after a unique change.
    changed=$(find "$dir/site-packages" -name '*.py' -print -quit)
    echo "# explained $(date +%s%N)" >>"$changed"
    measure "$name" "explain --since (1 file changed)" "$bin" --progress none explain . --since "$work/plan.json"
    rm -f "$work/plan.json"
    measure "$name" "context -o /dev/null" "$bin" --progress none context . -o /dev/null
    if [ "$with_image" = 1 ] || [[ " $with_image " == *" $name "* ]]; then
        cd "$work"
        printf '[services.scale]\nkind = "python-asgi"\ncontext = "t%s"\napp = "main:app"\n' "$name" >ctxbuild.toml
        local tag=ctxbuild-scale/t$name:1 builder
        for builder in ${SCALE_BUILDERS:-classic}; do
            measure "$name" "image ($builder)" "$bin" --progress none image scale --builder "$builder" \
                -f "$dir/Dockerfile" --no-check --force -t "$tag" || true
            if [ "${SCALE_REBUILD:-0}" = 1 ]; then
                # A rebuild: one module changed, so the report reads the saved plan of the
                # build above to name the file that made COPY rebuild.
                # The change is unique, so no earlier pass left a layer the engine could reuse.
                changed=$(find "$dir/site-packages" -name '*.py' -print -quit)
                echo "# changed $(date +%s%N)" >>"$changed"
                measure "$name" "image ($builder, 1 file changed)" "$bin" --progress none image scale \
                    --builder "$builder" -f "$dir/Dockerfile" --no-check -t "$tag" || true
            fi
            docker rmi -f "$tag" >/dev/null 2>&1 || true
        done
        rm -f ctxbuild.toml
        cd "$dir"
    fi
    measure "$name" "clean" "$bin" --progress none clean .
    cd "$work"
    rm -rf "$dir" "$work/cache"
}

trees=("$@")
[ ${#trees[@]} -gt 0 ] || trees=(100k 300k 1m 5g)
echo "bench-scale: $(date -u +%FT%TZ), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -r)"
for t in "${trees[@]}"; do
    run_tree "$t"
done

# Growth: per 100k files (file trees) and per GiB (large trees), from this run's rows.
python3 - "$tsv" "${trees[@]}" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
want = sys.argv[2:]
last = {}
for r in rows:
    last[(r["tree"], r["command"])] = r
print()
print(f"{'tree':<6} {'command':<22} {'seconds':>8} {'peak MiB':>9} {'s/100k files':>13} {'s/GiB':>7} {'x find':>7}  target")
for t in want:
    find = last.get((t, "find -printf"))
    for (tree, cmd), r in last.items():
        if tree != t:
            continue
        s, kib = float(r["seconds"]), int(r["peak_kib"])
        files, gib = int(r["files"]), int(r["bytes"]) / (1 << 30)
        per100k = s / files * 1e5
        pergib = s / gib if gib > 0.05 else float("nan")
        ratio = s / float(find["seconds"]) if find and float(find["seconds"]) > 0 else float("nan")
        target = ""
        if files >= 1_000_000:
            target = "ok" if kib < 256 * 1024 else "MISS (256 MiB)"
        if t.endswith("g") and (cmd == "context -o /dev/null" or cmd.startswith("image")):
            target = "ok" if kib < 64 * 1024 else "MISS (64 MiB)"
        print(f"{t:<6} {cmd:<22} {s:8.2f} {kib/1024:9.1f} {per100k:13.3f} {pergib:7.2f} {ratio:7.2f}  {target}")
PY
