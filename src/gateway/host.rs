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

/// Size of the stack buffer a request host is lowercased into: a DNS name, or
/// the longest canonical IPv6 literal (`[` + 45 + `]`).
pub(super) const HOST_BUF_LEN: usize = 256;

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

/// Reduces a request `:authority` to the host gateways match on, written into
/// `buf` (no heap allocation): port removed, lowercase, one trailing dot
/// removed, IPv6 literals canonical. `None` when the host is unusable (see the
/// module documentation); such a request matches only `*`.
pub(super) fn request_host<'b>(
    authority: &[u8],
    buf: &'b mut [u8; HOST_BUF_LEN],
) -> Option<&'b [u8]> {
    if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|&b| b == b']')?;
        let (literal, rest) = authority.split_at(close.checked_add(1)?);
        if !is_port(rest) {
            return None;
        }
        let inner = literal.get(1..close)?;
        let addr: Ipv6Addr = std::str::from_utf8(inner).ok()?.parse().ok()?;
        return write_ipv6(addr, buf);
    }
    let (host, rest) = match authority.iter().position(|&b| b == b':') {
        Some(colon) => authority.split_at(colon),
        None => (authority, &[][..]),
    };
    if !is_port(rest) {
        return None;
    }
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || host.len() > MAX_NAME_LEN {
        return None;
    }
    let out = buf.get_mut(..host.len())?;
    // `true` at the start so that a leading '.' is an empty label.
    let mut after_dot = true;
    for (o, &b) in out.iter_mut().zip(host) {
        match b {
            b'.' if after_dot => return None,
            b'.' => after_dot = true,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => after_dot = false,
            _ => return None,
        }
        *o = b.to_ascii_lowercase();
    }
    if after_dot {
        return None;
    }
    Some(out)
}

/// `""` or `":"` followed by at most five digits.
fn is_port(rest: &[u8]) -> bool {
    match rest.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// Writes `[addr]` in canonical form into `buf` (std formats an `Ipv6Addr`
/// without allocating).
fn write_ipv6(addr: Ipv6Addr, buf: &mut [u8; HOST_BUF_LEN]) -> Option<&[u8]> {
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
    let mut cursor = Cursor {
        buf: buf.as_mut_slice(),
        len: 0,
    };
    fmt::write(&mut cursor, format_args!("[{addr}]")).ok()?;
    let len = cursor.len;
    buf.get(..len)
}
