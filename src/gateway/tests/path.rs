use crate::gateway::path::{check_prefix, is_unreserved, prefix_matches};
use crate::gateway::{normalize, PathError};

/// `Ok((path, query))` as strings, lossily (test inputs are ASCII).
fn norm(raw: &[u8]) -> Result<(String, String), PathError> {
    normalize(raw).map(|n| {
        (
            String::from_utf8(n.path().to_vec()).unwrap(),
            String::from_utf8(n.query().to_vec()).unwrap(),
        )
    })
}

#[test]
fn paths_are_normalized() {
    let cases: &[(&[u8], &str)] = &[
        // Unchanged (borrowed).
        (b"/", "/"),
        (b"/fraud", "/fraud"),
        (b"/fraud/", "/fraud/"),
        (b"/fraud/score", "/fraud/score"),
        (b"/a;b/..;/c", "/a;b/..;/c"),
        (b"/%252e%252e/admin", "/%252e%252e/admin"),
        (b"/%20/%C3%A9/%3f", "/%20/%C3%A9/%3f"),
        (b"/...", "/..."),
        (b"/a/..b/.c/c.", "/a/..b/.c/c."),
        // Dot segments (RFC 3986 5.2.4).
        (b"/fraud/../chat", "/chat"),
        (b"/./fraud", "/fraud"),
        (b"/fraud/./score", "/fraud/score"),
        (b"/..", "/"),
        (b"/../fraud", "/fraud"),
        (b"/../../fraud", "/fraud"),
        (b"/a/..", "/"),
        (b"/a/.", "/a/"),
        (b"/a/b/..", "/a/"),
        (b"/.", "/"),
        (b"/a/b/../../..", "/"),
        // Repeated slashes.
        (b"//fraud", "/fraud"),
        (b"//", "/"),
        (b"/fraud//score", "/fraud/score"),
        (b"/fraud///", "/fraud/"),
        (b"/a//./b", "/a/b"),
        (b"/a/..//b", "/b"),
        // Percent-encoded unreserved characters.
        (b"/%66raud", "/fraud"),
        (b"/%46RAUD", "/FRAUD"),
        (b"/%2e%2e/fraud", "/fraud"),
        (b"/%2E%2E/fraud", "/fraud"),
        (b"/fraud/%2e%2e/chat", "/chat"),
        (b"/fraud/.%2e/chat", "/chat"),
        (b"/fraud/%2e/score", "/fraud/score"),
        (b"/%7Euser/%2D%5F%2e%30", "/~user/-_.0"),
        (b"/a%2Db%20c", "/a-b%20c"),
        (b"/%61%2e%2e/b", "/a../b"),
    ];
    for (raw, want) in cases {
        let got = norm(raw);
        assert_eq!(
            got,
            Ok((want.to_string(), String::new())),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
        let changed = normalize(raw).unwrap().changed();
        assert_eq!(
            changed,
            raw != &want.as_bytes(),
            "changed() for {:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn only_the_path_part_is_normalized() {
    let cases: &[(&[u8], &[u8], &[u8])] = &[
        (b"/fraud?x=1", b"/fraud", b"?x=1"),
        (b"/fraud?", b"/fraud", b"?"),
        (
            b"/fraud?next=/../admin&p=%2F%5C%00",
            b"/fraud",
            b"?next=/../admin&p=%2F%5C%00",
        ),
        (b"//fraud/../chat?a=%2e%2e//b", b"/chat", b"?a=%2e%2e//b"),
        (b"/?x=\xff", b"/", b"?x=\xff"),
    ];
    for (raw, path, query) in cases {
        let n = normalize(raw).unwrap();
        assert_eq!(n.path(), *path, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(n.query(), *query, "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn ambiguous_paths_are_refused() {
    use PathError::*;
    let cases: &[(&[u8], PathError)] = &[
        (b"", NotOriginForm),
        (b"*", NotOriginForm),
        (b"fraud", NotOriginForm),
        (b"http://x/y", NotOriginForm),
        (b"?x=1", NotOriginForm),
        (b"\\", NotOriginForm),
        (b"\\fraud", NotOriginForm),
        (b"/fraud%2Fscore", EncodedSeparator),
        (b"/fraud%2fscore", EncodedSeparator),
        (b"/fraud%5Cscore", EncodedSeparator),
        (b"/fraud%5c..%5cadmin", EncodedSeparator),
        (b"/fraud\\..\\admin", Backslash),
        (b"/fraud\\", Backslash),
        (b"/fraud\0", Nul),
        (b"/fraud%00.json", Nul),
        (b"/fraud%", BadPercentEncoding),
        (b"/fraud%2", BadPercentEncoding),
        (b"/fraud%zz", BadPercentEncoding),
        (b"/fraud%%32e", BadPercentEncoding),
        (b"/fraud%2g", BadPercentEncoding),
        (b"/fraud#frag", ForbiddenByte),
        (b"/fraud score", ForbiddenByte),
        (b"/fraud\tscore", ForbiddenByte),
        (b"/fraud\r\n", ForbiddenByte),
        (b"/fraud\x7f", ForbiddenByte),
        (b"/caf\xc3\xa9", ForbiddenByte),
        (b"/\xc0\xaf..\xc0\xafadmin", ForbiddenByte),
        (b"/\xff", ForbiddenByte),
        // `..` removing an empty segment: `/a/b` or `/b` depending on the order of
        // dot removal and slash merging.
        (b"/a//../b", DotDotAfterEmptySegment),
        (b"/public//../admin", DotDotAfterEmptySegment),
        (b"/a//b/../../c", DotDotAfterEmptySegment),
        (b"/a//%2e%2e/b", DotDotAfterEmptySegment),
        (b"//..", DotDotAfterEmptySegment),
        (b"/a//..", DotDotAfterEmptySegment),
    ];
    for (raw, want) in cases {
        assert_eq!(norm(raw), Err(*want), "{:?}", String::from_utf8_lossy(raw));
    }
    // The checks stop at the first '?'.
    assert!(normalize(b"/ok?%2F\\%00#\xff").is_ok());
}

// ---------------------------------------------------------------------------
// Exhaustive check against a literal reading of RFC 3986 section 5.2.4.
// ---------------------------------------------------------------------------

/// RFC 3986 5.2.4, step by step, on a string.
fn rfc_remove_dot_segments(path: &str) -> String {
    fn pop(output: &mut String) {
        let cut = output.rfind('/').unwrap_or(0);
        output.truncate(cut);
    }
    let mut input = path.to_string();
    let mut output = String::new();
    while !input.is_empty() {
        if input.starts_with("../") {
            input.drain(..3);
        } else if input.starts_with("./") {
            input.drain(..2);
        } else if input.starts_with("/./") {
            input.replace_range(..3, "/");
        } else if input == "/." {
            input = "/".into();
        } else if input.starts_with("/../") {
            input.replace_range(..4, "/");
            pop(&mut output);
        } else if input == "/.." {
            input = "/".into();
            pop(&mut output);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input.drain(..end);
        }
    }
    output
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let v = u8::from_str_radix(&path[i + 1..i + 3], 16).unwrap();
            if is_unreserved(v) {
                out.push(v);
            } else {
                out.extend_from_slice(&bytes[i..i + 3]);
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Every sequence of up to `max` tokens after a leading '/'.
fn sequences(tokens: &[&str], max: usize, mut f: impl FnMut(&str)) {
    let mut stack = vec![String::from("/")];
    let mut next = Vec::new();
    for _ in 0..=max {
        for s in stack.drain(..) {
            f(&s);
            for t in tokens {
                next.push(format!("{s}{t}"));
            }
        }
        std::mem::swap(&mut stack, &mut next);
    }
}

#[test]
fn normalization_matches_the_rfc_whatever_the_order_and_is_idempotent() {
    let tokens = ["/", ".", "a", "%2e", "%2E", "%61", ";", "%20"];
    let (mut checked, mut refused) = (0u32, 0u32);
    sequences(&tokens, 6, |raw| {
        let decoded = decode_unreserved(raw);
        let dots_first = merge_slashes(&rfc_remove_dot_segments(&decoded));
        let merge_first = rfc_remove_dot_segments(&merge_slashes(&decoded));
        match normalize(raw.as_bytes()) {
            Ok(n) => {
                let path = std::str::from_utf8(n.path()).unwrap();
                // The RFC, and the same whichever of the two steps runs first.
                assert_eq!(path, dots_first, "{raw}");
                assert_eq!(path, merge_first, "{raw}");
                // Idempotent, and borrowed the second time.
                let again = normalize(n.path()).unwrap();
                assert!(!again.changed(), "{raw} -> {path} changes again");
                assert_eq!(again.path(), n.path());
                // The invariants the matcher relies on.
                assert!(path.starts_with('/'), "{raw}");
                for bad in ["//", "/./", "/../"] {
                    assert!(!path.contains(bad), "{raw} -> {path}");
                }
                assert!(
                    !path.ends_with("/.") && !path.ends_with("/.."),
                    "{raw} -> {path}"
                );
                assert_eq!(n.changed(), path != raw, "{raw}");
                checked += 1;
            }
            Err(PathError::DotDotAfterEmptySegment) => refused += 1,
            Err(other) => panic!("{raw}: {other:?}"),
        }
    });
    // 8^0 + ... + 8^6 sequences.
    assert_eq!(checked + refused, 299_593);
    assert!(refused > 0 && refused < checked);
}

#[test]
fn refused_tokens_are_refused_wherever_they_are() {
    let tokens = ["/", ".", "a", "%2e"];
    let bad: &[(&str, PathError)] = &[
        ("%2F", PathError::EncodedSeparator),
        ("%2f", PathError::EncodedSeparator),
        ("%5C", PathError::EncodedSeparator),
        ("%5c", PathError::EncodedSeparator),
        ("\\", PathError::Backslash),
        ("%00", PathError::Nul),
        ("\0", PathError::Nul),
        ("#", PathError::ForbiddenByte),
        ("%x", PathError::BadPercentEncoding),
        ("%2x", PathError::BadPercentEncoding),
    ];
    sequences(&tokens, 5, |raw| {
        for (token, error) in bad {
            for at in [1, raw.len()] {
                let mut path = raw.to_string();
                path.insert_str(at, token);
                assert_eq!(
                    normalize(path.as_bytes()).map(|_| ()),
                    Err(*error),
                    "{path:?}"
                );
                // After a '?' the same bytes are query and left alone.
                let query = format!("{raw}?{token}");
                assert!(
                    !matches!(normalize(query.as_bytes()), Err(e) if e == *error),
                    "{query:?}"
                );
            }
        }
    });
}

// ---------------------------------------------------------------------------
// path_prefix
// ---------------------------------------------------------------------------

#[test]
fn prefixes_are_checked() {
    assert_eq!(check_prefix("/"), Ok(&b""[..]));
    for ok in [
        "/fraud",
        "/v1/models",
        "/a-b_c.d~e",
        "/models/m:predict",
        "/a@b!$&'()*+,;=",
        "/..a",
        "/a.",
    ] {
        assert_eq!(check_prefix(ok), Ok(ok.as_bytes()), "{ok}");
    }
    let allowed = "allowed: letters, digits, '/' and - . _ ~ ! $ & ' ( ) * + , ; = : @";
    let cases: &[(&str, String)] = &[
        ("", "\"\": must start with '/'".into()),
        ("fraud", "\"fraud\": must start with '/'".into()),
        ("*", "\"*\": must start with '/'".into()),
        ("/fraud/", "\"/fraud/\": a trailing '/' is not allowed (write \"/fraud\", which also matches \"/fraud/\")".into()),
        ("//", "\"//\": a trailing '/' is not allowed (write \"\", which also matches \"//\")".into()),
        ("//fraud", "\"//fraud\": empty segment (\"//\") never matches a normalized path".into()),
        ("/a//b", "\"/a//b\": empty segment (\"//\") never matches a normalized path".into()),
        ("/a/./b", "\"/a/./b\": dot segment \".\" never matches a normalized path".into()),
        ("/a/..", "\"/a/..\": dot segment \"..\" never matches a normalized path".into()),
        ("/.", "\"/.\": dot segment \".\" never matches a normalized path".into()),
        ("/%66raud", format!("\"/%66raud\": '%' is not allowed in a path prefix (write the decoded character: a prefix is matched against the decoded path); {allowed}")),
        ("/fraud?x=1", format!("\"/fraud?x=1\": '?' is not allowed in a path prefix (a prefix matches the path only, never the query); {allowed}")),
        ("/fraud#x", format!("\"/fraud#x\": '#' is not allowed in a path prefix (a prefix matches the path only, never the query); {allowed}")),
        ("/a\\b", format!("\"/a\\\\b\": '\\\\' is not allowed in a path prefix; {allowed}")),
        ("/a b", format!("\"/a b\": ' ' is not allowed in a path prefix; {allowed}")),
        ("/a\tb", format!("\"/a\\tb\": '\\t' is not allowed in a path prefix; {allowed}")),
        ("/caf\u{e9}", format!("\"/caf\u{e9}\": '\u{e9}' is not allowed in a path prefix; {allowed}")),
        ("/a\"b", format!("\"/a\\\"b\": '\"' is not allowed in a path prefix; {allowed}")),
    ];
    for (prefix, message) in cases {
        assert_eq!(check_prefix(prefix), Err(message.clone()), "{prefix}");
    }
}

#[test]
fn every_accepted_prefix_is_a_normalized_path() {
    for prefix in ["/fraud", "/v1/models", "/a.b/c~d", "/..a/b.."] {
        let n = normalize(prefix.as_bytes()).unwrap();
        assert!(!n.changed(), "{prefix}");
    }
}

#[test]
fn prefixes_match_on_segment_boundaries() {
    let cases: &[(&str, &str, bool)] = &[
        ("/fraud", "/fraud", true),
        ("/fraud", "/fraud/", true),
        ("/fraud", "/fraud/score", true),
        ("/fraud", "/fraudulent", false),
        ("/fraud", "/frau", false),
        ("/fraud", "/", false),
        ("/fraud", "/Fraud", false),
        ("/fraud", "/fraud.json", false),
        ("/fraud", "/fraud;v=1", false),
        ("/v1/models", "/v1/models/m", true),
        ("/v1/models", "/v1/modelsx", false),
        ("/v1/models", "/v1", false),
        ("", "/", true),
        ("", "/anything/at/all", true),
    ];
    for (prefix, path, want) in cases {
        assert_eq!(
            prefix_matches(path.as_bytes(), prefix.as_bytes()),
            *want,
            "{prefix} vs {path}"
        );
    }
}
