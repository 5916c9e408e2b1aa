//! Shares of the key space: `simulate` (expected against observed) and `diff`
//! (who moves between two configurations), on the filter's own
//! [`SplitPlan::choose`](crate::split::SplitPlan::choose).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::args::{DiffArgs, SimulateArgs};
use super::input::{self, gateway_index, gateway_json, read_keys};
use super::live::split_at;
use super::table::Table;
use super::{print_json, unix_time, Failure, Outcome, Output, EXIT_FAILED};
use crate::config::Gateway;
use crate::split::{KeySource, SplitPlan, TOTAL_BUCKETS};
use crate::validate::format_bp;

/// Each upstream's share in basis points, by upstream index (0 is the primary).
pub fn shares_bp(split: &SplitPlan) -> Vec<u32> {
    ranges(split).into_iter().map(|(a, b)| b - a).collect()
}

/// Each upstream's bucket range `[start, end)`, by upstream index: canaries
/// own consecutive ranges from 0 in listed order, the primary the rest.
pub fn ranges(split: &SplitPlan) -> Vec<(u32, u32)> {
    let edges = split.edges();
    let last = edges.last().copied().unwrap_or(0);
    let mut out = vec![(last, TOTAL_BUCKETS)];
    let mut start = 0;
    for &edge in edges {
        out.push((start, edge));
        start = edge;
    }
    out
}

/// The hosts and path prefix a gateway takes (a configuration without
/// `gateways` has one gateway for every request).
pub fn listens_on(g: &Gateway, with_table: bool) -> (Vec<String>, String) {
    if with_table {
        (g.hosts.clone(), g.path_prefix.clone())
    } else {
        (vec!["*".to_string()], "/".to_string())
    }
}

/// `fraud [models.example.com/fraud]: fraud-v1 95%, fraud-v2 5%`.
pub fn describe_gateway(g: &Gateway, with_table: bool) -> String {
    let (hosts, prefix) = listens_on(g, with_table);
    let shares = shares_bp(&g.split);
    let upstreams: Vec<String> = g
        .upstreams
        .iter()
        .zip(shares)
        .map(|(u, bp)| format!("{u} {}%", format_bp(bp)))
        .collect();
    let prefix = if prefix == "/" { "" } else { prefix.as_str() };
    let hosts: Vec<String> = hosts.iter().map(|h| format!("{h}{prefix}")).collect();
    format!("{} [{}]: {}", g.name, hosts.join(" "), upstreams.join(", "))
}

/// How a gateway splits, in words: `by header x-user-id (hash_seed 0)`.
pub fn describe_split(g: &Gateway, seed: u32) -> String {
    let by = match g.split.key() {
        KeySource::Random => return "at random".to_string(),
        KeySource::Header(h) => format!("by header {h}"),
        KeySource::Query(q) => format!("by query parameter {q}"),
        KeySource::Cookie(c) => format!("by cookie {c}"),
        KeySource::Consumer => "by consumer".to_string(),
    };
    format!("{by} (hash_seed {seed})")
}

/// The gateway's `split.hash_seed` (0 when not set).
pub fn hash_seed(config: &Value, index: usize) -> u32 {
    gateway_json(config, index)
        .and_then(|g| g.pointer("/split/hash_seed"))
        .and_then(Value::as_u64)
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0)
}

/// The upstream index a key gets (the filter's choice for a non-empty key).
fn upstream_of(split: &SplitPlan, key: &str) -> usize {
    // A keyed split never draws for a non-empty key.
    split.choose(Some(key.as_bytes()), || 0).upstream
}

/// Bucket by bucket, which upstream's buckets go to which other upstream
/// between two versions of a gateway, each with the split it routes with:
/// `(from, to, buckets)`, `from != to`.
pub fn bucket_moves(
    (old, old_split): (&Gateway, &SplitPlan),
    (new, new_split): (&Gateway, &SplitPlan),
) -> Vec<(String, String, u32)> {
    let mut moves: BTreeMap<(usize, usize), u32> = BTreeMap::new();
    for b in 0..TOTAL_BUCKETS {
        let from = old_split.upstream_for_bucket(b);
        let to = new_split.upstream_for_bucket(b);
        if old.upstream_name(from) != new.upstream_name(to) {
            *moves.entry((from, to)).or_default() += 1;
        }
    }
    moves
        .into_iter()
        .map(|((f, t), n)| {
            (
                old.upstream_name(f).to_string(),
                new.upstream_name(t).to_string(),
                n,
            )
        })
        .collect()
}

/// `9500 buckets fraud-v1 -> fraud-v2, 200 fraud-v3 -> fraud-v2`, or `no bucket moves`.
pub fn describe_moves(moves: &[(String, String, u32)]) -> String {
    if moves.is_empty() {
        return "no bucket moves".to_string();
    }
    let parts: Vec<String> = moves
        .iter()
        .map(|(f, t, n)| format!("{n} {f} -> {t}"))
        .collect();
    format!("buckets that move: {}", parts.join(", "))
}

const MAX_RANDOM: u64 = 100_000_000;

pub fn simulate(a: &SimulateArgs, output: Output) -> Outcome {
    let loaded = input::load(&a.file)?;
    let name = loaded.input.name();
    let index = gateway_index(&loaded.plan, a.gateway.as_deref(), &name)?;
    let Some(g) = loaded.plan.gateways.get(index) else {
        return Err(Failure::usage("no such gateway"));
    };
    let now = unix_time(a.at.as_deref())?;
    let split = split_at(&loaded.plan, index, now).unwrap_or_else(|| g.split.clone());
    let random_split = matches!(g.split.key(), KeySource::Random);
    let mut counts = vec![0u64; g.upstreams.len()];
    let (population, total) = match (&a.keys, a.random) {
        (Some(path), _) => {
            if random_split {
                return Err(Failure::usage(format!(
                    "gateway {} splits at random: keys do not stick to a version; use --random N",
                    g.name
                )));
            }
            let keys = read_keys(path)?;
            for key in &keys {
                if let Some(c) = counts.get_mut(upstream_of(&split, key)) {
                    *c += 1;
                }
            }
            ("keys", keys.len() as u64)
        }
        (None, Some(n)) => {
            if n == 0 || n > MAX_RANDOM {
                return Err(Failure::usage(format!(
                    "--random {n}: give 1 to {MAX_RANDOM}"
                )));
            }
            let mut rng = fastrand::Rng::new();
            for _ in 0..n {
                let upstream = if random_split {
                    split.choose(None, || rng.u32(0..TOTAL_BUCKETS)).upstream
                } else {
                    let key = format!("{:016x}", rng.u64(..));
                    upstream_of(&split, &key)
                };
                if let Some(c) = counts.get_mut(upstream) {
                    *c += 1;
                }
            }
            (
                if random_split {
                    "requests"
                } else {
                    "random keys"
                },
                n,
            )
        }
        (None, None) => return Err(Failure::usage("give --keys FILE or --random N")),
    };
    let seed = hash_seed(&loaded.value, index);
    let shares = shares_bp(&split);
    // Canaries first, in bucket order, then the primary: the order of the key space.
    let order: Vec<usize> = (1..g.upstreams.len()).chain([0]).collect();
    let rows: Vec<(usize, f64, u64, Option<f64>)> = order
        .iter()
        .map(|&u| {
            let p = f64::from(shares.get(u).copied().unwrap_or(0)) / f64::from(TOTAL_BUCKETS);
            let observed = counts.get(u).copied().unwrap_or(0);
            let n = total as f64;
            let sigma = (n * p * (1.0 - p)).sqrt();
            let z = (sigma > 0.0).then(|| (observed as f64 - n * p) / sigma);
            (u, p, observed, z)
        })
        .collect();
    match output {
        Output::Json => print_json(&json!({
            "gateway": g.name,
            "split": describe_split(g, seed),
            "population": population,
            "count": total,
            "upstreams": rows.iter().map(|(u, p, observed, z)| json!({
                "name": g.upstream_name(*u),
                "expected_percent": p * 100.0,
                "observed_percent": percent(*observed, total),
                "count": observed,
                "z": z,
            })).collect::<Vec<_>>(),
        })),
        Output::Table => {
            println!(
                "gateway {}: split {}, {total} {population}",
                g.name,
                describe_split(g, seed)
            );
            let mut t = Table::new(&["UPSTREAM", "EXPECTED", "OBSERVED", "COUNT", "DEVIATION"]);
            for (u, p, observed, z) in &rows {
                t.row(vec![
                    g.upstream_name(*u).to_string(),
                    format!("{:.2}%", p * 100.0),
                    format!("{:.2}%", percent(*observed, total)),
                    observed.to_string(),
                    z.map_or("-".to_string(), |z| format!("{z:+.1} sigma")),
                ]);
            }
            print!("{}", t.render());
        }
    }
    Ok(0)
}

fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 * 100.0 / total as f64
    }
}

/// A move out of a canary whose percent did not shrink.
struct MoveOut {
    from: String,
    to: String,
    keys: u64,
    old_bp: u32,
    new_bp: u32,
}

pub fn diff(a: &DiffArgs, output: Output) -> Outcome {
    let old = input::load(&a.old)?;
    let new = input::load(&a.new)?;
    let old_name = old.input.name();
    let new_name = new.input.name();
    let oi = gateway_index(&old.plan, a.gateway.as_deref(), &old_name)?;
    let Some(og) = old.plan.gateways.get(oi) else {
        return Err(Failure::usage("no such gateway"));
    };
    let ni = gateway_index(&new.plan, Some(og.name.as_str()), &new_name)?;
    let Some(ng) = new.plan.gateways.get(ni) else {
        return Err(Failure::usage("no such gateway"));
    };
    let now = unix_time(a.at.as_deref())?;
    let old_split = split_at(&old.plan, oi, now).unwrap_or_else(|| og.split.clone());
    let new_split = split_at(&new.plan, ni, now).unwrap_or_else(|| ng.split.clone());
    for (g, file) in [(og, &old_name), (ng, &new_name)] {
        if matches!(g.split.key(), KeySource::Random) {
            return Err(Failure::usage(format!(
                "gateway {} splits at random in {file}: keys do not stick to a version, so none can move",
                g.name
            )));
        }
    }
    if og.split.key() != ng.split.key() {
        eprintln!(
            "note: the split key changes ({} -> {}); each key is taken as a value of both",
            describe_split(og, hash_seed(&old.value, oi)),
            describe_split(ng, hash_seed(&new.value, ni))
        );
    }
    let keys = read_keys(&a.keys)?;
    let mut cells: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    for key in &keys {
        *cells
            .entry((upstream_of(&old_split, key), upstream_of(&new_split, key)))
            .or_default() += 1;
    }
    let old_shares = shares_bp(&old_split);
    let new_shares = shares_bp(&new_split);
    let new_share_of = |name: &str| {
        ng.upstreams
            .iter()
            .position(|u| u == name)
            .and_then(|i| new_shares.get(i).copied())
            .unwrap_or(0)
    };
    let mut moved = 0u64;
    let mut out_of_canaries = Vec::new();
    for (&(f, t), &n) in &cells {
        let (from, to) = (og.upstream_name(f), ng.upstream_name(t));
        if from == to {
            continue;
        }
        moved += n;
        let old_bp = old_shares.get(f).copied().unwrap_or(0);
        let new_bp = new_share_of(from);
        if f > 0 && new_bp >= old_bp {
            out_of_canaries.push(MoveOut {
                from: from.to_string(),
                to: to.to_string(),
                keys: n,
                old_bp,
                new_bp,
            });
        }
    }
    // Rows: the old upstreams; columns: the new ones, then old names that are gone.
    let mut columns: Vec<&str> = ng.upstreams.iter().map(String::as_str).collect();
    for u in &og.upstreams {
        if !columns.contains(&u.as_str()) {
            columns.push(u);
        }
    }
    let count = |from: &str, to: &str| -> u64 {
        cells
            .iter()
            .filter(|((f, t), _)| og.upstream_name(*f) == from && ng.upstream_name(*t) == to)
            .map(|(_, n)| n)
            .sum()
    };
    let total = keys.len() as u64;
    let failed = a.fail_on_move_out && !out_of_canaries.is_empty();
    match output {
        Output::Json => {
            let mut matrix = Vec::new();
            for from in &og.upstreams {
                for to in &columns {
                    let n = count(from, to);
                    if n > 0 {
                        matrix.push(json!({"from": from, "to": to, "keys": n}));
                    }
                }
            }
            print_json(&json!({
                "gateway": og.name,
                "keys": total,
                "moved": moved,
                "matrix": matrix,
                "moves_out_of_canaries": out_of_canaries.iter().map(|m| json!({
                    "from": m.from, "to": m.to, "keys": m.keys,
                    "old_percent": f64::from(m.old_bp) / 100.0,
                    "new_percent": f64::from(m.new_bp) / 100.0,
                })).collect::<Vec<_>>(),
                "ok": !failed,
            }));
        }
        Output::Table => {
            println!(
                "gateway {}: {total} keys, {moved} move ({:.2}%)",
                og.name,
                percent(moved, total)
            );
            let mut headers = vec!["FROM \\ TO"];
            headers.extend(columns.iter().copied());
            let mut t = Table::new(&headers);
            for from in &og.upstreams {
                let mut row = vec![from.clone()];
                row.extend(columns.iter().map(|to| count(from, to).to_string()));
                t.row(row);
            }
            print!("{}", t.render());
            for m in &out_of_canaries {
                println!(
                    "move out of a canary whose percent did not shrink: {} keys {} -> {} ({} {}% -> {}%)",
                    m.keys,
                    m.from,
                    m.to,
                    m.from,
                    format_bp(m.old_bp),
                    format_bp(m.new_bp)
                );
            }
        }
    }
    if failed {
        let n: u64 = out_of_canaries.iter().map(|m| m.keys).sum();
        eprintln!("diff: {n} keys leave canaries whose percent did not shrink");
        return Ok(EXIT_FAILED);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn gateway(json: &str) -> Gateway {
        parse(json.as_bytes()).unwrap().gateways.remove(0)
    }

    #[test]
    fn ranges_follow_the_documented_layout() {
        let g = gateway(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":10},{"name":"v3","percent":2.5}]}"#,
        );
        assert_eq!(
            ranges(&g.split),
            vec![(1250, 10_000), (0, 1000), (1000, 1250)]
        );
        assert_eq!(shares_bp(&g.split), vec![8750, 1000, 250]);
        assert_eq!(
            describe_gateway(&g, false),
            "default [*]: v1 87.5%, v2 10%, v3 2.5%"
        );
    }

    #[test]
    fn raising_an_earlier_canary_moves_the_later_one() {
        let old = gateway(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":10},{"name":"v3","percent":5}]}"#,
        );
        let new = gateway(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":20},{"name":"v3","percent":5}]}"#,
        );
        // v2 [0,1000) v3 [1000,1500) v1 [1500,10000)  ->  v2 [0,2000) v3 [2000,2500) v1 rest
        let moves = bucket_moves((&old, &old.split), (&new, &new.split));
        let want = [("v1", "v2", 500), ("v1", "v3", 500), ("v3", "v2", 500)];
        assert_eq!(moves.len(), want.len(), "{moves:?}");
        for ((f, t, n), (wf, wt, wn)) in moves.iter().zip(want) {
            assert_eq!((f.as_str(), t.as_str(), *n), (wf, wt, wn));
        }
        assert_eq!(
            describe_moves(&moves),
            "buckets that move: 500 v1 -> v2, 500 v1 -> v3, 500 v3 -> v2"
        );
    }
}
