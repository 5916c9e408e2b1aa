//! `promote` and `rollback`: edits of the configuration's JSON value (so they
//! work whatever fields a canary carries: `revision`, `guard`, `ramp`),
//! validated by the filter's parser before anything is printed or written.

use std::fs;
use std::path::Path;

use serde_json::Value;

use super::args::{PromoteArgs, RollbackArgs};
use super::emit::{json_pretty, yaml_under_key};
use super::input::{self, gateway_index, gateway_json_mut, istio_json, Kind, Loaded};
use super::live::split_at;
use super::shares::{bucket_moves, describe_moves, shares_bp};
use super::{unix_time, Failure, Outcome, Output};
use crate::config;
use crate::validate::format_bp;

/// Promotes canary `to` of gateway `index` in the configuration's JSON: it
/// becomes the `primary` (a string: the canary's other fields go with it), the
/// old primary is dropped, the other canaries are kept as they are. `false`
/// if the gateway has no such canary.
pub fn promote_value(value: &mut Value, index: usize, to: &str) -> bool {
    let Some(gateway) = gateway_json_mut(value, index).and_then(Value::as_object_mut) else {
        return false;
    };
    let Some(list) = gateway.get_mut("canaries").and_then(Value::as_array_mut) else {
        return false;
    };
    let Some(position) = list.iter().position(|c| canary_name(c) == to) else {
        return false;
    };
    list.remove(position);
    gateway.insert("primary".to_string(), Value::String(to.to_string()));
    true
}

/// Rolls back canary `only` (or every canary) of gateway `index` in the
/// configuration's JSON: `percent` 0 and `ramp` removed; every other field
/// (`guard`, `revision`, ...) kept. Returns `(canary index, name, whether a
/// ramp was removed)` for each canary changed.
pub fn rollback_value(
    value: &mut Value,
    index: usize,
    only: Option<&str>,
) -> Vec<(usize, String, bool)> {
    let mut changed = Vec::new();
    let list = gateway_json_mut(value, index)
        .and_then(|g| g.get_mut("canaries"))
        .and_then(Value::as_array_mut);
    for (i, canary) in list.into_iter().flatten().enumerate() {
        let name = canary_name(canary).to_string();
        if only.is_some_and(|c| c != name) {
            continue;
        }
        if let Some(obj) = canary.as_object_mut() {
            obj.insert("percent".to_string(), Value::from(0));
            let ramp = obj.remove("ramp").is_some();
            changed.push((i, name, ramp));
        }
    }
    changed
}

fn canary_name(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn editable(loaded: &Loaded) -> Result<(), Failure> {
    if loaded.input.kind == Kind::Envoy {
        return Err(Failure::usage(format!(
            "{}: an Envoy configuration holds the plugin configuration as a string; edit the JSON \
             configuration and render the bootstrap again (canary-gate render envoy)",
            loaded.input.name()
        )));
    }
    Ok(())
}

pub fn promote(a: &PromoteArgs, output: Output) -> Outcome {
    let loaded = input::load(&a.file)?;
    editable(&loaded)?;
    let name = loaded.input.name();
    let index = gateway_index(&loaded.plan, a.gateway.as_deref(), &name)?;
    let Some(gw) = loaded.plan.gateway(index) else {
        return Err(Failure::usage("no such gateway"));
    };
    let old_primary = gw.upstream_name(0).to_string();
    if a.to == old_primary {
        return Err(Failure::usage(format!(
            "{} is already the primary of gateway {}",
            a.to, gw.name
        )));
    }
    let mut value = loaded.value.clone();
    if !promote_value(&mut value, index, &a.to) {
        return Err(Failure::usage(format!(
            "gateway {} has no canary {:?} (its upstreams: {})",
            gw.name,
            a.to,
            gw.upstreams.join(", ")
        )));
    }
    let summary = format!(
        "promote: gateway {}: {} is the primary, {old_primary} is dropped",
        gw.name, a.to
    );
    finish(&loaded, value, index, summary, a.in_place, output)
}

pub fn rollback(a: &RollbackArgs, output: Output) -> Outcome {
    let loaded = input::load(&a.file)?;
    editable(&loaded)?;
    let name = loaded.input.name();
    let index = gateway_index(&loaded.plan, a.gateway.as_deref(), &name)?;
    let Some(gw) = loaded.plan.gateway(index) else {
        return Err(Failure::usage("no such gateway"));
    };
    let shares = shares_bp(&gw.split);
    let mut value = loaded.value.clone();
    if gw.upstreams.len() < 2 {
        return Err(Failure::usage(format!(
            "gateway {} has no canaries",
            gw.name
        )));
    }
    let changed: Vec<String> = rollback_value(&mut value, index, a.canary.as_deref())
        .into_iter()
        .map(|(i, this, ramp)| {
            let was = shares.get(i + 1).copied().unwrap_or(0);
            format!(
                "{this} {}% -> 0%{}",
                format_bp(was),
                if ramp { ", ramp removed" } else { "" }
            )
        })
        .collect();
    if changed.is_empty() {
        return Err(Failure::usage(format!(
            "gateway {} has no canary {:?} (its canaries: {})",
            gw.name,
            a.canary.as_deref().unwrap_or_default(),
            gw.upstreams.get(1..).unwrap_or_default().join(", ")
        )));
    }
    let summary = format!("rollback: gateway {}: {}", gw.name, changed.join(", "));
    finish(&loaded, value, index, summary, a.in_place, output)
}

/// Validates the edited configuration as the filter would read it, then
/// prints it (or writes it back) and the summary with the bucket moves.
fn finish(
    loaded: &Loaded,
    value: Value,
    index: usize,
    summary: String,
    in_place: bool,
    output: Output,
) -> Outcome {
    let name = loaded.input.name();
    let bytes = match loaded.input.kind {
        Kind::WasmPlugin => istio_json(&value).into_bytes(),
        _ => value.to_string().into_bytes(),
    };
    let plan = config::parse(&bytes)
        .map_err(|e| Failure::check(format!("{name}: the edited configuration is refused: {e}")))?;
    let now = unix_time(None)?;
    let moves = match (
        loaded.plan.gateway(index),
        split_at(&loaded.plan, index, now),
        plan.gateway(index),
        split_at(&plan, index, now),
    ) {
        (Some(old), Some(old_split), Some(new), Some(new_split)) => {
            bucket_moves((old, &old_split), (new, &new_split))
        }
        _ => Vec::new(),
    };
    let text = match loaded.input.kind {
        Kind::WasmPlugin => replace_plugin_config(&loaded.input.text, &value, &name)?,
        _ => json_pretty(&value),
    };
    if in_place {
        write_atomically(&loaded.input.path, text.as_bytes())?;
    } else if output == Output::Json {
        println!("{value}");
    } else {
        print!("{text}");
    }
    eprintln!("{summary}; {}", describe_moves(&moves));
    Ok(0)
}

/// Writes `path` through a temporary file in the same directory and a rename,
/// so a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.canary-gate.{}", std::process::id()));
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Failure::usage(format!("{}: {e}", path.display()))
        })
}

/// The manifest with the block under its one `pluginConfig:` key replaced by
/// `value`; every other line (comments included) is kept.
fn replace_plugin_config(text: &[u8], value: &Value, name: &str) -> Result<String, Failure> {
    let text =
        std::str::from_utf8(text).map_err(|e| Failure::usage(format!("{name}: not UTF-8: {e}")))?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let keys: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == "pluginConfig:")
        .map(|(i, _)| i)
        .collect();
    let [start] = keys.as_slice() else {
        return Err(Failure::usage(format!(
            "{name}: expected one `pluginConfig:` line followed by its block, found {}",
            keys.len()
        )));
    };
    let indent = lines.get(*start).map_or(0, |l| indent_of(l));
    let mut last = *start;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        if l.trim().is_empty() {
            continue;
        }
        if indent_of(l) > indent {
            last = i;
        } else {
            break;
        }
    }
    let mut out = String::new();
    for l in lines.get(..=*start).unwrap_or_default() {
        out.push_str(l);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&yaml_under_key(value, indent + 2));
    for l in lines.get(last + 1..).unwrap_or_default() {
        out.push_str(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rollback_keeps_guard_and_revision_and_removes_the_ramp() {
        let mut v = json!({"gateways": [
            {"name": "a", "primary": "a1", "canaries": [{"name": "a2", "percent": 5}]},
            {"name": "b", "primary": "b1", "canaries": [
                {"name": "b2", "percent": 5, "revision": "r7", "guard": {"max_error_rate": 0.05},
                 "ramp": {"step": 5, "every_seconds": 600, "until": 50}},
                {"name": "b3", "percent": 2}]}]});
        let changed = rollback_value(&mut v, 1, Some("b2"));
        assert_eq!(changed, vec![(0, "b2".to_string(), true)]);
        assert_eq!(
            v["gateways"][1]["canaries"][0],
            json!({"name": "b2", "percent": 0, "revision": "r7", "guard": {"max_error_rate": 0.05}})
        );
        assert_eq!(v["gateways"][1]["canaries"][1]["percent"], 2);
        assert_eq!(v["gateways"][0]["canaries"][0]["percent"], 5);
        assert_eq!(rollback_value(&mut v, 1, None).len(), 2);
        assert_eq!(v["gateways"][1]["canaries"][1]["percent"], 0);
        assert!(rollback_value(&mut v, 1, Some("zz")).is_empty());
    }

    #[test]
    fn promote_drops_the_old_primary_and_keeps_the_other_canaries() {
        let mut v = json!({"primary": "v1", "canaries": [
            {"name": "v2", "percent": 10, "revision": "r2"}, {"name": "v3", "percent": 5, "guard": {}}]});
        assert!(promote_value(&mut v, 0, "v2"));
        assert_eq!(
            v,
            json!({"primary": "v2", "canaries": [{"name": "v3", "percent": 5, "guard": {}}]})
        );
        assert!(!promote_value(&mut v, 0, "v9"));
        assert!(
            !promote_value(&mut v, 0, "v2"),
            "v2 is the primary now, not a canary"
        );
    }

    #[test]
    fn the_plugin_config_block_is_replaced_and_the_rest_kept() {
        let text = "# head\nspec:\n  # the config\n  pluginConfig:\n    primary: a\n    # inner\n    canaries:\n    - name: b\n      percent: 5\n\n  # next\n  url: x\n";
        let out = replace_plugin_config(text.as_bytes(), &json!({"primary": "b"}), "f").unwrap();
        assert_eq!(
            out,
            "# head\nspec:\n  # the config\n  pluginConfig:\n    primary: b\n\n  # next\n  url: x\n"
        );
        let e = replace_plugin_config(b"spec: {}\n", &json!({}), "f").unwrap_err();
        assert!(e.message.contains("found 0"), "{}", e.message);
    }
}
