//! The traffic split: which upstream a request goes to.
//!
//! The key space is 10,000 buckets (hundredths of a percent). Canaries own
//! consecutive bucket ranges in the order they are listed, `percent x 100`
//! buckets each, starting at bucket 0; every bucket after the last canary goes
//! to the primary.
//!
//! - Random split: the bucket is drawn uniformly from `0..10000`.
//! - Hashed split: `bucket = murmur3_x86_32(key as UTF-8 bytes, hash_seed) % 10000`.
//!   The same key always lands in the same bucket, on every replica and after
//!   every restart, and growing a canary's percent only adds buckets to it.

use serde::Deserialize;

/// Buckets in the key space: 100% expressed in hundredths of a percent.
pub const TOTAL_BUCKETS: u32 = 10_000;

/// Where the key of a hashed split comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Random,
    /// A request header (lowercase name).
    Header(String),
    /// A query-string parameter of the path (decoded value).
    Query(String),
    /// A cookie value.
    Cookie(String),
    /// The authenticated consumer.
    Consumer,
}

/// What a hashed split does with a request that has no key (absent or empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenMissing {
    #[default]
    Random,
    Primary,
}

/// The compiled split: cumulative bucket edges, one per canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPlan {
    key: KeySource,
    when_missing: WhenMissing,
    seed: u32,
    /// `edges[i]` is the first bucket after canary `i`'s range.
    edges: Vec<u32>,
    /// `diverted[i]`: canary `i`'s range goes to the primary (a tripped guard).
    diverted: Vec<bool>,
}

impl SplitPlan {
    /// `percents_bp` are the canaries' shares in basis points, already
    /// validated to sum to at most [`TOTAL_BUCKETS`].
    pub fn new(key: KeySource, when_missing: WhenMissing, seed: u32, percents_bp: &[u32]) -> Self {
        let edges = percents_bp
            .iter()
            .scan(0u32, |acc, bp| {
                *acc += bp;
                Some(*acc)
            })
            .collect();
        Self {
            key,
            when_missing,
            seed,
            edges,
            diverted: vec![false; percents_bp.len()],
        }
    }

    /// The same split with the canaries at `shares_bp` (a ramp moved them) and
    /// the ranges of `diverted` canaries sent to the primary (a tripped guard:
    /// the range stays where it is, so no other canary's users move).
    pub fn reshaped(&self, shares_bp: &[u32], diverted: &[bool]) -> SplitPlan {
        let mut plan = SplitPlan::new(self.key.clone(), self.when_missing, self.seed, shares_bp);
        for (slot, d) in plan.diverted.iter_mut().zip(diverted) {
            *slot = *d;
        }
        plan
    }

    /// Each canary's share in basis points (its range's width).
    pub fn shares_bp(&self) -> Vec<u32> {
        let mut previous = 0;
        self.edges
            .iter()
            .map(|edge| {
                let share = edge.saturating_sub(previous);
                previous = *edge;
                share
            })
            .collect()
    }

    pub fn key(&self) -> &KeySource {
        &self.key
    }

    pub fn edges(&self) -> &[u32] {
        &self.edges
    }

    /// The upstream index for a bucket: `1 + i` for canary `i`, `0` for the primary.
    pub fn upstream_for_bucket(&self, bucket: u32) -> usize {
        match self.edges.iter().position(|&edge| bucket < edge) {
            Some(i) if self.diverted.get(i) == Some(&true) => 0,
            Some(i) => i + 1,
            None => 0,
        }
    }

    /// Chooses the upstream for a request. `key` is the hash key if the split
    /// is keyed and the request carries a non-empty one; `random_bucket` draws a
    /// uniform bucket in `0..TOTAL_BUCKETS` and is only called when needed.
    pub fn choose(&self, key: Option<&[u8]>, random_bucket: impl FnOnce() -> u32) -> Choice {
        if matches!(self.key, KeySource::Random) {
            let bucket = random_bucket();
            return Choice {
                upstream: self.upstream_for_bucket(bucket),
                bucket: Some(bucket),
                how: How::Random,
            };
        }
        match key.filter(|k| !k.is_empty()) {
            Some(k) => {
                let bucket = bucket_of(k, self.seed);
                Choice {
                    upstream: self.upstream_for_bucket(bucket),
                    bucket: Some(bucket),
                    how: How::Hashed,
                }
            }
            None => match self.when_missing {
                WhenMissing::Primary => Choice {
                    upstream: 0,
                    bucket: None,
                    how: How::MissingKey,
                },
                WhenMissing::Random => {
                    let bucket = random_bucket();
                    Choice {
                        upstream: self.upstream_for_bucket(bucket),
                        bucket: Some(bucket),
                        how: How::MissingKey,
                    }
                }
            },
        }
    }
}

/// The outcome of [`SplitPlan::choose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub upstream: usize,
    pub bucket: Option<u32>,
    pub how: How,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Random,
    Hashed,
    MissingKey,
    Selected,
}

/// The documented bucket formula: murmur3 x86 32-bit of the key's bytes (as
/// they came, UTF-8 or not) with `seed`, modulo 10,000.
pub fn bucket_of(key: impl AsRef<[u8]>, seed: u32) -> u32 {
    murmur3_32(key.as_ref(), seed) % TOTAL_BUCKETS
}

/// murmur3 x86 32-bit. Reading from a byte slice cannot fail; the `io::Result`
/// of the crate's reader-based API is mapped to the hash of nothing rather than
/// a panic.
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    let mut reader = bytes;
    murmur3::murmur3_32(&mut reader, seed).unwrap_or(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published murmur3 x86_32 vectors (from the reference implementation's
    /// verification suite, as quoted on Wikipedia and in the Guava / smhasher tests).
    #[test]
    fn murmur3_matches_published_vectors() {
        let vectors: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514E_28B7),
            (b"", 0xffff_ffff, 0x81F1_6F39),
            (b"\xff\xff\xff\xff", 0, 0x7629_3B50),
            (b"\x21\x43\x65\x87", 0, 0xF55B_516B),
            (b"\x21\x43\x65\x87", 0x5082_EDEE, 0x2362_F9DE),
            (b"\x21\x43\x65", 0, 0x7E4A_8634),
            (b"\x21\x43", 0, 0xA0F7_B07A),
            (b"\x21", 0, 0x7266_1CF4),
            (b"\x00\x00\x00\x00", 0, 0x2362_F9DE),
            (b"\x00\x00\x00", 0, 0x85F0_B427),
            (b"\x00\x00", 0, 0x30F4_C306),
            (b"\x00", 0, 0x514E_28B7),
            (b"Hello, world!", 1234, 0xFAF6_CDB3),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2FA8_26CD,
            ),
        ];
        for (input, seed, expected) in vectors {
            assert_eq!(
                murmur3_32(input, *seed),
                *expected,
                "murmur3_32({input:?}, {seed:#x})"
            );
        }
    }

    #[test]
    fn bucket_formula_is_hash_mod_10000() {
        // 0xFAF6CDB3 = 4210478515 -> bucket 8515
        assert_eq!(bucket_of("Hello, world!", 1234), 4_210_478_515 % 10_000);
        assert_eq!(bucket_of("", 0), 0);
    }

    #[test]
    fn bucket_edges_are_consecutive_in_listed_order() {
        // canaries 10% and 2.5%: [0,1000) -> 1, [1000,1250) -> 2, rest -> primary.
        let plan = SplitPlan::new(KeySource::Random, WhenMissing::Random, 0, &[1000, 250]);
        assert_eq!(plan.edges(), &[1000, 1250]);
        assert_eq!(plan.upstream_for_bucket(0), 1);
        assert_eq!(plan.upstream_for_bucket(999), 1);
        assert_eq!(plan.upstream_for_bucket(1000), 2);
        assert_eq!(plan.upstream_for_bucket(1249), 2);
        assert_eq!(plan.upstream_for_bucket(1250), 0);
        assert_eq!(plan.upstream_for_bucket(9999), 0);
    }

    #[test]
    fn zero_percent_canary_gets_no_bucket_and_full_canary_gets_all() {
        let plan = SplitPlan::new(KeySource::Random, WhenMissing::Random, 0, &[0, 10_000]);
        assert_eq!(plan.upstream_for_bucket(0), 2);
        assert_eq!(plan.upstream_for_bucket(9999), 2);
        let plan = SplitPlan::new(KeySource::Random, WhenMissing::Random, 0, &[]);
        assert_eq!(plan.upstream_for_bucket(0), 0);
    }

    #[test]
    fn growing_a_canary_only_moves_keys_into_it() {
        let small = SplitPlan::new(
            KeySource::Header("k".into()),
            WhenMissing::Random,
            0,
            &[500],
        );
        let large = SplitPlan::new(
            KeySource::Header("k".into()),
            WhenMissing::Random,
            0,
            &[2000],
        );
        for i in 0..5000 {
            let key = format!("user-{i}");
            let before = small
                .choose(Some(key.as_bytes()), || unreachable!())
                .upstream;
            let after = large
                .choose(Some(key.as_bytes()), || unreachable!())
                .upstream;
            if before == 1 {
                assert_eq!(after, 1, "{key} left the canary when it grew");
            }
        }
    }

    #[test]
    fn hashed_choice_is_deterministic_and_seeded() {
        let plan = SplitPlan::new(
            KeySource::Header("k".into()),
            WhenMissing::Random,
            7,
            &[5000],
        );
        let c = plan.choose(Some(b"alice"), || unreachable!());
        assert_eq!(c.how, How::Hashed);
        assert_eq!(c.bucket, Some(bucket_of("alice", 7)));
        assert_eq!(c, plan.choose(Some(b"alice"), || unreachable!()));
    }

    #[test]
    fn missing_or_empty_key_follows_when_missing() {
        let to_primary = SplitPlan::new(
            KeySource::Cookie("k".into()),
            WhenMissing::Primary,
            0,
            &[10_000],
        );
        assert_eq!(to_primary.choose(None, || unreachable!()).upstream, 0);
        assert_eq!(to_primary.choose(Some(b""), || unreachable!()).upstream, 0);
        let random = SplitPlan::new(
            KeySource::Cookie("k".into()),
            WhenMissing::Random,
            0,
            &[10_000],
        );
        let c = random.choose(None, || 42);
        assert_eq!(
            (c.upstream, c.bucket, c.how),
            (1, Some(42), How::MissingKey)
        );
    }

    #[test]
    fn reshaping_moves_only_what_it_must() {
        let plan = SplitPlan::new(
            KeySource::Header("k".into()),
            WhenMissing::Random,
            0,
            &[1000, 500],
        );
        assert_eq!(plan.shares_bp(), vec![1000, 500]);
        // A tripped first canary: its range goes to the primary, the second's users stay.
        let tripped = plan.reshaped(&[1000, 500], &[true, false]);
        for bucket in [0, 999, 1000, 1499, 1500, 9999] {
            let before = plan.upstream_for_bucket(bucket);
            let after = tripped.upstream_for_bucket(bucket);
            if before == 1 {
                assert_eq!(after, 0, "bucket {bucket}");
            } else {
                assert_eq!(after, before, "bucket {bucket}");
            }
        }
        // A ramp of the last canary only takes buckets from the primary.
        let ramped = plan.reshaped(&[1000, 2000], &[false, false]);
        assert_eq!(ramped.upstream_for_bucket(1600), 2);
        assert_eq!(ramped.upstream_for_bucket(2999), 2);
        assert_eq!(ramped.upstream_for_bucket(3000), 0);
        assert_eq!(ramped.upstream_for_bucket(999), 1);
    }
}
