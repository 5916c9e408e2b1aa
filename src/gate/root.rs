//! The root context: parses the configuration once, defines the counters,
//! fetches the JWKS on the tick, and decides the requests parked until the
//! first key set arrives.

use std::cell::RefCell;
use std::rc::Rc;

use super::{internal_error, Chosen, Http, Shared, MAX_PARKED};
use crate::auth::oauth2::fetch::{self, JwksOutcome, MAX_JWKS_READ};
use crate::auth::oauth2::{tick_period_ms, OAuth2Auth, Refresh};
use crate::auth::{Authenticator, CREDENTIAL_CACHE_CAPACITY};
use crate::config::Plan;
use crate::decide::State;
use crate::host::Host;
use crate::park::{Parked, Parking};
use crate::streak::Streak;

use super::metrics::Metrics;

/// The root context of one plugin configuration (one per worker).
pub struct Root {
    context_id: u32,
    shared: Option<Rc<Shared>>,
    /// The JWKS schedule, when keys are fetched.
    refresh: Option<Refresh>,
    /// The JWKS fetch in flight.
    jwks_call: Option<u32>,
}

fn oauth2(shared: &Shared) -> Option<&OAuth2Auth> {
    match &shared.plan.auth {
        Authenticator::OAuth2(o) => Some(o),
        _ => None,
    }
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        Self {
            context_id,
            shared: None,
            refresh: None,
            jwks_call: None,
        }
    }

    pub fn on_vm_start(&mut self) -> bool {
        log::info!("canary-gate {} started", crate::VERSION);
        true
    }

    /// Parses and validates the plugin configuration; `false` (after one
    /// critical line naming the field) makes Envoy refuse the plugin.
    pub fn on_configure(&mut self, host: &dyn Host) -> bool {
        let bytes = match host.plugin_configuration() {
            Some(b) if !b.is_empty() => b,
            _ => {
                host.log_critical("canary-gate: invalid configuration: the plugin configuration is empty; it must be a JSON object with at least \"primary\"");
                return false;
            }
        };
        let plan = match crate::config::parse(&bytes) {
            Ok(plan) => plan,
            Err(e) => {
                host.log_critical(&format!("canary-gate: invalid configuration: {e}"));
                return false;
            }
        };
        log_plan(&plan);
        let metrics = Metrics::define(host, &plan);
        let seed = fastrand::u64(..);
        self.shared = Some(Rc::new(Shared {
            plan,
            metrics,
            state: RefCell::new(State::new(seed, CREDENTIAL_CACHE_CAPACITY)),
            parked: RefCell::new(Parking::new(MAX_PARKED)),
            introspection: RefCell::new(Streak::default()),
        }));
        self.refresh = None;
        self.jwks_call = None;
        self.start_jwks(host)
    }

    /// With a `jwks_uri`: sets the tick and starts the first fetch.
    fn start_jwks(&mut self, host: &dyn Host) -> bool {
        let Some(uri) = self
            .shared
            .as_deref()
            .and_then(oauth2)
            .and_then(|o| o.jwks_uri())
        else {
            return true;
        };
        let tick = u32::try_from(tick_period_ms(uri.endpoint.timeout_ms)).unwrap_or(u32::MAX);
        let refresh = Refresh::new(uri.refresh_seconds);
        if host.set_tick_period_ms(tick).is_err() {
            host.log_critical("canary-gate: invalid configuration: cannot set the tick period needed to fetch the JWKS");
            return false;
        }
        self.refresh = Some(refresh);
        if let Ok(now) = host.now_ms() {
            self.fetch_jwks(host, now);
        }
        true
    }

    pub fn on_tick(&mut self, host: &dyn Host) {
        let Ok(now) = host.now_ms() else {
            return;
        };
        self.fetch_jwks(host, now);
        if let Some(shared) = self.shared.clone() {
            self.expire_parked(host, &shared, now);
        }
    }

    pub fn new_http(&self, context_id: u32) -> Http {
        Http::new(context_id, self.shared.clone())
    }

    /// Starts a JWKS fetch if one is due.
    fn fetch_jwks(&mut self, host: &dyn Host, now_ms: u64) {
        let (Some(refresh), Some(shared)) = (self.refresh.as_mut(), self.shared.clone()) else {
            return;
        };
        if !refresh.due(now_ms) {
            return;
        }
        let Some(uri) = oauth2(&shared).and_then(|o| o.jwks_uri()) else {
            return;
        };
        let call = uri.endpoint.jwks_call();
        match host.dispatch(&call) {
            Ok(token) => {
                refresh.started();
                self.jwks_call = Some(token);
            }
            Err(status) => {
                let why = fetch::dispatch_failed(&call.cluster, status);
                let outcome = fetch::failure(refresh, &shared.state.borrow().oauth2, now_ms, &why);
                self.jwks_done(host, &shared, outcome);
            }
        }
    }

    /// The JWKS endpoint answered (or the call failed).
    pub fn on_http_call_response(&mut self, host: &dyn Host, token: u32, body_size: usize) {
        if self.jwks_call != Some(token) {
            return;
        }
        self.jwks_call = None;
        let (Ok(now), Some(shared), Some(refresh)) =
            (host.now_ms(), self.shared.clone(), self.refresh.as_mut())
        else {
            return;
        };
        let status = fetch::call_status(host.call_header(":status").as_deref());
        let body = read_body(host, body_size, MAX_JWKS_READ);
        let outcome = {
            let mut state = shared.state.borrow_mut();
            fetch::answer(refresh, &mut state.oauth2, now, status, body.as_deref())
        };
        self.jwks_done(host, &shared, outcome);
    }

    fn jwks_done(&self, host: &dyn Host, shared: &Shared, outcome: JwksOutcome) {
        shared.metrics.jwks_fetch(host, outcome.ok);
        let (level, message) = outcome.log;
        log::log!(level, "{message}");
        if outcome.wake_parked {
            self.wake_parked(host, shared);
        }
    }

    /// Decides every parked request again now that keys are here.
    fn wake_parked(&self, host: &dyn Host, shared: &Shared) {
        let parked = shared.parked.borrow_mut().take_all();
        if parked.is_empty() {
            return;
        }
        log::debug!(
            "canary-gate: resuming {} requests that waited for the JWKS",
            parked.len()
        );
        for p in parked {
            if host.set_effective_context(p.context_id).is_err() {
                continue; // The request is gone.
            }
            let result = shared
                .decide(host)
                .and_then(|outcome| shared.finish(host, outcome, &p.data));
            if let Err(status) = result {
                internal_error(host, status);
            }
        }
        let _ = host.set_effective_context(self.context_id);
    }

    /// Replies 503 to parked requests whose wait is over.
    fn expire_parked(&self, host: &dyn Host, shared: &Shared, now_ms: u64) {
        let expired: Vec<Parked<Chosen>> = shared.parked.borrow_mut().take_expired(now_ms);
        if expired.is_empty() {
            return;
        }
        let denial = shared.plan.keys_unavailable();
        for p in &expired {
            if host.set_effective_context(p.context_id).is_ok() {
                shared.refuse(host, &denial);
            }
        }
        let _ = host.set_effective_context(self.context_id);
        log::debug!(
            "canary-gate: {} requests got 503 after waiting for the JWKS",
            expired.len()
        );
    }
}

/// Up to `max` bytes of a call answer's body, and one byte more so that an
/// oversized answer is recognised; `None` if there is none.
pub(super) fn read_body(host: &dyn Host, body_size: usize, max: usize) -> Option<Vec<u8>> {
    if body_size == 0 {
        return None;
    }
    host.call_body(body_size.min(max.saturating_add(1)))
}

fn log_plan(plan: &Plan) {
    log::info!(
        "canary-gate configured: primary {}, {} canaries, auth {}, route header {}",
        plan.upstream_name(0),
        plan.upstreams.len().saturating_sub(1),
        plan.auth.mode(),
        plan.route_header
    );
    let Authenticator::OAuth2(o) = &plan.auth else {
        return;
    };
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
    }
}
