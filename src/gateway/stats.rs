//! Metric names with labels, in the encoding Istio's stats tags extract.
//!
//! A proxy-wasm filter can only give a metric a *name*; labels have to be
//! encoded in it and cut out again by the tag extractors of Envoy's bootstrap
//! (`stats_config.stats_tags`: a regex whose first group is removed from the
//! name and whose second group is the tag value). Istio's bootstrap
//! (`tools/packaging/common/envoy_bootstrap.json`) turns every tag listed in
//! `extraStatTags` into the extractor `(TAG=\.=(.*?);\.;)`, so the encoding is
//! `TAG=.=VALUE;.;`, the one Istio's own wasm stats used.
//!
//! [`stat_name`] builds
//!
//! ```text
//! canary_gate.gateway=.=fraud;.;upstream=.=fraud-v2;.;requests
//! ```
//!
//! Envoy prefixes it with the custom stat namespace `wasmcustom.`; the tag
//! extractors remove `gateway=.=fraud;.;` and `upstream=.=fraud-v2;.;`, leaving
//! `wasmcustom.canary_gate.requests`; the Prometheus endpoint strips the
//! namespace and turns `.` into `_`:
//!
//! ```text
//! canary_gate_requests{gateway="fraud",upstream="fraud-v2"}
//! ```
//!
//! - **Istio**: add the tags to `extraStatTags`, e.g.
//!   `meshConfig.defaultConfig.extraStatTags: [gateway, upstream, reason, class]`
//!   or the pod annotation `sidecar.istio.io/extraStatTags: gateway,upstream,reason,class`
//!   ([`ISTIO_EXTRA_STAT_TAGS`]). Nothing else: Istio's stats inclusion list
//!   always keeps names starting with `wasm`, which `wasmcustom.` does.
//! - **Plain Envoy** (the demo): the [`STATS_TAGS`] extractors. They are Istio's,
//!   anchored to `^wasmcustom\.canary_gate\.` so Envoy tries them only on this
//!   filter's metrics; on these names they extract exactly what Istio's do
//!   (the tests run both).
//!
//! Without extractors the labels stay in the name
//! (`canary_gate_gateway___fraud___upstream___fraud_v2___requests`).
//!
//! Label values are checked by [`check_label_value`]: visible ASCII, and never
//! containing `=.=` or `;.;` or ending in `;.` (that would end the value early).
//! A `.` , `_`, `|` or `:` is fine, so Istio cluster names such as
//! `outbound|8080|v2|model.default.svc.cluster.local` survive whole.
//!
//! One caveat on Istio only: a few of Istio's default extractors are not
//! anchored (`cache`, `component`, `tag`, `wasm_filter`, the `rbac` and dry-run
//! ones), so a value containing e.g. `cache.` (`outbound|80||model-cache.ns.svc.cluster.local`)
//! also gets that extra label on its series. The value and the metric name stay
//! right. [`istio_default_tag_collisions`] tells which, for a configure-time
//! warning.

use std::fmt;

/// The first component of every metric name of this filter.
pub const STAT_PREFIX: &str = "canary_gate";

/// The namespace Envoy puts before every proxy-wasm metric name.
pub const ENVOY_WASM_NAMESPACE: &str = "wasmcustom";

/// A label of the filter's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// The gateway name (`[a-z0-9-]`).
    Gateway,
    /// The upstream the request was routed to (visible ASCII, may contain `.`, `|`).
    Upstream,
    /// Why a request was refused (`[a-z_]`).
    Reason,
    /// A response class (`2xx`, `grpc_error`).
    Class,
}

impl Label {
    pub const ALL: [Label; 4] = [Label::Gateway, Label::Upstream, Label::Reason, Label::Class];

    /// The Envoy tag name and Prometheus label name.
    pub fn tag_name(self) -> &'static str {
        match self {
            Label::Gateway => "gateway",
            Label::Upstream => "upstream",
            Label::Reason => "reason",
            Label::Class => "class",
        }
    }

    /// The extractor Istio generates for this tag when it is in `extraStatTags`.
    pub fn istio_regex(self) -> String {
        format!(r"({}=\.=(.*?);\.;)", self.tag_name())
    }
}

/// The tags to add to Istio's `extraStatTags` (comma-separated, as the
/// `sidecar.istio.io/extraStatTags` annotation takes them).
pub const ISTIO_EXTRA_STAT_TAGS: &str = "gateway,upstream,reason,class";

/// The `stats_config.stats_tags` for a plain Envoy bootstrap (the demo), as
/// `(tag_name, regex)`. Envoy applies each to the full name
/// (`wasmcustom.canary_gate....`); group 1 is removed, group 2 is the value.
pub const STATS_TAGS: [(&str, &str); 4] = [
    (
        "gateway",
        r"^wasmcustom\.canary_gate\..*?(gateway=\.=(.*?);\.;)",
    ),
    (
        "upstream",
        r"^wasmcustom\.canary_gate\..*?(upstream=\.=(.*?);\.;)",
    ),
    (
        "reason",
        r"^wasmcustom\.canary_gate\..*?(reason=\.=(.*?);\.;)",
    ),
    (
        "class",
        r"^wasmcustom\.canary_gate\..*?(class=\.=(.*?);\.;)",
    ),
];

/// Why a stat name cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatNameError {
    /// The metric is not `[a-z][a-z0-9_]*` or contains `_rq_`.
    Metric(String),
    /// A label value is unusable (see [`check_label_value`]).
    Value {
        label: Label,
        value: String,
        reason: &'static str,
    },
    /// The same label given twice.
    Repeated(Label),
}

impl fmt::Display for StatNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatNameError::Metric(metric) => {
                write!(f, "metric {metric:?}: use [a-z][a-z0-9_]* without \"_rq_\"")
            }
            StatNameError::Value {
                label,
                value,
                reason,
            } => write!(
                f,
                "{value:?} cannot be the {} label of a metric: {reason}",
                label.tag_name()
            ),
            StatNameError::Repeated(label) => {
                write!(f, "label {} given twice", label.tag_name())
            }
        }
    }
}

impl std::error::Error for StatNameError {}

/// Checks that `value` survives as a label value: not empty, visible ASCII
/// (0x21-0x7E), no `=.=` (would look like a tag), no `;.;` and no trailing `;.`
/// (either would end the value early). The error is the reason. Use it at
/// configure time on upstream names so that the error names the field.
pub fn check_label_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("empty");
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("only visible ASCII characters, no spaces, can be a label value");
    }
    if value.contains("=.=") {
        return Err("contains \"=.=\", the tag separator");
    }
    if value.contains(";.;") || value.ends_with(";.") {
        return Err("contains \";.;\" or ends with \";.\", the tag terminator");
    }
    Ok(())
}

/// Builds the stat name of `metric` with `labels`, in the given order:
/// `canary_gate.` + `TAG=.=VALUE;.;` for each label + `metric`. With the
/// extractors of [`STATS_TAGS`] or Istio's `extraStatTags`, Prometheus shows
/// `canary_gate_<metric>{TAG="VALUE",...}`.
///
/// `metric` is `[a-z][a-z0-9_]*` and must not contain `_rq_` (Envoy's response
/// code extractors own names ending in `_rq_200` / `_rq_2xx`).
pub fn stat_name(metric: &str, labels: &[(Label, &str)]) -> Result<String, StatNameError> {
    let valid_metric = metric
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase())
        && metric
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !metric.contains("_rq_");
    if !valid_metric {
        return Err(StatNameError::Metric(metric.to_string()));
    }
    let mut name = String::with_capacity(
        STAT_PREFIX.len()
            + 1
            + metric.len()
            + labels
                .iter()
                .map(|(l, v)| l.tag_name().len() + v.len() + 6)
                .sum::<usize>(),
    );
    name.push_str(STAT_PREFIX);
    name.push('.');
    for (n, (label, value)) in labels.iter().enumerate() {
        if labels.iter().take(n).any(|(earlier, _)| earlier == label) {
            return Err(StatNameError::Repeated(*label));
        }
        check_label_value(value).map_err(|reason| StatNameError::Value {
            label: *label,
            value: value.to_string(),
            reason,
        })?;
        name.push_str(label.tag_name());
        name.push_str("=.=");
        name.push_str(value);
        name.push_str(";.;");
    }
    name.push_str(metric);
    Ok(name)
}

/// The Istio default tags (from `envoy_bootstrap.json`) whose unanchored
/// extractors would also match inside `value` once it is a label value, adding
/// that label to the series (the value and the metric name are unaffected).
/// Conservative: it may name a tag whose regex would need more context to
/// match, never misses one. Empty for gateway names, reasons and classes.
pub fn istio_default_tag_collisions(value: &str) -> Vec<&'static str> {
    let has = |needle: &str| value.contains(needle);
    let mut tags = Vec::new();
    // `(cache\.(.+?)\.)`, `(component\.(.+?)\.)`, `(wasm_filter\.(.+?)\.)`:
    // the terminator `;.;` always supplies the closing '.'.
    if has("cache.") {
        tags.push("cache");
    }
    if has("component.") {
        tags.push("component");
    }
    // `(tag\.(.+?);\.)`: the terminator supplies the `;.`.
    if has("tag.") {
        tags.push("tag");
    }
    if has("wasm_filter.") {
        tags.push("wasm_filter");
    }
    // `rbac(\.(allowed|denied))`
    if has("rbac.allowed") || has("rbac.denied") {
        tags.push("authz_enforce_result");
    }
    // `(\.istio_dry_run_(allow|deny)_)`
    if has(".istio_dry_run_allow_") || has(".istio_dry_run_deny_") {
        tags.push("authz_dry_run_action");
    }
    // `(\.shadow_(allowed|denied))`
    if has(".shadow_allowed") || has(".shadow_denied") {
        tags.push("authz_dry_run_result");
    }
    tags
}

/// A stat name taken apart: the labels in order (tag name, value) and the metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedStatName<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub metric: &'a str,
}

impl ParsedStatName<'_> {
    /// The value of label `tag`, if the name has it.
    pub fn label(&self, tag: &str) -> Option<&str> {
        self.labels.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
    }
}

/// The inverse of [`stat_name`], for tools that read Envoy's raw stat names
/// (`/stats`) without relying on tag extractors: `name` with or without the
/// `wasmcustom.` namespace. `None` if it is not one of this filter's names.
/// Tags are returned as written, known to [`Label`] or not.
pub fn parse_stat_name(name: &str) -> Option<ParsedStatName<'_>> {
    let name = name
        .strip_prefix(ENVOY_WASM_NAMESPACE)
        .and_then(|n| n.strip_prefix('.'))
        .unwrap_or(name);
    let mut rest = name.strip_prefix(STAT_PREFIX)?.strip_prefix('.')?;
    let mut labels = Vec::new();
    while let Some(eq) = rest.find("=.=") {
        let (tag, after) = (rest.get(..eq)?, rest.get(eq + 3..)?);
        if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return None;
        }
        let end = after.find(";.;")?;
        labels.push((tag, after.get(..end)?));
        rest = after.get(end + 3..)?;
    }
    let valid_metric = rest.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    valid_metric.then_some(ParsedStatName {
        labels,
        metric: rest,
    })
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn parse_is_the_inverse_of_stat_name() {
        for labels in [
            vec![],
            vec![(Label::Gateway, "fraud")],
            vec![
                (Label::Gateway, "fraud"),
                (
                    Label::Upstream,
                    "outbound|8080|v2|model.ns.svc.cluster.local",
                ),
            ],
            vec![
                (Label::Gateway, "g"),
                (Label::Upstream, "a.b;c"),
                (Label::Class, "5xx"),
            ],
        ] {
            let name = stat_name("responses", &labels).unwrap();
            for full in [name.clone(), format!("wasmcustom.{name}")] {
                let parsed = parse_stat_name(&full).unwrap();
                assert_eq!(parsed.metric, "responses");
                let want: Vec<(&str, &str)> =
                    labels.iter().map(|(l, v)| (l.tag_name(), *v)).collect();
                assert_eq!(parsed.labels, want, "{full}");
            }
        }
        let p =
            parse_stat_name("wasmcustom.canary_gate.gateway=.=fraud;.;upstream=.=v2;.;requests")
                .unwrap();
        assert_eq!(
            (p.label("gateway"), p.label("upstream"), p.label("reason")),
            (Some("fraud"), Some("v2"), None)
        );
    }

    #[test]
    fn other_names_are_not_parsed() {
        for name in [
            "cluster.fraud-v1.upstream_rq_total",
            "wasmcustom.other.requests",
            "wasmcustom.canary_gate.gateway=.=fraud;.;",
            "wasmcustom.canary_gate.gateway=.=fraud",
            "canary_gate.Requests",
            "wasmcustom.canary_gate.gateway.fraud.requests",
        ] {
            assert_eq!(parse_stat_name(name), None, "{name}");
        }
    }
}
