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
# libFuzzer's limits are wall-clock: a timeout whose input runs fast alone is a stall of the
# machine, set aside in .tmp/fuzz/stalls/ (the target resumes); prefer normal priority anyway.
# Knobs: FUZZ_SANITIZER (default none: safe Rust gains little from ASan and runs about twice
# as fast without it; "address" for the cargo-fuzz default).
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
# libFuzzer's -timeout is wall-clock time, and a process the machine does not schedule for a
# second is flagged although its input is fast. So a timeout input is timed alone: if it runs in
# under 100 ms it was a stall; it is set aside in .tmp/fuzz/stalls/ and the target resumes for
# the rest of its time from the same corpus. A timeout that reproduces fails the target.
for t in "${targets[@]}"; do
  bin="fuzz/target/$host/release/$t"
  [[ -x "$bin" ]] || { echo "fuzz.sh: no fuzz target $t ($bin)" >&2; exit 2; }
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/artifacts/$t" "$logs/stalls"
  echo "fuzz.sh: $t for ${seconds}s" >&2
  : >"$logs/$t.log"
  status=0
  runs=0
  stalls=0
  end=$((SECONDS + seconds))
  while left=$((end - SECONDS)); [[ $left -gt 0 ]]; do
    status=0
    # One process on one core (no -jobs/-workers). -print_final_stats gives the totals read below.
    "$bin" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$left" -timeout=1 \
      -rss_limit_mb=256 -malloc_limit_mb=256 -print_final_stats=1 \
      "fuzz/corpus/$t" "fuzz/seeds/$t" >"$logs/$t.part.log" 2>&1 || status=$?
    cat "$logs/$t.part.log" >>"$logs/$t.log"
    n="$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$logs/$t.part.log" | grep -oE '[0-9]+$' | tail -1 || true)"
    runs=$((runs + ${n:-0}))
    [[ $status -ne 0 ]] || break
    stalled=0
    for a in "fuzz/artifacts/$t"/timeout-*; do
      [[ -e "$a" ]] || continue
      ms="$("$bin" "$a" 2>&1 | grep -oE 'in [0-9]+ ms' | grep -oE '[0-9]+' || true)"
      if [[ -n "$ms" && "$ms" -lt 100 ]]; then
        echo "fuzz.sh: $t: $a takes $ms ms alone: a stall of the machine, resuming" >&2
        mv "$a" "$logs/stalls/"
        stalled=1
      fi
    done
    [[ $stalled -eq 1 ]] || break
    stalls=$((stalls + 1))
    status=0
  done
  # The last status line of the last segment ("#RUNS<TAB>DONE cov: N ft: N corp: N/...",
  # cumulative: each segment reloads the corpus); "?" where a crash cut it short.
  last="$(grep -E '^#[0-9]+[[:space:]]' "$logs/$t.part.log" | tail -1 || true)"
  field() { grep -oE "$1: [0-9]+" <<<"$last" | grep -oE '[0-9]+' || true; }
  cov="$(field cov)"
  ft="$(field ft)"
  corp="$(field corp)"
  rss="$(grep -oE '^stat::peak_rss_mb: *[0-9]+' "$logs/$t.log" | grep -oE '[0-9]+$' | sort -n | tail -1 || true)"
  verdict=ok
  [[ $stalls -eq 0 ]] || verdict="ok ($stalls stalled timeout(s) set aside)"
  if [[ $status -ne 0 ]]; then
    verdict="FAILED (exit $status; see $logs/$t.log and fuzz/artifacts/$t/)"
    failed+=("$t")
    grep -E 'ERROR: libFuzzer|panicked at|deadly signal|timeout|out-of-memory' "$logs/$t.part.log" | head -5 >&2 || true
    echo "fuzz.sh: reproduce with: $bin fuzz/artifacts/$t/<file>" >&2
  fi
  summary+=("$(printf '%-14s %12s %7s %7s %6s %8s  %s' "$t" "$runs" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$verdict")")
done

printf '%-14s %12s %7s %7s %6s %8s  %s\n' target executions cov ft corpus rss_mb result
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
