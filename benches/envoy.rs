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
//! BENCH_OUT=bench/results-<date>.md       where the markdown goes
//! ENVOY_BIN=/path/to/envoy                the Envoy to run (scripts/bench.sh sets it)
//! BENCH_GATE_WASM=path/to/canary_gate.wasm measure another build (e.g. opt-level 3)
//! BENCH_MINIMAL_WASM=path                 the minimal filter (default: its release build)
//! BENCH_PROFILE=1                         add a perf profile per variant (where the CPU goes)
//! BENCH_PROFILE_SECONDS=8                 length of each profiled window
//! ```
//!
//! Without `--bench` (that is, under `cargo test --all-targets`) it only checks its rows: every
//! reference names a row and every canary-gate configuration is one `config::parse` accepts.
//!
//! Adding a variant is one `Row` in `rows()`.

// A benchmark driver: set-up that fails must stop the run loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/common/bootstrap.rs"]
mod bootstrap;
#[path = "../tests/common/envoy.rs"]
mod envoy;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use sha1::Digest as _;

use envoy::{Envoy, StartFailure};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const JWT_ISSUER: &str = "https://issuer.bench.canary-gate.test";
const JWT_AUDIENCE: &str = "canary-gate-bench";
// Credentials for the auth variants. Nothing here is secret: fixed bench values.
const BASIC_USER: &str = "bench";
const BASIC_PASSWORD: &str = "bench-password";
/// bcrypt cost 5 of BASIC_PASSWORD (htpasswd -B -C 5 writes the same format).
const BASIC_BCRYPT: &str = "$2b$05$lg/henqMEcqF2UbftNXUhOxxl5rgN2Sc15ozn1WN//YRA0tpSUIte";
const API_KEY: &str = "bench-access-key-0123456789";

macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("[bench {}] {}", sh("date", &["+%T"]), format!($($arg)*))
    };
}

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

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Route {
    /// cluster v1.
    Plain,
    /// weighted_clusters v1 90 / v2 10.
    Weighted,
    /// cluster_header x-canary-upstream (what canary-gate writes).
    Header,
}

#[derive(Debug, Clone)]
enum Filter {
    BasicAuth,
    ApiKeyAuth,
    JwtAuthn {
        cached: bool,
    },
    /// The minimal filter; with a configuration, the hostcalls it replays (see
    /// benches/minimal-filter).
    WasmMinimal(Option<String>),
    /// canary-gate with this JSON configuration.
    Gate(Value),
}

#[derive(Debug, Clone)]
struct Row {
    name: &'static str,
    desc: &'static str,
    route: Route,
    filters: Vec<Filter>,
    /// `name: value`, as wrk's `-H` takes them.
    headers: Vec<String>,
    wrk_args: Vec<String>,
    /// The rows this one is compared with: the native equivalent, the wasm floor, and the twin
    /// that makes the same hostcalls with no logic (the gap to it is the logic's; the twin's
    /// gap to the floor is the extra hostcalls').
    native: Option<&'static str>,
    floor: Option<&'static str>,
    twin: Option<&'static str>,
    /// A request without the row's headers must be refused (401/403), checked once per proxy
    /// start, so an auth row can't silently measure an open door.
    auth: bool,
}

impl Row {
    fn new(name: &'static str, desc: &'static str, route: Route) -> Row {
        Row {
            name,
            desc,
            route,
            filters: Vec::new(),
            headers: Vec::new(),
            wrk_args: Vec::new(),
            native: None,
            floor: None,
            twin: None,
            auth: false,
        }
    }
    fn filter(mut self, f: Filter) -> Row {
        self.filters.push(f);
        self
    }
    fn header(mut self, h: &str) -> Row {
        self.headers.push(h.to_owned());
        self
    }
    fn native(mut self, row: &'static str) -> Row {
        self.native = Some(row);
        self
    }
    fn floor(mut self, row: &'static str) -> Row {
        self.floor = Some(row);
        self
    }
    fn twin(mut self, row: &'static str) -> Row {
        self.twin = Some(row);
        self
    }
    fn auth(mut self) -> Row {
        self.auth = true;
        self
    }
}

/// Credentials and keys the rows use.
struct Creds {
    basic_header: String,
    basic_sha: String,
    api_key_sha256: String,
    jwks: Value,
    rs256_token: String,
    es256_token: String,
}

impl Creds {
    /// RS256 (2048-bit) and ES256 (P-256) keys made once with openssl and kept in
    /// `.tmp/bench/keys`, a JWKS holding both, and one token per key.
    fn make(keys: &Path) -> Result<Creds, String> {
        fs::create_dir_all(keys).map_err(|e| format!("create {}: {e}", keys.display()))?;
        let pem = |file: &str, algorithm: &str, opt: &str| -> Result<String, String> {
            let path = keys.join(file);
            if !path.exists() {
                let status = Command::new("openssl")
                    .args(["genpkey", "-algorithm", algorithm, "-pkeyopt", opt, "-out"])
                    .arg(&path)
                    .stderr(Stdio::null())
                    .status()
                    .map_err(|e| format!("openssl: {e}"))?;
                if !status.success() {
                    return Err(format!("openssl genpkey {algorithm} failed"));
                }
            }
            fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))
        };
        let rs = RS256KeyPair::from_pem(&pem("rs256.pem", "RSA", "rsa_keygen_bits:2048")?)
            .map_err(|e| format!("rs256.pem: {e}"))?
            .with_key_id("bench-rs256");
        let es = ES256KeyPair::from_pem(&pem("es256.pem", "EC", "ec_paramgen_curve:P-256")?)
            .map_err(|e| format!("es256.pem: {e}"))?
            .with_key_id("bench-es256");
        let b64u = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let rsa = rs.public_key().to_components();
        let point = es.public_key().public_key().to_bytes_uncompressed(); // 04 || x || y
        let jwks = json!({"keys": [
            {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "bench-rs256",
             "n": b64u(&rsa.n), "e": b64u(&rsa.e)},
            {"kty": "EC", "alg": "ES256", "use": "sig", "kid": "bench-es256", "crv": "P-256",
             "x": b64u(&point[1..33]), "y": b64u(&point[33..65])}
        ]});
        let claims = || {
            let mut c = Claims::create(jwt_simple::prelude::Duration::from_secs(1))
                .with_issuer(JWT_ISSUER)
                .with_audience(JWT_AUDIENCE)
                .with_subject("bench-user");
            c.issued_at = Some(UnixTimeStamp::from_secs(1_700_000_000));
            c.expires_at = Some(UnixTimeStamp::from_secs(4_102_444_800)); // 2100-01-01
            c.invalid_before = None;
            c
        };
        let rs256_token = rs.sign(claims()).map_err(|e| format!("RS256: {e}"))?;
        let es256_token = es.sign(claims()).map_err(|e| format!("ES256: {e}"))?;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Ok(Creds {
            basic_header: format!(
                "authorization: Basic {}",
                b64(format!("{BASIC_USER}:{BASIC_PASSWORD}").as_bytes())
            ),
            basic_sha: format!(
                "{{SHA}}{}",
                b64(&sha1::Sha1::digest(BASIC_PASSWORD.as_bytes()))
            ),
            api_key_sha256: hex::encode(sha2::Sha256::digest(API_KEY.as_bytes())),
            jwks,
            rs256_token,
            es256_token,
        })
    }
}

fn rows(c: &Creds) -> Vec<Row> {
    use Route::{Header, Plain, Weighted};
    let split = json!({"primary": "v1", "canaries": [{"name": "v2", "percent": 10}]});
    let gate = |extra: Value| {
        let mut cfg = split.clone();
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        Filter::Gate(cfg)
    };
    let rs256 = format!("authorization: Bearer {}", c.rs256_token);
    let es256 = format!("authorization: Bearer {}", c.es256_token);
    let api_key = format!("x-api-key: {API_KEY}");
    let oauth2 = json!({"auth": {"mode": "oauth2", "issuer": JWT_ISSUER,
                                 "audiences": [JWT_AUDIENCE], "jwks": c.jwks}});
    vec![
        Row::new("none", "no filter, plain route (the limit)", Plain),
        Row::new("native-split", "Envoy weighted_clusters 90/10", Weighted),
        Row::new("native-basic", "native basic_auth ({SHA}) + weighted_clusters", Weighted)
            .filter(Filter::BasicAuth)
            .header(&c.basic_header)
            .auth(),
        Row::new("native-apikey", "native api_key_auth + weighted_clusters", Weighted)
            .filter(Filter::ApiKeyAuth)
            .header(&api_key)
            .auth(),
        Row::new(
            "native-jwt",
            "native jwt_authn RS256, local JWKS, no JWT cache (default)",
            Weighted,
        )
        .filter(Filter::JwtAuthn { cached: false })
        .header(&rs256)
        .auth(),
        Row::new(
            "native-jwt-cached",
            "native jwt_authn RS256, local JWKS, jwt_cache_config",
            Weighted,
        )
        .filter(Filter::JwtAuthn { cached: true })
        .header(&rs256)
        .auth(),
        Row::new(
            "native-jwt-es256",
            "native jwt_authn ES256, local JWKS, no JWT cache (default)",
            Weighted,
        )
        .filter(Filter::JwtAuthn { cached: false })
        .header(&es256)
        .auth(),
        Row::new(
            "wasm-minimal",
            "minimal wasm filter: sets one request header (the wasm floor)",
            Header,
        )
        .filter(Filter::WasmMinimal(None)),
        Row::new(
            "wasm-hostcalls-random",
            "minimal wasm filter replaying gate-random's 3 hostcalls, no logic",
            Header,
        )
        .filter(Filter::WasmMinimal(Some(
            "remove x-canary-consumer; set x-canary-upstream v1; counter bench.routed".into(),
        )))
        .floor("wasm-minimal"),
        Row::new(
            "wasm-hostcalls-key",
            "minimal wasm filter replaying gate-header-key's 8 hostcalls, no logic",
            Header,
        )
        .filter(Filter::WasmMinimal(Some(
            "remove x-canary-consumer; get x-api-key; get x-user; remove x-api-key; \
             set x-canary-consumer alice; counter bench.allowed; set x-canary-upstream v1; \
             counter bench.routed"
                .into(),
        )))
        .header("x-user: user-42")
        .header(&api_key)
        .floor("wasm-minimal"),
        Row::new("gate-random", "canary-gate: random split 90/10, no auth", Header)
            .filter(gate(json!({})))
            .native("native-split")
            .floor("wasm-minimal")
            .twin("wasm-hostcalls-random"),
        Row::new(
            "gate-header-key",
            "canary-gate: header-hash split 90/10 + access key",
            Header,
        )
        .filter(gate(json!({
            "split": {"by": "header", "name": "x-user"},
            "auth": {"mode": "access_key", "keys": [{"consumer": "alice", "sha256": c.api_key_sha256}]}
        })))
        .header("x-user: user-42")
        .header(&api_key)
        .native("native-apikey")
        .floor("wasm-minimal")
        .twin("wasm-hostcalls-key")
        .auth(),
        Row::new(
            "gate-basic",
            "canary-gate: random split 90/10 + Basic bcrypt cost 5 (repeat client, cached)",
            Header,
        )
        .filter(gate(json!({
            "auth": {"mode": "basic", "users": [format!("{BASIC_USER}:{BASIC_BCRYPT}")]}
        })))
        .header(&c.basic_header)
        .native("native-basic")
        .floor("wasm-minimal")
        .auth(),
        // OAuth2: the same token on every request, so the verdict cache answers (the repeat
        // client). A fresh token per request would need a wrk script; the uncached cost is in
        // `cargo bench --bench decide`.
        Row::new(
            "gate-jwt-rs256",
            "canary-gate: random split 90/10 + OAuth2 JWT RS256, same token (cache hit)",
            Header,
        )
        .filter(gate(oauth2.clone()))
        .header(&rs256)
        .native("native-jwt-cached")
        .floor("wasm-minimal")
        .auth(),
        Row::new(
            "gate-jwt-es256",
            "canary-gate: random split 90/10 + OAuth2 JWT ES256, same token (cache hit)",
            Header,
        )
        .filter(gate(oauth2))
        .header(&es256)
        .native("native-jwt-es256")
        .floor("wasm-minimal")
        .auth(),
    ]
}

/// `BENCH_VARIANTS`: a subset, plus the rows it is compared with and `none`, in table order.
fn select(all: &[Row], variants: Option<&str>) -> Result<Vec<Row>, String> {
    let Some(variants) = variants.filter(|v| !v.trim().is_empty()) else {
        return Ok(all.to_vec());
    };
    let known: Vec<&str> = all.iter().map(|r| r.name).collect();
    let mut want: BTreeSet<&str> = BTreeSet::from(["none"]);
    for v in variants.split_whitespace() {
        let row = all
            .iter()
            .find(|r| r.name == v)
            .ok_or_else(|| format!("unknown variant {v} (known: {})", known.join(" ")))?;
        want.insert(row.name);
        want.extend(row.native.iter().chain(&row.floor).chain(&row.twin));
    }
    Ok(all
        .iter()
        .filter(|r| want.contains(r.name))
        .cloned()
        .collect())
}

/// Checks the rows without running anything: references name rows, canary-gate accepts every
/// configuration. (What `cargo test --all-targets` runs.)
fn check_rows(all: &[Row]) -> Result<usize, String> {
    let names: BTreeSet<&str> = all.iter().map(|r| r.name).collect();
    if names.len() != all.len() {
        return Err("two rows share a name".into());
    }
    let mut gates = 0;
    for r in all {
        for reference in r.native.iter().chain(&r.floor).chain(&r.twin) {
            if !names.contains(reference) {
                return Err(format!("{}: no row named {reference}", r.name));
            }
        }
        for f in &r.filters {
            if let Filter::Gate(cfg) = f {
                canary_gate::config::parse(cfg.to_string().as_bytes()).map_err(|e| {
                    format!("{}: canary-gate refuses its configuration: {e}", r.name)
                })?;
                gates += 1;
            }
        }
        if r.auth && r.headers.is_empty() {
            return Err(format!("{}: an auth row without credentials", r.name));
        }
    }
    Ok(gates)
}

// ---------------------------------------------------------------------------------------------
// Envoy configuration
// ---------------------------------------------------------------------------------------------

struct Wasm {
    gate: PathBuf,
    minimal: PathBuf,
    runtime: String,
}

fn wasm_filter(name: &str, file: &Path, configuration: Option<String>, runtime: &str) -> Value {
    let mut config = json!({
        "name": name,
        "vm_config": {
            "runtime": format!("envoy.wasm.runtime.{runtime}"),
            "code": {"local": {"filename": file.to_string_lossy()}}
        }
    });
    if let Some(c) = configuration {
        config["configuration"] =
            json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": c});
    }
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {"@type": bootstrap::WASM_TYPE, "config": config}
    })
}

fn filter_json(f: &Filter, c: &Creds, wasm: &Wasm) -> Value {
    match f {
        Filter::BasicAuth => json!({
            "name": "envoy.filters.http.basic_auth",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
                "users": {"inline_string": format!("{BASIC_USER}:{}", c.basic_sha)}
            }
        }),
        Filter::ApiKeyAuth => json!({
            "name": "envoy.filters.http.api_key_auth",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
                "credentials": [{"key": API_KEY, "client": "alice"}],
                "key_sources": [{"header": "x-api-key"}]
            }
        }),
        Filter::JwtAuthn { cached } => {
            let mut provider = json!({
                "issuer": JWT_ISSUER,
                "audiences": [JWT_AUDIENCE],
                "local_jwks": {"inline_string": c.jwks.to_string()}
            });
            if *cached {
                provider["jwt_cache_config"] = json!({"jwt_cache_size": 100});
            }
            json!({
                "name": "envoy.filters.http.jwt_authn",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                    "providers": {"bench": provider},
                    "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]
                }
            })
        }
        Filter::WasmMinimal(cfg) => {
            wasm_filter("minimal-filter", &wasm.minimal, cfg.clone(), &wasm.runtime)
        }
        Filter::Gate(cfg) => wasm_filter(
            "canary-gate",
            &wasm.gate,
            Some(cfg.to_string()),
            &wasm.runtime,
        ),
    }
}

fn route_config(route: Value) -> Value {
    json!({"virtual_hosts": [{
        "name": "all",
        "domains": ["*"],
        "routes": [{"match": {"prefix": "/"}, "route": route}]
    }]})
}

fn upstream_bootstrap() -> Value {
    let route_config = json!({"virtual_hosts": [{
        "name": "all",
        "domains": ["*"],
        "routes": [{"match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]
    }]});
    json!({
        "admin": bootstrap::admin(),
        "static_resources": {"listeners": [
            bootstrap::http_listener("upstream", "upstream", route_config, vec![bootstrap::router()])
        ]}
    })
}

fn proxy_bootstrap(row: &Row, upstream_port: u16, c: &Creds, wasm: &Wasm) -> Value {
    let route = match row.route {
        Route::Plain => json!({"cluster": "v1"}),
        Route::Weighted => json!({"weighted_clusters": {"clusters": [
            {"name": "v1", "weight": 90}, {"name": "v2", "weight": 10}]}}),
        Route::Header => json!({"cluster_header": "x-canary-upstream"}),
    };
    let mut filters: Vec<Value> = row
        .filters
        .iter()
        .map(|f| filter_json(f, c, wasm))
        .collect();
    filters.push(bootstrap::router());
    json!({
        "admin": bootstrap::admin(),
        "static_resources": {
            "listeners": [bootstrap::http_listener("bench", "bench", route_config(route), filters)],
            "clusters": [
                bootstrap::static_cluster("v1", upstream_port),
                bootstrap::static_cluster("v2", upstream_port)
            ]
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

struct Knobs {
    rounds: u32,
    duration: u64,
    warmup: u64,
    connections: u32,
    proxy_cpu: usize,
    load_cpu: usize,
    pin: bool,
    profile_seconds: u64,
}

/// `taskset -c CPU PROGRAM` when pinning, else `PROGRAM`.
fn pinned(k: &Knobs, cpu: usize, program: &str) -> Command {
    if k.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), program]);
        c
    } else {
        Command::new(program)
    }
}

/// Runs a command with stdout and stderr to `out`; kills it at the deadline.
fn run_until(mut cmd: Command, out: &Path, limit: Duration) -> Result<ExitStatus, String> {
    let file = fs::File::create(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} ran past {limit:?}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn wrk(k: &Knobs, row: &Row, port: u16, seconds: u64, measure: bool) -> Command {
    let mut c = pinned(k, k.load_cpu, "wrk");
    c.args([
        "-t1".to_owned(),
        format!("-c{}", k.connections),
        format!("-d{seconds}s"),
    ]);
    if measure {
        c.args(["--timeout", "2s", "--latency"]);
    }
    for h in &row.headers {
        c.arg("-H").arg(h);
    }
    c.args(&row.wrk_args);
    c.arg(format!("http://127.0.0.1:{port}/"));
    c
}

/// HTTP status of one `GET /` with these `name: value` headers; 0 if there is no answer.
fn status_of(port: u16, headers: &[String]) -> u16 {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let mut req = agent.get(&format!("http://127.0.0.1:{port}/"));
    for h in headers {
        if let Some((name, value)) = h.split_once(": ") {
            req = req.set(name, value);
        }
    }
    match req.call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(_) => 0,
    }
}

/// The proxy's counters: (completed, 2xx, v1 requests, v2 requests).
fn stats(envoy: &Envoy) -> (i64, i64, i64, i64) {
    let body = envoy.admin("/stats").map(|(_, b)| b).unwrap_or_default();
    let mut s = (0, 0, 0, 0);
    for line in body.lines() {
        let Some((name, value)) = line.split_once(": ") else {
            continue;
        };
        let v = value.trim().parse().unwrap_or(0);
        match name {
            "http.bench.downstream_rq_completed" => s.0 = v,
            "http.bench.downstream_rq_2xx" => s.1 = v,
            "cluster.v1.upstream_rq_total" => s.2 = v,
            "cluster.v2.upstream_rq_total" => s.3 = v,
            _ => {}
        }
    }
    s
}

/// Fields of `/proc/PID/stat` from field 3 (`state`) on: index i is field i + 3.
fn proc_stat(pid: &str) -> Vec<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(") ").map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// utime + stime of a process, in clock ticks.
fn proc_ticks(pid: u32) -> u64 {
    let f = proc_stat(&pid.to_string());
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// (utime, stime) of a process, in clock ticks.
fn proc_user_sys(pid: u32) -> (u64, u64) {
    let f = proc_stat(&pid.to_string());
    (
        f.get(11).copied().unwrap_or(0),
        f.get(12).copied().unwrap_or(0),
    )
}

/// cutime + cstime of this process: the CPU of the children it has waited for (wrk).
fn children_ticks() -> u64 {
    let f = proc_stat("self");
    f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0)
}

/// On-CPU time of all threads of a process, in ns (schedstat: finer than ticks).
fn proc_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// (busy, total) ticks of one CPU from /proc/stat.
fn cpu_ticks(cpu: usize) -> (u64, u64) {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu}");
    let Some(line) = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&name))
    else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy, busy + at(3) + at(4))
}

fn rss_kb(pid: u32) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// wrk's "1.23ms" in µs.
fn to_us(v: &str) -> Option<f64> {
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "ms" => n * 1000.0,
        "s" => n * 1_000_000.0,
        _ => n,
    })
}

struct WrkResult {
    rps: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    non2xx: u64,
    socket_errors: u64,
}

fn parse_wrk(out: &str) -> WrkResult {
    let mut r = WrkResult {
        rps: None,
        p50_us: None,
        p99_us: None,
        non2xx: 0,
        socket_errors: 0,
    };
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse().ok(),
            ["50%", v] => r.p50_us = to_us(v),
            ["99%", v] => r.p99_us = to_us(v),
            _ if line.contains("Non-2xx or 3xx responses:") => {
                r.non2xx = words.last().and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            _ if line.contains("Socket errors:") => {
                r.socket_errors = words
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    r
}

/// One round of one variant.
#[derive(Debug, Clone, Default)]
struct Run {
    round: u32,
    variant: String,
    rps: Option<f64>,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    non2xx: i64,
    wrk_non2xx: u64,
    socket_errors: u64,
    v2_share: Option<f64>,
    proxy_cpu: Option<f64>,
    proxy_cpu_us_per_req: Option<f64>,
    foreign_proxy_core: Option<f64>,
    load_core_busy: Option<f64>,
    foreign_load_core: Option<f64>,
    rss_kb: Option<f64>,
    note: String,
}

const RUNS_HEADER: &str = "round\tvariant\trps\tp50_us\tp99_us\tnon2xx\twrk_non2xx_3xx\tsocket_errors\tv2_share\tproxy_cpu\tproxy_cpu_us_per_req\tforeign_proxy_core\tload_core_busy\tforeign_load_core\trss_kb\tnote";

impl Run {
    fn tsv(&self) -> String {
        let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.round,
            self.variant,
            o(self.rps),
            o(self.p50_us),
            o(self.p99_us),
            self.non2xx,
            self.wrk_non2xx,
            self.socket_errors,
            o(self.v2_share),
            o(self.proxy_cpu),
            o(self.proxy_cpu_us_per_req),
            o(self.foreign_proxy_core),
            o(self.load_core_busy),
            o(self.foreign_load_core),
            o(self.rss_kb),
            self.note
        )
    }
}

/// A proxy Envoy for one row, started, checked and warmed up once, then kept for all rounds
/// (idle ones cost nothing measurable), so that rounds can be short and many without paying
/// Envoy's start-up each time.
struct Proxy {
    envoy: Option<Envoy>,
    note: String,
}

fn add_note(note: &mut String, what: &str) {
    if !note.is_empty() {
        note.push_str("; ");
    }
    note.push_str(what);
}

struct Bench {
    knobs: Knobs,
    envoy_bin: PathBuf,
    run_dir: PathBuf,
    clk_tck: f64,
}

impl Bench {
    /// Starts an Envoy pinned to `cpu`; on a refusal, its first error line.
    fn start(&self, name: &str, bootstrap: &Value, cpu: usize) -> Result<Envoy, String> {
        let mut b = Envoy::builder(bootstrap)
            .bin(&self.envoy_bin)
            .log_level("warn")
            .foreground();
        if self.knobs.pin {
            b = b.pinned_to(cpu);
        }
        fs::write(
            self.run_dir.join(format!("{name}.json")),
            serde_json::to_string_pretty(bootstrap).unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        b.try_start().map_err(|f: StartFailure| {
            let log = self.run_dir.join(format!("{name}.log"));
            let _ = fs::write(&log, &f.log);
            let reason = f
                .reason()
                .map(|r| r.replace('|', "").chars().take(160).collect::<String>())
                .unwrap_or_else(|| format!("see {}", log.display()));
            log!("Envoy ({name}) did not start: {reason}");
            format!("Envoy did not start: {reason}")
        })
    }

    fn prepare(&self, row: &Row, upstream_port: u16, c: &Creds, wasm: &Wasm) -> Proxy {
        let bootstrap = proxy_bootstrap(row, upstream_port, c, wasm);
        let envoy = match self.start(
            &format!("proxy-{}", row.name),
            &bootstrap,
            self.knobs.proxy_cpu,
        ) {
            Ok(e) => e,
            Err(note) => return Proxy { envoy: None, note },
        };
        let port = envoy.port();
        let mut note = String::new();
        let code = status_of(port, &row.headers);
        if !(200..300).contains(&code) {
            note = format!("check request got {code:03}");
        }
        if row.auth {
            let code = status_of(port, &[]);
            if code != 401 && code != 403 {
                add_note(
                    &mut note,
                    &format!("no credentials got {code:03}, not 401/403"),
                );
            }
        }
        if self.knobs.warmup > 0 {
            let out = self.run_dir.join(format!("warmup-{}.txt", row.name));
            let _ = run_until(
                wrk(&self.knobs, row, port, self.knobs.warmup, false),
                &out,
                Duration::from_secs(self.knobs.warmup + 30),
            );
        }
        log!(
            "ready: {:<18} port {port} pid {} {note}",
            row.name,
            envoy.pid()
        );
        Proxy {
            envoy: Some(envoy),
            note,
        }
    }

    fn measure(&self, round: u32, row: &Row, proxy: &Proxy, upstream: &Envoy) -> Run {
        let mut run = Run {
            round,
            variant: row.name.to_owned(),
            note: proxy.note.clone(),
            ..Run::default()
        };
        let Some(envoy) = &proxy.envoy else {
            return run;
        };
        let k = &self.knobs;
        let (pid, upid) = (envoy.pid(), upstream.pid());
        let out = self.run_dir.join(format!("wrk-{round}-{}.txt", row.name));

        let s0 = stats(envoy);
        let n0 = proc_cpu_ns(pid);
        let p0 = proc_ticks(pid);
        let u0 = proc_ticks(upid);
        let c0 = cpu_ticks(k.proxy_cpu);
        let l0 = cpu_ticks(k.load_cpu);
        let w0 = children_ticks();
        let t0 = Instant::now();
        match run_until(
            wrk(k, row, envoy.port(), k.duration, true),
            &out,
            Duration::from_secs(k.duration + 30),
        ) {
            Ok(status) if status.success() => {}
            _ => add_note(&mut run.note, "wrk failed"),
        }
        let secs = t0.elapsed().as_secs_f64();
        let w1 = children_ticks();
        let s1 = stats(envoy);
        let n1 = proc_cpu_ns(pid);
        let p1 = proc_ticks(pid);
        let u1 = proc_ticks(upid);
        let c1 = cpu_ticks(k.proxy_cpu);
        let l1 = cpu_ticks(k.load_cpu);
        run.rss_kb = rss_kb(pid);

        let w = parse_wrk(&fs::read_to_string(&out).unwrap_or_default());
        run.rps = Some(w.rps.unwrap_or(0.0));
        if w.rps.is_none() {
            add_note(&mut run.note, "no wrk result");
        }
        run.p50_us = w.p50_us;
        run.p99_us = w.p99_us;
        run.wrk_non2xx = w.non2xx;
        run.socket_errors = w.socket_errors;
        let completed = s1.0 - s0.0;
        run.non2xx = completed - (s1.1 - s0.1);
        let routed = (s1.2 - s0.2) + (s1.3 - s0.3);
        run.v2_share = (routed > 0).then(|| (s1.3 - s0.3) as f64 / routed as f64);
        let ns = n1.saturating_sub(n0) as f64;
        run.proxy_cpu = Some(ns / 1e9 / secs);
        run.proxy_cpu_us_per_req = (completed > 0).then(|| ns / 1000.0 / completed as f64);
        let (cb, ct) = (c1.0.saturating_sub(c0.0), c1.1.saturating_sub(c0.1));
        let proxy_ticks = p1.saturating_sub(p0) as f64;
        run.foreign_proxy_core = Some(if ct > 0 {
            ((cb as f64 - proxy_ticks) / ct as f64).max(0.0)
        } else {
            0.0
        });
        let (lb, lt) = (l1.0.saturating_sub(l0.0), l1.1.saturating_sub(l0.1));
        run.load_core_busy = Some(if lt > 0 { lb as f64 / lt as f64 } else { 0.0 });
        let others = lb as f64 - u1.saturating_sub(u0) as f64 - w1.saturating_sub(w0) as f64;
        run.foreign_load_core = Some(if lt > 0 {
            (others / lt as f64).max(0.0)
        } else {
            0.0
        });
        log!(
            "round {round} {:<18} {:>9.0} req/s  p50 {}us  p99 {}us  non-2xx {}  proxy cpu {:.3} ({}us/req)  foreign {:.3}/{:.3}  {}",
            row.name,
            run.rps.unwrap_or(0.0),
            run.p50_us.map_or("?".into(), |v| format!("{v:.1}")),
            run.p99_us.map_or("?".into(), |v| format!("{v:.1}")),
            run.non2xx,
            run.proxy_cpu.unwrap_or(0.0),
            run.proxy_cpu_us_per_req
                .map_or("nan".into(), |v| format!("{v:.1}")),
            run.foreign_proxy_core.unwrap_or(0.0),
            run.foreign_load_core.unwrap_or(0.0),
            run.note
        );
        run
    }

    /// BENCH_PROFILE=1: one more wrk run under `perf stat` (software events: these VMs often
    /// expose no hardware counters) and `perf record -e cpu-clock` on the proxy, to say where
    /// its CPU goes per request: kernel (syscalls, loopback TCP) vs Envoy's own code vs the
    /// wasm VM's JIT code.
    fn profile(&self, row: &Row, envoy: &Envoy) -> Result<ProfileRow, String> {
        let k = &self.knobs;
        let window = k.profile_seconds;
        let pid = envoy.pid();
        let dir = &self.run_dir;
        let wrk_out = fs::File::create(dir.join(format!("profile-wrk-{}.txt", row.name)))
            .map_err(|e| e.to_string())?;
        let mut load = wrk(k, row, envoy.port(), window + 2, true)
            .stdout(wrk_out)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("wrk: {e}"))?;
        thread::sleep(Duration::from_secs(1));
        let s0 = stats(envoy);
        let (ut0, st0) = proc_user_sys(pid);
        let data = dir.join(format!("perf-{}.data", row.name));
        let csv = dir.join(format!("perf-stat-{}.csv", row.name));
        let mut record = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "4999", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&data)
            .args(["--", "sleep", &window.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("perf record: {e}"))?;
        let _ = Command::new("perf")
            .args([
                "stat",
                "-x,",
                "-e",
                "task-clock,context-switches,raw_syscalls:sys_enter",
                "-p",
            ])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&csv)
            .args(["--", "sleep", &window.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = record.wait();
        let s1 = stats(envoy);
        let (ut1, st1) = proc_user_sys(pid);
        let _ = load.wait();
        let requests = (s1.0 - s0.0).max(0) as u64;
        let stat_text = fs::read_to_string(&csv).unwrap_or_default();
        let event = |name: &str| -> Option<f64> {
            stat_text
                .lines()
                .map(|l| l.split(',').collect::<Vec<_>>())
                .find(|f| f.get(2) == Some(&name))
                .and_then(|f| f.first()?.parse().ok())
        };
        let report = Command::new("perf")
            .args(["report", "-i"])
            .arg(&data)
            .args(["--sort", "dso", "--stdio", "--no-children"])
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut dso = [0.0f64; 5]; // kernel, envoy, JIT, libc, other
        for line in report.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with('#') || w.len() < 2 {
                continue;
            }
            let Ok(p) = w[0].trim_end_matches('%').parse::<f64>() else {
                continue;
            };
            let d = w[1];
            let slot = if d.contains("kernel") {
                0
            } else if d.ends_with("envoy") {
                1
            } else if ["libc", "ld-linux", "libm", "libpthread"]
                .iter()
                .any(|l| d.contains(l))
            {
                3
            } else if ["unknown", "JIT", "perf-"].iter().any(|l| d.contains(l)) {
                2
            } else {
                4
            };
            dso[slot] += p;
        }
        log!(
            "profiled {}: {requests} requests; kernel/envoy/jit/libc/other % = {:.1} {:.1} {:.1} {:.1} {:.1}",
            row.name,
            dso[0],
            dso[1],
            dso[2],
            dso[3],
            dso[4]
        );
        Ok(ProfileRow {
            name: row.name,
            requests,
            task_ms: event("task-clock"),
            ctx: event("context-switches"),
            syscalls: event("raw_syscalls:sys_enter"),
            user_ticks: ut1.saturating_sub(ut0),
            sys_ticks: st1.saturating_sub(st0),
            clk_tck: self.clk_tck,
            dso,
        })
    }
}

struct ProfileRow {
    name: &'static str,
    requests: u64,
    task_ms: Option<f64>,
    ctx: Option<f64>,
    syscalls: Option<f64>,
    user_ticks: u64,
    sys_ticks: u64,
    clk_tck: f64,
    dso: [f64; 5],
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// 12345.6 -> "12,346".
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

struct Report<'a> {
    runs: &'a [Run],
}

impl Report<'_> {
    /// The rounds of a variant that produced a rate.
    fn measured(&self, name: &str) -> Vec<&Run> {
        self.runs
            .iter()
            .filter(|r| r.variant == name && r.rps.is_some_and(|v| v != 0.0))
            .collect()
    }

    fn med(&self, name: &str, field: impl Fn(&Run) -> Option<f64>) -> Option<f64> {
        median(self.measured(name).into_iter().filter_map(field).collect())
    }

    fn rps(&self, name: &str) -> Option<f64> {
        self.med(name, |r| r.rps)
    }

    fn spread(&self, name: &str) -> String {
        let vals: Vec<f64> = self.measured(name).iter().filter_map(|r| r.rps).collect();
        match median(vals.clone()) {
            Some(m) if m != 0.0 => {
                let max = vals.iter().copied().fold(f64::MIN, f64::max);
                let min = vals.iter().copied().fold(f64::MAX, f64::min);
                format!("{:.1}%", (max - min) / m * 100.0)
            }
            _ => "—".into(),
        }
    }

    fn invalid(&self, name: &str) -> Vec<String> {
        let mut why = BTreeSet::new();
        for r in self.runs.iter().filter(|r| r.variant == name) {
            if r.non2xx != 0 || r.wrk_non2xx != 0 {
                why.insert("non-2xx responses".to_owned());
            }
            if r.socket_errors != 0 {
                why.insert("socket errors".to_owned());
            }
            if !r.note.is_empty() {
                why.insert(r.note.clone());
            }
        }
        why.into_iter().collect()
    }

    fn ratio(&self, a: &str, b: Option<&str>) -> String {
        match (self.rps(a), b.and_then(|b| Some((b, self.rps(b)?)))) {
            (Some(ra), Some((b, rb))) if rb != 0.0 => format!("{:.3} ({b})", ra / rb),
            _ => "—".into(),
        }
    }

    fn cpu_req(&self, name: &str, floor: Option<&str>) -> String {
        let Some(c) = self.med(name, |r| r.proxy_cpu_us_per_req) else {
            return "—".into();
        };
        match floor.and_then(|f| self.med(f, |r| r.proxy_cpu_us_per_req)) {
            Some(f) if f != 0.0 => format!("{c:.1} ({:.3})", c / f),
            _ => format!("{c:.1}"),
        }
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("—".into(), f)
}

struct Context {
    date: String,
    commit: String,
    ncpu: usize,
    cpu_model: String,
    envoy_version: String,
    runtime: String,
    layout: String,
    uptime_before: String,
    uptime_after: String,
    gate_size: u64,
    minimal_size: u64,
    command: String,
    upstream_rss_kb: f64,
    runs_file: String,
}

fn report(ctx: &Context, k: &Knobs, rows: &[Row], runs: &[Run], profile: &[ProfileRow]) -> String {
    let rep = Report { runs };
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "# canary-gate benchmark results\n");
    let _ = writeln!(w, "- date: {}; commit {}", ctx.date, ctx.commit);
    let _ = writeln!(
        w,
        "- machine: {} cores, {}; Envoy {}, wasm runtime envoy.wasm.runtime.{}",
        ctx.ncpu, ctx.cpu_model, ctx.envoy_version, ctx.runtime
    );
    let _ = writeln!(w, "- layout: {}", ctx.layout);
    let _ = writeln!(
        w,
        "- method: one proxy Envoy per variant, started and warmed up ({}s of wrk) once; then {} round(s) of \
         `wrk -t1 -c{} -d{}s --latency` against each variant in turn (order reversed every other round); \
         medians over rounds",
        k.warmup, k.rounds, k.connections, k.duration
    );
    let _ = writeln!(w, "- load before: `{}`", ctx.uptime_before);
    let _ = writeln!(w, "- load after: `{}`", ctx.uptime_after);
    let _ = writeln!(
        w,
        "- .wasm sizes: canary_gate.wasm {} bytes; minimal_filter.wasm {} bytes",
        ctx.gate_size, ctx.minimal_size
    );
    let _ = writeln!(
        w,
        "- command: `{}` (BENCH_ROUNDS={} BENCH_DURATION={} BENCH_WARMUP={} BENCH_CONNECTIONS={})",
        ctx.command, k.rounds, k.duration, k.warmup, k.connections
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "| variant | req/s (median) | × no filter | × native equivalent | × wasm floor | × same hostcalls, no logic | p50 ms | p99 ms | non-2xx | proxy CPU µs/req (× floor) |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ms = |v: Option<f64>| opt(v, |us| format!("{:.3}", us / 1000.0));
    for r in rows {
        let bad = rep.invalid(r.name);
        let non2xx: i64 = runs
            .iter()
            .filter(|x| x.variant == r.name)
            .map(|x| x.non2xx)
            .sum();
        let mut label = format!("**{}**: {}", r.name, r.desc);
        if !bad.is_empty() {
            let _ = write!(label, " — **INVALID** ({})", bad.join("; "));
        }
        let vs_none = if r.name == "none" {
            "1.000".to_owned()
        } else {
            rep.ratio(r.name, Some("none"))
        };
        let _ = writeln!(
            w,
            "| {label} | {} | {vs_none} | {} | {} | {} | {} | {} | {non2xx} | {} |",
            opt(rep.rps(r.name), thousands),
            rep.ratio(r.name, r.native),
            rep.ratio(r.name, r.floor),
            rep.ratio(r.name, r.twin),
            ms(rep.med(r.name, |x| x.p50_us)),
            ms(rep.med(r.name, |x| x.p99_us)),
            rep.cpu_req(r.name, r.floor),
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "Run health (medians over rounds): req/s spread is (max − min) / median; proxy CPU is the proxy Envoy's");
    let _ = writeln!(w, "CPU time per wall second (1.0 = its core saturated); foreign is the share of a core used by processes other");
    let _ = writeln!(w, "than this benchmark's (other work on the machine: anything above ~0.05 makes the figures noisy); load core is");
    let _ = writeln!(w, "how busy the wrk + upstream core was in total; canary share is the fraction routed to cluster v2; RSS is the");
    let _ = writeln!(w, "proxy Envoy's VmRSS after its last round.");
    let _ = writeln!(w);
    let _ = writeln!(w, "| variant | rounds | req/s spread | proxy CPU | foreign on proxy core | load core busy | foreign on load core | canary share | proxy RSS MiB |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let f2 = |v: Option<f64>| opt(v, |x| format!("{x:.2}"));
    for r in rows {
        let n = rep.measured(r.name).len();
        let _ = writeln!(
            w,
            "| {} | {n} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            rep.spread(r.name),
            f2(rep.med(r.name, |x| x.proxy_cpu)),
            f2(rep.med(r.name, |x| x.foreign_proxy_core)),
            f2(rep.med(r.name, |x| x.load_core_busy)),
            f2(rep.med(r.name, |x| x.foreign_load_core)),
            opt(rep.med(r.name, |x| x.v2_share), |x| format!("{x:.3}")),
            opt(rep.med(r.name, |x| x.rss_kb), |x| format!(
                "{:.1}",
                x / 1024.0
            )),
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "Upstream Envoy RSS at the end: {:.1} MiB. Raw per-round figures: `{}`.",
        ctx.upstream_rss_kb / 1024.0,
        ctx.runs_file
    );
    if !profile.is_empty() {
        let _ = writeln!(w);
        let _ = writeln!(w, "Where the proxy's CPU goes (BENCH_PROFILE=1: one extra wrk run per variant under `perf stat` and");
        let _ = writeln!(w, "`perf record -e cpu-clock`; per request; sample shares by binary: kernel = syscalls and loopback TCP,");
        let _ = writeln!(w, "envoy = Envoy's own code, wasm JIT = code the wasm runtime generated, i.e. the filter itself):");
        let _ = writeln!(w);
        let _ = writeln!(w, "| variant | requests | CPU µs/req | user µs/req | sys µs/req | syscalls/req | ctx switches/req | kernel % | envoy % | wasm JIT % | libc % | other % |");
        let _ = writeln!(
            w,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in profile {
            let req = p.requests.max(1) as f64;
            let per = |v: Option<f64>, scale: f64| opt(v, |x| format!("{:.1}", x * scale / req));
            let ticks_us = |t: u64| format!("{:.1}", t as f64 / p.clk_tck * 1e6 / req);
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                p.name,
                p.requests.max(1),
                per(p.task_ms, 1e3),
                ticks_us(p.user_ticks),
                ticks_us(p.sys_ticks),
                per(p.syscalls, 1.0),
                per(p.ctx, 1.0),
                p.dso[0],
                p.dso[1],
                p.dso[2],
                p.dso[3],
                p.dso[4]
            );
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

const USAGE: &str =
    "usage: cargo bench --bench envoy [-- --list | --help]   (scripts/bench.sh runs it)
Knobs are environment variables: BENCH_ROUNDS BENCH_DURATION BENCH_WARMUP BENCH_CONNECTIONS
BENCH_VARIANTS BENCH_PROXY_CPU BENCH_LOAD_CPU BENCH_WASM_RUNTIME BENCH_OUT BENCH_GATE_WASM
BENCH_MINIMAL_WASM BENCH_PROFILE BENCH_PROFILE_SECONDS ENVOY_BIN (see benches/envoy.rs).";

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
            "gate-header-key",
        ]
    {
        return Err(format!("BENCH_VARIANTS=gate-header-key selects {names:?}"));
    }
    println!(
        "benches/envoy.rs: {} rows checked, {gates} canary-gate configurations accepted \
         (measure with scripts/bench.sh)",
        all.len()
    );
    Ok(())
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
        _ => root.join(format!("bench/results-{}.md", sh("date", &["+%F"]))),
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
    if status_of(upstream.port(), &[]) != 200 {
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
        gate_size: size(&wasm.gate),
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
