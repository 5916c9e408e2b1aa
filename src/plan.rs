//! The compiled configuration and the per-request decision.
//!
//! [`Plan::decide`] is pure: it reads the request through the [`Request`]
//! trait and returns what the filter must do: forward (route header value,
//! consumer, headers to strip, rewritten path), refuse (the complete local
//! reply), or wait for the identity provider (fetch keys, introspect a token).
//! The proxy-wasm layer only applies the result.

use std::borrow::Cow;

use crate::auth::oauth2::{HttpCall, OAuth2State, Step, TokenDigest, TokenError};
use crate::auth::{Authenticator, CredentialCache, Denial};
use crate::split::{How, KeySource, SplitPlan, TOTAL_BUCKETS};

/// Read access to the request headers (names are lowercase; pseudo-headers
/// such as `:path` included).
pub trait Request {
    fn header(&self, name: &str) -> Option<String>;

    /// Every `cookie` header value (HTTP/2 clients may send several).
    fn cookie_headers(&self) -> Vec<String> {
        self.header("cookie").into_iter().collect()
    }
}

/// The validated, immutable configuration. Built by [`crate::config::parse`].
#[derive(Debug)]
pub struct Plan {
    pub route_header: String,
    pub consumer_header: String,
    pub select_header: Option<String>,
    pub response_header: Option<String>,
    /// Index 0 is the primary; canaries follow in listed order.
    pub upstreams: Vec<String>,
    pub split: SplitPlan,
    pub auth: Authenticator,
}

/// Mutable per-VM state the decision needs: the random source, the cache of
/// verified Basic credentials, and the OAuth2 keys and token verdicts.
#[derive(Debug)]
pub struct State {
    rng: fastrand::Rng,
    credentials: CredentialCache,
    pub oauth2: OAuth2State,
}

impl State {
    pub fn new(seed: u64, credential_capacity: usize) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut salt = [0u8; 16];
        rng.fill(&mut salt);
        Self {
            rng,
            credentials: CredentialCache::new(credential_capacity, salt),
            oauth2: OAuth2State::default(),
        }
    }
}

/// What to do with an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    /// Index into [`Plan::upstreams`].
    pub upstream: usize,
    pub upstream_name: &'p str,
    /// The authenticated identity, to be written into the consumer header.
    pub consumer: Option<Cow<'p, str>>,
    pub how: How,
    pub bucket: Option<u32>,
    /// Request headers to remove before forwarding (credentials, select header).
    pub remove_headers: Vec<&'p str>,
    /// The new `:path` when a credential was removed from the query string.
    pub new_path: Option<String>,
    /// The OAuth2 verdict came from the token cache.
    pub cached: bool,
}

/// What the identity provider must be asked before the request can be decided.
#[derive(Debug)]
pub enum Wait {
    /// No JWKS has been fetched yet: park the request until one arrives
    /// (then call [`Plan::decide`] again) or the fetch timeout passes (then
    /// reply with [`Plan::keys_unavailable`]).
    Keys,
    /// Send `call`; give the answer to [`Plan::after_introspection`] with `digest`.
    Introspect { call: HttpCall, digest: TokenDigest },
}

/// The per-request outcome.
#[derive(Debug)]
pub enum Outcome<'p> {
    Forward(Decision<'p>),
    Refuse(Denial),
    Wait(Wait),
}

impl<'p> Outcome<'p> {
    /// The decision, if the request is forwarded.
    pub fn forwarded(self) -> Option<Decision<'p>> {
        match self {
            Outcome::Forward(d) => Some(d),
            _ => None,
        }
    }

    /// The local reply, if the request is refused.
    pub fn refused(self) -> Option<Denial> {
        match self {
            Outcome::Refuse(d) => Some(d),
            _ => None,
        }
    }
}

/// Identity and credential clean-up gathered by authentication.
struct Authenticated<'p> {
    consumer: Option<Cow<'p, str>>,
    remove_headers: Vec<&'p str>,
    new_path: Option<String>,
    /// `:path`, when it was already read.
    path: Option<String>,
    cached: bool,
}

impl<'p> Authenticated<'p> {
    fn anonymous() -> Self {
        Self {
            consumer: None,
            remove_headers: Vec::new(),
            new_path: None,
            path: None,
            cached: false,
        }
    }
}

impl Plan {
    pub fn upstream_name(&self, index: usize) -> &str {
        self.upstreams
            .get(index)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Authenticates the request and picks its upstream. `now` is Unix
    /// seconds (only OAuth2 uses it).
    pub fn decide<'p, R: Request + ?Sized>(
        &'p self,
        req: &R,
        state: &mut State,
        now: u64,
    ) -> Outcome<'p> {
        let mut auth = Authenticated::anonymous();
        match &self.auth {
            Authenticator::None => {}
            Authenticator::Basic(basic) => {
                let value = req.header("authorization");
                match basic.verify(value.as_deref(), &mut state.credentials) {
                    Ok(user) => auth.consumer = Some(Cow::Borrowed(user)),
                    Err(e) => return Outcome::Refuse(self.auth.deny(e)),
                }
                auth.remove_headers.push("authorization");
            }
            Authenticator::AccessKey(ak) => {
                let raw_header = req.header(ak.header());
                let header_sent = raw_header.is_some();
                let from_header = raw_header.filter(|v| !v.is_empty());
                let mut from_query = None;
                if let Some(param) = ak.query() {
                    auth.path = req.header(":path");
                    if let Some((value, new_path)) = auth
                        .path
                        .as_deref()
                        .and_then(|p| take_query_param(p, param))
                    {
                        if from_header.is_none() {
                            from_query = Some(value);
                        }
                        auth.new_path = Some(new_path);
                    }
                }
                match ak.verify(from_header.as_deref().or(from_query.as_deref())) {
                    Ok(consumer) => auth.consumer = Some(Cow::Borrowed(consumer)),
                    Err(e) => return Outcome::Refuse(self.auth.deny(e)),
                }
                if header_sent {
                    auth.remove_headers.push(ak.header());
                }
            }
            Authenticator::OAuth2(o) => {
                let value = req.header("authorization");
                match o.authenticate(value.as_deref(), &mut state.oauth2, now) {
                    Step::Accept { consumer, cached } => {
                        auth.consumer = Some(Cow::Owned(consumer));
                        auth.cached = cached;
                        if !o.keep_token() {
                            auth.remove_headers.push("authorization");
                        }
                    }
                    Step::Reject(e) => return Outcome::Refuse(o.denial(e)),
                    Step::NeedKeys => return Outcome::Wait(Wait::Keys),
                    Step::Introspect { call, digest } => {
                        return Outcome::Wait(Wait::Introspect { call, digest })
                    }
                }
            }
        }
        Outcome::Forward(self.route(req, auth, state))
    }

    /// Completes a [`Wait::Introspect`]: `status` is the HTTP status of the
    /// provider's answer (`None` if the call failed or timed out). The second
    /// value, when present, is a problem for the operator's log.
    pub fn after_introspection<'p, R: Request + ?Sized>(
        &'p self,
        req: &R,
        state: &mut State,
        now: u64,
        digest: TokenDigest,
        status: Option<u32>,
        body: Option<&[u8]>,
    ) -> (Outcome<'p>, Option<String>) {
        let Authenticator::OAuth2(o) = &self.auth else {
            return (
                Outcome::Refuse(self.unavailable(TokenError::IntrospectionUnavailable)),
                None,
            );
        };
        let done = o.finish_introspection(digest, status, body, &mut state.oauth2, now);
        let outcome = match done.result {
            Ok(consumer) => {
                let mut auth = Authenticated::anonymous();
                auth.consumer = Some(Cow::Owned(consumer));
                if !o.keep_token() {
                    auth.remove_headers.push("authorization");
                }
                Outcome::Forward(self.route(req, auth, state))
            }
            Err(e) => Outcome::Refuse(o.denial(e)),
        };
        (outcome, done.problem)
    }

    /// The reply for a request that waited for the first key set in vain.
    pub fn keys_unavailable(&self) -> Denial {
        self.unavailable(TokenError::KeysUnavailable)
    }

    fn unavailable(&self, error: TokenError) -> Denial {
        match &self.auth {
            Authenticator::OAuth2(o) => o.denial(error),
            _ => Denial {
                status: 503,
                challenge: None,
                body: format!(
                    "{{\"error\":\"temporarily_unavailable\",\"reason\":\"{}\"}}",
                    error.reason()
                ),
                reason: error.reason(),
            },
        }
    }

    /// Picks the upstream of an authenticated request.
    fn route<'p, R: Request + ?Sized>(
        &'p self,
        req: &R,
        auth: Authenticated<'p>,
        state: &mut State,
    ) -> Decision<'p> {
        let Authenticated {
            consumer,
            mut remove_headers,
            new_path,
            mut path,
            cached,
        } = auth;

        if let Some(select) = self.select_header.as_deref() {
            if let Some(wanted) = req.header(select) {
                remove_headers.push(select);
                if let Some(i) = self.upstreams.iter().position(|u| *u == wanted) {
                    return Decision {
                        upstream: i,
                        upstream_name: self.upstream_name(i),
                        consumer,
                        how: How::Selected,
                        bucket: None,
                        remove_headers,
                        new_path,
                        cached,
                    };
                }
            }
        }

        let key: Option<Cow<'_, str>> = match self.split.key() {
            KeySource::Random => None,
            KeySource::Header(h) => req.header(h).map(Cow::Owned),
            KeySource::Query(q) => {
                if path.is_none() {
                    path = req.header(":path");
                }
                path.as_deref()
                    .and_then(|p| query_param(p, q))
                    .map(|v| Cow::Owned(v.into_owned()))
            }
            KeySource::Cookie(c) => cookie_value(&req.cookie_headers(), c).map(Cow::Owned),
            KeySource::Consumer => consumer.as_deref().map(Cow::Borrowed),
        };
        let rng = &mut state.rng;
        let choice = self
            .split
            .choose(key.as_deref(), || rng.u32(0..TOTAL_BUCKETS));
        drop(key);
        Decision {
            upstream: choice.upstream,
            upstream_name: self.upstream_name(choice.upstream),
            consumer,
            how: choice.how,
            bucket: choice.bucket,
            remove_headers,
            new_path,
            cached,
        }
    }
}

/// The decoded value of the first query parameter called `name`.
pub fn query_param<'a>(path: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let (_, query) = path.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `path` without any `name=...` parameter, or `None` if it had none. Other
/// parameters are kept byte for byte.
pub fn remove_query_param(path: &str, name: &str) -> Option<String> {
    take_query_param(path, name).map(|(_, new_path)| new_path)
}

/// In one pass over the query string: the decoded value of the first `name`
/// parameter and `path` without any `name=...` parameter (others kept byte for
/// byte); `None` if the path has no such parameter.
pub fn take_query_param(path: &str, name: &str) -> Option<(String, String)> {
    let (base, query) = path.split_once('?')?;
    let mut value = None;
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match form_urlencoded::parse(pair.as_bytes()).next() {
            Some((k, v)) if k == name => {
                if value.is_none() {
                    value = Some(v.into_owned());
                }
            }
            _ => kept.push(pair),
        }
    }
    let value = value?;
    let new_path = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Some((value, new_path))
}

/// The value of the first cookie called `name` across all `Cookie` headers.
pub fn cookie_value(headers: &[String], name: &str) -> Option<String> {
    headers
        .iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::split::bucket_of;
    use sha2::Digest;
    use std::collections::HashMap;

    struct Req(HashMap<String, Vec<String>>);

    impl Req {
        fn new(headers: &[(&str, &str)]) -> Self {
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            for (k, v) in headers {
                map.entry(k.to_string()).or_default().push(v.to_string());
            }
            Req(map)
        }
    }

    impl Request for Req {
        fn header(&self, name: &str) -> Option<String> {
            self.0.get(name).and_then(|v| v.first()).cloned()
        }
        fn cookie_headers(&self) -> Vec<String> {
            self.0.get("cookie").cloned().unwrap_or_default()
        }
    }

    fn plan(json: &str) -> Plan {
        parse(json.as_bytes()).unwrap()
    }

    fn state() -> State {
        State::new(42, 16)
    }

    /// The upstream the documented formula gives for `key` with canaries of `bps`.
    fn expected(key: &str, seed: u32, bps: &[u32]) -> usize {
        let b = bucket_of(key, seed);
        let mut edge = 0;
        for (i, bp) in bps.iter().enumerate() {
            edge += bp;
            if b < edge {
                return i + 1;
            }
        }
        0
    }

    #[test]
    fn header_split_follows_the_formula() {
        let p = plan(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":30},{"name":"v3","percent":20}],
                         "split":{"by":"header","name":"x-user","hash_seed":99}}"#,
        );
        let mut s = state();
        for i in 0..500 {
            let user = format!("user-{i}");
            let d = p
                .decide(&Req::new(&[("x-user", &user)]), &mut s, 0)
                .forwarded()
                .unwrap();
            assert_eq!(d.upstream, expected(&user, 99, &[3000, 2000]), "{user}");
            assert_eq!(d.bucket, Some(bucket_of(&user, 99)));
            assert_eq!(d.how, How::Hashed);
        }
    }

    #[test]
    fn query_and_cookie_keys() {
        let p = plan(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":50}],"split":{"by":"query","name":"uid"}}"#,
        );
        let d = p
            .decide(
                &Req::new(&[(":path", "/predict?a=1&uid=caf%C3%A9")]),
                &mut state(),
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!(d.bucket, Some(bucket_of("café", 0)));

        let p = plan(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":50}],"split":{"by":"cookie","name":"uid"}}"#,
        );
        let r = Req::new(&[("cookie", "a=1; b=2"), ("cookie", "uid=zed; c=3")]);
        let d = p.decide(&r, &mut state(), 0).forwarded().unwrap();
        assert_eq!(d.bucket, Some(bucket_of("zed", 0)));
    }

    #[test]
    fn missing_key_goes_to_primary_when_asked() {
        let p = plan(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":100}],
                         "split":{"by":"header","name":"x-user","when_missing":"primary"}}"#,
        );
        let d = p
            .decide(&Req::new(&[]), &mut state(), 0)
            .forwarded()
            .unwrap();
        assert_eq!((d.upstream, d.how), (0, How::MissingKey));
        let d = p
            .decide(&Req::new(&[("x-user", "")]), &mut state(), 0)
            .forwarded()
            .unwrap();
        assert_eq!(d.upstream, 0);
    }

    #[test]
    fn random_split_stays_in_range_and_uses_all_upstreams() {
        let p = plan(r#"{"primary":"v1","canaries":[{"name":"v2","percent":50}]}"#);
        let mut s = state();
        let mut counts = [0u32; 2];
        for _ in 0..1000 {
            counts[p
                .decide(&Req::new(&[]), &mut s, 0)
                .forwarded()
                .unwrap()
                .upstream] += 1;
        }
        assert!(counts[0] > 400 && counts[1] > 400, "{counts:?}");
    }

    #[test]
    fn select_header_picks_a_known_upstream_only() {
        let p = plan(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":0}],"select_header":"x-select"}"#,
        );
        let d = p
            .decide(&Req::new(&[("x-select", "v2")]), &mut state(), 0)
            .forwarded()
            .unwrap();
        assert_eq!((d.upstream_name, d.how), ("v2", How::Selected));
        assert_eq!(d.remove_headers, vec!["x-select"]);
        let d = p
            .decide(&Req::new(&[("x-select", "v9")]), &mut state(), 0)
            .forwarded()
            .unwrap();
        assert_eq!((d.upstream_name, d.how), ("v1", How::Random));
    }

    fn sha(k: &str) -> String {
        hex::encode(sha2::Sha256::digest(k.as_bytes()))
    }

    #[test]
    fn access_key_from_header_or_query_is_stripped() {
        let p = plan(&format!(
            r#"{{"primary":"v1","auth":{{"mode":"access_key","query":"api_key","keys":[{{"consumer":"alice","sha256":"{}"}}]}}}}"#,
            sha("k1")
        ));
        let d = p
            .decide(
                &Req::new(&[("x-api-key", "k1"), (":path", "/p?x=1")]),
                &mut state(),
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!(d.consumer.as_deref(), Some("alice"));
        assert_eq!(d.remove_headers, vec!["x-api-key"]);
        assert_eq!(d.new_path, None);

        let d = p
            .decide(
                &Req::new(&[(":path", "/p?x=1&api_key=k1&y=%20")]),
                &mut state(),
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!(d.consumer.as_deref(), Some("alice"));
        assert_eq!(d.new_path.as_deref(), Some("/p?x=1&y=%20"));

        let e = p
            .decide(&Req::new(&[(":path", "/p?api_key=nope")]), &mut state(), 0)
            .refused()
            .unwrap();
        assert_eq!(
            e,
            Denial {
                status: 401,
                challenge: Some("ApiKey realm=\"canary-gate\", header=\"x-api-key\"".into()),
                body: r#"{"error":"unauthorized","reason":"invalid_credentials"}"#.into(),
                reason: "invalid_credentials",
            }
        );
        let e = p
            .decide(&Req::new(&[(":path", "/p")]), &mut state(), 0)
            .refused()
            .unwrap();
        assert_eq!(e.reason, "missing_credentials");
    }

    #[test]
    fn consumer_split_hashes_the_authenticated_identity() {
        let p = plan(&format!(
            r#"{{"primary":"v1","canaries":[{{"name":"v2","percent":50}}],"split":{{"by":"consumer"}},
                "auth":{{"mode":"access_key","keys":[{{"consumer":"alice","sha256":"{}"}}]}}}}"#,
            sha("k1")
        ));
        let d = p
            .decide(&Req::new(&[("x-api-key", "k1")]), &mut state(), 0)
            .forwarded()
            .unwrap();
        assert_eq!(d.bucket, Some(bucket_of("alice", 0)));
        assert_eq!(d.upstream, expected("alice", 0, &[5000]));
    }

    #[test]
    fn query_helpers() {
        assert_eq!(remove_query_param("/p?k=1", "k").as_deref(), Some("/p"));
        assert_eq!(
            remove_query_param("/p?a=1&k=1&k=2&b", "k").as_deref(),
            Some("/p?a=1&b")
        );
        assert_eq!(remove_query_param("/p?a=1", "k"), None);
        assert_eq!(remove_query_param("/p", "k"), None);
        assert_eq!(remove_query_param("/p?%6B=1", "k").as_deref(), Some("/p"));
        assert_eq!(query_param("/p?a=1&k=x+y", "k").as_deref(), Some("x y"));
        assert_eq!(
            cookie_value(&["a=1;k=\"v\"".into()], "k").as_deref(),
            Some("v")
        );
        assert_eq!(cookie_value(&["ak=1".into()], "k"), None);
    }

    fn fixture_token(name: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/oauth2/tokens.json")).unwrap();
        v["tokens"][name].as_str().unwrap().to_string()
    }

    fn oauth2_plan(auth_extra: &str) -> Plan {
        plan(&format!(
            r#"{{"primary":"v1","canaries":[{{"name":"v2","percent":50}}],"split":{{"by":"consumer"}},
                "select_header":"x-select",
                "auth":{{"mode":"oauth2","issuer":"https://idp.example.com","audiences":["models"]{auth_extra}}}}}"#
        ))
    }

    const NOW: u64 = 1_700_000_100;

    #[test]
    fn oauth2_identity_is_hashed_and_the_token_removed() {
        let jwks = include_str!("../tests/fixtures/oauth2/jwks.json");
        let p = oauth2_plan(&format!(r#","jwks":{jwks}"#));
        let bearer = format!("Bearer {}", fixture_token("eddsa"));
        let mut s = state();
        let d = p
            .decide(&Req::new(&[("authorization", &bearer)]), &mut s, NOW)
            .forwarded()
            .unwrap();
        assert_eq!(d.consumer.as_deref(), Some("alice"));
        assert_eq!(d.remove_headers, vec!["authorization"]); // x-select was not sent
        assert_eq!(d.bucket, Some(bucket_of("alice", 0)));
        assert_eq!(d.upstream, expected("alice", 0, &[5000]));
        assert!(!d.cached);
        let d = p
            .decide(&Req::new(&[("authorization", &bearer)]), &mut s, NOW)
            .forwarded()
            .unwrap();
        assert!(d.cached);

        let keep = oauth2_plan(&format!(r#","jwks":{jwks},"keep_token":true"#));
        let d = keep
            .decide(&Req::new(&[("authorization", &bearer)]), &mut state(), NOW)
            .forwarded()
            .unwrap();
        assert!(d.remove_headers.is_empty(), "keep_token: nothing to remove");

        let e = p
            .decide(&Req::new(&[]), &mut state(), NOW)
            .refused()
            .unwrap();
        assert_eq!(
            e,
            Denial {
                status: 401,
                challenge: Some("Bearer realm=\"canary-gate\"".into()),
                body: r#"{"error":"unauthorized","reason":"missing_credentials"}"#.into(),
                reason: "missing_credentials",
            }
        );
    }

    #[test]
    fn oauth2_waits_for_keys_and_introspection() {
        let p = oauth2_plan(r#","jwks_uri":{"cluster":"idp","path":"/jwks"}"#);
        let bearer = format!("Bearer {}", fixture_token("rs256"));
        let req = Req::new(&[("authorization", &bearer)]);
        assert!(matches!(
            p.decide(&req, &mut state(), NOW),
            Outcome::Wait(Wait::Keys)
        ));
        assert_eq!(p.keys_unavailable().status, 503);

        let p = plan(
            r#"{"primary":"v1","auth":{"mode":"oauth2","introspection":{"cluster":"idp","path":"/i",
                "client_id":"g","client_secret":"s"}}}"#,
        );
        let req = Req::new(&[("authorization", "Bearer opaque")]);
        let mut s = state();
        let Outcome::Wait(Wait::Introspect { call, digest }) = p.decide(&req, &mut s, NOW) else {
            panic!("expected an introspection")
        };
        assert_eq!(call.cluster, "idp");
        let body = br#"{"active":true,"sub":"dave"}"#;
        let (outcome, problem) =
            p.after_introspection(&req, &mut s, NOW, digest, Some(200), Some(body));
        let d = outcome.forwarded().unwrap();
        assert_eq!((d.consumer.as_deref(), problem), (Some("dave"), None));
        assert_eq!(d.remove_headers, vec!["authorization"]);
        let (outcome, problem) = p.after_introspection(&req, &mut s, NOW, digest, None, None);
        assert_eq!(outcome.refused().unwrap().status, 503);
        assert!(problem.is_some());
    }
}
