//! Gateways through a real Envoy: many endpoints in one filter, chosen by host and then by
//! the longest path prefix on a segment boundary, after path normalization; each with its own
//! auth, upstreams and split; what an unmatched request gets; labelled metrics read with the
//! demo's extractors and with Istio's.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::oracle::expected_upstream;
use common::raw::{self, RawResp, RawUpstream};
use common::{Envoy, Gateway};
use serde_json::{json, Value};
use sha2::Digest;

const KEY: &str = "fraud-key-0123456789";
const UPSTREAMS: [&str; 7] = [
    "fraud-v1", "fraud-v2", "admin-v1", "chat-v3", "chat-v4", "open-v1", "fallback",
];

fn config(unmatched: &str) -> Value {
    let digest = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    json!({
        "unmatched": unmatched,
        "response_header": "x-served-by",
        "gateways": [
            {"name": "fraud", "hosts": ["models.example.com"], "path_prefix": "/fraud",
             "strip_prefix": true, "primary": "fraud-v1",
             "canaries": [{"name": "fraud-v2", "percent": 50}],
             "split": {"by": "header", "name": "x-user-id"}, "select_header": "x-canary-select",
             "auth": {"mode": "access_key", "keys": [{"consumer": "ci", "sha256": digest}]}},
            {"name": "admin", "hosts": ["models.example.com"], "path_prefix": "/fraud/admin",
             "primary": "admin-v1",
             "auth": {"mode": "access_key", "keys": [{"consumer": "ops", "sha256": digest}]}},
            {"name": "pub", "hosts": ["models.example.com"], "path_prefix": "/pub",
             "primary": "open-v1"},
            {"name": "chat", "hosts": ["*.chat.example.com", "chat.example.com"],
             "primary": "chat-v3", "canaries": [{"name": "chat-v4", "percent": 0}],
             "select_header": "x-canary-select"},
            {"name": "open", "hosts": ["*"], "path_prefix": "/open", "primary": "open-v1"}
        ]
    })
}

struct Setup {
    envoy: Envoy,
    _upstreams: Vec<RawUpstream>,
}

/// Envoy with the filter, one raw upstream per cluster, and (for `unmatched: pass`) a second
/// route: requests without the route header go to `fallback`.
fn start(config: &Value, stats_tags: Option<Value>) -> Setup {
    let upstreams: Vec<RawUpstream> = UPSTREAMS.iter().map(|n| RawUpstream::start(n)).collect();
    let clusters: Vec<(&str, u16)> = upstreams.iter().map(RawUpstream::cluster).collect();
    let mut bootstrap = Gateway::new(config, &clusters).to_json();
    let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    hcm["route_config"]["virtual_hosts"][0]["routes"] = json!([
        {"match": {"prefix": "/", "headers": [{"name": "x-canary-upstream", "present_match": true}]},
         "route": {"cluster_header": "x-canary-upstream"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "fallback"}}
    ]);
    if let Some(tags) = stats_tags {
        bootstrap["stats_config"]["stats_tags"] = tags;
    }
    Setup {
        envoy: Envoy::builder(bootstrap).start(),
        _upstreams: upstreams,
    }
}

fn get(envoy: &Envoy, host: &str, path: &str, headers: &[(&str, &str)]) -> RawResp {
    let mut h: Vec<(&str, &[u8])> = vec![("host", host.as_bytes())];
    h.extend(headers.iter().map(|(k, v)| (*k, v.as_bytes())));
    raw::get(envoy.port(), path.as_bytes(), &h)
}

/// The request line the upstream received (its first line).
fn forwarded_path(r: &RawResp) -> String {
    let line = String::from_utf8_lossy(&r.body)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    line.split(' ').nth(1).unwrap_or_default().to_owned()
}

fn assert_status(r: &RawResp, status: u16, reason: Option<&str>, what: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    if let Some(reason) = reason {
        assert_eq!(r.reason().as_deref(), Some(reason), "{what}: {r:?}");
        assert!(r.upstream().is_none(), "{what}: reached an upstream");
    }
}

#[test]
fn hosts_then_paths_choose_the_gateway() {
    let s = start(&config("deny"), None);
    let e = &s.envoy;
    let key = [("x-api-key", KEY)];
    // Exact host, any case, port and one trailing dot ignored; strip_prefix.
    for host in [
        "models.example.com",
        "MODELS.Example.com:8080",
        "models.example.com.",
    ] {
        let r = get(
            e,
            host,
            "/fraud/score?x=1",
            &[("x-api-key", KEY), ("x-user-id", "u1")],
        );
        assert_eq!(r.status, 200, "{host}: {r:?}");
        assert_eq!(
            r.upstream(),
            Some(expected_upstream(
                "u1",
                0,
                "fraud-v1",
                &[("fraud-v2", 50.0)]
            ))
        );
        assert_eq!(forwarded_path(&r), "/score?x=1", "strip_prefix");
    }
    let r = get(e, "models.example.com", "/fraud", &key);
    assert_eq!(forwarded_path(&r), "/", "the prefix alone becomes /");
    // The longest prefix on a segment boundary; no strip there.
    let r = get(e, "models.example.com", "/fraud/admin/users", &key);
    assert_eq!(
        (r.upstream(), forwarded_path(&r).as_str()),
        (Some("admin-v1"), "/fraud/admin/users")
    );
    assert_status(
        &get(e, "models.example.com", "/fraudulent", &key),
        404,
        Some("no_gateway"),
        "segment boundary",
    );
    // Wildcards: any depth, but not the bare domain; the exact pattern is its own.
    for host in [
        "a.chat.example.com",
        "a.b.chat.example.com",
        "chat.example.com",
    ] {
        assert_eq!(
            get(e, host, "/v1/chat", &[]).upstream(),
            Some("chat-v3"),
            "{host}"
        );
    }
    assert_status(
        &get(e, "example.com", "/v1/chat", &[]),
        404,
        Some("no_gateway"),
        "*.chat.example.com is not example.com",
    );
    // `*` takes other hosts, for its own prefix only.
    assert_eq!(
        get(e, "elsewhere.org", "/open/1", &[]).upstream(),
        Some("open-v1")
    );
    assert_status(
        &get(e, "elsewhere.org", "/fraud", &[]),
        404,
        Some("no_gateway"),
        "no such prefix under *",
    );
    // The host is chosen first: no fallback from models.example.com to `*`.
    assert_status(
        &get(e, "models.example.com", "/open/1", &[]),
        404,
        Some("no_gateway"),
        "no fallback",
    );
}

#[test]
fn no_path_trick_reaches_a_more_permissive_gateway() {
    let s = start(&config("deny"), None);
    let e = &s.envoy;
    // Each of these is /fraud... once normalized: the fraud gateway's key is required.
    for path in [
        "/pub/../fraud/score",
        "//fraud/score",
        "/%66raud/score",
        "/%2e%2e/fraud",
        "/./fraud",
        "/pub/%2E%2E/fraud",
    ] {
        let r = get(e, "models.example.com", path, &[]);
        assert_status(&r, 401, Some("missing_credentials"), path);
        let r = get(e, "models.example.com", path, &[("x-api-key", KEY)]);
        assert!(
            r.upstream().is_some_and(|u| u.starts_with("fraud-")),
            "{path}: {r:?}"
        );
    }
    // Encoded slashes and backslashes are ambiguous: 400 before any matching.
    for path in [
        "/fraud%2Fscore",
        "/pub%2f..%2ffraud",
        "/pub%5C..%5Cfraud",
        "/fraud%2fscore",
    ] {
        assert_status(
            &get(e, "models.example.com", path, &[]),
            400,
            Some("ambiguous_path"),
            path,
        );
    }
    let prom = e.prometheus();
    assert!(
        prom.contains("canary_gate_bad_path{} 4") || prom.contains("canary_gate_bad_path 4"),
        "{prom}"
    );
}

#[test]
fn each_gateway_authenticates_and_selects_on_its_own() {
    let s = start(&config("deny"), None);
    let e = &s.envoy;
    // The fraud key opens fraud, and admin only because admin lists it too; pub needs none
    // and leaves the key header alone (not its business).
    let r = get(e, "models.example.com", "/pub/x", &[("x-api-key", KEY)]);
    assert_eq!(r.upstream(), Some("open-v1"));
    assert_eq!(r.upstream_saw("x-api-key").as_deref(), Some(KEY.as_bytes()));
    assert_eq!(r.upstream_saw("x-canary-consumer"), None);
    let r = get(
        e,
        "models.example.com",
        "/fraud/admin",
        &[("x-api-key", KEY)],
    );
    assert_eq!(
        r.upstream_saw("x-canary-consumer").as_deref(),
        Some(&b"ops"[..])
    );
    // A key no gateway lists is refused.
    assert_status(
        &get(
            e,
            "models.example.com",
            "/fraud",
            &[("x-api-key", "other-key")],
        ),
        401,
        Some("invalid_credentials"),
        "unknown key",
    );
    // The select header picks only among the gateway's own upstreams.
    let r = get(
        e,
        "chat.example.com",
        "/",
        &[("x-canary-select", "fraud-v2")],
    );
    assert_eq!(
        r.upstream(),
        Some("chat-v3"),
        "another gateway's upstream is ignored"
    );
    assert_eq!(r.upstream_saw("x-canary-select"), None);
    let r = get(
        e,
        "chat.example.com",
        "/",
        &[("x-canary-select", "chat-v4")],
    );
    assert_eq!(r.upstream(), Some("chat-v4"));
    // A route header sent by the client is overwritten.
    let r = get(
        e,
        "chat.example.com",
        "/",
        &[("x-canary-upstream", "fraud-v2")],
    );
    assert_eq!(r.upstream(), Some("chat-v3"));
}

#[test]
fn unmatched_requests_are_denied_or_passed_without_route_or_identity() {
    let s = start(&config("deny"), None);
    let r = get(
        &s.envoy,
        "nowhere.org",
        "/x",
        &[("x-canary-upstream", "fraud-v1")],
    );
    assert_status(&r, 404, Some("no_gateway"), "deny");
    assert_eq!(
        r.body,
        br#"{"error":"not_found","reason":"no_gateway"}"#.to_vec()
    );
    drop(s);

    let s = start(&config("pass"), None);
    let forged = [
        ("x-canary-upstream", "fraud-v1"),
        ("x-canary-consumer", "admin"),
    ];
    let r = get(&s.envoy, "nowhere.org", "/x", &forged);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.upstream(),
        Some("fallback"),
        "no route header: the route's fallback"
    );
    assert_eq!(r.upstream_saw("x-canary-upstream"), None);
    assert_eq!(r.upstream_saw("x-canary-consumer"), None);
    assert_eq!(r.header("x-served-by"), None);
    // Ambiguous paths are refused whatever `unmatched` says.
    assert_status(
        &get(&s.envoy, "nowhere.org", "/a%2fb", &[]),
        400,
        Some("ambiguous_path"),
        "pass",
    );
    let prom = s.envoy.prometheus();
    assert!(
        prom.lines()
            .any(|l| l.starts_with("canary_gate_unmatched") && l.ends_with(" 1")),
        "{prom}"
    );
}

/// The same labelled series with the demo's extractors and with the ones Istio generates
/// for `extraStatTags: [gateway, upstream, reason, class]`.
#[test]
fn metrics_carry_the_gateway_with_the_demo_and_istio_extractors() {
    for tags in [None, Some(common::bootstrap::istio_stats_tags())] {
        let istio = tags.is_some();
        let s = start(&config("deny"), tags);
        let e = &s.envoy;
        get(e, "chat.example.com", "/", &[]);
        get(e, "chat.example.com", "/", &[]);
        get(e, "models.example.com", "/fraud", &[]);
        get(
            e,
            "models.example.com",
            "/fraud/admin",
            &[("x-api-key", KEY)],
        );
        get(e, "nowhere.org", "/", &[]);
        let prom = e.prometheus();
        for line in [
            "canary_gate_requests{gateway=\"chat\",upstream=\"chat-v3\"} 2",
            "canary_gate_requests{gateway=\"chat\",upstream=\"chat-v4\"} 0",
            "canary_gate_auth_denied{gateway=\"fraud\",reason=\"missing_credentials\"} 1",
            "canary_gate_auth_allowed{gateway=\"admin\"} 1",
            "canary_gate_requests{gateway=\"admin\",upstream=\"admin-v1\"} 1",
        ] {
            assert!(
                prom.contains(line),
                "istio extractors: {istio}: missing `{line}` in:\n{prom}"
            );
        }
        assert!(
            prom.lines()
                .any(|l| l.starts_with("canary_gate_unmatched") && l.ends_with(" 1")),
            "istio extractors: {istio}:\n{prom}"
        );
        assert!(
            !prom.contains("gateway___"),
            "a label left in a name:\n{prom}"
        );
    }
}

#[test]
fn a_duplicate_host_and_prefix_is_refused_naming_the_gateway() {
    let mut cfg = config("deny");
    cfg["gateways"][4]["hosts"] = json!(["Models.Example.com"]);
    cfg["gateways"][4]["path_prefix"] = json!("/pub");
    let upstreams: Vec<RawUpstream> = UPSTREAMS.iter().map(|n| RawUpstream::start(n)).collect();
    let clusters: Vec<(&str, u16)> = upstreams.iter().map(RawUpstream::cluster).collect();
    let failure = match Envoy::builder(Gateway::new(&cfg, &clusters)).try_start() {
        Ok(envoy) => panic!("accepted a duplicate; log:\n{}", envoy.log()),
        Err(f) => f,
    };
    let needle = "canary-gate: invalid configuration: gateways[4]: host \"Models.Example.com\" with path_prefix \"/pub\" is already used by gateways[2]";
    assert!(
        failure.log.contains(needle),
        "no `{needle}` in:\n{}",
        failure.log
    );
}
