#!/usr/bin/env bash
# The project's test command: build the filter, fetch Envoy, run every test tier.
#   scripts/test.sh [--envoy VERSION] [extra cargo test args...]
#     e.g. scripts/test.sh --test auth -- --nocapture
#          scripts/test.sh --envoy 1.36.2 --test '*'     (integration tests on another Envoy)
# The Envoy version is --envoy, else $ENVOY_VERSION, else .envoy-version (see scripts/envoy.sh;
# $ENVOY_BIN, if set, wins over all of them).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ "${1:-}" == --envoy ]]; then
  [[ -n "${2:-}" ]] || { echo "test.sh: --envoy needs a version, e.g. --envoy 1.36.2" >&2; exit 2; }
  export ENVOY_VERSION="$2"
  shift 2
fi
export ENVOY_VERSION="${ENVOY_VERSION:-$(tr -d '[:space:]' <.envoy-version)}"

# curl drives the HTTP/2 (h2c) requests of tests/hostile.rs.
if ! command -v curl >/dev/null 2>&1; then
  echo "test.sh: curl is missing; installing Debian's curl" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl; } >&2 \
    || { echo "test.sh: could not install curl; install it and retry" >&2; exit 1; }
fi

wasm="$(scripts/build.sh)" || { echo "test.sh: scripts/build.sh failed" >&2; exit 1; }
envoy="$(scripts/envoy.sh)" || { echo "test.sh: scripts/envoy.sh failed" >&2; exit 1; }

export CANARY_GATE_WASM="$wasm"
export ENVOY_BIN="$envoy"
echo "test.sh: CANARY_GATE_WASM=$CANARY_GATE_WASM" >&2
echo "test.sh: ENVOY_BIN=$ENVOY_BIN (Envoy $ENVOY_VERSION)" >&2

# Every target unless the arguments pick targets themselves (--test NAME, --lib, ...).
targets=(--all-targets)
for arg in "$@"; do
  [[ "$arg" == -- ]] && break
  case "$arg" in
    --lib | --bins | --bin | --bin=* | --tests | --test | --test=* | --benches | --bench | --bench=* \
      | --examples | --example | --example=* | --doc | --all-targets) targets=() ;;
  esac
done
exec cargo test "${targets[@]}" "$@"
