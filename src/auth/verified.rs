//! A bounded cache of credentials that already passed their full check (a
//! bcrypt hash, an access key's SHA-256 digest, a JWT signature, an
//! introspection call), so that a repeat client costs a hash-table lookup
//! instead of the check.
//!
//! How a hit is found and confirmed:
//! - the table is indexed by a fast keyed hash of the credential (foldhash,
//!   with a random 64-bit key per cache, drawn when the VM's state is made);
//! - a slot holds an exact copy of the credential that was verified, and a
//!   lookup is a hit only if the presented bytes equal it, compared in
//!   constant time ([`same_bytes`]). The index is never trusted on its own: two
//!   credentials with the same index just share a slot, and the later one
//!   verified replaces the earlier.
//!
//! Only credentials that passed (or, for the inactive-token cache, that the
//! identity provider answered for) are stored, so a client cannot fill the
//! table with guesses. Timing tells a client whether its credential is cached,
//! which it learns anyway from the answer; the index is a keyed hash, so a
//! collision says nothing about a cached credential's bytes.
//!
//! Memory: at most `capacity` entries and at most `max_bytes` of stored
//! credentials, whichever comes first; oldest entries go first (expired ones
//! before them). Stored copies are zeroed when they are evicted, replaced,
//! cleared or dropped. A credential longer than `max_bytes` is not cached.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// `expires_at` of an entry that never expires (Basic and access-key caches).
pub const NEVER: u64 = u64::MAX;

/// The table's keys are already keyed hashes of the credentials: use them as
/// they are instead of hashing them again.
#[derive(Default, Clone, Copy)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the key type is `u64`); fold anything else.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Slot<V> {
    credential: Zeroizing<Box<[u8]>>,
    expires_at: u64,
    /// Insertion order: which entry of `order` is this slot's.
    seq: u64,
    value: V,
}

/// See the module documentation.
pub struct VerifiedCache<V> {
    hasher: foldhash::quality::FixedState,
    map: HashMap<u64, Slot<V>, BuildHasherDefault<Prehashed>>,
    /// `(index, seq)` in insertion order; an entry whose slot was replaced or
    /// removed since is stale and skipped.
    order: VecDeque<(u64, u64)>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    seq: u64,
    /// No entry expires before this (so a full cache skips the sweep).
    earliest_expiry: u64,
}

impl<V> fmt::Debug for VerifiedCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .field("bytes", &self.bytes)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl<V> VerifiedCache<V> {
    /// An empty cache (nothing is allocated until the first insert). `key` is
    /// the hash key: draw it at random for each VM.
    pub fn new(capacity: usize, max_bytes: usize, key: u64) -> Self {
        Self {
            hasher: foldhash::quality::FixedState::with_seed(key),
            map: HashMap::default(),
            order: VecDeque::new(),
            capacity,
            max_bytes,
            bytes: 0,
            seq: 0,
            earliest_expiry: NEVER,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of credentials held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The credential's index in this cache: a keyed hash, stable for the
    /// life of the cache. Not a digest of record: it is only a table index.
    pub fn index(&self, credential: &[u8]) -> u64 {
        self.hasher.hash_one(credential)
    }

    /// The value stored for exactly `credential`, if it has not expired at
    /// `now` (an expired entry is removed).
    pub fn get(&mut self, credential: &[u8], now: u64) -> Option<&V> {
        let index = self.index(credential);
        let slot = self.map.get(&index)?;
        if !same_bytes(&slot.credential, credential) {
            return None;
        }
        if slot.expires_at <= now {
            self.remove(index);
            return None;
        }
        self.map.get(&index).map(|s| &s.value)
    }

    /// Remembers that `credential` verified, with `value`, until `expires_at`
    /// (exclusive). Nothing is stored if that is not after `now`, or if the
    /// credential alone exceeds the byte budget.
    pub fn insert(&mut self, credential: &[u8], value: V, expires_at: u64, now: u64) {
        let len = credential.len();
        if self.capacity == 0 || expires_at <= now || len > self.max_bytes {
            return;
        }
        let index = self.index(credential);
        // A slot for the same index (the same credential, or a collision) is replaced.
        self.remove(index);
        self.make_room(len, now);
        self.seq = self.seq.wrapping_add(1);
        self.map.insert(
            index,
            Slot {
                credential: Zeroizing::new(credential.into()),
                expires_at,
                seq: self.seq,
                value,
            },
        );
        self.order.push_back((index, self.seq));
        self.bytes += len;
        self.earliest_expiry = self.earliest_expiry.min(expires_at);
        self.compact();
    }

    /// Forgets everything (stored credentials are zeroed).
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
        self.earliest_expiry = NEVER;
    }

    fn remove(&mut self, index: u64) {
        if let Some(slot) = self.map.remove(&index) {
            self.bytes = self.bytes.saturating_sub(slot.credential.len());
        }
    }

    /// Evicts until one more entry of `len` bytes fits: expired entries
    /// first, then the oldest.
    fn make_room(&mut self, len: usize, now: u64) {
        let full = |c: &Self| c.map.len() >= c.capacity || c.bytes + len > c.max_bytes;
        if !full(self) {
            return;
        }
        if self.earliest_expiry <= now {
            let mut freed = 0;
            let mut earliest = NEVER;
            self.map.retain(|_, s| {
                let keep = s.expires_at > now;
                if keep {
                    earliest = earliest.min(s.expires_at);
                } else {
                    freed += s.credential.len();
                }
                keep
            });
            self.bytes = self.bytes.saturating_sub(freed);
            self.earliest_expiry = earliest;
        }
        while full(self) {
            let Some((index, seq)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&index).is_some_and(|s| s.seq == seq) {
                self.remove(index);
            }
        }
    }

    /// Drops stale entries of `order` once they outnumber the live ones, so
    /// it stays within twice the table's size.
    fn compact(&mut self) {
        if self.order.len() <= 2 * self.map.len().max(16) {
            return;
        }
        let map = &self.map;
        self.order
            .retain(|(index, seq)| map.get(index).is_some_and(|s| s.seq == *seq));
    }
}

/// Whether `a` and `b` are the same bytes, in a time that depends only on
/// their lengths (the lengths themselves are not secret here: a stored copy
/// is compared only with a credential whose keyed hash is the same). Sixteen
/// bytes at a time, so that a long bearer token costs tens of nanoseconds,
/// not one `subtle` call per byte.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(16), b.chunks_exact(16));
    let mut diff = 0u128;
    for (x, y) in (&mut wa).zip(&mut wb) {
        diff |= wide(x) ^ wide(y);
    }
    for (x, y) in wa.remainder().iter().zip(wb.remainder()) {
        diff |= u128::from(x ^ y);
    }
    let folded = (diff as u64) | ((diff >> 64) as u64);
    bool::from(folded.ct_eq(&0))
}

/// Sixteen bytes as one number (`chunks_exact(16)` only yields sixteen).
fn wide(chunk: &[u8]) -> u128 {
    <[u8; 16]>::try_from(chunk).map_or(0, u128::from_ne_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize, max_bytes: usize) -> VerifiedCache<u32> {
        VerifiedCache::new(capacity, max_bytes, 7)
    }

    #[test]
    fn same_bytes_is_exact() {
        assert!(same_bytes(b"", b""));
        assert!(same_bytes(b"abc", b"abc"));
        let long: Vec<u8> = (0..=255).collect();
        assert!(same_bytes(&long, &long.clone()));
        for i in 0..long.len() {
            let mut other = long.clone();
            other[i] ^= 1;
            assert!(!same_bytes(&long, &other), "byte {i}");
        }
        assert!(!same_bytes(b"abc", b"abcd"));
        assert!(!same_bytes(b"abcdefgh1", b"abcdefgh2"));
    }

    #[test]
    fn a_hit_needs_the_exact_credential() {
        let mut c = cache(4, 1024);
        c.insert(b"alice:secret", 1, NEVER, 0);
        assert_eq!(c.get(b"alice:secret", 0), Some(&1));
        assert_eq!(c.get(b"alice:secreT", 0), None);
        assert_eq!(c.get(b"alice:secret ", 0), None);
        assert_eq!(c.get(b"", 0), None);
    }

    #[test]
    fn a_slot_whose_index_collides_is_not_a_hit() {
        // Forge a collision: put bob's copy in alice's slot.
        let mut c = cache(4, 1024);
        c.insert(b"bob", 2, NEVER, 0);
        let bob = c.index(b"bob");
        let alice = c.index(b"alice");
        let slot = c.map.remove(&bob).unwrap();
        c.map.insert(alice, slot);
        assert_eq!(c.get(b"alice", 0), None);
        // The same credential inserted again replaces the slot.
        c.insert(b"alice", 1, NEVER, 0);
        assert_eq!(c.get(b"alice", 0), Some(&1));
    }

    #[test]
    fn the_index_is_keyed() {
        let (a, b) = (cache(1, 1), VerifiedCache::<u32>::new(1, 1, 8));
        assert_ne!(a.index(b"token"), b.index(b"token"));
        assert_eq!(a.index(b"token"), a.index(b"token"));
    }

    #[test]
    fn entries_expire_and_are_never_stored_past_expiry() {
        let mut c = cache(4, 1024);
        c.insert(b"a", 1, 100, 50);
        assert_eq!(c.get(b"a", 99), Some(&1));
        assert_eq!(c.get(b"a", 100), None);
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
        c.insert(b"b", 2, 100, 100);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_by_entries_expired_first_then_oldest() {
        let mut c = cache(3, 1024);
        c.insert(b"a", 1, 10, 0);
        c.insert(b"b", 2, 100, 0);
        c.insert(b"c", 3, 100, 0);
        // "a" has expired at 20: it makes room.
        c.insert(b"d", 4, 100, 20);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(b"b", 20), Some(&2));
        // Nothing expired: the oldest ("b") goes.
        c.insert(b"e", 5, 100, 20);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(b"b", 20), None);
        assert_eq!(c.get(b"c", 20), Some(&3));
        assert_eq!(c.get(b"e", 20), Some(&5));
        // Replacing an existing credential does not evict another.
        c.insert(b"e", 6, 100, 20);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(b"e", 20), Some(&6));
        assert_eq!(c.get(b"c", 20), Some(&3));
    }

    #[test]
    fn bounded_by_bytes() {
        let mut c = cache(100, 10);
        c.insert(b"aaaa", 1, NEVER, 0);
        c.insert(b"bbbb", 2, NEVER, 0);
        assert_eq!(c.bytes(), 8);
        // 8 + 4 > 10: the oldest goes.
        c.insert(b"cccc", 3, NEVER, 0);
        assert_eq!((c.len(), c.bytes()), (2, 8));
        assert_eq!(c.get(b"aaaa", 0), None);
        // One credential that needs every byte evicts all the others.
        c.insert(b"dddddddddd", 4, NEVER, 0);
        assert_eq!((c.len(), c.bytes()), (1, 10));
        // One larger than the budget is not cached at all.
        c.insert(b"eeeeeeeeeee", 5, NEVER, 0);
        assert_eq!(c.get(b"eeeeeeeeeee", 0), None);
        assert_eq!(c.get(b"dddddddddd", 0), Some(&4));
    }

    #[test]
    fn order_stays_bounded_when_the_same_credential_comes_back() {
        let mut c = cache(4, 1024);
        for i in 0..10_000u32 {
            c.insert(b"same", i, NEVER, 0);
        }
        assert_eq!(c.len(), 1);
        assert!(c.order.len() <= 33, "{}", c.order.len());
        assert_eq!(c.get(b"same", 0), Some(&9_999));
    }

    #[test]
    fn zero_capacity_stores_nothing_and_clear_forgets() {
        let mut c = cache(0, 1024);
        c.insert(b"a", 1, NEVER, 0);
        assert!(c.is_empty());
        let mut c = cache(2, 1024);
        c.insert(b"a", 1, NEVER, 0);
        c.clear();
        assert_eq!((c.len(), c.bytes()), (0, 0));
        assert_eq!(c.get(b"a", 0), None);
    }

    #[test]
    fn debug_shows_sizes_not_credentials() {
        let mut c = cache(2, 1024);
        c.insert(b"hunter2", 1, NEVER, 0);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("len: 1"), "{dbg}");
    }
}
