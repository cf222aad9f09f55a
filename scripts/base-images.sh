#!/usr/bin/env bash
# Make the offline base images the test suite builds FROM, once per machine (idempotent).
#
# No container registry is reachable, so nothing can be pulled. We build:
#   ctxbuild-test/busybox:1        FROM scratch + busybox-static (fast, tiny)
#   ctxbuild-test/python:3-bookworm a debootstrap'ed minimal Debian with python3, venv and pip,
#                                  with this machine's CA bundle baked in so that pip inside a
#                                  build can reach the package index. Test images only.
#   ctxbuild-test/node:20-bookworm  that Python image plus this machine's node and npm (Debian's
#                                  or NodeSource's nodejs package; glibc-linked, so it runs on
#                                  the same Debian), trusting the same CA bundle for npm.
set -euo pipefail
log() { printf 'base-images: %s\n' "$*" >&2; }

BUSYBOX_IMAGE="${CTXBUILD_TEST_BUSYBOX:-ctxbuild-test/busybox:1}"
PYTHON_IMAGE="${CTXBUILD_TEST_PYTHON:-ctxbuild-test/python:3-bookworm}"
NODE_IMAGE="${CTXBUILD_TEST_NODE:-ctxbuild-test/node:20-bookworm}"
SUITE="${CTXBUILD_TEST_SUITE:-bookworm}"
MIRROR="${CTXBUILD_TEST_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

apt_ready() {
    if [ ! -f /tmp/.ctxbuild-apt-updated ]; then
        apt-get update -qq >/dev/null
        touch /tmp/.ctxbuild-apt-updated
    fi
}
need_pkg() { # need_pkg COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    apt_ready
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

work="$(mktemp -d /tmp/ctxbuild-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT

if have_image "$BUSYBOX_IMAGE"; then
    log "$BUSYBOX_IMAGE present"
else
    [ -x /bin/busybox ] && file_is_static=$(ldd /bin/busybox 2>&1 | grep -c 'not a dynamic' || true) || file_is_static=0
    if [ "${file_is_static:-0}" = 0 ]; then
        apt_ready
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
    fi
    mkdir -p "$work/bb/bin" "$work/bb/tmp" "$work/bb/etc"
    cp /bin/busybox "$work/bb/bin/busybox"
    for app in sh ls cat echo env sleep test true false wc find stat sha256sum mkdir rm cp mv chmod ln id ps wget tar; do
        ln -s busybox "$work/bb/bin/$app"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$work/bb/etc/passwd"
    echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >>"$work/bb/etc/passwd"
    printf 'FROM scratch\nCOPY bb/ /\nENV PATH=/bin\nCMD ["/bin/sh"]\n' >"$work/Dockerfile"
    log "building $BUSYBOX_IMAGE"
    DOCKER_BUILDKIT=0 docker build -q -t "$BUSYBOX_IMAGE" "$work" >/dev/null 2>&1
fi

if have_image "$PYTHON_IMAGE"; then
    log "$PYTHON_IMAGE present"
else
    need_pkg debootstrap debootstrap
    root="$work/rootfs"
    log "debootstrap $SUITE (minbase + python3) — a few minutes, once per machine"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        exit 1
    }
    # Trust this machine's CA bundle (test images only), and let pip install system-wide.
    cp "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ndisable-pip-version-check = true\n' >"$root/etc/pip.conf"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    ln -sf python3 "$root/usr/bin/python"
    log "importing $PYTHON_IMAGE"
    tar -C "$root" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' \
        -c 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        -c 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        -c 'CMD ["python3"]' - "$PYTHON_IMAGE" >/dev/null
fi

if have_image "$NODE_IMAGE"; then
    log "$NODE_IMAGE present"
else
    need_pkg node nodejs
    node_bin="$(readlink -f "$(command -v node)")"
    # NodeSource ships npm inside /usr/lib/node_modules; Debian's npm package under /usr/share.
    npm_dir=""
    for d in /usr/lib/node_modules/npm /usr/share/nodejs/npm; do
        if [ -f "$d/bin/npm-cli.js" ]; then npm_dir="$d"; break; fi
    done
    if [ -z "$npm_dir" ]; then
        log "no npm next to $node_bin (install the nodejs package with npm)"
        exit 1
    fi
    mkdir -p "$work/node/usr/local/bin" "$work/node/usr/local/lib/node_modules"
    cp "$node_bin" "$work/node/usr/local/bin/node"
    if [ "$npm_dir" = /usr/share/nodejs/npm ]; then
        # Debian splits npm's dependencies into sibling packages under /usr/share/nodejs.
        cp -a /usr/share/nodejs/. "$work/node/usr/local/lib/node_modules/"
    else
        cp -a "$npm_dir" "$work/node/usr/local/lib/node_modules/npm"
    fi
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/node/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/node/usr/local/bin/npx"
    {
        printf 'FROM %s\nCOPY node/ /\n' "$PYTHON_IMAGE"
        printf 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm_config_cafile=/etc/ssl/certs/ca-certificates.crt npm_config_update_notifier=false\n'
        printf 'CMD ["node"]\n'
    } >"$work/Dockerfile"
    log "building $NODE_IMAGE from $node_bin ($("$node_bin" --version)) and $npm_dir"
    DOCKER_BUILDKIT=0 docker build -q -t "$NODE_IMAGE" "$work" >/dev/null
fi

log "ready: $BUSYBOX_IMAGE $PYTHON_IMAGE $NODE_IMAGE"
