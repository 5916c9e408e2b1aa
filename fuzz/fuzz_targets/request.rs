//! Where keys come from: the access-key header and query parameter, and the
//! query and cookie split keys. The byte-level parsers of `request` are run
//! directly and against each other, and `Plan::decide` runs the same request
//! through plans that take an access key (header or query) and split by
//! query parameter or cookie.
//!
//! Checks: no panic; the one-pass `take_query_param` agrees with
//! `query_param` and `remove_query_param`; a removed parameter is gone and
//! the rest of the path is kept; `trim` is `str::trim` on UTF-8 and
//! idempotent; a forwarded request goes to a configured upstream, carries
//! no access key in its new path, and was authenticated by the key.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use canary_gate::config::{parse, Plan};
use canary_gate::decide::{Outcome, State};
use canary_gate::request::{
    cookie_value, query_param, remove_query_param, take_query_param, trim, Request,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    path: Vec<u8>,
    /// Parameters appended to `path` (name, value), so that names the
    /// plans look for come up often.
    params: Vec<(u8, Vec<u8>)>,
    cookies: Vec<Vec<u8>>,
    key_header: Option<Vec<u8>>,
    name: u8,
}

const NAMES: [&str; 4] = ["api_key", "uid", "k", "%61pi_key"];

struct Req {
    path: Vec<u8>,
    cookies: Vec<Vec<u8>>,
    key_header: Option<Vec<u8>>,
}

impl Request for Req {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        match name {
            ":path" => Some(self.path.clone()),
            "x-api-key" => self.key_header.clone(),
            "cookie" => self.cookies.first().cloned(),
            _ => None,
        }
    }
    fn cookie_headers(&self) -> Vec<Vec<u8>> {
        self.cookies.clone()
    }
}

thread_local! {
    static PLANS: Vec<Plan> = [
        // sha256("k1")
        r#"{"primary":"v1","canaries":[{"name":"v2","percent":50}],"split":{"by":"consumer"},
            "auth":{"mode":"access_key","query":"api_key","keys":[{"consumer":"svc","sha256":"6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0"}]}}"#,
        r#"{"primary":"v1","canaries":[{"name":"v2","percent":33.33}],"split":{"by":"query","name":"uid","when_missing":"primary"}}"#,
        r#"{"primary":"v1","canaries":[{"name":"v2","percent":0.01},{"name":"v3","percent":99.99}],"split":{"by":"cookie","name":"uid"}}"#,
    ]
    .iter()
    .map(|c| parse(c.as_bytes()).unwrap_or_else(|e| panic!("{e}: {c}")))
    .collect();
}

fn check_parsers(path: &[u8], name: &str, cookies: &[Vec<u8>]) {
    let taken = take_query_param(path, name);
    assert_eq!(
        query_param(path, name),
        taken.as_ref().map(|(v, _)| v.clone())
    );
    assert_eq!(
        remove_query_param(path, name),
        taken.as_ref().map(|(_, p)| p.clone())
    );
    if let Some((_, new_path)) = &taken {
        assert_eq!(query_param(new_path, name), None);
        assert_eq!(remove_query_param(new_path, name), None);
        // The path before the query is kept.
        let base = |p: &[u8]| p.split(|&b| b == b'?').next().map(<[u8]>::to_vec);
        assert_eq!(base(new_path), base(path));
        assert!(new_path.len() < path.len());
    }
    if let Some(v) = cookie_value(cookies, name) {
        // Trimmed outside the quotes; whitespace inside them is kept (`k=" a "`
        // is ` a `), so only an unquoted value is trimmed whole.
        if !cookies.iter().any(|c| c.contains(&b'"')) {
            assert_eq!(trim(&v), &v[..]);
        }
        assert!(!v.starts_with(b"\"") && !v.ends_with(b"\""));
        assert!(!v.contains(&b';'));
    }
    for bytes in std::iter::once(path).chain(cookies.iter().map(Vec::as_slice)) {
        let t = trim(bytes);
        assert_eq!(trim(t), t);
        if let Ok(s) = std::str::from_utf8(bytes) {
            assert_eq!(t, s.trim().as_bytes());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut path = input.path;
    for (i, (n, value)) in input.params.iter().enumerate() {
        path.push(if i == 0 && !path.contains(&b'?') {
            b'?'
        } else {
            b'&'
        });
        path.extend_from_slice(NAMES[usize::from(*n) % NAMES.len()].as_bytes());
        path.push(b'=');
        path.extend_from_slice(value);
    }
    let name = NAMES[usize::from(input.name) % 3];
    check_parsers(&path, name, &input.cookies);

    let req = Req {
        path,
        cookies: input.cookies,
        key_header: input.key_header,
    };
    PLANS.with(|plans| {
        for (i, plan) in plans.iter().enumerate() {
            let mut state = State::new(1, 4, 1);
            match plan.decide(&req, &mut state, 0) {
                Outcome::Forward(d) => {
                    assert!(plan.gateways[0]
                        .upstreams
                        .iter()
                        .any(|u| u == d.upstream_name));
                    if let Some(p) = &d.new_path {
                        assert_eq!(query_param(p, "api_key"), None);
                    }
                    if i == 0 {
                        assert_eq!(d.consumer.as_deref(), Some("svc"));
                        let from_header = req.key_header.as_deref().filter(|k| !k.is_empty());
                        let presented = from_header
                            .map(<[u8]>::to_vec)
                            .or_else(|| query_param(&req.path, "api_key"));
                        assert_eq!(presented.as_deref(), Some(&b"k1"[..]));
                    }
                }
                Outcome::Refuse { denial, .. } => {
                    assert_eq!(i, 0, "only the key plan refuses: {denial:?}")
                }
                Outcome::Pass => panic!("one gateway takes every request"),
                Outcome::Wait(w) => panic!("nothing to wait for: {w:?}"),
            }
        }
    });
});
