//! `stat`: a live table per gateway and upstream, read from Envoy's admin
//! endpoint by the filter's raw stat names (`/stats`, where the labels are
//! still in the name), so it needs none of the operator's tag extractors.
//!
//! Columns, each shown only when its metric exists: SHARE (the canary's
//! current share, `canary_basis_points`), RPS (`requests`, from two samples),
//! REQUESTS, SUCCESS (`responses` by class: everything but `5xx` and
//! `grpc_error`), P50 and P99 (the `response_ms` histogram, since Envoy
//! started), GUARD (`guard_tripped`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::args::StatArgs;
use super::table::Table;
use super::{print_json, Failure, Outcome, Output};
use crate::gateway::stats::parse_stat_name;

/// What one gateway and upstream reported in one sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub requests: Option<u64>,
    /// The `response_ms` histogram exists (its quantiles may still be empty).
    pub latency_reported: bool,
    /// Responses per class label (`2xx`, `5xx`, `grpc_error`, ...).
    pub responses: BTreeMap<String, u64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub guard_tripped: Option<u64>,
    pub share_bp: Option<u64>,
}

/// One read of the admin endpoint: rows by (gateway, upstream).
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub rows: BTreeMap<(String, String), Row>,
}

/// The rows in Envoy's `/stats?format=json` answer.
pub fn parse_stats(body: &Value) -> BTreeMap<(String, String), Row> {
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    let entries = body.get("stats").and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        if let (Some(name), Some(value)) = (
            entry.get("name").and_then(Value::as_str),
            entry.get("value").and_then(Value::as_u64),
        ) {
            let Some(parsed) = parse_stat_name(name) else {
                continue;
            };
            let (Some(g), Some(u)) = (parsed.label("gateway"), parsed.label("upstream")) else {
                continue;
            };
            let row = rows.entry((g.to_string(), u.to_string())).or_default();
            match parsed.metric {
                "requests" => row.requests = Some(value),
                "responses" => {
                    if let Some(class) = parsed.label("class") {
                        row.responses.insert(class.to_string(), value);
                    }
                }
                "guard_tripped" => row.guard_tripped = Some(value),
                "canary_basis_points" => row.share_bp = Some(value),
                _ => {}
            }
        }
        if let Some(h) = entry.get("histograms") {
            histograms(h, &mut rows);
        }
    }
    rows
}

/// `response_ms` quantiles (cumulative, since Envoy started).
fn histograms(h: &Value, rows: &mut BTreeMap<(String, String), Row>) {
    let quantiles: Vec<f64> = h
        .get("supported_quantiles")
        .and_then(Value::as_array)
        .map(|q| q.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let index_of = |q: f64| quantiles.iter().position(|x| (x - q).abs() < 1e-9);
    let computed = h.get("computed_quantiles").and_then(Value::as_array);
    for c in computed.into_iter().flatten() {
        let Some(parsed) = c
            .get("name")
            .and_then(Value::as_str)
            .and_then(parse_stat_name)
        else {
            continue;
        };
        if parsed.metric != "response_ms" {
            continue;
        }
        let (Some(g), Some(u)) = (parsed.label("gateway"), parsed.label("upstream")) else {
            continue;
        };
        let values = c.get("values").and_then(Value::as_array);
        let at = |i: Option<usize>| {
            i.and_then(|i| values.and_then(|v| v.get(i)))
                .and_then(|v| v.get("cumulative"))
                .and_then(Value::as_f64)
        };
        let row = rows.entry((g.to_string(), u.to_string())).or_default();
        row.latency_reported = true;
        row.p50_ms = at(index_of(50.0));
        row.p99_ms = at(index_of(99.0));
    }
}

fn sample(admin: &str) -> Result<Sample, Failure> {
    let base = admin.trim_end_matches('/');
    let url = format!("{base}/stats?format=json&filter=%5Ewasmcustom%5C.canary_gate%5C.");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let body = agent
        .get(&url)
        .call()
        .map_err(|e| Failure::usage(format!("{base}: {e}")))?
        .into_string()
        .map_err(|e| Failure::usage(format!("{base}: {e}")))?;
    let json: Value = serde_json::from_str(&body)
        .map_err(|e| Failure::usage(format!("{base}: not Envoy's /stats JSON: {e}")))?;
    Ok(Sample {
        at: Instant::now(),
        rows: parse_stats(&json),
    })
}

/// One line of the table, as computed from two samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub gateway: String,
    pub upstream: String,
    pub share_percent: Option<f64>,
    pub rps: Option<f64>,
    pub requests: Option<u64>,
    pub success_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub guard: Option<&'static str>,
    /// Whether the filter reports responses and latencies (the columns exist).
    pub responses_reported: bool,
    pub latency_reported: bool,
}

/// The lines from the earlier sample `before` and the later `now`.
pub fn lines(before: &Sample, now: &Sample, gateway: Option<&str>) -> Vec<Line> {
    let seconds = now.at.duration_since(before.at).as_secs_f64();
    now.rows
        .iter()
        .filter(|((g, _), _)| gateway.is_none_or(|want| want == g))
        .map(|((g, u), row)| {
            let earlier = before.rows.get(&(g.clone(), u.clone()));
            let rps = match (row.requests, earlier.and_then(|e| e.requests)) {
                (Some(n), Some(b)) if seconds > 0.0 => Some(n.saturating_sub(b) as f64 / seconds),
                _ => None,
            };
            let total: u64 = row.responses.values().sum();
            let failed: u64 = ["5xx", "grpc_error"]
                .iter()
                .filter_map(|c| row.responses.get(*c))
                .sum();
            Line {
                gateway: g.clone(),
                upstream: u.clone(),
                share_percent: row.share_bp.map(|bp| bp as f64 / 100.0),
                rps,
                requests: row.requests,
                success_rate: (total > 0).then(|| (total - failed) as f64 / total as f64),
                p50_ms: row.p50_ms,
                p99_ms: row.p99_ms,
                guard: row
                    .guard_tripped
                    .map(|t| if t > 0 { "tripped" } else { "ok" }),
                responses_reported: !row.responses.is_empty(),
                latency_reported: row.latency_reported,
            }
        })
        .collect()
}

/// Which optional columns have data in `lines` (share, success, latency, guard).
fn present(lines: &[Line]) -> (bool, bool, bool, bool) {
    (
        lines.iter().any(|l| l.share_percent.is_some()),
        lines.iter().any(|l| l.responses_reported),
        lines.iter().any(|l| l.latency_reported),
        lines.iter().any(|l| l.guard.is_some()),
    )
}

pub fn render_table(lines: &[Line]) -> String {
    let (share, success, latency, guard) = present(lines);
    let mut headers = vec!["GATEWAY", "UPSTREAM"];
    if share {
        headers.push("SHARE");
    }
    headers.extend(["RPS", "REQUESTS"]);
    if success {
        headers.push("SUCCESS");
    }
    if latency {
        headers.extend(["P50", "P99"]);
    }
    if guard {
        headers.push("GUARD");
    }
    let dash = || "-".to_string();
    let ms = |v: Option<f64>| v.map_or_else(dash, |v| format!("{v:.1} ms"));
    let mut t = Table::new(&headers);
    for l in lines {
        let mut row = vec![l.gateway.clone(), l.upstream.clone()];
        if share {
            row.push(l.share_percent.map_or_else(dash, |p| format!("{p}%")));
        }
        row.push(l.rps.map_or_else(dash, |r| format!("{r:.1}")));
        row.push(l.requests.map_or_else(dash, |r| r.to_string()));
        if success {
            row.push(
                l.success_rate
                    .map_or_else(dash, |s| format!("{:.2}%", s * 100.0)),
            );
        }
        if latency {
            row.push(ms(l.p50_ms));
            row.push(ms(l.p99_ms));
        }
        if guard {
            row.push(l.guard.map_or_else(dash, str::to_string));
        }
        t.row(row);
    }
    t.render()
}

pub fn lines_json(lines: &[Line], seconds: f64) -> Value {
    json!({
        "interval_seconds": seconds,
        "rows": lines.iter().map(|l| json!({
            "gateway": l.gateway,
            "upstream": l.upstream,
            "share_percent": l.share_percent,
            "rps": l.rps,
            "requests": l.requests,
            "success_rate": l.success_rate,
            "p50_ms": l.p50_ms,
            "p99_ms": l.p99_ms,
            "guard": l.guard,
        })).collect::<Vec<_>>(),
    })
}

fn seconds(value: f64, flag: &str) -> Result<Duration, Failure> {
    if !value.is_finite() || !(0.05..=3600.0).contains(&value) {
        return Err(Failure::usage(format!(
            "{flag} {value}: give 0.05 to 3600 seconds"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

pub fn run(a: &StatArgs, output: Output) -> Outcome {
    let (every, tables) = match a.watch {
        Some(w) => (seconds(w, "--watch")?, a.count),
        None => (seconds(a.interval, "--interval")?, Some(1)),
    };
    let terminal = std::io::stdout().is_terminal() && output == Output::Table;
    let mut before = sample(&a.admin)?;
    if before.rows.is_empty() {
        return Err(Failure::usage(format!(
            "{}: no canary-gate metrics (is the filter loaded in this Envoy?)",
            a.admin
        )));
    }
    let mut shown = 0u64;
    loop {
        std::thread::sleep(every);
        let now = sample(&a.admin)?;
        let lines = lines(&before, &now, a.gateway.as_deref());
        let elapsed = now.at.duration_since(before.at).as_secs_f64();
        match output {
            Output::Json => print_json(&lines_json(&lines, elapsed)),
            Output::Table => {
                if terminal && a.watch.is_some() {
                    print!("\x1b[2J\x1b[H");
                } else if shown > 0 {
                    println!();
                }
                print!("{}", render_table(&lines));
            }
        }
        shown += 1;
        if tables.is_some_and(|n| shown >= n) {
            return Ok(0);
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(requests_v2: u64, with_responses: bool) -> Value {
        let mut stats = vec![
            json!({"name": "wasmcustom.canary_gate.gateway=.=fraud;.;upstream=.=fraud-v1;.;requests", "value": 100}),
            json!({"name": "wasmcustom.canary_gate.gateway=.=fraud;.;upstream=.=fraud-v2;.;requests", "value": requests_v2}),
            json!({"name": "wasmcustom.canary_gate.gateway=.=fraud;.;reason=.=missing_credentials;.;auth_denied", "value": 3}),
            json!({"name": "wasmcustom.canary_gate.unmatched", "value": 1}),
        ];
        if with_responses {
            stats.extend([
                json!({"name": "wasmcustom.canary_gate.gateway=.=fraud;.;upstream=.=fraud-v2;.;class=.=2xx;.;responses", "value": 95}),
                json!({"name": "wasmcustom.canary_gate.gateway=.=fraud;.;upstream=.=fraud-v2;.;class=.=5xx;.;responses", "value": 5}),
                json!({"name": "wasmcustom.canary_gate.gateway=.=fraud;.;upstream=.=fraud-v2;.;guard_tripped", "value": 1}),
                json!({"name": "wasmcustom.canary_gate.gateway=.=fraud;.;upstream=.=fraud-v2;.;canary_basis_points", "value": 750}),
                json!({"histograms": {"supported_quantiles": [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 100.0],
                    "computed_quantiles": [{"name": "wasmcustom.canary_gate.gateway=.=fraud;.;upstream=.=fraud-v2;.;response_ms",
                        "values": [{"interval": null, "cumulative": 1.0}, {"interval": null, "cumulative": 2.0},
                                   {"interval": null, "cumulative": 12.5}, {"interval": null, "cumulative": 20.0},
                                   {"interval": null, "cumulative": 30.0}, {"interval": null, "cumulative": 40.0},
                                   {"interval": null, "cumulative": 95.0}, {"interval": null, "cumulative": 99.0},
                                   {"interval": null, "cumulative": 99.9}, {"interval": null, "cumulative": 100.0}]}]}}),
            ]);
        }
        json!({"stats": stats})
    }

    fn at(rows: BTreeMap<(String, String), Row>, t: Instant) -> Sample {
        Sample { at: t, rows }
    }

    #[test]
    fn only_the_columns_with_metrics_are_shown() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let l = lines(
            &at(parse_stats(&body(10, false)), t0),
            &at(parse_stats(&body(30, false)), t1),
            None,
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].rps, Some(10.0));
        assert_eq!(
            render_table(&l),
            "GATEWAY  UPSTREAM   RPS  REQUESTS\nfraud    fraud-v1   0.0       100\nfraud    fraud-v2  10.0        30\n"
        );
    }

    #[test]
    fn response_metrics_fill_success_latency_guard_and_share() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let l = lines(
            &at(parse_stats(&body(10, true)), t0),
            &at(parse_stats(&body(30, true)), t1),
            Some("fraud"),
        );
        let v2 = &l[1];
        assert_eq!(v2.success_rate, Some(0.95));
        assert_eq!((v2.p50_ms, v2.p99_ms), (Some(12.5), Some(95.0)));
        assert_eq!((v2.guard, v2.share_percent), (Some("tripped"), Some(7.5)));
        let text = render_table(&l);
        assert_eq!(
            text,
            "GATEWAY  UPSTREAM  SHARE   RPS  REQUESTS  SUCCESS      P50      P99  GUARD\n\
             fraud    fraud-v1      -   0.0       100        -        -        -  -\n\
             fraud    fraud-v2   7.5%  20.0        30   95.00%  12.5 ms  95.0 ms  tripped\n"
        );
        assert!(lines(
            &at(parse_stats(&body(1, true)), t0),
            &at(parse_stats(&body(1, true)), t1),
            Some("chat")
        )
        .is_empty());
    }
}
