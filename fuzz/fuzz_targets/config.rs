//! The plugin configuration parser and validator: `config::parse_with_env`
//! on raw bytes (first byte even) or on a structured document built from
//! the input (first byte odd), with an environment where variables starting
//! with `H` hold an htpasswd file, `S` a secret, `E` nothing, and the rest
//! are unset.
//!
//! Checks: no panic; only a whole JSON document is accepted; an accepted plan
//! has consistent bucket edges; neither an error nor the plan's `Debug`
//! contains a secret that came from the environment.
#![no_main]

use arbitrary::{Result, Unstructured};
use canary_gate::config::parse_with_env;
use canary_gate_fuzz::{json, number, object, or_noise, string};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const HTPASSWD: &str = "# users\nalice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n\nbob:$2y$04$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW\n";
/// base64url of 32 bytes: a usable hs256_secret and client_secret.
const SECRET: &str = "c2VjcmV0LWZyb20tdGhlLWVudmlyb25tZW50LTEyMzQ1Ng";

fn env(name: &str) -> Option<String> {
    match name.as_bytes().first() {
        Some(b'H') => Some(HTPASSWD.to_string()),
        Some(b'S') => Some(SECRET.to_string()),
        Some(b'E') => Some(String::new()),
        _ => None,
    }
}

const WORDS: &[&str] = &[
    "primary",
    "canaries",
    "name",
    "percent",
    "split",
    "by",
    "random",
    "header",
    "query",
    "cookie",
    "consumer",
    "when_missing",
    "hash_seed",
    "select_header",
    "consumer_header",
    "route_header",
    "response_header",
    "auth",
    "mode",
    "none",
    "basic",
    "access_key",
    "oauth2",
    "realm",
    "users",
    "keys",
    "sha256",
    "env",
    "HTPASSWD",
    "SECRET",
    "EMPTY",
    "UNSET",
    "v1",
    "v2",
    "x-user",
    "x-api-key",
    "authorization",
    "host",
    "",
];

fn header_name(u: &mut Unstructured) -> Result<Value> {
    let h = string(
        u,
        &[
            "x-user",
            "x-canary-upstream",
            "x-canary-consumer",
            "X-Select",
            "authorization",
            "host",
            "a b",
            "",
        ],
    )?;
    or_noise(u, Value::String(h), WORDS)
}

fn secret(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Value::String(string(u, &[SECRET, "", "short"])?),
        1 => json!({"env": string(u, &["SECRET", "S", "HTPASSWD", "EMPTY", "UNSET", "", "A=B"])?}),
        2 => Value::Object(object(u, 1, &["env", "SECRET", "file"])?),
        _ => json(u, 1, WORDS)?,
    })
}

fn jwk(u: &mut Unstructured) -> Result<Value> {
    let mut k = Map::new();
    for (member, values) in [
        ("kty", &["RSA", "EC", "OKP", "oct", "x"][..]),
        ("crv", &["P-256", "P-384", "Ed25519", "X25519"][..]),
        ("alg", &["RS256", "ES256", "EdDSA", "HS256", "none"][..]),
        ("use", &["sig", "enc"][..]),
        ("kid", &["k1", ""][..]),
        ("n", &["AQAB", "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"][..]),
        ("e", &["AQAB", "Aw"][..]),
        ("x", &["11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"][..]),
        ("y", &["x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"][..]),
        ("d", &["AQAB"][..]),
    ] {
        if u.ratio(1, 2)? {
            let value = Value::String(string(u, values)?);
            k.insert(member.into(), or_noise(u, value, WORDS)?);
        }
    }
    Ok(Value::Object(k))
}

fn endpoint(u: &mut Unstructured, introspection: bool) -> Result<Value> {
    let mut e =
        json!({"cluster": string(u, &["idp", "", "a b"])?, "path": string(u, &["/i", "i", "/ä"])?});
    for (member, value) in [
        (
            "authority",
            Value::String(string(u, &["idp.example.com", ""])?),
        ),
        ("timeout_ms", number(u)?),
        ("refresh_seconds", number(u)?),
        ("cache_seconds", number(u)?),
    ] {
        if u.ratio(1, 3)? {
            e[member] = value;
        }
    }
    if introspection {
        e["client_id"] = Value::String(string(u, &["gateway", ""])?);
        e["client_secret"] = secret(u)?;
    }
    Ok(e)
}

fn auth(u: &mut Unstructured) -> Result<Value> {
    let mode = *u.choose(&["none", "basic", "access_key", "oauth2", "ldap"])?;
    let mut a = json!({"mode": mode});
    if u.ratio(1, 3)? {
        a["realm"] = Value::String(string(u, &["models", "", "a\"b"])?);
    }
    match mode {
        "basic" => {
            let n = u.int_in_range(0..=3)?;
            let mut users = Vec::new();
            for _ in 0..n {
                users.push(match u.int_in_range(0..=3)? {
                    0 => json!("carol:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="),
                    1 => json!({"env": string(u, &["HTPASSWD", "H2", "EMPTY", "UNSET"])?}),
                    2 => json!(format!(
                        "{}:{}",
                        string(u, &["alice", "dave", ""])?,
                        string(
                            u,
                            &[
                                "$2y$04$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
                                "$2y$13$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
                                "{SHA}",
                                "$apr1$x",
                                "plain"
                            ]
                        )?
                    )),
                    _ => json(u, 1, WORDS)?,
                });
            }
            a["users"] = Value::Array(users);
        }
        "access_key" => {
            a["keys"] = json!([{"consumer": string(u, &["svc", "", "a b"])?,
                                "sha256": string(u, &["2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", "00"])?}]);
            if u.ratio(1, 2)? {
                a["header"] = header_name(u)?;
            }
            if u.ratio(1, 2)? {
                a["query"] = Value::String(string(u, &["api_key", ""])?);
            }
        }
        "oauth2" => {
            if u.ratio(2, 3)? {
                a["issuer"] = Value::String(string(u, &["https://idp.example.com", ""])?);
            }
            if u.ratio(2, 3)? {
                a["audiences"] = json!([string(u, &["models", ""])?]);
            }
            if u.ratio(1, 2)? {
                let n = u.int_in_range(0..=3)?;
                let mut keys = Vec::new();
                for _ in 0..n {
                    keys.push(jwk(u)?);
                }
                a["jwks"] = json!({ "keys": keys });
            }
            if u.ratio(1, 3)? {
                a["jwks_uri"] = endpoint(u, false)?;
            }
            if u.ratio(1, 3)? {
                a["introspection"] = endpoint(u, true)?;
            }
            if u.ratio(1, 3)? {
                a["hs256_secret"] = secret(u)?;
            }
            for (member, value) in [
                (
                    "required_scopes",
                    json!([string(u, &["predict", "a b", ""])?]),
                ),
                ("clock_skew_seconds", number(u)?),
                (
                    "consumer_claim",
                    Value::String(string(u, &["sub", "client_id", "exp", ""])?),
                ),
                ("keep_token", Value::Bool(u.arbitrary()?)),
            ] {
                if u.ratio(1, 4)? {
                    a[member] = value;
                }
            }
        }
        _ => {}
    }
    or_noise(u, a, WORDS)
}

fn document(u: &mut Unstructured) -> Result<Value> {
    let mut doc = json!({"primary": string(u, &["v1", "", "model v1"])?});
    let n = u.int_in_range(0..=4)?;
    let mut canaries = Vec::new();
    for _ in 0..n {
        canaries.push(json!({"name": string(u, &["v2", "v3", "v1"])?, "percent": number(u)?}));
    }
    doc["canaries"] = or_noise(u, Value::Array(canaries), WORDS)?;
    if u.ratio(2, 3)? {
        let mut split =
            json!({"by": string(u, &["random", "header", "query", "cookie", "consumer"])?});
        if u.ratio(2, 3)? {
            split["name"] = header_name(u)?;
        }
        if u.ratio(1, 3)? {
            split["when_missing"] = Value::String(string(u, &["random", "primary"])?);
        }
        if u.ratio(1, 3)? {
            split["hash_seed"] = number(u)?;
        }
        doc["split"] = split;
    }
    for member in [
        "select_header",
        "consumer_header",
        "route_header",
        "response_header",
    ] {
        if u.ratio(1, 4)? {
            doc[member] = header_name(u)?;
        }
    }
    if u.ratio(3, 4)? {
        doc["auth"] = auth(u)?;
    }
    if u.ratio(1, 16)? {
        doc[string(u, WORDS)?] = json(u, 2, WORDS)?;
    }
    Ok(doc)
}

fn check(bytes: &[u8]) {
    // The SHA-1 digest of the environment's htpasswd users (and of the
    // generated inline user): it may be echoed only where the input wrote it
    // outside a hash, e.g. as an upstream name.
    let digest_in_input = bytes.windows(6).any(|w| w == b"5en6G6");
    // The same for the environment's secret (libFuzzer learns it from the
    // comparisons below and writes it into field names, which are echoed).
    let secret_in_input = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
    match parse_with_env(bytes, &env) {
        Ok(plan) => {
            // Only a whole JSON document is a configuration (not its first part).
            assert!(serde_json::from_slice::<Value>(bytes).is_ok());
            let edges = plan.gateways[0].split.edges();
            assert!(edges.windows(2).all(|w| w[0] <= w[1]), "{edges:?}");
            assert!(edges.iter().all(|&e| e <= 10_000), "{edges:?}");
            assert_eq!(plan.gateways[0].upstreams.len(), edges.len() + 1);
            let dbg = format!("{plan:?}");
            assert!(secret_in_input || !dbg.contains(SECRET), "{dbg}");
            assert!(digest_in_input || !dbg.contains("5en6G6"), "{dbg}");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(secret_in_input || !text.contains(SECRET), "{text}");
            assert!(digest_in_input || !text.contains("5en6G6"), "{text}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check(rest);
    } else if let Ok(doc) = document(&mut Unstructured::new(rest)) {
        check(doc.to_string().as_bytes());
    }
});
