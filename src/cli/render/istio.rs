//! `render istio`: a WasmPlugin, the Gateway, VirtualServices and
//! DestinationRules consistent with a configuration.
//!
//! - One VirtualService per set of host patterns served by the same gateways:
//!   a route per upstream of those gateways (an exact match on the route
//!   header, the value the filter writes), then a catch-all per gateway to its
//!   primary (by path prefix, longest first), for requests the filter did not
//!   route (before the plugin is applied, or with `unmatched: pass`).
//! - An upstream `SERVICE-SUBSET` is subset `SUBSET` (pods labelled
//!   `version: SUBSET`) of `SERVICE.NAMESPACE.svc.cluster.local`; an Istio
//!   cluster name `outbound|PORT|SUBSET|HOST` is that subset of `HOST`.

use std::fs;

use serde_json::{json, Value};

use super::super::args::RenderIstioArgs;
use super::super::emit::{yaml_docs, Doc};
use super::super::input;
use super::super::shares::listens_on;
use super::super::{print_json, Failure, Outcome, Output};
use super::write;
use crate::config::Plan;

/// What `render istio` needs besides the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    pub ingress_namespace: String,
    pub image: String,
    pub sha256: Option<String>,
    pub port: u16,
}

/// The rendered manifests, one list per file.
#[derive(Debug, Clone)]
pub struct Manifests {
    pub wasm_plugin: Doc,
    pub gateway: Doc,
    pub virtual_services: Vec<Doc>,
    pub destination_rules: Vec<Doc>,
}

impl Manifests {
    /// `(file name, text)` for `--out DIR`.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "wasmplugin.yaml",
                yaml_docs(std::slice::from_ref(&self.wasm_plugin)),
            ),
            (
                "gateway.yaml",
                yaml_docs(std::slice::from_ref(&self.gateway)),
            ),
            ("virtualservice.yaml", yaml_docs(&self.virtual_services)),
            ("destinationrule.yaml", yaml_docs(&self.destination_rules)),
        ]
    }

    /// Every document, routing first (applying them in this order is safe).
    fn in_order(&self) -> Vec<Doc> {
        let mut docs = self.destination_rules.clone();
        docs.push(self.gateway.clone());
        docs.extend(self.virtual_services.iter().cloned());
        docs.push(self.wasm_plugin.clone());
        docs
    }

    /// The documents as one YAML stream.
    pub fn stream(&self) -> String {
        yaml_docs(&self.in_order())
    }

    /// The documents as a Kubernetes `List` (what `kubectl apply -f -` takes as JSON).
    pub fn list(&self) -> Value {
        let items: Vec<Value> = self.in_order().into_iter().map(|d| d.value).collect();
        json!({"apiVersion": "v1", "kind": "List", "items": items})
    }
}

/// Where the route for an upstream sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dest {
    host: String,
    port: u16,
    subset: Option<String>,
    /// The DestinationRule's name.
    service: String,
}

impl Dest {
    fn to_json(&self) -> Value {
        let mut d = json!({"host": self.host, "port": {"number": self.port}});
        if let (Some(s), Some(obj)) = (&self.subset, d.as_object_mut()) {
            obj.insert("subset".to_string(), json!(s));
        }
        json!([{"destination": d}])
    }
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn destination(upstream: &str, o: &Options) -> Result<Dest, Failure> {
    if let Some(rest) = upstream.strip_prefix("outbound|") {
        let mut parts = rest.splitn(3, '|');
        let (Some(port), Some(subset), Some(host)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Failure::usage(format!(
                "upstream {upstream}: an Istio cluster name is outbound|PORT|SUBSET|HOST"
            )));
        };
        let port = port
            .parse()
            .map_err(|_| Failure::usage(format!("upstream {upstream}: bad port {port:?}")))?;
        let service = host.split('.').next().unwrap_or(host).to_string();
        if host.is_empty() || !dns_label(&service) {
            return Err(Failure::usage(format!(
                "upstream {upstream}: bad host {host:?}"
            )));
        }
        return Ok(Dest {
            host: host.to_string(),
            port,
            subset: (!subset.is_empty()).then(|| subset.to_string()),
            service,
        });
    }
    let (service, subset) = match upstream.rsplit_once('-') {
        Some((s, v)) if !s.is_empty() && !v.is_empty() => (s, Some(v)),
        _ => (upstream, None),
    };
    if !dns_label(service) || subset.is_some_and(|s| !dns_label(s)) {
        return Err(Failure::usage(format!(
            "upstream {upstream}: name upstreams SERVICE-SUBSET (lowercase letters, digits and \
             '-', e.g. fraud-v2) or outbound|PORT|SUBSET|HOST to render Istio routes for them"
        )));
    }
    Ok(Dest {
        host: format!("{service}.{}.svc.cluster.local", o.namespace),
        port: o.port,
        subset: subset.map(str::to_string),
        service: service.to_string(),
    })
}

const GENERATED: &str =
    "Generated by `canary-gate render istio` from the plugin configuration: edit that and render again.";

/// Renders the manifests for `plan` (whose JSON is `config`).
pub fn manifests(plan: &Plan, config: &Value, o: &Options) -> Result<Manifests, Failure> {
    if let Some(h) = &o.sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Failure::usage(
                "--sha256: the image's manifest digest, 64 hex characters (no \"sha256:\")",
            ));
        }
    }
    for (flag, ns) in [
        ("--namespace", &o.namespace),
        ("--ingress-namespace", &o.ingress_namespace),
    ] {
        if !dns_label(ns) {
            return Err(Failure::usage(format!(
                "{flag} {ns:?}: not a Kubernetes namespace name"
            )));
        }
    }
    let with_table = plan.table.is_some();
    let gateway_name = format!("{}-gateway", o.namespace);

    // Host patterns in order of appearance, each with the gateways that serve it.
    let mut patterns: Vec<(String, Vec<usize>)> = Vec::new();
    for (gi, g) in plan.gateways.iter().enumerate() {
        for host in listens_on(g, with_table).0 {
            let host = host.to_ascii_lowercase();
            match patterns.iter_mut().find(|(h, _)| *h == host) {
                Some((_, list)) if !list.contains(&gi) => list.push(gi),
                Some(_) => {}
                None => patterns.push((host, vec![gi])),
            }
        }
    }
    // Patterns served by the same gateways share one VirtualService.
    let mut groups: Vec<(Vec<usize>, Vec<String>)> = Vec::new();
    for (host, gws) in &patterns {
        match groups.iter_mut().find(|(g, _)| g == gws) {
            Some((_, hosts)) => hosts.push(host.clone()),
            None => groups.push((gws.clone(), vec![host.clone()])),
        }
    }

    let mut dests: Vec<Dest> = Vec::new();
    let mut virtual_services = Vec::new();
    for (gws, hosts) in &groups {
        let mut ordered: Vec<usize> = gws.clone();
        // Longest path prefix first, as the filter matches them.
        ordered.sort_by_key(|&gi| {
            std::cmp::Reverse(
                plan.gateway(gi)
                    .map_or(0, |g| listens_on(g, with_table).1.len()),
            )
        });
        let mut http = Vec::new();
        let mut named: Vec<&str> = Vec::new();
        for &gi in &ordered {
            let Some(g) = plan.gateway(gi) else { continue };
            for u in &g.upstreams {
                if named.contains(&u.as_str()) {
                    continue;
                }
                named.push(u);
                let d = destination(u, o)?;
                http.push(json!({
                    "name": u,
                    "match": [{"headers": {plan.route_header.clone(): {"exact": u}}}],
                    "route": d.to_json(),
                }));
                if !dests.contains(&d) {
                    dests.push(d);
                }
            }
        }
        for &gi in &ordered {
            let Some(g) = plan.gateway(gi) else { continue };
            let d = destination(g.upstream_name(0), o)?;
            let prefix = listens_on(g, with_table).1;
            let mut entry = json!({"name": format!("{}-primary", g.name), "route": d.to_json()});
            if let (true, Some(obj)) = (prefix != "/", entry.as_object_mut()) {
                obj.insert("match".to_string(), json!([{"uri": {"prefix": prefix}}]));
            }
            http.push(entry);
        }
        let names: Vec<&str> = gws
            .iter()
            .filter_map(|&gi| plan.gateway(gi).map(|g| g.name.as_str()))
            .collect();
        let vs_name = names.join("-");
        let doc = Doc::new(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": vs_name, "namespace": o.namespace},
            "spec": {"hosts": hosts, "gateways": [gateway_name], "http": http},
        }))
        .comment(&[
            &format!(
                "Gateway{} {} on {}.",
                if names.len() > 1 { "s" } else { "" },
                names.join(", "),
                hosts.join(", ")
            ),
            &format!(
                "One route per upstream, matching the header the filter writes ({}, always",
                plan.route_header
            ),
            "overwritten: a client cannot choose), then a catch-all to the primary for requests the",
            "filter did not route (before the WasmPlugin is applied, say).",
            GENERATED,
        ]);
        virtual_services.push(doc);
    }

    let mut destination_rules = Vec::new();
    let mut hosts_done: Vec<&str> = Vec::new();
    for d in &dests {
        if hosts_done.contains(&d.host.as_str()) {
            continue;
        }
        hosts_done.push(&d.host);
        let subsets: Vec<Value> = dests
            .iter()
            .filter(|x| x.host == d.host)
            .filter_map(|x| x.subset.as_ref())
            .map(|s| json!({"name": s, "labels": {"version": s}}))
            .collect();
        if subsets.is_empty() {
            continue;
        }
        destination_rules.push(
            Doc::new(json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": d.service, "namespace": o.namespace},
                "spec": {"host": d.host, "subsets": subsets},
            }))
            .comment(&[
                &format!(
                    "One subset per version of {}, selected by the pods' `version` label.",
                    d.service
                ),
                GENERATED,
            ]),
        );
    }

    let all_hosts: Vec<&str> = patterns.iter().map(|(h, _)| h.as_str()).collect();
    let gateway = Doc::new(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": gateway_name, "namespace": o.namespace},
        "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": all_hosts}],
        },
    }))
    .comment(&[
        "The ingress listener the VirtualServices bind to, for every host of every gateway (served",
        "by the pods labelled istio: ingressgateway, the pods the WasmPlugin selects).",
        GENERATED,
    ]);

    let mut spec = json!({
        "selector": {"matchLabels": {"istio": "ingressgateway"}},
        "url": o.image,
        "imagePullPolicy": "IfNotPresent",
        "type": "HTTP",
        "phase": "AUTHN",
        "failStrategy": "FAIL_CLOSE",
        "pluginName": "canary-gate",
        "pluginConfig": config,
    });
    if let (Some(h), Some(obj)) = (&o.sha256, spec.as_object_mut()) {
        obj.insert("sha256".to_string(), json!(h));
    }
    let mut wasm_plugin = Doc::new(json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": "canary-gate", "namespace": o.ingress_namespace},
        "spec": spec,
    }))
    .comment(&[
        "canary-gate on an Istio ingress gateway.",
        "",
        "istiod turns this into the Envoy Wasm filter `<namespace>.canary-gate`: root_id = pluginName,",
        "runtime V8, pluginConfig serialised as JSON, failStrategy FAIL_CLOSE = failure_policy",
        "FAIL_CLOSED. Promotion and rollback: change pluginConfig (canary-gate promote / rollback)",
        "and `kubectl apply` again; istiod pushes it to the gateways (ECDS), no pod restarts, and a",
        "configuration the filter refuses leaves the previous one serving. See docs/istio.md.",
        GENERATED,
    ])
    .note("metadata.namespace", &["A WasmPlugin applies to the workloads of its own namespace: the ingress gateway's."])
    .note("spec.url", &["Built and pushed by scripts/package.sh (Istio's \"compat\" image: one layer with plugin.wasm)."])
    .note("spec.phase", &["Authenticate and pick the version before Istio's own authn/authz filters and the router."])
    .note("spec.failStrategy", &["If the module cannot be fetched or loaded, refuse traffic instead of skipping the gate."])
    .note("spec.pluginConfig", &["The plugin configuration (canary-gate check validates it as the filter does)."]);
    wasm_plugin = if o.sha256.is_some() {
        wasm_plugin.note(
            "spec.sha256",
            &["The image's manifest digest, printed by scripts/package.sh."],
        )
    } else {
        wasm_plugin.note(
            "spec.imagePullPolicy",
            &["Pin the image with `sha256: <digest printed by scripts/package.sh>` (canary-gate render istio --sha256)."],
        )
    };

    Ok(Manifests {
        wasm_plugin,
        gateway,
        virtual_services,
        destination_rules,
    })
}

pub fn run(a: &RenderIstioArgs, output: Output) -> Outcome {
    let loaded = input::load(&a.file)?;
    let options = Options {
        namespace: a.namespace.clone(),
        ingress_namespace: a.ingress_namespace.clone(),
        image: a.image.clone().unwrap_or_else(|| {
            format!("oci://registry.example.com/canary-gate:{}", crate::VERSION)
        }),
        sha256: a.sha256.clone(),
        port: a.port,
    };
    let m = manifests(&loaded.plan, &loaded.value, &options)?;
    match &a.out {
        Some(dir) => {
            fs::create_dir_all(dir)
                .map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?;
            for (file, text) in m.files() {
                write(dir, file, &text)?;
            }
            eprintln!(
                "render istio: wrote wasmplugin.yaml, gateway.yaml, virtualservice.yaml ({}), destinationrule.yaml ({}) in {}",
                m.virtual_services.len(),
                m.destination_rules.len(),
                dir.display()
            );
        }
        None if output == Output::Json => print_json(&m.list()),
        None => print!("{}", m.stream()),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn options() -> Options {
        Options {
            namespace: "models".into(),
            ingress_namespace: "istio-system".into(),
            image: "oci://r/canary-gate:1".into(),
            sha256: None,
            port: 8080,
        }
    }

    #[test]
    fn upstream_names_become_subsets_of_services() {
        let o = options();
        let d = destination("fraud-v2", &o).unwrap();
        assert_eq!(
            (
                d.host.as_str(),
                d.port,
                d.subset.as_deref(),
                d.service.as_str()
            ),
            ("fraud.models.svc.cluster.local", 8080, Some("v2"), "fraud")
        );
        let d = destination("outbound|9000|v1|model.ns.svc.cluster.local", &o).unwrap();
        assert_eq!(
            (d.host.as_str(), d.port, d.subset.as_deref()),
            ("model.ns.svc.cluster.local", 9000, Some("v1"))
        );
        assert_eq!(destination("model", &o).unwrap().subset, None);
        assert!(destination("Model_V1", &o).is_err());
    }

    #[test]
    fn hosts_shared_by_gateways_get_one_virtual_service_longest_prefix_first() {
        let text = r#"{"gateways":[
            {"name":"fraud","hosts":["models.example.com"],"path_prefix":"/fraud","primary":"fraud-v1",
             "canaries":[{"name":"fraud-v2","percent":5}]},
            {"name":"admin","hosts":["models.example.com"],"path_prefix":"/fraud/admin","primary":"admin-v1"},
            {"name":"chat","hosts":["chat.example.com","*.chat.example.com"],"primary":"chat-v1"}]}"#;
        let plan = parse(text.as_bytes()).unwrap();
        let config: Value = serde_json::from_str(text).unwrap();
        let m = manifests(&plan, &config, &options()).unwrap();
        assert_eq!(m.virtual_services.len(), 2);
        let vs = &m.virtual_services[0].value;
        assert_eq!(vs["metadata"]["name"], "fraud-admin");
        let names: Vec<&str> = vs["spec"]["http"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "admin-v1",
                "fraud-v1",
                "fraud-v2",
                "admin-primary",
                "fraud-primary"
            ]
        );
        assert_eq!(
            vs["spec"]["http"][3]["match"][0]["uri"]["prefix"],
            "/fraud/admin"
        );
        let chat = &m.virtual_services[1].value;
        assert_eq!(
            chat["spec"]["hosts"],
            json!(["chat.example.com", "*.chat.example.com"])
        );
        assert!(
            chat["spec"]["http"][1].get("match").is_none(),
            "the / catch-all matches everything"
        );
        assert_eq!(m.destination_rules.len(), 3);
        assert_eq!(
            m.gateway.value["spec"]["servers"][0]["hosts"],
            json!([
                "models.example.com",
                "chat.example.com",
                "*.chat.example.com"
            ])
        );
    }
}
