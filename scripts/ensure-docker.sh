#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, starting Debian's dockerd when needed.
#
# Idempotent: safe to run when a daemon already runs. Installs docker.io with apt-get when
# dockerd is missing and we are root. Under CI=true, failure to get a daemon is fatal (exit 1);
# elsewhere it is fatal too, because the test suite needs a real engine — there is no mock.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

sock="${DOCKER_HOST:-unix:///var/run/docker.sock}"

ping_engine() {
    case "$sock" in
        unix://*) curl -fsS --max-time 3 --unix-socket "${sock#unix://}" http://localhost/_ping >/dev/null 2>&1 ;;
        tcp://*) curl -fsS --max-time 3 "http://${sock#tcp://}/_ping" >/dev/null 2>&1 ;;
        *) docker version >/dev/null 2>&1 ;;
    esac
}

apt_ready() {
    if [ ! -f /tmp/.ctxbuild-apt-updated ]; then
        apt-get update -qq >/dev/null
        touch /tmp/.ctxbuild-apt-updated
    fi
}

# The TLS and ssh transport tests put socat (a TLS proxy, a fake ssh's dial-stdio) in front of
# the engine and make their certificates with openssl: installed when missing and we are root
# (the tests fail, never skip, without them).
if [ "$(id -u)" = 0 ]; then
    for tool in socat openssl; do
        command -v "$tool" >/dev/null 2>&1 || { log "installing $tool"; apt_ready; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null; }
    done
fi

if ping_engine; then
    log "engine answers at $sock"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    log "no engine answers at $sock and we are not root, so we cannot start one"
    log "hint: start dockerd (sudo systemctl start docker) or set DOCKER_HOST"
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io (dockerd is missing)"
    apt_ready
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
command -v curl >/dev/null 2>&1 || { apt_ready; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

# A stale pid file from a killed daemon makes dockerd refuse to start.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: /var/log/ctxbuild-dockerd.log)"
    # containerd is started by dockerd itself when not running as a service.
    # setsid: its own session, so killing the process group of whatever started it (a CI step,
    # a terminal job) does not take the engine down with it.
    setsid nohup dockerd --host=unix:///var/run/docker.sock >/var/log/ctxbuild-dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
    if ping_engine; then
        log "engine answers at $sock"
        exit 0
    fi
    sleep 1
done

log "dockerd did not answer /_ping within 60 s; last lines of its log:"
tail -n 20 /var/log/ctxbuild-dockerd.log >&2 || true
exit 1
