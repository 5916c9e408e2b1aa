//! The `auth.mode: "oauth2"` JSON shape and its validation. Errors name the
//! field path (`auth.jwks.keys[0].kty: ...`) and never repeat a secret.

use base64::Engine;
use serde::Deserialize;

use super::introspection::{Endpoint, Introspection, Secret};
use super::jwks::{build_key, KeySet, RawJwks, Strictness, Verifier, BASE64URL};
use super::jwt::Rules;
use super::{JwksUri, JwtConfig, OAuth2Auth};
use crate::auth::DEFAULT_REALM;
use crate::secret::{Lookup, SecretSource};
use crate::validate::{from_json, in_range, non_empty, realm, ConfigError, Unique};
use jwt_simple::prelude::HS256Key;

pub const DEFAULT_REFRESH_SECONDS: u64 = 300;
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_CACHE_SECONDS: u64 = 30;
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
pub const DEFAULT_CONSUMER_CLAIM: &str = "sub";
const MAX_CLOCK_SKEW_SECONDS: u64 = 600;
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_REFRESH_SECONDS: u64 = 86_400;
const MAX_CACHE_SECONDS: u64 = 3_600;
const MIN_HS256_SECRET_BYTES: usize = 32;

/// The whole plugin configuration, read a second time for its `auth` object
/// only (the first pass has validated everything else).
#[derive(Deserialize)]
struct AuthOnly {
    auth: RawOAuth2,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOAuth2 {
    /// `"oauth2"`, already matched by the first pass.
    #[serde(rename = "mode")]
    _mode: serde::de::IgnoredAny,
    #[serde(default)]
    realm: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    jwks_uri: Option<RawJwksUri>,
    #[serde(default)]
    jwks: Option<RawJwks>,
    #[serde(default)]
    hs256_secret: Option<SecretSource>,
    #[serde(default)]
    introspection: Option<RawIntrospection>,
    #[serde(default)]
    required_scopes: Vec<String>,
    #[serde(default)]
    clock_skew_seconds: Option<u64>,
    #[serde(default)]
    consumer_claim: Option<String>,
    #[serde(default)]
    keep_token: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwksUri {
    cluster: String,
    path: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    refresh_seconds: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntrospection {
    cluster: String,
    path: String,
    #[serde(default)]
    authority: Option<String>,
    client_id: String,
    client_secret: SecretSource,
    #[serde(default)]
    cache_seconds: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Reads and validates the `auth` object of a configuration whose
/// `auth.mode` is `"oauth2"`. It is read from the original bytes so that
/// errors keep their field paths (serde's internally tagged enums lose them).
/// Secrets given as `{"env": "NAME"}` are looked up with `env`.
pub(crate) fn parse(config: &[u8], env: Lookup<'_>) -> Result<OAuth2Auth, ConfigError> {
    let raw: AuthOnly = from_json(config)?;
    raw.auth.build(env)
}

impl RawOAuth2 {
    /// Checks in the order an operator reads them: realm, key sources and
    /// endpoints, then the claims rules.
    fn build(self, env: Lookup<'_>) -> Result<OAuth2Auth, ConfigError> {
        let realm = realm("auth.realm", self.realm.as_deref().unwrap_or(DEFAULT_REALM))?;
        let local_keys = self.jwks.as_ref().map(local_keys).transpose()?;
        let hs256 = self
            .hs256_secret
            .as_ref()
            .map(|s| hs256_key(s, env))
            .transpose()?;
        let jwks_uri = self.jwks_uri.map(RawJwksUri::build).transpose()?;
        let introspection = self.introspection.map(|i| i.build(env)).transpose()?;

        let verifies_jwts = local_keys.is_some() || jwks_uri.is_some() || hs256.is_some();
        if !verifies_jwts && introspection.is_none() {
            return Err(ConfigError::new(
                "auth",
                "oauth2 needs at least one of jwks, jwks_uri, hs256_secret or introspection",
            ));
        }
        let local = local_keys.unwrap_or_default();
        if local.is_empty() && self.jwks.is_some() && jwks_uri.is_none() && hs256.is_none() {
            return Err(ConfigError::new(
                "auth.jwks.keys",
                "must list at least one key (or add jwks_uri to fetch them)",
            ));
        }

        let issuer = issuer(self.issuer, verifies_jwts)?;
        audiences(&self.audiences, verifies_jwts)?;
        required_scopes(&self.required_scopes)?;
        let clock_skew_seconds = self
            .clock_skew_seconds
            .unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
        in_range(
            "auth.clock_skew_seconds",
            clock_skew_seconds,
            0,
            MAX_CLOCK_SKEW_SECONDS,
        )?;
        let consumer_claim = consumer_claim(self.consumer_claim)?;

        let jwt = verifies_jwts.then(|| JwtConfig {
            rules: Rules::new(
                issuer.as_deref().unwrap_or_default(),
                &self.audiences,
                clock_skew_seconds,
            ),
            local,
            hs256,
        });
        Ok(OAuth2Auth {
            realm,
            jwt,
            jwks_uri,
            introspection,
            issuer,
            audiences: self.audiences,
            clock_skew_seconds,
            required_scopes: self.required_scopes,
            consumer_claim,
            keep_token: self.keep_token,
        })
    }
}

/// The configured `jwks`: every key must be usable.
fn local_keys(jwks: &RawJwks) -> Result<KeySet, ConfigError> {
    let mut set = KeySet::default();
    for (i, jwk) in jwks.keys.iter().enumerate() {
        let entries = build_key(jwk, Strictness::Config).map_err(|e| {
            ConfigError::new(format!("auth.jwks.keys[{i}].{}", e.member), e.message)
        })?;
        set.add_key(entries);
    }
    Ok(set)
}

fn hs256_key(secret: &SecretSource, env: Lookup<'_>) -> Result<Verifier, ConfigError> {
    let secret = Secret::new(secret.resolve("auth.hs256_secret", env)?);
    let bytes = BASE64URL
        .decode(secret.expose().as_bytes())
        .ok()
        .filter(|b| b.len() >= MIN_HS256_SECRET_BYTES)
        .ok_or_else(|| {
            ConfigError::new(
                "auth.hs256_secret",
                format!("must be base64url of at least {MIN_HS256_SECRET_BYTES} random bytes"),
            )
        })?;
    Ok(Verifier::Hs256(HS256Key::from_bytes(&bytes)))
}

impl RawJwksUri {
    fn build(self) -> Result<JwksUri, ConfigError> {
        let endpoint = endpoint(
            "auth.jwks_uri",
            self.cluster,
            self.path,
            self.authority,
            self.timeout_ms,
        )?;
        let refresh_seconds = self.refresh_seconds.unwrap_or(DEFAULT_REFRESH_SECONDS);
        in_range(
            "auth.jwks_uri.refresh_seconds",
            refresh_seconds,
            1,
            MAX_REFRESH_SECONDS,
        )?;
        Ok(JwksUri {
            endpoint,
            refresh_seconds,
        })
    }
}

impl RawIntrospection {
    fn build(self, env: Lookup<'_>) -> Result<Introspection, ConfigError> {
        let endpoint = endpoint(
            "auth.introspection",
            self.cluster,
            self.path,
            self.authority,
            self.timeout_ms,
        )?;
        non_empty("auth.introspection.client_id", &self.client_id)?;
        let client_secret = Secret::new(
            self.client_secret
                .resolve("auth.introspection.client_secret", env)?,
        );
        non_empty("auth.introspection.client_secret", client_secret.expose())?;
        let cache_seconds = self.cache_seconds.unwrap_or(DEFAULT_CACHE_SECONDS);
        in_range(
            "auth.introspection.cache_seconds",
            cache_seconds,
            0,
            MAX_CACHE_SECONDS,
        )?;
        Ok(Introspection::new(
            endpoint,
            &self.client_id,
            &client_secret,
            cache_seconds,
        ))
    }
}

fn issuer(issuer: Option<String>, verifies_jwts: bool) -> Result<Option<String>, ConfigError> {
    match issuer {
        Some(i) => {
            non_empty("auth.issuer", &i)?;
            Ok(Some(i))
        }
        None if verifies_jwts => Err(ConfigError::new(
            "auth.issuer",
            "is required to verify JWTs (jwks, jwks_uri or hs256_secret)",
        )),
        None => Ok(None),
    }
}

fn audiences(audiences: &[String], verifies_jwts: bool) -> Result<(), ConfigError> {
    let mut seen = Unique::default();
    for (i, aud) in audiences.iter().enumerate() {
        let path = |i| format!("auth.audiences[{i}]");
        non_empty(&path(i), aud)?;
        seen.check(i, aud, path, |aud, j| {
            format!(
                "\"{}\" is already listed at auth.audiences[{j}]",
                aud.escape_debug()
            )
        })?;
    }
    if verifies_jwts && audiences.is_empty() {
        return Err(ConfigError::new(
            "auth.audiences",
            "must list at least one audience to verify JWTs (tokens for other services must not pass)",
        ));
    }
    Ok(())
}

fn required_scopes(scopes: &[String]) -> Result<(), ConfigError> {
    let mut seen = Unique::default();
    for (i, scope) in scopes.iter().enumerate() {
        let path = |i| format!("auth.required_scopes[{i}]");
        // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            return Err(ConfigError::new(
                path(i),
                format!(
                    "\"{}\" is not a valid scope (visible ASCII without spaces, quotes or backslashes)",
                    scope.escape_debug()
                ),
            ));
        }
        seen.check(i, scope, path, |scope, j| {
            format!("\"{scope}\" is already listed at auth.required_scopes[{j}]")
        })?;
    }
    Ok(())
}

fn consumer_claim(claim: Option<String>) -> Result<String, ConfigError> {
    let claim = claim.unwrap_or_else(|| DEFAULT_CONSUMER_CLAIM.to_string());
    non_empty("auth.consumer_claim", &claim)?;
    if matches!(
        claim.as_str(),
        "iss" | "aud" | "exp" | "nbf" | "iat" | "jti" | "nonce"
    ) {
        return Err(ConfigError::new(
            "auth.consumer_claim",
            format!(
                "\"{claim}\" does not identify a consumer; use \"sub\" or a claim such as \"client_id\""
            ),
        ));
    }
    if !claim
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    {
        return Err(ConfigError::new(
            "auth.consumer_claim",
            format!(
                "\"{}\" is not a valid claim name (visible ASCII without quotes or backslashes)",
                claim.escape_debug()
            ),
        ));
    }
    Ok(claim)
}

fn endpoint(
    prefix: &str,
    cluster: String,
    path: String,
    authority: Option<String>,
    timeout_ms: Option<u64>,
) -> Result<Endpoint, ConfigError> {
    non_empty(&format!("{prefix}.cluster"), &cluster)?;
    if !cluster.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::new(
            format!("{prefix}.cluster"),
            format!("\"{}\" is not a valid cluster name", cluster.escape_debug()),
        ));
    }
    if !path.starts_with('/') || !path.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::new(
            format!("{prefix}.path"),
            format!(
                "\"{}\" must start with \"/\" and contain only visible ASCII",
                path.escape_debug()
            ),
        ));
    }
    let authority = match authority {
        Some(a) if a.is_empty() || !a.chars().all(|c| c.is_ascii_graphic()) => {
            return Err(ConfigError::new(
                format!("{prefix}.authority"),
                format!("\"{}\" is not a valid host name", a.escape_debug()),
            ))
        }
        Some(a) => a,
        None => cluster.clone(),
    };
    let timeout_ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    in_range(
        &format!("{prefix}.timeout_ms"),
        timeout_ms,
        1,
        MAX_TIMEOUT_MS,
    )?;
    Ok(Endpoint {
        cluster,
        path,
        authority,
        timeout_ms,
    })
}
