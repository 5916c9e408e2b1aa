//! `render envoy`: a static Envoy bootstrap running the filter with the
//! configuration, routing on the route header to one cluster per upstream.

use std::net::IpAddr;
use std::path::Path;

use serde_json::{json, Value};

use super::super::args::RenderEnvoyArgs;
use super::super::emit::{yaml_doc, Doc};
use super::super::input::{self, WASM_TYPE};
use super::super::{print_json, Failure, Outcome, Output};
use crate::config::Plan;
use crate::gateway::stats::STATS_TAGS;

const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";

/// `HOST:PORT` (an IPv6 address in brackets).
fn host_port(text: &str, what: &str) -> Result<(String, u16), Failure> {
    let bad = || Failure::usage(format!("{what} {text:?}: expected HOST:PORT"));
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(bad());
    }
    let port = port.parse().map_err(|_| bad())?;
    Ok((host.to_string(), port))
}

fn socket(host: &str, port: u16) -> Value {
    json!({"socket_address": {"address": host, "port_value": port}})
}

/// The bootstrap: `upstreams` gives `(name, host, port)` for every upstream.
pub fn bootstrap(
    plan: &Plan,
    config: &Value,
    wasm: &Path,
    upstreams: &[(String, String, u16)],
    listen: (&str, u16),
    admin: (&str, u16),
) -> Value {
    let header = plan.route_header.as_str();
    let routes = json!([
        {"match": {"prefix": "/", "headers": [{"name": header, "present_match": true}]},
         "route": {"cluster_header": header}},
        {"match": {"prefix": "/"},
         "direct_response": {"status": 404, "body": {"inline_string": "{\"error\":\"not_found\",\"reason\":\"no_route\"}"}}}
    ]);
    let wasm_filter = json!({
        "name": "canary-gate",
        "typed_config": {
            "@type": WASM_TYPE,
            "config": {
                "name": "canary-gate",
                "root_id": "canary-gate",
                "vm_config": {
                    "vm_id": "canary-gate",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm.to_string_lossy()}}
                },
                "configuration": {"@type": STRING_VALUE_TYPE, "value": config.to_string()},
                "failure_policy": "FAIL_CLOSED"
            }
        }
    });
    let clusters: Vec<Value> = upstreams
        .iter()
        .map(|(name, host, port)| {
            let kind = if host.parse::<IpAddr>().is_ok() {
                "STATIC"
            } else {
                "STRICT_DNS"
            };
            json!({
                "name": name,
                "type": kind,
                "connect_timeout": "2s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": socket(host, *port)}}
                ]}]}
            })
        })
        .collect();
    let tags: Vec<Value> = STATS_TAGS
        .iter()
        .map(|(tag, regex)| json!({"tag_name": tag, "regex": regex}))
        .collect();
    json!({
        "admin": {"address": socket(admin.0, admin.1)},
        "stats_config": {"stats_tags": tags},
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": 10000
            }
        }]},
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": socket(listen.0, listen.1),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": HCM_TYPE,
                        "stat_prefix": "gateway",
                        "normalize_path": true,
                        "merge_slashes": true,
                        "route_config": {"name": "gateway", "virtual_hosts": [
                            {"name": "gateway", "domains": ["*"], "routes": routes}
                        ]},
                        "http_filters": [wasm_filter, {
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": ROUTER_TYPE}
                        }]
                    }
                }]}]
            }],
            "clusters": clusters
        }
    })
}

/// Every upstream of every gateway, in order of appearance.
fn upstream_names(plan: &Plan) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for g in &plan.gateways {
        for u in &g.upstreams {
            if !names.contains(&u.as_str()) {
                names.push(u);
            }
        }
    }
    names
}

pub fn run(a: &RenderEnvoyArgs, output: Output) -> Outcome {
    let loaded = input::load(&a.file)?;
    let wasm = std::fs::canonicalize(&a.wasm)
        .map_err(|e| Failure::usage(format!("--wasm {}: {e}", a.wasm.display())))?;
    let names = upstream_names(&loaded.plan);
    let mut given: Vec<(String, String, u16)> = Vec::new();
    for u in &a.upstreams {
        let (name, address) = u
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--upstream {u:?}: expected NAME=HOST:PORT")))?;
        if !names.contains(&name) {
            return Err(Failure::usage(format!(
                "--upstream {name}: not an upstream of the configuration ({})",
                names.join(", ")
            )));
        }
        let (host, port) = host_port(address, &format!("--upstream {name}"))?;
        given.retain(|(n, _, _)| n != name);
        given.push((name.to_string(), host, port));
    }
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !given.iter().any(|(g, _, _)| g == n))
        .collect();
    if !missing.is_empty() {
        return Err(Failure::usage(format!(
            "no address for upstream {}: give --upstream NAME=HOST:PORT for each",
            missing.join(", ")
        )));
    }
    // In the configuration's order.
    given.sort_by_key(|(n, _, _)| names.iter().position(|x| x == n));
    let listen = host_port(&a.listen, "--listen")?;
    let admin = host_port(&a.admin, "--admin")?;
    let value = bootstrap(
        &loaded.plan,
        &loaded.value,
        &wasm,
        &given,
        (&listen.0, listen.1),
        (&admin.0, admin.1),
    );
    if output == Output::Json {
        print_json(&value);
        return Ok(0);
    }
    let doc = Doc::new(value).comment(&[
        "Envoy running canary-gate, generated by `canary-gate render envoy`: the filter picks the",
        "upstream and writes the route header; the route sends the request to the cluster it names.",
        "Run it with `envoy -c FILE` or `func-e run -c FILE`.",
    ]);
    print!("{}", yaml_doc(&doc));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(
            host_port("127.0.0.1:80", "x").unwrap(),
            ("127.0.0.1".to_string(), 80)
        );
        assert_eq!(
            host_port("[::1]:9901", "x").unwrap(),
            ("::1".to_string(), 9901)
        );
        assert_eq!(
            host_port("model.svc:8080", "x").unwrap(),
            ("model.svc".to_string(), 8080)
        );
        assert!(host_port("nohost", "x").is_err());
        assert!(host_port(":80", "x").is_err());
        assert!(host_port("a:99999", "x").is_err());
    }
}
