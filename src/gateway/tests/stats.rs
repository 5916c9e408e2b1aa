//! Stat names run through Envoy's tag extraction, emulated with the regexes an
//! Istio sidecar and the demo bootstrap actually ship.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;

use crate::gateway::stats::{
    check_label_value, istio_default_tag_collisions, stat_name, Label, StatNameError,
    ENVOY_WASM_NAMESPACE, ISTIO_EXTRA_STAT_TAGS, STATS_TAGS, STAT_PREFIX,
};

/// The fixed `stats_tags` of Istio's `tools/packaging/common/envoy_bootstrap.json`
/// (`use_all_default_tags: false`); the `extraStatTags` ones are added per test.
const ISTIO_BOOTSTRAP_TAGS: &[(&str, &str)] = &[
    (
        "cluster_name",
        r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)",
    ),
    ("tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
    ("response_code", r"_rq(_(\d{3}))$"),
    ("response_code_class", r"_rq(_(\dxx))$"),
    (
        "http_conn_manager_listener_prefix",
        r"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
    ),
    (
        "http_conn_manager_prefix",
        r"^http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
    ),
    (
        "listener_address",
        r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
    ),
    (
        "mongo_prefix",
        r"^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$",
    ),
    ("cache", r"(cache\.(.+?)\.)"),
    ("component", r"(component\.(.+?)\.)"),
    ("tag", r"(tag\.(.+?);\.)"),
    ("wasm_filter", r"(wasm_filter\.(.+?)\.)"),
    ("authz_enforce_result", r"rbac(\.(allowed|denied))"),
    ("authz_dry_run_action", r"(\.istio_dry_run_(allow|deny)_)"),
    ("authz_dry_run_result", r"(\.shadow_(allowed|denied))"),
];

/// Envoy's built-in extractors (`source/common/config/well_known_names.cc`),
/// which a plain bootstrap such as the demo's keeps (`use_all_default_tags`).
const ENVOY_DEFAULT_TAGS: &[(&str, &str)] = &[
    ("envoy.response_code", r"_rq(_(\d{3}))$"),
    ("envoy.response_code_class", r"_rq_(\d)xx$"),
    (
        "envoy.dyanmodb_partition_id",
        r"^http(?=\.).*?\.dynamodb\.table(?=\.).*?\.capacity(?=\.).*?(\.__partition_id=(\w{7}))$",
    ),
    (
        "envoy.dynamodb_operation",
        r"^http(?=\.).*?\.dynamodb.(?:operation|table(?=\.).*?\.capacity)(\.(.*?))(?:\.|$)",
    ),
    (
        "envoy.mongo_callsite",
        r"^mongo(?=\.).*?\.collection(?=\.).*?\.callsite\.((.*?)\.).*?query.\w+?$",
    ),
    (
        "envoy.dynamodb_table",
        r"^http(?=\.).*?\.dynamodb.(?:table|error)\.((.*?)\.)",
    ),
    (
        "envoy.mongo_collection",
        r"^mongo(?=\.).*?\.collection\.((.*?)\.).*?query.\w+?$",
    ),
    ("envoy.mongo_cmd", r"^mongo(?=\.).*?\.cmd\.((.*?)\.)\w+?$"),
    (
        "envoy.grpc_bridge_method",
        r"^cluster(?=\.).*?\.grpc(?=\.).*\.((.*?)\.)\w+?$",
    ),
    (
        "envoy.http_user_agent",
        r"^http(?=\.).*?\.user_agent\.((.*?)\.)\w+?$",
    ),
    (
        "envoy.virtual_cluster",
        r"^vhost(?=\.).*?\.vcluster\.((.*?)\.)\w+?$",
    ),
    (
        "envoy.fault_downstream_cluster",
        r"^http(?=\.).*?\.fault\.((.*?)\.)\w+?$",
    ),
    (
        "envoy.ssl_cipher",
        r"^listener(?=\.).*?\.ssl\.cipher(\.(.*?))$",
    ),
    (
        "envoy.ssl_cipher_suite",
        r"^cluster(?=\.).*?\.ssl\.ciphers(\.(.*?))$",
    ),
    (
        "envoy.grpc_bridge_service",
        r"^cluster(?=\.).*?\.grpc\.((.*?)\.)",
    ),
    ("envoy.tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
    ("envoy.udp_prefix", r"^udp\.((.*?)\.)\w+?$"),
    (
        "envoy.clientssl_prefix",
        r"^auth\.clientssl\.((.*?)\.)\w+?$",
    ),
    ("envoy.ratelimit_prefix", r"^ratelimit\.((.*?)\.)\w+?$"),
    ("envoy.cluster_name", r"^cluster\.(([^\.]+)\.).*"),
    (
        "envoy.http_conn_manager_prefix",
        r"^listener(?=\.).*?\.http\.((.*?)\.)",
    ),
    ("envoy.http_conn_manager_prefix", r"^http\.((.*?)\.)"),
    (
        "envoy.listener_address",
        r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
    ),
    ("envoy.virtual_host", r"^vhost\.((.*?)\.)"),
    ("envoy.mongo_prefix", r"^mongo\.((.*?)\.)"),
    (
        "envoy.rds_route_config",
        r"^http(?=\.).*?\.rds\.((.*?)\.)\w+?$",
    ),
    ("envoy.worker_id", r"^listener_manager\.((worker_\d+)\.)"),
];

/// An Envoy tag extractor (`TagExtractorStdRegexImpl`): the first match of the
/// regex in the full name; group 1 is removed from the name, group 2 (or 1) is
/// the value.
struct Extractor {
    tag: String,
    regex: Regex,
}

/// Compiles an ECMAScript (std::regex) extractor with the `regex` crate, which
/// has no look-ahead: `(?=\.).*?` (a possibly empty run that starts with '.') is
/// rewritten `(?:\..*?)??`, and the greedy `(?=\.).*` `(?:\..*)?`, which match
/// the same strings in the same order of preference.
fn extractor(tag: &str, ecmascript: &str) -> Extractor {
    let rewritten = ecmascript
        .replace(r"(?=\.).*?", r"(?:\..*?)??")
        .replace(r"(?=\.).*", r"(?:\..*)?");
    assert!(!rewritten.contains("(?="), "{ecmascript}");
    Extractor {
        tag: tag.to_string(),
        regex: Regex::new(&rewritten).unwrap(),
    }
}

/// What an Istio sidecar runs with `extraStatTags: gateway,upstream,reason,class`:
/// the bootstrap's extractors plus the generated ones. (Order does not matter:
/// Envoy runs every extractor on the original name.)
fn istio() -> &'static [Extractor] {
    static ISTIO: OnceLock<Vec<Extractor>> = OnceLock::new();
    ISTIO.get_or_init(|| {
        ISTIO_BOOTSTRAP_TAGS
            .iter()
            .map(|(t, r)| extractor(t, r))
            .chain(
                ISTIO_EXTRA_STAT_TAGS
                    .split(',')
                    .map(|tag| extractor(tag, &format!(r"({tag}=\.=(.*?);\.;)"))),
            )
            .collect()
    })
}

/// What the demo's plain Envoy runs: its `stats_tags`, then Envoy's defaults.
fn demo() -> &'static [Extractor] {
    static DEMO: OnceLock<Vec<Extractor>> = OnceLock::new();
    DEMO.get_or_init(|| {
        STATS_TAGS
            .iter()
            .chain(ENVOY_DEFAULT_TAGS)
            .map(|(t, r)| extractor(t, r))
            .collect()
    })
}

/// Envoy's tag extraction: tags, and the tag-extracted name.
fn extract(extractors: &[Extractor], name: &str) -> (Vec<(String, String)>, String) {
    let mut removed = vec![false; name.len()];
    let mut tags = Vec::new();
    for e in extractors {
        let Some(caps) = e.regex.captures(name) else {
            continue;
        };
        let Some(remove) = caps.get(1) else { continue };
        let value = caps.get(2).unwrap_or(remove);
        tags.push((e.tag.clone(), value.as_str().to_string()));
        removed[remove.range()].iter_mut().for_each(|r| *r = true);
    }
    let rest = name
        .char_indices()
        .filter(|(i, _)| !removed[*i])
        .map(|(_, c)| c)
        .collect();
    (tags, rest)
}

/// The Prometheus metric name Envoy's admin endpoint shows for a tag-extracted
/// name in the wasm custom namespace: the namespace stripped, every character
/// outside `[a-zA-Z0-9_]` turned into `_`.
fn prometheus_name(extracted: &str) -> String {
    let bare = extracted
        .strip_prefix(&format!("{ENVOY_WASM_NAMESPACE}."))
        .expect("still in the custom namespace");
    bare.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The full name as Envoy stores it.
fn envoy_name(name: &str) -> String {
    format!("{ENVOY_WASM_NAMESPACE}.{name}")
}

const METRICS: [&str; 4] = ["requests", "auth_allowed", "auth_denied", "responses"];

fn values(label: Label) -> &'static [&'static str] {
    match label {
        Label::Gateway => &["fraud", "a", "fraud-v2", "0", "chat-9-x", "tag", "cache"],
        Label::Upstream => &[
            "fraud-v2",
            "model-v1",
            "outbound|8080|v2|model.default.svc.cluster.local",
            "outbound|80||fraud.ns.svc.cluster.local",
            "inbound|8080||",
            "a.b_c|d:e",
            "v1;x",
            "a;",
            ";",
            "=",
            "a=b",
            "a=.",
            ".",
            "..",
            ";.x",
            "x;.y",
            "=.;",
            ".=",
            "_",
            "~!@#$%^&*()[]{}<>?/\\\"'`",
            "gateway",
            "upstream=",
            "tag",
            "cache",
        ],
        Label::Reason => &["missing_credentials", "ambiguous_path", "unmatched", "rbac"],
        Label::Class => &["2xx", "5xx", "grpc_error"],
    }
}

/// Every ordered selection of distinct labels (including none).
fn label_sets() -> Vec<Vec<Label>> {
    fn grow(prefix: Vec<Label>, out: &mut Vec<Vec<Label>>) {
        out.push(prefix.clone());
        for l in Label::ALL {
            if !prefix.contains(&l) {
                let mut next = prefix.clone();
                next.push(l);
                grow(next, out);
            }
        }
    }
    let mut out = Vec::new();
    grow(Vec::new(), &mut out);
    out
}

/// Checks one name under both extractor sets: exactly the expected labels, the
/// bare metric name; returns the extra (colliding) tags Istio added.
fn round_trip(metric: &str, labels: &[(Label, &str)]) -> BTreeSet<String> {
    let name = stat_name(metric, labels).unwrap();
    let want: BTreeSet<(String, String)> = labels
        .iter()
        .map(|(l, v)| (l.tag_name().to_string(), v.to_string()))
        .collect();
    let full = envoy_name(&name);
    let mut extras = BTreeSet::new();
    for (setup, extractors) in [("istio", istio()), ("demo", demo())] {
        let (tags, rest) = extract(extractors, &full);
        assert_eq!(
            rest,
            format!("{ENVOY_WASM_NAMESPACE}.{STAT_PREFIX}.{metric}"),
            "{setup}: {full}"
        );
        assert_eq!(
            prometheus_name(&rest),
            format!("canary_gate_{metric}"),
            "{setup}: {full}"
        );
        let ours: BTreeSet<(String, String)> = tags
            .iter()
            .filter(|(t, _)| Label::ALL.iter().any(|l| l.tag_name() == t))
            .cloned()
            .collect();
        assert_eq!(ours, want, "{setup}: {full}");
        assert_eq!(
            ours.len(),
            tags.iter()
                .filter(|(t, _)| ours.iter().any(|(o, _)| o == t))
                .count()
        );
        for (tag, _) in tags.iter().filter(|t| !ours.contains(t)) {
            assert_eq!(
                setup, "istio",
                "the demo adds no other tag: {full} got {tag}"
            );
            extras.insert(tag.clone());
        }
    }
    extras
}

#[test]
fn the_encoding_is_istios() {
    assert_eq!(
        stat_name(
            "requests",
            &[(Label::Gateway, "fraud"), (Label::Upstream, "fraud-v2")]
        )
        .unwrap(),
        "canary_gate.gateway=.=fraud;.;upstream=.=fraud-v2;.;requests"
    );
    assert_eq!(
        stat_name("auth_allowed", &[]).unwrap(),
        "canary_gate.auth_allowed"
    );
    assert_eq!(Label::Gateway.istio_regex(), r"(gateway=\.=(.*?);\.;)");
    let names: Vec<&str> = Label::ALL.iter().map(|l| l.tag_name()).collect();
    assert_eq!(ISTIO_EXTRA_STAT_TAGS, names.join(","));
    let demo_names: Vec<&str> = STATS_TAGS.iter().map(|(t, _)| *t).collect();
    assert_eq!(demo_names, names);
}

#[test]
fn the_example_becomes_one_labelled_series() {
    let name = stat_name(
        "requests",
        &[(Label::Gateway, "fraud"), (Label::Upstream, "fraud-v2")],
    )
    .unwrap();
    for extractors in [istio(), demo()] {
        let (tags, rest) = extract(extractors, &envoy_name(&name));
        assert_eq!(
            tags,
            [
                ("gateway".to_string(), "fraud".to_string()),
                ("upstream".into(), "fraud-v2".into())
            ]
        );
        assert_eq!(prometheus_name(&rest), "canary_gate_requests");
    }
    // Without extractors the labels stay, flattened, in the name.
    assert_eq!(
        prometheus_name(&envoy_name(&name)),
        "canary_gate_gateway___fraud___upstream___fraud_v2___requests"
    );
}

#[test]
fn every_label_combination_round_trips() {
    let mut checked = 0;
    for metric in METRICS {
        for set in label_sets() {
            // Vary one label at a time over its values, the others at their first.
            for (k, varied) in set.iter().enumerate() {
                for value in values(*varied) {
                    let labels: Vec<(Label, &str)> = set
                        .iter()
                        .enumerate()
                        .map(|(j, l)| (*l, if j == k { *value } else { values(*l)[0] }))
                        .collect();
                    let extras = round_trip(metric, &labels);
                    assert!(extras.is_empty(), "{labels:?}: {extras:?}");
                    checked += 1;
                }
            }
            if set.is_empty() {
                assert!(round_trip(metric, &[]).is_empty());
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn istio_cluster_names_survive_whole() {
    for upstream in [
        "outbound|8080|v2|model.default.svc.cluster.local",
        "outbound|9090|canary|fraud-model.ml-serving.svc.cluster.local",
        "outbound_.8080_.v2_.model.default.svc.cluster.local",
        "inbound|8080||",
        "model-v2.default.svc.cluster.local:8080",
    ] {
        let extras = round_trip(
            "requests",
            &[(Label::Gateway, "fraud"), (Label::Upstream, upstream)],
        );
        assert!(extras.is_empty(), "{upstream}: {extras:?}");
    }
}

#[test]
fn istio_default_tag_collisions_are_reported_and_harmless() {
    let cases: &[(&str, &[&str])] = &[
        ("outbound|80||model-cache.ns.svc.cluster.local", &["cache"]),
        (
            "outbound|80||component.ns.svc.cluster.local",
            &["component"],
        ),
        ("outbound|80||stag.ns.svc.cluster.local", &["tag"]),
        ("tag.", &["tag"]),
        ("x.wasm_filter.y", &["wasm_filter"]),
        ("svc.rbac.allowed", &["authz_enforce_result"]),
        ("svc.rbac.denied.v2", &["authz_enforce_result"]),
        ("a.istio_dry_run_allow_x", &["authz_dry_run_action"]),
        ("a.shadow_denied", &["authz_dry_run_result"]),
        ("cache.component.tag.x", &["cache", "component", "tag"]),
    ];
    for (upstream, tags) in cases {
        let reported = istio_default_tag_collisions(upstream);
        assert_eq!(reported, *tags, "{upstream}");
        for labels in [
            vec![(Label::Upstream, *upstream)],
            vec![
                (Label::Gateway, "fraud"),
                (Label::Upstream, *upstream),
                (Label::Class, "2xx"),
            ],
            vec![(Label::Upstream, *upstream), (Label::Reason, "unmatched")],
        ] {
            let extras = round_trip("requests", &labels);
            let reported: BTreeSet<String> = reported.iter().map(|t| t.to_string()).collect();
            assert!(
                extras.is_subset(&reported),
                "{upstream}: {extras:?} vs {reported:?}"
            );
        }
    }
    for clean in [
        "fraud-v2",
        "outbound|8080|v2|model.default.svc.cluster.local",
        "cache",
        "tag",
        "rbac",
    ] {
        assert!(istio_default_tag_collisions(clean).is_empty(), "{clean}");
    }
}

#[test]
fn random_values_round_trip_or_are_refused() {
    let alphabet: Vec<char> = ".;=.;=.;=|_-:a1/\\\"tagcheTAG".chars().collect();
    let mut rng = fastrand::Rng::with_seed(11);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let len = rng.usize(1..9);
        let value: String = (0..len)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        if check_label_value(&value).is_err() {
            refused += 1;
            continue;
        }
        accepted += 1;
        let metric = METRICS[rng.usize(..METRICS.len())];
        let labels = [
            (Label::Gateway, "fraud"),
            (Label::Upstream, value.as_str()),
            (Label::Reason, "x"),
        ];
        let start = rng.usize(0..3);
        let extras = round_trip(metric, &labels[start..]);
        let reported: BTreeSet<String> = istio_default_tag_collisions(&value)
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert!(
            extras.is_subset(&reported),
            "{value}: {extras:?} vs {reported:?}"
        );
    }
    assert!(
        accepted > 5000 && refused > 200,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn refused_values_would_really_break_the_label() {
    // Built by hand (stat_name refuses them), with the upstream before the
    // gateway: a wrong value is extracted for one of the two.
    for value in ["a;.;b", "a;.", "x;gateway=.=evil", "gateway=.=evil"] {
        assert!(check_label_value(value).is_err(), "{value}");
        let name = envoy_name(&format!(
            "canary_gate.upstream=.={value};.;gateway=.=g;.;requests"
        ));
        for extractors in [istio(), demo()] {
            let (tags, rest) = extract(extractors, &name);
            let tag = |name: &str| {
                tags.iter()
                    .find(|(t, _)| t == name)
                    .map(|(_, v)| v.as_str())
            };
            let intact = tag("upstream") == Some(value)
                && tag("gateway") == Some("g")
                && rest == "wasmcustom.canary_gate.requests";
            assert!(!intact, "{value} would have survived: {tags:?} {rest}");
        }
    }
}

#[test]
fn stat_name_refuses_what_cannot_round_trip() {
    let err = |metric: &str, labels: &[(Label, &str)]| stat_name(metric, labels).unwrap_err();
    assert_eq!(err("", &[]), StatNameError::Metric(String::new()));
    for metric in [
        "Requests",
        "2xx",
        "_x",
        "a.b",
        "a-b",
        "upstream_rq_200",
        "x_rq_",
        "r\u{e9}q",
    ] {
        assert_eq!(
            err(metric, &[]),
            StatNameError::Metric(metric.into()),
            "{metric}"
        );
    }
    assert_eq!(
        err("a.b", &[]).to_string(),
        "metric \"a.b\": use [a-z][a-z0-9_]* without \"_rq_\""
    );
    assert_eq!(
        err("requests", &[(Label::Gateway, "a"), (Label::Gateway, "b")]),
        StatNameError::Repeated(Label::Gateway)
    );
    assert_eq!(
        err("requests", &[(Label::Gateway, "a"), (Label::Gateway, "b")]).to_string(),
        "label gateway given twice"
    );
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        (
            "a b",
            "only visible ASCII characters, no spaces, can be a label value",
        ),
        (
            "a\tb",
            "only visible ASCII characters, no spaces, can be a label value",
        ),
        (
            "caf\u{e9}",
            "only visible ASCII characters, no spaces, can be a label value",
        ),
        ("a=.=b", "contains \"=.=\", the tag separator"),
        (
            "a;.;b",
            "contains \";.;\" or ends with \";.\", the tag terminator",
        ),
        (
            "a;.",
            "contains \";.;\" or ends with \";.\", the tag terminator",
        ),
    ];
    for (value, reason) in cases {
        assert_eq!(check_label_value(value), Err(*reason), "{value:?}");
        assert_eq!(
            err("requests", &[(Label::Upstream, value)]).to_string(),
            format!("{value:?} cannot be the upstream label of a metric: {reason}")
        );
    }
}

#[test]
fn the_demo_extractors_leave_other_stats_alone() {
    let demo: Vec<Extractor> = STATS_TAGS.iter().map(|(t, r)| extractor(t, r)).collect();
    for name in [
        "cluster.outbound|80||x.ns.svc.cluster.local.upstream_rq_200",
        "http.ingress.downstream_rq_total",
        "wasmcustom.other_plugin.gateway=.=x;.;requests",
        "wasmcustom.canary_gate_requests",
    ] {
        let (tags, rest) = extract(&demo, name);
        assert!(tags.is_empty(), "{name}: {tags:?}");
        assert_eq!(rest, name);
    }
}
