//! The token caches of a gateway: verdicts (accepted tokens, tokens lacking a
//! scope) and tokens the identity provider called inactive. Both are
//! [`VerifiedCache`]s with the same hash key, so one index names a token in
//! either: a keyed hash to find the slot, then a constant-time comparison
//! with the token that was checked, kept in the slot. Every entry has an
//! expiry; a lookup at or after it misses. When full, expired entries go
//! first, then the oldest.

use sha2::{Digest, Sha256};

use crate::auth::verified::VerifiedCache;

/// A cache of token verdicts.
pub type TokenCache<V> = VerifiedCache<V>;

/// A token's index in its gateway's token caches ([`VerifiedCache::index`]):
/// what the glue keeps while an introspection call is in flight. A keyed
/// hash, only meaningful to the caches that made it.
pub type TokenDigest = u64;

/// The SHA-256 of a fetched JWKS document (its fingerprint: the same
/// document is not parsed twice). Not used on the request path.
pub fn digest_bytes(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
