# ctxbuild's step image for Cloud Build (and any CI that mounts the Docker socket):
#
#   docker build -t gcr.io/PROJECT/ctxbuild .            # from the repository root
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock -v "$PWD:/workspace" \
#       gcr.io/PROJECT/ctxbuild image backend --push -t REGISTRY/backend:1
#
# A static binary (glibc's crt-static on the gnu target; templates are embedded) FROM scratch
# with the CA bundle and nothing else: no shell, no package manager, ~10 MB. It runs as root
# so the mounted socket is usable. Name resolution for DOCKER_HOST=tcp://HOST works without
# NSS modules (see "The step image" in README.md). Needs crates.io and Docker Hub to build;
# offline, scripts/step-image.sh packs the same image from a locally built binary.

FROM rust:1-bookworm AS build
# x86_64 is what Cloud Build's builders run; aarch64-unknown-linux-gnu works the same way.
ARG TARGET=x86_64-unknown-linux-gnu
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --locked --release --target "$TARGET" --bin ctxbuild \
    && mkdir -p /out/usr/local/bin /out/etc/ssl/certs /out/tmp /out/workspace \
    && cp "target/$TARGET/release/ctxbuild" /out/usr/local/bin/ctxbuild \
    && strip /out/usr/local/bin/ctxbuild \
    && { ldd /out/usr/local/bin/ctxbuild 2>&1 || true; } | grep -Eq 'statically linked|not a dynamic' \
    && chmod 1777 /out/tmp \
    && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/

FROM scratch
COPY --from=build /out/ /
# CI logs are not terminals: no colour; `--progress plain` is passed by generated configs.
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    CTXBUILD_COLOR=never
WORKDIR /workspace
ENTRYPOINT ["ctxbuild"]
CMD ["--help"]
