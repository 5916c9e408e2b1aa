//! Watching every version, the canary guard and the ramp, through a real Envoy with
//! upstreams that fail or answer as told: response classes and latency per upstream, a guard
//! that trips at its figures and not below `min_requests`, `dry_run`, a trip kept across a
//! re-pushed configuration and re-armed by a new revision, two workers tripping together, and
//! a ramp at its computed step that moves on time and stops when tripped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::bootstrap::{self, GATEWAY_LISTENER, WASM_TYPE};
use common::envoy::TempDir;
use common::raw::{self, RawResp};
use common::Envoy;
use serde_json::{json, Value};

/// An upstream that answers every request with the status it is told (and, if set, a
/// `grpc-status`), naming itself in `x-raw-upstream`. Stops on drop.
struct Upstream {
    name: String,
    port: u16,
    status: Arc<AtomicU16>,
    grpc_status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    fn start(name: &str, status: u16) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(status));
        let grpc_status = Arc::new(AtomicU16::new(u16::MAX));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (name, status, grpc, stop) = (
                name.to_owned(),
                status.clone(),
                grpc_status.clone(),
                stop.clone(),
            );
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(s) = stream {
                        answer(
                            s,
                            &name,
                            status.load(Ordering::Relaxed),
                            grpc.load(Ordering::Relaxed),
                        );
                    }
                }
            })
        };
        Upstream {
            name: name.to_owned(),
            port,
            status,
            grpc_status,
            stop,
            thread: Some(thread),
        }
    }
}

fn answer(mut s: TcpStream, name: &str, status: u16, grpc_status: u16) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let grpc = if grpc_status == u16::MAX {
        String::new()
    } else {
        format!("content-type: application/grpc\r\ngrpc-status: {grpc_status}\r\n")
    };
    let resp = format!(
        "HTTP/1.1 {status} X\r\nx-raw-upstream: {name}\r\n{grpc}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    let _ = s.write_all(resp.as_bytes());
    let _ = s.shutdown(Shutdown::Both);
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Gate {
    envoy: Envoy,
    ecds_dir: TempDir,
    version: u32,
    _upstreams: Vec<Upstream>,
}

impl Gate {
    fn start(config: &Value, upstreams: Vec<Upstream>, workers: u32) -> Gate {
        let ecds_dir = TempDir::new("watch-ecds");
        let path = ecds_dir.0.join("extension_config.json");
        std::fs::write(
            &path,
            bootstrap::ecds(&common::wasm_path(), config, 1).to_string(),
        )
        .unwrap();
        let mut clusters: Vec<Value> = upstreams
            .iter()
            .map(|u| bootstrap::static_cluster(&u.name, u.port))
            .collect();
        // An upstream nobody listens on: Envoy answers 503 for it.
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        clusters.push(bootstrap::static_cluster("dead", dead_port));
        let filter = json!({
            "name": "canary-gate",
            "config_discovery": {
                "config_source": {"path_config_source": {"path": path.to_string_lossy()},
                                  "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
                "type_urls": [WASM_TYPE]
            }
        });
        let route_config = json!({"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster_header": "x-canary-upstream"}}]}]});
        let boot = json!({
            "node": {"id": "watch-test", "cluster": "watch-test"},
            "admin": bootstrap::admin(),
            "stats_config": {"stats_tags": bootstrap::stats_tags()},
            "stats_flush_interval": "0.5s",
            "overload_manager": bootstrap::overload_manager(),
            "static_resources": {
                "listeners": [bootstrap::http_listener(GATEWAY_LISTENER, "gw", route_config,
                                                       vec![filter, bootstrap::router()])],
                "clusters": clusters
            }
        });
        let envoy = Envoy::builder(boot).concurrency(workers).start();
        Gate {
            envoy,
            ecds_dir,
            version: 1,
            _upstreams: upstreams,
        }
    }

    /// A new plugin configuration, as `kubectl apply` of an edited WasmPlugin would push it.
    fn push(&mut self, config: &Value) {
        self.version += 1;
        let dir: &Path = &self.ecds_dir.0;
        let tmp = dir.join("extension_config.json.tmp");
        std::fs::write(
            &tmp,
            bootstrap::ecds(&common::wasm_path(), config, u64::from(self.version)).to_string(),
        )
        .unwrap();
        std::fs::rename(&tmp, dir.join("extension_config.json")).unwrap();
        let want = u64::from(self.version);
        assert!(
            wait(Duration::from_secs(15), || self.ecds_updates() >= want),
            "push {} not applied:\n{}",
            self.version,
            self.envoy.log()
        );
    }

    /// ECDS updates accepted for the plugin (the first configuration counts).
    fn ecds_updates(&self) -> u64 {
        self.envoy
            .admin_get("/stats?filter=extension_config_discovery")
            .lines()
            .find(|l| l.contains(".canary-gate.update_success: "))
            .and_then(|l| l.rsplit_once(": "))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn get(&self, user: &str) -> RawResp {
        raw::get(
            self.envoy.port(),
            b"/predict",
            &[("x-user", user.as_bytes())],
        )
    }

    /// A Prometheus series' value (0 if absent).
    fn series(&self, line_start: &str) -> f64 {
        self.envoy
            .prometheus()
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

fn wait(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn bucket(key: &str) -> u32 {
    common::oracle::murmur3_x86_32(key.as_bytes(), 0) % 10_000
}

/// `n` users whose bucket is in `range`.
fn users_in(range: std::ops::Range<u32>, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("user-{i}"))
        .filter(|u| range.contains(&bucket(u)))
        .take(n)
        .collect()
}

fn config(canaries: Value) -> Value {
    json!({"primary": "v1", "split": {"by": "header", "name": "x-user"},
           "select_header": "x-select", "canaries": canaries})
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn rfc3339(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn responses_are_counted_per_upstream_class_and_latency() {
    let cfg = config(
        json!([{"name": "v2", "percent": 30}, {"name": "dead", "percent": 10},
                            {"name": "g", "percent": 10}]),
    );
    let g_upstream = Upstream::start("g", 200);
    g_upstream.grpc_status.store(14, Ordering::Relaxed);
    let gate = Gate::start(
        &cfg,
        vec![
            Upstream::start("v1", 200),
            Upstream::start("v2", 503),
            g_upstream,
        ],
        1,
    );
    for u in users_in(0..3000, 6)
        .iter()
        .chain(&users_in(5000..10_000, 4))
    {
        gate.get(u);
    }
    for u in users_in(3000..4000, 3) {
        assert_eq!(
            gate.get(&u).status,
            503,
            "Envoy's own 503 for a dead upstream"
        );
    }
    for u in users_in(4000..5000, 2) {
        gate.get(&u);
    }
    let r = |u: &str, class: &str| {
        gate.series(&format!(
            "canary_gate_responses{{gateway=\"default\",upstream=\"{u}\",class=\"{class}\"}}"
        ))
    };
    assert_eq!(r("v2", "5xx"), 6.0);
    assert_eq!(r("v1", "2xx"), 4.0);
    assert_eq!(
        r("dead", "5xx"),
        3.0,
        "Envoy's reply for the chosen upstream is attributed"
    );
    assert_eq!(r("g", "grpc_error"), 2.0);
    assert_eq!(r("g", "2xx"), 0.0);
    // The histogram reaches /stats at the stats flush.
    let count = "canary_gate_response_ms_count{gateway=\"default\",upstream=\"v2\"}";
    assert!(
        wait(Duration::from_secs(10), || gate.series(count) == 6.0),
        "{}",
        gate.envoy.prometheus()
    );
    // Select-header traffic is monitored too.
    raw::get(gate.envoy.port(), b"/", &[("x-select", b"v2")]);
    assert!(wait(Duration::from_secs(5), || r("v2", "5xx") == 7.0));
}

fn guard(extra: Value) -> Value {
    let mut g = json!({"max_error_rate": 0.5, "min_requests": 10, "window_seconds": 60});
    for (k, v) in extra.as_object().unwrap() {
        g[k] = v.clone();
    }
    g
}

/// v2 (bad) owns buckets 0..2000, v3 (good) 2000..3000.
fn guarded(extra: Value, revision: &str) -> Value {
    config(json!([
        {"name": "v2", "percent": 20, "revision": revision, "guard": guard(extra)},
        {"name": "v3", "percent": 10}
    ]))
}

fn upstreams() -> Vec<Upstream> {
    vec![
        Upstream::start("v1", 200),
        Upstream::start("v2", 503),
        Upstream::start("v3", 200),
    ]
}

const TICKS: Duration = Duration::from_millis(2_500);

#[test]
fn a_guard_trips_at_its_figures_and_is_kept_until_the_canary_changes() {
    let mut gate = Gate::start(&guarded(json!({}), "a"), upstreams(), 1);
    let v2_users = users_in(0..2000, 12);
    let v3_users = users_in(2000..3000, 5);
    // Nine failures: below min_requests, no verdict.
    for u in &v2_users[..9] {
        assert_eq!(gate.get(u).upstream(), Some("v2"));
    }
    thread::sleep(TICKS);
    let tripped = "canary_gate_guard_tripped{gateway=\"default\",upstream=\"v2\"}";
    assert_eq!(gate.series(tripped), 0.0, "no trip below min_requests");
    assert_eq!(
        gate.get(&v2_users[11]).upstream(),
        Some("v2"),
        "the tenth response"
    );
    // The tenth: 10 of 10 failed.
    assert!(
        wait(Duration::from_secs(5), || gate.series(tripped) == 1.0),
        "{}",
        gate.envoy.log()
    );
    let line =
        "guard tripped for gateway default canary v2: error rate 1.000 (10 of 10) exceeds 0.5";
    assert!(gate.envoy.log().contains(line), "{}", gate.envoy.log());
    assert_eq!(
        gate.series("canary_gate_guard_trips{gateway=\"default\",upstream=\"v2\"}"),
        1.0
    );
    assert_eq!(
        gate.series("canary_gate_canary_basis_points{gateway=\"default\",upstream=\"v2\"}"),
        0.0
    );
    for u in &v2_users {
        assert_eq!(
            gate.get(u).upstream(),
            Some("v1"),
            "{u}: tripped traffic goes to the primary"
        );
    }
    for u in &v3_users {
        assert_eq!(
            gate.get(u).upstream(),
            Some("v3"),
            "{u}: another canary's users stay"
        );
    }
    let debug = raw::get(gate.envoy.port(), b"/", &[("x-select", b"v2")]);
    assert_eq!(
        debug.upstream(),
        Some("v2"),
        "still reachable with the select header"
    );

    // The same configuration pushed again: still tripped.
    gate.push(&guarded(json!({}), "a"));
    assert_eq!(gate.get(&v2_users[0]).upstream(), Some("v1"));
    // A new revision re-arms it.
    gate.push(&guarded(json!({}), "b"));
    assert_eq!(gate.get(&v2_users[0]).upstream(), Some("v2"));
    assert!(wait(Duration::from_secs(5), || gate.series(tripped) == 0.0));
}

#[test]
fn a_dry_run_guard_logs_and_counts_and_routes_as_before() {
    let gate = Gate::start(&guarded(json!({"dry_run": true}), "a"), upstreams(), 1);
    let v2_users = users_in(0..2000, 10);
    for u in &v2_users {
        gate.get(u);
    }
    let dry = "canary_gate_guard_dry_run_trips{gateway=\"default\",upstream=\"v2\"}";
    assert!(
        wait(Duration::from_secs(5), || gate.series(dry) == 1.0),
        "{}",
        gate.envoy.log()
    );
    assert!(gate
        .envoy
        .log()
        .contains("guard (dry run) of gateway default canary v2 would trip"));
    assert_eq!(gate.get(&v2_users[0]).upstream(), Some("v2"));
    assert_eq!(
        gate.series("canary_gate_guard_trips{gateway=\"default\",upstream=\"v2\"}"),
        0.0
    );
}

#[test]
fn two_workers_trip_together() {
    let gate = Gate::start(&guarded(json!({"min_requests": 20}), "a"), upstreams(), 2);
    let v2_users = users_in(0..2000, 40);
    // 20 failures spread over both workers (one connection each).
    for u in &v2_users[..20] {
        gate.get(u);
    }
    let tripped = "canary_gate_guard_tripped{gateway=\"default\",upstream=\"v2\"}";
    // Both workers must merge on their ticks first; on a loaded 2-core machine
    // (every test file's Envoys at once) that once took longer than 6 s.
    assert!(
        wait(Duration::from_secs(15), || gate.series(tripped) == 1.0),
        "{}",
        gate.envoy.log()
    );
    thread::sleep(TICKS);
    // Every new connection, whichever worker takes it, sends v2's users to the primary.
    for u in &v2_users[20..] {
        assert_eq!(gate.get(u).upstream(), Some("v1"), "{u}");
    }
    assert_eq!(
        gate.series("canary_gate_guard_trips{gateway=\"default\",upstream=\"v2\"}"),
        1.0,
        "once per process"
    );
    assert_eq!(
        gate.envoy
            .log()
            .matches("guard tripped for gateway default canary v2")
            .count(),
        1
    );
}

#[test]
fn a_ramp_is_at_its_step_moves_on_time_and_stops_when_tripped() {
    // Started 9 s ago, +10% every 6 s from 10%: one step done (20%), the next at +3 s.
    let start = now_s() - 9;
    let ramp = json!({"start": rfc3339(start), "step": 10, "every_seconds": 6, "until": 50});
    let cfg = config(json!([{"name": "v2", "percent": 10, "ramp": ramp,
                             "guard": {"max_error_rate": 0.5, "min_requests": 5}}]));
    let gate = Gate::start(
        &cfg,
        vec![Upstream::start("v1", 200), Upstream::start("v2", 200)],
        1,
    );
    let share = "canary_gate_canary_basis_points{gateway=\"default\",upstream=\"v2\"}";
    let expected = |now: u64| -> f64 { (1000 + 1000 * ((now - start) / 6)).min(5000) as f64 };
    // Each user's version against the formula, at the step in force.
    let users: Vec<String> = (0..60).map(|i| format!("ramp-user-{i}")).collect();
    let check = |label: &str| {
        let before = now_s();
        // The filter steps its ramp on its tick (every second): right after a step boundary,
        // a worker may not have ticked yet. Check away from the boundaries.
        if (before - start) % 6 < 2 || (before - start) % 6 == 5 {
            thread::sleep(Duration::from_millis(200));
            return false;
        }
        let bp = expected(before) as u32;
        let got: Vec<Option<String>> = users
            .iter()
            .map(|u| gate.get(u).upstream().map(str::to_owned))
            .collect();
        if now_s() != before && expected(now_s()) as u32 != bp {
            return false; // a step happened during the check: try again
        }
        for (u, got) in users.iter().zip(got) {
            let want = if bucket(u) < bp { "v2" } else { "v1" };
            assert_eq!(
                got.as_deref(),
                Some(want),
                "{label}: {u} (bucket {}, share {bp})",
                bucket(u)
            );
        }
        true
    };
    assert!(wait(Duration::from_secs(12), || check("now")));
    assert!(wait(Duration::from_secs(3), || gate.series(share)
        == expected(now_s())));
    // The next step comes on time.
    let next = start + 12;
    while now_s() < next + 1 {
        thread::sleep(Duration::from_millis(200));
    }
    assert!(
        wait(Duration::from_secs(3), || gate.series(share)
            == expected(now_s())),
        "{}",
        gate.envoy.prometheus()
    );
    assert!(wait(Duration::from_secs(12), || check("next step")));
    // Tripped: 0%, and it stays there while the clock moves on.
    gate._upstreams[1].status.store(503, Ordering::Relaxed);
    // Failures until the window's error rate passes 0.5 (earlier successes count too).
    let v2_users: Vec<&String> = users.iter().filter(|u| bucket(u) < 2000).collect();
    let tripped = || gate.series(share) == 0.0;
    for _ in 0..30 {
        if tripped() {
            break;
        }
        for u in &v2_users {
            gate.get(u);
        }
        thread::sleep(Duration::from_millis(300));
    }
    assert!(
        wait(Duration::from_secs(5), tripped),
        "{}",
        gate.envoy.log()
    );
    thread::sleep(Duration::from_secs(7));
    assert_eq!(gate.series(share), 0.0, "a tripped guard stops the ramp");
    for u in &users {
        assert_eq!(gate.get(u).upstream(), Some("v1"), "{u}");
    }
}
