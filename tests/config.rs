//! Invalid plugin configurations: Envoy refuses the plugin, and its log names the field and
//! the problem in one critical line, without repeating any secret.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{EchoUpstream, Envoy, StartFailure};
use serde_json::{json, Value};

fn refused(cfg: &Value) -> StartFailure {
    let v1 = EchoUpstream::start("model-v1");
    match Envoy::try_start(cfg, &[v1.cluster()]) {
        Ok(envoy) => panic!(
            "Envoy accepted an invalid config {cfg}; log:\n{}",
            envoy.log()
        ),
        Err(f) => f,
    }
}

/// The operator's line: critical level, from the wasm component, naming field and problem.
fn assert_refused_with(cfg: Value, message: &str) -> StartFailure {
    let f = refused(&cfg);
    if let Some(status) = f.exit_status {
        assert!(!status.success(), "Envoy exited 0 on a refused plugin");
    }
    let needle = format!("canary-gate: invalid configuration: {message}");
    let line = f
        .log
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no `{needle}` in Envoy's log:\n{}", f.log));
    assert!(line.contains("[critical]"), "not a critical line: {line}");
    assert_eq!(
        f.log.matches("canary-gate: invalid configuration").count(),
        1,
        "expected exactly one error line:\n{}",
        f.log
    );
    f
}

#[test]
fn canary_total_over_100_is_refused_naming_the_canary() {
    assert_refused_with(
        json!({"primary": "model-v1", "canaries": [
            {"name": "model-v2", "percent": 60}, {"name": "model-v3", "percent": 60}]}),
        "canaries[1].percent: total 120 exceeds 100",
    );
}

#[test]
fn structural_mistakes_are_refused_naming_the_field() {
    assert_refused_with(json!({"canaries": []}), "missing field `primary`");
    assert_refused_with(
        json!({"primary": "model-v1", "split": {"by": "header"}}),
        "split.name: required when split.by is \"header\"",
    );
    assert_refused_with(
        json!({"primary": "model-v1", "canaries": [{"name": "model-v2", "percent": 1.005}]}),
        "canaries[0].percent: 1.005 has more than two decimals",
    );
    assert_refused_with(
        json!({"primary": "model-v1", "route_header": "x-a", "select_header": "X-A"}),
        "select_header: header \"x-a\" is already used by route_header",
    );
    let f = refused(&json!({"primary": "model-v1", "canarys": []}));
    assert!(
        f.log.contains("canarys: unknown field `canarys`"),
        "{}",
        f.log
    );
    assert_refused_with(
        json!({"primary": "model-v1", "auth": {"mode": "oauth2"}}),
        "auth.mode: \"oauth2\" is not supported",
    );
}

#[test]
fn secrets_in_a_refused_config_never_reach_the_log() {
    let f = assert_refused_with(
        json!({"primary": "model-v1", "auth": {"mode": "basic", "users": ["alice:hunter2-plaintext"]}}),
        "auth.users[0]: user \"alice\" has a plaintext password, which is refused",
    );
    assert!(
        !f.log.contains("hunter2"),
        "the password reached the log:\n{}",
        f.log
    );

    let f = assert_refused_with(
        json!({"primary": "model-v1", "auth": {"mode": "basic",
            "users": ["bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "carol:$2y$05$truncated-hash-value"]}}),
        "auth.users[1]: user \"carol\" has a malformed bcrypt hash",
    );
    assert!(
        !f.log.contains("truncated-hash-value") && !f.log.contains("5en6G6"),
        "{}",
        f.log
    );

    let f = assert_refused_with(
        json!({"primary": "model-v1", "auth": {"mode": "access_key",
            "keys": [{"consumer": "alice", "sha256": "sk-live-plain-key-not-a-digest"}]}}),
        "auth.keys[0].sha256: must be 64 hex characters",
    );
    assert!(
        !f.log.contains("sk-live-plain-key"),
        "the key reached the log:\n{}",
        f.log
    );
}

#[test]
fn an_empty_or_non_json_configuration_is_refused() {
    let f = refused(&json!(""));
    assert!(
        f.log.contains("canary-gate: invalid configuration"),
        "no error line in:\n{}",
        f.log
    );
}
