//! The per-request decision.
//!
//! [`Plan::decide`] is pure: it reads the request through the [`Request`]
//! trait and returns what the filter must do: forward (route header value,
//! consumer, headers to strip, rewritten path), refuse (the complete local
//! reply), or wait for the identity provider (fetch keys, introspect a token).
//! The proxy-wasm layer only applies the result; the replies it needs when it
//! cannot do what was asked ([`Plan::keys_unavailable`],
//! [`Plan::introspection_unavailable`]) are decided here too.

use std::borrow::Cow;

use crate::auth::oauth2::{HttpCall, OAuth2State, Step, TokenDigest, TokenError};
use crate::auth::{AuthError, Authenticator, CredentialCache};
use crate::config::Plan;
use crate::reply::Denial;
use crate::request::{cookie_value, query_param, take_query_param, Request};
use crate::split::{How, KeySource, TOTAL_BUCKETS};

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
    pub new_path: Option<Vec<u8>>,
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
    new_path: Option<Vec<u8>>,
    /// `:path`, when it was already read.
    path: Option<Vec<u8>>,
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
    /// Authenticates the request and picks its upstream. `now` is Unix
    /// seconds (OAuth2 token times, the pace of Basic's decoy work).
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
                let Ok(value) = credential_text(value.as_deref()) else {
                    return Outcome::Refuse(self.auth.deny(AuthError::Malformed));
                };
                match basic.verify(value, &mut state.credentials, now) {
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
                let presented = from_header.as_deref().or(from_query.as_deref());
                let Ok(presented) = credential_text(presented) else {
                    return Outcome::Refuse(self.auth.deny(AuthError::Malformed));
                };
                match ak.verify(presented) {
                    Ok(consumer) => auth.consumer = Some(Cow::Borrowed(consumer)),
                    Err(e) => return Outcome::Refuse(self.auth.deny(e)),
                }
                if header_sent {
                    auth.remove_headers.push(ak.header());
                }
            }
            Authenticator::OAuth2(o) => {
                let value = req.header("authorization");
                let Ok(value) = credential_text(value.as_deref()) else {
                    return Outcome::Refuse(o.denial(TokenError::Malformed));
                };
                match o.authenticate(value, &mut state.oauth2, now) {
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
            return (Outcome::Refuse(self.introspection_unavailable()), None);
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

    /// The reply for a request whose [`Wait::Introspect`] call could not be
    /// sent (the introspection cluster is not defined in Envoy, say).
    pub fn introspection_unavailable(&self) -> Denial {
        self.unavailable(TokenError::IntrospectionUnavailable)
    }

    fn unavailable(&self, error: TokenError) -> Denial {
        match &self.auth {
            Authenticator::OAuth2(o) => o.denial(error),
            _ => Denial::unavailable(error.reason()),
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
                // Bytes against names: a value that is not exactly a configured
                // name (non-UTF-8 included) is ignored.
                if let Some(i) = self.upstreams.iter().position(|u| u.as_bytes() == wanted) {
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

        // Split keys are hashed over their raw bytes, UTF-8 or not.
        let key: Option<Cow<'_, [u8]>> = match self.split.key() {
            KeySource::Random => None,
            KeySource::Header(h) => req.header(h).map(Cow::Owned),
            KeySource::Query(q) => {
                if path.is_none() {
                    path = req.header(":path");
                }
                path.as_deref()
                    .and_then(|p| query_param(p, q))
                    .map(Cow::Owned)
            }
            KeySource::Cookie(c) => cookie_value(&req.cookie_headers(), c).map(Cow::Owned),
            KeySource::Consumer => consumer.as_deref().map(|c| Cow::Borrowed(c.as_bytes())),
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

/// A credential header (or query value) as text. A value that is not valid
/// UTF-8 is malformed: no configured credential can match it, and the mode's
/// parser never sees it.
fn credential_text(value: Option<&[u8]>) -> Result<Option<&str>, std::str::Utf8Error> {
    value.map(std::str::from_utf8).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::split::bucket_of;
    use sha2::Digest;
    use std::collections::HashMap;

    struct Req(HashMap<String, Vec<Vec<u8>>>);

    impl Req {
        fn new(headers: &[(&str, &str)]) -> Self {
            let raw: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
            Self::raw(&raw)
        }
        /// Header values as raw bytes (not necessarily UTF-8).
        fn raw(headers: &[(&str, &[u8])]) -> Self {
            let mut map: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
            for (k, v) in headers {
                map.entry(k.to_string()).or_default().push(v.to_vec());
            }
            Req(map)
        }
    }

    impl Request for Req {
        fn header(&self, name: &str) -> Option<Vec<u8>> {
            self.0.get(name).and_then(|v| v.first()).cloned()
        }
        fn cookie_headers(&self) -> Vec<Vec<u8>> {
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
    fn random_split_follows_the_percent_within_4_sigma() {
        let p = plan(r#"{"primary":"v1","canaries":[{"name":"v2","percent":30}]}"#);
        let mut s = state();
        let n = 10_000u32;
        let mut to_canary = 0u32;
        for _ in 0..n {
            let d = p.decide(&Req::new(&[]), &mut s, 0).forwarded().unwrap();
            assert!(d.upstream <= 1, "{d:?}");
            if d.upstream == 1 {
                to_canary += 1;
            }
        }
        // Each request goes to the canary with probability 0.3: a binomial
        // count, mean n p = 3000, sigma sqrt(n p (1 - p)) ~ 45.8. A fair draw
        // falls outside 4 sigma about once in 16,000 runs (and the seed is fixed).
        let (mean, sigma) = (f64::from(n) * 0.3, (f64::from(n) * 0.3 * 0.7).sqrt());
        let off = (f64::from(to_canary) - mean).abs();
        assert!(
            off <= 4.0 * sigma,
            "{to_canary} of {n} to the canary: {off} from {mean}, over 4 sigma ({sigma:.1})"
        );
        assert!(to_canary > 0 && to_canary < n);
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
        assert_eq!(d.new_path.as_deref(), Some(&b"/p?x=1&y=%20"[..]));

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
        let refused = outcome.refused().unwrap();
        assert_eq!(refused, p.introspection_unavailable());
        assert_eq!(
            refused,
            Denial {
                status: 503,
                challenge: None,
                body: r#"{"error":"temporarily_unavailable","reason":"introspection_unavailable"}"#
                    .into(),
                reason: "introspection_unavailable",
            }
        );
        assert!(problem.is_some());
    }

    /// What a header value that is not UTF-8 means, mode by mode.
    #[test]
    fn non_utf8_credentials_are_malformed() {
        let bad: &[u8] = b"Basic \xff\xfe";
        let basic = plan(
            r#"{"primary":"v1","auth":{"mode":"basic","users":["u:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M="]}}"#,
        );
        let e = basic
            .decide(&Req::raw(&[("authorization", bad)]), &mut state(), 0)
            .refused()
            .unwrap();
        assert_eq!((e.status, e.reason), (401, "malformed_credentials"));

        let ak = plan(&format!(
            r#"{{"primary":"v1","auth":{{"mode":"access_key","query":"api_key","keys":[{{"consumer":"alice","sha256":"{}"}}]}}}}"#,
            sha("k1")
        ));
        let e = ak
            .decide(&Req::raw(&[("x-api-key", b"k1\xff")]), &mut state(), 0)
            .refused()
            .unwrap();
        assert_eq!((e.status, e.reason), (401, "malformed_credentials"));
        // The same from the query string, once percent-decoded.
        let e = ak
            .decide(
                &Req::raw(&[(":path", b"/p?api_key=k1%FF")]),
                &mut state(),
                0,
            )
            .refused()
            .unwrap();
        assert_eq!((e.status, e.reason), (401, "malformed_credentials"));
        // A non-UTF-8 byte elsewhere in the path is not the filter's business.
        let d = ak
            .decide(
                &Req::raw(&[(":path", b"/\xff?api_key=k1&x=\x80")]),
                &mut state(),
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!(d.consumer.as_deref(), Some("alice"));
        assert_eq!(d.new_path.as_deref(), Some(&b"/\xff?x=\x80"[..]));

        let jwks = include_str!("../tests/fixtures/oauth2/jwks.json");
        let oauth = oauth2_plan(&format!(r#","jwks":{jwks}"#));
        let e = oauth
            .decide(
                &Req::raw(&[("authorization", b"Bearer \xff.\xfe.\x80")]),
                &mut state(),
                NOW,
            )
            .refused()
            .unwrap();
        assert_eq!((e.status, e.reason), (401, "malformed_token"));
    }

    #[test]
    fn non_utf8_split_keys_are_hashed_as_bytes() {
        let p = plan(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":50}],"split":{"by":"header","name":"x-user"}}"#,
        );
        let key: &[u8] = b"\xff\xfe\x80abc";
        let d = p
            .decide(&Req::raw(&[("x-user", key)]), &mut state(), 0)
            .forwarded()
            .unwrap();
        assert_eq!((d.bucket, d.how), (Some(bucket_of(key, 0)), How::Hashed));

        let p = plan(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":50}],"split":{"by":"cookie","name":"uid"}}"#,
        );
        let d = p
            .decide(
                &Req::raw(&[("cookie", b"uid=\xff\xfe\x80abc")]),
                &mut state(),
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!(d.bucket, Some(bucket_of(key, 0)));

        // Query keys: percent-decoded to bytes (before, %FF decoded lossily to U+FFFD).
        let p = plan(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":50}],"split":{"by":"query","name":"uid"}}"#,
        );
        let d = p
            .decide(
                &Req::raw(&[(":path", b"/p?uid=%FF%FE%80abc")]),
                &mut state(),
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!(d.bucket, Some(bucket_of(key, 0)));
        let d = p
            .decide(
                &Req::raw(&[(":path", b"/p?uid=\xff\xfe\x80abc")]),
                &mut state(),
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!(d.bucket, Some(bucket_of(key, 0)));
    }

    #[test]
    fn non_utf8_select_header_is_ignored_and_removed() {
        let p = plan(
            r#"{"primary":"v1","canaries":[{"name":"v2","percent":0}],"select_header":"x-select"}"#,
        );
        let d = p
            .decide(&Req::raw(&[("x-select", b"v2\xff")]), &mut state(), 0)
            .forwarded()
            .unwrap();
        assert_eq!((d.upstream_name, d.how), ("v1", How::Random));
        assert_eq!(d.remove_headers, vec!["x-select"]);
    }
}
