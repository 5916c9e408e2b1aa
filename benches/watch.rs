//! The response phase's pure work per response (issue 11 target: < 300 ns natively): the
//! class of a response, and recording it in a guarded canary's window. The host calls around
//! it (two clock reads, a counter, a histogram sample) are measured in Envoy by
//! scripts/bench.sh.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use canary_gate::canaries::Canaries;
use canary_gate::config::parse;
use canary_gate::watch::class::classify;
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let plan = parse(
        br#"{"primary":"v1","split":{"by":"header","name":"x-user"},"canaries":[
            {"name":"v2","percent":10,"guard":{"max_error_rate":0.05,"slow_ms":800,"max_slow_rate":0.01}},
            {"name":"v3","percent":5}]}"#,
    )
    .unwrap();
    let mut canaries = Canaries::new(&plan, "bench");
    c.bench_function("response: classify", |b| {
        b.iter(|| classify(black_box(200), black_box(None)))
    });
    c.bench_function("response: classify gRPC", |b| {
        b.iter(|| classify(black_box(200), black_box(Some(&b"14"[..]))))
    });
    let mut now = 1_800_000_000u64;
    c.bench_function("response: guarded canary (classify + window)", |b| {
        b.iter(|| {
            now += 1;
            let class = classify(black_box(503), None);
            canaries.record(0, 1, 503, class, black_box(12), now / 1000);
        })
    });
    c.bench_function("response: unguarded upstream (classify + lookup)", |b| {
        b.iter(|| {
            let class = classify(black_box(200), None);
            canaries.record(0, 0, 200, class, black_box(12), now / 1000);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
