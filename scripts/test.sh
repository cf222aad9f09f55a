#!/usr/bin/env bash
# The one test command: makes sure a real Docker engine, the offline test base images and a
# loopback registry are there, then runs the whole cargo test suite against them.
#
# Idempotent and safe when everything already runs. There is no mock engine: without a daemon
# the engine tests fail, they are never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-docker.sh
scripts/base-images.sh
scripts/registry.sh
# The Cloud Build step image (a static release binary FROM scratch): built once, then only when
# the binary changed.
STEP_PROFILE="${STEP_PROFILE:-step-test}" scripts/step-image.sh

export CTXBUILD_TEST_BUSYBOX="${CTXBUILD_TEST_BUSYBOX:-ctxbuild-test/busybox:1}"
export CTXBUILD_TEST_PYTHON="${CTXBUILD_TEST_PYTHON:-ctxbuild-test/python:3-bookworm}"
export CTXBUILD_TEST_NODE="${CTXBUILD_TEST_NODE:-ctxbuild-test/node:20-bookworm}"
export CTXBUILD_TEST_REGISTRY="${CTXBUILD_TEST_REGISTRY:-127.0.0.1:5000}"
export CTXBUILD_TEST_STEP_IMAGE="${CTXBUILD_STEP_IMAGE:-ctxbuild-test/ctxbuild:dev}"
# Engine tests must run: a missing daemon is a failure, not a skip.
export CTXBUILD_REQUIRE_ENGINE=1

cargo test --locked --features engine-tests "$@"
