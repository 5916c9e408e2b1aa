#!/usr/bin/env bash
# The soak: wrk at full load through the filter with Basic, access-key and JWT clients mixed,
# while the plugin configuration is pushed every 2 s (ECDS from a file; valid and invalid) and
# the JWKS rotates; then an Envoy restart. The driver and the pass criteria are in
# benches/soak/main.rs; results go to .tmp/soak/run-*/ and RELIABILITY.md has the figures.
#
#   scripts/soak.sh           # 600 s
#   scripts/soak.sh 60        # the CI variant (~2 min once built)
#   SOAK_SKIP_BUILD=1 CANARY_GATE_WASM=... scripts/soak.sh 60
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-600}"
log() { printf '[soak %s] %s\n' "$(date +%T)" "$*" >&2; }

if ! command -v wrk >/dev/null; then
  command -v apt-get >/dev/null || { log "error: wrk is missing and apt-get is not available"; exit 1; }
  sudo=""; [[ "$(id -u)" == 0 ]] || sudo=sudo
  log "apt-get install -y wrk"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >&2
fi

ENVOY_BIN=$(scripts/envoy.sh)
export ENVOY_BIN
if [[ ${SOAK_SKIP_BUILD:-0} != 1 || -z ${CANARY_GATE_WASM:-} ]]; then
  log "building canary-gate (scripts/build.sh)"
  CANARY_GATE_WASM=$(scripts/build.sh)
fi
export CANARY_GATE_WASM

# The dev profile: the driver only starts processes and reads counters.
exec cargo bench --profile dev --quiet --bench soak -- "$seconds"
