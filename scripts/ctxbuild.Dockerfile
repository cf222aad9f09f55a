# ctxbuild's own image, for CI steps (Cloud Build, GitHub Actions…) that talk to the engine
# through its socket: `docker run -v /var/run/docker.sock:/var/run/docker.sock …`.
# Build from the repository root: docker build -f scripts/ctxbuild.Dockerfile -t ctxbuild .
# (Needs crates.io and Docker Hub; not buildable offline.)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/ctxbuild

FROM debian:bookworm-slim
# git: the revision label; openssh-client: DOCKER_HOST=ssh://…; ca-certificates: TLS engines.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ctxbuild /usr/local/bin/ctxbuild
# CI logs are not terminals: plain progress lines with step numbers and times.
ENV CTXBUILD_COLOR=never
WORKDIR /workspace
ENTRYPOINT ["ctxbuild"]
CMD ["--help"]
