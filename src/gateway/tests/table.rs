use std::borrow::Cow;

use crate::gateway::{GatewaySpec, GatewayTable, Match, PathError};

fn gw(name: &str, hosts: &[&str], prefix: &str) -> GatewaySpec {
    GatewaySpec {
        name: name.into(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        path_prefix: prefix.into(),
        strip_prefix: false,
    }
}

fn stripping(mut spec: GatewaySpec) -> GatewaySpec {
    spec.strip_prefix = true;
    spec
}

fn table(specs: &[GatewaySpec]) -> GatewayTable {
    GatewayTable::compile(specs).unwrap()
}

fn compile_error(specs: &[GatewaySpec]) -> String {
    GatewayTable::compile(specs).unwrap_err().to_string()
}

/// The gateway name, `unmatched` or `bad`.
fn pick(t: &GatewayTable, host: Option<&[u8]>, path: &[u8]) -> String {
    match t.select(host, path) {
        Match::Gateway { index, .. } => t.name(index).unwrap().to_string(),
        Match::Unmatched => "unmatched".into(),
        Match::BadPath(_) => "bad".into(),
    }
}

fn check(t: &GatewayTable, cases: &[(&str, &str, &str)]) {
    for (host, path, want) in cases {
        assert_eq!(
            pick(t, Some(host.as_bytes()), path.as_bytes()),
            *want,
            "host {host:?} path {path:?}"
        );
    }
}

#[test]
fn defaults_are_any_host_and_every_path() {
    let spec = GatewaySpec::new("all");
    assert_eq!(spec.hosts, ["*"]);
    assert_eq!(spec.path_prefix, "/");
    assert!(!spec.strip_prefix);
    let t = table(&[spec]);
    check(
        &t,
        &[
            ("a.example.com", "/", "all"),
            ("", "/x/y", "all"),
            ("\u{ff}", "/", "all"),
        ],
    );
    assert_eq!(pick(&t, None, b"/anything"), "all");
    assert_eq!(
        (t.len(), t.is_empty(), t.names()),
        (1, false, &["all".to_string()][..])
    );
}

#[test]
fn the_most_specific_host_pattern_wins() {
    let t = table(&[
        gw("any", &["*"], "/"),
        gw("wild", &["*.example.com"], "/"),
        gw("exact", &["a.example.com"], "/"),
        gw("wild-b", &["*.b.example.com"], "/"),
        gw("exact-b", &["b.example.com"], "/"),
        gw("ipv6", &["[::1]"], "/"),
        gw("ipv4", &["10.0.0.1"], "/"),
    ]);
    check(
        &t,
        &[
            ("a.example.com", "/", "exact"),
            ("A.Example.COM:8443", "/", "exact"),
            ("a.example.com.", "/", "exact"),
            ("x.example.com", "/", "wild"),
            ("x.y.example.com", "/", "wild"),
            ("x.a.example.com", "/", "wild"),
            ("example.com", "/", "any"), // *.example.com does not match example.com
            ("b.example.com", "/", "exact-b"),
            ("x.b.example.com", "/", "wild-b"), // the longest wildcard suffix
            ("x.y.b.example.com:1", "/", "wild-b"),
            ("xb.example.com", "/", "wild"),
            ("other.org", "/", "any"),
            ("com", "/", "any"),
            ("[::1]:8080", "/", "ipv6"),
            ("[0:0::1]", "/", "ipv6"),
            ("10.0.0.1:80", "/", "ipv4"),
            ("", "/", "any"),
            ("a..example.com", "/", "any"),
            ("a.example.com:http", "/", "any"),
        ],
    );
    assert_eq!(pick(&t, None, b"/"), "any");
    assert_eq!(pick(&t, Some(b"a.example.com\xff"), b"/"), "any");
}

#[test]
fn without_star_an_unknown_host_is_unmatched() {
    let t = table(&[
        gw("exact", &["a.example.com"], "/"),
        gw("wild", &["*.example.com"], "/"),
    ]);
    check(
        &t,
        &[
            ("a.example.com", "/", "exact"),
            ("example.com", "/", "unmatched"),
            ("b.org", "/", "unmatched"),
        ],
    );
    assert_eq!(pick(&t, None, b"/"), "unmatched");
}

#[test]
fn there_is_no_fallback_to_a_less_specific_host() {
    let t = table(&[
        gw("any", &["*"], "/"),
        gw("wild-chat", &["*.example.com"], "/chat"),
        gw("exact-fraud", &["a.example.com"], "/fraud"),
    ]);
    check(
        &t,
        &[
            ("a.example.com", "/fraud/score", "exact-fraud"),
            ("a.example.com", "/chat", "unmatched"), // not wild-chat, not any
            ("a.example.com", "/", "unmatched"),
            ("x.example.com", "/chat/x", "wild-chat"),
            ("x.example.com", "/fraud", "unmatched"), // not any
            ("other.org", "/fraud", "any"),
        ],
    );
}

#[test]
fn the_longest_prefix_on_a_segment_boundary_wins() {
    let t = table(&[
        gw("root", &["*"], "/"),
        gw("models", &["*"], "/v1/models"),
        gw("v1", &["*"], "/v1"),
        gw("fraud-model", &["*"], "/v1/models/fraud"),
        gw("fraud", &["*"], "/fraud"),
    ]);
    check(
        &t,
        &[
            ("h", "/", "root"),
            ("h", "/v1", "v1"),
            ("h", "/v1/", "v1"),
            ("h", "/v1x", "root"),
            ("h", "/v1/models", "models"),
            ("h", "/v1/models/", "models"),
            ("h", "/v1/models/chat:predict", "models"),
            ("h", "/v1/models/fraud", "fraud-model"),
            ("h", "/v1/models/fraud/score?x=1", "fraud-model"),
            ("h", "/v1/models/fraudulent", "models"),
            ("h", "/fraud", "fraud"),
            ("h", "/fraud/", "fraud"),
            ("h", "/fraud/score?x=1", "fraud"),
            ("h", "/fraud?x=1", "fraud"),
            ("h", "/fraudulent", "root"),
            ("h", "/fraud.json", "root"),
            ("h", "/fraud;a=b", "root"),
            ("h", "/Fraud", "root"),
            ("h", "/fra", "root"),
        ],
    );
    let no_root = table(&[gw("fraud", &["*"], "/fraud")]);
    check(
        &no_root,
        &[
            ("h", "/fraudulent", "unmatched"),
            ("h", "/", "unmatched"),
            ("h", "/fraud", "fraud"),
        ],
    );
}

#[test]
fn paths_are_matched_after_normalization() {
    let t = table(&[
        gw("root", &["*"], "/"),
        gw("fraud", &["*"], "/fraud"),
        gw("chat", &["*"], "/chat"),
        gw("admin", &["*"], "/admin"),
    ]);
    check(
        &t,
        &[
            ("h", "/fraud/../chat", "chat"),
            ("h", "//fraud", "fraud"),
            ("h", "/%66raud", "fraud"),
            ("h", "/%2e%2e/fraud", "fraud"),
            ("h", "/%2E%2E/fraud", "fraud"),
            ("h", "/./fraud", "fraud"),
            ("h", "/fraud/%2e%2e/chat", "chat"),
            ("h", "/fraud/.%2E/chat/x", "chat"),
            ("h", "/chat/..", "root"),
            ("h", "/chat/../", "root"),
            ("h", "/x/../../admin", "admin"),
            ("h", "/fraud//score", "fraud"),
            ("h", "/%252e%252e/admin", "root"),
            ("h", "/fraud/..;/admin", "fraud"), // ';' is an ordinary character
            ("h", "/fraud?next=/../admin", "fraud"),
            // Refused before any matching.
            ("h", "/fraud%2Fscore", "bad"),
            ("h", "/fraud%2f..%2fadmin", "bad"),
            ("h", "/fraud\\..\\admin", "bad"),
            ("h", "/fraud%5c..%5cadmin", "bad"),
            ("h", "/fraud%5C", "bad"),
            ("h", "/fraud%00", "bad"),
            ("h", "/fraud\0", "bad"),
            ("h", "\\", "bad"),
            ("h", "*", "bad"),
            ("h", "", "bad"),
            ("h", "http://x/fraud", "bad"),
            ("h", "fraud", "bad"),
            ("h", "/fraud#x", "bad"),
            ("h", "/fraud//../admin", "bad"),
            ("h", "/fraud%zz", "bad"),
        ],
    );
    assert_eq!(
        t.select(Some(b"h"), b"/a%2Fb"),
        Match::BadPath(PathError::EncodedSeparator)
    );
    assert_eq!(
        t.select(None, b"*"),
        Match::BadPath(PathError::NotOriginForm)
    );
    // A bad path is refused even when no host would match.
    let none = table(&[gw("exact", &["a.example.com"], "/")]);
    assert_eq!(
        none.select(Some(b"other.org"), b"/a\\b"),
        Match::BadPath(PathError::Backslash)
    );
    assert_eq!(none.select(Some(b"other.org"), b"/a"), Match::Unmatched);
}

/// The `:path` to forward for a stripping gateway, and whether it borrows.
fn stripped(t: &GatewayTable, path: &[u8]) -> (String, bool) {
    match t.select(Some(b"h"), path) {
        Match::Gateway { strip: Some(p), .. } => {
            let borrowed = matches!(p, Cow::Borrowed(_));
            (String::from_utf8(p.into_owned()).unwrap(), borrowed)
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(path)),
    }
}

#[test]
fn strip_prefix_removes_the_matched_prefix() {
    let t = table(&[
        stripping(gw("fraud", &["*"], "/fraud")),
        stripping(gw("models", &["*"], "/v1/models")),
        gw("keep", &["*"], "/keep"),
        stripping(gw("root", &["*"], "/")),
    ]);
    let cases: &[(&str, &str, bool)] = &[
        ("/fraud/score", "/score", true),
        ("/fraud", "/", true),
        ("/fraud/", "/", true),
        ("/fraud?x=1", "/?x=1", false),
        ("/fraud/?x=1", "/?x=1", true),
        ("/fraud/score?x=1&y=/../z", "/score?x=1&y=/../z", true),
        ("/fraud/a/b/c", "/a/b/c", true),
        ("/v1/models/m:predict", "/m:predict", true),
        ("/v1/models", "/", true),
        // Normalized first: the normalized path without the prefix, plus the query as received.
        ("//fraud/score", "/score", false),
        ("/./fraud/score", "/score", false),
        ("//fraud/./score?x=%2e%2e", "/score?x=%2e%2e", false),
        ("/%66raud/sc%6Fre", "/score", false),
        ("/chat/../fraud/a//b", "/a/b", false),
        ("/fraud/x/..", "/", false),
        ("/fraud/x/..?q", "/?q", false),
        ("/fraud/.", "/", false),
        ("/%66raud", "/", false),
        ("/%66raud?q=1", "/?q=1", false),
        // The root prefix strips nothing but still forwards the normalized path.
        ("/other/x?q", "/other/x?q", true),
        ("/other//x?q", "/other/x?q", false),
        ("/", "/", true),
    ];
    for (path, want, borrowed) in cases {
        assert_eq!(
            stripped(&t, path.as_bytes()),
            (want.to_string(), *borrowed),
            "{path}"
        );
    }
    // Without strip_prefix, `:path` is forwarded as it came.
    assert_eq!(
        t.select(Some(b"h"), b"//keep/../keep/x"),
        Match::Gateway {
            index: 2,
            strip: None
        }
    );
}

#[test]
fn configuration_errors_name_the_field() {
    let cases: &[(Vec<GatewaySpec>, &str)] = &[
        (
            vec![gw("a", &["*"], "/"), gw("b", &["x.com"], "/"), gw("c", &["*."], "/")],
            "gateways[2].hosts[0]: \"*.\": not a valid host pattern (empty name)",
        ),
        (
            vec![gw("a", &["x.com", "*.*.com"], "/")],
            "gateways[0].hosts[1]: \"*.*.com\": not a valid host pattern ('*' is allowed only alone or as the whole first label (\"*.example.com\"))",
        ),
        (
            vec![gw("a", &["x.com:80"], "/")],
            "gateways[0].hosts[0]: \"x.com:80\": not a valid host pattern (a host pattern has no port (requests are matched with the port removed))",
        ),
        (
            vec![
                gw("a", &["*"], "/"),
                gw("fraud", &["b.example.com", "a.example.com"], "/fraud"),
                gw("c", &["a.example.com"], "/chat"),
                gw("d", &["a.example.com"], "/fraud"),
            ],
            "gateways[3]: host \"a.example.com\" with path_prefix \"/fraud\" is already used by gateways[1]",
        ),
        (
            vec![gw("a", &["a.example.com"], "/fraud"), gw("b", &["A.Example.com."], "/fraud")],
            "gateways[1]: host \"A.Example.com.\" with path_prefix \"/fraud\" is already used by gateways[0]",
        ),
        (
            vec![gw("a", &["*.example.com"], "/"), gw("b", &["*.EXAMPLE.com"], "/")],
            "gateways[1]: host \"*.EXAMPLE.com\" with path_prefix \"/\" is already used by gateways[0]",
        ),
        (
            vec![GatewaySpec::new("a"), GatewaySpec::new("b")],
            "gateways[1]: host \"*\" with path_prefix \"/\" is already used by gateways[0]",
        ),
        (
            vec![gw("a", &["[::1]"], "/"), gw("b", &["[0::1]"], "/")],
            "gateways[1]: host \"[0::1]\" with path_prefix \"/\" is already used by gateways[0]",
        ),
        (
            vec![gw("a", &["a.example.com", "x.org", "A.example.com"], "/")],
            "gateways[0].hosts[2]: \"A.example.com\" is the same host pattern as hosts[0]",
        ),
        (
            vec![gw("a", &["*"], "/"), gw("b", &[], "/")],
            "gateways[1].hosts: must list at least one host pattern (\"*\" for any host)",
        ),
        (
            vec![gw("a", &["*"], "/fraud/")],
            "gateways[0].path_prefix: \"/fraud/\": a trailing '/' is not allowed (write \"/fraud\", which also matches \"/fraud/\")",
        ),
        (
            vec![gw("a", &["*"], "fraud")],
            "gateways[0].path_prefix: \"fraud\": must start with '/'",
        ),
        (
            vec![gw("a", &["*"], "/"), gw("a", &["x.com"], "/")],
            "gateways[1].name: \"a\" is already used by gateways[0]",
        ),
        (vec![gw("", &["*"], "/")], "gateways[0].name: required (a-z, 0-9 and '-')"),
    ];
    for (specs, message) in cases {
        assert_eq!(compile_error(specs), *message);
    }
    let err = GatewayTable::compile(&[gw("a", &["*."], "/")]).unwrap_err();
    assert_eq!(err.path, "gateways[0].hosts[0]");
    assert_eq!(err.message, "\"*.\": not a valid host pattern (empty name)");
}

#[test]
fn the_same_host_with_other_prefixes_and_the_same_prefix_on_other_hosts_are_fine() {
    let t = table(&[
        gw("a-fraud", &["a.example.com"], "/fraud"),
        gw("a-chat", &["a.example.com", "*.example.com"], "/chat"),
        gw("b-fraud", &["b.example.com", "*.example.com"], "/fraud"),
    ]);
    check(
        &t,
        &[
            ("a.example.com", "/fraud", "a-fraud"),
            ("a.example.com", "/chat", "a-chat"),
            ("x.example.com", "/chat", "a-chat"),
            ("x.example.com", "/fraud", "b-fraud"),
            ("b.example.com", "/fraud", "b-fraud"),
            ("b.example.com", "/chat", "unmatched"),
        ],
    );
}

#[test]
fn an_empty_table_matches_nothing() {
    let t = table(&[]);
    assert!(t.is_empty());
    assert_eq!(t.select(Some(b"h"), b"/"), Match::Unmatched);
    assert_eq!(
        t.select(Some(b"h"), b"/%2f"),
        Match::BadPath(PathError::EncodedSeparator)
    );
    assert_eq!(t.name(0), None);
}

// ---------------------------------------------------------------------------
// Randomized cross-check against a naive matcher.
// ---------------------------------------------------------------------------

/// The spec, read literally: every pattern that matches the host, the most
/// specific one, then the longest matching prefix among its gateways.
fn naive(specs: &[GatewaySpec], host: &str, path: &str) -> Option<usize> {
    let host = host.to_ascii_lowercase();
    let host = host.split(':').next().unwrap();
    let host = host.strip_suffix('.').unwrap_or(host);
    let rank = |pattern: &str| -> Option<usize> {
        let pattern = pattern.to_ascii_lowercase();
        if pattern == "*" {
            Some(0)
        } else if let Some(suffix) = pattern.strip_prefix("*.") {
            host.ends_with(&format!(".{suffix}"))
                .then_some(1 + suffix.len())
        } else {
            (pattern == host).then_some(usize::MAX)
        }
    };
    let best = specs
        .iter()
        .flat_map(|s| s.hosts.iter())
        .filter_map(|h| rank(h))
        .max()?;
    let path = path.split('?').next().unwrap();
    specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.hosts.iter().any(|h| rank(h) == Some(best)))
        .filter(|(_, s)| {
            s.path_prefix == "/"
                || path == s.path_prefix
                || path.starts_with(&format!("{}/", s.path_prefix))
        })
        .max_by_key(|(_, s)| s.path_prefix.len())
        .map(|(i, _)| i)
}

#[test]
fn the_table_agrees_with_a_naive_matcher() {
    let mut rng = fastrand::Rng::with_seed(7);
    let labels = ["a", "b", "c", "example", "com"];
    let segments = ["a", "b", "fraud", "v1"];
    let random_name = |rng: &mut fastrand::Rng, n: usize| -> String {
        (0..n)
            .map(|_| labels[rng.usize(..labels.len())])
            .collect::<Vec<_>>()
            .join(".")
    };
    let random_path = |rng: &mut fastrand::Rng| -> String {
        let n = rng.usize(0..4);
        let path: String = (0..n)
            .map(|_| format!("/{}", segments[rng.usize(..segments.len())]))
            .collect();
        if path.is_empty() {
            "/".into()
        } else {
            path
        }
    };
    let (mut matched, mut unmatched) = (0, 0);
    for round in 0..300 {
        let mut specs: Vec<GatewaySpec> = Vec::new();
        let mut used = std::collections::HashSet::new();
        for i in 0..rng.usize(1..12) {
            let hosts: Vec<String> = (0..rng.usize(1..3))
                .map(|_| match rng.u8(0..4) {
                    0 => "*".to_string(),
                    1 => {
                        let n = rng.usize(1..3);
                        format!("*.{}", random_name(&mut rng, n))
                    }
                    _ => {
                        let n = rng.usize(1..4);
                        random_name(&mut rng, n)
                    }
                })
                .collect();
            let prefix = random_path(&mut rng);
            if hosts
                .iter()
                .any(|h| !used.insert((h.clone(), prefix.clone())))
            {
                continue; // the table would refuse it: covered by the error tests
            }
            specs.push(GatewaySpec {
                name: format!("g{i}"),
                hosts,
                path_prefix: prefix,
                strip_prefix: false,
            });
        }
        let t = table(&specs);
        for _ in 0..50 {
            let n = rng.usize(1..5);
            let host = random_name(&mut rng, n);
            let path = random_path(&mut rng);
            let want = naive(&specs, &host, &path);
            let got = match t.select(Some(host.as_bytes()), path.as_bytes()) {
                Match::Gateway { index, .. } => Some(index),
                Match::Unmatched => None,
                Match::BadPath(e) => panic!("{path}: {e}"),
            };
            assert_eq!(
                got, want,
                "round {round}: host {host} path {path} in {specs:#?}"
            );
            if got.is_some() {
                matched += 1;
            } else {
                unmatched += 1;
            }
        }
    }
    // Both outcomes are well represented.
    assert!(
        matched > 3000 && unmatched > 3000,
        "{matched} matched, {unmatched} unmatched"
    );
}
