//! HTTP Basic authentication (RFC 7617) against htpasswd lines.
//!
//! Accepted hashes: bcrypt (`$2y$`, `$2b$`, `$2a$`, what `htpasswd -B` writes)
//! and `{SHA}` (base64 of SHA-1, what Envoy's basic_auth filter takes).
//! Plaintext passwords are refused at configure time.
//!
//! bcrypt is slow by design, so an `Authorization` value that verified once is
//! remembered in a small bounded [`CredentialCache`] (see
//! [`super::verified`]: a keyed-hash index, then a constant-time comparison
//! with the stored value).

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::Deserialize;
use sha1::Sha1;
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::verified::{VerifiedCache, NEVER};
use super::{default_realm, AuthError};
use crate::validate::{realm, unique, ConfigError};

/// Standard base64 alphabet; padding optional (some clients omit it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// bcrypt costs accepted at configure time. Cost 12 is about 0.25 s of one
/// Envoy worker per first request of a credential; more would stall the worker.
pub const MIN_BCRYPT_COST: u32 = 4;
pub const MAX_BCRYPT_COST: u32 = 12;

/// How many verified credentials a VM remembers (per gateway).
pub const CREDENTIAL_CACHE_CAPACITY: usize = 1024;
/// At most this many bytes of `Authorization` values are kept (per gateway).
pub const CREDENTIAL_CACHE_BYTES: usize = 128 * 1024;

enum PasswordHash {
    /// The full modular-crypt string, e.g. `$2y$05$...`.
    Bcrypt(String),
    /// Raw SHA-1 digest of the password.
    Sha1([u8; 20]),
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordHash::Bcrypt(_) => f.write_str("Bcrypt(<redacted>)"),
            PasswordHash::Sha1(_) => f.write_str("Sha1(<redacted>)"),
        }
    }
}

#[derive(Debug)]
struct User {
    name: String,
    hash: PasswordHash,
}

/// `{"mode": "basic", ...}`: the JSON shape of this mode.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBasic {
    #[serde(default = "default_realm")]
    realm: String,
    users: Vec<String>,
}

impl RawBasic {
    pub(crate) fn build(self) -> Result<BasicAuth, ConfigError> {
        BasicAuth::new(realm("auth.realm", &self.realm)?, &self.users)
    }
}

#[derive(Debug)]
pub struct BasicAuth {
    realm: String,
    users: HashMap<String, User>,
}

impl BasicAuth {
    pub fn new(realm: String, lines: &[String]) -> Result<Self, ConfigError> {
        if lines.is_empty() {
            return Err(ConfigError::new(
                "auth.users",
                "must list at least one user",
            ));
        }
        let mut parsed = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            parsed.push(parse_htpasswd_line(&format!("auth.users[{i}]"), line)?);
        }
        unique(
            parsed.iter().map(|u| u.name.as_str()),
            |i| format!("auth.users[{i}]"),
            |name, _| format!("user \"{name}\" is listed twice"),
        )?;
        let users = parsed.into_iter().map(|u| (u.name.clone(), u)).collect();
        Ok(Self { realm, users })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Checks an `Authorization` header value. Returns the user name.
    pub fn verify<'a>(
        &'a self,
        authorization: Option<&str>,
        cache: &mut CredentialCache,
    ) -> Result<&'a str, AuthError> {
        let value = match authorization {
            Some(v) if !v.trim().is_empty() => v,
            _ => return Err(AuthError::Missing),
        };
        let (user, password) = parse_basic(value)?;
        let entry = self.users.get(user.as_str()).ok_or(AuthError::Invalid)?;
        let ok = match &entry.hash {
            PasswordHash::Sha1(expected) => {
                let actual: [u8; 20] = Sha1::digest(&password).into();
                bool::from(actual.ct_eq(expected))
            }
            PasswordHash::Bcrypt(hash) => {
                // The same header value always decodes to the same user and
                // password: the value itself is the cache's credential.
                if cache.get(value.as_bytes(), 0).is_some() {
                    true
                } else {
                    // bcrypt::verify compares in constant time; passwords over
                    // 72 bytes are truncated as every bcrypt implementation does.
                    let ok = bcrypt::verify(&password, hash).unwrap_or(false);
                    if ok {
                        cache.insert(value.as_bytes(), (), NEVER, 0);
                    }
                    ok
                }
            }
        };
        if ok {
            Ok(entry.name.as_str())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

/// Parses `Basic <base64(user:password)>`: scheme case-insensitive, split at
/// the first colon (passwords may contain colons), user must be UTF-8.
pub fn parse_basic(value: &str) -> Result<(String, Vec<u8>), AuthError> {
    let value = value.trim_start();
    let (scheme, rest) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::Malformed);
    }
    let decoded = BASE64
        .decode(rest.trim().as_bytes())
        .map_err(|_| AuthError::Malformed)?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(AuthError::Malformed)?;
    let (user, password) = decoded.split_at(colon);
    let password = password.get(1..).unwrap_or_default().to_vec();
    let user = String::from_utf8(user.to_vec()).map_err(|_| AuthError::Malformed)?;
    Ok((user, password))
}

fn parse_htpasswd_line(path: &str, line: &str) -> Result<User, ConfigError> {
    // Never echo `line` or the hash in an error: name the user at most.
    let (name, hash) = line
        .split_once(':')
        .ok_or_else(|| ConfigError::new(path, "expected an htpasswd line \"name:hash\""))?;
    if name.is_empty() {
        return Err(ConfigError::new(path, "user name must not be empty"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(ConfigError::new(
            path,
            "user name must not contain control characters",
        ));
    }
    let hash = if hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$") {
        let parts = hash.parse::<bcrypt::HashParts>().map_err(|_| {
            ConfigError::new(path, format!("user \"{name}\" has a malformed bcrypt hash"))
        })?;
        // Each first request of a credential runs bcrypt on an Envoy worker thread.
        if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&parts.get_cost()) {
            return Err(ConfigError::new(
                path,
                format!(
                    "user \"{name}\" has bcrypt cost {}; use {MIN_BCRYPT_COST} to {MAX_BCRYPT_COST} (htpasswd -B -C 5)",
                    parts.get_cost()
                ),
            ));
        }
        PasswordHash::Bcrypt(hash.to_string())
    } else if let Some(b64) = hash.strip_prefix("{SHA}") {
        let digest: [u8; 20] = BASE64
            .decode(b64.as_bytes())
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| {
                ConfigError::new(
                    path,
                    format!("user \"{name}\" has a malformed {{SHA}} hash (expected base64 of a 20-byte SHA-1 digest)"),
                )
            })?;
        PasswordHash::Sha1(digest)
    } else if hash.starts_with('$') {
        return Err(ConfigError::new(
            path,
            format!("user \"{name}\" has an unsupported hash scheme; use bcrypt (htpasswd -B) or {{SHA}} (htpasswd -s)"),
        ));
    } else {
        return Err(ConfigError::new(
            path,
            format!("user \"{name}\" has a plaintext password, which is refused; use bcrypt (htpasswd -B) or {{SHA}} (htpasswd -s)"),
        ));
    };
    Ok(User {
        name: name.to_string(),
        hash,
    })
}

/// `Authorization` values that already passed bcrypt, per gateway.
pub type CredentialCache = VerifiedCache<()>;

#[cfg(test)]
mod tests {
    use super::*;

    // htpasswd -nbB -C 4 alice 'open:sesame'  (bcrypt, cost 4)
    fn alice_bcrypt() -> String {
        bcrypt::hash_with_salt("open:sesame", 4, [7u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY)
    }
    // htpasswd -nbs bob secret  -> {SHA} base64(sha1("secret"))
    const BOB_SHA: &str = "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";

    fn auth() -> BasicAuth {
        BasicAuth::new(
            "models".into(),
            &[format!("alice:{}", alice_bcrypt()), BOB_SHA.to_string()],
        )
        .unwrap()
    }

    fn header(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    fn cache() -> CredentialCache {
        CredentialCache::new(4, 1024, 1)
    }

    #[test]
    fn sha_and_bcrypt_users_verify() {
        let a = auth();
        let mut c = cache();
        assert_eq!(a.verify(Some(&header("bob:secret")), &mut c), Ok("bob"));
        assert_eq!(
            a.verify(Some(&header("alice:open:sesame")), &mut c),
            Ok("alice")
        );
        assert_eq!(
            a.verify(Some(&header("bob:Secret")), &mut c),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.verify(Some(&header("alice:open")), &mut c),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.verify(Some(&header("carol:secret")), &mut c),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn published_bcrypt_vectors_verify() {
        // OpenBSD / John the Ripper bcrypt test vectors.
        for (password, hash) in [
            (
                "U*U",
                "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            ),
            (
                "U*U*",
                "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK",
            ),
            (
                "",
                "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy",
            ),
        ] {
            let a = BasicAuth::new("r".into(), &[format!("u:{hash}")]).unwrap();
            assert_eq!(
                a.verify(Some(&header(&format!("u:{password}"))), &mut cache()),
                Ok("u"),
                "{password:?}"
            );
        }
    }

    #[test]
    fn htpasswd_formats_2a_2b_2y_all_accepted() {
        let h = bcrypt::hash_with_salt("pw", 4, [3u8; 16]).unwrap();
        for v in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            let a =
                BasicAuth::new("r".into(), &[format!("u:{}", h.format_for_version(v))]).unwrap();
            assert_eq!(a.verify(Some(&header("u:pw")), &mut cache()), Ok("u"));
        }
    }

    #[test]
    fn scheme_is_case_insensitive_and_split_is_at_first_colon() {
        let a = auth();
        let b64 = base64::engine::general_purpose::STANDARD.encode("bob:secret");
        for v in [
            format!("basic {b64}"),
            format!("BASIC {b64}"),
            format!("Basic   {b64}"),
            format!("bAsIc {b64}"),
        ] {
            assert_eq!(a.verify(Some(&v), &mut cache()), Ok("bob"), "{v}");
        }
        assert_eq!(
            parse_basic(&header("u:a:b:c")).unwrap(),
            ("u".to_string(), b"a:b:c".to_vec())
        );
        assert_eq!(
            parse_basic(&header("u:")).unwrap(),
            ("u".to_string(), b"".to_vec())
        );
    }

    #[test]
    fn garbage_is_malformed_and_absence_is_missing() {
        let a = auth();
        let mut c = cache();
        assert_eq!(a.verify(None, &mut c), Err(AuthError::Missing));
        assert_eq!(a.verify(Some(""), &mut c), Err(AuthError::Missing));
        assert_eq!(a.verify(Some("Basic"), &mut c), Err(AuthError::Malformed));
        assert_eq!(
            a.verify(Some("Basic !!!not-base64!!!"), &mut c),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            a.verify(Some(&header("no-colon")), &mut c),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            a.verify(Some("Bearer abc"), &mut c),
            Err(AuthError::Malformed)
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode("bob:secret");
        assert_eq!(
            a.verify(Some(&format!("Basicx {b64}")), &mut c),
            Err(AuthError::Malformed)
        );
        let latin1 = base64::engine::general_purpose::STANDARD.encode(b"\xe9:secret");
        assert_eq!(
            a.verify(Some(&format!("Basic {latin1}")), &mut c),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode("bob:secret");
        assert_eq!(
            auth().verify(Some(&format!("Basic {b64}")), &mut cache()),
            Ok("bob")
        );
    }

    #[test]
    fn bcrypt_success_is_cached_and_failure_is_not() {
        let a = auth();
        let mut c = cache();
        assert_eq!(
            a.verify(Some(&header("alice:wrong")), &mut c),
            Err(AuthError::Invalid)
        );
        assert!(c.is_empty());
        assert_eq!(
            a.verify(Some(&header("alice:open:sesame")), &mut c),
            Ok("alice")
        );
        assert_eq!(c.len(), 1);
        assert_eq!(
            a.verify(Some(&header("alice:open:sesame")), &mut c),
            Ok("alice")
        );
        assert_eq!(c.len(), 1);
        // The cache is keyed by user and password together.
        assert_eq!(
            a.verify(Some(&header("alice:open:sesamE")), &mut c),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn cache_is_bounded_oldest_first() {
        let a = auth();
        let mut c = CredentialCache::new(2, 1024, 0);
        let same = header("alice:open:sesame");
        // Three spellings of one credential: three entries, the first evicted.
        for v in [
            same.clone(),
            same.replacen("Basic", "basic", 1),
            same.replacen("Basic", "Basic ", 1),
        ] {
            assert_eq!(a.verify(Some(&v), &mut c), Ok("alice"));
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(same.as_bytes(), 0).is_none());
        assert!(c
            .get(same.replacen("Basic", "basic", 1).as_bytes(), 0)
            .is_some());
    }

    #[test]
    fn config_errors_name_the_user_never_the_hash() {
        let e = BasicAuth::new("r".into(), &["alice:hunter2".into()]).unwrap_err();
        assert_eq!(e.to_string(), "auth.users[0]: user \"alice\" has a plaintext password, which is refused; use bcrypt (htpasswd -B) or {SHA} (htpasswd -s)");
        let e = BasicAuth::new(
            "r".into(),
            &["x:{SHA}abc".into(), "y:$2y$05$tooshort".into()],
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "auth.users[0]: user \"x\" has a malformed {SHA} hash (expected base64 of a 20-byte SHA-1 digest)");
        let e =
            BasicAuth::new("r".into(), &[BOB_SHA.into(), "y:$2y$05$tooshort".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "auth.users[1]: user \"y\" has a malformed bcrypt hash"
        );
        assert!(!e.to_string().contains("tooshort"));
        // A cost-13 hash (only the cost field is read at configure time).
        let slow = alice_bcrypt().replacen("$04$", "$13$", 1);
        let e = BasicAuth::new("r".into(), &[format!("s:{slow}")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "auth.users[0]: user \"s\" has bcrypt cost 13; use 4 to 12 (htpasswd -B -C 5)"
        );
        let e = BasicAuth::new("r".into(), &["z:$apr1$abc$def".into()]).unwrap_err();
        assert_eq!(e.to_string(), "auth.users[0]: user \"z\" has an unsupported hash scheme; use bcrypt (htpasswd -B) or {SHA} (htpasswd -s)");
        let e = BasicAuth::new("r".into(), &["nocolon".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "auth.users[0]: expected an htpasswd line \"name:hash\""
        );
        let e = BasicAuth::new("r".into(), &[BOB_SHA.into(), BOB_SHA.into()]).unwrap_err();
        assert_eq!(e.to_string(), "auth.users[1]: user \"bob\" is listed twice");
        let e = BasicAuth::new("r".into(), &[]).unwrap_err();
        assert_eq!(e.to_string(), "auth.users: must list at least one user");
    }

    #[test]
    fn debug_output_redacts_hashes() {
        let dbg = format!("{:?}", auth());
        assert!(dbg.contains("<redacted>"));
        assert!(!dbg.contains("$2y$") && !dbg.contains("5en6G6"), "{dbg}");
    }
}
