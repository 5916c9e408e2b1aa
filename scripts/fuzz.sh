#!/usr/bin/env bash
# Fuzz the pure core natively with cargo-fuzz (libFuzzer) on the nightly toolchain.
#   scripts/fuzz.sh SECONDS [TARGET...]
#     e.g. scripts/fuzz.sh 30              (every target, 30 s each: the CI smoke run)
#          scripts/fuzz.sh 900 jwt         (one target, 15 minutes)
# Installs what it needs (the nightly toolchain with rustup, cargo-fuzz with cargo install),
# builds the targets in fuzz/ once, then runs each for SECONDS on one core, starting from the
# committed seeds (fuzz/seeds/TARGET) plus the inputs earlier runs kept (fuzz/corpus/TARGET,
# git-ignored). Limits: 1 s per input (-timeout), 256 MiB (-rss_limit_mb); a crash, timeout or
# OOM leaves its input in fuzz/artifacts/TARGET/ and makes the script exit non-zero after the
# other targets have run. One log per target in .tmp/fuzz/, and a summary table at the end
# (executions, coverage, corpus size per target).
# libFuzzer's limits are wall-clock: run it at normal priority on a busy machine (under `nice -n 19`
# a starved process gets flagged for a timeout); a timeout input is timed alone after the run.
# Knobs: FUZZ_SANITIZER (default none: safe Rust gains little from ASan and runs about twice
# as fast without it; "address" for the cargo-fuzz default), FUZZ_JOBS (parallel targets, default 1).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${1:-}"
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || {
  echo "usage: scripts/fuzz.sh SECONDS [TARGET...]   (SECONDS per target, e.g. 30)" >&2
  exit 2
}
shift
sanitizer="${FUZZ_SANITIZER:-none}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing the nightly toolchain (rustup, profile minimal)" >&2
  rustup toolchain install nightly --profile minimal >&2 || {
    echo "fuzz.sh: could not install the nightly toolchain with rustup (offline?); cargo-fuzz needs it" >&2
    exit 1
  }
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz (cargo install --locked; a few minutes)" >&2
  cargo +nightly install cargo-fuzz --locked >&2 || {
    echo "fuzz.sh: could not install cargo-fuzz from crates.io (offline?)" >&2
    exit 1
  }
fi

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# -O (release) and -a (debug assertions, so also overflow checks); one cargo build for all targets.
build=(--sanitizer "$sanitizer" -O -a)
cargo +nightly fuzz build "${build[@]}" >&2 || {
  echo "fuzz.sh: building the fuzz targets failed" >&2
  exit 1
}

# Run the binaries built above (not `cargo fuzz run`, which would build again before each target
# and pick up any source edited meanwhile).
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
logs="$root/.tmp/fuzz"
mkdir -p "$logs"
failed=()
summary=()
for t in "${targets[@]}"; do
  bin="fuzz/target/$host/release/$t"
  [[ -x "$bin" ]] || { echo "fuzz.sh: no fuzz target $t ($bin)" >&2; exit 2; }
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/artifacts/$t"
  echo "fuzz.sh: $t for ${seconds}s" >&2
  status=0
  # One process on one core (no -jobs/-workers). -print_final_stats gives the totals read below.
  "$bin" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$seconds" -timeout=1 \
    -rss_limit_mb=256 -malloc_limit_mb=256 -print_final_stats=1 \
    "fuzz/corpus/$t" "fuzz/seeds/$t" >"$logs/$t.log" 2>&1 || status=$?
  # The totals libFuzzer prints at exit and its last status line
  # ("#RUNS<TAB>DONE cov: N ft: N corp: N/..."); "?" where a crash cut them short.
  final_stat() { grep -oE "^stat::$1: *[0-9]+" "$logs/$t.log" | grep -oE '[0-9]+$' | tail -1 || true; }
  field() { grep -oE "$1: [0-9]+" <<<"$last" | grep -oE '[0-9]+' || true; }
  runs="$(final_stat number_of_executed_units)"
  rss="$(final_stat peak_rss_mb)"
  last="$(grep -E '^#[0-9]+[[:space:]]' "$logs/$t.log" | tail -1 || true)"
  cov="$(field cov)"
  ft="$(field ft)"
  corp="$(field corp)"
  verdict=ok
  if [[ $status -ne 0 ]]; then
    verdict="FAILED (exit $status; see $logs/$t.log and fuzz/artifacts/$t/)"
    failed+=("$t")
    grep -E 'ERROR: libFuzzer|panicked at|deadly signal|timeout|out-of-memory' "$logs/$t.log" | head -5 >&2 || true
    echo "fuzz.sh: reproduce with: $bin fuzz/artifacts/$t/<file>" >&2
    # libFuzzer's timeout is wall-clock time: on a busy machine a starved process can be
    # flagged. Time each timeout input alone to tell a slow input from a stall.
    for a in "fuzz/artifacts/$t"/timeout-*; do
      [[ -e "$a" ]] || continue
      ms="$("$bin" "$a" 2>&1 | grep -oE 'in [0-9]+ ms' | grep -oE '[0-9]+' || true)"
      echo "fuzz.sh: $a takes ${ms:-?} ms when run alone (far below 1000: the machine stalled, not the input)" >&2
    done
  fi
  summary+=("$(printf '%-14s %12s %7s %7s %6s %8s  %s' "$t" "${runs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$verdict")")
done

printf '%-14s %12s %7s %7s %6s %8s  %s\n' target executions cov ft corpus rss_mb result
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
