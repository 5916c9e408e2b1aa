//! The `canary-gate` command-line tool driven as a user drives it (the built binary, its
//! exit codes, stdout and stderr), against the configuration fixtures
//! (`tests/fixtures/configs/`, with the verdicts in `expected.json`), the demo configuration
//! and the Istio example. Nothing here needs Envoy; `tests/cli_envoy.rs` checks the same
//! answers against a real one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::oracle::{expected_upstream, murmur3_x86_32};
use common::TempDir;
use serde_json::{json, Value};

const CLI: &str = env!("CARGO_BIN_EXE_canary-gate");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

fn run_with(args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut child = Command::new(CLI)
        .args(args)
        .current_dir(ROOT)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {CLI}: {e}"));
    if let Some(bytes) = stdin {
        // The tool may exit before reading (a usage error): a broken pipe is its answer.
        let _ = child.stdin.take().unwrap().write_all(bytes);
    }
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn run(args: &[&str]) -> Out {
    run_with(args, None)
}

/// The answer and exit code, with the whole output in the message when the code is wrong.
fn expect(args: &[&str], code: i32) -> Out {
    let o = run(args);
    assert_eq!(
        o.code, code,
        "{args:?}\nstdout: {}\nstderr: {}",
        o.stdout, o.stderr
    );
    o
}

fn fixtures() -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/configs")
}

fn expected() -> Value {
    serde_json::from_str(&fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap()
}

fn fixture_files() -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f != "expected.json")
        .collect();
    files.sort();
    files
}

const ISTIO_CONFIG: &str = "envoy/istio/plugin-config.json";
const DEMO_CONFIG: &str = "envoy/demo-config.json";

fn istio_config() -> Value {
    serde_json::from_str(&fs::read_to_string(Path::new(ROOT).join(ISTIO_CONFIG)).unwrap()).unwrap()
}

/// `(primary, canaries)` of gateway `g` of a configuration.
fn split_of(cfg: &Value, g: usize) -> (String, Vec<(String, f64)>) {
    let gw = match cfg.get("gateways") {
        Some(list) => &list[g],
        None => cfg,
    };
    let canaries = gw["canaries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["percent"].as_f64().unwrap(),
            )
        })
        .collect();
    (gw["primary"].as_str().unwrap().to_owned(), canaries)
}

fn oracle(cfg: &Value, g: usize, key: &str, seed: u32) -> String {
    let (primary, canaries) = split_of(cfg, g);
    let c: Vec<(&str, f64)> = canaries.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    expected_upstream(key, seed, &primary, &c).to_owned()
}

#[test]
fn every_config_fixture_gets_the_verdict_and_message_of_the_filters_parser() {
    let expected = expected();
    let files = fixture_files();
    assert_eq!(
        files.len(),
        expected.as_object().unwrap().len(),
        "every fixture has a verdict in expected.json"
    );
    for file in &files {
        let path = fixtures().join(file).to_string_lossy().into_owned();
        let want = &expected[file.as_str()];
        let error = want["error"].as_str();
        let o = expect(&["check", &path], if error.is_some() { 1 } else { 0 });
        match error {
            Some(message) => assert_eq!(o.stdout, format!("{path}: {message}\n")),
            None => assert!(
                o.stdout.starts_with(&format!("{path}: ok: ")),
                "{}",
                o.stdout
            ),
        }
        // The library's own verdict on the same bytes (JSON fixtures are the filter's input as is).
        if file.ends_with(".json") {
            let bytes = fs::read(fixtures().join(file)).unwrap();
            let lib = if bytes.is_empty() {
                Err("the plugin configuration is empty; it must be a JSON object with at least \"primary\"".to_string())
            } else {
                canary_gate::config::parse(&bytes)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            assert_eq!(lib.err().as_deref(), error, "{file}");
        }
        let json = expect(&["check", &path, "--output", "json"], o.code).json();
        assert_eq!(json[0]["ok"], error.is_none(), "{file}");
        for secret in want["secrets"].as_array().into_iter().flatten() {
            let secret = secret.as_str().unwrap();
            assert!(
                !o.stdout.contains(secret)
                    && !o.stderr.contains(secret)
                    && !json.to_string().contains(secret),
                "{file}: the secret {secret} was echoed"
            );
        }
    }
    // All at once: one line per file, exit 1.
    let paths: Vec<String> = files
        .iter()
        .map(|f| fixtures().join(f).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["check"];
    args.extend(paths.iter().map(String::as_str));
    let o = expect(&args, 1);
    assert_eq!(o.stdout.lines().count(), files.len(), "{}", o.stdout);
}

#[test]
fn check_reads_the_demo_config_and_the_istio_example_and_skips_other_manifests() {
    let o = expect(
        &[
            "check",
            DEMO_CONFIG,
            ISTIO_CONFIG,
            "envoy/istio/wasmplugin.yaml",
            "envoy/istio/gateway.yaml",
        ],
        0,
    );
    assert!(o.stdout.contains(
        "envoy/istio/wasmplugin.yaml: ok: fraud [models.example.com/fraud]: fraud-v1 85%, fraud-v2 10%, fraud-v3 5%; chat [chat.example.com *.chat.example.com]: chat-v1 80%, chat-v2 20%"
    ), "{}", o.stdout);
    assert!(
        o.stdout
            .contains("envoy/istio/gateway.yaml: skipped: no plugin configuration"),
        "{}",
        o.stdout
    );
    // A file with no configuration at all is a usage error when it is all there is.
    let o = expect(&["check", "envoy/istio/gateway.yaml"], 2);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    let o = expect(&["check", "no/such/file.json"], 2);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("no/such/file.json"), "{}", o.stderr);
}

#[test]
fn route_answers_with_the_documented_formula_and_says_why() {
    let demo: Value =
        serde_json::from_str(&fs::read_to_string(Path::new(ROOT).join(DEMO_CONFIG)).unwrap())
            .unwrap();
    for i in 0..200 {
        let user = format!("user-{i}");
        let header = format!("x-user-id: {user}");
        let o = expect(
            &[
                "route",
                DEMO_CONFIG,
                "--header",
                &header,
                "--consumer",
                "alice",
                "-o",
                "json",
            ],
            0,
        );
        let r = o.json();
        assert_eq!(r["gateway"], "default");
        assert_eq!(r["upstream"], oracle(&demo, 0, &user, 0), "{user}");
        assert_eq!(r["bucket"], murmur3_x86_32(user.as_bytes(), 0) % 10_000);
        assert_eq!(r["reason"], "hashed");
        assert_eq!(r["key"], user.as_str());
        assert_eq!(r["consumer"], "alice");
        assert_eq!(o.stderr, "", "--consumer given: no note");
    }
    // Without --consumer, the access-key gateway would refuse: a note says so, the answer stays.
    let o = expect(&["route", DEMO_CONFIG, "--header", "x-user-id: user-1"], 0);
    assert!(
        o.stderr.starts_with(
            "note: gateway default would refuse this request (401 missing_credentials)"
        ),
        "{}",
        o.stderr
    );
    assert!(
        o.stdout
            .contains("why       murmur3_x86_32(\"user-1\", seed 0) mod 10000 = "),
        "{}",
        o.stdout
    );
    // With the real key, decided exactly as the filter decides it: no note.
    let o = expect(
        &[
            "route",
            DEMO_CONFIG,
            "-H",
            "x-api-key: alice-key",
            "-H",
            "x-user-id: user-1",
            "-o",
            "json",
        ],
        0,
    );
    assert_eq!(
        (o.json()["consumer"].clone(), o.stderr.as_str()),
        (json!("alice"), "")
    );
    // Select, missing key.
    let r = expect(
        &[
            "route",
            DEMO_CONFIG,
            "-H",
            "x-canary-select: model-v3",
            "--consumer",
            "a",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(
        (
            r["upstream"].clone(),
            r["reason"].clone(),
            r["bucket"].clone()
        ),
        (json!("model-v3"), json!("select"), Value::Null)
    );
    let r = expect(&["route", DEMO_CONFIG, "--consumer", "a", "-o", "json"], 0).json();
    assert_eq!(
        (r["reason"].clone(), r["key"].clone()),
        (json!("missing_key"), Value::Null)
    );
    assert!(
        r["bucket"].as_u64().unwrap() < 10_000,
        "when_missing: random draws a bucket"
    );

    // Query keys come from --path, with the configured seed.
    let single = fixtures()
        .join("valid-single.json")
        .to_string_lossy()
        .into_owned();
    let cfg: Value = serde_json::from_str(&fs::read_to_string(&single).unwrap()).unwrap();
    let r = expect(
        &[
            "route",
            &single,
            "--path",
            "/predict?a=1&uid=u%2D7",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(r["key"], "u-7");
    assert_eq!(r["bucket"], murmur3_x86_32(b"u-7", 1234) % 10_000);
    assert_eq!(r["upstream"], oracle(&cfg, 0, "u-7", 1234));
    let r = expect(&["route", &single, "--path", "/predict", "-o", "json"], 0).json();
    assert_eq!(
        (r["reason"].clone(), r["upstream"].clone()),
        (json!("missing_key"), json!("model-v1")),
        "when_missing: primary"
    );

    // Gateways: host and path pick one; cookies; the consumer split; unmatched requests.
    let istio = istio_config();
    let r = expect(
        &[
            "route",
            ISTIO_CONFIG,
            "--host",
            "eu.chat.example.com",
            "--path",
            "/v1",
            "--cookie",
            "session=s-9",
            "--consumer",
            "carol",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(
        (r["gateway"].clone(), r["key"].clone()),
        (json!("chat"), json!("s-9"))
    );
    assert_eq!(r["upstream"], oracle(&istio, 1, "s-9", 0));
    let r = expect(
        &[
            "route",
            ISTIO_CONFIG,
            "--host",
            "models.example.com:443",
            "--path",
            "/fraud/score",
            "-H",
            "X-User-Id: u1",
            "--consumer",
            "ci",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(
        (r["gateway"].clone(), r["upstream"].clone()),
        (json!("fraud"), json!(oracle(&istio, 0, "u1", 0)))
    );
    let r = expect(
        &[
            "route",
            ISTIO_CONFIG,
            "--host",
            "models.example.com",
            "--path",
            "/fraudulent",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(
        (
            r["reason"].clone(),
            r["gateway"].clone(),
            r["upstream"].clone(),
            r["status"].clone(),
            r["detail"].clone()
        ),
        (
            json!("unmatched"),
            Value::Null,
            Value::Null,
            json!(404),
            json!("no_gateway")
        )
    );
    let r = expect(
        &[
            "route",
            ISTIO_CONFIG,
            "--host",
            "models.example.com",
            "--path",
            "/fraud%2Fx",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(
        (r["status"].clone(), r["detail"].clone()),
        (json!(400), json!("ambiguous_path"))
    );
    let consumer = fixtures()
        .join("valid-basic-consumer.json")
        .to_string_lossy()
        .into_owned();
    let r = expect(
        &["route", &consumer, "--consumer", "alice", "-o", "json"],
        0,
    )
    .json();
    assert_eq!(
        (r["key"].clone(), r["bucket"].clone()),
        (json!("alice"), json!(murmur3_x86_32(b"alice", 0) % 10_000))
    );
    let gateways = fixtures()
        .join("valid-gateways.json")
        .to_string_lossy()
        .into_owned();
    let r = expect(
        &[
            "route",
            &gateways,
            "--host",
            "models.example.com",
            "--path",
            "/fraud/score?x=1",
            "--consumer",
            "ci",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(r["path"], "/score?x=1", "strip_prefix: the forwarded path");
    let r = expect(
        &[
            "route",
            &gateways,
            "--host",
            "models.example.com",
            "--path",
            "/nope",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(
        (
            r["reason"].clone(),
            r["detail"].clone(),
            r["status"].clone()
        ),
        (json!("unmatched"), json!("passed"), Value::Null)
    );

    // --at is RFC 3339.
    expect(
        &[
            "route",
            DEMO_CONFIG,
            "--at",
            "2030-01-01T00:00:00+01:00",
            "--consumer",
            "a",
        ],
        0,
    );
    let o = expect(&["route", DEMO_CONFIG, "--at", "next tuesday"], 2);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
}

/// A keys file of `n` user ids in a temp dir.
fn keys_file(dir: &TempDir, n: usize) -> String {
    let path = dir.path().join("keys.txt");
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("user-{i}\n"));
        if i % 100 == 0 {
            text.push('\n'); // empty lines are ignored
        }
    }
    fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn simulate_counts_keys_as_the_filter_splits_them() {
    let dir = TempDir::new("cli-simulate");
    let keys = keys_file(&dir, 2000);
    let istio = istio_config();
    let r = expect(
        &[
            "simulate",
            ISTIO_CONFIG,
            "--gateway",
            "fraud",
            "--keys",
            &keys,
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert_eq!(r["count"], 2000);
    for u in r["upstreams"].as_array().unwrap() {
        let name = u["name"].as_str().unwrap();
        let want = (0..2000)
            .filter(|i| oracle(&istio, 0, &format!("user-{i}"), 0) == name)
            .count();
        assert_eq!(u["count"], want, "{name}");
    }
    let o = expect(
        &[
            "simulate",
            ISTIO_CONFIG,
            "--gateway",
            "fraud",
            "--keys",
            &keys,
        ],
        0,
    );
    let mut lines = o.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("gateway fraud: split by header x-user-id (hash_seed 0), 2000 keys")
    );
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["UPSTREAM", "EXPECTED", "OBSERVED", "COUNT", "DEVIATION"]
    );
    let first: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        first[..2],
        ["fraud-v2", "10.00%"],
        "canaries first, in bucket order"
    );
    // Random keys: each share within 5 sigma of its binomial expectation (a fair run fails
    // about once in 1.7 million).
    let r = expect(
        &[
            "simulate",
            ISTIO_CONFIG,
            "--gateway",
            "chat",
            "--random",
            "20000",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    let total: u64 = r["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 20_000);
    for u in r["upstreams"].as_array().unwrap() {
        assert!(u["z"].as_f64().unwrap().abs() < 5.0, "{u}");
    }
    // A random split has no sticky keys; a configuration with several gateways needs --gateway.
    let gateways = fixtures()
        .join("valid-gateways.json")
        .to_string_lossy()
        .into_owned();
    let o = expect(
        &["simulate", &gateways, "--gateway", "open", "--keys", &keys],
        2,
    );
    assert!(o.stderr.contains("splits at random"), "{}", o.stderr);
    let o = expect(&["simulate", ISTIO_CONFIG, "--keys", &keys], 2);
    assert!(
        o.stderr.contains("choose one with --gateway"),
        "{}",
        o.stderr
    );
    expect(&["simulate", ISTIO_CONFIG, "--gateway", "fraud"], 2);
}

#[test]
fn diff_counts_moves_and_flags_keys_leaving_a_canary_that_did_not_shrink() {
    let dir = TempDir::new("cli-diff");
    let keys = keys_file(&dir, 3000);
    let old = istio_config();
    let write = |name: &str, cfg: &Value| {
        let p = dir.path().join(name);
        fs::write(&p, cfg.to_string()).unwrap();
        p.to_string_lossy().into_owned()
    };
    // Raising fraud-v2 (listed first) shifts fraud-v3's range: its users move though it did not shrink.
    let mut raised = old.clone();
    raised["gateways"][0]["canaries"][0]["percent"] = json!(20);
    let raised_file = write("raised.json", &raised);
    let r = expect(
        &[
            "diff",
            ISTIO_CONFIG,
            &raised_file,
            "--gateway",
            "fraud",
            "--keys",
            &keys,
            "--fail-on-move-out",
            "-o",
            "json",
        ],
        1,
    )
    .json();
    let mut moved = 0;
    for cell in r["matrix"].as_array().unwrap() {
        let (from, to) = (cell["from"].as_str().unwrap(), cell["to"].as_str().unwrap());
        let want = (0..3000)
            .map(|i| format!("user-{i}"))
            .filter(|u| oracle(&old, 0, u, 0) == from && oracle(&raised, 0, u, 0) == to)
            .count();
        assert_eq!(cell["keys"], want, "{from} -> {to}");
        if from != to {
            moved += want;
        }
    }
    assert_eq!(r["moved"], moved);
    assert_eq!(r["ok"], false);
    let out = r["moves_out_of_canaries"].as_array().unwrap();
    assert!(
        !out.is_empty() && out.iter().all(|m| m["from"] == "fraud-v3"),
        "{out:?}"
    );
    let o = expect(
        &[
            "diff",
            ISTIO_CONFIG,
            &raised_file,
            "--gateway",
            "fraud",
            "--keys",
            &keys,
            "--fail-on-move-out",
        ],
        1,
    );
    assert!(
        o.stdout
            .contains("move out of a canary whose percent did not shrink"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("FROM \\ TO"), "{}", o.stdout);
    assert!(o.stderr.starts_with("diff: "), "{}", o.stderr);
    // Without the flag the same diff is only a report.
    expect(
        &[
            "diff",
            ISTIO_CONFIG,
            &raised_file,
            "--gateway",
            "fraud",
            "--keys",
            &keys,
        ],
        0,
    );
    // Raising the last canary only takes users from the primary: CI passes.
    let mut last = old.clone();
    last["gateways"][0]["canaries"][1]["percent"] = json!(8);
    let last_file = write("last.json", &last);
    let r = expect(
        &[
            "diff",
            ISTIO_CONFIG,
            &last_file,
            "--gateway",
            "fraud",
            "--keys",
            &keys,
            "--fail-on-move-out",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    assert!(
        r["matrix"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["from"] == c["to"] || (c["from"] == "fraud-v1" && c["to"] == "fraud-v3")),
        "{r}"
    );
    assert_eq!(r["ok"], true);
}

#[test]
fn promote_and_rollback_print_a_validated_config_and_say_whose_buckets_move() {
    let dir = TempDir::new("cli-edit");
    let file = dir.path().join("config.json");
    fs::copy(Path::new(ROOT).join(ISTIO_CONFIG), &file).unwrap();
    let file = file.to_string_lossy().into_owned();

    let o = expect(
        &["promote", &file, "--gateway", "fraud", "--to", "fraud-v2"],
        0,
    );
    let promoted: Value = serde_json::from_str(&o.stdout).unwrap();
    let mut want = istio_config();
    want["gateways"][0]["primary"] = json!("fraud-v2");
    want["gateways"][0]["canaries"] = json!([{"name": "fraud-v3", "percent": 5}]);
    assert_eq!(promoted, want);
    assert_eq!(
        o.stderr,
        "promote: gateway fraud: fraud-v2 is the primary, fraud-v1 is dropped; buckets that move: \
         8500 fraud-v1 -> fraud-v2, 500 fraud-v2 -> fraud-v3, 500 fraud-v3 -> fraud-v2\n"
    );
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        fs::read_to_string(Path::new(ROOT).join(ISTIO_CONFIG)).unwrap(),
        "not written without -i"
    );

    let o = expect(&["rollback", &file, "--gateway", "chat", "-i"], 0);
    assert_eq!(o.stdout, "");
    assert_eq!(
        o.stderr,
        "rollback: gateway chat: chat-v2 20% -> 0%; buckets that move: 2000 chat-v2 -> chat-v1\n"
    );
    let rolled: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        rolled["gateways"][1]["canaries"],
        json!([{"name": "chat-v2", "percent": 0}])
    );
    expect(&["check", &file], 0);

    // Usage errors: exit 2, one line.
    for (args, needle) in [
        (
            vec![
                "promote",
                file.as_str(),
                "--gateway",
                "fraud",
                "--to",
                "fraud-v1",
            ],
            "already the primary",
        ),
        (
            vec![
                "promote",
                file.as_str(),
                "--gateway",
                "fraud",
                "--to",
                "chat-v2",
            ],
            "has no canary",
        ),
        (
            vec!["promote", file.as_str(), "--to", "fraud-v2"],
            "choose one with --gateway",
        ),
        (
            vec![
                "rollback",
                file.as_str(),
                "--gateway",
                "fraud",
                "--canary",
                "nope",
            ],
            "has no canary",
        ),
    ] {
        let o = expect(&args, 2);
        assert!(
            o.stderr.contains(needle) && o.stderr.lines().count() == 1,
            "{args:?}: {}",
            o.stderr
        );
    }
    let envoy_yaml = fixtures()
        .join("invalid-envoy.yaml")
        .to_string_lossy()
        .into_owned();
    expect(&["rollback", &envoy_yaml], 1); // refused by the parser before any edit

    // A WasmPlugin is edited in place: only its pluginConfig block changes.
    let plugin = dir.path().join("wasmplugin.yaml");
    fs::copy(Path::new(ROOT).join("envoy/istio/wasmplugin.yaml"), &plugin).unwrap();
    let plugin = plugin.to_string_lossy().into_owned();
    let before = fs::read_to_string(&plugin).unwrap();
    expect(
        &[
            "rollback",
            &plugin,
            "--gateway",
            "fraud",
            "--canary",
            "fraud-v3",
            "-i",
        ],
        0,
    );
    let after = fs::read_to_string(&plugin).unwrap();
    let head = |t: &str| t[..t.find("  pluginConfig:").unwrap()].to_string();
    assert_eq!(
        head(&after),
        head(&before),
        "comments and fields outside pluginConfig are kept"
    );
    let o = expect(&["check", &plugin, "-o", "json"], 0).json();
    assert_eq!(
        o[0]["gateways"][0]["upstreams"][2],
        json!({"name": "fraud-v3", "percent": 0.0})
    );
}

#[test]
fn render_envoy_writes_a_bootstrap_that_check_reads_back() {
    let dir = TempDir::new("cli-render");
    let wasm = dir.path().join("canary_gate.wasm");
    fs::write(&wasm, b"\0asm").unwrap();
    let wasm = wasm.to_string_lossy().into_owned();
    let ups = ["fraud-v1", "fraud-v2", "fraud-v3", "chat-v1", "chat-v2"];
    let mut args = vec![
        "render".to_string(),
        "envoy".into(),
        ISTIO_CONFIG.into(),
        "--wasm".into(),
        wasm.clone(),
    ];
    for (i, u) in ups.iter().enumerate() {
        args.push("--upstream".into());
        args.push(if i == 0 {
            format!("{u}=fraud.internal:8080")
        } else {
            format!("{u}=127.0.0.1:{}", 9000 + i)
        });
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = expect(&argv, 0);
    let bootstrap: Value = serde_norway::from_str(&o.stdout).unwrap();
    let clusters = bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap();
    assert_eq!(clusters.len(), 5);
    assert_eq!(
        (clusters[0]["name"].clone(), clusters[0]["type"].clone()),
        (json!("fraud-v1"), json!("STRICT_DNS"))
    );
    assert_eq!(clusters[1]["type"], "STATIC");
    let path = dir.path().join("envoy.yaml");
    fs::write(&path, &o.stdout).unwrap();
    let c = expect(&["check", &path.to_string_lossy()], 0);
    assert!(
        c.stdout.contains(": ok: fraud [models.example.com/fraud]"),
        "{}",
        c.stdout
    );
    // As JSON too (Envoy reads either), and `check` finds the filter in a JSON bootstrap.
    let mut json_args = argv.clone();
    json_args.extend(["-o", "json"]);
    let as_json = expect(&json_args, 0).json();
    assert_eq!(as_json, bootstrap);
    let json_path = dir.path().join("envoy.json");
    fs::write(&json_path, as_json.to_string()).unwrap();
    expect(&["check", &json_path.to_string_lossy()], 0);
    let list = expect(&["render", "istio", ISTIO_CONFIG, "-o", "json"], 0).json();
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "DestinationRule",
            "DestinationRule",
            "Gateway",
            "VirtualService",
            "VirtualService",
            "WasmPlugin"
        ],
        "routing first"
    );
    // Every upstream needs an address, and only upstreams of the configuration may have one.
    let o = expect(&argv[..argv.len() - 2], 2);
    assert!(
        o.stderr.contains("no address for upstream chat-v2"),
        "{}",
        o.stderr
    );
    let mut typo = argv.clone();
    typo.extend(["--upstream", "fraud-v9=127.0.0.1:1"]);
    let o = expect(&typo, 2);
    assert!(
        o.stderr.contains("fraud-v9: not an upstream"),
        "{}",
        o.stderr
    );
}

#[test]
fn key_digest_and_htpasswd_read_stdin_and_never_echo() {
    for input in [&b"alice-key"[..], b"alice-key\n", b"alice-key\r\n"] {
        let o = run_with(&["key-digest"], Some(input));
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(
            o.stdout,
            "72ee9d4355ccb9d3a4c9dbf37382e38e75c1b1a225b5bd1f729ee91bbda30c20\n"
        );
        assert_eq!(o.stderr, "");
    }
    let o = run_with(
        &["key-digest", "--consumer", "alice", "-o", "json"],
        Some(b"alice-key\n"),
    );
    assert_eq!(
        o.json(),
        json!({"consumer": "alice", "sha256": "72ee9d4355ccb9d3a4c9dbf37382e38e75c1b1a225b5bd1f729ee91bbda30c20"})
    );
    for bad in [&b""[..], b"\n", b" spaced\n", b"k\xff"] {
        let o = run_with(&["key-digest"], Some(bad));
        assert_eq!((o.code, o.stdout.as_str()), (2, ""), "{bad:?}");
        assert_eq!(o.stderr.lines().count(), 1);
    }

    let o = run_with(
        &["htpasswd", "carol", "--cost", "4"],
        Some(b"pa:ss word\r\n"),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let line = o.stdout.trim_end();
    let (user, hash) = line.split_once(':').unwrap();
    assert_eq!(user, "carol");
    assert!(hash.starts_with("$2y$04$"), "{hash}");
    assert!(bcrypt::verify("pa:ss word", hash).unwrap());
    assert!(!o.stdout.contains("pa:ss") && !o.stderr.contains("pa:ss"));
    // Two runs, two salts.
    let again = run_with(&["htpasswd", "carol", "--cost", "4"], Some(b"pa:ss word")).stdout;
    assert_ne!(again, o.stdout);
    // The line works in a configuration.
    let cfg = json!({"primary": "v1", "auth": {"mode": "basic", "users": [line]}});
    canary_gate::config::parse(cfg.to_string().as_bytes()).unwrap();
    let o = run_with(&["htpasswd", "carol", "--cost", "13"], Some(b"x"));
    assert_eq!(o.code, 2);
    let o = run_with(&["htpasswd", "ca:rol"], Some(b"x"));
    assert_eq!(o.code, 2);
}

#[test]
fn usage_errors_are_one_line_and_help_has_examples() {
    let o = expect(&["--help"], 0);
    assert!(
        o.stdout.contains("Examples:") && o.stdout.contains("Exit codes: 0 success"),
        "{}",
        o.stdout
    );
    for cmd in [
        "check",
        "route",
        "simulate",
        "diff",
        "promote",
        "rollback",
        "key-digest",
        "htpasswd",
        "stat",
    ] {
        let o = expect(&[cmd, "--help"], 0);
        assert!(
            o.stdout.contains("Example"),
            "{cmd} --help has no example:\n{}",
            o.stdout
        );
    }
    for sub in ["istio", "envoy"] {
        let o = expect(&["render", sub, "--help"], 0);
        assert!(o.stdout.contains("Example"), "render {sub}:\n{}", o.stdout);
    }
    for args in [
        vec!["route"],
        vec!["route", DEMO_CONFIG, "--nope"],
        vec!["frobnicate"],
        vec!["route", "missing.json"],
        vec!["route", DEMO_CONFIG, "--header", "no-colon"],
        vec!["stat", "--admin", "http://127.0.0.1:1", "--interval", "0.1"],
    ] {
        let o = expect(&args, 2);
        assert_eq!(o.stderr.lines().count(), 1, "{args:?}: {}", o.stderr);
        assert!(!o.stderr.contains("backtrace"), "{}", o.stderr);
    }
    // A configuration the filter refuses is a failed check wherever it is read.
    let bad = fixtures()
        .join("invalid-total.json")
        .to_string_lossy()
        .into_owned();
    let o = expect(&["route", &bad], 1);
    assert_eq!(
        o.stderr,
        format!("error: {bad}: canaries[1].percent: total 120.5 exceeds 100\n")
    );
}

/// An admin endpoint that answers `/stats?format=json` with `bodies` in turn (the last one
/// from then on).
fn fake_admin(
    bodies: Vec<Value>,
) -> (
    u16,
    std::thread::JoinHandle<()>,
    std::sync::Arc<tiny_http::Server>,
) {
    let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let port = server.server_addr().to_ip().unwrap().port();
    let s = server.clone();
    let handle = std::thread::spawn(move || {
        for (n, req) in s.incoming_requests().enumerate() {
            assert!(req.url().starts_with("/stats?format=json"), "{}", req.url());
            let body = bodies[n.min(bodies.len() - 1)].to_string();
            let _ = req.respond(tiny_http::Response::from_string(body));
        }
    });
    (port, handle, server)
}

fn counter(name: &str, value: u64) -> Value {
    json!({"name": format!("wasmcustom.canary_gate.{name}"), "value": value})
}

#[test]
fn stat_shows_the_columns_whose_metrics_exist() {
    // Only the request counters (what the filter reports today).
    let before = json!({"stats": [
        counter("gateway=.=fraud;.;upstream=.=fraud-v1;.;requests", 100),
        counter("gateway=.=fraud;.;upstream=.=fraud-v2;.;requests", 10),
        counter("gateway=.=fraud;.;reason=.=missing_credentials;.;auth_denied", 4),
    ]});
    let after = json!({"stats": [
        counter("gateway=.=fraud;.;upstream=.=fraud-v1;.;requests", 150),
        counter("gateway=.=fraud;.;upstream=.=fraud-v2;.;requests", 15),
    ]});
    let (port, handle, server) = fake_admin(vec![before.clone(), after.clone()]);
    let admin = format!("http://127.0.0.1:{port}");
    let o = expect(&["stat", "--admin", &admin, "--interval", "0.5"], 0);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["GATEWAY", "UPSTREAM", "RPS", "REQUESTS"],
        "{}",
        o.stdout
    );
    assert!(
        lines[1].starts_with("fraud    fraud-v1") && lines[1].ends_with(" 150"),
        "{}",
        o.stdout
    );
    let rps: f64 = lines[1].split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(
        (50.0..=110.0).contains(&rps),
        "50 requests in ~0.5 s: {rps}"
    );
    server.unblock();
    handle.join().unwrap();

    // With the response metrics: success, latency, guard and share columns.
    let with = |requests: u64| {
        json!({"stats": [
            counter("gateway=.=chat;.;upstream=.=chat-v2;.;requests", requests),
            counter("gateway=.=chat;.;upstream=.=chat-v2;.;class=.=2xx;.;responses", 99),
            counter("gateway=.=chat;.;upstream=.=chat-v2;.;class=.=5xx;.;responses", 1),
            counter("gateway=.=chat;.;upstream=.=chat-v2;.;guard_tripped", 0),
            counter("gateway=.=chat;.;upstream=.=chat-v2;.;canary_basis_points", 2000),
            {"histograms": {"supported_quantiles": [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100],
              "computed_quantiles": [{"name": "wasmcustom.canary_gate.gateway=.=chat;.;upstream=.=chat-v2;.;response_ms",
                "values": [{"interval": null, "cumulative": 1}, {"interval": null, "cumulative": 2},
                           {"interval": null, "cumulative": 3.5}, {"interval": null, "cumulative": 4},
                           {"interval": null, "cumulative": 5}, {"interval": null, "cumulative": 6},
                           {"interval": null, "cumulative": 40.25}, {"interval": null, "cumulative": 50},
                           {"interval": null, "cumulative": 60}, {"interval": null, "cumulative": 70}]}]}}
        ]})
    };
    let (port, handle, server) = fake_admin(vec![with(100), with(100), with(130)]);
    let admin = format!("http://127.0.0.1:{port}");
    let o = expect(
        &[
            "stat", "--admin", &admin, "--watch", "0.2", "--count", "2", "-o", "json",
        ],
        0,
    );
    let rows: Vec<Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "--count 2: two tables");
    let r = &rows[0]["rows"][0];
    assert_eq!(
        (
            r["gateway"].clone(),
            r["upstream"].clone(),
            r["share_percent"].clone(),
            r["success_rate"].clone(),
            r["p50_ms"].clone(),
            r["p99_ms"].clone(),
            r["guard"].clone(),
            r["requests"].clone()
        ),
        (
            json!("chat"),
            json!("chat-v2"),
            json!(20.0),
            json!(0.99),
            json!(3.5),
            json!(40.25),
            json!("ok"),
            json!(100)
        )
    );
    assert_eq!(rows[0]["rows"][0]["rps"], 0.0);
    assert!(rows[1]["rows"][0]["rps"].as_f64().unwrap() > 0.0);
    server.unblock();
    handle.join().unwrap();
}

#[test]
fn ramps_are_evaluated_at_the_given_time_and_rollback_removes_only_the_ramp() {
    let file = fixtures()
        .join("valid-guard-ramp.json")
        .to_string_lossy()
        .into_owned();
    // fraud-v2 ramps from 10% at 2030-01-01T00:00Z by 10 points an hour up to 50%: two hours
    // in, fraud-v2 owns buckets 0-2999 and fraud-v3 3000-3499.
    let user = (0..)
        .map(|i| format!("user-{i}"))
        .find(|u| (1500..3000).contains(&(murmur3_x86_32(u.as_bytes(), 0) % 10_000)))
        .unwrap();
    let header = format!("x-user-id: {user}");
    let route_at = |at: &str| {
        expect(
            &[
                "route",
                &file,
                "--host",
                "models.example.com",
                "-H",
                &header,
                "--at",
                at,
                "-o",
                "json",
            ],
            0,
        )
        .json()
    };
    assert_eq!(
        route_at("2029-12-31T23:59:59Z")["upstream"],
        "fraud-v1",
        "before the ramp"
    );
    let r = route_at("2030-01-01T02:00:00Z");
    assert_eq!(r["upstream"], "fraud-v2", "{r}");
    assert!(
        r["why"]
            .as_str()
            .unwrap()
            .ends_with("buckets 0-2999 belong to fraud-v2 (30%)"),
        "{r}"
    );
    let r = expect(
        &[
            "simulate",
            &file,
            "--random",
            "1000",
            "--at",
            "2030-01-01T10:00:00Z",
            "-o",
            "json",
        ],
        0,
    )
    .json();
    let expected: Vec<f64> = r["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["expected_percent"].as_f64().unwrap())
        .collect();
    assert_eq!(
        expected,
        [50.0, 5.0, 45.0],
        "fraud-v2 at its ramp's until, fraud-v3, fraud-v1"
    );

    // Rolling fraud-v2 back: percent 0, ramp gone, guard and revision kept; validated.
    let o = expect(&["rollback", &file, "--canary", "fraud-v2"], 0);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        v["gateways"][0]["canaries"][0],
        json!({"name": "fraud-v2", "percent": 0, "revision": "r7",
               "guard": {"max_error_rate": 0.05, "min_requests": 20}})
    );
    assert_eq!(
        v["gateways"][0]["canaries"][1],
        json!({"name": "fraud-v3", "percent": 5})
    );
    assert!(
        o.stderr.starts_with(
            "rollback: gateway fraud: fraud-v2 10% -> 0%, ramp removed; buckets that move: "
        ),
        "{}",
        o.stderr
    );
    // Promoting fraud-v3 keeps fraud-v2 with its guard, revision and ramp.
    let o = expect(&["promote", &file, "--to", "fraud-v3"], 0);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["gateways"][0]["primary"], "fraud-v3");
    assert_eq!(v["gateways"][0]["canaries"][0]["ramp"]["until"], 50);
    assert_eq!(v["gateways"][0]["canaries"].as_array().unwrap().len(), 1);
}
