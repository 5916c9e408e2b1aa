//! Choosing a gateway ([`GatewayTable::select`]) as the filter does once per
//! request, with the table compiled once as `on_configure` does.
//!
//! Rows: one gateway (`*`, `/`) against 1,000 gateways (500 exact hosts with 2
//! prefixes each), then the 1,000-gateway table with a wildcard host, an
//! unknown host (falls to `*`), a path that needs normalization, and a
//! stripped prefix.
//!
//! Run: `cargo bench --bench gateways` (add `-- --quick` for a short run).

// Benchmark set-up may fail loudly: a broken fixture must stop the run.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use canary_gate::gateway::{GatewaySpec, GatewayTable, Match};
use criterion::{criterion_group, criterion_main, Criterion};

fn spec(name: String, hosts: &[&str], prefix: &str, strip: bool) -> GatewaySpec {
    GatewaySpec {
        name,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        path_prefix: prefix.to_string(),
        strip_prefix: strip,
    }
}

/// 500 exact hosts x 2 prefixes = 1,000 gateways, plus (for the extra rows) a
/// wildcard and a `*` gateway.
fn big_table(extra: bool) -> GatewayTable {
    let mut specs = Vec::new();
    for i in 0..500 {
        let host = format!("tenant-{i}.models.example.com");
        specs.push(spec(
            format!("fraud-{i}"),
            &[&host],
            "/v1/models/fraud",
            false,
        ));
        specs.push(spec(format!("chat-{i}"), &[&host], "/v1/models/chat", true));
    }
    if extra {
        specs.push(spec("wild".into(), &["*.example.com"], "/v1", false));
        specs.push(spec("any".into(), &["*"], "/", false));
    }
    GatewayTable::compile(&specs).unwrap()
}

fn index(m: Match<'_>) -> usize {
    match m {
        Match::Gateway { index, .. } => index,
        other => panic!("{other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let one = GatewayTable::compile(&[GatewaySpec::new("all")]).unwrap();
    let thousand = big_table(false);
    let thousand_plus = big_table(true);
    let host: &[u8] = b"tenant-417.models.example.com:8443";
    let path: &[u8] = b"/v1/models/fraud/score?version=2";

    // Sanity: each row picks what it says.
    assert_eq!(index(one.select(Some(host), path)), 0);
    assert_eq!(
        thousand.name(index(thousand.select(Some(host), path))),
        Some("fraud-417")
    );
    let wild_host: &[u8] = b"x.y.example.com";
    assert_eq!(
        thousand_plus.name(index(thousand_plus.select(Some(wild_host), path))),
        Some("wild")
    );
    let unknown_host: &[u8] = b"api.other.org";
    assert_eq!(
        thousand_plus.name(index(thousand_plus.select(Some(unknown_host), path))),
        Some("any")
    );
    let messy: &[u8] = b"//v1/./models/%66raud/score?version=2";
    assert_eq!(
        thousand.name(index(thousand.select(Some(host), messy))),
        Some("fraud-417")
    );
    let chat: &[u8] = b"/v1/models/chat/completions?stream=1";
    match thousand.select(Some(host), chat) {
        Match::Gateway { strip: Some(p), .. } => assert_eq!(&*p, b"/completions?stream=1"),
        other => panic!("{other:?}"),
    }

    let mut g = c.benchmark_group("gateways");
    g.bench_function("1 gateway", |b| {
        b.iter(|| one.select(black_box(Some(host)), black_box(path)))
    });
    g.bench_function("1000 gateways, exact host", |b| {
        b.iter(|| thousand.select(black_box(Some(host)), black_box(path)))
    });
    g.bench_function("1000 gateways, wildcard host", |b| {
        b.iter(|| thousand_plus.select(black_box(Some(wild_host)), black_box(path)))
    });
    g.bench_function("1000 gateways, unknown host to *", |b| {
        b.iter(|| thousand_plus.select(black_box(Some(unknown_host)), black_box(path)))
    });
    g.bench_function("1000 gateways, path normalized (1 allocation)", |b| {
        b.iter(|| thousand.select(black_box(Some(host)), black_box(messy)))
    });
    g.bench_function("1000 gateways, strip_prefix (borrowed)", |b| {
        b.iter(|| thousand.select(black_box(Some(host)), black_box(chat)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
