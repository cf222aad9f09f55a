#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded number of executions (default 10 million each, at
# most FUZZ_SECONDS per target) and prints one line per target: executions, seconds, findings.
# Outside CI (too long for it). Needs cargo-fuzz and the nightly toolchain (`rustup toolchain
# list`); installs cargo-fuzz when missing. Findings land in fuzz/artifacts/TARGET/ and make the
# script exit 1; turn each into a regression test.
#
#   scripts/fuzz.sh                 # all targets, 10M runs each, under AddressSanitizer
#   RUNS=100000 scripts/fuzz.sh dockerfile
#   FUZZ_SANITIZER=none scripts/fuzz.sh   # 10-25x the throughput: safe Rust needs no ASAN to
#                                         # find panics, overflows and hangs
#   FUZZ_TIMEOUT=1800 scripts/fuzz.sh     # seconds before one input counts as a hang (default
#                                         # 10); raise it to pause the fuzzer (SIGSTOP) for a
#                                         # quiet benchmark without a false "timeout" on resume
#   FUZZ_WORKERS=2 scripts/fuzz.sh dockerignore   # one campaign over 2 fuzzer processes on the
#                                         # same corpus directory (each picks up the other's new
#                                         # inputs): RUNS is split between them and their
#                                         # executions summed; a finding in one stops both.
#                                         # (libFuzzer's own -fork mode ran at a third of the
#                                         # speed here: each short job re-learns its seeds.)

set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-10000000}"
FUZZ_SECONDS="${FUZZ_SECONDS:-3600}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    # dockerignore: each pattern compiles a regexp and each path is matched against every
    # pattern at every ancestor, so 64 KiB inputs ran at ~330/s. The harness parses 32 lines
    # and matches 16; 1 KiB is room enough for those.
    # dockerignore spends most of its time in the regex crate's compiler, whose every compare
    # the trace-compares instrumentation records; without it the target runs twice as fast
    # (own target dir, so the other targets keep their build).
    build=(-s "$FUZZ_SANITIZER" -O)
    case "$t" in
        dockerignore)
            max_len=1024
            build+=(--no-trace-compares --target-dir "fuzz/target-$FUZZ_SANITIZER-ntc")
            ;;
        *)
            max_len=65536
            build+=(--target-dir "fuzz/target-$FUZZ_SANITIZER")
            ;;
    esac
    workers="${FUZZ_WORKERS:-1}"
    per=$(( (RUNS + workers - 1) / workers ))
    nice -n "${FUZZ_NICE:-19}" cargo +nightly fuzz build "${build[@]}" "$t"
    start=$(date +%s)
    logs=() pids=()
    for ((w = 0; w < workers; w++)); do
        logs+=("$(mktemp)")
        nice -n "${FUZZ_NICE:-19}" cargo +nightly fuzz run "${build[@]}" "$t" -- -runs="$per" \
            -max_total_time="$FUZZ_SECONDS" -max_len="$max_len" -rss_limit_mb=2048 \
            -timeout="${FUZZ_TIMEOUT:-10}" >"${logs[w]}" 2>&1 &
        pids+=($!)
    done
    result="no finding"
    for ((w = 0; w < workers; w++)); do
        if ! wait -n; then
            result="FINDING (see fuzz/artifacts/$t/)"
            status=1
            for p in "${pids[@]}"; do pkill -P "$p" || true; kill "$p" 2>/dev/null || true; done
        fi
    done
    execs=0
    for log in "${logs[@]}"; do
        # libFuzzer ends with "Done N runs in S second(s)"; a cut-short run only has "#N" lines.
        n=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
        [ -n "$n" ] || n=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
        execs=$(( execs + ${n:-0} ))
        [[ $result == "no finding" ]] || tail -40 "$log"
        rm -f "$log"
    done
    echo "fuzz $t: $execs executions in $(( $(date +%s) - start )) s over $workers process(es) — $result"
done
exit $status
