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
//!
//! A user that does not exist costs the same bcrypt work as a wrong password
//! (a decoy verification against a fixed hash of the users' usual cost), so
//! response times do not tell which user names exist. The decoy work is
//! capped per VM ([`DECOY_WORK_PER_SECOND`]) so that unknown names are not a
//! free way to make a worker spend its time on bcrypt.
//!
//! The `users` list takes htpasswd lines, or `{"env": "NAME"}`: an
//! environment variable of the VM holding htpasswd lines (a file's content).

use std::collections::HashMap;
use std::fmt;
use std::hint::black_box;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::Deserialize;
use sha1::Sha1;
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::verified::{VerifiedCache, NEVER};
use super::{default_realm, AuthError};
use crate::secret::{Lookup, SecretSource};
use crate::validate::{realm, ConfigError, Unique};

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

/// The decoy bcrypt work a VM may do per second for unknown users, in units
/// of `2^cost` (one bcrypt at cost `c` is `2^c` units, as bcrypt's work
/// doubles with each cost step). 2^11 is half a cost-12 verification, 64 at
/// cost 5, 128 at cost 4 per second: about an eighth of one Envoy worker's
/// time whatever the cost (cost 12 takes about 0.25 s there). Beyond it,
/// unknown users are refused without bcrypt.
pub const DECOY_WORK_PER_SECOND: u64 = 1 << 11;

/// A syntactically valid bcrypt salt and digest (the OpenBSD test vector of
/// "U*U"); the decoy hash is `$2b$<cost>$` followed by it. Verifying any
/// password against it costs exactly what a real hash of that cost costs.
const DECOY_SALT_AND_DIGEST: &str = "CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

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
    /// htpasswd lines, or `{"env": "NAME"}` for a variable holding several.
    users: Vec<SecretSource>,
}

impl RawBasic {
    pub(crate) fn build(self, env: Lookup<'_>) -> Result<BasicAuth, ConfigError> {
        let realm = realm("auth.realm", &self.realm)?;
        let mut lines = Vec::with_capacity(self.users.len());
        for (i, source) in self.users.iter().enumerate() {
            let path = format!("auth.users[{i}]");
            let name = match source {
                SecretSource::Inline(line) => {
                    lines.push((path, line.clone()));
                    continue;
                }
                SecretSource::Env(name) => name,
            };
            // An htpasswd file: one `name:hash` per line; blank lines and
            // `#` comments are skipped, as Apache's htpasswd reader does.
            let text = source.resolve(&path, env)?;
            let before = lines.len();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if !line.is_empty() && !line.starts_with('#') {
                    lines.push((format!("{path} ({name} line {})", n + 1), line.to_string()));
                }
            }
            if lines.len() == before {
                return Err(ConfigError::new(
                    path,
                    format!("environment variable {name} has no htpasswd line"),
                ));
            }
        }
        BasicAuth::from_lines(realm, lines)
    }
}

#[derive(Debug)]
pub struct BasicAuth {
    realm: String,
    users: Vec<User>,
    /// Index into `users` by name.
    by_name: HashMap<String, usize>,
    /// What an unknown user is checked against: a bcrypt hash of the most
    /// common configured cost, or `None` when no user has a bcrypt hash.
    decoy: Option<Decoy>,
}

/// The fixed bcrypt hash unknown users are verified against.
struct Decoy {
    hash: String,
    /// `2^cost`: the work of one verification, in [`DECOY_WORK_PER_SECOND`] units.
    work: u64,
}

impl fmt::Debug for Decoy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoy").field("work", &self.work).finish()
    }
}

impl Decoy {
    /// At the cost most users have (the higher one on a tie), so that an
    /// unknown name costs what a wrong password of a typical user costs.
    fn for_users<'a>(users: impl Iterator<Item = &'a User>) -> Option<Decoy> {
        let mut count: HashMap<u32, usize> = HashMap::new();
        for u in users {
            if let PasswordHash::Bcrypt(hash) = &u.hash {
                if let Ok(parts) = hash.parse::<bcrypt::HashParts>() {
                    *count.entry(parts.get_cost()).or_default() += 1;
                }
            }
        }
        let (cost, _) = count.into_iter().max_by_key(|&(cost, n)| (n, cost))?;
        Some(Decoy {
            hash: format!("$2b${cost:02}${DECOY_SALT_AND_DIGEST}"),
            work: 1u64 << cost.min(31),
        })
    }
}

impl BasicAuth {
    /// From htpasswd lines; errors name `auth.users[i]`.
    pub fn new(realm: String, lines: &[String]) -> Result<Self, ConfigError> {
        let lines = lines
            .iter()
            .enumerate()
            .map(|(i, line)| (format!("auth.users[{i}]"), line.clone()))
            .collect();
        Self::from_lines(realm, lines)
    }

    /// From `(path for errors, htpasswd line)` pairs.
    fn from_lines(realm: String, lines: Vec<(String, String)>) -> Result<Self, ConfigError> {
        if lines.is_empty() {
            return Err(ConfigError::new(
                "auth.users",
                "must list at least one user",
            ));
        }
        let mut users = Vec::with_capacity(lines.len());
        let mut by_name = HashMap::with_capacity(lines.len());
        let mut names = Unique::default();
        for (i, (path, line)) in lines.iter().enumerate() {
            let user = parse_htpasswd_line(path, line)?;
            names.check(
                i,
                user.name.clone(),
                |_| path.clone(),
                |name, _| format!("user \"{name}\" is listed twice"),
            )?;
            by_name.insert(user.name.clone(), users.len());
            users.push(user);
        }
        let decoy = Decoy::for_users(users.iter());
        Ok(Self {
            realm,
            users,
            by_name,
            decoy,
        })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Checks an `Authorization` header value. Returns the user name. `now`
    /// (Unix seconds) paces the decoy work for unknown users.
    pub fn verify<'a>(
        &'a self,
        authorization: Option<&str>,
        cache: &mut CredentialCache,
        now: u64,
    ) -> Result<&'a str, AuthError> {
        let value = match authorization {
            Some(v) if !v.trim().is_empty() => v,
            _ => return Err(AuthError::Missing),
        };
        // The same header value always decodes to the same user and
        // password: a value that passed bcrypt before is the cache's
        // credential, and its user is known without decoding it again.
        if let Some(user) = cache.get(value.as_bytes()).and_then(|&i| self.users.get(i)) {
            return Ok(user.name.as_str());
        }
        let (user, password) = parse_basic(value)?;
        let Some((index, entry)) = self
            .by_name
            .get(user.as_str())
            .and_then(|&i| Some((i, self.users.get(i)?)))
        else {
            self.decoy(&password, cache, now);
            return Err(AuthError::Invalid);
        };
        let ok = match &entry.hash {
            PasswordHash::Sha1(expected) => {
                let actual: [u8; 20] = Sha1::digest(&password).into();
                bool::from(actual.ct_eq(expected))
            }
            PasswordHash::Bcrypt(hash) => {
                // bcrypt::verify compares in constant time; passwords over
                // 72 bytes are truncated as every bcrypt implementation does.
                cache.bcrypt_runs += 1;
                let ok = bcrypt::verify(&password, hash).unwrap_or(false);
                if ok {
                    cache.insert(value.as_bytes(), index);
                }
                ok
            }
        };
        if ok {
            Ok(entry.name.as_str())
        } else {
            Err(AuthError::Invalid)
        }
    }

    /// The work a wrong password would have cost, for a user that does not
    /// exist: bcrypt against the decoy while the VM's decoy budget allows,
    /// else nothing (with only `{SHA}` users, one SHA-1 like theirs).
    fn decoy(&self, password: &[u8], cache: &mut CredentialCache, now: u64) {
        match &self.decoy {
            Some(decoy) => {
                if cache.budget.take(now, decoy.work) {
                    cache.bcrypt_runs += 1;
                    black_box(bcrypt::verify(password, black_box(&decoy.hash)).ok());
                }
            }
            None => {
                black_box(Sha1::digest(password));
            }
        }
    }
}

/// A token bucket of decoy work: refilled with [`DECOY_WORK_PER_SECOND`]
/// units per second, holding at most one second's worth (or one verification,
/// if that is more).
#[derive(Debug, Clone)]
struct DecoyBudget {
    units: u64,
    /// Unix seconds of the last refill.
    last: u64,
}

impl Default for DecoyBudget {
    fn default() -> Self {
        // Full: the first take tops it up to the capacity.
        Self {
            units: u64::MAX,
            last: 0,
        }
    }
}

impl DecoyBudget {
    /// Takes `work` units if there are that many.
    fn take(&mut self, now: u64, work: u64) -> bool {
        let capacity = DECOY_WORK_PER_SECOND.max(work);
        let refill = now
            .saturating_sub(self.last)
            .saturating_mul(DECOY_WORK_PER_SECOND);
        self.units = self.units.saturating_add(refill).min(capacity);
        self.last = self.last.max(now);
        if self.units >= work {
            self.units -= work;
            true
        } else {
            false
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

/// The per-VM (per gateway) state of Basic authentication: the `Authorization`
/// values that already passed bcrypt, and the budget of decoy work for
/// unknown users.
pub struct CredentialCache {
    /// Each verified value's user (index into `BasicAuth::users`).
    verified: VerifiedCache<usize>,
    budget: DecoyBudget,
    /// bcrypt verifications run, real and decoy (read by the tests).
    bcrypt_runs: u64,
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCache")
            .field("len", &self.verified.len())
            .finish_non_exhaustive()
    }
}

impl CredentialCache {
    /// At most `capacity` values and `max_bytes` of them; `key` seeds the index hash.
    pub fn new(capacity: usize, max_bytes: usize, key: u64) -> Self {
        Self {
            verified: VerifiedCache::new(capacity, max_bytes, key),
            budget: DecoyBudget::default(),
            bcrypt_runs: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.verified.len()
    }

    pub fn is_empty(&self) -> bool {
        self.verified.is_empty()
    }

    /// The user of a value that verified (entries never expire).
    fn get(&mut self, credential: &[u8]) -> Option<&usize> {
        self.verified.get(credential, 0)
    }

    fn insert(&mut self, credential: &[u8], user: usize) {
        self.verified.insert(credential, user, NEVER, 0);
    }
}

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
        assert_eq!(a.verify(Some(&header("bob:secret")), &mut c, 0), Ok("bob"));
        assert_eq!(
            a.verify(Some(&header("alice:open:sesame")), &mut c, 0),
            Ok("alice")
        );
        assert_eq!(
            a.verify(Some(&header("bob:Secret")), &mut c, 0),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.verify(Some(&header("alice:open")), &mut c, 0),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.verify(Some(&header("carol:secret")), &mut c, 0),
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
                a.verify(Some(&header(&format!("u:{password}"))), &mut cache(), 0),
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
            assert_eq!(a.verify(Some(&header("u:pw")), &mut cache(), 0), Ok("u"));
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
            assert_eq!(a.verify(Some(&v), &mut cache(), 0), Ok("bob"), "{v}");
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
        assert_eq!(a.verify(None, &mut c, 0), Err(AuthError::Missing));
        assert_eq!(a.verify(Some(""), &mut c, 0), Err(AuthError::Missing));
        assert_eq!(
            a.verify(Some("Basic"), &mut c, 0),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            a.verify(Some("Basic !!!not-base64!!!"), &mut c, 0),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            a.verify(Some(&header("no-colon")), &mut c, 0),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            a.verify(Some("Bearer abc"), &mut c, 0),
            Err(AuthError::Malformed)
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode("bob:secret");
        assert_eq!(
            a.verify(Some(&format!("Basicx {b64}")), &mut c, 0),
            Err(AuthError::Malformed)
        );
        let latin1 = base64::engine::general_purpose::STANDARD.encode(b"\xe9:secret");
        assert_eq!(
            a.verify(Some(&format!("Basic {latin1}")), &mut c, 0),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode("bob:secret");
        assert_eq!(
            auth().verify(Some(&format!("Basic {b64}")), &mut cache(), 0),
            Ok("bob")
        );
    }

    #[test]
    fn bcrypt_success_is_cached_and_failure_is_not() {
        let a = auth();
        let mut c = cache();
        assert_eq!(
            a.verify(Some(&header("alice:wrong")), &mut c, 0),
            Err(AuthError::Invalid)
        );
        assert!(c.is_empty());
        assert_eq!(
            a.verify(Some(&header("alice:open:sesame")), &mut c, 0),
            Ok("alice")
        );
        assert_eq!(c.len(), 1);
        assert_eq!(
            a.verify(Some(&header("alice:open:sesame")), &mut c, 0),
            Ok("alice")
        );
        assert_eq!(c.len(), 1);
        // The cache is keyed by user and password together.
        assert_eq!(
            a.verify(Some(&header("alice:open:sesamE")), &mut c, 0),
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
            assert_eq!(a.verify(Some(&v), &mut c, 0), Ok("alice"));
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(same.as_bytes()).is_none());
        assert!(c
            .get(same.replacen("Basic", "basic", 1).as_bytes())
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
    fn an_unknown_user_costs_one_bcrypt_like_a_wrong_password() {
        let a = auth();
        // The decoy has the cost of alice's hash (4), the only bcrypt user.
        assert_eq!(a.decoy.as_ref().map(|d| d.work), Some(1 << 4));
        let mut c = cache();
        assert_eq!(
            a.verify(Some(&header("alice:wrong")), &mut c, 0),
            Err(AuthError::Invalid)
        );
        assert_eq!(c.bcrypt_runs, 1);
        assert_eq!(
            a.verify(Some(&header("mallory:wrong")), &mut c, 0),
            Err(AuthError::Invalid)
        );
        assert_eq!(c.bcrypt_runs, 2, "the unknown user ran the decoy");
        // {SHA} users and malformed credentials run no bcrypt.
        let _ = a.verify(Some(&header("bob:wrong")), &mut c, 0);
        let _ = a.verify(Some("Basic !!"), &mut c, 0);
        assert_eq!(c.bcrypt_runs, 2);
        // The decoy never authenticates anyone, whatever the password.
        assert_eq!(
            a.verify(Some(&header("mallory:U*U")), &mut c, 0),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn the_decoy_has_the_most_common_cost() {
        let hash = |cost| {
            bcrypt::hash_with_salt("pw", cost, [3u8; 16])
                .unwrap()
                .format_for_version(bcrypt::Version::TwoY)
        };
        let decoy_work = |lines: &[String]| {
            BasicAuth::new("r".into(), lines)
                .unwrap()
                .decoy
                .map(|d| d.work)
        };
        let (h4, h5) = (hash(4), hash(5));
        assert_eq!(
            decoy_work(&[format!("a:{h4}"), format!("b:{h5}"), format!("c:{h5}")]),
            Some(1 << 5)
        );
        assert_eq!(
            decoy_work(&[format!("a:{h4}"), format!("b:{h4}"), format!("c:{h5}")]),
            Some(1 << 4)
        );
        // A tie goes to the higher cost.
        assert_eq!(
            decoy_work(&[format!("a:{h4}"), format!("b:{h5}")]),
            Some(1 << 5)
        );
        assert_eq!(decoy_work(&[BOB_SHA.to_string()]), None);
        // The decoy is a hash bcrypt accepts, of that cost.
        let a = BasicAuth::new("r".into(), &[format!("a:{h5}")]).unwrap();
        let decoy = a.decoy.unwrap();
        assert_eq!(
            decoy.hash.parse::<bcrypt::HashParts>().unwrap().get_cost(),
            5
        );
        assert!(!bcrypt::verify("pw", &decoy.hash).unwrap());
    }

    #[test]
    fn decoy_work_is_paced_per_second() {
        // Cost 4 (16 units): 128 decoys a second, no more, refilled each second.
        let mut b = DecoyBudget::default();
        let now = 1_700_000_000;
        assert_eq!((0..200).filter(|_| b.take(now, 16)).count(), 128);
        assert!(!b.take(now, 16));
        assert_eq!((0..200).filter(|_| b.take(now + 1, 16)).count(), 128);
        // Idle time does not pile up more than a second's worth.
        assert_eq!((0..2000).filter(|_| b.take(now + 100, 16)).count(), 128);
        // A clock going back refills nothing.
        assert!(!b.take(now, 16));
        // Cost 12 (4096 units, more than a second's worth): one every two seconds.
        let mut b = DecoyBudget::default();
        assert!(b.take(now, 4096));
        assert!(!b.take(now, 4096));
        assert!(!b.take(now + 1, 4096));
        assert!(b.take(now + 2, 4096));
    }

    #[test]
    fn past_the_budget_unknown_users_skip_the_decoy_but_wrong_passwords_never_skip_bcrypt() {
        let a = auth();
        let mut c = cache();
        c.budget = DecoyBudget { units: 0, last: 5 };
        assert_eq!(
            a.verify(Some(&header("mallory:x")), &mut c, 5),
            Err(AuthError::Invalid)
        );
        assert_eq!(c.bcrypt_runs, 0);
        assert_eq!(
            a.verify(Some(&header("alice:x")), &mut c, 5),
            Err(AuthError::Invalid)
        );
        assert_eq!(c.bcrypt_runs, 1);
        // A second later the budget is back.
        let _ = a.verify(Some(&header("mallory:x")), &mut c, 6);
        assert_eq!(c.bcrypt_runs, 2);
    }

    fn from_config(users: &str, vars: &[(&str, &str)]) -> Result<BasicAuth, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let raw: RawBasic =
            crate::validate::from_json(format!(r#"{{"users":{users}}}"#).as_bytes())
                .map_err(|e| e.to_string())?;
        raw.build(&|name| vars.get(name).cloned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn users_from_an_environment_variable_holding_htpasswd_lines() {
        let file = format!(
            "# canary-gate users\r\nalice:{}\r\n\r\n  {BOB_SHA}  \n",
            alice_bcrypt()
        );
        let a = from_config(
            r#"[{"env":"HTPASSWD"}, "carol:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="]"#,
            &[("HTPASSWD", &file)],
        )
        .unwrap();
        let mut c = cache();
        assert_eq!(
            a.verify(Some(&header("alice:open:sesame")), &mut c, 0),
            Ok("alice")
        );
        assert_eq!(a.verify(Some(&header("bob:secret")), &mut c, 0), Ok("bob"));
        assert_eq!(
            a.verify(Some(&header("carol:secret")), &mut c, 0),
            Ok("carol")
        );
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("$2y$") && !dbg.contains("5en6G6"), "{dbg}");
    }

    #[test]
    fn htpasswd_variable_errors_name_the_item_the_variable_and_the_line() {
        let e = |users: &str, vars: &[(&str, &str)]| from_config(users, vars).unwrap_err();
        assert_eq!(
            e(r#"[{"env":"HTPASSWD"}]"#, &[]),
            "auth.users[0]: environment variable HTPASSWD is not set"
        );
        assert_eq!(
            e(r#"[{"env":"HTPASSWD"}]"#, &[("HTPASSWD", "\n")]),
            "auth.users[0]: environment variable HTPASSWD is empty"
        );
        assert_eq!(
            e(r#"[{"env":"HTPASSWD"}]"#, &[("HTPASSWD", "# nobody\n\n")]),
            "auth.users[0]: environment variable HTPASSWD has no htpasswd line"
        );
        assert_eq!(
            e(
                r#"[{"env":"HTPASSWD"}]"#,
                &[("HTPASSWD", "# users\nbob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\nmallory:hunter2\n")]
            ),
            "auth.users[0] (HTPASSWD line 3): user \"mallory\" has a plaintext password, which is refused; use bcrypt (htpasswd -B) or {SHA} (htpasswd -s)"
        );
        assert_eq!(
            e(
                r#"[{"env":"A"}, {"env":"B"}]"#,
                &[("A", BOB_SHA), ("B", BOB_SHA)]
            ),
            "auth.users[1] (B line 1): user \"bob\" is listed twice"
        );
        assert_eq!(
            e(r#"["x", {"file":"/etc/htpasswd"}]"#, &[]),
            "users[1]: must be a string or {\"env\": \"NAME\"}"
        );
    }

    #[test]
    fn debug_output_redacts_hashes() {
        let dbg = format!("{:?}", auth());
        assert!(dbg.contains("<redacted>"));
        assert!(!dbg.contains("$2y$") && !dbg.contains("5en6G6"), "{dbg}");
    }
}
