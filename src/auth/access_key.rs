//! Access-key authentication: the client sends a key in a header (or a query
//! parameter); the configuration holds only the key's SHA-256 digest. The
//! presented key's digest is compared with every configured digest in
//! constant time.
//!
//! A key that verified is remembered in the gateway's [`KeyCache`] (see
//! [`super::verified`]), so a repeat client costs a keyed hash and a
//! constant-time comparison with the remembered key instead of a SHA-256.
//! Only keys that match a configured digest get in, so the cache never holds
//! more entries than there are configured keys.

use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::verified::{VerifiedCache, NEVER};
use super::{default_realm, AuthError};
use crate::validate::{header_name, non_empty, realm, ConfigError, Unique};

/// The header that carries the key when `auth.header` is not set.
pub const DEFAULT_ACCESS_KEY_HEADER: &str = "x-api-key";

/// Keys that verified, with the index of the configured key they match.
pub type KeyCache = VerifiedCache<usize>;
/// At most this many bytes of verified keys are kept (per gateway).
pub const KEY_CACHE_BYTES: usize = 64 * 1024;

/// `{"mode": "access_key", ...}`: the JSON shape of this mode.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccessKey {
    #[serde(default = "default_realm")]
    realm: String,
    #[serde(default = "default_access_key_header")]
    header: String,
    #[serde(default)]
    query: Option<String>,
    keys: Vec<RawKey>,
}

/// One configured key: the consumer it identifies and the key's SHA-256 (hex).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKey {
    pub(crate) consumer: String,
    pub(crate) sha256: String,
}

fn default_access_key_header() -> String {
    DEFAULT_ACCESS_KEY_HEADER.to_string()
}

impl RawAccessKey {
    pub(crate) fn build(self) -> Result<AccessKeyAuth, ConfigError> {
        let realm = realm("auth.realm", &self.realm)?;
        let header = header_name("auth.header", &self.header)?;
        if let Some(q) = &self.query {
            non_empty("auth.query", q)?;
        }
        AccessKeyAuth::new(realm, header, self.query, &self.keys)
    }
}

struct Key {
    consumer: String,
    digest: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("consumer", &self.consumer)
            .field("sha256", &"<redacted>")
            .finish()
    }
}

#[derive(Debug)]
pub struct AccessKeyAuth {
    realm: String,
    header: String,
    query: Option<String>,
    keys: Vec<Key>,
}

impl AccessKeyAuth {
    pub(crate) fn new(
        realm: String,
        header: String,
        query: Option<String>,
        raw: &[RawKey],
    ) -> Result<Self, ConfigError> {
        if raw.is_empty() {
            return Err(ConfigError::new("auth.keys", "must list at least one key"));
        }
        let mut keys: Vec<Key> = Vec::with_capacity(raw.len());
        let mut digests = Unique::default();
        for (i, k) in raw.iter().enumerate() {
            if k.consumer.is_empty() || !k.consumer.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    format!("auth.keys[{i}].consumer"),
                    "must be non-empty visible ASCII (it is sent upstream in a header)",
                ));
            }
            let digest: [u8; 32] = hex::decode(&k.sha256)
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| {
                    ConfigError::new(
                        format!("auth.keys[{i}].sha256"),
                        "must be 64 hex characters: the SHA-256 digest of the key, not the key itself",
                    )
                })?;
            digests.check(
                i,
                digest,
                |i| format!("auth.keys[{i}].sha256"),
                |_, j| format!("same digest as auth.keys[{j}]"),
            )?;
            keys.push(Key {
                consumer: k.consumer.clone(),
                digest,
            });
        }
        Ok(Self {
            realm,
            header,
            query,
            keys,
        })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The (lowercase) header that carries the key.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The query parameter that may carry the key, if configured.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// Checks a presented key. Returns the consumer name.
    pub fn verify(&self, presented: Option<&str>, cache: &mut KeyCache) -> Result<&str, AuthError> {
        let presented = match presented {
            Some(k) if !k.is_empty() => k,
            _ => return Err(AuthError::Missing),
        };
        if let Some(key) = cache
            .get(presented.as_bytes(), 0)
            .and_then(|i| self.keys.get(*i))
        {
            return Ok(key.consumer.as_str());
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Visit every key whatever matches; remember the match as index + 1.
        let mut found: u32 = 0;
        for (i, key) in self.keys.iter().enumerate() {
            let candidate = u32::try_from(i + 1).unwrap_or(u32::MAX);
            found = u32::conditional_select(&found, &candidate, digest.ct_eq(&key.digest));
        }
        let index = found.checked_sub(1).map(|i| i as usize);
        match index.and_then(|i| Some((i, self.keys.get(i)?))) {
            Some((i, key)) => {
                cache.insert(presented.as_bytes(), i, NEVER, 0);
                Ok(key.consumer.as_str())
            }
            None => Err(AuthError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(consumer: &str, key: &str) -> RawKey {
        RawKey {
            consumer: consumer.into(),
            sha256: hex::encode(Sha256::digest(key.as_bytes())),
        }
    }

    fn auth() -> AccessKeyAuth {
        AccessKeyAuth::new(
            "r".into(),
            "x-api-key".into(),
            None,
            &[
                raw("alice", "alice-key"),
                raw("bob", "bob-key"),
                raw("alice", "alice-key-2"),
            ],
        )
        .unwrap()
    }

    fn cache() -> KeyCache {
        KeyCache::new(8, KEY_CACHE_BYTES, 3)
    }

    #[test]
    fn keys_map_to_consumers() {
        let a = auth();
        // Twice each: the second answer comes from the cache.
        let mut c = cache();
        for _ in 0..2 {
            assert_eq!(a.verify(Some("alice-key"), &mut c), Ok("alice"));
            assert_eq!(a.verify(Some("alice-key-2"), &mut c), Ok("alice"));
            assert_eq!(a.verify(Some("bob-key"), &mut c), Ok("bob"));
            assert_eq!(a.verify(Some("bob-key "), &mut c), Err(AuthError::Invalid));
            assert_eq!(a.verify(Some("mallory"), &mut c), Err(AuthError::Invalid));
            assert_eq!(a.verify(Some(""), &mut c), Err(AuthError::Missing));
            assert_eq!(a.verify(None, &mut c), Err(AuthError::Missing));
        }
    }

    #[test]
    fn only_verified_keys_are_cached() {
        let a = auth();
        let mut c = cache();
        assert_eq!(a.verify(Some("mallory"), &mut c), Err(AuthError::Invalid));
        assert!(c.is_empty());
        assert_eq!(a.verify(Some("bob-key"), &mut c), Ok("bob"));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(b"bob-key", 0), Some(&1));
        assert_eq!(a.verify(Some("bob-key"), &mut c), Ok("bob"));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn published_sha256_digest_is_accepted_in_either_case() {
        // SHA-256("abc") from FIPS 180-2, upper-case hex.
        let k = RawKey {
            consumer: "c".into(),
            sha256: "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD".into(),
        };
        let a = AccessKeyAuth::new("r".into(), "k".into(), None, &[k]).unwrap();
        assert_eq!(a.verify(Some("abc"), &mut cache()), Ok("c"));
    }

    #[test]
    fn config_errors_never_echo_the_digest() {
        let bad = RawKey {
            consumer: "c".into(),
            sha256: "my-plain-key".into(),
        };
        let e = AccessKeyAuth::new("r".into(), "k".into(), None, &[bad]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "auth.keys[0].sha256: must be 64 hex characters: the SHA-256 digest of the key, not the key itself"
        );
        let e = AccessKeyAuth::new(
            "r".into(),
            "k".into(),
            None,
            &[raw("a", "k1"), raw("b", "k1")],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "auth.keys[1].sha256: same digest as auth.keys[0]"
        );
        let e = AccessKeyAuth::new("r".into(), "k".into(), None, &[raw("", "k1")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "auth.keys[0].consumer: must be non-empty visible ASCII (it is sent upstream in a header)"
        );
        let e = AccessKeyAuth::new("r".into(), "k".into(), None, &[]).unwrap_err();
        assert_eq!(e.to_string(), "auth.keys: must list at least one key");
    }

    #[test]
    fn debug_output_redacts_digests() {
        let dbg = format!("{:?}", auth());
        assert!(
            !dbg.contains(&hex::encode(Sha256::digest(b"alice-key"))),
            "{dbg}"
        );
        assert!(dbg.contains("<redacted>"));
    }
}
