#!/usr/bin/env bash
# Generates the deterministic scale trees of issue 14 (no network, fixed seed: the same
# arguments give the same names, sizes, contents and mtimes on every machine with python3 ≥ 3.8).
#
#   scripts/gen-tree.sh files N DIR   N mostly-small files shaped like an installed Python
#                                     environment: packages nested 1–6 deep, ~24 entries per
#                                     directory, `__init__.py` in each package, modules of
#                                     0.1–64 KiB (median ≈ 2 KiB), a few data files, and a
#                                     `__pycache__` beside the modules holding 20 % of all files
#                                     as `*.cpython-311.pyc`. A `Dockerfile` (`FROM scratch` +
#                                     `COPY . /`) sits at the root.
#   scripts/gen-tree.sh large GB DIR  A context of large files totalling GB GiB: 32–512 MiB
#                                     files of real (non-sparse) incompressible data, written
#                                     from one 4 MiB pseudo-random block rotated per file, plus
#                                     the same Dockerfile.
#
# DIR must not exist (the generator never deletes anything). Every mtime is set 2 hours in the
# past, so the stat cache of `ctxbuild plan` may keep every entry (it skips "racily clean" ones).
# Sizes: 100k files 0.57 GB (0.8 GB on disk), 300k 1.7 GB (2.3 GB), 1M 5.8 GB (7.7 GB on disk);
# 1M takes ≈ 3 minutes to generate and as long to delete on this machine.
set -euo pipefail

usage() { echo "usage: scripts/gen-tree.sh files N DIR | scripts/gen-tree.sh large GB DIR" >&2; exit 2; }
[ $# -eq 3 ] || usage
mode=$1 n=$2 dir=$3
case $mode in files | large) ;; *) usage ;; esac
[[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || { echo "gen-tree: N must be a positive integer, got '$n'" >&2; exit 2; }
[ ! -e "$dir" ] || { echo "gen-tree: $dir exists; remove it or name a new directory" >&2; exit 2; }

exec python3 - "$mode" "$n" "$dir" <<'PY'
import hashlib, os, random, sys, time

mode, n, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(14)  # issue 14; random.Random(int) is stable across CPython versions
MTIME = int(time.time()) - 7200

def block(size):
    """Deterministic pseudo-random bytes (blake2b in counter mode, not `random`, whose byte
    generators changed between Python versions)."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.blake2b(i.to_bytes(8, "little"), digest_size=64).digest()
        i += 1
    return bytes(out[:size])

def dockerfile():
    path = os.path.join(root, "Dockerfile")
    with open(path, "w") as f:
        f.write("FROM scratch\nCOPY . /\n")
    os.utime(path, (MTIME, MTIME))

def large(gib):
    os.makedirs(root)
    blk = block(4 << 20)
    total, i = gib << 30, 0
    while total > 0:
        size = min(total, rng.choice([32, 64, 128, 256, 512]) << 20)
        # Rotating the block per file makes every file's content (and blake3 key) distinct.
        rot = (i * 4099) % len(blk)
        chunk = blk[rot:] + blk[:rot]
        d = os.path.join(root, f"data{i % 4}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"blob{i:04}.bin")
        with open(path, "wb") as f:
            left = size
            while left > 0:
                f.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
        os.utime(path, (MTIME, MTIME))
        total -= size
        i += 1
    dockerfile()
    print(f"gen-tree: {i} files, {gib} GiB in {root}", file=sys.stderr)

# Source text to slice module bodies from: Python-looking lines, every line distinct.
WORDS = ("def", "return", "self", "value", "import", "class", "async", "await", "request",
         "response", "config", "yield", "lambda", "items", "result", "None", "True", "raise")
def text(size):
    lines, have, i = [], 0, 0
    while have < size:
        w = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(1 + i % 9))
        line = f"    {w}_{i} = {i * 2654435761 % 1000003}  # {i:x}\n"
        lines.append(line)
        have += len(line)
        i += 1
    return "".join(lines).encode()

SRC = text(8 << 20)
BIN = block(1 << 20)

def module_size():
    # Log-normal around 2 KiB, clamped to 100 B .. 64 KiB: what site-packages looks like.
    return max(100, min(64 << 10, int(rng.lognormvariate(7.6, 1.1))))

def files(total):
    os.makedirs(root)
    pyc_target = total // 5
    made = pyc = 0
    seq = 0  # distinct content per file: the slice offset moves with every file
    # A stack of directories to fill (no recursion): each package gets some modules, a
    # __pycache__ with the bytecode of 1 module in 4 (global quota: 20 % of files), and
    # child packages, until the file budget is spent.
    stack = []
    top = 0
    def write(path, data):
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (MTIME, MTIME))
    while made < total:
        if not stack:
            stack.append((os.path.join(root, f"site-packages/pkg{top:05}"), 1))
            top += 1
        d, depth = stack.pop()
        os.makedirs(d, exist_ok=True)
        mods = rng.randint(8, 30)
        names = ["__init__"] + [f"mod_{depth}_{k:02}" for k in range(mods - 1)]
        pyc_names = []
        for name in names:
            if made >= total:
                break
            size = module_size()
            off = (seq * 7919) % (len(SRC) - size)
            seq += 1
            write(os.path.join(d, name + ".py"), SRC[off : off + size])
            made += 1
            # Bytecode for 1 module in 4 (0.25 × 0.8 = 20 % of all files), until the quota
            # is reached.
            if pyc < pyc_target and made < total and rng.random() < 0.27:
                pyc_names.append((name, size))
                made += 1
                pyc += 1
            if rng.random() < 0.03 and made < total:
                bsize = rng.choice([512, 4096, 65536, 262144])
                boff = (seq * 104729) % (len(BIN) - bsize)
                write(os.path.join(d, f"{name}.dat"), BIN[boff : boff + bsize])
                made += 1
        if pyc_names:
            cache = os.path.join(d, "__pycache__")
            os.makedirs(cache, exist_ok=True)
            for name, size in pyc_names:
                boff = (seq * 104729) % (len(BIN) - size)
                seq += 1
                write(os.path.join(cache, f"{name}.cpython-311.pyc"), b"\xa7\r\r\n" + BIN[boff : boff + size])
        # Children: packages branch 0–3 wide, 6 deep at most.
        if depth < 6:
            for k in range(rng.choice([0, 0, 1, 1, 2, 3])):
                stack.append((os.path.join(d, f"sub{depth}_{k}"), depth + 1))
    dockerfile()
    print(f"gen-tree: {made} files ({pyc} .pyc) under {root}", file=sys.stderr)

if mode == "large":
    large(n)
else:
    files(n)
PY
