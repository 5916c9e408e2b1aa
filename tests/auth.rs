//! Authentication through a real Envoy: what the client gets back, and what the upstream
//! receives (or does not) for each Basic and access-key path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use base64::Engine;
use common::oracle::expected_upstream;
use common::{EchoUpstream, Envoy, Gateway, Resp};
use serde_json::json;
use sha2::Digest;

/// bcrypt of "U*U" with cost 5: a published test vector of the OpenBSD / John the Ripper
/// bcrypt test suite (an implementation independent of the filter's), in htpasswd's `$2y$`
/// spelling, which is the same algorithm.
const ALICE_BCRYPT: &str = "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
const ALICE_PASSWORD: &str = "U*U";
/// Bob's password contains colons; only the first colon separates user and password.
const BOB_PASSWORD: &str = "pa:ss:word";

fn sha1_b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

fn basic_config() -> serde_json::Value {
    json!({
        "primary": "model-v1",
        "auth": {
            "mode": "basic",
            "realm": "models",
            "users": [format!("alice:{ALICE_BCRYPT}"), format!("bob:{{SHA}}{}", sha1_b64(BOB_PASSWORD))]
        }
    })
}

/// A refusal as the client sees it: 401, the challenge, a JSON reason, and no upstream.
fn assert_refused(r: &Resp, challenge: &str, reason: &str) {
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some(challenge), "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["reason"], reason, "{r:?}");
    assert!(
        r.upstream().is_none(),
        "a refused request reached an upstream: {r:?}"
    );
}

const BASIC_CHALLENGE: &str = "Basic realm=\"models\", charset=\"UTF-8\"";

#[test]
fn basic_auth_paths() {
    let v1 = EchoUpstream::start("model-v1");
    let envoy = Envoy::builder(Gateway::new(&basic_config(), &[v1.cluster()])).start();

    // Right passwords, bcrypt and {SHA}; the scheme in any case; colons in the password.
    for (header, user) in [
        (basic(&format!("alice:{ALICE_PASSWORD}")), "alice"),
        (basic(&format!("bob:{BOB_PASSWORD}")), "bob"),
        (
            basic(&format!("bob:{BOB_PASSWORD}")).replacen("Basic", "basic", 1),
            "bob",
        ),
        (
            basic(&format!("alice:{ALICE_PASSWORD}")).replacen("Basic", "BASIC", 1),
            "alice",
        ),
    ] {
        let r = envoy.get(
            "/predict",
            &[("authorization", &header), ("x-canary-consumer", "admin")],
        );
        assert_eq!(r.status, 200, "{header}: {r:?}");
        assert_eq!(
            r.upstream_header("x-canary-consumer").as_deref(),
            Some(user)
        );
        assert_eq!(
            r.upstream_header("authorization"),
            None,
            "credential forwarded upstream"
        );
    }
    // The cached bcrypt credential keeps working on repeat requests.
    for _ in 0..5 {
        let r = envoy.get(
            "/",
            &[("authorization", &basic(&format!("alice:{ALICE_PASSWORD}")))],
        );
        assert_eq!(
            r.upstream_header("x-canary-consumer").as_deref(),
            Some("alice")
        );
    }

    assert_refused(&envoy.get("/", &[]), BASIC_CHALLENGE, "missing_credentials");
    for wrong in [
        "alice:U*u",
        "alice:",
        "bob:pa",
        "bob:pa:ss",
        "carol:U*U",
        ":U*U",
    ] {
        let r = envoy.get("/", &[("authorization", &basic(wrong))]);
        assert_refused(&r, BASIC_CHALLENGE, "invalid_credentials");
    }
    for garbage in [
        "Basic",
        "Basic !!!",
        "Bearer abc",
        "Basic YWxpY2U=", /* "alice", no colon */
        "Basicx Ym9iOnBhc3M=",
    ] {
        let r = envoy.get("/", &[("authorization", garbage)]);
        assert_refused(&r, BASIC_CHALLENGE, "malformed_credentials");
    }

    let prom = envoy.prometheus();
    for line in [
        "canary_gate_auth_allowed{gateway=\"default\"} 9",
        "canary_gate_auth_denied{gateway=\"default\",reason=\"missing_credentials\"} 1",
        "canary_gate_auth_denied{gateway=\"default\",reason=\"invalid_credentials\"} 6",
        "canary_gate_auth_denied{gateway=\"default\",reason=\"malformed_credentials\"} 5",
        "canary_gate_requests{gateway=\"default\",upstream=\"model-v1\"} 9",
    ] {
        assert!(prom.contains(line), "missing `{line}` in:\n{prom}");
    }
    // Nothing secret reaches Envoy's log.
    let log = envoy.log();
    for secret in [
        ALICE_BCRYPT,
        ALICE_PASSWORD,
        BOB_PASSWORD,
        &sha1_b64(BOB_PASSWORD),
    ] {
        assert!(
            !log.contains(secret),
            "Envoy's log contains a secret: {secret}"
        );
    }
}

fn access_key_config(extra: serde_json::Value) -> serde_json::Value {
    let mut cfg = json!({
        "primary": "model-v1",
        "canaries": [{"name": "model-v2", "percent": 50}],
        "split": {"by": "consumer"},
        "select_header": "x-canary-select",
        "auth": {
            "mode": "access_key",
            "realm": "models",
            "query": "api_key",
            "keys": [
                {"consumer": "alice", "sha256": sha256_hex("alice-key")},
                {"consumer": "bob", "sha256": sha256_hex("bob-key")},
                {"consumer": "carol", "sha256": sha256_hex("carol-key")}
            ]
        }
    });
    if let (Some(dst), Some(src)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
    }
    cfg
}

const KEY_CHALLENGE: &str = "ApiKey realm=\"models\", header=\"x-api-key\"";

#[test]
fn access_key_paths() {
    let v1 = EchoUpstream::start("model-v1");
    let v2 = EchoUpstream::start("model-v2");
    let envoy = Envoy::builder(Gateway::new(
        &access_key_config(json!({})),
        &[v1.cluster(), v2.cluster()],
    ))
    .start();

    for (key, consumer) in [
        ("alice-key", "alice"),
        ("bob-key", "bob"),
        ("carol-key", "carol"),
    ] {
        let want = expected_upstream(consumer, 0, "model-v1", &[("model-v2", 50.0)]);
        // In the header.
        let r = envoy.get(
            "/predict?x=1",
            &[("x-api-key", key), ("x-canary-consumer", "root")],
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.upstream_header("x-canary-consumer").as_deref(),
            Some(consumer)
        );
        assert_eq!(
            r.upstream_header("x-api-key"),
            None,
            "key header forwarded upstream"
        );
        assert_eq!(
            r.upstream().as_deref(),
            Some(want),
            "split by consumer {consumer}"
        );
        assert_eq!(r.json()["path"], "/predict?x=1");
        // In the query string: removed, other parameters kept as sent.
        let r = envoy.get(&format!("/predict?x=1&api_key={key}&y=a%20b"), &[]);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.upstream_header("x-canary-consumer").as_deref(),
            Some(consumer)
        );
        assert_eq!(r.json()["path"], "/predict?x=1&y=a%20b");
    }

    assert_refused(&envoy.get("/", &[]), KEY_CHALLENGE, "missing_credentials");
    assert_refused(
        &envoy.get("/", &[("x-api-key", "mallory")]),
        KEY_CHALLENGE,
        "invalid_credentials",
    );
    assert_refused(
        &envoy.get("/?api_key=alice-key2", &[]),
        KEY_CHALLENGE,
        "invalid_credentials",
    );
    // The digest itself is not a key.
    let digest = sha256_hex("alice-key");
    assert_refused(
        &envoy.get("/", &[("x-api-key", &digest)]),
        KEY_CHALLENGE,
        "invalid_credentials",
    );
    // Selecting a version does not bypass authentication.
    assert_refused(
        &envoy.get("/", &[("x-canary-select", "model-v2")]),
        KEY_CHALLENGE,
        "missing_credentials",
    );
    let r = envoy.get(
        "/",
        &[("x-canary-select", "model-v2"), ("x-api-key", "alice-key")],
    );
    assert_eq!(r.upstream().as_deref(), Some("model-v2"));

    let log = envoy.log();
    assert!(!log.contains(&digest), "Envoy's log contains a key digest");
    assert!(!log.contains("alice-key"), "Envoy's log contains a key");
}

#[test]
fn without_auth_a_client_cannot_assert_an_identity() {
    let v1 = EchoUpstream::start("model-v1");
    let envoy = Envoy::builder(Gateway::new(
        &json!({"primary": "model-v1"}),
        &[v1.cluster()],
    ))
    .start();
    let r = envoy.get(
        "/",
        &[
            ("x-canary-consumer", "admin"),
            ("authorization", "Basic Zm9vOmJhcg=="),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-canary-consumer"), None);
    // With auth none the filter has no business with Authorization: it is passed through.
    assert_eq!(
        r.upstream_header("authorization").as_deref(),
        Some("Basic Zm9vOmJhcg==")
    );
}
