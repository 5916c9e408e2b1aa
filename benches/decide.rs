//! The per-request logic on the native target: [`Plan::decide`] as the filter
//! calls it once per request, with the plan compiled once as `on_configure`
//! does. Headers are read as the filter reads them from the host: one header
//! is looked up in a short list and copied into a new `Vec` (the proxy-wasm
//! host hands back a fresh buffer per read); a credential header, which must
//! be checked for copies, is found in a copy of the whole serialized map (one
//! buffer, as the filter's one read of the map), exactly as the filter does
//! (`request::single_in_map`). The host's own work is measured in Envoy, by the twin rows of
//! scripts/bench.sh.
//!
//! Run: `cargo bench --bench decide` (add `-- --quick` for a short run).
//! The Envoy-level figures come from `scripts/bench.sh`.

// Benchmark set-up may fail loudly: a broken fixture must stop the run.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use canary_gate::auth::CREDENTIAL_CACHE_CAPACITY;
use canary_gate::config::{parse, Plan};
use canary_gate::decide::{Outcome, State, Wait};
use canary_gate::request::{single_in_map, Ambiguous, Request};
use canary_gate::wire;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

/// Request headers, lowercase names, pseudo-headers included; and the same
/// serialized as the ABI carries them.
struct Headers(Vec<(String, String)>, Vec<u8>);

impl Headers {
    /// A typical request plus `extra` (which replaces a typical header of the same name).
    fn new(extra: &[(&str, &str)]) -> Self {
        let mut list: Vec<(String, String)> = [
            (":method", "POST"),
            (":path", "/v1/predict"),
            (":authority", "models.example.com"),
            (":scheme", "http"),
            ("user-agent", "bench/1.0"),
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ]
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        list.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let map = wire::encode_map(&list);
        Headers(list, map)
    }
}

impl Request for Headers {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes().to_vec())
    }

    fn header_values(&self, name: &str) -> Vec<Vec<u8>> {
        let map = self.1.clone();
        wire::values(&map, name).map(<[u8]>::to_vec).collect()
    }

    fn single_header(&self, name: &str) -> Result<Option<Vec<u8>>, Ambiguous> {
        single_in_map(self.1.clone(), name)
    }
}

/// The same fixtures as the Envoy rows in scripts/bench.sh.
const API_KEY: &str = "bench-access-key-0123456789";
/// bcrypt cost 5 of "bench-password".
const BCRYPT: &str = "$2b$05$lg/henqMEcqF2UbftNXUhOxxl5rgN2Sc15ozn1WN//YRA0tpSUIte";
/// "Basic " + base64("bench:bench-password")
const BASIC_HEADER: &str = "Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ=";

fn plan(json: &str) -> Plan {
    parse(json.as_bytes()).unwrap_or_else(|e| panic!("bench config rejected: {e}"))
}

fn state() -> State {
    State::new(42, CREDENTIAL_CACHE_CAPACITY, 1)
}

/// Benchmarks one decision; checks once, outside the timing, that it succeeds.
fn bench_decide(c: &mut Criterion, name: &str, plan: &Plan, req: &Headers) {
    let mut state = state();
    if plan.decide(req, &mut state, NOW).forwarded().is_none() {
        panic!("{name}: the fixture request is not forwarded");
    }
    c.bench_function(name, |b| {
        b.iter(|| {
            let d = plan.decide(black_box(req), &mut state, NOW);
            black_box(d.forwarded().map(|d| d.upstream));
        })
    });
}

fn decide(c: &mut Criterion) {
    let random = plan(r#"{"primary":"v1","canaries":[{"name":"v2","percent":10}]}"#);
    bench_decide(c, "decide/random_split", &random, &Headers::new(&[]));

    let by_header = plan(
        r#"{"primary":"v1","canaries":[{"name":"v2","percent":10}],"split":{"by":"header","name":"x-user"}}"#,
    );
    let req = Headers::new(&[("x-user", "user-42")]);
    bench_decide(c, "decide/header_split", &by_header, &req);

    let digest = sha256_hex(API_KEY);
    let keyed = plan(&format!(
        r#"{{"primary":"v1","canaries":[{{"name":"v2","percent":10}}],"split":{{"by":"header","name":"x-user"}},
            "auth":{{"mode":"access_key","keys":[{{"consumer":"alice","sha256":"{digest}"}}]}}}}"#
    ));
    let req = Headers::new(&[("x-user", "user-42"), ("x-api-key", API_KEY)]);
    bench_decide(c, "decide/header_split_access_key", &keyed, &req);

    let keyed_query = plan(&format!(
        r#"{{"primary":"v1","canaries":[{{"name":"v2","percent":10}}],"split":{{"by":"header","name":"x-user"}},
            "auth":{{"mode":"access_key","query":"api_key","keys":[{{"consumer":"alice","sha256":"{digest}"}}]}}}}"#
    ));
    let path = format!("/v1/predict?model=m1&api_key={API_KEY}");
    let req = Headers::new(&[("x-user", "user-42"), (":path", &path)]);
    bench_decide(
        c,
        "decide/header_split_access_key_in_query",
        &keyed_query,
        &req,
    );

    let basic = plan(&format!(
        r#"{{"primary":"v1","canaries":[{{"name":"v2","percent":10}}],
            "auth":{{"mode":"basic","users":["bench:{BCRYPT}"]}}}}"#
    ));
    let req = Headers::new(&[("authorization", BASIC_HEADER)]);
    // The first call runs bcrypt and fills the cache; every timed call hits it.
    bench_decide(c, "decide/basic_bcrypt5_cached", &basic, &req);

    // For scale: what the cache saves (a new client, or an evicted entry).
    let mut group = c.benchmark_group("decide");
    group.sample_size(10);
    group.bench_function("basic_bcrypt5_uncached", |b| {
        b.iter_batched_ref(
            state,
            |s| {
                black_box(
                    basic
                        .decide(black_box(&req), s, NOW)
                        .forwarded()
                        .map(|d| d.upstream),
                )
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // OAuth2: JWTs from tests/fixtures/oauth2 (minted with openssl, valid until 2100) checked
    // against the fixture JWKS. "cached": the verdict cache answers (the repeat client);
    // "uncached": a fresh state per call, so every call parses and verifies the signature.
    let tokens: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/oauth2/tokens.json"))
            .unwrap_or_default();
    let jwks = include_str!("../tests/fixtures/oauth2/jwks.json");
    let oauth2 = plan(&format!(
        r#"{{"primary":"v1","canaries":[{{"name":"v2","percent":10}}],"split":{{"by":"consumer"}},
            "auth":{{"mode":"oauth2","issuer":"https://idp.example.com","audiences":["models"],"jwks":{jwks}}}}}"#
    ));
    for alg in ["rs256", "es256", "eddsa"] {
        let token = tokens
            .pointer(&format!("/tokens/{alg}"))
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let req = Headers::new(&[("authorization", &format!("Bearer {token}"))]);
        bench_decide(c, &format!("decide/jwt_{alg}_cached"), &oauth2, &req);
        let mut group = c.benchmark_group("decide");
        group.sample_size(20);
        group.bench_function(format!("jwt_{alg}_uncached"), |b| {
            b.iter_batched_ref(
                state,
                |s| {
                    black_box(
                        oauth2
                            .decide(black_box(&req), s, NOW)
                            .forwarded()
                            .map(|d| d.upstream),
                    )
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }

    // Introspection (RFC 7662): an opaque token whose active answer is in the verdict cache.
    let introspected = plan(
        r#"{"primary":"v1","canaries":[{"name":"v2","percent":10}],"split":{"by":"consumer"},
            "auth":{"mode":"oauth2","introspection":{"cluster":"idp","path":"/introspect",
                    "client_id":"gate","client_secret":"s3cret","cache_seconds":300}}}"#,
    );
    let req = Headers::new(&[("authorization", &format!("Bearer {OPAQUE_TOKEN}"))]);
    let mut state = state();
    let Outcome::Wait(Wait::Introspect { digest, .. }) = introspected.decide(&req, &mut state, NOW)
    else {
        panic!("decide/introspected_cached: the fixture token is not sent to introspection");
    };
    let answer = br#"{"active":true,"sub":"bench-user","exp":4102444800}"#;
    let (outcome, _) =
        introspected.after_introspection(0, &req, &mut state, NOW, digest, Some(200), Some(answer));
    if outcome.forwarded().is_none() {
        panic!("decide/introspected_cached: the introspection answer is refused");
    }
    c.bench_function("decide/introspected_cached", |b| {
        b.iter(|| {
            let d = introspected.decide(black_box(&req), &mut state, NOW);
            black_box(d.forwarded().map(|d| d.upstream));
        })
    });
}

/// User enumeration by timing (Basic): a wrong password of a bcrypt user
/// against a user that does not exist, which is verified against the decoy
/// hash of the same cost while the VM's decoy budget lasts (a fresh state per
/// call), and once it has run out (`unknown_user_budget_spent`).
fn basic_timing(c: &mut Criterion) {
    let basic = plan(&format!(
        r#"{{"primary":"v1","auth":{{"mode":"basic","users":["bench:{BCRYPT}"]}}}}"#
    ));
    let wrong = Headers::new(&[("authorization", "Basic YmVuY2g6d3Jvbmc=")]); // bench:wrong
    let unknown = Headers::new(&[("authorization", "Basic bm9ib2R5OndoYXRldmVy")]); // nobody:whatever
    let mut group = c.benchmark_group("basic_timing");
    group.sample_size(20);
    for (name, req) in [("wrong_password", &wrong), ("unknown_user", &unknown)] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                state,
                |s| black_box(basic.decide(black_box(req), s, NOW).refused()),
                BatchSize::SmallInput,
            )
        });
    }
    let mut spent = state();
    for _ in 0..1_000 {
        let _ = basic.decide(&unknown, &mut spent, NOW);
    }
    group.bench_function("unknown_user_budget_spent", |b| {
        b.iter(|| black_box(basic.decide(black_box(&unknown), &mut spent, NOW).refused()))
    });
    group.finish();
}
/// An opaque access token as identity providers issue them (43 characters of base64url).
const OPAQUE_TOKEN: &str = "2YotnFZFEjr1zCsicMWpAAx3kQp0vZ8xgHc9tLmR5aE";

/// 2026-11-29 in Unix seconds: inside every fixture token's validity.
const NOW: u64 = 1_795_000_000;

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

criterion_group!(benches, decide, basic_timing);
criterion_main!(benches);
