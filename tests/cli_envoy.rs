//! The command-line tool against a real Envoy running the filter: the tool and the filter
//! judge every configuration fixture alike, `route` names the upstream Envoy sends each of
//! 1,000 keys to, `stat` reads the filter's counters from Envoy's admin endpoint under
//! traffic, and `render envoy` writes a bootstrap Envoy starts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bootstrap::{self, WASM_TYPE};
use common::{EchoUpstream, Envoy, Gateway, TempDir};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;

const CLI: &str = env!("CARGO_BIN_EXE_canary-gate");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PREFIX: &str = "canary-gate: invalid configuration: ";
const PUSH_TIMEOUT: Duration = Duration::from_secs(20);

fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(CLI)
        .args(args)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| panic!("run {CLI}: {e}"));
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn fixtures() -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/configs")
}

/// The bytes the filter gets from a fixture: the file itself (JSON), the WasmPlugin's
/// pluginConfig as istiod serialises it (sorted compact JSON; the fixtures' numbers print the
/// same as Go's doubles), or the Envoy filter's `configuration` string.
fn filter_input(file: &str) -> String {
    let path = fixtures().join(file);
    if file.ends_with(".json") {
        return fs::read_to_string(&path).unwrap();
    }
    let doc: Value = Value::deserialize(serde_norway::Deserializer::from_str(
        &fs::read_to_string(&path).unwrap(),
    ))
    .unwrap();
    if doc["kind"] == "WasmPlugin" {
        return doc["spec"]["pluginConfig"].to_string();
    }
    let filters = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"];
    filters[0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An Envoy whose canary-gate configuration comes over ECDS from a watched file (as on
/// Istio), so many configurations can be pushed to one running Envoy.
struct EcdsEnvoy {
    envoy: Envoy,
    dir: TempDir,
    version: u32,
    _upstream: EchoUpstream,
}

const RESOURCE: &str = "canary-gate";

impl EcdsEnvoy {
    fn resource(configuration: &str, version: u32) -> Value {
        json!({
            "version_info": version.to_string(),
            "resources": [{
                "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
                "name": RESOURCE,
                "typed_config": {"@type": WASM_TYPE, "config": {
                    "name": RESOURCE,
                    "root_id": RESOURCE,
                    "vm_config": {"runtime": "envoy.wasm.runtime.v8",
                                  "code": {"local": {"filename": common::wasm_path().to_string_lossy()}}},
                    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                      "value": configuration},
                    "failure_policy": "FAIL_CLOSED"
                }}
            }]
        })
    }

    fn start(first: &str) -> EcdsEnvoy {
        let upstream = EchoUpstream::start("v1");
        let dir = TempDir::new("cli-ecds");
        let path = dir.path().join("extension_config.json");
        fs::write(&path, Self::resource(first, 1).to_string()).unwrap();
        let filter = json!({
            "name": RESOURCE,
            "config_discovery": {
                "config_source": {"path_config_source": {"path": path.to_string_lossy()},
                                  "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
                "type_urls": [WASM_TYPE]
            }
        });
        let route_config = json!({"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "v1"}}]}]});
        let bootstrap = json!({
            "node": {"id": "cli-test", "cluster": "cli-test"},
            "admin": bootstrap::admin(),
            "overload_manager": bootstrap::overload_manager(),
            "static_resources": {
                "listeners": [bootstrap::http_listener("gateway", "gateway", route_config,
                    vec![filter, bootstrap::router()])],
                "clusters": [bootstrap::static_cluster("v1", upstream.port())]
            }
        });
        EcdsEnvoy {
            envoy: Envoy::builder(bootstrap).start(),
            dir,
            version: 1,
            _upstream: upstream,
        }
    }

    fn stat(&self, name: &str) -> u64 {
        let stats = self
            .envoy
            .admin_get("/stats?filter=extension_config_discovery");
        stats
            .lines()
            .find(|l| l.contains(&format!(".{RESOURCE}.{name}: ")))
            .and_then(|l| l.rsplit_once(": "))
            .map_or(0, |(_, v)| v.trim().parse().unwrap())
    }

    /// Pushes `configuration`; whether Envoy took it.
    fn push(&mut self, configuration: &str) -> bool {
        let (ok, rejected) = (self.stat("update_success"), self.stat("update_rejected"));
        self.version += 1;
        let path = self.dir.path().join("extension_config.json");
        let tmp = self.dir.path().join("extension_config.json.tmp");
        fs::write(
            &tmp,
            Self::resource(configuration, self.version).to_string(),
        )
        .unwrap();
        fs::rename(&tmp, &path).unwrap();
        let deadline = Instant::now() + PUSH_TIMEOUT;
        loop {
            if self.stat("update_success") > ok {
                return true;
            }
            if self.stat("update_rejected") > rejected {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "push {} not applied or rejected:\n{}",
                self.version,
                self.envoy.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_filter_and_check_judge_every_fixture_alike() {
    let expected: Value =
        serde_json::from_str(&fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    let mut e = EcdsEnvoy::start(&filter_input("valid-single.json"));
    let mut disagreements = Vec::new();
    for (file, want) in expected.as_object().unwrap() {
        let path = fixtures().join(file).to_string_lossy().into_owned();
        let (code, stdout, _) = cli(&["check", &path]);
        let cli_error = (code == 1).then(|| {
            stdout
                .trim_end()
                .strip_prefix(&format!("{path}: "))
                .unwrap_or(&stdout)
                .to_owned()
        });
        let log_before = e.envoy.log().len();
        let accepted = e.push(&filter_input(file));
        let envoy_error = if accepted {
            None
        } else {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let log = e.envoy.log();
                let line = log
                    .get(log_before..)
                    .unwrap_or_default()
                    .lines()
                    .find(|l| l.contains(PREFIX))
                    .map(|l| l.split_once(PREFIX).unwrap().1.to_owned());
                if let Some(line) = line {
                    break Some(line);
                }
                assert!(
                    Instant::now() < deadline,
                    "{file}: rejected without the filter's line"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        if cli_error != envoy_error || cli_error.as_deref() != want["error"].as_str() {
            disagreements.push(format!(
                "{file}:\n  check: {cli_error:?}\n  Envoy: {envoy_error:?}\n  expected: {}",
                want["error"]
            ));
        }
        for secret in want["secrets"].as_array().into_iter().flatten() {
            assert!(
                !e.envoy.log().contains(secret.as_str().unwrap()),
                "{file}: secret in the log"
            );
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

fn route_config() -> Value {
    let digest = hex::encode(sha2::Sha256::digest(b"ci-key"));
    json!({
        "gateways": [
            {"name": "h", "hosts": ["h.example"], "primary": "h1",
             "canaries": [{"name": "h2", "percent": 30}, {"name": "h3", "percent": 20.5}],
             "split": {"by": "header", "name": "x-user-id", "hash_seed": 7}},
            {"name": "c", "hosts": ["c.example", "*.c.example"], "primary": "c1",
             "canaries": [{"name": "c2", "percent": 50}], "split": {"by": "cookie", "name": "sid"}},
            {"name": "q", "hosts": ["q.example"], "path_prefix": "/q", "strip_prefix": true,
             "primary": "q1", "canaries": [{"name": "q2", "percent": 25}],
             "split": {"by": "query", "name": "uid", "hash_seed": 99},
             "auth": {"mode": "access_key", "keys": [{"consumer": "ci", "sha256": digest}]}}
        ]
    })
}

#[test]
fn route_names_the_upstream_envoy_sends_each_of_1000_keys_to() {
    let config = route_config();
    let names = ["h1", "h2", "h3", "c1", "c2", "q1", "q2"];
    let ups: Vec<EchoUpstream> = names.iter().map(|n| EchoUpstream::start(n)).collect();
    let clusters: Vec<(&str, u16)> = ups.iter().map(EchoUpstream::cluster).collect();
    let envoy = Envoy::builder(Gateway::new(&config, &clusters)).start();
    let dir = TempDir::new("cli-route");
    let file = dir.path().join("config.json");
    fs::write(&file, config.to_string()).unwrap();
    let file = file.to_string_lossy().into_owned();

    let mut per_upstream: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..1000 {
        let key = format!("key-{i}-{}", i * 7919 % 1000);
        let (host, path, headers, args): (&str, String, Vec<(&str, String)>, Vec<String>) =
            match i % 3 {
                0 => (
                    "h.example",
                    "/predict".into(),
                    vec![("x-user-id", key.clone())],
                    vec!["--header".into(), format!("x-user-id: {key}")],
                ),
                1 => (
                    "eu.c.example",
                    "/chat".into(),
                    vec![("cookie", format!("a=1; sid={key}"))],
                    vec![
                        "--cookie".into(),
                        "a=1".into(),
                        "--cookie".into(),
                        format!("sid={key}"),
                    ],
                ),
                _ => (
                    "q.example",
                    format!("/q/score?x=1&uid={key}"),
                    vec![("x-api-key", "ci-key".into())],
                    vec!["--header".into(), "x-api-key: ci-key".into()],
                ),
            };
        let mut req: Vec<(&str, &str)> = vec![("host", host)];
        req.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
        let r = envoy.get(&path, &req);
        assert_eq!(r.status, 200, "{key}: {r:?}");
        let served = r.upstream().unwrap();

        let mut argv = vec![
            "route",
            file.as_str(),
            "--host",
            host,
            "--path",
            path.as_str(),
            "-o",
            "json",
        ];
        argv.extend(args.iter().map(String::as_str));
        let (code, stdout, stderr) = cli(&argv);
        assert_eq!((code, stderr.as_str()), (0, ""), "{argv:?}");
        let routed: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            routed["upstream"],
            served.as_str(),
            "{key}: route says {stdout}"
        );
        assert_eq!(routed["reason"], "hashed", "{stdout}");
        assert_eq!(routed["key"], key.as_str());
        if i % 3 == 2 {
            assert_eq!(
                routed["consumer"], "ci",
                "the key was checked as the filter checks it"
            );
            assert_eq!(routed["path"], format!("/score?x=1&uid={key}"));
        }
        *per_upstream.entry(served).or_default() += 1;
    }
    assert_eq!(
        per_upstream.len(),
        names.len(),
        "every upstream was reached: {per_upstream:?}"
    );
}

/// `route_config` with a guard on h2 (that cannot trip here) and a ramp on c2 that started
/// 2.5 hours ago: 10% + 2 steps of 10 = 30% now.
fn watched_config() -> Value {
    let mut config = route_config();
    config["gateways"][0]["canaries"][0]["guard"] =
        json!({"max_error_rate": 0.5, "min_requests": 100000});
    let start = time::OffsetDateTime::now_utc() - time::Duration::minutes(150);
    let start = start
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    config["gateways"][1]["canaries"][0] = json!({"name": "c2", "percent": 10,
        "ramp": {"start": start, "step": 10, "every_seconds": 3600, "until": 50}});
    config
}

#[test]
fn stat_reads_a_real_envoy_under_traffic() {
    let config = watched_config();
    let names = ["h1", "h2", "h3", "c1", "c2", "q1", "q2"];
    let ups: Vec<EchoUpstream> = names.iter().map(|n| EchoUpstream::start(n)).collect();
    let clusters: Vec<(&str, u16)> = ups.iter().map(EchoUpstream::cluster).collect();
    let envoy = Arc::new(Envoy::builder(Gateway::new(&config, &clusters)).start());
    let admin = format!("http://127.0.0.1:{}", envoy.admin_port());
    let served: Arc<Mutex<BTreeMap<(String, String), u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (envoy, served, stop) = (envoy.clone(), served.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let user = format!("u-{i}");
                let (host, gw) = if i.is_multiple_of(2) {
                    ("h.example", "h")
                } else {
                    ("c.example", "c")
                };
                let cookie = format!("sid={user}");
                let r = envoy.get(
                    "/",
                    &[("host", host), ("x-user-id", &user), ("cookie", &cookie)],
                );
                let upstream = r.upstream().unwrap();
                *served
                    .lock()
                    .unwrap()
                    .entry((gw.to_owned(), upstream))
                    .or_default() += 1;
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Under traffic: requests per second for the upstreams being hit.
    std::thread::sleep(Duration::from_millis(300));
    let (code, stdout, stderr) = cli(&["stat", "--admin", &admin, "--interval", "1", "-o", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let live: Value = serde_json::from_str(&stdout).unwrap();
    let rows = live["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        names.len(),
        "a row per gateway and upstream: {live}"
    );
    let h1 = rows.iter().find(|r| r["upstream"] == "h1").unwrap();
    assert!(h1["rps"].as_f64().unwrap() > 0.0, "{live}");
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();

    // At rest: the totals are what the upstreams served, nothing moves, every response was a
    // success, and the latency quantiles are there once Envoy has flushed its histograms.
    let served = served.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let rest = loop {
        let (code, stdout, _) =
            cli(&["stat", "--admin", &admin, "--interval", "0.3", "-o", "json"]);
        assert_eq!(code, 0);
        let rest: Value = serde_json::from_str(&stdout).unwrap();
        let flushed = rest["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["requests"].as_u64() > Some(0))
            .all(|r| r["p50_ms"].is_number() && r["p99_ms"].is_number());
        if flushed {
            break rest;
        }
        assert!(Instant::now() < deadline, "no latency quantiles: {rest}");
        std::thread::sleep(Duration::from_millis(500));
    };
    for r in rest["rows"].as_array().unwrap() {
        let (g, u) = (
            r["gateway"].as_str().unwrap(),
            r["upstream"].as_str().unwrap(),
        );
        let requests = served
            .get(&(g.to_owned(), u.to_owned()))
            .copied()
            .unwrap_or(0);
        assert_eq!(r["requests"].as_u64().unwrap(), requests, "{g}/{u}");
        assert_eq!(r["rps"], 0.0, "{g}/{u}");
        if requests > 0 {
            assert_eq!(r["success_rate"], 1.0, "{g}/{u}: {r}");
        }
        // The current share of every canary (the ramp's for c2), the guard where there is one.
        let share = match u {
            "h2" => json!(30.0),
            "h3" => json!(20.5),
            "c2" => json!(30.0),
            "q2" => json!(25.0),
            _ => Value::Null,
        };
        assert_eq!(r["share_percent"], share, "{g}/{u}: {r}");
        let guard = if u == "h2" { json!("ok") } else { Value::Null };
        assert_eq!(r["guard"], guard, "{g}/{u}: {r}");
    }
    // The human table, for one gateway: every column has its metric.
    let (code, stdout, _) = cli(&[
        "stat",
        "--admin",
        &admin,
        "--interval",
        "0.2",
        "--gateway",
        "c",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["GATEWAY", "UPSTREAM", "SHARE", "RPS", "REQUESTS", "SUCCESS", "P50", "P99"],
        "{stdout}"
    );
    assert_eq!(lines.len(), 3, "c1 and c2:\n{stdout}");
    let c2: Vec<&str> = lines[2].split_whitespace().collect();
    let served_c2 = served
        .get(&("c".to_owned(), "c2".to_owned()))
        .copied()
        .unwrap_or(0);
    assert_eq!(
        (c2[1], c2[2], c2[4], c2[5]),
        ("c2", "30%", served_c2.to_string().as_str(), "100.00%"),
        "{stdout}"
    );
}

#[test]
fn render_envoy_writes_a_bootstrap_envoy_starts_and_routes_by() {
    let config_file = Path::new(ROOT).join("envoy/istio/plugin-config.json");
    let config: Value = serde_json::from_str(&fs::read_to_string(&config_file).unwrap()).unwrap();
    let names = ["fraud-v1", "fraud-v2", "fraud-v3", "chat-v1", "chat-v2"];
    let ups: Vec<EchoUpstream> = names.iter().map(|n| EchoUpstream::start(n)).collect();
    let wasm = common::wasm_path().to_string_lossy().into_owned();
    let mut args: Vec<String> = [
        "render",
        "envoy",
        &config_file.to_string_lossy(),
        "--wasm",
        &wasm,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for u in &ups {
        args.push("--upstream".into());
        args.push(format!("{}=127.0.0.1:{}", u.name(), u.port()));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, yaml, stderr) = cli(&argv);
    assert_eq!(code, 0, "{stderr}");
    let envoy = Envoy::builder(yaml.as_str()).start();
    let fraud = &config["gateways"][0];
    let canaries: Vec<(&str, f64)> = fraud["canaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["percent"].as_f64().unwrap()))
        .collect();
    for i in 0..60 {
        let user = format!("user-{i}");
        let r = envoy.get(
            "/fraud/score",
            &[
                ("host", "models.example.com"),
                ("x-api-key", "alice-key"),
                ("x-user-id", &user),
            ],
        );
        let want = common::oracle::expected_upstream(&user, 0, "fraud-v1", &canaries);
        assert_eq!(r.upstream().as_deref(), Some(want), "{user}: {r:?}");
    }
    let r = envoy.get("/", &[("host", "chat.example.com")]);
    assert_eq!(r.status, 401, "chat asks for Basic credentials: {r:?}");
    let r = envoy.get("/", &[("host", "nowhere.example.com")]);
    assert_eq!(r.status, 404);
    // The labelled series come out with the rendered stats tags.
    let prom = envoy.prometheus();
    assert!(
        prom.contains("canary_gate_requests{gateway=\"fraud\",upstream=\"fraud-v1\"}"),
        "{prom}"
    );
}
