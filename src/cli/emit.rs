//! Printing JSON and YAML with keys in a stable, readable order (the order the
//! README and Kubernetes documents use, not the alphabetical order of
//! serde_json's map), with comments in YAML.
//!
//! The crate's serde_json keeps maps sorted (no `preserve_order`), and must:
//! the filter reads each gateway back from a re-serialised value, so the order
//! decides which error comes first; the tool runs that same code.

use serde_json::{Map, Value};

/// Keys in the order they are printed; keys not listed follow, alphabetically.
/// One order serves every document this tool writes (plugin configurations,
/// Kubernetes manifests, Envoy bootstraps): no two of them list two keys the
/// other way round.
const ORDER: &[&str] = &[
    "@type",
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "spec",
    "selector",
    "matchLabels",
    "url",
    "consumer",
    "sha256",
    "imagePullPolicy",
    "type",
    "phase",
    "failStrategy",
    "pluginName",
    "pluginConfig",
    "servers",
    "host",
    "port",
    "number",
    "protocol",
    "hosts",
    // The plugin configuration's listener-wide keys, then its gateways.
    "route_header",
    "consumer_header",
    "response_header",
    "unmatched",
    "gateways",
    "http",
    "match",
    "headers",
    "uri",
    "prefix",
    "exact",
    "route",
    "destination",
    "subset",
    "subsets",
    // A gateway.
    "path_prefix",
    "strip_prefix",
    "primary",
    "canaries",
    "percent",
    "revision",
    "guard",
    "max_error_rate",
    "failure_statuses",
    "slow_ms",
    "max_slow_rate",
    "min_requests",
    "window_seconds",
    "dry_run",
    "ramp",
    "start",
    "step",
    "every_seconds",
    "until",
    "split",
    "by",
    "when_missing",
    "hash_seed",
    "select_header",
    "auth",
    "mode",
    "realm",
    "header",
    "query",
    "users",
    "keys",
    "issuer",
    "audiences",
    "jwks_uri",
    "jwks",
    "hs256_secret",
    "introspection",
    "required_scopes",
    "clock_skew_seconds",
    "consumer_claim",
    "keep_token",
    // Envoy.
    "admin",
    "address",
    "socket_address",
    "port_value",
    "stats_config",
    "stats_tags",
    "tag_name",
    "regex",
    "overload_manager",
    "resource_monitors",
    "static_resources",
    "listeners",
    "filter_chains",
    "filters",
    "typed_config",
    "stat_prefix",
    "normalize_path",
    "merge_slashes",
    "route_config",
    "virtual_hosts",
    "domains",
    "routes",
    "http_filters",
    "config",
    "root_id",
    "vm_config",
    "vm_id",
    "runtime",
    "code",
    "local",
    "filename",
    "configuration",
    "value",
    "failure_policy",
    "clusters",
    "connect_timeout",
    "dns_lookup_family",
    "load_assignment",
    "cluster_name",
    "endpoints",
    "lb_endpoints",
    "endpoint",
];

fn rank(key: &str) -> usize {
    ORDER.iter().position(|k| *k == key).unwrap_or(ORDER.len())
}

/// Keys that lead their object whatever [`ORDER`] says: a split says `by`
/// before its `name` (a canary or a gateway says `name` first).
const LEADING: &[&str] = &["@type", "by"];

/// A map's entries in print order.
fn ordered(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    let lead = |k: &str| !LEADING.contains(&k);
    entries.sort_by(|(a, _), (b, _)| {
        lead(a)
            .cmp(&lead(b))
            .then_with(|| rank(a).cmp(&rank(b)))
            .then_with(|| a.cmp(b))
    });
    entries
}

/// The widest line an inline object or array may make.
const WIDTH: usize = 100;

/// Pretty JSON, two-space indentation, ending in a newline. An object or array
/// without nested containers that fits on a line is written on one line, as
/// the README writes configurations.
pub fn json_pretty(v: &Value) -> String {
    let mut out = String::new();
    json_at(v, 0, &mut out);
    out.push('\n');
    out
}

fn scalar_json(v: &Value) -> String {
    v.to_string()
}

fn key_json(k: &str) -> String {
    Value::String(k.to_string()).to_string()
}

fn is_flat(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().all(|x| !x.is_object() && !x.is_array()),
        Value::Array(a) => a.iter().all(|x| !x.is_object() && !x.is_array()),
        _ => true,
    }
}

fn inline_json(v: &Value) -> String {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let fields: Vec<String> = ordered(m)
                .into_iter()
                .map(|(k, x)| format!("{}: {}", key_json(k), inline_json(x)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        Value::Array(a) if !a.is_empty() => {
            let items: Vec<String> = a.iter().map(inline_json).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
        other => scalar_json(other),
    }
}

/// Writes `v` whose first line is already indented (continuing a line).
fn json_at(v: &Value, indent: usize, out: &mut String) {
    let inline = inline_json(v);
    if is_flat(v) && indent + inline.len() <= WIDTH {
        out.push_str(&inline);
        return;
    }
    let pad = " ".repeat(indent + 2);
    match v {
        Value::Object(m) => {
            out.push_str("{\n");
            let entries = ordered(m);
            let last = entries.len().saturating_sub(1);
            for (i, (k, x)) in entries.into_iter().enumerate() {
                out.push_str(&pad);
                out.push_str(&key_json(k));
                out.push_str(": ");
                json_at(x, indent + 2, out);
                out.push_str(if i < last { ",\n" } else { "\n" });
            }
            out.push_str(&" ".repeat(indent));
            out.push('}');
        }
        Value::Array(a) => {
            out.push_str("[\n");
            let last = a.len().saturating_sub(1);
            for (i, x) in a.iter().enumerate() {
                out.push_str(&pad);
                json_at(x, indent + 2, out);
                out.push_str(if i < last { ",\n" } else { "\n" });
            }
            out.push_str(&" ".repeat(indent));
            out.push(']');
        }
        other => out.push_str(&scalar_json(other)),
    }
}

/// A YAML document: comment lines before it, the value, and comments to put
/// above given keys (paths like `spec.failStrategy`, `spec.servers[0].hosts`).
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub comments: Vec<String>,
    pub value: Value,
    pub notes: Vec<(String, Vec<String>)>,
}

impl Doc {
    pub fn new(value: Value) -> Self {
        Self {
            value,
            ..Self::default()
        }
    }

    pub fn comment(mut self, lines: &[&str]) -> Self {
        self.comments.extend(lines.iter().map(|l| l.to_string()));
        self
    }

    /// Comment lines above the key at `path`.
    pub fn note(mut self, path: &str, lines: &[&str]) -> Self {
        self.notes.push((
            path.to_string(),
            lines.iter().map(|l| l.to_string()).collect(),
        ));
        self
    }
}

/// YAML documents separated by `---`.
pub fn yaml_docs(docs: &[Doc]) -> String {
    docs.iter().map(yaml_doc).collect::<Vec<_>>().join("---\n")
}

/// One YAML document (block style, sequences at their key's indentation).
pub fn yaml_doc(doc: &Doc) -> String {
    let mut lines: Vec<String> = doc.comments.iter().map(|c| comment_line("", c)).collect();
    yaml_block(&doc.value, 0, "", &doc.notes, &mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The YAML value of `value` under the block of a key indented by `indent`
/// (for replacing one key's block in a file): its lines, each ending in `\n`.
pub fn yaml_under_key(value: &Value, indent: usize) -> String {
    let mut lines = Vec::new();
    yaml_block(value, indent, "", &[], &mut lines);
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn comment_line(indent: &str, text: &str) -> String {
    if text.is_empty() {
        format!("{indent}#")
    } else {
        format!("{indent}# {text}")
    }
}

/// A scalar (or empty container) as YAML, quoted where YAML needs it.
fn scalar_yaml(v: &Value, indent: usize) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "{}".to_string(),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        _ => {
            let text = serde_norway::to_string(v).unwrap_or_else(|_| v.to_string());
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_prefix("---\n").unwrap_or(text);
            // A block scalar's lines are indented from column 0: move them under the key.
            let pad = " ".repeat(indent);
            text.lines()
                .enumerate()
                .map(|(i, l)| {
                    if i == 0 {
                        l.to_string()
                    } else {
                        format!("{pad}{l}")
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

fn yaml_key(k: &str) -> String {
    scalar_yaml(&Value::String(k.to_string()), 0)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn yaml_block(
    v: &Value,
    indent: usize,
    path: &str,
    notes: &[(String, Vec<String>)],
    out: &mut Vec<String>,
) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, x) in ordered(m) {
                let p = join(path, k);
                for (_, lines) in notes.iter().filter(|(at, _)| *at == p) {
                    out.extend(lines.iter().map(|l| comment_line(&pad, l)));
                }
                let key = yaml_key(k);
                match x {
                    Value::Object(inner) if !inner.is_empty() => {
                        out.push(format!("{pad}{key}:"));
                        yaml_block(x, indent + 2, &p, notes, out);
                    }
                    Value::Array(items) if !items.is_empty() => {
                        out.push(format!("{pad}{key}:"));
                        yaml_block(x, indent, &p, notes, out);
                    }
                    _ => out.push(format!("{pad}{key}: {}", scalar_yaml(x, indent + 2))),
                }
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match x {
                    Value::Object(inner) if !inner.is_empty() => {
                        let mut sub = Vec::new();
                        yaml_block(x, indent + 2, &p, notes, &mut sub);
                        let first = sub.iter().position(|l| !l.trim_start().starts_with('#'));
                        if let Some(line) = first.and_then(|f| sub.get_mut(f)) {
                            let rest = line.get(indent + 2..).unwrap_or_default().to_string();
                            *line = format!("{pad}- {rest}");
                        }
                        out.extend(sub);
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        out.push(format!("{pad}-"));
                        yaml_block(x, indent + 2, &p, notes, out);
                    }
                    _ => out.push(format!("{pad}- {}", scalar_yaml(x, indent + 2))),
                }
            }
        }
        other => out.push(format!("{pad}{}", scalar_yaml(other, indent))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Value {
        json!({
            "split": {"by": "header", "name": "x-user-id"},
            "canaries": [{"percent": 10, "name": "model-v2"}, {"percent": 5, "name": "model-v3"}],
            "primary": "model-v1",
            "route_header": "x-canary-upstream",
            "auth": {"mode": "access_key", "keys": [{"sha256": "72ee", "consumer": "alice"}]},
            "zzz": [],
            "gateways": [{"hosts": ["*", "a.example.com"], "name": "g", "primary": "p"}]
        })
    }

    #[test]
    fn json_is_in_documented_order_and_inline_where_flat() {
        assert_eq!(
            json_pretty(&config()),
            r#"{
  "route_header": "x-canary-upstream",
  "gateways": [
    {
      "name": "g",
      "hosts": ["*", "a.example.com"],
      "primary": "p"
    }
  ],
  "primary": "model-v1",
  "canaries": [
    {"name": "model-v2", "percent": 10},
    {"name": "model-v3", "percent": 5}
  ],
  "split": {"by": "header", "name": "x-user-id"},
  "auth": {
    "mode": "access_key",
    "keys": [
      {"consumer": "alice", "sha256": "72ee"}
    ]
  },
  "zzz": []
}
"#
        );
    }

    #[test]
    fn yaml_round_trips_and_quotes_what_needs_it() {
        let v = json!({"spec": {"hosts": ["*", "*.chat.example.com", "models.example.com"],
            "pluginConfig": config(), "n": "10", "t": "true", "e": "", "@type": "x",
            "multi": "a\nb", "list": [[1, 2], {"a": {"b": 1}}]}});
        let doc = Doc::new(v.clone())
            .comment(&["top", ""])
            .note("spec.hosts", &["the hosts"])
            .note("spec.pluginConfig.canaries[0].name", &["first canary"]);
        let text = yaml_doc(&doc);
        assert!(text.starts_with("# top\n#\nspec:\n"), "{text}");
        assert!(
            text.contains("  # the hosts\n  hosts:\n  - '*'\n"),
            "{text}"
        );
        assert!(
            text.contains("    # first canary\n    - name: model-v2\n      percent: 10\n"),
            "{text}"
        );
        let back: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(back, v, "{text}");
        let two = yaml_docs(&[Doc::new(json!({"a": 1})), Doc::new(json!({"b": 2}))]);
        assert_eq!(two, "a: 1\n---\nb: 2\n");
        assert_eq!(
            yaml_under_key(
                &json!({"primary": "v1", "canaries": [{"name": "v2", "percent": 5}]}),
                4
            ),
            "    primary: v1\n    canaries:\n    - name: v2\n      percent: 5\n"
        );
    }
}
