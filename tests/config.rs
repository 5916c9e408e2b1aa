//! Invalid plugin configurations and the exact message an operator reads.
//!
//! The tables (coraza-proxy-wasm `config_test.go` style) pair a configuration with the exact
//! text of its error, checked natively through `canary_gate::config::parse`: every validation
//! message of `src/config.rs` and `src/auth/**` that a configuration can reach. A few rows then
//! go through a real Envoy, which must refuse the plugin after one critical line ending in
//! `canary-gate: invalid configuration: <that text>`, without repeating any secret; and the
//! configurations that never reach `parse` (empty, absent) are refused by the filter itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use base64::Engine;
use common::{EchoUpstream, Envoy, Gateway, StartFailure};
use serde_json::{json, Value};

const JWKS: &str = include_str!("fixtures/oauth2/jwks.json");
/// The prefix of the filter's critical line.
const PREFIX: &str = "canary-gate: invalid configuration: ";
/// What the filter says when there is no configuration to parse.
const EMPTY: &str =
    "the plugin configuration is empty; it must be a JSON object with at least \"primary\"";

/// The error `parse` gives, or a panic naming the configuration it accepted.
fn error_of(config: &[u8]) -> String {
    match canary_gate::config::parse(config) {
        Ok(_) => panic!(
            "accepted an invalid configuration: {}",
            String::from_utf8_lossy(config)
        ),
        Err(e) => e.to_string(),
    }
}

/// Checks every row and reports all mismatches at once.
fn check_table(rows: &[(Value, &str)]) {
    let mut wrong = Vec::new();
    for (config, want) in rows {
        let got = error_of(config.to_string().as_bytes());
        if got != *want {
            wrong.push(format!("config {config}\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows differ:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `{"primary": "v1", <fields>}`.
fn cfg(fields: Value) -> Value {
    let mut c = json!({"primary": "v1"});
    for (k, v) in fields.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A configuration with this `auth` object.
fn auth(a: Value) -> Value {
    cfg(json!({"auth": a}))
}

fn basic(users: Value) -> Value {
    auth(json!({"mode": "basic", "users": users}))
}

const ALICE_SHA256: &str = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90";

fn access_key(extra: Value) -> Value {
    let mut a =
        json!({"mode": "access_key", "keys": [{"consumer": "alice", "sha256": ALICE_SHA256}]});
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    auth(a)
}

/// An oauth2 configuration that verifies JWTs with a local key set, plus `extra` fields.
fn oauth2(extra: Value) -> Value {
    let mut a = json!({"mode": "oauth2", "issuer": "https://idp", "audiences": ["m"],
                       "jwks": serde_json::from_str::<Value>(JWKS).unwrap()});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            a.as_object_mut().unwrap().remove(k);
        } else {
            a[k] = v.clone();
        }
    }
    auth(a)
}

/// The fixture key of this `kty`/`crv`, with `changes` applied (`null` removes a member).
fn fixture_key(kid: &str, changes: Value) -> Value {
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    let mut key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("no fixture key {kid}"))
        .clone();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            key.as_object_mut().unwrap().remove(k);
        } else {
            key[k] = v.clone();
        }
    }
    key
}

/// An oauth2 configuration whose key set is this one key.
fn jwks_with(key: Value) -> Value {
    oauth2(json!({"jwks": {"keys": [key]}}))
}

fn jwks_uri(extra: Value) -> Value {
    let mut uri = json!({"cluster": "idp", "path": "/jwks.json"});
    for (k, v) in extra.as_object().unwrap() {
        uri[k] = v.clone();
    }
    oauth2(json!({"jwks": null, "jwks_uri": uri}))
}

fn introspection(extra: Value) -> Value {
    let mut i = json!({"cluster": "idp", "path": "/introspect", "client_id": "gateway",
                       "client_secret": "s3cr3t-client-value"});
    for (k, v) in extra.as_object().unwrap() {
        i[k] = v.clone();
    }
    auth(json!({"mode": "oauth2", "introspection": i}))
}

#[test]
fn the_json_shape_is_checked_by_serde_with_field_paths() {
    check_table(&[
        (json!({"canaries": []}), "missing field `primary`"),
        (
            cfg(json!({"canarys": []})),
            "canarys: unknown field `canarys`, expected one of `route_header`, `consumer_header`, \
             `response_header`, `unmatched`, `gateways`, `primary`, `canaries`, `split`, \
             `select_header`, `auth`",
        ),
        (
            cfg(json!({"canaries": [{"name": "v2", "percent": "10"}]})),
            "canaries[0].percent: invalid type: string \"10\", expected f64",
        ),
        (
            cfg(json!({"canaries": [{"name": "v2"}]})),
            "canaries[0]: missing field `percent`",
        ),
        (
            cfg(json!({"split": {"by": "user"}})),
            "split.by: unknown variant `user`, expected one of `random`, `header`, `query`, \
             `cookie`, `consumer`",
        ),
        (
            cfg(json!({"split": {"by": "header", "name": "x-user", "when_missing": "drop"}})),
            "split.when_missing: unknown variant `drop`, expected `random` or `primary`",
        ),
        (
            cfg(
                json!({"split": {"by": "header", "name": "x-user", "hash_seed": 4_294_967_296_u64}}),
            ),
            "split.hash_seed: invalid value: integer `4294967296`, expected u32",
        ),
        (
            auth(json!({"mode": "ldap"})),
            "auth.mode: unknown variant `ldap`, expected one of `none`, `basic`, `access_key`, `oauth2`",
        ),
        (
            auth(json!({"mode": "basic", "users": ["alice:{SHA}x"], "realms": "m"})),
            // serde's internally tagged enums lose the last path segment (oauth2 is read again
            // from the bytes to keep it; basic and access_key are not).
            "auth: unknown field `realms`, expected `realm` or `users`",
        ),
        (
            introspection(json!({"timeout_msec": 5})),
            "auth.introspection.timeout_msec: unknown field `timeout_msec`, expected one of \
             `cluster`, `path`, `authority`, `client_id`, `client_secret`, `cache_seconds`, \
             `timeout_ms`",
        ),
        (
            oauth2(json!({"hs256_secret": 5})),
            "auth.hs256_secret: must be a string or {\"env\": \"NAME\"}",
        ),
    ]);
    // Not a JSON object at all (the filter passes any non-empty bytes to `parse`).
    assert_eq!(error_of(b"not json"), "expected ident");
    // A truncated document: serde_path_to_error knows no field there, and says `?`.
    assert_eq!(
        error_of(b"{\"primary\": \"v1\""),
        "?: EOF while parsing an object"
    );
}

/// A member given twice is ambiguous (JSON leaves it to the reader): refused
/// everywhere, also inside a gateway and inside a configured key, never "last
/// one wins".
#[test]
fn a_member_given_twice_is_refused_at_every_level() {
    let cases: [(&str, &str); 3] = [
        (
            r#"{"primary": "v1", "primary": "v2"}"#,
            "duplicate field `primary`",
        ),
        (
            r#"{"gateways": [{"name": "a", "primary": "v1", "primary": "v2"}]}"#,
            "gateways[0]: duplicate field `primary`",
        ),
        (
            r#"{"primary": "v1", "auth": {"mode": "oauth2", "issuer": "https://idp.example.com",
               "audiences": ["models"],
               "jwks": {"keys": [{"kty": "OKP", "kty": "RSA", "crv": "Ed25519",
                 "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}}"#,
            "auth.jwks.keys[0]: duplicate field `kty`",
        ),
    ];
    for (config, want) in cases {
        assert_eq!(error_of(config.as_bytes()), want, "config {config}");
    }
}

#[test]
fn upstreams_and_percents_are_validated_naming_the_field() {
    check_table(&[
        (json!({"primary": ""}), "primary: must not be empty"),
        (
            json!({"primary": "model v1"}),
            "primary: \"model v1\" is not a valid header value (visible ASCII only, no spaces)",
        ),
        (
            cfg(json!({"canaries": [{"name": "", "percent": 1}]})),
            "canaries[0].name: must not be empty",
        ),
        (
            cfg(json!({"canaries": [{"name": "v\u{e9}", "percent": 1}]})),
            "canaries[0].name: \"v\u{e9}\" is not a valid header value (visible ASCII only, no spaces)",
        ),
        (
            cfg(json!({"canaries": [{"name": "v1", "percent": 1}]})),
            "canaries[0].name: \"v1\" is already the primary",
        ),
        (
            cfg(json!({"canaries": [{"name": "v2", "percent": 1}, {"name": "v2", "percent": 2}]})),
            "canaries[1].name: \"v2\" is already used by canaries[0]",
        ),
        (
            cfg(json!({"canaries": [{"name": "v2", "percent": 101}]})),
            "canaries[0].percent: 101 is not between 0 and 100",
        ),
        (
            cfg(json!({"canaries": [{"name": "v2", "percent": -0.5}]})),
            "canaries[0].percent: -0.5 is not between 0 and 100",
        ),
        (
            cfg(json!({"canaries": [{"name": "v2", "percent": 1.005}]})),
            "canaries[0].percent: 1.005 has more than two decimals",
        ),
        (
            cfg(json!({"canaries": [{"name": "v2", "percent": 60}, {"name": "v3", "percent": 60}]})),
            "canaries[1].percent: total 120 exceeds 100",
        ),
        (
            cfg(json!({"canaries": [{"name": "v2", "percent": 99.5}, {"name": "v3", "percent": 1}]})),
            "canaries[1].percent: total 100.5 exceeds 100",
        ),
        (
            cfg(json!({"canaries": [{"name": "v2", "percent": 99.99}, {"name": "v3", "percent": 0.02}]})),
            "canaries[1].percent: total 100.01 exceeds 100",
        ),
    ]);
}

#[test]
fn header_names_and_roles_are_validated_naming_the_field() {
    check_table(&[
        (
            cfg(json!({"route_header": ""})),
            "route_header: must not be empty",
        ),
        (
            cfg(json!({"route_header": "x canary"})),
            "route_header: \"x canary\" is not a valid header name",
        ),
        (
            cfg(json!({"consumer_header": "x-user\n"})),
            "consumer_header: \"x-user\\n\" is not a valid header name",
        ),
        (
            cfg(json!({"select_header": "Host"})),
            "select_header: \"host\" is reserved by HTTP and cannot be used",
        ),
        (
            cfg(json!({"response_header": "Content-Length"})),
            "response_header: \"content-length\" is reserved by HTTP and cannot be used",
        ),
        (
            cfg(json!({"route_header": "x-a", "select_header": "X-A"})),
            "select_header: header \"x-a\" is already used by route_header",
        ),
        (
            cfg(json!({"consumer_header": "x-canary-upstream"})),
            "consumer_header: header \"x-canary-upstream\" is already used by route_header",
        ),
        (
            cfg(json!({"split": {"by": "header", "name": "X-Canary-Consumer"}})),
            "split.name: header \"x-canary-consumer\" is already used by consumer_header",
        ),
        (
            {
                let mut c = access_key(json!({"header": "x-canary-select"}));
                c["select_header"] = json!("x-canary-select");
                c
            },
            "auth.header: header \"x-canary-select\" is already used by select_header",
        ),
        (
            cfg(json!({"split": {"by": "header", "name": "authorization"},
                       "auth": {"mode": "basic", "users": ["alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="]}})),
            "(basic auth): header \"authorization\" is already used by split.name",
        ),
        (
            {
                let mut c = oauth2(json!({}));
                c["split"] = json!({"by": "header", "name": "Authorization"});
                c
            },
            "(oauth2 auth): header \"authorization\" is already used by split.name",
        ),
    ]);
}

#[test]
fn split_settings_are_validated_naming_the_field() {
    check_table(&[
        (
            cfg(json!({"split": {"by": "header"}})),
            "split.name: required when split.by is \"header\"",
        ),
        (
            cfg(json!({"split": {"by": "query"}})),
            "split.name: required when split.by is \"query\"",
        ),
        (
            cfg(json!({"split": {"by": "cookie"}})),
            "split.name: required when split.by is \"cookie\"",
        ),
        (
            cfg(json!({"split": {"by": "header", "name": ""}})),
            "split.name: must not be empty",
        ),
        (
            cfg(json!({"split": {"by": "query", "name": ""}})),
            "split.name: must not be empty",
        ),
        (
            cfg(json!({"split": {"by": "header", "name": "x user"}})),
            "split.name: \"x user\" is not a valid header name",
        ),
        (
            cfg(json!({"split": {"name": "x-user"}})),
            "split.name: not used when split.by is \"random\"; remove it",
        ),
        (
            cfg(json!({"split": {"by": "consumer", "name": "x-user"},
                       "auth": {"mode": "basic", "users": ["alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="]}})),
            "split.name: not used when split.by is \"consumer\"; remove it",
        ),
        (
            cfg(json!({"split": {"by": "consumer"}})),
            "split.by: \"consumer\" needs an authenticated consumer; set auth.mode to basic, \
             access_key or oauth2",
        ),
        (
            cfg(json!({"split": {"when_missing": "primary"}})),
            "split.when_missing: not used when split.by is \"random\"; remove it",
        ),
        (
            cfg(json!({"split": {"by": "random", "hash_seed": 7}})),
            "split.hash_seed: not used when split.by is \"random\"; remove it",
        ),
    ]);
}

#[test]
fn basic_and_access_key_settings_are_validated_without_echoing_secrets() {
    let sha = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
    check_table(&[
        (
            auth(json!({"mode": "basic", "realm": "", "users": [format!("a:{sha}")]})),
            "auth.realm: must not be empty",
        ),
        (
            auth(json!({"mode": "basic", "realm": "my \"models\"", "users": [format!("a:{sha}")]})),
            "auth.realm: must be printable ASCII without quotes or backslashes",
        ),
        (
            auth(json!({"mode": "basic"})),
            "auth: missing field `users`",
        ),
        (basic(json!([])), "auth.users: must list at least one user"),
        (
            basic(json!(["alice-SECRET"])),
            "auth.users[0]: expected an htpasswd line \"name:hash\"",
        ),
        (
            basic(json!([format!(":{sha}")])),
            "auth.users[0]: user name must not be empty",
        ),
        (
            basic(json!([format!("al\tice:{sha}")])),
            "auth.users[0]: user name must not contain control characters",
        ),
        (
            basic(json!(["alice:hunter2-SECRET"])),
            "auth.users[0]: user \"alice\" has a plaintext password, which is refused; use \
             bcrypt (htpasswd -B) or {SHA} (htpasswd -s)",
        ),
        (
            basic(json!([format!("bob:{sha}"), "carol:$2y$05$SECRET-truncated-hash"])),
            "auth.users[1]: user \"carol\" has a malformed bcrypt hash",
        ),
        (
            basic(json!(["dave:$2y$13$abcdefghijklmnopqrstuuSECRETabcdefghijklmnopqrstuvwxy"])),
            "auth.users[0]: user \"dave\" has bcrypt cost 13; use 4 to 12 (htpasswd -B -C 5)",
        ),
        (
            basic(json!(["erin:{SHA}SECRET"])),
            "auth.users[0]: user \"erin\" has a malformed {SHA} hash (expected base64 of a \
             20-byte SHA-1 digest)",
        ),
        (
            basic(json!(["frank:$apr1$SECRET$abcdefghijklmnopqrstu"])),
            "auth.users[0]: user \"frank\" has an unsupported hash scheme; use bcrypt \
             (htpasswd -B) or {SHA} (htpasswd -s)",
        ),
        (
            basic(json!([format!("bob:{sha}"), format!("bob:{sha}")])),
            "auth.users[1]: user \"bob\" is listed twice",
        ),
        (
            auth(json!({"mode": "access_key", "keys": []})),
            "auth.keys: must list at least one key",
        ),
        (
            auth(json!({"mode": "access_key", "keys": [{"consumer": "", "sha256": ALICE_SHA256}]})),
            "auth.keys[0].consumer: must be non-empty visible ASCII (it is sent upstream in a header)",
        ),
        (
            auth(json!({"mode": "access_key", "keys": [{"consumer": "al ice", "sha256": ALICE_SHA256}]})),
            "auth.keys[0].consumer: must be non-empty visible ASCII (it is sent upstream in a header)",
        ),
        (
            auth(json!({"mode": "access_key", "keys": [{"consumer": "alice", "sha256": "sk-live-SECRET"}]})),
            "auth.keys[0].sha256: must be 64 hex characters: the SHA-256 digest of the key, not \
             the key itself",
        ),
        (
            auth(json!({"mode": "access_key", "keys": [
                {"consumer": "alice", "sha256": ALICE_SHA256},
                {"consumer": "bob", "sha256": ALICE_SHA256.to_uppercase()}]})),
            "auth.keys[1].sha256: same digest as auth.keys[0]",
        ),
        (
            access_key(json!({"realm": "a\\b"})),
            "auth.realm: must be printable ASCII without quotes or backslashes",
        ),
        (access_key(json!({"header": ""})), "auth.header: must not be empty"),
        (
            access_key(json!({"header": "x:api-key"})),
            "auth.header: \"x:api-key\" is not a valid header name",
        ),
        (access_key(json!({"query": ""})), "auth.query: must not be empty"),
    ]);
}

#[test]
fn oauth2_settings_are_validated_without_echoing_secrets() {
    check_table(&[
        (
            auth(json!({"mode": "oauth2"})),
            "auth: oauth2 needs at least one of jwks, jwks_uri, hs256_secret or introspection",
        ),
        (
            oauth2(json!({"realm": "a\"b"})),
            "auth.realm: must be printable ASCII without quotes or backslashes",
        ),
        (
            oauth2(json!({"jwks": {"keys": []}})),
            "auth.jwks.keys: must list at least one key (or add jwks_uri to fetch them)",
        ),
        (
            oauth2(json!({"jwks": null, "hs256_secret": "SECRET"})),
            "auth.hs256_secret: must be base64url of at least 32 random bytes",
        ),
        (
            oauth2(json!({"jwks": null, "hs256_secret": "SECRET not base64url!"})),
            "auth.hs256_secret: must be base64url of at least 32 random bytes",
        ),
        (oauth2(json!({"issuer": ""})), "auth.issuer: must not be empty"),
        (
            oauth2(json!({"issuer": null})),
            "auth.issuer: is required to verify JWTs (jwks, jwks_uri or hs256_secret)",
        ),
        (
            oauth2(json!({"audiences": []})),
            "auth.audiences: must list at least one audience to verify JWTs (tokens for other \
             services must not pass)",
        ),
        (
            oauth2(json!({"audiences": ["m", ""]})),
            "auth.audiences[1]: must not be empty",
        ),
        (
            oauth2(json!({"audiences": ["m", "n", "m"]})),
            "auth.audiences[2]: \"m\" is already listed at auth.audiences[0]",
        ),
        (
            oauth2(json!({"required_scopes": ["predict", "read write"]})),
            "auth.required_scopes[1]: \"read write\" is not a valid scope (visible ASCII \
             without spaces, quotes or backslashes)",
        ),
        (
            oauth2(json!({"required_scopes": [""]})),
            "auth.required_scopes[0]: \"\" is not a valid scope (visible ASCII without spaces, \
             quotes or backslashes)",
        ),
        (
            oauth2(json!({"required_scopes": ["predict", "predict"]})),
            "auth.required_scopes[1]: \"predict\" is already listed at auth.required_scopes[0]",
        ),
        (
            oauth2(json!({"clock_skew_seconds": 601})),
            "auth.clock_skew_seconds: 601 is not between 0 and 600",
        ),
        (oauth2(json!({"consumer_claim": ""})), "auth.consumer_claim: must not be empty"),
        (
            oauth2(json!({"consumer_claim": "exp"})),
            "auth.consumer_claim: \"exp\" does not identify a consumer; use \"sub\" or a claim \
             such as \"client_id\"",
        ),
        (
            oauth2(json!({"consumer_claim": "user name"})),
            "auth.consumer_claim: \"user name\" is not a valid claim name (visible ASCII \
             without quotes or backslashes)",
        ),
        // The JWKS endpoint.
        (
            jwks_uri(json!({"cluster": ""})),
            "auth.jwks_uri.cluster: must not be empty",
        ),
        (
            jwks_uri(json!({"cluster": "idp cluster"})),
            "auth.jwks_uri.cluster: \"idp cluster\" is not a valid cluster name",
        ),
        (
            jwks_uri(json!({"path": "jwks.json"})),
            "auth.jwks_uri.path: \"jwks.json\" must start with \"/\" and contain only visible ASCII",
        ),
        (
            jwks_uri(json!({"authority": ""})),
            "auth.jwks_uri.authority: \"\" is not a valid host name",
        ),
        (
            jwks_uri(json!({"timeout_ms": 0})),
            "auth.jwks_uri.timeout_ms: 0 is not between 1 and 60000",
        ),
        (
            jwks_uri(json!({"refresh_seconds": 86_401})),
            "auth.jwks_uri.refresh_seconds: 86401 is not between 1 and 86400",
        ),
        // The introspection endpoint.
        (
            introspection(json!({"path": "/intro spect"})),
            "auth.introspection.path: \"/intro spect\" must start with \"/\" and contain only \
             visible ASCII",
        ),
        (
            introspection(json!({"timeout_ms": 60_001})),
            "auth.introspection.timeout_ms: 60001 is not between 1 and 60000",
        ),
        (
            introspection(json!({"client_id": ""})),
            "auth.introspection.client_id: must not be empty",
        ),
        (
            introspection(json!({"client_secret": ""})),
            "auth.introspection.client_secret: must not be empty",
        ),
        (
            introspection(json!({"client_secret": 42})),
            "auth.introspection.client_secret: must be a string or {\"env\": \"NAME\"}",
        ),
        (
            introspection(json!({"cache_seconds": 3601})),
            "auth.introspection.cache_seconds: 3601 is not between 0 and 3600",
        ),
    ]);
}

#[test]
fn configured_keys_are_validated_naming_the_member() {
    let ff = |n: usize| b64url(&vec![0xff; n]);
    check_table(&[
        (
            jwks_with(json!({"kty": "oct", "k": "c2VjcmV0LXNlY3JldA"})),
            "auth.jwks.keys[0].kty: symmetric keys (\"oct\") are not accepted in a key set; \
             configure hs256_secret for HS256",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"kty": null}))),
            "auth.jwks.keys[0].kty: is required",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"kty": "DSA"}))),
            "auth.jwks.keys[0].kty: unsupported key type \"DSA\" (supported: RSA, EC, OKP)",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"use": "enc"}))),
            "auth.jwks.keys[0].use: \"enc\" keys cannot verify signatures; use \"sig\" or remove \
             the key",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"key_ops": ["encrypt"]}))),
            "auth.jwks.keys[0].key_ops: does not include \"verify\"",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"d": "SECRET"}))),
            "auth.jwks.keys[0].d: private key material must not be configured; give only the \
             public key",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"alg": "HS256"}))),
            "auth.jwks.keys[0].alg: unsupported algorithm \"HS256\" (supported: RS256, RS384, \
             RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"alg": "ES256"}))),
            "auth.jwks.keys[0].alg: \"ES256\" cannot be used with a RSA key",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"n": null}))),
            "auth.jwks.keys[0].n: is required",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"n": "not base64url!"}))),
            "auth.jwks.keys[0].n: is not base64url",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"n": ""}))),
            "auth.jwks.keys[0].n: must not be empty",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"n": ff(128)}))),
            "auth.jwks.keys[0].n: RSA modulus of 1024 bits is too small (minimum 2048)",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"n": ff(513)}))),
            "auth.jwks.keys[0].n: RSA modulus of 4104 bits is too large (maximum 4096)",
        ),
        (
            jwks_with(fixture_key("rsa-1", json!({"e": "Aw"}))),
            "auth.jwks.keys[0].e: RSA exponent must be 65537 (\"AQAB\")",
        ),
        (
            jwks_with(fixture_key("ec-1", json!({"crv": null}))),
            "auth.jwks.keys[0].crv: is required for EC keys",
        ),
        (
            jwks_with(fixture_key("ec-1", json!({"crv": "P-521"}))),
            "auth.jwks.keys[0].crv: unsupported curve \"P-521\" (supported: P-256, P-384)",
        ),
        (
            jwks_with(fixture_key("ec-1", json!({"alg": "ES384"}))),
            "auth.jwks.keys[0].alg: \"ES384\" cannot be used with a P-256 key",
        ),
        (
            jwks_with(fixture_key("ec-1", json!({"x": b64url(&[1; 31])}))),
            "auth.jwks.keys[0].x: must be 32 bytes for P-256, got 31",
        ),
        (
            jwks_with(fixture_key("ec384-1", json!({"y": b64url(&[1; 32])}))),
            "auth.jwks.keys[0].y: must be 48 bytes for P-384, got 32",
        ),
        (
            jwks_with(fixture_key(
                "ec-1",
                json!({"x": b64url(&[0; 32]), "y": b64url(&[0; 32])}),
            )),
            "auth.jwks.keys[0].x: x and y are not a point on P-256",
        ),
        (
            jwks_with(fixture_key("ed-1", json!({"crv": null}))),
            "auth.jwks.keys[0].crv: is required for OKP keys",
        ),
        (
            jwks_with(fixture_key("ed-1", json!({"crv": "X25519"}))),
            "auth.jwks.keys[0].crv: unsupported curve \"X25519\" (supported: Ed25519)",
        ),
        (
            jwks_with(fixture_key("ed-1", json!({"alg": "RS256"}))),
            "auth.jwks.keys[0].alg: \"RS256\" cannot be used with a Ed25519 key",
        ),
        (
            jwks_with(fixture_key("ed-1", json!({"x": b64url(&[1; 31])}))),
            "auth.jwks.keys[0].x: must be 32 bytes for Ed25519, got 31",
        ),
        (
            oauth2(json!({"jwks": {"keys": [fixture_key("rsa-1", json!({})), {"kty": "oct"}]}})),
            "auth.jwks.keys[1].kty: symmetric keys (\"oct\") are not accepted in a key set; \
             configure hs256_secret for HS256",
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Through Envoy: the filter refuses the plugin, and Envoy with it.
// ---------------------------------------------------------------------------------------------

/// Starts Envoy with `gateway`; it must refuse to start.
fn refused(gateway: Gateway) -> StartFailure {
    match Envoy::builder(gateway).try_start() {
        Ok(envoy) => panic!(
            "Envoy accepted an invalid configuration; log:\n{}",
            envoy.log()
        ),
        Err(f) => f,
    }
}

/// The operator's view: Envoy did not start, and its log has exactly one line from the filter,
/// at critical level from the wasm component, ending in `invalid configuration: <message>`.
fn assert_refused_with(gateway: Gateway, message: &str) -> StartFailure {
    let f = refused(gateway);
    if let Some(status) = f.exit_status {
        assert!(!status.success(), "Envoy exited 0 on a refused plugin");
    }
    let want = format!("{PREFIX}{message}");
    let lines: Vec<&str> = f.log.lines().filter(|l| l.contains(PREFIX)).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one error line from the filter:\n{}",
        f.log
    );
    assert!(
        lines[0].ends_with(&want),
        "the filter's line does not end in `{want}`:\n{}",
        lines[0]
    );
    assert!(
        lines[0].contains("[critical]") && lines[0].contains("[wasm]"),
        "not a critical line of the wasm component: {}",
        lines[0]
    );
    f
}

#[test]
fn envoy_refuses_the_plugin_with_the_exact_line_and_no_secret() {
    let v1 = EchoUpstream::start("model-v1");
    let ups = [v1.cluster()];
    let rows: Vec<(Value, &str, &[&str])> = vec![
        (
            json!({"primary": "model-v1", "canaries": [
                {"name": "model-v2", "percent": 60}, {"name": "model-v3", "percent": 60}]}),
            "canaries[1].percent: total 120 exceeds 100",
            &[],
        ),
        (
            json!({"primary": "model-v1", "auth": {"mode": "basic", "users": ["alice:hunter2-plaintext"]}}),
            "auth.users[0]: user \"alice\" has a plaintext password, which is refused; use \
             bcrypt (htpasswd -B) or {SHA} (htpasswd -s)",
            &["hunter2"],
        ),
        (
            json!({"primary": "model-v1", "auth": {"mode": "basic",
                "users": ["bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "carol:$2y$05$truncated-hash-value"]}}),
            "auth.users[1]: user \"carol\" has a malformed bcrypt hash",
            &["truncated-hash-value", "5en6G6"],
        ),
        (
            json!({"primary": "model-v1", "auth": {"mode": "access_key",
                "keys": [{"consumer": "alice", "sha256": "sk-live-plain-key-not-a-digest"}]}}),
            "auth.keys[0].sha256: must be 64 hex characters: the SHA-256 digest of the key, not \
             the key itself",
            &["sk-live-plain-key"],
        ),
        (
            json!({"primary": "model-v1", "auth": {"mode": "oauth2", "introspection": {
                "cluster": "idp", "path": "/i", "client_id": "g",
                "client_secret": "s3cr3t-client-value", "timeout_msec": 5}}}),
            "auth.introspection.timeout_msec: unknown field `timeout_msec`, expected one of \
             `cluster`, `path`, `authority`, `client_id`, `client_secret`, `cache_seconds`, \
             `timeout_ms`",
            &["s3cr3t-client-value"],
        ),
    ];
    for (config, message, secrets) in rows {
        // The native table and Envoy agree on the text.
        assert_eq!(error_of(config.to_string().as_bytes()), message);
        let f = assert_refused_with(Gateway::new(&config, &ups), message);
        for secret in secrets {
            assert!(
                !f.log.contains(secret),
                "{secret} reached the log:\n{}",
                f.log
            );
        }
    }
}

#[test]
fn an_empty_plugin_configuration_is_refused_by_the_filter() {
    let v1 = EchoUpstream::start("model-v1");
    let ups = [v1.cluster()];
    // An empty StringValue, and no `configuration` at all: `parse` is never reached.
    assert_refused_with(Gateway::raw_configuration(Some(""), &ups), EMPTY);
    assert_refused_with(Gateway::raw_configuration(None, &ups), EMPTY);
}

#[test]
fn a_configuration_that_is_not_a_json_object_is_refused() {
    let v1 = EchoUpstream::start("model-v1");
    let ups = [v1.cluster()];
    assert_refused_with(
        Gateway::raw_configuration(Some("primary: model-v1"), &ups),
        "expected value",
    );
    // The JSON string "" is not empty bytes: it reaches `parse`, which wants an object.
    assert_refused_with(Gateway::new(&json!(""), &ups), &error_of(b"\"\""));
}
