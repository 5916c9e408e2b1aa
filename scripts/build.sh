#!/usr/bin/env bash
# Build the filter for wasm32-wasip1 (release) and print the absolute path of the .wasm on stdout.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target=wasm32-wasip1

if ! rustup target list --installed | grep -qx "$target"; then
  echo "build.sh: installing Rust target $target" >&2
  rustup target add "$target" >&2
fi

cargo build --release --target "$target" >&2

wasm="$root/target/$target/release/canary_gate.wasm"
if [[ ! -f "$wasm" ]]; then
  echo "build.sh: build succeeded but $wasm is missing" >&2
  exit 1
fi
echo "$wasm"
