//! The proxy-wasm ABI's serialized header map, read and written with bounds
//! checks. Pure, so the byte handling is tested natively; the host calls that
//! carry these bytes live in the filter's `abi` module.
//!
//! Layout: a little-endian `u32` count N, then N pairs of `u32` sizes (name,
//! value), then for each pair the name bytes, a NUL, the value bytes, a NUL.

use std::ops::Range;

/// A header map as raw bytes (names and values may be any bytes).
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let end = at.checked_add(4)?;
    let word: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

/// The pairs of a serialized map, borrowed from it, in order.
#[derive(Debug, Clone)]
pub struct MapPairs<'a> {
    bytes: &'a [u8],
    /// Pairs not yet given.
    left: usize,
    /// Where the next pair's two sizes are.
    sizes: usize,
    /// Where the next pair's name starts.
    data: usize,
    /// A pair did not fit in the buffer.
    broken: bool,
}

impl<'a> MapPairs<'a> {
    fn pair(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let name_len = u32_at(self.bytes, self.sizes)?;
        let value_len = u32_at(self.bytes, self.sizes.checked_add(4)?)?;
        let name_end = self.data.checked_add(name_len)?;
        let name = self.bytes.get(self.data..name_end)?;
        let value_start = name_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        let value = self.bytes.get(value_start..value_end)?;
        self.sizes = self.sizes.checked_add(8)?;
        self.data = value_end.checked_add(1)?;
        Some((name, value))
    }
}

impl<'a> Iterator for MapPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        match self.pair() {
            Some(pair) => {
                self.left -= 1;
                Some(pair)
            }
            None => {
                self.left = 0;
                self.broken = true;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// The pairs of a serialized map as they are read: a pair that does not fit
/// ends the iteration and marks it broken.
fn unchecked(bytes: &[u8]) -> Option<MapPairs<'_>> {
    let count = if bytes.is_empty() {
        0
    } else {
        u32_at(bytes, 0)?
    };
    // Every pair takes at least 8 bytes of sizes and 2 NULs: a count the
    // buffer cannot hold is refused before anything is read for it.
    if count > bytes.len() / 10 {
        return None;
    }
    Some(MapPairs {
        bytes,
        left: count,
        sizes: 4,
        data: count.checked_mul(8)?.checked_add(4)?,
        broken: false,
    })
}

/// The pairs of a serialized map without copying them; `None` if it is
/// truncated or inconsistent (checked in full before the first pair is
/// given). An empty buffer is an empty map.
pub fn map_pairs(bytes: &[u8]) -> Option<MapPairs<'_>> {
    let pairs = unchecked(bytes)?;
    let mut check = pairs.clone();
    for _ in check.by_ref() {}
    (!check.broken).then_some(pairs)
}

/// How many values header `name` has in a serialized map, and where the
/// first one is, in one pass and without copying: what a credential check
/// needs (a header sent twice is refused). A truncated or inconsistent map
/// counts as no headers: `(0, None)`.
pub fn count_values(bytes: &[u8], name: &str) -> (usize, Option<Range<usize>>) {
    let broken = (0, None);
    let Some(count) = (if bytes.is_empty() {
        Some(0)
    } else {
        u32_at(bytes, 0)
    }) else {
        return broken;
    };
    if count > bytes.len() / 10 {
        return broken;
    }
    // Offsets in u64: sums of u32 sizes cannot overflow, on wasm32 either.
    let len = bytes.len() as u64;
    let wanted = name.as_bytes();
    let mut data = 4 + 8 * count as u64;
    let (mut found, mut first) = (0, None);
    for n in 0..count {
        let sizes = 4 + 8 * n;
        let (Some(name_len), Some(value_len)) = (u32_at(bytes, sizes), u32_at(bytes, sizes + 4))
        else {
            return broken;
        };
        let name_end = data + name_len as u64;
        let value_start = name_end + 1;
        let value_end = value_start + value_len as u64;
        if value_end > len {
            return broken;
        }
        // In range: every offset is at most `value_end <= len`.
        let (start, name_end) = (data as usize, name_end as usize);
        if name_end - start == wanted.len() && bytes.get(start..name_end) == Some(wanted) {
            found += 1;
            if first.is_none() {
                first = Some(value_start as usize..value_end as usize);
            }
        }
        data = value_end + 1;
    }
    (found, first)
}

/// Every value of header `name` in a serialized map, in order, borrowed from
/// it (none if the map is truncated or inconsistent).
pub fn values<'a>(bytes: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    map_pairs(bytes)
        .into_iter()
        .flatten()
        .filter(move |(k, _)| *k == name.as_bytes())
        .map(|(_, v)| v)
}

/// Decodes a serialized map; `None` if it is truncated or inconsistent.
/// An empty buffer is an empty map.
pub fn decode_map(bytes: &[u8]) -> Option<Pairs> {
    let pairs = map_pairs(bytes)?;
    let mut out = Vec::with_capacity(pairs.left);
    out.extend(pairs.map(|(k, v)| (k.to_vec(), v.to_vec())));
    Some(out)
}

/// Encodes a header map for the host (local reply headers, HTTP call headers).
pub fn encode_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let data: usize = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&len32(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.as_ref().len()));
        out.extend_from_slice(&len32(v.as_ref().len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
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
    fn values_are_found_in_place_and_in_order() {
        let map = encode_map(&[("a", "1"), ("cookie", "x=1"), ("a", "2"), ("ab", "3")]);
        let found: Vec<&[u8]> = values(&map, "a").collect();
        assert_eq!(found, vec![&b"1"[..], &b"2"[..]]);
        assert_eq!(values(&map, "b").count(), 0);
        assert_eq!(values(&[], "a").count(), 0);
        // A broken map has no values, not the ones before the break.
        assert_eq!(values(&map[..map.len() - 3], "a").count(), 0);
        let (n, first) = count_values(&map, "a");
        assert_eq!((n, first.map(|r| &map[r])), (2, Some(&b"1"[..])));
        let (n, first) = count_values(&map, "ab");
        assert_eq!((n, first.map(|r| &map[r])), (1, Some(&b"3"[..])));
        // Every truncation is broken, as for `decode_map`.
        for cut in 1..map.len() - 1 {
            assert_eq!(count_values(&map[..cut], "a"), (0, None), "cut at {cut}");
        }
        assert_eq!(count_values(&map, "b"), (0, None));
        assert_eq!(count_values(&map[..map.len() - 3], "a"), (0, None));
        assert_eq!(count_values(&[], "a"), (0, None));
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
