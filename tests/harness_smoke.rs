//! Tests of the integration-test harness itself (Envoy without the filter): routing by the
//! route header, readiness, port discovery, teardown, and reporting of a refused bootstrap.
mod common;

use common::{EchoUpstream, Envoy, Gateway};
use std::time::Duration;

#[test]
fn routes_by_header_to_the_named_echo_upstream() {
    let v1 = EchoUpstream::start("model-v1");
    let v2 = EchoUpstream::start("model-v2");
    let envoy = Envoy::builder(Gateway::without_filter(&[v1.cluster(), v2.cluster()])).start();

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
    let a = Envoy::builder(Gateway::without_filter(&[up.cluster()])).start();
    let b = Envoy::builder(Gateway::without_filter(&[up.cluster()])).start();
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
    let mut bootstrap = Gateway::without_filter(&[]).to_json();
    bootstrap["static_resources"]["no_such_field"] = serde_json::json!(1);
    let failure = match Envoy::builder(bootstrap)
        .ready_timeout(Duration::from_secs(10))
        .try_start()
    {
        Ok(_) => panic!("Envoy accepted a bootstrap with an unknown field"),
        Err(f) => f,
    };
    let status = failure.exit_status.expect("Envoy exits on a bad bootstrap");
    assert!(!status.success());
    assert!(failure.log.contains("no_such_field"), "{failure}");
}

#[test]
fn the_builder_options_reach_envoys_command_line() {
    let up = EchoUpstream::start("model-v1");
    let envoy = Envoy::builder(Gateway::without_filter(&[up.cluster()]))
        .concurrency(2)
        .log_level("warning")
        .component_log_level("wasm:debug")
        .arg("--drain-time-s")
        .arg("3")
        .start();
    let info: serde_json::Value = serde_json::from_str(&envoy.admin_get("/server_info")).unwrap();
    let opts = &info["command_line_options"];
    assert_eq!(opts["concurrency"], 2, "{opts}");
    assert_eq!(opts["log_level"], "warning", "{opts}");
    assert_eq!(opts["component_log_level"], "wasm:debug", "{opts}");
    assert_eq!(opts["drain_time"], "3s", "{opts}");
    // A uint64, which protobuf's JSON mapping writes as a string.
    let base_id = opts["base_id"].as_str().unwrap_or_default();
    assert!(base_id.parse::<u64>().is_ok_and(|id| id > 0), "{opts}");
}
