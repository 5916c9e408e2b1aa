//! Gateway matching: `GatewayTable::compile` on generated tables (valid and
//! invalid host patterns and path prefixes) and `GatewayTable::select` on
//! generated or raw `:authority` and `:path` bytes.
//!
//! Checks: no panic; a normalized path has no dot segment, no empty segment
//! and no encoded unreserved byte, and normalizing it again changes nothing;
//! and, for hosts spelled from a small vocabulary (any case, a port, a
//! trailing dot), the table picks what a naive reference picks: the exact
//! host, else the longest wildcard suffix, else `*`, then that pattern's
//! longest `path_prefix` on a segment boundary, with the stripped `:path`
//! the reference builds.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use canary_gate::gateway::{normalize, GatewaySpec, GatewayTable, Match};
use libfuzzer_sys::fuzz_target;

/// Host patterns, canonical (lowercase, no trailing dot), plus some invalid ones.
const PATTERNS: &[&str] = &[
    "a.example.com",
    "b.example.com",
    "example.com",
    "*.example.com",
    "*.a.example.com",
    "*",
    "x.y",
    "*.y",
    "10.0.0.1",
    "[::1]",
    "*.",
    "a..b",
    "A.Example.com",
    "*.*.y",
    "",
];
/// Request host names: the reference understands these.
const HOSTS: &[&str] = &[
    "a.example.com",
    "b.example.com",
    "example.com",
    "z.a.example.com",
    "q.z.a.example.com",
    "c.example.com",
    "x.y",
    "q.x.y",
    "y",
    "other.org",
    "com",
    "10.0.0.1",
];
const PREFIXES: &[&str] = &[
    "/",
    "/a",
    "/a/b",
    "/fraud",
    "/fraud/v2",
    "/chat",
    "/a/",
    "a",
    "/a/../b",
    "/%66raud",
    "/a b",
    "/a//b",
    "/A",
];
const SEGMENTS: &[&str] = &[
    "a", "b", "fraud", "v2", "chat", "..", ".", "", "%2e", "%2E%2e", "%66raud", "x;y", "%2F", "A",
    "%20", "~", "%7e",
];

#[derive(Debug)]
struct Input {
    specs: Vec<GatewaySpec>,
    authority: Option<Vec<u8>>,
    /// The authority is from the vocabulary (the reference applies).
    simple_host: bool,
    path: Vec<u8>,
}

fn pick<'a>(u: &mut Unstructured, words: &[&'a str]) -> Result<&'a str> {
    Ok(words[u.choose_index(words.len())?])
}

fn input(u: &mut Unstructured) -> Result<Input> {
    let mut specs = Vec::new();
    for i in 0..u.int_in_range(1..=6)? {
        let mut hosts = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            hosts.push(pick(u, PATTERNS)?.to_string());
        }
        specs.push(GatewaySpec {
            name: if u.ratio(1, 32)? {
                "Bad_Name".into()
            } else {
                format!("g{i}")
            },
            hosts,
            path_prefix: pick(u, PREFIXES)?.to_string(),
            strip_prefix: u.arbitrary()?,
        });
    }
    let (authority, simple_host) = match u.int_in_range(0..=7)? {
        0 => (None, false),
        1 => (Some(Vec::<u8>::arbitrary(u)?), false),
        _ => {
            let mut host: Vec<u8> = pick(u, HOSTS)?.bytes().collect();
            for b in &mut host {
                if u.ratio(1, 4)? {
                    b.make_ascii_uppercase();
                }
            }
            if u.ratio(1, 4)? {
                host.push(b'.');
            }
            if u.ratio(1, 4)? {
                host.extend_from_slice(format!(":{}", u.int_in_range(0..=65535u32)?).as_bytes());
            }
            (Some(host), true)
        }
    };
    let path = if u.ratio(1, 8)? {
        Vec::<u8>::arbitrary(u)?
    } else {
        let mut p = Vec::new();
        for _ in 0..u.int_in_range(0..=5)? {
            p.push(b'/');
            p.extend_from_slice(pick(u, SEGMENTS)?.as_bytes());
        }
        if p.is_empty() || u.ratio(1, 8)? {
            p.push(b'/');
        }
        if u.ratio(1, 4)? {
            p.extend_from_slice(b"?q=/a/../b&x=%2F");
        }
        p
    };
    Ok(Input {
        specs,
        authority,
        simple_host,
        path,
    })
}

/// The request host as the reference sees it: lowercase, no port, no trailing dot.
fn reference_host(authority: &[u8]) -> String {
    let text = String::from_utf8_lossy(authority).to_ascii_lowercase();
    let host = match text.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ => text,
    };
    host.strip_suffix('.').unwrap_or(&host).to_string()
}

/// Which host pattern (lowercased) a host selects, naively: exact, longest
/// wildcard suffix, `*`. (The table compiled, so every pattern is valid.)
fn reference_pattern(specs: &[GatewaySpec], host: Option<&str>) -> Option<String> {
    let patterns: Vec<String> = specs
        .iter()
        .flat_map(|s| s.hosts.iter().map(|h| h.to_ascii_lowercase()))
        .collect();
    if let Some(host) = host {
        if let Some(p) = patterns.iter().find(|p| *p == host) {
            return Some(p.clone());
        }
        let wildcard = patterns
            .iter()
            .filter_map(|p| p.strip_prefix("*."))
            .filter(|suffix| host.len() > suffix.len() && host.ends_with(&format!(".{suffix}")))
            .max_by_key(|suffix| suffix.len());
        if let Some(suffix) = wildcard {
            return Some(format!("*.{suffix}"));
        }
    }
    patterns.into_iter().find(|p| p == "*")
}

fn prefix_matches(path: &[u8], prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let p = prefix.as_bytes();
    path.starts_with(p) && matches!(path.get(p.len()), None | Some(b'/'))
}

fn check(input: &Input) {
    let table = match GatewayTable::compile(&input.specs) {
        Ok(t) => t,
        Err(e) => {
            assert!(e.path.starts_with("gateways"), "{e:?}");
            return;
        }
    };
    let got = table.select(input.authority.as_deref(), &input.path);
    let normalized = match normalize(&input.path) {
        Ok(n) => n,
        Err(e) => {
            assert_eq!(got, Match::BadPath(e));
            return;
        }
    };
    let path = normalized.path();
    assert!(path.starts_with(b"/"));
    for segment in path
        .split(|&b| b == b'/')
        .skip(1)
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .skip(1)
    {
        assert!(!segment.is_empty(), "empty segment in {path:?}");
    }
    for segment in path.split(|&b| b == b'/') {
        assert!(
            segment != b"." && segment != b"..",
            "dot segment in {path:?}"
        );
    }
    let again = normalize(path).map(|n| n.path().to_vec());
    assert_eq!(again.as_deref(), Ok(path), "normalizing twice");

    if !input.simple_host {
        return;
    }
    let host = input.authority.as_deref().map(reference_host);
    let Some(pattern) = reference_pattern(&input.specs, host.as_deref()) else {
        assert_eq!(got, Match::Unmatched, "no pattern for {host:?}");
        return;
    };
    let best = input
        .specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.hosts.iter().any(|h| h.to_ascii_lowercase() == pattern))
        .filter(|(_, s)| prefix_matches(path, &s.path_prefix))
        .max_by_key(|(_, s)| {
            if s.path_prefix == "/" {
                0
            } else {
                s.path_prefix.len()
            }
        });
    match (best, got) {
        (None, Match::Unmatched) => {}
        (Some((i, spec)), Match::Gateway { index, strip }) => {
            assert_eq!(index, i, "host {host:?} pattern {pattern:?} path {path:?}");
            if spec.strip_prefix {
                let cut = if spec.path_prefix == "/" {
                    0
                } else {
                    spec.path_prefix.len()
                };
                let mut want = path.get(cut..).unwrap_or_default().to_vec();
                if want.is_empty() {
                    want.push(b'/');
                }
                want.extend_from_slice(normalized.query());
                assert_eq!(strip.as_deref(), Some(&want[..]));
            } else {
                assert_eq!(strip, None);
            }
        }
        (want, got) => panic!("want {want:?}, got {got:?} (host {host:?}, path {path:?})"),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = input(&mut Unstructured::new(data)) {
        check(&input);
    }
});
