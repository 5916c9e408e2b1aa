//! The Istio example (`envoy/istio/*.yaml`: two gateways on one ingress) in a real Envoy,
//! configured the way istiod hands a WasmPlugin to an ingress gateway, so the example cannot
//! drift from what works:
//! - the HTTP filter is named `<namespace>.<name>` and its configuration comes over ECDS, as a
//!   `TypedExtensionConfig` of the same name (istiod sends it over ADS; here Envoy watches a file,
//!   which lets a test push an update to a running Envoy as istiod does);
//! - `root_id` is the WasmPlugin's `pluginName`, the runtime is V8, the code is a local file (what
//!   istio-agent turns the `oci://` image into), `failStrategy: FAIL_CLOSE` becomes
//!   `failure_policy: FAIL_CLOSED`;
//! - `pluginConfig` is serialised as compact JSON with sorted keys (protojson of a `Struct`)
//!   inside a `google.protobuf.StringValue`;
//! - each VirtualService is a virtual host (its `hosts` are the domains); each `http` entry a
//!   route, in order: an exact match on the route header, a `uri.prefix`, or none, sending it to
//!   the DestinationRule subset's cluster (`outbound|<port>|<subset>|<host>`);
//! - the stats tags are the ones Istio generates for `extraStatTags: gateway,upstream,reason,class`.
//!
//! The manifests are the output of `canary-gate render istio envoy/istio/plugin-config.json`
//! (checked here), and the promotion and rollback pushed to the running gateway are made with
//! `canary-gate promote` and `canary-gate rollback`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::bootstrap::{self, WASM_TYPE};
use common::envoy::EnvoyBuilder;
use common::oracle::expected_upstream;
use common::{EchoUpstream, Envoy, Resp, TempDir, GATEWAY_LISTENER};
use serde::Deserialize;
use serde_json::{json, Value};

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/envoy/istio");
const PLUGIN_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/envoy/istio/plugin-config.json"
);
const CLI: &str = env!("CARGO_BIN_EXE_canary-gate");
/// The image the example names (`render istio --image`).
const IMAGE: &str = "oci://registry.example.com/canary-gate:0.1.0";
const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
/// The fraud gateway's access keys: the configuration holds their SHA-256.
const ALICE_KEY: &str = "alice-key";
const BOB_KEY: &str = "bob-key";
/// The chat gateway's Basic user (a bcrypt line in the configuration).
const CAROL: (&str, &str) = ("carol", "carol-password");
/// How long a pushed configuration may take to reach Envoy.
const PUSH_TIMEOUT: Duration = Duration::from_secs(15);

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// Every document of a YAML file.
fn documents(file: &str) -> Vec<Value> {
    let path = Path::new(MANIFESTS).join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|d| {
            Value::deserialize(d)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
        })
        .collect()
}

fn one_document(file: &str) -> Value {
    let mut docs = documents(file);
    assert_eq!(docs.len(), 1, "{file}: one document");
    docs.remove(0)
}

fn str_at<'a>(v: &'a Value, pointer: &str, what: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: no string at {pointer}"))
}

/// What istiod does to `pluginConfig` (a `google.protobuf.Struct`): protojson, compact, map keys
/// sorted, every number a double (printed without exponent below 1e21, like Go's encoder).
fn istio_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), istio_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(istio_json).collect();
            format!("[{}]", items.join(","))
        }
        Value::Number(n) => {
            let f = n.as_f64().expect("a JSON number is a double in a Struct");
            assert!(
                f.is_finite() && f.abs() < 1e21,
                "number {f} outside the tested range"
            );
            format!("{f}")
        }
        other => other.to_string(),
    }
}

/// One `http` entry of a VirtualService, reduced to what the test routes on.
#[derive(Debug, Clone)]
struct VsRoute {
    name: String,
    /// `(header, exact value)`.
    header: Option<(String, String)>,
    /// `uri.prefix`.
    prefix: Option<String>,
    host: String,
    port: u64,
    subset: String,
}

impl VsRoute {
    fn is_catch_all(&self) -> bool {
        self.header.is_none()
    }
}

#[derive(Debug, Clone)]
struct VirtualService {
    name: String,
    hosts: Vec<String>,
    routes: Vec<VsRoute>,
    doc: Value,
}

fn virtual_service(doc: &Value) -> VirtualService {
    let name = str_at(doc, "/metadata/name", "VirtualService").to_owned();
    let hosts: Vec<String> = doc["spec"]["hosts"]
        .as_array()
        .expect("VirtualService hosts")
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    let mut routes = Vec::new();
    for entry in doc["spec"]["http"].as_array().expect("VirtualService http") {
        let route_name = entry["name"]
            .as_str()
            .expect("every http entry is named")
            .to_owned();
        let dests = entry["route"].as_array().expect("http entry route");
        assert_eq!(dests.len(), 1, "{route_name}: one destination (no weights)");
        let d = &dests[0]["destination"];
        let base = VsRoute {
            name: route_name.clone(),
            header: None,
            prefix: None,
            host: d["host"].as_str().expect("destination host").to_owned(),
            port: d["port"]["number"].as_u64().expect("destination port"),
            subset: d["subset"].as_str().expect("destination subset").to_owned(),
        };
        let Some(matches) = entry.get("match").and_then(Value::as_array) else {
            routes.push(base);
            continue;
        };
        for m in matches {
            let m = m.as_object().unwrap();
            assert_eq!(m.len(), 1, "{route_name}: one condition per match");
            if let Some(headers) = m.get("headers").and_then(Value::as_object) {
                assert_eq!(headers.len(), 1, "{route_name}: one header per match");
                let (header, how) = headers.iter().next().unwrap();
                let exact = how
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.get("exact"))
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("{route_name}: only `exact` header matches"));
                routes.push(VsRoute {
                    header: Some((header.to_ascii_lowercase(), exact.to_owned())),
                    ..base.clone()
                });
            } else if let Some(prefix) = m.get("uri").and_then(|u| u.get("prefix")) {
                routes.push(VsRoute {
                    prefix: Some(prefix.as_str().unwrap().to_owned()),
                    ..base.clone()
                });
            } else {
                panic!("{route_name}: unexpected match {m:?}");
            }
        }
    }
    VirtualService {
        name,
        hosts,
        routes,
        doc: doc.clone(),
    }
}

/// A gateway of the plugin configuration.
#[derive(Debug, Clone)]
struct PluginGateway {
    name: String,
    hosts: Vec<String>,
    path_prefix: String,
    primary: String,
    canaries: Vec<(String, f64)>,
    seed: u32,
}

impl PluginGateway {
    fn upstreams(&self) -> Vec<String> {
        std::iter::once(self.primary.clone())
            .chain(self.canaries.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    /// The documented formula for a key of this gateway.
    fn expected(&self, key: &str) -> String {
        let canaries: Vec<(&str, f64)> = self
            .canaries
            .iter()
            .map(|(n, p)| (n.as_str(), *p))
            .collect();
        expected_upstream(key, self.seed, &self.primary, &canaries).to_owned()
    }
}

fn plugin_gateways(cfg: &Value) -> Vec<PluginGateway> {
    cfg["gateways"]
        .as_array()
        .expect("the example has gateways")
        .iter()
        .map(|g| PluginGateway {
            name: g["name"].as_str().unwrap().to_owned(),
            hosts: g["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_owned())
                .collect(),
            path_prefix: g
                .get("path_prefix")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_owned(),
            primary: g["primary"].as_str().unwrap().to_owned(),
            canaries: g["canaries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_owned(),
                        c["percent"].as_f64().unwrap(),
                    )
                })
                .collect(),
            seed: g["split"]["hash_seed"].as_u64().unwrap_or(0) as u32,
        })
        .collect()
}

/// The manifests of `envoy/istio/`.
struct Example {
    plugin: Value,
    gateway: Value,
    vss: Vec<VirtualService>,
    drs: Vec<Value>,
}

impl Example {
    fn load() -> Example {
        Example {
            plugin: one_document("wasmplugin.yaml"),
            gateway: one_document("gateway.yaml"),
            vss: documents("virtualservice.yaml")
                .iter()
                .map(virtual_service)
                .collect(),
            drs: documents("destinationrule.yaml"),
        }
    }

    fn plugin_config(&self) -> &Value {
        self.plugin
            .pointer("/spec/pluginConfig")
            .expect("the WasmPlugin has a pluginConfig")
    }

    /// `<namespace>.<name>`: the HTTP filter's and the ECDS resource's name.
    fn resource_name(&self) -> String {
        format!(
            "{}.{}",
            str_at(&self.plugin, "/metadata/namespace", "WasmPlugin"),
            str_at(&self.plugin, "/metadata/name", "WasmPlugin")
        )
    }

    /// istiod copies `pluginName` into `root_id` (and leaves it empty when absent).
    fn root_id(&self) -> String {
        self.plugin
            .pointer("/spec/pluginName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// istiod's mapping of `failStrategy` (FAIL_CLOSE is the default) to Envoy's failure policy.
    fn failure_policy(&self) -> &'static str {
        match self
            .plugin
            .pointer("/spec/failStrategy")
            .and_then(Value::as_str)
        {
            None | Some("FAIL_CLOSE") => "FAIL_CLOSED",
            Some("FAIL_OPEN") => "FAIL_OPEN",
            Some("FAIL_RELOAD") => "FAIL_RELOAD",
            Some(other) => panic!("unknown failStrategy {other}"),
        }
    }

    fn route_header(&self) -> String {
        self.plugin_config()
            .get("route_header")
            .and_then(Value::as_str)
            .unwrap_or(common::DEFAULT_ROUTE_HEADER)
            .to_ascii_lowercase()
    }

    /// DestinationRule subsets: `(host, subset)` -> the pods' `version` label.
    fn subsets(&self) -> BTreeMap<(String, String), String> {
        let mut out = BTreeMap::new();
        for dr in &self.drs {
            let host = str_at(dr, "/spec/host", "DestinationRule").to_owned();
            for s in dr["spec"]["subsets"].as_array().expect("subsets") {
                let name = s["name"].as_str().expect("subset name").to_owned();
                let version = s["labels"]["version"]
                    .as_str()
                    .unwrap_or_else(|| panic!("subset {name} selects pods by `version`"));
                out.insert((host.clone(), name), version.to_owned());
            }
        }
        out
    }

    /// The pod (Deployment) a subset's pods belong to: `<service>-<version>`.
    fn pod(&self, host: &str, subset: &str) -> String {
        let version = self
            .subsets()
            .get(&(host.to_owned(), subset.to_owned()))
            .cloned()
            .unwrap_or_else(|| panic!("no subset {subset} of {host}"));
        format!("{}-{version}", host.split('.').next().unwrap())
    }

    /// The VirtualService serving `host` (Envoy's domain rules: exact, then wildcard suffix).
    fn vs_for(&self, host: &str) -> &VirtualService {
        self.vss
            .iter()
            .find(|vs| vs.hosts.iter().any(|h| h == host))
            .or_else(|| {
                self.vss.iter().find(|vs| {
                    vs.hosts.iter().any(|h| {
                        h.strip_prefix('*')
                            .is_some_and(|suffix| host.ends_with(suffix))
                    })
                })
            })
            .unwrap_or_else(|| panic!("no VirtualService for {host}"))
    }

    /// The pod a route-header value reaches on `host` (the first matching header route).
    fn pod_for(&self, host: &str, upstream: &str) -> String {
        let header = self.route_header();
        let r = self
            .vs_for(host)
            .routes
            .iter()
            .find(|r| r.header.as_ref() == Some(&(header.clone(), upstream.to_owned())))
            .unwrap_or_else(|| panic!("no route for {upstream} on {host}"));
        self.pod(&r.host, &r.subset)
    }

    fn cluster_name(port: u64, subset: &str, host: &str) -> String {
        format!("outbound|{port}|{subset}|{host}")
    }

    /// The ECDS resource istiod sends for the WasmPlugin (with the module already fetched by
    /// istio-agent to a local file), wrapped in a discovery response.
    fn ecds(&self, plugin_config: &Value, wasm: &Path, version: u32) -> Value {
        json!({
            "version_info": version.to_string(),
            "resources": [{
                "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
                "name": self.resource_name(),
                "typed_config": {
                    "@type": WASM_TYPE,
                    "config": {
                        "name": self.resource_name(),
                        "root_id": self.root_id(),
                        "vm_config": {
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": {"local": {"filename": wasm.to_string_lossy()}}
                        },
                        "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": istio_json(plugin_config)
                        },
                        "failure_policy": self.failure_policy()
                    }
                }
            }]
        })
    }

    /// The gateway's bootstrap: the listener with the ECDS-fed filter, one virtual host per
    /// VirtualService, one STATIC cluster per DestinationRule subset (`ports`: pod -> echo port).
    fn bootstrap(&self, ecds_path: &Path, ports: &BTreeMap<String, u16>) -> Value {
        let header = self.route_header();
        let mut clusters = Vec::new();
        let virtual_hosts: Vec<Value> = self
            .vss
            .iter()
            .map(|vs| {
                let routes: Vec<Value> = vs
                    .routes
                    .iter()
                    .map(|r| {
                        let mut m =
                            json!({"prefix": r.prefix.clone().unwrap_or_else(|| "/".into())});
                        if let Some((h, v)) = &r.header {
                            assert_eq!(*h, header, "{}: routes on the route header", r.name);
                            m["headers"] = json!([{"name": h, "string_match": {"exact": v}}]);
                        }
                        json!({
                            "name": r.name,
                            "match": m,
                            "route": {"cluster": Self::cluster_name(r.port, &r.subset, &r.host)}
                        })
                    })
                    .collect();
                for r in &vs.routes {
                    let name = Self::cluster_name(r.port, &r.subset, &r.host);
                    let port = ports[&self.pod(&r.host, &r.subset)];
                    if !clusters.iter().any(|c: &Value| c["name"] == name.as_str()) {
                        clusters.push(bootstrap::static_cluster(&name, port));
                    }
                }
                // Istio: the host, and the host with any port for exact names.
                let domains: Vec<String> = vs
                    .hosts
                    .iter()
                    .flat_map(|h| {
                        if h.starts_with('*') {
                            vec![h.clone()]
                        } else {
                            vec![h.clone(), format!("{h}:*")]
                        }
                    })
                    .collect();
                json!({"name": format!("{}:80", vs.name), "domains": domains, "routes": routes})
            })
            .collect();
        let route_config = json!({"name": "http.80", "virtual_hosts": virtual_hosts});
        let ecds_filter = json!({
            "name": self.resource_name(),
            "config_discovery": {
                "config_source": {
                    "path_config_source": {"path": ecds_path.to_string_lossy()},
                    "resource_api_version": "V3",
                    // istiod: block until the plugin is there (security).
                    "initial_fetch_timeout": "0s"
                },
                "type_urls": [WASM_TYPE, RBAC_TYPE]
            }
        });
        json!({
            // An Istio ingress gateway's node identity (xDS subscriptions, ECDS included, need one).
            "node": {
                "id": "router~127.0.0.1~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local",
                "cluster": "istio-ingressgateway.istio-system"
            },
            "admin": bootstrap::admin(),
            // What Istio generates for `extraStatTags: gateway,upstream,reason,class`.
            "stats_config": {"stats_tags": bootstrap::istio_stats_tags()},
            "overload_manager": bootstrap::overload_manager(),
            "static_resources": {
                "listeners": [bootstrap::http_listener(
                    GATEWAY_LISTENER,
                    "outbound_0.0.0.0_80",
                    route_config,
                    vec![ecds_filter, bootstrap::router()],
                )],
                "clusters": clusters
            }
        })
    }
}

/// The example running: one echo upstream per DestinationRule subset (named after its pods,
/// `<service>-<version>`), and an Envoy configured as istiod configures the ingress gateway.
struct IstioGateway {
    example: Example,
    // Field order: Envoy stops before the upstreams and the ECDS dir go away.
    envoy: Envoy,
    _pods: Vec<EchoUpstream>,
    ecds_dir: TempDir,
    version: u32,
}

impl IstioGateway {
    fn start() -> IstioGateway {
        Self::start_with(|envoy| envoy)
    }

    /// `launch` may change how Envoy runs (log levels, ...).
    fn start_with(launch: impl FnOnce(EnvoyBuilder) -> EnvoyBuilder) -> IstioGateway {
        let example = Example::load();
        let pods: Vec<EchoUpstream> = example
            .subsets()
            .keys()
            .map(|(host, subset)| EchoUpstream::start(&example.pod(host, subset)))
            .collect();
        let ports: BTreeMap<String, u16> = pods
            .iter()
            .map(|p| (p.name().to_owned(), p.port()))
            .collect();
        let ecds_dir = TempDir::new("ecds");
        let ecds_path = ecds_dir.0.join("extension_config.json");
        let first = example.ecds(example.plugin_config(), &common::wasm_path(), 1);
        fs::write(&ecds_path, first.to_string()).unwrap();
        let bootstrap = example.bootstrap(&ecds_path, &ports);
        let envoy = launch(Envoy::builder(bootstrap)).start();
        IstioGateway {
            example,
            envoy,
            _pods: pods,
            ecds_dir,
            version: 1,
        }
    }

    /// What istiod does after `kubectl apply` of an edited WasmPlugin: a new ECDS resource.
    /// (Written to a temp file and renamed over the watched one, so Envoy never reads half.)
    fn push(&mut self, plugin_config: &Value) {
        self.version += 1;
        let path = self.ecds_dir.0.join("extension_config.json");
        let tmp = self.ecds_dir.0.join("extension_config.json.tmp");
        let update = self
            .example
            .ecds(plugin_config, &common::wasm_path(), self.version);
        fs::write(&tmp, update.to_string()).unwrap();
        fs::rename(&tmp, &path).unwrap();
    }

    fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut all = vec![("host", host)];
        all.extend_from_slice(headers);
        self.envoy.get(path, &all)
    }

    /// The ECDS counter `name` (`update_success`, `update_rejected`) for the plugin's filter.
    fn ecds_stat(&self, name: &str) -> u64 {
        let stats = self
            .envoy
            .admin_get("/stats?filter=extension_config_discovery");
        let suffix = format!("{}.{name}: ", self.example.resource_name());
        stats
            .lines()
            .find(|l| l.starts_with("extension_config_discovery.") && l.contains(&suffix))
            .and_then(|l| l.rsplit_once(": "))
            .map(|(_, v)| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no ECDS stat `{name}` for the plugin in:\n{stats}"))
    }

    fn wait_for_stat(&self, name: &str, at_least: u64) {
        let deadline = Instant::now() + PUSH_TIMEOUT;
        while self.ecds_stat(name) < at_least {
            assert!(
                Instant::now() < deadline,
                "ECDS {name} did not reach {at_least} within {PUSH_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The pod that answered.
fn pod(r: &Resp) -> String {
    r.upstream()
        .unwrap_or_else(|| panic!("no model pod answered: {r:?}"))
}

fn plugin_config_file() -> Value {
    serde_json::from_str(&fs::read_to_string(PLUGIN_CONFIG).unwrap()).unwrap()
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(CLI)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {CLI}: {e}"))
}

#[test]
fn the_manifests_are_consistent_with_each_other_and_the_configuration() {
    let ex = Example::load();
    let p = &ex.plugin;
    assert_eq!(p["apiVersion"], "extensions.istio.io/v1alpha1");
    assert_eq!(p["kind"], "WasmPlugin");
    assert_eq!(
        p["spec"]["phase"], "AUTHN",
        "auth must run before Istio's authz and routing"
    );
    assert_eq!(
        p["spec"]["failStrategy"], "FAIL_CLOSE",
        "a gate that fails must not open"
    );
    assert_eq!(p["spec"]["type"], "HTTP");
    assert_eq!(str_at(p, "/spec/url", "WasmPlugin"), IMAGE);
    assert!(
        !ex.root_id().is_empty(),
        "pluginName is set (it becomes root_id)"
    );

    // The configuration of envoy/istio/plugin-config.json, and one the filter accepts.
    assert_eq!(ex.plugin_config(), &plugin_config_file());
    canary_gate::config::parse(istio_json(ex.plugin_config()).as_bytes())
        .unwrap_or_else(|e| panic!("the filter refuses the pluginConfig: {e}"));

    // The WasmPlugin selects the gateway pods the Gateway runs on; every VirtualService is bound
    // to that Gateway, for hosts it serves.
    assert_eq!(
        p["spec"]["selector"]["matchLabels"],
        ex.gateway["spec"]["selector"]
    );
    let gw_name = str_at(&ex.gateway, "/metadata/name", "Gateway");
    let gw_hosts: Vec<&str> = ex.gateway["spec"]["servers"][0]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    for vs in &ex.vss {
        assert_eq!(vs.doc["spec"]["gateways"], json!([gw_name]), "{}", vs.name);
        assert_eq!(
            vs.doc["metadata"]["namespace"],
            ex.gateway["metadata"]["namespace"]
        );
        for h in &vs.hosts {
            assert!(
                gw_hosts.contains(&h.as_str()),
                "{}: {h} not on the Gateway",
                vs.name
            );
        }
    }

    // Per gateway: its hosts are served by one VirtualService, where each of its upstreams has
    // exactly one header route, to an existing subset (distinct upstreams, distinct subsets),
    // and a catch-all by its path prefix goes to its primary's subset, after every header route.
    let header = ex.route_header();
    let subsets = ex.subsets();
    let gateways = plugin_gateways(ex.plugin_config());
    assert_eq!(gateways.len(), 2, "the example has two gateways");
    for g in &gateways {
        let vs = ex.vs_for(&g.hosts[0]);
        for h in &g.hosts {
            assert_eq!(ex.vs_for(h).name, vs.name, "{}: one VirtualService", g.name);
            assert_eq!(
                ex.vss.iter().filter(|v| v.hosts.contains(h)).count(),
                1,
                "{h} in one VirtualService"
            );
        }
        let mut seen = Vec::new();
        for u in g.upstreams() {
            let matching: Vec<&VsRoute> = vs
                .routes
                .iter()
                .filter(|r| r.header.as_ref() == Some(&(header.clone(), u.clone())))
                .collect();
            assert_eq!(matching.len(), 1, "{u}: exactly one header route");
            let r = matching[0];
            assert!(
                subsets.contains_key(&(r.host.clone(), r.subset.clone())),
                "{u}: no subset {} of {}",
                r.subset,
                r.host
            );
            let target = (r.host.clone(), r.subset.clone());
            assert!(!seen.contains(&target), "two upstreams share a subset");
            seen.push(target);
        }
        let catch_all: Vec<&VsRoute> = vs
            .routes
            .iter()
            .filter(|r| {
                r.is_catch_all()
                    && r.prefix.as_deref()
                        == (g.path_prefix != "/").then_some(g.path_prefix.as_str())
            })
            .collect();
        assert_eq!(catch_all.len(), 1, "{}: one catch-all", g.name);
        assert_eq!(
            ex.pod(&catch_all[0].host, &catch_all[0].subset),
            ex.pod_for(&g.hosts[0], &g.primary),
            "{}: the catch-all goes to the primary",
            g.name
        );
        let first_catch_all = vs.routes.iter().position(VsRoute::is_catch_all).unwrap();
        assert!(
            vs.routes[first_catch_all..]
                .iter()
                .all(VsRoute::is_catch_all),
            "{}: header routes come first",
            vs.name
        );
    }
    // Nothing else is routed: every header value is an upstream of a gateway on those hosts.
    for vs in &ex.vss {
        for r in vs.routes.iter().filter(|r| !r.is_catch_all()) {
            let value = &r.header.as_ref().unwrap().1;
            assert!(
                gateways
                    .iter()
                    .any(|g| g.hosts.iter().any(|h| vs.hosts.contains(h))
                        && g.upstreams().contains(value)),
                "{}: {value} is not an upstream of its gateways",
                vs.name
            );
        }
    }
}

#[test]
fn the_example_is_what_render_istio_writes() {
    let out = TempDir::new("render-istio");
    let dir = out.path().to_string_lossy().into_owned();
    let o = cli(&[
        "render",
        "istio",
        PLUGIN_CONFIG,
        "--image",
        IMAGE,
        "--out",
        &dir,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for file in [
        "wasmplugin.yaml",
        "gateway.yaml",
        "virtualservice.yaml",
        "destinationrule.yaml",
    ] {
        let rendered = fs::read_to_string(out.path().join(file)).unwrap();
        let example = fs::read_to_string(Path::new(MANIFESTS).join(file)).unwrap();
        assert_eq!(
            rendered, example,
            "envoy/istio/{file} is not the output of `canary-gate render istio \
             envoy/istio/plugin-config.json --image {IMAGE} --out envoy/istio`"
        );
    }
    // And `check` reads the manifest as istiod would send it.
    let o = cli(&["check", &format!("{MANIFESTS}/wasmplugin.yaml")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn pluginconfig_is_serialised_like_istiod_does() {
    let cfg = json!({"b": [1, 2.5, {"z": true, "a": null}], "a": "x\"y", "c": 10});
    assert_eq!(
        istio_json(&cfg),
        r#"{"a":"x\"y","b":[1,2.5,{"a":null,"z":true}],"c":10}"#
    );
}

#[test]
fn both_gateways_authenticate_split_and_route_on_their_own() {
    let gw = IstioGateway::start();
    let ex = &gw.example;
    let gateways = plugin_gateways(ex.plugin_config());
    let (fraud, chat) = (&gateways[0], &gateways[1]);
    let fraud_host = fraud.hosts[0].as_str();
    let carol = basic(CAROL.0, CAROL.1);

    // fraud: access keys. No key, or a key it does not list: the filter answers 401 itself.
    let r = gw.get(fraud_host, "/fraud/score", &[("x-user-id", "user-1")]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"ApiKey realm="canary-gate", header="x-api-key""#)
    );
    assert!(r.upstream().is_none(), "{r:?}");
    assert_eq!(
        gw.get(fraud_host, "/fraud/score", &[("x-api-key", "mallory-key")])
            .status,
        401
    );
    // chat: Basic. Its users do not open fraud, fraud's keys do not open chat.
    let r = gw.get("chat.example.com", "/v1/chat", &[]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Basic realm="chat", charset="UTF-8""#)
    );
    let r = gw.get("chat.example.com", "/v1/chat", &[("x-api-key", ALICE_KEY)]);
    assert_eq!(r.status, 401, "fraud's key on chat: {r:?}");
    let r = gw.get(fraud_host, "/fraud/score", &[("authorization", &carol)]);
    assert_eq!(r.status, 401, "chat's user on fraud: {r:?}");

    // Each user lands where the documented formula says, through the VirtualService route for
    // the header value the filter wrote. Requests carry no route header (the catch-all would
    // pick the primary) or a spoofed one (another route would match first): either way Envoy
    // must re-pick the route after the filter has set it.
    let mut per_pod: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..200 {
        let user = format!("user-{i}");
        let want = fraud.expected(&user);
        let mut headers = vec![("x-api-key", ALICE_KEY), ("x-user-id", user.as_str())];
        if i % 3 != 0 {
            headers.push((
                "x-canary-upstream",
                if i % 2 == 0 { "fraud-v3" } else { "chat-v2" },
            ));
        }
        let r = gw.get(fraud_host, "/fraud/score", &headers);
        assert_eq!(r.status, 200, "{user}: {r:?}");
        assert_eq!(
            pod(&r),
            ex.pod_for(fraud_host, &want),
            "{user} should reach {want}"
        );
        assert_eq!(r.header("x-canary-upstream"), Some(want.as_str()), "{user}");
        assert_eq!(
            r.upstream_header("x-canary-consumer").as_deref(),
            Some("alice")
        );
        assert_eq!(
            r.upstream_header("x-api-key"),
            None,
            "the key is not forwarded"
        );
        *per_pod.entry(pod(&r)).or_default() += 1;
    }
    // chat splits by the session cookie, on every host its wildcard takes.
    for i in 0..200 {
        let session = format!("s-{i}");
        let want = chat.expected(&session);
        let host = if i % 2 == 0 {
            "chat.example.com"
        } else {
            "eu.chat.example.com"
        };
        let cookie = format!("theme=dark; session={session}");
        let r = gw.get(
            host,
            "/v1/chat",
            &[("authorization", &carol), ("cookie", &cookie)],
        );
        assert_eq!(r.status, 200, "{session}: {r:?}");
        assert_eq!(
            pod(&r),
            ex.pod_for(host, &want),
            "{session} should reach {want}"
        );
        assert_eq!(
            r.upstream_header("x-canary-consumer").as_deref(),
            Some("carol")
        );
        assert_eq!(r.upstream_header("authorization"), None);
        *per_pod.entry(pod(&r)).or_default() += 1;
    }
    assert_eq!(
        per_pod.len(),
        5,
        "400 users reach all five versions: {per_pod:?}"
    );

    // The select header picks a version of the gateway's own (after authentication); another
    // gateway's upstream is ignored.
    for u in fraud.upstreams() {
        let r = gw.get(
            fraud_host,
            "/fraud",
            &[("x-api-key", BOB_KEY), ("x-canary-select", &u)],
        );
        assert_eq!(pod(&r), ex.pod_for(fraud_host, &u), "select {u}");
        assert_eq!(
            r.upstream_header("x-canary-consumer").as_deref(),
            Some("bob")
        );
    }
    let r = gw.get(
        "chat.example.com",
        "/",
        &[
            ("authorization", &carol),
            ("x-canary-select", "fraud-v2"),
            ("cookie", "session=s-1"),
        ],
    );
    assert_eq!(
        r.header("x-canary-upstream"),
        Some(chat.expected("s-1").as_str())
    );

    // A path or host no gateway takes: 404 from the filter.
    let r = gw.get(fraud_host, "/other", &[("x-api-key", ALICE_KEY)]);
    assert_eq!((r.status, r.upstream()), (404, None), "{r:?}");
    let r = gw.get("other.example.com", "/fraud", &[("x-api-key", ALICE_KEY)]);
    assert_eq!(r.status, 404, "{r:?}");

    // The plugin's counters, as an operator scrapes them with Istio's extraStatTags extractors.
    let prom = gw.envoy.prometheus();
    for g in [fraud, chat] {
        for u in g.upstreams() {
            let series = format!(
                "canary_gate_requests{{gateway=\"{}\",upstream=\"{u}\"}}",
                g.name
            );
            assert!(prom.contains(&series), "no {series}:\n{prom}");
        }
    }
    for series in [
        "canary_gate_auth_denied{gateway=\"fraud\",reason=\"missing_credentials\"}",
        "canary_gate_auth_denied{gateway=\"chat\",reason=\"missing_credentials\"}",
        "canary_gate_auth_allowed{gateway=\"chat\"}",
    ] {
        assert!(prom.contains(series), "no {series}:\n{prom}");
    }
    assert!(
        !prom.contains("gateway___"),
        "a label left in a name:\n{prom}"
    );
}

#[test]
fn envoy_repicks_the_route_after_the_filter_sets_the_header() {
    // The route matched when the request arrived is model-v1's (the client forged its header);
    // Envoy must pick model-v3's once the filter has written its choice. This build does not
    // call `clear_route_cache`: for plugins on ABI 0.2.1 Envoy re-picks by itself (src/wasm/mod.rs).
    // With Envoy's debug log for wasm on, the filter's per-request debug line shows its choice,
    // and a line about `clear_route_cache` must never appear.
    let gw = IstioGateway::start_with(|envoy| envoy.component_log_level("wasm:debug"));
    let ex = &gw.example;
    // fraud-v3 selected, fraud-v1 spoofed: the route matched before the filter is fraud-v1's.
    let r = gw.get(
        "models.example.com",
        "/fraud",
        &[
            ("x-api-key", ALICE_KEY),
            ("x-canary-select", "fraud-v3"),
            ("x-canary-upstream", "fraud-v1"),
        ],
    );
    assert_eq!(
        pod(&r),
        ex.pod_for("models.example.com", "fraud-v3"),
        "{r:?}"
    );
    assert!(
        gw.envoy.wait_for_log(Duration::from_secs(5), |l| l
            .contains("canary-gate: alice -> fraud-v3")),
        "the filter's debug line is missing:\n{}",
        gw.envoy.log()
    );
    let log = gw.envoy.log();
    assert!(!log.contains("clear_route_cache unavailable"), "{log}");
}

#[test]
fn promotion_and_rollback_made_with_the_cli_reach_the_running_gateway_and_a_bad_edit_is_refused() {
    let mut gw = IstioGateway::start();
    let users: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let carol = basic(CAROL.0, CAROL.1);
    // Every fraud user and chat session lands where `cfg` says.
    let all_follow = |gw: &IstioGateway, cfg: &Value| {
        let gateways = plugin_gateways(cfg);
        let (fraud, chat) = (&gateways[0], &gateways[1]);
        users.iter().all(|u| {
            let r = gw.get(
                "models.example.com",
                "/fraud",
                &[("x-api-key", ALICE_KEY), ("x-user-id", u)],
            );
            let cookie = format!("session={u}");
            let c = gw.get(
                "chat.example.com",
                "/",
                &[("authorization", &carol), ("cookie", &cookie)],
            );
            r.status == 200
                && pod(&r) == gw.example.pod_for("models.example.com", &fraud.expected(u))
                && c.status == 200
                && pod(&c) == gw.example.pod_for("chat.example.com", &chat.expected(u))
        })
    };
    // Envoy counts the update on its main thread, then hands the new filter config to the
    // workers: allow that hand-over (bounded) before requiring the new split.
    let settles = |gw: &IstioGateway, cfg: &Value| {
        let deadline = Instant::now() + PUSH_TIMEOUT;
        while !all_follow(gw, cfg) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    };
    assert_eq!(gw.ecds_stat("update_success"), 1);
    assert!(all_follow(&gw, &plugin_config_file()));

    // The operator edits the configuration with the CLI, then applies the WasmPlugin.
    let work = TempDir::new("istio-edit");
    let file = work.path().join("plugin-config.json");
    fs::copy(PLUGIN_CONFIG, &file).unwrap();
    let file = file.to_string_lossy().into_owned();
    let edit = |args: &[&str]| -> Value {
        let o = cli(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap()
    };

    // Promote fraud-v2 (fraud-v1 dropped, fraud-v3 kept). Same Envoy, no restart.
    let promoted = edit(&[
        "promote",
        &file,
        "--gateway",
        "fraud",
        "--to",
        "fraud-v2",
        "-i",
    ]);
    assert_eq!(promoted["gateways"][0]["primary"], "fraud-v2");
    gw.push(&promoted);
    gw.wait_for_stat("update_success", 2);
    assert!(
        settles(&gw, &promoted),
        "after promotion:\n{}",
        gw.envoy.log()
    );

    // Roll chat back: chat-v2 at 0% sends every session to chat-v1.
    let rolled_back = edit(&["rollback", &file, "--gateway", "chat", "-i"]);
    assert_eq!(rolled_back["gateways"][1]["canaries"][0]["percent"], 0);
    gw.push(&rolled_back);
    gw.wait_for_stat("update_success", 3);
    assert!(
        settles(&gw, &rolled_back),
        "after rollback:\n{}",
        gw.envoy.log()
    );

    // A wrong edit (a percent over 100): `canary-gate check` refuses it with the line the
    // filter logs when Envoy refuses it; the gateway keeps serving the last good configuration.
    let mut wrong = rolled_back.clone();
    wrong["gateways"][0]["canaries"][0]["percent"] = json!(120);
    let wrong_file = work.path().join("wrong.json");
    fs::write(&wrong_file, wrong.to_string()).unwrap();
    let o = cli(&["check", &wrong_file.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1));
    let message = "gateways[0].canaries[0].percent: 120 is not between 0 and 100";
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}: {message}\n", wrong_file.display())
    );
    gw.push(&wrong);
    gw.wait_for_stat("update_rejected", 1);
    assert!(
        gw.envoy.wait_for_log(Duration::from_secs(5), |l| l
            .contains(&format!("invalid configuration: {message}"))),
        "no critical line for the refused config:\n{}",
        gw.envoy.log()
    );
    assert!(
        all_follow(&gw, &rolled_back),
        "after the refused edit:\n{}",
        gw.envoy.log()
    );
    assert_eq!(
        gw.ecds_stat("update_success"),
        3,
        "the refused edit is not applied"
    );
}
