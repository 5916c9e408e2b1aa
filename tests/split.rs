//! The traffic split as a user sees it through a real Envoy: which upstream answered,
//! and what that upstream received.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;

use common::oracle::expected_upstream;
use common::{EchoUpstream, Envoy, Gateway};
use serde_json::json;

struct Models {
    v1: EchoUpstream,
    v2: EchoUpstream,
    v3: EchoUpstream,
}

impl Models {
    fn start() -> Self {
        Models {
            v1: EchoUpstream::start("model-v1"),
            v2: EchoUpstream::start("model-v2"),
            v3: EchoUpstream::start("model-v3"),
        }
    }
    fn clusters(&self) -> Vec<(&str, u16)> {
        vec![self.v1.cluster(), self.v2.cluster(), self.v3.cluster()]
    }
}

/// `n` successes out of `trials` are within 4 standard deviations of a binomial(p).
fn assert_binomial(name: &str, n: u32, trials: u32, p: f64) {
    let mean = f64::from(trials) * p;
    let sigma = (f64::from(trials) * p * (1.0 - p)).sqrt();
    let dev = (f64::from(n) - mean).abs();
    assert!(
        dev <= 4.0 * sigma,
        "{name}: {n} of {trials}, expected {mean:.0} ± {:.0} (4 sigma)",
        4.0 * sigma
    );
}

#[test]
fn random_split_matches_the_configured_percentages() {
    let m = Models::start();
    let cfg = json!({
        "primary": "model-v1",
        "canaries": [{"name": "model-v2", "percent": 20}, {"name": "model-v3", "percent": 5}],
        "response_header": "x-served-by"
    });
    let envoy = Envoy::builder(Gateway::new(&cfg, &m.clusters())).start();
    let trials = 4000;
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..trials {
        let r = envoy.get("/predict", &[]);
        assert_eq!(r.status, 200, "{r:?}");
        let up = r.upstream().expect("an echo upstream answered");
        assert_eq!(
            r.header("x-served-by"),
            Some(up.as_str()),
            "response header names the version"
        );
        assert_eq!(
            r.upstream_header("x-canary-upstream").as_deref(),
            Some(up.as_str())
        );
        *counts.entry(up).or_default() += 1;
    }
    let c = |n: &str| counts.get(n).copied().unwrap_or(0);
    assert_binomial("model-v2", c("model-v2"), trials, 0.20);
    assert_binomial("model-v3", c("model-v3"), trials, 0.05);
    assert_binomial("model-v1", c("model-v1"), trials, 0.75);

    // The per-version counters agree with what the upstreams saw.
    let prom = envoy.prometheus();
    for name in ["model-v1", "model-v2", "model-v3"] {
        let line = format!(
            "canary_gate_requests{{gateway=\"default\",upstream=\"{name}\"}} {}",
            c(name)
        );
        assert!(prom.contains(&line), "missing `{line}` in:\n{prom}");
    }
}

const CANARIES: [(&str, f64); 2] = [("model-v2", 30.0), ("model-v3", 12.5)];

fn keyed_config(split: serde_json::Value) -> serde_json::Value {
    json!({
        "primary": "model-v1",
        "canaries": [{"name": "model-v2", "percent": 30}, {"name": "model-v3", "percent": 12.5}],
        "split": split
    })
}

#[test]
fn header_split_follows_the_documented_formula_exactly() {
    let m = Models::start();
    let envoy = Envoy::builder(Gateway::new(
        &keyed_config(json!({"by": "header", "name": "x-user-id", "hash_seed": 42})),
        &m.clusters(),
    ))
    .start();
    let mut seen = HashMap::new();
    for i in 0..300 {
        let user = format!("user-{i}");
        let r = envoy.get("/predict", &[("x-user-id", &user)]);
        let want = expected_upstream(&user, 42, "model-v1", &CANARIES);
        assert_eq!(r.upstream().as_deref(), Some(want), "{user}: {r:?}");
        *seen.entry(want).or_insert(0) += 1;
    }
    assert_eq!(
        seen.len(),
        3,
        "300 users reach all three versions: {seen:?}"
    );
}

#[test]
fn query_and_cookie_splits_follow_the_formula() {
    let m = Models::start();
    let by_query = Envoy::builder(Gateway::new(
        &keyed_config(json!({"by": "query", "name": "uid"})),
        &m.clusters(),
    ))
    .start();
    let by_cookie = Envoy::builder(Gateway::new(
        &keyed_config(json!({"by": "cookie", "name": "uid"})),
        &m.clusters(),
    ))
    .start();
    for i in 0..150 {
        // The key is the decoded value: "user 7ü" is sent percent-encoded.
        let user = format!("user {i}\u{fc}");
        let encoded = format!("user%20{i}%C3%BC");
        let want = expected_upstream(&user, 0, "model-v1", &CANARIES);
        let r = by_query.get(&format!("/predict?a=1&uid={encoded}&b=2"), &[]);
        assert_eq!(r.upstream().as_deref(), Some(want), "query {user}: {r:?}");

        let cookie_user = format!("u-{i}");
        let want = expected_upstream(&cookie_user, 0, "model-v1", &CANARIES);
        let cookie = format!("theme=dark; uid={cookie_user}; lang=en");
        let r = by_cookie.get("/predict", &[("cookie", &cookie)]);
        assert_eq!(
            r.upstream().as_deref(),
            Some(want),
            "cookie {cookie_user}: {r:?}"
        );
    }
}

#[test]
fn a_user_keeps_its_version_across_replicas_and_restarts() {
    let m = Models::start();
    let cfg = keyed_config(json!({"by": "header", "name": "x-user-id"}));
    let a = Envoy::builder(Gateway::new(&cfg, &m.clusters())).start();
    let b = Envoy::builder(Gateway::new(&cfg, &m.clusters())).start();
    let users: Vec<String> = (0..60).map(|i| format!("sticky-{i}")).collect();
    let first: Vec<String> = users
        .iter()
        .map(|u| a.get("/", &[("x-user-id", u)]).upstream().unwrap())
        .collect();
    for (u, want) in users.iter().zip(&first) {
        for _ in 0..3 {
            assert_eq!(
                a.get("/", &[("x-user-id", u)]).upstream().as_ref(),
                Some(want),
                "{u} on replica a"
            );
        }
        assert_eq!(
            b.get("/", &[("x-user-id", u)]).upstream().as_ref(),
            Some(want),
            "{u} on replica b"
        );
    }
    drop(a);
    drop(b);
    let restarted = Envoy::builder(Gateway::new(&cfg, &m.clusters())).start();
    for (u, want) in users.iter().zip(&first) {
        assert_eq!(
            restarted.get("/", &[("x-user-id", u)]).upstream().as_ref(),
            Some(want),
            "{u} after restart"
        );
    }
}

#[test]
fn when_missing_primary_sends_keyless_requests_to_the_primary() {
    let m = Models::start();
    let cfg = json!({
        "primary": "model-v1",
        "canaries": [{"name": "model-v2", "percent": 100}],
        "split": {"by": "header", "name": "x-user-id", "when_missing": "primary"}
    });
    let envoy = Envoy::builder(Gateway::new(&cfg, &m.clusters())).start();
    for _ in 0..50 {
        assert_eq!(envoy.get("/", &[]).upstream().as_deref(), Some("model-v1"));
        assert_eq!(
            envoy.get("/", &[("x-user-id", "")]).upstream().as_deref(),
            Some("model-v1")
        );
    }
    assert_eq!(
        envoy
            .get("/", &[("x-user-id", "anyone")])
            .upstream()
            .as_deref(),
        Some("model-v2")
    );
}

#[test]
fn when_missing_random_splits_keyless_requests() {
    let m = Models::start();
    let cfg = json!({
        "primary": "model-v1",
        "canaries": [{"name": "model-v2", "percent": 50}],
        "split": {"by": "cookie", "name": "uid"}
    });
    let envoy = Envoy::builder(Gateway::new(&cfg, &m.clusters())).start();
    let trials = 400;
    let v2 = (0..trials)
        .filter(|_| envoy.get("/", &[]).upstream().as_deref() == Some("model-v2"))
        .count();
    assert_binomial("model-v2 without key", v2 as u32, trials, 0.5);
}

#[test]
fn a_client_cannot_pick_its_upstream_with_the_route_header() {
    let m = Models::start();
    let cfg = json!({"primary": "model-v1", "canaries": [{"name": "model-v2", "percent": 0}]});
    let envoy = Envoy::builder(Gateway::new(&cfg, &m.clusters())).start();
    for spoof in ["model-v2", "model-v3", "model-v1", "no-such-cluster"] {
        let r = envoy.get("/", &[("x-canary-upstream", spoof)]);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.upstream().as_deref(), Some("model-v1"), "spoofed {spoof}");
        assert_eq!(
            r.upstream_header("x-canary-upstream").as_deref(),
            Some("model-v1")
        );
    }
}

#[test]
fn a_custom_route_header_is_the_one_written() {
    let m = Models::start();
    let cfg = json!({"primary": "model-v1", "canaries": [{"name": "model-v2", "percent": 100}],
                     "route_header": "X-Model-Version"});
    let envoy = Envoy::builder(Gateway::new(&cfg, &m.clusters())).start();
    let r = envoy.get("/", &[("x-model-version", "model-v1")]);
    assert_eq!(r.upstream().as_deref(), Some("model-v2"));
    assert_eq!(
        r.upstream_header("x-model-version").as_deref(),
        Some("model-v2")
    );
}

#[test]
fn the_select_header_picks_a_configured_version_and_nothing_else() {
    let m = Models::start();
    let cfg = json!({
        "primary": "model-v1",
        "canaries": [{"name": "model-v2", "percent": 0}, {"name": "model-v3", "percent": 0}],
        "select_header": "x-canary-select"
    });
    let envoy = Envoy::builder(Gateway::new(&cfg, &m.clusters())).start();
    for want in ["model-v1", "model-v2", "model-v3"] {
        let r = envoy.get("/", &[("x-canary-select", want)]);
        assert_eq!(r.upstream().as_deref(), Some(want));
        assert_eq!(
            r.upstream_header("x-canary-select"),
            None,
            "select header is not forwarded"
        );
    }
    // Unknown or differently-cased values are ignored: the split (all primary) applies.
    for other in ["model-v9", "MODEL-V2", ""] {
        let r = envoy.get("/", &[("x-canary-select", other)]);
        assert_eq!(
            r.upstream().as_deref(),
            Some("model-v1"),
            "select {other:?}"
        );
    }
}
