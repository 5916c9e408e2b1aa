//! A bounded cache of token verdicts, keyed by the SHA-256 digest of the token
//! (the token itself is never stored). Every entry has an expiry; a lookup at
//! or after it misses. When full, expired entries go first, then the oldest.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    digest_bytes(token.as_bytes())
}

pub fn digest_bytes(bytes: &[u8]) -> TokenDigest {
    Sha256::digest(bytes).into()
}

struct Slot<V> {
    expires_at: u64,
    seq: u64,
    value: V,
}

pub struct TokenCache<V> {
    map: HashMap<TokenDigest, Slot<V>>,
    capacity: usize,
    seq: u64,
}

impl<V> fmt::Debug for TokenCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<V> TokenCache<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            capacity,
            seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The value for `key` if it has not expired at `now` (seconds).
    pub fn get(&mut self, key: &TokenDigest, now: u64) -> Option<&V> {
        let expired = self.map.get(key).map(|s| s.expires_at <= now)?;
        if expired {
            self.map.remove(key);
            return None;
        }
        self.map.get(key).map(|s| &s.value)
    }

    /// Remembers `value` until `expires_at` (exclusive). Entries already
    /// expired at `now` are not stored.
    pub fn insert(&mut self, key: TokenDigest, value: V, expires_at: u64, now: u64) {
        if self.capacity == 0 || expires_at <= now {
            return;
        }
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.map.retain(|_, s| s.expires_at > now);
            if self.map.len() >= self.capacity {
                let oldest = self.map.iter().min_by_key(|(_, s)| s.seq).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.map.remove(&k);
                }
            }
        }
        self.seq = self.seq.wrapping_add(1);
        self.map.insert(
            key,
            Slot {
                expires_at,
                seq: self.seq,
                value,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_are_never_stored_past_expiry() {
        let mut c = TokenCache::new(4);
        c.insert(digest("a"), 1, 100, 50);
        assert_eq!(c.get(&digest("a"), 99), Some(&1));
        assert_eq!(c.get(&digest("a"), 100), None);
        assert!(c.is_empty());
        c.insert(digest("b"), 2, 100, 100);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_expired_first_then_oldest() {
        let mut c = TokenCache::new(3);
        c.insert(digest("a"), 1, 10, 0);
        c.insert(digest("b"), 2, 100, 0);
        c.insert(digest("c"), 3, 100, 0);
        // "a" has expired at 20: it makes room.
        c.insert(digest("d"), 4, 100, 20);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&digest("b"), 20), Some(&2));
        // Nothing expired: the oldest ("b") goes.
        c.insert(digest("e"), 5, 100, 20);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&digest("b"), 20), None);
        assert_eq!(c.get(&digest("c"), 20), Some(&3));
        assert_eq!(c.get(&digest("e"), 20), Some(&5));
        // Replacing an existing key does not evict.
        c.insert(digest("e"), 6, 100, 20);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&digest("e"), 20), Some(&6));
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut c = TokenCache::new(0);
        c.insert(digest("a"), 1, 10, 0);
        assert!(c.is_empty());
    }
}
