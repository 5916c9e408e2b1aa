//! Reading plugin configurations from the files operators have: a JSON
//! configuration (its bytes, exactly as the filter gets them), an Istio
//! `WasmPlugin` manifest (`spec.pluginConfig`, serialised as istiod sends it),
//! or an Envoy bootstrap / ECDS resource in YAML or JSON (every wasm HTTP
//! filter's `configuration`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::Failure;
use crate::config::{self, Plan};
use crate::validate::ConfigError;

/// The type URL of Envoy's wasm HTTP filter.
pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";

pub use crate::config::EMPTY_CONFIGURATION;

/// What kind of file held the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plugin configuration (JSON).
    Json,
    /// An Istio `WasmPlugin` manifest.
    WasmPlugin,
    /// An Envoy bootstrap or extension config holding wasm filters.
    Envoy,
}

/// One configuration found in a file.
#[derive(Debug, Clone)]
pub struct Found {
    /// Where in the file (`WasmPlugin istio-system/canary-gate`, an Envoy
    /// path); `None` when the file is the configuration itself.
    pub place: Option<String>,
    /// The bytes the filter gets; `None` when there is no configuration at all.
    pub bytes: Option<Vec<u8>>,
    /// For a WasmPlugin: `spec.pluginConfig` as written.
    pub value: Option<Value>,
}

/// A file and the configurations in it.
#[derive(Debug)]
pub struct Input {
    pub path: PathBuf,
    pub kind: Kind,
    /// The file's text (for edits that keep the rest of the file).
    pub text: Vec<u8>,
    pub configs: Vec<Found>,
}

impl Input {
    /// The file name as given, for messages.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// `config::parse` with the filter's own check before it (`on_configure`
/// refuses a missing or empty configuration with [`EMPTY_CONFIGURATION`]).
pub fn parse_like_the_filter(bytes: Option<&[u8]>) -> Result<Plan, ConfigError> {
    match bytes {
        Some(b) if !b.is_empty() => config::parse(b),
        _ => Err(ConfigError::new("", EMPTY_CONFIGURATION)),
    }
}

/// Reads `path` and finds its configurations.
pub fn read(path: &Path) -> Result<Input, Failure> {
    let name = path.display();
    let text = fs::read(path).map_err(|e| Failure::usage(format!("{name}: {e}")))?;
    let yaml_name = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let (kind, configs) = if yaml_name {
        from_yaml(path, &text)?
    } else {
        match serde_json::from_slice::<Value>(&text) {
            Ok(doc) => match from_documents(std::slice::from_ref(&doc)) {
                Some(found) => found,
                None => (Kind::Json, vec![bare(&text)]),
            },
            // Not JSON: for a .json file that is the filter's business (it says
            // why); anything else may be YAML.
            Err(_) if path.extension().and_then(|e| e.to_str()) == Some("json") => {
                (Kind::Json, vec![bare(&text)])
            }
            Err(_) => from_yaml(path, &text)?,
        }
    };
    Ok(Input {
        path: path.to_path_buf(),
        kind,
        text,
        configs,
    })
}

fn bare(text: &[u8]) -> Found {
    Found {
        place: None,
        bytes: Some(text.to_vec()),
        value: None,
    }
}

fn from_yaml(path: &Path, text: &[u8]) -> Result<(Kind, Vec<Found>), Failure> {
    let name = path.display();
    let text = std::str::from_utf8(text)
        .map_err(|e| Failure::check(format!("{name}: not UTF-8 text: {e}")))?;
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc)
            .map_err(|e| Failure::check(format!("{name}: not valid YAML: {e}")))?;
        docs.push(value);
    }
    // Other manifests (a Gateway, a VirtualService) hold no configuration:
    // the caller says what that means.
    Ok(from_documents(&docs).unwrap_or((Kind::Envoy, Vec::new())))
}

/// What a file without a plugin configuration lacks.
pub const NO_CONFIGURATION: &str =
    "no plugin configuration (no WasmPlugin, no Envoy wasm filter envoy.extensions.filters.http.wasm.v3.Wasm)";

/// The configurations of WasmPlugin manifests and Envoy wasm filters in
/// `docs`; `None` if there are none.
fn from_documents(docs: &[Value]) -> Option<(Kind, Vec<Found>)> {
    let mut found = Vec::new();
    let mut kind = Kind::Envoy;
    for doc in docs {
        if doc.get("kind").and_then(Value::as_str) == Some("WasmPlugin") {
            kind = Kind::WasmPlugin;
            found.push(wasm_plugin(doc));
            continue;
        }
        let mut filters = Vec::new();
        find_wasm_filters(doc, String::new(), &mut filters);
        found.extend(filters);
    }
    if found.is_empty() {
        return None;
    }
    if found.len() == 1 {
        if let Some(only) = found.first_mut() {
            only.place = None;
        }
    }
    Some((kind, found))
}

fn wasm_plugin(doc: &Value) -> Found {
    let meta = |field: &str| {
        doc.pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let value = doc.pointer("/spec/pluginConfig").cloned();
    Found {
        place: Some(format!("WasmPlugin {}/{}", meta("namespace"), meta("name"))),
        // istiod sends no configuration when pluginConfig is absent.
        bytes: value.as_ref().map(|v| istio_json(v).into_bytes()),
        value,
    }
}

/// Every wasm HTTP filter config under `v` (depth first, in document order).
fn find_wasm_filters(v: &Value, path: String, out: &mut Vec<Found>) {
    match v {
        Value::Object(map) => {
            if map.get("@type").and_then(Value::as_str) == Some(WASM_TYPE) {
                let place = path.strip_suffix(".typed_config").unwrap_or(&path);
                out.push(envoy_filter(v, place));
                return;
            }
            for (k, child) in map {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                find_wasm_filters(child, child_path, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                find_wasm_filters(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn envoy_filter(wasm: &Value, place: &str) -> Found {
    let configuration = wasm.pointer("/config/configuration");
    let name = wasm
        .pointer("/config/name")
        .and_then(Value::as_str)
        .map(|n| format!("filter {n} at "))
        .unwrap_or_default();
    let bytes = match configuration {
        None => None,
        Some(c) => match (c.get("@type").and_then(Value::as_str), c.get("value")) {
            (Some(STRING_VALUE_TYPE) | None, Some(Value::String(s))) => Some(s.as_bytes().to_vec()),
            (_, None) => None,
            // Anything else is not what the filter reads; give it as JSON so
            // that the message says what is wrong with it.
            (_, Some(other)) => Some(other.to_string().into_bytes()),
        },
    };
    Found {
        place: Some(format!("{name}{place}")),
        bytes,
        value: None,
    }
}

/// What istiod does to `pluginConfig` (a `google.protobuf.Struct`): protojson,
/// compact, map keys sorted, every number a double (formatted like Go's
/// protojson: plain below 1e21 and from 1e-6, an exponent otherwise).
pub fn istio_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            // serde_json's map is ordered by key.
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), istio_json(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(istio_json).collect();
            format!("[{}]", items.join(","))
        }
        Value::Number(n) => go_double(n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string(),
    }
}

fn go_double(f: f64) -> String {
    if !f.is_finite() {
        // protojson refuses these; no YAML number gives one.
        return "null".to_string();
    }
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        return format!("{f}");
    }
    let e = format!("{f:e}");
    match e.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => e,
    }
}

/// A file with exactly one configuration, parsed like the filter does.
#[derive(Debug)]
pub struct Loaded {
    pub input: Input,
    pub plan: Plan,
    /// The configuration as a JSON value.
    pub value: Value,
}

/// Reads `path`, which must hold one configuration the filter accepts.
/// A refused configuration is a failed check (exit 1): `file: field: message`.
pub fn load(path: &Path) -> Result<Loaded, Failure> {
    let input = read(path)?;
    let name = input.name();
    let found = match input.configs.as_slice() {
        [one] => one.clone(),
        [] => return Err(Failure::usage(format!("{name}: {NO_CONFIGURATION}"))),
        many => {
            return Err(Failure::usage(format!(
                "{name} holds {} configurations; give a file with one",
                many.len()
            )))
        }
    };
    let plan = parse_like_the_filter(found.bytes.as_deref())
        .map_err(|e| Failure::check(format!("{name}: {e}")))?;
    let value = match found.value {
        Some(v) => v,
        None => serde_json::from_slice(found.bytes.as_deref().unwrap_or_default())
            .map_err(|e| Failure::check(format!("{name}: {e}")))?,
    };
    Ok(Loaded { input, plan, value })
}

/// The index of gateway `name` in `plan`, or the only gateway when `name` is
/// not given.
pub fn gateway_index(plan: &Plan, name: Option<&str>, file: &str) -> Result<usize, Failure> {
    let names: Vec<&str> = plan.gateways.iter().map(|g| g.name.as_str()).collect();
    match name {
        Some(n) => names.iter().position(|g| *g == n).ok_or_else(|| {
            Failure::usage(format!(
                "{file} has no gateway {n:?} (gateways: {})",
                names.join(", ")
            ))
        }),
        None if names.len() == 1 => Ok(0),
        None => Err(Failure::usage(format!(
            "{file} has {} gateways ({}); choose one with --gateway",
            names.len(),
            names.join(", ")
        ))),
    }
}

/// The JSON object of gateway `index`: the whole configuration when it has no
/// `gateways`.
pub fn gateway_json(value: &Value, index: usize) -> Option<&Value> {
    match value.get("gateways") {
        Some(list) => list.get(index),
        None => Some(value),
    }
}

/// The same, to edit.
pub fn gateway_json_mut(value: &mut Value, index: usize) -> Option<&mut Value> {
    if value.get("gateways").is_some() {
        value.get_mut("gateways")?.get_mut(index)
    } else {
        Some(value)
    }
}

/// Reads a keys file: UTF-8, one key per line (a trailing `\r` removed),
/// empty lines ignored.
pub fn read_keys(path: &Path) -> Result<Vec<String>, Failure> {
    let name = path.display();
    let bytes = fs::read(path).map_err(|e| Failure::usage(format!("{name}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e
            .as_bytes()
            .get(..e.utf8_error().valid_up_to())
            .map_or(0, |ok| ok.iter().filter(|&&b| b == b'\n').count())
            + 1;
        Failure::usage(format!("{name}: line {line} is not UTF-8"))
    })?;
    Ok(text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn istio_json_is_sorted_compact_and_doubles() {
        let v = json!({"b": [1, 2.5, {"z": true, "a": null}], "a": "x\"y", "c": 10, "d": 1e21, "e": 1e-7});
        assert_eq!(
            istio_json(&v),
            r#"{"a":"x\"y","b":[1,2.5,{"a":null,"z":true}],"c":10,"d":1e+21,"e":1e-07}"#
        );
        assert_eq!(go_double(4_294_967_295.0), "4294967295");
        assert_eq!(go_double(-0.000_001), "-0.000001");
    }

    #[test]
    fn envoy_wasm_filters_are_found_with_their_place() {
        let doc = json!({"static_resources": {"listeners": [{"filter_chains": [{"filters": [{
        "typed_config": {"http_filters": [
            {"name": "w", "typed_config": {"@type": WASM_TYPE, "config": {"name": "canary-gate",
                "configuration": {"@type": STRING_VALUE_TYPE, "value": "{\"primary\":\"a\"}"}}}},
            {"name": "w2", "typed_config": {"@type": WASM_TYPE, "config": {}}}
        ]}}]}]}]}});
        let (kind, found) = from_documents(&[doc]).unwrap();
        assert_eq!(kind, Kind::Envoy);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].place.as_deref(),
            Some("filter canary-gate at static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]")
        );
        assert_eq!(found[0].bytes.as_deref(), Some(&br#"{"primary":"a"}"#[..]));
        assert_eq!(found[1].bytes, None);
        assert_eq!(
            parse_like_the_filter(None).unwrap_err().to_string(),
            EMPTY_CONFIGURATION
        );
    }

    #[test]
    fn keys_files_drop_empty_lines_and_carriage_returns() {
        let dir = std::env::temp_dir().join(format!("canary-gate-keys-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("keys.txt");
        fs::write(&f, "a\r\n\nb\n c \n\n").unwrap();
        assert_eq!(read_keys(&f).unwrap(), vec!["a", "b", " c "]);
        fs::write(&f, b"ok\nbad\xff\n").unwrap();
        assert_eq!(
            read_keys(&f).unwrap_err().message,
            format!("{}: line 2 is not UTF-8", f.display())
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
