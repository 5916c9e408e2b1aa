//! RFC 7662 introspection answers: `finish_introspection` with an arbitrary
//! status and body (raw bytes, or a generated JSON object with the members
//! the filter reads), for an opaque token, at an arbitrary time.
//!
//! Checks: no panic; a token is accepted only from a 200 answer whose body
//! is a JSON object with `"active": true`, with a usable consumer; an
//! unusable answer is never cached; an accepted verdict comes back from the
//! cache unchanged while it lasts.
#![no_main]

use arbitrary::{Result, Unstructured};
use canary_gate::auth::oauth2::{parse_response, Answer, OAuth2State, Step};
use canary_gate::auth::{Authenticator, TokenError};
use canary_gate::config::{parse, Plan};
use canary_gate_fuzz::{json, number, object, or_noise, string};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const NOW: u64 = 1_700_000_000;
const WORDS: &[&str] = &[
    "active",
    "exp",
    "nbf",
    "iat",
    "iss",
    "aud",
    "sub",
    "client_id",
    "scope",
    "scp",
    "username",
    "predict",
    "models",
    "https://idp.example.com",
    "alice",
    "true",
];

thread_local! {
    static PLAN: Plan = parse(br#"{"primary":"v1","auth":{"mode":"oauth2",
        "issuer":"https://idp.example.com","audiences":["models"],"required_scopes":["predict"],
        "introspection":{"cluster":"idp","path":"/i","client_id":"g","client_secret":"s"}}}"#)
        .unwrap_or_else(|e| panic!("{e}"));
}

fn body(u: &mut Unstructured) -> Result<Vec<u8>> {
    if u.ratio(1, 4)? {
        return u.arbitrary();
    }
    let active = Value::Bool(u.ratio(4, 5)?);
    let mut answer = json!({ "active": or_noise(u, active, WORDS)? });
    for (claim, value) in [
        ("exp", number(u)?),
        ("nbf", number(u)?),
        (
            "iss",
            Value::String(string(u, &["https://idp.example.com", "x"])?),
        ),
        (
            "aud",
            if u.arbitrary()? {
                json!(["models"])
            } else {
                json(u, 1, WORDS)?
            },
        ),
        (
            "sub",
            Value::String(string(u, &["alice", "", " a", "\u{0}"])?),
        ),
        (
            "scope",
            Value::String(string(u, &["predict", "read", "predict read"])?),
        ),
        ("scp", json(u, 1, WORDS)?),
    ] {
        if u.ratio(1, 2)? {
            answer[claim] = or_noise(u, value, WORDS)?;
        }
    }
    if u.ratio(1, 4)? {
        for (k, v) in object(u, 3, WORDS)? {
            answer[k] = v;
        }
    }
    Ok(answer.to_string().into_bytes())
}

fn run(u: &mut Unstructured, plan: &Plan) -> Result<()> {
    let Authenticator::OAuth2(o) = &plan.gateways[0].auth else {
        panic!("not an oauth2 plan");
    };
    let status = match u.int_in_range(0..=7)? {
        0 => None,
        1 => Some(u.arbitrary()?),
        _ => Some(200),
    };
    let body = body(u)?;
    let now = NOW + u64::from(u.int_in_range(0..=7200u32)?);
    let mut state = OAuth2State::new(4, 4, 7);
    let value = "Bearer opaque-token-1";
    let Step::Introspect { digest, .. } = o.authenticate(Some(value), &mut state, now) else {
        panic!("an opaque token is introspected");
    };
    let usable = parse_response(status, Some(&body));
    let done = o.finish_introspection(digest, Some(value), status, Some(&body), &mut state, now);
    match &done.result {
        Ok(consumer) => {
            assert_eq!(status, Some(200));
            assert!(matches!(usable, Ok(Answer::Active(_))));
            assert!(!consumer.is_empty() && consumer.len() <= 256);
            assert!(consumer.chars().all(|c| c.is_ascii_graphic() || c == ' '));
        }
        Err(TokenError::IntrospectionUnavailable) => assert!(usable.is_err()),
        Err(_) => assert!(usable.is_ok()),
    }
    assert_eq!(done.problem.is_some(), usable.is_err());
    match o.authenticate(Some(value), &mut state, now) {
        // Unusable answers are not cached: ask again.
        Step::Introspect { .. } => {}
        Step::Accept { consumer, cached } => {
            assert!(cached);
            assert_eq!(Ok(consumer), done.result);
        }
        Step::Reject(e) => assert_eq!(Err(e), done.result.clone().map(|_| String::new())),
        Step::NeedKeys => panic!("no keys are fetched"),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    PLAN.with(|plan| {
        let _ = run(&mut Unstructured::new(data), plan);
    });
});
