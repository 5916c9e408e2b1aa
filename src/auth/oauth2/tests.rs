//! OAuth2 unit tests: published JWS vectors (RFC 7515 A.2/A.3, RFC 8037 A.4),
//! tokens minted by openssl (`tests/fixtures/oauth2/mint.py`), introspection,
//! caching, challenges and configuration errors.

use serde_json::{json, Map, Value};

use super::jwks::parse_remote;
use super::jwt::{self, Keys, Rules};
use super::*;

const JWKS: &str = include_str!("../../../tests/fixtures/oauth2/jwks.json");
const TOKENS: &str = include_str!("../../../tests/fixtures/oauth2/tokens.json");

/// Inside every fixture token's validity (iat 2023-11-14, exp 2100).
const NOW: u64 = 1_700_000_100;

fn fixtures() -> Value {
    serde_json::from_str(TOKENS).unwrap()
}

fn token(name: &str) -> String {
    fixtures()["tokens"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no fixture token {name}"))
        .to_string()
}

fn hs256_secret() -> String {
    fixtures()["hs256_secret"].as_str().unwrap().to_string()
}

fn jwks() -> Value {
    serde_json::from_str(JWKS).unwrap()
}

fn members(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// A configuration document whose `auth` has `mode: "oauth2"` and `members`.
fn document(v: Value) -> Vec<u8> {
    let mut auth = members(v);
    auth.insert("mode".into(), json!("oauth2"));
    json!({"primary": "v1", "auth": auth})
        .to_string()
        .into_bytes()
}

/// An oauth2 authenticator from the `auth` members (without `mode`).
fn oauth2(v: Value) -> OAuth2Auth {
    parse_config(&document(v), &no_env).unwrap()
}

/// An environment where no variable is set.
fn no_env(_: &str) -> Option<String> {
    None
}

/// The error of the `auth` object, as an operator reads it (the whole
/// configuration passes it on unchanged: `config::tests`).
fn config_error(v: Value) -> String {
    parse_config(&document(v), &no_env).unwrap_err().to_string()
}

/// Local JWKS from the fixtures, issuer and audience of the fixtures.
fn local() -> OAuth2Auth {
    oauth2(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks": jwks(),
    }))
}

fn state() -> OAuth2State {
    OAuth2State::default()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn accept(step: Step) -> (String, bool) {
    match step {
        Step::Accept { consumer, cached } => (consumer, cached),
        other => panic!("expected accept, got {other:?}"),
    }
}

fn reject(step: Step) -> TokenError {
    match step {
        Step::Reject(e) => e,
        other => panic!("expected reject, got {other:?}"),
    }
}

fn check(a: &OAuth2Auth, name: &str) -> Step {
    a.authenticate(Some(&bearer(&token(name))), &mut state(), NOW)
}

// ---------------------------------------------------------------------------
// Published vectors
// ---------------------------------------------------------------------------

/// RFC 7515 A.1-A.3 payload: {"iss":"joe","exp":1300819380,"http://example.com/is_root":true}
const RFC_PAYLOAD: &str =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const RFC7515_A2_JWS_SIG: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const RFC7515_A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
const RFC7515_A3_SIG: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const RFC7515_A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const RFC7515_A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
/// RFC 8037 A.4: EdDSA over the bytes "Example of Ed25519 signing" (not a claims set).
const RFC8037_A4_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
const RFC8037_A1_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

/// Before the RFC tokens' exp (1300819380).
const RFC_NOW: u64 = 1_300_819_000;

fn rfc_verify(jwks: Value, token: &str, now: u64) -> Result<Claims, Option<TokenError>> {
    let set = parse_remote(jwks.to_string().as_bytes()).unwrap();
    let keys = Keys {
        sets: [Some(&set), None],
        hs256: None,
    };
    jwt::verify(token, &keys, &Rules::new("joe", &[], 60), now)
}

/// Flips one bit in the last signature byte that carries whole bits.
fn tamper(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut raw = super::jwks::BASE64URL.decode(sig).unwrap();
    let last = raw.len() - 1;
    raw[last / 2] ^= 0x01;
    format!(
        "{head}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

use base64::Engine;

#[test]
fn rfc7515_a2_rs256_vector_verifies() {
    let jwks = json!({"keys":[{"kty":"RSA","n":RFC7515_A2_N,"e":"AQAB"}]});
    let token = format!("eyJhbGciOiJSUzI1NiJ9.{RFC_PAYLOAD}.{RFC7515_A2_JWS_SIG}");
    let claims = rfc_verify(jwks.clone(), &token, RFC_NOW).unwrap();
    assert_eq!(claims.expires_at, 1_300_819_380);
    assert_eq!(
        claims.extra.get("http://example.com/is_root"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        rfc_verify(jwks.clone(), &tamper(&token), RFC_NOW).unwrap_err(),
        Some(TokenError::BadSignature)
    );
    // exp 1300819380 + 60 s of skew.
    assert!(rfc_verify(jwks.clone(), &token, 1_300_819_440).is_ok());
    assert_eq!(
        rfc_verify(jwks, &token, 1_300_819_441).unwrap_err(),
        Some(TokenError::Expired)
    );
}

#[test]
fn rfc7515_a3_es256_vector_verifies() {
    let jwks = json!({"keys":[{"kty":"EC","crv":"P-256","x":RFC7515_A3_X,"y":RFC7515_A3_Y}]});
    let token = format!("eyJhbGciOiJFUzI1NiJ9.{RFC_PAYLOAD}.{RFC7515_A3_SIG}");
    let claims = rfc_verify(jwks.clone(), &token, RFC_NOW).unwrap();
    assert_eq!(claims.expires_at, 1_300_819_380);
    assert_eq!(
        rfc_verify(jwks, &tamper(&token), RFC_NOW).unwrap_err(),
        Some(TokenError::BadSignature)
    );
}

#[test]
fn rfc8037_a4_ed25519_vector_signature_verifies() {
    let jwks = json!({"keys":[{"kty":"OKP","crv":"Ed25519","x":RFC8037_A1_X}]});
    // The signature is good; the payload is a sentence, not a claims set, so
    // the token is refused only after the signature check passed...
    assert_eq!(
        rfc_verify(jwks.clone(), RFC8037_A4_JWS, RFC_NOW).unwrap_err(),
        Some(TokenError::Malformed)
    );
    // ...while a one-bit change of the signature fails the signature check.
    assert_eq!(
        rfc_verify(jwks, &tamper(RFC8037_A4_JWS), RFC_NOW).unwrap_err(),
        Some(TokenError::BadSignature)
    );
}

// ---------------------------------------------------------------------------
// Tokens minted by openssl
// ---------------------------------------------------------------------------

#[test]
fn valid_tokens_of_every_algorithm_are_accepted() {
    let a = local();
    for name in [
        "rs256",
        "rs384",
        "rs512",
        "ps256",
        "ps384",
        "ps512",
        "es256",
        "es384",
        "eddsa",
        "rs256_no_kid",
    ] {
        assert_eq!(
            accept(check(&a, name)),
            ("alice".to_string(), false),
            "{name}"
        );
    }
    assert_eq!(accept(check(&a, "audience_list")).0, "bob");
}

#[test]
fn invalid_tokens_are_refused_with_the_right_reason() {
    let a = local();
    for (name, error) in [
        ("expired", TokenError::Expired),
        ("not_yet_valid", TokenError::NotYetValid),
        ("wrong_audience", TokenError::WrongAudience),
        ("wrong_issuer", TokenError::WrongIssuer),
        ("unknown_kid", TokenError::UnknownKey),
        ("bad_signature", TokenError::BadSignature),
        ("alg_none", TokenError::UnsupportedAlgorithm),
        ("alg_none_kid", TokenError::UnsupportedAlgorithm),
        ("hs256_rsa_public_pem", TokenError::UnsupportedAlgorithm),
        ("hs256_rsa_public_der", TokenError::UnsupportedAlgorithm),
        ("hs256_shared_secret", TokenError::UnsupportedAlgorithm),
        ("no_exp", TokenError::MissingClaim),
        ("no_sub", TokenError::MissingClaim),
    ] {
        assert_eq!(reject(check(&a, name)), error, "{name}");
    }
}

#[test]
fn hs256_needs_the_configured_secret_and_never_a_public_key() {
    let a = oauth2(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks": jwks(),
        "hs256_secret": hs256_secret(),
    }));
    assert_eq!(accept(check(&a, "hs256_shared_secret")).0, "carol");
    // HMAC keyed with the RSA public key: the key set's RSA key is never an HMAC key.
    assert_eq!(
        reject(check(&a, "hs256_rsa_public_pem")),
        TokenError::BadSignature
    );
    assert_eq!(
        reject(check(&a, "hs256_rsa_public_der")),
        TokenError::BadSignature
    );
    assert_eq!(accept(check(&a, "rs256")).0, "alice");
}

#[test]
fn truncated_garbage_and_oversized_tokens_are_refused() {
    let a = local();
    let good = token("rs256");
    let mut s = state();
    let mut run = |t: &str| reject(a.authenticate(Some(&bearer(t)), &mut s, NOW));
    assert_eq!(run(&good[..good.len() - 10]), TokenError::BadSignature);
    let two_parts = good.rsplit_once('.').unwrap().0.to_string();
    assert_eq!(run(&two_parts), TokenError::Malformed);
    assert_eq!(run(&good[..20]), TokenError::Malformed);
    assert_eq!(run("aaaa.bbbb.cccc"), TokenError::Malformed);
    assert_eq!(run("not-a-jwt"), TokenError::Malformed);
    assert_eq!(run(&format!("{good}.extra")), TokenError::Malformed);
    let huge = "A".repeat(40 * 1024);
    assert_eq!(run(&huge), TokenError::Malformed);
    let huge_jwt = format!("{huge}.{huge}.{huge}");
    assert_eq!(run(&huge_jwt), TokenError::Malformed);
    assert_eq!(
        reject(a.authenticate(Some("Bearer a b"), &mut state(), NOW)),
        TokenError::Malformed
    );
    assert_eq!(
        reject(a.authenticate(Some("Bearer \u{e9}t\u{e9}"), &mut state(), NOW)),
        TokenError::Malformed
    );
}

#[test]
fn a_20_kb_token_is_verified() {
    let big = token("big");
    assert!(big.len() > 20_000, "{}", big.len());
    assert_eq!(accept(check(&local(), "big")).0, "alice");
}

#[test]
fn missing_scope_is_403_insufficient_scope() {
    let a = oauth2(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks": jwks(),
        "required_scopes": ["predict"],
    }));
    assert_eq!(
        reject(check(&a, "missing_scope")),
        TokenError::InsufficientScope
    );
    assert_eq!(accept(check(&a, "es256")).0, "alice");
    // `scp` as an array.
    assert_eq!(accept(check(&a, "audience_list")).0, "bob");
    let d = a.denial(TokenError::InsufficientScope);
    assert_eq!(d.status, 403);
    assert_eq!(
        d.challenge.as_deref(),
        Some("Bearer realm=\"canary-gate\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"predict\"")
    );
    assert_eq!(
        d.body,
        r#"{"error":"insufficient_scope","reason":"insufficient_scope"}"#
    );
}

#[test]
fn consumer_claim_can_name_another_claim() {
    let a = oauth2(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks": jwks(),
        "consumer_claim": "client_id",
    }));
    assert_eq!(accept(check(&a, "no_sub")).0, "svc-7");
    assert_eq!(reject(check(&a, "rs256")), TokenError::MissingClaim);
}

#[test]
fn clock_skew_applies_to_exp_and_nbf() {
    let a = local();
    let expired = bearer(&token("expired")); // exp 1_000_000_000
    assert!(matches!(
        a.authenticate(Some(&expired), &mut state(), 1_000_000_060),
        Step::Accept { .. }
    ));
    assert_eq!(
        reject(a.authenticate(Some(&expired), &mut state(), 1_000_000_061)),
        TokenError::Expired
    );
    let early = bearer(&token("not_yet_valid")); // nbf 4_000_000_000
    assert!(matches!(
        a.authenticate(Some(&early), &mut state(), 3_999_999_940),
        Step::Accept { .. }
    ));
    assert_eq!(
        reject(a.authenticate(Some(&early), &mut state(), 3_999_999_939)),
        TokenError::NotYetValid
    );
    let strict = oauth2(json!({
        "issuer": "https://idp.example.com", "audiences": ["models"], "jwks": jwks(),
        "clock_skew_seconds": 0,
    }));
    assert_eq!(
        reject(strict.authenticate(Some(&expired), &mut state(), 1_000_000_001)),
        TokenError::Expired
    );
}

#[test]
fn bearer_scheme_is_case_insensitive_and_other_schemes_are_no_token() {
    let a = local();
    let t = token("eddsa");
    for header in [
        format!("bearer {t}"),
        format!("BEARER   {t}"),
        format!(" Bearer {t} "),
    ] {
        assert_eq!(
            accept(a.authenticate(Some(&header), &mut state(), NOW)).0,
            "alice"
        );
    }
    for header in [None, Some(""), Some("Basic YWxpY2U6eA=="), Some(t.as_str())] {
        assert_eq!(
            reject(a.authenticate(header, &mut state(), NOW)),
            TokenError::Missing
        );
    }
    assert_eq!(
        reject(a.authenticate(Some("Bearer"), &mut state(), NOW)),
        TokenError::Malformed
    );
    assert_eq!(
        reject(a.authenticate(Some("Bearer   "), &mut state(), NOW)),
        TokenError::Malformed
    );
}

// ---------------------------------------------------------------------------
// Remote keys and the verdict cache
// ---------------------------------------------------------------------------

fn remote_only() -> OAuth2Auth {
    oauth2(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks_uri": {"cluster": "idp", "path": "/jwks.json"},
    }))
}

#[test]
fn tokens_wait_for_the_first_remote_key_set() {
    let a = remote_only();
    let mut s = state();
    let rs = bearer(&token("rs256"));
    assert!(matches!(
        a.authenticate(Some(&rs), &mut s, NOW),
        Step::NeedKeys
    ));
    // Refusals that need no key do not wait.
    assert_eq!(
        reject(a.authenticate(Some(&bearer(&token("alg_none"))), &mut s, NOW)),
        TokenError::UnsupportedAlgorithm
    );
    assert_eq!(
        reject(a.authenticate(Some("Bearer x.y"), &mut s, NOW)),
        TokenError::Malformed
    );
    s.install_remote_keys(
        std::rc::Rc::new(parse_remote(JWKS.as_bytes()).unwrap()),
        digest_bytes(JWKS.as_bytes()),
    );
    assert!(s.has_remote_keys());
    assert!(s.remote_keys_are(&digest_bytes(JWKS.as_bytes())));
    assert!(!s.remote_keys_are(&digest_bytes(b"{}")));
    assert_eq!(accept(a.authenticate(Some(&rs), &mut s, NOW)).0, "alice");
    assert_eq!(
        reject(a.authenticate(Some(&bearer(&token("unknown_kid"))), &mut s, NOW)),
        TokenError::UnknownKey
    );
}

#[test]
fn configured_keys_serve_while_remote_keys_are_pending() {
    let rsa_only = json!({"keys": [jwks()["keys"][0].clone()]});
    let a = oauth2(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks": rsa_only,
        "jwks_uri": {"cluster": "idp", "path": "/jwks.json"},
    }));
    let mut s = state();
    assert_eq!(
        accept(a.authenticate(Some(&bearer(&token("rs256"))), &mut s, NOW)).0,
        "alice"
    );
    assert!(matches!(
        a.authenticate(Some(&bearer(&token("es256"))), &mut s, NOW),
        Step::NeedKeys
    ));
}

#[test]
fn verdicts_are_cached_until_exp_and_dropped_with_new_keys() {
    let a = local();
    let mut s = state();
    let t = bearer(&token("expired")); // exp 1_000_000_000
    let at = 999_999_000;
    assert_eq!(
        accept(a.authenticate(Some(&t), &mut s, at)),
        ("alice".into(), false)
    );
    assert_eq!(
        accept(a.authenticate(Some(&t), &mut s, at + 1)),
        ("alice".into(), true)
    );
    assert_eq!(s.cached_verdicts(), 1);
    // At exp the cached verdict is gone: the token is verified again (and
    // passes only within the clock skew, without being cached).
    assert_eq!(
        accept(a.authenticate(Some(&t), &mut s, 1_000_000_000)),
        ("alice".into(), false)
    );
    assert_eq!(s.cached_verdicts(), 0);
    assert_eq!(
        reject(a.authenticate(Some(&t), &mut s, 1_000_000_061)),
        TokenError::Expired
    );

    accept(a.authenticate(Some(&bearer(&token("rs256"))), &mut s, NOW));
    assert_eq!(s.cached_verdicts(), 1);
    s.install_remote_keys(
        std::rc::Rc::new(parse_remote(JWKS.as_bytes()).unwrap()),
        digest_bytes(JWKS.as_bytes()),
    );
    assert_eq!(s.cached_verdicts(), 0);
}

#[test]
fn failed_jwts_are_not_cached() {
    let a = local();
    let mut s = state();
    reject(a.authenticate(Some(&bearer(&token("bad_signature"))), &mut s, NOW));
    reject(a.authenticate(Some(&bearer(&token("wrong_audience"))), &mut s, NOW));
    assert_eq!(s.cached_verdicts(), 0);
}

// ---------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------

fn introspecting(extra: Value) -> OAuth2Auth {
    let mut cfg = json!({
        "introspection": {
            "cluster": "idp", "path": "/oauth2/introspect", "client_id": "gateway",
            "client_secret": "s3cret-value", "cache_seconds": 30
        }
    });
    for (k, v) in members(extra) {
        cfg[k] = v;
    }
    oauth2(cfg)
}

/// An introspection in flight: what the glue keeps, and the request's header.
struct Pending {
    digest: TokenDigest,
    authorization: String,
}

fn introspect(a: &OAuth2Auth, s: &mut OAuth2State, token: &str, now: u64) -> (HttpCall, Pending) {
    let authorization = bearer(token);
    match a.authenticate(Some(&authorization), s, now) {
        Step::Introspect { call, digest } => (
            call,
            Pending {
                digest,
                authorization,
            },
        ),
        other => panic!("expected introspection, got {other:?}"),
    }
}

fn answer(
    a: &OAuth2Auth,
    s: &mut OAuth2State,
    pending: &Pending,
    status: Option<u32>,
    body: &str,
    now: u64,
) -> Introspected {
    a.finish_introspection(
        pending.digest,
        Some(&pending.authorization),
        status,
        Some(body.as_bytes()),
        s,
        now,
    )
}

#[test]
fn active_answers_are_cached_for_cache_seconds_and_never_beyond_exp() {
    let a = introspecting(json!({}));
    let mut s = state();
    let (call, digest) = introspect(&a, &mut s, "opaque-1", NOW);
    assert_eq!(call.cluster, "idp");
    assert_eq!(
        call.body.as_deref(),
        Some(&b"token=opaque-1&token_type_hint=access_token"[..])
    );
    let body = format!(r#"{{"active":true,"sub":"dave","exp":{}}}"#, NOW + 10);
    assert_eq!(
        answer(&a, &mut s, &digest, Some(200), &body, NOW).result,
        Ok("dave".into())
    );
    assert_eq!(
        accept(a.authenticate(Some("Bearer opaque-1"), &mut s, NOW + 9)),
        ("dave".into(), true)
    );
    // exp (NOW + 10) comes before cache_seconds (NOW + 30).
    introspect(&a, &mut s, "opaque-1", NOW + 10);

    let (_, digest) = introspect(&a, &mut s, "opaque-2", NOW);
    answer(
        &a,
        &mut s,
        &digest,
        Some(200),
        r#"{"active":true,"sub":"erin"}"#,
        NOW,
    );
    assert!(matches!(
        a.authenticate(Some("Bearer opaque-2"), &mut s, NOW + 29),
        Step::Accept { cached: true, .. }
    ));
    introspect(&a, &mut s, "opaque-2", NOW + 30);
}

#[test]
fn an_answer_is_cached_only_for_the_token_that_was_introspected() {
    let a = introspecting(json!({}));
    let mut s = state();
    let (_, pending) = introspect(&a, &mut s, "opaque-1", NOW);
    // The request's header no longer carries that token: the verdict stands
    // for this request, but nothing is cached.
    let other = Pending {
        digest: pending.digest,
        authorization: bearer("opaque-2"),
    };
    let body = r#"{"active":true,"sub":"dave"}"#;
    assert_eq!(
        answer(&a, &mut s, &other, Some(200), body, NOW).result,
        Ok("dave".into())
    );
    assert_eq!(s.cached_verdicts(), 0);
    answer(&a, &mut s, &pending, Some(200), body, NOW);
    assert_eq!(s.cached_verdicts(), 1);
    // Only the exact token hits.
    introspect(&a, &mut s, "opaque-10", NOW);
    introspect(&a, &mut s, "opaque-", NOW);
    assert!(matches!(
        a.authenticate(Some("Bearer opaque-1"), &mut s, NOW),
        Step::Accept { cached: true, .. }
    ));
}

#[test]
fn inactive_answers_are_cached_briefly() {
    let a = introspecting(json!({}));
    let mut s = state();
    let (_, digest) = introspect(&a, &mut s, "revoked", NOW);
    assert_eq!(
        answer(&a, &mut s, &digest, Some(200), r#"{"active":false}"#, NOW).result,
        Err(TokenError::Inactive)
    );
    assert_eq!(
        reject(a.authenticate(Some("Bearer revoked"), &mut s, NOW + 4)),
        TokenError::Inactive
    );
    introspect(&a, &mut s, "revoked", NOW + 5);
}

#[test]
fn an_unavailable_provider_is_503_and_not_cached() {
    let a = introspecting(json!({}));
    let mut s = state();
    let (_, digest) = introspect(&a, &mut s, "opaque", NOW);
    let done = answer(&a, &mut s, &digest, Some(500), "oops", NOW);
    assert_eq!(done.result, Err(TokenError::IntrospectionUnavailable));
    assert_eq!(
        done.problem.as_deref(),
        Some("HTTP 500 from the introspection endpoint")
    );
    let done = a.finish_introspection(
        digest.digest,
        Some(&digest.authorization),
        None,
        None,
        &mut s,
        NOW,
    );
    assert_eq!(done.result, Err(TokenError::IntrospectionUnavailable));
    let done = answer(&a, &mut s, &digest, Some(200), "{}", NOW);
    assert_eq!(done.result, Err(TokenError::IntrospectionUnavailable));
    introspect(&a, &mut s, "opaque", NOW);
    let d = a.denial(TokenError::IntrospectionUnavailable);
    assert_eq!((d.status, d.challenge.as_deref()), (503, None));
    assert_eq!(
        d.body,
        r#"{"error":"temporarily_unavailable","reason":"introspection_unavailable"}"#
    );
}

#[test]
fn introspected_claims_are_checked() {
    let a = introspecting(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "required_scopes": ["predict"],
    }));
    let cases = [
        (
            r#"{"active":true,"sub":"f","scope":"predict"}"#,
            Ok("f".to_string()),
        ),
        (
            r#"{"active":true,"sub":"f","scope":"read predict","aud":["x","models"],"iss":"https://idp.example.com"}"#,
            Ok("f".to_string()),
        ),
        (
            r#"{"active":true,"sub":"f","scope":"read"}"#,
            Err(TokenError::InsufficientScope),
        ),
        (
            r#"{"active":true,"sub":"f","scope":"predict","aud":"billing"}"#,
            Err(TokenError::WrongAudience),
        ),
        (
            r#"{"active":true,"sub":"f","scope":"predict","iss":"https://evil"}"#,
            Err(TokenError::WrongIssuer),
        ),
        (
            r#"{"active":true,"sub":"f","scope":"predict","exp":1000}"#,
            Err(TokenError::Expired),
        ),
        (
            r#"{"active":true,"sub":"f","scope":"predict","nbf":4000000000}"#,
            Err(TokenError::NotYetValid),
        ),
        (
            r#"{"active":true,"scope":"predict"}"#,
            Err(TokenError::MissingClaim),
        ),
        (
            r#"{"active":true,"sub":"a\nb","scope":"predict"}"#,
            Err(TokenError::MissingClaim),
        ),
    ];
    for (i, (body, expected)) in cases.into_iter().enumerate() {
        let mut s = state();
        let (_, digest) = introspect(&a, &mut s, &format!("tok-{i}"), NOW);
        assert_eq!(
            answer(&a, &mut s, &digest, Some(200), body, NOW).result,
            expected,
            "{body}"
        );
    }
    // A 403 verdict is a definite answer about the token: cached.
    let mut s = state();
    let (_, digest) = introspect(&a, &mut s, "narrow", NOW);
    answer(
        &a,
        &mut s,
        &digest,
        Some(200),
        r#"{"active":true,"sub":"f","scope":"read"}"#,
        NOW,
    );
    assert_eq!(
        reject(a.authenticate(Some("Bearer narrow"), &mut s, NOW + 1)),
        TokenError::InsufficientScope
    );
}

#[test]
fn jwts_are_verified_locally_when_keys_are_configured() {
    let a = introspecting(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks": jwks(),
    }));
    let mut s = state();
    assert_eq!(
        accept(a.authenticate(Some(&bearer(&token("rs256"))), &mut s, NOW)).0,
        "alice"
    );
    assert_eq!(
        reject(a.authenticate(Some(&bearer(&token("expired"))), &mut s, NOW)),
        TokenError::Expired
    );
    introspect(&a, &mut s, "opaque", NOW);
    // Without keys, every token (JWT-shaped or not) is introspected.
    let only = introspecting(json!({}));
    introspect(&only, &mut state(), &token("rs256"), NOW);
}

// ---------------------------------------------------------------------------
// Replies and secrets
// ---------------------------------------------------------------------------

#[test]
fn challenges_follow_rfc_6750() {
    let a = oauth2(json!({
        "realm": "models",
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks": jwks(),
    }));
    let d = a.denial(TokenError::Missing);
    assert_eq!(d.status, 401);
    assert_eq!(d.challenge.as_deref(), Some("Bearer realm=\"models\""));
    assert_eq!(
        d.body,
        r#"{"error":"unauthorized","reason":"missing_credentials"}"#
    );
    let d = a.denial(TokenError::Expired);
    assert_eq!(d.status, 401);
    assert_eq!(
        d.challenge.as_deref(),
        Some("Bearer realm=\"models\", error=\"invalid_token\", error_description=\"the token has expired\"")
    );
    assert_eq!(
        d.body,
        r#"{"error":"invalid_token","reason":"token_expired"}"#
    );
    assert_eq!(d.reason, "token_expired");
    let d = a.denial(TokenError::KeysUnavailable);
    assert_eq!((d.status, d.challenge), (503, None));
    assert_eq!(
        d.body,
        r#"{"error":"temporarily_unavailable","reason":"keys_unavailable"}"#
    );
    for e in TokenError::ALL {
        let d = a.denial(e);
        let body: Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body["reason"], e.reason());
    }
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let a = introspecting(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks": jwks(),
        "hs256_secret": hs256_secret(),
    }));
    let debug = format!("{a:?}");
    assert!(!debug.contains("s3cret-value"), "{debug}");
    assert!(!debug.contains(&hs256_secret()), "{debug}");
    assert!(!debug.contains("Basic "), "{debug}");
    let mut s = state();
    let (call, _) = introspect(&a, &mut s, "opaque-secret-token", NOW);
    let debug = format!("{call:?} {s:?}");
    assert!(!debug.contains("opaque-secret-token"), "{debug}");
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn the_documented_example_parses() {
    let a = oauth2(json!({
        "issuer": "https://idp.example.com",
        "audiences": ["models"],
        "jwks_uri": {"cluster": "idp", "path": "/.well-known/jwks.json", "authority": "idp.example.com",
                     "refresh_seconds": 300, "timeout_ms": 2000},
        "jwks": {"keys": []},
        "introspection": {"cluster": "idp", "path": "/oauth2/introspect", "client_id": "gateway",
                          "client_secret": "...", "cache_seconds": 30, "timeout_ms": 2000},
        "required_scopes": ["predict"],
        "clock_skew_seconds": 60,
        "consumer_claim": "sub"
    }));
    let uri = a.jwks_uri().unwrap();
    assert_eq!(uri.endpoint.authority, "idp.example.com");
    assert_eq!(uri.refresh_seconds, 300);
    assert!(a.introspection().is_some());
    assert!(!a.keep_token());
    // authority defaults to the cluster name.
    assert_eq!(remote_only().jwks_uri().unwrap().endpoint.authority, "idp");
    assert_eq!(remote_only().jwks_uri().unwrap().endpoint.timeout_ms, 2000);
}

#[test]
fn configuration_errors_name_the_field() {
    let base = || {
        json!({
            "issuer": "https://idp.example.com",
            "audiences": ["models"],
            "jwks": jwks(),
        })
    };
    let with = |path: &str, value: Value| {
        let mut v = base();
        v[path] = value;
        v
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "auth: oauth2 needs at least one of jwks, jwks_uri, hs256_secret or introspection"),
        (json!({"audiences": ["m"], "jwks": jwks()}), "auth.issuer: is required to verify JWTs (jwks, jwks_uri or hs256_secret)"),
        (with("issuer", json!("")), "auth.issuer: must not be empty"),
        (with("audiences", json!([])), "auth.audiences: must list at least one audience to verify JWTs (tokens for other services must not pass)"),
        (with("audiences", json!(["m", ""])), "auth.audiences[1]: must not be empty"),
        (with("audiences", json!(["m", "m"])), "auth.audiences[1]: \"m\" is already listed at auth.audiences[0]"),
        (with("jwks", json!({"keys": []})), "auth.jwks.keys: must list at least one key (or add jwks_uri to fetch them)"),
        (with("jwks", json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})), "auth.jwks.keys[0].kty: symmetric keys (\"oct\") are not accepted in a key set; configure hs256_secret for HS256"),
        (with("jwks", json!({"keys": [jwks()["keys"][0].clone(), {"kty": "EC", "crv": "P-256"}]})), "auth.jwks.keys[1].x: is required"),
        (with("jwks", json!({"keys": {}})), "auth.jwks.keys: invalid type: map, expected a sequence"),
        (with("jwks", json!({"keys": [{"kty": "RSA", "kid": 7}]})), "auth.jwks.keys[0].kid: invalid type: integer `7`, expected a string"),
        (with("jwks_uri", json!({"cluster": "", "path": "/j"})), "auth.jwks_uri.cluster: must not be empty"),
        (with("jwks_uri", json!({"cluster": "idp", "path": "j"})), "auth.jwks_uri.path: \"j\" must start with \"/\" and contain only visible ASCII"),
        (with("jwks_uri", json!({"cluster": "idp", "path": "/j", "timeout_ms": 0})), "auth.jwks_uri.timeout_ms: 0 is not between 1 and 60000"),
        (with("jwks_uri", json!({"cluster": "idp", "path": "/j", "refresh_seconds": 0})), "auth.jwks_uri.refresh_seconds: 0 is not between 1 and 86400"),
        (with("jwks_uri", json!({"cluster": "idp", "path": "/j", "authority": ""})), "auth.jwks_uri.authority: \"\" is not a valid host name"),
        (with("jwks_uri", json!({"path": "/j"})), "auth.jwks_uri: missing field `cluster`"),
        (with("introspection", json!({"cluster": "idp", "path": "/i", "client_id": "g", "client_secret": ""})), "auth.introspection.client_secret: must not be empty"),
        (with("introspection", json!({"cluster": "idp", "path": "/i", "client_id": "", "client_secret": "x"})), "auth.introspection.client_id: must not be empty"),
        (with("introspection", json!({"cluster": "idp", "path": "/i", "client_id": "g", "client_secret": "x", "cache_seconds": 7200})), "auth.introspection.cache_seconds: 7200 is not between 0 and 3600"),
        (with("hs256_secret", json!("c2hvcnQ")), "auth.hs256_secret: must be base64url of at least 32 random bytes"),
        (with("required_scopes", json!(["predict", "a b"])), "auth.required_scopes[1]: \"a b\" is not a valid scope (visible ASCII without spaces, quotes or backslashes)"),
        (with("required_scopes", json!(["p", "p"])), "auth.required_scopes[1]: \"p\" is already listed at auth.required_scopes[0]"),
        (with("clock_skew_seconds", json!(601)), "auth.clock_skew_seconds: 601 is not between 0 and 600"),
        (with("consumer_claim", json!("exp")), "auth.consumer_claim: \"exp\" does not identify a consumer; use \"sub\" or a claim such as \"client_id\""),
        (with("consumer_claim", json!("")), "auth.consumer_claim: must not be empty"),
        (with("realm", json!("a\"b")), "auth.realm: must be printable ASCII without quotes or backslashes"),
    ];
    for (cfg, expected) in cases {
        assert_eq!(config_error(cfg.clone()), expected, "{cfg}");
    }
    let e = config_error(with("audience", json!("m")));
    assert!(
        e.starts_with("auth.audience: unknown field `audience`, expected one of"),
        "{e}"
    );
    let e = config_error(with(
        "jwks_uri",
        json!({"cluster": "idp", "path": "/j", "refresh": 1}),
    ));
    assert!(
        e.starts_with("auth.jwks_uri.refresh: unknown field `refresh`, expected one of"),
        "{e}"
    );
}

#[test]
fn the_client_secret_is_never_echoed() {
    for secret in [
        json!(987654321),
        json!(["hunter2"]),
        json!({"v": "hunter2"}),
    ] {
        let e = config_error(json!({
            "introspection": {"cluster": "idp", "path": "/i", "client_id": "g", "client_secret": secret}
        }));
        assert_eq!(
            e,
            "auth.introspection.client_secret: must be a string or {\"env\": \"NAME\"}"
        );
    }
    let e = config_error(json!({"issuer": "i", "audiences": ["a"], "hs256_secret": 123456789}));
    assert_eq!(
        e,
        "auth.hs256_secret: must be a string or {\"env\": \"NAME\"}"
    );
}

// ---------------------------------------------------------------------------
// Secrets from the environment
// ---------------------------------------------------------------------------

fn with_env(v: Value, vars: &[(&str, &str)]) -> Result<OAuth2Auth, String> {
    let vars: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse_config(&document(v), &|name| vars.get(name).cloned()).map_err(|e| e.to_string())
}

#[test]
fn secrets_can_come_from_environment_variables() {
    let secret = hs256_secret();
    let a = with_env(
        json!({
            "issuer": "https://idp.example.com",
            "audiences": ["models"],
            "hs256_secret": {"env": "JWT_HS256_SECRET"},
            "introspection": {"cluster": "idp", "path": "/i", "client_id": "gateway",
                              "client_secret": {"env": "IDP_CLIENT_SECRET"}}
        }),
        // A trailing newline, as a Secret made from a file has, is not part of the value.
        &[
            ("JWT_HS256_SECRET", &format!("{secret}\n")),
            ("IDP_CLIENT_SECRET", "s3cret-value\n"),
        ],
    )
    .unwrap();
    assert_eq!(accept(check(&a, "hs256_shared_secret")).0, "carol");
    let (call, _) = introspect(&a, &mut state(), "opaque-1", NOW);
    let authorization = call
        .headers
        .iter()
        .find(|(k, _)| *k == "authorization")
        .map(|(_, v)| v.clone());
    // base64("gateway:s3cret-value")
    assert_eq!(
        authorization.as_deref(),
        Some("Basic Z2F0ZXdheTpzM2NyZXQtdmFsdWU=")
    );
    let dbg = format!("{a:?}");
    assert!(!dbg.contains("s3cret") && !dbg.contains(&secret), "{dbg}");
}

#[test]
fn a_missing_or_unusable_variable_is_named_and_its_value_never_echoed() {
    let introspection = |secret: Value| {
        json!({"introspection": {"cluster": "idp", "path": "/i", "client_id": "g",
                                 "client_secret": secret}})
    };
    assert_eq!(
        with_env(introspection(json!({"env": "IDP_CLIENT_SECRET"})), &[]).err(),
        Some(
            "auth.introspection.client_secret: environment variable IDP_CLIENT_SECRET is not set"
                .into()
        )
    );
    assert_eq!(
        with_env(
            introspection(json!({"env": "IDP_CLIENT_SECRET"})),
            &[("IDP_CLIENT_SECRET", "")]
        )
        .err(),
        Some(
            "auth.introspection.client_secret: environment variable IDP_CLIENT_SECRET is empty"
                .into()
        )
    );
    let hs256 = |vars: &[(&str, &str)]| {
        with_env(
            json!({"issuer": "i", "audiences": ["a"], "hs256_secret": {"env": "JWT_KEY"}}),
            vars,
        )
        .err()
    };
    assert_eq!(
        hs256(&[]),
        Some("auth.hs256_secret: environment variable JWT_KEY is not set".into())
    );
    // Too short: the message is the field's, without the value.
    assert_eq!(
        hs256(&[("JWT_KEY", "c2hvcnQtc2VjcmV0")]),
        Some("auth.hs256_secret: must be base64url of at least 32 random bytes".into())
    );
    assert_eq!(
        with_env(introspection(json!({"env": ""})), &[]).err(),
        Some("auth.introspection.client_secret.env: must not be empty".into())
    );
}

/// The byte-level read of a `Bearer` value (the cache's fast path) never
/// finds a b64token that the text-level read would not: for every value,
/// either the two agree or the bytes give a token that is not a b64token
/// (which no cache holds).
#[test]
fn bearer_bytes_agree_with_bearer_token() {
    let values: &[&[u8]] = &[
        b"Bearer abc.def",
        b"bearer abc.def",
        b"BEARER   abc.def  ",
        b"  Bearer abc.def\t",
        b"Bearer abc.def\x0b",
        b"Bearer abc.def\xc2\xa0",
        b"\xc2\xa0Bearer abc.def",
        b"Bearer\tabc.def",
        b"Bearer",
        b"Bearer ",
        b"Basic abc",
        b"Bearer a b",
        b"Bearer abc\xff",
        b"",
    ];
    for &value in values {
        let Some(fast) = bearer_bytes(value) else {
            continue;
        };
        if std::str::from_utf8(fast).map_or(true, |t| check_token(t).is_err()) {
            continue;
        }
        let text = std::str::from_utf8(value).unwrap();
        assert_eq!(
            bearer_token(Some(text)).ok().map(str::as_bytes),
            Some(fast),
            "{value:?}"
        );
    }
}

/// A cached token is recognised on its bytes; a non-UTF-8 value is malformed.
#[test]
fn authenticate_raw_hits_the_cache_and_refuses_non_utf8() {
    let auth = local();
    let mut state = state();
    let value = bearer(&token("rs256"));
    let first = auth.authenticate_raw(Some(value.as_bytes()), &mut state, NOW);
    assert!(
        matches!(first, Step::Accept { cached: false, .. }),
        "{first:?}"
    );
    let again = auth.authenticate_raw(Some(value.as_bytes()), &mut state, NOW);
    assert!(
        matches!(again, Step::Accept { cached: true, .. }),
        "{again:?}"
    );
    let bad = auth.authenticate_raw(Some(b"Bearer \xff\xfe"), &mut state, NOW);
    assert!(
        matches!(bad, Step::Reject(TokenError::Malformed)),
        "{bad:?}"
    );
}
