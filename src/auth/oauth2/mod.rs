//! OAuth2 bearer-token authentication (RFC 6750): JWTs verified in the filter
//! against configured and/or fetched JWKS, opaque tokens checked by RFC 7662
//! introspection, and a bounded cache of verdicts (the tokens that were
//! checked, found by a keyed hash and compared in constant time).
//!
//! Everything here is pure: the time is a parameter, and the network is
//! represented by [`Step::NeedKeys`] / [`Step::Introspect`], which the filter
//! glue turns into proxy-wasm HTTP calls before asking again.

mod cache;
mod config;
pub mod fetch;
mod introspection;
mod jwks;
mod jwt;
mod refresh;

use std::fmt;
use std::rc::Rc;

use serde_json::{Map, Value};

pub use cache::{digest_bytes, TokenCache, TokenDigest};
pub(crate) use config::parse as parse_config;
pub use introspection::{parse_response, Answer, Endpoint, HttpCall, Introspection, Secret};
pub use jwks::{parse_remote as parse_remote_jwks, Alg, KeySet, MAX_JWKS_BYTES};
pub use jwt::{looks_like_jwt, Claims, Rules, MAX_TOKEN_BYTES};
pub use refresh::{tick_period_ms, Refresh};

use crate::reply::Denial;
use introspection::{numeric_date, NEGATIVE_CACHE_SECONDS};
use jwks::Verifier;

/// How many verdicts (accepted tokens, tokens lacking a scope) a VM remembers
/// per gateway, and at most how many bytes of tokens they keep (an RS256
/// token is about 800 bytes, ES256 and EdDSA about 400).
pub const TOKEN_CACHE_CAPACITY: usize = 1024;
pub const TOKEN_CACHE_BYTES: usize = 512 * 1024;
/// How many `active: false` introspection answers a VM remembers per gateway,
/// and at most how many bytes of tokens they keep.
pub const INACTIVE_CACHE_CAPACITY: usize = 256;
pub const INACTIVE_CACHE_BYTES: usize = 64 * 1024;
/// Longest consumer value written upstream.
const MAX_CONSUMER_BYTES: usize = 256;

/// Why a bearer token was refused. Each maps to one fixed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// No bearer token (no `Authorization`, or another scheme).
    Missing,
    /// Not a token the filter can read (bad shape, encoding, JSON, too large).
    Malformed,
    /// `alg` is `none`, unknown, or has no configured key type.
    UnsupportedAlgorithm,
    /// No key with the token's `kid` (and `alg`).
    UnknownKey,
    BadSignature,
    Expired,
    /// `nbf` or `iat` in the future (beyond the clock skew).
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// `exp` or the consumer claim is missing or unusable.
    MissingClaim,
    /// Introspection said `active: false`.
    Inactive,
    /// Valid, but a required scope is missing (403).
    InsufficientScope,
    /// No key set yet: the JWKS could not be fetched in time (503).
    KeysUnavailable,
    /// The introspection endpoint did not answer usably (503).
    IntrospectionUnavailable,
}

impl TokenError {
    pub const ALL: [TokenError; 14] = [
        TokenError::Missing,
        TokenError::Malformed,
        TokenError::UnsupportedAlgorithm,
        TokenError::UnknownKey,
        TokenError::BadSignature,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::WrongIssuer,
        TokenError::WrongAudience,
        TokenError::MissingClaim,
        TokenError::Inactive,
        TokenError::InsufficientScope,
        TokenError::KeysUnavailable,
        TokenError::IntrospectionUnavailable,
    ];

    /// Stable label, used in metrics and response bodies.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Missing => "missing_credentials",
            TokenError::Malformed => "malformed_token",
            TokenError::UnsupportedAlgorithm => "unsupported_algorithm",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "invalid_signature",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::WrongIssuer => "invalid_issuer",
            TokenError::WrongAudience => "invalid_audience",
            TokenError::MissingClaim => "missing_claim",
            TokenError::Inactive => "inactive_token",
            TokenError::InsufficientScope => "insufficient_scope",
            TokenError::KeysUnavailable => "keys_unavailable",
            TokenError::IntrospectionUnavailable => "introspection_unavailable",
        }
    }

    /// The RFC 6750 `error_description`: fixed text, never token content.
    fn description(self) -> &'static str {
        match self {
            TokenError::Missing => "no bearer token",
            TokenError::Malformed => "the token is malformed",
            TokenError::UnsupportedAlgorithm => "the token's signing algorithm is not accepted",
            TokenError::UnknownKey => "the token was signed with an unknown key",
            TokenError::BadSignature => "the token signature is invalid",
            TokenError::Expired => "the token has expired",
            TokenError::NotYetValid => "the token is not valid yet",
            TokenError::WrongIssuer => "the token was issued by an untrusted issuer",
            TokenError::WrongAudience => "the token is not meant for this service",
            TokenError::MissingClaim => "the token lacks a required claim",
            TokenError::Inactive => "the token is not active",
            TokenError::InsufficientScope => "the token lacks a required scope",
            TokenError::KeysUnavailable => "the signing keys are not available yet",
            TokenError::IntrospectionUnavailable => "the token could not be checked",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for TokenError {}

/// JWT verification settings.
#[derive(Debug)]
pub(crate) struct JwtConfig {
    pub(crate) rules: Rules,
    /// Keys from the configuration (`jwks`); may be empty.
    pub(crate) local: KeySet,
    pub(crate) hs256: Option<Verifier>,
}

/// The remote key set source.
#[derive(Debug)]
pub struct JwksUri {
    pub endpoint: Endpoint,
    pub refresh_seconds: u64,
}

/// The compiled `auth.mode: "oauth2"` configuration.
#[derive(Debug)]
pub struct OAuth2Auth {
    realm: String,
    pub(crate) jwt: Option<JwtConfig>,
    jwks_uri: Option<JwksUri>,
    introspection: Option<Introspection>,
    issuer: Option<String>,
    audiences: Vec<String>,
    clock_skew_seconds: u64,
    required_scopes: Vec<String>,
    consumer_claim: String,
    keep_token: bool,
}

/// The per-VM mutable part: fetched keys and cached verdicts.
#[derive(Debug)]
pub struct OAuth2State {
    /// Shared by the gateways whose `jwks_uri` is the same (one fetch).
    remote: Option<Rc<KeySet>>,
    /// SHA-256 of the JWKS document the remote keys come from.
    remote_fingerprint: Option<[u8; 32]>,
    /// Definite verdicts: `Ok(consumer)` or `Err(InsufficientScope)`.
    verdicts: TokenCache<Result<String, TokenError>>,
    inactive: TokenCache<()>,
}

impl Default for OAuth2State {
    /// The default capacities, with a hash key from the process's random source.
    fn default() -> Self {
        Self::with_key(fastrand::u64(..))
    }
}

impl OAuth2State {
    /// The default capacities; `key` is the caches' hash key (random per VM).
    pub fn with_key(key: u64) -> Self {
        Self::new(TOKEN_CACHE_CAPACITY, INACTIVE_CACHE_CAPACITY, key)
    }

    pub fn new(verdict_capacity: usize, inactive_capacity: usize, key: u64) -> Self {
        Self {
            remote: None,
            remote_fingerprint: None,
            verdicts: TokenCache::new(verdict_capacity, TOKEN_CACHE_BYTES, key),
            // The same key: one index names a token in both caches.
            inactive: TokenCache::new(inactive_capacity, INACTIVE_CACHE_BYTES, key),
        }
    }

    pub fn has_remote_keys(&self) -> bool {
        self.remote.is_some()
    }

    /// Whether `fingerprint` (the SHA-256 of a fetched JWKS document) is
    /// the one the current remote keys come from: nothing to parse again.
    pub fn remote_keys_are(&self, fingerprint: &[u8; 32]) -> bool {
        self.remote.is_some() && self.remote_fingerprint.as_ref() == Some(fingerprint)
    }

    /// Installs a freshly fetched key set. Cached verdicts are dropped so
    /// that a key removed by the provider stops authorising tokens at once.
    pub fn install_remote_keys(&mut self, keys: Rc<KeySet>, fingerprint: [u8; 32]) {
        self.remote = Some(keys);
        self.remote_fingerprint = Some(fingerprint);
        self.verdicts.clear();
    }

    pub fn cached_verdicts(&self) -> usize {
        self.verdicts.len()
    }
}

/// The outcome of looking at a request's bearer token.
#[derive(Debug)]
pub enum Step {
    Accept {
        consumer: String,
        /// Answered from the verdict cache (no signature check, no call).
        cached: bool,
    },
    Reject(TokenError),
    /// The token is a JWT but no key set has been fetched yet: wait for it.
    NeedKeys,
    /// An opaque token not in the cache: ask the provider, then call
    /// [`OAuth2Auth::finish_introspection`] with the answer.
    Introspect {
        call: HttpCall,
        digest: TokenDigest,
    },
}

/// The result of an introspection round trip.
#[derive(Debug)]
pub struct Introspected {
    pub result: Result<String, TokenError>,
    /// Why the provider's answer was unusable, for the operator's log.
    pub problem: Option<String>,
}

impl OAuth2Auth {
    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn keep_token(&self) -> bool {
        self.keep_token
    }

    pub fn jwks_uri(&self) -> Option<&JwksUri> {
        self.jwks_uri.as_ref()
    }

    pub fn introspection(&self) -> Option<&Introspection> {
        self.introspection.as_ref()
    }

    /// The local reply for `error`: RFC 6750 challenge, status, short JSON body.
    pub fn denial(&self, error: TokenError) -> Denial {
        let realm = &self.realm;
        let reason = error.reason();
        match error {
            TokenError::Missing => Denial::unauthorized(
                Some(format!("Bearer realm=\"{realm}\"")),
                "unauthorized",
                reason,
            ),
            TokenError::InsufficientScope => Denial::forbidden(
                format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\", scope=\"{}\"",
                    error.description(),
                    self.required_scopes.join(" ")
                ),
                "insufficient_scope",
                reason,
            ),
            TokenError::KeysUnavailable | TokenError::IntrospectionUnavailable => {
                Denial::unavailable(reason)
            }
            _ => Denial::unauthorized(
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    error.description()
                )),
                "invalid_token",
                reason,
            ),
        }
    }

    /// Looks at the `Authorization` header value as it came (any bytes).
    /// A token verified before is recognised on its bytes, before the value
    /// is checked as text: only checked tokens are cached, and their bytes
    /// are b64token characters, so a hit is the token [`Self::authenticate`]
    /// would read. Otherwise a value that is not UTF-8 is malformed.
    pub fn authenticate_raw(
        &self,
        authorization: Option<&[u8]>,
        state: &mut OAuth2State,
        now: u64,
    ) -> Step {
        if let Some(token) = authorization.and_then(bearer_bytes) {
            if let Some(Ok(consumer)) = state.verdicts.get(token, now) {
                return Step::Accept {
                    consumer: consumer.clone(),
                    cached: true,
                };
            }
        }
        match authorization.map(std::str::from_utf8).transpose() {
            Ok(text) => self.authenticate(text, state, now),
            Err(_) => Step::Reject(TokenError::Malformed),
        }
    }

    /// Looks at the `Authorization` header value. `now` is Unix seconds.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        state: &mut OAuth2State,
        now: u64,
    ) -> Step {
        let token = match bearer_token(authorization) {
            Ok(t) => t,
            Err(e) => return Step::Reject(e),
        };
        // Only tokens that passed `check_token` are ever cached: look first.
        if let Some(verdict) = state.verdicts.get(token.as_bytes(), now) {
            return match verdict {
                Ok(consumer) => Step::Accept {
                    consumer: consumer.clone(),
                    cached: true,
                },
                Err(e) => Step::Reject(*e),
            };
        }
        if state.inactive.get(token.as_bytes(), now).is_some() {
            return Step::Reject(TokenError::Inactive);
        }
        if let Err(e) = check_token(token) {
            return Step::Reject(e);
        }

        if let Some(jwt) = &self.jwt {
            if self.introspection.is_none() || looks_like_jwt(token) {
                let keys = jwt::Keys {
                    sets: [Some(&jwt.local), state.remote.as_deref()],
                    hs256: jwt.hs256.as_ref(),
                };
                return match jwt::verify(token, &keys, &jwt.rules, now) {
                    Ok(claims) => {
                        let consumer = if self.consumer_claim == "sub" {
                            claims.subject.as_deref().and_then(usable_consumer)
                        } else {
                            claim_consumer(&claims.extra, &self.consumer_claim)
                        };
                        let Some(consumer) = consumer else {
                            return Step::Reject(TokenError::MissingClaim);
                        };
                        let verdict = if self.has_required_scopes(&claims.extra) {
                            Ok(consumer)
                        } else {
                            Err(TokenError::InsufficientScope)
                        };
                        state.verdicts.insert(
                            token.as_bytes(),
                            verdict.clone(),
                            claims.expires_at,
                            now,
                        );
                        match verdict {
                            Ok(consumer) => Step::Accept {
                                consumer,
                                cached: false,
                            },
                            Err(e) => Step::Reject(e),
                        }
                    }
                    Err(Some(e)) => Step::Reject(e),
                    Err(None) if self.jwks_uri.is_some() && state.remote.is_none() => {
                        Step::NeedKeys
                    }
                    Err(None) => Step::Reject(TokenError::UnknownKey),
                };
            }
        }
        match &self.introspection {
            Some(i) => Step::Introspect {
                call: i.call(token),
                digest: state.verdicts.index(token.as_bytes()),
            },
            None => Step::Reject(TokenError::Malformed),
        }
    }

    /// Completes a [`Step::Introspect`] with the provider's answer (`status`
    /// `None` when the call failed or timed out). `authorization` is the
    /// request's header value again: the verdict is cached for its token if
    /// that is still the token of `digest`.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_introspection(
        &self,
        digest: TokenDigest,
        authorization: Option<&str>,
        status: Option<u32>,
        body: Option<&[u8]>,
        state: &mut OAuth2State,
        now: u64,
    ) -> Introspected {
        let token = bearer_token(authorization)
            .ok()
            .filter(|t| check_token(t).is_ok() && state.verdicts.index(t.as_bytes()) == digest)
            .map(str::as_bytes);
        let answer = match parse_response(status, body) {
            Ok(a) => a,
            Err(problem) => {
                return Introspected {
                    result: Err(TokenError::IntrospectionUnavailable),
                    problem: Some(problem),
                }
            }
        };
        let cache_seconds = self.introspection.as_ref().map_or(0, |i| i.cache_seconds);
        let result = match answer {
            Answer::Inactive => {
                let ttl = cache_seconds.min(NEGATIVE_CACHE_SECONDS);
                if let Some(token) = token {
                    state
                        .inactive
                        .insert(token, (), now.saturating_add(ttl), now);
                }
                Err(TokenError::Inactive)
            }
            Answer::Active(claims) => {
                self.check_introspected(token, &claims, state, now, cache_seconds)
            }
        };
        Introspected {
            result,
            problem: None,
        }
    }

    fn check_introspected(
        &self,
        token: Option<&[u8]>,
        claims: &Map<String, Value>,
        state: &mut OAuth2State,
        now: u64,
        cache_seconds: u64,
    ) -> Result<String, TokenError> {
        let skew = self.clock_skew_seconds;
        let exp = numeric_date(claims, "exp");
        if exp.is_some_and(|exp| exp.saturating_add(skew) < now) {
            return Err(TokenError::Expired);
        }
        if numeric_date(claims, "nbf").is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(TokenError::NotYetValid);
        }
        if let (Some(issuer), Some(iss)) = (self.issuer.as_deref(), claims.get("iss")) {
            if iss.as_str() != Some(issuer) {
                return Err(TokenError::WrongIssuer);
            }
        }
        if !self.audiences.is_empty() {
            if let Some(aud) = claims.get("aud") {
                let matches = |v: &Value| {
                    v.as_str()
                        .is_some_and(|a| self.audiences.iter().any(|x| x == a))
                };
                let ok = match aud {
                    Value::Array(list) => list.iter().any(matches),
                    one => matches(one),
                };
                if !ok {
                    return Err(TokenError::WrongAudience);
                }
            }
        }
        let consumer =
            claim_consumer(claims, &self.consumer_claim).ok_or(TokenError::MissingClaim)?;
        let verdict = if self.has_required_scopes(claims) {
            Ok(consumer)
        } else {
            Err(TokenError::InsufficientScope)
        };
        let mut until = now.saturating_add(cache_seconds);
        if let Some(exp) = exp {
            until = until.min(exp);
        }
        if let Some(token) = token {
            state.verdicts.insert(token, verdict.clone(), until, now);
        }
        verdict
    }

    /// Every required scope is in `scope` (space-separated) or `scp` (array
    /// or space-separated string).
    fn has_required_scopes(&self, claims: &Map<String, Value>) -> bool {
        if self.required_scopes.is_empty() {
            return true;
        }
        let mut granted: Vec<&str> = Vec::new();
        for name in ["scope", "scp"] {
            match claims.get(name) {
                Some(Value::String(s)) => granted.extend(s.split_ascii_whitespace()),
                Some(Value::Array(items)) => granted.extend(items.iter().filter_map(Value::as_str)),
                _ => {}
            }
        }
        self.required_scopes
            .iter()
            .all(|want| granted.iter().any(|g| g == want))
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
/// Another scheme, or no header, counts as no token (RFC 6750 §3.1: no error
/// code). A token over [`MAX_TOKEN_BYTES`] is malformed; its characters are
/// checked by [`check_token`].
fn bearer_token(authorization: Option<&str>) -> Result<&str, TokenError> {
    let value = authorization.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(TokenError::Missing);
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Missing);
    }
    let token = rest.trim_start_matches(' ');
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    Ok(token)
}

/// The token of a `Bearer` value read as bytes, as [`bearer_token`] reads it
/// when the value is ASCII-trimmed; `None` when it is not `Bearer`.
fn bearer_bytes(authorization: &[u8]) -> Option<&[u8]> {
    let value = authorization.trim_ascii();
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    rest.get(start..)
}

/// RFC 6750 b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn check_token(token: &str) -> Result<(), TokenError> {
    let body = token.trim_end_matches('=');
    let b64token =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
    if body.is_empty() || !body.bytes().all(b64token) {
        return Err(TokenError::Malformed);
    }
    Ok(())
}

/// A consumer identity from a claim: a non-empty string (or integer) that is
/// safe to send upstream in a header.
fn claim_consumer(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => usable_consumer(s),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn usable_consumer(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= MAX_CONSUMER_BYTES
        && value.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    ok.then(|| value.to_string())
}

#[cfg(test)]
mod tests;
