//! Throughput and latency of canary-gate inside Envoy, side by side with no filter, Envoy's
//! native filters and a minimal wasm filter. The driver behind `scripts/bench.sh`, which
//! installs wrk, builds the two `.wasm` files, finds Envoy and runs
//! `cargo bench --bench envoy -- ARGS`. It starts every Envoy with the integration tests'
//! launcher (`tests/common/envoy.rs`) and generates the bootstraps as JSON from the same pieces
//! (`tests/common/bootstrap.rs`).
//!
//! ```text
//! scripts/bench.sh                      # full run: 3 rounds x 10 s per variant (~8 min)
//! BENCH_ROUNDS=1 BENCH_DURATION=3 BENCH_WARMUP=1 scripts/bench.sh   # smoke, < 2 min once built
//! BENCH_ROUNDS=10 BENCH_DURATION=3 scripts/bench.sh   # busy machine: finer interleaving
//! scripts/bench.sh --list                # the rows
//! ```
//!
//! Layout (2 cores): each proxy Envoy under test runs with `--concurrency 1` pinned to one core;
//! wrk and the upstream Envoy (a separate process answering with `direct_response`) share the
//! other core. Every variant gets its own proxy Envoy, started, checked (2xx with the row's
//! headers; 401/403 without them for auth rows) and warmed up once; then the variants are
//! measured in turn (A B C ... then ... C B A) for `BENCH_ROUNDS` rounds and the table reports
//! medians. A row is INVALID if any response in any round was not 2xx (counted by the proxy's
//! own `downstream_rq_2xx`/`completed` stats and by wrk), wrk saw socket errors, or a check
//! failed.
//!
//! Knobs (environment):
//! ```text
//! BENCH_ROUNDS=3 BENCH_DURATION=10 BENCH_WARMUP=3 BENCH_CONNECTIONS=16
//! BENCH_VARIANTS="none gate-random ..."   subset (their references are added)
//! BENCH_PROXY_CPU=0 BENCH_LOAD_CPU=1       cores for the proxy / wrk+upstream
//! BENCH_WASM_RUNTIME=v8                   envoy.wasm.runtime.<this>
//! BENCH_OUT=bench/results-<date>-<HHMM>.md where the markdown goes (UTC start time)
//! ENVOY_BIN=/path/to/envoy                the Envoy to run (scripts/bench.sh sets it)
//! BENCH_GATE_WASM=path/to/canary_gate.wasm measure another build (e.g. opt-level 3)
//! BENCH_BUILDS="z=a.wasm o3=b.wasm"     every canary-gate row once per build (row@label), interleaved
//! BENCH_MINIMAL_WASM=path                 the minimal filter (default: its release build)
//! BENCH_PROFILE=1                         add a perf profile per variant (where the CPU goes)
//! BENCH_PROFILE_SECONDS=8                 length of each profiled window
//! ```
//!
//! Without `--bench` (that is, under `cargo test --all-targets`) it only checks its rows: every
//! reference names a row and every canary-gate configuration is one `config::parse` accepts.
//!
//! Adding a variant is one `Row` in `rows()` (`rows.rs`). `measure.rs` starts, checks and
//! measures the Envoys; `report.rs` writes the markdown.

// A benchmark driver: set-up that fails must stop the run loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// Before the modules, so they can use it.
macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("[bench {}] {}", $crate::sh("date", &["+%T"]), format!($($arg)*))
    };
}

#[path = "../../tests/common/bootstrap.rs"]
mod bootstrap;
#[path = "../../tests/common/envoy.rs"]
mod envoy;
mod measure;
mod report;
mod rows;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;

use measure::{rss_kb, status_of, Bench, Knobs, Proxy, RUNS_HEADER};
use report::{report, Context};
use rows::{check_rows, per_build, rows, select, upstream_bootstrap, Creds, Row, Wasm};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The stdout of a command, trimmed; empty if it cannot run.
fn sh(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v} is not a valid value")),
        _ => Ok(default),
    }
}

const USAGE: &str =
    "usage: cargo bench --bench envoy [-- --list | --help]   (scripts/bench.sh runs it)
Knobs are environment variables: BENCH_ROUNDS BENCH_DURATION BENCH_WARMUP BENCH_CONNECTIONS
BENCH_VARIANTS BENCH_PROXY_CPU BENCH_LOAD_CPU BENCH_WASM_RUNTIME BENCH_OUT BENCH_GATE_WASM
BENCH_MINIMAL_WASM BENCH_BUILDS BENCH_PROFILE BENCH_PROFILE_SECONDS ENVOY_BIN (see benches/envoy/main.rs).";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let result = if args.iter().any(|a| a == "--list") {
        list()
    } else if bench {
        run()
    } else {
        // `cargo test --all-targets` runs benches without `--bench`: check, do not measure.
        test_mode()
    };
    if let Err(e) = result {
        log!("error: {e}");
        std::process::exit(1);
    }
}

fn keys_dir() -> PathBuf {
    Path::new(ROOT).join(".tmp/bench/keys")
}

fn list() -> Result<(), String> {
    let creds = Creds::make(&keys_dir())?;
    for r in rows(&creds) {
        println!("{:<22} {}", r.name, r.desc);
    }
    Ok(())
}

fn test_mode() -> Result<(), String> {
    let creds = Creds::make(&keys_dir())?;
    let all = rows(&creds);
    let gates = check_rows(&all)?;
    let subset = select(&all, Some("gate-header-key"))?;
    let names: Vec<&str> = subset.iter().map(|r| r.name).collect();
    if names
        != [
            "none",
            "native-apikey",
            "wasm-minimal",
            "wasm-hostcalls-key",
            "gate-random",
            "gate-header-key",
        ]
    {
        return Err(format!("BENCH_VARIANTS=gate-header-key selects {names:?}"));
    }
    println!(
        "benches/envoy: {} rows checked, {gates} canary-gate configurations accepted \
         (measure with scripts/bench.sh)",
        all.len()
    );
    Ok(())
}

/// `BENCH_BUILDS="label=path ..."`: canary-gate modules to compare within one run.
fn builds() -> Result<Vec<(String, PathBuf)>, String> {
    let text = std::env::var("BENCH_BUILDS").unwrap_or_default();
    text.split_whitespace()
        .map(|b| {
            let (label, path) = b
                .split_once('=')
                .ok_or_else(|| format!("BENCH_BUILDS: {b} is not label=path"))?;
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(format!("BENCH_BUILDS: {} is missing", path.display()));
            }
            Ok((label.to_owned(), path))
        })
        .collect()
}

fn run() -> Result<(), String> {
    let stamp = sh("date", &["+%Y%m%d-%H%M%S"]);
    let root = Path::new(ROOT);
    let run_dir = root.join(format!(".tmp/bench/run-{stamp}"));
    fs::create_dir_all(&run_dir).map_err(|e| format!("create {}: {e}", run_dir.display()))?;
    let ncpu = thread::available_parallelism().map_or(1, usize::from);
    let knobs = Knobs {
        rounds: env_or("BENCH_ROUNDS", 3)?,
        duration: env_or("BENCH_DURATION", 10)?,
        warmup: env_or("BENCH_WARMUP", 3)?,
        connections: env_or("BENCH_CONNECTIONS", 16)?,
        proxy_cpu: env_or("BENCH_PROXY_CPU", 0)?,
        load_cpu: env_or("BENCH_LOAD_CPU", 1)?,
        pin: ncpu >= 2,
        profile_seconds: env_or("BENCH_PROFILE_SECONDS", 8)?,
    };
    if !knobs.pin {
        log!("warning: {ncpu} core(s): running unpinned, figures will be noisy");
    }
    let out = match std::env::var("BENCH_OUT") {
        Ok(o) if !o.is_empty() => PathBuf::from(o),
        _ => root.join(format!(
            "bench/results-{}.md",
            sh("date", &["-u", "+%F-%H%M"])
        )),
    };
    let wasm = Wasm {
        gate: std::env::var_os("BENCH_GATE_WASM").map_or_else(
            || root.join("target/wasm32-wasip1/release/optimized/canary_gate.wasm"),
            PathBuf::from,
        ),
        minimal: std::env::var_os("BENCH_MINIMAL_WASM").map_or_else(
            || root.join("target/wasm32-wasip1/release/minimal_filter.wasm"),
            PathBuf::from,
        ),
        runtime: std::env::var("BENCH_WASM_RUNTIME").unwrap_or_else(|_| "v8".into()),
    };
    for f in [&wasm.gate, &wasm.minimal] {
        if !f.is_file() {
            return Err(format!(
                "{} is missing (scripts/bench.sh builds it)",
                f.display()
            ));
        }
    }
    if sh("wrk", &["--version"]).is_empty() && Command::new("wrk").output().is_err() {
        return Err("wrk is missing (scripts/bench.sh installs it)".into());
    }
    let envoy_bin = envoy::envoy_bin();
    let envoy_version = sh(&envoy_bin.to_string_lossy(), &["--version"])
        .lines()
        .find_map(|l| l.split_once("version: ").map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let clk_tck: f64 = sh("getconf", &["CLK_TCK"]).parse().unwrap_or(100.0);

    let creds = Creds::make(&keys_dir())?;
    let all = rows(&creds);
    check_rows(&all)?;
    let selected = select(&all, std::env::var("BENCH_VARIANTS").ok().as_deref())?;
    let builds = builds()?;
    let selected = per_build(selected, &builds);

    let bench = Bench {
        knobs,
        envoy_bin,
        run_dir: run_dir.clone(),
        clk_tck,
    };
    let k = &bench.knobs;
    let layout = if k.pin {
        format!(
            "proxy Envoy (--concurrency 1) on core {}; wrk (-t1) and upstream Envoy (--concurrency 1, direct_response) on core {}",
            k.proxy_cpu, k.load_cpu
        )
    } else {
        format!("unpinned ({ncpu} core)")
    };
    let uptime_before = sh("uptime", &[]);
    log!("Envoy {envoy_version}; wasm runtime {}", wasm.runtime);
    log!("layout: {layout}");
    log!("load before: {uptime_before}");
    let names: Vec<&str> = selected.iter().map(|r| r.name).collect();
    log!(
        "variants: {}; {} round(s) x {}s (+{}s warm-up), {} connections",
        names.join(" "),
        k.rounds,
        k.duration,
        k.warmup,
        k.connections
    );

    let upstream = bench.start("upstream", &upstream_bootstrap(), k.load_cpu)?;
    if status_of(upstream.port(), "/", &[]) != 200 {
        return Err("upstream Envoy does not answer 200".into());
    }
    let proxies: BTreeMap<&str, Proxy> = selected
        .iter()
        .map(|r| (r.name, bench.prepare(r, upstream.port(), &creds, &wasm)))
        .collect();

    let runs_file = run_dir.join("runs.tsv");
    let mut tsv = format!("{RUNS_HEADER}\n");
    let mut runs = Vec::new();
    for round in 1..=k.rounds {
        // Reverse every other round: drift cancels out.
        let order: Vec<&Row> = if round % 2 == 0 {
            selected.iter().rev().collect()
        } else {
            selected.iter().collect()
        };
        for row in order {
            let run = bench.measure(round, row, &proxies[row.name], &upstream);
            tsv.push_str(&run.tsv());
            tsv.push('\n');
            fs::write(&runs_file, &tsv).map_err(|e| e.to_string())?;
            runs.push(run);
        }
    }

    let mut profile = Vec::new();
    if std::env::var("BENCH_PROFILE").is_ok_and(|v| v == "1") {
        for row in &selected {
            if let Some(envoy) = &proxies[row.name].envoy {
                profile.push(bench.profile(row, envoy)?);
            }
        }
    }

    // Keep every Envoy's log with the run (the launcher's own copy goes with the Envoy).
    for (name, proxy) in &proxies {
        if let Some(envoy) = &proxy.envoy {
            let _ = fs::write(run_dir.join(format!("proxy-{name}.log")), envoy.log());
        }
    }
    let _ = fs::write(run_dir.join("upstream.log"), upstream.log());
    drop(proxies);
    let upstream_rss_kb = rss_kb(upstream.pid()).unwrap_or(0.0);
    drop(upstream);
    let uptime_after = sh("uptime", &[]);
    log!("load after: {uptime_after}");

    let mut commit = sh("git", &["-C", ROOT, "rev-parse", "--short", "HEAD"]);
    if commit.is_empty() {
        commit = "unknown".into();
    }
    let clean = Command::new("git")
        .args([
            "-C",
            ROOT,
            "diff",
            "--quiet",
            "HEAD",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
            "benches",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !clean {
        commit.push_str(" (+ uncommitted changes)");
    }
    let cpu_model = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(": "))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_default();
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let ctx = Context {
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        commit,
        ncpu,
        cpu_model,
        envoy_version,
        runtime: wasm.runtime.clone(),
        layout,
        uptime_before,
        uptime_after,
        gate_size: if builds.is_empty() {
            size(&wasm.gate).to_string()
        } else {
            builds
                .iter()
                .map(|(l, p)| format!("{l} {}", size(p)))
                .collect::<Vec<_>>()
                .join(", ")
        },
        minimal_size: size(&wasm.minimal),
        command: std::env::var("BENCH_CMD").unwrap_or_else(|_| "scripts/bench.sh".into()),
        upstream_rss_kb,
        runs_file: runs_file
            .strip_prefix(root)
            .unwrap_or(&runs_file)
            .display()
            .to_string(),
    };
    let text = report(&ctx, k, &selected, &runs, &profile);
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    fs::write(&out, &text).map_err(|e| format!("write {}: {e}", out.display()))?;
    print!("{text}");
    log!("written to {}", out.display());
    Ok(())
}
