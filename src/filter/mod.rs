//! The proxy-wasm layer: the only module that talks to Envoy.
//!
//! The root context parses the plugin configuration once (`on_configure`) into
//! an immutable [`Plan`] shared by every HTTP context; each request is decided
//! by [`Plan::decide`] and the result applied here. Host calls go through
//! [`abi`], which reads headers as raw bytes and turns every failure into an
//! `Err` (handled here: fail closed with a 500), never a panic inside the VM.
//!
//! OAuth2 adds two waits, both decided by the pure code and carried out here:
//! - `Wait::Introspect`: the HTTP context sends the introspection request,
//!   pauses, and finishes the decision in `on_http_call_response`.
//! - `Wait::Keys`: no JWKS has arrived yet. The request is paused and its
//!   context id parked with the root context, which fetches the JWKS at
//!   configure time and on its tick. When a key set arrives the root decides
//!   each parked request again (`set_effective_context`) and resumes or
//!   refuses it; a request still parked after `jwks_uri.timeout_ms` gets 503.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

mod abi;
mod logger;

use abi::{Buffer, HostError, Level, Map};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::auth::oauth2::{
    self, digest_bytes, parse_remote_jwks, tick_period_ms, HttpCall, KeySet, Refresh, TokenDigest,
    MAX_JWKS_BYTES,
};
use crate::auth::{denial_reasons, Authenticator, CREDENTIAL_CACHE_CAPACITY};
use crate::config::Plan;
use crate::decide::{Decision, Outcome, State, Wait};
use crate::reply::Denial;
use crate::request::Request;

type Status = HostError;

proxy_wasm::main! {{
    // No host calls here: Envoy refuses them during `_initialize`.
    logger::install();
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root::new(context_id))
    });
}}

/// At most this many requests wait for the first key set per worker; more
/// get 503 at once.
const MAX_PARKED: usize = 4096;
/// The largest introspection answer read from the host.
const MAX_CALL_BODY: usize = 64 * 1024;

fn critical(message: &str) {
    abi::log(Level::Critical, message);
}

/// Host time in milliseconds since the Unix epoch. Fails closed: an error
/// refuses the request rather than checking a token against time zero.
fn now_ms() -> Result<u64, Status> {
    Ok(abi::now_nanos()? / 1_000_000)
}

/// Counter ids, defined once per configuration.
#[derive(Debug)]
struct Metrics {
    /// Requests routed, per upstream (same order as `Plan::upstreams`).
    routed: Vec<Option<u32>>,
    auth_allowed: Option<u32>,
    /// Denials per reason label.
    auth_denied: Vec<(&'static str, Option<u32>)>,
    /// OAuth2 only.
    token_cache_hits: Option<u32>,
    introspections: Option<u32>,
    jwks_fetched: Option<u32>,
    jwks_failed: Option<u32>,
}

impl Metrics {
    fn define(plan: &Plan) -> Self {
        let counter = |name: String| abi::define_counter(&name).ok();
        let oauth2 = matches!(plan.auth, Authenticator::OAuth2(_));
        let oauth2_counter = |name: &str| {
            if oauth2 {
                counter(format!("canary_gate.oauth2.{name}"))
            } else {
                None
            }
        };
        Self {
            routed: plan
                .upstreams
                .iter()
                .map(|u| counter(format!("canary_gate.upstream.{u}.requests")))
                .collect(),
            auth_allowed: counter("canary_gate.auth_allowed".to_string()),
            auth_denied: denial_reasons()
                .into_iter()
                .map(|r| (r, counter(format!("canary_gate.reason.{r}.auth_denied"))))
                .collect(),
            token_cache_hits: oauth2_counter("token_cache_hits"),
            introspections: oauth2_counter("introspection_requests"),
            jwks_fetched: oauth2_counter("jwks_fetch_ok"),
            jwks_failed: oauth2_counter("jwks_fetch_failed"),
        }
    }

    fn inc(id: Option<u32>) {
        if let Some(id) = id {
            let _ = abi::increment(id, 1);
        }
    }

    fn routed(&self, upstream: usize) {
        Self::inc(self.routed.get(upstream).copied().flatten());
    }

    fn denied(&self, reason: &str) {
        let id = self
            .auth_denied
            .iter()
            .find(|(r, _)| *r == reason)
            .and_then(|(_, id)| *id);
        Self::inc(id);
    }
}

/// A request waiting for the first key set.
struct Parked {
    context_id: u32,
    deadline_ms: u64,
    upstream: Rc<Cell<Option<usize>>>,
}

/// What every HTTP context of one configuration shares.
struct Shared {
    plan: Plan,
    metrics: Metrics,
    state: RefCell<State>,
    parked: RefCell<Vec<Parked>>,
    /// The introspection endpoint is failing (warn once per streak).
    introspection_failing: Cell<bool>,
}

impl Shared {
    /// Applies a forward decision to the request headers of the current
    /// (effective) context.
    fn forward(
        &self,
        decision: &Decision<'_>,
        upstream: &Cell<Option<usize>>,
    ) -> Result<(), Status> {
        let plan = &self.plan;
        for name in &decision.remove_headers {
            set_header(name, None)?;
        }
        if let Some(path) = decision.new_path.as_deref() {
            set_header(":path", Some(path))?;
        }
        // Identity is the filter's to assert: the client's copy is replaced by the
        // authenticated consumer, or removed when there is none.
        set_header(
            &plan.consumer_header,
            decision.consumer.as_deref().map(str::as_bytes),
        )?;
        if decision.consumer.is_some() {
            Metrics::inc(self.metrics.auth_allowed);
        }
        if decision.cached {
            Metrics::inc(self.metrics.token_cache_hits);
        }
        // Always overwrite: a route header sent by the client is never trusted.
        set_header(&plan.route_header, Some(decision.upstream_name.as_bytes()))?;
        clear_route_cache();
        self.metrics.routed(decision.upstream);
        upstream.set(Some(decision.upstream));
        log::debug!(
            "canary-gate: {} -> {} ({:?}, bucket {:?})",
            decision.consumer.as_deref().unwrap_or("-"),
            decision.upstream_name,
            decision.how,
            decision.bucket
        );
        Ok(())
    }

    /// Sends the local reply of a refusal.
    fn refuse(&self, denial: &Denial) -> Action {
        self.metrics.denied(denial.reason);
        log::debug!(
            "canary-gate: denied with {} ({})",
            denial.status,
            denial.reason
        );
        let mut headers = vec![
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        if let Some(challenge) = denial.challenge.as_deref() {
            headers.insert(0, ("www-authenticate", challenge));
        }
        local_reply(denial.status, headers, &denial.body)
    }

    fn decide_now(&self) -> Result<Outcome<'_>, Status> {
        // Only token checks need the clock: spare the host call otherwise.
        let now = match self.plan.auth {
            Authenticator::OAuth2(_) => now_ms()? / 1000,
            _ => 0,
        };
        let mut state = self.state.borrow_mut();
        Ok(self.plan.decide(&HostRequest, &mut state, now))
    }
}

/// The one host call left to the SDK: its dispatcher must register the
/// call's token to deliver the answer to this context. Its inputs are ours
/// (cluster and headers from the validated configuration); it panics only on
/// a status Envoy does not return for this call (Envoy answers `Ok`,
/// `BadArgument` or `InternalFailure`).
fn dispatch(call: &HttpCall) -> Result<u32, Status> {
    let headers: Vec<(&str, &str)> = call.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    proxy_wasm::hostcalls::dispatch_http_call(
        &call.cluster,
        headers,
        call.body.as_deref(),
        vec![],
        Duration::from_millis(call.timeout_ms),
    )
    .map_err(|status| HostError(status as u32))
}

/// The status and body of the HTTP call answer being delivered (status
/// `None` when the call failed: Envoy then delivers no headers).
fn call_answer(body_size: usize, max: usize) -> (Option<u32>, Option<Vec<u8>>) {
    let status = abi::header(Map::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u32>().ok());
    let body = if body_size == 0 {
        None
    } else {
        // One byte past the limit, so that an oversized answer is recognised.
        let size = body_size.min(max.saturating_add(1));
        abi::buffer(Buffer::HttpCallResponseBody, size)
            .ok()
            .flatten()
    };
    (status, body)
}

struct Root {
    context_id: u32,
    shared: Option<Rc<Shared>>,
    refresh: Option<Refresh>,
    /// The JWKS fetch in flight.
    jwks_call: Option<u32>,
}

impl Root {
    fn new(context_id: u32) -> Self {
        Self {
            context_id,
            shared: None,
            refresh: None,
            jwks_call: None,
        }
    }

    fn oauth2(&self) -> Option<&oauth2::OAuth2Auth> {
        match &self.shared.as_ref()?.plan.auth {
            Authenticator::OAuth2(o) => Some(o),
            _ => None,
        }
    }

    /// Starts a JWKS fetch if one is due.
    fn fetch_jwks(&mut self, now_ms: u64) {
        let Some(refresh) = self.refresh.as_mut() else {
            return;
        };
        if !refresh.due(now_ms) {
            return;
        }
        let Some(uri) = (match self.shared.as_ref().map(|s| &s.plan.auth) {
            Some(Authenticator::OAuth2(o)) => o.jwks_uri(),
            _ => None,
        }) else {
            return;
        };
        let call = uri.endpoint.jwks_call();
        match dispatch(&call) {
            Ok(token) => {
                refresh.started();
                self.jwks_call = Some(token);
            }
            Err(status) => {
                let first = refresh.failed(now_ms);
                let cluster = call.cluster.clone();
                self.jwks_failed(
                    first,
                    &format!(
                        "cannot call cluster \"{cluster}\" ({status:?}); is it defined in Envoy?"
                    ),
                );
            }
        }
    }

    fn jwks_failed(&self, first_of_streak: bool, why: &str) {
        if let Some(shared) = &self.shared {
            Metrics::inc(shared.metrics.jwks_failed);
        }
        let have_keys = self
            .shared
            .as_ref()
            .is_some_and(|s| s.state.borrow().oauth2.has_remote_keys());
        let keeping = if have_keys {
            "keeping the last good keys"
        } else {
            "no keys yet; JWTs wait, then get 503"
        };
        if first_of_streak {
            log::warn!("canary-gate: JWKS fetch failed: {why} ({keeping}; retrying)");
        } else {
            log::debug!("canary-gate: JWKS fetch failed again: {why}");
        }
    }

    /// Decides every parked request again now that keys are here.
    fn wake_parked(&self, shared: &Shared) {
        let parked = std::mem::take(&mut *shared.parked.borrow_mut());
        if parked.is_empty() {
            return;
        }
        log::debug!(
            "canary-gate: resuming {} requests that waited for the JWKS",
            parked.len()
        );
        for p in parked {
            if abi::set_effective_context(p.context_id).is_err() {
                continue; // The request is gone.
            }
            let result = match shared.decide_now() {
                Ok(Outcome::Forward(decision)) => shared
                    .forward(&decision, &p.upstream)
                    .and_then(|()| abi::resume_request()),
                Ok(Outcome::Refuse(denial)) => {
                    shared.refuse(&denial);
                    Ok(())
                }
                // A JWT never needs introspection once keys exist: fail closed.
                Ok(Outcome::Wait(_)) => {
                    shared.refuse(&shared.plan.keys_unavailable());
                    Ok(())
                }
                Err(status) => Err(status),
            };
            if let Err(status) = result {
                internal_error(status);
            }
        }
        let _ = abi::set_effective_context(self.context_id);
    }

    /// Replies 503 to parked requests whose wait is over.
    fn expire_parked(&self, shared: &Shared, now_ms: u64) {
        let expired: Vec<Parked> = {
            let mut parked = shared.parked.borrow_mut();
            let (expired, waiting) = std::mem::take(&mut *parked)
                .into_iter()
                .partition(|p| p.deadline_ms <= now_ms);
            *parked = waiting;
            expired
        };
        if expired.is_empty() {
            return;
        }
        let denial = shared.plan.keys_unavailable();
        for p in &expired {
            if abi::set_effective_context(p.context_id).is_ok() {
                shared.refuse(&denial);
            }
        }
        let _ = abi::set_effective_context(self.context_id);
        log::debug!(
            "canary-gate: {} requests got 503 after waiting for the JWKS",
            expired.len()
        );
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if self.jwks_call != Some(token_id) {
            return;
        }
        self.jwks_call = None;
        let Ok(now) = now_ms() else {
            return;
        };
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let (status, body) = call_answer(body_size, MAX_JWKS_BYTES);
        // A usable document: new keys, or the same document as last time.
        enum Fetched {
            New(KeySet, [u8; 32]),
            Unchanged,
        }
        let parsed = match (status, body) {
            (Some(200), Some(body)) => {
                let fingerprint = digest_bytes(&body);
                if shared.state.borrow().oauth2.remote_keys_are(&fingerprint) {
                    Ok(Fetched::Unchanged)
                } else {
                    parse_remote_jwks(&body).map(|keys| Fetched::New(keys, fingerprint))
                }
            }
            (Some(200), None) => Err("empty response".to_string()),
            (Some(status), _) => Err(format!("HTTP {status}")),
            (None, _) => Err("no response (unreachable or timed out)".to_string()),
        };
        let Some(refresh) = self.refresh.as_mut() else {
            return;
        };
        match parsed {
            Ok(Fetched::Unchanged) => {
                let failures = refresh.succeeded(now);
                if failures > 0 {
                    log::info!("canary-gate: JWKS fetched again (unchanged), after {failures} failed attempts");
                } else {
                    log::debug!("canary-gate: JWKS unchanged");
                }
                Metrics::inc(shared.metrics.jwks_fetched);
            }
            Ok(Fetched::New(keys, fingerprint)) => {
                let failures = refresh.succeeded(now);
                let first = !shared.state.borrow().oauth2.has_remote_keys();
                if first || failures > 0 {
                    log::info!(
                        "canary-gate: JWKS loaded: {} keys (kids: {}){}",
                        keys.len(),
                        keys.kids().join(", "),
                        if failures > 0 {
                            format!(", after {failures} failed attempts")
                        } else {
                            String::new()
                        }
                    );
                } else {
                    log::debug!("canary-gate: JWKS refreshed: {} keys", keys.len());
                }
                shared
                    .state
                    .borrow_mut()
                    .oauth2
                    .install_remote_keys(keys, fingerprint);
                Metrics::inc(shared.metrics.jwks_fetched);
                self.wake_parked(&shared);
            }
            Err(why) => {
                let first = refresh.failed(now);
                self.jwks_failed(first, &why);
            }
        }
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        logger::follow_host_level();
        log::info!("canary-gate {} started", crate::VERSION);
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        logger::follow_host_level();
        let bytes = match abi::buffer(Buffer::PluginConfiguration, usize::MAX) {
            Ok(Some(b)) if !b.is_empty() => b,
            _ => {
                critical("canary-gate: invalid configuration: the plugin configuration is empty; it must be a JSON object with at least \"primary\"");
                return false;
            }
        };
        let plan = match crate::config::parse(&bytes) {
            Ok(plan) => plan,
            Err(e) => {
                critical(&format!("canary-gate: invalid configuration: {e}"));
                return false;
            }
        };
        let metrics = Metrics::define(&plan);
        log::info!(
            "canary-gate configured: primary {}, {} canaries, auth {}, route header {}",
            plan.upstream_name(0),
            plan.upstreams.len().saturating_sub(1),
            plan.auth.mode(),
            plan.route_header
        );
        let state = State::new(fastrand::u64(..), CREDENTIAL_CACHE_CAPACITY);
        self.shared = Some(Rc::new(Shared {
            plan,
            metrics,
            state: RefCell::new(state),
            parked: RefCell::new(Vec::new()),
            introspection_failing: Cell::new(false),
        }));
        self.refresh = None;
        self.jwks_call = None;
        if let Some(o) = self.oauth2() {
            if let Some(i) = o.introspection() {
                log::info!(
                    "canary-gate: oauth2 introspection via cluster {} {} (cache {} s)",
                    i.endpoint.cluster,
                    i.endpoint.path,
                    i.cache_seconds
                );
            }
            if let Some(uri) = o.jwks_uri() {
                log::info!(
                    "canary-gate: oauth2 JWKS from cluster {} {} every {} s",
                    uri.endpoint.cluster,
                    uri.endpoint.path,
                    uri.refresh_seconds
                );
                let tick = tick_period_ms(uri.endpoint.timeout_ms);
                let refresh = Refresh::new(uri.refresh_seconds);
                let tick = u32::try_from(tick).unwrap_or(u32::MAX);
                if abi::set_tick_period_ms(tick).is_err() {
                    critical("canary-gate: invalid configuration: cannot set the tick period needed to fetch the JWKS");
                    return false;
                }
                self.refresh = Some(refresh);
                if let Ok(now) = now_ms() {
                    self.fetch_jwks(now);
                }
            }
        }
        true
    }

    fn on_tick(&mut self) {
        let Ok(now) = now_ms() else {
            return;
        };
        self.fetch_jwks(now);
        if let Some(shared) = self.shared.clone() {
            self.expire_parked(&shared, now);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Gate {
            context_id,
            shared: self.shared.clone(),
            upstream: Rc::new(Cell::new(None)),
            introspection: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Gate {
    context_id: u32,
    shared: Option<Rc<Shared>>,
    /// The upstream chosen for this request, for the response header. Shared
    /// with the root context while the request is parked.
    upstream: Rc<Cell<Option<usize>>>,
    /// The introspection call in flight and the digest of its token.
    introspection: Option<(u32, TokenDigest)>,
}

/// Request headers read through the host (of the effective context).
struct HostRequest;

/// Header values are handed to the core as raw bytes: what non-UTF-8 means is
/// the core's decision. A failing host call reads as an absent header.
impl Request for HostRequest {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        abi::header(Map::RequestHeaders, name).ok().flatten()
    }

    fn cookie_headers(&self) -> Vec<Vec<u8>> {
        abi::headers(Map::RequestHeaders)
            .map(|all| {
                all.into_iter()
                    .filter(|(k, _)| k.as_slice() == b"cookie")
                    .map(|(_, v)| v)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn set_header(name: &str, value: Option<&[u8]>) -> Result<(), Status> {
    abi::set_header(Map::RequestHeaders, name, value)
}

/// Makes Envoy pick the route again now that the route header is set. Envoy does this by itself
/// after any request-header change for plugins on ABI 0.2.1 (this SDK), but not for newer ABIs
/// (Envoy 1.33 on), so an SDK upgrade must not silently route on the client's headers. A host
/// without the `clear_route_cache` foreign function answers `NotFound`: nothing to do then.
/// (The SDK turns `NotFound`, `BadArgument`, `SerializationFailure` and `InternalFailure` into an
/// `Err` and panics on any other status; Envoy answers this call with `Ok` or `NotFound`.)
fn clear_route_cache() {
    if let Err(status) = abi::call_foreign("clear_route_cache") {
        log::debug!("canary-gate: clear_route_cache unavailable ({status:?})");
    }
}

fn local_reply(status: u32, headers: Vec<(&str, &str)>, body: &str) -> Action {
    if abi::send_reply(status, &headers, body.as_bytes()).is_err() {
        let _ = abi::reset_request();
    }
    Action::Pause
}

fn internal_error(status: Status) -> Action {
    log::warn!("canary-gate: host call failed ({status:?}); refusing the request");
    local_reply(
        500,
        vec![("content-type", "application/json")],
        "{\"error\":\"internal\"}",
    )
}

impl Gate {
    fn handle(&mut self, shared: &Shared) -> Result<Action, Status> {
        match shared.decide_now()? {
            Outcome::Forward(decision) => {
                shared.forward(&decision, &self.upstream)?;
                Ok(Action::Continue)
            }
            Outcome::Refuse(denial) => Ok(shared.refuse(&denial)),
            Outcome::Wait(Wait::Keys) => Ok(self.park(shared)?),
            Outcome::Wait(Wait::Introspect { call, digest }) => match dispatch(&call) {
                Ok(token) => {
                    Metrics::inc(shared.metrics.introspections);
                    self.introspection = Some((token, digest));
                    Ok(Action::Pause)
                }
                Err(status) => {
                    if shared.introspection_failing.replace(true) {
                        log::debug!("canary-gate: cannot call introspection cluster ({status:?})");
                    } else {
                        log::warn!(
                            "canary-gate: cannot call introspection cluster \"{}\" ({status:?}); is it defined in Envoy? Requests with opaque tokens get 503",
                            call.cluster
                        );
                    }
                    let denial = match &shared.plan.auth {
                        Authenticator::OAuth2(o) => {
                            o.denial(crate::auth::TokenError::IntrospectionUnavailable)
                        }
                        _ => shared.plan.keys_unavailable(),
                    };
                    Ok(shared.refuse(&denial))
                }
            },
        }
    }

    fn park(&mut self, shared: &Shared) -> Result<Action, Status> {
        let timeout_ms = match &shared.plan.auth {
            Authenticator::OAuth2(o) => o.jwks_uri().map_or(0, |u| u.endpoint.timeout_ms),
            _ => 0,
        };
        let mut parked = shared.parked.borrow_mut();
        if parked.len() >= MAX_PARKED {
            drop(parked);
            return Ok(shared.refuse(&shared.plan.keys_unavailable()));
        }
        parked.push(Parked {
            context_id: self.context_id,
            deadline_ms: now_ms()?.saturating_add(timeout_ms),
            upstream: Rc::clone(&self.upstream),
        });
        log::debug!("canary-gate: request waits for the JWKS");
        Ok(Action::Pause)
    }

    fn finish_introspection(
        &mut self,
        shared: &Shared,
        digest: TokenDigest,
        body_size: usize,
    ) -> Result<(), Status> {
        let (status, body) = call_answer(body_size, MAX_CALL_BODY);
        let now = now_ms()? / 1000;
        let (outcome, problem) = {
            let mut state = shared.state.borrow_mut();
            shared.plan.after_introspection(
                &HostRequest,
                &mut state,
                now,
                digest,
                status,
                body.as_deref(),
            )
        };
        match problem {
            Some(p) if !shared.introspection_failing.replace(true) => {
                log::warn!("canary-gate: token introspection failed: {p}; requests get 503 until it answers");
            }
            Some(p) => log::debug!("canary-gate: token introspection failed again: {p}"),
            None if shared.introspection_failing.replace(false) => {
                log::info!("canary-gate: token introspection answers again");
            }
            None => {}
        }
        match outcome {
            Outcome::Forward(decision) => {
                shared.forward(&decision, &self.upstream)?;
                abi::resume_request()
            }
            Outcome::Refuse(denial) => {
                shared.refuse(&denial);
                Ok(())
            }
            Outcome::Wait(_) => {
                shared.refuse(&shared.plan.keys_unavailable());
                Ok(())
            }
        }
    }
}

impl Context for Gate {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some((token, digest)) = self.introspection else {
            return;
        };
        if token != token_id {
            return;
        }
        self.introspection = None;
        let Some(shared) = self.shared.clone() else {
            return;
        };
        if let Err(status) = self.finish_introspection(&shared, digest, body_size) {
            internal_error(status);
        }
    }

    fn on_done(&mut self) -> bool {
        if let Some(shared) = &self.shared {
            // A request that goes away while parked must not be resumed later.
            shared
                .parked
                .borrow_mut()
                .retain(|p| p.context_id != self.context_id);
        }
        true
    }
}

impl HttpContext for Gate {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            // Unreachable in practice: Envoy does not create HTTP contexts for a
            // plugin whose configuration failed. Fail closed anyway.
            return local_reply(
                500,
                vec![("content-type", "application/json")],
                "{\"error\":\"canary-gate is not configured\"}",
            );
        };
        match self.handle(&shared) {
            Ok(action) => action,
            Err(status) => internal_error(status),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(shared), Some(upstream)) = (self.shared.as_ref(), self.upstream.get()) {
            if let Some(header) = shared.plan.response_header.as_deref() {
                let name = shared.plan.upstream_name(upstream);
                let _ = abi::set_header(Map::ResponseHeaders, header, Some(name.as_bytes()));
            }
        }
        Action::Continue
    }
}
