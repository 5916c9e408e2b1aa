//! `check FILE...`: validate configurations exactly as the filter does.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::input::{self, parse_like_the_filter};
use super::shares::describe_gateway;
use super::{print_json, Failure, Outcome, Output, EXIT_FAILED, EXIT_USAGE};
use crate::config::Plan;

pub fn run(files: &[PathBuf], output: Output) -> Outcome {
    let mut code = 0u8;
    let mut report = Vec::new();
    let mut checked = 0usize;
    let mut skipped = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let input = match input::read(path) {
            Ok(input) => input,
            Err(failure) => {
                code = code.max(failure.code);
                if output == Output::Table {
                    eprintln!("error: {}", failure.message);
                }
                report.push(json!({"file": name, "place": null, "ok": false,
                    "error": {"path": "", "message": failure.message}, "gateways": []}));
                continue;
            }
        };
        if input.configs.is_empty() {
            // Other Kubernetes manifests next to the WasmPlugin: nothing to check.
            if output == Output::Table {
                println!("{name}: skipped: {}", input::NO_CONFIGURATION);
            }
            skipped.push(name.clone());
            report.push(
                json!({"file": name, "place": null, "ok": true, "skipped": true,
                "error": null, "gateways": []}),
            );
        }
        for found in &input.configs {
            checked += 1;
            let label = match &found.place {
                Some(place) => format!("{name} ({place})"),
                None => name.clone(),
            };
            match parse_like_the_filter(found.bytes.as_deref()) {
                Ok(plan) => {
                    if output == Output::Table {
                        println!("{label}: ok: {}", summary(&plan));
                    }
                    report.push(json!({"file": name, "place": found.place, "ok": true,
                        "error": null, "gateways": gateways_json(&plan)}));
                }
                Err(e) => {
                    code = code.max(EXIT_FAILED);
                    if output == Output::Table {
                        println!("{label}: {e}");
                    }
                    report.push(json!({"file": name, "place": found.place, "ok": false,
                        "error": {"path": e.path, "message": e.message}, "gateways": []}));
                }
            }
        }
    }
    if output == Output::Json {
        print_json(&Value::Array(report));
    }
    if checked == 0 && code == 0 {
        return Err(Failure::usage(format!(
            "{}: {}",
            skipped.join(", "),
            input::NO_CONFIGURATION
        )));
    }
    debug_assert!(code <= EXIT_USAGE);
    Ok(code)
}

/// One line: each gateway, where it listens and its upstreams' shares.
fn summary(plan: &Plan) -> String {
    let with_table = plan.table.is_some();
    plan.gateways
        .iter()
        .map(|g| describe_gateway(g, with_table))
        .collect::<Vec<_>>()
        .join("; ")
}

fn gateways_json(plan: &Plan) -> Value {
    Value::Array(
        plan.gateways
            .iter()
            .map(|g| {
                let shares = super::shares::shares_bp(&g.split);
                let (hosts, prefix) = super::shares::listens_on(g, plan.table.is_some());
                json!({
                    "name": g.name,
                    "hosts": hosts,
                    "path_prefix": prefix,
                    "upstreams": g.upstreams.iter().zip(shares).map(|(u, bp)| json!({
                        "name": u, "percent": f64::from(bp) / 100.0
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
