//! Observability end to end, with the files of `envoy/observability/` as a user takes them:
//! - promtool accepts the scrape config and the rules, and the rules' unit tests pass;
//! - a real Prometheus (Debian's, installed by `scripts/observability-tools.sh`, run by the
//!   test on a loopback port) scrapes a real Envoy's admin `/stats/prometheus` with the scrape
//!   job of `prometheus.yml` and evaluates `rules.yml`; after known traffic (a canary that
//!   answers 503 to every 4th request, a canary that always fails and trips its guard) the
//!   recorded success rates are the exact shares sent, the request rates keep the exact
//!   proportions, the latency percentiles are finite and see the canary's delay, the alerts are
//!   where they should be, and every query of the Grafana dashboard returns data;
//! - the access log of `envoy/demo.yaml` shows, for every request, the gateway, upstream,
//!   bucket and consumer the filter chose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
#[path = "observability/prometheus.rs"]
mod prometheus;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::oracle::{expected_upstream, murmur3_x86_32};
use common::{EchoUpstream, Envoy, Gateway};
use prometheus::{promtool, Prometheus, Sample};
use serde_json::{json, Value};
use sha2::Digest;

const OBSERVABILITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/envoy/observability");
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/envoy/demo.yaml");

const KEY: &str = "observability-key-0123";
/// Requests to the fraud gateway: split 50/50 by `x-user-id` between fraud-v1 and fraud-v2.
const FRAUD_REQUESTS: usize = 200;
/// fraud-v2 answers 503 to every 4th request it gets, each after 30 ms.
const FAIL_EVERY: u64 = 4;
const CANARY_DELAY: Duration = Duration::from_millis(30);
/// Requests to the chat gateway: chat-v2 always answers 500, and its guard trips.
const CHAT_REQUESTS: usize = 60;
const CHAT_MIN_REQUESTS: u64 = 10;
/// `stats_config.histogram_bucket_settings` for the filter's histograms (the README's example).
const BUCKETS: [u64; 14] = [
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000,
];
/// Two values recorded from the same samples: their ratio is exact up to float rounding.
const EXACT: f64 = 1e-9;
/// Bounded waits: for a scrape (1 s interval), a rule evaluation (1 s), a stats flush (1 s).
const SETTLE: Duration = Duration::from_secs(20);

fn plugin_config() -> Value {
    let digest = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    json!({
        "response_header": "x-served-by",
        "gateways": [
            {"name": "fraud", "path_prefix": "/fraud", "primary": "fraud-v1",
             // A guard in dry run: it may log what would trip, and routes as before.
             "canaries": [{"name": "fraud-v2", "percent": 50,
                           "guard": {"max_error_rate": 0.05, "min_requests": 20, "dry_run": true}}],
             "split": {"by": "header", "name": "x-user-id"},
             "auth": {"mode": "access_key", "keys": [{"consumer": "ci", "sha256": digest}]}},
            {"name": "chat", "path_prefix": "/chat", "primary": "chat-v1",
             "canaries": [{"name": "chat-v2", "percent": 50,
                           "guard": {"max_error_rate": 0.5, "min_requests": CHAT_MIN_REQUESTS}}],
             "split": {"by": "header", "name": "x-user-id"}}
        ]
    })
}

/// An upstream that answers `status` to every `every`-th request it gets (the `every`-th,
/// 2×`every`-th, ...) and 200 to the others, each after `delay`. Stops on drop.
struct FlakyUpstream {
    name: String,
    port: u16,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl FlakyUpstream {
    fn start(name: &str, status: u16, every: u64, delay: Duration) -> FlakyUpstream {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let thread = {
            let server = Arc::clone(&server);
            thread::spawn(move || {
                for (n, req) in (1u64..).zip(server.incoming_requests()) {
                    thread::sleep(delay);
                    let code = if n.is_multiple_of(every) { status } else { 200 };
                    let _ =
                        req.respond(tiny_http::Response::from_string("{}").with_status_code(code));
                }
            })
        };
        FlakyUpstream {
            name: name.to_owned(),
            port,
            server,
            thread: Some(thread),
        }
    }

    fn cluster(&self) -> (&str, u16) {
        (&self.name, self.port)
    }
}

impl Drop for FlakyUpstream {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The demo's template as YAML (its `${NAME}` placeholders replaced by 0).
fn demo_bootstrap() -> Value {
    let template = std::fs::read_to_string(DEMO).unwrap();
    let text = regex::Regex::new(r"\$\{[A-Z0-9_]+\}")
        .unwrap()
        .replace_all(&template, "0");
    serde_norway::from_str(&text).unwrap()
}

/// The access log of the demo's gateway listener, as the demo configures it.
fn demo_access_log() -> Value {
    let demo = demo_bootstrap();
    let listener = demo["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "gateway")
        .expect("envoy/demo.yaml has a listener named gateway")
        .clone();
    let log = listener["filter_chains"][0]["filters"][0]["typed_config"]["access_log"].clone();
    assert!(
        log.is_array(),
        "no access_log on the demo's gateway listener"
    );
    log
}

/// Envoy with the filter, the demo's access log (flushed every 100 ms rather than 10 s), stats
/// flushed every second (histograms reach /stats at each flush) and the README's buckets.
fn start_envoy(clusters: &[(&str, u16)]) -> Envoy {
    let mut bootstrap = Gateway::new(&plugin_config(), clusters).to_json();
    bootstrap["stats_flush_interval"] = json!("1s");
    bootstrap["stats_config"]["histogram_bucket_settings"] = json!([
        {"match": {"prefix": "wasmcustom.canary_gate."}, "buckets": BUCKETS}
    ]);
    bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["access_log"] = demo_access_log();
    Envoy::builder(bootstrap)
        .arg("--file-flush-interval-msec")
        .arg("100")
        .start()
}

/// `envoy/observability/prometheus.yml` pointed at this Envoy: its scrape job (path and all)
/// with this admin as the only target, scraped and evaluated every second, with the repository's
/// `rules.yml`.
fn prometheus_config(admin_port: u16) -> String {
    let text = std::fs::read_to_string(format!("{OBSERVABILITY}/prometheus.yml")).unwrap();
    let mut config: Value = serde_norway::from_str(&text).unwrap();
    for (key, value) in [
        ("scrape_interval", "1s"),
        ("scrape_timeout", "1s"),
        ("evaluation_interval", "1s"),
    ] {
        config["global"][key] = json!(value);
    }
    assert_eq!(
        config["rule_files"],
        json!(["rules.yml"]),
        "prometheus.yml loads rules.yml"
    );
    config["rule_files"] = json!([format!("{OBSERVABILITY}/rules.yml")]);
    let jobs = config["scrape_configs"].as_array_mut().unwrap();
    assert_eq!(jobs.len(), 1, "one scrape job: Envoy's admin");
    assert_eq!(jobs[0]["metrics_path"], "/stats/prometheus");
    jobs[0]["static_configs"] = json!([{"targets": [format!("127.0.0.1:{admin_port}")]}]);
    serde_json::to_string_pretty(&config).unwrap()
}

/// What one request got, as the access log should show it ("-" where the filter chose nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    path: String,
    status: u16,
    gateway: String,
    upstream: String,
    bucket: String,
    consumer: String,
}

/// The traffic sent, counted per (gateway, upstream): responses, and failed ones (5xx).
#[derive(Default)]
struct Traffic {
    responses: BTreeMap<(String, String), (u64, u64)>,
    lines: Vec<Line>,
}

impl Traffic {
    fn count(&mut self, gateway: &str, upstream: &str, status: u16) {
        let entry = self
            .responses
            .entry((gateway.to_owned(), upstream.to_owned()))
            .or_default();
        entry.0 += 1;
        entry.1 += u64::from(status >= 500);
    }

    fn of(&self, gateway: &str, upstream: &str) -> (u64, u64) {
        self.responses
            .get(&(gateway.to_owned(), upstream.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// fraud: each user goes where the split formula says; fraud-v2 fails every 4th of its
    /// requests. The query never reaches the access log.
    fn fraud(&mut self, envoy: &Envoy) {
        let mut canary_seen = 0u64;
        for i in 0..FRAUD_REQUESTS {
            let user = format!("user-{i}");
            let r = envoy.get(
                "/fraud/score?case=42",
                &[("x-api-key", KEY), ("x-user-id", &user)],
            );
            let upstream = expected_upstream(&user, 0, "fraud-v1", &[("fraud-v2", 50.0)]);
            assert_eq!(r.header("x-served-by"), Some(upstream), "{user}: {r:?}");
            let status = if upstream == "fraud-v2" {
                canary_seen += 1;
                if canary_seen.is_multiple_of(FAIL_EVERY) {
                    503
                } else {
                    200
                }
            } else {
                200
            };
            assert_eq!(r.status, status, "{user} on {upstream}: {r:?}");
            self.count("fraud", upstream, status);
            self.lines.push(Line {
                path: "/fraud/score".into(),
                status,
                gateway: "fraud".into(),
                upstream: upstream.into(),
                bucket: bucket(&user),
                consumer: "ci".into(),
            });
        }
    }

    /// A request without a key: refused by the filter, so no response of any upstream.
    fn refused(&mut self, envoy: &Envoy) {
        let r = envoy.get("/fraud/score?key=not-logged", &[("x-user-id", "user-0")]);
        assert_eq!(r.status, 401, "{r:?}");
        self.lines.push(Line {
            path: "/fraud/score".into(),
            status: 401,
            gateway: "-".into(),
            upstream: "-".into(),
            bucket: "-".into(),
            consumer: "-".into(),
        });
    }

    /// chat: chat-v2 fails every request; once its guard trips (at most a second after
    /// `min_requests` failures), its users go to chat-v1.
    fn chat(&mut self, envoy: &Envoy) {
        for i in 0..CHAT_REQUESTS {
            let user = format!("user-{i}");
            let r = envoy.get("/chat", &[("x-user-id", &user)]);
            let chosen = r.header("x-served-by").unwrap_or_default().to_owned();
            let split = expected_upstream(&user, 0, "chat-v1", &[("chat-v2", 50.0)]);
            assert!(
                chosen == split || chosen == "chat-v1",
                "{user}: the split says {split}, a trip chat-v1; got {r:?}"
            );
            let status = if chosen == "chat-v2" { 500 } else { 200 };
            assert_eq!(r.status, status, "{user} on {chosen}: {r:?}");
            self.count("chat", &chosen, status);
            self.lines.push(Line {
                path: "/chat".into(),
                status,
                gateway: "chat".into(),
                upstream: chosen,
                bucket: bucket(&user),
                consumer: "-".into(),
            });
        }
    }
}

/// The documented bucket of a split key: murmur3(key, seed 0) mod 10000.
fn bucket(key: &str) -> String {
    (murmur3_x86_32(key.as_bytes(), 0) % 10_000).to_string()
}

/// Polls `check` until it gives `Ok`, at most `timeout`; panics with its last error.
fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Samples keyed by (gateway, upstream).
fn by_upstream(samples: &[Sample]) -> BTreeMap<(String, String), f64> {
    samples
        .iter()
        .map(|s| {
            (
                (
                    s.label("gateway").to_owned(),
                    s.label("upstream").to_owned(),
                ),
                s.value,
            )
        })
        .collect()
}

fn key(gateway: &str, upstream: &str) -> (String, String) {
    (gateway.to_owned(), upstream.to_owned())
}

#[test]
fn promtool_accepts_the_scrape_config_and_the_rules_and_their_unit_tests_pass() {
    prometheus::ensure_tools();
    let dir = Path::new(OBSERVABILITY);
    let out = promtool(dir, &["check", "config", "prometheus.yml"]);
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    let out = promtool(dir, &["check", "rules", "rules.yml"]);
    assert!(out.contains("SUCCESS: 6 rules found"), "{out}");
    let out = promtool(dir, &["test", "rules", "rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The dashboard draws recorded series and the canaries' gauges, never raw counters or
/// histograms (those are the rules' business).
#[test]
fn the_dashboard_queries_only_recorded_series_and_the_canary_gauges() {
    let rules: Value = serde_norway::from_str(
        &std::fs::read_to_string(format!("{OBSERVABILITY}/rules.yml")).unwrap(),
    )
    .unwrap();
    let mut allowed: BTreeSet<String> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .filter_map(|r| r["record"].as_str().map(str::to_owned))
        .collect();
    allowed.extend([
        "canary_gate_canary_basis_points".to_owned(),
        "canary_gate_guard_tripped".to_owned(),
    ]);
    let identifier = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").unwrap();
    let queries = dashboard_queries();
    assert!(queries.len() >= 6, "{queries:?}");
    for (what, expr) in queries {
        let metrics: Vec<&str> = identifier
            .find_iter(&expr)
            .map(|m| m.as_str())
            .filter(|name| name.starts_with("canary_gate"))
            .collect();
        assert!(
            !metrics.is_empty(),
            "{what}: no canary_gate series in {expr}"
        );
        for name in metrics {
            assert!(
                allowed.contains(name),
                "{what}: {name} is not one of {allowed:?}"
            );
        }
    }
}

/// Every PromQL query of the dashboard (panel targets, and the selectors of the
/// `label_values(...)` variables), named for the failure message.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard = dashboard();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().to_owned();
            out.push((format!("panel {:?}", panel["title"]), expr));
        }
    }
    for (name, selector, _) in label_values_variables(&dashboard) {
        out.push((format!("variable {name}"), selector));
    }
    out
}

fn dashboard() -> Value {
    let path = format!("{OBSERVABILITY}/grafana-dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The dashboard's query variables: (name, selector, label) of `label_values(selector, label)`.
fn label_values_variables(dashboard: &Value) -> Vec<(String, String, String)> {
    let pattern = regex::Regex::new(r"^label_values\((.+),\s*([A-Za-z_]+)\)$").unwrap();
    dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = v["query"]["query"].as_str().unwrap();
            let c = pattern.captures(query).unwrap_or_else(|| {
                panic!("variable {}: {query} is not label_values(...)", v["name"])
            });
            (
                v["name"].as_str().unwrap().to_owned(),
                c[1].to_owned(),
                c[2].to_owned(),
            )
        })
        .collect()
}

/// Replaces each `$name` of a query variable by its "All" value, as Grafana sends it.
fn with_all_values(expr: &str, dashboard: &Value) -> String {
    let mut out = expr.to_owned();
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let (Some(name), Some(all)) = (v["name"].as_str(), v["allValue"].as_str()) {
            out = out.replace(&format!("${name}"), all);
        }
    }
    assert!(
        !out.contains('$'),
        "a variable without an All value in {expr}"
    );
    out
}

#[test]
fn prometheus_records_known_traffic_the_dashboard_draws_it_and_the_alerts_fire() {
    prometheus::ensure_tools();
    let fraud_v1 = EchoUpstream::start("fraud-v1");
    let fraud_v2 = FlakyUpstream::start("fraud-v2", 503, FAIL_EVERY, CANARY_DELAY);
    let chat_v1 = EchoUpstream::start("chat-v1");
    let chat_v2 = FlakyUpstream::start("chat-v2", 500, 1, Duration::ZERO);
    let envoy = start_envoy(&[
        fraud_v1.cluster(),
        fraud_v2.cluster(),
        chat_v1.cluster(),
        chat_v2.cluster(),
    ]);
    let prom = Prometheus::start(&prometheus_config(envoy.admin_port()));

    // Before any traffic Prometheus has the counters at 0 (defined at configure time), so every
    // rate below starts from a sample of 0 and two rates from the same scrapes have the exact
    // ratio of their increases.
    wait_until("a scrape of Envoy with every counter at 0", SETTLE, || {
        let up = prom.query(r#"up{job="envoy"}"#);
        let counters =
            prom.query("count(canary_gate_responses) and sum(canary_gate_responses) == 0");
        match (up.first(), counters.first()) {
            (Some(u), Some(c)) if u.value == 1.0 && c.value == 24.0 => Ok(()),
            _ => Err(format!("up {up:?}, responses {counters:?}")),
        }
    });

    let started = Instant::now();
    let mut traffic = Traffic::default();
    traffic.fraud(&envoy);
    traffic.refused(&envoy);
    traffic.chat(&envoy);
    let (chat_v2_total, _) = traffic.of("chat", "chat-v2");
    assert!(
        chat_v2_total >= CHAT_MIN_REQUESTS,
        "chat-v2 got {chat_v2_total} requests, fewer than its guard's min_requests"
    );
    wait_until("chat-v2's guard trips", SETTLE, || {
        let stats = envoy.prometheus();
        stats
            .contains(r#"canary_gate_guard_tripped{gateway="chat",upstream="chat-v2"} 1"#)
            .then_some(())
            .ok_or_else(|| "canary_gate_guard_tripped is not 1".to_owned())
    });

    // Envoy's histograms: the configured buckets, nothing else.
    let stats = envoy.prometheus();
    let le: Vec<&str> = stats
        .lines()
        .filter(|l| {
            l.starts_with(
                r#"canary_gate_response_ms_bucket{gateway="fraud",upstream="fraud-v2",le=""#,
            )
        })
        .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
        .collect();
    let mut expected_le: Vec<String> = BUCKETS.iter().map(u64::to_string).collect();
    expected_le.push("+Inf".into());
    assert_eq!(le, expected_le, "histogram_bucket_settings did not apply");

    // Prometheus has scraped every response and every latency sample.
    let final_at = wait_until("Prometheus has the final counts", SETTLE, || {
        let responses =
            by_upstream(&prom.query("sum by (gateway, upstream) (canary_gate_responses)"));
        let failed = by_upstream(&prom.query(
            r#"sum by (gateway, upstream) (canary_gate_responses{class=~"5xx|grpc_error"})"#,
        ));
        let latencies =
            by_upstream(&prom.query("sum by (gateway, upstream) (canary_gate_response_ms_count)"));
        let tripped =
            prom.query(r#"canary_gate_guard_tripped{gateway="chat",upstream="chat-v2"} == 1"#);
        for ((g, u), (total, bad)) in &traffic.responses {
            let k = key(g, u);
            let got = (responses.get(&k), failed.get(&k), latencies.get(&k));
            if got
                != (
                    Some(&(*total as f64)),
                    Some(&(*bad as f64)),
                    Some(&(*total as f64)),
                )
            {
                return Err(format!(
                    "{g}/{u}: sent {total} ({bad} failed), Prometheus has {got:?}"
                ));
            }
        }
        if tripped.is_empty() {
            return Err("no trip scraped yet".into());
        }
        Ok(prom.query("vector(time())")[0].value)
    });
    // ... and the rules have been evaluated since.
    wait_until("a rule evaluation after the final scrape", SETTLE, || {
        let at = prom.query("min(timestamp(canary_gate:requests:rate1m))");
        match at.first() {
            Some(s) if s.value > final_at => Ok(()),
            other => Err(format!(
                "last evaluation {other:?}, final scrape seen at {final_at}"
            )),
        }
    });
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(50),
        "the traffic began {elapsed:?} ago: the 1m windows no longer start before it"
    );

    // Success rate: exactly the share of non-5xx responses each upstream gave.
    let success = by_upstream(&prom.query("canary_gate:success_rate:ratio_rate1m"));
    let expected: BTreeMap<(String, String), f64> = traffic
        .responses
        .iter()
        .map(|(k, (total, bad))| (k.clone(), 1.0 - *bad as f64 / *total as f64))
        .collect();
    assert_eq!(
        success.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "success rate series"
    );
    for (k, want) in &expected {
        let got = success[k];
        assert!(
            (got - want).abs() < EXACT,
            "success rate of {k:?}: {got}, expected {want}"
        );
    }
    let (n1, _) = traffic.of("fraud", "fraud-v1");
    let (n2, failed2) = traffic.of("fraud", "fraud-v2");
    assert_eq!(
        failed2,
        n2 / FAIL_EVERY,
        "every 4th fraud-v2 request failed"
    );
    eprintln!(
        "success rates (fraud-v1 {n1} requests, fraud-v2 {n2} with {failed2} failed, chat {:?}): {success:?}",
        traffic.responses
    );

    // Request rates: in the exact proportion of the requests each upstream got.
    let rates = by_upstream(&prom.query("canary_gate:requests:rate1m"));
    for (gateway, primary, canary) in [
        ("fraud", "fraud-v1", "fraud-v2"),
        ("chat", "chat-v1", "chat-v2"),
    ] {
        let (p, c) = (
            traffic.of(gateway, primary).0,
            traffic.of(gateway, canary).0,
        );
        let (rp, rc) = (rates[&key(gateway, primary)], rates[&key(gateway, canary)]);
        assert!(rp > 0.0 && rc > 0.0, "{gateway}: rates {rates:?}");
        let (got, want) = (rc / rp, c as f64 / p as f64);
        assert!(
            (got - want).abs() < EXACT,
            "{gateway}: {canary}/{primary} rate ratio {got}, requests ratio {want} ({rates:?})"
        );
    }

    // Latency: finite percentiles for every upstream; fraud-v2 waits 30 ms before answering, so
    // all its responses are in buckets above 25 ms.
    let p50 = by_upstream(&prom.query("canary_gate:response_ms:p50_1m"));
    let p99 = by_upstream(&prom.query("canary_gate:response_ms:p99_1m"));
    for k in expected.keys() {
        for (name, series) in [("p50", &p50), ("p99", &p99)] {
            let v = series.get(k).copied();
            assert!(
                v.is_some_and(|v| v.is_finite() && v >= 0.0),
                "{name} of {k:?}: {v:?}"
            );
        }
    }
    let (fast, slow) = (
        p50[&key("fraud", "fraud-v1")],
        p50[&key("fraud", "fraud-v2")],
    );
    assert!(
        slow >= 25.0,
        "fraud-v2 p50 {slow} ms, below its 30 ms delay's bucket"
    );
    assert!(
        fast < slow,
        "fraud-v1 p50 {fast} ms is not below fraud-v2's {slow} ms"
    );
    eprintln!("p50 {p50:?}\np99 {p99:?}");

    // The canaries' gauges: fraud-v2 keeps its 50% (dry run), chat-v2 tripped to 0.
    let share = by_upstream(&prom.query("canary_gate_canary_basis_points"));
    assert_eq!(share[&key("fraud", "fraud-v2")], 5000.0, "{share:?}");
    assert_eq!(share[&key("chat", "chat-v2")], 0.0, "{share:?}");
    let tripped = by_upstream(&prom.query("canary_gate_guard_tripped"));
    assert_eq!(tripped[&key("fraud", "fraud-v2")], 0.0, "{tripped:?}");
    assert_eq!(tripped[&key("chat", "chat-v2")], 1.0, "{tripped:?}");

    // Alerts: the trip fires at once; the failing upstreams' success-rate alert waits its 5
    // minutes (pending); the primaries have none.
    let want: BTreeSet<(String, String, String, String)> = [
        ("CanaryGateGuardTripped", "chat", "chat-v2", "firing"),
        ("CanaryGateSuccessRateLow", "chat", "chat-v2", "pending"),
        ("CanaryGateSuccessRateLow", "fraud", "fraud-v2", "pending"),
    ]
    .iter()
    .map(|(a, g, u, s)| ((*a).into(), (*g).into(), (*u).into(), (*s).into()))
    .collect();
    wait_until("the alerts", SETTLE, || {
        let got: BTreeSet<(String, String, String, String)> = prom
            .alerts()
            .into_iter()
            .map(|a| {
                let l = |n: &str| a.labels.get(n).cloned().unwrap_or_default();
                (l("alertname"), l("gateway"), l("upstream"), a.state.clone())
            })
            .collect();
        (got == want)
            .then_some(())
            .ok_or_else(|| format!("{got:?}"))
    });

    // Every query of the dashboard returns data, with its variables at "All".
    let dashboard = dashboard();
    for (what, expr) in dashboard_queries() {
        let query = with_all_values(&expr, &dashboard);
        let samples = prom.query(&query);
        assert!(!samples.is_empty(), "{what}: {query} returns no data");
        assert!(
            samples.iter().all(|s| s.value.is_finite()),
            "{what}: {query} returns {samples:?}"
        );
    }
    for (name, selector, label) in label_values_variables(&dashboard) {
        let selector = with_all_values(&selector, &dashboard);
        let values: BTreeSet<String> = prom
            .series(&selector)
            .into_iter()
            .filter_map(|s| s.get(&label).cloned())
            .collect();
        let want: BTreeSet<String> = match label.as_str() {
            "gateway" => ["chat", "fraud"].map(String::from).into(),
            _ => ["chat-v1", "chat-v2", "fraud-v1", "fraud-v2"]
                .map(String::from)
                .into(),
        };
        assert_eq!(
            values, want,
            "variable {name}: label_values({selector}, {label})"
        );
    }

    // The demo's access log: one line per request, in order, with what the filter chose.
    let line = regex::Regex::new(
        r"^\S+ GET (\S+) (\d{3}) \S+ \d+ms gateway=(\S+) upstream=(\S+) bucket=(\S+) consumer=(\S+)$",
    )
    .unwrap();
    let parse = |log: &str| -> Vec<Line> {
        log.lines()
            .filter_map(|l| line.captures(l))
            .map(|c| Line {
                path: c[1].into(),
                status: c[2].parse().unwrap(),
                gateway: c[3].into(),
                upstream: c[4].into(),
                bucket: c[5].into(),
                consumer: c[6].into(),
            })
            .collect()
    };
    let logged = wait_until("the access log lines", SETTLE, || {
        let lines = parse(&envoy.log());
        (lines.len() >= traffic.lines.len())
            .then_some(lines)
            .ok_or_else(|| {
                format!(
                    "{} access log lines, expected {}",
                    parse(&envoy.log()).len(),
                    traffic.lines.len()
                )
            })
    });
    assert_eq!(logged.len(), traffic.lines.len());
    for (got, want) in logged.iter().zip(&traffic.lines) {
        assert_eq!(got, want);
    }
    assert!(
        !envoy.log().contains("not-logged"),
        "the query reached the access log"
    );
}
