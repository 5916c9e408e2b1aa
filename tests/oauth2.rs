//! OAuth2 bearer authentication through a real Envoy. A test identity provider,
//! reached by Envoy as the cluster `idp`, serves the JWKS and the introspection
//! endpoint; the tokens are the ones `tests/fixtures/oauth2/mint.py` minted with
//! openssl (valid ones expire in 2100, so the real clock is fine).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine;
use common::oracle::expected_upstream;
use common::{EchoUpstream, Envoy, Gateway, Resp};
use serde_json::{json, Value};

const JWKS: &str = include_str!("fixtures/oauth2/jwks.json");
const TOKENS: &str = include_str!("fixtures/oauth2/tokens.json");
const CLIENT_SECRET: &str = "s3cr3t-client-value";

fn token(name: &str) -> String {
    let v: Value = serde_json::from_str(TOKENS).unwrap();
    v["tokens"][name].as_str().unwrap().to_string()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

// ---------------------------------------------------------------------------------------------
// A test identity provider
// ---------------------------------------------------------------------------------------------

/// What the provider does; switchable while Envoy runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Up,
    /// Every endpoint answers 500.
    Down,
}

#[derive(Default)]
struct Seen {
    jwks_requests: u32,
    /// `Host` of the last JWKS request.
    jwks_host: Option<String>,
    /// Introspection requests per token.
    introspections: HashMap<String, u32>,
    /// Problems with an introspection request (bad method, credentials, body).
    errors: Vec<String>,
}

struct Idp {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

/// Introspection answers by token.
fn introspection_answer(token: &str) -> Value {
    match token {
        "opaque-active" => {
            json!({"active": true, "sub": "dave", "scope": "predict read", "client_id": "app"})
        }
        "opaque-narrow" => json!({"active": true, "sub": "erin", "scope": "read"}),
        "opaque-later" => json!({"active": true, "sub": "frank", "scope": "predict"}),
        _ => json!({"active": false}),
    }
}

impl Idp {
    fn start(mode: Mode) -> Idp {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let thread = {
            let (server, mode, seen) = (Arc::clone(&server), Arc::clone(&mode), Arc::clone(&seen));
            thread::spawn(move || {
                for req in server.incoming_requests() {
                    // One thread per request: a slow answer must not hold the others.
                    let (mode, seen) = (*mode.lock().unwrap(), Arc::clone(&seen));
                    thread::spawn(move || answer(req, mode, &seen));
                }
            })
        };
        Idp {
            port,
            mode,
            seen,
            server,
            thread: Some(thread),
        }
    }

    fn cluster(&self) -> (&str, u16) {
        ("idp", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn introspections(&self, token: &str) -> u32 {
        self.seen
            .lock()
            .unwrap()
            .introspections
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    fn jwks_requests(&self) -> u32 {
        self.seen.lock().unwrap().jwks_requests
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(req: &tiny_http::Request, name: &str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_owned())
}

fn answer(mut req: tiny_http::Request, mode: Mode, seen: &Mutex<Seen>) {
    let json_type = tiny_http::Header::from_bytes("content-type", "application/json").unwrap();
    let reply = |req: tiny_http::Request, status: u16, body: String| {
        let _ = req.respond(
            tiny_http::Response::from_string(body)
                .with_status_code(status)
                .with_header(json_type.clone()),
        );
    };
    let path = req.url().to_owned();
    match path.as_str() {
        "/jwks.json" => {
            {
                let mut s = seen.lock().unwrap();
                s.jwks_requests += 1;
                s.jwks_host = header(&req, "host");
            }
            match mode {
                Mode::Up => reply(req, 200, JWKS.to_owned()),
                Mode::Down => reply(req, 500, "{\"error\":\"down\"}".into()),
            }
        }
        "/oauth2/introspect" => {
            let mut body = String::new();
            let _ = req.as_reader().take(1 << 16).read_to_string(&mut body);
            let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            let token = form.get("token").cloned().unwrap_or_default();
            let expected_auth = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("gateway:{CLIENT_SECRET}"))
            );
            {
                let mut s = seen.lock().unwrap();
                *s.introspections.entry(token.clone()).or_default() += 1;
                if req.method() != &tiny_http::Method::Post {
                    s.errors.push(format!("method {}", req.method()));
                }
                if header(&req, "authorization").as_deref() != Some(expected_auth.as_str()) {
                    s.errors.push("wrong client credentials".into());
                }
                if header(&req, "content-type").as_deref()
                    != Some("application/x-www-form-urlencoded")
                {
                    s.errors.push("not a form".into());
                }
                if form.get("token_type_hint").map(String::as_str) != Some("access_token") {
                    s.errors.push(format!("body {body:?}"));
                }
            }
            match mode {
                Mode::Up => reply(req, 200, introspection_answer(&token).to_string()),
                Mode::Down => reply(req, 500, "{\"error\":\"down\"}".into()),
            }
        }
        _ => reply(req, 404, "{}".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn jwks_uri_config(refresh_seconds: u64, timeout_ms: u64) -> Value {
    json!({
        "primary": "model-v1",
        "canaries": [{"name": "model-v2", "percent": 50}],
        "split": {"by": "consumer"},
        "auth": {
            "mode": "oauth2",
            "realm": "models",
            "issuer": "https://idp.example.com",
            "audiences": ["models"],
            "jwks_uri": {"cluster": "idp", "path": "/jwks.json", "authority": "idp.example.com",
                         "refresh_seconds": refresh_seconds, "timeout_ms": timeout_ms},
            "required_scopes": ["predict"]
        }
    })
}

/// A 401 as RFC 6750 says: `invalid_token` challenge, JSON reason, no upstream.
fn assert_invalid_token(r: &Resp, reason: &str, description: &str) {
    assert_eq!(r.status, 401, "{reason}: {r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            format!(
                "Bearer realm=\"models\", error=\"invalid_token\", error_description=\"{description}\""
            )
            .as_str()
        ),
        "{r:?}"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], "invalid_token");
    assert_eq!(r.json()["reason"], reason, "{r:?}");
    assert!(
        r.upstream().is_none(),
        "refused request reached an upstream: {r:?}"
    );
}

/// Accepted: the consumer header carries the identity, the token is not forwarded, and the
/// consumer split picked the upstream the documented formula gives.
fn assert_accepted(r: &Resp, consumer: &str) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.upstream_header("x-canary-consumer").as_deref(),
        Some(consumer),
        "{r:?}"
    );
    assert_eq!(
        r.upstream_header("authorization"),
        None,
        "token forwarded upstream"
    );
    let want = expected_upstream(consumer, 0, "model-v1", &[("model-v2", 50.0)]);
    assert_eq!(r.upstream().as_deref(), Some(want), "{r:?}");
}

fn counter(prom: &str, name: &str) -> u64 {
    prom.lines()
        .find(|l| l.contains(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn jwts_verified_with_a_fetched_jwks() {
    let (v1, v2) = (
        EchoUpstream::start("model-v1"),
        EchoUpstream::start("model-v2"),
    );
    let idp = Idp::start(Mode::Up);
    let envoy = Envoy::builder(Gateway::new(
        &jwks_uri_config(300, 5000),
        &[v1.cluster(), v2.cluster(), idp.cluster()],
    ))
    .start();

    for name in ["rs256", "ps256", "es256", "es384", "eddsa", "rs512"] {
        let r = envoy.get(
            "/predict",
            &[
                ("authorization", &bearer(&token(name))),
                ("x-canary-consumer", "admin"),
            ],
        );
        assert_accepted(&r, "alice");
    }
    // Audience list and `scp` array; a 20 KB token.
    assert_accepted(
        &envoy.get("/", &[("authorization", &bearer(&token("audience_list")))]),
        "bob",
    );
    let big = token("big");
    assert!(big.len() > 20_000);
    assert_accepted(
        &envoy.get("/", &[("authorization", &bearer(&big))]),
        "alice",
    );
    // The scheme is case-insensitive.
    assert_accepted(
        &envoy.get(
            "/",
            &[("authorization", &format!("bEaReR {}", token("es256")))],
        ),
        "alice",
    );

    for (name, reason, description) in [
        ("expired", "token_expired", "the token has expired"),
        (
            "not_yet_valid",
            "token_not_yet_valid",
            "the token is not valid yet",
        ),
        (
            "wrong_audience",
            "invalid_audience",
            "the token is not meant for this service",
        ),
        (
            "wrong_issuer",
            "invalid_issuer",
            "the token was issued by an untrusted issuer",
        ),
        (
            "unknown_kid",
            "unknown_key",
            "the token was signed with an unknown key",
        ),
        (
            "bad_signature",
            "invalid_signature",
            "the token signature is invalid",
        ),
        (
            "alg_none",
            "unsupported_algorithm",
            "the token's signing algorithm is not accepted",
        ),
        (
            "hs256_rsa_public_pem",
            "unsupported_algorithm",
            "the token's signing algorithm is not accepted",
        ),
        (
            "hs256_rsa_public_der",
            "unsupported_algorithm",
            "the token's signing algorithm is not accepted",
        ),
        (
            "no_exp",
            "missing_claim",
            "the token lacks a required claim",
        ),
    ] {
        let r = envoy.get("/", &[("authorization", &bearer(&token(name)))]);
        assert_invalid_token(&r, reason, description);
    }
    let rs = token("rs256");
    for garbage in [
        rs[..rs.len() - 12].to_string(),
        rs.rsplit_once('.').unwrap().0.to_string(),
        "not-a-jwt".to_string(),
        "e30.e30.e30".to_string(),
        "A".repeat(20 * 1024),
    ] {
        let r = envoy.get("/", &[("authorization", &bearer(&garbage))]);
        assert_eq!(r.status, 401, "{r:?}");
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\""));
        assert!(r.upstream().is_none());
    }

    // Valid but without the `predict` scope: 403.
    let r = envoy.get("/", &[("authorization", &bearer(&token("missing_scope")))]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"models\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"predict\"")
    );
    assert_eq!(r.json()["reason"], "insufficient_scope");
    assert!(r.upstream().is_none());

    // No token, or another scheme: a challenge without an error code.
    for headers in [vec![], vec![("authorization", "Basic YWxpY2U6cHc=")]] {
        let r = envoy.get("/", &headers);
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"models\"")
        );
        assert_eq!(r.json()["reason"], "missing_credentials");
    }

    // Repeated tokens come from the verdict cache.
    for _ in 0..3 {
        assert_accepted(
            &envoy.get("/", &[("authorization", &bearer(&token("eddsa")))]),
            "alice",
        );
    }

    assert_eq!(
        idp.seen.lock().unwrap().jwks_host.as_deref(),
        Some("idp.example.com")
    );
    let prom = envoy.prometheus();
    for (name, at_least) in [
        (
            "canary_gate_auth_denied{gateway=\"default\",reason=\"token_expired\"}",
            1,
        ),
        (
            "canary_gate_auth_denied{gateway=\"default\",reason=\"unsupported_algorithm\"}",
            3,
        ),
        (
            "canary_gate_auth_denied{gateway=\"default\",reason=\"insufficient_scope\"}",
            1,
        ),
        (
            "canary_gate_auth_denied{gateway=\"default\",reason=\"missing_credentials\"}",
            2,
        ),
        ("canary_gate_oauth2_jwks_fetch_ok", 1),
        ("canary_gate_oauth2_token_cache_hits", 3),
        ("canary_gate_auth_allowed", 12),
    ] {
        assert!(
            counter(&prom, name) >= at_least,
            "{name} < {at_least} in:\n{prom}"
        );
    }
    let log = envoy.log();
    assert!(log.contains("JWKS loaded: 4 keys"), "{log}");
    assert!(!log.contains(&token("rs256")), "a token reached the log");
}

#[test]
fn jwks_endpoint_down_after_start_keeps_the_old_keys() {
    let v1 = EchoUpstream::start("model-v1");
    let v2 = EchoUpstream::start("model-v2");
    let idp = Idp::start(Mode::Up);
    let envoy = Envoy::builder(Gateway::new(
        &jwks_uri_config(1, 2000),
        &[v1.cluster(), v2.cluster(), idp.cluster()],
    ))
    .start();
    assert_accepted(
        &envoy.get("/", &[("authorization", &bearer(&token("rs256")))]),
        "alice",
    );

    // An unchanged document does not empty the verdict cache.
    let hits = || counter(&envoy.prometheus(), "canary_gate_oauth2_token_cache_hits");
    let rs = bearer(&token("rs256"));
    assert_accepted(&envoy.get("/", &[("authorization", &rs)]), "alice");
    let before = hits();
    let from = idp.jwks_requests();
    assert!(wait_until(Duration::from_secs(10), || idp.jwks_requests() >= from + 2));
    assert_accepted(&envoy.get("/", &[("authorization", &rs)]), "alice");
    assert_eq!(
        hits(),
        before + 1,
        "the cache was emptied by an unchanged JWKS"
    );

    idp.set(Mode::Down);
    // Refreshes every second. The first failure of the streak is a warning (one per Envoy
    // VM: the main thread's and the worker's); the failures after it are quiet.
    assert!(envoy.wait_for_log(Duration::from_secs(5), |l| l
        .contains("JWKS fetch failed: HTTP 500")));
    let more_fetches = |n: u32| {
        let from = idp.jwks_requests();
        assert!(
            wait_until(Duration::from_secs(15), || idp.jwks_requests() >= from + n),
            "the JWKS was not refetched"
        );
    };
    more_fetches(4); // every VM has failed at least once by now
    let warnings = envoy.log().matches("JWKS fetch failed").count();
    assert!((1..=2).contains(&warnings), "{warnings} warnings");
    more_fetches(4);
    // Old keys still verify, including tokens not seen before (not from the cache).
    for name in ["es256", "eddsa", "ps384"] {
        assert_accepted(
            &envoy.get("/", &[("authorization", &bearer(&token(name)))]),
            "alice",
        );
    }
    let log = envoy.log();
    assert_eq!(
        log.matches("JWKS fetch failed").count(),
        warnings,
        "one warning per failure streak:\n{log}"
    );
    assert!(log.contains("keeping the last good keys"), "{log}");
    assert!(counter(&envoy.prometheus(), "canary_gate_oauth2_jwks_fetch_failed") >= 3);

    // Recovery is logged once.
    idp.set(Mode::Up);
    assert!(envoy.wait_for_log(Duration::from_secs(10), |l| l.contains("failed attempts")));
}

#[test]
fn requests_get_503_when_no_key_set_arrives_in_time() {
    let v1 = EchoUpstream::start("model-v1");
    let v2 = EchoUpstream::start("model-v2");
    let idp = Idp::start(Mode::Down);
    let envoy = Envoy::builder(Gateway::new(
        &jwks_uri_config(300, 1000),
        &[v1.cluster(), v2.cluster(), idp.cluster()],
    ))
    .start();

    // No key set yet: the request waits timeout_ms (1 s), then gets 503, never an accept.
    let started = Instant::now();
    let r = envoy.get("/", &[("authorization", &bearer(&token("rs256")))]);
    let waited = started.elapsed();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"error": "temporarily_unavailable", "reason": "keys_unavailable"})
    );
    assert!(r.upstream().is_none());
    assert!(
        waited >= Duration::from_millis(700),
        "answered after {waited:?}"
    );
    // Requests that need no key are answered at once.
    let r = envoy.get("/", &[("authorization", &bearer(&token("alg_none")))]);
    assert_eq!(r.status, 401);
    assert!(
        counter(
            &envoy.prometheus(),
            "canary_gate_auth_denied{gateway=\"default\",reason=\"keys_unavailable\"}"
        ) >= 1
    );
    assert!(envoy.log().contains("no keys yet; JWTs wait, then get 503"));
}

#[test]
fn parked_requests_resume_when_the_first_key_set_arrives() {
    let v1 = EchoUpstream::start("model-v1");
    let v2 = EchoUpstream::start("model-v2");
    let idp = Idp::start(Mode::Down);
    // timeout_ms 8 s: a request released by the key set is answered long before a request
    // released by its deadline would be (and that one would get 503, not a verdict).
    let timeout = Duration::from_secs(8);
    let envoy = Envoy::builder(Gateway::new(
        &jwks_uri_config(300, timeout.as_millis() as u64),
        &[v1.cluster(), v2.cluster(), idp.cluster()],
    ))
    .component_log_level("wasm:debug")
    .start();
    let port = envoy.port();
    let names = ["rs256", "es256", "eddsa", "expired"];
    let waiting: Vec<_> = names
        .into_iter()
        .map(|name| {
            let t = token(name);
            thread::spawn(move || {
                let r = common::http_request(
                    "GET",
                    &format!("http://127.0.0.1:{port}/"),
                    &[("authorization", &bearer(&t))],
                    None,
                )
                .unwrap();
                (r, Instant::now())
            })
        })
        .collect();
    // Every request reaches the filter and is parked while the provider is down: the filter
    // says so once per request, and none of them has an answer.
    let parked = |l: &str| l.matches("request waits for the JWKS").count();
    assert!(
        envoy.wait_for_log(Duration::from_secs(10), |l| parked(l) == names.len()),
        "the requests were not parked:\n{}",
        envoy.log()
    );
    let answered: Vec<usize> = (0..names.len())
        .filter(|&i| waiting[i].is_finished())
        .collect();
    assert!(
        answered.is_empty(),
        "requests {answered:?} were answered while no key set was there"
    );

    // The provider comes up; the next fetch (retried every second) releases them.
    idp.set(Mode::Up);
    let up = Instant::now();
    let answers: Vec<(Resp, Instant)> = waiting.into_iter().map(|h| h.join().unwrap()).collect();
    for (r, _) in &answers[..3] {
        assert_accepted(r, "alice");
    }
    assert_eq!(answers[3].0.status, 401, "{:?}", answers[3].0);
    assert_eq!(answers[3].0.json()["reason"], "token_expired");
    for (name, (_, at)) in names.iter().zip(&answers) {
        let after = at.duration_since(up);
        assert!(
            after < timeout / 2,
            "{name}: answered {after:?} after the key set became available"
        );
    }
    assert!(
        envoy.log().contains(&format!(
            "resuming {} requests that waited for the JWKS",
            names.len()
        )),
        "{}",
        envoy.log()
    );
}

fn introspection_config() -> Value {
    json!({
        "primary": "model-v1",
        "auth": {
            "mode": "oauth2",
            "introspection": {"cluster": "idp", "path": "/oauth2/introspect", "client_id": "gateway",
                              "client_secret": CLIENT_SECRET, "cache_seconds": 30, "timeout_ms": 2000},
            "required_scopes": ["predict"]
        }
    })
}

#[test]
fn opaque_tokens_are_introspected_and_cached() {
    let v1 = EchoUpstream::start("model-v1");
    let idp = Idp::start(Mode::Up);
    let envoy = Envoy::builder(Gateway::new(
        &introspection_config(),
        &[v1.cluster(), idp.cluster()],
    ))
    .start();

    // Active: accepted, then answered from the cache.
    for _ in 0..3 {
        let r = envoy.get("/", &[("authorization", "Bearer opaque-active")]);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.upstream_header("x-canary-consumer").as_deref(),
            Some("dave")
        );
        assert_eq!(r.upstream_header("authorization"), None);
    }
    assert_eq!(
        idp.introspections("opaque-active"),
        1,
        "active answer not cached"
    );

    // Inactive: 401, the negative answer reused briefly.
    for _ in 0..2 {
        let r = envoy.get("/", &[("authorization", "Bearer opaque-revoked")]);
        assert_eq!(r.status, 401, "{r:?}");
        assert_eq!(r.json()["reason"], "inactive_token");
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\""));
        assert!(r.upstream().is_none());
    }
    assert_eq!(
        idp.introspections("opaque-revoked"),
        1,
        "inactive answer not cached"
    );

    // Active without the scope: 403.
    let r = envoy.get("/", &[("authorization", "Bearer opaque-narrow")]);
    assert_eq!(r.status, 403, "{r:?}");

    // The provider goes down: tokens in the cache still pass, others get 503.
    idp.set(Mode::Down);
    let r = envoy.get("/", &[("authorization", "Bearer opaque-active")]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = envoy.get("/", &[("authorization", "Bearer opaque-later")]);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"error": "temporarily_unavailable", "reason": "introspection_unavailable"})
    );
    assert!(r.upstream().is_none());
    assert!(envoy.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("token introspection failed: HTTP 500")
    }));
    // Back up: the same token passes (the failure was not cached).
    idp.set(Mode::Up);
    let r = envoy.get("/", &[("authorization", "Bearer opaque-later")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.upstream_header("x-canary-consumer").as_deref(),
        Some("frank")
    );

    let seen = idp.seen.lock().unwrap();
    assert!(
        seen.errors.is_empty(),
        "bad introspection requests: {:?}",
        seen.errors
    );
    drop(seen);
    let prom = envoy.prometheus();
    assert!(
        counter(&prom, "canary_gate_oauth2_introspection_requests") >= 5,
        "{prom}"
    );
    assert!(
        counter(&prom, "canary_gate_oauth2_token_cache_hits") >= 3,
        "{prom}"
    );
    let log = envoy.log();
    for secret in [CLIENT_SECRET, "opaque-active", "opaque-later"] {
        assert!(!log.contains(secret), "Envoy's log contains {secret}");
    }
}

#[test]
fn configured_keys_keep_token_and_hs256_secret() {
    let v1 = EchoUpstream::start("model-v1");
    let fixtures: Value = serde_json::from_str(TOKENS).unwrap();
    let cfg = json!({
        "primary": "model-v1",
        "consumer_header": "x-user",
        "auth": {
            "mode": "oauth2",
            "issuer": "https://idp.example.com",
            "audiences": ["models"],
            "jwks": serde_json::from_str::<Value>(JWKS).unwrap(),
            "hs256_secret": fixtures["hs256_secret"],
            "keep_token": true
        }
    });
    let envoy = Envoy::builder(Gateway::new(&cfg, &[v1.cluster()])).start();
    let t = token("es384");
    let r = envoy.get(
        "/",
        &[("authorization", &bearer(&t)), ("x-user", "mallory")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.upstream_header("x-user").as_deref(), Some("alice"));
    assert_eq!(r.upstream_header("authorization"), Some(bearer(&t)));
    let r = envoy.get(
        "/",
        &[("authorization", &bearer(&token("hs256_shared_secret")))],
    );
    assert_eq!(
        r.upstream_header("x-user").as_deref(),
        Some("carol"),
        "{r:?}"
    );
    // HMAC keyed with the RSA public key still fails with a secret configured.
    let r = envoy.get(
        "/",
        &[("authorization", &bearer(&token("hs256_rsa_public_pem")))],
    );
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["reason"], "invalid_signature");
}
