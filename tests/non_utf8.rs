//! Header bytes that are not UTF-8, through a real Envoy at `--concurrency 1` (one worker, so
//! a VM that died cannot hide behind a healthy one): each request gets its defined answer,
//! Envoy's log shows no panic, and the next normal request still gets 200.
//!
//! HTTP allows obs-text (bytes 0x80-0xFF) in header values and Envoy forwards them; the
//! filter reads headers as bytes and decides what such a value means:
//! - the header that carries the configured credential is malformed: 401 with the mode's
//!   `malformed_credentials` / `malformed_token` reason;
//! - a split key (header, cookie, query) is hashed over its raw bytes;
//! - a select header that is not exactly a configured name is ignored (and removed);
//! - any other header is left alone, byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use base64::Engine;
use common::oracle::expected_upstream;
use common::raw::{self, RawResp, RawUpstream};
use common::{Envoy, Gateway};
use serde_json::{json, Value};
use sha2::Digest;

const PASSWORD: &str = "s3cret";
const KEY: &str = "key-0123456789";

/// Six split keys that are not UTF-8; between them they reach both upstreams of a 50/50 split.
const BAD_KEYS: [&[u8]; 6] = [
    b"\xff\xfe\x80abc",
    b"\xc3\x28",
    b"user-\xa0\xa1",
    b"\x80",
    b"\xed\xa0\x80",
    b"\xf8\x88\x80\x80\x80",
];

fn basic_header() -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    format!("Basic {b64}").into_bytes()
}

fn sha1_b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
}

fn split(by: Value) -> Value {
    json!({
        "primary": "v1",
        "canaries": [{"name": "v2", "percent": 50}],
        "split": by,
        "select_header": "x-canary-select",
        "response_header": "x-served-by",
    })
}

fn with_auth(mut config: Value, auth: Value) -> Value {
    config["auth"] = auth;
    config
}

fn expected(key: &[u8]) -> &'static str {
    expected_upstream(key, 0, "v1", &[("v2", 50.0)])
}

/// No panic in the log, and a normal request still gets 200 from an upstream.
fn assert_alive(envoy: &Envoy, normal: &[(&str, &[u8])], after: &str) {
    let r = raw::get(envoy.port(), b"/", normal);
    assert_eq!(
        r.status, 200,
        "after {after}: the next normal request failed: {r:?}"
    );
    assert!(r.upstream().is_some(), "after {after}: {r:?}");
    let log = envoy.log();
    for sign in [
        "panicked",
        "Uncaught",
        "unreachable",
        "Plugin configured to fail closed",
    ] {
        assert!(
            !log.contains(sign),
            "after {after}: `{sign}` in Envoy's log:\n{log}"
        );
    }
}

fn assert_refused(r: &RawResp, reason: &str, what: &str) {
    assert_eq!(r.status, 401, "{what}: {r:?}");
    assert_eq!(r.reason().as_deref(), Some(reason), "{what}: {r:?}");
    assert!(
        r.upstream().is_none(),
        "{what}: a refused request reached an upstream"
    );
}

fn counter(prom: &str, line_start: &str) -> u64 {
    prom.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{line_start}` in:\n{prom}"))
}

/// The attack of the report (Basic auth, cookie split), and every other header role.
#[test]
fn basic_auth_and_cookie_split() {
    let v1 = RawUpstream::start("v1");
    let v2 = RawUpstream::start("v2");
    let config = with_auth(
        split(json!({"by": "cookie", "name": "uid"})),
        json!({"mode": "basic", "users": [format!("alice:{{SHA}}{}", sha1_b64(PASSWORD))]}),
    );
    let envoy = Envoy::builder(Gateway::new(&config, &[v1.cluster(), v2.cluster()])).start();
    let auth = basic_header();
    let port = envoy.port();
    let normal: [(&str, &[u8]); 1] = [("authorization", &auth)];

    // The credential header: malformed, without and with a valid credential elsewhere.
    for value in [
        &b"Basic \xff\xfe"[..],
        b"\xff\xfe",
        b"Basic YWxpY2U6czNjcmV0\xff",
    ] {
        let r = raw::get(port, b"/", &[("authorization", value)]);
        assert_refused(&r, "malformed_credentials", "non-UTF-8 authorization");
        assert_alive(&envoy, &normal, "non-UTF-8 authorization");
    }

    // The split cookie: hashed over its bytes, with and without valid credentials.
    for key in BAD_KEYS {
        let cookie = [b"a=1; uid=".as_slice(), key, b"; z=2"].concat();
        let r = raw::get(port, b"/", &[("authorization", &auth), ("cookie", &cookie)]);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.upstream(), Some(expected(key)), "cookie key {key:?}");
        assert_eq!(r.header("x-served-by"), Some(expected(key)));
        assert_eq!(r.upstream_saw("cookie").as_deref(), Some(cookie.as_slice()));
        let r = raw::get(port, b"/", &[("cookie", &cookie)]);
        assert_refused(
            &r,
            "missing_credentials",
            "non-UTF-8 cookie, no credentials",
        );
        assert_alive(&envoy, &normal, "non-UTF-8 cookie");
    }
    let served: std::collections::BTreeSet<_> = BAD_KEYS.iter().map(|k| expected(k)).collect();
    assert_eq!(served.len(), 2, "the keys should reach both upstreams");

    // The select header: not exactly a configured name, so ignored; removed either way.
    let key = BAD_KEYS.iter().find(|k| expected(k) == "v1").unwrap();
    let cookie = [b"uid=".as_slice(), key].concat();
    for select in [&b"v2\xff"[..], b"\xffv2", b"\xff"] {
        let r = raw::get(
            port,
            b"/",
            &[
                ("authorization", &auth),
                ("cookie", &cookie),
                ("x-canary-select", select),
            ],
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.upstream(),
            Some("v1"),
            "select {select:?} must be ignored"
        );
        assert_eq!(r.upstream_saw("x-canary-select"), None);
        assert_alive(&envoy, &normal, "non-UTF-8 select header");
    }

    // Any other header is not the filter's business: forwarded byte for byte.
    let junk: &[u8] = b"\xff\xfe\x80 and more \xc0";
    let r = raw::get(port, b"/", &[("authorization", &auth), ("x-junk", junk)]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.upstream_saw("x-junk").as_deref(), Some(junk));
    let r = raw::get(port, b"/", &[("x-junk", junk)]);
    assert_refused(
        &r,
        "missing_credentials",
        "unrelated non-UTF-8 header, no credentials",
    );
    assert_alive(&envoy, &normal, "unrelated non-UTF-8 header");

    let prom = envoy.prometheus();
    assert_eq!(
        counter(
            &prom,
            "canary_gate_auth_denied{gateway=\"default\",reason=\"malformed_credentials\"}"
        ),
        3
    );
}

/// Host and path with bytes that are not UTF-8, with and without credentials.
#[test]
fn host_and_path() {
    let v1 = RawUpstream::start("v1");
    let v2 = RawUpstream::start("v2");
    let config = with_auth(
        split(json!({"by": "query", "name": "uid"})),
        json!({"mode": "basic", "users": [format!("alice:{{SHA}}{}", sha1_b64(PASSWORD))]}),
    );
    let envoy = Envoy::builder(Gateway::new(&config, &[v1.cluster(), v2.cluster()])).start();
    let auth = basic_header();
    let port = envoy.port();
    let normal: [(&str, &[u8]); 1] = [("authorization", &auth)];

    // A host Envoy itself refuses never reaches the filter.
    for host in [&b"gw\xff"[..], b"\xc3\x28.example.com"] {
        let r = raw::get(port, b"/", &[("host", host), ("authorization", &auth)]);
        assert_eq!(r.status, 400, "host {host:?}: {r:?}");
        assert!(r.upstream().is_none());
        assert_alive(&envoy, &normal, "non-UTF-8 host");
    }

    // Percent-encoded key bytes that are not UTF-8: decoded and hashed as bytes.
    for key in BAD_KEYS {
        let encoded: String = key.iter().map(|b| format!("%{b:02X}")).collect();
        let path = format!("/predict?x=1&uid={encoded}");
        let r = raw::get(port, path.as_bytes(), &normal);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.upstream(), Some(expected(key)), "query key {key:?}");
        let r = raw::get(port, path.as_bytes(), &[]);
        assert_refused(
            &r,
            "missing_credentials",
            "non-UTF-8 query key, no credentials",
        );
        assert_alive(&envoy, &normal, "non-UTF-8 query key");
    }

    // Raw bytes over 0x7F in the request target.
    let path: &[u8] = b"/pre\xffdict?uid=\xff\xfe";
    let r = raw::get(port, path, &normal);
    assert_eq!(r.status, 400, "raw non-ASCII path: {r:?}");
    assert_alive(&envoy, &normal, "non-UTF-8 path");
}

/// Access keys: the key header and the key query parameter are credentials.
#[test]
fn access_key_and_header_split() {
    let v1 = RawUpstream::start("v1");
    let v2 = RawUpstream::start("v2");
    let digest = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    let config = with_auth(
        split(json!({"by": "header", "name": "x-user"})),
        json!({"mode": "access_key", "query": "api_key",
               "keys": [{"consumer": "ci", "sha256": digest}]}),
    );
    let envoy = Envoy::builder(Gateway::new(&config, &[v1.cluster(), v2.cluster()])).start();
    let port = envoy.port();
    let normal: [(&str, &[u8]); 1] = [("x-api-key", KEY.as_bytes())];

    let bad_key = [KEY.as_bytes(), b"\xff"].concat();
    let r = raw::get(port, b"/", &[("x-api-key", &bad_key)]);
    assert_refused(&r, "malformed_credentials", "non-UTF-8 access-key header");
    assert_alive(&envoy, &normal, "non-UTF-8 access-key header");

    let path = format!("/p?api_key={KEY}%FF");
    let r = raw::get(port, path.as_bytes(), &[]);
    assert_refused(
        &r,
        "malformed_credentials",
        "non-UTF-8 access key in the query",
    );
    assert_alive(&envoy, &normal, "non-UTF-8 access key in the query");

    for key in BAD_KEYS {
        let r = raw::get(
            port,
            b"/",
            &[("x-api-key", KEY.as_bytes()), ("x-user", key)],
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.upstream(), Some(expected(key)), "header key {key:?}");
        assert_eq!(r.upstream_saw("x-user").as_deref(), Some(key));
        assert_eq!(r.upstream_saw("x-api-key"), None, "the key is stripped");
        let r = raw::get(port, b"/", &[("x-user", key)]);
        assert_refused(&r, "missing_credentials", "non-UTF-8 split header, no key");
        assert_alive(&envoy, &normal, "non-UTF-8 split header");
    }

    let prom = envoy.prometheus();
    assert_eq!(
        counter(
            &prom,
            "canary_gate_auth_denied{gateway=\"default\",reason=\"malformed_credentials\"}"
        ),
        2
    );
}

/// OAuth2: a bearer token that is not UTF-8 is a malformed token.
#[test]
fn oauth2_bearer() {
    let v1 = RawUpstream::start("v1");
    let v2 = RawUpstream::start("v2");
    let jwks: Value = serde_json::from_str(include_str!("fixtures/oauth2/jwks.json")).unwrap();
    let tokens: Value = serde_json::from_str(include_str!("fixtures/oauth2/tokens.json")).unwrap();
    let token = tokens["tokens"]["eddsa"].as_str().unwrap();
    let config = with_auth(
        split(json!({"by": "consumer"})),
        json!({"mode": "oauth2", "issuer": "https://idp.example.com",
               "audiences": ["models"], "jwks": jwks}),
    );
    let envoy = Envoy::builder(Gateway::new(&config, &[v1.cluster(), v2.cluster()])).start();
    let port = envoy.port();
    let bearer = format!("Bearer {token}").into_bytes();
    let normal: [(&str, &[u8]); 1] = [("authorization", &bearer)];

    let bad = [b"Bearer ".as_slice(), token.as_bytes(), b"\xff"].concat();
    for value in [&b"Bearer \xff.\xfe.\x80"[..], &bad] {
        let r = raw::get(port, b"/", &[("authorization", value)]);
        assert_refused(&r, "malformed_token", "non-UTF-8 bearer token");
        assert_alive(&envoy, &normal, "non-UTF-8 bearer token");
    }
    let r = raw::get(
        port,
        b"/",
        &[("authorization", &bearer), ("x-junk", b"\xff")],
    );
    assert_eq!(
        (r.status, r.upstream()),
        (200, Some(expected(b"alice"))),
        "{r:?}"
    );
    assert_alive(&envoy, &normal, "unrelated non-UTF-8 header");
}

/// No authentication: no header is the filter's business but the split key.
#[test]
fn no_auth() {
    let v1 = RawUpstream::start("v1");
    let v2 = RawUpstream::start("v2");
    let envoy = Envoy::builder(Gateway::new(
        &split(json!({"by": "header", "name": "x-user"})),
        &[v1.cluster(), v2.cluster()],
    ))
    .start();
    let port = envoy.port();
    for (name, value) in [
        ("authorization", &b"Basic \xff\xfe"[..]),
        ("x-api-key", b"\xff"),
        ("cookie", b"uid=\xff\xfe\x80abc"),
        ("x-junk", b"\x80\x81"),
    ] {
        let r = raw::get(port, b"/", &[(name, value), ("x-user", b"\xff")]);
        assert_eq!(r.status, 200, "{name}: {r:?}");
        assert_eq!(r.upstream(), Some(expected(b"\xff")));
        assert_eq!(
            r.upstream_saw(name).as_deref(),
            Some(value),
            "{name} is left alone"
        );
        assert_alive(&envoy, &[], name);
    }
}
