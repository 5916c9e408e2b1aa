#!/usr/bin/env bash
# Throughput and latency of canary-gate inside Envoy, side by side with no filter, Envoy's
# native filters and a minimal wasm filter. This script installs what the benchmark needs and
# runs the driver, benches/envoy/ (`cargo bench --bench envoy`); the rows, the method and the
# knobs (BENCH_ROUNDS, BENCH_DURATION, BENCH_VARIANTS, ...) are described there.
#
#   scripts/bench.sh                      # full run: 3 rounds x 10 s per variant (~8 min)
#   BENCH_ROUNDS=1 BENCH_DURATION=3 BENCH_WARMUP=1 scripts/bench.sh   # smoke, < 2 min once built
#   scripts/bench.sh --list               # the rows
#   BENCH_SKIP_BUILD=1                    # use the .wasm files already built
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

apt_updated=0
need() { # COMMAND [DEBIAN PACKAGE]
  command -v "$1" >/dev/null && return 0
  command -v apt-get >/dev/null || { log "error: $1 is missing and apt-get is not available"; exit 1; }
  if [[ $apt_updated == 0 ]]; then apt-get update -qq >&2; apt_updated=1; fi
  log "apt-get install -y ${2:-$1}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${2:-$1}" >&2
}
need wrk
need taskset util-linux
need openssl
[[ ${BENCH_PROFILE:-0} != 1 ]] || need perf linux-perf

# Envoy: $ENVOY_BIN, else the version in .envoy-version (see scripts/envoy.sh).
ENVOY_BIN=$(scripts/envoy.sh)
export ENVOY_BIN
export BENCH_MINIMAL_WASM="${BENCH_MINIMAL_WASM:-$PWD/target/wasm32-wasip1/release/minimal_filter.wasm}"
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  log "building canary-gate (scripts/build.sh: release cdylib + wasm-opt -O3, what users deploy)"
  built=$(scripts/build.sh)
  export BENCH_GATE_WASM="${BENCH_GATE_WASM:-$built}"
  log "building benches/minimal-filter (same profile)"
  cargo build --quiet --release --target wasm32-wasip1 --target-dir "$PWD/target" \
    --manifest-path benches/minimal-filter/Cargo.toml
fi

export BENCH_CMD="${BENCH_CMD:-scripts/bench.sh}"
# The dev profile: the driver only starts processes and reads counters, so its own speed does
# not matter, and it reuses the test build instead of minutes of release LTO.
exec cargo bench --profile dev --quiet --bench envoy -- "$@"
