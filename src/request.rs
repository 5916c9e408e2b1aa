//! The request as the core reads it: header values as raw bytes, exactly as
//! Envoy forwards them (HTTP allows obs-text, so a value need not be UTF-8),
//! and the byte-level parsers of the query string and `Cookie` headers that
//! find split keys and access keys.
//!
//! Nothing here assumes UTF-8. Where a value must be text (a credential), the
//! caller decides; where it is a split key, its bytes are hashed as they are.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// Read access to the request headers (names are lowercase; pseudo-headers
/// such as `:path` included).
pub trait Request {
    /// The first value of header `name`, as raw bytes.
    fn header(&self, name: &str) -> Option<Vec<u8>>;

    /// Every `cookie` header value (HTTP/2 clients may send several).
    fn cookie_headers(&self) -> Vec<Vec<u8>> {
        self.header_values("cookie")
    }

    /// Every value of header `name`, in order (a client may repeat a header).
    fn header_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.header(name).into_iter().collect()
    }

    /// The one value of credential header `name`; two or more copies are
    /// [`Ambiguous`]. The same answer as [`Request::header_values`] gives; a
    /// reader that can count the copies without collecting them should.
    fn single_header(&self, name: &str) -> Result<Option<Vec<u8>>, Ambiguous> {
        let mut values = self.header_values(name).into_iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(Ambiguous);
        }
        Ok(first)
    }
}

/// The one value of header `name` in a serialized header map (one host read
/// of the whole map, as the filter reads credentials: Envoy's single-value
/// read gives only the first copy), moved to the front of the map's own
/// buffer rather than copied out.
pub fn single_in_map(mut map: Vec<u8>, name: &str) -> Result<Option<Vec<u8>>, Ambiguous> {
    match crate::wire::count_values(&map, name) {
        (0 | 1, Some(range)) => {
            map.truncate(range.end);
            map.drain(..range.start);
            Ok(Some(map))
        }
        (0 | 1, None) => Ok(None),
        _ => Err(Ambiguous),
    }
}

/// A credential header sent more than once: which copy is meant is not the
/// filter's to guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ambiguous;

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space,
/// then percent-decoding (a malformed `%` sequence stays as it is). The same
/// rules as `form_urlencoded`, without its lossy UTF-8 step: `%FF` stays the
/// byte 0xFF.
fn decode_component(raw: &[u8]) -> Cow<'_, [u8]> {
    if raw.contains(&b'+') {
        let spaced: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        Cow::Owned(Cow::from(percent_decode(&spaced)).into_owned())
    } else {
        Cow::from(percent_decode(raw))
    }
}

/// The non-empty `&`-separated pairs of a query string, split at the first
/// `=` (a pair without one has an empty value), names and values still encoded.
fn pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], &[u8])> {
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (
                pair,
                pair.get(..eq).unwrap_or_default(),
                pair.get(eq + 1..).unwrap_or_default(),
            ),
            None => (pair, pair, &[][..]),
        })
}

/// Splits a `:path` into the path and the query string (without the `?`).
fn split_query(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let q = path.iter().position(|&b| b == b'?')?;
    Some((path.get(..q)?, path.get(q + 1..)?))
}

/// The decoded value of the first query parameter called `name`.
pub fn query_param(path: &[u8], name: &str) -> Option<Vec<u8>> {
    let (_, query) = split_query(path)?;
    pairs(query)
        .find(|(_, k, _)| *decode_component(k) == *name.as_bytes())
        .map(|(_, _, v)| decode_component(v).into_owned())
}

/// `path` without any `name=...` parameter, or `None` if it had none. Other
/// parameters are kept byte for byte.
pub fn remove_query_param(path: &[u8], name: &str) -> Option<Vec<u8>> {
    take_query_param(path, name).map(|(_, new_path)| new_path)
}

/// In one pass over the query string: the decoded value of the first `name`
/// parameter and `path` without any `name=...` parameter (others kept byte for
/// byte); `None` if the path has no such parameter.
pub fn take_query_param(path: &[u8], name: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let (base, query) = split_query(path)?;
    let is_name = |k: &[u8]| *decode_component(k) == *name.as_bytes();
    let value = pairs(query)
        .find(|(_, k, _)| is_name(k))
        .map(|(_, _, v)| decode_component(v).into_owned())?;
    // The path rebuilt in one buffer: the base, then every other pair.
    let mut new_path = Vec::with_capacity(path.len());
    new_path.extend_from_slice(base);
    for (pair, _, _) in pairs(query).filter(|(_, k, _)| !is_name(k)) {
        new_path.push(if new_path.len() == base.len() {
            b'?'
        } else {
            b'&'
        });
        new_path.extend_from_slice(pair);
    }
    Some((value, new_path))
}

/// `bytes` without leading and trailing whitespace, where whitespace is what
/// [`str::trim`] removes (Unicode `White_Space`) and an invalid UTF-8 byte is
/// never whitespace. For valid UTF-8 this is exactly `str::trim`.
pub fn trim(bytes: &[u8]) -> &[u8] {
    let mut start = None;
    let mut end = 0;
    let mut offset = 0;
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let invalid = chunk.invalid();
        let trimmed_start = valid.trim_start();
        if start.is_none() && (!trimmed_start.is_empty() || !invalid.is_empty()) {
            start = Some(offset + valid.len() - trimmed_start.len());
        }
        let trimmed_end = valid.trim_end();
        if !trimmed_end.is_empty() {
            end = offset + trimmed_end.len();
        }
        offset += valid.len();
        if !invalid.is_empty() {
            offset += invalid.len();
            end = offset;
        }
    }
    match start {
        Some(s) => bytes.get(s..end).unwrap_or_default(),
        None => &[],
    }
}

fn trim_quotes(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b'"').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b'"')
        .map_or(start, |e| e + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// The value of the first cookie called `name` across all `Cookie` headers:
/// pairs split at `;`, name and value split at the first `=`, both trimmed,
/// surrounding double quotes removed from the value.
pub fn cookie_value(headers: &[Vec<u8>], name: &str) -> Option<Vec<u8>> {
    headers
        .iter()
        .flat_map(|h| h.split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = trim(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((pair.get(..eq)?, pair.get(eq + 1..)?))
        })
        .find(|(k, _)| trim(k) == name.as_bytes())
        .map(|(_, v)| trim_quotes(trim(v)).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_helpers() {
        let rm = |p: &str, n: &str| remove_query_param(p.as_bytes(), n);
        assert_eq!(rm("/p?k=1", "k").as_deref(), Some(&b"/p"[..]));
        assert_eq!(
            rm("/p?a=1&k=1&k=2&b", "k").as_deref(),
            Some(&b"/p?a=1&b"[..])
        );
        assert_eq!(rm("/p?a=1", "k"), None);
        assert_eq!(rm("/p", "k"), None);
        assert_eq!(rm("/p?%6B=1", "k").as_deref(), Some(&b"/p"[..]));
        assert_eq!(
            query_param(b"/p?a=1&k=x+y", "k").as_deref(),
            Some(&b"x y"[..])
        );
        assert_eq!(query_param(b"/p?k", "k").as_deref(), Some(&b""[..]));
    }

    #[test]
    fn query_values_are_decoded_to_bytes_not_lossy_text() {
        assert_eq!(
            query_param(b"/p?uid=%FF%FE", "uid").as_deref(),
            Some(&b"\xff\xfe"[..])
        );
        assert_eq!(
            query_param(b"/p?uid=caf%C3%A9", "uid").as_deref(),
            Some("café".as_bytes())
        );
        // Raw non-UTF-8 bytes in the path, and broken escapes kept as they are.
        assert_eq!(
            query_param(b"/p?uid=\xff%zz%4", "uid").as_deref(),
            Some(&b"\xff%zz%4"[..])
        );
        let (v, p) = take_query_param(b"/\xff?x=\x80&api_key=k%201", "api_key").unwrap();
        assert_eq!(
            (v.as_slice(), p.as_slice()),
            (&b"k 1"[..], &b"/\xff?x=\x80"[..])
        );
    }

    /// The byte-level parser gives what `form_urlencoded` (the parser before)
    /// gives, whenever the decoded value is valid UTF-8: no user moves.
    #[test]
    fn query_values_match_form_urlencoded_for_utf8() {
        let queries = [
            "a=1&uid=x+y%20z",
            "uid=caf%C3%A9&uid=second",
            "%75id=encoded-name",
            "uid==eq&x",
            "&&uid=&",
            "uid=%zz%2",
            "uid=%E2%80%83spaced%E2%80%83",
        ];
        for q in queries {
            let before = form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "uid")
                .map(|(_, v)| v.into_owned().into_bytes());
            let path = format!("/p?{q}");
            assert_eq!(query_param(path.as_bytes(), "uid"), before, "{q}");
        }
    }

    #[test]
    fn trim_is_str_trim_for_utf8_and_keeps_invalid_bytes() {
        let samples = [
            "",
            " ",
            "a",
            " a ",
            "\t a b \r\n",
            "\u{a0}x\u{2003}",
            "\u{3000}",
            "é ",
            " é",
            "\u{85}v\u{85}",
            "a\u{a0}b",
        ];
        for s in samples {
            assert_eq!(trim(s.as_bytes()), s.trim().as_bytes(), "{s:?}");
        }
        assert_eq!(trim(b" \xff "), b"\xff");
        assert_eq!(trim(b"\xff a \xfe"), b"\xff a \xfe");
        assert_eq!(trim(b"  \x80\xa0 "), b"\x80\xa0");
        assert_eq!(trim(b" a\xff"), b"a\xff");
    }

    #[test]
    fn cookies() {
        let h = |v: &str| vec![v.as_bytes().to_vec()];
        assert_eq!(
            cookie_value(&h("a=1;k=\"v\""), "k").as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(cookie_value(&h("ak=1"), "k"), None);
        assert_eq!(
            cookie_value(&h(" k = x=y ; k=2"), "k").as_deref(),
            Some(&b"x=y"[..])
        );
        let several = vec![b"a=1; b=2".to_vec(), b"uid=zed; c=3".to_vec()];
        assert_eq!(cookie_value(&several, "uid").as_deref(), Some(&b"zed"[..]));
        let raw = vec![b"uid=\xff\xfe\x80abc; x=1".to_vec()];
        assert_eq!(
            cookie_value(&raw, "uid").as_deref(),
            Some(&b"\xff\xfe\x80abc"[..])
        );
        // A non-UTF-8 name never matches a configured (UTF-8) one, and does not stop the search.
        let raw = vec![b"\xffuid=1; uid=2".to_vec()];
        assert_eq!(cookie_value(&raw, "uid").as_deref(), Some(&b"2"[..]));
        // Whitespace is trimmed outside the quotes, never inside them (as since
        // the first release: `v.trim().trim_matches('"')`); found by the fuzzer.
        assert_eq!(
            cookie_value(&h("k=\"\n*\" "), "k").as_deref(),
            Some(&b"\n*"[..])
        );
        assert_eq!(
            cookie_value(&h("k=\" a \""), "k").as_deref(),
            Some(&b" a "[..])
        );
    }

    /// The byte-level cookie parser gives what the `str` parser before gave.
    #[test]
    fn cookies_match_the_str_parser_for_utf8() {
        fn before(headers: &[&str], name: &str) -> Option<String> {
            headers
                .iter()
                .flat_map(|h| h.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
        }
        let cases: [&[&str]; 6] = [
            &["uid=a"],
            &[" uid = \"quoted\" ; x=1"],
            &["x=1", "uid=\u{a0}nbsp\u{a0}"],
            &["uid=\"\"\"", "uid=2"],
            &["uid"],
            &["=uid; uid=é"],
        ];
        for headers in cases {
            let bytes: Vec<Vec<u8>> = headers.iter().map(|h| h.as_bytes().to_vec()).collect();
            assert_eq!(
                cookie_value(&bytes, "uid"),
                before(headers, "uid").map(String::into_bytes),
                "{headers:?}"
            );
        }
    }
}
