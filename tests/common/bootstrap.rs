//! Generated Envoy bootstraps: [`Gateway`] (the filter in front of echo upstreams, routed by
//! the route header) and the pieces other bootstraps share (admin, clusters, router, stats
//! tags), all on 127.0.0.1 with port 0 so the launcher discovers the ports. The benchmark
//! driver (`benches/envoy/`) includes this file too.
#![allow(dead_code)] // each test crate and the benchmark use a different part

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::envoy::{required_file, Bootstrap};

/// Name of the listener the filter runs on.
pub const GATEWAY_LISTENER: &str = "gateway";
/// Route header used when the plugin config has no `route_header`.
pub const DEFAULT_ROUTE_HEADER: &str = "x-canary-upstream";
pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";

/// The built filter (`$CANARY_GATE_WASM`). Panics with instructions if missing.
pub fn wasm_path() -> PathBuf {
    required_file("CANARY_GATE_WASM", "path of canary_gate.wasm")
}

/// The stats tags of envoy/demo.yaml (read from it, so the tests and the demo cannot drift):
/// they turn the labels the filter encodes in its stat names into Prometheus labels, e.g.
/// `canary_gate_requests{gateway="default",upstream="model-v1"}`.
pub fn stats_tags() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("envoy/demo.yaml");
    let template =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The template's `${NAME}` placeholders are not YAML until rendered: any value will do.
    let mut text = String::new();
    let mut rest = template.as_str();
    while let Some(start) = rest.find("${") {
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        text.push_str(&rest[..start]);
        text.push('0');
        rest = &rest[end..];
    }
    text.push_str(rest);
    let yaml: Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    let tags = yaml["stats_config"]["stats_tags"].clone();
    assert!(
        tags.is_array(),
        "no stats_config.stats_tags in {}",
        path.display()
    );
    tags
}

/// The extractors Istio generates for `extraStatTags: [gateway, upstream, reason, class]`
/// (istio/istio tools/packaging/common/envoy_bootstrap.json): unanchored `(TAG=\.=(.*?);\.;)`.
pub fn istio_stats_tags() -> Value {
    let tags: Vec<Value> = ["gateway", "upstream", "reason", "class"]
        .iter()
        .map(|t| json!({"tag_name": t, "regex": format!("({t}=\\.=(.*?);\\.;)")}))
        .collect();
    Value::Array(tags)
}

/// A connection cap for the bootstrap; without one Envoy logs a warning at every start.
pub fn overload_manager() -> Value {
    json!({"resource_monitors": [{
        "name": "envoy.resource_monitors.global_downstream_max_connections",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            "max_active_downstream_connections": 1000
        }
    }]})
}

/// The admin endpoint, on an ephemeral port.
pub fn admin() -> Value {
    json!({"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}})
}

/// A STATIC cluster of one endpoint on 127.0.0.1.
pub fn static_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": port}
            }}}]}]
        }
    })
}

/// The router, the last HTTP filter.
pub fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    })
}

/// A listener on an ephemeral port with one HTTP connection manager.
pub fn http_listener(
    name: &str,
    stat_prefix: &str,
    route_config: Value,
    http_filters: Vec<Value>,
) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM_TYPE,
                "stat_prefix": stat_prefix,
                "route_config": route_config,
                "http_filters": http_filters
            }
        }]}]
    })
}

/// What the generated gateway runs before the router.
#[derive(Debug, Clone)]
enum Filter {
    /// No wasm filter: only the router (tests the harness's own routing).
    None,
    /// The filter with this plugin configuration, sent as compact JSON.
    Json(Value),
    /// The filter with exactly this `configuration` string, or with no `configuration` at all.
    Raw(Option<String>),
}

/// A generated bootstrap: one listener ([`GATEWAY_LISTENER`]) running the filter, then the
/// router, which sends each request to the cluster named by the route header; one STATIC
/// cluster per upstream. Give it to `Envoy::builder`.
#[derive(Debug, Clone)]
pub struct Gateway {
    filter: Filter,
    upstreams: Vec<(String, u16)>,
    route_header: String,
}

impl Gateway {
    /// The filter configured by `plugin_config`; the route header is the config's
    /// `route_header` (default `x-canary-upstream`).
    pub fn new(plugin_config: &Value, upstreams: &[(&str, u16)]) -> Gateway {
        let route_header = plugin_config
            .get("route_header")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_ROUTE_HEADER)
            .to_owned();
        Gateway {
            route_header,
            ..Gateway::with(Filter::Json(plugin_config.clone()), upstreams)
        }
    }

    /// No wasm filter: only the router, routing on `x-canary-upstream`.
    pub fn without_filter(upstreams: &[(&str, u16)]) -> Gateway {
        Gateway::with(Filter::None, upstreams)
    }

    /// The filter with a plugin configuration that is exactly `configuration` (a
    /// `StringValue`, which may be empty or not JSON), or none at all (`None`).
    pub fn raw_configuration(configuration: Option<&str>, upstreams: &[(&str, u16)]) -> Gateway {
        Gateway::with(Filter::Raw(configuration.map(str::to_owned)), upstreams)
    }

    fn with(filter: Filter, upstreams: &[(&str, u16)]) -> Gateway {
        Gateway {
            filter,
            upstreams: upstreams
                .iter()
                .map(|(n, p)| ((*n).to_owned(), *p))
                .collect(),
            route_header: DEFAULT_ROUTE_HEADER.to_owned(),
        }
    }

    /// The bootstrap as JSON.
    pub fn to_json(&self) -> Value {
        let configuration = match &self.filter {
            Filter::None => None,
            Filter::Json(cfg) => Some(Some(cfg.to_string())),
            Filter::Raw(raw) => Some(raw.clone()),
        };
        let mut http_filters = Vec::new();
        if let Some(configuration) = configuration {
            let wasm = wasm_path();
            let mut config = json!({
                "name": "canary-gate",
                "root_id": "canary-gate",
                "vm_config": {
                    "vm_id": "canary-gate",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm.to_string_lossy()}}
                },
                "failure_policy": "FAIL_CLOSED"
            });
            if let Some(value) = configuration {
                config["configuration"] = json!({"@type": STRING_VALUE_TYPE, "value": value});
            }
            http_filters.push(json!({
                "name": "envoy.filters.http.wasm",
                "typed_config": {"@type": WASM_TYPE, "config": config}
            }));
        }
        http_filters.push(router());

        let route_config = json!({
            "name": "local_route",
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{
                    "match": {"prefix": "/"},
                    "route": {"cluster_header": self.route_header}
                }]
            }]
        });
        let clusters: Vec<Value> = self
            .upstreams
            .iter()
            .map(|(name, port)| static_cluster(name, *port))
            .collect();
        json!({
            "admin": admin(),
            "stats_config": {"stats_tags": stats_tags()},
            "overload_manager": overload_manager(),
            "static_resources": {
                "listeners": [http_listener(GATEWAY_LISTENER, GATEWAY_LISTENER, route_config, http_filters)],
                "clusters": clusters
            }
        })
    }
}

impl From<&Gateway> for Bootstrap {
    fn from(g: &Gateway) -> Self {
        Bootstrap::from(g.to_json())
    }
}

impl From<Gateway> for Bootstrap {
    fn from(g: Gateway) -> Self {
        Bootstrap::from(&g)
    }
}

/// The plugin configuration as an ECDS resource (a `TypedExtensionConfig`, as istiod delivers it),
/// for a test or the soak to push to a running Envoy through a file.
pub fn ecds(wasm: &Path, config: &Value, version: u64) -> Value {
    json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": "canary-gate",
            "typed_config": {
                "@type": WASM_TYPE,
                "config": {
                    "name": "canary-gate",
                    "root_id": "canary-gate",
                    "vm_config": {"vm_id": "canary-gate", "runtime": "envoy.wasm.runtime.v8",
                                  "code": {"local": {"filename": wasm.to_string_lossy()}}},
                    "configuration": {"@type": STRING_VALUE_TYPE,
                                      "value": config.to_string()},
                    "failure_policy": "FAIL_CLOSED"
                }
            }
        }]
    })
}
