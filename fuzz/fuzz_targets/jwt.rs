//! JWT parsing and verification against a fixed key set: the fixture JWKS
//! (RSA, P-256, P-384, Ed25519) and the fixture HS256 secret, through
//! `OAuth2Auth::authenticate` as the filter calls it.
//!
//! Tokens are raw text, fixture tokens cut or with one segment replaced
//! (real signatures over changed content), or built from a header and
//! payload generated as JSON (wrong and odd `alg`s, `kid`s, nested JSON,
//! huge segments), signed with the HS256 secret or not signed at all.
//!
//! Checks: no panic; a token is only accepted when its signature was made
//! with a configured key (a fixture token as minted, or our own HS256
//! signature), for the configured issuer, with an `exp`.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use canary_gate::auth::oauth2::{OAuth2State, Step};
use canary_gate::auth::Authenticator;
use canary_gate::config::{parse, Plan};
use canary_gate_fuzz::{b64url, json, nested, number, object, or_noise, string};
use jwt_simple::prelude::{HS256Key, MACLike};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const JWKS: &str = include_str!("../../tests/fixtures/oauth2/jwks.json");
const TOKENS: &str = include_str!("../../tests/fixtures/oauth2/tokens.json");
/// Inside every fixture token's validity.
const NOW: u64 = 1_700_000_100;

struct Fixtures {
    plan: Plan,
    tokens: Vec<String>,
    hs256: HS256Key,
}

thread_local! {
    static FIXTURES: Fixtures = {
        let t: Value = serde_json::from_str(TOKENS).unwrap_or_default();
        let secret = t["hs256_secret"].as_str().unwrap_or_default().to_string();
        let config = json!({"primary": "v1", "auth": {
            "mode": "oauth2", "issuer": "https://idp.example.com", "audiences": ["models"],
            "jwks": serde_json::from_str::<Value>(JWKS).unwrap_or_default(),
            "hs256_secret": secret, "required_scopes": ["predict"],
        }});
        let plan = parse(config.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut tokens: Vec<String> = t["tokens"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        tokens.sort();
        let key = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &secret)
            .unwrap_or_default();
        Fixtures { plan, tokens, hs256: HS256Key::from_bytes(&key) }
    };
}

const WORDS: &[&str] = &[
    "alg",
    "kid",
    "typ",
    "crit",
    "cty",
    "jku",
    "x5c",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "ES256",
    "ES384",
    "EdDSA",
    "Ed25519",
    "HS256",
    "HS512",
    "none",
    "None",
    "rsa-1",
    "ec-1",
    "ec384-1",
    "ed-1",
    "JWT",
    "at+jwt",
    "iss",
    "aud",
    "exp",
    "nbf",
    "iat",
    "sub",
    "scope",
    "scp",
    "predict",
    "models",
    "https://idp.example.com",
    "alice",
];

#[derive(Debug, Arbitrary)]
enum Signature {
    None,
    Hs256,
    Random(Vec<u8>),
}

#[derive(Debug)]
enum Token {
    Raw(String),
    /// A fixture token cut at `at` bytes.
    Cut {
        index: usize,
        at: usize,
    },
    /// A fixture token with segment `segment` replaced.
    Spliced {
        index: usize,
        segment: usize,
        with: String,
    },
    Built {
        header: String,
        payload: String,
        signature: Signature,
    },
}

fn header(u: &mut Unstructured) -> Result<String> {
    let mut h =
        json!({"alg": string(u, &["HS256", "RS256", "ES256", "EdDSA", "none", "HS512", ""])?});
    if u.ratio(1, 2)? {
        h["kid"] = Value::String(string(u, WORDS)?);
    }
    if u.ratio(1, 4)? {
        h["typ"] = Value::String(string(u, &["JWT", "at+jwt", "jose", ""])?);
    }
    if u.ratio(1, 8)? {
        h["crit"] = json(u, 1, WORDS)?;
    }
    Ok(or_noise(u, h, WORDS)?.to_string())
}

fn payload(u: &mut Unstructured) -> Result<String> {
    let mut p = json!({});
    for (claim, value) in [
        (
            "iss",
            Value::String(string(u, &["https://idp.example.com", "https://evil"])?),
        ),
        (
            "aud",
            if u.arbitrary()? {
                json!(["models", string(u, WORDS)?])
            } else {
                Value::String(string(u, &["models", "other"])?)
            },
        ),
        ("exp", json!(NOW + 3600)),
        ("nbf", number(u)?),
        ("iat", number(u)?),
        (
            "sub",
            Value::String(string(u, &["alice", "", " x", "a\u{7f}"])?),
        ),
        (
            "scope",
            Value::String(string(u, &["predict", "read predict", ""])?),
        ),
        ("scp", json(u, 2, WORDS)?),
    ] {
        if u.ratio(3, 4)? {
            p[claim] = or_noise(u, value, WORDS)?;
        }
    }
    if u.ratio(1, 4)? {
        for (k, v) in object(u, 3, WORDS)? {
            p[k] = v;
        }
    }
    let mut text = p.to_string();
    match u.int_in_range(0..=9)? {
        // Nested beyond serde_json's recursion limit.
        0 => {
            let depth = u.int_in_range(100..=200)?;
            text = format!("{{\"sub\":\"alice\",\"x\":{}}}", nested(depth, "1"));
        }
        // A huge claim: past the 32 KiB token limit or just under it.
        1 => {
            let n = u.int_in_range(20_000..=30_000)?;
            p["pad"] = Value::String("x".repeat(n));
            text = p.to_string();
        }
        _ => {}
    }
    Ok(text)
}

fn token(u: &mut Unstructured, fixtures: usize) -> Result<Token> {
    Ok(match u.int_in_range(0..=5)? {
        0 => Token::Raw(u.arbitrary()?),
        1 => Token::Cut {
            index: u.choose_index(fixtures)?,
            at: u.arbitrary()?,
        },
        2 => Token::Spliced {
            index: u.choose_index(fixtures)?,
            segment: u.int_in_range(0..=3)?,
            with: if u.arbitrary()? {
                b64url(header(u)?.as_bytes())
            } else {
                b64url(payload(u)?.as_bytes())
            },
        },
        _ => Token::Built {
            header: header(u)?,
            payload: payload(u)?,
            signature: u.arbitrary()?,
        },
    })
}

fn text(token: &Token, f: &Fixtures) -> (String, bool) {
    // (token, whether its signature was made with a configured key)
    match token {
        Token::Raw(s) => (s.clone(), false),
        Token::Cut { index, at } => {
            let t = &f.tokens[*index];
            let at = at % (t.len() + 1);
            (t.get(..at).unwrap_or(t).to_string(), at == t.len())
        }
        Token::Spliced {
            index,
            segment,
            with,
        } => {
            let t = &f.tokens[*index];
            let mut parts: Vec<&str> = t.split('.').collect();
            if *segment < parts.len() {
                parts[*segment] = with;
            } else {
                parts.push(with);
            }
            let joined = parts.join(".");
            let signed = joined == *t;
            (joined, signed)
        }
        Token::Built {
            header,
            payload,
            signature,
        } => {
            let input = format!(
                "{}.{}",
                b64url(header.as_bytes()),
                b64url(payload.as_bytes())
            );
            match signature {
                Signature::None => (format!("{input}."), false),
                Signature::Hs256 => {
                    let tag = f.hs256.authentication_tag(input.as_bytes());
                    (format!("{input}.{}", b64url(&tag)), true)
                }
                Signature::Random(bytes) => (format!("{input}.{}", b64url(bytes)), false),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    FIXTURES.with(|f| {
        let Ok(t) = token(&mut Unstructured::new(data), f.tokens.len()) else {
            return;
        };
        let (token, signed) = text(&t, f);
        let Authenticator::OAuth2(o) = &f.plan.gateways[0].auth else {
            panic!("not an oauth2 plan");
        };
        let mut state = OAuth2State::new(4, 4, 7);
        let value = format!("Bearer {token}");
        match o.authenticate(Some(&value), &mut state, NOW) {
            Step::Accept { consumer, .. } => {
                let is_fixture = f.tokens.iter().any(|x| *x == token);
                assert!(
                    signed || is_fixture,
                    "accepted a token no key signed: {t:?}"
                );
                assert!(!consumer.is_empty() && consumer.is_ascii());
                if let Token::Built { payload, .. } = &t {
                    let claims: Value = serde_json::from_str(payload).unwrap_or_default();
                    assert_eq!(claims["iss"], "https://idp.example.com", "{payload}");
                    assert!(claims.get("exp").is_some(), "{payload}");
                }
                // Asked again (from the cache unless `exp` is already behind, within the
                // clock skew): the same consumer.
                match o.authenticate(Some(&value), &mut state, NOW) {
                    Step::Accept {
                        consumer: again, ..
                    } => assert_eq!(again, consumer),
                    other => panic!("accepted once, then {other:?}"),
                }
            }
            Step::Reject(_) => {}
            other => panic!("local keys only: {other:?}"),
        }
    });
});
