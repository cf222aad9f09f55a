#!/usr/bin/env bash
# Start a local container registry on loopback for push tests (idempotent).
#
# Uses Debian's docker-registry (distribution 2.x). Docker treats 127.0.0.0/8 registries as
# insecure by default, so no TLS is needed. Address: ${CTXBUILD_TEST_REGISTRY:-127.0.0.1:5000}.
set -euo pipefail
log() { printf 'registry: %s\n' "$*" >&2; }

addr="${CTXBUILD_TEST_REGISTRY:-127.0.0.1:5000}"
case "$addr" in
    127.*|localhost:*) ;;
    *) log "refusing non-loopback registry address $addr"; exit 1 ;;
esac

if curl -fsS --max-time 2 "http://$addr/v2/" >/dev/null 2>&1; then
    log "answers at $addr"
    exit 0
fi

if ! command -v docker-registry >/dev/null 2>&1; then
    log "installing docker-registry"
    if [ ! -f /tmp/.ctxbuild-apt-updated ]; then apt-get update -qq >/dev/null; touch /tmp/.ctxbuild-apt-updated; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
    # The package may start a service on the default port; we run our own on loopback.
fi

dir=/var/lib/ctxbuild-registry
mkdir -p "$dir"
cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
YAML
setsid nohup docker-registry serve "$dir/config.yml" >/var/log/ctxbuild-registry.log 2>&1 &
for _ in $(seq 1 30); do
    if curl -fsS --max-time 2 "http://$addr/v2/" >/dev/null 2>&1; then
        log "answers at $addr"
        exit 0
    fi
    sleep 0.5
done
log "did not answer at $addr; last lines of its log:"
tail -n 20 /var/log/ctxbuild-registry.log >&2 || true
exit 1
