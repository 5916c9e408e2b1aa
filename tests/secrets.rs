//! Secrets given by reference to an environment variable of the VM
//! (`{"env": "NAME"}`), in a real Envoy: the filter reads them through WASI
//! from `vm_config.environment_variables`, either set inline (`key_values`) or
//! taken from Envoy's own environment (`host_env_keys`, what Istio's
//! `vmConfig.env` with `valueFrom: HOST` configures). A value taken from the
//! host is neither in Envoy's log (the filter at debug level) nor in its
//! `/config_dump`; a missing variable is a configuration error that names it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Once;
use std::thread;

use common::{EchoUpstream, Envoy};
use serde_json::{json, Value};

/// Values the tests put into this process's environment, which Envoy inherits.
const CLIENT_SECRET_VAR: &str = "CANARY_GATE_TEST_IDP_CLIENT_SECRET";
const CLIENT_SECRET: &str = "cg-test-client-secret-Zq8wX1vK";
const HS256_VAR: &str = "CANARY_GATE_TEST_JWT_HS256_SECRET";
/// The fixture tokens' HS256 secret (tests/fixtures/oauth2/tokens.json).
const HS256_SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const TOKENS: &str = include_str!("fixtures/oauth2/tokens.json");

fn set_environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var(CLIENT_SECRET_VAR, CLIENT_SECRET);
        std::env::set_var(HS256_VAR, HS256_SECRET);
        // The filter's debug lines too: nothing at any level may show a secret.
        std::env::set_var("CANARY_GATE_ENVOY_COMPONENT_LOG_LEVEL", "wasm:debug");
    });
}

fn wasm() -> String {
    std::env::var("CANARY_GATE_WASM").unwrap_or_else(|_| {
        panic!("CANARY_GATE_WASM is not set; run the tests with scripts/test.sh")
    })
}

/// A bootstrap with the filter (`plugin` configuration, `environment` as the
/// VM's `environment_variables`) routing on `x-canary-upstream` to `clusters`.
fn bootstrap(plugin: &Value, environment: Value, clusters: &[(&str, u16)]) -> String {
    let clusters: Vec<Value> = clusters
        .iter()
        .map(|(name, port)| {
            json!({"name": name, "type": "STATIC", "connect_timeout": "1s",
                   "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                       {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}})
        })
        .collect();
    let filter = json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "canary-gate", "root_id": "canary-gate", "failure_policy": "FAIL_CLOSED",
                "vm_config": {
                    "vm_id": "canary-gate", "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm()}},
                    "environment_variables": environment
                },
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": plugin.to_string()}
            }
        }
    });
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "gateway",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster_header": "x-canary-upstream"}}]}]},
                        "http_filters": [filter, {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
                    }
                }]}]
            }],
            "clusters": clusters
        }
    })
    .to_string()
}

fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// An RFC 7662 endpoint on 127.0.0.1 that answers `active: true` (sub alice)
/// only to a client that authenticates as `gateway` with [`CLIENT_SECRET`],
/// and 401 to anyone else. Runs until the test process ends.
fn introspection_endpoint() -> u16 {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let expected = basic(&format!("gateway:{CLIENT_SECRET}"));
    thread::spawn(move || {
        for req in server.incoming_requests() {
            let authorized = req
                .headers()
                .iter()
                .any(|h| h.field.equiv("authorization") && h.value.as_str() == expected);
            let (status, body) = if authorized {
                (200, r#"{"active":true,"sub":"alice","exp":4102444800}"#)
            } else {
                (401, r#"{"error":"invalid_client"}"#)
            };
            let _ = req.respond(tiny_http::Response::from_string(body).with_status_code(status));
        }
    });
    port
}

fn assert_not_shown(envoy: &Envoy, secret: &str) {
    let dump = envoy.admin_get("/config_dump?include_eds");
    assert!(!dump.contains(secret), "the secret is in /config_dump");
    let log = envoy.log();
    assert!(!log.contains(secret), "the secret is in Envoy's log");
}

#[test]
fn htpasswd_users_from_an_inline_vm_environment_variable() {
    set_environment();
    let v1 = EchoUpstream::start("v1");
    let plugin = json!({"primary": "v1", "split": {"by": "consumer"},
                        "auth": {"mode": "basic", "users": [{"env": "HTPASSWD"}]}});
    // htpasswd -nbs alice secret, with a comment line, as a file would have.
    let environment = json!({"key_values": {
        "HTPASSWD": "# canary-gate users\nalice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"
    }});
    let envoy = Envoy::builder(bootstrap(&plugin, environment, &[v1.cluster()])).start();

    let ok = envoy.get("/", &[("authorization", &basic("alice:secret"))]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.upstream().as_deref(), Some("v1"));
    assert_eq!(
        ok.upstream_header("x-canary-consumer").as_deref(),
        Some("alice")
    );
    let wrong = envoy.get("/", &[("authorization", &basic("alice:Secret"))]);
    assert_eq!(wrong.status, 401);
}

#[test]
fn the_client_secret_from_envoys_environment_is_used_and_never_shown() {
    set_environment();
    let v1 = EchoUpstream::start("v1");
    let idp = introspection_endpoint();
    let plugin = json!({"primary": "v1", "split": {"by": "consumer"}, "auth": {
        "mode": "oauth2",
        "introspection": {"cluster": "idp", "path": "/introspect", "client_id": "gateway",
                          "client_secret": {"env": CLIENT_SECRET_VAR}}
    }});
    let environment = json!({ "host_env_keys": [CLIENT_SECRET_VAR] });
    let envoy = Envoy::builder(bootstrap(
        &plugin,
        environment,
        &[v1.cluster(), ("idp", idp)],
    ))
    .start();

    // The provider answers active only to the right client secret.
    let ok = envoy.get("/", &[("authorization", "Bearer opaque-token-1")]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.upstream_header("x-canary-consumer").as_deref(),
        Some("alice")
    );
    assert_not_shown(&envoy, CLIENT_SECRET);
    // What the dump shows instead: the variable's name.
    let dump = envoy.admin_get("/config_dump");
    assert!(dump.contains(CLIENT_SECRET_VAR), "no reference in the dump");
}

#[test]
fn the_hs256_secret_from_envoys_environment_verifies_tokens_and_is_never_shown() {
    set_environment();
    let v1 = EchoUpstream::start("v1");
    let plugin = json!({"primary": "v1", "auth": {
        "mode": "oauth2", "issuer": "https://idp.example.com", "audiences": ["models"],
        "hs256_secret": {"env": HS256_VAR}
    }});
    let envoy = Envoy::builder(bootstrap(
        &plugin,
        json!({ "host_env_keys": [HS256_VAR] }),
        &[v1.cluster()],
    ))
    .start();
    let tokens: Value = serde_json::from_str(TOKENS).unwrap();
    let token = tokens["tokens"]["hs256_shared_secret"].as_str().unwrap();
    let ok = envoy.get("/", &[("authorization", &format!("Bearer {token}"))]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.upstream_header("x-canary-consumer").as_deref(),
        Some("carol")
    );
    assert_not_shown(&envoy, HS256_SECRET);
}

#[test]
fn a_variable_envoy_does_not_have_is_a_configuration_error_naming_it() {
    set_environment();
    let v1 = EchoUpstream::start("v1");
    let missing = "CANARY_GATE_TEST_NOT_SET";
    let plugin = json!({"primary": "v1", "auth": {
        "mode": "oauth2",
        "introspection": {"cluster": "v1", "path": "/i", "client_id": "gateway",
                          "client_secret": {"env": missing}}
    }});
    // Listed for the VM, but not in Envoy's environment.
    let yaml = bootstrap(
        &plugin,
        json!({ "host_env_keys": [missing] }),
        &[v1.cluster()],
    );
    let failure = match Envoy::builder(yaml.as_str()).try_start() {
        Ok(_) => panic!("Envoy started with a client secret from an unset variable"),
        Err(f) => f,
    };
    let line = format!(
        "canary-gate: invalid configuration: auth.introspection.client_secret: environment variable {missing} is not set"
    );
    assert!(failure.log.contains(&line), "{failure}");
}
