//! An independent statement of the documented split formula, for asserting what Envoy did.
//! Deliberately not the crate's code: murmur3 x86_32 written from the reference algorithm
//! (Austin Appleby's MurmurHash3_x86_32), checked against the published vectors below.

/// murmur3 x86 32-bit (reference algorithm).
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for block in &mut chunks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    let mut k: u32 = 0;
    for (i, b) in tail.iter().enumerate() {
        k ^= u32::from(*b) << (8 * i);
    }
    if !tail.is_empty() {
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The README's formula: bucket = murmur3(key, seed) mod 10000; canaries own consecutive
/// ranges of `percent * 100` buckets in listed order; the rest is the primary's. The key is
/// hashed over its bytes as they came (UTF-8 or not).
pub fn expected_upstream<'a>(
    key: impl AsRef<[u8]>,
    seed: u32,
    primary: &'a str,
    canaries: &[(&'a str, f64)],
) -> &'a str {
    let bucket = murmur3_x86_32(key.as_ref(), seed) % 10_000;
    let mut edge = 0u32;
    for (name, percent) in canaries {
        edge += (percent * 100.0).round() as u32;
        if bucket < edge {
            return name;
        }
    }
    primary
}

#[test]
fn oracle_matches_published_murmur3_vectors() {
    assert_eq!(murmur3_x86_32(b"", 0), 0);
    assert_eq!(murmur3_x86_32(b"", 1), 0x514E_28B7);
    assert_eq!(
        murmur3_x86_32(b"\x21\x43\x65\x87", 0x5082_EDEE),
        0x2362_F9DE
    );
    assert_eq!(murmur3_x86_32(b"\x21\x43\x65", 0), 0x7E4A_8634);
    assert_eq!(murmur3_x86_32(b"Hello, world!", 1234), 0xFAF6_CDB3);
    assert_eq!(
        murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
        0x2FA8_26CD
    );
}
