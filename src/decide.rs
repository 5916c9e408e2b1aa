//! The per-request decision.
//!
//! [`Plan::decide`] is pure: it reads the request through the [`Request`]
//! trait and returns what the filter must do: forward (gateway, route header
//! value, consumer, headers to strip, rewritten path), pass an unmatched request
//! on, refuse (the complete local reply), or wait for the identity provider
//! (fetch keys, introspect a token). The glue only applies the result; the
//! replies it needs when it cannot do what was asked
//! ([`Plan::keys_unavailable`], [`Plan::introspection_unavailable`]) and what a
//! JWKS answer means ([`Plan::jwks_answer`]) are decided here too.

use std::borrow::Cow;

use crate::auth::oauth2::fetch::{self, JwksOutcome};
use crate::auth::oauth2::{
    HttpCall, JwksUri, OAuth2Auth, OAuth2State, Refresh, Step, TokenDigest, TokenError,
};
use crate::auth::{
    AccessKeyAuth, AuthError, Authenticator, BasicAuth, CredentialCache, KeyCache,
    CREDENTIAL_CACHE_BYTES, KEY_CACHE_BYTES,
};
use crate::config::{Gateway, Plan, Unmatched};
use crate::gateway::Match;
use crate::reply::Denial;
use crate::request::{cookie_value, query_param, take_query_param, Request};
use crate::split::{How, KeySource, SplitPlan, TOTAL_BUCKETS};

/// Mutable per-VM state the decision needs: the random source, and per
/// gateway the caches of verified Basic credentials and access keys and the
/// OAuth2 keys and token verdicts. Nothing is shared between gateways but
/// fetched key sets (gateways with the same `jwks_uri`). Each cache has its
/// own random hash key; a cache allocates nothing until its first entry.
#[derive(Debug)]
pub struct State {
    rng: fastrand::Rng,
    gateways: Vec<GatewayState>,
}

#[derive(Debug)]
struct GatewayState {
    credentials: CredentialCache,
    keys: KeyCache,
    oauth2: OAuth2State,
    /// The live split when ramps or tripped guards changed it from the
    /// configured one ([`State::set_split`]).
    split: Option<SplitPlan>,
}

impl State {
    /// State for `gateways` gateways, each with a credential cache and an
    /// access-key cache of `credential_capacity` entries.
    pub fn new(seed: u64, credential_capacity: usize, gateways: usize) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let gateways = (0..gateways.max(1))
            .map(|_| GatewayState {
                credentials: CredentialCache::new(
                    credential_capacity,
                    CREDENTIAL_CACHE_BYTES,
                    rng.u64(..),
                ),
                keys: KeyCache::new(credential_capacity, KEY_CACHE_BYTES, rng.u64(..)),
                oauth2: OAuth2State::with_key(rng.u64(..)),
                split: None,
            })
            .collect();
        Self { rng, gateways }
    }

    /// Routes gateway `g` with `split` from now on (`None`: the configured one).
    pub fn set_split(&mut self, g: usize, split: Option<SplitPlan>) {
        if let Some(state) = self.gateways.get_mut(g) {
            state.split = split;
        }
    }

    /// The OAuth2 state of gateway `g`.
    pub fn oauth2(&self, g: usize) -> Option<&OAuth2State> {
        self.gateways.get(g).map(|s| &s.oauth2)
    }
}

/// What to do with an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    /// Index into [`Plan::gateways`].
    pub gateway: usize,
    /// Index into the gateway's upstreams.
    pub upstream: usize,
    pub upstream_name: &'p str,
    /// The authenticated identity, to be written into the consumer header.
    pub consumer: Option<Cow<'p, str>>,
    pub how: How,
    pub bucket: Option<u32>,
    /// The credential header to remove before forwarding (see
    /// [`Decision::remove_headers`]).
    pub remove_credential: Option<&'p str>,
    /// The select header to remove before forwarding (it was sent).
    pub remove_select: Option<&'p str>,
    /// The new `:path`: the gateway's prefix stripped, or a credential
    /// removed from the query string.
    pub new_path: Option<Vec<u8>>,
    /// The OAuth2 verdict came from the token cache.
    pub cached: bool,
}

impl<'p> Decision<'p> {
    /// The request headers to remove before forwarding: the credential, and
    /// the select header when it was sent.
    pub fn remove_headers(&self) -> impl Iterator<Item = &'p str> {
        self.remove_credential.into_iter().chain(self.remove_select)
    }
}

/// What the identity provider must be asked before the request can be decided.
#[derive(Debug)]
pub enum Wait {
    /// No JWKS has been fetched yet for the gateway: park the request until
    /// one arrives (then call [`Plan::decide`] again) or the fetch timeout
    /// passes (then reply with [`Plan::keys_unavailable`]).
    Keys { gateway: usize },
    /// Send `call`; give the answer to [`Plan::after_introspection`].
    Introspect {
        gateway: usize,
        call: HttpCall,
        digest: TokenDigest,
    },
}

/// The per-request outcome.
#[derive(Debug)]
pub enum Outcome<'p> {
    Forward(Decision<'p>),
    /// No gateway matched and `unmatched` is `pass`: forward with no route
    /// header and no consumer header (client copies of both removed).
    Pass,
    /// A local reply. `gateway` is `None` when no gateway took the request
    /// (404 `no_gateway`, 400 `ambiguous_path`).
    Refuse {
        gateway: Option<usize>,
        denial: Denial,
    },
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
            Outcome::Refuse { denial, .. } => Some(denial),
            _ => None,
        }
    }

    fn refuse(gateway: usize, denial: Denial) -> Self {
        Outcome::Refuse {
            gateway: Some(gateway),
            denial,
        }
    }
}

/// Identity and credential clean-up gathered by authentication.
struct Authenticated<'p> {
    consumer: Option<Cow<'p, str>>,
    remove_credential: Option<&'p str>,
    new_path: Option<Vec<u8>>,
    /// `:path` as it will be forwarded, when it was already read.
    path: Option<Vec<u8>>,
    cached: bool,
}

impl<'p> Authenticated<'p> {
    fn anonymous() -> Self {
        Self {
            consumer: None,
            remove_credential: None,
            new_path: None,
            path: None,
            cached: false,
        }
    }

    /// After a gateway's prefix was stripped: the path to forward, and to read.
    fn stripped(path: Option<Vec<u8>>) -> Self {
        Self {
            new_path: path.clone(),
            path,
            ..Self::anonymous()
        }
    }
}

/// A gateway and the state of the request in it, while it is decided.
struct InGateway<'p, 's> {
    index: usize,
    gateway: &'p Gateway,
    state: &'s mut GatewayState,
}

impl Plan {
    /// Finds the request's gateway, authenticates it there and picks its
    /// upstream. `now` is Unix seconds (only OAuth2 uses it).
    pub fn decide<'p, R: Request + ?Sized>(
        &'p self,
        req: &R,
        state: &mut State,
        now: u64,
    ) -> Outcome<'p> {
        let (index, strip) = match self.find_gateway(req) {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let (Some(gateway), Some(gw_state)) =
            (self.gateways.get(index), state.gateways.get_mut(index))
        else {
            return Outcome::Refuse {
                gateway: None,
                denial: Denial::not_found("no_gateway"),
            };
        };
        let mut auth = Authenticated::stripped(strip);
        let mut g = InGateway {
            index,
            gateway,
            state: gw_state,
        };
        if let Err(outcome) = authenticate(&mut g, req, &mut auth, now) {
            return outcome;
        }
        let State { rng, gateways } = state;
        let split = gateways
            .get(index)
            .and_then(|s| s.split.as_ref())
            .unwrap_or(&gateway.split);
        Outcome::Forward(route(index, gateway, split, req, auth, rng))
    }

    /// The gateway of the request and, with `strip_prefix`, the `:path` to
    /// forward. A configuration without `gateways` has one gateway for every
    /// request, and nothing depends on the path there.
    // The `Err` is the request's outcome, made once per request: boxing it
    // would cost an allocation to save a copy.
    #[allow(clippy::result_large_err)]
    fn find_gateway<R: Request + ?Sized>(
        &self,
        req: &R,
    ) -> Result<(usize, Option<Vec<u8>>), Outcome<'_>> {
        let Some(table) = &self.table else {
            return Ok((0, None));
        };
        let authority = req.header(":authority").or_else(|| req.header("host"));
        let path = req.header(":path").unwrap_or_default();
        match table.select(authority.as_deref(), &path) {
            Match::Gateway { index, strip } => Ok((index, strip.map(Cow::into_owned))),
            Match::Unmatched => Err(match self.unmatched {
                Unmatched::Deny => Outcome::Refuse {
                    gateway: None,
                    denial: Denial::not_found("no_gateway"),
                },
                Unmatched::Pass => Outcome::Pass,
            }),
            Match::BadPath(_) => Err(Outcome::Refuse {
                gateway: None,
                denial: Denial::bad_request("ambiguous_path"),
            }),
        }
    }

    /// Completes a [`Wait::Introspect`] of `gateway`: `status` is the HTTP
    /// status of the provider's answer (`None` if the call failed or timed
    /// out). The second value, when present, is a problem for the operator's log.
    #[allow(clippy::too_many_arguments)]
    pub fn after_introspection<'p, R: Request + ?Sized>(
        &'p self,
        gateway: usize,
        req: &R,
        state: &mut State,
        now: u64,
        digest: TokenDigest,
        status: Option<u32>,
        body: Option<&[u8]>,
    ) -> (Outcome<'p>, Option<String>) {
        let (Some(gw), Some(gw_state)) =
            (self.gateways.get(gateway), state.gateways.get_mut(gateway))
        else {
            return (
                Outcome::refuse(gateway, self.introspection_unavailable(gateway)),
                None,
            );
        };
        let Authenticator::OAuth2(o) = &gw.auth else {
            return (
                Outcome::refuse(gateway, self.introspection_unavailable(gateway)),
                None,
            );
        };
        // The token is read again to be cached with its verdict.
        let authorization = req.header("authorization");
        let authorization = credential_text(authorization.as_deref()).ok().flatten();
        let done = o.finish_introspection(
            digest,
            authorization,
            status,
            body,
            &mut gw_state.oauth2,
            now,
        );
        let outcome = match done.result {
            Ok(consumer) => {
                let mut auth = Authenticated::anonymous();
                auth.consumer = Some(Cow::Owned(consumer));
                if !o.keep_token() {
                    auth.remove_credential = Some("authorization");
                }
                let split = gw_state.split.as_ref().unwrap_or(&gw.split);
                Outcome::Forward(route(gateway, gw, split, req, auth, &mut state.rng))
            }
            Err(e) => Outcome::refuse(gateway, o.denial(e)),
        };
        (outcome, done.problem)
    }

    /// Applies an answer of JWKS source `source` (see
    /// [`Plan::jwks_sources`]): one key set for every gateway that uses it.
    pub fn jwks_answer(
        &self,
        source: usize,
        refresh: &mut Refresh,
        state: &mut State,
        now_ms: u64,
        status: Option<u32>,
        body: Option<&[u8]>,
    ) -> JwksOutcome {
        let users = self.jwks_sources.get(source).map_or(&[][..], Vec::as_slice);
        let mut states: Vec<&mut OAuth2State> = state
            .gateways
            .iter_mut()
            .enumerate()
            .filter(|(g, _)| users.contains(g))
            .map(|(_, s)| &mut s.oauth2)
            .collect();
        fetch::answer(refresh, &mut states, now_ms, status, body)
    }

    /// The `jwks_uri` of JWKS source `source` (its gateways' identical objects).
    pub fn jwks_uri(&self, source: usize) -> Option<&JwksUri> {
        let first = *self.jwks_sources.get(source)?.first()?;
        match &self.gateways.get(first)?.auth {
            Authenticator::OAuth2(o) => o.jwks_uri(),
            _ => None,
        }
    }

    /// The gateways that use JWKS source `source`.
    pub fn jwks_users(&self, source: usize) -> &[usize] {
        self.jwks_sources.get(source).map_or(&[][..], Vec::as_slice)
    }

    /// Whether any gateway of JWKS source `source` has its keys.
    pub fn jwks_loaded(&self, source: usize, state: &State) -> bool {
        let users = self.jwks_sources.get(source).map_or(&[][..], Vec::as_slice);
        users
            .iter()
            .any(|g| state.oauth2(*g).is_some_and(OAuth2State::has_remote_keys))
    }

    /// The reply for a request of `gateway` that waited for the first key set in vain.
    pub fn keys_unavailable(&self, gateway: usize) -> Denial {
        self.unavailable(gateway, TokenError::KeysUnavailable)
    }

    /// The reply for a request of `gateway` whose [`Wait::Introspect`] call
    /// could not be sent (the introspection cluster is not defined in Envoy, say).
    pub fn introspection_unavailable(&self, gateway: usize) -> Denial {
        self.unavailable(gateway, TokenError::IntrospectionUnavailable)
    }

    fn unavailable(&self, gateway: usize, error: TokenError) -> Denial {
        match self.gateways.get(gateway).map(|g| &g.auth) {
            Some(Authenticator::OAuth2(o)) => o.denial(error),
            _ => Denial::unavailable(error.reason()),
        }
    }

    /// How long a request of `gateway` waits for the first key set.
    pub fn key_wait_ms(&self, gateway: usize) -> u64 {
        match self.gateways.get(gateway).map(|g| &g.auth) {
            Some(Authenticator::OAuth2(o)) => fetch::key_wait_ms(o.jwks_uri()),
            _ => 0,
        }
    }
}

/// Authenticates the request with its gateway's mode; `Err` is the outcome
/// when it is refused or must wait.
// The `Err` is the request's outcome, made once per request: boxing it
// would cost an allocation to save a copy.
#[allow(clippy::result_large_err)]
fn authenticate<'p, R: Request + ?Sized>(
    g: &mut InGateway<'p, '_>,
    req: &R,
    auth: &mut Authenticated<'p>,
    now: u64,
) -> Result<(), Outcome<'p>> {
    let refuse = |e: AuthError| Outcome::refuse(g.index, g.gateway.auth.deny(e));
    match &g.gateway.auth {
        Authenticator::None => Ok(()),
        Authenticator::Basic(basic) => {
            basic_auth(basic, req, &mut g.state.credentials, auth, now).map_err(refuse)
        }
        Authenticator::AccessKey(ak) => {
            access_key_auth(ak, req, &mut g.state.keys, auth).map_err(refuse)
        }
        Authenticator::OAuth2(o) => oauth2_auth(g.index, o, req, &mut g.state.oauth2, auth, now),
    }
}

fn basic_auth<'p, R: Request + ?Sized>(
    basic: &'p BasicAuth,
    req: &R,
    cache: &mut CredentialCache,
    auth: &mut Authenticated<'p>,
    now: u64,
) -> Result<(), AuthError> {
    let value = req
        .single_header("authorization")
        .map_err(|_| AuthError::Malformed)?;
    let value = credential_text(value.as_deref()).map_err(|_| AuthError::Malformed)?;
    let user = basic.verify(value, cache, now)?;
    auth.consumer = Some(Cow::Borrowed(user));
    auth.remove_credential = Some("authorization");
    Ok(())
}

fn access_key_auth<'p, R: Request + ?Sized>(
    ak: &'p AccessKeyAuth,
    req: &R,
    cache: &mut KeyCache,
    auth: &mut Authenticated<'p>,
) -> Result<(), AuthError> {
    let raw_header = req
        .single_header(ak.header())
        .map_err(|_| AuthError::Malformed)?;
    let header_sent = raw_header.is_some();
    let from_header = raw_header.filter(|v| !v.is_empty());
    let mut from_query = None;
    if let Some(param) = ak.query() {
        if auth.path.is_none() {
            auth.path = req.header(":path");
        }
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
    let presented = credential_text(presented).map_err(|_| AuthError::Malformed)?;
    let consumer = ak.verify(presented, cache)?;
    auth.consumer = Some(Cow::Borrowed(consumer));
    if header_sent {
        auth.remove_credential = Some(ak.header());
    }
    Ok(())
}

// The `Err` is the request's outcome, made once per request: boxing it
// would cost an allocation to save a copy.
#[allow(clippy::result_large_err)]
fn oauth2_auth<'p, R: Request + ?Sized>(
    gateway: usize,
    o: &'p OAuth2Auth,
    req: &R,
    state: &mut OAuth2State,
    auth: &mut Authenticated<'p>,
    now: u64,
) -> Result<(), Outcome<'p>> {
    let value = req
        .single_header("authorization")
        .map_err(|_| Outcome::refuse(gateway, o.denial(TokenError::Malformed)))?;
    match o.authenticate_raw(value.as_deref(), state, now) {
        Step::Accept { consumer, cached } => {
            auth.consumer = Some(Cow::Owned(consumer));
            auth.cached = cached;
            if !o.keep_token() {
                auth.remove_credential = Some("authorization");
            }
            Ok(())
        }
        Step::Reject(e) => Err(Outcome::refuse(gateway, o.denial(e))),
        Step::NeedKeys => Err(Outcome::Wait(Wait::Keys { gateway })),
        Step::Introspect { call, digest } => Err(Outcome::Wait(Wait::Introspect {
            gateway,
            call,
            digest,
        })),
    }
}

/// Picks the upstream of an authenticated request in its gateway.
fn route<'p, R: Request + ?Sized>(
    index: usize,
    gateway: &'p Gateway,
    split: &SplitPlan,
    req: &R,
    auth: Authenticated<'p>,
    rng: &mut fastrand::Rng,
) -> Decision<'p> {
    let Authenticated {
        consumer,
        remove_credential,
        new_path,
        mut path,
        cached,
    } = auth;
    let mut decision = Decision {
        gateway: index,
        upstream: 0,
        upstream_name: gateway.upstream_name(0),
        consumer,
        how: How::Selected,
        bucket: None,
        remove_credential,
        remove_select: None,
        new_path,
        cached,
    };

    // The select header picks only among this gateway's own upstreams.
    if let Some(select) = gateway.select_header.as_deref() {
        // Sent twice, it is ambiguous: ignored (and removed) like an unknown name.
        let selected = req.single_header(select);
        if !matches!(selected, Ok(None)) {
            decision.remove_select = Some(select);
        }
        if let Ok(Some(wanted)) = selected {
            // Bytes against names: a value that is not exactly a configured
            // name (non-UTF-8 included) is ignored.
            if let Some(i) = gateway
                .upstreams
                .iter()
                .position(|u| u.as_bytes() == wanted)
            {
                decision.upstream = i;
                decision.upstream_name = gateway.upstream_name(i);
                return decision;
            }
        }
    }

    // Split keys are hashed over their raw bytes, UTF-8 or not.
    let key: Option<Cow<'_, [u8]>> = match split.key() {
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
        KeySource::Consumer => decision
            .consumer
            .as_deref()
            .map(|c| Cow::Owned(c.as_bytes().to_vec())),
    };
    let choice = split.choose(key.as_deref(), || rng.u32(0..TOTAL_BUCKETS));
    decision.upstream = choice.upstream;
    decision.upstream_name = gateway.upstream_name(choice.upstream);
    decision.how = choice.how;
    decision.bucket = choice.bucket;
    decision
}

/// Decisions for tools that ask "which version does this consumer get?" (the
/// command line's `route --consumer`), written on the same code as
/// [`Plan::decide`] so that they cannot disagree with the filter.
impl Plan {
    /// What [`Plan::decide`] does with `req` once its gateway has authenticated
    /// it as `consumer`: the gateway is found exactly as `decide` finds it
    /// (unmatched and ambiguous paths give the same outcomes), authentication
    /// is skipped, and the upstream is picked with `consumer` as the identity
    /// (the key of `split.by: consumer`). A gateway without `auth` has no
    /// identity, so `consumer` is ignored there, as the filter would. The
    /// split is the state's live one, as for `decide` (ramps stepped and
    /// tripped guards diverted, set with [`State::set_split`]).
    pub fn decide_as<'p, R: Request + ?Sized>(
        &'p self,
        req: &R,
        consumer: Option<&str>,
        state: &mut State,
    ) -> Outcome<'p> {
        let (index, strip) = match self.find_gateway(req) {
            Ok(found) => found,
            Err(outcome) => return outcome,
        };
        let Some(gateway) = self.gateways.get(index) else {
            return Outcome::Refuse {
                gateway: None,
                denial: Denial::not_found("no_gateway"),
            };
        };
        let mut auth = Authenticated::stripped(strip);
        if !matches!(gateway.auth, Authenticator::None) {
            auth.consumer = consumer.map(|c| Cow::Owned(c.to_string()));
        }
        let State { rng, gateways } = state;
        let split = gateways
            .get(index)
            .and_then(|s| s.split.as_ref())
            .unwrap_or(&gateway.split);
        Outcome::Forward(route(index, gateway, split, req, auth, rng))
    }
}

/// The split key `gateway` reads from `req` (its bytes as they are hashed),
/// `consumer` being the authenticated identity; `None` for a random split or
/// when the request has no key. An empty key is returned as it is (the split
/// treats it as missing).
pub fn split_key<R: Request + ?Sized>(
    gateway: &Gateway,
    req: &R,
    consumer: Option<&str>,
) -> Option<Vec<u8>> {
    match gateway.split.key() {
        KeySource::Random => None,
        KeySource::Header(h) => req.header(h),
        KeySource::Query(q) => req.header(":path").and_then(|p| query_param(&p, q)),
        KeySource::Cookie(c) => cookie_value(&req.cookie_headers(), c),
        KeySource::Consumer => consumer.map(|c| c.as_bytes().to_vec()),
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
        fn header_values(&self, name: &str) -> Vec<Vec<u8>> {
            self.0.get(name).cloned().unwrap_or_default()
        }
    }

    fn plan(json: &str) -> Plan {
        parse(json.as_bytes()).unwrap()
    }

    fn state() -> State {
        State::new(42, 16, 4)
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
        assert_eq!(d.remove_headers().collect::<Vec<_>>(), ["x-select"]);
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
        assert_eq!(d.remove_headers().collect::<Vec<_>>(), ["x-api-key"]);
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
        assert_eq!(d.remove_headers().collect::<Vec<_>>(), ["authorization"]); // x-select was not sent
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
        assert!(
            d.remove_headers().next().is_none(),
            "keep_token: nothing to remove"
        );

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
            Outcome::Wait(Wait::Keys { gateway: 0 })
        ));
        assert_eq!(p.keys_unavailable(0).status, 503);

        let p = plan(
            r#"{"primary":"v1","auth":{"mode":"oauth2","introspection":{"cluster":"idp","path":"/i",
                "client_id":"g","client_secret":"s"}}}"#,
        );
        let req = Req::new(&[("authorization", "Bearer opaque")]);
        let mut s = state();
        let Outcome::Wait(Wait::Introspect { call, digest, .. }) = p.decide(&req, &mut s, NOW)
        else {
            panic!("expected an introspection")
        };
        assert_eq!(call.cluster, "idp");
        let body = br#"{"active":true,"sub":"dave"}"#;
        let (outcome, problem) =
            p.after_introspection(0, &req, &mut s, NOW, digest, Some(200), Some(body));
        let d = outcome.forwarded().unwrap();
        assert_eq!((d.consumer.as_deref(), problem), (Some("dave"), None));
        assert_eq!(d.remove_headers().collect::<Vec<_>>(), ["authorization"]);
        let (outcome, problem) = p.after_introspection(0, &req, &mut s, NOW, digest, None, None);
        let refused = outcome.refused().unwrap();
        assert_eq!(refused, p.introspection_unavailable(0));
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
        assert_eq!(d.remove_headers().collect::<Vec<_>>(), ["x-select"]);
    }

    fn gateways_plan() -> Plan {
        plan(&format!(
            r#"{{"unmatched":"deny","gateways":[
              {{"name":"fraud","hosts":["models.example.com"],"path_prefix":"/fraud","strip_prefix":true,
                "primary":"fraud-v1","canaries":[{{"name":"fraud-v2","percent":100}}],
                "select_header":"x-select",
                "auth":{{"mode":"access_key","keys":[{{"consumer":"ci","sha256":"{}"}}]}}}},
              {{"name":"chat","hosts":["*.chat.example.com","chat.example.com"],
                "primary":"chat-v3","canaries":[{{"name":"chat-v4","percent":0}}],"select_header":"x-select"}},
              {{"name":"open","hosts":["*"],"path_prefix":"/open","primary":"open-v1"}}
            ]}}"#,
            sha("k1")
        ))
    }

    fn at(host: &str, path: &str, extra: &[(&str, &str)]) -> Req {
        let mut h = vec![(":authority", host), (":path", path)];
        h.extend_from_slice(extra);
        Req::new(&h)
    }

    #[test]
    fn requests_find_their_gateway_by_host_then_path() {
        let p = gateways_plan();
        let mut s = state();
        let d = p
            .decide(
                &at(
                    "Models.Example.com:443",
                    "/fraud/score?x=1",
                    &[("x-api-key", "k1")],
                ),
                &mut s,
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!((d.gateway, d.upstream_name), (0, "fraud-v2"));
        assert_eq!(
            d.new_path.as_deref(),
            Some(&b"/score?x=1"[..]),
            "strip_prefix"
        );
        assert_eq!(d.consumer.as_deref(), Some("ci"));

        let d = p
            .decide(&at("a.chat.example.com", "/v1/chat", &[]), &mut s, 0)
            .forwarded()
            .unwrap();
        assert_eq!(
            (d.gateway, d.upstream_name, d.new_path),
            (1, "chat-v3", None)
        );

        // The host pattern is chosen first: no fallback to `*` for another path.
        let e = p
            .decide(&at("models.example.com", "/open", &[]), &mut s, 0)
            .refused()
            .unwrap();
        assert_eq!((e.status, e.reason), (404, "no_gateway"));
        assert_eq!(e.body, r#"{"error":"not_found","reason":"no_gateway"}"#);
        let d = p
            .decide(&at("other.example.com", "/open/x", &[]), &mut s, 0)
            .forwarded()
            .unwrap();
        assert_eq!(d.gateway, 2);
        // A path trick cannot reach another gateway; an ambiguous one is refused.
        let e = p
            .decide(&at("other.example.com", "/open/..%2Fx", &[]), &mut s, 0)
            .refused()
            .unwrap();
        assert_eq!((e.status, e.reason), (400, "ambiguous_path"));
        let Outcome::Refuse { gateway, .. } = p.decide(&at("x", "/fraud%2fscore", &[]), &mut s, 0)
        else {
            panic!("refused")
        };
        assert_eq!(gateway, None);
        let e = p.decide(&at("other.example.com", "/fraud/../open/y", &[]), &mut s, 0);
        assert_eq!(
            e.forwarded().unwrap().gateway,
            2,
            "matched on the normalized path"
        );
    }

    #[test]
    fn each_gateway_authenticates_on_its_own() {
        let p = gateways_plan();
        let mut s = state();
        // chat has no auth: the key is not its business (and not removed).
        let d = p
            .decide(
                &at("chat.example.com", "/", &[("x-api-key", "k1")]),
                &mut s,
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!((d.gateway, d.consumer.as_deref()), (1, None));
        assert!(d.remove_headers().next().is_none());
        // fraud wants its key.
        let Outcome::Refuse { gateway, denial } =
            p.decide(&at("models.example.com", "/fraud", &[]), &mut s, 0)
        else {
            panic!("refused")
        };
        assert_eq!(
            (gateway, denial.status, denial.reason),
            (Some(0), 401, "missing_credentials")
        );
    }

    #[test]
    fn the_select_header_picks_only_among_the_gateways_own_upstreams() {
        let p = gateways_plan();
        let mut s = state();
        let d = p
            .decide(
                &at("chat.example.com", "/", &[("x-select", "fraud-v1")]),
                &mut s,
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!(
            (d.upstream_name, d.how),
            ("chat-v3", How::Random),
            "another gateway's upstream is ignored"
        );
        assert_eq!(d.remove_headers().collect::<Vec<_>>(), ["x-select"]);
        let d = p
            .decide(
                &at("chat.example.com", "/", &[("x-select", "chat-v4")]),
                &mut s,
                0,
            )
            .forwarded()
            .unwrap();
        assert_eq!((d.upstream_name, d.how), ("chat-v4", How::Selected));
    }

    #[test]
    fn unmatched_pass_forwards_without_a_gateway() {
        let mut p = gateways_plan();
        p.unmatched = crate::config::Unmatched::Pass;
        assert!(matches!(
            p.decide(&at("models.example.com", "/nothing", &[]), &mut state(), 0),
            Outcome::Pass
        ));
        // Ambiguous paths are refused whatever `unmatched` says.
        assert!(p
            .decide(&at("x", "/a\\b", &[]), &mut state(), 0)
            .refused()
            .is_some());
    }

    #[test]
    fn without_gateways_nothing_depends_on_the_path() {
        let p = plan(r#"{"primary":"v1"}"#);
        let d = p
            .decide(&at("any", "/%2f/../\\", &[]), &mut state(), 0)
            .forwarded()
            .unwrap();
        assert_eq!((d.gateway, d.upstream_name, d.new_path), (0, "v1", None));
    }

    #[test]
    fn a_repeated_credential_header_is_malformed() {
        let basic = plan(
            r#"{"primary":"v1","auth":{"mode":"basic","users":["u:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M="]}}"#,
        );
        let twice = Req::new(&[
            ("authorization", "Basic dTp0ZXN0"),
            ("authorization", "Basic dTp0ZXN0"),
        ]);
        let e = basic.decide(&twice, &mut state(), 0).refused().unwrap();
        assert_eq!((e.status, e.reason), (401, "malformed_credentials"));
        let ak = plan(&format!(
            r#"{{"primary":"v1","auth":{{"mode":"access_key","keys":[{{"consumer":"alice","sha256":"{}"}}]}}}}"#,
            sha("k1")
        ));
        let twice = Req::new(&[("x-api-key", "k1"), ("x-api-key", "k2")]);
        let e = ak.decide(&twice, &mut state(), 0).refused().unwrap();
        assert_eq!((e.status, e.reason), (401, "malformed_credentials"));
        let jwks = include_str!("../tests/fixtures/oauth2/jwks.json");
        let oauth = oauth2_plan(&format!(r#","jwks":{jwks}"#));
        let bearer = format!("Bearer {}", fixture_token("eddsa"));
        let twice = Req::new(&[("authorization", &bearer), ("authorization", &bearer)]);
        let e = oauth.decide(&twice, &mut state(), NOW).refused().unwrap();
        assert_eq!((e.status, e.reason), (401, "malformed_token"));
    }
}

/// [`Plan::decide_as`] and [`split_key`] against [`Plan::decide`].
#[cfg(test)]
mod as_consumer_tests {
    use super::*;
    use crate::config::parse;
    use crate::split::bucket_of;
    use sha2::Digest;

    struct Req(Vec<(&'static str, String)>);

    impl Request for Req {
        fn header(&self, name: &str) -> Option<Vec<u8>> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_bytes().to_vec())
        }
        fn cookie_headers(&self) -> Vec<Vec<u8>> {
            self.0
                .iter()
                .filter(|(k, _)| *k == "cookie")
                .map(|(_, v)| v.as_bytes().to_vec())
                .collect()
        }
    }

    fn config() -> Plan {
        let digest = |k: &str| hex::encode(sha2::Sha256::digest(k.as_bytes()));
        parse(
            format!(
                r#"{{"gateways":[
                {{"name":"h","hosts":["h.example"],"path_prefix":"/h","strip_prefix":true,"primary":"h1",
                  "canaries":[{{"name":"h2","percent":30}},{{"name":"h3","percent":20}}],
                  "split":{{"by":"query","name":"uid"}},
                  "auth":{{"mode":"access_key","keys":[{{"consumer":"alice","sha256":"{}"}}]}}}},
                {{"name":"c","hosts":["c.example"],"primary":"c1","canaries":[{{"name":"c2","percent":50}}],
                  "split":{{"by":"cookie","name":"sid"}}}},
                {{"name":"k","hosts":["k.example"],"primary":"k1","canaries":[{{"name":"k2","percent":50}}],
                  "split":{{"by":"consumer"}},
                  "auth":{{"mode":"access_key","keys":[{{"consumer":"alice","sha256":"{}"}},{{"consumer":"bob","sha256":"{}"}}]}}}}]}}"#,
                digest("ka"),
                digest("ka"),
                digest("kb")
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn decide_as_routes_like_decide_does_after_authentication() {
        let plan = config();
        let mut state = State::new(1, 4, plan.gateways.len());
        for i in 0..300 {
            let uid = format!("user-{i}");
            let with_key = Req(vec![
                (":authority", "h.example".into()),
                (":path", format!("/h/score?uid={uid}")),
                ("x-api-key", "ka".into()),
            ]);
            let real = plan.decide(&with_key, &mut state, 0).forwarded().unwrap();
            let without_key = Req(vec![
                (":authority", "h.example".into()),
                (":path", format!("/h/score?uid={uid}")),
            ]);
            let as_alice = plan
                .decide_as(&without_key, Some("alice"), &mut state)
                .forwarded()
                .unwrap();
            assert_eq!(
                (real.gateway, real.upstream, real.bucket, real.how),
                (
                    as_alice.gateway,
                    as_alice.upstream,
                    as_alice.bucket,
                    as_alice.how
                ),
                "{uid}"
            );
            assert_eq!(
                as_alice.new_path.as_deref(),
                Some(format!("/score?uid={uid}").as_bytes())
            );
            let key = split_key(&plan.gateways[0], &without_key, None).unwrap();
            assert_eq!(real.bucket, Some(bucket_of(&key, 0)));
        }
        // Consumer splits hash the identity given; cookie splits read the cookie.
        let k = Req(vec![
            (":authority", "k.example".into()),
            (":path", "/".into()),
        ]);
        for who in ["alice", "bob"] {
            let d = plan
                .decide_as(&k, Some(who), &mut state)
                .forwarded()
                .unwrap();
            assert_eq!(d.bucket, Some(bucket_of(who, 0)));
            assert_eq!(d.consumer.as_deref(), Some(who));
            assert_eq!(
                split_key(&plan.gateways[2], &k, Some(who)).as_deref(),
                Some(who.as_bytes())
            );
        }
        let d = plan.decide_as(&k, None, &mut state).forwarded().unwrap();
        assert_eq!(d.how, How::MissingKey);
        let c = Req(vec![
            (":authority", "c.example".into()),
            (":path", "/".into()),
            ("cookie", "a=1; sid=s-9".into()),
        ]);
        let d = plan
            .decide_as(&c, Some("ignored"), &mut state)
            .forwarded()
            .unwrap();
        assert_eq!((d.bucket, d.consumer), (Some(bucket_of("s-9", 0)), None));
    }

    #[test]
    fn decide_as_routes_with_the_live_split_like_decide() {
        let plan = config();
        let mut state = State::new(1, 4, plan.gateways.len());
        let c = Req(vec![
            (":authority", "c.example".into()),
            (":path", "/".into()),
            ("cookie", "sid=s-9".into()),
        ]);
        let everyone = plan.gateways[1].split.reshaped(&[10_000], &[false]);
        state.set_split(1, Some(everyone));
        let d = plan.decide_as(&c, None, &mut state).forwarded().unwrap();
        let real = plan.decide(&c, &mut state, 0).forwarded().unwrap();
        assert_eq!((d.upstream_name, real.upstream_name), ("c2", "c2"));
    }

    #[test]
    fn decide_as_finds_no_gateway_where_decide_finds_none() {
        let plan = config();
        let mut state = State::new(1, 4, plan.gateways.len());
        let nowhere = Req(vec![
            (":authority", "x.example".into()),
            (":path", "/".into()),
        ]);
        let d = plan
            .decide_as(&nowhere, Some("alice"), &mut state)
            .refused()
            .unwrap();
        assert_eq!(d.reason, "no_gateway");
        let bad = Req(vec![
            (":authority", "h.example".into()),
            (":path", "/h%2fx".into()),
        ]);
        let d = plan.decide_as(&bad, None, &mut state).refused().unwrap();
        assert_eq!(d.reason, "ambiguous_path");
    }
}
