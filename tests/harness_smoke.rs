//! Tests of the integration-test harness itself (Envoy without the filter): routing by the
//! route header, readiness, port discovery, teardown, and reporting of a refused bootstrap.
mod common;

use common::{EchoUpstream, Envoy, Launch, Options};
use std::time::Duration;

#[test]
fn routes_by_header_to_the_named_echo_upstream() {
    let v1 = EchoUpstream::start("model-v1");
    let v2 = EchoUpstream::start("model-v2");
    let envoy = Envoy::start_with(&Options::without_wasm(&[v1.cluster(), v2.cluster()]));

    assert_eq!(envoy.admin_get("/ready").trim(), "LIVE");

    for name in ["model-v1", "model-v2"] {
        let r = envoy.get(
            "/v1/chat?x=1",
            &[("x-canary-upstream", name), ("X-Test", "Yes")],
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        assert_eq!(body["upstream"], name);
        assert_eq!(body["method"], "GET");
        assert_eq!(body["path"], "/v1/chat?x=1");
        assert_eq!(body["headers"]["x-test"], "Yes");
        assert_eq!(
            r.upstream_header("x-canary-upstream").as_deref(),
            Some(name)
        );
    }

    // Unknown cluster: Envoy answers itself, and the harness hands back the non-2xx response.
    let r = envoy.get("/", &[("x-canary-upstream", "nope")]);
    assert!(r.status >= 400, "{r:?}");
    assert!(r.upstream().is_none());

    let stats = envoy.prometheus();
    assert!(stats.contains("envoy_cluster_upstream_rq_total"), "{stats}");
}

#[test]
fn envoys_run_in_parallel_and_stop_on_drop() {
    let up = EchoUpstream::start("model-v1");
    let a = Envoy::start_with(&Options::without_wasm(&[up.cluster()]));
    let b = Envoy::start_with(&Options::without_wasm(&[up.cluster()]));
    assert_ne!(a.port(), b.port());
    assert_ne!(a.admin_port(), b.admin_port());
    let port = a.port();
    drop(a);
    let r = common::http_request("GET", &format!("http://127.0.0.1:{port}/"), &[], None);
    assert!(r.is_err(), "listener still answers after drop: {r:?}");
    assert_eq!(
        b.get("/", &[("x-canary-upstream", "model-v1")])
            .upstream()
            .as_deref(),
        Some("model-v1")
    );
}

#[test]
fn a_refused_bootstrap_is_reported_with_exit_status_and_log() {
    let mut opts = Options::without_wasm(&[]);
    opts.launch = Launch {
        ready_timeout: Duration::from_secs(10),
        ..Launch::default()
    };
    let mut bootstrap = opts.bootstrap();
    bootstrap["static_resources"]["no_such_field"] = serde_json::json!(1);
    let failure = match Envoy::try_start_yaml(&bootstrap.to_string(), &opts.launch) {
        Ok(_) => panic!("Envoy accepted a bootstrap with an unknown field"),
        Err(f) => f,
    };
    let status = failure.exit_status.expect("Envoy exits on a bad bootstrap");
    assert!(!status.success());
    assert!(failure.log.contains("no_such_field"), "{failure}");
}
