//! `route`: which gateway and upstream a request gets, the bucket and why, by
//! the filter's own decision ([`Plan::decide`], or [`Plan::decide_as`] for a
//! given consumer).

use serde_json::{json, Value};

use super::args::RouteArgs;
use super::input;
use super::live::{split_at, state_at};
use super::shares::{describe_split, hash_seed, ranges};
use super::{print_json, unix_time, Failure, Outcome, Output};
use crate::auth::Authenticator;
use crate::config::{Gateway, Plan};
use crate::decide::{split_key, Outcome as Decided};
use crate::request::Request;
use crate::split::{How, KeySource, SplitPlan};
use crate::validate::format_bp;

/// The request as the command line describes it: header values as given.
#[derive(Debug, Default)]
pub struct CliRequest {
    headers: Vec<(String, Vec<u8>)>,
}

impl CliRequest {
    fn add(&mut self, name: &str, value: &str) {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
    }

    /// From `--host`, `--path`, `--header NAME: VALUE` and `--cookie NAME=VALUE`.
    pub fn build(
        host: Option<&str>,
        path: &str,
        headers: &[String],
        cookies: &[String],
    ) -> Result<Self, Failure> {
        let mut req = CliRequest::default();
        req.add(":method", "GET");
        req.add(":scheme", "http");
        req.add(":path", path);
        let mut authority = host.map(str::to_string);
        let mut cookie_values = Vec::new();
        for h in headers {
            let Some((name, value)) = h.split_once(':') else {
                return Err(Failure::usage(format!(
                    "--header {h:?}: expected NAME: VALUE"
                )));
            };
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                return Err(Failure::usage(format!("--header {h:?}: the name is empty")));
            }
            match name.to_ascii_lowercase().as_str() {
                "host" | ":authority" => authority = authority.or(Some(value.to_string())),
                "cookie" => cookie_values.push(value.to_string()),
                _ => req.add(name, value),
            }
        }
        for c in cookies {
            if !c.contains('=') {
                return Err(Failure::usage(format!(
                    "--cookie {c:?}: expected NAME=VALUE"
                )));
            }
            cookie_values.push(c.clone());
        }
        if let Some(a) = authority {
            req.add(":authority", &a);
        }
        if !cookie_values.is_empty() {
            req.add("cookie", &cookie_values.join("; "));
        }
        Ok(req)
    }
}

impl Request for CliRequest {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn cookie_headers(&self) -> Vec<Vec<u8>> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The answer of `route`.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub gateway: Option<String>,
    pub upstream: Option<String>,
    pub bucket: Option<u32>,
    /// `hashed`, `random`, `select`, `missing_key` or `unmatched`.
    pub reason: &'static str,
    pub key: Option<String>,
    pub consumer: Option<String>,
    /// The `:path` forwarded, when the filter changes it.
    pub path: Option<String>,
    /// For an unmatched request: the status the filter answers (`None`: passed on).
    pub status: Option<u32>,
    /// For an unmatched request: `no_gateway`, `ambiguous_path` or `passed`.
    pub detail: Option<&'static str>,
    /// Why, in words.
    pub why: String,
}

impl Routed {
    pub fn to_json(&self) -> Value {
        json!({
            "gateway": self.gateway,
            "upstream": self.upstream,
            "bucket": self.bucket,
            "reason": self.reason,
            "key": self.key,
            "consumer": self.consumer,
            "path": self.path,
            "status": self.status,
            "detail": self.detail,
            "why": self.why,
        })
    }
}

/// Decides `req` with `plan` as the filter does. `config` is the
/// configuration's JSON (for the hash seed), `now` Unix seconds. Notes for
/// the operator (a request the gateway would refuse) go to `notes`.
pub fn decide(
    plan: &Plan,
    config: &Value,
    req: &CliRequest,
    consumer: Option<&str>,
    now: u64,
    notes: &mut Vec<String>,
) -> Routed {
    let mut state = state_at(plan, now);
    let outcome = match consumer {
        Some(c) => plan.decide_as(req, Some(c), &mut state),
        None => plan.decide(req, &mut state, now),
    };
    let outcome = match outcome {
        Decided::Refuse {
            gateway: Some(g),
            denial,
        } => {
            let name = plan.gateway(g).map_or("?", |gw| gw.name.as_str());
            notes.push(format!(
                "gateway {name} would refuse this request ({} {}); routed as if it had authenticated (--consumer NAME gives its identity)",
                denial.status, denial.reason
            ));
            plan.decide_as(req, None, &mut state)
        }
        Decided::Wait(_) => {
            notes.push(
                "the gateway would ask its identity provider first; routed as if the request had authenticated (--consumer NAME gives its identity)"
                    .to_string(),
            );
            plan.decide_as(req, None, &mut state)
        }
        other => other,
    };
    let unmatched = |status: Option<u32>, detail: &'static str, why: String| Routed {
        gateway: None,
        upstream: None,
        bucket: None,
        reason: "unmatched",
        key: None,
        consumer: None,
        path: None,
        status,
        detail: Some(detail),
        why,
    };
    let host = req
        .header(":authority")
        .map(|h| String::from_utf8_lossy(&h).into_owned())
        .unwrap_or_else(|| "(none)".to_string());
    let path = req
        .header(":path")
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_default();
    match outcome {
        Decided::Forward(d) => {
            let Some(g) = plan.gateway(d.gateway) else {
                return unmatched(Some(404), "no_gateway", "no gateway".to_string());
            };
            let consumer = d.consumer.as_deref().map(str::to_string);
            let key = (d.how == How::Hashed)
                .then(|| split_key(g, req, consumer.as_deref()))
                .flatten()
                .map(|k| String::from_utf8_lossy(&k).into_owned());
            let seed = hash_seed(config, d.gateway);
            let reason = match d.how {
                How::Hashed => "hashed",
                How::Random => "random",
                How::Selected => "select",
                How::MissingKey => "missing_key",
            };
            let split = split_at(plan, d.gateway, now).unwrap_or_else(|| g.split.clone());
            let why = why(g, &split, seed, d.how, d.upstream, d.bucket, key.as_deref());
            Routed {
                gateway: Some(g.name.clone()),
                upstream: Some(d.upstream_name.to_string()),
                bucket: d.bucket,
                reason,
                key,
                consumer,
                path: d
                    .new_path
                    .as_deref()
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
                status: None,
                detail: None,
                why,
            }
        }
        Decided::Pass => unmatched(
            None,
            "passed",
            format!("no gateway takes host {host} path {path}; unmatched: pass forwards it with no route header"),
        ),
        Decided::Refuse { denial, .. } if denial.reason == "ambiguous_path" => unmatched(
            Some(denial.status),
            denial.reason,
            format!("the path {path} is ambiguous (an encoded slash or backslash, or a NUL): the filter answers 400"),
        ),
        Decided::Refuse { denial, .. } => unmatched(
            Some(denial.status),
            "no_gateway",
            format!("no gateway takes host {host} path {path}: the filter answers {}", denial.status),
        ),
        Decided::Wait(_) => unmatched(None, "no_gateway", "undecided".to_string()),
    }
}

/// `buckets 0-499 belong to fraud-v2 (5%)`.
fn owner(g: &Gateway, split: &SplitPlan, upstream: usize) -> String {
    let name = g.upstream_name(upstream);
    match ranges(split).get(upstream) {
        Some(&(a, b)) if b > a => format!(
            "buckets {a}-{} belong to {name} ({}%)",
            b - 1,
            format_bp(b - a)
        ),
        _ => format!("{name} owns no bucket (0%)"),
    }
}

fn why(
    g: &Gateway,
    split: &SplitPlan,
    seed: u32,
    how: How,
    upstream: usize,
    bucket: Option<u32>,
    key: Option<&str>,
) -> String {
    let bucket_text = bucket.map_or("-".to_string(), |b| b.to_string());
    match how {
        How::Hashed => format!(
            "murmur3_x86_32({:?}, seed {seed}) mod 10000 = {bucket_text}; {}",
            key.unwrap_or_default(),
            owner(g, split, upstream)
        ),
        How::Random => format!(
            "split at random: this request drew bucket {bucket_text}; {}",
            owner(g, split, upstream)
        ),
        How::Selected => match &g.select_header {
            Some(h) => format!("the select header {h} names {}", g.upstream_name(upstream)),
            None => format!("selected {}", g.upstream_name(upstream)),
        },
        How::MissingKey => {
            let missing = match g.split.key() {
                KeySource::Header(h) => format!("no {h} header"),
                KeySource::Query(q) => format!("no {q} query parameter"),
                KeySource::Cookie(c) => format!("no {c} cookie"),
                KeySource::Consumer => "no consumer (give --consumer NAME)".to_string(),
                KeySource::Random => "no key".to_string(),
            };
            match bucket {
                Some(_) => format!(
                    "{missing} (split {}): when_missing: random drew bucket {bucket_text}; {}",
                    describe_split(g, seed),
                    owner(g, split, upstream)
                ),
                None => format!("{missing}: when_missing: primary sends it to the primary"),
            }
        }
    }
}

pub fn run(a: &RouteArgs, output: Output) -> Outcome {
    let loaded = input::load(&a.file)?;
    let req = CliRequest::build(a.host.as_deref(), &a.path, &a.headers, &a.cookies)?;
    let now = unix_time(a.at.as_deref())?;
    let mut notes = Vec::new();
    let routed = decide(
        &loaded.plan,
        &loaded.value,
        &req,
        a.consumer.as_deref(),
        now,
        &mut notes,
    );
    if a.consumer.is_some() {
        let ignored = routed
            .gateway
            .as_deref()
            .and_then(|g| loaded.plan.gateways.iter().find(|x| x.name == g))
            .is_some_and(|g| matches!(g.auth, Authenticator::None));
        if ignored {
            notes.push(format!(
                "gateway {} has no auth, so no consumer: --consumer is ignored",
                routed.gateway.as_deref().unwrap_or_default()
            ));
        }
    }
    for n in &notes {
        eprintln!("note: {n}");
    }
    match output {
        Output::Json => print_json(&routed.to_json()),
        Output::Table => {
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
            let mut lines = vec![
                ("gateway", dash(&routed.gateway)),
                ("upstream", dash(&routed.upstream)),
                (
                    "bucket",
                    routed.bucket.map_or("-".to_string(), |b| b.to_string()),
                ),
                ("reason", routed.reason.to_string()),
                ("key", dash(&routed.key)),
            ];
            if let Some(c) = &routed.consumer {
                lines.push(("consumer", c.clone()));
            }
            if let Some(p) = &routed.path {
                lines.push(("path", format!("{p} (forwarded)")));
            }
            lines.push(("why", routed.why.clone()));
            for (k, v) in lines {
                println!("{k:<9} {v}");
            }
        }
    }
    Ok(0)
}
