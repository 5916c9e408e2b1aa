#!/usr/bin/env bash
# Build the filter for wasm32-wasip1 (release: opt-level "z", fat LTO), optimise it with binaryen's
# `wasm-opt -O3`, and print the absolute path of the optimized .wasm on stdout (everything else goes
# to stderr). Why "z" then -O3 (smallest LLVM code, then binaryen's inlining and speed passes):
# BENCHMARKS.md, "Build A/B". WASM_OPT_LEVEL=-Oz (or -Os) builds the smaller, slower variant.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target=wasm32-wasip1

if ! rustup target list --installed | grep -qx "$target"; then
  echo "build.sh: installing Rust target $target" >&2
  rustup target add "$target" >&2
fi

# wasm-opt (Debian's binaryen package): -O3 takes the module from about 816 KB to 716 KB and makes
# it faster than the unprocessed one (-Oz: 706 KB, slower).
if ! command -v wasm-opt >/dev/null 2>&1; then
  echo "build.sh: wasm-opt is missing; installing Debian's binaryen package" >&2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "build.sh: wasm-opt not found and apt-get is not available; install binaryen (wasm-opt) and retry" >&2
    exit 1
  fi
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    sudo="sudo"
  fi
  if ! { $sudo apt-get update >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y binaryen >&2; }; then
    echo "build.sh: could not install binaryen with apt-get; install wasm-opt and retry" >&2
    exit 1
  fi
  if ! command -v wasm-opt >/dev/null 2>&1; then
    echo "build.sh: binaryen is installed but wasm-opt is still not on PATH" >&2
    exit 1
  fi
fi

# Only the cdylib: with crate-type ["cdylib", "rlib"] (the rlib is for the integration tests), a plain
# `cargo build` emits both from one rustc run and the cdylib comes out about 120 KB larger than when
# it is built alone with the same profile (lto = true).
cargo rustc --release --target "$target" --lib --crate-type cdylib >&2

built="$root/target/$target/release/canary_gate.wasm"
if [[ ! -f "$built" ]]; then
  echo "build.sh: build succeeded but $built is missing" >&2
  exit 1
fi

# A separate file: cargo's artifact is a hard link into target/, never rewrite it in place.
# (Written under a per-process name and renamed, so concurrent builds never share a temp file.)
wasm="$root/target/$target/release/optimized/canary_gate.wasm"
mkdir -p "$(dirname "$wasm")"
# The features are the ones rustc enables for wasm32-wasip1 (strip = true drops the
# target_features section wasm-opt would otherwise read them from).
level="${WASM_OPT_LEVEL:--O3}"
case "$level" in
  -O3 | -Os | -Oz) ;;
  *) echo "build.sh: WASM_OPT_LEVEL must be -O3, -Os or -Oz (got $level)" >&2; exit 2 ;;
esac
wasm-opt "$level" \
  --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
  --strip-debug --strip-producers "$built" -o "$wasm.tmp.$$" >&2
mv -f "$wasm.tmp.$$" "$wasm"
echo "build.sh: $(stat -c %s "$built") bytes from cargo, $(stat -c %s "$wasm") bytes after wasm-opt $level" >&2
echo "$wasm"
