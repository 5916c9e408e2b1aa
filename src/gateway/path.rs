//! Request paths: the checks that refuse an ambiguous `:path`, the
//! normalization that gateways are matched on, and the `path_prefix` rules.
//!
//! # Request paths
//!
//! Only the path part of `:path` (everything before the first `?`) is looked at;
//! the query (from the `?` on) is never checked, decoded or changed. In order:
//!
//! 1. **Raw checks.** The path is refused ([`PathError`], answered 400
//!    `ambiguous_path`) when it:
//!    - does not start with `/` (empty, `*`, absolute-form `http://x/y`);
//!    - contains a backslash, raw or encoded (`\`, `%5C`, `%5c`), or an encoded
//!      slash (`%2F`, `%2f`);
//!    - contains a NUL, raw or encoded (`%00`);
//!    - contains another control character (0x01-0x1F, 0x7F), a space, a `#`,
//!      or a byte above 0x7F (non-ASCII must be percent-encoded, RFC 3986; this
//!      also rules out overlong UTF-8 forms of `/` and `.`);
//!    - has a `%` that is not followed by two hex digits.
//! 2. **Decode** percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`,
//!    any hex case): `%66` is `f`, `%2E` is `.`. Every other `%XX` stays as it
//!    came (`%20`, `%25`, `%C3%A9`), so nothing is decoded twice.
//! 3. **Remove dot segments** (RFC 3986 section 5.2.4): `/a/./b` is `/a/b`,
//!    `/a/b/../c` is `/a/c`, `/..` is `/`, `/a/..` is `/`, `/a/.` is `/a/`.
//! 4. **Merge repeated slashes**: `//a///b` is `/a/b`.
//!
//! One more refusal, found while removing dot segments: a `..` segment that would
//! remove an *empty* segment (`/a//../b`, `/a//b/../../c`). Its meaning depends on
//! the order of steps 3 and 4: removing dot segments first gives `/a/b` (Envoy's
//! `normalize_path` + `merge_slashes`), merging first gives `/b` (nginx's
//! `merge_slashes`). Such a path is refused so that the gateway and the upstream
//! cannot disagree on it.
//!
//! `;` has no special meaning: `/a;x/b` is a segment `a;x`, and `..;` is not a
//! dot segment. Matching is case-sensitive.
//!
//! # Allocation
//!
//! A path that needs no change (the common case) is checked in place and
//! borrowed: no heap allocation. A path that needs decoding, dot removal or slash
//! merging costs one allocation of at most the length of `:path`, which is then
//! reused for a stripped path.

use std::borrow::Cow;
use std::fmt;

/// Why a request path was refused. The caller answers 400 `ambiguous_path` for
/// every variant; [`PathError::reason`] is for a debug log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Empty, `*`, an absolute-form URI: the path does not start with `/`.
    NotOriginForm,
    /// `%2F` or `%5C` (any case).
    EncodedSeparator,
    /// A raw `\`.
    Backslash,
    /// A raw NUL or `%00`.
    Nul,
    /// Another control character, a space, `#`, or a byte above 0x7F.
    ForbiddenByte,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// A `..` segment that would remove an empty segment (`/a//../b`).
    DotDotAfterEmptySegment,
}

impl PathError {
    /// A short stable label for logs.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "path does not start with '/'",
            PathError::EncodedSeparator => "encoded slash or backslash",
            PathError::Backslash => "backslash",
            PathError::Nul => "NUL byte",
            PathError::ForbiddenByte => "control character, space, '#' or non-ASCII byte",
            PathError::BadPercentEncoding => "'%' not followed by two hex digits",
            PathError::DotDotAfterEmptySegment => "'..' after an empty segment",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A request path after [`normalize`]: the normalized path part, and the query
/// exactly as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a> {
    /// `:path` as received.
    raw: &'a [u8],
    /// The normalized path part: starts with `/`, no `//`, no dot segment.
    path: Cow<'a, [u8]>,
    /// `?` and what follows, as received; empty when there is no `?`.
    query: &'a [u8],
}

impl<'a> NormalizedPath<'a> {
    /// The normalized path part (no query).
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The query including its `?`, as received (empty when there is none).
    pub fn query(&self) -> &'a [u8] {
        self.query
    }

    /// Whether normalization changed the path part.
    pub fn changed(&self) -> bool {
        matches!(self.path, Cow::Owned(_))
    }

    /// The `:path` to forward once the first `strip_len` bytes of the normalized
    /// path (a matched prefix, ending on a segment boundary) are removed:
    /// `/fraud/score` -> `/score`, `/fraud` -> `/`, `/fraud?x=1` -> `/?x=1`.
    ///
    /// It is built from the *normalized* path plus the original query, so
    /// `//fraud/./score?x=1` forwards `/score?x=1`. Borrowed from `:path` when the
    /// path needed no normalization and the rest is a slice of it; otherwise
    /// owned (reusing the normalization buffer when there is one).
    pub(super) fn strip(self, strip_len: usize) -> Cow<'a, [u8]> {
        match self.path {
            Cow::Borrowed(path) => {
                if path.len() > strip_len {
                    // `raw` is `path` followed by the query, and path[strip_len] is '/'.
                    Cow::Borrowed(self.raw.get(strip_len..).unwrap_or(b"/"))
                } else if self.query.is_empty() {
                    Cow::Borrowed(b"/")
                } else {
                    let mut out = Vec::with_capacity(1 + self.query.len());
                    out.push(b'/');
                    out.extend_from_slice(self.query);
                    Cow::Owned(out)
                }
            }
            Cow::Owned(mut path) => {
                path.drain(..strip_len.min(path.len()));
                if path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(self.query);
                Cow::Owned(path)
            }
        }
    }
}

/// Checks and normalizes a request `:path` (see the module documentation for
/// the rules). The query is split off at the first `?` and kept as it came.
pub fn normalize(raw: &[u8]) -> Result<NormalizedPath<'_>, PathError> {
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    let (path_len, needs_work) = scan(raw)?;
    let (path, query) = raw.split_at_checked(path_len).unwrap_or((raw, &[]));
    if !needs_work {
        return Ok(NormalizedPath {
            raw,
            path: Cow::Borrowed(path),
            query,
        });
    }
    let normalized = rebuild(path, raw.len())?;
    Ok(NormalizedPath {
        raw,
        path: Cow::Owned(normalized),
        query,
    })
}

/// The value of an ASCII hex digit.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 unreserved: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
pub(super) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// What a byte of the path part is, for [`scan`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Plain,
    Slash,
    Dot,
    Percent,
    Query,
    Nul,
    Backslash,
    Forbidden,
}

const fn class_of(b: u8) -> Class {
    match b {
        b'/' => Class::Slash,
        b'.' => Class::Dot,
        b'%' => Class::Percent,
        b'?' => Class::Query,
        0 => Class::Nul,
        b'\\' => Class::Backslash,
        0x01..=0x20 | 0x7f..=0xff | b'#' => Class::Forbidden,
        _ => Class::Plain,
    }
}

/// [`class_of`] for every byte, so the scan costs one load per byte.
// Built at compile time: an out-of-bounds index here fails the build, it
// cannot panic at run time.
#[allow(clippy::indexing_slicing)]
const CLASSES: [Class; 256] = {
    let mut table = [Class::Plain; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = class_of(b as u8);
        b += 1;
    }
    table
};

fn class(b: u8) -> Class {
    CLASSES
        .get(usize::from(b))
        .copied()
        .unwrap_or(Class::Forbidden)
}

/// Step 1, in one pass over `raw` (which starts with `/`): refuses what is
/// ambiguous, finds where the path part ends (the first `?`), and tells whether
/// steps 2-4 would change anything: an encoded unreserved character, an empty
/// segment other than the last, a `.` or `..` segment.
fn scan(raw: &[u8]) -> Result<(usize, bool), PathError> {
    let mut needs_work = false;
    // Bytes of the path part seen so far (the leading '/' included).
    let mut path_len: usize = 1;
    // Length of the current segment, and how many of its bytes are '.'.
    let (mut segment, mut dots) = (0usize, 0usize);
    let mut bytes = raw.get(1..).unwrap_or_default().iter();
    while let Some(&b) = bytes.next() {
        let class = class(b);
        if class == Class::Query {
            break;
        }
        path_len += 1;
        match class {
            Class::Plain => segment += 1,
            Class::Dot => {
                segment += 1;
                dots += 1;
            }
            Class::Slash => {
                // An empty segment followed by another one, or `.` / `..`.
                if segment == 0 || (segment == dots && segment <= 2) {
                    needs_work = true;
                }
                (segment, dots) = (0, 0);
            }
            Class::Percent => {
                let (Some(&h), Some(&l)) = (bytes.next(), bytes.next()) else {
                    return Err(PathError::BadPercentEncoding);
                };
                let (Some(h), Some(l)) = (hex(h), hex(l)) else {
                    return Err(PathError::BadPercentEncoding);
                };
                match h * 16 + l {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    decoded if is_unreserved(decoded) => needs_work = true,
                    _ => {}
                }
                path_len += 2;
                segment += 3;
            }
            Class::Nul => return Err(PathError::Nul),
            Class::Backslash => return Err(PathError::Backslash),
            Class::Forbidden => return Err(PathError::ForbiddenByte),
            Class::Query => {}
        }
    }
    // The last segment may be empty (a trailing '/'), not `.` or `..`.
    if segment > 0 && segment == dots && segment <= 2 {
        needs_work = true;
    }
    Ok((path_len, needs_work))
}

/// Appends `segment` to `out` with unreserved characters decoded. The segment
/// passed [`scan`], so every `%` is followed by two hex digits and none
/// decodes to `/`.
fn decode_into(segment: &[u8], out: &mut Vec<u8>) {
    let mut bytes = segment.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let (h, l) = (bytes.next().unwrap_or(b'0'), bytes.next().unwrap_or(b'0'));
        match (hex(h), hex(l)) {
            (Some(hv), Some(lv)) if is_unreserved(hv * 16 + lv) => out.push(hv * 16 + lv),
            _ => out.extend_from_slice(&[b'%', h, l]),
        }
    }
}

/// Steps 2-4 on a checked path: one buffer, used as the RFC 3986 output stack of
/// segments (each written as `/` + segment), then slashes merged in place.
fn rebuild(path: &[u8], capacity: usize) -> Result<Vec<u8>, PathError> {
    let mut out: Vec<u8> = Vec::with_capacity(capacity);
    let mut segments = path.get(1..).unwrap_or_default().split(|&b| b == b'/');
    let mut current = segments.next();
    while let Some(raw_segment) = current {
        let next = segments.next();
        let last = next.is_none();
        let mark = out.len();
        out.push(b'/');
        decode_into(raw_segment, &mut out);
        let segment = out.get(mark + 1..).unwrap_or_default();
        if segment == b"." {
            out.truncate(mark);
            if last {
                out.push(b'/');
            }
        } else if segment == b".." {
            out.truncate(mark);
            // Remove the previous output segment and its '/', if there is one.
            if let Some(slash) = out.iter().rposition(|&b| b == b'/') {
                if slash + 1 == out.len() {
                    return Err(PathError::DotDotAfterEmptySegment);
                }
                out.truncate(slash);
            }
            if last {
                out.push(b'/');
            }
        }
        current = next;
    }
    out.dedup_by(|a, b| *a == b'/' && *b == b'/');
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// A configured `path_prefix`, checked.
///
/// Rules (every one is needed for the prefix to be able to match a normalized
/// path, or to keep it unambiguous):
/// - starts with `/`; `/` alone is the root and matches every path;
/// - no trailing `/` except the root (`/fraud`, not `/fraud/`: prefixes match on
///   segment boundaries, so `/fraud` already matches `/fraud/` and
///   `/fraud/score`);
/// - no empty segment (`//`), no `.` or `..` segment: a normalized path never
///   contains them;
/// - only the characters a normalized path keeps as they are: letters, digits,
///   `- . _ ~`, the sub-delimiters `! $ & ' ( ) * + , ; =`, `:` and `@`. So no
///   `%` (write the decoded character: `f`, not `%66`), no `?` or `#`, no `\`,
///   no space, control character or non-ASCII byte.
///
/// Returns the prefix bytes the table stores: empty for the root, else the
/// prefix itself. The error is the message for `gateways[i].path_prefix`.
pub(super) fn check_prefix(prefix: &str) -> Result<&[u8], String> {
    let bytes = prefix.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(format!("{prefix:?}: must start with '/'"));
    }
    if prefix == "/" {
        return Ok(&[]);
    }
    if let Some(bad) = prefix.chars().find(|&c| !is_prefix_char(c)) {
        let hint = match bad {
            '%' => " (write the decoded character: a prefix is matched against the decoded path)",
            '?' | '#' => " (a prefix matches the path only, never the query)",
            _ => "",
        };
        return Err(format!(
            "{prefix:?}: {bad:?} is not allowed in a path prefix{hint}; \
             allowed: letters, digits, '/' and - . _ ~ ! $ & ' ( ) * + , ; = : @"
        ));
    }
    if bytes.last() == Some(&b'/') {
        let trimmed = prefix.trim_end_matches('/');
        return Err(format!(
            "{prefix:?}: a trailing '/' is not allowed (write {trimmed:?}, which also matches {prefix:?})"
        ));
    }
    for segment in prefix.split('/').skip(1) {
        match segment {
            "" => {
                return Err(format!(
                    "{prefix:?}: empty segment (\"//\") never matches a normalized path"
                ))
            }
            "." | ".." => {
                return Err(format!(
                    "{prefix:?}: dot segment {segment:?} never matches a normalized path"
                ))
            }
            _ => {}
        }
    }
    Ok(bytes)
}

fn is_prefix_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '/' | '-'
                | '.'
                | '_'
                | '~'
                | '!'
                | '$'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | '+'
                | ','
                | ';'
                | '='
                | ':'
                | '@'
        )
}

/// Whether `prefix` (as returned by [`check_prefix`]; empty for the root) matches
/// the normalized `path` on a segment boundary: `/fraud` matches `/fraud`,
/// `/fraud/` and `/fraud/score`, not `/fraudulent`.
pub(super) fn prefix_matches(path: &[u8], prefix: &[u8]) -> bool {
    path.starts_with(prefix) && matches!(path.get(prefix.len()), None | Some(b'/'))
}
