#!/usr/bin/env bash
# The project's test command: build the filter, fetch Envoy, run every test tier.
#   scripts/test.sh [extra cargo test args...]     e.g. scripts/test.sh --test auth -- --nocapture
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

wasm="$(scripts/build.sh)" || { echo "test.sh: scripts/build.sh failed" >&2; exit 1; }
envoy="$(scripts/envoy.sh)" || { echo "test.sh: scripts/envoy.sh failed" >&2; exit 1; }

export CANARY_GATE_WASM="$wasm"
export ENVOY_BIN="$envoy"
echo "test.sh: CANARY_GATE_WASM=$CANARY_GATE_WASM" >&2
echo "test.sh: ENVOY_BIN=$ENVOY_BIN" >&2

exec cargo test --all-targets "$@"
