//! JWKS documents: `parse_remote_jwks` (a fetched document: unusable keys are
//! skipped) on raw bytes or on generated documents made of mutated fixture
//! keys, and the same keys configured inline (`auth.jwks`: every key must be
//! usable) through the configuration parser.
//!
//! Checks: no panic; a fetched document is accepted only with at least one
//! usable key and never beyond 256 KiB; a key set the configuration accepts
//! is also accepted as a fetched document.
#![no_main]

use arbitrary::{Result, Unstructured};
use canary_gate::auth::oauth2::{parse_remote_jwks, MAX_JWKS_BYTES};
use canary_gate::config::parse;
use canary_gate_fuzz::{json, or_noise, string};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const JWKS: &str = include_str!("../../tests/fixtures/oauth2/jwks.json");

const WORDS: &[&str] = &[
    "kty", "crv", "alg", "use", "key_ops", "kid", "n", "e", "x", "y", "d", "k", "RSA", "EC", "OKP",
    "oct", "P-256", "P-384", "P-521", "Ed25519", "X25519", "sig", "enc", "verify", "RS256",
    "PS256", "ES256", "ES384", "EdDSA", "HS256", "AQAB",
];

thread_local! {
    static KEYS: Vec<Map<String, Value>> = serde_json::from_str::<Value>(JWKS)
        .ok()
        .and_then(|v| v["keys"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| k.as_object().cloned())
        .collect();
}

fn mutate(u: &mut Unstructured, key: &mut Map<String, Value>) -> Result<()> {
    for _ in 0..u.int_in_range(0..=3)? {
        let member = string(u, WORDS)?;
        match u.int_in_range(0..=4)? {
            0 => {
                key.remove(&member);
            }
            1 => {
                key.insert(member, Value::String(string(u, WORDS)?));
            }
            2 => {
                // Cut or extend a base64url member (key material of the wrong size).
                if let Some(Value::String(s)) = key.get_mut(&member) {
                    let mut at = usize::from(u.arbitrary::<u16>()?) % (s.len() + 1);
                    while !s.is_char_boundary(at) {
                        at -= 1;
                    }
                    s.truncate(at);
                    s.push_str(&string(u, &["A", "AQAB", "_-", "=="])?);
                }
            }
            3 => {
                key.insert(member, json(u, 2, WORDS)?);
            }
            _ => {
                key.insert(
                    "key_ops".into(),
                    json!([string(u, &["verify", "sign", "encrypt"])?]),
                );
            }
        }
    }
    Ok(())
}

fn document(u: &mut Unstructured, fixtures: &[Map<String, Value>]) -> Result<Value> {
    let n = u.int_in_range(0..=4)?;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let mut key = match fixtures.get(u.choose_index(fixtures.len().max(1))?) {
            Some(k) if u.ratio(7, 8)? => k.clone(),
            _ => canary_gate_fuzz::object(u, 1, WORDS)?,
        };
        mutate(u, &mut key)?;
        keys.push(Value::Object(key));
    }
    let doc = json!({ "keys": keys });
    or_noise(u, doc, WORDS)
}

fn check(bytes: &[u8]) {
    let remote = parse_remote_jwks(bytes);
    if let Ok(set) = &remote {
        assert!(!set.is_empty());
        assert!(bytes.len() <= MAX_JWKS_BYTES);
    }
    // The document goes into the configuration as it is (not through a `Value`,
    // which would drop a member given twice: both parsers refuse those).
    if serde_json::from_slice::<Value>(bytes).is_err() {
        return;
    }
    let Ok(doc) = std::str::from_utf8(bytes) else {
        return;
    };
    let config = format!(
        r#"{{"primary": "v1", "auth": {{"mode": "oauth2",
            "issuer": "https://idp.example.com", "audiences": ["models"], "jwks": {doc}}}}}"#
    );
    if parse(config.as_bytes()).is_ok() && bytes.len() <= MAX_JWKS_BYTES {
        // Strict (configured) acceptance implies lenient (fetched) acceptance.
        assert!(remote.is_ok(), "configured but not fetched: {remote:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check(rest);
    } else {
        KEYS.with(|keys| {
            if let Ok(doc) = document(&mut Unstructured::new(rest), keys) {
                check(doc.to_string().as_bytes());
            }
        });
    }
});
