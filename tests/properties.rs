//! Properties of the split and of the configuration, checked with proptest on
//! generated inputs (stable toolchain, part of `cargo test`):
//!
//! - the bucket formula is murmur3 x86_32 mod 10,000, checked against an
//!   independent implementation (`common::oracle`);
//! - raising the last canary's percent moves keys only from the primary into it;
//! - a change of percents moves no key out of a canary whose range did not
//!   shrink or shift;
//! - percents summing to at most 100 always validate, above 100 never;
//! - parse -> canonical JSON -> parse is a fixed point for configurations
//!   without secrets (routing, headers, split), however they were spelled.
//!
//! Failing cases are shrunk and printed by proptest; add them as unit tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use canary_gate::config::{parse, Plan};
use canary_gate::split::{bucket_of, murmur3_32, KeySource, WhenMissing, TOTAL_BUCKETS};
use common::oracle::murmur3_x86_32;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Percent of `bp` basis points as JSON writes it (`12.5`, `0.07`, `100`).
fn percent(bp: u32) -> Value {
    if bp.is_multiple_of(100) {
        json!(bp / 100)
    } else {
        json!(f64::from(bp) / 100.0)
    }
}

/// A header-split configuration with canaries `c0, c1, ...` of `bps` basis points.
fn config(bps: &[u32], seed: u32) -> Value {
    let canaries: Vec<Value> = bps
        .iter()
        .enumerate()
        .map(|(i, &bp)| json!({"name": format!("c{i}"), "percent": percent(bp)}))
        .collect();
    json!({"primary": "p", "canaries": canaries,
           "split": {"by": "header", "name": "x-user", "hash_seed": seed}})
}

fn plan(bps: &[u32], seed: u32) -> Plan {
    let doc = config(bps, seed).to_string();
    parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}: {doc}"))
}

/// Canary shares in basis points whose total is at most 100%.
fn shares(max_canaries: usize) -> impl Strategy<Value = Vec<u32>> {
    vec(0..=TOTAL_BUCKETS, 0..=max_canaries).prop_map(|mut bps| {
        let mut left = TOTAL_BUCKETS;
        for bp in &mut bps {
            *bp = (*bp).min(left);
            left -= *bp;
        }
        bps
    })
}

/// The upstream index of every bucket (0 is the primary, 1 + i canary i).
fn owners(plan: &Plan) -> Vec<usize> {
    (0..TOTAL_BUCKETS)
        .map(|b| plan.gateways[0].split.upstream_for_bucket(b))
        .collect()
}

proptest! {
    #[test]
    fn the_bucket_is_the_oracle_murmur3_mod_10000(key in vec(any::<u8>(), 0..64), seed in any::<u32>()) {
        prop_assert_eq!(murmur3_32(&key, seed), murmur3_x86_32(&key, seed));
        prop_assert_eq!(bucket_of(&key, seed), murmur3_x86_32(&key, seed) % 10_000);
    }

    /// The whole path, from the JSON percents to the upstream of a key.
    #[test]
    fn a_keyed_choice_follows_the_readme_formula(
        bps in shares(4),
        seed in any::<u32>(),
        keys in vec(vec(any::<u8>(), 1..24), 1..32),
    ) {
        let p = plan(&bps, seed);
        let names: Vec<String> = (0..bps.len()).map(|i| format!("c{i}")).collect();
        let canaries: Vec<(&str, f64)> = names
            .iter()
            .zip(&bps)
            .map(|(n, &bp)| (n.as_str(), f64::from(bp) / 100.0))
            .collect();
        for key in keys {
            let choice = p.gateways[0].split.choose(Some(&key), || unreachable!("a keyed split draws nothing"));
            prop_assert_eq!(
                p.gateways[0].upstream_name(choice.upstream),
                common::oracle::expected_upstream(&key, seed, "p", &canaries)
            );
        }
    }

    #[test]
    fn raising_the_last_canary_moves_keys_only_from_the_primary_into_it(
        bps in shares(4).prop_filter("a canary", |b| !b.is_empty()),
        raise in 1..=TOTAL_BUCKETS,
        seed in any::<u32>(),
    ) {
        let total: u32 = bps.iter().sum();
        prop_assume!(total < TOTAL_BUCKETS);
        let mut raised = bps.clone();
        if let Some(last) = raised.last_mut() {
            *last += raise.min(TOTAL_BUCKETS - total);
        }
        let last = bps.len();
        let (before, after) = (owners(&plan(&bps, seed)), owners(&plan(&raised, seed)));
        for (b, (&x, &y)) in before.iter().zip(&after).enumerate() {
            prop_assert!(x == y || (x == 0 && y == last), "bucket {}: {} -> {}", b, x, y);
        }
        // The same for keys, through the hash.
        let p0 = plan(&bps, seed);
        let p1 = plan(&raised, seed);
        for i in 0..200u32 {
            let key = format!("user-{i}");
            let x = p0.gateways[0].split.choose(Some(key.as_bytes()), || 0).upstream;
            let y = p1.gateways[0].split.choose(Some(key.as_bytes()), || 0).upstream;
            prop_assert!(x == y || (x == 0 && y == last), "{}: {} -> {}", key, x, y);
        }
    }

    #[test]
    fn no_key_leaves_a_canary_whose_range_did_not_shrink_or_shift(
        before in shares(5),
        after in shares(5),
        seed in any::<u32>(),
    ) {
        let range = |bps: &[u32], i: usize| {
            let start: u32 = bps.iter().take(i).sum();
            bps.get(i).map(|&bp| (start, start + bp))
        };
        let (old, new) = (owners(&plan(&before, seed)), owners(&plan(&after, seed)));
        for i in 0..before.len() {
            let (Some((s0, e0)), Some((s1, e1))) = (range(&before, i), range(&after, i)) else {
                continue;
            };
            if s1 != s0 || e1 < e0 {
                continue; // shifted or shrunk
            }
            for b in 0..TOTAL_BUCKETS as usize {
                if old[b] == i + 1 {
                    prop_assert_eq!(new[b], i + 1, "bucket {} left canary {}", b, i);
                }
            }
        }
    }

    #[test]
    fn percents_up_to_100_validate_and_above_never(bps in vec(0..=TOTAL_BUCKETS, 1..6)) {
        let doc = config(&bps, 0).to_string();
        let total: u32 = bps.iter().sum();
        match parse(doc.as_bytes()) {
            Ok(p) => {
                prop_assert!(total <= TOTAL_BUCKETS, "accepted {}: {}", total, doc);
                let edges: Vec<u32> = bps.iter().scan(0, |acc, bp| { *acc += bp; Some(*acc) }).collect();
                prop_assert_eq!(p.gateways[0].split.edges(), &edges[..]);
            }
            Err(e) => {
                prop_assert!(total > TOTAL_BUCKETS, "refused {}: {} ({})", total, e, doc);
                // Named at the canary whose percent crosses 100.
                let mut sum = 0;
                let crossing = bps.iter().position(|bp| { sum += bp; sum > TOTAL_BUCKETS });
                prop_assert_eq!(e.path, format!("canaries[{}].percent", crossing.unwrap_or(0)));
            }
        }
    }

    #[test]
    fn parse_canonical_parse_is_a_fixed_point(spelled in spelled_config()) {
        let doc = spelled.to_string();
        let first = parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}: {doc}"));
        let once = canonical(&first);
        let second = parse(once.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("canonical form refused: {e}: {once}"));
        prop_assert_eq!(canonical(&second), once);
        // And the two plans route alike.
        for i in 0..50u32 {
            let key = format!("k{i}");
            let a = first.gateways[0].split.choose(Some(key.as_bytes()), || i * 97);
            let b = second.gateways[0].split.choose(Some(key.as_bytes()), || i * 97);
            prop_assert_eq!(first.gateways[0].upstream_name(a.upstream), second.gateways[0].upstream_name(b.upstream));
        }
    }
}

/// The canonical form of a configuration without auth: every field written,
/// header names lowercase, percents as their shortest decimal.
fn canonical(plan: &Plan) -> Value {
    let p = &plan.gateways[0];
    let canaries: Vec<Value> = p
        .split
        .edges()
        .iter()
        .scan(0, |start, &edge| {
            let bp = edge - *start;
            *start = edge;
            Some(bp)
        })
        .enumerate()
        .map(|(i, bp)| json!({"name": p.upstream_name(i + 1), "percent": percent(bp)}))
        .collect();
    let (by, name) = match p.split.key() {
        KeySource::Random => ("random", None),
        KeySource::Header(h) => ("header", Some(h.as_str())),
        KeySource::Query(q) => ("query", Some(q.as_str())),
        KeySource::Cookie(c) => ("cookie", Some(c.as_str())),
        KeySource::Consumer => ("consumer", None),
    };
    let mut split = json!({ "by": by });
    if let Some(n) = name {
        split["name"] = json!(n);
    }
    if by != "random" {
        split["when_missing"] = json!(match p.split.when_missing() {
            WhenMissing::Random => "random",
            WhenMissing::Primary => "primary",
        });
        split["hash_seed"] = json!(p.split.seed());
    }
    let mut doc = json!({
        "primary": p.upstream_name(0),
        "canaries": canaries,
        "split": split,
        "route_header": plan.route_header,
        "consumer_header": plan.consumer_header,
        "auth": {"mode": p.auth.mode()},
    });
    if let Some(h) = &p.select_header {
        doc["select_header"] = json!(h);
    }
    if let Some(h) = &plan.response_header {
        doc["response_header"] = json!(h);
    }
    doc
}

/// One header name in a random letter case.
fn header(name: &'static str) -> impl Strategy<Value = String> {
    vec(any::<bool>(), name.len()).prop_map(move |upper| {
        name.chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

/// A valid configuration without auth, spelled in one of its many ways:
/// defaults written or left out, header names in any case, whole percents
/// as integers or as floats, the seed absent or explicit.
fn spelled_config() -> impl Strategy<Value = Value> {
    (
        shares(4),
        0..5usize,
        any::<u32>(),
        any::<bool>(),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (
            header("X-User"),
            header("X-Canary-Upstream"),
            header("X-Select"),
        ),
    )
        .prop_map(
            |(bps, by, seed, primary_when_missing, flags, (user, route, select))| {
                let (write_defaults, whole_as_float, with_select, with_response) = flags;
                let canaries: Vec<Value> = bps
                    .iter()
                    .enumerate()
                    .map(|(i, &bp)| {
                        let pct = if whole_as_float {
                            json!(f64::from(bp) / 100.0)
                        } else {
                            percent(bp)
                        };
                        json!({"name": format!("model-v{}", i + 2), "percent": pct})
                    })
                    .collect();
                let mut split = match by {
                    0 => json!({"by": "random"}),
                    1 => json!({"by": "header", "name": user}),
                    2 => json!({"by": "query", "name": "uid"}),
                    _ => json!({"by": "cookie", "name": "uid"}),
                };
                if by != 0 {
                    if primary_when_missing {
                        split["when_missing"] = json!("primary");
                    } else if write_defaults {
                        split["when_missing"] = json!("random");
                    }
                    if seed != 0 || write_defaults {
                        split["hash_seed"] = json!(seed);
                    }
                }
                let mut doc = json!({"primary": "model-v1", "canaries": canaries});
                if by != 0 || write_defaults {
                    doc["split"] = split;
                }
                if write_defaults {
                    doc["route_header"] = json!(route);
                    doc["consumer_header"] = json!("x-canary-consumer");
                    doc["auth"] = json!({"mode": "none"});
                }
                if with_select {
                    doc["select_header"] = json!(select);
                }
                if with_response {
                    doc["response_header"] = json!("X-Served-By");
                }
                doc
            },
        )
}
