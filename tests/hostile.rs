//! Hostile requests through a real Envoy at `--concurrency 1` with `max_request_headers_kb`
//! raised so large headers reach the filter: each gets its defined answer, never a VM panic,
//! and the next normal request still gets 200. The README's security section lists these
//! cases and their answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;

use base64::Engine;
use common::oracle::expected_upstream;
use common::raw::{self, RawResp, RawUpstream};
use common::{Envoy, Gateway};
use serde_json::{json, Value};
use sha2::Digest;

const PASSWORD: &str = "s3cret";
const KEY: &str = "key-0123456789";

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn sha1_b64(s: &str) -> String {
    b64(&sha1::Sha1::digest(s.as_bytes()))
}

struct Setup {
    envoy: Envoy,
    _upstreams: [RawUpstream; 2],
}

fn start(config: &Value) -> Setup {
    let upstreams = [RawUpstream::start("v1"), RawUpstream::start("v2")];
    let clusters = [upstreams[0].cluster(), upstreams[1].cluster()];
    let mut bootstrap = Gateway::new(config, &clusters).to_json();
    let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    hcm["max_request_headers_kb"] = json!(1024);
    hcm["common_http_protocol_options"] = json!({"max_headers_count": 2000});
    Setup {
        envoy: Envoy::builder(bootstrap).start(),
        _upstreams: upstreams,
    }
}

fn basic_config() -> Value {
    json!({
        "primary": "v1", "canaries": [{"name": "v2", "percent": 50}],
        "split": {"by": "cookie", "name": "uid"},
        "select_header": "x-canary-select",
        "auth": {"mode": "basic", "users": [format!("alice:{{SHA}}{}", sha1_b64(PASSWORD))]}
    })
}

fn basic() -> String {
    format!("Basic {}", b64(format!("alice:{PASSWORD}").as_bytes()))
}

fn get(envoy: &Envoy, path: &[u8], headers: &[(&str, &[u8])]) -> RawResp {
    raw::get(envoy.port(), path, headers)
}

/// No panic in the log, and a normal request still gets 200 from an upstream.
fn assert_alive(envoy: &Envoy, normal: &[(&str, &[u8])], after: &str) {
    let r = get(envoy, b"/", normal);
    assert_eq!(r.status, 200, "after {after}: {r:?}");
    let log = envoy.log();
    for sign in ["panicked", "Uncaught", "unreachable", "failed to call"] {
        assert!(
            !log.contains(sign),
            "after {after}: `{sign}` in the log:\n{log}"
        );
    }
}

fn assert_refused(r: &RawResp, status: u16, reason: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert_eq!(r.reason().as_deref(), Some(reason), "{what}: {r:?}");
    assert!(r.upstream().is_none(), "{what}: reached an upstream");
}

#[test]
fn basic_auth_and_cookie_split_under_attack() {
    let s = start(&basic_config());
    let e = &s.envoy;
    let auth = basic();
    let normal: [(&str, &[u8]); 1] = [("authorization", auth.as_bytes())];

    // A 60 KB header value the filter does not read, and one it does (the split cookie).
    let big = "x".repeat(60 * 1024);
    let r = get(
        e,
        b"/",
        &[
            ("authorization", auth.as_bytes()),
            ("x-big", big.as_bytes()),
        ],
    );
    assert_eq!(r.status, 200, "60 KB unrelated header");
    let cookie = format!("uid={big}");
    let r = get(
        e,
        b"/",
        &[
            ("authorization", auth.as_bytes()),
            ("cookie", cookie.as_bytes()),
        ],
    );
    assert_eq!(
        r.upstream(),
        Some(expected_upstream(&big, 0, "v1", &[("v2", 50.0)])),
        "60 KB key"
    );
    assert_alive(e, &normal, "60 KB headers");

    // 1,000 cookies; the key is the last one.
    let many: String =
        (0..999).map(|i| format!("c{i}=v{i}; ")).collect::<String>() + "uid=last-one";
    let r = get(
        e,
        b"/",
        &[
            ("authorization", auth.as_bytes()),
            ("cookie", many.as_bytes()),
        ],
    );
    assert_eq!(
        r.upstream(),
        Some(expected_upstream("last-one", 0, "v1", &[("v2", 50.0)]))
    );
    assert_alive(e, &normal, "1,000 cookies");

    // Two Authorization headers: ambiguous, never guessed at.
    let r = get(
        e,
        b"/",
        &[
            ("authorization", auth.as_bytes()),
            ("authorization", auth.as_bytes()),
        ],
    );
    assert_refused(
        &r,
        401,
        "malformed_credentials",
        "two authorization headers",
    );
    assert_alive(e, &normal, "two authorization headers");

    // Basic with 10 KB of base64, with no colon, with a NUL.
    let long = format!("Basic {}", b64(&vec![b'a'; 10 * 1024]));
    for (value, reason) in [
        (long.clone(), "malformed_credentials"),
        (format!("Basic {}", b64(b"alice")), "malformed_credentials"),
        (
            format!("Basic {}", b64(b"alice:s3c\0ret")),
            "invalid_credentials",
        ),
        (
            format!("Basic {}", b64(b"al\0ice:s3cret")),
            "invalid_credentials",
        ),
    ] {
        let r = get(e, b"/", &[("authorization", value.as_bytes())]);
        assert_refused(&r, 401, reason, &value[..value.len().min(40)]);
        assert_alive(e, &normal, "odd Basic credentials");
    }

    // Repeated select headers: ignored; repeated route and consumer headers: all removed.
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| expected_upstream(k, 0, "v1", &[("v2", 50.0)]) == "v1")
        .unwrap();
    let cookie = format!("uid={key}");
    let r = get(
        e,
        b"/",
        &[
            ("authorization", auth.as_bytes()),
            ("cookie", cookie.as_bytes()),
            ("x-canary-select", b"v2"),
            ("x-canary-select", b"v2"),
            ("x-canary-upstream", b"v2"),
            ("x-canary-upstream", b"v2"),
            ("x-canary-consumer", b"root"),
            ("x-canary-consumer", b"admin"),
        ],
    );
    assert_eq!(
        (r.status, r.upstream()),
        (200, Some("v1")),
        "two select headers are ignored: {r:?}"
    );
    let head = String::from_utf8_lossy(&r.body).to_lowercase();
    assert_eq!(head.matches("x-canary-consumer:").count(), 1, "{head}");
    assert_eq!(
        r.upstream_saw("x-canary-consumer").as_deref(),
        Some(&b"alice"[..])
    );
    assert_eq!(head.matches("x-canary-select:").count(), 0, "{head}");
    assert_alive(e, &normal, "repeated select/route/consumer headers");

    // Control bytes in a header value: Envoy refuses them before the filter.
    let r = get(
        e,
        b"/",
        &[("authorization", auth.as_bytes()), ("x-ctl", b"a\x01b")],
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_alive(e, &normal, "control bytes");
}

#[test]
fn access_keys_bearer_tokens_and_queries_under_attack() {
    let digest = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    let s = start(&json!({
        "primary": "v1", "canaries": [{"name": "v2", "percent": 50}],
        "split": {"by": "query", "name": "uid"},
        "auth": {"mode": "access_key", "query": "api_key", "keys": [{"consumer": "ci", "sha256": digest}]}
    }));
    let e = &s.envoy;
    let normal: [(&str, &[u8]); 1] = [("x-api-key", KEY.as_bytes())];
    let r = get(
        e,
        b"/",
        &[("x-api-key", KEY.as_bytes()), ("x-api-key", KEY.as_bytes())],
    );
    assert_refused(&r, 401, "malformed_credentials", "two access-key headers");
    assert_alive(e, &normal, "two access-key headers");
    // Broken percent-encoding: kept as it is, hashed as bytes.
    for q in ["uid=%zz%", "uid=%", "uid=%f", "uid=a%2", "uid=%%%"] {
        let path = format!("/p?{q}");
        let r = get(e, path.as_bytes(), &normal);
        let key = &q[4..];
        assert_eq!(
            r.upstream(),
            Some(expected_upstream(key, 0, "v1", &[("v2", 50.0)])),
            "{q}"
        );
    }
    let r = get(e, b"/p?api_key=%zz", &[]);
    assert_refused(&r, 401, "invalid_credentials", "broken escape in the key");
    assert_alive(e, &normal, "broken query escapes");
    drop(s);

    let jwks: Value = serde_json::from_str(include_str!("fixtures/oauth2/jwks.json")).unwrap();
    let s = start(&json!({
        "primary": "v1",
        "auth": {"mode": "oauth2", "issuer": "https://idp.example.com", "audiences": ["models"], "jwks": jwks}
    }));
    let tokens: Value = serde_json::from_str(include_str!("fixtures/oauth2/tokens.json")).unwrap();
    let good = format!("Bearer {}", tokens["tokens"]["eddsa"].as_str().unwrap());
    let normal: [(&str, &[u8]); 1] = [("authorization", good.as_bytes())];
    let huge = format!(
        "Bearer {}.{}.{}",
        "a".repeat(50_000),
        "b".repeat(50_000),
        "c".repeat(10)
    );
    let r = get(&s.envoy, b"/", &[("authorization", huge.as_bytes())]);
    assert_refused(&r, 401, "malformed_token", "a 100 KB bearer token");
    let r = get(
        &s.envoy,
        b"/",
        &[
            ("authorization", good.as_bytes()),
            ("authorization", good.as_bytes()),
        ],
    );
    assert_refused(&r, 401, "malformed_token", "two bearer tokens");
    assert_alive(&s.envoy, &normal, "huge and repeated bearer tokens");
}

/// HTTP/2 (h2c, prior knowledge) with several `cookie` headers, as browsers send them.
#[test]
fn h2c_requests_with_several_cookie_headers() {
    let s = start(&json!({
        "primary": "v1", "canaries": [{"name": "v2", "percent": 50}],
        "split": {"by": "cookie", "name": "uid"}
    }));
    let curl = Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|o| o.status.success()),
        "curl is needed for the h2c test (apt-get install curl)"
    );
    for key in ["alpha", "bravo", "charlie", "delta"] {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "--http2-prior-knowledge",
                "--max-time",
                "10",
            ])
            .args([
                "-H",
                "cookie: a=1",
                "-H",
                &format!("cookie: uid={key}"),
                "-H",
                "cookie: z=2",
            ])
            .arg(format!("http://127.0.0.1:{}/", s.envoy.port()))
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(head.starts_with("http/2 200"), "{head}");
        let want = expected_upstream(key, 0, "v1", &[("v2", 50.0)]);
        assert!(
            head.contains(&format!("x-raw-upstream: {want}")),
            "{key}: {head}"
        );
    }
    assert_alive(&s.envoy, &[], "h2c");
}
