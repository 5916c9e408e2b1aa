//! The soak (hardening issue, item 4): wrk at full load through the filter with Basic,
//! access-key and JWT clients mixed, while every 2 s the plugin configuration is pushed the way
//! Istio delivers it (ECDS from a file): valid changes of percents alternate with invalid
//! configurations (percents summing to 120, which Envoy must refuse while the previous one keeps
//! serving), and every 10 s the JWKS at the key endpoint rotates. Then Envoy is restarted (a new
//! process, same configuration) and 1,000 users must keep their versions.
//!
//! ```text
//! scripts/soak.sh            # 600 s (installs wrk, builds the filter, finds Envoy)
//! scripts/soak.sh 60         # the CI variant
//! cargo bench --profile dev --bench soak -- 60   # the driver alone (ENVOY_BIN, CANARY_GATE_WASM set)
//! ```
//!
//! Layout: one Envoy under test (`--concurrency 1`) with three gateways in one plugin
//! configuration (`/basic`: Basic `{SHA}`, `/key`: access key, `/jwt`: OAuth2 with `jwks_uri`
//! refreshed every second), each splitting `x-user` between `v1` and `v2`; an upstream Envoy
//! answering 200 with `direct_response` for every cluster; the JWKS from a small in-process HTTP
//! server. wrk (`-t1 -c16`) rotates among 600 requests (200 users per credential type).
//!
//! JWKS rotation: key `A` is always served and signs wrk's tokens (an old key that is still
//! served keeps its tokens valid). Every 10 s a fresh key `K_g` replaces `K_(g-1)` in the served
//! set; once the main thread's and the worker's VMs have both logged the new key set, the
//! driver sends one token signed by `K_g`
//! (must be 200) and one signed by `K_(g-1)` (must be 401: the key was withdrawn). Those 401s
//! are the only non-2xx the test intends, and it counts them.
//!
//! Pass: Envoy's `downstream_rq_non-2xx` equals the intended 401s and wrk saw no non-2xx and no
//! socket errors; no VM failure in the log or stats; VmRSS at the end within 10% of VmRSS at
//! 1 minute (1/10 of the run if shorter); every push applied or refused (`update_success`,
//! `update_rejected`), Envoy's refusal lines once per invalid push, and the plugin's `critical`
//! line once per distinct invalid configuration (Envoy refuses a configuration it has already
//! refused without starting the plugin again); after the restart, 1,000 users get the same
//! upstream as before and as the murmur3 oracle.
//!
//! Without `--bench` (under `cargo test --all-targets`) it only builds the configurations and
//! checks them with `canary_gate::config::parse` (valid ones accepted, invalid ones refused for
//! the sum), and the wrk script.

// A driver: set-up that fails must stop the run loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../tests/common/bootstrap.rs"]
mod bootstrap;
#[path = "../../tests/common/envoy.rs"]
mod envoy;
#[path = "../../tests/common/oracle.rs"]
mod oracle;

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use sha1::Digest as _;

use bootstrap::{GATEWAY_LISTENER, WASM_TYPE};
use envoy::{Envoy, TempDir};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ISSUER: &str = "https://issuer.soak.canary-gate.test";
const AUDIENCE: &str = "canary-gate-soak";
// Fixed test credentials; nothing here is secret.
const BASIC_USER: &str = "soak";
const BASIC_PASSWORD: &str = "soak-password";
const ACCESS_KEY: &str = "soak-access-key-0123456789";
const GATEWAYS: [&str; 3] = ["basic", "key", "jwt"];
const PUSH_EVERY: Duration = Duration::from_secs(2);
const ROTATE_EVERY_TICKS: u64 = 5;
const RESTART_USERS: usize = 1000;
const WRK_USERS: usize = 600;

macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("[soak {}] {}", $crate::sh("date", &["+%T"]), format!($($arg)*))
    };
}

fn sh(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn b64u(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// An ES256 key with its kid.
fn new_key(kid: &str) -> ES256KeyPair {
    ES256KeyPair::generate().with_key_id(kid)
}

fn jwk(key: &ES256KeyPair) -> Value {
    let point = key.public_key().public_key().to_bytes_uncompressed(); // 04 || x || y
    json!({"kty": "EC", "alg": "ES256", "use": "sig", "crv": "P-256",
           "kid": key.key_id().clone().unwrap_or_default(),
           "x": b64u(&point[1..33]), "y": b64u(&point[33..65])})
}

fn token(key: &ES256KeyPair, subject: &str) -> String {
    let mut c = Claims::create(jwt_simple::prelude::Duration::from_secs(1))
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_subject(subject);
    c.issued_at = Some(UnixTimeStamp::from_secs(1_700_000_000));
    c.expires_at = Some(UnixTimeStamp::from_secs(4_102_444_800)); // 2100-01-01
    c.invalid_before = None;
    key.sign(c).expect("ES256 signs")
}

/// Credentials of the three client types, as `(path prefix, header, value)`.
struct Clients {
    basic: String,
    key: String,
    jwt: String,
}

impl Clients {
    fn header(&self, gateway: usize) -> (&'static str, String) {
        match gateway {
            0 => ("authorization", self.basic.clone()),
            1 => ("x-api-key", self.key.clone()),
            _ => ("authorization", self.jwt.clone()),
        }
    }
}

/// The plugin configuration: three gateways, `v2` taking `percents[i]` of gateway i. With
/// `invalid`, the `jwt` gateway's canaries sum to 120 (refused).
fn plugin_config(percents: [u32; 3], invalid: bool) -> Value {
    let sha = b64(&sha1::Sha1::digest(BASIC_PASSWORD.as_bytes()));
    let key_sha256 = hex::encode(sha2::Sha256::digest(ACCESS_KEY.as_bytes()));
    let auths = [
        json!({"mode": "basic", "realm": "soak", "users": [format!("{BASIC_USER}:{{SHA}}{sha}")]}),
        json!({"mode": "access_key", "keys": [{"consumer": "soak", "sha256": key_sha256}]}),
        json!({"mode": "oauth2", "issuer": ISSUER, "audiences": [AUDIENCE],
               "jwks_uri": {"cluster": "idp", "path": "/jwks.json", "authority": "idp.soak",
                            "refresh_seconds": 1, "timeout_ms": 5000}}),
    ];
    let gateways: Vec<Value> = GATEWAYS
        .iter()
        .zip(auths)
        .zip(percents)
        .enumerate()
        .map(|(i, ((name, auth), percent))| {
            let canaries = if invalid && i == 2 {
                json!([{"name": "v2", "percent": 60}, {"name": "v3", "percent": 60}])
            } else {
                json!([{"name": "v2", "percent": percent}])
            };
            json!({"name": name, "path_prefix": format!("/{name}"), "primary": "v1",
                   "canaries": canaries, "split": {"by": "header", "name": "x-user"},
                   "auth": auth})
        })
        .collect();
    json!({"response_header": "x-canary-upstream", "gateways": gateways})
}

/// The percents of valid push `n` (deterministic, 0..=50, so a change moves users both ways).
fn percents_of(n: u64) -> [u32; 3] {
    [
        (n * 7 % 51) as u32,
        (n * 13 % 51) as u32,
        (n * 29 % 51) as u32,
    ]
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

fn upstream_bootstrap() -> Value {
    let route_config = json!({"virtual_hosts": [{"name": "all", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]}]});
    json!({
        "admin": bootstrap::admin(),
        "static_resources": {"listeners": [
            bootstrap::http_listener("upstream", "upstream", route_config, vec![bootstrap::router()])
        ]}
    })
}

fn proxy_bootstrap(ecds_file: &Path, upstream_port: u16, idp_port: u16) -> Value {
    let filter = json!({
        "name": "canary-gate",
        "config_discovery": {
            "config_source": {"path_config_source": {"path": ecds_file.to_string_lossy()},
                              "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
            "type_urls": [WASM_TYPE]
        }
    });
    let route_config = json!({"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster_header": "x-canary-upstream"}}]}]});
    let mut clusters: Vec<Value> = ["v1", "v2", "v3"]
        .iter()
        .map(|n| bootstrap::static_cluster(n, upstream_port))
        .collect();
    clusters.push(bootstrap::static_cluster("idp", idp_port));
    json!({
        "node": {"id": "soak", "cluster": "soak"},
        "admin": bootstrap::admin(),
        "stats_config": {"stats_tags": bootstrap::stats_tags()},
        "overload_manager": bootstrap::overload_manager(),
        "static_resources": {
            "listeners": [bootstrap::http_listener(GATEWAY_LISTENER, "gw", route_config,
                                                   vec![filter, bootstrap::router()])],
            "clusters": clusters
        }
    })
}

/// The wrk script: 600 prepared requests, user i on gateway i % 3 with its credential.
fn wrk_script(c: &Clients) -> String {
    let mut s = String::from("local reqs = {}\nlocal n = 0\nlocal i = 0\ninit = function(args)\n");
    for u in 0..WRK_USERS {
        let g = u % 3;
        let (h, v) = c.header(g);
        let _ = writeln!(
            s,
            "  n = n + 1; reqs[n] = wrk.format(\"GET\", \"/{}/predict\", {{[\"{h}\"] = \"{v}\", [\"x-user\"] = \"soak-user-{u}\"}})",
            GATEWAYS[g]
        );
    }
    s.push_str("end\nrequest = function()\n  i = i % n + 1\n  return reqs[i]\nend\n");
    s
}

/// The in-process JWKS endpoint: serves the current document, counts requests.
struct Idp {
    port: u16,
    doc: Arc<Mutex<String>>,
    served: Arc<AtomicU64>,
    server: Arc<tiny_http::Server>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Idp {
    fn start(doc: String) -> Idp {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("idp listens"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let doc = Arc::new(Mutex::new(doc));
        let served = Arc::new(AtomicU64::new(0));
        let thread = {
            let (server, doc, served) = (server.clone(), doc.clone(), served.clone());
            thread::spawn(move || {
                for req in server.incoming_requests() {
                    let body = doc.lock().map(|d| d.clone()).unwrap_or_default();
                    served.fetch_add(1, Ordering::Relaxed);
                    let ct = tiny_http::Header::from_bytes("content-type", "application/json")
                        .expect("static header");
                    let _ = req.respond(tiny_http::Response::from_string(body).with_header(ct));
                }
            })
        };
        Idp {
            port,
            doc,
            served,
            server,
            thread: Some(thread),
        }
    }

    fn serve(&self, keys: &[&ES256KeyPair]) {
        let doc = json!({"keys": keys.iter().map(|k| jwk(k)).collect::<Vec<_>>()});
        *self.doc.lock().expect("idp lock") = doc.to_string();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How many Envoy threads logged `JWKS loaded: ... (kids: soak-a, <kid>)`. The fetch counter
/// alone is not enough: the main thread's VM fetches too (one 10-minute run probed 20 ms after
/// the main thread had the new key and before the worker had it), so the probe waits until both
/// the main thread and the worker (`--concurrency 1`) hold the new key set.
fn loaded_by_threads(log: &str, kid_end: &str) -> usize {
    let needle = format!("kids: soak-a, {kid_end}");
    log.lines()
        .filter(|l| l.contains("JWKS loaded") && l.contains(&needle))
        .filter_map(|l| l.split(['[', ']']).nth(3))
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// A counter from `/stats` (text format), 0 if absent.
fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy
        .admin_get("/stats?filter=downstream_rq_")
        .lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(": ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The ECDS counters of the plugin: (update_success, update_rejected).
fn ecds_counts(envoy: &Envoy) -> (u64, u64) {
    let text = envoy.admin_get("/stats?filter=extension_config_discovery");
    let get = |suffix: &str| {
        text.lines()
            .filter(|l| l.contains(".canary-gate.") && l.contains(suffix))
            .filter_map(|l| l.rsplit_once(": ")?.1.trim().parse::<u64>().ok())
            .sum::<u64>()
    };
    (get(".update_success: "), get(".update_rejected: "))
}

/// Sum of a Prometheus family's series.
fn prom_sum(envoy: &Envoy, family: &str) -> f64 {
    envoy
        .admin_get("/stats/prometheus")
        .lines()
        .filter(|l| l.starts_with(family) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn rss_kb(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// GET through the gateway: status and the `x-canary-upstream` response header.
fn get(agent: &ureq::Agent, port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = agent.get(&format!("http://127.0.0.1:{port}{path}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return (0, format!("transport error: {e}")),
    };
    let upstream = resp.header("x-canary-upstream").unwrap_or("").to_owned();
    let status = resp.status();
    let _ = resp.into_string();
    (status, upstream)
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(15))
        .build()
}

/// The upstream each of 1,000 users gets (user i on gateway i % 3).
fn users_versions(envoy: &Envoy, c: &Clients) -> Vec<(u16, String)> {
    let a = agent();
    (0..RESTART_USERS)
        .map(|u| {
            let g = u % 3;
            let (h, v) = c.header(g);
            let user = format!("restart-user-{u}");
            get(
                &a,
                envoy.listener_port(GATEWAY_LISTENER),
                &format!("/{}/predict", GATEWAYS[g]),
                &[(h, &v), ("x-user", &user)],
            )
        })
        .collect()
}

fn oracle_versions(percents: [u32; 3]) -> Vec<String> {
    (0..RESTART_USERS)
        .map(|u| {
            let p = f64::from(percents[u % 3]);
            oracle::expected_upstream(format!("restart-user-{u}"), 0, "v1", &[("v2", p)]).to_owned()
        })
        .collect()
}

struct Wrk {
    requests: u64,
    non2xx: u64,
    socket_errors: String,
    rps: String,
    latency: String,
}

fn parse_wrk(out: &str) -> Wrk {
    let find = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
    };
    Wrk {
        requests: out
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        non2xx: find("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        socket_errors: find("Socket errors:").unwrap_or_else(|| "none".into()),
        rps: find("Requests/sec:").unwrap_or_default(),
        latency: find("99%").unwrap_or_default(),
    }
}

/// Signs of a VM that crashed (a panic, a trap, a failed call into the VM). Envoy also logs
/// `Wasm VM failed Failed to configure base Wasm plugin` for every refused configuration: that
/// line is counted against the invalid pushes instead.
const VM_FAILURE_SIGNS: [&str; 5] = [
    "panicked",
    "Uncaught",
    "unreachable",
    "failed to call",
    "VM failed",
];
const REFUSED_SIGN: &str = "Failed to configure base Wasm plugin";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(600);
    let result = if args.iter().any(|a| a == "--bench") {
        soak(seconds)
    } else {
        self_check()
    };
    match result {
        Ok(()) => {}
        Err(e) => {
            log!("FAIL: {e}");
            std::process::exit(1);
        }
    }
}

fn clients(a: &ES256KeyPair) -> Clients {
    Clients {
        basic: format!(
            "Basic {}",
            b64(format!("{BASIC_USER}:{BASIC_PASSWORD}").as_bytes())
        ),
        key: ACCESS_KEY.to_owned(),
        jwt: format!("Bearer {}", token(a, "soak-wrk")),
    }
}

/// `cargo test --all-targets`: the configurations and the script, no Envoy.
fn self_check() -> Result<(), String> {
    let mut accepted = 0;
    for n in 0..20 {
        let cfg = plugin_config(percents_of(n), false);
        canary_gate::config::parse(cfg.to_string().as_bytes())
            .map_err(|e| format!("valid push {n} refused: {e}"))?;
        accepted += 1;
        match canary_gate::config::parse(plugin_config(percents_of(n), true).to_string().as_bytes())
        {
            Ok(_) => return Err(format!("invalid push {n} accepted")),
            Err(e) if e.to_string().contains("120") => {}
            Err(e) => return Err(format!("invalid push {n} refused for another reason: {e}")),
        }
    }
    let script = wrk_script(&clients(&new_key("check")));
    if script.matches("wrk.format").count() != WRK_USERS {
        return Err("wrk script does not hold one request per user".into());
    }
    println!(
        "benches/soak: {accepted} valid configurations accepted, as many invalid ones refused \
         for their sum; wrk script of {WRK_USERS} requests (soak with scripts/soak.sh)"
    );
    Ok(())
}

fn soak(seconds: u64) -> Result<(), String> {
    let wasm = bootstrap::wasm_path();
    let stamp = sh("date", &["+%Y%m%d-%H%M%S"]);
    let run_dir = Path::new(ROOT).join(format!(".tmp/soak/run-{stamp}"));
    fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
    let early_at = Duration::from_secs(seconds.div_ceil(10).min(60));
    log!(
        "{seconds} s; pushes every {}s, JWKS rotation every {}s; RSS compared at {}s and the end; run dir {}",
        PUSH_EVERY.as_secs(),
        PUSH_EVERY.as_secs() * ROTATE_EVERY_TICKS,
        early_at.as_secs(),
        run_dir.display()
    );
    let load_before = sh("uptime", &[]);
    log!("load before: {load_before}");

    // Keys: A always served (wrk's tokens); K_g rotates.
    let key_a = new_key("soak-a");
    let mut rotating = new_key("soak-k0");
    let idp = Idp::start(String::new());
    idp.serve(&[&key_a, &rotating]);
    let c = clients(&key_a);

    let upstream = Envoy::builder(upstream_bootstrap()).start();
    let ecds_dir = TempDir::new("soak-ecds");
    let ecds_file = ecds_dir.path().join("extension_config.json");
    let mut version = 1u64;
    let mut last_valid = percents_of(0);
    write_atomic(
        &ecds_file,
        &bootstrap::ecds(&wasm, &plugin_config(last_valid, false), version).to_string(),
    );
    let boot = proxy_bootstrap(&ecds_file, upstream.port(), idp.port);
    let proxy = Envoy::builder(&boot).start();
    let port = proxy.listener_port(GATEWAY_LISTENER);
    let a = agent();
    for (g, name) in GATEWAYS.iter().enumerate() {
        let (h, v) = c.header(g);
        let (status, up) = get(
            &a,
            port,
            &format!("/{name}/predict"),
            &[(h, &v), ("x-user", "u")],
        );
        if status != 200 {
            return Err(format!(
                "gateway {} answers {status} before the soak:\n{}",
                name,
                proxy.log()
            ));
        }
        let (status, _) = get(&a, port, &format!("/{name}/predict"), &[("x-user", "u")]);
        if status != 401 {
            return Err(format!(
                "gateway {} answers {status} without credentials ({up})",
                GATEWAYS[g]
            ));
        }
    }
    // 3 requests without credentials above: intended 401s.
    let mut intended_non2xx = 3u64;
    let (ok0, rej0) = ecds_counts(&proxy);
    let base_2xx = stat(&proxy, "http.gw.downstream_rq_2xx");
    let base_done = stat(&proxy, "http.gw.downstream_rq_completed");

    let script = run_dir.join("mixed.lua");
    fs::write(&script, wrk_script(&c)).map_err(|e| e.to_string())?;
    let wrk_out = run_dir.join("wrk.out");
    let mut wrk: Child = Command::new("wrk")
        .args(["-t1", "-c16", "--timeout", "10s", "--latency"])
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(fs::File::create(&wrk_out).map_err(|e| e.to_string())?)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("wrk: {e} (scripts/soak.sh installs it)"))?;

    let start = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let (mut valid_pushes, mut invalid_pushes) = (0u64, 0u64);
    // Envoy remembers a configuration it refused: pushing the same text again is refused without
    // starting the plugin, so the plugin logs once per distinct invalid configuration.
    let mut distinct_invalid = std::collections::HashSet::new();
    let mut push_wait_max = Duration::ZERO;
    let mut rss_early = None;
    let mut rss_samples = Vec::new();
    let (mut rotations, mut probes_ok) = (0u64, 0u64);
    // After a rotation: the withdrawn key and the fetch count to wait for.
    let mut pending: Option<(ES256KeyPair, f64)> = None;
    let mut tick = 0u64;
    while start.elapsed() + PUSH_EVERY <= Duration::from_secs(seconds) {
        tick += 1;
        let next = start + PUSH_EVERY * tick as u32;
        // Push: odd ticks invalid, even ticks a new valid percent set.
        version += 1;
        let invalid = tick % 2 == 1;
        let percents = if invalid {
            last_valid
        } else {
            percents_of(tick)
        };
        let cfg = plugin_config(percents, invalid);
        write_atomic(
            &ecds_file,
            &bootstrap::ecds(&wasm, &cfg, version).to_string(),
        );
        if invalid {
            invalid_pushes += 1;
            distinct_invalid.insert(cfg.to_string());
        } else {
            valid_pushes += 1;
            last_valid = percents;
        }
        let pushed_at = Instant::now();
        let want = (ok0 + valid_pushes, rej0 + invalid_pushes);
        loop {
            let got = ecds_counts(&proxy);
            if got == want {
                push_wait_max = push_wait_max.max(pushed_at.elapsed());
                break;
            }
            if got.0 > want.0 || got.1 > want.1 || pushed_at.elapsed() > Duration::from_secs(15) {
                failures.push(format!(
                    "push {version} ({}): ECDS (success, rejected) = {got:?}, want {want:?}",
                    if invalid { "invalid" } else { "valid" }
                ));
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // JWKS: probe the previous rotation once the filter has fetched twice since.
        if let Some((old, fetches)) = &pending {
            if prom_sum(&proxy, "canary_gate_oauth2_jwks_fetch_ok") >= *fetches
                && loaded_by_threads(&proxy.log(), &format!("soak-k{rotations})")) >= 2
            {
                let new = format!("Bearer {}", token(&rotating, "soak-probe"));
                let (s_new, _) = get(
                    &a,
                    port,
                    "/jwt/predict",
                    &[("authorization", &new), ("x-user", "p")],
                );
                let gone = format!("Bearer {}", token(old, "soak-probe"));
                let (s_old, _) = get(
                    &a,
                    port,
                    "/jwt/predict",
                    &[("authorization", &gone), ("x-user", "p")],
                );
                if s_old != 200 {
                    intended_non2xx += 1;
                }
                if s_new == 200 && s_old == 401 {
                    probes_ok += 1;
                } else {
                    failures.push(format!(
                        "rotation {rotations}: new key's token got {s_new} (want 200), withdrawn key's got {s_old} (want 401)"
                    ));
                }
                pending = None;
            }
        }
        if tick.is_multiple_of(ROTATE_EVERY_TICKS) && pending.is_none() {
            rotations += 1;
            let fresh = new_key(&format!("soak-k{rotations}"));
            idp.serve(&[&key_a, &fresh]);
            let old = std::mem::replace(&mut rotating, fresh);
            // Probed once two fetches have completed since the change and both threads' VMs
            // have logged the new key set (`loaded_by_threads`).
            pending = Some((
                old,
                prom_sum(&proxy, "canary_gate_oauth2_jwks_fetch_ok") + 2.0,
            ));
        }
        let rss = rss_kb(proxy.pid());
        rss_samples.push((start.elapsed().as_secs(), rss));
        if rss_early.is_none() && start.elapsed() >= early_at {
            rss_early = Some(rss);
            log!("RSS at {}s: {rss} kB", start.elapsed().as_secs());
        }
        if tick.is_multiple_of(15) {
            log!(
                "{}s: {} pushes ({valid_pushes} valid, {invalid_pushes} invalid), {rotations} rotations, RSS {rss} kB",
                start.elapsed().as_secs(),
                valid_pushes + invalid_pushes
            );
        }
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    let status = wrk.wait().map_err(|e| e.to_string())?;
    let rss_end = rss_kb(proxy.pid());
    let wrk_text = fs::read_to_string(&wrk_out).unwrap_or_default();
    if !status.success() {
        failures.push(format!("wrk exited with {status}"));
    }
    let w = parse_wrk(&wrk_text);

    // Requests: every one Envoy completed is 2xx except the intended 401s.
    let done = stat(&proxy, "http.gw.downstream_rq_completed") - base_done;
    let ok = stat(&proxy, "http.gw.downstream_rq_2xx") - base_2xx;
    let non2xx_all = done - ok;
    let probe_non2xx = intended_non2xx - 3;
    if non2xx_all != probe_non2xx {
        failures.push(format!(
            "{non2xx_all} non-2xx during the soak, {probe_non2xx} intended (withdrawn-key probes)"
        ));
    }
    if w.non2xx != 0 || w.socket_errors != "none" {
        failures.push(format!(
            "wrk: {} non-2xx, socket errors: {}",
            w.non2xx, w.socket_errors
        ));
    }
    let log = proxy.log();
    fs::write(run_dir.join("envoy.log"), &log).map_err(|e| e.to_string())?;
    let signs: Vec<&str> = VM_FAILURE_SIGNS
        .iter()
        .copied()
        .filter(|s| {
            log.lines()
                .any(|l| l.contains(s) && !l.contains(REFUSED_SIGN))
        })
        .collect();
    if !signs.is_empty() {
        failures.push(format!("VM failure signs in Envoy's log: {signs:?}"));
    }
    let rejected_lines = log
        .lines()
        .filter(|l| {
            l.contains("][critical]")
                && l.contains("invalid configuration: gateways[2].canaries[1].percent: total 120")
        })
        .count() as u64;
    let refused_lines = log.lines().filter(|l| l.contains(REFUSED_SIGN)).count() as u64;
    let distinct = distinct_invalid.len() as u64;
    if rejected_lines != distinct || refused_lines != distinct {
        failures.push(format!(
            "{rejected_lines} critical config-error lines and {refused_lines} refusals by the \
             plugin for {distinct} distinct invalid configurations"
        ));
    }
    // Envoy's own lines, one per refused push.
    let envoy_refusals = log
        .lines()
        .filter(|l| l.contains("Plugin canary-gate failed to load"))
        .count() as u64;
    let file_rejections = log
        .lines()
        .filter(|l| l.contains("Filesystem config update rejected"))
        .count() as u64;
    if envoy_refusals != invalid_pushes || file_rejections != invalid_pushes {
        failures.push(format!(
            "{envoy_refusals} `failed to load` and {file_rejections} `update rejected` lines \
             for {invalid_pushes} invalid pushes"
        ));
    }
    let rss_early = rss_early.unwrap_or(rss_end);
    let rss_change = (rss_end as f64 - rss_early as f64) / rss_early.max(1) as f64 * 100.0;
    if rss_change.abs() > 10.0 {
        failures.push(format!(
            "RSS {rss_early} kB at {}s, {rss_end} kB at the end ({rss_change:+.1}%)",
            early_at.as_secs()
        ));
    }
    let rss_max = rss_samples.iter().map(|s| s.1).max().unwrap_or(0);
    let fetches = prom_sum(&proxy, "canary_gate_oauth2_jwks_fetch_ok");
    let fetch_failed = prom_sum(&proxy, "canary_gate_oauth2_jwks_fetch_failed");
    let (ok_end, rej_end) = ecds_counts(&proxy);

    // Restart: the last valid configuration in the file, a new Envoy process.
    log!("soak done; restarting Envoy with the last valid configuration {last_valid:?}");
    let oracle = oracle_versions(last_valid);
    let before = users_versions(&proxy, &c);
    drop(proxy);
    version += 1;
    write_atomic(
        &ecds_file,
        &bootstrap::ecds(&wasm, &plugin_config(last_valid, false), version).to_string(),
    );
    let restarted = Envoy::builder(&boot).start();
    let after = users_versions(&restarted, &c);
    let count = |v: &[(u16, String)], pred: &dyn Fn(usize, &(u16, String)) -> bool| {
        v.iter().enumerate().filter(|(i, x)| pred(*i, x)).count()
    };
    let before_bad = count(&before, &|i, (s, u)| *s != 200 || *u != oracle[i]);
    let after_bad = count(&after, &|i, (s, u)| *s != 200 || *u != oracle[i]);
    let moved = count(&after, &|i, x| *x != before[i]);
    let canary_users = count(&after, &|_, (_, u)| u == "v2");
    if before_bad + after_bad + moved != 0 {
        failures.push(format!(
            "restart: {before_bad} users off the oracle before, {after_bad} after, {moved} moved"
        ));
    }
    let restart_log = restarted.log();
    drop(restarted);
    drop(upstream);
    let load_after = sh("uptime", &[]);

    let mut r = String::new();
    let _ = writeln!(
        r,
        "## Soak {} ({seconds} s)\n",
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    let _ = writeln!(r, "| figure | value |\n|---|---|");
    let _ = writeln!(
        r,
        "| load before / after | `{load_before}` / `{load_after}` |"
    );
    let _ = writeln!(
        r,
        "| wrk requests (mixed Basic / access key / JWT) | {} ({} req/s, p99 {}) |",
        w.requests, w.rps, w.latency
    );
    let _ = writeln!(
        r,
        "| Envoy completed / 2xx during the soak | {done} / {ok} |"
    );
    let _ = writeln!(
        r,
        "| non-2xx (Envoy) / intended (withdrawn-key probes) | {non2xx_all} / {probe_non2xx} |"
    );
    let _ = writeln!(
        r,
        "| wrk non-2xx / socket errors | {} / {} |",
        w.non2xx, w.socket_errors
    );
    let _ = writeln!(
        r,
        "| pushes valid / invalid | {valid_pushes} / {invalid_pushes} |"
    );
    let _ = writeln!(
        r,
        "| ECDS update_success / update_rejected (incl. the initial one) | {ok_end} / {rej_end} |"
    );
    let _ = writeln!(
        r,
        "| slowest push to be applied or refused | {} ms |",
        push_wait_max.as_millis()
    );
    let _ = writeln!(r, "| distinct invalid configurations / plugin's critical config-error lines / `{REFUSED_SIGN}` lines | {distinct} / {rejected_lines} / {refused_lines} |");
    let _ = writeln!(r, "| Envoy's `Plugin canary-gate failed to load` / `Filesystem config update rejected` lines | {envoy_refusals} / {file_rejections} |");
    let _ = writeln!(r, "| JWKS rotations / probes passed (new key 200, withdrawn 401) | {rotations} / {probes_ok} |");
    let _ = writeln!(
        r,
        "| JWKS fetches ok / failed; served by the idp | {fetches} / {fetch_failed}; {} |",
        idp.served.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        r,
        "| VM failure signs in the log | {} |",
        if signs.is_empty() {
            "none".to_owned()
        } else {
            signs.join(", ")
        }
    );
    let _ = writeln!(r, "| RSS at {}s / end / max | {rss_early} kB / {rss_end} kB / {rss_max} kB ({rss_change:+.1}%) |", early_at.as_secs());
    let _ = writeln!(r, "| restart: users checked / off oracle before / after / moved / on v2 | {RESTART_USERS} / {before_bad} / {after_bad} / {moved} / {canary_users} |");
    let _ = writeln!(
        r,
        "| verdict | {} |",
        if failures.is_empty() {
            "PASS".to_owned()
        } else {
            format!("FAIL: {}", failures.join("; "))
        }
    );
    let samples: Vec<String> = rss_samples
        .iter()
        .map(|(t, k)| format!("{t}\t{k}"))
        .collect();
    let _ = fs::write(run_dir.join("rss.tsv"), samples.join("\n"));
    let _ = fs::write(run_dir.join("envoy-restarted.log"), restart_log);
    let _ = fs::write(run_dir.join("summary.md"), &r);
    print!("{r}");
    log!("run dir: {}", run_dir.display());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
