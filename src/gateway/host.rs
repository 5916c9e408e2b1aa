//! Hosts: the request's `:authority` reduced to the name gateways match on, and
//! the host patterns gateways are configured with.
//!
//! # Request host
//!
//! From `:authority` (Envoy puts HTTP/1 `Host` there): the port is removed
//! (`a.example.com:8080`, `[::1]:8080`), ASCII letters are lowercased and one
//! trailing dot is ignored (`A.Example.COM.` is `a.example.com`). An IPv6
//! literal is compared in its canonical form (`[0:0::1]` is `[::1]`). A host
//! that is missing, empty, longer than 253 characters, has an empty label
//! (`a..b`), a character other than letters, digits, `-`, `_` and `.`, a
//! malformed port or a malformed IPv6 literal (zone IDs included) matches only
//! the `*` pattern.
//!
//! # Host patterns
//!
//! - `a.example.com`: exactly that host (case-insensitive; one trailing dot
//!   ignored), also an IPv4 address `10.0.0.1` or an IPv6 literal `[::1]`;
//! - `*.example.com`: any host that ends with `.example.com` and has at least one
//!   more label (`x.example.com`, `x.y.example.com`, not `example.com`);
//! - `*`: any host, including a missing or unusable one.
//!
//! Labels are 1 to 63 letters, digits, `-` or `_`, not starting or ending with
//! `-`; a name is at most 253 characters. `*` is allowed only alone or as the
//! whole first label. A pattern has no port. Non-ASCII names are written in
//! their punycode (`xn--`) form.

use std::fmt;
use std::net::Ipv6Addr;

/// The longest DNS name (RFC 1035), without the trailing dot.
const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A configured host pattern, in canonical form (lowercase, no trailing dot).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum HostPattern {
    /// `*`
    Any,
    /// `a.example.com`, `10.0.0.1`, `[::1]`
    Exact(String),
    /// `*.example.com`, stored as `example.com`.
    Wildcard(String),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl HostPattern {
    /// Parses a configured pattern; the error is the reason it is not valid.
    pub(super) fn parse(pattern: &str) -> Result<HostPattern, String> {
        if pattern == "*" {
            return Ok(HostPattern::Any);
        }
        if let Some(suffix) = pattern.strip_prefix("*.") {
            return dns_name(suffix).map(HostPattern::Wildcard);
        }
        if let Some(literal) = pattern.strip_prefix('[') {
            let inner = literal
                .strip_suffix(']')
                .ok_or("an IPv6 literal is written \"[::1]\", without a port")?;
            let addr: Ipv6Addr = inner
                .parse()
                .map_err(|_| format!("{inner:?} is not an IPv6 address"))?;
            return Ok(HostPattern::Exact(format!("[{addr}]")));
        }
        if pattern.contains(':') {
            return Err(
                "a host pattern has no port (requests are matched with the port removed)".into(),
            );
        }
        dns_name(pattern).map(HostPattern::Exact)
    }
}

/// Checks a DNS name (no `*`) and returns it lowercased without its one
/// optional trailing dot.
fn dns_name(name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "label {label:?} is longer than {MAX_LABEL_LEN} characters"
            ));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(match bad {
                '*' => "'*' is allowed only alone or as the whole first label (\"*.example.com\")"
                    .into(),
                c if !c.is_ascii() => {
                    "non-ASCII character (write the name in its punycode \"xn--\" form)".into()
                }
                c => format!("character {c:?} is not allowed"),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    Ok(name.to_ascii_lowercase())
}

// ---------------------------------------------------------------------------
// Request hosts (the hot path: no heap allocation, one pass over the name).
// ---------------------------------------------------------------------------

/// A request `:authority` with the port and one trailing dot removed.
pub(super) enum Authority<'a> {
    /// A DNS name or IPv4 address, case as received, not yet validated
    /// ([`walk_name`] does that).
    Name(&'a [u8]),
    /// An IPv6 literal, canonical (`[::1]`).
    Ipv6(Ipv6Text),
    /// A malformed port or IPv6 literal, or an empty host.
    Unusable,
}

/// Splits `:authority` into the host to match: `a.example.com:8080` ->
/// `a.example.com`, `a.example.com.` -> `a.example.com`, `[0::1]:8080` ->
/// `[::1]`. A port is `:` and at most five digits (possibly none).
pub(super) fn split_authority(authority: &[u8]) -> Authority<'_> {
    if authority.first() == Some(&b'[') {
        let Some(close) = authority.iter().position(|&b| b == b']') else {
            return Authority::Unusable;
        };
        let (Some(inner), Some(rest)) = (authority.get(1..close), authority.get(close + 1..))
        else {
            return Authority::Unusable;
        };
        if !is_port(rest) {
            return Authority::Unusable;
        }
        let addr = std::str::from_utf8(inner)
            .ok()
            .and_then(|text| text.parse::<Ipv6Addr>().ok());
        return match addr.and_then(Ipv6Text::new) {
            Some(text) => Authority::Ipv6(text),
            None => Authority::Unusable,
        };
    }
    let (host, rest) = match authority.iter().position(|&b| b == b':') {
        Some(colon) => authority.split_at(colon),
        None => (authority, &[][..]),
    };
    if !is_port(rest) {
        return Authority::Unusable;
    }
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() {
        return Authority::Unusable;
    }
    Authority::Name(host)
}

/// `""` or `":"` followed by at most five digits.
fn is_port(rest: &[u8]) -> bool {
    match rest.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// A canonical IPv6 literal `[...]` on the stack (at most 41 bytes).
pub(super) struct Ipv6Text {
    buf: [u8; 48],
    len: usize,
}

impl Ipv6Text {
    /// Formats `[addr]` (std formats an `Ipv6Addr` without allocating).
    fn new(addr: Ipv6Addr) -> Option<Self> {
        struct Cursor<'b> {
            buf: &'b mut [u8],
            len: usize,
        }
        impl fmt::Write for Cursor<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
                let dest = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
                dest.copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
        }
        let mut buf = [0u8; 48];
        let mut cursor = Cursor {
            buf: &mut buf,
            len: 0,
        };
        fmt::write(&mut cursor, format_args!("[{addr}]")).ok()?;
        let len = cursor.len;
        Some(Self { buf, len })
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// For each byte of a host name: 0 if not allowed, `.` for a dot, else the
/// byte lowercased (letters, digits, `-`, `_`).
// Built at compile time: an out-of-bounds index here fails the build, it
// cannot panic at run time.
#[allow(clippy::indexing_slicing)]
const NAME_BYTES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = match b {
            b'A'..=b'Z' => b.to_ascii_lowercase(),
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => b,
            _ => 0,
        };
        i += 1;
    }
    table
};

const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;
const HASH_PRIME: u64 = 0x0000_0100_0000_01b3;

fn hash_step(hash: u64, b: u8) -> u64 {
    (hash ^ u64::from(b)).wrapping_mul(HASH_PRIME)
}

/// The hash [`HostMap`] keys are stored under: FNV-1a over the canonical bytes
/// taken from the *last* to the first, so that one right-to-left pass over a
/// request host ([`walk_name`]) yields the hash of every suffix on the way.
pub(super) fn host_hash(canonical: &[u8]) -> u64 {
    canonical
        .iter()
        .rev()
        .fold(HASH_SEED, |h, &b| hash_step(h, b))
}

/// Walks a request host name (from [`split_authority`]) from right to left:
/// checks it (at most 253 bytes, labels of letters, digits, `-`, `_`, none
/// empty) and returns the [`host_hash`] of its lowercase form, or `None` when it
/// is not a usable name. On the way, for the suffix after each `.` with at most
/// `max_labels` labels (shortest first), calls `on_suffix(hash, suffix)`:
/// `x.y.example.com` gives `com`, `example.com`, `y.example.com`.
pub(super) fn walk_name<'a>(
    name: &'a [u8],
    max_labels: usize,
    mut on_suffix: impl FnMut(u64, &'a [u8]),
) -> Option<u64> {
    if name.len() > MAX_NAME_LEN {
        return None;
    }
    let mut hash = HASH_SEED;
    let (mut labels, mut label_len) = (0usize, 0usize);
    for (i, &b) in name.iter().enumerate().rev() {
        match NAME_BYTES.get(usize::from(b)).copied().unwrap_or(0) {
            0 => return None,
            b'.' => {
                if label_len == 0 {
                    return None;
                }
                labels += 1;
                label_len = 0;
                if labels <= max_labels {
                    on_suffix(hash, name.get(i + 1..)?);
                }
                hash = hash_step(hash, b'.');
            }
            lower => {
                label_len += 1;
                hash = hash_step(hash, lower);
            }
        }
    }
    (label_len > 0).then_some(hash)
}

/// An immutable open-addressing map from canonical host bytes (exact hosts, or
/// wildcard suffixes) to a group, looked up with a precomputed [`host_hash`]
/// and compared ASCII-case-insensitively, so a request host is never copied or
/// lowercased. Built at configure time; a lookup allocates nothing. The keys
/// are the operator's, so a client cannot grow a probe chain.
#[derive(Debug)]
pub(super) struct HostMap {
    slots: Box<[Option<Slot>]>,
    shift: u32,
    len: usize,
}

#[derive(Debug)]
struct Slot {
    hash: u64,
    key: Box<[u8]>,
    group: usize,
}

impl HostMap {
    /// `entries` are canonical (lowercase) keys, each once.
    pub(super) fn new(entries: Vec<(Vec<u8>, usize)>) -> Self {
        let capacity = entries.len().saturating_mul(2).next_power_of_two().max(8);
        let mut slots: Box<[Option<Slot>]> = (0..capacity).map(|_| None).collect();
        let shift = 64 - capacity.trailing_zeros();
        let mask = capacity - 1;
        let len = entries.len();
        for (key, group) in entries {
            let hash = host_hash(&key);
            let mut i = home(hash, shift);
            // Half full at most, so a free slot is always found.
            while let Some(Some(_)) = slots.get(i) {
                i = (i + 1) & mask;
            }
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(Slot {
                    hash,
                    key: key.into(),
                    group,
                });
            }
        }
        HostMap { slots, shift, len }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The group of `key` (any case), whose [`host_hash`] of the lowercase
    /// form is `hash`.
    pub(super) fn get(&self, hash: u64, key: &[u8]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = home(hash, self.shift);
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(i)?.as_ref()?;
            if slot.hash == hash && slot.key.eq_ignore_ascii_case(key) {
                return Some(slot.group);
            }
            i = (i + 1) & mask;
        }
        None
    }
}

/// The home slot of a hash: its top bits after a multiplicative mix.
fn home(hash: u64, shift: u32) -> usize {
    (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize
}
