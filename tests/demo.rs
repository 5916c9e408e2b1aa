//! The README's main command, as a user runs it: `scripts/run.sh --check` builds the filter,
//! starts the demo gateway, sends the demo requests, checks the answers and stops Envoy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::Command;

/// Ports that were free a moment ago (the demo needs fixed ports in its config).
fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

#[test]
fn the_demo_gateway_serves_the_split_stickiness_select_auth_and_metrics() {
    let p = free_ports(5);
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run.sh"))
        .arg("--check")
        .env("PORT", p[0].to_string())
        .env("MODEL_V1_PORT", p[1].to_string())
        .env("MODEL_V2_PORT", p[2].to_string())
        .env("MODEL_V3_PORT", p[3].to_string())
        .env("ADMIN_PORT", p[4].to_string())
        .output()
        .expect("scripts/run.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/run.sh --check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in [
        "ok:   sticky: user-42 always got",
        "ok:   select: model-v3 answered",
        "ok:   auth: no key -> 401",
        "demo check passed",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
}
