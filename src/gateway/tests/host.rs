use crate::gateway::host::{
    host_hash, split_authority, walk_name, Authority, HostMap, HostPattern,
};

/// The host a request is matched on, as the table sees it; `None`: only `*`.
fn host(authority: &[u8]) -> Option<String> {
    match split_authority(authority) {
        Authority::Name(name) => walk_name(name, 0, |_, _| unreachable!()).map(|hash| {
            let lower = name.to_ascii_lowercase();
            assert_eq!(hash, host_hash(&lower), "{lower:?}");
            String::from_utf8(lower).unwrap()
        }),
        Authority::Ipv6(text) => Some(String::from_utf8(text.as_bytes().to_vec()).unwrap()),
        Authority::Unusable => None,
    }
}

#[test]
fn request_hosts_lose_port_case_and_one_trailing_dot() {
    let cases: &[(&[u8], Option<&str>)] = &[
        (b"a.example.com", Some("a.example.com")),
        (b"A.Example.COM", Some("a.example.com")),
        (b"a.example.com:8080", Some("a.example.com")),
        (b"a.example.com:", Some("a.example.com")),
        (b"a.example.com.", Some("a.example.com")),
        (b"a.example.com.:443", Some("a.example.com")),
        (b"localhost", Some("localhost")),
        (b"10.0.0.1:80", Some("10.0.0.1")),
        (b"my_service.internal", Some("my_service.internal")),
        (b"[::1]", Some("[::1]")),
        (b"[::1]:8080", Some("[::1]")),
        (b"[0:0:0:0:0:0:0:1]:8080", Some("[::1]")),
        (b"[2001:DB8::A]", Some("[2001:db8::a]")),
        (b"[::ffff:10.0.0.1]:1", Some("[::ffff:10.0.0.1]")),
        // Unusable: these match only "*".
        (b"", None),
        (b".", None),
        (b"a.example.com..", None),
        (b".a.example.com", None),
        (b"a..example.com", None),
        (b"a.example.com:http", None),
        (b"a.example.com:123456", None),
        (b"a.example.com:80:80", None),
        (b"a example.com", None),
        (b"a.exam\xffple.com", None),
        (b"caf\xc3\xa9.example.com", None),
        (b"a.example.com\0", None),
        (b"*.example.com", None),
        (b"[::1", None),
        (b"[::1]x", None),
        (b"[::1]:", Some("[::1]")),
        (b"[fe80::1%25eth0]", None),
        (b"[not-ipv6]", None),
        (b"::1", None),
    ];
    for (authority, want) in cases {
        assert_eq!(
            host(authority).as_deref(),
            *want,
            "{:?}",
            String::from_utf8_lossy(authority)
        );
    }
    let max = format!("{}com", "a.".repeat(125)); // 253 characters
    assert_eq!(max.len(), 253);
    let long = format!("{max}s"); // 254 characters
    assert_eq!(host(long.as_bytes()), None);
    assert_eq!(host(max.as_bytes()).as_deref(), Some(max.as_str()));
    let max_dot = format!("{max}.");
    assert_eq!(host(max_dot.as_bytes()).as_deref(), Some(max.as_str()));
}

#[test]
fn host_patterns_are_canonical() {
    use HostPattern::*;
    let ok: &[(&str, HostPattern)] = &[
        ("*", Any),
        ("a.example.com", Exact("a.example.com".into())),
        ("A.Example.COM.", Exact("a.example.com".into())),
        ("*.example.com", Wildcard("example.com".into())),
        ("*.Example.com.", Wildcard("example.com".into())),
        ("*.com", Wildcard("com".into())),
        ("10.0.0.1", Exact("10.0.0.1".into())),
        ("[::1]", Exact("[::1]".into())),
        ("[0::0:1]", Exact("[::1]".into())),
        ("xn--caf-dma.example", Exact("xn--caf-dma.example".into())),
        ("_svc.example.com", Exact("_svc.example.com".into())),
    ];
    for (pattern, want) in ok {
        assert_eq!(HostPattern::parse(pattern).as_ref(), Ok(want), "{pattern}");
    }
    let bad: &[(&str, &str)] = &[
        ("", "empty name"),
        ("*.", "empty name"),
        ("*..", "empty name"),
        ("*...", "empty label"),
        (".", "empty name"),
        ("a..b", "empty label"),
        ("a.example.com..", "empty label"),
        (
            "**",
            "'*' is allowed only alone or as the whole first label (\"*.example.com\")",
        ),
        (
            "*example.com",
            "'*' is allowed only alone or as the whole first label (\"*.example.com\")",
        ),
        (
            "a.*.com",
            "'*' is allowed only alone or as the whole first label (\"*.example.com\")",
        ),
        (
            "*.*.com",
            "'*' is allowed only alone or as the whole first label (\"*.example.com\")",
        ),
        (
            "a.example.com:8080",
            "a host pattern has no port (requests are matched with the port removed)",
        ),
        (
            "*:80",
            "a host pattern has no port (requests are matched with the port removed)",
        ),
        (
            "[::1]:8080",
            "an IPv6 literal is written \"[::1]\", without a port",
        ),
        ("[::g]", "\"::g\" is not an IPv6 address"),
        (
            "caf\u{e9}.example",
            "non-ASCII character (write the name in its punycode \"xn--\" form)",
        ),
        ("a b.com", "character ' ' is not allowed"),
        ("a/b", "character '/' is not allowed"),
        ("-a.com", "label \"-a\" starts or ends with '-'"),
        ("a-.com", "label \"a-\" starts or ends with '-'"),
    ];
    for (pattern, reason) in bad {
        assert_eq!(
            HostPattern::parse(pattern),
            Err(reason.to_string()),
            "{pattern}"
        );
    }
    let label = "a".repeat(64);
    assert_eq!(
        HostPattern::parse(&format!("{label}.com")),
        Err(format!("label \"{label}\" is longer than 63 characters"))
    );
    assert_eq!(
        HostPattern::parse(&format!("{}com", "a.".repeat(126))),
        Err("longer than 253 characters".to_string())
    );
}

#[test]
fn walking_a_name_hashes_every_suffix_shortest_first() {
    let mut seen = Vec::new();
    let hash = walk_name(b"X.y.Example.COM", 3, |hash, suffix| {
        let lower = suffix.to_ascii_lowercase();
        assert_eq!(hash, host_hash(&lower));
        seen.push(String::from_utf8(suffix.to_vec()).unwrap());
    });
    assert_eq!(hash, Some(host_hash(b"x.y.example.com")));
    assert_eq!(seen, ["COM", "Example.COM", "y.Example.COM"]);
    let mut count = 0;
    walk_name(b"a.b.c.d.e", 2, |_, _| count += 1);
    assert_eq!(count, 2);
    // An invalid name may have reported suffixes before failing: callers
    // discard them when the walk returns None.
    assert_eq!(walk_name(b"a b.example.com", 2, |_, _| {}), None);
    assert_eq!(walk_name(b"", 2, |_, _| {}), None);
}

#[test]
fn host_maps_find_keys_in_any_case_and_nothing_else() {
    let keys: Vec<(Vec<u8>, usize)> = (0..1000)
        .map(|i| (format!("tenant-{i}.models.example.com").into_bytes(), i))
        .collect();
    let map = HostMap::new(keys.clone());
    assert!(!map.is_empty());
    for (key, group) in &keys {
        assert_eq!(map.get(host_hash(key), key), Some(*group));
        let upper = key.to_ascii_uppercase();
        assert_eq!(map.get(host_hash(key), &upper), Some(*group));
    }
    for miss in [
        "tenant-1000.models.example.com",
        "models.example.com",
        "",
        "x",
    ] {
        assert_eq!(
            map.get(host_hash(miss.as_bytes()), miss.as_bytes()),
            None,
            "{miss}"
        );
    }
    // A wrong hash finds nothing even for a present key.
    assert_eq!(
        map.get(host_hash(b"x"), b"tenant-1.models.example.com"),
        None
    );
    let empty = HostMap::new(Vec::new());
    assert!(empty.is_empty());
    assert_eq!(empty.get(host_hash(b"a"), b"a"), None);
    // Colliding home slots: every key of a tiny map is still found.
    let small = HostMap::new((0..4).map(|i| (vec![b'a' + i], usize::from(i))).collect());
    for i in 0..4u8 {
        assert_eq!(
            small.get(host_hash(&[b'a' + i]), &[b'a' + i]),
            Some(usize::from(i))
        );
    }
}
