#!/usr/bin/env bash
# Build ctxbuild's Cloud Build step image locally, without any registry: a static release
# binary packed FROM scratch with this machine's CA bundle, tagged ctxbuild-test/ctxbuild:dev
# (or $CTXBUILD_STEP_IMAGE). The repository's Dockerfile is the same image built from source;
# it needs a rust base image, which cannot be pulled here.
#
# Idempotent: cargo rebuilds only what changed, and the image is rebuilt only when the
# binary's hash differs from the one recorded in the existing image's label.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'step-image: %s\n' "$*" >&2; }

IMAGE="${CTXBUILD_STEP_IMAGE:-ctxbuild-test/ctxbuild:dev}"
TARGET=x86_64-unknown-linux-gnu
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# `--target` keeps these flags off build scripts and proc macros (they run on the host) and
# puts the static artifacts in target/$TARGET, apart from the ordinary release build.
# STEP_PROFILE=step-test (what scripts/test.sh uses) is the release profile without LTO and with
# more codegen units: the same code, statically linked and packed the same way, in a fraction of
# the build time. Users' images (the Dockerfile) use the release profile.
PROFILE="${STEP_PROFILE:-release}"
log "building the static binary (cargo build --profile $PROFILE --target $TARGET)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --locked --profile "$PROFILE" --target "$TARGET" --bin ctxbuild
bin="target/$TARGET/$PROFILE/ctxbuild"

# A static-pie binary makes ldd say "statically linked" (exit 0); a static non-PIE one "not a
# dynamic executable" (exit 1). Anything else names shared libraries.
if ! { ldd "$bin" 2>&1 || true; } | grep -Eq 'statically linked|not a dynamic executable'; then
    log "error: $bin is dynamically linked; a FROM scratch image cannot run it"
    exit 1
fi

sum="$(sha256sum "$bin" | cut -d' ' -f1)"
have="$(docker image inspect -f '{{ index .Config.Labels "dev.ctxbuild.binary-sha256" }}' "$IMAGE" 2>/dev/null || true)"
if [ "$have" = "$sum" ]; then
    log "$IMAGE is current (binary $sum)"
    exit 0
fi

work="$(mktemp -d /tmp/ctxbuild-step.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/usr/local/bin" "$work/root/etc/ssl/certs" "$work/root/tmp" "$work/root/workspace"
chmod 1777 "$work/root/tmp"
cp "$bin" "$work/root/usr/local/bin/ctxbuild"
strip "$work/root/usr/local/bin/ctxbuild" 2>/dev/null || true
cp "$CA_BUNDLE" "$work/root/etc/ssl/certs/ca-certificates.crt"
# The same file layout as the Dockerfile's final stage, so tests run what users run.
cat >"$work/Dockerfile" <<EOF
FROM scratch
COPY root/ /
ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt CTXBUILD_COLOR=never
LABEL dev.ctxbuild.binary-sha256=$sum
WORKDIR /workspace
ENTRYPOINT ["ctxbuild"]
CMD ["--help"]
EOF
log "packing $IMAGE"
if ! out="$(DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$work" 2>&1)"; then
    printf '%s\n' "$out" >&2
    exit 1
fi
log "$IMAGE built ($(du -h "$work/root/usr/local/bin/ctxbuild" | cut -f1) binary)"
