//! The proxy-wasm ABI's serialized header map, read and written with bounds
//! checks. Pure, so the byte handling is tested natively; the host calls that
//! carry these bytes live in the filter's `abi` module.
//!
//! Layout: a little-endian `u32` count N, then N pairs of `u32` sizes (name,
//! value), then for each pair the name bytes, a NUL, the value bytes, a NUL.

/// A header map as raw bytes (names and values may be any bytes).
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let end = at.checked_add(4)?;
    let word: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

/// Decodes a serialized map; `None` if it is truncated or inconsistent.
/// An empty buffer is an empty map.
pub fn decode_map(bytes: &[u8]) -> Option<Pairs> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = u32_at(bytes, 0)?;
    // Every pair takes at least 8 bytes of sizes and 2 NULs: a count the
    // buffer cannot hold is refused before anything is allocated for it.
    if count > bytes.len() / 10 {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    for n in 0..count {
        let sizes = n.checked_mul(8)?.checked_add(4)?;
        let name_len = u32_at(bytes, sizes)?;
        let value_len = u32_at(bytes, sizes.checked_add(4)?)?;
        let name_end = data.checked_add(name_len)?;
        let name = bytes.get(data..name_end)?.to_vec();
        let value_start = name_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        let value = bytes.get(value_start..value_end)?.to_vec();
        data = value_end.checked_add(1)?;
        pairs.push((name, value));
    }
    Some(pairs)
}

/// Encodes a header map for the host (local reply headers, HTTP call headers).
pub fn encode_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let data: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&len32(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()));
        out.extend_from_slice(&len32(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs = [("a", "1"), ("cookie", "uid=x"), ("", "")];
        let decoded = decode_map(&encode_map(&pairs)).unwrap();
        let expected: Pairs = pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(decoded, expected);
        assert_eq!(decode_map(&[]), Some(Vec::new()));
    }

    #[test]
    fn non_utf8_names_and_values_come_through_as_bytes() {
        let mut bytes = vec![1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0];
        bytes.extend_from_slice(b"\xff\xfe\0\x80ab\0");
        assert_eq!(
            decode_map(&bytes).unwrap(),
            vec![(b"\xff\xfe".to_vec(), b"\x80ab".to_vec())]
        );
    }

    #[test]
    fn truncated_or_inconsistent_maps_are_refused() {
        let good = encode_map(&[("name", "value"), ("k", "v")]);
        for cut in 1..good.len() - 1 {
            assert_eq!(decode_map(&good[..cut]), None, "cut at {cut}");
        }
        // A count far beyond what the buffer holds.
        assert_eq!(decode_map(&[255, 255, 255, 255, 0, 0, 0, 0]), None);
        // Sizes that overflow.
        let mut huge = vec![1, 0, 0, 0];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 8]);
        assert_eq!(decode_map(&huge), None);
    }
}
